"""Media I/O with PyAV (in-process FFmpeg): write MP4 (H.264 + AAC), decode once, classify bad media.

Conventions (recorded in every feature's cache key through ``DECODE_CONVENTION``):

* Video is decoded to RGB24 and scaled (bilinear, aspect kept, never upscaled) so its longer side
  is at most ``max_side`` pixels; all weight-free analysis happens at that size.
* Frame times come from the stream's presentation timestamps, so a stream that starts late (or an
  audio stream with encoder priming) keeps its place on the shared timeline.
* Audio is mixed to mono by the mean over channels and kept at its native rate; other rates come
  from :meth:`DecodedClip.audio_at`, which resamples with soxr ("HQ" quality). soxr is the one
  resampler of the project.
* Extractors that need other frame sizes declare :class:`VideoNeed` s; the same decode pass
  converts every decoded frame once per need with libswscale (PyAV ``VideoFrame.reformat``), so a
  clip is demuxed and decoded once whatever the number of sizes (:meth:`DecodedClip.frames`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.errors import MediaError

RESAMPLER = "soxr-hq"
DEFAULT_MAX_SIDE = 256
MIN_DURATION_S = 0.5
DECODE_CONVENTION = {"decoder": "pyav", "pix_fmt": "rgb24", "scale": "bilinear-fit", "mono": "mean", "resampler": RESAMPLER}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def fps_fraction(fps: float) -> Fraction:
    """29.97 → 30000/1001; integers stay integers."""
    for num, den in ((24000, 1001), (30000, 1001), (60000, 1001)):
        if abs(fps - num / den) < 1e-3:
            return Fraction(num, den)
    return Fraction(fps).limit_denominator(1001)


INTERPOLATIONS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "area": "AREA"}
NEED_MODES = ("fit", "short_side", "exact", "native")


@dataclass(frozen=True)
class VideoNeed:
    """Frames one extractor needs, produced by the decoder (libswscale) while decoding.

    ``mode``:

    * ``"fit"``: longer side ≤ ``size``, aspect kept, never upscaled, both sides rounded to even
      (the analysis frames ``clip.video`` are ``VideoNeed("fit", 256)``);
    * ``"short_side"``: shorter side = ``size`` (up- or downscaled), the other side
      ``round(long·size/short)``, aspect kept (then centre-crop yourself where a reference does);
    * ``"exact"``: ``size = (width, height)``, aspect not kept (TF I3D / cd-fvd style);
    * ``"native"``: the stream's own size (``size`` ignored): a backbone that must match a
      reference package's resize exactly resizes these itself in torch.

    ``interpolation``: ``"bilinear"`` | ``"bicubic"`` | ``"area"`` (libswscale's ``SWS_BILINEAR``,
    ``SWS_BICUBIC``, ``SWS_AREA``; not bit-equal to OpenCV's or torch's kernels of the same name).

    Memory: rows are uint8 RGB, so a need costs T·H·W·3 bytes per clip held in memory while its
    clip is analysed. ``"native"`` on a 1280×720 clip of 8 s at 24 fps is 192 × 2.76 MB ≈ 531 MB (a
    pool worker per core multiplies it). Two bounds keep only the frames a backbone uses:

    * ``fps``: keep the first decoded frame of every ``1/fps`` interval counted from the first
      frame's presentation time (frames at ``t0 + k/fps`` for a constant-rate stream whose rate
      is a multiple of ``fps``; every frame when ``fps`` ≥ the stream's rate);
    * ``max_frames``: keep at most this many (the first ones, after ``fps``).

    E.g. ``VideoNeed("native", fps=8)`` on that clip holds 64 frames (177 MB),
    ``VideoNeed("native", max_frames=16)`` 16 (44 MB). The kept frames' times are
    :meth:`DecodedClip.frame_times`.
    """

    mode: str
    size: int | tuple[int, int] = 0
    interpolation: str = "bilinear"
    fps: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        from mova_bench.errors import ConfigError

        if self.mode not in NEED_MODES:
            raise ConfigError(f"VideoNeed mode {self.mode!r}: expected one of {', '.join(NEED_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"VideoNeed interpolation {self.interpolation!r}: expected one of {', '.join(INTERPOLATIONS)}")
        if self.mode == "exact":
            ok = isinstance(self.size, tuple) and len(self.size) == 2 and all(isinstance(v, int) and v > 0 for v in self.size)
            if not ok:
                raise ConfigError(f"VideoNeed('exact', size={self.size!r}): expected size=(width, height), two positive integers")
        elif self.mode in ("fit", "short_side") and not (isinstance(self.size, int) and self.size > 0):
            raise ConfigError(f"VideoNeed({self.mode!r}, size={self.size!r}): expected a positive integer size in pixels")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"VideoNeed fps={self.fps!r}: expected a positive number of frames per second, or None for every frame")
        if self.max_frames is not None and not (isinstance(self.max_frames, int) and self.max_frames > 0):
            raise ConfigError(f"VideoNeed max_frames={self.max_frames!r}: expected a positive integer, or None for no bound")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of this need's frames for a ``width``×``height`` stream."""
        if self.mode == "native":
            return width, height
        if self.mode == "exact":
            return self.size  # type: ignore[return-value]
        if self.mode == "fit":
            return _fit_size(width, height, int(self.size))
        s = int(self.size)
        if width <= height:
            return s, max(1, int(round(height * s / width)))
        return max(1, int(round(width * s / height))), s

    def identity(self) -> dict[str, Any]:
        """What enters the cache identity of the extractors that declare this need."""
        size = list(self.size) if isinstance(self.size, tuple) else (0 if self.mode == "native" else self.size)
        return {"mode": self.mode, "size": size, "interpolation": self.interpolation, "scaler": "libswscale",
                "fps": self.fps, "max_frames": self.max_frames}


