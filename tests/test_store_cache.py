from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pytest

from mova_bench.cache import CACHE_SCHEMA_VERSION, FeatureCache, cache_key
from mova_bench.store import MANIFEST_FIELDS, atomic_path, read_manifest, write_manifest


def test_manifest_round_trip(tmp_path):
    rows = [
        {"clip_id": "a__s0", "prompt_id": "a", "prompt_text": "thunder, near", "seed": 7, "sample_index": 0,
         "generator": "procedural", "generator_args": {"av_offset_ms": "80"}, "path": "/x/a.mp4", "duration_s": 4.0,
         "fps": 24.0, "sample_rate": 48000, "width": 256, "height": 144, "content_hash": "ab" * 32, "status": "ok",
         "error": None, "reason": None, "expected_offset_ms": [850.0, 1500.0], "tags": ["storm"], "info": {"events": [1, 2]}},
        {"clip_id": "b__s0", "status": "failed", "reason": "truncated", "error": "stopped at 1.2 s"},
    ]
    p = tmp_path / "manifest.jsonl"
    write_manifest(p, rows)
    back = read_manifest(p)
    assert len(back) == 2 and set(back[0]) == set(MANIFEST_FIELDS)
    for k, v in rows[0].items():
        assert back[0][k] == v
    assert back[1]["reason"] == "truncated" and back[1]["prompt_id"] is None
    assert all(json.loads(line) for line in p.read_text().splitlines())


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


BASE = {"extractor": "vstats", "version": "1", "weights_sha256": None,
        "preprocessing": {"fps": 24, "size": 64, "sample_rate": 16000, "clip_seconds": 4.0}}


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(extractor="melstats"),
        lambda d: d.update(version="2"),
        lambda d: d.update(weights_sha256="f" * 64),
        lambda d: d["preprocessing"].update(fps=25),
        lambda d: d["preprocessing"].update(size=128),
        lambda d: d["preprocessing"].update(sample_rate=48000),
        lambda d: d["preprocessing"].update(clip_seconds=8.0),
        lambda d: d["preprocessing"].update(new_param=True),
    ],
)
def test_every_identity_input_changes_the_key(change):
    import copy

    other = copy.deepcopy(BASE)
    change(other)
    assert cache_key(other, "h1") != cache_key(BASE, "h1")


def test_content_hash_and_schema_change_the_key(monkeypatch):
    assert cache_key(BASE, "h1") != cache_key(BASE, "h2")
    k = cache_key(BASE, "h1")
    monkeypatch.setattr("mova_bench.cache.CACHE_SCHEMA_VERSION", CACHE_SCHEMA_VERSION + 1)
    assert cache_key(BASE, "h1") != k


def test_cache_put_get_and_no_stale_hit(tmp_path):
    c = FeatureCache(tmp_path)
    arrays = {"embedding": np.arange(5.0), "status": np.array("ok")}
    c.put(BASE, "h1", arrays)
    got = c.get(BASE, "h1")
    assert np.array_equal(got["embedding"], arrays["embedding"]) and str(got["status"]) == "ok"
    changed = {**BASE, "version": "2"}
    assert c.get(changed, "h1") is None and c.get(BASE, "h2") is None
    sidecars = list(tmp_path.rglob("*.json"))
    assert len(sidecars) == 1 and json.loads(sidecars[0].read_text())["identity"]["extractor"] == "vstats"


def _writer(args):
    root, i = args
    c = FeatureCache(root)
    for _ in range(20):
        c.put(BASE, "same", {"embedding": np.full(1000, 3.0)})
    return i


def test_concurrent_writers_never_leave_a_torn_file(tmp_path):
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_writer, [(str(tmp_path), i) for i in range(4)])
    got = FeatureCache(tmp_path).get(BASE, "same")
    assert got is not None and np.all(got["embedding"] == 3.0)
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_extractor_identity_covers_its_source_code(monkeypatch):
    from mova_bench.features import base
    from mova_bench.features.vstats import VideoStats

    a = VideoStats().cache_identity()
    assert a["code_sha256"] and a["extractor"] == "vstats" and a["preprocessing"]
    base._code_hash.cache_clear()
    monkeypatch.setattr(base.Path, "read_bytes", lambda self: b"edited source")
    b = VideoStats().cache_identity()
    base._code_hash.cache_clear()
    assert cache_key(a, "h") != cache_key(b, "h")


