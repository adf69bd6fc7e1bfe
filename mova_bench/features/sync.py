"""Weight-free audio-visual sync analyzer (``sync_dsp``): onset-to-motion offset by cross-correlation.

Convention (version 2; every number below is a parameter of :class:`SyncAnalyzer` or a constant of
this module, and therefore part of the feature-cache key):

Audio onset-strength envelope (250 Hz)
    Mono audio resampled to 16 kHz (soxr HQ, :meth:`DecodedClip.audio_at`). Centred STFT with a
    zero-padded start, periodic Hann window of 256 samples (16 ms), hop 64 samples (4 ms);
    40-band Slaney mel power (librosa filterbank); dB relative to the clip's maximum mel power,
    floored ``top_db`` = 80 dB below it. The envelope is the spectral flux: the half-wave
    rectified frame-to-frame increase of the log-mel spectrum, averaged over bands (dB). Flux
    values whose windows reach the zero padding are set to 0, so the ends of a clip are never
    onsets. Time stamps: the flux between frames j and j+1 is stamped at the midpoint of their
    centres plus 3/8 of the window (6 ms), because a sharp onset starts raising the log-mel power
    as soon as it enters the leading part of the window. Measured on clicks, decaying tones and
    noise bursts at 16/44.1/48 kHz, clean and in noise: residual bias within [-2, +4] ms. Audio
    sample 0 is at ``clip.audio_start`` on the shared timeline.

Video motion envelope (one value per frame)
    Each RGB frame is converted to BT.601 luma (cv2.COLOR_RGB2GRAY: the weights of
    :meth:`DecodedClip.grey`) and area-downscaled (cv2.INTER_AREA) to ``video_width`` = 64
    pixels wide, aspect kept, giving g in [0, 1]. This is ``grey()`` followed by downscaling,
    computed on uint8 frames: ~3 ms for 96 frames at 256x144 instead of the ~30 ms of ``grey()``
    in float32 on the full frames, and equal to it up to the uint8 rounding (<= 1/255). Two energies per frame:
    *motion*, the mean half-wave rectified frame difference ``mean(max(r_k - r_{k-1}, 0))`` of
    gain-normalised frames ``r_k = g_k * mean_t(mu) / mu_k`` (``mu_k`` the frame's mean luma, so
    an exposure flicker is not motion; a moving edge or a brightening object is, a flash fading
    out is not), and *brightening*, the positive change of mean luma ``max(mu_k - mu_{k-1}, 0)``
    (flashes). Each becomes a "visual flux" by its half-wave rectified increase over the larger
    of its two previous values, ``max(e_k - max(e_{k-1}, e_{k-2}), 0)``: a flash, a jump or the
    start of a motion is an onset; steady motion, a pan or a fade (whose uint8-quantised energy
    jitters between two levels) is not. Frames 0 and 1 are 0. The envelope is the sum of the two
    (each noise-gated on its own before the correlation). Sample k is stamped at the frame's
    presentation time ``clip.video_times[k]`` (the first frame showing the event), never k/fps.
    This is the *onset cue*.

Video impact envelope (one value per frame), used when the clip shows no visual onset
    Impacts (a ball bouncing, objects colliding, a foot landing, a hammer stopping) change an
    object's velocity abruptly; their visual cue is often no onset at all. The *impact cue*
    tracks objects and measures the change of their velocity:
    frames are converted to luma, area-downscaled to ``track_width`` = 128 pixels wide and
    gain-normalised as above; the background is the per-pixel median of up to 48 evenly spaced
    frames; a pixel is foreground when it differs from the background by more than
    max(12 levels, 4 robust sigmas of all differences). Brighter and darker foreground are
    labelled apart (8-connected components), so an object and its shadow stay two objects; a
    frame whose foreground exceeds ``track_max_foreground`` = 25 % of the frame (a flash, a cut,
    camera motion) has no objects and breaks every track. Each component (>= 2 pixels) is an
    object at its contrast-weighted centroid. Objects of consecutive frames are linked greedily,
    closest pair first, when they have the same sign, lie at most ``track_max_link`` = 0.2
    frame widths apart and their areas differ by at most ``track_max_area_ratio`` = 1.3x (a
    merge with another object, its shadow or a dust cloud breaks the track rather than moving
    its centroid). For an object tracked through frames k-1, k, k+1 the change of velocity is
    ``(c[k+1] - c[k]) - (c[k] - c[k-1])`` (frame widths per frame per frame); the clip's common
    acceleration (the median change over all tracked moving objects: gravity) is subtracted,
    and its length is weighted by ``clip(|c[k] - c[k-1]| / track_min_speed - 1, 0, 1)``
    (``track_min_speed`` = 0.5 pixels per frame: a resting object, or one starting from rest,
    adds nothing) and by the object's contrast (a faint blob's outline flickers with noise).
    Value k, stamped at ``clip.video_times[k]``, is the sum over objects. An impact between
    frames k and k+1, a fraction f of the frame period after frame k, puts (1-f) of its change
    on frame k and f on frame k+1, so the interpolated envelope is centred on the impact.
    Steady motion, pans, fades and free fall give nothing. It enters the correlation noise-gated
    and square-rooted (which evens out fast and slow impacts, as the log-mel flux evens out their
    loud and soft knocks).

Cross-correlation
    The envelopes (the audio flux, and each of the two video fluxes) are noise-gated (soft
    threshold at median + ``noise_gate_k`` = 3 robust sigmas, sigma = 1.4826 MAD), so stationary
    background (rain hiss, sensor noise, flicker) does not dilute the correlation. They go onto
    one uniform 4 ms grid on the shared timeline: the audio envelope on its own stamps, extended
    with zeros to cover the video, and low-passed with a triangle of half-width one frame period
    (the kernel that linear interpolation applies to the frame-rate video envelope); the video
    envelope linearly interpolated between frame times, zero outside them. Each is
    mean-subtracted over its own span and the normalised cross-correlation
    ``c(lag) = sum_t a(t + lag) v(t) / (|a| |v|)`` is evaluated for |lag| <= ``max_lag_ms``
    (default 1000 ms; a suite may widen it, e.g. 2000 ms for distant thunder). The offset is the
    lag of the highest value, refined by parabolic interpolation through its two neighbours.
    Sign: positive = audio late (the sound comes after the motion).

Confidence and status (the first that applies, in this order)
    ``silent_audio``: no samples, or audio peak below ``silence_dbfs`` (-60 dBFS).
    ``frozen_video``: fewer than 2 frames, or no consecutive pair differs by more than
    ``frozen_threshold`` (0.5/255) in mean absolute luma.
    ``no_audio_onsets`` / ``no_visual_motion``: the envelope has no salient peak. Salience is the
    robust z-score of its maximum, ``(max - median) / max(1.4826 MAD, floor)`` (floor 0.05 dB for
    audio, 0.25/255 for the onset cue, 0.001 for the impact cue), and must reach
    ``min_salience`` = 8; the maximum must also reach ``min_audio_flux_db`` = 1 dB /
    ``min_video_flux`` = 2/255 (above the 1/255 that a global one-level uint8 step produces) /
    ``min_impact`` = 0.01 frame widths per frame per frame. Stationary white/pink/brown noise,
    slowly modulated noise, chirps and fade-ins (audio salience 3-6), static noisy video, smooth
    pans and fades fall below; clicks, decaying tones and noise bursts, even in noise, score
    15-50. ``no_visual_motion`` means neither the onset cue nor the impact cue is salient.
    Which cue: the onset cue when it is salient (its result, ok or low_confidence, is the clip's);
    otherwise the impact cue. The impact cue is not tried on clips whose onset cue is salient but
    inconclusive: on the procedural world's stylised animations (hands merging at a clap, a ball
    merging with its dust cloud) it lands one to six frames off, and with exposure flicker it
    turned 14 of 44 low-confidence clips into confident wrong offsets; as a fallback it changes
    nothing the onset cue already decides. ``video_salience`` is that of the cue used (the larger
    of the two when neither is salient).
    ``low_confidence``: the correlation peak (``confidence``, in [-1, 1]) is below
    ``min_confidence`` = 0.5, or ``peak_ratio`` (peak over the highest other local maximum
    farther than two frame periods away; capped at 100) is below ``min_peak_ratio`` = 1.2, or the
    peak is on the edge of the lag window (the offset may lie outside it: widen ``max_lag_ms``).
    On synthetic clips with 2-7 events, audio and video unrelated, the peak stays below ~0.52
    (58 of 60 low_confidence); related ones with noise score 0.68-0.99 (60 of 60 ok). Periodic
    events whose period is shorter than the lag window are ambiguous and usually land here.
    ``ok`` otherwise. ``offset_ms`` is NaN whenever status != "ok".

Output (0-d arrays): ``offset_ms``, ``confidence``, ``peak_ratio``, ``audio_salience``,
``video_salience`` (float64; NaN where not reached) and ``status`` (numpy unicode).

Validated on the procedural world (10 onset classes x offsets -200..200 ms x 2 seeds, 24 fps,
48 kHz): all ok, |error| <= 13 ms (clap; others <= 7 ms); ambience scenes are no_audio_onsets;
frozen / silent knobs give their statuses. Random per-frame exposure flicker (gain +-5%) leaves
drum, rain and thunder scenes ok but makes small-motion scenes (footsteps) low_confidence.

Validated on impacts (:func:`mova_bench.sanity.impact_clip`: balls dropped under gravity with
shadows, billiard balls colliding; objects 0.2 and 0.6 % of the frame; 16/24/30 fps; 256x144
and 640x352 through H.264/AAC; offsets -200..200 ms; 240 clips): 239 ok (one low_confidence,
peak 0.49), every one within one frame, mean |error| 2.8 ms, worst 7.8 ms, bias +1.5 ms.
Impact-free pans, fades, steady motion and gravity arcs with knocks are never synchronised; of
24 bouncing-ball videos given another clip's knocks, one is (peak 0.52), about the rate of the
onset cue on unrelated clips. The procedural world gives the same results as version 1 (the
onset cue decides every clip there). Cost (CPU): the tracker runs only for clips without a
salient onset, where it adds ~45 ms per 100 frames at the 256-px decode size (a 4 s 256x144
clip: 7 ms -> 56 ms, decoding it 68 ms; 193 frames of 640x352: 14 ms -> 100 ms, decoding 371 ms);
clips the onset cue decides cost what they did.

Known limits: the onset cue sees onsets, not causes, and the impact cue sees objects that stand
out from a static background: with a moving camera, or where objects merge at contact (hands
clapping, a foot in its dust), impacts are not seen; sounds from off-screen sources or camera
cuts add unrelated onsets and lower the confidence; the accuracy is bounded by the frame period
for events that ramp over several frames.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mova_bench.features.base import FeatureExtractor
from mova_bench.features.frames import downscale_u8, luma_u8
from mova_bench.media import DecodedClip

STATUSES = ("ok", "silent_audio", "no_audio_onsets", "frozen_video", "no_visual_motion", "low_confidence")

_AUDIO_SALIENCE_FLOOR_DB = 0.05
_VIDEO_SALIENCE_FLOOR = 0.25 / 255.0
_IMPACT_SALIENCE_FLOOR = 0.001
_PEAK_RATIO_CAP = 100.0


@lru_cache(maxsize=8)
def _mel_matrix(sr: int, n_fft: int, n_mels: int):
    """Slaney mel filterbank (librosa), (n_mels, 1 + n_fft // 2), as a sparse CSR matrix.

    Sparse on purpose: the product is tiny, and a dense BLAS product spawns threads that, on a
    busy machine, cost more than the whole analysis.
    """
    import librosa
    from scipy.sparse import csr_matrix

    return csr_matrix(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64))


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (as scipy.signal.get_window('hann', n) and librosa use)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def audio_onset_envelope(
    audio: np.ndarray,
    sr: int,
    *,
    n_fft: int = 256,
    hop: int = 64,
    n_mels: int = 40,
    top_db: float = 80.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectral-flux onset envelope of mono ``audio`` already at rate ``sr``.

    Returns ``(times, flux)``: times in seconds from audio sample 0 (see the module docstring for
    the stamp convention), flux in dB (band-averaged half-wave rectified log-mel increase).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.asarray(audio, dtype=np.float64)
    pad = n_fft // 2
    n_frames = 1 + (x.size + 2 * pad - n_fft) // hop if x.size + 2 * pad >= n_fft else 0
    if n_frames < 2:
        return np.zeros(0), np.zeros(0)
    xp = np.pad(x, (pad, pad))
    frames = sliding_window_view(xp, n_fft)[::hop][:n_frames]
    power = np.abs(np.fft.rfft(frames * _hann(n_fft), axis=1)) ** 2
    mel = np.asarray((_mel_matrix(sr, n_fft, n_mels) @ power.T).T)  # (frames, n_mels)
    times = ((np.arange(n_frames - 1) + 0.5) * hop + 0.375 * n_fft) / sr
    ref = float(mel.max())
    if ref <= 0.0:
        return times, np.zeros(n_frames - 1)
    log_mel = 10.0 * np.log10(np.maximum(mel, ref * 10.0 ** (-top_db / 10.0)))
    flux = np.maximum(np.diff(log_mel, axis=0), 0.0).mean(axis=1)  # flux[j]: frame j -> j+1
    # frames whose window reaches the zero padding (centre closer than n_fft/2 to an end)
    centres = np.arange(n_frames) * hop
    inside = (centres >= pad) & (centres + pad <= x.size)
    flux[~(inside[:-1] & inside[1:])] = 0.0
    return times, flux


def _rise(x: np.ndarray) -> np.ndarray:
    """Per-frame onsets (T values) of a frame-pair energy ``x`` (T-1 values, ``x[i]`` belongs to
    frame i+1): the rectified increase over the larger of the two previous values; frames 0 and
    1 are 0. A step or a spike is an onset; a steady level, or one that jitters between two
    uint8-quantised values, is not."""
    m = np.concatenate([x[:1], x]).astype(np.float64)  # per frame; frame 0 := frame 1
    out = np.zeros(m.size)
    out[2:] = np.maximum(m[2:] - np.maximum(m[1:-1], m[:-2]), 0.0)
    return out


def video_motion_envelope(video: np.ndarray, *, width: int = 64) -> tuple[np.ndarray, np.ndarray, float]:
    """Visual-flux envelopes of (T, H, W, 3) uint8 RGB ``video`` (or its (T, H, W) uint8 luma; one
    value per frame, luma units).

    Returns ``(motion, brightening, max_mean_abs_diff)``: the onset of the gain-normalised
    half-wave rectified frame difference, the onset of the positive change of mean brightness,
    and the mean absolute luma difference of the most different consecutive pair (which decides
    whether the video is frozen).
    """
    t = video.shape[0]
    if t < 2:
        return np.zeros(t), np.zeros(t), 0.0
    grey = video if video.ndim == 3 else luma_u8(video)
    g = downscale_u8(grey, width).reshape(t, -1).astype(np.float32) / 255.0  # (T, pixels) luma in [0, 1]
    mu = g.mean(axis=1)
    d = np.diff(g, axis=0)
    max_abs = float(np.abs(d).mean(axis=1).max())
    # gain-normalised frames (mean brightness of each frame scaled to the clip's), so a global
    # flicker of the exposure is not motion; flashes are counted by the brightness term instead
    r = g * (float(mu.mean()) / np.maximum(mu, 1.0 / 255.0))[:, None]
    motion = np.maximum(np.diff(r, axis=0), 0.0).mean(axis=1)
    brightening = np.maximum(np.diff(mu), 0.0)
    return _rise(motion), _rise(brightening), max_abs


#: tracker constants (the module's source is part of the feature-cache key)
_TRACK_K_SIGMA = 4.0  # foreground threshold: this many robust noise sigmas above the background ...
_TRACK_MIN_LEVEL = 12.0  # ... and at least this many luma levels (of 255)
_TRACK_BACKGROUND_FRAMES = 25  # frames (evenly spaced) whose median is the background
_TRACK_MIN_AREA = 2  # pixels at the tracker's width
_TRACK_MAX_BLOBS = 32  # largest blobs kept per frame


def _blobs(grey: np.ndarray, width: int, max_foreground: float) -> list[np.ndarray | None]:
    """Moving-object blobs per frame of (T, H, W) uint8 luma: ``(n, 5)`` arrays of (x, y, area,
    contrast, sign) at the tracker's width (contrast: the blob's mean excess over the threshold,
    relative to the threshold; sign: +1 brighter, -1 darker than the background), or None for a
    frame whose foreground exceeds ``max_foreground`` (a flash, a cut, camera motion)."""
    import cv2

    t = grey.shape[0]
    g = downscale_u8(grey, width).astype(np.float32)
    _, h, w = g.shape
    mu = g.reshape(t, -1).mean(axis=1)
    g *= (float(mu.mean()) / np.maximum(mu, 1.0))[:, None, None]  # gain-normalised, as the onset envelope
    idx = np.unique(np.linspace(0, t - 1, min(t, _TRACK_BACKGROUND_FRAMES)).round().astype(np.int64))
    sample = g[idx]
    background = np.median(sample, axis=0)
    thr = max(_TRACK_MIN_LEVEL, _TRACK_K_SIGMA * 1.4826 * float(np.median(np.abs(sample - background))))
    max_area = max_foreground * h * w
    out: list[np.ndarray | None] = []
    for k in range(t):
        dev = g[k] - background
        brighter, darker = dev > thr, dev < -thr
        if int(brighter.sum()) + int(darker.sum()) > max_area:
            out.append(None)
            continue
        found = []
        # brighter and darker than the background apart: a ball and its shadow stay two objects
        for sign, mask in ((1.0, brighter), (-1.0, darker)):
            n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
            if n <= 1:
                continue
            ys, xs = np.nonzero(mask)
            lab = labels[ys, xs]
            wgt = np.abs(dev[ys, xs]).astype(np.float64) - thr
            sw = np.bincount(lab, weights=wgt, minlength=n)
            sx = np.bincount(lab, weights=wgt * xs, minlength=n)
            sy = np.bincount(lab, weights=wgt * ys, minlength=n)
            area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
            keep = np.flatnonzero((area >= _TRACK_MIN_AREA) & (area <= max_area) & (sw > 0))
            keep = keep[keep > 0]  # label 0 is the rest of the frame
            found.append(np.stack([sx[keep] / sw[keep], sy[keep] / sw[keep], area[keep], sw[keep] / area[keep] / thr,
                                   np.full(keep.size, sign)], axis=1))
        b = np.concatenate(found) if found else np.zeros((0, 5))
        out.append(b[np.argsort(-b[:, 2], kind="stable")][:_TRACK_MAX_BLOBS])
    return out


def _link(a: np.ndarray | None, b: np.ndarray | None, max_dist: float, max_ratio: float) -> dict[int, int]:
    """Blobs of frame k (``a``) paired with blobs of frame k+1 (``b``): repeatedly the closest
    remaining pair of the same sign, at most ``max_dist`` apart and with areas within
    ``max_ratio`` of each other."""
    if a is None or b is None or len(a) == 0 or len(b) == 0:
        return {}
    d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    ratio = a[:, None, 2] / b[None, :, 2]
    d[(d > max_dist) | (ratio > max_ratio) | (ratio < 1.0 / max_ratio) | (a[:, None, 4] != b[None, :, 4])] = np.inf
    pairs: dict[int, int] = {}
    while True:
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        if not np.isfinite(d[i, j]):
            return pairs
        pairs[int(i)] = int(j)
        d[i, :] = np.inf
        d[:, j] = np.inf


def tracked_motion_change(
    video: np.ndarray,
    *,
    width: int = 128,
    max_link: float = 0.2,
    max_area_ratio: float = 1.3,
    min_speed: float = 0.5,
    max_foreground: float = 0.25,
) -> np.ndarray:
    """Impact envelope of (T, H, W, 3) uint8 RGB ``video`` (or its (T, H, W) uint8 luma): the change
    of velocity of tracked objects.

    One value per frame, in frame widths per frame per frame (see the module docstring). Value k
    sums, over the objects tracked through frames k-1, k and k+1, the length of their velocity
    change ``(c[k+1] - c[k]) - (c[k] - c[k-1])`` less the clip's common acceleration, weighted by
    ``clip(speed / min_speed - 1, 0, 1)`` of the incoming velocity.
    """
    t = video.shape[0]
    out = np.zeros(t)
    if t < 3:
        return out
    grey = video if video.ndim == 3 else luma_u8(video)
    blobs = _blobs(grey, width, max_foreground)
    w = float(min(int(width), grey.shape[2]))
    links = [_link(blobs[k], blobs[k + 1], max_link * w, max_area_ratio) for k in range(t - 1)]
    rows = []
    for k in range(1, t - 1):
        back = {j: i for i, j in links[k - 1].items()}
        for j, nxt in links[k].items():
            if j not in back:
                continue
            p0, p1, p2 = blobs[k - 1][back[j], :2], blobs[k][j, :2], blobs[k + 1][nxt, :2]
            v_in, v_out = p1 - p0, p2 - p1
            weight = min(1.0, max(0.0, float(np.hypot(*v_in)) / min_speed - 1.0))
            # a faint blob's outline (hence centroid) flickers with noise: trust it by its contrast
            weight *= min(1.0, blobs[k - 1][back[j], 3], blobs[k][j, 3], blobs[k + 1][nxt, 3])
            rows.append((k, weight, *(v_out - v_in)))
    if not rows:
        return out
    r = np.asarray(rows, dtype=np.float64)
    acc = r[:, 2:4]
    moving = r[:, 1] > 0
    if moving.any():
        acc = acc - np.median(acc[moving], axis=0)  # the common acceleration (gravity) is no event
    np.add.at(out, r[:, 0].astype(np.int64), r[:, 1] * np.hypot(acc[:, 0], acc[:, 1]) / w)
    return out


def salience(env: np.ndarray, floor: float) -> float:
    """Robust z-score of the envelope maximum: (max - median) / max(1.4826 MAD, floor)."""
    if env.size == 0:
        return 0.0
    med = float(np.median(env))
    mad = float(np.median(np.abs(env - med)))
    return (float(env.max()) - med) / max(1.4826 * mad, floor)


def noise_gate(env: np.ndarray, k: float) -> np.ndarray:
    """Soft threshold at the envelope's robust noise level: max(env - (median + k * 1.4826 MAD), 0)."""
    if env.size == 0:
        return env
    med = float(np.median(env))
    mad = float(np.median(np.abs(env - med)))
    return np.maximum(env - (med + k * 1.4826 * mad), 0.0)


