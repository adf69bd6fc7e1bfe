"""``openclip-vit-b-32`` / ``openclip-vit-l-14``: text–frame alignment (``clip_score[...]``).

Conventions (open_clip_torch 3.x with the OpenAI CLIP weights; torchmetrics ``CLIPScore``):

* Network: ``open_clip.create_model("ViT-B-32-quickgelu" | "ViT-L-14-quickgelu", pretrained=None)``.
  The OpenAI weights were trained with QuickGELU; open_clip 3.3 only warns when the plain name is
  used with them, so the ``-quickgelu`` architecture is built explicitly.
* Weights: the weights entry ``openclip-vit-b-32-openai`` / ``openclip-vit-l-14-openai``. Accepted
  containers: the OpenAI TorchScript archive (``ViT-B-32.pt``, read with ``torch.jit.load``: its
  ``state_dict()`` minus the ``input_resolution``/``context_length``/``vocab_size`` entries, as
  open_clip's ``load_openai_model`` does), a ``.safetensors`` file (``open_clip_model.safetensors``
  of the timm HF copies) or a plain state dict (``open_clip_pytorch_model.bin``, read with
  ``weights_only=True``; a ``{'state_dict'}`` wrapper and a ``module.`` prefix are removed). Loaded
  with ``strict=True`` after a key/shape check that names every missing, unexpected or
  differently shaped tensor.
* Frames: the decoder's ``"native"`` frames (the stream's own size, RGB uint8), sampled at
  ``fps`` frames per second (default 1): the first decoded frame of every ``1/fps`` interval
  from the first frame's time (:class:`~mova_bench.media.VideoNeed` ``fps``).
* Preprocessing: open_clip's own eval transform for the model's ``preprocess_cfg``
  (``image_transform_v2``) on PIL images: shortest side → 224 bicubic (PIL, antialiased), centre
  crop 224, RGB, ``[0, 1]``, CLIP mean (0.48145466, 0.4578275, 0.40821073) and std
  (0.26862954, 0.26130258, 0.27577711). Parity with the reference is by construction (the same
  transform object type), checked in the tests.
* Text: open_clip's bundled BPE tokenizer, 77 tokens (start/end tokens included; longer prompts
  are truncated by the tokenizer and ``text_truncated`` says so).
* Score (torchmetrics ``CLIPScore`` convention, METRICS.md): per frame ``100 × cos(text, frame)``
  of the L2-normalised ``encode_text``/``encode_image`` outputs, **not** clamped per frame
  (``clip_score_frames``); per clip ``clip_score = max(mean over frames, 0)`` — exactly what
  torchmetrics' ``CLIPScore`` returns when updated with the clip's frames and the prompt
  repeated (it clamps the mean at 0, not the samples). The original CLIPScore paper's
  ``2.5 × max(cos, 0)`` per sample is not used.
* Outputs: ``clip_score`` (), ``clip_score_frames`` (k,), ``frame_times`` (k,) s, ``embedding``
  (D,) the mean of the L2-normalised image embeddings (512-d B-32, 768-d L-14), ``has_text``
  () 1/0 and ``text_truncated`` () 1/0. A clip without prompt text gets ``clip_score`` NaN and
  ``has_text`` 0 (the metric counts it); a clip without frames raises.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import MovaBenchError
from mova_bench.features.base import TorchBackbone, cached_text_embeddings, forward_in_slices
from mova_bench.features.base import check_state_dict as _check_state_dict
from mova_bench.media import VideoNeed

#: entries an OpenAI TorchScript state dict carries that are not tensors of the model
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
DEFAULT_FPS = 1.0
#: frames per forward pass when the harness sets no batch size
DEFAULT_BATCH = 16


def check_state_dict(state: dict[str, Any], model: Any, what: str, fix: str) -> None:
    """Raise naming every missing, unexpected or differently shaped key of ``state`` against
    ``model.state_dict()`` (nothing is loaded partially)."""
    _check_state_dict(state, model, what, fix)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def read_openclip_state_dict(path: str | Path) -> dict[str, Any]:
    """The CLIP tensors of ``path`` (TorchScript archive, safetensors or plain state dict), as
    open_clip's key names; see the module docstring for the accepted containers."""
    import torch

    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(p), device="cpu")
    elif _is_torchscript(p):
        state = torch.jit.load(str(p), map_location="cpu").state_dict()
    else:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable container gets one clear error
            raise MovaBenchError(
                f"{p}: not a CLIP checkpoint this loader reads ({type(exc).__name__}: {exc})",
                fix="use the OpenAI TorchScript archive (mova-bench weights fetch openclip-vit-b-32-openai), "
                "open_clip_model.safetensors or open_clip_pytorch_model.bin",
            ) from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise MovaBenchError(f"{p}: expected a state dict of tensors, got {type(state).__name__}",
                             fix="use the OpenAI TorchScript archive or an open_clip state dict")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    for k in OPENAI_EXTRA_KEYS:
        state.pop(k, None)
    return dict(state)


