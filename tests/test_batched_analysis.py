"""Several clips per analysis task: pretrained backbones embed a chunk of clips per forward pass.

Checks that batching changes nothing but speed: ``extract_batch`` of I3D and OpenCLIP equals their
per-clip ``extract`` to 1e-5 (random weights built as in their own test modules), ``analyse_set``
with chunks writes the same cache entries and features as one clip per task, a corrupt clip or a
clip whose extraction raises fails alone with the reason a task of its own would give, and a
backbone's model is built once per process across chunks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
pytest.importorskip("cdfvd.third_party.i3d.pytorch_i3d")

from conftest import make_av  # noqa: E402
from test_backbone_i3d import _random_reference_state  # noqa: E402
from test_backbone_openclip import FakeClip, TinyClip, _frames, backbone, reference, weight_files  # noqa: E402,F401

from mova_bench import weights  # noqa: E402
from mova_bench.executors import TaskFailure  # noqa: E402
from mova_bench.executors.local import LocalExecutor  # noqa: E402
from mova_bench.features.base import LOAD_COUNTS, FeatureMissing, TorchBackbone  # noqa: E402
from mova_bench.features.i3d import I3D  # noqa: E402
from mova_bench.media import VideoNeed, file_sha256  # noqa: E402
from mova_bench.pipeline import analysis  # noqa: E402
from mova_bench.registry import features as feature_registry  # noqa: E402

ATOL = 1e-5
TINY_CLIP = "openclip-test-tiny"
#: I3D with its shortest window (9 frames, every 2nd: spans 17, so a 0.5 s clip at 24 fps is too short)
I3D_SPEC_PARAMS = (("frames", 9), ("stride", 2))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def i3d_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(_random_reference_state(), path)
    weights.register_local("i3d-400", path)
    yield path
    weights.forget_local("i3d-400")


class FrameClip:
    """What I3D reads from a decoded clip: native frames (T, H, W, 3)."""

    def __init__(self, frames):
        self.video = frames
        self.prompt_text = None

    def frames(self, need):
        return self.video[: need.max_frames] if need.max_frames else self.video


def _video(n, h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


class Probe(TorchBackbone):
    """A weight-free torch backbone that counts builds and batch calls; a clip whose prompt is
    ``"boom"`` raises while being embedded (and so does any batch holding it)."""

    name = "probe-backbone"
    weights = ()
    uses_text = True
    text_optional = True
    video_needs = (VideoNeed("exact", (16, 16), "bilinear"),)
    builds = 0
    batches: list[int] = []

    @classmethod
    def default_params(cls):
        return {"tag": ""}

    def build(self, paths, device):
        type(self).builds += 1
        return torch.nn.Identity()

    def embed(self, clip):
        if clip.prompt_text == "boom":
            raise RuntimeError("cannot embed this clip (simulated)")
        x = torch.from_numpy(clip.frames(self.video_needs[0])).float()
        return {"embedding": self.model(x.mean(dim=(0, 1, 2)))}

    def embed_batch(self, clips):
        type(self).batches.append(len(clips))
        return super().embed_batch(clips)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Five real MP4s of different sizes and lengths (one too short for the 16-frame I3D window)."""
    d = tmp_path_factory.mktemp("batched-clips")
    shapes = [(1.0, 96, 64), (1.0, 64, 48), (0.5, 96, 64), (1.2, 80, 64), (1.0, 96, 64)]
    rows = []
    for i, (seconds, w, h) in enumerate(shapes):
        path = make_av(d / f"c{i}.mp4", seconds=seconds, fps=24.0, width=w, height=h, events=(0.2 + 0.1 * i,))
        rows.append({"clip_id": f"c{i}", "path": str(path), "content_hash": file_sha256(path), "status": "ok",
                     "prompt_text": ["a flash", "a drum hit", None, "a flash", "rain on a roof"][i]})
    return rows


@pytest.fixture()
def registered(backbone, i3d_weights):
    feature_registry.register(TINY_CLIP, TinyClip, replace=True)
    feature_registry.register(Probe.name, Probe, replace=True)
    yield


