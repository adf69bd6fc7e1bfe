"""PANNs CNN14 (fd_audio / is_audio backbone) against panns-inference's ``models.Cnn14`` with seeded
random weights built by the reference package, and the audio Inception Score on known logits
(no network; BACKBONES.md §3)."""

from __future__ import annotations

import csv
import importlib.util
import json
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("panns_inference") is None:  # not imported here: its import reads ~/panns_data
    pytest.skip("panns-inference (the reference) is not installed", allow_module_level=True)

from mova_bench.errors import ConfigError, MovaBenchError  # noqa: E402
from mova_bench.features import panns as pn  # noqa: E402
from mova_bench.metrics.audio_quality import InceptionScoreAudio, inception_score  # noqa: E402
from mova_bench.metrics.base import FeatureSet  # noqa: E402

MANIFEST = Path(__file__).parent / "manifests" / "panns-cnn14.json"
CONFIG = {16000: dict(window_size=512, hop_size=160, fmax=8000), 32000: dict(window_size=1024, hop_size=320, fmax=14000)}


def _refuse(*args, **kwargs):
    raise OSError("network blocked in tests")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refuse)


def reference_cnn14_builder(home: Path):
    """``build(sample_rate, seed)``: panns_inference.models.Cnn14 with seeded random weights, imported
    with ``home`` (an empty folder) as HOME holding a 527-row label CSV and sockets blocked (its
    import would otherwise wget the CSV)."""
    (home / "panns_data").mkdir()
    with open(home / "panns_data" / "class_labels_indices.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "mid", "display_name"])
        for i in range(527):
            w.writerow([i, f"/m/{i:05x}", f"class {i}"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setattr(socket.socket, "connect", _refuse)
        import sys

        for name in [m for m in sys.modules if m.split(".")[0] == "panns_inference"]:
            del sys.modules[name]  # an earlier import may have read another HOME
        from panns_inference import config
        from panns_inference.models import Cnn14
    assert len(config.labels) == 527

    def build(sample_rate: int, seed: int):
        c = CONFIG[sample_rate]
        torch.manual_seed(seed)
        model = Cnn14(sample_rate=sample_rate, mel_bins=64, fmin=50, classes_num=527, **c).eval()
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # BatchNorm running statistics and affine parameters randomised
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    n = m.num_features
                    m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                    m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                    m.weight.copy_(0.5 + torch.rand(n, generator=g))
                    m.bias.copy_(0.1 * torch.randn(n, generator=g))
                    m.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (1,), generator=g)))
            model.fc_audioset.bias.normal_(0.0, 0.5, generator=g)
        return model

    return build


