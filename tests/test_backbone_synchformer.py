"""Synchformer backbone and the DeSync metric (no network, random weights).

* the network's key/shape manifest equals the one taken from av-benchmark's model
  (tests/manifests/synchformer.json: 513 keys, 237,460,245 parameters);
* a checkpoint with a missing, extra or mis-shaped key fails naming it; random seeded weights
  saved as a plain state dict load strictly through the weights registry and the backbone;
* preprocessing: FFmpeg's fps-filter rule (checked against PyAV's own ``fps`` filter), segment
  counts and boundaries of a MOVA-sized 8.04 s clip, the log-mel front end (shape, constants, and
  against librosa's HTK power mel), the 21-class grid, frame resize/crop/normalisation;
* DeSync from given logits and the metric over clips;
* optional parity with av-benchmark's own modules (``MOVA_BENCH_SYNCHFORMER_REF=<av-benchmark checkout>``,
  slow; skipped when absent).
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mova_bench.errors import MovaBenchError  # noqa: E402
from mova_bench.features import synchformer as sf  # noqa: E402
from mova_bench.features.synchformer_net import (  # noqa: E402
    SynchformerConfig,
    SynchformerNet,
    build_synchformer,
    reduced_config,
)
from mova_bench.media import DecodedClip, VideoNeed  # noqa: E402
from mova_bench.metrics.base import FeatureSet  # noqa: E402
from mova_bench.metrics.desync import DeSync  # noqa: E402

MANIFEST = Path(__file__).parent / "manifests" / "synchformer.json"
NATIVE = VideoNeed("native")
TINY = reduced_config()


def _meta_manifest(cfg: SynchformerConfig | None = None) -> dict[str, list[int]]:
    with torch.device("meta"):
        net = SynchformerNet(cfg)
    return {k: list(v.shape) for k, v in net.state_dict().items()}


# ------------------------------------------------------------------------------------------------
# architecture and weights
# ------------------------------------------------------------------------------------------------


def test_manifest_matches_upstream_checkpoint_layout():
    committed = json.loads(MANIFEST.read_text())
    ours = _meta_manifest()
    assert ours == committed["keys"]  # same keys and shapes
    assert list(ours) == list(committed["keys"])  # and the same order
    n_params = sum(int(np.prod(s)) for s in ours.values())
    assert (len(ours), n_params) == (committed["n_keys"], committed["n_params"]) == (sf.N_KEYS, sf.N_PARAMS)
    assert (sf.N_KEYS, sf.N_PARAMS) == (513, 237_460_245)  # BACKBONES.md §3
    assert "050a5cdb9bbd1a6f8cbb9fdde076992a695e2501" in committed["generated_from"]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    net = build_synchformer(TINY, seed=3)
    path = tmp_path_factory.mktemp("sf") / "synchformer_state_dict.pth"
    torch.save(net.state_dict(), path)
    return path, net


@pytest.mark.parametrize("edit, word", [
    ("drop", "missing keys"), ("add", "unexpected keys"), ("reshape", "shape mismatches"),
])
def test_bad_state_dict_fails_naming_the_key(tiny_ckpt, tmp_path, edit, word):
    path, _ = tiny_ckpt
    state = torch.load(path, weights_only=True)
    key = "afeat_extractor.ast.encoder.layer.0.attention.attention.query.weight"
    if edit == "drop":
        del state[key]
    elif edit == "add":
        state[key.replace("query", "query2")] = state[key]
        key = key.replace("query", "query2")
    else:
        state[key] = torch.zeros(3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(MovaBenchError) as exc:
        sf.load_synchformer(bad, TINY)
    assert word in str(exc.value) and key in str(exc.value)
    assert "weights fetch synchformer" in (exc.value.fix or "")


def test_wrapped_or_garbage_checkpoint_fails(tiny_ckpt, tmp_path):
    path, _ = tiny_ckpt
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": torch.load(path, weights_only=True)}, wrapped)
    with pytest.raises(MovaBenchError, match="plain state dict"):
        sf.load_synchformer(wrapped, TINY)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MovaBenchError, match="weights_only=True"):
        sf.load_synchformer(junk, TINY)


class TinySynchformer(sf.Synchformer):
    """The backbone with a reduced network (same structure, small sizes)."""

    net_config = TINY


@pytest.fixture(scope="module")
def tiny_backbone(tiny_ckpt):
    from mova_bench.weights import forget_local, register_local

    path, net = tiny_ckpt
    register_local("synchformer", path)
    try:
        bb = TinySynchformer()
        bb.load("cpu")
        yield bb, net
    finally:
        forget_local("synchformer")


def test_registered_random_weights_load_strictly(tiny_backbone):
    bb, net = tiny_backbone
    ours = bb.model.state_dict()
    ref = net.state_dict()
    assert list(ours) == list(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    ok, fix = bb.available()
    assert ok, fix
    assert bb.cache_identity()["weights_sha256"]["synchformer"]


# ------------------------------------------------------------------------------------------------
# preprocessing
# ------------------------------------------------------------------------------------------------


def test_imports_stay_light():
    """Importing the backbone and the metric imports no torch; the network never needs transformers."""
    import subprocess

    code = ("import sys; import mova_bench.features.synchformer, mova_bench.metrics.desync; "
            "a = 'torch' in sys.modules; import mova_bench.features.synchformer_net; "
            "print(a, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.split() == ["False", "False"]


def test_registry_entries():
    from mova_bench import registry

    assert registry.features.get("synchformer") is sf.Synchformer
    assert registry.metrics.get("desync") is DeSync
    bb = sf.Synchformer()
    assert bb.weights == ("synchformer",) and bb.audio_rate == 16000 and bb.video_needs == (NATIVE,)
    assert bb.metric_names == {"desync": "DeSync"}


def test_class_grid():
    g = sf.class_grid()
    assert g.shape == (21,)
    assert g[0] == -2.0 and g[-1] == 2.0 and g[10] == 0.0
    np.testing.assert_allclose(np.diff(g), 0.2, atol=1e-12)


def _ffmpeg_fps_filter(times: np.ndarray, out_fps: int = 25) -> np.ndarray:
    """Source index of each frame PyAV's FFmpeg ``fps`` filter outputs for frames at ``times``."""
    import fractions

    import av

    tb = fractions.Fraction(1, 90000)
    graph = av.filter.Graph()
    buf = graph.add_buffer(width=16, height=16, format="rgb24", time_base=tb)
    fps = graph.add("fps", f"fps={out_fps}")
    sink = graph.add("buffersink")
    buf.link_to(fps)
    fps.link_to(sink)
    graph.configure()
    out: list[int] = []

    def drain():
        while True:
            try:
                frame = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            a = frame.to_ndarray(format="rgb24")
            out.append(int(a[1, 1, 0]) + 256 * int(a[0, 0, 0]))

    for k, t in enumerate(times):
        arr = np.full((16, 16, 3), k % 256, np.uint8)
        arr[0, 0, 0] = k // 256
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts, frame.time_base = int(round(t * 90000)), tb
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    return np.array(out)