#: the need that ``clip.video`` answers (today's analysis frames)
def analysis_need(max_side: int = DEFAULT_MAX_SIDE) -> VideoNeed:
    return VideoNeed("fit", int(max_side), "bilinear")


class _NeedFrames:
    """Frames of one need, collected while decoding (time-sampled and bounded as the need says)."""

    def __init__(self, need: VideoNeed, src_w: int, src_h: int):
        self.need = need
        self.width, self.height = need.output_size(src_w, src_h)
        self.interp = INTERPOLATIONS[need.interpolation]
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self._t0: float | None = None
        self._last_bin = -1

    def wants(self, t: float) -> bool:
        need = self.need
        if need.max_frames is not None and len(self.frames) >= need.max_frames:
            return False
        if need.fps is None:
            return True
        if self._t0 is None:
            self._t0 = t
        k = int(np.floor((t - self._t0) * need.fps + 1e-6))
        if k <= self._last_bin:
            return False
        self._last_bin = k
        return True

    def add(self, fr: Any, t: float) -> None:
        if not self.wants(t):
            return
        if self.need.mode == "native":
            arr = fr.to_ndarray(format="rgb24")
        else:
            arr = fr.reformat(width=self.width, height=self.height, format="rgb24", interpolation=self.interp).to_ndarray()
        self.frames.append(arr)
        self.times.append(t)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        times = np.asarray(self.times, dtype=np.float64)
        order = np.argsort(times, kind="stable")
        if not self.frames:
            return np.zeros((0, self.height, self.width, 3), np.uint8), times
        return np.stack([self.frames[i] for i in order]), times[order]


@dataclass
class DecodedClip:
    """One clip decoded once and shared by every extractor of a run."""

    video: np.ndarray  # (T, H, W, 3) uint8 at analysis size
    video_times: np.ndarray  # (T,) seconds, presentation time of each frame
    fps: float
    audio: np.ndarray  # (N,) float32 mono in [-1, 1]
    sample_rate: int
    audio_start: float  # seconds, time of audio sample 0
    source_width: int
    source_height: int
    source_channels: int
    duration_s: float
    path: str | None = None
    content_hash: str | None = None
    #: the prompt (UTF-8) when an extractor declares ``uses_text``; None when unknown
    prompt_text: str | None = None
    max_side: int = DEFAULT_MAX_SIDE
    _resampled: dict = field(default_factory=dict, repr=False)
    #: frames of the declared :class:`VideoNeed` s: need -> (frames, times)
    _need_frames: dict = field(default_factory=dict, repr=False)

    @property
    def n_frames(self) -> int:
        return int(self.video.shape[0])

    def frames(self, need: VideoNeed) -> np.ndarray:
        """(T, H, W, 3) uint8 frames of ``need`` (decoded in the same pass as ``clip.video``); one
        row per ``clip.video_times`` entry unless the need samples by ``fps`` or bounds
        ``max_frames`` (then one row per :meth:`frame_times` entry)."""
        return self._need(need)[0]

    def frame_times(self, need: VideoNeed) -> np.ndarray:
        """(T,) presentation times (s) of the rows of :meth:`frames` for ``need``."""
        return self._need(need)[1]

    def _need(self, need: VideoNeed) -> tuple[np.ndarray, np.ndarray]:
        if need in self._need_frames:
            return self._need_frames[need]
        if need == analysis_need(self.max_side) and need.fps is None and need.max_frames is None:
            return self.video, self.video_times
        from mova_bench.errors import ConfigError

        raise ConfigError(
            f"frames for {need!r} were not decoded for this clip (decoded: "
            f"{[analysis_need(self.max_side), *self._need_frames] !r})",
            fix="declare the need in the extractor's video_needs (the analysis passes them to decode(needs=...))",
        )

    def audio_at(self, sample_rate: int) -> np.ndarray:
        """Mono audio at ``sample_rate`` (soxr HQ), cached per rate."""
        if sample_rate == self.sample_rate:
            return self.audio
        if sample_rate not in self._resampled:
            import soxr

            self._resampled[sample_rate] = soxr.resample(
                self.audio.astype(np.float64), self.sample_rate, sample_rate, quality="HQ"
            ).astype(np.float32)
        return self._resampled[sample_rate]

    def grey(self) -> np.ndarray:
        """(T, H, W) float32 luma in [0, 1] (BT.601 weights), cached."""
        if "grey" not in self._resampled:
            v = self.video.astype(np.float32)
            self._resampled["grey"] = (0.299 * v[..., 0] + 0.587 * v[..., 1] + 0.114 * v[..., 2]) / 255.0
        return self._resampled["grey"]


