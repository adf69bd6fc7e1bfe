"""``mova-bench`` command line: a thin layer over :mod:`mova_bench.pipeline`.

Exit codes: 0 all clips ok; 2 usage, configuration, missing dependency or weights (the message
names the fix); 3 finished but some clips failed (each recorded with its reason); 1 is reserved
for ``compare`` finding a regression.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mova_bench import __version__
from mova_bench.errors import MovaBenchError
from mova_bench.executors.base import DEFAULT_EXECUTOR

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_CLIPS_FAILED = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 already; keep it, with our prefix
        self.print_usage(sys.stderr)
        print(f"mova-bench: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _csv(v: str) -> list[str]:
    return [x.strip() for x in v.split(",") if x.strip()]


def add_profile_option(p: argparse.ArgumentParser) -> None:
    """``--profile NAME``: a metric's conventions as a set (run, evaluate, sweep); see docs/profiles.md."""
    from mova_bench.profiles import PROFILES

    p.add_argument("--profile", default=None, metavar="NAME",
                   help="metric conventions as a set, to reproduce a peer's numbers: " + ", ".join(PROFILES)
                        + " (default: mova-bench, ours); recorded in the evaluation spec and the report")


def _add_evaluation_options(p: argparse.ArgumentParser) -> None:
    """How clips are scored (an evaluation spec): shared by ``run`` and ``evaluate``."""
    p.add_argument("--metrics", type=_csv, default=None, help="comma-separated metric names (default: all)")
    p.add_argument("--backbones", default="auto", choices=["auto", "classical", "standard"],
                   help="classical: weight-free; standard: I3D/VGGish/CLIP/CLAP/... (exits 2 listing the `mova-bench weights "
                        "fetch`/`pip install` commands when something is missing); auto: standard where its weights and "
                        "packages are present, weight-free otherwise (the others reported skipped with their fix)")
    p.add_argument("--reference", default=None, help="folder of reference clips or a statistics .npz (default: the suite's)")
    add_profile_option(p)
    p.add_argument("--executor", default=DEFAULT_EXECUTOR,
                   help="how per-clip tasks run: pool (default: worker processes on this machine), local "
                        "(one after another in this process) or ray (Ray tasks on this machine or a cluster; see --address)")
    p.add_argument("--address", default=None,
                   help="with --executor ray: the Ray cluster (auto, host:port or ray://host:port; "
                        "default: $MOVA_BENCH_RAY_ADDRESS, else a Ray instance on this machine)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per usable core, at most one per 1.5 GiB of available memory; "
                        "1 runs in this process)")
    p.add_argument("--no-cache", action="store_true", help="recompute features instead of using the feature cache")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_device_options(p)


