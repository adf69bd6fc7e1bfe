"""``i3d``: the Kinetics-400 I3D video embedding of FVD (``fd_video[i3d]`` = FVD, ``kid_video[i3d]``).

Conventions (BACKBONES.md, "I3D (FVD)"):

* **Network**: Inception-v1 I3D (Carreira & Zisserman 2017) with 400 Kinetics classes, written here
  with the module and parameter names of the TATS / cd-fvd checkpoint ``i3d_pretrained_400.pt``
  (weights entry ``i3d-400``; 344 tensors, 12,697,264 parameters; plain state dict). Every
  convolution and max pool pads TensorFlow-"SAME" style (``max(k − s, 0)`` or ``max(k − n mod s, 0)``
  zeros, the smaller half in front), batch norm eps 1e-5. Alternatively the StyleGAN-V TorchScript
  file (weights entry ``i3d-torchscript``, ``weights="i3d-torchscript"``) is loaded with
  ``torch.jit.load`` (after the weights registry verified its size and SHA-256: TorchScript runs
  code on load) and called as ``forward(x, rescale=False, resize=False, return_features=True)`` on
  the same preprocessed input (the convention of common_metrics_on_video_quality and its
  descendants). StyleGAN-V's own ``compute_fvd`` passes uint8 with ``rescale=True, resize=True``
  and lets the graph resize (interpolation hidden): numbers from that route differ from ours by
  that resize only.
* **Embedding**: the 400 Kinetics logits **before the softmax, averaged over time** (cd-fvd
  ``get_i3d_logits``; StyleGAN-V ``return_features=True``), not the 1024-d Mixed_5c pool.
* **Input**: ``frames`` (16) frames from the start of the clip, every ``stride``-th (1: consecutive),
  decoded at the stream's native size and resized in torch so that the preprocessing equals the
  reference bit for bit:

  - ``resize="stretch"`` (default; TF FVD, cd-fvd ``preprocess_i3d``): uint8 → float32,
    ``F.interpolate(size=(224, 224), mode="bilinear", align_corners=False)`` (no antialias),
    aspect ratio not kept;
  - ``resize="short-side-crop"`` (JavisBench): bilinear (align_corners=False, no antialias) so the
    shorter side is 224 (the longer one ``round(L·224/S)``), then a centre 224×224 crop at offset
    ``round((L − 224)/2)`` (torchvision ``center_crop``).

  Values are then ``2·x/255 − 1`` ∈ [−1, 1], layout (1, 3, T, 224, 224). ``frames`` must be ≥ 9
  (at 8 the last temporal pool is larger than its input); a clip with fewer frames than the window
  needs gets no I3D features (missing, with the reason).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import ConfigError, MovaBenchError
from mova_bench.features.base import FeatureMissing, TorchBackbone, WeightsFileError, check_state_dict  # noqa: F401 - re-exported
from mova_bench.media import VideoNeed

#: smallest window the architecture accepts (time 16 → 8 → 4 → 2 → avg-pool 2; 8 frames reach 1 < 2)
MIN_FRAMES = 9
SIZE = 224
NUM_CLASSES = 400
RESIZE_MODES = ("stretch", "short-side-crop")
WEIGHT_ENTRIES = ("i3d-400", "i3d-torchscript")
#: key count and parameter count of ``i3d_pretrained_400.pt`` (BACKBONES.md §3)
N_KEYS = 344
N_PARAMS = 12_697_264

#: Inception modules: name, input channels, (b0, b1a, b1b, b2a, b2b, b3b) output channels
_MIXED: tuple[tuple[str, int, tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)

#: the network as a sequence of stages: ("unit", name, in, out, kernel, stride) | ("pool", kernel, stride) | ("mixed", name)
_STAGES: tuple[tuple[Any, ...], ...] = (
    ("unit", "Conv3d_1a_7x7", 3, 64, (7, 7, 7), (2, 2, 2)),
    ("pool", (1, 3, 3), (1, 2, 2)),
    ("unit", "Conv3d_2b_1x1", 64, 64, (1, 1, 1), (1, 1, 1)),
    ("unit", "Conv3d_2c_3x3", 64, 192, (3, 3, 3), (1, 1, 1)),
    ("pool", (1, 3, 3), (1, 2, 2)),
    ("mixed", "Mixed_3b"),
    ("mixed", "Mixed_3c"),
    ("pool", (3, 3, 3), (2, 2, 2)),
    ("mixed", "Mixed_4b"),
    ("mixed", "Mixed_4c"),
    ("mixed", "Mixed_4d"),
    ("mixed", "Mixed_4e"),
    ("mixed", "Mixed_4f"),
    ("pool", (2, 2, 2), (2, 2, 2)),
    ("mixed", "Mixed_5b"),
    ("mixed", "Mixed_5c"),
)
_LOGITS_POOL = (2, 7, 7)  # average pool before the logits, stride 1



# --------------------------------------------------------------------------- the network


def _same_pad(x: Any, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Any:
    """Zero-pad the last three dims of ``x`` TensorFlow-"SAME" style for ``kernel``/``stride``."""
    import torch.nn.functional as F

    pads: list[int] = []
    for k, s, n in zip(reversed(kernel), reversed(stride), reversed(tuple(x.shape[2:]))):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


@functools.lru_cache(maxsize=None)
def _network_classes() -> tuple[type, type, type]:
    """The torch module classes (built on first use, so that importing this module needs no torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Unit(nn.Module):
        """Conv3d (no bias unless ``bias``) on SAME-padded input, then BatchNorm3d and ReLU (optional)."""

        def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), *, bn: bool = True,
                     bias: bool = False, relu: bool = True):
            super().__init__()
            self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
            self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, padding=0, bias=bias)
            self.bn = nn.BatchNorm3d(cout, eps=1e-5, momentum=0.001) if bn else None

        def forward(self, x):
            x = self.conv3d(_same_pad(x, self.kernel, self.stride))
            if self.bn is not None:
                x = self.bn(x)
            return F.relu(x) if self.relu else x

    class Mixed(nn.Module):
        """Inception module: 1×1 | 1×1→3×3×3 | 1×1→3×3×3 | SAME max pool 3×3×3→1×1, concatenated."""

        def __init__(self, cin: int, c: tuple[int, ...]):
            super().__init__()
            self.b0 = Unit(cin, c[0])
            self.b1a = Unit(cin, c[1])
            self.b1b = Unit(c[1], c[2], (3, 3, 3))
            self.b2a = Unit(cin, c[3])
            self.b2b = Unit(c[3], c[4], (3, 3, 3))
            self.b3b = Unit(cin, c[5])

        def forward(self, x):
            pooled = F.max_pool3d(_same_pad(x, (3, 3, 3), (1, 1, 1)), (3, 3, 3), stride=(1, 1, 1))
            return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)], dim=1)

    class InceptionI3d(nn.Module):
        """I3D with the TATS/cd-fvd parameter names; ``forward`` returns (B, classes) logits averaged over time."""

        def __init__(self, num_classes: int = NUM_CLASSES):
            super().__init__()
            mixed = {name: (cin, c) for name, cin, c in _MIXED}
            for stage in _STAGES:
                if stage[0] == "unit":
                    _, name, cin, cout, kernel, stride = stage
                    self.add_module(name, Unit(cin, cout, kernel, stride))
                elif stage[0] == "mixed":
                    cin, c = mixed[stage[1]]
                    self.add_module(stage[1], Mixed(cin, c))
            self.logits = Unit(384 + 384 + 128 + 128, num_classes, bn=False, bias=True, relu=False)

        def forward(self, x):
            for stage in _STAGES:
                if stage[0] == "pool":
                    x = F.max_pool3d(_same_pad(x, stage[1], stage[2]), stage[1], stride=stage[2])
                else:
                    x = getattr(self, stage[1])(x)
            x = self.logits(F.avg_pool3d(x, _LOGITS_POOL, stride=1))  # dropout: identity in eval
            return x.flatten(3).mean(dim=3).mean(dim=2)  # spatial is 1×1 at 224 px; then mean over time

    return Unit, Mixed, InceptionI3d


