"""The report's figures: matplotlib, rendered headless to SVG strings for inline embedding.

No pyplot and no global backend switch: each figure is a :class:`matplotlib.figure.Figure` saved
with the SVG backend, so rendering a report never opens a window nor changes the backend of the
process that calls it. Text stays text (``svg.fonttype = none``): smaller files, selectable labels,
and every label is escaped by matplotlib's XML writer. Labels come from user data (prompt ids, tags),
so ``$`` is escaped before matplotlib could read it as mathtext.
"""

from __future__ import annotations

import io
import re
from typing import Any, Iterable, Sequence

import numpy as np

#: ITU-R BT.1359 detectability window for the sync offset (ms, + = audio late)
BT1359_EARLY_MS = -45.0
BT1359_LATE_MS = 125.0

_RC = {
    "svg.fonttype": "none",
    "font.family": ["DejaVu Sans", "sans-serif"],
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#8a93a3",
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.grid": True,
    "grid.color": "#e6e9ef",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "text.usetex": False,
}

ACCENT = "#2f5fb3"
MUTED = "#9aa3b2"
WINDOW = "#cfe8d5"
ALT = "#d9822b"


def label(text: Any, limit: int = 34) -> str:
    """User text made safe for a matplotlib label: no mathtext, no control characters, bounded."""
    s = re.sub(r"[\x00-\x1f\x7f]", " ", str(text))
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=72)


