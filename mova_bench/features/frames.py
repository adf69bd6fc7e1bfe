"""Grey frames for the video analyses: BT.601 luma of RGB frames, optionally area-downscaled.

Luma is OpenCV's ``COLOR_RGB2GRAY`` on uint8 frames (the BT.601 weights of
:meth:`~mova_bench.media.DecodedClip.grey`, rounded to uint8), computed in one call on the
frames stacked as one tall image (the conversion is per pixel, so this equals a per-frame
conversion). Downscaling is ``cv2.INTER_AREA`` frame by frame.

The feature cache's code hash covers this module (:func:`mova_bench.features.base._code_hash`),
so editing it invalidates the cached features of every extractor that uses it.
"""

from __future__ import annotations

import numpy as np


def luma_u8(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB → (T, H, W) uint8 BT.601 luma (OpenCV, rounded)."""
    import cv2

    t, h, w = frames.shape[:3]
    if t == 0:
        return np.zeros((0, h, w), np.uint8)
    grey = cv2.cvtColor(np.ascontiguousarray(frames).reshape(t * h, w, 3), cv2.COLOR_RGB2GRAY)
    return grey.reshape(t, h, w)


def downscaled_luma_u8(frames: np.ndarray, max_width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB → (T, h, w) uint8 BT.601 luma, each frame area-downscaled to
    ``w = min(max_width, W)`` pixels wide, aspect kept (``h = max(1, round(H·w/W))``, never
    upscaled)."""
    return downscale_u8(luma_u8(frames), max_width)


def downscale_u8(grey: np.ndarray, max_width: int) -> np.ndarray:
    """(T, H, W) uint8 luma → (T, h, w), each frame area-downscaled (OpenCV INTER_AREA) to
    ``w = min(max_width, W)`` pixels wide, aspect kept (``h = max(1, round(H·w/W))``, never upscaled)."""
    import cv2

    t, h, w = grey.shape
    ow = min(int(max_width), w)
    oh = max(1, int(round(h * ow / w)))
    if (ow, oh) == (w, h):
        return grey
    out = np.empty((t, oh, ow), np.uint8)
    for k in range(t):
        out[k] = cv2.resize(grey[k], (ow, oh), interpolation=cv2.INTER_AREA)
    return out
