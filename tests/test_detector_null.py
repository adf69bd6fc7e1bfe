"""The detector under the null: chance reads as chance (permutation test, calibrated CI, grouped folds).

Fast by construction: few clips, small feature dimensions, relabellings refitted in batches (a
suite-like design keeps one fold split for every relabelling), 99 relabellings per trial.
"""

from __future__ import annotations

import numpy as np
import pytest

from mova_bench.metrics.base import FeatureSet
from mova_bench.metrics.detector import (DetectorAUC, LogisticDetector, draw_relabellings, groups_from_keys,
                                         null_summary, permutation_null, permutation_strata, roc_auc,
                                         roc_auc_rows, stratified_group_kfold)
from mova_bench.metrics.distribution import FrechetVideo, KIDVideo

# a suite's design: 8 prompts, 2 generated and 3 reference clips each (impacts_set: 11 × 2 vs 11 × 3)
PROMPTS, GEN_PER, REF_PER = 8, 2, 3
Y_SUITE = np.r_[np.ones(PROMPTS * GEN_PER, np.intp), np.zeros(PROMPTS * REF_PER, np.intp)]
G_SUITE = np.r_[np.repeat(np.arange(PROMPTS), GEN_PER), np.repeat(np.arange(PROMPTS), REF_PER)]


def _null_features(seed: int, dim: int = 6) -> np.ndarray:
    """Both sides from one distribution; clips of a prompt share a prompt effect (on both sides)."""
    rng = np.random.default_rng([seed, 7])
    return rng.standard_normal((PROMPTS, dim))[G_SUITE] + rng.standard_normal((len(Y_SUITE), dim))


def _trial(det, x, y, groups, seed, n_perm=99):
    oof = det.fit_predict_oof(x, y, seed, groups=groups)
    auc = roc_auc(oof, y)
    null, _ = permutation_null(det, x, y, groups=groups, seed=seed, n_permutations=n_perm, n_jobs=1)
    return auc, null_summary(auc, null), oof


# --------------------------------------------------------------------------- calibration


def test_null_calibration_ci_covers_chance_and_p_is_uniform():
    """200 null trials at a suite's design: the null band holds the AUC at its nominal 95% (so the
    CI, its inversion, covers 0.5 at that rate, plus the 2.5% below the band where its upper end
    is raised to 0.5), and p is ~uniform."""
    det = LogisticDetector()
    inside, below, cover, ps = [], [], [], []
    for s in range(200):
        auc, summ, _ = _trial(det, _null_features(s), Y_SUITE, G_SUITE, s)
        lo, hi = summ["null_band"]
        inside.append(lo <= auc <= hi)
        below.append(auc < lo)
        cover.append(summ["ci"][0] <= 0.5 <= summ["ci"][1])
        ps.append(summ["p_value"])
    ps = np.asarray(ps)
    rate = float(np.mean(inside))
    assert 0.91 <= rate <= 0.99, rate  # nominal 0.95; binomial sd over 200 trials ≈ 0.015
    assert cover == [a or b for a, b in zip(inside, below)]  # the CI is the test's inversion
    assert 0.93 <= np.mean(cover) <= 1.0
    assert 0.02 <= np.mean(ps <= 0.05) <= 0.09, np.mean(ps <= 0.05)
    assert 0.40 <= np.mean(ps <= 0.5) <= 0.60
    ks = np.max(np.abs(np.sort(ps) - np.arange(1, ps.size + 1) / ps.size))
    assert ks < 0.11, ks  # Kolmogorov–Smirnov distance to U(0, 1); 5% critical value at n = 200: 0.096


