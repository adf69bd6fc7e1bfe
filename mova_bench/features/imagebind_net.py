"""ImageBind (Girdhar et al., CVPR 2023), our own torch implementation of the parts IB-score uses.

Written from the architecture of ``imagebind_huge`` (facebookresearch/ImageBind, as packaged by
``imagebind-unofficial`` 0.1.1: ``imagebind/models/imagebind_model.py``, ``transformer.py``,
``multimodal_preprocessors.py``, ``helpers.py``). Module and parameter names follow the released
checkpoint ``imagebind_huge.pth`` (a plain state dict of 1,311 tensors, 1,200,781,057 parameters
for all six modalities), so its vision and audio tensors load with ``strict=True``. No code is
shared with upstream, and nothing here needs einops, timm, iopath or torchaudio.

Forward passes exist for two modalities (``D`` = width of the modality's trunk):

* **vision** — ``modality_preprocessors.vision``: the 2-frame clip (B, 3, 2, 224, 224) (a single
  frame is repeated to 2, as upstream's ``PadIm2Video``) → ``rgbt_stem.proj.1`` (Conv3d, kernel
  = stride = 2 × 14 × 14, no bias) → 16 × 16 = 256 tokens, a CLS token (``cls_token``) in front,
  learned position embedding (``pos_embedding_helper.pos_embed``, 257 rows). Trunk: LayerNorm
  (eps 1e-6, ``pre_transformer_layer.0``), then pre-norm blocks (``norm_1`` → multi-head attention
  ``attn.in_proj_*``/``attn.out_proj`` → residual; ``norm_2`` → MLP ``fc1``/GELU/``fc2`` (4·D) →
  residual; LayerNorm eps 1e-6). Head: LayerNorm eps 1e-6 (``.0``), CLS token, Linear D → 1024
  without bias (``.2``). Postprocessor: L2 normalisation.
* **audio** — ``modality_preprocessors.audio``: the (B, 1, 128, 204) log-mel → ``rgbt_stem.proj``
  (Conv2d 16 × 16, stride 10, no bias) → 12 × 19 = 228 tokens → LayerNorm (eps 1e-5,
  ``rgbt_stem.norm_layer``), CLS token, learned position embedding (229 rows). Trunk: no
  pre-norm; blocks as above whose attention appends a learned key and value (``attn.bias_k``,
  ``attn.bias_v``: ``nn.MultiheadAttention(add_bias_kv=True)``). Head as vision. Postprocessor:
  L2 normalisation, then × ``exp(log_logit_scale)`` clipped at 100 (a buffer, log 20:
  ``modality_postprocessors.audio.1.log_logit_scale``), so audio embeddings have norm ≈ 20.

Upstream's ``forward`` takes (B, S, …) inputs of S clips and returns the **mean over S** of the
postprocessed embeddings (not re-normalised): :meth:`ImageBindNet.embed_vision` /
:meth:`ImageBindNet.embed_audio` return the per-clip rows and :func:`mean_over_clips` the mean.
Drop-path and dropout are evaluation no-ops and absent.

The text, depth, thermal and IMU modules are built only to describe the whole checkpoint (their
keys and shapes, :func:`checkpoint_manifest`); they have no forward pass here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

#: every modality of the released checkpoint, in its key order
ALL_MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")
#: the modalities with a forward pass here
EMBED_MODALITIES = ("vision", "audio")


@dataclass(frozen=True)
class ImageBindConfig:
    """Sizes of the network; the defaults are ``imagebind_huge()``'s."""

    out_dim: int = 1024
    # vision (ViT-H/14 on 2-frame clips)
    vision_dim: int = 1280
    vision_blocks: int = 32
    vision_heads: int = 16
    video_frames: int = 2
    img_size: int = 224
    patch: int = 14
    # audio (ViT-B on 128 × 204 log-mel, 16 × 16 patches, stride 10)
    audio_dim: int = 768
    audio_blocks: int = 12
    audio_heads: int = 12
    n_mels: int = 128
    target_len: int = 204
    audio_kernel: int = 16
    audio_stride: int = 10
    # the other modalities (keys and shapes only)
    text_dim: int = 1024
    text_blocks: int = 24
    text_heads: int = 16
    context_length: int = 77
    vocab_size: int = 49408
    depth_dim: int = 384
    depth_blocks: int = 12
    depth_heads: int = 8
    depth_kernel: int = 16
    thermal_dim: int = 768
    thermal_blocks: int = 12
    thermal_heads: int = 12
    thermal_kernel: int = 16
    imu_dim: int = 512
    imu_blocks: int = 6
    imu_heads: int = 8
    imu_kernel: int = 8
    imu_channels: int = 6
    imu_len: int = 2000
    mlp_ratio: int = 4
    audio_logit_scale: float = 20.0

    @property
    def vision_tokens(self) -> int:
        return 1 + (self.video_frames // 2) * (self.img_size // self.patch) ** 2

    @property
    def audio_grid(self) -> tuple[int, int]:
        k, s = self.audio_kernel, self.audio_stride
        return (self.n_mels - k) // s + 1, (self.target_len - k) // s + 1


#: ``imagebind_huge()``
HUGE = ImageBindConfig()


def reduced_config(dim: int = 32, blocks: int = 2, heads: int = 2, out_dim: int = 24) -> ImageBindConfig:
    """A small network of the same structure for tests and benchmarks (image size, patch sizes,
    mel bins and context length as the released model, so preprocessing is unchanged)."""
    return replace(HUGE, out_dim=out_dim, vision_dim=dim, vision_blocks=blocks, vision_heads=heads, audio_dim=dim,
                   audio_blocks=blocks, audio_heads=heads, text_dim=dim, text_blocks=1, text_heads=heads,
                   depth_dim=dim, depth_blocks=1, depth_heads=heads, thermal_dim=dim, thermal_blocks=1,
                   thermal_heads=heads, imu_dim=dim, imu_blocks=1, imu_heads=heads)


# -- building blocks ---------------------------------------------------------------------------


class Attention(nn.Module):
    """``nn.MultiheadAttention``'s parameters (packed ``in_proj``, ``out_proj``, optional
    ``bias_k``/``bias_v`` appended as one extra key/value token) on (B, L, D) inputs."""

    def __init__(self, dim: int, heads: int, bias_kv: bool):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        if bias_kv:
            self.bias_k = nn.Parameter(torch.zeros(1, 1, dim))
            self.bias_v = nn.Parameter(torch.zeros(1, 1, dim))
        else:
            self.bias_k = self.bias_v = None
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(b, 1, d)], dim=1)
            v = torch.cat([v, self.bias_v.expand(b, 1, d)], dim=1)
            if mask is not None:
                mask = F.pad(mask, (0, 1))
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, heads: int, bias_kv: bool, mlp_ratio: int):
        super().__init__()
        self.attn = Attention(dim, heads, bias_kv)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(mlp_ratio * dim))
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), mask)
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    """``modality_trunks.<m>``: optional pre-LayerNorm (``pre_transformer_layer.0``) and blocks."""

    def __init__(self, dim: int, blocks: int, heads: int, *, pre_ln: bool, bias_kv: bool, mlp_ratio: int):
        super().__init__()
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(dim, eps=1e-6)) if pre_ln else None
        self.blocks = nn.Sequential(*[Block(dim, heads, bias_kv, mlp_ratio) for _ in range(blocks)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre_transformer_layer is not None:
            x = self.pre_transformer_layer(x)
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class PosEmbed(nn.Module):
    """``pos_embedding_helper``: a learned (1, tokens, D) table."""

    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))


