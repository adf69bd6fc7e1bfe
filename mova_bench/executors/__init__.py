"""Executors run independent per-clip tasks (generate one clip, analyse one clip).

Every task is a pure function of its inputs and returns a plain, picklable result, so results
merge exactly whatever runs them. The local executor is the default; a distributed executor only
has to implement :class:`Executor.map`.
"""

from mova_bench.executors.base import Executor, TaskFailure, get_executor

__all__ = ["Executor", "TaskFailure", "get_executor"]
