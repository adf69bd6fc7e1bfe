"""ImageBind backbone and the IB-score metric (no network, random weights).

* the network's key/shape manifest equals ``imagebind_huge()``'s from imagebind-unofficial (built on
  the meta device) and the committed tests/manifests/imagebind-huge.json (1,311 keys,
  1,200,781,057 parameters);
* a reduced ``ImageBindModel`` from imagebind-unofficial with seeded random weights, saved as a plain
  state dict, loads strictly through our loader (whole file checked, vision + audio loaded) and gives
  the same multi-clip vision and audio embeddings at 1e-5 (CPU fp32);
* a checkpoint with a missing, extra or mis-shaped key anywhere in the file fails naming it;
* preprocessing: our Kaldi fbank against torchaudio 2.11's stored output
  (tests/data/peer_parity/imagebind_fbank.npz, benchmarks/imagebind_fbank_regen.py), ImageBind's
  audio clip sampling and its in-place mean removal, the 0.5 fps frame choice against FFmpeg's own
  ``fps`` filter, resize/normalise against torchvision v2 as av-benchmark composes it, the three crops;
* a MOVA-sized clip end to end against the reference model, the metric, and ``mova-bench run``;
* ``video_recipe="javisbench"`` (ImageBind's ``load_and_transform_video_data``): clip bounds and frame
  indices against pytorchvideo's sampler / decord's ``get_clip`` arithmetic re-stated here, the resize
  against ``interpolate``, a decoded MP4 against the reference model, the cache identity, the profile.

Regenerate the manifest with ``python tests/test_backbone_imagebind.py``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mova_bench.errors import MovaBenchError  # noqa: E402
from mova_bench.features import imagebind as ib  # noqa: E402
from mova_bench.features.imagebind_net import (  # noqa: E402
    ImageBindNet,
    build_imagebind,
    checkpoint_manifest,
    reduced_config,
)
from mova_bench.media import DecodedClip, VideoNeed  # noqa: E402
from mova_bench.metrics.base import FeatureSet  # noqa: E402
from mova_bench.metrics.ib_score import IBScore  # noqa: E402

HERE = Path(__file__).parent
MANIFEST = HERE / "manifests" / "imagebind-huge.json"
FBANK_REF = HERE / "data" / "peer_parity" / "imagebind_fbank.npz"
NATIVE = VideoNeed("native")
TINY = reduced_config()


def _imagebind_models():
    """imagebind-unofficial's model code without its package ``__init__`` (which imports torchaudio and
    pytorchvideo, absent here); None when not installed."""
    if not hasattr(sys.modules.get("imagebind"), "__path__"):
        spec = importlib.util.find_spec("imagebind")
        if spec is None or not spec.submodule_search_locations:
            return None
        pkg = types.ModuleType("imagebind")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["imagebind"] = pkg
    try:
        from imagebind.models import imagebind_model
    except ImportError:
        return None
    return imagebind_model


def upstream_manifest() -> dict[str, list[int]]:
    """Keys and shapes of ``imagebind_huge()`` built on the meta device (its drop-path schedule calls
    ``torch.linspace(...).item()``, which meta tensors cannot: that one call runs on the CPU)."""
    imagebind_model = _imagebind_models()
    orig = torch.linspace

    def cpu_linspace(*a, **k):
        k["device"] = "cpu"
        return orig(*a, **k)

    torch.linspace = cpu_linspace
    try:
        with torch.device("meta"):
            model = imagebind_model.imagebind_huge(pretrained=False)
    finally:
        torch.linspace = orig
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _upstream_tiny(seed: int = 0):
    """A reduced imagebind-unofficial ``ImageBindModel`` (same structure as TINY), every parameter
    seeded-random (biases and LayerNorms included), eval mode."""
    imagebind_model = _imagebind_models()
    c = TINY
    torch.manual_seed(seed)
    m = imagebind_model.ImageBindModel(
        video_frames=2, kernel_size=(2, 14, 14), audio_kernel_size=16, audio_stride=10, out_embed_dim=c.out_dim,
        vision_embed_dim=c.vision_dim, vision_num_blocks=c.vision_blocks, vision_num_heads=c.vision_heads,
        audio_embed_dim=c.audio_dim, audio_num_blocks=c.audio_blocks, audio_num_heads=c.audio_heads,
        audio_num_mel_bins=128, audio_target_len=204, audio_drop_path=0.1,
        text_embed_dim=c.text_dim, text_num_blocks=c.text_blocks, text_num_heads=c.text_heads,
        depth_embed_dim=c.depth_dim, depth_kernel_size=16, depth_num_blocks=c.depth_blocks, depth_num_heads=c.depth_heads,
        thermal_embed_dim=c.thermal_dim, thermal_kernel_size=16, thermal_num_blocks=c.thermal_blocks,
        thermal_num_heads=c.thermal_heads, imu_embed_dim=c.imu_dim, imu_kernel_size=8, imu_num_blocks=c.imu_blocks,
        imu_num_heads=c.imu_heads, imu_drop_path=0.7)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.05
            p.copy_(noise + 1.0 if p.dim() == 1 and name.endswith("weight") else noise)
    return m.eval()


needs_reference = pytest.mark.skipif(_imagebind_models() is None,
                                     reason="imagebind-unofficial (model code) is not installed: make test installs it")


# ------------------------------------------------------------------------------------------------
# architecture and weights
# ------------------------------------------------------------------------------------------------


def test_manifest_is_the_committed_one_and_ours():
    committed = json.loads(MANIFEST.read_text())
    ours = {k: list(v) for k, v in checkpoint_manifest().items()}
    assert ours == committed["keys"] and list(ours) == list(committed["keys"])
    assert committed["n_keys"] == ib.N_KEYS == 1311
    assert committed["n_params"] == ib.N_PARAMS == 1_200_781_057  # BACKBONES.md §3
    with torch.device("meta"):
        full = ImageBindNet(None, ("vision", "text", "audio", "depth", "thermal", "imu"))
    assert sum(p.numel() for p in full.parameters()) == ib.N_PARAMS
    # the part we load: vision + audio
    with torch.device("meta"):
        va = ImageBindNet()
    assert set(va.state_dict()) < set(ours)
    assert all(k.split(".")[1] in ("vision", "audio") for k in va.state_dict())
    assert {k for k in ours if k.split(".")[1] in ("vision", "audio")} == set(va.state_dict())


@needs_reference
def test_manifest_matches_imagebind_huge():
    committed = json.loads(MANIFEST.read_text())
    up = upstream_manifest()
    assert up == committed["keys"] and list(up) == list(committed["keys"])


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    if _imagebind_models() is None:
        pytest.skip("imagebind-unofficial (model code) is not installed")
    ref = _upstream_tiny()
    path = tmp_path_factory.mktemp("ib") / "imagebind_huge.pth"
    torch.save(ref.state_dict(), path)  # the released container: a plain state dict of every modality
    return path, ref


def test_tiny_upstream_has_our_tiny_manifest(tiny_ckpt):
    path, ref = tiny_ckpt
    assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == checkpoint_manifest(TINY)


@pytest.mark.parametrize("edit, word, key", [
    ("drop", "missing keys", "modality_trunks.text.blocks.0.attn.in_proj_weight"),
    ("drop", "missing keys", "modality_heads.audio.2.weight"),
    ("add", "unexpected keys", "modality_heads.vision.3.weight"),
    ("reshape", "shape mismatches", "modality_preprocessors.imu.pos_embed"),
])
def test_bad_checkpoint_fails_naming_the_key(tiny_ckpt, tmp_path, edit, word, key):
    path, _ = tiny_ckpt
    state = torch.load(path, weights_only=True)
    if edit == "drop":
        del state[key]
    elif edit == "add":
        state[key] = torch.zeros(3)
    else:
        state[key] = torch.zeros(1, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(MovaBenchError) as exc:
        ib.load_imagebind(bad, TINY)
    assert word in str(exc.value) and key in str(exc.value)
    assert "--accept-license" in (exc.value.fix or "")


def test_wrapped_or_garbage_checkpoint_fails(tiny_ckpt, tmp_path):
    path, _ = tiny_ckpt
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(path, weights_only=True)}, wrapped)
    with pytest.raises(MovaBenchError, match="plain state dict"):
        ib.load_imagebind(wrapped, TINY)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MovaBenchError, match="weights_only=True"):
        ib.load_imagebind(junk, TINY)
    # the released architecture refuses the reduced file (the whole file is checked)
    with pytest.raises(MovaBenchError, match="shape mismatches"):
        ib.load_imagebind(path, None)


def test_loader_keeps_exactly_vision_and_audio(tiny_ckpt):
    path, ref = tiny_ckpt
    ours = ib.load_imagebind(path, TINY)
    sd, rsd = ours.state_dict(), ref.state_dict()
    assert set(sd) == {k for k in rsd if k.split(".")[1] in ("vision", "audio")}
    assert all(torch.equal(sd[k], rsd[k]) for k in sd)


@needs_reference
def test_embeddings_match_imagebind_forward(tiny_ckpt):
    """Same inputs → same multi-clip vision and audio embeddings as ImageBindModel.forward (1e-5)."""
    path, ref = tiny_ckpt
    ours = ib.load_imagebind(path, TINY)
    g = torch.Generator().manual_seed(5)
    vision = torch.randn(2, 9, 3, 2, 224, 224, generator=g)  # (B, S clips, C, T, H, W)
    audio = torch.randn(2, 3, 1, 128, 204, generator=g)
    single = torch.randn(3, 3, 224, 224, generator=g)  # images: one frame repeated to two
    with torch.no_grad():
        want = ref({"vision": vision, "audio": audio})
        got_v = torch.stack([ours.embed_vision(v).mean(0) for v in vision])
        got_a = torch.stack([ours.embed_audio(a).mean(0) for a in audio])
        torch.testing.assert_close(got_v, want["vision"], rtol=0, atol=1e-5)
        torch.testing.assert_close(got_a, want["audio"], rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.embed_vision(single), ref({"vision": single})["vision"], rtol=0, atol=1e-5)
    # audio rows carry the ×20 logit scale before averaging; vision rows are unit vectors
    with torch.no_grad():
        np.testing.assert_allclose(ours.embed_audio(audio[0]).norm(dim=-1).numpy(), 20.0, rtol=1e-5)
        np.testing.assert_allclose(ours.embed_vision(vision[0]).norm(dim=-1).numpy(), 1.0, rtol=1e-5)


def test_random_build_is_seeded():
    a, b = build_imagebind(TINY, seed=1), build_imagebind(TINY, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.state_dict()["modality_heads.vision.2.weight"],
                           build_imagebind(TINY, seed=2).state_dict()["modality_heads.vision.2.weight"])


# ------------------------------------------------------------------------------------------------
# preprocessing
# ------------------------------------------------------------------------------------------------


def test_kaldi_fbank_matches_torchaudio_output():
    ref = np.load(FBANK_REF)
    meta = json.loads(FBANK_REF.with_suffix(".json").read_text())
    assert meta["torchaudio_version"] == "2.11.0"
    names = [k[:-6] for k in ref.files if k.endswith("__wave")]
    assert len(names) >= 6 and "silence_2s" in names
    for name in names:
        w = torch.from_numpy(ref[f"{name}__wave"].copy())
        w -= w.mean()
        ours = ib.kaldi_fbank(w).numpy()
        want = ref[f"{name}__fbank"]
        assert ours.shape == want.shape == (1 + (len(w) - 400) // 160, 128), name
        np.testing.assert_allclose(ours, want, rtol=0, atol=1e-4, err_msg=name)  # measured: bit-identical
    # silence floors at log(float32 eps)
    silent = ref["silence_2s__fbank"]
    np.testing.assert_allclose(silent, np.log(np.finfo(np.float32).eps), rtol=1e-6)
    with pytest.raises(ValueError, match="400-sample"):
        ib.kaldi_fbank(torch.zeros(399))


def test_audio_clip_bounds_follow_the_clip_sampler():
    # MOVA: 8.04 s at 16 kHz. The sampler subtracts in floats (8.04 - 2 = 6.039999999999999), then takes
    # exact fractions: the starts land a hair below 3.02 s and 6.04 s and int() truncates them
    assert 8.04 - 2 < 6.04
    assert ib.audio_clip_bounds(128_640) == [(0, 32000), (48319, 80319), (96639, 128639)]
    assert ib.audio_clip_bounds(160_000) == [(0, 32000), (64000, 96000), (128000, 160000)]
    # at most 2 s: three times the start, sliced by the waveform's length
    assert ib.audio_clip_bounds(16_000) == [(0, 32000)] * 3
    # the sampler's float arithmetic, checked with Fractions by hand for an awkward length
    n = 77_777
    d = n / 16000
    step = __import__("fractions").Fraction(d - 2) / 2
    assert ib.audio_clip_bounds(n) == [(int(step * k * 16000), int((step * k + 2) * 16000)) for k in range(3)]


def test_audio_input_normalisation_and_in_place_mean_removal():
    rng = np.random.default_rng(3)
    wave = (0.2 * rng.standard_normal(128_640) + 0.1).astype(np.float32)
    x = ib.audio_input(wave)
    assert tuple(x.shape) == (3, 1, 128, 204)
    for k, (a, b) in enumerate(ib.audio_clip_bounds(len(wave))):
        seg = torch.from_numpy(wave[a:b].copy())
        fb = ib.kaldi_fbank(seg - seg.mean()).T  # 198 frames, zero-padded to 204
        want = (torch.nn.functional.pad(fb, (0, 6)) + 4.268) / 9.138
        torch.testing.assert_close(x[k, 0], want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(x[0, 0, :, 198:].numpy(), 4.268 / 9.138, rtol=1e-6)
    # 3 s: clips [0, 2), [0.5, 2.5), [1, 3) overlap; a later clip sees the earlier subtraction in place
    short = (0.2 * rng.standard_normal(48_000) + 0.5).astype(np.float32)
    y = ib.audio_input(short)
    buf = torch.from_numpy(short.copy())
    for k, (a, b) in enumerate(ib.audio_clip_bounds(len(short))):
        buf[a:b] -= buf[a:b].mean()
        want = (torch.nn.functional.pad(ib.kaldi_fbank(buf[a:b].clone()).T, (0, 6)) + 4.268) / 9.138
        torch.testing.assert_close(y[k, 0], want, rtol=0, atol=1e-5)
    independent = torch.from_numpy(short[8000:40000].copy())
    alone = (torch.nn.functional.pad(ib.kaldi_fbank(independent - independent.mean()).T, (0, 6)) + 4.268) / 9.138
    assert not torch.allclose(y[1, 0], alone, atol=1e-3)  # the quirk is real and reproduced


def test_frame_preprocessing_is_av_benchmarks_transform():
    from torchvision.transforms import v2

    want_t = v2.Compose([v2.Resize(224, interpolation=v2.InterpolationMode.BICUBIC), v2.ToImage(),
                         v2.ToDtype(torch.float32, scale=True),
                         v2.Normalize(mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711])])
    frames = np.random.default_rng(2).integers(0, 256, (4, 352, 640, 3), dtype=np.uint8)
    got = ib.preprocess_frames(frames)
    want = want_t(torch.from_numpy(frames).permute(0, 3, 1, 2))
    assert tuple(got.shape) == (4, 3, 224, 407)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_crops_and_frame_pairs():
    assert ib.crop_offsets(224, 407) == [(0, 0), (0, 92), (0, 183)]  # left, centre ceil(183/2), right
    assert ib.crop_offsets(398, 224) == [(0, 0), (87, 0), (174, 0)]  # portrait: top, centre, bottom
    assert ib.crop_offsets(224, 224) == [(0, 0)] * 3
    with pytest.raises(ValueError, match="224"):
        ib.crop_offsets(200, 400)
    frames = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 224, 300).clone()
    frames[..., :] += torch.arange(300, dtype=torch.float32) * 10  # column id in the value
    clips = ib.video_clips(frames)
    assert tuple(clips.shape) == (9, 3, 2, 224, 224)
    offsets = [x for _, x in ib.crop_offsets(224, 300)]
    for i in range(3):  # frame pair i, crop c at index 3i + c (av-benchmark's torch.cat over pairs)
        for c in range(3):
            clip = clips[3 * i + c]
            assert clip[0, 0, 0, 0] == i + 10 * offsets[c] and clip[0, 1, 0, 0] == i + 1 + 10 * offsets[c]


def _ffmpeg_fps(times: np.ndarray, rate: str) -> np.ndarray:
    from test_backbone_synchformer import _ffmpeg_fps_filter

    return _ffmpeg_fps_filter(times, rate)


@pytest.mark.parametrize("src_fps", [24.0, 30.0, 25.0])
def test_half_fps_frames_match_ffmpeg(src_fps):
    from mova_bench.features.synchformer import fps_filter_indices

    times = np.round(np.arange(int(src_fps * 8.04)) / src_fps * 90000) / 90000
    ref = _ffmpeg_fps(times, "0.5")
    assert len(ref) >= 4
    np.testing.assert_array_equal(fps_filter_indices(times, 4, 0.5), ref[:4])


# ------------------------------------------------------------------------------------------------
# the backbone (reduced network, registered test weights)
# ------------------------------------------------------------------------------------------------


class TinyImageBind(ib.ImageBind):
    """The backbone with the reduced network."""

    net_config = TINY


@pytest.fixture(scope="module")
def tiny_backbone(tiny_ckpt):
    from mova_bench.weights import forget_local, register_local

    path, ref = tiny_ckpt
    register_local("imagebind-huge", path)
    try:
        bb = TinyImageBind()
        bb.load("cpu")
        yield bb, ref
    finally:
        forget_local("imagebind-huge")


def _clip(seconds=8.04, fps=24.0, sr=48000, w=640, h=352, seed=0, audio_seconds=None) -> DecodedClip:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    times = np.arange(n) / fps
    n_audio = int(round((seconds if audio_seconds is None else audio_seconds) * sr))
    audio = (0.1 * rng.standard_normal(n_audio)).astype(np.float32)
    return DecodedClip(video=frames[:, ::8, ::8], video_times=times, fps=fps, audio=audio, sample_rate=sr,
                       audio_start=0.0, source_width=w, source_height=h, source_channels=1, duration_s=seconds,
                       _need_frames={NATIVE: (frames, times)})


def _require_no_weights():
    from mova_bench import weights

    if weights.is_present("imagebind-huge"):  # the module fixture registers test weights for later tests
        pytest.skip("imagebind-huge is present here; this test is about its absence")


def test_imports_stay_light():
    """Importing the backbone and the metric imports no torch (the network module does, on use)."""
    import subprocess

    code = ("import sys; import mova_bench.features.imagebind, mova_bench.metrics.ib_score; "
            "print('torch' in sys.modules, 'torchaudio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE.parent)
    assert out.stdout.split() == ["False", "False"]


def test_extra_is_declared_and_in_all():
    import tomllib

    extras = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["imagebind"]) <= set(extras["all"])
    assert not any(r.startswith(("torchaudio", "imagebind", "pytorchvideo")) for r in extras["imagebind"])


def test_registry_entries_and_fixes(monkeypatch):
    from mova_bench import registry

    assert registry.features.get("imagebind") is ib.ImageBind
    assert registry.metrics.get("ib_score") is IBScore
    bb = ib.ImageBind()
    assert bb.weights == ("imagebind-huge",) and bb.audio_rate == 16000 and bb.video_needs == (NATIVE,)
    assert bb.extra == "imagebind" and bb.metric_names == {"ib_score": "IB-score"}
    _require_no_weights()
    fixes = ib.ImageBind.missing_fixes()
    assert "mova-bench weights fetch imagebind-huge --accept-license" in fixes
    with pytest.raises(Exception, match="max_seconds"):
        ib.ImageBind(max_seconds=3.0)


def test_auto_skips_ib_score_without_weights_naming_the_fetch():
    from mova_bench.pipeline.scoring import compute_metrics, select_metrics

    _require_no_weights()
    [m] = select_metrics(["ib_score"], "auto")
    assert m.key == "ib_score[imagebind]"
    res = compute_metrics([m], FeatureSet(clip_ids=["a"]), None, seed=0)["ib_score[imagebind]"]
    assert res.status == "skipped" and "mova-bench weights fetch imagebind-huge --accept-license" in res.fix
    with pytest.raises(MovaBenchError, match="imagebind"):
        select_metrics(["ib_score"], "standard")


def test_registered_random_weights_load_strictly(tiny_backbone):
    bb, ref = tiny_backbone
    ok, fix = bb.available()
    assert ok, fix
    rsd = ref.state_dict()
    assert all(torch.equal(v, rsd[k]) for k, v in bb.model.state_dict().items())
    assert bb.cache_identity()["weights_sha256"]["imagebind-huge"]
    assert bb._model_key("cpu") != ib.ImageBind()._model_key("cpu")


def test_mova_sized_clip_matches_the_reference_model(tiny_backbone):
    bb, ref = tiny_backbone
    clip = _clip()
    out = bb.extract(clip)
    assert str(out["status"]) == "ok"
    assert int(out["n_video_clips"]) == 9 and int(out["n_audio_clips"]) == 3
    np.testing.assert_allclose(out["frame_times_s"], [23 / 24, 71 / 24, 119 / 24, 167 / 24], atol=1e-6)
    assert out["audio_embedding"].shape == out["video_embedding"].shape == (TINY.out_dim,)
    # by hand: the same preprocessing fed to ImageBindModel.forward as av-benchmark does
    with torch.no_grad():
        frames = ib.preprocess_frames(clip.frames(NATIVE)[[23, 71, 119, 167]])
        crops = torch.stack([frames[:, :, y:y + 224, x:x + 224] for y, x in ib.crop_offsets(224, 407)])[None]
        pairs = torch.cat([crops[:, :, i:i + 2] for i in range(3)], dim=1).permute(0, 1, 3, 2, 4, 5)
        v = ref({"vision": pairs})["vision"][0]
        a = ref({"audio": ib.audio_input(clip.audio_at(16000))[None]})["audio"][0]
    np.testing.assert_allclose(out["video_embedding"], v.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["audio_embedding"], a.numpy(), atol=1e-5)
    want = float(torch.cosine_similarity(v[None], a[None])[0])
    assert float(out["ib_score"]) == pytest.approx(want, abs=1e-5) and -1 <= want <= 1
    assert 15 < float(np.linalg.norm(out["audio_embedding"])) <= 20.0 + 1e-4  # mean of three ×20 rows
    bb.batch_size = 2  # the vision batch does not change the result
    try:
        np.testing.assert_allclose(bb.extract(clip)["video_embedding"], out["video_embedding"], atol=1e-6)
    finally:
        bb.batch_size = None


def test_too_short_clips_are_reported(tiny_backbone):
    bb, _ = tiny_backbone
    out = bb.extract(_clip(seconds=2.5))
    assert str(out["status"]) == "too_short" and "two frames" in str(out["reason"]) and np.isnan(out["ib_score"])
    out = bb.extract(_clip(seconds=4.0, audio_seconds=0.01))
    assert str(out["status"]) == "too_short" and "25 ms" in str(out["reason"])
    short = bb.extract(_clip(seconds=4.0))  # two frames (0.958 s, 2.958 s), one pair, overlapping audio clips
    assert str(short["status"]) == "ok" and int(short["n_video_clips"]) == 3


# ------------------------------------------------------------------------------------------------
# video_recipe="javisbench": ImageBind's load_and_transform_video_data, as JavisBench calls it
# ------------------------------------------------------------------------------------------------


class _PvConstantClipsPerVideoSampler:
    """pytorchvideo @ 28fe037 ``data/clip_sampling.py`` ``ConstantClipsPerVideoSampler`` (augs_per_clip 1),
    re-stated line by line from its source (pytorchvideo is not installed)."""

    def __init__(self, clip_duration, clips_per_video):
        self._clip_duration = clip_duration
        self._clips_per_video = clips_per_video
        self._current_clip_index = 0

    def __call__(self, last_clip_end_time, video_duration, annotation):
        from fractions import Fraction

        max_possible_clip_start = Fraction(max(video_duration - self._clip_duration, 0))
        uniform_clip = Fraction(max_possible_clip_start, max(self._clips_per_video - 1, 1))
        clip_start_sec = uniform_clip * self._current_clip_index
        self._current_clip_index += 1
        is_last_clip = False
        if (self._current_clip_index >= self._clips_per_video
                or uniform_clip * self._current_clip_index > max_possible_clip_start):
            self._current_clip_index = 0
            is_last_clip = True
        return clip_start_sec, clip_start_sec + self._clip_duration, is_last_clip


def _pv_frame_indices(n_frames, fps):
    """ImageBind's ``load_and_transform_video_data`` frame choice: ``get_clip_timepoints`` over the
    sampler, decord's ``EncodedVideoDecord`` duration and ``get_clip`` index range, then
    ``uniform_temporal_subsample(num_samples=2)`` (torch.linspace, clamp, long)."""
    import math

    sampler = _PvConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=5)
    duration = float(n_frames) / float(fps)  # EncodedVideoDecord._duration
    timepoints, end, is_last = [], 0.0, False
    while not is_last:
        start, end, is_last = sampler(end, duration, annotation=None)
        timepoints.append((start, end))
    out = []
    for start_sec, end_sec in timepoints:
        assert not (start_sec > end_sec or start_sec > duration)
        start_idx = math.ceil(fps * start_sec)
        end_idx = min(math.ceil(fps * end_sec), n_frames)
        t = len(range(start_idx, end_idx))
        indices = torch.clamp(torch.linspace(0, t - 1, 2), 0, t - 1).long()
        out.append([list(range(start_idx, end_idx))[int(i)] for i in indices])
    return out


@pytest.mark.parametrize("fps, n_frames", [
    (24.0, 193), (24.0, 62), (24.0, 68), (25.0, 50), (25.0, 30), (30000 / 1001, 241), (24000 / 1001, 120),
    (60.0, 487), (15.0, 121), (30.0, 1801),
])
def test_javisbench_clips_and_frames_follow_pytorchvideo(fps, n_frames):
    got = ib.javisbench_frame_indices(n_frames, fps)
    assert got == _pv_frame_indices(n_frames, fps)
    assert len(got) == 5 and all(len(c) == 2 and 0 <= c[0] <= c[1] < n_frames for c in got)
    bounds = ib.clip_sampler_bounds(n_frames / fps)
    assert len(bounds) == 5 and all(e - s == 2 for s, e in bounds) and bounds[0][0] == 0


def test_javisbench_frame_choice_by_hand():
    # MOVA: 193 frames at 24 fps (8.04 s): first and last frame of five 2 s clips over the whole clip
    assert ib.javisbench_frame_indices(193, 24.0) == [[0, 47], [37, 84], [73, 120], [109, 156], [145, 192]]
    # under 2 s: five identical clips [0, 2) holding every frame
    assert ib.javisbench_frame_indices(30, 25.0) == [[0, 29]] * 5
    # the float quirk: 62 frames at 24 fps; exactly, the last clip starts at 14/24 s (frame 14), but
    # 62/24 - 2 rounds up in floats, 24 * float(start) lands a hair above 14 and decord's ceil gives 15
    d = 62 / 24.0
    assert __import__("fractions").Fraction(d - 2) > __import__("fractions").Fraction(14, 24)
    assert ib.javisbench_frame_indices(62, 24.0)[4] == [15, 61]
    assert ib.javisbench_frame_indices(68, 24.0)[1] == [6, 52]  # exactly: [5, 52]
    with pytest.raises(ValueError, match="positive frame rate"):
        ib.javisbench_frame_indices(10, 0.0)


def test_javisbench_resize_is_pytorchvideos_interpolate():
    rng = np.random.default_rng(4)
    for h, w, want_hw in [(352, 640, (224, 407)), (640, 360, (398, 224)), (224, 224, (224, 224)), (97, 131, (224, 302))]:
        frames = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        got = ib.javisbench_preprocess(frames)
        x = torch.from_numpy(frames).to(torch.float32).permute(3, 0, 1, 2) / 255.0  # (C, T, H, W) in [0, 1]
        new_h, new_w = (int(np.floor(h / w * 224)), 224) if w < h else (224, int(np.floor(w / h * 224)))
        assert (new_h, new_w) == want_hw
        want = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None, None]
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None, None]
        want = ((want - mean) / std).permute(1, 0, 2, 3)
        assert tuple(got.shape) == (2, 3, *want_hw)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    # it is not the av-benchmark resize (bicubic, antialias, on uint8)
    frames = rng.integers(0, 256, (2, 352, 640, 3), dtype=np.uint8)
    assert not torch.allclose(ib.javisbench_preprocess(frames), ib.preprocess_frames(frames), atol=1e-2)
    with pytest.raises(ValueError, match="uint8"):
        ib.javisbench_preprocess(frames.astype(np.float32))


def test_javisbench_spatial_crops_are_clip_major():
    frames = [torch.full((2, 3, 224, 300), float(k)) for k in range(5)]
    for k in range(5):
        frames[k][..., :] += torch.arange(300, dtype=torch.float32) * 10
    clips = ib.javisbench_video_clips(frames)
    assert tuple(clips.shape) == (15, 3, 2, 224, 224)
    offsets = [x for _, x in ib.crop_offsets(224, 300)]
    for k in range(5):
        for c in range(3):
            assert float(clips[3 * k + c, 0, 1, 0, 0]) == k + 10 * offsets[c]


def test_video_recipe_is_validated_and_enters_the_cache_identity():
    from mova_bench.errors import ConfigError

    assert ib.ImageBind().params["video_recipe"] == "av-benchmark"
    with pytest.raises(ConfigError) as exc:
        ib.ImageBind(video_recipe="javis")
    msg = str(exc.value)
    assert "'javis'" in msg and "av-benchmark" in msg and "javisbench" in msg and "javisbench" in (exc.value.fix or "")
    default, javis = ib.ImageBind(), ib.ImageBind(video_recipe="javisbench")
    assert default.cache_identity() != javis.cache_identity()
    assert javis.preprocessing()["video"].startswith("javisbench:")
    assert default.preprocessing()["video"].startswith("first max_seconds")
    assert ib.ImageBind(video_recipe="av-benchmark").cache_identity() == default.cache_identity()


def _real_clip(tmp_path, seconds=4.5, fps=24.0, w=320, h=240):
    """An H.264/AAC file written and decoded as a run decodes it (frames change over time)."""
    from mova_bench.media import decode, write_mp4

    rng = np.random.default_rng(7)
    n = int(round(seconds * fps))
    yy, xx = np.mgrid[0:h, 0:w]
    video = np.stack([((xx * (1 + k % 7) + yy * 3 + 40 * k) % 256)[..., None].repeat(3, -1) for k in range(n)])
    video = (video + rng.integers(0, 30, video.shape)).clip(0, 255).astype(np.uint8)
    audio = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 48000)) / 48000)).astype(np.float32)
    path = tmp_path / "real.mp4"
    write_mp4(path, video, fps, audio, 48000)
    return decode(path, needs=(NATIVE,))


def test_javisbench_recipe_on_a_real_clip_matches_the_reference_model(tiny_backbone, tmp_path):
    bb, ref = tiny_backbone
    clip = _real_clip(tmp_path)
    jb = TinyImageBind(video_recipe="javisbench")
    jb.load("cpu")
    out = jb.extract(clip)
    assert str(out["status"]) == "ok"
    assert int(out["n_video_clips"]) == 15 and int(out["n_audio_clips"]) == 3
    n = len(clip.frame_times(NATIVE))
    per_clip = _pv_frame_indices(n, clip.fps)
    np.testing.assert_allclose(out["frame_times_s"], clip.frame_times(NATIVE)[sum(per_clip, [])], atol=1e-6)
    # by hand: ImageBind's loader re-stated (subsample, /255, interpolate, normalise, SpatialCrop) → forward
    native = clip.frames(NATIVE)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None, None]
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None, None]
    videos = []
    for idx in per_clip:
        x = torch.from_numpy(native[idx]).to(torch.float32).permute(3, 0, 1, 2) / 255.0
        x = torch.nn.functional.interpolate(x, size=(224, 298), mode="bilinear", align_corners=False)
        x = (x - mean) / std
        for y0, x0 in [(0, 0), (0, 37), (0, 74)]:
            videos.append(x[:, :, y0:y0 + 224, x0:x0 + 224])
    with torch.no_grad():
        v = ref({"vision": torch.stack(videos)[None]})["vision"][0]
        a = ref({"audio": ib.audio_input(clip.audio_at(16000))[None]})["audio"][0]
    np.testing.assert_allclose(out["video_embedding"], v.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["audio_embedding"], a.numpy(), atol=1e-5)
    want = float(torch.nn.CosineSimilarity(dim=-1, eps=1e-6)(a, v))
    assert float(out["ib_score"]) == pytest.approx(want, abs=1e-5)
    # the default recipe on the same file: same audio, another video embedding and score
    default = bb.extract(clip)
    np.testing.assert_allclose(default["audio_embedding"], out["audio_embedding"], atol=1e-6)
    assert int(default["n_video_clips"]) == 3  # 4.5 s: two 0.5 fps frames, one pair x 3 crops
    assert np.abs(default["video_embedding"] - out["video_embedding"]).max() > 1e-3
    assert abs(float(default["ib_score"]) - float(out["ib_score"])) > 1e-4


# ------------------------------------------------------------------------------------------------
# the metric
# ------------------------------------------------------------------------------------------------


def _feats(score=None):
    if score is None:
        return {"status": np.array("too_short"), "ib_score": np.float32(np.nan)}
    return {"status": np.array("ok"), "ib_score": np.float32(score)}


def test_ib_score_metric_over_clips():
    gen = FeatureSet(clip_ids=["a", "b", "c", "d", "e"],
                     features={"imagebind": {"a": _feats(0.30), "b": _feats(0.20), "c": _feats(), "d": _feats(0.1)}})
    m = IBScore()
    assert m.key == "ib_score[imagebind]" and m.required_extractors() == ["imagebind"]
    r = m.compute(gen, None, seed=0)
    assert r.status == "ok" and r.unit == "cos" and r.higher_is_better is True
    assert r.value == pytest.approx(0.2, abs=1e-6) and r.n == 3
    assert r.per_clip == pytest.approx({"a": 0.3, "b": 0.2, "d": 0.1}, abs=1e-6)
    assert r.ci_low <= r.value <= r.ci_high and r.ci_low < r.ci_high
    assert r.extra["n_excluded"] == 1 and r.extra["excluded_reasons"] == {"too_short": 1}
    assert r.extra["n_missing_features"] == 1 and r.warnings
    assert r.display_name == "IB-score [imagebind]" and "x100" in r.convention
    none = m.compute(FeatureSet(clip_ids=["c"], features={"imagebind": {"c": _feats()}}), None)
    assert none.status == "skipped" and none.value is None and "too_short: 1" in none.reason
    empty = m.compute(FeatureSet(clip_ids=["x"]), None)
    assert empty.status == "skipped" and "nothing was analysed" in empty.reason


SUITE = """\
name: ib_e2e
version: "1"
description: a small suite for the ImageBind end-to-end test
defaults: {duration_s: 3.5, fps: 24, sample_rate: 48000, width: 256, height: 224, samples_per_prompt: 2, seed: 3}
reference: {kind: procedural, samples_per_prompt: 1}
prompts:
  - {id: strike, text: "A lightning bolt strikes close by, followed by a crack of thunder"}
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
"""


@pytest.mark.slow
def test_cli_run_reports_ib_score_with_a_ci(tiny_backbone, tmp_path, capsys, monkeypatch):
    """``mova-bench run`` (local executor, in this process, so the registered test weights and the
    reduced network are seen) reports ib_score[imagebind] with status ok and a CI."""
    from mova_bench.cli import main

    monkeypatch.setattr(ib.ImageBind, "net_config", TINY)
    suite = tmp_path / "ib_e2e.yaml"
    suite.write_text(SUITE)
    code = main(["run", "--model", "procedural", "--suite", str(suite), "--out", str(tmp_path / "run"), "--json",
                 "--executor", "local", "--backbones", "auto", "--metrics", "ib_score"])
    out, err = capsys.readouterr()
    assert code == 0, err + out[-3000:]
    res = json.loads(out)["metrics"]["ib_score[imagebind]"]
    assert res["status"] == "ok", res
    assert res["n"] == 4 and res["ci_low"] is not None and res["ci_low"] <= res["value"] <= res["ci_high"]
    assert -1 <= res["value"] <= 1 and res["display_name"] == "IB-score [imagebind]"



@pytest.mark.slow
def test_cli_profile_javisbench_selects_the_video_recipe(tiny_backbone, tmp_path, capsys, monkeypatch):
    """``mova-bench run --profile javisbench`` records ``video_recipe=javisbench`` for imagebind in the
    evaluation spec and reports ib_score under JavisBench's convention."""
    from mova_bench.cli import main

    monkeypatch.setattr(ib.ImageBind, "net_config", TINY)
    suite = tmp_path / "ib_e2e.yaml"
    suite.write_text(SUITE)
    code = main(["run", "--model", "procedural", "--suite", str(suite), "--out", str(tmp_path / "run"), "--json",
                 "--executor", "local", "--backbones", "auto", "--metrics", "ib_score", "--profile", "javisbench"])
    out, err = capsys.readouterr()
    assert code == 0, err + out[-3000:]
    doc = json.loads(out)
    res = doc["metrics"]["ib_score[imagebind]"]
    assert res["status"] == "ok" and res["n"] == 4, res
    assert res["convention"].startswith("Profile javisbench: IB-score")
    spec = json.loads(next(Path(doc["run_dir"]).glob("evals/*/eval_spec.json")).read_text())
    assert spec["profile"] == "javisbench"
    assert dict(dict((n, p) for n, p in spec["analysis"])["imagebind"])["video_recipe"] == "javisbench"


