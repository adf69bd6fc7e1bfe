"""Stage 3: clips that already exist — a folder generated elsewhere, or a run folder read back.

Files are read, never copied or modified. A file that can't be used becomes a failed row with its
reason (empty, unreadable, ...); a folder that can't be read is a ConfigError naming the fix.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from mova_bench.console import log
from mova_bench.errors import ConfigError, MediaError
from mova_bench.media import file_sha256, probe_streams
from mova_bench.pipeline.requests import Geometry
from mova_bench.store import read_json, read_manifest
from mova_bench.suites import Suite

CLIP_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def _prompt_map(prompts_file: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not prompts_file.exists():
        return out
    try:
        text = prompts_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{prompts_file}: cannot be read ({exc})",
                          fix="make it a readable UTF-8 file with one JSON object per line") from None
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise ConfigError(f"{prompts_file}:{i}: not JSON; expected {{\"clip\": \"name.mp4\", \"prompt\": \"...\"}}") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{prompts_file}:{i}: expected a JSON object like {{\"clip\": \"name.mp4\", \"prompt\": \"...\"}}")
            name = str(obj.get("clip") or obj.get("file") or obj.get("id") or "")
            out[name] = obj
    return out


def folder_rows(clips_dir: Path, suite: Suite | None, prefix: str = "") -> list[dict[str, Any]]:
    """Manifest rows for every video file in a folder (nothing is copied or modified)."""
    clips_dir = Path(clips_dir)
    if not clips_dir.is_dir():
        raise ConfigError(f"--clips {str(clips_dir)!r} is not a folder; give the folder holding your .mp4 files")
    try:
        entries = sorted(p for p in clips_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise ConfigError(f"folder {str(clips_dir)!r} cannot be read: {exc.strerror or exc}",
                          fix=f"give this user read access (chmod u+rx {clips_dir})") from None
    prompt_map = _prompt_map(clips_dir / "prompts.jsonl")
    files = [p for p in entries if p.suffix.lower() in CLIP_SUFFIXES]
    ignored = [p.name for p in entries if p not in files and p.name != "prompts.jsonl"]
    if ignored:
        log(f"ignoring {len(ignored)} file(s) without a video extension ({', '.join(CLIP_SUFFIXES)}): "
            f"{', '.join(ignored[:5])}{' …' if len(ignored) > 5 else ''}")
    names = {f.name for f in files} | {f.stem for f in files}
    unknown = [k for k in prompt_map if k not in names and Path(k).stem not in names]
    if unknown:
        log(f"warning: prompts.jsonl names {len(unknown)} clip(s) that are not in {clips_dir}: "
            f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''} (their prompts are not used)")
    stems = [f.stem for f in files]
    rows = []
    for f in files:
        stem = f.stem if stems.count(f.stem) == 1 else f.name  # a.mp4 and a.mov stay two clips
        obj = prompt_map.get(f.name) or prompt_map.get(stem) or prompt_map.get(f.stem)
        pid, text, exp = None, None, None
        if obj is not None:
            pid = obj.get("prompt_id") or stem
            text = obj.get("prompt") or obj.get("text")
        if suite is not None:
            p = suite.prompt(pid or stem) or suite.prompt(stem.split("__")[0])
            if p is not None:
                pid, text, exp = p.id, text or p.text, p.expected_offset_ms
        row = {
            "clip_id": prefix + stem, "prompt_id": pid, "prompt_text": text, "seed": None, "sample_index": None,
            "generator": "files", "generator_args": {}, "path": str(f.resolve()), "duration_s": None, "fps": None,
            "sample_rate": None, "width": None, "height": None, "content_hash": None, "status": "ok",
            "error": None, "reason": None, "first_frame": None, "first_frame_source": None,
            "expected_offset_ms": list(exp) if exp else None, "tags": [], "info": {},
        }
        try:
            if f.stat().st_size == 0:
                raise MediaError("empty", "file has 0 bytes", str(f))
            row["content_hash"] = file_sha256(f)
        except MediaError as exc:
            row.update(status="failed", reason=exc.reason, error=str(exc))
        except OSError as exc:
            row.update(status="failed", reason="unreadable", error=f"{f}: unreadable: {exc.strerror or exc}")
        rows.append(row)
    return rows


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``run_spec.json`` and the manifest of an existing run folder."""
    run_dir = Path(run_dir)
    spec_path = run_dir / "run_spec.json"
    if not spec_path.is_file():
        raise ConfigError(f"--run {str(run_dir)!r} is not a run folder (no run_spec.json)",
                          fix="give a folder printed by `mova-bench run` or `mova-bench evaluate --clips`")
    try:
        doc = read_json(spec_path)
        rows = read_manifest(run_dir / "manifest.jsonl")
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{run_dir}: run folder cannot be read ({exc})") from None
    if not rows:
        raise ConfigError(f"{run_dir}: the manifest lists no clips; run the generation first (`mova-bench run ...`)")
    return doc, rows


def verify_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``rows`` where every ok clip still has the content hash it was recorded with."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("status") == "ok":
            try:
                now = file_sha256(r["path"])
            except FileNotFoundError:
                r.update(status="failed", reason="missing", error=f"{r['path']}: the file is gone")
            except OSError as exc:
                r.update(status="failed", reason="unreadable", error=f"{r['path']}: unreadable: {exc.strerror or exc}")
            else:
                if now != r.get("content_hash"):
                    r.update(status="failed", reason="changed",
                             error=f"{r['path']}: content changed since it was recorded; rerun the generation to restore it")
        out.append(r)
    return out


def probe_geometry(rows: list[dict[str, Any]], fallback: Geometry, limit: int = 16) -> tuple[Geometry, str]:
    """The typical format of the usable clips in ``rows`` (median over up to ``limit`` clips)."""
    seen: list[dict[str, Any]] = []
    for r in rows:
        if r.get("status") != "ok" or len(seen) >= limit:
            continue
        try:
            s = probe_streams(r["path"])
        except Exception:  # noqa: BLE001 - a clip that can't be probed fails later, with its reason
            continue
        if s["video"] and s["audio"] and s.get("duration_s"):
            v, a = s["video"][0], s["audio"][0]
            if v["width"] and v["height"] and v["fps"] and a["sample_rate"]:
                seen.append({"w": v["width"], "h": v["height"], "fps": v["fps"], "sr": a["sample_rate"], "d": s["duration_s"]})
    if not seen:
        return fallback, "suite defaults (no clip could be probed)"

    def med(k: str) -> float:
        return float(statistics.median(x[k] for x in seen))

    even = lambda v: max(16, int(round(v / 2.0)) * 2)  # noqa: E731 - H.264 wants even sizes
    geo = Geometry(duration_s=round(min(600.0, med("d")), 3), fps=round(med("fps"), 3), sample_rate=int(med("sr")),
                   width=even(med("w")), height=even(med("h")))
    return geo, f"median of {len(seen)} probed clip(s)"
