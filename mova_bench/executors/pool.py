"""``pool``: per-clip tasks in worker processes over the usable cores (the CLI's default executor).

How many workers
    ``workers`` (``--workers``) defaults to :func:`default_workers`: one per usable core
    (``len(os.sched_getaffinity(0))``, lowered to a cgroup CPU quota if there is one) and at most
    one per 1.5 GiB of available memory (``MemAvailable`` of ``/proc/meminfo``, or the cgroup's
    memory limit minus its usage where that is lower), never fewer than one. Measured peak memory
    of one worker (imports alone: ~0.25 GB): analysing a clip with every weight-free extractor
    ~0.35 GB whatever its size (256×144 to 1280×720, 8 s); generating a procedural clip 0.32 GB
    at 256×144, 0.43 GB at 640×352, 0.84 GB at 1280×720 (193 frames). 1.5 GiB a worker leaves the
    largest of these ~2× headroom, so N concurrent clips stay clear of the out-of-memory killer.
    An explicit ``workers`` is used as given. Learned generators on a GPU are another matter: one
    copy of the weights per worker; run them with one worker (see ``resources`` in the model card).

Start method
    ``forkserver`` where the platform has it (Linux), else ``spawn``; never plain ``fork``, which
    copies a running process whose OpenCV/numba/tqdm threads may hold locks. The fork server
    imports the pipeline (numpy, OpenCV, PyAV, librosa, the extractors) once, single-threaded, and
    every worker is forked from it: the first pool of a process waits for that import (~2.5 s on a
    loaded 2-core machine), a rebuilt pool ~0.03 s. ``spawn`` pays the import in every worker, at
    every start (~3–8 s for 2 workers on the same machine).

One thread per worker
    N workers each using every core would oversubscribe the machine: workers get
    ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``... = 1 (:data:`THREAD_ENV`),
    ``threadpoolctl`` limits on the libraries already loaded and ``cv2.setNumThreads(1)``.
    Otherwise a worker runs with the environment, ``sys.path`` and working directory the calling
    process had when the pool started. Tasks are pure functions and every executor runs them with
    one BLAS thread (:func:`~mova_bench.executors.base.one_blas_thread`: OpenBLAS's products differ
    in the last bits between thread counts), so results are bitwise identical to the ``local``
    executor's (tests/test_executors.py compares mp4 bytes and feature arrays).

Scheduling
    One pool serves every :meth:`PoolExecutor.map` call until :meth:`PoolExecutor.close`. At most
    ``2 × workers`` tasks are submitted at a time (memory stays bounded for thousands of clips) and
    results are yielded as they finish; progress counts finished tasks. With one worker, or one
    item while no pool is running, tasks run in this process exactly like ``local`` (no start
    cost); so does a task function that cannot be pickled (a lambda), with a warning.

A worker that dies
    (a segfault, ``os._exit``, the out-of-memory killer) breaks the whole pool: Python stops its
    siblings and fails every pending task. Each task marks, in a temporary folder, the worker
    process it runs in, and the dead worker is told from the stopped ones by its exit status, so
    only the task that was running in it becomes ``TaskFailure(reason="worker_died")`` (the error
    names the exit code or signal); the pool is rebuilt and every other task runs again. Where the
    culprit cannot be told apart, the tasks that were running are retried one at a time, alone.
    A pool that keeps dying without a culprit fails the tasks involved after 3 tries.
    Ctrl-C: workers ignore SIGINT; the caller stops them (SIGTERM) when the interrupt reaches
    :meth:`map`, or on leaving a ``with`` block with an exception.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from mova_bench.executors.base import Executor, TaskFailure, environ_set, progress, progress_unit, run_task

#: available memory reserved for each worker by :func:`default_workers`
MEMORY_PER_WORKER_BYTES = int(1.5 * 2**30)
#: set in every worker (and in the fork server) so N workers don't each start a thread per core
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}
#: imported once by the fork server, inherited by every worker (a missing one is skipped)
PRELOAD = (
    "mova_bench.executors.pool",
    "mova_bench.pipeline.generation",
    "mova_bench.pipeline.analysis",
    "mova_bench.features.vstats",
    "mova_bench.features.melstats",
    "mova_bench.features.sync",
    "mova_bench.features.av_align",
    "mova_bench.features.forensic",
    "librosa.filters",
    "librosa.onset",
    "scipy.signal",  # the procedural world filters with it (imported on first use)
)
#: tasks in flight per worker: enough to keep workers busy, few enough to bound memory
INFLIGHT_PER_WORKER = 2
#: unexplained pool deaths a task may live through before it is failed as ``worker_died``
MAX_STRIKES = 3
NO_START_HINT = ("a script that uses this executor must keep its own code under `if __name__ == '__main__':` "
                 "(workers import the main module), else use --executor local")


# ---------------------------------------------------------------------------------------------
# how many workers
# ---------------------------------------------------------------------------------------------


def usable_cores() -> int:
    """Cores this process may run on (affinity mask), lowered to a cgroup CPU quota if any."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, quota) if quota else n)


