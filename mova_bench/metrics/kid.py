"""Kernel Inception Distance (KID): unbiased squared MMD with a cubic polynomial kernel.

Convention (the one of torch-fidelity and torchmetrics, so values are comparable):

* kernel ``k(x, y) = (xᵀy / d + 1)³`` (d = feature dimension);
* ``n_subsets = 100`` subsets of ``subset_size = min(1000, n_gen, n_ref)`` clips drawn without
  replacement from each side (seeded ``numpy.random.default_rng(seed)``: for each subset, the
  reference indices then the generated indices);
* per subset the unbiased estimator
  ``MMD²_u = Σ_{i≠j} k(xᵢ,xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(m(m−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ)/m²``;
* KID = mean over subsets; the reported std is the population std (ddof=0) over subsets, as
  torch-fidelity (``np.std``) and torchmetrics (``std(unbiased=False)``) report it.

KID is unbiased, so unlike the Fréchet distance it does not drift with n; it can be slightly
negative when the two sets come from one distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SUBSET_SIZE = 1000
N_SUBSETS = 100
DEGREE = 3
COEF = 1.0


def _features(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n, D), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(f"{name} rows {rows[:5].tolist()} hold NaN/inf")
    return arr


def poly_kernel(x: np.ndarray, y: np.ndarray, *, degree: int = DEGREE, gamma: float | None = None, coef: float = COEF) -> np.ndarray:
    """``(γ xyᵀ + coef)^degree`` with ``γ = 1/d`` by default."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * g + coef) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² from kernel matrices of two samples of the same size m (diagonals excluded)."""
    m = k_xx.shape[0]
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(xx + yy - 2.0 * k_xy.sum() / (m * m))


def kid_subsets(n_gen: int, n_ref: int, *, subset_size: int | None = None, n_subsets: int = N_SUBSETS,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (generated indices, reference indices) of every subset, exactly as :func:`kid` draws them."""
    m = min(SUBSET_SIZE, n_gen, n_ref) if subset_size is None else int(subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 clips per side, got n_gen={n_gen}, n_ref={n_ref}")
    if m > min(n_gen, n_ref):
        raise ValueError(f"subset_size={m} exceeds the smaller set (n_gen={n_gen}, n_ref={n_ref})")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(n_subsets)):
        ref_idx = rng.choice(n_ref, m, replace=False)
        gen_idx = rng.choice(n_gen, m, replace=False)
        out.append((gen_idx, ref_idx))
    return out


#: above this many generated clips the (n_gen, n_gen) kernel is not kept: the bootstrap is refused
#: and the generated-generated sums are evaluated in row chunks
MAX_GEN_KERNEL = 4000


class _SubsetKernelSums:
    """Kernel sums over fixed subsets, with every kernel value evaluated once.

    A subset enters as a column of counts (1 for a member; a bootstrap resample may hold a clip
    more than once). For counts ``c``: ``Σ_{i≠j} k(xᵢ,xⱼ) = cᵀKc − Σ cᵢ² k(xᵢ,xᵢ)`` over ``m² − Σ cᵢ²``
    pairs of distinct clips (copies of one clip are not a pair of independent samples), which is
    the usual unbiased estimator when every count is 0 or 1.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, ref_subsets: list[np.ndarray], m: int, *,
                 kw: dict[str, Any], chunk: int = 2048):
        self.x, self.m, self.kw, self.chunk = x, m, kw, chunk
        n_g, n_r, s_count = len(x), len(y), len(ref_subsets)
        w = np.zeros((n_r, s_count))
        for s, ri in enumerate(ref_subsets):
            w[ri, s] = 1.0
        self.u = np.zeros((n_g, s_count))  # u[:, s] = Σ_{j in ref subset s} k(x_i, y_j)
        yy_num = np.zeros(s_count)
        for start in range(0, n_r, chunk):
            yc, wc = y[start:start + chunk], w[start:start + chunk]
            self.u += poly_kernel(x, yc, **kw) @ wc
            k_rc = poly_kernel(yc, y, **kw)  # (chunk, n_r)
            yy_num += np.einsum("is,is->s", wc, k_rc @ w)
            yy_num -= np.einsum("is,i->s", wc, np.einsum("ii->i", k_rc[:, start:start + chunk]))
        self.yy = yy_num / (m * (m - 1))
        self.k_gg = poly_kernel(x, x, **kw) if n_g <= MAX_GEN_KERNEL else None
        self.diag_g = np.einsum("ij,ij->i", x, x)
        g = 1.0 / x.shape[1] if kw["gamma"] is None else kw["gamma"]
        self.diag_g = (self.diag_g * g + kw["coef"]) ** kw["degree"]

    def _k_gg_times(self, c: np.ndarray) -> np.ndarray:
        if self.k_gg is not None:
            return self.k_gg @ c
        out = np.empty_like(c)
        for start in range(0, len(self.x), self.chunk):
            out[start:start + self.chunk] = poly_kernel(self.x[start:start + self.chunk], self.x, **self.kw) @ c
        return out

    def values(self, c: np.ndarray) -> np.ndarray:
        """MMD²_u per subset for generated count columns ``c`` (n_gen, n_subsets) or (n_gen, 1) = same for all."""
        m = self.m
        quad = np.einsum("is,is->s", c, self._k_gg_times(c))
        sq = np.einsum("is,is->s", c, c)
        self_pairs = np.einsum("is,is,i->s", c, c, self.diag_g)
        pairs = m * m - sq
        with np.errstate(invalid="ignore", divide="ignore"):
            xx = np.where(pairs > 0, (quad - self_pairs) / pairs, np.nan)
        cb = np.broadcast_to(c, self.u.shape)
        xy = np.einsum("is,is->s", cb, self.u) / (m * m)
        return xx + self.yy - 2.0 * xy


