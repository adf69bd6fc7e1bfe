"""Errors of the weights registry (all exit 2 at the CLI, each with its one-line fix)."""

from __future__ import annotations

from mova_bench.errors import ConfigError, MissingDependencyError, MovaBenchError


class MissingWeightsError(MissingDependencyError):
    """No verified local copy of a weights file; the fix is ``mova-bench weights fetch <name>``."""


class WeightsDownloadError(MovaBenchError):
    """Every source failed (network, HTTP status, size or hash mismatch); the message lists each."""


class LicenceNotAcceptedError(ConfigError):
    """The entry's licence must be accepted (``--accept-license``) before it is downloaded."""
