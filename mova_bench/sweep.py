"""``mova-bench sweep``: one ordinary run per point of a parameter grid, and a report across them.

``--param KEY=V1,V2,...`` (repeatable) spans a grid: the cartesian product of the lists, in the
order given (the first parameter varies slowest). Each point is an ordinary, resumable run
(:func:`mova_bench.pipeline.run`) with ``--set`` values as fixed parameters; its run folder lands
in ``--out`` like any other, so a point shared with another sweep or an earlier ``run`` is reused,
never regenerated, and the reference features are computed once (feature cache and the waiting
reference-folder lock).

The sweep itself lives in ``<out>/sweep-<model>-<suite>-<hash of the grid spec>/``:

``sweep.json``
    the grid spec, the evaluation options and, per point, its values, run folder (relative to
    the sweep folder), evaluation id, status (``ok`` · ``partial``: some clips failed ·
    ``failed``: the run raised, with its error and fix · ``pending`` while running) and metrics.
``sweep.csv``
    one row per point × metric: the parameter columns, ``metric``, ``value``, ``ci_low``,
    ``ci_high``, ``n``, ``unit``, ``status`` (the metric's), ``reason``, ``point``,
    ``point_status`` and ``run_dir``.
``report.html``
    every metric against the parameters with CI bands, trade-off plots, and a table of points
    linking to each run's report (see :mod:`mova_bench.report.sweep`).

Like a run folder's top level, the sweep folder shows the latest evaluation: the folder name
depends on what generation depends on (model, suite, seed, samples per prompt, the grid and the
fixed parameters), so rerunning with other ``--metrics`` rescores the same runs and rewrites it.

One executor serves the whole sweep (a process pool starts once, not once per point), and
``--concurrent-points N`` runs N points at once on it (``pool`` with ≥ 2 workers or ``ray``; each
point's results are those of a sequential sweep, see :func:`run_sweep`).

Every point is validated (the generator is constructed with its parameters, and checks each
request) before any run starts: an unknown key or a value the generator can't take is exit 2 and
nothing is created. A point whose run raises :class:`MovaBenchError` is recorded with its error
and the sweep goes on; the exit code is 3 when any point failed or had failed clips.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mova_bench.console import log
from mova_bench.errors import ConfigError, MovaBenchError
from mova_bench.executors.base import DEFAULT_EXECUTOR

EXIT_OK, EXIT_USAGE, EXIT_POINTS_FAILED = 0, 2, 3
#: bump when the meaning of a grid spec changes (the sweep folder name changes with it)
SWEEP_SPEC_VERSION = 1
#: columns of sweep.csv after the parameter columns
CSV_COLUMNS = ("metric", "value", "ci_low", "ci_high", "n", "unit", "status", "reason", "point", "point_status", "run_dir")


# ---------------------------------------------------------------------------------------------
# command line


def parse_param(text: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2,...`` → ``(KEY, [V1, V2, ...])``; values stay strings (the generator coerces)."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=V1,V2,..., e.g. --param av_offset_ms=0,100,200")
    values = [v.strip() for v in rest.split(",")]
    if not rest.strip() or any(not v for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: empty value; expected KEY=V1,V2,..., e.g. --param {key}=0,100,200")
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise argparse.ArgumentTypeError(f"{text!r}: value {', '.join(dup)} given twice")
    return key, values


def _csv_list(v: str) -> list[str]:
    return [x.strip() for x in v.split(",") if x.strip()]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to the CLI's subparsers (the parser class raises SystemExit(2))."""
    p = subparsers.add_parser(
        "sweep", help="run a model over a grid of generator parameters and report every metric against them",
        description="One ordinary, resumable run per point of the grid (the cartesian product of the --param "
                    "lists); a sweep folder <out>/sweep-<model>-<suite>-<hash>/ with sweep.json, sweep.csv and "
                    "report.html. Exit 3 when a point failed or had failed clips.")
    p.add_argument("--model", required=True, help="model name (see `mova-bench list models`) or a model card .yaml")
    p.add_argument("--suite", required=True, help="suite name (see `mova-bench list suites`) or a suite .yaml")
    p.add_argument("--param", action="append", required=True, type=parse_param, metavar="KEY=V1,V2,...",
                   help="a swept generator parameter and its values, repeatable (the grid is their product)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed generator parameter, repeatable")
    p.add_argument("--out", default="runs", help="folder that holds the run folders and the sweep folder (default: runs/)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: the suite's)")
    p.add_argument("--samples-per-prompt", type=int, default=None)
    p.add_argument("--metrics", type=_csv_list, default=None, help="comma-separated metric names (default: all)")
    p.add_argument("--backbones", default="auto", choices=["auto", "classical", "standard"],
                   help="classical: weight-free; standard: I3D/VGGish/...; auto: standard where installed, else classical")
    p.add_argument("--reference", default=None, help="folder of reference clips or a statistics .npz (default: the suite's)")
    p.add_argument("--executor", default=DEFAULT_EXECUTOR, help="how per-clip tasks run: pool (default) or local")
    p.add_argument("--workers", type=int, default=None, help="worker processes of the pool (default: one per usable core)")
    p.add_argument("--concurrent-points", type=int, default=1, metavar="N",
                   help="grid points run at once, sharing the executor's workers (default 1; needs --executor pool "
                        "or ray, and analysis on the CPU)")
    p.add_argument("--no-cache", action="store_true", help="recompute features instead of using the feature cache")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    from mova_bench.cli import add_device_options, add_profile_option

    add_device_options(p)
    add_profile_option(p)
    return p


