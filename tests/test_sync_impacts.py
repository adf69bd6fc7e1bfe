"""sync_dsp's impact cue: changes of velocity of tracked objects (bounces, collisions), validated on
clips of objects that bounce under gravity or collide, with a knock at each impact
(:func:`mova_bench.sanity.impact_clip`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mova_bench.features import sync as sync_mod
from mova_bench.features.sync import SyncAnalyzer, tracked_motion_change
from mova_bench.media import DecodedClip, decode, fps_fraction, write_mp4
from mova_bench.sanity import impact_clip, steady_clips


def as_clip(video: np.ndarray, audio: np.ndarray, fps: float, sr: int = 48000) -> DecodedClip:
    r = fps_fraction(fps)
    n = video.shape[0]
    return DecodedClip(video=video, video_times=np.arange(n) * r.denominator / r.numerator, fps=float(fps),
                       audio=np.asarray(audio, np.float32), sample_rate=sr, audio_start=0.0,
                       source_width=video.shape[2], source_height=video.shape[1], source_channels=1,
                       duration_s=n * r.denominator / r.numerator)


@pytest.fixture(scope="module")
def analyzer() -> SyncAnalyzer:
    return SyncAnalyzer()


def analyse(analyzer: SyncAnalyzer, clip: DecodedClip) -> tuple[str, float]:
    out = analyzer.extract(clip)
    return str(out["status"]), float(out["offset_ms"])


# ----------------------------------------------------------------------------- the generator


@pytest.mark.parametrize("scene", ["drop", "collide"])
def test_impact_clip_is_physical(scene):
    c = impact_clip(scene=scene, fps=24, seed=3, offset_ms=80, area=0.004)
    assert c.video.shape == (96, 144, 256, 3) and c.video.dtype == np.uint8
    assert c.audio.shape == (4 * 48000,) and np.abs(c.audio).max() <= 1.0
    assert len(c.impacts) >= 6 and all(0 < t < 4.0 for t, _, _ in c.impacts)
    assert c.area < 0.01  # small objects: < 1 % of the frame
    # impact times are exact, not on the frame grid
    phases = [(t * 24) % 1.0 for t, _, _ in c.impacts]
    assert np.std(phases) > 0.15
    # every knock starts at its impact time + the offset: the audio is quiet just before and loud just after
    sr = c.sample_rate
    for t, _, speed in c.impacts:
        i = int(round((t + 0.08) * sr))
        if i + 480 < c.audio.size and speed > 0.3 * max(s for _, _, s in c.impacts):
            before, after = np.abs(c.audio[i - 240 : i - 24]).max(), np.abs(c.audio[i : i + 480]).max()
            assert after > 4 * before or before > 0.05  # (another knock may still ring)


def test_impact_clip_is_deterministic():
    a, b = impact_clip(seed=5), impact_clip(seed=5)
    assert np.array_equal(a.video, b.video) and np.array_equal(a.audio, b.audio) and a.impacts == b.impacts
    with pytest.raises(ValueError):
        impact_clip(scene="juggle")


# ----------------------------------------------------------------------------- the impact envelope


def _one_ball(fps: float, impact_frame: float, n: int = 48, h: int = 144, w: int = 256) -> np.ndarray:
    """A ball falling under gravity that bounces (restitution 0.8) at ``impact_frame`` (fractional)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g, floor, r = 3.0 * h, 0.9 * h, 6.0
    t0 = impact_frame / fps
    v0 = g * t0  # dropped from rest at t = 0
    frames = np.empty((n, h, w, 3), np.uint8)
    for k in range(n):
        t = k / fps
        if t <= t0:
            y = floor - r - (0.5 * g * t0 * t0 - 0.5 * g * t * t)
        else:
            tau = t - t0
            y = floor - r - max(0.0, 0.8 * v0 * tau - 0.5 * g * tau * tau)
        cov = np.clip(r + 0.5 - np.hypot(xx - 0.5 * w, yy - y), 0.0, 1.0)[..., None]
        frames[k] = np.clip(np.full((h, w, 3), 140.0) * (1 - cov) + 240.0 * cov, 0, 255).astype(np.uint8)
    return frames


@pytest.mark.parametrize("phase", [0.0, 0.3, 0.7])
def test_envelope_is_centred_on_the_impact(phase):
    """An impact a fraction f of a frame after frame k puts (1-f) of its change on k and f on k+1."""
    fps = 24.0
    at = 20.0 + phase
    env = tracked_motion_change(_one_ball(fps, at))
    near = np.arange(env.size)[max(0, int(at) - 3) : int(at) + 5]
    centre = float((near * env[near]).sum() / env[near].sum())
    assert abs(centre - at) < 0.2, (centre, at, env[near])
    far = np.delete(env, near)
    assert env[near].max() > 10 * max(far.max(), 1e-6)  # free fall (gravity) adds nothing


