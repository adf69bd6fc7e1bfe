"""AV-Align analyzer (``av_align``): IoU of audio onsets and optical-flow peaks.

AV-Align (Yariv et al., TempoTokens) compares the times of audio onsets with the times of local
maxima of the mean optical-flow magnitude. The defaults are mova-bench's own convention (below),
which follows the reference implementation (github.com/guyyariv/TempoTokens ``av_align.py`` at its
2025 head, bf0b1e3) except where written down; the parameters let a metric profile
(:mod:`mova_bench.profiles`) reproduce a peer exactly (``tempotokens-2025``, ``mova-eval-2026``,
``javisbench``), and enter the feature cache's identity.

Audio onsets
    ``librosa.onset.onset_detect`` on ``librosa.onset.onset_strength`` with librosa's defaults
    (hop 512, mel flux, default peak picking), on the audio at ``audio_sr`` (default 22050 Hz, the
    rate ``librosa.load`` gives the reference; 0 = the stream's own rate, as JavisBench's
    ``librosa.load(sr=None)``). Ours resamples with :meth:`DecodedClip.audio_at` (soxr HQ in float64);
    ``resample="librosa"`` resamples the float32 samples with ``librosa.resample`` (soxr HQ in
    float32), the path of ``librosa.load``. Onset frames become seconds with
    ``librosa.frames_to_time`` (hop 512); ``timeline="pts"`` (ours) adds ``clip.audio_start``,
    ``timeline="index"`` (the peers) times them from the first decoded sample.

Video peaks
    Frames are converted to grey (OpenCV RGB->GRAY, BT.601; the peers' BGR->GRAY of the same pixels).
    ``frame_size="fit"`` (ours): the decoder's analysis frames (at most 256 px on the longer side,
    bilinear), area-downscaled to at most ``max_width`` = 128 pixels wide (aspect kept), and each
    per-pair mean magnitude multiplied by ``source_width / analysis_width`` to express it in source
    pixels, the unit of the reference's 0.1 gate (for speed; the rescaled magnitude of a brightness
    change such as a lightning flash is not the full-resolution one, so peaks near the gate can
    differ from the reference). ``frame_size="native"`` (the peers): the file's own frames, no
    resize, no rescaling. Dense flow between consecutive frames with
    ``cv2.calcOpticalFlowFarneback`` and the reference's parameters (pyr_scale 0.5, levels 3,
    winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0). As in the reference, the
    trajectory has one value per frame: value k (k >= 1) is the flow from frame k-1 to frame k and
    value 0 repeats value 1. A video peak is a strict local maximum (greater than both neighbours)
    whose value is at least ``min_flow`` (0.1, the 2025 reference's gate against static scenes; 0 =
    no gate, as the 2023 original and JavisBench). It is stamped at ``clip.video_times[k]``
    (``timeline="pts"``) or ``k / fps`` (``timeline="index"``, the reference).

Matching and score
    ``window="strict"`` matches an onset ``a`` and a peak ``v`` when ``v - 1/fps < a < v + 1/fps``:
    every reference (TempoTokens 2023 and 2025, MOVA, JavisBench) uses this strict inequality. Ours
    (``window="inclusive"``) uses ``|a - v| <= 1/fps`` (plus 1e-9 for rounding); no peer does: it
    differs from them only for pairs exactly one frame period apart. ``matching="maximum"`` (ours):
    the maximum number of one-to-one pairs (:func:`count_matches`, a sweep over sorted times, optimal
    for a fixed window). ``matching="first_unused"`` (TempoTokens 2025, MOVA): each audio onset in
    time order takes the first still-unused video peak in its window (on sorted lists this is the
    same count). ``matching="many_to_one"`` (TempoTokens 2023, JavisBench): an onset counts when
    any peak is in its window, so one peak may serve several onsets. ``IoU = I / (|A| + |V| - I +
    iou_eps)`` (``iou_eps`` 1e-6 in JavisBench, else 0). When both lists are empty the IoU is
    undefined: NaN with status ``no_events`` (the ``av_align`` metric scores such a clip 0 and keeps
    it in the mean, as MOVA's implementation does; TempoTokens' reference divides by zero there).

Output (0-d arrays): ``iou`` (float64), ``n_audio_onsets``, ``n_video_peaks``, ``n_matches``
(int64), ``status`` ("ok" | "no_events", numpy unicode).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mova_bench.errors import ConfigError, MovaBenchError
from mova_bench.features.base import FeatureExtractor
from mova_bench.features.frames import downscaled_luma_u8, luma_u8
from mova_bench.media import DecodedClip

AUDIO_SR = 22050
HOP_LENGTH = 512  # librosa's default, used by onset_strength / onset_detect / frames_to_time
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0}


def count_matches(audio_times: np.ndarray, video_times: np.ndarray, tol: float) -> int:
    """Maximum one-to-one matching of two event-time lists with ``|a - v| <= tol``.

    Sweep both lists in time order and pair each audio onset with the earliest still-unused video
    peak inside its window. For intervals of equal width this greedy choice is a maximum matching
    (exchange argument: a later audio onset can reach every peak an earlier one skips past).
    """
    a = np.sort(np.asarray(audio_times, dtype=np.float64).ravel())
    v = np.sort(np.asarray(video_times, dtype=np.float64).ravel())
    eps = 1e-9  # times computed as k/fps vs. k * (1/fps): don't let rounding break a tie
    matches, j = 0, 0
    for t in a:
        while j < v.size and v[j] < t - tol - eps:  # too early for this and every later onset
            j += 1
        if j < v.size and v[j] <= t + tol + eps:
            matches += 1
            j += 1
    return matches


def count_matches_peer(audio_times: np.ndarray, video_times: np.ndarray, fps: float, *, many_to_one: bool) -> int:
    """Matches counted as the peers' ``calc_intersection_over_union`` counts them (strict window).

    For each audio onset in the given order, scan the video peaks in the given order and take the
    first one (``many_to_one=False``: the first *unused* one, TempoTokens 2025 and MOVA) with
    ``v - 1/fps < a < v + 1/fps``, evaluated in that arithmetic; ``many_to_one=True`` (TempoTokens
    2023, JavisBench) does not mark peaks used, so one peak can serve several onsets.
    """
    a = [float(x) for x in np.asarray(audio_times, dtype=np.float64).ravel()]
    v = [float(x) for x in np.asarray(video_times, dtype=np.float64).ravel()]
    used = [False] * len(v)
    matches = 0
    for t in a:
        for j, p in enumerate(v):
            if (many_to_one or not used[j]) and p - 1 / fps < t < p + 1 / fps:
                matches += 1
                used[j] = True
                break
    return matches


def intersection_over_union(audio_times: np.ndarray, video_times: np.ndarray, tol: float) -> float:
    """AV-Align IoU = matches / (|A| + |V| - matches); NaN when both lists are empty."""
    n_a, n_v = int(np.size(audio_times)), int(np.size(video_times))
    if n_a + n_v == 0:
        return float("nan")
    m = count_matches(audio_times, video_times, tol)
    return m / (n_a + n_v - m)


def local_max_indexes(values: np.ndarray, min_value: float) -> np.ndarray:
    """Indexes k with values[k-1] < values[k] > values[k+1] and values[k] >= min_value."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 3:
        return np.zeros(0, dtype=np.int64)
    mid = x[1:-1]
    keep = (mid > x[:-2]) & (mid > x[2:]) & (mid >= min_value)
    return np.flatnonzero(keep) + 1


