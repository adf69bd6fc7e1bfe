"""The Python API behind ``mova-bench run`` and ``mova-bench evaluate``.

suite → clip requests → generator → clips/*.mp4 + manifest.jsonl → decode once → features
(cached) → metrics → per_clip.parquet + metrics.json + provenance.json → report.html
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench import __version__
from mova_bench.analysis import AnalysisTask, ExtractorSpec, analyse_clip
from mova_bench.cache import home as cache_home
from mova_bench.cards import ModelCard, load_card
from mova_bench.errors import ConfigError, MediaError
from mova_bench.executors import TaskFailure, get_executor
from mova_bench.generators.base import ClipRequest
from mova_bench.media import file_sha256, probe_streams, write_mp4
from mova_bench.metrics.base import FeatureSet, Metric, MetricResult
from mova_bench.registry import features as feature_registry
from mova_bench.registry import metrics as metric_registry
from mova_bench.store import (
    atomic_path, exclusive_folder, read_json, read_manifest, sanitize_floats, slug, spec_hash, write_json_atomic, write_manifest,
)
from mova_bench.suites import Suite, load_suite

DEFAULT_METRICS = (
    "fd_video", "fd_audio", "kid_video", "kid_audio", "sync_offset_ms", "sync_offset_abs_ms",
    "in_sync_rate", "av_align", "detector_auc", "clip_score", "clap_score",
)
#: reference renders use seeds from here up, disjoint from every evaluation seed (< 2**40)
REFERENCE_SEED_BASE = 2**40
BACKBONE_SETS = {
    "classical": {"video": "vstats", "audio": "melstats"},
    "standard": {"video": "i3d", "audio": "vggish"},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- specs and requests


def parse_set(values: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` → dict; values stay strings, the generator coerces them by its schema."""
    out: dict[str, Any] = {}
    for item in values or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set av_offset_ms=80")
        k, _, v = item.partition("=")
        out[k.strip()] = v.strip()
    return out


def build_requests(suite: Suite, card: ModelCard | None, *, seed: int, samples_per_prompt: int,
                   seed_offset: int = 0) -> list[ClipRequest]:
    d = suite.defaults
    g = card.generation if card is not None else None
    fps = (g.fps if g and g.fps else d.fps)
    duration = d.duration_s
    if g and g.num_frames:
        duration = g.num_frames / fps
    elif g and g.duration_s:
        duration = g.duration_s
    requests = []
    for pi, p in enumerate(suite.prompts):
        for s in range(samples_per_prompt):
            requests.append(ClipRequest(
                clip_id=f"{p.id}__s{s}",
                prompt_id=p.id,
                prompt_text=p.text,
                seed=int(seed_offset + seed * 100_003 + pi * 1_000 + s),
                sample_index=s,
                duration_s=float(duration),
                fps=float(fps),
                sample_rate=int(g.sample_rate if g and g.sample_rate else d.sample_rate),
                width=int(g.width if g and g.width else d.width),
                height=int(g.height if g and g.height else d.height),
                first_frame=p.first_frame,
                tags=tuple(p.tags),
                expected_offset_ms=tuple(p.expected_offset_ms) if p.expected_offset_ms else None,
            ))
    return requests


def select_metrics(names: list[str] | None, backbones: str) -> list[Metric]:
    if backbones not in ("auto", "classical", "standard"):
        raise ConfigError(f"--backbones {backbones!r}: expected one of auto, classical, standard")
    chosen = BACKBONE_SETS["standard" if backbones == "standard" else "classical"]
    out = []
    for raw in names or list(DEFAULT_METRICS):
        name, _, bb = raw.partition("[")
        bb = bb.rstrip("]") or None
        cls = metric_registry.get(name)
        if bb is None and cls.backbone_modality in ("video", "audio") and cls.default_backbone in BACKBONE_SETS["classical"].values():
            bb = chosen[cls.backbone_modality]
        out.append(cls(backbone=bb))
    return out


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenTask:
    request: ClipRequest
    out_path: str
    model: str
    params: tuple[tuple[str, Any], ...]
    card_path: str | None


