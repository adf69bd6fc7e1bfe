"""Draw the README's guidance-sweep figure from a sweep's ``sweep.csv`` (value and 95% CI per point).

    python docs/sweep_figure.py runs/sweep-mova-tiny-impacts_set-<hash>/sweep.csv docs/img/mova-tiny-guidance-sweep.png
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = [("in_sync_rate", "in-sync rate (all clips) ↑"), ("fd_audio[melstats]", "FD audio [melstats] ↓"),
          ("av_align", "AV-Align (IoU) ↑")]


def main(csv: str, png: str) -> None:
    d = pd.read_csv(csv)
    x = d.columns[0]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(11, 3.2), constrained_layout=True)
    for ax, (key, title) in zip(axes, PANELS):
        m = d[(d.metric == key) & (d.status == "ok")].sort_values(x)
        ax.plot(m[x], m.value, "o-", color="#1f5fa8")
        ax.fill_between(m[x], m.ci_low, m.ci_high, color="#1f5fa8", alpha=0.18, label="95% CI")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(list(m[x]))
        ax.set_xticklabels([f"{v:g}" for v in m[x]])
        ax.set_xlabel(x)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower center", fontsize=8)
    fig.suptitle("mova-tiny on impacts_set: guidance scale sweep (22 clips per point)", fontsize=11)
    fig.savefig(png, dpi=110, metadata={"Software": None})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
