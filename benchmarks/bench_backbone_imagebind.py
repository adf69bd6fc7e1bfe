"""Per-clip CPU cost of the ImageBind backbone (IB-score) on a MOVA-sized clip.

    PYTHONPATH=. python benchmarks/bench_backbone_imagebind.py [--repeats 1] [--threads N] [--vision-clips 1] [--full]

The clip: 640×352 RGB, 8.04 s at 24 fps (193 frames, decoded "native" as the backbone asks), 48 kHz
mono audio; random weights of the released size (vision + audio branches of imagebind_huge:
the cost does not depend on their values), fp32 on the CPU. Printed, best of ``--repeats``:

* ``video prep``: the 0.5 fps frame choice, torchvision's bicubic resize to 224 and normalisation of
  the 4 frames, the 3 crops and the 9 frame-pair clips;
* ``audio prep``: soxr 48 → 16 kHz and the three Kaldi fbank clips;
* ``vision forward / 2-frame clip``: ViT-H/14 (32 blocks × 1280) on ``--vision-clips`` clips, per clip
  (a MOVA clip needs 9);
* ``audio forward``: the audio ViT-B (12 blocks × 768) on the 3 fbank clips;
* ``per clip, estimated``: the sum, with the vision forward × 9;
* ``extract()`` (``--full``): the whole clip as the harness calls it.

Wall and process CPU seconds are both printed: on a shared machine the wall time grows with the
other processes' load, the CPU seconds much less. Memory: the vision + audio weights are ≈ 2.9 GB in
fp32 (the whole file, 1.2 B parameters, ≈ 4.8 GB, is memory-mapped and only these modules are kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

from benchcommon import mova_clip
from benchcommon import best_wall_cpu as best


def line(label: str, wall: float, cpu: float, note: str = "") -> None:
    print(f"  {label:<34} {wall:9.3f} s wall {cpu:9.3f} s CPU  {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--vision-clips", type=int, default=1, help="2-frame clips in the timed vision forward (1..9)")
    ap.add_argument("--full", action="store_true", help="also time extract() on the whole clip")
    args = ap.parse_args(argv)

    import torch

    from mova_bench.features import imagebind as ib
    from mova_bench.features.base import _StrictNumerics
    from mova_bench.features.imagebind_net import HUGE, ImageBindNet

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"ImageBind huge (vision + audio), random weights, fp32, CPU: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    t = time.perf_counter()
    with torch.no_grad():
        net = ImageBindNet(HUGE).eval()
    n_par = sum(p.numel() for p in net.parameters())
    print(f"  build {time.perf_counter() - t:.1f} s, {n_par:,} parameters ({4 * n_par / 1e9:.2f} GB fp32)")
    clip = mova_clip()

    class Bench(ib.ImageBind):
        pass

    bb = Bench()
    bb.model, bb.device = net, "cpu"

    def video_prep():
        idx = bb.frame_indices(clip)
        return ib.video_clips(ib.preprocess_frames(clip.frames(bb.video_needs[0])[idx]))

    def audio_prep():
        clip._resampled.pop(16000, None)  # resample every time (the decoded clip caches it per rate)
        return ib.audio_input(clip.audio_at(16000))

    with _StrictNumerics():
        w, c, clips = best(video_prep, args.repeats)
        line("video prep (4 frames, 9 clips)", w, c, f"clips {tuple(clips.shape)}")
        w, c, mels = best(audio_prep, args.repeats)
        line("audio prep (resample + 3 fbank)", w, c, f"mels {tuple(mels.shape)}")
        k = max(1, min(args.vision_clips, clips.shape[0]))
        wv, cv, _ = best(lambda: net.embed_vision(clips[:k]), args.repeats)
        line("vision forward / 2-frame clip", wv / k, cv / k, f"timed on {k} clip(s)")
        wa, ca, _ = best(lambda: net.embed_audio(mels), args.repeats)
        line("audio forward (3 clips)", wa, ca)
        n_clips = clips.shape[0]
        line("per clip, estimated", w + wa + wv / k * n_clips, c + ca + cv / k * n_clips, f"vision x {n_clips}")
        if args.full:
            wf, cf, out = best(lambda: bb.extract(clip), args.repeats)
            line("extract()", wf, cf, f"ib_score {float(out['ib_score']):+.4f}")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB; load after "
          f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
