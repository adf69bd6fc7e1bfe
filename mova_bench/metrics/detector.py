"""Synthetic-media detector: a classifier two-sample test between generated and reference clips.

``detector_auc[forensic+vstats+melstats]``: label generated clips 1 and reference clips 0, fit
a classifier with stratified k-fold cross-validation, and score every clip only with the model
that did not see it (out-of-fold). The ROC AUC of those scores says how well *this* detector can
tell the two sets apart: 0.5 = indistinguishable, 1.0 = every generated clip is caught. Lower is
better for the generator. It is a lower bound on detectability (a stronger detector may do
better); no reference toolkit reports this (METRICS.md).

Backbone key. The default detector reads the ``forensic`` traces *and* the ``vstats`` and
``melstats`` embeddings, so its key names all three, ``detector_auc[forensic+vstats+melstats]``:
calling it ``detector_auc[forensic]`` would hide two thirds of its input, and a score computed on
other features must never share its key. Any ``+``-joined list of extractor names that return an
``"embedding"`` vector works (e.g. ``forensic+i3d+vggish``); their vectors are concatenated.

Detectors are pluggable: anything with ``fit_predict_oof(X, y, seed) -> P(class 1)`` per row —
a pretrained detector simply ignores the labels it is not allowed to fit on and predicts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from mova_bench.metrics.base import FEW_CLIPS_FIX, STATS_REF_FIX, FeatureSet, Metric, MetricResult
from mova_bench.stats import CI_LEVEL, N_BOOTSTRAP, percentile_interval

DEFAULT_FEATURES = ("forensic", "vstats", "melstats")


@runtime_checkable
class Detector(Protocol):
    """A real-vs-generated classifier used as a two-sample test."""

    name: str

    def fit_predict_oof(self, X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        """Out-of-fold P(y = 1) for every row of X (no row is scored by a model fitted on it)."""
        ...

    def describe(self) -> str:
        ...


class LogisticDetector:
    """StandardScaler + L2 logistic regression, stratified k-fold (k = min(5, smallest class)).

    ``class_weight="balanced"`` so the probabilities read as P(synthetic) under equal priors
    whatever the ratio of generated to reference clips; AUC itself does not depend on it.
    Scaling is fitted inside each fold (no information from the held-out fold leaks).
    """

    name = "logistic"

    def __init__(self, C: float = 1.0, max_folds: int = 5, max_iter: int = 2000):
        self.C = float(C)
        self.max_folds = int(max_folds)
        self.max_iter = int(max_iter)

    def describe(self) -> str:
        return (
            f"StandardScaler + LogisticRegression(C={self.C:g}, L2, lbfgs, class_weight=balanced) from scikit-learn, "
            f"stratified k-fold with k = min({self.max_folds}, smallest class), shuffled with the run seed"
        )

    def n_folds(self, y: np.ndarray) -> int:
        counts = np.bincount(np.asarray(y, dtype=np.intp), minlength=2)
        return int(min(self.max_folds, counts.min()))

    def fit_predict_oof(self, X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.intp)
        k = self.n_folds(y)
        if k < 2:
            raise ValueError(f"cross-validation needs ≥ 2 clips of each class, got counts {np.bincount(y, minlength=2).tolist()}")
        oof = np.full(len(y), np.nan)
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(seed) % (2**32))
        for train, test in folds.split(X, y):
            model = make_pipeline(
                StandardScaler(),
                LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight="balanced"),
            )
            model.fit(X[train], y[train])
            oof[test] = model.predict_proba(X[test])[:, 1]
        return oof


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC = P(score of a random positive > score of a random negative), ties count ½."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def stratified_bootstrap_auc(scores: np.ndarray, y: np.ndarray, *, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """AUC of ``n_boot`` resamples drawing positives and negatives separately (class sizes kept)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    pos, neg = s[y], s[~y]
    rng = np.random.default_rng([seed, 0xA0C])
    out = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        p = pos[rng.integers(0, pos.size, pos.size)]
        n = neg[rng.integers(0, neg.size, neg.size)]
        # Mann–Whitney via sorted negatives: wins + ½ ties for every positive
        n_sorted = np.sort(n)
        less = np.searchsorted(n_sorted, p, side="left")
        less_eq = np.searchsorted(n_sorted, p, side="right")
        out[b] = float((less.sum() + 0.5 * (less_eq - less).sum()) / (p.size * n.size))
    return out


