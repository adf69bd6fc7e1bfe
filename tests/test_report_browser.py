"""The HTML report in a real browser: headless Chromium driven over the DevTools protocol.

One Chromium process for the module (``--remote-debugging-port=0``; the port is read from
``DevToolsActivePort`` in a temporary profile) and a minimal stdlib WebSocket client, so the test
needs no Python package beyond Pillow. It builds a real small run with the pipeline (MP4 clips,
one prompt carrying script-injection text) and loads its reports at 1280 px and at 420 px
(mobile emulation, so the viewport meta matters), asserting: no console errors or exceptions, the
page script ran under the page's Content-Security-Policy, every ``<video>`` links a file that
exists and whose metadata loads, nothing overflows horizontally, the screenshot is not blank, and
the injected prompt ran nothing (title unchanged, no dialog, no ``<img>``).

Chromium: Debian's ``chromium`` (``.ci/run`` installs it). Where ``CI=true`` a missing browser is
a failure; elsewhere the module is skipped. ``MOVA_BENCH_SCREENSHOTS=DIR`` keeps the screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import textwrap
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytestmark = pytest.mark.slow

XSS_IMG = "<img src=x onerror=\"document.title='pwned';alert(1)\">"
XSS_SCRIPT = "</script><script>document.title='pwned';alert(2)</script>"
XSS_PROMPT = f"A drummer hits a snare {XSS_IMG} and {XSS_SCRIPT} twice"


def _chromium() -> str | None:
    for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and os.access(c, os.X_OK):
            return c
    return None


# ----------------------------------------------------------------------------- a tiny CDP client


class CDP:
    """A WebSocket (RFC 6455) client just big enough for the DevTools protocol: text frames,
    masked client frames, fragmented and long server frames, ping/pong, close."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        head, self._buf = head.split(b"\r\n\r\n", 1)
        assert head.split(b"\r\n", 1)[0].split()[1] == b"101", head
        self._id = 0
        self.events: list[dict] = []

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send(self, payload: bytes, opcode: int = 1) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _message(self) -> dict:
        data = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode == 9:
                self._send(payload, opcode=10)
                continue
            if opcode in (0, 1, 2):
                data += payload
                if b0 & 0x80:
                    return json.loads(data)

    def call(self, method: str, session: str | None = None, timeout: float = 30.0, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self._send(json.dumps(msg).encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._message()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)
        raise TimeoutError(method)

    def _event(self, msg: dict) -> None:
        if "method" not in msg:
            return
        self.events.append(msg)
        if msg["method"] == "Page.javascriptDialogOpening":  # never leave a dialog blocking the page
            self._id += 1
            self._send(json.dumps({"id": self._id, "method": "Page.handleJavaScriptDialog", "sessionId": msg.get("sessionId"),
                                   "params": {"accept": False}}).encode())

    def wait_event(self, method: str, session: str, since: int, timeout: float = 30.0) -> dict:
        """The first ``method`` event of ``session`` from ``self.events[since:]`` on (waiting for it)."""
        start = since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events[start:]:
                if e["method"] == method and e.get("sessionId") == session:
                    return e
            start = len(self.events)
            self._event(self._message())
        raise TimeoutError(method)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Chromium is missing: .ci/run installs Debian's chromium (apt-get install chromium)")
        pytest.skip("Chromium not installed (Debian: apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = open(profile.parent / "chromium.log", "wb")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         "--no-first-run", "--no-default-browser-check", "--mute-audio", "--disable-extensions", "about:blank"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"Chromium did not start (exit {proc.poll()}):\n"
                            + (profile.parent / "chromium.log").read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        cdp = CDP(f"ws://127.0.0.1:{port}{path}")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


SUITE = textwrap.dedent(f"""\
    name: report_set
    version: 1
    description: 'report test <b onmouseover="document.title=1">suite</b>'
    defaults: {{duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 2, seed: 5}}
    reference: {{kind: procedural, samples_per_prompt: 2}}
    prompts:
      - id: drum
        text: {json.dumps(XSS_PROMPT)}
        tags: [impact, "<i>tag</i>"]
      - id: ball
        text: A red ball bounces on a wooden floor
        tags: [impact]
    """)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run of the procedural world (4 clips, default metrics): real MP4s and reports."""
    from mova_bench.pipeline import run

    tmp = tmp_path_factory.mktemp("report-run")
    (tmp / "report_set.yaml").write_text(SUITE)
    with pytest.MonkeyPatch.context() as mp:  # module scope: conftest's per-test home does not apply yet
        mp.setenv("MOVA_BENCH_HOME", str(tmp / "home"))
        outcome = run("procedural", str(tmp / "report_set.yaml"), out=tmp / "runs")
    assert outcome.n_failed == 0
    return Path(outcome.run_dir)


class Page:
    """One tab with a fixed viewport; ``open`` loads a file and returns what the checks need."""

    def __init__(self, cdp: CDP, width: int, height: int, mobile: bool):
        self.cdp = cdp
        target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
        self.target = target
        self.session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            cdp.call(f"{domain}.enable", session=self.session)
        cdp.call("Emulation.setDeviceMetricsOverride", session=self.session, width=width, height=height,
                 deviceScaleFactor=1, mobile=mobile)
        self.width = width

    def eval(self, expression: str, timeout: float = 30.0):
        r = self.cdp.call("Runtime.evaluate", session=self.session, expression=expression, returnByValue=True,
                          awaitPromise=True, timeout=timeout)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression[:80]}…: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, path: Path) -> list[dict]:
        start = len(self.cdp.events)
        self.cdp.call("Page.navigate", session=self.session, url=path.resolve().as_uri())
        self.cdp.wait_event("Page.loadEventFired", self.session, since=start, timeout=60)
        # every video on the shown page has its metadata (or an error) before we look
        self.eval("""new Promise(done => {
            const t0 = Date.now();
            (function poll() {
              const vs = [...document.querySelectorAll('video')].filter(v => !v.closest('[hidden]'));
              if (vs.every(v => v.readyState >= 1 || v.error) || Date.now() - t0 > 20000) return done(true);
              setTimeout(poll, 50);
            })();
        })""")
        return self.cdp.events[start:]

    def errors(self, events: list[dict]) -> list[str]:
        out = []
        for e in events:
            if e.get("sessionId") != self.session:
                continue
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails"))[:500])
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:500])
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(json.dumps(p["entry"])[:500])
            elif e["method"] == "Page.javascriptDialogOpening":
                out.append(f"dialog opened: {p.get('message')!r}")
        return out

    def screenshot(self, path: Path) -> Path:
        m = self.cdp.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        data = self.cdp.call("Page.captureScreenshot", session=self.session, format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": self.width, "height": min(m["height"], 16000), "scale": 1},
                             timeout=60)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.cdp.call("Target.closeTarget", targetId=self.target)


@pytest.fixture(scope="module", params=[(1280, 900, False), (420, 900, True)], ids=["1280px", "420px"])
def page(request, browser):
    p = Page(browser, *request.param)
    yield p
    p.close()


def _shots_dir(tmp_path: Path) -> Path:
    keep = os.environ.get("MOVA_BENCH_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(keep)
    return tmp_path


@pytest.mark.parametrize("which", ["run", "evaluation"])
def test_report_in_browser(page, run_dir, which, tmp_path):
    from PIL import Image

    report = run_dir / "report.html" if which == "run" else next((run_dir / "evals").glob("*/report.html"))
    events = page.open(report)
    assert page.errors(events) == []

    state = page.eval("""(() => ({
        title: document.title,
        gallery: document.documentElement.getAttribute('data-gallery'),
        scrollWidth: document.documentElement.scrollWidth,
        clientWidth: document.documentElement.clientWidth,
        imgs: document.querySelectorAll('img').length,
        scripts: document.scripts.length,
        text: document.body.innerText,
        svgs: document.querySelectorAll('figure svg').length,
        videos: [...document.querySelectorAll('video')].map(v => ({
            attr: v.getAttribute('src'), url: v.currentSrc || v.src, ready: v.readyState,
            error: v.error ? v.error.code : null, duration: v.duration})),
        wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right
               > document.documentElement.clientWidth + 1 && !e.closest('.scroll')).map(e => e.tagName + '.' + e.className)
    }))()""")

    # the injected prompt is text, and ran nothing
    assert state["title"] == json.loads((run_dir / "metrics.json").read_text())["title"]
    assert state["imgs"] == 0 and state["scripts"] == 1
    assert XSS_IMG in state["text"] and XSS_SCRIPT in state["text"]
    assert state["gallery"] == "ready"  # the page's own script ran (its CSP hash is right)

    # every clip plays from a relative link to a file that exists
    assert len(state["videos"]) == 4
    for v in state["videos"]:
        assert v["attr"] and not v["attr"].startswith(("/", "file:")), v
        assert Path(unquote(urlparse(v["url"]).path)).is_file(), v
        assert v["error"] is None and v["ready"] >= 1 and abs(v["duration"] - 1.5) < 0.2, v
    assert state["svgs"] >= 5

    # laid out at the device width (the viewport meta), nothing wider (tables scroll inside their own box)
    assert page.width - 20 <= state["clientWidth"] <= page.width, state["clientWidth"]
    assert state["scrollWidth"] <= state["clientWidth"], (state["scrollWidth"], state["clientWidth"], state["wide"][:10])
    assert state["wide"] == []

    shot = page.screenshot(_shots_dir(tmp_path) / f"report-{which}-{page.width}px.png")
    im = Image.open(shot).convert("RGB")
    assert im.size[0] == page.width and im.size[1] > 1500
    colors = im.getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 50, "screenshot is (nearly) one colour"


def test_gallery_sorts_and_pages(page, run_dir, monkeypatch):
    """With three clips per page: two pages, page buttons work, sorting puts the worst first."""
    from mova_bench.report import html

    monkeypatch.setattr(html, "PAGE_SIZE", 3)
    paged = run_dir / "report-paged.html"  # beside report.html, so the clip links are the same
    paged.write_text(html.render_report(run_dir, run_dir), encoding="utf-8")
    events = page.open(paged)
    assert page.errors(events) == []
    visible = "[...document.querySelectorAll('#gallery article')].filter(a => !a.hidden).map(a => a.dataset.order)"
    assert len(page.eval(visible)) == 3
    assert page.eval("document.querySelectorAll('#pager button').length") == 4  # prev, 1, 2, next
    page.eval("[...document.querySelectorAll('#pager button')].find(b => b.textContent === '2').click()")
    assert len(page.eval(visible)) == 1
    assert "4 of 4" in page.eval("document.getElementById('gallery-info').textContent")

    opts = page.eval("[...document.querySelectorAll('#sort option')].map(o => [o.value, o.textContent, o.dataset.dir])")
    col = next(o for o in opts if o[1].startswith("P(synthetic)"))
    assert col[2] == "desc"
    page.eval(f"(() => {{ const s = document.getElementById('sort'); s.value = {json.dumps(col[0])};"
              " s.dispatchEvent(new Event('change')); })()")
    values = page.eval(f"[...document.querySelectorAll('#gallery article')].map(a => parseFloat(a.dataset.v{col[0]}))")
    assert values == sorted(values, reverse=True) and len(values) == 4
    assert len(page.eval(visible)) == 3  # back to page 1
    paged.unlink()