def test_steady_motion_gravity_pan_and_fade_give_no_impact():
    clips = steady_clips(seed=1)
    for name, (video, _) in clips.items():
        env = tracked_motion_change(video)
        assert env.max() < SyncAnalyzer.default_params()["min_impact"], (name, env.max())


# ----------------------------------------------------------------------------- offsets


@pytest.mark.parametrize("scene", ["drop", "collide"])
@pytest.mark.parametrize("fps", [16.0, 24.0, 30.0])
def test_offsets_within_one_frame(analyzer, scene, fps):
    for i, off in enumerate((-200.0, 0.0, 120.0)):
        c = impact_clip(scene=scene, fps=fps, seed=100 + int(fps) + i, offset_ms=off, area=0.004)
        status, est = analyse(analyzer, as_clip(c.video, c.audio, fps))
        assert status == "ok", (scene, fps, off, status)
        assert abs(est - off) <= 1000.0 / fps, (scene, fps, off, est)
        assert abs(est - off) < 15.0  # measured: mean |error| ~4 ms, worst 12.5 ms over 240 clips


@pytest.mark.parametrize("fps,area", [(16.0, 0.002), (30.0, 0.002), (24.0, 0.008)])
def test_small_objects(analyzer, fps, area):
    c = impact_clip(scene="drop", fps=fps, seed=7, offset_ms=-80, area=area)
    status, est = analyse(analyzer, as_clip(c.video, c.audio, fps))
    assert status == "ok" and abs(est + 80.0) <= 1000.0 / fps


def test_through_h264_at_640x352(analyzer, tmp_path):
    """640x352, 8 s (MOVA's geometry at 24 fps), written as H.264/AAC and decoded to 256 px."""
    c = impact_clip(scene="drop", fps=24, width=640, height=352, duration_s=8.0, seed=11, offset_ms=150)
    path = tmp_path / "bounce.mp4"
    write_mp4(path, c.video, 24, c.audio, c.sample_rate)
    clip = decode(path)
    assert clip.video.shape[2] == 256
    status, est = analyse(analyzer, clip)
    assert status == "ok" and abs(est - 150.0) <= 1000.0 / 24


# ----------------------------------------------------------------------------- no false offsets


def test_impact_free_motion_is_never_synchronised(analyzer):
    for seed in (0, 1):
        for name, (video, audio) in steady_clips(seed=seed).items():
            status, _ = analyse(analyzer, as_clip(video, audio, 24.0))
            assert status != "ok", (seed, name)


@pytest.mark.parametrize("scene", ["drop", "collide"])
def test_unrelated_knocks_are_not_synchronised(analyzer, scene):
    for seed in (0, 1, 2):
        mine, other = impact_clip(scene=scene, seed=seed), impact_clip(scene=scene, seed=seed + 50)
        status, _ = analyse(analyzer, as_clip(mine.video, other.audio, 24.0))
        assert status == "low_confidence", (scene, seed)


def test_the_onset_cue_decides_when_it_is_salient(analyzer, monkeypatch):
    """A clip with visual onsets never reaches the tracker (its results are those of version 1)."""

    def boom(*a, **k):
        raise AssertionError("the impact cue was consulted")

    monkeypatch.setattr(sync_mod, "tracked_motion_change", boom)
    n = 96
    video = np.full((n, 72, 128, 3), 60, np.uint8)
    audio = 0.003 * np.random.default_rng(0).standard_normal(4 * 48000)
    for t in (0.7, 1.55, 2.3, 3.2):
        k = int(round(t * 24))
        video[k : k + 2] = 200
        i = int(round((k / 24 + 0.05) * 48000))
        audio[i : i + 96] += 0.8 * np.exp(-np.arange(96) / 24.0)
    status, est = analyse(analyzer, as_clip(video, audio, 24.0))
    assert status == "ok" and abs(est - 50.0) < 1000 / 24


def test_version_and_parameters_in_the_cache_key():
    a = SyncAnalyzer()
    ident = a.cache_identity()
    assert a.version == "2"
    for key in ("track_width", "track_max_link", "track_max_area_ratio", "track_min_speed", "track_max_foreground",
                "min_impact"):
        assert key in ident["preprocessing"]
    assert SyncAnalyzer(track_width=96).cache_identity() != ident
    assert math.isclose(ident["preprocessing"]["min_impact"], 0.01)


def test_shared_luma_downscale_equals_the_frame_helper():
    """Both video cues share one luma conversion; the downscale is the frame helper's, bit for bit."""
    from mova_bench.features.frames import downscaled_luma_u8, luma_u8
    from mova_bench.features.sync import downscale_u8

    video = np.random.default_rng(0).integers(0, 256, (4, 37, 53, 3), dtype=np.uint8)
    for width in (20, 53, 64):
        assert np.array_equal(downscale_u8(luma_u8(video), width), downscaled_luma_u8(video, width))
