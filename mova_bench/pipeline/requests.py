"""Stage 1: a suite and a model card become clip requests, each with its seed and geometry."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mova_bench.cards import ModelCard
from mova_bench.errors import ConfigError
from mova_bench.generators.base import ClipRequest
from mova_bench.suites import Suite

#: reference renders use seeds from here up, disjoint from every evaluation seed (< 2**40)
REFERENCE_SEED_BASE = 2**40


@dataclass(frozen=True)
class Geometry:
    """The format of a set of clips: what a procedural reference must match to be comparable."""

    duration_s: float
    fps: float
    sample_rate: int
    width: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_set(values: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` → dict; values stay strings, the generator coerces them by its schema."""
    out: dict[str, Any] = {}
    for item in values or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set av_offset_ms=80")
        k, _, v = item.partition("=")
        out[k.strip()] = v.strip()
    return out


def generation_geometry(suite: Suite, card: ModelCard | None) -> Geometry:
    """The model card's native format where it has one, else the suite's defaults."""
    d = suite.defaults
    g = card.generation if card is not None else None
    fps = g.fps if g and g.fps else d.fps
    duration = d.duration_s
    if g and g.num_frames:
        duration = g.num_frames / fps
    elif g and g.duration_s:
        duration = g.duration_s
    return Geometry(
        duration_s=float(duration), fps=float(fps),
        sample_rate=int(g.sample_rate if g and g.sample_rate else d.sample_rate),
        width=int(g.width if g and g.width else d.width), height=int(g.height if g and g.height else d.height),
    )


def build_requests(suite: Suite, card: ModelCard | None, *, seed: int, samples_per_prompt: int,
                   seed_offset: int = 0, geometry: Geometry | None = None) -> list[ClipRequest]:
    geo = geometry or generation_geometry(suite, card)
    requests = []
    for pi, p in enumerate(suite.prompts):
        for s in range(samples_per_prompt):
            requests.append(ClipRequest(
                clip_id=f"{p.id}__s{s}", prompt_id=p.id, prompt_text=p.text,
                seed=int(seed_offset + seed * 100_003 + pi * 1_000 + s), sample_index=s,
                duration_s=geo.duration_s, fps=geo.fps, sample_rate=geo.sample_rate, width=geo.width, height=geo.height,
                first_frame=p.first_frame, tags=tuple(p.tags),
                expected_offset_ms=tuple(p.expected_offset_ms) if p.expected_offset_ms else None,
            ))
    return requests


def check_counts(seed: int, samples_per_prompt: int) -> None:
    if not 0 <= seed < 10**6:
        raise ConfigError(f"--seed {seed}: expected an integer in [0, 1000000)")
    if not 1 <= samples_per_prompt <= 1000:
        raise ConfigError(f"--samples-per-prompt {samples_per_prompt}: expected an integer in 1..1000")
