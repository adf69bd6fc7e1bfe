"""Fréchet distance, running statistics, KID and the distribution metric classes.

Tolerances (stated, not tuned to pass):
* vs a 50-digit mpmath reference on covariances with condition number 1e8: relative error ≤ 1e-6
  (observed ~1e-11);
* vs torchmetrics ``_compute_fid`` (eigvals of Σ₁Σ₂, float64) on full-rank covariances: ≤ 1e-8;
* KID vs torchmetrics ``poly_mmd`` on the same subsets, and vs torchmetrics
  ``KernelInceptionDistance`` when every subset is the whole set: ≤ 1e-9 relative.
"""

from __future__ import annotations

import importlib
import json
import zipfile

import numpy as np
import pytest

from mova_bench.metrics.base import FeatureSet
from mova_bench.metrics.distribution import FrechetAudio, FrechetVideo, KIDAudio, KIDVideo
from mova_bench.metrics.frechet import (
    RunningStats,
    frechet_distance,
    frechet_from_parts,
    frechet_from_stats,
    mean_cov,
    save_stats_npz,
    singular_covariance_warning,
    trace_sqrt_product,
)
from mova_bench.metrics.kid import kid, kid_bootstrap, kid_subsets, kid_values, mmd2_unbiased, poly_kernel


def _cov(d: int, cond: float, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    ev = np.logspace(0, -np.log10(cond), d) * rng.uniform(0.5, 2.0)
    s = (q * ev) @ q.T
    return (s + s.T) / 2


def _mp_frechet(m1, s1, m2, s2):
    """FD at 50 digits: tr √(Σ₁Σ₂) from √ of the product, built from mpmath's general eigensolver.

    (mpmath's ``sqrtm`` (Denman–Beavers) cannot converge here: its stopping tolerance is 128·eps
    while the iteration stagnates near eps·cond.) The residual ‖R² − Σ₁Σ₂‖ is checked too.
    """
    mp = importlib.import_module("mpmath")
    with mp.workdps(50):
        a, b = mp.matrix(s1.tolist()), mp.matrix(s2.tolist())
        p = a * b
        e, er = mp.eig(p)
        r = er * mp.diag([mp.sqrt(v) for v in e]) * mp.inverse(er)
        residual = mp.mnorm(r * r - p, 1) / mp.mnorm(p, 1)
        n = a.rows
        tr = sum(r[i, i] for i in range(n))
        dmu = sum((mp.mpf(float(x)) - mp.mpf(float(y))) ** 2 for x, y in zip(m1, m2))
        value = dmu + sum(a[i, i] for i in range(n)) + sum(b[i, i] for i in range(n)) - 2 * mp.re(tr)
        return float(value), float(residual), float(abs(mp.im(tr)))


# --------------------------------------------------------------------------- Fréchet numerics


@pytest.mark.parametrize("d,seed", [(4, 0), (6, 1), (8, 2)])
def test_frechet_matches_mpmath_on_ill_conditioned_covariances(d, seed):
    rng = np.random.default_rng(seed)
    s1, s2 = _cov(d, 1e8, rng), _cov(d, 1e8, rng)
    assert 1e7 < np.linalg.cond(s1) < 1e9 and 1e7 < np.linalg.cond(s2) < 1e9
    m1, m2 = 0.1 * rng.standard_normal(d), 0.1 * rng.standard_normal(d)
    ref, residual, imag = _mp_frechet(m1, s1, m2, s2)
    assert residual < 1e-40 and imag < 1e-30  # the reference itself is right
    ours = frechet_distance(m1, s1, m2, s2)
    assert abs(ours - ref) / ref <= 1e-6, (ours, ref)


def test_frechet_matches_mpmath_when_covariances_are_close():
    rng = np.random.default_rng(7)
    s1 = _cov(6, 1e8, rng)
    s2 = s1 + 0.2 * _cov(6, 1e3, rng)  # shares most of its structure with s1
    m = np.zeros(6)
    ref, _, _ = _mp_frechet(m, s1, m, s2)
    ours = frechet_distance(m, s1, m, s2)
    assert abs(ours - ref) / ref <= 1e-6, (ours, ref)


def test_frechet_matches_torchmetrics_fid():
    torch = importlib.import_module("torch")
    fid = importlib.import_module("torchmetrics.image.fid")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 32)) @ rng.standard_normal((32, 32))
    y = rng.standard_normal((500, 32)) @ rng.standard_normal((32, 32)) + 0.3
    (m1, s1), (m2, s2) = mean_cov(x), mean_cov(y)
    ref = float(fid._compute_fid(*(torch.from_numpy(a) for a in (m1, s1, m2, s2))))
    ours = frechet_distance(m1, s1, m2, s2)
    assert abs(ours - ref) / ref <= 1e-8, (ours, ref)


