"""I3D (FVD) backbone: loader, manifest, preprocessing and forward parity with cd-fvd, TorchScript path.

No network and no real weights: a seeded random state dict is built by the reference package
(cd-fvd's ``InceptionI3d(400)``, batch-norm running statistics randomised) and saved in the upstream
file layout (a plain state dict, as ``i3d_pretrained_400.pt``); our loader reads it strictly.
Parity (CPU, fp32, TF32 off) is at 1e-5 against cd-fvd's own forward pass on cd-fvd's own
preprocessing of the same uint8 frames. One 16-frame 224×224 forward per implementation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cdfvd_i3d = pytest.importorskip("cdfvd.third_party.i3d.pytorch_i3d")
cdfvd_utils = pytest.importorskip("cdfvd.third_party.i3d.utils")

from conftest import make_av  # noqa: E402

from mova_bench import weights  # noqa: E402
from mova_bench.errors import ConfigError, MediaError, MissingDependencyError  # noqa: E402
from mova_bench.features import i3d as i3d_mod  # noqa: E402
from mova_bench.features.i3d import (  # noqa: E402
    I3D,
    FeatureMissing,
    WeightsFileError,
    inception_i3d,
    load_state_dict_strict,
    preprocess,
)
from mova_bench.media import decode  # noqa: E402

MANIFEST = Path(__file__).parent / "manifests" / "i3d-400.json"
ATOL = 1e-5


def _random_reference_state(seed: int = 0) -> dict:
    """cd-fvd's InceptionI3d(400) with seeded random weights and randomised BN running statistics.

    The default init makes a deep network whose output barely depends on its input (≈1e-6), which
    would make a 1e-5 comparison empty; with He-normal convolutions the logits are O(10) and move
    by O(1) between inputs."""
    torch.manual_seed(seed)
    ref = cdfvd_i3d.InceptionI3d(400, in_channels=3)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in ref.state_dict().items():
            if name.endswith("conv3d.weight"):  # He-normal: activations neither vanish nor explode over 20+ layers
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5)
            elif name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("bn.weight"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("bn.bias") or name == "logits.conv3d.bias":
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return {k: v.clone() for k, v in ref.state_dict().items()}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(path of the random checkpoint in the upstream layout, its state dict)."""
    state = _random_reference_state()
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def reference_model(checkpoint):
    """cd-fvd's network with the checkpoint, loaded the way cd-fvd loads it (strict)."""
    path, _ = checkpoint
    ref = cdfvd_i3d.InceptionI3d(400, in_channels=3)
    ref.load_state_dict(torch.load(path, map_location="cpu"))
    return ref.eval()


@pytest.fixture
def registered(checkpoint):
    weights.register_local("i3d-400", checkpoint[0])
    yield checkpoint[0]
    weights.forget_local("i3d-400")


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    """A real 1 s, 24 fps, 96×64 H.264 clip (24 frames) written by mova_bench.media.write_mp4."""
    return make_av(tmp_path_factory.mktemp("i3d-clip") / "clip.mp4", seconds=1.0, fps=24.0, width=96, height=64)


# --------------------------------------------------------------------------- manifest and loader


def test_manifest_matches_our_network_and_the_reference():
    manifest = json.loads(MANIFEST.read_text())
    keys = {k: tuple(v) for k, v in manifest["keys"].items()}
    assert manifest["n_keys"] == len(keys) == i3d_mod.N_KEYS == 344
    ours = inception_i3d()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == keys
    assert sum(p.numel() for p in ours.parameters()) == manifest["n_parameters"] == i3d_mod.N_PARAMS == 12_697_264
    ref = cdfvd_i3d.InceptionI3d(400, in_channels=3)
    assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == keys


def test_loader_reads_the_upstream_layout_strictly(checkpoint):
    path, state = checkpoint
    model = load_state_dict_strict(inception_i3d(), path)
    got = model.state_dict()
    assert set(got) == set(state)
    for k in ("Conv3d_1a_7x7.conv3d.weight", "Mixed_5c.b3b.bn.running_var", "logits.conv3d.bias"):
        assert torch.equal(got[k], state[k]), k
    assert not model.training


