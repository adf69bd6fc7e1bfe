"""``vstats``: a weight-free video embedding of hand-made statistics (not I3D; its FD is not FVD).

One float64 vector per clip, from frames shrunk further than the decode size so that it costs a
few milliseconds: every frame is area-averaged to a longest side ≤ ``small_side`` (64) px for
motion; colour statistics use ≤ ``colour_frames`` (24) evenly spaced frames of that; texture and
spatial frequency use the luma of ≤ ``detail_frames`` (8) evenly spaced frames at ≤
``detail_side`` (128) px. Energies and band shares enter as log10 so that every coordinate is of
order 1 (which the cubic KID kernel expects).

Dimensions (in order; ``VideoStats.dimension_names()`` lists them one by one):

===================  ====  =====================================================================
group                dims  what
===================  ====  =====================================================================
colour moments          9  mean, std, skewness of R, G, B (values in [0, 1]; skew uses
                           max(std, 0.02) and is clipped to ±10)
colour histogram       24  8-bin histogram per channel (fractions)
saturation              2  mean and std of max(R,G,B) − min(R,G,B)
layout                 12  mean R, G, B of each quadrant (2×2 grid)
colour dynamics         3  std over frames of the frame-mean R, G, B
texture                 5  log10 mean gx², gy², Laplacian²; mean and std of gradient magnitude
spatial frequency       8  log10 fraction of AC luma power in radial bands (cycles/px edges
                           1/64, 1/32, 1/16, 3/32, 1/8, 3/16, 1/4, 3/8, 1/2), detail size
motion                  9  per-frame mean |Δluma|: mean, std, max, median, p90; log10 mean Δ²;
                           frozen-frame fraction; std of Δ(mean luma); mean lag-1 frame correlation
motion layout           4  mean |Δluma| per quadrant
temporal spectrum       6  log10 fraction of the temporal AC power of pixel luma in bands
                           0.25–0.5, 0.5–1, 1–2, 2–4, 4–8, 8–16 Hz (Hann window, real fps)
===================  ====  =====================================================================

Total: 82 dimensions. It responds to added noise and blur (texture, high bands), colour shifts,
frozen or flickering video (motion, temporal spectrum).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import scipy.fft

from mova_bench.features.base import FeatureExtractor
from mova_bench.features.frames import luma_u8
from mova_bench.media import DecodedClip

_EPS = 1e-10
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_RADIAL_EDGES = (1 / 64, 1 / 32, 1 / 16, 3 / 32, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2)
_TEMPORAL_EDGES_HZ = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("colour_moment", tuple(f"{s}_{c}" for c in "rgb" for s in ("mean", "std", "skew"))),
    ("colour_hist", tuple(f"{c}_bin{b}" for c in "rgb" for b in range(8))),
    ("saturation", ("mean", "std")),
    ("layout", tuple(f"q{q}_{c}" for q in range(4) for c in "rgb")),
    ("colour_dynamics", ("std_r", "std_g", "std_b")),
    ("texture", ("log_gx2", "log_gy2", "log_lap2", "grad_mean", "grad_std")),
    ("spatial_band", tuple(f"log_frac_{a:.4g}_{b:.4g}" for a, b in zip(_RADIAL_EDGES[:-1], _RADIAL_EDGES[1:]))),
    ("motion", ("diff_mean", "diff_std", "diff_max", "diff_median", "diff_p90", "log_diff2", "frozen_frac",
                "flicker_std", "lag1_corr")),
    ("motion_layout", ("q0", "q1", "q2", "q3")),
    ("temporal_band", tuple(f"log_frac_{a:g}_{b:g}Hz" for a, b in zip(_TEMPORAL_EDGES_HZ[:-1], _TEMPORAL_EDGES_HZ[1:]))),
)


def _shrink(frames: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average each frame (T, H, W[, C]) so its longest side is ≤ max_side (never upscaled).

    The frames are resized as one tall image (T·H, W) → (T·h, w): the vertical scale is exactly
    h/H, so every output row lies inside one frame and the result equals a per-frame resize,
    with one call instead of T.
    """
    import cv2

    t, h, w = frames.shape[:3]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return frames
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    tall = np.ascontiguousarray(frames).reshape((t * h, w) + frames.shape[3:])
    out = cv2.resize(tall, (nw, t * nh), interpolation=cv2.INTER_AREA)
    return out.reshape((t, nh, nw) + frames.shape[3:])


def _evenly(n: int, k: int) -> np.ndarray:
    """Up to k evenly spaced indices of range(n), first and last included."""
    return np.unique(np.linspace(0, n - 1, max(1, min(n, k))).round().astype(np.intp))


