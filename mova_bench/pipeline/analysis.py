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
from mova_bench.executors.base import run_task
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
        clip = _decode(task, missing, text)
        out.decoded = True
        for name, ex in missing:  # features are keyed by the registry name, as cache hits are
            if isinstance(ex, TorchBackbone):
                _ready(ex, task)
            try:
                raw = ex.extract(clip)
            except FeatureMissing as exc:  # this backbone cannot embed this clip; the others still can
                out.missing[name] = f"{exc.reason}: {exc.detail}"
                continue
            _store(cache, task, out, name, ex, raw, text)
    return out


def _decode(task: AnalysisTask, missing: list[tuple[str, FeatureExtractor]], text: str | None) -> Any:
    """Decode the clip once with the union of the missing extractors' video needs."""
    needs = tuple(dict.fromkeys(n for _, ex in missing for n in getattr(ex, "video_needs", ())))
    clip = decode(task.path, content_hash=task.content_hash, needs=needs)
    clip.prompt_text = text
    return clip


def _ready(ex: TorchBackbone, task: AnalysisTask) -> None:
    """The backbone's model on the task's device (built once per process), with its batch size."""
    ex.load(task.device)
    ex.batch_size = task.batch_size


def _store(cache: FeatureCache, task: AnalysisTask, out: AnalysisResult, name: str, ex: FeatureExtractor,
           raw: dict[str, Any], text: str | None) -> None:
    """Check one extractor's arrays for one clip, cache them and add them to ``out``."""
    arrays = {k: np.asarray(v) for k, v in raw.items()}
    bad = [k for k, v in arrays.items() if v.dtype == object]
    if bad:
        raise TypeError(f"extractor {ex.name!r} returned object arrays for {bad}; use numeric or unicode arrays")
    cache.put(_identity(ex, text), task.content_hash, arrays)
    out.features[name] = arrays


# ---------------------------------------------------------------------------------------------
# several clips per task: pretrained backbones embed a chunk of clips per forward pass
# ---------------------------------------------------------------------------------------------

#: clips per analysis task when pretrained backbones run and no ``batch_size`` is given: on an
#: accelerator a forward over 8 clips keeps the device busy; on CPU 4 keeps the clips decoded at once
#: (and the pool's balance) modest while still sharing each forward's fixed cost
DEFAULT_CHUNK_ACCELERATOR = 8
DEFAULT_CHUNK_CPU = 4


def chunk_size(device: str, batch_size: int | None) -> int:
    """Clips per analysis task for pretrained backbones: ``batch_size`` when given (the same number
    bounds the clips held decoded at once by one task), else :data:`DEFAULT_CHUNK_ACCELERATOR` (8)
    on a CUDA device and :data:`DEFAULT_CHUNK_CPU` (4) on CPU."""
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1 (clips per analysis task), "
                             "e.g. --batch-size 8, or leave it out for the default")
        return batch_size
    return DEFAULT_CHUNK_ACCELERATOR if str(device).startswith("cuda") else DEFAULT_CHUNK_CPU


@dataclass(frozen=True)
class AnalysisChunk:
    """Several clips analysed by one task (same extractors, cache, device and batch size): each
    pretrained backbone embeds the clips that miss its features with one
    :meth:`~mova_bench.features.base.TorchBackbone.extract_batch` call."""

    tasks: tuple[AnalysisTask, ...]

    @property
    def clip_ids(self) -> tuple[str, ...]:
        return tuple(t.clip_id for t in self.tasks)

    @property
    def wants_accelerator(self) -> bool:
        """As :attr:`AnalysisTask.wants_accelerator` (one GPU for the whole chunk)."""
        return bool(self.tasks) and self.tasks[0].wants_accelerator


@dataclass
class ChunkResult:
    """Per clip of an :class:`AnalysisChunk`: its :class:`AnalysisResult`, or the
    :class:`~mova_bench.executors.TaskFailure` the same clip would have given as a task of its own."""

    results: dict[str, Any] = field(default_factory=dict)


def _per_clip(fn: Any, item: Any) -> Any:
    """``fn(item)``, an exception turned into the :class:`TaskFailure` a task of its own would give."""
    return run_task(fn, item)


