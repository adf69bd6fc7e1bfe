"""Time one FD bootstrap resample against a fixed reference, and the resample count the default picks.

    PYTHONPATH=. python benchmarks/bench_fd_bootstrap.py [--sizes 50x2048,200x2048,50x400] [--resamples 20]

With fewer clips than dimensions a resample's trace term comes from the n × n Gram matrix
(:func:`mova_bench.metrics.distribution._fd_bootstrap_clips`), not a dim × dim eigenproblem.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mova_bench.metrics.distribution import _fd_bootstrap, default_fd_boot
from mova_bench.metrics.frechet import mean_cov


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50x2048,200x2048,50x400", help="comma-separated n×dim pairs, e.g. 50x2048")
    ap.add_argument("--resamples", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for size in args.sizes.split(","):
        n, d = (int(v) for v in size.lower().split("x"))
        x = rng.standard_normal((n, d))
        mu, cov = mean_cov(rng.standard_normal((3 * d, d)))
        t = time.perf_counter()
        _fd_bootstrap(x, mu, cov, args.resamples, 0)
        dt = time.perf_counter() - t
        print(f"n={n:<5} dim={d:<5} {dt / args.resamples * 1000:8.1f} ms per resample; default resamples {default_fd_boot(n, d)}")


if __name__ == "__main__":
    main()
