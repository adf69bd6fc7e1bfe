"""Generators behind an OpenAI-style video API (``POST {url}/v1/videos``), with the standard library.

What MOVA's SGLang server and hosted video APIs expose (the OpenAI Videos API shape):

1. ``POST {url}/v1/videos`` with a JSON body ``{"model", "prompt", "seconds", "size"}`` plus, unless
   ``--set extras=false``, ``num_frames``, ``fps``, ``seed`` and (when set) ``guidance_scale``,
   ``num_inference_steps``, ``negative_prompt`` (the SGLang extensions). A suite prompt's first
   frame is centre-cropped and resized to the request size (as MOVA's script does) and sent as
   ``input_reference``: a ``data:image/png;base64,...`` URL in JSON, or a file part with
   ``--set request_format=multipart`` (what the hosted OpenAI API takes). The answer is a job
   object with an ``id``.
2. ``GET {url}/v1/videos/{id}`` every ``poll_interval_s`` until ``status`` is ``completed``
   (``failed`` is a per-clip failure with the job's error message).
3. ``GET {url}/v1/videos/{id}/content`` → an MP4, decoded with PyAV (full size, channels kept).

Every request is retried on 429, 5xx (and 408) and connection errors, up to ``max_retries``
times with exponential backoff from ``backoff_s`` (doubling, at most 60 s), honouring a
``Retry-After`` header (seconds or an HTTP date). Everything for one clip (submit, polling,
download) must finish within ``timeout_s``. Other 4xx answers, JSON that does not parse or lacks
the fields above, a failed job, the deadline and a download that is not media are per-clip
failures with that reason; the run goes on and exits 3.

The API key is read from the environment variable named by ``api_key_env`` (nothing is sent
without one). The key is not a parameter, so it is never in the run spec, the manifest, a log
line or an error message (server text quoted in an error has it masked); it is sent only to the
host of ``url`` and never along a redirect to another host. ``concurrency`` bounds the jobs in
flight to one server from this machine: threads share a semaphore, and processes (the workers
of a ``pool`` executor) share ``concurrency`` lock files under ``$MOVA_BENCH_HOME/locks/``.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import io
import json
import math
import os
import re
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from mova_bench.errors import ConfigError, MediaError
from mova_bench.generators.audio_check import finish_clip
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator
from mova_bench.generators.common import failure

#: HTTP statuses retried with backoff besides every 5xx; any other 4xx fails the clip at once
RETRY_STATUSES = {408, 429}
COMPLETED = {"completed", "succeeded", "success", "done", "finished"}
FAILED = {"failed", "error", "cancelled", "canceled", "expired", "rejected"}
MAX_BACKOFF_S = 60.0
#: at most this long per single HTTP read (the clip's deadline also bounds it)
REQUEST_TIMEOUT_S = 120.0
MAX_JSON_BYTES = 16 << 20
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

_semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()


def _semaphore(base: str, n: int) -> threading.BoundedSemaphore:
    with _semaphores_lock:
        key = (base, n)
        if key not in _semaphores:
            _semaphores[key] = threading.BoundedSemaphore(n)
        return _semaphores[key]


class _Slot:
    """One of ``n`` jobs in flight to ``base``: a thread semaphore for this process and one of
    ``n`` lock files (``$MOVA_BENCH_HOME/locks/http-<hash of url>/slot-<i>.lock``) for every
    process on this machine, so worker processes of a pool share the bound too."""

    def __init__(self, base: str, n: int):
        self.sem = _semaphore(base, n)
        digest = hashlib.sha256(base.encode()).hexdigest()[:16]
        self.folder = Path(os.path.expanduser(str(_home()))) / "locks" / f"http-{digest}"
        self.n = n
        self.lock = None

    def acquire(self, deadline: "_Deadline") -> bool:
        from filelock import FileLock, Timeout

        if not self.sem.acquire(timeout=max(0.0, deadline.left())):
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            locks = [FileLock(str(self.folder / f"slot-{i}.lock"), thread_local=False) for i in range(self.n)]
            while True:
                for lock in locks:
                    try:
                        lock.acquire(timeout=0)
                    except Timeout:
                        continue
                    self.lock = lock
                    return True
                if deadline.left() <= 0:
                    self.sem.release()
                    return False
                time.sleep(min(0.05, max(0.0, deadline.left())))
        except OSError:  # no writable lock folder: the process-wide bound still holds
            return True
        except BaseException:
            self.sem.release()
            raise

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self.sem.release()


def _home() -> Path:
    from mova_bench.cache import home

    return home()


def _looks_like_env_name(name: str) -> bool:
    """A variable name, not a secret: [A-Za-z_][A-Za-z0-9_]*, at most 64 characters, and not a
    long mix of upper case, lower case and digits (what keys look like)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        return False
    mixed = any(c.islower() for c in name) and any(c.isupper() for c in name) and any(c.isdigit() for c in name)
    return not (mixed and len(name) >= 20)