def test_null_calibration_without_prompts():
    """Clips without prompts (one group each), 20 per class as in the issue: the null band holds the
    AUC at about its nominal rate and p is not concentrated near 0."""
    det = LogisticDetector()
    y = np.r_[np.ones(20, np.intp), np.zeros(20, np.intp)]
    inside, ps = [], []
    for s in range(40):
        x = np.random.default_rng([s, 8]).standard_normal((40, 4))
        auc, summ, _ = _trial(det, x, y, None, s, n_perm=49)
        lo, hi = summ["null_band"]
        inside.append(lo <= auc <= hi)
        ps.append(summ["p_value"])
    assert np.mean(inside) >= 0.85 and np.mean(np.asarray(ps) <= 0.05) <= 0.125


def test_degraded_case_auc_near_one_and_p_below_001():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((len(Y_SUITE), 40))
    x[Y_SUITE == 1, :4] += 2.0
    auc, summ, _ = _trial(LogisticDetector(), x, Y_SUITE, G_SUITE, 0, n_perm=200)
    assert auc > 0.95 and summ["p_value"] < 0.01 and summ["p_value"] == pytest.approx(1 / 201)
    assert summ["ci"][0] > 0.5 and summ["null_band"][1] < auc


# --------------------------------------------------------------------------- leakage


class InSample(LogisticDetector):
    """A leaky detector: scores every clip with a model fitted on all clips, itself included."""

    def fit_predict_oof_many(self, X, Y, seed, groups=None):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
        return np.stack([model.fit(X, y).predict_proba(X)[:, 1] for y in np.atleast_2d(Y)])


class UngroupedFolds(LogisticDetector):
    """Folds that ignore prompts (plain stratified k-fold): prompts leak between train and test."""

    def fit_predict_oof_many(self, X, Y, seed, groups=None):
        return super().fit_predict_oof_many(X, Y, seed, None)


def _leakage_check(det) -> None:
    """Two sets from one distribution, n < dim, prompts on one side only (a real-clip reference
    without prompts): a detector that does not leak stays near chance."""
    aucs = []
    for s in range(6):
        rng = np.random.default_rng([s, 9])
        n_prompts, per = 6, 4
        x_gen = rng.standard_normal((n_prompts, 60))[np.repeat(np.arange(n_prompts), per)]
        x_gen += 0.5 * rng.standard_normal(x_gen.shape)
        x_ref = rng.standard_normal((n_prompts * per, 60))[:, :] * np.sqrt(1.25)  # same marginal distribution
        x = np.concatenate([x_gen, x_ref])
        y = np.r_[np.ones(len(x_gen), np.intp), np.zeros(len(x_ref), np.intp)]
        groups = groups_from_keys([f"p{i // per}" for i in range(len(x_gen))] + [None] * len(x_ref),
                                  [f"g{i}" for i in range(len(x_gen))] + [f"r{i}" for i in range(len(x_ref))])
        aucs.append(roc_auc(det.fit_predict_oof(x, y, s, groups=groups), y))
    assert np.mean(aucs) < 0.75, f"leak: mean AUC {np.mean(aucs):.2f} on indistinguishable sets ({np.round(aucs, 2)})"


def test_leakage_check_passes_for_the_detector_and_fails_for_leaky_ones():
    _leakage_check(LogisticDetector())
    with pytest.raises(AssertionError, match="leak"):
        _leakage_check(InSample())  # scored by a model that saw the clip: AUC ≈ 1 on noise
    with pytest.raises(AssertionError, match="leak"):
        _leakage_check(UngroupedFolds())  # learns prompts instead of "synthetic"


# --------------------------------------------------------------------------- the machinery


def test_stratified_group_kfold_is_scikit_learns_split_for_split():
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(1)
    checked = 0
    for trial in range(120):
        n = int(rng.integers(6, 60))
        y = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(np.intp)
        if min(y.sum(), n - y.sum()) < 2:
            continue
        groups = np.arange(n) if trial % 2 else rng.integers(0, int(rng.integers(2, n)), n)
        k = int(min(5, np.bincount(y).min(), np.unique(groups).size))
        if k < 2:
            continue
        seed = int(rng.integers(0, 2**31))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = [(a.tolist(), b.tolist()) for a, b in
                   StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), y, groups)]
        assert [(a.tolist(), b.tolist()) for a, b in stratified_group_kfold(y, groups, k, seed)] == ref
        checked += 1
    assert checked > 80


