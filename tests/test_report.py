"""The HTML report, rendered from a small fabricated evaluation folder (no pipeline, no browser).

The folder has what a run writes (manifest.jsonl, clips/, evals/<id>/{metrics.json,
per_clip.parquet, provenance.json}) with a failed clip, a skipped metric, --set parameters,
warnings, tags, and prompts carrying markup that must come out as text.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from mova_bench.report import render_report, write_report
from mova_bench.store import write_json_atomic, write_manifest

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "</script><script>alert(2)</script>"
WARNING = "the model is learned and the reference is the procedural oracle world: distances measure distance from it"


class Doc(HTMLParser):
    """Elements (tag, attrs) in document order, and the text of <script> and <title>."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.title = ""
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "title"):
            self._in = tag
            if tag == "script":
                self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "title":
            self.title += data

    def all(self, tag: str, **attrs) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _metric(key, value, *, status="ok", n=6, lo=None, hi=None, unit="", hib=False, reason=None, fix=None, warnings=(),
            extra=None):
    return {"key": key, "value": value, "status": status, "n": n, "ci_low": lo, "ci_high": hi, "reason": reason,
            "fix": fix, "display_name": key, "unit": unit, "higher_is_better": hib, "convention": f"how {key} is computed",
            "warnings": list(warnings), "extra": extra or {}}


