"""VGGish (FAD's backbone): our network and front end against torchvggish 0.2, with seeded random
weights built by the reference package (no network; BACKBONES.md §3)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvggish")

from mova_bench.errors import MovaBenchError  # noqa: E402
from mova_bench.features import vggish as vg  # noqa: E402

MANIFEST = Path(__file__).parent / "manifests" / "vggish.json"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _signal(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A tone sweep plus noise and a click train: every mel band gets energy."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.05 * rng.standard_normal(t.size)
    x[:: sr // 8] += 0.8
    return x.astype(np.float32)


def reference_vggish(seed: int = 1234):
    """torchvggish 0.2's VGG (postprocess off) with seeded random weights (the 'upstream' model)."""
    from torchvggish.torchvggish import VGG, make_layers

    torch.manual_seed(seed)
    model = VGG(make_layers(), postprocess=False).eval()
    with torch.no_grad():  # larger random biases, so the last ReLU clips a real share of the outputs
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
    return model


@pytest.fixture(scope="module")
def reference():
    return reference_vggish()


@pytest.fixture(scope="module")
def checkpoint(reference, tmp_path_factory):
    """The reference's state dict saved in the torchvggish release layout (a plain state dict)."""
    path = tmp_path_factory.mktemp("vggish") / "vggish-random.pth"
    torch.save(reference.state_dict(), path)
    return path


def _reference_pre_relu(model, x):
    """torchvggish's forward without the final ReLU of ``embeddings`` (av-benchmark's VGGish)."""
    h = model.features(x)
    h = torch.transpose(torch.transpose(h, 1, 3), 1, 2).contiguous().view(x.shape[0], -1)
    return model.embeddings[:-1](h)


def test_manifest_matches_reference_and_our_model(reference):
    man = json.loads(MANIFEST.read_text())
    assert man["n_keys"] == len(man["keys"]) == vg.N_KEYS == 18
    assert man["n_params"] == sum(int(np.prod(s)) for s in man["keys"].values()) == vg.N_PARAMS == 72_141_184
    ours = {k: list(v.shape) for k, v in vg.build_vggish_model().state_dict().items()}
    ref = {k: list(v.shape) for k, v in reference.state_dict().items()}
    assert ours == man["keys"]
    assert ref == man["keys"]


@pytest.mark.slow  # full-size network (random weights): a few seconds
def test_strict_load_and_forward_parity(reference, checkpoint):
    model = vg.load_vggish(checkpoint)
    x = torch.from_numpy(vg.log_mel_examples(_signal(3.0)))[:, None]
    assert x.shape == (3, 1, 96, 64)
    with torch.no_grad():
        ours = model(x)
        ref_pre = _reference_pre_relu(reference, x)
        ref_full = reference(x)
    assert ours.shape == (3, 128)
    np.testing.assert_allclose(ours.numpy(), ref_pre.numpy(), rtol=0, atol=1e-5)
    # the reference's `embeddings` ends in a ReLU; ours stops before it (negative values kept)
    assert (ours < 0).float().mean() > 0.1
    np.testing.assert_allclose(torch.relu(ours).numpy(), ref_full.numpy(), rtol=0, atol=1e-5)


def test_checkpoint_mismatch_names_the_key(reference):
    model = vg.build_vggish_model()
    good = reference.state_dict()
    missing = {k: v for k, v in good.items() if k != "embeddings.4.bias"}
    with pytest.raises(MovaBenchError, match=r"missing keys \['embeddings.4.bias'\]"):
        vg.check_state_dict(missing, model, "test file")
    extra = {**good, "embeddings.6.weight": torch.zeros(1)}
    with pytest.raises(MovaBenchError, match=r"unexpected keys \['embeddings.6.weight'\]"):
        vg.check_state_dict(extra, model, "test file")
    shaped = {**good, "features.0.weight": torch.zeros(32, 1, 3, 3)}
    with pytest.raises(MovaBenchError, match=r"features.0.weight: file \(32, 1, 3, 3\) vs model \(64, 1, 3, 3\)"):
        vg.check_state_dict(shaped, model, "test file")
    vg.check_state_dict(good, model, "test file")  # the full reference dict passes


def test_loader_rejects_foreign_layouts(tmp_path):
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {"features.0.weight": torch.zeros(1)}}, wrapped)
    with pytest.raises(MovaBenchError, match="plain state dict") as info:
        vg.load_vggish(wrapped)
    assert "weights fetch vggish" in info.value.fix
    garbage = tmp_path / "page.pth"
    garbage.write_text("<html>rate limited</html>")
    with pytest.raises(MovaBenchError, match="cannot read the checkpoint"):
        vg.load_vggish(garbage)


