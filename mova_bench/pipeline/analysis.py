"""Stage 5: decode each clip once and fan it out to every feature extractor (cached).

The decode serves every extractor of the clip at once: the union of the missing extractors'
:class:`~mova_bench.media.VideoNeed` s is decoded in the same pass as the analysis frames.
Pretrained backbones (:class:`~mova_bench.features.base.TorchBackbone`) load on the task's device
once per process; an extractor that ``uses_text`` gets the clip's prompt (``prompt_text`` of its
manifest row) and its cache key adds the text's SHA-256, so editing a prompt re-extracts; a clip
without a prompt gets no features from it (recorded in ``AnalysisResult.missing``), never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from mova_bench.cache import FeatureCache
from mova_bench.executors import TaskFailure
from mova_bench.features.base import FeatureExtractor, FeatureMissing, TorchBackbone
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
    #: the clip's prompt (for extractors with ``uses_text``), None when it has none
    prompt_text: str | None = None
    #: torch device of pretrained backbones ("cpu", "cuda", "cuda:N"); not part of any cache key
    device: str = "cpu"
    #: forward-pass batch size of pretrained backbones (None: each backbone's default)
    batch_size: int | None = None

    @property
    def wants_accelerator(self) -> bool:
        """True when this task runs a pretrained backbone on a GPU: the Ray executor then asks
        for one GPU per task (``num_gpus``); other executors run it as any other task."""
        return self.device.startswith("cuda") and any(
            issubclass(feature_registry.get(s.name), TorchBackbone) for s in self.extractors)


@dataclass
class AnalysisResult:
    clip_id: str
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    cache_hits: int = 0
    decoded: bool = False
    #: extractor name -> why this clip has no features from it (e.g. no prompt text)
    missing: dict[str, str] = field(default_factory=dict)


#: the runtime of pretrained backbones for the analyses started inside :func:`runtime`
_RUNTIME: dict[str, Any] = {"device": "cpu", "batch_size": None}


@contextlib.contextmanager
def runtime(device: str = "cpu", batch_size: int | None = None) -> Iterator[None]:
    """Analyses started inside (``analyse_set``) run pretrained backbones on ``device`` (resolved,
    e.g. "cuda:0") with ``batch_size``; neither enters a cache key."""
    old = dict(_RUNTIME)
    _RUNTIME.update(device=device, batch_size=batch_size)
    try:
        yield
    finally:
        _RUNTIME.clear()
        _RUNTIME.update(old)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _identity(ex: FeatureExtractor, prompt_text: str | None) -> dict[str, Any]:
    """The cache identity of ``ex`` for one clip: with the prompt's SHA-256 when it reads text."""
    ident = ex.cache_identity()
    if getattr(ex, "uses_text", False):
        ident = {**ident, "text_sha256": text_sha256(prompt_text or "")}
    return ident


_extractor_cache: dict[ExtractorSpec, FeatureExtractor] = {}


def _extractor(spec: ExtractorSpec) -> FeatureExtractor:
    if spec not in _extractor_cache:
        _extractor_cache[spec] = spec.build()
    return _extractor_cache[spec]


def cached_result(task: AnalysisTask) -> AnalysisResult | None:
    """The clip's result when every feature it needs is in the cache (read in this process, so a
    warm rerun never starts workers), else None (also on any error: the task then runs normally)."""
    if not task.use_cache:
        return None
    try:
        out, missing, _ = _lookup(task)
    except Exception:  # noqa: BLE001 - the real analysis will run and record what is wrong
        return None
    return out if not missing else None


def _lookup(task: AnalysisTask) -> tuple[AnalysisResult, list[tuple[str, FeatureExtractor]], str | None]:
    """(result holding the cache hits, extractors still to run, prompt text)."""
    cache = FeatureCache(task.cache_root, enabled=task.use_cache)
    out = AnalysisResult(task.clip_id)
    missing: list[tuple[str, FeatureExtractor]] = []
    text = task.prompt_text if task.prompt_text and task.prompt_text.strip() else None
    for spec in task.extractors:
        ex = _extractor(spec)
        # a backbone that reads the prompt but embeds the clip without one (CLAP's audio embedding for
        # fd_audio) declares text_optional: it still runs, and reports no text score for that clip
        if getattr(ex, "uses_text", False) and text is None and not getattr(ex, "text_optional", False):
            out.missing[spec.name] = "the clip has no prompt text"
            continue
        hit = cache.get(_identity(ex, text), task.content_hash)
        if hit is not None:
            out.features[spec.name] = hit
            out.cache_hits += 1
        else:
            missing.append((spec.name, ex))
    return out, missing, text


def analyse_clip(task: AnalysisTask) -> AnalysisResult:
    """Cached features for one clip; the clip is decoded at most once, and only on a cache miss."""
    cache = FeatureCache(task.cache_root, enabled=task.use_cache)
    out, missing, text = _lookup(task)
    if missing:
        needs = tuple(dict.fromkeys(n for _, ex in missing for n in getattr(ex, "video_needs", ())))
        clip = decode(task.path, content_hash=task.content_hash, needs=needs)
        clip.prompt_text = text
        out.decoded = True
        for name, ex in missing:  # features are keyed by the registry name, as cache hits are
            if isinstance(ex, TorchBackbone):
                ex.load(task.device)
                ex.batch_size = task.batch_size
            try:
                raw = ex.extract(clip)
            except FeatureMissing as exc:  # this backbone cannot embed this clip; the others still can
                out.missing[name] = f"{exc.reason}: {exc.detail}"
                continue
            arrays = {k: np.asarray(v) for k, v in raw.items()}
            bad = [k for k, v in arrays.items() if v.dtype == object]
            if bad:
                raise TypeError(f"extractor {ex.name!r} returned object arrays for {bad}; use numeric or unicode arrays")
            cache.put(_identity(ex, text), task.content_hash, arrays)
            out.features[name] = arrays
    return out


def extractor_specs(metric_objs: list[Any], suite: Any | None) -> tuple[ExtractorSpec, ...]:
    """The extractors the chosen metrics need, with the suite's analysis parameters."""
    names: list[str] = []
    for m in metric_objs:
        if getattr(m, "unavailable", None):  # reported skipped with its fix; nothing to extract
            continue
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
    tasks = [AnalysisTask(r["clip_id"], r["path"], r["content_hash"], specs, None, use_cache,
                          prompt_text=r.get("prompt_text"), device=_RUNTIME["device"], batch_size=_RUNTIME["batch_size"])
             for r in rows if r.get("status") == "ok"]
    results: dict[str, Any] = {}
    for task in tasks:  # cache hits are read here: a warm rerun starts no worker and decodes nothing
        hit = cached_result(task)
        if hit is not None:
            results[task.clip_id] = hit
    todo = [t for t in tasks if t.clip_id not in results]
    for task, res in executor.map(analyse_clip, todo, desc=desc) if todo else ():
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
        if res.missing:
            r["missing_features"] = dict(res.missing)
            stats.setdefault("missing", {})[r["clip_id"]] = dict(res.missing)
        for name, arrays in res.features.items():
            fs.features.setdefault(name, {})[r["clip_id"]] = arrays
        stats["cache_hits"] += res.cache_hits
        stats["decoded"] += int(res.decoded)
    return fs, stats
