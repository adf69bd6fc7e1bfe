"""The MOVA adapter, run for real against a fake ``mova`` package (tests/fakes/mova).

The fake mirrors the released pipeline's surface (OpenMOSS/MOVA 595a976): ``from_pretrained``,
the ``__call__`` signature and input checks, its ``torch.distributed.get_rank()`` call, noise from
the global RNG, and its return types (a batch list of PIL frame lists; a ``[B, 1, T]`` audio tensor
longer than ``num_frames / fps`` and not clipped). So ``load`` and ``generate`` really run here.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mova_bench.cards import load_card
from mova_bench.errors import ConfigError, MissingDependencyError
from mova_bench.generators import mova as mova_adapter
from mova_bench.generators.base import ClipRequest
from mova_bench.generators.mova import NEGATIVE_PROMPT, MovaGenerator, crop_and_resize, postprocess_audio

FAKES = Path(__file__).resolve().parent / "fakes"
#: packages the real pipeline imports that the CI venv does not have; the fake mova needs none of them
HEAVY_DEPS = {"torchvision", "diffusers", "transformers", "accelerate", "yunchang", "ftfy", "einops", "audiotools", "mmengine"}
DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# the official inference_single.py's NEGATIVE_PROMPT, verbatim (OpenMOSS/MOVA 595a976)
UPSTREAM_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，"
    "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指"
)


def _forget_mova_modules():
    for name in [m for m in sys.modules if m == "mova" or m.startswith("mova.")]:
        del sys.modules[name]


def _destroy_group():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    mova_adapter._OWNED_GROUP = False


@pytest.fixture()
def no_group(monkeypatch):
    """No process group before or after; no torchrun environment; no CUDA (deterministic on any box)."""
    import torch

    for k in DIST_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _destroy_group()
    yield
    _destroy_group()


@pytest.fixture()
def fake_mova(monkeypatch, no_group):
    """The fake ``mova`` importable, the pipeline's other imports reported present, a clean slate."""
    from mova_bench.pipeline import generation

    _forget_mova_modules()
    monkeypatch.syspath_prepend(str(FAKES))
    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name in HEAVY_DEPS:
            return importlib.machinery.ModuleSpec(name, None)
        return real(name, *args)

    monkeypatch.setattr(mova_adapter, "_find_spec", find_spec)
    monkeypatch.setattr(generation, "_generators", {})
    from mova.diffusion.pipelines.pipeline_mova import MOVA

    MOVA.calls.clear()
    MOVA.instances.clear()
    yield MOVA
    _forget_mova_modules()  # find_spec("mova") must not find the fake after this test


def make_weights(folder: Path) -> Path:
    components = ("video_vae", "audio_vae", "text_encoder", "tokenizer", "scheduler", "video_dit", "video_dit_2",
                  "audio_dit", "dual_tower_bridge")
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "MOVA", "_diffusers_version": "0.35.1", "audio_vae_type": "dac", "boundary_ratio": 0.9}
    for c in components:
        (folder / c).mkdir(exist_ok=True)
        index[c] = ["mova", c]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def request(tmp_path=None, *, first_frame=None, num_frames=17, fps=24.0, width=112, height=64, seed=7):
    return ClipRequest(clip_id="p__s0", prompt_id="p", prompt_text="thunder over a lake", seed=seed, sample_index=0,
                       duration_s=num_frames / fps, fps=fps, sample_rate=48000, width=width, height=height,
                       first_frame=str(first_frame) if first_frame else None)


def generator(tmp_path, **params):
    card = load_card("mova")
    params = {"offload": "none", "num_inference_steps": 3, "weights_path": str(make_weights(tmp_path / "w")), **params}
    return MovaGenerator(card_defaults=card.defaults, card=card, **params)


# -- process group -------------------------------------------------------------------------------

def test_fake_pipeline_needs_a_process_group_like_the_real_one(fake_mova, tmp_path):
    from PIL import Image

    pipe = fake_mova.from_pretrained(str(make_weights(tmp_path / "w")))
    with pytest.raises((ValueError, RuntimeError)):  # "Default process group has not been initialized"
        pipe(prompt="x", image=Image.new("RGB", (112, 64)), height=64, width=112, num_frames=17, num_inference_steps=1)


