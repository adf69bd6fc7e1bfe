"""LAION-CLAP backbone (``laion-clap``) and ``clap_score``.

laion-clap 1.1.7 is the reference: its ``CLAP_Module`` is built from a fixed seed (BatchNorm running
statistics randomised, every tensor perturbed), saved in the upstream container
``{'state_dict': {'module.<key>': ...}}`` with ``text_branch.embeddings.position_ids``, and loaded
strictly by our loader; embeddings agree at 1e-5 with ``get_audio_embedding_from_data(...,
use_tensor=True)`` / ``get_text_embedding`` on the same input. The full HTSAT-tiny + RoBERTa
model is used (no smaller laion-clap configuration exists); one 10 s forward takes well under a
second on CPU, building a model ~7 s.

Nothing downloads: the reference's import builds three tokenizers and ``CLAP_Module()`` calls
``RobertaModel.from_pretrained`` — the test patches those (BACKBONES.md §3) and blocks sockets
around import and construction, counting attempts (0). Our loader needs no patching by the
caller. The RoBERTa tokenizer is built from synthetic vocab.json/merges.txt files with 50,265
entries (byte-level alphabet, a few merges, filler tokens).
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import importlib.util  # noqa: E402

if importlib.util.find_spec("laion_clap") is None:  # never import it here: its import downloads
    pytest.skip("laion-clap is not installed (pip install 'mova-bench[clap]')", allow_module_level=True)

from mova_bench.errors import MovaBenchError  # noqa: E402
from mova_bench.features import clap as C  # noqa: E402

SR = 48000
MOVA_SECONDS = 8.04


def _byte_alphabet() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer_files(folder, n_tokens=C.ROBERTA_VOCAB):
    """vocab.json + merges.txt of a byte-level BPE with ``n_tokens`` entries (roberta's specials
    at ids 0-3 and the mask last)."""
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("o", "n"), ("Ġ", "d"), ("r", "u"), ("Ġd", "ru"), ("Ġdru", "m")]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    if n_tokens > 5:
        for c in _byte_alphabet():
            vocab[c] = len(vocab)
        for a, b in merges:
            vocab.setdefault(a + b, len(vocab))
        i = 0
        while len(vocab) < n_tokens - 1:
            vocab[f"filler{i}"] = len(vocab)
            i += 1
    vocab["<mask>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges if n_tokens > 5),
                                       encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def _randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        for p in model.parameters():
            if p.numel() <= 1 << 16:  # LayerNorm/bias/scale tensors start as constants: perturb them
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def _save_upstream(model: torch.nn.Module, path) -> None:
    state = {"module." + k: v.detach().clone() for k, v in model.state_dict().items()}
    state["module." + C.POSITION_IDS_KEY] = torch.arange(514).expand((1, -1)).clone()
    torch.save({"epoch": 45, "name": "random-test-build", "state_dict": state}, str(path))


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) + 0.05 * rng.standard_normal(t.size)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Reference laion-clap (patched, sockets blocked), two random checkpoints in the upstream
    container, our backbones loaded from them through the weights registry."""
    from mova_bench import weights

    root = tmp_path_factory.mktemp("clap")
    mp = pytest.MonkeyPatch()
    attempts: list = []

    def refuse(self, *a, **k):
        attempts.append(a)
        raise OSError("network blocked by the test")

    net = pytest.MonkeyPatch()  # sockets blocked during import and construction
    net.setattr(socket.socket, "connect", refuse)
    net.setattr(socket.socket, "connect_ex", refuse)
    mp.setenv("HOME", str(root / "home"))
    vocab, merges = write_tokenizer_files(root / "roberta")
    tok = C.build_tokenizer(vocab, merges)
    # the reference's import builds BERT/RoBERTa/BART tokenizers from the hub, CLAP_Module() downloads
    # roberta-base: patched before import (BACKBONES.md §3)
    for cls in (transformers.BertTokenizer, transformers.RobertaTokenizer, transformers.BartTokenizer):
        mp.setattr(cls, "from_pretrained", classmethod(lambda c, *a, **k: tok))
    cfg = transformers.RobertaConfig(**C.ROBERTA_CONFIG)
    mp.setattr(transformers.RobertaModel, "from_pretrained", classmethod(lambda c, *a, **k: transformers.RobertaModel(cfg)))
    import laion_clap
    import laion_clap.training.data as data

    if data.torchaudio is None:
        # laion-clap's get_mel needs torchaudio (not installed): the fusion reference then uses our
        # log-mel, which test_log_mel_matches_librosa checks independently
        mp.setattr(data, "get_mel", lambda audio, cfg: C.log_mel(audio))
    refs, files = {}, {}
    for ck, fusion in (("630k-audioset", False), ("630k-audioset-fusion", True)):
        torch.manual_seed(1 + fusion)
        ref = laion_clap.CLAP_Module(enable_fusion=fusion, device="cpu", amodel="HTSAT-tiny")
        _randomise(ref.model, seed=10 + fusion)
        ref.model.eval()
        files[ck] = root / f"{ck}-best.pt"
        _save_upstream(ref.model, files[ck])
        refs[ck] = ref
        weights.register_local(C.CHECKPOINTS[ck].weights, files[ck])
    weights.register_local("roberta-base-vocab", vocab)
    weights.register_local("roberta-base-merges", merges)
    # our loader must not need the reference's patches: from_pretrained now fails loudly and counts
    calls: list = []

    def forbidden(c, *a, **k):
        calls.append(a)
        raise AssertionError("RobertaModel.from_pretrained must not be called by our loader")

    mp.setattr(transformers.RobertaModel, "from_pretrained", classmethod(forbidden))
    ours = {}
    for ck in refs:
        bb = C.LaionClap(checkpoint=ck)
        bb.load("cpu")
        ours[ck] = bb
    net.undo()
    yield {"refs": refs, "ours": ours, "files": files, "attempts": attempts, "from_pretrained_calls": calls,
           "data": data, "tok": tok, "root": root}
    mp.undo()
    for name in ("clap-630k-audioset", "clap-630k-audioset-fusion", "roberta-base-vocab", "roberta-base-merges"):
        weights.forget_local(name)


