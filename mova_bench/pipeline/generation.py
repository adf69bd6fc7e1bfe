"""Stage 2: clip requests → ``clips/*.mp4`` + ``manifest.jsonl``, resumable.

The manifest, never a file-name pattern, is the contract between generation and evaluation. It
records generation only: a clip that later fails analysis stays ``ok`` here (its evaluation says
why it could not be scored), so re-scoring never regenerates it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mova_bench.cards import ModelCard, load_card
from mova_bench.errors import MediaError
from mova_bench.executors import TaskFailure
from mova_bench.generators.base import ClipRequest
from mova_bench.media import file_sha256, probe_streams, write_mp4
from mova_bench.store import atomic_path, read_manifest, slug, write_manifest


@dataclass(frozen=True)
class GenTask:
    request: ClipRequest
    out_path: str
    model: str
    params: tuple[tuple[str, Any], ...]
    card_path: str | None


_generators: dict[Any, Any] = {}


def _generator_for(model: str, params: dict[str, Any], card_path: str | None):
    """One loaded generator per process and configuration (weights load once)."""
    key = (model, tuple(sorted(params.items())), card_path)
    if key not in _generators:
        card = load_card(card_path or model)
        gen = card.adapter_class()(card_defaults=card.defaults, card=card, **params)
        gen.load()
        _generators[key] = gen
    return _generators[key]


def generate_clip(task: GenTask) -> dict[str, Any]:
    """Generate one clip and write it atomically; returns the manifest fields it fills."""
    gen = _generator_for(task.model, dict(task.params), task.card_path)
    t0 = time.perf_counter()
    clip = gen.generate(task.request)
    with atomic_path(task.out_path, suffix=".mp4") as tmp:
        if clip.source_data is not None:
            # the model's own file, byte for byte: re-encoding would score a second, lossy generation
            Path(tmp).write_bytes(clip.source_data)
            stored = "the model's file, byte for byte"
        else:
            write_mp4(tmp, clip.video, clip.fps, clip.audio, clip.sample_rate)
            stored = "encoded by mova-bench (H.264 + AAC) from the generator's arrays"
        streams = probe_streams(tmp)
        if not streams["audio"]:
            raise MediaError("no_audio_stream", "the generator's output has no audio stream", task.out_path)
    info = dict(clip.info)
    return {
        "content_hash": file_sha256(task.out_path),
        "duration_s": clip.video.shape[0] / clip.fps,
        "fps": clip.fps,
        "sample_rate": clip.sample_rate,
        "width": int(clip.video.shape[2]),
        "height": int(clip.video.shape[1]),
        "first_frame_source": info.pop("first_frame_source", "suite" if task.request.first_frame else None),
        "info": {**info, "stored": stored, "generation_s": round(time.perf_counter() - t0, 4)},
    }


def manifest_row(req: ClipRequest, model: str, params: dict[str, Any], path: str) -> dict[str, Any]:
    return {
        "clip_id": req.clip_id, "prompt_id": req.prompt_id, "prompt_text": req.prompt_text,
        "seed": req.seed, "sample_index": req.sample_index, "generator": model, "generator_args": params,
        "path": path, "duration_s": req.duration_s, "fps": req.fps, "sample_rate": req.sample_rate,
        "width": req.width, "height": req.height, "content_hash": None, "status": "pending",
        "error": None, "reason": None, "first_frame": req.first_frame, "first_frame_source": None,
        "expected_offset_ms": list(req.expected_offset_ms) if req.expected_offset_ms else None,
        "tags": list(req.tags), "info": {},
    }


def clip_is_done(row: dict[str, Any], path: Path) -> bool:
    return bool(row.get("status") == "ok" and path.is_file() and row.get("content_hash")
                and file_sha256(path) == row["content_hash"])


def generate_set(requests: list[ClipRequest], *, model: str, params: dict[str, Any], card: ModelCard,
                 clips_dir: Path, manifest_path: Path, executor, desc: str) -> list[dict[str, Any]]:
    """Generate what is missing, resuming from the manifest (finished clips verified by hash)."""
    existing = {r["clip_id"]: r for r in read_manifest(manifest_path)}
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for req in requests:
        path = clips_dir / f"{slug(req.clip_id)}.mp4"
        old = existing.get(req.clip_id)
        if old is not None and clip_is_done(old, path):
            rows[req.clip_id] = old
            continue
        rows[req.clip_id] = manifest_row(req, model, params, str(path))
        todo.append(GenTask(req, str(path), model, tuple(sorted(params.items())), card.source))
    order = [r.clip_id for r in requests]
    if todo:
        clips_dir.mkdir(parents=True, exist_ok=True)
        for task, result in executor.map(generate_clip, todo, desc=desc):
            row = rows[task.request.clip_id]
            if isinstance(result, TaskFailure):
                row.update(status="failed", error=result.error, reason=result.reason)
            else:
                row.update(result, status="ok", error=None, reason=None)
            write_manifest(manifest_path, [rows[c] for c in order])
    else:
        write_manifest(manifest_path, [rows[c] for c in order])
    return [rows[c] for c in order]
