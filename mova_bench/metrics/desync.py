"""``desync[synchformer]``: DeSync, the audio-visual offset Synchformer predicts, in seconds (lower is better).

Convention (av-benchmark @ ``050a5cdb9bbd1a6f8cbb9fdde076992a695e2501``, ``av_bench/evaluate.py``; the
DeSync of MMAudio's and MOVA's tables): per clip, Synchformer's offset class (argmax of 21 logits,
−2…+2 s step 0.2) on the first 14 segments (0–4.8 s) and on the last 14 segments (3.2–8.0 s of the
first 8 s); DeSync is the mean of ``|offset|`` over all those windows. Every clip contributes two
windows, so it equals the mean over clips of the per-clip DeSync, which is what is reported here,
with a 95% percentile bootstrap CI over clips (:func:`mova_bench.stats.bootstrap_ci`, seeded).
The preprocessing is in :mod:`mova_bench.features.synchformer`.

Clips the backbone could not score (shorter than 4.8 s of video or audio: status ``too_short``)
are left out and counted in ``extra`` (av-benchmark drops clips shorter than its 8 s window from
the mean too). Per clip (per_clip.parquet): ``desync_s``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mova_bench.metrics.base import ClipMeanMetric


def _grid() -> np.ndarray:
    from mova_bench.features.synchformer import class_grid

    return class_grid()


def clip_desync(feats: dict[str, Any]) -> float | None:
    """A clip's DeSync (mean ``|offset|`` of its windows, from the argmax classes), or None when
    the backbone did not score it."""
    if str(feats.get("status", "ok")) != "ok":
        return None
    cls = np.asarray(feats["offset_class"]).reshape(-1)
    grid = _grid()
    if cls.size == 0 or np.any(cls < 0) or np.any(cls >= grid.size):
        return None
    return float(np.mean(np.abs(grid[cls.astype(np.int64)])))


class DeSync(ClipMeanMetric):
    """Mean over clips of Synchformer's |offset| on the first and last 4.8 s (seconds; lower is better)."""

    name = "desync"
    display_name = "DeSync (Synchformer offset)"
    unit = "s"
    higher_is_better = False
    default_backbone = "synchformer"
    backbone_modality = "av"
    requires = ("{backbone}",)
    needs_reference = False
    per_clip_column = "desync_s"
    short_fix = "DeSync needs at least 4.8 s of video and audio per clip (8 s for av-benchmark's windows): generate longer clips"
    excluded_warning = "{n} clip(s) too short for Synchformer's 4.8 s windows are left out"
    convention = (
        "av-benchmark DeSync (commit 050a5cd): Synchformer (AudioSet 24-01-04T16-39-21, MMAudio weights); first 8 s "
        "of each stream from its start; video 25 fps (FFmpeg fps-filter rule), short side 224 bicubic + centre crop, "
        "(x/255-0.5)/0.5, 16-frame segments step 8; audio 16 kHz (soxr HQ; av-benchmark: torchaudio sinc), "
        "10240-sample segments step 5120, power mel (n_fft 1024, win 400, hop 160, 128 HTK mels), log(x+1e-6), "
        "zero-pad to 66 frames, (x+4.2677393)/(2*4.5689974); offset = argmax of 21 classes -2..+2 s step 0.2 on the "
        "first 14 and the last 14 segments (0-4.8 s and 3.2-8.0 s); DeSync = mean |offset| over both windows "
        "of every clip (= mean of per-clip means). Clips shorter than 8 s use what they have (>= 4.8 s of both "
        "streams; av-benchmark drops them); shorter clips are excluded and counted. 95% percentile bootstrap CI "
        "over clips (1000 resamples, seeded)."
    )

    def clip_value(self, feats: dict[str, Any]) -> float | None:
        return clip_desync(feats)

    def extra_for(self, scored: dict[str, dict[str, Any]]) -> dict[str, Any]:
        signed = [float(o) for f in scored.values() for o in np.asarray(f["offset_s"], dtype=np.float64).reshape(-1)]
        return {"n_windows": 2 * len(scored), "mean_signed_offset_s": float(np.mean(signed)) if signed else None}
