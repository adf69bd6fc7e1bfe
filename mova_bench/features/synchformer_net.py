"""The Synchformer network (Iashin et al., ICASSP 2024), our own torch implementation.

Written from the architecture of the AudioSet checkpoint ``24-01-04T16-39-21`` as MMAudio and
av-benchmark load it (``synchformer_state_dict.pth``, a plain state dict of 513 tensors,
237,460,245 parameters): hkchengrex/av-benchmark ``av_bench/synchformer/*`` at commit
``050a5cdb9bbd1a6f8cbb9fdde076992a695e2501`` (itself a trimmed copy of v-iashin/Synchformer
``b66668a1521d7567cc760e5544b2b5b53179b687``). Module and parameter names follow that state dict
exactly, so the checkpoint loads with ``strict=True``; no code is shared with upstream and nothing
here needs ``transformers`` (upstream's AST wraps transformers<5 modules).

Three parts (``D`` = 768 at full size):

* ``vfeat_extractor`` — MotionFormer with divided space-time attention (ViT-B/16, 12 blocks,
  12 heads, tubelets of 2 frames × 16 × 16 px, separate spatial and temporal position
  embeddings). A 16-frame 224² segment gives 8 × 14 × 14 tokens after the CLS token; each block
  is temporal attention (``norm3``/``timeattn``), then spatial attention (``norm1``/``attn``),
  then the MLP (``norm2``/``mlp``), all pre-norm residual (LayerNorm eps 1e-6). The CLS token
  attends to every token; patch tokens attend to the CLS token plus their own time column
  (temporal) or their own frame (spatial). After the final ``norm`` the CLS token is dropped and
  ``spatial_attn_agg`` (a pre-norm ``nn.TransformerEncoderLayer``-shaped layer with its own CLS
  token, GELU, FF 3072, eps 1e-6) pools each frame's 14 × 14 tokens → (B, S, 8, D).
  ``patch_embed`` (a 2-D patch conv) is unused by the forward pass but is in the checkpoint.
* ``afeat_extractor`` — AST (ViT-B, 12 layers, 12 heads, pre-norm ViT layers,
  LayerNorm eps 1e-12, exact GELU) on a (128 mel × 66 frame) log-mel segment: 16 × 16 patches at
  stride 10 → 12 (freq) × 6 (time) tokens, plus CLS and distillation tokens, position embeddings
  cut to 74 rows. After the final ``layernorm`` the two extra tokens are dropped and
  ``freq_attn_agg`` pools the 12 frequency tokens of each of the 6 time steps → (B, S, 6, D).
* ``vproj``/``aproj`` (Linear D→D) and ``transformer`` — 3 minGPT blocks (8 heads, LayerNorm
  eps 1e-5, exact GELU) over ``[OFF, v (S·8), MOD, a (S·6)]`` plus a learned position embedding of
  1 + 14·8 + 1 + 14·6 = 198 rows (so S = 14 segments exactly), ``ln_f``, and ``off_head``
  (D → 21 offset classes) on the OFF token.

Dropout is absent (evaluation only). Attention uses :func:`torch.nn.functional.scaled_dot_product_attention`;
the aggregation layers compute only their CLS row (the only output upstream keeps), which is the
same arithmetic as the full layer for that row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SynchformerConfig:
    """Sizes of the network; the defaults are the released AudioSet checkpoint's."""

    dim: int = 768
    # video (MotionFormer, divided space-time)
    v_depth: int = 12
    v_heads: int = 12
    img_size: int = 224
    patch: int = 16
    tubelet: int = 2
    seg_frames: int = 16
    # audio (AST)
    a_depth: int = 12
    a_heads: int = 12
    n_mels: int = 128
    spec_frames: int = 66
    a_patch: int = 16
    a_stride: int = 10
    ast_max_length: int = 1024  # AST's pretraining length; the checkpoint keeps only the first rows
    # aggregation layers (nn.TransformerEncoderLayer shape)
    agg_heads: int = 12
    mlp_ratio: int = 4
    # global transformer
    g_depth: int = 3
    g_heads: int = 8
    n_segments: int = 14
    n_classes: int = 21

    @property
    def grid(self) -> int:
        return self.img_size // self.patch

    @property
    def v_time(self) -> int:
        return self.seg_frames // self.tubelet

    @property
    def a_freq(self) -> int:
        return (self.n_mels - self.a_patch) // self.a_stride + 1

    @property
    def a_time(self) -> int:
        return (self.spec_frames - self.a_patch) // self.a_stride + 1

    @property
    def global_tokens(self) -> int:
        return 1 + self.n_segments * self.v_time + 1 + self.n_segments * self.a_time


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    """(B, N, h·d) → (B, h, N, d)."""
    b, n, c = x.shape
    return x.view(b, n, h, c // h).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """(B, h, N, d) → (B, N, h·d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


# ------------------------------------------------------------------------------------------------
# aggregation layer (the shape of a norm-first nn.TransformerEncoderLayer with a CLS token)
# ------------------------------------------------------------------------------------------------


class _SelfAttnParams(nn.Module):
    """Parameters named as ``nn.MultiheadAttention``'s: ``in_proj_weight``/``in_proj_bias``, ``out_proj``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)


class ClsAggregator(nn.Module):
    """A pre-norm transformer encoder layer over ``[CLS, tokens]`` returning the CLS row.

    Same parameters as upstream's ``BaseEncoderLayer`` (an ``nn.TransformerEncoderLayer`` with
    ``norm_first=True``, GELU, LayerNorm eps 1e-6, plus ``cls_token``); only the CLS query is
    computed, since upstream keeps ``x[:, 0]`` alone."""

    def __init__(self, dim: int, heads: int, ff: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.heads = heads
        self.self_attn = _SelfAttnParams(dim)
        self.linear1 = nn.Linear(dim, ff)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) → (B, D)."""
        b, _, d = x.shape
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        h = self.norm1(x)
        w, bias = self.self_attn.in_proj_weight, self.self_attn.in_proj_bias
        q = F.linear(h[:, :1], w[:d], bias[:d])
        k = F.linear(h, w[d: 2 * d], bias[d: 2 * d])
        v = F.linear(h, w[2 * d:], bias[2 * d:])
        a = F.scaled_dot_product_attention(_heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads))
        cls = x[:, :1] + self.self_attn.out_proj(_merge(a))
        cls = cls + self.linear2(F.gelu(self.linear1(self.norm2(cls))))
        return cls[:, 0]


