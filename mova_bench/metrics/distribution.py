"""Distribution metrics over clip embeddings: Fréchet distance and KID, one class per modality.

``fd_video[x]``, ``fd_audio[x]``, ``kid_video[x]``, ``kid_audio[x]``: ``x`` is the embedding
backbone. With the weight-free defaults (``vstats``, ``melstats``) these are *not* FVD/FAD, and
they are never displayed as such; only ``fd_video[i3d]`` is FVD and ``fd_audio[vggish]`` is FAD.

The generated set always comes as per-clip features. The reference set comes either as per-clip
features or as precomputed running sums (``ref.stats[backbone]``, a
:class:`~mova_bench.metrics.frechet.RunningStats` loaded from a statistics .npz). The Fréchet
distance works from either; KID needs per-clip features on both sides.

Uncertainty: the 95% CI is a percentile bootstrap over the *generated* clips (seeded); the
reference set is held fixed (it is the yardstick, not the thing measured).

Display names ("FVD", "FAD") come from the backbone: a registered extractor class's
``metric_names`` (e.g. ``{"fd_audio": "FAD"}`` on VGGish) names the metric on that backbone.

Frame-level backbones (``frame_level = True``, output ``"frames"`` (n_i, D) per clip, e.g. VGGish's
0.96 s frames): FD and KID pool every frame row of every clip (the FAD convention of Google's FAD
and fadtk: one Gaussian over all frame embeddings of a set), so a clip weighs by its frame count.
``n`` stays the number of clips and ``extra.n_rows`` is the number of pooled rows. The bootstrap
resamples *clips* (all frames of a drawn clip enter together, since frames of one clip are not
independent samples); KID's subsets are drawn over rows as usual. FD∞ is not computed for them
(its subsets would split clips).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mova_bench.metrics.base import (FEW_CLIPS_FIX, STATS_REF_FIX, FeatureSet, Metric, MetricResult, backbone_class,
                                     same_files_warning, standard_display)
from mova_bench.metrics.frechet import (
    RunningStats,
    frechet_distance,
    frechet_from_parts,
    frechet_infinity,
    mean_cov,
    singular_covariance_warning,
    sqrt_eigenvalue_sum,
    sqrt_factor,
)
from mova_bench.metrics.kid import MAX_GEN_KERNEL, N_SUBSETS, SUBSET_SIZE, kid_values, kid_values_and_bootstrap
from mova_bench.stats import CI_LEVEL, MIN_PERCENTILE_RESAMPLES, bootstrap_interval, percentile_interval



def is_frame_level(backbone: str | None) -> bool:
    cls = backbone_class(backbone)
    return bool(getattr(cls, "frame_level", False)) if cls is not None else False


def embedding_rows(fs: FeatureSet, backbone: str) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(clip ids, rows, owner) of one side: per-clip ``"embedding"`` rows, or for a frame-level
    backbone every ``"frames"`` row of every clip pooled, ``owner[i]`` = index (in ids) of row i's
    clip (None for per-clip rows). A clip with a non-finite row is left out whole."""
    if not is_frame_level(backbone):
        ids, x = fs.matrix(backbone)
        return ids, x, None
    per = fs.features.get(backbone, {})
    ids, blocks = [], []
    for c in fs.clip_ids:
        if c not in per or "frames" not in per[c]:
            continue
        f = np.asarray(per[c]["frames"], dtype=np.float64)
        f = f[None] if f.ndim == 1 else f.reshape(len(f), -1)
        if len(f) == 0:
            continue
        ids.append(c)
        blocks.append(f)
    if not ids:
        return [], np.zeros((0, 0)), np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(ids)), [len(b) for b in blocks])
    return ids, np.concatenate(blocks), owner


