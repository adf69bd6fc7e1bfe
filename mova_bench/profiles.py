"""Metric profiles: a metric's conventions chosen as a set, by name, to reproduce a peer's numbers.

``--profile NAME`` (``run``, ``evaluate``, ``sweep``) selects one. The evaluation spec records it
(``profile``; ``default`` for ``mova-bench``, so that evaluation ids made before profiles existed
are unchanged) and the report shows it.

Profiles
    ``mova-bench`` (default)
        Ours, as each metric documents it. AV-Align is computed on frames area-downscaled to at most
        128 px wide with flow magnitudes rescaled to source pixels, onsets at 22050 Hz, events
        stamped at presentation times with ``audio_start`` honoured and a maximum one-to-one
        matching with an inclusive window ``|a - v| <= 1/fps``: faster, resolution-normalised, and
        not the peers' numbers.
    ``tempotokens-2025``
        AV-Align as ``av_align.py`` of github.com/guyyariv/TempoTokens at its 2025 head
        (``bf0b1e3``): grey frames at the file's full resolution, onsets at 22050 Hz (``librosa.load``
        defaults), video peaks strict local maxima ``>= 0.1``, times ``k/fps`` and onsets from the
        start of the audio, one video peak per audio onset with a strict window ``|a - v| < 1/fps``.
        The reference divides by zero on a clip without events; the profile scores it 0.
    ``mova-eval-2026``
        AV-Align as ``evaluation/metrics/av_quality/av_align_score.py`` of github.com/OpenMOSS/MOVA
        (``595a976``): as ``tempotokens-2025`` but onsets at 44100 Hz (the reference asks ffmpeg for
        44.1 kHz mono float), and a clip without events (or whose analysis fails) scores 0 and stays
        in the mean.
    ``javisbench``
        AV-Align as ``eval/javisbench/src/av_align.py`` of github.com/JavisVerse/JavisDiT
        (``b505b37``; the TempoTokens version of 2023): full resolution, onsets at the audio's own
        sample rate (``librosa.load(sr=None)``), no 0.1 peak gate, one video peak may match several
        audio onsets, ``IoU = I / (|A| + |V| - I + 1e-6)`` (so a clip without events scores 0, and a
        clip whose onsets all match one peak can exceed 1, as in the reference). IB-score
        (``ib_score[imagebind]``) with JavisBench's ImageBind video recipe (``imagebind``
        ``video_recipe=javisbench``: ImageBind's ``load_and_transform_video_data``, the first and last
        frame of five 2 s clips over the whole video, bilinear short-side resize, 3 crops; the audio
        side is ImageBind's loader, as in av-benchmark).
    ``av-benchmark``
        github.com/hkchengrex/av-benchmark (``050a5cd``). Its metrics (FD/KL/IS on PaSST, PANNs,
        VGGish; LAION-CLAP and MS-CLAP scores; ImageBind score; Synchformer DeSync) all need
        pretrained backbones; none overlaps a weight-free metric of ours, and the profile does not
        (yet) define the pretrained ones either, so every metric keeps our convention under this
        profile and says so in its convention text.

A profile that does not define a metric leaves ours and says so in that metric's convention. The
AV-Align parameters of a profile are analyzer parameters (:data:`PROFILES`), so they enter the
feature cache's identity; the figures each exact profile reproduces, with the peer's commit and the
command, are in ``tests/data/peer_parity/`` and ``docs/profiles.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mova_bench.errors import ConfigError

DEFAULT_PROFILE = "mova-bench"
#: what the evaluation spec records for the default profile (ids made before profiles existed)
SPEC_DEFAULT = "default"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    #: analyzer name -> parameters that override the analyzer's defaults
    analysis: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: metric name -> the sentence that replaces the head of its convention text
    conventions: dict[str, str] = field(default_factory=dict)
    #: the peer's repository and commit (None for ours)
    peer: str | None = None
    commit: str | None = None


_EXACT_AV = {"frame_size": "native", "window": "strict", "timeline": "index", "matching": "first_unused",
             "resample": "librosa"}

PROFILES: dict[str, Profile] = {
    "mova-bench": Profile(
        "mova-bench",
        "ours, as each metric documents it (default)",
    ),
    "tempotokens-2025": Profile(
        "tempotokens-2025",
        "AV-Align exactly as TempoTokens' av_align.py (2025 head)",
        analysis={"av_align": {**_EXACT_AV, "audio_sr": 22050, "min_flow": 0.1, "iou_eps": 0.0}},
        conventions={"av_align": (
            "Profile tempotokens-2025: AV-Align exactly as av_align.py of github.com/guyyariv/TempoTokens at "
            "bf0b1e3 (2025): frames decoded at the file's full resolution (no resize), BT.601 grey, Farneback "
            "flow (0.5, 3, 15, 3, 5, 1.2, 0), magnitudes in source pixels; video peaks strict local maxima >= 0.1 "
            "stamped k/fps; librosa onsets (defaults, hop 512) of the audio at 22050 Hz (soxr HQ, float32, "
            "librosa.load's path) timed from the first audio sample; each audio onset takes the first unused "
            "video peak with |a - v| < 1/fps (strict); IoU = I / (|A| + |V| - I). The reference divides by zero "
            "on a clip with neither onsets nor peaks; here such a clip scores 0 and stays in the mean.")},
        peer="github.com/guyyariv/TempoTokens", commit="bf0b1e30a8f6cd6e0cb53850ce80afa639f2f848",
    ),
    "mova-eval-2026": Profile(
        "mova-eval-2026",
        "AV-Align exactly as MOVA's evaluation toolkit (av_align_score.py)",
        analysis={"av_align": {**_EXACT_AV, "audio_sr": 44100, "resample": "audio_at", "min_flow": 0.1, "iou_eps": 0.0}},
        conventions={"av_align": (
            "Profile mova-eval-2026: AV-Align exactly as evaluation/metrics/av_quality/av_align_score.py of "
            "github.com/OpenMOSS/MOVA at 595a976: frames decoded at the file's full resolution (no resize), "
            "BT.601 grey, Farneback flow (0.5, 3, 15, 3, 5, 1.2, 0); video peaks strict local maxima >= 0.1 "
            "stamped k/fps; librosa onsets (defaults, hop 512) of the audio at 44100 Hz mono float (the "
            "reference decodes with ffmpeg -ar 44100 -ac 1 -f f32le; here the decoded stream, resampled with "
            "soxr HQ only when its rate is not 44100) timed from the first audio sample; each audio onset takes "
            "the first unused video peak with |a - v| < 1/fps (strict); IoU = I / (|A| + |V| - I); a clip with "
            "neither onsets nor peaks scores 0 and stays in the mean, as in the reference. Unlike the reference (which "
            "scores a clip it cannot read 0), a clip that fails to decode is reported failed and left out.")},
        peer="github.com/OpenMOSS/MOVA", commit="595a97691123e8356a65ba9fdeee23ae81aaa471",
    ),
    "javisbench": Profile(
        "javisbench",
        "AV-Align exactly as JavisBench (JavisDiT eval/javisbench/src/av_align.py); IB-score with its ImageBind "
        "video recipe",
        analysis={"av_align": {**_EXACT_AV, "audio_sr": 0, "min_flow": 0.0, "matching": "many_to_one",
                               "iou_eps": 1e-6},
                  "imagebind": {"video_recipe": "javisbench"}},
        conventions={"av_align": (
            "Profile javisbench: AV-Align exactly as eval/javisbench/src/av_align.py of "
            "github.com/JavisVerse/JavisDiT at b505b37 (TempoTokens' 2023 version): frames decoded at the "
            "file's full resolution (no resize), BT.601 grey, Farneback flow (0.5, 3, 15, 3, 5, 1.2, 0); video "
            "peaks every strict local maximum (no 0.1 gate) stamped k/fps; librosa onsets (defaults, hop 512) "
            "of the audio at its own sample rate (librosa.load(sr=None)) timed from the first audio sample; an "
            "audio onset counts when some video peak has |a - v| < 1/fps (strict), one peak may serve several "
            "onsets; IoU = I / (|A| + |V| - I + 1e-6): a clip without events scores 0 and stays in the mean, and "
            "a clip whose onsets share peaks can score above 1, as in the reference."),
            "ib_score": (
                "Profile javisbench: IB-score as ib_av of eval/javisbench/src/metrics.py (calc_imagebind_score) of "
                "github.com/JavisVerse/JavisDiT at b505b37: per clip cosine(audio, video) of ImageBind huge embeddings "
                "(nn.CosineSimilarity eps 1e-6), in [-1, 1]. Video: ImageBind's load_and_transform_video_data "
                "(pytorchvideo 28fe037): five 2 s clips evenly spaced over the whole duration n/fps "
                "(ConstantClipsPerVideoSampler), frames ceil(fps*start) to ceil(fps*end) of each (decord's get_clip; "
                "here PyAV-decoded frames in presentation order), its first and last frame (UniformTemporalSubsample(2)), "
                "/255, short side 224 bilinear without antialias (interpolate, align_corners=False), CLIP mean/std, 3 "
                "spatial crops, mean of the 15 unit embeddings. Audio: ImageBind's load_and_transform_audio_data, as "
                "av-benchmark: 16 kHz, 3 evenly spaced 2 s clips, Kaldi fbank (128 bins, Hanning 25/10 ms, dither 0) "
                "padded/cut to 204 frames, (x+4.268)/9.138, mean of normalised x20 embeddings. Differences: the audio "
                "is the clip's own stream (channel mean, soxr HQ; JavisBench reads the generator's .wav with "
                "torchaudio and resamples with its sinc resampler), and decord's YUV->RGB conversion is not PyAV's. "
                "Value: mean over clips; 95% percentile bootstrap CI over clips. Clips too short to score are "
                "excluded and counted."),
        },
        peer="github.com/JavisVerse/JavisDiT", commit="b505b37faa9668b52b982abe364825d3d0a5bdca",
    ),
    "av-benchmark": Profile(
        "av-benchmark",
        "hkchengrex/av-benchmark where its metrics overlap ours: its LAION-CLAP checkpoint and audio loader for "
        "the CLAP score; its PANNs, VGGish and Synchformer conventions are already ours",
        analysis={"laion-clap": {"checkpoint": "music-speech", "remove_dc": True}},
        conventions={
            "clap_score": (
                "Profile av-benchmark: LAION-CLAP score as av_bench/extract.py + evaluate.py of "
                "github.com/hkchengrex/av-benchmark at 050a5cd: HTSAT-base music_speech_audioset_epoch_15_esc_89.98 "
                "(no fusion), audio mono (channel mean) with its mean removed, at 48 kHz, embedded with "
                "get_audio_embedding_from_data(use_tensor=True) (no int16 round trip; shorter than 10 s: repeated then "
                "zero-padded), text embedding of the prompt; score = cosine, mean over clips. Differences: the audio is "
                "resampled with soxr HQ (theirs: torchaudio), and the whole clip is embedded up to 10 s (theirs: "
                "truncated to the --audio_length the user passes)."),
            "desync": (
                "Profile av-benchmark: DeSync as av-benchmark at 050a5cd, which is ours: {ours}"),
            "is_audio": (
                "Profile av-benchmark: Inception Score over PANNs CNN14 (16 kHz) AudioSet logits as av-benchmark at "
                "050a5cd, which is ours: {ours}"),
        },
        peer="github.com/hkchengrex/av-benchmark", commit="050a5cdb9bbd1a6f8cbb9fdde076992a695e2501",
    ),
}


def resolve_profile(name: str | None) -> Profile:
    """The profile called ``name`` (``None`` and ``default`` mean ``mova-bench``); else ConfigError (exit 2)."""
    key = DEFAULT_PROFILE if name in (None, "", SPEC_DEFAULT) else str(name)
    if key not in PROFILES:
        raise ConfigError(
            f"--profile {name!r}: unknown metric profile; expected one of {', '.join(PROFILES)}",
            fix="pass one of the names above (mova-bench is the default)",
        )
    return PROFILES[key]


def spec_name(profile: Profile) -> str:
    """What the evaluation spec records: ``default`` for ``mova-bench``, else the profile's name."""
    return SPEC_DEFAULT if profile.name == DEFAULT_PROFILE else profile.name


