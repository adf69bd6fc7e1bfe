"""Decoder needs: every extractor's frame size from one decode pass (libswscale while decoding)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_av
from mova_bench.errors import ConfigError
from mova_bench.media import DEFAULT_MAX_SIDE, VideoNeed, _fit_size, decode

W, H, FPS, SECONDS = 320, 180, 24.0, 2.0


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    """A 320×180 clip with texture (random blocks), so resize kernels give different pixels."""
    from mova_bench.media import write_mp4

    rng = np.random.default_rng(7)
    n = int(SECONDS * FPS)
    blocks = rng.integers(0, 255, size=(n, H // 10, W // 10, 3), dtype=np.uint8)
    video = np.repeat(np.repeat(blocks, 10, axis=1), 10, axis=2)
    audio = (0.1 * rng.standard_normal(int(SECONDS * 48000))).astype(np.float32)
    path = tmp_path_factory.mktemp("needs") / "textured.mp4"
    write_mp4(path, video, FPS, audio, 48000)
    return path


def _previous_decode_frames(path, max_side=DEFAULT_MAX_SIDE):
    """The analysis frames exactly as the decoder made them before needs existed (one PyAV loop,
    ``to_ndarray(rgb24, fit size, BILINEAR)``, sorted by presentation time)."""
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        w, h = _fit_size(vs.codec_context.width, vs.codec_context.height, max_side)
        frames, times = [], []
        for fr in c.decode(vs):
            frames.append(fr.to_ndarray(format="rgb24", width=w, height=h, interpolation="BILINEAR"))
            times.append(float(fr.time))
    order = np.argsort(times, kind="stable")
    return np.stack([frames[i] for i in order]), np.asarray(times)[order]


NEEDS = (
    VideoNeed("fit", 224),
    VideoNeed("fit", 1024),  # never upscaled
    VideoNeed("short_side", 224, "bilinear"),
    VideoNeed("short_side", 224, "bicubic"),
    VideoNeed("exact", (224, 224), "bilinear"),
    VideoNeed("exact", (112, 64), "area"),
    VideoNeed("native"),
)


@pytest.fixture(scope="module")
def decoded(clip_path):
    return decode(clip_path, needs=NEEDS)


def test_sizes_of_every_mode(decoded):
    n = decoded.n_frames
    expected = {
        NEEDS[0]: (126, 224),  # longer side 224, aspect kept, even
        NEEDS[1]: (H, W),
        NEEDS[2]: (224, 398),  # shorter side 224: 320·224/180 = 398.2
        NEEDS[3]: (224, 398),
        NEEDS[4]: (224, 224),
        NEEDS[5]: (64, 112),
        NEEDS[6]: (H, W),
    }
    for need, (h, w) in expected.items():
        frames = decoded.frames(need)
        assert frames.shape == (n, h, w, 3) and frames.dtype == np.uint8, need
        np.testing.assert_array_equal(decoded.frame_times(need), decoded.video_times)
    # portrait stream: the shorter side is the width
    assert VideoNeed("short_side", 224).output_size(180, 320) == (224, 398)


def test_interpolations_differ_and_native_is_the_stream(decoded, clip_path):
    bil, bic = decoded.frames(NEEDS[2]), decoded.frames(NEEDS[3])
    assert not np.array_equal(bil, bic)
    assert np.abs(bil.astype(int) - bic.astype(int)).mean() > 0.1
    # "native" = PyAV's own rgb24 conversion at the stream size
    import av

    with av.open(str(clip_path)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    np.testing.assert_array_equal(decoded.frames(NEEDS[6])[0], first)
    # a need at the analysis size and method is the analysis frames themselves
    assert decoded.frames(VideoNeed("fit", DEFAULT_MAX_SIDE)) is decoded.video


def test_analysis_frames_are_byte_identical_to_the_previous_decoder(clip_path, decoded):
    before, times = _previous_decode_frames(clip_path)
    plain = decode(clip_path)
    np.testing.assert_array_equal(plain.video, before)
    np.testing.assert_array_equal(decoded.video, before)  # needs change nothing in clip.video
    np.testing.assert_array_equal(decoded.video_times, times)


def test_one_decode_pass_serves_every_need(clip_path, monkeypatch):
    import av

    opened, demuxed = [], []
    real_open = av.open

    class Counting:
        def __init__(self, c):
            self._c = c

        def __getattr__(self, name):
            return getattr(self._c, name)

        def __enter__(self):
            self._c.__enter__()
            return self

        def __exit__(self, *exc):
            return self._c.__exit__(*exc)

        def demux(self, *a, **k):
            demuxed.append(a)
            return self._c.demux(*a, **k)

    def counting_open(*a, **k):
        opened.append(a)
        return Counting(real_open(*a, **k))

    monkeypatch.setattr(av, "open", counting_open)
    clip = decode(clip_path, needs=NEEDS)
    assert len(opened) == 1 and len(demuxed) == 1
    assert all(clip.frames(n).shape[0] == clip.n_frames for n in NEEDS)


def test_time_sampling_and_frame_bound_keep_only_what_is_needed(clip_path):
    by_fps = VideoNeed("native", fps=8)
    first16 = VideoNeed("native", max_frames=16)
    both = VideoNeed("exact", (32, 32), fps=4, max_frames=3)
    clip = decode(clip_path, needs=(by_fps, first16, both))
    t = clip.frame_times(by_fps)
    assert clip.frames(by_fps).shape == (16, H, W, 3)  # 2 s at 8 fps from a 24 fps stream
    np.testing.assert_allclose(np.diff(t), 1 / 8, atol=1e-6)
    assert clip.frames(first16).shape[0] == 16
    np.testing.assert_array_equal(clip.frame_times(first16), clip.video_times[:16])
    assert clip.frames(both).shape == (3, 32, 32, 3)
    np.testing.assert_allclose(clip.frame_times(both), [0.0, 0.25, 0.5], atol=1e-6)
    # the sampled frames are the stream's frames at those times
    full = decode(clip_path, needs=(VideoNeed("native"),)).frames(VideoNeed("native"))
    np.testing.assert_array_equal(clip.frames(by_fps), full[::3])


def test_undecoded_need_and_bad_needs_say_what_to_do(decoded):
    with pytest.raises(ConfigError) as err:
        decoded.frames(VideoNeed("exact", (7, 7)))
    assert "video_needs" in (err.value.fix or "")
    for bad in (dict(mode="zoom"), dict(mode="fit", size=0), dict(mode="exact", size=224),
                dict(mode="fit", size=224, interpolation="lanczos"), dict(mode="native", fps=0),
                dict(mode="native", max_frames=0)):
        with pytest.raises(ConfigError):
            VideoNeed(**bad)


def test_needs_enter_the_cache_identity():
    from mova_bench.features.base import TorchBackbone

    class A(TorchBackbone):
        name = "needs-a"
        video_needs = (VideoNeed("short_side", 224, "bicubic"),)

    class B(A):
        video_needs = (VideoNeed("short_side", 224, "bilinear"),)

    pa, pb = A().preprocessing(), B().preprocessing()
    assert pa["video_needs"] != pb["video_needs"]
    assert pa["video_needs"][0]["interpolation"] == "bicubic" and pa["video_needs"][0]["scaler"] == "libswscale"
