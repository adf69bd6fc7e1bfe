"""Text alignment: CLIP score (text–frames) and CLAP score (text–audio).

Both need learned backbones (OpenCLIP ViT-B-32, LAION-CLAP 630k-audioset-fusion). The embedded
default is weight-free, so in this build they report ``skipped`` with the reason — never a
made-up number. Conventions when a backbone is present: CLIP score = 100 × cosine, mean over
frames sampled at a fixed rate, no per-sample clamp (torchmetrics-style); CLAP score = raw cosine
(av-benchmark, JavisBench, stable-audio-metrics).
"""

from __future__ import annotations

from mova_bench.metrics.base import FeatureSet, Metric, MetricResult


class _TextAlignment(Metric):
    backbone_model = ""

    def compute(self, gen: FeatureSet, ref: FeatureSet | None, *, seed: int = 0) -> MetricResult:
        with_prompt = sum(1 for c in gen.clip_ids if (gen.meta.get(c) or {}).get("prompt_text"))
        return self.skipped(
            f"needs the {self.backbone_model} backbone (pretrained weights), which this build does not ship; "
            f"{with_prompt} of {len(gen.clip_ids)} clips have a prompt to score",
            fix="no weight loader exists yet for this backbone; the weight-free metrics above need none",
        )


class ClipScore(_TextAlignment):
    name = "clip_score"
    display_name = "CLIP score (text–video)"
    unit = "100×cos"
    higher_is_better = True
    default_backbone = "openclip-vit-b-32"
    backbone_model = "OpenCLIP ViT-B-32"
    convention = "100 × cosine(text, frame) averaged over frames sampled at 1 fps; per-sample clamp off"


class ClapScore(_TextAlignment):
    name = "clap_score"
    display_name = "CLAP score (text–audio)"
    unit = "cos"
    higher_is_better = True
    default_backbone = "laion-clap-630k-fusion"
    backbone_model = "LAION-CLAP 630k-audioset-fusion"
    convention = "raw cosine(text, audio) at 48 kHz, 10 s window (repeat then zero-pad shorter clips)"
