"""``mova-bench compare BASELINE CANDIDATE``: the regression gate between two run folders.

Both runs' latest evaluations (top-level ``metrics.json`` and ``per_clip.parquet``) are read; for
every metric present in both, the table gives both values with their 95% CIs, the delta
(candidate − baseline) with a 95% CI, a verdict and, with ``--fail-on``, a gate.

How the delta CI is obtained (each row says which):

* **Per-clip metrics** (the metric is a statistic of one per_clip.parquet column: ``av_align`` =
  mean of ``av_align_iou``; ``sync_offset_ms``, ``sync_offset_abs_ms`` and ``in_sync_rate`` = the
  metric's own statistic — median, mean |·|, in-window share — of ``sync_scored_offset_ms``; any
  other metric = mean of its class's ``per_clip_column``): a bootstrap over clips. Clips of the
  two runs that share ``(prompt_id, seed)`` — or ``clip_id`` when the runs record no seeds — are
  resampled as pairs (the same draw for both runs); the others are resampled independently within
  their run. All clips paired = *paired bootstrap*, none = *unpaired bootstrap*, some = *partially
  paired*. The column and statistic are taken only when they reproduce the value in metrics.json.
* **Set-level metrics** (``fd_*``, ``kid_*``, ``detector_auc``): the same resampling plan applied to
  the clips' cached features (``FeatureCache``, keyed by the extractor's ``cache_identity()`` and
  the clip's content hash) and the reference set's, each metric recomputed per resample the way
  its own CI is: FD and KID hold the reference fixed (FD's interval re-centred on the estimate,
  since resampling biases FD upward). The detector AUC is different: its own CI holds the fitted
  scores fixed and so leaves out the variance of fitting the classifier, the larger part at small
  n; its delta uses a delete-half jackknife that refits the detector on every half-sample of
  generated and reference clips (see :func:`_detector_delta`). Used only when the recomputed
  values reproduce metrics.json's.
* Otherwise (features not in the cache, extractor code changed since, different reference sets):
  **combined CIs (MOVER)** — the two runs' own 95% CIs combined as independent estimates
  (Newcombe's method of variance estimates recovery: half-widths added in quadrature, each side
  separately). Conservative when the runs are paired; stated on the row.

Direction: ``higher_is_better`` of the metric; ``None`` means closer to 0 is better, judged on
``|candidate| − |baseline|``. Verdict ``worse``/``better`` only when the whole 95% CI of the change
lies on one side of 0, else ``no clear change``. ``--fail-on METRIC:TOL`` fails when the whole CI of
the change in the metric's bad direction lies beyond the tolerance (absolute in the metric's unit,
or ``%`` of |baseline|), so a reseeded copy of the same model does not trip it.

Exit codes: 0 pass, 1 a ``--fail-on`` gate failed, 2 the runs cannot be compared (not a run,
different suite or version, different evaluation spec: backbones, reference, analysis, profile;
a gated metric not computed in both runs) or a usage error (a ``--fail-on`` naming no metric).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from mova_bench.errors import MissingDependencyError, MovaBenchError

# numpy, pandas and the metric modules are imported where they are used: building the CLI's parser
# (add_parser) must stay as cheap as the other subcommands'.
if TYPE_CHECKING:  # annotations only
    import numpy as np

EXIT_PASS, EXIT_REGRESSION, EXIT_CANNOT_COMPARE = 0, 1, 2
#: seed of the comparison's own resampling (fixed: the same two runs always give the same table)
COMPARE_SEED = 0
#: resamples for the FD and KID deltas (each costs an eigendecomposition / kernel products)
SET_BOOT = 200
#: half-samples for the detector AUC delta (each refits the cross-validated detector of both runs)
DETECTOR_BOOT = 100
#: a recomputed value reproduces the recorded one within this relative tolerance
REPRODUCE_RTOL = 1e-6
MARKDOWN_MARKER = "<!-- mova-bench compare -->"


# --------------------------------------------------------------------------- command line


@dataclass(frozen=True)
class FailOn:
    """``--fail-on METRIC:TOL``: ``TOL`` in the metric's unit, or ``%`` of |baseline|, in its bad direction."""

    metric: str
    tolerance: float
    relative: bool
    text: str

    def threshold(self, baseline: float | None) -> float | None:
        if not self.relative:
            return self.tolerance
        return None if baseline is None else abs(baseline) * self.tolerance / 100.0

    def matches(self, key: str) -> bool:
        return key == self.metric or key.split("[", 1)[0] == self.metric


_FAIL_ON = re.compile(r"^(?P<metric>[^:\s]+):(?P<tol>\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?P<pct>%?)$")


def parse_fail_on(text: str) -> FailOn:
    """argparse type of ``--fail-on``: ``fd_video:+5%``, ``sync_offset_abs_ms:+20``, ``fd_video[vstats]:0.5``."""
    m = _FAIL_ON.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected METRIC:TOL with TOL ≥ 0 in the metric's bad direction, absolute (in the metric's "
            "unit) or relative to the baseline with %, e.g. fd_video:+5% or sync_offset_abs_ms:+20"
        )
    tol = float(m["tol"])
    if not math.isfinite(tol):
        raise argparse.ArgumentTypeError(f"{text!r}: the tolerance must be a finite number")
    return FailOn(m["metric"], tol, bool(m["pct"]), text.strip())


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "compare", help="regression gate: compare a candidate run with a baseline run",
        description="Compare the latest evaluations of two run folders metric by metric: values, delta "
                    "(candidate − baseline) with a 95% CI, a verdict, and optional --fail-on gates. "
                    "Exit 0 pass, 1 regression, 2 cannot compare.",
    )
    p.add_argument("baseline", help="run folder of the baseline (printed by `mova-bench run` / `evaluate`)")
    p.add_argument("candidate", help="run folder of the candidate")
    p.add_argument("--fail-on", action="append", default=[], type=parse_fail_on, metavar="METRIC:TOL",
                   help="fail (exit 1) when the whole 95%% CI of the change lies beyond TOL in the metric's bad "
                        "direction; TOL absolute in the metric's unit (sync_offset_abs_ms:+20) or relative to the "
                        "baseline (fd_video:+5%%); METRIC with or without its [backbone]. Repeatable")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--markdown", metavar="FILE", default=None, help="also write a markdown table (for a CI comment)")
    return p


# --------------------------------------------------------------------------- reading runs


class CannotCompare(MovaBenchError):
    """The two folders cannot be compared (exit 2); ``fix`` says how to make them comparable."""


class UsageError(MovaBenchError):
    """A command-line value that names nothing, e.g. a --fail-on metric in neither run (exit 2)."""


def _pandas():
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("mova-bench compare needs pandas (not installed)",
                                     fix="pip install 'pandas>=2'") from None
    return pd


@dataclass
class RunView:
    role: str
    path: Path
    run_spec: dict[str, Any]
    doc: dict[str, Any]
    per_clip: Any  # pandas.DataFrame

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.doc.get("metrics") or {}

    @property
    def eval_spec(self) -> dict[str, Any]:
        return (self.doc.get("evaluation") or {}).get("spec") or {}

    @property
    def seed(self) -> int:
        return int(self.eval_spec.get("bootstrap_seed") or 0)

    def suite(self) -> tuple[Any, Any, Any]:
        spec = self.run_spec.get("spec") or {}
        header = self.doc.get("header") or {}
        return (spec.get("suite", header.get("suite")), spec.get("suite_version", header.get("suite_version")),
                spec.get("suite_fingerprint"))


