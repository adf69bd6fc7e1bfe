"""``mova-bench sanity``: validation of every weight-free metric by controlled degradation.

The procedural world is an oracle: its knobs inject known defects, so each metric must move the
way it claims. Each check names the metric, the knob, the knob values, what was measured, what
the world says it should be, and whether it passed. A failing check means a metric does not
measure what it says.

What the world knows per clip
    Each clip's manifest row records ``info.true_offset_ms`` (the injected ``av_offset_ms``),
    ``info.physical_delay_ms`` (thunder: distance / 343 m/s, else 0) and ``info.events`` (each
    with its frame and the time its sound starts). A clip's *true offset* is the injected offset
    plus its physical delay; its *expected scored offset* is that, scored against the prompt's
    ``expected_offset_ms`` window as the metric scores a measurement; it *can be synchronised*
    when at least one event sounds inside the clip. The sync checks compare every clip's
    measurement with these (so a suite whose sounds are late by physics, e.g. distant thunder,
    is judged against its own truth), and a suite without events (ambience) is checked for what
    makes sense there: nothing synchronizable, no offset reported, rates of 0.

Impacts
    Independent of the suite, :func:`impact_clip` renders objects that bounce under gravity or
    collide (exact, event-driven impact times; small objects; shadows; motion blur) with a knock
    at each impact, and the sync analyser must recover injected offsets within one frame at 16,
    24 and 30 fps, through H.264/AAC, and must not synchronise steady motion, pans or fades.

A smaller run for tests: ``samples_per_prompt`` and ``prompts`` (a subset of the suite's prompt
ids, written as a suite file of its own next to the runs) shrink every run.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.cache import home as cache_home
from mova_bench.console import log
from mova_bench.pipeline import run
from mova_bench.registry import metrics as metric_registry
from mova_bench.suites import Suite, load_suite

OFFSETS = (-200.0, -80.0, 0.0, 80.0, 200.0)
JITTER_MS = (0.0, 20.0, 60.0)
SYNC_METRICS = ["sync_offset_ms", "sync_offset_abs_ms", "in_sync_rate", "synchronizable_rate"]
#: share of a suite's synchronizable clips that must be within one frame of their true offset
CLIP_SHARE_WITHIN_FRAME = 0.9
#: largest allowed |measured - expected| of a rate over all clips (a few clips near a window edge)
RATE_TOLERANCE = 0.15


def _value(outcome, key: str) -> float | None:
    m = outcome.metrics.get(key)
    return None if m is None or m.get("value") is None else float(m["value"])


def _round(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return None if not math.isfinite(v) else round(v, 4)
    if isinstance(v, (list, tuple)):
        return [_round(x) for x in v]
    return v


def _suite_for(suite: str, prompts: Iterable[str] | None, root: Path) -> tuple[Suite, str]:
    """The suite and the name or path to run it by; a prompt subset becomes a suite file of its own."""
    s = load_suite(suite)
    if not prompts:
        return s, suite
    want = list(dict.fromkeys(prompts))
    unknown = [p for p in want if s.prompt(p) is None]
    if unknown:
        from mova_bench.errors import ConfigError

        raise ConfigError(f"suite {s.name!r} has no prompt {', '.join(map(repr, unknown))}; "
                          f"its prompts: {', '.join(p.id for p in s.prompts)}")
    import yaml

    doc = s.model_dump(mode="json", exclude={"source", "include"})
    doc["prompts"] = [p for p in doc["prompts"] if p["id"] in want]
    for p in doc["prompts"]:  # first_frame is already absolute; drop empty fields
        for k in [k for k, v in p.items() if v is None]:
            del p[k]
    folder = root / "suites"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{s.name}-{'-'.join(want)}.yaml"
    if len(path.name) > 200:
        import hashlib

        path = folder / f"{s.name}-{hashlib.sha256(','.join(want).encode()).hexdigest()[:12]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_suite(path), str(path)


@dataclass
class _Clip:
    clip_id: str
    true_ms: float  # injected offset + physical delay
    expected_scored_ms: float  # true offset scored against the prompt's expected window
    syncable: bool  # at least one event sounds inside the clip
    status: str | None  # sync_dsp status (None: no sync features)
    raw_ms: float | None
    av_align: float | None


def _clips(outcome) -> list[_Clip]:
    """Every analysed clip of a run with what the world knows about it (manifest) and what was measured."""
    import pandas as pd

    from mova_bench.metrics.sync import scored_offset
    from mova_bench.store import read_manifest

    run_dir = Path(outcome.run_dir)
    manifest = {r["clip_id"]: r for r in read_manifest(run_dir / "manifest.jsonl")}
    per = pd.read_parquet(run_dir / "per_clip.parquet")
    out = []
    for r in per.to_dict("records"):
        row = manifest.get(r["clip_id"]) or {}
        info = row.get("info") or {}
        if r.get("status") != "ok" or "true_offset_ms" not in info:
            continue
        true_ms = float(info["true_offset_ms"]) + float(info.get("physical_delay_ms") or 0.0)
        duration = float(row.get("duration_s") or 0.0)
        syncable = any(0.0 <= float(e.get("audio_t", -1.0)) < duration - 0.05 for e in info.get("events") or [])

        def num(key: str) -> float | None:
            v = r.get(key)
            return None if v is None or not np.isfinite(float(v)) else float(v)

        out.append(_Clip(clip_id=r["clip_id"], true_ms=true_ms,
                         expected_scored_ms=scored_offset(true_ms, row.get("expected_offset_ms")),
                         syncable=syncable, status=r.get("sync_status"), raw_ms=num("sync_offset_raw_ms"),
                         av_align=num("av_align_iou")))
    return out


def _in_window(v: float) -> bool:
    from mova_bench.metrics.sync import BT1359_EARLY_MS, BT1359_LATE_MS

    return -BT1359_EARLY_MS <= v <= BT1359_LATE_MS


#: the groups of checks, in the order they run
CHECK_GROUPS = ("sync", "distribution", "detector", "impacts")


def run_sanity(suite: str = "impacts_set", *, out: str | None = None, samples_per_prompt: int | None = None,
               prompts: Iterable[str] | None = None, checks: Iterable[str] = CHECK_GROUPS) -> dict[str, Any]:
    """Run the ``checks`` groups on ``suite``; see the module docstring.

    ``sync``: offsets, rates and AV-Align against each clip's truth, jitter, frozen and silent
    clips; ``distribution``: Fréchet distances and KID against noise, blur and flicker;
    ``detector``: clean against degraded; ``impacts``: the impact clips (independent of the suite).
    ``samples_per_prompt`` and ``prompts`` (prompt ids of the suite) make every run smaller.
    """
    groups = list(dict.fromkeys(checks))
    unknown = [g for g in groups if g not in CHECK_GROUPS]
    if unknown:
        from mova_bench.errors import ConfigError

        raise ConfigError(f"unknown sanity check group(s) {', '.join(map(repr, unknown))}; valid: {', '.join(CHECK_GROUPS)}")
    root = Path(out) if out else cache_home() / "sanity"
    root.mkdir(parents=True, exist_ok=True)
    s, suite_ref = _suite_for(suite, prompts, root)
    frame_ms = 1000.0 / s.defaults.fps
    results: list[dict[str, Any]] = []

    def do(params: dict[str, Any], metrics: list[str]):
        return run("procedural", suite_ref, out=str(root), params={k: str(v) for k, v in params.items()},
                   metrics=metrics, samples_per_prompt=samples_per_prompt, backbones="classical")

    def add(metric: str, knob: str, values: list, measured: list, passed: bool, expect: str,
            expected: list | None = None) -> None:
        c = {"metric": metric, "knob": knob, "values": _round(list(values)), "measured": _round(list(measured)),
             "passed": bool(passed), "expect": expect}
        if expected is not None:
            c["expected"] = _round(list(expected))
            c["expect"] = f"expected {c['expected']}: {expect}"
        results.append(c)
        log(f"sanity: {'PASS' if passed else 'FAIL'} {metric} vs {knob}: {c['measured']}")

    # 1. sync: every clip against its true offset (injected + physical delay)
    any_syncable = False
    if "sync" in groups:
        runs = [do({"av_offset_ms": o}, SYNC_METRICS + ["av_align"]) for o in OFFSETS]
        per_run = [_clips(r) for r in runs]
        any_syncable = any(c.syncable for clips in per_run for c in clips)
        if any_syncable:
            _check_offsets(add, runs, per_run, frame_ms)
            _check_rates(add, runs, per_run)
            _check_av_align(add, runs, per_run, frame_ms)
        else:
            _check_nothing_to_sync(add, runs, per_run)

    if "sync" in groups and any_syncable:
        _check_jitter(add, [do({"jitter_ms": j}, SYNC_METRICS) for j in JITTER_MS])

    # 2. distribution metrics grow with degradation
    def monotone(metric: str, knob: str, values: list[float]) -> None:
        measured = [_value(do({knob: v}, [metric.split("[")[0]]), metric) for v in values]
        ok = all(m is not None for m in measured) and all(b > a for a, b in zip(measured, measured[1:]))
        add(metric, knob, values, measured, ok, "strictly increasing")

    if "distribution" in groups:
        monotone("fd_video[vstats]", "video_noise", [0.0, 0.04, 0.1, 0.25])
        monotone("fd_video[vstats]", "blur", [0.0, 1.0, 2.5, 5.0])
        monotone("fd_video[vstats]", "flicker", [0.0, 0.05, 0.15, 0.4])
        monotone("fd_audio[melstats]", "audio_noise", [0.0, 0.01, 0.04, 0.15])
        monotone("kid_audio[melstats]", "audio_noise", [0.0, 0.04, 0.15])

    # 3. the detector: indistinguishable when clean, separated when degraded
    if "detector" in groups:
        det = metric_registry.get("detector_auc")().key
        clean_run = do({}, ["detector_auc"])
        bad_run = do({"video_noise": 0.15, "audio_noise": 0.08, "blur": 2.0}, ["detector_auc"])
        clean, bad = _value(clean_run, det), _value(bad_run, det)
        ok = clean is not None and bad is not None and clean <= 0.75 and bad >= 0.9
        add(det, "video_noise+audio_noise+blur", ["clean", "degraded"], [clean, bad], ok,
            "clean ≤ 0.75 (near 0.5), strongly degraded ≥ 0.9")
        _check_detector_p_value(add, det, clean_run, bad_run)

    # 4. nothing to synchronise → not synchronizable, never a number; the rates over all clips fall to 0
    if "sync" in groups:
        for knob in ("freeze_video", "silent_audio"):
            res = do({knob: True}, SYNC_METRICS)
            m = res.metrics["sync_offset_ms"]
            n_ns = (m.get("extra") or {}).get("n_not_synchronizable", 0)
            ok = m["status"] == "skipped" and m.get("value") is None and n_ns == res.n_clips
            add("sync_offset_ms", knob, [True], [f"{m['status']}, {n_ns}/{res.n_clips} not synchronizable"], ok,
                "every clip reported as not synchronizable; no offset")
            rates = [_value(res, "synchronizable_rate"), _value(res, "in_sync_rate")]
            add("synchronizable_rate", knob, [True], rates, rates == [0.0, 0.0],
                "synchronizable_rate = 0 and in_sync_rate = 0 (counted over all clips, not skipped)", expected=[0.0, 0.0])

    # 5. impacts: bouncing and colliding objects with injected offsets
    if "impacts" in groups:
        results.extend(check_impacts(root / "impacts"))

    return {"passed": bool(results) and all(c["passed"] for c in results), "suite": s.name, "checks": results}


#: the permutation test's level in the detector check: two sets from one world must not reach it,
#: strongly degraded clips must (the p-value's floor is 1/(1 + n_permutations), 0.005 at 200)
DETECTOR_ALPHA = 0.01


def _check_detector_p_value(add, det: str, clean_run, bad_run) -> None:
    """The detector's label-permutation p-value (extra.p_value, with its null band): ≥ 0.01 for a
    clean set against a reference from the same world (chance reads as chance), < 0.01 degraded.
    Reads the two detector runs already made (no extra refits)."""
    def p_of(res) -> tuple[float | None, list | None]:
        extra = (res.metrics.get(det) or {}).get("extra") or {}
        p = extra.get("p_value")
        return (None if p is None else float(p)), extra.get("null_band")

    (p_clean, band_clean), (p_bad, _) = p_of(clean_run), p_of(bad_run)
    ok = p_clean is not None and p_bad is not None and p_clean >= DETECTOR_ALPHA and p_bad < DETECTOR_ALPHA
    band = (f"; clean null band [{band_clean[0]:.2f}, {band_clean[1]:.2f}]"
            if band_clean and None not in band_clean else "")
    add(f"{det} p_value", "video_noise+audio_noise+blur", ["clean", "degraded"], [p_clean, p_bad], ok,
        f"label-permutation p ≥ {DETECTOR_ALPHA:g} for clean clips against a reference from the same world "
        f"(indistinguishable), p < {DETECTOR_ALPHA:g} for strongly degraded clips{band}")


def _check_offsets(add, runs, per_run, frame_ms: float) -> None:
    """sync_offset_ms: the metric (median scored offset) against the median of the clips' expected
    scored offsets, and every synchronizable clip's raw offset against its true offset."""
    measured, expected, shares = [], [], []
    for res, clips in zip(runs, per_run):
        ok_clips = [c for c in clips if c.status == "ok" and c.raw_ms is not None]
        measured.append(_value(res, "sync_offset_ms"))
        expected.append(float(np.median([c.expected_scored_ms for c in ok_clips])) if ok_clips else None)
        err = np.abs([c.raw_ms - c.true_ms for c in ok_clips]) if ok_clips else np.zeros(0)
        shares.append(float(np.mean(err <= frame_ms)) if err.size else 0.0)
    ok = all(m is not None and e is not None and abs(m - e) <= frame_ms for m, e in zip(measured, expected))
    ok = ok and min(shares) >= CLIP_SHARE_WITHIN_FRAME
    add("sync_offset_ms", "av_offset_ms", OFFSETS, measured, ok,
        f"median within one frame ({frame_ms:.1f} ms) of the clips' expected scored offsets (injected + physical "
        f"delay, scored against the prompt's window); ≥{CLIP_SHARE_WITHIN_FRAME:.0%} of synchronizable clips within "
        f"one frame of their true offset (measured: {', '.join(f'{x:.0%}' for x in shares)})", expected=expected)


