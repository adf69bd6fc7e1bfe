"""A rerun whose evaluation is unchanged reuses it: same summary and exit code, no metric computed,
no file rewritten; anything that changes what the numbers are computed from computes them again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import make_av
from mova_bench.cli import main
from mova_bench.pipeline import runs
from mova_bench.store import read_manifest

pytestmark = pytest.mark.slow

SUITE = """\
name: reuse_set
version: 1
description: two prompts for evaluation-reuse tests
defaults: {duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 1, seed: 3}
reference: {kind: procedural, samples_per_prompt: 1}
prompts:
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
"""
METRICS = "fd_video,sync_offset_ms,in_sync_rate"


@pytest.fixture()
def suite_file(tmp_path):
    p = tmp_path / "reuse_set.yaml"
    p.write_text(SUITE)
    return p


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_cmd(suite_file, out, *extra):
    return ["run", "--model", "procedural", "--suite", suite_file, "--out", out, "--executor", "local", *extra]


def files_state(folder: Path) -> dict[str, int]:
    """mtimes of an evaluation's files (the manifest is generation's record, not the evaluation's)."""
    names = (*runs.EVAL_FILES, "report.html", "eval_spec.json", runs.REUSE_FILE)
    return {n: (folder / n).stat().st_mtime_ns for n in names if (folder / n).is_file()}


