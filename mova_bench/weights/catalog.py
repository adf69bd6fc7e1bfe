"""The weights registry as data: entries read from the packaged ``registry.yaml``, a user file and
:func:`register_local`, validated with pydantic (bad hex, floating revisions and unknown fields are
errors naming the file, entry and field).

Precedence (highest first): :func:`register_local` (in-process, for tests) > the user file
(``$MOVA_BENCH_WEIGHTS_FILE``, else ``$MOVA_BENCH_HOME/weights/registry.yaml``) > the packaged file.
A later layer replaces whole entries; it never merges fields.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from mova_bench.errors import ConfigError, UnknownNameError

PACKAGED_REGISTRY = Path(__file__).with_name("registry.yaml")
LAYOUTS = {
    "plain": "a bare state dict",
    "model": "{'model': state_dict}",
    "state_dict_module": "{'state_dict': {'module.<key>': ...}}",
    "torchscript": "a TorchScript archive",
    "safetensors": "a safetensors file",
    "text": "a text file (vocabulary, label list)",
}
HASH_STATUSES = ("maintainer", "third-party", "none")
FLOATING_REVISIONS = ("main", "master", "head", "latest")
_HEX = {n: re.compile(rf"^[0-9a-f]{{{n}}}$") for n in (8, 32, 40, 64)}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def mova_home() -> Path:
    """``$MOVA_BENCH_HOME`` (default ``~/.cache/mova-bench``; empty = unset), the same rule as
    :func:`mova_bench.cache.home`, without importing the feature cache (numpy)."""
    return Path(os.environ.get("MOVA_BENCH_HOME") or Path.home() / ".cache" / "mova-bench")


def weights_dir() -> Path:
    """Where ``weights fetch`` puts files: ``$MOVA_BENCH_HOME/weights/<name>/<filename>``."""
    return mova_home() / "weights"


def offline() -> str | None:
    """The variable that forbids network access (``MOVA_BENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` set
    to 1/true/yes/on, as huggingface_hub reads its own), else None."""
    for var in ("MOVA_BENCH_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


def _check_hex(value: str | None, n: int, what: str) -> str | None:
    if value is None:
        return None
    value = str(value).strip().lower()
    if not _HEX[n].match(value):
        raise ValueError(f"{what} must be {n} lowercase hex digits, got {value!r} ({len(value)} characters)")
    return value


class Source(BaseModel):
    """One place to download from: a plain ``url``, or a Hugging Face file at a pinned revision."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str | None = None
    hf_repo: str | None = None
    revision: str | None = None
    path: str | None = None
    repo_type: Literal["model", "space", "dataset"] = "model"

    @model_validator(mode="after")
    def _one_kind(self) -> "Source":
        if (self.url is None) == (self.hf_repo is None):
            raise ValueError("a source is either {url: ...} or {hf_repo: ..., revision: <40 hex>, path: ...}")
        if self.url is not None:
            if not re.match(r"^https?://[^\s/]+/\S*$", self.url):
                raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
            if self.revision or self.path:
                raise ValueError("revision/path belong to hf_repo sources, not url sources")
            if re.search(r"huggingface\.co/.*/resolve/(main|master)/", self.url):
                raise ValueError(f"{self.url!r} names a floating revision; use hf_repo + a 40-hex revision")
        else:
            rev = (self.revision or "").strip()
            if rev.lower() in FLOATING_REVISIONS or not _HEX[40].match(rev):
                raise ValueError(f"revision must be a full 40-hex commit id (never a branch such as 'main'), got {rev!r}"
                                 + (" (a prefix: pin the full id)" if re.match(r"^[0-9a-f]{4,39}$", rev) else ""))
            if not self.path:
                raise ValueError("an hf_repo source needs the file's path in the repository")
        return self

    @property
    def resolved_url(self) -> str:
        if self.url is not None:
            return self.url
        prefix = {"model": "", "space": "spaces/", "dataset": "datasets/"}[self.repo_type]
        return f"https://huggingface.co/{prefix}{self.hf_repo}/resolve/{self.revision}/{self.path}"


class Entry(BaseModel):
    """One weights file. ``sha256`` None means none is published (recorded on first download)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    filename: str
    description: str = ""
    sources: tuple[Source, ...] = ()
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    git_blob_sha1: str | None = None
    sha256_prefix: str | None = None
    hash_status: Literal["maintainer", "third-party", "none"]
    hash_note: str = ""
    licence: str
    layout: Literal["plain", "model", "state_dict_module", "torchscript", "safetensors", "text"]
    needs_license_acceptance: bool = False
    #: other places a tool keeps this file (``~`` and ``$VARS`` expanded): used after verification
    local_paths: tuple[str, ...] = ()
    #: an explicit location (user registry / register_local): replaces $MOVA_BENCH_HOME/weights/<name>/
    path: str | None = None

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, v):
        return _check_hex(v, 64, "sha256")

    @field_validator("md5")
    @classmethod
    def _md5(cls, v):
        return _check_hex(v, 32, "md5")

    @field_validator("git_blob_sha1")
    @classmethod
    def _blob(cls, v):
        return _check_hex(v, 40, "git_blob_sha1")

    @field_validator("sha256_prefix")
    @classmethod
    def _prefix(cls, v):
        if v is not None and not re.match(r"^[0-9a-f]{6,63}$", str(v)):
            raise ValueError(f"sha256_prefix must be 6-63 lowercase hex digits, got {v!r}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not _NAME.match(v):
            raise ValueError(f"entry names are lowercase letters, digits, '.', '_' and '-', got {v!r}")
        return v

    @field_validator("filename")
    @classmethod
    def _filename(cls, v):
        if not v or "/" in v or "\\" in v or v in (".", ".."):
            raise ValueError(f"filename must be a plain file name, got {v!r}")
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v):
        if v is not None and v <= 0:
            raise ValueError(f"size must be a positive number of bytes, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Entry":
        pinned = self.sha256 or self.md5 or self.git_blob_sha1
        if pinned and self.hash_status == "none":
            raise ValueError("hash_status 'none' but a hash is pinned: say 'maintainer' or 'third-party'")
        if not pinned and self.hash_status != "none":
            raise ValueError(f"hash_status {self.hash_status!r} but no sha256/md5/git_blob_sha1 is given")
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError(f"sha256 {self.sha256} does not start with sha256_prefix {self.sha256_prefix}")
        if not self.sources and not self.path:
            raise ValueError("an entry needs at least one source (or a local 'path')")
        return self

    @property
    def pinned(self) -> bool:
        """True when an upstream hash is known (else the first download's record is the reference)."""
        return bool(self.sha256 or self.md5 or self.git_blob_sha1)

    @property
    def urls(self) -> list[str]:
        return [s.resolved_url for s in self.sources]


def _read_layer(path: Path, label: str) -> dict[str, Entry]:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", fix="fix the file's syntax") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the {label} {str(path)!r}: {exc.strerror or exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not isinstance(raw.get("entries", {}), dict) or set(raw) - {"schema", "entries"}:
        raise ConfigError(f"{path}: a weights registry is a mapping with 'schema: 1' and 'entries: {{name: {{...}}}}'",
                          fix=f"see the packaged example {PACKAGED_REGISTRY}")
    if raw.get("schema", 1) != 1:
        raise ConfigError(f"{path}: weights registry schema {raw.get('schema')!r} is not supported (expected 1)")
    out = {}
    for name, body in (raw.get("entries") or {}).items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: entry {name!r} must be a mapping of fields, got {body!r}")
        try:
            out[str(name)] = Entry(name=str(name), **body)
        except ValidationError as exc:
            lines = [f"{path}: invalid weights entry {name!r}"]
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"]) or "(entry)"
                lines.append(f"  - {loc}: {err['msg']}")
            raise ConfigError("\n".join(lines), fix=f"see the packaged registry {PACKAGED_REGISTRY} for the schema") from None
    return out


_cache: dict[tuple, dict[str, Entry]] = {}
_local: dict[str, Entry] = {}


def user_registry_file() -> Path:
    env = os.environ.get("MOVA_BENCH_WEIGHTS_FILE")
    return Path(env).expanduser() if env else weights_dir() / "registry.yaml"


def _stamp(p: Path) -> tuple:
    try:
        st = p.stat()
        return (str(p), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(p), None, None)


def entries() -> dict[str, Entry]:
    """Every entry by name (packaged, then user file, then :func:`register_local`), sorted."""
    user = user_registry_file()
    if os.environ.get("MOVA_BENCH_WEIGHTS_FILE") and not user.is_file():
        raise ConfigError(f"MOVA_BENCH_WEIGHTS_FILE names {str(user)!r}, which is not a file",
                          fix="point it at a weights registry .yaml, or unset it")
    key = (_stamp(PACKAGED_REGISTRY), _stamp(user))
    if key not in _cache:
        merged = dict(_read_layer(PACKAGED_REGISTRY, "packaged weights registry"))
        if user.is_file():
            merged.update(_read_layer(user, "user weights registry"))
        _cache.clear()
        _cache[key] = merged
    merged = {**_cache[key], **_local}
    return dict(sorted(merged.items()))


def get_entry(name: str) -> Entry:
    """The entry called ``name``; an UnknownNameError lists the names (with "did you mean")."""
    from mova_bench.registry import did_you_mean

    all_entries = entries()
    if name not in all_entries:
        raise UnknownNameError(f"unknown weights {name!r}.{did_you_mean(name, list(all_entries))} "
                               f"Valid names: {', '.join(all_entries)}. See `mova-bench weights list`.")
    return all_entries[name]


def register_local(name: str, path: str | os.PathLike, **fields: Any) -> Entry:
    """Register ``path`` (anywhere) as weights ``name`` in this process, with its size and SHA-256
    computed now (for tests and local experiments). ``fields`` override the defaults (licence,
    layout, ...); an explicit ``sha256``/``size`` is kept and checked by :func:`resolve` as usual."""
    from mova_bench.weights.lookup import hash_file

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ConfigError(f"register_local({name!r}): {str(p)!r} is not a file")
    body: dict[str, Any] = {"filename": p.name, "hash_status": "third-party", "licence": "local file",
                            "layout": "plain", "description": f"registered locally: {p}"}
    known = _local.get(name) or entries().get(name)
    if known is not None:  # a stand-in for a known entry keeps what it is (layout, licence)
        body.update(layout=known.layout, licence=known.licence, description=f"{known.description} (registered locally: {p})")
    body.update(fields)
    if "sha256" not in fields or "size" not in fields:
        digests = hash_file(p)
        body.setdefault("sha256", digests["sha256"])
        body.setdefault("size", p.stat().st_size)
    body["path"] = str(p)
    try:
        entry = Entry(name=name, **body)
    except ValidationError as exc:
        raise ConfigError(f"register_local({name!r}): {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    _local[name] = entry
    return entry


def _write_user_layer(raw: dict[str, Any]) -> Path | None:
    """Write the user registry atomically; an existing file is first kept as ``registry.yaml.<n>.bak``
    (its comments and layout are the user's: a rewrite must not lose them). Returns that backup."""
    import yaml

    path = user_registry_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if path.is_file():
        n = 1
        while path.with_name(f"{path.name}.{n}.bak").exists():
            n += 1
        backup = path.with_name(f"{path.name}.{n}.bak")
        backup.write_bytes(path.read_bytes())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("# mova-bench user weights registry (see `mova-bench weights register`)\n"
                   + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, path)
    return backup


def _user_raw() -> dict[str, Any]:
    import yaml

    path = user_registry_file()
    if not path.is_file():
        return {"schema": 1, "entries": {}}
    _read_layer(path, "user weights registry")  # refuse to rewrite a file that is already invalid
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw.setdefault("schema", 1)
    if raw.get("entries") is None:
        raw["entries"] = {}
    return raw


def register_user(name: str, path: str | os.PathLike, *, force: bool = False) -> tuple[Entry, Path | None]:
    """Record ``path`` as weights ``name`` in the user registry (read by every process, unlike
    :func:`register_local`), with size and SHA-256 computed now; a known entry keeps its layout and
    licence. An entry already in the user file is replaced only with ``force``. Returns the entry and
    the backup of the previous user file (None when there was none)."""
    from mova_bench.weights.lookup import hash_file

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ConfigError(f"weights register {name}: {str(p)!r} is not a file", fix="pass the path of the weights file")
    raw = _user_raw()
    if name in raw["entries"] and not force:
        raise ConfigError(f"weights {name!r} is already in the user registry {str(user_registry_file())!r} "
                          f"(path {raw['entries'][name].get('path')!r})",
                          fix=f"add --force to replace it, or `mova-bench weights unregister {name}` first")
    body: dict[str, Any] = {"filename": p.name, "description": f"registered by the user: {p}",
                            "hash_status": "third-party", "licence": "local file", "layout": "plain"}
    known = {**_read_layer(PACKAGED_REGISTRY, "packaged weights registry")}.get(name)
    if known is not None:
        body.update(description=f"{known.description} (registered by the user: {p})", licence=known.licence,
                    layout=known.layout)
    body.update(sha256=hash_file(p)["sha256"], size=p.stat().st_size, path=str(p))
    try:
        entry = Entry(name=name, **body)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"weights register {name}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    raw["entries"][name] = body
    return entry, _write_user_layer(raw)


def unregister_user(name: str) -> Path | None:
    """Remove ``name`` from the user registry (never the packaged one; the weights file is untouched)."""
    raw = _user_raw()
    if name not in raw["entries"]:
        raise UnknownNameError(f"weights {name!r} is not in the user registry {str(user_registry_file())!r}; "
                               f"user entries: {', '.join(raw['entries']) or '(none)'}")
    del raw["entries"][name]
    return _write_user_layer(raw)


def forget_local(name: str | None = None) -> None:
    """Undo :func:`register_local` for ``name`` (all names when None)."""
    if name is None:
        _local.clear()
    else:
        _local.pop(name, None)
