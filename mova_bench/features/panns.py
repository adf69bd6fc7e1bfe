"""``panns-cnn14``: PANNs CNN14 audio embeddings and AudioSet logits (``fd_audio[panns-cnn14]``,
``is_audio[panns-cnn14]``).

Conventions (av-benchmark's ``Cnn14`` with the 16 kHz checkpoint, the backbone of MOVA's table;
PANNs ``audioset_tagging_cnn`` architecture):

* Audio: mono (channel mean), resampled with soxr HQ (:meth:`~mova_bench.media.DecodedClip.audio_at`;
  av-benchmark resamples with torchaudio's ``Resample``, panns-inference expects librosa-loaded
  audio: the resampler is recorded in the cache identity), DC removed (the whole clip's mean
  subtracted, as av-benchmark's loader does before resampling, which passes DC with gain 1), then
  truncated to ``max_seconds`` (8 s, av-benchmark's ``audio_length``), never padded. Clips too short for the network (under 32 STFT frames, 0.31 s
  at 16 kHz) get :func:`~mova_bench.features.vggish.missing_features` (NaN embedding and logits,
  left out of FD and IS with a warning, and ``"missing_reason"``).
* ``sample_rate`` 16000 (default; checkpoint ``Cnn14_16k_mAP=0.438.pth``, weights entry
  ``panns-cnn14-16k``): STFT window = FFT 512, hop 160, 64 mel, 50–8000 Hz. ``sample_rate``
  32000 (``Cnn14_mAP=0.431.pth``, ``panns-cnn14-32k``, panns-inference's default): 1024 / 320 /
  64 mel / 50–14,000 Hz.
* Front end inside the network, as torchlibrosa 0.1: reflect padding of n_fft/2 each side, STFT
  as two 1-D convolutions whose kernels (periodic Hann × DFT) are **in the state dict**, power
  spectrum, × the Slaney mel matrix ``melW`` (librosa's, also in the state dict),
  ``10·log10(max(x, 1e-10))``, no top-dB clip; then ``bn0`` over the mel axis. The kernels and
  mel matrix in the file are checked against the configured sample rate: a 16 kHz file with the
  32 kHz configuration (or the reverse) is an error, not silently other numbers.
* Network (eval mode, no dropout/SpecAugment): six blocks of (conv3×3-BN-ReLU)×2 with 2×2
  average pooling (none after the last), mean over frequency, max + mean over time,
  ``fc1`` (2048) + ReLU.
* Output: ``"embedding"`` (2048,) = ReLU(fc1) (av-benchmark's ``"2048"``, FD) and ``"logits"``
  (527,) = ``fc_audioset`` before the sigmoid (av-benchmark's ``"logits"``, used by IS and KL;
  panns-inference only returns the sigmoid ``clipwise_output``). One vector per clip.
* Weights: layout ``{'model': state_dict}`` with 84 tensors; 81,033,231 parameters in the 16 kHz
  model counting the STFT kernels and mel matrix (they are ``nn.Parameter`` upstream) and not the
  BatchNorm running statistics (81,837,071 at 32 kHz). Loaded with ``weights_only=True`` and
  ``strict=True``; a missing, extra or differently shaped key is an error naming it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import ConfigError, MovaBenchError
from mova_bench.features.base import TorchBackbone
from mova_bench.features.vggish import check_max_seconds, check_state_dict, load_state, missing_features

N_MELS = 64
FMIN = 50.0
N_CLASSES = 527
EMBEDDING_DIM = 2048
AMIN = 1e-10
#: sample rate → (window = FFT size, hop, fmax, weights-registry entry)
VARIANTS: dict[int, tuple[int, int, float, str]] = {
    16000: (512, 160, 8000.0, "panns-cnn14-16k"),
    32000: (1024, 320, 14000.0, "panns-cnn14-32k"),
}
#: five 2×2 average pools on the time axis: fewer STFT frames leave nothing to pool
MIN_FRAMES = 32
N_KEYS = 84
N_PARAMS_16K = 81_033_231
N_PARAMS_32K = 81_837_071
BLOCK_CHANNELS = (64, 128, 256, 512, 1024, 2048)


def variant(sample_rate: int) -> tuple[int, int, float, str]:
    """(n_fft, hop, fmax, weights entry) of a CNN14 sample rate; ConfigError for others."""
    try:
        return VARIANTS[int(sample_rate)]
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"panns-cnn14: sample_rate {sample_rate!r} has no checkpoint; valid: {sorted(VARIANTS)}",
            fix="use sample_rate=16000 (av-benchmark, MOVA) or 32000 (panns-inference)",
        ) from None


@lru_cache(maxsize=4)
def stft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_fft//2+1, 1, n_fft) float32 real and imaginary STFT kernels: periodic Hann × e^{-2πi kn/N}
    (torchlibrosa's ``conv_real`` / ``conv_imag``, window length = FFT size)."""
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    phase = 2.0 * np.pi * k * n[None, :] / n_fft
    real = (np.cos(phase) * window).astype(np.float32)[:, None, :]
    imag = (-np.sin(phase) * window).astype(np.float32)[:, None, :]
    return real, imag