def available_memory_bytes() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo``, or the cgroup's limit minus its usage where lower;
    ``None`` where neither can be read (not Linux)."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    room = _cgroup_memory_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


def default_workers() -> int:
    """One worker per usable core, at most one per :data:`MEMORY_PER_WORKER_BYTES` of available
    memory, at least one."""
    n = usable_cores()
    mem = available_memory_bytes()
    if mem is not None:
        n = min(n, mem // MEMORY_PER_WORKER_BYTES)
    return max(1, int(n))


def _cgroup_dirs(controller: str) -> list[Path]:
    """Candidate cgroup folders of this process (v2 unified path, v1 ``controller`` path, root)."""
    root = Path("/sys/fs/cgroup")
    out: list[Path] = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                out.append(root / path.lstrip("/"))
            elif controller in controllers.split(","):
                out.append(root / controllers / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    out += [root, root / controller]
    return [p for i, p in enumerate(out) if p not in out[:i]]


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def _cgroup_memory_room() -> int | None:
    for d in _cgroup_dirs("memory"):
        for limit_name, usage_name in (("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")):
            limit = _read_int(d / limit_name)
            if limit is not None and 0 < limit < 2**60:  # "max" / ~2**63: no limit
                return max(0, limit - (_read_int(d / usage_name) or 0))
    return None


def _cgroup_cpu_quota() -> int | None:
    for d in _cgroup_dirs("cpu"):
        try:
            quota, period = (d / "cpu.max").read_text().split()[:2]
            if quota != "max":
                return max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError):
            pass
        quota_us, period_us = _read_int(d / "cpu.cfs_quota_us"), _read_int(d / "cpu.cfs_period_us")
        if quota_us and quota_us > 0 and period_us:
            return max(1, math.ceil(quota_us / period_us))
    return None


# ---------------------------------------------------------------------------------------------
# inside a worker
# ---------------------------------------------------------------------------------------------


def _init_worker(env: dict[str, str], parent_pid: int) -> None:
    """Worker initializer: the caller's environment, one thread per library, no SIGINT, and exit
    when the caller is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    os.environ.clear()
    os.environ.update(env)
    os.environ.update(THREAD_ENV)
    limit_native_threads()
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="mova-bench-orphan-watch", daemon=True).start()


def limit_native_threads() -> None:
    """One thread for each native library of a worker, so N workers keep N cores busy rather than
    each starting a thread per core: BLAS/OpenMP already loaded (``threadpoolctl``; later loads
    read :data:`THREAD_ENV`), OpenCV, and torch where it is already imported (imported later, it
    reads ``OMP_NUM_THREADS=1``). FFmpeg's decoders are left as they are: with the slice threading
    PyAV asks for, an H.264 decode keeps ~0.4–0.6 of a core busy whatever its thread count."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # BLAS/OpenMP loaded before the variables were set
    except Exception:  # noqa: BLE001 - optional; the variables still cover later loads
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001 - OpenCV missing or broken: not this module's problem
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(1)
        except Exception:  # noqa: BLE001
            pass


def _exit_with_parent(parent_pid: int) -> None:
    """A worker outliving its caller (killed with SIGKILL) would wait for work forever."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except OSError:
            pass


def _call(fn: Callable[[Any], Any], item: Any, marker: str | None) -> Any:
    """Run one task in a worker; ``marker`` (``<folder>/<token>``) + ``-<pid>`` exists while it runs."""
    path = None
    if marker:
        path = f"{marker}-{os.getpid()}"
        try:
            open(path, "x").close()
        except OSError:
            path = None
    try:
        return run_task(fn, item)
    finally:
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# one process pool (rebuilt when a worker dies)
# ---------------------------------------------------------------------------------------------

_start_lock = threading.Lock()


def _mp_context(start_method: str | None) -> Any:
    methods = multiprocessing.get_all_start_methods()
    method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
    if method == "fork":
        raise ValueError("the pool executor never forks a running process; use 'forkserver' or 'spawn'")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        from multiprocessing import forkserver

        with _start_lock:  # start the server single-threaded, with the pipeline imported once
            ctx.set_forkserver_preload(["__main__", *PRELOAD])  # no effect once it runs
            with environ_set(THREAD_ENV):
                forkserver.ensure_running()
    return ctx


class _Pool:
    """A ``ProcessPoolExecutor`` and what is needed to tell which of its workers died."""

    generation = itertools.count()

    def __init__(self, workers: int, ctx: Any, marker_root: str | None):
        self.markers = None
        if marker_root:
            self.markers = os.path.join(marker_root, f"pool{next(self.generation)}")
            os.makedirs(self.markers, exist_ok=True)
        self.executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=(dict(os.environ), os.getpid()))
        # pid -> Process, filled as workers start; kept to read exit codes after a breakage
        self.processes: dict[int, Any] | None = getattr(self.executor, "_processes", None)
        self.broken = False
        self._post_mortem: tuple[dict[int, int] | None, dict[int, int]] | None = None  # see post_mortem
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[Any], Any], item: Any, token: int) -> Future:
        marker = os.path.join(self.markers, str(token)) if self.markers else None
        return self.executor.submit(_call, fn, item, marker)

    def post_mortem(self) -> tuple[dict[int, int] | None, dict[int, int]]:
        """After a breakage: ``({pid: exit code} of its workers, or None where Python does not say;
        {task token: pid} of the tasks that were running})``. Computed once."""
        with self._lock:
            if self._post_mortem is None:
                self.broken = True
                self.executor.shutdown(wait=True, cancel_futures=True)  # joins every worker
                codes = None
                if self.processes is not None:
                    codes = {pid: p.exitcode for pid, p in list(self.processes.items()) if p.exitcode is not None}
                running: dict[int, int] = {}
                if self.markers and os.path.isdir(self.markers):
                    for name in os.listdir(self.markers):
                        token, _, pid = name.partition("-")
                        if token.isdigit() and pid.isdigit():
                            running[int(token)] = int(pid)
                    shutil.rmtree(self.markers, ignore_errors=True)
                self._post_mortem = (codes, running)
            return self._post_mortem

    def shutdown(self, *, kill: bool = False) -> None:
        if kill and self.processes is not None:
            for p in list(self.processes.values()):
                try:
                    p.terminate()
                except (OSError, ValueError, AttributeError):
                    pass
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.markers:
            shutil.rmtree(self.markers, ignore_errors=True)


def _death(exitcode: int) -> str:
    """``exit code 1``, ``killed by SIGKILL: often the out-of-memory killer``..."""
    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        sig = signal.Signals(-exitcode)
    except ValueError:
        return f"killed by signal {-exitcode}"
    hint = {signal.SIGKILL: ": often the out-of-memory killer", signal.SIGSEGV: ": a crash in native code",
            signal.SIGBUS: ": a crash in native code", signal.SIGABRT: ": an abort in native code"}.get(sig, "")
    return f"killed by {sig.name}{hint}"


# ---------------------------------------------------------------------------------------------
# the executor
# ---------------------------------------------------------------------------------------------


class PoolExecutor(Executor):
    """Worker processes on this machine: one per usable core, at most one per 1.5 GiB of free memory.

    See the module docstring. ``workers``: ``None`` for :func:`default_workers`.
    ``start_method``: ``None`` (forkserver, else spawn), or either name."""

    name = "pool"

    def __init__(self, workers: int | None = None, *, start_method: str | None = None, **_: Any):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
        if start_method == "fork":
            raise ValueError("the pool executor never forks a running process; use 'forkserver' or 'spawn'")
        self.workers = default_workers() if workers is None else workers
        self.start_method = start_method
        self._pool: _Pool | None = None
        self._marker_root: str | None = None
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._warned_unpicklable = False

    def __repr__(self) -> str:
        return f"PoolExecutor(workers={self.workers})"

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether worker processes are up (started by an earlier :meth:`map`)."""
        return self._pool is not None and not self._pool.broken

    def _current_pool(self) -> _Pool:
        with self._lock:
            if self._pool is None or self._pool.broken:
                if self._marker_root is None or not os.path.isdir(self._marker_root):
                    try:
                        self._marker_root = tempfile.mkdtemp(prefix="mova-bench-pool-")
                        weakref.finalize(self, shutil.rmtree, self._marker_root, True)  # never closed: still removed
                    except OSError:
                        self._marker_root = None  # no markers: suspects are retried alone
                self._pool = _Pool(self.workers, _mp_context(self.start_method), self._marker_root)
            return self._pool

    def _retire(self, pool: _Pool) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None

    def start(self) -> None:
        """Start the pool now: from then on even a single task runs in a worker (with one worker,
        tasks still run in this process)."""
        if self.workers > 1:
            self._current_pool()

    def close(self) -> None:
        """Stop the workers (after the tasks they are running) and remove the marker folder.
        Idempotent; a later :meth:`map` starts a new pool."""
        self._stop(kill=False)

    def terminate(self) -> None:
        """Stop the workers now (SIGTERM), abandoning what they run. Idempotent."""
        self._stop(kill=True)

    def _stop(self, *, kill: bool) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            root, self._marker_root = self._marker_root, None
        if pool is not None:
            pool.shutdown(kill=kill)
        if root:
            shutil.rmtree(root, ignore_errors=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop(kill=exc_type is not None)

    # -- map ----------------------------------------------------------------------------------

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, desc: str = "") -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result_or_TaskFailure)`` as tasks finish (order may differ)."""
        items = list(items)
        if self.workers <= 1 or not items or (len(items) == 1 and not self.running) or not self._picklable(fn):
            for item in progress(items, desc, unit=progress_unit(items)):
                yield item, run_task(fn, item)
            return
        results = self._results(fn, items)
        try:
            for _ in progress(list(range(len(items))), desc, unit=progress_unit(items)):
                yield next(results)
            results.close()
        except GeneratorExit:
            results.close()  # the caller stopped early: cancel what has not started
            raise
        except BaseException:
            results.close()
            self.terminate()  # Ctrl-C (or a failing caller) must not wait for running tasks
            raise

    def _picklable(self, fn: Callable[[Any], Any]) -> bool:
        try:
            pickle.dumps(fn)
            return True
        except Exception:  # noqa: BLE001 - lambdas, local functions, bound methods of odd objects
            if not self._warned_unpicklable:
                self._warned_unpicklable = True
                from mova_bench.console import log

                log(f"warning: {getattr(fn, '__qualname__', fn)!s} cannot be sent to worker processes (not picklable); "
                    "running its tasks in this process")
            return False

    def _results(self, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[tuple[Any, Any]]:
        """``(item, result)`` in completion order, with at most ``2 × workers`` tasks in flight."""
        todo = deque(range(len(items)))  # indices not yet submitted
        alone: deque[int] = deque()  # suspects of an unexplained death: each runs with nothing beside it
        strikes = [0] * len(items)
        barren = 0  # breakages in a row in which no task had even started
        inflight: dict[Future, tuple[int, int, _Pool]] = {}  # future -> (index, token, pool)
        cap = max(self.workers + 1, INFLIGHT_PER_WORKER * self.workers)
        try:
            while todo or alone or inflight:
                if alone:
                    if not inflight:
                        self._submit(fn, items, alone.popleft(), inflight)
                else:
                    while todo and len(inflight) < cap:
                        self._submit(fn, items, todo.popleft(), inflight)
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                broken: list[tuple[int, int, _Pool]] = []
                finished = list(done)
                while finished:
                    fut = finished.pop()
                    index, token, pool = inflight.pop(fut)
                    exc = _exception(fut)
                    if isinstance(exc, BrokenProcessPool):
                        broken.append((index, token, pool))
                        # the whole pool is broken: every other task in flight on it fails the same way
                        rest = [f for f, (_, _, p) in inflight.items() if p is pool and f not in finished]
                        wait(rest)
                        finished += rest
                    elif exc is not None:  # the item or the result could not be pickled, SystemExit...
                        yield items[index], TaskFailure(error=f"{type(exc).__name__}: {exc}", reason="error")
                    else:
                        yield items[index], fut.result()
                if not broken:
                    continue
                retry: list[int] = []
                started_any = False
                for pool in {id(p): p for _, _, p in broken}.values():
                    self._retire(pool)
                    mine = [(i, t) for i, t, p in broken if p is pool]
                    started_any |= any(t in pool.post_mortem()[1] for _, t in mine)
                    yield from self._after_breakage(pool, mine, items, strikes, retry, alone)
                barren = 0 if started_any else barren + 1
                if barren >= MAX_STRIKES:  # workers die before running anything: the pool cannot work
                    codes = list((pool.post_mortem()[0] or {}).values())
                    own = [c for c in codes if c not in (0, -signal.SIGTERM)] or codes  # not the stopped siblings
                    why = ", ".join(sorted({_death(c) for c in own})) or "exit status unknown"
                    for fut in list(inflight):
                        fut.cancel()
                        retry.append(inflight.pop(fut)[0])
                    for i in [*retry, *alone, *todo]:
                        yield items[i], TaskFailure(error=f"worker processes die before they run any task ({why}); {NO_START_HINT}",
                                                    reason="worker_died")
                    return
                todo.extendleft(sorted(retry, reverse=True))  # rerun first, in their original order
        finally:
            for fut in inflight:
                fut.cancel()

    @staticmethod
    def _after_breakage(pool: _Pool, mine: list[tuple[int, int]], items: list[Any], strikes: list[int],
                        retry: list[int], alone: deque[int]) -> Iterator[tuple[Any, TaskFailure]]:
        """Sort the tasks ``(index, token)`` of a broken pool: the one whose worker died fails
        (``worker_died``); the others go to ``retry``, or to ``alone`` (run with nothing beside them)
        where the culprit cannot be told apart. Each breakage fails a task, isolates one, or costs
        the tasks in it a strike (:data:`MAX_STRIKES`), so it all ends."""
        codes, running = pool.post_mortem()
        started = [(i, running[t]) for i, t in mine if t in running]
        # died on its own: not the SIGTERM with which Python stops the siblings of a dead worker
        dead = None if codes is None else {pid: c for pid, c in codes.items() if c not in (0, -signal.SIGTERM)}
        culprits = [(i, dead[pid]) for i, pid in started if dead and pid in dead]
        if not culprits and len(mine) == 1 and started:  # it ran alone: nothing else could have done it
            i, pid = started[0]
            culprits = [(i, (codes or {}).get(pid))]
        for i, code in culprits:
            how = _death(code) if code is not None else "exit status unknown"
            yield items[i], TaskFailure(error=f"the worker process running this task died ({how}); "
                                              "the tasks beside it were rerun", reason="worker_died")
        if culprits:
            blamed = {i for i, _ in culprits}
            retry += [i for i, _ in mine if i not in blamed]
            return
        if started and not dead:  # exit codes unknown, or the worker was stopped from outside
            suspects = {i for i, _ in started}
            alone.extend(i for i, _ in started)
            retry += [i for i, _ in mine if i not in suspects]
            return
        last = ", ".join(sorted({_death(c) for c in (dead or {}).values()})) or "exit status unknown"
        for i, _ in mine:  # a worker died outside any task (idle, in its initializer): nobody to blame
            strikes[i] += 1
            if strikes[i] >= MAX_STRIKES:
                hint = "" if any(t in running for _, t in mine) else f"; {NO_START_HINT}"
                yield items[i], TaskFailure(error=f"worker processes died {MAX_STRIKES} times while this task was "
                                                  f"queued or running (last: {last}){hint}", reason="worker_died")
            else:
                retry.append(i)

    def _submit(self, fn: Callable[[Any], Any], items: list[Any], index: int,
                inflight: dict[Future, tuple[int, int, _Pool]]) -> None:
        token = next(self._tokens)
        for _ in range(MAX_STRIKES):
            pool = self._current_pool()
            try:
                inflight[pool.submit(fn, items[index], token)] = (index, token, pool)
                return
            except BrokenProcessPool:  # broke between two submissions: its futures report it
                pool.broken = True
        raise RuntimeError("cannot start worker processes: the pool breaks as soon as it starts")


def _exception(fut: Future) -> BaseException | None:
    try:
        return fut.exception()
    except CancelledError as exc:
        return exc