class Counter:
    """Counts calls of a pipeline function while still running it."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a, **k):
        self.calls += 1
        return self.fn(*a, **k)


def forbid(monkeypatch):
    def boom(*_, **__):
        raise AssertionError("an unchanged evaluation was computed again")

    monkeypatch.setattr(runs, "compute_metrics", boom)
    monkeypatch.setattr(runs, "analyse_set", boom)
    monkeypatch.setattr(runs, "write_evaluation", boom)


def test_unchanged_run_is_reused_with_the_same_summary(tmp_path, suite_file, capsys, monkeypatch):
    code_j, json1, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--json"))
    assert code_j == 0 and runs.REUSED_MESSAGE not in err, err
    doc = json.loads(json1)
    code1, out1, err1 = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--no-cache"))
    assert code1 == 0 and runs.REUSED_MESSAGE not in err1, err1  # computed: the summary to compare with
    run_dir = Path(doc["run_dir"])
    eval_dir = run_dir / "evals" / doc["evaluation"]
    assert (eval_dir / runs.REUSE_FILE).is_file()
    before = {"eval": files_state(eval_dir), "top": files_state(run_dir)}
    assert len(before["eval"]) == 6 and len(before["top"]) == 4

    forbid(monkeypatch)  # from here on, any metric computation or analysis fails the test
    code2, out2, err2 = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS))
    assert code2 == code1 == 0, err2
    assert out2 == out1  # the same summary table and report line
    assert runs.REUSED_MESSAGE in err2
    code3, json3, _ = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--json"))
    assert code3 == code_j and json.loads(json3) == doc
    assert {"eval": files_state(eval_dir), "top": files_state(run_dir)} == before  # nothing rewritten


def test_changed_metric_list_computes_and_switching_back_reuses(tmp_path, suite_file, capsys, monkeypatch):
    code, out, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--json"))
    first = json.loads(out)
    run_dir = Path(first["run_dir"])
    counted = Counter(runs.compute_metrics)
    monkeypatch.setattr(runs, "compute_metrics", counted)
    code, out, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", "sync_offset_ms", "--json"))
    second = json.loads(out)
    assert code == 0 and counted.calls == 1 and runs.REUSED_MESSAGE not in err
    assert second["evaluation"] != first["evaluation"]
    assert json.loads((run_dir / "metrics.json").read_text())["evaluation"]["id"] == second["evaluation"]

    # back to the first list: reused, and the run's top-level view shows it again
    code, out, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--json"))
    assert code == 0 and counted.calls == 1 and runs.REUSED_MESSAGE in err
    assert json.loads(out) == first
    top = json.loads((run_dir / "metrics.json").read_text())
    assert top["evaluation"]["id"] == first["evaluation"]
    assert first["evaluation"] in (run_dir / "report.html").read_text()

    code, out, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--no-cache", "--json"))
    assert code == 0 and counted.calls == 2 and runs.REUSED_MESSAGE not in err  # --no-cache computes again
    assert json.loads(out)["metrics"] == first["metrics"]


def test_deleted_reports_are_rendered_again_without_computing(tmp_path, suite_file, capsys, monkeypatch):
    code, out, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--json"))
    doc = json.loads(out)
    run_dir = Path(doc["run_dir"])
    eval_dir = run_dir / "evals" / doc["evaluation"]
    metrics_mtime = (eval_dir / "metrics.json").stat().st_mtime_ns
    (eval_dir / "report.html").unlink()
    (run_dir / "report.html").unlink()
    forbid(monkeypatch)
    code, out, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--json"))
    assert code == 0 and runs.REUSED_MESSAGE in err, err
    for folder in (eval_dir, run_dir):
        html = (folder / "report.html").read_text()
        assert doc["evaluation"] in html and "sync_offset_ms" in html
    assert (eval_dir / "metrics.json").stat().st_mtime_ns == metrics_mtime


def test_evaluate_run_recomputes_when_a_clip_changes(tmp_path, suite_file, capsys, monkeypatch):
    code, out, err = cli(capsys, *run_cmd(suite_file, tmp_path / "runs", "--metrics", METRICS, "--json"))
    run_dir = Path(json.loads(out)["run_dir"])
    ev = ["evaluate", "--run", run_dir, "--metrics", METRICS, "--executor", "local", "--json"]
    code, out, err = cli(capsys, *ev)
    first = json.loads(out)
    counted = Counter(runs.compute_metrics)
    monkeypatch.setattr(runs, "compute_metrics", counted)
    code, out, err = cli(capsys, *ev)
    assert code == 0 and counted.calls == 0 and runs.REUSED_MESSAGE in err
    assert json.loads(out) == first

    victim = read_manifest(run_dir / "manifest.jsonl")[0]
    make_av(Path(victim["path"]), seconds=1.5, width=96, height=64, events=(0.3,))  # other content, same name
    code, out, err = cli(capsys, *ev)
    assert counted.calls == 1 and runs.REUSED_MESSAGE not in err
    assert code == 3 and json.loads(out)["n_failed"] == 1  # the changed clip is recorded, as without reuse
    code, out, err = cli(capsys, *ev)  # an evaluation with failed clips is still reused when nothing changed
    assert code == 3 and counted.calls == 1 and runs.REUSED_MESSAGE in err


def test_evaluate_clips_recomputes_when_the_reference_or_a_prompt_changes(tmp_path, capsys, monkeypatch):
    clips, ref = tmp_path / "clips", tmp_path / "ref"
    clips.mkdir()
    ref.mkdir()
    for i in range(3):
        make_av(clips / f"c{i}.mp4", seconds=1.5, width=96, height=64, events=(0.4 + 0.1 * i, 1.0))
        make_av(ref / f"r{i}.mp4", seconds=1.5, width=96, height=64, events=(0.5, 0.9 + 0.1 * i))
    (clips / "prompts.jsonl").write_text("".join(json.dumps({"clip": f"c{i}.mp4", "prompt": f"a drum hit {i}"}) + "\n"
                                                 for i in range(3)))
    ev = ["evaluate", "--clips", clips, "--reference", ref, "--out", tmp_path / "runs", "--metrics", "fd_video,fd_audio",
          "--executor", "local", "--json"]
    code, out, err = cli(capsys, *ev)
    assert code == 0, err
    first = json.loads(out)
    counted = Counter(runs.compute_metrics)
    monkeypatch.setattr(runs, "compute_metrics", counted)
    code, out, err = cli(capsys, *ev)
    assert counted.calls == 0 and json.loads(out) == first and runs.REUSED_MESSAGE in err

    make_av(ref / "r0.mp4", seconds=1.5, width=96, height=64, events=(0.2, 0.6, 1.2))  # the reference changes
    code, out, err = cli(capsys, *ev)
    second = json.loads(out)
    assert code == 0 and counted.calls == 1 and runs.REUSED_MESSAGE not in err
    assert second["evaluation"] == first["evaluation"] and second["run_dir"] == first["run_dir"]
    assert second["metrics"]["fd_video[vstats]"]["value"] != first["metrics"]["fd_video[vstats]"]["value"]

    (clips / "prompts.jsonl").write_text("".join(json.dumps({"clip": f"c{i}.mp4", "prompt": f"a clap {i}"}) + "\n"
                                                 for i in range(3)))
    code, out, err = cli(capsys, *ev)  # the clips' files are the same, their prompts are not
    assert code == 0 and counted.calls == 2 and runs.REUSED_MESSAGE not in err
    assert os.listdir(clips) and sorted(os.listdir(clips)) == ["c0.mp4", "c1.mp4", "c2.mp4", "prompts.jsonl"]  # never written


def test_reference_lock_waits_for_another_builder(tmp_path, suite_file, capsys):
    import threading
    import time

    from mova_bench.executors import get_executor
    from mova_bench.pipeline.reference import _procedural_plan, procedural_reference_rows, resolve_reference
    from mova_bench.cards import load_card
    from mova_bench.pipeline.requests import generation_geometry
    from mova_bench.store import exclusive_folder
    from mova_bench.suites import load_suite

    suite = load_suite(str(suite_file))
    ref = resolve_reference(suite, None)
    geometry = generation_geometry(suite, None)
    root, _ = _procedural_plan(suite, ref, geometry, load_card("procedural"))
    held, release = threading.Event(), threading.Event()

    def other_builder():
        with exclusive_folder(root, wait=True, what="reference folder"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=other_builder)
    t.start()
    assert held.wait(10)
    t0 = time.monotonic()
    threading.Timer(1.0, release.set).start()
    rows, info = procedural_reference_rows(suite, ref, geometry, get_executor("local"))
    waited = time.monotonic() - t0
    t.join()
    assert waited >= 0.9  # it waited for the holder instead of failing
    assert "waiting for" in capsys.readouterr().err
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows) and info["path"] == str(root)