@pytest.mark.parametrize("n_gen, n_ref, dim, grouped", [(22, 33, 247, True), (20, 20, 6, False), (12, 12, 90, False)])
def test_logistic_detector_equals_scikit_learns_pipeline(n_gen, n_ref, dim, grouped):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(dim)
    x = rng.standard_normal((n_gen + n_ref, dim))
    x[:n_gen, :3] += 0.5
    x[:, 1] = 3.0  # a constant feature keeps scale 1, as StandardScaler does
    y = np.r_[np.ones(n_gen, np.intp), np.zeros(n_ref, np.intp)]
    groups = np.r_[np.arange(n_gen) // 2, np.arange(n_ref) // 3] if grouped else None
    det = LogisticDetector()
    got = det.fit_predict_oof(x, y, 0, groups=groups)
    want = np.full(len(y), np.nan)
    for train, test in det.folds(y, groups, 0):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", tol=1e-12, max_iter=100_000))
        model.fit(x[train], y[train])
        want[test] = model.predict_proba(x[test])[:, 1]
    np.testing.assert_allclose(got, want, atol=2e-6)
    # a batch of relabellings gives each one's own fit
    Y = draw_relabellings(y, np.arange(len(y)) if groups is None else groups, 3, seed=5)
    many = det.fit_predict_oof_many(x, Y, 0, groups)
    for row, yy in zip(many, Y):
        np.testing.assert_allclose(row, det.fit_predict_oof_many(x, yy[None], 0, groups)[0], atol=1e-9)


def test_groups_and_relabellings_respect_prompts_and_identical_files():
    g = groups_from_keys(["a", "a", "b", None, None, "b", None],
                         ["h1", "h2", "h3", "h4", "h1", "h5", None])
    assert g[0] == g[1] == g[4]  # prompt a, and clip 4 is the same file as clip 0
    assert g[2] == g[5] and len({g[0], g[2], g[3], g[6]}) == 4
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    groups = np.array([0, 0, 1, 0, 1, 2, 3, 4])  # 0 and 1 mixed; 2, 3, 4 single-side
    strata = permutation_strata(y, groups)
    assert [s.tolist() for s in strata] == [[0, 1, 3], [2, 4], [5, 6, 7]]
    Y = draw_relabellings(y, groups, 50, seed=0)
    for idx in strata:
        assert (Y[:, idx].sum(axis=1) == y[idx].sum()).all()  # counts kept within every stratum
    assert np.array_equal(Y, draw_relabellings(y, groups, 50, seed=0)) and len({r.tobytes() for r in Y}) > 5
    assert np.allclose(roc_auc_rows(Y.astype(float), Y), 1.0)


def test_permutation_results_do_not_depend_on_the_workers(monkeypatch):
    from mova_bench.metrics import detector as dmod

    x = _null_features(1, dim=5)
    det = LogisticDetector()
    serial, info1 = permutation_null(det, x, Y_SUITE, groups=G_SUITE, seed=3, n_permutations=40, n_jobs=1)
    assert dmod._LAST_RUN["n_jobs"] == 1
    monkeypatch.setattr(dmod, "PARALLEL_MIN_S", 0.0)
    parallel, info2 = permutation_null(det, x, Y_SUITE, groups=G_SUITE, seed=3, n_permutations=40, n_jobs=2)
    assert dmod._LAST_RUN["n_jobs"] == 2
    np.testing.assert_array_equal(serial, parallel)
    assert info1 == info2  # nothing machine-dependent is recorded


# --------------------------------------------------------------------------- the metric


def _fs(x: np.ndarray, prefix: str, prompts: list[str | None], hashes: list[str | None]) -> FeatureSet:
    ids = [f"{prefix}{i}" for i in range(len(x))]
    return FeatureSet(ids, {"vstats": {c: {"embedding": r} for c, r in zip(ids, x)}},
                      meta={c: {"clip_id": c, "prompt_id": p, "content_hash": h} for c, p, h in zip(ids, prompts, hashes)})


def test_same_files_as_reference_warn_and_read_as_chance():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 5))
    hashes = [f"sha{i}" for i in range(16)]
    gen = _fs(x, "", [None] * 16, hashes)
    ref = _fs(x.copy(), "ref:", [None] * 16, hashes)  # the same folder given as clips and reference
    res = DetectorAUC(backbone="vstats").compute(gen, ref, seed=0)
    assert any("same files" in w for w in res.warnings)
    # twins share a fold: identical scores, AUC exactly 0.5 (it read 0.008 before grouping)
    assert res.value == 0.5 and res.extra["p_value"] == 1.0 and res.extra["verdict"].startswith("indistinguishable")
    for metric in (FrechetVideo(), KIDVideo()):
        assert any("same files" in w for w in metric.compute(gen, ref, seed=0).warnings), metric.key
    partial = _fs(x, "", [None] * 16, hashes[:4] + [f"other{i}" for i in range(12)])
    assert any("4 of 16 generated clips are byte-identical" in w for w in FrechetVideo().compute(partial, ref).warnings)
    assert not any("identical" in w or "same files" in w
                   for w in FrechetVideo().compute(_fs(x, "", [None] * 16, [f"o{i}" for i in range(16)]), ref).warnings)


