"""``mova-bench sweep``: one ordinary run per grid point, a sweep folder (sweep.json, sweep.csv,
report.html), failures per point, exit codes, nothing created on a usage error."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import pytest

from mova_bench import sweep
from mova_bench.errors import ConfigError, MovaBenchError
from mova_bench.pipeline.outputs import RunOutcome
from mova_bench.pipeline.scoring import select_metrics
from mova_bench.store import read_json, read_manifest

SUITE = """\
name: sweep_set
version: 1
description: three impact prompts for sweep tests
defaults: {duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 2, seed: 5}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
  - {id: clap, text: "A person claps their hands twice"}
"""
FRAME_MS = 1000.0 / 24


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One suite file and one --out for the module, so later sweeps reuse earlier runs."""
    root = tmp_path_factory.mktemp("sweep")
    suite = root / "sweep_set.yaml"
    suite.write_text(SUITE)
    return suite, root / "runs"


def _wired() -> bool:
    from mova_bench import cli

    sub = next((a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)), None)
    return sub is not None and "sweep" in sub.choices


def sweep_cli(capsys, *args) -> tuple[int, str, str]:
    """``mova-bench sweep ARGS``: through the CLI once it is wired in, else a stand-in with its contract."""
    argv = ["sweep", *[str(a) for a in args]]
    if _wired():
        from mova_bench.cli import main

        code = main(argv)
    else:
        from mova_bench.cli import _Parser

        parser = _Parser(prog="mova-bench")
        sweep.add_parser(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
        try:
            ns = parser.parse_args(argv)
            code = sweep.main(ns)
        except SystemExit as exc:
            code = exc.code
            if "--json" in argv:
                print(json.dumps({"status": "error", "exit_code": code}))
        except MovaBenchError as exc:
            print(f"mova-bench: error: {exc}", file=sys.stderr)
            if "--json" in argv:
                print(json.dumps({"status": "error", "exit_code": exc.exit_code, "error": str(exc)}))
            code = exc.exit_code
    out, err = capsys.readouterr()
    return code, out, err


def clip_state(run_dir: Path) -> dict[str, tuple[int, str]]:
    return {r["clip_id"]: (os.stat(r["path"]).st_mtime_ns, r["content_hash"]) for r in read_manifest(run_dir / "manifest.jsonl")}


@pytest.mark.slow
def test_offset_sweep_follows_the_injected_offset_and_resumes(shared, capsys):
    import pandas as pd

    suite, out = shared
    args = ["--model", "procedural", "--suite", suite, "--param", "av_offset_ms=0,100,200",
            "--metrics", "sync_offset_ms,fd_video", "--out", out, "--json"]
    code, stdout, err = sweep_cli(capsys, *args)
    assert code == 0, err
    doc = json.loads(stdout)  # exactly one JSON object
    assert set(doc) >= {"sweep_dir", "params", "points", "report"}
    assert doc["params"] == {"av_offset_ms": ["0", "100", "200"]}
    assert [p["values"] for p in doc["points"]] == [{"av_offset_ms": v} for v in ("0", "100", "200")]
    for p, injected in zip(doc["points"], (0, 100, 200)):
        assert p["status"] == "ok"
        m = p["metrics"]["sync_offset_ms"]
        assert m["status"] == "ok" and abs(m["value"] - injected) <= FRAME_MS, (injected, m["value"])
        assert p["metrics"]["fd_video[vstats]"]["status"] == "ok"
    run_dirs = [Path(p["run_dir"]) for p in doc["points"]]
    assert len(set(run_dirs)) == 3 and all(d.parent == out and (d / "report.html").is_file() for d in run_dirs)

    sweep_dir = Path(doc["sweep_dir"])
    assert sweep_dir.parent == out and sweep_dir.name.startswith("sweep-procedural-sweep_set-")
    saved = read_json(sweep_dir / "sweep.json")
    assert saved["status"] == "ok" and saved["spec"]["grid"] == [["av_offset_ms", ["0", "100", "200"]]]
    for p, d in zip(saved["points"], run_dirs):
        assert not Path(p["run_dir"]).is_absolute() and (sweep_dir / p["run_dir"]).resolve() == d.resolve()
        assert p["evaluation"] and p["metrics"]["sync_offset_ms"]["status"] == "ok"

    frame = pd.read_csv(sweep_dir / "sweep.csv")
    assert len(frame) == 3 * 3  # sync_offset_ms, fd_video[vstats] and fd_video[i3d] (skipped under auto: no weights)
    assert {"av_offset_ms", "metric", "value", "ci_low", "ci_high", "n", "status"} <= set(frame.columns)
    sync = frame[frame.metric == "sync_offset_ms"].sort_values("av_offset_ms")
    assert list(sync.av_offset_ms) == [0, 100, 200] and (sync.status == "ok").all()
    assert ((sync.value - sync.av_offset_ms).abs() <= FRAME_MS).all() and (sync.ci_low <= sync.ci_high).all()

    page = (sweep_dir / "report.html").read_text()
    assert Path(doc["report"]).resolve() == (sweep_dir / "report.html").resolve()
    assert "<meta name='viewport'" in page
    metric_figs = re.findall(r"<figure class='plot metric-plot' data-metric='([^']+)'", page)
    assert metric_figs == ["sync_offset_ms", "fd_video[vstats]"]  # one plot per metric
    assert page.count("<svg") == page.count("<figure") >= 3  # + a trade-off plot; every plot one inline SVG
    assert "trade-off-plot" in page
    assert "av_offset_ms=100" in page and "av_offset_ms=200" in page
    # self-contained: no scripts, no external stylesheets, images or fonts
    assert "<script" not in page and "<link" not in page and not re.search(r"\bsrc=", page) and "https://" not in page
    # points are labelled by their values, never by a hash: hashes appear only inside links
    text = re.sub(r"""(href|title)='[^']*'""", "", page)
    for d, p in zip(run_dirs, doc["points"]):
        assert d.name.rsplit("-", 1)[1] not in text
        assert p["evaluation"] not in text
    links = re.findall(r"href='([^']*report\.html)'", page)
    assert len(links) == 3
    assert all(not os.path.isabs(h) and (sweep_dir / h).resolve().is_file() for h in links)

    # rerunning the sweep regenerates nothing
    before = {d: clip_state(d) for d in run_dirs}
    code, stdout, err = sweep_cli(capsys, *args)
    assert code == 0, err
    again = json.loads(stdout)
    assert again["sweep_dir"] == doc["sweep_dir"] and [p["run_dir"] for p in again["points"]] == [str(d) for d in run_dirs]
    assert {d: clip_state(d) for d in run_dirs} == before
    assert [p["metrics"]["sync_offset_ms"]["value"] for p in again["points"]] == \
           [p["metrics"]["sync_offset_ms"]["value"] for p in doc["points"]]


@pytest.mark.slow
def test_two_parameter_grid(shared, capsys):
    suite, out = shared
    code, stdout, err = sweep_cli(capsys, "--model", "procedural", "--suite", suite, "--param", "av_offset_ms=0,100",
                                  "--param", "video_noise=0,0.1", "--metrics", "sync_offset_ms,fd_video", "--out", out, "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert [p["values"] for p in doc["points"]] == [
        {"av_offset_ms": "0", "video_noise": "0"}, {"av_offset_ms": "0", "video_noise": "0.1"},
        {"av_offset_ms": "100", "video_noise": "0"}, {"av_offset_ms": "100", "video_noise": "0.1"}]
    assert len({p["run_dir"] for p in doc["points"]}) == 4
    fd = {(p["values"]["av_offset_ms"], p["values"]["video_noise"]): p["metrics"]["fd_video[vstats]"]["value"] for p in doc["points"]}
    assert fd[("0", "0.1")] > fd[("0", "0")]  # noise raises the video distance
    page = Path(doc["report"]).read_text()
    assert "video_noise=0.1" in page and page.count("<svg") == page.count("<figure")
    import pandas as pd

    frame = pd.read_csv(Path(doc["sweep_dir"]) / "sweep.csv")
    assert len(frame) == 4 * 3 and {"av_offset_ms", "video_noise"} <= set(frame.columns)  # + fd_video[i3d] skipped


@pytest.mark.parametrize("bad", [
    ["--param", "nope=1,2"],                                          # unknown key (ConfigError)
    ["--param", "av_offset_ms=0,abc"],                                # a value the generator can't take
    ["--param", "av_offset_ms=0", "--param", "av_offset_ms=100"],     # the same key twice
    ["--param", "av_offset_ms=0,100", "--set", "av_offset_ms=5"],     # swept and fixed
    ["--param", "av_offset_ms=0,100.0,100"],                          # the same point twice after conversion
    ["--param", "av_offset_ms"],                                      # not KEY=VALUES (argparse)
    ["--param", "av_offset_ms=0,,1"],
    ["--param", "av_offset_ms=0,0"],
    [],                                                               # no --param at all
])
def test_usage_errors_exit_2_and_create_nothing(tmp_path, shared, capsys, bad):
    suite, _ = shared
    out = tmp_path / "fresh"
    code, stdout, err = sweep_cli(capsys, "--model", "procedural", "--suite", suite, *bad, "--out", out, "--json")
    assert code == 2, err
    assert json.loads(stdout)["exit_code"] == 2
    assert not out.exists()


CLIP_KEY = select_metrics(["clip_score"], "auto")[0].key


def _fake_outcome(out: Path, values: dict, n_failed: int = 0) -> RunOutcome:
    run_dir = out / f"procedural-sweep_set-{abs(hash(json.dumps(values))) % 10**10:010d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.html").write_text("<html></html>")
    v = float(values.get("av_offset_ms", 0))
    metrics = {
        "sync_offset_ms": {"key": "sync_offset_ms", "value": v + 1, "ci_low": v, "ci_high": v + 3, "n": 6, "status": "ok",
                           "unit": "ms", "higher_is_better": None, "display_name": "Sync offset"},
        "in_sync_rate": {"key": "in_sync_rate", "value": 1.0 if v < 125 else 0.0, "ci_low": None, "ci_high": None, "n": 6,
                         "status": "ok", "unit": "", "higher_is_better": True, "display_name": "In-sync rate"},
        "fd_video[vstats]": {"key": "fd_video[vstats]", "value": 2.0 + v / 100, "ci_low": 1.0, "ci_high": 4.0, "n": 6,
                             "status": "ok", "unit": "", "higher_is_better": False, "display_name": "FD video"},
        CLIP_KEY: {"key": CLIP_KEY, "value": None, "status": "skipped", "n": 0, "reason": "needs OpenCLIP weights"},
    }
    return RunOutcome(run_dir, "ok" if not n_failed else "partial", 6, n_failed, metrics, eval_id="e" * 10)


