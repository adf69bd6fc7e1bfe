"""The HTML report of one evaluation: one self-contained file, no network.

``render_report(eval_dir, run_dir=None)`` reads ``metrics.json``, ``per_clip.parquet`` and
``provenance.json`` from ``eval_dir`` and ``manifest.jsonl`` from the run folder, and renders the
Jinja2 template ``templates/report.html.j2`` with autoescaping on: prompts, ids and tags are user
text and appear as text, never as markup. Figures are matplotlib SVG inlined in the page; the only
script is a small inline one (gallery sorting and pages), allowed by a Content-Security-Policy that
names its hash, so nothing injected could run even if escaping were ever bypassed. Clips are
linked relative to the report (``<video preload=metadata>``), so a run folder can be moved or
served as a whole.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mova_bench.report import plots
from mova_bench.store import read_json, read_manifest, write_text_atomic

TEMPLATES = Path(__file__).with_name("templates")

#: clips per gallery page (the page script shows one page at a time; without script all are shown)
PAGE_SIZE = 48

#: per_clip.parquet columns that are bookkeeping, not per-clip scores
BASE_COLUMNS = ("clip_id", "prompt_id", "prompt_text", "seed", "status", "reason", "error", "path",
                "content_hash", "sync_status")

#: known per-clip columns: label, unit, and which end is worst ("abs": largest |x|, "asc": lowest,
#: "desc": highest)
KNOWN_COLUMNS: dict[str, tuple[str, str, str]] = {
    "sync_scored_offset_ms": ("sync offset (scored)", "ms, + = audio late", "abs"),
    "sync_offset_raw_ms": ("sync offset (raw)", "ms, + = audio late", "abs"),
    "in_sync": ("in sync (BT.1359)", "0/1", "asc"),
    "av_align_iou": ("AV-Align", "IoU", "asc"),
    "p_synthetic": ("P(synthetic)", "probability", "desc"),
    "sync_confidence": ("sync confidence", "0–1", "asc"),
}
#: failure reasons whose file no browser can play: linked, not embedded (a broken <video> only adds errors)
UNPLAYABLE = frozenset({"empty", "not_media", "truncated", "unreadable", "missing"})

WORST_FIRST = {"abs": "largest |value| first", "asc": "lowest first", "desc": "highest first"}


# ----------------------------------------------------------------------------- formatting helpers


def fmt(v: Any, digits: int = 4) -> str:
    """A number for people: ``—`` for missing, 4 significant digits, ints as ints."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        if v == 0:
            return "0"
        if abs(v) < 1e-3 or abs(v) >= 1e5:
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def direction(h: Any) -> tuple[str, str]:
    """(arrow, words) of a metric's direction."""
    if h is True:
        return "↑", "higher is better"
    if h is False:
        return "↓", "lower is better"
    return "→0", "closer to 0 is better"


def geometry_text(g: dict[str, Any] | None) -> str:
    if not g:
        return ""
    try:
        return f"{g['width']}×{g['height']} px, {g['duration_s']:g} s at {g['fps']:g} fps, {g['sample_rate']} Hz audio"
    except (KeyError, TypeError, ValueError):
        return json.dumps(g, sort_keys=True, default=str)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _text(v: Any) -> str | None:
    """A text cell: None for pandas' missing values (NaN, None)."""
    return v if isinstance(v, str) else None


def _clip_src(path: Any, report_dir: Path, run_dir: Path) -> str | None:
    """A URL for the clip relative to the report (percent-encoded: '#', '?', spaces in names);
    a relative path in the manifest is relative to the run folder."""
    if not path:
        return None
    p = Path(str(path))
    if not p.is_absolute():
        p = run_dir / p
    try:
        rel = os.path.relpath(p, report_dir)
    except ValueError:  # another drive (Windows): an absolute file URL
        return p.resolve().as_uri()
    return quote(Path(rel).as_posix(), safe="/")


def _find_manifest(eval_dir: Path, run_dir: Path | None) -> Path | None:
    candidates = [run_dir] if run_dir is not None else []
    candidates.append(eval_dir)
    if eval_dir.parent.name == "evals":
        candidates.append(eval_dir.parent.parent)
    for c in candidates:
        if c is not None and (c / "manifest.jsonl").is_file():
            return c / "manifest.jsonl"
    return None


# ----------------------------------------------------------------------------- the view model