if __name__ == "__main__":  # regenerate tests/manifests/imagebind-huge.json from imagebind-unofficial
    from importlib import metadata

    keys = upstream_manifest()
    n_params = sum(int(np.prod(s)) for k, s in keys.items())
    buffers = ["modality_preprocessors.text.mask"] + [f"modality_postprocessors.{m}.1.log_logit_scale"
                                                      for m in ("audio", "depth", "thermal", "imu")]
    n_params -= sum(int(np.prod(keys[b])) for b in buffers)
    head = json.dumps({
        "backbone": "imagebind", "checkpoint": "imagebind_huge.pth", "weights_entry": "imagebind-huge",
        "layout": "plain state dict (all six modalities)",
        "generated_from": f"imagebind-unofficial {metadata.version('imagebind-unofficial')} "
                          "imagebind.models.imagebind_model.imagebind_huge(pretrained=False).state_dict(), built on the "
                          "meta device (torch.linspace of its drop-path schedule on the CPU); key order as there",
        "note": "n_params counts parameters; the 5 buffers (text causal mask, four fixed logit scales) are keys too",
        "n_keys": len(keys), "n_params": n_params}, indent=1)
    rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in keys.items())  # one key per line
    MANIFEST.write_text(head[:-2] + ',\n "keys": {\n' + rows + "\n }\n}\n")
    assert json.loads(MANIFEST.read_text())["keys"] == keys
    print(f"wrote {MANIFEST}: {len(keys)} keys, {n_params} parameters")