def load_run(path: str | Path, role: str) -> RunView:
    """A run folder's frozen spec and latest evaluation; CannotCompare when it is not one."""
    pd = _pandas()
    p = Path(path).expanduser()
    if not p.is_dir():
        raise CannotCompare(f"{role} {str(path)!r} is not a folder",
                            fix="give a run folder printed by `mova-bench run` or `mova-bench evaluate` (runs/<run>/)")
    if not (p / "run_spec.json").is_file():
        raise CannotCompare(f"{role} {str(path)!r} is not a run folder (no run_spec.json)",
                            fix="give a run folder printed by `mova-bench run` or `mova-bench evaluate` (runs/<run>/)")
    if not (p / "metrics.json").is_file() or not (p / "per_clip.parquet").is_file():
        raise CannotCompare(f"{role} {str(path)!r} has not been evaluated (no metrics.json / per_clip.parquet)",
                            fix=f"score it first: mova-bench evaluate --run {p}")
    try:
        run_spec = json.loads((p / "run_spec.json").read_text(encoding="utf-8"))
        doc = json.loads((p / "metrics.json").read_text(encoding="utf-8"))
        per_clip = pd.read_parquet(p / "per_clip.parquet")
    except (OSError, ValueError) as exc:
        raise CannotCompare(f"{role} {str(path)!r}: its run files cannot be read ({exc})",
                            fix=f"re-score it: mova-bench evaluate --run {p}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise CannotCompare(f"{role} {str(path)!r}: metrics.json holds no metrics",
                            fix=f"re-score it: mova-bench evaluate --run {p}")
    return RunView(role, p.resolve(), run_spec, doc, per_clip)


def incompatibilities(b: RunView, c: RunView) -> list[tuple[str, str]]:
    """(reason, fix) for every way the two runs' scores are not comparable."""
    out: list[tuple[str, str]] = []
    (sb, vb, fb), (sc, vc, fc) = b.suite(), c.suite()
    if sb != sc:
        out.append((f"different suites: baseline {sb or '(none)'} v{vb}, candidate {sc or '(none)'} v{vc}",
                    f"compare two runs of one suite, e.g. make the candidate with `mova-bench run --model M --suite {sb}`"))
    elif str(vb) != str(vc):
        out.append((f"different suite versions: {sb} v{vb} (baseline) vs v{vc} (candidate)",
                    f"rerun the baseline with {sb} v{vc}: a baseline must be regenerated when its suite changes"))
    elif fb and fc and fb != fc:
        out.append((f"suite {sb} v{vb} differs in content between the runs (fingerprint {fb} vs {fc}) without a version bump",
                    "bump the suite's version when its prompts change, and rerun the baseline with it"))
    eb, ec = b.eval_spec, c.eval_spec
    rescore = f"re-score one run with the other's settings: mova-bench evaluate --run {c.path} "
    for key, what in (("v", "evaluation spec versions"), ("profile", "metric profiles")):
        if eb.get(key) != ec.get(key):
            out.append((f"different {what}: {eb.get(key)!r} (baseline) vs {ec.get(key)!r} (candidate)",
                        rescore + "(with this version of mova-bench)"))
    suite_keys = ("suite", "suite_fingerprint") if out else ()  # a different suite already says it

    def ref_spec(e: dict[str, Any]) -> str:
        return _canon({k: v for k, v in (e.get("reference") or {}).items() if k not in suite_keys})

    if ref_spec(eb) != ref_spec(ec):
        ref = eb.get("reference") or {}
        opt = f"--reference {ref['path']}" if ref.get("path") else "(without --reference: the suite's own)"
        out.append((f"different reference sets: {_describe_ref(ref)} (baseline) vs {_describe_ref(ec.get('reference') or {})} "
                    "(candidate)", rescore + opt))
    ab = {n: p for n, p in (eb.get("analysis") or [])}
    ac = {n: p for n, p in (ec.get("analysis") or [])}
    for name in sorted(set(ab) & set(ac)):
        if _canon(ab[name]) != _canon(ac[name]):
            out.append((f"different analysis parameters for {name}: {ab[name]} (baseline) vs {ac[name]} (candidate)",
                        rescore + "(the suite sets them: score both against the same suite)"))
    keys_b, keys_c = _by_base(b.metrics), _by_base(c.metrics)
    for base in sorted(set(keys_b) & set(keys_c)):
        if not keys_b[base] & keys_c[base]:
            out.append((f"different backbones for {base}: {', '.join(sorted(keys_b[base]))} (baseline) vs "
                        f"{', '.join(sorted(keys_c[base]))} (candidate)",
                        rescore + f"--backbones {eb.get('backbones', 'auto')} --metrics {','.join(sorted(keys_b[base]))}"))
    return out


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _describe_ref(ref: dict[str, Any]) -> str:
    kind = ref.get("kind")
    if kind is None:
        return "none"
    if ref.get("path"):
        return f"{kind} {ref['path']}"
    return f"{kind} ({', '.join(f'{k}={v}' for k, v in sorted(ref.items()) if k != 'kind')})"