def _header(doc: dict[str, Any], prov: dict[str, Any], run_dir: Path, eval_dir: Path) -> dict[str, Any]:
    h = doc.get("header") or {}
    ev = doc.get("evaluation") or {}
    spec = ev.get("spec") or {}
    set_params = h.get("set") or {}
    params = h.get("model_params") or {}
    param_rows = [{"name": str(k), "value": json.dumps(v, default=str) if not isinstance(v, str) else v,
                   "set": k in set_params} for k, v in params.items()]
    for k, v in set_params.items():  # a --set value the generator did not echo back still shows
        if k not in params:
            param_rows.append({"name": str(k), "value": json.dumps(v, default=str) if not isinstance(v, str) else v,
                               "set": True})
    ref = doc.get("reference") or {}
    date = doc.get("written") or ""
    if len(date) >= 19 and date[10] == "T":
        date = date[:10] + " " + date[11:19] + (" " + date[19:] if date[19:] else "")
    analysis = spec.get("analysis") or []
    return {
        "title": doc.get("title") or h.get("title") or "mova-bench report",
        "kind": h.get("kind"),
        "model": h.get("model"),
        "learned": h.get("learned"),
        "params": param_rows,
        "set": [{"name": str(k), "value": v if isinstance(v, str) else json.dumps(v, default=str)}
                for k, v in set_params.items()],
        "clips_dir": h.get("clips_dir"),
        "suite": h.get("suite"),
        "suite_version": h.get("suite_version"),
        "suite_description": h.get("suite_description"),
        "seed": h.get("seed"),
        "samples_per_prompt": h.get("samples_per_prompt"),
        "geometry": geometry_text(h.get("geometry")),
        "run_id": h.get("run_id") or run_dir.name,
        "eval_id": ev.get("id"),
        "eval_path": ev.get("path"),
        "metrics_asked": list(spec.get("metrics") or []),
        "backbones": spec.get("backbones"),
        # the spec records ours as "default" (stable evaluation ids); say which profile that is
        "profile": ("mova-bench (default)" if spec.get("profile") in ("default", None) and spec else spec.get("profile")),
        "bootstrap_seed": spec.get("bootstrap_seed"),
        "analysis": ", ".join(f"{a[0]}{json.dumps(a[1], sort_keys=True) if len(a) > 1 and a[1] else ''}"
                              if isinstance(a, (list, tuple)) and a else str(a) for a in analysis),
        "spec_json": json.dumps(spec, indent=2, sort_keys=True, default=str),
        "reference": {
            "kind": ref.get("kind"), "domain": ref.get("domain"), "n_clips": ref.get("n_clips"),
            "n_failed": ref.get("n_failed"), "failures": ref.get("failures"),
            "geometry": geometry_text(ref.get("geometry")), "path": ref.get("path"),
            "samples_per_prompt": ref.get("samples_per_prompt"), "seed": ref.get("seed"),
        } if ref else None,
        "date": date,
        "git_commit": prov.get("git_commit"),
        "version": prov.get("mova_bench"),
        "python": prov.get("python"),
        "platform": prov.get("platform"),
        "device": ({k: prov["device"].get(k) for k in ("cpu", "cpu_count", "cpu_affinity", "gpus")}
                   if isinstance(prov.get("device"), dict) else None),
        "packages": prov.get("packages") or {},
        "ffmpeg": prov.get("ffmpeg_libraries") or {},
        "timings": prov.get("timings") or {},
        "is_run_level": eval_dir.resolve() == run_dir.resolve(),
    }


