"""Run folders: frozen run specs, atomic writes, the manifest.

A run lives in one folder whose name derives from its frozen run spec, so the same command
resumes instead of starting over. Every write goes to a temporary file in the same folder and is
renamed into place, so a run killed at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

MANIFEST_FIELDS = (
    "clip_id", "prompt_id", "prompt_text", "seed", "sample_index", "generator", "generator_args",
    "path", "duration_s", "fps", "sample_rate", "width", "height", "content_hash", "status",
    "error", "reason", "first_frame", "first_frame_source", "expected_offset_ms", "tags", "info",
)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def spec_hash(spec: dict[str, Any], length: int = 10) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:length]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def current_umask() -> int:
    """The process umask (read by setting and restoring it; os has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(suffix or path.suffix) + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; files are shared like any other
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def write_json_atomic(path: str | os.PathLike, obj: Any, *, sort_keys: bool = True) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=str, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_manifest(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Rewrite the whole manifest atomically (one JSON object per line, stable order)."""
    lines = [canonical_json({k: row.get(k) for k in MANIFEST_FIELDS}) for row in rows]
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            from mova_bench.errors import ConfigError

            raise ConfigError(f"{path}:{i}: not a JSON line ({exc}); the manifest is one JSON object per line") from None
    return rows


def sanitize_floats(obj: Any) -> Any:
    """NaN/inf → None, recursively (JSON has no NaN; a missing value is null, never 0)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: sanitize_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize_floats(v) for v in obj]
    return obj


#: how long a process waits for a folder another process holds (seconds); MOVA_BENCH_LOCK_TIMEOUT overrides
DEFAULT_LOCK_WAIT_S = 4 * 3600.0


@contextmanager
def exclusive_folder(path: str | os.PathLike, *, wait: bool = False, what: str = "folder") -> Iterator[Path]:
    """Hold ``path/.lock`` for the duration; while held, leftovers of a killed writer are removed.

    ``wait=False`` (run folders): a folder held by another process is a ConfigError at once.
    ``wait=True`` (shared reference sets, caches): wait for the holder to finish, printing a progress
    line every 30 s, up to ``MOVA_BENCH_LOCK_TIMEOUT`` seconds (default 4 h).

    The lock is an OS file lock: it is released when its holder exits, however it exits, so the
    ``.lock`` file left on disk never needs removing. A process killed inside :func:`atomic_path`
    leaves its ``.<name>.*.tmp`` file behind; the next process to take the folder deletes those
    (nobody else can be writing: it holds the lock).
    """
    import sys
    import time

    from filelock import FileLock, Timeout

    from mova_bench.errors import ConfigError

    path = Path(path)
    ensure_folder(path, what)
    lock = FileLock(str(path / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise ConfigError(
                f"{path} is in use by another mova-bench process (the same run started twice?). "
                "Wait for that process to finish, or use another --out; its lock is released when it exits, "
                "so no file needs removing"
            ) from None
        limit = float(os.environ.get("MOVA_BENCH_LOCK_TIMEOUT", DEFAULT_LOCK_WAIT_S))
        t0 = time.monotonic()
        print(f"waiting for {path}: another mova-bench process is building it (up to {limit:.0f} s)", file=sys.stderr, flush=True)
        while True:
            try:
                lock.acquire(timeout=min(30.0, max(0.0, limit - (time.monotonic() - t0))))
                break
            except Timeout:
                waited = time.monotonic() - t0
                if waited >= limit:
                    raise ConfigError(
                        f"{path} is still held by another mova-bench process after {waited:.0f} s; "
                        "raise MOVA_BENCH_LOCK_TIMEOUT (seconds) or wait for that process"
                    ) from None
                print(f"still waiting for {path} ({waited:.0f} s)", file=sys.stderr, flush=True)
    try:
        for stale in path.rglob(".*.tmp"):
            if stale.is_file():
                stale.unlink(missing_ok=True)
        yield path
    finally:
        lock.release()


def ensure_folder(path: str | os.PathLike, what: str = "folder", fix: str | None = None) -> Path:
    """Create ``path`` (and parents) and check it is writable; a ConfigError names the fix otherwise."""
    from mova_bench.errors import ConfigError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {what} {str(path)!r}: {exc.strerror or exc}", fix=fix) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {str(path)!r} is not writable", fix=fix)
    return path