def add_device_options(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--batch-size`` of pretrained backbones (run, evaluate, sweep)."""
    p.add_argument("--device", default="auto",
                   help="torch device of pretrained backbones: auto (cuda when torch sees a GPU, else cpu), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=None,
                   help="clips per analysis task and per forward pass of pretrained backbones (default: 8 clips per task on "
                        "CUDA, 4 on CPU; OpenCLIP/InceptionV3 batch frames, VGGish 0.96 s examples); results do not depend on it")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mova-bench", description="Evaluate synchronized video+audio generators.")
    p.add_argument("--version", action="version", version=f"mova-bench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="generate a suite with a model and evaluate it")
    r.add_argument("--model", required=True, help="model name (see `mova-bench list models`) or a model card .yaml")
    r.add_argument("--suite", required=True, help="suite name (see `mova-bench list suites`) or a suite .yaml")
    r.add_argument("--out", default="runs", help="folder that holds run folders (default: runs/)")
    r.add_argument("--seed", type=int, default=None, help="base seed (default: the suite's)")
    r.add_argument("--samples-per-prompt", type=int, default=None)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="generator parameter, repeatable")
    _add_evaluation_options(r)

    e = sub.add_parser("evaluate", help="score a folder of clips generated elsewhere, or re-score an existing run")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--clips", help="folder of video files (optional prompts.jsonl inside)")
    src.add_argument("--run", help="an existing run folder: re-score its clips (never regenerated)")
    e.add_argument("--suite", default=None, help="suite naming the prompts (with --run: default the run's own)")
    e.add_argument("--out", default="runs", help="with --clips: folder that holds run folders (default: runs/)")
    _add_evaluation_options(e)

    lst = sub.add_parser("list", help="list models, suites, metrics or backbones")
    lst.add_argument("what", choices=["models", "suites", "metrics", "backbones", "executors"])
    lst.add_argument("--json", action="store_true")

    v = sub.add_parser("validate", help="check suites and model cards without generating anything")
    v.add_argument("paths", nargs="*", help="suite or model card files (default: every built-in one)")

    s = sub.add_parser("sanity", help="validate the metrics by controlled degradation of the procedural world")
    s.add_argument("--suite", default="impacts_set")
    s.add_argument("--out", default=None, help="where to keep the sanity runs (default: a cache folder)")
    s.add_argument("--json", action="store_true")

    ref = sub.add_parser("reference", help="reference sets")
    rsub = ref.add_subparsers(dest="ref_command", required=True, parser_class=_Parser)
    rb = rsub.add_parser("build", help="write precomputed reference statistics (.npz)")
    rsrc = rb.add_mutually_exclusive_group(required=True)
    rsrc.add_argument("--suite", help="the suite's reference set")
    rsrc.add_argument("--clips", help="a folder of real clips")
    rb.add_argument("--model", default=None, help="with --suite: render a procedural reference at this model's geometry")
    rb.add_argument("--out", required=True, help="output .npz file (never overwritten)")

    from mova_bench.sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    from mova_bench.compare import add_parser as add_compare_parser

    add_compare_parser(sub)
    from mova_bench.leaderboard import add_parser as add_leaderboard_parser

    add_leaderboard_parser(sub)
    from mova_bench.weights.cli import add_parser as add_weights_parser

    add_weights_parser(sub)
    return p


def _unavailable_summary(metrics: dict[str, dict[str, Any]]) -> tuple[list[str], str | None]:
    """(keys skipped only because their pretrained backbone is not installed here, one line naming
    them and every command that would make them run), so a default `auto` run on a machine without
    weights prints one note instead of a skipped line per standard metric."""
    keys = [k for k, m in metrics.items() if m.get("status") == "skipped"
            and ((m.get("extra") or {}).get("backbone_unavailable"))]
    if not keys:
        return [], None
    fixes: list[str] = []
    for k in keys:
        for part in str(metrics[k].get("fix") or "").split("; "):
            if part and part not in fixes:
                fixes.append(part)
    import re

    # plain fetches fold into one line; one with flags (a licence to accept) stays as written
    fetch = [f.split()[-1] for f in fixes if re.fullmatch(r"mova-bench weights fetch [\w.-]+", f)]
    extras = [m.group(1) for f in fixes for m in [re.fullmatch(r"pip install 'mova-bench\[([\w,-]+)\]'", f)] if m]
    other = [f for f in fixes if not re.fullmatch(r"mova-bench weights fetch [\w.-]+", f)
             and not re.fullmatch(r"pip install 'mova-bench\[[\w,-]+\]'", f)]
    how = ([f"pip install 'mova-bench[{','.join(dict.fromkeys(extras))}]'"] if extras else []) + \
          ([f"mova-bench weights fetch {' '.join(fetch)}" if len(fetch) == 1 else
            "mova-bench weights fetch NAME for " + ", ".join(fetch)] if fetch else []) + other
    line = (f"{len(keys)} standard-backbone metric(s) skipped, their pretrained weights or packages are not here "
            f"({', '.join(keys)}); to compute them: {'; '.join(how) or 'see the report'} "
            "(or --backbones classical to leave them out)")
    return keys, line


def _print_human(outcome) -> None:
    hidden, summary = _unavailable_summary(outcome.metrics)
    width = max((len(k) for k in outcome.metrics if k not in hidden), default=10)
    for key, m in outcome.metrics.items():
        if key in hidden:
            continue
        if m["status"] == "ok":
            ci = f"  95% CI [{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m.get("ci_low") is not None else ""
            print(f"  {key:<{width}}  {m['value']:.4g} {m.get('unit') or ''}{ci}  n={m['n']}", file=sys.stderr)
        else:
            print(f"  {key:<{width}}  {m['status']}: {m.get('reason')}", file=sys.stderr)
    if summary:
        print(f"  note: {summary}", file=sys.stderr)
    for note in outcome.notes:
        print(f"  {note}", file=sys.stderr)
    if outcome.n_failed:
        print(f"{outcome.n_failed} of {outcome.n_clips} clips failed; reasons are in per_clip.parquet and the report", file=sys.stderr)
    print(f"report: {outcome.run_dir / 'report.html'}")


def _list(what: str, as_json: bool) -> int:
    from mova_bench import registry
    from mova_bench.cards import available_cards
    from mova_bench.suites import available_suites, load_suite

    items: list[dict[str, Any]] = []
    if what == "models":
        seen = set()
        for name, card in sorted(available_cards().items()):
            if card.name in seen:
                continue
            seen.add(card.name)
            items.append({"name": card.name, "aliases": list(card.aliases), "adapter": card.adapter,
                          "description": " ".join(card.description.split())})
    elif what == "suites":
        for name, path in available_suites().items():
            s = load_suite(path)
            items.append({"name": name, "version": s.version, "prompts": len(s.prompts), "description": s.description, "path": str(path)})
    elif what == "metrics":
        for name in registry.metrics.names():
            cls = registry.metrics.get(name)
            items.append({"name": name, "display_name": cls.display_name, "unit": cls.unit,
                          "higher_is_better": cls.higher_is_better, "default_backbone": cls.default_backbone})
    elif what == "executors":
        import pkgutil

        import mova_bench.executors as ex_pkg
        from mova_bench.executors.base import executors as ex_registry

        names = set(ex_registry.names()) | {m.name for m in pkgutil.iter_modules(ex_pkg.__path__) if m.name not in ("base", "__init__")}
        for name in sorted(names):
            try:
                cls = ex_registry.get(name) if name in ex_registry else None
                if cls is None:
                    from mova_bench.executors.base import _discover

                    _discover(name)
                    cls = ex_registry.get(name) if name in ex_registry else None
            except MovaBenchError as exc:  # e.g. the ray extra is not installed
                items.append({"name": name, "description": f"unavailable: {exc}"})
                continue
            if cls is not None:
                doc = (cls.__doc__ or "").strip().splitlines()
                items.append({"name": name, "description": doc[0] if doc else ""})
    else:
        for name in registry.features.names():
            cls = registry.features.get(name)
            item = {"name": name, "kind": cls.kind, "modality": cls.modality, "family": cls.family,
                    "version": cls.version}
            item["display_name"] = getattr(cls, "display_name", "") or name
            if hasattr(cls, "missing_fixes"):  # a pretrained backbone: usable here, else the commands that fix it
                fixes = cls.missing_fixes()
                item.update(available=not fixes, fix="; ".join(fixes) or None, extra=getattr(cls, "extra", None),
                            weights=list(getattr(cls, "weights", ())))
            items.append(item)
    if as_json:
        print(json.dumps(items, indent=2))
    elif what == "backbones":
        print(f"{'name':<20} {'family':<10} {'kind':<10} {'display name':<34} here")
        for it in items:
            here = "ready" if it.get("available", True) else f"needs: {it['fix']}"
            print(f"{it['name']:<20} {it['family']:<10} {it['kind']:<10} {it['display_name']:<34} {here}")
    else:
        for it in items:
            desc = it.get("description") or it.get("display_name") or it.get("kind") or ""
            print(f"{it['name']:<22} {desc}")
    return EXIT_OK


def _validate(paths: list[str]) -> int:
    from mova_bench.cards import MODELS_DIR, load_card
    from mova_bench.config_files import read_yaml_mapping
    from mova_bench.suites import available_suites, load_suite

    targets = [Path(p) for p in paths] or [*available_suites().values(), *sorted(MODELS_DIR.glob("*.yaml"))]
    bad = 0
    for t in targets:
        try:
            if not t.is_file():
                raise MovaBenchError(f"{t}: no such file")
            if "adapter" in read_yaml_mapping(t, "suite or model card", "'name' and 'prompts' (suite) or 'adapter' (model card)"):
                card = load_card(str(t))
                card.adapter_class()
                print(f"ok   model {card.name}  ({t})")
            else:
                s = load_suite(str(t))
                print(f"ok   suite {s.name} v{s.version}: {len(s.prompts)} prompts  ({t})")
        except MovaBenchError as exc:
            bad += 1
            print(f"FAIL {t}\n{exc}", file=sys.stderr)
    return EXIT_USAGE if bad else EXIT_OK


def _error_json(code: int, error: str, fix: str | None) -> str:
    return json.dumps({"status": "error", "exit_code": code, "error": error, "fix": fix})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if wants_json and code != 0:
            print(_error_json(code, "invalid command line (see the usage on stderr)", "mova-bench --help"))
        return code
    try:
        return _dispatch(args)
    except MovaBenchError as exc:
        msg = Exception.__str__(exc) if getattr(exc, "fix", None) else str(exc)
        fix = getattr(exc, "fix", None)
        print(f"mova-bench: error: {msg}" + (f"\n  fix: {fix}" if fix else ""), file=sys.stderr)
        if getattr(args, "json", False):
            print(_error_json(exc.exit_code, msg, fix))
        return exc.exit_code
    except OSError as exc:  # a file system refusal the pipeline did not foresee: one line, never a traceback
        where = f" {exc.filename!r}" if exc.filename else ""
        msg = f"cannot use{where}: {exc.strerror or exc}"
        fix = "check the path's permissions and free space, or choose another --out / MOVA_BENCH_HOME"
        print(f"mova-bench: error: {msg}\n  fix: {fix}", file=sys.stderr)
        if getattr(args, "json", False):
            print(_error_json(EXIT_USAGE, msg, fix))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mova-bench: interrupted; rerun the same command to resume", file=sys.stderr)
        if getattr(args, "json", False):
            print(_error_json(130, "interrupted", "rerun the same command to resume"))
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if getattr(args, "address", None):
        import os

        from mova_bench.errors import ConfigError

        if args.executor != "ray":
            raise ConfigError(f"--address applies to --executor ray, not {args.executor!r}", fix="add --executor ray or drop --address")
        os.environ["MOVA_BENCH_RAY_ADDRESS"] = args.address
    if args.command == "run":
        from mova_bench.pipeline import parse_set, run

        outcome = run(args.model, args.suite, out=args.out, seed=args.seed,
                      samples_per_prompt=args.samples_per_prompt, params=parse_set(args.set),
                      backbones=args.backbones, metrics=args.metrics, executor=args.executor,
                      use_cache=not args.no_cache, reference=args.reference, workers=args.workers,
                      device=args.device, profile=args.profile, batch_size=args.batch_size)
    elif args.command == "evaluate":
        from mova_bench.pipeline import evaluate, evaluate_run

        if args.run:
            outcome = evaluate_run(args.run, suite_name=args.suite, reference=args.reference,
                                   backbones=args.backbones, metrics=args.metrics, executor=args.executor,
                                   use_cache=not args.no_cache, workers=args.workers, device=args.device,
                                   profile=args.profile, batch_size=args.batch_size)
        else:
            outcome = evaluate(args.clips, suite_name=args.suite, reference=args.reference, out=args.out,
                               backbones=args.backbones, metrics=args.metrics, executor=args.executor,
                               use_cache=not args.no_cache, workers=args.workers, device=args.device,
                               profile=args.profile, batch_size=args.batch_size)
    elif args.command == "list":
        return _list(args.what, args.json)
    elif args.command == "validate":
        return _validate(args.paths)
    elif args.command == "sanity":
        from mova_bench.sanity import run_sanity

        report = run_sanity(args.suite, out=args.out)
        if args.json:
            print(json.dumps(report))
        else:
            for c in report["checks"]:
                mark = "PASS" if c["passed"] else "FAIL"
                print(f"{mark}  {c['metric']:<20} vs {c['knob']:<14} values={c['values']} measured={c['measured']}  {c.get('expect', '')}")
            print("all checks passed" if report["passed"] else "some checks FAILED")
        return EXIT_OK if report["passed"] else EXIT_REGRESSION
    elif args.command == "sweep":
        from mova_bench.sweep import main as sweep_main

        return sweep_main(args)
    elif args.command == "compare":
        from mova_bench.compare import main as compare_main

        return compare_main(args)
    elif args.command == "leaderboard":
        from mova_bench.leaderboard import main as leaderboard_main

        return leaderboard_main(args)
    elif args.command == "weights":
        from mova_bench.weights.cli import main as weights_main

        return weights_main(args)
    elif args.command == "reference":
        from mova_bench.pipeline.reference import build_reference_stats

        path = build_reference_stats(args.out, suite_name=args.suite, clips=args.clips, model=args.model)
        print(str(path))
        return EXIT_OK
    else:  # pragma: no cover - argparse enforces the choices
        return EXIT_USAGE
    if args.json:
        print(json.dumps(outcome.to_json()))
    else:
        _print_human(outcome)
    return outcome.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
