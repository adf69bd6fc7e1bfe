"""Character.AI's Ovi (twin-backbone joint audio-video generation) from a local clone.

Ovi is not on PyPI: ``git clone https://github.com/character-ai/Ovi``, install its requirements,
download its weights, then ``--set checkout=PATH`` (and optionally ``config=...``, default the
clone's ``ovi/configs/inference/inference_fusion.yaml``). Checked against the repository
(commit 5b69b25, ``inference.py`` and ``ovi/ovi_fusion_engine.py``; not run here):

* ``OviFusionEngine(config, device, target_dtype)`` loads everything from ``config.ckpt_dir``
  (``Ovi/<model file>``, ``Wan2.2-TI2V-5B/`` (T5 + VAE), ``MMAudio/ext_weights/``), for one of the
  models ``720x720_5s``, ``960x960_5s``, ``960x960_10s`` (``model_name``); ``fp8`` only with
  ``720x720_5s``; ``cpu_offload``.
* ``engine.generate(text_prompt, image_path, video_frame_height_width, seed, solver_name,
  sample_steps, shift, video_guidance_scale, audio_guidance_scale, slg_layer,
  video_negative_prompt, audio_negative_prompt)`` returns ``(video [3, F, H, W] in [-1, 1],
  audio 1-D at 16 kHz, image)``, or ``None`` when it failed (it logs and swallows the exception).
  ``image_path=None`` is text-to-video at ``video_frame_height_width`` (snapped to the model's
  pixel area and multiples of 32); with an image it is image-to-video at the image's aspect.
* output: 24 fps, 121 frames (5 s models, 31 latent frames) or 241 (10 s model), 16 kHz audio.
  Requests must ask for exactly that, at a size Ovi keeps (its ``snap_hw_to_multiple_of_32`` to
  the model's pixel area; otherwise Ovi silently changes it). Image-to-video takes the image's
  aspect, so its size can differ from the request (recorded as ``geometry_mismatch``).
* the module reads ``ovi/configs/...`` relative to the working directory at import, so loading and
  generating run with the clone as the working directory (restored afterwards; not thread-safe).
* ``guidance_scale`` → ``video_guidance_scale``; ``audio_guidance_scale``, ``num_inference_steps``
  (``sample_steps``), ``solver_name``, ``shift``, ``slg_layer`` and the negative prompts default to
  the config file's values (Ovi's: 4.0, 3.0, 50, unipc, 5.0, 11).

Without a clone, its packages or its weights the adapter raises MissingDependencyError (exit 2)
saying what to do, before any work. It needs a CUDA GPU.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.errors import ConfigError, GenerationError, MissingDependencyError
from mova_bench.generators.audio_check import finish_clip
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator

OVI_REPO = "https://github.com/character-ai/Ovi"
OVI_INSTALL = (f"git clone {OVI_REPO} && pip install -r Ovi/requirements.txt && (cd Ovi && python download_weights.py), "
               "then --set checkout=/path/to/Ovi  (Ovi is not on PyPI)")
DEFAULT_CONFIG = "ovi/configs/inference/inference_fusion.yaml"
FPS = 24.0
SAMPLE_RATE = 16000
#: model_name → (checkpoint file under ckpt_dir/Ovi, frames, pixel area) — ovi_fusion_engine.NAME_TO_MODEL_SPECS_MAP
MODELS = {
    "720x720_5s": ("model.safetensors", 121, 720 * 720),
    "960x960_5s": ("model_960x960.safetensors", 121, 960 * 960),
    "960x960_10s": ("model_960x960_10s.safetensors", 241, 960 * 960),
}
#: the other components download_weights.py fetches (relative to ckpt_dir)
COMPONENTS = ("Wan2.2-TI2V-5B/Wan2.2_VAE.pth", "Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth",
              "MMAudio/ext_weights/best_netG.pt", "MMAudio/ext_weights/v1-16.pth")
#: import name → pip requirement (Ovi's requirements.txt)
IMPORTS = {"torch": "torch", "torchvision": "torchvision", "diffusers": "diffusers", "transformers": "transformers",
           "einops": "einops", "omegaconf": "omegaconf", "cv2": "opencv-python", "librosa": "librosa",
           "optimum": "optimum-quanto", "open_clip": "open-clip-torch", "safetensors": "safetensors",
           "pandas": "pandas", "ftfy": "ftfy"}
#: mova-bench parameter → Ovi config key, and Ovi's own default
CONFIG_KEYS = {"guidance_scale": ("video_guidance_scale", 4.0), "audio_guidance_scale": ("audio_guidance_scale", 3.0),
               "num_inference_steps": ("sample_steps", 50), "solver_name": ("solver_name", "unipc"),
               "shift": ("shift", 5.0), "slg_layer": ("slg_layer", 11),
               "video_negative_prompt": ("video_negative_prompt", ""), "audio_negative_prompt": ("audio_negative_prompt", "")}

_find_spec = importlib.util.find_spec


@contextlib.contextmanager
def _inside(folder: Path):
    """Run with ``folder`` as the working directory and first on sys.path (both restored)."""
    old = os.getcwd()
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)
        if added and str(folder) in sys.path:
            sys.path.remove(str(folder))


def snap_hw(h: int, w: int, area: int) -> tuple[int, int]:
    """Ovi's ``snap_hw_to_multiple_of_32``: scale (h, w) to ``area`` pixels, round each to a multiple of 32."""
    scale = math.sqrt(area / float(h * w))
    h, w = int(round(h * scale)), int(round(w * scale))
    return max(32, int(round(h / 32)) * 32), max(32, int(round(w / 32)) * 32)