def _check_rates(add, runs, per_run) -> None:
    """in_sync_rate and synchronizable_rate (over all clips) against the share the world predicts."""
    m_in, e_in, m_sy, e_sy = [], [], [], []
    for res, clips in zip(runs, per_run):
        m_in.append(_value(res, "in_sync_rate"))
        m_sy.append(_value(res, "synchronizable_rate"))
        n = max(len(clips), 1)
        e_in.append(sum(c.syncable and _in_window(c.expected_scored_ms) for c in clips) / n)
        e_sy.append(sum(c.syncable for c in clips) / n)
    ok = all(m is not None and abs(m - e) <= RATE_TOLERANCE for m, e in zip(m_in, e_in))
    add("in_sync_rate", "av_offset_ms", OFFSETS, m_in, ok,
        f"within {RATE_TOLERANCE:g} of the share of clips whose expected scored offset is inside BT.1359 "
        "(−45..+125 ms); clips that cannot be synchronised count as not in sync", expected=e_in)
    ok = all(m is not None and e - RATE_TOLERANCE <= m <= e + 0.02 for m, e in zip(m_sy, e_sy))
    add("synchronizable_rate", "av_offset_ms", OFFSETS, m_sy, ok,
        f"within {RATE_TOLERANCE:g} below the share of clips with an event sounding inside the clip, never above it",
        expected=e_sy)


