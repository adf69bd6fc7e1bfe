"""sync_dsp analyzer (onset-to-motion offset) and the sync_offset_ms / sync_offset_abs_ms / in_sync_rate metrics."""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pytest

from mova_bench.errors import ConfigError
from mova_bench.features.sync import STATUSES, SyncAnalyzer, audio_onset_envelope, parabolic_peak
from mova_bench.media import DecodedClip, decode, fps_fraction, write_mp4
from mova_bench.metrics.base import FeatureSet
from mova_bench.metrics.sync import (
    InSyncRate,
    InSyncRateSynchronizable,
    SynchronizableRate,
    SyncOffset,
    SyncOffsetAbs,
    scored_offset,
)

FPS_GRID = (16, 24, 25, 29.97, 30)
SR_GRID = (16000, 44100, 48000)
OFFSETS_MS = (-200, -80, 0, 80, 200)
EVENT_S = (0.7, 1.55, 2.3, 3.2)  # irregular, so the correlation has one unambiguous peak


# ----------------------------------------------------------------------------- synthetic clips


def frame_times(fps: float, n: int) -> np.ndarray:
    r = fps_fraction(fps)
    return np.arange(n) * r.denominator / r.numerator


def audio_event(kind: str, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A sharp onset at sample 0: a click, a decaying 440 Hz tone or a decaying noise burst."""
    if kind == "click":
        m = min(n, max(1, int(0.002 * sr)))
        return 0.8 * np.exp(-np.arange(m) / (0.0005 * sr))
    if kind == "tone":
        k = np.arange(min(n, int(0.3 * sr)))
        return 0.5 * np.sin(2 * np.pi * 440 * k / sr) * np.exp(-k / sr / 0.06)
    if kind == "burst":
        k = min(n, int(0.12 * sr))
        return 0.4 * rng.standard_normal(k) * np.exp(-np.arange(k) / sr / 0.04)
    raise ValueError(kind)


def make_clip(
    *,
    fps: float = 24,
    sr: int = 48000,
    offset_ms: float = 0.0,
    vkind: str = "flash",
    akind: str = "click",
    event_s: tuple[float, ...] = EVENT_S,
    dur: float = 4.0,
    audio_start: float = 0.0,
    video_start: float = 0.0,
    size: tuple[int, int] = (144, 256),
    vnoise: float = 2.0,
    anoise: float = 0.003,
    seed: int = 0,
) -> DecodedClip:
    """Visual events (flash, or a bright square jumping) on frames nearest ``event_s``; audio
    onsets ``offset_ms`` after each event's frame time (+ = audio late). Audio sample 0 sits at
    ``audio_start`` and frame 0 at ``video_start`` on the shared timeline."""
    rng = np.random.default_rng(seed)
    h, w = size
    n = int(round(dur * fps))
    vt = video_start + frame_times(fps, n)
    events = sorted({int(round((t - video_start) * fps)) for t in event_s})
    frames = np.full((n, h, w), 60.0, dtype=np.float32)
    if vkind == "flash":
        for e in events:
            for d in range(6):
                if e + d < n:
                    frames[e + d] += 120.0 * math.exp(-d / 1.2)
    elif vkind == "motion":
        yy, xx = np.mgrid[0:h, 0:w]
        for k in range(n):
            j = sum(e <= k for e in events)
            cx, cy = 0.3 * w + (37 * j) % (w // 2), 0.5 * h + (23 * j) % (h // 3)
            frames[k][(abs(xx - cx) < h / 9) & (abs(yy - cy) < h / 9)] = 200.0
    else:
        raise ValueError(vkind)
    frames += vnoise * rng.standard_normal(frames.shape).astype(np.float32)
    video = np.repeat(np.clip(frames, 0, 255).astype(np.uint8)[..., None], 3, axis=3)
    na = int(round((dur - audio_start) * sr))
    y = anoise * rng.standard_normal(na)
    for e in events:
        i = int(round((vt[e] + offset_ms / 1000.0 - audio_start) * sr))
        if 0 <= i < na:
            ev = audio_event(akind, sr, na - i, rng)
            y[i : i + ev.size] += ev
    return DecodedClip(
        video=video,
        video_times=vt,
        fps=float(fps),
        audio=y.astype(np.float32),
        sample_rate=sr,
        audio_start=audio_start,
        source_width=w,
        source_height=h,
        source_channels=1,
        duration_s=dur,
    )


def coloured_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """1/f^beta noise (0 white, 1 pink, 2 brown), peak 0.5."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    y = np.fft.irfft(spec / f ** (beta / 2), n)
    return 0.5 * y / np.abs(y).max()


def write_mp4_delayed_audio(path, video: np.ndarray, fps: float, audio: np.ndarray, sr: int, delay_s: float) -> None:
    """Like media.write_mp4, but the audio stream's first packet is at ``delay_s``."""
    import av

    rate = fps_fraction(fps)
    with av.open(str(path), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        vs.time_base = 1 / rate
        a = c.add_stream("aac", rate=sr)
        a.layout = "mono"
        a.time_base = Fraction(1, sr)
        for i, f in enumerate(video):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        start = int(round(delay_s * sr))
        for s in range(0, audio.size, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, s : s + 1024]), format="fltp", layout="mono")
            af.sample_rate = sr
            af.pts = start + s
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def analyzer() -> SyncAnalyzer:
    return SyncAnalyzer()