def test_failed_points_are_recorded_and_the_sweep_goes_on(tmp_path, shared, capsys, monkeypatch):
    """A point that raises is recorded with its error, a point with failed clips is 'partial': exit 3."""
    suite, _ = shared
    out = tmp_path / "runs"
    calls = []

    def fake(model, suite_name, *, out, params, **kw):
        calls.append(dict(params))
        if params["av_offset_ms"] == "100":
            raise ConfigError("simulated: the run folder is in use", fix="wait for it")
        return _fake_outcome(Path(out), params, n_failed=1 if params["av_offset_ms"] == "200" else 0)

    monkeypatch.setattr(sweep, "_run_point", fake)
    code, stdout, err = sweep_cli(capsys, "--model", "procedural", "--suite", suite, "--param", "av_offset_ms=0,100,200",
                                  "--set", "jitter_ms=5", "--metrics", "sync_offset_ms,in_sync_rate,fd_video,clip_score",
                                  "--out", out, "--json")
    assert code == 3, err
    assert [c["av_offset_ms"] for c in calls] == ["0", "100", "200"] and all(c["jitter_ms"] == "5" for c in calls)
    doc = json.loads(stdout)
    assert [p["status"] for p in doc["points"]] == ["ok", "failed", "partial"]
    failed = doc["points"][1]
    assert failed["run_dir"] is None and "in use" in failed["error"] and failed["fix"] == "wait for it"
    sweep_dir = Path(doc["sweep_dir"])
    saved = read_json(sweep_dir / "sweep.json")
    assert saved["status"] == "partial" and saved["fixed"] == {"jitter_ms": "5"}
    import pandas as pd

    frame = pd.read_csv(sweep_dir / "sweep.csv")
    assert len(frame) == 3 * 5  # 4 metrics + fd_video[i3d] (skipped under auto: no weights)
    rows = frame[frame.point == "av_offset_ms=100"]
    assert len(rows) == 5 and (rows.status == "failed").all() and rows.value.isna().all()
    assert (frame[frame.metric == CLIP_KEY].value.isna()).all() and (frame[frame.metric == CLIP_KEY].status == "skipped").sum() == 2
    page = (sweep_dir / "report.html").read_text()
    assert "simulated: the run folder is in use" in page and "not plotted: av_offset_ms=100" in page
    assert "clip_score" in page  # listed as not plotted, with its reason
    assert re.findall(r"data-metric='([^']+)'", page) == ["sync_offset_ms", "in_sync_rate", "fd_video[vstats]"]
    assert len(re.findall(r"class='plot trade-off-plot'", page)) == 1  # in_sync_rate vs fd_video; no abs offset asked
    assert page.count("<svg") == page.count("<figure")

    # without --json: a table on stderr, the report path on stdout
    code, stdout, err = sweep_cli(capsys, "--model", "procedural", "--suite", suite, "--param", "av_offset_ms=0,100,200",
                                  "--set", "jitter_ms=5", "--metrics", "sync_offset_ms,in_sync_rate,fd_video,clip_score",
                                  "--out", out)
    assert code == 3 and stdout.strip() == f"report: {sweep_dir / 'report.html'}"
    assert "av_offset_ms=100" in err and "fix: wait for it" in err