def test_frechet_basic_properties():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    m, s = mean_cov(x)
    assert frechet_distance(m, s, m, s) == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(m, s, m, s) >= 0.0
    # diagonal closed form: Σ(μ₁−μ₂)² + Σ(√a − √b)²
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expect = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expect, rel=1e-12)
    assert trace_sqrt_product(np.diag(a), np.diag(b)) == pytest.approx(np.sum(np.sqrt(a * b)), rel=1e-12)
    # singular covariances (rank 2 in 3-d) stay finite and non-negative
    z = rng.standard_normal((3, 3))
    sing = z[:, :2] @ z[:, :2].T
    assert np.isfinite(frechet_distance(mu1, sing, mu2, sing)) and frechet_distance(mu1, sing, mu1, sing) < 1e-6


def test_frechet_errors_name_the_value():
    m, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(m, s, m, np.eye(4))
    with pytest.raises(ValueError, match="mu2"):
        frechet_distance(m, s, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(np.zeros((3, 1)), s, m, s)
    bad = np.eye(3)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"sigma1 has 1 non-finite entry"):
        frechet_distance(m, bad, m, s)
    with pytest.raises(ValueError, match="mu2 has 1 non-finite"):
        frechet_distance(m, s, np.array([0.0, np.inf, 0.0]), s)


# --------------------------------------------------------------------------- running statistics


def test_running_stats_merge_is_exact():
    rng = np.random.default_rng(1)
    x = rng.integers(-100, 100, size=(1000, 16)).astype(np.float64)
    one = RunningStats(16).update(x)
    parts = [RunningStats(16).update(x[i:j]) for i, j in ((0, 137), (137, 600), (600, 1000))]
    merged = RunningStats(16)
    for p in reversed(parts):  # any order
        merged.merge(p)
    assert merged.n == one.n == 1000
    assert np.array_equal(merged.sum_x, one.sum_x) and np.array_equal(merged.sum_xxT, one.sum_xxT)
    assert np.array_equal(one.sum_xxT, x.T @ x)
    batched = RunningStats(16)
    for i in range(0, 1000, 64):
        batched.update(x[i:i + 64])
    assert np.array_equal(batched.sum_xxT, one.sum_xxT) and np.array_equal(batched.mean, one.mean)

    y = rng.standard_normal((900, 16)) * 3 + 1
    a = RunningStats(16).update(y)
    b = RunningStats(16).update(y[:300]).merge(RunningStats(16).update(y[300:]))
    np.testing.assert_allclose(b.sum_xxT, a.sum_xxT, rtol=1e-12)
    m, c = mean_cov(y)
    np.testing.assert_allclose(a.mean, m, rtol=1e-12)
    np.testing.assert_allclose(a.cov, c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.cov, np.cov(y.T), rtol=1e-10, atol=1e-12)


def test_running_stats_checks_input():
    st = RunningStats(4)
    with pytest.raises(ValueError, match=r"expected \(n, 4\)"):
        st.update(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="rows \\[1\\]"):
        st.update(np.array([[0, 0, 0, 0], [0, np.nan, 0, 0]], dtype=float))
    with pytest.raises(ValueError, match="dim 3"):
        st.merge(RunningStats(3))
    with pytest.raises(ValueError, match="n ≥ 2"):
        RunningStats(2).update(np.ones(2)).cov