def run(analyzer: SyncAnalyzer, clip: DecodedClip) -> tuple[str, float]:
    out = analyzer.extract(clip)
    return str(out["status"]), float(out["offset_ms"])


# ----------------------------------------------------------------------------- accuracy


KINDS = (("flash", "click"), ("motion", "tone"), ("flash", "burst"), ("motion", "burst"), ("motion", "click"))


def test_accuracy_grid_within_one_frame(analyzer):
    """Full grid: 5 frame rates x 3 sample rates x 5 offsets, event kinds rotating (75 clips)."""
    errors = []
    for fi, fps in enumerate(FPS_GRID):
        for si, sr in enumerate(SR_GRID):
            for oi, off in enumerate(OFFSETS_MS):
                vkind, akind = KINDS[(fi + si + oi) % len(KINDS)]
                clip = make_clip(
                    fps=fps, sr=sr, offset_ms=off, vkind=vkind, akind=akind, size=(72, 128), seed=fi * 100 + si * 10 + oi
                )
                status, est = run(analyzer, clip)
                assert status == "ok", (fps, sr, off, vkind, akind, status)
                err = est - off
                assert abs(err) <= 1000.0 / fps, (fps, sr, off, vkind, akind, est)
                errors.append(err)
    errors = np.abs(np.array(errors))
    # far tighter than the one-frame requirement: measured max ~1.5 ms
    assert errors.max() < 5.0, errors.max()
    assert errors.mean() < 2.0, errors.mean()


@pytest.mark.parametrize(
    "fps,sr,off,vkind,akind",
    [(24, 48000, 80, "flash", "click"), (29.97, 44100, -200, "motion", "tone"), (16, 16000, 200, "motion", "burst")],
)
def test_accuracy_through_real_mp4(analyzer, tmp_path, fps, sr, off, vkind, akind):
    clip = make_clip(fps=fps, sr=sr, offset_ms=off, vkind=vkind, akind=akind, seed=3)
    path = tmp_path / "clip.mp4"
    write_mp4(path, clip.video, fps, clip.audio, sr)
    decoded = decode(path)
    status, est = run(analyzer, decoded)
    assert status == "ok"
    assert abs(est - off) <= 1000.0 / fps
    assert abs(est - off) < 5.0


@pytest.mark.parametrize("off", [-80, 0, 120])
def test_audio_starting_late_uses_the_timeline(analyzer, off):
    clip = make_clip(offset_ms=off, audio_start=0.5)
    status, est = run(analyzer, clip)
    assert status == "ok"
    assert abs(est - off) < 5.0
    # the same samples read as if they started at t=0 would be 500 ms off
    clip.audio_start = 0.0
    _, naive = run(analyzer, clip)
    assert abs(naive - (off - 500.0)) < 5.0 or math.isnan(naive)


def test_audio_stream_starting_late_in_a_real_mp4(analyzer, tmp_path):
    clip = make_clip(fps=24, sr=48000, offset_ms=100, audio_start=0.5, seed=5)
    path = tmp_path / "late.mp4"
    write_mp4_delayed_audio(path, clip.video, 24, clip.audio, 48000, 0.5)
    decoded = decode(path)
    assert 0.45 < decoded.audio_start <= 0.5
    status, est = run(analyzer, decoded)
    assert status == "ok"
    assert abs(est - 100.0) < 5.0


def test_video_presentation_times_are_honoured(analyzer):
    """Frames start at 0.25 s (first video pts) and are not at k/fps from 0."""
    clip = make_clip(offset_ms=-80, video_start=0.25)
    status, est = run(analyzer, clip)
    assert status == "ok" and abs(est + 80.0) < 5.0