class FakeClip:
    def __init__(self, audio, prompt):
        self._audio = audio
        self.prompt_text = prompt

    def audio_at(self, sr):
        assert sr == SR
        return self._audio


def _ref_audio(ref, x):
    with torch.no_grad():
        return ref.get_audio_embedding_from_data(torch.from_numpy(x)[None], use_tensor=True)[0]


def _ref_text(ref, text):
    with torch.no_grad():
        return ref.get_text_embedding([text], use_tensor=True)[0]


# -- no network, tokenizer ---------------------------------------------------------------------------


def test_import_and_construction_make_no_network_attempt(env):
    assert env["attempts"] == []
    assert set(env["ours"]) == {"630k-audioset", "630k-audioset-fusion"}


def test_our_loader_needs_no_patches(env):
    """Our backbones were loaded with RobertaModel.from_pretrained raising (and sockets blocked):
    never called; the loaded tensors are the reference's."""
    assert env["from_pretrained_calls"] == []
    for ck in ("630k-audioset", "630k-audioset-fusion"):
        ref_state = env["refs"][ck].model.state_dict()
        ours = env["ours"][ck].model.clap.state_dict()
        assert set(ours) == set(ref_state)
        for k, v in ours.items():
            assert torch.equal(v, ref_state[k]), (ck, k)


def test_tokenizer_must_have_roberta_base_size(tmp_path, env):
    v5, m5 = write_tokenizer_files(tmp_path / "tiny", n_tokens=5)
    with pytest.raises(MovaBenchError) as err:
        C.build_tokenizer(v5, m5)
    assert "5 tokens, expected 50265" in str(err.value) and "roberta-base-vocab" in (err.value.fix or "")
    # transformers 5.x's silent fallback (what RobertaTokenizer(vocab_file=..., merges_file=...) builds there)
    with pytest.raises(MovaBenchError, match="expected 50265"):
        C.check_tokenizer(transformers.RobertaTokenizer())
    tok = env["tok"]
    assert len(tok) == 50265
    ids = C.tokenize(tok, ["the drum"])["input_ids"][0]
    assert ids.shape == (77,) and ids[0] == 0 and ids[1] != 2  # not the 5-token "<s></s>" encoding
    assert int((ids != 1).sum()) > 3 and ids[-1] == 1  # several real tokens, padded with <pad> = 1


# -- checkpoint container --------------------------------------------------------------------------------


def test_checkpoint_layout_and_manifest(env):
    raw = torch.load(str(env["files"]["630k-audioset"]), map_location="cpu", weights_only=True)
    assert all(k.startswith("module.") for k in raw["state_dict"])
    assert len(raw["state_dict"]) == 418  # 417 tensors + position_ids (BACKBONES.md manifest)
    state = C.read_clap_state_dict(env["files"]["630k-audioset"])
    assert len(state) == 417 and C.POSITION_IDS_KEY not in state
    for ck, n_keys, n_params in (("630k-audioset", 417, 158_334_169), ("630k-audioset-fusion", 447, 158_348_809)):
        model = env["ours"][ck].model.clap
        _assert_manifest(model, ck, n_keys, n_params)


