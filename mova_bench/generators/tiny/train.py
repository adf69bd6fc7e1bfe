"""Train mova-tiny on the procedural world (torch, CPU): ``python -m mova_bench.generators.tiny.train``.

With no arguments it rewrites the committed checkpoints (``checkpoints/step-500.safetensors`` and
``checkpoints/final.safetensors``) byte for byte; ``--out DIR`` writes elsewhere.

Data: every prompt of the built-in suites (``prompts/*.yaml``, 256 world seeds each) and
``--templated`` templated prompts (``prompts.py``, 24 seeds each); a sample's target is the latent
(``latent.encode_world``) of ``World(prompt, seed, 4 s, 24 fps, 256×144)``: its scene, event plan
and event parameters. Training seeds start at 10,000,000, apart from the suites' evaluation seeds
and reference seeds. No clip is rendered: the renderer is the fixed decoder. A batch is 64 prompts
(30 % from the suites) × 4 seeds.

Objective: rectified flow matching on both towers' latents at once (``x_τ = (1 − τ) ε + τ x₁``,
target ``x₁ − ε``, τ from a logit-normal/uniform mixture), squared error weighted ×8 on the onset
times; the text is dropped (replaced by the null condition) for ``--cond-drop`` (15 %) of the
samples so the same network is the unconditional model of classifier-free guidance. AdamW, linear
warm-up then cosine decay, gradient clipping, and an exponential moving average of the weights
(decay 0.995; what the checkpoints hold). 2000 steps: about 500 CPU-seconds on one core.

Reproducible: every random draw comes from ``--seed`` (torch and numpy generators) and torch runs
deterministic kernels on ``--threads`` (1) thread, so the same command on the same machine writes
byte-identical checkpoints (checked: two runs, under different machine load, gave the committed
SHA-256s). Each checkpoint holds the configuration, step and training arguments in its
safetensors metadata; their SHA-256 is printed and belongs in ``models/mova-tiny.yaml``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
GEOMETRY = dict(n_frames=96, height=144, width=256, fps=24.0, sample_rate=48000, n_samples=192000, duration_s=4.0)


def build_dataset(n_templated: int, seeds_templated: int, seeds_suite: int, seed: int):
    """(prompts, is_suite, n_seeds, latents of both towers): prompt ``i``'s samples are rows
    ``offset[i] .. offset[i] + n_seeds[i]`` (``offset`` = exclusive cumulative sum of ``n_seeds``)."""
    from mova_bench.generators.tiny import latent as L
    from mova_bench.generators.tiny.prompts import suite_prompts, templated_prompts
    from mova_bench.generators.world import Geometry, World

    g = Geometry(**GEOMETRY)
    suite = suite_prompts()
    templ = [t for t in templated_prompts(n_templated, seed) if t not in set(suite)]
    prompts = suite + templ
    is_suite = np.array([True] * len(suite) + [False] * len(templ))
    n_seeds = np.where(is_suite, seeds_suite, seeds_templated).astype(np.int64)
    offset = np.concatenate([[0], np.cumsum(n_seeds)[:-1]]).astype(np.int64)
    v = np.zeros((int(n_seeds.sum()), L.VIDEO_DIM), np.float32)
    a = np.zeros((int(n_seeds.sum()), L.AUDIO_DIM), np.float32)
    for i, text in enumerate(prompts):
        for s in range(int(n_seeds[i])):
            # training seeds are disjoint from the suites' evaluation seeds (0 .. a few thousand)
            # and from their reference seeds (2**40 + ...)
            v[offset[i] + s], a[offset[i] + s] = L.encode_world(World(text, 10_000_000 + s, g))
    return prompts, is_suite, n_seeds, v, a


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: Path, model, ema: dict, meta: dict) -> str:
    from mova_bench.generators.tiny import safetensors_io

    tensors = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in ema.items()}
    safetensors_io.save(path, tensors, {k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in meta.items()})
    return sha256(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mova_bench.generators.tiny.train", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(CHECKPOINT_DIR), help="folder for the checkpoints (default: the package's)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--save-at", type=int, nargs="*", default=[500], help="also save step-N checkpoints at these steps")
    ap.add_argument("--batch-prompts", type=int, default=64)
    ap.add_argument("--seeds-per-prompt", type=int, default=4, help="samples per prompt in a batch")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--cond-drop", type=float, default=0.15)
    ap.add_argument("--suite-share", type=float, default=0.3, help="share of a batch's prompts taken from the suites")
    ap.add_argument("--templated", type=int, default=3000)
    ap.add_argument("--seeds-templated", type=int, default=24)
    ap.add_argument("--seeds-suite", type=int, default=256)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a shared 2-core machine, and deterministic)")
    ap.add_argument("--log-every", type=int, default=100)
    args = ap.parse_args(argv)

    import torch

    from mova_bench.generators.tiny import latent as L
    from mova_bench.generators.tiny.model_np import Config
    from mova_bench.generators.tiny.text import encode
    from mova_bench.generators.tiny.torch_model import TinyMova
    from mova_bench.generators.world import WORLD_VERSION

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prompts, is_suite, n_seeds, V, A = build_dataset(args.templated, args.seeds_templated, args.seeds_suite, args.seed)
    enc = [encode(t) for t in prompts]
    IDX = torch.as_tensor(np.stack([e[0] for e in enc]))
    WT = torch.as_tensor(np.stack([e[1] for e in enc]), dtype=torch.float32)
    V, A = torch.as_tensor(V), torch.as_tensor(A)
    offset = np.concatenate([[0], np.cumsum(n_seeds)[:-1]]).astype(np.int64)
    t_data = time.perf_counter() - t0
    print(f"data: {len(prompts)} prompts ({int(is_suite.sum())} from the suites), {int(n_seeds.sum())} samples, "
          f"{t_data:.1f} s", file=sys.stderr)

    cfg = Config(d=args.d, heads=args.heads, layers=args.layers)
    model = TinyMova(cfg, seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", file=sys.stderr)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    ema = {n: model.P(n).detach().clone() for n in model.names}
    wv = torch.as_tensor(L.video_weights(), dtype=torch.float32)
    wa = torch.as_tensor(L.audio_weights(), dtype=torch.float32)
    rng = np.random.default_rng(args.seed)
    suite_ids = np.flatnonzero(is_suite)
    templ_ids = np.flatnonzero(~is_suite)
    Bp, Bs = args.batch_prompts, args.seeds_per_prompt
    null_idx = torch.zeros(1, *IDX.shape[1:], dtype=IDX.dtype)
    null_wt = torch.zeros(1, *WT.shape[1:])
    meta_base = {"format": "mova-tiny", "config": cfg.to_json(), "world_version": WORLD_VERSION,
                 "args": {k: v for k, v in vars(args).items() if k not in ("out", "log_every")},
                 "n_params": str(n_params), "torch": torch.__version__, "n_prompts": str(len(prompts)),
                 "n_samples": str(int(n_seeds.sum()))}
    shas: dict[str, str] = {}
    losses = []
    t_train = time.perf_counter()
    c_train = time.process_time()
    for step in range(1, args.steps + 1):
        n_suite = int(round(Bp * args.suite_share))
        pid = np.concatenate([rng.choice(suite_ids, n_suite), rng.choice(templ_ids, Bp - n_suite)])
        sid = offset[pid][:, None] + (rng.random((Bp, Bs)) * n_seeds[pid][:, None]).astype(np.int64)
        pid_t = torch.as_tensor(pid)
        rows_t = torch.as_tensor(sid.reshape(-1))
        x1v, x1a = V[rows_t], A[rows_t]
        B = Bp * Bs
        u = rng.random(B)
        ln = 1.0 / (1.0 + np.exp(-rng.normal(0.0, 1.0, B)))
        tau = torch.as_tensor(np.where(rng.random(B) < 0.5, u, ln), dtype=torch.float32)
        drop = torch.as_tensor(rng.random(B) < args.cond_drop)
        ev = torch.as_tensor(rng.standard_normal(x1v.shape), dtype=torch.float32)
        ea = torch.as_tensor(rng.standard_normal(x1a.shape), dtype=torch.float32)
        xv = (1 - tau[:, None]) * ev + tau[:, None] * x1v
        xa = (1 - tau[:, None]) * ea + tau[:, None] * x1a
        W = max(1, int((WT[pid_t].sum(-1) > 0).sum(-1).max()))  # trim padding words (masked anyway)
        text_c = model.encode_text(IDX[pid_t, :W], WT[pid_t, :W], torch.ones(Bp, dtype=torch.bool))
        text_u = model.encode_text(null_idx[:, :1], null_wt[:, :1], torch.zeros(1, dtype=torch.bool))
        rows = torch.where(drop, torch.full((B,), Bp), torch.arange(Bp).repeat_interleave(Bs))
        text = model.select_text(model.cat_text(text_c, text_u), rows)
        vv, va = model.velocity(xv, xa, tau, text)
        loss = ((vv - (x1v - ev)) ** 2 * wv).mean() + ((va - (x1a - ea)) ** 2 * wa).mean()
        lr = args.lr * min(1.0, step / args.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps))))
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for n in model.names:
                ema[n].mul_(decay).add_(model.P(n).detach(), alpha=1 - decay)
        losses.append(float(loss.detach()))
        if step % args.log_every == 0 or step == 1:
            el = time.perf_counter() - t_train
            print(f"step {step}/{args.steps} loss {np.mean(losses[-args.log_every:]):.4f} lr {lr:.2e} "
                  f"{el:.0f} s ({el / step * 1000:.0f} ms/step wall, "
                  f"{(time.process_time() - c_train) / step * 1000:.0f} ms/step CPU)", file=sys.stderr)
        names = [f"step-{step}"] if step in args.save_at else []
        if step == args.steps:
            names.append("final")
        for name in names:
            meta = {**meta_base, "step": str(step), "name": name, "loss_recent": f"{np.mean(losses[-100:]):.5f}"}
            shas[name] = save_checkpoint(out / f"{name}.safetensors", model, ema, meta)
    t_total = time.perf_counter() - t0
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    summary = {"checkpoints": {n: {"path": str(out / f"{n}.safetensors"), "sha256": s,
                                   "bytes": (out / f"{n}.safetensors").stat().st_size} for n, s in shas.items()},
               "n_params": n_params, "data_s": round(t_data, 1), "train_s": round(time.perf_counter() - t_train, 1),
               "train_cpu_s": round(time.process_time() - c_train, 1),
               "total_s": round(t_total, 1), "threads": args.threads, "loadavg_end": load,
               "machine": platform.platform(), "cpus": os.cpu_count()}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
