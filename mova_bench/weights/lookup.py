"""Finding and verifying weights files on disk: our own folder, the Hugging Face and torch hub
caches, and the places tools keep them. Nothing is deserialised here; files are only hashed.

Where a file may be (first verified one wins):

1. ``$MOVA_BENCH_HOME/weights/<name>/<filename>`` (or the entry's explicit ``path``);
2. the Hugging Face hub cache, as huggingface_hub lays it out: ``$HF_HUB_CACHE`` (else
   ``$HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``) /
   ``models--<org>--<name>/snapshots/<revision>/<path>`` for each pinned HF source (other snapshots
   too when a hash is pinned: the hash, not the revision, is what is checked);
3. the torch hub cache of ``torch.hub.load_state_dict_from_url``: ``$TORCH_HOME/hub/checkpoints``
   (else ``$XDG_CACHE_HOME/torch``, ``~/.cache/torch``) ``/<filename>``;
4. the entry's ``local_paths`` (e.g. ``~/panns_data/`` of panns-inference).

Files in other tools' caches are never written to and are used only when they can be verified:
against a pinned hash, the HF cache's blob name at a pinned revision (huggingface_hub's ETag:
SHA-256 for LFS files, git blob SHA-1 otherwise), or (torch.hub convention) the SHA-256 prefix in
the file name. A file there
with the wrong hash is rejected with a message naming both hashes.

Verification is memoised per (path, size, mtime) in-process and in a small sidecar under
``$MOVA_BENCH_HOME/weights/.verified/`` so a 2 GB file is hashed once, not every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mova_bench.weights.catalog import Entry, get_entry, offline, weights_dir
from mova_bench.weights.errors import MissingWeightsError

CHUNK = 1 << 20
_memo: dict[tuple[str, int, int], dict[str, str]] = {}


def hash_file(path: str | os.PathLike, algos: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """The requested digests of ``path`` in one read: ``sha256``, ``md5``, ``git_blob_sha1`` (git's
    blob id, ``sha1("blob <size>\\0" + bytes)``, which also names small files in the HF cache)."""
    path = Path(path)
    size = path.stat().st_size
    hs: dict[str, Any] = {}
    for algo in dict.fromkeys(algos):
        if algo == "sha256":
            hs[algo] = hashlib.sha256()
        elif algo == "md5":
            hs[algo] = hashlib.md5(usedforsecurity=False)
        elif algo == "git_blob_sha1":
            hs[algo] = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
        else:
            raise ValueError(f"unknown digest {algo!r}; expected sha256, md5 or git_blob_sha1")
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            for h in hs.values():
                h.update(chunk)
    return {k: h.hexdigest() for k, h in hs.items()}


def _sidecar(path: Path) -> Path:
    return weights_dir() / ".verified" / (hashlib.sha256(str(path).encode()).hexdigest()[:24] + ".json")


def digests(path: str | os.PathLike, need: tuple[str, ...] = ("sha256",), *, force: bool = False) -> dict[str, str]:
    """:func:`hash_file` (SHA-256 plus whatever ``need`` adds) memoised per (absolute path, size,
    mtime_ns): in this process, and in a sidecar JSON (path, size, mtime_ns, hashes) so later
    processes skip the hashing. A changed size or mtime re-hashes; ``force`` always re-hashes."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    need = tuple(dict.fromkeys(("sha256", *need)))
    if not force:
        known = dict(_memo.get(key, {}))
        if not all(k in known for k in need):
            try:
                side = json.loads(_sidecar(p).read_text(encoding="utf-8"))
                if (side.get("path"), side.get("size"), side.get("mtime_ns")) == key:
                    known.update({k: side[k] for k in ("sha256", "md5", "git_blob_sha1") if isinstance(side.get(k), str)})
            except (OSError, ValueError):
                pass
        if all(k in known for k in need):
            _memo[key] = known
            return known
    return remember(p, hash_file(p, need))


