"""AV-Align analyzer (mova-bench's convention; the peers' in tests/test_profiles.py), its one-to-one IoU matcher
and the av_align metric."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest

from mova_bench.features.av_align import (
    AVAlignAnalyzer,
    count_matches,
    flow_trajectory,
    intersection_over_union,
    local_max_indexes,
)
from mova_bench.media import DecodedClip, decode, write_mp4
from mova_bench.metrics.base import FeatureSet
from mova_bench.metrics.sync import AVAlign

EVENT_FRAMES = (14, 35, 51, 70, 88)


def make_clip(*, fps: float = 24.0, sr: int = 48000, shift_frames: float = 0.0, events=EVENT_FRAMES, dur: float = 4.0,
              size=(72, 128), moving: bool = True, silent: bool = False, seed: int = 0) -> DecodedClip:
    """A bright square that jumps to a new place at each event frame (a motion burst), and a click
    ``shift_frames`` frame periods after each jump (0 = coincident)."""
    rng = np.random.default_rng(seed)
    h, w = size
    n = int(round(dur * fps))
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.full((n, h, w), 60.0, dtype=np.float32)
    for k in range(n):
        j = sum(e <= k for e in events) if moving else 0
        cx, cy = 0.3 * w + (37 * j) % (w // 2), 0.5 * h + (23 * j) % (h // 3)
        frames[k][(abs(xx - cx) < h / 9) & (abs(yy - cy) < h / 9)] = 200.0
    frames += rng.standard_normal(frames.shape).astype(np.float32)
    video = np.repeat(np.clip(frames, 0, 255).astype(np.uint8)[..., None], 3, axis=3)
    y = np.zeros(int(dur * sr))
    if not silent:
        for e in events:
            i = int(round((e + shift_frames) / fps * sr))
            m = int(0.002 * sr)
            y[i : i + m] += 0.8 * np.exp(-np.arange(m) / (0.0005 * sr))
    return DecodedClip(video=video, video_times=np.arange(n) / fps, fps=fps, audio=y.astype(np.float32), sample_rate=sr,
                       audio_start=0.0, source_width=w, source_height=h, source_channels=1, duration_s=dur)


# ----------------------------------------------------------------------------- pure matcher


def brute_force_matches(a, v, tol) -> int:
    """Maximum one-to-one matching by exhaustive search (tiny inputs only)."""
    best = 0
    for perm in itertools.permutations(range(len(v)), min(len(a), len(v))):
        for subset_a in itertools.combinations(range(len(a)), len(perm)):
            best = max(best, sum(abs(a[i] - v[j]) <= tol + 1e-9 for i, j in zip(subset_a, perm)))
    return best


def test_iou_small_cases_by_hand():
    tol = 1 / 24
    # one pair within a frame, one audio onset and one peak unmatched: 1 / (2 + 2 - 1)
    assert count_matches([0.0, 1.0], [0.03, 1.5], tol) == 1
    assert intersection_over_union([0.0, 1.0], [0.03, 1.5], tol) == pytest.approx(1 / 3)
    # one-to-one: two onsets near one peak count once -> 1 / (2 + 1 - 1); the original
    # (many-to-one) AV-Align would give 2 / (2 + 1 - 2) = 2.0
    assert intersection_over_union([1.0, 1.01], [1.0], tol) == pytest.approx(0.5)
    # perfect: 3 / (3 + 3 - 3)
    assert intersection_over_union([0.5, 1.0, 2.0], [0.51, 0.98, 2.02], tol) == 1.0
    # none: 0 / (2 + 2)
    assert intersection_over_union([0.5, 1.0], [0.7, 1.2], tol) == 0.0
    # the window is inclusive: exactly one frame apart matches, just over does not
    assert count_matches([1.0], [1.0 + 1 / 30], 1 / 30) == 1
    assert count_matches([1.0], [1.0 + 1 / 30 + 1e-4], 1 / 30) == 0
    # order of the inputs does not matter
    assert count_matches([2.0, 0.0, 1.0], [1.01, 2.02, 0.5], tol) == 2


def test_matcher_is_maximum_not_nearest_first():
    # nearest-first would pair 0.04 with 0.035 and strand 0.0; the maximum matching pairs both
    a, v, tol = [0.0, 0.04], [0.035, 0.075], 0.04
    assert count_matches(a, v, tol) == 2
    assert intersection_over_union(a, v, tol) == 1.0


def test_matcher_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = np.round(rng.uniform(0, 0.5, rng.integers(0, 5)), 3)
        v = np.round(rng.uniform(0, 0.5, rng.integers(0, 5)), 3)
        assert count_matches(a, v, 0.05) == brute_force_matches(list(a), list(v), 0.05)


def test_empty_lists():
    assert math.isnan(intersection_over_union([], [], 0.04))
    assert intersection_over_union([1.0], [], 0.04) == 0.0
    assert intersection_over_union([], [0.5, 1.0], 0.04) == 0.0


def test_local_max_indexes():
    x = [0.0, 0.2, 0.1, 0.05, 0.3, 0.3, 0.0, 0.09, 0.0, 0.1, 0.0]
    # 1: strict max >= 0.1; 4-5: plateau (not strict); 7: below 0.1; 9: exactly 0.1 is kept
    assert local_max_indexes(x, 0.1).tolist() == [1, 9]
    assert local_max_indexes([1.0, 2.0], 0.1).tolist() == []


# ----------------------------------------------------------------------------- analyzer


@pytest.fixture(scope="module")
def analyzer() -> AVAlignAnalyzer:
    return AVAlignAnalyzer()


def test_flow_trajectory_peaks_at_motion_bursts():
    clip = make_clip()
    traj = flow_trajectory(clip.video, source_width=clip.source_width)
    assert traj.shape == (clip.n_frames,) and traj[0] == traj[1]
    assert local_max_indexes(traj, 0.1).tolist() == list(EVENT_FRAMES)
    half = flow_trajectory(clip.video, max_width=64, source_width=clip.source_width)
    assert local_max_indexes(half, 0.1).tolist() == list(EVENT_FRAMES)


def test_flow_magnitude_is_in_source_pixels():
    """A smooth texture panning 2 px/frame at 128 px: ~2 px at any analysis width."""
    import cv2

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur((rng.random((72, 400)) * 255).astype(np.uint8), (0, 0), 2.5)
    video = np.stack([np.repeat(tex[:, 2 * k : 2 * k + 128, None], 3, axis=2) for k in range(12)])
    full = flow_trajectory(video, max_width=128, source_width=128)
    half = flow_trajectory(video, max_width=64, source_width=128)
    assert np.median(full) == pytest.approx(2.0, rel=0.2)
    assert np.median(half) == pytest.approx(2.0, rel=0.2)


@pytest.mark.parametrize("fps", [24.0, 30.0])
def test_coincident_events_score_high_shifted_score_low(analyzer, fps):
    events = tuple(int(round(f * fps / 24)) for f in EVENT_FRAMES)
    sync = analyzer.extract(make_clip(fps=fps, events=events))
    assert str(sync["status"]) == "ok"
    assert int(sync["n_video_peaks"]) == len(events)
    assert float(sync["iou"]) >= 0.8
    shifted = analyzer.extract(make_clip(fps=fps, events=events, shift_frames=4))
    assert float(shifted["iou"]) <= 0.2
    assert float(sync["iou"]) > float(shifted["iou"])


def test_through_real_mp4(analyzer, tmp_path):
    clip = make_clip(size=(144, 256))
    path = tmp_path / "c.mp4"
    write_mp4(path, clip.video, clip.fps, clip.audio, clip.sample_rate)
    out = analyzer.extract(decode(path))
    assert float(out["iou"]) >= 0.8


def test_no_events_and_one_sided(analyzer):
    silent_static = analyzer.extract(make_clip(silent=True, moving=False))
    assert str(silent_static["status"]) == "no_events" and math.isnan(float(silent_static["iou"]))
    assert int(silent_static["n_audio_onsets"]) == 0 and int(silent_static["n_video_peaks"]) == 0
    clicks_static = analyzer.extract(make_clip(moving=False))
    assert str(clicks_static["status"]) == "ok" and float(clicks_static["iou"]) == 0.0
    assert int(clicks_static["n_audio_onsets"]) >= len(EVENT_FRAMES) - 1


def test_output_contract_and_cache_key(analyzer):
    out = analyzer.extract(make_clip())
    assert set(out) == {"iou", "n_audio_onsets", "n_video_peaks", "n_matches", "status"}
    assert all(isinstance(v, np.ndarray) and v.ndim == 0 for v in out.values())
    buf = io.BytesIO()
    np.savez(buf, **out)
    buf.seek(0)
    assert str(np.load(buf, allow_pickle=False)["status"]) == "ok"
    ident = analyzer.cache_identity()
    assert analyzer.name == "av_align" and analyzer.kind == "analysis"
    assert ident["preprocessing"]["min_flow"] == 0.1 and ident["preprocessing"]["audio_sr"] == 22050
    assert "librosa" in ident["preprocessing"]
    assert AVAlignAnalyzer(max_width=64).cache_identity() != ident


# ----------------------------------------------------------------------------- metric


def _f(iou: float | None, status: str = "ok") -> dict[str, np.ndarray]:
    return {"iou": np.array(float("nan") if iou is None else iou), "n_audio_onsets": np.array(1),
            "n_video_peaks": np.array(1), "n_matches": np.array(0), "status": np.array(status)}


def test_av_align_metric():
    fs = FeatureSet(clip_ids=["a", "b", "c", "d"],
                    features={"av_align": {"a": _f(1.0), "b": _f(0.5), "c": _f(0.0), "d": _f(None, "no_events")}})
    r = AVAlign().compute(fs, None, seed=0)
    assert r.status == "ok" and r.key == "av_align" and r.higher_is_better is True
    # a clip without events scores 0 and stays in the mean (as MOVA's implementation)
    assert r.value == pytest.approx((1.0 + 0.5 + 0.0 + 0.0) / 4) and r.n == 4
    assert r.extra == {"n_no_events": 1, "no_events_reasons": {"no_events": 1}, "n_total": 4}
    assert r.ci_low <= r.value <= r.ci_high and r.per_clip == {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.0}
    assert "one-to-one" in r.convention.lower() or "One-to-one" in r.convention
    assert "scoring 0 and staying in the mean" in r.convention

    none = FeatureSet(clip_ids=["d"], features={"av_align": {"d": _f(None, "no_events")}})
    r = AVAlign().compute(none, None)
    assert r.status == "ok" and r.value == 0.0 and r.n == 1 and r.extra["n_no_events"] == 1
    r = AVAlign().compute(FeatureSet(clip_ids=["d"], features={}), None)
    assert r.status == "skipped" and r.value is None and "nothing was analysed" in r.reason


def test_registry_names():
    from mova_bench import registry

    assert registry.features.get("av_align") is AVAlignAnalyzer
    assert registry.metrics.get("av_align") is AVAlign
