"""Weight-free backbones (vstats, melstats, forensic) on synthetic clips, and the detector metric."""

from __future__ import annotations

import numpy as np
import pytest

from mova_bench.features.forensic import ForensicFeatures
from mova_bench.features.melstats import MelStats
from mova_bench.features.vstats import VideoStats
from mova_bench.media import DecodedClip
from mova_bench.metrics.base import FeatureSet
from mova_bench.metrics.detector import DetectorAUC, LogisticDetector, roc_auc, stratified_bootstrap_auc
from mova_bench.metrics.frechet import RunningStats, frechet_distance, mean_cov

FPS, SR, W, H, DUR = 24.0, 48000, 128, 72, 2.0


def make_clip(seed: int, *, noise: float = 0.0, blur: float = 0.0, audio_noise: float = 0.0,
              lowpass_hz: float | None = None, flicker: float = 0.0, blocks: float = 0.0,
              silent: bool = False) -> DecodedClip:
    """A small synthetic clip: gradient + texture background, moving discs, tone + noise bursts."""
    rng = np.random.default_rng(seed)
    t = int(DUR * FPS)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    c0, c1 = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((np.cos(ang) * xx / W + np.sin(ang) * yy / H) + 1) / 2
    bg = ramp[..., None] * c1 + (1 - ramp[..., None]) * c0
    f = rng.uniform(0.1, 0.5)
    bg += 0.06 * (np.sin(xx * f + rng.uniform(0, 6)) * np.cos(yy * f * 0.8))[..., None]
    video = np.repeat(bg[None].astype(np.float32), t, axis=0)
    ti = np.arange(t, dtype=np.float32)[:, None, None]
    for _ in range(int(rng.integers(1, 4))):
        x0, y0, vx, vy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(-2, 2), rng.uniform(-1, 1), rng.uniform(4, 12)
        mask = ((xx[None] - (x0 + vx * ti) % W) ** 2 + (yy[None] - (y0 + vy * ti) % H) ** 2) < r * r
        video[mask] = rng.uniform(0, 1, 3)
    if flicker:
        video *= (1 + flicker * rng.standard_normal(t)).astype(np.float32)[:, None, None, None]
    if blur:
        import cv2

        video = np.stack([cv2.GaussianBlur(fr, (0, 0), blur) for fr in video])
    if blocks:
        bm = video.reshape(t, H // 8, 8, W // 8, 8, 3).mean(axis=(2, 4), keepdims=True)
        video = (1 - blocks) * video + blocks * np.broadcast_to(bm, (t, H // 8, 8, W // 8, 8, 3)).reshape(video.shape)
    if noise:
        video = video + noise * rng.standard_normal(video.shape).astype(np.float32)
    frames = np.clip(video * 255 + 0.5, 0, 255).astype(np.uint8)

    n = int(DUR * SR)
    ts = np.arange(n) / SR
    f0 = rng.uniform(120, 700)
    audio = 0.2 * np.sin(2 * np.pi * f0 * ts) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * ts))
    audio += 0.05 * np.sin(2 * np.pi * 2.7 * f0 * ts)
    env = np.zeros(n)
    for on in rng.uniform(0, DUR - 0.2, int(rng.integers(2, 5))):
        k, length = int(on * SR), int(0.1 * SR)
        env[k:k + length] += np.exp(-np.arange(length) / (0.02 * SR))
    audio += 0.3 * env * rng.standard_normal(n) + 0.005 * rng.standard_normal(n)
    if audio_noise:
        audio += audio_noise * rng.standard_normal(n)
    if lowpass_hz:
        from scipy.signal import butter, sosfiltfilt

        audio = sosfiltfilt(butter(10, lowpass_hz, fs=SR, output="sos"), audio)
    if silent:
        audio[:] = 0.0
    return DecodedClip(
        video=frames, video_times=np.arange(t) / FPS, fps=FPS, audio=np.clip(audio, -1, 1).astype(np.float32),
        sample_rate=SR, audio_start=0.0, source_width=W, source_height=H, source_channels=1, duration_s=DUR,
    )


def embed(extractor, seeds, **kw) -> np.ndarray:
    return np.stack([extractor.extract(make_clip(s, **kw))["embedding"] for s in seeds])


def fd(x: np.ndarray, y: np.ndarray) -> float:
    (m1, s1), (m2, s2) = mean_cov(x), mean_cov(y)
    return frechet_distance(m1, s1, m2, s2)


# --------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("cls", [VideoStats, MelStats, ForensicFeatures])
def test_backbone_contract_deterministic_and_finite(cls):
    ex = cls()
    assert ex.kind == "embedding" and ex.family == "classical"
    clip = make_clip(0)
    a = ex.extract(clip)["embedding"]
    b = cls().extract(make_clip(0))["embedding"]
    assert a.dtype == np.float64 and a.shape == (cls.dim,) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    assert len(cls.dimension_names()) == cls.dim == len(set(cls.dimension_names()))
    assert cls.name in ("vstats", "melstats", "forensic") and set(ex.cache_identity()["preprocessing"]) >= set(ex.params)
    with pytest.raises(ValueError, match="unknown parameter"):
        cls(bogus=1)


def test_backbone_metadata():
    assert (VideoStats.name, VideoStats.modality) == ("vstats", "video") and 64 <= VideoStats.dim <= 160
    assert (MelStats.name, MelStats.modality) == ("melstats", "audio")
    assert (ForensicFeatures.name, ForensicFeatures.modality) == ("forensic", "av") and ForensicFeatures.dim <= 16
    assert "not FVD" in VideoStats.description and "not FAD" in MelStats.description


def test_backbones_stay_finite_on_degenerate_clips():
    clip = make_clip(1, silent=True)
    clip.video[:] = 128  # frozen, uniform grey
    for ex in (VideoStats(), MelStats(), ForensicFeatures()):
        assert np.isfinite(ex.extract(clip)["embedding"]).all(), ex.name
    short = make_clip(2)
    short.video = short.video[:1]
    short.video_times = short.video_times[:1]
    assert np.isfinite(VideoStats().extract(short)["embedding"]).all()
    assert np.isfinite(ForensicFeatures().extract(short)["embedding"]).all()


SEEDS_GEN, SEEDS_REF = range(0, 16), range(100, 116)


def test_vstats_fd_grows_with_video_noise_and_blur():
    ex = VideoStats()
    ref = embed(ex, SEEDS_REF)
    noise = [fd(embed(ex, SEEDS_GEN, noise=s), ref) for s in (0.0, 0.03, 0.1, 0.3)]
    assert all(a < b for a, b in zip(noise, noise[1:])), noise
    blur = [fd(embed(ex, SEEDS_GEN, blur=s), ref) for s in (0.0, 1.5, 4.0)]
    assert all(a < b for a, b in zip(blur, blur[1:])), blur


def test_melstats_fd_grows_with_audio_noise():
    ex = MelStats()
    ref = embed(ex, SEEDS_REF)
    vals = [fd(embed(ex, SEEDS_GEN, audio_noise=s), ref) for s in (0.0, 0.003, 0.01, 0.03, 0.1)]
    assert all(a < b for a, b in zip(vals, vals[1:])), vals


def test_forensic_dimensions_react_to_their_defect():
    ex = ForensicFeatures()
    names = ex.dimension_names()
    base = ex.extract(make_clip(3))["embedding"]
    band = ex.extract(make_clip(3, lowpass_hz=8000))["embedding"]
    i = names.index("audio_bandlimit")
    assert base[i] > 0.9 and 8000 / 24000 <= band[i] < 0.45
    assert band[names.index("audio_bandlimit_khz")] == pytest.approx(band[i])  # 48 kHz: kHz/24 == /Nyquist
    flick = ex.extract(make_clip(3, flicker=0.05))["embedding"]
    assert flick[names.index("flicker_std")] > 5 * base[names.index("flicker_std")]
    blocky = ex.extract(make_clip(3, blocks=0.5))["embedding"]
    for dim in ("blockiness_h", "blockiness_v"):
        assert blocky[names.index(dim)] > base[names.index(dim)] + 0.3
    noisy = ex.extract(make_clip(3, noise=0.05))["embedding"]
    blurred = ex.extract(make_clip(3, blur=2.0))["embedding"]
    j = names.index("spec_slope")
    assert blurred[j] < base[j] < noisy[j]  # steeper fall-off when blurred, flatter with noise
    hiss = ex.extract(make_clip(3, audio_noise=0.05))["embedding"]
    assert hiss[names.index("audio_log_flatness")] > base[names.index("audio_log_flatness")]


# --------------------------------------------------------------------------- detector


DIMS = {"forensic": 11, "vstats": 82, "melstats": 154}


def _random_set(n: int, prefix: str, rng: np.random.Generator, shift: float = 0.0, prompts: int | None = None) -> FeatureSet:
    """Random features; with ``prompts``, clip i belongs to prompt ``p{i % prompts}`` (as in a suite,
    where generated and reference clips share prompt ids) and gets a content hash of its own."""
    ids = [f"{prefix}{i}" for i in range(n)]
    feats = {}
    for name, d in DIMS.items():
        x = rng.standard_normal((n, d))
        x[:, :3] += shift
        feats[name] = {c: {"embedding": row} for c, row in zip(ids, x)}
    meta = {c: {"clip_id": c, "prompt_id": f"p{i % prompts}", "content_hash": f"h-{c}"} for i, c in enumerate(ids)} if prompts else {}
    return FeatureSet(clip_ids=ids, features=feats, meta=meta)


def test_detector_key_and_required_extractors():
    m = DetectorAUC()
    assert m.key == "detector_auc[forensic+vstats+melstats]"
    assert m.required_extractors() == ["forensic", "vstats", "melstats"]
    assert DetectorAUC(backbone="forensic").required_extractors() == ["forensic"]
    assert m.higher_is_better is False and m.needs_reference


def test_detector_auc_near_half_for_one_distribution():
    rng = np.random.default_rng(0)
    gen, ref = _random_set(60, "g", rng, prompts=12), _random_set(60, "r", rng, prompts=12)
    res = DetectorAUC().compute(gen, ref, seed=0)
    assert res.status == "ok" and res.value < 0.7 and res.ci_low <= res.value <= res.ci_high
    assert res.ci_low <= 0.5 <= res.ci_high  # chance reads as chance
    assert res.extra["p_value"] >= 0.05 and res.extra["verdict"].startswith("indistinguishable from the reference (p = ")
    lo, hi = res.extra["null_band"]
    assert lo < 0.5 < hi and res.extra["n_permutations"] == 200 and res.extra["rank_value"] == max(res.value, 0.5)
    assert set(res.per_clip) == set(gen.clip_ids)
    assert all(0.0 <= p <= 1.0 for p in res.per_clip.values())
    assert res.extra["n_ref"] == 60 and res.extra["folds"] == 5 and res.extra["dim"] == sum(DIMS.values())
    assert res.extra["n_groups"] == 12  # one group per prompt, generated and reference clips together
    again = DetectorAUC().compute(gen, ref, seed=0)  # seeded, p-value included
    assert again.per_clip == res.per_clip and again.extra["p_value"] == res.extra["p_value"]
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)


