"""The ``procedural`` generator: an oracle world of sound-producing events, with defect knobs.

It renders a prompt into video and audio whose events are aligned *by construction*, so every
metric of the suite can be checked against a known truth: the sync estimator must recover an
injected ``av_offset_ms``, Fréchet distances must grow with noise, the real-vs-generated detector
must separate degraded clips. It runs anywhere (numpy + OpenCV, no weights, no network) and is the
default model of ``mova-bench run --model procedural --suite thunderstorm_set``. It is not a
learned model and must never be reported as one.

The world (details in :mod:`mova_bench.generators.world`)
    Keywords of the prompt pick a scene: lightning/thunder, rain, drums, a bouncing ball, claps,
    footsteps, piano notes, breaking glass, or onset-free ambience (wind, hum, ocean, room tone,
    ambience); unknown text gives a default impact scene (``scene="fallback"``). Events sit on
    the video frame grid, >= 300 ms apart, 3–8 per 4 s, none in the first 0.3 s or the last
    0.5 s. At its frame ``k`` each event shows a visual transient (flash, sudden appearance, or
    the contact frame of a motion); its sound (attack <= 5 ms) starts at
    ``k / fps + av_offset_ms / 1000 + physical delay + jitter``. The physical delay is zero except
    for thunder: ``distance / 343 m/s`` with the distance from the prompt ("near" 10–40 m,
    "distant" 300–500 m, otherwise 100–250 m).

Knobs (``--set KEY=VALUE``; the defaults give the clean world)
    ``av_offset_ms`` (0.0)   shift of every sound, ms; positive = audio late.
    ``jitter_ms`` (0.0)      per-event gaussian std of the sound onset, ms.
    ``audio_noise`` (0.0)    white noise std, relative to full scale (1.0).
    ``video_noise`` (0.0)    gaussian pixel noise std as a fraction of 255.
    ``blur`` (0.0)           gaussian blur sigma in pixels, every frame.
    ``freeze_video`` (False) every frame equals the first frame (applied last).
    ``silent_audio`` (False) the audio is all zeros (applied last).
    ``wrong_event`` (False)  each event sounds like a different class than the one shown
                             (same onset times; ambience gets another ambience bed).
    ``flicker`` (0.0)        amplitude of a random per-frame global brightness gain,
                             ``1 + flicker * U(-1, 1)``.

Determinism: everything derives from ``np.random.default_rng([seed, crc32(prompt), stream])``.
The scene, the event plan and the clean renders never depend on the knobs (each knob has its
own random stream), so a sweep over one knob changes only what that knob changes.

``GeneratedClip.info`` (recorded in the manifest; JSON-serialisable): ``scene``, ``layers``,
``events`` (``class``, ``frame``, ``video_t``, ``audio_t`` and, with ``wrong_event``,
``sound_class``), ``true_offset_ms``, ``physical_delay_ms``, ``distance_m`` (thunder), ``knobs``
(the non-default ones), ``world_version`` and ``learned: false``.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from mova_bench.errors import ConfigError
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator, geometry_problems
from mova_bench.generators.world import (
    AMBIENT_CLASSES,
    WORLD_VERSION,
    WRONG_SOUND,
    Geometry,
    World,
    parse_prompt,
)

__all__ = ["ProceduralGenerator", "parse_prompt", "World", "AUDIO_PEAK"]

#: the audio never exceeds this absolute value
AUDIO_PEAK = 0.95

# knob random streams (see World for the world's own streams)
_STREAM_JITTER = 101
_STREAM_FLICKER = 102
_STREAM_VIDEO_NOISE = 103
_STREAM_AUDIO_NOISE = 104


class ProceduralGenerator(Generator):
    """Oracle renderer of the procedural world (see the module docstring)."""

    name = "procedural"
    params_schema = {
        "av_offset_ms": 0.0,
        "jitter_ms": 0.0,
        "audio_noise": 0.0,
        "video_noise": 0.0,
        "blur": 0.0,
        "freeze_video": False,
        "silent_audio": False,
        "wrong_event": False,
        "flicker": 0.0,
    }

    def __init__(self, card_defaults: dict[str, Any] | None = None, **params: Any):
        super().__init__(card_defaults, **params)
        for key in ("jitter_ms", "audio_noise", "video_noise", "blur", "flicker"):
            v = float(self.params[key])
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"parameter {key}={self.params[key]!r} must be a finite number >= 0")
        if not math.isfinite(float(self.params["av_offset_ms"])):
            raise ConfigError(f"parameter av_offset_ms={self.params['av_offset_ms']!r} must be finite")

    def validate_request(self, request: ClipRequest) -> None:
        problems = []
        if not request.duration_s > 0:
            problems.append(f"duration_s={request.duration_s} must be > 0")
        problems += geometry_problems(request)
        if problems:
            raise ConfigError("invalid request for the procedural world: " + "; ".join(problems))

    def knobs(self) -> dict[str, Any]:
        """The knobs that differ from their defaults."""
        return {k: v for k, v in self.params.items() if k in self.params_schema and v != self.params_schema[k]}

    def generate(self, request: ClipRequest) -> GeneratedClip:
        self.validate_request(request)
        p = self.params
        g = Geometry(
            n_frames=max(1, int(round(request.duration_s * request.fps))),
            height=int(request.height),
            width=int(request.width),
            fps=float(request.fps),
            sample_rate=int(request.sample_rate),
            n_samples=max(1, int(round(request.duration_s * request.sample_rate))),
            duration_s=float(request.duration_s),
        )
        world = World(request.prompt_text, request.seed, g)
        spec = world.spec

        # ---- audio: onset times, sound classes, mix, degradations
        offset_s = float(p["av_offset_ms"]) / 1000.0
        n_ev = len(world.events)
        jitter = np.zeros(n_ev)
        if float(p["jitter_ms"]) > 0 and n_ev:
            jitter = world.rng(_STREAM_JITTER).normal(0.0, float(p["jitter_ms"]) / 1000.0, n_ev)
        audio_times = [e.video_t + offset_s + (world.delay_s if e.cls == "thunder" else 0.0) + float(j)
                       for e, j in zip(world.events, jitter)]
        wrong = bool(p["wrong_event"])
        sound_classes = [WRONG_SOUND[e.cls] if wrong else e.cls for e in world.events]
        bed_class = WRONG_SOUND[spec.primary] if wrong and spec.primary in AMBIENT_CLASSES else None
        if bool(p["silent_audio"]):
            audio = np.zeros(g.n_samples, np.float32)
        else:
            audio = world.render_audio(audio_times, sound_classes, bed_class)
            if float(p["audio_noise"]) > 0:
                audio = audio + float(p["audio_noise"]) * world.rng(_STREAM_AUDIO_NOISE).standard_normal(g.n_samples, dtype=np.float32)
            audio = np.clip(audio, -AUDIO_PEAK, AUDIO_PEAK).astype(np.float32)

        # ---- video: clean render, then flicker, blur, noise, freeze
        video = world.render_video()
        if float(p["flicker"]) > 0:
            gains = 1.0 + float(p["flicker"]) * world.rng(_STREAM_FLICKER).uniform(-1.0, 1.0, g.n_frames)
            for k in range(g.n_frames):
                video[k] = cv2.convertScaleAbs(video[k], alpha=float(gains[k]))
        if float(p["blur"]) > 0:
            for k in range(g.n_frames):
                video[k] = cv2.GaussianBlur(video[k], (0, 0), float(p["blur"]), borderType=cv2.BORDER_REFLECT)
        if float(p["video_noise"]) > 0:
            nrng = world.rng(_STREAM_VIDEO_NOISE)
            std = float(p["video_noise"]) * 255.0
            for k in range(g.n_frames):  # frame by frame keeps peak memory small
                noisy = video[k].astype(np.float32) + nrng.standard_normal(video[k].shape, dtype=np.float32) * std
                video[k] = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
        if bool(p["freeze_video"]):
            video[1:] = video[0]

        events = []
        for e, t_a, sc in zip(world.events, audio_times, sound_classes):
            row = {"class": e.cls, "frame": int(e.frame), "video_t": round(float(e.video_t), 6), "audio_t": round(float(t_a), 6)}
            if wrong:
                row["sound_class"] = sc
            events.append(row)
        info: dict[str, Any] = {
            "scene": spec.scene,
            "layers": list(spec.layers),
            "events": events,
            "true_offset_ms": float(p["av_offset_ms"]),
            "physical_delay_ms": round(world.delay_s * 1000.0, 6),
            "knobs": {k: (bool(v) if isinstance(v, bool) else float(v)) for k, v in self.knobs().items()},
            "world_version": WORLD_VERSION,
            "learned": False,
        }
        if world.distance_m is not None:
            info["distance_m"] = round(world.distance_m, 2)
        if request.first_frame:
            info["first_frame"] = "ignored"
        return GeneratedClip(video=video, audio=audio, fps=float(request.fps), sample_rate=int(request.sample_rate), info=info)
