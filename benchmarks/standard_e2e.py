"""Every standard backbone through the real CLI at once: ``mova-bench run --backbones standard``
with seeded random weights in each upstream file layout, and a table of every metric.

    nice -n 10 .venv/bin/python benchmarks/standard_e2e.py [--prompts 3] [--seconds 5] [--keep DIR] [--json]

1. builds random weights for every weights entry the standard backbones load (the backbones are
   read from the metric and backbone registries; the builders are the backbone tests', see
   tests/standard_weights.py) into a temporary ``MOVA_BENCH_HOME`` and names them in its user
   weights registry (``weights/registry.yaml``, with size and SHA-256), so every process sees them;
2. writes a small suite (``--prompts`` prompts from the procedural world, 1 sample each, clips of
   ``--seconds`` s, a procedural reference of 1 clip per prompt);
3. runs ``python -m mova_bench run --model procedural --suite <yaml> --backbones standard
   --executor local --json`` offline (``MOVA_BENCH_OFFLINE=1``, ``HF_HUB_OFFLINE=1``);
4. prints every metric key with its status, value, 95% CI and n, the standard ones marked, then
   the wall time (weights, CLI run) and the load average.

Exit status: 0 when every standard metric is ``ok`` with a finite value and a CI; 1 when one is
not, or when a standard backbone has no random-weight builder (listed as "not covered"); the
CLI's own status when it fails before scoring.

Clip length: Synchformer's DeSync needs at least 4.8 s of both streams (one window of 14
segments); ≈5 s clips cost it one window per clip. The weights take ≈ 7.8 GB of disk (ImageBind
huge 4.8 GB of them) in the work folder. Random weights: the values say nothing about the real
checkpoints, only that every loader, preprocessing path and metric runs end to end.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

PROMPTS = (
    ("strike", "A bright lightning bolt strikes a field close to the camera, followed instantly by a crack of thunder."),
    ("drum", "Close-up of a drummer hitting a snare drum with a wooden stick, slow steady hits."),
    ("ball", "A basketball bouncing on the polished wooden floor of an empty gym."),
    ("claps", "A person claps their hands slowly in front of a plain wall."),
    ("steps", "Footsteps on a creaky wooden floor, a person walking slowly across the room."),
)
#: Synchformer's minimum (4.8 s) plus a margin for the container's rounding
MIN_SECONDS = 5.0


def suite_yaml(n_prompts: int, seconds: float) -> str:
    if not 2 <= n_prompts <= len(PROMPTS):
        raise SystemExit(f"--prompts {n_prompts}: expected 2 to {len(PROMPTS)} (confidence intervals need 2 clips)")
    if seconds < MIN_SECONDS:
        raise SystemExit(f"--seconds {seconds:g}: expected at least {MIN_SECONDS:g} (Synchformer's DeSync needs 4.8 s "
                         "of both streams)")
    lines = ["name: standard_e2e", 'version: "1"', "description: every standard backbone end to end (random weights)",
             f"defaults: {{duration_s: {seconds:g}, fps: 24, sample_rate: 48000, width: 160, height: 96, "
             "samples_per_prompt: 1, seed: 0}",
             "reference: {kind: procedural, samples_per_prompt: 1}", "prompts:"]
    lines += [f"  - {{id: {pid}, text: {json.dumps(text)}}}" for pid, text in PROMPTS[:n_prompts]]
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def expected_metrics(uncovered_weights: set[str]) -> tuple[list[str], dict[str, str]]:
    """(the standard metric keys, read from the registries with the current MOVA_BENCH_HOME;
    {key: why not covered} for those whose backbone needs an entry that was not built)."""
    import standard_weights as sw

    from mova_bench.pipeline.scoring import select_metrics
    from mova_bench.registry import features

    keys: list[str] = []
    uncovered: dict[str, str] = {}
    for m in select_metrics(None, "auto"):
        pretrained = [r for r in m.required_extractors() if r and sw.is_pretrained(r)]
        if not pretrained:
            continue
        keys.append(m.key)
        lacking = [w for r in pretrained for w in features.get(r)().weights if w in uncovered_weights]
        if lacking:
            uncovered[m.key] = f"no random weights for {', '.join(lacking)}"
    return keys, uncovered


def outside_selection(keys: list[str]) -> list[str]:
    """Registered metrics whose default backbone is a registered pretrained one but which
    ``--backbones standard`` does not select (so this run does not cover them)."""
    import standard_weights as sw

    from mova_bench.registry import metrics as metric_registry

    out = []
    for name in metric_registry.names():
        bb = getattr(metric_registry.get(name), "default_backbone", None)
        if bb and sw.is_pretrained(bb) and f"{name}[{bb}]" not in keys:
            out.append(f"{name}[{bb}]")
    return out


def run_cli(home: Path, suite: Path, out: Path, metrics: list[str] | None = None) -> tuple[int, dict[str, Any] | None, str]:
    """The real CLI in a child process (offline); (exit code, its --json object, its stderr tail)."""
    cmd = [sys.executable, "-m", "mova_bench", "run", "--model", "procedural", "--suite", str(suite),
           "--backbones", "standard", "--executor", "local", "--out", str(out), "--json"]
    if metrics:
        cmd += ["--metrics", ",".join(metrics)]
    env = {**os.environ, "MOVA_BENCH_HOME": str(home), "MOVA_BENCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    print("$ python " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stdout:
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, bufsize=1)
        for line in proc.stderr:  # its progress, passed on as it comes
            sys.stderr.write(line)
            tail.append(line)
        code = proc.wait()
        stdout.seek(0)
        text = stdout.read().strip()
    try:
        doc = json.loads(text.splitlines()[-1]) if text else None
    except ValueError:
        doc = None
    return code, doc, "".join(tail)


def problems(metrics: dict[str, dict[str, Any]], keys: list[str]) -> dict[str, str]:
    """{standard key: what is wrong} (absent, not ok, no finite value, no CI, CI not around the value)."""
    out: dict[str, str] = {}
    for k in keys:
        m = metrics.get(k)
        if m is None:
            out[k] = "absent from the run's metrics"
        elif m.get("status") != "ok":
            out[k] = f"status {m.get('status')}: {m.get('reason')}"
        elif m.get("value") is None or not math.isfinite(m["value"]):
            out[k] = f"value {m.get('value')!r} is not finite"
        elif m.get("ci_low") is None or m.get("ci_high") is None:
            out[k] = "no confidence interval"
        elif not m["ci_low"] <= m["value"] <= m["ci_high"]:
            out[k] = f"CI [{m['ci_low']:.6g}, {m['ci_high']:.6g}] does not contain the value {m['value']:.6g}"
    return out


def run_e2e(workdir: str | Path, *, n_prompts: int = 3, seconds: float = MIN_SECONDS, seed: int = 0,
            log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Build, register, run; the outcome (see :func:`main` for what is printed). Sets
    ``MOVA_BENCH_HOME`` in this process to ``workdir/home`` (the registries are read from there)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import standard_weights as sw

    workdir = Path(workdir)
    home = workdir / "home"
    os.environ["MOVA_BENCH_HOME"] = str(home)
    t0 = time.perf_counter()
    load_start = loadavg()
    by_backbone = sw.standard_weight_names()
    names = [w for ws in by_backbone.values() for w in ws]
    log(f"standard backbones: {', '.join(by_backbone)}; weights: {', '.join(names)}")
    files, not_built = sw.build_weights(names, workdir / "weights", seed=seed, log=log)
    registry = sw.write_registry(files, home / "weights" / "registry.yaml")
    t_weights = time.perf_counter() - t0
    keys, uncovered = expected_metrics(set(not_built))
    outside = outside_selection(keys)
    suite = workdir / "standard_e2e.yaml"
    suite.write_text(suite_yaml(n_prompts, seconds), encoding="utf-8")
    metrics_arg = None
    if uncovered:  # `--backbones standard` would refuse to start: run every other metric
        from mova_bench.pipeline.scoring import select_metrics

        metrics_arg = [m.key if m.key in keys else m.name for m in select_metrics(None, "auto")
                       if m.key not in uncovered and not getattr(m, "unavailable", None)]
    t1 = time.perf_counter()
    code, doc, err = run_cli(home, suite, workdir / "run", metrics_arg)
    t_run = time.perf_counter() - t1
    metrics = (doc or {}).get("metrics") or {}
    covered = [k for k in keys if k not in uncovered]
    return {"exit_code": code, "metrics": metrics, "standard_keys": keys, "uncovered": uncovered, "outside": outside,
            "not_built": not_built, "problems": problems(metrics, covered) if doc else {"(run)": err[-800:]},
            "registry": str(registry), "suite": str(suite), "run_dir": (doc or {}).get("run_dir"),
            "n_clips": (doc or {}).get("n_clips"), "weights_s": round(t_weights, 1), "run_s": round(t_run, 1),
            "wall_s": round(time.perf_counter() - t0, 1), "load_start": load_start, "load_end": loadavg(),
            "prompts": n_prompts, "seconds": seconds}


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}"


def table(res: dict[str, Any]) -> str:
    std = set(res["standard_keys"])
    rows = [("", "metric", "status", "value", "95% CI", "n")]
    for k, m in res["metrics"].items():
        ci = f"[{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]" if m.get("ci_low") is not None else "—"
        rows.append(("*" if k in std else "", k, m.get("status", "?"), _fmt(m.get("value")), ci, str(m.get("n", ""))))
    for k in [*res["uncovered"], *res["outside"]]:
        rows.append(("*" if k in std else "", k, "not covered", "—", "—", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("* = standard metric (a pretrained backbone)")
    for k, why in res["uncovered"].items():
        lines.append(f"not covered: {k}: {why}")
    for k in res["outside"]:
        lines.append(f"not covered: {k}: registered on a pretrained backbone, but `--backbones standard` does not select "
                     "it (not among the standard metrics), so this run does not exercise it")
    for k, why in res["problems"].items():
        lines.append(f"NOT OK: {k}: {why}")
    ok = len([k for k in res["standard_keys"] if k not in res["uncovered"] and k not in res["problems"]])
    lines.append(f"{ok}/{len(res['standard_keys'])} standard metrics ok; {res['n_clips']} generated clips "
                 f"({res['prompts']} prompts × 1, {res['seconds']:g} s) + a reference of 1 clip per prompt")
    lines.append(f"wall {res['wall_s']:.1f} s (weights {res['weights_s']:.1f} s, CLI run {res['run_s']:.1f} s); "
                 f"load average {res['load_start']} at start, {res['load_end']} at end; {os.cpu_count()} CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=3, help="prompts (1 clip each; 2 to 5)")
    p.add_argument("--seconds", type=float, default=MIN_SECONDS, help=f"clip length (at least {MIN_SECONDS:g})")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one, removed)")
    p.add_argument("--json", action="store_true", help="print the outcome as one JSON object instead of the table")
    args = p.parse_args(argv)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        res = run_e2e(args.keep, n_prompts=args.prompts, seconds=args.seconds, seed=args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="mova-standard-e2e-") as d:
            res = run_e2e(d, n_prompts=args.prompts, seconds=args.seconds, seed=args.seed)
    print(json.dumps(res) if args.json else table(res))
    if res["exit_code"] not in (0, None) and not res["metrics"]:
        return int(res["exit_code"])
    return 1 if res["problems"] or res["uncovered"] else 0


if __name__ == "__main__":
    sys.exit(main())
