"""``imagebind``: ImageBind huge audio and video embeddings, and their cosine (``ib_score[imagebind]``).

Network: :mod:`mova_bench.features.imagebind_net` (our implementation of the vision and audio
branches of ``imagebind_huge``). Weights entry ``imagebind-huge`` (``imagebind_huge.pth``, a plain
state dict of all six modalities: 1,311 tensors, 1,200,781,057 parameters; CC-BY-NC-SA 4.0,
non-commercial: ``mova-bench weights fetch imagebind-huge --accept-license``). The file is read with
``weights_only=True`` (memory-mapped); **every** key and shape of the file is checked against the
whole released architecture (:func:`~mova_bench.features.imagebind_net.checkpoint_manifest`), then the
vision and audio modules are loaded with ``strict=True`` (every one of their keys present, none
extra); the text, depth, thermal and IMU tensors are not kept.

Two video recipes, chosen by the parameter ``video_recipe`` (part of the cache identity):
``av-benchmark`` (the default) and ``javisbench`` (below). The audio side is the same in both.

The default convention is av-benchmark's (hkchengrex/av-benchmark @ ``050a5cdb9bbd1a6f8cbb9fdde076992a695e2501``:
``av_bench/data/video_dataset.py``, ``extract_video.py``, ``av_bench/data/audio_dataset.py``
``ImageBindAudioDataset``, ``av_bench/evaluate.py``), whose audio side is ImageBind's own
``load_and_transform_audio_data`` (``imagebind/data.py``):

* **Video**: the first ``max_seconds`` (default 8.0 s, av-benchmark's ``--audio_length``) at
  **0.5 fps**: ``int(0.5·max_seconds)`` frames (4 for 8 s) chosen by FFmpeg's ``fps`` filter rule
  (:func:`~mova_bench.features.synchformer.fps_filter_indices`; av-benchmark decodes with torio's
  ``frame_rate=0.5``): for a 24 fps clip the frames at 0.958, 2.958, 4.958 and 6.958 s. Decoded at
  the stream's size (``VideoNeed("native")``, shared with Synchformer), then torchvision v2 exactly
  as av-benchmark: ``Resize(224, BICUBIC)`` (short side 224, antialias, on uint8),
  ``ToDtype(float32, scale=True)``, ``Normalize`` with CLIP's mean/std; three spatial crops of
  224 × 224 (ImageBind's ``SpatialCrop``/``uniform_crop``: left, centre (offset
  ``ceil((W − 224)/2)``), right; top/centre/bottom for portrait video). Every pair of consecutive
  frames (i, i+1) of every crop is one 2-frame clip: ``3·(T − 1)`` clips (9 for 8 s). The video
  embedding is the **mean** of their unit-norm embeddings (ImageBind's multi-clip reduction; not
  re-normalised). Fewer than 2 frames (under ≈ 3 s of video) is status ``too_short``.
* **Audio**: the **whole** clip (av-benchmark and ImageBind read the whole file; the video is
  limited to ``max_seconds``), mono 16 kHz (our decoder's channel mean resampled with soxr HQ;
  av-benchmark resamples with torchaudio's sinc ``resample`` and its Kaldi front end reads only the
  first channel of a multi-channel file — identical for mono sources). Three 2 s clips evenly spaced
  (pytorchvideo ``ConstantClipsPerVideoSampler(2, 3)``: starts ``k·max(d − 2, 0)/2`` s, k = 0, 1, 2,
  as exact fractions of the float duration ``d``; samples ``int(start·16000)`` to
  ``int(end·16000)``). Per clip: the clip's mean is subtracted **in place** (upstream does this on
  a view of the whole waveform, so for clips shorter than 6 s, whose clips overlap, a later clip
  sees the earlier clip's subtraction in the overlap: reproduced), Kaldi fbank (:func:`kaldi_fbank`:
  25 ms Hanning window, 10 ms shift, 512-point FFT, power, 128 Kaldi-mel bins 20–8000 Hz,
  pre-emphasis 0.97, per-frame DC removal, no dither, no energy, ``log(max(x, ε))``), transposed to
  (128, frames), zero-padded or cut to 204 frames, ``(x + 4.268) / 9.138``. The audio embedding is
  the mean of the three clips' embeddings, each L2-normalised and × 20 (norm ≈ 20 before averaging).
  Fewer than 400 samples (25 ms) per clip is status ``too_short`` (upstream fails).
* **Score**: ``ib_score`` = cosine(audio embedding, video embedding) ∈ [−1, 1] (av-benchmark's
  ``torch.cosine_similarity``; papers print it ×100).

``video_recipe="javisbench"``: ImageBind's own ``load_and_transform_video_data``, as JavisBench
calls it (JavisVerse/JavisDiT @ ``b505b37faa9668b52b982abe364825d3d0a5bdca``:
``eval/javisbench/src/metrics.py`` ``calc_imagebind_score``, ``src/dataset.py`` ``ImageBindDataset``,
the vendored ``src/ImageBind/imagebind/data.py`` and ``models/imagebind_model.py``, identical to Meta's
apart from the checkpoint path), with pytorchvideo @ ``28fe037d212663c6a24f373b94cc5d478c8c1a1d``
(the commit JavisDiT pins: ``data/clip_sampling.py`` ``ConstantClipsPerVideoSampler``,
``data/encoded_video_decord.py`` ``EncodedVideoDecord``, ``transforms/functional.py``
``uniform_temporal_subsample``, ``short_side_scale``) and decord (JavisDiT pins decord 0.6.0; read at
dmlc/decord @ ``d2e56190286ae394032a8141885f76d5372bd44b``, v0.6.0-7, whose ``src/video/video_reader.cc``
and ``python/decord/video_reader.py`` are unchanged since v0.6.0):

* **Clips**: the video's duration is ``d = n / fps`` (decord: ``len(reader) / get_avg_fps()``, the
  number of frames over the stream's average frame rate as a double; here the number of frames
  PyAV decodes over ``clip.fps``, the same ``avg_frame_rate``). Five 2 s clips
  (``ConstantClipsPerVideoSampler(2, 5)``): start ``k·Fraction(max(d − 2, 0))/4``, k = 0 … 4 (the
  subtraction in floats, then exact fractions), end = start + 2; the whole duration, not the first
  8 s (``max_seconds`` is not used by this recipe). A clip shorter than 2 s gives five identical
  clips [0, 2).
* **Frames of a clip**: decord's ``get_clip``: indices ``ceil(fps·start)`` to
  ``min(ceil(fps·end), n)`` (exclusive), with ``fps·start`` a float product (``float·Fraction``
  is ``fps·float(start)``, so the float rounding of ``d − 2`` and of the product can move a bound by
  one frame: reproduced); then ``UniformTemporalSubsample(2)``: ``torch.linspace(0, t − 1, 2)``
  clamped and truncated, i.e. the first and the last frame of the range (one frame twice when the
  range holds one). Indices count frames in presentation order: decord indexes the packets of the
  stream sorted by pts, PyAV the decoded frames sorted by time. They agree on an ordinary file;
  a packet that does not decode to a frame (or a frame without its own packet) shifts decord's
  indices, and decord converts YUV to RGB in its own filter graph where PyAV uses ``to_ndarray``
  (swscale): pixel values can differ by a rounding step.
* **Pixels**: as upstream, per clip: float32 0–255 → ``/ 255`` → ``ShortSideScale(224)``
  (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``, **no antialias**, on
  the (C, T, H, W) tensor; short side 224, long side ``floor(long/short·224)``) → ``NormalizeVideo``
  (CLIP mean/std) → ``SpatialCrop(224, 3)`` (the same three crops as above).
* **Embedding**: 5 clips × 3 crops = 15 two-frame clips (clip major, crop minor) through
  ImageBind's forward, which averages the 15 unit embeddings (``reduce_list``: inputs of ≥ 5
  dimensions are flattened to B·S clips and their outputs reshaped and meant over S; not
  re-normalised). JavisBench's ``ib_av`` is ``nn.CosineSimilarity(dim=-1, eps=1e-6)(audio, video)``.
* **Audio**: JavisBench calls the same ``load_and_transform_audio_data`` (3 clips of 2 s, Kaldi fbank)
  as av-benchmark, so the audio recipe does not change. Its audio comes from the ``.wav`` the
  generator writes next to the video, read with ``torchaudio.load`` (every channel: the mean removal
  uses all of them, the fbank reads the first) and resampled with torchaudio's sinc resampler; here
  it is the clip's own audio stream, the channel mean, resampled with soxr HQ: identical only for
  a mono file at 16 kHz.

Outputs per clip (``kind = "analysis"``): ``status`` (``ok`` | ``too_short``), ``reason``,
``ib_score`` (), ``audio_embedding`` (1024,), ``video_embedding`` (1024,), ``n_video_clips`` (),
``n_audio_clips`` (), ``frame_times_s`` (T,) of the frames used (javisbench: the first and last
frame of each of the five clips, T = 10), ``audio_seconds`` ().
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import MovaBenchError
from mova_bench.features.base import TorchBackbone, load_tensors
from mova_bench.features.base import check_state_dict as _check_state_dict
from mova_bench.media import VideoNeed

# -- av-benchmark / ImageBind constants ------------------------------------------------------------
VIDEO_FPS = 0.5
IMAGE_SIZE = 224
N_CROPS = 3
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SAMPLE_RATE = 16000
AUDIO_CLIP_SECONDS = 2
AUDIO_CLIPS = 3
N_MELS = 128
TARGET_FRAMES = 204
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
FBANK_MEAN = -4.268
FBANK_STD = 9.138
DEFAULT_SECONDS = 8.0
#: the video recipes of ``video_recipe`` (the first is the default)
VIDEO_RECIPES = ("av-benchmark", "javisbench")
#: ImageBind's ``load_and_transform_video_data`` defaults (JavisBench)
JB_CLIP_SECONDS = 2
JB_CLIPS = 5
JB_FRAMES_PER_CLIP = 2
WEIGHTS = "imagebind-huge"
#: key and parameter counts of ``imagebind_huge.pth`` (BACKBONES.md §3; parameters exclude the 5 buffers)
N_KEYS = 1311
N_PARAMS = 1_200_781_057
LICENSE_FIX = f"mova-bench weights fetch {WEIGHTS} --accept-license"


# -- audio: Kaldi fbank (own torch code, the arithmetic of torchaudio.compliance.kaldi.fbank) -------


@lru_cache(maxsize=4)
def kaldi_mel_banks(num_bins: int = N_MELS, padded: int = 512, sample_rate: float = SAMPLE_RATE,
                    low_freq: float = 20.0, high_freq: float = 0.0) -> Any:
    """(num_bins, padded/2 + 1) float32 triangular filters on Kaldi's mel scale (1127·ln(1 + f/700)),
    ``high_freq <= 0`` meaning Nyquist + high_freq, no VTLN warp; the last (Nyquist) column is zero."""
    import torch

    nyquist = 0.5 * sample_rate
    hi = high_freq + nyquist if high_freq <= 0.0 else high_freq
    if not (0.0 <= low_freq < nyquist and 0.0 < hi <= nyquist and low_freq < hi):
        raise ValueError(f"mel band {low_freq}-{hi} Hz is not inside 0-{nyquist} Hz")
    mel_lo = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_hi = 1127.0 * math.log(1.0 + hi / 700.0)
    delta = (mel_hi - mel_lo) / (num_bins + 1)
    k = torch.arange(num_bins).unsqueeze(1)
    left = mel_lo + k * delta
    centre = mel_lo + (k + 1.0) * delta
    right = mel_lo + (k + 2.0) * delta
    fft_mel = 1127.0 * (1.0 + (sample_rate / padded) * torch.arange(padded / 2) / 700.0).log()
    fft_mel = fft_mel.unsqueeze(0)
    up = (fft_mel - left) / (centre - left)
    down = (right - fft_mel) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


def kaldi_fbank(wave: Any, *, sample_rate: float = SAMPLE_RATE, num_mel_bins: int = N_MELS) -> Any:
    """(frames, num_mel_bins) log mel filterbank of a 1-D waveform, as ImageBind calls
    ``torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type="hanning",
    dither=0, frame_length=25, frame_shift=10)`` with the other defaults (snip edges, per-frame DC
    removal, pre-emphasis 0.97, FFT size rounded up to a power of two, power spectrum, low 20 Hz,
    high Nyquist, log floored at float32 epsilon). Raises ValueError under one frame of samples."""
    import torch

    x = torch.as_tensor(wave)
    if x.ndim != 1:
        raise ValueError(f"waveform of shape {tuple(x.shape)}: expected one channel (N,)")
    size = int(sample_rate * FRAME_LENGTH_MS * 0.001)
    shift = int(sample_rate * FRAME_SHIFT_MS * 0.001)
    padded = 1 << (size - 1).bit_length()
    n = int(x.shape[0])
    if n < size:
        raise ValueError(f"{n} samples: the Kaldi front end needs at least one {size}-sample frame")
    m = 1 + (n - size) // shift
    frames = x.as_strided((m, size), (shift * x.stride(0), x.stride(0)))
    frames = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - 0.97 * prev
    frames = frames * torch.hann_window(size, periodic=False, dtype=x.dtype, device=x.device).unsqueeze(0)
    frames = torch.nn.functional.pad(frames, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = kaldi_mel_banks(num_mel_bins, padded, float(sample_rate)).to(device=x.device, dtype=x.dtype)
    mel = torch.mm(power, banks.T)
    eps = torch.tensor(torch.finfo(torch.float32).eps, dtype=x.dtype, device=x.device)
    return torch.maximum(mel, eps).log()


def audio_clip_bounds(n_samples: int, sample_rate: int = SAMPLE_RATE, clip_seconds: int = AUDIO_CLIP_SECONDS,
                      clips: int = AUDIO_CLIPS) -> list[tuple[int, int]]:
    """Sample ranges of ImageBind's evenly spaced audio clips (pytorchvideo
    ``ConstantClipsPerVideoSampler`` on the duration ``n_samples / sample_rate``, exact fractions)."""
    duration = n_samples / sample_rate
    latest = Fraction(max(duration - clip_seconds, 0))  # float subtraction, as upstream
    step = latest / max(clips - 1, 1)
    out = []
    for k in range(clips):
        start = step * k
        out.append((int(start * sample_rate), int((start + clip_seconds) * sample_rate)))
    return out


def audio_input(wave: Any) -> Any:
    """(3, 1, 128, 204) normalised log-mel clips of a 16 kHz mono waveform (ImageBind's
    ``load_and_transform_audio_data``, including its in-place per-clip mean removal on the shared
    waveform). Raises ValueError when a clip has fewer than 400 samples."""
    import torch

    buf = torch.as_tensor(np.array(wave, dtype=np.float32, copy=True))
    out = []
    for a, b in audio_clip_bounds(int(buf.shape[0])):
        view = buf[a:b]
        view -= view.mean()
        fb = kaldi_fbank(view).transpose(0, 1)
        p = TARGET_FRAMES - fb.shape[1]
        fb = torch.nn.functional.pad(fb, (0, p)) if p > 0 else fb[:, :TARGET_FRAMES]
        out.append(((fb - FBANK_MEAN) / FBANK_STD).unsqueeze(0))
    return torch.stack(out)


# -- video ------------------------------------------------------------------------------------------


def preprocess_frames(frames: Any, size: int = IMAGE_SIZE) -> Any:
    """(T, H, W, 3) uint8 → (T, 3, h, w) float32: torchvision v2 ``Resize(size, BICUBIC)`` (short side,
    antialias, on uint8), ``ToDtype(float32, scale=True)``, ``Normalize(CLIP mean, std)`` (av-benchmark)."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = torch.as_tensor(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if x.dtype != torch.uint8:
        raise ValueError(f"frames of dtype {x.dtype}: expected uint8 RGB")
    x = TF.resize(x, [int(size)], interpolation=InterpolationMode.BICUBIC, antialias=True)
    x = TF.to_dtype(x, torch.float32, scale=True)
    return TF.normalize(x, list(CLIP_MEAN), list(CLIP_STD))