def test_frechet_from_stats_warns_when_n_below_dim():
    rng = np.random.default_rng(2)
    a = RunningStats.from_features(rng.standard_normal((5, 10)))
    b = RunningStats.from_features(rng.standard_normal((50, 10)))
    value, warnings = frechet_from_stats(a, b, labels=("generated", "reference"))
    assert np.isfinite(value) and value > 0
    assert len(warnings) == 1 and "generated: n=5 < dim=10" in warnings[0] and "singular" in warnings[0]
    _, none = frechet_from_stats(b, b)
    assert none == []


def test_n_below_dim_warning_has_one_wording():
    assert singular_covariance_warning("generated", 10, 10) is None
    text = singular_covariance_warning("generated", 5, 10)
    assert text.startswith("generated: n=5 < dim=10: the covariance is singular")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 10)), rng.standard_normal((50, 10))
    _, from_stats = frechet_from_stats(RunningStats.from_features(x), RunningStats.from_features(y), labels=("generated", "reference"))
    assert from_stats == [text]
    ids_g, ids_r = [f"g{i}" for i in range(5)], [f"r{i}" for i in range(50)]
    gen = FeatureSet(ids_g, {"vstats": {c: {"embedding": v} for c, v in zip(ids_g, x)}})
    ref = FeatureSet(ids_r, {"vstats": {c: {"embedding": v} for c, v in zip(ids_r, y)}})
    res = FrechetVideo(n_boot=20).compute(gen, ref)
    assert res.warnings == [singular_covariance_warning("generated set", 5, 10)]


def test_frechet_from_parts_combines_and_clips():
    d = np.array([3.0, 4.0])
    assert frechet_from_parts(d, 2.0, 3.0, 1.5) == 25.0 + 2.0 + 3.0 - 3.0
    assert frechet_from_parts(np.zeros(2), 1.0, 1.0, 1.0 + 1e-12) == 0.0  # rounding below 0 is clipped


def test_npz_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(4)
    st = RunningStats.from_features(rng.standard_normal((40, 6)))
    path = st.to_npz(tmp_path / "ref.npz", extractor="vstats", version="1", n_clips=40, params={"small_side": 64})
    with np.load(path, allow_pickle=False) as z:  # would raise on object arrays
        assert all(z[k].dtype != object for k in z.files)
        assert json.loads(str(z["provenance"][0]))["extractor"] == "vstats"
    with zipfile.ZipFile(path) as zf:
        assert not any(n.endswith(".pkl") for n in zf.namelist())
    back = RunningStats.from_npz(path)
    assert back.dim == 6 and back.n == st.n
    assert np.array_equal(back.sum_x, st.sum_x) and np.array_equal(back.sum_xxT, st.sum_xxT)
    assert back.provenance == {"extractor": "vstats", "version": "1", "n_clips": 40, "params": {"small_side": 64}}
    # several backbones in one file, read by prefix (as a stats reference set is)
    other = RunningStats.from_features(rng.standard_normal((30, 3)))
    multi = save_stats_npz(tmp_path / "multi.npz", {"vstats": st, "melstats": other}, suite="s")
    assert RunningStats.from_npz(multi, prefix="melstats/").dim == 3
    assert RunningStats.from_npz(multi, prefix="vstats/").provenance == {"suite": "s"}
    with pytest.raises(ValueError, match="missing"):
        RunningStats.from_npz(multi, prefix="i3d/")


# --------------------------------------------------------------------------- KID


def test_kid_matches_torchmetrics_poly_mmd_on_same_subsets():
    torch = importlib.import_module("torch")
    kid_mod = importlib.import_module("torchmetrics.image.kid")
    rng = np.random.default_rng(5)
    gen = rng.standard_normal((70, 12)) + 0.2
    ref = rng.standard_normal((90, 12))
    vals = kid_values(gen, ref, n_subsets=20, seed=3)
    expect = []
    for gi, ri in kid_subsets(70, 90, n_subsets=20, seed=3):
        assert len(gi) == len(ri) == 70 and len(set(ri.tolist())) == 70
        expect.append(float(kid_mod.poly_mmd(torch.from_numpy(ref[ri]), torch.from_numpy(gen[gi]))))
        direct = mmd2_unbiased(poly_kernel(gen[gi], gen[gi]), poly_kernel(ref[ri], ref[ri]), poly_kernel(gen[gi], ref[ri]))
        assert direct == pytest.approx(expect[-1], rel=1e-9)
    np.testing.assert_allclose(vals, expect, rtol=1e-9)
    mean, std = kid(gen, ref, n_subsets=20, seed=3)
    assert mean == pytest.approx(np.mean(expect), rel=1e-9) and std == pytest.approx(np.std(expect), rel=1e-6)


