"""Wall time of generating and analysing the demo's clips in this process vs a process pool.

Target (issue "Scale and speed: all cores by default"): the default ``pool`` executor uses every
usable core; its results are bitwise identical to ``local``'s (checked here too).

The clips are the demo's (``thunderstorm_set`` with the procedural model: 22 clips, 256x144, 4 s,
24 fps, 48 kHz); analysis decodes each clip once and runs every weight-free extractor, feature
cache disabled. The pool's total includes starting its workers until each has the pipeline
imported (the fork server imports it once per process; spawn in every worker), printed on its own.
Other processes' load matters on a small machine: the load average is printed before and after.

    python benchmarks/bench_workers.py [--workers 2] [--clips 22] [--suite thunderstorm_set] [--start-method spawn]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _warm(x):
    """What a worker must have imported before its first clip (the fork server preloads it)."""
    import importlib

    from mova_bench.executors.pool import PRELOAD

    for name in PRELOAD:
        importlib.import_module(name)
    return x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clips", type=int, default=None, help="first N clips of the suite (default: all of them)")
    ap.add_argument("--suite", default="thunderstorm_set")
    ap.add_argument("--start-method", default=None, choices=["forkserver", "spawn"])
    args = ap.parse_args()

    from mova_bench.cards import load_card
    from mova_bench.executors import TaskFailure, get_executor
    from mova_bench.executors.pool import default_workers, usable_cores
    from mova_bench.pipeline.analysis import AnalysisTask, ExtractorSpec, analyse_clip
    from mova_bench.pipeline.generation import GenTask, generate_clip
    from mova_bench.pipeline.requests import build_requests, generation_geometry
    from mova_bench.registry import features
    from mova_bench.suites import load_suite

    suite = load_suite(args.suite)
    card = load_card("procedural")
    geo = generation_geometry(suite, card)
    requests = build_requests(suite, card, seed=suite.defaults.seed,
                              samples_per_prompt=suite.defaults.samples_per_prompt, geometry=geo)[: args.clips]
    names = [n for n in features.names() if features.get(n).family == "classical"]
    params = {"sync_dsp": {"max_lag_ms": float(suite.defaults.sync_max_lag_ms)}}
    specs = tuple(ExtractorSpec(n, tuple(sorted(params.get(n, {}).items()))) for n in names)
    for spec in specs:  # imports and filterbanks in this process, so "local" pays no start either
        spec.build()
    os.environ.setdefault("MOVA_BENCH_PROGRESS_INTERVAL", "3600")  # keep the output to the figures

    print(f"{len(requests)} clips of {suite.name}: {geo.width}x{geo.height}, {geo.duration_s:g} s at {geo.fps:g} fps; "
          f"extractors {', '.join(names)}; cache off")
    print(f"machine: {usable_cores()} usable cores, pool default would be {default_workers()} workers; "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    timings: dict[str, dict[str, float]] = {}
    cores: dict[str, float] = {}  # this process's CPU time / wall time while working
    outputs = {}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for label, name, kwargs in (("local", "local", {}),
                                    (f"pool({args.workers})", "pool", {"workers": args.workers,
                                                                        **({"start_method": args.start_method} if args.start_method else {})})):
            folder = Path(tmp) / name
            folder.mkdir()
            t = timings[label] = {}
            with get_executor(name, **kwargs) as ex:
                t0 = time.perf_counter()
                list(ex.map(_warm, range(max(2, args.workers))))  # workers up, pipeline imported (local: nothing)
                t["start"] = time.perf_counter() - t0
                tasks = [GenTask(r, str(folder / f"{r.clip_id}.mp4"), card.name, (), card.source) for r in requests]
                t0, c0 = time.perf_counter(), time.process_time()
                gen = {task.request.clip_id: res for task, res in ex.map(generate_clip, tasks)}
                t["generate"] = time.perf_counter() - t0
                bad = [c for c, r in gen.items() if isinstance(r, TaskFailure)]
                assert not bad, f"generation failed: {bad}"
                jobs = [AnalysisTask(c, str(folder / f"{c}.mp4"), r["content_hash"], specs, None, False) for c, r in gen.items()]
                t0 = time.perf_counter()
                ana = {job.clip_id: res for job, res in ex.map(analyse_clip, jobs)}
                t["analyse"] = time.perf_counter() - t0
                cores[label] = (time.process_time() - c0) / (t["generate"] + t["analyse"])
                bad = [c for c, r in ana.items() if isinstance(r, TaskFailure)]
                assert not bad, f"analysis failed: {bad}"
            outputs[label] = ({p.name: p.read_bytes() for p in folder.glob("*.mp4")}, ana)

    (lf, la), (pf, pa) = outputs.values()
    same = lf == pf and all(
        a.dtype == pa[c].features[e][k].dtype and a.tobytes() == pa[c].features[e][k].tobytes()
        for c in la for e, arrays in la[c].features.items() for k, a in arrays.items())
    loc, pool = timings.values()
    print(f"\n{'':18}{'start':>8}{'generate':>10}{'analyse':>10}{'total':>10}   (seconds, wall)")
    for label, t in timings.items():
        print(f"{label:<18}{t['start']:8.2f}{t['generate']:10.2f}{t['analyse']:10.2f}{sum(t.values()):10.2f}")
    sp = {k: loc[k] / pool[k] for k in ("generate", "analyse")}
    work_l, work_p = loc["generate"] + loc["analyse"], pool["generate"] + pool["analyse"]
    print(f"{'speedup':<18}{'':8}{sp['generate']:9.2f}x{sp['analyse']:9.2f}x{sum(loc.values()) / sum(pool.values()):9.2f}x"
          f"   (generate + analyse, starts left out: {work_l / work_p:.2f}x)")
    print(f"local kept {cores['local']:.2f} cores busy on average (its own threads: x264, FFmpeg, OpenCV, av_align)")
    print(f"results bitwise identical (mp4 bytes, feature arrays): {'yes' if same else 'NO'}; "
          f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