def audio_onset_times(clip: DecodedClip, *, sample_rate: int = AUDIO_SR, resample: str = "audio_at",
                      timeline: str = "pts") -> np.ndarray:
    """librosa onsets of the clip's audio at ``sample_rate`` (0 = its own rate), in seconds on the
    shared timeline (``timeline="pts"``) or from the first decoded sample (``"index"``)."""
    import librosa

    sr = int(sample_rate) or int(clip.sample_rate)
    if resample == "librosa":  # librosa.load's path: float32 samples, librosa.resample (soxr HQ, float32)
        y = np.asarray(clip.audio, dtype=np.float32)
        if sr != clip.sample_rate and y.size:
            y = librosa.resample(y, orig_sr=int(clip.sample_rate), target_sr=sr)
    else:
        y = clip.audio_at(sr)
    if y.size == 0:
        return np.zeros(0)
    env = librosa.onset.onset_strength(y=y, sr=sr)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=sr)
    times = librosa.frames_to_time(frames, sr=sr, hop_length=HOP_LENGTH)
    return times + clip.audio_start if timeline == "pts" else times


def _native_need() -> Any:
    try:
        from mova_bench.media import VideoNeed  # type: ignore[attr-defined]
    except ImportError:  # a decoder without per-extractor frame sizes
        return None
    return VideoNeed("native")


