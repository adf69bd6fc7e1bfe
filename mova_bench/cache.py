"""Content-addressed feature cache.

Key = sha256 of {schema version, extractor name, version, source-code hash, weights checksum, every preprocessing
parameter (see ``FeatureExtractor.cache_identity``), the clip's content hash}. Values are an
``.npz`` (``allow_pickle=False``) plus a JSON sidecar with the key's inputs. Writes are atomic
(temp file + rename), so several processes may fill the cache at once: the last rename wins and
both wrote identical bytes for the same key. Location: ``$MOVA_BENCH_HOME/features`` (default
``~/.cache/mova-bench/features``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.store import atomic_path, canonical_json, write_json_atomic

CACHE_SCHEMA_VERSION = 1


def home() -> Path:
    return Path(os.environ.get("MOVA_BENCH_HOME") or Path.home() / ".cache" / "mova-bench")  # empty = unset


def cache_key(identity: dict[str, Any], content_hash: str) -> str:
    if not content_hash:
        raise ValueError("a content hash is required to cache features")
    payload = {"schema": CACHE_SCHEMA_VERSION, "identity": identity, "content_hash": content_hash}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class FeatureCache:
    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else home() / "features"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, identity: dict[str, Any], content_hash: str) -> dict[str, np.ndarray] | None:
        if not self.enabled:
            return None
        path = self._path(cache_key(identity, content_hash))
        try:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (FileNotFoundError, OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, identity: dict[str, Any], content_hash: str, arrays: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        key = cache_key(identity, content_hash)
        path = self._path(key)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
        write_json_atomic(path.with_suffix(".json"), {"key": key, "identity": json.loads(canonical_json(identity)), "content_hash": content_hash, "schema": CACHE_SCHEMA_VERSION})
