"""Weights registry and ``weights fetch``: against a local HTTP server on 127.0.0.1 that these tests
start (Range, ignored Range, truncation, redirects, 404s, wrong bytes, request counting), fabricated
Hugging Face / torch hub caches, offline mode with sockets blocked. Test entries carry the synthetic
files' own hashes, never production pins."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mova_bench import weights
from mova_bench.errors import ConfigError, MovaBenchError
from mova_bench.weights import catalog, lookup
from mova_bench.weights.errors import LicenceNotAcceptedError, MissingWeightsError, WeightsDownloadError

CONTRACT_NAMES = [
    "i3d-torchscript", "i3d-400", "vggish", "panns-cnn14-16k", "panns-cnn14-32k", "panns-labels",
    "clap-630k-audioset", "clap-630k-audioset-fusion", "clap-music", "clap-music-speech",
    "roberta-base-vocab", "roberta-base-merges", "openclip-vit-b-32-openai", "openclip-vit-l-14-openai",
    "inception-v3", "synchformer", "imagebind-huge",
]
REV = "0123456789abcdef0123456789abcdef01234567"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


DATA = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not a multiple of the chunk size
OTHER = b"not the weights" * 1000


# --------------------------------------------------------------------------- the local server


class Server:
    """Routes: path -> dict(data=bytes, status=int, redirect=str, ignore_range=bool,
    truncate=[n bytes per response...], delay=seconds). Records (path, Range header) per request."""

    def __init__(self):
        self.routes: dict[str, dict] = {}
        self.requests: list[tuple[str, str | None]] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                srv.requests.append((self.path, rng))
                cfg = srv.routes.get(self.path)
                if cfg is None or cfg.get("status", 200) >= 400:
                    self.send_error(cfg.get("status", 404) if cfg else 404)
                    return
                if cfg.get("redirect"):
                    self.send_response(302)
                    self.send_header("Location", cfg["redirect"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = cfg["data"]
                m = re.match(r"bytes=(\d+)-$", rng or "")
                if m and not cfg.get("ignore_range"):
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    body = data[start:]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    body = data
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if cfg.get("delay"):
                    time.sleep(cfg["delay"])
                cut = cfg.get("truncate") or []
                if cut:
                    body = body[: cut.pop(0)]
                self.wfile.write(body)
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    """Isolated MOVA_BENCH_HOME, HF and torch caches, HOME; no proxy, online."""
    for var in ("MOVA_BENCH_OFFLINE", "HF_HUB_OFFLINE", "MOVA_BENCH_WEIGHTS_FILE", "MOVA_BENCH_WEIGHTS_MIRROR",
                "HF_HOME", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "http_proxy", "https_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("MOVA_BENCH_DOWNLOAD_TIMEOUT", "10")
    server.routes.clear()
    server.requests.clear()
    weights.forget_local()
    lookup._memo.clear()
    yield tmp_path
    weights.forget_local()


def user_registry(tmp_path: Path, entries: dict) -> Path:
    path = tmp_path / "home" / "weights" / "registry.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"schema": 1, "entries": entries}))
    return path


def entry(url: str | list, data: bytes | None = DATA, filename: str = "w.bin", **extra) -> dict:
    urls = url if isinstance(url, list) else [url]
    body = {"filename": filename, "sources": [{"url": u} for u in urls], "licence": "test-only",
            "layout": "plain", "size": len(data) if data is not None else None,
            "sha256": sha(data) if data is not None else None,
            "hash_status": "third-party" if data is not None else "none"}
    body.update(extra)
    return body


def final(tmp_path: Path, name: str, filename: str = "w.bin") -> Path:
    return tmp_path / "home" / "weights" / name / filename


# --------------------------------------------------------------------------- registry data


def test_packaged_registry_pins_are_well_formed():
    raw = yaml.safe_load(catalog.PACKAGED_REGISTRY.read_text())
    ents = raw["entries"]
    assert set(CONTRACT_NAMES) <= set(ents), sorted(set(CONTRACT_NAMES) - set(ents))
    for name, e in ents.items():
        for key, n in (("sha256", 64), ("md5", 32), ("git_blob_sha1", 40)):
            if e.get(key) is not None:
                assert re.fullmatch(rf"[0-9a-f]{{{n}}}", e[key]), (name, key, e[key])
        assert e["sources"], name
        for s in e["sources"]:
            if "hf_repo" in s:
                assert re.fullmatch(r"[0-9a-f]{40}", s["revision"]), (name, s)
            else:
                assert re.match(r"https?://", s["url"]), (name, s)
                assert not re.search(r"/resolve/(main|master)/", s["url"]), (name, s)
                if re.search(r"/(raw|blob|resolve)/(main|master)/", s["url"]):  # a branch URL: content must be pinned
                    assert e.get("sha256"), (name, s)
        assert e["licence"].strip(), name
    # loads and validates as the library reads it
    loaded = catalog._read_layer(catalog.PACKAGED_REGISTRY, "packaged")
    assert loaded["imagebind-huge"].needs_license_acceptance and loaded["synchformer"].needs_license_acceptance
    assert not loaded["vggish"].needs_license_acceptance
    assert loaded["synchformer"].md5 == "5b2f5594b0730f70e41e549b7c94390c"
    assert loaded["clap-630k-audioset"].urls[0] == ("https://huggingface.co/lukewys/laion_clap/resolve/"
                                                    "b3708341862f581175dba5c356a4ebf74a9b6651/630k-audioset-best.pt")
    assert loaded["vggish"].sha256 is None and loaded["vggish"].hash_status == "none"
    assert loaded["inception-v3"].sha256.startswith(loaded["inception-v3"].sha256_prefix)


@pytest.mark.parametrize("bad, needle", [
    ({"sources": [{"hf_repo": "a/b", "revision": "main", "path": "f"}]}, "40-hex"),
    ({"sources": [{"hf_repo": "a/b", "revision": "1c2d6171", "path": "f"}]}, "prefix"),
    ({"sha256": "abc"}, "64 lowercase hex"),
    ({"md5": "0" * 31}, "32 lowercase hex"),
    ({"layout": "pickle"}, "layout"),
    ({"sources": [{"url": "https://huggingface.co/a/b/resolve/main/f"}]}, "floating"),
])
def test_user_registry_rejects_bad_pins(env, bad, needle):
    user_registry(env, {"bad": {**entry("http://x/y"), **bad}})
    with pytest.raises(ConfigError) as ei:
        weights.get_entry("bad")
    assert needle in str(ei.value) and "'bad'" in str(ei.value) and "registry.yaml" in str(ei.value)


def test_unknown_name_suggests(env):
    with pytest.raises(MovaBenchError) as ei:
        weights.get_entry("vgish")
    assert "vggish" in str(ei.value) and "weights list" in str(ei.value)


def test_user_registry_replaces_and_env_file(env, monkeypatch, server):
    user_registry(env, {"vggish": entry(server.base + "/v", filename="mine.pth")})
    assert weights.get_entry("vggish").filename == "mine.pth"
    assert weights.get_entry("i3d-400").filename == "i3d_pretrained_400.pt"  # others kept
    other = env / "other.yaml"
    other.write_text(yaml.safe_dump({"schema": 1, "entries": {"extra-one": entry(server.base + "/e")}}))
    monkeypatch.setenv("MOVA_BENCH_WEIGHTS_FILE", str(other))
    assert "extra-one" in weights.entries() and weights.get_entry("vggish").filename == "vggish-10086976.pth"


# --------------------------------------------------------------------------- fetch


def test_fetch_good_then_present_without_network(env, server):
    server.routes["/good"] = {"data": DATA}
    user_registry(env, {"t-good": entry(server.base + "/good")})
    logs = []
    path = weights.fetch("t-good", log=logs.append)
    assert path == final(env, "t-good") and path.read_bytes() == DATA
    assert not path.with_name("w.bin.part").exists()
    assert weights.resolve("t-good") == path and weights.is_present("t-good")
    assert weights.fetch("t-good", log=logs.append) == path
    assert len(server.gets("/good")) == 1  # the second fetch found it present
    assert any("present at" in m for m in logs)


def test_wrong_hash_removes_file_and_names_both_hashes(env, server):
    server.routes["/wrong"] = {"data": OTHER}
    user_registry(env, {"t-wrong": entry(server.base + "/wrong", data=DATA, size=None)})
    with pytest.raises(WeightsDownloadError) as ei:
        weights.fetch("t-wrong", log=lambda m: None)
    msg = str(ei.value)
    assert sha(DATA) in msg and sha(OTHER) in msg and "deleted" in msg
    d = final(env, "t-wrong").parent
    assert not final(env, "t-wrong").exists() and not (d / "w.bin.part").exists()
    assert ei.value.exit_code == 2


def test_wrong_size_rejected_before_download_completes(env, server):
    server.routes["/short"] = {"data": DATA[:1000]}
    user_registry(env, {"t-size": entry(server.base + "/short")})
    with pytest.raises(WeightsDownloadError, match="announces 1,000 bytes"):
        weights.fetch("t-size", log=lambda m: None)
    assert not final(env, "t-size").exists()


def test_truncated_transfer_resumes_with_range(env, server):
    k = 300_000
    server.routes["/trunc"] = {"data": DATA, "truncate": [k]}
    user_registry(env, {"t-trunc": entry(server.base + "/trunc")})
    logs = []
    path = weights.fetch("t-trunc", log=logs.append)
    assert path.read_bytes() == DATA
    assert server.gets("/trunc") == [None, f"bytes={k}-"]
    assert any("resuming" in m for m in logs)


def test_existing_part_is_resumed(env, server):
    k = 123_457
    server.routes["/part"] = {"data": DATA}
    user_registry(env, {"t-part": entry(server.base + "/part")})
    part = final(env, "t-part").with_name("w.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:k])
    assert weights.fetch("t-part", log=lambda m: None).read_bytes() == DATA
    assert server.gets("/part") == [f"bytes={k}-"]


def test_range_ignored_restarts_from_zero(env, server):
    server.routes["/norange"] = {"data": DATA, "ignore_range": True}
    user_registry(env, {"t-norange": entry(server.base + "/norange")})
    part = final(env, "t-norange").with_name("w.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 5000)  # garbage: appending the 200 body would fail the hash
    logs = []
    assert weights.fetch("t-norange", log=logs.append).read_bytes() == DATA
    assert server.gets("/norange") == ["bytes=5000-"]
    assert any("ignored Range" in m for m in logs)


def test_redirect_is_followed_and_keeps_range(env, server):
    server.routes["/old"] = {"redirect": "/new"}
    server.routes["/new"] = {"data": DATA, "truncate": [1000]}
    user_registry(env, {"t-redir": entry(server.base + "/old")})
    assert weights.fetch("t-redir", log=lambda m: None).read_bytes() == DATA
    assert server.gets("/old") == [None, "bytes=1000-"] and server.gets("/new") == [None, "bytes=1000-"]


def test_fetched_file_is_hashed_once(env, server, monkeypatch):
    server.routes["/once"] = {"data": DATA}
    user_registry(env, {"t-once": entry(server.base + "/once")})
    calls = []
    real = lookup.hash_file
    monkeypatch.setattr(lookup, "hash_file", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    path = weights.fetch("t-once", log=lambda m: None)
    lookup._memo.clear()  # a later process: the sidecar written at the rename answers
    assert weights.resolve("t-once") == path and weights.verified_sha256("t-once") == sha(DATA)
    assert [Path(c).name for c in calls] == ["w.bin.part"]


def test_mirror_fallback_in_order(env, server):
    server.routes["/mirror-b"] = {"data": DATA}
    user_registry(env, {"t-mirror": entry([server.base + "/missing", server.base + "/mirror-b"])})
    logs = []
    assert weights.fetch("t-mirror", log=logs.append).read_bytes() == DATA
    order = [p for p, _ in server.requests]
    assert order == ["/missing", "/mirror-b"]
    assert any("HTTP 404" in m for m in logs)


def test_all_sources_fail_lists_each(env, server):
    user_registry(env, {"t-none": entry([server.base + "/gone-1", server.base + "/gone-2"])})
    with pytest.raises(WeightsDownloadError) as ei:
        weights.fetch("t-none", log=lambda m: None)
    assert "/gone-1: HTTP 404" in str(ei.value) and "/gone-2: HTTP 404" in str(ei.value)
    assert "weights verify t-none" in ei.value.fix


def test_concurrent_fetch_downloads_once(env, server):
    server.routes["/slow"] = {"data": DATA, "delay": 0.6}
    user_registry(env, {"t-conc": entry(server.base + "/slow")})
    results, errors = [], []

    def run():
        try:
            results.append(weights.fetch("t-conc", log=lambda m: None))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1] and results[0].read_bytes() == DATA
    assert len(server.gets("/slow")) == 1


def test_licence_acceptance_required(env, server):
    server.routes["/nc"] = {"data": DATA}
    user_registry(env, {"t-nc": entry(server.base + "/nc", licence="CC-BY-NC-SA-4.0 (test)",
                                      needs_license_acceptance=True)})
    with pytest.raises(LicenceNotAcceptedError) as ei:
        weights.fetch("t-nc", log=lambda m: None)
    assert "CC-BY-NC-SA-4.0" in str(ei.value) and "--accept-license" in ei.value.fix
    assert server.requests == []
    assert weights.fetch("t-nc", accept_license=True, log=lambda m: None).read_bytes() == DATA


def test_unpinned_entry_records_first_download(env, server):
    server.routes["/unpinned"] = {"data": DATA}
    user_registry(env, {"t-rec": entry(server.base + "/unpinned", data=None)})
    logs = []
    path = weights.fetch("t-rec", log=logs.append)
    rec = json.loads((path.parent / "recorded.json").read_text())
    assert rec["sha256"] == sha(DATA) and rec["size"] == len(DATA) and "not verified against upstream" in " ".join(logs)
    row = [r for r in _cli_json(["weights", "list", "--json"]) if r["name"] == "t-rec"][0]
    assert row["present"] and row["sha256"] == sha(DATA) and "recorded on first download" in row["hash_status"]
    # a later change of the file is caught against the record
    path.write_bytes(OTHER)
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve("t-rec")
    assert "rejected" in str(ei.value) and "size" in str(ei.value)


def test_sha256_prefix_checked_for_unpinned(env, server):
    server.routes["/pref"] = {"data": DATA}
    user_registry(env, {"t-pref": entry(server.base + "/pref", data=None, sha256_prefix="deadbeef")})
    with pytest.raises(WeightsDownloadError, match="does not start with deadbeef"):
        weights.fetch("t-pref", log=lambda m: None)


# --------------------------------------------------------------------------- offline


@pytest.fixture
def blocked_sockets(monkeypatch):
    attempts = []

    def refuse(*a, **k):
        attempts.append(a)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("var", ["MOVA_BENCH_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_makes_no_connection_and_names_everything(env, server, monkeypatch, blocked_sockets, var):
    url = server.base + "/offline"
    user_registry(env, {"t-off": entry(url)})
    monkeypatch.setenv(var, "1")
    with pytest.raises(MissingWeightsError) as ei:
        weights.fetch("t-off", log=lambda m: None)
    msg = str(ei.value)
    assert blocked_sockets == [] and server.requests == []
    for needle in ("w.bin", str(final(env, "t-off")), f"{len(DATA):,} bytes", sha(DATA), url, var):
        assert needle in msg, needle
    assert ei.value.exit_code == 2


def test_offline_still_resolves_present_files(env, monkeypatch, blocked_sockets):
    f = final(env, "t-here")
    f.parent.mkdir(parents=True)
    f.write_bytes(DATA)
    user_registry(env, {"t-here": entry("http://127.0.0.1:9/never")})
    monkeypatch.setenv("MOVA_BENCH_OFFLINE", "1")
    assert weights.fetch("t-here", log=lambda m: None) == f and blocked_sockets == []


# --------------------------------------------------------------------------- caches of other tools


def fabricate_hf_cache(root: Path, repo: str, rev: str, path: str, data: bytes) -> Path:
    d = root / f"models--{repo.replace('/', '--')}"
    (d / "blobs").mkdir(parents=True)
    blob = d / "blobs" / sha(data)
    blob.write_bytes(data)
    snap = d / "snapshots" / rev / path
    snap.parent.mkdir(parents=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (d / "refs").mkdir()
    (d / "refs" / "main").write_text(rev)
    return snap


def hf_entry(server, data=DATA, **extra):
    return entry(server.base + "/hf-fallback", data=data, filename="model.bin",
                 sources=[{"hf_repo": "org/name", "revision": REV, "path": "sub/model.bin"},
                          {"url": server.base + "/hf-fallback"}], **extra)


def test_hf_cache_found_and_verified_not_downloaded(env, server, blocked_sockets):
    snap = fabricate_hf_cache(env / "hf", "org/name", REV, "sub/model.bin", DATA)
    user_registry(env, {"t-hf": hf_entry(server)})
    loc = weights.locate("t-hf")
    assert loc.path == snap and loc.where == "hf-cache" and loc.verified_by == "pinned hash"
    assert weights.fetch("t-hf", log=lambda m: None) == snap
    assert blocked_sockets == [] and server.requests == []
    assert weights.get_entry("t-hf").urls[0] == f"https://huggingface.co/org/name/resolve/{REV}/sub/model.bin"


def test_hf_cache_wrong_hash_rejected_then_downloaded(env, server):
    snap = fabricate_hf_cache(env / "hf", "org/name", REV, "sub/model.bin", DATA[:-4] + b"XXXX")
    server.routes["/hf-fallback"] = {"data": DATA}
    user_registry(env, {"t-hfbad": hf_entry(server)})
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve("t-hfbad")
    msg = str(ei.value)
    assert "rejected" in msg and str(snap) in msg and sha(DATA) in msg and sha(DATA[:-4] + b"XXXX") in msg
    assert ei.value.fix == "mova-bench weights fetch t-hfbad"
    path = weights.fetch("t-hfbad", log=lambda m: None)
    assert path == final(env, "t-hfbad", "model.bin") and path.read_bytes() == DATA
    assert snap.read_bytes().endswith(b"XXXX")  # other tools' caches are never written


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_hf_cache_unpinned_text_verified_by_blob_id(env, server):
    text = b'{"<s>": 0, "<pad>": 1}\n'
    d = env / "hf" / "models--org--tok"
    (d / "blobs").mkdir(parents=True)
    (d / "blobs" / git_blob_sha1(text)).write_bytes(text)  # small files: blob named by the git blob SHA-1
    snap = d / "snapshots" / REV / "vocab.json"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(f"../../blobs/{git_blob_sha1(text)}")
    src = [{"hf_repo": "org/tok", "revision": REV, "path": "vocab.json"}]
    user_registry(env, {"t-tok": entry("http://unused", data=None, filename="vocab.json", layout="text", sources=src)})
    loc = weights.locate("t-tok")
    assert loc.path == snap and loc.verified_by.startswith("HF cache blob id")
    assert json.loads((env / "home" / "weights" / "t-tok" / "recorded.json").read_text())["sha256"] == sha(text)
    (d / "blobs" / git_blob_sha1(text)).write_bytes(text + b" ")  # corrupted blob: its name no longer matches
    with pytest.raises(MissingWeightsError, match="size|git_blob_sha1 mismatch"):
        weights.resolve("t-tok")


def test_torch_hub_cache_found(env, server):
    ckpt = env / "torch" / "hub" / "checkpoints" / "w.bin"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(DATA)
    user_registry(env, {"t-th": entry(server.base + "/th")})
    assert weights.resolve("t-th") == ckpt and weights.locate("t-th").where == "torch-hub"
    assert weights.fetch("t-th", log=lambda m: None) == ckpt and server.requests == []


def test_unpinned_foreign_copy_needs_prefix_or_adoption(env, server, capsys):
    ckpt = env / "torch" / "hub" / "checkpoints" / "w.bin"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(DATA)
    user_registry(env, {"t-up": entry(server.base + "/up", data=None),
                        "t-up2": entry(server.base + "/up", data=None, sha256_prefix=sha(DATA)[:8])})
    loc = weights.locate("t-up")
    assert loc.path is None and "no published hash" in loc.notes[0]
    assert weights.resolve("t-up2") == ckpt  # torch.hub convention: hash prefix in the file name
    assert json.loads((env / "home" / "weights" / "t-up2" / "recorded.json").read_text())["sha256"] == sha(DATA)
    assert "not verified against upstream" in capsys.readouterr().err


# --------------------------------------------------------------------------- resolve, memo, register_local


def test_register_local_and_memoised_verification(env, monkeypatch):
    f = env / "elsewhere" / "my.pt"
    f.parent.mkdir()
    f.write_bytes(DATA)
    e = weights.register_local("t-local", f, layout="model")
    assert e.sha256 == sha(DATA) and e.size == len(DATA) and e.layout == "model"
    calls = []
    real = lookup.hash_file
    monkeypatch.setattr(lookup, "hash_file", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    lookup._memo.clear()
    assert weights.resolve("t-local") == f.resolve()
    assert weights.resolve("t-local") == f.resolve()
    assert len(calls) == 1  # in-process memo
    lookup._memo.clear()  # as a new process: the sidecar answers
    assert weights.resolve("t-local") == f.resolve() and len(calls) == 1
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a changed mtime re-hashes
    assert weights.resolve("t-local") == f.resolve() and len(calls) == 2
    f.write_bytes(DATA[:-4] + b"XXXX")  # same size, other bytes
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve("t-local")
    assert sha(DATA) in str(ei.value) and ei.value.fix == "mova-bench weights fetch t-local"
    assert isinstance(ei.value, MovaBenchError) and ei.value.exit_code == 2


def test_register_local_stand_in_keeps_known_layout(env):
    f = env / "rand_cnn14.pth"
    f.write_bytes(OTHER)
    e = weights.register_local("panns-cnn14-16k", f)
    assert e.layout == "model" and e.sha256 == sha(OTHER) and weights.resolve("panns-cnn14-16k") == f.resolve()
    weights.forget_local("panns-cnn14-16k")
    assert weights.get_entry("panns-cnn14-16k").sha256.startswith("e2ee543a")
    assert not weights.is_present("panns-cnn14-16k")


def test_verified_sha256_of_unpinned_entry(env):
    f = final(env, "t-unp")
    f.parent.mkdir(parents=True)
    f.write_bytes(DATA)
    user_registry(env, {"t-unp": entry("http://127.0.0.1:9/x", data=None)})
    assert weights.get_entry("t-unp").sha256 is None
    assert weights.verified_sha256("t-unp") == sha(DATA)  # adopted and recorded (with a warning)


def test_missing_production_entry_message(env):
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve("vggish")
    msg = str(ei.value)
    assert "vggish-10086976.pth" in msg and "harritaylor/torchvggish" in msg and "288,567,937" in msg
    assert ei.value.fix == "mova-bench weights fetch vggish"
    assert not weights.is_present("synchformer")


# --------------------------------------------------------------------------- CLI


def _cli_json(argv, capsys=None):
    import contextlib
    import io

    from mova_bench.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    assert code == 0, buf.getvalue()
    return json.loads(buf.getvalue())


def test_cli_list_json(env, server):
    server.routes["/cli"] = {"data": DATA}
    user_registry(env, {"t-cli": entry(server.base + "/cli")})
    weights.fetch("t-cli", log=lambda m: None)
    rows = {r["name"]: r for r in _cli_json(["weights", "list", "--json"])}
    assert set(CONTRACT_NAMES) <= set(rows)
    assert rows["t-cli"]["present"] and rows["t-cli"]["path"] == str(final(env, "t-cli"))
    assert rows["t-cli"]["sha256"] == sha(DATA) and rows["t-cli"]["size"] == len(DATA)
    assert not rows["vggish"]["present"] and rows["vggish"]["licence"] == "Apache-2.0"
    assert rows["vggish"]["hash_status"].startswith("none published")


def test_cli_fetch_offline_exits_2_with_fix(env, server, monkeypatch, capsys, blocked_sockets):
    from mova_bench.cli import main

    user_registry(env, {"t-cli-off": entry(server.base + "/x")})
    monkeypatch.setenv("MOVA_BENCH_OFFLINE", "1")
    assert main(["weights", "fetch", "t-cli-off"]) == 2
    err = capsys.readouterr().err
    assert "MOVA_BENCH_OFFLINE=1" in err and "fix:" in err and "weights fetch t-cli-off" in err
    assert main(["weights", "fetch", "t-cli-off", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 2 and "weights fetch t-cli-off" in out["fix"]
    assert blocked_sockets == []


def test_cli_fetch_mirror_and_verify(env, server, capsys):
    from mova_bench.cli import main

    server.routes["/m/w.bin"] = {"data": DATA}
    user_registry(env, {"t-cli-m": entry(server.base + "/never-asked")})
    assert main(["weights", "fetch", "t-cli-m", "--mirror", server.base + "/m/"]) == 0
    assert capsys.readouterr().out.strip() == str(final(env, "t-cli-m"))
    assert [p for p, _ in server.requests] == ["/m/w.bin"]
    assert main(["weights", "verify", "t-cli-m"]) == 0
    assert "ok" in capsys.readouterr().out
    final(env, "t-cli-m").write_bytes(OTHER)
    assert main(["weights", "verify"]) == 1
    out, err = capsys.readouterr()
    assert "mismatch" in out and "t-cli-m" in err
    assert main(["weights", "fetch", "t-cli-m", "--mirror", server.base + "/m"]) == 0  # ours and corrupt: replaced
    assert final(env, "t-cli-m").read_bytes() == DATA and "removing" in capsys.readouterr().err
    assert main(["weights", "verify", "vggish"]) == 2  # nothing to verify: the fix says fetch
    assert "weights fetch vggish" in capsys.readouterr().err


def test_cli_fetch_all_reports_licence_and_failures(env, server, monkeypatch, capsys):
    from mova_bench.cli import main

    server.routes["/a"] = {"data": DATA}
    user_registry(env, {"t-a": entry(server.base + "/a")})
    monkeypatch.setattr(catalog, "PACKAGED_REGISTRY", env / "empty.yaml")
    (env / "empty.yaml").write_text("schema: 1\nentries: {}\n")
    user_registry(env, {"t-a": entry(server.base + "/a"),
                        "t-b": entry(server.base + "/b", licence="NC only", needs_license_acceptance=True)})
    assert main(["weights", "fetch", "all"]) == 2
    out, err = capsys.readouterr()
    assert str(final(env, "t-a")) in out and "t-b" in err and "--accept-license" in err
    server.routes["/b"] = {"data": DATA}
    assert main(["weights", "fetch", "all", "--accept-license"]) == 0


def test_readme_table_is_generated_from_the_registry():
    from mova_bench.weights.cli import README_END, README_START, markdown_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert block == markdown_table(), "regenerate the README table: python -c 'from mova_bench.weights.cli import markdown_table; print(markdown_table())'"
    assert "needs `--accept-license`" in block and "vggish-10086976.pth" in block


def test_cli_list_human(env, capsys):
    from mova_bench.cli import main

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in CONTRACT_NAMES:
        assert re.search(rf"^{re.escape(name)}\s+no\b", out, re.M), name
    assert "[needs --accept-license]" in out and "recorded on 1st download" in out


def test_cli_subprocess_offline_fetch_exits_2(env, server):
    import subprocess
    import sys

    user_registry(env, {"t-sub": entry(server.base + "/sub")})
    proc_env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mova_bench", "weights", "fetch", "t-sub"], env=proc_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "HF_HUB_OFFLINE=1" in proc.stderr and "fix:" in proc.stderr and str(final(env, "t-sub")) in proc.stderr
    assert server.requests == []
    listed = subprocess.run([sys.executable, "-m", "mova_bench", "weights", "list", "--json"], env=proc_env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and {r["name"] for r in json.loads(listed.stdout)} >= {"t-sub", *CONTRACT_NAMES}


def test_hf_mirrors_pinned_in_full():
    urls = {n: weights.get_entry(n).urls for n in ("i3d-torchscript", "i3d-400", "synchformer")}
    assert urls["i3d-400"][1] == ("https://huggingface.co/spaces/LanguageBind/Open-Sora-Plan-v1.0.0/resolve/"
                                  "810fa8c4bdb3a4c8eec9bd57375c29bde6fb46de/opensora/eval/fvd/videogpt/i3d_pretrained_400.pt")
    assert urls["i3d-torchscript"][1].startswith("https://huggingface.co/flateon/FVD-I3D-torchscript/resolve/1c2d6171")
    assert urls["synchformer"][0].startswith("https://github.com/hkchengrex/MMAudio/")  # the maintainer's copy first


def test_concurrent_fetch_across_processes(env, server):
    import subprocess
    import sys

    server.routes["/proc"] = {"data": DATA, "delay": 2.0}
    user_registry(env, {"t-proc": entry(server.base + "/proc")})
    cmd = [sys.executable, "-m", "mova_bench", "weights", "fetch", "t-proc"]
    procs = [subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {o.strip() for o, _ in outs} == {str(final(env, "t-proc"))}
    assert len(server.gets("/proc")) == 1 and final(env, "t-proc").read_bytes() == DATA
    assert any("waiting" in e or "present at" in e for _, e in outs)


# --------------------------------------------------------------------------- weights register / unregister


def test_cli_register_persists_for_other_processes_and_refuses_changes(env, tmp_path, capsys):
    """`weights register` writes the user registry, so a fresh process (a pool or Ray worker) resolves
    the file; the recorded hash refuses a file changed afterwards; the packaged layout is kept."""
    import subprocess
    import sys

    from mova_bench.cli import main

    f = tmp_path / "mine" / "vggish-finetune.pth"
    f.parent.mkdir()
    f.write_bytes(DATA)
    assert main(["weights", "register", "vggish", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sha256"] == sha(DATA) and out["size"] == len(DATA) and out["backup"] is None
    raw = yaml.safe_load(catalog.user_registry_file().read_text())
    assert raw["entries"]["vggish"]["path"] == str(f.resolve())
    assert raw["entries"]["vggish"]["layout"] == catalog._read_layer(catalog.PACKAGED_REGISTRY, "x")["vggish"].layout
    listed = subprocess.run([sys.executable, "-m", "mova_bench", "weights", "list", "--json"], env=dict(os.environ),
                            capture_output=True, text=True, timeout=120)
    row = {r["name"]: r for r in json.loads(listed.stdout)}["vggish"]
    assert row["present"] and row["path"] == str(f.resolve()), row
    assert weights.resolve("vggish") == f.resolve()
    f.write_bytes(OTHER)  # changed after registration: refused, never used
    with pytest.raises(MovaBenchError):
        weights.resolve("vggish")


def test_cli_register_never_loses_a_user_entry(env, tmp_path, capsys):
    from mova_bench.cli import main

    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(DATA)
    b.write_bytes(OTHER)
    reg = catalog.user_registry_file()
    reg.parent.mkdir(parents=True, exist_ok=True)
    reg.write_text("# my notes\nschema: 1\nentries: {}\n")
    assert main(["weights", "register", "my-net", str(a)]) == 0
    assert "registered my-net" in capsys.readouterr().out
    assert reg.with_name("registry.yaml.1.bak").read_text() == "# my notes\nschema: 1\nentries: {}\n"
    assert main(["weights", "register", "my-net", str(b)]) == 2  # already there: refused, file unchanged
    err = capsys.readouterr().err
    assert "already in the user registry" in err and "--force" in err
    assert yaml.safe_load(reg.read_text())["entries"]["my-net"]["sha256"] == sha(DATA)
    assert main(["weights", "register", "my-net", str(b), "--force"]) == 0
    assert yaml.safe_load(reg.read_text())["entries"]["my-net"]["sha256"] == sha(OTHER)
    assert main(["weights", "register", "bad name", str(b)]) == 2
    assert "entry names are lowercase" in capsys.readouterr().err
    assert main(["weights", "register", "x", str(tmp_path / "nope.pth")]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["weights", "unregister", "my-net"]) == 0
    assert "my-net" not in yaml.safe_load(reg.read_text())["entries"] and b.is_file()
    assert main(["weights", "unregister", "my-net"]) == 2
    assert "not in the user registry" in capsys.readouterr().err