def _bundle(model: Any, preprocess: Any, tokenizer: Any) -> Any:
    import torch

    class ClipBundle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.clip = model
            self.preprocess = preprocess
            self.tokenizer = tokenizer

    return ClipBundle()


def openclip_bundle(model: Any, arch: str) -> Any:
    """``model`` (an open_clip CLIP of ``arch``) with open_clip's eval transform for it and its tokenizer."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    return _bundle(model.eval(), preprocess, open_clip.get_tokenizer(arch))


def build_openclip(arch: str, weights: str | Path, device: Any = "cpu") -> Any:
    """open_clip model ``arch`` (built with ``pretrained=None``) with ``weights`` loaded strictly,
    plus open_clip's eval transform for it and its tokenizer."""
    import open_clip

    model = open_clip.create_model(arch, pretrained=None, device="cpu")
    state = read_openclip_state_dict(weights)
    check_state_dict(state, model, f"CLIP checkpoint {weights} for {arch}",
                     fix="use the weights of this architecture (B-32: openclip-vit-b-32-openai, L-14: openclip-vit-l-14-openai)")
    model.load_state_dict(state, strict=True)
    return openclip_bundle(model, arch).to(device)


def tokenize(tokenizer: Any, text: str) -> tuple[Any, bool]:
    """(1, 77) token ids of ``text`` and whether the tokenizer truncated it."""
    tokens = tokenizer([text])
    ctx = tokens.shape[-1]
    n = len(tokenizer.encode(text)) + 2 if hasattr(tokenizer, "encode") else 0
    return tokens, n > ctx


def clip_scores(image_emb: Any, text_emb: Any) -> tuple[np.ndarray, float]:
    """(per-frame 100·cos, per-clip max(mean, 0)) of (k, D) image and (D,) text embeddings
    (normalised here; torchmetrics ``CLIPScore`` arithmetic)."""
    import torch

    img = image_emb / image_emb.norm(p=2, dim=-1, keepdim=True)
    txt = text_emb / text_emb.norm(p=2, dim=-1, keepdim=True)
    frames = 100.0 * (img * txt.reshape(1, -1)).sum(dim=-1)
    clip = torch.clamp(frames.mean(), min=0.0)
    return frames.double().cpu().numpy(), float(clip)


