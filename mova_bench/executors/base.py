from __future__ import annotations

import sys
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


def progress(items: list[Any], desc: str):
    """A progress bar on stderr for anything that takes more than a moment."""
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, leave=False, disable=None, mininterval=0.5)


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
