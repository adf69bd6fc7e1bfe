"""Cost of evaluating a clip with every weight-free extractor, relative to decoding it once.

Target (issue "Metrics engine"): decode + all weight-free extractors ≤ 1.5 × decode alone,
because the clip is decoded once and fanned out to every extractor.

    python benchmarks/bench_eval_vs_decode.py [--width 640 --height 352 --seconds 8.04 --repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mova_bench.generators.base import ClipRequest
from mova_bench.media import decode, write_mp4
from mova_bench.registry import features


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=352)
    ap.add_argument("--seconds", type=float, default=193 / 24)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from mova_bench.generators.procedural import ProceduralGenerator

    req = ClipRequest("bench", "bench", "A drummer hits a snare drum; a ball bounces", 1, 0, args.seconds, args.fps,
                      48000, args.width, args.height)
    clip = ProceduralGenerator().generate(req)
    names = [n for n in features.names() if features.get(n).family == "classical"]
    extractors = [features.get(n)() for n in names]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.mp4"
        write_mp4(path, clip.video, clip.fps, clip.audio, clip.sample_rate)
        decode(path)  # warm-up (imports, codec init)
        for ex in extractors:
            ex.extract(decode(path))
        dec, per = [], {n: [] for n in names}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            c = decode(path)
            dec.append(time.perf_counter() - t0)
            for n, ex in zip(names, extractors):
                t0 = time.perf_counter()
                ex.extract(c)
                per[n].append(time.perf_counter() - t0)
    d = min(dec)
    tot = sum(min(v) for v in per.values())
    print(f"clip: {args.width}x{args.height}, {args.seconds:.2f} s at {args.fps} fps, 48 kHz mono (best of {args.repeats})")
    print(f"decode once           {d * 1000:8.1f} ms")
    for n in names:
        print(f"  {n:<18}  {min(per[n]) * 1000:8.1f} ms")
    print(f"all extractors        {tot * 1000:8.1f} ms")
    print(f"evaluate / decode     {(d + tot) / d:8.2f}x   (target <= 1.5x)")
    if "av_align" in per:
        rest = tot - min(per["av_align"])
        print(f"  without av_align    {(d + rest) / d:8.2f}x   (Farnebäck optical flow is the dominant cost)")


if __name__ == "__main__":
    main()