def main(args: argparse.Namespace) -> int:
    """Run the sweep the parsed ``args`` describe; MovaBenchError (exit 2) propagates to the CLI."""
    from mova_bench.pipeline import parse_set

    outcome = run_sweep(
        args.model, args.suite, grid=list(args.param or []), fixed=parse_set(getattr(args, "set", None) or []),
        out=getattr(args, "out", "runs"), seed=getattr(args, "seed", None),
        samples_per_prompt=getattr(args, "samples_per_prompt", None), metrics=getattr(args, "metrics", None),
        backbones=getattr(args, "backbones", "auto"), reference=getattr(args, "reference", None),
        executor=getattr(args, "executor", DEFAULT_EXECUTOR), use_cache=not getattr(args, "no_cache", False),
        workers=getattr(args, "workers", None), device=getattr(args, "device", "auto"),
        batch_size=getattr(args, "batch_size", None), profile=getattr(args, "profile", None),
        concurrent_points=getattr(args, "concurrent_points", 1))
    if getattr(args, "json", False):
        print(json.dumps(outcome.to_json()))
    else:
        _print_human(outcome)
    return outcome.exit_code


# ---------------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepOutcome:
    sweep_dir: Path
    params: dict[str, list[str]]
    points: list[dict[str, Any]]
    report: Path
    metric_keys: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_POINTS_FAILED if any(p["status"] != "ok" for p in self.points) else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_dir": str(self.sweep_dir), "params": self.params,
            "points": [{"values": p["values"], "label": p["label"], "run_dir": p.get("run_path"),
                        "evaluation": p.get("evaluation"), "metrics": p.get("metrics") or {}, "status": p["status"],
                        "error": p.get("error"), "fix": p.get("fix")} for p in self.points],
            "report": str(self.report),
        }