def native_frames(clip: DecodedClip) -> np.ndarray:
    """The clip's frames at the file's own resolution (T, H, W, 3) uint8 RGB: the decoder's frames
    when they already are, else decoded again from ``clip.path`` (PyAV rgb24, no resize; the same
    pixels ``cv2.VideoCapture`` gives in BGR order for the clips of tests/data/peer_parity)."""
    need = _native_need()
    frames_fn = getattr(clip, "frames", None)
    if need is not None and callable(frames_fn):
        try:
            return np.asarray(frames_fn(need))
        except MovaBenchError:  # not decoded with this need (a direct call): fall through
            pass
    if clip.video.shape[1:3] == (clip.source_height, clip.source_width) or not clip.path:
        return clip.video
    import av

    frames = []
    times = []
    with av.open(str(clip.path)) as container:
        for fr in container.decode(container.streams.video[0]):
            frames.append(fr.to_ndarray(format="rgb24"))
            times.append(float(fr.time) if fr.time is not None else len(times))
    order = np.argsort(np.asarray(times), kind="stable")
    return np.stack([frames[i] for i in order])


def flow_trajectory(video: np.ndarray, *, max_width: int | None = 128, source_width: int | None = None) -> np.ndarray:
    """Mean Farnebäck flow magnitude per frame (value 0 repeats value 1), in source-video pixels.

    ``max_width=None``: no resize and no rescaling (the peers' full-resolution convention)."""
    import cv2

    t, _, w = video.shape[:3]
    if t < 2:
        return np.zeros(t)
    if max_width is None:
        grey = luma_u8(video)
        scale = 1.0
    else:
        grey = downscaled_luma_u8(video, max_width)
        scale = (source_width or w) / grey.shape[2]

    def pair(k: int) -> float:
        flow = cv2.calcOpticalFlowFarneback(grey[k - 1], grey[k], None, **FARNEBACK)
        mean = cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0]  # the reference's cv2.mean (float64 sum)
        return float(mean) * scale if scale != 1.0 else float(mean)

    # Frame pairs are independent and OpenCV releases the GIL: spread them over the cores
    # (same numbers as a serial loop, in the same order).
    workers = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1), 8))
    if workers > 1 and t > 8:
        with ThreadPoolExecutor(workers) as pool:
            mags = np.fromiter(pool.map(pair, range(1, t)), dtype=np.float64, count=t - 1)
    else:
        mags = np.fromiter((pair(k) for k in range(1, t)), dtype=np.float64, count=t - 1)
    return np.concatenate([mags[:1], mags])


#: mova-bench's own convention (the analyzer's defaults); see the module docstring
DEFAULT_PARAMS: dict[str, Any] = {
    "max_width": 128, "min_flow": 0.1, "frame_size": "fit", "audio_sr": AUDIO_SR, "resample": "audio_at",
    "timeline": "pts", "window": "inclusive", "matching": "maximum", "iou_eps": 0.0,
}
_CHOICES = {"frame_size": ("fit", "native"), "resample": ("audio_at", "librosa"), "timeline": ("pts", "index"),
            "window": ("inclusive", "strict"), "matching": ("maximum", "first_unused", "many_to_one")}