def parabolic_peak(y: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak at index ``i`` of ``y`` (parabola through i-1, i, i+1)."""
    if i <= 0 or i >= y.size - 1:
        return float(i)
    a, b, c = float(y[i - 1]), float(y[i]), float(y[i + 1])
    den = a - 2.0 * b + c
    if den >= 0.0:  # not a strict maximum: no refinement
        return float(i)
    return i + 0.5 * (a - c) / den


def correlate_envelopes(
    a_times: np.ndarray,
    a_env: np.ndarray,
    v_times: np.ndarray,
    v_env: np.ndarray,
    *,
    step: float,
    max_lag: float,
    frame_period: float,
) -> dict[str, float]:
    """Normalised cross-correlation of two envelopes on the shared timeline.

    ``a_times`` must be uniform with spacing ``step`` (the audio envelope's own grid);
    ``v_times`` may be irregular. Returns ``lag`` (seconds, + = audio late), ``peak``
    (normalised correlation at the integer peak), ``sidelobe`` (highest other local maximum
    farther than two frame periods from the peak), ``edge`` (1.0 when the peak is on the edge
    of the lag window).
    """
    from scipy.signal import correlate

    t0 = min(float(a_times[0]), float(v_times[0]))
    t1 = max(float(a_times[-1]), float(v_times[-1]))
    first = int(np.floor((t0 - a_times[0]) / step + 1e-9))  # <= 0
    n = int(np.ceil((t1 - a_times[0]) / step - 1e-9)) - first + 1
    grid = a_times[0] + (first + np.arange(n)) * step
    # low-pass the audio envelope to the video's time resolution: a triangle of half-width one
    # frame period is what linear interpolation of frame-rate samples applies to the video
    half = max(1, int(round(frame_period / step)))
    tri = 1.0 - np.abs(np.arange(-half, half + 1)) / (half + 1)
    a_env = np.convolve(a_env, tri / tri.sum(), mode="same")
    a = np.zeros(n)
    a[-first : -first + a_env.size] = a_env - a_env.mean()
    v = np.interp(grid, v_times, v_env - v_env.mean(), left=0.0, right=0.0)
    v[(grid < v_times[0]) | (grid > v_times[-1])] = 0.0
    na, nv = float(np.linalg.norm(a)), float(np.linalg.norm(v))
    if na == 0.0 or nv == 0.0:
        return {"lag": float("nan"), "peak": 0.0, "sidelobe": 0.0, "edge": 0.0}
    full = correlate(a, v, mode="full", method="fft") / (na * nv)
    lags = np.arange(-(n - 1), n)  # full[k] = sum_t a[t + lags[k]] v[t]
    max_k = min(int(np.floor(max_lag / step + 1e-9)), n - 1)
    sel = slice(n - 1 - max_k, n + max_k)
    c, lag_idx = full[sel], lags[sel]
    i = int(np.argmax(c))
    peak = float(c[i])
    edge = 1.0 if (i == 0 or i == c.size - 1) else 0.0
    lag = (lag_idx[0] + parabolic_peak(c, i)) * step
    # sidelobe: the largest local maximum farther than two frame periods from the peak
    interior = (c[1:-1] >= c[:-2]) & (c[1:-1] >= c[2:])
    loc = np.flatnonzero(interior) + 1
    loc = loc[np.abs(loc - i) * step > 2.0 * frame_period]
    sidelobe = float(c[loc].max()) if loc.size else 0.0
    return {"lag": float(lag), "peak": peak, "sidelobe": sidelobe, "edge": edge}


class SyncAnalyzer(FeatureExtractor):
    """Onset-to-motion sync offset (ms, + = audio late) with a confidence and a status."""

    name = "sync_dsp"
    version = "2"
    kind = "analysis"
    modality = "av"
    display_name = "Onset-to-motion sync (DSP)"
    family = "classical"
    description = (
        "Weight-free sync offset: log-mel spectral flux vs. visual flux of downscaled grey frames (or, "
        "without visual onsets, the velocity changes of tracked objects: impacts), normalised "
        "cross-correlation within +-max_lag_ms, parabolic sub-sample peak; + = audio late."
    )

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {
            "max_lag_ms": 1000.0,
            "analysis_sr": 16000,
            "n_fft": 256,
            "hop": 64,
            "n_mels": 40,
            "top_db": 80.0,
            "video_width": 64,
            "silence_dbfs": -60.0,
            "frozen_threshold": 0.5 / 255.0,
            "noise_gate_k": 3.0,
            "min_salience": 8.0,
            "min_audio_flux_db": 1.0,
            "min_video_flux": 2.0 / 255.0,
            "min_confidence": 0.5,
            "min_peak_ratio": 1.2,
            "track_width": 128,
            "track_max_link": 0.2,
            "track_max_area_ratio": 1.3,
            "track_min_speed": 0.5,
            "track_max_foreground": 0.25,
            "min_impact": 0.01,
        }

    def extract(self, clip: DecodedClip) -> dict[str, np.ndarray]:
        return analyze_sync(clip, **self.params)


def _pack(status: str, offset_ms: float = float("nan"), **values: float) -> dict[str, np.ndarray]:
    assert status in STATUSES, status
    out = {"offset_ms": np.array(offset_ms if status == "ok" else float("nan"), dtype=np.float64)}
    for key in ("confidence", "peak_ratio", "audio_salience", "video_salience"):
        out[key] = np.array(values.get(key, float("nan")), dtype=np.float64)
    out["status"] = np.array(status)
    return out


def analyze_sync(
    clip: DecodedClip,
    *,
    max_lag_ms: float = 1000.0,
    analysis_sr: int = 16000,
    n_fft: int = 256,
    hop: int = 64,
    n_mels: int = 40,
    top_db: float = 80.0,
    video_width: int = 64,
    silence_dbfs: float = -60.0,
    frozen_threshold: float = 0.5 / 255.0,
    noise_gate_k: float = 3.0,
    min_salience: float = 8.0,
    min_audio_flux_db: float = 1.0,
    min_video_flux: float = 2.0 / 255.0,
    min_confidence: float = 0.5,
    min_peak_ratio: float = 1.2,
    track_width: int = 128,
    track_max_link: float = 0.2,
    track_max_area_ratio: float = 1.3,
    track_min_speed: float = 0.5,
    track_max_foreground: float = 0.25,
    min_impact: float = 0.01,
) -> dict[str, np.ndarray]:
    """The whole analysis for one clip; see the module docstring. Returns 0-d arrays."""
    audio = clip.audio
    if audio.size == 0 or float(np.max(np.abs(audio))) < 10.0 ** (silence_dbfs / 20.0):
        return _pack("silent_audio")
    if clip.n_frames < 2:
        return _pack("frozen_video")
    grey = luma_u8(clip.video)  # one luma conversion for both video cues
    v_motion, v_bright, max_abs = video_motion_envelope(grey, width=video_width)
    if max_abs <= frozen_threshold:
        return _pack("frozen_video")
    v_onset = v_motion + v_bright
    x = clip.audio_at(analysis_sr)
    a_rel, a_env = audio_onset_envelope(x, analysis_sr, n_fft=n_fft, hop=hop, n_mels=n_mels, top_db=top_db)
    a_sal = salience(a_env, _AUDIO_SALIENCE_FLOOR_DB)
    onset_sal = salience(v_onset, _VIDEO_SALIENCE_FLOOR)
    sal = {"audio_salience": a_sal, "video_salience": onset_sal}
    if a_env.size < 2 or a_sal < min_salience or float(a_env.max()) < min_audio_flux_db:
        return _pack("no_audio_onsets", **sal)
    a_times = clip.audio_start + a_rel
    a_gated = noise_gate(a_env, noise_gate_k)
    v_times = np.asarray(clip.video_times, dtype=np.float64)
    frame_period = float(np.median(np.diff(v_times))) if v_times.size > 1 else 1.0 / clip.fps

    def attempt(v_env: np.ndarray, v_sal: float) -> tuple[bool, dict[str, float], float]:
        r = correlate_envelopes(
            a_times, a_gated, v_times, v_env, step=hop / analysis_sr, max_lag=max_lag_ms / 1000.0, frame_period=frame_period
        )
        ratio = _PEAK_RATIO_CAP if r["sidelobe"] <= r["peak"] / _PEAK_RATIO_CAP else r["peak"] / r["sidelobe"]
        ok = bool(np.isfinite(r["lag"]) and not r["edge"] and r["peak"] >= min_confidence and ratio >= min_peak_ratio)
        return ok, {"confidence": r["peak"], "peak_ratio": ratio, **sal, "video_salience": v_sal}, 1000.0 * r["lag"]

    # 1. the onset cue (flashes, appearances, motion starting)
    if onset_sal >= min_salience and float(v_onset.max()) >= min_video_flux:
        ok, vals, lag = attempt(noise_gate(v_motion, noise_gate_k) + noise_gate(v_bright, noise_gate_k), onset_sal)
        return _pack("ok" if ok else "low_confidence", lag, **vals)
    # 2. the impact cue (changes of velocity of tracked objects), when the clip shows no visual onset
    v_impact = tracked_motion_change(
        grey,
        width=track_width,
        max_link=track_max_link,
        max_area_ratio=track_max_area_ratio,
        min_speed=track_min_speed,
        max_foreground=track_max_foreground,
    )
    impact_sal = salience(v_impact, _IMPACT_SALIENCE_FLOOR)
    if impact_sal < min_salience or float(v_impact.max()) < min_impact:
        return _pack("no_visual_motion", **{**sal, "video_salience": max(onset_sal, impact_sal)})
    # the square root evens out fast and slow impacts, as the log-mel flux evens out their loud and soft knocks
    ok, vals, lag = attempt(np.sqrt(noise_gate(v_impact, noise_gate_k)), impact_sal)
    return _pack("ok" if ok else "low_confidence", lag, **vals)
