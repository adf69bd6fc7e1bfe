"""mova-tiny: a learned, guidance-controlled generator whose sampling needs numpy alone.

What is checked here: the committed checkpoints are the ones the model card names (SHA-256, size)
and are plain safetensors (no pickle); the numpy network equals the torch network it was trained
as (1e-5, on both checkpoints, through a whole guided sampling run); the latent space is complete
(a world's own plan, encoded and decoded, renders the oracle's clip exactly); clips are
deterministic (same seed → the same MP4 bytes); parameters and requests are validated before any
work; and, end to end through ``mova_bench.cli.main`` on small suites, the guidance sweep shows
its trade-off and the regression gate catches the early checkpoint while passing a reseeded run
of the final one.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from mova_bench.errors import ConfigError
from mova_bench.generators.base import ClipRequest
from mova_bench.generators.tiny import latent as L
from mova_bench.generators.tiny import safetensors_io
from mova_bench.generators.tiny.generator import CHECKPOINT_DIR, MovaTinyGenerator, load_model
from mova_bench.generators.tiny.model_np import sample, text_batch

ROOT = Path(__file__).resolve().parent.parent
CARD = ROOT / "models" / "mova-tiny.yaml"
CHECKPOINTS = ("final", "step-500")


def card_doc() -> dict:
    return yaml.safe_load(CARD.read_text())


def make_generator(**params) -> MovaTinyGenerator:
    from mova_bench.cards import load_card

    card = load_card("mova-tiny")
    return MovaTinyGenerator(card_defaults=card.defaults, card=card, **params)


def request(prompt: str, seed: int = 0, **kw) -> ClipRequest:
    geo = dict(duration_s=4.0, fps=24.0, sample_rate=16000, width=64, height=48)
    geo.update(kw)
    return ClipRequest("c", "p", prompt, seed, 0, **geo)


# --------------------------------------------------------------------------- checkpoints and card


def test_checkpoints_match_the_card_and_are_small():
    doc = card_doc()
    assert doc["name"] == "mova-tiny" and doc["learned"] is True
    assert doc["generation"]["duration_s"] == 4
    for name in CHECKPOINTS:
        path = CHECKPOINT_DIR / f"{name}.safetensors"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == doc["defaults"][f"sha256_{name}"], name
        assert len(data) <= 5 * 1024 * 1024, (name, len(data))
        # safetensors: 8-byte little-endian header length, a JSON header, raw buffers; no pickle
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        meta = header.pop("__metadata__")
        assert meta["format"] == "mova-tiny" and int(meta["step"]) > 0
        assert all(v["dtype"] == "F32" for v in header.values())
        assert b"\x80\x04\x95" not in data[: 8 + n]  # no pickle protocol-4 frame in the header
    steps = {name: int(load_model(CHECKPOINT_DIR / f"{name}.safetensors")[1]["step"]) for name in CHECKPOINTS}
    assert steps["step-500"] == 500 and steps["final"] > 500


def test_safetensors_reader_roundtrip_and_rejects_garbage(tmp_path):
    t = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5, -2.0]), "i": np.array([3], np.int64)}
    safetensors_io.save(tmp_path / "x.safetensors", t, {"k": "v"})
    back, meta = safetensors_io.load(tmp_path / "x.safetensors")
    assert meta == {"k": "v"} and set(back) == set(t)
    for k in t:
        assert back[k].dtype == t[k].dtype and np.array_equal(back[k], t[k])
    (tmp_path / "bad").write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(safetensors_io.SafetensorsError):
        safetensors_io.load(tmp_path / "bad")
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "short").write_bytes(struct.pack("<Q", len(hdr)) + hdr + b"\0" * 8)
    with pytest.raises(safetensors_io.SafetensorsError):
        safetensors_io.load(tmp_path / "short")


# --------------------------------------------------------------------------- numpy == torch


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_numpy_inference_equals_the_torch_forward_pass(name):
    torch = pytest.importorskip("torch")
    from mova_bench.generators.tiny.torch_model import TinyMova

    model, meta = load_model(CHECKPOINT_DIR / f"{name}.safetensors")
    tensors, _ = safetensors_io.load(CHECKPOINT_DIR / f"{name}.safetensors")
    net = TinyMova(model.c)
    net.load_numpy(tensors)  # float32, as trained
    prompts = ["A basketball bouncing on the polished wooden floor of an empty gym.",
               "Distant lightning flickers on the horizon at dusk; the low rumble of thunder arrives seconds later.",
               "A wine glass falls off a table and shatters into pieces."]
    rng = np.random.default_rng(0)
    xv, xa = rng.standard_normal((3, L.VIDEO_DIM)), rng.standard_normal((3, L.AUDIO_DIM))
    tau = np.array([0.05, 0.5, 0.95])
    keep = np.array([True, False, True])
    idx, wt = text_batch(prompts)
    vn, an = model.velocity(xv, xa, tau, model.encode_text(idx, wt, keep))
    f = torch.float32
    with torch.no_grad():
        vt, at = net(torch.tensor(xv, dtype=f), torch.tensor(xa, dtype=f), torch.tensor(tau, dtype=f),
                     torch.tensor(idx), torch.tensor(wt, dtype=f), torch.tensor(keep))
    assert np.abs(vt.numpy() - vn).max() < 1e-5 and np.abs(at.numpy() - an).max() < 1e-5
    assert np.abs(vn).max() > 0.1  # a trained network, not zeros

    # a whole guided sampling run: the torch network driven by the same Euler/CFG loop
    s, steps = 3.0, 8
    prompt = prompts[1]
    nv, na = rng.standard_normal(L.VIDEO_DIM), rng.standard_normal(L.AUDIO_DIM)
    zv, za = sample(model, prompt, nv, na, steps=steps, guidance_scale=s)
    i1, w1 = text_batch([prompt])
    ti, tw = torch.tensor(np.repeat(i1, 2, 0)), torch.tensor(np.repeat(w1, 2, 0), dtype=f)
    tk = torch.tensor([True, False])
    x_v, x_a = torch.tensor(nv[None], dtype=f), torch.tensor(na[None], dtype=f)
    with torch.no_grad():
        for i in range(steps):
            vv, va = net(x_v.repeat(2, 1), x_a.repeat(2, 1), torch.full((2,), i / steps, dtype=f), ti, tw, tk)
            x_v = x_v + (vv[1:] + s * (vv[:1] - vv[1:])) / steps
            x_a = x_a + (va[1:] + s * (va[:1] - va[1:])) / steps
    assert np.abs(x_v[0].numpy() - zv).max() < 1e-5 and np.abs(x_a[0].numpy() - za).max() < 1e-5


# --------------------------------------------------------------------------- latents, determinism, validation


@pytest.mark.parametrize("prompt", [
    "A drummer plays a simple pattern on two tom drums under a warm stage spotlight.",
    "A storm at night, lightning illuminating the rain-soaked valley while thunder rolls through.",
    "A jazz duo, a drummer hitting a snare drum while a pianist plays short notes.",
    "Ocean waves rolling towards the shore on a calm afternoon, seen from the beach.",
])
def test_a_worlds_plan_encoded_and_decoded_renders_the_oracles_clip(prompt):
    """The latent space is complete and the decoder is the world's renderer: the training target
    of a (prompt, seed), decoded, gives the procedural generator's clip sample for sample."""
    from mova_bench.generators.procedural import ProceduralGenerator
    from mova_bench.generators.world import Geometry, World

    req = request(prompt, seed=3, width=96, height=64)
    g = Geometry(96, 64, 96, 24.0, 16000, 64000, 4.0)
    v, a = L.encode_world(World(prompt, 3, g))
    video, audio = L.LatentWorld(prompt, 3, g, L.decode(v, a, g)).render()
    oracle = ProceduralGenerator().generate(req)
    assert np.array_equal(video, oracle.video)
    assert np.array_equal(np.clip(audio, -0.95, 0.95).astype(np.float32), oracle.audio)