def _check_av_align(add, runs, per_run, frame_ms: float) -> None:
    """AV-Align is high where the true offset is inside its ±1 frame match window and low far outside it."""
    near = [c.av_align for clips in per_run for c in clips if c.syncable and c.av_align is not None
            and abs(c.true_ms) <= frame_ms]
    far = [c.av_align for clips in per_run for c in clips if c.syncable and c.av_align is not None
           and abs(c.true_ms) >= 150.0]
    values = [_value(r, "av_align") for r in runs]
    ok = bool(near) and bool(far) and float(np.mean(near)) > 2.0 * float(np.mean(far))
    add("av_align", "av_offset_ms", OFFSETS, values, ok,
        f"mean IoU of clips whose true offset is within ±1 frame ({np.mean(near) if near else float('nan'):.2f}, "
        f"n={len(near)}) more than twice that of clips ≥150 ms off ({np.mean(far) if far else float('nan'):.2f}, "
        f"n={len(far)})")


def _check_jitter(add, runs) -> None:
    """Per-event jitter: the clips' error against their true offset grows (no synchronizable clip
    left counts as the worst). Where no prompt has an expected window this is sync_offset_abs_ms."""
    measured = []
    for res in runs:
        err = [abs(c.raw_ms - c.true_ms) for c in _clips(res) if c.status == "ok" and c.raw_ms is not None]
        measured.append(float(np.mean(err)) if err else None)
    series = [math.inf if m is None else m for m in measured]
    ok = measured[0] is not None and all(b > a for a, b in zip(series, series[1:]))
    add("sync_offset_abs_ms", "jitter_ms", JITTER_MS, measured, ok,
        "mean |measured − true offset| over synchronizable clips strictly increasing (none synchronizable "
        "counts as the worst)")


