"""Small helpers shared by the adapters (http, command, files, ltx-2, ovi, cascade)."""

from __future__ import annotations

from typing import Any

from mova_bench.errors import GenerationError


def failure(reason: str, message: str) -> GenerationError:
    """A per-clip GenerationError carrying a short machine-readable ``reason`` attribute
    (``timeout``, ``http_error``, ``job_failed``, ``bad_response``, ``command_failed``, ...)."""
    exc = GenerationError(message)
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


def conform_defaults(cls: Any, card_defaults: dict[str, Any] | None) -> dict[str, Any]:
    """Card defaults coerced to the types of ``cls.params_schema`` (a card's ``timeout_s: 60`` is
    the float 60.0), so a later ``--set timeout_s=0.5`` is read as the schema's type, not the card's."""
    out = dict(card_defaults or {})
    schema = getattr(cls, "params_schema", {})
    for key, value in out.items():
        if key in schema and not isinstance(value, (list, tuple, dict)):
            out[key] = cls._coerce(key, value, schema[key])
    return out


__all__ = ["conform_defaults", "failure"]