def crop_offsets(height: int, width: int, size: int = IMAGE_SIZE) -> list[tuple[int, int]]:
    """(y, x) offsets of ImageBind's three spatial crops (``uniform_crop`` indices 0, 1, 2)."""
    if height < size or width < size:
        raise ValueError(f"frames of {width}x{height}: both sides must be >= {size} for {size}-pixel crops")
    y_c, x_c = int(math.ceil((height - size) / 2)), int(math.ceil((width - size) / 2))
    if height > width:
        return [(0, x_c), (y_c, x_c), (height - size, x_c)]
    return [(y_c, 0), (y_c, x_c), (y_c, width - size)]


def video_clips(frames: Any, size: int = IMAGE_SIZE) -> Any:
    """(T, 3, h, w) preprocessed frames → (3·(T−1), 3, 2, size, size) 2-frame clips, ordered as
    av-benchmark's ``encode_video_with_imagebind`` (frame pair major, crop minor)."""
    import torch

    t, _, h, w = frames.shape
    crops = torch.stack([frames[:, :, y:y + size, x:x + size] for y, x in crop_offsets(h, w, size)])  # (3, T, C, s, s)
    clips = torch.cat([crops[:, i:i + 2] for i in range(t - 1)], dim=0)  # (3(T-1), 2, C, s, s)
    return clips.permute(0, 2, 1, 3, 4)


