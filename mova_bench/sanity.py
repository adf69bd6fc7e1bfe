"""``mova-bench sanity``: validation of every weight-free metric by controlled degradation.

The procedural world is an oracle: its knobs inject known defects, so each metric must move the
way it claims. Each check names the metric, the knob, the knob values, what was measured and
whether it passed. A failing check means a metric does not measure what it says.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mova_bench.cache import home as cache_home
from mova_bench.console import log
from mova_bench.pipeline import run
from mova_bench.registry import metrics as metric_registry
from mova_bench.suites import load_suite

OFFSETS = (-200.0, -80.0, 0.0, 80.0, 200.0)
SYNC_METRICS = ["sync_offset_ms", "sync_offset_abs_ms", "in_sync_rate"]


def _value(outcome, key: str) -> float | None:
    m = outcome.metrics.get(key)
    return None if m is None or m.get("value") is None else float(m["value"])


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 4)
    if isinstance(v, (list, tuple)):
        return [_round(x) for x in v]
    return v


def run_sanity(suite: str = "impacts_set", *, out: str | None = None, samples_per_prompt: int | None = None) -> dict[str, Any]:
    s = load_suite(suite)
    root = Path(out) if out else cache_home() / "sanity"
    root.mkdir(parents=True, exist_ok=True)
    frame_ms = 1000.0 / s.defaults.fps
    checks: list[dict[str, Any]] = []

    def do(params: dict[str, Any], metrics: list[str]):
        return run("procedural", suite, out=str(root), params={k: str(v) for k, v in params.items()},
                   metrics=metrics, samples_per_prompt=samples_per_prompt, backbones="classical")

    def add(metric: str, knob: str, values: list, measured: list, passed: bool, expect: str) -> None:
        checks.append({"metric": metric, "knob": knob, "values": _round(list(values)), "measured": _round(list(measured)),
                       "passed": bool(passed), "expect": expect})
        log(f"sanity: {'PASS' if passed else 'FAIL'} {metric} vs {knob}: {_round(list(measured))}")

    # 1. sync offset recovery and the BT.1359 window
    offs, rates, ious = [], [], []
    for o in OFFSETS:
        res = do({"av_offset_ms": o}, SYNC_METRICS + ["av_align"])
        offs.append(_value(res, "sync_offset_ms"))
        rates.append(_value(res, "in_sync_rate"))
        ious.append(_value(res, "av_align"))
    ok = all(v is not None and abs(v - o) <= frame_ms for v, o in zip(offs, OFFSETS))
    add("sync_offset_ms", "av_offset_ms", OFFSETS, offs, ok, f"median recovers the injected offset within one frame ({frame_ms:.1f} ms)")
    inside = [r for r, o in zip(rates, OFFSETS) if -45 <= o <= 125]
    outside = [r for r, o in zip(rates, OFFSETS) if not -45 <= o <= 125]
    ok = all(r is not None for r in rates) and min(inside) >= 0.8 and max(outside) <= 0.2
    add("in_sync_rate", "av_offset_ms", OFFSETS, rates, ok, "≥0.8 inside the BT.1359 window (−45..+125 ms), ≤0.2 outside")

    centre = ious[OFFSETS.index(0.0)]
    far = [v for v, o in zip(ious, OFFSETS) if abs(o) >= 200]
    ok = centre is not None and all(v is not None for v in far) and centre > 2 * max(far)
    add("av_align", "av_offset_ms", OFFSETS, ious, ok, "IoU at 0 ms more than twice the IoU at ±200 ms (beyond its ±1 frame match window)")

    # 2. distribution metrics grow with degradation
    def monotone(metric: str, knob: str, values: list[float]) -> None:
        measured = [_value(do({knob: v}, [metric.split("[")[0]]), metric) for v in values]
        ok = all(m is not None for m in measured) and all(b > a for a, b in zip(measured, measured[1:]))
        add(metric, knob, values, measured, ok, "strictly increasing")

    monotone("fd_video[vstats]", "video_noise", [0.0, 0.04, 0.1, 0.25])
    monotone("fd_video[vstats]", "blur", [0.0, 1.0, 2.5, 5.0])
    monotone("fd_video[vstats]", "flicker", [0.0, 0.05, 0.15, 0.4])
    monotone("sync_offset_abs_ms", "jitter_ms", [0.0, 20.0, 60.0])
    monotone("fd_audio[melstats]", "audio_noise", [0.0, 0.01, 0.04, 0.15])
    monotone("kid_audio[melstats]", "audio_noise", [0.0, 0.04, 0.15])

    # 3. the detector: indistinguishable when clean, separated when degraded
    det = metric_registry.get("detector_auc")().key
    clean = _value(do({}, ["detector_auc"]), det)
    bad = _value(do({"video_noise": 0.15, "audio_noise": 0.08, "blur": 2.0}, ["detector_auc"]), det)
    ok = clean is not None and bad is not None and clean <= 0.75 and bad >= 0.9
    add(det, "video_noise+audio_noise+blur", ["clean", "degraded"], [clean, bad], ok,
        "clean ≤ 0.75 (near 0.5), strongly degraded ≥ 0.9")

    # 4. nothing to synchronise → not synchronizable, never a number
    for knob in ("freeze_video", "silent_audio"):
        res = do({knob: True}, SYNC_METRICS)
        m = res.metrics["sync_offset_ms"]
        n_ns = (m.get("extra") or {}).get("n_not_synchronizable", 0)
        ok = m["status"] == "skipped" and m.get("value") is None and n_ns == res.n_clips
        add("sync_offset_ms", knob, [True], [f"{m['status']}, {n_ns}/{res.n_clips} not synchronizable"], ok,
            "every clip reported as not synchronizable; no offset")

    return {"passed": all(c["passed"] for c in checks), "suite": s.name, "checks": checks}