def _histograms(planes: np.ndarray, bins: int) -> np.ndarray:
    """Per-channel histograms (fractions) of uint8 planes (C, ...), channels concatenated."""
    import cv2

    out = []
    for c in range(planes.shape[0]):
        img = planes[c].reshape(-1, planes.shape[-1])
        out.append(cv2.calcHist([img], [0], None, [bins], [0, 256]).ravel())
    h = np.concatenate(out).astype(np.float64)
    return h / (planes[0].size or 1)


@lru_cache(maxsize=32)
def _radial_index(h: int, w: int, edges: tuple[float, ...]) -> np.ndarray:
    """Band of every rfft2 bin of an (h, w) image (−1: DC or outside the edges), cached, read-only."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fy * fy + fx * fx)
    idx = np.searchsorted(np.asarray(edges), r, side="right") - 1  # −1 below the first edge
    idx[(r >= edges[-1]) | (r == 0)] = -1
    idx.setflags(write=False)
    return idx


def _log_band_fractions(power: np.ndarray, band: np.ndarray, n_bands: int) -> np.ndarray:
    """log10 of each band's share of the power in all bands (−1 marks bins outside every band)."""
    keep = band >= 0
    sums = np.bincount(band[keep], weights=power[keep], minlength=n_bands)[:n_bands]
    total = sums.sum()
    return np.log10(sums / total + 1e-8) if total > 0 else np.full(n_bands, -8.0)