@pytest.mark.parametrize("src_fps", [24.0, 30.0, 24000 / 1001, 50.0, 12.0])
def test_fps_filter_rule_matches_ffmpeg(src_fps):
    times = np.round(np.arange(200) / src_fps * 90000) / 90000
    ref = _ffmpeg_fps_filter(times)
    ours = sf.fps_filter_indices(times, len(ref))
    assert len(ref) > 90
    np.testing.assert_array_equal(ours, ref)


def test_fps_filter_24_to_25_repeats_the_tie_frame():
    idx = sf.fps_filter_indices(np.arange(193) / 24.0, 200)
    # frame 12 (t = 0.5 s = slot 12.5) rounds half up to slot 13: slot 12 repeats frame 11
    assert list(idx[10:15]) == [10, 11, 11, 12, 13]
    # slot 199 (7.96 s) shows frame 191 (7.958 s); frame 192 (8.0 s) would fill slot 200, the 201st
    assert idx[-1] == 191 and np.all(np.diff(idx) >= 0) and len(set(idx)) == 192
    assert sf.available_video_slots(np.arange(193) / 24.0, 24.0) == 201


def _clip(seconds=8.04, fps=24.0, sr=48000, w=64, h=36, seed=0, audio_seconds=None) -> DecodedClip:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    times = np.arange(n) / fps
    n_audio = int(round((seconds if audio_seconds is None else audio_seconds) * sr))
    audio = (0.1 * rng.standard_normal(n_audio)).astype(np.float32)
    return DecodedClip(video=frames, video_times=times, fps=fps, audio=audio, sample_rate=sr, audio_start=0.0,
                       source_width=w, source_height=h, source_channels=1, duration_s=seconds,
                       _need_frames={NATIVE: (frames, times)})


