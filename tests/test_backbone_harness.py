"""The harness around pretrained backbones: loading, cache identity, text, devices, --backbones,
frame-level distances. The backbones here are tiny fakes with random weights saved to files that
the test registers through the weights API (no network, no real checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import make_av  # noqa: E402
from mova_bench import registry  # noqa: E402
from mova_bench.cli import main  # noqa: E402
from mova_bench.errors import ConfigError, MissingDependencyError  # noqa: E402
from mova_bench.features.base import LOAD_COUNTS, TorchBackbone, resolve_device  # noqa: E402
from mova_bench.media import VideoNeed, decode  # noqa: E402
from mova_bench.metrics.base import FeatureSet  # noqa: E402
from mova_bench.pipeline import analysis  # noqa: E402
from mova_bench.weights import forget_local, register_local  # noqa: E402

NEED = VideoNeed("exact", (32, 32), "bilinear")


class FakeVideo(TorchBackbone):
    """Frame-level video backbone: 4×4 average pooling of 32×32 frames, then Linear(192 → 6)."""

    name = "fake-video"
    modality = "video"
    display_name = "FakeVideoNet"
    weights = ("fake-video-w",)
    extra = "video"
    video_needs = (NEED,)
    frame_level = True
    metric_names = {"fd_video": "FFVD"}
    builds = 0

    def build(self, paths, device):
        type(self).builds += 1
        lin = torch.nn.Linear(192, 6)
        lin.load_state_dict(torch.load(paths["fake-video-w"], weights_only=True), strict=True)
        return lin

    def embed(self, clip):
        self.seen_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.is_grad_enabled())
        x = torch.from_numpy(clip.frames(NEED)).float().permute(0, 3, 1, 2) / 255.0
        frames = self.model(torch.nn.functional.avg_pool2d(x, 4).flatten(1).to(self.device))
        return {"embedding": frames.mean(0), "frames": frames}


class FakeAudio(TorchBackbone):
    """Per-clip audio backbone: mean/std/abs-max of 16 kHz audio, Linear(3 → 4)."""

    name = "fake-audio"
    modality = "audio"
    weights = ("fake-audio-w",)
    extra = "audio"
    audio_rate = 16000
    metric_names = {"fd_audio": "FFAD"}

    def build(self, paths, device):
        lin = torch.nn.Linear(3, 4)
        lin.load_state_dict(torch.load(paths["fake-audio-w"], weights_only=True))
        return lin

    def embed(self, clip):
        a = torch.from_numpy(clip.audio_at(self.audio_rate))
        return {"embedding": self.model(torch.stack([a.mean(), a.std(), a.abs().max()]))}


class FakeText(TorchBackbone):
    """A text backbone: its output depends on the prompt."""

    name = "fake-text"
    modality = "text-video"
    kind = "analysis"
    weights = ("fake-video-w",)
    extra = "clip"
    uses_text = True

    def build(self, paths, device):
        return torch.nn.Identity()

    def embed(self, clip):
        return {"score": np.float32(len(clip.prompt_text))}


class NeedsMissingModule(FakeAudio):
    name = "fake-missing-module"
    requires = ("mova_bench_no_such_module_xyz",)


def _save_linear(path: Path, n_in: int, n_out: int, seed: int) -> Path:
    torch.manual_seed(seed)
    torch.save(torch.nn.Linear(n_in, n_out).state_dict(), path)
    return path


@pytest.fixture()
def weights(tmp_path):
    register_local("fake-video-w", _save_linear(tmp_path / "video.pt", 192, 6, 0))
    register_local("fake-audio-w", _save_linear(tmp_path / "audio.pt", 3, 4, 1))
    yield tmp_path
    forget_local("fake-video-w")
    forget_local("fake-audio-w")


@pytest.fixture()
def backbones():
    """Register fakes under their names and the standard ones (i3d, vggish); restore afterwards."""
    saved = dict(registry.features._entries)

    def put(name, cls):
        registry.features.register(name, cls, replace=True)

    put("fake-video", FakeVideo)
    put("fake-audio", FakeAudio)
    put("fake-text", FakeText)
    analysis._extractor_cache.clear()
    yield put
    registry.features._entries.clear()
    registry.features._entries.update(saved)
    analysis._extractor_cache.clear()


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    return make_av(tmp_path_factory.mktemp("clip") / "c.mp4", seconds=1.0, width=64, height=48)


def test_loaded_once_per_process_and_cpu_works(weights, clip_file):
    FakeVideo.builds = 0
    clip = decode(clip_file, needs=FakeVideo.video_needs)
    a, b = FakeVideo(), FakeVideo()
    out_a = a.extract(clip)  # loads on first use (cpu)
    out_b = b.extract(clip)
    b.load("cpu")
    assert FakeVideo.builds == 1
    assert sum(v for k, v in LOAD_COUNTS.items() if k[1].endswith("FakeVideo")) == 1
    assert a.model is b.model and a.device == "cpu"
    assert out_a["frames"].shape == (clip.n_frames, 6) and out_a["frames"].dtype == np.float32
    np.testing.assert_array_equal(out_a["embedding"], out_b["embedding"])
    # fp32 without TF32, under no_grad, while embedding; flags restored afterwards
    assert a.seen_tf32 == (False, False, False)
    assert torch.is_grad_enabled()
    # extract_batch = extract per clip, in order
    batch = a.extract_batch([clip, clip])
    assert len(batch) == 2 and np.array_equal(batch[1]["frames"], out_a["frames"])


def test_cache_identity_follows_the_weights_file(weights, tmp_path):
    first = FakeVideo().cache_identity()
    assert first["weights_sha256"]["fake-video-w"] and "torch" in first["libraries"]
    assert first["preprocessing"]["video_needs"] == [NEED.identity()]
    register_local("fake-video-w", _save_linear(tmp_path / "other.pt", 192, 6, 5))
    second = FakeVideo().cache_identity()
    assert second["weights_sha256"] != first["weights_sha256"]
    FakeVideo.builds = 0
    FakeVideo().load("cpu")
    assert FakeVideo.builds == 1  # new weights: a new model, not the one built from the old file


def test_available_names_the_fix(weights):
    assert FakeVideo().available() == (True, "")
    ok, fix = NeedsMissingModule().available()
    assert not ok and fix == "pip install 'mova-bench[audio]'"
    forget_local("fake-audio-w")
    ok, fix = FakeAudio().available()
    assert not ok and fix == "mova-bench weights fetch fake-audio-w"
    with pytest.raises(MissingDependencyError) as err:
        FakeAudio().load("cpu")
    assert "mova-bench weights fetch fake-audio-w" in err.value.fix


def test_devices():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as err:
            resolve_device("cuda:0")
        assert "--device cpu" in err.value.fix
    task = analysis.AnalysisTask("c", "p", "h", (analysis.ExtractorSpec("vstats"),), device="cuda")
    assert not task.wants_accelerator  # weight-free extractors never ask for a GPU


def test_text_reaches_the_extractor_and_keys_the_cache(weights, backbones, clip_file, tmp_path):
    from mova_bench.media import file_sha256

    specs = (analysis.ExtractorSpec("fake-text"), analysis.ExtractorSpec("fake-video"))
    h = file_sha256(clip_file)
    root = str(tmp_path / "cache")

    def run(text):
        return analysis.analyse_clip(analysis.AnalysisTask("c", str(clip_file), h, specs, root, True, prompt_text=text))

    first = run("a red ball bounces")
    assert first.decoded and float(first.features["fake-text"]["score"]) == len("a red ball bounces")
    again = run("a red ball bounces")
    assert not again.decoded and again.cache_hits == 2
    edited = run("a red ball bounces twice")  # editing the prompt re-extracts the text backbone only
    assert edited.decoded and edited.cache_hits == 1
    assert float(edited.features["fake-text"]["score"]) == len("a red ball bounces twice")
    none = run(None)  # no prompt: that clip's text feature is missing and says why, no crash
    assert "fake-text" not in none.features and none.missing == {"fake-text": "the clip has no prompt text"}
    assert "fake-video" in none.features
    assert analysis.AnalysisTask("c", "p", h, specs, device="cuda").wants_accelerator
    assert not analysis.AnalysisTask("c", "p", h, specs, device="cpu").wants_accelerator


def _frames_fs(blocks, backbone, prefix):
    ids = [f"{prefix}{i}" for i in range(len(blocks))]
    return FeatureSet(clip_ids=ids, features={backbone: {c: {"frames": b, "embedding": b.mean(0)} for c, b in zip(ids, blocks)}})


def test_frame_level_fd_and_kid_pool_frames_and_resample_clips(backbones):
    from mova_bench.metrics.distribution import FrechetVideo, KIDVideo, _fd_bootstrap_clips
    from mova_bench.metrics.frechet import frechet_distance, mean_cov

    rng = np.random.default_rng(0)
    gen = [rng.standard_normal((k, 3)) for k in (2, 5, 3, 4, 6, 2)]
    ref = [rng.standard_normal((k, 3)) + 0.5 for k in (3, 3, 4, 5, 2, 4)]
    res = FrechetVideo(backbone="fake-video").compute(_frames_fs(gen, "fake-video", "g"), _frames_fs(ref, "fake-video", "r"), seed=0)
    x, y = np.concatenate(gen), np.concatenate(ref)
    assert res.status == "ok" and res.n == 6 and res.extra["n_rows"] == 22 and res.extra["n_ref"] == 21
    assert res.value == pytest.approx(frechet_distance(*mean_cov(x), *mean_cov(y)), rel=1e-10)
    per_clip = frechet_distance(*mean_cov(np.stack([g.mean(0) for g in gen])), *mean_cov(np.stack([r.mean(0) for r in ref])))
    assert res.value != pytest.approx(per_clip)  # pooled frames, not clip means
    assert res.ci_low is not None and res.ci_high is not None and "frame row" in res.convention
    assert res.display_name == "FFVD [fake-video]"  # from the backbone's metric_names

    # the bootstrap draws clips: each resample = FD of the rows of the drawn clips, all frames together
    owner = np.repeat(np.arange(len(gen)), [len(g) for g in gen])
    mu_r, cov_r = mean_cov(y)
    boots = _fd_bootstrap_clips(x, owner, mu_r, cov_r, 5, seed=3)
    rng_b = np.random.default_rng([3, 0xFD, 1])
    for b in range(5):
        drawn = rng_b.integers(0, len(gen), size=len(gen))
        rows = np.concatenate([gen[i] for i in drawn])
        assert boots[b] == pytest.approx(frechet_distance(*mean_cov(rows), mu_r, cov_r), rel=1e-8, abs=1e-10)

    kid = KIDVideo(backbone="fake-video").compute(_frames_fs(gen, "fake-video", "g"), _frames_fs(ref, "fake-video", "r"), seed=0)
    from mova_bench.metrics.kid import kid_values

    assert kid.status == "ok" and kid.extra["n_rows"] == 22
    assert kid.value == pytest.approx(float(kid_values(x, y, seed=0).mean()), rel=1e-10)
    assert kid.ci_low is not None and kid.ci_low <= kid.ci_high


def test_display_name_comes_from_the_backbone(backbones):
    from mova_bench.metrics.distribution import FrechetVideo

    class I3DLike(FakeVideo):
        frame_level = False
        metric_names = {"fd_video": "FVD", "kid_video": "KVD"}

    backbones("i3d", I3DLike)
    rng = np.random.default_rng(1)

    def fs(p):
        ids = [f"{p}{i}" for i in range(10)]
        return FeatureSet(clip_ids=ids, features={"i3d": {c: {"embedding": rng.standard_normal(3)} for c in ids}})

    assert FrechetVideo(backbone="i3d").compute(fs("a"), fs("b")).display_name == "FVD [i3d]"
    assert FrechetVideo(backbone="vstats").compute(fs("a"), fs("b")).display_name.startswith("Fréchet distance")


SUITE = """\
name: tiny_bb
version: "1"
description: a small suite for backbone tests
defaults: {duration_s: 1.0, fps: 24, sample_rate: 48000, width: 64, height: 48, samples_per_prompt: 2, seed: 3}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: drum, text: "A drummer hits a snare drum in a quiet room"}
  - {id: ball, text: "A red ball bounces on a wooden floor"}
