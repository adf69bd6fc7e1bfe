"""``mova-bench leaderboard add RUN...`` and ``mova-bench leaderboard build``: a static leaderboard.

A leaderboard is a folder (default ``leaderboard/``) meant to live in a repository:

``entries/*.json``
    one file per (run, evaluation group), written by ``add``: the run's latest evaluation (or the
    ``evals/<id>/`` folder given) — every metric's value, 95% CI, n, status, reason and unit; the
    model, its parameters and whether it is learned; suite and version; backbones, metric
    profile, evaluation id, reference kind and domain; seed, samples per prompt; provenance
    (mova-bench version, git commit, evaluation date). Sorted keys, indent 2, no absolute paths
    (the run is named by its id, a reference by its folder or file name), so an entry reads well
    in a pull request. The file name is ``<model>-<suite>-v<version>-<run hash>-<backbones>.json``
    (plus the profile when not ``default`` and the reference when not the suite's procedural one):
    adding the same run again rewrites the same file; re-scoring it with other backbones adds a
    second file, shown in another table.
``schema.json``
    the board's schema, created by ``build`` when missing and then the user's to edit: the main
    metric (a global default and per-suite overrides) and the column order, as metric names
    (``fd_video``) or full keys (``fd_video[vstats]``). Display names, units and directions are
    never written here: they come from the metric classes through the registry.
``index.html``, ``leaderboard.csv``, ``leaderboard.md``
    written by ``build``. Entries are grouped by (suite, suite version, backbones, metric profile,
    evaluation spec version, reference, suite fingerprint): rows of different groups are never
    ranked together — each group is its own table under its own heading. Within a group rows are
    ranked by the main metric in its direction (``higher_is_better`` None: closer to 0 is
    better); rows without a value of the main metric are listed unranked. A missing value is
    ``—`` with its reason (a title attribute in HTML), never 0; a skipped metric stays skipped.

The page is one self-contained file (no external script, stylesheet or font; an inline sorting
script allowed by a Content-Security-Policy naming its hash), escapes all user text, has a
viewport meta and scrolls each table in its own container on narrow screens.

Exit codes: 0 done; 2 a folder that is not an evaluated run, an unreadable entry or schema, or a
folder that can't be written — one line naming it, then ``fix: …``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from mova_bench.errors import ConfigError, MovaBenchError

EXIT_OK, EXIT_USAGE = 0, 2
ENTRY_VERSION = 1
SCHEMA_VERSION = 1
DEFAULT_DIR = "leaderboard"
#: the default schema's main metric, and its per-suite overrides (a suite with nothing to sync)
DEFAULT_MAIN_METRIC = "sync_offset_abs_ms"
DEFAULT_MAIN_PER_SUITE = {"ambience_set": "fd_audio"}
RUN_FIX = ("give a run folder printed by `mova-bench run` or `mova-bench evaluate` (runs/<run>/), "
           "or one of its evaluations (runs/<run>/evals/<id>/)")
#: what a metric's entry records from metrics.json
METRIC_FIELDS = ("value", "ci_low", "ci_high", "n", "unit", "status", "reason", "display_name", "higher_is_better")
ORACLE_NOTE = ("not a learned model: the procedural world renders clips whose sound events are aligned with "
               "visual events by construction (an oracle that validates the metrics)")


# --------------------------------------------------------------------------- command line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``leaderboard`` (with ``add`` and ``build``) to the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser(
        "leaderboard", help="a static leaderboard of runs: add run entries, build the HTML/CSV/Markdown board",
        description="Keep a leaderboard folder: `add` writes one reviewable JSON entry per run into <dir>/entries/, "
                    "`build` writes <dir>/index.html, leaderboard.csv and leaderboard.md (and a default "
                    "<dir>/schema.json when missing). Runs with different backbones, metric profiles or suite "
                    "versions are never ranked together.")
    sub = p.add_subparsers(dest="lb_command", required=True, metavar="{add,build}")
    a = sub.add_parser("add", help="add (or update) the entries of evaluated run folders",
                       description="Write <dir>/entries/<model>-<suite>-v<version>-<run hash>-<backbones>.json for "
                                   "each run's latest evaluation (or the evals/<id>/ folder given). Adding a run "
                                   "again updates its entry.")
    a.add_argument("runs", nargs="+", metavar="RUN", help="run folder (runs/<run>/) or one of its evals/<id>/ folders")
    a.add_argument("--dir", default=DEFAULT_DIR, help=f"leaderboard folder (default: {DEFAULT_DIR}/)")
    b = sub.add_parser("build", help="write index.html, leaderboard.csv and leaderboard.md from the entries",
                       description="Read <dir>/entries/*.json and <dir>/schema.json (created with defaults when "
                                   "missing) and write <dir>/index.html, <dir>/leaderboard.csv, <dir>/leaderboard.md.")
    b.add_argument("--dir", default=DEFAULT_DIR, help=f"leaderboard folder (default: {DEFAULT_DIR}/)")
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``leaderboard add`` or ``leaderboard build``; a MovaBenchError is one line plus its fix (exit 2)."""
    try:
        if args.lb_command == "add":
            for line in add_runs(args.runs, args.dir):
                print(line)
            print(f"now rebuild the board: mova-bench leaderboard build --dir {args.dir}", file=sys.stderr)
            return EXIT_OK
        if args.lb_command == "build":
            written = build(args.dir)
            for path in written:
                print(str(path))
            return EXIT_OK
    except MovaBenchError as exc:
        fix = getattr(exc, "fix", None)
        msg = Exception.__str__(exc)
        print(f"mova-bench: error: {msg}" + (f"\n  fix: {fix}" if fix else ""), file=sys.stderr)
        return exc.exit_code
    raise ConfigError(f"unknown leaderboard command {args.lb_command!r}")  # pragma: no cover - argparse enforces it


