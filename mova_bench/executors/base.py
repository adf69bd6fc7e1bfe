from __future__ import annotations

import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from mova_bench.registry import Registry


@dataclass
class TaskFailure:
    """A task that raised: kept with its reason so one bad clip never kills a run."""

    error: str
    reason: str = "error"
    traceback: str = ""


def run_task(fn: Callable[[Any], Any], item: Any) -> Any:
    """Call ``fn(item)``; an exception becomes a :class:`TaskFailure` (MediaError keeps its reason)."""
    from mova_bench.errors import MediaError

    try:
        return fn(item)
    except MediaError as exc:
        return TaskFailure(error=str(exc), reason=exc.reason)
    except Exception as exc:  # noqa: BLE001 - recorded per clip, never swallowed silently
        return TaskFailure(error=f"{type(exc).__name__}: {exc}", reason="error", traceback=traceback.format_exc())


class Executor:
    name = "base"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, desc: str = "") -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result_or_TaskFailure)`` as tasks finish (order may differ)."""
        raise NotImplementedError


#: seconds between progress lines when stderr is not a terminal (batch jobs, SLURM logs, pipes)
PROGRESS_INTERVAL_ENV = "MOVA_BENCH_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL_S = 10.0


def progress(items: list[Any], desc: str, *, unit: str = "clips") -> Iterable[Any]:
    """Progress on stderr for anything that takes more than a moment: a bar on a terminal;
    elsewhere one line at most every ``MOVA_BENCH_PROGRESS_INTERVAL`` seconds (default 10) and
    one when done, e.g. ``generating (procedural): 12/22 clips, 4.1 s elapsed, ~3.4 s left``."""
    stream = sys.stderr
    if stream is None:
        return items
    if _isatty(stream):
        from tqdm import tqdm

        return tqdm(items, desc=desc, file=stream, leave=False, disable=None, mininterval=0.5)
    return _progress_lines(items, desc, unit, stream, progress_interval())


def progress_interval() -> float:
    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_PROGRESS_INTERVAL_S
    except ValueError:
        return DEFAULT_PROGRESS_INTERVAL_S
    return value if value >= 0 and math.isfinite(value) else DEFAULT_PROGRESS_INTERVAL_S


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # no isatty, or a closed stream
        return False


def _progress_lines(items: list[Any], desc: str, unit: str, stream: Any, interval: float) -> Iterator[Any]:
    total = len(items)
    start = last = time.monotonic()
    for done, item in enumerate(items, 1):
        yield item  # the caller works on it before asking for the next one
        now = time.monotonic()
        if done == total or now - last >= interval:
            last = now
            elapsed = now - start
            line = f"{desc or 'working'}: {done}/{total} {unit}, {_duration(elapsed)} elapsed"
            if done < total:
                line += f", ~{_duration(elapsed / done * (total - done))} left"
            print(line, file=stream, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


executors: Registry[Any] = Registry("executor")
executors.register("local", "mova_bench.executors.local:LocalExecutor")


def _discover(name: str) -> None:
    """A new executor is one new file: ``mova_bench/executors/<name>.py`` defining an
    :class:`Executor` subclass whose ``name`` is ``<name>``; it is found on first use."""
    import importlib
    import importlib.util

    if name in executors or not name.isidentifier():
        return
    module_name = f"mova_bench.executors.{name}"
    if importlib.util.find_spec(module_name) is None:
        return
    module = importlib.import_module(module_name)
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Executor) and obj is not Executor and obj.name == name:
            executors.register(name, obj)
            return


def get_executor(name: str = "local", **kwargs: Any) -> Executor:
    _discover(name)
    cls = executors.get(name)
    return cls(**kwargs)