class RecordingExecutor(LocalExecutor):
    """The local executor, recording what each map call was given."""

    def __init__(self, workers=None):
        super().__init__()
        if workers is not None:
            self.workers = workers
        self.calls: list[tuple[str, list]] = []

    def map(self, fn, items, *, desc=""):
        items = list(items)
        self.calls.append((fn.__name__, items))
        return super().map(fn, items, desc=desc)


def _run(rows, specs, home, monkeypatch, *, batched, batch_size=None, executor=None):
    monkeypatch.setenv("MOVA_BENCH_HOME", str(home))
    rows = [dict(r) for r in rows]
    ex = executor or RecordingExecutor()
    with analysis.runtime(device="cpu", batch_size=batch_size):
        fs, stats = analysis.analyse_set(rows, specs, ex, desc="analysing", batched=batched)
    return fs, stats, rows, ex


def _cache_entries(home: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for p in sorted((home / "features").rglob("*.npz")):
        with np.load(p, allow_pickle=False) as z:
            out[p.name] = {k: z[k] for k in z.files}
    return out


def _assert_close(a: dict, b: dict, what: str):
    assert set(a) == set(b), what
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape and x.dtype == y.dtype, f"{what}[{k}]"
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=ATOL, atol=ATOL, equal_nan=True, err_msg=f"{what}[{k}]")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{what}[{k}]")


# --------------------------------------------------------------------------- backbones: batch == per clip


def test_i3d_batch_equals_per_clip_and_keeps_short_clips_missing(i3d_weights):
    ex = I3D(frames=9)  # the shortest window I3D accepts: the same network, half the compute of 16 frames
    ex.load("cpu")
    clips = [FrameClip(_video(9, 64, 96, 0)), FrameClip(_video(8, 64, 96, 1)),  # too short: missing in place
             FrameClip(_video(12, 72, 128, 3))]
    single = []
    for c in clips:
        try:
            single.append(ex.extract(c))
        except FeatureMissing as exc:
            single.append(exc)
    assert isinstance(single[1], FeatureMissing)
    ex.batch_size = 2  # both windows in one forward (without a batch size the CPU runs one clip per forward)
    batch = ex.extract_batch(clips)
    ex.batch_size = None
    assert len(batch) == 3 and isinstance(batch[1], FeatureMissing) and "8 frames" in batch[1].detail
    for i in (0, 2):
        assert batch[i]["embedding"].shape == (400,) and batch[i]["embedding"].dtype == np.float32
        np.testing.assert_allclose(batch[i]["embedding"], single[i]["embedding"], rtol=ATOL, atol=ATOL)
    assert np.abs(single[0]["embedding"] - single[2]["embedding"]).max() > 1e-2  # clips differ: the check means something


def test_openclip_batch_equals_per_clip_frames_and_texts(backbone):
    prompts = ["a flash of light", None, "a drum hit", "a flash of light", "thunder over the hills " * 30]  # repeated, none, truncated
    clips = [FakeClip(_frames(n, h, w, seed=i), p) for i, (n, h, w, p) in
             enumerate([(3, 352, 640, prompts[0]), (1, 128, 128, prompts[1]), (4, 96, 160, prompts[2]),
                        (2, 352, 640, prompts[3]), (3, 64, 64, prompts[4])])]
    backbone._text_cache.clear()
    single = [backbone.extract(c) for c in clips]
    for batch_size in (None, 3):  # 3 frames per forward: slices cross clip boundaries
        backbone._text_cache.clear()  # the texts are embedded by the batched pass itself
        backbone.batch_size = batch_size
        batch = backbone.extract_batch(clips)
        assert len(batch) == len(clips)
        for i, (b, s) in enumerate(zip(batch, single)):
            _assert_close(b, s, f"clip {i} batch_size={batch_size}")
    backbone.batch_size = None
    assert single[1]["has_text"] == 0 and single[4]["text_truncated"] == 1
    assert np.abs(single[0]["clip_score_frames"][0] - single[2]["clip_score_frames"][0]) > 1e-4


class AudioClip:
    """What an audio backbone reads from a decoded clip: mono audio at a given rate."""

    def __init__(self, audio, sr):
        self.audio, self.sr = audio, sr
        self.prompt_text = None

    def audio_at(self, sr):
        assert sr == self.sr
        return self.audio


