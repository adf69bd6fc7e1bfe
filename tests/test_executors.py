from __future__ import annotations

import io
import os
import re
import signal
import sys
import time
from types import SimpleNamespace

import pytest

from mova_bench.errors import UnknownNameError
from mova_bench.executors import TaskFailure, get_executor
from mova_bench.executors import base as executors_base
from mova_bench.executors import pool as pool_mod


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
    # after one item there is no rate yet (start-up would dominate it): no estimate
    assert re.fullmatch(r"generating \(procedural\): 1/4 clips, \d+\.\d s elapsed", lines[0])
    assert re.fullmatch(r"generating \(procedural\): 2/4 clips, \d+\.\d s elapsed, ~\d+\.\d s left", lines[1])
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


def test_progress_estimate_leaves_out_the_start_up(capsys, monkeypatch):
    """A slow first item (workers starting) does not inflate the estimate: the rate is measured
    from the first item's end."""
    clock = iter([0, 20, 21, 22, 23])  # start; first item after 20 s; then 1 s each
    monkeypatch.setattr(executors_base, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    monkeypatch.setenv("MOVA_BENCH_PROGRESS_INTERVAL", "0")
    list(get_executor("local").map(_square, [1, 2, 3, 4], desc="generating"))
    assert capsys.readouterr().err.splitlines() == [
        "generating: 1/4 clips, 20.0 s elapsed",
        "generating: 2/4 clips, 21.0 s elapsed, ~2.0 s left",
        "generating: 3/4 clips, 22.0 s elapsed, ~1.0 s left",
        "generating: 4/4 clips, 23.0 s elapsed",
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


# --------------------------------------------------------------------------------------------
# the pool executor
#
# Task functions live at module level here: spawn/forkserver workers import them by name
# ("test_executors", tests/ being on sys.path under pytest's default import mode; a worker gets
# the caller's sys.path and working directory when it starts, so no PYTHONPATH is needed).
# --------------------------------------------------------------------------------------------

def _pid(x):
    return x, os.getpid()


def _mixed(x):
    """Squares, except: 3 raises, 5 kills its worker, 7 is a MediaError."""
    if x == 3:
        raise ValueError("three is bad")
    if x == 5:
        os._exit(1)
    if x == 7:
        from mova_bench.errors import MediaError

        raise MediaError("truncated", "the file ends early", "clip7.mp4")
    time.sleep(0.02)
    return x * x


def _nap(x):
    time.sleep(x)
    return x


def _worker_settings(_):
    import cv2
    from threadpoolctl import threadpool_info

    return {"cv2": cv2.getNumThreads(), "omp": os.environ.get("OMP_NUM_THREADS"),
            "openblas": os.environ.get("OPENBLAS_NUM_THREADS"), "marker": os.environ.get("MOVA_TEST_MARKER"),
            "pools": sorted({i["num_threads"] for i in threadpool_info()}), "cwd": os.getcwd()}


@pytest.fixture
def pool2():
    with get_executor("pool", workers=2) as ex:
        yield ex


def test_pool_is_registered_with_a_workers_argument():
    from mova_bench.executors import DEFAULT_EXECUTOR

    assert DEFAULT_EXECUTOR == "pool"
    ex = get_executor("pool", workers=3)
    assert isinstance(ex, pool_mod.PoolExecutor) and ex.workers == 3 and not ex.running
    assert get_executor("pool").workers == pool_mod.default_workers()
    get_executor("local", workers=3)  # accepted (and ignored) by the in-process executor
    from mova_bench.errors import ConfigError

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="workers"):
            get_executor("pool", workers=bad)


def test_default_workers_one_per_core_bounded_by_memory(monkeypatch):
    monkeypatch.setattr(pool_mod, "usable_cores", lambda: 16)
    monkeypatch.setattr(pool_mod, "available_memory_bytes", lambda: 64 * 2**30)
    assert pool_mod.default_workers() == 16
    monkeypatch.setattr(pool_mod, "available_memory_bytes", lambda: int(4.6 * 2**30))  # 1.5 GiB each
    assert pool_mod.default_workers() == 3
    monkeypatch.setattr(pool_mod, "available_memory_bytes", lambda: 2**29)
    assert pool_mod.default_workers() == 1
    monkeypatch.setattr(pool_mod, "available_memory_bytes", lambda: None)  # not Linux
    assert pool_mod.default_workers() == 16
    monkeypatch.undo()
    cores = len(os.sched_getaffinity(0))
    assert 1 <= pool_mod.usable_cores() <= cores
    assert 1 <= pool_mod.default_workers() <= cores
    assert pool_mod.available_memory_bytes() > 0


def test_pool_runs_in_workers_and_reuses_them(pool2):
    first = dict(pool2.map(_pid, range(6)))
    assert sorted(first) == list(range(6)) and pool2.running
    pids = {pid for _, pid in first.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    handle = pool2._pool
    again = {pid for _, pid in dict(pool2.map(_pid, range(6))).values()}
    one = dict(pool2.map(_pid, [9]))  # one item, pool running: runs there, no start cost either way
    assert pool2._pool is handle and len(handle.processes) <= 2  # the same pool served every map()
    assert pids | again | {one[9][1]} <= set(handle.processes)


def test_pool_failures_are_recorded_and_a_dead_worker_is_rebuilt(pool2):
    results = dict(pool2.map(_mixed, range(12)))
    assert sorted(results) == list(range(12))
    for x in (0, 1, 2, 4, 6, 8, 9, 10, 11):
        assert results[x] == x * x, (x, results[x])
    assert isinstance(results[3], TaskFailure) and results[3].reason == "error" and "three is bad" in results[3].error
    assert "ValueError" in results[3].traceback
    assert isinstance(results[7], TaskFailure) and results[7].reason == "truncated" and "ends early" in results[7].error
    died = results[5]
    assert isinstance(died, TaskFailure) and died.reason == "worker_died" and "exit code 1" in died.error
    # the pool was rebuilt: later maps run normally
    assert dict(pool2.map(_pid, range(4)))[3][0] == 3


def _exit_or_nap(pair):
    _, x = pair
    if x == "exit":
        os._exit(3)
    if x == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(x)
    return x


def test_every_task_beside_a_dying_one_is_rerun(pool2):
    items = [0.2, 0.2, "exit", 0.2, 0.2, "exit", 0.2, 0.2]  # deaths while siblings are running
    results = {i: r for (i, _), r in pool2.map(_exit_or_nap, list(enumerate(items)))}
    assert sorted(results) == list(range(len(items)))
    for i, x in enumerate(items):
        if x == "exit":
            assert isinstance(results[i], TaskFailure) and results[i].reason == "worker_died", results[i]
            assert "exit code 3" in results[i].error
        else:
            assert results[i] == x, (i, results[i])


@pytest.mark.parametrize("how", ["no exit codes", "stopped from outside"])
def test_a_death_that_cannot_be_pinned_on_a_task_isolates_the_suspects(pool2, monkeypatch, how):
    if how == "no exit codes":  # a Python whose pool keeps no process table: tell by running alone
        real = pool_mod._Pool.post_mortem
        monkeypatch.setattr(pool_mod._Pool, "post_mortem", lambda self: (None, real(self)[1]))
        items, expected = [0.1, 0.1, "exit", 0.1, 0.1], "exit status unknown"
    else:  # SIGTERM is how Python stops the siblings of a dead worker: not proof of guilt
        items, expected = [0.1, 0.1, "sigterm", 0.1, 0.1], "killed by SIGTERM"
    results = {i: r for (i, _), r in pool2.map(_exit_or_nap, list(enumerate(items)))}
    assert isinstance(results[2], TaskFailure) and results[2].reason == "worker_died" and expected in results[2].error
    assert [results[i] for i in (0, 1, 3, 4)] == [0.1] * 4


def _dying_initializer(env, parent_pid):
    os._exit(7)


def test_workers_that_die_before_any_task_fail_the_map_quickly(monkeypatch):
    monkeypatch.setattr(pool_mod, "_init_worker", _dying_initializer)
    t0 = time.perf_counter()
    with get_executor("pool", workers=2) as ex:
        results = dict(ex.map(_square, range(50)))
    assert sorted(results) == list(range(50)) and time.perf_counter() - t0 < 60
    assert all(isinstance(r, TaskFailure) and r.reason == "worker_died" for r in results.values())
    assert "before they run any task" in results[49].error and "exit code 7" in results[49].error


def test_pool_workers_run_single_threaded_with_the_callers_environment(pool2, monkeypatch):
    monkeypatch.setenv("MOVA_TEST_MARKER", "from-the-caller")
    before = {k: os.environ.get(k) for k in pool_mod.THREAD_ENV}
    pool2.close()  # the environment is taken when a pool starts
    for _, s in pool2.map(_worker_settings, range(4)):
        assert s["cv2"] == 1 and s["omp"] == "1" and s["openblas"] == "1", s
        assert s["pools"] in ([], [1]), s  # threadpoolctl: every BLAS/OpenMP pool at one thread
        assert s["marker"] == "from-the-caller" and s["cwd"] == os.getcwd()
    assert {k: os.environ.get(k) for k in pool_mod.THREAD_ENV} == before  # the caller's own are untouched


def test_one_worker_or_one_item_runs_in_process():
    ex = get_executor("pool", workers=1)
    assert {pid for _, pid in dict(ex.map(_pid, range(3))).values()} == {os.getpid()}
    results = dict(ex.map(_square, [1, 3]))
    assert results[1] == 1 and isinstance(results[3], TaskFailure)
    assert not ex.running
    ex2 = get_executor("pool", workers=2)
    assert dict(ex2.map(_pid, [5])) == {5: (5, os.getpid())} and not ex2.running
    assert list(ex2.map(_pid, [])) == [] and not ex2.running
    ex.close()
    ex2.close()


def test_an_unpicklable_task_runs_in_process_with_a_warning(pool2, capsys):
    results = dict(pool2.map(lambda x: (x, os.getpid()), [1, 2, 3]))
    assert {pid for _, pid in results.values()} == {os.getpid()} and not pool2.running
    assert "cannot be sent to worker processes" in capsys.readouterr().err


def test_close_is_idempotent_and_a_closed_pool_starts_again():
    ex = get_executor("pool", workers=2)
    ex.close()  # never started
    assert dict(ex.map(_pid, range(3)))[2][0] == 2 and ex.running
    root = ex._marker_root
    ex.close()
    ex.close()
    assert not ex.running and not os.path.exists(root)
    assert dict(ex.map(_pid, range(3)))[2][0] == 2  # a later map() starts new workers
    ex.close()
    with get_executor("local") as local:  # the base class: a no-op close, usable as a context
        assert dict(local.map(_square, [2])) == {2: 4}
    local.close()


def test_leaving_with_an_exception_stops_running_tasks_at_once():
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with get_executor("pool", workers=2) as ex:
            it = ex.map(_nap, [0.01, 60.0, 60.0])
            assert next(it) == (0.01, 0.01)
            raise KeyboardInterrupt
    assert time.perf_counter() - t0 < 30 and not ex.running


def test_pool_bounds_tasks_in_flight(monkeypatch, pool2):
    outstanding = []
    real_submit = pool_mod._Pool.submit

    def counting_submit(self, fn, item, token):
        fut = real_submit(self, fn, item, token)
        futures.append(fut)
        outstanding.append(sum(not f.done() for f in futures))
        return fut

    futures: list = []
    monkeypatch.setattr(pool_mod._Pool, "submit", counting_submit)
    assert len(dict(pool2.map(_nap, [0.01 * (i % 3) for i in range(40)]))) == 3
    assert len(futures) == 40 and max(outstanding) <= 2 * 2


def test_pool_progress_counts_finished_tasks(capsys, monkeypatch, pool2):
    monkeypatch.setenv("MOVA_BENCH_PROGRESS_INTERVAL", "0")
    assert dict(pool2.map(_square, [1, 2, 4, 5], desc="analysing clips"))[5] == 25
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(",")[0] for ln in lines] == [f"analysing clips: {k}/4 clips" for k in range(1, 5)]
    assert re.fullmatch(r"analysing clips: 4/4 clips, \d+\.\d s elapsed", lines[-1])


class _Chunk:
    """Stands for an analysis chunk: several clips per item."""

    def __init__(self, ids):
        self.clip_ids = tuple(ids)


def _n_clips(chunk):
    return len(chunk.clip_ids)


def test_progress_counts_tasks_when_an_item_holds_several_clips(capsys, monkeypatch, pool2):
    monkeypatch.setenv("MOVA_BENCH_PROGRESS_INTERVAL", "0")
    chunks = [_Chunk(["a", "b"]), _Chunk(["c", "d"]), _Chunk(["e"])]
    for ex in (get_executor("local"), pool2):
        assert sorted(r for _, r in ex.map(_n_clips, chunks, desc="analysing (5 clips, up to 2 per task)")) == [1, 2, 2]
        lines = capsys.readouterr().err.splitlines()
        assert lines[-1].startswith("analysing (5 clips, up to 2 per task): 3/3 tasks,"), lines


@pytest.mark.slow
def test_pool_results_are_bitwise_identical_to_local_on_real_clips(tmp_path):
    """Generate and analyse procedural clips with both executors: same mp4 bytes, same features."""
    from mova_bench.generators.base import ClipRequest
    from mova_bench.pipeline.analysis import AnalysisTask, ExtractorSpec, analyse_clip
    from mova_bench.pipeline.generation import GenTask, generate_clip

    prompts = ["A drummer hits a snare drum", "Lightning strikes, then thunder", "A ball bounces on a gym floor",
               "A person claps their hands", "Rain on a window", "A wine glass falls and shatters"]
    specs = tuple(ExtractorSpec(n) for n in ("vstats", "melstats", "sync_dsp", "av_align", "forensic"))
    outputs = {}
    for name in ("local", "pool"):
        folder = tmp_path / name
        folder.mkdir()
        tasks = [GenTask(ClipRequest(f"c{i}", f"p{i}", text, 7 + i, 0, 2.0, 24.0, 48000, 160, 96),
                         str(folder / f"c{i}.mp4"), "procedural", (), None) for i, text in enumerate(prompts)]
        with get_executor(name, workers=2) as ex:
            gen = {t.request.clip_id: r for t, r in ex.map(generate_clip, tasks)}
            assert not any(isinstance(r, TaskFailure) for r in gen.values()), gen
            jobs = [AnalysisTask(cid, str(folder / f"{cid}.mp4"), r["content_hash"], specs, None, False)
                    for cid, r in gen.items()]
            ana = {t.clip_id: r for t, r in ex.map(analyse_clip, jobs)}
            assert not any(isinstance(r, TaskFailure) for r in ana.values()), ana
            if name == "pool":
                assert ex.running  # the clips really went through worker processes
        outputs[name] = (gen, ana, {p.name: p.read_bytes() for p in folder.glob("*.mp4")})
    (lgen, lana, lfiles), (pgen, pana, pfiles) = outputs["local"], outputs["pool"]
    assert len(lfiles) == len(prompts) and lfiles == pfiles
    for cid in lgen:
        assert lgen[cid]["content_hash"] == pgen[cid]["content_hash"]
        assert lgen[cid]["info"]["events"] == pgen[cid]["info"]["events"]
        assert lana[cid].decoded and pana[cid].decoded and lana[cid].cache_hits == pana[cid].cache_hits == 0
        assert sorted(lana[cid].features) == sorted(pana[cid].features) == sorted(s.name for s in specs)
        for ex_name, arrays in lana[cid].features.items():
            other = pana[cid].features[ex_name]
            assert sorted(arrays) == sorted(other), (cid, ex_name)
            for key, a in arrays.items():
                b = other[key]
                assert (a.dtype, a.shape) == (b.dtype, b.shape) and a.tobytes() == b.tobytes(), (cid, ex_name, key)


def test_an_item_that_cannot_be_sent_to_a_worker_is_a_failure_not_a_crash(pool2):
    import threading

    lock = threading.Lock()
    results = list(pool2.map(_pid, [1, lock, 2]))
    by_item = {id(item): r for item, r in results}
    assert isinstance(by_item[id(lock)], TaskFailure) and "pickle" in by_item[id(lock)].error.lower()
    assert [r[0] for item, r in results if item is not lock] in ([1, 2], [2, 1])


def _blas_threads(_):
    from threadpoolctl import threadpool_info

    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


def test_every_executor_runs_tasks_with_one_blas_thread(pool2):
    """OpenBLAS sums a product differently with 1 and N threads: one thread everywhere keeps a
    clip's features the same bits whichever executor (or machine core count) computed them."""
    import numpy as np  # noqa: F401 - loads OpenBLAS
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info()]
    assert dict(get_executor("local").map(_blas_threads, [0]))[0] in ([], [1])
    assert [i["num_threads"] for i in threadpool_info()] == before  # restored after the task
    assert all(r in ([], [1]) for _, r in pool2.map(_blas_threads, range(3)))


@pytest.mark.slow
def test_reference_build_on_the_pool_matches_local(tmp_path, monkeypatch):
    """``mova-bench reference build`` analyses on the process pool (its default) with the same bits."""
    import numpy as np

    from conftest import make_av
    from mova_bench.pipeline.reference import build_reference_stats

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        make_av(clips / f"r{i}.mp4", seconds=1.5, width=96, height=64, events=(0.3 + 0.2 * i, 1.1))
    built = {}
    for name in ("local", "pool"):
        monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / f"home-{name}"))  # no shared feature cache
        path = build_reference_stats(str(tmp_path / f"{name}.npz"), clips=str(clips), executor=name, workers=2)
        with np.load(path, allow_pickle=False) as z:
            built[name] = {k: z[k] for k in z.files}
    assert set(built["local"]) == set(built["pool"]) and any(k.startswith("vstats/") for k in built["local"])
    for k, v in built["local"].items():
        assert np.array_equal(v, built["pool"][k]), k
