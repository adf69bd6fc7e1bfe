"""Per-clip CPU cost of the text-alignment backbones (OpenCLIP ViT-B-32, ViT-L-14, LAION-CLAP) on a
MOVA-sized clip.

    PYTHONPATH=. python benchmarks/bench_backbones_text.py [--repeats 3] [--threads N] [--skip l14,clap-fusion]

The clip: 640×352 video, 8.04 s at 24 fps (193 frames), 48 kHz mono audio, with a prompt. Random
weights (the cost does not depend on their values), fp32 on the CPU, the full-size architectures.
Printed per backbone, best of ``--repeats``:

* OpenCLIP: ``extract()`` as the harness calls it on the clip's native frames sampled at 1 fps (9
  frames): open_clip's PIL eval transform (shortest side 224 bicubic, centre crop) + ``encode_image``
  in one batch, the prompt's ``encode_text`` (first call; later clips with the same prompt reuse
  it), the scores; and the parts separately.
* LAION-CLAP (630k-audioset, and 630k-audioset-fusion, MOVA's): ``extract()`` on the 48 kHz audio
  (repeat-pad to 10 s, for fusion the log-mel; the HTSAT forward; the prompt's RoBERTa forward,
  first call).
* The decoder's share: ``decode()`` of the clip written as H.264/AAC, without and with the
  backbones' ``VideoNeed("native", fps=1)``, and the 48 kHz audio (``audio_at``; the clip's own rate,
  so no resampling).

Model build times (random init; loading real weights adds reading and hashing the file) are
printed once per backbone.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from benchcommon import best

W, H, FPS, SECONDS, SR = 640, 352, 24.0, 8.04, 48000
PROMPT = "lightning flashes over a dark sea, then thunder rolls in from far away"



def synthetic_av(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(round(SECONDS * FPS))
    yy, xx = np.mgrid[0:H, 0:W]
    frames = np.empty((n, H, W, 3), np.uint8)
    for i in range(n):
        base = (xx * 0.3 + yy * 0.2 + i * 3) % 256
        frames[i] = np.stack([base, (base * 1.7) % 256, 255 - base], -1).astype(np.uint8)
    t = np.arange(int(round(SECONDS * SR))) / SR
    audio = (0.2 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return frames, audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--skip", default="", help="comma list of b32,l14,clap,clap-fusion to leave out")
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; clip {W}x{H}, {SECONDS} s at {FPS:g} fps, {SR} Hz; best of {args.repeats}")

    from mova_bench.media import decode, write_mp4

    frames, audio = synthetic_av()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.mp4"
        write_mp4(path, frames, FPS, audio[:, None], SR)
        from mova_bench.features.openclip import OpenClipB32

        need = OpenClipB32().video_needs[0]
        t_plain, _ = best(lambda: decode(path), args.repeats)
        t_need, clip = best(lambda: decode(path, needs=(need,)), args.repeats)
        t_audio, _ = best(lambda: clip.audio_at(SR), args.repeats)
    clip.prompt_text = PROMPT
    k = clip.frames(need).shape[0]
    print(f"decode (analysis frames only)            {t_plain * 1000:8.1f} ms")
    print(f"decode + native frames at 1 fps ({k} rows) {t_need * 1000:8.1f} ms  (+{(t_need - t_plain) * 1000:.1f} ms)")
    print(f"audio_at({SR})                           {t_audio * 1000:8.1f} ms")

    rows = []
    if "b32" not in skip or "l14" not in skip:
        import open_clip

        from mova_bench.features.openclip import OpenClipL14, openclip_bundle

        for key, cls in (("b32", OpenClipB32), ("l14", OpenClipL14)):
            if key in skip:
                continue
            torch.manual_seed(0)
            t0 = time.perf_counter()
            bb = cls()
            bb.model, bb.device = openclip_bundle(open_clip.create_model(cls.arch, pretrained=None), cls.arch), "cpu"
            t_build = time.perf_counter() - t0
            f = clip.frames(need)
            with torch.no_grad():
                t_first, _ = best(lambda: (bb._text_cache.clear(), bb.extract(clip)), args.repeats)
                t_cached, _ = best(lambda: bb.extract(clip), args.repeats)
                t_img, _ = best(lambda: bb.image_embeddings(f), args.repeats)
                from PIL import Image

                t_pre, _ = best(lambda: [bb.model.preprocess(Image.fromarray(x)) for x in f], args.repeats)
                tok = bb.model.tokenizer([PROMPT])
                t_txt, _ = best(lambda: bb.model.clip.encode_text(tok), args.repeats)
            rows.append((cls.name, t_build, t_first, t_cached,
                         f"preprocess {t_pre * 1000:.0f} ms + encode_image {(t_img - t_pre) * 1000:.0f} ms ({k} frames); "
                         f"encode_text {t_txt * 1000:.0f} ms"))
    from mova_bench.features import clap as C

    for key, ck in (("clap", "630k-audioset"), ("clap-fusion", "630k-audioset-fusion")):
        if key in skip:
            continue
        from transformers import RobertaTokenizer

        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = C.create_clap_model(ck).eval()
        t_build = time.perf_counter() - t0
        bb = C.LaionClap(checkpoint=ck)
        # a stand-in tokenizer (cost of tokenising is negligible; the RoBERTa forward is what counts)
        bb.model, bb.device = C.clap_bundle(model, _StandInTokenizer(RobertaTokenizer)), "cpu"
        x = clip.audio_at(SR)
        with torch.no_grad():
            t_first, _ = best(lambda: (bb._text_cache.clear(), bb.extract(clip)), args.repeats)
            t_cached, _ = best(lambda: bb.extract(clip), args.repeats)
            t_in, _ = best(lambda: C.audio_input(torch.from_numpy(x), fusion=bb.fusion), args.repeats)
        rows.append((f"laion-clap ({ck})", t_build, t_first, t_cached,
                     f"input (repeat-pad{', log-mel' if bb.fusion else ''}) {t_in * 1000:.0f} ms; "
                     f"audio forward ~{(t_cached - t_in) * 1000:.0f} ms; text forward ~{(t_first - t_cached) * 1000:.0f} ms"))

    print()
    print(f"{'backbone':34s} {'build s':>8s} {'clip, new prompt':>17s} {'clip, cached prompt':>20s}  parts")
    for name, tb, tf, tc, parts in rows:
        print(f"{name:34s} {tb:8.1f} {tf * 1000:14.0f} ms {tc * 1000:17.0f} ms  {parts}")


class _StandInTokenizer:
    """roberta-shaped ids for the benchmark (no vocab files needed): 20 tokens + padding to 77."""

    def __init__(self, _cls):
        pass

    def __call__(self, texts, **_):
        import torch

        ids = torch.ones((len(texts), 77), dtype=torch.long)
        ids[:, 0], ids[:, 1:20], ids[:, 20] = 0, torch.arange(100, 119), 2
        mask = (ids != 1).long()
        return {"input_ids": ids, "attention_mask": mask}


if __name__ == "__main__":
    main()
