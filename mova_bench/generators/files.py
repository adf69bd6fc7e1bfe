"""Clips generated elsewhere, as a model: ``--model files --set dir=PATH``.

So a folder of clips made by another tool appears in runs, sweeps and comparisons like any model
(``mova-bench evaluate --clips DIR`` scores a folder without a suite; this adapter puts it on a
suite's prompts and seeds). Each clip request is matched to one file in ``dir`` (the video
suffixes of ``evaluate --clips``), first match wins:

1. a mapping file in ``dir``: ``manifest.jsonl`` (a mova-bench run's manifest, or any lines with
   ``clip_id`` and ``path``; only rows whose status is ``ok`` or absent) or ``prompts.jsonl``
   (lines like ``{"clip": "take7.mp4", "clip_id": "glass__s0"}`` or ``{"clip": ..., "prompt_id": "glass"}``,
   optionally with ``sample_index``); paths are relative to ``dir``;
2. a file whose stem is the clip id, ``<prompt_id>__s<k>``;
3. for the first sample of a prompt only: a file whose stem is the prompt id, or a
   ``prompts.jsonl`` line whose ``prompt`` text equals the suite's prompt text.

A request with no file is a per-clip failure with reason ``missing`` (the run goes on, exit 3).
Files are read, never modified; each clip's ``info`` records the source file, how it was matched
and its SHA-256. The harness re-encodes the decoded clip into the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mova_bench.errors import ConfigError, MediaError
from mova_bench.generators.audio_check import finish_clip
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator

CLIP_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})", fix="make it a readable UTF-8 file with one JSON object per line") from None
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{path}:{i}: not JSON; expected one object per line") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}:{i}: expected a JSON object")
        rows.append(obj)
    return rows


class FilesGenerator(Generator):
    name = "files"
    params_schema = {"dir": ""}

    _index: dict[str, Any] | None = None

    def _dir(self) -> Path:
        raw = str(self.params["dir"]).strip()
        if not raw:
            raise ConfigError("model 'files' needs the folder of clips: --set dir=PATH "
                              "(files named <prompt_id>__s<k>.mp4 or <prompt_id>.mp4, or listed in DIR/prompts.jsonl). "
                              "To score a folder without a suite: mova-bench evaluate --clips DIR")
        return Path(raw).expanduser().resolve()

    def _build_index(self) -> dict[str, Any]:
        d = self._dir()
        if not d.is_dir():
            raise ConfigError(f"dir={str(d)!r} is not a folder; give the folder holding your clips")
        try:
            files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES and not p.name.startswith("."))
        except OSError as exc:
            raise ConfigError(f"folder {str(d)!r} cannot be read: {exc.strerror or exc}") from None
        by_stem: dict[str, Path] = {}
        for f in files:
            by_stem.setdefault(f.stem, f)  # a.mp4 before a.mov (sorted): one file per stem
        by_clip: dict[str, tuple[Path, str]] = {}
        by_prompt: dict[tuple[str, int], tuple[Path, str]] = {}
        by_text: dict[str, Path] = {}

        def resolve(name: Any) -> Path | None:
            if not name:
                return None
            p = Path(str(name)).expanduser()
            p = p if p.is_absolute() else d / p
            return p

        manifest = d / "manifest.jsonl"
        if manifest.is_file():
            for row in _read_jsonl(manifest):
                if row.get("status") not in (None, "ok") or not row.get("clip_id"):
                    continue
                p = resolve(row.get("path") or row.get("clip") or row.get("file"))
                if p is not None:
                    by_clip.setdefault(str(row["clip_id"]), (p, "manifest.jsonl"))
        prompts = d / "prompts.jsonl"
        if prompts.is_file():
            for row in _read_jsonl(prompts):
                p = resolve(row.get("clip") or row.get("file") or row.get("path"))
                if p is None:
                    continue
                if row.get("clip_id"):
                    by_clip.setdefault(str(row["clip_id"]), (p, "prompts.jsonl"))
                elif row.get("prompt_id"):
                    k = int(row.get("sample_index") or 0)
                    by_prompt.setdefault((str(row["prompt_id"]), k), (p, "prompts.jsonl"))
                text = row.get("prompt") or row.get("text")
                if text:
                    by_text.setdefault(" ".join(str(text).split()), p)
        if not files and not by_clip and not by_prompt:
            raise ConfigError(f"dir={str(d)!r} holds no clips ({', '.join(CLIP_SUFFIXES)}) and no manifest.jsonl/prompts.jsonl mapping")
        return {"dir": d, "by_stem": by_stem, "by_clip": by_clip, "by_prompt": by_prompt, "by_text": by_text,
                "n_files": len(files)}

    def _lookup(self, request: ClipRequest) -> tuple[Path, str] | None:
        if self._index is None:
            self._index = self._build_index()
        ix = self._index
        if request.clip_id in ix["by_clip"]:
            p, src = ix["by_clip"][request.clip_id]
            return p, f"clip_id in {src}"
        if (request.prompt_id, request.sample_index) in ix["by_prompt"]:
            p, src = ix["by_prompt"][(request.prompt_id, request.sample_index)]
            return p, f"prompt_id in {src}"
        if request.clip_id in ix["by_stem"]:
            return ix["by_stem"][request.clip_id], "clip_id stem"
        if request.sample_index == 0:
            if request.prompt_id in ix["by_stem"]:
                return ix["by_stem"][request.prompt_id], "prompt_id stem"
            text = " ".join(request.prompt_text.split())
            if text in ix["by_text"]:
                return ix["by_text"][text], "prompt text in prompts.jsonl"
        return None

    def check_available(self) -> None:
        self._index = self._build_index()

    def generate(self, request: ClipRequest) -> GeneratedClip:
        from mova_bench.generators.clipfile import read_clip
        from mova_bench.media import file_sha256

        found = self._lookup(request)
        d = self._index["dir"] if self._index else self._dir()
        if found is None:
            hint = "" if request.sample_index == 0 else " (a file named after the prompt id only stands for sample 0)"
            raise MediaError("missing", f"no clip for {request.clip_id!r} in {d}: expected {request.clip_id}.mp4"
                             f"{' or ' + request.prompt_id + '.mp4' if request.sample_index == 0 else ''}, or a line in "
                             f"prompts.jsonl/manifest.jsonl{hint}", str(d))
        path, how = found
        if not path.is_file():
            raise MediaError("missing", f"{how} names {path}, which does not exist", str(path))
        clip = read_clip(path)
        # first_frame_source None: whatever made the file, it was not given a first frame by us
        info = {"source_file": str(path), "matched_by": how, "source_sha256": file_sha256(path),
                "first_frame_source": None, **clip.info}
        return finish_clip(request, clip.video, clip.audio, clip.fps, clip.sample_rate, info, source_data=clip.data)


__all__ = ["FilesGenerator"]