def remember(path: str | os.PathLike, d: dict[str, str]) -> dict[str, str]:
    """Memoise digests ``d`` already computed for ``path`` as it is now (in-process and sidecar)."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    merged = {**_memo.get(key, {}), **d}
    _memo[key] = merged
    try:
        from mova_bench.store import write_json_atomic

        write_json_atomic(_sidecar(p), {"path": key[0], "size": key[1], "mtime_ns": key[2], **merged})
    except OSError:  # a read-only home only costs a re-hash next time
        pass
    return merged


# --------------------------------------------------------------------------- what a file must be


def record_path(entry: Entry) -> Path:
    """Where the first download of an entry without a published hash records size + SHA-256."""
    return weights_dir() / entry.name / "recorded.json"


def read_record(entry: Entry) -> dict[str, Any] | None:
    try:
        rec = json.loads(record_path(entry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("filename") != entry.filename or not isinstance(rec.get("sha256"), str):
        return None
    return rec


def write_record(entry: Entry, path: Path, d: dict[str, str], how: str, url: str | None = None) -> dict[str, Any]:
    from mova_bench.store import write_json_atomic

    rec = {"name": entry.name, "filename": entry.filename, "size": path.stat().st_size, "sha256": d["sha256"],
           "md5": d.get("md5"), "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "how": how,
           "source": url or str(path),
           "note": "no hash is published upstream: this records what the first copy contained; it is "
                   "checked against later copies (corruption), not against upstream"}
    write_json_atomic(record_path(entry), rec)
    return rec


@dataclass
class Expected:
    """The size and hashes a file must have, and where they come from."""

    size: int | None
    hashes: dict[str, str]  # sha256 / md5 / git_blob_sha1 -> hex
    origin: str  # "pinned" | "recorded" | "none" | "hf-blob" (the HF cache's blob name)
    sha256_prefix: str | None = None

    def describe(self) -> str:
        size = f"{self.size:,} bytes" if self.size else "size unknown"
        if self.origin == "none":
            prefix = f", SHA-256 starting with {self.sha256_prefix} (its file name)" if self.sha256_prefix else ""
            return f"{size}{prefix}, no published hash (recorded on first download)"
        what = ", ".join(f"{k} {v}" for k, v in self.hashes.items())
        return f"{size}, {what}" + (" (recorded on first download, not published upstream)" if self.origin == "recorded" else "")


def expected(entry: Entry) -> Expected:
    if entry.pinned:
        hashes = {k: getattr(entry, k) for k in ("sha256", "md5", "git_blob_sha1") if getattr(entry, k)}
        return Expected(entry.size, hashes, "pinned", entry.sha256_prefix)
    rec = read_record(entry)
    if rec:
        return Expected(entry.size or rec.get("size"), {"sha256": rec["sha256"]}, "recorded", entry.sha256_prefix)
    return Expected(entry.size, {}, "none", entry.sha256_prefix)


def check(path: Path, exp: Expected, *, force: bool = False, memo: bool = True) -> tuple[str | None, dict[str, str] | None]:
    """(problem, digests): problem is None when ``path`` matches ``exp``. Size first (no hashing).
    ``memo=False`` hashes without memoising (a ``.part`` file about to be renamed)."""
    size = path.stat().st_size
    if exp.size and size != exp.size:
        return f"size {size:,} bytes, expected {exp.size:,}", None
    need = tuple(dict.fromkeys(("sha256", *exp.hashes)))
    d = digests(path, need, force=force) if memo else hash_file(path, need)
    for algo, want in exp.hashes.items():
        if d.get(algo) != want:
            return f"{algo} mismatch: expected {want}, actual {d.get(algo)}", d
    if exp.sha256_prefix and not d["sha256"].startswith(exp.sha256_prefix):
        return (f"sha256 {d['sha256']} does not start with {exp.sha256_prefix} (the hash prefix in its file name)", d)
    return None, d


# --------------------------------------------------------------------------- where it may be


def hf_hub_cache() -> Path:
    """huggingface_hub's cache folder, from the same variables it reads."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def torch_hub_checkpoints() -> Path:
    """``torch.hub.get_dir()/checkpoints`` without importing torch: ``$TORCH_HOME/hub/checkpoints``."""
    if os.environ.get("TORCH_HOME"):
        base = Path(os.environ["TORCH_HOME"]).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "torch"
    return base / "hub" / "checkpoints"


