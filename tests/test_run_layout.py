"""The run layout: generation kept apart from evaluation, references that match what is scored,
and the error contract (exit 2 with a fix, ``--json`` always one object, failures per clip)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, make_av
from mova_bench.cli import main
from mova_bench.store import read_manifest

pytestmark = pytest.mark.slow

SUITE = """\
name: layout_set
version: 1
description: two prompts for run-layout tests
defaults: {duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 2, seed: 5}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
"""


@pytest.fixture()
def suite_file(tmp_path):
    p = tmp_path / "layout_set.yaml"
    p.write_text(SUITE)
    return p


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, suite_file, out, *extra):
    code, stdout, err = cli(capsys, "run", "--model", "procedural", "--suite", suite_file, "--out", out, "--json", *extra)
    assert code == 0, err
    return json.loads(stdout)


def clip_state(run_dir: Path) -> dict[str, tuple[int, str]]:
    return {r["clip_id"]: (os.stat(r["path"]).st_mtime_ns, r["content_hash"]) for r in read_manifest(run_dir / "manifest.jsonl")}


def test_rescoring_never_regenerates_clips(tmp_path, suite_file, capsys):
    first = run_json(capsys, suite_file, tmp_path / "runs", "--metrics", "sync_offset_ms")
    run_dir = Path(first["run_dir"])
    before = clip_state(run_dir)
    assert set(first["metrics"]) == {"sync_offset_ms"}

    second = run_json(capsys, suite_file, tmp_path / "runs", "--metrics", "fd_video,kid_video,sync_offset_ms")
    assert second["run_dir"] == first["run_dir"]  # same generation spec → same folder
    assert clip_state(run_dir) == before  # zero clips regenerated
    assert second["metrics"]["fd_video[vstats]"]["status"] == "ok"
    assert second["metrics"]["sync_offset_ms"] == first["metrics"]["sync_offset_ms"]

    # auto: no weights here, so fd_video[i3d] is skipped with its fix (standard would exit 2 before any work)
    third = run_json(capsys, suite_file, tmp_path / "runs", "--metrics", "fd_video", "--backbones", "auto")
    assert third["run_dir"] == first["run_dir"] and clip_state(run_dir) == before
    assert third["metrics"]["fd_video[i3d]"]["status"] == "skipped"

    ids = [first["evaluation"], second["evaluation"], third["evaluation"]]
    assert len(set(ids)) == 3
    assert sorted(p.name for p in (run_dir / "evals").iterdir()) == sorted(ids)
    for eid in ids:  # each evaluation keeps its own results
        for name in ("eval_spec.json", "metrics.json", "per_clip.parquet", "provenance.json", "report.html"):
            assert (run_dir / "evals" / eid / name).is_file(), (eid, name)
    top = json.loads((run_dir / "metrics.json").read_text())
    assert top["evaluation"]["id"] == third["evaluation"]  # the top level shows the latest
    assert set(top["metrics"]) == {"fd_video[vstats]", "fd_video[i3d]"}
    assert third["evaluation"] in (run_dir / "report.html").read_text()
    kept = json.loads((run_dir / "evals" / second["evaluation"] / "metrics.json").read_text())
    assert kept["metrics"]["fd_video[vstats]"] == second["metrics"]["fd_video[vstats]"]

    # evaluate --run re-scores the same folder from cached features: nothing decoded, nothing regenerated
    code, out, err = cli(capsys, "evaluate", "--run", run_dir, "--metrics", "fd_video,kid_video,sync_offset_ms", "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["run_dir"] == str(run_dir.resolve()) and again["evaluation"] == second["evaluation"]
    assert again["metrics"] == second["metrics"]
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["inputs"]["cache"]["clips_decoded"] == 0
    assert isinstance(prov["device"], dict) and prov["device"]["cpu_count"] >= 1
    assert clip_state(run_dir) == before


def test_evaluate_run_records_a_changed_clip_and_keeps_the_manifest(tmp_path, suite_file, capsys):
    first = run_json(capsys, suite_file, tmp_path / "runs", "--metrics", "sync_offset_ms")
    run_dir = Path(first["run_dir"])
    manifest_before = (run_dir / "manifest.jsonl").read_text()
    victim = read_manifest(run_dir / "manifest.jsonl")[0]
    Path(victim["path"]).write_bytes(b"edited by hand")
    code, out, err = cli(capsys, "evaluate", "--run", run_dir, "--metrics", "sync_offset_ms", "--json")
    assert code == 3 and "Traceback" not in err
    doc = json.loads(out)
    assert doc["n_failed"] == 1 and doc["metrics"]["sync_offset_ms"]["extra"]["n_total"] == 3
    import pyarrow.parquet as pq

    rows = {r["clip_id"]: r for r in pq.read_table(run_dir / "per_clip.parquet").to_pylist()}
    assert rows[victim["clip_id"]]["reason"] == "changed"
    assert (run_dir / "manifest.jsonl").read_text() == manifest_before  # generation record untouched


def test_procedural_reference_matches_a_learned_models_geometry(tmp_path, suite_file, capsys):
    card = tmp_path / "wide.yaml"  # a "learned" model with its own native format, like MOVA's 193 frames
    card.write_text("name: wide\nadapter: procedural\nlearned: true\n"
                    "generation: {num_frames: 25, fps: 12, width: 80, height: 48, sample_rate: 32000}\n")
    code, out, err = cli(capsys, "run", "--model", card, "--suite", suite_file, "--out", tmp_path / "runs",
                         "--metrics", "fd_video", "--json")
    assert code == 0, err
    run_dir = Path(json.loads(out)["run_dir"])
    doc = json.loads((run_dir / "metrics.json").read_text())
    geo = {"duration_s": 25 / 12, "fps": 12.0, "sample_rate": 32000, "width": 80, "height": 48}
    assert doc["reference"]["domain"] == "procedural" and doc["reference"]["geometry"] == geo
    ref_rows = read_manifest(Path(doc["reference"]["path"]) / "manifest.jsonl")
    assert {(r["width"], r["height"], r["fps"], r["sample_rate"]) for r in ref_rows} == {(80, 48, 12.0, 32000)}
    assert any("oracle world" in w for w in doc["warnings"])
    assert "oracle world" in (run_dir / "report.html").read_text()
    assert "oracle world" in err  # said on the console as well

    # the procedural model itself is not learned: no such warning
    plain = run_json(capsys, suite_file, tmp_path / "runs", "--metrics", "fd_video")
    assert not json.loads((Path(plain["run_dir"]) / "metrics.json").read_text())["warnings"]


def _tamper_identity(src: Path, dst: Path, backbone: str) -> None:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    prov = json.loads(str(arrays[f"{backbone}/provenance"][0]))
    prov["extractor"]["version"] = str(prov["extractor"]["version"]) + "-old"
    arrays[f"{backbone}/provenance"] = np.array([json.dumps(prov)])
    np.savez(dst, **arrays)


def test_stats_reference_identity_is_checked_and_built_from_clips(tmp_path, suite_file, capsys):
    first = run_json(capsys, suite_file, tmp_path / "runs", "--metrics", "fd_video,fd_audio")
    clips = Path(first["run_dir"]) / "clips"
    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        make_av(real / f"r{i}.mp4", seconds=1.5, width=96, height=64, events=(0.3 + 0.1 * i, 0.9))
    npz = tmp_path / "real.npz"
    code, out, err = cli(capsys, "reference", "build", "--clips", real, "--out", npz)
    assert code == 0, err and npz.is_file()
    code, out, err = cli(capsys, "evaluate", "--clips", clips, "--reference", npz, "--metrics", "fd_video,fd_audio",
                         "--out", tmp_path / "ev", "--json")  # a stats reference without any suite
    assert code == 0, err
    ok = json.loads(out)["metrics"]
    assert ok["fd_video[vstats]"]["status"] == "ok" and ok["fd_audio[melstats]"]["status"] == "ok"

    stale = tmp_path / "stale.npz"
    _tamper_identity(npz, stale, "vstats")
    code, out, err = cli(capsys, "evaluate", "--clips", clips, "--reference", stale, "--metrics", "fd_video,fd_audio",
                         "--out", tmp_path / "ev", "--json")
    m = json.loads(out)["metrics"]
    assert m["fd_video[vstats]"]["status"] == "failed" and m["fd_video[vstats]"]["value"] is None
    assert "stale" in m["fd_video[vstats]"]["reason"] and "version" in m["fd_video[vstats]"]["reason"]
    assert f"mova-bench reference build --clips {real}" in m["fd_video[vstats]"]["fix"]
    assert m["fd_audio[melstats]"]["status"] == "ok"  # the other backbone's statistics are still current


def test_clip_folders_are_named_after_what_the_user_gave(tmp_path, capsys):
    for ckpt in ("ckptA", "ckptB"):
        (tmp_path / ckpt / "clips").mkdir(parents=True)
        make_av(tmp_path / ckpt / "clips" / "take1.mp4", seconds=1.5)
    (tmp_path / "ckptA" / "clips" / "prompts.jsonl").write_text(
        '{"clip": "take1.mp4", "prompt": "a drum"}\n{"clip": "take9.mp4", "prompt": "a bell"}\n')
    dirs = []
    for ckpt in ("ckptA", "ckptB"):
        code, out, err = cli(capsys, "evaluate", "--clips", tmp_path / ckpt / "clips", "--metrics", "sync_offset_ms",
                             "--out", tmp_path / "runs", "--json")
        assert code == 0, err
        dirs.append(Path(json.loads(out)["run_dir"]).name)
        if ckpt == "ckptA":
            assert "take9.mp4" in err and "not in" in err  # a prompt for a clip that does not exist: warned
    assert dirs[0].startswith("eval-ckptA-clips-") and dirs[1].startswith("eval-ckptB-clips-")


def test_errors_exit_2_with_a_fix_and_json_on_failure(tmp_path, suite_file, capsys):
    code, out, err = cli(capsys, "run", "--model", "procedural", "--suite", suite_file, "--out", tmp_path,
                         "--samples-per-prompt", "0", "--json")
    assert code == 2 and "--samples-per-prompt 0" in err
    doc = json.loads(out)
    assert doc["status"] == "error" and doc["exit_code"] == 2 and "samples-per-prompt" in doc["error"]
    assert set(doc) == {"status", "exit_code", "error", "fix"}

    code, out, _ = cli(capsys, "run", "--model", "procedural", "--suite", "no_such_suite", "--json")
    assert code == 2 and json.loads(out)["status"] == "error"
    code, out, _ = cli(capsys, "run", "--model", "procedural", "--json")  # argparse: --suite missing
    assert code == 2 and json.loads(out)["exit_code"] == 2

    card = tmp_path / "ghost.yaml"
    card.write_text("name: ghost\nadapter: ghost_models.adapter:Ghost\n")
    code, out, err = cli(capsys, "run", "--model", card, "--suite", suite_file, "--out", tmp_path, "--json")
    assert code == 2 and "Traceback" not in err and "ghost_models" in err and "pip install" in err
    assert json.loads(out)["fix"]
    assert not list(tmp_path.glob("*-layout_set-*"))  # nothing created for a bad command


def test_read_only_places_exit_2_with_the_fix(tmp_path, suite_file, capsys, monkeypatch):
    # This machine's tests run as root, where chmod does not stop writes; refuse access the way the
    # OS does for another user (the pipeline checks os.access and catches PermissionError).
    ro = {str(tmp_path / "ro-out"), str(tmp_path / "ro-home")}
    (tmp_path / "ro-out").mkdir()
    (tmp_path / "ro-home").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).rstrip("/") in ro or
                        any(str(p).startswith(r + "/") for r in ro) else real_access(p, mode, **kw))
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if any(str(self).startswith(r + "/") for r in ro):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, out, err = cli(capsys, "run", "--model", "procedural", "--suite", suite_file, "--out", tmp_path / "ro-out", "--json")
    assert code == 2 and "Traceback" not in err and "--out" in json.loads(out)["fix"]

    monkeypatch.chdir(tmp_path / "ro-out")  # a read-only working directory and the default --out runs/
    code, out, err = cli(capsys, "run", "--model", "procedural", "--suite", suite_file, "--json")
    assert code == 2 and "Permission denied" in err and "--out" in err

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "ro-home"))
    code, out, err = cli(capsys, "run", "--model", "procedural", "--suite", suite_file, "--out", tmp_path / "rw", "--json")
    assert code == 2 and "MOVA_BENCH_HOME" in json.loads(out)["fix"]


def test_unreadable_folder_and_clip(tmp_path, capsys, monkeypatch):
    clips = tmp_path / "clips"
    clips.mkdir()
    make_av(clips / "good.mp4", seconds=1.5)
    make_av(clips / "locked.mp4", seconds=1.5)
    import mova_bench.pipeline.ingest as ingest

    real_hash = ingest.file_sha256

    def sha(path, *a, **kw):
        if Path(path).name == "locked.mp4":
            raise PermissionError(13, "Permission denied", str(path))
        return real_hash(path, *a, **kw)

    monkeypatch.setattr(ingest, "file_sha256", sha)
    code, out, err = cli(capsys, "evaluate", "--clips", clips, "--metrics", "sync_offset_ms", "--out", tmp_path / "runs", "--json")
    assert code == 3 and "Traceback" not in err
    doc = json.loads(out)
    assert doc["n_failed"] == 1 and doc["metrics"]["sync_offset_ms"]["extra"]["n_total"] == 1
    rows = {r["clip_id"]: r for r in read_manifest(Path(doc["run_dir"]) / "manifest.jsonl")}
    assert rows["locked"]["reason"] == "unreadable" and rows["good"]["status"] == "ok"

    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == clips:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    code, out, err = cli(capsys, "evaluate", "--clips", clips, "--out", tmp_path / "runs", "--json")
    assert code == 2 and "cannot be read" in err and json.loads(out)["fix"]


def test_output_files_honour_the_umask(tmp_path, suite_file, capsys):
    old = os.umask(0o022)
    try:
        doc = run_json(capsys, suite_file, tmp_path / "runs", "--metrics", "sync_offset_ms")
    finally:
        os.umask(old)
    run_dir = Path(doc["run_dir"])
    files = [run_dir / n for n in ("metrics.json", "report.html", "manifest.jsonl", "per_clip.parquet", "run_spec.json")]
    files += [Path(r["path"]) for r in read_manifest(run_dir / "manifest.jsonl")]
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o644, f


def test_two_runs_of_one_suite_at_once_share_the_reference(tmp_path, suite_file):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MOVA_BENCH_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([sys.executable, "-m", "mova_bench", "run", "--model", "procedural", "--suite", str(suite_file),
                               "--out", str(tmp_path / "runs"), "--set", f"av_offset_ms={o}", "--metrics", "fd_video", "--json"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in (0, 80)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert json.loads(out)["metrics"]["fd_video[vstats]"]["status"] == "ok"
    refs = list((tmp_path / "home" / "references").iterdir())
    assert len(refs) == 1  # rendered once, used by both


def test_console_says_what_the_table_hides(tmp_path, capsys):
    suite = tmp_path / "thunder.yaml"
    suite.write_text(SUITE.replace("name: layout_set", "name: thunder_small").replace(
        '  - {id: ball, text: "A red ball bounces on a wooden floor"}',
        '  - {id: far, text: "Distant lightning on the horizon; thunder arrives seconds later", expected_offset_ms: [850, 1500]}')
        .replace("sample_rate: 48000,", "sample_rate: 48000, sync_max_lag_ms: 2000,").replace("duration_s: 1.5", "duration_s: 3"))
    code, out, err = cli(capsys, "run", "--model", "procedural", "--suite", suite, "--out", tmp_path / "runs",
                         "--metrics", "fd_video,sync_offset_ms")
    assert code == 0, err
    assert "fewer clips than feature dimensions" in err
    assert "expected window score 0 ms" in err
