"""``vggish``: the VGGish audio embedding of FAD (``fd_audio[vggish]``, ``kid_audio[vggish]``).

Conventions (torchvggish 0.2 / the TF AudioSet release, as used without PCA by av-benchmark,
audioldm_eval and fadtk):

* Audio: mono (channel mean, done by the decoder), resampled to 16 kHz with soxr HQ
  (:meth:`~mova_bench.media.DecodedClip.audio_at`). The references resample with resampy
  (torchvggish's ``waveform_to_examples``), torchaudio (av-benchmark) or librosa; the resampler
  moves FAD (METRICS.md), so it is recorded in the cache identity. Measured by
  ``benchmarks/bench_backbones_audio.py --resampler`` (48 → 16 kHz, 12 synthetic 8 s clips, soxr HQ
  vs resampy ``kaiser_best``): log-mel bands 0–59 differ by ≤ 2e-4 RMS (log units), the top four
  (6.2–7.5 kHz, reaching the resamplers' differing pass-band edges) by 0.12 RMS (max 0.56); with random
  weights the embeddings differ by 8e-4 relative L2 and FD(A, B) by 1.1e-3 relative (real weights
  may weight those bands differently).
* Front end (own numpy code, the arithmetic of torchvggish's ``mel_features``): frames of 400
  samples (25 ms) every 160 (10 ms), no centre padding, periodic Hann window, ``|rfft|`` with
  FFT size 512 (magnitude, not power), 64 HTK-mel triangles from 125 to 7500 Hz (DC bin zeroed),
  ``log(mel + 0.01)``; then non-overlapping examples of 96 frames (0.96 s), a trailing partial
  example dropped. Audio shorter than 0.96 s gives no example and is not padded: that clip's
  result is :func:`missing_features` (NaN ``"frames"`` row and ``"embedding"``, which the
  distance metrics leave out with a warning naming the clip, and ``"missing_reason"``), so the
  clip stays usable for every other metric and the run goes on.
* Network: VGG (conv 64-M-128-M-256-256-M-512-512-M, ReLU), flatten in (H, W, C) order as the
  TF original, ``Linear(12288, 4096)``-ReLU-``Linear(4096, 4096)``-ReLU-``Linear(4096, 128)``.
  The embedding is the 128-d output of the last Linear **without the final ReLU** (torchvggish
  0.2 keeps a ReLU inside ``embeddings``; av-benchmark and audioldm_eval remove it) and without
  PCA whitening or 8-bit quantisation (torch.hub's ``vggish()`` default ``postprocess=True``).
* Parameters: ``max_seconds`` (None: the whole clip; av-benchmark reads 8 s) and ``remove_dc``
  (False; av-benchmark's loader subtracts the clip's mean, torchvggish and fadtk do not). For an
  8.04 s clip both give the same 8 examples whatever ``max_seconds`` ≥ 7.7 s.
* Output: ``"frames"`` (n, 128) float32, one row per 0.96 s example, and ``"embedding"`` (128,)
  their mean. ``frame_level = True``: FAD pools the frames of all clips (av-benchmark
  ``unroll_dict(cat=True)``, fadtk), not one vector per clip.
* Weights: the torchvggish release ``vggish-10086976.pth``, a plain state dict of 18 tensors
  (72,141,184 parameters), loaded with ``weights_only=True`` and ``strict=True``; a missing,
  extra or differently shaped key is an error naming it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import MovaBenchError
from mova_bench.features.base import TorchBackbone
from mova_bench.features.base import check_state_dict as _check_state_dict

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512  # next power of two above the window, as torchvggish
N_MELS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
EXAMPLE_SECONDS = EXAMPLE_FRAMES * HOP / SAMPLE_RATE
EMBEDDING_DIM = 128
#: conv channels, "M" = 2×2 max pool (the VGG "A"-like stack of VGGish)
CONV_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
N_KEYS = 18
N_PARAMS = 72_141_184


def _htk_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127·ln(1 + f/700)."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=4)
def htk_mel_matrix(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   low_hz: float = MEL_LOW_HZ, high_hz: float = MEL_HIGH_HZ) -> np.ndarray:
    """(n_fft//2+1, n_mels) float64 triangular filters, linear in HTK mel, unnormalised, peak 1,
    the DC bin zeroed (the VGGish/TF convention; not librosa's Slaney filters). Read-only."""
    n_bins = n_fft // 2 + 1
    bin_mel = _htk_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))
    edges = np.linspace(_htk_mel(low_hz), _htk_mel(high_hz), n_mels + 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lo[None, :]) / (mid - lo)[None, :]
    falling = (hi[None, :] - bin_mel[:, None]) / (hi - mid)[None, :]
    mat = np.clip(np.minimum(rising, falling), 0.0, None)
    mat[0, :] = 0.0
    mat.setflags(write=False)
    return mat


