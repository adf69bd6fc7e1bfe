"""InceptionV3 (torch-fidelity) per-frame backbone and the ``fid_frames`` metric.

No network, no real weights: torch-fidelity's own ``FeatureExtractorInceptionV3`` is built with its
weight loading bypassed (an empty file and a no-op ``load_state_dict`` while constructing it: its
downloader is never reached), randomised from a seed (He-normal convolutions, random batch-norm
statistics), and its state dict saved as torch-fidelity's file is laid out (a plain state dict,
566 tensors). Our loader reads that file back through the weights registry, strictly.
``fid_frames`` is compared with torch-fidelity's FID functions on the same pooled features.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf_inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
tf_fid = pytest.importorskip("torch_fidelity.metric_fid")

from conftest import make_av  # noqa: E402

from mova_bench import weights  # noqa: E402
from mova_bench.errors import ConfigError, MediaError  # noqa: E402
from mova_bench.features.i3d import FeatureMissing, WeightsFileError  # noqa: E402
from mova_bench.features.inception import N_KEYS, InceptionV3, load_inception  # noqa: E402
from mova_bench.media import decode  # noqa: E402
from mova_bench.metrics.base import FeatureSet  # noqa: E402
from mova_bench.metrics.distribution import FrechetVideo  # noqa: E402
from mova_bench.metrics.frames import FrameFID  # noqa: E402
from mova_bench.metrics.frechet import RunningStats, frechet_distance, mean_cov  # noqa: E402

FILENAME = "weights-inception-2015-12-05-6726825d.pth"


def _random_torch_fidelity_state(tmp_path, seed: int = 0) -> dict:
    """torch-fidelity's InceptionV3 built without its weights (no download), randomised from ``seed``."""
    empty = tmp_path / "empty.pt"
    torch.save({}, empty)
    cls = tf_inception.FeatureExtractorInceptionV3
    with mock.patch.object(cls, "load_state_dict", lambda self, sd, strict=True: None), \
            mock.patch.object(tf_inception, "load_state_dict_from_url", side_effect=AssertionError("no downloads")):
        torch.manual_seed(seed)
        net = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    g = torch.Generator().manual_seed(seed + 1)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for name, t in state.items():
        if name.endswith("conv.weight"):  # He-normal, so that 2048-d outputs depend on the input
            t.copy_(torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5)
        elif name.endswith("running_mean"):
            t.copy_(0.1 * torch.randn(t.shape, generator=g))
        elif name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
        elif name.endswith("bn.weight"):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
        elif name.endswith("bn.bias"):
            t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("inception")
    state = _random_torch_fidelity_state(d)
    path = d / FILENAME
    torch.save(state, path)
    return path, state


@pytest.fixture
def registered(checkpoint):
    weights.register_local("inception-v3", checkpoint[0])
    yield checkpoint[0]
    weights.forget_local("inception-v3")


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    """A real 1.5 s, 24 fps, 96×64 clip with a flash at 1 s: at 1 fps the frames at t = 0 and 1 s are
    sampled (two frames keep the two 299-px forward passes of this test short)."""
    return make_av(tmp_path_factory.mktemp("inc-clip") / "clip.mp4", seconds=1.5, fps=24.0, width=96, height=64,
                   events=(1.0,))


# --------------------------------------------------------------------------- loader


def test_checkpoint_layout_and_strict_load(checkpoint):
    path, state = checkpoint
    assert len(state) == N_KEYS == 566
    model = load_inception(path)
    got = model.state_dict()
    assert set(got) == set(state)
    for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.bias"):
        assert torch.equal(got[k], state[k]), k
    assert not model.training


@pytest.mark.parametrize("edit, named", [("missing", "Mixed_6b.branch7x7_2.bn.running_mean"),
                                         ("extra", "Mixed_8a.conv.weight")])
def test_loader_names_the_offending_key(checkpoint, tmp_path, edit, named):
    state = dict(checkpoint[1])
    if edit == "missing":
        del state[named]
    else:
        state[named] = torch.zeros(3)
    bad = tmp_path / FILENAME
    torch.save(state, bad)
    with pytest.raises(WeightsFileError) as info:
        load_inception(bad)
    assert named in str(info.value) and "mova-bench weights fetch inception-v3" in str(info.value)


