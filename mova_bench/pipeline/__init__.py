"""The pipeline, one stage per module, in the order data flows:

``requests`` (suite × model → clip requests) → ``generation`` (clips/*.mp4 + manifest.jsonl) →
``ingest`` (folders of clips made elsewhere, run folders read back) → ``reference`` (the set the
clips are compared with) → ``analysis`` (decode once, cached features) → ``scoring`` (metrics) →
``outputs`` (per_clip.parquet, metrics.json, provenance.json, report.html).

``runs`` orchestrates them: a run folder is keyed by what *generation* depends on; how clips are
scored is an evaluation spec kept apart inside it (``evals/<id>/``), so re-scoring never
regenerates a clip.
"""

from mova_bench.pipeline.ingest import CLIP_SUFFIXES, folder_rows
from mova_bench.pipeline.outputs import RunOutcome
from mova_bench.pipeline.requests import REFERENCE_SEED_BASE, build_requests, parse_set
from mova_bench.pipeline.runs import evaluate, evaluate_run, run

__all__ = [
    "CLIP_SUFFIXES", "REFERENCE_SEED_BASE", "RunOutcome", "build_requests", "evaluate", "evaluate_run",
    "folder_rows", "parse_set", "run",
]