def test_irregular_frame_times(analyzer):
    """Variable frame rate: every third frame interval is 1.5x longer; events still line up."""
    base = make_clip(fps=24, offset_ms=0.0, vkind="flash", akind="click")
    dt = np.where(np.arange(base.n_frames - 1) % 3 == 2, 1.5, 1.0) / 24.0
    times = np.concatenate([[0.0], np.cumsum(dt)])
    events = [k for k in range(base.n_frames) if base.grey()[k].mean() > 0.5 and (k == 0 or base.grey()[k - 1].mean() < 0.5)]
    rng = np.random.default_rng(1)
    y = 0.003 * rng.standard_normal(base.audio.size)
    for k in events:
        i = int(round((times[k] + 0.08) * base.sample_rate))
        ev = audio_event("click", base.sample_rate, y.size - i, rng)
        y[i : i + ev.size] += ev
    clip = DecodedClip(video=base.video, video_times=times, fps=24.0, audio=y.astype(np.float32), sample_rate=base.sample_rate,
                       audio_start=0.0, source_width=256, source_height=144, source_channels=1, duration_s=times[-1])
    status, est = run(analyzer, clip)
    assert status == "ok" and abs(est - 80.0) < 5.0


def test_lag_window_and_distant_thunder(analyzer):
    """One flash at 1.0 s, its thunder 1.5 s later: outside +-1 s -> low confidence; widened -> found."""
    clip = make_clip(offset_ms=1500, event_s=(1.0,), akind="burst", seed=2)
    assert run(analyzer, clip)[0] == "low_confidence"
    status, est = run(SyncAnalyzer(max_lag_ms=2000), clip)
    assert status == "ok" and abs(est - 1500.0) < 1000 / 24


def test_audio_envelope_stamps_match_onset_times():
    """The flux peak of a click lands within a few ms of the click (STFT centring accounted for)."""
    sr = 16000
    y = np.zeros(sr * 2)
    for t in (0.5, 1.234):
        y[int(t * sr) : int(t * sr) + 16] = 0.8
    times, flux = audio_onset_envelope(y, sr)
    for t in (0.5, 1.234):
        near = (times > t - 0.05) & (times < t + 0.05)
        peak_t = times[near][np.argmax(flux[near])]
        assert abs(peak_t - t) <= 0.004


def test_grey_frames_equal_per_frame_opencv():
    """The shared grey helper equals OpenCV frame by frame (what sync_dsp and av_align used to do)."""
    import cv2

    from mova_bench.features.frames import downscaled_luma_u8, luma_u8

    video = np.random.default_rng(0).integers(0, 256, (5, 37, 53, 3), dtype=np.uint8)
    per_frame = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video])
    assert luma_u8(video).dtype == np.uint8 and np.array_equal(luma_u8(video), per_frame)
    small = downscaled_luma_u8(video, 20)
    assert small.shape == (5, 14, 20)  # round(37 * 20 / 53) = 14
    assert np.array_equal(small, np.stack([cv2.resize(g, (20, 14), interpolation=cv2.INTER_AREA) for g in per_frame]))
    assert np.array_equal(downscaled_luma_u8(video, 64), per_frame)  # never upscaled
    assert luma_u8(video[:0]).shape == (0, 37, 53)


def test_parabolic_peak():
    x = np.arange(10.0)
    y = -((x - 4.3) ** 2)
    assert parabolic_peak(y, 4) == pytest.approx(4.3)
    assert parabolic_peak(y, 0) == 0.0


# ----------------------------------------------------------------------------- not synchronizable


def _with_audio(clip: DecodedClip, audio: np.ndarray) -> DecodedClip:
    clip.audio = audio.astype(np.float32)
    clip._resampled = {}
    return clip


