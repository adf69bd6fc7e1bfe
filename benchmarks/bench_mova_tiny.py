"""Generation cost of one mova-tiny clip: latent sampling (numpy) vs rendering (the world) vs MP4.

    python benchmarks/bench_mova_tiny.py [--suite impacts_set] [--clips 22] [--checkpoint final]
                                         [--steps 8,16,32] [--guidance-scale 1] [--repeats 3]

For each step count: the per-clip mean of sampling the latents (text encoding, ``steps`` Euler
steps of the network, two branches when guidance ≠ 0 or 1), decoding and rendering them with
the procedural world (frames and waveform), and writing the MP4 the harness writes (H.264/AAC),
the best of ``--repeats`` passes over the suite's first ``--clips`` clips at the suite's geometry;
and the procedural oracle's own render of the same requests for comparison. Prints the CPU and
the load average before and after: on a shared machine other processes inflate every number.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="impacts_set")
    ap.add_argument("--clips", type=int, default=22)
    ap.add_argument("--checkpoint", default="final")
    ap.add_argument("--steps", default="8,16,32")
    ap.add_argument("--guidance-scale", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from mova_bench.cards import load_card
    from mova_bench.generators.procedural import ProceduralGenerator
    from mova_bench.generators.tiny import latent as L
    from mova_bench.generators.tiny.generator import MovaTinyGenerator
    from mova_bench.generators.world import Geometry
    from mova_bench.media import write_mp4
    from mova_bench.pipeline.requests import build_requests, generation_geometry
    from mova_bench.suites import load_suite

    suite = load_suite(args.suite)
    card = load_card("mova-tiny")
    geo = generation_geometry(suite, card)
    reqs = build_requests(suite, card, seed=suite.defaults.seed, samples_per_prompt=suite.defaults.samples_per_prompt,
                          geometry=geo)[: args.clips]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{len(reqs)} clips of {suite.name} ({geo.width}x{geo.height}, {geo.duration_s:g} s, {geo.fps:g} fps, "
          f"{geo.sample_rate} Hz), checkpoint {args.checkpoint}, guidance {args.guidance_scale:g}; "
          f"ms per clip, best of {args.repeats}\n")
    print(f"{'steps':>5} {'sample':>8} {'render':>8} {'mp4':>8} {'total':>8}  sample share")
    tmp = Path(tempfile.mkdtemp())

    def geometry(r) -> Geometry:
        return Geometry(n_frames=int(round(r.duration_s * r.fps)), height=r.height, width=r.width, fps=r.fps,
                        sample_rate=r.sample_rate, n_samples=int(round(r.duration_s * r.sample_rate)),
                        duration_s=r.duration_s)

    for steps in [int(s) for s in args.steps.split(",")]:
        gen = MovaTinyGenerator(card_defaults=card.defaults, card=card, checkpoint=args.checkpoint,
                                steps=steps, guidance_scale=args.guidance_scale)
        gen.check_available()
        gen.load()
        best = None
        for _ in range(args.repeats):
            t_s = t_r = t_m = 0.0
            for r in reqs:
                t0 = time.perf_counter()
                zv, za = gen.sample_latents(r.prompt_text, r.seed)
                t1 = time.perf_counter()
                g = geometry(r)
                video, audio = L.LatentWorld(r.prompt_text, r.seed, g, L.decode(zv, za, g)).render()
                t2 = time.perf_counter()
                write_mp4(tmp / "c.mp4", video, r.fps, audio.clip(-0.95, 0.95), r.sample_rate)
                t3 = time.perf_counter()
                t_s, t_r, t_m = t_s + t1 - t0, t_r + t2 - t1, t_m + t3 - t2
            cur = (t_s, t_r, t_m)
            best = cur if best is None or sum(cur) < sum(best) else best
        n = len(reqs)
        s, r_, m = (1000 * x / n for x in best)
        print(f"{steps:>5} {s:8.1f} {r_:8.1f} {m:8.1f} {s + r_ + m:8.1f}  {s / (s + r_ + m):.0%} "
              f"(of sampling + rendering: {s / (s + r_):.0%})")
    proc = ProceduralGenerator()
    best_p = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for r in reqs:
            proc.generate(r)
        dt = time.perf_counter() - t0
        best_p = dt if best_p is None else min(best_p, dt)
    print(f"\nprocedural oracle, render only: {1000 * best_p / len(reqs):.1f} ms per clip")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
