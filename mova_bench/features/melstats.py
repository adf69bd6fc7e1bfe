"""``melstats``: a weight-free audio embedding of log-mel statistics (not VGGish; its FD is not FAD).

Front end (PANNs-like so the numbers mean something to audio people): mono audio resampled to
16 kHz with soxr HQ (``DecodedClip.audio_at``), STFT with a 25 ms periodic Hann window (400
samples) zero-padded to 512, 10 ms hop (160), frames centred with reflect padding, power
spectrum, 64 Slaney-normalised mel bands from 50 Hz to 8 kHz (librosa's filterbank).

Scale: every log-power quantity is expressed in units of 20 dB, and levels are offset by
−50 dB re full scale: ``level = (10·log10(P + 1e-10) + 50) / 20``, so typical clips sit in
[−2.5, 2.5] (silence at −2.5). Coordinates of order 1 matter for KID, whose kernel
``(xᵀy/d + 1)³`` is meant for features with xᵀy/d ≈ O(1).

Dimensions (in order; ``MelStats.dimension_names()`` lists them one by one):

=================  ====  ====================================================================
group              dims  what
=================  ====  ====================================================================
band mean            64  mean over frames of each log-mel band level
band std             64  std over frames of each log-mel band level
delta std            16  std of the frame-to-frame change of log-mel, 16 groups of 4 bands
loudness              4  mean, std, p10, p90 over frames of the level of the mean mel power
spectral shape        6  spectral flatness (geometric/arithmetic mean of the power spectrum,
                         50 Hz–8 kHz, in 20 dB units) mean and std; spectral centroid (kHz/4)
                         mean and std; flux (mean positive log-mel change) mean and std
=================  ====  ====================================================================

Total: 154 dimensions. It responds to added noise (flatness, band means, delta), band-limiting
(upper band means), loudness changes and silence.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import scipy.fft

from mova_bench.features.base import FeatureExtractor
from mova_bench.media import DecodedClip

SAMPLE_RATE = 16000
WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
FMIN, FMAX = 50.0, 8000.0
LOG_FLOOR = 1e-10
LEVEL_OFFSET_DB = 50.0  # levels are (10·log10 P + 50) / 20
N_DELTA_GROUPS = 16


@lru_cache(maxsize=4)
def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """(n_mels, n_fft//2+1) float64 Slaney mel filterbank (librosa), cached, read-only."""
    import librosa

    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    fb = np.ascontiguousarray(fb.astype(np.float64))
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=4)
def _window(win: int) -> np.ndarray:
    n = np.arange(win)
    w = (0.5 - 0.5 * np.cos(2 * np.pi * n / win)).astype(np.float32)  # periodic Hann
    w.setflags(write=False)
    return w


def power_spectrogram(audio: np.ndarray, *, win: int = WIN, hop: int = HOP, n_fft: int = N_FFT) -> np.ndarray:
    """(frames, n_fft//2+1) float64 power spectrum, centred frames (reflect padding), normalised by Σw²."""
    x = np.asarray(audio, dtype=np.float32)
    pad = n_fft // 2
    if x.size < 2:
        x = np.zeros(win, np.float32)
    mode = "reflect" if x.size > pad else "constant"
    x = np.pad(x, pad, mode=mode)
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    w = _window(win)
    spec = scipy.fft.rfft(frames * w, n=n_fft, axis=1)
    # float64 from here: float32 squares of quiet bins fall into subnormals, which are ~100× slower
    re = spec.real.astype(np.float64)
    im = spec.imag.astype(np.float64)
    return (re * re + im * im) * (1.0 / float(np.sum(w.astype(np.float64) ** 2)))


def _level(power: np.ndarray) -> np.ndarray:
    """Power → level in units of 20 dB, offset by −50 dB: (10·log10(P + 1e-10) + 50) / 20."""
    return (10.0 * np.log10(power + LOG_FLOOR) + LEVEL_OFFSET_DB) / 20.0


