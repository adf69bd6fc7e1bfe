"""Stage 4: the reference set the clips are compared with.

Three kinds: ``procedural`` (the suite rendered by the oracle world with reference seeds, at the
*scored clips'* geometry, cached under ``$MOVA_BENCH_HOME/references``), ``clips`` (a folder of
real clips) and ``stats`` (a precomputed ``.npz`` of running sums, like shared FID statistics).

A stats file records each extractor's ``cache_identity()``; it is compared with the live one, and a
mismatch (other extractor code, version or preprocessing) makes the metrics that read it
``failed`` with the command that rebuilds the file — never a silent comparison against stale
statistics. ``mova-bench reference build`` writes such files from a suite or from a folder of clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mova_bench import __version__
from mova_bench.cache import home as cache_home
from mova_bench.console import log
from mova_bench.errors import ConfigError
from mova_bench.executors.base import DEFAULT_EXECUTOR
from mova_bench.generators.base import ClipRequest
from mova_bench.metrics.base import FeatureSet
from mova_bench.pipeline.analysis import ExtractorSpec, analyse_set
from mova_bench.pipeline.ingest import folder_rows, probe_geometry
from mova_bench.pipeline.requests import REFERENCE_SEED_BASE, Geometry, build_requests, generation_geometry
from mova_bench.registry import features as feature_registry
from mova_bench.store import canonical_json, exclusive_folder, slug, spec_hash
from mova_bench.suites import Suite

LEARNED_VS_ORACLE_WARNING = (
    "the reference is the procedural oracle world and the model is learned: distances measure distance "
    "from the oracle world, not from real video"
)


def resolve_reference(suite: Suite | None, override: str | None) -> dict[str, Any]:
    """The reference part of an evaluation spec: from ``--reference`` if given, else the suite's."""
    if override:
        p = Path(override).expanduser().resolve()
        if p.suffix == ".npz":
            if not p.is_file():
                raise ConfigError(f"--reference {override!r}: no such statistics file",
                                  fix="build one with `mova-bench reference build --clips DIR --out FILE.npz`")
            return {"kind": "stats", "path": str(p)}
        if not p.is_dir():
            raise ConfigError(f"--reference {override!r} is neither a folder of clips nor a .npz statistics file")
        return {"kind": "clips", "path": str(p)}
    if suite is None:
        return {"kind": None}
    ref = suite.reference
    if ref.kind == "procedural":
        return {"kind": "procedural", "suite": suite.name, "suite_fingerprint": suite.fingerprint(),
                "samples_per_prompt": ref.samples_per_prompt or suite.defaults.samples_per_prompt, "seed": ref.seed}
    return {"kind": ref.kind, "path": _suite_relative(suite, ref.path)}


def _suite_relative(suite: Suite, path: str | None) -> str:
    p = Path(path or "").expanduser()
    if not p.is_absolute() and suite.source:
        cand = Path(suite.source).parent / p
        if cand.exists():
            return str(cand.resolve())
    if not p.exists():
        raise ConfigError(f"reference path {path!r} of suite {suite.name!r} does not exist",
                          fix="correct `reference: path:` in the suite (relative paths are relative to the suite file)")
    return str(p.resolve())


def procedural_reference_rows(suite: Suite, ref: dict[str, Any], geometry: Geometry, executor) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Render (or reuse) the suite's procedural reference at ``geometry``; waits while another
    process renders the same one."""
    from mova_bench.cards import load_card
    from mova_bench.pipeline.generation import generate_set

    card = load_card("procedural")
    n = int(ref["samples_per_prompt"])
    root, reqs = _procedural_plan(suite, ref, geometry, card)
    with exclusive_folder(root, wait=True, what="reference folder"):
        rows = generate_set(reqs, model="procedural", params={}, card=card, clips_dir=root / "clips",
                            manifest_path=root / "manifest.jsonl", executor=executor, desc="reference clips")
    return rows, {"path": str(root), "samples_per_prompt": n, "seed": ref["seed"]}


def _procedural_plan(suite: Suite, ref: dict[str, Any], geometry: Geometry, card) -> tuple[Path, list[ClipRequest]]:
    """Where the suite's procedural reference at ``geometry`` lives, and the clip requests it renders."""
    n = int(ref["samples_per_prompt"])
    key = {"suite": suite.name, "fingerprint": suite.fingerprint(), "n": n, "seed": ref["seed"],
           "geometry": geometry.to_json(), "v": 2}
    root = cache_home() / "references" / f"{slug(suite.name)}-{spec_hash(key)}"
    reqs = build_requests(suite, card, seed=0, samples_per_prompt=n, seed_offset=REFERENCE_SEED_BASE + ref["seed"],
                          geometry=geometry)
    return root, [ClipRequest(**{**r.__dict__, "clip_id": "ref:" + r.clip_id}) for r in reqs]


