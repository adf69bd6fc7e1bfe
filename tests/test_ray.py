"""The ``ray`` executor with real Ray on this machine: in-process Ray, a two-node cluster on
127.0.0.1, a worker that dies, and the message when Ray is not installed.

Skipped when Ray is not installed (``pip install 'mova-bench[ray]'``), except with ``CI=true``,
where a missing Ray fails. The cluster test stops only the processes it started (each node's
``ray start --block`` runs in its own process group, killed by id), never ``ray stop``, which
would stop every Ray of the machine's user."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mova_bench.cli import main
from mova_bench.executors import TaskFailure, get_executor

SUITE = """\
name: ray_set
version: 1
description: two prompts for the ray executor's tests
defaults: {duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 2, seed: 5}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
"""

RAY_BIN = Path(sys.executable).with_name("ray")
MOVA_BIN = Path(sys.executable).with_name("mova-bench")


def _ray_or_skip():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("ray is not installed; CI installs it: pip install -e '.[test,ray]'")
        pytest.skip("ray is not installed (pip install 'mova-bench[ray]')")
    return ray


@pytest.fixture(scope="module")
def ray_installed():
    """Ray, or a skip (a failure with CI=true); module-scoped so it comes before the baseline run."""
    return _ray_or_skip()


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("ray-suite") / "ray_set.yaml"
    p.write_text(SUITE)
    return p


def _without_timings(doc):
    """metrics.json less wall-clock fields (the detector records how long its permutations took)."""
    if isinstance(doc, dict):
        return {k: _without_timings(v) for k, v in doc.items() if k != "seconds"}
    if isinstance(doc, list):
        return [_without_timings(v) for v in doc]
    return doc


def _outputs(run_dir: Path) -> tuple[dict[str, bytes], dict]:
    """The clips' bytes and metrics.json's metrics (every value, CI, n, status...)."""
    clips = {p.name: p.read_bytes() for p in sorted((run_dir / "clips").glob("*.mp4"))}
    return clips, _without_timings(json.loads((run_dir / "metrics.json").read_text())["metrics"])


@pytest.fixture(scope="module")
def local_baseline(suite_file, tmp_path_factory):
    """The small suite run with the local executor, from an empty cache: clips and metrics."""
    from mova_bench.pipeline import run

    root = tmp_path_factory.mktemp("ray-baseline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOVA_BENCH_HOME", str(root / "home"))
        outcome = run("procedural", str(suite_file), out=root / "runs", executor="local")
    assert outcome.n_clips == 4 and outcome.n_failed == 0
    clips, metrics = _outputs(outcome.run_dir)
    assert len(clips) == 4 and metrics
    return outcome.run_dir.name, clips, metrics


@pytest.fixture(scope="module")
def local_ray(ray_installed):
    """Ray started in this process by the caller (2 CPUs), as a library user would."""
    ray = ray_installed
    if not ray.is_initialized():
        # address="local": a new instance, never a cluster that `ray start` left on this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def no_address(monkeypatch):
    monkeypatch.delenv("MOVA_BENCH_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


# --------------------------------------------------------------------------------------------
# without a cluster
# --------------------------------------------------------------------------------------------


def test_missing_ray_exits_2_with_the_pip_command(monkeypatch, tmp_path, suite_file, capsys):
    from mova_bench.executors import base

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, find_spec("ray") is None
    monkeypatch.delitem(sys.modules, "mova_bench.executors.ray", raising=False)
    monkeypatch.setattr(base.executors, "_entries", {k: v for k, v in base.executors._entries.items() if k != "ray"})
    code = main(["run", "--model", "procedural", "--suite", str(suite_file), "--out", str(tmp_path / "runs"),
                 "--executor", "ray", "--json"])
    out, err = capsys.readouterr()
    assert code == 2, err
    doc = json.loads(out)
    assert doc["status"] == "error" and doc["exit_code"] == 2
    assert "pip install 'mova-bench[ray]'" in doc["fix"] and "Ray" in doc["error"]
    assert "Traceback" not in err and "pip install 'mova-bench[ray]'" in err
    assert not (tmp_path / "runs").exists()  # nothing made before the executor is known to work

    assert main(["list", "executors", "--json"]) == 0
    listed = {e["name"]: e["description"] for e in json.loads(capsys.readouterr().out)}
    assert "unavailable" in listed["ray"] and "mova-bench[ray]" in listed["ray"]


def test_address_and_ownership(monkeypatch, no_address):
    """The address comes from MOVA_BENCH_RAY_ADDRESS; close() shuts down only a Ray it started."""
    _ray_or_skip()
    from mova_bench.errors import ConfigError
    from mova_bench.executors import ray as ray_mod

    with socket.socket() as head:  # something listening, as a cluster's head would
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        monkeypatch.setenv("MOVA_BENCH_RAY_ADDRESS", address)
        assert get_executor("ray").address == address
    monkeypatch.setenv("MOVA_BENCH_RAY_ADDRESS", f"127.0.0.1:{_free_port()}")  # nobody there: fails at once
    with pytest.raises(ConfigError, match="cannot connect to the Ray cluster at 127.0.0.1"):
        get_executor("ray")
    monkeypatch.setenv("MOVA_BENCH_RAY_ADDRESS", "http://x")
    with pytest.raises(ConfigError, match="MOVA_BENCH_RAY_ADDRESS"):
        get_executor("ray")
    monkeypatch.delenv("MOVA_BENCH_RAY_ADDRESS")
    assert get_executor("ray", workers=3).address is None

    class FakeRay:  # records what the executor asks of Ray
        def __init__(self, running):
            self.running, self.calls = running, []

        def is_initialized(self):
            return self.running

        def init(self, **kw):
            self.calls.append(("init", kw))
            self.running = True

        def shutdown(self):
            self.calls.append(("shutdown",))
            self.running = False

        def cluster_resources(self):
            return {"CPU": 3.0}

        def nodes(self):
            return [{"Alive": True}]

    for already_running, owned in ((False, True), (True, False)):
        fake = FakeRay(already_running)
        monkeypatch.setattr(ray_mod, "_import_ray", lambda fake=fake: fake)
        ex = get_executor("ray", workers=3)
        ex._connect()
        if owned:
            assert fake.calls[0][0] == "init" and fake.calls[0][1]["num_cpus"] == 3
            assert fake.calls[0][1]["address"] == "local"  # never picks up a cluster by accident
        ex.close()
        ex.close()
        assert fake.running is not owned  # stopped only if this executor started it
        assert fake.calls.count(("shutdown",)) == int(owned)


# --------------------------------------------------------------------------------------------
# in-process Ray
# --------------------------------------------------------------------------------------------


def _mixed(x):
    """Squares, except: 3 raises, 5 kills its worker, 7 is a MediaError."""
    if x == 3:
        raise ValueError("three is bad")
    if x == 5:
        os._exit(1)
    if x == 7:
        from mova_bench.errors import MediaError

        raise MediaError("truncated", "the file ends early", "clip7.mp4")
    time.sleep(0.05)
    return x * x


def _worker_settings(_):
    import cv2

    return {"omp": os.environ.get("OMP_NUM_THREADS"), "openblas": os.environ.get("OPENBLAS_NUM_THREADS"),
            "home": os.environ.get("MOVA_BENCH_HOME"), "marker": os.environ.get("MOVA_BENCH_TEST_MARKER"),
            "forwarded": os.environ.get("MOVA_TEST_FORWARDED"), "cv2": cv2.getNumThreads(), "cwd": os.getcwd(),
            "pid": os.getpid()}


@pytest.mark.slow
def test_a_dead_worker_is_a_failure_and_the_others_succeed(local_ray, no_address, capfd):
    with get_executor("ray", workers=2) as ex:
        results = dict(ex.map(_mixed, range(10), desc="mixed"))
    assert sorted(results) == list(range(10))
    for x in (0, 1, 2, 4, 6, 8, 9):
        assert results[x] == x * x, (x, results[x])
    assert isinstance(results[3], TaskFailure) and results[3].reason == "error" and "three is bad" in results[3].error
    assert "ValueError" in results[3].traceback
    assert isinstance(results[7], TaskFailure) and results[7].reason == "truncated"
    died = results[5]
    assert isinstance(died, TaskFailure) and died.reason == "worker_died" and "died" in died.error
    time.sleep(1.0)  # Ray reports the death asynchronously: it must not land on stdout (--json)
    out, _ = capfd.readouterr()
    assert "worker died" not in out.lower() and "(raylet)" not in out
    assert local_ray.is_initialized()  # the caller's Ray is left running


@pytest.mark.slow
def test_workers_get_the_thread_env_and_the_callers_home(local_ray, no_address, monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MOVA_BENCH_TEST_MARKER", "m1")
    monkeypatch.setenv("MOVA_TEST_FORWARDED", "f1")
    monkeypatch.setenv("MOVA_BENCH_RAY_ENV", "MOVA_TEST_FORWARDED")
    with get_executor("ray", workers=2) as ex:
        seen = [r for _, r in ex.map(_worker_settings, range(3))]
    assert all(not isinstance(s, TaskFailure) for s in seen), seen
    for s in seen:
        assert s["omp"] == "1" and s["openblas"] == "1" and s["cv2"] == 1
        assert s["home"] == str((tmp_path / "home").resolve()) and s["marker"] == "m1" and s["forwarded"] == "f1"
        assert s["cwd"] == os.getcwd() and s["pid"] != os.getpid()


@pytest.mark.slow
def test_generation_asks_ray_for_the_model_cards_resources(local_ray, no_address, tmp_path, monkeypatch):
    from mova_bench.errors import ConfigError
    from mova_bench.executors import ray as ray_executor
    from mova_bench.pipeline.generation import GenTask, generate_clip

    card = tmp_path / "gpu-model.yaml"
    card.write_text("name: gpu-model\nadapter: procedural\nlearned: false\n"
                    "weights: {env: MOVA_TEST_WEIGHTS}\nresources: {gpus: 0.5, cpus: 2}\n")
    task = GenTask(None, str(tmp_path / "clip.mp4"), "gpu-model", (), str(card))
    resources, env = ray_executor._generation_hints(generate_clip, [task])
    assert ray_executor._resource_hint(resources) == {"num_cpus": 2.0, "num_gpus": 0.5}
    assert env == ["MOVA_TEST_WEIGHTS"]  # the weights' location follows the tasks to the workers
    assert ray_executor._generation_hints(_mixed, [task]) == (None, [])
    with get_executor("ray") as ex, pytest.raises(ConfigError, match="0.5 GPU"):  # this Ray has no GPU
        list(ex.map(generate_clip, [task]))
    with get_executor("ray") as ex, pytest.raises(ConfigError, match="1 GPU"):  # an explicit hint wins
        list(ex.map(_mixed, [1], resources={"gpus": 1}))


@pytest.mark.slow
def test_in_process_ray_gives_the_local_executors_results(local_ray, no_address, local_baseline, suite_file,
                                                          tmp_path, monkeypatch):
    from mova_bench.pipeline import run

    home = tmp_path / "home"  # an empty cache: every feature is computed by a Ray worker
    monkeypatch.setenv("MOVA_BENCH_HOME", str(home))
    outcome = run("procedural", str(suite_file), out=tmp_path / "runs", executor="ray", workers=2)
    name, clips, metrics = local_baseline
    assert outcome.run_dir.name == name and outcome.n_failed == 0
    got_clips, got_metrics = _outputs(outcome.run_dir)
    assert got_clips == clips  # byte-identical mp4s
    assert got_metrics == metrics
    assert list((home / "features").rglob("*.npz"))  # the workers used this process's MOVA_BENCH_HOME
    assert local_ray.is_initialized()


# --------------------------------------------------------------------------------------------
# a two-node cluster on 127.0.0.1
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


def _stop(procs: list[subprocess.Popen]) -> None:
    """Kill each node's process group (its `ray start --block`, raylet, GCS, workers): only ours."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