def log_mel_examples(audio_16k: np.ndarray) -> np.ndarray:
    """(n, 96, 64) float32 VGGish input examples of 16 kHz mono audio (n = 0 under 0.96 s).

    Same arithmetic as torchvggish's ``waveform_to_examples`` after its resampling step (float64
    throughout, cast to float32 at the end as torchvggish's ``return_tensor=True`` does).
    """
    x = np.asarray(audio_16k, dtype=np.float64).reshape(-1)
    n_frames = 0 if x.size < WINDOW else 1 + (x.size - WINDOW) // HOP
    n_examples = n_frames // EXAMPLE_FRAMES
    if n_examples == 0:
        return np.zeros((0, EXAMPLE_FRAMES, N_MELS), np.float32)
    n_frames = n_examples * EXAMPLE_FRAMES  # frames of a dropped partial example are never computed
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP][:n_frames]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, N_FFT, axis=1))
    log_mel = np.log(magnitude @ htk_mel_matrix() + LOG_OFFSET)
    return log_mel.reshape(n_examples, EXAMPLE_FRAMES, N_MELS).astype(np.float32)


def build_vggish_model():
    """The VGGish network with torchvggish's module names (``features.{0,3,6,8,11,13}`` convs,
    ``embeddings.{0,2,4}`` linears), random init; the final Linear has no ReLU after it."""
    import torch
    from torch import nn

    class VGGishNet(nn.Module):
        """(B, 1, 96, 64) log-mel examples → (B, 128) pre-ReLU embeddings."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            channels = 1
            for item in CONV_PLAN:
                if item == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
                    channels = int(item)
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(
                nn.Linear(512 * 6 * 4, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                nn.Linear(4096, EMBEDDING_DIM),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.features(x)  # (B, 512, 6, 4)
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF's NHWC flatten order
            return self.embeddings(x)

    return VGGishNet()


def check_max_seconds(backbone: str, value: Any) -> None:
    """``max_seconds`` is None or a positive number; ConfigError naming the value otherwise."""
    from mova_bench.errors import ConfigError

    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0)
    if not ok:
        raise ConfigError(f"{backbone}: max_seconds={value!r}; expected a positive number of seconds or None",
                          fix="e.g. max_seconds=8.0 (av-benchmark's audio_length), or None for the whole clip")


def missing_features(dim: int, reason: str, *, frame_level: bool) -> dict[str, np.ndarray]:
    """The result of a clip a backbone cannot embed (e.g. too short): a NaN ``"embedding"`` and, for a
    frame-level backbone, one NaN ``"frames"`` row (the distance metrics leave a clip with a non-finite
    row out whole and warn, naming it; an empty frame block would drop it silently), and the reason as
    a unicode array ``"missing_reason"`` (kept in the feature cache with the rest)."""
    out = {"embedding": np.full(dim, np.nan, np.float32), "missing_reason": np.array(reason)}
    if frame_level:
        out["frames"] = np.full((1, dim), np.nan, np.float32)
    return out


def check_state_dict(state: dict, model: Any, source: str) -> None:
    """Compare a checkpoint's keys and shapes with ``model``'s; raise naming every difference."""
    _check_state_dict(state, model, source, fix="use the upstream checkpoint this backbone names "
                      "(mova-bench weights verify; mova-bench weights fetch NAME)")


def load_state(path: Any) -> dict:
    """The tensors of a checkpoint file, unpickled with ``weights_only=True`` (no code runs)."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise MovaBenchError(
            f"cannot read the checkpoint {path} as tensors (torch.load weights_only=True): {exc}",
            fix="re-fetch the weights (mova-bench weights fetch NAME); a partial or foreign file is never used",
        ) from None


def load_vggish(path: Any):
    """VGGish with the weights of ``path`` (torchvggish layout: a plain state dict), eval mode."""
    state = load_state(path)
    if not isinstance(state, dict) or "model" in state or "state_dict" in state:
        raise MovaBenchError(
            f"{path}: expected a plain state dict (torchvggish layout), got "
            f"{type(state).__name__} with keys {sorted(state)[:5] if isinstance(state, dict) else '-'}",
            fix="use vggish-10086976.pth from the torchvggish release (mova-bench weights fetch vggish)",
        )
    model = build_vggish_model()
    check_state_dict(state, model, f"VGGish checkpoint {path}")
    model.load_state_dict(state, strict=True)
    return model.eval()