def test_extractor_identity_covers_the_shared_frame_helpers(monkeypatch):
    from mova_bench.features import base, frames
    from mova_bench.features.sync import SyncAnalyzer

    a = SyncAnalyzer().cache_identity()
    base._code_hash.cache_clear()
    real = base.Path.read_bytes
    edited = base.Path(frames.__file__).resolve()
    monkeypatch.setattr(base.Path, "read_bytes", lambda self: b"edited" if self.resolve() == edited else real(self))
    b = SyncAnalyzer().cache_identity()
    base._code_hash.cache_clear()
    assert cache_key(a, "h") != cache_key(b, "h")


def test_folder_rows_take_prompts_from_suite_stem_or_prompts_jsonl(tmp_path):
    from mova_bench.pipeline import folder_rows
    from mova_bench.suites import load_suite

    suite = load_suite("impacts_set")
    pid = suite.prompts[0].id
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in (f"{pid}.mp4", "take7.mp4", "anon.mp4", "anon.mov", "README.txt"):
        (clips / name).write_bytes(b"x" * 10)
    (clips / "prompts.jsonl").write_text(json.dumps({"clip": "take7.mp4", "prompt": "a glass shatters on tiles"}) + "\n")
    rows = {r["clip_id"]: r for r in folder_rows(clips, suite)}
    assert set(rows) == {pid, "take7", "anon.mp4", "anon.mov"}  # not prompts.jsonl, not README.txt
    assert rows[pid]["prompt_id"] == pid and rows[pid]["prompt_text"] == suite.prompts[0].text
    assert rows["take7"]["prompt_text"] == "a glass shatters on tiles"
    assert rows["anon.mp4"]["prompt_id"] is None and rows["anon.mov"]["prompt_text"] is None
    assert all(r["status"] == "ok" and r["path"].startswith(str(clips)) for r in rows.values())


def test_exclusive_folder_cleans_leftovers_and_refuses_a_second_holder(tmp_path):
    import subprocess
    import sys

    from mova_bench.errors import ConfigError
    from mova_bench.store import exclusive_folder

    (tmp_path / "clips").mkdir()
    stale = tmp_path / "clips" / ".a__s0.mp4.x1y2.mp4.tmp"
    stale.write_bytes(b"half a clip")
    keep = tmp_path / "clips" / "a__s0.mp4"
    keep.write_bytes(b"done")
    with exclusive_folder(tmp_path):
        assert not stale.exists() and keep.exists()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
         "print('locked', flush=True); time.sleep(30)", str(tmp_path / ".lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="in use by another mova-bench process"):
            with exclusive_folder(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_folder(tmp_path):  # free again once the holder is gone
        pass


@pytest.mark.parametrize("lib", ["librosa", "soxr", "opencv", "av", "ffmpeg", "numpy", "scipy"])
def test_extractor_identity_covers_the_numeric_libraries(monkeypatch, lib):
    """Sync, mel and flow features depend on librosa, soxr and OpenCV (and the decoder on FFmpeg):
    an upgrade of any of them must not return features computed by the old one."""
    from mova_bench.features import base
    from mova_bench.features.sync import SyncAnalyzer

    a = SyncAnalyzer().cache_identity()
    assert a["libraries"][lib], a["libraries"]  # installed, and its version recorded
    real = base.library_versions
    monkeypatch.setattr(base, "library_versions", lambda names: {**real(names), lib: "0.0-other"})
    b = SyncAnalyzer().cache_identity()
    assert cache_key(a, "h") != cache_key(b, "h")


def test_library_versions_read_metadata_without_importing():
    from mova_bench.features.base import NUMERIC_LIBRARIES, library_version, library_versions

    got = library_versions(NUMERIC_LIBRARIES)
    assert set(got) == set(NUMERIC_LIBRARIES) | {"ffmpeg"} and "libavcodec=" in got["ffmpeg"]
    assert library_version("no-such-distribution-here") is None
