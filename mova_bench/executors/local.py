"""In-process executor (the default): tasks run one after another with a progress bar."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from mova_bench.executors.base import Executor, progress, run_task


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, **_: Any):
        pass

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, desc: str = "") -> Iterator[tuple[Any, Any]]:
        items = list(items)
        for item in progress(items, desc):
            yield item, run_task(fn, item)