def test_inception_batch_equals_per_clip_across_frame_sizes(tmp_path):
    pytest.importorskip("torch_fidelity")
    from test_backbone_inception import FILENAME, _random_torch_fidelity_state

    from mova_bench.features.inception import InceptionV3

    path = tmp_path / FILENAME
    torch.save(_random_torch_fidelity_state(tmp_path), path)
    weights.register_local("inception-v3", path)
    try:
        ex = InceptionV3()
        ex.load("cpu")
        clips = [FrameClip(_video(2, 72, 128, 0)), FrameClip(_video(0, 72, 128, 1)),  # no frames: missing in place
                 FrameClip(_video(1, 96, 96, 2)), FrameClip(_video(2, 72, 128, 3))]
        single = [ex.extract(c) if len(c.video) else None for c in clips]
        ex.batch_size = 3  # frames per forward: the two 72x128 clips share one, split across it
        batch = ex.extract_batch(clips)
        ex.batch_size = None
    finally:
        weights.forget_local("inception-v3")
    assert isinstance(batch[1], FeatureMissing) and batch[1].reason == "no_video_stream"
    for i in (0, 2, 3):
        _assert_close(batch[i], single[i], f"inception clip {i}")
    assert np.abs(single[0]["embedding"] - single[3]["embedding"]).max() > 1e-3


def test_vggish_batch_equals_per_clip_and_keeps_short_audio_missing(tmp_path):
    pytest.importorskip("torchvggish")
    from test_backbone_vggish import _signal, reference_vggish

    from mova_bench.features.vggish import Vggish

    path = tmp_path / "vggish-random.pth"
    torch.save(reference_vggish().state_dict(), path)
    weights.register_local("vggish", path)
    try:
        ex = Vggish()
        ex.load("cpu")
        clips = [AudioClip(_signal(2.1, seed=0), 16000), AudioClip(_signal(0.5, seed=1), 16000),  # < 0.96 s
                 AudioClip(_signal(3.0, seed=2), 16000)]
        single = [ex.extract(c) for c in clips]
        ex.batch_size = 2  # examples per forward, across clip boundaries
        batch = ex.extract_batch(clips)
        ex.batch_size = None
    finally:
        weights.forget_local("vggish")
    assert batch[2]["frames"].shape == (3, 128)
    for i in range(3):
        _assert_close(batch[i], single[i], f"vggish clip {i}")
    assert np.abs(single[0]["embedding"] - single[2]["embedding"]).max() > 1e-4


def test_panns_batch_groups_equal_lengths_and_equals_per_clip(tmp_path):
    pytest.importorskip("panns_inference")
    from test_backbone_panns import _signal as panns_signal
    from test_backbone_panns import reference_cnn14_builder

    from mova_bench.features.panns import PannsCnn14

    (tmp_path / "home").mkdir()
    path = tmp_path / "Cnn14_16k_random.pth"
    torch.save({"model": reference_cnn14_builder(tmp_path / "home")(16000, seed=7).state_dict()}, path)
    weights.register_local("panns-cnn14-16k", path, layout="model")
    try:
        ex = PannsCnn14()
        ex.load("cpu")
        seconds = (2.0, 2.0, 0.05, 3.0, 2.0)  # three clips of one length share forwards; 0.05 s is too short
        clips = [AudioClip(panns_signal(s, 16000, seed=i), 16000) for i, s in enumerate(seconds)]
        single = [ex.extract(c) for c in clips]
        ex.batch_size = 2  # clips per forward: the 2 s group needs two
        batch = ex.extract_batch(clips)
        ex.batch_size = None
    finally:
        weights.forget_local("panns-cnn14-16k")
    assert "missing_reason" in batch[2] and np.isnan(batch[2]["embedding"]).all()
    for i in range(5):
        _assert_close(batch[i], single[i], f"panns clip {i}")
    assert np.abs(single[0]["logits"] - single[1]["logits"]).max() > 1e-4


try:  # the LAION-CLAP environment of its own tests (reference patched, random checkpoints registered)
    from test_backbone_clap import FakeClip as ClapClip  # noqa: E402
    from test_backbone_clap import _signal as clap_signal  # noqa: E402
    from test_backbone_clap import env  # noqa: E402,F401
