"""``inception-v3``: per-frame InceptionV3 pool features for image-style FID (``fid_frames[inception-v3]``).

Conventions (BACKBONES.md, "InceptionV3"; torch-fidelity 0.4):

* **Network**: torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF 2015-12-05 FID Inception,
  with its TF quirks; torchvision's InceptionV3 is no substitute), weights from the weights entry
  ``inception-v3`` (``weights-inception-2015-12-05-6726825d.pth``, a plain state dict of 566 tensors)
  through ``feature_extractor_weights_path``; its downloader is never used. The file is first read
  with ``torch.load(weights_only=True)`` (tensors only, no code) after the weights registry checked
  size and SHA-256, and only then handed to torch-fidelity (which reads it with ``weights_only=False``
  and ``load_state_dict(strict=True)``).
* **Input**: frames decoded at their native size, sampled at ``fps`` (1.0) frames per second: the
  first decoded frame of every ``1/fps`` interval counted from the first frame (``VideoNeed("native",
  fps=1)``), as uint8 (N, 3, H, W); torch-fidelity resizes them to 299×299 itself (TF1-compatible
  bilinear) and scales ``(x − 128)/128``.
* **Output** (frame level): ``"frames"`` (k, 2048) float32, the 2048-d average pool ("2048") of each
  sampled frame, and ``"embedding"`` (2048,) their mean. FID over frames pools the rows of every
  clip (:mod:`mova_bench.metrics.frames`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import ConfigError
from mova_bench.features.base import TorchBackbone
from mova_bench.features.i3d import FeatureMissing, WeightsFileError
from mova_bench.media import VideoNeed

FEATURE = "2048"
DIM = 2048
N_KEYS = 566
#: frames per forward pass (bounds memory: 32 × 3 × 299² floats ≈ 34 MB of input)
CHUNK = 32


def load_inception(path: str | Path) -> Any:
    """torch-fidelity's InceptionV3 (feature "2048") with the weights at ``path``, in eval mode.

    Raises :class:`~mova_bench.features.i3d.WeightsFileError` naming the problem when the file is not
    a plain state dict of tensors or its keys/shapes do not fit (torch's strict-load message names
    each missing and unexpected key)."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    fix = "re-download it: mova-bench weights fetch inception-v3"
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not this checkpoint"
        raise WeightsFileError(f"{path}: cannot read it as a PyTorch state dict of tensors ({type(exc).__name__}: {exc})",
                               fix=fix) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: expected a plain state dict (name → tensor) as torch-fidelity's file, "
                               f"got {type(state).__name__}", fix=fix)
    del state
    try:
        model = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE], feature_extractor_weights_path=str(path))
    except RuntimeError as exc:  # load_state_dict(strict=True): names missing/unexpected keys and shapes
        raise WeightsFileError(
            f"{path} does not match torch-fidelity's InceptionV3 ({N_KEYS} keys expected): {exc}",
            fix="use torch-fidelity's weights-inception-2015-12-05-6726825d.pth (mova-bench weights fetch inception-v3)",
        ) from None
    return model.eval()


class InceptionV3(TorchBackbone):
    """torch-fidelity's FID InceptionV3: 2048-d pool features of frames sampled at 1 fps."""

    name = "inception-v3"
    version = "1"
    modality = "video"
    kind = "embedding"
    family = "standard"
    display_name = "InceptionV3 (FID, torch-fidelity)"
    description = "torch-fidelity's TF-FID InceptionV3, 2048-d pool of frames sampled at 1 fps"
    weights: ClassVar[tuple[str, ...]] = ("inception-v3",)
    extra = "video"
    requires = ("torch", "torch_fidelity")
    video_needs: ClassVar[tuple[VideoNeed, ...]] = (VideoNeed("native", fps=1.0),)
    audio_rate = None
    uses_text = False
    frame_level = True
    #: fd_video on this frame-level backbone pools the same frames: the same number as fid_frames
    metric_names = {"fid_frames": "FID (frames)", "fd_video": "FID (frames)"}

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"fps": 1.0}

    def __init__(self, **params: Any):
        super().__init__(**params)
        fps = self.params["fps"]
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not fps > 0:
            raise ConfigError(f"inception-v3: fps={fps!r} must be a positive number of frames per second",
                              fix="use fps=1.0 (one frame per second, the default)")
        self.params["fps"] = float(fps)
        self.video_needs = (VideoNeed("native", fps=self.params["fps"]),)

    def build(self, paths: dict[str, Path], device: Any) -> Any:
        return load_inception(paths["inception-v3"]).to(device)

    def embed(self, clip: Any) -> dict[str, np.ndarray]:
        return self._outputs(self._forward(self._frames_tensor(clip)))

    def embed_batch(self, clips: list[Any]) -> list[dict[str, np.ndarray] | FeatureMissing]:
        """The frames of all the clips through the network together, ``batch_size`` (default 32)
        frames per forward pass across clip boundaries, clips of one frame size at a time (the
        network resizes each batch to 299 px); each clip's features equal its own forward's."""
        from mova_bench.features.base import forward_in_slices

        out: list[Any] = [None] * len(clips)
        by_size: dict[tuple[int, ...], list[tuple[int, Any]]] = {}
        for i, clip in enumerate(clips):
            try:
                x = self._frames_tensor(clip)
            except FeatureMissing as exc:
                out[i] = exc
                continue
            by_size.setdefault(tuple(x.shape[1:]), []).append((i, x))
        for group in by_size.values():
            feats = forward_in_slices([x for _, x in group], int(self.batch_size or CHUNK), self._rows)
            for (i, _), f in zip(group, feats):
                out[i] = self._outputs(f.numpy().astype(np.float32))
        return out

    def _frames_tensor(self, clip: Any) -> Any:
        """(k, 3, H, W) uint8 frames at ``fps``; FeatureMissing when the clip has none."""
        import torch

        frames = clip.frames(self.video_needs[0])
        if len(frames) == 0:
            raise FeatureMissing(self.name, "the clip has no video frames to sample", reason="no_video_stream")
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)

    def _rows(self, x: Any) -> Any:
        return self.model(x.to(self.device))[0].float().cpu()

    def _forward(self, x: Any) -> np.ndarray:
        import torch

        rows = [self._rows(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
        return torch.cat(rows).numpy().astype(np.float32)

    @staticmethod
    def _outputs(feats: np.ndarray) -> dict[str, np.ndarray]:
        return {"frames": feats, "embedding": feats.mean(axis=0, dtype=np.float64).astype(np.float32)}