def test_report_escapes_text_and_handles_categories(tmp_path):
    """Values reach HTML escaped and matplotlib literally ($ is not mathtext); categorical axes work."""
    from mova_bench.report.sweep import render_sweep_report

    pts = []
    for i, (a, b) in enumerate([("<b>x</b>", "$5"), ("<b>x</b>", "y&z"), ("plain", "$5"), ("plain", "y&z")]):
        m = {"key": "m", "value": float(i), "ci_low": i - 0.5, "ci_high": i + 0.5, "n": 4, "status": "ok", "unit": "u"}
        pts.append({"values": {"a": a, "b": b}, "params": {"a": a, "b": b}, "label": f"a={a}, b={b}", "status": "ok",
                    "run_dir": f"../run-{i}", "metrics": {"m": m}})
    doc = {"title": "t <i>", "params": {"a": ["<b>x</b>", "plain"], "b": ["$5", "y&z"]}, "points": pts,
           "evaluation": {"metrics": ["m"]}, "status": "ok"}
    page = render_sweep_report(tmp_path, doc)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<i>" not in page
    assert page.count("<svg") == 1 and "$5" in page
    assert len(set(re.findall(r'\bid="([^"]+)"', page))) == len(re.findall(r'\bid="([^"]+)"', page))  # unique ids