def validate_ovi_request(num_frames: int, fps: float, width: int, height: int, model_name: str) -> None:
    _, frames, area = MODELS[model_name]
    problems = []
    if num_frames != frames:
        problems.append(f"num_frames={num_frames}: Ovi {model_name} makes exactly {frames} frames")
    if abs(fps - FPS) > 1e-6:
        problems.append(f"fps={fps:g}: Ovi makes {FPS:g} fps")
    if width <= 0 or height <= 0:
        problems.append(f"{width}x{height}: not a size")
    else:
        sh, sw = snap_hw(height, width, area)
        if (sh, sw) != (height, width):
            problems.append(f"{width}x{height}: Ovi {model_name} would render {sw}x{sh} (it scales text-to-video to about "
                            f"{area} pixels in multiples of 32); ask for {sw}x{sh}")
    if problems:
        raise ConfigError("invalid Ovi request: " + "; ".join(problems))


class OviGenerator(Generator):
    name = "ovi"
    params_schema = {
        "checkout": "",
        "config": "",
        "model_name": "960x960_5s",
        "ckpt_dir": "",
        "guidance_scale": "",
        "audio_guidance_scale": "",
        "num_inference_steps": "",
        "solver_name": "",
        "shift": "",
        "slg_layer": "",
        "video_negative_prompt": "",
        "audio_negative_prompt": "",
        "cpu_offload": False,
        "fp8": False,
    }

    _engine = None

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        super().__init__(card_defaults=card_defaults, card=card, **params)
        p = self.params
        if p["model_name"] not in MODELS:
            raise ConfigError(f"model_name={p['model_name']!r}: expected one of {', '.join(MODELS)}")
        if p["fp8"] and p["model_name"] != "720x720_5s":
            raise ConfigError("fp8=true: Ovi ships an fp8 checkpoint only for model_name=720x720_5s")
        for key, kind in (("guidance_scale", float), ("audio_guidance_scale", float), ("shift", float),
                          ("num_inference_steps", int), ("slg_layer", int)):
            raw = p[key]
            if raw == "" or raw is None:
                continue
            try:
                v = kind(float(raw)) if kind is int else kind(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"{key}={raw!r}: expected a {kind.__name__}") from None
            if (kind is float and not math.isfinite(v)) or (key == "num_inference_steps" and not 1 <= v <= 1000):
                raise ConfigError(f"{key}={raw!r}: out of range")
            p[key] = v

    # -- where things are -------------------------------------------------------------------

    def _checkout(self) -> Path:
        raw = str(self.params["checkout"]).strip() or os.environ.get("OVI_CHECKOUT", "")
        if not raw:
            raise MissingDependencyError(f"model 'ovi' needs a local clone of Ovi: {OVI_INSTALL}")
        path = Path(raw).expanduser().resolve()
        if not (path / "ovi" / "ovi_fusion_engine.py").is_file():
            raise MissingDependencyError(f"checkout={str(path)!r} is not a clone of {OVI_REPO} "
                                         f"(no ovi/ovi_fusion_engine.py there). Get it: {OVI_INSTALL}")
        return path

    def _config_path(self, checkout: Path) -> Path:
        raw = str(self.params["config"]).strip()
        path = Path(raw).expanduser() if raw else checkout / DEFAULT_CONFIG
        path = path if path.is_absolute() else (checkout / path if not path.exists() else path.resolve())
        if not path.is_file():
            raise ConfigError(f"config={str(path)!r}: no such Ovi config file (default: {DEFAULT_CONFIG} in the clone)")
        return path

    def _config(self, checkout: Path) -> dict[str, Any]:
        import yaml

        path = self._config_path(checkout)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"config={str(path)!r} cannot be read as YAML ({exc})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"config={str(path)!r}: expected a YAML mapping (Ovi's inference config)")
        return doc

    def _ckpt_dir(self, checkout: Path, config: dict[str, Any]) -> Path:
        raw = str(self.params["ckpt_dir"]).strip() or str(config.get("ckpt_dir") or "./ckpts")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else (checkout / path).resolve()

    def settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """The generate() arguments: --set values, else the config file's, else Ovi's defaults."""
        out = {}
        for ours, (theirs, default) in CONFIG_KEYS.items():
            v = self.params[ours]
            out[theirs] = v if v != "" else config.get(theirs, default)
        return out

    # -- checks before any work -------------------------------------------------------------

    def check_available(self) -> None:
        checkout = self._checkout()
        config = self._config(checkout)
        missing = [m for m in IMPORTS if _find_spec(m) is None]
        if missing:
            raise MissingDependencyError(
                f"Ovi needs the Python package(s) {', '.join(f'{m} (pip: {IMPORTS[m]})' for m in missing)}, which are "
                f"not installed. Install: pip install -r {checkout / 'requirements.txt'}"
            )
        ckpt = self._ckpt_dir(checkout, config)
        name = self.params["model_name"]
        model_file = "model_fp8_e4m3fn.safetensors" if self.params["fp8"] else MODELS[name][0]
        absent = [c for c in (f"Ovi/{model_file}", *COMPONENTS) if not (ckpt / c).is_file()]
        if absent:
            raise MissingDependencyError(
                f"Ovi weights missing under {ckpt}: {', '.join(absent)}. Download them: "
                f"cd {checkout} && python download_weights.py --output-dir {ckpt} --models {name}"
                + (" (the fp8 file comes from huggingface.co/rkfg/Ovi-fp8_quantized, see Ovi's README)" if self.params["fp8"] else "")
                + " (or --set ckpt_dir=...)"
            )
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("Ovi needs a CUDA GPU (its engine places every model on a CUDA device), but torch sees none")

    def validate_request(self, request: ClipRequest) -> None:
        num_frames = int(round(request.duration_s * request.fps))
        validate_ovi_request(num_frames, float(request.fps), request.width, request.height, self.params["model_name"])
        if request.first_frame and not Path(request.first_frame).is_file():
            raise ConfigError(f"first_frame {request.first_frame!r} of prompt {request.prompt_id!r} does not exist")

    # -- loading and generating -------------------------------------------------------------

    def load(self) -> None:
        import torch

        checkout = self._checkout()
        cfg_path = self._config_path(checkout)
        with _inside(checkout):
            from omegaconf import OmegaConf

            from ovi.ovi_fusion_engine import OviFusionEngine

            config = OmegaConf.load(str(cfg_path))
            config.ckpt_dir = str(self._ckpt_dir(checkout, self._config(checkout)))
            config.model_name = self.params["model_name"]
            config.cpu_offload = bool(self.params["cpu_offload"])
            config.fp8 = bool(self.params["fp8"])
            config.mode = "t2v"  # per clip: image_path=None (t2v) or the suite's first frame (i2v)
            device = torch.cuda.current_device()
            self._engine = OviFusionEngine(config=config, device=device, target_dtype=torch.bfloat16)
        self._checkout_path = checkout
        self._settings = self.settings(self._config(checkout))

    def generate(self, request: ClipRequest) -> GeneratedClip:
        self.validate_request(request)
        if self._engine is None:
            self.load()
        image = str(Path(request.first_frame).resolve()) if request.first_frame else None
        with _inside(self._checkout_path):
            out = self._engine.generate(text_prompt=request.prompt_text, image_path=image,
                                        video_frame_height_width=[int(request.height), int(request.width)],
                                        seed=int(request.seed), **self._settings)
        if out is None:
            raise GenerationError("Ovi's engine failed on this clip (it logs the exception and returns None; see its log)")
        video, audio = out[0], out[1]
        v = np.asarray(video.detach().float().cpu().numpy() if hasattr(video, "detach") else video, dtype=np.float32)
        if v.ndim != 4 or v.shape[0] not in (1, 3):
            raise GenerationError(f"Ovi returned video of shape {v.shape}; expected [3, frames, height, width]")
        frames = v.transpose(1, 2, 3, 0)  # (C, F, H, W) → (F, H, W, C), as Ovi's save_video
        frames = np.clip(np.rint((np.clip(frames, -1.0, 1.0) + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)
        if frames.shape[-1] == 1:
            frames = np.repeat(frames, 3, axis=-1)
        info = {"first_frame_source": "suite" if image else None, "ovi_mode": "i2v" if image else "t2v",
                "ovi_model_name": self.params["model_name"],
                **{f"ovi_{k}": v for k, v in self._settings.items() if "negative" not in k}}
        return finish_clip(request, frames, np.asarray(audio, dtype=np.float32), FPS, SAMPLE_RATE, info)


__all__ = ["OviGenerator", "validate_ovi_request"]