@pytest.mark.parametrize("sr", [16000, 48000])
def test_not_synchronizable_cases(analyzer, sr):
    rng = np.random.default_rng(sr)
    n = 4 * sr
    t = np.arange(n) / sr
    cases = {
        "silent_audio": _with_audio(make_clip(sr=sr), np.zeros(n)),
        "frozen_video": make_clip(sr=sr),
        "no_visual_motion": make_clip(sr=sr, event_s=(), vnoise=6.0),
    }
    cases["frozen_video"].video[:] = cases["frozen_video"].video[0]
    # "no_visual_motion": static, noisy frames with clear audio clicks
    nv = cases["no_visual_motion"]
    y = 0.003 * rng.standard_normal(n)
    for s in EVENT_S:
        y[int(s * sr) : int(s * sr) + 32] += 0.8
    _with_audio(nv, y)
    for name, clip in cases.items():
        out = analyzer.extract(clip)
        assert str(out["status"]) == name, (name, str(out["status"]))
        assert math.isnan(float(out["offset_ms"]))
    ambience = {
        "white": coloured_noise(n, 0, rng),
        "pink": coloured_noise(n, 1, rng),
        "brown": coloured_noise(n, 2, rng),
        "pink, slow swell": coloured_noise(n, 1, rng) * (0.55 + 0.45 * np.sin(2 * np.pi * 0.3 * t)),
        "slow chirp": 0.3 * np.sin(2 * np.pi * (200 * t + 40 * t**2)),
    }
    for name, y in ambience.items():
        out = analyzer.extract(_with_audio(make_clip(sr=sr), y))
        assert str(out["status"]) == "no_audio_onsets", name
        assert math.isnan(float(out["offset_ms"]))


def test_smooth_pan_and_fade_are_no_visual_motion(analyzer):
    import cv2

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur((rng.random((144, 1024)) * 255).astype(np.uint8), (0, 0), 3)
    clip = make_clip()
    clip.video = np.stack([np.repeat(tex[:, 3 * k : 3 * k + 256, None], 3, axis=2) for k in range(clip.n_frames)])
    assert str(analyzer.extract(clip)["status"]) == "no_visual_motion"
    clip = make_clip()
    clip.video = (np.linspace(20, 200, clip.n_frames)[:, None, None, None] * np.ones((1, 144, 256, 3))).astype(np.uint8)
    assert str(analyzer.extract(clip)["status"]) == "no_visual_motion"


def test_events_with_background_noise_stay_ok(analyzer):
    rng = np.random.default_rng(4)
    clip = make_clip(offset_ms=80, vnoise=8.0, anoise=0.05, seed=4)
    status, est = run(analyzer, clip)
    assert status == "ok" and abs(est - 80) < 1000 / 24
    clip = make_clip(offset_ms=-80, event_s=(1.7,), seed=6)
    _with_audio(clip, clip.audio + 0.3 * coloured_noise(clip.audio.size, 1, rng))
    status, est = run(analyzer, clip)
    assert status == "ok" and abs(est + 80) < 1000 / 24


# ----------------------------------------------------------------------------- output contract


def test_output_arrays_cacheable_without_pickle(analyzer):
    out = analyzer.extract(make_clip(offset_ms=80))
    assert set(out) == {"offset_ms", "confidence", "peak_ratio", "audio_salience", "video_salience", "status"}
    assert all(isinstance(v, np.ndarray) and v.ndim == 0 for v in out.values())
    assert out["status"].dtype.kind == "U" and str(out["status"]) in STATUSES
    buf = io.BytesIO()
    np.savez(buf, **out)
    buf.seek(0)
    back = np.load(buf, allow_pickle=False)
    assert str(back["status"]) == "ok" and float(back["offset_ms"]) == float(out["offset_ms"])
    assert 0.5 <= float(out["confidence"]) <= 1.0 and float(out["peak_ratio"]) >= 1.2


def test_params_are_in_the_cache_key():
    a, b = SyncAnalyzer(), SyncAnalyzer(max_lag_ms=2000)
    assert a.name == "sync_dsp" and a.kind == "analysis" and a.modality == "av"
    assert a.cache_identity() != b.cache_identity()
    assert b.cache_identity()["preprocessing"]["max_lag_ms"] == 2000
    assert a.default_params()["hop"] / a.default_params()["analysis_sr"] <= 0.01  # >= 100 Hz envelope
    with pytest.raises(ValueError):
        SyncAnalyzer(max_lag=3)


def test_registry_names():
    from mova_bench import registry

    assert registry.features.get("sync_dsp") is SyncAnalyzer
    assert registry.metrics.get("sync_offset_ms") is SyncOffset
    assert registry.metrics.get("sync_offset_abs_ms") is SyncOffsetAbs
    assert registry.metrics.get("in_sync_rate") is InSyncRate
    assert registry.metrics.get("in_sync_rate_synchronizable") is InSyncRateSynchronizable
    assert registry.metrics.get("synchronizable_rate") is SynchronizableRate


# ----------------------------------------------------------------------------- metrics


