"""Fréchet distance between Gaussians fitted to features, and the running sums that feed it.

    FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁ Σ₂)

Numerics (METRICS.md, "Fréchet distances"):

* float64 throughout; inputs are validated (shapes, finiteness) and the offending value is named.
* never ``scipy.linalg.sqrtm``. ``tr √(Σ₁Σ₂)`` is the sum of the square roots of the eigenvalues
  of the symmetric positive semi-definite matrix ``√Σ₁ Σ₂ √Σ₁`` (same spectrum as ``Σ₁Σ₂``).
  For any factor ``B Bᵀ = Σ₁`` the symmetric matrix ``Bᵀ Σ₂ B`` has the spectrum of ``Σ₁Σ₂``;
  ``B`` is the Cholesky factor (fast), or ``V √Λ`` from ``eigh`` when Σ₁ is singular (e.g. n ≤ dim),
  and ``eigvalsh`` returns the eigenvalues. Eigenvalues that round below zero are clipped at 0.
* statistics are accumulated as float64 running sums (n, Σx, Σxxᵀ) that merge exactly across
  workers, so no run ever needs to hold every feature in memory.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

NPZ_SCHEMA = "mova-bench/running-stats/1"
_NPZ_KEYS = ("schema", "dim", "n", "sum_x", "sum_xxT", "provenance")


# --------------------------------------------------------------------------- validation


def _as_float64(name: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim:
        what = "a vector (D,)" if ndim == 1 else "a matrix (D, D)"
        raise ValueError(f"{name} must be {what}, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite entr{'y' if bad.sum() == 1 else 'ies'} "
            f"(first at index {first}: {arr[first]!r}); remove clips with NaN/inf features before computing statistics"
        )
    return arr


def _check_gaussian(mu_name: str, mu: Any, sigma_name: str, sigma: Any) -> tuple[np.ndarray, np.ndarray]:
    mu_a = _as_float64(mu_name, mu, 1)
    sigma_a = _as_float64(sigma_name, sigma, 2)
    d = mu_a.shape[0]
    if sigma_a.shape != (d, d):
        raise ValueError(f"{sigma_name} has shape {sigma_a.shape} but {mu_name} has shape {mu_a.shape}; expected ({d}, {d})")
    return mu_a, sigma_a


# --------------------------------------------------------------------------- the distance


def _symmetrised(s: np.ndarray) -> np.ndarray:
    """(S + Sᵀ)/2 with one temporary; S itself when already exactly symmetric."""
    if np.array_equal(s, s.T):
        return s
    out = s + s.T
    out *= 0.5
    return out


def sqrt_factor(sigma: np.ndarray) -> np.ndarray:
    """A factor ``B`` with ``B Bᵀ = Σ``: the Cholesky factor, or ``V √Λ`` (eigenvalues clipped
    at 0) when Σ is singular or indefinite by rounding.

    The eigenvalues of ``Bᵀ Σ₂ B`` are those of ``Σ₁ Σ₂`` for any such ``B`` (similar matrices), so
    ``tr √(Σ₁ Σ₂) = Σ √λ(Bᵀ Σ₂ B)`` whichever factor is used; Cholesky is about twice as fast as
    ``eigh`` and as accurate (both backward stable). Keeping ``B`` lets callers evaluate
    ``tr √(Σ S)`` for many ``S`` against one fixed ``Σ`` (e.g. bootstrap resamples against one
    reference) with a single factorisation.
    """
    try:
        return np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(sigma)
        np.clip(w, 0.0, None, out=w)
        return v * np.sqrt(w)


def sqrt_eigenvalue_sum(c: np.ndarray) -> float:
    """``Σ √λ`` over the eigenvalues of the symmetric PSD matrix ``c`` (``tr √c``); eigenvalues that
    round below zero are clipped at 0."""
    ev = np.linalg.eigvalsh(c)  # reads one triangle: rounding asymmetry of c is immaterial
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def trace_sqrt_product_from_factor(factor: np.ndarray, sigma: np.ndarray) -> float:
    """``tr √(Σ₁ Σ₂)`` given ``factor = sqrt_factor(Σ₁)`` and ``Σ₂``."""
    return sqrt_eigenvalue_sum(factor.T @ (sigma @ factor))


def trace_sqrt_product(sigma1: Any, sigma2: Any) -> float:
    """``tr √(Σ₁ Σ₂)`` for symmetric PSD ``Σ₁, Σ₂`` via symmetric eigendecompositions (no sqrtm)."""
    s1 = _as_float64("sigma1", sigma1, 2)
    s2 = _as_float64("sigma2", sigma2, 2)
    if s1.shape != s2.shape or s1.shape[0] != s1.shape[1]:
        raise ValueError(f"sigma1 has shape {s1.shape} and sigma2 has shape {s2.shape}; both must be the same (D, D)")
    return trace_sqrt_product_from_factor(sqrt_factor(_symmetrised(s1)), _symmetrised(s2))


def frechet_from_parts(mean_diff: np.ndarray, trace1: float, trace2: float, trace_sqrt: float) -> float:
    """``‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁ Σ₂)`` from ``μ₁ − μ₂``, the two traces and ``tr √(Σ₁ Σ₂)``
    (e.g. from :func:`trace_sqrt_product_from_factor`), clipped at 0 (it is ≥ 0 mathematically;
    rounding can give −1e-12 for equal inputs).

    The one place the terms are combined: :func:`frechet_distance`, :func:`frechet_infinity` and the
    bootstrap of the FD metric differ only in how they obtain them.
    """
    value = float(mean_diff @ mean_diff) + trace1 + trace2 - 2.0 * trace_sqrt
    return max(value, 0.0)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64, symmetric-eigenvalue trace sqrt.

    Raises ``ValueError`` naming the argument when shapes disagree or a value is not finite.
    The result is clipped at 0 (it is ≥ 0 mathematically; rounding can give −1e-12 for equal inputs).
    """
    m1, s1 = _check_gaussian("mu1", mu1, "sigma1", sigma1)
    m2, s2 = _check_gaussian("mu2", mu2, "sigma2", sigma2)
    if m1.shape != m2.shape:
        raise ValueError(f"mu1 has shape {m1.shape} but mu2 has shape {m2.shape}: the two feature sets have different dimensions")
    s1, s2 = _symmetrised(s1), _symmetrised(s2)
    tr_sqrt = trace_sqrt_product_from_factor(sqrt_factor(s1), s2)
    return frechet_from_parts(m1 - m2, float(np.trace(s1)), float(np.trace(s2)), tr_sqrt)