@pytest.mark.parametrize(
    "edit, expected",
    [
        ("missing", "1 missing keys ['Mixed_4c.b1b.bn.running_var']"),
        ("extra", "1 unexpected keys ['Mixed_9z.b0.conv3d.weight']"),
        ("shape", "logits.conv3d.bias: file (401,) vs model (400,)"),
    ],
)
def test_loader_names_the_offending_key(checkpoint, tmp_path, edit, expected):
    state = dict(checkpoint[1])
    if edit == "missing":
        del state["Mixed_4c.b1b.bn.running_var"]
    elif edit == "extra":
        state["Mixed_9z.b0.conv3d.weight"] = torch.zeros(1)
    else:
        state["logits.conv3d.bias"] = torch.zeros(401)
    bad = tmp_path / "i3d_pretrained_400.pt"
    torch.save(state, bad)
    with pytest.raises(WeightsFileError) as info:
        load_state_dict_strict(inception_i3d(), bad)
    assert expected in str(info.value)
    assert "mova-bench weights fetch i3d-400" in str(info.value)


def test_loader_rejects_non_state_dicts_without_running_their_code(tmp_path):
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    with pytest.raises(WeightsFileError, match="plain state dict"):
        load_state_dict_strict(inception_i3d(), listed)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(WeightsFileError, match="cannot read it"):
        load_state_dict_strict(inception_i3d(), garbage)


# --------------------------------------------------------------------------- preprocessing


def test_stretch_preprocessing_equals_cdfvd_bit_for_bit():
    video = np.random.default_rng(3).integers(0, 256, (1, 10, 37, 53, 3), dtype=np.uint8)
    ours = preprocess(video[0], "stretch")
    ref = cdfvd_utils.preprocess_i3d(video)
    assert ours.shape == ref.shape == (1, 3, 10, 224, 224)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, ref)
    assert float(ours.min()) >= -1.0 and float(ours.max()) <= 1.0


def test_short_side_crop_is_a_centre_crop_after_a_short_side_resize():
    rng = np.random.default_rng(4)
    # the short side already 224: the resize is the identity, so the result is the raw centre crop
    land = rng.integers(0, 256, (9, 224, 301, 3), dtype=np.uint8)
    got = preprocess(land, "short-side-crop")
    left = int(round((301 - 224) / 2.0))
    expect = torch.from_numpy(land[:, :, left : left + 224].astype(np.float32)).permute(3, 0, 1, 2)[None]
    assert torch.equal(got, 2.0 * expect / 255.0 - 1)
    port = rng.integers(0, 256, (9, 150, 100, 3), dtype=np.uint8)  # portrait, upscaled: 224 × 336, crop rows 56..280
    got = preprocess(port, "short-side-crop")
    assert got.shape == (1, 3, 9, 224, 224)
    x = torch.from_numpy(port.astype(np.float32)).permute(0, 3, 1, 2)
    full = torch.nn.functional.interpolate(x, size=(336, 224), mode="bilinear", align_corners=False)[:, :, 56:280]
    assert torch.equal(got[0].transpose(0, 1), 2.0 * full / 255.0 - 1)
    assert not torch.equal(got, preprocess(port, "stretch"))


def test_bad_parameters_name_the_value():
    with pytest.raises(ConfigError) as info:
        I3D(frames=8)
    assert "frames=8" in str(info.value) and "9" in str(info.value)
    with pytest.raises(ConfigError, match="resize='wide'"):
        I3D(resize="wide")
    with pytest.raises(ConfigError, match="weights='i3d-600'"):
        I3D(weights="i3d-600")
    with pytest.raises(ValueError, match="unknown parameter"):
        I3D(frame=16)
    assert I3D(frames=9).video_needs[0].max_frames == 9
    assert I3D(frames=16, stride=2).video_needs[0].max_frames == 31


def test_too_short_clip_is_missing_with_the_reason():
    class Clip:
        def frames(self, need):
            assert need.mode == "native" and need.max_frames == 16
            return np.zeros((12, 32, 32, 3), np.uint8)

    with pytest.raises(FeatureMissing) as info:
        I3D().embed(Clip())  # the check comes before any forward pass: no model needed
    assert isinstance(info.value, MediaError) and info.value.reason == "too_short"
    assert "12 frames" in str(info.value) and "needs 16" in str(info.value) and info.value.extractor == "i3d"