def test_an_interrupted_sweep_says_so(tmp_path, shared, monkeypatch):
    suite, _ = shared
    out = tmp_path / "runs"

    def fake(model, suite_name, *, out, params, **kw):
        if params["av_offset_ms"] == "100":
            raise KeyboardInterrupt
        return _fake_outcome(Path(out), params)

    monkeypatch.setattr(sweep, "_run_point", fake)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep("procedural", str(suite), grid=[("av_offset_ms", ["0", "100", "200"])], out=out,
                        metrics=["sync_offset_ms"])
    (sweep_dir,) = out.glob("sweep-*")
    saved = read_json(sweep_dir / "sweep.json")
    assert saved["status"] == "interrupted"
    assert [p["status"] for p in saved["points"]] == ["ok", "pending", "pending"]


@pytest.mark.slow
def test_concurrent_points_on_one_pool_match_a_sequential_sweep(tmp_path, shared, monkeypatch):
    from mova_bench.executors.pool import PoolExecutor

    suite, _ = shared
    grid = [("av_offset_ms", ["0", "150"])]
    kw = dict(grid=grid, metrics=["sync_offset_ms", "fd_video"], samples_per_prompt=1)
    seq = sweep.run_sweep("procedural", str(suite), out=tmp_path / "seq", executor="local", **kw)

    pools: list[PoolExecutor] = []
    starts = PoolExecutor.start

    def counting_start(self):
        pools.append(self)
        return starts(self)

    monkeypatch.setattr(PoolExecutor, "start", counting_start)
    running = {"now": 0, "most": 0}
    real_run_point = sweep._run_point

    def tracked(*a, **k):
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        try:
            assert isinstance(k["executor"], PoolExecutor)  # the sweep's one pool, not a name
            return real_run_point(*a, **k)
        finally:
            running["now"] -= 1

    monkeypatch.setattr(sweep, "_run_point", tracked)
    # an empty home: the points analyse every clip in the workers, and race to render the reference
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "home-concurrent"))
    con = sweep.run_sweep("procedural", str(suite), out=tmp_path / "con", executor="pool", workers=2,
                          concurrent_points=2, **kw)
    assert len(pools) == 1 and running["most"] == 2  # one pool for the sweep, both points at once
    for a, b in zip(seq.points, con.points):
        assert a["status"] == b["status"] == "ok", (a.get("error"), b.get("error"))
        assert a["values"] == b["values"] and a["metrics"] == b["metrics"]  # bit for bit, CIs included
        hashes = [{r["clip_id"]: r["content_hash"] for r in read_manifest(Path(p["run_path"]) / "manifest.jsonl")}
                  for p in (a, b)]
        assert hashes[0] == hashes[1]


def test_concurrent_points_need_a_parallel_executor(tmp_path, shared, capsys, monkeypatch):
    suite, _ = shared
    seen = []

    def fake(model, suite_name, *, out, params, executor, **kw):
        seen.append(executor)
        return _fake_outcome(Path(out), params)

    monkeypatch.setattr(sweep, "_run_point", fake)
    sweep.run_sweep("procedural", str(suite), grid=[("av_offset_ms", ["0", "100"])], out=tmp_path / "runs",
                    metrics=["sync_offset_ms"], executor="local", concurrent_points=2)
    assert "one after another" in capsys.readouterr().err
    assert len(seen) == 2 and seen[0] is seen[1] and seen[0].name == "local"  # one executor for every point
    with pytest.raises(ConfigError, match="concurrent-points"):
        sweep.run_sweep("procedural", str(suite), grid=[("av_offset_ms", ["0"])], out=tmp_path / "runs",
                        metrics=["sync_offset_ms"], executor="local", concurrent_points=0)
