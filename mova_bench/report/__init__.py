"""HTML report of a run folder (self-contained; clips are linked relative to the report)."""

from mova_bench.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
