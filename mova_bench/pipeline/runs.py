"""The orchestration behind ``mova-bench run`` and ``mova-bench evaluate``.

A run folder is keyed by what generation depends on (model and parameters, suite and version,
seed, samples per prompt) — or, for clips made elsewhere, by the folder and its files. How the
clips are scored (metrics, backbones, reference, profile) is an *evaluation spec*: each one keeps
its results in ``evals/<id>/`` and the latest is shown at the top level. Changing how clips are
scored never regenerates a clip, and every cached feature is reused.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from mova_bench import __version__
from mova_bench.cache import home as cache_home
from mova_bench.cards import load_card
from mova_bench.console import log
from mova_bench.errors import ConfigError
from mova_bench.executors import get_executor
from mova_bench.executors.base import DEFAULT_EXECUTOR
from mova_bench.media import file_sha256
from mova_bench.metrics.base import Metric
from mova_bench.pipeline.analysis import analyse_set, extractor_specs
from mova_bench.pipeline.analysis import runtime as analysis_runtime
from mova_bench.pipeline.generation import generate_set
from mova_bench.pipeline.ingest import folder_rows, probe_geometry, read_run, verify_rows
from mova_bench.pipeline.outputs import EVAL_FILES, RunOutcome, write_evaluation
from mova_bench.pipeline.reference import (LEARNED_VS_ORACLE_WARNING, reference_features, reference_identity,
                                            resolve_reference)
from mova_bench.pipeline.requests import Geometry, build_requests, check_counts, generation_geometry
from mova_bench.pipeline.scoring import compute_metrics, console_notes, select_metrics
from mova_bench.profiles import apply_profile, profile_spec_name, profile_specs, resolve_profile
from mova_bench.store import ensure_folder, exclusive_folder, read_json, slug, spec_hash, write_json_atomic
from mova_bench.suites import Suite, load_suite

#: bump when the meaning of an evaluation spec changes (its id changes with it)
EVAL_SPEC_VERSION = 1
#: in ``evals/<id>/``: the fingerprint of everything the evaluation's files were computed from
#: (see :func:`_reuse_key`); written last, removed before an evaluation is recomputed
REUSE_FILE = "inputs_fingerprint.json"
REUSED_MESSAGE = "unchanged evaluation reused"
OUT_FIX = "pass --out with a folder you can write to"
HOME_FIX = "set MOVA_BENCH_HOME to a writable folder, e.g. export MOVA_BENCH_HOME=$HOME/.cache/mova-bench"


def _freeze_spec(run_dir: Path, spec: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Write ``run_spec.json`` once; a folder holding another spec is never reused."""
    path = run_dir / "run_spec.json"
    if path.exists():
        old = read_json(path)
        if old.get("spec") != json.loads(json.dumps(spec, default=str)):
            raise ConfigError(f"{run_dir} holds a run with a different spec", fix="use another --out, or delete that folder")
        return old
    doc = {"spec": spec, **context, "mova_bench": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json_atomic(path, doc)
    return doc


def _run_folder(out: str | os.PathLike, name: str) -> Path:
    root = ensure_folder(Path(out), "output folder (--out)", fix=OUT_FIX)
    return ensure_folder(root / name, "run folder", fix=OUT_FIX)


def _geometry_warning(scored: Geometry | None, ref_geo: dict[str, Any] | None) -> str | None:
    if scored is None or not ref_geo:
        return None
    r = Geometry(**ref_geo)
    far = abs(r.duration_s - scored.duration_s) > 0.1 * scored.duration_s or (r.width, r.height) != (scored.width, scored.height)
    if not far:
        return None
    return (f"the reference clips ({r.width}×{r.height}, {r.duration_s:g} s) differ in size or duration from the scored "
            f"clips ({scored.width}×{scored.height}, {scored.duration_s:g} s): that alone separates the sets in the "
            "distances and the detector")


def uses_torch_backbones(metric_objs: list[Metric]) -> bool:
    """True when a metric that will run needs a pretrained (torch) backbone."""
    from mova_bench.features.base import TorchBackbone
    from mova_bench.registry import features as feature_registry

    for m in metric_objs:
        if getattr(m, "unavailable", None):
            continue
        for r in m.required_extractors():
            if r and r in feature_registry and issubclass(feature_registry.get(r), TorchBackbone):
                return True
    return False


def check_device(device: str | None, batch_size: int | None, metric_objs: list[Metric]) -> str:
    """The resolved torch device of an evaluation (before any work; exit 2 when unusable).

    ``auto``/``cpu`` without pretrained backbones resolve to "cpu" without importing torch; an
    explicit ``cuda[:N]`` is always checked."""
    from mova_bench.features.base import resolve_device

    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"--batch-size {batch_size!r}: expected an integer ≥ 1", fix="e.g. --batch-size 16, or leave it out")
    spec = (device or "auto").strip().lower()
    if spec in ("auto", "cpu") and not uses_torch_backbones(metric_objs):
        return resolve_device("cpu") if spec == "cpu" else "cpu"
    return resolve_device(spec)


