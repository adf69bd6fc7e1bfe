from __future__ import annotations

import io
import re
import sys
from types import SimpleNamespace

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


def test_progress_prints_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("MOVA_BENCH_PROGRESS_INTERVAL", "0")
    results = dict(get_executor("local").map(_square, [1, 2, 3, 4], desc="generating (procedural)"))
    assert results[4] == 16
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4
    assert re.fullmatch(r"generating \(procedural\): 1/4 clips, \d+\.\d s elapsed, ~\d+\.\d s left", lines[0])
    # the last line says it is done: no estimate
    assert re.fullmatch(r"generating \(procedural\): 4/4 clips, \d+\.\d s elapsed", lines[-1])


def test_progress_lines_are_spaced_by_the_interval(capsys, monkeypatch):
    clock = iter(range(0, 1000, 4))  # each call: 4 s later
    monkeypatch.setattr(executors_base, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    monkeypatch.delenv("MOVA_BENCH_PROGRESS_INTERVAL", raising=False)  # default: 10 s
    list(get_executor("local").map(_square, [1, 2, 4, 5, 6], desc="analysing"))
    assert capsys.readouterr().err.splitlines() == [
        "analysing: 3/5 clips, 12.0 s elapsed, ~8.0 s left",
        "analysing: 5/5 clips, 20.0 s elapsed",
    ]


def test_progress_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOVA_BENCH_PROGRESS_INTERVAL", "2.5")
    assert executors_base.progress_interval() == 2.5
    for bad in ("soon", "-1", "nan", ""):
        monkeypatch.setenv("MOVA_BENCH_PROGRESS_INTERVAL", bad)
        assert executors_base.progress_interval() == 10.0


def test_progress_is_a_bar_on_a_terminal(monkeypatch):
    from tqdm import tqdm

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = executors_base.progress([1, 2], "generating")
    assert isinstance(bar, tqdm) and list(bar) == [1, 2]
    bar.close()