def test_kid_matches_torchmetrics_metric_when_subsets_are_the_whole_sets():
    torch = importlib.import_module("torch")
    kid_mod = importlib.import_module("torchmetrics.image.kid")
    rng = np.random.default_rng(6)
    gen, ref = rng.standard_normal((50, 8)) + 0.3, rng.standard_normal((50, 8))
    with pytest.warns(UserWarning):
        m = kid_mod.KernelInceptionDistance(feature=torch.nn.Identity(), subsets=4, subset_size=50)
    m.update(torch.from_numpy(ref), real=True)
    m.update(torch.from_numpy(gen), real=False)
    tm_mean, _ = m.compute()
    assert kid(gen, ref, n_subsets=4)[0] == pytest.approx(float(tm_mean), rel=1e-9)


def test_kid_is_unbiased_and_seeded():
    rng = np.random.default_rng(8)
    # unbiased: over 40 independent same-distribution pairs the mean is 0 within 3 standard errors
    vals = [kid(rng.standard_normal((100, 10)), rng.standard_normal((100, 10)), n_subsets=5)[0] for _ in range(40)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))
    a, b = rng.standard_normal((200, 10)), rng.standard_normal((200, 10))
    same = kid(a, b, n_subsets=10)[0]
    shifted = kid(a + 0.5, b, n_subsets=10)[0]
    assert abs(same) < 0.1 < 0.5 < shifted
    assert kid(a, b, n_subsets=10, seed=1) == kid(a, b, n_subsets=10, seed=1)
    boots = kid_bootstrap(a + 0.5, b, n_boot=50, n_subsets=10)
    assert np.isfinite(boots).all() and np.quantile(boots, 0.05) < shifted < np.quantile(boots, 0.95)
    with pytest.raises(ValueError, match="at least 2"):
        kid(a[:1], b)


# --------------------------------------------------------------------------- metric classes


def _featureset(x: np.ndarray, backbone: str, prefix: str) -> FeatureSet:
    ids = [f"{prefix}{i}" for i in range(len(x))]
    return FeatureSet(clip_ids=ids, features={backbone: {c: {"embedding": row} for c, row in zip(ids, x)}})


def test_frechet_metric_with_clip_and_stats_reference():
    rng = np.random.default_rng(9)
    xg = rng.standard_normal((60, 8)) + 0.4
    xr = rng.standard_normal((80, 8))
    gen, ref = _featureset(xg, "vstats", "g"), _featureset(xr, "vstats", "r")
    res = FrechetVideo().compute(gen, ref, seed=0)
    assert res.status == "ok" and res.key == "fd_video[vstats]"
    (m1, s1), (m2, s2) = mean_cov(xg), mean_cov(xr)
    assert res.value == pytest.approx(frechet_distance(m1, s1, m2, s2), rel=1e-12)
    assert res.ci_low <= res.value <= res.ci_high and res.ci_low >= 0
    assert res.n == 60 and res.extra["n_ref"] == 80 and res.extra["dim"] == 8
    assert res.higher_is_better is False
    assert "eigh" in res.convention and "float64" in res.convention and "8-d" in res.convention
    assert "FVD" not in res.display_name and "FAD" not in res.display_name
    assert res.display_name.startswith("Fréchet distance (video)")
    again = FrechetVideo().compute(gen, ref, seed=0)
    assert (again.value, again.ci_low, again.ci_high) == (res.value, res.ci_low, res.ci_high)

    stats_ref = FeatureSet(clip_ids=[], stats={"vstats": RunningStats.from_features(xr)})
    res_s = FrechetVideo().compute(gen, stats_ref, seed=0)
    assert res_s.status == "ok" and res_s.extra["reference"] == "stats" and res_s.extra["n_ref"] == 80
    assert res_s.value == pytest.approx(res.value, rel=1e-9)