def make_eval(root: Path, *, n_per_prompt: int = 2, columns: bool = True) -> tuple[Path, Path]:
    """A run folder with one evaluation; returns (run_dir, eval_dir)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir = root / "procedural-tiny-abc"
    eval_dir = run_dir / "evals" / "e1"
    (run_dir / "clips").mkdir(parents=True)
    eval_dir.mkdir(parents=True)
    prompts = [("drum", f"A snare {XSS_IMG} hit", ["impact", "$x^2$ <b>tag</b>"]),
               ("ball", f"A ball {XSS_SCRIPT} bounces", ["impact"]),
               ("storm", "Distant thunder rolls", ["thunder"])]
    manifest, rows = [], []
    k = 0
    for pid, text, tags in prompts:
        for s in range(n_per_prompt):
            cid = f"{pid}__s{s}" + (" #1" if pid == "storm" and s == 0 else "")  # a name a URL must encode
            path = run_dir / "clips" / f"{cid}.mp4"
            path.write_bytes(b"not really an mp4")
            failed = pid == "ball" and s == 1
            manifest.append({"clip_id": cid, "prompt_id": pid, "prompt_text": text, "seed": 100 + k, "path": str(path),
                             "status": "ok", "tags": tags,
                             "expected_offset_ms": [850.0, 1500.0] if pid == "storm" else None})
            row = {"clip_id": cid, "prompt_id": pid, "prompt_text": text, "seed": 100 + k,
                   "status": "failed" if failed else "ok", "reason": "no_audio_stream" if failed else None,
                   "error": "the file has no audio stream <b>sic</b>" if failed else None, "path": str(path),
                   "content_hash": f"{k:064x}"}
            if columns:
                row.update({"sync_scored_offset_ms": None if failed else float(10 * k - 20),
                            "in_sync": None if failed else float(k % 3 != 0),
                            "av_align_iou": None if failed else 0.1 * k, "p_synthetic": None if failed else k / 10,
                            "sync_status": None if failed else "ok",
                            "sync_offset_raw_ms": None if failed else (1200.0 + k if pid == "storm" else 30.0 * k - 60),
                            "sync_confidence": None if failed else 0.9})
            rows.append(row)
            k += 1
    write_manifest(run_dir / "manifest.jsonl", manifest)
    pq.write_table(pa.Table.from_pylist(rows), eval_dir / "per_clip.parquet")
    metrics = {
        "fd_video[vstats]": _metric("fd_video[vstats]", 1.5, lo=0.5, hi=3.0, warnings=["n=5 < dim=82: biased upward"]),
        "sync_offset_ms": _metric("sync_offset_ms", 12.0, lo=-5.0, hi=30.0, unit="ms", hib=None,
                                  extra={"n_not_synchronizable": 1, "not_synchronizable_reasons": {"no_visual_motion": 1}}),
        "in_sync_rate": _metric("in_sync_rate", 0.6, lo=0.2, hi=1.0, unit="fraction", hib=True),
        "detector_auc[forensic]": _metric("detector_auc[forensic]", 0.55, lo=0.3, hi=0.8, unit="AUC"),
        "clip_score[openclip-vit-b-32]": _metric("clip_score[openclip-vit-b-32]", None, status="skipped", n=0,
                                                 unit="100×cos", hib=True, reason="needs the OpenCLIP weights",
                                                 fix="install open_clip and its weights"),
        "kid_audio[melstats]": _metric("kid_audio[melstats]", None, status="failed", n=0,
                                       reason="reference statistics are stale", fix="mova-bench reference build --suite tiny"),
    }
    n_failed = sum(r["status"] != "ok" for r in rows)
    doc = {"status": "partial", "n_clips": len(rows), "n_failed": n_failed, "failures": {"no_audio_stream": n_failed},
           "title": "Procedural world on tiny v1 (av_offset_ms=80)",
           "header": {"title": "Procedural world on tiny v1 (av_offset_ms=80)", "kind": "run", "model": "procedural",
                      "model_params": {"av_offset_ms": 80.0, "blur": 0.0, "freeze_video": False},
                      "set": {"av_offset_ms": 80.0}, "learned": False, "suite": "tiny", "suite_version": "1",
                      "suite_description": f"tiny suite {XSS_IMG}", "seed": 7, "samples_per_prompt": n_per_prompt,
                      "run_id": run_dir.name,
                      "geometry": {"duration_s": 1.5, "fps": 24.0, "sample_rate": 48000, "width": 96, "height": 64}},
           "evaluation": {"id": "e1", "path": "evals/e1",
                          "spec": {"metrics": list(metrics), "backbones": "auto", "profile": "default",
                                   "bootstrap_seed": 0, "reference": {"kind": "procedural"},
                                   "analysis": [["vstats", {}], ["sync_dsp", {"max_lag_ms": 2000.0}]]}},
           "reference": {"kind": "procedural", "domain": "procedural", "n_clips": 9, "n_failed": 1,
                         "failures": {"truncated": 1}, "path": "/refs/tiny-123",
                         "geometry": {"duration_s": 1.5, "fps": 24.0, "sample_rate": 48000, "width": 96, "height": 64}},
           "warnings": [WARNING], "metrics": metrics, "written": "2026-01-02T03:04:05+0000"}
    write_json_atomic(eval_dir / "metrics.json", doc, sort_keys=False)
    write_json_atomic(eval_dir / "eval_spec.json", doc["evaluation"]["spec"])
    write_json_atomic(eval_dir / "provenance.json", {
        "git_commit": "0123456789abcdef0123456789abcdef01234567", "mova_bench": "0.1.0", "python": "3.11.7",
        "packages": {"numpy": "2.0"}, "device": {"cpu": "Test CPU", "cpu_count": 2, "gpus": []},
        "timings": {"generate_s": 1.25, "metrics_s": 0.5}})
    return run_dir, eval_dir


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir, eval_dir = make_eval(tmp_path_factory.mktemp("report"))
    path = write_report(eval_dir, run_dir=run_dir)
    text = path.read_text(encoding="utf-8")
    return run_dir, eval_dir, text, Doc(text)


def test_user_text_is_escaped_and_runs_nothing(report):
    _, _, text, doc = report
    assert not re.search(r"<img\b", text, re.I)  # not as a tag anywhere: plots included
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in text
    assert "<script>alert(2)" not in text and "alert(2)" not in "".join(doc.scripts)
    assert len(doc.all("script")) == 1 and text.count("<script") == 1  # our own, nothing else
    assert "<b>tag</b>" not in text and "&lt;b&gt;tag&lt;/b&gt;" in text
    assert doc.title == "Procedural world on tiny v1 (av_offset_ms=80)"
    assert not [a for _, a in doc.elements for k in a if k.startswith("on")]  # no event handler attributes


def test_script_is_allowed_by_its_hash_and_nothing_is_loaded_from_elsewhere(report):
    _, _, text, doc = report
    (csp,) = [a["content"] for a in doc.all("meta") if (a.get("http-equiv") or "").lower() == "content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(doc.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert doc.all("meta", name="viewport")
    for tag, attrs in doc.elements:
        for k in ("src", "href"):
            v = attrs.get(k)
            assert not v or not re.match(r"^(https?:)?//", v), (tag, k, v)  # self-contained: no network
    assert not doc.all("link") and "@import" not in text


def test_header_shows_run_evaluation_reference_and_warnings(report):
    _, _, text, doc = report
    assert '<strong class="set"><code>av_offset_ms=80.0</code></strong>' in text
    assert re.search(r'<tr class="is-set"><td><code>av_offset_ms</code></td><td><code>80.0</code>', text)
    assert "<code>blur</code>" in text and "<code>freeze_video</code>" in text  # every parameter, not only --set
    warnings = text[text.index('id="warnings"'):text.index('id="run"')]
    assert WARNING in warnings and 'role="alert"' in text[:text.index('id="run"')]
    for needle in ("tiny</code> v1", "tiny suite &lt;img", "samples per prompt</dt><dd>2", "seed</dt><dd>7",
                   "0123456789abcdef0123456789abcdef01234567", "2026-01-02 03:04:05", "<code>e1</code>",
                   "<code>auto</code>", "<code>mova-bench (default)</code>", "domain <b>procedural</b>", "<b>9</b> clips",
                   "1 failed (truncated: 1)", "96×64 px, 1.5 s at 24 fps, 48000 Hz audio", "oracle, not learned"):
        assert needle in text, needle


def test_metrics_table_has_ci_direction_status_and_why_for_the_rest(report):
    _, _, text, doc = report
    table = text[text.index('id="metrics-table"'):text.index("</table>", text.index('id="metrics-table"'))]
    assert table.count("<tr data-key=") == 6
    fd = table[table.index('data-key="fd_video[vstats]"'):table.index('data-key="sync_offset_ms"')]
    assert "1.5" in fd and "[0.5, 3]" in fd and "lower is better" in fd and 'class="badge ok"' in fd
    sync = table[table.index('data-key="sync_offset_ms"'):table.index('data-key="in_sync_rate"')]
    assert "closer to 0 is better" in sync and ">ms<" in sync and "1 clip(s) not synchronizable" in sync
    clip = table[table.index('data-key="clip_score'):table.index('data-key="kid_audio')]
    assert "skipped" in clip and "why: needs the OpenCLIP weights" in clip and "fix: install open_clip" in clip
    kid = table[table.index('data-key="kid_audio'):]
    assert 'class="badge failed"' in kid and "fix: mova-bench reference build --suite tiny" in kid
    assert "n=5 &lt; dim=82: biased upward" in text[text.index('id="metric-warnings"'):]


def test_plots_are_inline_svg(report):
    _, _, text, doc = report
    svgs = doc.all("svg")
    # 4 metrics with a value + 4 per-clip columns by prompt + 4 by tag (not the 0/1 in_sync) + sync + P(synthetic)
    assert len(svgs) == 4 + 4 + 4 + 2, len(svgs)
    for section in ('id="ci-plots"', 'id="by-prompt-plots"', 'id="by-tag-plots"', 'id="sync-plot"', 'id="psyn-plot"'):
        start = text.index(section)
        assert "<svg " in text[start:start + 600], section
    assert not re.search(r"<\?xml|<!DOCTYPE svg", text)
    ids = [a["id"] for _, a in doc.elements if a.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids across inline SVGs"
    sync = text[text.index('id="sync-plot"'):text.index("</figure>", text.index('id="sync-plot"'))]
    assert "BT.1359 window (−45 … +125 ms)" in sync and "+ = audio late" in sync
    assert "$x^2$ &lt;b&gt;tag&lt;/b&gt;" in text[text.index('id="by-tag-plots"'):]  # a tag's '$' is not mathtext


def test_breakdown_tables_group_by_prompt_and_tag(report):
    _, _, text, doc = report
    by_prompt = text[text.index('id="by-prompt"'):text.index("</table>", text.index('id="by-prompt"'))]
    assert by_prompt.index("<code>drum</code>") < by_prompt.index("<code>ball</code>") < by_prompt.index("<code>storm</code>")
    ball = by_prompt[by_prompt.index("<code>ball</code>"):by_prompt.index("<code>storm</code>")]
    assert re.search(r'<td class="num">2</td><td class="num failed">1</td>', ball)
    by_tag = text[text.index('id="by-tag"'):text.index("</table>", text.index('id="by-tag"'))]
    impact = by_tag[by_tag.index("<code>impact</code>"):]
    assert re.search(r'<td class="num">4</td><td class="num failed">1</td>', impact)  # drum + ball clips
    # AV-Align mean of the ok "impact" clips (k = 0, 1, 2): 0.1
    assert "<code>thunder</code>" in by_tag


def test_gallery_links_every_clip_relatively_and_lists_failures(report):
    run_dir, eval_dir, text, doc = report
    videos = doc.all("video")
    assert len(videos) == 6 and len(doc.all("article")) == 6  # all clips, none silently dropped
    for v in videos:
        assert "controls" in v and v["preload"] == "metadata"
        assert v["src"].startswith("../../clips/"), v["src"]
        assert (eval_dir / unquote(v["src"])).resolve().is_file(), v["src"]
    assert any("%20%231.mp4" in v["src"] for v in videos)  # '#' and spaces are encoded
    sort = text[text.index('<select id="sort">'):text.index("</select>")]
    for lab in ("sync offset (scored)", "in sync (BT.1359)", "AV-Align", "P(synthetic)"):
        assert f">{lab}: worst first" in sort, lab
    assert 'data-dir="desc">P(synthetic)' in sort and 'data-dir="asc">AV-Align' in sort
    failures = text[text.index('id="failures-table"'):]
    failures = failures[:failures.index("</table>")]
    assert "ball__s1" in failures and "no_audio_stream" in failures and "&lt;b&gt;sic&lt;/b&gt;" in failures
    card = text[text.index('data-order="2"'):text.index("</article>", text.index('data-order="2"'))]
    assert "seed 102" in card and "AV-Align</dt><dd>0.2</dd>" in card and "P(synthetic)</dt><dd>0.2</dd>" in card


def test_run_level_report_links_clips_from_the_run_folder(report):
    run_dir, eval_dir, _, _ = report
    for name in ("metrics.json", "per_clip.parquet", "provenance.json"):
        (run_dir / name).write_bytes((eval_dir / name).read_bytes())
    doc = Doc(render_report(run_dir, run_dir=run_dir))
    assert {v["src"].split("/")[0] for v in doc.all("video")} == {"clips"}
    assert all((run_dir / unquote(v["src"])).is_file() for v in doc.all("video"))


def test_pages_without_dropping_clips(tmp_path, monkeypatch):
    from mova_bench.report import html

    monkeypatch.setattr(html, "PAGE_SIZE", 4)
    run_dir, eval_dir = make_eval(tmp_path, n_per_prompt=3)
    doc = Doc(render_report(eval_dir, run_dir))
    assert len(doc.all("article")) == 9
    assert [v["preload"] for v in doc.all("video")] == ["metadata"] * 4 + ["none"] * 5
    assert doc.all("div", id="gallery")[0]["data-page-size"] == "4"


def test_renders_without_per_clip_scores_provenance_or_manifest(tmp_path):
    run_dir, eval_dir = make_eval(tmp_path, columns=False)
    (eval_dir / "provenance.json").unlink()
    (run_dir / "manifest.jsonl").unlink()
    text = render_report(eval_dir)  # run_dir inferred from evals/<id>
    assert "No per-clip sync offsets" in text and "No per-clip detector scores" in text
    assert len(Doc(text).all("video")) == 6


def test_missing_templates_say_how_to_fix(tmp_path, monkeypatch):
    from mova_bench.errors import MissingDependencyError
    from mova_bench.report import html

    run_dir, eval_dir = make_eval(tmp_path)
    monkeypatch.setattr(html, "TEMPLATES", tmp_path / "nowhere")
    with pytest.raises(MissingDependencyError, match="report templates") as err:
        render_report(eval_dir, run_dir)
    assert "mova_bench/report/templates" in err.value.fix


def test_clips_without_a_prompt_and_files_no_browser_can_play(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir, eval_dir = make_eval(tmp_path)
    rows = pq.read_table(eval_dir / "per_clip.parquet").to_pylist()
    rows[0].update(prompt_id=None, prompt_text=None, seed=None)  # evaluate --clips: a clip no prompt names
    rows[3].update(reason="not_media")  # ball__s1: failed, and its file is not media
    pq.write_table(pa.Table.from_pylist(rows), eval_dir / "per_clip.parquet")
    text = render_report(eval_dir, run_dir)
    doc = Doc(text)
    assert len(doc.all("video")) == 5  # a broken file is linked, not embedded (it would only add errors)
    assert "not playable (not_media)" in text and not re.search(r">\s*nan\s*<|\bnan\b", text)
    assert "<code>(no prompt)</code>" in text


def test_metric_notes_show_the_detector_verdict_and_fd_infinity_sides():
    """The detector's permutation verdict (p-value, band of chance) and which sides FD∞ subsampled are
    read off the metric record into the report's notes, not left in metrics.json only."""
    from mova_bench.report.html import _metrics

    det_extra = {"verdict": "indistinguishable from the reference (p = 0.41): AUC 0.44 is inside the 95% band of chance [0.28, 0.72]",
                 "p_value": 0.41, "null_band": [0.28, 0.72], "n_permutations": 200, "rank_value": 0.5}
    fd_extra = {"fd_infinity": {"value": 1.52, "r2": 0.97, "sides": "generated"}}
    doc = {"metrics": {"detector_auc[forensic]": _metric("detector_auc[forensic]", 0.44, lo=0.2, hi=0.66, unit="AUC",
                                                         extra=det_extra),
                       "fd_video[vstats]": _metric("fd_video[vstats]", 1.93, lo=1.0, hi=3.0, extra=fd_extra)}}
    notes = {m["key"]: " | ".join(m["notes"]) for m in _metrics(doc)}
    det = notes["detector_auc[forensic]"]
    assert "indistinguishable from the reference (p = 0.41)" in det and "200 relabellings" in det
    assert "[0.28, 0.72]" in det and "max(AUC, 0.5)" in det
    assert "FD∞ 1.52" in notes["fd_video[vstats]"] and "generated side only" in notes["fd_video[vstats]"]
