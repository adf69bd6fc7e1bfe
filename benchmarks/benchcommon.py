"""Pieces the benchmark scripts share (run them as ``python benchmarks/<script>.py``: this folder
is then on ``sys.path``)."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

#: a MOVA-360p clip: 193 frames of 640×352 at 24 fps, 48 kHz audio
SECONDS, FPS, SR, W, H = 8.04, 24.0, 48000, 640, 352


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(wall seconds, result) of the fastest of ``repeats`` calls."""
    wall, _, out = best_wall_cpu(fn, repeats)
    return wall, out


def best_wall_cpu(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(wall s, process CPU s, result) of the fastest of ``repeats`` calls. CPU seconds (all threads of
    this process) hardly move when other processes share the cores; wall time does."""
    runs, out = [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        runs.append((time.perf_counter() - t, time.process_time() - c))
    wall, cpu = min(runs)
    return wall, cpu, out


def mova_clip(seed: int = 0) -> Any:
    """A decoded MOVA-sized clip of random frames and noise, its native frames in place (no file)."""
    from mova_bench.media import DecodedClip, VideoNeed

    rng = np.random.default_rng(seed)
    n = int(round(SECONDS * FPS))
    frames = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    times = np.arange(n) / FPS
    audio = (0.1 * rng.standard_normal(int(round(SECONDS * SR)))).astype(np.float32)
    return DecodedClip(video=frames, video_times=times, fps=FPS, audio=audio, sample_rate=SR, audio_start=0.0,
                       source_width=W, source_height=H, source_channels=1, duration_s=SECONDS,
                       _need_frames={VideoNeed("native"): (frames, times)})
