"""Per-clip CPU cost of the audio backbones (VGGish, PANNs CNN14) on a MOVA-sized clip, and the
effect of the resampler (soxr vs resampy) on their inputs and embeddings.

    PYTHONPATH=. python benchmarks/bench_backbones_audio.py [--repeats 3] [--threads 1] [--resampler]

Cost: one 8.04 s clip of 48 kHz mono audio (MOVA's length and rate), random weights (the cost does
not depend on their values), fp32 on the CPU. Printed per backbone, best of ``--repeats``:
resampling 48 → 16 kHz (soxr HQ, ``DecodedClip.audio_at``), the front end (VGGish log-mel examples;
CNN14's STFT is inside the network), the forward pass, and ``extract()`` as the harness calls it
(all of these plus the base class's no-grad/TF32 guard and numpy conversion). ``--threads`` sets
torch's intra-op threads (the pool/Ray workers run with 1).

``--resampler`` (needs resampy, which torchvggish's ``waveform_to_examples`` uses): 12 synthetic
8.04 s clips (tone sweeps, noise bursts, clicks; two sets A and B) resampled 48 → 16 kHz by soxr HQ
and by resampy ``kaiser_best``; prints the relative RMS difference of the VGGish log-mel examples
(per band group) and of the embeddings (random weights), and FD(A, B) with each resampler on the
A side. Random weights make the embedding figures indicative only: the real networks weight the
top bands differently.
"""

from __future__ import annotations

import argparse
import os
import platform
import numpy as np
from benchcommon import best

SR_IN = 48000
SECONDS = 8.04


