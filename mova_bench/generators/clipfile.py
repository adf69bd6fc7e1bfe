"""Clips that an adapter receives as files (an HTTP download, a command's output, a folder).

:func:`read_clip` decodes a file with PyAV in-process at its full size, keeping its audio channels
(``mova_bench.media.decode`` scales frames down and mixes audio to mono for analysis; an adapter
must hand the harness what the model made). Bad files raise :class:`MediaError` with the same
reasons as ``media.decode``: ``missing``, ``empty``, ``not_media``, ``truncated``,
``no_video_stream``, ``no_audio_stream``.

:func:`write_video_only` writes frames without an audio stream (the input of a video-to-audio
stage in a cascade).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.errors import MediaError


@dataclass
class FileClip:
    video: np.ndarray  # (T, H, W, 3) uint8, full size
    audio: np.ndarray | None  # (N,) or (N, C) float32, None when the file has no audio stream
    fps: float
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)
    #: the file's own bytes when it is an MP4-family container with video and audio: a run folder
    #: stores them as they are instead of a lossy re-encode of the decoded frames
    data: bytes | None = None


#: containers whose bytes a run folder stores as a clip ``.mp4`` (PyAV names the ISO-BMFF demuxer so)
STORABLE_FORMATS = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2")


def _looks_like_container(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head[:4] in (b"\x1aE\xdf\xa3", b"RIFF")


def read_clip(path: str | os.PathLike, *, require_audio: bool = True) -> FileClip:
    """Decode every frame (RGB, full size) and the first audio stream (float, channels kept)."""
    import av

    p = Path(path)
    if not p.exists():
        raise MediaError("missing", "file does not exist", str(p))
    if p.stat().st_size == 0:
        raise MediaError("empty", "file has 0 bytes", str(p))
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        if _looks_like_container(p):
            raise MediaError("truncated", f"container header present but unreadable ({exc})", str(p)) from None
        raise MediaError("not_media", f"FFmpeg cannot open it as media ({exc})", str(p)) from None
    with container:
        fmt_names = set(str(getattr(container.format, "name", "") or "").split(","))
        vstreams, astreams = list(container.streams.video), list(container.streams.audio)
        if not vstreams:
            raise MediaError("no_video_stream", "the file has no video stream", str(p))
        if require_audio and not astreams:
            raise MediaError("no_audio_stream", "the file has no audio stream", str(p))
        vs = vstreams[0]
        ast = astreams[0] if astreams else None
        rate = float(vs.average_rate) if vs.average_rate else 0.0
        frames: list[tuple[float, np.ndarray]] = []
        chunks: list[np.ndarray] = []
        sr = int(ast.codec_context.sample_rate) if ast is not None else 0
        src_channels = int(ast.codec_context.channels) if ast is not None else 0
        layout = "mono" if src_channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sr) if ast is not None else None
        error: Exception | None = None
        try:
            for packet in container.demux(*([vs] + ([ast] if ast is not None else []))):
                for fr in packet.decode():
                    if isinstance(fr, av.VideoFrame):
                        t = float(fr.time) if fr.time is not None else len(frames) / (rate or 24.0)
                        frames.append((t, fr.to_ndarray(format="rgb24")))
                    else:
                        for rf in resampler.resample(fr):
                            chunks.append(rf.to_ndarray())
            if resampler is not None:
                for rf in resampler.resample(None):
                    chunks.append(rf.to_ndarray())
        except (av.error.FFmpegError, ValueError) as exc:
            error = exc
    if not frames:
        raise MediaError("truncated", f"no video frame could be decoded ({error or 'empty stream'})", str(p))
    if error is not None:
        raise MediaError("truncated", f"decoding stopped after {len(frames)} frame(s) ({error})", str(p))
    frames.sort(key=lambda tf: tf[0])
    video = np.stack([f for _, f in frames])
    if rate <= 0:
        span = frames[-1][0] - frames[0][0]
        rate = (len(frames) - 1) / span if len(frames) > 1 and span > 0 else 24.0
    audio = None
    if chunks:
        planar = np.concatenate(chunks, axis=1).astype(np.float32)  # (C, N)
        audio = planar[0] if planar.shape[0] == 1 else np.ascontiguousarray(planar.T)
    elif require_audio:
        raise MediaError("truncated", "the audio stream holds no decodable samples", str(p))
    info: dict[str, Any] = {"source_video_codec": vs.codec_context.name}
    if ast is not None:
        info["source_audio_codec"] = ast.codec_context.name
        if src_channels > 2:
            info["audio_downmix"] = f"{src_channels} channels mixed to stereo"
    data = p.read_bytes() if audio is not None and fmt_names & set(STORABLE_FORMATS) else None
    return FileClip(video=video, audio=audio, fps=rate, sample_rate=sr, info=info, data=data)


def write_video_only(path: str | os.PathLike, video: np.ndarray, fps: float, *, crf: int = 17) -> None:
    """H.264 (yuv420p) MP4 without audio; odd sizes padded to even, frame k at k/fps."""
    import av

    from mova_bench.media import add_h264_stream, encode_frames

    video = np.asarray(video)
    with av.open(str(path), mode="w", format="mp4") as container:
        encode_frames(container, add_h264_stream(container, video.shape, fps, crf=crf), video)


__all__ = ["FileClip", "read_clip", "write_video_only"]