def point_label(values: dict[str, Any]) -> str:
    """``av_offset_ms=100, video_noise=0.1``: how a point is named everywhere (never by a hash)."""
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _plan(model: str, suite_name: str, grid: list[tuple[str, list[str]]], fixed: dict[str, Any], *,
          seed: int | None, samples_per_prompt: int | None, metrics: list[str] | None, backbones: str,
          reference: str | None, executor: str, device: str = "auto", batch_size: int | None = None,
          profile: str | None = None) -> dict[str, Any]:
    """Everything checked before any work: the grid, every point's generator, the evaluation options."""
    from mova_bench.cards import load_card
    from mova_bench.executors import get_executor
    from mova_bench.pipeline.reference import resolve_reference
    from mova_bench.pipeline.requests import build_requests, check_counts, generation_geometry
    from mova_bench.pipeline.scoring import select_metrics
    from mova_bench.suites import load_suite

    if not grid:
        raise ConfigError("sweep needs at least one --param KEY=V1,V2,...", fix="e.g. --param av_offset_ms=0,100,200")
    keys = [k for k, _ in grid]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"--param {', '.join(twice)} given more than once",
                          fix="give each swept parameter once, with all its values: --param KEY=V1,V2,...")
    both = sorted(set(keys) & set(fixed))
    if both:
        raise ConfigError(f"{', '.join(both)} is both swept (--param) and fixed (--set)", fix="drop one of them")
    suite = load_suite(suite_name)
    card = load_card(model)
    cls = card.adapter_class()
    seed = suite.defaults.seed if seed is None else seed
    n = suite.defaults.samples_per_prompt if samples_per_prompt is None else samples_per_prompt
    check_counts(seed, n)
    geometry = generation_geometry(suite, card)
    requests = build_requests(suite, card, seed=seed, samples_per_prompt=n, geometry=geometry)
    from mova_bench.profiles import apply_profile, resolve_profile

    metric_objs = apply_profile(profile, select_metrics(metrics, backbones, backbone_params=resolve_profile(profile).analysis))  # an unknown --profile exits 2 here
    from mova_bench.pipeline.runs import check_device

    resolved_device = check_device(device, batch_size, metric_objs)
    get_executor(executor)
    resolve_reference(suite, reference)

    points: list[dict[str, Any]] = []
    seen: dict[tuple, str] = {}
    generator = None
    for combo in itertools.product(*[vals for _, vals in grid]):
        values = dict(zip(keys, combo))
        label = point_label(values)
        try:
            generator = cls(card_defaults=card.defaults, card=card, **{**fixed, **values})
            for req in requests:
                generator.validate_request(req)
        except ConfigError as exc:
            raise ConfigError(f"sweep point {label}: {Exception.__str__(exc)}",
                              fix=exc.fix or "use --param/--set with the model's parameters and valid values") from None
        coerced = {k: generator.params[k] for k in keys}
        ident = json.dumps(generator.params, sort_keys=True, default=str)
        if ident in seen:
            raise ConfigError(f"sweep points {seen[ident]} and {label} are the same run (equal after conversion)",
                              fix="give each value of a --param once")
        seen[ident] = label
        points.append({"values": values, "params": coerced, "label": label})
    if generator is not None:
        generator.check_available()  # weights and packages: before any folder is made
    spec = {
        "kind": "sweep", "v": SWEEP_SPEC_VERSION, "model": card.name, "suite": suite.name,
        "suite_version": suite.version, "suite_fingerprint": suite.fingerprint(), "seed": seed,
        "samples_per_prompt": n, "grid": [[k, list(v)] for k, v in grid], "fixed": dict(sorted(fixed.items())),
    }
    return {"spec": spec, "card": card, "suite": suite, "seed": seed, "n": n, "points": points,
            "metric_keys": [m.key for m in metric_objs], "device": resolved_device}


