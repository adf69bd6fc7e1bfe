"""Adapter for the official MOVA pipeline (OpenMOSS, arXiv 2602.08794).

What the released model really is (see DESIGN.md) and what this adapter does about it. Every
point below was checked against the OpenMOSS MOVA repository (``scripts/inference_single.py``,
``mova/diffusion/pipelines/pipeline_mova.py``, ``mova/utils/data.py``,
``mova/datasets/transforms/custom.py``; commit 595a97691123e8356a65ba9fdeee23ae81aaa471):

* image+text → video+audio. The suite's first frame is **center-cropped to the target aspect,
  then resized** exactly as the official script's ``crop_and_resize`` does (never stretched).
  Text-only prompts get a plain white first frame, recorded per clip as
  ``first_frame_source="white_fallback"`` (that often yields solid-colour output).
* ``MOVA.__call__`` calls ``torch.distributed.get_rank()`` for its progress bar, so a process
  group must exist. :meth:`MovaGenerator.load` creates a one-process group when none exists
  (``gloo`` on CPU, ``nccl`` on CUDA; world size 1, rank 0, rendezvous on 127.0.0.1 at a free port
  — the same as ``env://`` with ``MASTER_ADDR=127.0.0.1`` and a free ``MASTER_PORT``, without
  changing the process environment). Launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/
  ``MASTER_ADDR``/``MASTER_PORT`` set), the group is initialised from that environment as the
  official script does, and with ``WORLD_SIZE > 1`` every rank joins one context-parallel
  group (cp size = world size, Ulysses degree ≤ 4, attention ``fa``), as
  ``inference_single.py --cp_size N`` does. Note: the harness around the adapter (run folder lock,
  manifest, clip writing) is single-writer; multi-rank runs need it to let only rank 0 write.
  A group that already exists is used as is and never destroyed by us.
* defaults: 193 frames at 24 fps, 352×640 (360p) or 720×1280 (720p), height and width multiples
  of 16, ``num_frames - 1`` divisible by 4, 50 steps, one text-CFG scale 5.0 (the paper's dual CFG
  is not in the released code, so ``guidance_scale`` maps to ``cfg_scale``). The negative prompt
  defaults to the official script's fixed one (:data:`NEGATIVE_PROMPT`), recorded with the other
  generator arguments in every manifest row; ``--set negative_prompt=...`` overrides it.
* ``sigma_shift`` (and ``visual_shift``/``audio_shift``) are accepted by ``MOVA.__call__`` but
  unused: the line that would apply them (``self.scheduler.set_timesteps(...,
  shift=sigma_shift)``) is commented out upstream; the scheduler's shift comes from the weights'
  scheduler config. Setting them is a ConfigError, so a sweep never labels identical clips
  differently. The pipeline's own ``seed`` argument is ignored upstream too: the global torch
  RNG is seeded per sample here.
* audio is what the official save keeps: the decoded waveform trimmed to ``num_frames / fps``
  seconds (``int(sample_rate * num_frames / fps)`` samples, the length the pipeline asked the
  audio VAE for; ffmpeg ``-shortest`` in ``save_video_with_audio``) and clipped to [-1, 1]
  (``_write_wav_wave``). 48 kHz mono.
* ``offload`` takes the official script's choices: ``none`` (whole pipeline on the GPU), ``cpu``
  (component-wise ``enable_model_cpu_offload``, ~48 GB VRAM at 360p) or ``group`` (layer-wise
  ``enable_group_offload``, ~12 GB VRAM, slower). ``cpu`` and ``group`` need a CUDA GPU.

Everything is validated before any GPU work; without the MOVA package, any package its pipeline
imports, or its weights, the adapter raises :class:`MissingDependencyError` (exit 2) naming what
to install and the ``hf download`` command.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np

from mova_bench.errors import ConfigError, GenerationError, MissingDependencyError
from mova_bench.generators.base import ClipRequest, GeneratedClip, Generator

#: the fixed negative prompt of the official ``scripts/inference_single.py`` (its ``--negative_prompt`` default)
NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，"
    "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指"
)

#: ``--offload`` choices of the official script (README: "Key optional arguments")
OFFLOAD_CHOICES = {
    "none": "whole pipeline on the GPU (fastest, most VRAM)",
    "cpu": "component-wise CPU offload (enable_model_cpu_offload; ~48 GB VRAM at 360p)",
    "group": "layer-wise group offload (enable_group_offload; ~12 GB VRAM, slower, more host RAM)",
}

#: parameters the released pipeline accepts but never uses: rejected, with why
INERT_PARAMS = {
    "sigma_shift": (
        "it has no effect in the released MOVA pipeline: MOVA.__call__ accepts sigma_shift but the line "
        "that would apply it (self.scheduler.set_timesteps(..., shift=sigma_shift)) is commented out "
        "upstream, so every value gives identical clips (the shift comes from the weights' scheduler config)"
    ),
    "visual_shift": "it has no effect in the released MOVA pipeline (its only use is commented out upstream)",
    "audio_shift": "it has no effect in the released MOVA pipeline (its only use is commented out upstream)",
    "seed": (
        "the released MOVA pipeline ignores its own seed argument; mova-bench seeds the global torch RNG "
        "per clip from the suite seed (use --seed)"
    ),
}

#: what ``from mova.diffusion.pipelines.pipeline_mova import MOVA`` imports (the pipelines package
#: also loads mova_train / mova_lora), plus accelerate for offloading: import name → pip requirement
PIPELINE_IMPORTS = {
    "torch": "torch",
    "torchvision": "torchvision",
    "diffusers": "diffusers",
    "transformers": "transformers<5",
    "accelerate": "accelerate",
    "yunchang": "yunchang",
    "ftfy": "ftfy",
    "einops": "einops",
    "audiotools": "descript-audiotools",
    "mmengine": "mmengine",
    "tqdm": "tqdm",
    "PIL": "pillow",
}

MOVA_INSTALL = "git clone https://github.com/OpenMOSS/MOVA && pip install -e ./MOVA  (MOVA is not on PyPI; it needs Python >= 3.12)"
#: attention kernel for context parallelism under torchrun (the official script's --attn_type default)
CP_ATTN_TYPE = "fa"
#: the official script's Ulysses degree cap for context parallelism
MAX_ULYSSES_DEGREE = 4

#: the module lookup used for dependency checks (tests replace it to make "missing" deterministic)
_find_spec = importlib.util.find_spec


def validate_mova_request(num_frames: int, width: int, height: int) -> None:
    """MOVA's own input checks (``MOVA.check_inputs``), done before loading 32B parameters."""
    problems = []
    if (num_frames - 1) % 4 != 0 or num_frames < 5:
        near = [4 * ((num_frames - 1) // 4) + 1, 4 * ((num_frames - 1) // 4 + 1) + 1]
        problems.append(f"num_frames={num_frames}: MOVA needs num_frames - 1 divisible by 4 (e.g. {near[0]} or {near[1]}; default 193)")
    for name, v in (("height", height), ("width", width)):
        if v % 16 != 0:
            problems.append(f"{name}={v}: MOVA needs a multiple of 16 (e.g. {16 * round(v / 16) or 16}); 360p is 352x640")
    if problems:
        raise ConfigError("invalid MOVA request: " + "; ".join(problems))


def crop_and_resize(image, height: int, width: int):
    """Center-crop ``image`` to the aspect ``width:height``, then resize to exactly that size.

    The same arithmetic as ``mova/datasets/transforms/custom.py::crop_and_resize`` used by the
    official ``inference_single.py`` (integer crop size, centred, PIL's default resampling).
    Returns ``(PIL image, (left, top, right, bottom) crop box in the source image)``.
    """
    from PIL import Image

    arr = np.array(image)
    image_height, image_width = arr.shape[:2]
    if image_height / image_width < height / width:  # too wide: crop the sides
        cropped_width = int(image_height / height * width)
        left = (image_width - cropped_width) // 2
        arr = arr[:, left:left + cropped_width]
        box = (left, 0, left + cropped_width, image_height)
    else:  # too tall (or exact): crop top and bottom
        cropped_height = int(image_width / width * height)
        top = (image_height - cropped_height) // 2
        arr = arr[top:top + cropped_height, :]
        box = (0, top, image_width, top + cropped_height)
    return Image.fromarray(arr).resize((width, height)), box


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_OWNED_GROUP = False
_ATEXIT_REGISTERED = False


def _destroy_owned_group() -> None:
    """atexit: tear down the one-process group this module created (never someone else's)."""
    global _OWNED_GROUP
    if not _OWNED_GROUP:
        return
    _OWNED_GROUP = False
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to report to
        pass


def ensure_process_group() -> dict[str, Any]:
    """Make ``torch.distributed.get_rank()`` work, as ``MOVA.__call__`` needs.

    * a group already exists: use it as is;
    * launched by torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set): ``init_process_group``
      from that environment (nccl on the LOCAL_RANK GPU, gloo without CUDA), as the official script;
    * otherwise: a one-process group (world size 1, rank 0) on 127.0.0.1 at a free port, gloo on
      CPU / nccl on CUDA, destroyed at exit.

    Returns ``{"backend", "world_size", "rank", "created", "how"}``.
    """
    global _OWNED_GROUP, _ATEXIT_REGISTERED
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise MissingDependencyError(
            "MOVA's pipeline calls torch.distributed.get_rank(), but this torch build has no torch.distributed. "
            "Install a standard PyTorch build (pip install torch)"
        )
    if dist.is_initialized():
        return {"backend": str(dist.get_backend()), "world_size": dist.get_world_size(), "rank": dist.get_rank(),
                "created": False, "how": "existing"}
    cuda = torch.cuda.is_available()
    launched = all(os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))
    env_world = int(os.environ.get("WORLD_SIZE") or 1)
    if launched:
        if cuda:
            local_rank = int(os.environ.get("LOCAL_RANK") or 0)
            torch.cuda.set_device(local_rank)
            dist.init_process_group(backend="nccl", device_id=torch.device("cuda", local_rank))
        elif env_world > 1:
            raise ConfigError(
                f"WORLD_SIZE={env_world}: MOVA's context parallelism (torchrun --nproc_per_node N) needs CUDA GPUs; "
                "run one process instead"
            )
        else:
            dist.init_process_group(backend="gloo")
        how = "torchrun"
    elif env_world > 1:
        raise ConfigError(
            f"WORLD_SIZE={env_world} is set but RANK/MASTER_ADDR/MASTER_PORT are not: launch with "
            "torchrun --nproc_per_node N, or unset WORLD_SIZE for one process"
        )
    else:
        last: Exception | None = None
        for _ in range(3):  # a free port can be taken between probing and binding: try another
            try:
                kwargs: dict[str, Any] = {}
                if cuda:
                    kwargs["device_id"] = torch.device("cuda", torch.cuda.current_device())
                dist.init_process_group(backend="nccl" if cuda else "gloo",
                                        init_method=f"tcp://127.0.0.1:{_free_port()}", world_size=1, rank=0, **kwargs)
                break
            except (RuntimeError, OSError) as exc:  # DistNetworkError is a RuntimeError
                last = exc
        else:
            raise GenerationError(f"could not start a one-process torch.distributed group on 127.0.0.1: {last}")
        _OWNED_GROUP = True
        if not _ATEXIT_REGISTERED:
            atexit.register(_destroy_owned_group)
            _ATEXIT_REGISTERED = True
        how = "single_process"
    return {"backend": str(dist.get_backend()), "world_size": dist.get_world_size(), "rank": dist.get_rank(),
            "created": True, "how": how}


def _apply_offload(pipe: Any, offload: str, device: Any) -> None:
    """The official script's offload strategies, for a pipeline whose GPU is ``device``."""
    import torch

    if offload == "none":
        pipe.to(device)
    elif offload == "cpu":
        pipe.enable_model_cpu_offload(device.index or 0)
    elif offload == "group":
        pipe.enable_group_offload(
            onload_device=device,
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
            use_stream=True,
            low_cpu_mem_usage=True,
            offload_to_disk_path=None,
        )
    else:  # validated in __init__
        raise ConfigError(f"offload={offload!r}: expected one of {', '.join(OFFLOAD_CHOICES)}")


def _to_frames(video: Any) -> np.ndarray:
    """``video[0]`` of ``MOVA.__call__`` (a list of PIL images; arrays accepted) → (T, H, W, 3) uint8."""
    frames = []
    for f in video:
        if hasattr(f, "convert"):
            frames.append(np.asarray(f.convert("RGB")))
            continue
        a = np.asarray(f)
        if a.dtype != np.uint8:
            a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        frames.append(a[..., :3])
    if not frames:
        raise GenerationError("MOVA returned no video frames")
    return np.stack(frames).astype(np.uint8)


def postprocess_audio(audio: Any, sample_rate: int, num_frames: int, fps: float) -> tuple[np.ndarray, dict[str, Any]]:
    """``audio[0]`` of ``MOVA.__call__`` (a [channels, samples] tensor) → what the official save keeps.

    ``squeeze()`` as ``inference_single.py``; trimmed to ``int(sample_rate * num_frames / fps)``
    samples (the length the pipeline asked its audio VAE for; the VAE decodes whole hops, so it
    returns a little more, which ffmpeg ``-shortest`` drops); clipped to [-1, 1] as
    ``_write_wav_wave`` does. Returns ``(audio (N,) or (N, C) float32, info)``.
    """
    if hasattr(audio, "detach"):
        audio = audio.detach().float().cpu().numpy()
    wav = np.squeeze(np.asarray(audio, dtype=np.float32))
    if wav.ndim == 0 or wav.size == 0:
        raise GenerationError("MOVA returned no audio samples")
    if wav.ndim == 2:
        wav = wav.T  # [C, S] → (S, C)
    elif wav.ndim != 1:
        raise GenerationError(f"MOVA returned audio of shape {np.shape(audio)}; expected [channels, samples]")
    if not np.all(np.isfinite(wav)):
        raise GenerationError("MOVA returned non-finite audio samples")
    returned = int(wav.shape[0])
    target = int(sample_rate * num_frames / fps)
    wav = wav[:target]
    clipped = int(np.count_nonzero(np.abs(wav) > 1.0))
    wav = np.clip(wav, -1.0, 1.0).astype(np.float32)
    return wav, {"audio_samples_returned": returned, "audio_samples_kept": int(wav.shape[0]),
                 "audio_samples_clipped": clipped}


class MovaGenerator(Generator):
    name = "mova"
    params_schema = {
        "guidance_scale": 5.0,
        "num_inference_steps": 50,
        "offload": "cpu",
        "negative_prompt": NEGATIVE_PROMPT,
        "weights_path": "",
    }

    _pipe = None
    _cp_mesh = None

    def __init__(self, card_defaults: dict[str, Any] | None = None, card: Any = None, **params: Any):
        for key in sorted(set(params) | set(card_defaults or {})):
            if key in INERT_PARAMS:
                where = "--set" if key in params else "the model card's defaults"
                raise ConfigError(
                    f"MOVA parameter {key!r} ({where}) is rejected: {INERT_PARAMS[key]}. Remove it; "
                    f"valid parameters: {', '.join(sorted(self.params_schema))}"
                )
        super().__init__(card_defaults=card_defaults, card=card, **params)
        offload = str(self.params["offload"]).strip().lower()
        if offload not in OFFLOAD_CHOICES:
            choices = "; ".join(f"{k}: {v}" for k, v in OFFLOAD_CHOICES.items())
            raise ConfigError(f"offload={self.params['offload']!r} is not a MOVA offload strategy. Valid values: {choices}")
        self.params["offload"] = offload
        steps = self.params["num_inference_steps"]
        if not 1 <= int(steps) <= 1000:
            raise ConfigError(f"num_inference_steps={steps}: expected an integer in 1..1000 (MOVA's default is 50)")
        if not np.isfinite(float(self.params["guidance_scale"])):
            raise ConfigError(f"guidance_scale={self.params['guidance_scale']}: expected a finite number (MOVA's default is 5.0)")

    # -- where things are -------------------------------------------------------------------

    def _card_name(self) -> str:
        return self.card.name if self.card is not None else "mova-360p"

    def _hf_repo(self) -> str:
        src = self.card.weights.source if self.card is not None and self.card.weights.source else ""
        return src.split(":", 1)[1] if src.startswith("hf:") else "OpenMOSS-Team/MOVA-360p"

    def _weights(self) -> Path:
        """``--set weights_path`` > the card's env variable (e.g. MOVA_360P_PATH) >
        ``$MOVA_BENCH_HOME/weights/<folder>`` (``~/.cache/mova-bench/weights/<folder>`` by default)."""
        from mova_bench.cache import home

        if self.params.get("weights_path"):
            return Path(self.params["weights_path"]).expanduser()
        env = self.card.weights.env if self.card is not None else "MOVA_360P_PATH"
        if env and os.environ.get(env):
            return Path(os.environ[env]).expanduser()
        default = self.card.weights.default_path if self.card is not None and self.card.weights.default_path else ""
        if default:
            default = default.replace("${MOVA_BENCH_HOME}", str(home())).replace("$MOVA_BENCH_HOME", str(home()))
            return Path(os.path.expandvars(default)).expanduser()
        return Path(home()).expanduser() / "weights" / self._hf_repo().rsplit("/", 1)[-1]

    def _download_command(self, weights: Path) -> str:
        return f"hf download {self._hf_repo()} --local-dir {weights}"

    # -- checks before any work -------------------------------------------------------------

    def check_available(self) -> None:
        install = self.card.install.strip() if self.card is not None and self.card.install else MOVA_INSTALL
        weights = self._weights()
        download = self._download_command(weights)
        missing = [name for name in ("mova", *PIPELINE_IMPORTS) if _find_spec(name) is None]
        if missing:
            pip = [f"{m} (pip: {PIPELINE_IMPORTS[m]})" for m in missing if m != "mova"]
            what = (["mova (the OpenMOSS MOVA code)"] if "mova" in missing else []) + pip
            extra = [PIPELINE_IMPORTS[m] for m in missing if m != "mova"]
            how = install if "mova" in missing else (
                f"pip install {' '.join(repr(e) if '<' in e else e for e in extra)}  (or reinstall MOVA: {install})")
            raise MissingDependencyError(
                f"model {self._card_name()!r} needs the Python package(s) {', '.join(what)}, which are not installed. "
                f"Install: {how}. Then get the weights: {download}. "
                "To try mova-bench without a GPU, use --model procedural."
            )
        spec = _find_spec("mova")
        locations = list(getattr(spec, "submodule_search_locations", None) or [])
        if not any((Path(loc) / "diffusion" / "pipelines" / "pipeline_mova.py").is_file() for loc in locations):
            raise MissingDependencyError(
                f"the installed package 'mova' ({', '.join(locations) or getattr(spec, 'origin', '?')}) is not OpenMOSS MOVA "
                f"(no mova/diffusion/pipelines/pipeline_mova.py). Install: {install}"
            )
        self._check_weights(weights, download)
        import torch

        if not torch.cuda.is_available() and self.params["offload"] != "none":
            raise ConfigError(
                f"offload={self.params['offload']!r} moves MOVA between CPU and a CUDA GPU, but torch sees no CUDA GPU "
                "(torch.cuda.is_available() is False). On a GPU box check the CUDA build of torch; to run on this "
                "machine's CPU (extremely slow for 32B parameters) use --set offload=none"
            )
        if int(os.environ.get("WORLD_SIZE") or 1) > 1 and not torch.cuda.is_available():
            raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']}: MOVA's context parallelism needs CUDA GPUs")

    def _check_weights(self, weights: Path, download: str) -> None:
        env = self.card.weights.env if self.card is not None and self.card.weights.env else "MOVA_360P_PATH"
        how = f"Download them with `{download}` or point {env}=/path/to/weights (or --set weights_path=...)"
        index = weights / "model_index.json"
        if not index.is_file():
            raise MissingDependencyError(f"MOVA weights not found at {weights} (no model_index.json). {how}.")
        try:
            doc = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MissingDependencyError(f"MOVA weights at {weights}: model_index.json is unreadable ({exc}). {how}.") from None
        if not isinstance(doc, dict):
            raise MissingDependencyError(f"MOVA weights at {weights}: model_index.json is not a JSON object. {how}.")
        components = [k for k, v in doc.items()
                      if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[0] is not None]
        absent = [k for k in components if not (weights / k).is_dir()]
        if absent:
            raise MissingDependencyError(
                f"MOVA weights at {weights} are incomplete: model_index.json lists {', '.join(absent)} but those "
                f"folders are missing (an interrupted download?). Rerun `{download}` (it resumes)."
            )

    def validate_request(self, request: ClipRequest) -> None:
        num_frames = int(round(request.duration_s * request.fps))
        validate_mova_request(num_frames, request.width, request.height)
        if request.first_frame and not Path(request.first_frame).is_file():
            raise ConfigError(f"first_frame {request.first_frame!r} of prompt {request.prompt_id!r} does not exist")

    # -- loading and generating -------------------------------------------------------------

    def load(self) -> None:
        import torch

        group = ensure_process_group()
        self.process_group = group
        from mova.diffusion.pipelines.pipeline_mova import MOVA

        cuda = torch.cuda.is_available()
        if not cuda and self.params["offload"] != "none":
            raise ConfigError(f"offload={self.params['offload']!r} needs a CUDA GPU; use --set offload=none on CPU")
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        pipe = MOVA.from_pretrained(str(self._weights()), torch_dtype=torch.bfloat16)
        _apply_offload(pipe, self.params["offload"], device)
        world = int(group["world_size"])
        if world > 1:
            self._cp_mesh = self._enable_context_parallel(pipe, world, int(group["rank"]))
        self._pipe = pipe

    @staticmethod
    def _enable_context_parallel(pipe: Any, world: int, rank: int):
        """All ranks form one context-parallel group, as ``inference_single.py --cp_size WORLD_SIZE``."""
        import torch
        from torch.distributed.device_mesh import DeviceMesh
        from yunchang import set_seq_parallel_pg
        from yunchang.kernels import AttnType

        mesh = DeviceMesh("cuda", torch.arange(world).view(1, world), mesh_dim_names=("dp", "cp"))
        ulysses = min(world, MAX_ULYSSES_DEGREE)
        if world % ulysses != 0:
            raise ConfigError(f"WORLD_SIZE={world}: MOVA's context parallelism needs it divisible by {ulysses}")
        set_seq_parallel_pg(sp_ulysses_degree=ulysses, sp_ring_degree=world // ulysses, rank=rank,
                            world_size=world, use_ulysses_low=True)
        pipe.replace_attention(attn_type=AttnType.from_string(CP_ATTN_TYPE))
        return mesh["cp"]

    @staticmethod
    def first_frame(request: ClipRequest):
        """(PIL image at the request's size, source): the suite's image center-cropped to the target
        aspect and resized (as the official script), or a plain white frame (``"white_fallback"``)."""
        image, source, _ = MovaGenerator.first_frame_with_info(request)
        return image, source

    @staticmethod
    def first_frame_with_info(request: ClipRequest):
        """:meth:`first_frame` plus what was done to the suite's image (its size, the crop box)."""
        from PIL import Image

        if request.first_frame:
            with Image.open(request.first_frame) as im:
                img = im.convert("RGB")
            out, box = crop_and_resize(img, height=request.height, width=request.width)
            return out, "suite", {"first_frame_input_size": [img.width, img.height], "first_frame_crop_box": list(box)}
        return Image.new("RGB", (request.width, request.height), (255, 255, 255)), "white_fallback", {}

    def generate(self, request: ClipRequest) -> GeneratedClip:
        import torch

        num_frames = int(round(request.duration_s * request.fps))
        validate_mova_request(num_frames, request.width, request.height)
        if self._pipe is None:
            self.load()
        image, source, frame_info = self.first_frame_with_info(request)
        # MOVA draws its noise from the global RNG (its `seed` argument is unused): seed per clip
        torch.manual_seed(request.seed)
        np.random.seed(request.seed % (2**32))
        kwargs: dict[str, Any] = dict(
            prompt=request.prompt_text,
            image=image,
            negative_prompt=self.params["negative_prompt"],
            seed=request.seed,
            height=request.height,
            width=request.width,
            num_frames=num_frames,
            video_fps=float(request.fps),
            num_inference_steps=int(self.params["num_inference_steps"]),
            cfg_scale=float(self.params["guidance_scale"]),
        )
        if self._cp_mesh is not None:
            kwargs["cp_mesh"] = self._cp_mesh
        video, audio = self._pipe(**kwargs)
        frames = _to_frames(video[0])
        sample_rate = int(self._pipe.audio_sample_rate)
        wav, audio_info = postprocess_audio(audio[0], sample_rate, num_frames, float(request.fps))
        info: dict[str, Any] = {
            "first_frame_source": source, **frame_info, "cfg_scale": float(self.params["guidance_scale"]),
            "negative_prompt_is_official": self.params["negative_prompt"] == NEGATIVE_PROMPT, **audio_info,
        }
        if frames.shape[0] != num_frames:
            info["frames_returned"] = int(frames.shape[0])
        shift = self._scheduler_shift()
        if shift is not None:
            info["scheduler_shift"] = shift
        return GeneratedClip(video=frames, audio=wav, fps=float(request.fps), sample_rate=sample_rate, info=info)

    def _scheduler_shift(self) -> float | None:
        """The shift the pipeline really uses (from the weights' scheduler config), when it says."""
        config = getattr(getattr(self._pipe, "scheduler", None), "config", None)
        value = config.get("shift") if isinstance(config, dict) or hasattr(config, "get") else None
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None


__all__ = ["MovaGenerator", "NEGATIVE_PROMPT", "OFFLOAD_CHOICES", "crop_and_resize", "ensure_process_group",
           "postprocess_audio", "validate_mova_request"]