# ---------------------------------------------------------------------------------------------
# reusing an unchanged evaluation
# ---------------------------------------------------------------------------------------------

#: code whose edits change an evaluation's numbers or its files, beyond the extractors (whose own
#: cache identities cover their code): metrics, statistics, scoring, outputs and the report
_EVAL_CODE = ("metrics", "stats.py", "pipeline/scoring.py", "pipeline/outputs.py", "report")


def _evaluation_code_sha256() -> str:
    import hashlib

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for rel in _EVAL_CODE:
        p = root / rel
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".py", ".j2", ".html", ".css", ".js")) if p.is_dir() else [p]
        for f in files:
            h.update(f.relative_to(root).as_posix().encode())
            try:
                h.update(f.read_bytes())
            except OSError:
                h.update(b"?")
    return h.hexdigest()


def _reuse_key(evaluation: dict[str, Any], rows: list[dict[str, Any]], specs, ref: dict[str, Any], *,
               suite: Suite | None, geometry: Geometry | None, learned: bool, header: dict[str, Any],
               inputs: dict[str, Any]) -> str | None:
    """A fingerprint of everything an evaluation's files are computed from: its spec, the clips
    (ids, status, content hashes, prompts), the reference's identity, every extractor's cache
    identity, the code of the metrics and the report, the package and library versions, and what
    the report shows (header, inputs). None when some part cannot be told without computing it."""
    from mova_bench.features.base import NUMERIC_LIBRARIES, library_versions

    ref_id = reference_identity(ref, suite=suite, geometry=geometry)
    if ref_id is None:
        return None
    try:
        extractors = [[s.name, s.build().cache_identity()] for s in specs]
    except Exception:  # noqa: BLE001 - the analysis will say what is wrong
        return None
    clips = [[r.get("clip_id"), r.get("status"), r.get("reason"), r.get("content_hash"), r.get("prompt_id"),
              r.get("prompt_text"), r.get("expected_offset_ms"), r.get("path")] for r in rows]
    doc = {"evaluation": evaluation, "mova_bench": __version__, "eval_spec_version": EVAL_SPEC_VERSION,
           "code": _evaluation_code_sha256(),
           "libraries": library_versions(tuple(sorted({*NUMERIC_LIBRARIES, "scikit-learn", "pyarrow", "jinja2", "matplotlib"}))),
           "extractors": extractors, "reference": ref_id, "clips": clips, "geometry": geometry.to_json() if geometry else None,
           "learned": learned, "header": header, "inputs": inputs}
    return spec_hash(doc, length=64)


