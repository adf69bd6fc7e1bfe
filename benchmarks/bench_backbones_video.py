"""Per-clip CPU cost of the video backbones (I3D for FVD, torch-fidelity's InceptionV3 for frame FID)
on a MOVA-sized clip, with the harness overhead around them (decode and preprocessing).

    PYTHONPATH=. python benchmarks/bench_backbones_video.py [--repeats 2] [--threads N]

Clip: 640×352, 8.04 s at 24 fps (193 frames, MOVA's size and length), H.264 + 48 kHz AAC written by
``mova_bench.media.write_mp4`` (moving colour gradients and noise, so the encoder has work). Random
weights (the cost does not depend on their values), fp32 on the CPU, best of ``--repeats``.

Printed:

* decode: the analysis pass alone (frames at ≤ 256 px, audio), then with each backbone's
  :class:`~mova_bench.media.VideoNeed` added (I3D: the first 16 native frames; InceptionV3: native
  frames at 1 fps) and with both — the difference is what each backbone adds to the shared decode;
* per backbone: preprocessing (I3D: uint8 → 224×224 float in [−1, 1], cd-fvd's resize; InceptionV3:
  uint8 → (N, 3, H, W) tensor, its 299-px resize is inside the network), the forward pass, and
  ``extract()`` as the harness calls it (preprocessing + forward + the base class's no-grad/TF32
  guard and numpy conversion).

``--threads`` sets torch's intra-op threads (pool and Ray workers run with 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from benchcommon import best

WIDTH, HEIGHT, FPS, SECONDS, SR = 640, 352, 24.0, 8.04, 48000


def write_clip(path: Path) -> Path:
    from mova_bench.media import write_mp4

    n = int(round(SECONDS * FPS))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    video = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for k in range(n):
        base = np.stack([(xx + 4 * k) % 256, (yy + 2 * k) % 256, (xx + yy + 3 * k) % 256], axis=-1)
        video[k] = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    t = np.arange(int(SECONDS * SR)) / SR
    audio = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    write_mp4(path, video, FPS, audio, SR)
    return path



def random_inception(tmpdir: Path):
    """torch-fidelity's InceptionV3 with its default random init (weight loading bypassed: no download)."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    empty = tmpdir / "empty.pt"
    torch.save({}, empty)
    with mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, strict=True: None):
        return tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty)).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import torch

    from mova_bench.features.i3d import I3D, inception_i3d, preprocess
    from mova_bench.features.inception import InceptionV3
    from mova_bench.media import decode

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path = write_clip(tmp / "mova_sized.mp4")
        print(f"clip: {WIDTH}x{HEIGHT}, {SECONDS} s at {FPS:g} fps ({int(round(SECONDS * FPS))} frames), "
              f"{path.stat().st_size / 1e6:.1f} MB; torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), "
              f"{os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}")

        i3d, inc = I3D(), InceptionV3()
        i3d.model, i3d.device = inception_i3d(), "cpu"
        inc.model, inc.device = random_inception(tmp).to("cpu"), "cpu"

        # decodes: one warm-up, then the four variants round-robin (min of each), so that a load change on a
        # shared machine hits them alike
        variants = {"base": (), "i3d": i3d.video_needs, "inc": inc.video_needs, "both": (*i3d.video_needs, *inc.video_needs)}
        decode(path)
        dt = {k: float("inf") for k in variants}
        for _ in range(max(1, args.repeats)):
            for k, needs in variants.items():
                t0 = time.perf_counter()
                clip = decode(path, needs=needs)
                dt[k] = min(dt[k], time.perf_counter() - t0)
        t_base = dt["base"]
        print(f"  decode, analysis frames only        {t_base * 1e3:8.1f} ms")
        print(f"  decode + I3D need (16 native frames) {dt['i3d'] * 1e3:8.1f} ms  (+{(dt['i3d'] - t_base) * 1e3:.1f})")
        print(f"  decode + InceptionV3 need (1 fps)   {dt['inc'] * 1e3:8.1f} ms  (+{(dt['inc'] - t_base) * 1e3:.1f})")
        print(f"  decode + both needs                 {dt['both'] * 1e3:8.1f} ms  (+{(dt['both'] - t_base) * 1e3:.1f})")

        frames16 = clip.frames(i3d.video_needs[0])
        t_pre, x = best(lambda: preprocess(frames16, "stretch"), args.repeats)
        with torch.no_grad():
            t_fwd, _ = best(lambda: i3d.model(x), args.repeats)
        t_ext, out = best(lambda: i3d.extract(clip), args.repeats)
        print(f"  i3d          extract() {t_ext * 1e3:8.1f} ms per clip = preprocess {t_pre * 1e3:6.1f} ms "
              f"({frames16.shape[0]} frames {frames16.shape[2]}x{frames16.shape[1]} -> 224x224) + forward {t_fwd * 1e3:8.1f} ms "
              f"+ the rest; embedding {tuple(out['embedding'].shape)}")

        frames1 = clip.frames(inc.video_needs[0])
        t_pre, xt = best(lambda: torch.from_numpy(np.ascontiguousarray(frames1)).permute(0, 3, 1, 2), args.repeats)
        with torch.no_grad():
            t_fwd, _ = best(lambda: inc.model(xt), args.repeats)
        t_ext, out = best(lambda: inc.extract(clip), args.repeats)
        k = frames1.shape[0]
        print(f"  inception-v3 extract() {t_ext * 1e3:8.1f} ms per clip = to-tensor {t_pre * 1e3:6.1f} ms "
              f"({k} frames at 1 fps, {frames1.shape[2]}x{frames1.shape[1]}) + forward {t_fwd * 1e3:8.1f} ms "
              f"({t_fwd / k * 1e3:.1f} ms/frame incl. the 299-px resize) + the rest; frames {tuple(out['frames'].shape)}")


if __name__ == "__main__":
    main()
