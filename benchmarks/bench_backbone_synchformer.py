"""Per-clip CPU cost of the Synchformer backbone (DeSync) on a MOVA-sized clip.

    PYTHONPATH=. python benchmarks/bench_backbone_synchformer.py [--repeats 1] [--threads N] [--batch-size 4] [--full]

The clip: 640×352 RGB, 8.04 s at 24 fps (193 frames, decoded "native" as the backbone asks), 48 kHz
mono audio; random weights at full size (237,460,245 parameters; the cost does not depend on their
values), fp32 on the CPU. Printed, best of ``--repeats``:

* ``video prep``: the 25 fps frame choice (FFmpeg fps-filter rule) and torchvision's bicubic resize
  to 224 + centre crop + normalisation of the 200 frames;
* ``audio prep``: soxr 48 → 16 kHz and the 24 log-mel segments;
* ``video forward / segment``: MotionFormer on one 16-frame segment (a clip needs 24);
* ``audio forward``: AST on the 24 audio segments;
* ``compare_v_a``: the global transformer on both 14-segment windows;
* ``per clip, estimated``: the sum, with the video forward × 24;
* ``extract()`` (``--full``): the whole clip as the harness calls it (all of the above plus the
  no-grad/TF32 guard and numpy conversion).

Wall and process CPU seconds are both printed: on a shared machine the wall time grows with the
other processes' load, the CPU seconds much less.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from benchcommon import FPS, SECONDS, SR, H, W, mova_clip
from benchcommon import best_wall_cpu as best


def line(label: str, wall: float, cpu: float, note: str = "") -> None:
    print(f"{label:<40} {wall:8.2f} s wall {cpu:8.2f} s CPU {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--batch-size", type=int, default=4, help="video segments per forward pass")
    ap.add_argument("--full", action="store_true",
                    help="also time extract() on the whole clip (24 video segments: minutes on 2 cores)")
    args = ap.parse_args()

    import torch

    from mova_bench.features import synchformer as sf
    from mova_bench.features.synchformer_net import build_synchformer

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"# Synchformer per-clip CPU cost: {W}x{H}, {SECONDS} s, {FPS:g} fps, {SR} Hz; random weights, fp32")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size} segments")
    t = time.perf_counter()
    net = build_synchformer().eval()
    print(f"build (random init, not timed per clip)   {time.perf_counter() - t:8.2f} s")

    bb = sf.Synchformer()
    bb.model, bb.device, bb.batch_size = net, "cpu", args.batch_size

    c = mova_clip()

    def video_prep():
        idx = sf.fps_filter_indices(c.video_times, 200)
        return sf.preprocess_frames(c.video[np.unique(idx)])

    def audio_prep():
        c._resampled.clear()  # resample again every repeat
        wav = torch.from_numpy(c.audio_at(sf.SAMPLE_RATE)[:128000].copy())
        return sf.log_mel_segments(torch.stack([wav[5120 * i: 5120 * i + 10240] for i in range(24)]))

    tv, cv, frames = best(video_prep, args.repeats)
    line("video prep (fps rule, resize, crop)", tv, cv)
    ta, ca, mel = best(audio_prep, args.repeats)
    line("audio prep (soxr, 24 log-mel segments)", ta, ca)
    seg = frames[:16][None, None]
    with torch.no_grad():
        tvf, cvf, vf = best(lambda: net.extract_vfeats(seg), args.repeats)
        line("video forward / segment", tvf, cvf, "(a clip needs 24)")
        taf, caf, af = best(lambda: net.extract_afeats(mel[None]), args.repeats)
        line("audio forward (24 segments)", taf, caf)
        v14 = vf.expand(2, 14, *vf.shape[2:])
        tc, cc, _ = best(lambda: net.compare_v_a(v14, af[:, :14].expand(2, -1, -1, -1)), args.repeats)
        line("compare_v_a (both windows)", tc, cc)
    line("per clip, estimated (sum, video x 24)", tv + ta + 24 * tvf + taf + tc, cv + ca + 24 * cvf + caf + cc)
    if not args.full:
        return
    def extract():
        c._resampled.clear()
        return bb.extract(c)

    te, ce, out = best(extract, args.repeats)
    line("extract() per clip", te, ce, f"(status {out['status']}, desync {float(out['desync_s']):.2f} s on random weights)")


if __name__ == "__main__":
    main()
