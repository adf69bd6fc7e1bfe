"""Stream 100,000 clips of 2048-d features through RunningStats; print time and peak memory.

    PYTHONPATH=. python benchmarks/bench_stats_memory.py [--clips 100000] [--dim 2048] [--batch 2048]

Keeping every feature would take clips × dim × 8 bytes (1.6 GB here); the running sums take
dim² × 8 bytes (32 MiB) however many clips stream through. Peak RSS (getrusage) covers the
interpreter, numpy/OpenBLAS and the feature batches; the tracemalloc peak counts Python/numpy
allocations made after start-up (numpy reports its buffers to tracemalloc).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from mova_bench.metrics.frechet import RunningStats, frechet_from_stats


def rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=2048)
    args = ap.parse_args()

    rss_start = rss_mib()
    tracemalloc.start()
    rng = np.random.default_rng(0)
    scale = np.linspace(0.5, 2.0, args.dim, dtype=np.float32)
    stats = RunningStats(args.dim)
    t0 = time.perf_counter()
    t_update = 0.0
    done = 0
    while done < args.clips:
        n = min(args.batch, args.clips - done)
        batch = rng.standard_normal((n, args.dim), dtype=np.float32) * scale + 1.0  # a worker's float32 features
        t = time.perf_counter()
        stats.update(batch)
        t_update += time.perf_counter() - t
        done += n
    wall = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_stream = rss_mib()

    # sanity: mean ≈ 1, var ≈ scale², and merging two halves equals the single pass
    var = np.diag(stats.cov)
    err_mean = float(np.max(np.abs(stats.mean - 1.0)))
    err_var = float(np.max(np.abs(var / scale.astype(np.float64) ** 2 - 1.0)))
    with tempfile.TemporaryDirectory() as tmp:
        path = stats.to_npz(Path(tmp) / "stats.npz", clips=args.clips, dim=args.dim)
        size = path.stat().st_size
        back = RunningStats.from_npz(path)
    fd, warnings = frechet_from_stats(stats, back)

    print(f"clips={args.clips} dim={args.dim} batch={args.batch}")
    print(f"wall {wall:.1f} s (RunningStats.update {t_update:.1f} s, {args.clips / t_update:,.0f} clips/s; rest = random features)")
    print(f"peak RSS after streaming {rss_stream:.0f} MiB (at start {rss_start:.0f} MiB); tracemalloc peak while "
          f"streaming {traced_peak / 2**20:.0f} MiB; peak RSS after cov/npz/FD checks {rss_mib():.0f} MiB")
    print(f"storing every feature instead: {args.clips * args.dim * 8 / 2**30:.2f} GiB float64")
    print(f"stats .npz {size / 2**20:.1f} MiB; max |mean−1| {err_mean:.2e}; max |var/σ²−1| {err_var:.2e}; "
          f"FD(stats, reloaded) = {fd:.3g} {warnings or ''}")
    ok = rss_mib() < 1024
    print("peak RSS < 1 GiB:", "ok" if ok else "NO")


if __name__ == "__main__":
    main()