def test_segments_of_a_mova_sized_clip():
    bb = sf.Synchformer()
    plan = bb.plan(_clip())  # 8.04 s, 24 fps, 48 kHz
    assert plan["n_frames"] == 200 and plan["n_samples"] == 128_000 and plan["n_segments"] == 24
    assert plan["seconds"] == pytest.approx(8.0) and "reason" not in plan
    assert sf.window_starts(24) == (0, 10)
    assert bb.segments_used(24) == list(range(24))
    # video segment i: 25-fps frames [8i, 8i + 16); audio segment i: samples [5120 i, 5120 i + 10240)
    last_v = (24 - 1) * sf.SEGMENT_FRAME_STEP + sf.SEGMENT_FRAMES
    last_a = (24 - 1) * sf.SEGMENT_SAMPLE_STEP + sf.SEGMENT_SAMPLES
    assert (last_v, last_a) == (200, 128_000)
    # windows: segments 0-13 (0-4.8 s) and 10-23 (3.2-8.0 s)
    assert (13 * 8 + 16) / 25 == pytest.approx(4.8) and 10 * 8 / 25 == pytest.approx(3.2)
    # long clips use only the two windows' segments
    assert bb.segments_used(40) == list(range(14)) + list(range(26, 40))


def test_short_clips():
    bb = sf.Synchformer()
    p = bb.plan(_clip(seconds=5.0))
    assert p["n_segments"] == 14 and sf.window_starts(14) == (0, 0)
    p = bb.plan(_clip(seconds=6.0, audio_seconds=4.5))
    assert p["n_segments"] < 14 and "4.50 s of audio" in p["reason"]
    with pytest.raises(Exception, match="max_seconds"):
        sf.Synchformer(max_seconds=3.0)


def test_log_mel_shape_constants_and_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    wav = (0.3 * rng.standard_normal((2, sf.SEGMENT_SAMPLES))).astype(np.float32)
    mel = sf.log_mel_segments(wav).numpy()
    assert mel.shape == (2, 128, 66)
    # the 66th frame is zero padding in the log domain, then normalised
    np.testing.assert_allclose(mel[:, :, 65], (0.0 + 4.2677393) / (2 * 4.5689974), rtol=1e-6)
    ref = librosa.feature.melspectrogram(y=wav.astype(np.float64), sr=16000, n_fft=1024, hop_length=160, win_length=400,
                                         window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=128,
                                         fmin=0.0, fmax=8000.0, htk=True, norm=None)
    assert ref.shape == (2, 128, 65)
    ref = (np.log(ref + 1e-6) + 4.2677393) / (2 * 4.5689974)
    np.testing.assert_allclose(mel[:, :, :65], ref, atol=2e-5)  # measured 4.5e-6
    silent = sf.log_mel_segments(np.zeros((1, sf.SEGMENT_SAMPLES), np.float32)).numpy()
    np.testing.assert_allclose(silent[0, :, :65], (np.log(1e-6) + 4.2677393) / (2 * 4.5689974), rtol=1e-5)


def test_frame_preprocessing():
    frames = np.full((3, 352, 640, 3), 128, np.uint8)
    frames[:, :, :100] = 0  # left strip: cropped away by the centre crop
    x = sf.preprocess_frames(frames)
    assert tuple(x.shape) == (3, 3, 224, 224) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, :, 20:200, 20:200].numpy(), (128 / 255 - 0.5) / 0.5, atol=1e-6)
    from torchvision.transforms import v2

    ref = v2.Compose([v2.Resize(224, interpolation=v2.InterpolationMode.BICUBIC), v2.CenterCrop(224), v2.ToImage(),
                      v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=[0.5] * 3, std=[0.5] * 3)])
    rand = np.random.default_rng(2).integers(0, 256, (2, 100, 180, 3), dtype=np.uint8)
    want = ref(torch.from_numpy(rand).permute(0, 3, 1, 2))
    torch.testing.assert_close(sf.preprocess_frames(rand), want, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# DeSync
# ------------------------------------------------------------------------------------------------


def _logits_for(classes) -> np.ndarray:
    z = np.random.default_rng(0).standard_normal((len(classes), 21))
    for i, c in enumerate(classes):
        z[i, c] = 10.0
    return z


def test_desync_from_logits():
    cls, off, d = sf.desync_from_logits(_logits_for([10, 13]))
    assert list(cls) == [10, 13]
    np.testing.assert_allclose(off, [0.0, 0.6])
    assert d == pytest.approx(0.3)
    assert sf.desync_from_logits(_logits_for([0, 20]))[2] == pytest.approx(2.0)
    assert sf.desync_from_logits(_logits_for([9, 11]))[2] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="expected"):
        sf.desync_from_logits(np.zeros((2, 20)))


