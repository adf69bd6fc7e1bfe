"""Per-clip analysis: decode a clip once and fan it out to every feature extractor (cached)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mova_bench.cache import FeatureCache
from mova_bench.features.base import FeatureExtractor
from mova_bench.media import decode
from mova_bench.registry import features as feature_registry


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def build(self) -> FeatureExtractor:
        return feature_registry.get(self.name)(**dict(self.params))


@dataclass(frozen=True)
class AnalysisTask:
    clip_id: str
    path: str
    content_hash: str
    extractors: tuple[ExtractorSpec, ...]
    cache_root: str | None = None
    use_cache: bool = True


@dataclass
class AnalysisResult:
    clip_id: str
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    cache_hits: int = 0
    decoded: bool = False


_extractor_cache: dict[ExtractorSpec, FeatureExtractor] = {}


def _extractor(spec: ExtractorSpec) -> FeatureExtractor:
    if spec not in _extractor_cache:
        _extractor_cache[spec] = spec.build()
    return _extractor_cache[spec]


def analyse_clip(task: AnalysisTask) -> AnalysisResult:
    """Cached features for one clip; the clip is decoded at most once, and only on a cache miss."""
    cache = FeatureCache(task.cache_root, enabled=task.use_cache)
    out = AnalysisResult(task.clip_id)
    missing: list[FeatureExtractor] = []
    for spec in task.extractors:
        ex = _extractor(spec)
        hit = cache.get(ex.cache_identity(), task.content_hash)
        if hit is not None:
            out.features[spec.name] = hit
            out.cache_hits += 1
        else:
            missing.append(ex)
    if missing:
        clip = decode(task.path, content_hash=task.content_hash)
        out.decoded = True
        for ex in missing:
            arrays = {k: np.asarray(v) for k, v in ex.extract(clip).items()}
            bad = [k for k, v in arrays.items() if v.dtype == object]
            if bad:
                raise TypeError(f"extractor {ex.name!r} returned object arrays for {bad}; use numeric or unicode arrays")
            cache.put(ex.cache_identity(), task.content_hash, arrays)
            out.features[ex.name] = arrays
    return out