def test_detector_auc_high_when_shifted():
    rng = np.random.default_rng(1)
    gen, ref = _random_set(50, "g", rng, shift=1.5, prompts=10), _random_set(70, "r", rng, prompts=10)
    res = DetectorAUC().compute(gen, ref, seed=0)
    assert res.status == "ok" and res.value > 0.95 and res.ci_high <= 1.0
    assert res.extra["p_value"] < 0.01 and res.extra["verdict"].startswith("distinguishable")
    assert res.ci_low > 0.5  # the CI that inverts the permutation test excludes chance
    assert len(res.per_clip) == 50 and np.mean(list(res.per_clip.values())) > 0.7
    assert "out-of-fold" in res.convention and "forensic (11-d)" in res.convention
    assert "permutation" in res.convention and "max(AUC, 0.5)" in res.convention


def test_detector_on_real_features_separates_noisy_clips():
    rng_ids = range(0, 12)
    exs = {"forensic": ForensicFeatures(), "vstats": VideoStats(), "melstats": MelStats()}

    def fs(seeds, prefix, **kw):
        ids, feats = [], {n: {} for n in exs}
        for s in seeds:
            clip = make_clip(s, **kw)
            ids.append(f"{prefix}{s}")
            for n, ex in exs.items():
                feats[n][ids[-1]] = ex.extract(clip)
        return FeatureSet(clip_ids=ids, features=feats)

    ref = fs(range(200, 212), "r")
    res = DetectorAUC().compute(fs(rng_ids, "g", noise=0.08, lowpass_hz=6000), ref, seed=0)
    assert res.status == "ok" and res.value > 0.95
    assert res.extra["p_value"] < 0.01  # degraded: AUC ≈ 1 and the permutation test agrees