def feat(offset: float | None, status: str = "ok") -> dict[str, np.ndarray]:
    return {
        "offset_ms": np.array(float("nan") if offset is None else offset),
        "confidence": np.array(0.9),
        "peak_ratio": np.array(2.0),
        "audio_salience": np.array(20.0),
        "video_salience": np.array(20.0),
        "status": np.array(status),
    }


def fset(rows: list[tuple[str, float | None, str, list | None]]) -> FeatureSet:
    ids = [r[0] for r in rows]
    return FeatureSet(
        clip_ids=ids,
        features={"sync_dsp": {cid: feat(off, st) for cid, off, st, _ in rows}},
        meta={cid: {"clip_id": cid, "prompt_id": "p" + cid, "expected_offset_ms": exp} for cid, _, _, exp in rows},
    )


def test_scored_offset_residual():
    assert scored_offset(80.0, None) == 80.0
    assert scored_offset(-30.0, None) == -30.0
    assert scored_offset(900.0, [300, 1500]) == 0.0
    assert scored_offset(1700.0, [300, 1500]) == 200.0
    assert scored_offset(100.0, [300, 1500]) == -200.0
    with pytest.raises(ConfigError):
        scored_offset(0.0, [5, 1])
    with pytest.raises(ConfigError):
        scored_offset(0.0, "late")


def test_metrics_aggregate_and_exclusions():
    fs = fset(
        [
            ("a", 10.0, "ok", None),
            ("b", -50.0, "ok", None),  # 5 ms beyond the early bound
            ("c", 125.0, "ok", None),  # on the late bound: in sync
            ("d", 900.0, "ok", [300, 1500]),  # thunder, inside its expected range -> 0
            ("e", 1700.0, "ok", [300, 1500]),  # 200 ms later than expected
            ("f", None, "silent_audio", None),
            ("g", None, "low_confidence", None),
            ("h", None, "low_confidence", [300, 1500]),
        ]
    )
    scored = {"a": 10.0, "b": -50.0, "c": 125.0, "d": 0.0, "e": 200.0}
    vals = np.array(list(scored.values()))

    r = SyncOffset().compute(fs, None, seed=0)
    assert r.status == "ok" and r.key == "sync_offset_ms" and r.unit == "ms" and r.higher_is_better is None
    assert r.value == pytest.approx(np.median(vals)) and r.n == 5
    assert r.per_clip == pytest.approx(scored)
    assert r.extra["n_not_synchronizable"] == 3 and r.extra["n_total"] == 8
    assert r.extra["not_synchronizable_reasons"] == {"low_confidence": 2, "silent_audio": 1}
    assert r.ci_low <= r.value <= r.ci_high
    assert "audio late" in r.convention and "expected_offset_ms" in r.convention
    assert r.to_json()["value"] == pytest.approx(10.0)

    r = SyncOffsetAbs().compute(fs, None, seed=0)
    assert r.value == pytest.approx(np.mean(np.abs(vals))) and r.higher_is_better is False and r.n == 5

    # the headline rate counts every analysed clip: the 3 not synchronizable ones are not in sync
    r = InSyncRate().compute(fs, None, seed=0)
    assert r.value == pytest.approx(3 / 8) and r.n == 8  # a, c, d in; b (-50), e (+200), f, g, h out
    assert r.higher_is_better is True and "BT.1359" in r.convention and "not synchronizable" in r.convention
    assert r.per_clip == {"a": 1.0, "b": 0.0, "c": 1.0, "d": 1.0, "e": 0.0, "f": 0.0, "g": 0.0, "h": 0.0}
    assert r.per_clip_column == "in_sync" and r.ci_low <= r.value <= r.ci_high
    assert r.extra["n_synchronizable"] == 5 and r.extra["n_counted_as_0_not_synchronizable"] == 3
    assert "n_not_synchronizable" not in r.extra  # the report must not call them "not averaged"

    r = InSyncRateSynchronizable().compute(fs, None, seed=0)
    assert r.value == pytest.approx(3 / 5) and r.n == 5  # the former conditional rate
    assert r.higher_is_better is True and r.per_clip == {} and "synchronizable_rate" in r.convention

    r = SynchronizableRate().compute(fs, None, seed=0)
    assert r.value == pytest.approx(5 / 8) and r.n == 8 and r.higher_is_better is True and r.unit == "fraction"
    assert r.per_clip == {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0, "f": 0.0, "g": 0.0, "h": 0.0}
    assert r.per_clip_column == "synchronizable" and r.ci_low <= r.value <= r.ci_high
    assert r.extra["not_synchronizable_reasons"] == {"low_confidence": 2, "silent_audio": 1}

    # seeded CI: reproducible
    assert SyncOffsetAbs().compute(fs, None, seed=7).ci_low == SyncOffsetAbs().compute(fs, None, seed=7).ci_low