def apply_to_specs(profile: Profile, specs: tuple) -> tuple:
    """The analysis specs with the profile's analyzer parameters merged in (they enter the cache key)."""
    from mova_bench.pipeline.analysis import ExtractorSpec

    out = []
    for s in specs:
        over = profile.analysis.get(s.name)
        out.append(ExtractorSpec(s.name, tuple(sorted({**dict(s.params), **over}.items()))) if over else s)
    return tuple(out)


def apply_to_metrics(profile: Profile, metric_objs: list) -> list:
    """Set each metric's ``profile`` and, where the profile defines it, its convention text; a metric
    the profile does not define keeps ours and its convention says so (for a non-default profile)."""
    for m in metric_objs:
        ours = getattr(m, "_convention_ours", None)
        if ours is None:  # the metric's own text (an instance may have its own, e.g. per backbone)
            ours = m._convention_ours = m.convention
        m.profile = profile.name
        peer = profile.conventions.get(m.name)
        if profile.name == DEFAULT_PROFILE:
            m.convention = ours
        elif peer is not None:  # "{ours}" in a profile's text: the peer's convention is ours, said in full
            m.convention = peer.replace("{ours}", ours or "")
        else:
            m.convention = f"Profile {profile.name} does not define {m.name}: mova-bench's own convention is used. " + ours
    return metric_objs