def _assert_manifest(model, ck, n_keys, n_params):
    """Keys and shapes of tests/manifests/clap-<ck>.json; counts of BACKBONES.md."""
    from pathlib import Path

    manifest = json.loads((Path(__file__).parent / "manifests" / f"clap-{ck}.json").read_text())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == manifest["keys"]
    assert len(manifest["keys"]) == n_keys and manifest["weights_entry"] == C.CHECKPOINTS[ck].weights
    assert sum(p.numel() for p in model.parameters()) == n_params == manifest["n_parameters"]


@pytest.mark.slow
def test_music_architecture_matches_the_manifest():
    """HTSAT-base (music and music-speech checkpoints): 504 keys, 199,564,633 parameters."""
    _assert_manifest(C.create_clap_model("music"), "music", 504, 199_564_633)
    assert C.CHECKPOINTS["music-speech"].amodel == C.CHECKPOINTS["music"].amodel == "HTSAT-base"


def test_mismatched_checkpoint_fails_loudly(env, tmp_path):
    model = env["ours"]["630k-audioset"].model.clap
    # the fusion file for the non-fusion architecture
    fusion_state = C.read_clap_state_dict(env["files"]["630k-audioset-fusion"])
    with pytest.raises(MovaBenchError) as err:
        C.check_state_dict(fusion_state, model, "x", fix="f")
    assert "30 unexpected keys" in str(err.value) and "fusion" in str(err.value)
    state = dict(C.read_clap_state_dict(env["files"]["630k-audioset"]))
    state.pop("logit_scale_a")
    state["audio_projection.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(MovaBenchError) as err:
        C.check_state_dict(state, model, "x", fix="f")
    assert "logit_scale_a" in str(err.value) and "audio_projection.0.weight" in str(err.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MovaBenchError, match="not a laion-clap checkpoint"):
        C.read_clap_state_dict(junk)


# -- preprocessing --------------------------------------------------------------------------------------


def test_log_mel_matches_librosa():
    """laion-clap's get_mel (torchaudio MelSpectrogram htk/no norm + AmplitudeToDB) = librosa with
    htk=True, norm=None, reflect padding (the alignment laion-clap documents)."""
    import librosa

    x = _signal(1.3, seed=4)
    fb = C.mel_filterbank().numpy()
    ref_fb = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=50, fmax=14000, htk=True, norm=None).T
    np.testing.assert_allclose(fb, ref_fb, atol=1e-5)  # float32 (torchaudio) vs float64 (librosa)
    ours = C.log_mel(torch.from_numpy(x)).numpy()
    power = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=SR, n_fft=1024, hop_length=480, win_length=1024,
                                           center=True, pad_mode="reflect", power=2.0, n_mels=64, fmin=50, fmax=14000,
                                           htk=True, norm=None)
    ref = 10 * np.log10(np.maximum(power, 1e-10)).T
    assert ours.shape == ref.shape == (x.size // 480 + 1, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_repeat_pad_and_crop_follow_laion_clap(env):
    data = env["data"]
    cfg = env["refs"]["630k-audioset"].model_cfg["audio_cfg"]
    short = torch.from_numpy(_signal(0.7, seed=1))
    theirs = data.get_audio_features({}, short, 480000, "rand_trunc", "repeatpad", cfg)
    ours = C.audio_input(short, fusion=False)
    assert torch.equal(ours["waveform"], theirs["waveform"]) and not bool(ours["longer"])
    n = short.shape[0]
    assert torch.equal(ours["waveform"][: n * (480000 // n)], short.repeat(480000 // n))
    assert float(ours["waveform"][n * (480000 // n):].abs().sum()) == 0.0
    long = torch.from_numpy(_signal(11.0, seed=2))
    assert torch.equal(C.audio_input(long, fusion=False)["waveform"], long[:480000])
    a = C.audio_input(long, fusion=False, crop="seeded", seed=5)["waveform"]
    b = C.audio_input(long, fusion=False, crop="seeded", seed=5)["waveform"]
    c = C.audio_input(long, fusion=False, crop="seeded", seed=6)["waveform"]
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (480000,)


def test_shrink_mel_is_torchvision_resize():
    import torchvision

    mel = torch.randn(1301, 64)
    ref = torchvision.transforms.Resize(size=[1001, 64])(mel[None])[0]
    assert torch.allclose(C.shrink_mel(mel), ref, atol=1e-6)


# -- parity with laion-clap ---------------------------------------------------------------------------


@pytest.mark.parametrize("ck", ["630k-audioset", "630k-audioset-fusion"])
def test_mova_length_clip_matches_reference(env, ck):
    ref, ours = env["refs"][ck], env["ours"][ck]
    x = _signal(MOVA_SECONDS, seed=3)
    prompt = "the drum is hit twice"
    out = ours.extract(FakeClip(x, prompt))
    a = _ref_audio(ref, x).numpy()
    t = _ref_text(ref, prompt).numpy()
    np.testing.assert_allclose(out["embedding"], a, atol=1e-5, rtol=0)
    assert abs(np.linalg.norm(out["embedding"]) - 1) < 1e-5 and out["embedding"].shape == (512,)
    assert abs(float(out["clap_score"]) - float(a @ t)) < 1e-5
    assert int(out["has_text"]) == 1 and int(out["cropped"]) == 0 and str(out["checkpoint"]) == ck
    assert out["audio_seconds"] == pytest.approx(MOVA_SECONDS, abs=1e-4)


@pytest.mark.parametrize("ck", ["630k-audioset", "630k-audioset-fusion"])
def test_longer_clip_matches_reference_with_the_same_choice(env, ck, monkeypatch):
    """laion-clap crops (and picks fusion chunks) with the global RNG; pinned to the first
    choice it agrees with our crop='start'."""
    ref, ours = env["refs"][ck], env["ours"][ck]
    x = _signal(12.5, seed=7)
    monkeypatch.setattr(np.random, "randint", lambda lo, hi=None, *a, **k: 0)
    monkeypatch.setattr(np.random, "choice", lambda a, *args, **k: np.asarray(a)[0])
    a = _ref_audio(ref, x).numpy()
    out = ours.extract(FakeClip(x, "rain"))
    np.testing.assert_allclose(out["embedding"], a, atol=1e-5, rtol=0)
    assert int(out["cropped"]) == 1


def test_no_prompt_and_bad_parameters(env):
    out = env["ours"]["630k-audioset"].extract(FakeClip(_signal(2.0), None))
    assert np.isnan(out["clap_score"]) and int(out["has_text"]) == 0 and out["embedding"].shape == (512,)
    with pytest.raises(MovaBenchError, match="Did you mean '630k-audioset-fusion'"):
        C.LaionClap(checkpoint="630k-audioset-fuson")
    with pytest.raises(MovaBenchError, match="crop"):
        C.LaionClap(crop="random")
    assert C.LaionClap().weights[0] == "clap-630k-audioset-fusion"  # MOVA's checkpoint by default
    assert C.LaionClap(checkpoint="music-speech").weights == ("clap-music-speech", "roberta-base-vocab", "roberta-base-merges")
    fixes = C.LaionClap(checkpoint="music").missing_fixes()
    assert "mova-bench weights fetch clap-music" in fixes
    i1 = C.LaionClap(checkpoint="630k-audioset").cache_identity()
    i2 = C.LaionClap().cache_identity()
    assert i1["weights_sha256"] != i2["weights_sha256"] and i1["preprocessing"]["fusion"] is False


# -- end to end: real MP4 with prompts, the metric ------------------------------------------------------


def test_real_mp4_to_clap_score_metric(env, tmp_path):
    from conftest import make_av

    from mova_bench.media import decode
    from mova_bench.metrics.alignment import ClapScore
    from mova_bench.metrics.base import FeatureSet

    bb = env["ours"]["630k-audioset-fusion"]
    fs = FeatureSet(clip_ids=[], features={"laion-clap": {}})
    prompts = ["thunder rolls", None, "a drum is hit twice"]
    for i, prompt in enumerate(prompts):
        path = make_av(tmp_path / f"a{i}.mp4", seconds=2.0, width=96, height=64, events=(0.3 + 0.2 * i, 1.2))
        clip = decode(path)
        clip.prompt_text = prompt
        out = bb.extract(clip)
        if i == 0:  # decoded AAC at 48 kHz through our path = the reference on the same samples
            ref = _ref_audio(env["refs"]["630k-audioset-fusion"], clip.audio_at(SR)).numpy()
            np.testing.assert_allclose(out["embedding"], ref, atol=1e-5)
        fs.clip_ids.append(f"a{i}")
        fs.meta[f"a{i}"] = {"prompt_text": prompt}
        fs.features["laion-clap"][f"a{i}"] = out
    res = ClapScore().compute(fs, None, seed=1)
    assert res.status == "ok" and res.key == "clap_score[laion-clap]"
    assert res.n == 2 and res.extra["n_without_prompt"] == 1 and res.extra["clips_without_prompt"] == ["a1"]
    assert res.extra["checkpoint"] == "630k-audioset-fusion" and "630k-audioset-fusion" in res.convention
    vals = [float(fs.features["laion-clap"][c]["clap_score"]) for c in ("a0", "a2")]
    assert res.value == pytest.approx(np.mean(vals)) and all(-1 <= v <= 1 for v in vals)
    assert res.ci_low is not None and res.ci_low <= res.value <= res.ci_high
    assert set(res.per_clip) == {"a0", "a2"} and any("no prompt text" in w for w in res.warnings)
    # every clip without a prompt: skipped with the reason, never a number
    for c in fs.clip_ids:
        fs.features["laion-clap"][c] = {**fs.features["laion-clap"][c], "has_text": np.int8(0), "clap_score": np.float32("nan")}
    res = ClapScore().compute(fs, None)
    assert res.status == "skipped" and "none of the 3 clips has prompt text" in res.reason and res.value is None


def test_harness_analysis_gives_the_prompt_and_caches_the_checkpoint_name(env, tmp_path):
    """analyse_clip with the registered ``laion-clap`` (the model loaded once per process is reused):
    the prompt reaches the backbone, features (incl. the checkpoint name) survive the cache."""
    from conftest import make_av

    from mova_bench.features.base import LOAD_COUNTS
    from mova_bench.media import file_sha256
    from mova_bench.pipeline.analysis import AnalysisTask, ExtractorSpec, analyse_clip

    path = make_av(tmp_path / "h.mp4", seconds=1.5, width=64, height=48)
    spec = (ExtractorSpec("laion-clap"),)
    loads = sum(LOAD_COUNTS.values())

    def run(prompt):
        return analyse_clip(AnalysisTask("h", str(path), file_sha256(path), spec, cache_root=str(tmp_path / "cache"),
                                         prompt_text=prompt))

    first = run("a click")
    out = first.features["laion-clap"]
    assert first.decoded and np.isfinite(out["clap_score"]) and out["embedding"].shape == (512,)
    again = run("a click")
    assert again.cache_hits == 1 and str(again.features["laion-clap"]["checkpoint"]) == "630k-audioset-fusion"
    assert float(again.features["laion-clap"]["clap_score"]) == float(out["clap_score"])
    other = run("an orchestra")
    assert other.decoded and float(other.features["laion-clap"]["clap_score"]) != float(out["clap_score"])
    assert sum(LOAD_COUNTS.values()) == loads  # no second build of the default checkpoint


SUITE = """\
name: clap_e2e
version: "1"
description: a small suite for the CLAP end-to-end test
defaults: {duration_s: 1.5, fps: 24, sample_rate: 48000, width: 96, height: 64, samples_per_prompt: 2, seed: 3}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: strike, text: "A lightning bolt strikes close by, followed by a crack of thunder"}
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
"""


@pytest.mark.slow
def test_cli_run_reports_clap_score_and_fad_with_a_ci(env, tmp_path, capsys):
    """``mova-bench run`` (local executor, in this process, so the test weights registered by the
    fixture are seen) reports clap_score[laion-clap] and fd_audio[laion-clap] with status ok."""
    from mova_bench.cli import main

    suite = tmp_path / "clap_e2e.yaml"
    suite.write_text(SUITE)
    code = main(["run", "--model", "procedural", "--suite", str(suite), "--out", str(tmp_path / "run"), "--json",
                 "--executor", "local", "--backbones", "auto", "--metrics", "clap_score,fd_audio[laion-clap]"])
    out, err = capsys.readouterr()
    assert code == 0, err + out[-3000:]
    metrics = json.loads(out)["metrics"]
    clap = metrics["clap_score[laion-clap]"]
    assert clap["status"] == "ok", clap
    assert clap["n"] == 4 and clap["ci_low"] is not None and clap["extra"]["checkpoint"] == "630k-audioset-fusion"
    fad = metrics["fd_audio[laion-clap]"]
    assert fad["status"] == "ok", fad
    assert fad["display_name"].startswith("FAD")