def test_load_initialises_a_one_process_group_and_generate_runs(fake_mova, tmp_path):
    import torch.distributed as dist

    assert not dist.is_initialized()
    gen = generator(tmp_path)
    gen.check_available()
    gen.load()
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    assert dist.get_backend() == "gloo"
    assert gen.process_group == {"backend": "gloo", "world_size": 1, "rank": 0, "created": True, "how": "single_process"}
    assert mova_adapter._OWNED_GROUP
    pipe = fake_mova.instances[-1]
    assert pipe.path == str(tmp_path / "w") and str(pipe.torch_dtype) == "torch.bfloat16"
    assert pipe.offload == ("to", "cpu")
    clip = gen.generate(request())
    assert fake_mova.calls[-1]["rank"] == 0
    assert clip.video.shape == (17, 64, 112, 3) and clip.video.dtype == np.uint8
    assert clip.sample_rate == 48000 and clip.fps == 24.0
    assert clip.info["scheduler_shift"] == 5.0
    # the MOVA environment variables were not touched
    import os

    assert "MASTER_PORT" not in os.environ and "MASTER_ADDR" not in os.environ


def test_an_existing_group_is_used_not_replaced(fake_mova, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{mova_adapter._free_port()}", world_size=1, rank=0)
    gen = generator(tmp_path)
    gen.load()
    assert gen.process_group["created"] is False and gen.process_group["how"] == "existing"
    assert not mova_adapter._OWNED_GROUP
    gen.generate(request())


def test_torchrun_environment_is_used(fake_mova, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(mova_adapter._free_port()))
    gen = generator(tmp_path)
    gen.load()
    assert gen.process_group["how"] == "torchrun" and gen.process_group["world_size"] == 1
    assert gen._cp_mesh is None  # one rank: no context parallelism
    gen.generate(request())


def test_world_size_without_a_launcher_or_gpu_is_a_config_error(fake_mova, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="torchrun"):
        mova_adapter.ensure_process_group()
    with pytest.raises(ConfigError, match="context parallelism needs CUDA"):
        generator(tmp_path).check_available()


# -- negative prompt, seeding -------------------------------------------------------------------

def test_negative_prompt_defaults_to_the_official_one_and_can_be_overridden(fake_mova, tmp_path):
    assert NEGATIVE_PROMPT == UPSTREAM_NEGATIVE_PROMPT
    card = load_card("mova")
    assert "negative_prompt" not in card.defaults  # the card must not override the official default
    gen = generator(tmp_path)
    assert gen.params["negative_prompt"] == NEGATIVE_PROMPT
    clip = gen.generate(request())
    call = fake_mova.calls[-1]
    assert call["negative_prompt"] == NEGATIVE_PROMPT and clip.info["negative_prompt_is_official"] is True
    assert call["cfg_scale"] == 5.0 and call["num_inference_steps"] == 3 and call["num_frames"] == 17
    assert call["video_fps"] == 24.0 and (call["height"], call["width"]) == (64, 112)
    assert call["sigma_shift"] == 5.0  # never passed: the pipeline's (inert) default

    gen2 = generator(tmp_path, negative_prompt="blurry")
    gen2.generate(request())
    assert fake_mova.calls[-1]["negative_prompt"] == "blurry"
    assert MovaGenerator(card_defaults=card.defaults, card=card, negative_prompt="").params["negative_prompt"] == ""


def test_each_clip_seeds_the_global_rng(fake_mova, tmp_path):
    gen = generator(tmp_path)
    a = gen.generate(request(seed=11))
    b = gen.generate(request(seed=11))
    c = gen.generate(request(seed=12))
    assert np.array_equal(a.video, b.video) and np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.video, c.video)


# -- first frame ---------------------------------------------------------------------------------

def _upstream_crop_and_resize(image, height, width):
    """mova/datasets/transforms/custom.py::crop_and_resize at 595a976, verbatim logic (test oracle)."""
    from PIL import Image

    image = np.array(image)
    image_height, image_width, _ = image.shape
    if image_height / image_width < height / width:
        croped_width = int(image_height / height * width)
        left = (image_width - croped_width) // 2
        image = image[:, left: left + croped_width]
        image = Image.fromarray(image).resize((width, height))
    else:
        croped_height = int(image_width / width * height)
        left = (image_height - croped_height) // 2
        image = image[left: left + croped_height, :]
        image = Image.fromarray(image).resize((width, height))
    return image


@pytest.mark.parametrize("size", [(100, 300), (400, 100), (112, 64), (640, 352), (333, 217)])
def test_crop_and_resize_matches_the_official_transform(size):
    from PIL import Image

    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours, box = crop_and_resize(img, height=64, width=112)
    assert ours.size == (112, 64)
    assert np.array_equal(np.asarray(ours), np.asarray(_upstream_crop_and_resize(img, 64, 112)))
    left, top, right, bottom = box
    assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]


