"""Per-clip cost of the analysis with pretrained backbones: several clips per forward pass
(``analyse_set`` in chunks, ``extract_batch``) against one clip per task (``extract``), on the CPU.

    PYTHONPATH=. python benchmarks/bench_batched_analysis.py --batched [--clips 8] [--repeats 2] [--threads 1]

Clips: ``--clips`` (8) clips of 256×144, 4 s at 24 fps, H.264 + 48 kHz AAC written by
``mova_bench.media.write_mp4`` (moving gradients and noise, a different phase per clip). Backbones:
``i3d`` (16 frames, 224×224) and ``openclip-vit-b-32`` (full-size ViT-B-32, 1 fps frames and the
prompt), with random weights registered as local weight files (the cost does not depend on their
values), fp32, no feature cache. Best of ``--repeats``, the two paths alternating so that a load
change on a shared machine hits both alike.

Printed per backbone:

* ``load``: building the model once (per process; both paths share it, so it is timed apart);
* ``backbone only``: ``extract`` per clip vs one ``extract_batch`` over the decoded clips (``--batch``
  clips per forward for I3D, frames per forward for OpenCLIP; default: each backbone's own);
* ``analyse_set``: decode + extraction through the analysis stage with the local executor, one clip
  per task (``batched=False``) vs chunks (``batched=True``) of ``--batch`` clips (the CLI's
  ``--batch-size``; default 4 on the CPU), per clip.

``--threads`` sets torch's intra-op threads (pool and Ray workers run with 1). Without ``--batched``
only the unbatched figures are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS, SECONDS, SR = 256, 144, 24.0, 4.0, 48000
PROMPTS = ("lightning over a dark field", "a drum hit in a small room", "rain on a tin roof", "a bouncing ball")


def write_clip(path: Path, phase: int) -> Path:
    from mova_bench.media import write_mp4

    n = int(round(SECONDS * FPS))
    rng = np.random.default_rng(phase)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    video = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for k in range(n):
        base = np.stack([(xx + 4 * k + 17 * phase) % 256, (yy + 2 * k) % 256, (xx + yy + 3 * k + 5 * phase) % 256], axis=-1)
        video[k] = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    t = np.arange(int(SECONDS * SR)) / SR
    audio = (0.2 * np.sin(2 * np.pi * (220 + 40 * phase) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    write_mp4(path, video, FPS, audio, SR)
    return path


def register_random_weights(tmp: Path) -> None:
    """Random weight files for ``i3d-400`` (plain state dict) and ``openclip-vit-b-32-openai``
    (safetensors), registered as local files (verified by hash like any local file)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from mova_bench import weights
    from mova_bench.features.i3d import inception_i3d

    torch.manual_seed(0)
    i3d_path = tmp / "i3d_pretrained_400.pt"
    torch.save(inception_i3d().state_dict(), i3d_path)
    weights.register_local("i3d-400", i3d_path)
    clip_path = tmp / "open_clip_model.safetensors"
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(clip_path))
    weights.register_local("openclip-vit-b-32-openai", clip_path)


def alternate(fns: dict[str, object], repeats: int) -> dict[str, float]:
    best = {k: float("inf") for k in fns}
    for _ in range(max(1, repeats)):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batched", action="store_true", help="also time the batched path and print the comparison")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--batch", type=int, default=None, help="backbone batch size (default: all clips / all frames)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--backbones", default="i3d,openclip-vit-b-32")
    args = ap.parse_args()
    if args.clips < 1 or args.repeats < 1:
        ap.error(f"--clips {args.clips} / --repeats {args.repeats}: both must be >= 1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["MOVA_BENCH_HOME"] = str(tmp / "home")
        from mova_bench.executors.local import LocalExecutor
        from mova_bench.media import decode, file_sha256
        from mova_bench.pipeline import analysis

        register_random_weights(tmp)
        rows = []
        for i in range(args.clips):
            p = write_clip(tmp / f"c{i}.mp4", i)
            rows.append({"clip_id": f"c{i}", "path": str(p), "content_hash": file_sha256(p), "status": "ok",
                         "prompt_text": PROMPTS[i % len(PROMPTS)]})
        load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
        print(f"{args.clips} clips {WIDTH}x{HEIGHT}, {SECONDS:g} s at {FPS:g} fps; torch {torch.__version__}, "
              f"{torch.get_num_threads()} intra-op thread(s), {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}; "
              f"loadavg {' '.join(load)}")
        for name in [b.strip() for b in args.backbones.split(",") if b.strip()]:
            spec = analysis.ExtractorSpec(name)
            ex = analysis._extractor(spec)
            t0 = time.perf_counter()
            ex.load("cpu")
            t_load = time.perf_counter() - t0
            ex.batch_size = args.batch
            clips = []
            for r in rows:
                c = decode(r["path"], content_hash=r["content_hash"], needs=ex.video_needs)
                c.prompt_text = r["prompt_text"]
                clips.append(c)
            fns = {"extract": lambda: [ex.extract(c) for c in clips]}
            if args.batched:
                fns["extract_batch"] = lambda: ex.extract_batch(clips)
            bb = alternate(fns, args.repeats)

            def run(batched: bool) -> None:
                with analysis.runtime(device="cpu", batch_size=args.batch):
                    fs, _ = analysis.analyse_set([dict(r) for r in rows], (spec,), LocalExecutor(), desc=f"{name} batched={batched}",
                                                 use_cache=False, batched=batched)
                assert len(fs.clip_ids) == len(rows)

            runs = {"per clip": lambda: run(False)}
            if args.batched:
                runs["chunked"] = lambda: run(True)
            ana = alternate(runs, args.repeats)
            n = len(clips)
            print(f"{name}: load {t_load:.2f} s (once per process)")
            line = f"  backbone only  extract {bb['extract'] / n * 1e3:8.1f} ms/clip"
            if args.batched:
                line += (f" | extract_batch {bb['extract_batch'] / n * 1e3:8.1f} ms/clip"
                         f"  ({bb['extract'] / bb['extract_batch']:.2f}x)")
            print(line)
            line = f"  analyse_set    one clip per task {ana['per clip'] / n * 1e3:8.1f} ms/clip"
            if args.batched:
                line += (f" | chunks of {analysis.chunk_size('cpu', args.batch)} {ana['chunked'] / n * 1e3:8.1f} ms/clip"
                         f"  ({ana['per clip'] / ana['chunked']:.2f}x)")
            print(line)
        load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
        print(f"loadavg at the end {' '.join(load)}")


if __name__ == "__main__":
    main()
