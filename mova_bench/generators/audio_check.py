"""One check of every adapter's output before the harness writes it: audio present and finite,
silence flagged (not rejected), sample rate and durations recorded, geometry differences noted.

Every adapter ends ``generate`` with :func:`finish_clip`, so the manifest's ``info`` has the same
keys whatever produced the clip:

* ``audio_sample_rate``, ``audio_channels``, ``audio_duration_s``, ``video_duration_s``,
  ``av_duration_diff_s`` (audio minus video, seconds) and ``av_duration_mismatch`` (true when the
  two differ by more than one video frame and at least 20 ms, plus two AAC frames for decoded AAC);
* ``audio_peak``, ``audio_rms_dbfs`` and ``audio_silent`` (peak below ``SILENCE_PEAK``, −80 dBFS):
  a silent clip is kept and flagged; the sync metrics count it as not synchronizable;
* ``audio_samples_clipped`` when samples outside [−1, 1] were clipped, ``audio_downmix`` when more
  than two channels were mixed down (AAC in MP4 is written mono or stereo);
* ``geometry_mismatch``: ``{"width": [requested, returned], ...}`` for what differs from the request.

Absent audio is a per-clip failure with reason ``no_audio_stream``; non-finite samples fail too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mova_bench.errors import MediaError
from mova_bench.generators.base import ClipRequest, GeneratedClip
from mova_bench.generators.common import failure

#: peak amplitude below which a track counts as silent (−80 dBFS)
SILENCE_PEAK = 1e-4


def check_audio(audio: Any, sample_rate: int, *, n_frames: int, fps: float,
                requested_sample_rate: int | None = None, slack_s: float = 0.0) -> tuple[np.ndarray, dict[str, Any]]:
    """Audio as the harness writes it ((N,) mono or (N, 2) stereo float32 in [−1, 1]) and what was
    found. Raises :class:`MediaError` (``no_audio_stream``) without audio, GenerationError when a
    sample is not finite or the sample rate is not a positive integer."""
    if audio is None:
        raise MediaError("no_audio_stream", "the generator returned no audio")
    wav = np.asarray(audio)
    if wav.size == 0:
        raise MediaError("no_audio_stream", "the generator returned an empty audio track")
    if wav.dtype.kind in "iu":  # integer PCM → float
        wav = wav.astype(np.float32) / float(np.iinfo(wav.dtype).max)
    wav = wav.astype(np.float32, copy=False)
    if wav.ndim == 2 and wav.shape[1] == 1:
        wav = wav[:, 0]
    if wav.ndim not in (1, 2):
        raise failure("bad_audio", f"audio has shape {wav.shape}; expected (samples,) or (samples, channels)")
    try:
        sr = int(sample_rate)
    except (TypeError, ValueError):
        sr = 0
    if sr <= 0 or sr != sample_rate:
        raise failure("bad_audio", f"audio sample rate {sample_rate!r} is not a positive integer")
    bad = int(np.count_nonzero(~np.isfinite(wav)))
    if bad:
        raise failure("bad_audio", f"audio has {bad} non-finite sample(s) (NaN or infinity)")
    info: dict[str, Any] = {"audio_sample_rate": sr, "audio_channels": 1 if wav.ndim == 1 else int(wav.shape[1])}
    if wav.ndim == 2 and wav.shape[1] > 2:
        info["audio_downmix"] = f"{wav.shape[1]} channels mixed to mono"
        wav = wav.mean(axis=1)
    clipped = int(np.count_nonzero(np.abs(wav) > 1.0))
    if clipped:
        info["audio_samples_clipped"] = clipped
        wav = np.clip(wav, -1.0, 1.0)
    peak = float(np.max(np.abs(wav)))
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    info["audio_peak"] = round(peak, 6)
    info["audio_rms_dbfs"] = round(20.0 * np.log10(rms), 2) if rms > 0 else None
    info["audio_silent"] = peak < SILENCE_PEAK
    a_dur = wav.shape[0] / sr
    v_dur = n_frames / fps if fps > 0 else 0.0
    diff = a_dur - v_dur
    info["audio_duration_s"] = round(a_dur, 4)
    info["video_duration_s"] = round(v_dur, 4)
    info["av_duration_diff_s"] = round(diff, 4)
    tolerance = max(1.0 / fps if fps > 0 else 0.0, 0.02) + max(0.0, float(slack_s))
    info["av_duration_mismatch"] = bool(abs(diff) > tolerance)
    if requested_sample_rate and int(requested_sample_rate) != sr:
        info["audio_sample_rate_requested"] = int(requested_sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32), info


def check_video(video: Any) -> np.ndarray:
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] < 1:
        raise failure("bad_video", f"video has shape {v.shape}; expected (frames, height, width, 3)")
    if v.dtype != np.uint8:
        if v.dtype.kind == "f":
            if not np.all(np.isfinite(v)):
                raise failure("bad_video", "video has non-finite pixel values")
            v = np.clip(np.rint(v * 255.0 if float(v.max(initial=0.0)) <= 1.0 else v), 0, 255).astype(np.uint8)
        else:
            v = np.clip(v, 0, 255).astype(np.uint8)
    return v


def finish_clip(request: ClipRequest, video: Any, audio: Any, fps: float, sample_rate: int,
                info: dict[str, Any] | None = None, source_data: bytes | None = None) -> GeneratedClip:
    """Check video and audio, record what differs from the request, return the clip to write.

    Audio decoded from AAC (``info["source_audio_codec"] == "aac"``) may be up to two AAC frames
    (2048 samples: encoder priming and padding to a whole frame) longer than what was encoded;
    that much is not reported as a duration mismatch."""
    frames = check_video(video)
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise failure("bad_video", f"frame rate {fps!r} is not a positive number")
    slack = 2048.0 / float(sample_rate) if (info or {}).get("source_audio_codec") == "aac" and sample_rate else 0.0
    wav, audio_info = check_audio(audio, sample_rate, n_frames=int(frames.shape[0]), fps=fps,
                                  requested_sample_rate=request.sample_rate, slack_s=slack)
    mismatch: dict[str, list[Any]] = {}
    requested_frames = int(round(request.duration_s * request.fps))
    for key, want, got in (("width", request.width, int(frames.shape[2])), ("height", request.height, int(frames.shape[1])),
                           ("num_frames", requested_frames, int(frames.shape[0]))):
        if want != got:
            mismatch[key] = [want, got]
    if abs(float(request.fps) - fps) > 1e-3:
        mismatch["fps"] = [float(request.fps), round(fps, 6)]
    out = {**(info or {}), **audio_info}
    if mismatch:
        out["geometry_mismatch"] = mismatch
    return GeneratedClip(video=frames, audio=wav, fps=fps, sample_rate=int(sample_rate), info=out, source_data=source_data)


__all__ = ["SILENCE_PEAK", "check_audio", "check_video", "finish_clip"]
