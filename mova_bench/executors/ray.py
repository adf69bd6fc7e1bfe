"""``ray``: per-clip tasks as Ray tasks, on this machine or on a cluster (``--executor ray``).

Where
    The cluster is named by the ``address`` argument, else ``MOVA_BENCH_RAY_ADDRESS``, else Ray's
    own ``RAY_ADDRESS``: ``auto`` (the cluster this machine belongs to, started with ``ray start``),
    ``host:port`` (its head's GCS port, 6379 by default; an unreachable one fails within
    :data:`CONNECT_TIMEOUT_S`, before the command makes any folder), ``ray://host:port`` (Ray
    Client; needs ``ray[client]``) or ``local``. Without one (or with ``local``), a private Ray
    instance is started by this process with ``workers`` CPUs (default: as many as the ``pool``
    executor would use). :meth:`RayExecutor.close` shuts down what this executor started or
    connected; Ray already running in this process (``ray.init`` by the caller) is used as it is
    and left running. Ray starts on the first :meth:`~RayExecutor.map` (~7–10 s on a loaded 2-core
    machine; a cluster's is already running), and a run's first tasks wait ~3 s for worker processes.

Tasks
    Each item is one Ray task (``num_cpus=1``; with a ``resources`` hint, or for
    :func:`~mova_bench.pipeline.generation.generate_clip` the model card's ``resources``:
    ``num_cpus`` = ``cpus``, ``num_gpus`` = ``gpus``; an analysis task whose ``wants_accelerator``
    is true, i.e. a pretrained backbone on ``--device cuda``: one GPU). Ray reuses worker processes, and the pipeline
    keeps loaded generators and extractors per process, so weights load once per worker, not per
    clip (``max_calls=0``: Ray would otherwise restart a GPU worker after every task). The task runs
    :func:`~mova_bench.executors.base.run_task` in the worker: an exception is a
    :class:`~mova_bench.executors.base.TaskFailure` with its reason, with one BLAS thread, so results
    are bitwise identical to the ``local`` executor's. A worker that dies (segfault, ``os._exit``,
    out-of-memory kill, a node that goes away) is ``TaskFailure(reason="worker_died")``; tasks are not
    retried (``max_retries=0``: a crash is usually deterministic; rerunning the command resumes).

Workers' environment
    ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``... = 1
    (:data:`~mova_bench.executors.pool.THREAD_ENV`), this process's ``MOVA_BENCH_HOME`` (resolved:
    the feature cache and reference sets on shared storage) and every other ``MOVA_BENCH_*``
    variable, the weights variable named by the model card (``weights.env``) where this process has
    it, and the variables named in ``MOVA_BENCH_RAY_ENV`` (comma-separated, e.g. an API key's) are
    set through Ray's ``runtime_env``; one thread per native library
    (:func:`~mova_bench.executors.pool.limit_native_threads`). A task runs in this process's
    working directory and sees its ``sys.path`` (appended) where those exist on the worker's node,
    so the run folder, relative paths and task functions of scripts and tests work as with the
    ``pool`` executor; on a cluster, mova-bench and its dependencies must be installed on every node.

Streaming
    At most ``2 × slots`` tasks are in flight (slots: the cluster's CPUs, or GPUs for GPU tasks,
    divided by what one task asks, at most ``workers`` when that was given), and results are yielded
    as they finish (``ray.wait``), so the driver writes the run folder as results arrive and a killed
    driver resumes from it like a local run. Workers' output is not copied to this process's stdout
    (``--json`` stays one object); Ray's logs are under ``/tmp/ray/session_latest/logs`` of each node.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pickle
import re
import sys
import threading
import traceback
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Mapping

from mova_bench.errors import ConfigError, MissingDependencyError
from mova_bench.executors.base import Executor, TaskFailure, environ_set, progress, progress_unit, run_task
from mova_bench.executors.pool import INFLIGHT_PER_WORKER, THREAD_ENV, default_workers

#: the cluster to use: ``auto``, ``host:port`` or ``ray://host:port`` (unset: a private local Ray)
ADDRESS_ENV = "MOVA_BENCH_RAY_ADDRESS"
#: extra variables (names, comma-separated) copied from this process's environment to the workers'
FORWARD_ENV = "MOVA_BENCH_RAY_ENV"
INSTALL = "pip install 'mova-bench[ray]'"
ADDRESS_FIX = (f"set {ADDRESS_ENV} to auto (this machine is in a cluster started with `ray start`), host:port of the "
               "head node, or ray://host:port; leave it unset for a Ray instance on this machine")

_ADDRESS_RE = re.compile(r"^(auto|local|ray://[^\s/:]+(:\d+)?|[^\s/:]+:\d+)$")
#: seconds to reach a cluster's head before giving up (Ray itself retries for many minutes)
CONNECT_TIMEOUT_S = 10.0


def _missing(detail: str) -> MissingDependencyError:
    return MissingDependencyError(f"the ray executor needs Ray: {detail}",
                                  fix=f"{INSTALL} (on this machine and every node of the cluster), or use --executor pool")


if importlib.util.find_spec("ray") is None:  # found on first use: `list executors` shows it unavailable
    raise _missing("the `ray` package is not installed")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # installed but broken (another platform's wheel, a missing library)
        raise _missing(f"`import ray` fails ({exc})") from None
    return ray


# ---------------------------------------------------------------------------------------------
# in the worker
# ---------------------------------------------------------------------------------------------

_loaded_fns: dict[str, Callable[[Any], Any]] = {}
_worker_ready = False


def _prepare_worker(context: Mapping[str, Any]) -> None:
    """The driver's working directory and ``sys.path`` where they exist here; one OpenCV thread."""
    global _worker_ready
    cwd = context.get("cwd")
    if cwd and os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    for p in context.get("sys_path", ()):
        if p not in sys.path and os.path.isdir(p):
            sys.path.append(p)  # appended: the worker's own packages win over the driver's
    if not _worker_ready:
        _worker_ready = True
        from mova_bench.executors.pool import limit_native_threads

        limit_native_threads()


