"""End to end on the procedural world: run, resume, kill-and-restart, evaluate with bad media."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_av
from mova_bench.cli import main
from mova_bench.media import probe_streams
from mova_bench.store import read_manifest

pytestmark = pytest.mark.slow

SMALL_SUITE = """\
name: tiny_storm
version: "1"
description: a small suite for tests
defaults: {duration_s: 2.0, fps: 24, sample_rate: 48000, width: 128, height: 72, samples_per_prompt: 2, seed: 3}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: near_strike, text: "A lightning bolt strikes close by, followed instantly by a loud crack of thunder"}
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
"""


@pytest.fixture()
def suite_file(tmp_path):
    p = tmp_path / "tiny_storm.yaml"
    p.write_text(SMALL_SUITE)
    return p


def per_clip(run_dir):
    import pyarrow.parquet as pq

    return pq.read_table(Path(run_dir) / "per_clip.parquet").to_pylist()


def _cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _run_args(suite_file, out, *extra):
    return ["run", "--model", "procedural", "--suite", str(suite_file), "--out", str(out), "--json", *extra]


def test_run_writes_a_complete_run_folder_and_resumes(tmp_path, suite_file, capsys):
    code, out, err = _cli(_run_args(suite_file, tmp_path / "runs"), capsys)
    assert code == 0, err
    doc = json.loads(out)  # stdout is exactly one JSON object
    run_dir = Path(doc["run_dir"])
    assert doc["n_clips"] == 6 and doc["n_failed"] == 0 and doc["status"] == "ok"
    for name in ("run_spec.json", "manifest.jsonl", "per_clip.parquet", "metrics.json", "provenance.json", "report.html"):
        assert (run_dir / name).is_file(), name
    rows = read_manifest(run_dir / "manifest.jsonl")
    assert len(rows) == 6 and all(r["status"] == "ok" and r["content_hash"] for r in rows)
    for r in rows:
        streams = probe_streams(r["path"])
        assert streams["video"] and streams["audio"], r["path"]
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics == doc["metrics"]
    for key in ("fd_video[vstats]", "fd_audio[melstats]", "sync_offset_ms", "in_sync_rate", "detector_auc[forensic+vstats+melstats]"):
        assert metrics[key]["status"] == "ok", (key, metrics[key])
        assert metrics[key]["ci_low"] is not None and metrics[key]["n"] > 0
    assert metrics["clip_score[openclip-vit-b-32]"]["status"] == "skipped" and metrics["clip_score[openclip-vit-b-32]"]["value"] is None
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / "per_clip.parquet").to_pylist()
    assert [t["clip_id"] for t in table] == [r["clip_id"] for r in rows]
    assert all(t["sync_status"] for t in table)
    assert {"p_synthetic", "sync_scored_offset_ms", "in_sync", "av_align_iou", "sync_offset_raw_ms"} <= set(table[0])
    assert all(0.0 <= t["p_synthetic"] <= 1.0 for t in table) and all(t["in_sync"] in (0.0, 1.0, None) for t in table)

    mtimes = {r["clip_id"]: os.stat(r["path"]).st_mtime_ns for r in rows}
    written = {f: os.stat(run_dir / f).st_mtime_ns for f in ("metrics.json", "provenance.json", "report.html")}
    code2, out2, err2 = _cli(_run_args(suite_file, tmp_path / "runs"), capsys)
    assert code2 == 0
    assert json.loads(out2)["run_dir"] == str(run_dir)
    rows2 = read_manifest(run_dir / "manifest.jsonl")
    assert {r["clip_id"]: os.stat(r["path"]).st_mtime_ns for r in rows2} == mtimes  # nothing regenerated
    # the same evaluation of the same clips: reused as it is, nothing rewritten
    assert "unchanged evaluation reused" in err2
    assert {f: os.stat(run_dir / f).st_mtime_ns for f in written} == written
    assert json.loads(out2)["metrics"] == doc["metrics"]
    # another evaluation of the same clips reads every feature from the cache: nothing decoded
    code2b, out2b, err2b = _cli(_run_args(suite_file, tmp_path / "runs", "--metrics", "fd_video,sync_offset_ms"), capsys)
    assert code2b == 0 and "unchanged evaluation reused" not in err2b, err2b
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["inputs"]["cache"]["clips_decoded"] == 0 and prov["inputs"]["cache"]["hits"] > 0
    assert json.loads(out2b)["metrics"]["fd_video[vstats]"] == doc["metrics"]["fd_video[vstats]"]

    # a different knob is a different run folder; nothing of the first is touched
    code3, out3, _ = _cli(_run_args(suite_file, tmp_path / "runs", "--set", "av_offset_ms=120"), capsys)
    assert code3 == 0 and json.loads(out3)["run_dir"] != str(run_dir)
    assert {r["clip_id"]: os.stat(r["path"]).st_mtime_ns for r in read_manifest(run_dir / "manifest.jsonl")} == mtimes


def test_regenerates_a_clip_whose_file_changed(tmp_path, suite_file, capsys):
    code, out, _ = _cli(_run_args(suite_file, tmp_path / "runs", "--metrics", "sync_offset_ms"), capsys)
    run_dir = Path(json.loads(out)["run_dir"])
    victim = read_manifest(run_dir / "manifest.jsonl")[0]
    Path(victim["path"]).write_bytes(b"corrupted")
    code, out, _ = _cli(_run_args(suite_file, tmp_path / "runs", "--metrics", "sync_offset_ms"), capsys)
    assert code == 0
    again = read_manifest(run_dir / "manifest.jsonl")[0]
    assert again["content_hash"] == victim["content_hash"]  # deterministic regeneration
    assert probe_streams(again["path"])["audio"]


def test_kill_mid_run_then_resume_equals_uninterrupted(tmp_path, suite_file, capsys):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out_killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mova_bench", *_run_args(suite_file, out_killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        manifests = list(out_killed.glob("*/manifest.jsonl"))
        if manifests:
            done = [r for r in read_manifest(manifests[0]) if r["status"] == "ok"]
            if 1 <= len(done) < 6:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_at = len(done)
                break
        time.sleep(0.005)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    assert not list(out_killed.glob("*/metrics.json"))

    code, out, err = _cli(_run_args(suite_file, out_killed), capsys)
    assert code == 0, err
    resumed = json.loads(out)
    code, out, _ = _cli(_run_args(suite_file, tmp_path / "clean"), capsys)
    clean = json.loads(out)
    assert resumed["metrics"] == clean["metrics"]
    a = {r["clip_id"]: r["content_hash"] for r in read_manifest(Path(resumed["run_dir"]) / "manifest.jsonl")}
    b = {r["clip_id"]: r["content_hash"] for r in read_manifest(Path(clean["run_dir"]) / "manifest.jsonl")}
    assert a == b
    assert not list(Path(resumed["run_dir"]).rglob("*.tmp"))


def test_evaluate_folder_with_bad_media(tmp_path, suite_file, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    make_av(clips / "near_strike.mp4", seconds=2.0)
    make_av(clips / "odd_size.mp4", seconds=2.0, width=97, height=55)
    make_av(clips / "stereo44k.mp4", seconds=2.0, channels=2, sr=44100)
    make_av(clips / "long60s.mp4", seconds=60.0, width=96, height=64, events=tuple(0.5 + 1.5 * i for i in range(39)))
    (clips / "empty.mp4").write_bytes(b"")
    (clips / "notes.mp4").write_text("not a video at all\n" * 20)
    good = (clips / "near_strike.mp4").read_bytes()
    (clips / "cut.mp4").write_bytes(good[: len(good) // 2])
    make_av(clips / "silent_film.mp4", audio=False)
    make_av(clips / "radio.mp4", video=False)
    before = {p.name: p.read_bytes() for p in clips.iterdir()}

    code, out, err = _cli(["evaluate", "--clips", str(clips), "--suite", str(suite_file), "--out", str(tmp_path / "runs"), "--json"], capsys)
    assert code == 3
    assert "Traceback" not in err
    doc = json.loads(out)
    assert doc["n_clips"] == 9 and doc["n_failed"] == 5
    # analysis failures belong to the evaluation (per_clip.parquet), not to the manifest of what exists
    rows = {r["clip_id"]: r for r in per_clip(Path(doc["run_dir"]))}
    assert {k: rows[k]["reason"] for k in ("empty", "notes", "cut", "silent_film", "radio")} == {
        "empty": "empty", "notes": "not_media", "cut": "truncated", "silent_film": "no_audio_stream", "radio": "no_video_stream"}
    for k in ("near_strike", "odd_size", "stereo44k", "long60s"):
        assert rows[k]["status"] == "ok", rows[k]
        assert rows[k]["path"] == str(clips / f"{k}.mp4")
    assert rows["near_strike"]["prompt_id"] == "near_strike" and rows["odd_size"]["prompt_id"] is None
    assert doc["metrics"]["sync_offset_ms"]["extra"]["n_total"] == 4
    assert {p.name: p.read_bytes() for p in clips.iterdir()} == before  # nothing modified
    assert "5 failed" in (Path(doc["run_dir"]) / "report.html").read_text()


def test_usage_errors_exit_2_with_the_fix(tmp_path, suite_file, capsys):
    code, _, err = _cli(["run", "--model", "procedural", "--suite", str(suite_file), "--out", str(tmp_path), "--set", "av_ofset_ms=3"], capsys)
    assert code == 2 and "av_offset_ms" in err and "Traceback" not in err
    code, _, err = _cli(["run", "--model", "mova", "--suite", str(suite_file), "--out", str(tmp_path)], capsys)
    assert code == 2 and "pip install" in err and "hf download" in err
    code, _, err = _cli(["run", "--model", "procedural", "--suite", "no_such_suite", "--out", str(tmp_path)], capsys)
    assert code == 2 and "Valid suites" in err
    code, _, err = _cli(["evaluate", "--clips", str(tmp_path / "nope"), "--out", str(tmp_path)], capsys)
    assert code == 2 and "not a folder" in err
    assert not list(tmp_path.glob("procedural-*"))  # nothing created for a bad command


def test_reference_stats_build_and_evaluate_against_it(tmp_path, suite_file, capsys):
    npz = tmp_path / "ref.npz"
    code, out, err = _cli(["reference", "build", "--suite", str(suite_file), "--out", str(npz)], capsys)
    assert code == 0, err and npz.is_file()
    code, _, err = _cli(["reference", "build", "--suite", str(suite_file), "--out", str(npz)], capsys)
    assert code == 2 and "never overwritten" in err
    code, out, err = _cli(_run_args(suite_file, tmp_path / "runs", "--metrics", "fd_video,kid_video"), capsys)
    clips_dir = Path(json.loads(out)["run_dir"]) / "clips"
    code, out, err = _cli(["evaluate", "--clips", str(clips_dir), "--suite", str(suite_file), "--reference", str(npz),
                           "--metrics", "fd_video,kid_video", "--out", str(tmp_path / "runs"), "--json"], capsys)
    assert code == 0, err
    m = json.loads(out)["metrics"]
    assert m["fd_video[vstats]"]["status"] == "ok" and m["fd_video[vstats]"]["value"] > 0
    assert m["kid_video[vstats]"]["status"] == "skipped" and "running sums" in m["kid_video[vstats]"]["reason"]


def test_sanity_json_contract(tmp_path, capsys):
    code, out, err = _cli(["sanity", "--json", "--out", str(tmp_path / "sanity")], capsys)
    doc = json.loads(out)
    assert set(doc) >= {"passed", "checks"} and len(doc["checks"]) >= 9
    assert {c["metric"] for c in doc["checks"]} >= {"sync_offset_ms", "in_sync_rate", "av_align", "fd_video[vstats]", "fd_audio[melstats]"}
    for c in doc["checks"]:
        assert set(c) >= {"metric", "knob", "values", "measured", "passed"}
    failed = [c for c in doc["checks"] if not c["passed"]]
    assert doc["passed"] and not failed and code == 0, failed


def test_a_failing_clip_is_recorded_and_the_run_goes_on(tmp_path, suite_file, capsys):
    card = tmp_path / "flaky.yaml"
    card.write_text("name: flaky\nadapter: conftest:FlakyGenerator\nlearned: false\n")
    code, out, err = _cli(["run", "--model", str(card), "--suite", str(suite_file), "--out", str(tmp_path / "runs"),
                           "--metrics", "sync_offset_ms,fd_video", "--json"], capsys)
    assert code == 3 and "Traceback" not in err
    doc = json.loads(out)
    assert doc["n_failed"] == 2 and doc["status"] == "partial"
    rows = read_manifest(Path(doc["run_dir"]) / "manifest.jsonl")
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["prompt_id"] for r in failed} == {"drum"} and all("out of memory" in r["error"] for r in failed)
    assert doc["metrics"]["fd_video[vstats]"]["n"] == 4
    metrics_doc = json.loads((Path(doc["run_dir"]) / "metrics.json").read_text())
    assert metrics_doc["failures"] == {"error": 2}


def test_reference_clip_failures_are_counted_not_hidden(tmp_path, suite_file, capsys):
    ref = tmp_path / "ref"
    ref.mkdir()
    for i in range(3):
        make_av(ref / f"r{i}.mp4", seconds=2.0, events=(0.5 + 0.2 * i, 1.4))
    (ref / "broken.mp4").write_bytes(b"")
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        make_av(clips / f"c{i}.mp4", seconds=2.0, events=(0.4 + 0.3 * i,))
    code, out, err = _cli(["evaluate", "--clips", str(clips), "--suite", str(suite_file), "--reference", str(ref),
                           "--metrics", "fd_video", "--out", str(tmp_path / "runs"), "--json"], capsys)
    assert code == 0, err  # the generated clips are all fine
    run_dir = Path(json.loads(out)["run_dir"])
    doc = json.loads((run_dir / "metrics.json").read_text())
    assert doc["reference"]["n_clips"] == 4 and doc["reference"]["n_failed"] == 1
    assert doc["reference"]["failures"] == {"ref:broken": "empty"}
    assert doc["metrics"]["fd_video[vstats]"]["extra"]["n_ref"] == 3
    assert "1 failed" in (run_dir / "report.html").read_text() and "reference clips failed" in err