class Vggish(TorchBackbone):
    """VGGish 128-d embeddings of 0.96 s log-mel examples (FAD's backbone)."""

    name: ClassVar[str] = "vggish"
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "audio"
    kind: ClassVar[str] = "embedding"
    display_name: ClassVar[str] = "VGGish"
    description: ClassVar[str] = (
        "VGGish (torchvggish weights) 128-d embeddings of non-overlapping 0.96 s log-mel examples at 16 kHz, "
        "final ReLU removed, no PCA; FD over all frames = FAD"
    )
    weights: ClassVar[tuple[str, ...]] = ("vggish",)
    extra: ClassVar[str] = "audio"
    audio_rate: ClassVar[int | None] = SAMPLE_RATE
    frame_level: ClassVar[bool] = True
    metric_names: ClassVar[dict[str, str]] = {"fd_audio": "FAD"}
    dim: ClassVar[int] = EMBEDDING_DIM

    def __init__(self, **params: Any):
        super().__init__(**params)
        check_max_seconds(self.name, self.params["max_seconds"])

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        # max_seconds: audio beyond it is cut (av-benchmark reads 8 s); None keeps the whole clip
        # remove_dc: subtract the mean first (av-benchmark's loader does; torchvggish, fadtk don't)
        return {"max_seconds": None, "remove_dc": False}

    def preprocessing(self) -> dict[str, Any]:
        return {
            **super().preprocessing(), "sample_rate": SAMPLE_RATE, "window": WINDOW, "hop": HOP, "n_fft": N_FFT,
            "mel": f"htk {N_MELS} {MEL_LOW_HZ:g}-{MEL_HIGH_HZ:g} Hz, magnitude, log(x+{LOG_OFFSET:g})",
            "examples": f"{EXAMPLE_FRAMES} frames, hop {EXAMPLE_FRAMES}", "embedding": "pre-ReLU fc, no PCA",
        }

    def build(self, paths: dict, device: Any):
        return load_vggish(paths["vggish"]).to(device)

    def examples(self, clip: Any) -> np.ndarray:
        """The clip's (n, 96, 64) input examples under this instance's parameters."""
        audio = clip.audio_at(SAMPLE_RATE)
        if self.params.get("remove_dc") and audio.size:
            audio = audio - np.mean(audio, dtype=np.float64)  # the whole clip's mean, as av-benchmark
        if self.params.get("max_seconds") is not None:
            audio = audio[: int(round(float(self.params["max_seconds"]) * SAMPLE_RATE))]
        return log_mel_examples(audio)

    def embed(self, clip: Any) -> dict[str, np.ndarray]:
        import torch

        ex = self.examples(clip)
        if ex.shape[0] == 0:
            return self._too_short(clip)
        frames = self.model(torch.from_numpy(ex)[:, None].to(self.device)).float().cpu().numpy()
        return self._outputs(frames)

    def embed_batch(self, clips: list[Any]) -> list[dict[str, np.ndarray]]:
        """The 0.96 s examples of all the clips through the network together (``batch_size``
        examples per forward pass, default all, across clip boundaries); each example is embedded
        on its own (eval mode), so each clip's frames equal its own forward's."""
        import torch

        from mova_bench.features.base import forward_in_slices

        out: list[Any] = [None] * len(clips)
        inputs, where = [], []
        for i, clip in enumerate(clips):
            ex = self.examples(clip)
            if ex.shape[0] == 0:
                out[i] = self._too_short(clip)
            else:
                inputs.append(torch.from_numpy(ex)[:, None])
                where.append(i)
        feats = forward_in_slices(inputs, self.batch_size, lambda x: self.model(x.to(self.device)).float().cpu())
        for i, f in zip(where, feats):
            out[i] = self._outputs(f.numpy())
        return out

    @staticmethod
    def _too_short(clip: Any) -> dict[str, np.ndarray]:
        seconds = clip.audio_at(SAMPLE_RATE).size / SAMPLE_RATE
        return missing_features(EMBEDDING_DIM, f"the audio lasts {seconds:.2f} s, shorter than one VGGish example "
                                f"({EXAMPLE_SECONDS:.2f} s): no frame to embed", frame_level=True)

    @staticmethod
    def _outputs(frames: np.ndarray) -> dict[str, np.ndarray]:
        return {"frames": frames.astype(np.float32), "embedding": frames.mean(axis=0).astype(np.float32)}
