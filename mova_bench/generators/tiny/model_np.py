"""mova-tiny in numpy: the network's forward pass and the flow-matching sampler (no torch).

Architecture (MOVA's shape in miniature; ``train.TinyMova`` is the same network in torch, the
one that is trained, and the tests check the two agree to 1e-5 on the committed checkpoints)

* text encoder: hashed character n-gram word embeddings (``text.py``) + learned positions, a
  learned null token in front (the only token of the unconditional branch), ``text_layers``
  pre-LN transformer blocks, a final LayerNorm; ``pooled`` is the masked mean of its outputs.
* conditioning vector ``c = MLP(sinusoid(1000 τ)) + Linear(pooled)`` (flow time τ and text).
* two towers, video (a global token + 8 event slots) and audio (the same), each token projected
  from its latent coordinates, plus a slot embedding shared by both towers (slot ``i`` of one
  tower can find slot ``i`` of the other) and a tower embedding.
* ``layers`` dual blocks; in each, both towers run (from the previous layer's states)
  adaLN-modulated self-attention, cross-attention to the text, the **bridge** (cross-attention
  to the other tower's tokens, with a learned per-head bonus on the logit of the token at the
  same slot: the analogue of MOVA's time-aligned bridge positions) and an adaLN-modulated SiLU MLP.
* per-token output projections to the velocity of each tower's latent.

Flow matching (rectified flow): ``x_τ = (1 − τ) ε + τ x₁``, the network predicts ``x₁ − ε``.
Sampling integrates ``dx/dτ = v`` from noise at τ = 0 to τ = 1 with ``steps`` Euler steps, with
classifier-free guidance ``v = v_∅ + s (v_text − v_∅)`` (s = ``guidance_scale``; s = 1 is the
conditional model alone, s = 0 the unconditional one). All arithmetic is float64 numpy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from mova_bench.generators.tiny import latent as L
from mova_bench.generators.tiny import text as T

TOWERS = ("video", "audio")
TOWER_DIMS = {"video": (L.VG_DIM, L.VS_DIM), "audio": (L.AG_DIM, L.AS_DIM)}


@dataclass(frozen=True)
class Config:
    d: int = 64
    heads: int = 4
    layers: int = 3
    text_layers: int = 1
    mlp_ratio: int = 4
    time_freqs: int = 32
    n_buckets: int = T.N_BUCKETS
    max_words: int = T.MAX_WORDS
    n_slots: int = L.N_SLOTS

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "Config":
        return cls(**json.loads(s))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * expit(x)


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    inv_d = 1.0 / x.shape[-1]
    xc = x - x.sum(-1, keepdims=True) * inv_d
    var = (xc * xc).sum(-1, keepdims=True) * inv_d
    return xc / np.sqrt(var + eps) * w + b


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def time_embedding(tau: np.ndarray, n_freqs: int) -> np.ndarray:
    """(B,) → (B, 2·n_freqs): cos and sin of ``1000 τ · 10000^(−i/n)``."""
    freqs = np.exp(-math.log(10000.0) * np.arange(n_freqs, dtype=np.float64) / n_freqs)
    a = 1000.0 * np.asarray(tau, dtype=np.float64)[:, None] * freqs[None, :]
    return np.concatenate([np.cos(a), np.sin(a)], -1)


class TinyMovaNumpy:
    """The network with weights from a checkpoint (name → array, float64).

    The two towers run as one stacked computation (weights of the same role stacked on a leading
    axis of size 2: video, audio), which halves the numpy calls; the arithmetic per tower is the
    torch network's (``torch_model.TinyMova``), block for block."""

    _STACKED = ("mod.w", "mod.b", "ln1.w", "ln1.b", "ln2.w", "ln2.b", "ln3.w", "ln3.b", "lnb.w", "lnb.b", "ln4.w",
                "ln4.b", "self.wo", "self.bo", "cross.wq", "cross.bq", "cross.wk", "cross.bk", "cross.wv", "cross.bv",
                "cross.wo", "cross.bo", "bridge.wq", "bridge.bq", "bridge.wo", "bridge.bo", "mlp.w1", "mlp.b1",
                "mlp.w2", "mlp.b2")

    def __init__(self, params: dict[str, np.ndarray], config: Config):
        self.p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.c = config
        self.dh = config.d // config.heads
        p = self.p
        eye = np.eye(config.n_slots + 1)
        self.blocks: list[dict[str, np.ndarray]] = []
        for l in range(config.layers):
            pre = [f"{t}.blocks.{l}." for t in TOWERS]
            b = {name: np.stack([p[q + name] for q in pre]) for name in self._STACKED}
            # fused projections: q, k, v of the self-attention; k, v of the bridge
            b["self.wqkv"] = np.stack([np.concatenate([p[q + f"self.w{n}"] for n in "qkv"], 1) for q in pre])
            b["self.bqkv"] = np.stack([np.concatenate([p[q + f"self.b{n}"] for n in "qkv"]) for q in pre])
            b["bridge.wkv"] = np.stack([np.concatenate([p[q + f"bridge.w{n}"] for n in "kv"], 1) for q in pre])
            b["bridge.bkv"] = np.stack([np.concatenate([p[q + f"bridge.b{n}"] for n in "kv"]) for q in pre])
            # the bridge's aligned-position bias: a learned per-head logit bonus for the other
            # tower's token at the same slot (MOVA aligns its bridge by time; slots are our time)
            b["bridge.bias"] = np.stack([p[q + "bridge.align"] for q in pre])[:, None, :, None, None] * eye
            for name in list(b):  # biases and norms broadcast over (tower, batch, token)
                if b[name].ndim == 2:
                    b[name] = b[name][:, None, None, :]
            self.blocks.append(b)

    # -- building blocks -------------------------------------------------------------------
    def _heads(self, x: np.ndarray) -> np.ndarray:
        """(..., n, m·d) → (..., m·heads, n, dh): m projections side by side, split into heads."""
        *lead, n, md = x.shape
        x = x.reshape(*lead, n, md // self.dh, self.dh)
        return np.swapaxes(x, -2, -3)

    def _merge(self, o: np.ndarray) -> np.ndarray:
        """(..., heads, n, dh) → (..., n, d)."""
        o = np.swapaxes(o, -2, -3)
        return o.reshape(*o.shape[:-2], o.shape[-2] * o.shape[-1])

    def _attend(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
                bias: np.ndarray | None = None) -> np.ndarray:
        """Softmax attention over heads already split; ``mask`` broadcastable to the logits, True
        where a key may be attended to."""
        s = q @ np.swapaxes(k, -1, -2) / math.sqrt(self.dh)
        if bias is not None:
            s = s + bias
        if mask is not None:
            s = np.where(mask, s, -np.inf)  # exp → exactly 0, as torch's -1e30
        return _softmax(s) @ v

    def _lin(self, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        return x @ w + b

    # -- text ------------------------------------------------------------------------------
    def encode_text(self, idx: np.ndarray, wt: np.ndarray, keep_words: np.ndarray) -> dict[str, Any]:
        """idx, wt: (B, W, F) from ``text.encode``; keep_words: (B,) bool (False = the null
        condition). Returns the mask, the pooled vector and, per layer, both towers' cross-attention
        keys and values of the text (they do not change during sampling)."""
        p, c = self.p, self.c
        B, W, _ = idx.shape
        words = (p["text.emb"][idx] * wt[..., None]).sum(-2)  # (B, W, d)
        null = np.broadcast_to(p["text.null"], (B, 1, c.d))
        x = np.concatenate([null, words], 1) + p["text.pos"][None, : W + 1]
        mask = np.concatenate([np.ones((B, 1), bool), (wt.sum(-1) > 0) & keep_words[:, None]], 1)
        for j in range(c.text_layers):
            pre = f"text.blocks.{j}.attn."
            h = _ln(x, p[f"text.blocks.{j}.ln1.w"], p[f"text.blocks.{j}.ln1.b"])
            q, k, v = (self._heads(h @ p[pre + f"w{n}"] + p[pre + f"b{n}"]) for n in "qkv")
            o = self._merge(self._attend(q, k, v, mask[:, None, None, :]))
            x = x + o @ p[pre + "wo"] + p[pre + "bo"]
            h = _ln(x, p[f"text.blocks.{j}.ln2.w"], p[f"text.blocks.{j}.ln2.b"])
            pre = f"text.blocks.{j}.mlp."
            x = x + _silu(h @ p[pre + "w1"] + p[pre + "b1"]) @ p[pre + "w2"] + p[pre + "b2"]
        mem = _ln(x, p["text.ln_out.w"], p["text.ln_out.b"])
        m = mask[..., None].astype(np.float64)
        pooled = (mem * m).sum(1) / m.sum(1)
        kv = [(self._heads(self._lin(mem[None], b["cross.wk"][:, None], b["cross.bk"])),
               self._heads(self._lin(mem[None], b["cross.wv"][:, None], b["cross.bv"]))) for b in self.blocks]
        return {"mask": mask[None, :, None, None, :], "pooled": pooled, "kv": kv}

    # -- the flow network ----------------------------------------------------------------------
    def _tokens(self, tower: str, x: np.ndarray) -> np.ndarray:
        p, c = self.p, self.c
        g_dim, s_dim = TOWER_DIMS[tower]
        B = x.shape[0]
        g = x[:, :g_dim] @ p[f"{tower}.in_g.w"] + p[f"{tower}.in_g.b"]
        s = x[:, g_dim:].reshape(B, c.n_slots, s_dim) @ p[f"{tower}.in_s.w"] + p[f"{tower}.in_s.b"]
        return np.concatenate([g[:, None], s], 1) + p["slot_pos"][None] + p[f"{tower}.type"]

    def _out(self, tower: str, h: np.ndarray) -> np.ndarray:
        p = self.p
        h = _ln(h, p[f"{tower}.ln_out.w"], p[f"{tower}.ln_out.b"])
        g = h[:, 0] @ p[f"{tower}.out_g.w"] + p[f"{tower}.out_g.b"]
        s = h[:, 1:] @ p[f"{tower}.out_s.w"] + p[f"{tower}.out_s.b"]
        return np.concatenate([g, s.reshape(h.shape[0], -1)], 1)

    def velocity(self, xv: np.ndarray, xa: np.ndarray, tau: np.ndarray, text: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(B, VIDEO_DIM), (B, AUDIO_DIM), (B,) → the predicted velocities of both latents."""
        p, c = self.p, self.c
        d = c.d
        temb = _silu(time_embedding(tau, c.time_freqs) @ p["time.w1"] + p["time.b1"]) @ p["time.w2"] + p["time.b2"]
        cond = _silu(temb + text["pooled"] @ p["cond.w"] + p["cond.b"])
        h = np.stack([self._tokens("video", xv), self._tokens("audio", xa)])  # (2, B, n, d)
        for l, b in enumerate(self.blocks):
            mod = (cond[None] @ b["mod.w"])[:, :, None, :] + b["mod.b"]  # (2, B, 1, 4d)
            sh1, sc1, sh2, sc2 = (mod[..., i * d : (i + 1) * d] for i in range(4))
            # self-attention (adaLN-modulated)
            z = _ln(h, b["ln1.w"], b["ln1.b"]) * (1.0 + sc1) + sh1
            qkv = self._heads(z @ b["self.wqkv"][:, None] + b["self.bqkv"])
            H = c.heads
            o = self._attend(qkv[:, :, :H], qkv[:, :, H : 2 * H], qkv[:, :, 2 * H :])
            x = h + self._merge(o) @ b["self.wo"][:, None] + b["self.bo"]
            # cross-attention to the text
            q = self._heads(_ln(x, b["ln2.w"], b["ln2.b"]) @ b["cross.wq"][:, None] + b["cross.bq"])
            k, v = text["kv"][l]
            x = x + self._merge(self._attend(q, k, v, text["mask"])) @ b["cross.wo"][:, None] + b["cross.bo"]
            # the bridge: each tower attends to the other's tokens of the previous layer
            y = _ln(h[::-1], b["lnb.w"], b["lnb.b"])
            kv = self._heads(y @ b["bridge.wkv"][:, None] + b["bridge.bkv"])
            q = self._heads(_ln(x, b["ln3.w"], b["ln3.b"]) @ b["bridge.wq"][:, None] + b["bridge.bq"])
            o = self._attend(q, kv[:, :, :H], kv[:, :, H:], bias=b["bridge.bias"])
            x = x + self._merge(o) @ b["bridge.wo"][:, None] + b["bridge.bo"]
            # MLP (adaLN-modulated)
            z = _ln(x, b["ln4.w"], b["ln4.b"]) * (1.0 + sc2) + sh2
            h = x + _silu(z @ b["mlp.w1"][:, None] + b["mlp.b1"]) @ b["mlp.w2"][:, None] + b["mlp.b2"]
        return self._out("video", h[0]), self._out("audio", h[1])


def text_batch(prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = [T.encode(t) for t in prompts]
    return np.stack([e[0] for e in enc]), np.stack([e[1] for e in enc])


def sample(model: TinyMovaNumpy, prompt: str, noise_v: np.ndarray, noise_a: np.ndarray, *, steps: int,
           guidance_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the flow from the given noise (1-D vectors) to a pair of latents."""
    s = float(guidance_scale)
    idx, wt = text_batch([prompt])
    n_w = max(1, T.n_words(prompt))
    idx, wt = idx[:, :n_w], wt[:, :n_w]  # padding words are masked: dropping them changes nothing
    if s == 1.0:
        keep = np.array([True])
    elif s == 0.0:
        keep = np.array([False])
    else:
        keep = np.array([True, False])
        idx, wt = np.repeat(idx, 2, 0), np.repeat(wt, 2, 0)
    text = model.encode_text(idx, wt, keep)
    n = keep.size
    xv = np.asarray(noise_v, np.float64)[None].copy()
    xa = np.asarray(noise_a, np.float64)[None].copy()
    dt = 1.0 / steps
    for i in range(steps):
        tau = np.full(n, i / steps)
        vv, va = model.velocity(np.repeat(xv, n, 0), np.repeat(xa, n, 0), tau, text)
        if n == 2:
            vv = vv[1:] + s * (vv[:1] - vv[1:])
            va = va[1:] + s * (va[:1] - va[1:])
        xv = xv + dt * vv
        xa = xa + dt * va
    return xv[0], xa[0]
