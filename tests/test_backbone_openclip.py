"""OpenCLIP backbones (``openclip-vit-b-32`` / ``openclip-vit-l-14``) and ``clip_score``.

Random weights of a reduced ViT/text config (same open_clip classes as B-32, 2 layers, width 64)
saved in the upstream containers (OpenAI TorchScript archive, safetensors, plain state dict) and
loaded strictly by our loader; parity at 1e-5 with open_clip's own forward (``pretrained=None``,
QuickGELU) and with torchmetrics' ``CLIPScore`` fed the same model; preprocessing checked against
open_clip's transform and against the convention (shortest side 224 bicubic, centre crop).
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from mova_bench.errors import MovaBenchError  # noqa: E402
from mova_bench.features import openclip as oc  # noqa: E402

TINY = "MovaTestTiny-quickgelu"
TINY_CFG = {
    "embed_dim": 32, "quick_gelu": True,
    # one 64-wide head per tower, as open_clip's build_model_from_openai_state_dict infers for width 64
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


class TinyClip(oc.OpenClipB32):
    """The B-32 backbone with the reduced architecture (weights entry name unchanged)."""

    arch = TINY


@pytest.fixture(scope="module")
def reference():
    """A seeded random open_clip model of the tiny config (every tensor perturbed, so that a
    loader that silently kept initial values would be caught) and its state dict."""
    open_clip.factory._MODEL_CONFIGS[TINY] = TINY_CFG
    torch.manual_seed(0)
    model = open_clip.create_model(TINY, pretrained=None)
    with torch.no_grad():
        for p in model.parameters():
            # values representable in fp16, as in the OpenAI archives (open_clip's OpenAI loader
            # rounds most weights to fp16 before loading)
            p.copy_((p + 0.02 * torch.randn_like(p)).half().float())
    model.eval()
    return model


def _save_torchscript(model, path):
    """The OpenAI container: a TorchScript archive whose state dict holds the CLIP tensors plus the
    ``input_resolution``/``context_length``/``vocab_size`` entries."""

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, child in model.named_children():
                self.add_module(name, child)
            for name, p in model.named_parameters(recurse=False):
                self.register_parameter(name, torch.nn.Parameter(p.detach().clone()))
            self.register_buffer("input_resolution", torch.tensor(224))
            self.register_buffer("context_length", torch.tensor(77))
            self.register_buffer("vocab_size", torch.tensor(49408))

        def forward(self, x):
            return self.positional_embedding.sum() + x

    torch.jit.save(torch.jit.trace(Holder().eval(), torch.zeros(1)), str(path))


@pytest.fixture(scope="module")
def weight_files(reference, tmp_path_factory):
    d = tmp_path_factory.mktemp("openclip-weights")
    from safetensors.torch import save_file

    state = {k: v.detach().clone().contiguous() for k, v in reference.state_dict().items()}
    files = {"torchscript": d / "ViT-B-32.pt", "safetensors": d / "open_clip_model.safetensors",
             "bin": d / "open_clip_pytorch_model.bin"}
    _save_torchscript(reference, files["torchscript"])
    save_file(state, str(files["safetensors"]))
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, str(files["bin"]))
    return files


@pytest.fixture(scope="module")
def backbone(weight_files):
    from mova_bench import weights

    weights.register_local("openclip-vit-b-32-openai", weight_files["torchscript"])
    bb = TinyClip()
    bb.load("cpu")
    yield bb
    weights.forget_local("openclip-vit-b-32-openai")


class FakeClip:
    """What the backbone reads from a decoded clip."""

    def __init__(self, frames, prompt, fps=1.0):
        self._frames = frames
        self.prompt_text = prompt
        self._times = np.arange(len(frames)) / fps

    def frames(self, need):
        assert need.mode == "native" and need.fps == 1.0
        return self._frames

    def frame_times(self, need):
        return self._times


def _frames(n=3, h=352, w=640, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, h // 8, w // 8, 3)).astype(np.uint8)
    return np.ascontiguousarray(base.repeat(8, axis=1).repeat(8, axis=2))  # blocky: resize matters


def _reference_scores(model, frames, prompt):
    from PIL import Image

    pre = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
    tok = open_clip.get_tokenizer(TINY)
    with torch.no_grad():
        img = model.encode_image(torch.stack([pre(Image.fromarray(f)) for f in frames]))
        txt = model.encode_text(tok([prompt]))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    per = 100 * (img @ txt.T)[:, 0]
    return per.numpy(), max(float(per.mean()), 0.0), img.mean(0).numpy()


# -- preprocessing --------------------------------------------------------------------------------


def test_preprocess_is_open_clips_eval_transform_and_the_documented_convention(backbone):
    from PIL import Image

    frames = _frames(2, 352, 640)
    ours = torch.stack([backbone.model.preprocess(Image.fromarray(f)) for f in frames])
    ref = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
    theirs = torch.stack([ref(Image.fromarray(f)) for f in frames])
    assert ours.shape == (2, 3, 224, 224)
    assert torch.equal(ours, theirs)
    # the convention, computed by hand: shortest side 352 -> 224 (640 -> int(224*640/352) = 407),
    # PIL bicubic, centre crop 224 (left = round((407-224)/2) = 92), [0,1], CLIP mean/std
    im = Image.fromarray(frames[0]).resize((407, 224), Image.BICUBIC)
    arr = np.asarray(im, dtype=np.float32)[:, 92:92 + 224] / 255.0
    mean = np.array(open_clip.OPENAI_DATASET_MEAN, np.float32)
    std = np.array(open_clip.OPENAI_DATASET_STD, np.float32)
    manual = torch.from_numpy(((arr - mean) / std).transpose(2, 0, 1).copy())
    assert torch.allclose(ours[0], manual, atol=1e-6)
    # portrait frames: the short side is the width
    portrait = _frames(1, 640, 352)[0]
    out = backbone.model.preprocess(Image.fromarray(portrait))
    im = Image.fromarray(portrait).resize((224, 407), Image.BICUBIC)
    arr = np.asarray(im, dtype=np.float32)[92:92 + 224] / 255.0
    assert torch.allclose(out, torch.from_numpy(((arr - mean) / std).transpose(2, 0, 1).copy()), atol=1e-6)


# -- loading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["torchscript", "safetensors", "bin"])
def test_every_container_loads_strictly_to_the_same_tensors(container, weight_files, reference):
    state = oc.read_openclip_state_dict(weight_files[container])
    ref = reference.state_dict()
    assert set(state) == set(ref)
    for k in ref:
        assert torch.equal(state[k].float(), ref[k].float()), k
    model = oc.build_openclip(TINY, weight_files[container])
    for k, v in model.clip.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_key_or_shape_mismatch_fails_loudly(weight_files, reference, tmp_path):
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    state.pop("ln_final.bias")
    state["visual.proj"] = torch.zeros(3, 3)
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.bin"
    torch.save(state, str(bad))
    with pytest.raises(MovaBenchError) as err:
        oc.build_openclip(TINY, bad)
    msg = str(err.value)
    assert "ln_final.bias" in msg and "visual.proj" in msg and "extra.weight" in msg
    assert "does not match the architecture" in msg and "openclip-vit-b-32-openai" in (err.value.fix or "")


def test_full_size_architectures_match_the_committed_manifests():
    """B-32 / L-14 as our loader builds them (on the meta device: no memory, no init) have exactly
    the keys and shapes of tests/manifests/openclip-vit-*.json and the parameter counts of
    BACKBONES.md (151,277,313 / 427,616,513)."""
    import json
    from pathlib import Path

    for cls, n in ((oc.OpenClipB32, 151_277_313), (oc.OpenClipL14, 427_616_513)):
        manifest = json.loads((Path(__file__).parent / "manifests" / f"{cls.name}.json").read_text())
        with torch.device("meta"):
            m = open_clip.create_model(cls.arch, pretrained=None, device="meta")
        assert {k: list(v.shape) for k, v in m.state_dict().items()} == manifest["keys"]
        assert sum(p.numel() for p in m.parameters()) == n == manifest["n_parameters"]
        assert manifest["weights_entry"] == cls.weights[0]
        assert m.visual.preprocess_cfg["interpolation"] == "bicubic" and m.visual.preprocess_cfg["size"] == (224, 224)
        assert cls.arch.endswith("-quickgelu")


def test_build_makes_no_network_attempt(weight_files, monkeypatch):
    attempts = []

    def refuse(self, *a, **k):
        attempts.append(a)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    oc.build_openclip(TINY, weight_files["torchscript"])
    assert attempts == []


# -- parity ------------------------------------------------------------------------------------------


def test_scores_match_open_clip_forward(backbone, reference):
    frames = _frames(3)
    prompt = "a red ball bounces on a wooden floor"
    out = backbone.extract(FakeClip(frames, prompt))
    per, clip, emb = _reference_scores(reference, frames, prompt)
    np.testing.assert_allclose(out["clip_score_frames"], per, atol=1e-5, rtol=0)
    assert abs(float(out["clip_score"]) - clip) < 1e-5
    np.testing.assert_allclose(out["embedding"], emb, atol=1e-6)
    assert out["embedding"].shape == (32,) and int(out["has_text"]) == 1 and int(out["text_truncated"]) == 0
    np.testing.assert_allclose(out["frame_times"], [0.0, 1.0, 2.0])


def test_openai_archive_matches_open_clips_own_openai_loader(backbone, weight_files):
    """open_clip.load_openai_model reads the same TorchScript archive (architecture inferred from
    the tensors, QuickGELU): its embeddings equal ours."""
    from PIL import Image

    ref = open_clip.load_openai_model(str(weight_files["torchscript"]), precision="fp32", device="cpu").eval()
    frames = _frames(2, seed=5)
    pre = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
    with torch.no_grad():
        theirs = ref.encode_image(torch.stack([pre(Image.fromarray(f)) for f in frames]))
        ours = backbone.image_embeddings(frames)
        t_ref = ref.encode_text(open_clip.tokenize(["a storm"]))
        t_ours = backbone.model.clip.encode_text(backbone.model.tokenizer(["a storm"]))
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    assert torch.allclose(t_ours, t_ref, atol=1e-5, rtol=0)


def test_clip_score_equals_torchmetrics_clipscore_on_the_same_model(backbone, reference, monkeypatch):
    """torchmetrics' CLIPScore (100·cos per sample, mean clamped at 0) with open_clip's model and
    transform plugged in through its model/processor interface gives our per-clip score."""
    import torchmetrics.multimodal.clip_score as tm
    from PIL import Image

    pre = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
    tok = open_clip.get_tokenizer(TINY)

    class Model(torch.nn.Module):
        config = None

        def get_image_features(self, pixel_values):
            return reference.encode_image(pixel_values)

        def get_text_features(self, input_ids, attention_mask=None):
            return reference.encode_text(input_ids)

    def processor(text=None, images=None, return_tensors="pt", padding=True):
        if images is not None:
            return {"pixel_values": torch.stack([pre(Image.fromarray(i.permute(1, 2, 0).numpy())) for i in images])}
        ids = tok(text)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    monkeypatch.setattr(tm, "_get_clip_model_and_processor", lambda *a, **k: (Model(), processor))
    frames = _frames(4, seed=3)
    for prompt in ("thunder over a dark sea", "a piano"):
        metric = tm.CLIPScore()
        with torch.no_grad():
            metric.update([torch.from_numpy(f).permute(2, 0, 1) for f in frames], [prompt] * len(frames))
            expected = float(metric.compute())
        ours = float(backbone.extract(FakeClip(frames, prompt))["clip_score"])
        assert abs(ours - expected) < 1e-5, (prompt, ours, expected)


def test_clip_score_is_clamped_on_the_mean_not_per_frame():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.2]])
    txt = torch.tensor([1.0, 0.0])
    per, clip = oc.clip_scores(img, txt)
    assert per[2] < 0  # a negative frame stays negative
    assert clip == pytest.approx(max(float(np.mean(per)), 0.0))
    per2, clip2 = oc.clip_scores(-img[:1], txt)
    assert per2[0] == pytest.approx(-100.0) and clip2 == 0.0


def test_no_prompt_gives_nan_score_and_long_prompt_is_flagged(backbone):
    frames = _frames(2)
    out = backbone.extract(FakeClip(frames, None))
    assert np.isnan(out["clip_score"]) and int(out["has_text"]) == 0 and out["embedding"].shape == (32,)
    out = backbone.extract(FakeClip(frames, " ".join(["word"] * 120)))
    assert int(out["text_truncated"]) == 1 and np.isfinite(out["clip_score"])


def test_bad_fps_parameter_is_refused():
    with pytest.raises(MovaBenchError, match="fps"):
        oc.OpenClipB32(fps=0)
    bb = oc.OpenClipB32(fps=2)
    assert bb.video_needs[0].fps == 2.0 and bb.preprocessing()["arch"] == "ViT-B-32-quickgelu"
    assert bb.cache_identity()["preprocessing"]["video_needs"][0]["fps"] == 2.0


# -- end to end: a real MP4, decoded with the backbone's need, and the metric ---------------------------


def test_real_mp4_to_clip_score_metric(backbone, tmp_path):
    from conftest import make_av

    from mova_bench.media import decode
    from mova_bench.metrics.alignment import ClipScore
    from mova_bench.metrics.base import FeatureSet

    fs = FeatureSet(clip_ids=[], features={"openclip-vit-b-32": {}})
    prompts = ["lightning over a city", "rain on a window", None, "a drum is hit twice"]
    for i, prompt in enumerate(prompts):
        path = make_av(tmp_path / f"c{i}.mp4", seconds=2.5, width=160, height=96, events=(0.4 + 0.3 * i, 1.6))
        clip = decode(path, needs=backbone.video_needs)
        clip.prompt_text = prompt
        out = backbone.extract(clip)
        assert out["clip_score_frames"].shape == (3,)  # 2.5 s at 1 fps: frames at 0, 1, 2 s
        np.testing.assert_allclose(out["frame_times"] - out["frame_times"][0], [0.0, 1.0, 2.0], atol=0.05)
        cid = f"c{i}"
        fs.clip_ids.append(cid)
        fs.meta[cid] = {"prompt_text": prompt}
        fs.features["openclip-vit-b-32"][cid] = out
    res = ClipScore().compute(fs, None, seed=0)
    assert res.status == "ok" and res.key == "clip_score[openclip-vit-b-32]"
    assert res.n == 3 and res.extra["n_without_prompt"] == 1 and res.extra["clips_without_prompt"] == ["c2"]
    scores = [float(fs.features["openclip-vit-b-32"][c]["clip_score"]) for c in ("c0", "c1", "c3")]
    assert res.value == pytest.approx(np.mean(scores))
    assert res.ci_low is not None and res.ci_low <= res.value <= res.ci_high
    assert set(res.per_clip) == {"c0", "c1", "c3"}
    assert any("no prompt text" in w for w in res.warnings)


def test_metric_counts_clips_the_analysis_left_without_features():
    """The analysis gives a text backbone no clip without a prompt (``missing_features`` in the
    manifest row): counted as without prompt; a clip missing features for another reason is counted
    apart; the CI is a seeded bootstrap over the scored clips."""
    from mova_bench.metrics.alignment import ClipScore
    from mova_bench.metrics.base import FeatureSet

    rng = np.random.default_rng(0)
    ids = [f"k{i}" for i in range(12)]
    per = {c: {"clip_score": np.float32(20 + rng.normal()), "has_text": np.int8(1), "text_truncated": np.int8(c == "k3")}
           for c in ids[:10]}
    meta = {c: {"prompt_text": "p"} for c in ids[:10]}
    meta["k10"] = {"prompt_text": None, "missing_features": {"openclip-vit-b-32": "the clip has no prompt text"}}
    meta["k11"] = {"prompt_text": "p"}
    fs = FeatureSet(clip_ids=ids, features={"openclip-vit-b-32": per}, meta=meta)
    res = ClipScore().compute(fs, None, seed=3)
    assert res.status == "ok" and res.n == 10
    assert res.extra["n_without_prompt"] == 1 and res.extra["n_total"] == 11 and res.extra["n_missing_features"] == 1
    assert res.extra["n_prompts_truncated"] == 1
    vals = np.array([float(per[c]["clip_score"]) for c in ids[:10]])
    assert res.value == pytest.approx(vals.mean())
    from mova_bench.stats import bootstrap_ci

    assert (res.ci_low, res.ci_high) == pytest.approx(bootstrap_ci(vals, np.mean, seed=3))
    assert res.ci_high - res.ci_low > 0 and res.per_clip_column == "clip_score[openclip-vit-b-32]"
    assert ClipScore(backbone="openclip-vit-l-14").required_extractors() == ["openclip-vit-l-14"]


def test_harness_analysis_passes_needs_and_prompt_and_keys_the_cache_on_the_text(backbone, tmp_path):
    """Through the analysis stage (analyse_clip): the backbone's 1 fps native need is decoded, the
    prompt reaches it, the prompt's hash is in the cache key, a clip without prompt gets no features."""
    from conftest import make_av

    from mova_bench.media import file_sha256
    from mova_bench.pipeline.analysis import AnalysisTask, ExtractorSpec, analyse_clip
    from mova_bench.registry import features

    features.register("openclip-test-tiny", TinyClip, replace=True)
    path = make_av(tmp_path / "h.mp4", seconds=2.2, width=128, height=72)
    spec = (ExtractorSpec("openclip-test-tiny"),)

    def run(prompt):
        return analyse_clip(AnalysisTask("h", str(path), file_sha256(path), spec, cache_root=str(tmp_path / "cache"),
                                         prompt_text=prompt))

    first = run("a flash of light")
    out = first.features["openclip-test-tiny"]
    assert first.decoded and out["clip_score_frames"].shape == (3,) and np.isfinite(out["clip_score"])
    again = run("a flash of light")
    assert again.cache_hits == 1 and not again.decoded
    np.testing.assert_array_equal(again.features["openclip-test-tiny"]["clip_score_frames"], out["clip_score_frames"])
    other = run("a cat sleeping")  # frame scores unclamped: they differ with the prompt even when both clip scores are 0
    assert other.decoded
    assert not np.array_equal(other.features["openclip-test-tiny"]["clip_score_frames"], out["clip_score_frames"])
    none = run(None)
    assert "openclip-test-tiny" not in none.features and "prompt" in none.missing["openclip-test-tiny"]