def _quadrant_means(x: np.ndarray) -> np.ndarray:
    """x (C, T, H, W) averaged per quadrant → (4, C) in order TL, TR, BL, BR."""
    h, w = x.shape[2], x.shape[3]
    hh, hw = max(1, h // 2), max(1, w // 2)
    quads = (x[..., :hh, :hw], x[..., :hh, hw:], x[..., hh:, :hw], x[..., hh:, hw:])
    return np.stack([q.mean(axis=(1, 2, 3), dtype=np.float64) if q.size else np.zeros(x.shape[0]) for q in quads])


def _frame_rate(clip: DecodedClip) -> float:
    if clip.fps and clip.fps > 0:
        return float(clip.fps)
    t = np.asarray(clip.video_times, dtype=np.float64)
    if t.size > 1 and np.median(np.diff(t)) > 0:
        return float(1.0 / np.median(np.diff(t)))
    return 24.0


class VideoStats(FeatureExtractor):
    """Weight-free video embedding: colour, texture, spatial-frequency and motion statistics (82-d)."""

    name: ClassVar[str] = "vstats"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "embedding"
    modality: ClassVar[str] = "video"
    family: ClassVar[str] = "classical"
    display_name: ClassVar[str] = "video statistics (weight-free)"
    description: ClassVar[str] = (
        "82-d hand-made video statistics: colour moments/histograms, layout, texture, radial "
        "spatial-frequency bands, frame-difference motion and temporal spectrum. Not I3D: its "
        "Fréchet distance is not FVD."
    )
    dim: ClassVar[int] = sum(len(n) for _, n in _GROUPS)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"small_side": 64, "detail_side": 128, "detail_frames": 8, "colour_frames": 24}

    @classmethod
    def dimension_names(cls) -> list[str]:
        return [f"{g}.{n}" for g, names in _GROUPS for n in names]

    def extract(self, clip: DecodedClip) -> dict[str, np.ndarray]:
        video = np.asarray(clip.video)
        if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 1:
            raise ValueError(f"vstats: expected video (T, H, W, 3) with T ≥ 1, got shape {video.shape}")
        if video.dtype != np.uint8:
            raise ValueError(f"vstats: expected uint8 frames, got {video.dtype}")
        p = self.params
        t, h, w = video.shape[:3]
        feats: list[np.ndarray] = []

        # every frame at small size, as planes (3, T, h, w) uint8
        import cv2

        small = _shrink(video, int(p["small_side"]))
        sh, sw = small.shape[1:3]
        all_planes = np.stack([c.reshape(t, sh, sw) for c in cv2.split(small.reshape(t * sh, sw, 3))])

        # colour, on ≤ colour_frames evenly spaced frames
        planes = np.ascontiguousarray(all_planes[:, _evenly(t, int(p["colour_frames"]))])
        chan = planes.astype(np.float32) * np.float32(1 / 255)
        flat = chan.reshape(3, -1)
        mean32 = flat.mean(axis=1)  # float32 pairwise sums: ~1e-7 relative, plenty here
        cen = flat - mean32[:, None]
        c2 = cen * cen
        mean = mean32.astype(np.float64)
        std = np.sqrt(c2.mean(axis=1).astype(np.float64))
        c2 *= cen
        # softened denominator: near-uniform frames get skew ≈ 0 instead of exploding (±10 clip)
        skew = np.clip(c2.mean(axis=1).astype(np.float64) / np.maximum(std, 0.02) ** 3, -10.0, 10.0)
        feats.append(np.stack([mean, std, skew], axis=1).ravel())  # r: mean,std,skew; g: ...
        feats.append(_histograms(planes, 8))
        sat = np.maximum(np.maximum(chan[0], chan[1]), chan[2]) - np.minimum(np.minimum(chan[0], chan[1]), chan[2])
        feats.append(np.array([sat.mean(), sat.std()], dtype=np.float64))
        feats.append(_quadrant_means(chan).ravel())  # q0 r,g,b; q1 r,g,b; ...
        feats.append(chan.mean(axis=(2, 3)).astype(np.float64).std(axis=1))

        # texture and spatial frequency: luma at detail size on ≤ detail_frames evenly spaced frames
        pick = _evenly(t, int(p["detail_frames"]))
        detail = _shrink(luma_u8(video[pick]), int(p["detail_side"])).astype(np.float32) * np.float32(1 / 255)
        gx = np.diff(detail, axis=2)
        gy = np.diff(detail, axis=1)
        lap = detail[:, 1:-1, 1:-1] * 4 - detail[:, :-2, 1:-1] - detail[:, 2:, 1:-1] - detail[:, 1:-1, :-2] - detail[:, 1:-1, 2:]
        gmag = np.sqrt(gx[:, :-1, :] ** 2 + gy[:, :, :-1] ** 2)
        feats.append(np.array([
            np.log10(float(np.mean(gx * gx)) + _EPS), np.log10(float(np.mean(gy * gy)) + _EPS),
            np.log10(float(np.mean(lap * lap)) + _EPS) if lap.size else -10.0,
            float(gmag.mean()) if gmag.size else 0.0, float(gmag.std()) if gmag.size else 0.0,
        ]))
        dh, dw = detail.shape[1:]
        spec = scipy.fft.rfft2(detail - detail.mean(axis=(1, 2), keepdims=True))
        power = (spec.real ** 2 + spec.imag ** 2).mean(axis=0)
        feats.append(_log_band_fractions(power.ravel(), _radial_index(dh, dw, _RADIAL_EDGES).ravel(), len(_RADIAL_EDGES) - 1))

        # motion: luma of every frame at small size
        wr, wg, wb = (_LUMA / 255.0).astype(np.float32)
        luma = all_planes[0] * wr + all_planes[1] * wg + all_planes[2] * wb  # (T, h, w) float32 in [0, 1]
        if t >= 2:
            d = np.diff(luma, axis=0)
            ad = np.abs(d)
            per = ad.mean(axis=(1, 2)).astype(np.float64)
            mean_l = luma.mean(axis=(1, 2))
            lc = (luma - mean_l[:, None, None]).reshape(t, -1)
            energy = np.einsum("ij,ij->i", lc, lc)
            num = np.einsum("ij,ij->i", lc[:-1], lc[1:])
            den = np.sqrt(energy[:-1] * energy[1:])
            corr = np.where(den > 1e-9, num / np.maximum(den, 1e-9), 1.0)
            feats.append(np.array([
                per.mean(), per.std(), per.max(), np.median(per), np.quantile(per, 0.9),
                np.log10(float(np.mean(d * d)) + _EPS), float(np.mean(per < 0.25 / 255)),
                float(np.diff(mean_l.astype(np.float64)).std()), float(corr.mean()),
            ]))
            feats.append(_quadrant_means(ad[None])[:, 0])
        else:
            feats.append(np.array([0, 0, 0, 0, 0, -10.0, 1.0, 0, 1.0]))
            feats.append(np.zeros(4))

        # temporal spectrum of pixel luma (Hann window), bands in Hz
        n_bands = len(_TEMPORAL_EDGES_HZ) - 1
        if t >= 4:
            x = luma.reshape(t, -1)
            x = (x - x.mean(axis=0)) * np.hanning(t).astype(np.float32)[:, None]
            tp = scipy.fft.rfft(x, axis=0)
            tpow = (tp.real ** 2 + tp.imag ** 2).mean(axis=1).astype(np.float64)
            freqs = np.fft.rfftfreq(t, d=1.0 / _frame_rate(clip))
            band = np.searchsorted(np.asarray(_TEMPORAL_EDGES_HZ), freqs, side="right") - 1
            band[(freqs < _TEMPORAL_EDGES_HZ[0]) | (freqs >= _TEMPORAL_EDGES_HZ[-1])] = -1
            feats.append(_log_band_fractions(tpow, band, n_bands))
        else:
            feats.append(np.full(n_bands, -8.0))

        vec = np.concatenate(feats).astype(np.float64)
        if vec.shape != (self.dim,) or not np.isfinite(vec).all():
            raise ValueError(f"vstats produced {vec.shape} with {int((~np.isfinite(vec)).sum())} non-finite values")
        return {"embedding": vec}