def normalize_url(url: str) -> str:
    """``http://host:port[/prefix][/v1][/]`` → ``http://host:port[/prefix]`` (ConfigError if not http(s))."""
    raw = str(url or "").strip()
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"url={raw!r} is not an http(s) URL; expected e.g. --set url=http://127.0.0.1:30000 "
                          "(the server that answers POST /v1/videos)")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header: delay seconds or an HTTP date; None when absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class _SameHostAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects; carry the Authorization header only to the same scheme and host."""

    def __init__(self, origin: tuple[str, str], auth: str | None):
        super().__init__()
        self.origin = origin
        self.auth = auth

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self.auth:
            parts = urllib.parse.urlsplit(newurl)
            if (parts.scheme, parts.netloc) == self.origin:
                new.add_unredirected_header("Authorization", self.auth)
        return new


class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


class HttpGenerator(Generator):
    name = "http"
    params_schema = {
        "url": "",
        "model": "",
        "api_key_env": "",
        "timeout_s": 1800.0,
        "poll_interval_s": 5.0,
        "max_retries": 5,
        "backoff_s": 1.0,
        "concurrency": 1,
        "guidance_scale": "",
        "steps": "",
        "negative_prompt": "",
        "extras": True,
        "request_format": "json",
    }

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        super().__init__(card_defaults=card_defaults, card=card, **params)
        p = self.params
        if p["url"]:
            p["url"] = normalize_url(p["url"])
        for key, lo in (("timeout_s", 0.0), ("poll_interval_s", 0.0), ("backoff_s", 0.0)):
            v = float(p[key])
            if not math.isfinite(v) or v < lo or (key == "timeout_s" and v == 0):
                raise ConfigError(f"{key}={p[key]}: expected a positive number of seconds")
        if not 0 <= int(p["max_retries"]) <= 100:
            raise ConfigError(f"max_retries={p['max_retries']}: expected an integer in 0..100")
        if not 1 <= int(p["concurrency"]) <= 1024:
            raise ConfigError(f"concurrency={p['concurrency']}: expected an integer in 1..1024 (jobs in flight per server)")
        fmt = str(p["request_format"]).strip().lower()
        if fmt not in ("json", "multipart"):
            raise ConfigError(f"request_format={p['request_format']!r}: expected json (SGLang, most servers) or "
                              "multipart (the hosted OpenAI API's input_reference upload)")
        p["request_format"] = fmt
        p["guidance_scale"] = self._optional_number("guidance_scale", float)
        p["steps"] = self._optional_number("steps", int)
        env = str(p["api_key_env"]).strip()
        if env and not _looks_like_env_name(env):
            # never echo the value: it may be the key itself
            raise ConfigError("api_key_env must be the NAME of an environment variable holding the key "
                              "(letters, digits and _, e.g. --set api_key_env=OPENAI_API_KEY), never the key itself; "
                              "the value given does not look like a variable name and is not shown")
        p["api_key_env"] = env

    def _optional_number(self, key: str, kind: type) -> Any:
        raw = self.params[key]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return ""
        try:
            value = kind(float(raw)) if kind is int else kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={raw!r}: expected a {kind.__name__}") from None
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{key}={raw!r}: expected a finite number")
        if kind is int and not 1 <= value <= 10000:
            raise ConfigError(f"{key}={raw!r}: expected an integer in 1..10000")
        return value

    # -- checks before any work -------------------------------------------------------------

    def _api_key(self) -> str | None:
        env = self.params["api_key_env"]
        if not env:
            return None
        key = os.environ.get(env, "")
        if not key.strip():
            raise ConfigError(f"api_key_env={env}: the environment variable {env} is not set or empty",
                              fix=f"export {env}=... before running (the key is read from there and never recorded)")
        return key.strip()

    def check_available(self) -> None:
        if not self.params["url"]:
            raise ConfigError("model 'http' needs the server's address: --set url=http://HOST:PORT "
                              "(a server answering the OpenAI-style POST /v1/videos, e.g. MOVA behind SGLang)")
        self._api_key()
        parts = urllib.parse.urlsplit(self.params["url"])
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=min(10.0, float(self.params["timeout_s"]))):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot connect to {parts.scheme}://{parts.netloc} ({exc.strerror or exc})",
                              fix="start the video server first, or correct --set url=...") from None

    def validate_request(self, request: ClipRequest) -> None:
        if request.first_frame and not Path(request.first_frame).is_file():
            raise ConfigError(f"first_frame {request.first_frame!r} of prompt {request.prompt_id!r} does not exist")

    # -- one clip ---------------------------------------------------------------------------

    def _opener(self, auth: str | None) -> urllib.request.OpenerDirector:
        parts = urllib.parse.urlsplit(self.params["url"])
        handlers: list[Any] = [_SameHostAuthRedirect((parts.scheme, parts.netloc), auth)]
        if (parts.hostname or "") in LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))  # a local server is never reached through a proxy
        return urllib.request.build_opener(*handlers)

    def _mask(self, text: str, key: str | None) -> str:
        text = str(text)
        if key:
            text = text.replace(key, "***")
        return text

    def _call(self, opener, method: str, url: str, *, body: bytes | None, headers: dict[str, str], auth: str | None,
              key: str | None, deadline: _Deadline, stats: dict[str, Any], what: str, sink=None) -> tuple[int, dict, bytes]:
        """One HTTP exchange with retries. Returns (status, headers, body) of a 2xx answer; with
        ``sink`` (a binary file) the body is streamed there and ``b""`` returned."""
        attempt = 0
        max_retries = int(self.params["max_retries"])
        while True:
            left = deadline.left()
            if left <= 0:
                raise failure("timeout", f"timed out after {deadline.seconds:g} s ({what}); raise --set timeout_s=...")
            req = urllib.request.Request(url, data=body, method=method, headers=headers)
            if auth:
                req.add_unredirected_header("Authorization", auth)
            retry_reason, wait = None, None
            try:
                with opener.open(req, timeout=min(REQUEST_TIMEOUT_S, max(0.05, left))) as resp:
                    status = int(resp.status)
                    rheaders = {k.lower(): v for k, v in resp.headers.items()}
                    if sink is not None:
                        while True:
                            if deadline.left() <= 0:
                                raise failure("timeout", f"timed out after {deadline.seconds:g} s ({what}, downloading)")
                            block = resp.read(1 << 20)
                            if not block:
                                break
                            sink.write(block)
                        return status, rheaders, b""
                    data = resp.read(MAX_JSON_BYTES + 1)
                    if len(data) > MAX_JSON_BYTES:
                        raise failure("bad_response", f"{what}: the answer is larger than {MAX_JSON_BYTES >> 20} MiB; expected a JSON job object")
                    return status, rheaders, data
            except urllib.error.HTTPError as exc:
                code = int(exc.code)
                try:
                    detail = exc.read(2000).decode("utf-8", "replace")
                except Exception:  # noqa: BLE001 - the body is only quoted in the message
                    detail = ""
                detail = self._mask(" ".join(detail.split())[:300], key)
                if code in RETRY_STATUSES or code >= 500:
                    retry_reason = f"HTTP {code}"
                    wait = retry_after_s(exc.headers.get("Retry-After") if exc.headers else None)
                    last = f"HTTP {code} {exc.reason}" + (f": {detail}" if detail else "")
                else:
                    hint = {401: "check the key in the variable named by api_key_env",
                            403: "check the key's permissions",
                            404: "is --set url the server's root (it must answer /v1/videos)?"}.get(code, "")
                    raise failure("http_error", f"{what}: HTTP {code} {exc.reason}" + (f": {detail}" if detail else "")
                                  + (f" ({hint})" if hint else "")) from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                retry_reason = "connection error"
                last = self._mask(f"{type(reason).__name__}: {reason}", key)
            if attempt >= max_retries:
                raise failure("http_error", f"{what}: {last} (gave up after {attempt} retr{'y' if attempt == 1 else 'ies'})")
            delay = wait if wait is not None else min(MAX_BACKOFF_S, float(self.params["backoff_s"]) * (2 ** attempt))
            if delay >= deadline.left():
                raise failure("timeout", f"timed out after {deadline.seconds:g} s ({what}: {last}; the next retry "
                              f"would be in {delay:g} s)")
            attempt += 1
            stats["retries"] = stats.get("retries", 0) + 1
            stats.setdefault("retry_reasons", []).append(retry_reason)
            if sink is not None:
                sink.seek(0)
                sink.truncate()
            time.sleep(delay)

    def _json(self, data: bytes, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            snippet = data[:120].decode("utf-8", "replace")
            raise failure("bad_response", f"{what}: the answer is not JSON ({exc.__class__.__name__}: {exc}); "
                          f"it starts with {snippet!r}") from None
        if not isinstance(doc, dict):
            raise failure("bad_response", f"{what}: expected a JSON object (a video job), got {type(doc).__name__}")
        return doc

    def _body(self, request: ClipRequest) -> tuple[dict[str, Any], dict[str, Any], bytes | None]:
        """(JSON fields, info, first-frame PNG or None)."""
        num_frames = int(round(request.duration_s * request.fps))
        fields: dict[str, Any] = {"prompt": request.prompt_text, "seconds": str(max(1, int(round(request.duration_s)))),
                                  "size": f"{request.width}x{request.height}"}
        if self.params["model"]:
            fields["model"] = self.params["model"]
        if self.params["extras"]:
            fps = float(request.fps)
            fields.update(num_frames=num_frames, fps=int(fps) if fps.is_integer() else fps, seed=int(request.seed))
            if self.params["guidance_scale"] != "":
                fields["guidance_scale"] = float(self.params["guidance_scale"])
            if self.params["steps"] != "":
                fields["num_inference_steps"] = int(self.params["steps"])
            if self.params["negative_prompt"]:
                fields["negative_prompt"] = self.params["negative_prompt"]
        info: dict[str, Any] = {"first_frame_source": None}
        png = None
        if request.first_frame:
            from PIL import Image

            from mova_bench.generators.mova import crop_and_resize

            with Image.open(request.first_frame) as im:
                img = im.convert("RGB")
            out, box = crop_and_resize(img, height=request.height, width=request.width)
            buf = io.BytesIO()
            out.save(buf, format="PNG")
            png = buf.getvalue()
            info.update(first_frame_source="suite", first_frame_crop_box=list(box))
        return fields, info, png

    def generate(self, request: ClipRequest) -> GeneratedClip:
        key = self._api_key()
        auth = f"Bearer {key}" if key else None
        base = self.params["url"]
        if not base:
            raise ConfigError("model 'http' needs --set url=http://HOST:PORT")
        deadline = _Deadline(float(self.params["timeout_s"]))
        slot = _Slot(base, int(self.params["concurrency"]))
        if not slot.acquire(deadline):
            raise failure("timeout", f"timed out after {deadline.seconds:g} s waiting for a free slot "
                          f"(concurrency={self.params['concurrency']} jobs in flight to {base})")
        try:
            return self._generate(request, key, auth, base, deadline)
        finally:
            slot.release()

    def _generate(self, request: ClipRequest, key: str | None, auth: str | None, base: str, deadline: _Deadline) -> GeneratedClip:
        t0 = time.monotonic()
        opener = self._opener(auth)
        stats: dict[str, Any] = {}
        fields, info, png = self._body(request)
        headers = {"Accept": "application/json", "User-Agent": "mova-bench"}
        if png is not None and self.params["request_format"] == "multipart":
            body, ctype = _multipart(fields, {"input_reference": ("first_frame.png", "image/png", png)})
        else:
            if png is not None:
                fields["input_reference"] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            body, ctype = json.dumps(fields).encode("utf-8"), "application/json"
        headers["Content-Type"] = ctype
        _, _, data = self._call(opener, "POST", f"{base}/v1/videos", body=body, headers=headers, auth=auth, key=key,
                                deadline=deadline, stats=stats, what="POST /v1/videos")
        job = self._json(data, "POST /v1/videos")
        job_id = job.get("id")
        if not isinstance(job_id, (str, int)) or not str(job_id).strip():
            raise failure("bad_response", f"POST /v1/videos: the answer has no job 'id' (keys: {', '.join(sorted(job)) or 'none'})")
        job_id = str(job_id)
        quoted = urllib.parse.quote(job_id, safe="")
        polls = 0
        status = str(job.get("status") or "").lower()
        while status not in COMPLETED:
            if status in FAILED:
                err = job.get("error")
                msg = err.get("message") or err.get("code") if isinstance(err, dict) else err
                raise failure("job_failed", f"job {job_id} {status}: {self._mask(msg or 'no error message', key)}")
            if deadline.left() <= float(self.params["poll_interval_s"]):
                progress = job.get("progress")
                raise failure("timeout", f"timed out after {deadline.seconds:g} s waiting for job {job_id} "
                              f"(last status {status or 'unknown'!r}" + (f", progress {progress}%" if progress is not None else "")
                              + "); raise --set timeout_s=...")
            time.sleep(float(self.params["poll_interval_s"]))
            polls += 1
            _, _, data = self._call(opener, "GET", f"{base}/v1/videos/{quoted}", body=None, headers={"Accept": "application/json"},
                                    auth=auth, key=key, deadline=deadline, stats=stats, what=f"GET /v1/videos/{job_id}")
            job = self._json(data, f"GET /v1/videos/{job_id}")
            if "status" not in job:
                raise failure("bad_response", f"GET /v1/videos/{job_id}: the answer has no 'status'")
            status = str(job.get("status") or "").lower()
        with tempfile.TemporaryDirectory(prefix="mova-bench-http-") as tmp:
            path = Path(tmp) / "content.mp4"
            with open(path, "wb") as sink:
                _, rheaders, _ = self._call(opener, "GET", f"{base}/v1/videos/{quoted}/content", body=None,
                                            headers={"Accept": "video/mp4, */*"}, auth=auth, key=key, deadline=deadline,
                                            stats=stats, what=f"GET /v1/videos/{job_id}/content", sink=sink)
            ctype = rheaders.get("content-type", "")
            from mova_bench.generators.clipfile import read_clip

            try:
                clip = read_clip(path)
            except MediaError as exc:
                raise MediaError(exc.reason, f"the download of job {job_id} is not a usable clip "
                                 f"(Content-Type {ctype or 'none'}, {path.stat().st_size} bytes): {exc.detail}") from None
        info.update(clip.info)
        info.update(http_job_id=job_id, http_polls=polls, http_retries=int(stats.get("retries", 0)),
                    http_seconds=round(time.monotonic() - t0, 3), http_content_type=ctype or None)
        if stats.get("retry_reasons"):
            info["http_retry_reasons"] = stats["retry_reasons"]
        for k in ("model", "seconds", "size"):
            if job.get(k) is not None:
                info[f"server_{k}"] = job[k]
        return finish_clip(request, clip.video, clip.audio, clip.fps, clip.sample_rate, info, source_data=clip.data)


def _multipart(fields: dict[str, Any], files: dict[str, tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "mova-bench-" + uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n".encode())
        out.write(str(v).encode("utf-8") + b"\r\n")
    for k, (filename, ctype, data) in files.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{filename}\"\r\n"
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


__all__ = ["HttpGenerator", "normalize_url", "retry_after_s"]