def own_path(entry: Entry) -> Path:
    """Where this entry lives under mova-bench's control (``fetch`` writes here)."""
    return Path(entry.path).expanduser() if entry.path else weights_dir() / entry.name / entry.filename


def candidates(entry: Entry) -> list[tuple[Path, str]]:
    """(path, where) in search order; paths may not exist."""
    out: list[tuple[Path, str]] = [(own_path(entry), "mova-bench" if not entry.path else "registered path")]
    hub = hf_hub_cache()
    for src in entry.sources:
        if src.hf_repo is None:
            continue
        repo_dir = hub / f"{src.repo_type}s--{src.hf_repo.replace('/', '--')}"
        out.append((repo_dir / "snapshots" / src.revision / src.path, "hf-cache"))
        if entry.pinned and (repo_dir / "snapshots").is_dir():  # another revision, same bytes: the hash decides
            out.extend((p, "hf-cache") for p in sorted((repo_dir / "snapshots").glob(f"*/{src.path}")))
    out.append((torch_hub_checkpoints() / entry.filename, "torch-hub"))
    out.extend((Path(os.path.expandvars(p)).expanduser(), "local") for p in entry.local_paths)
    seen, unique = set(), []
    for p, where in out:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append((p, where))
    return unique


# --------------------------------------------------------------------------- resolve


@dataclass
class Located:
    """What :func:`locate` found for one entry."""

    entry: Entry
    path: Path | None = None
    where: str | None = None
    verified_by: str | None = None  # "pinned hash", "recorded hash", "hash prefix in file name", "recorded now"
    rejected: list[str] = field(default_factory=list)  # "<path> (<where>): <problem>"
    notes: list[str] = field(default_factory=list)


def _warn(msg: str) -> None:
    print(f"mova-bench: warning: {msg}", file=sys.stderr, flush=True)


def _hf_blob_reference(entry: Entry, exp: Expected, path: Path) -> Expected | None:
    """For a file in the HF cache at a source's pinned revision: the hash its blob is named by
    (huggingface_hub names blobs by their ETag: the SHA-256 of LFS files, the git blob SHA-1 of
    others; both are fixed by the pinned revision's tree)."""
    for src in entry.sources:
        if src.hf_repo and path.as_posix().endswith(f"/snapshots/{src.revision}/{src.path}") and path.is_symlink():
            blob = Path(os.readlink(path)).name
            if re.fullmatch(r"[0-9a-f]{64}", blob):
                return Expected(exp.size, {"sha256": blob}, "hf-blob")
            if re.fullmatch(r"[0-9a-f]{40}", blob):
                return Expected(exp.size, {"git_blob_sha1": blob}, "hf-blob")
    return None


def reference_for(entry: Entry, exp: Expected, path: Path, where: str) -> Expected | None:
    """What ``path`` must match, or None when it cannot be verified (then it is not used): the
    pinned or recorded hashes; for an entry with neither, our own file (adopted and recorded),
    the HF blob id at the pinned revision, or the torch.hub hash prefix in the file name."""
    if exp.origin != "none" or where in ("mova-bench", "registered path"):
        return exp
    if where == "hf-cache":
        ref = _hf_blob_reference(entry, exp, path)
        if ref is not None:
            return ref
    return exp if exp.sha256_prefix else None


def locate(name_or_entry: str | Entry, *, force: bool = False) -> Located:
    """Find the first verified copy; never raises for a missing file (see :func:`resolve`)."""
    entry = name_or_entry if isinstance(name_or_entry, Entry) else get_entry(name_or_entry)
    exp = expected(entry)
    res = Located(entry)
    for path, where in candidates(entry):
        try:
            if not path.is_file():
                continue
            ref = reference_for(entry, exp, path, where)
            if ref is None:
                res.notes.append(f"{path} ({where}) not used: no published hash to verify it against. Copy it to "
                                 f"{own_path(entry)} to adopt it (its SHA-256 is then recorded)")
                continue
            problem, d = check(path, ref, force=force)
        except OSError as exc:
            res.rejected.append(f"{path} ({where}): unreadable: {exc.strerror or exc}")
            continue
        if problem:
            res.rejected.append(f"{path} ({where}): {problem}")
            continue
        if exp.origin == "none":
            try:
                write_record(entry, path, d, how="adopted a file already present")
            except OSError as exc:  # read-only home: usable now, recorded by a later run
                _warn(f"cannot write {record_path(entry)}: {exc.strerror or exc}")
            verified = {"hf-blob": "HF cache blob id at the pinned revision, recorded now"}.get(
                ref.origin, "hash prefix in file name, recorded now" if exp.sha256_prefix else "recorded now")
            _warn(f"weights {entry.name!r}: no hash is published upstream; recorded size {path.stat().st_size:,} "
                  f"and sha256 {d['sha256']} of {path} ({record_path(entry)}). It is not verified against upstream")
        else:
            verified = {"pinned": "pinned hash", "recorded": "hash recorded on first download"}[exp.origin]
        res.path, res.where, res.verified_by = path, where, verified
        return res
    return res


