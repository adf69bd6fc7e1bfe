from __future__ import annotations

import sys

import pytest

from mova_bench.errors import UnknownNameError
from mova_bench.executors import TaskFailure, get_executor
from mova_bench.executors import base as executors_base


def _square(x):
    if x == 3:
        raise ValueError("three is bad")
    return x * x


def test_local_executor_keeps_going_after_a_failed_task():
    results = dict(get_executor("local").map(_square, [1, 2, 3, 4]))
    assert results[1] == 1 and results[4] == 16
    assert isinstance(results[3], TaskFailure) and "three is bad" in results[3].error and results[3].reason == "error"


def test_unknown_executor_names_the_choices():
    with pytest.raises(UnknownNameError, match="Did you mean 'local'"):
        get_executor("locl")


def test_a_new_executor_is_one_new_file(tmp_path, monkeypatch):
    import mova_bench.executors as pkg

    (tmp_path / "reverse.py").write_text(
        "from mova_bench.executors.base import Executor, run_task\n"
        "class ReverseExecutor(Executor):\n"
        "    name = 'reverse'\n"
        "    def __init__(self, **kw): pass\n"
        "    def map(self, fn, items, *, desc=''):\n"
        "        for item in reversed(list(items)):\n"
        "            yield item, run_task(fn, item)\n"
    )
    monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(tmp_path)])
    monkeypatch.setattr(executors_base.executors, "_entries", dict(executors_base.executors._entries))
    ex = get_executor("reverse")
    assert [item for item, _ in ex.map(_square, [1, 2, 4])] == [4, 2, 1]
    sys.modules.pop("mova_bench.executors.reverse", None)
