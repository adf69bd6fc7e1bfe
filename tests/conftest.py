from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own feature cache / reference folder, never the user's."""
    home = os.environ.get("MOVA_BENCH_TEST_HOME") or str(tmp_path_factory.getbasetemp() / "mova-home")
    monkeypatch.setenv("MOVA_BENCH_HOME", home)


def make_av(path, *, seconds=2.0, fps=24.0, sr=48000, width=128, height=72, channels=1, events=(0.5, 1.25),
            video=True, audio=True):
    """Write a small real MP4 (H.264/AAC) with flashes and clicks at ``events`` seconds."""
    import av
    from fractions import Fraction

    from mova_bench.media import write_mp4

    n = int(round(seconds * fps))
    frames = np.full((n, height, width, 3), 40, np.uint8)
    wav = np.zeros((int(seconds * sr), channels), np.float32)
    rng = np.random.default_rng(0)
    wav += 0.01 * rng.standard_normal(wav.shape).astype(np.float32)
    for t in [t for t in events if t < seconds - 0.1]:
        k = int(round(t * fps))
        frames[k : k + 2] = 230
        s = int(t * sr)
        burst = np.exp(-np.arange(int(0.05 * sr)) / (0.01 * sr)) * rng.standard_normal(int(0.05 * sr))
        m = min(burst.size, wav.shape[0] - s)
        wav[s : s + m] += 0.6 * burst[:m, None].astype(np.float32)
    if video and audio:
        write_mp4(path, frames, fps, wav, sr)
        return path
    with av.open(str(path), "w", format="mp4") as c:
        if video:
            vs = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            for i in range(n):
                f = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                f.pts = i
                for p in vs.encode(f):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
        if audio:
            as_ = c.add_stream("aac", rate=sr)
            as_.layout = "mono"
            for start in range(0, wav.shape[0], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wav[start : start + 1024].T), format="fltp", layout="mono")
                af.sample_rate = sr
                af.pts = start
                for p in as_.encode(af):
                    c.mux(p)
            for p in as_.encode():
                c.mux(p)
    return path


from mova_bench.generators.procedural import ProceduralGenerator  # noqa: E402


class FlakyGenerator(ProceduralGenerator):
    """A generator that fails on every clip of the prompt 'drum' (for per-clip failure tests)."""

    name = "flaky"

    def generate(self, request):
        if request.prompt_id == "drum":
            raise RuntimeError("out of memory while sampling (simulated)")
        return super().generate(request)
