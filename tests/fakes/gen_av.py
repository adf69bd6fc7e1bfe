"""A stand-in video+audio generator for tests of the ``command`` and ``cascade`` adapters.

Writes an MP4 (H.264 + AAC, with PyAV) whose frames flash and whose audio clicks at the same
moments, like a model with perfect sync. ``--mode`` injects the failures the adapters must report:
``fail`` (exit 3 after writing to stderr), ``sleep`` (hang), ``noaudio`` (video stream only),
``silent`` (all-zero audio), ``garbage`` (not media), ``nofile`` (exit 0, write nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=72)
    ap.add_argument("--sr", type=int, default=48000)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--first-frame", default=None)
    ap.add_argument("--mode", default="ok", choices=["ok", "fail", "sleep", "noaudio", "silent", "garbage", "nofile"])
    a = ap.parse_args()
    print(f"gen_av: prompt={a.prompt!r} seed={a.seed} first_frame={a.first_frame}", file=sys.stderr)
    if a.mode == "fail":
        print("RuntimeError: CUDA out of memory (simulated)", file=sys.stderr)
        return 3
    if a.mode == "sleep":
        time.sleep(60)
        return 0
    if a.mode == "nofile":
        return 0
    if a.mode == "garbage":
        with open(a.out, "wb") as fh:
            fh.write(b"<html>this is not a video</html>")
        return 0
    rng = np.random.default_rng(a.seed)
    seconds = a.frames / a.fps
    frames = np.full((a.frames, a.height, a.width, 3), 40, np.uint8)
    frames[..., 0] = 40 + (a.seed % 50)
    wav = 0.01 * rng.standard_normal((int(round(seconds * a.sr)), a.channels)).astype(np.float32)
    for t in np.arange(0.4, seconds - 0.2, 0.6) + rng.uniform(0, 0.05):
        k = int(round(t * a.fps))
        frames[k:k + 2] = 230
        s = int(round(k / a.fps * a.sr))
        n = int(0.05 * a.sr)
        burst = np.exp(-np.arange(n) / (0.01 * a.sr)) * rng.standard_normal(n)
        m = min(n, wav.shape[0] - s)
        wav[s:s + m] += 0.6 * burst[:m, None].astype(np.float32)
    if a.mode == "silent":
        wav[:] = 0.0
    if a.mode == "noaudio":
        import av

        with av.open(a.out, "w", format="mp4") as c:
            vs = c.add_stream("libx264", rate=Fraction(a.fps).limit_denominator(1001))
            vs.width, vs.height, vs.pix_fmt = a.width, a.height, "yuv420p"
            for i in range(a.frames):
                f = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                f.pts = i
                for p in vs.encode(f):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
        return 0
    from mova_bench.media import write_mp4

    write_mp4(a.out, frames, a.fps, wav, a.sr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