_generators: dict[Any, Any] = {}


def _generator_for(model: str, params: dict[str, Any], card_path: str | None):
    key = (model, tuple(sorted(params.items())), card_path)
    if key not in _generators:
        card = load_card(card_path or model)
        gen = card.adapter_class()(card_defaults=card.defaults, card=card, **params)
        gen.load()
        _generators[key] = gen
    return _generators[key]


def generate_clip(task: GenTask) -> dict[str, Any]:
    """Generate one clip and write it atomically; returns the manifest fields it fills."""
    gen = _generator_for(task.model, dict(task.params), task.card_path)
    t0 = time.perf_counter()
    clip = gen.generate(task.request)
    with atomic_path(task.out_path, suffix=".mp4") as tmp:
        write_mp4(tmp, clip.video, clip.fps, clip.audio, clip.sample_rate)
        streams = probe_streams(tmp)
        if not streams["audio"]:
            raise MediaError("no_audio_stream", "the generator's output has no audio stream", task.out_path)
    info = dict(clip.info)
    return {
        "content_hash": file_sha256(task.out_path),
        "duration_s": clip.video.shape[0] / clip.fps,
        "fps": clip.fps,
        "sample_rate": clip.sample_rate,
        "width": int(clip.video.shape[2]),
        "height": int(clip.video.shape[1]),
        "first_frame_source": info.pop("first_frame_source", "suite" if task.request.first_frame else None),
        "info": {**info, "generation_s": round(time.perf_counter() - t0, 4)},
    }


def manifest_row(req: ClipRequest, model: str, params: dict[str, Any], path: str) -> dict[str, Any]:
    return {
        "clip_id": req.clip_id, "prompt_id": req.prompt_id, "prompt_text": req.prompt_text,
        "seed": req.seed, "sample_index": req.sample_index, "generator": model, "generator_args": params,
        "path": path, "duration_s": req.duration_s, "fps": req.fps, "sample_rate": req.sample_rate,
        "width": req.width, "height": req.height, "content_hash": None, "status": "pending",
        "error": None, "reason": None, "first_frame": req.first_frame, "first_frame_source": None,
        "expected_offset_ms": list(req.expected_offset_ms) if req.expected_offset_ms else None,
        "tags": list(req.tags), "info": {},
    }


def clip_is_done(row: dict[str, Any], path: Path) -> bool:
    return (row.get("status") == "ok" and path.is_file() and row.get("content_hash")
            and file_sha256(path) == row["content_hash"])


def generate_set(requests: list[ClipRequest], *, model: str, params: dict[str, Any], card: ModelCard,
                 clips_dir: Path, manifest_path: Path, executor, desc: str) -> list[dict[str, Any]]:
    """Generate what is missing, resuming from the manifest (finished clips verified by hash)."""
    existing = {r["clip_id"]: r for r in read_manifest(manifest_path)}
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for req in requests:
        path = clips_dir / f"{slug(req.clip_id)}.mp4"
        old = existing.get(req.clip_id)
        if old is not None and clip_is_done(old, path):
            rows[req.clip_id] = old
            continue
        rows[req.clip_id] = manifest_row(req, model, params, str(path))
        todo.append(GenTask(req, str(path), model, tuple(sorted(params.items())), card.source))
    if todo:
        clips_dir.mkdir(parents=True, exist_ok=True)
        order = [r.clip_id for r in requests]
        for task, result in executor.map(generate_clip, todo, desc=desc):
            row = rows[task.request.clip_id]
            if isinstance(result, TaskFailure):
                row.update(status="failed", error=result.error, reason=result.reason)
            else:
                row.update(result, status="ok", error=None, reason=None)
            write_manifest(manifest_path, [rows[c] for c in order])
    else:
        write_manifest(manifest_path, [rows[r.clip_id] for r in requests])
    return [rows[r.clip_id] for r in requests]