class Payload:
    """Any pickled object that is not a tensor (a real attack would run code when unpickled)."""


def test_loader_refuses_pickled_objects_before_torch_fidelity_unpickles_them(tmp_path):
    bad = tmp_path / FILENAME
    torch.save({"fc.weight": torch.zeros(2), "note": Payload()}, bad)
    # torch-fidelity reads with weights_only=False: it must never see this file
    with mock.patch.object(tf_inception.FeatureExtractorInceptionV3, "__init__",
                           side_effect=AssertionError("torch-fidelity must not unpickle it")):
        with pytest.raises(WeightsFileError, match="cannot read it as a PyTorch state dict"):
            load_inception(bad)


def test_parameters():
    with pytest.raises(ConfigError, match="fps=0"):
        InceptionV3(fps=0)
    need = InceptionV3(fps=2).video_needs[0]
    assert need.mode == "native" and need.fps == 2.0
    assert InceptionV3().video_needs[0].fps == 1.0


# --------------------------------------------------------------------------- end to end


def test_end_to_end_frames_at_one_fps_match_torch_fidelity(registered, checkpoint, mp4, tmp_path):
    """Through the harness (analyse_clip: decode with the need, load, feature cache of the variable-length
    "frames"), against torch-fidelity's extractor on the same decoded uint8 frames."""
    from mova_bench.media import file_sha256
    from mova_bench.pipeline.analysis import AnalysisTask, ExtractorSpec, analyse_clip

    ex = InceptionV3()
    assert ex.missing_fixes() == []
    clip = decode(mp4, needs=ex.video_needs)
    need = ex.video_needs[0]
    frames = clip.frames(need)
    times = clip.frame_times(need)
    assert frames.shape == (2, 64, 96, 3)  # native size
    np.testing.assert_allclose(times, [0.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(frames, clip.video[[0, 24]])  # the frames at 0 and 1 s (native = analysis size here)
    task = AnalysisTask("c0", str(mp4), file_sha256(mp4), (ExtractorSpec("inception-v3"),),
                        cache_root=str(tmp_path / "cache"))
    out = analyse_clip(task).features["inception-v3"]
    cached = analyse_clip(task)
    assert not cached.decoded and cached.cache_hits == 1
    np.testing.assert_array_equal(cached.features["inception-v3"]["frames"], out["frames"])
    assert out["frames"].shape == (2, 2048) and out["frames"].dtype == np.float32
    np.testing.assert_allclose(out["embedding"], out["frames"].mean(axis=0), rtol=1e-6, atol=1e-7)
    # torch-fidelity's extractor on the same uint8 frames, built directly from the same file
    ref_model = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                         feature_extractor_weights_path=str(checkpoint[0]))
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous())[0].numpy()
    assert ref.std() > 1e-2  # the random network responds to its input
    np.testing.assert_allclose(out["frames"], ref, rtol=1e-5, atol=1e-5)
    # the flash at t = 1 s: the two sampled frames differ, and so do their features
    assert np.abs(out["frames"][1] - out["frames"][0]).max() > 1e-2
    # batch-size invariance: one frame per forward pass gives the same rows
    ex.load("cpu")
    with mock.patch("mova_bench.features.inception.CHUNK", 1):
        one_by_one = ex.extract(clip)["frames"]
    np.testing.assert_allclose(one_by_one, out["frames"], rtol=1e-5, atol=1e-5)
    ident = ex.cache_identity()
    assert ident["weights_sha256"] == {"inception-v3": weights.get_entry("inception-v3").sha256}
    assert ident["preprocessing"]["fps"] == 1.0 and ident["preprocessing"]["video_needs"][0]["fps"] == 1.0


def test_clip_without_frames_is_missing():
    class Clip:
        def frames(self, need):
            return np.zeros((0, 8, 8, 3), np.uint8)

    with pytest.raises(FeatureMissing) as info:
        InceptionV3().embed(Clip())
    assert isinstance(info.value, MediaError) and "no video frames" in str(info.value)


def test_registered():
    from mova_bench.registry import features, metrics

    assert features.get("inception-v3") is InceptionV3
    assert InceptionV3.frame_level is True and InceptionV3.modality == "video"
    assert metrics.get("fid_frames") is FrameFID
    m = FrameFID()
    assert m.key == "fid_frames[inception-v3]" and m.required_extractors() == ["inception-v3"]


