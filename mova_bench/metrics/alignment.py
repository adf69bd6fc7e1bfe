"""Text alignment: CLIP score (prompt–frames) and CLAP score (prompt–audio).

Both are means over clips of a per-clip score that the backbone computes
(:mod:`mova_bench.features.openclip`, :mod:`mova_bench.features.clap`), with a 95% percentile
bootstrap CI over clips (:func:`mova_bench.stats.bootstrap_ci`, 1000 resamples, seeded with the
run seed). No reference set is needed.

* ``clip_score[openclip-vit-b-32]`` (default; also ``openclip-vit-l-14``): per clip, torchmetrics'
  ``CLIPScore`` of the clip's frames sampled at 1 fps against its prompt: ``100 × cos`` per frame,
  averaged over the frames, the mean clamped at 0 (no per-frame clamp; the CLIPScore paper's
  ``2.5 × max(cos, 0)`` is not used).
* ``clap_score[laion-clap]``: per clip the raw cosine of the LAION-CLAP audio and prompt
  embeddings (no ×100; av-benchmark, JavisBench, stable-audio-metrics), default checkpoint
  630k-audioset-fusion (MOVA); the checkpoint is recorded in ``extra``. Scores of different
  checkpoints are not comparable.

Clips without prompt text (e.g. a folder of clips given without prompts) have no score — the
analysis gives them no features of a text backbone (``missing_features`` of their manifest row), or
the backbone returns ``has_text = 0`` — they are counted (``extra.n_without_prompt``, and in
``extra.n_total``), named in a warning and left out of the mean; ``n`` is the number of scored clips. With no scored clip at all the metric is skipped with the reason.
Per clip (per_clip.parquet): the column ``clip_score[<backbone>]`` / ``clap_score[<backbone>]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mova_bench.metrics.base import FeatureSet, Metric, MetricResult
from mova_bench.stats import N_BOOTSTRAP, bootstrap_ci

NO_PROMPT_FIX = (
    "give every clip its prompt: generate from a suite (prompts carry text), or when scoring a folder of "
    "clips pass the prompts with it (a prompts file / sidecar .txt per clip)"
)


class _TextAlignment(Metric):
    """Mean over clips of the backbone's per-clip ``score_key``, bootstrap CI over clips."""

    score_key = ""
    needs_reference = False
    requires = ("{backbone}",)
    backbone_modality = None

    def _convention(self, extra: dict[str, Any]) -> str:
        return self.convention

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        per = gen.features.get(self.backbone or "", {})
        scores: dict[str, float] = {}
        no_prompt: list[str] = []
        not_finite: list[str] = []
        truncated = 0
        checkpoints: set[str] = set()
        n_total = 0
        n_missing = 0
        for cid in gen.clip_ids:
            feats = per.get(cid)
            if feats is None:
                # the analysis gives a text backbone no clip without a prompt (AnalysisResult.missing)
                meta = gen.meta.get(cid) or {}
                reason = str((meta.get("missing_features") or {}).get(self.backbone or "", ""))
                if "prompt" in reason or ("prompt_text" in meta and not str(meta.get("prompt_text") or "").strip()):
                    n_total += 1
                    no_prompt.append(cid)
                else:
                    n_missing += 1
                continue
            n_total += 1
            if "checkpoint" in feats:
                checkpoints.add(str(np.asarray(feats["checkpoint"])))
            has_text = int(np.asarray(feats.get("has_text", 1)))
            if not has_text:
                no_prompt.append(cid)
                continue
            truncated += int(np.asarray(feats.get("text_truncated", 0)))
            value = float(np.asarray(feats[self.score_key]))
            if not math.isfinite(value):
                not_finite.append(cid)
                continue
            scores[cid] = value
        extra: dict[str, Any] = {
            "backbone": self.backbone, "n_total": n_total, "n_without_prompt": len(no_prompt),
            "clips_without_prompt": no_prompt[:20], "n_not_finite": len(not_finite),
        }
        if truncated:
            extra["n_prompts_truncated"] = truncated
        if checkpoints:
            extra["checkpoint"] = sorted(checkpoints)[0] if len(checkpoints) == 1 else sorted(checkpoints)
        if n_missing:
            extra["n_missing_features"] = n_missing
        if n_total == 0:
            return self.skipped(f"no clip has {self.backbone} features (nothing was scored)",
                                "check that the run's clips decoded (see manifest.jsonl status) and rerun the evaluation",
                                extra=extra)
        if not scores:
            why = (f"none of the {n_total} clips has prompt text" if len(no_prompt) == n_total
                   else f"no clip has a finite score ({len(no_prompt)} without prompt text, {len(not_finite)} not finite)")
            return self.skipped(why, NO_PROMPT_FIX, extra=extra)
        ids = list(scores)
        values = np.array([scores[c] for c in ids], dtype=np.float64)
        lo, hi = bootstrap_ci(values, np.mean, seed=seed)
        warnings = []
        if values.size < 2:
            warnings.append("a single scored clip: no confidence interval")
        else:
            extra["ci_method"] = f"percentile bootstrap over clips ({N_BOOTSTRAP} resamples, seed {seed})"
        if no_prompt:
            warnings.append(f"{len(no_prompt)} of {n_total} clips have no prompt text and are not scored "
                            f"(e.g. {', '.join(no_prompt[:3])})")
        if not_finite:
            warnings.append(f"{len(not_finite)} clip(s) gave a non-finite score and are left out")
        if truncated:
            warnings.append(f"{truncated} prompt(s) are longer than the text encoder's 77 tokens and were truncated")
        res = self.result(float(values.mean()), n=int(values.size), ci_low=None if math.isnan(lo) else lo,
                          ci_high=None if math.isnan(hi) else hi, extra=extra, per_clip=scores, warnings=warnings)
        res.convention = self._convention(extra)
        return res


class ClipScore(_TextAlignment):
    name = "clip_score"
    display_name = "CLIP score (text–video)"
    unit = "100×cos"
    higher_is_better = True
    default_backbone = "openclip-vit-b-32"
    score_key = "clip_score"
    convention = (
        "torchmetrics CLIPScore per clip: 100 × cosine(prompt, frame) of L2-normalised OpenCLIP (OpenAI weights, "
        "QuickGELU) embeddings, frames sampled at 1 fps from the native decode, open_clip eval transform (shortest "
        "side 224 bicubic, centre crop 224, CLIP mean/std), 77-token prompt; mean over the clip's frames clamped at 0 "
        "(no per-frame clamp). Value: mean over clips with a prompt; 95% percentile bootstrap CI over clips"
    )


class ClapScore(_TextAlignment):
    name = "clap_score"
    display_name = "CLAP score (text–audio)"
    unit = "cos"
    higher_is_better = True
    default_backbone = "laion-clap"
    score_key = "clap_score"
    convention = (
        "raw cosine(prompt, audio) of L2-normalised LAION-CLAP embeddings (no ×100), 48 kHz mono without int16 "
        "round trip, 10 s window: shorter clips repeated then zero-padded, longer ones cropped deterministically; "
        "RoBERTa prompt (77 tokens). Value: mean over clips with a prompt; 95% percentile bootstrap CI over clips"
    )

    def _convention(self, extra: dict[str, Any]) -> str:
        ck = extra.get("checkpoint")
        return self.convention + (f"; checkpoint {ck}" if ck else "")