except (ImportError, pytest.skip.Exception):
    ClapClip = None


@pytest.mark.skipif(ClapClip is None, reason="laion-clap is not installed (pip install 'mova-bench[clap]')")
@pytest.mark.parametrize("ck", ["630k-audioset-fusion"])  # MOVA's; its longer-clip branch is per row too
def test_clap_batch_equals_per_clip_audio_and_texts(env, ck):
    bb = env["ours"][ck]
    clips = [ClapClip(clap_signal(8.04, seed=0), "a drum"), ClapClip(clap_signal(3.0, seed=1), None),
             ClapClip(clap_signal(12.5, seed=2), "the drum"), ClapClip(clap_signal(8.04, seed=3), "a drum")]  # longer: cropped
    bb._text_cache.clear()
    single = [bb.extract(c) for c in clips]
    for batch_size in (None, 3):
        bb._text_cache.clear()
        bb.batch_size = batch_size
        batch = bb.extract_batch(clips)
        for i, (b, s) in enumerate(zip(batch, single)):
            _assert_close(b, s, f"{ck} clip {i} batch_size={batch_size}")
    bb.batch_size = None
    assert single[2]["cropped"] == 1 and single[1]["has_text"] == 0
    assert abs(float(single[0]["clap_score"]) - float(single[3]["clap_score"])) > 1e-6


# --------------------------------------------------------------------------- analyse_set: chunks == one clip per task


def test_chunked_analysis_equals_one_clip_per_task(registered, clips, tmp_path, monkeypatch):
    specs = (analysis.ExtractorSpec("i3d", I3D_SPEC_PARAMS), analysis.ExtractorSpec(TINY_CLIP), analysis.ExtractorSpec("vstats"))
    fs_a, stats_a, rows_a, ex_a = _run(clips, specs, tmp_path / "single", monkeypatch, batched=False, batch_size=2)
    fs_b, stats_b, rows_b, ex_b = _run(clips, specs, tmp_path / "chunked", monkeypatch, batched=True, batch_size=2)
    assert [name for name, _ in ex_a.calls] == ["analyse_clip"] and len(ex_a.calls[0][1]) == 5
    assert [name for name, _ in ex_b.calls] == ["analyse_chunk"]
    assert [len(c.tasks) for c in ex_b.calls[0][1]] == [2, 2, 1]  # batch_size clips per task, manifest order
    assert fs_a.clip_ids == fs_b.clip_ids == [r["clip_id"] for r in clips]
    assert stats_a == stats_b and stats_b["decoded"] == 5
    assert stats_b["missing"]["c2"].keys() == {"i3d", TINY_CLIP}  # too short for I3D, and no prompt
    for name in fs_a.features:
        assert fs_a.features[name].keys() == fs_b.features[name].keys()
        for cid in fs_a.features[name]:
            _assert_close(fs_a.features[name][cid], fs_b.features[name][cid], f"{name}/{cid}")
    entries_a, entries_b = _cache_entries(tmp_path / "single"), _cache_entries(tmp_path / "chunked")
    assert len(entries_a) == 4 * 3 + 1  # c2 has vstats only
    assert entries_a.keys() == entries_b.keys()  # the same cache keys
    for key in entries_a:
        _assert_close(entries_a[key], entries_b[key], key)
    # a warm rerun reads the cache in the driver; only the clip with a missing feature runs again
    fs_c, stats_c, _, ex_c = _run(clips, specs, tmp_path / "chunked", monkeypatch, batched=True, batch_size=2)
    assert [[t.clip_id for t in c.tasks] for c in ex_c.calls[0][1]] == [["c2"]]
    assert stats_c["decoded"] == 1 and stats_c["cache_hits"] == 13


