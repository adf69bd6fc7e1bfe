"""mova-tiny in torch: the trainable network (the same function as ``model_np.TinyMovaNumpy``).

Only training (``python -m mova_bench.generators.tiny.train``) and the tests import this module;
sampling needs numpy alone. Weights are named exactly as in the checkpoint, and stored as
``(in, out)`` matrices: ``y = x @ W + b``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mova_bench.generators.tiny.model_np import TOWER_DIMS, TOWERS, Config


def param_shapes(c: Config) -> dict[str, tuple[tuple[int, ...], str]]:
    """name → (shape, init) for every weight of the network."""
    d, hid = c.d, c.d * c.mlp_ratio
    out: dict[str, tuple[tuple[int, ...], str]] = {}

    def lin(pre: str, i: int, o: int, init: str = "lin") -> None:
        out[pre + ".w"] = ((i, o), init)
        out[pre + ".b"] = ((o,), "zero")

    def ln(pre: str) -> None:
        out[pre + ".w"] = ((d,), "one")
        out[pre + ".b"] = ((d,), "zero")

    def attn(pre: str) -> None:
        for n in "qkvo":
            out[f"{pre}.w{n}"] = ((d, d), "lin")
            out[f"{pre}.b{n}"] = ((d,), "zero")

    def mlp(pre: str) -> None:
        out[pre + ".w1"] = ((d, hid), "lin")
        out[pre + ".b1"] = ((hid,), "zero")
        out[pre + ".w2"] = ((hid, d), "lin")
        out[pre + ".b2"] = ((d,), "zero")

    out["text.emb"] = ((c.n_buckets, d), "emb")
    out["text.null"] = ((d,), "emb")
    out["text.pos"] = ((c.max_words + 1, d), "pos")
    for j in range(c.text_layers):
        pre = f"text.blocks.{j}"
        ln(pre + ".ln1"), attn(pre + ".attn"), ln(pre + ".ln2"), mlp(pre + ".mlp")
    ln("text.ln_out")
    out["time.w1"] = ((2 * c.time_freqs, d), "lin")
    out["time.b1"] = ((d,), "zero")
    out["time.w2"] = ((d, d), "lin")
    out["time.b2"] = ((d,), "zero")
    lin("cond", d, d)
    out["slot_pos"] = ((c.n_slots + 1, d), "pos")
    for t in TOWERS:
        g_dim, s_dim = TOWER_DIMS[t]
        lin(f"{t}.in_g", g_dim, d)
        lin(f"{t}.in_s", s_dim, d)
        out[f"{t}.type"] = ((d,), "pos")
        for l in range(c.layers):
            pre = f"{t}.blocks.{l}"
            lin(pre + ".mod", d, 4 * d, "zero")
            for n in ("ln1", "ln2", "ln3", "lnb", "ln4"):
                ln(f"{pre}.{n}")
            for n in ("self", "cross", "bridge"):
                attn(f"{pre}.{n}")
            out[pre + ".bridge.align"] = ((c.heads,), "align")
            mlp(pre + ".mlp")
        ln(f"{t}.ln_out")
        lin(f"{t}.out_g", d, g_dim, "zero")
        lin(f"{t}.out_s", d, s_dim, "zero")
    return out


class TinyMova(nn.Module):
    def __init__(self, c: Config, seed: int = 0):
        super().__init__()
        self.c = c
        self.dh = c.d // c.heads
        gen = torch.Generator().manual_seed(seed)
        self.names = []
        for name, (shape, init) in param_shapes(c).items():
            if init == "lin":
                t = torch.randn(shape, generator=gen) / math.sqrt(shape[0])
            elif init == "emb":
                t = torch.randn(shape, generator=gen) * 0.5
            elif init == "pos":
                t = torch.randn(shape, generator=gen) * 0.1
            elif init == "align":
                t = torch.full(shape, 2.0)
            elif init == "one":
                t = torch.ones(shape)
            else:
                t = torch.zeros(shape)
            self.register_parameter(name.replace(".", "__"), nn.Parameter(t))
            self.names.append(name)

    def P(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "__"))

    def state_numpy(self) -> dict[str, np.ndarray]:
        return {n: self.P(n).detach().cpu().numpy().copy() for n in self.names}

    def load_numpy(self, params: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for n in self.names:
                self.P(n).copy_(torch.as_tensor(np.array(params[n]), dtype=self.P(n).dtype))

    # -- blocks ------------------------------------------------------------------------------
    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, n, _ = x.shape
        return x.reshape(B, n, self.c.heads, self.dh).transpose(1, 2)

    def kv(self, pre: str, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        P = self.P
        return (self._heads(mem @ P(pre + ".wk") + P(pre + ".bk")), self._heads(mem @ P(pre + ".wv") + P(pre + ".bv")))

    def attn(self, pre: str, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
             bias: torch.Tensor | None = None) -> torch.Tensor:
        P = self.P
        q = self._heads(x @ P(pre + ".wq") + P(pre + ".bq"))
        s = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
        if bias is not None:
            s = s + bias
        if mask is not None:
            s = s.masked_fill(~mask[:, None, None, :], -1e30)
        o = torch.softmax(s, -1) @ v
        B, h, n, dh = o.shape
        return o.transpose(1, 2).reshape(B, n, h * dh) @ P(pre + ".wo") + P(pre + ".bo")

    def mlp(self, pre: str, x: torch.Tensor) -> torch.Tensor:
        P = self.P
        return F.silu(x @ P(pre + ".w1") + P(pre + ".b1")) @ P(pre + ".w2") + P(pre + ".b2")

    def ln(self, pre: str, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.c.d,), self.P(pre + ".w"), self.P(pre + ".b"), 1e-5)

    # -- text ----------------------------------------------------------------------------------
    def encode_text(self, idx: torch.Tensor, wt: torch.Tensor, keep_words: torch.Tensor):
        P, c = self.P, self.c
        B, W, _ = idx.shape
        words = (P("text.emb")[idx] * wt[..., None]).sum(-2)
        null = P("text.null").expand(B, 1, c.d)
        x = torch.cat([null, words], 1) + P("text.pos")[None, : W + 1]
        mask = torch.cat([torch.ones(B, 1, dtype=torch.bool), (wt.sum(-1) > 0) & keep_words[:, None]], 1)
        for j in range(c.text_layers):
            pre = f"text.blocks.{j}"
            h = self.ln(pre + ".ln1", x)
            x = x + self.attn(pre + ".attn", h, *self.kv(pre + ".attn", h), mask)
            x = x + self.mlp(pre + ".mlp", self.ln(pre + ".ln2", x))
        mem = self.ln("text.ln_out", x)
        m = mask[..., None].to(mem.dtype)
        pooled = (mem * m).sum(1) / m.sum(1)
        kvs = {(t, l): self.kv(f"{t}.blocks.{l}.cross", mem) for t in TOWERS for l in range(c.layers)}
        return {"mask": mask, "pooled": pooled, "kv": kvs}

    @staticmethod
    def select_text(text: dict, rows: torch.Tensor) -> dict:
        """The text encodings of ``rows`` (a batch index per sample)."""
        return {"mask": text["mask"][rows], "pooled": text["pooled"][rows],
                "kv": {key: (k[rows], v[rows]) for key, (k, v) in text["kv"].items()}}

    @staticmethod
    def cat_text(a: dict, b: dict) -> dict:
        W = max(a["mask"].shape[1], b["mask"].shape[1])

        def pad(x, fill):  # along the token axis (dim 1 of the mask, dim 2 of K/V)
            n = W - x.shape[-1] if x.dim() == 2 else W - x.shape[2]
            if n == 0:
                return x
            if x.dim() == 2:
                return torch.cat([x, torch.full((x.shape[0], n), fill, dtype=x.dtype)], 1)
            return torch.cat([x, torch.zeros(x.shape[0], x.shape[1], n, x.shape[3], dtype=x.dtype)], 2)

        return {"mask": torch.cat([pad(a["mask"], False), pad(b["mask"], False)]),
                "pooled": torch.cat([a["pooled"], b["pooled"]]),
                "kv": {key: (torch.cat([pad(a["kv"][key][0], 0), pad(b["kv"][key][0], 0)]),
                             torch.cat([pad(a["kv"][key][1], 0), pad(b["kv"][key][1], 0)])) for key in a["kv"]}}

    def _time(self, tau: torch.Tensor) -> torch.Tensor:
        n = self.c.time_freqs
        freqs = torch.exp(-math.log(10000.0) * torch.arange(n, dtype=torch.float64) / n)
        a = 1000.0 * tau.to(torch.float64)[:, None] * freqs[None]
        return torch.cat([torch.cos(a), torch.sin(a)], -1).to(tau.dtype)

    def _tokens(self, tower: str, x: torch.Tensor) -> torch.Tensor:
        P, c = self.P, self.c
        g_dim, s_dim = TOWER_DIMS[tower]
        B = x.shape[0]
        g = x[:, :g_dim] @ P(f"{tower}.in_g.w") + P(f"{tower}.in_g.b")
        s = x[:, g_dim:].reshape(B, c.n_slots, s_dim) @ P(f"{tower}.in_s.w") + P(f"{tower}.in_s.b")
        return torch.cat([g[:, None], s], 1) + P("slot_pos")[None] + P(f"{tower}.type")

    def _out(self, tower: str, h: torch.Tensor) -> torch.Tensor:
        P = self.P
        h = self.ln(f"{tower}.ln_out", h)
        g = h[:, 0] @ P(f"{tower}.out_g.w") + P(f"{tower}.out_g.b")
        s = h[:, 1:] @ P(f"{tower}.out_s.w") + P(f"{tower}.out_s.b")
        return torch.cat([g, s.reshape(h.shape[0], -1)], 1)

    def velocity(self, xv, xa, tau, text):
        P, c = self.P, self.c
        temb = F.silu(self._time(tau) @ P("time.w1") + P("time.b1")) @ P("time.w2") + P("time.b2")
        cond = F.silu(temb + text["pooled"] @ P("cond.w") + P("cond.b"))
        h = {"video": self._tokens("video", xv), "audio": self._tokens("audio", xa)}
        for l in range(c.layers):
            new = {}
            for t, other in (("video", "audio"), ("audio", "video")):
                pre = f"{t}.blocks.{l}"
                x = h[t]
                mod = cond @ P(pre + ".mod.w") + P(pre + ".mod.b")
                sh1, sc1, sh2, sc2 = (mod[:, None, i * c.d : (i + 1) * c.d] for i in range(4))
                z = self.ln(pre + ".ln1", x) * (1.0 + sc1) + sh1
                x = x + self.attn(pre + ".self", z, *self.kv(pre + ".self", z))
                x = x + self.attn(pre + ".cross", self.ln(pre + ".ln2", x), *text["kv"][(t, l)], text["mask"])
                eye = torch.eye(c.n_slots + 1, dtype=x.dtype)
                align = P(pre + ".bridge.align")[None, :, None, None] * eye[None, None]
                x = x + self.attn(pre + ".bridge", self.ln(pre + ".ln3", x),
                                  *self.kv(pre + ".bridge", self.ln(pre + ".lnb", h[other])), bias=align)
                z = self.ln(pre + ".ln4", x) * (1.0 + sc2) + sh2
                new[t] = x + self.mlp(pre + ".mlp", z)
            h = new
        return self._out("video", h["video"]), self._out("audio", h["audio"])

    def forward(self, xv, xa, tau, idx, wt, keep_words):
        return self.velocity(xv, xa, tau, self.encode_text(idx, wt, keep_words))