@pytest.mark.slow
def test_a_two_node_cluster_gives_the_local_executors_results(ray_installed, local_baseline, suite_file, tmp_path):
    ray = ray_installed
    if ray.is_initialized():
        ray.shutdown()  # the in-process instance of the tests above: this test drives a cluster instead
    temp = tempfile.mkdtemp(prefix="mb-ray-")  # short: Ray's socket paths live under it
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0", "MOVA_BENCH_HOME": str(tmp_path / "home")}
    for k in ("RAY_ADDRESS", "MOVA_BENCH_RAY_ADDRESS"):
        env.pop(k, None)
    node = ["--num-cpus=1", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"]
    procs: list[subprocess.Popen] = []
    logs = [tmp_path / "head.log", tmp_path / "node2.log"]
    try:
        t0 = time.monotonic()
        procs.append(subprocess.Popen(
            [str(RAY_BIN), "start", "--head", f"--port={port}", "--include-dashboard=false",
             f"--dashboard-agent-listen-port={_free_port()}", *node],
            env=env, stdout=logs[0].open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        assert _wait_for_port(port, procs[0], 90), logs[0].read_text()[-3000:]
        procs.append(subprocess.Popen(
            [str(RAY_BIN), "start", f"--address=127.0.0.1:{port}", f"--dashboard-agent-listen-port={_free_port()}", *node],
            env=env, stdout=logs[1].open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        # the driver: the real CLI, pointed at the cluster by the environment
        env["MOVA_BENCH_RAY_ADDRESS"] = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:  # wait for the second node: the run must see 2 nodes
            probe = subprocess.run([sys.executable, "-c", _NODES, env["MOVA_BENCH_RAY_ADDRESS"]], env=env,
                                   capture_output=True, text=True, timeout=120)
            if probe.stdout.strip() == "2" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert probe.stdout.strip() == "2", (probe.stdout, probe.stderr[-2000:], logs[1].read_text()[-2000:])
        started = time.monotonic() - t0
        proc = subprocess.run([str(MOVA_BIN), "run", "--model", "procedural", "--suite", str(suite_file), "--out",
                               str(tmp_path / "runs"), "--executor", "ray", "--json"],
                              env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-4000:]
        doc = json.loads(proc.stdout)  # exactly one JSON object on stdout
        assert "2 node(s), 2 CPUs" in proc.stderr
        name, clips, metrics = local_baseline
        run_dir = Path(doc["run_dir"])
        assert run_dir.name == name and doc["n_failed"] == 0
        got_clips, got_metrics = _outputs(run_dir)
        assert got_clips == clips and got_metrics == metrics
        assert list((tmp_path / "home" / "features").rglob("*.npz"))
        print(f"cluster up in {started:.1f} s")
    finally:
        _stop(procs)
        shutil.rmtree(temp, ignore_errors=True)


_NODES = """\
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
"""