class OpenClipBackbone(TorchBackbone):
    """OpenCLIP image/text towers with OpenAI weights; per-clip CLIP score of frames vs prompt."""

    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "text-video"
    kind: ClassVar[str] = "analysis"
    extra: ClassVar[str] = "clip"
    requires: ClassVar[tuple[str, ...]] = ("torch", "open_clip", "PIL")
    uses_text: ClassVar[bool] = True
    frame_level: ClassVar[bool] = False
    metric_names: ClassVar[dict[str, str]] = {"clip_score": "CLIP score"}
    #: no: without a prompt there is no CLIP score, and nothing else reads these embeddings, so the
    #: analysis records the clip as missing for this backbone instead of decoding it for nothing
    #: (``embed`` still copes with no prompt: image embedding only, ``has_text`` 0)
    text_optional: ClassVar[bool] = False
    video_needs: ClassVar[tuple[Any, ...]] = (VideoNeed("native", fps=DEFAULT_FPS),)
    #: open_clip architecture name (QuickGELU for the OpenAI weights)
    arch: ClassVar[str] = ""

    def __init__(self, **params: Any):
        super().__init__(**params)
        fps = self.params["fps"]
        try:
            ok = float(fps) > 0 and np.isfinite(float(fps))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise MovaBenchError(f"{self.name}: fps={fps!r} is not a positive number of frames per second",
                                 fix="give e.g. fps=1 (the default: one frame per second)")
        self.params["fps"] = float(fps)
        # the instance's need (fps is a parameter); the class attribute is the default's
        self.video_needs = (VideoNeed("native", fps=self.params["fps"]),)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"fps": DEFAULT_FPS}

    def preprocessing(self) -> dict[str, Any]:
        return {
            **super().preprocessing(), "arch": self.arch, "frames": f"native, {self.params['fps']:g} fps (first frame of each interval)",
            "transform": "open_clip image_transform_v2 (eval): shortest side 224 bicubic PIL, centre crop 224, CLIP mean/std",
            "text": "open_clip SimpleTokenizer, 77 tokens",
            "score": "per frame 100*cos (no clamp); per clip max(mean over frames, 0) (torchmetrics CLIPScore)",
        }

    def build(self, paths: dict[str, Path], device: Any) -> Any:
        return build_openclip(self.arch, paths[self.weights[0]], device)

    def _text_embedding(self, text: str) -> tuple[Any, bool]:
        """(text embedding, truncated) of one prompt, cached."""
        return cached_text_embeddings(self, [text], self._embed_texts)[0]

    def _embed_texts(self, texts: list[str]) -> list[tuple[Any, bool]]:
        """(embedding, truncated) per text, with one ``encode_text`` pass."""
        import torch

        pairs = [tokenize(self.model.tokenizer, t) for t in texts]
        embs = self.model.clip.encode_text(torch.cat([tokens for tokens, _ in pairs]).to(self.device)).float()
        return [(embs[i], truncated) for i, (_, truncated) in enumerate(pairs)]

    def image_embeddings(self, frames: np.ndarray) -> Any:
        """(k, D) float32 ``encode_image`` outputs (not normalised) of (k, H, W, 3) uint8 frames."""
        return forward_in_slices([self._pixels(frames)], int(self.batch_size or DEFAULT_BATCH), self._encode_images)[0]

    def _pixels(self, frames: np.ndarray) -> Any:
        """(k, 3, 224, 224) open_clip eval-transformed frames (CPU)."""
        import torch
        from PIL import Image

        if frames.shape[0] == 0:
            return torch.zeros((0, 3, 224, 224))
        return torch.stack([self.model.preprocess(Image.fromarray(f)) for f in frames])

    def _encode_images(self, x: Any) -> Any:
        return self.model.clip.encode_image(x.to(self.device)).float()

    def _clip_frames(self, clip: Any) -> tuple[np.ndarray, np.ndarray]:
        """The clip's sampled frames and their times; raises when it has none."""
        need = self.video_needs[0]
        frames = clip.frames(need)
        times = clip.frame_times(need) if hasattr(clip, "frame_times") else np.arange(frames.shape[0]) / self.params["fps"]
        if frames.shape[0] == 0:
            raise MovaBenchError(f"{self.name}: the clip has no video frame to score",
                                 fix="check the clip's video stream (mova-bench probe) or drop the clip")
        return frames, times

    def embed(self, clip: Any) -> dict[str, Any]:
        frames, times = self._clip_frames(clip)
        return self._outputs(self.image_embeddings(frames), times, clip.prompt_text)

    def embed_batch(self, clips: list[Any]) -> list[dict[str, Any]]:
        """The frames of all the clips through the image tower together (``batch_size`` frames per
        forward pass, default 16, across clip boundaries) and the prompts not embedded yet through
        the text tower in one pass; each clip's outputs equal its own :meth:`embed`'s."""
        sampled = [self._clip_frames(c) for c in clips]  # a clip without frames raises: the harness isolates it
        texts = [str(c.prompt_text) for c in clips if c.prompt_text is not None and str(c.prompt_text).strip()]
        cached_text_embeddings(self, texts, self._embed_texts)
        imgs = forward_in_slices([self._pixels(f) for f, _ in sampled], int(self.batch_size or DEFAULT_BATCH),
                                 self._encode_images)
        return [self._outputs(img, times, c.prompt_text) for img, (_, times), c in zip(imgs, sampled, clips)]

    def _outputs(self, img: Any, times: np.ndarray, text: Any) -> dict[str, Any]:
        """The documented outputs of one clip from its (k, D) image embeddings and prompt."""
        unit = img / img.norm(p=2, dim=-1, keepdim=True)
        out: dict[str, Any] = {"embedding": unit.mean(dim=0), "frame_times": np.asarray(times, dtype=np.float64)}
        if text is None or not str(text).strip():
            k = img.shape[0]
            out.update(clip_score=np.float32(np.nan), clip_score_frames=np.full(k, np.nan, np.float32),
                       has_text=np.int8(0), text_truncated=np.int8(0))
            return out
        txt, truncated = self._text_embedding(str(text))
        per_frame, score = clip_scores(img, txt)
        out.update(clip_score=np.float32(score), clip_score_frames=per_frame.astype(np.float32),
                   has_text=np.int8(1), text_truncated=np.int8(truncated))
        return out


class OpenClipB32(OpenClipBackbone):
    name: ClassVar[str] = "openclip-vit-b-32"
    display_name: ClassVar[str] = "OpenCLIP ViT-B/32 (OpenAI)"
    description: ClassVar[str] = ("OpenCLIP ViT-B-32 (QuickGELU) with the OpenAI weights: 100×cos(prompt, frame) "
                                  "on frames sampled at 1 fps, per clip max(mean, 0) (torchmetrics CLIPScore)")
    weights: ClassVar[tuple[str, ...]] = ("openclip-vit-b-32-openai",)
    arch: ClassVar[str] = "ViT-B-32-quickgelu"
    dim: ClassVar[int] = 512


class OpenClipL14(OpenClipBackbone):
    name: ClassVar[str] = "openclip-vit-l-14"
    display_name: ClassVar[str] = "OpenCLIP ViT-L/14 (OpenAI)"
    description: ClassVar[str] = ("OpenCLIP ViT-L-14 (QuickGELU) with the OpenAI weights: 100×cos(prompt, frame) "
                                  "on frames sampled at 1 fps, per clip max(mean, 0) (torchmetrics CLIPScore)")
    weights: ClassVar[tuple[str, ...]] = ("openclip-vit-l-14-openai",)
    arch: ClassVar[str] = "ViT-L-14-quickgelu"
    dim: ClassVar[int] = 768
