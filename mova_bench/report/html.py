"""A minimal, self-contained HTML report: metrics with CIs and status, failures, playable clips."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from mova_bench.store import read_json, write_text_atomic

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2330;max-width:1200px}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#5b6475;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;width:100%} th,td{padding:.35rem .6rem;border-bottom:1px solid #e3e6ec;text-align:left;vertical-align:top}
th{background:#f5f6f9;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17803d}.skipped{color:#8a6d00}.failed,.partial{color:#b42318}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.8rem;background:#eef0f4}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:1rem}
.card{border:1px solid #e3e6ec;border-radius:.5rem;padding:.5rem} .card video{width:100%}
.small{font-size:.85rem;color:#5b6475} .warning{background:#fff6e0;border-left:4px solid #d9a300;padding:.4rem .7rem} summary{cursor:pointer} code{background:#f5f6f9;padding:0 .25rem}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.{digits}f}"
    return html.escape(str(v))


def _direction(h: Any) -> str:
    return "higher is better" if h is True else "lower is better" if h is False else "closer to 0 is better"


def _read_rows(eval_dir: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(eval_dir / "per_clip.parquet").to_pylist()


def _geometry(g: dict[str, Any] | None) -> str:
    if not g:
        return ""
    return f"{g['width']}×{g['height']}, {g['duration_s']:g} s at {g['fps']:g} fps, {g['sample_rate']} Hz"


def render_report(eval_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> str:
    """The report of the evaluation whose files are in ``eval_dir``; clip links are relative to it."""
    eval_dir = Path(eval_dir)
    run_dir = Path(run_dir) if run_dir is not None else eval_dir
    doc = read_json(eval_dir / "metrics.json")
    rows = _read_rows(eval_dir)
    e = html.escape
    header = doc.get("header") or {}
    evaluation = doc.get("evaluation") or {}
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(doc.get('title') or 'mova-bench report')}</title>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>{e(doc.get('title') or 'mova-bench report')}</h1>",
             f"<p class='sub'>{doc['n_clips']} clips, <span class='{e(doc['status'])}'>{doc['n_failed']} failed</span> · run folder <code>{e(run_dir.name)}</code></p>"]
    facts = []
    if header.get("model"):
        facts.append(f"model <code>{e(str(header['model']))}</code>" + (" (learned)" if header.get("learned") else " (oracle, not learned)"))
    if header.get("suite"):
        facts.append(f"suite <code>{e(str(header['suite']))}</code> v{e(str(header.get('suite_version')))}")
    if header.get("seed") is not None:
        facts.append(f"seed {e(str(header['seed']))}")
    if header.get("samples_per_prompt"):
        facts.append(f"{e(str(header['samples_per_prompt']))} sample(s) per prompt")
    if header.get("geometry"):
        facts.append(f"clips {e(_geometry(header['geometry']))}")
    if facts:
        parts.append(f"<p class='small' id='run-facts'>{' · '.join(facts)}</p>")
    if evaluation:
        spec = evaluation.get("spec") or {}
        parts.append(f"<p class='small' id='evaluation'>Evaluation <code>{e(str(evaluation.get('id')))}</code> "
                     f"(<code>{e(str(evaluation.get('path')))}</code>): backbones {e(str(spec.get('backbones')))}, "
                     f"profile {e(str(spec.get('profile')))}, {len(spec.get('metrics') or [])} metric(s)</p>")
    ref = doc.get("reference") or {}
    if ref:
        parts.append(f"<p class='small' id='reference'>Reference set: {e(str(ref.get('kind')))}"
                     + (f", {ref['n_clips']} clips" if ref.get("n_clips") is not None else "")
                     + (f", <span class='failed'>{ref['n_failed']} failed</span>" if ref.get("n_failed") else "")
                     + (f", {e(_geometry(ref.get('geometry')))}" if ref.get("geometry") else "")
                     + "</p>")
    for w in doc.get("warnings") or []:
        parts.append(f"<p class='warning' role='alert'>⚠ {e(w)}</p>")
    parts.append("<h2>Metrics</h2><table id='metrics'><thead><tr><th>metric</th><th>value</th><th>95% CI</th><th>n</th><th>unit</th><th>direction</th><th>status</th></tr></thead><tbody>")
    for key, m in doc["metrics"].items():
        ci = f"[{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]" if m.get("ci_low") is not None else "—"
        note = ""
        if m["status"] != "ok":
            note = f"<div class='small'>{e(m.get('reason') or '')}{(' — fix: ' + e(m['fix'])) if m.get('fix') else ''}</div>"
        extra = m.get("extra") or {}
        if extra.get("n_not_synchronizable"):
            note += f"<div class='small'>{extra['n_not_synchronizable']} clip(s) not synchronizable ({e(', '.join(f'{k}: {v}' for k, v in (extra.get('not_synchronizable_reasons') or {}).items()))})</div>"
        fdi = extra.get("fd_infinity")
        if isinstance(fdi, dict) and fdi.get("value") is not None:
            note += f"<div class='small'>FD∞ {_fmt(fdi['value'])} (fit against 1/n, R² {_fmt(fdi.get('r2'), 2)})</div>"
        if extra.get("n_with_expected_offset"):
            note += (f"<div class='small'>{extra['n_with_expected_offset']} clip(s) scored against their prompt's "
                     "expected_offset_ms (late by design, e.g. distant thunder): offsets inside that window count as 0</div>")
        warnings = m.get("warnings") or []
        if warnings:
            note += (f"<details class='small'><summary>⚠ {len(warnings)} warning(s)</summary>"
                     + "".join(f"<div>{e(w)}</div>" for w in warnings) + "</details>")
        parts.append(
            f"<tr data-key='{e(key)}'><td><b>{e(m.get('display_name') or key)}</b><div class='small'><code>{e(key)}</code></div>"
            f"<details class='small'><summary>convention</summary>{e(m.get('convention') or '')}</details></td>"
            f"<td class='num'>{_fmt(m.get('value'))}</td><td class='num'>{ci}</td><td class='num'>{m.get('n', 0)}</td>"
            f"<td>{e(m.get('unit') or '')}</td><td class='small'>{_direction(m.get('higher_is_better'))}</td>"
            f"<td><span class='badge {e(m['status'])}'>{e(m['status'])}</span>{note}</td></tr>")
    parts.append("</tbody></table>")
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        parts.append(f"<h2>Failed clips ({len(failed)})</h2><table id='failures'><thead><tr><th>clip</th><th>reason</th><th>detail</th></tr></thead><tbody>")
        for r in failed:
            parts.append(f"<tr><td>{e(str(r['clip_id']))}</td><td>{e(str(r.get('reason')))}</td><td class='small'>{e(str(r.get('error')))}</td></tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Clips</h2><div class='grid'>")
    for r in rows[:200]:
        if r.get("status") != "ok":
            continue
        src = os.path.relpath(r["path"], eval_dir)
        parts.append(f"<div class='card'><video controls preload='metadata' src='{e(src)}'></video>"
                     f"<div><b>{e(str(r.get('prompt_id') or r['clip_id']))}</b> <span class='small'>seed {e(str(r.get('seed')))}</span></div>"
                     f"<div class='small'>{e(str(r.get('prompt_text') or ''))}</div></div>")
    parts.append("</div><p class='small'>Generated by mova-bench. Weight-free backbones (vstats, melstats) are not I3D/VGGish: their Fréchet distances are not FVD/FAD.</p></body></html>")
    return "\n".join(parts)


def write_report(eval_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> Path:
    path = Path(eval_dir) / "report.html"
    write_text_atomic(path, render_report(eval_dir, run_dir))
    return path