def _ray_task(fn_key: str, fn_blob: bytes, item_blob: bytes, context: Mapping[str, Any]) -> Any:
    """One task in a Ray worker. The function and the item arrive pickled and are loaded here, after
    the driver's ``sys.path`` is in place, so a task defined in a script or a test module loads."""
    _prepare_worker(context)
    try:
        fn = _loaded_fns.get(fn_key)
        if fn is None:
            fn = _loaded_fns[fn_key] = pickle.loads(fn_blob)
        item = pickle.loads(item_blob)
    except Exception as exc:  # noqa: BLE001 - recorded per task
        import socket

        return TaskFailure(error=f"the task cannot be loaded on {socket.gethostname()} ({type(exc).__name__}: {exc}); "
                                 "install mova-bench and the task's modules on every node",
                           reason="error", traceback=traceback.format_exc())
    return run_task(fn, item)


# ---------------------------------------------------------------------------------------------
# the executor
# ---------------------------------------------------------------------------------------------


def _resource_hint(resources: Any) -> dict[str, float]:
    """``{"num_cpus", "num_gpus"}`` from a mapping or a model card's ``resources``
    (``cpus``/``gpus``, or Ray's ``num_cpus``/``num_gpus``)."""
    def pick(*names: str, default: float) -> float:
        for n in names:
            v = resources.get(n) if isinstance(resources, Mapping) else getattr(resources, n, None)
            if v is not None:
                return float(v)
        return default

    cpus, gpus = pick("num_cpus", "cpus", default=1.0), pick("num_gpus", "gpus", default=0.0)
    if cpus < 0 or gpus < 0:
        raise ConfigError(f"resources: cpus and gpus must be ≥ 0, got cpus={cpus:g}, gpus={gpus:g}")
    return {"num_cpus": cpus, "num_gpus": gpus}