# --------------------------------------------------------------------------- fid_frames


def _featureset(prefix: str, rows: list[np.ndarray], backbone: str = "inception-v3") -> FeatureSet:
    ids = [f"{prefix}{i}" for i in range(len(rows))]
    feats = {cid: {"frames": r.astype(np.float32), "embedding": r.mean(axis=0).astype(np.float32)}
             for cid, r in zip(ids, rows)}
    return FeatureSet(clip_ids=ids, features={backbone: feats})


def _clips(rng, n_clips, dim, shift=0.0, scale=1.0):
    return [(rng.standard_normal((int(rng.integers(20, 60)), dim)) * scale + shift) for _ in range(n_clips)]


def _torch_fidelity_fid(x: np.ndarray, y: np.ndarray) -> float:
    sx = tf_fid.fid_features_to_statistics(torch.from_numpy(x.astype(np.float64)))
    sy = tf_fid.fid_features_to_statistics(torch.from_numpy(y.astype(np.float64)))
    return tf_fid.fid_statistics_to_metric(sx, sy, False)[tf_fid.KEY_METRIC_FID]


def test_fid_frames_equals_torch_fidelity_on_the_pooled_frames():
    rng = np.random.default_rng(0)
    gen_rows, ref_rows = _clips(rng, 8, 24, shift=0.3, scale=1.2), _clips(rng, 7, 24)
    gen, ref = _featureset("g", gen_rows), _featureset("r", ref_rows)
    res = FrameFID(n_boot=50).compute(gen, ref, seed=1)
    assert res.status == "ok", res.reason
    x = np.concatenate(gen_rows).astype(np.float32)  # what the backbone stored (float32)
    y = np.concatenate(ref_rows).astype(np.float32)
    # full-rank covariances (n ≫ dim): both eigenvalue routes are backward stable → ~1e-15 relative
    assert res.value == pytest.approx(_torch_fidelity_fid(x, y), rel=1e-10)
    assert res.n == 8 and res.extra["n_frames"] == len(x) and res.extra["n_ref"] == len(y)
    assert res.extra["frames_per_clip"] == pytest.approx(len(x) / 8)
    assert res.extra["dim"] == 24 and res.extra["n_boot"] == 50
    assert res.ci_low is not None and res.ci_low <= res.value <= res.ci_high
    assert res.display_name == "FID (frames) [inception-v3]" and "FID over frames" in res.convention
    # pooled frames are not per-clip means: the clip-mean FD is another number
    g_means, r_means = np.stack([r.mean(0) for r in gen_rows]), np.stack([r.mean(0) for r in ref_rows])
    means = frechet_distance(*mean_cov(g_means), *mean_cov(r_means))
    assert abs(means - res.value) > 0.1
    # the same computation as fd_video on this frame-level backbone: value and CI
    fd = FrechetVideo(backbone="inception-v3", n_boot=50).compute(gen, ref, seed=1)
    assert (fd.value, fd.ci_low, fd.ci_high) == (res.value, res.ci_low, res.ci_high)


def test_fid_frames_rank_deficient_matches_torch_fidelity_within_its_rounding():
    """fewer frames than dimensions: the value still matches, to 1e-6 relative; torch-fidelity takes
    square roots of the eigenvalues of the non-symmetric Σ₁Σ₂, whose zero eigenvalues come out as
    rounding noise whose square roots add up to ~1e-8 relative; the result carries the
    singular-covariance warning."""
    rng = np.random.default_rng(2)
    gen_rows, ref_rows = _clips(rng, 3, 200, shift=0.2), _clips(rng, 3, 200)
    res = FrameFID(n_boot=20).compute(_featureset("g", gen_rows), _featureset("r", ref_rows))
    x, y = np.concatenate(gen_rows).astype(np.float32), np.concatenate(ref_rows).astype(np.float32)
    assert len(x) < 200
    assert res.value == pytest.approx(_torch_fidelity_fid(x, y), rel=1e-6)
    assert any("singular" in w for w in res.warnings)


