from __future__ import annotations

import math
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from mova_bench.registry import Registry


@dataclass
class TaskFailure:
    """A task that raised: kept with its reason so one bad clip never kills a run.

    ``reason``: a :class:`~mova_bench.errors.MediaError` reason, ``"error"`` (any other
    exception), or ``"worker_died"`` (the process running the task died: segfault, ``os._exit``,
    out-of-memory kill; see :mod:`mova_bench.executors.pool`).
    """

    error: str
    reason: str = "error"
    traceback: str = ""


def run_task(fn: Callable[[Any], Any], item: Any) -> Any:
    """Call ``fn(item)``; an exception becomes a :class:`TaskFailure` (MediaError keeps its reason).

    The task runs with one BLAS thread (:func:`one_blas_thread`), in whatever process and under
    whatever executor, so its result is the same bits everywhere."""
    from mova_bench.errors import MediaError

    try:
        with one_blas_thread():
            return fn(item)
    except MediaError as exc:
        return TaskFailure(error=str(exc), reason=exc.reason)
    except Exception as exc:  # noqa: BLE001 - recorded per clip, never swallowed silently
        reason = getattr(exc, "reason", None)  # adapters tag failures: timeout, http_error, command_failed, ...
        return TaskFailure(error=f"{type(exc).__name__}: {exc}", reason=reason if isinstance(reason, str) and reason else "error",
                           traceback=traceback.format_exc())


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Limit the loaded BLAS libraries (OpenBLAS, MKL...) to one thread while inside.

    OpenBLAS splits a matrix product's sums differently for different thread counts, so ``a @ b``
    differs in the last bits between 1 and N threads (e.g. melstats' mel projection): without
    this, a clip's features would depend on the executor and on the core count. The tasks' products
    are small, and executors run tasks side by side, so one thread costs nothing that matters. A
    BLAS first loaded during a task is not covered for that task (pool workers set
    ``OPENBLAS_NUM_THREADS=1`` and friends before anything loads). Process-wide: not for tasks
    run in several threads of one process at once."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency of scikit-learn; absent only in odd environments
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class Executor:
    """Runs ``fn`` over items. One instance serves any number of :meth:`map` calls (a command
    builds one and passes it around); :meth:`close` releases what it holds, and ``with
    get_executor(...) as ex:`` closes it on the way out."""

    name = "base"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, desc: str = "") -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result_or_TaskFailure)`` as tasks finish (order may differ)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start what :meth:`map` needs now rather than on its first call (worker processes, a
        connection); afterwards every task of a parallel executor runs in its workers, never in
        the calling process. Nothing to do by default."""

    def close(self) -> None:
        """Release workers, connections, temporary files. Idempotent; nothing to do by default."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()


#: the executor the CLI uses unless ``--executor`` says otherwise: a process pool over the usable
#: cores (``mova_bench.executors.pool``); library callers of :func:`get_executor` still get
#: ``"local"`` when they name none
DEFAULT_EXECUTOR = "pool"


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


@contextmanager
def environ_set(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` set while inside (a child started here inherits it), restored after."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def progress_unit(items: list[Any]) -> str:
    """What one item of a map is, for its progress line: "tasks" when items hold several clips
    each (an analysis chunk has ``clip_ids``; its description says how many), else "clips"."""
    return "tasks" if items and hasattr(items[0], "clip_ids") else "clips"


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
    first = None  # when the first item finished: the rate is measured from there, so that start-up
    for done, item in enumerate(items, 1):  # (workers importing, models loading) is not read as per-item cost
        yield item  # the caller works on it before asking for the next one
        now = time.monotonic()
        if first is None:
            first = now
        if done == total or now - last >= interval:
            last = now
            elapsed = now - start
            line = f"{desc or 'working'}: {done}/{total} {unit}, {_duration(elapsed)} elapsed"
            if 1 < done < total:
                line += f", ~{_duration((now - first) / (done - 1) * (total - done))} left"
            print(line, file=stream, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


executors: Registry[Any] = Registry("executor")
executors.register("local", "mova_bench.executors.local:LocalExecutor")
executors.register("pool", "mova_bench.executors.pool:PoolExecutor")


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


def get_executor(name: str = "local", workers: int | None = None, **kwargs: Any) -> Executor:
    """The executor called ``name``. ``workers`` (parallel tasks; ``None``: the executor's default,
    for ``pool`` the usable cores bounded by memory) is passed on only when given, so executors
    that take no such argument keep working."""
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            from mova_bench.errors import ConfigError

            raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}",
                              fix="pass --workers 1 or more, or leave it out for one per usable core")
        kwargs["workers"] = workers
    _discover(name)
    cls = executors.get(name)
    return cls(**kwargs)
