"""``synchformer``: the audio-visual offset classifier behind DeSync (``desync[synchformer]``).

Network: :mod:`mova_bench.features.synchformer_net` (our implementation of Synchformer, AudioSet
checkpoint ``24-01-04T16-39-21`` as MMAudio ships it: ``synchformer_state_dict.pth``, weights entry
``synchformer``, a plain state dict of 513 tensors / 237,460,245 parameters, loaded with
``weights_only=True`` and ``strict=True``; a missing, extra or mis-shaped key is an error naming it).

The convention is av-benchmark's (hkchengrex/av-benchmark @ ``050a5cdb9bbd1a6f8cbb9fdde076992a695e2501``:
``av_bench/data/video_dataset.py``, ``extract_video.py``, ``av_bench/extract.py``,
``av_bench/evaluate.py``), the DeSync of MMAudio's and MOVA's tables:

* **Length**: the first ``max_seconds`` (default 8.0 s, MMAudio's ``--audio_length``) of each stream,
  each from its own start (frame 0 and audio sample 0, as av-benchmark reads them; ``audio_start``
  is not used). av-benchmark drops a clip shorter than that; here a shorter clip uses what it has
  (at least 4.8 s of both streams, i.e. 14 segments; less is status ``too_short``, no DeSync).
* **Video**: 25 fps, ``int(25·seconds)`` frames. av-benchmark gets them from FFmpeg's ``fps=25``
  filter (torio ``StreamingMediaDecoder(frame_rate=25)``); we decode every frame at the stream's
  native size (``VideoNeed("native")``) and apply that filter's rule by timestamps
  (:func:`fps_filter_indices`: output frame ``n`` is the last source frame whose presentation time,
  rounded half-up to the 1/25 s grid, is ≤ ``n``; slot 0 is the first frame's rounded time). Then
  torchvision ``v2`` exactly as av-benchmark: ``Resize(224, BICUBIC)`` (shorter side 224, antialias,
  on uint8), ``CenterCrop(224)``, ``ToDtype(float32, scale=True)``, ``Normalize(0.5, 0.5)``.
  Segments of 16 frames every 8 → ``S = (frames − 16) // 8 + 1`` (24 for 8 s).
* **Audio**: mono 16 kHz (soxr HQ; av-benchmark resamples with torchaudio's sinc ``Resample``),
  ``int(16000·seconds)`` samples; segments of 10,240 samples every 5,120 (same ``S``); per segment
  torchaudio's ``MelSpectrogram(16000, n_fft=1024, win_length=400, hop_length=160, n_mels=128)``
  (power 2, periodic Hann, centred with reflect padding, HTK mel 0–8 kHz, no norm; own torch code,
  :func:`log_mel_segments`) → 65 frames, ``log(x + 1e-6)``, zero-padded to 66 frames,
  ``(x + 4.2677393) / (2 · 4.5689974)``.
* **Offsets**: ``compare_v_a`` on the first 14 segments (0–4.8 s) and on the last 14 segments
  (segments S−14…S−1: 3.2–8.0 s for 8 s), both streams together; each window's prediction is the
  argmax of its 21 logits on the class grid −2.0, −1.8, …, +2.0 s (:func:`class_grid`; sign as
  Synchformer's training targets). A clip's DeSync is the mean of the two windows' ``|offset|``;
  av-benchmark's DeSync is the mean over all windows of all clips, which is the mean of the clips'
  DeSync since every clip has two windows (:mod:`mova_bench.metrics.desync`).

Outputs per clip (``kind = "analysis"``): ``status`` (``ok`` | ``too_short``), ``desync_s`` (),
``offset_class`` (2,) argmax indices, ``offset_s`` (2,) signed offsets, ``logits`` (2, 21),
``window_start_s`` (2,), ``n_segments`` () and ``seconds`` () used, ``reason`` (why not ok).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import MovaBenchError
from mova_bench.features.base import TorchBackbone
from mova_bench.features.base import check_state_dict as _check_state_dict
from mova_bench.media import VideoNeed

# -- av-benchmark / Synchformer constants -----------------------------------------------------------
VIDEO_FPS = 25.0
IMAGE_SIZE = 224
SEGMENT_FRAMES = 16
SEGMENT_FRAME_STEP = 8
SAMPLE_RATE = 16000
SEGMENT_SAMPLES = 10240
SEGMENT_SAMPLE_STEP = 5120
N_FFT = 1024
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 128
SPEC_FRAMES = 66
LOG_EPS = 1e-6
MEL_MEAN = -4.2677393
MEL_STD = 4.5689974
WINDOW_SEGMENTS = 14
N_CLASSES = 21
MAX_OFFSET_S = 2.0
DEFAULT_SECONDS = 8.0
#: key and parameter counts of ``synchformer_state_dict.pth`` (BACKBONES.md §3)
N_KEYS = 513
N_PARAMS = 237_460_245
#: shortest clip with one 14-segment window: 16 + 13·8 frames at 25 fps
MIN_SECONDS = (SEGMENT_FRAMES + (WINDOW_SEGMENTS - 1) * SEGMENT_FRAME_STEP) / VIDEO_FPS


def class_grid() -> np.ndarray:
    """The 21 offset classes in seconds, −2.0 … +2.0 step 0.2 (Synchformer ``make_class_grid(-2, 2, 21)``;
    float64 here, float32 upstream: the values differ by < 1e-7 s)."""
    return np.linspace(-MAX_OFFSET_S, MAX_OFFSET_S, N_CLASSES)


def n_segments(n_items: int, size: int, step: int) -> int:
    """Whole segments of ``size`` every ``step`` in ``n_items`` (0 when fewer than ``size``)."""
    return 0 if n_items < size else (n_items - size) // step + 1


def window_starts(total_segments: int) -> tuple[int, int]:
    """First segment of the two DeSync windows: the first 14 and the last 14 segments
    (av-benchmark ``[:, :14]`` and ``[:, -14:]``)."""
    if total_segments < WINDOW_SEGMENTS:
        raise ValueError(f"{total_segments} segments: DeSync needs at least {WINDOW_SEGMENTS}")
    return 0, total_segments - WINDOW_SEGMENTS


def desync_from_logits(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(argmax classes, signed offsets in s, mean |offset|) of (n_windows, 21) logits
    (av-benchmark ``evaluate.py``: ``abs(grid[argmax(logits)])`` per window, averaged)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != N_CLASSES or z.shape[0] == 0:
        raise ValueError(f"logits of shape {z.shape}: expected (n_windows, {N_CLASSES})")
    cls = np.argmax(z, axis=1)
    offsets = class_grid()[cls]
    return cls, offsets, float(np.mean(np.abs(offsets)))


def fps_filter_indices(times: np.ndarray, n_out: int, fps: float = VIDEO_FPS) -> np.ndarray:
    """Source-frame index of each of the first ``n_out`` frames FFmpeg's ``fps`` filter (default
    ``round=near``) would output at ``fps`` from frames presented at ``times`` (seconds, increasing).

    The filter rounds each frame's time to the output grid (half away from zero), starts at the
    first frame's rounded slot, and fills slot ``n`` with the last frame whose rounded slot is ≤ ``n``
    (later frames in the same slot replace earlier ones; a gap repeats the previous frame)."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"frame times of shape {t.shape}: expected a non-empty 1-D array")
    slots = np.floor(t * fps + 0.5 + 1e-6).astype(np.int64)
    slots = np.maximum.accumulate(slots)  # decoding order is presentation order
    wanted = slots[0] + np.arange(int(n_out))
    return np.searchsorted(slots, wanted, side="right") - 1