def _finite_clips(ids: list[str], x: np.ndarray, owner: np.ndarray | None):
    """Like :func:`_finite_rows` for pooled frames: a clip with any non-finite row is dropped whole."""
    if owner is None:
        ids, x, bad = _finite_rows(ids, x)
        return ids, x, None, bad
    if x.size == 0:
        return ids, x, owner, []
    row_ok = np.isfinite(x).all(axis=1)
    clip_ok = np.ones(len(ids), bool)
    np.logical_and.at(clip_ok, owner, row_ok)
    bad = [c for c, ok in zip(ids, clip_ok) if not ok]
    if not bad:
        return ids, x, owner, []
    keep = clip_ok[owner]
    new_index = np.cumsum(clip_ok) - 1
    return [c for c, ok in zip(ids, clip_ok) if ok], x[keep], new_index[owner[keep]], bad

#: appended to the convention of FD/KID on a frame-level backbone
FRAME_POOLING = (" Frame-level backbone: every frame row of every clip pooled (FAD convention: one distribution over "
                 "all frame embeddings), subsets and sizes in rows; the bootstrap resamples clips, each with all its frames.")
FD_BOOT = 200  # bootstrap resamples for the FD CI
FD_BOOT_MIN = 20
#: FD∞ from generated-side subsets only leaves the reference's bias in: warn below this n_ref/n_gen
FD_INF_REF_RATIO = 10
FD_BOOT_FLOPS = 4e11  # budget for the FD bootstrap (a few seconds on a laptop core pair)
KID_BOOT = 200


