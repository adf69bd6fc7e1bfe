"""Regenerate tests/data/peer_parity/imagebind_fbank.npz: torchaudio's Kaldi fbank as ImageBind calls it.

torchaudio cannot be installed beside this project's torch, but ``torchaudio/compliance/kaldi.py`` is
plain Python whose ``fbank`` uses only torch. This script loads that one file by path from an
unpacked torchaudio wheel (with a stub ``torchaudio`` module, since its import line needs one), runs
ImageBind's exact call (``imagebind/data.py`` ``waveform2melspec``: mean removal, then
``fbank(htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10)``) on a few synthetic signals, and
stores the inputs and outputs. No torchaudio code is copied into the project.

    python benchmarks/imagebind_fbank_regen.py --kaldi /path/to/torchaudio/compliance/kaldi.py \
        --version 2.11.0 --source torchaudio-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "peer_parity" / "imagebind_fbank.npz"


def signals() -> dict[str, np.ndarray]:
    """Seeded test signals at 16 kHz (float32): noise, tones, a chirp with a DC offset, silence, and
    lengths around ImageBind's 2 s clip (32,000 samples) and its one-frame minimum (400)."""
    rng = np.random.default_rng(20240501)
    sr = 16000
    t = np.arange(32000) / sr
    out = {
        "noise_2s": 0.3 * rng.standard_normal(32000),
        "tones_2s": 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t) + 0.01 * rng.standard_normal(32000),
        "chirp_dc_1p37s": 0.4 * np.sin(2 * np.pi * (100 + 2000 * t[:21920]) * t[:21920]) + 0.25,
        "silence_2s": np.zeros(32000),
        "clicks_2p5s": np.zeros(40000),
        "short_400": 0.2 * rng.standard_normal(400),
        "odd_12345": 0.1 * rng.standard_normal(12345) + 0.3 * np.sin(2 * np.pi * 150 * np.arange(12345) / sr),
    }
    out["clicks_2p5s"][::4000] = 0.9
    return {k: v.astype(np.float32) for k, v in out.items()}


def load_kaldi(path: Path):
    stub = types.ModuleType("torchaudio")  # fbank uses no torchaudio.* attribute
    sys.modules.setdefault("torchaudio", stub)
    spec = importlib.util.spec_from_file_location("_kaldi_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kaldi", type=Path, required=True, help="torchaudio/compliance/kaldi.py from an unpacked wheel")
    ap.add_argument("--version", required=True, help="torchaudio version of that file (recorded)")
    ap.add_argument("--source", required=True, help="where the file came from (recorded)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import torch

    kaldi = load_kaldi(args.kaldi)
    arrays: dict[str, np.ndarray] = {}
    for name, wave in signals().items():
        w = torch.from_numpy(wave.copy())[None]  # (1, N) as torchaudio.load gives
        w -= w.mean()  # waveform2melspec's mean removal
        fb = kaldi.fbank(w, htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
                         num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10)
        arrays[f"{name}__wave"] = wave
        arrays[f"{name}__fbank"] = fb.numpy().astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    meta = {
        "what": "torchaudio.compliance.kaldi.fbank as ImageBind's waveform2melspec calls it (after its mean removal); "
                "per signal NAME: NAME__wave (float32, 16 kHz) and NAME__fbank (frames x 128, float32)",
        "torchaudio_version": args.version,
        "source": args.source,
        "kaldi_py_sha256": hashlib.sha256(args.kaldi.read_bytes()).hexdigest(),
        "torch_version": torch.__version__,
        "call": "fbank(w - w.mean(), htk_compat=True, sample_frequency=16000, use_energy=False, window_type='hanning', "
                "num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10)",
        "command": "python benchmarks/imagebind_fbank_regen.py --kaldi <unpacked wheel>/torchaudio/compliance/kaldi.py "
                   f"--version {args.version} --source {args.source}",
        "signals": {k: int(v.shape[0]) for k, v in signals().items()},
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out} ({len(arrays) // 2} signals) and {args.out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