# --------------------------------------------------------------------------- small helpers


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _base(key: str) -> str:
    return key.split("[", 1)[0]


def _backbone(key: str) -> str | None:
    return key.split("[", 1)[1].rstrip("]") if "[" in key else None


_ABS_PATH = re.compile(r"(?<![\w.~])(?:~|[A-Za-z]:)?(?:[/\\][^\s'\"/\\,;:()\[\]]+){2,}[/\\]?")


def _scrub(obj: Any) -> Any:
    """Absolute paths of this machine → ``…/<last component>``, recursively (entries are committed)."""
    if isinstance(obj, str):
        return _ABS_PATH.sub(lambda m: "…/" + re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1], obj)
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v) for v in obj]
    return obj


def _read_json(path: Path, what: str, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {str(path)!r} cannot be read ({exc})", fix=fix) from None


# --------------------------------------------------------------------------- add


def read_run(path: str | Path) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(run folder, evaluation's metrics.json, run_spec.json, provenance.json or {}) of a run folder
    or of one of its ``evals/<id>/`` folders; ConfigError (exit 2) when it is not an evaluated run."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(f"{str(path)!r} is not a folder", fix=RUN_FIX)
    run_dir = p
    if p.parent.name == "evals" and (p.parent.parent / "run_spec.json").is_file():
        run_dir = p.parent.parent
    if not (run_dir / "run_spec.json").is_file():
        raise ConfigError(f"{str(path)!r} is not a run folder (no run_spec.json)", fix=RUN_FIX)
    if not (p / "metrics.json").is_file():
        raise ConfigError(f"{str(path)!r} has not been evaluated (no metrics.json)",
                          fix=f"score it first: mova-bench evaluate --run {run_dir}")
    refix = f"re-score it: mova-bench evaluate --run {run_dir}"
    doc = _read_json(p / "metrics.json", "metrics file", refix)
    run_spec = _read_json(run_dir / "run_spec.json", "run spec", RUN_FIX)
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict) or not isinstance(doc.get("header"), dict):
        raise ConfigError(f"{str(p / 'metrics.json')!r} holds no metrics and header", fix=refix)
    prov = {}
    if (p / "provenance.json").is_file():
        prov = _read_json(p / "provenance.json", "provenance file", refix)
    return run_dir, doc, run_spec if isinstance(run_spec, dict) else {}, prov if isinstance(prov, dict) else {}


def _display_name(header: dict[str, Any], run_spec: dict[str, Any], fallback: str) -> str:
    """The model's display name: the run title (``<display name> on <suite> v<version> (params)``) up to the
    suite; a re-scored run's title names the model by its card name, so then the card's display name."""
    title = str(header.get("title") or "")
    suite = header.get("suite")
    name = title
    if suite:
        i = title.rfind(f" on {suite} v{header.get('suite_version')}")
        name = title[:i] if i > 0 else ""
    model = header.get("model")
    if model and name in ("", model):
        from mova_bench.cards import load_card

        for source in (run_spec.get("model_card"), model):
            try:
                card = load_card(str(source)) if source and (source == model or Path(str(source)).is_file()) else None
            except MovaBenchError:
                card = None
            if card is not None and card.name == model:
                return card.display_name or model
    return name or fallback


def _resolved_backbones(option: Any, keys: list[str]) -> str:
    """``auto`` resolved to the family it meant, read off the metric keys (standard where any key names one)."""
    if option in ("classical", "standard"):
        return option
    try:
        from mova_bench.pipeline.scoring import BACKBONE_SETS

        standard = set(BACKBONE_SETS["standard"].values())
    except Exception:  # noqa: BLE001 - a stripped-down install: the option as given
        return str(option or "auto")
    used = {b for k in keys for b in (_backbone(k) or "").split("+") if b}
    return "standard" if used & standard else "classical"


def _reference(doc: dict[str, Any], spec_ref: dict[str, Any]) -> dict[str, Any]:
    ref = {**(spec_ref or {}), **(doc.get("reference") or {})}
    out: dict[str, Any] = {k: ref.get(k) for k in ("kind", "domain", "n_clips", "n_failed", "samples_per_prompt",
                                                     "seed", "geometry") if ref.get(k) is not None}
    out.setdefault("kind", None)
    if ref.get("path") and ref.get("kind") != "procedural":  # a procedural reference's path is a cache folder
        out["name"] = re.split(r"[/\\]", str(ref["path"]).rstrip("/\\"))[-1]
    return out


def reference_label(ref: dict[str, Any]) -> str:
    kind = ref.get("kind")
    if kind is None:
        return "no reference"
    if kind == "procedural":
        bits = [f"{ref['samples_per_prompt']} per prompt" if ref.get("samples_per_prompt") is not None else None,
                f"seed {ref['seed']}" if ref.get("seed") is not None else None]
        bits = [b for b in bits if b]
        return "procedural oracle world" + (f" ({', '.join(bits)})" if bits else "")
    return f"{kind} {ref.get('name') or ''}".strip() + (f" ({ref['domain']})" if ref.get("domain") else "")


def make_entry(run_dir: Path, doc: dict[str, Any], run_spec: dict[str, Any], prov: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard entry of one evaluation of a run (see the module docstring)."""
    from mova_bench.store import sanitize_floats

    header = doc.get("header") or {}
    spec = run_spec.get("spec") or {}
    ev = doc.get("evaluation") or {}
    es = ev.get("spec") or {}
    metrics = doc.get("metrics") or {}
    run_id = str(header.get("run_id") or run_dir.name)
    model = header.get("model") or spec.get("model")
    kind = header.get("kind") or spec.get("kind")
    keys = list(metrics)
    entry = {
        "entry_version": ENTRY_VERSION,
        "run_id": run_id,
        "run_kind": kind,
        "model": model,
        "model_display_name": _display_name(header, run_spec, str(model or run_id)),
        "model_params": _scrub(header.get("model_params") or spec.get("model_params") or {}),
        "set_params": _scrub(header.get("set") or run_spec.get("set") or {}),
        "learned": bool(header.get("learned", run_spec.get("learned", True))),
        "suite": header.get("suite") or spec.get("suite"),
        "suite_version": None if (header.get("suite_version") or spec.get("suite_version")) is None
        else str(header.get("suite_version") or spec.get("suite_version")),
        "suite_fingerprint": spec.get("suite_fingerprint") or (es.get("reference") or {}).get("suite_fingerprint"),
        "seed": header.get("seed", spec.get("seed")),
        "samples_per_prompt": header.get("samples_per_prompt", spec.get("samples_per_prompt")),
        "geometry": header.get("geometry"),
        "evaluation": {
            "id": ev.get("id"),
            "spec_version": es.get("v"),
            "backbones": es.get("backbones"),
            # keys skipped because their pretrained backbone is unavailable do not make an `auto` run "standard"
            "backbones_resolved": _resolved_backbones(es.get("backbones"), [
                k for k in keys if not (((metrics.get(k) or {}).get("extra") or {}).get("backbone_unavailable"))]),
            "profile": es.get("profile") or "default",
            "metrics": list(es.get("metrics") or keys),
        },
        "reference": _reference(doc, es.get("reference") or {}),
        "status": doc.get("status"),
        "n_clips": doc.get("n_clips"),
        "n_failed": doc.get("n_failed") or 0,
        "failures": doc.get("failures") or {},
        "metrics": {k: _scrub({**{f: (m or {}).get(f) for f in METRIC_FIELDS},
                               **({"rank_value": ((m or {}).get("extra") or {}).get("rank_value")}
                                  if ((m or {}).get("extra") or {}).get("rank_value") is not None else {})})
                    for k, m in metrics.items()},
        "warnings": _scrub(list(doc.get("warnings") or [])),
        "provenance": {
            "mova_bench": prov.get("mova_bench") or run_spec.get("mova_bench"),
            "git_commit": prov.get("git_commit"),
            "python": prov.get("python"),
            "evaluated": doc.get("written"),
        },
    }
    return sanitize_floats(entry)


def entry_filename(entry: dict[str, Any]) -> str:
    """``<model>-<suite>-v<version>-<run hash>-<backbones>[-<profile>][-ref-…].json``: one per run and board group."""
    from mova_bench.store import slug, spec_hash

    ev = entry.get("evaluation") or {}
    ref = entry.get("reference") or {}
    run_hash = str(entry["run_id"]).rsplit("-", 1)[-1]
    parts = [slug(str(entry.get("model") or entry.get("model_display_name") or "clips")),
             slug(str(entry.get("suite") or "no-suite")), f"v{slug(str(entry.get('suite_version') or 'none'))}",
             slug(run_hash), slug(str(ev.get("backbones_resolved") or ev.get("backbones") or "auto"))]
    if (ev.get("profile") or "default") != "default":
        parts.append(slug(str(ev["profile"])))
    if ref.get("kind") != "procedural":
        parts.append(f"ref-{slug(str(ref.get('kind') or 'none'))}-{spec_hash(reference_label(ref), 6)}")
    return "-".join(parts) + ".json"


def add_runs(paths: list[str], directory: str | Path) -> list[str]:
    """Write the entries of every run in ``paths`` (all are read first: one bad folder writes nothing)."""
    from mova_bench.store import ensure_folder, write_json_atomic

    entries = [make_entry(*read_run(p)) for p in paths]
    out = ensure_folder(Path(directory) / "entries", "leaderboard entries folder",
                        fix="choose a writable --dir (default: leaderboard/)")
    lines = []
    for entry in entries:
        path = out / entry_filename(entry)
        new = json.dumps(entry, indent=2, sort_keys=True, allow_nan=False) + "\n"
        if path.is_file():
            old = path.read_text(encoding="utf-8", errors="replace")
            state = "unchanged" if old == new else "updated"
        else:
            state = "added"
        if state != "unchanged":
            write_json_atomic(path, entry)
        flag = f" ({entry['n_failed']} of {entry['n_clips']} clips failed)" if entry.get("n_failed") else ""
        lines.append(f"{state}: {path}{flag}")
    return lines


# --------------------------------------------------------------------------- schema


def _default_columns() -> list[str]:
    from mova_bench import registry
    from mova_bench.pipeline.scoring import DEFAULT_METRICS

    names = [DEFAULT_MAIN_METRIC, *DEFAULT_METRICS, *registry.metrics.names()]
    return list(dict.fromkeys(names))  # the main metric first, then the order `mova-bench run` scores them in


def default_schema() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "title": "mova-bench leaderboard",
        "main_metric": {"default": DEFAULT_MAIN_METRIC, "per_suite": dict(DEFAULT_MAIN_PER_SUITE)},
        "columns": _default_columns(),
        "help": ("main_metric: the metric rows are ranked by (a name such as fd_video, or a full key such as "
                 "fd_video[vstats]); per_suite overrides the default for a suite. columns: the order of the metric "
                 "columns after the main one; metrics not listed follow in name order. Display names, units and "
                 "directions come from the metric classes, never from this file."),
    }


def _check_metric_name(name: Any, where: str, path: Path) -> str:
    from mova_bench import registry
    from mova_bench.registry import did_you_mean

    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: {where} must be a metric name, not {name!r}",
                          fix="use a name from `mova-bench list metrics`, e.g. sync_offset_abs_ms")
    if _base(name) not in registry.metrics:
        raise ConfigError(f"{path}: {where} {name!r} is not a metric.{did_you_mean(_base(name), registry.metrics.names())}",
                          fix=f"use a name from `mova-bench list metrics` ({', '.join(registry.metrics.names())})")
    return name


def load_schema(directory: Path) -> dict[str, Any]:
    """``<dir>/schema.json``, written with the defaults when missing; validated (exit 2 names the problem)."""
    from mova_bench.store import write_json_atomic

    path = directory / "schema.json"
    if not path.exists():
        write_json_atomic(path, default_schema(), sort_keys=False)
    fix = f"correct {path} or delete it: `mova-bench leaderboard build` writes the default one"
    schema = _read_json(path, "leaderboard schema", fix)
    if not isinstance(schema, dict):
        raise ConfigError(f"{path}: expected a JSON object", fix=fix)
    main = schema.get("main_metric", DEFAULT_MAIN_METRIC)
    if isinstance(main, str):
        main = {"default": main, "per_suite": {}}
    if not isinstance(main, dict) or not isinstance(main.get("per_suite", {}), dict):
        raise ConfigError(f"{path}: main_metric must be a name or {{\"default\": NAME, \"per_suite\": {{SUITE: NAME}}}}",
                          fix=fix)
    default = _check_metric_name(main.get("default", DEFAULT_MAIN_METRIC), "main_metric.default", path)
    per_suite = {str(s): _check_metric_name(n, f"main_metric.per_suite.{s}", path)
                 for s, n in (main.get("per_suite") or {}).items()}
    columns = schema.get("columns", _default_columns())
    if not isinstance(columns, list):
        raise ConfigError(f"{path}: columns must be a list of metric names", fix=fix)
    columns = [_check_metric_name(c, "columns entry", path) for c in columns]
    return {"title": str(schema.get("title") or "mova-bench leaderboard"), "main_default": default,
            "main_per_suite": per_suite, "columns": columns}


# --------------------------------------------------------------------------- build: the model of the board


def load_entries(directory: Path) -> list[dict[str, Any]]:
    entries = []
    folder = directory / "entries"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        fix = f"re-add its run (mova-bench leaderboard add RUN --dir {directory}) or delete {path}"
        e = _read_json(path, "leaderboard entry", fix)
        if not isinstance(e, dict) or not isinstance(e.get("metrics"), dict) or not e.get("run_id") \
                or not isinstance(e.get("evaluation"), dict):
            raise ConfigError(f"{path} is not a leaderboard entry (no run_id, evaluation and metrics)", fix=fix)
        if int(e.get("entry_version") or 0) > ENTRY_VERSION:
            raise ConfigError(f"{path} was written by a newer mova-bench (entry version {e.get('entry_version')})",
                              fix="upgrade mova-bench")
        e["_file"] = path.name
        entries.append(e)
    return entries


def group_key(e: dict[str, Any]) -> tuple[str, ...]:
    ev = e.get("evaluation") or {}
    return (str(e.get("suite") or ""), str(e.get("suite_version") or ""),
            str(ev.get("backbones_resolved") or ev.get("backbones") or ""), str(ev.get("profile") or "default"),
            str(ev.get("spec_version") or ""), reference_label(e.get("reference") or {}),
            str(e.get("suite_fingerprint") or ""))


def column_meta(key: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Display name, unit, direction and convention of a metric key: from its class through the registry;
    from what the entries recorded only when the class is not installed (a plugin's)."""
    from mova_bench import registry

    base, bb = _base(key), _backbone(key)
    try:
        if base in registry.metrics:
            cls = registry.metrics.get(base)
            res = cls(backbone=bb).result(None, status="skipped")
            convention = (res.convention or cls.convention or "").replace("{backbone}", bb or "")
            return {"display_name": res.display_name or cls.display_name or key, "unit": res.unit or "",
                    "higher_is_better": res.higher_is_better, "convention": convention, "source": "registry"}
    except MovaBenchError:
        pass
    rec = next(((e["metrics"].get(key) or {}) for e in entries if e["metrics"].get(key)), {})
    return {"display_name": rec.get("display_name") or key, "unit": rec.get("unit") or "",
            "higher_is_better": rec.get("higher_is_better"), "convention": "", "source": "entry"}


def direction(h: Any) -> tuple[str, str, str]:
    """(arrow, words, sort direction) of a metric's ``higher_is_better``."""
    if h is True:
        return "↑", "higher is better", "desc"
    if h is False:
        return "↓", "lower is better", "asc"
    return "→0", "closer to 0 is better", "abs"


def _badness(v: float, h: Any) -> float:
    return -v if h is True else v if h is False else abs(v)


def _ok_value(m: dict[str, Any] | None) -> float | None:
    if not m or m.get("status") != "ok" or not _is_num(m.get("value")):
        return None
    return float(m["value"])


def _rank_value(m: dict[str, Any] | None) -> float | None:
    """What a row is ranked by: the metric's own ranking quantity where it declares one (the
    detector ranks by max(AUC, 0.5): an AUC below chance never ranks a model as better), else its value."""
    v = _ok_value(m)
    if v is not None and _is_num((m or {}).get("rank_value")):
        return float(m["rank_value"])
    return v


def _missing_reason(m: dict[str, Any] | None, key: str) -> tuple[str, str]:
    """(short status, reason) of a metric cell without a value."""
    if m is None:
        return "not computed", f"not computed: this run's evaluation did not include {key}"
    status = m.get("status") or "missing"
    if status == "ok":
        return "no value", "no value recorded"
    return status, f"{status}: {m.get('reason') or 'no reason recorded'}"


def _params_text(e: dict[str, Any]) -> str:
    s = e.get("set_params") or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(s.items())) if s else "defaults"


def board(entries: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Groups of entries, each with its columns, main metric and ranked rows."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault(group_key(e), []).append(e)
    out = []
    for key in sorted(groups):
        members = groups[key]
        suite = key[0]
        main_name = schema["main_per_suite"].get(suite, schema["main_default"])
        order = schema["columns"]
        keys = sorted({k for e in members for k in e["metrics"]})

        def position(k: str) -> tuple[int, str]:
            if k in order:
                return order.index(k), k
            if _base(k) in order:
                return order.index(_base(k)), k
            return len(order), k

        keys.sort(key=position)
        main_key = next((k for k in keys if k == main_name), None) or next((k for k in keys if _base(k) == _base(main_name)), None)
        if main_key is not None:
            keys.remove(main_key)
            keys.insert(0, main_key)
        meta = {k: column_meta(k, members) for k in keys}
        h = meta[main_key]["higher_is_better"] if main_key else None
        scored = [(e, _rank_value(e["metrics"].get(main_key)) if main_key else None) for e in members]
        ranked = sorted([(e, v) for e, v in scored if v is not None],
                        key=lambda ev: (_badness(ev[1], h), str(ev[0].get("model_display_name")), ev[0]["_file"]))
        rows, prev, rank = [], None, 0
        for i, (e, v) in enumerate(ranked, 1):
            b = _badness(v, h)
            if prev is None or b != prev:
                rank, prev = i, b
            rows.append({"entry": e, "rank": rank})
        for e, _ in sorted([(e, v) for e, v in scored if v is None],
                           key=lambda ev: (str(ev[0].get("model_display_name")), ev[0]["_file"])):
            rows.append({"entry": e, "rank": None})
        fingerprints = {str(e.get("suite_fingerprint")) for e in entries
                        if (e.get("suite"), str(e.get("suite_version"))) == (suite or None, key[1] or None)}
        out.append({"key": key, "suite": suite, "suite_version": key[1], "backbones": key[2], "profile": key[3],
                    "spec_version": key[4], "reference": key[5], "fingerprint": key[6],
                    "fingerprint_differs": len(fingerprints) > 1, "main_name": main_name, "main_key": main_key,
                    "columns": keys, "meta": meta, "rows": rows})
    return out


def group_title(g: dict[str, Any]) -> str:
    suite = f"{g['suite']} v{g['suite_version']}" if g["suite"] else "clips without a suite"
    return f"{suite} · {g['backbones']} backbones · profile {g['profile']}"


def group_details(g: dict[str, Any]) -> str:
    bits = [f"reference: {g['reference']}", f"evaluation spec v{g['spec_version']}"]
    if g["fingerprint"]:
        bits.append(f"suite fingerprint {g['fingerprint']}"
                    + (" (this suite version has entries with other content: bump the suite's version when its "
                       "prompts change)" if g["fingerprint_differs"] else ""))
    return " · ".join(bits)


def _group_anchor(g: dict[str, Any]) -> str:
    from mova_bench.store import slug, spec_hash

    return "g-" + slug(f"{g['suite']}-v{g['suite_version']}-{g['backbones']}-{g['profile']}").lower() + "-" + spec_hash(list(g["key"]), 6)


def _fmt(v: Any) -> str:
    """A number for people: 3 significant digits (whole numbers from 1000 on), ``—`` when missing."""
    if not _is_num(v):
        return "—"
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.3g}"


def _ci_text(m: dict[str, Any]) -> str:
    lo, hi = m.get("ci_low"), m.get("ci_high")
    return f"[{_fmt(lo)}, {_fmt(hi)}]" if _is_num(lo) and _is_num(hi) else ""


def _date(e: dict[str, Any]) -> str:
    return str((e.get("provenance") or {}).get("evaluated") or "")[:10]


# --------------------------------------------------------------------------- build: CSV and Markdown


def frame(groups: list[dict[str, Any]]):
    """The board as one pandas DataFrame: a row per entry, per metric key its value, CI, n and status."""
    import pandas as pd

    all_keys: list[str] = []
    for g in groups:
        all_keys += [k for k in g["columns"] if k not in all_keys]
    rows = []
    for g in groups:
        for r in g["rows"]:
            e = r["entry"]
            ev = e.get("evaluation") or {}
            prov = e.get("provenance") or {}
            row: dict[str, Any] = {
                "group": group_title(g), "suite": e.get("suite"), "suite_version": e.get("suite_version"),
                "backbones": g["backbones"], "profile": g["profile"], "reference": g["reference"],
                "main_metric": g["main_key"], "rank": r["rank"], "model": e.get("model"),
                "model_display_name": e.get("model_display_name"), "parameters": _params_text(e),
                "learned": bool(e.get("learned")), "n_clips": e.get("n_clips"), "n_failed": e.get("n_failed") or 0,
            }
            for k in all_keys:
                m = e["metrics"].get(k)
                v = _ok_value(m)
                row[k] = v
                row[f"{k} ci_low"] = float(m["ci_low"]) if v is not None and _is_num(m.get("ci_low")) else None
                row[f"{k} ci_high"] = float(m["ci_high"]) if v is not None and _is_num(m.get("ci_high")) else None
                row[f"{k} n"] = m.get("n") if m else None
                row[f"{k} status"] = (m.get("status") if m else "not computed") if k in g["columns"] else "not in group"
            row.update({"run_id": e.get("run_id"), "evaluation_id": ev.get("id"), "seed": e.get("seed"),
                        "samples_per_prompt": e.get("samples_per_prompt"), "mova_bench": prov.get("mova_bench"),
                        "git_commit": prov.get("git_commit"), "evaluated": prov.get("evaluated"), "entry": e["_file"]})
            rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df["rank"] = df["rank"].astype("Int64")
        for k in all_keys:
            df[f"{k} n"] = df[f"{k} n"].astype("Int64")
    return df


def _md_cell(text: Any) -> str:
    """Markdown table cell text: HTML-escaped (GitHub renders inline HTML), pipes and newlines neutralised."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _md_table(df) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_md_cell(v) for v in row.tolist()) + " |")
    return "\n".join(lines)


def _header_text(meta: dict[str, Any]) -> str:
    arrow = direction(meta["higher_is_better"])[0]
    unit = f" ({meta['unit']})" if meta["unit"] else ""
    return f"{meta['display_name']}{unit} {arrow}"


def markdown(groups: list[dict[str, Any]], schema: dict[str, Any], n_entries: int) -> str:
    import pandas as pd

    out = [f"# {_md_cell(schema['title'])}", "",
           f"Built by `mova-bench leaderboard build` from {n_entries} entr{'y' if n_entries == 1 else 'ies'} "
           "(`entries/*.json`). Each table is one group of comparable runs (suite and version, backbones, metric "
           "profile, reference): rows of different tables are never ranked against each other. Rows are ranked by "
           "the main metric (★) in its direction: ↑ higher is better, ↓ lower is better, →0 closer to 0 is better. "
           "Values are `value [95% CI]`; — is a value that is missing (its status in parentheses), never a zero.", ""]
    if not groups:
        out += ["No entries yet: `mova-bench leaderboard add RUN... --dir <this folder>`, then build.", ""]
    for g in groups:
        out += [f"## {_md_cell(group_title(g))}", "", _md_cell(group_details(g)), ""]
        if g["main_key"] is None:
            out += [f"Not ranked: the main metric `{g['main_name']}` was computed by no run of this group "
                    "(set `main_metric.per_suite` in schema.json).", ""]
        rows = []
        for r in g["rows"]:
            e = r["entry"]
            row = {"Rank": "—" if r["rank"] is None else str(r["rank"]),
                   "Model": str(e.get("model_display_name")),
                   "Parameters": _params_text(e),
                   "Learned": "yes" if e.get("learned") else "no (oracle)",
                   "Clips": f"{e.get('n_clips')}" + (f" ({e['n_failed']} failed)" if e.get("n_failed") else "")}
            for k in g["columns"]:
                m = e["metrics"].get(k)
                v = _ok_value(m)
                head = ("★ " if k == g["main_key"] else "") + _header_text(g["meta"][k])
                row[head] = (f"{_fmt(v)} {_ci_text(m)}".strip() if v is not None
                             else f"— ({_missing_reason(m, k)[0]})")
            row["Run"] = f"{e.get('run_id')} · eval {(e.get('evaluation') or {}).get('id')} · {_date(e)}"
            rows.append(row)
        out += [_md_table(pd.DataFrame(rows)), ""]
        notes = [r["entry"] for r in g["rows"] if r["entry"].get("warnings")]
        for e in notes:
            for w in e["warnings"]:
                out.append(f"- {_md_cell(e.get('model_display_name'))} ({_md_cell(e.get('run_id'))}): {_md_cell(w)}")
        if notes:
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- build: HTML

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem auto;padding:0 1rem;color:#1d2330;max-width:1400px;line-height:1.45}
h1{font-size:1.5rem;margin:0 0 .3rem} h2{font-size:1.15rem;margin:2rem 0 .2rem} .sub,.small{color:#5b6475;font-size:.9rem}
.legend{font-size:.88rem;color:#3a4254;background:#f5f6f9;border-radius:.4rem;padding:.5rem .75rem}
nav ul{padding-left:1.2rem;margin:.3rem 0} code{background:#f5f6f9;padding:0 .25rem;overflow-wrap:anywhere}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%;border:1px solid #e3e6ec;border-radius:.4rem;margin:.6rem 0}
table{border-collapse:collapse;min-width:100%} th,td{padding:.4rem .6rem;border-bottom:1px solid #e3e6ec;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f5f6f9;font-weight:600;font-size:.88rem;vertical-align:bottom} th.main{background:#e6eefc}
th.metric{white-space:normal;min-width:7.5rem;max-width:11rem}
th button{font:inherit;font-weight:600;color:inherit;background:none;border:0;padding:0;cursor:pointer;text-align:left}
th button:focus-visible{outline:2px solid #1f5fbf} th[aria-sort=ascending] button::after{content:" ▲"} th[aria-sort=descending] button::after,th[aria-sort=other] button::after{content:" ▼"}
.unit{font-weight:400;color:#5b6475} .dir{font-weight:400;color:#1f5fbf}
td.num{text-align:right;font-variant-numeric:tabular-nums} td.rank{font-weight:700;text-align:right}
td.model{white-space:normal;min-width:11rem;max-width:22rem}
.ci{display:block;font-size:.78rem;color:#5b6475} td.missing{color:#8a6d00;text-align:center} .st{display:block;font-size:.72rem}
tr.partial td.clips{color:#b42318} .badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.75rem;background:#eef0f4;color:#3a4254;margin-left:.3rem}
.badge.oracle{background:#fff6e0;color:#7a5a00} .warn{background:#fff6e0;border-left:4px solid #d9a300;padding:.3rem .6rem;font-size:.88rem;margin:.3rem 0}
@media (max-width:600px){body{margin:.75rem auto;padding:0 .6rem;font-size:15px} h1{font-size:1.25rem} th,td{padding:.35rem .45rem}}
"""

#: click a column header: best first (by the column's direction), click again: worst first; missing values stay last
SCRIPT = """
(function(){
  function key(dir,v){return dir==="desc"?-v:dir==="abs"?Math.abs(v):v;}
  var tables=document.querySelectorAll("table.board");
  for(var t=0;t<tables.length;t++)(function(table){
    var heads=table.tHead.rows[0].cells;
    for(var i=0;i<heads.length;i++)(function(th,col){
      var btn=th.querySelector("button");if(!btn)return;
      btn.addEventListener("click",function(){
        var dir=th.getAttribute("data-dir")||"text";
        var worst=th.getAttribute("data-state")==="best";
        for(var j=0;j<heads.length;j++){heads[j].removeAttribute("aria-sort");heads[j].removeAttribute("data-state");}
        th.setAttribute("data-state",worst?"worst":"best");
        var order=(dir==="abs")?"other":((dir==="desc")!==worst?"descending":"ascending");
        th.setAttribute("aria-sort",order);
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=a.cells[col].getAttribute("data-sort"),y=b.cells[col].getAttribute("data-sort");
          if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
          var c;
          if(dir==="text"){c=x.localeCompare(y);}else{var p=key(dir,parseFloat(x)),q=key(dir,parseFloat(y));c=p<q?-1:p>q?1:0;}
          return worst?-c:c;
        });
        for(var r=0;r<rows.length;r++)body.appendChild(rows[r]);
      });
    })(heads[i],i);
  })(tables[t]);
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _th(label_html: str, *, sort_dir: str, title: str = "", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    t = f' title="{_e(title)}"' if title else ""
    return f'<th scope="col" data-dir="{sort_dir}"{c}{t}><button type="button">{label_html}</button></th>'


def _metric_th(key: str, meta: dict[str, Any], main: bool) -> str:
    arrow, words, sort_dir = direction(meta["higher_is_better"])
    unit = f' <span class="unit">({_e(meta["unit"])})</span>' if meta["unit"] else ""
    star = "★ " if main else ""
    title = f"{key}: {words}" + (" — the main metric: rows are ranked by it" if main else "") \
        + (f". {meta['convention']}" if meta.get("convention") else "")
    label = f'{star}{_e(meta["display_name"])}{unit} <span class="dir" aria-label="{_e(words)}">{arrow}</span>'
    return _th(label, sort_dir=sort_dir, title=title, cls="metric main" if main else "metric")


def _metric_td(m: dict[str, Any] | None, key: str) -> str:
    v = _ok_value(m)
    if v is None:
        status, reason = _missing_reason(m, key)
        return f'<td class="missing" title="{_e(reason)}">—<span class="st">{_e(status)}</span></td>'
    ci = _ci_text(m)
    n = m.get("n")
    title = f"{key} = {v!r}" + (f", 95% CI [{m.get('ci_low')!r}, {m.get('ci_high')!r}]" if ci else "") \
        + (f", n = {n}" if n is not None else "")
    ci_html = f'<span class="ci">{_e(ci)}</span>' if ci else '<span class="ci">no CI</span>'
    return f'<td class="num" data-sort="{v!r}" title="{_e(title)}">{_e(_fmt(v))}{ci_html}</td>'


def _row_html(g: dict[str, Any], r: dict[str, Any]) -> str:
    e = r["entry"]
    ev = e.get("evaluation") or {}
    prov = e.get("provenance") or {}
    rank = r["rank"]
    cells = [f'<td class="rank" data-sort="{rank}">{rank}</td>' if rank is not None
             else f'<td class="rank missing" title="not ranked: no value of {_e(g["main_key"] or g["main_name"])}">—</td>']
    name = str(e.get("model_display_name") or e.get("model") or e.get("run_id"))
    badge = "" if e.get("learned") else f'<span class="badge oracle" title="{_e(ORACLE_NOTE)}">oracle</span>'
    params_full = ", ".join(f"{k}={v}" for k, v in sorted((e.get("model_params") or {}).items()))
    model_line = _e(e.get("model") or e.get("run_kind") or "")
    warn = "".join(f'<div class="warn">⚠ {_e(w)}</div>' for w in e.get("warnings") or [])
    cells.append(f'<td class="model" data-sort="{_e(name.lower())}"><strong>{_e(name)}</strong>{badge}'
                 f'<span class="ci" title="{_e("all parameters: " + (params_full or "none"))}">{model_line} · '
                 f'{_e(_params_text(e))}</span>{warn}</td>')
    n, nf = e.get("n_clips"), e.get("n_failed") or 0
    failed = f'<span class="st">⚠ {nf} failed</span>' if nf else ""
    ftitle = (f"{nf} of {n} clips failed: " + ", ".join(f"{k}: {v}" for k, v in sorted((e.get('failures') or {}).items()))
              if nf else f"{n} clips, all ok")
    cells.append(f'<td class="num clips" data-sort="{n if _is_num(n) else 0}" title="{_e(ftitle)}">{_e(n)}{failed}</td>')
    for k in g["columns"]:
        cells.append(_metric_td(e["metrics"].get(k), k))
    commit = str(prov.get("git_commit") or "")[:10]
    run_title = (f"run {e.get('run_id')}, evaluation {ev.get('id')}, seed {e.get('seed')}, "
                 f"{e.get('samples_per_prompt')} samples per prompt, mova-bench {prov.get('mova_bench')}"
                 + (f" ({prov.get('git_commit')})" if commit else "") + f", evaluated {prov.get('evaluated')}; "
                 f"entry {e['_file']}")
    cells.append(f'<td class="run" data-sort="{_e(e.get("run_id"))}" title="{_e(run_title)}"><code>{_e(e.get("run_id"))}</code>'
                 f'<span class="ci">eval {_e(ev.get("id"))} · seed {_e(e.get("seed"))} · {_e(e.get("samples_per_prompt"))}/prompt'
                 f' · {_e(_date(e))} · v{_e(prov.get("mova_bench"))}{(" " + _e(commit)) if commit else ""}</span></td>')
    cls = ' class="partial"' if nf else ""
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def _group_html(g: dict[str, Any]) -> str:
    heads = [_th("Rank", sort_dir="asc", title="rank by the main metric (★) within this table"),
             _th("Model", sort_dir="text"), _th("Clips", sort_dir="desc", title="clips scored; failed clips are marked")]
    heads += [_metric_th(k, g["meta"][k], k == g["main_key"]) for k in g["columns"]]
    heads.append(_th("Run", sort_dir="text", title="run id, evaluation id, seed, samples per prompt, date, mova-bench version"))
    main = g["meta"].get(g["main_key"]) if g["main_key"] else None
    if main:
        ranked = f'Ranked by ★ {_e(main["display_name"])} ({_e(direction(main["higher_is_better"])[1])}).'
    else:
        ranked = (f'Not ranked: the main metric <code>{_e(g["main_name"])}</code> was computed by no run of this group '
                  "(set <code>main_metric.per_suite</code> in schema.json).")
    body = "\n".join(_row_html(g, r) for r in g["rows"])
    return (f'<section id="{_group_anchor(g)}">\n<h2>{_e(group_title(g))}</h2>\n'
            f'<p class="small">{_e(group_details(g))}. {ranked}</p>\n'
            f'<div class="table-wrap" tabindex="0" role="region" aria-label="{_e(group_title(g))}">\n'
            f'<table class="board">\n<thead><tr>{"".join(heads)}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n</div>\n'
            "</section>")


def render_html(groups: list[dict[str, Any]], schema: dict[str, Any], n_entries: int) -> str:
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    toc = "".join(f'<li><a href="#{_group_anchor(g)}">{_e(group_title(g))}</a> <span class="small">({len(g["rows"])} '
                  f'row{"s" if len(g["rows"]) != 1 else ""})</span></li>' for g in groups)
    sections = "\n".join(_group_html(g) for g in groups) or (
        '<p>No entries yet: <code>mova-bench leaderboard add RUN... --dir &lt;this folder&gt;</code>, then '
        "<code>mova-bench leaderboard build</code>.</p>")
    title = _e(schema["title"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<title>{title}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="sub">Built by <code>mova-bench leaderboard build</code> from {n_entries} entr{"y" if n_entries == 1 else "ies"}
(<code>entries/*.json</code>); also as <a href="leaderboard.csv">leaderboard.csv</a> and <a href="leaderboard.md">leaderboard.md</a>.</p>
<p class="legend">Each table is one group of comparable runs — the same suite and suite version, backbones, metric
profile and reference. Rows of different tables are never ranked against each other. Within a table rows are ranked
by the main metric (★) in its direction: ↑ higher is better, ↓ lower is better, →0 closer to 0 is better. Each value
shows its 95% bootstrap CI below it. — marks a value that is missing (skipped, failed or not computed; hover for the
reason), never a zero. Click a column header to sort: best first, click again for worst first.
<span class="badge oracle">oracle</span> marks the procedural world, which is not a learned model.</p>
<nav><ul>{toc}</ul></nav>
</header>
<main>
{sections}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


def build(directory: str | Path) -> list[Path]:
    """Write ``index.html``, ``leaderboard.csv`` and ``leaderboard.md`` (and a default ``schema.json``)."""
    from mova_bench.store import atomic_path, ensure_folder, write_text_atomic

    d = ensure_folder(Path(directory), "leaderboard folder", fix="choose a writable --dir (default: leaderboard/)")
    schema = load_schema(d)
    entries = load_entries(d)
    groups = board(entries, schema)
    write_text_atomic(d / "index.html", render_html(groups, schema, len(entries)))
    df = frame(groups)
    with atomic_path(d / "leaderboard.csv") as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    write_text_atomic(d / "leaderboard.md", markdown(groups, schema, len(entries)))
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} in {len(groups)} table(s)", file=sys.stderr)
    return [d / "index.html", d / "leaderboard.csv", d / "leaderboard.md", d / "schema.json"]