def default_fd_boot(n: int, dim: int) -> int:
    """Resamples for the FD CI: 200, fewer when one resample is expensive.

    A resample costs ≈ 2·n·dim² + 4·dim³ flops (dim × dim weighted product and eigvalsh), or, with
    fewer rows than dimensions, ≈ 2·n²·dim + 4·n³ (the n × n Gram matrix, see
    :func:`_fd_bootstrap_clips`); the count is cut to fit :data:`FD_BOOT_FLOPS`, never below 20
    (e.g. 2048-d, n = 2048: 20 resamples; 2048-d, n = 500: 200). Below 200 resamples the CI is the
    normal interval from the bootstrap SE (:func:`~mova_bench.stats.bootstrap_interval`).
    """
    n, d = float(n), float(dim)
    per = 2.0 * n * d * d + 4.0 * d ** 3 if n >= d else 2.0 * n * n * d + 4.0 * n ** 3
    return int(max(FD_BOOT_MIN, min(FD_BOOT, FD_BOOT_FLOPS // per)))


def _finite_rows(ids: list[str], x: np.ndarray) -> tuple[list[str], np.ndarray, list[str]]:
    if x.size == 0:
        return ids, x, []
    ok = np.isfinite(x).all(axis=1)
    bad = [c for c, good in zip(ids, ok) if not good]
    return [c for c, good in zip(ids, ok) if good], x[ok], bad


def _dropped_warning(side: str, bad: list[str]) -> list[str]:
    if not bad:
        return []
    shown = ", ".join(bad[:5]) + (" …" if len(bad) > 5 else "")
    return [f"{len(bad)} {side} clip(s) left out: their features hold NaN/inf ({shown})"]


def _fd_bootstrap_clips(x: np.ndarray, owner: np.ndarray, mu_r: np.ndarray, cov_r: np.ndarray, n_boot: int,
                        seed: int, rng_key: tuple[int, ...] = (0xFD, 1)) -> np.ndarray:
    """FD of ``n_boot`` resamples of the generated *clips* (with replacement) for pooled frame rows
    ``x`` (``owner[i]``: clip of row i): a drawn clip brings all its rows, so a resample has a
    varying number N* of rows; mean and (N*−1) covariance are the row-weighted ones (weights = the
    clip's draw count on each of its rows). One row per clip (``owner = arange(n)``) is
    :func:`_fd_bootstrap`; see there for the algebra.

    With fewer drawn rows than dimensions, ``tr√(Σ_ref Σ*)`` is taken from the Gram matrix: the
    non-zero eigenvalues of ``Zᵀ diag(w) Z`` are those of ``(√w·Z)(√w·Z)ᵀ`` (rows drawn at least
    once only), an N* × N* matrix instead of a dim × dim one (2048-d, 50 clips: ~10⁴ times fewer
    flops; the same values up to rounding, tested)."""
    n_clips = int(owner.max()) + 1
    factor = sqrt_factor(cov_r)
    xb = x @ factor
    base = float(np.trace(cov_r))
    rng = np.random.default_rng([seed, *rng_key])
    out = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        w = np.bincount(rng.integers(0, n_clips, size=n_clips), minlength=n_clips)[owner].astype(np.float64)
        n = float(w.sum())
        mu = (w @ x) / n
        z = xb - mu @ factor
        drawn = w > 0
        if int(drawn.sum()) < z.shape[1]:
            zw = z[drawn] * np.sqrt(w[drawn])[:, None]
            tr_sqrt = sqrt_eigenvalue_sum(zw @ zw.T / (n - 1))
        else:
            tr_sqrt = sqrt_eigenvalue_sum((z.T * w) @ z / (n - 1))
        c = x - mu
        tr_cov = float(w @ np.einsum("ij,ij->i", c, c)) / (n - 1)
        out[b] = frechet_from_parts(mu - mu_r, tr_cov, base, tr_sqrt)
    return out


def _kid_clip_bootstrap(x: np.ndarray, y: np.ndarray, owner: np.ndarray, *, n_boot: int, n_subsets: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(per-subset MMD²_u over pooled rows, KID of ``n_boot`` clip resamples or None when the
    generated kernel is too large). A resample draws clips with replacement; each subset takes m
    of its rows without replacement (topped up with repeats when it has fewer than m rows; copies
    never pair in the generated-generated term, see ``kid._SubsetKernelSums``)."""
    from mova_bench.metrics.kid import COEF, DEGREE, _indicator, _prepare

    x, subsets, m, sums = _prepare(x, y, None, n_subsets, seed, DEGREE, None, COEF)
    n_g = len(x)
    values = sums.values(_indicator(n_g, subsets))
    if sums.k_gg is None:
        return values, None
    n_clips = int(owner.max()) + 1
    rng = np.random.default_rng([seed, 0xB007, 1])
    out = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        counts = np.bincount(rng.integers(0, n_clips, size=n_clips), minlength=n_clips)
        rows = np.repeat(np.arange(n_g), counts[owner])
        c = np.empty((n_g, len(subsets)))
        for s in range(len(subsets)):
            if len(rows) >= m:
                pick = rows[rng.choice(len(rows), m, replace=False)]
            else:
                pick = np.concatenate([rows, rows[rng.integers(0, len(rows), size=m - len(rows))]])
            c[:, s] = np.bincount(pick, minlength=n_g)
        out[b] = float(np.mean(sums.values(c)))
    return values, out


def _fd_bootstrap(x: np.ndarray, mu_r: np.ndarray, cov_r: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """FD of ``n_boot`` resamples (with replacement) of the generated rows ``x`` against a fixed reference.

    With ``B Bᵀ = Σ_ref`` (``sqrt_factor``) (one decomposition for all resamples), a resample with
    counts ``w`` has ``tr√(Σ_ref Σ*) = Σ√eig(Bᵀ Σ* B)`` and ``Bᵀ Σ* B = Zᵀ diag(w) Z / (n−1)`` with
    ``Z = xB − μ*B``: one (n, D)×(D, D) product up front, then O(n·D²) + eigvalsh per resample.
    """
    return _fd_bootstrap_clips(x, np.arange(len(x)), mu_r, cov_r, n_boot, seed, rng_key=(0xFD,))


class _EmbeddingDistance(Metric):
    """Shared plumbing: fetch the (n, D) matrices or the reference statistics, check sizes."""

    needs_reference: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("{backbone}",)
    higher_is_better: ClassVar[bool | None] = False
    named_by_backbone: ClassVar[bool] = True  # FD on i3d is "FVD", on vggish "FAD"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass declares its convention with the backbone as a ``{backbone}`` placeholder
        (``describe_convention``); ``compute`` replaces it with the one of the actual run."""
        super().__init_subclass__(**kwargs)
        cls.convention = cls.describe_convention("{backbone}")

    def _inputs(self, gen: FeatureSet, ref: FeatureSet | None):
        """(gen ids, gen matrix, ref matrix or None, ref stats or None, warnings) or a skipped result."""
        bb = self.backbone or ""
        if ref is None:
            return self.skipped_no_reference()
        gids, x, owner = embedding_rows(gen, bb)
        gids, x, owner, bad_g = _finite_clips(gids, x, owner)
        warnings = _dropped_warning("generated", bad_g)
        rids, y, r_owner = embedding_rows(ref, bb)
        rids, y, _, bad_r = _finite_clips(rids, y, r_owner)
        warnings += _dropped_warning("reference", bad_r)
        self._owner = owner  # pooled frame rows → their clip (None: one row per clip)
        stats = ref.stats.get(bb) if not rids else None
        same = same_files_warning(gen, ref, gids, rids) if rids else None
        if same:
            warnings.append(same)
        if len(gids) < 2:
            return self.skipped(
                f"{len(gids)} generated clip(s) with {bb!r} features; a distribution distance needs at least 2",
                fix=FEW_CLIPS_FIX, n=len(gids), warnings=warnings,
            )
        if stats is None and len(rids) < 2:
            return self.skipped(
                f"{len(rids)} reference clip(s) with {bb!r} features and no precomputed {bb!r} statistics; need at least 2",
                fix=FEW_CLIPS_FIX, n=len(gids), warnings=warnings,
            )
        n_ref = (len(rids) if r_owner is None else len(y)) if stats is None else int(stats.n)
        dim_ref = y.shape[1] if stats is None else stats.dim
        if dim_ref != x.shape[1]:
            return self.result(
                None, status="failed", n=len(gids), warnings=warnings,
                reason=f"generated {bb!r} features have dim {x.shape[1]} but the reference has dim {dim_ref}: "
                "the reference was built with another version of the backbone",
                fix="rebuild the reference statistics with this version (mova-bench reference build)",
            )
        if stats is not None and n_ref < 2:
            return self.skipped(f"the reference statistics hold n={n_ref} clips; need at least 2", fix=FEW_CLIPS_FIX, n=len(gids))
        return gids, x, (y if stats is None else None), stats, n_ref, warnings


class _Frechet(_EmbeddingDistance):
    unit: ClassVar[str] = ""

    @classmethod
    def describe_convention(cls, backbone: str | None, dim: int | None = None, n_boot: int | None = None) -> str:
        dims = f"{dim}-d " if dim else ""
        boot = n_boot if n_boot is not None else f"{FD_BOOT}, fewer (≥ {FD_BOOT_MIN}) for large n·dim²"
        return (
            f"Fréchet distance between Gaussians fitted to {dims}per-clip '{backbone}' embeddings "
            "(one vector per clip, no frame pooling beyond the backbone's own); mean and unbiased (n−1) "
            "covariance in float64 (running sums for a statistics reference); "
            "tr√(Σ_ref Σ_gen) = Σ√λ of eig(Bᵀ Σ_gen B), B Bᵀ = Σ_ref (Cholesky, or V√Λ from eigh when singular), eigenvalues clipped at 0 "
            f"(no scipy sqrtm). 95% CI: bootstrap over generated clips ({boot} resamples, seeded): percentile interval "
            "re-centred on the estimate (resampling with replacement biases FD upward), or, below "
            f"{MIN_PERCENTILE_RESAMPLES} resamples, the normal interval estimate ± 1.96·SE from the bootstrap SE (extra.ci_method says which). "
            "extra.fd_infinity: FD∞, the intercept of mean subset FD fitted against 1/n (seeded subsets from n/2 to n), with R²; "
            "generated and reference clips subsampled jointly when both have per-clip features and n ≥ 2·dim "
            f"(sides = joint), else the generated side only (sides = generated; warned when n_ref < {FD_INF_REF_RATIO}·n_gen: "
            "the reference's own bias stays in)."
        )

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        got = self._inputs(gen, ref)
        if isinstance(got, MetricResult):
            return got
        gids, x, y, stats, n_ref, warnings = got
        dim = x.shape[1]
        if y is not None:
            mu_r, cov_r = mean_cov(y, "reference features")
        else:
            mu_r, cov_r = stats.mean, stats.cov
        mu_g, cov_g = mean_cov(x, "generated features")
        owner = self._owner
        for side, n in (("generated set", len(x)), ("reference set", n_ref)):
            warning = singular_covariance_warning(side, n, dim)
            if warning:
                warnings.append(warning)
        value = frechet_distance(mu_g, cov_g, mu_r, cov_r)
        mean_term = float(np.sum((mu_g - mu_r) ** 2))

        n_boot = int(self.options.get("n_boot", default_fd_boot(len(x), dim)))
        if owner is None:
            boots = _fd_bootstrap(x, mu_r, cov_r, n_boot, seed)
        else:
            boots = _fd_bootstrap_clips(x, owner, mu_r, cov_r, n_boot, seed)
        lo, hi, ci_method = bootstrap_interval(boots, estimate=value, level=CI_LEVEL, recentre=True)
        lo = None if lo is None else max(0.0, lo)  # FD ≥ 0
        if owner is None:
            fd_inf = self._fd_infinity(x, y, mu_r, cov_r, n_ref, dim, seed)
        else:
            fd_inf = {"value": None, "reason": "not computed for a frame-level backbone (its subsets would split clips)"}
        if fd_inf.get("warning"):
            warnings.append(fd_inf["warning"])
        res = self.result(
            value, n=len(gids), ci_low=lo, ci_high=hi, warnings=warnings,
            extra={
                "n_ref": n_ref, "dim": dim, "backbone": self.backbone,
                "reference": "stats" if stats is not None else "clips",
                "mean_term": mean_term, "covariance_term": value - mean_term,
                "n_boot": n_boot, "ci_method": f"bootstrap over generated clips: {ci_method}",
                "bootstrap_median": float(np.median(boots)),
                "fd_infinity": fd_inf,
                **({} if owner is None else {"n_rows": len(x), "pooling": "frames"}),
            },
        )
        res.convention = self.describe_convention(self.backbone, dim, n_boot) + (FRAME_POOLING if owner is not None else "")
        return res

    @staticmethod
    def _fd_infinity(x: np.ndarray, y: np.ndarray | None, mu_r: np.ndarray, cov_r: np.ndarray, n_ref: int, dim: int,
                     seed: int) -> dict[str, Any]:
        """FD∞ of both sides jointly when the reference has per-clip features and enough clips, else of
        the generated side only, labelled, with a warning when the reference is not ≫ the generated set."""
        n = len(x)
        # the 1/n fit only holds once every subset has full-rank covariance (n/2 ≥ dim)
        if n < 2 * dim:
            return {"value": None, "reason": f"needs n ≥ 2·dim = {2 * dim} generated clips (n = {n})"}
        reps = 3 if dim <= 512 else 1
        if y is not None and len(y) >= 2 * dim:
            out = frechet_infinity(x, y=y, seed=seed, n_reps=reps)
            return out if out is not None else {"value": None, "reason": "fewer than 3 distinct subset sizes"}
        out = frechet_infinity(x, mu_r, cov_r, seed=seed, n_reps=reps)
        if out is None:
            return {"value": None, "reason": "fewer than 3 distinct subset sizes"}
        why = ("the reference is a statistics file (no per-clip features to subsample)" if y is None else
               f"the reference has n_ref = {n_ref} < 2·dim = {2 * dim} clips, too few to subsample")
        out["why_generated_only"] = why
        if n_ref < FD_INF_REF_RATIO * n:
            out["warning"] = (f"FD∞ extrapolates the generated side only ({why}): the reference's own small-sample bias "
                              f"stays in it, and with n_ref = {n_ref} < {FD_INF_REF_RATIO}·n_gen = {FD_INF_REF_RATIO * n} "
                              "that is a large part of the bias; FD∞ is an upper estimate")
        return out


class _KID(_EmbeddingDistance):
    unit: ClassVar[str] = ""

    @classmethod
    def describe_convention(cls, backbone: str | None, dim: int | None = None, m: int | None = None) -> str:
        dims = f"{dim}-d " if dim else ""
        size = f"{m}" if m else f"min({SUBSET_SIZE}, n_gen, n_ref)"
        return (
            f"unbiased KID (MMD²_u) on {dims}per-clip '{backbone}' embeddings, float64, kernel k(x,y) = (xᵀy/d + 1)³, "
            f"{N_SUBSETS} subsets of {size} clips per side drawn without replacement (numpy default_rng(seed)); "
            "value = mean over subsets, extra.std = population std over subsets (torch-fidelity/torchmetrics convention). "
            f"95% CI: percentile bootstrap over generated clips ({KID_BOOT} resamples, same reference subsets, "
            "pairs of copies of a clip excluded from the generated-generated term)."
        )

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        got = self._inputs(gen, ref)
        if isinstance(got, MetricResult):
            return got
        gids, x, y, stats, n_ref, warnings = got
        if y is None:
            return self.skipped(
                "KID needs per-clip reference features; a stats reference has only running sums",
                fix=STATS_REF_FIX, n=len(gids), warnings=warnings,
            )
        n_subsets = int(self.options.get("n_subsets", N_SUBSETS))
        m = min(SUBSET_SIZE, len(x), len(y))
        n_boot = int(self.options.get("n_boot", KID_BOOT))
        lo = hi = None
        owner = self._owner
        if owner is not None:
            vals, boots = _kid_clip_bootstrap(x, y, owner, n_boot=n_boot, n_subsets=n_subsets, seed=seed)
            if boots is not None:
                lo, hi = percentile_interval(boots, level=CI_LEVEL)
            else:
                warnings.append(f"no CI: the KID bootstrap keeps an n×n kernel of rows and n={len(x)} > {MAX_GEN_KERNEL}")
        elif len(x) <= MAX_GEN_KERNEL:
            vals, boots = kid_values_and_bootstrap(x, y, n_boot=n_boot, n_subsets=n_subsets, seed=seed)
            lo, hi = percentile_interval(boots, level=CI_LEVEL)
        else:
            vals = kid_values(x, y, n_subsets=n_subsets, seed=seed)
            warnings.append(f"no CI: the KID bootstrap keeps an n_gen×n_gen kernel and n_gen={len(x)} > {MAX_GEN_KERNEL}")
        value, std = float(vals.mean()), float(vals.std())
        res = self.result(
            value, n=len(gids), ci_low=lo, ci_high=hi, warnings=warnings,
            extra={
                "n_ref": n_ref, "dim": x.shape[1], "backbone": self.backbone, "std": std,
                "subset_size": m, "n_subsets": n_subsets, "n_boot": n_boot if lo is not None else 0,
                "reference": "clips",
                **({} if owner is None else {"n_rows": len(x), "pooling": "frames"}),
            },
        )
        res.convention = self.describe_convention(self.backbone, x.shape[1], m) + (FRAME_POOLING if owner is not None else "")
        return res


class FrechetVideo(_Frechet):
    """Fréchet distance of per-clip video embeddings (FVD only with ``backbone="i3d"``)."""

    name = "fd_video"
    display_name = "Fréchet distance (video)"
    backbone_modality = "video"
    default_backbone = "vstats"


class FrechetAudio(_Frechet):
    """Fréchet distance of per-clip audio embeddings (FAD only with ``backbone="vggish"``)."""

    name = "fd_audio"
    display_name = "Fréchet distance (audio)"
    backbone_modality = "audio"
    default_backbone = "melstats"


class KIDVideo(_KID):
    """Unbiased KID of per-clip video embeddings."""

    name = "kid_video"
    display_name = "KID (video)"
    backbone_modality = "video"
    default_backbone = "vstats"


class KIDAudio(_KID):
    """Unbiased KID of per-clip audio embeddings."""

    name = "kid_audio"
    display_name = "KID (audio)"
    backbone_modality = "audio"
    default_backbone = "melstats"


__all__ = ["FrechetVideo", "FrechetAudio", "KIDVideo", "KIDAudio", "RunningStats", "embedding_rows", "standard_display"]
