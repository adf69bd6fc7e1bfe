"""A stand-in video-to-audio model (the second stage of a cascade, like MMAudio) for tests.

Reads ``--video`` (any video file, with PyAV), puts a click wherever a frame gets much brighter
than the one before, and writes ``--out``: the same frames plus that audio at ``--sr`` Hz.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompt", default="")
    ap.add_argument("--sr", type=int, default=16000)
    a = ap.parse_args()
    import av

    with av.open(a.video) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate or 24)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    video = np.stack(frames)
    luma = video.reshape(len(frames), -1).mean(axis=1)
    rng = np.random.default_rng(0)
    wav = 0.005 * rng.standard_normal(int(round(len(frames) / fps * a.sr))).astype(np.float32)
    for k in np.flatnonzero(np.diff(luma) > 40) + 1:
        s = int(round(k / fps * a.sr))
        n = int(0.05 * a.sr)
        burst = np.exp(-np.arange(n) / (0.01 * a.sr)) * rng.standard_normal(n)
        m = min(n, wav.size - s)
        wav[s:s + m] += 0.6 * burst[:m].astype(np.float32)
    print(f"add_audio: {len(frames)} frames at {fps:g} fps, prompt={a.prompt!r}", file=sys.stderr)
    from mova_bench.media import write_mp4

    write_mp4(a.out, video, fps, wav, a.sr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