def available_video_slots(times: np.ndarray, source_fps: float, fps: float = VIDEO_FPS) -> int:
    """Frames the ``fps`` filter emits for the whole stream: up to the end of the last frame
    (its time plus one source frame duration), rounded to the output grid."""
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return 0
    end = t[-1] + (1.0 / source_fps if source_fps and source_fps > 0 else 0.0)
    return int(np.floor(end * fps + 0.5 + 1e-6) - np.floor(t[0] * fps + 0.5 + 1e-6))


@lru_cache(maxsize=2)
def _mel_filters(device: str = "cpu"):
    """(513, 128) float32 HTK triangular filters 0–8 kHz, no norm (torchaudio ``melscale_fbanks``)."""
    import torch

    n_freqs = N_FFT // 2 + 1
    all_freqs = torch.linspace(0, SAMPLE_RATE // 2, n_freqs)
    m_min = 2595.0 * np.log10(1.0 + 0.0 / 700.0)
    m_max = 2595.0 * np.log10(1.0 + (SAMPLE_RATE / 2) / 700.0)
    m_pts = torch.linspace(m_min, m_max, N_MELS + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0).to(device)


def log_mel_segments(audio_16k: Any) -> Any:
    """(S, 10240) float32 waveforms → (S, 128, 66) normalised log-mel (the av-benchmark recipe:
    torchaudio MelSpectrogram power, ``log(x + 1e-6)``, zero-pad to 66 frames, ``(x − mean)/(2·std)``)."""
    import torch

    x = torch.as_tensor(audio_16k, dtype=torch.float32)
    window = torch.hann_window(WIN_LENGTH, periodic=True, device=x.device)
    spec = torch.stft(x, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True).abs().pow(2.0)
    mel = torch.matmul(spec.transpose(-1, -2), _mel_filters(str(x.device))).transpose(-1, -2)
    mel = torch.log(mel + LOG_EPS)
    pad = SPEC_FRAMES - mel.shape[-1]
    mel = torch.nn.functional.pad(mel, (0, pad)) if pad > 0 else mel[..., :SPEC_FRAMES]
    return (mel - MEL_MEAN) / (2.0 * MEL_STD)


def preprocess_frames(frames: Any, size: int = IMAGE_SIZE) -> Any:
    """(T, H, W, 3) uint8 → (T, 3, 224, 224) float32: torchvision v2 ``Resize(224, BICUBIC)``
    (antialias, on uint8), ``CenterCrop(224)``, ``/255``, ``Normalize(0.5, 0.5)`` (av-benchmark).
    ``size`` is 224 except for reduced test networks."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = torch.as_tensor(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if x.dtype != torch.uint8:
        raise ValueError(f"frames of dtype {x.dtype}: expected uint8 RGB")
    x = TF.resize(x, [int(size)], interpolation=InterpolationMode.BICUBIC, antialias=True)
    x = TF.center_crop(x, [int(size), int(size)])
    x = x.to(torch.float32) / 255.0
    return (x - 0.5) / 0.5


def check_state_dict(state: Any, model: Any, source: str) -> None:
    """Compare a checkpoint's keys and shapes with ``model``'s; raise naming every difference."""
    if not isinstance(state, dict) or "model" in state or "state_dict" in state:
        raise MovaBenchError(
            f"{source}: expected a plain state dict (MMAudio's synchformer_state_dict.pth), got "
            f"{type(state).__name__}" + (f" with keys {sorted(state)[:5]}" if isinstance(state, dict) else ""),
            fix="use synchformer_state_dict.pth from the MMAudio v0.1 release (mova-bench weights fetch synchformer)",
        )
    _check_state_dict(state, model, f"{source} (Synchformer)",
                      fix="use synchformer_state_dict.pth from the MMAudio v0.1 release (mova-bench weights verify synchformer; "
                          "mova-bench weights fetch synchformer)")


def load_synchformer(path: Any, cfg: Any = None):
    """The network with the weights of ``path`` (a plain state dict, ``weights_only=True``,
    ``strict=True``), eval mode. ``cfg`` (a :class:`~mova_bench.features.synchformer_net.SynchformerConfig`)
    is for tests with reduced models; the default is the released architecture."""
    import torch

    from mova_bench.features.synchformer_net import SynchformerNet

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise MovaBenchError(
            f"cannot read the Synchformer checkpoint {path} as tensors (torch.load weights_only=True): {exc}",
            fix="re-fetch the weights (mova-bench weights fetch synchformer); a partial or foreign file is never used",
        ) from None
    model = SynchformerNet(cfg)
    check_state_dict(state, model, f"Synchformer checkpoint {path}")
    model.load_state_dict(state, strict=True)
    return model.eval()


class Synchformer(TorchBackbone):
    """Synchformer offset predictions on the first and last 4.8 s of a clip (DeSync's backbone)."""

    name: ClassVar[str] = "synchformer"
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "av"
    kind: ClassVar[str] = "analysis"
    display_name: ClassVar[str] = "Synchformer"
    description: ClassVar[str] = (
        "Synchformer (AudioSet, MMAudio weights) audio-visual offset classes (-2..+2 s, step 0.2) on the first "
        "and last 14 segments (4.8 s) of the first 8 s, as av-benchmark's DeSync"
    )
    weights: ClassVar[tuple[str, ...]] = ("synchformer",)
    extra: ClassVar[str] = "sync"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision")
    video_needs: ClassVar[tuple[VideoNeed, ...]] = (VideoNeed("native"),)
    audio_rate: ClassVar[int | None] = SAMPLE_RATE
    metric_names: ClassVar[dict[str, str]] = {"desync": "DeSync"}
    #: network configuration override (tests build reduced models); None = the released one
    net_config: ClassVar[Any] = None

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        # max_seconds: length read from each stream (av-benchmark/MMAudio --audio_length 8.0)
        return {"max_seconds": DEFAULT_SECONDS}

    def __init__(self, **params: Any):
        super().__init__(**params)
        sec = self.params["max_seconds"]
        if not isinstance(sec, (int, float)) or isinstance(sec, bool) or not sec >= MIN_SECONDS:
            from mova_bench.errors import ConfigError

            raise ConfigError(f"synchformer max_seconds={sec!r}: expected a number of seconds >= {MIN_SECONDS:g} "
                              f"(one window of {WINDOW_SEGMENTS} segments)", fix="use the default 8.0 (av-benchmark)")

    def preprocessing(self) -> dict[str, Any]:
        return {
            **super().preprocessing(),
            "video": f"{VIDEO_FPS:g} fps (ffmpeg fps-filter rule on native frames), torchvision v2 resize short side "
                     f"{IMAGE_SIZE} bicubic antialias, centre crop, (x/255-0.5)/0.5, {SEGMENT_FRAMES}-frame segments "
                     f"step {SEGMENT_FRAME_STEP}",
            "audio": f"{SAMPLE_RATE} Hz soxr HQ, {SEGMENT_SAMPLES}-sample segments step {SEGMENT_SAMPLE_STEP}, power mel "
                     f"n_fft {N_FFT} win {WIN_LENGTH} hop {HOP_LENGTH} {N_MELS} htk 0-8000 Hz, log(x+{LOG_EPS:g}), pad "
                     f"{SPEC_FRAMES}, (x-({MEL_MEAN}))/(2*{MEL_STD})",
            "windows": f"first and last {WINDOW_SEGMENTS} segments, argmax of {N_CLASSES} classes "
                       f"-{MAX_OFFSET_S:g}..{MAX_OFFSET_S:g} s",
            "net_config": None if self.net_config is None else repr(self.net_config),
        }

    def build(self, paths: dict, device: Any):
        return load_synchformer(paths["synchformer"], self.net_config).to(device)

    def _model_key(self, device: str) -> tuple[Any, ...]:
        # a test that swaps ``net_config`` must not get a model built with another one
        return (*super()._model_key(device), repr(self.net_config))

    # -- preprocessing ------------------------------------------------------------------------

    def plan(self, clip: Any) -> dict[str, Any]:
        """How much of ``clip`` is used: ``n_frames`` at 25 fps, ``n_samples`` at 16 kHz, ``n_segments``,
        ``seconds`` and, when it is too short, ``reason``."""
        need = self.video_needs[0]
        times = clip.frame_times(need)
        audio = clip.audio_at(SAMPLE_RATE)
        max_s = float(self.params["max_seconds"])
        n_frames = min(int(VIDEO_FPS * max_s), available_video_slots(times, clip.fps))
        n_samples = min(int(SAMPLE_RATE * max_s), int(audio.shape[0]))
        s = min(n_segments(n_frames, SEGMENT_FRAMES, SEGMENT_FRAME_STEP),
                n_segments(n_samples, SEGMENT_SAMPLES, SEGMENT_SAMPLE_STEP))
        out: dict[str, Any] = {"n_frames": n_frames, "n_samples": n_samples, "n_segments": s,
                               "seconds": (SEGMENT_FRAMES + (s - 1) * SEGMENT_FRAME_STEP) / VIDEO_FPS if s else 0.0}
        if s < WINDOW_SEGMENTS:
            out["reason"] = (f"the clip has {n_frames / VIDEO_FPS:.2f} s of video (at {VIDEO_FPS:g} fps) and "
                             f"{n_samples / SAMPLE_RATE:.2f} s of audio; Synchformer needs {MIN_SECONDS:g} s of both "
                             f"({WINDOW_SEGMENTS} segments)")
        return out

    def segments_used(self, total: int) -> list[int]:
        """Segment indices that enter either window (all of them up to 28 segments)."""
        a, b = window_starts(total)
        return sorted(set(range(a, a + WINDOW_SEGMENTS)) | set(range(b, b + WINDOW_SEGMENTS)))

    def video_frames(self, clip: Any, n_frames: int) -> np.ndarray:
        """(n_frames,) source-frame indices of the 25 fps frames (the ``fps`` filter's choice)."""
        return fps_filter_indices(clip.frame_times(self.video_needs[0]), n_frames)

    # -- forward ------------------------------------------------------------------------------

    def embed(self, clip: Any) -> dict[str, Any]:
        import torch

        plan = self.plan(clip)
        total = plan["n_segments"]
        if total < WINDOW_SEGMENTS:
            nan2 = np.full(2, np.nan, np.float32)
            return {"status": np.array("too_short"), "reason": np.array(plan["reason"]), "desync_s": np.float32(np.nan),
                    "offset_class": np.full(2, -1, np.int64), "offset_s": nan2, "logits": np.full((2, N_CLASSES), np.nan, np.float32),
                    "window_start_s": nan2, "n_segments": np.int64(total), "seconds": np.float32(plan["seconds"])}
        used = self.segments_used(total)
        dev = self.device or "cpu"
        batch = int(self.batch_size or 4)

        # video: the source frames of the used segments, preprocessed once each
        src_idx = self.video_frames(clip, plan["n_frames"])
        frames = clip.frames(self.video_needs[0])
        need_slots = sorted({s * SEGMENT_FRAME_STEP + j for s in used for j in range(SEGMENT_FRAMES)})
        uniq = np.unique(src_idx[need_slots])
        prepared = {}
        for i in range(0, len(uniq), 32):
            chunk = uniq[i: i + 32]
            for k, img in zip(chunk, preprocess_frames(frames[chunk], self.model.cfg.img_size)):
                prepared[int(k)] = img
        vfeats = {}
        for i in range(0, len(used), batch):
            segs = used[i: i + batch]
            x = torch.stack([torch.stack([prepared[int(src_idx[s * SEGMENT_FRAME_STEP + j])] for j in range(SEGMENT_FRAMES)])
                             for s in segs])[None].to(dev)  # (1, b, 16, 3, 224, 224)
            for s, f in zip(segs, self.model.extract_vfeats(x)[0]):
                vfeats[s] = f

        # audio: segments of the first n_samples samples
        audio = torch.as_tensor(clip.audio_at(SAMPLE_RATE)[: plan["n_samples"]], dtype=torch.float32)
        wav = torch.stack([audio[s * SEGMENT_SAMPLE_STEP: s * SEGMENT_SAMPLE_STEP + SEGMENT_SAMPLES] for s in used])
        mel = log_mel_segments(wav.to(dev))
        afeats = {s: f for s, f in zip(used, self.model.extract_afeats(mel[None])[0])}

        starts = window_starts(total)
        v = torch.stack([torch.stack([vfeats[s] for s in range(a, a + WINDOW_SEGMENTS)]) for a in starts])
        a_ = torch.stack([torch.stack([afeats[s] for s in range(a, a + WINDOW_SEGMENTS)]) for a in starts])
        logits = self.model.compare_v_a(v, a_).float().cpu().numpy()
        cls, offsets, desync = desync_from_logits(logits)
        return {"status": np.array("ok"), "reason": np.array(""), "desync_s": np.float32(desync),
                "offset_class": cls.astype(np.int64), "offset_s": offsets.astype(np.float32),
                "logits": logits.astype(np.float32),
                "window_start_s": np.array([a * SEGMENT_FRAME_STEP / VIDEO_FPS for a in starts], np.float32),
                "n_segments": np.int64(total), "seconds": np.float32(plan["seconds"])}