"""


@pytest.fixture()
def suite_file(tmp_path):
    p = tmp_path / "tiny_bb.yaml"
    p.write_text(SUITE)
    return p


def _run(capsys, suite_file, out, *extra):
    code = main(["run", "--model", "procedural", "--suite", str(suite_file), "--out", str(out), "--json",
                 "--executor", "local", *extra])
    o, e = capsys.readouterr()
    return code, o, e


def test_standard_with_missing_weights_exits_2_before_any_clip(backbones, suite_file, tmp_path, capsys, weights):
    backbones("i3d", FakeVideo)
    backbones("vggish", FakeAudio)
    forget_local("fake-video-w")
    forget_local("fake-audio-w")
    out = tmp_path / "runs"
    code, o, e = _run(capsys, suite_file, out, "--backbones", "standard", "--metrics", "fd_video,fd_audio,kid_audio")
    assert code == 2
    err = json.loads(o.strip().splitlines()[-1])
    assert "mova-bench weights fetch fake-video-w" in err["fix"] and "mova-bench weights fetch fake-audio-w" in err["fix"]
    assert "i3d" in err["error"] and "vggish" in err["error"]
    assert not out.exists() or not list(out.rglob("*.mp4"))  # nothing generated, no run folder
    assert not out.exists() or not any(out.iterdir())


def test_auto_skips_with_the_fix_and_standard_runs_when_present(backbones, suite_file, tmp_path, capsys, weights):
    backbones("i3d", FakeVideo)
    backbones("vggish", FakeAudio)
    forget_local("fake-audio-w")  # vggish unusable, i3d usable
    code, o, e = _run(capsys, suite_file, tmp_path / "runs", "--backbones", "auto", "--metrics", "fd_video,fd_audio",
                      "--device", "cpu")
    assert code == 0, e
    metrics = json.loads(o)["metrics"]
    assert metrics["fd_video[i3d]"]["status"] == "ok", (metrics["fd_video[i3d]"]["reason"], metrics["fd_video[i3d]"]["fix"])
    assert metrics["fd_video[i3d]"]["display_name"] == "FFVD [i3d]"
    assert metrics["fd_video[i3d]"]["extra"]["n_rows"] > metrics["fd_video[i3d]"]["n"]  # frame rows pooled
    assert metrics["fd_audio[melstats]"]["status"] == "ok"  # the weight-free fallback
    skipped = metrics["fd_audio[vggish]"]
    assert skipped["status"] == "skipped" and skipped["fix"] == "mova-bench weights fetch fake-audio-w"
    run_dir = Path(json.loads(o)["run_dir"])
    spec = json.loads(next(run_dir.glob("evals/*/eval_spec.json")).read_text())
    assert spec["device"] == "cpu" and ["i3d", {}] in spec["analysis"]

    register_local("fake-audio-w", _save_linear(tmp_path / "audio2.pt", 3, 4, 1))
    code, o, e = _run(capsys, suite_file, tmp_path / "runs", "--backbones", "standard", "--metrics", "fd_video,fd_audio,kid_audio")
    assert code == 0, e
    metrics = json.loads(o)["metrics"]
    for key in ("fd_video[i3d]", "fd_audio[vggish]", "kid_audio[vggish]"):
        assert metrics[key]["status"] == "ok" and metrics[key]["ci_low"] is not None, key
    assert metrics["fd_audio[vggish]"]["display_name"] == "FFAD [vggish]"


def test_device_and_batch_size_errors_exit_2_before_work(suite_file, tmp_path, capsys):
    out = tmp_path / "runs"
    code, o, e = _run(capsys, suite_file, out, "--batch-size", "0")
    assert code == 2 and "--batch-size" in e
    if not torch.cuda.is_available():
        code, o, e = _run(capsys, suite_file, out, "--device", "cuda")
        assert code == 2 and "--device cpu" in json.loads(o.strip().splitlines()[-1])["fix"]
    assert not out.exists() or not any(out.iterdir())


def test_cuda_device_names_are_checked_against_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda" and resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(ConfigError) as err:
        resolve_device("cuda:1")
    assert "1 CUDA device" in str(err.value) and "cuda:0" in err.value.fix


def test_classical_skips_pretrained_only_metrics_and_auto_marks_them(backbones, weights):
    from mova_bench.pipeline.scoring import compute_metrics, select_metrics

    backbones("i3d", FakeVideo)
    forget_local("fake-video-w")
    auto = {m.key: m for m in select_metrics(["fd_video", "kid_video"], "auto")}
    assert list(auto) == ["fd_video[vstats]", "fd_video[i3d]", "kid_video[vstats]", "kid_video[i3d]"]
    res = compute_metrics([auto["fd_video[i3d]"]], FeatureSet(clip_ids=[]), None, 0)["fd_video[i3d]"]
    assert res.status == "skipped" and res.fix == "mova-bench weights fetch fake-video-w"
    assert res.extra["backbone_unavailable"] is True
    # nothing is extracted for a skipped standard metric
    specs = analysis.extractor_specs(list(auto.values()), None)
    assert [s.name for s in specs] == ["vstats"]
    # classical: weight-free only, whatever is installed
    assert [m.key for m in select_metrics(["fd_video"], "classical")] == ["fd_video[vstats]"]


class TooShortForMe(FakeAudio):
    """A backbone whose window this clip cannot fill (as I3D's 16 frames on a short clip)."""

    name = "fake-too-short"

    def embed(self, clip):
        from mova_bench.features.base import FeatureMissing

        raise FeatureMissing(self.name, f"the clip has {clip.n_frames} frames; the window needs 1000")


def test_a_clip_one_backbone_cannot_embed_is_missing_for_that_backbone_only(weights, backbones, clip_file, tmp_path):
    from mova_bench.media import file_sha256

    backbones("fake-too-short", TooShortForMe)
    specs = (analysis.ExtractorSpec("fake-too-short"), analysis.ExtractorSpec("fake-audio"))
    res = analysis.analyse_clip(analysis.AnalysisTask("c", str(clip_file), file_sha256(clip_file), specs,
                                                      str(tmp_path / "cache"), True))
    assert "fake-audio" in res.features and "fake-too-short" not in res.features
    assert res.missing["fake-too-short"].startswith("too_short: fake-too-short: the clip has 24 frames")


def test_console_folds_unavailable_standard_metrics_into_one_note():
    """A default (auto) run without weights prints its weight-free metrics and one note naming the
    skipped standard keys and every command that would compute them, not a skipped line per key."""
    from mova_bench.cli import _unavailable_summary

    def skipped(fix):
        return {"status": "skipped", "reason": "not here", "fix": fix, "extra": {"backbone_unavailable": True}}

    metrics = {"fd_video[vstats]": {"status": "ok", "value": 1.0},
               "fd_video[i3d]": skipped("mova-bench weights fetch i3d-400"),
               "kid_video[i3d]": skipped("mova-bench weights fetch i3d-400"),
               "clip_score[openclip-vit-b-32]": skipped("pip install 'mova-bench[clip]'; mova-bench weights fetch openclip-vit-b-32-openai"),
               "fd_audio[vggish]": skipped("pip install 'mova-bench[audio]'; mova-bench weights fetch vggish"),
               "clap_score[laion-clap]": {"status": "skipped", "reason": "no clip has a prompt", "extra": {}}}
    hidden, line = _unavailable_summary(metrics)
    assert hidden == ["fd_video[i3d]", "kid_video[i3d]", "clip_score[openclip-vit-b-32]", "fd_audio[vggish]"]
    assert "4 standard-backbone metric(s) skipped" in line
    assert "mova-bench weights fetch NAME for i3d-400, openclip-vit-b-32-openai, vggish" in line
    assert "pip install 'mova-bench[clip,audio]'" in line and "--backbones classical" in line
    assert _unavailable_summary({"x": {"status": "ok"}}) == ([], None)
    # a licence-gated fetch keeps its flag instead of being folded into "NAME for ..."
    metrics["ib_score[imagebind]"] = skipped("pip install 'mova-bench[imagebind]'; "
                                             "mova-bench weights fetch imagebind-huge --accept-license")
    _, line = _unavailable_summary(metrics)
    assert "mova-bench weights fetch imagebind-huge --accept-license" in line
    assert "NAME for i3d-400, openclip-vit-b-32-openai, vggish;" in line and "--accept-license," not in line


def test_missing_fixes_on_class_and_instance_and_licence_flag(tmp_path, monkeypatch):
    """One ``missing_fixes`` for every backbone: on an instance it names the weights its parameters
    chose, on the class the defaults; a licence-gated file's fetch carries --accept-license."""
    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for var in ("MOVA_BENCH_WEIGHTS_FILE", "HF_HOME", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    from mova_bench.features.imagebind import ImageBind
    from mova_bench.features.panns import PannsCnn14
    from mova_bench.features.synchformer import Synchformer
    from mova_bench.features.vggish import Vggish

    assert "mova-bench weights fetch synchformer --accept-license" in Synchformer.missing_fixes()
    assert "mova-bench weights fetch imagebind-huge --accept-license" in ImageBind().missing_fixes()
    assert "mova-bench weights fetch vggish" in Vggish.missing_fixes()  # CC-free licence: no flag
    assert not any("--accept-license" in f for f in Vggish.missing_fixes())
    assert "mova-bench weights fetch panns-cnn14-16k" in PannsCnn14.missing_fixes()
    assert "mova-bench weights fetch panns-cnn14-32k" in PannsCnn14(sample_rate=32000).missing_fixes()


def test_list_backbones_says_what_is_ready_and_what_each_needs(tmp_path, monkeypatch, capsys):
    import json

    from mova_bench.cli import main

    monkeypatch.setenv("MOVA_BENCH_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for var in ("MOVA_BENCH_WEIGHTS_FILE", "HF_HOME", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert main(["list", "backbones"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()[1:]}
    assert lines["vstats"].endswith("ready") and "classical" in lines["vstats"]
    assert lines["imagebind"].endswith("needs: mova-bench weights fetch imagebind-huge --accept-license")
    assert "standard" in lines["i3d"] and "I3D" in lines["i3d"]
    assert main(["list", "backbones", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["vggish"]["available"] is False and rows["vggish"]["weights"] == ["vggish"]
    assert rows["vstats"]["display_name"] and "available" not in rows["vstats"]


def test_cached_text_embeddings_embed_each_new_text_once_and_survive_eviction(monkeypatch):
    from types import SimpleNamespace

    from mova_bench.features import base

    calls = []

    def embed(texts):
        calls.append(list(texts))
        return [f"e({t})" for t in texts]

    owner = SimpleNamespace(model=object(), device="cpu", _text_cache={})
    assert base.cached_text_embeddings(owner, ["a", "b", "a"], embed) == ["e(a)", "e(b)", "e(a)"]
    assert base.cached_text_embeddings(owner, ["b", "c"], embed) == ["e(b)", "e(c)"]
    assert calls == [["a", "b"], ["c"]]  # one pass per call, only for texts not cached yet
    owner.device = "cuda:0"  # another device: embedded again
    assert base.cached_text_embeddings(owner, ["a"], embed) == ["e(a)"] and calls[-1] == ["a"]
    monkeypatch.setattr(base, "TEXT_CACHE_SIZE", 4)
    # the cache is full: it is emptied, and every text asked for (cached ones too) comes back
    assert base.cached_text_embeddings(owner, ["b", "x", "y"], embed) == ["e(b)", "e(x)", "e(y)"]
    assert calls[-1] == ["b", "x", "y"] and len(owner._text_cache) == 3
