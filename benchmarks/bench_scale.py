"""Throughput of the executors on MOVA-sized clips, and a warm rerun against a cold one.

Targets (issue "Scale and speed"):

* ``evaluate`` of 50 MOVA-sized clips (640×352, 8.04 s, 24 fps, 48 kHz): process pool vs
  sequential on 2 cores ≥ 1.7×; Ray on this machine (2 CPUs) within 15 % of the pool;
* generation throughput of the procedural world and of ``mova-tiny``: pool vs sequential;
* a warm rerun of the demo (every clip and feature cached, the evaluation unchanged and reused)
  ≤ 10 % of the cold run.

Every figure is a wall time of the real CLI (``python -m mova_bench ...`` in a subprocess, so each
executor starts from nothing, as a user's command does), weight-free metrics, feature cache off for
the throughput runs. The load average is printed before and after: on a shared machine, other
processes' load bounds what any executor can gain.

    python benchmarks/bench_scale.py [--clips 50] [--workers 2] [--skip-ray] [--only evaluate,generate,warm]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROMPTS = [
    "A basketball bouncing on the polished wooden floor of an empty gym.",
    "Close-up of a drummer hitting a snare drum with a wooden stick, slow steady hits.",
    "A person claps their hands slowly in front of a plain wall.",
    "Footsteps on a creaky wooden floor, a person walking slowly across the room.",
    "A glass falls and shatters on kitchen tiles.",
]


def suite_file(folder: Path, n_clips: int, width: int, height: int, seconds: float, name: str) -> Path:
    per = 2
    n_prompts = max(1, (n_clips + per - 1) // per)
    doc = {
        "name": name, "version": "1",
        "description": "benchmark suite (MOVA-sized clips)",
        "defaults": {"duration_s": seconds, "fps": 24, "sample_rate": 48000, "width": width, "height": height,
                     "samples_per_prompt": per, "seed": 0},
        "reference": {"kind": "procedural", "samples_per_prompt": 1},
        "prompts": [{"id": f"p{i:03d}", "text": PROMPTS[i % len(PROMPTS)]} for i in range(n_prompts)],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


#: stderr of the last command run by :func:`cli`
LAST_STDERR = [""]


def cli(args: list[str], home: Path) -> float:
    env = {**os.environ, "MOVA_BENCH_HOME": str(home)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mova_bench", *args], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        raise SystemExit(f"mova-bench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    LAST_STDERR[0] = proc.stderr
    return dt


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=352)
    ap.add_argument("--seconds", type=float, default=193 / 24)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--only", default="evaluate,generate,warm")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    metrics = "fd_video,fd_audio,sync_offset_ms,in_sync_rate,av_align,detector_auc"
    print(f"load average before: {load()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        home = root / "home"
        suite = suite_file(root, args.clips, args.width, args.height, args.seconds, "bench_mova_sized")
        out = root / "runs"
        if "generate" in parts or "evaluate" in parts:
            gen = {}
            for ex in ("local", "pool"):
                o = root / f"gen-{ex}"
                gen[ex] = cli(["run", "--model", "procedural", "--suite", str(suite), "--out", str(o), "--metrics",
                               "sync_offset_ms", "--executor", ex, "--workers", str(args.workers), "--no-cache"], home)
            print(f"procedural generation + sync analysis of {args.clips} clips ({args.width}x{args.height}, "
                  f"{args.seconds:.2f} s): local {gen['local']:.1f} s, pool({args.workers}) {gen['pool']:.1f} s "
                  f"-> {gen['local'] / gen['pool']:.2f}x")
            clips_dir = next((root / "gen-local").glob("procedural-*/clips"))
        if "evaluate" in parts:
            times = {}
            for ex in ("local", "pool") + (() if args.skip_ray else ("ray",)):
                times[ex] = cli(["evaluate", "--clips", str(clips_dir), "--out", str(out / ex), "--metrics", metrics,
                                 "--executor", ex, "--workers", str(args.workers), "--no-cache"], home)
            line = (f"evaluate {args.clips} clips, weight-free metrics, cache off: local {times['local']:.1f} s, "
                    f"pool({args.workers}) {times['pool']:.1f} s -> {times['local'] / times['pool']:.2f}x")
            if "ray" in times:
                line += f"; ray (local, {args.workers} CPUs) {times['ray']:.1f} s -> {times['ray'] / times['pool']:.2f}x the pool's time"
            print(line)
        if "generate" in parts:
            tiny = root / "tiny.yaml"
            doc = yaml.safe_load(suite.read_text())
            doc.update(name="bench_tiny")
            doc["defaults"].update(width=256, height=144, duration_s=4)
            tiny.write_text(yaml.safe_dump(doc, sort_keys=False))
            gen = {}
            for ex in ("local", "pool"):
                gen[ex] = cli(["run", "--model", "mova-tiny", "--suite", str(tiny), "--out", str(root / f"tiny-{ex}"),
                               "--metrics", "sync_offset_ms", "--executor", ex, "--workers", str(args.workers),
                               "--no-cache"], home)
            print(f"mova-tiny generation + sync analysis of {args.clips} clips (256x144, 4 s): local {gen['local']:.1f} s, "
                  f"pool({args.workers}) {gen['pool']:.1f} s -> {gen['local'] / gen['pool']:.2f}x")
        if "warm" in parts:
            wh = root / "warm-home"
            cold = cli(["run", "--model", "procedural", "--suite", "thunderstorm_set", "--out", str(root / "demo")], wh)
            warm = cli(["run", "--model", "procedural", "--suite", "thunderstorm_set", "--out", str(root / "demo")], wh)
            reused = "unchanged evaluation reused" in LAST_STDERR[0]
            print(f"demo (thunderstorm_set): cold {cold:.1f} s, warm rerun {warm:.1f} s -> warm = {warm / cold:.0%} of cold"
                  f" (evaluation {'reused' if reused else 'computed again: the code or an input changed in between'})")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