_NAMES = (
    [f"band_mean.{i:02d}" for i in range(N_MELS)]
    + [f"band_std.{i:02d}" for i in range(N_MELS)]
    + [f"delta_std.g{i:02d}" for i in range(N_DELTA_GROUPS)]
    + ["loudness.mean", "loudness.std", "loudness.p10", "loudness.p90"]
    + ["shape.flatness_mean", "shape.flatness_std", "shape.centroid_mean", "shape.centroid_std",
       "shape.flux_mean", "shape.flux_std"]
)


class MelStats(FeatureExtractor):
    """Weight-free audio embedding: log-mel band statistics, deltas, loudness and spectral shape (154-d)."""

    name: ClassVar[str] = "melstats"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "embedding"
    modality: ClassVar[str] = "audio"
    family: ClassVar[str] = "classical"
    display_name: ClassVar[str] = "log-mel statistics (weight-free)"
    description: ClassVar[str] = (
        "154-d log-mel statistics at 16 kHz (64 bands, 25 ms / 10 ms): per-band mean and std, delta "
        "std, loudness, spectral flatness/centroid/flux. Not VGGish: its Fréchet distance is not FAD."
    )
    dim: ClassVar[int] = len(_NAMES)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"sample_rate": SAMPLE_RATE, "win": WIN, "hop": HOP, "n_fft": N_FFT, "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX}

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.params["n_mels"] != N_MELS:
            raise ValueError(f"melstats: n_mels={self.params['n_mels']}; the embedding is defined for {N_MELS} bands")

    @classmethod
    def dimension_names(cls) -> list[str]:
        return list(_NAMES)

    def extract(self, clip: DecodedClip) -> dict[str, np.ndarray]:
        p = self.params
        sr = int(p["sample_rate"])
        audio = clip.audio_at(sr)
        if audio.size == 0:
            raise ValueError("melstats: the clip has no audio samples")
        if not np.isfinite(audio).all():
            raise ValueError("melstats: the audio holds NaN/inf samples")
        power = power_spectrogram(audio, win=int(p["win"]), hop=int(p["hop"]), n_fft=int(p["n_fft"]))
        fb = mel_filterbank(sr, int(p["n_fft"]), int(p["n_mels"]), float(p["fmin"]), float(p["fmax"]))
        mel = power @ fb.T  # (frames, n_mels)
        logmel = _level(mel)
        n_mels = logmel.shape[1]
        feats = [logmel.mean(axis=0), logmel.std(axis=0)]

        if logmel.shape[0] >= 2:
            delta = np.diff(logmel, axis=0)
            groups = delta.reshape(delta.shape[0], N_DELTA_GROUPS, n_mels // N_DELTA_GROUPS)
            feats.append(groups.std(axis=(0, 2)))
            flux = np.maximum(delta, 0).mean(axis=1)
        else:
            feats.append(np.zeros(N_DELTA_GROUPS, np.float32))
            flux = np.zeros(1, np.float32)

        loud = _level(mel.mean(axis=1))
        feats.append(np.array([loud.mean(), loud.std(), np.quantile(loud, 0.1), np.quantile(loud, 0.9)]))

        freqs = np.fft.rfftfreq(int(p["n_fft"]), 1.0 / sr)
        band = (freqs >= float(p["fmin"])) & (freqs <= float(p["fmax"]))
        pb = power[:, band] + LOG_FLOOR
        flat = (np.log(pb).mean(axis=1) - np.log(pb.mean(axis=1))) / np.log(10.0) / 2.0  # 20 dB units
        centroid = (pb @ freqs[band]) / pb.sum(axis=1) / 4000.0  # kHz / 4
        feats.append(np.array([flat.mean(), flat.std(), centroid.mean(), centroid.std(), flux.mean(), flux.std()]))

        vec = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in feats])
        if vec.shape != (self.dim,) or not np.isfinite(vec).all():
            raise ValueError(f"melstats produced {vec.shape} with {int((~np.isfinite(vec)).sum())} non-finite values")
        return {"embedding": vec}
