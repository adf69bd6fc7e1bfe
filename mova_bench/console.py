"""Messages for people: progress and warnings go to stderr (stdout is kept for ``--json``)."""

from __future__ import annotations

import sys


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
