"""``ib_score[imagebind]``: IB-score, the ImageBind cosine of a clip's audio and video (higher is better).

Convention (av-benchmark @ ``050a5cdb9bbd1a6f8cbb9fdde076992a695e2501``, ``av_bench/evaluate.py``; the
IB-score of MMAudio's and MOVA's tables; JavisBench's ``ib_av`` is the same cosine): per clip,
``cosine(audio embedding, video embedding)`` of ImageBind huge, where the video embedding is the
mean of the unit embeddings of 2-frame clips (0.5 fps frames of the first 8 s, consecutive pairs,
3 spatial crops) and the audio embedding the mean of three 2 s clips' embeddings (normalised ×20);
the preprocessing is in :mod:`mova_bench.features.imagebind`. The value is the mean over clips of
that cosine, in [−1, 1] (papers print it ×100: 0.33 here is "33.0" there), with a 95% percentile
bootstrap CI over clips (:func:`mova_bench.stats.bootstrap_ci`, seeded). No reference set is needed.

JavisBench (``ib_av``, JavisVerse/JavisDiT @ ``b505b37``) computes the video embedding with ImageBind's
own ``load_and_transform_video_data``: the first and last frame of five 2 s clips spread over the whole
video, bilinear short-side resize without antialias, 3 crops (15 two-frame clips); its audio side is
the same as av-benchmark's. ``--profile javisbench`` selects that recipe (backbone parameter
``video_recipe=javisbench``, part of the feature cache's identity; see
:mod:`mova_bench.features.imagebind` for the exact arithmetic and what differs: PyAV instead of
decord, the clip's own audio stream instead of the generator's ``.wav``). The two recipes' numbers
are not comparable with each other.

Clips the backbone could not score (under ≈ 3 s of video or 25 ms of audio: status ``too_short``)
are left out and counted in ``extra``. Per clip (per_clip.parquet): ``ib_score[imagebind]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mova_bench.metrics.base import ClipMeanMetric


def clip_ib_score(feats: dict[str, Any]) -> float | None:
    """A clip's IB-score, or None when the backbone did not score it."""
    if str(feats.get("status", "ok")) != "ok" or "ib_score" not in feats:
        return None
    value = float(np.asarray(feats["ib_score"]))
    return value if math.isfinite(value) else None


class IBScore(ClipMeanMetric):
    """Mean over clips of ImageBind's audio–video cosine (higher is better)."""

    name = "ib_score"
    display_name = "IB-score (audio–video)"
    unit = "cos"
    higher_is_better = True
    default_backbone = "imagebind"
    backbone_modality = "av"
    requires = ("{backbone}",)
    needs_reference = False
    named_by_backbone = True  # "IB-score [imagebind]"
    short_fix = "IB-score needs about 3 s of video (two frames at 0.5 fps) and 25 ms of audio per clip: generate longer clips"
    excluded_warning = "{n} clip(s) could not be scored by ImageBind and are left out"
    convention = (
        "av-benchmark IB-Score (commit 050a5cd): per clip cosine(audio, video) of ImageBind huge embeddings, in [-1, 1] "
        "(papers print x100). Video: first 8 s at 0.5 fps (FFmpeg fps-filter rule), short side 224 bicubic antialias, "
        "CLIP mean/std, 3 spatial crops, consecutive frame pairs as 2-frame clips, mean of unit embeddings. Audio: whole "
        "clip, 16 kHz (soxr HQ; av-benchmark: torchaudio sinc), 3 evenly spaced 2 s clips, Kaldi fbank (128 bins, "
        "Hanning 25/10 ms, dither 0) padded/cut to 204 frames, (x+4.268)/9.138, mean of normalised x20 embeddings. "
        "Value: mean over clips; 95% percentile bootstrap CI over clips. Clips too short to score are excluded and "
        "counted."
    )

    def clip_value(self, feats: dict[str, Any]) -> float | None:
        return clip_ib_score(feats)

    def extra_for(self, scored: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"scale": "cosine in [-1, 1]; x100 in papers"}