def _run_point(model: str, suite: str, *, out: str | os.PathLike, params: dict[str, Any], **kw: Any):
    """One point's run (a seam for tests)."""
    from mova_bench.pipeline import run

    return run(model, suite, out=out, params=params, **kw)


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def run_sweep(model: str, suite_name: str, *, grid: list[tuple[str, list[str]]], fixed: dict[str, Any] | None = None,
              out: str | os.PathLike = "runs", seed: int | None = None, samples_per_prompt: int | None = None,
              metrics: list[str] | None = None, backbones: str = "auto", reference: str | None = None,
              executor: str = "local", use_cache: bool = True, workers: int | None = None,
              device: str = "auto", batch_size: int | None = None, profile: str | None = None,
              concurrent_points: int = 1) -> SweepOutcome:
    """Run every point of ``grid`` (resuming what exists) and write the sweep folder.

    One executor serves every point (a process pool starts once). ``concurrent_points`` > 1 runs
    that many points at once, in threads of this process that share the executor's workers: every
    task then runs in a worker (never in this process, whose BLAS threads must stay as they are for
    the metrics), so each point's results are those of a sequential sweep. It needs a parallel
    executor (``pool`` with ≥ 2 workers, or ``ray``) and analysis on the CPU; otherwise points run
    one after another. Points share the procedural reference: the first renders it, the others wait
    for its lock."""
    from mova_bench import __version__
    from mova_bench.pipeline.runs import OUT_FIX
    from mova_bench.report.sweep import write_sweep_report
    from mova_bench.store import ensure_folder, exclusive_folder, slug, spec_hash, write_json_atomic

    fixed = dict(fixed or {})
    grid = [(k, list(v)) for k, v in grid]
    plan = _plan(model, suite_name, grid, fixed, seed=seed, samples_per_prompt=samples_per_prompt, metrics=metrics,
                 backbones=backbones, reference=reference, executor=executor, device=device, batch_size=batch_size,
                 profile=profile)
    spec, card, suite, points = plan["spec"], plan["card"], plan["suite"], plan["points"]
    root = ensure_folder(Path(out), "output folder (--out)", fix=OUT_FIX)
    sweep_dir = ensure_folder(root / f"sweep-{slug(card.name)}-{slug(suite.name)}-{spec_hash(spec)}", "sweep folder", fix=OUT_FIX)
    evaluation = {"metrics": plan["metric_keys"], "backbones": backbones, "reference": reference}
    if profile not in (None, "", "default", "mova-bench"):  # recorded only when not the default (ids unchanged)
        evaluation["profile"] = profile
    doc: dict[str, Any] = {
        "kind": "sweep", "id": sweep_dir.name, "spec": spec, "evaluation": evaluation,
        "title": f"{card.display_name or card.name} on {suite.name} v{suite.version}: "
                 + " × ".join(k for k, _ in grid),
        "model": card.name, "learned": bool(card.learned), "suite": suite.name, "suite_version": suite.version,
        "params": {k: v for k, v in grid}, "fixed": fixed, "seed": plan["seed"], "samples_per_prompt": plan["n"],
        "mova_bench": __version__, "status": "running", "points": [],
        "csv": "sweep.csv", "report": "report.html",
    }
    for i, p in enumerate(points):
        p.update({"index": i, "status": "pending", "run_dir": None, "run_path": None, "evaluation": None,
                  "n_clips": None, "n_failed": None, "error": None, "fix": None, "metrics": {}, "notes": []})
    doc["points"] = points

    def save(status: str) -> None:
        doc["status"] = status
        doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json_atomic(sweep_dir / "sweep.json", {**doc, "points": [_public(p) for p in points]}, sort_keys=False)

    if isinstance(concurrent_points, bool) or not isinstance(concurrent_points, int) or concurrent_points < 1:
        raise ConfigError(f"--concurrent-points {concurrent_points!r}: expected an integer ≥ 1",
                          fix="e.g. --concurrent-points 2, or leave it out to run points one after another")
    import threading

    from mova_bench.pipeline.runs import _open_executor

    saving = threading.Lock()

    def one(i: int, p: dict[str, Any], ex: Any) -> None:
        log(f"sweep point {i + 1}/{len(points)}: {p['label']}")
        t0 = time.perf_counter()
        try:
            outcome = _run_point(model, suite_name, out=out, params={**fixed, **p["values"]},
                                 seed=plan["seed"], samples_per_prompt=plan["n"], backbones=backbones,
                                 metrics=metrics, executor=ex, use_cache=use_cache, reference=reference,
                                 workers=workers, device=device, batch_size=batch_size, profile=profile)
        except MovaBenchError as exc:
            msg = Exception.__str__(exc) if getattr(exc, "fix", None) else str(exc)
            p.update({"status": "failed", "error": msg or type(exc).__name__, "fix": getattr(exc, "fix", None)})
            log(f"sweep point {p['label']} failed: {p['error']}" + (f" (fix: {p['fix']})" if p["fix"] else ""))
        else:
            p.update({"status": "ok" if not outcome.n_failed else "partial",
                      "run_dir": _rel(outcome.run_dir, sweep_dir), "run_path": str(outcome.run_dir),
                      "evaluation": outcome.eval_id, "n_clips": outcome.n_clips, "n_failed": outcome.n_failed,
                      "metrics": outcome.metrics, "notes": list(outcome.notes)})
            if outcome.n_failed:
                log(f"sweep point {p['label']}: {outcome.n_failed} of {outcome.n_clips} clips failed")
        p["seconds"] = round(time.perf_counter() - t0, 3)
        with saving:
            save("running")

    with exclusive_folder(sweep_dir, what="sweep folder"), _open_executor(executor, workers) as ex:
        log(f"sweep folder: {sweep_dir} ({len(points)} point(s))")
        save("running")
        parallel = min(concurrent_points, len(points))
        if parallel > 1:
            why = _no_concurrency(ex, plan["device"], card)
            if why:
                log(f"sweep points run one after another: {why}")
                parallel = 1
        try:
            if parallel <= 1:
                for i, p in enumerate(points):
                    one(i, p, ex)
            else:
                from concurrent.futures import ThreadPoolExecutor

                ex.start()  # every task now runs in a worker, whichever point sends it
                with ThreadPoolExecutor(parallel, thread_name_prefix="mova-bench-sweep") as threads:
                    for fut in [threads.submit(one, i, p, ex) for i, p in enumerate(points)]:
                        fut.result()
        except BaseException:
            save("interrupted")
            raise
        n_bad = sum(p["status"] != "ok" for p in points)
        save("ok" if not n_bad else ("failed" if all(p["status"] == "failed" for p in points) else "partial"))
        write_csv(sweep_dir / "sweep.csv", [k for k, _ in grid], points, plan["metric_keys"])
        report = write_sweep_report(sweep_dir, {**doc, "points": [_public(p) for p in points]})
    return SweepOutcome(sweep_dir, {k: v for k, v in grid}, points, report, plan["metric_keys"])


