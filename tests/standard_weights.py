"""Seeded random weights for every standard backbone, in each upstream file layout, registered so
that any process (the CLI, pool or Ray workers) finds them.

The builders are the backbone tests' own (``tests/test_backbone_*.py``): each network is built by
its reference package (cd-fvd, torch-fidelity, torchvggish, panns-inference, laion-clap's model
code, open_clip, imagebind-unofficial) or by our own builder where there is none (Synchformer),
from a fixed seed, and
saved in the container of the upstream file (plain state dict, ``{'model': ...}``,
``{'state_dict': {'module.<key>': ...}}``, an OpenAI TorchScript archive) under the upstream file
name. :func:`write_registry` writes a user weights registry
(``$MOVA_BENCH_HOME/weights/registry.yaml``) whose entries name those files with their size and
SHA-256, so ``mova-bench`` verifies and loads them as it would the real ones.

Random weights: the metric values say nothing about the real checkpoints; only that every loader,
preprocessing path and metric runs end to end and reports a value with a confidence interval.

    from standard_weights import standard_weight_names, build_weights, write_registry
    names = [w for ws in standard_weight_names().values() for w in ws]   # entries, per backbone
    files, not_built = build_weights(names, folder)                     # {entry: path}, {entry: why}
    write_registry(files, home / "weights" / "registry.yaml")

Importing a test module needs ``tests/`` on ``sys.path`` (pytest puts it there; scripts add it).
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

#: builder(folder, seed) -> the file it wrote
Builder = Callable[[Path, int], Path]


def _test_module(name: str) -> Any:
    """``tests/<name>.py`` imported as pytest imports it; a module-level skip (its reference package
    is not installed) becomes an ImportError naming the reason."""
    import pytest

    try:
        return importlib.import_module(name)
    except pytest.skip.Exception as exc:
        raise ImportError(f"{name}: {exc.msg}") from None


def _target(folder: Path, entry: str) -> Path:
    """``folder/<entry>/<upstream file name>`` (the name the registry gives the file)."""
    from mova_bench import weights

    sub = folder / entry
    sub.mkdir(parents=True, exist_ok=True)
    return sub / weights.get_entry(entry).filename


def _i3d_400(folder: Path, seed: int) -> Path:
    import torch

    state = _test_module("test_backbone_i3d")._random_reference_state(seed)
    path = _target(folder, "i3d-400")
    torch.save(state, path)  # plain state dict, as i3d_pretrained_400.pt
    return path


def _inception_v3(folder: Path, seed: int) -> Path:
    import torch

    path = _target(folder, "inception-v3")
    state = _test_module("test_backbone_inception")._random_torch_fidelity_state(path.parent, seed)
    torch.save(state, path)  # plain state dict, as torch-fidelity's release file
    return path


def _vggish(folder: Path, seed: int) -> Path:
    import torch

    model = _test_module("test_backbone_vggish").reference_vggish(seed)
    path = _target(folder, "vggish")
    torch.save(model.state_dict(), path)  # plain state dict, as the torchvggish release
    return path


def _panns(entry: str, sample_rate: int) -> Builder:
    def build(folder: Path, seed: int) -> Path:
        import torch

        path = _target(folder, entry)
        with tempfile.TemporaryDirectory(prefix="panns-home-") as home:  # HOME of panns-inference's import
            model = _test_module("test_backbone_panns").reference_cnn14_builder(Path(home))(sample_rate, seed)
        torch.save({"model": model.state_dict()}, path)  # the Zenodo layout
        return path

    return build


def _clap(entry: str) -> Builder:
    def build(folder: Path, seed: int) -> Path:
        import torch

        from mova_bench.features import clap as C

        t_clap = _test_module("test_backbone_clap")
        ck = next(name for name, c in C.CHECKPOINTS.items() if c.weights == entry)
        torch.manual_seed(seed)
        model = C.create_clap_model(ck)  # laion-clap's own CLAP class, built offline
        t_clap._randomise(model, seed)
        path = _target(folder, entry)
        t_clap._save_upstream(model, path)  # {'state_dict': {'module.<key>': ...}} + position_ids
        return path

    return build


def _roberta(index: int, entry: str) -> Builder:
    def build(folder: Path, seed: int) -> Path:  # noqa: ARG001 - a tokenizer has no random part
        path = _target(folder, entry)
        return _test_module("test_backbone_clap").write_tokenizer_files(path.parent)[index]

    return build


def _openclip(entry: str) -> Builder:
    def build(folder: Path, seed: int) -> Path:
        import open_clip
        import torch

        from mova_bench.registry import features

        from mova_bench.features.openclip import OpenClipBackbone

        arch = next(cls.arch for cls in (features.get(n) for n in features.names() if n.startswith("openclip"))
                    if issubclass(cls, OpenClipBackbone) and entry in cls.weights)
        torch.manual_seed(seed)
        model = open_clip.create_model(arch, pretrained=None).eval()
        path = _target(folder, entry)
        _test_module("test_backbone_openclip")._save_torchscript(model, path)  # the OpenAI TorchScript archive
        return path

    return build


def _synchformer(folder: Path, seed: int) -> Path:
    import torch

    from mova_bench.features.synchformer_net import build_synchformer

    path = _target(folder, "synchformer")
    torch.save(build_synchformer(seed=seed).state_dict(), path)  # plain state dict, as MMAudio's release
    return path


def _imagebind_huge(folder: Path, seed: int) -> Path:
    """imagebind-unofficial's ``imagebind_huge(pretrained=False)`` (all six modalities, 1.2 B
    parameters: a 4.8 GB file and as much memory while it is built) from a fixed seed."""
    import torch

    models = _test_module("test_backbone_imagebind")._imagebind_models()
    if models is None:
        raise ImportError("imagebind-unofficial (model code) is not installed")
    torch.manual_seed(seed)
    model = models.imagebind_huge(pretrained=False).eval()
    path = _target(folder, "imagebind-huge")
    torch.save(model.state_dict(), path)  # the released container: a plain state dict of every modality
    return path


#: weights entry name -> builder(folder, seed) returning the written file
BUILDERS: dict[str, Builder] = {
    "i3d-400": _i3d_400,
    "inception-v3": _inception_v3,
    "vggish": _vggish,
    "panns-cnn14-16k": _panns("panns-cnn14-16k", 16000),
    "panns-cnn14-32k": _panns("panns-cnn14-32k", 32000),
    "clap-630k-audioset": _clap("clap-630k-audioset"),
    "clap-630k-audioset-fusion": _clap("clap-630k-audioset-fusion"),
    "roberta-base-vocab": _roberta(0, "roberta-base-vocab"),
    "roberta-base-merges": _roberta(1, "roberta-base-merges"),
    "openclip-vit-b-32-openai": _openclip("openclip-vit-b-32-openai"),
    "openclip-vit-l-14-openai": _openclip("openclip-vit-l-14-openai"),
    "synchformer": _synchformer,
    "imagebind-huge": _imagebind_huge,
}


def is_pretrained(backbone: str) -> bool:
    """True when ``backbone`` is a registered standard (pretrained, weights-loading) backbone."""
    from mova_bench.registry import features

    return backbone in features and getattr(features.get(backbone), "family", "") == "standard"


def standard_backbones() -> list[str]:
    """The pretrained backbones of the metrics ``--backbones standard`` selects, read from the
    metric and backbone registries (``auto`` selection: it lists them whether or not weights are here)."""
    from mova_bench.pipeline.scoring import select_metrics

    out: list[str] = []
    for m in select_metrics(None, "auto"):
        out += [r for r in m.required_extractors() if r and is_pretrained(r) and r not in out]
    return out


def standard_weight_names() -> dict[str, list[str]]:
    """{backbone: the weights entries it loads with its default parameters}."""
    from mova_bench.registry import features

    return {bb: list(features.get(bb)().weights) for bb in standard_backbones()}


def build_weights(names: list[str], folder: str | Path, *, seed: int = 0,
                  log: Callable[[str], None] = lambda s: None) -> tuple[dict[str, Path], dict[str, str]]:
    """Build every entry of ``names`` into ``folder``: ({name: path}, {name: why not built})."""
    folder = Path(folder)
    files: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for i, name in enumerate(dict.fromkeys(names)):
        builder = BUILDERS.get(name)
        if builder is None:
            missing[name] = "no random-weight builder for this entry (tests/standard_weights.py BUILDERS)"
            continue
        t = time.perf_counter()
        try:
            files[name] = builder(folder, seed + i)
        except ImportError as exc:
            missing[name] = f"its reference package is not importable: {exc}"
            continue
        log(f"built {name}: {files[name].stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s")
    return files, missing


def write_registry(files: dict[str, Path], path: str | Path) -> Path:
    """A user weights registry naming ``files`` with their size and SHA-256; each replaces the
    packaged entry of that name whole, keeping its layout (a random stand-in carries no upstream
    licence, so none needs accepting)."""
    import yaml

    from mova_bench import weights

    body: dict[str, Any] = {}
    for name, file in files.items():
        known = weights.get_entry(name)
        digest = weights.hash_file(file)["sha256"]
        body[name] = {"filename": Path(file).name, "path": str(Path(file).resolve()), "size": Path(file).stat().st_size,
                      "sha256": digest, "hash_status": "third-party", "layout": known.layout,
                      "licence": "random test weights", "description": f"seeded random stand-in for {name}"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"schema": 1, "entries": body}, sort_keys=True), encoding="utf-8")
    return path


__all__ = ["BUILDERS", "is_pretrained", "standard_backbones", "standard_weight_names", "build_weights", "write_registry"]
