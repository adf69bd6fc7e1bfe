"""Fake ``mova.diffusion.pipelines.pipeline_mova.MOVA``: same surface as the real pipeline, tiny
CPU computation. Mirrors upstream (OpenMOSS/MOVA 595a976):

* ``__call__(prompt, image, negative_prompt="", seed=42, height=360, width=640, num_frames=193,
  video_fps=24.0, visual_shift=5.0, audio_shift=5.0, num_inference_steps=50, sigma_shift=5.0,
  cfg_scale=5.0, cp_mesh=None, remove_video_dit=False)``;
* ``check_inputs``: height/width divisible by 16, ``num_frames % 4 == 1`` (ValueError otherwise);
* ``tqdm(range(steps), disable=dist.get_rank() != 0)``: raises without a process group;
* noise from the global torch RNG (``seed`` is unused, ``sigma_shift`` too);
* returns ``(video, audio)``: ``video`` = ``[[PIL.Image, ...]]`` (``postprocess_video(...,
  output_type="pil")``), ``audio`` = float32 tensor ``[1, 1, T]``, T = whole hops covering
  ``int(sample_rate * num_frames / video_fps)``, peaks above 1.0 (a VAE does not clip).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from tqdm import tqdm


class MOVA:
    model_cpu_offload_seq = "text_encoder->video_dit->video_dit_2->video_vae->audio_vae"
    #: every pipeline built and every call, for assertions (class level: the adapter owns the instance)
    instances: list = []
    calls: list = []

    def __init__(self, path: str, torch_dtype=None):
        self.path = path
        self.torch_dtype = torch_dtype
        self.vae_scale_factor_spatial = 8
        self.vae_scale_factor_temporal = 4
        self.audio_vae_scale_factor = 960  # hop length: decoded audio is whole hops
        self.audio_sample_rate = 48000
        self.scheduler = SimpleNamespace(config={"shift": 5.0, "num_train_timesteps": 1000})
        self.device = torch.device("cpu")
        self.offload = None
        self.attention_replaced = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, torch_dtype=None, **kwargs):
        index = os.path.join(str(pretrained_model_name_or_path), "model_index.json")
        if not os.path.isfile(index):  # diffusers raises an OSError/EnvironmentError here
            raise OSError(f"Error no file named model_index.json found in directory {pretrained_model_name_or_path}.")
        with open(index, encoding="utf-8") as fh:
            config = json.load(fh)
        if config.get("_class_name") != "MOVA":
            raise ValueError(f"model_index.json is for {config.get('_class_name')!r}, not MOVA")
        pipe = cls(str(pretrained_model_name_or_path), torch_dtype=torch_dtype)
        cls.instances.append(pipe)
        return pipe

    # -- placement (DiffusionPipeline API) ----------------------------------------------------
    def to(self, *args, **kwargs):
        device = args[0] if args else kwargs.get("device")
        self.device = torch.device(device) if device is not None else self.device
        self.offload = ("to", str(self.device))
        return self

    def enable_model_cpu_offload(self, gpu_id=None, device="cuda"):
        self.offload = ("model_cpu_offload", gpu_id, device)

    def enable_group_offload(self, onload_device, offload_device=torch.device("cpu"), offload_type="block_level",
                             num_blocks_per_group=None, non_blocking=False, use_stream=False, record_stream=False,
                             low_cpu_mem_usage=False, offload_to_disk_path=None):
        self.offload = ("group_offload", str(onload_device), str(offload_device), offload_type, use_stream,
                        low_cpu_mem_usage, offload_to_disk_path)

    def replace_attention(self, attn_type=None):
        self.attention_replaced = attn_type
        return 0

    @property
    def _execution_device(self):
        return self.device

    def check_inputs(self, height, width, num_frames):
        target_division_factor = self.vae_scale_factor_spatial * 2
        if height % target_division_factor != 0 or width % target_division_factor != 0:
            raise ValueError(f"`height` and `width` have to be divisible by {target_division_factor} but are {height} and {width}.")
        if num_frames % self.vae_scale_factor_temporal != 1:
            raise ValueError(f"`num_frames - 1` has to be divisible by {self.vae_scale_factor_temporal} but is {num_frames - 1}.")

    @torch.no_grad()
    def __call__(
        self,
        prompt,
        image,
        negative_prompt="",
        seed=42,
        height=360,
        width=640,
        num_frames=193,
        video_fps=24.0,
        visual_shift=5.0,
        audio_shift=5.0,
        # scheduler
        num_inference_steps=50,
        sigma_shift=5.0,
        # cfg
        cfg_scale=5.0,
        cp_mesh=None,
        remove_video_dit=False,
    ):
        self.check_inputs(height, width, num_frames)
        audio_num_samples = int(self.audio_sample_rate * num_frames / video_fps)
        MOVA.calls.append({
            "prompt": prompt, "image": image.copy() if hasattr(image, "copy") else image,
            "negative_prompt": negative_prompt, "seed": seed, "height": height, "width": width,
            "num_frames": num_frames, "video_fps": video_fps, "num_inference_steps": num_inference_steps,
            "sigma_shift": sigma_shift, "cfg_scale": cfg_scale, "cp_mesh": cp_mesh, "rank": dist.get_rank(),
        })
        # the image is resized to (height, width) by the real VideoProcessor.preprocess
        cond = np.asarray(image.convert("RGB").resize((width, height)), dtype=np.float32) / 255.0
        latent_t = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        noise = torch.randn(latent_t, 1, 1, 3)  # global RNG, as upstream's randn_tensor(generator=None)
        for _ in tqdm(range(num_inference_steps), disable=dist.get_rank() != 0):
            pass
        frames = []
        for i in range(num_frames):
            k = i // self.vae_scale_factor_temporal
            tint = 0.0 if i == 0 else 0.15 * noise[min(k, latent_t - 1)].numpy()
            f = np.clip(cond + tint, 0.0, 1.0)
            frames.append(Image.fromarray(np.rint(f * 255).astype(np.uint8)))
        latent_a = (audio_num_samples - 1) // self.audio_vae_scale_factor + 1
        n = latent_a * self.audio_vae_scale_factor  # whole hops: more than audio_num_samples
        t = torch.arange(n, dtype=torch.float32) / self.audio_sample_rate
        amp = 1.5 + 0.1 * torch.randn(1).abs()
        wav = amp * torch.sin(2 * torch.pi * 440.0 * t) * torch.exp(-((t % 0.25) / 0.05))  # over-range clicks
        audio = wav.view(1, 1, n)  # [B, 1, T]
        return [frames], audio
