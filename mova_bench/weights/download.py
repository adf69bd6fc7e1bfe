"""``weights fetch``: download a registry entry into ``$MOVA_BENCH_HOME/weights/<name>/<filename>``.

Standard library only (urllib follows redirects). The transfer goes to ``<filename>.part``; an
interrupted transfer resumes with ``Range: bytes=<n>-`` (206), and restarts from zero when the
server ignores Range (200). Size and every pinned hash (SHA-256, MD5, git blob SHA-1) are checked
BEFORE the atomic rename, so a partial or corrupt file is never at the final path; a wrong file
is deleted and the error names the expected and actual hash. Sources are tried in order (a
``--mirror`` base URL first). One OS file lock per file serialises concurrent fetches: the second
waits, then finds the file present. Offline (``MOVA_BENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) no
network call is made at all. Nothing is deserialised.
"""

from __future__ import annotations

import http.client
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from mova_bench.weights.catalog import Entry, get_entry, offline
from mova_bench.weights.errors import LicenceNotAcceptedError, MissingWeightsError, WeightsDownloadError
from mova_bench.weights.lookup import (check, expected, locate, missing_message, own_path, record_path, remember,
                                      write_record)

#: transfers of one source resumed after an interruption before that source is given up
MAX_RESUMES = 5
PROGRESS_EVERY_S = 2.0


class _SourceFailed(Exception):
    pass


def _timeout() -> float:
    return float(os.environ.get("MOVA_BENCH_DOWNLOAD_TIMEOUT", "60"))


def _user_agent() -> str:
    from mova_bench import __version__

    return f"mova-bench/{__version__} (weights fetch; urllib)"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _transfer(url: str, part: Path, size: int | None, label: str, log: Callable[[str], None]) -> None:
    """Bring ``part`` to the full content of ``url``: resume with Range (206), restart when the
    server answers 200, resume again after a short read. Raises _SourceFailed with the reason."""
    resumes = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if size and have > size:
            log(f"{label}: {part} is larger than the file ({have:,} > {size:,} bytes); starting again")
            part.unlink()
            have = 0
        if size and have == size:
            return  # complete from an earlier run; the hash check decides
        headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        req = urllib.request.Request(url, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=_timeout())
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # our .part is not a prefix the server can continue
                log(f"{label}: server refused to resume at {have:,} bytes (HTTP 416); starting again")
                part.unlink()
                continue
            raise _SourceFailed(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            if resumes < MAX_RESUMES and have:
                resumes += 1
                log(f"{label}: connection failed ({reason}); retrying ({resumes}/{MAX_RESUMES})")
                time.sleep(min(2.0 * resumes, 10.0))
                continue
            raise _SourceFailed(f"cannot connect: {reason}") from None
        with resp:
            status = resp.status
            length = resp.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if have and status == 206:
                crange = resp.headers.get("Content-Range", "")
                if not crange.startswith(f"bytes {have}-"):
                    raise _SourceFailed(f"server answered Range bytes={have}- with Content-Range {crange!r}")
                mode = "ab"
                log(f"{label}: resuming at {have:,} bytes")
            elif status == 200:
                if have:
                    log(f"{label}: server ignored Range (HTTP 200); restarting from 0")
                have, mode = 0, "wb"
            else:
                raise _SourceFailed(f"unexpected HTTP {status} (expected 200, or 206 for a Range request)")
            total = have + length if length is not None else size
            if size and total and total != size:
                raise _SourceFailed(f"server announces {total:,} bytes, the registry says {size:,}")
            got, last = have, time.monotonic()
            try:
                with open(part, mode) as fh:
                    while chunk := resp.read(1 << 20):
                        fh.write(chunk)
                        got += len(chunk)
                        if time.monotonic() - last >= PROGRESS_EVERY_S:
                            last = time.monotonic()
                            of = f" / {total / 1e6:,.1f} MB ({100 * got / total:.0f}%)" if total else " MB (size unknown)"
                            log(f"{label}: {got / 1e6:,.1f}{of}")
                    fh.flush()
                    os.fsync(fh.fileno())
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, OSError) and exc.filename:  # a local write failure: not retried
                    raise
                short = f"transfer interrupted ({exc})"
            else:
                short = f"transfer ended at {got:,} of {total:,} bytes" if total and got < total else None
        if short is None:
            log(f"{label}: received {got:,} bytes")
            return
        resumes += 1
        if resumes > MAX_RESUMES:
            raise _SourceFailed(f"{short}; gave up after {MAX_RESUMES} resumes (the partial file is kept: {part})")
        log(f"{label}: {short}; resuming with Range ({resumes}/{MAX_RESUMES})")