@lru_cache(maxsize=4)
def mel_matrix(sample_rate: int) -> np.ndarray:
    """(n_fft//2+1, 64) float32 Slaney mel matrix of librosa (torchlibrosa's ``melW``)."""
    import librosa

    n_fft, _, fmax, _ = variant(sample_rate)
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=N_MELS, fmin=FMIN, fmax=fmax).T.astype(np.float32)


def build_cnn14_model(sample_rate: int = 16000, n_classes: int = N_CLASSES):
    """CNN14 with panns' module names (``spectrogram_extractor.stft.conv_real.weight``,
    ``logmel_extractor.melW``, ``bn0``, ``conv_block{1..6}.{conv1,conv2,bn1,bn2}``, ``fc1``,
    ``fc_audioset``); STFT kernels and mel matrix filled for ``sample_rate``, the rest random."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    n_fft, hop, _, _ = variant(sample_rate)

    class _Kernel(nn.Module):
        """Holds a fixed STFT kernel as ``weight`` (a frozen parameter, as torchlibrosa's Conv1d)."""

        def __init__(self, value: np.ndarray) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.from_numpy(value.copy()), requires_grad=False)

    class _Stft(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            real, imag = stft_kernels(n_fft)
            self.conv_real, self.conv_imag = _Kernel(real), _Kernel(imag)

    class _Spectrogram(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stft = _Stft()

        def forward(self, wav: torch.Tensor) -> torch.Tensor:
            """(B, N) → (B, 1, frames, n_fft//2+1) power spectrum, frames centred (reflect)."""
            x = F.pad(wav[:, None, :], (n_fft // 2, n_fft // 2), mode="reflect")
            re = F.conv1d(x, self.stft.conv_real.weight, stride=hop)
            im = F.conv1d(x, self.stft.conv_imag.weight, stride=hop)
            return (re**2 + im**2).transpose(1, 2)[:, None]

    class _LogMel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.melW = nn.Parameter(torch.from_numpy(mel_matrix(sample_rate).copy()), requires_grad=False)

        def forward(self, power: torch.Tensor) -> torch.Tensor:
            return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=AMIN))  # ref = 1, no top_db

    class _ConvBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.bn2 = nn.BatchNorm2d(c_out)

        def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
            x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
            return F.avg_pool2d(x, 2) if pool else x

    class Cnn14Net(nn.Module):
        """(B, N) waveform → {"embedding": (B, 2048) ReLU(fc1), "logits": (B, 527) pre-sigmoid}."""

        def __init__(self) -> None:
            super().__init__()
            self.spectrogram_extractor = _Spectrogram()
            self.logmel_extractor = _LogMel()
            self.bn0 = nn.BatchNorm2d(N_MELS)
            c_in = 1
            for i, c_out in enumerate(BLOCK_CHANNELS, start=1):
                setattr(self, f"conv_block{i}", _ConvBlock(c_in, c_out))
                c_in = c_out
            self.fc1 = nn.Linear(2048, EMBEDDING_DIM)
            self.fc_audioset = nn.Linear(EMBEDDING_DIM, n_classes)

        def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
            x = self.logmel_extractor(self.spectrogram_extractor(wav))  # (B, 1, T, 64)
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BatchNorm over the mel bins
            for i in range(1, len(BLOCK_CHANNELS) + 1):
                x = getattr(self, f"conv_block{i}")(x, pool=i < len(BLOCK_CHANNELS))
            x = x.mean(dim=3)  # over frequency
            x = x.max(dim=2).values + x.mean(dim=2)  # over time
            embedding = F.relu(self.fc1(x))
            return {"embedding": embedding, "logits": self.fc_audioset(embedding)}

    return Cnn14Net()


def load_cnn14(path: Any, sample_rate: int = 16000):
    """CNN14 with the weights of ``path`` (panns layout ``{'model': state_dict}``), eval mode.

    The file's STFT kernels and mel matrix must be those of ``sample_rate`` (shape and values).
    """
    entry = variant(sample_rate)[3]
    ckpt = load_state(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        keys = sorted(ckpt)[:5] if isinstance(ckpt, dict) else "-"
        raise MovaBenchError(
            f"{path}: expected the panns layout {{'model': state_dict}}, got {type(ckpt).__name__} with keys {keys}",
            fix=f"use the Zenodo PANNs checkpoint (mova-bench weights fetch {entry})",
        )
    return cnn14_from_state(ckpt["model"], sample_rate, f"CNN14 checkpoint {path}")


def cnn14_from_state(state: dict, sample_rate: int = 16000, source: str = "CNN14 state dict"):
    """CNN14 for ``sample_rate`` with ``state`` loaded strictly, after checking keys, shapes and that
    the state's STFT kernels and mel matrix are those of ``sample_rate`` (within 1e-4)."""
    n_fft, _, _, entry = variant(sample_rate)
    model = build_cnn14_model(sample_rate)
    check_state_dict(state, model, f"{source} (sample_rate={sample_rate}, n_fft={n_fft})")
    expected = model.state_dict()
    for key in ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                "logmel_extractor.melW"):
        diff = float((state[key].float() - expected[key]).abs().max())
        if not diff <= 1e-4:
            raise MovaBenchError(
                f"{source}: {key} differs from the {sample_rate} Hz front end (n_fft {n_fft}, 64 mel, {FMIN:g}-"
                f"{variant(sample_rate)[2]:g} Hz) by {diff:.3g}: the file was made for another STFT/mel configuration",
                fix=f"pass the sample_rate the file was trained at, or use the {entry} weights (mova-bench weights fetch {entry})",
            )
    model.load_state_dict(state, strict=True)
    return model.eval()


class PannsCnn14(TorchBackbone):
    """PANNs CNN14 2048-d clip embeddings (FD) and 527 AudioSet logits (IS)."""

    name: ClassVar[str] = "panns-cnn14"
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "audio"
    kind: ClassVar[str] = "embedding"
    display_name: ClassVar[str] = "PANNs CNN14"
    description: ClassVar[str] = (
        "PANNs CNN14 (16 kHz checkpoint by default, as av-benchmark): 2048-d ReLU(fc1) clip embedding for FD, "
        "527 pre-sigmoid AudioSet logits for IS; DC removed, first 8 s, never padded"
    )
    weights: ClassVar[tuple[str, ...]] = ("panns-cnn14-16k",)
    extra: ClassVar[str] = "audio"
    audio_rate: ClassVar[int | None] = 16000
    frame_level: ClassVar[bool] = False
    metric_names: ClassVar[dict[str, str]] = {}
    dim: ClassVar[int] = EMBEDDING_DIM

    def __init__(self, **params: Any):
        super().__init__(**params)
        check_max_seconds(self.name, self.params["max_seconds"])
        entry = variant(self.params["sample_rate"])[3]
        # the weights entry and the decoded rate follow the variant (instance attributes shadow the class defaults)
        self.weights = (entry,)
        self.audio_rate = int(self.params["sample_rate"])

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        # sample_rate: 16000 (av-benchmark/MOVA) or 32000 (panns-inference); max_seconds: av-benchmark's 8 s
        return {"sample_rate": 16000, "max_seconds": 8.0, "remove_dc": True}

    def preprocessing(self) -> dict[str, Any]:
        n_fft, hop, fmax, _ = variant(self.params["sample_rate"])
        return {
            **super().preprocessing(), "n_fft": n_fft, "hop": hop,
            "mel": f"slaney {N_MELS} {FMIN:g}-{fmax:g} Hz, power, 10log10(max(x,{AMIN:g}))",
            "outputs": "embedding=relu(fc1) 2048, logits=fc_audioset pre-sigmoid 527",
        }

    def build(self, paths: dict, device: Any):
        entry = variant(self.params["sample_rate"])[3]
        return load_cnn14(paths[entry], int(self.params["sample_rate"])).to(device)

    def waveform(self, clip: Any) -> np.ndarray:
        """The clip's mono float32 input at the variant's rate, truncated and DC-removed per the params."""
        sr = int(self.params["sample_rate"])
        audio = clip.audio_at(sr)
        if self.params.get("remove_dc") and audio.size:
            # the mean of the whole clip, before truncation (av-benchmark subtracts it from the file as read)
            audio = (audio - np.mean(audio, dtype=np.float64)).astype(np.float32)
        if self.params.get("max_seconds") is not None:
            audio = audio[: int(round(float(self.params["max_seconds"]) * sr))]
        return np.ascontiguousarray(audio, dtype=np.float32)

    def embed(self, clip: Any) -> dict[str, np.ndarray]:
        import torch

        wav = self.waveform(clip)
        if self._too_short(wav):
            return self._missing(wav)
        return self._outputs(self._rows(torch.from_numpy(wav)[None])[0])

    def embed_batch(self, clips: list[Any]) -> list[dict[str, np.ndarray]]:
        """Clips whose waveforms have the same length go through the network together
        (``batch_size`` clips per forward pass, default all): CNN14 pools over the whole clip, so
        clips are never padded to a common length; with ``max_seconds`` every clip at least that
        long has the same length. Each clip's outputs equal its own forward's."""
        import torch

        from mova_bench.features.base import forward_in_slices

        out: list[Any] = [None] * len(clips)
        by_length: dict[int, list[tuple[int, Any]]] = {}
        for i, clip in enumerate(clips):
            wav = self.waveform(clip)
            if self._too_short(wav):
                out[i] = self._missing(wav)
            else:
                by_length.setdefault(wav.size, []).append((i, torch.from_numpy(wav)[None]))
        for group in by_length.values():
            for (i, _), row in zip(group, forward_in_slices([x for _, x in group], self.batch_size, self._rows)):
                out[i] = self._outputs(row[0])
        return out

    def _too_short(self, wav: np.ndarray) -> bool:
        sr = int(self.params["sample_rate"])
        return 1 + wav.size // variant(sr)[1] < MIN_FRAMES or wav.size <= variant(sr)[0] // 2

    def _missing(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        sr = int(self.params["sample_rate"])
        hop = variant(sr)[1]
        out = missing_features(EMBEDDING_DIM, f"the audio lasts {wav.size / sr:.2f} s; CNN14 needs at least "
                               f"{(MIN_FRAMES - 1) * hop / sr:.2f} s ({MIN_FRAMES} STFT frames) to pool", frame_level=False)
        out["logits"] = np.full(N_CLASSES, np.nan, np.float32)
        return out

    def _rows(self, x: Any) -> Any:
        """(B, 2048 + 527) CPU float32: the embeddings and logits of waveforms ``x`` (B, n)."""
        import torch

        out = self.model(x.to(self.device))
        return torch.cat([out["embedding"].float(), out["logits"].float()], dim=1).cpu()

    @staticmethod
    def _outputs(row: Any) -> dict[str, np.ndarray]:
        row = row.numpy().astype(np.float32)
        return {"embedding": row[:EMBEDDING_DIM], "logits": row[EMBEDDING_DIM:]}
