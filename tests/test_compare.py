"""``mova-bench compare``: the regression gate between two run folders.

The end-to-end tests make real runs of the procedural world in-process (a tiny suite: 3 prompts ×
2 samples, 1.5 s at 96×64): a baseline (seed 1), a reseeded copy of the same model (seed 2), two
degraded candidates with the baseline's seeds (audio 200 ms late; video noise 0.2) and a run of
another suite. The gates are the ones a user would write — sync within +20 ms, Fréchet distance
within +50% — and are checked both ways: the reseeded copy must pass them, the degraded ones fail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from mova_bench.cli import _Parser
from mova_bench.compare import Pairing, add_parser, main, mover, parse_fail_on

SUITE = """\
name: {name}
version: 1
description: three prompts for compare tests
defaults: {{duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 2, seed: 1}}
reference: {{kind: procedural, samples_per_prompt: 2}}
prompts:
  - {{id: drum, text: "A drummer hits a snare drum in a quiet room"}}
  - {{id: ball, text: "A red ball bounces on a wooden floor"}}
  - {{id: door, text: "A door slams shut in a hallway"}}
"""
GATES = ("--fail-on", "sync_offset_abs_ms:+20", "--fail-on", "fd_video:+50%")
ROW_KEYS = {"metric", "display_name", "unit", "baseline", "baseline_ci", "candidate", "candidate_ci", "delta",
            "delta_ci", "method", "verdict", "fail_on", "failed"}


def parse(*argv: object) -> argparse.Namespace:
    """The way the CLI builds it: its parser class (usage errors → SystemExit(2)) plus add_parser."""
    p = _Parser(prog="mova-bench")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parser(sub)
    return p.parse_args(["compare", *(str(a) for a in argv)])


def compare_cli(capsys, *argv: object) -> tuple[int, str, str]:
    code = main(parse(*argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows_by_metric(doc: dict) -> dict[str, dict]:
    return {r["metric"]: r for r in doc["rows"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The five runs, made once for the module (≈ 25 s on 2 cores), in the tests' feature cache."""
    from mova_bench.pipeline import run

    home = os.environ.get("MOVA_BENCH_TEST_HOME") or str(tmp_path_factory.getbasetemp() / "mova-home")
    root = tmp_path_factory.mktemp("compare")
    suites = {}
    for name in ("cmp_set", "other_set"):
        suites[name] = root / f"{name}.yaml"
        suites[name].write_text(SUITE.format(name=name))
    with pytest.MonkeyPatch.context() as mp:  # the same home conftest gives every test
        mp.setenv("MOVA_BENCH_HOME", home)

        def make(suite: str = "cmp_set", **kw) -> Path:
            outcome = run("procedural", str(suites[suite]), out=root / "runs", **kw)
            assert outcome.n_failed == 0
            return outcome.run_dir

        # the degraded candidates score only the metrics their tests read (a subset, as a user may)
        return {
            "baseline": make(seed=1),
            "reseeded": make(seed=2),
            "late_audio": make(seed=1, params={"av_offset_ms": "200"},
                               metrics=["fd_video", "sync_offset_ms", "sync_offset_abs_ms", "in_sync_rate", "av_align"]),
            "noisy_video": make(seed=1, params={"video_noise": "0.2"}, metrics=["fd_video", "kid_video", "sync_offset_abs_ms"]),
            "other_suite": make("other_set", seed=1, metrics=["sync_offset_ms"]),
        }


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_reseeded_copy_passes_and_json_is_one_object(runs, capsys):
    code, out, err = compare_cli(capsys, runs["baseline"], runs["reseeded"], *GATES, "--json")
    doc = json.loads(out)  # the whole of stdout is one JSON object
    assert code == 0 and doc["exit_code"] == 0 and doc["passed"] is True, doc["reasons"]
    assert {"baseline", "candidate", "passed", "exit_code", "rows", "reasons"} <= set(doc)
    assert doc["reasons"] == [] and doc["baseline"] == str(runs["baseline"].resolve())
    recorded_b = json.loads((runs["baseline"] / "metrics.json").read_text())["metrics"]
    recorded_c = json.loads((runs["reseeded"] / "metrics.json").read_text())["metrics"]
    assert [r["metric"] for r in doc["rows"]] == list(recorded_b)  # every metric of both runs, in order
    for r in doc["rows"]:
        assert ROW_KEYS <= set(r), r["metric"]
        if recorded_b[r["metric"]]["status"] != "ok":
            assert r["verdict"] == "not compared" and r["delta"] is None
            continue
        assert r["baseline"] == recorded_b[r["metric"]]["value"] and r["candidate"] == recorded_c[r["metric"]]["value"]
        assert math.isclose(r["delta"], r["candidate"] - r["baseline"], abs_tol=1e-12)
        lo, hi = r["delta_ci"]
        assert lo <= r["delta"] + 1e-12 and r["delta"] - 1e-12 <= hi, r["metric"]
        # the seeds differ, so no clip shares its (prompt_id, seed): nothing is paired
        assert r["method"].startswith("unpaired"), (r["metric"], r["method"])
    rows = rows_by_metric(doc)
    for key in ("sync_offset_abs_ms", "fd_video[vstats]"):
        gate = rows[key]["fail_on"]
        assert gate is not None and rows[key]["failed"] is False
        assert rows[key]["regression_ci"][0] <= gate["threshold"]
        assert rows[key]["verdict"] == "no clear change"
    assert rows["fd_video[vstats]"]["fail_on"]["relative"] is True
    assert math.isclose(rows["fd_video[vstats]"]["fail_on"]["threshold"], 0.5 * rows["fd_video[vstats]"]["baseline"])
    # set-level metrics are recomputed from the cached features, per-clip ones from per_clip.parquet
    assert rows["fd_video[vstats]"]["method"].endswith("(cached features)")
    assert rows["kid_audio[melstats]"]["method"].endswith("(cached features)")
    assert "refitted" in rows["detector_auc[forensic+vstats+melstats]"]["method"]
    assert rows["sync_offset_ms"]["method"] == "unpaired bootstrap"


