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