def test_below_chance_auc_ranks_as_chance_and_says_why():
    assert DetectorAUC.ranking_value(0.2) == 0.5 and DetectorAUC.ranking_value(0.8) == 0.8
    assert DetectorAUC.ranking_value(None) is None
    # find a null trial whose AUC falls below the band of chance (anti-learning at small n)
    det = DetectorAUC(backbone="vstats", n_permutations=99)
    for s in range(60):
        x = np.random.default_rng([s, 5]).standard_normal((24, 3))
        gen = _fs(x[:12], "g", [f"p{i % 6}" for i in range(12)], [f"g{i}" for i in range(12)])
        ref = _fs(x[12:], "r", [f"p{i % 6}" for i in range(12)], [f"r{i}" for i in range(12)])
        res = det.compute(gen, ref, seed=s)
        if res.value < res.extra["null_band"][0]:
            break
    else:  # pragma: no cover - the draw above has one
        pytest.fail("no below-band AUC in 60 null trials")
    assert res.extra["rank_value"] == 0.5 and res.extra["p_value"] > 0.9
    assert res.extra["verdict"].startswith("indistinguishable from the reference (p = ") and "below" in res.extra["verdict"]
    assert any("below the band of chance" in w for w in res.warnings)
    assert res.extra["bootstrap_ci"][1] < 0.5 == res.ci_high  # the old CI excluded chance; the new one reaches it


def test_designs_that_cannot_be_cross_validated_by_prompt_fail_with_the_reason():
    rng = np.random.default_rng(6)
    one = ["only"] * 6
    res = DetectorAUC(backbone="vstats").compute(_fs(rng.standard_normal((6, 3)), "g", one, [None] * 6),
                                                 _fs(rng.standard_normal((6, 3)), "r", one, [None] * 6))
    assert res.status == "failed" and "2 groups" in res.reason  # one prompt in all: one group
    # every generated clip from one prompt, reference clips without prompts: a fold trains on no generated clip
    res = DetectorAUC(backbone="vstats").compute(_fs(rng.standard_normal((6, 3)), "g", one, [None] * 6),
                                                 _fs(rng.standard_normal((6, 3)), "r", [None] * 6, [None] * 6))
    assert res.status == "failed" and "one side only" in res.reason
