"""Adapter for the official MOVA pipeline (OpenMOSS, arXiv 2602.08794).

What the released model really is (see DESIGN.md): image+text → video+audio; text-only prompts
get a plain white first frame, recorded per clip as ``first_frame_source="white_fallback"``;
defaults 193 frames at 24 fps, 352×640 (360p) or 720×1280 (720p), height and width multiples of
16, ``num_frames - 1`` divisible by 4, 50 steps, one text-CFG scale (5.0), sigma shift 5.0; audio
48 kHz mono. The pipeline's own ``seed`` argument is not relied on: the global torch RNG is seeded
per sample. The paper's dual CFG is not in the released code, so ``guidance_scale`` maps to the
single ``cfg_scale``.

Everything is validated before any GPU work; without the MOVA package or its weights the adapter
raises :class:`MissingDependencyError` naming what to install and where the weights go.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.errors import ConfigError, GenerationError, MissingDependencyError
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator


def validate_mova_request(num_frames: int, width: int, height: int) -> None:
    """MOVA's own input checks, done before loading 32B parameters."""
    problems = []
    if (num_frames - 1) % 4 != 0 or num_frames < 5:
        near = [4 * ((num_frames - 1) // 4) + 1, 4 * ((num_frames - 1) // 4 + 1) + 1]
        problems.append(f"num_frames={num_frames}: MOVA needs num_frames - 1 divisible by 4 (e.g. {near[0]} or {near[1]}; default 193)")
    for name, v in (("height", height), ("width", width)):
        if v % 16 != 0:
            problems.append(f"{name}={v}: MOVA needs a multiple of 16 (e.g. {16 * round(v / 16) or 16}); 360p is 352x640")
    if problems:
        raise ConfigError("invalid MOVA request: " + "; ".join(problems))


class MovaGenerator(Generator):
    name = "mova"
    params_schema = {
        "guidance_scale": 5.0,
        "num_inference_steps": 50,
        "sigma_shift": 5.0,
        "offload": "cpu",
        "negative_prompt": "",
        "weights_path": "",
    }

    _pipe = None

    def _weights(self) -> Path | None:
        if self.params.get("weights_path"):
            return Path(self.params["weights_path"]).expanduser()
        return self.card.weights_path() if self.card is not None else None

    def check_available(self) -> None:
        card_name = self.card.name if self.card is not None else "mova-360p"
        install = (self.card.install if self.card is not None and self.card.install else
                   "git clone https://github.com/OpenMOSS/MOVA && pip install -e ./MOVA")
        missing = [m for m in ("torch", "mova") if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingDependencyError(
                f"model {card_name!r} needs the package(s) {', '.join(missing)}, which are not installed. "
                f"Install: {install}. Then get the weights: "
                f"{self.card.weights.download if self.card is not None else 'hf download OpenMOSS-Team/MOVA-360p'}. "
                "To try mova-bench without a GPU, use --model procedural."
            )
        weights = self._weights()
        if weights is None or not (weights / "model_index.json").exists():
            env = self.card.weights.env if self.card is not None else "MOVA_360P_PATH"
            raise MissingDependencyError(
                f"MOVA weights not found at {weights} (no model_index.json). Download them with "
                f"`{self.card.weights.download if self.card is not None else 'hf download OpenMOSS-Team/MOVA-360p'}` "
                f"or point {env}=/path/to/weights (or --set weights_path=...)."
            )

    def validate_request(self, request: ClipRequest) -> None:
        num_frames = int(round(request.duration_s * request.fps))
        validate_mova_request(num_frames, request.width, request.height)
        if request.first_frame and not Path(request.first_frame).is_file():
            raise ConfigError(f"first_frame {request.first_frame!r} of prompt {request.prompt_id!r} does not exist")

    def load(self) -> None:  # pragma: no cover - needs a GPU and 32B parameters
        import torch
        from mova.diffusion.pipelines.pipeline_mova import MOVA

        pipe = MOVA.from_pretrained(str(self._weights()), torch_dtype=torch.bfloat16)
        if self.params["offload"] == "cpu":
            pipe.enable_model_cpu_offload()
        else:
            pipe.to("cuda")
        self._pipe = pipe

    @staticmethod
    def first_frame(request: ClipRequest):
        """(PIL image, source) — the suite's image, or a plain white frame (recorded)."""
        from PIL import Image

        if request.first_frame:
            img = Image.open(request.first_frame).convert("RGB")
            return img, "suite"
        return Image.new("RGB", (request.width, request.height), (255, 255, 255)), "white_fallback"

    def generate(self, request: ClipRequest) -> GeneratedClip:  # pragma: no cover - GPU only
        import torch

        if self._pipe is None:
            self.load()
        torch.manual_seed(request.seed)
        np.random.seed(request.seed % (2**32))
        image, source = self.first_frame(request)
        num_frames = int(round(request.duration_s * request.fps))
        video, audio = self._pipe(
            prompt=request.prompt_text,
            image=image,
            negative_prompt=self.params["negative_prompt"],
            seed=request.seed,
            height=request.height,
            width=request.width,
            num_frames=num_frames,
            video_fps=float(request.fps),
            num_inference_steps=int(self.params["num_inference_steps"]),
            sigma_shift=float(self.params["sigma_shift"]),
            cfg_scale=float(self.params["guidance_scale"]),
        )
        frames = np.stack([np.asarray(f.convert("RGB")) for f in video[0]]).astype(np.uint8)
        wav = audio[0].float().cpu().numpy()
        if wav.size == 0:
            raise GenerationError("MOVA returned no audio samples")
        wav = wav.reshape(wav.shape[0], -1).T if wav.ndim == 2 else wav.reshape(-1)
        return GeneratedClip(
            video=frames,
            audio=wav.astype(np.float32),
            fps=float(request.fps),
            sample_rate=int(self._pipe.audio_sample_rate),
            info={"first_frame_source": source, "cfg_scale": float(self.params["guidance_scale"])},
        )