def _feats(classes=None):
    if classes is None:
        return {"status": np.array("too_short"), "offset_class": np.array([-1, -1]), "offset_s": np.full(2, np.nan)}
    cls, off, _ = sf.desync_from_logits(_logits_for(classes))
    return {"status": np.array("ok"), "offset_class": cls, "offset_s": off.astype(np.float32)}


def test_desync_metric_over_clips():
    gen = FeatureSet(clip_ids=["a", "b", "c", "d"],
                     features={"synchformer": {"a": _feats([10, 13]), "b": _feats([0, 20]), "c": _feats()}})
    m = DeSync()
    assert m.key == "desync[synchformer]" and m.required_extractors() == ["synchformer"]
    r = m.compute(gen, None, seed=0)
    assert r.status == "ok" and r.unit == "s" and r.higher_is_better is False
    assert r.value == pytest.approx((0.3 + 2.0) / 2) and r.n == 2
    assert r.per_clip == pytest.approx({"a": 0.3, "b": 2.0}) and r.per_clip_column == "desync_s"
    assert r.extra["n_excluded"] == 1 and r.extra["excluded_reasons"] == {"too_short": 1}
    assert r.extra["n_missing_features"] == 1 and r.extra["n_windows"] == 4
    assert r.extra["mean_signed_offset_s"] == pytest.approx((0 + 0.6 - 2 + 2) / 4)
    assert r.ci_low <= r.value <= r.ci_high
    assert "av-benchmark" in r.convention and r.warnings
    none = m.compute(FeatureSet(clip_ids=["c"], features={"synchformer": {"c": _feats()}}), None)
    assert none.status == "skipped" and "too_short: 1" in none.reason and "longer clips" in none.fix


# ------------------------------------------------------------------------------------------------
# forward passes (reduced network)
# ------------------------------------------------------------------------------------------------


def test_extract_on_a_mova_sized_clip(tiny_backbone):
    bb, net = tiny_backbone
    clip = _clip()
    out = bb.extract(clip)
    assert str(out["status"]) == "ok" and int(out["n_segments"]) == 24
    assert out["logits"].shape == (2, 21) and np.all(np.isfinite(out["logits"]))
    cls, off, d = sf.desync_from_logits(out["logits"])
    np.testing.assert_array_equal(out["offset_class"], cls)
    assert float(out["desync_s"]) == pytest.approx(d, abs=1e-6)
    np.testing.assert_allclose(out["window_start_s"], [0.0, 3.2], atol=1e-6)
    # the same numbers by hand: 25-fps frames, segments, features, the two windows
    with torch.no_grad():
        idx = sf.fps_filter_indices(clip.video_times, 200)
        v = sf.preprocess_frames(clip.video[idx], TINY.img_size)
        vs = torch.stack([v[8 * i: 8 * i + 16] for i in range(24)])[None]
        wav = torch.from_numpy(clip.audio_at(16000)[:128000].copy())
        mel = sf.log_mel_segments(torch.stack([wav[5120 * i: 5120 * i + 10240] for i in range(24)]))[None]
        vf, af = net.extract_vfeats(vs), net.extract_afeats(mel)
        logits = torch.cat([net.compare_v_a(vf[:, :14], af[:, :14]), net.compare_v_a(vf[:, -14:], af[:, -14:])])
    np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-5)
    # batch size does not change the result
    bb.batch_size = 1
    try:
        np.testing.assert_allclose(bb.extract(clip)["logits"], out["logits"], atol=1e-5)
    finally:
        bb.batch_size = None


def test_too_short_clip_is_reported(tiny_backbone):
    bb, _ = tiny_backbone
    out = bb.extract(_clip(seconds=4.0))
    assert str(out["status"]) == "too_short" and "4.8 s" in str(out["reason"])
    assert np.isnan(out["desync_s"])


def test_decoded_file_end_to_end(tiny_backbone, tmp_path):
    from conftest import make_av

    from mova_bench.media import decode

    bb, _ = tiny_backbone
    path = make_av(tmp_path / "c.mp4", seconds=8.04, fps=24.0, width=64, height=36)
    clip = decode(path, needs=bb.video_needs)
    out = bb.extract(clip)
    assert str(out["status"]) == "ok" and int(out["n_segments"]) == 24
    assert 0.0 <= float(out["desync_s"]) <= 2.0