def test_metric_names_and_display():
    assert FrechetAudio().key == "fd_audio[melstats]" and KIDVideo().key == "kid_video[vstats]"
    assert KIDAudio().key == "kid_audio[melstats]"
    for cls in (FrechetVideo, FrechetAudio, KIDVideo, KIDAudio):
        assert cls.needs_reference and cls.requires == ("{backbone}",) and cls.higher_is_better is False
        assert "FVD" not in cls.display_name and "FAD" not in cls.display_name
    assert FrechetVideo.backbone_modality == "video" and FrechetAudio.backbone_modality == "audio"
    assert FrechetVideo().required_extractors() == ["vstats"]
    rng = np.random.default_rng(0)
    fs = _featureset(rng.standard_normal((10, 3)), "i3d", "a")
    assert FrechetVideo(backbone="i3d").compute(fs, _featureset(rng.standard_normal((10, 3)), "i3d", "b")).display_name == "FVD [i3d]"
    assert FrechetVideo().compute(_featureset(rng.standard_normal((10, 3)), "vstats", "a"),
                                  _featureset(rng.standard_normal((10, 3)), "vstats", "b")).display_name == "Fréchet distance (video) [vstats]"


def test_kid_metric_ok_and_skipped_with_stats_reference():
    rng = np.random.default_rng(10)
    xg, xr = rng.standard_normal((40, 6)) + 0.5, rng.standard_normal((50, 6))
    gen, ref = _featureset(xg, "melstats", "g"), _featureset(xr, "melstats", "r")
    res = KIDAudio().compute(gen, ref, seed=0)
    assert res.status == "ok" and res.value == pytest.approx(kid(xg, xr)[0], rel=1e-12)
    assert res.extra["std"] == pytest.approx(kid(xg, xr)[1], abs=1e-12)
    assert res.extra["n_ref"] == 50 and res.extra["dim"] == 6 and res.ci_low < res.value < res.ci_high
    assert "(xᵀy/d + 1)³" in res.convention and "100 subsets" in res.convention
    stats_ref = FeatureSet(clip_ids=[], stats={"melstats": RunningStats.from_features(xr)})
    skipped = KIDAudio().compute(gen, stats_ref)
    assert skipped.status == "skipped" and skipped.value is None
    assert skipped.reason == "KID needs per-clip reference features; a stats reference has only running sums"
    assert "--reference" in skipped.fix


@pytest.mark.parametrize("metric", [FrechetVideo, KIDVideo])
def test_metrics_skip_with_fewer_than_two_clips(metric):
    rng = np.random.default_rng(11)
    one = _featureset(rng.standard_normal((1, 4)), "vstats", "g")
    many = _featureset(rng.standard_normal((10, 4)), "vstats", "r")
    for gen, ref in ((one, many), (many, one)):
        res = metric().compute(gen, ref)
        assert res.status == "skipped" and res.value is None and "at least 2" in res.reason and res.fix
    assert metric().compute(many, None).status == "skipped"


def test_frechet_metric_drops_non_finite_clips_with_a_warning():
    rng = np.random.default_rng(12)
    xg = rng.standard_normal((20, 4))
    xg[3, 1] = np.nan
    res = FrechetVideo().compute(_featureset(xg, "vstats", "g"), _featureset(rng.standard_normal((20, 4)), "vstats", "r"))
    assert res.status == "ok" and res.n == 19 and any("g3" in w for w in res.warnings)


def test_frechet_metric_fails_on_dimension_mismatch():
    rng = np.random.default_rng(13)
    res = FrechetVideo().compute(_featureset(rng.standard_normal((10, 4)), "vstats", "g"),
                                 FeatureSet(clip_ids=[], stats={"vstats": RunningStats.from_features(rng.standard_normal((10, 5)))}))
    assert res.status == "failed" and "dim 4" in res.reason and "dim 5" in res.reason