def _check_nothing_to_sync(add, runs, per_run) -> None:
    """A suite without events: no clip synchronizable at any offset, no offset, both rates 0."""
    statuses = sorted({c.status or "none" for clips in per_run for c in clips})
    offs = [runs[i].metrics["sync_offset_ms"]["status"] for i in range(len(runs))]
    ok = all(o == "skipped" for o in offs) and all(c.status != "ok" for clips in per_run for c in clips)
    add("sync_offset_ms", "av_offset_ms", OFFSETS, offs, ok,
        f"no event in the world: every clip not synchronizable ({', '.join(statuses)}), the offset skipped")
    rates = [[_value(r, "synchronizable_rate"), _value(r, "in_sync_rate")] for r in runs]
    ok = all(x == [0.0, 0.0] for x in rates)
    add("synchronizable_rate", "av_offset_ms", OFFSETS, [x[0] for x in rates], ok,
        "synchronizable_rate = 0 and in_sync_rate = 0 at every offset", expected=[0.0] * len(OFFSETS))


# ----------------------------------------------------------------------------- impacts


@dataclass
class ImpactClip:
    """A rendered clip of objects that bounce or collide, with a knock at each impact.

    ``impacts``: (time s, object, speed px/s) of every impact inside the clip; each knock starts
    at its impact time plus ``offset_ms`` (+ = audio late). ``area``: each object's share of the
    frame.
    """

    video: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    impacts: list[tuple[float, int, float]]
    offset_ms: float
    area: float