def test_first_frame_is_center_cropped_not_stretched(fake_mova, tmp_path):
    from PIL import Image

    # a tall image: red top third, green middle third, blue bottom third; the 112x64 target
    # aspect keeps a centred band of 57 rows, all green. Stretching would bring in red and blue.
    arr = np.zeros((300, 100, 3), np.uint8)
    arr[:100, :, 0] = 255
    arr[100:200, :, 1] = 255
    arr[200:, :, 2] = 255
    path = tmp_path / "tall.png"
    Image.fromarray(arr).save(path)
    gen = generator(tmp_path)
    clip = gen.generate(request(first_frame=path))
    got = np.asarray(fake_mova.calls[-1]["image"]).astype(int)
    assert got.shape == (64, 112, 3)
    assert got[..., 1].min() >= 250 and got[..., 0].max() <= 5 and got[..., 2].max() <= 5
    assert clip.info["first_frame_source"] == "suite"
    assert clip.info["first_frame_input_size"] == [100, 300] and clip.info["first_frame_crop_box"] == [0, 121, 100, 178]

    # a wide image: red and blue side bands are cut off
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, :100, 0] = 255
    wide[:, 100:300, 1] = 255
    wide[:, 300:, 2] = 255
    Image.fromarray(wide).save(path)
    gen.generate(request(first_frame=path))
    got = np.asarray(fake_mova.calls[-1]["image"]).astype(int)
    assert got[..., 1].min() >= 250 and got[..., 0].max() <= 5 and got[..., 2].max() <= 5


def test_white_fallback_without_a_first_frame_is_recorded(fake_mova, tmp_path):
    clip = generator(tmp_path).generate(request())
    got = np.asarray(fake_mova.calls[-1]["image"])
    assert got.shape == (64, 112, 3) and got.min() == 255
    assert clip.info["first_frame_source"] == "white_fallback"


# -- audio ---------------------------------------------------------------------------------------

def test_audio_is_trimmed_to_the_video_and_clipped(fake_mova, tmp_path):
    clip = generator(tmp_path).generate(request(num_frames=17, fps=24.0))
    expected = int(48000 * 17 / 24.0)
    assert clip.audio.shape == (expected,) and clip.audio.dtype == np.float32
    assert np.abs(clip.audio).max() <= 1.0
    assert clip.info["audio_samples_returned"] > expected  # the fake VAE decodes whole hops, like the real one
    assert clip.info["audio_samples_kept"] == expected and clip.info["audio_samples_clipped"] > 0


def test_postprocess_audio_shapes():
    import torch

    stereo = torch.full((2, 50_000), 2.0)
    wav, info = postprocess_audio(stereo, 48000, 25, 25.0)
    assert wav.shape == (48000, 2) and wav.max() == 1.0 and info["audio_samples_clipped"] == 96000
    mono, _ = postprocess_audio(np.linspace(-3, 3, 1000, dtype=np.float32)[None], 1000, 1, 2.0)
    assert mono.shape == (500,) and mono.min() == -1.0
    from mova_bench.errors import GenerationError

    with pytest.raises(GenerationError, match="no audio"):
        postprocess_audio(torch.zeros((1, 0)), 48000, 17, 24.0)
    with pytest.raises(GenerationError, match="non-finite"):
        postprocess_audio(torch.tensor([[0.0, float("nan")]]), 48000, 17, 24.0)


# -- parameters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["gpu", "sequential", "model", "True"])
def test_invalid_offload_is_rejected_with_the_choices(bad):
    card = load_card("mova")
    with pytest.raises(ConfigError) as exc:
        MovaGenerator(card_defaults=card.defaults, card=card, offload=bad)
    msg = str(exc.value)
    assert repr(bad) in msg and "none" in msg and "cpu" in msg and "group" in msg


def test_offload_strategies_match_the_official_script():
    import torch

    from mova_bench.generators.mova import OFFLOAD_CHOICES, _apply_offload

    sys.path.insert(0, str(FAKES))
    try:
        from mova.diffusion.pipelines.pipeline_mova import MOVA
    finally:
        sys.path.remove(str(FAKES))
        _forget_mova_modules()
    assert set(OFFLOAD_CHOICES) == {"none", "cpu", "group"}
    card = load_card("mova")
    for value in OFFLOAD_CHOICES:
        assert MovaGenerator(card_defaults=card.defaults, card=card, offload=value.upper()).params["offload"] == value
    gpu = torch.device("cuda", 0)
    pipe = MOVA("w")
    _apply_offload(pipe, "none", gpu)
    assert pipe.offload == ("to", "cuda:0")
    _apply_offload(pipe, "cpu", gpu)
    assert pipe.offload == ("model_cpu_offload", 0, "cuda")
    _apply_offload(pipe, "group", gpu)
    assert pipe.offload == ("group_offload", "cuda:0", "cpu", "leaf_level", True, True, None)