# --------------------------------------------------------------------------- analysis


def extractor_specs(metric_objs: list[Metric], suite: Suite | None) -> tuple[ExtractorSpec, ...]:
    names: list[str] = []
    for m in metric_objs:
        for r in m.required_extractors():
            if r and r not in names and r in feature_registry:
                names.append(r)
    params = {"sync_dsp": {"max_lag_ms": float(suite.defaults.sync_max_lag_ms)}} if suite is not None else {}
    return tuple(ExtractorSpec(n, tuple(sorted(params.get(n, {}).items()))) for n in names)


def analyse_set(rows: list[dict[str, Any]], specs: tuple[ExtractorSpec, ...], executor, *, desc: str,
                use_cache: bool = True) -> tuple[FeatureSet, dict[str, Any]]:
    """Features for every ok clip of ``rows``; a clip that fails analysis is marked failed in place."""
    fs = FeatureSet(clip_ids=[], features={s.name: {} for s in specs})
    stats = {"cache_hits": 0, "decoded": 0}
    tasks = [AnalysisTask(r["clip_id"], r["path"], r["content_hash"], specs, None, use_cache)
             for r in rows if r.get("status") == "ok"]
    by_id = {r["clip_id"]: r for r in rows}
    results: dict[str, Any] = {}
    for task, res in executor.map(analyse_clip, tasks, desc=desc):
        results[task.clip_id] = res
    for r in rows:  # keep manifest order, whatever order tasks finished in
        res = results.get(r["clip_id"])
        if res is None:
            continue
        if isinstance(res, TaskFailure):
            by_id[r["clip_id"]].update(status="failed", error=res.error, reason=res.reason)
            continue
        fs.clip_ids.append(r["clip_id"])
        fs.meta[r["clip_id"]] = r
        for name, arrays in res.features.items():
            fs.features.setdefault(name, {})[r["clip_id"]] = arrays
        stats["cache_hits"] += res.cache_hits
        stats["decoded"] += int(res.decoded)
    return fs, stats


# --------------------------------------------------------------------------- reference sets


def analyse_reference(rows: list[dict[str, Any]], specs, executor, info: dict[str, Any], use_cache: bool) -> FeatureSet:
    """Features of the reference set; its size and failures are recorded in ``info`` (never hidden)."""
    fs, _ = analyse_set(rows, specs, executor, desc="analysing reference", use_cache=use_cache)
    failed = [r for r in rows if r.get("status") != "ok"]
    info.update(n_clips=len(rows), n_failed=len(failed))
    if failed:
        info["failures"] = {r["clip_id"]: r.get("reason") for r in failed[:50]}
        log(f"warning: {len(failed)} of {len(rows)} reference clips failed and are left out (see metrics.json 'reference')")
    return fs


def reference_rows(suite: Suite, executor, *, out_root: Path | None = None) -> tuple[list[dict[str, Any]] | None, dict[str, Any], dict[str, Any]]:
    """Rows (manifest-like) of the suite's reference set, or precomputed stats. Returns (rows, stats, info)."""
    ref = suite.reference
    if ref.kind == "procedural":
        card = load_card("procedural")
        n = ref.samples_per_prompt or suite.defaults.samples_per_prompt
        spec = {"suite": suite.name, "fingerprint": suite.fingerprint(), "n": n, "seed": ref.seed, "v": 1}
        root = (out_root or cache_home() / "references") / f"{slug(suite.name)}-{spec_hash(spec)}"
        reqs = build_requests(suite, card, seed=0, samples_per_prompt=n, seed_offset=REFERENCE_SEED_BASE + ref.seed)
        reqs = [ClipRequest(**{**r.__dict__, "clip_id": "ref:" + r.clip_id}) for r in reqs]
        with exclusive_folder(root):
            rows = generate_set(reqs, model="procedural", params={}, card=card, clips_dir=root / "clips",
                                manifest_path=root / "manifest.jsonl", executor=executor, desc="reference clips")
        return rows, {}, {"kind": "procedural", "path": str(root), "samples_per_prompt": n, "seed": ref.seed}
    if ref.kind == "clips":
        rows = folder_rows(Path(_ref_path(suite, ref.path)), suite, prefix="ref:")
        return rows, {}, {"kind": "clips", "path": ref.path}
    stats = load_reference_stats(_ref_path(suite, ref.path))
    return None, stats, {"kind": "stats", "path": ref.path}


