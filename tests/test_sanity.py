"""``mova-bench sanity`` on every shipped suite: each check compares the measurement with what the
procedural world knows per clip (injected offset + physical delay, whether any event sounds).

The full sanity of one suite takes minutes (tests/test_run_e2e.py runs it on impacts_set through
the CLI); here every shipped suite runs the ``sync`` checks — offsets, in_sync_rate,
synchronizable_rate, AV-Align, jitter, frozen and silent clips — on a few prompts that cover its
cases, one sample per prompt: 25-35 s of wall time per suite here (2 shared cores under load,
21 s of CPU for the four), marked ``slow`` like the other end-to-end runs.
"""

from __future__ import annotations

import pytest

from mova_bench.errors import ConfigError
from mova_bench.sanity import CHECK_GROUPS, run_sanity
from mova_bench.suites import available_suites

#: prompts per shipped suite: one of each kind the suite holds
QUICK = {
    "impacts_set": ["basketball_gym", "hand_claps"],
    # near strike (window 25-120 ms), distant (850-1500 ms), wind (no onsets)
    "thunderstorm_set": ["near_strike", "distant_lightning", "wind_plain"],
    "music_set": ["grand_piano_melody", "xylophone"],
    "ambience_set": ["wind_meadow", "mains_hum"],
}


def test_every_shipped_suite_is_checked():
    assert set(QUICK) == set(available_suites())


@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(QUICK))
def test_sync_sanity_passes_on_every_shipped_suite(suite, tmp_path):
    report = run_sanity(suite, out=str(tmp_path), samples_per_prompt=1, prompts=QUICK[suite], checks=("sync",))
    failed = [c for c in report["checks"] if not c["passed"]]
    assert report["passed"] and not failed, failed
    metrics = {(c["metric"], c["knob"]) for c in report["checks"]}
    assert ("sync_offset_ms", "av_offset_ms") in metrics and ("synchronizable_rate", "av_offset_ms") in metrics
    assert ("synchronizable_rate", "freeze_video") in metrics and ("synchronizable_rate", "silent_audio") in metrics
    if suite == "ambience_set":  # nothing to synchronise: no offset, no in-sync check, no AV-Align or jitter check
        assert ("in_sync_rate", "av_offset_ms") not in metrics and ("av_align", "av_offset_ms") not in metrics
        offsets = next(c for c in report["checks"] if c["metric"] == "sync_offset_ms" and c["knob"] == "av_offset_ms")
        assert offsets["measured"] == ["skipped"] * 5
    else:
        assert {("in_sync_rate", "av_offset_ms"), ("av_align", "av_offset_ms"), ("sync_offset_abs_ms", "jitter_ms")} <= metrics
        sync = next(c for c in report["checks"] if c["metric"] == "sync_offset_ms" and c["knob"] == "av_offset_ms")
        assert len(sync["expected"]) == 5  # what the world says, next to what was measured
    if suite == "thunderstorm_set":
        # judged against each clip's physical delay: the distant strike (~1 s late, window 850-1500 ms)
        # is in sync where the injected offset alone would say it is not, and wind_plain cannot be synchronised
        rates = next(c for c in report["checks"] if c["metric"] == "in_sync_rate" and c["knob"] == "av_offset_ms")
        naive = [float(-45 <= o <= 125) for o in (-200, -80, 0, 80, 200)]
        assert rates["expected"] != naive and max(rates["expected"]) < 1.0


def test_sanity_rejects_unknown_groups_and_prompts(tmp_path):
    with pytest.raises(ConfigError, match="unknown sanity check group"):
        run_sanity("impacts_set", out=str(tmp_path), checks=("sync", "vibes"))
    with pytest.raises(ConfigError, match="no prompt 'nope'"):
        run_sanity("impacts_set", out=str(tmp_path), prompts=["nope"], checks=("sync",))
    assert CHECK_GROUPS == ("sync", "distribution", "detector", "impacts")


class _Outcome:
    """The part of a run outcome the detector check reads."""

    def __init__(self, auc, p, band=(0.35, 0.65)):
        self.metrics = {"detector_auc[x]": {"value": auc, "extra": {"p_value": p, "null_band": list(band)}}}


@pytest.mark.parametrize("p_clean, p_bad, passed", [
    (0.87, 0.005, True),    # chance reads as chance; degraded is detected
    (0.004, 0.005, False),  # "detectable" clean clips: a miscalibrated null would show here
    (0.5, 0.2, False),      # degraded clips not detected
    (None, 0.005, False),   # no permutation test ran: the check cannot pass
])
def test_detector_p_value_check(p_clean, p_bad, passed):
    from mova_bench.sanity import DETECTOR_ALPHA, _check_detector_p_value

    got = []
    _check_detector_p_value(lambda *a, **k: got.append((a, k)), "detector_auc[x]", _Outcome(0.45, p_clean),
                            _Outcome(1.0, p_bad))
    (metric, knob, values, measured, ok, expect), _ = got[0]
    assert metric == "detector_auc[x] p_value" and values == ["clean", "degraded"]
    assert measured == [p_clean, p_bad] and ok is passed
    assert f"p ≥ {DETECTOR_ALPHA:g}" in expect and "null band [0.35, 0.65]" in expect


@pytest.mark.slow
def test_detector_sanity_reads_chance_as_chance(tmp_path):
    """The detector group on a few impacts prompts: AUC and permutation p-value, clean and degraded."""
    report = run_sanity("impacts_set", out=str(tmp_path), samples_per_prompt=2,
                        prompts=["basketball_gym", "hand_claps", "snare_hits", "footsteps_wood"], checks=("detector",))
    checks = {c["metric"].split("]")[-1].strip() or "auc": c for c in report["checks"]}
    assert set(checks) == {"auc", "p_value"}
    p_clean, p_bad = checks["p_value"]["measured"]
    assert p_clean >= 0.01 and p_bad < 0.01, checks["p_value"]
    assert report["passed"], report["checks"]