def _lock(path: Path):
    from filelock import FileLock

    return FileLock(str(path.parent / f".{path.name}.lock"))


def _mirror_url(mirror: str, entry: Entry) -> str:
    return mirror.rstrip("/") + "/" + urllib.parse.quote(entry.filename)


def fetch(name: str, *, accept_license: bool = False, mirror: str | None = None,
          log: Callable[[str], None] = _log) -> Path:
    """Make weights ``name`` present and verified; return its path.

    A copy already present (ours, or in the HF / torch hub cache) is verified and returned without
    any network access. Else: licence acceptance where the entry needs it, then offline check, then
    the download (see the module docstring). ``mirror`` (also ``$MOVA_BENCH_WEIGHTS_MIRROR``) is a
    base URL tried first as ``<mirror>/<filename>``."""
    entry = get_entry(name)
    loc = locate(entry)
    if loc.path is not None:
        log(f"{name}: present at {loc.path} ({loc.where}; verified by {loc.verified_by})")
        return loc.path
    if entry.needs_license_acceptance and not accept_license:
        raise LicenceNotAcceptedError(
            f"weights {name!r} are under the licence: {entry.licence}. Downloading them means accepting it",
            fix=f"read the licence, then run `mova-bench weights fetch {name} --accept-license`")
    var = offline()
    if var:
        raise MissingWeightsError(
            missing_message(entry, loc, offline_var=var),
            fix=f"unset {var} and run `mova-bench weights fetch {name}` with network, or copy the file to {own_path(entry)}")
    dest = own_path(entry)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsDownloadError(f"cannot create {dest.parent}: {exc.strerror or exc}",
                                   fix="set MOVA_BENCH_HOME to a writable folder") from None
    lock = _lock(dest)
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"{name}: another mova-bench process is fetching {dest.name}; waiting for it")
        lock.acquire()
    try:
        return _fetch_locked(entry, dest, mirror or os.environ.get("MOVA_BENCH_WEIGHTS_MIRROR"), log)
    finally:
        lock.release()


def _fetch_locked(entry: Entry, dest: Path, mirror: str | None, log: Callable[[str], None]) -> Path:
    name = entry.name
    loc = locate(entry)  # the process we waited for may have finished it
    if loc.path is not None:
        log(f"{name}: present at {loc.path} ({loc.where}; verified by {loc.verified_by})")
        return loc.path
    exp = expected(entry)
    if dest.exists():  # ours and failing verification (locate said so): never used, replaced
        log(f"{name}: removing {dest}, which failed verification ({'; '.join(loc.rejected) or 'mismatch'})")
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if exp.size:
        free = shutil.disk_usage(dest.parent).free
        if free < exp.size - have:
            raise WeightsDownloadError(f"{dest.parent} has {free:,} bytes free; {name} needs {exp.size - have:,} more",
                                       fix="free space there or set MOVA_BENCH_HOME to a larger disk")
    urls = ([_mirror_url(mirror, entry)] if mirror else []) + entry.urls
    failures: list[str] = []
    for i, url in enumerate(urls, 1):
        label = f"{name} [{i}/{len(urls)}]"
        log(f"{label}: downloading {url} -> {part}")
        try:
            _transfer(url, part, exp.size, label, log)
        except _SourceFailed as exc:
            failures.append(f"{url}: {exc}")
            log(f"{label}: failed: {exc}")
            continue
        problem, d = check(part, exp, memo=False)
        if problem:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: {problem} (the downloaded file was deleted)")
            log(f"{label}: rejected: {problem}; deleted {part}")
            continue
        os.replace(part, dest)
        remember(dest, d)  # the rename keeps size and mtime: no second hashing of a large file
        if exp.origin == "none":
            write_record(entry, dest, d, how="first download", url=url)
            log(f"{name}: no hash is published upstream; recorded size {dest.stat().st_size:,} and sha256 "
                f"{d['sha256']} in {dest.parent / 'recorded.json'} (not verified against upstream)")
        log(f"{name}: ok {dest} (sha256 {d['sha256']})")
        return dest
    recorded = (f"; the expected hash was recorded by an earlier download ({record_path(entry)}): if upstream "
                f"replaced the file on purpose, delete that record and fetch again") if exp.origin == "recorded" else ""
    raise WeightsDownloadError(
        f"could not fetch weights {name!r} ({entry.filename}; expected {exp.describe()}):\n"
        + "\n".join(f"  - {f}" for f in failures),
        fix=f"check the network or proxy and retry; or download one of the URLs yourself, place it at {dest} "
            f"and run `mova-bench weights verify {name}`{recorded}")
