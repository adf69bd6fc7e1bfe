"""The metric extension point and the result record every metric returns.

A metric declares its metadata on the class (display name, unit, direction, convention); the
report and the leaderboard read it from there. ``compute`` gets the per-clip features of the
generated set and of the reference set and returns a :class:`MetricResult`. It never returns a
sentinel: a value that can't be computed is ``status="skipped"`` (with the reason and the command
that fixes it) or ``status="failed"`` (with the error).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

#: fix of a metric that needs per-clip reference features but was given a statistics .npz
STATS_REF_FIX = (
    "evaluate against per-clip reference features: pass --reference <folder of reference clips> "
    "(or use the suite's procedural reference) instead of a statistics .npz"
)
#: fix of a metric that has too few generated or reference clips
FEW_CLIPS_FIX = "generate more clips (e.g. --samples-per-prompt 4) or give a larger reference set"
#: fix of a metric that needs a reference set and has none
NO_REFERENCE_FIX = "give the suite a `reference:` or pass --reference"


@dataclass
class FeatureSet:
    """Features of one side (generated or reference), one entry per usable clip.

    ``features[extractor_name][clip_id]`` is the dict of arrays the extractor returned.
    ``stats[extractor_name]`` optionally holds precomputed running sums (a ``stats`` reference set)
    when per-clip features are not available.
    """

    clip_ids: list[str]
    features: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # clip_id -> manifest row

    def matrix(self, extractor: str, key: str = "embedding") -> tuple[list[str], np.ndarray]:
        """Stack one array per clip into (n, D) float64, in clip_ids order (clips lacking it skipped)."""
        per = self.features.get(extractor, {})
        ids = [c for c in self.clip_ids if c in per]
        if not ids:
            return [], np.zeros((0, 0))
        return ids, np.stack([np.asarray(per[c][key], dtype=np.float64).ravel() for c in ids])


def same_files_warning(gen: FeatureSet, ref: FeatureSet | None, gen_ids: list[str] | None = None,
                       ref_ids: list[str] | None = None) -> str | None:
    """The warning for generated clips that are byte-identical (same ``content_hash`` in ``meta``) to
    reference clips, or None. Every distance between a set and itself is 0 (up to the estimator's
    small-n bias) and a detector cannot tell a file from itself: such numbers say nothing about the model."""
    if ref is None:
        return None
    gen_ids = gen.clip_ids if gen_ids is None else gen_ids
    ref_ids = ref.clip_ids if ref_ids is None else ref_ids
    ref_hashes = {h for h in ((ref.meta.get(c) or {}).get("content_hash") for c in ref_ids) if h}
    if not ref_hashes:
        return None
    gen_hashes = [(gen.meta.get(c) or {}).get("content_hash") for c in gen_ids]
    shared = sum(1 for h in gen_hashes if h and h in ref_hashes)
    if not shared:
        return None
    if shared == len(gen_ids):
        return (f"the generated and reference clips are the same files (all {shared} generated clips are byte-identical to "
                "reference clips, by content hash): every distance is then ~0 and the detector meaningless; "
                "pass a reference of other clips (--reference)")
    return (f"{shared} of {len(gen_ids)} generated clips are byte-identical to reference clips (content hash): they pull "
            "distances towards 0 and the detector towards chance; pass a reference of other clips (--reference)")


@dataclass
class MetricResult:
    key: str
    value: float | None
    status: str  # ok | skipped | failed
    n: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None
    fix: str | None = None
    display_name: str = ""
    unit: str = ""
    higher_is_better: bool | None = None
    convention: str = ""
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    per_clip: dict[str, float] = field(default_factory=dict)
    #: column name of ``per_clip`` in per_clip.parquet
    per_clip_column: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_clip")
        d.pop("per_clip_column")
        for k in ("value", "ci_low", "ci_high"):
            v = d[k]
            if v is not None and not math.isfinite(v):
                d[k] = None
        return d


def backbone_class(backbone: str | None) -> Any:
    """The registered extractor class called ``backbone``, or None (unknown, or not importable)."""
    from mova_bench.errors import MovaBenchError
    from mova_bench.registry import features as feature_registry

    if not backbone or backbone not in feature_registry:
        return None
    try:
        return feature_registry.get(backbone)
    except MovaBenchError:
        return None


def standard_display(metric: str, backbone: str | None) -> str | None:
    """The literature's name of ``metric`` on ``backbone`` ("FVD", "FAD"), from the backbone class's
    ``metric_names``; None when it has none (a weight-free backbone never earns one)."""
    cls = backbone_class(backbone)
    return (getattr(cls, "metric_names", None) or {}).get(metric) if cls is not None else None


class Metric:
    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    higher_is_better: ClassVar[bool | None] = None
    convention: ClassVar[str] = ""
    #: extractor names needed; "{backbone}" is replaced by the chosen backbone
    requires: ClassVar[tuple[str, ...]] = ()
    needs_reference: ClassVar[bool] = False
    #: backbone modality this metric accepts ("video" | "audio" | None for no backbone)
    backbone_modality: ClassVar[str | None] = None
    default_backbone: ClassVar[str | None] = None
    #: name of this metric's per-clip column in per_clip.parquet (default: the metric key)
    per_clip_column: ClassVar[str | None] = None
    #: display the name the backbone gives this metric (:func:`standard_display`: "FVD" for FD on
    #: I3D), when it gives one, instead of :attr:`display_name`
    named_by_backbone: ClassVar[bool] = False

    def __init__(self, backbone: str | None = None, **options: Any):
        self.backbone = backbone if backbone is not None else self.default_backbone
        self.options = options

    @property
    def key(self) -> str:
        return f"{self.name}[{self.backbone}]" if self.backbone else self.name

    def required_extractors(self) -> list[str]:
        return [r.replace("{backbone}", self.backbone or "") for r in self.requires]

    def result(self, value: float | None, status: str = "ok", **kw: Any) -> MetricResult:
        shown = (standard_display(self.name, self.backbone) if self.named_by_backbone else None) or self.display_name
        return MetricResult(
            key=self.key,
            value=None if value is None else float(value),
            status=status,
            display_name=shown + (f" [{self.backbone}]" if self.backbone else ""),
            unit=self.unit,
            higher_is_better=self.higher_is_better,
            convention=self.convention,
            per_clip_column=self.per_clip_column or self.key,
            **kw,
        )

    @classmethod
    def ranking_value(cls, value: float | None, extra: dict[str, Any] | None = None) -> float | None:
        """The quantity a leaderboard ranks by, in the metric's direction: ``extra["rank_value"]``
        when the result recorded one, else the value. A metric whose value can read better than
        its best meaningful level (a detector AUC below chance) overrides this."""
        if extra and extra.get("rank_value") is not None:
            return float(extra["rank_value"])
        return value

    def skipped(self, reason: str, fix: str | None = None, **kw: Any) -> MetricResult:
        return self.result(None, status="skipped", reason=reason, fix=fix, **kw)

    def skipped_no_reference(self, **kw: Any) -> MetricResult:
        """The result of a metric that needs a reference set when the run has none."""
        return self.skipped("no reference set", fix=NO_REFERENCE_FIX, **kw)

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        raise NotImplementedError


def collect_clip_values(gen: FeatureSet, extractor: str, value: Any, invalid: str) -> tuple[dict[str, float], Any, int]:
    """``value(features)`` of every clip whose ``extractor`` features have status ok and give a
    finite number (None counts as not finite).

    Returns (clip id -> value, counts of the excluded clips by reason: their status, or ``invalid``
    for an ok clip without a finite value, number of clips that had features)."""
    from collections import Counter

    per = gen.features.get(extractor, {})
    values: dict[str, float] = {}
    reasons: Counter[str] = Counter()
    n_total = 0
    for cid in gen.clip_ids:
        feats = per.get(cid)
        if feats is None:
            continue
        n_total += 1
        status = str(feats.get("status", "ok"))
        v = value(feats) if status == "ok" else None
        if v is None or not math.isfinite(v):
            reasons[status if status != "ok" else invalid] += 1
            continue
        values[cid] = float(v)
    return values, reasons, n_total


class ClipMeanMetric(Metric):
    """A metric that is the mean over clips of one number a backbone gives each clip (DeSync,
    IB-score), with a 95% percentile bootstrap CI over clips. Clips the backbone could not score
    (their features' ``status`` is not ``ok``, or :meth:`clip_value` is None) are left out and
    counted in ``extra`` by reason; a metric with no scorable clip is skipped with :attr:`short_fix`."""

    #: the fix when clips were analysed but none could be scored
    short_fix: ClassVar[str] = "generate longer clips"
    #: the warning when some clips could not be scored ({n} = how many)
    excluded_warning: ClassVar[str] = "{n} clip(s) could not be scored and are left out"

    def clip_value(self, feats: dict[str, Any]) -> float | None:
        raise NotImplementedError

    def extra_for(self, scored: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Further ``extra`` fields from the scored clips' features (none by default)."""
        return {}

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        from mova_bench.stats import N_BOOTSTRAP, bootstrap_ci

        extractor = self.required_extractors()[0]
        values, reasons, n_total = collect_clip_values(gen, extractor, self.clip_value, "invalid")
        extra: dict[str, Any] = {"backbone": self.backbone, "n_total": n_total,
                                 "n_excluded": int(sum(reasons.values())), "excluded_reasons": dict(sorted(reasons.items()))}
        if len(gen.clip_ids) - n_total:
            extra["n_missing_features"] = len(gen.clip_ids) - n_total
        if not values:
            why = (f"no clip has {extractor} features (nothing was analysed)" if not n_total else
                   f"none of the {n_total} analysed clips could be scored by {extractor} "
                   f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))})")
            fix = ("check that the run's clips decoded (see manifest.jsonl status) and rerun the evaluation" if not n_total
                   else self.short_fix)
            return self.skipped(why, fix, extra=extra)
        per = gen.features[extractor]
        extra.update(self.extra_for({cid: per[cid] for cid in values}))
        arr = np.array(list(values.values()), dtype=np.float64)
        lo, hi = bootstrap_ci(arr, np.mean, seed=seed)
        warnings = ["a single clip: no confidence interval"] if arr.size < 2 else []
        if arr.size >= 2:
            extra["ci_method"] = f"percentile bootstrap over clips ({N_BOOTSTRAP} resamples, seed {seed})"
        if extra["n_excluded"]:
            warnings.append(self.excluded_warning.format(n=extra["n_excluded"]))
        return self.result(float(arr.mean()), n=int(arr.size), ci_low=lo if math.isfinite(lo) else None,
                           ci_high=hi if math.isfinite(hi) else None, extra=extra, per_clip=values, warnings=warnings)