def mean_cov(x: Any, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (n−1) covariance of an (n, D) matrix, two-pass, float64."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n, D), got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} has n={arr.shape[0]} rows; a covariance needs at least 2")
    arr = _as_float64(name, arr, 2)
    mu = arr.mean(axis=0)
    c = arr - mu
    return mu, (c.T @ c) / (arr.shape[0] - 1)


def singular_covariance_warning(label: str, n: int, dim: int) -> str | None:
    """The warning for a covariance estimated from fewer clips than feature dimensions, or None
    when ``n ≥ dim``: the one wording of every Fréchet distance that meets ``n < dim``."""
    if n >= dim:
        return None
    return (
        f"{label}: n={n} < dim={dim}: the covariance is singular (rank ≤ n−1); the Fréchet distance "
        "is biased upward and not comparable with one computed at another n (compare KID instead)"
    )


# --------------------------------------------------------------------------- running sums


def _syrk_update(acc: np.ndarray, x: np.ndarray) -> None:
    """acc[upper] += (xᵀ x)[upper] in place; acc is (D, D) Fortran-ordered float64."""
    try:
        from scipy.linalg.blas import dsyrk
    except ImportError:  # pragma: no cover - scipy is a dependency
        acc += x.T @ x
        return
    # x is C-ordered (n, D): x.T is a Fortran-ordered (D, n) view, so syrk(a=x.T) = x.T @ x, no copy.
    out = dsyrk(1.0, x.T, beta=1.0, c=acc, trans=0, lower=0, overwrite_c=1)
    if out is not acc:  # pragma: no cover - only when acc lost Fortran order
        acc[...] = out