def test_weights_choice_reaches_availability_and_identity(registered):
    assert I3D().missing_fixes() == []
    if not weights.is_present("i3d-torchscript"):  # (a machine with StyleGAN-V's file in a known cache has it)
        assert "mova-bench weights fetch i3d-torchscript" in I3D(weights="i3d-torchscript").missing_fixes()
        with pytest.raises(MissingDependencyError) as info:  # before any file is read
            I3D(weights="i3d-torchscript").load("cpu")
        assert "mova-bench weights fetch i3d-torchscript" in str(info.value) and "i3d-400" not in (info.value.fix or "")
    ident = I3D().cache_identity()
    assert ident["weights_sha256"] == {"i3d-400": weights.get_entry("i3d-400").sha256}
    assert ident["preprocessing"]["frames"] == 16 and ident["preprocessing"]["resize"] == "stretch"
    assert I3D(resize="short-side-crop").cache_identity() != ident
    assert I3D(frames=32).cache_identity()["preprocessing"]["video_needs"][0]["max_frames"] == 32


# --------------------------------------------------------------------------- forward parity, end to end


def test_end_to_end_on_a_real_mp4_matches_cdfvd(registered, reference_model, mp4, tmp_path):
    """Through the harness (analyse_clip: one decode with the backbone's need, model loaded once, feature
    cache), against cd-fvd's forward on cd-fvd's preprocessing of the same decoded native frames."""
    from mova_bench.media import file_sha256
    from mova_bench.pipeline.analysis import AnalysisTask, ExtractorSpec, analyse_clip

    ex = I3D()
    clip = decode(mp4, needs=ex.video_needs)
    frames = clip.frames(ex.video_needs[0])
    assert frames.shape == (16, 64, 96, 3)  # native size, first 16 of the 24 frames
    np.testing.assert_allclose(clip.frame_times(ex.video_needs[0]), clip.video_times[:16])
    task = AnalysisTask("c0", str(mp4), file_sha256(mp4), (ExtractorSpec("i3d"),), cache_root=str(tmp_path / "cache"))
    first = analyse_clip(task)
    assert first.decoded and first.cache_hits == 0 and not first.missing
    emb = first.features["i3d"]["embedding"]
    assert emb.shape == (400,) and emb.dtype == np.float32 and np.isfinite(emb).all()
    with torch.no_grad():
        ref = reference_model(cdfvd_utils.preprocess_i3d(frames[None])).numpy()[0]
    assert np.abs(ref).max() > 1.0  # a non-degenerate output, so the comparison means something
    np.testing.assert_allclose(emb, ref, rtol=ATOL, atol=ATOL)
    again = analyse_clip(task)  # cached: no decode, no forward, same numbers
    assert not again.decoded and again.cache_hits == 1
    np.testing.assert_array_equal(again.features["i3d"]["embedding"], emb)
    # the embedding depends on the frames: a different window gives another vector
    with torch.no_grad():
        shifted = reference_model(cdfvd_utils.preprocess_i3d(clip.video[None, 4:20])).numpy()[0]
    assert np.abs(shifted - emb).max() > 1e-2


# --------------------------------------------------------------------------- TorchScript (StyleGAN-V)