class Stem(nn.Module):
    """``rgbt_stem`` / ``depth_stem`` / ``imu_stem``: a projection (``proj``) and an optional
    LayerNorm (``norm_layer``, eps 1e-5)."""

    def __init__(self, proj: nn.Module, norm_dim: int | None = None):
        super().__init__()
        self.proj = proj
        self.norm_layer = nn.LayerNorm(norm_dim) if norm_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, D, *grid) -> (B, tokens, D)
        return self.norm_layer(x) if self.norm_layer is not None else x


class PatchPreprocessor(nn.Module):
    """Vision, audio, depth and thermal preprocessors: stem, CLS token, position embedding."""

    def __init__(self, stem_name: str, stem: Stem, tokens: int, dim: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.stem_name = stem_name
        setattr(self, stem_name, stem)
        self.pos_embedding_helper = PosEmbed(tokens, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = getattr(self, self.stem_name)(x)
        if tokens.shape[1] + 1 != self.pos_embedding_helper.pos_embed.shape[1]:
            raise ValueError(f"input of shape {tuple(x.shape)} gives {tokens.shape[1]} patches; this network's position "
                             f"embedding has {self.pos_embedding_helper.pos_embed.shape[1] - 1}")
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class TextPreprocessor(nn.Module):
    """Keys only: token embedding, position embedding, causal mask buffer."""

    def __init__(self, vocab: int, context: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, context, dim))
        self.register_buffer("mask", torch.full((context, context), float("-inf")).triu_(1))
        self.token_embedding = nn.Embedding(vocab, dim)


class ImuPreprocessor(nn.Module):
    """Keys only: position embedding, CLS token, linear stem with LayerNorm."""

    def __init__(self, cfg: ImageBindConfig):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.imu_len // cfg.imu_kernel + 1, cfg.imu_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.imu_dim))
        self.imu_stem = Stem(nn.Linear(cfg.imu_channels * cfg.imu_kernel, cfg.imu_dim, bias=False), cfg.imu_dim)


class LogitScale(nn.Module):
    """``LearnableLogitScaling``: × min(exp(log_logit_scale), 100); a parameter when learnable
    (text), else a buffer."""

    def __init__(self, init: float, learnable: bool):
        super().__init__()
        value = torch.tensor(math.log(init), dtype=torch.float32)
        if learnable:
            self.log_logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_logit_scale", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=100) * x


def _head(dim: int, out: int, *, imu: bool = False) -> nn.Sequential:
    # LayerNorm, CLS selection (no parameters), [dropout,] projection: keys .0 and .2 (.3 for IMU)
    mid = [nn.Identity(), nn.Identity()] if imu else [nn.Identity()]
    return nn.Sequential(nn.LayerNorm(dim, eps=1e-6), *mid, nn.Linear(dim, out, bias=False))


class _TextHead(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out, bias=False))


