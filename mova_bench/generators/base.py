"""The generator extension point: one clip request in, one video+audio clip out.

Adapters subclass :class:`Generator`, keep the constructor cheap (load weights in ``load``), and
register under a name (``mova_bench.registry.generators``) or through the ``mova_bench.plugins``
entry-point group. The harness writes the returned arrays to MP4 itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class ClipRequest:
    clip_id: str
    prompt_id: str
    prompt_text: str
    seed: int
    sample_index: int
    duration_s: float
    fps: float
    sample_rate: int
    width: int
    height: int
    first_frame: str | None = None
    tags: tuple[str, ...] = ()
    expected_offset_ms: tuple[float, float] | None = None


def geometry_problems(request: ClipRequest) -> list[str]:
    """What is wrong with a request's frame rate, sample rate and size (empty when nothing): the
    checks every generator that renders at the requested geometry shares."""
    problems = []
    if not request.fps > 0:
        problems.append(f"fps={request.fps} must be > 0")
    if request.sample_rate < 1000:
        problems.append(f"sample_rate={request.sample_rate} must be >= 1000")
    if request.width < 1 or request.height < 1:
        problems.append(f"size {request.width}x{request.height} must be at least 1x1")
    return problems


@dataclass
class GeneratedClip:
    video: np.ndarray  # (T, H, W, 3) uint8
    audio: np.ndarray  # (N,) or (N, C) float32 in [-1, 1]
    fps: float
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)  # recorded in the manifest row
    #: the model's own encoded file (MP4-family bytes, with video and audio) when it made one: the run
    #: folder stores these bytes as the clip instead of re-encoding ``video``/``audio`` (a lossy second
    #: generation); ``video``/``audio`` are its decoded content, used for the checks and the manifest
    source_data: bytes | None = None


class Generator:
    name: ClassVar[str] = ""
    #: parameters a user may set with ``--set KEY=VALUE`` and their defaults
    params_schema: ClassVar[dict[str, Any]] = {}

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        from mova_bench.errors import ConfigError

        self.card = card
        allowed = {**self.params_schema, **(card_defaults or {})}
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(
                f"model {self.name!r} has no parameter {', '.join(repr(u) for u in unknown)}. "
                f"Valid parameters: {', '.join(sorted(allowed)) or '(none)'}. Use --set KEY=VALUE with one of them."
            )
        merged = {**allowed, **params}
        # the schema's default sets a parameter's type; a card's `timeout_s: 60` must not make it an int
        typed = {k: self.params_schema.get(k, allowed[k]) for k in allowed}
        typed = {k: (allowed[k] if typed[k] is None else typed[k]) for k in typed}
        self.params = {k: self._coerce(k, v, typed[k]) for k, v in merged.items()}

    @staticmethod
    def _coerce(key: str, value: Any, default: Any) -> Any:
        from mova_bench.errors import ConfigError

        if default is None or value is None:
            return value
        if isinstance(value, type(default)) and isinstance(value, bool) == isinstance(default, bool):
            return value
        try:
            if isinstance(default, bool):
                if isinstance(value, str):
                    if value.lower() in ("1", "true", "yes", "on"):
                        return True
                    if value.lower() in ("0", "false", "no", "off"):
                        return False
                    raise ValueError
                return bool(value)
            if isinstance(default, int):
                return int(value)
            if isinstance(default, float):
                return float(value)
            return type(default)(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"parameter {key}={value!r} is not a valid {type(default).__name__} (default {default!r})"
            ) from None

    def check_available(self) -> None:
        """Raise MissingDependencyError (with what to install) before any work starts."""

    def validate_request(self, request: ClipRequest) -> None:
        """Raise ConfigError for a request this generator can't satisfy, before any GPU work."""

    def load(self) -> None:
        """Load weights (called once per process before the first ``generate``)."""

    def generate(self, request: ClipRequest) -> GeneratedClip:
        raise NotImplementedError
