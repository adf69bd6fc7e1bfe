"""The feature-extractor extension point.

A feature extractor turns one :class:`~mova_bench.media.DecodedClip` into a dict of numpy arrays.
Two kinds exist:

* embedding backbones (``kind = "embedding"``): return ``{"embedding": (D,) float}``; they feed
  Fréchet distance, KID and the detector. ``modality`` says which (``"video"`` or ``"audio"``).
* analyzers (``kind = "analysis"``): return whatever per-clip arrays their metrics need
  (e.g. the sync offset and its confidence).

Constructors are cheap; weights (if any) load on first use. ``cache_identity()`` is everything
that changes the output: name, version, weights checksum, every preprocessing parameter, the
source code, and the versions of the libraries the numbers come from (:data:`NUMERIC_LIBRARIES`:
the decoder PyAV and its FFmpeg libraries, numpy, scipy, librosa, soxr, OpenCV). The feature
cache keys on it plus the clip's content hash, so changing any of these can never return a
stale feature (and a statistics .npz built with other versions reads as stale).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import MediaError as _MediaError
from mova_bench.errors import MovaBenchError as _MovaBenchError
from mova_bench.media import DECODE_CONVENTION, DecodedClip


@functools.lru_cache(maxsize=None)
def _code_hash(cls: type) -> str:
    """Hash of the extractor's source file, the decoder's and the shared frame helpers'."""
    import mova_bench.features.frames as frames
    import mova_bench.media as media

    h = hashlib.sha256()
    for obj in (cls, media, frames):
        try:
            h.update(Path(inspect.getsourcefile(obj) or "").read_bytes())
        except (OSError, TypeError):
            h.update(repr(obj).encode())
    return h.hexdigest()[:16]


#: distributions whose versions every weight-free feature depends on: decoding and scaling (PyAV and
#: FFmpeg), resampling (soxr), mel filters and onsets (librosa), resizing and optical flow (OpenCV),
#: and the numerics (numpy, scipy). An extractor with other dependencies (weights' frameworks)
#: extends ``libraries``.
NUMERIC_LIBRARIES = ("av", "numpy", "scipy", "librosa", "soxr", "opencv")
_OPENCV_DISTS = ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python")


@functools.lru_cache(maxsize=None)
def library_version(name: str) -> str | None:
    """Installed version of ``name`` from package metadata (no import), ``opencv`` from whichever
    OpenCV wheel is installed (else ``cv2.__version__``), ``ffmpeg`` as PyAV's FFmpeg library
    versions; None when absent."""
    from importlib import metadata

    if name == "ffmpeg":
        try:
            import av

            return ";".join(f"{k}={'.'.join(map(str, v))}" for k, v in sorted(av.library_versions.items()))
        except Exception:  # noqa: BLE001 - no PyAV: nothing decodes, and the identity says so
            return None
    dists = _OPENCV_DISTS if name == "opencv" else (name,)
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if name == "opencv":
        try:
            import cv2

            return str(cv2.__version__)
        except ImportError:
            return None
    return None


def library_versions(names: tuple[str, ...] = NUMERIC_LIBRARIES) -> dict[str, str | None]:
    """``{name: version}`` for ``names`` plus FFmpeg's libraries (with ``av``)."""
    out = {n: library_version(n) for n in names}
    if "av" in names:
        out["ffmpeg"] = library_version("ffmpeg")
    return out


