"""Prompt suites: YAML files validated with pydantic, with ``include:`` of a base suite.

Only ``name``, ``version`` and ``prompts`` (each with ``id`` and ``text``) are required. A suite
is found by name in the built-in ``prompts/`` folder (or any folder in ``MOVA_BENCH_SUITES_PATH``)
or given as a path to a YAML file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mova_bench.config_files import read_yaml_mapping, validation_message
from mova_bench.errors import ConfigError, UnknownNameError
from mova_bench.registry import did_you_mean

PACKAGE_ROOT = Path(__file__).resolve().parent
#: a source checkout (editable install): the top-level prompts/ and models/ are read in place.
#: Installed, PACKAGE_ROOT.parent is site-packages, whose prompts/ would be another package's.
IN_SOURCE_TREE = (PACKAGE_ROOT.parent / "pyproject.toml").is_file()
#: the built-in suites of an installed package (a wheel ships prompts/ there, see setup.py)
BUILTIN_SUITES_DIR = PACKAGE_ROOT / "data" / "prompts"
REPO_SUITES_DIR = PACKAGE_ROOT.parent / "prompts"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteDefaults(_Strict):
    duration_s: float = Field(4.0, gt=0, le=600)
    fps: float = Field(24.0, gt=0, le=240)
    sample_rate: int = Field(48000, ge=8000, le=192000)
    width: int = Field(256, ge=16, le=8192)
    height: int = Field(144, ge=16, le=8192)
    samples_per_prompt: int = Field(2, ge=1, le=10000)
    seed: int = Field(0, ge=0)
    #: lag window of the sync estimator (± ms); widen it for e.g. distant thunder
    sync_max_lag_ms: float = Field(1000.0, gt=0, le=10000)


class ReferenceSpec(_Strict):
    kind: Literal["procedural", "clips", "stats"] = "procedural"
    samples_per_prompt: Optional[int] = Field(None, ge=1, le=10000)
    path: Optional[str] = None
    #: seed offset of reference renders; disjoint from evaluation seeds
    seed: int = Field(1_000_000, ge=0)

    @model_validator(mode="after")
    def _path_needed(self):
        if self.kind in ("clips", "stats") and not self.path:
            raise ValueError(f"reference kind {self.kind!r} needs a 'path'")
        return self


class Prompt(_Strict):
    id: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    text: str = Field(min_length=1)
    tags: tuple[str, ...] = ()
    first_frame: Optional[str] = None
    expected_offset_ms: Optional[tuple[float, float]] = None

    @field_validator("expected_offset_ms")
    @classmethod
    def _ordered(cls, v):
        if v is not None and v[0] > v[1]:
            raise ValueError(f"expected_offset_ms must be [lo, hi] with lo <= hi, got {list(v)}")
        return v


class Suite(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = Field(min_length=1)
    description: str = ""
    include: Optional[str] = None
    defaults: SuiteDefaults = SuiteDefaults()
    reference: ReferenceSpec = ReferenceSpec()
    prompts: tuple[Prompt, ...] = Field(min_length=1)
    source: Optional[str] = Field(None, exclude=True)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v):
        """``version: 1`` and ``version: 1.2`` are how people write YAML: numbers are versions too."""
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        return v

    @model_validator(mode="after")
    def _unique_ids(self):
        seen: set[str] = set()
        for p in self.prompts:
            if p.id in seen:
                raise ValueError(f"duplicate prompt id {p.id!r}")
            seen.add(p.id)
        return self

    def fingerprint(self) -> str:
        """Hash of the resolved content (prompts, defaults, reference), for run folder names."""
        payload = self.model_dump(mode="json", exclude={"source", "description"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def prompt(self, prompt_id: str) -> Prompt | None:
        return next((p for p in self.prompts if p.id == prompt_id), None)


def suite_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("MOVA_BENCH_SUITES_PATH", "").split(os.pathsep) if p]
    return [*extra, *([REPO_SUITES_DIR] if IN_SOURCE_TREE else []), BUILTIN_SUITES_DIR]


def available_suites() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in suite_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.yaml")):
                found.setdefault(f.stem, f)
    return found


def _merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for k, v in child.items():
        if k in ("defaults", "reference") and isinstance(v, dict) and isinstance(base.get(k), dict):
            out[k] = {**base[k], **v}
        elif k == "prompts" and isinstance(v, list) and isinstance(base.get(k), list):
            ids = {p.get("id") for p in v if isinstance(p, dict)}
            out[k] = [p for p in base[k] if p.get("id") not in ids] + v
        else:
            out[k] = v
    return out


def _read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    if path in chain:
        raise ConfigError(f"{path}: include cycle: {' -> '.join(str(p) for p in (*chain, path))}")
    raw = read_yaml_mapping(path, "suite", "'name', 'version' and 'prompts'")
    inc = raw.get("include")
    if inc:
        base_path = _resolve_path(str(inc), relative_to=path.parent)
        base = _read_raw(base_path, (*chain, path))
        base.pop("name", None)
        raw = _merge(base, raw)
        raw["include"] = str(inc)
    return raw


def _resolve_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    p = Path(name_or_path)
    candidates = [p] if p.is_absolute() else ([relative_to / p] if relative_to else []) + [p]
    for c in candidates:
        if c.suffix in (".yaml", ".yml") and c.is_file():
            return c
    suites = available_suites()
    if name_or_path in suites:
        return suites[name_or_path]
    if p.suffix in (".yaml", ".yml"):
        raise ConfigError(f"suite file {name_or_path!r} does not exist")
    raise UnknownNameError(
        f"unknown suite {name_or_path!r}.{did_you_mean(name_or_path, sorted(suites))} "
        f"Valid suites: {', '.join(sorted(suites))}. Give a name from `mova-bench list suites` or a path to a .yaml file."
    )


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    path = _resolve_path(str(name_or_path))
    raw = _read_raw(path)
    try:
        suite = Suite.model_validate({**raw, "source": str(path)})
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, path, "suite")) from None
    # first_frame paths are relative to the suite file
    prompts = []
    for p in suite.prompts:
        if p.first_frame and not Path(p.first_frame).is_absolute():
            p = p.model_copy(update={"first_frame": str((path.parent / p.first_frame).resolve())})
        prompts.append(p)
    return suite.model_copy(update={"prompts": tuple(prompts)})
