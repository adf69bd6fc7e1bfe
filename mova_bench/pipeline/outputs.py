"""Stage 7: what an evaluation writes — per_clip.parquet, metrics.json, provenance.json, report.html.

Each evaluation spec writes into its own folder ``evals/<id>/`` of the run; the latest one is also
copied to the run folder's top level (``metrics.json``, ``per_clip.parquet``, ``provenance.json``,
``report.html``), which says which evaluation it shows. Every file is written atomically.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench import __version__
from mova_bench.metrics.base import FeatureSet, MetricResult
from mova_bench.store import atomic_path, sanitize_floats, write_json_atomic

#: the files an evaluation writes, copied to the run folder's top level for the latest one
EVAL_FILES = ("metrics.json", "per_clip.parquet", "provenance.json")


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    n_clips: int
    n_failed: int
    metrics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    eval_id: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 3 if self.n_failed else 0

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "status": self.status, "n_clips": self.n_clips,
                "n_failed": self.n_failed, "evaluation": self.eval_id, "metrics": self.metrics}


def write_per_clip(path: Path, rows: list[dict[str, Any]], results: dict[str, MetricResult], gen: FeatureSet) -> None:
    """One row per clip (failed ones included) with its status and per-clip metric columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = ("clip_id", "prompt_id", "prompt_text", "seed", "status", "reason", "error", "path", "content_hash")
    cols: dict[str, list[Any]] = {k: [] for k in base}
    metric_cols = {r.per_clip_column: r.per_clip for r in results.values() if r.per_clip}
    out_metric: dict[str, list[Any]] = {k: [] for k in metric_cols}
    sync_cols: dict[str, list[Any]] = {"sync_status": [], "sync_offset_raw_ms": [], "sync_confidence": []}
    sync = gen.features.get("sync_dsp", {})

    def num(v: Any) -> float | None:
        return None if v is None or not np.isfinite(float(v)) else float(v)

    for r in rows:
        for k in cols:
            cols[k].append(r.get(k))
        for k, per in metric_cols.items():
            out_metric[k].append(num(per.get(r["clip_id"])))
        s = sync.get(r["clip_id"]) or {}
        sync_cols["sync_status"].append(str(s["status"]) if "status" in s else None)
        sync_cols["sync_offset_raw_ms"].append(num(s.get("offset_ms")))
        sync_cols["sync_confidence"].append(num(s.get("confidence")))
    if not sync:
        sync_cols = {}
    table = pa.table({**cols, **out_metric, **sync_cols})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def devices() -> dict[str, Any]:
    """The compute devices of this machine: CPU model and cores, and GPUs where visible."""
    import platform
    import sys

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    out: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(),
                           "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                           "gpus": []}
    torch = sys.modules.get("torch")  # only when a backend already imported it: never pay its import here
    if torch is not None:
        try:
            if torch.cuda.is_available():
                out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:  # noqa: BLE001
            pass
    if not out["gpus"]:
        nv = Path("/proc/driver/nvidia/gpus")
        if nv.is_dir():
            for d in sorted(nv.iterdir()):
                try:
                    info = (d / "information").read_text()
                    out["gpus"].append(next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("Model")), d.name))
                except OSError:
                    pass
    return out


def provenance(inputs: dict[str, Any]) -> dict[str, Any]:
    import platform
    import subprocess
    from importlib import metadata

    pkgs = {}
    for name in ("numpy", "scipy", "av", "soxr", "opencv-python-headless", "scikit-learn", "librosa", "pydantic", "pyarrow", "torch"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    git = None
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import av

        ffmpeg = {k: str(v) for k, v in av.library_versions.items()}
    except Exception:  # noqa: BLE001
        ffmpeg = {}
    return {
        "mova_bench": __version__, "git_commit": git, "python": platform.python_version(),
        "platform": platform.platform(), "device": devices(), "packages": pkgs, "ffmpeg_libraries": ffmpeg,
        "inputs": inputs,
    }


def write_evaluation(run_dir: Path, eval_dir: Path, rows: list[dict[str, Any]], results: dict[str, MetricResult],
                     gen: FeatureSet, *, evaluation: dict[str, Any], reference: dict[str, Any] | None,
                     header: dict[str, Any], inputs: dict[str, Any], timings: dict[str, float],
                     warnings: list[str]) -> RunOutcome:
    """Write one evaluation into ``eval_dir`` and make it the run folder's top-level view."""
    from mova_bench.report import write_report
    from mova_bench.pipeline.scoring import console_notes

    write_per_clip(eval_dir / "per_clip.parquet", rows, results, gen)
    failed = [r for r in rows if r.get("status") != "ok"]
    failures: dict[str, int] = {}
    for r in failed:
        failures[r.get("reason") or "error"] = failures.get(r.get("reason") or "error", 0) + 1
    metrics_json = {k: sanitize_floats(v.to_json()) for k, v in results.items()}
    status = "ok" if not failed else "partial"
    doc = {"status": status, "n_clips": len(rows), "n_failed": len(failed), "failures": failures,
           "title": header.get("title"), "header": header, "evaluation": evaluation,
           "reference": reference, "warnings": warnings, "metrics": metrics_json,
           "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json_atomic(eval_dir / "metrics.json", sanitize_floats(doc), sort_keys=False)  # metrics in the order asked for
    write_json_atomic(eval_dir / "provenance.json", sanitize_floats({**provenance(inputs), "timings": timings}))
    write_report(eval_dir, run_dir=run_dir)
    for name in EVAL_FILES:  # the latest evaluation is the run's top-level view
        with atomic_path(run_dir / name) as tmp:
            shutil.copyfile(eval_dir / name, tmp)
    write_report(run_dir, run_dir=run_dir)
    return RunOutcome(run_dir, status, len(rows), len(failed), metrics_json, timings, evaluation["id"],
                      notes=[*warnings, *console_notes(metrics_json)])