def add_h264_stream(container: Any, shape: tuple[int, ...], fps: float, *, crf: int, **options: str) -> Any:
    """An H.264 (yuv420p) stream for frames of ``shape`` (T, H, W, 3); odd sizes become even."""
    _, h, w, _ = shape
    rate = fps_fraction(float(fps))
    vs = container.add_stream("libx264", rate=rate)
    vs.width, vs.height, vs.pix_fmt = w + (w % 2), h + (h % 2), "yuv420p"
    vs.time_base = 1 / rate
    vs.options = {"crf": str(crf), "preset": "veryfast", **options}
    return vs


def encode_frames(container: Any, vs: Any, video: np.ndarray) -> None:
    """Encode every frame of ``video`` into ``vs`` (frame k at pts k; edge-padded to the stream's
    size) and flush the encoder."""
    import av

    h, w = video.shape[1:3]
    for i in range(video.shape[0]):
        frame = video[i]
        if (vs.height, vs.width) != (h, w):
            frame = np.pad(frame, ((0, vs.height - h), (0, vs.width - w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = i
        for packet in vs.encode(vf):
            container.mux(packet)
    for packet in vs.encode():
        container.mux(packet)


def write_mp4(
    path: str | os.PathLike,
    video: np.ndarray,
    fps: float,
    audio: np.ndarray,
    sample_rate: int,
    *,
    crf: int = 20,
    audio_bitrate: int = 128_000,
) -> None:
    """Write ``video`` (T, H, W, 3) uint8 and ``audio`` (N,) or (N, C) float in [-1, 1] as MP4.

    H.264 (yuv420p) + AAC, ``+faststart``. Video frame k has pts k/fps and audio sample 0 is at
    t = 0, so both streams start together. Odd sizes are padded by one pixel to even (yuv420p).
    The file is written to ``path`` directly; callers wanting atomicity write to a temp path.
    """
    import av

    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    n_ch = audio.shape[1]
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        vs = add_h264_stream(container, video.shape, fps, crf=crf, tune="zerolatency")
        as_ = container.add_stream("aac", rate=int(sample_rate))
        as_.layout = "mono" if n_ch == 1 else "stereo"
        as_.bit_rate = audio_bitrate
        as_.time_base = Fraction(1, int(sample_rate))
        encode_frames(container, vs, video)
        chunk = 1024
        clipped = np.clip(audio, -1.0, 1.0)
        for start in range(0, clipped.shape[0], chunk):
            block = np.ascontiguousarray(clipped[start : start + chunk].T)  # (C, n) planar
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout=as_.layout.name)
            af.sample_rate = int(sample_rate)
            af.pts = start
            for packet in as_.encode(af):
                container.mux(packet)
        for packet in as_.encode():
            container.mux(packet)


def _fit_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(w, h))
    nw, nh = max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)
    return nw, nh