@pytest.mark.slow
def test_late_audio_fails_the_sync_gates_table_and_markdown(runs, capsys, tmp_path):
    md = tmp_path / "ci" / "compare.md"
    md.parent.mkdir()
    code, out, err = compare_cli(capsys, runs["baseline"], runs["late_audio"], *GATES,
                                 "--fail-on", "sync_offset_ms:+20", "--json", "--markdown", md)
    doc = json.loads(out)
    rows = rows_by_metric(doc)
    assert code == 1 and doc["exit_code"] == 1 and doc["passed"] is False, err
    # fd_video[i3d]: skipped in both (--backbones auto, no weights here), a row that is "not compared"
    assert list(rows) == ["fd_video[vstats]", "fd_video[i3d]", "sync_offset_ms", "sync_offset_abs_ms", "in_sync_rate", "av_align"]
    assert rows["fd_video[i3d]"]["verdict"] == "not compared" and not rows["fd_video[i3d]"]["failed"]
    assert any(n.startswith("only in the baseline, not compared: fd_audio[melstats]") for n in doc["notes"])
    for key in ("sync_offset_abs_ms", "sync_offset_ms"):  # sync_offset_ms is two-sided: judged on |offset|
        assert rows[key]["failed"] and rows[key]["verdict"] == "worse"
        assert rows[key]["method"] == "paired bootstrap"  # same seeds: every clip has its pair
        assert rows[key]["delta"] > 190 and rows[key]["regression_ci"][0] > 20
    assert rows["in_sync_rate"]["verdict"] == "worse"
    assert not rows["fd_video[vstats]"]["failed"] and rows["fd_video[vstats]"]["delta"] == 0  # the video did not change
    assert sorted(r.split(" regressed")[0] for r in doc["reasons"]) == ["sync_offset_abs_ms", "sync_offset_ms"]

    from mova_bench.compare import render_text  # what the command prints without --json

    lines = {ln.split()[0]: ln for ln in render_text(doc).splitlines() if ln.strip()}
    assert "FAIL" in lines["sync_offset_abs_ms"] and "worse" in lines["sync_offset_abs_ms"]
    assert "ok" in lines["fd_video[vstats]"] and "FAIL" not in lines["fd_video[vstats]"]
    assert lines["REGRESSION:"].startswith("REGRESSION: sync_offset_ms regressed beyond --fail-on sync_offset_ms:+20")
    assert "sync_offset_abs_ms regressed beyond --fail-on sync_offset_abs_ms:+20" in lines["REGRESSION:"]

    text = md.read_text()
    assert text.startswith("<!-- mova-bench compare -->") and "**REGRESSION**" in text
    table_rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert table_rows[0].startswith("| metric |") and any(ln.startswith("| sync_offset_abs_ms |") for ln in table_rows)
    assert not list(md.parent.glob(".*.tmp"))  # written atomically, nothing left behind


@pytest.mark.slow
def test_noisy_video_fails_the_fd_gate(runs, capsys):
    code, out, _ = compare_cli(capsys, runs["baseline"], runs["noisy_video"], "--fail-on", "fd_video[vstats]:+50%",
                               "--fail-on", "sync_offset_abs_ms:+20", "--json")
    doc = json.loads(out)
    rows = rows_by_metric(doc)
    assert code == 1 and doc["exit_code"] == 1 and doc["passed"] is False
    fd = rows["fd_video[vstats]"]
    assert fd["failed"] and fd["verdict"] == "worse" and fd["method"] == "paired bootstrap (cached features)"
    assert fd["regression_ci"][0] > fd["fail_on"]["threshold"]
    assert not rows["sync_offset_abs_ms"]["failed"]  # the audio track is untouched
    assert len(doc["reasons"]) == 1 and doc["reasons"][0].startswith("fd_video[vstats] regressed")