def _drop_world(rng: np.random.Generator, w: int, h: int, duration: float, n: int, r: float):
    """Balls under gravity, each in its own lane, bouncing on a floor until they come to rest.

    Exact (event-driven) impact times. Returns (impacts, position(ball, t), floor y)."""
    g = float(rng.uniform(2.0, 3.5)) * h  # px/s²: a frame height is ~0.4 m .. 2 m of real world
    floor = 0.92 * h
    lane = w / n
    impacts: list[tuple[float, int, float]] = []
    segments: list[list[tuple[float, float, float, float, float]]] = []
    for b in range(n):
        e = float(rng.uniform(0.72, 0.88))  # coefficient of restitution
        top = floor - r - 0.08 * h  # highest height of the ball's centre above its floor contact
        y = float(rng.uniform(0.35, 1.0)) * top
        vy = -float(rng.uniform(0.0, 0.3)) * math.sqrt(2 * g * top)
        x = (b + float(rng.uniform(0.3, 0.7))) * lane
        vx = float(rng.uniform(-1, 1)) * max(0.0, 0.5 * lane - 1.5 * r) / duration * 0.5  # stays in its lane
        t = 0.0
        seg = [(t, x, y, vx, vy)]
        while t < duration:
            tau = (vy + math.sqrt(vy * vy + 2 * g * y)) / g  # y + vy tau - g tau² / 2 = 0
            t += tau
            x += vx * tau
            speed = g * tau - vy
            vy = e * speed
            y = 0.0
            impacts.append((t, b, speed))
            if 2 * vy / g < 0.2:  # the next bounce would come within 0.2 s: the ball comes to rest
                seg.append((t, x, 0.0, 0.0, 0.0))
                break
            seg.append((t, x, y, vx, vy))
        segments.append(seg)

    def position(b: int, t: float) -> tuple[float, float]:
        seg = segments[b]
        i = max(0, int(np.searchsorted([s[0] for s in seg], t, side="right")) - 1)
        t0, x, y, vx, vy = seg[i]
        tau = t - t0
        return x + vx * tau, floor - r - max(0.0, y + vy * tau - 0.5 * g * tau * tau)

    return impacts, position, floor


def _collide_world(rng: np.random.Generator, w: int, h: int, duration: float, n: int, r: float):
    """Billiard balls seen from above: constant velocities, elastic collisions with each other and
    with the cushions, exact (event-driven) impact times. Returns (impacts, position, cushion)."""
    m = 0.06 * h  # cushion width
    lo = np.array([m + r, m + r])
    hi = np.array([w - m - r, h - m - r])
    pos = np.zeros((n, 2))
    for b in range(n):  # non-overlapping start positions
        for _ in range(1000):
            p = lo + rng.random(2) * (hi - lo)
            if all(np.hypot(*(p - pos[c])) > 3 * r for c in range(b)):
                break
        pos[b] = p
    ang = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(0.25, 0.5, n) * w  # px/s
    vel = np.stack([np.cos(ang), np.sin(ang)], 1) * speed[:, None]
    t = 0.0
    snaps = [(t, pos.copy(), vel.copy())]
    impacts: list[tuple[float, int, float]] = []
    while t < duration:
        best, what = math.inf, None
        for b in range(n):
            for ax in range(2):
                v = vel[b, ax]
                if v > 0:
                    tau = (hi[ax] - pos[b, ax]) / v
                elif v < 0:
                    tau = (lo[ax] - pos[b, ax]) / v
                else:
                    continue
                if 1e-9 < tau < best:
                    best, what = tau, ("wall", b, ax)
            for c in range(b + 1, n):
                dp, dv = pos[c] - pos[b], vel[c] - vel[b]
                a, bb, cc = dv @ dv, dp @ dv, dp @ dp - 4 * r * r
                disc = bb * bb - a * cc
                if bb < 0 and disc > 0 and a > 0:
                    tau = (-bb - math.sqrt(disc)) / a
                    if 1e-9 < tau < best:
                        best, what = tau, ("ball", b, c)
        if what is None:
            break
        t += best
        pos = pos + vel * best
        if what[0] == "wall":
            _, b, ax = what
            impacts.append((t, b, abs(vel[b, ax])))
            vel[b, ax] = -vel[b, ax]
        else:
            _, b, c = what
            nrm = (pos[c] - pos[b]) / np.hypot(*(pos[c] - pos[b]))
            rel = (vel[b] - vel[c]) @ nrm
            vel[b] -= rel * nrm
            vel[c] += rel * nrm
            impacts.append((t, b, abs(rel)))
        snaps.append((t, pos.copy(), vel.copy()))
    times = [s[0] for s in snaps]

    def position(b: int, tq: float) -> tuple[float, float]:
        i = max(0, int(np.searchsorted(times, tq, side="right")) - 1)
        t0, p, v = snaps[i]
        q = p[b] + v[b] * (tq - t0)
        return float(q[0]), float(q[1])

    return impacts, position, m


