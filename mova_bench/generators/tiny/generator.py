"""The ``mova-tiny`` generator: sample latents with numpy, render them with the procedural world.

Parameters (``--set KEY=VALUE``; defaults in ``models/mova-tiny.yaml``)
    ``checkpoint``      ``final`` | ``step-500`` (the committed checkpoints, in
                        ``mova_bench/generators/tiny/checkpoints/``) or a path to a
                        ``.safetensors`` file written by ``python -m mova_bench.generators.tiny.train``.
    ``guidance_scale``  classifier-free guidance ``s`` (1 = the conditional model alone, 0 = the
                        unconditional one).
    ``steps``           Euler steps of the flow sampler.
    ``sha256_<name>``   the expected SHA-256 of the named committed checkpoint (the card holds
                        them); a file that does not match is refused before any work (exit 2).

Determinism: the initial noise is ``np.random.default_rng([seed, crc32(prompt), 7001])``; the
sampler is float64 numpy; the renderer draws its details from the world's own seeded streams.
Same seed, prompt, parameters and machine → the same clip, byte for byte. The model generates
a 4 s canvas (the card fixes ``duration_s: 4``); any frame size, frame rate and sample rate.

``GeneratedClip.info``: ``learned: true``, the checkpoint (name, SHA-256, training step), the
sampler settings, what was decoded (scene, layers, each tower's events; see
``latent.Decoded.summary``) and the time spent sampling and rendering.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.errors import ConfigError, MissingDependencyError
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator, geometry_problems

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
NOISE_STREAM = 7001
AUDIO_PEAK = 0.95
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_cache: dict[tuple[str, str], Any] = {}


def committed_checkpoints() -> list[str]:
    return sorted(p.name[: -len(".safetensors")] for p in CHECKPOINT_DIR.glob("*.safetensors"))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(path: Path, sha: str | None = None):
    """(TinyMovaNumpy, metadata) of a checkpoint file, cached per path and content hash."""
    from mova_bench.generators.tiny import safetensors_io
    from mova_bench.generators.tiny.model_np import Config, TinyMovaNumpy

    sha = sha or file_sha256(path)
    key = (str(path), sha)
    if key not in _cache:
        tensors, meta = safetensors_io.load(path)
        if meta.get("format") != "mova-tiny" or "config" not in meta:
            raise ConfigError(f"{path} is not a mova-tiny checkpoint (no 'format: mova-tiny' metadata)",
                              fix="pass a file written by python -m mova_bench.generators.tiny.train")
        _cache[key] = (TinyMovaNumpy(tensors, Config.from_json(meta["config"])), meta)
    return _cache[key]


class MovaTinyGenerator(Generator):
    """A small learned joint video+audio flow model (see :mod:`mova_bench.generators.tiny`)."""

    name = "mova-tiny"
    params_schema = {"checkpoint": "final", "guidance_scale": 1.0, "steps": 8}

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        super().__init__(card_defaults, card, **params)
        s = float(self.params["guidance_scale"])
        if not math.isfinite(s) or s < 0:
            raise ConfigError(f"parameter guidance_scale={self.params['guidance_scale']!r} must be a finite number >= 0")
        if not 1 <= int(self.params["steps"]) <= 1000:
            raise ConfigError(f"parameter steps={self.params['steps']!r} must be an integer in 1..1000")
        if not str(self.params["checkpoint"]).strip():
            raise ConfigError("parameter checkpoint is empty: name a committed checkpoint "
                              f"({', '.join(committed_checkpoints()) or 'none found'}) or a .safetensors path")
        self._model = None
        self._meta: dict[str, str] = {}
        self._sha: str | None = None

    # -- the checkpoint ----------------------------------------------------------------------
    @property
    def checkpoint_name(self) -> str:
        return str(self.params["checkpoint"]).strip()

    def checkpoint_path(self) -> Path:
        name = self.checkpoint_name
        if _NAME.match(name) and not name.endswith(".safetensors"):
            return CHECKPOINT_DIR / f"{name}.safetensors"
        return Path(name).expanduser()

    def expected_sha256(self) -> str | None:
        v = self.params.get(f"sha256_{self.checkpoint_name}")
        return str(v).strip().lower() if v else None

    def check_available(self) -> None:
        path = self.checkpoint_path()
        if not path.is_file():
            raise MissingDependencyError(
                f"mova-tiny checkpoint {self.checkpoint_name!r} not found ({path})",
                fix=f"--set checkpoint=NAME with one of: {', '.join(committed_checkpoints()) or '(none committed)'}, "
                    "or a path to a .safetensors file; retrain with python -m mova_bench.generators.tiny.train")
        sha = file_sha256(path)
        want = self.expected_sha256()
        if want and sha != want:
            raise ConfigError(
                f"mova-tiny checkpoint {path} has SHA-256 {sha}, the model card expects {want}",
                fix="restore the committed file (git checkout -- <file>), or, after retraining on purpose, "
                    f"put the new SHA-256 in the card's sha256_{self.checkpoint_name}")
        self._sha = sha

    def load(self) -> None:
        if self._model is None:
            self.check_available()
            self._model, self._meta = load_model(self.checkpoint_path(), self._sha)

    # -- requests ------------------------------------------------------------------------------
    def validate_request(self, request: ClipRequest) -> None:
        from mova_bench.generators.tiny.latent import CANVAS_S

        problems = []
        if abs(request.duration_s - CANVAS_S) > 1e-6:
            problems.append(f"duration_s={request.duration_s} (mova-tiny generates {CANVAS_S:g} s clips; "
                            "its model card sets generation.duration_s: 4)")
        problems += geometry_problems(request)
        if problems:
            raise ConfigError("invalid request for mova-tiny: " + "; ".join(problems))

    def sample_latents(self, prompt: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from mova_bench.generators.tiny import latent as L
        from mova_bench.generators.tiny.model_np import sample
        from mova_bench.generators.world import seed_words

        self.load()
        rng = np.random.default_rng([*seed_words(seed, prompt), NOISE_STREAM])
        noise_v = rng.standard_normal(L.VIDEO_DIM)
        noise_a = rng.standard_normal(L.AUDIO_DIM)
        return sample(self._model, prompt, noise_v, noise_a, steps=int(self.params["steps"]),
                      guidance_scale=float(self.params["guidance_scale"]))

    def generate(self, request: ClipRequest) -> GeneratedClip:
        from mova_bench.generators.tiny import latent as L
        from mova_bench.generators.world import WORLD_VERSION, Geometry

        self.validate_request(request)
        g = Geometry(
            n_frames=max(1, int(round(request.duration_s * request.fps))),
            height=int(request.height), width=int(request.width), fps=float(request.fps),
            sample_rate=int(request.sample_rate),
            n_samples=max(1, int(round(request.duration_s * request.sample_rate))),
            duration_s=float(request.duration_s),
        )
        t0 = time.perf_counter()
        zv, za = self.sample_latents(request.prompt_text, request.seed)
        t1 = time.perf_counter()
        decoded = L.decode(zv, za, g)
        video, audio = L.LatentWorld(request.prompt_text, request.seed, g, decoded).render()
        audio = np.clip(audio, -AUDIO_PEAK, AUDIO_PEAK).astype(np.float32)
        t2 = time.perf_counter()
        info: dict[str, Any] = {
            **decoded.summary(),
            "learned": True,
            "checkpoint": self.checkpoint_name,
            "checkpoint_sha256": self._sha,
            "checkpoint_step": int(self._meta.get("step", "0") or 0),
            "guidance_scale": float(self.params["guidance_scale"]),
            "steps": int(self.params["steps"]),
            "world_version": WORLD_VERSION,
            "sample_s": round(t1 - t0, 4),
            "render_s": round(t2 - t1, 4),
        }
        if request.first_frame:
            info["first_frame"] = "ignored"
        return GeneratedClip(video=video, audio=audio, fps=float(request.fps), sample_rate=int(request.sample_rate), info=info)