@pytest.mark.slow
def test_full_size_forward_shapes():
    net = build_synchformer()  # torch's default init: shapes only
    with torch.no_grad():
        a = net.extract_afeats(torch.randn(1, 14, 128, 66))
        v = net.extract_vfeats(torch.randn(1, 1, 16, 3, 224, 224))
        logits = net.compare_v_a(v.expand(1, 14, 8, 768), a)
    assert tuple(a.shape) == (1, 14, 6, 768) and tuple(v.shape) == (1, 1, 8, 768) and tuple(logits.shape) == (1, 21)
    assert torch.isfinite(logits).all()


# ------------------------------------------------------------------------------------------------
# optional parity with av-benchmark's modules (a checkout given by MOVA_BENCH_SYNCHFORMER_REF)
# ------------------------------------------------------------------------------------------------


def _import_reference(root: Path, monkeypatch):
    """av-benchmark's ``Synchformer`` from a checkout, importable under transformers 5: its AST
    copy imports two helpers transformers 5 dropped (unused for a forward pass) and omegaconf
    (only ``OmegaConf.load`` of a YAML file)."""
    import yaml

    class _Cfg(dict):
        __getattr__ = dict.__getitem__

        def __setattr__(self, k, v):
            self[k] = v

    def _wrap(o):
        return _Cfg({k: _wrap(v) for k, v in o.items()}) if isinstance(o, dict) else o

    if "omegaconf" not in sys.modules:
        try:
            import omegaconf  # noqa: F401
        except ImportError:
            shim = types.ModuleType("omegaconf")
            shim.OmegaConf = types.SimpleNamespace(load=lambda p: _wrap(yaml.safe_load(Path(p).read_text())))
            monkeypatch.setitem(sys.modules, "omegaconf", shim)
    import transformers.pytorch_utils as pu
    from transformers.modeling_utils import PreTrainedModel

    for name in ("find_pruneable_heads_and_indices", "prune_linear_layer"):
        if not hasattr(pu, name):
            monkeypatch.setattr(pu, name, lambda *a, **k: None, raising=False)
    if not hasattr(PreTrainedModel, "get_head_mask"):
        monkeypatch.setattr(PreTrainedModel, "get_head_mask", lambda self, hm, n: [None] * n, raising=False)
    monkeypatch.syspath_prepend(str(root))
    from av_bench.synchformer.synchformer import Synchformer, make_class_grid

    return Synchformer, make_class_grid


@pytest.mark.slow
def test_parity_with_av_benchmark(monkeypatch):
    root = os.environ.get("MOVA_BENCH_SYNCHFORMER_REF")
    if not root or not (Path(root) / "av_bench" / "synchformer" / "synchformer.py").is_file():
        pytest.skip("set MOVA_BENCH_SYNCHFORMER_REF to an hkchengrex/av-benchmark checkout for the parity test")
    pytest.importorskip("transformers")
    pytest.importorskip("einops")
    pytest.importorskip("timm")
    Ref, make_class_grid = _import_reference(Path(root), monkeypatch)
    ref = Ref().eval()
    ours = build_synchformer(seed=0)
    ref.load_state_dict(ours.state_dict(), strict=True)
    np.testing.assert_allclose(make_class_grid(-2, 2, 21).numpy(), sf.class_grid(), atol=1e-6)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        mel = torch.randn(1, 14, 128, 66, generator=g)
        torch.testing.assert_close(ours.extract_afeats(mel), ref.extract_afeats(mel.unsqueeze(2)), rtol=0, atol=1e-5)
        vid = torch.randn(1, 1, 16, 3, 224, 224, generator=g)
        torch.testing.assert_close(ours.extract_vfeats(vid), ref.extract_vfeats(vid), rtol=0, atol=1e-5)
        vf, af = torch.randn(2, 14, 8, 768, generator=g), torch.randn(2, 14, 6, 768, generator=g)
        torch.testing.assert_close(ours.compare_v_a(vf, af), ref.compare_v_a(vf, af), rtol=0, atol=1e-5)


def test_net_config_swap_gets_its_own_model(tiny_backbone, monkeypatch):
    """Tests (and the harness's end-to-end runs) swap in a reduced network through ``net_config``:
    the per-process model cache and the feature cache identity both follow it."""
    bb, _ = tiny_backbone
    other = reduced_config(dim=16)
    assert bb._model_key("cpu") != sf.Synchformer()._model_key("cpu")
    key, prep = bb._model_key("cpu"), bb.preprocessing()["net_config"]
    monkeypatch.setattr(TinySynchformer, "net_config", other)
    swapped = TinySynchformer()
    assert swapped._model_key("cpu") != key
    assert swapped.preprocessing()["net_config"] != prep
    with pytest.raises(MovaBenchError, match="shape mismatches"):  # the registered file is the dim-32 one
        swapped.load("cpu")
