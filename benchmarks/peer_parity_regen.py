"""Regenerate tests/data/peer_parity/<profile>.json by running the PEERS' own AV-Align code.

The expected values of tests/test_profiles.py are not written by hand: this script writes the
deterministic parity clips (:func:`mova_bench.profiles.write_parity_clips`), runs each peer's own
code on them from a checkout you provide, and stores what it printed or returned, with the peer's
repository, commit and the exact commands. It contains none of the peers' code: it imports their
module from the checkout and calls its functions by name (the same calls their entry points make),
and runs their command lines as they are.

Usage (each checkout at the commit named in mova_bench/profiles.py; any folder holding the file)::

    python benchmarks/peer_parity_regen.py \\
        --peer tempotokens-2025=/path/to/TempoTokens@bf0b1e30a8f6cd6e0cb53850ce80afa639f2f848 \\
        --peer mova-eval-2026=/path/to/MOVA@595a97691123e8356a65ba9fdeee23ae81aaa471 \\
        --peer javisbench=/path/to/JavisDiT@b505b37faa9668b52b982abe364825d3d0a5bdca \\
        [--work /tmp/peer_parity/work] [--out tests/data/peer_parity]

(``@COMMIT`` may be left out when the folder is a git checkout: ``git rev-parse HEAD`` is used.)

What each peer reads
    TempoTokens and JavisBench read the audio from a ``.wav`` next to the video (their generators
    write both). Here that wav is the MP4's own audio stream decoded with mova-bench's decoder
    (PyAV, float32 at the stream's rate, written as 32-bit float WAV), so the peer and mova-bench
    read the same samples. MOVA decodes the MP4's audio by running the ``ffmpeg`` command line
    (``ffmpeg -i clip.mp4 -f f32le -ac 1 -ar 44100 -``). When no ``ffmpeg`` executable is on PATH
    (as on the machine these figures were made on) the script puts a stand-in first on PATH that
    does the same with the FFmpeg libraries PyAV bundles (libavcodec decode, libswresample
    conversion to mono float at the requested rate); the stand-in is in this file (_FFMPEG_SHIM).
    Frames are read by each peer with ``cv2.VideoCapture`` as in their code.

Requires: opencv-python, librosa, soundfile, matplotlib, tqdm (MOVA's and TempoTokens' imports),
numpy, PyAV. Runs in about a minute on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mova_bench.profiles import PARITY_CLIPS, PROFILES, write_parity_clips  # noqa: E402

PEERS = {
    "tempotokens-2025": {"repository": "https://github.com/guyyariv/TempoTokens", "file": "av_align.py"},
    "mova-eval-2026": {"repository": "https://github.com/OpenMOSS/MOVA",
                       "file": "evaluation/metrics/av_quality/av_align_score.py"},
    "javisbench": {"repository": "https://github.com/JavisVerse/JavisDiT", "file": "eval/javisbench/src/av_align.py"},
}

# Per-clip driver, run in a subprocess with the peer's folder on sys.path. It calls the peer's
# functions in the order its own entry point does and prints JSON; it holds no peer code.
_DRIVER = r'''
import json, sys, importlib.util, traceback
spec = importlib.util.spec_from_file_location("peer_av_align", sys.argv[2])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
peer, clips = sys.argv[1], json.loads(sys.argv[3])
out = {}
for mp4 in clips:
    wav = mp4[:-4] + ".wav"
    rec = {}
    try:
        if peer == "tempotokens-2025":      # as av_align.py's __main__, one file
            frames, fps = mod.extract_frames(mp4)
            rec["fps"], rec["n_frames"] = float(fps), len(frames)
            a = mod.detect_audio_peaks(wav)
            flow, v = mod.detect_video_peaks(frames, fps)
            rec["flow"] = [float(x) for x in flow]
            rec["audio_onsets"], rec["video_peaks"] = [float(x) for x in a], [float(x) for x in v]
            rec["iou"] = float(mod.calc_intersection_over_union(a, v, fps))
        elif peer == "mova-eval-2026":      # as compute_single_video_av (defaults: sr 44100, no hop option)
            frames, fps = mod.extract_frames(mp4)
            rec["fps"], rec["n_frames"] = float(fps), len(frames)
            a, _, _ = mod.detect_audio_peaks_from_video(mp4, sr=44100)
            flow, v = mod.detect_video_peaks(frames, fps)
            rec["flow"] = [float(x) for x in flow]
            rec["audio_onsets"], rec["video_peaks"] = [float(x) for x in a], [float(x) for x in v]
            rec["iou"] = float(mod.calc_intersection_over_union(a, v, fps))
            rec["iou_entry_point"] = float(mod.compute_single_video_av(mp4)[1])
        else:                               # as AVAlignDataset.__getitem__ (size=None, max_length_s=None)
            a = mod.detect_audio_peaks(wav, max_length_s=None)
            frames, fps = mod.extract_frames(mp4, None, max_length_s=None)
            rec["fps"], rec["n_frames"] = float(fps), len(frames)
            flow, v = mod.detect_video_peaks(frames, fps, use_tqdm=False)
            rec["flow"] = [float(x) for x in flow]
            rec["audio_onsets"], rec["video_peaks"] = [float(x) for x in a], [float(x) for x in v]
            rec["iou"] = float(mod.calc_intersection_over_union(a, v, fps))
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    out[mp4.rsplit("/", 1)[-1]] = rec
print("PARITY_JSON " + json.dumps(out))
'''

_FFMPEG_SHIM = r'''#!{python}
# Stand-in for `ffmpeg -i IN -f f32le -ac 1 -ar SR -` (the only call MOVA's av_align_score.py makes):
# libavcodec decode + libswresample to mono float at SR through PyAV, raw float32 on stdout.
import sys, av, numpy as np
args = sys.argv[1:]
src, sr = args[args.index("-i") + 1], int(args[args.index("-ar") + 1])
assert args[args.index("-f") + 1] == "f32le" and args[args.index("-ac") + 1] == "1" and args[-1] == "-", args
with av.open(src) as c:
    rs = av.AudioResampler(format="flt", layout="mono", rate=sr)
    out = []
    for fr in c.decode(c.streams.audio[0]):
        for o in rs.resample(fr):
            out.append(o.to_ndarray().reshape(-1))
    for o in rs.resample(None):
        out.append(o.to_ndarray().reshape(-1))
sys.stdout.buffer.write(np.concatenate(out).astype("<f4").tobytes())
'''


def _commit(path: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sys.exit(f"{path}: not a git checkout; pass --peer NAME=PATH@COMMIT")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("numpy", "librosa", "soxr", "soundfile", "opencv-python", "opencv-python-headless", "av"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _write_wavs(clips: list[Path]) -> None:
    import soundfile as sf

    from mova_bench.media import decode

    for p in clips:
        d = decode(p)
        sf.write(p.with_suffix(".wav"), d.audio, d.sample_rate, subtype="FLOAT")


def _env_with_ffmpeg(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    if any((Path(d) / "ffmpeg").exists() for d in env.get("PATH", "").split(os.pathsep) if d):
        return env
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "ffmpeg"
    shim.write_text(_FFMPEG_SHIM.replace("{python}", sys.executable))
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["MOVA_PARITY_FFMPEG"] = "shim"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res.stdout


def regen(peer: str, checkout: Path, commit: str, work: Path, clips: list[Path]) -> dict:
    info = PEERS[peer]
    module = checkout / info["file"]
    if not module.is_file():
        raise SystemExit(f"{module}: not found; --peer {peer}= must point at a checkout of {info['repository']}")
    env = _env_with_ffmpeg(work) if peer == "mova-eval-2026" else dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    per_clip_cmd = [sys.executable, "-c", "<driver: benchmarks/peer_parity_regen.py _DRIVER>", peer, str(module),
                    json.dumps([str(c) for c in clips])]
    out = _run([sys.executable, "-c", _DRIVER, *per_clip_cmd[3:]], checkout, env)
    per_clip = json.loads(out.split("PARITY_JSON ", 1)[1])
    doc = {
        "profile": peer,
        "peer": {"repository": info["repository"], "commit": commit, "file": info["file"]},
        "per_clip_method": ("the peer's functions called in the order its entry point calls them (see _DRIVER in "
                            "benchmarks/peer_parity_regen.py), one subprocess, cwd = the checkout"),
        "environment": _versions(),
        "clips": {},
    }
    import hashlib

    for p in clips:
        rec = per_clip[p.name]
        rec["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
        doc["clips"][p.stem] = rec
    # The peer's own command line where it has one (its printed mean).
    ok_dir = work / f"cli_{peer}"
    ok_dir.mkdir(parents=True, exist_ok=True)
    for old in ok_dir.glob("*"):
        old.unlink()
    usable = [p for p in clips if "error" not in per_clip[p.name]]
    for p in usable:
        for suffix in (".mp4", ".wav"):
            (ok_dir / (p.stem + suffix)).write_bytes(p.with_suffix(suffix).read_bytes())
    if peer == "tempotokens-2025":
        cmd = [sys.executable, info["file"], "--input_dir", f"{ok_dir}/"]
        text = _run(cmd, checkout, env)
        m = re.search(r"AV-Align:\s+([0-9.eE+-]+)", text)
        doc["command"] = {"argv": ["python", info["file"], "--input_dir", "<clips>/"], "cwd": "<checkout>",
                          "clips": [p.stem for p in usable], "stdout": text.strip(), "mean": float(m.group(1))}
        doc["notes"] = ["clips on which the reference raises (ZeroDivisionError: no onsets and no peaks) are left out "
                        "of its command-line run, which would otherwise stop"]
    elif peer == "mova-eval-2026":
        cmd = [sys.executable, info["file"], "-i", str(ok_dir), "-w", "1"]
        text = _run(cmd, checkout, env)
        m = re.search(r"'AV-Align':\s*([0-9.eE+-]+)", text)
        doc["command"] = {"argv": ["python", info["file"], "-i", "<clips>", "-w", "1"], "cwd": "<checkout>",
                          "clips": [p.stem for p in usable], "stdout": text.strip(), "mean": float(m.group(1)),
                          "ffmpeg": ("stand-in (_FFMPEG_SHIM: PyAV libavcodec + libswresample)"
                                     if env.get("MOVA_PARITY_FFMPEG") == "shim" else "ffmpeg on PATH")}
    else:
        import numpy as np

        ious = [per_clip[p.name]["iou"] for p in clips if "iou" in per_clip[p.name]]
        doc["command"] = {"argv": None, "note": ("JavisBench's entry point (eval/javisbench/main.py) imports torch, "
                                                  "ImageBind and its other metrics; the AV-Align dataset's calls are "
                                                  "made directly and the overall score is their mean, as "
                                                  "calc_category_distribution does"),
                          "clips": [p.stem for p in clips], "mean": float(np.mean(ious))}
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", action="append", required=True, help="PROFILE=PATH[@COMMIT]")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "peer_parity"))
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="peer_parity_"))
    clips = write_parity_clips(work / "clips")
    _write_wavs(clips)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in args.peer:
        name, _, rest = spec.partition("=")
        if name not in PEERS:
            raise SystemExit(f"--peer {name!r}: expected one of {', '.join(PEERS)}")
        path, _, commit = rest.partition("@")
        checkout = Path(path).resolve()
        doc = regen(name, checkout, _commit(checkout, commit or None), work, clips)
        expected = PROFILES[name].commit
        if doc["peer"]["commit"] != expected:
            print(f"warning: {name}: checkout at {doc['peer']['commit']}, profiles.py names {expected}")
        doc["parity_clips"] = [list(c) for c in PARITY_CLIPS]
        doc["regenerate"] = ("python benchmarks/peer_parity_regen.py --peer " + f"{name}=<checkout>@{doc['peer']['commit']}")
        (out / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{name}: " + ", ".join(f"{k}={v.get('iou', v.get('error'))}" for k, v in doc["clips"].items())
              + f"; mean {doc['command']['mean']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
