"""Uncertainty: percentile bootstrap confidence intervals over clips."""

from __future__ import annotations

from typing import Callable

import numpy as np

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over the first axis of ``values`` (seeded).

    NaNs must be removed by the caller (a missing value is never averaged). With fewer than two
    values the interval is (nan, nan).
    """
    values = np.asarray(values)
    n = values.shape[0]
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    stats = np.array([statistic(values[i]) for i in idx], dtype=np.float64)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def percentile_interval(
    boot: np.ndarray, *, level: float = CI_LEVEL, centre: float | None = None
) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap replicates ``boot`` (non-finite replicates dropped).

    With ``centre`` (the estimate on the full sample) the interval is shifted so the replicates'
    median sits on it: for statistics whose resamples are biased by the resampling itself (the
    Fréchet distance of a resample with duplicated clips is biased upward) the replicates give the
    spread, not the location. Returns (None, None) when fewer than two finite replicates remain.
    """
    b = np.asarray(boot, dtype=np.float64)
    b = b[np.isfinite(b)]
    if b.size < 2:
        return None, None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(b, alpha), np.quantile(b, 1.0 - alpha)
    if centre is not None:
        shift = float(centre) - float(np.median(b))
        lo, hi = lo + shift, hi + shift
    return float(lo), float(hi)


#: fewer resamples than this: the 2.5/97.5 percentiles are little more than the extremes, so
#: :func:`bootstrap_interval` gives a normal interval from the bootstrap standard error instead
MIN_PERCENTILE_RESAMPLES = 200


def bootstrap_interval(
    boot: np.ndarray, *, estimate: float, level: float = CI_LEVEL, recentre: bool = False,
    min_percentile_resamples: int = MIN_PERCENTILE_RESAMPLES,
) -> tuple[float | None, float | None, str]:
    """(low, high, method) of a bootstrap CI around ``estimate``.

    With at least ``min_percentile_resamples`` finite replicates: the percentile interval
    (:func:`percentile_interval`, shifted so the replicates' median sits on the estimate when
    ``recentre``). With fewer (e.g. the 20 resamples the FD bootstrap can afford at 2048-d) the
    2.5/97.5 percentiles of so few values are close to their min/max, so the interval is the normal
    one, ``estimate ± z·SE`` with SE the replicates' standard deviation (ddof 1). ``method`` says
    which, in words for ``extra.ci_method``.
    """
    from statistics import NormalDist

    b = np.asarray(boot, dtype=np.float64)
    b = b[np.isfinite(b)]
    if b.size < 2:
        return None, None, f"no interval: {b.size} finite bootstrap resample(s)"
    if b.size < min_percentile_resamples:
        z = NormalDist().inv_cdf(0.5 + level / 2.0)
        se = float(np.std(b, ddof=1))
        return (float(estimate - z * se), float(estimate + z * se),
                f"normal interval, estimate ± {z:.2f}·SE, SE = std of {b.size} bootstrap resamples "
                f"(fewer than {min_percentile_resamples}: too few for percentiles)")
    lo, hi = percentile_interval(b, level=level, centre=estimate if recentre else None)
    return lo, hi, f"percentile bootstrap ({b.size} resamples)" + (", re-centred on the estimate" if recentre else "")
