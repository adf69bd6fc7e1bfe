"""``forensic``: a small vector of traces that tell synthetic media from real capture.

Weight-free and cheap (a few ms per clip). Measured at analysis size (the decode convention:
longest side ≤ 256 px), so differences in source resolution between two sets show up here too —
a detector is allowed to use them, a reader should know it.

Dimensions, in order (``ForensicFeatures.DIMENSIONS`` carries the same text):

====  ======================  ==================================================================
 #    name                    what
====  ======================  ==================================================================
 0    spec_slope              slope of log10 radial power vs log10 frequency of the luma of ≤ 8
                              evenly spaced frames (2-D Hann window), fitted over 0.02–0.45
                              cycles/px; natural images ≈ −2 to −3, over-smooth video is steeper
 1    spec_hf_ratio           log10 of power at 0.25–0.5 cycles/px over power at 0.05–0.25
 2    spec_hf_excess          mean residual (log10 power) of that fit over 0.35–0.45 cycles/px:
                              > 0 when the top band has more power than the power law (noise,
                              upsampling or checkerboard artefacts)
 3    audio_bandlimit         highest frequency whose mean power (2048-sample Hann frames at the
                              native rate) is within 60 dB of the spectral peak, / Nyquist
 4    audio_bandlimit_khz     the same in kHz / 24 (48 kHz-native audio that was upsampled from
                              16 kHz shows 8/24 ≈ 0.33 here and 0.33 in dim 3)
 5    audio_log_flatness     median over frames of log10 spectral flatness (geometric / arithmetic
                              mean power, 50 Hz–Nyquist); 0 for white noise, very negative for tones
 6    audio_log_hf_ratio      log10 share of audio power above 4 kHz
 7    flicker_std             std over time of the frame-to-frame change of mean luma (in [0, 1])
 8    flicker_share           flicker_std / (mean absolute per-pixel luma change + 1e-3): global
                              brightness pumping relative to local motion
 9    blockiness_h            log10 of the mean |DFT| of the horizontal luma-gradient profile at
                              the first 4 harmonics of an 8-source-pixel period, over its median
                              |DFT| (a block grid excites every harmonic, a texture one)
10    blockiness_v            the same vertically (8×8 coding blocks; the period is converted to
                              analysis pixels with the source size and folded below Nyquist)
====  ======================  ==================================================================

A clip without audio samples gets dims 3–6 = (0, 0, −12, −12) ("silence") rather than failing:
silent or missing audio is itself a forensic trace.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import scipy.fft

from mova_bench.features.base import FeatureExtractor
from mova_bench.features.frames import luma_u8
from mova_bench.media import DecodedClip

_FLOOR = 1e-12

DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("spec_slope", "slope of log10 radial luma power vs log10 frequency, 0.02–0.45 cycles/px"),
    ("spec_hf_ratio", "log10 power 0.25–0.5 over power 0.05–0.25 cycles/px"),
    ("spec_hf_excess", "mean log10 residual of the power-law fit over 0.35–0.45 cycles/px"),
    ("audio_bandlimit", "highest frequency within 60 dB of the spectral peak / Nyquist"),
    ("audio_bandlimit_khz", "that frequency in kHz / 24"),
    ("audio_log_flatness", "median log10 spectral flatness of 2048-sample frames, 50 Hz–Nyquist"),
    ("audio_log_hf_ratio", "log10 share of audio power above 4 kHz"),
    ("flicker_std", "std of the frame-to-frame change of mean luma"),
    ("flicker_share", "flicker_std / (mean |per-pixel luma change| + 1e-3)"),
    ("blockiness_h", "log10 mean |DFT| of the horizontal gradient profile at 4 harmonics of 8 source px / median"),
    ("blockiness_v", "the same, vertical"),
)


def _luma(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 → (T, H, W) float32 luma in [0, 1] (BT.601)."""
    return luma_u8(frames).astype(np.float32) * np.float32(1 / 255)


@lru_cache(maxsize=8)
def _hann32(n: int) -> np.ndarray:
    w = np.hanning(n).astype(np.float32)
    w.setflags(write=False)
    return w


