"""Stage 6: metrics — which ones an evaluation asks for, and their results from the features.

``--backbones`` picks the backbone of each metric that has one:

* ``classical``: the weight-free backbones (``vstats``, ``melstats``) — this build's default numbers;
* ``standard``: the backbone of the literature for each metric (:data:`STANDARD_BACKBONES`, plus
  the extra keys of :data:`STANDARD_EXTRA` whose metric and backbone are registered). Every
  backbone must be usable: otherwise :func:`select_metrics` raises one error (exit 2), before any
  generation or analysis, listing every ``mova-bench weights fetch <name>`` and
  ``pip install 'mova-bench[<extra>]'`` needed;
* ``auto``: the standard backbone where it is usable, the weight-free one otherwise, and every
  standard metric that cannot run is reported ``skipped`` with the command that fixes it.
"""

from __future__ import annotations

from typing import Any

from mova_bench.errors import ConfigError, MissingDependencyError
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
#: the standard backbone of each metric that has one (``--backbones standard``)
STANDARD_BACKBONES = {
    "fd_video": "i3d", "kid_video": "i3d", "fd_audio": "vggish", "kid_audio": "vggish",
    "clip_score": "openclip-vit-b-32", "clap_score": "laion-clap",
}
#: further metric keys that exist only on standard backbones (added by ``standard``/``auto`` to the
#: default metric list when both the metric and the backbone are registered)
STANDARD_EXTRA = (
    ("fd_audio", "panns-cnn14"), ("is_audio", "panns-cnn14"), ("fid_frames", "inception-v3"),
    ("desync", "synchformer"), ("fd_audio", "laion-clap"), ("ib_score", "imagebind"),
)


def backbone_fixes(name: str, params: dict[str, Any] | None = None) -> list[str]:
    """Commands that make backbone ``name`` usable with ``params`` (e.g. a profile's CLAP checkpoint,
    whose weights file differs; empty when it is usable, or when it needs nothing)."""
    if name not in feature_registry:
        return []
    try:
        cls = feature_registry.get(name)
    except MissingDependencyError as exc:  # its module cannot even be imported
        return [exc.fix or str(exc)]
    ex = cls(**(params or {}))
    fixes = getattr(ex, "missing_fixes", None)
    if fixes is None:
        return [] if ex.available()[0] else [ex.available()[1]]
    return list(ex.missing_fixes())


def _is_pretrained(name: str) -> bool:
    """True when ``name`` is a registered pretrained (torch) backbone."""
    if not name or name not in feature_registry:
        return False
    try:
        return hasattr(feature_registry.get(name), "missing_fixes")
    except MissingDependencyError:
        return True


def _mark_unavailable(m: Metric, fixes: list[str]) -> Metric:
    """``m`` reported ``skipped`` by :func:`compute_metrics`, with the commands that fix it."""
    m.unavailable = (f"backbone {m.backbone!r} is not available here (missing weights or packages)", "; ".join(fixes))
    return m


def _parse(raw: str) -> tuple[str, str | None]:
    name, _, bb = raw.partition("[")
    return name, (bb.rstrip("]") or None)


def select_metrics(names: list[str] | None, backbones: str,
                   backbone_params: dict[str, dict[str, Any]] | None = None) -> list[Metric]:
    """The metric objects of an evaluation (see the module docstring for ``backbones``).

    Raises :class:`~mova_bench.errors.MissingDependencyError` (exit 2) for ``standard`` when a
    standard backbone is missing weights or packages, naming every fix at once. ``backbone_params``
    (a profile's analyzer parameters, by backbone) are the parameters its backbones will run with:
    their weights are the ones checked."""
    bp = backbone_params or {}
    if backbones not in ("auto", "classical", "standard"):
        raise ConfigError(f"--backbones {backbones!r}: expected one of auto, classical, standard")
    classical = BACKBONE_SETS["classical"]
    wanted = [_parse(raw) for raw in (names or list(DEFAULT_METRICS))]
    if names is None and backbones != "classical":
        wanted += [(mn, bb) for mn, bb in STANDARD_EXTRA if mn in metric_registry and bb in feature_registry]
    out: list[Metric] = []
    keys: set[str] = set()
    problems: dict[str, list[str]] = {}

    def add(m: Metric) -> None:
        if m.key not in keys:
            keys.add(m.key)
            out.append(m)

    for name, bb in wanted:
        cls = metric_registry.get(name)
        weight_free = (cls.backbone_modality in ("video", "audio") and cls.default_backbone in classical.values())
        if bb is not None:
            add(cls(backbone=bb))
            continue
        std = STANDARD_BACKBONES.get(name) if backbones != "classical" else None
        if std is None:
            m = cls(backbone=classical[cls.backbone_modality]) if weight_free else cls()
            pretrained = [r for r in m.required_extractors() if _is_pretrained(r)]
            if backbones == "classical" and pretrained:
                m.unavailable = (f"--backbones classical runs weight-free backbones only; {m.key} needs {', '.join(pretrained)}",
                                 "use --backbones auto (or standard) to run it where its weights are present")
            add(m)
            continue
        if backbones == "standard":
            add(cls(backbone=std))
            continue
        # auto: the standard backbone where usable, else the weight-free one and an honest skip
        if std in feature_registry and not backbone_fixes(std, bp.get(std)):
            add(cls(backbone=std))
            continue
        if weight_free:
            add(cls(backbone=classical[cls.backbone_modality]))
        m = cls(backbone=std)
        if std in feature_registry:
            add(_mark_unavailable(m, backbone_fixes(std, bp.get(std))))
        elif not weight_free:
            add(cls())  # no such backbone in this build: the metric itself says why it cannot run
    if backbones != "classical":
        for m in out:
            if getattr(m, "unavailable", None):
                continue
            for r in m.required_extractors():
                if backbones == "standard" and r and r not in feature_registry:
                    problems.setdefault(r, [f"a mova-bench with the {r!r} backbone (this build has none; see `mova-bench list backbones`)"])
                    continue
                fixes = backbone_fixes(r, bp.get(r)) if r else []
                if fixes and backbones == "auto":
                    _mark_unavailable(m, fixes)
                elif fixes:
                    problems.setdefault(r, fixes)
    if problems:
        fixes = list(dict.fromkeys(f for fs in problems.values() for f in fs))
        listing = "; ".join(f"{b} ({', '.join(fs)})" for b, fs in problems.items())
        raise MissingDependencyError(
            f"--backbones standard: {len(problems)} backbone(s) cannot run here: {listing}",
            fix="; ".join(fixes) + " (or use --backbones auto to run the rest and skip these)",
        )
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
            if getattr(m, "unavailable", None):
                res = m.skipped(m.unavailable[0], fix=m.unavailable[1], extra={"backbone_unavailable": True})
            elif missing:
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
