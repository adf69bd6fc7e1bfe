"""``mova-bench reference build``: precomputed reference statistics (like shared FID stats).

Renders/analyses the suite's reference set and writes, per embedding backbone, the float64
running sums (n, Σx, Σxxᵀ) into one ``.npz`` (no pickle) with provenance. A suite can then use
``reference: {kind: stats, path: FILE}``; Fréchet distances work from it, KID and the detector
(which need per-clip features) are skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

from mova_bench import __version__
from mova_bench.analysis import ExtractorSpec
from mova_bench.errors import ConfigError
from mova_bench.executors import get_executor
from mova_bench.pipeline import analyse_set, reference_rows
from mova_bench.registry import features
from mova_bench.suites import load_suite


def build_reference_stats(suite_name: str, out: str, *, backbones: tuple[str, ...] = ("vstats", "melstats")) -> Path:
    from mova_bench.metrics.frechet import RunningStats, save_stats_npz

    path = Path(out)
    if path.suffix != ".npz":
        raise ConfigError(f"--out {out!r}: expected a file name ending in .npz")
    if path.exists():
        raise ConfigError(f"--out {out!r} already exists; it is never overwritten. Choose another file name")
    suite = load_suite(suite_name)
    if suite.reference.kind == "stats":
        raise ConfigError(f"suite {suite.name!r} already uses a stats reference ({suite.reference.path})")
    ex = get_executor("local")
    rows, _, info = reference_rows(suite, ex)
    specs = tuple(ExtractorSpec(b) for b in backbones)
    fs, _ = analyse_set(rows, specs, ex, desc="analysing reference")
    stats = {}
    for b in backbones:
        ids, x = fs.matrix(b)
        if not ids:
            raise ConfigError(f"no usable reference clip for backbone {b!r}")
        st = RunningStats.from_features(x)
        st.provenance = {"extractor": features.get(b)().cache_identity()}
        stats[b] = st
    n_failed = sum(1 for r in rows if r.get("status") != "ok")
    return save_stats_npz(path, stats, suite=suite.name, suite_version=suite.version,
                          suite_fingerprint=suite.fingerprint(), reference=info, n_clips=len(fs.clip_ids),
                          n_failed=n_failed, mova_bench=__version__)