class FeatureExtractor:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "embedding"  # "embedding" | "analysis"
    modality: ClassVar[str] = "video"  # "video" | "audio" | "av"
    display_name: ClassVar[str] = ""
    #: weight-free backbones are "classical"; I3D/VGGish/... are "standard"
    family: ClassVar[str] = "classical"
    weights_sha256: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    #: libraries whose versions enter the cache identity (see :data:`NUMERIC_LIBRARIES`)
    libraries: ClassVar[tuple[str, ...]] = NUMERIC_LIBRARIES

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.default_params())
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {sorted(unknown)}; valid: {sorted(self.default_params())}"
            )
        self.params = {**self.default_params(), **params}

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {}

    def preprocessing(self) -> dict[str, Any]:
        """Every parameter that changes the output (joined with the decode convention)."""
        return {**DECODE_CONVENTION, **self.params}

    def cache_identity(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing(),
            # the extractor's own source (and the decoder's and the frame helpers'): editing any of
            # them invalidates its cache, even when nobody remembered to bump ``version``
            "code_sha256": _code_hash(type(self)),
            # the numbers also come from these libraries (resampler, mel filters, resize, flow, decoder):
            # an upgrade of any of them re-extracts instead of mixing features of two versions
            "libraries": library_versions(tuple(self.libraries)),
        }

    def available(self) -> tuple[bool, str]:
        """(True, "") when usable; else (False, how to fix)."""
        return True, ""

    def extract(self, clip: DecodedClip) -> dict[str, np.ndarray]:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# pretrained (torch) backbones
# ---------------------------------------------------------------------------------------------