def test_decoding_any_latent_renders_a_clip():
    from mova_bench.generators.world import Geometry

    g = Geometry(96, 36, 64, 24.0, 8000, 32000, 4.0)
    rng = np.random.default_rng(1)
    for i in range(20):
        d = L.decode(rng.normal(0, 3, L.VIDEO_DIM), rng.normal(0, 3, L.AUDIO_DIM), g)
        video, audio = L.LatentWorld("x", i, g, d).render()
        assert video.shape == (96, 36, 64, 3) and audio.shape == (32000,) and np.isfinite(audio).all()


def test_same_seed_same_clip_bytes(tmp_path):
    from mova_bench.generators.tiny import generator as gen_mod
    from mova_bench.media import write_mp4

    prompt = "A yellow tennis ball bounces several times on a hard court, each bounce a crisp thud."
    clips = []
    for _ in range(2):
        gen_mod._cache.clear()  # a fresh load of the checkpoint each time
        gen = make_generator(guidance_scale=2.0)
        gen.check_available()
        gen.load()
        clips.append(gen.generate(request(prompt, seed=7)))
    a, b = clips
    timing = ("sample_s", "render_s")
    assert np.array_equal(a.video, b.video) and np.array_equal(a.audio, b.audio)
    assert {k: v for k, v in a.info.items() if k not in timing} == {k: v for k, v in b.info.items() if k not in timing}
    paths = []
    for i, c in enumerate(clips):
        paths.append(tmp_path / f"{i}.mp4")
        write_mp4(paths[-1], c.video, c.fps, c.audio, c.sample_rate)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = make_generator(guidance_scale=2.0).generate(request(prompt, seed=8))
    assert not np.array_equal(other.video, a.video)
    info = a.info
    assert info["learned"] is True and info["checkpoint"] == "final" and info["guidance_scale"] == 2.0
    assert info["checkpoint_sha256"] == card_doc()["defaults"]["sha256_final"]
    assert info["scene"] == "ball" and info["video_events"] and len(info["video_events"]) == len(info["audio_events"])