def _looks_like_container(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head[:4] in (b"\x1aE\xdf\xa3", b"RIFF")


def decode(
    path: str | os.PathLike,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    require_audio: bool = True,
    require_video: bool = True,
    min_duration_s: float = MIN_DURATION_S,
    content_hash: str | None = None,
    needs: tuple[VideoNeed, ...] | list[VideoNeed] = (),
) -> DecodedClip:
    """Decode a clip once. Raises :class:`MediaError` with a reason for every kind of bad media.

    ``needs``: extra frame sizes (:class:`VideoNeed`), each produced from the same decoded frames
    by libswscale while decoding (one demux and decode pass for all); read them with
    :meth:`DecodedClip.frames`. ``clip.video`` is unchanged by them."""
    import av

    p = Path(path)
    if not p.exists():
        raise MediaError("missing", "file does not exist", str(p))
    if p.stat().st_size == 0:
        raise MediaError("empty", "file has 0 bytes", str(p))
    try:
        container = av.open(str(p), mode="r")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        if _looks_like_container(p):
            raise MediaError("truncated", f"container header present but unreadable ({exc})", str(p)) from None
        raise MediaError("not_media", f"FFmpeg cannot open it as media ({exc})", str(p)) from None
    with container:
        vstreams = list(container.streams.video)
        astreams = list(container.streams.audio)
        if require_video and not vstreams:
            raise MediaError("no_video_stream", "the file has no video stream", str(p))
        if require_audio and not astreams:
            raise MediaError("no_audio_stream", "the file has no audio stream; every metric of sound needs one", str(p))
        vstream, astream = vstreams[0], (astreams[0] if astreams else None)
        declared = float(container.duration / 1e6) if container.duration else None
        src_w, src_h = vstream.codec_context.width, vstream.codec_context.height
        avg_rate = float(vstream.average_rate) if vstream.average_rate else 0.0
        out_w, out_h = _fit_size(src_w, src_h, max_side)
        extra = [_NeedFrames(nd, src_w, src_h) for nd in dict.fromkeys(needs)]
        frames, times, chunks = [], [], []
        audio_start = None
        sr = int(astream.codec_context.sample_rate) if astream is not None else 0
        channels = int(astream.codec_context.channels) if astream is not None else 0
        streams = [vstream] + ([astream] if astream is not None else [])
        decode_error = None
        try:
            for packet in container.demux(*streams):
                for fr in packet.decode():
                    if isinstance(fr, av.VideoFrame):
                        frames.append(fr.to_ndarray(format="rgb24", width=out_w, height=out_h, interpolation="BILINEAR"))
                        times.append(float(fr.time) if fr.time is not None else len(times) / (avg_rate or 24.0))
                        for nf in extra:
                            nf.add(fr, times[-1])
                    else:
                        arr = fr.to_ndarray()
                        if arr.dtype.kind == "i":
                            arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
                        arr = arr.astype(np.float32)
                        if fr.format.is_planar:
                            mono = arr.mean(axis=0)
                        else:
                            mono = arr.reshape(-1, fr.layout.nb_channels).mean(axis=1)
                        if audio_start is None:
                            audio_start = float(fr.time) if fr.time is not None else 0.0
                        chunks.append(mono)
        except (av.error.FFmpegError, ValueError) as exc:
            decode_error = exc
    n = len(frames)
    if n == 0:
        raise MediaError("truncated", f"no video frame could be decoded ({decode_error or 'empty stream'})", str(p))
    times_arr = np.asarray(times, dtype=np.float64)
    order = np.argsort(times_arr, kind="stable")
    video = np.stack([frames[i] for i in order])
    times_arr = times_arr[order]
    fps = avg_rate if avg_rate > 0 else ((n - 1) / (times_arr[-1] - times_arr[0]) if n > 1 else 0.0)
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if require_audio and audio.size == 0:
        raise MediaError("truncated", "the audio stream holds no decodable samples", str(p))
    v_dur = times_arr[-1] - times_arr[0] + (1.0 / fps if fps else 0.0)
    a_dur = audio.size / sr if sr else 0.0
    duration = max(v_dur, a_dur)
    if decode_error is not None:
        # a decode error mid-stream is truncation whether or not the container declares a duration
        # (a streamed or fragmented file may declare none): never score the part before it silently
        of = f"of {declared:.2f}s" if declared else "(the container declares no duration)"
        raise MediaError("truncated", f"decoding stopped at {duration:.2f}s {of} ({decode_error})", str(p))
    if declared and duration < 0.8 * declared - 0.25:
        raise MediaError("truncated", f"only {duration:.2f}s of the declared {declared:.2f}s could be decoded", str(p))
    if duration < min_duration_s or n < 2:
        raise MediaError("too_short", f"{duration:.2f}s and {n} frame(s); need at least {min_duration_s}s", str(p))
    return DecodedClip(
        video=video,
        video_times=times_arr,
        fps=fps,
        audio=audio,
        sample_rate=sr,
        audio_start=float(audio_start or 0.0),
        source_width=src_w,
        source_height=src_h,
        source_channels=channels,
        duration_s=float(duration),
        path=str(p),
        content_hash=content_hash,
        max_side=int(max_side),
        _need_frames={nf.need: nf.result() for nf in extra},
    )


def probe_streams(path: str | os.PathLike) -> dict:
    """Cheap check used after generation: stream kinds, sizes and duration."""
    import av

    with av.open(str(path)) as c:
        return {
            "video": [{"width": s.codec_context.width, "height": s.codec_context.height, "fps": float(s.average_rate or 0)} for s in c.streams.video],
            "audio": [{"sample_rate": s.codec_context.sample_rate, "channels": s.codec_context.channels} for s in c.streams.audio],
            "duration_s": float(c.duration / 1e6) if c.duration else None,
        }