def _prepare(gen: Any, ref: Any, subset_size: int | None, n_subsets: int, seed: int, degree: int,
             gamma: float | None, coef: float):
    x = _features("gen", gen)
    y = _features("ref", ref)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"gen has dim {x.shape[1]} but ref has dim {y.shape[1]}")
    subsets = kid_subsets(len(x), len(y), subset_size=subset_size, n_subsets=n_subsets, seed=seed)
    m = len(subsets[0][0])
    sums = _SubsetKernelSums(x, y, [ri for _, ri in subsets], m, kw=dict(degree=degree, gamma=gamma, coef=coef))
    return x, subsets, m, sums


def _indicator(n_gen: int, subsets: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    c = np.zeros((n_gen, len(subsets)))
    for s, (gi, _) in enumerate(subsets):
        c[gi, s] = 1.0
    return c


def kid_values(gen: Any, ref: Any, *, subset_size: int | None = None, n_subsets: int = N_SUBSETS, seed: int = 0,
               degree: int = DEGREE, gamma: float | None = None, coef: float = COEF) -> np.ndarray:
    """MMD²_u of every subset (float64 array of length n_subsets), subsets from :func:`kid_subsets`."""
    x, subsets, _, sums = _prepare(gen, ref, subset_size, n_subsets, seed, degree, gamma, coef)
    return sums.values(_indicator(len(x), subsets))


def kid(gen: Any, ref: Any, *, subset_size: int | None = None, n_subsets: int = N_SUBSETS, seed: int = 0,
        degree: int = DEGREE, gamma: float | None = None, coef: float = COEF) -> tuple[float, float]:
    """(KID mean, KID std over subsets) of generated features ``gen`` (n, D) vs reference ``ref`` (m, D)."""
    vals = kid_values(gen, ref, subset_size=subset_size, n_subsets=n_subsets, seed=seed, degree=degree, gamma=gamma, coef=coef)
    return float(vals.mean()), float(vals.std())


def kid_values_and_bootstrap(gen: Any, ref: Any, *, n_boot: int = 200, subset_size: int | None = None,
                             n_subsets: int = N_SUBSETS, seed: int = 0, degree: int = DEGREE,
                             gamma: float | None = None, coef: float = COEF) -> tuple[np.ndarray, np.ndarray]:
    """(per-subset MMD²_u, KID of ``n_boot`` bootstrap resamples of the generated set), kernels evaluated once.

    Each resample draws n_gen generated clips with replacement (the reference set stays fixed);
    its KID is the mean, over the same reference subsets :func:`kid` uses, of MMD²_u against m
    positions of the resample drawn without replacement. Pairs of copies of one clip are left out
    of the generated-generated term (see :class:`_SubsetKernelSums`), so each resample's estimate
    stays unbiased. A resample costs one (n_gen, n_gen) × (n_gen, n_subsets) product.
    """
    x, subsets, m, sums = _prepare(gen, ref, subset_size, n_subsets, seed, degree, gamma, coef)
    n_g = len(x)
    values = sums.values(_indicator(n_g, subsets))
    if sums.k_gg is None:
        raise ValueError(f"bootstrap of KID keeps an n_gen×n_gen kernel; n_gen={n_g} > {MAX_GEN_KERNEL}")
    rng = np.random.default_rng([seed, 0xB007])
    out = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        res = rng.integers(0, n_g, size=n_g)
        if m == n_g:  # every subset is the whole resample
            c = np.bincount(res, minlength=n_g).astype(np.float64)[:, None]
        else:
            c = np.empty((n_g, len(subsets)))
            for s in range(len(subsets)):
                c[:, s] = np.bincount(res[rng.choice(n_g, m, replace=False)], minlength=n_g)
        out[b] = float(np.mean(sums.values(c)))
    return values, out


def kid_bootstrap(gen: Any, ref: Any, *, n_boot: int = 200, subset_size: int | None = None, n_subsets: int = N_SUBSETS,
                  seed: int = 0, degree: int = DEGREE, gamma: float | None = None, coef: float = COEF) -> np.ndarray:
    """KID of ``n_boot`` bootstrap resamples of the generated set (see :func:`kid_values_and_bootstrap`)."""
    return kid_values_and_bootstrap(gen, ref, n_boot=n_boot, subset_size=subset_size, n_subsets=n_subsets, seed=seed,
                                    degree=degree, gamma=gamma, coef=coef)[1]
