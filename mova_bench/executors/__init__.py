"""Executors run independent per-clip tasks (generate one clip, analyse one clip).

Every task is a pure function of its inputs and returns a plain, picklable result, so results
merge exactly whatever runs them. ``local`` runs them one after another in this process; ``pool``
(the CLI's default, :data:`DEFAULT_EXECUTOR`) runs them in worker processes over the usable cores;
a distributed executor only has to implement :meth:`Executor.map` (and :meth:`Executor.close` if
it holds anything).
"""

from mova_bench.executors.base import DEFAULT_EXECUTOR, Executor, TaskFailure, get_executor

__all__ = ["DEFAULT_EXECUTOR", "Executor", "TaskFailure", "get_executor"]