class DetectorAUC(Metric):
    """Cross-validated real-vs-generated classifier AUC (0.5 = indistinguishable) with per-clip P(synthetic)."""

    name: ClassVar[str] = "detector_auc"
    display_name: ClassVar[str] = "Synthetic-media detector AUC"
    unit: ClassVar[str] = "AUC"
    higher_is_better: ClassVar[bool | None] = False
    per_clip_column: ClassVar[str | None] = "p_synthetic"
    needs_reference: ClassVar[bool] = True
    backbone_modality: ClassVar[str | None] = "av"
    default_backbone: ClassVar[str | None] = "+".join(DEFAULT_FEATURES)
    #: the default backbone's extractors; ``required_extractors`` follows the chosen backbone
    requires: ClassVar[tuple[str, ...]] = DEFAULT_FEATURES
    convention: ClassVar[str] = (
        "classifier two-sample test: generated clips y=1, reference clips y=0; per-clip features = "
        "concatenation of the '+'-separated extractors in the key (default forensic 11-d + vstats 82-d + "
        "melstats 154-d); StandardScaler + LogisticRegression (C=1, balanced classes), stratified k-fold "
        "(k = min(5, smallest class), seeded); value = ROC AUC of the out-of-fold P(synthetic); 95% CI: "
        "percentile bootstrap over clips stratified by class (1000 resamples, fitted scores held fixed, "
        "so refitting variance is not included); per_clip = out-of-fold P(synthetic) of each generated clip."
    )

    def __init__(self, backbone: str | None = None, **options: Any):
        super().__init__(backbone, **options)
        det = options.get("detector")
        self.detector: Detector = det if det is not None else LogisticDetector(**options.get("detector_params", {}))
        if not isinstance(self.detector, Detector):
            raise TypeError(f"detector must implement fit_predict_oof(X, y, seed) and describe(), got {type(det).__name__}")

    def required_extractors(self) -> list[str]:
        return [p for p in (self.backbone or "").split("+") if p]

    def _matrix(self, fs: FeatureSet, names: list[str]) -> tuple[list[str], np.ndarray, dict[str, int], list[str]]:
        """Concatenated features of the clips that have every extractor and only finite values."""
        per = {n: fs.features.get(n, {}) for n in names}
        ids = [c for c in fs.clip_ids if all(c in per[n] for n in names)]
        have = set(ids)
        missing = [c for c in fs.clip_ids if c not in have]
        if not ids:
            return [], np.zeros((0, 0)), {}, missing
        blocks, dims = [], {}
        for n in names:
            blocks.append(np.stack([np.asarray(per[n][c]["embedding"], dtype=np.float64).ravel() for c in ids]))
            dims[n] = blocks[-1].shape[1]
        x = np.concatenate(blocks, axis=1)
        ok = np.isfinite(x).all(axis=1)
        bad = [c for c, good in zip(ids, ok) if not good]
        return [c for c, good in zip(ids, ok) if good], x[ok], dims, missing + bad

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        names = self.required_extractors()
        if not names:
            return self.skipped("no feature extractors named in the backbone", fix=f"use detector_auc[{self.default_backbone}]")
        if ref is None:
            return self.skipped_no_reference()
        gids, xg, dims, g_left = self._matrix(gen, names)
        rids, xr, dims_r, r_left = self._matrix(ref, names)
        warnings = []
        if g_left:
            warnings.append(f"{len(g_left)} generated clip(s) left out: missing or non-finite {'/'.join(names)} features")
        if r_left:
            warnings.append(f"{len(r_left)} reference clip(s) left out: missing or non-finite {'/'.join(names)} features")
        if not rids and any(n in ref.stats for n in names):
            return self.skipped(
                "the detector needs per-clip reference features; a stats reference has only running sums",
                fix=STATS_REF_FIX, n=len(gids), warnings=warnings,
            )
        if len(gids) < 2 or len(rids) < 2:
            return self.skipped(
                f"{len(gids)} generated and {len(rids)} reference clip(s) with {'+'.join(names)} features; "
                "cross-validation needs at least 2 of each",
                fix=FEW_CLIPS_FIX, n=len(gids), warnings=warnings,
            )
        if dims != dims_r:
            return self.result(None, status="failed", n=len(gids), warnings=warnings,
                               reason=f"feature dims differ: generated {dims}, reference {dims_r}")
        x = np.concatenate([xg, xr])
        y = np.concatenate([np.ones(len(gids), np.intp), np.zeros(len(rids), np.intp)])
        oof = np.asarray(self.detector.fit_predict_oof(x, y, seed), dtype=np.float64)
        if oof.shape != y.shape or not np.isfinite(oof).all():
            return self.result(None, status="failed", n=len(gids), warnings=warnings,
                               reason=f"detector {getattr(self.detector, 'name', '?')} returned {oof.shape} scores "
                               f"with {int((~np.isfinite(oof)).sum())} non-finite for {len(y)} clips")
        value = roc_auc(oof, y)
        n_boot = int(self.options.get("n_boot", N_BOOTSTRAP))
        lo, hi = percentile_interval(stratified_bootstrap_auc(oof, y, n_boot=n_boot, seed=seed), level=CI_LEVEL)
        folds = self.detector.n_folds(y) if hasattr(self.detector, "n_folds") else None
        res = self.result(
            value, n=len(gids), ci_low=lo, ci_high=hi, warnings=warnings,
            per_clip={c: float(p) for c, p in zip(gids, oof[: len(gids)])},
            extra={
                "n_ref": len(rids), "n_gen": len(gids), "dim": int(x.shape[1]), "feature_dims": dims,
                "detector": getattr(self.detector, "name", type(self.detector).__name__), "folds": folds,
                "n_boot": n_boot, "mean_p_synthetic_gen": float(oof[: len(gids)].mean()),
                "mean_p_synthetic_ref": float(oof[len(gids):].mean()),
            },
        )
        res.convention = (
            f"classifier two-sample test on {'+'.join(f'{n} ({d}-d)' for n, d in dims.items())}: generated y=1, reference y=0; "
            f"{self.detector.describe()}; value = ROC AUC of out-of-fold P(synthetic) (0.5 = indistinguishable); "
            f"95% CI: percentile bootstrap over clips stratified by class ({n_boot} resamples, fitted scores held fixed: "
            "refitting variance not included); per_clip = out-of-fold P(synthetic) of each generated clip."
        )
        return res
