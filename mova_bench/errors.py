"""Exception types. Library code raises these; the CLI maps them to exit codes."""

from __future__ import annotations


class MovaBenchError(Exception):
    """Base class. ``exit_code`` is what the CLI returns when this reaches it."""

    exit_code = 2

    def __init__(self, message: str = "", *, fix: str | None = None):
        super().__init__(message)
        #: the one-line fix, when the message alone does not say it (shown as "fix: ...")
        self.fix = fix

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg}. Fix: {self.fix}" if self.fix else msg


class ConfigError(MovaBenchError):
    """A suite, model card, run option or CLI value is invalid. Message names value, choices, fix."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup failed."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(MovaBenchError):
    """An optional package or weights file is missing; the message says what to install."""


class MediaError(MovaBenchError):
    """A clip can't be used. ``reason`` is one of MEDIA_FAILURE_REASONS."""

    def __init__(self, reason: str, detail: str, path: str | None = None):
        self.reason = reason
        self.detail = detail
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{reason}: {detail}")


MEDIA_FAILURE_REASONS = (
    "empty",
    "not_media",
    "truncated",
    "no_video_stream",
    "no_audio_stream",
    "too_short",
    "missing",
    "unreadable",
    "changed",
)


class GenerationError(MovaBenchError):
    """A generator failed on one clip (recorded in the manifest, the run goes on)."""