def defines(profile: Profile, metric: str) -> bool:
    return metric in profile.conventions


def apply_profile(name: str | None, metric_objs: list) -> list:
    """:func:`resolve_profile` then :func:`apply_to_metrics`: the seam the pipeline calls once per
    evaluation, right after choosing its metrics (an unknown name exits 2 before any work)."""
    return apply_to_metrics(resolve_profile(name), metric_objs)


def profile_of(metric_objs: list) -> Profile:
    """The profile :func:`apply_profile` set on an evaluation's metrics (``mova-bench`` when none)."""
    names = {getattr(m, "profile", None) for m in metric_objs} - {None}
    if len(names) > 1:
        raise ConfigError(f"one evaluation's metrics carry different profiles: {sorted(names)}",
                          fix="select metrics with one --profile")
    return resolve_profile(names.pop() if names else None)


def profile_spec_name(metric_objs: list) -> str:
    """What an evaluation spec records for these metrics' profile (``default`` for mova-bench)."""
    return spec_name(profile_of(metric_objs))


def profile_specs(metric_objs: list, specs: tuple) -> tuple:
    """The evaluation's analysis specs with its profile's analyzer parameters (see apply_to_specs)."""
    return apply_to_specs(profile_of(metric_objs), specs)


# ----------------------------------------------------------------------------------------------
# The clips the peer-parity figures are measured on (tests/data/peer_parity/, docs/profiles.md)
# ----------------------------------------------------------------------------------------------

