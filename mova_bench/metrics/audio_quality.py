"""Reference-free audio quality: the Inception Score over PANNs CNN14's AudioSet classes
(``is_audio[panns-cnn14]``, "ISc" / "IS" in av-benchmark's, MOVA's and audioldm_eval's tables).

Convention (av-benchmark ``compute_isc`` = audioldm_eval = torch-fidelity ``isc_features_to_metric``,
checked against the latter in the tests):

* input: the 527 **pre-sigmoid logits** of CNN14 (``fc_audioset`` output, av-benchmark's
  ``"logits"``), one row per generated clip, in the run's clip order (av-benchmark: files sorted
  by name); clips without logits (NaN: too short) are left out with a warning;
* class distribution p(y|x) = **softmax** over the 527 logits (not the sigmoid, although AudioSet
  tagging is multi-label), float64;
* rows shuffled with ``numpy.random.RandomState(2020).permutation(n)`` (a fixed seed, not the
  run's), then cut into **10 splits** ``[i·n//10, (i+1)·n//10)``;
* per split: IS = exp(mean over its clips of KL(p(y|x) ‖ p̄(y))) with the **natural log**,
  p̄ the mean p(y|x) of the split; value = mean over splits, ``extra.std`` = population std.

IS ≥ 1; uniform predictions give 1, confident predictions spread evenly over k classes give k.
It grows with the split size, so it is comparable only between sets of equal size and splits.
Fewer clips than splits (av-benchmark would average empty splits into NaN): one split over all
clips, with a warning. 95% CI: percentile bootstrap over the generated clips (resampled with
replacement, the same shuffle and splits), seeded with the run seed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mova_bench.metrics.base import FEW_CLIPS_FIX, FeatureSet, Metric, MetricResult
from mova_bench.stats import CI_LEVEL, percentile_interval

SPLITS = 10
SHUFFLE_SEED = 2020  # av-benchmark / torch-fidelity default rng_seed
N_BOOT = 200


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def inception_score(logits: np.ndarray, *, splits: int = SPLITS, shuffle_seed: int | None = SHUFFLE_SEED
                    ) -> tuple[float, float, np.ndarray]:
    """(mean IS over splits, population std over splits, per-row KL(p‖p̄_split) in input order).

    ``logits`` (n, C): softmax class logits. ``shuffle_seed`` None keeps the row order.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"inception_score: logits must be (n >= 1, classes), got shape {x.shape}")
    n = x.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"inception_score: splits={splits} must be between 1 and the number of rows ({n})")
    order = np.random.RandomState(shuffle_seed).permutation(n) if shuffle_seed is not None else np.arange(n)
    log_p = _log_softmax(x[order])
    p = np.exp(log_p)
    kl = np.empty(n)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        log_q = np.log(p[lo:hi].mean(axis=0))
        kl[lo:hi] = np.sum(p[lo:hi] * (log_p[lo:hi] - log_q[None, :]), axis=1)
        scores.append(float(np.exp(kl[lo:hi].mean())))
    per_row = np.empty(n)
    per_row[order] = kl
    return float(np.mean(scores)), float(np.std(scores)), per_row


class InceptionScoreAudio(Metric):
    """Inception Score of the generated audio over PANNs CNN14's 527 AudioSet classes (no reference)."""

    name: ClassVar[str] = "is_audio"
    display_name: ClassVar[str] = "Inception Score (audio)"
    unit: ClassVar[str] = ""
    higher_is_better: ClassVar[bool | None] = True
    convention: ClassVar[str] = (
        "Inception Score over PANNs CNN14's 527 AudioSet classes (av-benchmark/audioldm_eval/torch-fidelity ISc): "
        "softmax of the pre-sigmoid logits, float64, rows shuffled with RandomState(2020), 10 splits, "
        "per split exp(mean KL(p(y|x) ‖ p̄(y))) in nats, mean over splits (extra.std: population std); "
        "one split when fewer clips than splits. 95% CI: percentile bootstrap over generated clips."
    )
    requires: ClassVar[tuple[str, ...]] = ("{backbone}",)
    needs_reference: ClassVar[bool] = False
    backbone_modality: ClassVar[str | None] = "audio"
    default_backbone: ClassVar[str | None] = "panns-cnn14"
    per_clip_column: ClassVar[str | None] = "is_audio_kl_nats"
    #: feature key holding the logits
    logits_key: ClassVar[str] = "logits"

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        bb = self.backbone or ""
        per = gen.features.get(bb, {})
        ids = [c for c in gen.clip_ids if c in per and self.logits_key in per[c]]
        if not ids:
            return self.skipped(
                f"no generated clip has {self.logits_key!r} from backbone {bb!r}",
                fix="use a classifier backbone with logits (is_audio[panns-cnn14])",
            )
        x = np.stack([np.asarray(per[c][self.logits_key], dtype=np.float64).ravel() for c in ids])
        ok = np.isfinite(x).all(axis=1)
        warnings: list[str] = []
        if not ok.all():
            bad = [c for c, good in zip(ids, ok) if not good]
            reasons = {str(np.asarray(per[c].get("missing_reason", ""))) for c in bad} - {""}
            warnings.append(f"{len(bad)} generated clip(s) left out: no {bb!r} logits ({', '.join(bad[:5])}"
                            f"{' …' if len(bad) > 5 else ''})" + (f": {'; '.join(sorted(reasons))}" if reasons else ""))
            ids, x = [c for c, good in zip(ids, ok) if good], x[ok]
        n = len(ids)
        if n < 2:
            return self.skipped(f"{n} generated clip(s) with {bb!r} logits; the Inception Score needs at least 2",
                                fix=FEW_CLIPS_FIX, n=n, warnings=warnings)
        splits = int(self.options.get("splits", SPLITS))
        shuffle_seed = self.options.get("shuffle_seed", SHUFFLE_SEED)
        if splits < 1:
            return self.result(None, status="failed", reason=f"splits={splits}; expected an integer ≥ 1",
                               fix="set the is_audio option splits to 10 (av-benchmark) or another positive integer")
        if n < splits:
            warnings.append(f"{n} clips < {splits} splits: the score uses one split over all clips "
                            "(av-benchmark would average empty splits into NaN); not comparable to 10-split values")
            splits = 1
        value, std, kl = inception_score(x, splits=splits, shuffle_seed=shuffle_seed)
        n_boot = int(self.options.get("n_boot", N_BOOT))
        rng = np.random.default_rng([seed, 0x15])
        boots = np.array([inception_score(x[rng.integers(0, n, n)], splits=splits, shuffle_seed=shuffle_seed)[0]
                          for _ in range(n_boot)])
        lo, hi = percentile_interval(boots, level=CI_LEVEL)
        return self.result(
            value, n=n, ci_low=lo, ci_high=hi, warnings=warnings,
            per_clip={c: float(v) for c, v in zip(ids, kl)},
            extra={"std": std, "splits": splits, "shuffle_seed": shuffle_seed, "classes": int(x.shape[1]),
                   "n_boot": n_boot, "backbone": bb, "per_clip": "KL(p(y|x) ‖ p̄ of its split), nats"},
        )


__all__ = ["InceptionScoreAudio", "inception_score", "SPLITS", "SHUFFLE_SEED"]