# ------------------------------------------------------------------------------------------------
# video: MotionFormer (divided space-time attention)
# ------------------------------------------------------------------------------------------------


class _Conv(nn.Module):
    """A holder named ``proj`` (upstream's ``PatchEmbed``/``PatchEmbed3D``)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.proj = conv


class DividedAttention(nn.Module):
    """Attention of a divided space-time block: the CLS token attends to every token; each patch
    token attends to the CLS token plus the tokens of its group (same frame for space, same
    spatial position for time)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, frames: int, per_frame: int, over: str) -> torch.Tensor:
        b, n, c = x.shape
        h, d = self.heads, c // self.heads
        q, k, v = (_heads(t, h) for t in self.qkv(x).chunk(3, dim=-1))  # (b, h, n, d)
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (b, h, 1, d)

        def groups(t: torch.Tensor) -> torch.Tensor:
            t = t[:, :, 1:].reshape(b, h, frames, per_frame, d)
            if over == "time":  # sequences along time, one per spatial position
                t = t.transpose(2, 3)
            return t  # (b, h, G, L, d)

        qg, kg, vg = groups(q), groups(k), groups(v)
        g = qg.shape[2]
        kc = k[:, :, :1, None].expand(b, h, g, 1, d)
        vc = v[:, :, :1, None].expand(b, h, g, 1, d)
        out = F.scaled_dot_product_attention(qg, torch.cat((kc, kg), dim=3), torch.cat((vc, vg), dim=3))
        if over == "time":
            out = out.transpose(2, 3)
        out = out.reshape(b, h, frames * per_frame, d)
        out = torch.cat((cls_out, out), dim=2)
        return self.proj(_merge(out))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """time attention → space attention → MLP, each pre-norm with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DividedAttention(dim, heads)
        self.timeattn = DividedAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, dim * mlp_ratio)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, frames: int, per_frame: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), frames, per_frame, "time")
        x = x + self.attn(self.norm1(x), frames, per_frame, "space")
        return x + self.mlp(self.norm2(x))


class MotionFormer(nn.Module):
    """(B, S, T=16, 3, H, W) normalised segments → (B, S, 8, D) per-frame-pair features."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.dim, cfg.patch
        self.patch_embed = _Conv(nn.Conv2d(3, d, kernel_size=p, stride=p))
        self.patch_embed_3d = _Conv(nn.Conv3d(3, d, kernel_size=(cfg.tubelet, p, p), stride=(cfg.tubelet, p, p)))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid ** 2 + 1, d))
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.v_time, d))
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(d, cfg.v_heads, cfg.mlp_ratio) for _ in range(cfg.v_depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.spatial_attn_agg = ClsAggregator(d, cfg.agg_heads, cfg.mlp_ratio * d)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, s, t, c, hh, ww = video.shape
        if (t, c, hh, ww) != (cfg.seg_frames, 3, cfg.img_size, cfg.img_size):
            raise ValueError(f"video segments of shape {(t, c, hh, ww)}: expected "
                             f"{(cfg.seg_frames, 3, cfg.img_size, cfg.img_size)} (frames, channels, height, width)")
        x = video.reshape(b * s, t, c, hh, ww).transpose(1, 2)  # (BS, C, T, H, W)
        x = self.patch_embed_3d.proj(x)  # (BS, D, t, h, w)
        bs, d, ft, gh, gw = x.shape
        n = gh * gw
        x = x.flatten(2).transpose(1, 2)  # (BS, t·h·w, D), time-major
        pos = self.pos_embed[:, 1:].repeat(1, ft, 1) + self.temp_embed.repeat_interleave(n, dim=1)
        x = torch.cat((self.cls_token.expand(bs, -1, -1) + self.pos_embed[:, :1], x + pos), dim=1)
        for blk in self.blocks:
            x = blk(x, ft, n)
        x = self.norm(x[:, 1:])  # (BS, t·n, D); the CLS token is not used downstream
        x = self.spatial_attn_agg(x.reshape(bs * ft, n, d))  # (BS·t, D)
        return x.view(b, s, ft, d)


# ------------------------------------------------------------------------------------------------
# audio: AST
# ------------------------------------------------------------------------------------------------


class _Named(nn.Module):
    """An empty module to hold named children (to reproduce upstream's nesting)."""


class _Linear(nn.Module):
    def __init__(self, fin: int, fout: int) -> None:
        super().__init__()
        self.dense = nn.Linear(fin, fout)


class ASTLayer(nn.Module):
    """A ViT layer with HF's AST names: pre-norm attention and MLP, exact GELU."""

    def __init__(self, dim: int, heads: int, ff: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention = _Named()
        self.attention.attention = _Named()
        self.attention.attention.query = nn.Linear(dim, dim)
        self.attention.attention.key = nn.Linear(dim, dim)
        self.attention.attention.value = nn.Linear(dim, dim)
        self.attention.output = _Linear(dim, dim)
        self.intermediate = _Linear(dim, ff)
        self.output = _Linear(ff, dim)
        self.layernorm_before = nn.LayerNorm(dim, eps=eps)
        self.layernorm_after = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = self.attention.attention
        h = self.layernorm_before(x)
        q, k, v = (_heads(m(h), self.heads) for m in (att.query, att.key, att.value))
        x = x + self.attention.output.dense(_merge(F.scaled_dot_product_attention(q, k, v)))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class ASTBackbone(nn.Module):
    """``ast`` of upstream: embeddings, encoder, final layernorm."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        d = cfg.dim
        eps = 1e-12
        self.embeddings = _Named()
        self.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.embeddings.distillation_token = nn.Parameter(torch.zeros(1, 1, d))
        self.embeddings.patch_embeddings = _Named()
        self.embeddings.patch_embeddings.projection = nn.Conv2d(1, d, kernel_size=cfg.a_patch, stride=cfg.a_stride)
        self.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, cfg.a_freq * cfg.a_time + 2, d))
        self.encoder = _Named()
        self.encoder.layer = nn.ModuleList(ASTLayer(d, cfg.a_heads, cfg.mlp_ratio * d, eps) for _ in range(cfg.a_depth))
        self.layernorm = nn.LayerNorm(d, eps=eps)


class AST(nn.Module):
    """(B, S, n_mels, 66) normalised log-mel segments → (B, S, 6, D) per-time-step features."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ast = ASTBackbone(cfg)
        self.freq_attn_agg = ClsAggregator(cfg.dim, cfg.a_heads, cfg.mlp_ratio * cfg.dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, s, nf, nt = mel.shape
        if (nf, nt) != (cfg.n_mels, cfg.spec_frames):
            raise ValueError(f"audio segments of shape {(nf, nt)}: expected {(cfg.n_mels, cfg.spec_frames)} (mels, frames)")
        emb = self.ast.embeddings
        x = emb.patch_embeddings.projection(mel.reshape(b * s, 1, nf, nt))  # (BS, D, f, t)
        bs, d, f, t = x.shape
        x = x.flatten(2).transpose(1, 2)  # (BS, f·t, D), frequency-major
        extra = torch.cat((emb.cls_token, emb.distillation_token), dim=1).expand(bs, -1, -1)
        x = torch.cat((extra, x), dim=1) + emb.position_embeddings
        for layer in self.ast.encoder.layer:
            x = layer(x)
        x = self.ast.layernorm(x)[:, 2:]  # drop CLS and distillation tokens
        x = x.reshape(bs, f, t, d).transpose(1, 2).reshape(bs * t, f, d)  # one sequence per time step
        return self.freq_attn_agg(x).view(b, s, t, d)


# ------------------------------------------------------------------------------------------------
# global transformer (SparseSync/minGPT blocks) and the whole model
# ------------------------------------------------------------------------------------------------


class _GPTAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(m(x), self.heads) for m in (self.query, self.key, self.value))
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class _GPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = _GPTAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GlobalTransformer(nn.Module):
    """``[OFF, v, MOD, a]`` + learned positions → 3 blocks → ``ln_f`` → ``off_head`` on OFF."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.vis_in_lnorm = nn.LayerNorm(d)
        self.aud_in_lnorm = nn.LayerNorm(d)
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_emb_cfg = _Named()
        self.pos_emb_cfg.pos_emb = nn.Parameter(torch.zeros(1, cfg.global_tokens, d))
        self.blocks = nn.Sequential(*(_GPTBlock(d, cfg.g_heads) for _ in range(cfg.g_depth)))
        self.ln_f = nn.LayerNorm(d)
        self.off_head = nn.Linear(d, cfg.n_classes)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b = v.shape[0]
        x = torch.cat((self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(v),
                       self.MOD_tok.expand(b, -1, -1), self.aud_in_lnorm(a)), dim=1)
        x = self.blocks(x + self.pos_emb_cfg.pos_emb)
        return self.off_head(self.ln_f(x[:, 0]))


class SynchformerNet(nn.Module):
    """The whole model with the checkpoint's top-level names."""

    def __init__(self, cfg: SynchformerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SynchformerConfig()
        self.vfeat_extractor = MotionFormer(cfg)
        self.afeat_extractor = AST(cfg)
        self.vproj = nn.Linear(cfg.dim, cfg.dim)
        self.aproj = nn.Linear(cfg.dim, cfg.dim)
        self.transformer = GlobalTransformer(cfg)

    def extract_vfeats(self, video: torch.Tensor) -> torch.Tensor:
        """(B, S, 16, 3, 224, 224) → (B, S, 8, D)."""
        return self.vfeat_extractor(video)

    def extract_afeats(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, S, 128, 66) → (B, S, 6, D)."""
        return self.afeat_extractor(mel)

    def compare_v_a(self, vfeats: torch.Tensor, afeats: torch.Tensor) -> torch.Tensor:
        """(B, 14, 8, D), (B, 14, 6, D) → (B, 21) offset logits."""
        cfg = self.cfg
        if vfeats.shape[1] != cfg.n_segments or afeats.shape[1] != cfg.n_segments:
            raise ValueError(f"compare_v_a needs exactly {cfg.n_segments} segments of each stream "
                             f"(its position embedding has {cfg.global_tokens} rows), got "
                             f"{vfeats.shape[1]} video and {afeats.shape[1]} audio segments")
        v = self.vproj(vfeats).flatten(1, 2)
        a = self.aproj(afeats).flatten(1, 2)
        return self.transformer(v, a)


def reduced_config(**overrides) -> SynchformerConfig:
    """A small configuration with the full model's structure (for fast tests)."""
    base = dict(dim=32, v_depth=1, v_heads=4, img_size=32, a_depth=1, a_heads=4, agg_heads=4, g_depth=1, g_heads=4)
    base.update(overrides)
    return SynchformerConfig(**base)


def build_synchformer(cfg: SynchformerConfig | None = None, *, seed: int | None = None) -> SynchformerNet:
    """The network, in eval mode; with ``seed`` every parameter is drawn N(0, 0.02²) (random
    weights for tests and benchmarks; LayerNorm weights around 1)."""
    net = SynchformerNet(cfg)
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in net.named_parameters():
                noise = torch.randn(p.shape, generator=g) * 0.02
                p.copy_(noise + 1.0 if ("norm" in name or "ln" in name) and name.endswith("weight") and p.dim() == 1 else noise)
    return net.eval()