def test_offload_to_cpu_without_cuda_is_a_config_error(fake_mova, tmp_path):
    gen = generator(tmp_path, offload="cpu")
    with pytest.raises(ConfigError, match="offload=none"):
        gen.check_available()
    with pytest.raises(ConfigError, match="offload=none"):
        gen.load()


@pytest.mark.parametrize("key", ["sigma_shift", "visual_shift", "audio_shift"])
def test_inert_shift_parameters_are_rejected_with_the_reason(key):
    card = load_card("mova")
    with pytest.raises(ConfigError) as exc:
        MovaGenerator(card_defaults=card.defaults, card=card, **{key: "3.0"})
    assert key in str(exc.value) and "no effect" in str(exc.value) and "commented out" in str(exc.value)
    with pytest.raises(ConfigError, match="no effect"):  # an old custom card that still sets it
        MovaGenerator(card_defaults={**card.defaults, key: 5.0}, card=card)


def test_builtin_mova_cards_have_no_inert_defaults_and_construct():
    for name in ("mova", "mova-360p", "mova-720p"):
        card = load_card(name)
        assert "sigma_shift" not in card.defaults and card.adapter == "mova"
        gen = MovaGenerator(card_defaults=card.defaults, card=card)
        assert gen.params["offload"] == "cpu" and gen.params["negative_prompt"] == NEGATIVE_PROMPT


def test_cli_sweep_style_set_of_sigma_shift_exits_2(tmp_path, capsys):
    from mova_bench.cli import main

    code = main(["run", "--model", "mova", "--suite", "thunderstorm_set", "--out", str(tmp_path), "--set", "sigma_shift=3"])
    err = capsys.readouterr().err
    assert code == 2 and "sigma_shift" in err and "no effect" in err
    assert not list(tmp_path.iterdir())


# -- dependency and weights checks --------------------------------------------------------------

@pytest.mark.parametrize("missing", sorted(HEAVY_DEPS | {"torch"}))
def test_a_missing_pipeline_dependency_is_named_with_its_install_command(fake_mova, tmp_path, monkeypatch, missing):
    real = mova_adapter._find_spec
    monkeypatch.setattr(mova_adapter, "_find_spec", lambda name, *a: None if name == missing else real(name, *a))
    with pytest.raises(MissingDependencyError) as exc:
        generator(tmp_path).check_available()
    msg = str(exc.value)
    pip_name = mova_adapter.PIPELINE_IMPORTS[missing]
    assert missing in msg and "pip install" in msg and pip_name in msg and "hf download" in msg


def test_missing_mova_names_the_clone_and_download(monkeypatch, tmp_path, no_group):
    real = importlib.util.find_spec
    monkeypatch.setattr(mova_adapter, "_find_spec", lambda name, *a: None if name == "mova" else
                        (importlib.machinery.ModuleSpec(name, None) if name in HEAVY_DEPS else real(name, *a)))
    monkeypatch.delenv("MOVA_360P_PATH", raising=False)
    card = load_card("mova")
    with pytest.raises(MissingDependencyError) as exc:
        MovaGenerator(card_defaults=card.defaults, card=card).check_available()
    msg = str(exc.value)
    assert "git clone https://github.com/OpenMOSS/MOVA" in msg and "pip install -e ./MOVA" in msg
    assert "hf download OpenMOSS-Team/MOVA-360p --local-dir" in msg and "--model procedural" in msg


def test_a_foreign_mova_package_is_not_taken_for_openmoss_mova(monkeypatch, tmp_path, no_group):
    other = tmp_path / "site" / "mova"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    spec = importlib.machinery.ModuleSpec("mova", None, is_package=True)
    spec.submodule_search_locations = [str(other)]
    real = importlib.util.find_spec
    monkeypatch.setattr(mova_adapter, "_find_spec", lambda name, *a: spec if name == "mova" else
                        (importlib.machinery.ModuleSpec(name, None) if name in HEAVY_DEPS else real(name, *a)))
    with pytest.raises(MissingDependencyError, match="is not OpenMOSS MOVA"):
        generator(tmp_path).check_available()


