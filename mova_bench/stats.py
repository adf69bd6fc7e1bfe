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