#: models built by :meth:`TorchBackbone.load`, one per (class, parameters, device) and process
_MODELS: dict[tuple[Any, ...], Any] = {}
#: how often each (class, parameters, device) was built in this process (a model loads once)
LOAD_COUNTS: dict[tuple[Any, ...], int] = {}


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → the torch device string to use.

    ``auto`` is ``cuda`` when ``torch.cuda.is_available()``, else ``cpu`` (also when torch is not
    installed). An unavailable CUDA device raises :class:`~mova_bench.errors.ConfigError` (exit 2)."""
    import re

    from mova_bench.errors import ConfigError

    spec = (device or "auto").strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec):
        raise ConfigError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N (e.g. cuda:0)")
    if spec == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if spec == "auto":
            return "cpu"
        raise ConfigError(f"--device {device}: torch is not installed", fix="pip install 'mova-bench[all]', or use --device cpu") from None
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device}: CUDA is not available to torch {torch.__version__} on this machine",
            fix="use --device cpu (or auto), or install a CUDA build of torch and check nvidia-smi",
        )
    index = int(spec.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"--device {device}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})",
                          fix=f"use --device cuda:{max(0, count - 1)} or --device auto")
    return spec


@functools.lru_cache(maxsize=None)
def _dists_of(module: str) -> tuple[str, ...]:
    """Distributions that provide top-level module ``module`` (``open_clip`` → ``open_clip_torch``)."""
    from importlib import metadata

    return tuple(sorted(set(metadata.packages_distributions().get(module.split(".")[0], ()))))


class ClassOrInstanceMethod:
    """A method bound to the instance when called on one, else to the class (``missing_fixes``
    must see an instance's own ``weights``, chosen by its parameters, and still work on the class)."""

    def __init__(self, func: Any):
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        import types

        return types.MethodType(self.func, owner if obj is None else obj)


def _weights_api():
    """``mova_bench.weights`` (imported on use: the registry is a separate module)."""
    from mova_bench import weights

    return weights


class _StrictNumerics:
    """fp32 without TF32 while inside (parity with references computed in full fp32); restores the
    previous flags on exit."""

    def __enter__(self):
        import torch

        self._old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        self._grad = torch.no_grad()
        self._grad.__enter__()
        return self

    def __exit__(self, *exc):
        import torch

        self._grad.__exit__(*exc)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._old
        return False


class WeightsFileError(_MovaBenchError):
    """A weights file is readable but is not the checkpoint expected (keys, shapes, container)."""


def check_state_dict(state: Any, model: Any, what: str, fix: str, *, limit: int = 10) -> None:
    """Compare a checkpoint's keys and tensor shapes with ``model.state_dict()``; raise
    :class:`WeightsFileError` naming every missing key, unexpected key and shape mismatch (up to
    ``limit`` of each, with the counts), so that nothing is ever loaded partially."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if not (missing or extra or shapes):
        return

    def listed(keys: list[str]) -> str:
        return f"{keys[:limit]}" + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys {listed(missing)}")
    if extra:
        parts.append(f"{len(extra)} unexpected keys {listed(extra)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches " + ", ".join(f"{k}: file {got[k]} vs model {expected[k]}"
                                                                   for k in shapes[:limit]))
    raise WeightsFileError(f"{what} does not match the architecture ({len(expected)} keys expected): " + "; ".join(parts),
                           fix=fix)


class FeatureMissing(_MediaError):
    """This backbone cannot embed this clip (e.g. fewer frames than its window); ``detail`` says why.

    A :class:`~mova_bench.errors.MediaError` with reason ``"too_short"`` (or the one given), so the
    analysis records the clip with that reason instead of crashing; ``extractor`` names the backbone,
    for a harness that records it as missing for that backbone only."""

    def __init__(self, extractor: str, detail: str, reason: str = "too_short"):
        self.extractor = extractor
        super().__init__(reason, f"{extractor}: {detail}")


class TorchBackbone(FeatureExtractor):
    """A pretrained torch network as a feature extractor (the standard backbones: I3D, VGGish, ...).

    A subclass declares what it needs on the class and implements :meth:`build` (the network from
    verified weight files) and :meth:`embed` (one clip → arrays, ``self.model`` and ``self.device``
    set, run under ``torch.no_grad()`` with TF32 off). The base class provides:

    * :meth:`load` — builds the model once per process for each (class, parameters, device)
      (later instances reuse it), in fp32;
    * :meth:`extract` / :meth:`extract_batch` (several clips; a subclass overrides
      :meth:`embed_batch` to run them in shared forward passes, default :meth:`embed` per clip;
      outputs must not depend on the batch, and a clip it cannot embed comes back as its
      :class:`FeatureMissing` in place, never raised);
    * :meth:`available` — ``(False, "pip install 'mova-bench[<extra>]'")`` when a module of the
      extra cannot be found, ``(False, "mova-bench weights fetch <name>")`` when a weight file is
      missing (both joined by ``; `` when both are), found without importing the modules (some
      reference packages download at import);
    * :meth:`cache_identity` — the weight-free identity plus the weights' SHA-256, the video needs,
      the audio rate, whether the prompt is used, and the versions of torch, torchvision and the
      extra's packages; never the device or batch size (results are meant to be device- and
      batch-independent up to float rounding; the device is recorded in the evaluation spec).

    Threads: torch's intra-op threads are left as the executor sets them (pool and Ray workers run
    with ``OMP_NUM_THREADS=1``; the ``local`` executor uses torch's default), never set here.
    """

    family: ClassVar[str] = "standard"
    weights: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    video_needs: ClassVar[tuple[Any, ...]] = ()
    audio_rate: ClassVar[int | None] = None
    uses_text: ClassVar[bool] = False
    frame_level: ClassVar[bool] = False
    metric_names: ClassVar[dict[str, str]] = {}
    libraries: ClassVar[tuple[str, ...]] = (*NUMERIC_LIBRARIES, "torch", "torchvision")

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.model: Any = None
        self.device: str | None = None
        #: clips (or windows/frames, as the subclass batches) per forward pass; None = the subclass's default
        self.batch_size: int | None = None
        #: prompt embeddings of text towers (:func:`cached_text_embeddings`)
        self._text_cache: dict[tuple[int, str, str], Any] = {}

    # -- to implement ------------------------------------------------------------------------

    def build(self, paths: dict[str, Path], device: Any) -> Any:
        """The network (a ``torch.nn.Module`` or anything callable) from the verified weight
        files ``paths[name]``, on ``device``."""
        raise NotImplementedError

    def embed(self, clip: DecodedClip) -> dict[str, Any]:
        """Arrays (numpy or torch) for one clip; ``self.model``/``self.device`` are set."""
        raise NotImplementedError

    # -- availability --------------------------------------------------------------------------

    def _missing_fixes(self_or_cls) -> list[str]:
        """The commands that would make this backbone usable (empty when it is). Called on an
        instance it checks that instance's ``weights`` (a parameter may choose them: a CLAP
        checkpoint, the 32 kHz PANNs, I3D's TorchScript file); on the class, the defaults. A
        licence-gated file's fetch carries ``--accept-license``."""
        import importlib.util

        owner = self_or_cls
        fixes: list[str] = []
        for mod in ("torch", *owner.requires):
            try:
                found = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                fixes.append(f"pip install 'mova-bench[{owner.extra or 'all'}]'")
                break
        try:
            api = _weights_api()
        except ImportError:
            api = None
        for name in owner.weights:
            try:
                present = api is not None and api.is_present(name)
            except Exception:  # noqa: BLE001 - an unknown name or unreadable registry: not usable either
                present = False
            if not present:
                try:
                    gated = api is not None and api.get_entry(name).needs_license_acceptance
                except Exception:  # noqa: BLE001 - an unknown name: the fetch will say so
                    gated = False
                fixes.append(f"mova-bench weights fetch {name}" + (" --accept-license" if gated else ""))
        return fixes

    missing_fixes = ClassOrInstanceMethod(_missing_fixes)

    def available(self) -> tuple[bool, str]:
        fixes = self.missing_fixes()
        return (not fixes, "; ".join(fixes))

    # -- identity ------------------------------------------------------------------------------

    def preprocessing(self) -> dict[str, Any]:
        return {
            **super().preprocessing(),
            "video_needs": [n.identity() for n in self.video_needs],
            "audio_rate": self.audio_rate,
            "uses_text": self.uses_text,
            "precision": "fp32, no TF32",
        }

    def weights_identity(self) -> dict[str, str | None]:
        """``{weights name: sha256}`` from the weights registry (the verified file's hash)."""
        api = _weights_api()
        out: dict[str, str | None] = {}
        for name in self.weights:
            # the verified file's own hash: entries without a published hash (VGGish, ...) have no pin
            # to stand for the file, and two different files must never share cached features
            try:
                out[name] = api.verified_sha256(name) if api.is_present(name) else api.get_entry(name).sha256
            except Exception:  # noqa: BLE001 - unknown name / unreadable file: the pin, then nothing
                out[name] = getattr(api.get_entry(name), "sha256", None)
        return out

    def cache_identity(self) -> dict[str, Any]:
        ident = super().cache_identity()
        ident["weights_sha256"] = self.weights_identity()
        libs = dict(ident["libraries"])
        for mod in self.requires:
            for dist in _dists_of(mod) or (mod,):
                libs[dist] = library_version(dist)
        ident["libraries"] = libs
        return ident

    # -- running -------------------------------------------------------------------------------

    def _model_key(self, device: str) -> tuple[Any, ...]:
        import json

        # the weights' hashes too: a re-registered or re-fetched file builds a new model
        return (type(self).__module__, type(self).__qualname__, json.dumps(self.params, sort_keys=True, default=str), device,
                json.dumps(self.weights_identity(), sort_keys=True))

    def load(self, device: str | None = "cpu") -> Any:
        """Build the network on ``device`` once per process (``auto`` resolves as
        :func:`resolve_device`); an unusable backbone raises
        :class:`~mova_bench.errors.MissingDependencyError` naming the fix."""
        from mova_bench.errors import MissingDependencyError

        from mova_bench.errors import MovaBenchError

        dev = resolve_device(device)
        try:
            key = self._model_key(dev)
        except MovaBenchError:  # e.g. a weights name the registry does not know
            key = None
        if key is None or key not in _MODELS:
            fixes = self.missing_fixes()
            if fixes:
                raise MissingDependencyError(f"backbone {self.name!r} is not usable here", fix="; ".join(fixes))
            key = key or self._model_key(dev)
            api = _weights_api()
            paths = {name: Path(api.resolve(name)) for name in self.weights}
            import torch

            with _StrictNumerics():
                model = self.build(paths, torch.device(dev))
                if isinstance(model, torch.nn.Module):
                    model = model.float().to(dev).eval()
            _MODELS[key] = model
            LOAD_COUNTS[key] = LOAD_COUNTS.get(key, 0) + 1
        self.model, self.device = _MODELS[key], dev
        return self.model

    @staticmethod
    def _to_numpy(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for k, v in arrays.items():
            if hasattr(v, "detach"):
                v = v.detach().to("cpu").numpy()
            arr = np.asarray(v)
            out[k] = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
        return out

    def extract(self, clip: DecodedClip) -> dict[str, np.ndarray]:
        if self.model is None:
            self.load(self.device or "cpu")
        with _StrictNumerics():
            return self._to_numpy(self.embed(clip))

    def extract_batch(self, clips: list[DecodedClip]) -> list[dict[str, np.ndarray] | FeatureMissing]:
        """One entry per clip, in order: its arrays (equal to :meth:`extract` of that clip up to float
        rounding), or the :class:`FeatureMissing` saying why this backbone cannot embed it —
        returned, not raised, so the other clips keep their features. Any other error raises for
        the whole call (the analysis then runs the clips one by one, so the error lands on its
        clip). Runs :meth:`embed_batch` under the same numerics as :meth:`extract`."""
        clips = list(clips)
        if self.model is None:
            self.load(self.device or "cpu")
        with _StrictNumerics():
            outs = list(self.embed_batch(clips))
        if len(outs) != len(clips):
            raise RuntimeError(f"{self.name}: embed_batch returned {len(outs)} results for {len(clips)} clips")
        return [o if isinstance(o, FeatureMissing) else self._to_numpy(o) for o in outs]

    def embed_batch(self, clips: list[DecodedClip]) -> list[dict[str, Any] | FeatureMissing]:
        """Arrays for several clips (``self.model`` and ``self.device`` set), one entry per clip in
        order, a :class:`FeatureMissing` in place of a clip this backbone cannot embed. Default:
        :meth:`embed` per clip; a subclass batches where its network allows (several clips per
        forward pass, ``self.batch_size`` bounding what one forward holds, in the subclass's unit)."""
        out: list[dict[str, Any] | FeatureMissing] = []
        for clip in clips:
            try:
                out.append(self.embed(clip))
            except FeatureMissing as exc:
                out.append(exc)
        return out


def load_tensors(path: Any) -> Any:
    """``torch.load`` of a checkpoint with ``weights_only=True`` (tensors and plain containers, no
    code runs), memory-mapped where the file allows it (a multi-GB checkpoint is not read whole;
    the legacy non-zip format cannot be mapped and is read normally). Errors propagate: callers say
    which checkpoint failed and how to fix it."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(str(path), map_location="cpu", weights_only=True)


#: prompts whose text embeddings a backbone keeps (per model and device)
TEXT_CACHE_SIZE = 256


def cached_text_embeddings(owner: Any, texts: list[str], embed: Any) -> list[Any]:
    """Per text of ``texts``, ``embed``'s value for it, cached on ``owner`` per (model, device,
    text) (a rebuilt model, other weights or device, embeds again). The texts not cached yet go
    through one ``embed(list_of_texts)`` call, which returns one value per text (rows of a text
    tower are independent: each equals its own pass). At most :data:`TEXT_CACHE_SIZE` texts are kept."""
    cache = owner._text_cache

    def key(t: str) -> tuple[int, str, str]:
        return (id(owner.model), str(owner.device), t)

    todo = [t for t in dict.fromkeys(texts) if key(t) not in cache]
    if todo and len(cache) + len(todo) > TEXT_CACHE_SIZE:
        cache.clear()
        todo = list(dict.fromkeys(texts))
    if todo:
        for t, value in zip(todo, embed(todo), strict=True):
            cache[key(t)] = value
    return [cache[key(t)] for t in texts]


def forward_in_slices(inputs: list[Any], size: int | None, forward: Any) -> list[Any]:
    """``forward`` over the concatenation (dim 0) of the per-clip tensors ``inputs``, ``size`` rows at
    most per call (None: all at once), split back into one output per input, in order.

    Rows are independent in the backbones that use this (eval-mode networks, no cross-sample
    statistics), so each clip's output equals its own forward up to float rounding."""
    import torch

    if not inputs:
        return []
    counts = [int(x.shape[0]) for x in inputs]
    rows = torch.cat(inputs) if len(inputs) > 1 else inputs[0]
    if rows.shape[0] == 0:
        return [rows[:0] for _ in inputs]
    step = max(1, int(size)) if size else max(1, rows.shape[0])
    outs = torch.cat([forward(rows[i : i + step]) for i in range(0, rows.shape[0], step)])
    return list(torch.split(outs, counts))