def missing_message(entry: Entry, loc: Located, *, offline_var: str | None = None) -> str:
    exp = expected(entry)
    looked = "; ".join(str(p) for p, _ in candidates(entry))
    lines = [f"weights {entry.name!r} ({entry.filename}) are not present"
             + (f" and {offline_var}=1 forbids downloading (no network attempt was made)" if offline_var else ""),
             f"  expected: {exp.describe()}",
             f"  looked in: {looked}",
             f"  sources: {', '.join(entry.urls) or '(none)'}"]
    lines += [f"  rejected: {r}" for r in loc.rejected]
    lines += [f"  note: {n}" for n in loc.notes]
    return "\n".join(lines)


def resolve(name: str) -> Path:
    """The verified local path of weights ``name`` (size and hashes checked, memoised); else
    :class:`MissingWeightsError` naming the paths searched, the expected size/hash, the URLs and any
    rejected copy, with the fix ``mova-bench weights fetch <name>``."""
    loc = locate(name)
    if loc.path is None:
        raise MissingWeightsError(missing_message(loc.entry, loc), fix=f"mova-bench weights fetch {loc.entry.name}")
    return loc.path


def verified_sha256(name: str) -> str:
    """SHA-256 of the verified file :func:`resolve` returns (memoised): the pinned hash, or for an
    entry without one the hash of the copy in use (for cache keys; ``get_entry().sha256`` is None there)."""
    path = resolve(name)
    return digests(path)["sha256"]


def is_present(name: str) -> bool:
    """True when :func:`resolve` would return a verified path."""
    return locate(name).path is not None


def verify(name: str | None = None) -> list[dict[str, Any]]:
    """Re-hash (ignoring the memo) every present copy of ``name`` (all entries when None).

    One row per file found: name, path, where, status ("ok" | "mismatch" | "unverifiable"),
    expected, problem. Entries with no file give one row with status "missing". Used by
    ``mova-bench weights verify`` (exit 1 on any mismatch)."""
    from mova_bench.weights.catalog import entries

    names = [name] if name is not None else list(entries())
    rows: list[dict[str, Any]] = []
    for n in names:
        entry = get_entry(n)
        exp = expected(entry)
        found = False
        for path, where in candidates(entry):
            if not path.is_file():
                continue
            found = True
            row = {"name": n, "path": str(path), "where": where, "expected": exp.describe()}
            ref = reference_for(entry, exp, path, where)
            if ref is None or (ref.origin == "none" and not ref.sha256_prefix):
                row.update(status="unverifiable" if ref is None else "unrecorded",
                           problem="no published or recorded hash" + ("" if ref is None else
                                   "; `mova-bench weights fetch` (or any use) records it"))
            else:
                try:
                    problem, d = check(path, ref, force=True)
                except OSError as exc:
                    problem, d = f"unreadable: {exc.strerror or exc}", None
                row.update(status="mismatch" if problem else "ok", problem=problem,
                           sha256=d["sha256"] if d else None)
            rows.append(row)
        if not found:
            rows.append({"name": n, "path": None, "where": None, "status": "missing", "expected": exp.describe(),
                         "problem": f"not present; fetch with `mova-bench weights fetch {n}`"})
    return rows


__all__ = ["hash_file", "digests", "remember", "resolve", "verified_sha256", "is_present", "locate", "verify", "candidates", "own_path",
           "expected", "hf_hub_cache", "torch_hub_checkpoints", "offline", "Located"]