def test_fid_frames_ci_resamples_clips_with_all_their_frames():
    """Replay the clip draws of the shared frame bootstrap: resample b takes clips with replacement and
    every frame of each drawn clip; its FD equals the explicit FD of those frames."""
    from mova_bench.metrics.distribution import _fd_bootstrap_clips

    rng = np.random.default_rng(3)
    mats = [m.astype(np.float64) for m in _clips(rng, 5, 6, shift=0.5)]
    x = np.concatenate(mats)
    owner = np.repeat(np.arange(len(mats)), [len(m) for m in mats])
    mu_r, cov_r = mean_cov(rng.standard_normal((400, 6)))
    boots = _fd_bootstrap_clips(x, owner, mu_r, cov_r, 4, seed=7)
    draw = np.random.default_rng([7, 0xFD, 1])
    for b in range(4):
        idx = draw.integers(0, len(mats), size=len(mats))
        xs = np.concatenate([mats[i] for i in idx])
        assert boots[b] == pytest.approx(frechet_distance(mu_r, cov_r, *mean_cov(xs)), rel=1e-9)


def test_fid_frames_against_frame_statistics_reference():
    """A statistics reference of a frame-level backbone holds running sums over every frame row: same value."""
    rng = np.random.default_rng(5)
    gen_rows, ref_rows = _clips(rng, 4, 8, shift=0.4), _clips(rng, 4, 8)
    gen = _featureset("g", gen_rows)
    per_clip = FrameFID(n_boot=20).compute(gen, _featureset("r", ref_rows))
    stats = RunningStats.from_features(np.concatenate(ref_rows).astype(np.float32).astype(np.float64))
    from_stats = FrameFID(n_boot=20).compute(gen, FeatureSet(clip_ids=[], stats={"inception-v3": stats}))
    assert from_stats.status == "ok" and from_stats.extra["reference"] == "stats"
    assert from_stats.value == pytest.approx(per_clip.value, rel=1e-9)


def test_fid_frames_skips_and_failures_say_why():
    rng = np.random.default_rng(4)
    gen = _featureset("g", _clips(rng, 4, 8))
    ref = _featureset("r", _clips(rng, 4, 8))
    assert FrameFID().compute(gen, None).status == "skipped"
    one = FrameFID().compute(_featureset("g", _clips(rng, 1, 8)), ref)
    assert one.status == "skipped" and "1 generated clip" in one.reason
    clip_level = FeatureSet(clip_ids=["a", "b"],
                            features={"i3d": {"a": {"embedding": np.zeros(4)}, "b": {"embedding": np.ones(4)}}})
    res = FrameFID(backbone="i3d").compute(clip_level, clip_level)
    assert res.status == "failed" and "not frame-level" in res.reason and "fid_frames[inception-v3]" in res.fix
    res = FrameFID().compute(gen, _featureset("r", _clips(rng, 3, 9)))
    assert res.status == "failed" and "dim 8" in res.reason and "dim 9" in res.reason
    nan_rows = _clips(rng, 3, 8)
    nan_rows[0][0, 0] = np.nan
    res = FrameFID(n_boot=20).compute(_featureset("g", nan_rows), ref)
    assert res.status == "ok" and res.n == 2 and any("NaN" in w for w in res.warnings)


# --------------------------------------------------------------------------- real weights (when present)


def _real_file(name: str):
    """The user's copy of ``name`` under their MOVA_BENCH_HOME (read at import, before the tests'
    isolated home applies), else None: the test then skips."""
    try:
        entry = weights.get_entry(name)
        p = weights.weights_dir() / name / entry.filename
    except Exception:  # noqa: BLE001 - no registry, no real weights
        return None
    return p if p.is_file() and p.stat().st_size == entry.size else None


_REAL_INCEPTION = _real_file("inception-v3")


@pytest.mark.slow
@pytest.mark.skipif(_REAL_INCEPTION is None, reason="torch-fidelity's real InceptionV3 file is not in MOVA_BENCH_HOME/weights")
def test_real_inception_loads_strictly(mp4):
    entry = weights.get_entry("inception-v3")
    weights.register_local("inception-v3", _REAL_INCEPTION, sha256=entry.sha256, size=entry.size)  # re-verified by resolve
    try:
        ex = InceptionV3()
        clip = decode(mp4, needs=ex.video_needs)
        ex.load("cpu")
        out = ex.extract(clip)
    finally:
        weights.forget_local("inception-v3")
    assert out["frames"].shape == (2, 2048) and np.isfinite(out["frames"]).all()
    assert (out["frames"] >= 0).all()  # the pool follows a ReLU