def _knock(rng: np.random.Generator, sr: int, amplitude: float) -> np.ndarray:
    """A knock: two damped partials and a 3 ms noise click, 1 ms attack."""
    n = int(0.12 * sr)
    k = np.arange(n) / sr
    f1, f2 = float(rng.uniform(250, 700)), float(rng.uniform(900, 2500))
    y = np.sin(2 * np.pi * f1 * k) * np.exp(-k / float(rng.uniform(0.02, 0.05)))
    y += 0.6 * np.sin(2 * np.pi * f2 * k) * np.exp(-k / 0.012)
    y += 0.8 * rng.standard_normal(n) * np.exp(-k / 0.003)
    attack = max(1, int(0.001 * sr))
    y[:attack] *= np.linspace(0.0, 1.0, attack)
    return amplitude * y / np.abs(y).max()


def impact_clip(
    *,
    scene: str = "drop",
    fps: float = 24.0,
    width: int = 256,
    height: int = 144,
    duration_s: float = 4.0,
    n_objects: int = 3,
    area: float = 0.004,
    offset_ms: float = 0.0,
    seed: int = 0,
    sample_rate: int = 48000,
    video_noise: float = 1.5,
    audio_noise: float = 0.003,
    shutter: float = 0.5,
    shadows: bool = True,
) -> ImpactClip:
    """Objects that change velocity abruptly, with a knock at each impact (``offset_ms`` late).

    ``scene="drop"``: balls dropped under gravity bounce on a floor, each in its own lane, until
    they come to rest (restitution 0.72-0.88). ``scene="collide"``: billiard balls seen from
    above collide with each other and with the cushions. Impact times are exact (event-driven
    physics, not the frame grid); each object covers ``area`` of the frame (0.004: 0.4 %); frames
    integrate the motion over ``shutter`` frame periods centred on the frame time (motion blur),
    objects are anti-aliased, ``video_noise`` (luma levels) and ``audio_noise`` are Gaussian.
    Knocks are as loud as the impact is fast (relative to the fastest). ``shadows``: each dropped
    ball casts a soft shadow on the floor that darkens as the ball comes down and meets it at
    contact.
    """
    if scene not in ("drop", "collide"):
        raise ValueError(f"scene must be 'drop' or 'collide', got {scene!r}")
    rng = np.random.default_rng(seed)
    w, h = int(width), int(height)
    r = math.sqrt(area * w * h / math.pi)
    world = _drop_world if scene == "drop" else _collide_world
    impacts, position, edge = world(rng, w, h, duration_s, n_objects, r)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    texture = 6.0 * np.sin(xx / 13.0) * np.cos(yy / 17.0)
    if scene == "drop":
        bg = np.empty((h, w, 3), np.float32)
        bg[:] = (150, 140, 125)
        bg[int(edge):] = (120, 85, 55)
        background_luma = 140.0
    else:
        bg = np.empty((h, w, 3), np.float32)
        bg[:] = (40, 110, 60)
        e = int(round(edge))
        bg[:e], bg[-e:], bg[:, :e], bg[:, -e:] = (90, 50, 30), (90, 50, 30), (90, 50, 30), (90, 50, 30)
        background_luma = 85.0
    bg += texture[..., None]
    colours = []
    for _ in range(n_objects):  # colours whose luma differs from the background's
        while True:
            c = rng.uniform(10, 250, 3)
            if abs(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] - background_luma) >= 45:
                break
        colours.append(c.astype(np.float32))
    subs = np.linspace(-shutter / 2, shutter / 2, 5) if shutter > 0 else np.zeros(1)
    n_frames = int(round(duration_s * fps))
    video = np.empty((n_frames, h, w, 3), np.uint8)
    for k in range(n_frames):
        img = bg.copy()
        if shadows and scene == "drop":
            for b in range(n_objects):
                x, y = position(b, k / fps)
                hgt = max(0.0, (edge - r - y) / h)  # the ball's height above its contact, in frame heights
                sx0, sx1 = int(max(0, x - 2 * r)), int(min(w, x + 2 * r + 1))
                sy0, sy1 = int(max(0, edge - 0.6 * r)), int(min(h, edge + 0.6 * r + 1))
                if sx1 > sx0 and sy1 > sy0:
                    ex = (xx[sy0:sy1, sx0:sx1] - x) / (1.3 * r)
                    ey = (yy[sy0:sy1, sx0:sx1] - edge) / (0.35 * r)
                    dark = 0.45 * np.exp(-3.0 * hgt) * np.clip(1.0 - ex * ex - ey * ey, 0.0, 1.0)
                    img[sy0:sy1, sx0:sx1] *= (1.0 - dark)[..., None]
        for b in range(n_objects):
            pts = [position(b, (k + s) / fps) for s in subs]
            x0 = int(max(0, min(p[0] for p in pts) - r - 2))
            x1 = int(min(w, max(p[0] for p in pts) + r + 3))
            y0 = int(max(0, min(p[1] for p in pts) - r - 2))
            y1 = int(min(h, max(p[1] for p in pts) + r + 3))
            if x1 <= x0 or y1 <= y0:
                continue
            sx, sy = xx[y0:y1, x0:x1], yy[y0:y1, x0:x1]
            cover = np.zeros(sx.shape, np.float32)
            for x, y in pts:
                cover += np.clip(r + 0.5 - np.sqrt((sx - x) ** 2 + (sy - y) ** 2), 0.0, 1.0)
            cover = (cover / len(pts))[..., None]
            img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1.0 - cover) + colours[b] * cover
        if video_noise > 0:
            img += video_noise * rng.standard_normal((h, w, 1), dtype=np.float32)
        video[k] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    n = int(round(duration_s * sample_rate))
    audio = audio_noise * rng.standard_normal(n)
    fastest = max((s for _, _, s in impacts), default=1.0)
    for t, _, s in impacts:
        i = int(round((t + offset_ms / 1000.0) * sample_rate))
        if 0 <= i < n:
            knock = _knock(rng, sample_rate, 0.7 * s / fastest)
            m = min(knock.size, n - i)
            audio[i : i + m] += knock[:m]
    inside = [(float(t), int(b), float(s)) for t, b, s in impacts if t < n_frames / fps]
    return ImpactClip(video=video, audio=np.clip(audio, -1, 1).astype(np.float32), fps=float(fps),
                      sample_rate=int(sample_rate), impacts=inside, offset_ms=float(offset_ms), area=float(area))