def test_running_stats_merge_of_float_batches():
    rng = np.random.default_rng(14)
    batches = [rng.standard_normal((50, 7)) * 3 + 2 for _ in range(6)]
    single = RunningStats(7)
    for b in batches:
        single.update(b)
    w1, w2 = RunningStats(7), RunningStats(7)
    for b in batches[:4]:
        w1.update(b)
    for b in batches[4:]:
        w2.update(b)
    # with two batches in w2 the additions are regrouped: s + (b5 + b6) vs (s + b5) + b6
    merged = RunningStats(7).merge(w1).merge(w2)
    np.testing.assert_allclose(merged.sum_xxT, single.sum_xxT, rtol=1e-13)
    # a worker holding one batch adds exactly what a single pass adds (0 + b == b): bitwise equal
    one_batch_tail = RunningStats(7)
    for b in batches[:5]:
        one_batch_tail.update(b)
    merged_tail = RunningStats(7).merge(one_batch_tail).merge(RunningStats(7).update(batches[5]))
    assert np.array_equal(merged_tail.sum_xxT, single.sum_xxT) and np.array_equal(merged_tail.sum_x, single.sum_x)


def test_fd_bootstrap_resamples_equal_direct_fd_of_the_resample():
    from mova_bench.metrics.distribution import _fd_bootstrap

    rng = np.random.default_rng(15)
    x = rng.standard_normal((30, 6)) @ rng.standard_normal((6, 6))
    mu_r, cov_r = mean_cov(rng.standard_normal((40, 6)))
    boots = _fd_bootstrap(x, mu_r, cov_r, 4, seed=2)
    draw = np.random.default_rng([2, 0xFD])
    for b in boots:
        m, c = mean_cov(x[draw.integers(0, 30, size=30)])
        assert b == pytest.approx(frechet_distance(m, c, mu_r, cov_r), rel=1e-10)


def test_fd_bootstrap_with_fewer_rows_than_dims_uses_the_gram_matrix_and_agrees():
    """n < dim: each resample's tr√(Σ_ref Σ*) comes from an n × n Gram matrix; it equals the direct
    FD of the resample (and the clip bootstrap of pooled frame rows equals its direct FD too)."""
    from mova_bench.metrics.distribution import _fd_bootstrap, _fd_bootstrap_clips, default_fd_boot

    rng = np.random.default_rng(16)
    x = rng.standard_normal((12, 40)) @ rng.standard_normal((40, 40)) / 6
    mu_r, cov_r = mean_cov(rng.standard_normal((90, 40)))
    boots = _fd_bootstrap(x, mu_r, cov_r, 5, seed=3)
    draw = np.random.default_rng([3, 0xFD])
    for b in boots:
        m, c = mean_cov(x[draw.integers(0, 12, size=12)])
        assert b == pytest.approx(frechet_distance(m, c, mu_r, cov_r), rel=1e-7)
    owner = np.repeat(np.arange(6), 2)  # 6 clips of 2 frame rows each
    boots = _fd_bootstrap_clips(x, owner, mu_r, cov_r, 4, seed=3)
    draw = np.random.default_rng([3, 0xFD, 1])
    for b in boots:
        counts = np.bincount(draw.integers(0, 6, size=6), minlength=6)
        m, c = mean_cov(np.repeat(x, counts[owner], axis=0))
        assert b == pytest.approx(frechet_distance(m, c, mu_r, cov_r), rel=1e-7)
    # the Gram matrix makes 2048-d bootstraps of a few hundred clips affordable at full count
    assert default_fd_boot(500, 2048) == 200 and default_fd_boot(2048, 2048) == 20


