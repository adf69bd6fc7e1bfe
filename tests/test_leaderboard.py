"""``mova-bench leaderboard add`` / ``build``: entries, groups, ranking, missing values, escaping.

Real runs of the procedural world, made once for the module (a tiny suite: 2 prompts × 2 samples,
1.5 s at 96×64, three metrics): a clean run; a run of a model card whose display name is
``<b>bold</b>`` with the audio 150 ms late (both ``backbones="classical"``); and the clean run re-scored
with ``backbones="auto"`` (its I3D Fréchet distance is skipped: the tests have no standard weights, so that
evaluation is a classical one and replaces the clean run's entry). Built board: one table (classical), the
late run ranked below the clean one on ``sync_offset_abs_ms``, the skipped FVD column shown as such.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from pathlib import Path

import pytest

from mova_bench.cli import _Parser
from mova_bench.leaderboard import add_parser, main

SUITE = """\
name: lb_set
version: 1
description: two prompts for leaderboard tests
defaults: {duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 2, seed: 1}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
"""
CARD = """\
name: bold-proc
display_name: "<b>bold</b>"
description: the procedural world under a display name that is markup
adapter: procedural
learned: false
defaults: {}
"""
METRICS = ["sync_offset_ms", "sync_offset_abs_ms", "fd_video"]


def parse(*argv: object) -> argparse.Namespace:
    """The way the CLI builds it: its parser class (usage errors → SystemExit(2)) plus add_parser."""
    p = _Parser(prog="mova-bench")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parser(sub)
    return p.parse_args(["leaderboard", *(str(a) for a in argv)])


def lb(capsys, *argv: object) -> tuple[int, str, str]:
    code = main(parse(*argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from mova_bench.pipeline import evaluate_run, run

    home = os.environ.get("MOVA_BENCH_TEST_HOME") or str(tmp_path_factory.getbasetemp() / "mova-home")
    root = tmp_path_factory.mktemp("lb")
    (root / "lb_set.yaml").write_text(SUITE)
    (root / "bold.yaml").write_text(CARD)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOVA_BENCH_HOME", home)
        clean = run("procedural", str(root / "lb_set.yaml"), out=root / "runs", metrics=METRICS, backbones="classical")
        late = run(str(root / "bold.yaml"), str(root / "lb_set.yaml"), out=root / "runs", metrics=METRICS,
                   params={"av_offset_ms": 150}, backbones="classical")
        # the same clips re-scored with standard backbones where present (auto; --backbones standard would
        # exit 2 without weights): the top-level view is now this evaluation
        std = evaluate_run(clean.run_dir, backbones="auto", metrics=METRICS)
    assert clean.n_failed == late.n_failed == std.n_failed == 0
    assert std.metrics["fd_video[i3d]"]["status"] == "skipped"
    return {"root": root, "home": Path(home), "clean_eval": clean.run_dir / "evals" / clean.eval_id,
            "late": late.run_dir, "std": std.run_dir}


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("board") / "leaderboard"
    code = main(parse("add", runs["clean_eval"], runs["late"], runs["std"], "--dir", d))
    assert code == 0
    assert main(parse("build", "--dir", d)) == 0
    return d


def _tables(page: str) -> list[str]:
    return re.findall(r"<section id=.*?</section>", page, flags=re.S)


def test_entries_are_reviewable_and_machine_free(runs, built):
    files = sorted(p.name for p in (built / "entries").glob("*.json"))
    # the clean run once: its `auto` re-score found no standard weights, so it is a classical evaluation
    # (keys skipped for an unavailable backbone do not make it "standard") and replaced the first entry
    assert len(files) == 2
    assert any(f.startswith("procedural-lb_set-v1-") and f.endswith("-classical.json") for f in files)
    assert not any(f.endswith("-standard.json") for f in files)
    for f in files:
        text = (built / "entries" / f).read_text()
        doc = json.loads(text)
        assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"  # stable: sorted keys, indent 2
        for where in (runs["root"], runs["home"], Path.home()):
            assert str(where) not in text, (f, where)
        if doc["model"] == "procedural":  # also after re-scoring, whose run title names the card, not its display name
            assert doc["model_display_name"] == "Procedural world (oracle)"
        assert doc["suite"] == "lb_set" and doc["suite_version"] == "1" and doc["learned"] is False
        assert doc["seed"] == 1 and doc["samples_per_prompt"] == 2 and doc["n_failed"] == 0
        assert doc["evaluation"]["id"] and doc["evaluation"]["profile"] == "default"
        assert doc["reference"]["kind"] == "procedural" and doc["reference"]["domain"] == "procedural"
        assert doc["provenance"]["mova_bench"] and doc["provenance"]["evaluated"]
        m = doc["metrics"]["sync_offset_abs_ms"]
        assert {"value", "ci_low", "ci_high", "n", "status", "unit"} <= set(m) and m["unit"] == "ms"
    late = json.loads(next((built / "entries").glob("bold-proc-*.json")).read_text())
    assert late["model_display_name"] == "<b>bold</b>" and late["set_params"] == {"av_offset_ms": 150.0}
    assert late["run_id"] == runs["late"].name


def test_two_groups_ranking_and_missing_values(built):
    page = (built / "index.html").read_text()
    tables = _tables(page)
    assert len(tables) == 1
    classical = standard = tables[0]
    assert "classical backbones" in classical and "standard backbones" not in classical
    # ranking: the late run (|offset| ≈ 150 ms) below the clean one, lower is better (↓), main metric first
    rows = re.findall(r"<tr[^>]*>.*?</tr>", classical.split("<tbody>")[1], flags=re.S)
    assert len(rows) == 2
    assert '<td class="rank" data-sort="1">1</td>' in rows[0] and "Procedural world (oracle)" in rows[0]
    assert '<td class="rank" data-sort="2">2</td>' in rows[1] and "&lt;b&gt;bold&lt;/b&gt;" in rows[1]
    heads = re.findall(r"<th [^>]*>.*?</th>", classical, flags=re.S)
    assert "Rank" in heads[0] and "Sync offset |mean abs|" in heads[3] and 'class="metric main"' in heads[3]
    assert 'data-dir="asc"' in heads[3] and "↓" in heads[3] and "(ms)" in heads[3]
    assert any('data-dir="abs"' in h and "→0" in h and "Sync offset (median" in h for h in heads)
    # the skipped standard-backbone Fréchet distance: — with its reason, never a number
    cells = re.findall(r'<td class="missing" title="([^"]*)">—<span class="st">([^<]*)</span></td>', standard)
    assert any(st == "skipped" and "skipped:" in title and "not available" in title for title, st in cells)
    assert '<button type="button">FVD [i3d]' in standard  # display names from the metric classes (registry)
    # CSV: one row per entry, ranks per group, the skipped value empty (NaN) with its status
    with open(built / "leaderboard.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 2
    by = {(r["backbones"], r["model"]): r for r in table}
    assert by[("classical", "procedural")]["rank"] == "1" and by[("classical", "bold-proc")]["rank"] == "2"
    assert by[("classical", "procedural")]["fd_video[i3d]"] == ""
    assert by[("classical", "procedural")]["fd_video[i3d] status"] == "skipped"
    assert float(by[("classical", "bold-proc")]["sync_offset_abs_ms"]) > 100
    md = (built / "leaderboard.md").read_text()
    assert md.count("\n## ") == 1 and "— (skipped)" in md and "\\|mean abs\\|" in md
    assert "&lt;b&gt;bold&lt;/b&gt;" in md and "<b>" not in md


def test_page_is_self_contained_and_escaped(built):
    page = (built / "index.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|https?://", page)
    assert page.count("<script>") == 1 and "script-src 'sha256-" in page
    assert page.count('class="table-wrap"') == 1  # each table scrolls in its own container
    schema = json.loads((built / "schema.json").read_text())
    assert schema["main_metric"]["default"] == "sync_offset_abs_ms" and schema["columns"][0] == "sync_offset_abs_ms"


def test_readd_updates_the_same_entry(runs, built, tmp_path, capsys):
    d = tmp_path / "lb"
    assert lb(capsys, "add", runs["late"], "--dir", d)[0] == 0
    (path,) = (d / "entries").glob("*.json")
    doc = json.loads(path.read_text())
    doc["metrics"]["sync_offset_abs_ms"]["value"] = 0.0  # an older entry of the same run
    path.write_text(json.dumps(doc))
    code, out, _ = lb(capsys, "add", runs["late"], "--dir", d)
    assert code == 0 and out.startswith("updated: ")
    assert [p.name for p in (d / "entries").glob("*.json")] == [path.name]
    assert json.loads(path.read_text())["metrics"]["sync_offset_abs_ms"]["value"] > 100
    code, out, _ = lb(capsys, "add", runs["late"], "--dir", d)
    assert code == 0 and out.startswith("unchanged: ")


def test_not_a_run_is_exit_2_with_a_fix(runs, tmp_path, capsys):
    d = tmp_path / "lb"
    (tmp_path / "empty").mkdir()
    code, _, err = lb(capsys, "add", runs["late"], tmp_path / "empty", "--dir", d)
    assert code == 2 and "not a run folder" in err and "fix:" in err
    assert not (d / "entries").exists()  # one bad folder writes nothing
    assert lb(capsys, "add", tmp_path / "nowhere", "--dir", d)[0] == 2
    d.mkdir()
    (d / "schema.json").write_text(json.dumps({"main_metric": "sync_ofset_abs_ms"}))
    code, _, err = lb(capsys, "build", "--dir", d)
    assert code == 2 and "sync_offset_abs_ms" in err and "fix:" in err  # did you mean …
    with pytest.raises(SystemExit) as exc:
        parse("frobnicate")
    assert exc.value.code == 2


def test_failed_clips_are_added_and_marked(runs, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / runs["late"].name  # a copy whose latest evaluation lost a clip
    shutil.copytree(runs["late"], run_dir, ignore=shutil.ignore_patterns("clips", "evals", ".lock"))
    doc = json.loads((run_dir / "metrics.json").read_text())
    doc.update(status="partial", n_failed=1, failures={"truncated": 1})
    (run_dir / "metrics.json").write_text(json.dumps(doc))
    d = tmp_path / "lb"
    code, out, _ = lb(capsys, "add", run_dir, "--dir", d)
    assert code == 0 and "(1 of 4 clips failed)" in out
    assert lb(capsys, "build", "--dir", d)[0] == 0
    page = (d / "index.html").read_text()
    assert '<tr class="partial">' in page and "⚠ 1 failed" in page and "truncated: 1" in page
    assert "4 (1 failed)" in (d / "leaderboard.md").read_text()


def test_paths_of_this_machine_are_scrubbed():
    from mova_bench.leaderboard import _scrub

    assert _scrub({"ckpt": "/home/me/ckpts/model.pt", "note": "audio/video, 1/2", "n": 3}) == \
        {"ckpt": "…/model.pt", "note": "audio/video, 1/2", "n": 3}
    assert _scrub(["reference '/tmp/x/stats.npz' is stale"]) == ["reference '…/stats.npz' is stale"]


def test_detector_rows_rank_by_max_auc_half_never_below_chance():
    """A detector AUC below 0.5 is chance, not "less detectable than real": ranked by the metric's
    ranking quantity (extra.rank_value = max(AUC, 0.5)), AUC 0.30 and 0.45 tie at rank 1, above 0.70."""
    from mova_bench.leaderboard import board

    def entry(model, auc):
        m = {"value": auc, "status": "ok", "higher_is_better": False, "rank_value": max(auc, 0.5)}
        return {"model": model, "model_display_name": model, "_file": f"{model}.json", "suite": "s",
                "suite_version": "1", "evaluation": {"backbones": "classical"}, "metrics": {"detector_auc": m}}

    schema = {"main_default": "detector_auc", "main_per_suite": {}, "columns": []}
    (group,) = board([entry("a", 0.70), entry("b", 0.30), entry("c", 0.45)], schema)
    ranks = {r["entry"]["model"]: r["rank"] for r in group["rows"]}
    assert ranks == {"b": 1, "c": 1, "a": 3}