class ImageBindNet(nn.Module):
    """The ImageBind modules of ``modalities`` (default: vision and audio) in the checkpoint's
    key layout (``modality_preprocessors`` / ``modality_trunks`` / ``modality_heads`` /
    ``modality_postprocessors``)."""

    def __init__(self, cfg: ImageBindConfig | None = None, modalities: tuple[str, ...] = EMBED_MODALITIES):
        super().__init__()
        cfg = cfg or HUGE
        self.cfg = cfg
        unknown = set(modalities) - set(ALL_MODALITIES)
        if unknown:
            raise ValueError(f"unknown ImageBind modalities {sorted(unknown)}; valid: {', '.join(ALL_MODALITIES)}")
        mods = [m for m in ALL_MODALITIES if m in modalities]
        self.modalities = tuple(mods)
        pre, trunks, heads, post = {}, {}, {}, {}
        r = cfg.mlp_ratio
        for m in mods:
            if m == "vision":
                conv = nn.Conv3d(3, cfg.vision_dim, kernel_size=(2, cfg.patch, cfg.patch), stride=(2, cfg.patch, cfg.patch),
                                 bias=False)
                pre[m] = PatchPreprocessor("rgbt_stem", Stem(nn.Sequential(nn.Identity(), conv)), cfg.vision_tokens,
                                           cfg.vision_dim)
                trunks[m] = Trunk(cfg.vision_dim, cfg.vision_blocks, cfg.vision_heads, pre_ln=True, bias_kv=False, mlp_ratio=r)
                heads[m] = _head(cfg.vision_dim, cfg.out_dim)
                post[m] = nn.Identity()  # L2 normalisation only
            elif m == "audio":
                conv = nn.Conv2d(1, cfg.audio_dim, kernel_size=cfg.audio_kernel, stride=cfg.audio_stride, bias=False)
                gh, gw = cfg.audio_grid
                pre[m] = PatchPreprocessor("rgbt_stem", Stem(conv, cfg.audio_dim), 1 + gh * gw, cfg.audio_dim)
                trunks[m] = Trunk(cfg.audio_dim, cfg.audio_blocks, cfg.audio_heads, pre_ln=False, bias_kv=True, mlp_ratio=r)
                heads[m] = _head(cfg.audio_dim, cfg.out_dim)
                post[m] = nn.Sequential(nn.Identity(), LogitScale(cfg.audio_logit_scale, learnable=False))
            elif m == "text":
                pre[m] = TextPreprocessor(cfg.vocab_size, cfg.context_length, cfg.text_dim)
                trunks[m] = Trunk(cfg.text_dim, cfg.text_blocks, cfg.text_heads, pre_ln=False, bias_kv=False, mlp_ratio=r)
                heads[m] = _TextHead(cfg.text_dim, cfg.out_dim)
                post[m] = nn.Sequential(nn.Identity(), LogitScale(1 / 0.07, learnable=True))
            elif m in ("depth", "thermal"):
                dim = getattr(cfg, f"{m}_dim")
                k = getattr(cfg, f"{m}_kernel")
                stem = Stem(nn.Conv2d(1, dim, kernel_size=k, stride=k, bias=False), dim)
                pre[m] = PatchPreprocessor("depth_stem" if m == "depth" else "rgbt_stem", stem,
                                           1 + (cfg.img_size // k) ** 2, dim)
                trunks[m] = Trunk(dim, getattr(cfg, f"{m}_blocks"), getattr(cfg, f"{m}_heads"), pre_ln=False, bias_kv=True,
                                  mlp_ratio=r)
                heads[m] = _head(dim, cfg.out_dim)
                post[m] = nn.Sequential(nn.Identity(), LogitScale(5.0 if m == "depth" else 10.0, learnable=False))
            else:  # imu
                pre[m] = ImuPreprocessor(cfg)
                trunks[m] = Trunk(cfg.imu_dim, cfg.imu_blocks, cfg.imu_heads, pre_ln=False, bias_kv=True, mlp_ratio=r)
                heads[m] = _head(cfg.imu_dim, cfg.out_dim, imu=True)
                post[m] = nn.Sequential(nn.Identity(), LogitScale(5.0, learnable=False))
        self.modality_preprocessors = nn.ModuleDict(pre)
        self.modality_trunks = nn.ModuleDict(trunks)
        self.modality_heads = nn.ModuleDict(heads)
        self.modality_postprocessors = nn.ModuleDict(post)

    def _embed(self, m: str, x: torch.Tensor) -> torch.Tensor:
        tokens = self.modality_preprocessors[m](x)
        tokens = self.modality_trunks[m](tokens)
        head = self.modality_heads[m]
        emb = head[-1](head[0](tokens)[:, 0])
        emb = F.normalize(emb, dim=-1, p=2)
        post = self.modality_postprocessors[m]
        return post[1](emb) if isinstance(post, nn.Sequential) else emb

    def embed_vision(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) clips of T = 2 frames (T = 1 is repeated to 2) → (N, out_dim) unit vectors."""
        if clips.ndim == 4:
            clips = clips.unsqueeze(2)
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"vision input of shape {tuple(clips.shape)}: expected (N, 3, T, H, W)")
        if clips.shape[2] == 1:
            clips = clips.repeat(1, 1, 2, 1, 1)
        return self._embed("vision", clips)

    def embed_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """(N, 1, 128, 204) normalised log-mel clips → (N, out_dim) embeddings of norm ≈ 20."""
        if mels.ndim != 4 or mels.shape[1] != 1:
            raise ValueError(f"audio input of shape {tuple(mels.shape)}: expected (N, 1, n_mels, frames)")
        return self._embed("audio", mels)


def mean_over_clips(emb: torch.Tensor) -> torch.Tensor:
    """Upstream's multi-clip reduction: the plain mean of the per-clip embeddings (no re-normalisation)."""
    return emb.mean(dim=0)


def checkpoint_manifest(cfg: ImageBindConfig | None = None) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the whole checkpoint (all six modalities) for ``cfg``, in its order; built
    on the meta device (nothing allocated)."""
    with torch.device("meta"):
        full = ImageBindNet(cfg, ALL_MODALITIES)
    return {k: tuple(v.shape) for k, v in full.state_dict().items()}


def build_imagebind(cfg: ImageBindConfig | None = None, *, seed: int | None = None) -> ImageBindNet:
    """The vision + audio network in eval mode; with ``seed`` every parameter is drawn N(0, 0.02²)
    (LayerNorm weights around 1): random weights for tests and benchmarks."""
    net = ImageBindNet(cfg)
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in net.named_parameters():
                noise = torch.randn(p.shape, generator=g) * 0.02
                is_norm = p.dim() == 1 and name.endswith("weight") and ("norm" in name or ".0.weight" in name)
                p.copy_(noise + 1.0 if is_norm else noise)
    return net.eval()