def test_in_sync_window_bounds():
    fs = fset([(str(i), off, "ok", None) for i, off in enumerate([-45.0, -45.5, 125.0, 125.5, 0.0])])
    assert InSyncRate().compute(fs, None).value == pytest.approx(3 / 5)
    assert InSyncRateSynchronizable().compute(fs, None).value == pytest.approx(3 / 5)


def test_nothing_synchronizable_skips_offsets_and_zeroes_the_rates():
    """Offsets exist only for synchronizable clips (skipped, never 0); the rates over all clips are 0."""
    fs = fset([("a", None, "frozen_video", None), ("b", None, "no_audio_onsets", None)])
    for metric in (SyncOffset(), SyncOffsetAbs(), InSyncRateSynchronizable()):
        r = metric.compute(fs, None)
        assert r.status == "skipped" and r.value is None
        assert "frozen_video: 1" in r.reason and "no_audio_onsets: 1" in r.reason and r.fix
        assert r.extra["n_not_synchronizable"] == 2
    for metric in (InSyncRate(), SynchronizableRate()):
        r = metric.compute(fs, None)
        assert r.status == "ok" and r.value == 0.0 and r.n == 2 and r.per_clip == {"a": 0.0, "b": 0.0}
        assert any("no clip is synchronizable" in w for w in r.warnings)
    empty = FeatureSet(clip_ids=["a"], features={})
    for metric in (SyncOffset(), InSyncRate(), SynchronizableRate()):
        r = metric.compute(empty, None)
        assert r.status == "skipped" and r.value is None and "nothing was analysed" in r.reason


def test_freezing_hard_clips_cannot_raise_the_headline_rate():
    """A model that freezes the video of the clips it gets wrong: the conditional rate rises to 1,
    the headline in_sync_rate and synchronizable_rate fall."""
    honest = fset([("a", 10.0, "ok", None), ("b", 20.0, "ok", None), ("c", 300.0, "ok", None), ("d", -200.0, "ok", None)])
    gamed = fset([("a", 10.0, "ok", None), ("b", 20.0, "ok", None), ("c", None, "frozen_video", None),
                  ("d", None, "frozen_video", None)])
    assert InSyncRateSynchronizable().compute(gamed, None).value > InSyncRateSynchronizable().compute(honest, None).value
    assert InSyncRate().compute(gamed, None).value == InSyncRate().compute(honest, None).value == 0.5
    assert SynchronizableRate().compute(gamed, None).value == 0.5 < SynchronizableRate().compute(honest, None).value


def test_end_to_end_features_to_metric(analyzer):
    clips = {
        "late80": make_clip(offset_ms=80, seed=1),
        "early30": make_clip(offset_ms=-30, seed=2, vkind="motion", akind="tone"),
        "thunder": make_clip(offset_ms=700, event_s=(1.2,), akind="burst", seed=3),
        "silent": _with_audio(make_clip(seed=4), np.zeros(4 * 48000)),
    }
    fs = FeatureSet(
        clip_ids=list(clips),
        features={"sync_dsp": {cid: analyzer.extract(c) for cid, c in clips.items()}},
        meta={cid: {"expected_offset_ms": [300, 1500] if cid == "thunder" else None} for cid in clips},
    )
    r = InSyncRate().compute(fs, None)
    assert r.value == 0.75 and r.n == 4 and r.extra["not_synchronizable_reasons"] == {"silent_audio": 1}
    assert r.per_clip == {"thunder": 1.0, "late80": 1.0, "early30": 1.0, "silent": 0.0} and r.per_clip_column == "in_sync"
    r = InSyncRateSynchronizable().compute(fs, None)
    assert r.value == 1.0 and r.n == 3
    assert SynchronizableRate().compute(fs, None).value == 0.75
    offsets = SyncOffset().compute(fs, None).per_clip  # scored offsets: thunder's 700 ms is inside its window
    assert offsets["thunder"] == 0.0
    assert offsets["late80"] == pytest.approx(80, abs=5) and offsets["early30"] == pytest.approx(-30, abs=5)