def test_parameters_and_requests_are_validated():
    with pytest.raises(ConfigError):
        make_generator(guidance_scale=-1)
    with pytest.raises(ConfigError):
        make_generator(steps=0)
    with pytest.raises(ConfigError):
        make_generator(temperature=2)
    with pytest.raises(ConfigError, match="4 s"):
        make_generator().validate_request(request("a drum", duration_s=2.0))


def test_missing_or_altered_checkpoints_exit_2_before_any_work(tmp_path, monkeypatch, capsys):
    from mova_bench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model", "mova-tiny", "--suite", "impacts_set", "--set", "checkpoint=step-1",
                 "--out", str(tmp_path / "runs")]) == 2
    assert "step-500" in capsys.readouterr().err
    doc = card_doc()
    doc["defaults"]["sha256_final"] = "0" * 64
    card = tmp_path / "tiny-bad.yaml"
    card.write_text(yaml.safe_dump(doc))
    assert main(["run", "--model", str(card), "--suite", "impacts_set", "--out", str(tmp_path / "runs")]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_sampling_needs_no_torch(tmp_path):
    """What `make demo` installs has no torch: generating a clip must not import it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.') or name == 'safetensors':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from mova_bench.cards import load_card\n"
        "from mova_bench.generators.base import ClipRequest\n"
        "card = load_card('mova-tiny')\n"
        "gen = card.adapter_class()(card_defaults=card.defaults, card=card)\n"
        "gen.check_available(); gen.load()\n"
        "clip = gen.generate(ClipRequest('c', 'p', 'A person claps their hands', 0, 0, 4.0, 24.0, 16000, 64, 48))\n"
        "assert clip.video.shape == (96, 48, 64, 3) and 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --------------------------------------------------------------------------- end to end: sweep and gate

GUIDANCE_SUITE = """\
name: tiny_guidance_set
version: 1
description: mova-tiny guidance sweep and regression gate (4 s is the model's canvas)
defaults: {duration_s: 4, fps: 24, sample_rate: 16000, width: 96, height: 64, samples_per_prompt: 3, seed: 0,
           sync_max_lag_ms: 2000}
reference: {kind: procedural, samples_per_prompt: 2}
prompts:
  - {id: near, text: "Lightning hits a radio tower nearby and a sharp thunderclap echoes across the rooftops.",
     expected_offset_ms: [25, 120]}
  - {id: snare, text: "Close-up of a drummer hitting a snare drum with a wooden stick, slow steady hits."}
  - {id: claps, text: "A person claps their hands slowly in front of a plain wall."}
  - {id: glass, text: "Glass bottles smash one after another on a kitchen counter."}
"""
METRICS = "fd_video,fd_audio,sync_offset_abs_ms,in_sync_rate"
GATES = ("--fail-on", "in_sync_rate:0.2", "--fail-on", "sync_offset_abs_ms:+20")


def cli_json(capsys, *argv) -> tuple[int, dict]:
    from mova_bench.cli import main

    code = main([str(a) for a in argv] + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture(scope="module")
def guidance_sweep(tmp_path_factory):
    """``sweep --param guidance_scale=0,1,4`` on a 4-prompt × 3-sample suite (one shared --out, so
    the gate's baseline is the sweep's guidance 1 run)."""
    root = tmp_path_factory.mktemp("tiny")
    suite = root / "tiny_guidance_set.yaml"
    suite.write_text(GUIDANCE_SUITE)
    return suite, root / "runs"


@pytest.mark.slow
def test_guidance_sweep_improves_then_degrades(guidance_sweep, capsys):
    suite, out = guidance_sweep
    code, doc = cli_json(capsys, "sweep", "--model", "mova-tiny", "--suite", suite, "--param", "guidance_scale=0,1,4",
                         "--metrics", METRICS, "--out", out)
    assert code == 0, doc
    m = {float(p["values"]["guidance_scale"]): p["metrics"] for p in doc["points"]}
    assert sorted(m) == [0.0, 1.0, 4.0]
    sync = {s: m[s]["in_sync_rate"] for s in m}
    # the share of clips in sync (BT.1359) rises from the unconditional model (guidance 0: half the
    # clips show no event to sync) to the conditional one, then falls when over-guided, and the
    # 95% CIs separate the points
    assert sync[1.0]["value"] > sync[0.0]["value"] and sync[1.0]["value"] > sync[4.0]["value"]
    assert sync[1.0]["ci_low"] > sync[0.0]["ci_high"] and sync[1.0]["ci_low"] > sync[4.0]["ci_high"]
    # following the text: without it, the sounds are the wrong ones
    fd_a = {s: m[s]["fd_audio[melstats]"]["value"] for s in m}
    assert fd_a[0.0] > 5 * fd_a[1.0]
    # over-guided: the thunder's delay and the impacts' timing are exaggerated
    assert m[4.0]["sync_offset_abs_ms"]["value"] > m[1.0]["sync_offset_abs_ms"]["value"]
    runs = {float(p["values"]["guidance_scale"]): Path(p["run_dir"]) for p in doc["points"]}
    manifest = [json.loads(line) for line in (runs[4.0] / "manifest.jsonl").read_text().splitlines()]
    assert {r["info"]["guidance_scale"] for r in manifest} == {4.0} and all(r["info"]["learned"] for r in manifest)


@pytest.mark.slow
def test_regression_gate_catches_the_early_checkpoint_not_a_reseed(guidance_sweep, capsys):
    suite, out = guidance_sweep

    def run(*extra) -> Path:
        code, doc = cli_json(capsys, "run", "--model", "mova-tiny", "--suite", suite, "--metrics", METRICS,
                             "--out", out, *extra)
        assert code == 0, doc
        return Path(doc["run_dir"])

    final = run()  # the sweep's guidance 1 run when that test ran first (the defaults: final, 1, 8 steps)
    early = run("--set", "checkpoint=step-500")
    reseeded = run("--seed", "1")
    code, doc = cli_json(capsys, "compare", final, early, *GATES)
    assert code == 1 and doc["passed"] is False
    rows = {r["metric"]: r for r in doc["rows"]}
    assert rows["in_sync_rate"]["failed"] and rows["in_sync_rate"]["verdict"] == "worse"
    code, doc = cli_json(capsys, "compare", final, reseeded, *GATES)
    assert code == 0 and doc["passed"] is True, doc["reasons"]


def test_training_is_seeded_and_reproducible(tmp_path):
    """The training script is deterministic: the same (short) command twice writes byte-identical
    checkpoints, and another seed writes other weights. (The committed checkpoints come from the
    full default command; its run takes ~9 CPU minutes, so this checks the mechanism on 12 steps.)"""
    from mova_bench.generators.tiny import train

    args = ["--steps", "12", "--save-at", "6", "--templated", "40", "--seeds-templated", "2", "--seeds-suite", "3",
            "--batch-prompts", "6", "--seeds-per-prompt", "2", "--warmup", "3", "--log-every", "100"]
    digests = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / name
        assert train.main([*args, "--out", str(out), "--seed", seed]) == 0
        files = sorted(p.name for p in out.glob("*.safetensors"))
        assert files == ["final.safetensors", "step-6.safetensors"]
        digests.append({f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in files})
    assert digests[0] == digests[1]
    assert digests[0]["final.safetensors"] != digests[2]["final.safetensors"]
    # what it wrote loads through the generator's reader (the safetensors metadata carries the config)
    model = load_model(tmp_path / "a" / "final.safetensors")
    assert model is not None