def reference_identity(ref: dict[str, Any], *, suite: Suite | None, geometry: Geometry | None) -> Any:
    """What the reference's clips or statistics are, read without rendering or analysing anything:
    the content hashes of its clips (procedural: only when every clip is rendered and verified),
    or the SHA-256 of a stats file. None when it cannot be told cheaply (a procedural reference not
    yet rendered, a missing file): the evaluation is then computed, never reused."""
    from mova_bench.media import file_sha256
    from mova_bench.store import read_manifest

    kind = ref.get("kind")
    try:
        if kind is None:
            return {"kind": None}
        if kind == "stats":
            return {"kind": kind, "sha256": file_sha256(ref["path"])}
        if kind == "clips":
            rows = folder_rows(Path(ref["path"]), suite, prefix="ref:")
            return {"kind": kind, "clips": [[r["clip_id"], r.get("status"), r.get("content_hash"), r.get("prompt_text")]
                                            for r in rows]}
        if kind == "procedural" and suite is not None and geometry is not None:
            from mova_bench.cards import load_card
            from mova_bench.pipeline.generation import clip_is_done

            root, reqs = _procedural_plan(suite, ref, geometry, load_card("procedural"))
            rows = {r["clip_id"]: r for r in read_manifest(root / "manifest.jsonl")}
            out = []
            for req in reqs:
                row = rows.get(req.clip_id)
                if row is None or not clip_is_done(row, root / "clips" / f"{slug(req.clip_id)}.mp4"):
                    return None
                out.append([req.clip_id, row["content_hash"]])
            return {"kind": kind, "path": str(root), "clips": out}
    except (OSError, ValueError, KeyError, ConfigError):
        return None
    return None


def reference_features(ref: dict[str, Any], *, suite: Suite | None, geometry: Geometry | None,
                       specs: tuple[ExtractorSpec, ...], executor, use_cache: bool = True) -> tuple[FeatureSet | None, dict[str, Any]]:
    """The reference set as a FeatureSet (per-clip features, or precomputed statistics) and what is
    recorded about it in metrics.json: kind, domain, geometry, size and failures (never hidden)."""
    kind = ref.get("kind")
    if kind is None:
        return None, {"kind": None}
    info: dict[str, Any] = {"kind": kind}
    if kind == "stats":
        stats, prov = load_reference_stats(ref["path"])
        stale = stale_statistics(stats, specs, ref["path"], prov)
        info.update(path=ref["path"], domain=prov.get("domain") or "unknown", geometry=prov.get("geometry"),
                    n_clips=prov.get("n_clips"), built_from=prov.get("reference"), stale=stale)
        usable = {k: v for k, v in stats.items() if k not in stale}
        return FeatureSet(clip_ids=[], stats=usable), info
    if kind == "procedural":
        if suite is None or geometry is None:
            raise ConfigError("a procedural reference needs the suite and the clips' geometry")
        rows, extra = procedural_reference_rows(suite, ref, geometry, executor)
        info.update(extra, domain="procedural", geometry=geometry.to_json())
    else:
        rows = folder_rows(Path(ref["path"]), suite, prefix="ref:")
        info.update(path=ref["path"], domain="clips")
        if not rows:
            raise ConfigError(f"reference folder {ref['path']!r} holds no video files",
                              fix="give a folder of .mp4 reference clips, or a .npz statistics file")
        geo, how = probe_geometry(rows, geometry or Geometry(0.0, 0.0, 0, 0, 0))
        info["geometry"] = geo.to_json() if geo.fps else None
    fs, _ = analyse_set(rows, specs, executor, desc="analysing reference", use_cache=use_cache)
    failed = [r for r in rows if r.get("status") != "ok"]
    info.update(n_clips=len(rows), n_failed=len(failed))
    if failed:
        info["failures"] = {r["clip_id"]: r.get("reason") for r in failed[:50]}
        log(f"warning: {len(failed)} of {len(rows)} reference clips failed and are left out (see metrics.json 'reference')")
    return fs, info