def _metrics(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, m in (doc.get("metrics") or {}).items():
        arrow, words = direction(m.get("higher_is_better"))
        extra = m.get("extra") or {}
        notes = []
        if extra.get("n_not_synchronizable"):
            reasons = ", ".join(f"{k}: {v}" for k, v in (extra.get("not_synchronizable_reasons") or {}).items())
            notes.append(f"{extra['n_not_synchronizable']} clip(s) not synchronizable ({reasons}), not averaged")
        if extra.get("n_excluded"):
            reasons = ", ".join(f"{k}: {v}" for k, v in (extra.get("excluded_reasons") or {}).items())
            notes.append(f"{extra['n_excluded']} clip(s) excluded ({reasons})")
        fdi = extra.get("fd_infinity")
        if isinstance(fdi, dict):
            if fdi.get("value") is not None:
                sides = {"joint": "both sides subsampled jointly",
                         "generated": "generated side only: the reference's own bias stays in"}.get(str(fdi.get("sides")), "")
                notes.append(f"FD∞ {fmt(fdi['value'])} (fit against 1/n, R² {fmt(fdi.get('r2'), 2)}"
                             + (f"; {sides}" if sides else "") + ")")
        if extra.get("verdict"):
            band = extra.get("null_band") or [None, None]
            band_s = f"[{fmt(band[0], 2)}, {fmt(band[1], 2)}]" if band[0] is not None else "n/a"
            notes.append(f"{extra['verdict']} — permutation test: {extra.get('n_permutations')} relabellings, "
                         f"p = {fmt(extra.get('p_value'), 3)}, 95% band of chance {band_s}; ranked as max(AUC, 0.5)")
        if extra.get("n_with_expected_offset"):
            notes.append(f"{extra['n_with_expected_offset']} clip(s) scored against their prompt's expected_offset_ms "
                         "(late by design, e.g. distant thunder): offsets inside that window count as 0")
        lo, hi = _num(m.get("ci_low")), _num(m.get("ci_high"))
        out.append({
            "key": key, "name": m.get("display_name") or key, "value": _num(m.get("value")),
            "ci": f"[{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else "—",
            "ci_low": lo, "ci_high": hi, "n": m.get("n"), "unit": m.get("unit") or "",
            "arrow": arrow, "direction": words, "status": str(m.get("status") or "unknown"),
            "reason": m.get("reason"), "fix": m.get("fix"), "convention": m.get("convention"),
            "warnings": [str(w) for w in (m.get("warnings") or [])], "notes": notes,
            "ci_method": extra.get("ci_method"), "higher_is_better": m.get("higher_is_better"),
        })
    return out


#: SVGs already drawn, by their inputs: an evaluation's report is rendered twice (its folder and the
#: run folder's top level) from the same data, and matplotlib is the slow part
_SVG_CACHE: dict[str, str] = {}
_SVG_CACHE_SIZE = 96


def _plot(fn, *args: Any, **kwargs: Any) -> str:
    key = hashlib.sha256(repr((fn.__name__, args, sorted(kwargs.items()))).encode()).hexdigest()
    svg = _SVG_CACHE.pop(key, None)
    if svg is None:
        svg = fn(*args, **kwargs)
    _SVG_CACHE[key] = svg  # most recent last
    while len(_SVG_CACHE) > _SVG_CACHE_SIZE:
        _SVG_CACHE.pop(next(iter(_SVG_CACHE)))
    return svg


def _metric_plot(i: int, m: dict[str, Any]) -> str | None:
    if m["status"] != "ok" or m["value"] is None:
        return None
    key, unit = m["key"], m["unit"]
    reference, bounds = None, None
    if key.startswith(("kid_", "sync_offset_ms")):
        reference = 0.0
    if key.startswith("detector_auc"):
        reference, bounds = 0.5, (0.0, 1.0)
    if unit in ("fraction", "IoU", "AUC"):
        bounds = (0.0, 1.0)
    if key.startswith(("fd_", "sync_offset_abs")):
        bounds = (0.0, math.inf)
    return _plot(plots.metric_ci, f"ci{i}", m["name"], m["value"], m["ci_low"], m["ci_high"], unit,
                           f"{m['arrow']} {m['direction']}", reference=reference, bounds=bounds)


def _columns(df, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-clip numeric columns, in a stable order (known ones first)."""
    import pandas as pd

    metric_dirs = {k: m.get("higher_is_better") for k, m in (doc.get("metrics") or {}).items()}
    names = [c for c in KNOWN_COLUMNS if c in df.columns]
    names += [c for c in df.columns if c not in KNOWN_COLUMNS and c not in BASE_COLUMNS
              and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    cols = []
    for c in names:
        if c in KNOWN_COLUMNS:
            lab, unit, worst = KNOWN_COLUMNS[c]
        else:
            h = metric_dirs.get(c)
            lab, unit, worst = c, "", ("asc" if h is True else "abs" if h is None and c in metric_dirs else "desc")
        cols.append({"name": c, "label": lab, "unit": unit, "worst": worst, "worst_words": WORST_FIRST[worst]})
    return cols


def _breakdown(df, cols: list[dict[str, Any]], by: str) -> dict[str, Any] | None:
    """Mean of each per-clip column per group (``by`` is ``prompt_id`` or ``tag``), plus a figure."""
    import pandas as pd

    if df.empty:
        return None
    data = df
    if by == "tag":
        data = df.assign(tag=df["tags"]).explode("tag")
        data["tag"] = data["tag"].where(data["tag"].notna(), "(untagged)")
    else:
        data = df.assign(prompt_id=df["prompt_id"].where(df["prompt_id"].notna(), "(no prompt)"))
    data = data.assign(_ok=data["status"] == "ok")
    order = list(dict.fromkeys(data[by].astype(str))) if by == "prompt_id" else sorted(set(data[by].astype(str)))
    data[by] = data[by].astype(str)
    ok = data[data["_ok"]]
    g_all = data.groupby(by, sort=False)
    counts = g_all.size()
    failed = g_all["_ok"].apply(lambda s: int((~s).sum()))
    means = ok.groupby(by, sort=False)[[c["name"] for c in cols]].mean() if cols else pd.DataFrame()
    texts = data.groupby(by, sort=False)["prompt_text"].first() if by == "prompt_id" else None
    rows = []
    for gname in order:
        row = {"name": gname, "n": int(counts.get(gname, 0)), "failed": int(failed.get(gname, 0)),
               "text": _text(texts.get(gname)) if texts is not None else None, "values": []}
        for c in cols:
            v = means[c["name"]].get(gname) if gname in means.index else None
            row["values"].append(fmt(_num(v)))
        rows.append(row)
    figures = []
    what = "prompt" if by == "prompt_id" else "tag"
    for j, c in enumerate(cols):
        if c["name"] in ("sync_confidence", "in_sync") or not ok[c["name"]].notna().any():  # 0/1: the table has the rate
            continue
        grouped = ok.groupby(by, sort=False)[c["name"]]
        values = [grouped.get_group(gname).tolist() if gname in grouped.groups else [] for gname in order]
        window = (plots.BT1359_EARLY_MS, plots.BT1359_LATE_MS) if c["name"] == "sync_offset_raw_ms" else None
        figures.append(_plot(plots.breakdown, f"by-{what}-{j}", c["label"], order, values, c["unit"], window))
    return {"rows": rows, "figures": figures, "by": by}


def _require() -> None:
    """What rendering needs beyond the core dependencies, as one error with its fix."""
    from mova_bench.errors import MissingDependencyError

    missing = []
    for module, package in (("jinja2", "jinja2"), ("pandas", "pandas"), ("matplotlib", "matplotlib")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise MissingDependencyError(f"the HTML report needs {', '.join(missing)}, which is not installed",
                                     fix=f"pip install {' '.join(missing)} (or reinstall mova-bench with its dependencies)")
    names = ("report.html.j2", "report.css", "report.js")
    if not all((TEMPLATES / n).is_file() for n in names):
        raise MissingDependencyError(f"the report templates {', '.join(names)} are missing from {TEMPLATES}",
                                     fix="reinstall mova-bench from a build that ships mova_bench/report/templates/")


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    return env


def _evaluations(run_dir: Path, eval_dir: Path, current: str | None) -> list[dict[str, Any]]:
    """Links to the evaluations kept in the run folder (relative to this report)."""
    evals = run_dir / "evals"
    if not evals.is_dir():
        return []
    out = []
    for d in sorted(evals.iterdir()):
        if not d.is_dir() or not (d / "eval_spec.json").is_file():
            continue
        try:
            spec = read_json(d / "eval_spec.json")
        except (OSError, ValueError):
            spec = {}
        out.append({"id": d.name, "current": d.name == current,
                    "href": quote(Path(os.path.relpath(d / "report.html", eval_dir)).as_posix(), safe="/"),
                    "summary": f"{len(spec.get('metrics') or [])} metric(s), backbones {spec.get('backbones')}, "
                               f"reference {(spec.get('reference') or {}).get('kind', spec.get('reference'))}"})
    return out


def render_report(eval_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> str:
    """The report of the evaluation whose files are in ``eval_dir``; clip links are relative to it."""
    _require()
    import pandas as pd
    from markupsafe import Markup

    eval_dir = Path(eval_dir)
    run_dir = Path(run_dir) if run_dir is not None else (eval_dir.parent.parent if eval_dir.parent.name == "evals" else eval_dir)
    doc = read_json(eval_dir / "metrics.json")
    prov_path = eval_dir / "provenance.json"
    prov = read_json(prov_path) if prov_path.is_file() else {}
    df = pd.read_parquet(eval_dir / "per_clip.parquet")
    manifest_path = _find_manifest(eval_dir, run_dir)
    manifest = {r.get("clip_id"): r for r in read_manifest(manifest_path)} if manifest_path else {}
    for c in ("clip_id", "prompt_id", "prompt_text", "seed", "status", "reason", "error", "path"):
        if c not in df.columns:
            df[c] = None
    df["tags"] = [list((manifest.get(cid) or {}).get("tags") or []) or None for cid in df["clip_id"]]
    df["expected"] = [bool((manifest.get(cid) or {}).get("expected_offset_ms")) for cid in df["clip_id"]]

    header = _header(doc, prov, run_dir, eval_dir)
    metrics = _metrics(doc)
    cols = _columns(df, doc)
    for i, m in enumerate(metrics):
        m["plot"] = Markup(_metric_plot(i, m) or "")
    ok = df[df["status"] == "ok"]

    # distributions
    sync_plot = None
    if "sync_offset_raw_ms" in df.columns:
        has = ok["sync_offset_raw_ms"].notna()
        unsync = int((~has).sum()) if "sync_status" in ok.columns else 0
        if has.any():
            sync_plot = Markup(_plot(plots.offset_histogram, "sync", ok.loc[has, "sync_offset_raw_ms"].tolist(),
                                                      ok.loc[has, "expected"].tolist(), unsync))
    p_plot = None
    if "p_synthetic" in df.columns and ok["p_synthetic"].notna().any():
        auc = next((m["value"] for m in metrics if m["key"].startswith("detector_auc")), None)
        p_plot = Markup(_plot(plots.probability_histogram, "psyn", ok["p_synthetic"].dropna().tolist(), auc))

    by_prompt = _breakdown(df, cols, "prompt_id")
    by_tag = _breakdown(df, cols, "tag") if df["tags"].notna().any() else None
    for b in (by_prompt, by_tag):
        if b:
            b["figures"] = [Markup(f) for f in b["figures"]]

    # the gallery: every clip, in clip order; failed ones too (with a player when the file is there)
    cards = []
    for i, r in enumerate(df.to_dict("records")):
        r = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}  # pandas' NaN
        src = _clip_src(r.get("path"), eval_dir, run_dir)
        exists = bool(r.get("path")) and (Path(str(r["path"])) if Path(str(r["path"])).is_absolute()
                                          else run_dir / str(r["path"])).is_file()
        m = manifest.get(r.get("clip_id")) or {}
        scores = []
        for c in cols:
            v = _num(r.get(c["name"]))
            scores.append({"label": c["label"], "value": fmt(v), "raw": "" if v is None else repr(v)})
        cards.append({"order": i, "clip_id": r.get("clip_id"), "prompt_id": r.get("prompt_id"),
                      "prompt_text": r.get("prompt_text"), "seed": r.get("seed") if r.get("seed") is None else int(r["seed"]),
                      "status": r.get("status"), "reason": r.get("reason"), "error": r.get("error"),
                      "src": src if exists and r.get("reason") not in UNPLAYABLE else None,
                      "link": src if exists and r.get("reason") in UNPLAYABLE else None,
                      "tags": r.get("tags") or [], "scores": scores,
                      "sync_status": r.get("sync_status"),
                      "expected": m.get("expected_offset_ms")})
    failures = [c for c in cards if c["status"] != "ok"]

    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    context = {
        "doc": {"status": doc.get("status"), "n_clips": doc.get("n_clips", len(df)), "n_failed": doc.get("n_failed", len(failures)),
                "failures": doc.get("failures") or {}},
        "h": header, "warnings": [str(w) for w in (doc.get("warnings") or [])], "metrics": metrics,
        "metric_warnings": [(m["name"], m["key"], w) for m in metrics for w in m["warnings"]],
        "columns": cols, "by_prompt": by_prompt, "by_tag": by_tag, "sync_plot": sync_plot, "p_plot": p_plot,
        "cards": cards, "failures": failures, "page_size": PAGE_SIZE,
        "evaluations": _evaluations(run_dir, eval_dir, header["eval_id"]),
        "run_report": (quote(Path(os.path.relpath(run_dir / "report.html", eval_dir)).as_posix(), safe="/")
                       if not header["is_run_level"] else None),
        "run_dir_name": run_dir.name,
        "css": Markup(css), "script": Markup(script), "script_hash": script_hash,
        "bt1359": (plots.BT1359_EARLY_MS, plots.BT1359_LATE_MS),
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(eval_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> Path:
    path = Path(eval_dir) / "report.html"
    write_text_atomic(path, render_report(eval_dir, run_dir))
    return path
