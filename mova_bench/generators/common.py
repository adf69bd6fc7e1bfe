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


__all__ = ["failure"]