def _no_concurrency(ex: Any, device: str, card: Any) -> str | None:
    """Why grid points cannot run at once on ``ex`` (None when they can)."""
    name = getattr(ex, "name", "")
    if getattr(getattr(card, "resources", None), "gpus", 0) and name != "ray":
        return f"{card.name} generates on a GPU, loaded once in this process"
    if name not in ("pool", "ray"):
        return f"--executor {name} runs tasks in this process (use --executor pool or ray)"
    if name == "pool" and getattr(ex, "workers", 1) < 2:
        return "the pool has one worker, which runs tasks in this process (use --workers 2 or more)"
    if device != "cpu":
        return f"pretrained backbones run on {device} in this process"
    return None


def _public(p: dict[str, Any]) -> dict[str, Any]:
    """A point as written to sweep.json (paths relative to the sweep folder)."""
    return {k: v for k, v in p.items() if k != "run_path"}


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)) else float("nan")


def csv_frame(keys: list[str], points: list[dict[str, Any]], metric_keys: list[str]):
    """The sweep as a pandas DataFrame: one row per point × metric."""
    import pandas as pd

    names = {k: (f"param_{k}" if k in CSV_COLUMNS else k) for k in keys}
    rows = []
    for p in points:
        metrics = p.get("metrics") or {}
        for key in [*metric_keys, *[k for k in metrics if k not in metric_keys]]:
            m = metrics.get(key)
            row = {names[k]: p["params"][k] for k in keys}
            if m is None:
                reason = p.get("error") if p["status"] == "failed" else "not computed"
                row.update({"metric": key, "value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                            "n": 0, "unit": "", "status": "failed" if p["status"] == "failed" else "missing",
                            "reason": reason})
            else:
                row.update({"metric": key, "value": _num(m.get("value")), "ci_low": _num(m.get("ci_low")),
                            "ci_high": _num(m.get("ci_high")), "n": int(m.get("n") or 0), "unit": m.get("unit") or "",
                            "status": m.get("status"), "reason": m.get("reason")})
            row.update({"point": p["label"], "point_status": p["status"], "run_dir": p.get("run_dir")})
            rows.append(row)
    return pd.DataFrame(rows, columns=[*names.values(), *CSV_COLUMNS])


def write_csv(path: Path, keys: list[str], points: list[dict[str, Any]], metric_keys: list[str]) -> None:
    from mova_bench.store import atomic_path

    frame = csv_frame(keys, points, metric_keys)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# ---------------------------------------------------------------------------------------------
# console


def _print_human(outcome: SweepOutcome) -> None:
    keys = outcome.metric_keys
    width = max((len(p["label"]) for p in outcome.points), default=10)
    print(f"{'point':<{width}}  {'status':<8}  " + "  ".join(f"{k:>18}" for k in keys), file=sys.stderr)
    for p in outcome.points:
        cells = []
        for k in keys:
            m = (p.get("metrics") or {}).get(k) or {}
            v = m.get("value")
            cells.append(f"{v:>18.4g}" if isinstance(v, (int, float)) else f"{(m.get('status') or '—'):>18}")
        print(f"{p['label']:<{width}}  {p['status']:<8}  " + "  ".join(cells), file=sys.stderr)
        if p["status"] == "failed":
            print(f"  error: {p['error']}" + (f"\n  fix: {p['fix']}" if p.get("fix") else ""), file=sys.stderr)
    bad = [p for p in outcome.points if p["status"] != "ok"]
    if bad:
        print(f"{len(bad)} of {len(outcome.points)} points failed or had failed clips", file=sys.stderr)
    print(f"report: {outcome.report}")
