"""Throughput of the executors on MOVA-sized clips, and a warm rerun against a cold one.

Targets (issue "Scale and speed"):

* ``evaluate`` of 50 MOVA-sized clips (640×352, 8.04 s, 24 fps, 48 kHz): process pool vs
  sequential on 2 cores ≥ 1.7×; Ray on this machine (2 CPUs) within 15 % of the pool — both as a
  Ray the command starts itself (``ray.init`` inside the command) and attached to a running
  one-node cluster (``ray start --head`` beforehand, as on a cluster; ``--address``);
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
import secrets
import shutil
import signal
import socket
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_head(cpus: int, log: Path) -> tuple[subprocess.Popen, str, str, float]:
    """A one-node Ray cluster in its own process group (stopped by :func:`stop_head`, never with
    ``ray stop``, which would stop every Ray of the user): (process, address, temp dir, seconds to start)."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="mb-ray-")
    port = _free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(ray_bin), "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--dashboard-agent-listen-port={_free_port()}", f"--num-cpus={cpus}", "--block",
                             "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"],
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 120
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        raise SystemExit(f"ray start --head did not come up:\n{log.read_text()[-2000:]}")
    return proc, f"127.0.0.1:{port}", temp, time.perf_counter() - t0


def stop_head(proc: subprocess.Popen, temp: str) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)
    shutil.rmtree(temp, ignore_errors=True)


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
            if not args.skip_ray:  # attached to a running cluster: what a cluster user pays
                # a token-protected head (as tests/test_ray.py's cluster); the driver gets the same token
                os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
                head, address, temp, started = ray_head(args.workers, root / "ray-head.log")
                try:
                    times["ray-attached"] = cli(["evaluate", "--clips", str(clips_dir), "--out", str(out / "ray-attached"),
                                                 "--metrics", metrics, "--executor", "ray", "--address", address,
                                                 "--no-cache"], home)
                finally:
                    stop_head(head, temp)
                    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
                        os.environ.pop(k, None)
            line = (f"evaluate {args.clips} clips, weight-free metrics, cache off: local {times['local']:.1f} s, "
                    f"pool({args.workers}) {times['pool']:.1f} s -> {times['local'] / times['pool']:.2f}x")
            if "ray" in times:
                line += (f"; ray started by the command ({args.workers} CPUs) {times['ray']:.1f} s -> "
                         f"{times['ray'] / times['pool']:.2f}x the pool's time; ray attached to a running head "
                         f"(started in {started:.1f} s beforehand) {times['ray-attached']:.1f} s -> "
                         f"{times['ray-attached'] / times['pool']:.2f}x")
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