def test_singular_covariance_takes_the_eigh_factor_and_agrees():
    from mova_bench.metrics.frechet import sqrt_factor, trace_sqrt_product

    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 30))  # n < dim: rank-deficient covariance
    s1 = np.cov(x, rowvar=False)
    a = rng.standard_normal((30, 30))
    s2 = a @ a.T / 30
    b = sqrt_factor(s1)
    assert np.allclose(b @ b.T, s1, atol=1e-12)
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ref = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
    assert abs(trace_sqrt_product(s1, s2) - ref) <= 1e-6 * ref  # √ of rounding-level eigenvalues: ~1e-8
    # a full-rank Σ₁ takes the Cholesky factor: lower-triangular
    full = s2 + np.eye(30)
    assert np.allclose(np.triu(sqrt_factor(full), 1), 0)


def test_fd_infinity_removes_the_small_n_bias():
    from mova_bench.metrics.frechet import frechet_infinity

    rng = np.random.default_rng(11)
    dim = 8
    ref = rng.standard_normal((20000, dim))
    mu_r, cov_r = ref.mean(0), np.cov(ref, rowvar=False)
    shift = np.zeros(dim)
    shift[0] = 1.0  # true FD between N(shift, I) and N(0, I) is |shift|² = 1
    x = rng.standard_normal((400, dim)) + shift
    full = frechet_distance(x.mean(0), np.cov(x, rowvar=False), mu_r, cov_r)
    inf = frechet_infinity(x, mu_r, cov_r, seed=0, n_points=6, n_reps=5, min_fraction=0.1)
    assert inf is not None and inf["sizes"][0] == 40 and inf["sizes"][-1] == 400
    assert inf["slope"] > 0  # FD decreases with n
    assert abs(inf["value"] - 1.0) < abs(full - 1.0)  # the extrapolation is closer to the truth
    assert abs(inf["value"] - 1.0) < 0.1 and 0.0 <= inf["r2"] <= 1.0
    again = frechet_infinity(x, mu_r, cov_r, seed=0, n_points=6, n_reps=5, min_fraction=0.1)
    assert again == inf  # seeded
    assert frechet_infinity(x[:3], mu_r, cov_r) is None  # too few distinct sizes


def test_fd_metric_reports_fd_infinity_only_when_n_allows_it():
    rng = np.random.default_rng(3)

    def fs(n, shift):
        ids = [f"c{i}" for i in range(n)]
        return FeatureSet(ids, {"vstats": {c: {"embedding": rng.standard_normal(6) + shift} for c in ids}})

    ok = FrechetVideo().compute(fs(60, 0.5), fs(300, 0.0)).extra["fd_infinity"]
    assert ok["value"] is not None and ok["sizes"][-1] == 60 and "1/n" in ok["method"]
    few = FrechetVideo().compute(fs(8, 0.5), fs(300, 0.0)).extra["fd_infinity"]
    assert few["value"] is None and "2·dim = 12" in few["reason"]


# --------------------------------------------------------------------------- FD∞ both sides, the bootstrap's interval


def _gauss_sets(seed: int, dim: int, n_gen: int, n_ref: int) -> tuple[np.ndarray, np.ndarray]:
    """N(shift, I) vs N(0, I) with |shift|² = 1: the true Fréchet distance is 1."""
    rng = np.random.default_rng(seed)
    shift = np.zeros(dim)
    shift[0] = 1.0
    return rng.standard_normal((n_gen, dim)) + shift, rng.standard_normal((n_ref, dim))


def test_fd_infinity_subsamples_both_sides_and_removes_the_reference_bias():
    """The issue's case: a 200-clip reference, true FD 1.0. FD ≈ 1.9; FD∞ over generated subsets
    only ≈ 1.5 (the reference's bias stays); FD∞ over both sides jointly ≈ 1.0."""
    from mova_bench.metrics.frechet import frechet_infinity

    fd, gen_only, joint = [], [], []
    for seed in range(8):
        x, y = _gauss_sets(seed, 16, 200, 200)
        mu_r, cov_r = mean_cov(y)
        fd.append(frechet_distance(*mean_cov(x), mu_r, cov_r))
        g = frechet_infinity(x, mu_r, cov_r, seed=seed)
        j = frechet_infinity(x, y=y, seed=seed)
        assert g["sides"] == "generated" and j["sides"] == "joint" and j["ref_sizes"][-1] == 200 and j["ref_sizes"][0] == 100
        gen_only.append(g["value"])
        joint.append(j["value"])
    assert np.mean(fd) > 1.6 and np.mean(gen_only) > 1.3  # both biased upward
    assert abs(np.mean(joint) - 1.0) < 0.2 and abs(np.mean(joint) - 1.0) < abs(np.mean(gen_only) - 1.0) / 2
    x, y = _gauss_sets(0, 16, 200, 200)
    assert frechet_infinity(x, y=y, seed=3) == frechet_infinity(x, y=y, seed=3)  # seeded