def test_weights_path_follows_mova_bench_home_and_the_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv("MOVA_360P_PATH", raising=False)
    monkeypatch.delenv("MOVA_720P_PATH", raising=False)
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "home"))
    card = load_card("mova")
    assert MovaGenerator(card_defaults=card.defaults, card=card)._weights() == tmp_path / "home" / "weights" / "MOVA-360p"
    c720 = load_card("mova-720p")
    assert MovaGenerator(card_defaults=c720.defaults, card=c720)._weights() == tmp_path / "home" / "weights" / "MOVA-720p"
    monkeypatch.setenv("MOVA_360P_PATH", str(tmp_path / "elsewhere"))
    assert MovaGenerator(card_defaults=card.defaults, card=card)._weights() == tmp_path / "elsewhere"
    assert MovaGenerator(card_defaults=card.defaults, card=card, weights_path=str(tmp_path / "p"))._weights() == tmp_path / "p"
    monkeypatch.delenv("MOVA_360P_PATH")
    monkeypatch.delenv("MOVA_BENCH_HOME")
    assert MovaGenerator(card_defaults=card.defaults, card=card)._weights() == (
        Path.home() / ".cache" / "mova-bench" / "weights" / "MOVA-360p")


def test_missing_or_incomplete_weights_name_the_download(fake_mova, monkeypatch, tmp_path):
    monkeypatch.delenv("MOVA_360P_PATH", raising=False)
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "home"))
    card = load_card("mova")
    gen = MovaGenerator(card_defaults=card.defaults, card=card, offload="none")
    where = tmp_path / "home" / "weights" / "MOVA-360p"
    with pytest.raises(MissingDependencyError) as exc:
        gen.check_available()
    assert f"hf download OpenMOSS-Team/MOVA-360p --local-dir {where}" in str(exc.value) and "MOVA_360P_PATH" in str(exc.value)
    make_weights(where)
    gen.check_available()  # complete: fine
    (where / "audio_dit").rmdir()
    with pytest.raises(MissingDependencyError, match="audio_dit"):
        gen.check_available()


# -- end to end through the CLI -----------------------------------------------------------------

TINY_CARD = """\
name: mova-tiny-test
adapter: mova
defaults: {guidance_scale: 4.0, num_inference_steps: 2, offload: none}
generation: {num_frames: 17, fps: 24, width: 112, height: 64, sample_rate: 48000}
weights: {source: "hf:OpenMOSS-Team/MOVA-360p", env: MOVA_360P_PATH}
"""

TINY_SUITE = """\
name: tiny_mova
version: "1"
defaults: {duration_s: 1.0, fps: 24, sample_rate: 48000, width: 112, height: 64, samples_per_prompt: 1, seed: 1}
reference: {kind: procedural, samples_per_prompt: 1}
prompts:
  - {id: storm, text: "A lightning bolt strikes close by, followed by thunder", first_frame: frame.png}
"""


def test_cli_run_end_to_end_with_the_fake_pipeline(fake_mova, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from mova_bench.cli import main
    from mova_bench.media import probe_streams
    from mova_bench.store import read_manifest

    monkeypatch.setenv("MOVA_360P_PATH", str(make_weights(tmp_path / "weights")))
    (tmp_path / "card.yaml").write_text(TINY_CARD)
    (tmp_path / "suite.yaml").write_text(TINY_SUITE)
    Image.new("RGB", (90, 120), (30, 60, 200)).save(tmp_path / "frame.png")
    code = main(["run", "--model", str(tmp_path / "card.yaml"), "--suite", str(tmp_path / "suite.yaml"),
                 "--out", str(tmp_path / "runs"), "--metrics", "sync_offset_ms", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_clips"] == 1 and doc["n_failed"] == 0
    (row,) = read_manifest(Path(doc["run_dir"]) / "manifest.jsonl")
    assert row["status"] == "ok", row["error"]
    assert row["generator_args"]["negative_prompt"] == NEGATIVE_PROMPT and "sigma_shift" not in row["generator_args"]
    assert row["generator_args"]["guidance_scale"] == 4.0 and row["first_frame_source"] == "suite"
    assert row["info"]["audio_samples_kept"] == int(48000 * 17 / 24)
    assert (row["width"], row["height"]) == (112, 64)
    streams = probe_streams(row["path"])
    assert streams["video"] and streams["audio"]
    call = fake_mova.calls[-1]
    assert call["image"].size == (112, 64) and call["num_frames"] == 17 and call["cfg_scale"] == 4.0
    assert doc["metrics"]["sync_offset_ms"]["status"] in ("ok", "skipped", "failed")


def test_cli_run_without_mova_exits_2_with_install_and_download(tmp_path, capsys, no_group, monkeypatch):
    from mova_bench.cli import main

    _forget_mova_modules()
    monkeypatch.delenv("MOVA_360P_PATH", raising=False)
    code = main(["run", "--model", "mova", "--suite", "thunderstorm_set", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "pip install" in err and "hf download" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