@pytest.fixture(scope="module")
def ref_cnn14(tmp_path_factory):
    return reference_cnn14_builder(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def ref16(ref_cnn14):
    return ref_cnn14(16000, seed=7)


@pytest.fixture(scope="module")
def checkpoint16(ref16, tmp_path_factory):
    """The reference's random state dict in the Zenodo layout ``{'model': state_dict}``."""
    path = tmp_path_factory.mktemp("cnn14") / "Cnn14_16k_random.pth"
    torch.save({"model": ref16.state_dict()}, path)
    return path


def _signal(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.3 * np.sin(2 * np.pi * (300 + 2000 * t) * t) + 0.05 * rng.standard_normal(t.size) + 0.1
    return x.astype(np.float32)


def _reference_outputs(model, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embedding, pre-sigmoid logits via a hook on fc_audioset, clipwise_output) of the reference."""
    seen = {}
    hook = model.fc_audioset.register_forward_hook(lambda m, i, o: seen.__setitem__("logits", o))
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(wav)[None])
    finally:
        hook.remove()
    return out["embedding"][0].numpy(), seen["logits"][0].numpy(), out["clipwise_output"][0].numpy()


def test_manifest_matches_reference_and_our_model(ref16, ref_cnn14):
    man = json.loads(MANIFEST.read_text())
    v16, v32 = man["variants"]["16000"], man["variants"]["32000"]
    assert v16["n_keys"] == len(v16["keys"]) == pn.N_KEYS == 84
    assert v16["n_params"] == pn.N_PARAMS_16K == 81_033_231 and v32["n_params"] == pn.N_PARAMS_32K
    assert {k: list(v.shape) for k, v in ref16.state_dict().items()} == v16["keys"]
    for sr, v in ((16000, v16), (32000, v32)):
        model = pn.build_cnn14_model(sr)
        assert {k: list(t.shape) for k, t in model.state_dict().items()} == v["keys"]
        assert sum(p.numel() for p in model.parameters()) == v["n_params"]
        assert sum(t.numel() for t in model.state_dict().values()) == v["n_tensor_elements"]


@pytest.mark.parametrize("sample_rate", [16000, 32000])
def test_front_end_matches_torchlibrosa(sample_rate):
    """Our STFT kernels and mel matrix are panns' (torchlibrosa's), so a file's are checked against them."""
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    c = CONFIG[sample_rate]
    spec = Spectrogram(n_fft=c["window_size"], hop_length=c["hop_size"], win_length=c["window_size"])
    mel = LogmelFilterBank(sr=sample_rate, n_fft=c["window_size"], n_mels=64, fmin=50, fmax=c["fmax"], top_db=None)
    ref = {**{f"spectrogram_extractor.{k}": v for k, v in spec.state_dict().items()},
           **{f"logmel_extractor.{k}": v for k, v in mel.state_dict().items()}}
    ours = pn.build_cnn14_model(sample_rate).state_dict()
    for key in ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                "logmel_extractor.melW"):
        np.testing.assert_allclose(ours[key].numpy(), ref[key].numpy(), rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.slow  # full-size network (random weights): a few seconds
def test_strict_load_and_forward_parity(ref16, checkpoint16):
    model = pn.load_cnn14(checkpoint16, 16000)
    wav = _signal(2.0, 16000)
    emb_ref, logits_ref, clipwise_ref = _reference_outputs(ref16, wav)
    with torch.no_grad():
        out = model(torch.from_numpy(wav)[None])
    emb, logits = out["embedding"][0].numpy(), out["logits"][0].numpy()
    assert emb.shape == (2048,) and logits.shape == (527,)
    assert emb.std() > 0 and logits.std() > 0 and (emb == 0).any()  # post-ReLU, not constant
    np.testing.assert_allclose(emb, emb_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(logits, logits_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), clipwise_ref, rtol=0, atol=1e-6)


def test_checkpoint_mismatch_names_the_key(ref16, tmp_path):
    good = ref16.state_dict()
    with pytest.raises(MovaBenchError, match=r"spectrogram_extractor.stft.conv_real.weight: file \(257, 1, 512\) "
                                             r"vs model \(513, 1, 1024\)"):
        pn.cnn14_from_state(good, 32000, "16 kHz file")
    with pytest.raises(MovaBenchError, match=r"missing keys \['conv_block3.bn2.running_var'\]"):
        pn.cnn14_from_state({k: v for k, v in good.items() if k != "conv_block3.bn2.running_var"}, 16000)
    with pytest.raises(MovaBenchError, match=r"unexpected keys \['fc_extra.weight'\]"):
        pn.cnn14_from_state({**good, "fc_extra.weight": torch.zeros(2)}, 16000)
    other_mel = {**good, "logmel_extractor.melW": good["logmel_extractor.melW"] * 1.5}
    with pytest.raises(MovaBenchError, match="logmel_extractor.melW differs from the 16000 Hz front end") as info:
        pn.cnn14_from_state(other_mel, 16000)
    assert "panns-cnn14-16k" in info.value.fix
    plain = tmp_path / "plain.pth"
    torch.save({"fc1.weight": torch.zeros(1)}, plain)
    with pytest.raises(MovaBenchError, match=r"expected the panns layout \{'model': state_dict\}"):
        pn.load_cnn14(plain, 16000)


def test_variant_parameters(monkeypatch):
    weights = pytest.importorskip("mova_bench.weights")
    monkeypatch.setattr(weights, "is_present", lambda name: False)  # whatever this machine holds
    with pytest.raises(ConfigError, match="sample_rate 22050 has no checkpoint; valid: \\[16000, 32000\\]"):
        pn.PannsCnn14(sample_rate=22050)
    ex32 = pn.PannsCnn14(sample_rate=32000)
    assert ex32.weights == ("panns-cnn14-32k",) and ex32.audio_rate == 32000
    assert pn.PannsCnn14().weights == ("panns-cnn14-16k",)
    assert ex32.preprocessing()["n_fft"] == 1024 and pn.PannsCnn14().preprocessing()["hop"] == 160
    assert pn.PannsCnn14.missing_fixes() == ["mova-bench weights fetch panns-cnn14-16k"]
    assert ex32.missing_fixes() == ["mova-bench weights fetch panns-cnn14-32k"]
    with pytest.raises(ConfigError, match="max_seconds=-8"):
        pn.PannsCnn14(max_seconds=-8)
    with pytest.raises(ValueError, match="unknown parameter"):
        pn.PannsCnn14(sr=16000)


@pytest.mark.slow
@pytest.mark.parametrize("sample_rate", [16000, 32000])
def test_real_weights_if_present(sample_rate):
    """Runs only where the real checkpoint is present (no fingerprint recorded: none came from a real run)."""
    weights = pytest.importorskip("mova_bench.weights")
    entry = pn.variant(sample_rate)[3]
    if not weights.is_present(entry):
        pytest.skip(f"the real {entry} checkpoint is not present (mova-bench weights fetch {entry})")
    model = pn.load_cnn14(weights.resolve(entry), sample_rate)
    with torch.no_grad():
        out = model(torch.from_numpy(_signal(3.0, sample_rate))[None])
    assert out["embedding"].shape == (1, 2048) and torch.isfinite(out["logits"]).all()


# -- the extractor end to end, through the weights registry and a real MP4 ---------------------------


@pytest.fixture
def registered(checkpoint16):
    weights = pytest.importorskip("mova_bench.weights")
    from mova_bench.features import base

    weights.register_local("panns-cnn14-16k", checkpoint16, layout="model")
    yield checkpoint16
    weights.forget_local("panns-cnn14-16k")
    for key in [k for k in base._MODELS if k[1] == "PannsCnn14"]:  # never leak random weights to other tests
        base._MODELS.pop(key)


@pytest.mark.slow  # full-size network (random weights): a few seconds
def test_extractor_on_real_mp4(tmp_path, registered, ref16):
    from conftest import make_av

    from mova_bench.media import decode

    clip = decode(make_av(tmp_path / "a.mp4", seconds=2.5, sr=48000))
    ex = pn.PannsCnn14(max_seconds=2.0)
    assert ex.available() == (True, "")
    out = ex.extract(clip)
    assert out["embedding"].shape == (2048,) and out["logits"].shape == (527,)
    wav = clip.audio_at(16000)
    wav = (wav - wav.astype(np.float64).mean()).astype(np.float32)[:32000]  # DC of the clip removed, first 2 s
    np.testing.assert_array_equal(ex.waveform(clip), wav)
    emb_ref, logits_ref, _ = _reference_outputs(ref16, wav)
    np.testing.assert_allclose(out["embedding"], emb_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["logits"], logits_ref, rtol=0, atol=1e-5)
    assert ex.cache_identity()["weights_sha256"]["panns-cnn14-16k"] == \
        pytest.importorskip("mova_bench.weights").get_entry("panns-cnn14-16k").sha256


@pytest.mark.slow  # full-size network (random weights): a few seconds
def test_too_short_audio_is_missing_with_reason(registered):
    from mova_bench.media import DecodedClip

    sr = 16000
    clip = DecodedClip(video=np.zeros((2, 8, 8, 3), np.uint8), video_times=np.array([0.0, 0.1]), fps=10.0,
                       audio=_signal(0.25, sr), sample_rate=sr, audio_start=0.0, source_width=8, source_height=8,
                       source_channels=1, duration_s=0.25)
    out = pn.PannsCnn14().extract(clip)
    assert np.isnan(out["embedding"]).all() and np.isnan(out["logits"]).all()
    assert "CNN14 needs at least 0.31 s" in str(out["missing_reason"])


# -- is_audio: the Inception Score over the 527 classes ---------------------------------------------------


def test_inception_score_known_values():
    assert inception_score(np.zeros((20, 527)), splits=10)[0] == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(0)
    same = np.tile(rng.standard_normal(527), (12, 1))  # every clip the same prediction: IS 1
    assert inception_score(same, splits=3)[0] == pytest.approx(1.0, abs=1e-12)
    for k in (2, 5, 17):
        onehot = np.full((k, 527), -50.0)
        onehot[np.arange(k), rng.choice(527, k, replace=False)] = 50.0  # confident, distinct classes
        value, std, kl = inception_score(onehot, splits=1)
        assert value == pytest.approx(k, rel=1e-9) and std == 0.0
        np.testing.assert_allclose(kl, np.log(k), rtol=1e-9)


def test_inception_score_matches_torch_fidelity():
    tf = pytest.importorskip("torch_fidelity.metric_isc")
    rng = np.random.default_rng(3)
    for n, splits in ((37, 10), (100, 10), (9, 3)):
        logits = 3.0 * rng.standard_normal((n, 527))
        ref = tf.isc_features_to_metric(torch.from_numpy(logits), splits=splits, shuffle=True, rng_seed=2020)
        value, std, _ = inception_score(logits, splits=splits, shuffle_seed=2020)
        assert value == pytest.approx(ref["inception_score_mean"], rel=1e-12)
        assert std == pytest.approx(ref["inception_score_std"], rel=1e-9, abs=1e-12)


def _logit_set(n: int, seed: int = 0, nan: tuple[str, ...] = ()) -> FeatureSet:
    rng = np.random.default_rng(seed)
    feats = {}
    for i in range(n):
        cid = f"g{i:02d}"
        logits = np.full(527, np.nan, np.float32) if cid in nan else (4 * rng.standard_normal(527)).astype(np.float32)
        feats[cid] = {"embedding": np.zeros(2048, np.float32), "logits": logits}
        if cid in nan:
            feats[cid]["missing_reason"] = np.array("the audio lasts 0.20 s")
    return FeatureSet(clip_ids=list(feats), features={"panns-cnn14": feats})


def test_is_audio_metric():
    from mova_bench import registry

    cls = registry.metrics.get("is_audio")
    assert cls is InceptionScoreAudio
    metric = cls(n_boot=50)
    assert metric.key == "is_audio[panns-cnn14]" and metric.required_extractors() == ["panns-cnn14"]
    gen = _logit_set(31, nan=("g04",))
    res = metric.compute(gen, None, seed=1)
    assert res.status == "ok" and res.n == 30 and res.extra["splits"] == 10
    x = np.stack([gen.features["panns-cnn14"][c]["logits"] for c in gen.clip_ids if c != "g04"])
    assert res.value == pytest.approx(inception_score(x)[0], rel=1e-12)
    assert res.ci_low is not None and res.ci_low < res.value < res.ci_high
    assert any("g04" in w and "0.20 s" in w for w in res.warnings)
    assert set(res.per_clip) == set(gen.clip_ids) - {"g04"}
    assert "softmax" in res.convention and "10 splits" in res.convention


def test_is_audio_few_clips_and_no_logits():
    res = InceptionScoreAudio(n_boot=20).compute(_logit_set(6), None)
    assert res.status == "ok" and res.extra["splits"] == 1
    assert any("one split" in w for w in res.warnings)
    empty = FeatureSet(clip_ids=["a"], features={"panns-cnn14": {"a": {"embedding": np.zeros(3)}}})
    res = InceptionScoreAudio().compute(empty, None)
    assert res.status == "skipped" and "'logits'" in res.reason
    assert InceptionScoreAudio(n_boot=10).compute(_logit_set(1), None).status == "skipped"
