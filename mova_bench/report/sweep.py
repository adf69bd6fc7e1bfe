"""The HTML report of a sweep folder: every metric against the swept parameters, trade-offs, points.

Self-contained: the plots are matplotlib figures (Agg canvas, never pyplot) embedded as inline
SVG with text kept as text; no script, no stylesheet or font from elsewhere. Points are named by
their parameter values (``av_offset_ms=100``), never by a run folder's hash; the table links to
each run's own report with relative links, so the output folder can be moved or served as is.

One plot per metric with at least one value: the metric against the first swept parameter, with
its 95% CI as a band and bars; the other parameters (if any) give one line per combination of
their values. Trade-off plots put a sync metric (``sync_offset_abs_ms``, ``in_sync_rate``, or
``sync_offset_ms`` when neither was asked for) and ``clip_score`` / ``clap_score`` against the
Fréchet distance of the same modality, one labelled point per grid point.
"""

from __future__ import annotations

import html
import io
import math
import re
from pathlib import Path
from typing import Any

from mova_bench.store import write_text_atomic

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2330;max-width:1200px}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#5b6475;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;width:100%} th,td{padding:.35rem .6rem;border-bottom:1px solid #e3e6ec;text-align:left;vertical-align:top}
th{background:#f5f6f9;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17803d}.skipped,.pending,.missing{color:#8a6d00}.failed,.partial,.interrupted{color:#b42318}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.8rem;background:#eef0f4}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1rem}
figure{margin:0;border:1px solid #e3e6ec;border-radius:.5rem;padding:.5rem} figure svg{width:100%;height:auto}
figcaption{font-size:.85rem;color:#5b6475} .table-wrap{overflow-x:auto}
.small{font-size:.85rem;color:#5b6475} .warning{background:#fff6e0;border-left:4px solid #d9a300;padding:.4rem .7rem} summary{cursor:pointer} code{background:#f5f6f9;padding:0 .25rem}
"""

#: trade-off plots: (y metric names in order of preference, x metric name); the first y present is used
TRADE_OFFS = (
    (("sync_offset_abs_ms",), "fd_video"),
    (("in_sync_rate",), "fd_video"),
    (("clip_score",), "fd_video"),
    (("clap_score",), "fd_audio"),
)
#: used against fd_video when neither sync_offset_abs_ms nor in_sync_rate was asked for
SYNC_FALLBACK = "sync_offset_ms"
COLORS = ("#1f5fbf", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0c8599", "#e67700", "#5c940d", "#495057")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.{digits}f}"
    return html.escape(str(v))


def _direction(h: Any) -> str:
    return "higher is better" if h is True else "lower is better" if h is False else "closer to 0 is better"


def _base(key: str) -> str:
    return key.split("[", 1)[0]


def _mpl(text: str) -> str:
    """Text for matplotlib: ``$`` would start mathtext; control characters are dropped."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(text)).replace("$", r"\$")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _value(p: dict[str, Any], key: str) -> tuple[float, float | None, float | None] | None:
    """(value, ci_low, ci_high) of an ok metric of a point, else None."""
    if p.get("status") not in ("ok", "partial"):
        return None
    m = (p.get("metrics") or {}).get(key) or {}
    if m.get("status") != "ok" or not _is_num(m.get("value")):
        return None
    lo, hi = m.get("ci_low"), m.get("ci_high")
    return float(m["value"]), (float(lo) if _is_num(lo) else None), (float(hi) if _is_num(hi) else None)


def _metric_meta(points: list[dict[str, Any]], key: str) -> dict[str, Any]:
    for p in points:
        m = (p.get("metrics") or {}).get(key)
        if m:
            return m
    return {}


def _metric_keys(doc: dict[str, Any]) -> list[str]:
    keys = list((doc.get("evaluation") or {}).get("metrics") or [])
    for p in doc.get("points") or []:
        keys += [k for k in (p.get("metrics") or {}) if k not in keys]
    return keys


# ---------------------------------------------------------------------------------------------
# figures


def _new_figure(w: float = 6.4, h: float = 3.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend; no pyplot, no display
    return fig, fig.add_subplot()


def _svg(fig, prefix: str) -> str:
    """The figure as inline SVG; ids prefixed so several SVGs can share one HTML document."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return svg.replace("<svg ", "<svg role='img' ", 1)


def _series(doc: dict[str, Any]) -> tuple[str, list[str], list[tuple[str, list[dict[str, Any]]]]]:
    """x parameter, the other parameters, and the points grouped by the others' values (grid order)."""
    keys = list((doc.get("params") or {}).keys())
    x, others = keys[0], keys[1:]
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in doc.get("points") or []:
        name = ", ".join(f"{k}={p['values'][k]}" for k in others)
        groups.setdefault(name, []).append(p)
    return x, others, list(groups.items())


def _x_axis(doc: dict[str, Any], x: str) -> tuple[bool, dict[str, float], list[str]]:
    """Whether the x parameter is numeric; the position of each given value; the values in order."""
    given = list((doc.get("params") or {})[x])
    coerced = {}
    for p in doc.get("points") or []:
        coerced.setdefault(p["values"][x], (p.get("params") or {}).get(x))
    numeric = all(_is_num(coerced.get(v)) for v in given)
    pos = {v: float(coerced[v]) for v in given} if numeric else {v: float(i) for i, v in enumerate(given)}
    return numeric, pos, given


def _metric_plot(doc: dict[str, Any], key: str, prefix: str) -> tuple[str | None, list[str]]:
    """SVG of one metric against the parameters, and the points it could not plot."""
    points = doc.get("points") or []
    meta = _metric_meta(points, key)
    x, others, groups = _series(doc)
    numeric, pos, given = _x_axis(doc, x)
    missing = [p["label"] for p in points if _value(p, key) is None]
    if len(missing) == len(points):
        return None, missing
    fig, ax = _new_figure()
    dodge = 0.0 if numeric or len(groups) == 1 else 0.08
    for gi, (name, pts) in enumerate(groups):
        color = COLORS[gi % len(COLORS)]
        shift = (gi - (len(groups) - 1) / 2) * dodge
        rows = sorted(((pos[p["values"][x]] + shift, *_value(p, key)) for p in pts if _value(p, key) is not None),
                      key=lambda r: r[0])
        if not rows:
            continue
        xs = [r[0] for r in rows]
        ys = [r[1] for r in rows]
        band = [r for r in rows if r[2] is not None and r[3] is not None]
        if len(band) >= 2 and len(band) == len(rows):
            ax.fill_between(xs, [r[2] for r in rows], [r[3] for r in rows], color=color, alpha=0.15, linewidth=0)
        if band:
            ax.vlines([r[0] for r in band], [r[2] for r in band], [r[3] for r in band], color=color, linewidth=1.2)
            ax.scatter([r[0] for r in band] * 2, [r[2] for r in band] + [r[3] for r in band], marker="_", s=60,
                       color=color, linewidths=1.2)
        ax.plot(xs, ys, marker="o", color=color, linewidth=1.6, markersize=5,
                label=_mpl(name) if others else None)
    ax.set_xticks([pos[v] for v in given])
    ax.set_xticklabels([_mpl(v) for v in given])
    ax.set_xlabel(_mpl(x))
    unit = meta.get("unit") or ""
    ax.set_ylabel(_mpl(f"{meta.get('display_name') or key}" + (f" ({unit})" if unit else "")))
    ax.set_title(_mpl(f"{key} vs {x}"), fontsize=11)
    if meta.get("higher_is_better") is None and _base(key).startswith("sync_offset_ms"):
        ax.axhline(0.0, color="#868e96", linewidth=0.8, linestyle="--")
    if others:
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    svg = _svg(fig, prefix)
    return svg, missing


def _trade_off_pairs(keys: list[str]) -> list[tuple[str, str]]:
    pairs = []
    bases = {_base(k) for k in keys}
    for ys, xname in TRADE_OFFS:
        for xk in [k for k in keys if _base(k) == xname]:
            for yk in [k for k in keys if _base(k) in ys]:
                pairs.append((yk, xk))
    if "fd_video" in bases and not bases & {"sync_offset_abs_ms", "in_sync_rate"} and SYNC_FALLBACK in bases:
        for xk in [k for k in keys if _base(k) == "fd_video"]:
            pairs.insert(0, (SYNC_FALLBACK, xk))
    return pairs


def _trade_off_plot(doc: dict[str, Any], ykey: str, xkey: str, prefix: str) -> str | None:
    points = doc.get("points") or []
    x, others, groups = _series(doc)
    _, pos, _ = _x_axis(doc, x)
    both = [p for p in points if _value(p, xkey) is not None and _value(p, ykey) is not None]
    if not both:
        return None
    fig, ax = _new_figure(6.4, 4.2)
    at: dict[tuple[float, float], list[tuple[int, str, str]]] = {}
    label_of = {p["label"]: p["values"][x] for p in points}
    for gi, (name, pts) in enumerate(groups):
        color = COLORS[gi % len(COLORS)]
        rows = sorted(((pos[p["values"][x]], _value(p, xkey), _value(p, ykey), p["label"]) for p in pts
                       if _value(p, xkey) is not None and _value(p, ykey) is not None), key=lambda r: r[0])
        if not rows:
            continue
        for _, (xv, xlo, xhi), (yv, ylo, yhi), _label in rows:
            if xlo is not None and xhi is not None:
                ax.hlines(yv, xlo, xhi, color=color, linewidth=1.0, alpha=0.7)
            if ylo is not None and yhi is not None:
                ax.vlines(xv, ylo, yhi, color=color, linewidth=1.0, alpha=0.7)
        ax.plot([r[1][0] for r in rows], [r[2][0] for r in rows], marker="o", color=color, linewidth=1.0,
                markersize=5, alpha=0.9, label=_mpl(name) if others else None)
        for _, (xv, *_x), (yv, *_y), label in rows:  # with a legend for the others, the x parameter suffices
            short = f"{x}={label_of[label]}" if others else label
            at.setdefault((round(xv, 9), round(yv, 9)), []).append((gi, short, label))
    ax.margins(x=0.08, y=0.12)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for (xv, yv), entries in at.items():  # points that coincide get their labels stacked, one a line
        right, upper = xv > x0 + 0.7 * (x1 - x0), yv > y0 + 0.6 * (y1 - y0)  # keep labels inside the axes
        one_series = len({series for series, _, _ in entries}) == 1
        for i, (_, short, full) in enumerate(entries):
            dy = 4 + 9 * i
            ax.annotate(_mpl(short if one_series else full), (xv, yv), textcoords="offset points",
                        xytext=(-5 if right else 5, -dy if upper else dy), fontsize=7, color="#1d2330",
                        ha="right" if right else "left", va="top" if upper else "bottom")
    xmeta, ymeta = _metric_meta(points, xkey), _metric_meta(points, ykey)
    ax.set_xlabel(_mpl(f"{xkey}" + (f" ({xmeta['unit']})" if xmeta.get("unit") else "") + f" — {_direction(xmeta.get('higher_is_better'))}"))
    ax.set_ylabel(_mpl(f"{ykey}" + (f" ({ymeta['unit']})" if ymeta.get("unit") else "")))
    ax.set_title(_mpl(f"trade-off: {ykey} vs {xkey}"), fontsize=11)
    if others:
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return _svg(fig, prefix)


# ---------------------------------------------------------------------------------------------
# the page


def render_sweep_report(sweep_dir: str | Path, doc: dict[str, Any]) -> str:
    """The report of the sweep ``doc`` (sweep.json's content); run links are relative to ``sweep_dir``."""
    e = html.escape
    points = doc.get("points") or []
    params = doc.get("params") or {}
    keys = _metric_keys(doc)
    title = doc.get("title") or "mova-bench sweep"
    n_bad = sum(p.get("status") != "ok" for p in points)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f"<p class='sub'>{len(points)} point(s), <span class='{e(str(doc.get('status')))}'>{n_bad} failed or with "
             f"failed clips</span> · sweep folder <code>{e(Path(sweep_dir).name)}</code></p>"]
    facts = [f"model <code>{e(str(doc.get('model')))}</code>" + (" (learned)" if doc.get("learned") else " (oracle, not learned)"),
             f"suite <code>{e(str(doc.get('suite')))}</code> v{e(str(doc.get('suite_version')))}",
             f"seed {e(str(doc.get('seed')))}", f"{e(str(doc.get('samples_per_prompt')))} sample(s) per prompt"]
    facts.append("swept: " + "; ".join(f"<code>{e(k)}</code> = {e(', '.join(v))}" for k, v in params.items()))
    if doc.get("fixed"):
        facts.append("fixed: " + ", ".join(f"<code>{e(f'{k}={v}')}</code>" for k, v in doc["fixed"].items()))
    ev = doc.get("evaluation") or {}
    facts.append(f"backbones {e(str(ev.get('backbones')))}" + (f", reference <code>{e(str(ev['reference']))}</code>" if ev.get("reference") else ", the suite's reference"))
    parts.append(f"<p class='small' id='sweep-facts'>{' · '.join(facts)}</p>")
    notes: list[str] = []
    for p in points:
        for n in p.get("notes") or []:
            if n not in notes:
                notes.append(n)
    if notes:
        parts.append(f"<details class='small' id='notes'><summary>⚠ {len(notes)} note(s) from the runs</summary>"
                     + "".join(f"<div>{e(n)}</div>" for n in notes) + "</details>")

    # metric plots
    parts.append("<h2>Metrics against the parameters</h2>")
    parts.append("<p class='small'>Points are the metric's value; bars and bands its 95% bootstrap CI. "
                 + ("One line per value of " + e(", ".join(list(params)[1:])) + ". " if len(params) > 1 else "")
                 + "Points that failed or have no value are left out and listed under the plot.</p>")
    parts.append("<div class='plots' id='metric-plots'>")
    not_plotted = []
    for i, key in enumerate(keys):
        svg, missing = _metric_plot(doc, key, f"m{i}")
        meta = _metric_meta(points, key)
        if svg is None:
            reasons = sorted({str(((p.get("metrics") or {}).get(key) or {}).get("status") or p.get("status"))
                              + (f": {((p.get('metrics') or {}).get(key) or {}).get('reason')}"
                                 if ((p.get("metrics") or {}).get(key) or {}).get("reason") else "") for p in points})
            not_plotted.append(f"<li><code>{e(key)}</code>: {e('; '.join(reasons))}</li>")
            continue
        cap = f"<b>{e(meta.get('display_name') or key)}</b> <code>{e(key)}</code> · {e(meta.get('unit') or 'no unit')} · {_direction(meta.get('higher_is_better'))}"
        if missing:
            cap += f"<br>not plotted: {e('; '.join(missing))}"
        parts.append(f"<figure class='plot metric-plot' data-metric='{e(key)}'>{svg}<figcaption>{cap}</figcaption></figure>")
    parts.append("</div>")
    if not_plotted:
        parts.append(f"<p class='small'>No value at any point (not plotted):</p><ul class='small' id='not-plotted'>{''.join(not_plotted)}</ul>")

    # trade-offs
    trade = []
    for j, (yk, xk) in enumerate(_trade_off_pairs(keys)):
        svg = _trade_off_plot(doc, yk, xk, f"t{j}")
        if svg:
            trade.append(f"<figure class='plot trade-off-plot' data-x='{e(xk)}' data-y='{e(yk)}'>{svg}"
                         f"<figcaption><code>{e(yk)}</code> against <code>{e(xk)}</code>; each point is labelled by its "
                         f"parameter values; lines are 95% CIs</figcaption></figure>")
    if trade:
        parts.append("<h2>Trade-offs</h2><div class='plots' id='trade-off-plots'>" + "".join(trade) + "</div>")

    # points table
    parts.append("<h2>Points</h2><div class='table-wrap'><table id='points'><thead><tr>"
                 + "".join(f"<th>{e(k)}</th>" for k in params) + "<th>status</th>"
                 + "".join(f"<th>{e(k)}</th>" for k in keys) + "<th>run</th></tr></thead><tbody>")
    for p in points:
        cells = "".join(f"<td class='num'>{e(str(p['values'][k]))}</td>" for k in params)
        status = str(p.get("status"))
        st = f"<span class='badge {e(status)}'>{e(status)}</span>"
        if p.get("n_failed"):
            st += f"<div class='small'>{e(str(p['n_failed']))} of {e(str(p.get('n_clips')))} clips failed</div>"
        if p.get("error"):
            st += f"<div class='small'>{e(str(p['error']))}" + (f" — fix: {e(str(p['fix']))}" if p.get("fix") else "") + "</div>"
        mcells = ""
        for k in keys:
            m = (p.get("metrics") or {}).get(k)
            if not m:
                mcells += "<td class='num'>—</td>"
            elif m.get("status") == "ok":
                ci = f"<div class='small'>[{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]</div>" if m.get("ci_low") is not None else ""
                mcells += f"<td class='num'>{_fmt(m.get('value'))}{ci}<div class='small'>n={e(str(m.get('n')))}</div></td>"
            else:
                mcells += f"<td class='num'><span class='{e(str(m.get('status')))}' title='{e(str(m.get('reason') or ''))}'>{e(str(m.get('status')))}</span></td>"
        link = "—"
        if p.get("run_dir"):
            href = str(p["run_dir"]).rstrip("/") + "/report.html"
            tip = f" title='evaluation {e(str(p['evaluation']))}'" if p.get("evaluation") else ""
            link = f"<a href='{e(href)}'{tip}>run report</a>"
        parts.append(f"<tr data-point='{e(p.get('label', ''))}'>{cells}<td>{st}</td>{mcells}<td>{link}</td></tr>")
    parts.append("</tbody></table></div>")
    parts.append(f"<p class='small'>Every point is an ordinary run folder next to this sweep folder. Data: "
                 f"<a href='{e(str(doc.get('csv') or 'sweep.csv'))}'>sweep.csv</a> (one row per point × metric), "
                 f"<a href='sweep.json'>sweep.json</a>. Generated by mova-bench {e(str(doc.get('mova_bench') or ''))}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_sweep_report(sweep_dir: str | Path, doc: dict[str, Any]) -> Path:
    path = Path(sweep_dir) / "report.html"
    write_text_atomic(path, render_sweep_report(sweep_dir, doc))
    return path
