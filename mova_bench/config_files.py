"""Reading the YAML files users write (suites, model cards) with errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from mova_bench.errors import ConfigError


def read_yaml_mapping(path: Path, kind: str, required: str) -> dict:
    """Parse ``path`` as a YAML mapping; a ConfigError names the file otherwise."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {kind} must be a YAML mapping with {required}")
    return raw


def validation_message(exc: ValidationError, path: Path, kind: str) -> str:
    """One line per invalid field: its dotted location, the problem and the value given."""
    lines = [f"{path}: invalid {kind}"]
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        lines.append(f"  - field '{loc}': {err['msg']}{got}")
    return "\n".join(lines)