class RunningStats:
    """Float64 running sums ``n, Σx, Σxxᵀ`` of D-dimensional features.

    ``update`` adds a batch, ``merge`` adds another accumulator's sums. Float64 addition is the
    only operation, so merged partial sums from workers equal one pass over the same clips up to
    the rounding of a reordered sum (~1e-16 relative per addition), and bit for bit when the
    features are integer-valued or every worker after the first holds a single batch.
    ``mean`` and ``cov`` (unbiased, n−1) are derived on demand.

    The second moment is accumulated with BLAS ``syrk`` (upper triangle only) and mirrored on read. Caveat of raw sums: ``cov = (Σxxᵀ − n μμᵀ)/(n−1)`` loses about
    ``log10((|μ|/σ)²)`` digits per coordinate, negligible for features whose mean is within a few
    thousand standard deviations of 0 (true of every backbone here).
    """

    def __init__(self, dim: int):
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.dim = dim
        self.n = np.float64(0.0)
        self.sum_x = np.zeros(dim, dtype=np.float64)
        self._sum_xxT = np.zeros((dim, dim), dtype=np.float64, order="F")  # upper triangle valid
        self.provenance: dict[str, Any] = {}

    # -- accumulation
    def update(self, x: Any) -> "RunningStats":
        """Add a batch (n, D) or a single vector (D,). Returns self."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"batch has shape {np.asarray(x).shape}; expected (n, {self.dim}) or ({self.dim},)")
        if arr.shape[0] == 0:
            return self
        if not np.isfinite(arr).all():
            rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
            raise ValueError(f"batch rows {rows[:5].tolist()}{'…' if rows.size > 5 else ''} hold NaN/inf; drop those clips first")
        arr = np.ascontiguousarray(arr)
        self.n += np.float64(arr.shape[0])
        self.sum_x += arr.sum(axis=0)
        _syrk_update(self._sum_xxT, arr)
        return self

    def merge(self, other: "RunningStats") -> "RunningStats":
        """Add another accumulator's sums into this one. Returns self."""
        if not isinstance(other, RunningStats):
            raise TypeError(f"can only merge RunningStats, got {type(other).__name__}")
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dim {other.dim} into dim {self.dim}")
        self.n += other.n
        self.sum_x += other.sum_x
        self._sum_xxT += other._sum_xxT
        return self

    @classmethod
    def from_features(cls, x: Any) -> "RunningStats":
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"features must be (n, D), got shape {arr.shape}")
        return cls(arr.shape[1]).update(arr)

    # -- derived values
    @property
    def sum_xxT(self) -> np.ndarray:
        """Full symmetric Σxxᵀ (a new array; the lower triangle mirrors the accumulated upper one)."""
        full = np.triu(self._sum_xxT)
        full += np.triu(self._sum_xxT, 1).T
        return full

    @property
    def count(self) -> int:
        return int(self.n)

    @property
    def mean(self) -> np.ndarray:
        if self.n < 1:
            raise ValueError("mean of empty statistics (n=0)")
        return self.sum_x / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (divides by n−1)."""
        if self.n < 2:
            raise ValueError(f"covariance needs n ≥ 2, these statistics have n={int(self.n)}")
        mu = self.sum_x / self.n
        c = self.sum_xxT
        o = np.outer(mu, mu)  # exactly symmetric, so c stays exactly symmetric
        o *= self.n
        c -= o
        del o
        c /= self.n - 1.0
        return c

    def singular_warning(self, label: str = "features") -> str | None:
        """:func:`singular_covariance_warning` for these statistics (None when n ≥ dim)."""
        return singular_covariance_warning(label, int(self.n), self.dim)

    # -- persistence (npz, no pickle)
    def arrays(self, prefix: str = "", **provenance: Any) -> dict[str, np.ndarray]:
        """The npz entries of these statistics, keys prefixed with ``prefix`` (e.g. ``"vstats/"``)."""
        prov = {**self.provenance, **provenance}
        return {
            f"{prefix}schema": np.array([NPZ_SCHEMA]),
            f"{prefix}dim": np.array(self.dim, dtype=np.int64),
            f"{prefix}n": np.array(self.n, dtype=np.float64),
            f"{prefix}sum_x": self.sum_x.copy(),
            f"{prefix}sum_xxT": self.sum_xxT,
            f"{prefix}provenance": np.array([json.dumps(prov, sort_keys=True, default=str)]),
        }

    def to_npz(self, path: str | os.PathLike, *, prefix: str = "", **provenance: Any) -> Path:
        """Write to ``path`` atomically (np.savez, unicode arrays only, loadable without pickle).

        ``provenance`` (extractor identity, suite, clip count, package versions, ...) is stored as
        a JSON string array. Returns the path.
        """
        return save_stats_npz(path, {prefix.rstrip("/"): self}, **provenance)

    @classmethod
    def from_npz(cls, path: str | os.PathLike, *, prefix: str = "") -> "RunningStats":
        """Load statistics written by :meth:`to_npz` / :func:`save_stats_npz` (``allow_pickle=False``).

        ``prefix`` selects one accumulator of a multi-backbone file (``"vstats"`` or ``"vstats/"``).
        """
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _NPZ_KEYS if f"{prefix}{k}" not in z.files]
            if missing:
                raise ValueError(
                    f"{path}: not a running-statistics file for prefix {prefix!r} (missing {missing}); "
                    f"entries found: {sorted(z.files)[:12]}"
                )
            schema = str(z[f"{prefix}schema"][0])
            if schema != NPZ_SCHEMA:
                raise ValueError(f"{path}: statistics schema {schema!r}, this version reads {NPZ_SCHEMA!r}; rebuild the file")
            dim = int(z[f"{prefix}dim"])
            out = cls(dim)
            out.n = np.float64(z[f"{prefix}n"])
            sum_x = np.asarray(z[f"{prefix}sum_x"], dtype=np.float64)
            sum_xxT = np.asarray(z[f"{prefix}sum_xxT"], dtype=np.float64)
            if sum_x.shape != (dim,) or sum_xxT.shape != (dim, dim):
                raise ValueError(f"{path}: sums of shape {sum_x.shape}/{sum_xxT.shape} disagree with dim={dim}")
            if not (np.isfinite(sum_x).all() and np.isfinite(sum_xxT).all() and np.isfinite(out.n)):
                raise ValueError(f"{path}: statistics{' ' + prefix if prefix else ''} hold NaN/inf")
            out.sum_x = sum_x.copy()
            out._sum_xxT = np.asfortranarray(sum_xxT)
            out.provenance = json.loads(str(z[f"{prefix}provenance"][0]))
        return out

    def __repr__(self) -> str:
        return f"RunningStats(dim={self.dim}, n={int(self.n)})"


def save_stats_npz(path: str | os.PathLike, stats: dict[str, RunningStats], **provenance: Any) -> Path:
    """Write several accumulators into one npz (keys ``"<name>/n"``, ...; ``""`` = no prefix), atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for name, st in stats.items():
        arrays.update(st.arrays(f"{name}/" if name else "", **provenance))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def frechet_from_stats(a: RunningStats, b: RunningStats, *, labels: tuple[str, str] = ("first set", "second set")) -> tuple[float, list[str]]:
    """Fréchet distance between two accumulators; warnings name any side with n < dim."""
    if a.dim != b.dim:
        raise ValueError(f"{labels[0]} has dim {a.dim} but {labels[1]} has dim {b.dim}")
    warnings = [w for w in (a.singular_warning(labels[0]), b.singular_warning(labels[1])) if w]
    return frechet_distance(a.mean, a.cov, b.mean, b.cov), warnings


