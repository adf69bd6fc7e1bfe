"""Generator adapters: http (against a real HTTP server on 127.0.0.1), command (real scripts in
tests/fakes), files, cascade (two command stages, end to end), and the checks of ltx-2 and ovi
that need neither a GPU nor weights (argument validation, missing packages: exit 2 before work).
"""

from __future__ import annotations

import base64
import importlib.machinery
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import make_av
from mova_bench.cli import main
from mova_bench.errors import ConfigError, GenerationError, MediaError, MissingDependencyError
from mova_bench.generators.base import ClipRequest
from mova_bench.store import read_manifest

FAKES = Path(__file__).resolve().parent / "fakes"
GEN_AV = str(FAKES / "gen_av.py")
ADD_AUDIO = str(FAKES / "add_audio.py")
SECRET = "sk-test-5ecret-never-logged-0123456789"

TINY_SUITE = """\
name: tiny_adapters
version: "1"
description: two prompts for adapter tests
defaults: {duration_s: 2.0, fps: 24, sample_rate: 48000, width: 128, height: 72, samples_per_prompt: 1, seed: 5}
reference: {kind: procedural, samples_per_prompt: 1}
prompts:
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
"""
METRICS = "sync_offset_ms,fd_video"


def request(**kw) -> ClipRequest:
    base = dict(clip_id="drum__s0", prompt_id="drum", prompt_text="A drummer hits a snare drum", seed=7, sample_index=0,
                duration_s=2.0, fps=24.0, sample_rate=48000, width=128, height=72)
    base.update(kw)
    return ClipRequest(**base)


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "served.mp4"
    make_av(path, seconds=2.0, fps=24.0, sr=48000, width=128, height=72, channels=2)
    return path.read_bytes()


@pytest.fixture()
def suite_file(tmp_path):
    p = tmp_path / "tiny_adapters.yaml"
    p.write_text(TINY_SUITE)
    return p