def _reuse(run_dir: Path, eval_dir: Path, key: str, rows: list[dict[str, Any]]) -> RunOutcome | None:
    """The stored outcome of evaluation ``eval_dir`` when it was computed from exactly ``key`` and
    is complete (every file there, no clip failed in analysis); else None. The report is rendered
    again only where it is missing; the run's top-level view is switched to this evaluation when
    it shows another one."""
    try:
        stored = read_json(eval_dir / REUSE_FILE)
        if stored.get("key") != key or not all((eval_dir / f).is_file() for f in EVAL_FILES):
            return None
        doc = read_json(eval_dir / "metrics.json")
    except (OSError, ValueError):
        return None
    n_failed_before = sum(1 for r in rows if r.get("status") != "ok")
    if doc.get("n_clips") != len(rows) or doc.get("n_failed") != n_failed_before or not isinstance(doc.get("metrics"), dict):
        return None  # a clip failed in analysis last time (a worker died...): compute it again
    from mova_bench.report import write_report

    eval_id = eval_dir.name
    if not (eval_dir / "report.html").is_file():
        write_report(eval_dir, run_dir=run_dir)
    try:
        top = read_json(run_dir / "metrics.json")
        shown = (top.get("evaluation") or {}).get("id")
    except (OSError, ValueError):
        shown = None
    if shown != eval_id or not all((run_dir / f).is_file() for f in EVAL_FILES):
        import shutil

        from mova_bench.store import atomic_path

        for name in EVAL_FILES:  # this evaluation becomes the run's top-level view again
            with atomic_path(run_dir / name) as tmp:
                shutil.copyfile(eval_dir / name, tmp)
        write_report(run_dir, run_dir=run_dir)
    elif not (run_dir / "report.html").is_file():
        write_report(run_dir, run_dir=run_dir)
    warnings = list(doc.get("warnings") or [])
    for w in warnings:
        log(f"warning: {w}")
    log(f"evaluation {eval_id}: {REUSED_MESSAGE} (clips, reference, metrics and code as when it was computed; "
        "--no-cache computes it again)")
    metrics = doc["metrics"]
    return RunOutcome(run_dir, doc.get("status") or ("ok" if not doc["n_failed"] else "partial"), doc["n_clips"],
                      doc["n_failed"], metrics, {"reused": 1.0}, eval_id, notes=[*warnings, *console_notes(metrics)])


