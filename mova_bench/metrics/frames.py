"""``fid_frames[inception-v3]``: image FID over video frames, as image-generation papers report it.

Every sampled frame of every clip is one sample: the per-frame 2048-d InceptionV3 pool features
(``"frames"`` of the ``inception-v3`` backbone, frames sampled at 1 fps by default, resized to 299
px by torch-fidelity) of all generated clips are pooled into one matrix, those of all reference
clips into another, and the value is the Fréchet distance between Gaussians fitted to the two
(mean and unbiased n−1 covariance over frames, float64). That is torch-fidelity's / pytorch-fid's
FID of the two sets of frames; it equals ``torch_fidelity.metric_fid.fid_statistics_to_metric`` on
the same pooled features (tests/test_backbone_inception.py).

The computation is the shared one of :mod:`mova_bench.metrics.distribution` for frame-level
backbones (``fd_video`` on a ``frame_level`` backbone pools frame rows the same way), so
``fid_frames[inception-v3]`` and ``fd_video[inception-v3]`` are the same number with the same CI;
``fid_frames`` is the name the image literature gives it, and it insists on a frame-level backbone.
Frames of one clip are not independent: the 95% CI bootstraps **clips** (each drawn clip brings
all its frames; the reference is held fixed). A statistics .npz reference of a frame-level backbone
holds sums over all frame rows, so it serves as well.
"""

from __future__ import annotations

from typing import ClassVar

from mova_bench.metrics.base import FeatureSet, MetricResult
from mova_bench.metrics.distribution import FrechetVideo, is_frame_level

#: frames per second the ``inception-v3`` backbone samples by default (recorded in its cache identity)
DEFAULT_SAMPLE_FPS = 1.0


class FrameFID(FrechetVideo):
    """FID over the frames of all clips (image FID of video frames), CI over clips."""

    name = "fid_frames"
    display_name = "FID (frames)"
    backbone_modality = "video"
    default_backbone = "inception-v3"
    higher_is_better: ClassVar[bool | None] = False

    @classmethod
    def describe_convention(cls, backbone: str | None, dim: int | None = None, n_boot: int | None = None) -> str:
        dims = f"{dim}-d " if dim else ""
        boot = n_boot if n_boot is not None else "200, fewer (≥ 20) for large frames·dim²"
        return (
            f"FID over frames: Fréchet distance between Gaussians fitted to the {dims}per-frame '{backbone}' features "
            "of every sampled frame of every clip, pooled per side (inception-v3: torch-fidelity's TF-FID InceptionV3, "
            f"2048-d pool, frames sampled at {DEFAULT_SAMPLE_FPS:g} fps unless its fps parameter says otherwise, "
            "resized to 299 px by torch-fidelity); mean and unbiased (n−1) covariance over frames in float64; "
            "tr√(Σ_ref Σ_gen) from symmetric eigenvalues (no sqrtm); equals torch-fidelity's FID on the same pooled "
            f"features. 95% CI: bootstrap over generated clips, each drawn clip with all its frames ({boot} resamples, "
            "seeded; reference fixed): percentile interval re-centred on the estimate, or, below 200 resamples, the "
            "normal interval from the bootstrap SE (extra.ci_method)."
        )

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        bb = self.backbone or ""
        if not is_frame_level(bb):
            return self.result(
                None, status="failed",
                reason=f"backbone {bb!r} is not frame-level (no per-frame 'frames' features): fid_frames pools frames",
                fix="use fid_frames[inception-v3], or fd_video[<backbone>] for per-clip embeddings",
            )
        res = super().compute(gen, ref, seed=seed)
        if res.status == "ok":
            res.convention = self.describe_convention(bb, res.extra.get("dim"), res.extra.get("n_boot"))
            n_rows = int(res.extra.get("n_rows", res.n))
            res.extra["n_frames"] = n_rows
            res.extra["frames_per_clip"] = n_rows / res.n if res.n else None
            res.extra.pop("fd_infinity", None)  # never computed for pooled frames
        return res


__all__ = ["FrameFID", "DEFAULT_SAMPLE_FPS"]