def test_fd_metric_fd_infinity_at_the_suites_sizes():
    """impacts_set: 22 generated vs 33 reference clips of 82-d vstats: no FD∞, and why; more samples per
    prompt against the same small reference: generated side only, labelled and warned; a reference
    large enough on both sides: joint."""
    def fs(x, prefix):
        ids = [f"{prefix}{i}" for i in range(len(x))]
        return FeatureSet(ids, {"vstats": {c: {"embedding": r} for c, r in zip(ids, x)}})

    x, y = _gauss_sets(1, 82, 22, 33)
    res = FrechetVideo(n_boot=20).compute(fs(x, "g"), fs(y, "r"))
    assert res.extra["fd_infinity"]["value"] is None and "2·dim = 164" in res.extra["fd_infinity"]["reason"]
    x, y = _gauss_sets(2, 82, 220, 33)  # e.g. 11 prompts × 20 samples, reference still 11 × 3
    res = FrechetVideo(n_boot=20).compute(fs(x, "g"), fs(y, "r"))
    fdi = res.extra["fd_infinity"]
    assert fdi["sides"] == "generated" and fdi["value"] is not None and "n_ref = 33 < 10·n_gen = 2200" in fdi["warning"]
    assert any("FD∞ extrapolates the generated side only" in w for w in res.warnings)
    x, y = _gauss_sets(3, 8, 60, 300)
    res = FrechetVideo(n_boot=20).compute(fs(x, "g"), fs(y, "r"))
    assert res.extra["fd_infinity"]["sides"] == "joint" and not any("FD∞" in w for w in res.warnings)
    stats_ref = FeatureSet(clip_ids=[], stats={"vstats": RunningStats.from_features(y)})
    fdi = FrechetVideo(n_boot=20).compute(fs(x, "g"), stats_ref).extra["fd_infinity"]
    assert fdi["sides"] == "generated" and "statistics file" in fdi["why_generated_only"]
    assert "n_ref = 300 < 10·n_gen = 600" in fdi["warning"]


def test_fd_bootstrap_below_200_resamples_gives_a_normal_interval_and_says_so():
    from mova_bench.metrics.distribution import _fd_bootstrap, default_fd_boot
    from mova_bench.stats import bootstrap_interval

    assert default_fd_boot(2048, 2048) == 20  # 2048-d: the budget allows 20 resamples
    rng = np.random.default_rng(21)
    xg, xr = rng.standard_normal((40, 5)) + 0.3, rng.standard_normal((50, 5))
    gen, ref = _featureset(xg, "vstats", "g"), _featureset(xr, "vstats", "r")
    few = FrechetVideo(n_boot=20).compute(gen, ref, seed=0)
    boots = _fd_bootstrap(xg, *mean_cov(xr), 20, 0)
    half = 1.959964 * np.std(boots, ddof=1)
    assert few.ci_high == pytest.approx(few.value + half, rel=1e-5)
    assert few.ci_low == pytest.approx(max(0.0, few.value - half), rel=1e-5, abs=1e-12)
    assert "normal interval" in few.extra["ci_method"] and "20 bootstrap resamples" in few.extra["ci_method"]
    assert "normal interval" in few.convention
    many = FrechetVideo(n_boot=200).compute(gen, ref, seed=0)
    assert "percentile bootstrap (200 resamples), re-centred" in many.extra["ci_method"]
    lo, hi, how = bootstrap_interval(np.array([1.0]), estimate=1.0)
    assert lo is None and hi is None and "1 finite" in how