IMPACT_FPS = (16.0, 24.0, 30.0)
IMPACT_SCENES = ("drop", "collide")


def _knock_track(rng: np.random.Generator, sr: int, n: int, times: Iterable[float]) -> np.ndarray:
    y = 0.003 * rng.standard_normal(n)
    for t in times:
        i = int(round(t * sr))
        k = _knock(rng, sr, 0.6)
        m = min(k.size, n - i)
        if m > 0:
            y[i : i + m] += k[:m]
    return y.astype(np.float32)


def steady_clips(seed: int = 0, *, fps: float = 24.0, width: int = 256, height: int = 144,
                 duration_s: float = 4.0, sample_rate: int = 48000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Video without impacts, each with knocks at random times: nothing here may be synchronised.

    ``pan``: a textured scene panning at a constant speed; ``fade``: a uniform fade; ``steady``:
    balls crossing the frame at constant velocities; ``arc``: balls thrown along parabolas
    (gravity, no contact)."""
    import cv2

    rng = np.random.default_rng([seed, 7])
    n, h, w = int(round(duration_s * fps)), int(height), int(width)
    audio = _knock_track(rng, sample_rate, int(round(duration_s * sample_rate)), np.sort(rng.uniform(0.3, duration_s - 0.5, 6)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tex = cv2.GaussianBlur((rng.random((h, w + int(6 * n) + 1)) * 255).astype(np.uint8), (0, 0), 3)
    speed = float(rng.uniform(1.0, 5.0))
    pan = np.stack([np.repeat(tex[:, int(speed * k) : int(speed * k) + w, None], 3, axis=2) for k in range(n)])
    fade = (np.linspace(20, 200, n)[:, None, None, None] * np.ones((1, h, w, 3))).astype(np.uint8)

    def balls(bg, colour, path) -> np.ndarray:
        frames = np.empty((n, h, w, 3), np.uint8)
        r = math.sqrt(0.004 * w * h / math.pi)
        for k in range(n):
            img = np.empty((h, w, 3), np.float32)
            img[:] = bg
            for x, y in path(k / fps):
                cov = np.clip(r + 0.5 - np.hypot(xx - x, yy - y), 0.0, 1.0)[..., None]
                img = img * (1.0 - cov) + np.asarray(colour, np.float32) * cov
            img += 1.5 * rng.standard_normal((h, w, 1), dtype=np.float32)
            frames[k] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        return frames

    p0 = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h], (3, 2))
    v0 = rng.uniform(-0.25 * w, 0.25 * w, (3, 2))
    steady = balls((40, 110, 60), (230, 230, 90), lambda t: [((x + vx * t) % w, (y + vy * t) % h) for (x, y), (vx, vy) in zip(p0, v0)])
    g = 2.5 * h
    arc = balls((150, 140, 125), (30, 30, 200),
                lambda t: [(0.1 * w + b * 0.2 * w + 0.2 * w * t, 0.85 * h - (0.9 - 0.15 * b) * h * t + 0.5 * g * t * t)
                           for b in range(2)])
    return {"pan": (pan, audio), "fade": (fade, audio), "steady": (steady, audio), "arc": (arc, audio)}


def _analyse(video: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int, folder: Path) -> dict[str, Any]:
    """sync_dsp of a clip written as H.264/AAC and decoded as every clip is."""
    from mova_bench.features.sync import SyncAnalyzer
    from mova_bench.media import decode, write_mp4

    with tempfile.TemporaryDirectory(dir=folder) as d:
        path = Path(d) / "clip.mp4"
        write_mp4(path, video, fps, audio, sample_rate)
        clip = decode(path)
    out = SyncAnalyzer().extract(clip)
    return {"status": str(out["status"]), "offset_ms": float(out["offset_ms"]), "confidence": float(out["confidence"])}


def check_impacts(folder: Path, *, offsets: Iterable[float] = OFFSETS, fps_values: Iterable[float] = IMPACT_FPS,
                  scenes: Iterable[str] = IMPACT_SCENES) -> list[dict[str, Any]]:
    """The impact checks: bouncing and colliding objects with injected offsets, and impact-free motion."""
    folder.mkdir(parents=True, exist_ok=True)
    offsets, fps_values, scenes = list(offsets), list(fps_values), list(scenes)
    rows = []
    for scene in scenes:
        for fps in fps_values:
            for o in offsets:
                c = impact_clip(scene=scene, fps=fps, seed=int(fps) * 10 + len(scene), offset_ms=o)
                r = _analyse(c.video, c.audio, fps, c.sample_rate, folder)
                rows.append({"scene": scene, "fps": fps, "injected": o, **r, "error_ms": r["offset_ms"] - o})
    measured = [float(np.median([r["offset_ms"] for r in rows if r["injected"] == o])) for o in offsets]
    ok_rows = [r for r in rows if r["status"] == "ok"]
    within = [r for r in ok_rows if abs(r["error_ms"]) <= 1000.0 / r["fps"]]
    worst = max((abs(r["error_ms"]) for r in ok_rows), default=float("nan"))
    checks = [{
        "metric": "sync_offset_ms", "knob": "impact_offset_ms", "values": _round(offsets), "measured": _round(measured),
        "expected": _round(offsets), "passed": len(within) == len(rows),
        "expect": f"bouncing / colliding objects ({', '.join(scenes)}; {', '.join(f'{f:g}' for f in fps_values)} fps; "
                  f"objects 0.4% of the frame): every clip synchronizable and within one frame of the injected offset "
                  f"({len(within)}/{len(rows)}, worst {worst:.1f} ms)",
    }]
    neg = {name: _analyse(v, a, 24.0, 48000, folder)["status"] for name, (v, a) in steady_clips().items()}
    checks.append({
        "metric": "sync_offset_ms", "knob": "no_impact", "values": list(neg), "measured": [neg[k] for k in neg],
        "passed": all(s != "ok" for s in neg.values()),
        "expect": "pan, fade, steady motion and a gravity arc with knocks at random times: never synchronised",
    })
    for c in checks:
        log(f"sanity: {'PASS' if c['passed'] else 'FAIL'} {c['metric']} vs {c['knob']}: {c['measured']}")
    return checks
