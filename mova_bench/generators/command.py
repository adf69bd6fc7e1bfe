"""Any command line that writes a clip: ``--set argv='["python","gen.py","--prompt","{prompt}","--out","{out}"]'``.

``argv`` is a JSON list of strings, run as an argument list (never through a shell), once per
clip, in ``cwd`` (default: the current folder), with a ``timeout_s``. Placeholders in any element:

==================  =============================================================================
``{prompt}``        the prompt text            ``{seed}``           the clip's seed
``{out}``           where to write the clip (an .mp4 path in a fresh temporary folder; required)
``{first_frame}``   the suite's first-frame image (see ``first_frame_fallback`` when there is none)
``{num_frames}``    ``{fps}``  ``{width}``  ``{height}``  ``{sample_rate}``  ``{duration_s}``
``{clip_id}``       ``{prompt_id}``
``{video}``         the input video, only for the audio stage of a ``cascade`` (video-to-audio)
==================  =============================================================================

``{{`` and ``}}`` are literal braces; any other ``{name}`` is an error before anything runs.
Without a first frame, ``first_frame_fallback`` says what ``{first_frame}`` becomes: ``drop``
(default: the element is removed, and so is the option before it when it starts with ``-``),
``white`` (a white PNG of the request size, as MOVA's script does) or ``empty`` (an empty string).

A non-zero exit status, the timeout (the whole process group is killed) and a missing or unusable
output file are per-clip failures; their message ends with the tail of the command's stderr.
The file is decoded with PyAV (full size, audio channels kept) and checked like every adapter's
output (:mod:`mova_bench.generators.audio_check`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mova_bench.errors import ConfigError, MediaError, MissingDependencyError
from mova_bench.generators.audio_check import finish_clip
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator
from mova_bench.generators.common import failure

PLACEHOLDERS = ("prompt", "seed", "out", "first_frame", "num_frames", "fps", "width", "height", "sample_rate",
                "duration_s", "clip_id", "prompt_id", "video")
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
FALLBACKS = ("drop", "white", "empty")
#: characters of stderr kept in a failure message / in ``info`` of a clip that worked
STDERR_TAIL_FAIL = 2000
STDERR_TAIL_OK = 500


def parse_argv(raw: Any) -> list[str]:
    """``argv`` from ``--set`` (a JSON list as text) or a card (a YAML list)."""
    if isinstance(raw, (list, tuple)):
        argv = list(raw)
    else:
        text = str(raw or "").strip()
        if not text:
            raise ConfigError("model 'command' needs the command to run: --set argv='[\"python\",\"gen.py\","
                              "\"--prompt\",\"{prompt}\",\"--seed\",\"{seed}\",\"--out\",\"{out}\"]' (a JSON list)")
        try:
            argv = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"argv={text!r} is not a JSON list ({exc.msg} at character {exc.pos}); "
                              "write it like '[\"python\",\"gen.py\",\"--out\",\"{out}\"]' (double quotes, no shell syntax)") from None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in argv):
        raise ConfigError(f"argv={raw!r}: expected a non-empty JSON list of strings, e.g. [\"python\",\"gen.py\",\"--out\",\"{{out}}\"]")
    argv = [str(a) for a in argv]
    used = placeholders_in(argv)
    if "out" not in used:
        raise ConfigError(f"argv {json.dumps(argv)} has no {{out}}: the command must write its clip to the path "
                          "mova-bench gives it, e.g. \"--out\",\"{out}\"")
    return argv


def placeholders_in(argv: list[str]) -> set[str]:
    used: set[str] = set()
    for a in argv:
        for m in _TOKEN.finditer(a):
            name = m.group(1)
            if name is None:
                continue
            if name not in PLACEHOLDERS:
                raise ConfigError(f"argv element {a!r} has an unknown placeholder {{{name}}}. Valid placeholders: "
                                  f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)} ({{{{ and }}}} for literal braces)")
            used.add(name)
    return used


def substitute(argv: list[str], values: dict[str, str | None]) -> list[str]:
    """Fill placeholders; an element that is exactly a placeholder whose value is None is dropped,
    with the option before it when that starts with ``-``."""
    out: list[str] = []
    for a in argv:
        whole = _TOKEN.fullmatch(a)
        if whole and whole.group(1) and values.get(whole.group(1)) is None:
            if out and out[-1].startswith("-") and not _is_number(out[-1]):
                out.pop()
            continue

        def repl(m: re.Match) -> str:
            if m.group(0) == "{{":
                return "{"
            if m.group(0) == "}}":
                return "}"
            v = values.get(m.group(1))
            return "" if v is None else str(v)

        out.append(_TOKEN.sub(repl, a))
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return text.strip()


class CommandGenerator(Generator):
    name = "command"
    params_schema = {
        "argv": "",
        "timeout_s": 3600.0,
        "cwd": "",
        "first_frame_fallback": "drop",
    }

    #: ``generator`` (a whole clip), ``video`` (first stage of a cascade: audio not needed) or
    #: ``audio`` (second stage of a cascade: ``{video}`` is the input). Set by the cascade.
    role = "generator"

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        defaults = dict(card_defaults or {})
        for src in (defaults, params):  # a YAML list in a card, JSON text from --set: one canonical JSON text
            if isinstance(src.get("argv"), (list, tuple)):
                src["argv"] = json.dumps([str(a) for a in src["argv"]])
        super().__init__(card_defaults=defaults, card=card, **params)
        p = self.params
        self.argv = parse_argv(p["argv"]) if str(p["argv"]).strip() else None
        if self.argv is not None:
            p["argv"] = json.dumps(self.argv)
        timeout = float(p["timeout_s"])
        if not (timeout > 0 and timeout != float("inf")):
            raise ConfigError(f"timeout_s={p['timeout_s']}: expected a positive number of seconds")
        fb = str(p["first_frame_fallback"]).strip().lower()
        if fb not in FALLBACKS:
            raise ConfigError(f"first_frame_fallback={p['first_frame_fallback']!r}: expected one of {', '.join(FALLBACKS)} "
                              "(drop: remove {first_frame} and its option; white: a white PNG; empty: an empty string)")
        p["first_frame_fallback"] = fb

    # -- checks before any work -------------------------------------------------------------

    def _executable(self) -> str:
        if self.argv is None:
            parse_argv("")  # raises the "needs --set argv" ConfigError
        exe = self.argv[0]
        cwd = Path(self.params["cwd"]).expanduser() if self.params["cwd"] else Path.cwd()
        if os.sep in exe or (os.altsep and os.altsep in exe):
            path = Path(exe).expanduser()
            path = path if path.is_absolute() else cwd / path
            if not path.is_file() or not os.access(path, os.X_OK):
                raise MissingDependencyError(f"the command {exe!r} (argv[0]) is not an executable file "
                                             f"({'missing' if not path.exists() else 'not executable'}: {path})")
            return str(path)
        found = shutil.which(exe)
        if not found:
            raise MissingDependencyError(f"the command {exe!r} (argv[0]) is not on PATH",
                                         fix="install it, or give its full path as the first element of argv")
        return found

    def check_available(self) -> None:
        if self.params["cwd"] and not Path(self.params["cwd"]).expanduser().is_dir():
            raise ConfigError(f"cwd={self.params['cwd']!r} is not a folder")
        self._executable()
        used = placeholders_in(self.argv)
        if "video" in used and self.role != "audio":
            raise ConfigError("argv uses {video}, the input of a video-to-audio stage: use this command as the audio "
                              "stage of a cascade (--model cascade --set video=... --set audio=command --set audio.argv=...)")
        if self.role == "audio" and "video" not in used:
            raise ConfigError("the audio stage of a cascade gets the generated video as {video}; its argv has none")

    def validate_request(self, request: ClipRequest) -> None:
        if request.first_frame and not Path(request.first_frame).is_file():
            raise ConfigError(f"first_frame {request.first_frame!r} of prompt {request.prompt_id!r} does not exist")

    # -- one clip ---------------------------------------------------------------------------

    def _values(self, request: ClipRequest, out: Path, tmp: Path, video: str | None) -> tuple[dict[str, str | None], str | None]:
        values: dict[str, str | None] = {
            "prompt": request.prompt_text, "seed": str(request.seed), "out": str(out),
            "num_frames": str(int(round(request.duration_s * request.fps))), "fps": _fmt(request.fps),
            "width": str(request.width), "height": str(request.height), "sample_rate": str(request.sample_rate),
            "duration_s": _fmt(request.duration_s), "clip_id": request.clip_id, "prompt_id": request.prompt_id,
            "video": video,
        }
        source = None
        if request.first_frame:
            values["first_frame"], source = str(Path(request.first_frame).resolve()), "suite"
        elif self.params["first_frame_fallback"] == "white":
            from PIL import Image

            white = tmp / "first_frame_white.png"
            Image.new("RGB", (request.width, request.height), (255, 255, 255)).save(white)
            values["first_frame"], source = str(white), "white_fallback"
        elif self.params["first_frame_fallback"] == "empty":
            values["first_frame"] = ""
        else:
            values["first_frame"] = None
        return values, source

    def run_command(self, request: ClipRequest, *, video: str | None = None, require_audio: bool = True):
        """Run the command for ``request``; returns (FileClip, info)."""
        from mova_bench.generators.clipfile import read_clip

        exe = self._executable()
        cwd = str(Path(self.params["cwd"]).expanduser()) if self.params["cwd"] else None
        timeout = float(self.params["timeout_s"])
        with tempfile.TemporaryDirectory(prefix="mova-bench-cmd-") as tmpdir:
            tmp = Path(tmpdir)
            out = tmp / "out.mp4"
            values, ff_source = self._values(request, out, tmp, video)
            argv = substitute(self.argv, values)
            argv[0] = exe
            err_path, out_path = tmp / "stderr.txt", tmp / "stdout.txt"
            t0 = time.monotonic()
            with open(err_path, "wb") as err, open(out_path, "wb") as so:
                try:
                    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=so, stderr=err,
                                            start_new_session=True)  # its own process group: a timeout kills it all
                except OSError as exc:
                    raise failure("command_failed", f"could not start {argv[0]!r}: {exc.strerror or exc}") from None
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    tail = _tail(err_path, STDERR_TAIL_FAIL)
                    raise failure("timeout", f"the command timed out after {timeout:g} s and was killed "
                                  "(raise --set timeout_s=...)" + (f"; stderr tail:\n{tail}" if tail else "")) from None
            seconds = round(time.monotonic() - t0, 3)
            if code != 0:
                tail = _tail(err_path, STDERR_TAIL_FAIL) or _tail(out_path, STDERR_TAIL_FAIL)
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                raise failure("command_failed", f"the command {how}" + (f"; stderr tail:\n{tail}" if tail else " (no output)"))
            if not out.exists():
                tail = _tail(err_path, STDERR_TAIL_FAIL)
                raise MediaError("missing", "the command exited 0 but wrote nothing at {out}" + (f"; stderr tail:\n{tail}" if tail else ""),
                                 str(out))
            clip = read_clip(out, require_audio=require_audio)
            info: dict[str, Any] = {"command_seconds": seconds, "command_exit_status": 0}
            if ff_source is not None or request.first_frame is None:
                info["first_frame_source"] = ff_source
            tail = _tail(err_path, STDERR_TAIL_OK)
            if tail:
                info["command_stderr_tail"] = tail
            return clip, {**info, **clip.info}

    def generate(self, request: ClipRequest) -> GeneratedClip:
        if self.role == "audio":
            raise ConfigError("this command is the audio stage of a cascade; it runs through the cascade")
        clip, info = self.run_command(request, require_audio=self.role != "video")
        audio = clip.audio
        if self.role == "video":
            import numpy as np

            if audio is not None:
                info["video_stage_audio_discarded"] = True
            return GeneratedClip(video=clip.video, audio=np.zeros(0, np.float32), fps=clip.fps,
                                 sample_rate=clip.sample_rate or request.sample_rate, info=info)
        return finish_clip(request, clip.video, audio, clip.fps, clip.sample_rate, info, source_data=clip.data)

    def generate_audio(self, request: ClipRequest, video_path: str) -> tuple[Any, dict[str, Any]]:
        """The cascade's second stage: run with ``{video}`` = ``video_path``; returns (FileClip, info)."""
        return self.run_command(request, video=video_path, require_audio=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the process group this adapter started (the command and anything it spawned)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


__all__ = ["CommandGenerator", "PLACEHOLDERS", "parse_argv", "substitute"]