@lru_cache(maxsize=16)
def _spectrum_geometry(h: int, w: int):
    """2-D Hann window, radial frequency, log-spaced band index, mask and counts of an (h, w) rfft2."""
    win = (np.hanning(h)[:, None] * np.hanning(w)[None, :]).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fy * fy + fx * fx).ravel()
    edges = np.geomspace(0.02, 0.5, 25)
    idx = np.searchsorted(edges, r, side="right") - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    for a in (win, r, idx, ok, counts, edges):
        a.setflags(write=False)
    return win, r, idx, ok, counts, edges


def spectral_falloff(luma: np.ndarray) -> tuple[float, float, float]:
    """(slope, log10 HF ratio, HF excess) of the radial power spectrum of frames (T, H, W)."""
    t, h, w = luma.shape
    if h < 8 or w < 8:
        return 0.0, 0.0, 0.0
    win, r, idx, ok, counts, edges = _spectrum_geometry(h, w)
    x = (luma - luma.mean(axis=(1, 2), keepdims=True)) * win
    spec = scipy.fft.rfft2(x)
    power = (spec.real * spec.real + spec.imag * spec.imag).mean(axis=0, dtype=np.float64)
    p = power.ravel()
    sums = np.bincount(idx[ok], weights=p[ok], minlength=len(edges) - 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    have = counts > 0
    lp = np.log10(sums[have] / counts[have] + _FLOOR)
    lf = np.log10(centres[have])
    sel = centres[have] <= 0.45
    if sel.sum() < 3:
        return 0.0, 0.0, 0.0
    slope, intercept = np.polyfit(lf[sel], lp[sel], 1)
    top = (centres[have] >= 0.35) & (centres[have] <= 0.45)
    excess = float(np.mean(lp[top] - (slope * lf[top] + intercept))) if top.any() else 0.0
    hi = p[(r >= 0.25) & (r <= 0.5)].sum()
    lo = p[(r >= 0.05) & (r < 0.25)].sum()
    ratio = float(np.log10((hi + _FLOOR) / (lo + _FLOOR)))
    return float(slope), ratio, excess


def audio_traces(audio: np.ndarray, sample_rate: int, *, frame: int = 2048) -> tuple[float, float, float, float]:
    """(band-limit / Nyquist, band-limit kHz / 24, median log10 flatness, log10 share above 4 kHz)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.size == 0 or sample_rate <= 0 or not np.any(x):
        return 0.0, 0.0, -12.0, -12.0
    x = x - x.mean(dtype=np.float64).astype(np.float32)  # a DC offset would leak into the low bins
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    n = x.size // frame
    frames = x[: n * frame].reshape(n, frame)
    spec = scipy.fft.rfft(frames * _hann32(frame), axis=1)
    # float64 from here: float32 squares of quiet bins can fall into slow subnormals
    re, im = spec.real.astype(np.float64), spec.imag.astype(np.float64)
    power = re * re + im * im
    freqs = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    nyq = sample_rate / 2.0
    mean_p = power.mean(axis=0)
    usable = freqs >= 20.0
    peak = mean_p[usable].max() if usable.any() else 0.0
    if peak <= 0:
        return 0.0, 0.0, -12.0, -12.0
    above = np.flatnonzero(usable & (mean_p >= peak * 1e-6))
    f_lim = float(freqs[above[-1]]) if above.size else 0.0
    band = freqs >= 50.0
    pb = power[:, band] + peak * 1e-12
    log_flat = np.log10(np.exp(np.log(pb).mean(axis=1)) / pb.mean(axis=1))
    active = power.sum(axis=1) > 0
    flat = float(np.median(log_flat[active])) if active.any() else -12.0
    hf = float(np.log10(mean_p[freqs > 4000.0].sum() / mean_p.sum() + _FLOOR))
    return f_lim / nyq, f_lim / 1000.0 / 24.0, flat, hf


def _periodic_strength(profile: np.ndarray, period: float, harmonics: int = 4) -> float:
    """Strength of a spike train of the given period in a gradient profile.

    log10 of the mean |DFT| at the first ``harmonics`` multiples of 1/period (each folded below
    Nyquist) over the median |DFT| of the profile. A coding-block grid puts energy into every
    harmonic; a texture that happens to share the period puts it into one, so averaging over
    harmonics keeps textures from reading as blocking. 0 when not measurable.
    """
    n = profile.size
    if n < 16 or period <= 0:
        return 0.0
    p = profile - profile.mean()
    ref = np.median(np.abs(np.fft.rfft(p))[1:])
    x = np.arange(n)
    amps = []
    for k in range(1, harmonics + 1):
        f = (k / period) % 1.0
        f = min(f, 1.0 - f)
        if f >= 2.0 / n:
            amps.append(abs(np.sum(p * np.exp(-2j * np.pi * f * x))))
    if not amps:
        return 0.0
    return float(np.log10((np.mean(amps) + 1e-9) / (ref + 1e-9)))


def blockiness(luma: np.ndarray, period_x: float, period_y: float) -> tuple[float, float]:
    """Horizontal and vertical strength of an 8×8 coding grid in frames (T, H, W)."""
    gx = np.abs(np.diff(luma, axis=2)).mean(axis=(0, 1))
    gy = np.abs(np.diff(luma, axis=1)).mean(axis=(0, 2))
    return _periodic_strength(gx.astype(np.float64), period_x), _periodic_strength(gy.astype(np.float64), period_y)


class ForensicFeatures(FeatureExtractor):
    """Spectral fall-off, audio band-limit and flatness, flicker and blockiness (11-d, see DIMENSIONS)."""

    name: ClassVar[str] = "forensic"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "embedding"
    modality: ClassVar[str] = "av"
    family: ClassVar[str] = "classical"
    display_name: ClassVar[str] = "forensic traces (weight-free)"
    description: ClassVar[str] = (
        "11-d forensic traces for the synthetic-media detector: frame spectral fall-off, audio "
        "band-limit and flatness, temporal flicker, 8×8 blockiness."
    )
    DIMENSIONS: ClassVar[tuple[tuple[str, str], ...]] = DIMENSIONS
    dim: ClassVar[int] = len(DIMENSIONS)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"spectrum_frames": 8, "audio_frame": 2048, "block": 8}

    @classmethod
    def dimension_names(cls) -> list[str]:
        return [n for n, _ in DIMENSIONS]

    def extract(self, clip: DecodedClip) -> dict[str, np.ndarray]:
        video = np.asarray(clip.video)
        if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 1 or video.dtype != np.uint8:
            raise ValueError(f"forensic: expected uint8 video (T, H, W, 3), got {video.shape} {video.dtype}")
        p = self.params
        t, h, w = video.shape[:3]
        pick = np.unique(np.linspace(0, t - 1, max(1, min(t, int(p["spectrum_frames"])))).round().astype(np.intp))
        luma = _luma(video[pick])
        slope, hf_ratio, hf_excess = spectral_falloff(luma)

        block = float(p["block"])
        px = block * w / clip.source_width if clip.source_width else block
        py = block * h / clip.source_height if clip.source_height else block
        block_h, block_v = blockiness(luma, px, py)

        # flicker: mean luma of every frame, local change on a 4× subsampled grid
        sub = _luma(np.ascontiguousarray(video[:, ::4, ::4]))
        mean_l = sub.mean(axis=(1, 2)).astype(np.float64)
        if t >= 3:
            flicker = float(np.diff(mean_l).std())
            local = float(np.abs(np.diff(sub, axis=0)).mean())
        else:
            flicker, local = 0.0, 0.0
        share = flicker / (local + 1e-3)

        bl, bl_khz, flat, hf = audio_traces(clip.audio, int(clip.sample_rate), frame=int(p["audio_frame"]))
        vec = np.array([slope, hf_ratio, hf_excess, bl, bl_khz, flat, hf, flicker, share, block_h, block_v], dtype=np.float64)
        if not np.isfinite(vec).all():
            raise ValueError(f"forensic produced non-finite values: {dict(zip(self.dimension_names(), vec.tolist()))}")
        return {"embedding": vec}