def synthetic(seed: int, seconds: float = SECONDS, sr: int = SR_IN) -> np.ndarray:
    """A sweep, a noise burst train and clicks: energy in every band up to 20 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = rng.uniform(100, 800)
    x = 0.2 * np.sin(2 * np.pi * (f0 + rng.uniform(200, 3000) * t / seconds) * t)
    env = (np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) > 0.3).astype(float)
    x += rng.uniform(0.02, 0.2) * env * rng.standard_normal(t.size)
    x[rng.integers(0, t.size, 20)] += 0.7
    return x.astype(np.float32)


def clip_of(audio: np.ndarray, sr: int = SR_IN):
    from mova_bench.media import DecodedClip

    n_video = int(SECONDS * 24)
    return DecodedClip(video=np.zeros((n_video, 8, 8, 3), np.uint8), video_times=np.arange(n_video) / 24.0, fps=24.0,
                       audio=audio, sample_rate=sr, audio_start=0.0, source_width=8, source_height=8,
                       source_channels=1, duration_s=audio.size / sr)



def extractors():
    """(name, extractor with a random-weight model attached) for both backbones."""
    import torch

    from mova_bench.features.panns import PannsCnn14, build_cnn14_model
    from mova_bench.features.vggish import Vggish, build_vggish_model

    torch.manual_seed(0)
    vgg = Vggish()
    vgg.model, vgg.device = build_vggish_model().eval(), "cpu"
    cnn = PannsCnn14()
    cnn.model, cnn.device = build_cnn14_model(16000).eval(), "cpu"
    return [("vggish", vgg), ("panns-cnn14 (16 kHz)", cnn)]


def cost(repeats: int) -> None:
    import torch

    from mova_bench.features.vggish import log_mel_examples

    audio = synthetic(0)
    print(f"clip: {SECONDS} s mono at {SR_IN} Hz ({audio.size} samples); torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op thread(s), {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}")
    t_rs, _ = best(lambda: clip_of(audio).audio_at(16000), repeats)
    print(f"  resample 48 -> 16 kHz (soxr HQ): {t_rs * 1e3:8.1f} ms (shared by both backbones through the clip's cache)")
    for name, ex in extractors():
        clip = clip_of(audio)
        wav16 = clip.audio_at(16000)
        with torch.no_grad():
            if name == "vggish":
                t_front, examples = best(lambda: log_mel_examples(wav16), repeats)
                x = torch.from_numpy(examples)[:, None]
                t_fwd, _ = best(lambda: ex.model(x), repeats)
                detail = f"front end {t_front * 1e3:7.1f} ms ({examples.shape[0]} examples), forward {t_fwd * 1e3:7.1f} ms"
            else:
                w = torch.from_numpy(ex.waveform(clip))[None]
                t_fwd, _ = best(lambda: ex.model(w), repeats)
                detail = f"forward incl. STFT {t_fwd * 1e3:7.1f} ms ({w.shape[1]} samples)"
        t_ext, out = best(lambda: ex.extract(clip_of(audio)), repeats)  # a fresh clip: resampling included
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items())
        print(f"  {name:22s} extract() {t_ext * 1e3:8.1f} ms per clip = {detail} + the rest; outputs: {shapes}")


def resampler_effect(n_clips: int = 12) -> None:
    try:
        import resampy
    except ImportError:
        print("resampy is not installed: no resampler comparison")
        return
    import soxr
    import torch

    from mova_bench.features.vggish import log_mel_examples
    from mova_bench.metrics.frechet import frechet_distance, mean_cov

    (_, vgg), (_, cnn) = extractors()
    sets = {"A": [synthetic(100 + i) for i in range(n_clips)], "B": [synthetic(200 + i) for i in range(n_clips)]}

    def both(x):
        return (soxr.resample(x.astype(np.float64), SR_IN, 16000, quality="HQ").astype(np.float32),
                resampy.resample(x.astype(np.float64), SR_IN, 16000, filter="kaiser_best").astype(np.float32))

    mel_diff, frames, pann = {"soxr": [], "resampy": []}, {"A_soxr": [], "A_resampy": [], "B_soxr": []}, \
        {"A_soxr": [], "A_resampy": [], "B_soxr": []}
    with torch.no_grad():
        for side, clips in sets.items():
            for x in clips:
                for rs_name, wav in zip(("soxr", "resampy"), both(x)):
                    if side == "B" and rs_name == "resampy":
                        continue
                    ex = log_mel_examples(wav)
                    mel_diff[rs_name].append(ex)
                    key = f"{side}_{rs_name}"
                    frames[key].append(vgg.model(torch.from_numpy(ex)[:, None]).numpy().astype(np.float64))
                    w = wav[: 8 * 16000] - wav[: 8 * 16000].mean()
                    pann[key].append(cnn.model(torch.from_numpy(w)[None])["embedding"][0].numpy().astype(np.float64))
    a_s = np.concatenate(mel_diff["soxr"][:n_clips])
    a_r = np.concatenate(mel_diff["resampy"])
    d = a_s - a_r
    print(f"resampler effect, {n_clips} synthetic {SECONDS} s clips per set, 48 -> 16 kHz, soxr HQ vs resampy kaiser_best:")
    groups = [(0, 16), (16, 32), (32, 48), (48, 60), (60, 64)]
    per = ", ".join(f"bands {lo}-{hi - 1}: {np.sqrt(np.mean(d[..., lo:hi] ** 2)):.4f}" for lo, hi in groups)
    print(f"  VGGish log-mel RMS difference (log units) by band group: {per}; max |diff| {np.abs(d).max():.3f}")
    for label, feats in (("VGGish frames", frames), ("CNN14 embedding", pann)):
        xs, xr, yb = (np.concatenate(feats[k]) if label.startswith("VGG") else np.stack(feats[k])
                      for k in ("A_soxr", "A_resampy", "B_soxr"))
        rel = np.linalg.norm(xs - xr) / np.linalg.norm(xs)
        fd_s = frechet_distance(*mean_cov(xs), *mean_cov(yb))
        fd_r = frechet_distance(*mean_cov(xr), *mean_cov(yb))
        fd_sr = frechet_distance(*mean_cov(xs), *mean_cov(xr))
        print(f"  {label:16s} (random weights): relative L2 difference soxr vs resampy {rel:.2e}; "
              f"FD(A_soxr, B) = {fd_s:.6g}, FD(A_resampy, B) = {fd_r:.6g} (relative change {abs(fd_r - fd_s) / fd_s:.2e}); "
              f"FD(A_soxr, A_resampy) = {fd_sr:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--resampler", action="store_true", help="also measure soxr vs resampy (needs resampy)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cost(args.repeats)
    if args.resampler:
        resampler_effect()


if __name__ == "__main__":
    main()
