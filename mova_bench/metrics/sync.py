"""Weight-free audio-visual sync metrics: ``sync_offset_ms``, ``sync_offset_abs_ms``, ``in_sync_rate``,
``in_sync_rate_synchronizable``, ``synchronizable_rate``, ``av_align``.

All are computed from per-clip analyzer features of the generated set alone (no reference set):
``sync_dsp`` (:mod:`mova_bench.features.sync`) for the first five, ``av_align``
(:mod:`mova_bench.features.av_align`) for the last.

Scored offset of a clip
    The ``sync_dsp`` offset (ms, + = audio late). When the clip's manifest row carries
    ``expected_offset_ms = [lo, hi]`` (a prompt that is late by design, e.g. distant thunder
    arriving 300-1500 ms after the flash), the scored offset is the residual
    ``offset - clamp(offset, lo, hi)``: 0 inside the expected range, the distance to the nearer
    end outside it. Otherwise (``None`` or absent) it is the raw offset.

Synchronizable clips, and which metric counts which clips
    A clip is synchronizable when its ``sync_dsp`` status is ``ok``; the others (silent audio,
    frozen video, no audio onsets, no visual motion, low confidence) are counted in ``extra``:
    ``n_not_synchronizable``, ``not_synchronizable_reasons`` ({status: count}) and ``n_total``
    (clips with ``sync_dsp`` features, the *analysed* clips).

    * Over **all analysed clips** (``n`` = ``n_total``), so that a model cannot improve them by
      making hard clips unsynchronizable (freezing its video, going silent): ``in_sync_rate``
      (a clip that is not synchronizable is not in sync) and ``synchronizable_rate``.
    * Over **synchronizable clips only** (``n`` = their number; skipped with the reason when
      there are none, never 0 or a sentinel): ``sync_offset_ms`` and ``sync_offset_abs_ms`` (an
      offset exists only where the analyser found one) and ``in_sync_rate_synchronizable`` (the
      in-sync share among them). Read them with ``synchronizable_rate``; gate on both.

    Per clip (per_clip.parquet): ``sync_scored_offset_ms`` (signed scored offset of every
    synchronizable clip), ``in_sync`` (1 when synchronizable and inside the BT.1359 window, else 0,
    for every analysed clip) and ``synchronizable`` (1 or 0). 95% CIs are percentile bootstraps
    over clips (:func:`mova_bench.stats.bootstrap_ci`, seeded with the run seed).

AV-Align
    Mean over all analysed clips of the per-clip IoU; a clip with neither audio onsets nor video
    peaks (``no_events``) scores 0 and stays in the mean, as MOVA's implementation does.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from mova_bench.errors import ConfigError
from mova_bench.metrics.base import FeatureSet, Metric, MetricResult, collect_clip_values
from mova_bench.stats import bootstrap_ci

#: ITU-R BT.1359 detectability thresholds: audio early by more than 45 ms or late by more than
#: 125 ms is noticed. In our sign convention (+ = audio late): in sync iff -45 <= offset <= +125.
BT1359_EARLY_MS = 45.0
BT1359_LATE_MS = 125.0

_SYNC_CONVENTION = (
    "Weight-free onset-to-motion offset from the sync_dsp analyzer. Audio envelope: spectral flux "
    "(half-wave rectified increase, band mean, dB) of a 40-band log-mel spectrogram at 16 kHz, "
    "16 ms Hann window, 4 ms hop (250 Hz), stamps corrected for STFT centring. Video envelope: "
    "half-wave rectified increases of the positive frame difference (gain-normalised frames) and "
    "of the positive change of mean brightness, on 64-px-wide BT.601 grey frames, stamped at frame "
    "presentation times. Both noise-gated, put on one 4 ms grid of the shared timeline "
    "(audio_start and video pts honoured), normalised cross-correlation within +-max_lag_ms "
    "(default 1000 ms, suites may widen it), parabolic sub-sample peak. When the clip shows no visual "
    "onset, the video envelope is instead the change of velocity of tracked objects (impacts: bounces, "
    "collisions, strikes; 128-px-wide frames, median background, connected components, common "
    "acceleration such as gravity removed). Sign: + = audio late. Clips that are silent, frozen, without "
    "salient audio onsets or visual events, or whose correlation peak is below 0.5 or less than "
    "1.2x the next peak are not synchronizable and counted in extra. A prompt's "
    "expected_offset_ms [lo, hi] (late by design, e.g. distant thunder) is honoured by scoring the "
    "residual offset - clamp(offset, lo, hi); otherwise the raw offset is scored. CI: 95% "
    "percentile bootstrap over clips (1000 resamples, seeded)."
)


def scored_offset(offset_ms: float, expected: Any) -> float:
    """The offset a clip is scored by: the residual outside ``expected = [lo, hi]``, or the raw offset."""
    if expected is None:
        return float(offset_ms)
    try:
        lo, hi = (float(x) for x in expected)
    except (TypeError, ValueError):
        raise ConfigError(f"expected_offset_ms must be [lo, hi] in ms or null, got {expected!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ConfigError(f"expected_offset_ms must be a finite range [lo, hi] with lo <= hi, got {expected!r}")
    return float(offset_ms) - min(max(float(offset_ms), lo), hi)


def collect_ok_values(gen: FeatureSet, extractor: str, key: str) -> tuple[dict[str, float], Counter[str], int]:
    """Per-clip ``key`` of every clip whose ``extractor`` status is ok and value finite.

    Returns (clip id -> value, excluded-status counts, number of clips that had features).
    """
    return collect_clip_values(gen, extractor, lambda feats: float(feats[key]), f"nan_{key}")


def collect_scored_offsets(gen: FeatureSet, extractor: str = "sync_dsp") -> tuple[dict[str, float], dict[str, Any]]:
    """(clip id -> scored offset for synchronizable clips, extra counts) from ``sync_dsp`` features."""
    offsets, reasons, n_total = collect_ok_values(gen, extractor, "offset_ms")
    scored: dict[str, float] = {}
    n_expected = 0
    for cid, offset in offsets.items():
        expected = (gen.meta.get(cid) or {}).get("expected_offset_ms")
        n_expected += expected is not None
        scored[cid] = scored_offset(offset, expected)
    extra = {
        "n_not_synchronizable": int(sum(reasons.values())),
        "not_synchronizable_reasons": dict(sorted(reasons.items())),
        "n_total": n_total,
        "n_with_expected_offset": int(n_expected),
    }
    missing = len(gen.clip_ids) - n_total
    if missing:
        extra["n_missing_features"] = missing
    return scored, extra


def _nothing_analysed(metric: Metric, extra: dict[str, Any]) -> MetricResult:
    return metric.skipped(
        "no clip has sync_dsp features (nothing was analysed)",
        "check that the run's clips decoded (see manifest.jsonl status) and rerun the evaluation",
        extra=extra,
    )


_NOT_SYNCHRONIZABLE_FIX = (
    "the clips need audible onsets and visible events (onsets, flashes or impacts); for sounds late "
    "by design set expected_offset_ms on the prompt and widen the sync_dsp max_lag_ms in the suite"
)


class _SyncMetric(Metric):
    """A statistic of the scored offsets of synchronizable clips (skipped when there are none)."""

    requires = ("sync_dsp",)
    needs_reference = False
    unit = "ms"

    def _statistic(self, values: np.ndarray) -> float:
        raise NotImplementedError

    def _per_clip(self, scored: dict[str, float]) -> dict[str, float]:
        return {}

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        scored, extra = collect_scored_offsets(gen)
        if not scored:
            if extra["n_total"] == 0:
                return _nothing_analysed(self, extra)
            why = ", ".join(f"{k}: {v}" for k, v in extra["not_synchronizable_reasons"].items())
            return self.skipped(
                f"no clip is synchronizable ({extra['n_total']} analysed; {why})", _NOT_SYNCHRONIZABLE_FIX, extra=extra
            )
        ids = list(scored)
        values = np.array([scored[c] for c in ids], dtype=np.float64)
        lo, hi = bootstrap_ci(values, self._statistic, seed=seed)
        warnings = []
        if values.size < 2:
            warnings.append("a single synchronizable clip: no confidence interval")
        if extra["n_not_synchronizable"]:
            warnings.append(
                f"over the {values.size} synchronizable clips of {extra['n_total']} analysed: read with synchronizable_rate"
            )
        return self.result(
            self._statistic(values),
            n=int(values.size),
            ci_low=lo,
            ci_high=hi,
            extra=extra,
            per_clip=self._per_clip(scored),
            warnings=warnings,
        )


def _in_window(v: float) -> bool:
    return -BT1359_EARLY_MS <= v <= BT1359_LATE_MS


class _RateOverAnalysed(Metric):
    """A share of all analysed clips (``n`` = clips with sync_dsp features), each clip 0 or 1."""

    requires = ("sync_dsp",)
    needs_reference = False
    unit = "fraction"
    higher_is_better = True

    def _indicator(self, scored: dict[str, float], cid: str) -> float:
        raise NotImplementedError

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        scored, counts = collect_scored_offsets(gen)
        # every analysed clip is in the rate: the not-synchronizable ones are counted (as 0), not left out
        extra = {k: v for k, v in counts.items() if k != "n_not_synchronizable"}
        extra["n_synchronizable"] = len(scored)
        extra["n_counted_as_0_not_synchronizable"] = counts["n_not_synchronizable"]
        per = gen.features.get("sync_dsp", {})
        ids = [c for c in gen.clip_ids if per.get(c) is not None]
        if not ids:
            return _nothing_analysed(self, extra)
        values = np.array([self._indicator(scored, c) for c in ids], dtype=np.float64)
        lo, hi = bootstrap_ci(values, np.mean, seed=seed)
        warnings = []
        if values.size < 2:
            warnings.append("a single analysed clip: no confidence interval")
        if not scored:
            warnings.append(f"no clip is synchronizable ({extra['n_total']} analysed): {_NOT_SYNCHRONIZABLE_FIX}")
        return self.result(
            float(values.mean()),
            n=int(values.size),
            ci_low=lo,
            ci_high=hi,
            extra=extra,
            per_clip={c: float(v) for c, v in zip(ids, values)},
            warnings=warnings,
        )


class SyncOffset(_SyncMetric):
    """Signed median scored offset (ms, + = audio late) of synchronizable clips. Closer to 0 is better."""

    name = "sync_offset_ms"
    display_name = "Sync offset (median, + = audio late)"
    unit = "ms"
    #: two-sided: neither larger nor smaller is better, closer to 0 is (see sync_offset_abs_ms)
    higher_is_better = None
    convention = (
        "Signed median over synchronizable clips of the scored offset (ms); closer to 0 is better "
        "(two-sided: higher_is_better is null); read with synchronizable_rate. " + _SYNC_CONVENTION
    )

    per_clip_column = "sync_scored_offset_ms"

    def _statistic(self, values: np.ndarray) -> float:
        return float(np.median(values))

    def _per_clip(self, scored: dict[str, float]) -> dict[str, float]:
        return {c: float(v) for c, v in scored.items()}


class SyncOffsetAbs(_SyncMetric):
    """Mean absolute scored offset (ms) of synchronizable clips. Lower is better."""

    name = "sync_offset_abs_ms"
    display_name = "Sync offset |mean abs|"
    unit = "ms"
    higher_is_better = False
    convention = (
        "Mean over synchronizable clips of |scored offset| (ms); lower is better. Clips that are not "
        "synchronizable have no offset and are not in it: read with synchronizable_rate (a model "
        "cannot improve both by making hard clips unsynchronizable). " + _SYNC_CONVENTION
    )

    def _statistic(self, values: np.ndarray) -> float:
        return float(np.mean(np.abs(values)))


_BT1359_TEXT = (
    f"the ITU-R BT.1359 detectability window: audio at most {BT1359_EARLY_MS:g} ms early and at most "
    f"{BT1359_LATE_MS:g} ms late, i.e. -{BT1359_EARLY_MS:g} <= scored offset <= +{BT1359_LATE_MS:g} ms "
    f"(bounds inclusive)"
)


class InSyncRate(_RateOverAnalysed):
    """Share of all analysed clips that are synchronizable and within ITU-R BT.1359."""

    name = "in_sync_rate"
    display_name = "In-sync rate (ITU-R BT.1359, all clips)"
    convention = (
        f"Share of all analysed clips (clips with sync_dsp features) that are synchronizable and whose "
        f"scored offset is inside {_BT1359_TEXT}; a clip that is not synchronizable (silent, frozen, "
        f"no onsets or visual events, low confidence) counts as not in sync, so making hard clips "
        f"unsynchronizable cannot raise it. Higher is better. Per clip: in_sync = 1 or 0 for every "
        f"analysed clip. The share among synchronizable clips only is in_sync_rate_synchronizable. "
        + _SYNC_CONVENTION
    )

    per_clip_column = "in_sync"

    def _indicator(self, scored: dict[str, float], cid: str) -> float:
        return float(cid in scored and _in_window(scored[cid]))


class InSyncRateSynchronizable(_SyncMetric):
    """Share of synchronizable clips within ITU-R BT.1359 (conditional on being synchronizable)."""

    name = "in_sync_rate_synchronizable"
    display_name = "In-sync rate among synchronizable clips"
    unit = "fraction"
    higher_is_better = True
    convention = (
        f"Share of synchronizable clips only whose scored offset is inside {_BT1359_TEXT}; higher is "
        f"better. Conditional: it ignores clips that are not synchronizable, so read it with "
        f"synchronizable_rate (the headline in_sync_rate counts every analysed clip). No per-clip "
        f"column of its own (see in_sync). " + _SYNC_CONVENTION
    )

    def _statistic(self, values: np.ndarray) -> float:
        return float(np.mean((values >= -BT1359_EARLY_MS) & (values <= BT1359_LATE_MS)))


class SynchronizableRate(_RateOverAnalysed):
    """Share of analysed clips the sync analyser could synchronise (status ok). Higher is better."""

    name = "synchronizable_rate"
    display_name = "Synchronizable rate"
    convention = (
        "Share of all analysed clips (clips with sync_dsp features) whose sync_dsp status is ok: "
        "audible onsets, a visible onset or impact, and a confident correlation peak (>= 0.5 and "
        ">= 1.2x the next peak within +-max_lag_ms). Higher is better; the reasons of the others are "
        "in extra (not_synchronizable_reasons). Per clip: synchronizable = 1 or 0. A suite whose "
        "prompts have nothing to synchronise (ambience) reads 0 by design. " + _SYNC_CONVENTION
    )

    per_clip_column = "synchronizable"

    def _indicator(self, scored: dict[str, float], cid: str) -> float:
        return float(cid in scored)


class AVAlign(Metric):
    """Mean AV-Align IoU over all analysed clips (no events: 0). Higher is better."""

    name = "av_align"
    display_name = "AV-Align (onset / flow-peak IoU)"
    unit = "IoU"
    higher_is_better = True
    per_clip_column = "av_align_iou"
    requires = ("av_align",)
    needs_reference = False
    convention = (
        "AV-Align (Yariv et al., TempoTokens), mova-bench's convention (profile mova-bench): audio onsets from "
        "librosa.onset.onset_detect (onset_strength defaults, hop 512) on the audio resampled to 22050 Hz (soxr HQ); "
        "video peaks are strict local maxima >= 0.1 (source-resolution pixels) of the mean Farneback optical-flow "
        "magnitude (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2). Decode resize: the "
        "frames are decoded at <= 256 px on the longer side (bilinear, libswscale), converted to BT.601 grey and "
        "area-downscaled to <= 128 px wide, and each mean magnitude is multiplied by source width / analysis width; "
        "events are stamped at frame presentation times and audio_start is honoured. One-to-one maximum matching "
        "with |a - v| <= 1/fps (inclusive); IoU = matches / (|A| + |V| - matches) per clip; the metric is the mean "
        "over all analysed clips, a clip with neither onsets nor peaks (IoU undefined, status no_events) scoring 0 "
        "and staying in the mean, as MOVA's implementation does (counted in extra: n_no_events). 95% percentile "
        "bootstrap CI over clips (seeded). How it differs from the peers: every reference (TempoTokens 2023 and "
        "2025, MOVA, JavisBench) runs the flow on the file's full-resolution frames (no resize), uses a strict "
        "window |a - v| < 1/fps and times k/fps; the rescaled low-resolution flow of a brightness change (a "
        "lightning flash) can cross the 0.1 gate where the full-resolution one does not, so per-clip values differ. "
        "It is faster (18x on a 384x216 clip, 54x at 640x360, growing with the frame area) and "
        "resolution-normalised; --profile tempotokens-2025, mova-eval-2026 or javisbench reproduces a peer's "
        "figures exactly (docs/profiles.md)."
    )

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        per = gen.features.get("av_align", {})
        ious: dict[str, float] = {}
        reasons: Counter[str] = Counter()
        for cid in gen.clip_ids:
            feats = per.get(cid)
            if feats is None:
                continue
            status, iou = str(feats["status"]), float(feats["iou"])
            if status != "ok" or not math.isfinite(iou):
                reasons[status if status != "ok" else "nan_iou"] += 1
                iou = 0.0
            ious[cid] = iou
        extra: dict[str, Any] = {
            "n_no_events": int(sum(reasons.values())),
            "no_events_reasons": dict(sorted(reasons.items())),
            "n_total": len(ious),
        }
        if len(gen.clip_ids) - len(ious):
            extra["n_missing_features"] = len(gen.clip_ids) - len(ious)
        if not ious:
            return self.skipped(
                "no clip has av_align features (nothing was analysed)",
                "check that the run's clips decoded (see manifest.jsonl status) and rerun the evaluation",
                extra=extra,
            )
        values = np.array(list(ious.values()), dtype=np.float64)
        lo, hi = bootstrap_ci(values, np.mean, seed=seed)
        warnings = ["a single clip: no confidence interval"] if values.size < 2 else []
        if extra["n_no_events"]:
            warnings.append(f"{extra['n_no_events']} clip(s) with neither audio onsets nor video peaks score 0")
        return self.result(
            float(values.mean()),
            n=int(values.size),
            ci_low=lo,
            ci_high=hi,
            extra=extra,
            per_clip=dict(ious),
            warnings=warnings,
        )