def _check_params(p: dict[str, Any]) -> None:
    for key, allowed in _CHOICES.items():
        if p[key] not in allowed:
            raise ConfigError(f"av_align {key}={p[key]!r}: expected one of {', '.join(allowed)}",
                              fix="use a --profile (mova_bench.profiles) or one of the values named")
    if (p["matching"] == "maximum") != (p["window"] == "inclusive"):
        raise ConfigError(f"av_align matching={p['matching']!r} with window={p['window']!r}: matching='maximum' "
                          "takes window='inclusive', the peers' 'first_unused' and 'many_to_one' take window='strict'",
                          fix="use a --profile, or one of these two pairs")
    if int(p["audio_sr"]) < 0 or float(p["min_flow"]) < 0 or float(p["iou_eps"]) < 0:
        raise ConfigError(f"av_align audio_sr, min_flow and iou_eps must be >= 0, got {p['audio_sr']!r}, "
                          f"{p['min_flow']!r}, {p['iou_eps']!r}", fix="use a --profile or non-negative values")


def analyze_av_align(clip: DecodedClip, *, max_width: int = 128, min_flow: float = 0.1,
                     **conv: Any) -> dict[str, np.ndarray]:
    """The whole AV-Align analysis for one clip; see the module docstring for each parameter."""
    p = {**DEFAULT_PARAMS, "max_width": max_width, "min_flow": min_flow, **conv}
    _check_params(p)
    a_times = audio_onset_times(clip, sample_rate=int(p["audio_sr"]), resample=p["resample"], timeline=p["timeline"])
    if p["frame_size"] == "native":
        traj = flow_trajectory(native_frames(clip), max_width=None)
    else:
        traj = flow_trajectory(clip.video, max_width=int(p["max_width"]), source_width=clip.source_width or None)
    peaks = local_max_indexes(traj, float(p["min_flow"]))
    fps = clip.fps if clip.fps > 0 else 1.0 / float(np.median(np.diff(clip.video_times)))
    if p["timeline"] == "index":  # the peers: k / fps, in Python floats as they compute it
        v_times = np.array([k / fps for k in peaks.tolist()], dtype=np.float64)
    else:
        v_times = np.asarray(clip.video_times, dtype=np.float64)[peaks]
    if p["matching"] == "maximum":
        n_match = count_matches(a_times, v_times, 1.0 / fps)
    else:
        n_match = count_matches_peer(a_times, v_times, fps, many_to_one=p["matching"] == "many_to_one")
    n_a, n_v = int(a_times.size), int(v_times.size)
    iou = float("nan") if n_a + n_v == 0 else n_match / (n_a + n_v - n_match + float(p["iou_eps"]))
    return {
        "iou": np.array(iou, dtype=np.float64),
        "n_audio_onsets": np.array(n_a, dtype=np.int64),
        "n_video_peaks": np.array(n_v, dtype=np.int64),
        "n_matches": np.array(n_match, dtype=np.int64),
        "status": np.array("no_events" if np.isnan(iou) else "ok"),
    }


class AVAlignAnalyzer(FeatureExtractor):
    """AV-Align: IoU of librosa audio onsets and Farnebäck flow peaks (ours by default; the peers'
    conventions through the parameters a metric profile sets, see the module docstring)."""

    name = "av_align"
    version = "1"
    kind = "analysis"
    modality = "av"
    display_name = "AV-Align (onset / flow-peak IoU)"
    family = "classical"
    description = (
        "AV-Align: librosa onsets vs. strict local maxima (>= 0.1 px) of mean Farneback flow magnitude; "
        "matches within 1/fps; IoU. Default: flow on <= 128-px-wide frames rescaled to source pixels, "
        "inclusive window, maximum one-to-one matching; --profile selects a peer's exact convention."
    )

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return dict(DEFAULT_PARAMS)

    def __init__(self, **params: Any):
        super().__init__(**params)
        _check_params(self.params)
        need = _native_need() if self.params["frame_size"] == "native" else None
        #: full-resolution frames from the decoder for the peers' convention (pipeline.analysis reads this)
        self.video_needs = (need,) if need is not None else ()

    def preprocessing(self) -> dict[str, Any]:
        """Parameters plus the fixed parts of the convention and the librosa version (onsets)."""
        from importlib import metadata

        return {
            **super().preprocessing(),
            "hop_length": HOP_LENGTH,
            "farneback": dict(FARNEBACK),
            "librosa": metadata.version("librosa"),
        }

    def extract(self, clip: DecodedClip) -> dict[str, np.ndarray]:
        return analyze_av_align(clip, **self.params)