def test_detector_skips():
    rng = np.random.default_rng(2)
    gen = _random_set(10, "g", rng)
    one = _random_set(1, "r", rng)
    res = DetectorAUC().compute(gen, one)
    assert res.status == "skipped" and "at least 2" in res.reason and res.value is None
    stats_ref = FeatureSet(clip_ids=[], stats={n: RunningStats(d) for n, d in DIMS.items()})
    res = DetectorAUC().compute(gen, stats_ref)
    assert res.status == "skipped" and "per-clip reference features" in res.reason and "--reference" in res.fix
    assert DetectorAUC().compute(gen, None).status == "skipped"


def test_logistic_detector_is_out_of_fold_and_auc_helpers():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 4))
    y = np.array([1] * 10 + [0] * 20)
    det = LogisticDetector()
    assert det.n_folds(y) == 5 and det.n_folds(np.array([1, 1, 0, 0, 0])) == 2
    assert det.n_folds(y, groups=np.arange(30) % 3) == 3  # never more folds than groups
    p = det.fit_predict_oof(x, y, seed=0)
    assert p.shape == (30,) and np.isfinite(p).all()
    for train, test in det.folds(y, None, 0):
        assert not set(train) & set(test)
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5
    boots = stratified_bootstrap_auc(np.array([0.9, 0.8, 0.3, 0.1, 0.2]), np.array([1, 1, 1, 0, 0]), n_boot=200)
    assert boots.min() >= 0 and boots.max() <= 1


def test_pluggable_detector():
    class Oracle:
        name = "oracle"

        def fit_predict_oof(self, X, y, seed):
            return X[:, 0] > 0.75

        def describe(self):
            return "threshold on the first feature"

    rng = np.random.default_rng(4)
    gen, ref = _random_set(20, "g", rng, shift=1.5), _random_set(20, "r", rng)
    res = DetectorAUC(detector=Oracle(), n_permutations=50).compute(gen, ref)
    assert res.status == "ok" and res.extra["detector"] == "oracle" and "threshold" in res.convention
    assert res.extra["n_permutations"] == 50 and 0 < res.extra["p_value"] <= 1  # a label-free detector: Mann–Whitney test
