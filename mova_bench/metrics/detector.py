"""Synthetic-media detector: a classifier two-sample test between generated and reference clips.

``detector_auc[forensic+vstats+melstats]``: label generated clips 1 and reference clips 0, fit
a classifier with cross-validation grouped by prompt, and score every clip only with the model
that did not see it (out-of-fold). The ROC AUC of those scores says how well *this* detector can
tell the two sets apart: 0.5 = indistinguishable, 1.0 = every generated clip is caught. Lower is
better for the generator, down to 0.5 and no further. It is a lower bound on detectability (a
stronger detector may do better); no reference toolkit reports this (METRICS.md).

Chance must read as chance. With a few dozen clips the out-of-fold AUC of two sets drawn from one
distribution spreads widely (20 clips per class: sd ≈ 0.11, values from 0.2 to 0.75), and an AUC
below 0.5 is an artefact of cross-validating at small n (anti-learning), never evidence that the
clips look "more real than real". So every value comes with a **label-permutation test**: the
whole cross-validated fit is repeated on ≥ 200 relabellings of the same clips (seeded, spread
over the usable cores), which gives the AUC's null distribution at this n and dimension, its 95%
band, and a one-sided p-value ``(1 + #{null AUC ≥ AUC}) / (1 + n_permutations)``. When p ≥ 0.05
the result reads "indistinguishable from the reference (p = …)". The 95% CI is the null band's
spread about 0.5 moved onto the observed AUC (the inversion of the permutation test under a
location shift): it contains 0.5 exactly when the AUC lies in the null band (95% of null draws),
its upper end is never below 0.5 (so at chance it covers 97.5%: the 2.5% of draws below the band
read as chance, not as "significantly less detectable than real"), it includes the variance of
refitting, and it is conservative for AUC far from 0.5. The ranking quantity is ``max(AUC, 0.5)``
(``extra.rank_value``): an AUC below 0.5 never ranks a model as better than chance.

Folds are grouped (``StratifiedGroupKFold``): clips of one prompt — generated and reference —
and clips that are byte-identical (same content hash) always share a fold, so the classifier
cannot learn prompts (or memorise a file) instead of "synthetic". Relabellings respect the same
structure: within a prompt that has clips of both sides, labels are permuted within the prompt;
clips of single-side groups are permuted among themselves.

Backbone key. The default detector reads the ``forensic`` traces *and* the ``vstats`` and
``melstats`` embeddings, so its key names all three, ``detector_auc[forensic+vstats+melstats]``:
calling it ``detector_auc[forensic]`` would hide two thirds of its input, and a score computed on
other features must never share its key. Any ``+``-joined list of extractor names that return an
``"embedding"`` vector works (e.g. ``forensic+i3d+vggish``); their vectors are concatenated.

Detectors are pluggable: anything with ``fit_predict_oof(X, y, seed[, groups]) -> P(class 1)``
per row — a pretrained detector simply ignores the labels it is not allowed to fit on and
predicts. An optional ``fit_predict_oof_many(X, Y, seed, groups)`` (one row of labels per
relabelling) lets the permutation test batch its refits, as :class:`LogisticDetector` does.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from mova_bench.metrics.base import (FEW_CLIPS_FIX, STATS_REF_FIX, FeatureSet, Metric, MetricResult,
                                     same_files_warning)
from mova_bench.stats import CI_LEVEL, N_BOOTSTRAP, percentile_interval

DEFAULT_FEATURES = ("forensic", "vstats", "melstats")
#: relabellings of the permutation test (p-value resolution 1/(n+1); the issue's floor is 200)
N_PERMUTATIONS = 200
#: p-value at or above which the sets read as indistinguishable
ALPHA = 0.05
#: serial permutation work (estimated) above which the refits are spread over worker processes
PARALLEL_MIN_S = 2.0


@runtime_checkable
class Detector(Protocol):
    """A real-vs-generated classifier used as a two-sample test."""

    name: str

    def fit_predict_oof(self, X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        """Out-of-fold P(y = 1) for every row of X (no row is scored by a model fitted on it).
        May take a ``groups`` keyword: rows of one group must share a fold."""
        ...

    def describe(self) -> str:
        ...


# --------------------------------------------------------------------------- groups


def groups_from_keys(prompt_ids: list[Any], content_hashes: list[Any]) -> np.ndarray:
    """Fold groups (int per clip): clips that share a prompt id or a content hash are one group;
    a clip with neither is a group of its own. The public helper for callers that rebuild the
    detector's input outside a :class:`FeatureSet` (e.g. the regression gate)."""
    n = len(prompt_ids)
    if len(content_hashes) != n:
        raise ValueError(f"{n} prompt ids but {len(content_hashes)} content hashes")
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, (pid, h) in enumerate(zip(prompt_ids, content_hashes)):
        for key in ((f"p:{pid}" if pid not in (None, "") else None), (f"h:{h}" if h not in (None, "") else None)):
            if key is None:
                continue
            if key in first:
                a, b = find(first[key]), find(i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first[key] = i
    roots = [find(i) for i in range(n)]
    _, inv = np.unique(np.asarray(roots), return_inverse=True)
    return inv.astype(np.intp)


def _meta_keys(fs: FeatureSet, ids: list[str]) -> tuple[list[Any], list[Any]]:
    rows = [fs.meta.get(c) or {} for c in ids]
    return [r.get("prompt_id") for r in rows], [r.get("content_hash") for r in rows]


def permutation_strata(y: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """Index sets whose labels are exchangeable under the null: each group holding clips of both
    sides is its own stratum (its generated/reference counts are kept, as the design keeps them);
    the clips of every single-side group together form one more."""
    y = np.asarray(y)
    strata, pure = [], []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if np.unique(y[idx]).size > 1:
            strata.append(idx)
        else:
            pure.append(idx)
    if pure:
        strata.append(np.concatenate(pure))
    return strata


def n_relabellings(y: np.ndarray, strata: list[np.ndarray], cap: int = 10**9) -> int:
    """Distinct label arrangements the strata allow (capped): the p-value cannot go below 1/that."""
    total = 1
    for idx in strata:
        total *= math.comb(len(idx), int(np.asarray(y)[idx].sum()))
        if total >= cap:
            return cap
    return total


def draw_relabellings(y: np.ndarray, groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` relabellings of ``y`` (rows), each a permutation within :func:`permutation_strata`; seeded."""
    y = np.asarray(y, dtype=np.intp)
    rng = np.random.default_rng([int(seed) % (2**32), 0x9E12])
    out = np.tile(y, (int(n), 1))
    for idx in permutation_strata(y, groups):
        out[:, idx] = rng.permuted(out[:, idx], axis=1)
    return out


# --------------------------------------------------------------------------- the classifier


def _mean_std(a: np.ndarray) -> np.ndarray:
    """``np.mean(np.std(a, axis=1), axis=1)`` for a float64 (k, k, c) array with the same ufuncs in
    the same order as numpy's own (so the same bits), without its wrappers' overhead."""
    n = a.shape[1]
    dev = a - np.add.reduce(a, axis=1, keepdims=True) / n
    np.multiply(dev, dev, out=dev)
    std = np.sqrt(np.add.reduce(dev, axis=1) / n)
    return np.add.reduce(std, axis=1) / std.shape[1]


def stratified_group_kfold(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) splits of scikit-learn's ``StratifiedGroupKFold(n_splits=k, shuffle=True,
    random_state=seed).split(X, y, groups)``: the same greedy rule (groups shuffled by
    ``RandomState(seed)``, taken in order of decreasing spread of their class counts, each put in the
    fold that keeps the classes' shares most even, ties to the smaller fold) and the same floating
    point, evaluated for all candidate folds at once — tens of times faster than the reference loop,
    which matters when a permutation test needs a split per relabelling. tests/test_detector_null.py
    checks it split for split against scikit-learn."""
    y = np.asarray(y)
    classes, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
    if np.all(k > y_cnt):
        raise ValueError(f"n_splits={k} cannot be greater than the number of members in each class.")
    _, g_inv, g_cnt = np.unique(groups, return_inverse=True, return_counts=True)
    n_groups, n_classes = len(g_cnt), len(y_cnt)
    if k > n_groups:
        raise ValueError(f"Cannot have number of splits n_splits={k} greater than the number of groups: {n_groups}.")
    per_group = np.zeros((n_groups, n_classes))
    np.add.at(per_group, (g_inv, y_inv), 1)
    perm = np.arange(n_groups)
    np.random.RandomState(seed).shuffle(perm)
    per_group = per_group[perm]
    inv_perm = np.empty_like(perm)
    inv_perm[perm] = np.arange(perm.size)
    g_inv = inv_perm[g_inv]
    order = np.argsort(-np.std(per_group, axis=1), kind="stable")
    per_fold = np.zeros((k, n_classes))
    fold_of = np.empty(n_groups, dtype=np.intp)
    eye = np.arange(k)
    y_cnt_row = y_cnt.reshape(1, 1, -1)
    for gi in order:
        cand = np.repeat(per_fold[None], k, axis=0)
        cand[eye, eye] += per_group[gi]
        evals = _mean_std(cand / y_cnt_row)
        sizes = per_fold.sum(axis=1)
        best, min_eval, min_size = 0, np.inf, np.inf
        for i in range(k):
            e, n_i = float(evals[i]), float(sizes[i])
            if e < min_eval or (abs(e - min_eval) <= 1e-8 + 1e-5 * abs(min_eval) and n_i < min_size):
                best, min_eval, min_size = i, e, n_i
        per_fold[best] += per_group[gi]
        fold_of[gi] = best
    clip_fold = fold_of[g_inv]
    idx = np.arange(len(y))
    return [(idx[clip_fold != f], idx[clip_fold == f]) for f in range(k)]


_CONTROLLER: Any = None


def _one_blas_thread() -> Any:
    """A context in which BLAS/OpenMP pools use one thread (threadpoolctl; a no-op without it). The
    controller that finds the loaded libraries is built once: building it costs ~10 ms, more than
    a batch of small fits."""
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl ≥ 3
        import contextlib

        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


#: relabellings sharing a fold from which they are fitted with one shared design
_SHARED_MIN = 8
#: bytes of float64 arrays one batch of fits may hold at a time (several arrays of this size live at once)
_BATCH_BYTES = 32 * 2**20


def _fold_geometry(X: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a stack of folds (``train`` (B, m), ``test`` (B, t) row indices): the training rows and the
    test rows in coordinates of an orthonormal basis of the standardised training rows' span,
    ``Z_tr`` (B, m, r) and ``Z_te`` (B, t, r), r = min(m, d).

    Standardisation is scikit-learn's StandardScaler fitted on the training rows (population std;
    a feature it deems constant keeps scale 1). ‖β‖ in these coordinates equals ‖w‖ of the weights
    ``w = Vβ``, and an L2-penalised linear model's optimal weights lie in the span of its training
    rows, so fitting on ``Z`` is exact whatever the feature dimension. From the eigen-decomposition
    of the smaller of the Gram and scatter matrices; directions whose squared singular value is
    below 1e-14 of the largest are zeroed (they carry nothing a fit could use).
    """
    xtr, xte = X[train], X[test]
    m, d = xtr.shape[1], xtr.shape[2]
    mu = xtr.mean(axis=1, keepdims=True)
    var = xtr.var(axis=1, keepdims=True)
    eps = np.finfo(np.float64).eps
    scale = np.sqrt(var)
    scale[var <= m * eps * var + (m * mu * eps) ** 2] = 1.0
    xtr = (xtr - mu) / scale
    xte = (xte - mu) / scale
    xtr_t = np.swapaxes(xtr, 1, 2)
    if d <= m:
        w, v = np.linalg.eigh(xtr_t @ xtr)
        v = v * (w > np.maximum(w[:, -1:], 0.0) * 1e-14)[:, None, :]
        return xtr @ v, xte @ v
    w, u = np.linalg.eigh(xtr @ xtr_t)
    keep = w > np.maximum(w[:, -1:], 0.0) * 1e-14
    root = np.sqrt(np.where(keep, w, 1.0))
    return u * (root * keep)[:, None, :], (xte @ xtr_t) @ (u * (keep / root)[:, None, :])


def _newton_logistic(A: np.ndarray, Y: np.ndarray, S: np.ndarray, C: float, max_iter: int, tol: float) -> np.ndarray:
    """Minimise ``C Σ sᵢ [log(1 + e^{fᵢ}) − yᵢ fᵢ] + ½‖β‖²``, ``f = A θ``, θ = (β, b) with the last
    column of ``A`` all ones (the intercept b is not penalised), for every problem of the batch at
    once: labels ``Y`` and weights ``S`` (B, m); designs ``A`` (B, m, k), or one (m, k) shared by
    all (then the Hessians come from one matrix product). Damped Newton with backtracking; a
    problem is frozen once its gradient is below ``tol``·(1 + C Σs) or no step decreases its
    objective beyond float64 rounding. Returns θ (B, k)."""
    shared = A.ndim == 2
    B, m = Y.shape
    k = A.shape[-1]
    reg = np.ones(k)
    reg[-1] = 0.0
    diag = np.arange(k)
    theta = np.zeros((B, k))
    if shared:
        outer = (A[:, :, None] * A[:, None, :]).reshape(m, k * k)  # row i: aᵢ aᵢᵀ, so H = w @ outer

    def scores(a: np.ndarray, th: np.ndarray) -> np.ndarray:
        return th @ A.T if shared else (a @ th[:, :, None])[:, :, 0]

    def objective(a: np.ndarray, th: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
        f = scores(a, th)
        return C * np.sum(s * (np.logaddexp(0.0, f) - y * f), axis=1) + 0.5 * np.sum(th[:, :-1] ** 2, axis=1)

    active = np.arange(B)
    scale = 1.0 + C * S.sum(axis=1)
    for _ in range(int(max_iter)):
        a = A if shared else A[active]
        th, y, s = theta[active], Y[active], S[active]
        f = scores(a, th)
        p = 0.5 * (1.0 + np.tanh(0.5 * f))  # the logistic function, overflow-free
        r = s * (p - y)
        g = C * (r @ A if shared else (r[:, None, :] @ a)[:, 0, :]) + reg * th
        going = np.abs(g).max(axis=1) > tol * scale[active]
        if not going.all():
            active, th, y, s, g, p = active[going], th[going], y[going], s[going], g[going], p[going]
            if not active.size:
                break
            if not shared:
                a = a[going]
        wgt = C * s * p * (1.0 - p)
        H = (wgt @ outer).reshape(-1, k, k) if shared else (np.swapaxes(a, 1, 2) * wgt[:, None, :]) @ a
        H[:, diag, diag] += reg
        step = np.linalg.solve(H, g[:, :, None])[:, :, 0]
        j0 = objective(a, th, y, s)
        decrease = np.sum(g * step, axis=1)
        slack = 64.0 * np.finfo(np.float64).eps * np.abs(j0)  # rounding of the objective itself
        t = np.ones(len(active))
        new = th - step
        bad = np.zeros(len(active), bool)
        for _ls in range(30):
            bad = ~(objective(a, new, y, s) <= j0 - 1e-4 * t * decrease + slack)
            if not bad.any():
                break
            t[bad] *= 0.5
            new[bad] = th[bad] - t[bad, None] * step[bad]
        new[bad] = th[bad]  # no descent left beyond rounding: converged as far as float64 goes
        theta[active] = new
        active = active[~bad]
        if not active.size:
            break
    return theta


class LogisticDetector:
    """StandardScaler + L2 logistic regression (C = 1, balanced classes), out of fold over
    ``StratifiedGroupKFold`` (k = min(5, smallest class, number of groups)).

    The objective is scikit-learn's ``LogisticRegression(C, class_weight="balanced")`` (L2 on the
    weights, unpenalised intercept), solved to a tight gradient tolerance by Newton's method in the
    row space of each fold's standardised training features (the optimum's weights lie there, so a
    fold with m training clips is an (≤ m)-parameter problem whatever the feature dimension). That
    is exact, and fast enough to refit hundreds of relabellings for the permutation test, batched.
    ``class_weight="balanced"`` makes the probabilities read as P(synthetic) under equal priors
    whatever the ratio of generated to reference clips; AUC itself does not depend on it. Scaling
    is fitted inside each fold (no information from the held-out fold leaks). A training fold that
    holds one class only scores its held-out clips 0.5.
    """

    name = "logistic"

    def __init__(self, C: float = 1.0, max_folds: int = 5, max_iter: int = 100, tol: float = 1e-9):
        self.C = float(C)
        self.max_folds = int(max_folds)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self._split_cache: dict[bytes, list[tuple[np.ndarray, np.ndarray]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_split_cache": {}}

    def describe(self) -> str:
        return (
            f"StandardScaler + L2 logistic regression (scikit-learn's LogisticRegression(C={self.C:g}, "
            "class_weight=balanced) objective, solved exactly by Newton's method in the row space of the training features), "
            f"StratifiedGroupKFold grouped by prompt and content hash, k = min({self.max_folds}, smallest class, groups), "
            "shuffled with the run seed"
        )

    @staticmethod
    def _groups(y: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return np.arange(len(y)) if groups is None else np.asarray(groups)

    def n_folds(self, y: np.ndarray, groups: np.ndarray | None = None) -> int:
        y = np.asarray(y, dtype=np.intp)
        counts = np.bincount(y, minlength=2)
        return int(min(self.max_folds, counts.min(), np.unique(self._groups(y, groups)).size))

    def folds(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train, test) index pairs of ``StratifiedGroupKFold(k, shuffle=True, random_state=seed)``
        (:func:`stratified_group_kfold`). The split depends only on each group's class counts and
        the seed, so relabellings that keep those counts share it (cached)."""
        y = np.asarray(y, dtype=np.intp)
        g = self._groups(y, groups)
        k = self.n_folds(y, g)
        if k < 2:
            raise ValueError(
                f"cross-validation needs ≥ 2 clips of each class in ≥ 2 groups, got counts "
                f"{np.bincount(y, minlength=2).tolist()} in {np.unique(g).size} group(s)")
        _, ginv = np.unique(g, return_inverse=True)
        counts = np.zeros((ginv.max() + 1, 2), np.int64)
        np.add.at(counts, (ginv, y), 1)
        key = np.concatenate([[k, int(seed) % (2**32), len(y)], ginv, counts.ravel()]).astype(np.int64).tobytes()
        hit = self._split_cache.get(key)
        if hit is None:
            hit = stratified_group_kfold(y, g, k, int(seed) % (2**32))
            if len(self._split_cache) > 4096:
                self._split_cache.clear()
            self._split_cache[key] = hit
        return hit

    def fit_predict_oof(self, X: np.ndarray, y: np.ndarray, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
        y = np.asarray(y, dtype=np.intp)
        for train, _ in self.folds(y, groups, seed):
            if np.unique(y[train]).size < 2:
                raise ValueError(
                    "a training fold holds clips of one side only: the groups (prompts) do not let both sides be "
                    "cross-validated; give the generated and reference sets more prompts in common")
        return self.fit_predict_oof_many(X, y[None, :], seed, groups)[0]

    def fit_predict_oof_many(self, X: np.ndarray, Y: np.ndarray, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
        """Out-of-fold P(y = 1) (P, n) for each row of labels ``Y`` (P, n); relabellings sharing a
        fold split are fitted together."""
        with _one_blas_thread():  # small matrices: BLAS threads only contend (×50 slower on a busy machine)
            return self._oof_many(np.asarray(X, dtype=np.float64), np.atleast_2d(np.asarray(Y, dtype=np.intp)), seed, groups)

    def _oof_many(self, X: np.ndarray, Y: np.ndarray, seed: int, groups: np.ndarray | None) -> np.ndarray:
        """Every (relabelling, fold) fit as one problem; each distinct fold's geometry computed once
        (relabellings that keep the groups' class counts share their folds), problems of equal shape
        fitted in batches."""
        out = np.full(Y.shape, np.nan)
        fold_ids: dict[tuple[int, int], int] = {}
        folds: list[tuple[np.ndarray, np.ndarray]] = []
        problems: list[tuple[int, int]] = []  # (row of Y, fold id)
        splits = []  # held, so that no split's id() is reused while this runs
        for i, y in enumerate(Y):
            split = self.folds(y, groups, seed)
            splits.append(split)
            for j, (train, test) in enumerate(split):
                if not len(test):
                    continue
                key = (id(split), j)
                if key not in fold_ids:
                    fold_ids[key] = len(folds)
                    folds.append((train, test))
                problems.append((i, fold_ids[key]))
        # geometry of every distinct fold, batched by shape
        geom: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(folds)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for f, (train, test) in enumerate(folds):
            by_shape.setdefault((len(train), len(test)), []).append(f)
        d = X.shape[1]
        for (m, t), fs in by_shape.items():
            per = max(1, _BATCH_BYTES // (8 * (m + t) * max(d, m)))
            for c in range(0, len(fs), per):
                chunk = fs[c:c + per]
                ztr, zte = _fold_geometry(X, np.stack([folds[f][0] for f in chunk]), np.stack([folds[f][1] for f in chunk]))
                for q, f in enumerate(chunk):
                    geom[f] = (ztr[q], zte[q])
        # the fits: a fold shared by many relabellings in one batch with its design shared, the
        # rest batched by shape with a design each
        by_fold: dict[int, list[int]] = {}
        for q, (_, f) in enumerate(problems):
            by_fold.setdefault(f, []).append(q)
        loose: dict[tuple[int, ...], list[int]] = {}
        for f, qs in by_fold.items():
            if len(qs) >= _SHARED_MIN:
                k = geom[f][0].shape[1] + 1
                per = max(1, _BATCH_BYTES // (8 * k * max(k, len(folds[f][0]))))
                for c in range(0, len(qs), per):
                    self._fit_batch(X, Y, problems, folds, geom, qs[c:c + per], out, shared=True)
            else:
                loose.setdefault(geom[f][0].shape + geom[f][1].shape[:1], []).extend(qs)
        for (m, r, _t), qs in loose.items():
            per = max(1, _BATCH_BYTES // (8 * m * (r + 1)))
            for c in range(0, len(qs), per):
                self._fit_batch(X, Y, problems, folds, geom, qs[c:c + per], out, shared=False)
        return out

    def _fit_batch(self, X: np.ndarray, Y: np.ndarray, problems: list[tuple[int, int]],
                   folds: list[tuple[np.ndarray, np.ndarray]], geom: list, chunk: list[int], out: np.ndarray,
                   *, shared: bool) -> None:
        """Fit the problems ``chunk`` (same shapes; one fold when ``shared``) and write their
        held-out scores into ``out``."""
        rows = np.asarray([problems[q][0] for q in chunk])
        fids = [problems[q][1] for q in chunk]
        train = np.stack([folds[f][0] for f in fids])
        test = np.stack([folds[f][1] for f in fids])
        m, t = train.shape[1], test.shape[1]
        yt = np.take_along_axis(Y[rows], train, axis=1).astype(np.float64)
        n_pos = yt.sum(axis=1, keepdims=True)
        ok = ((n_pos > 0) & (n_pos < m))[:, 0]
        scores = np.full((len(chunk), t), 0.5)  # a training fold of one class: no model, chance
        if ok.any():
            idx = np.flatnonzero(ok)
            y_ok, n_ok = yt[ok], n_pos[ok]
            s = np.where(y_ok > 0, m / (2.0 * n_ok), m / (2.0 * (m - n_ok)))  # class_weight="balanced"
            if shared:
                ztr, zte = geom[fids[0]]
                r = ztr.shape[1]
                theta = _newton_logistic(np.hstack([ztr, np.ones((m, 1))]), y_ok, s, self.C, self.max_iter, self.tol)
                f = theta[:, :r] @ zte.T + theta[:, r:]
            else:
                ztr = np.stack([geom[fids[i]][0] for i in idx])
                zte = np.stack([geom[fids[i]][1] for i in idx])
                r = ztr.shape[2]
                A = np.concatenate([ztr, np.ones((len(idx), m, 1))], axis=2)
                theta = _newton_logistic(A, y_ok, s, self.C, self.max_iter, self.tol)
                f = (zte @ theta[:, :r, None])[:, :, 0] + theta[:, r:]
            scores[ok] = 0.5 * (1.0 + np.tanh(0.5 * f))
        out[rows[:, None], test] = scores


# --------------------------------------------------------------------------- AUC and its uncertainty


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


def roc_auc_rows(scores: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """:func:`roc_auc` of every row of ``scores`` (P, n) against the labels in the same row of ``Y``."""
    from scipy.stats import rankdata

    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    yb = np.atleast_2d(np.asarray(Y)).astype(bool)
    ranks = rankdata(s, axis=1)
    n_pos = yb.sum(axis=1)
    n_neg = yb.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.sum(ranks * yb, axis=1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


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


def _accepts_groups(detector: Any, method: str = "fit_predict_oof") -> bool:
    fn = getattr(detector, method, None)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "groups" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def detector_oof(detector: Any, X: np.ndarray, y: np.ndarray, seed: int, groups: np.ndarray | None) -> np.ndarray:
    """Out-of-fold scores from any detector, passing the fold groups when it takes them."""
    if groups is not None and _accepts_groups(detector):
        return np.asarray(detector.fit_predict_oof(X, y, seed, groups=groups), dtype=np.float64)
    return np.asarray(detector.fit_predict_oof(X, y, seed), dtype=np.float64)


def _null_chunk(detector: Any, X: np.ndarray, Y: np.ndarray, seed: int, groups: np.ndarray | None) -> np.ndarray:
    """AUC of the cross-validated detector refitted on every relabelling (row) of ``Y``; one BLAS thread."""
    with _one_blas_thread():
        if hasattr(detector, "fit_predict_oof_many"):
            scores = np.asarray(detector.fit_predict_oof_many(X, Y, seed, groups), dtype=np.float64)
        else:
            scores = np.stack([detector_oof(detector, X, y, seed, groups) for y in Y])
        return roc_auc_rows(scores, Y)


#: workers and wall seconds of the latest :func:`permutation_null` (diagnostics; not part of any result)
_LAST_RUN: dict[str, Any] = {}


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def permutation_null(detector: Any, X: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None, seed: int,
                     n_permutations: int = N_PERMUTATIONS, n_jobs: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """AUCs of the detector refitted on ``n_permutations`` relabellings (:func:`draw_relabellings`).

    The relabellings are drawn up front and every refit uses the run seed, so the result is the
    same whatever the number of workers. A small pilot runs here; when the rest would take more
    than :data:`PARALLEL_MIN_S` seconds it is spread over ``n_jobs`` worker processes (joblib,
    default: the usable cores), else it runs here too.
    """
    y = np.asarray(y, dtype=np.intp)
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    Y = draw_relabellings(y, g, n_permutations, seed)
    t0 = time.perf_counter()
    n_jobs = usable_cores() if n_jobs is None else max(1, int(n_jobs))
    pilot = min(len(Y), max(4, len(Y) // 20))
    parts = [_null_chunk(detector, X, Y[:pilot], seed, groups)]
    rest = Y[pilot:]
    per = (time.perf_counter() - t0) / max(pilot, 1)
    used = 1
    if len(rest) and n_jobs > 1 and per * len(rest) > PARALLEL_MIN_S:
        try:
            import pickle

            pickle.dumps(detector)
            from joblib import Parallel, delayed

            chunks = np.array_split(rest, min(n_jobs, len(rest)))
            got = Parallel(n_jobs=len(chunks), backend="loky")(
                delayed(_null_chunk)(detector, X, c, seed, groups) for c in chunks)
            parts.extend(got)
            used = len(chunks)
            rest = rest[:0]
        except Exception:  # noqa: BLE001 - unpicklable detector, no process support: run here
            pass
    if len(rest):
        parts.append(_null_chunk(detector, X, rest, seed, groups))
    strata = permutation_strata(y, g)
    _LAST_RUN.update(n_jobs=used, seconds=time.perf_counter() - t0)
    info = {  # only what the result depends on: workers and seconds vary by machine, metrics.json must not
        "n_permutations": int(n_permutations),
        "n_relabellings_possible": n_relabellings(y, strata),
        "scheme": ("labels permuted within each prompt group holding both sides (its counts kept) and among the clips "
                   "of single-side groups; the whole grouped cross-validation refitted on each relabelling, same fold seed"),
    }
    return np.concatenate(parts), info


def null_summary(value: float, null: np.ndarray, *, level: float = CI_LEVEL) -> dict[str, Any]:
    """p-value (one-sided, AUC ≥ observed), the null's band, and the CI that inverts the test.

    CI = [AUC − (q97.5 − 0.5), AUC + (0.5 − q2.5)] from the null's quantiles q: it contains 0.5
    exactly when the AUC lies in the null band, so under the null it covers at the band's rate
    (95%); its upper end is never below 0.5 (chance is the boundary of the AUC's meaning), which
    makes the coverage at chance 97.5%; clipped to [0, 1]."""
    finite = null[np.isfinite(null)]
    alpha = (1.0 - level) / 2.0
    lo_band, hi_band = (float(np.quantile(finite, alpha)), float(np.quantile(finite, 1.0 - alpha))) if finite.size else (None, None)
    p = float((1 + np.sum(finite >= value - 1e-12)) / (1 + finite.size))
    ci = (None, None)
    if lo_band is not None:
        # chance (0.5) is the bottom of what the AUC of a detector can mean: an upper bound below it
        # would read as "less detectable than real", which no data can show, so it is raised to 0.5
        ci = (max(0.0, value - (hi_band - 0.5)), min(1.0, max(0.5, value + (0.5 - lo_band))))
    return {"p_value": p, "null_band": [lo_band, hi_band], "ci": ci,
            "null_mean": float(finite.mean()) if finite.size else None,
            "null_sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
            "n_null_finite": int(finite.size)}


def verdict(value: float, p: float, band: list[float | None]) -> str:
    lo, hi = band
    band_s = f"[{lo:.2f}, {hi:.2f}]" if lo is not None else "n/a"
    if p >= ALPHA:
        where = "below" if lo is not None and value < lo else "inside"
        return (f"indistinguishable from the reference (p = {p:.3g}): AUC {value:.2f} is {where} the 95% band of "
                f"chance {band_s}")
    return f"distinguishable from the reference (p = {p:.3g}): AUC {value:.2f} is above the 95% band of chance {band_s}"


# --------------------------------------------------------------------------- the metric


class DetectorAUC(Metric):
    """Cross-validated real-vs-generated classifier AUC (0.5 = indistinguishable) with a permutation
    test (p-value, null band) and per-clip P(synthetic)."""

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
        "melstats 154-d); StandardScaler + L2 logistic regression (C=1, balanced classes), StratifiedGroupKFold "
        "grouped by prompt and content hash (k = min(5, smallest class, groups), seeded); value = ROC AUC of the "
        f"out-of-fold P(synthetic); label-permutation test ({N_PERMUTATIONS} relabellings within prompts, the whole "
        "cross-validation refitted each time): one-sided p = (1 + #{null AUC ≥ AUC})/(1 + n), the null's 95% band, "
        "'indistinguishable from the reference' when p ≥ 0.05; 95% CI = the null band's spread about 0.5 moved onto "
        "the AUC (inverts the permutation test; includes refitting variance), its upper end never below 0.5; ranking quantity = max(AUC, 0.5) "
        "(extra.rank_value): an AUC below 0.5 is chance; per_clip = out-of-fold P(synthetic) of each generated clip."
    )

    def __init__(self, backbone: str | None = None, **options: Any):
        super().__init__(backbone, **options)
        det = options.get("detector")
        self.detector: Detector = det if det is not None else LogisticDetector(**options.get("detector_params", {}))
        if not isinstance(self.detector, Detector):
            raise TypeError(f"detector must implement fit_predict_oof(X, y, seed) and describe(), got {type(det).__name__}")

    @classmethod
    def ranking_value(cls, value: float | None, extra: dict[str, Any] | None = None) -> float | None:
        """max(AUC, 0.5): below-chance AUCs rank as chance, never better."""
        return None if value is None else max(float(value), 0.5)

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
        same = same_files_warning(gen, ref, gids, rids)
        if same:
            warnings.append(same)
        x = np.concatenate([xg, xr])
        y = np.concatenate([np.ones(len(gids), np.intp), np.zeros(len(rids), np.intp)])
        pg, hg = _meta_keys(gen, gids)
        pr, hr = _meta_keys(ref, rids)
        groups = groups_from_keys(pg + pr, hg + hr)
        n_groups = int(np.unique(groups).size)
        try:
            oof = detector_oof(self.detector, x, y, seed, groups)
        except ValueError as exc:
            return self.result(None, status="failed", n=len(gids), warnings=warnings, reason=f"cross-validation: {exc}",
                               fix=FEW_CLIPS_FIX)
        if oof.shape != y.shape or not np.isfinite(oof).all():
            return self.result(None, status="failed", n=len(gids), warnings=warnings,
                               reason=f"detector {getattr(self.detector, 'name', '?')} returned {oof.shape} scores "
                               f"with {int((~np.isfinite(oof)).sum())} non-finite for {len(y)} clips")
        value = roc_auc(oof, y)
        n_boot = int(self.options.get("n_boot", N_BOOTSTRAP))
        boot_ci = percentile_interval(stratified_bootstrap_auc(oof, y, n_boot=n_boot, seed=seed), level=CI_LEVEL)
        folds = (self.detector.n_folds(y, groups) if _accepts_groups(self.detector, "n_folds")
                 else self.detector.n_folds(y)) if hasattr(self.detector, "n_folds") else None
        n_perm = int(self.options.get("n_permutations", N_PERMUTATIONS))
        extra: dict[str, Any] = {
            "n_ref": len(rids), "n_gen": len(gids), "dim": int(x.shape[1]), "feature_dims": dims,
            "detector": getattr(self.detector, "name", type(self.detector).__name__), "folds": folds,
            "n_groups": n_groups, "grouped_by": "prompt_id and content hash (clips without either: one group each)",
            "n_boot": n_boot, "bootstrap_ci": list(boot_ci),
            "mean_p_synthetic_gen": float(oof[: len(gids)].mean()),
            "mean_p_synthetic_ref": float(oof[len(gids):].mean()),
            "rank_value": self.ranking_value(value),
        }
        if n_perm > 0:
            null, info = permutation_null(self.detector, x, y, groups=groups, seed=seed, n_permutations=n_perm,
                                          n_jobs=self.options.get("n_jobs"))
            summ = null_summary(value, null)
            lo, hi = summ.pop("ci")
            extra.update(summ, n_permutations=n_perm, permutation=info,
                         verdict=verdict(value, summ["p_value"], summ["null_band"]),
                         ci_method="the permutation null's 95% spread about 0.5, moved onto the AUC (test inversion), "
                                   "upper end ≥ 0.5")
            if summ["n_null_finite"] < len(null):
                warnings.append(f"{len(null) - summ['n_null_finite']} of {len(null)} relabellings gave no AUC")
            if info["n_relabellings_possible"] < n_perm:
                warnings.append(f"only {info['n_relabellings_possible']} distinct relabellings exist for these groups: "
                                "the p-value cannot go below 1/that")
            band_lo = summ["null_band"][0]
            if band_lo is not None and value < band_lo:
                warnings.append(
                    f"AUC {value:.2f} is below the band of chance: a below-chance AUC is an artefact of cross-validating "
                    "few clips (anti-learning), not evidence that the clips look more real than the reference; it ranks as 0.5")
            ci_text = (f"95% CI: the 2.5–97.5% spread of the permutation null about 0.5 moved onto the AUC, clipped to "
                       f"[0, 1], its upper end never below 0.5 (inverts the permutation test; includes refitting variance; "
                       "conservative far from 0.5; covers 0.5 in 95% of null draws plus the 2.5% below the band); "
                       f"extra.bootstrap_ci: percentile bootstrap of the fitted scores ({n_boot} resamples, refitting variance "
                       "not included)")
            perm_text = (f"label-permutation test: {n_perm} relabellings (within each prompt holding both sides, and among "
                         "single-side groups), the whole cross-validation refitted on each with the same fold seed; one-sided "
                         "p = (1 + #{null AUC ≥ AUC})/(1 + n); extra.null_band = its 2.5/97.5% quantiles; "
                         f"'indistinguishable from the reference' when p ≥ {ALPHA:g}")
        else:
            lo, hi = boot_ci
            extra["ci_method"] = "percentile bootstrap of the fitted scores (no permutation test: n_permutations = 0)"
            warnings.append("no permutation test (n_permutations = 0): the CI leaves out refitting variance and "
                            "under-covers at small n")
            ci_text = (f"95% CI: percentile bootstrap over clips stratified by class ({n_boot} resamples, fitted scores held "
                       "fixed: refitting variance not included)")
            perm_text = "no permutation test"
        res = self.result(value, n=len(gids), ci_low=lo, ci_high=hi, warnings=warnings,
                          per_clip={c: float(p) for c, p in zip(gids, oof[: len(gids)])}, extra=extra)
        res.convention = (
            f"classifier two-sample test on {'+'.join(f'{n} ({d}-d)' for n, d in dims.items())}: generated y=1, reference y=0; "
            f"{self.detector.describe()}; value = ROC AUC of out-of-fold P(synthetic) (0.5 = indistinguishable); "
            f"{perm_text}; {ci_text}; ranking quantity = max(AUC, 0.5) (extra.rank_value): an AUC below 0.5 is chance, "
            "never better; per_clip = out-of-fold P(synthetic) of each generated clip."
        )
        return res
