"""A video generator followed by a video-to-audio model: ``--model cascade --set video=CARD --set audio=CARD``.

The classic baseline for joint audio-video generators (e.g. Wan2.x then MMAudio). Each stage is
a model card (a name from ``mova-bench list models`` or a card .yaml); its parameters are set with
the stage's prefix::

    mova-bench run --model cascade --suite impacts_set \\
      --set video=command --set 'video.argv=["python","wan.py","--prompt","{prompt}","--out","{out}"]' \\
      --set audio=command --set 'audio.argv=["python","mmaudio.py","--video","{video}","--prompt","{prompt}","--out","{out}"]'

Stage 1 makes the frames (its audio, if any, is discarded); they are written to a temporary MP4
without audio and handed to stage 2, which must be able to add audio to a video: today the
``command`` adapter with ``{video}`` in its argv (any adapter with a ``generate_audio(request,
video_path)`` method works). The clip keeps stage 1's frames and stage 2's audio (its own sample
rate, e.g. MMAudio's 16/44.1 kHz); frames that stage 2 wrote are ignored. The clip's ``info``
records both stages (``cascade.video`` / ``cascade.audio``: card, parameters, what each returned)
and the usual audio checks. Both stages' ``check_available`` and ``validate_request`` run before
any work; the request geometry comes from the cascade's card (or the suite).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from mova_bench.errors import ConfigError, MediaError, MovaBenchError
from mova_bench.generators.audio_check import finish_clip
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator
from mova_bench.generators.common import failure

STAGES = ("video", "audio")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    try:
        return v.item()
    except AttributeError:
        return str(v)


class CascadeGenerator(Generator):
    name = "cascade"
    params_schema = {"video": "", "audio": ""}

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        defaults = dict(card_defaults or {})
        staged: dict[str, dict[str, Any]] = {s: {} for s in STAGES}
        for src in (defaults, params):  # later (--set) wins over the card
            for key in [k for k in src if "." in k]:
                stage, _, sub = key.partition(".")
                if stage not in STAGES or not sub:
                    raise ConfigError(f"cascade parameter {key!r}: stage parameters are video.KEY or audio.KEY "
                                      "(e.g. --set video.argv=... --set audio.timeout_s=600)")
                staged[stage][sub] = src.pop(key)
            for stage in STAGES:  # a card may also give stage parameters as a mapping: video_params: {...}
                nested = src.pop(f"{stage}_params", None)
                if isinstance(nested, dict):
                    staged[stage] = {**nested, **staged[stage]}
        super().__init__(card_defaults=defaults, card=card, **params)
        self.stages: dict[str, Any] = {}
        self.stage_cards: dict[str, Any] = {}
        for stage in STAGES:
            name = str(self.params[stage] or "").strip()
            if name:
                self._build_stage(stage, name, staged[stage])
            elif staged[stage]:
                raise ConfigError(f"cascade: {stage}.* parameters given but no --set {stage}=CARD")
        for stage in STAGES:  # recorded so the run spec (and folder) changes with them
            for k, v in sorted(staged[stage].items()):
                self.params[f"{stage}.{k}"] = self.stages[stage].params.get(k, v) if stage in self.stages else v

    def _build_stage(self, stage: str, name: str, params: dict[str, Any]) -> None:
        from mova_bench.cards import load_card

        card = load_card(name)
        cls = card.adapter_class()
        if isinstance(cls, type) and issubclass(cls, CascadeGenerator):
            raise ConfigError(f"cascade: the {stage} stage {name!r} is itself a cascade; give a single model")
        try:
            gen = cls(card_defaults=card.defaults, card=card, **params)
        except ConfigError as exc:
            raise ConfigError(f"cascade {stage} stage ({card.name}): {exc}", fix=exc.fix) from None
        if hasattr(gen, "role"):
            gen.role = stage
        if stage == "audio" and not callable(getattr(gen, "generate_audio", None)):
            raise ConfigError(f"cascade: model {card.name!r} cannot add audio to a video (it has no generate_audio). "
                              "Use --set audio=command with a video-to-audio command whose argv contains {video}")
        self.stages[stage] = gen
        self.stage_cards[stage] = card

    def check_available(self) -> None:
        missing = [s for s in STAGES if s not in self.stages]
        if missing:
            raise ConfigError(f"model 'cascade' needs both stages: --set video=CARD --set audio=CARD (missing: "
                              f"{', '.join(missing)}). E.g. --set video=command --set video.argv='[...]' --set audio=command "
                              "--set audio.argv='[\"python\",\"v2a.py\",\"--video\",\"{video}\",\"--out\",\"{out}\"]'")
        for stage in STAGES:
            try:
                self.stages[stage].check_available()
            except ConfigError as exc:
                raise ConfigError(f"cascade {stage} stage ({self.stage_cards[stage].name}): {exc}", fix=exc.fix) from None
            except Exception as exc:
                if hasattr(exc, "args") and exc.args:
                    exc.args = (f"cascade {stage} stage ({self.stage_cards[stage].name}): {exc.args[0]}", *exc.args[1:])
                raise

    def validate_request(self, request: ClipRequest) -> None:
        for stage in STAGES:
            if stage in self.stages:
                self.stages[stage].validate_request(request)

    def load(self) -> None:
        for stage in STAGES:
            if stage in self.stages:
                self.stages[stage].load()

    @contextlib.contextmanager
    def _stage(self, stage: str):
        """Failures of a stage name the stage (a MediaError keeps its reason)."""
        where = f"{stage} stage ({self.stage_cards[stage].name})"
        try:
            yield
        except MediaError as exc:
            raise MediaError(exc.reason, f"{where}: {exc.detail}", exc.path) from None
        except MovaBenchError as exc:
            new = type(exc)(f"{where}: {exc.args[0] if exc.args else exc}", fix=exc.fix)
            if hasattr(exc, "reason"):
                new.reason = exc.reason
            raise new from None
        except Exception as exc:  # noqa: BLE001 - re-raised with the stage named
            raise failure("error", f"{where}: {type(exc).__name__}: {exc}") from exc

    def generate(self, request: ClipRequest) -> GeneratedClip:
        from mova_bench.generators.clipfile import write_video_only

        if any(s not in self.stages for s in STAGES):
            self.check_available()
        vgen, agen = self.stages["video"], self.stages["audio"]
        t0 = time.monotonic()
        with self._stage("video"):
            first = vgen.generate(request)
        t_video = time.monotonic() - t0
        frames = first.video
        video_info = dict(first.info)
        if getattr(first, "audio", None) is not None and len(first.audio) and getattr(vgen, "role", None) != "video":
            video_info["video_stage_audio_discarded"] = True
        with tempfile.TemporaryDirectory(prefix="mova-bench-cascade-") as tmp:
            vpath = Path(tmp) / "video.mp4"
            write_video_only(vpath, frames, first.fps)
            t1 = time.monotonic()
            with self._stage("audio"):
                second, audio_info = agen.generate_audio(request, str(vpath))
            t_audio = time.monotonic() - t1
        audio_info = dict(audio_info)
        if second.video.shape[0] != frames.shape[0]:
            audio_info["frames_returned_ignored"] = int(second.video.shape[0])
        info = {
            "first_frame_source": video_info.pop("first_frame_source", "suite" if request.first_frame else None),
            "source_audio_codec": audio_info.get("source_audio_codec"),
            "cascade": _jsonable({
                "video": {"model": self.stage_cards["video"].name, "params": vgen.params, "seconds": round(t_video, 3),
                          "frames": int(frames.shape[0]), "fps": float(first.fps), "info": video_info},
                "audio": {"model": self.stage_cards["audio"].name, "params": agen.params, "seconds": round(t_audio, 3),
                          "sample_rate": int(second.sample_rate), "info": audio_info},
            }),
        }
        return finish_clip(request, frames, second.audio, first.fps, second.sample_rate, info)


__all__ = ["CascadeGenerator"]