# -- video: JavisBench's recipe (ImageBind's load_and_transform_video_data) --------------------------


def clip_sampler_bounds(duration: float, clip_seconds: int = JB_CLIP_SECONDS,
                        clips: int = JB_CLIPS) -> list[tuple[Fraction, Fraction]]:
    """(start, end) seconds, as exact fractions, of pytorchvideo's ``ConstantClipsPerVideoSampler``
    run until its ``is_last_clip`` (ImageBind's ``get_clip_timepoints``) on a float duration."""
    latest = Fraction(max(duration - clip_seconds, 0))  # float subtraction, as upstream
    step = Fraction(latest, max(clips - 1, 1))
    out = []
    for k in range(clips):
        start = step * k
        out.append((start, start + clip_seconds))
        if step * (k + 1) > latest:  # the sampler's end-of-video rule (never before ``clips`` clips)
            break
    return out


def javisbench_frame_indices(n_frames: int, fps: float, clip_seconds: int = JB_CLIP_SECONDS,
                             clips: int = JB_CLIPS, per_clip: int = JB_FRAMES_PER_CLIP) -> list[list[int]]:
    """Per clip, the indices of the frames ImageBind's video loader embeds: decord's
    ``get_clip(start, end)`` range ``[ceil(fps·start), min(ceil(fps·end), n))`` over the clip
    sampler's bounds on the duration ``n / fps``, subsampled by ``UniformTemporalSubsample(per_clip)``.
    Raises ValueError for a range without frames (upstream fails too)."""
    import torch

    fps = float(fps)
    if not (n_frames >= 1 and math.isfinite(fps) and fps > 0):
        raise ValueError(f"{n_frames} frames at {fps!r} fps: expected at least one frame and a positive frame rate")
    duration = float(n_frames) / fps
    out = []
    for start, end in clip_sampler_bounds(duration, clip_seconds, clips):
        first = math.ceil(fps * start)  # float * Fraction: fps * float(start), as in get_clip
        stop = min(math.ceil(fps * end), n_frames)
        t = stop - first
        if t <= 0:
            raise ValueError(f"the clip [{float(start):.6g}, {float(end):.6g}) s of a {n_frames}-frame video at "
                             f"{fps:g} fps holds no frame")
        pick = torch.clamp(torch.linspace(0, t - 1, per_clip), 0, t - 1).long()
        out.append([first + int(i) for i in pick])
    return out