def _generation_hints(fn: Callable[[Any], Any], items: list[Any]) -> tuple[Any, list[str]]:
    """For generation tasks: the model card's resources and the weights variable it names."""
    try:
        from mova_bench.pipeline.generation import GenTask, generate_clip
    except ImportError:
        return None, []
    if fn is not generate_clip or not items or not isinstance(items[0], GenTask):
        return None, []
    try:
        from mova_bench.cards import load_card

        card = load_card(items[0].card_path or items[0].model)
    except Exception:  # noqa: BLE001 - the task itself will say what is wrong with the card
        return None, []
    return card.resources, [card.weights.env] if card.weights.env else []


def _probe(address: str) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when the head cannot be reached."""
    if address == "auto":
        return  # Ray finds the local cluster itself, and says at once when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host:
        host, port = port, "10001"  # ray://host: Ray Client's default port
    import socket

    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}",
                          fix=f"check that the cluster is up (`ray status` on its head) and reachable, or {ADDRESS_FIX}") from None


def _ray_messages_to_stderr(ray: Any) -> None:
    """Ray prints the cluster's error messages (``(raylet) A worker died...``) on this process's
    *stdout*, whatever ``log_to_driver`` says; ``--json`` promises one object there. Send them to
    stderr (a private hook of Ray's: left alone where it is not found)."""
    try:
        module = ray._private.worker
        original = module.print_to_stdstream
    except AttributeError:
        return
    if getattr(original, "_mova_bench_stderr", False):
        return

    def to_stderr(data: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and not data.get("is_err"):
            data = {**data, "is_err": True}
        return original(data, *args, **kwargs)

    to_stderr._mova_bench_stderr = True  # type: ignore[attr-defined]
    module.print_to_stdstream = to_stderr


def _slim(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class RayExecutor(Executor):
    """Ray tasks on this machine or a cluster (MOVA_BENCH_RAY_ADDRESS); needs the ray extra."""

    name = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None, max_retries: int = 0, **_: Any):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
        source = "address"
        if address is None:
            for source in (ADDRESS_ENV, "RAY_ADDRESS"):
                address = os.environ.get(source, "").strip() or None
                if address:
                    break
        if address is not None and not _ADDRESS_RE.match(address):
            raise ConfigError(f"Ray address {address!r} (from {source}): expected auto, local, host:port or ray://host:port",
                              fix=ADDRESS_FIX)
        self.address = None if address == "local" else address
        if self.address:
            _probe(self.address)  # an unreachable head fails here, before the command makes any folder
        self.workers = workers
        self.max_retries = int(max_retries)
        self._ray: Any = None
        self._owns = False  # whether close() shuts Ray down: only a Ray this executor started
        self._inherited_env: dict[str, str] | None = None  # the environment a Ray started here gave its workers
        self._lock = threading.Lock()
        self._warned_unpicklable = False

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address or 'local'!r}, workers={self.workers})"

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._ray is not None and self._ray.is_initialized()

    def _connect(self) -> Any:
        with self._lock:
            if self._ray is not None and self._ray.is_initialized():
                return self._ray
            ray = _import_ray()
            if ray.is_initialized():
                where = "the Ray instance already running in this process"
                self._owns = False
            else:
                common = {"logging_level": logging.WARNING, "log_to_driver": False}
                try:
                    if self.address:
                        ray.init(address=self.address, **common)
                        where = f"the Ray cluster at {self.address}"
                    else:
                        cpus = self.workers or default_workers()
                        # workers of a Ray started here inherit this environment: the ones Ray starts
                        # with it serve the tasks at once (a per-task runtime_env would start others)
                        env = self._env([])
                        with environ_set(env):
                            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **common)
                        self._inherited_env = env
                        where = "a local Ray instance"
                except ImportError as exc:
                    raise _missing(f"{exc}") from None
                except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as exc:
                    msg = _slim(exc)
                    if "ray[client]" in str(exc):
                        raise MissingDependencyError(f"Ray Client ({self.address}) needs ray[client]: {msg}",
                                                     fix="pip install 'ray[client]', or connect with host:port") from None
                    if self.address:
                        raise ConfigError(f"cannot connect to the Ray cluster at {self.address}: {msg}",
                                          fix=f"check that the cluster is up (`ray status`) and reachable, or {ADDRESS_FIX}") from None
                    raise ConfigError(f"cannot start a local Ray instance: {msg}",
                                      fix="see Ray's logs under /tmp/ray/session_latest/logs, or use --executor pool") from None
                self._owns = True
            self._ray = ray
            _ray_messages_to_stderr(ray)
        from mova_bench.console import log

        total = self._cluster()
        log(f"ray: {where}: {total['nodes']} node(s), {total['CPU']:g} CPUs, {total['GPU']:g} GPUs")
        return ray

    def _cluster(self) -> dict[str, float]:
        ray = self._ray
        total = ray.cluster_resources()
        try:
            nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        except Exception:  # noqa: BLE001 - Ray Client and older versions
            nodes = 0
        return {"CPU": float(total.get("CPU", 0)), "GPU": float(total.get("GPU", 0)), "nodes": nodes}

    def start(self) -> None:
        """Start (or connect to) Ray now rather than on the first :meth:`map`."""
        self._connect()

    def close(self) -> None:
        """Shut Ray down if this executor started it (or connected this process to a cluster); a
        Ray the caller started is left running. Idempotent; a later :meth:`map` starts it again."""
        with self._lock:
            ray, owns = self._ray, self._owns
            self._ray, self._owns, self._inherited_env = None, False, None
        if ray is not None and owns and ray.is_initialized():
            ray.shutdown()

    # -- map ----------------------------------------------------------------------------------

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, desc: str = "",
            resources: Any = None) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result_or_TaskFailure)`` as tasks finish (order may differ).

        ``resources``: what one task needs, a mapping or a model card's ``resources``
        (``cpus``/``gpus``; default one CPU, or the model card's for generation tasks)."""
        items = list(items)
        if not items:
            return
        fn_blob = self._pickled(fn)
        if fn_blob is None:
            for item in progress(items, desc, unit=progress_unit(items)):
                yield item, run_task(fn, item)
            return
        card_resources, card_env = _generation_hints(fn, items)
        if resources is None and card_resources is None and getattr(items[0], "wants_accelerator", False):
            card_resources = {"num_cpus": 1, "num_gpus": 1}  # an analysis task running a backbone on CUDA
        hint = _resource_hint(resources if resources is not None else card_resources or {})
        ray = self._connect()
        results = self._results(ray, fn_blob, items, hint, card_env)
        try:
            for _ in progress(list(range(len(items))), desc, unit=progress_unit(items)):
                yield next(results)
            results.close()
        except GeneratorExit:
            results.close()  # the caller stopped early: cancel what is still queued or running
            raise
        except BaseException:
            results.close()
            raise

    def _pickled(self, fn: Callable[[Any], Any]) -> bytes | None:
        from ray import cloudpickle

        try:
            return cloudpickle.dumps(fn)
        except Exception:  # noqa: BLE001 - holds a lock, a file, a connection...
            if not self._warned_unpicklable:
                self._warned_unpicklable = True
                from mova_bench.console import log

                log(f"warning: {getattr(fn, '__qualname__', fn)!s} cannot be sent to Ray workers (not picklable); "
                    "running its tasks in this process")
            return None

    def _env(self, extra: list[str]) -> dict[str, str]:
        from mova_bench.cache import home

        env = {k: v for k, v in os.environ.items() if k.startswith("MOVA_BENCH_") and k != ADDRESS_ENV}
        names = [*extra, *(n.strip() for n in os.environ.get(FORWARD_ENV, "").split(","))]
        env.update({n: os.environ[n] for n in names if n and n in os.environ})
        env.update(THREAD_ENV)
        env["MOVA_BENCH_HOME"] = str(home().expanduser().resolve())
        return env

    def _slots(self, hint: dict[str, float]) -> int:
        total = self._cluster()
        if hint["num_gpus"] > 0:
            if total["GPU"] < hint["num_gpus"]:
                raise ConfigError(f"each task asks for {hint['num_gpus']:g} GPU(s) (the model card's resources.gpus); "
                                  f"the Ray cluster has {total['GPU']:g}",
                                  fix=f"add GPU nodes to the cluster, or point {ADDRESS_ENV} at one that has them")
            slots = total["GPU"] / hint["num_gpus"]
        else:
            slots = total["CPU"] / hint["num_cpus"] if hint["num_cpus"] > 0 else total["CPU"]
        if hint["num_cpus"] > total["CPU"]:
            raise ConfigError(f"each task asks for {hint['num_cpus']:g} CPUs; the Ray cluster has {total['CPU']:g}",
                              fix="lower resources.cpus in the model card, or use a larger cluster")
        slots = max(1, int(slots))
        return min(slots, self.workers) if self.workers else slots

    def _results(self, ray: Any, fn_blob: bytes, items: list[Any], hint: dict[str, float],
                 extra_env: list[str]) -> Iterator[tuple[Any, Any]]:
        """``(item, result)`` in completion order, with at most ``2 × slots`` tasks in flight."""
        from ray import cloudpickle

        # max_calls=0: keep workers (and the weights they loaded); Ray's default restarts a GPU worker after each task
        env = self._env(extra_env)
        options: dict[str, Any] = {"num_cpus": hint["num_cpus"], "num_gpus": hint["num_gpus"],
                                   "max_retries": self.max_retries, "retry_exceptions": False}
        if env != self._inherited_env:  # a cluster's workers, or a variable this Ray's workers lack
            options["runtime_env"] = {"env_vars": env}
        remote = ray.remote(max_calls=0)(_ray_task).options(**options)
        fn_key = hashlib.sha256(fn_blob).hexdigest()
        fn_ref = ray.put(fn_blob)
        cwd = os.getcwd()
        context = {"cwd": cwd, "sys_path": [os.path.abspath(p) if p else cwd for p in sys.path]}
        cap = max(2, INFLIGHT_PER_WORKER * self._slots(hint))
        todo = deque(range(len(items)))
        inflight: dict[Any, int] = {}
        try:
            while todo or inflight:
                while todo and len(inflight) < cap:
                    index = todo.popleft()
                    try:
                        blob = cloudpickle.dumps(items[index])
                    except Exception as exc:  # noqa: BLE001 - this item only
                        yield items[index], TaskFailure(error=f"the task cannot be sent to Ray workers: {_slim(exc)}",
                                                        reason="error")
                        continue
                    inflight[remote.remote(fn_key, fn_ref, blob, context)] = index
                if not inflight:
                    continue
                ready, _ = ray.wait(list(inflight), num_returns=1)
                more, _ = ray.wait([r for r in inflight if r not in ready], num_returns=len(inflight) - len(ready),
                                   timeout=0) if len(inflight) > len(ready) else ([], [])
                for ref in [*ready, *more]:
                    index = inflight.pop(ref)
                    yield items[index], self._outcome(ray, ref)
        finally:
            if inflight:
                for ref in inflight:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 - finished meanwhile, or Ray is going away
                        pass

    @staticmethod
    def _outcome(ray: Any, ref: Any) -> Any:
        exceptions = ray.exceptions
        died = tuple(getattr(exceptions, n) for n in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError",
                                                       "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError")
                     if hasattr(exceptions, n))
        try:
            return ray.get(ref)
        except died as exc:
            return TaskFailure(error=f"the Ray worker running this task died ({_slim(exc)})", reason="worker_died")
        except exceptions.RayTaskError as exc:  # raised outside run_task: the result could not be sent back...
            cause = getattr(exc, "cause", None) or exc
            return TaskFailure(error=_slim(cause), reason="error", traceback=str(exc))
        except exceptions.RayError as exc:  # cancelled, unschedulable, runtime_env setup failed...
            return TaskFailure(error=_slim(exc), reason="error")
