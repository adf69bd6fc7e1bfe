"""In-process executor: tasks run one after another with a progress bar (``--executor local``).

Nothing to start and nothing to close; the pool executor falls back to the same loop for one
worker or one item."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from mova_bench.executors.base import Executor, progress, progress_unit, run_task


class LocalExecutor(Executor):
    """One task after another in this process: no start cost, one clip in memory at a time."""

    name = "local"

    def __init__(self, **_: Any):
        pass

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, desc: str = "") -> Iterator[tuple[Any, Any]]:
        items = list(items)
        for item in progress(items, desc, unit=progress_unit(items)):
            yield item, run_task(fn, item)