def test_corrupt_clip_and_raising_clip_fail_alone(registered, clips, tmp_path, monkeypatch):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 4000)  # a header, then garbage
    rows = [dict(clips[0]), {"clip_id": "bad", "path": str(bad), "content_hash": file_sha256(bad), "status": "ok",
                             "prompt_text": "a flash"}, dict(clips[1]), dict(clips[3], prompt_text="boom")]
    specs = (analysis.ExtractorSpec("i3d", I3D_SPEC_PARAMS), analysis.ExtractorSpec(Probe.name, (("tag", "fail"),)))
    Probe.batches = []
    _, _, single, _ = _run(rows, specs, tmp_path / "single", monkeypatch, batched=False)
    fs, _, chunked, ex = _run(rows, specs, tmp_path / "chunked", monkeypatch, batched=True, batch_size=4)
    assert [len(c.tasks) for c in ex.calls[0][1]] == [4]
    assert Probe.batches == [3]  # the decodable clips in one call; it raised, so they ran one by one
    for a, b in zip(single, chunked):  # each row's status, error and reason as with one clip per task
        assert (a["status"], a.get("reason"), a.get("error")) == (b["status"], b.get("reason"), b.get("error"))
    by_id = {r["clip_id"]: r for r in chunked}
    assert by_id["bad"]["status"] == "failed" and by_id["bad"]["reason"] in {"truncated", "not_media", "decode_error"}
    assert by_id["c3"]["status"] == "failed" and by_id["c3"]["reason"] == "error"
    assert "cannot embed this clip" in by_id["c3"]["error"]
    assert fs.clip_ids == ["c0", "c1"]  # the other clips of the chunk keep their features
    assert set(fs.features["i3d"]) == {"c0", "c1"} and set(fs.features[Probe.name]) == {"c0", "c1"}


def test_model_loads_once_per_process_across_chunks(registered, clips, tmp_path, monkeypatch):
    specs = (analysis.ExtractorSpec(Probe.name, (("tag", "load-once"),)),)
    before = Probe.builds
    Probe.batches = []
    fs, _, _, ex = _run(clips, specs, tmp_path / "home", monkeypatch, batched=True, batch_size=2)
    assert len(ex.calls[0][1]) == 3 and Probe.batches == [2, 2, 1]
    assert Probe.builds - before == 1
    keys = [k for k in LOAD_COUNTS if k[1] == "Probe" and "load-once" in k[2]]
    assert len(keys) == 1 and LOAD_COUNTS[keys[0]] == 1
    assert len(fs.clip_ids) == 5


def test_weight_free_analyses_keep_one_clip_per_task_and_chunks_follow_the_device(registered, clips, tmp_path,
                                                                                   monkeypatch):
    _, _, _, ex = _run(clips, (analysis.ExtractorSpec("vstats"),), tmp_path / "home", monkeypatch, batched=True)
    assert [name for name, _ in ex.calls] == ["analyse_clip"]
    assert analysis.chunk_size("cpu", None) == 4 and analysis.chunk_size("cuda:0", None) == 8
    assert analysis.chunk_size("cpu", 3) == 3
    with pytest.raises(ValueError, match="batch_size=0"):
        analysis.chunk_size("cpu", 0)
    # with a known worker count, chunks shrink so that every worker gets one
    tasks = [analysis.AnalysisTask(f"t{i}", "p", "h", (analysis.ExtractorSpec("i3d"),), batch_size=8) for i in range(8)]
    sizes = [len(c.tasks) for c in analysis._chunks(tasks, tasks[0].extractors, RecordingExecutor(workers=4))]
    assert sizes == [2, 2, 2, 2]
    assert [len(c.tasks) for c in analysis._chunks(tasks, tasks[0].extractors, RecordingExecutor())] == [8]


def test_a_chunk_whose_task_dies_is_retried_clip_by_clip(registered, clips, tmp_path, monkeypatch):
    class DyingChunks(RecordingExecutor):
        def map(self, fn, items, *, desc=""):
            items = list(items)
            if fn is analysis.analyse_chunk:
                self.calls.append((fn.__name__, items))
                return iter([(c, TaskFailure("the worker running the task died", reason="worker_died")) for c in items])
            return super().map(fn, items, desc=desc)

    specs = (analysis.ExtractorSpec(Probe.name, (("tag", "retry"),)),)
    fs, _, rows, ex = _run(clips, specs, tmp_path / "home", monkeypatch, batched=True, batch_size=2,
                           executor=DyingChunks())
    assert [name for name, _ in ex.calls] == ["analyse_chunk", "analyse_clip"] and len(ex.calls[1][1]) == 5
    assert all(r["status"] == "ok" for r in rows) and len(fs.clip_ids) == 5