class _StandIn(torch.nn.Module):
    """Stand-in for StyleGAN-V's ``i3d_torchscript.pt``: same forward signature, each flag changes the output."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = x[:, :, :, :8, :8]
        h = self.proj(x.mean(dim=(2, 3, 4)) + x.std(dim=(2, 3, 4)))
        if not return_features:
            h = h.softmax(dim=-1)
        return h


def test_torchscript_weights_are_called_with_the_stylegan_v_flags(tmp_path, mp4):
    torch.manual_seed(5)
    eager = _StandIn().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.14 warns that scripting is deprecated
        scripted = torch.jit.script(eager)
    path = tmp_path / "i3d_torchscript.pt"
    scripted.save(str(path))
    weights.register_local("i3d-torchscript", path, layout="torchscript")
    try:
        ex = I3D(weights="i3d-torchscript")
        assert ex.weights == ("i3d-torchscript",) and ex.missing_fixes() == []
        clip = decode(mp4, needs=ex.video_needs)
        ex.load("cpu")
        assert isinstance(ex.model, torch.jit.ScriptModule)
        emb = ex.extract(clip)["embedding"]
    finally:
        weights.forget_local("i3d-torchscript")
    x = preprocess(clip.frames(ex.video_needs[0]), "stretch")
    with torch.no_grad():
        want = eager(x, rescale=False, resize=False, return_features=True).numpy()[0]
        others = [eager(x, rescale=True, resize=False, return_features=True),
                  eager(x, rescale=False, resize=True, return_features=True),
                  eager(x, rescale=False, resize=False, return_features=False)]
    assert emb.shape == (400,)
    np.testing.assert_allclose(emb, want, rtol=0, atol=1e-6)
    for other in others:
        assert np.abs(other.numpy()[0] - want).max() > 1e-4


# --------------------------------------------------------------------------- registry


def test_registered_and_declared():
    from mova_bench.registry import features

    cls = features.get("i3d")
    assert cls is I3D
    assert cls.modality == "video" and cls.kind == "embedding" and cls.frame_level is False
    assert cls.metric_names["fd_video"] == "FVD"
    # asked on the class (as --backbones does before any instance exists): the default weights
    fixes = I3D.missing_fixes()
    assert isinstance(fixes, list)
    if not weights.is_present("i3d-400"):
        assert "mova-bench weights fetch i3d-400" in fixes and not any("torchscript" in f for f in fixes)


# --------------------------------------------------------------------------- real weights (when present)


def _real_file(name: str) -> Path | None:
    """The user's verified-looking copy of ``name`` under their MOVA_BENCH_HOME (read at import, before
    the tests' isolated home applies), else None: these tests then skip."""
    try:
        entry = weights.get_entry(name)
        p = weights.weights_dir() / name / entry.filename
    except Exception:  # noqa: BLE001 - no registry, no real weights
        return None
    return p if p.is_file() and p.stat().st_size == entry.size else None


_REAL = {name: _real_file(name) for name in ("i3d-400", "i3d-torchscript")}


@pytest.mark.slow
@pytest.mark.skipif(_REAL["i3d-400"] is None, reason="the real i3d_pretrained_400.pt is not in MOVA_BENCH_HOME/weights")
def test_real_i3d_400_loads_strictly_and_matches_cdfvd(mp4):
    entry = weights.get_entry("i3d-400")
    weights.register_local("i3d-400", _REAL["i3d-400"], sha256=entry.sha256, size=entry.size)  # resolve re-verifies the pin
    try:
        ex = I3D()
        clip = decode(mp4, needs=ex.video_needs)
        ex.load("cpu")
        emb = ex.extract(clip)["embedding"]
        ref = cdfvd_i3d.InceptionI3d(400, in_channels=3)
        ref.load_state_dict(torch.load(weights.resolve("i3d-400"), map_location="cpu"))
        with torch.no_grad():
            want = ref.eval()(cdfvd_utils.preprocess_i3d(clip.frames(ex.video_needs[0])[None])).numpy()[0]
    finally:
        weights.forget_local("i3d-400")
    np.testing.assert_allclose(emb, want, rtol=ATOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.skipif(_REAL["i3d-torchscript"] is None, reason="the real i3d_torchscript.pt is not in MOVA_BENCH_HOME/weights")
def test_real_i3d_torchscript_gives_400_logits(mp4):
    entry = weights.get_entry("i3d-torchscript")
    weights.register_local("i3d-torchscript", _REAL["i3d-torchscript"], sha256=entry.sha256, size=entry.size,
                           layout="torchscript")
    try:
        ex = I3D(weights="i3d-torchscript")
        clip = decode(mp4, needs=ex.video_needs)
        ex.load("cpu")
        emb = ex.extract(clip)["embedding"]
    finally:
        weights.forget_local("i3d-torchscript")
    assert emb.shape == (400,) and np.isfinite(emb).all() and emb.std() > 0