def reference_features(suite: Suite, specs, executor, use_cache: bool) -> tuple[FeatureSet | None, dict[str, Any]]:
    """The suite's reference set as a FeatureSet (per-clip features, or precomputed statistics) and its info."""
    rows, stats, info = reference_rows(suite, executor)
    if rows is not None:
        return analyse_reference(rows, specs, executor, info, use_cache), info
    return (FeatureSet(clip_ids=[], stats=stats) if stats else None), info


def _ref_path(suite: Suite, path: str | None) -> str:
    p = Path(path or "")
    if not p.is_absolute() and suite.source:
        cand = Path(suite.source).parent / p
        if cand.exists():
            return str(cand)
    if not p.exists():
        raise ConfigError(f"reference path {path!r} of suite {suite.name!r} does not exist")
    return str(p)


def load_reference_stats(path: str) -> dict[str, Any]:
    from mova_bench.metrics.frechet import RunningStats

    out = {}
    with np.load(path, allow_pickle=False) as z:
        names = sorted({k.split("/")[0] for k in z.files if "/" in k})
    for name in names:
        out[name] = RunningStats.from_npz(path, prefix=f"{name}/")
    if not out:
        raise ConfigError(f"{path}: no statistics inside; build one with `mova-bench reference build --suite S --out FILE`")
    return out


# --------------------------------------------------------------------------- evaluate folder