#: (name, width, height, fps, audio sample rate, seconds, audio delay in ms, kind)
PARITY_CLIPS: tuple[tuple[str, int, int, float, int, float, float, str], ...] = (
    ("flash_beep_sync", 160, 120, 24.0, 44100, 3.0, 0.0, "flash"),
    ("bounce_knock_late80", 224, 160, 30.0, 44100, 3.0, 80.0, "bounce"),
    ("flash_beep_16k", 176, 144, 25.0, 16000, 2.5, 0.0, "flash"),
    ("squares_clicks_48k", 192, 108, 30.0, 48000, 3.0, -40.0, "squares"),
    ("static_tone", 128, 96, 24.0, 22050, 2.0, 0.0, "static"),
    ("static_silent", 128, 96, 24.0, 22050, 2.0, 0.0, "silent"),
    ("lightning_384", 384, 216, 24.0, 44100, 2.0, 0.0, "flash"),
)


def _parity_content(kind: str, w: int, h: int, fps: float, sr: int, seconds: float, delay_ms: float, seed: int):
    """Frames (T, H, W, 3) uint8 and mono audio of one parity clip, from a seeded generator."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    yy, xx = np.mgrid[0:h, 0:w]
    base = (40 + 30 * np.sin(xx[..., None] / 9.0 + np.arange(3)) + 20 * np.cos(yy[..., None] / 7.0)).clip(0, 255)
    video = np.repeat(base[None].astype(np.uint8), n, axis=0)
    audio = np.zeros(int(round(seconds * sr)), np.float32)
    t = np.arange(audio.size) / sr
    events: list[float] = []
    if kind == "flash":
        events = sorted(rng.choice(np.arange(6, n - 6), size=5, replace=False).tolist())
        for k in events:
            video[k : k + 2] = np.clip(video[k : k + 2].astype(int) + 150, 0, 255).astype(np.uint8)
    elif kind == "bounce":
        r = max(4, w // 20)
        period = int(fps * 0.6)
        for k in range(n):
            ph = (k % period) / period
            y = int(h - r - 2 - (h - 3 * r) * 4 * ph * (1 - ph))
            x = int(r + (w - 2 * r) * k / n)
            mask = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
            video[k][mask] = (230, 200, 60)
            if k % period == 0 and k > 0:
                events.append(k)
    elif kind == "squares":
        events = sorted(rng.choice(np.arange(4, n - 8), size=6, replace=False).tolist())
        for k in events:
            s = int(rng.integers(10, 24))
            x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            video[k : k + 4, y0 : y0 + s, x0 : x0 + s] = rng.integers(150, 255, 3).astype(np.uint8)
    if kind == "static":
        audio += 0.2 * np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    for k in events:
        t0 = k / fps + delay_ms / 1000.0
        i0 = int(round(t0 * sr))
        if 0 <= i0 < audio.size:
            m = min(audio.size - i0, int(0.08 * sr))
            tt = np.arange(m) / sr
            burst = (0.6 * np.exp(-tt / 0.015) * (np.sin(2 * np.pi * 880 * tt) + 0.5 * rng.standard_normal(m)))
            audio[i0 : i0 + m] += burst.astype(np.float32)
    if kind != "silent":  # "silent": a still frame and digital silence, a clip without events
        audio += (0.002 * rng.standard_normal(audio.size)).astype(np.float32)
    return video, np.clip(audio, -1, 1)


def write_parity_clips(folder: str | Path) -> list[Path]:
    """Write :data:`PARITY_CLIPS` as MP4 (H.264 with one encoder thread, so the bytes do not depend
    on the core count; AAC) into ``folder``; returns their paths in order. Deterministic."""
    import av
    import numpy as np

    from mova_bench.media import add_h264_stream, encode_frames

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, w, h, fps, sr, seconds, delay, kind) in enumerate(PARITY_CLIPS):
        video, audio = _parity_content(kind, w, h, fps, sr, seconds, delay, seed=1000 + i)
        path = folder / f"{name}.mp4"
        with av.open(str(path), mode="w", format="mp4") as container:
            vs = add_h264_stream(container, video.shape, fps, crf=18, tune="zerolatency", threads="1")
            as_ = container.add_stream("aac", rate=sr)
            as_.layout = "mono"
            as_.bit_rate = 96_000
            encode_frames(container, vs, video)
            for start in range(0, audio.size, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, start : start + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = sr, start
                for packet in as_.encode(af):
                    container.mux(packet)
            for packet in as_.encode():
                container.mux(packet)
        paths.append(path)
    return paths