def short_side_size(height: int, width: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(new_h, new_w) of pytorchvideo's ``short_side_scale``."""
    if width < height:
        return int(math.floor((float(height) / width) * size)), size
    return size, int(math.floor((float(width) / height) * size))


def javisbench_preprocess(frames: Any, size: int = IMAGE_SIZE) -> Any:
    """(T, H, W, 3) uint8 frames of one clip → (T, 3, h, w) float32 as ImageBind's video loader:
    float 0–255 (C, T, H, W), ``/ 255``, ``short_side_scale`` (bilinear, ``align_corners=False``, no
    antialias), ``NormalizeVideo`` with CLIP's mean/std."""
    import torch

    x = torch.as_tensor(np.ascontiguousarray(frames))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames of dtype {x.dtype} and shape {tuple(x.shape)}: expected uint8 RGB (T, H, W, 3)")
    x = x.to(torch.float32).permute(3, 0, 1, 2)  # decord -> float32, thwc_to_cthw
    x = x / 255.0
    _, _, h, w = x.shape
    x = torch.nn.functional.interpolate(x, size=short_side_size(h, w, size), mode="bilinear", align_corners=False)
    mean = torch.as_tensor(CLIP_MEAN, dtype=x.dtype)
    std = torch.as_tensor(CLIP_STD, dtype=x.dtype)
    x = x.clone().sub_(mean[:, None, None, None]).div_(std[:, None, None, None])
    return x.permute(1, 0, 2, 3)


def javisbench_video_clips(clip_frames: list[Any], size: int = IMAGE_SIZE) -> Any:
    """Per clip (T, 3, h, w) preprocessed frames → (3·clips, 3, T, size, size): ``SpatialCrop(size, 3)``
    over the clip list (clip major, crop minor)."""
    import torch

    out = []
    for frames in clip_frames:
        _, _, h, w = frames.shape
        for y, x in crop_offsets(h, w, size):
            out.append(frames[:, :, y:y + size, x:x + size].permute(1, 0, 2, 3))
    return torch.stack(out)


# -- loading ----------------------------------------------------------------------------------------


def read_state_dict(path: Any) -> dict[str, Any]:
    try:
        state = load_tensors(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise MovaBenchError(
            f"cannot read the ImageBind checkpoint {path} as tensors (torch.load weights_only=True): {exc}",
            fix=f"re-fetch the weights ({LICENSE_FIX}); a partial or foreign file is never used",
        ) from None
    if not isinstance(state, dict) or "model" in state or "state_dict" in state:
        raise MovaBenchError(
            f"{path}: expected a plain state dict (imagebind_huge.pth), got {type(state).__name__}"
            + (f" with keys {sorted(state)[:5]}" if isinstance(state, dict) else ""),
            fix=f"use imagebind_huge.pth as Meta publishes it ({LICENSE_FIX})",
        )
    return state


def load_imagebind(path: Any, cfg: Any = None):
    """The vision + audio network with the weights of ``path``: the whole file's keys and shapes
    checked against the released architecture (``cfg``: a reduced
    :class:`~mova_bench.features.imagebind_net.ImageBindConfig` for tests), then the vision and audio
    modules loaded strictly. Eval mode."""
    import torch

    from mova_bench.features.imagebind_net import ALL_MODALITIES, ImageBindNet

    state = read_state_dict(path)
    fix = f"use imagebind_huge.pth from Meta (mova-bench weights verify {WEIGHTS}; {LICENSE_FIX})"
    with torch.device("meta"):
        full = ImageBindNet(cfg, ALL_MODALITIES)
    _check_state_dict(state, full, f"ImageBind checkpoint {path} (all six modalities)", fix=fix)
    model = ImageBindNet(cfg)
    own = set(model.state_dict())
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
    return model.eval()


class ImageBind(TorchBackbone):
    """ImageBind huge audio and video embeddings of a clip and their cosine (IB-score)."""

    name: ClassVar[str] = "imagebind"
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "av"
    kind: ClassVar[str] = "analysis"
    display_name: ClassVar[str] = "ImageBind"
    description: ClassVar[str] = (
        "ImageBind huge (Meta, CC-BY-NC-SA 4.0): 1024-d video embedding (0.5 fps frames of the first 8 s, 3 crops, "
        "frame pairs; video_recipe=javisbench: first and last frame of five 2 s clips, as ImageBind's own loader) "
        "and audio embedding (3 x 2 s Kaldi fbank clips at 16 kHz); IB-score = their cosine, as av-benchmark"
    )
    weights: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    extra: ClassVar[str] = "imagebind"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision")
    video_needs: ClassVar[tuple[VideoNeed, ...]] = (VideoNeed("native"),)
    audio_rate: ClassVar[int | None] = SAMPLE_RATE
    metric_names: ClassVar[dict[str, str]] = {"ib_score": "IB-score"}
    #: network configuration override (tests build reduced models); None = imagebind_huge
    net_config: ClassVar[Any] = None

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        # max_seconds: video length read from the start (av-benchmark --audio_length 8.0; av-benchmark recipe only)
        # video_recipe: "av-benchmark" (0.5 fps frame pairs) or "javisbench" (ImageBind's load_and_transform_video_data)
        return {"max_seconds": DEFAULT_SECONDS, "video_recipe": VIDEO_RECIPES[0]}

    def __init__(self, **params: Any):
        super().__init__(**params)
        sec = self.params["max_seconds"]
        if not isinstance(sec, (int, float)) or isinstance(sec, bool) or not sec >= 2 / VIDEO_FPS:
            from mova_bench.errors import ConfigError

            raise ConfigError(f"imagebind max_seconds={sec!r}: expected a number of seconds >= {2 / VIDEO_FPS:g} "
                              f"(two frames at {VIDEO_FPS:g} fps)", fix="use the default 8.0 (av-benchmark)")
        recipe = self.params["video_recipe"]
        if not isinstance(recipe, str) or recipe not in VIDEO_RECIPES:
            from mova_bench.errors import ConfigError

            raise ConfigError(f"imagebind video_recipe={recipe!r}: expected one of {', '.join(VIDEO_RECIPES)}",
                              fix="use av-benchmark (the default) or javisbench (--profile javisbench selects it)")

    def preprocessing(self) -> dict[str, Any]:
        if self.params["video_recipe"] == "javisbench":
            video = (f"javisbench: {JB_CLIPS} clips of {JB_CLIP_SECONDS} s (pytorchvideo "
                     "ConstantClipsPerVideoSampler on n/fps), decord get_clip frame range "
                     "ceil(fps*start)..ceil(fps*end), "
                     f"UniformTemporalSubsample({JB_FRAMES_PER_CLIP}), /255, short side {IMAGE_SIZE} bilinear "
                     f"(interpolate, align_corners=False, no antialias), CLIP mean/std, {N_CROPS} spatial crops, "
                     "mean of unit embeddings")
        else:
            video = (f"first max_seconds at {VIDEO_FPS:g} fps (ffmpeg fps-filter rule on native frames), torchvision "
                     f"v2 resize short side {IMAGE_SIZE} bicubic antialias, CLIP mean/std, {N_CROPS} spatial crops, "
                     "consecutive frame pairs as 2-frame clips, mean of unit embeddings")
        return {
            **super().preprocessing(),
            "video": video,
            "audio": f"whole clip, {SAMPLE_RATE} Hz soxr HQ, {AUDIO_CLIPS} evenly spaced {AUDIO_CLIP_SECONDS} s clips, "
                     "in-place clip mean removal, kaldi fbank (hanning 25/10 ms, 128 bins, preemph 0.97, dither 0), "
                     f"pad/cut {TARGET_FRAMES}, (x-({FBANK_MEAN}))/{FBANK_STD}, mean of normalised x20 embeddings",
            "score": "cosine(audio, video), no x100",
            "net_config": None if self.net_config is None else repr(self.net_config),
        }

    def build(self, paths: dict, device: Any):
        return load_imagebind(paths[WEIGHTS], self.net_config).to(device)

    def _model_key(self, device: str) -> tuple[Any, ...]:
        # a test that swaps ``net_config`` must not get a model built with another one
        return (*super()._model_key(device), repr(self.net_config))

    # -- preprocessing ------------------------------------------------------------------------

    def frame_indices(self, clip: Any) -> np.ndarray:
        """Source-frame indices of the 0.5 fps frames of the first ``max_seconds`` (possibly fewer than
        ``int(0.5·max_seconds)`` for a shorter clip)."""
        from mova_bench.features.synchformer import available_video_slots, fps_filter_indices

        times = clip.frame_times(self.video_needs[0])
        n = min(int(VIDEO_FPS * float(self.params["max_seconds"])), available_video_slots(times, clip.fps, VIDEO_FPS))
        return fps_filter_indices(times, n, VIDEO_FPS) if n > 0 else np.zeros(0, np.int64)

    def javisbench_indices(self, clip: Any) -> list[list[int]]:
        """Per clip of JavisBench's recipe, the indices (into the native frames) of its frames."""
        n = int(len(clip.frame_times(self.video_needs[0])))
        return javisbench_frame_indices(n, clip.fps)

    def _too_short(self, reason: str, n_frames: int, audio_s: float) -> dict[str, Any]:
        dim = self.model.cfg.out_dim if self.model is not None else 1024
        nan = np.full(dim, np.nan, np.float32)
        return {"status": np.array("too_short"), "reason": np.array(reason), "ib_score": np.float32(np.nan),
                "audio_embedding": nan, "video_embedding": nan.copy(), "n_video_clips": np.int64(0),
                "n_audio_clips": np.int64(0), "frame_times_s": np.full(n_frames, np.nan, np.float32),
                "audio_seconds": np.float32(audio_s)}

    # -- forward ------------------------------------------------------------------------------

    def embed(self, clip: Any) -> dict[str, Any]:
        import torch

        dev = self.device or "cpu"
        size = self.model.cfg.img_size
        javis = self.params["video_recipe"] == "javisbench"
        per_clip = self.javisbench_indices(clip) if javis else None
        idx = np.asarray([i for c in per_clip for i in c], np.int64) if javis else self.frame_indices(clip)
        audio = np.asarray(clip.audio_at(SAMPLE_RATE), dtype=np.float32)
        audio_s = audio.shape[0] / SAMPLE_RATE
        if not javis and len(idx) < 2:
            return self._too_short(f"ImageBind needs two frames at {VIDEO_FPS:g} fps (about 3 s of video); the clip "
                                   f"gives {len(idx)}", len(idx), audio_s)
        n_audio = int(audio.shape[0])
        if min(min(b, n_audio) - a for a, b in audio_clip_bounds(n_audio)) < int(SAMPLE_RATE * FRAME_LENGTH_MS * 0.001):
            return self._too_short(f"the clip has {audio_s:.3f} s of audio; ImageBind's Kaldi front end needs at least "
                                   f"{FRAME_LENGTH_MS:g} ms", len(idx), audio_s)
        need = self.video_needs[0]
        if javis:
            native = clip.frames(need)
            clips = javisbench_video_clips([javisbench_preprocess(native[c], size) for c in per_clip], size)
        else:
            clips = video_clips(preprocess_frames(clip.frames(need)[idx], size), size)
        batch = int(self.batch_size or 9)
        v = torch.cat([self.model.embed_vision(clips[i:i + batch].to(dev)) for i in range(0, clips.shape[0], batch)])
        mels = audio_input(audio).to(dev)
        a = self.model.embed_audio(mels)
        v_mean, a_mean = v.mean(dim=0), a.mean(dim=0)
        # JavisBench: nn.CosineSimilarity(dim=-1, eps=1e-6); av-benchmark: torch.cosine_similarity (eps=1e-8)
        score = torch.cosine_similarity(v_mean[None], a_mean[None], dim=-1, eps=1e-6 if javis else 1e-8)[0]
        times = clip.frame_times(need)[idx]
        return {"status": np.array("ok"), "reason": np.array(""), "ib_score": score.float(),
                "audio_embedding": a_mean.float(), "video_embedding": v_mean.float(),
                "n_video_clips": np.int64(clips.shape[0]), "n_audio_clips": np.int64(mels.shape[0]),
                "frame_times_s": np.asarray(times, np.float32), "audio_seconds": np.float32(audio_s)}