@pytest.mark.slow
def test_runs_that_cannot_be_compared_exit_2(runs, capsys, tmp_path):
    code, out, err = compare_cli(capsys, runs["baseline"], runs["other_suite"], *GATES)
    assert code == 2 and "different suites: baseline cmp_set v1, candidate other_set v1" in err and "fix:" in err
    assert "Traceback" not in err

    code, out, err = compare_cli(capsys, runs["baseline"], runs["other_suite"], "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and doc["passed"] is False and doc["rows"] == []
    assert any("different suites" in r for r in doc["reasons"])

    code, out, err = compare_cli(capsys, runs["baseline"], tmp_path, "--json")
    assert code == 2 and "not a run folder" in err and json.loads(out)["exit_code"] == 2

    code, out, err = compare_cli(capsys, runs["baseline"], runs["reseeded"], "--fail-on", "fvd:+5%")
    assert code == 2 and "--fail-on fvd" in err and "fd_video[vstats]" in err and "sync_offset_abs_ms" in err

    with pytest.raises(SystemExit) as exc:  # a malformed tolerance is a usage error of the parser
        parse(runs["baseline"], runs["reseeded"], "--fail-on", "fd_video:-5%")
    assert exc.value.code == 2


@pytest.mark.slow
def test_without_cached_features_set_level_rows_combine_the_runs_cis(runs, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "empty-home"))  # another machine: no feature cache
    code, out, _ = compare_cli(capsys, runs["baseline"], runs["reseeded"], *GATES, "--json")
    doc = json.loads(out)
    rows = rows_by_metric(doc)
    assert code == 0
    fd = rows["fd_video[vstats]"]
    assert fd["method"] == "combined CIs (MOVER)" and "not in the feature cache" in fd["method_detail"]
    b, c = fd["baseline_ci"], fd["candidate_ci"]
    expected = mover(fd["baseline"], b, fd["candidate"], c)
    assert fd["delta_ci"] == pytest.approx(expected)
    assert rows["sync_offset_abs_ms"]["method"] == "unpaired bootstrap"  # per-clip values need no cache


# --------------------------------------------------------------------------- units


def test_fail_on_syntax():
    g = parse_fail_on("fd_video:+5%")
    assert (g.metric, g.tolerance, g.relative) == ("fd_video", 5.0, True)
    assert g.matches("fd_video[vstats]") and g.matches("fd_video[i3d]") and not g.matches("fd_audio[melstats]")
    assert g.threshold(-4.0) == pytest.approx(0.2)
    g = parse_fail_on("sync_offset_abs_ms:20")
    assert (g.tolerance, g.relative, g.threshold(3.0)) == (20.0, False, 20.0)
    g = parse_fail_on("detector_auc[forensic+vstats+melstats]:+0.05")
    assert g.matches("detector_auc[forensic+vstats+melstats]") and g.tolerance == 0.05
    for bad in ("fd_video", "fd_video:-5%", "fd_video:+x", ":+5", "fd_video:+5%%", "fd_video:inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_fail_on(bad)


def test_mover_combines_half_widths_in_quadrature():
    lo, hi = mover(10.0, [9.0, 12.0], 11.0, [7.0, 12.0])
    assert lo == pytest.approx(1.0 - math.hypot(4.0, 2.0))  # candidate's lower and baseline's upper half-widths
    assert hi == pytest.approx(1.0 + math.hypot(1.0, 1.0))


def test_pairing_resamples_pairs_together_and_keeps_sizes():
    p = Pairing([("a", 1), ("b", 2), ("c", 3)], [("b", 2), ("a", 1), ("d", 9), ("e", 9)], "(prompt_id, seed)")
    assert p.n_pairs == 2 and p.kind == "partially paired bootstrap"
    rng = np.random.default_rng(0)
    for _ in range(20):
        ib, ic = p.draw(rng)
        assert len(ib) == 3 and len(ic) == 4
        # the first n_pairs positions hold pairs: baseline index i ↔ candidate index of the same key
        assert all({0: 1, 1: 0}[int(b)] == int(c) for b, c in zip(ib[:2], ic[:2]))
        hb, hc = p.half(rng)
        assert len(set(hb.tolist())) == len(hb) and len(set(hc.tolist())) == len(hc)  # without replacement
    assert Pairing(["x"], ["y"], "clip_id").kind == "unpaired bootstrap"
    assert Pairing(["x", "y"], ["y", "x"], "clip_id").kind == "paired bootstrap"