def inception_i3d(num_classes: int = NUM_CLASSES) -> Any:
    """A fresh (randomly initialised) I3D with the checkpoint's parameter names, in eval mode."""
    return _network_classes()[2](num_classes).eval()


def load_state_dict_strict(model: Any, path: str | Path, what: str = "i3d-400") -> Any:
    """Load a plain state dict from ``path`` into ``model`` with ``weights_only=True``; every missing
    or unexpected key and every shape mismatch raises :class:`WeightsFileError` naming them."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not this checkpoint"
        raise WeightsFileError(
            f"{path}: cannot read it as a PyTorch state dict ({type(exc).__name__}: {exc})",
            fix=f"re-download it: mova-bench weights fetch {what}",
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(
            f"{path}: expected a plain state dict (name → tensor) as in the upstream {what} file, got {type(state).__name__}",
            fix=f"re-download it: mova-bench weights fetch {what}",
        )
    check_state_dict(state, model, f"{path} ({what})",
                     fix=f"use the upstream file (mova-bench weights fetch {what}); a checkpoint of another I3D variant does not fit")
    model.load_state_dict(state, strict=True)
    return model.eval()


# --------------------------------------------------------------------------- preprocessing


def preprocess(frames: np.ndarray, resize: str = "stretch", device: Any = None) -> Any:
    """uint8 (T, H, W, 3) RGB → float32 torch tensor (1, 3, T, 224, 224) in [−1, 1], on ``device``
    (the uint8 frames move there first, so a GPU does the resize).

    ``stretch`` reproduces cd-fvd's ``preprocess_i3d`` operation for operation (float32 cast,
    ``F.interpolate`` bilinear ``align_corners=False`` to 224×224, ``2·x/255 − 1``);
    ``short-side-crop`` resizes the shorter side to 224 the same way and centre-crops (JavisBench).
    """
    import torch
    import torch.nn.functional as F

    if resize not in RESIZE_MODES:
        raise ConfigError(f"i3d: resize={resize!r} is not one of {', '.join(RESIZE_MODES)}",
                          fix="use resize='stretch' (cd-fvd / TF FVD) or resize='short-side-crop' (JavisBench)")
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"i3d.preprocess expects uint8 frames (T, H, W, 3), got {arr.dtype} {arr.shape}")
    t, h, w, c = arr.shape
    x = torch.from_numpy(np.ascontiguousarray(arr))
    if device is not None:
        x = x.to(device)
    x = x.to(torch.float32).permute(0, 3, 1, 2).contiguous()
    if resize == "stretch":
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    else:
        short = min(h, w)
        nh, nw = (SIZE, int(round(w * SIZE / short))) if h <= w else (int(round(h * SIZE / short)), SIZE)
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
        top, left = int(round((nh - SIZE) / 2.0)), int(round((nw - SIZE) / 2.0))
        x = x[:, :, top : top + SIZE, left : left + SIZE]
    x = x.reshape(1, t, c, SIZE, SIZE).transpose(1, 2).contiguous()  # (1, 3, T, 224, 224)
    return 2.0 * x / 255.0 - 1


def window_indices(n_frames: int, frames: int, stride: int) -> np.ndarray | None:
    """Indices of the ``frames``-frame window from the start, every ``stride``-th; None when too short."""
    need = (frames - 1) * stride + 1
    if n_frames < need:
        return None
    return np.arange(frames) * stride


# --------------------------------------------------------------------------- the backbone


class I3D(TorchBackbone):
    """FVD's I3D: 400 Kinetics logits (pre-softmax, mean over time) of the first 16 frames at 224×224."""

    name = "i3d"
    version = "1"
    modality = "video"
    kind = "embedding"
    family = "standard"
    display_name = "I3D (Kinetics-400)"
    description = "Inception-v1 I3D, Kinetics-400 logits of 16 frames at 224×224 (FVD)"
    weights: ClassVar[tuple[str, ...]] = ("i3d-400",)
    extra = "video"
    requires = ("torch",)
    #: native-size frames, the first ``(frames − 1)·stride + 1`` only (set per instance from the parameters)
    video_needs: ClassVar[tuple[VideoNeed, ...]] = (VideoNeed("native", max_frames=16),)
    audio_rate = None
    uses_text = False
    frame_level = False
    metric_names = {"fd_video": "FVD", "kid_video": "KVD"}

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"frames": 16, "stride": 1, "resize": "stretch", "weights": "i3d-400"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        p = self.params
        frames, stride = p["frames"], p["stride"]
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < MIN_FRAMES:
            raise ConfigError(
                f"i3d: frames={frames!r}: expected an integer window of at least {MIN_FRAMES} frames "
                "(with 8 or fewer, I3D's last temporal pool is larger than its input and the forward pass fails)",
                fix="use frames=16 (the FVD convention) or any integer ≥ 9",
            )
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ConfigError(f"i3d: stride={stride!r} must be an integer ≥ 1", fix="use stride=1 (consecutive frames)")
        if p["resize"] not in RESIZE_MODES:
            raise ConfigError(f"i3d: resize={p['resize']!r} is not one of {', '.join(RESIZE_MODES)}",
                              fix="use resize='stretch' (cd-fvd / TF FVD) or resize='short-side-crop' (JavisBench)")
        if p["weights"] not in WEIGHT_ENTRIES:
            raise ConfigError(f"i3d: weights={p['weights']!r} is not one of {', '.join(WEIGHT_ENTRIES)}",
                              fix="use weights='i3d-400' (TATS/cd-fvd state dict) or weights='i3d-torchscript' (StyleGAN-V)")
        self.params["frames"], self.params["stride"] = int(frames), int(stride)
        self.weights = (p["weights"],)
        self.video_needs = (VideoNeed("native", max_frames=self.window_length),)

    @property
    def window_length(self) -> int:
        """Frames the window spans: ``(frames − 1)·stride + 1``."""
        return (self.params["frames"] - 1) * self.params["stride"] + 1

    def build(self, paths: dict[str, Path], device: Any) -> Any:
        import torch

        entry = self.params["weights"]
        path = paths[entry]
        if entry == "i3d-torchscript":
            # TorchScript runs code on load: the weights registry has verified size and SHA-256 before this
            import warnings

            with warnings.catch_warnings():  # torch 2.14 flags torch.jit as deprecated; this file is TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                model = torch.jit.load(str(path), map_location="cpu")
        else:
            model = load_state_dict_strict(inception_i3d(), path, entry)
        return model.to(device).eval()

    def embed(self, clip: Any) -> dict[str, np.ndarray]:
        """``{"embedding": (400,) float32}``: the window's Kinetics logits, pre-softmax, mean over time."""
        return {"embedding": self._logits(self._window(clip))[0]}

    def embed_batch(self, clips: list[Any]) -> list[dict[str, np.ndarray] | FeatureMissing]:
        """The clips' windows through the network together, ``batch_size`` clips per forward pass;
        every window is 224×224 after preprocessing, whatever the clip's size, and batch norm runs
        in eval mode, so each clip's logits equal its own forward's. Without a ``batch_size``: all
        the clips in one forward on CUDA, one clip per forward on the CPU (there the 3-D
        convolutions gain nothing from a batch: 8 clips per forward measured 0.8x the speed of
        one, ``benchmarks/bench_batched_analysis.py``)."""
        from mova_bench.features.base import forward_in_slices

        out: list[Any] = [None] * len(clips)
        inputs, where = [], []
        for i, clip in enumerate(clips):
            try:
                inputs.append(self._window(clip))
                where.append(i)
            except FeatureMissing as exc:
                out[i] = exc
        size = self.batch_size or (None if str(self.device).startswith("cuda") else 1)
        for i, emb in zip(where, forward_in_slices(inputs, size, self._logits_tensor)):
            out[i] = {"embedding": emb.numpy().reshape(-1).astype(np.float32)}
        return out

    def _window(self, clip: Any) -> Any:
        """The clip's preprocessed window (1, 3, T, 224, 224) on ``self.device``; FeatureMissing when too short."""
        frames = clip.frames(self.video_needs[0])
        idx = window_indices(len(frames), self.params["frames"], self.params["stride"])
        if idx is None:
            raise FeatureMissing(self.name, f"the clip has {len(frames)} frames; the I3D window needs {self.window_length} "
                                 f"(frames={self.params['frames']}, stride={self.params['stride']})")
        return preprocess(frames[idx], self.params["resize"], device=self.device)

    def _logits_tensor(self, x: Any) -> Any:
        """(B, 400) float32 CPU logits of preprocessed windows ``x`` (B, 3, T, 224, 224)."""
        if self.params["weights"] == "i3d-torchscript":
            out = self.model(x, rescale=False, resize=False, return_features=True)
        else:
            out = self.model(x)
        out = out.detach().float().cpu().reshape(x.shape[0], -1)
        if out.shape[1] != NUM_CLASSES:
            raise WeightsFileError(
                f"i3d ({self.params['weights']}) returned {out.shape[1]} values per clip; expected {NUM_CLASSES} Kinetics logits",
                fix=f"use the upstream file (mova-bench weights fetch {self.params['weights']})",
            )
        return out

    def _logits(self, x: Any) -> np.ndarray:
        """(B, 400) float32 numpy logits of preprocessed windows ``x``."""
        return self._logits_tensor(x).numpy().astype(np.float32)