@pytest.mark.parametrize("seconds", [0.5, 0.96, 1.0, 2.95, 4.2])
def test_log_mel_examples_match_torchvggish(seconds):
    from torchvggish import vggish_input

    x = _signal(seconds, seed=int(seconds * 100))
    ours = vg.log_mel_examples(x)
    ref = vggish_input.waveform_to_examples(x, 16000, return_tensor=False)
    assert ours.shape == ref.shape
    assert ours.shape[0] == int((1 + (x.size - 400) // 160) // 96)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_too_short_audio_gives_no_examples():
    assert vg.log_mel_examples(_signal(0.9)).shape == (0, 96, 64)
    assert vg.log_mel_examples(np.zeros(10, np.float32)).shape == (0, 96, 64)


def test_mel_matrix_is_htk_with_zero_dc():
    from torchvggish import mel_features

    ref = mel_features.spectrogram_to_mel_matrix(num_mel_bins=64, num_spectrogram_bins=257, audio_sample_rate=16000,
                                                 lower_edge_hertz=125, upper_edge_hertz=7500)
    np.testing.assert_allclose(vg.htk_mel_matrix(), ref, rtol=0, atol=1e-12)
    assert not vg.htk_mel_matrix()[0].any()


# -- the extractor end to end, through the weights registry and a real MP4 ---------------------------


@pytest.fixture
def registered(checkpoint):
    weights = pytest.importorskip("mova_bench.weights")
    from mova_bench.features import base

    weights.register_local("vggish", checkpoint)
    yield checkpoint
    weights.forget_local("vggish")
    for key in [k for k in base._MODELS if k[1] == "Vggish"]:  # never leak random weights to other tests
        base._MODELS.pop(key)


@pytest.mark.slow  # full-size network (random weights): a few seconds
def test_extractor_on_real_mp4(tmp_path, registered, reference):
    from conftest import make_av

    from mova_bench.media import decode

    clip = decode(make_av(tmp_path / "a.mp4", seconds=3.1, sr=48000))
    ex = vg.Vggish()
    assert ex.available() == (True, "")
    out = ex.extract(clip)
    # 3.1 s at 16 kHz: 1 + (49600 - 400) // 160 = 308 STFT frames -> 3 examples
    assert out["frames"].shape == (3, 128) and out["frames"].dtype == np.float32
    np.testing.assert_allclose(out["embedding"], out["frames"].mean(axis=0), rtol=0, atol=1e-6)
    x = torch.from_numpy(vg.log_mel_examples(clip.audio_at(16000)))[:, None]
    with torch.no_grad():
        ref = _reference_pre_relu(reference, x).numpy()
    np.testing.assert_allclose(out["frames"], ref, rtol=0, atol=1e-5)
    ident = ex.cache_identity()
    assert ident["weights_sha256"]["vggish"] == pytest.importorskip("mova_bench.weights").get_entry("vggish").sha256
    assert ident["preprocessing"]["audio_rate"] == 16000


@pytest.mark.slow  # full-size network (random weights): a few seconds
def test_short_clip_is_missing_with_reason(tmp_path, registered):
    from conftest import make_av

    from mova_bench.media import decode

    clip = decode(make_av(tmp_path / "short.mp4", seconds=0.75, sr=48000, events=()))
    out = vg.Vggish().extract(clip)
    assert out["frames"].shape == (1, 128) and np.isnan(out["frames"]).all()
    assert np.isnan(out["embedding"]).all()
    assert "shorter than one VGGish example" in str(out["missing_reason"])


def test_fd_leaves_a_missing_clip_out_with_a_warning():
    from mova_bench.metrics.base import FeatureSet
    from mova_bench.metrics.distribution import FrechetAudio

    rng = np.random.default_rng(0)

    def side(n, shift, missing=()):
        feats = {}
        for i in range(n):
            cid = f"c{i}"
            feats[cid] = (vg.missing_features(128, "too short", frame_level=True) if cid in missing
                          else {"frames": (rng.standard_normal((3, 128)) + shift).astype(np.float32)})
        return FeatureSet(clip_ids=list(feats), features={"vggish": feats})

    res = FrechetAudio(backbone="vggish", n_boot=20).compute(side(60, 0.5, missing=("c3",)), side(60, 0.0), seed=0)
    assert res.status == "ok" and res.n == 59  # clips, c3 left out
    assert any("c3" in w for w in res.warnings)
    assert res.display_name.startswith("FAD")


def test_parameters_cut_and_centre_the_audio():
    from mova_bench.errors import ConfigError
    from mova_bench.media import DecodedClip

    audio = _signal(3.0) + 0.2
    clip = DecodedClip(video=np.zeros((2, 8, 8, 3), np.uint8), video_times=np.array([0.0, 0.1]), fps=10.0, audio=audio,
                       sample_rate=16000, audio_start=0.0, source_width=8, source_height=8, source_channels=1,
                       duration_s=3.0)
    whole = vg.Vggish().examples(clip)
    np.testing.assert_array_equal(whole, vg.log_mel_examples(audio))
    assert vg.Vggish(max_seconds=2.0).examples(clip).shape == (2, 96, 64)
    centred = vg.Vggish(remove_dc=True).examples(clip)
    np.testing.assert_allclose(centred, vg.log_mel_examples(audio - audio.astype(np.float64).mean()), atol=1e-6)
    assert np.abs(centred - whole).max() > 1e-4  # the DC leaks into the first bands through the window
    for bad in (0, -1.0, "8"):
        with pytest.raises(ConfigError, match="max_seconds"):
            vg.Vggish(max_seconds=bad)
    assert vg.Vggish(max_seconds=2.0).preprocessing() != vg.Vggish().preprocessing()  # params are in the identity
    assert vg.Vggish(max_seconds=2.0).preprocessing()["max_seconds"] == 2.0


@pytest.mark.slow
def test_real_weights_if_present():
    """Runs only where the real checkpoint is present (no fingerprint recorded: none came from a real run)."""
    weights = pytest.importorskip("mova_bench.weights")
    if not weights.is_present("vggish"):
        pytest.skip("the real VGGish checkpoint is not present (mova-bench weights fetch vggish)")
    model = vg.load_vggish(weights.resolve("vggish"))
    with torch.no_grad():
        out = model(torch.from_numpy(vg.log_mel_examples(_signal(2.0)))[:, None])
    assert out.shape == (2, 128) and torch.isfinite(out).all()