def _score(run_dir: Path, rows: list[dict[str, Any]], *, suite: Suite | None, learned: bool, geometry: Geometry | None,
           metric_objs: list[Metric], backbones: str, reference: str | None, seed: int, executor,
           use_cache: bool, header: dict[str, Any], inputs: dict[str, Any], timings: dict[str, float],
           device: str = "cpu", batch_size: int | None = None) -> RunOutcome:
    """One evaluation of a run's clips, written to ``evals/<id>/`` and shown at the top level."""
    ref = resolve_reference(suite, reference)
    if use_cache or ref.get("kind") == "procedural":
        ensure_folder(cache_home(), "MOVA_BENCH_HOME folder (feature cache and reference sets)", fix=HOME_FIX)
    specs = profile_specs(metric_objs, extractor_specs(metric_objs, suite))  # a profile's analyzer params
    evaluation = {"v": EVAL_SPEC_VERSION, "metrics": [m.key for m in metric_objs], "backbones": backbones,
                  "reference": ref, "profile": profile_spec_name(metric_objs), "bootstrap_seed": seed,
                  "analysis": [[s.name, dict(s.params)] for s in specs]}
    torch_used = uses_torch_backbones(metric_objs)
    if torch_used:  # recorded, never part of a feature's cache key (weight-free evaluations keep their ids)
        evaluation["device"] = "cuda" if device.startswith("cuda") else "cpu"
    inputs = {**inputs, "device": device, "batch_size": batch_size}
    eval_id = spec_hash(evaluation)
    eval_dir = ensure_folder(run_dir / "evals" / eval_id, "evaluation folder", fix=OUT_FIX)
    if not (eval_dir / "eval_spec.json").exists():
        write_json_atomic(eval_dir / "eval_spec.json", evaluation)
    log(f"evaluation {eval_id}: {len(evaluation['metrics'])} metric(s), backbones {backbones}, reference {ref.get('kind')}")
    header = {**header, "geometry": geometry.to_json() if geometry else None}
    key = None
    key_inputs = {k: v for k, v in inputs.items() if k != "device"}  # the resolved device changes no number
    scored_rows = rows

    def reuse_key() -> str | None:
        return _reuse_key(evaluation, scored_rows, specs, ref, suite=suite, geometry=geometry, learned=learned,
                          header=header, inputs=key_inputs)

    if use_cache:  # --no-cache: every number is computed again
        key = reuse_key()
        reused = _reuse(run_dir, eval_dir, key, rows) if key else None
        if reused is not None:
            return reused
    (eval_dir / REUSE_FILE).unlink(missing_ok=True)  # its files are about to change
    n_failed_before = sum(1 for r in rows if r.get("status") != "ok")
    ex = executor
    if torch_used and device.startswith("cuda") and getattr(ex, "name", "") == "pool":
        # one GPU model in this process, not one copy per pool worker (as for GPU generators)
        log(f"analysis runs in this process on {device} (--executor ray spreads GPU analysis over a cluster)")
        ex = get_executor("local")
    rows = [dict(r) for r in rows]  # analysis failures belong to this evaluation, not to the manifest
    t0 = time.perf_counter()
    with analysis_runtime(device=device, batch_size=batch_size):
        gen_fs, gstats = analyse_set(rows, specs, ex, desc="analysing clips", use_cache=use_cache)
        ref_fs, ref_info = reference_features(ref, suite=suite, geometry=geometry, specs=specs, executor=ex, use_cache=use_cache)
    timings["analyse_s"] = round(time.perf_counter() - t0, 3)
    warnings = []
    if ref_info.get("domain") == "procedural" and learned:
        warnings.append(LEARNED_VS_ORACLE_WARNING)
    geo_warning = _geometry_warning(geometry, ref_info.get("geometry"))
    if geo_warning:
        warnings.append(geo_warning)
    for w in warnings:
        log(f"warning: {w}")
    t0 = time.perf_counter()
    results = compute_metrics(metric_objs, gen_fs, ref_fs, seed, stale=ref_info.get("stale"))
    timings["metrics_s"] = round(time.perf_counter() - t0, 3)
    inputs = {**inputs, "reference": ref_info, "cache": {"hits": gstats["cache_hits"], "clips_decoded": gstats["decoded"]}}
    if gstats.get("missing"):
        inputs["missing_features"] = gstats["missing"]
    evaluation_doc = {"id": eval_id, "path": f"evals/{eval_id}", "spec": evaluation}
    outcome = write_evaluation(run_dir, eval_dir, rows, results, gen_fs, evaluation=evaluation_doc, reference=ref_info,
                               header=header, inputs=inputs, timings=timings, warnings=warnings)
    if key is None:  # --no-cache, or the procedural reference was rendered just now
        key = reuse_key()
    if key and outcome.n_failed == n_failed_before:  # no clip failed in analysis: reusable as it is
        write_json_atomic(eval_dir / REUSE_FILE, {"key": key, "evaluation": eval_id,
                                                  "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return outcome


def _open_executor(name, workers: int | None):
    """The executor of one command (built once, so a process pool starts once); bad names fail here,
    before any folder is made. An :class:`~mova_bench.executors.Executor` given instead of a name
    (a sweep shares one between its points) is used as it is and left open for its owner."""
    import contextlib

    from mova_bench.executors import Executor

    if isinstance(name, Executor):
        return contextlib.nullcontext(name)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: expected an integer ≥ 1")
    return get_executor(name, **({"workers": workers} if workers else {}))


def _title(name: str, suite: Suite | None, set_params: dict[str, Any]) -> str:
    title = name + (f" on {suite.name} v{suite.version}" if suite else "")
    if set_params:
        title += " (" + ", ".join(f"{k}={v}" for k, v in sorted(set_params.items())) + ")"
    return title


def run(model: str, suite_name: str, *, out: str | os.PathLike = "runs", seed: int | None = None,
        samples_per_prompt: int | None = None, params: dict[str, Any] | None = None,
        backbones: str = "auto", metrics: list[str] | None = None, executor: str = DEFAULT_EXECUTOR,
        use_cache: bool = True, reference: str | None = None, workers: int | None = None,
        device: str = "auto", batch_size: int | None = None, profile: str | None = None) -> RunOutcome:
    """Generate the suite's clips with ``model`` (resuming what exists) and evaluate them."""
    t_start = time.perf_counter()
    suite = load_suite(suite_name)
    card = load_card(model)
    params = dict(params or {})
    generator = card.adapter_class()(card_defaults=card.defaults, card=card, **params)  # validates --set keys
    generator.check_available()
    seed = suite.defaults.seed if seed is None else seed
    n = suite.defaults.samples_per_prompt if samples_per_prompt is None else samples_per_prompt
    check_counts(seed, n)
    geometry = generation_geometry(suite, card)
    requests = build_requests(suite, card, seed=seed, samples_per_prompt=n, geometry=geometry)
    for req in requests:
        generator.validate_request(req)
    # missing weights/extras and an unknown --profile exit 2 here, before any work
    metric_objs = apply_profile(profile, select_metrics(metrics, backbones, backbone_params=resolve_profile(profile).analysis))
    device = check_device(device, batch_size, metric_objs)
    resolve_reference(suite, reference)  # a bad --reference fails before a folder is made
    spec = {
        "kind": "run", "model": card.name, "model_params": generator.params, "suite": suite.name,
        "suite_version": suite.version, "suite_fingerprint": suite.fingerprint(), "seed": seed,
        "samples_per_prompt": n,
    }
    set_params = {k: generator.params[k] for k in params}
    with _open_executor(executor, workers) as ex:  # an exception or Ctrl-C stops the workers at once
        run_dir = _run_folder(out, f"{slug(card.name)}-{slug(suite.name)}-{spec_hash(spec)}")
        return _run_in(run_dir, ex, suite=suite, card=card, spec=spec, requests=requests, generator=generator,
                       set_params=set_params, geometry=geometry, seed=seed, n=n, metric_objs=metric_objs,
                       backbones=backbones, reference=reference, use_cache=use_cache, t_start=t_start,
                       device=device, batch_size=batch_size)


def _run_in(run_dir: Path, ex, *, suite: Suite, card, spec: dict[str, Any], requests, generator, set_params,
            geometry: Geometry, seed: int, n: int, metric_objs, backbones: str, reference: str | None,
            use_cache: bool, t_start: float, device: str = "cpu", batch_size: int | None = None) -> RunOutcome:
    timings: dict[str, float] = {}
    with exclusive_folder(run_dir):
        context = {"suite_file": suite.source, "model_card": card.source, "geometry": geometry.to_json(),
                   "learned": bool(card.learned), "set": set_params}
        _freeze_spec(run_dir, spec, context)
        log(f"run folder: {run_dir}")
        t0 = time.perf_counter()
        # a GPU model loads once, in this process: a worker pool would load one copy per worker
        gen_ex = get_executor("local") if ex.name == "pool" and card.resources.gpus else ex
        rows = generate_set(requests, model=card.name, params=generator.params, card=card,
                            clips_dir=run_dir / "clips", manifest_path=run_dir / "manifest.jsonl",
                            executor=gen_ex, desc=f"generating ({card.name})")
        timings["generate_s"] = round(time.perf_counter() - t0, 3)
        inputs = {"suite_file": suite.source, "suite_sha256": file_sha256(suite.source) if suite.source else None,
                  "model_card": card.source, "model_card_sha256": file_sha256(card.source) if card.source else None,
                  "spec": spec}
        header = {"title": _title(card.display_name or card.name, suite, set_params), "kind": "run",
                  "model": card.name, "model_params": generator.params, "set": set_params, "learned": bool(card.learned),
                  "suite": suite.name, "suite_version": suite.version, "suite_description": suite.description,
                  "seed": seed, "samples_per_prompt": n, "run_id": run_dir.name}
        timings["total_before_eval_s"] = round(time.perf_counter() - t_start, 3)
        return _score(run_dir, rows, suite=suite, learned=bool(card.learned), geometry=geometry, metric_objs=metric_objs,
                      backbones=backbones, reference=reference, seed=seed, executor=ex, use_cache=use_cache,
                      header=header, inputs=inputs, timings=timings, device=device, batch_size=batch_size)


def evaluate(clips: str | os.PathLike, *, suite_name: str | None = None, reference: str | None = None,
             out: str | os.PathLike = "runs", backbones: str = "auto", metrics: list[str] | None = None,
             executor: str = DEFAULT_EXECUTOR, seed: int = 0, use_cache: bool = True, workers: int | None = None,
             device: str = "auto", batch_size: int | None = None, profile: str | None = None) -> RunOutcome:
    """Evaluate a folder of clips generated elsewhere (the files are read, never modified)."""
    clips_dir = Path(clips).expanduser().resolve()
    suite = load_suite(suite_name) if suite_name else None
    rows = folder_rows(clips_dir, suite)
    if not rows:
        raise ConfigError(f"--clips {str(clips_dir)!r} holds no video files; expected .mp4 clips")
    metric_objs = apply_profile(profile, select_metrics(metrics, backbones, backbone_params=resolve_profile(profile).analysis))
    device = check_device(device, batch_size, metric_objs)
    resolve_reference(suite, reference)
    with _open_executor(executor, workers) as ex:
        return _evaluate_in(clips_dir, rows, ex, suite=suite, metric_objs=metric_objs, backbones=backbones,
                            reference=reference, out=out, seed=seed, use_cache=use_cache,
                            device=device, batch_size=batch_size)


def _evaluate_in(clips_dir: Path, rows, ex, *, suite: Suite | None, metric_objs, backbones: str, reference: str | None,
                 out, seed: int, use_cache: bool, device: str = "cpu", batch_size: int | None = None) -> RunOutcome:
    listing = {r["clip_id"]: r["content_hash"] for r in rows}
    spec = {"kind": "clips", "clips": str(clips_dir), "suite": suite.name if suite else None,
            "suite_version": suite.version if suite else None,
            "suite_fingerprint": suite.fingerprint() if suite else None, "files": spec_hash(listing)}
    parent = clips_dir.parent.name
    label = f"{parent}-{clips_dir.name}" if parent else clips_dir.name  # ckptA/clips → eval-ckptA-clips-…
    run_dir = _run_folder(out, f"eval-{slug(label)}-{spec_hash(spec)}")
    with exclusive_folder(run_dir):
        geometry, how = probe_geometry(rows, generation_geometry(suite, None) if suite else Geometry(4.0, 24.0, 48000, 256, 144))
        context = {"suite_file": suite.source if suite else None, "geometry": geometry.to_json(),
                   "geometry_source": how, "learned": True}
        _freeze_spec(run_dir, spec, context)
        from mova_bench.store import write_manifest

        write_manifest(run_dir / "manifest.jsonl", rows)
        log(f"run folder: {run_dir}")
        header = {"title": _title(label, suite, {}), "kind": "clips", "clips_dir": str(clips_dir), "learned": True,
                  "suite": suite.name if suite else None, "suite_version": suite.version if suite else None,
                  "suite_description": suite.description if suite else None, "seed": seed, "run_id": run_dir.name}
        inputs = {"clips_dir": str(clips_dir), "suite_file": suite.source if suite else None, "spec": spec}
        return _score(run_dir, rows, suite=suite, learned=True, geometry=geometry, metric_objs=metric_objs,
                      backbones=backbones, reference=reference, seed=seed, executor=ex, use_cache=use_cache,
                      header=header, inputs=inputs, timings={}, device=device, batch_size=batch_size)


def evaluate_run(run_dir: str | os.PathLike, *, suite_name: str | None = None, reference: str | None = None,
                 backbones: str = "auto", metrics: list[str] | None = None, executor: str = DEFAULT_EXECUTOR,
                 use_cache: bool = True, workers: int | None = None, device: str = "auto",
                 batch_size: int | None = None, profile: str | None = None) -> RunOutcome:
    """Re-score an existing run folder (``evaluate --run``): its clips are verified, never regenerated."""
    run_dir = Path(run_dir).expanduser().resolve()
    doc, rows = read_run(run_dir)
    spec = doc.get("spec") or {}
    suite = None
    if suite_name:
        suite = load_suite(suite_name)
    elif spec.get("suite"):
        try:
            suite = load_suite(doc.get("suite_file") or spec["suite"])
        except ConfigError:
            suite = load_suite(spec["suite"])
        if spec.get("suite_fingerprint") and suite.fingerprint() != spec["suite_fingerprint"]:
            raise ConfigError(
                f"suite {suite.name!r} ({suite.source}) changed since this run was made (fingerprint "
                f"{suite.fingerprint()} ≠ {spec['suite_fingerprint']}): its prompts or reference may differ",
                fix="restore the suite, start a new run with it, or pass --suite to score against it knowingly",
            )
    metric_objs = apply_profile(profile, select_metrics(metrics, backbones, backbone_params=resolve_profile(profile).analysis))
    device = check_device(device, batch_size, metric_objs)
    resolve_reference(suite, reference)
    with _open_executor(executor, workers) as ex:
        return _evaluate_run_in(run_dir, doc, rows, ex, suite=suite, metric_objs=metric_objs, backbones=backbones,
                                reference=reference, use_cache=use_cache, device=device, batch_size=batch_size)


def _evaluate_run_in(run_dir: Path, doc: dict[str, Any], rows, ex, *, suite: Suite | None, metric_objs,
                     backbones: str, reference: str | None, use_cache: bool, device: str = "cpu",
                     batch_size: int | None = None) -> RunOutcome:
    spec = doc.get("spec") or {}
    with exclusive_folder(run_dir):
        rows = verify_rows(rows)
        changed = [r for r in rows if r.get("reason") in ("changed", "missing")]
        if changed:
            log(f"warning: {len(changed)} clip(s) changed or vanished since they were recorded; they are counted as failed")
        geo = doc.get("geometry")
        geometry = Geometry(**geo) if geo else probe_geometry(rows, Geometry(4.0, 24.0, 48000, 256, 144))[0]
        learned = bool(doc.get("learned", True))
        set_params = doc.get("set") or {}
        name = spec.get("model") or Path(spec.get("clips", run_dir.name)).name
        header = {"title": _title(name, suite, set_params), "kind": spec.get("kind"), "model": spec.get("model"),
                  "model_params": spec.get("model_params"), "set": set_params, "learned": learned,
                  "clips_dir": spec.get("clips"), "suite": suite.name if suite else None,
                  "suite_version": suite.version if suite else None,
                  "suite_description": suite.description if suite else None, "seed": spec.get("seed"),
                  "samples_per_prompt": spec.get("samples_per_prompt"), "run_id": run_dir.name}
        inputs = {"run_dir": str(run_dir), "suite_file": suite.source if suite else None, "spec": spec}
        return _score(run_dir, rows, suite=suite, learned=learned, geometry=geometry, metric_objs=metric_objs,
                      backbones=backbones, reference=reference, seed=int(spec.get("seed") or 0), executor=ex,
                      use_cache=use_cache, header=header, inputs=inputs, timings={}, device=device, batch_size=batch_size)