def _by_base(metrics: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for k in metrics:
        out.setdefault(k.split("[", 1)[0], set()).add(k)
    return out


# --------------------------------------------------------------------------- resampling


class Pairing:
    """Which units (clips) of the two runs are resampled together.

    Units whose key appears exactly once in each run are pairs: a resample draws pairs (the same
    draw for both runs) and, independently, each run's unpaired units. Each resample keeps every
    run's own number of units, so the statistic is always the one of a full-size set.
    """

    def __init__(self, keys_b: list[Any], keys_c: list[Any], key_name: str):
        import numpy as np

        self.key_name = key_name
        self.n_b, self.n_c = len(keys_b), len(keys_c)
        cb, cc = _counts(keys_b), _counts(keys_c)
        pos_c = {k: i for i, k in enumerate(keys_c)}
        shared = [(i, pos_c[k]) for i, k in enumerate(keys_b) if cb[k] == 1 and cc.get(k) == 1]
        self.pb = np.array([i for i, _ in shared], dtype=np.intp)
        self.pc = np.array([j for _, j in shared], dtype=np.intp)
        sb, sc = set(self.pb.tolist()), set(self.pc.tolist())
        self.ub = np.array([i for i in range(self.n_b) if i not in sb], dtype=np.intp)
        self.uc = np.array([j for j in range(self.n_c) if j not in sc], dtype=np.intp)

    @property
    def n_pairs(self) -> int:
        return len(self.pb)

    def half(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Indices of one half-sample of each run, drawn without replacement: half of the pairs (the
        same for both runs) and half of each run's unpaired units (an odd one out joins by a coin flip)."""
        import numpy as np

        def take(k: int) -> np.ndarray:
            m = k // 2 + (1 if k % 2 and rng.random() < 0.5 else 0)
            return rng.choice(k, m, replace=False) if m else np.zeros(0, np.intp)

        p = take(self.n_pairs)
        ub = self.ub[take(len(self.ub))]
        uc = self.uc[take(len(self.uc))]
        return np.concatenate([self.pb[p], ub]), np.concatenate([self.pc[p], uc])

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Indices (into each run's units) of one resample of each run."""
        import numpy as np

        p = rng.integers(0, self.n_pairs, self.n_pairs) if self.n_pairs else np.zeros(0, np.intp)
        ub = self.ub[rng.integers(0, len(self.ub), len(self.ub))] if len(self.ub) else self.ub
        uc = self.uc[rng.integers(0, len(self.uc), len(self.uc))] if len(self.uc) else self.uc
        return np.concatenate([self.pb[p], ub]), np.concatenate([self.pc[p], uc])

    @property
    def kind(self) -> str:
        if self.n_pairs and not len(self.ub) and not len(self.uc):
            return "paired bootstrap"
        if self.n_pairs:
            return "partially paired bootstrap"
        return "unpaired bootstrap"

    def describe(self) -> str:
        if self.kind == "paired bootstrap":
            return f"{self.n_pairs} pairs by {self.key_name}"
        if self.n_pairs:
            return (f"{self.n_pairs} pairs by {self.key_name}, plus {len(self.ub)} baseline and {len(self.uc)} "
                    "candidate clips resampled independently")
        return f"no clip shares its {self.key_name}: {self.n_b} baseline and {self.n_c} candidate clips resampled independently"


def _counts(keys: Iterable[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return out


def _pairing_key(b: RunView, c: RunView) -> tuple[str, Callable[[dict[str, Any]], Any]]:
    """(prompt_id, seed) when every clip of both runs has both, else clip_id."""
    def has_seeds(df: Any) -> bool:
        return ("seed" in df and "prompt_id" in df and len(df) > 0
                and bool(df["seed"].notna().all()) and bool(df["prompt_id"].notna().all()))

    if has_seeds(b.per_clip) and has_seeds(c.per_clip):
        return "(prompt_id, seed)", lambda r: (str(r["prompt_id"]), int(r["seed"]))
    return "clip_id", lambda r: str(r["clip_id"])


def _interval(boot: list[float] | np.ndarray, centre: float | None = None,
              bounds: tuple[float, float] | None = None) -> list[float] | None:
    import numpy as np

    from mova_bench.stats import CI_LEVEL, percentile_interval

    lo, hi = percentile_interval(np.asarray(boot, dtype=np.float64), level=CI_LEVEL, centre=centre)
    if lo is None:
        return None
    if bounds is not None:
        lo, hi = min(max(lo, bounds[0]), bounds[1]), min(max(hi, bounds[0]), bounds[1])
    return [lo, hi]


@dataclass
class DeltaEstimate:
    """Bootstrap replicates of each run's statistic (same resamples), or a reason there are none."""

    boot_b: np.ndarray | None = None
    boot_c: np.ndarray | None = None
    method: str | None = None
    detail: str = ""
    #: re-centre intervals on the estimate (statistics whose resamples are biased: FD, half-sample AUC)
    recentre: bool = False
    #: the range a delta can take (e.g. ±1 for an AUC): a re-centred interval is clipped to it
    bounds: tuple[float, float] | None = None
    why_not: str = ""


# --------------------------------------------------------------------------- per-clip metrics


def _close(a: float, b: float | None) -> bool:
    return b is not None and math.isfinite(a) and abs(a - b) <= REPRODUCE_RTOL * max(1.0, abs(b))


def _metric_class(key: str) -> Any | None:
    from mova_bench import registry

    name = key.split("[", 1)[0]
    try:
        return registry.metrics.get(name) if name in registry.metrics else None
    except Exception:  # noqa: BLE001 - a plugin that fails to import leaves the generic route
        return None


def _metric_instance(key: str) -> Any | None:
    cls = _metric_class(key)
    if cls is None:
        return None
    name, _, bb = key.partition("[")
    try:
        return cls(backbone=bb.rstrip("]") or None)
    except Exception:  # noqa: BLE001
        return None


def per_clip_sources(key: str) -> list[tuple[str, Callable[[np.ndarray], float], str]]:
    """Candidate (per_clip.parquet column, statistic, description) that may make up metric ``key``.

    The column is the metric class's ``per_clip_column`` (the key when it declares none), its
    statistic the mean — except the sync metrics, whose per-clip column holds only the signed
    scored offset (``sync_scored_offset_ms``) and whose statistic is their own (median, mean |·|,
    in-window share). A candidate is used only when it reproduces the recorded value.
    """
    import numpy as np

    cls = _metric_class(key)
    out: list[tuple[str, Callable[[np.ndarray], float], str]] = []
    if cls is not None and "sync_dsp" in tuple(getattr(cls, "requires", ())) and hasattr(cls, "_statistic"):
        inst = _metric_instance(key)
        from mova_bench.metrics.sync import SyncOffset

        if inst is not None:
            out.append((SyncOffset.per_clip_column or "sync_scored_offset_ms", inst._statistic,
                        f"{key}'s statistic of per-clip sync_scored_offset_ms"))
    column = (getattr(cls, "per_clip_column", None) if cls is not None else None) or key
    out.append((column, lambda v: float(np.mean(v)), f"mean of per-clip {column}"))
    return out


def _column_units(run: RunView, column: str, key_of: Callable[[dict[str, Any]], Any]) -> tuple[list[Any], np.ndarray] | None:
    import numpy as np

    df = run.per_clip
    if column not in df:
        return None
    rows = df[df[column].notna()]
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    records = rows.to_dict("records")
    values = np.array([float(r[column]) for r in records], dtype=np.float64)
    keep = np.isfinite(values)
    return [key_of(r) for r, k in zip(records, keep) if k], values[keep]


def per_clip_delta(key: str, b: RunView, c: RunView, key_name: str, key_of: Callable[[dict[str, Any]], Any],
                   n_boot: int | None = None) -> DeltaEstimate:
    import numpy as np

    from mova_bench.stats import N_BOOTSTRAP

    n_boot = N_BOOTSTRAP if n_boot is None else int(n_boot)
    vb_rec, vc_rec = b.metrics[key].get("value"), c.metrics[key].get("value")
    for column, stat, desc in per_clip_sources(key):
        ub, uc = _column_units(b, column, key_of), _column_units(c, column, key_of)
        if ub is None or uc is None or len(ub[1]) < 1 or len(uc[1]) < 1:
            continue
        if not (_close(stat(ub[1]), vb_rec) and _close(stat(uc[1]), vc_rec)):
            continue
        if len(ub[1]) < 2 or len(uc[1]) < 2:
            return DeltaEstimate(why_not=f"{desc}: fewer than 2 clips in a run")
        pairing = Pairing(ub[0], uc[0], key_name)
        rng = np.random.default_rng([COMPARE_SEED, 0xC0])
        boot_b, boot_c = np.empty(n_boot), np.empty(n_boot)
        for i in range(n_boot):
            ib, ic = pairing.draw(rng)
            boot_b[i], boot_c[i] = stat(ub[1][ib]), stat(uc[1][ic])
        return DeltaEstimate(boot_b, boot_c, pairing.kind,
                             f"{pairing.kind} over clips of {desc} ({pairing.describe()}), {n_boot} resamples")
    return DeltaEstimate(why_not="no per-clip column reproduces the recorded values")


# --------------------------------------------------------------------------- set-level metrics (cached features)


class _FeatureSource:
    """Per-clip features of a run's generated clips and of its reference set, read from the feature
    cache once per extractor (several metrics share a backbone)."""

    def __init__(self, run: RunView, key_of: Callable[[dict[str, Any]], Any]):
        from mova_bench.cache import FeatureCache

        self.run = run
        self.cache = FeatureCache()
        self.key_of = key_of
        self.params = {n: p for n, p in (run.eval_spec.get("analysis") or [])}
        self._identity: dict[str, Any] = {}
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._vectors: dict[tuple[str, str], list[np.ndarray]] = {}
        self._kept: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}

    def identity(self, name: str) -> dict[str, Any]:
        if name not in self._identity:
            from mova_bench.pipeline.analysis import ExtractorSpec

            spec = ExtractorSpec(name, tuple(sorted((self.params.get(name) or {}).items())))
            self._identity[name] = spec.build().cache_identity()
        return self._identity[name]

    def rows(self, side: str) -> list[dict[str, Any]]:
        """The clips of ``side`` ("generated" or "reference") in the order the metrics saw them."""
        if side not in self._rows:
            self._rows[side] = self._generated() if side == "generated" else self._reference()
        return self._rows[side]

    def _generated(self) -> list[dict[str, Any]]:
        df = self.run.per_clip
        rows = df[df["status"] == "ok"] if "status" in df else df
        return [{"unit": self.key_of(r), "clip_id": str(r["clip_id"]), "content_hash": r.get("content_hash"),
                 "prompt_id": r.get("prompt_id")} for r in rows.to_dict("records")]

    def _reference(self) -> list[dict[str, Any]]:
        ref = self.run.doc.get("reference") or {}
        kind = ref.get("kind")
        if kind == "procedural" and ref.get("path"):
            from mova_bench.store import read_manifest

            rows = read_manifest(Path(ref["path"]) / "manifest.jsonl")
        elif kind == "clips" and ref.get("path"):
            from mova_bench.pipeline.ingest import folder_rows

            rows = folder_rows(Path(ref["path"]), None, prefix="ref:")
        else:
            raise LookupError(f"a {kind} reference has no per-clip features")
        if not rows:
            raise LookupError("the reference set lists no clips")
        return [{"unit": r["clip_id"], "clip_id": r["clip_id"], "content_hash": r.get("content_hash"),
                 "prompt_id": r.get("prompt_id")} for r in rows if r.get("status") == "ok"]

    def _vectors_of(self, side: str, name: str) -> list[np.ndarray]:
        """One embedding per clip of ``side``. A clip whose features are missing from the cache makes
        the recomputation unusable (LookupError): leaving it out would change the set the recorded
        value was computed on (the check against the recorded value would catch it anyway)."""
        import numpy as np

        if (side, name) not in self._vectors:
            out = []
            for r in self.rows(side):
                got = self.cache.get(self.identity(name), r["content_hash"]) if r.get("content_hash") else None
                if got is None or "embedding" not in got:
                    raise LookupError(f"{name} features of {r['clip_id']} are not in the feature cache (cache emptied, "
                                      "another MOVA_BENCH_HOME, or the extractor's code changed since the run)")
                out.append(np.asarray(got["embedding"], dtype=np.float64).ravel())
            self._vectors[(side, name)] = out
        return self._vectors[(side, name)]

    def group_keys(self, side: str, names: list[str]) -> tuple[list[Any], list[Any]]:
        """(prompt ids, content hashes) of the rows of the last :meth:`matrix` of ``side`` and ``names``:
        the detector's fold groups (clips of one prompt, and identical files, share a fold)."""
        kept = self._kept.get((side, tuple(names)), [])
        return [r.get("prompt_id") for r in kept], [r.get("content_hash") for r in kept]

    def matrix(self, side: str, names: list[str]) -> tuple[list[Any], np.ndarray]:
        """(units, concatenated embeddings) of the clips of ``side`` whose features are all finite
        (the metrics leave out clips with NaN/inf features; so does this)."""
        import numpy as np

        per = [self._vectors_of(side, n) for n in names]
        units, blocks, kept = [], [], []
        for r, parts in zip(self.rows(side), zip(*per)):
            vec = np.concatenate(parts)
            if np.isfinite(vec).all():
                units.append(r["unit"])
                blocks.append(vec)
                kept.append(r)
        self._kept[(side, tuple(names))] = kept
        if not blocks:
            return [], np.zeros((0, 0))
        return units, np.stack(blocks)


def _set_metric_kind(key: str) -> str | None:
    cls = _metric_class(key)
    if cls is None:
        return None
    try:
        from mova_bench.metrics.detector import DetectorAUC
        from mova_bench.metrics.distribution import _KID, _Frechet
    except ImportError:  # pragma: no cover - a refactor renamed them: fall back to the combined CIs
        return None
    if issubclass(cls, _Frechet):
        return "fd"
    if issubclass(cls, _KID):
        return "kid"
    if issubclass(cls, DetectorAUC):
        return "detector"
    return None


def _same_reference(b: RunView, c: RunView) -> str | None:
    rb, rc = b.doc.get("reference") or {}, c.doc.get("reference") or {}
    fields = ("kind", "path", "geometry", "n_clips")
    if any(_canon(rb.get(f)) != _canon(rc.get(f)) for f in fields):
        return "the runs were scored against different reference renders (" + "; ".join(
            f"{f}: {rb.get(f)} vs {rc.get(f)}" for f in fields if _canon(rb.get(f)) != _canon(rc.get(f))) + ")"
    return None


def set_level_delta(key: str, b: RunView, c: RunView, key_name: str,
                    sources: tuple[_FeatureSource, _FeatureSource]) -> DeltaEstimate:
    kind = _set_metric_kind(key)
    if kind is None:
        return DeltaEstimate(why_not="not a metric this build can recompute from features")
    other_ref = _same_reference(b, c)
    if other_ref:
        return DeltaEstimate(why_not=other_ref)
    bb = key.partition("[")[2].rstrip("]")
    names = [p for p in bb.split("+") if p] if kind == "detector" else [bb]
    if not names:
        return DeltaEstimate(why_not="the metric key names no backbone")
    src_b, src_c = sources
    try:
        gb_units, xb = src_b.matrix("generated", names)
        gc_units, xc = src_c.matrix("generated", names)
        ref_info = b.doc.get("reference") or {}
        if ref_info.get("kind") == "stats":
            if kind != "fd":
                return DeltaEstimate(why_not="a stats reference has no per-clip features")
            from mova_bench.pipeline.reference import load_reference_stats

            stats, _ = load_reference_stats(ref_info["path"])
            if bb not in stats:
                return DeltaEstimate(why_not=f"the reference statistics hold no {bb!r}")
            ref: tuple = ("stats", stats[bb].mean, stats[bb].cov)
        else:
            # one reference set (checked above) and one extractor identity (the analysis parameters
            # were checked equal): the baseline's reading of it serves both runs
            ref_units, y = src_b.matrix("reference", names)
            ref = ("clips", ref_units, y, src_b.group_keys("reference", names))
    except LookupError as exc:
        return DeltaEstimate(why_not=str(exc))
    except (MovaBenchError, OSError, ValueError) as exc:
        return DeltaEstimate(why_not=f"features could not be read ({exc})")
    if len(gb_units) < 2 or len(gc_units) < 2:
        return DeltaEstimate(why_not="fewer than 2 clips with features in a run")
    if ref[0] == "clips" and len(ref[1]) < 2:
        return DeltaEstimate(why_not="fewer than 2 reference clips with features")
    pairing = Pairing(gb_units, gc_units, key_name)
    try:
        if kind == "fd":
            return _fd_delta(key, b, c, xb, xc, ref, pairing)
        if kind == "kid":
            return _kid_delta(key, b, c, xb, xc, ref, pairing)
        return _detector_delta(key, b, c, xb, xc, ref, pairing,
                               (src_b.group_keys("generated", names), src_c.group_keys("generated", names)))
    except (ValueError, TypeError, AttributeError, np.linalg.LinAlgError, ImportError) as exc:
        # e.g. a refactor of the metric modules' helpers: the combined CIs still answer
        return DeltaEstimate(why_not=f"recomputation failed ({type(exc).__name__}: {exc})")


def _not_reproduced(key: str, got: tuple[float, float], b: RunView, c: RunView) -> DeltaEstimate | None:
    rec = (b.metrics[key].get("value"), c.metrics[key].get("value"))
    if _close(got[0], rec[0]) and _close(got[1], rec[1]):
        return None
    return DeltaEstimate(why_not=f"the cached features give {got[0]:.6g} / {got[1]:.6g}, not the recorded "
                                 f"{rec[0]} / {rec[1]}")


def _fd_delta(key: str, b: RunView, c: RunView, xb: np.ndarray, xc: np.ndarray, ref: tuple, pairing: Pairing) -> DeltaEstimate:
    import numpy as np

    from mova_bench.metrics.frechet import (frechet_distance, frechet_from_parts, mean_cov, sqrt_eigenvalue_sum,
                                            sqrt_factor)

    if ref[0] == "stats":
        mu_r, cov_r = ref[1], ref[2]
    else:
        mu_r, cov_r = mean_cov(ref[2], "reference features")
    point = (frechet_distance(*mean_cov(xb, "baseline features"), mu_r, cov_r),
             frechet_distance(*mean_cov(xc, "candidate features"), mu_r, cov_r))
    bad = _not_reproduced(key, point, b, c)
    if bad:
        return bad
    factor = sqrt_factor(cov_r)
    tr_r = float(np.trace(cov_r))

    def fd(x: np.ndarray, xb_: np.ndarray, idx: np.ndarray) -> float:
        """FD of one resample (counts ``w``), as the metric's own bootstrap computes it:
        tr√(Σ_ref Σ*) = Σ√eig(Bᵀ Σ* B) with Bᵀ Σ* B = Zᵀ diag(w) Z / (n−1). When n < D the non-zero
        eigenvalues are those of the n×n matrix (√w Z)(√w Z)ᵀ / (n−1): same value, far cheaper."""
        n = len(x)
        w = np.bincount(idx, minlength=n).astype(np.float64)
        mu = (w @ x) / n
        z = xb_ - mu @ factor
        cen = x - mu
        tr_cov = float(w @ np.einsum("ij,ij->i", cen, cen)) / (n - 1)
        if n < z.shape[1]:
            zs = z * np.sqrt(w)[:, None]
            tr_sqrt = sqrt_eigenvalue_sum(zs @ zs.T / (n - 1))
        else:
            tr_sqrt = sqrt_eigenvalue_sum((z.T * w) @ z / (n - 1))
        return frechet_from_parts(mu - mu_r, tr_cov, tr_r, tr_sqrt)

    pb, pc = xb @ factor, xc @ factor
    rng = np.random.default_rng([COMPARE_SEED, 0xFD])
    boot_b, boot_c = np.empty(SET_BOOT), np.empty(SET_BOOT)
    for i in range(SET_BOOT):
        ib, ic = pairing.draw(rng)
        boot_b[i], boot_c[i] = fd(xb, pb, ib), fd(xc, pc, ic)
    return DeltaEstimate(boot_b, boot_c, pairing.kind + " (cached features)",
                         f"{pairing.kind} of FD recomputed from cached features ({pairing.describe()}; reference held "
                         f"fixed), {SET_BOOT} resamples, interval re-centred on the estimate", recentre=True)


def _kid_delta(key: str, b: RunView, c: RunView, xb: np.ndarray, xc: np.ndarray, ref: tuple, pairing: Pairing) -> DeltaEstimate:
    import numpy as np

    from mova_bench.metrics import kid as kidmod

    y = ref[2]
    if max(len(xb), len(xc)) > kidmod.MAX_GEN_KERNEL:
        return DeltaEstimate(why_not=f"more than {kidmod.MAX_GEN_KERNEL} clips: the KID bootstrap is not run")
    kw = dict(subset_size=None, n_subsets=kidmod.N_SUBSETS, degree=kidmod.DEGREE, gamma=None, coef=kidmod.COEF)
    _, sub_b, m_b, sums_b = kidmod._prepare(xb, y, seed=b.seed, **kw)
    _, sub_c, m_c, sums_c = kidmod._prepare(xc, y, seed=c.seed, **kw)
    point = (float(np.mean(sums_b.values(kidmod._indicator(len(xb), sub_b)))),
             float(np.mean(sums_c.values(kidmod._indicator(len(xc), sub_c)))))
    bad = _not_reproduced(key, point, b, c)
    if bad:
        return bad
    rng = np.random.default_rng([COMPARE_SEED, 0xB007])

    def kid_of(sums: Any, n: int, m: int, n_sub: int, res: np.ndarray, positions: list[np.ndarray] | None) -> float:
        if m == n:  # every subset is the whole resample (the metric's own rule)
            cnt = np.bincount(res, minlength=n).astype(np.float64)[:, None]
        else:
            cnt = np.empty((n, n_sub))
            for s in range(n_sub):
                cnt[:, s] = np.bincount(res[positions[s]], minlength=n)
        return float(np.mean(sums.values(cnt)))

    boot_b, boot_c = np.empty(SET_BOOT), np.empty(SET_BOOT)
    for i in range(SET_BOOT):
        ib, ic = pairing.draw(rng)
        pos_b = [rng.choice(len(xb), m_b, replace=False) for _ in sub_b] if m_b != len(xb) else None
        # positions shared when the sets are the same size: a pair sits at the same position in both draws
        pos_c = pos_b if (pos_b is not None and len(xc) == len(xb) and m_c == m_b) else (
            [rng.choice(len(xc), m_c, replace=False) for _ in sub_c] if m_c != len(xc) else None)
        boot_b[i] = kid_of(sums_b, len(xb), m_b, len(sub_b), ib, pos_b)
        boot_c[i] = kid_of(sums_c, len(xc), m_c, len(sub_c), ic, pos_c)
    return DeltaEstimate(boot_b, boot_c, pairing.kind + " (cached features)",
                         f"{pairing.kind} of KID recomputed from cached features ({pairing.describe()}; each run's "
                         f"reference subsets held fixed), {SET_BOOT} resamples")


def _detector_delta(key: str, b: RunView, c: RunView, xb: np.ndarray, xc: np.ndarray, ref: tuple,
                    pairing: Pairing, gen_keys: tuple = ((([], []), ([], [])))) -> DeltaEstimate:
    """Delete-half jackknife of the detector AUC delta, the detector refitted on every half-sample.

    The metric's own CI holds the fitted out-of-fold scores fixed, which leaves out the variance of
    fitting the classifier — at small n the larger part (a reseeded copy of one model can move the
    AUC from 0.3 to 0.9). Here every replicate draws half of the pairs, half of each run's unpaired
    clips and half of the reference clips (one draw for both runs), refits the cross-validated
    detector of each run on its half (one fold seed for both runs), and takes the AUC difference.
    The variance of a statistic over half-samples drawn without replacement estimates its
    full-sample variance (delete-d jackknife, d = n/2: factor (n−d)/d = 1); no clip is duplicated,
    so the cross-validation stays honest. Half-size AUCs are biased towards 0.5 (less training
    data), so the interval is re-centred on the observed delta.
    """
    import numpy as np

    from mova_bench.metrics.detector import detector_oof, groups_from_keys, roc_auc

    det = _metric_instance(key)
    if det is None or not hasattr(det, "detector"):
        return DeltaEstimate(why_not="the detector cannot be rebuilt")
    ref_units, y_ref = ref[1], ref[2]
    # fold groups as the metric forms them: prompt ids and content hashes of both sides
    ref_p, ref_h = ref[3] if len(ref) > 3 else ([None] * len(ref_units), [None] * len(ref_units))
    (gb_p, gb_h), (gc_p, gc_h) = gen_keys

    def pick(seq: list[Any], idx: np.ndarray | None) -> list[Any]:
        if not seq:
            return [None] * (len(idx) if idx is not None else 0)
        return list(seq) if idx is None else [seq[i] for i in idx]

    def auc(x: np.ndarray, y_ref: np.ndarray, seed: int, gp: list[Any], gh: list[Any], rp: list[Any],
            rh: list[Any]) -> float:
        X = np.concatenate([x, y_ref])
        y = np.concatenate([np.ones(len(x), np.intp), np.zeros(len(y_ref), np.intp)])
        gp, gh = (gp or [None] * len(x)), (gh or [None] * len(x))
        groups = groups_from_keys(list(gp) + list(rp), list(gh) + list(rh))
        return roc_auc(detector_oof(det.detector, X, y, seed, groups), y)

    bad = _not_reproduced(key, (auc(xb, y_ref, b.seed, gb_p, gb_h, ref_p, ref_h),
                                auc(xc, y_ref, c.seed, gc_p, gc_h, ref_p, ref_h)), b, c)
    if bad:
        return bad
    if min(len(xb), len(xc), len(ref_units)) < 4:
        return DeltaEstimate(why_not="fewer than 4 clips on a side: half-samples cannot be cross-validated")
    ref_pairing = Pairing(list(ref_units), list(ref_units), "reference clip")
    rng = np.random.default_rng([COMPARE_SEED, 0xA0C])
    boot_b, boot_c = np.empty(DETECTOR_BOOT), np.empty(DETECTOR_BOOT)
    with _one_blas_thread():  # hundreds of tiny fits: thread start-up costs more than it saves
        for i in range(DETECTOR_BOOT):
            ib, ic = pairing.half(rng)
            rb, _ = ref_pairing.half(rng)
            fold_seed = int(rng.integers(0, 2**31 - 1))
            rp, rh = pick(ref_p, rb), pick(ref_h, rb)
            boot_b[i] = auc(xb[ib], y_ref[rb], fold_seed, pick(gb_p, ib), pick(gb_h, ib), rp, rh)
            boot_c[i] = auc(xc[ic], y_ref[rb], fold_seed, pick(gc_p, ic), pick(gc_h, ic), rp, rh)
    return DeltaEstimate(boot_b, boot_c, pairing.kind.replace("bootstrap", "half-sampling") + " (detector refitted)",
                         f"{pairing.kind.replace('bootstrap', 'delete-half jackknife')} of the detector AUC, the "
                         f"cross-validated detector refitted on each half-sample of generated and reference clips "
                         f"(fitting variance included; {pairing.describe()}; one reference draw and fold seed for both "
                         f"runs), {DETECTOR_BOOT} half-samples, interval re-centred on the estimate", recentre=True,
                         bounds=(-1.0, 1.0))


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


# --------------------------------------------------------------------------- combining into rows


def _abs_ci(ci: list[float]) -> list[float]:
    lo, hi = ci
    if lo <= 0 <= hi:
        return [0.0, max(-lo, hi)]
    return sorted([abs(lo), abs(hi)])


def mover(est_b: float, ci_b: list[float], est_c: float, ci_c: list[float]) -> list[float]:
    """95% CI of ``est_c − est_b`` from the two CIs, as independent (Newcombe's MOVER)."""
    d = est_c - est_b
    lo = d - math.hypot(est_c - ci_c[0], ci_b[1] - est_b)
    hi = d + math.hypot(ci_c[1] - est_c, est_b - ci_b[0])
    return [lo, hi]


def _ci(m: dict[str, Any]) -> list[float] | None:
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return [float(lo), float(hi)]


@dataclass
class Row:
    metric: str
    display_name: str
    unit: str
    higher_is_better: bool | None
    baseline: float | None
    baseline_ci: list[float] | None
    candidate: float | None
    candidate_ci: list[float] | None
    delta: float | None = None
    delta_ci: list[float] | None = None
    #: CI of the change in the metric's bad direction (+ = worse): what the verdict and gates read
    regression: float | None = None
    regression_ci: list[float] | None = None
    method: str | None = None
    method_detail: str = ""
    verdict: str = "not compared"
    fail_on: dict[str, Any] | None = None
    failed: bool = False
    n_baseline: int | None = None
    n_candidate: int | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        from mova_bench.store import sanitize_floats

        return sanitize_floats({
            "metric": self.metric, "display_name": self.display_name, "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "baseline": self.baseline, "baseline_ci": self.baseline_ci,
            "candidate": self.candidate, "candidate_ci": self.candidate_ci,
            "delta": self.delta, "delta_ci": self.delta_ci,
            "regression": self.regression, "regression_ci": self.regression_ci,
            "method": self.method, "method_detail": self.method_detail, "verdict": self.verdict,
            "fail_on": self.fail_on, "failed": self.failed,
            "n_baseline": self.n_baseline, "n_candidate": self.n_candidate, "note": self.note or None,
        })


def _bad_direction(hib: bool | None) -> Callable[[float, float], float]:
    """(baseline, candidate) → change in the bad direction (+ = worse)."""
    if hib is True:
        return lambda vb, vc: vb - vc
    if hib is False:
        return lambda vb, vc: vc - vb
    return lambda vb, vc: abs(vc) - abs(vb)


def compare_metric(key: str, b: RunView, c: RunView, key_name: str, key_of: Callable[[dict[str, Any]], Any],
                   sources: tuple[_FeatureSource, _FeatureSource] | None = None) -> Row:
    import numpy as np

    mb, mc = b.metrics[key], c.metrics[key]
    cls = _metric_class(key)
    hib = mb.get("higher_is_better", getattr(cls, "higher_is_better", None))
    row = Row(key, mb.get("display_name") or getattr(cls, "display_name", key) or key, mb.get("unit") or "", hib,
              mb.get("value"), _ci(mb), mc.get("value"), _ci(mc), n_baseline=mb.get("n"), n_candidate=mc.get("n"))
    not_ok = [f"{who}: {m.get('status')} ({m.get('reason') or 'no value'})" for who, m in (("baseline", mb), ("candidate", mc))
              if m.get("status") != "ok" or m.get("value") is None]
    if not_ok:
        row.note = "; ".join(not_ok)
        return row
    vb, vc = float(row.baseline), float(row.candidate)
    row.delta = vc - vb
    bad = _bad_direction(hib)
    row.regression = bad(vb, vc)
    est = per_clip_delta(key, b, c, key_name, key_of)
    if est.boot_b is None:
        set_est = set_level_delta(key, b, c, key_name, sources or (_FeatureSource(b, key_of), _FeatureSource(c, key_of)))
        if set_est.boot_b is not None or _set_metric_kind(key):
            est = set_est
    if est.boot_b is not None:
        centre = row.delta if est.recentre else None
        row.delta_ci = _interval(est.boot_c - est.boot_b, centre, est.bounds)
        reg_boot = np.array([bad(x, y) for x, y in zip(est.boot_b, est.boot_c)])
        row.regression_ci = _interval(reg_boot, row.regression if est.recentre else None, est.bounds)
        row.method, row.method_detail = est.method, est.detail
    elif row.baseline_ci and row.candidate_ci:
        row.delta_ci = mover(vb, row.baseline_ci, vc, row.candidate_ci)
        if hib is True:
            row.regression_ci = [-row.delta_ci[1], -row.delta_ci[0]]
        elif hib is False:
            row.regression_ci = list(row.delta_ci)
        else:
            row.regression_ci = mover(abs(vb), _abs_ci(row.baseline_ci), abs(vc), _abs_ci(row.candidate_ci))
        row.method = "combined CIs (MOVER)"
        row.method_detail = ("the two runs' own 95% CIs combined as independent estimates (MOVER: half-widths in "
                             f"quadrature, each side separately) because {est.why_not}")
    else:
        row.method = None
        row.method_detail = f"no CI for the delta: {est.why_not}; and a run reports no CI of its own"
    if row.regression_ci is None:
        row.verdict = "no CI"
    elif row.regression_ci[0] > 0:
        row.verdict = "worse"
    elif row.regression_ci[1] < 0:
        row.verdict = "better"
    else:
        row.verdict = "no clear change"
    return row


def _apply_gates(rows: list[Row], gates: list[FailOn], b: RunView, c: RunView) -> tuple[list[str], list[str]]:
    """Attach each --fail-on to its rows; returns (regressions, reasons a gate cannot be judged)."""
    regressions, cannot = [], []
    by_key = {r.metric: r for r in rows}
    for g in gates:
        keys = [k for k in by_key if g.matches(k)]
        # a key skipped in both runs for want of its backbone (--backbones auto without its weights) cannot
        # regress: a gate on the bare metric name judges the keys that were computed, if any
        unavailable = [k for k in keys if all(((v.metrics.get(k) or {}).get("extra") or {}).get("backbone_unavailable")
                                              for v in (b, c))]
        if unavailable and len(unavailable) == len(keys):
            fix = (b.metrics[unavailable[0]] or {}).get("fix") or "fetch the backbone's weights"
            cannot.append(f"--fail-on {g.text}: {', '.join(unavailable)} was not computed in either run (backbone "
                          f"unavailable); fix: {fix}, then re-score both runs (mova-bench evaluate --run RUN)")
            continue
        keys = [k for k in keys if k not in unavailable]
        if not keys:
            only = [k for k in list(b.metrics) + list(c.metrics) if g.matches(k)]
            where = "the baseline" if any(k in b.metrics for k in only) else "the candidate"
            cannot.append(f"--fail-on {g.text}: {', '.join(sorted(set(only)))} is only in {where}; fix: score both runs "
                          f"with it (mova-bench evaluate --run RUN --metrics {g.metric})")
            continue
        for k in keys:
            row = by_key[k]
            thr = g.threshold(row.baseline)
            gate = {"spec": g.text, "tolerance": g.tolerance, "relative": g.relative, "threshold": thr}
            if row.fail_on is not None and row.fail_on.get("threshold") is not None and thr is not None \
                    and row.fail_on["threshold"] <= thr:
                continue  # several gates on one metric: the strictest one holds
            row.fail_on = gate
            row.failed = False
    for row in rows:
        if row.fail_on is None:
            continue
        thr = row.fail_on["threshold"]
        if row.regression_ci is None or thr is None:
            why = row.note or row.method_detail or "no confidence interval"
            cannot.append(f"--fail-on {row.fail_on['spec']}: {row.metric} cannot be judged ({why})")
            continue
        row.failed = row.regression_ci[0] > thr
        if row.failed:
            unit = f" {row.unit}" if row.unit else ""
            regressions.append(
                f"{row.metric} regressed beyond --fail-on {row.fail_on['spec']}: the 95% CI of the change in its "
                f"bad direction, [{_f(row.regression_ci[0], True)}, {_f(row.regression_ci[1], True)}]{unit}, lies "
                f"entirely above the tolerance {_f(thr, True)}{unit}")
    return regressions, cannot


def compare(baseline: str | Path, candidate: str | Path, fail_on: list[FailOn] | None = None) -> dict[str, Any]:
    """The comparison report (the ``--json`` object); raises CannotCompare / UsageError for exit 2."""
    b, c = load_run(baseline, "baseline"), load_run(candidate, "candidate")
    gates = list(fail_on or [])
    all_keys = sorted(set(b.metrics) | set(c.metrics))
    unknown = [g for g in gates if not any(g.matches(k) for k in all_keys)]
    if unknown:
        raise UsageError(
            f"--fail-on {', '.join(g.metric for g in unknown)}: no such metric in either run; valid metric keys: "
            f"{', '.join(all_keys)} (the name before [backbone] also matches)",
            fix="name one of the metric keys above, e.g. --fail-on " + (all_keys[0] if all_keys else "fd_video") + ":+5%",
        )
    problems = incompatibilities(b, c)
    report: dict[str, Any] = {"baseline": str(b.path), "candidate": str(c.path), "passed": False,
                              "exit_code": EXIT_CANNOT_COMPARE, "rows": [], "reasons": [], "notes": []}
    if problems:
        report["reasons"] = [f"cannot compare: {why}; fix: {fix}" for why, fix in problems]
        return report
    key_name, key_of = _pairing_key(b, c)
    shared = [k for k in b.metrics if k in c.metrics]
    notes = report["notes"]
    for who, run, other in (("baseline", b, c), ("candidate", c, b)):
        only = [k for k in run.metrics if k not in other.metrics]
        if only:
            notes.append(f"only in the {who}, not compared: {', '.join(only)}")
        if run.doc.get("n_failed"):
            notes.append(f"{who}: {run.doc['n_failed']} of {run.doc.get('n_clips')} clips failed and are not scored "
                         f"({', '.join(f'{k}: {v}' for k, v in (run.doc.get('failures') or {}).items())})")
    if b.seed != c.seed:
        notes.append(f"the runs' seeds differ ({b.seed} vs {c.seed}): clips are paired only where they share "
                     f"{key_name}")
    ref_note = _same_reference(b, c)
    if ref_note and any(m.get("status") == "ok" for k, m in b.metrics.items() if _set_metric_kind(k)):
        notes.append(f"{ref_note}: reference-based metrics compare distances to different reference sets")
    sources = (_FeatureSource(b, key_of), _FeatureSource(c, key_of))
    rows = [compare_metric(k, b, c, key_name, key_of, sources) for k in shared]
    regressions, cannot = _apply_gates(rows, gates, b, c)
    report["rows"] = [r.to_json() for r in rows]
    if cannot:
        report["reasons"] = [f"cannot compare: {w}" for w in cannot] + regressions
        return report
    report["reasons"] = regressions
    report["exit_code"] = EXIT_REGRESSION if regressions else EXIT_PASS
    report["passed"] = not regressions
    return report


# --------------------------------------------------------------------------- rendering


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    s = f"{v:+.4g}" if signed else f"{v:.4g}"
    return s


def _with_ci(v: float | None, ci: list[float] | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return _f(v, signed) + (f" [{_f(ci[0], signed)}, {_f(ci[1], signed)}]" if ci else "")


def _gate_text(r: dict[str, Any]) -> str:
    g = r.get("fail_on")
    if not g:
        return ""
    thr = g.get("threshold")
    if r.get("regression_ci") is None or thr is None:
        return f"CANNOT JUDGE ({g['spec']})"
    lo = r["regression_ci"][0]
    if r.get("failed"):
        return f"FAIL {_f(lo, True)} > {_f(thr, True)}"
    return f"ok {_f(lo, True)} ≤ {_f(thr, True)}"


def _verdict_text(r: dict[str, Any]) -> str:
    import numpy as np

    v = r["verdict"]
    if r.get("higher_is_better") is None and r.get("regression_ci") and r.get("delta_ci") and v != "not compared":
        lo, hi = r["regression_ci"]
        if not np.allclose([r["regression"], lo, hi], [r["delta"], *r["delta_ci"]]):  # shown when |x| tells otherwise
            v += f" (|x| {_f(r['regression'], True)} [{_f(lo, True)}, {_f(hi, True)}])"
    return v


def table(report: dict[str, Any]):
    """The comparison as a pandas DataFrame, one row per metric, formatted for reading."""
    pd = _pandas()
    recs = []
    for r in report["rows"]:
        unit = f" {r['unit']}" if r.get("unit") and r["unit"] not in ("fraction",) else ""
        recs.append({
            "metric": r["metric"],
            "better": {True: "higher", False: "lower", None: "closer to 0"}[r.get("higher_is_better")],
            "baseline [95% CI]": _with_ci(r["baseline"], r["baseline_ci"]) + (unit if r["baseline"] is not None else ""),
            "candidate [95% CI]": _with_ci(r["candidate"], r["candidate_ci"]) + (unit if r["candidate"] is not None else ""),
            "Δ [95% CI]": _with_ci(r["delta"], r["delta_ci"], signed=True),
            "verdict": _verdict_text(r),
            "gate": _gate_text(r),
            "method": r.get("method") or ("—" if r["verdict"] == "not compared" else "no CI"),
        })
    cols = ["metric", "better", "baseline [95% CI]", "candidate [95% CI]", "Δ [95% CI]", "verdict", "gate", "method"]
    df = pd.DataFrame.from_records(recs, columns=cols)
    if not any(r.get("fail_on") for r in report["rows"]):
        df = df.drop(columns=["gate"])
    return df


def _outcome_line(report: dict[str, Any]) -> str:
    code = report["exit_code"]
    if code == EXIT_PASS:
        return "PASS: no --fail-on gate tripped" if any(r.get("fail_on") for r in report["rows"]) else \
            "PASS (no --fail-on gates given)"
    if code == EXIT_REGRESSION:
        return "REGRESSION: " + "; ".join(report["reasons"])
    return "CANNOT COMPARE: " + "; ".join(report["reasons"])


def _method_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for r in report["rows"]:
        if r.get("method_detail"):
            lines.append(f"{r['metric']}: {r['method_detail']}")
        elif r.get("note"):
            lines.append(f"{r['metric']}: not compared: {r['note']}")
    return lines


def render_text(report: dict[str, Any]) -> str:
    pd = _pandas()
    out = [f"baseline:  {report['baseline']}", f"candidate: {report['candidate']}", ""]
    if report["rows"]:
        with pd.option_context("display.max_colwidth", None, "display.width", 10_000):
            out.append(table(report).to_string(index=False))
        out.append("")
        if any(r.get("fail_on") for r in report["rows"]):
            out.append("gate: lower end of the 95% CI of the change in the metric's bad direction vs the --fail-on "
                       "tolerance (fails only when the whole CI lies beyond it)")
        out.append("delta CI methods (95%):")
        out += [f"  {ln}" for ln in _method_lines(report)]
    for n in report.get("notes") or []:
        out.append(f"note: {n}")
    if report["exit_code"] == EXIT_CANNOT_COMPARE:
        out.append("CANNOT COMPARE:")
        out += [f"  {r}" for r in report["reasons"]]
    else:
        out.append(_outcome_line(report))
    return "\n".join(out) + "\n"


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    """A markdown table for a CI comment (first line: a marker a bot can find to update its comment)."""
    head = {EXIT_PASS: "✅ **PASS**", EXIT_REGRESSION: "❌ **REGRESSION**"}.get(report["exit_code"], "⚠️ **CANNOT COMPARE**")
    out = [MARKDOWN_MARKER, f"### mova-bench compare: {head}", "",
           f"baseline `{Path(report['baseline']).name}` → candidate `{Path(report['candidate']).name}`", ""]
    if report["rows"]:
        df = table(report)
        out.append("| " + " | ".join(_md_cell(c) for c in df.columns) + " |")
        out.append("|" + "|".join("---" for _ in df.columns) + "|")
        for rec in df.itertuples(index=False):
            out.append("| " + " | ".join(_md_cell(v) for v in rec) + " |")
        out.append("")
    for r in report["reasons"]:
        out.append(f"- {_md_cell(r)}")
    for n in report.get("notes") or []:
        out.append(f"- note: {_md_cell(n)}")
    if report["rows"]:
        out += ["", "<details><summary>How each delta CI was computed</summary>", ""]
        out += [f"- `{ln.split(':', 1)[0]}`:{_md_cell(ln.split(':', 1)[1])}" for ln in _method_lines(report)]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- entry point


def main(args: argparse.Namespace) -> int:
    """Run ``compare`` for parsed ``args``; prints the table (or one JSON object) and returns the exit code."""
    as_json = bool(getattr(args, "json", False))
    try:
        report = compare(args.baseline, args.candidate, list(getattr(args, "fail_on", None) or []))
    except MovaBenchError as exc:
        msg = Exception.__str__(exc)
        fix = getattr(exc, "fix", None)
        kind = "error" if isinstance(exc, (UsageError, MissingDependencyError)) else "cannot compare"
        print(f"mova-bench compare: {kind}: {msg}" + (f"\n  fix: {fix}" if fix else ""), file=sys.stderr)
        report = {"baseline": str(args.baseline), "candidate": str(args.candidate), "passed": False,
                  "exit_code": EXIT_CANNOT_COMPARE, "rows": [],
                  "reasons": [f"{kind}: {msg}" + (f"; fix: {fix}" if fix else "")], "notes": []}
        if as_json:
            print(json.dumps(report))
        if isinstance(exc, UsageError):
            return EXIT_CANNOT_COMPARE
        return _write_markdown(args, report) or EXIT_CANNOT_COMPARE
    failed_md = _write_markdown(args, report)
    if failed_md:
        report = {**report, "passed": False, "exit_code": EXIT_CANNOT_COMPARE,
                  "reasons": report["reasons"] + [f"--markdown {args.markdown}: cannot be written"]}
    if as_json:
        print(json.dumps(report))
    else:
        print(render_text(report), end="")
        if report["exit_code"] == EXIT_CANNOT_COMPARE:  # the CLI's error contract: the problem, then "fix: …"
            for r in report["reasons"]:
                why, _, fix = r.partition("; fix: ")
                print(f"mova-bench compare: {why}" + (f"\n  fix: {fix}" if fix else ""), file=sys.stderr)
    return int(report["exit_code"])


def _write_markdown(args: argparse.Namespace, report: dict[str, Any]) -> int:
    """Write --markdown FILE atomically; 0 on success (or none asked), else EXIT_CANNOT_COMPARE."""
    path = getattr(args, "markdown", None)
    if not path:
        return 0
    from mova_bench.store import write_text_atomic

    try:
        write_text_atomic(path, render_markdown(report))
    except OSError as exc:
        print(f"mova-bench compare: error: --markdown {path!r}: cannot write: {exc.strerror or exc}\n"
              "  fix: give a path in a writable folder", file=sys.stderr)
        return EXIT_CANNOT_COMPARE
    return 0


__all__ = ["FailOn", "add_parser", "compare", "main", "mover", "parse_fail_on", "render_markdown", "table"]