def frechet_infinity(
    x: Any, mu_ref: Any = None, sigma_ref: Any = None, *, y: Any = None, seed: int = 0, n_points: int = 5,
    n_reps: int = 3, min_fraction: float = 0.5,
) -> dict[str, Any] | None:
    """FD∞ (Chong & Forsyth 2020): FD is biased upward by ≈ a/n_gen + b/n_ref, so fit ``FD = FD∞ + c·t``
    over subsets and report the intercept.

    Joint (``y``, the reference's per-clip features, given): subsets of *both* sides at the same
    ``n_points`` fractions f from ``min_fraction`` to 1 (without replacement, seeded, ``n_reps``
    per fraction, one at f = 1), so the bias of each point is (a/n_gen + b/n_ref)/f and the
    intercept at t = mean(n_gen/size_gen, n_ref/size_ref) → 0 is the distance of the two
    populations, both sides' small-sample bias removed.

    Generated side only (``y`` None: a statistics reference, ``mu_ref``/``sigma_ref`` given): the
    reference stays fixed, so its own bias b/n_ref stays in the intercept; with a reference much
    smaller than ~10× the generated set FD∞ then removes only part of the bias (``"sides"`` says
    which was done).

    Returns the intercept, slope, R², the sizes and mean FDs, or None when fewer than 3 distinct
    sizes ≥ 2 are possible.
    """
    x = _as_float64("x", x, 2)
    n = x.shape[0]
    fractions = sorted({float(f) for f in np.linspace(min_fraction, 1.0, n_points)})
    rng = np.random.default_rng([seed, 0xF1])
    if y is not None:
        yr = _as_float64("y", y, 2)
        if yr.shape[1] != x.shape[1]:
            raise ValueError(f"x has dim {x.shape[1]} but y has dim {yr.shape[1]}")
        n_r = yr.shape[0]
        pairs = sorted({(max(2, int(round(f * n))), max(2, int(round(f * n_r)))) for f in fractions})
        if len({p[0] for p in pairs}) < 3:
            return None
        means = []
        for size_g, size_r in pairs:
            vals = []
            for _ in range(1 if (size_g, size_r) == (n, n_r) else n_reps):
                mu_g, cov_g = mean_cov(x[rng.choice(n, size=size_g, replace=False)], "generated subset")
                mu_r, cov_r = mean_cov(yr[rng.choice(n_r, size=size_r, replace=False)], "reference subset")
                vals.append(frechet_from_parts(mu_g - mu_r, float(np.trace(cov_g)), float(np.trace(cov_r)),
                                               trace_sqrt_product_from_factor(sqrt_factor(cov_r), cov_g)))
            means.append(float(np.mean(vals)))
        t = np.asarray([0.5 * (n / sg + n_r / sr) for sg, sr in pairs])
        extra = {"sizes": [p[0] for p in pairs], "ref_sizes": [p[1] for p in pairs], "sides": "joint",
                 "method": ("least squares of mean subset FD on 1/n (Chong & Forsyth 2020; t = mean over both sides of "
                            "n/size), generated and reference clips subsampled jointly at the same fractions, seeded")}
    else:
        if mu_ref is None or sigma_ref is None:
            raise ValueError("give the reference's per-clip features y, or its mean and covariance")
        mu_r = _as_float64("mu_ref", mu_ref, 1)
        s_r = _symmetrised(_as_float64("sigma_ref", sigma_ref, 2))
        sizes = sorted({max(2, int(round(f * n))) for f in fractions})
        if len(sizes) < 3:
            return None
        factor = sqrt_factor(s_r)
        tr_r = float(np.trace(s_r))
        means = []
        for size in sizes:
            vals = []
            for _ in range(1 if size == n else n_reps):
                sub = x[rng.choice(n, size=size, replace=False)]
                mu, cov = mean_cov(sub, "generated subset")
                vals.append(frechet_from_parts(mu - mu_r, float(np.trace(cov)), tr_r, trace_sqrt_product_from_factor(factor, cov)))
            means.append(float(np.mean(vals)))
        t = np.asarray([n / s for s in sizes], dtype=np.float64)
        extra = {"sizes": sizes, "sides": "generated",
                 "method": ("least squares of mean subset FD on 1/n (Chong & Forsyth 2020), generated clips subsampled, "
                            "the reference held fixed (its own small-n bias is not removed), seeded")}
    yv = np.asarray(means)
    slope, intercept = np.polyfit(t, yv, 1)
    pred = intercept + slope * t
    ss_tot = float(np.sum((yv - yv.mean()) ** 2))
    r2 = 1.0 - float(np.sum((yv - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    # slope: FD ≈ FD∞ + slope/size_gen along the fitted line; bias_at_full_n: FD(full sizes) − FD∞ on it
    return {"value": float(intercept), "slope": float(slope) * n, "bias_at_full_n": float(slope), "r2": r2,
            "mean_fd": means, "n_reps": n_reps, **extra}
