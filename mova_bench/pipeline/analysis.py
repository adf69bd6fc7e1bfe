"""Stage 5: decode each clip once and fan it out to every feature extractor (cached)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mova_bench.cache import FeatureCache
from mova_bench.executors import TaskFailure
from mova_bench.features.base import FeatureExtractor
from mova_bench.media import decode
from mova_bench.metrics.base import FeatureSet
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


def extractor_specs(metric_objs: list[Any], suite: Any | None) -> tuple[ExtractorSpec, ...]:
    """The extractors the chosen metrics need, with the suite's analysis parameters."""
    names: list[str] = []
    for m in metric_objs:
        for r in m.required_extractors():
            if r and r not in names and r in feature_registry:
                names.append(r)
    params = {"sync_dsp": {"max_lag_ms": float(suite.defaults.sync_max_lag_ms)}} if suite is not None else {}
    return tuple(ExtractorSpec(n, tuple(sorted(params.get(n, {}).items()))) for n in names)


def analyse_set(rows: list[dict[str, Any]], specs: tuple[ExtractorSpec, ...], executor, *, desc: str,
                use_cache: bool = True) -> tuple[FeatureSet, dict[str, Any]]:
    """Features for every ok clip of ``rows``; a clip that fails analysis is marked failed in ``rows``
    (pass copies: the generation manifest is not the place for an evaluation's failures)."""
    fs = FeatureSet(clip_ids=[], features={s.name: {} for s in specs})
    stats = {"cache_hits": 0, "decoded": 0}
    tasks = [AnalysisTask(r["clip_id"], r["path"], r["content_hash"], specs, None, use_cache)
             for r in rows if r.get("status") == "ok"]
    results: dict[str, Any] = {}
    for task, res in executor.map(analyse_clip, tasks, desc=desc):
        results[task.clip_id] = res
    for r in rows:  # keep manifest order, whatever order tasks finished in
        res = results.get(r["clip_id"])
        if res is None:
            continue
        if isinstance(res, TaskFailure):
            r.update(status="failed", error=res.error, reason=res.reason)
            continue
        fs.clip_ids.append(r["clip_id"])
        fs.meta[r["clip_id"]] = r
        for name, arrays in res.features.items():
            fs.features.setdefault(name, {})[r["clip_id"]] = arrays
        stats["cache_hits"] += res.cache_hits
        stats["decoded"] += int(res.decoded)
    return fs, stats