CLIP_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def folder_rows(clips_dir: Path, suite: Suite | None, prefix: str = "") -> list[dict[str, Any]]:
    """Manifest rows for every file in a folder (nothing is copied or modified)."""
    if not clips_dir.is_dir():
        raise ConfigError(f"--clips {str(clips_dir)!r} is not a folder; give the folder holding your .mp4 files")
    prompts_file = clips_dir / "prompts.jsonl"
    prompt_map: dict[str, dict[str, Any]] = {}
    if prompts_file.exists():
        for i, line in enumerate(prompts_file.read_text().splitlines(), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise ConfigError(f"{prompts_file}:{i}: not JSON; expected {{\"clip\": \"name.mp4\", \"prompt\": \"...\"}}") from None
                key = Path(str(obj.get("clip") or obj.get("file") or obj.get("id") or "")).stem
                prompt_map[key] = obj
    entries = sorted(p for p in clips_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    files = [p for p in entries if p.suffix.lower() in CLIP_SUFFIXES]
    ignored = [p.name for p in entries if p not in files and p.name != "prompts.jsonl"]
    if ignored:
        log(f"ignoring {len(ignored)} file(s) without a video extension ({', '.join(CLIP_SUFFIXES)}): "
            f"{', '.join(ignored[:5])}{' …' if len(ignored) > 5 else ''}")
    stems = [f.stem for f in files]
    rows = []
    for f in files:
        stem = f.stem if stems.count(f.stem) == 1 else f.name  # a.mp4 and a.mov stay two clips
        pid, text, exp = None, None, None
        if stem in prompt_map:
            obj = prompt_map[stem]
            pid = obj.get("prompt_id") or stem
            text = obj.get("prompt") or obj.get("text")
        if suite is not None:
            p = suite.prompt(pid or stem) or suite.prompt(stem.split("__")[0])
            if p is not None:
                pid, text, exp = p.id, text or p.text, p.expected_offset_ms
        row = {
            "clip_id": prefix + stem, "prompt_id": pid, "prompt_text": text, "seed": None, "sample_index": None,
            "generator": "files", "generator_args": {}, "path": str(f.resolve()), "duration_s": None, "fps": None,
            "sample_rate": None, "width": None, "height": None, "content_hash": None, "status": "ok",
            "error": None, "reason": None, "first_frame": None, "first_frame_source": None,
            "expected_offset_ms": list(exp) if exp else None, "tags": [], "info": {},
        }
        try:
            if f.stat().st_size == 0:
                raise MediaError("empty", "file has 0 bytes", str(f))
            row["content_hash"] = file_sha256(f)
        except MediaError as exc:
            row.update(status="failed", reason=exc.reason, error=str(exc))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- metrics and outputs


def compute_metrics(metric_objs: list[Metric], gen: FeatureSet, ref: FeatureSet | None, seed: int) -> dict[str, MetricResult]:
    out: dict[str, MetricResult] = {}
    for m in metric_objs:
        missing = [r for r in m.required_extractors() if r and r not in feature_registry]
        try:
            if missing:
                res = m.skipped(
                    f"backbone {', '.join(missing)} is not available in this build (it needs pretrained weights)",
                    fix="use --backbones classical (weight-free backbones) for now",
                )
            elif m.needs_reference and ref is None:
                res = m.skipped("no reference set", fix="give the suite a `reference:` or pass --reference")
            else:
                res = m.compute(gen, ref, seed=seed)
        except Exception as exc:  # noqa: BLE001 - a metric failure is reported, never hidden
            res = m.result(None, status="failed", reason=f"{type(exc).__name__}: {exc}")
        out[res.key] = res
    return out


def write_per_clip(path: Path, rows: list[dict[str, Any]], results: dict[str, MetricResult],
                   gen: FeatureSet) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, list[Any]] = {k: [] for k in ("clip_id", "prompt_id", "seed", "status", "reason", "error", "path", "content_hash")}
    metric_cols = {r.per_clip_column: r.per_clip for r in results.values() if r.per_clip}
    out_metric: dict[str, list[Any]] = {k: [] for k in metric_cols}
    sync_cols: dict[str, list[Any]] = {"sync_status": [], "sync_offset_raw_ms": [], "sync_confidence": []}
    sync = gen.features.get("sync_dsp", {})

    def num(v: Any) -> float | None:
        return None if v is None or not np.isfinite(float(v)) else float(v)

    for r in rows:
        for k in cols:
            cols[k].append(r.get(k))
        for k, per in metric_cols.items():
            out_metric[k].append(num(per.get(r["clip_id"])))
        s = sync.get(r["clip_id"]) or {}
        sync_cols["sync_status"].append(str(s["status"]) if "status" in s else None)
        sync_cols["sync_offset_raw_ms"].append(num(s.get("offset_ms")))
        sync_cols["sync_confidence"].append(num(s.get("confidence")))
    if not sync:
        sync_cols = {}
    table = pa.table({**cols, **out_metric, **sync_cols})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def provenance(inputs: dict[str, Any]) -> dict[str, Any]:
    import platform
    import subprocess
    from importlib import metadata

    pkgs = {}
    for name in ("numpy", "scipy", "av", "soxr", "opencv-python-headless", "scikit-learn", "librosa", "pydantic", "pyarrow", "torch"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    git = None
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import av

        ffmpeg = {k: str(v) for k, v in av.library_versions.items()}
    except Exception:  # noqa: BLE001
        ffmpeg = {}
    return {
        "mova_bench": __version__, "git_commit": git, "python": platform.python_version(),
        "platform": platform.platform(), "device": "cpu", "packages": pkgs, "ffmpeg_libraries": ffmpeg,
        "inputs": inputs,
    }


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    n_clips: int
    n_failed: int
    metrics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 3 if self.n_failed else 0

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "status": self.status, "n_clips": self.n_clips,
                "n_failed": self.n_failed, "metrics": self.metrics}


def _freeze_spec(run_dir: Path, spec: dict[str, Any]) -> None:
    path = run_dir / "run_spec.json"
    if path.exists():
        old = read_json(path)
        if old.get("spec") != json.loads(json.dumps(spec, default=str)):
            raise ConfigError(f"{run_dir} holds a run with a different spec; use another --out or delete that folder")
    else:
        write_json_atomic(path, {"spec": spec, "mova_bench": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def finish(run_dir: Path, rows: list[dict[str, Any]], gen: FeatureSet, ref: FeatureSet | None,
           metric_objs: list[Metric], seed: int, inputs: dict[str, Any], title: str,
           timings: dict[str, float]) -> RunOutcome:
    t0 = time.perf_counter()
    results = compute_metrics(metric_objs, gen, ref, seed)
    timings["metrics_s"] = round(time.perf_counter() - t0, 3)
    write_manifest(run_dir / "manifest.jsonl", rows)
    write_per_clip(run_dir / "per_clip.parquet", rows, results, gen)
    failed = [r for r in rows if r.get("status") != "ok"]
    failures: dict[str, int] = {}
    for r in failed:
        failures[r.get("reason") or "error"] = failures.get(r.get("reason") or "error", 0) + 1
    metrics_json = {k: sanitize_floats(v.to_json()) for k, v in results.items()}
    status = "ok" if not failed else "partial"
    doc = {"status": status, "n_clips": len(rows), "n_failed": len(failed), "failures": failures,
           "reference": inputs.get("reference"), "metrics": metrics_json, "title": title}
    write_json_atomic(run_dir / "metrics.json", doc, sort_keys=False)  # metrics in the order asked for
    write_json_atomic(run_dir / "provenance.json", sanitize_floats({**provenance(inputs), "timings": timings}))
    from mova_bench.report import write_report

    write_report(run_dir)
    return RunOutcome(run_dir, status, len(rows), len(failed), metrics_json, timings)


def run(model: str, suite_name: str, *, out: str | os.PathLike = "runs", seed: int | None = None,
        samples_per_prompt: int | None = None, params: dict[str, Any] | None = None,
        backbones: str = "auto", metrics: list[str] | None = None, executor: str = "local",
        use_cache: bool = True) -> RunOutcome:
    """Generate the suite's clips with ``model`` and evaluate them against its reference set."""
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    suite = load_suite(suite_name)
    card = load_card(model)
    params = dict(params or {})
    gen_cls = card.adapter_class()
    generator = gen_cls(card_defaults=card.defaults, card=card, **params)  # validates --set keys
    generator.check_available()
    seed = suite.defaults.seed if seed is None else seed
    if not 0 <= seed < 10**6:
        raise ConfigError(f"--seed {seed}: expected an integer in [0, 1000000)")
    n = samples_per_prompt or suite.defaults.samples_per_prompt
    if not 1 <= n <= 1000:
        raise ConfigError(f"--samples-per-prompt {n}: expected 1..1000")
    requests = build_requests(suite, card, seed=seed, samples_per_prompt=n)
    for req in requests:
        generator.validate_request(req)
    metric_objs = select_metrics(metrics, backbones)
    ex = get_executor(executor)
    spec = {
        "kind": "run", "model": card.name, "model_params": generator.params, "suite": suite.name,
        "suite_version": suite.version, "suite_fingerprint": suite.fingerprint(), "seed": seed,
        "samples_per_prompt": n, "backbones": backbones, "metrics": [m.key for m in metric_objs],
    }
    run_dir = Path(out) / f"{slug(card.name)}-{slug(suite.name)}-{spec_hash(spec)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(run_dir):
        _freeze_spec(run_dir, spec)
        log(f"run folder: {run_dir}")
        t0 = time.perf_counter()
        rows = generate_set(requests, model=card.name, params=generator.params, card=card,
                            clips_dir=run_dir / "clips", manifest_path=run_dir / "manifest.jsonl", executor=ex,
                            desc=f"generating ({card.name})")
        timings["generate_s"] = round(time.perf_counter() - t0, 3)
        specs = extractor_specs(metric_objs, suite)
        t0 = time.perf_counter()
        gen_fs, gstats = analyse_set(rows, specs, ex, desc="analysing clips", use_cache=use_cache)
        ref_fs, ref_info = reference_features(suite, specs, ex, use_cache)
        timings["analyse_s"] = round(time.perf_counter() - t0, 3)
        inputs = {"suite_file": suite.source, "suite_sha256": file_sha256(suite.source) if suite.source else None,
                  "model_card": card.source, "model_card_sha256": file_sha256(card.source) if card.source else None,
                  "reference": ref_info, "cache": {"hits": gstats["cache_hits"], "clips_decoded": gstats["decoded"]}}
        timings["total_before_metrics_s"] = round(time.perf_counter() - t_start, 3)
        title = f"{card.display_name or card.name} on {suite.name} v{suite.version}"
        return finish(run_dir, rows, gen_fs, ref_fs, metric_objs, seed, {**inputs, "spec": spec}, title, timings)


def evaluate(clips: str | os.PathLike, *, suite_name: str | None = None, reference: str | None = None,
             out: str | os.PathLike = "runs", backbones: str = "auto", metrics: list[str] | None = None,
             executor: str = "local", seed: int = 0, use_cache: bool = True) -> RunOutcome:
    """Evaluate a folder of clips generated elsewhere (the files are read, never modified)."""
    timings: dict[str, float] = {}
    clips_dir = Path(clips).resolve()
    suite = load_suite(suite_name) if suite_name else None
    if reference:
        ref_path = Path(reference)
        if suite is None:
            raise ConfigError("--reference needs --suite (the suite names the prompts); or put `reference:` in the suite")
        kind = "stats" if ref_path.suffix == ".npz" else "clips"
        suite = suite.model_copy(update={"reference": suite.reference.model_copy(update={"kind": kind, "path": str(ref_path.resolve())})})
    rows = folder_rows(clips_dir, suite)
    if not rows:
        raise ConfigError(f"--clips {str(clips_dir)!r} holds no files; expected .mp4 clips")
    metric_objs = select_metrics(metrics, backbones)
    ex = get_executor(executor)
    listing = {r["clip_id"]: r["content_hash"] for r in rows}
    spec = {"kind": "evaluate", "clips": str(clips_dir), "suite": suite.name if suite else None,
            "suite_fingerprint": suite.fingerprint() if suite else None, "backbones": backbones,
            "metrics": [m.key for m in metric_objs], "reference": reference, "files": spec_hash(listing)}
    run_dir = Path(out) / f"eval-{slug(clips_dir.name)}-{spec_hash(spec)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(run_dir):
        _freeze_spec(run_dir, spec)
        log(f"run folder: {run_dir}")
        specs = extractor_specs(metric_objs, suite)
        t0 = time.perf_counter()
        gen_fs, gstats = analyse_set(rows, specs, ex, desc="analysing clips", use_cache=use_cache)
        ref_fs, ref_info = None, None
        if suite is not None:
            ref_fs, ref_info = reference_features(suite, specs, ex, use_cache)
        timings["analyse_s"] = round(time.perf_counter() - t0, 3)
        inputs = {"clips_dir": str(clips_dir), "reference": ref_info, "suite_file": suite.source if suite else None,
                  "cache": {"hits": gstats["cache_hits"], "clips_decoded": gstats["decoded"]}, "spec": spec}
        title = f"{clips_dir.name}" + (f" on {suite.name} v{suite.version}" if suite else "")
        return finish(run_dir, rows, gen_fs, ref_fs, metric_objs, seed, inputs, title, timings)