def analyse_chunk(chunk: AnalysisChunk) -> ChunkResult:
    """Cached features for several clips, with the results :func:`analyse_clip` gives each alone.

    Per clip and extractor the cache is read first (hits never decode); each clip that misses
    anything is decoded once with all its needs. Each pretrained backbone then embeds, with one
    ``extract_batch`` call, the clips that miss its features; weight-free extractors run per clip.
    A clip that fails to decode, or whose features raise, gets its own failure and is dropped from
    the extractors after; the other clips go on. A clip a backbone cannot embed
    (:class:`~mova_bench.features.base.FeatureMissing`) is missing for that backbone only. When a
    batched call raises, that backbone runs clip by clip for this chunk, so that the error lands on
    the clip that causes it."""
    out: dict[str, Any] = {}
    work: list[tuple[AnalysisTask, FeatureCache, AnalysisResult, dict[str, FeatureExtractor], str | None, Any]] = []
    order: list[tuple[str, FeatureExtractor]] = []
    for task in chunk.tasks:
        looked = _per_clip(_lookup, task)
        if isinstance(looked, TaskFailure):
            out[task.clip_id] = looked
            continue
        res, missing, text = looked
        out[task.clip_id] = res
        if not missing:
            continue
        clip = _per_clip(lambda t: _decode(t, missing, text), task)
        if isinstance(clip, TaskFailure):
            out[task.clip_id] = clip
            continue
        res.decoded = True
        work.append((task, FeatureCache(task.cache_root, enabled=task.use_cache), res, dict(missing), text, clip))
        for name, ex in missing:
            if all(name != n for n, _ in order):
                order.append((name, ex))
    position = {s.name: i for i, s in enumerate(chunk.tasks[0].extractors)} if chunk.tasks else {}
    order.sort(key=lambda item: position.get(item[0], len(position)))
    for name, ex in order:  # extractor by extractor, in the specs' order (as analyse_clip goes)
        todo = [w for w in work if name in w[3] and not isinstance(out[w[0].clip_id], TaskFailure)]
        if not todo:
            continue
        raws: list[Any] | None = None
        if isinstance(ex, TorchBackbone):
            try:
                _ready(ex, todo[0][0])
                raws = ex.extract_batch([w[5] for w in todo])
                if len(raws) != len(todo):
                    raise RuntimeError(f"{ex.name}: extract_batch returned {len(raws)} results for {len(todo)} clips")
            except Exception:  # noqa: BLE001 - run clip by clip below: the error lands on its clip
                raws = None
        for i, (task, cache, res, _, text, clip) in enumerate(todo):
            if raws is not None:
                raw = raws[i]
            else:
                raw = _per_clip(lambda c: _extract_one(ex, task, c), clip)
                if isinstance(raw, TaskFailure):
                    out[task.clip_id] = raw
                    continue
            if isinstance(raw, FeatureMissing):  # this backbone cannot embed this clip; the others still can
                res.missing[name] = f"{raw.reason}: {raw.detail}"
                continue
            stored = _per_clip(lambda r: _store(cache, task, res, name, ex, r, text), raw)
            if isinstance(stored, TaskFailure):
                out[task.clip_id] = stored
    return ChunkResult(out)


def _extract_one(ex: FeatureExtractor, task: AnalysisTask, clip: Any) -> Any:
    """One clip's arrays from ``ex``, or the :class:`FeatureMissing` saying why it has none."""
    if isinstance(ex, TorchBackbone):
        _ready(ex, task)
    try:
        return ex.extract(clip)
    except FeatureMissing as exc:
        return exc


def _chunks(tasks: list[AnalysisTask], specs: tuple[ExtractorSpec, ...], executor: Any) -> list[AnalysisChunk] | None:
    """The tasks grouped for :func:`analyse_chunk` (manifest order kept), or None when no selected
    extractor is a pretrained backbone: weight-free extractors gain nothing from grouping, and one
    clip per task balances the executor's workers better. With a known worker count, chunks shrink
    so that every worker gets one (never below one clip)."""
    if not tasks or not any(issubclass(feature_registry.get(s.name), TorchBackbone) for s in specs):
        return None
    size = chunk_size(tasks[0].device, tasks[0].batch_size)
    workers = getattr(executor, "workers", None)
    if isinstance(workers, int) and not isinstance(workers, bool) and workers > 1:
        size = max(1, min(size, -(-len(tasks) // workers)))
    return [AnalysisChunk(tuple(tasks[i : i + size])) for i in range(0, len(tasks), size)]


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
                use_cache: bool = True, batched: bool = True) -> tuple[FeatureSet, dict[str, Any]]:
    """Features for every ok clip of ``rows``; a clip that fails analysis is marked failed in ``rows``
    (pass copies: the generation manifest is not the place for an evaluation's failures).

    When a selected extractor is a pretrained backbone (and ``batched``), the clips still to
    analyse go to the executor in chunks of :func:`chunk_size` clips (:func:`analyse_chunk`), so
    each backbone embeds several clips per forward pass; the results are those of one task per
    clip. The executor's progress then counts tasks (chunks), and its description says how many
    clips a task holds. A chunk whose task dies as a whole (its worker killed) is retried clip by
    clip, so one clip that kills its worker fails alone."""
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
    chunks = _chunks(todo, specs, executor) if batched else None
    if chunks is None:
        for task, res in executor.map(analyse_clip, todo, desc=desc) if todo else ():
            results[task.clip_id] = res
    else:
        rerun: list[AnalysisTask] = []
        label = f"{desc} ({len(todo)} clips, up to {len(chunks[0].tasks)} per task)"
        for chunk, res in executor.map(analyse_chunk, chunks, desc=label):
            if isinstance(res, TaskFailure):  # the whole task died (e.g. its worker): retry its clips alone
                rerun.extend(chunk.tasks)
            else:
                results.update(res.results)
        for task, res in executor.map(analyse_clip, rerun, desc=f"{desc} (retrying clips one by one)") if rerun else ():
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