def all_text(folder: Path) -> str:
    """Every file under ``folder`` as text (binary files decoded leniently)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


# -- a fake OpenAI-style video server ---------------------------------------------------------------


class FakeVideoAPI:
    """State and behaviour of the test server; tests change the knobs between requests."""

    def __init__(self, mp4: bytes):
        self.mp4 = mp4
        self.reset()

    def reset(self, **knobs):
        self.lock = threading.Lock()
        self.jobs: dict[str, int] = {}
        self.log: list[dict] = []
        self.active: set[str] = set()
        self.max_active = 0
        self.post_failures: list[tuple[int, dict, bytes]] = []
        self.polls_before_done = 0
        self.final_status = "completed"  # or "failed", or "never"
        self.content = self.mp4
        self.content_type = "video/mp4"
        self.malformed_post = False
        self.require_key: str | None = None
        self.echo_auth = False
        self.redirect_content_to: str | None = None
        for k, v in knobs.items():
            setattr(self, k, v)

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path.split("?")[0]
        with self.lock:
            self.log.append({"method": method, "path": path, "headers": dict(h.headers), "body": body,
                             "host": h.headers.get("Host", "")})
        auth = h.headers.get("Authorization")
        if self.require_key is not None and auth != f"Bearer {self.require_key}" and not path.startswith("/moved/"):
            detail = f"invalid key {auth}" if self.echo_auth else "invalid key"
            return self.send(h, 401, {"error": {"message": detail}})
        if method == "POST" and path == "/v1/videos":
            with self.lock:
                if self.post_failures:
                    code, headers, payload = self.post_failures.pop(0)
                    return self.send(h, code, payload, headers)
            if self.malformed_post:
                return self.send(h, 200, b"{this is not json", {"Content-Type": "application/json"})
            with self.lock:
                jid = f"video_{len(self.jobs) + 1}"
                self.jobs[jid] = 0
                self.active.add(jid)
                self.max_active = max(self.max_active, len(self.active))
            return self.send(h, 200, {"id": jid, "object": "video", "status": "queued", "progress": 0})
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "videos"]:
            jid = parts[2]
            with self.lock:
                if jid not in self.jobs:
                    return self.send(h, 404, {"error": {"message": "no such video"}})
                self.jobs[jid] += 1
                n = self.jobs[jid]
            if self.final_status == "never" or n <= self.polls_before_done:
                return self.send(h, 200, {"id": jid, "status": "in_progress", "progress": min(99, 10 * n)})
            if self.final_status == "failed":
                return self.send(h, 200, {"id": jid, "status": "failed", "error": {"code": "oom", "message": "GPU out of memory"}})
            return self.send(h, 200, {"id": jid, "status": "completed", "progress": 100, "model": "fake-av", "size": "128x72"})
        if method == "GET" and (len(parts) == 4 and parts[:2] == ["v1", "videos"] and parts[3] == "content"
                                or path.startswith("/moved/")):
            jid = parts[2] if parts[0] == "v1" else parts[1]
            if self.redirect_content_to and parts[0] == "v1":
                return self.send(h, 302, b"", {"Location": f"{self.redirect_content_to}/moved/{jid}"})
            with self.lock:
                self.active.discard(jid)
            return self.send(h, 200, self.content, {"Content-Type": self.content_type})
        return self.send(h, 404, {"error": {"message": f"no route {method} {path}"}})

    @staticmethod
    def send(h: BaseHTTPRequestHandler, code: int, payload, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(code)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        for k, v in hdrs.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def posts(self) -> list[dict]:
        return [r for r in self.log if r["method"] == "POST"]


@pytest.fixture(scope="module")
def api_server(mp4_bytes):
    api = FakeVideoAPI(mp4_bytes)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            api.handle(self, "POST")

        def do_GET(self):  # noqa: N802
            api.handle(self, "GET")

        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    api.port = server.server_address[1]
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture()
def api(api_server):
    api_server.reset()
    return api_server


def http_gen(api, **kw):
    from mova_bench.generators.http import HttpGenerator

    params = dict(url=api.url, poll_interval_s=0.01, backoff_s=0.01, max_retries=3, timeout_s=20)
    params.update(kw)
    return HttpGenerator(**params)


# -- http -------------------------------------------------------------------------------------------


def test_http_submits_polls_downloads_and_checks_the_clip(api):
    gen = http_gen(api, model="fake-av", guidance_scale="4.5", steps="12", negative_prompt="blur")
    gen.check_available()
    clip = gen.generate(request())
    assert clip.video.shape == (48, 72, 128, 3) and clip.video.dtype == np.uint8
    assert clip.sample_rate == 48000 and clip.audio.ndim == 2 and clip.audio.shape[1] == 2  # stereo kept
    body = json.loads(api.posts()[0]["body"])
    assert body == {"model": "fake-av", "prompt": "A drummer hits a snare drum", "seconds": "2", "size": "128x72",
                    "num_frames": 48, "fps": 24, "seed": 7, "guidance_scale": 4.5, "num_inference_steps": 12,
                    "negative_prompt": "blur"}
    info = clip.info
    assert info["http_job_id"] == "video_1" and info["http_polls"] == 1 and info["http_retries"] == 0
    assert info["audio_sample_rate"] == 48000 and info["audio_channels"] == 2 and info["audio_silent"] is False
    assert info["av_duration_mismatch"] is False and "geometry_mismatch" not in info
    assert info["first_frame_source"] is None and info["server_model"] == "fake-av"
    assert [r["path"] for r in api.log] == ["/v1/videos", "/v1/videos/video_1", "/v1/videos/video_1/content"]


def test_http_extras_off_sends_only_the_openai_fields(api):
    http_gen(api, extras="false", guidance_scale="3").generate(request())
    assert set(json.loads(api.posts()[0]["body"])) == {"prompt", "seconds", "size"}


def test_http_slow_job_is_polled_until_completed(api):
    api.polls_before_done = 4
    clip = http_gen(api).generate(request())
    assert clip.info["http_polls"] == 5
    assert sum(1 for r in api.log if r["path"] == "/v1/videos/video_1") == 5


def test_http_429_is_retried_with_backoff_and_retry_after(api):
    api.post_failures = [(429, {"Retry-After": "0.3"}, b'{"error": "slow down"}'), (503, {}, b"busy")]
    t0 = time.monotonic()
    clip = http_gen(api, backoff_s=0.05).generate(request())
    elapsed = time.monotonic() - t0
    assert clip.info["http_retries"] == 2 and clip.info["http_retry_reasons"] == ["HTTP 429", "HTTP 503"]
    assert elapsed >= 0.3 + 0.1  # Retry-After honoured, then the second backoff (0.05 * 2)
    assert len(api.posts()) == 3


def test_http_500_fails_the_clip_after_the_retries(api):
    api.post_failures = [(500, {}, b'{"detail": "internal"}')] * 10
    with pytest.raises(GenerationError, match=r"HTTP 500.*gave up after 2 retries") as exc:
        http_gen(api, max_retries=2).generate(request())
    assert exc.value.reason == "http_error"
    assert len(api.posts()) == 3


def test_http_4xx_fails_at_once_without_retrying(api):
    api.post_failures = [(400, {}, b'{"error": {"message": "size 128x72 is not supported"}}')]
    with pytest.raises(GenerationError, match=r"HTTP 400.*not supported"):
        http_gen(api).generate(request())
    assert len(api.posts()) == 1


def test_http_job_that_never_finishes_times_out(api):
    api.final_status = "never"
    t0 = time.monotonic()
    # the per-clip deadline can fall between polls or inside one (a loaded machine): both are timeouts
    with pytest.raises(GenerationError, match=r"timed out after 1(\.0)? s") as exc:
        http_gen(api, timeout_s=1.0, poll_interval_s=0.05).generate(request())
    assert exc.value.reason == "timeout" and time.monotonic() - t0 < 8
    if "waiting for job" in str(exc.value):
        assert "last status 'in_progress'" in str(exc.value)


def test_http_failed_job_and_malformed_json_are_clip_failures(api):
    api.final_status = "failed"
    with pytest.raises(GenerationError, match="job video_1 failed: GPU out of memory") as exc:
        http_gen(api).generate(request())
    assert exc.value.reason == "job_failed"
    api.reset(malformed_post=True)
    with pytest.raises(GenerationError, match="not JSON") as exc:
        http_gen(api).generate(request())
    assert exc.value.reason == "bad_response"


def test_http_download_that_is_not_media(api):
    api.content, api.content_type = b"<html><body>502 Bad Gateway</body></html>", "text/html"
    with pytest.raises(MediaError, match="Content-Type text/html") as exc:
        http_gen(api).generate(request())
    assert exc.value.reason == "not_media"


def test_http_first_frame_as_data_url_or_multipart(api, tmp_path):
    from PIL import Image

    img = tmp_path / "frame.png"
    Image.new("RGB", (300, 100), (200, 30, 30)).save(img)
    clip = http_gen(api).generate(request(first_frame=str(img)))
    body = json.loads(api.posts()[0]["body"])
    assert body["input_reference"].startswith("data:image/png;base64,")
    with Image.open(__import__("io").BytesIO(base64.b64decode(body["input_reference"].split(",", 1)[1]))) as sent:
        assert sent.size == (128, 72)  # centre-cropped and resized to the request
    assert clip.info["first_frame_source"] == "suite"
    api.reset()
    http_gen(api, request_format="multipart").generate(request(first_frame=str(img)))
    post = api.posts()[0]
    assert post["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="input_reference"; filename="first_frame.png"' in post["body"] and b'name="prompt"' in post["body"]


def test_http_key_is_sent_masked_in_errors_and_never_follows_a_redirect_to_another_host(api, monkeypatch):
    monkeypatch.setenv("MOVA_TEST_VIDEO_KEY", SECRET)
    api.require_key = SECRET
    api.redirect_content_to = f"http://localhost:{api.port}"  # another host name: the key must not go there
    clip = http_gen(api, api_key_env="MOVA_TEST_VIDEO_KEY").generate(request())
    assert SECRET not in json.dumps(clip.info)
    assert api.log[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    moved = [r for r in api.log if r["path"].startswith("/moved/")]
    assert moved and "Authorization" not in moved[0]["headers"]
    # a server that echoes the key in its error text: masked in the message
    api.reset(require_key="other", echo_auth=True)
    with pytest.raises(GenerationError) as exc:
        http_gen(api, api_key_env="MOVA_TEST_VIDEO_KEY").generate(request())
    assert "HTTP 401" in str(exc.value) and SECRET not in str(exc.value) and "***" in str(exc.value)


def test_http_concurrency_bounds_jobs_in_flight(api):
    api.polls_before_done = 3
    gen = http_gen(api, concurrency=1)
    errors = []

    def one(i):
        try:
            gen.generate(request(clip_id=f"drum__s{i}", seed=i))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(api.posts()) == 3 and api.max_active == 1


def test_http_concurrency_slot_held_by_another_process_makes_the_clip_wait(api):
    """The slots are lock files (flock): a slot held elsewhere, here through another file handle
    as another worker process would hold it, keeps a concurrency=1 client waiting."""
    import hashlib

    from filelock import FileLock

    from mova_bench.cache import home

    folder = Path(home()) / "locks" / f"http-{hashlib.sha256(api.url.encode()).hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "slot-0.lock"), thread_local=False):
        with pytest.raises(GenerationError, match="waiting for a free slot") as exc:
            http_gen(api, concurrency=1, timeout_s=0.3).generate(request())
        assert exc.value.reason == "timeout" and not api.posts()
        http_gen(api, concurrency=2).generate(request())  # a second slot is free
    assert len(api.posts()) == 1


def test_http_parameters_are_checked_before_any_work(api, monkeypatch):
    from mova_bench.generators.http import HttpGenerator, retry_after_s

    with pytest.raises(ConfigError, match="not an http"):
        HttpGenerator(url="ftp://example.org")
    for key_by_mistake in (SECRET, "AbCdEfGh1234567890XyZ9"):
        with pytest.raises(ConfigError, match="NAME of an environment variable") as exc:
            HttpGenerator(url=api.url, api_key_env=key_by_mistake)
        assert key_by_mistake not in str(exc.value)
    assert HttpGenerator(url=api.url, api_key_env="OPENAI_API_KEY").params["api_key_env"] == "OPENAI_API_KEY"
    with pytest.raises(ConfigError, match="--set url="):
        HttpGenerator().check_available()
    monkeypatch.delenv("MOVA_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match="MOVA_TEST_UNSET_KEY"):
        HttpGenerator(url=api.url, api_key_env="MOVA_TEST_UNSET_KEY").check_available()
    with pytest.raises(ConfigError, match="cannot connect"):
        HttpGenerator(url="http://127.0.0.1:9").check_available()
    with pytest.raises(ConfigError, match="guidance_scale"):
        HttpGenerator(url=api.url, guidance_scale="high")
    assert HttpGenerator(url=api.url + "/v1/").params["url"] == api.url
    assert retry_after_s("2") == 2.0 and retry_after_s("soon") is None and retry_after_s(None) is None


def test_http_run_end_to_end_through_the_cli_and_the_key_is_never_recorded(api, suite_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOVA_TEST_VIDEO_KEY", SECRET)
    api.require_key = SECRET
    out = tmp_path / "runs"
    code = main(["run", "--model", "http", "--set", f"url={api.url}", "--set", "api_key_env=MOVA_TEST_VIDEO_KEY",
                 "--set", "poll_interval_s=0.01", "--suite", str(suite_file), "--out", str(out),
                 "--metrics", METRICS, "--json"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    doc = json.loads(stdout)
    run_dir = Path(doc["run_dir"])
    assert doc["n_clips"] == 2 and doc["n_failed"] == 0
    rows = read_manifest(run_dir / "manifest.jsonl")
    assert all(r["status"] == "ok" and Path(r["path"]).is_file() for r in rows)
    assert rows[0]["info"]["http_job_id"] and rows[0]["info"]["audio_sample_rate"] == 48000
    assert rows[0]["generator_args"]["api_key_env"] == "MOVA_TEST_VIDEO_KEY"
    assert (run_dir / "report.html").is_file() and (run_dir / "metrics.json").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["sync_offset_ms"]["status"] == "ok" and metrics["fd_video[vstats]"]["status"] == "ok"
    assert SECRET not in stdout + stderr and SECRET not in all_text(out)


# -- command ----------------------------------------------------------------------------------------


def gen_av_argv(*extra):
    return [sys.executable, GEN_AV, "--prompt", "{prompt}", "--seed", "{seed}", "--out", "{out}", "--frames",
            "{num_frames}", "--fps", "{fps}", "--width", "{width}", "--height", "{height}", "--sr", "{sample_rate}",
            "--first-frame", "{first_frame}", *extra]


def command_gen(argv, **kw):
    from mova_bench.generators.command import CommandGenerator

    return CommandGenerator(argv=json.dumps(argv), **kw)


def test_command_runs_a_script_and_decodes_its_clip():
    gen = command_gen(gen_av_argv("--channels", "2"))
    gen.check_available()
    clip = gen.generate(request(prompt_text='a "quoted" prompt; with $(no shell)'))
    assert clip.video.shape == (48, 72, 128, 3) and clip.audio.shape[1] == 2 and clip.sample_rate == 48000
    info = clip.info
    assert info["command_exit_status"] == 0 and info["audio_silent"] is False
    assert "prompt='a \"quoted\" prompt; with $(no shell)' seed=7 first_frame=None" in info["command_stderr_tail"]
    assert info["first_frame_source"] is None  # {first_frame} and its option dropped


def test_command_placeholders_and_first_frame_fallbacks(tmp_path):
    from mova_bench.generators.command import parse_argv, substitute

    values = {"prompt": "p", "out": "/o.mp4", "first_frame": None, "seed": "3"}
    argv = ["x", "--image", "{first_frame}", "--json", '{"a": {{1}}}', "--out", "{out}", "s={seed}"]
    assert substitute(argv, values) == ["x", "--json", '{"a": {1}}', "--out", "/o.mp4", "s=3"]
    with pytest.raises(ConfigError, match="unknown placeholder {promt}"):
        parse_argv(json.dumps(["x", "{promt}", "{out}"]))
    with pytest.raises(ConfigError, match="has no {out}"):
        parse_argv(json.dumps(["x", "{prompt}"]))
    with pytest.raises(ConfigError, match="not a JSON list"):
        parse_argv("python gen.py --out {out}")
    gen = command_gen(gen_av_argv(), first_frame_fallback="white")
    clip = gen.generate(request())
    assert clip.info["first_frame_source"] == "white_fallback" and "first_frame_white.png" in clip.info["command_stderr_tail"]


def test_command_failures_keep_the_stderr_tail():
    with pytest.raises(GenerationError, match=r"(?s)exited with status 3; stderr tail:\n.*CUDA out of memory \(simulated\)") as exc:
        command_gen(gen_av_argv("--mode", "fail")).generate(request())
    assert exc.value.reason == "command_failed"
    with pytest.raises(MediaError, match="wrote nothing") as exc:
        command_gen(gen_av_argv("--mode", "nofile")).generate(request())
    assert exc.value.reason == "missing"
    with pytest.raises(MediaError) as exc:
        command_gen(gen_av_argv("--mode", "garbage")).generate(request())
    assert exc.value.reason == "not_media"
    with pytest.raises(MediaError) as exc:
        command_gen(gen_av_argv("--mode", "noaudio")).generate(request())
    assert exc.value.reason == "no_audio_stream"
    clip = command_gen(gen_av_argv("--mode", "silent")).generate(request())
    assert clip.info["audio_silent"] is True  # flagged, not rejected


def test_command_timeout_kills_the_process():
    t0 = time.monotonic()
    with pytest.raises(GenerationError, match=r"timed out after 1.5 s and was killed") as exc:
        command_gen(gen_av_argv("--mode", "sleep"), timeout_s=1.5).generate(request())
    assert exc.value.reason == "timeout" and time.monotonic() - t0 < 10


def test_command_checks_before_any_work(tmp_path):
    with pytest.raises(MissingDependencyError, match="not on PATH"):
        command_gen(["no-such-generator-xyz", "--out", "{out}"]).check_available()
    from mova_bench.generators.command import CommandGenerator

    with pytest.raises(ConfigError, match="needs the command"):
        CommandGenerator().check_available()
    with pytest.raises(ConfigError, match="non-empty JSON list"):
        command_gen([])
    with pytest.raises(ConfigError, match="audio stage of a cascade"):
        command_gen([sys.executable, ADD_AUDIO, "--video", "{video}", "--out", "{out}"]).check_available()
    with pytest.raises(ConfigError, match="first_frame_fallback"):
        command_gen(gen_av_argv(), first_frame_fallback="black")
    card_style = CommandGenerator(card_defaults={"argv": ["python", "g.py", "--out", "{out}"]})
    assert json.loads(card_style.params["argv"]) == ["python", "g.py", "--out", "{out}"]


# -- files ------------------------------------------------------------------------------------------


@pytest.fixture()
def clips_dir(tmp_path):
    d = tmp_path / "elsewhere"
    d.mkdir()
    make_av(d / "drum__s0.mp4", seconds=2.0, width=128, height=72)
    make_av(d / "ball.mp4", seconds=2.0, width=128, height=72)
    make_av(d / "take7.mov", seconds=2.0, width=128, height=72)
    (d / "prompts.jsonl").write_text(json.dumps({"clip": "take7.mov", "prompt_id": "glass"}) + "\n")
    (d / "notes.txt").write_text("ignored")
    return d


def test_files_matches_clip_id_prompt_id_and_mapping(clips_dir):
    from mova_bench.generators.files import FilesGenerator

    gen = FilesGenerator(dir=str(clips_dir))
    gen.check_available()
    a = gen.generate(request())
    assert a.info["matched_by"] == "clip_id stem" and a.info["source_file"].endswith("drum__s0.mp4")
    assert len(a.info["source_sha256"]) == 64 and a.video.shape == (48, 72, 128, 3)
    b = gen.generate(request(clip_id="ball__s0", prompt_id="ball"))
    assert b.info["matched_by"] == "prompt_id stem"
    c = gen.generate(request(clip_id="glass__s0", prompt_id="glass"))
    assert c.info["matched_by"] == "prompt_id in prompts.jsonl" and c.info["source_file"].endswith("take7.mov")
    with pytest.raises(MediaError, match="only stands for sample 0") as exc:
        gen.generate(request(clip_id="ball__s1", prompt_id="ball", sample_index=1))
    assert exc.value.reason == "missing"
    with pytest.raises(ConfigError, match="--set dir=PATH"):
        FilesGenerator().check_available()
    with pytest.raises(ConfigError, match="not a folder"):
        FilesGenerator(dir=str(clips_dir / "nope")).check_available()


def test_files_run_records_missing_clips_and_exits_3(clips_dir, tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(TINY_SUITE.replace('{id: ball,', '{id: bell,'))
    code = main(["run", "--model", "files", "--set", f"dir={clips_dir}", "--suite", str(suite), "--out",
                 str(tmp_path / "runs"), "--metrics", "sync_offset_ms", "--json"])
    stdout, stderr = capsys.readouterr()
    assert code == 3, stderr
    doc = json.loads(stdout)
    rows = {r["clip_id"]: r for r in read_manifest(Path(doc["run_dir"]) / "manifest.jsonl")}
    assert rows["drum__s0"]["status"] == "ok" and rows["drum__s0"]["info"]["matched_by"] == "clip_id stem"
    assert rows["bell__s0"]["status"] == "failed" and rows["bell__s0"]["reason"] == "missing"



def test_files_run_stores_the_models_file_byte_for_byte(tmp_path, capsys):
    """An MP4/MOV with audio is stored as it is (the clip's content hash is the source's), never a lossy
    re-encode of its decoded frames; a container outside the MP4 family (Matroska) is re-encoded, and
    the manifest says which happened."""
    import av
    import numpy as np

    from mova_bench.media import file_sha256

    d = tmp_path / "clips"
    d.mkdir()
    make_av(d / "drum__s0.mp4", seconds=2.0, width=128, height=72)
    mkv = d / "ball__s0.mkv"
    with av.open(str(mkv), "w", format="matroska") as out:
        vs = out.add_stream("mpeg4", rate=24)
        vs.width, vs.height, vs.pix_fmt = 128, 72, "yuv420p"
        aus = out.add_stream("mp2", rate=48000, layout="mono")
        for i in range(48):
            img = np.full((72, 128, 3), (i * 5) % 255, np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for k in range(int(2.0 * 48000 / 1152)):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
            fr.sample_rate, fr.pts = 48000, k * 1152
            for pkt in aus.encode(fr):
                out.mux(pkt)
        for stream in (vs, aus):
            for pkt in stream.encode(None):
                out.mux(pkt)
    suite = tmp_path / "s.yaml"
    suite.write_text(TINY_SUITE)
    code = main(["run", "--model", "files", "--set", f"dir={d}", "--suite", str(suite), "--out",
                 str(tmp_path / "runs"), "--metrics", "sync_offset_ms", "--json"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    rows = {r["clip_id"]: r for r in read_manifest(Path(json.loads(stdout)["run_dir"]) / "manifest.jsonl")}
    drum, ball = rows["drum__s0"], rows["ball__s0"]
    assert drum["content_hash"] == file_sha256(d / "drum__s0.mp4") == drum["info"]["source_sha256"]
    assert drum["info"]["stored"] == "the model's file, byte for byte"
    assert ball["content_hash"] != file_sha256(mkv) and ball["info"]["stored"].startswith("encoded by mova-bench")

# -- cascade ----------------------------------------------------------------------------------------


def cascade_args(video_mode="noaudio"):
    video = [sys.executable, GEN_AV, "--prompt", "{prompt}", "--seed", "{seed}", "--out", "{out}", "--frames", "{num_frames}",
             "--fps", "{fps}", "--width", "{width}", "--height", "{height}", "--mode", video_mode]
    audio = [sys.executable, ADD_AUDIO, "--video", "{video}", "--prompt", "{prompt}", "--out", "{out}", "--sr", "16000"]
    return ["--set", "video=command", "--set", f"video.argv={json.dumps(video)}",
            "--set", "audio=command", "--set", f"audio.argv={json.dumps(audio)}"]


def test_cascade_end_to_end_with_two_command_stages(suite_file, tmp_path, capsys):
    code = main(["run", "--model", "cascade", *cascade_args(), "--suite", str(suite_file), "--out", str(tmp_path / "runs"),
                 "--metrics", METRICS, "--json"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    doc = json.loads(stdout)
    run_dir = Path(doc["run_dir"])
    rows = read_manifest(run_dir / "manifest.jsonl")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    info = rows[0]["info"]
    assert rows[0]["sample_rate"] == 16000 and info["audio_sample_rate"] == 16000
    assert info["audio_sample_rate_requested"] == 48000
    assert info["cascade"]["video"]["model"] == "command" and info["cascade"]["audio"]["model"] == "command"
    assert "{video}" in info["cascade"]["audio"]["params"]["argv"]
    assert "add_audio: 48 frames" in info["cascade"]["audio"]["info"]["command_stderr_tail"]
    assert rows[0]["generator_args"]["video"] == "command" and "audio.argv" in rows[0]["generator_args"]
    assert (run_dir / "report.html").is_file()


def test_cascade_checks_its_stages_before_any_work(tmp_path, capsys):
    from mova_bench.generators.cascade import CascadeGenerator

    with pytest.raises(ConfigError, match="needs both stages"):
        CascadeGenerator(video="procedural").check_available()
    with pytest.raises(ConfigError, match="cannot add audio to a video"):
        CascadeGenerator(video="procedural", audio="procedural")
    with pytest.raises(ConfigError, match="video.KEY or audio.KEY"):
        CascadeGenerator(**{"video": "procedural", "vidoe.argv": "[]"})
    with pytest.raises(ConfigError, match="cascade video stage .procedural.: model 'procedural' has no parameter"):
        CascadeGenerator(**{"video": "procedural", "video.argv": "[]"})
    gen = CascadeGenerator(**{"video": "procedural", "audio": "command",
                              "audio.argv": json.dumps([sys.executable, ADD_AUDIO, "--out", "{out}"])})
    with pytest.raises(ConfigError, match="audio stage .command.: the audio stage of a cascade gets the generated video as {video}"):
        gen.check_available()
    suite = tmp_path / "s.yaml"
    suite.write_text(TINY_SUITE)
    code = main(["run", "--model", "cascade", "--set", "video=procedural", "--suite", str(suite), "--out",
                 str(tmp_path / "runs"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 2 and doc["exit_code"] == 2 and "needs both stages" in doc["error"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- ltx-2 ------------------------------------------------------------------------------------------


def test_ltx2_validates_parameters_and_requests():
    from mova_bench.generators.ltx2 import LTX2Generator

    gen = LTX2Generator()
    gen.validate_request(request(duration_s=121 / 24, width=1536, height=1024))
    with pytest.raises(ConfigError, match=r"num_frames=120: LTX-2 needs 8k\+1 frames \(e.g. 113 or 121"):
        gen.validate_request(request(duration_s=5.0, width=1536, height=1024))
    with pytest.raises(ConfigError, match="width=736: this LTX-2 pipeline needs a multiple of 64"):
        gen.validate_request(request(duration_s=121 / 24, width=736, height=512))
    LTX2Generator(pipeline="one_stage").validate_request(request(duration_s=121 / 24, width=736, height=512))
    with pytest.raises(ConfigError, match="pipeline='three_stage'"):
        LTX2Generator(pipeline="three_stage")
    with pytest.raises(ConfigError, match="distilled uses fixed sigmas.*guidance_scale"):
        LTX2Generator(pipeline="distilled", guidance_scale=4)
    assert LTX2Generator(pipeline="distilled").params["checkpoint"] == "ltx-2-19b-distilled.safetensors"
    with pytest.raises(ConfigError, match="stg_blocks"):
        LTX2Generator(stg_blocks="last")
    with pytest.raises(ConfigError, match="num_inference_steps=0"):
        LTX2Generator(num_inference_steps=0)


def test_ltx2_without_the_package_exits_2_before_any_work(tmp_path, suite_file, capsys, monkeypatch):
    from mova_bench.generators import ltx2

    monkeypatch.setattr(ltx2, "_find_spec", lambda name, *a: None if name.startswith("ltx_") else importlib.machinery.ModuleSpec(name, None))
    code = main(["run", "--model", "ltx-2", "--suite", "thunderstorm_set", "--out", str(tmp_path / "runs"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 2 and doc["exit_code"] == 2
    assert "ltx_pipelines (pip: ltx-pipelines)" in doc["error"] and "pip install 'mova-bench[ltx2]'" in doc["error"]
    assert "hf download Lightricks/LTX-2 ltx-2-19b-dev.safetensors" in doc["error"]
    assert not (tmp_path / "runs").exists()


def test_ltx2_without_weights_names_the_download(tmp_path, monkeypatch):
    from mova_bench.generators import ltx2

    monkeypatch.setattr(ltx2, "_find_spec", lambda name, *a: importlib.machinery.ModuleSpec(name, None))
    gen = ltx2.LTX2Generator(weights_dir=str(tmp_path / "w"))
    with pytest.raises(MissingDependencyError, match=r"LTX-2 weights not found \(checkpoint: .*ltx-2-19b-dev.safetensors; gemma_root") as exc:
        gen.check_available()
    assert "hf download google/gemma-3-12b-it-qat-q4_0-unquantized" in str(exc.value)


def test_ltx2_arguments_bind_to_the_installed_pipelines(tmp_path):
    """Where ltx-pipelines is installed: the adapter's constructor and call arguments fit the real
    signatures of all three pipelines (nothing is loaded or run)."""
    import importlib
    import inspect

    pytest.importorskip("ltx_pipelines")
    from mova_bench.generators.ltx2 import PIPELINES, LTX2Generator

    img = tmp_path / "f.png"
    img.write_bytes(b"")
    for name, (module, cls_name, _) in PIPELINES.items():
        cls = getattr(importlib.import_module(module), cls_name)
        gen = LTX2Generator(pipeline=name)
        inspect.signature(cls.__init__).bind(None, **gen.init_kwargs())
        inspect.signature(cls.__call__).bind(None, **gen.call_kwargs(request(duration_s=121 / 24, width=1536, height=1024,
                                                                             first_frame=str(img))))


# -- ovi --------------------------------------------------------------------------------------------


def test_ovi_without_a_checkout_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OVI_CHECKOUT", raising=False)
    code = main(["run", "--model", "ovi", "--suite", "thunderstorm_set", "--out", str(tmp_path / "runs"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 2 and "git clone https://github.com/character-ai/Ovi" in doc["error"] and "not on PyPI" in doc["error"]
    from mova_bench.generators.ovi import OviGenerator

    with pytest.raises(MissingDependencyError, match="is not a clone of"):
        OviGenerator(checkout=str(tmp_path)).check_available()


def test_ovi_checks_packages_and_weights_and_validates_requests(tmp_path, monkeypatch):
    from mova_bench.generators import ovi

    clone = tmp_path / "Ovi"
    (clone / "ovi" / "configs" / "inference").mkdir(parents=True)
    (clone / "ovi" / "ovi_fusion_engine.py").write_text("raise ImportError('never imported by the checks')\n")
    (clone / "ovi" / "configs" / "inference" / "inference_fusion.yaml").write_text(
        "ckpt_dir: ./ckpts\nsample_steps: 50\nvideo_guidance_scale: 4.0\naudio_guidance_scale: 3.0\nslg_layer: 11\n")
    monkeypatch.setattr(ovi, "_find_spec", lambda name, *a: None if name in ("omegaconf", "cv2") else importlib.machinery.ModuleSpec(name, None))
    gen = ovi.OviGenerator(checkout=str(clone))
    with pytest.raises(MissingDependencyError, match=r"omegaconf \(pip: omegaconf\), cv2 \(pip: opencv-python\).*requirements.txt"):
        gen.check_available()
    monkeypatch.setattr(ovi, "_find_spec", lambda name, *a: importlib.machinery.ModuleSpec(name, None))
    with pytest.raises(MissingDependencyError, match=r"Ovi/model_960x960.safetensors.*download_weights.py --output-dir .*ckpts --models 960x960_5s"):
        gen.check_available()
    with pytest.raises(ConfigError, match="no such Ovi config"):
        ovi.OviGenerator(checkout=str(clone), config="nope.yaml").check_available()
    assert gen.settings({"sample_steps": 30})["sample_steps"] == 30
    assert ovi.OviGenerator(checkout=str(clone), guidance_scale=6).settings({})["video_guidance_scale"] == 6.0
    gen.validate_request(request(duration_s=121 / 24, width=1280, height=704))
    with pytest.raises(ConfigError, match="makes exactly 121 frames.*would render 1280x704"):
        gen.validate_request(request(duration_s=5.0, width=1280, height=720))
    with pytest.raises(ConfigError, match="fp8"):
        ovi.OviGenerator(checkout=str(clone), fp8="true")
    with pytest.raises(ConfigError, match="model_name"):
        ovi.OviGenerator(model_name="4k")


# -- shared ------------------------------------------------------------------------------------------


def test_audio_check_flags_silence_mismatch_and_rejects_what_cannot_be_written():
    from mova_bench.generators.audio_check import check_audio, finish_clip

    wav, info = check_audio(np.zeros(48000, np.float32), 48000, n_frames=48, fps=24.0)
    assert info["audio_silent"] is True and info["av_duration_mismatch"] is True and info["av_duration_diff_s"] == -1.0
    _, info = check_audio(np.full((96000, 2), 2.0, np.float32), 48000, n_frames=48, fps=24.0)
    assert info["audio_samples_clipped"] == 192000 and info["audio_channels"] == 2 and info["av_duration_mismatch"] is False
    with pytest.raises(MediaError) as exc:
        check_audio(np.zeros(0), 48000, n_frames=48, fps=24.0)
    assert exc.value.reason == "no_audio_stream"
    with pytest.raises(GenerationError, match="non-finite"):
        check_audio(np.array([0.0, np.nan], np.float32), 48000, n_frames=48, fps=24.0)
    clip = finish_clip(request(), np.zeros((24, 64, 64, 3), np.uint8), np.zeros((24000, 6), np.float32), 24.0, 24000)
    assert clip.audio.ndim == 1 and clip.info["audio_downmix"].startswith("6 channels")
    assert clip.info["geometry_mismatch"] == {"width": [128, 64], "height": [72, 64], "num_frames": [48, 24]}


def test_importing_the_adapters_imports_no_heavy_backend():
    code = ("import sys, mova_bench.cli, mova_bench.registry as r\n"
            "for n in ['http', 'command', 'files', 'ltx-2', 'ovi', 'cascade']: r.generators.get(n)\n"
            "heavy = [m for m in ('torch', 'ltx_pipelines', 'ltx_core', 'ovi', 'omegaconf', 'diffusers') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
