"""Lightricks LTX-2 (text/image → video with audio) through ``ltx-pipelines`` / ``ltx-core`` from PyPI.

Checked against the published wheels ``ltx_pipelines-1.0.0`` and ``ltx_core-1.0.0`` (read, not run:
no GPU and no weights here):

* pipelines (``pipeline``): ``two_stage`` = ``ltx_pipelines.ti2vid_two_stages.TI2VidTwoStagesPipeline``
  (the recommended one: stage 1 at half size with multimodal guidance, 2x latent upsampling, stage 2
  with the distilled LoRA), ``one_stage`` = ``ti2vid_one_stage.TI2VidOneStagePipeline``,
  ``distilled`` = ``distilled.DistilledPipeline`` (fixed 8+4 sigmas, no guidance, no steps, no
  negative prompt: setting those is an error). Constructors take a single ``.safetensors``
  checkpoint, ``gemma_root`` (the Gemma 3 text encoder folder), ``loras`` and, for two-stage,
  ``distilled_lora`` (``LoraPathStrengthAndSDOps``) and ``spatial_upsampler_path``.
* ``__call__(prompt, negative_prompt, seed, height, width, num_frames, frame_rate,
  num_inference_steps, video_guider_params, audio_guider_params, images, tiling_config=None)``
  returns ``(iterator of [f, h, w, 3] uint8 tensors, Audio(waveform, sampling_rate))``; the
  pipeline seeds its own ``torch.Generator`` from ``seed``.
* guidance is per modality (``MultiModalGuiderParams``: cfg_scale, stg_scale, rescale_scale,
  modality_scale, skip_step, stg_blocks). ``guidance_scale`` maps to the video ``cfg_scale`` and
  ``audio_guidance_scale`` to the audio one; defaults are ``LTX_2_PARAMS`` (``utils/constants.py``):
  video cfg 3.0, audio cfg 7.0, stg 1.0 on block 29, rescale 0.7, modality 3.0, 40 steps, and the
  package's ``DEFAULT_NEGATIVE_PROMPT``.
* constraints: ``num_frames`` is 8k+1 (the video VAE's temporal factor 8); height and width are
  multiples of 64 for two-stage/distilled and 32 for one-stage (``assert_resolution``); official
  two-stage default 1536x1024, 121 frames at 24 fps. Audio comes from the vocoder at its
  ``output_sampling_rate`` (24 kHz for LTX-2) and is written stereo by the package's own
  ``encode_video``; it is kept as returned (its length vs the video is recorded, not trimmed).
* first frame: ``images=[ImageConditioningInput(path, frame_idx=0, strength, crf)]`` (the
  pipeline resizes and centre-crops it); text-only prompts pass ``images=[]``.
* the pipelines call ``torch.cuda.synchronize()`` unconditionally, so a CUDA GPU is required
  (checked before any work).

Install: ``pip install 'mova-bench[ltx2]'`` (ltx-pipelines, ltx-core; ltx-core pins torch~=2.7).
Weights (``Lightricks/LTX-2`` and the Gemma 3 encoder) in ``weights_dir``; see models/ltx-2.yaml.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.errors import ConfigError, GenerationError, MissingDependencyError
from mova_bench.generators.audio_check import finish_clip
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator

LTX2_INSTALL = "pip install 'mova-bench[ltx2]'  (ltx-pipelines and ltx-core from PyPI; ltx-core needs torch~=2.7)"
HF_REPO = "Lightricks/LTX-2"
GEMMA_REPO = "google/gemma-3-12b-it-qat-q4_0-unquantized"
#: import name → pip requirement, checked before any work
IMPORTS = {"ltx_pipelines": "ltx-pipelines", "ltx_core": "ltx-core", "torch": "torch", "safetensors": "safetensors",
           "transformers": "transformers", "tensorrt_llm": "ltx-core[fp8-trtllm]"}
#: always needed (tensorrt_llm only for quantization=fp8-scaled-mm)
REQUIRED = ("ltx_pipelines", "ltx_core", "torch", "safetensors", "transformers")
PIPELINES = {
    "two_stage": ("ltx_pipelines.ti2vid_two_stages", "TI2VidTwoStagesPipeline", 64),
    "one_stage": ("ltx_pipelines.ti2vid_one_stage", "TI2VidOneStagePipeline", 32),
    "distilled": ("ltx_pipelines.distilled", "DistilledPipeline", 64),
}
#: parameters the distilled pipeline has no use for (its sigmas are fixed, it has no guidance)
DISTILLED_INERT = ("guidance_scale", "audio_guidance_scale", "num_inference_steps", "negative_prompt", "stg_scale",
                   "rescale_scale", "modality_scale", "stg_blocks")
FRAME_STEP = 8

_find_spec = importlib.util.find_spec


def validate_ltx2_request(num_frames: int, width: int, height: int, divisor: int) -> None:
    problems = []
    if num_frames < 1 or (num_frames - 1) % FRAME_STEP != 0:
        lo = FRAME_STEP * max(0, (num_frames - 1) // FRAME_STEP) + 1
        problems.append(f"num_frames={num_frames}: LTX-2 needs 8k+1 frames (e.g. {lo} or {lo + FRAME_STEP}; default 121)")
    for name, v in (("height", height), ("width", width)):
        if v % divisor != 0 or v <= 0:
            near = max(divisor, divisor * round(v / divisor))
            problems.append(f"{name}={v}: this LTX-2 pipeline needs a multiple of {divisor} (e.g. {near})")
    if problems:
        raise ConfigError("invalid LTX-2 request: " + "; ".join(problems))


class LTX2Generator(Generator):
    name = "ltx-2"
    params_schema = {
        "pipeline": "two_stage",
        "guidance_scale": 3.0,
        "audio_guidance_scale": 7.0,
        "stg_scale": 1.0,
        "rescale_scale": 0.7,
        "modality_scale": 3.0,
        "stg_blocks": "29",
        "num_inference_steps": 40,
        "negative_prompt": "",  # "" = the package's DEFAULT_NEGATIVE_PROMPT (recorded per clip)
        "image_strength": 1.0,
        "image_crf": 33,
        "enhance_prompt": False,
        "quantization": "none",
        "weights_dir": "",
        "checkpoint": "ltx-2-19b-dev.safetensors",
        "distilled_lora": "ltx-2-19b-distilled-lora-384.safetensors",
        "distilled_lora_strength": 0.8,
        "spatial_upsampler": "ltx-2-spatial-upscaler-x2-1.0.safetensors",
        "gemma_root": "gemma-3-12b-it-qat-q4_0-unquantized",
    }

    _pipe = None

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        super().__init__(card_defaults=card_defaults, card=card, **params)
        p = self.params
        pipeline = str(p["pipeline"]).strip().lower().replace("-", "_")
        if pipeline not in PIPELINES:
            raise ConfigError(f"pipeline={p['pipeline']!r}: expected one of {', '.join(PIPELINES)} "
                              "(two_stage is LTX-2's recommended pipeline)")
        p["pipeline"] = pipeline
        if pipeline == "distilled":
            explicit = [k for k in DISTILLED_INERT if k in params]
            if explicit:
                raise ConfigError(f"pipeline=distilled uses fixed sigmas without guidance or a negative prompt, so "
                                  f"{', '.join(explicit)} would change nothing; remove them (or use pipeline=two_stage)")
            if "checkpoint" not in params and p["checkpoint"] == self.params_schema["checkpoint"]:
                p["checkpoint"] = "ltx-2-19b-distilled.safetensors"
        for key in ("guidance_scale", "audio_guidance_scale", "stg_scale", "rescale_scale", "modality_scale",
                    "image_strength", "distilled_lora_strength"):
            if not math.isfinite(float(p[key])):
                raise ConfigError(f"{key}={p[key]}: expected a finite number")
        if not 1 <= int(p["num_inference_steps"]) <= 1000:
            raise ConfigError(f"num_inference_steps={p['num_inference_steps']}: expected an integer in 1..1000 (default 40)")
        if not 0.0 <= float(p["image_strength"]) <= 1.0:
            raise ConfigError(f"image_strength={p['image_strength']}: expected a number in [0, 1]")
        if not 0 <= int(p["image_crf"]) <= 51:
            raise ConfigError(f"image_crf={p['image_crf']}: expected an H.264 CRF in 0..51 (0 = lossless, default 33)")
        try:
            self.stg_blocks = [int(b) for b in str(p["stg_blocks"]).replace(",", " ").split()]
        except ValueError:
            raise ConfigError(f"stg_blocks={p['stg_blocks']!r}: expected block indices like '29' or '28,29' ('' disables STG)") from None
        q = str(p["quantization"]).strip().lower()
        if q not in ("none", "fp8-cast", "fp8-scaled-mm"):
            raise ConfigError(f"quantization={p['quantization']!r}: expected none, fp8-cast or fp8-scaled-mm")
        p["quantization"] = q

    # -- where things are -------------------------------------------------------------------

    def _weights_dir(self) -> Path:
        from mova_bench.cache import home

        if self.params["weights_dir"]:
            return Path(self.params["weights_dir"]).expanduser()
        env = self.card.weights.env if self.card is not None and self.card.weights.env else "LTX2_PATH"
        if os.environ.get(env):
            return Path(os.environ[env]).expanduser()
        if self.card is not None and self.card.weights_path() is not None:
            return self.card.weights_path()
        return Path(home()).expanduser() / "weights" / "LTX-2"

    def _path(self, key: str) -> Path:
        p = Path(str(self.params[key])).expanduser()
        return p if p.is_absolute() else self._weights_dir() / p

    def _needed(self) -> list[str]:
        keys = ["checkpoint", "gemma_root"]
        if self.params["pipeline"] == "two_stage":
            keys += ["distilled_lora", "spatial_upsampler"]
        elif self.params["pipeline"] == "distilled":
            keys += ["spatial_upsampler"]
        return keys

    def _download(self) -> str:
        d = self._weights_dir()
        files = [str(self.params[k]) for k in self._needed() if k != "gemma_root" and not Path(str(self.params[k])).is_absolute()]
        cmd = f"hf download {HF_REPO} {' '.join(files)} --local-dir {d}" if files else ""
        gemma = f"hf download {GEMMA_REPO} --local-dir {self._path('gemma_root')}"
        return " && ".join(c for c in (cmd, gemma) if c)

    # -- checks before any work -------------------------------------------------------------

    def check_available(self) -> None:
        missing = [name for name in REQUIRED if _find_spec(name) is None]
        if self.params["quantization"] == "fp8-scaled-mm" and _find_spec("tensorrt_llm") is None:
            missing.append("tensorrt_llm")
        if missing:
            pkgs = ", ".join(f"{m} (pip: {IMPORTS[m]})" for m in missing)
            raise MissingDependencyError(
                f"model 'ltx-2' needs the Python package(s) {pkgs}, which are not installed. Install: {LTX2_INSTALL}. "
                f"Then get the weights: {self._download()}. To try mova-bench without a GPU, use --model procedural."
            )
        absent = [(k, self._path(k)) for k in self._needed()]
        absent = [(k, p) for k, p in absent if not (p.is_dir() if k == "gemma_root" else p.is_file())]
        if absent:
            what = "; ".join(f"{k}: {p}" for k, p in absent)
            env = self.card.weights.env if self.card is not None and self.card.weights.env else "LTX2_PATH"
            raise MissingDependencyError(
                f"LTX-2 weights not found ({what}). Download them with `{self._download()}`, or point {env}=/path "
                "(or --set weights_dir=... / --set checkpoint=/abs/file.safetensors)"
            )
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("LTX-2's pipelines need a CUDA GPU (they call torch.cuda.synchronize()), but torch sees none. "
                              "On a GPU box check the CUDA build of torch; without one use --model procedural")

    def validate_request(self, request: ClipRequest) -> None:
        num_frames = int(round(request.duration_s * request.fps))
        validate_ltx2_request(num_frames, request.width, request.height, PIPELINES[self.params["pipeline"]][2])
        if request.first_frame and not Path(request.first_frame).is_file():
            raise ConfigError(f"first_frame {request.first_frame!r} of prompt {request.prompt_id!r} does not exist")

    # -- loading and generating -------------------------------------------------------------

    def init_kwargs(self) -> dict[str, Any]:
        """The pipeline constructor's arguments (imports ltx-core)."""
        from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

        quant = None
        if self.params["quantization"] != "none":
            from ltx_core.quantization import QuantizationPolicy

            # ltx-core 1.0.0: fp8_scaled_mm() takes no argument (ltx-pipelines 1.0.0's CLI passes one)
            quant = QuantizationPolicy.fp8_cast() if self.params["quantization"] == "fp8-cast" else QuantizationPolicy.fp8_scaled_mm()
        kwargs: dict[str, Any] = {"gemma_root": str(self._path("gemma_root")), "loras": [], "quantization": quant}
        pipeline = self.params["pipeline"]
        if pipeline == "distilled":
            kwargs["distilled_checkpoint_path"] = str(self._path("checkpoint"))
        else:
            kwargs["checkpoint_path"] = str(self._path("checkpoint"))
        if pipeline in ("two_stage", "distilled"):
            kwargs["spatial_upsampler_path"] = str(self._path("spatial_upsampler"))
        if pipeline == "two_stage":
            kwargs["distilled_lora"] = [LoraPathStrengthAndSDOps(str(self._path("distilled_lora")),
                                                                 float(self.params["distilled_lora_strength"]),
                                                                 LTXV_LORA_COMFY_RENAMING_MAP)]
        return kwargs

    def load(self) -> None:
        import importlib

        module, cls_name, _ = PIPELINES[self.params["pipeline"]]
        cls = getattr(importlib.import_module(module), cls_name)
        self._pipe = cls(**self.init_kwargs())

    def _negative_prompt(self) -> tuple[str, bool]:
        if self.params["negative_prompt"]:
            return str(self.params["negative_prompt"]), False
        from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT

        return DEFAULT_NEGATIVE_PROMPT, True

    def call_kwargs(self, request: ClipRequest) -> dict[str, Any]:
        """The pipeline's ``__call__`` arguments for ``request`` (imports ltx-core)."""
        from ltx_core.components.guiders import MultiModalGuiderParams
        from ltx_pipelines.utils.args import ImageConditioningInput

        p = self.params
        num_frames = int(round(request.duration_s * request.fps))
        images = []
        if request.first_frame:
            images.append(ImageConditioningInput(path=str(Path(request.first_frame).resolve()), frame_idx=0,
                                                 strength=float(p["image_strength"]), crf=int(p["image_crf"])))
        kwargs: dict[str, Any] = dict(prompt=request.prompt_text, seed=int(request.seed), height=int(request.height),
                                      width=int(request.width), num_frames=num_frames, frame_rate=float(request.fps),
                                      images=images, enhance_prompt=bool(p["enhance_prompt"]))
        if p["pipeline"] != "distilled":
            def guider(cfg: float) -> Any:
                return MultiModalGuiderParams(cfg_scale=float(cfg), stg_scale=float(p["stg_scale"]),
                                              rescale_scale=float(p["rescale_scale"]),
                                              modality_scale=float(p["modality_scale"]), skip_step=0,
                                              stg_blocks=list(self.stg_blocks))

            kwargs.update(negative_prompt=self._negative_prompt()[0], num_inference_steps=int(p["num_inference_steps"]),
                          video_guider_params=guider(p["guidance_scale"]),
                          audio_guider_params=guider(p["audio_guidance_scale"]))
        if p["pipeline"] in ("two_stage", "distilled"):
            from ltx_core.model.video_vae import TilingConfig

            kwargs["tiling_config"] = TilingConfig.default()
        return kwargs

    def generate(self, request: ClipRequest) -> GeneratedClip:
        import torch

        self.validate_request(request)
        if self._pipe is None:
            self.load()
        kwargs = self.call_kwargs(request)
        with torch.inference_mode():
            video, audio = self._pipe(**kwargs)
            chunks = [c.to("cpu").numpy() if hasattr(c, "to") else np.asarray(c) for c in
                      (video if not hasattr(video, "shape") else [video])]
        if not chunks:
            raise GenerationError("LTX-2 returned no video frames")
        frames = np.concatenate(chunks, axis=0).astype(np.uint8)
        wav = audio.waveform.detach().float().cpu().numpy() if hasattr(audio.waveform, "detach") else np.asarray(audio.waveform)
        wav = np.squeeze(wav)
        if wav.ndim == 2 and wav.shape[0] in (1, 2) and wav.shape[1] > wav.shape[0]:
            wav = wav.T  # [channels, samples] → (samples, channels)
        info: dict[str, Any] = {
            "first_frame_source": "suite" if request.first_frame else None, "ltx2_pipeline": self.params["pipeline"],
        }
        if self.params["pipeline"] != "distilled":
            info.update(video_cfg_scale=float(self.params["guidance_scale"]),
                        audio_cfg_scale=float(self.params["audio_guidance_scale"]),
                        negative_prompt_is_default=self._negative_prompt()[1])
        return finish_clip(request, frames, wav, float(request.fps), int(audio.sampling_rate), info)


__all__ = ["LTX2Generator", "validate_ltx2_request"]
