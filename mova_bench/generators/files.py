"""Placeholder generator for clips made elsewhere: points the user at ``mova-bench evaluate``."""

from __future__ import annotations

from mova_bench.errors import ConfigError
from mova_bench.generators.base import Generator


class FilesGenerator(Generator):
    name = "files"

    def check_available(self) -> None:
        raise ConfigError(
            "model 'files' stands for clips generated elsewhere and cannot generate. "
            "Score a folder of .mp4 files with: mova-bench evaluate --clips DIR --suite SUITE"
        )
