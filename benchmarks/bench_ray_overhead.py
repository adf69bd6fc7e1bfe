"""Ray's fixed costs on this machine, which a short ``--executor ray`` command pays on top of the
process pool's time: starting a local instance, the first tasks of fresh workers (they import the
analysis modules; the pool's workers fork from a server that imported them once), and shutdown.

    python benchmarks/bench_ray_overhead.py [--cpus 2]

Throughput after that is the pool's (each task runs the same function on one CPU).
"""

from __future__ import annotations

import argparse
import logging
import os
import time


def _imports() -> float:
    t = time.perf_counter()
    from mova_bench.executors.pool import PRELOAD

    for name in PRELOAD:
        __import__(name)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t = time.perf_counter()
    import ray

    t_import = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    t_init = time.perf_counter() - t
    task = ray.remote(num_cpus=1)(_imports)
    t = time.perf_counter()
    first = ray.get([task.remote() for _ in range(args.cpus)])
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    ray.get([task.remote() for _ in range(args.cpus)])
    t_second = time.perf_counter() - t
    t = time.perf_counter()
    ray.shutdown()
    t_shutdown = time.perf_counter() - t
    print(f"import ray            {t_import:6.2f} s")
    print(f"ray.init (local, {args.cpus} CPUs) {t_init:6.2f} s")
    print(f"first task per worker {t_first:6.2f} s  (imports in the worker: {max(first):.2f} s)")
    print(f"second task per worker{t_second:6.2f} s")
    print(f"ray.shutdown          {t_shutdown:6.2f} s")
    print(f"fixed cost            {t_import + t_init + t_first + t_shutdown:6.2f} s")


if __name__ == "__main__":
    main()