def to_svg(fig, *, name: str, title: str) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog), with an accessible name."""
    from markupsafe import escape

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight", pad_inches=0.06)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    # ids of clip paths etc. are hashes salted per plot, so several inline SVGs never share an id
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{name}-{m.group(1)}"', svg)
    svg = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{name}-{m.group(1)})", svg)
    svg = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{name}-{m.group(2)}"', svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" class="plot-svg" ', 1)


def _rc():
    import matplotlib

    return matplotlib.rc_context(_RC)


def metric_ci(name: str, title: str, value: float, lo: float | None, hi: float | None, unit: str,
              direction: str, reference: float | None = None, bounds: tuple[float, float] | None = None) -> str:
    """One metric: its value and its 95% CI as an error bar, on its own axis and unit."""
    from matplotlib.ticker import MaxNLocator

    with _rc():
        fig = _figure(3.3, 1.05)
        ax = fig.add_subplot()
        if lo is not None and hi is not None:
            ax.hlines(0, lo, hi, color=ACCENT, linewidth=2.2, alpha=0.45)
            ax.vlines([lo, hi], -0.18, 0.18, color=ACCENT, linewidth=1.2)
        ax.plot([value], [0], "o", color=ACCENT, markersize=6, zorder=3)
        if reference is not None:
            ax.axvline(reference, color=MUTED, linewidth=0.8, linestyle="--")
        lo_x = min(v for v in (value, lo, hi, reference) if v is not None)
        hi_x = max(v for v in (value, lo, hi, reference) if v is not None)
        span = hi_x - lo_x
        pad = span * 0.15 if span > 0 else (abs(value) * 0.1 or 1.0)
        xlim = [lo_x - pad, hi_x + pad]
        if bounds is not None and np.isfinite(bounds[1] - bounds[0]):  # [0, 1] quantities: the whole range
            room = 0.03 * (bounds[1] - bounds[0])
            xlim = [bounds[0] - room, bounds[1] + room]
        elif bounds is not None:  # non-negative quantities: never below 0
            xlim[0] = max(xlim[0], bounds[0])
        ax.set_xlim(*xlim)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.set_ylim(-0.6, 0.6)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.grid(axis="y", visible=False)
        ax.set_title(label(title, 48), loc="left")
        ax.set_xlabel(label(f"{unit + ' · ' if unit else ''}{direction}", 60))
        return to_svg(fig, name=name, title=f"{title}: value with 95% confidence interval")


def breakdown(name: str, title: str, groups: Sequence[str], values: Sequence[Sequence[float | None]], unit: str = "",
              window: tuple[float, float] | None = None) -> str:
    """One per-clip metric per group (prompt or tag): grey dots are clips, the diamond is the
    group's mean; ``values`` holds each group's per-clip values (missing ones are skipped)."""
    from matplotlib.ticker import MaxNLocator

    n = len(groups)
    with _rc():
        fig = _figure(3.3, 0.62 + 0.2 * max(n, 2))
        ax = fig.add_subplot()
        if window:
            ax.axvspan(*window, color=WINDOW, alpha=0.7, linewidth=0)
        ys = np.arange(n)
        rng = np.random.default_rng(0)
        for y, vals in zip(ys, values):
            vals = np.asarray([v for v in vals if v is not None and np.isfinite(v)], float)
            if vals.size == 0:
                continue
            jitter = rng.uniform(-0.18, 0.18, vals.size) if vals.size > 1 else np.zeros(1)
            ax.plot(vals, y + jitter, "o", color=MUTED, markersize=3, alpha=0.85, linestyle="none")
            ax.plot([vals.mean()], [y], "D", color=ACCENT, markersize=5, zorder=3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.set_yticks(ys, [label(g, 24) for g in groups])
        ax.set_ylim(n - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="y", visible=False)
        ax.set_title(label(title, 48), loc="left")
        if unit:
            ax.set_xlabel(label(unit, 40))
        return to_svg(fig, name=name, title=f"{title}: per-clip values and mean per group")


def offset_histogram(name: str, offsets: Iterable[float], expected: Iterable[bool], n_unsync: int) -> str:
    """Per-clip raw sync offsets with the BT.1359 window (−45 ms early … +125 ms late) shaded."""
    offsets = np.asarray(list(offsets), float)
    expected = np.asarray(list(expected), bool)
    with _rc():
        fig = _figure(6.4, 2.5)
        ax = fig.add_subplot()
        lo = min(offsets.min(), BT1359_EARLY_MS - 20) if offsets.size else BT1359_EARLY_MS - 20
        hi = max(offsets.max(), BT1359_LATE_MS + 20) if offsets.size else BT1359_LATE_MS + 20
        edges = np.histogram_bin_edges(offsets if offsets.size else [0.0], bins=min(40, max(10, offsets.size)), range=(lo, hi))
        ax.axvspan(BT1359_EARLY_MS, BT1359_LATE_MS, color=WINDOW, alpha=0.8, linewidth=0,
                   label="BT.1359 window (−45 … +125 ms)")
        ax.axvline(0, color=MUTED, linewidth=0.8, linestyle="--")
        data = [offsets[~expected], offsets[expected]]
        labels = ["clips", "clips whose prompt expects a delay (e.g. distant thunder)"]
        colors = [ACCENT, ALT]
        keep = [i for i in range(2) if data[i].size]
        if keep:
            ax.hist([data[i] for i in keep], bins=edges, stacked=True, color=[colors[i] for i in keep],
                    label=[labels[i] for i in keep], edgecolor="white", linewidth=0.5)
        ax.set_xlabel("raw onset-to-motion offset (ms), + = audio late")
        ax.set_ylabel("clips")
        ax.yaxis.get_major_locator().set_params(integer=True)
        title = f"Sync offsets of {offsets.size} clip(s)"
        if n_unsync:
            title += f"; {n_unsync} not synchronizable (no offset)"
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=7, frameon=False)
        return to_svg(fig, name=name, title="Histogram of per-clip sync offsets with the BT.1359 window shaded")


def probability_histogram(name: str, p: Iterable[float], auc: float | None) -> str:
    """The detector's per-clip P(synthetic) on the generated clips."""
    p = np.asarray(list(p), float)
    with _rc():
        fig = _figure(6.4, 2.3)
        ax = fig.add_subplot()
        ax.hist(p, bins=np.linspace(0, 1, 21), color=ACCENT, edgecolor="white", linewidth=0.5)
        ax.axvline(0.5, color=MUTED, linewidth=0.8, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_xlabel("P(synthetic) from the held-out detector (0 = looks real, 1 = looks generated)")
        ax.set_ylabel("clips")
        ax.yaxis.get_major_locator().set_params(integer=True)
        title = f"Detector P(synthetic) of {p.size} clip(s)"
        if auc is not None:
            title += f"; AUC {auc:.3f} (0.5 = indistinguishable)"
        ax.set_title(title)
        return to_svg(fig, name=name, title="Histogram of the detector's per-clip P(synthetic)")
