"""Stage 6: metrics — which ones an evaluation asks for, and their results from the features."""

from __future__ import annotations

from typing import Any

from mova_bench.errors import ConfigError
from mova_bench.metrics.base import FeatureSet, Metric, MetricResult
from mova_bench.registry import features as feature_registry
from mova_bench.registry import metrics as metric_registry

DEFAULT_METRICS = (
    "fd_video", "fd_audio", "kid_video", "kid_audio", "sync_offset_ms", "sync_offset_abs_ms",
    "in_sync_rate", "synchronizable_rate", "in_sync_rate_synchronizable", "av_align", "detector_auc",
    "clip_score", "clap_score",
)
BACKBONE_SETS = {
    "classical": {"video": "vstats", "audio": "melstats"},
    "standard": {"video": "i3d", "audio": "vggish"},
}


def select_metrics(names: list[str] | None, backbones: str) -> list[Metric]:
    if backbones not in ("auto", "classical", "standard"):
        raise ConfigError(f"--backbones {backbones!r}: expected one of auto, classical, standard")
    chosen = BACKBONE_SETS["standard" if backbones == "standard" else "classical"]
    out = []
    for raw in names or list(DEFAULT_METRICS):
        name, _, bb = raw.partition("[")
        bb = bb.rstrip("]") or None
        cls = metric_registry.get(name)
        if bb is None and cls.backbone_modality in ("video", "audio") and cls.default_backbone in BACKBONE_SETS["classical"].values():
            bb = chosen[cls.backbone_modality]
        out.append(cls(backbone=bb))
    return out


def compute_metrics(metric_objs: list[Metric], gen: FeatureSet, ref: FeatureSet | None, seed: int,
                    stale: dict[str, dict[str, str]] | None = None) -> dict[str, MetricResult]:
    """Every metric's result; ``stale`` names reference statistics that must not be read."""
    out: dict[str, MetricResult] = {}
    for m in metric_objs:
        needed = [r for r in m.required_extractors() if r]
        missing = [r for r in needed if r not in feature_registry]
        outdated = [(stale or {})[r] for r in needed if r in (stale or {})]
        try:
            if missing:
                res = m.skipped(
                    f"backbone {', '.join(missing)} is not available in this build (it needs pretrained weights)",
                    fix="use --backbones classical (weight-free backbones) for now",
                )
            elif outdated:
                res = m.result(None, status="failed", reason=outdated[0]["reason"], fix=outdated[0]["fix"])
            elif m.needs_reference and ref is None:
                res = m.skipped_no_reference()
            else:
                res = m.compute(gen, ref, seed=seed)
        except Exception as exc:  # noqa: BLE001 - a metric failure is reported, never hidden
            res = m.result(None, status="failed", reason=f"{type(exc).__name__}: {exc}")
        out[res.key] = res
    return out


def console_notes(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """One short line per thing the report explains that the console table would otherwise hide."""
    notes = []
    small = [k for k, m in metrics.items() if m.get("status") == "ok"
             and any("< dim" in w or "singular" in w for w in (m.get("warnings") or []))]
    if small:
        notes.append(f"note: {', '.join(small)}: fewer clips than feature dimensions, so these distances are biased "
                     "upward and comparable only at the same n (raise --samples-per-prompt; KID is unbiased)")
    for k, m in metrics.items():
        n_exp = (m.get("extra") or {}).get("n_with_expected_offset")
        if n_exp and k == "sync_offset_ms":
            notes.append(f"note: {k}: {n_exp} clip(s) have an expected offset (e.g. distant thunder); offsets inside "
                         "their prompt's expected window score 0 ms")
    return notes