def load_reference_stats(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every backbone's running sums in a stats ``.npz``, and the file's provenance."""
    from mova_bench.metrics.frechet import RunningStats

    try:
        with np.load(path, allow_pickle=False) as z:
            names = sorted({k.split("/")[0] for k in z.files if "/" in k})
        out = {name: RunningStats.from_npz(path, prefix=f"{name}/") for name in names}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable statistics file ({exc})",
                          fix="rebuild it with `mova-bench reference build --suite S --out FILE.npz`") from None
    if not out:
        raise ConfigError(f"{path}: no statistics inside",
                          fix="build one with `mova-bench reference build --suite S --out FILE.npz`")
    prov = dict(next(iter(out.values())).provenance)
    return out, prov


def _rebuild_command(path: str, prov: dict[str, Any]) -> str:
    built = prov.get("reference") or {}
    source = f"--clips {built['path']}" if built.get("kind") == "clips" and built.get("path") else f"--suite {prov.get('suite') or 'SUITE'}"
    return f"mova-bench reference build {source} --out {Path(path).with_name(Path(path).stem + '-new.npz')}"


def stale_statistics(stats: dict[str, Any], specs: tuple[ExtractorSpec, ...], path: str, prov: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Backbones whose stored extractor identity differs from the live one: name → {reason, fix}."""
    params = {s.name: s for s in specs}
    stale: dict[str, dict[str, str]] = {}
    for name, st in stats.items():
        if name not in feature_registry:
            continue
        live = (params.get(name) or ExtractorSpec(name)).build().cache_identity()
        stored = (st.provenance or {}).get("extractor")
        if stored is None:
            why = "it records no extractor identity"
        else:
            live_j, stored_j = _json(live), _json(stored)
            diff = sorted(k for k in set(live_j) | set(stored_j) if live_j.get(k) != stored_j.get(k))
            if not diff:
                continue
            why = f"its extractor differs from this version's in {', '.join(diff)}"
        stale[name] = {"reason": f"reference statistics {path} for {name!r} are stale: {why}",
                       "fix": _rebuild_command(path, prov)}
    return stale


def _json(obj: Any) -> dict[str, Any]:
    import json

    return json.loads(canonical_json(obj))


def build_reference_stats(out: str, *, suite_name: str | None = None, clips: str | None = None,
                          model: str | None = None, backbones: tuple[str, ...] = ("vstats", "melstats"),
                          executor: str = DEFAULT_EXECUTOR, workers: int | None = None) -> Path:
    """``mova-bench reference build``: running sums per backbone from a suite's reference set
    (rendered at ``model``'s geometry when given) or from a folder of real clips. Clips are rendered
    and analysed on ``executor`` (default: the process pool over the usable cores)."""
    from mova_bench.cards import load_card
    from mova_bench.executors import get_executor
    from mova_bench.metrics.frechet import RunningStats, save_stats_npz
    from mova_bench.suites import load_suite

    path = Path(out)
    if path.suffix != ".npz":
        raise ConfigError(f"--out {out!r}: expected a file name ending in .npz")
    if path.exists():
        raise ConfigError(f"--out {out!r} already exists; it is never overwritten. Choose another file name")
    if (suite_name is None) == (clips is None):
        raise ConfigError("reference build needs exactly one of --suite S or --clips DIR")
    suite = load_suite(suite_name) if suite_name else None
    specs = tuple(ExtractorSpec(b) for b in backbones)
    if suite is not None:
        ref = resolve_reference(suite, None)
        if ref["kind"] == "stats":
            raise ConfigError(f"suite {suite.name!r} already uses a stats reference ({ref['path']})")
        geometry = generation_geometry(suite, load_card(model) if model else None)
    with get_executor(executor, workers) as ex:
        if suite is not None:
            fs, info = reference_features(ref, suite=suite, geometry=geometry, specs=specs, executor=ex)
            domain = info.get("domain")
        else:
            fs, info = reference_features({"kind": "clips", "path": str(Path(clips).resolve())}, suite=None,
                                          geometry=None, specs=specs, executor=ex)
            domain = "clips"
    stats = {}
    from mova_bench.metrics.distribution import embedding_rows

    for b in backbones:
        ids, x, _ = embedding_rows(fs, b)  # a frame-level backbone's stats are over all frame rows
        if not ids:
            raise ConfigError(f"no usable reference clip for backbone {b!r}")
        st = RunningStats.from_features(x)
        st.provenance = {"extractor": feature_registry.get(b)().cache_identity()}
        stats[b] = st
    extra = {"suite": suite.name, "suite_version": suite.version, "suite_fingerprint": suite.fingerprint()} if suite else {}
    return save_stats_npz(path, stats, **extra, reference={k: v for k, v in info.items() if k != "failures"},
                          domain=domain, geometry=info.get("geometry"), n_clips=len(fs.clip_ids),
                          n_failed=info.get("n_failed", 0), mova_bench=__version__)
