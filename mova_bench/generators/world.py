"""The procedural world: a small ontology of sound-producing events, rendered to video + audio.

This module is the renderer behind :class:`mova_bench.generators.procedural.ProceduralGenerator`
(see that module for the knobs). It is an *oracle*: every event is placed on the timeline first
and then drawn and sounded from that plan, so the true audio-visual offset of each event is known
exactly. It is not, and is never presented as, a learned model.

Scene classes and their keywords (case-insensitive, word-bounded regular expressions in
:data:`KEYWORDS`):

========== ============================================= =============================================
class      picture (transient at the event frame)        sound (onset = attack <= 5 ms)
========== ============================================= =============================================
thunder    sky flash + jagged bolt                       crack + low rumble, delayed by distance/343 m/s
rain       splash on a window + drop streak;             click + rising "plink"; soft noise bed
           steady falling streaks in the background
drum       stick snaps onto the skin, skin flashes       membrane tone with pitch drop + stick noise
ball       ball lands (squash) + dust burst              low thud
clap       hands meet (fastest at contact) + sparkle     band-passed noise burst with micro-bursts
footsteps  swinging foot lands (fastest at contact)      low thump + heel click
           + dust puff
piano      key lights up + a glowing note bar            harmonic tone, sharp attack, long decay
glass      a glass vanishes in a flash, shards fly       bright inharmonic ring + crash + tinkles
impact     (fallback) a shape pops in with a ring        knock
wind, hum, slow camera drift, no transient               smooth coloured noise / mains hum, no onsets
ocean,
room,
ambience
========== ============================================= =============================================

Thunder distance comes from the prompt: "near"/"close"/"overhead" → 10–40 m, "distant"/"far"/
"horizon" → 300–500 m (0.87–1.46 s), otherwise 100–250 m (0.29–0.73 s). See
:data:`THUNDER_DISTANCE_M`. One distance per clip; every thunder event of the clip is heard
``distance / 343`` seconds after its flash.

Mixing: a prompt may name several classes. The *primary* class gives the environment (sky,
stage, room...). Thunder, when named, carries all the events (so every event of the clip shares
one physical delay); otherwise up to three object classes share the events and split the frame
into columns; rain without a louder object class carries its own splash events, and with one it
is a background layer (streaks + noise bed); ambience classes add their noise bed at half level.
Text with no keyword renders the default impact scene (``scene="fallback"``).

Event plan: event frames ``k`` on the video grid (``t = k / fps``), at least 300 ms apart
(more for thunder), 3–8 per 4 s (scaled with the duration), none in the first 0.3 s or the last
0.5 s, and for thunder none whose sound would start in the last 0.5 s. The plan depends only on
the prompt text, the seed and the clip geometry, never on the knobs, so a knob sweep changes
only what the knob is meant to change.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import cv2
import numpy as np

WORLD_VERSION = "1"
SPEED_OF_SOUND_M_S = 343.0

ONSET_CLASSES = ("thunder", "rain", "drum", "ball", "clap", "footsteps", "piano", "glass", "impact")
OBJECT_CLASSES = ("drum", "ball", "clap", "footsteps", "piano", "glass")
AMBIENT_CLASSES = ("wind", "hum", "ocean", "room", "ambience")
ALL_CLASSES = ONSET_CLASSES + AMBIENT_CLASSES

#: keyword patterns, matched on the lower-cased prompt text
KEYWORDS: dict[str, str] = {
    "thunder": r"\b(lightning|thunder\w*|storm\w*)",
    "rain": r"\b(rain|rains|rainy|raining|rainfall|raindrops?|rainstorm\w*|drizzl\w*|downpour\w*)\b"
            r"|\b(thunder)?storm",
    "drum": r"\b(drum\w*|snare\w*|tom-?toms?|percussion\w*|bongos?|congas?)\b",
    "ball": r"\b\w*balls?\b|\bbounc\w*",
    "clap": r"\b(clap\w*|applau\w*)",
    "footsteps": r"\b(footsteps?|foot-?falls?|steps|stepping|walk\w*|stomp\w*|marching)\b",
    "piano": r"\b(piano\w*|pianists?|notes?|music\w*|melod\w*|keyboard|chords?|xylophone|marimba)\b",
    "glass": r"\bshatter\w*|\bsmash\w*|\bshards?\b|\b(glass(es)?|wine ?glass(es)?)\b(?!\s*(window|pane|door|roof|wall))",
    "wind": r"\b(wind|winds|windy|breeze\w*|gusts?|gusty|howling)\b",
    "hum": r"\b(hum|hums|humming|drone|droning|buzz\w*|mains|transformer|fridge|refrigerator)\b",
    "ocean": r"\b(ocean|sea|seaside|waves?|surf|shore\w*|beach|tide)\b",
    "room": r"room[\s-]*tone|\b(empty|quiet|silent) (room|office|hall)\b|\bair[\s-]?condition\w*",
    "ambience": r"\b(ambien\w*|atmospher\w*|soundscape|background noise|forest|meadow)\b",
}

#: "glass" alone is only a breaking glass when nothing else explains it (rain on the glass ...)
GLASS_BREAK_PATTERN = r"\b(shatter\w*|smash\w*|shards?|break\w*|broke\w*|crash\w*|burst\w*)\b"

NEAR_PATTERN = r"\b(near|nearby|close|closer|overhead|right above|directly above)\b(?![\s-]?up)"
DISTANT_PATTERN = r"\b(distant|distance|far|far-?off|faraway|far away|horizon|remote)\b"
NIGHT_PATTERN = r"\b(night\w*|midnight|dark|darkness)\b"

#: thunder distance (metres) by the prompt's distance words
THUNDER_DISTANCE_M = {"near": (10.0, 40.0), "mid": (100.0, 250.0), "distant": (300.0, 500.0)}

#: (min, max) events per 4 s of clip, and the minimum spacing (s) between events
EVENT_RATE = {
    "thunder": (3, 4, 0.5),
    "rain": (5, 8, 0.3),
    "drum": (4, 8, 0.3),
    "ball": (3, 6, 0.35),
    "clap": (4, 8, 0.3),
    "footsteps": (5, 8, 0.3),
    "piano": (4, 8, 0.3),
    "glass": (3, 5, 0.35),
    "impact": (3, 6, 0.3),
}
MIN_EVENT_GAP_S = 0.3
EVENT_START_S = 0.3
EVENT_END_MARGIN_S = 0.5

#: the sound played instead of the shown class when ``wrong_event`` is set
WRONG_SOUND = {
    "thunder": "glass", "rain": "piano", "drum": "glass", "ball": "clap", "clap": "piano",
    "footsteps": "glass", "piano": "drum", "glass": "ball", "impact": "piano",
    "wind": "hum", "hum": "ocean", "ocean": "hum", "room": "wind", "ambience": "hum",
}


# --------------------------------------------------------------------------------------------
# Prompt → scene
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSpec:
    """What a prompt asks for. ``primary`` is a class name; ``scene`` is what the manifest shows."""

    scene: str
    primary: str
    layers: tuple[str, ...]
    event_classes: tuple[str, ...]
    distance: str | None  # "near" | "mid" | "distant" for thunder, else None
    night: bool


def parse_prompt(text: str) -> SceneSpec:
    """Map prompt text to a :class:`SceneSpec` by keywords (see :data:`KEYWORDS`)."""
    t = (text or "").lower()
    found: dict[str, int] = {}
    for cls, pat in KEYWORDS.items():
        m = re.search(pat, t)
        if m:
            found[cls] = m.start()
    if "glass" in found and not re.search(GLASS_BREAK_PATTERN, t) and ({"rain", "thunder"} & set(found)):
        del found["glass"]
    by_pos = sorted(found, key=lambda c: (found[c], ALL_CLASSES.index(c)))
    objects = [c for c in by_pos if c in OBJECT_CLASSES][:3]
    ambient = [c for c in by_pos if c in AMBIENT_CLASSES]
    if "thunder" in found:
        primary, events = "thunder", ("thunder",)
    elif objects:
        primary, events = objects[0], tuple(objects)
    elif "rain" in found:
        primary, events = "rain", ("rain",)
    elif ambient:
        primary, events = ambient[0], ()
    else:
        return SceneSpec("fallback", "impact", ("impact",), ("impact",), None, bool(re.search(NIGHT_PATTERN, t)))
    distance = None
    if primary == "thunder":
        distance = "distant" if re.search(DISTANT_PATTERN, t) else "near" if re.search(NEAR_PATTERN, t) else "mid"
    layers = tuple(dict.fromkeys([primary, *by_pos]))
    return SceneSpec(primary, primary, layers, events, distance, bool(re.search(NIGHT_PATTERN, t)))


# --------------------------------------------------------------------------------------------
# Small drawing helpers (all cv2 drawing uses 4 fractional bits for sub-pixel positions)
# --------------------------------------------------------------------------------------------

_SHIFT = 4
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA


def _p(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _r(r: float) -> int:
    return max(_ONE // 2, int(round(r * _ONE)))


def _pts(xy: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(xy, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _c(rgb: Any, a: float = 1.0) -> tuple[float, float, float]:
    return tuple(float(min(255.0, max(0.0, v * a))) for v in rgb)  # type: ignore[return-value]


def _mix(c1: Any, c2: Any, a: float) -> tuple[float, float, float]:
    return tuple(float(x * (1.0 - a) + y * a) for x, y in zip(c1, c2))  # type: ignore[return-value]


def _jit(rng: np.random.Generator, rgb: Any, amount: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, dtype=np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def _thick(px: float) -> int:
    return max(1, int(round(px)))


def _vgrad(h: int, w: int, top: Any, bottom: Any) -> np.ndarray:
    """(h, w, 3) float32 vertical gradient."""
    a = np.linspace(0.0, 1.0, max(h, 1), dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - a) + np.asarray(bottom, np.float32) * a
    return np.ascontiguousarray(np.broadcast_to(col, (h, w, 3)), dtype=np.float32)


def _lowfreq(rng: np.random.Generator, h: int, w: int, cells: float = 6.0) -> np.ndarray:
    """(h, w) float32 smooth noise in [0, 1] (bicubic-upsampled random grid)."""
    ch = max(2, int(round(cells * h / max(h, w))) + 1)
    cw = max(2, int(round(cells * w / max(h, w))) + 1)
    small = rng.random((ch, cw)).astype(np.float32)
    big = cv2.resize(small, (max(w, 1), max(h, 1)), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0.0, 1.0)


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _add_patch(frame: np.ndarray, x0: float, y0: float, x1: float, y1: float,
               draw: Callable[[np.ndarray, float, float], None], alpha: float) -> None:
    """Additively blend what ``draw(patch, ox, oy)`` paints into a zero patch (coordinates are
    frame coordinates minus ``(ox, oy)``) onto ``frame`` at strength ``alpha`` (saturating)."""
    h, w = frame.shape[:2]
    ix0, iy0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    ix1, iy1 = min(w, int(math.ceil(x1)) + 1), min(h, int(math.ceil(y1)) + 1)
    if ix1 <= ix0 or iy1 <= iy0 or alpha <= 0.0:
        return
    patch = np.zeros((iy1 - iy0, ix1 - ix0, 3), np.uint8)
    draw(patch, float(ix0), float(iy0))
    roi = frame[iy0:iy1, ix0:ix1]
    roi[...] = cv2.scaleAdd(patch, float(alpha), roi)


# --------------------------------------------------------------------------------------------
# Small audio helpers
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _sos(kind: str, f1: float, f2: float, sr: int, order: int = 2) -> np.ndarray:
    from scipy import signal  # imported on first use: validating a request needs none of it (~0.7 s)

    nyq = 0.5 * sr
    lo = min(max(f1, 10.0), 0.9 * nyq)
    if kind == "lowpass":
        return signal.butter(order, lo, btype="lowpass", fs=sr, output="sos")
    if kind == "highpass":
        return signal.butter(order, lo, btype="highpass", fs=sr, output="sos")
    hi = min(max(f2, lo * 1.05), 0.95 * nyq)
    if hi <= lo * 1.01:
        return signal.butter(order, lo, btype="highpass", fs=sr, output="sos")
    return signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")


def _filt(x: np.ndarray, kind: str, f1: float, sr: int, f2: float = 0.0, order: int = 2) -> np.ndarray:
    from scipy import signal

    return signal.sosfilt(_sos(kind, float(f1), float(f2), int(sr), order), x).astype(np.float32)


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n, dtype=np.float32)


def _filtered_noise(rng: np.random.Generator, n: int, sr: int, kind: str, f1: float, f2: float = 0.0,
                    order: int = 2) -> np.ndarray:
    """Filtered white noise with the filter's start-up transient discarded, unit RMS."""
    pre = int(0.02 * sr)
    y = _filt(_noise(rng, n + pre), kind, f1, sr, f2, order)[pre:]
    return y / max(float(np.sqrt(np.mean(y * y))), 1e-9)


def _pink(rng: np.random.Generator, n: int, sr: int, f_lo: float = 30.0, f_hi: float = 12000.0,
          slope: float = 0.5) -> np.ndarray:
    """Coloured noise (power ∝ 1/f^(2*slope)), band-limited, unit RMS (FFT shaping)."""
    if n <= 1:
        return np.zeros(n, np.float32)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    gain = np.where((f >= f_lo) & (f <= min(f_hi, 0.45 * sr)), 1.0 / np.maximum(f, f_lo) ** slope, 0.0)
    y = np.fft.irfft(spec * gain, n).astype(np.float32)
    return y / max(float(np.sqrt(np.mean(y * y))), 1e-9)


def _smooth_mod(rng: np.random.Generator, n: int, sr: int, f_lo: float = 0.08, f_hi: float = 0.6,
                k: int = 3) -> np.ndarray:
    """A smooth random modulation curve in about [-1, 1] (sum of slow sinusoids)."""
    grid = np.arange(0.0, n / sr + 0.02, 0.01)
    y = np.zeros_like(grid)
    for _ in range(k):
        y += np.sin(2 * np.pi * rng.uniform(f_lo, f_hi) * grid + rng.uniform(0, 2 * np.pi))
    y /= k
    return np.interp(np.arange(n) / sr, grid, y).astype(np.float32)


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32) / np.float32(sr)


def _ramp(x: np.ndarray, sr: int, ms: float = 0.5) -> np.ndarray:
    """Linear attack over ``ms`` (first sample already non-zero), in place."""
    n = min(x.size, max(1, int(sr * ms / 1000.0)))
    x[:n] *= (np.arange(1, n + 1, dtype=np.float32) / n)
    return x


def _fade_out(x: np.ndarray, sr: int, seconds: float = 0.05) -> np.ndarray:
    """Linear release to 0 over the last ``seconds``, in place."""
    n = int(seconds * sr)
    x[-n:] *= np.linspace(1, 0, n, dtype=np.float32)
    return x


def _peak_to(x: np.ndarray, peak: float) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def _tone(f: np.ndarray | float, t: np.ndarray, phase0: float = 0.5 * np.pi) -> np.ndarray:
    return np.sin(2 * np.pi * np.float32(f) * t + np.float32(phase0)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# World geometry and the event plan
# --------------------------------------------------------------------------------------------


@dataclass
class Event:
    cls: str
    frame: int
    video_t: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Geometry:
    n_frames: int
    height: int
    width: int
    fps: float
    sample_rate: int
    n_samples: int
    duration_s: float

    @property
    def s(self) -> float:
        """Drawing scale: 1.0 at 144 px for the shorter side."""
        return min(self.height, self.width) / 144.0

    @property
    def floor_y(self) -> float:
        return 0.8 * self.height


def plan_frames(rng: np.random.Generator, n_lo: int, n_hi: int, k_min: int, k_max: int, gap: int) -> list[int]:
    """``n`` sorted frame indices in ``[k_min, k_max]`` at least ``gap`` apart, uniform over such sets."""
    span = k_max - k_min + 1
    if span <= 0 or n_hi <= 0:
        return []
    gap = max(1, gap)
    n_fit = 1 + (span - 1) // gap
    n_hi = min(n_hi, n_fit)
    n_lo = max(1, min(n_lo, n_hi))
    n = int(rng.integers(n_lo, n_hi + 1))
    slots = span - (n - 1) * (gap - 1)
    y = np.sort(rng.choice(slots, size=n, replace=False))
    return [int(k_min + yi + i * (gap - 1)) for i, yi in enumerate(y)]


# --------------------------------------------------------------------------------------------
# Visuals: environment (full frame, from the primary class), static parts and per-frame drawing
# --------------------------------------------------------------------------------------------

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def environment(cls: str, g: Geometry, rng: np.random.Generator, night: bool) -> np.ndarray:
    """The static full-frame background of the primary class, (H, W, 3) float32 in 0..255."""
    H, W = g.height, g.width
    tex = _lowfreq(rng, H, W, 7.0)
    dim = 0.45 if night else 1.0
    fy = int(round(g.floor_y))
    if cls == "thunder":
        top = _jit(rng, (38, 42, 58) if not night else (8, 10, 22), 8)
        hor = _jit(rng, (100, 104, 122) if not night else (32, 36, 58), 12)
        img = _vgrad(H, W, top, hor) * (0.75 + 0.5 * tex[..., None])
        xs = np.arange(W, dtype=np.float64)
        hill = fy + 0.05 * H * np.sin(xs / W * rng.uniform(4, 9) + rng.uniform(0, 6.3)) - 0.03 * H
        pts = np.concatenate([np.stack([xs, hill], 1), [[W, H], [0, H]]])
        ground = _c(_jit(rng, (18, 22, 16), 6), 0.6 if night else 1.0)
        cv2.fillPoly(img, [_pts(pts)], ground, _AA, _SHIFT)
        return img
    if cls == "rain":
        img = _vgrad(H, W, _jit(rng, (90, 105, 125), 15), _jit(rng, (55, 65, 80), 12)) * dim
        for _ in range(int(rng.integers(6, 12))):  # blurred lights / foliage seen through the glass
            c = _jit(rng, rng.choice([(200, 170, 90), (90, 130, 80), (150, 150, 170), (190, 90, 70)]), 30)
            cv2.circle(img, _p(rng.uniform(0, W), rng.uniform(0.1, 0.9) * H), _r(rng.uniform(0.04, 0.12) * min(H, W)),
                       _c(c, 0.7 * dim), -1, _AA, _SHIFT)
        img = cv2.GaussianBlur(img, (0, 0), max(0.8, 3.0 * g.s))
        img *= (0.85 + 0.3 * tex[..., None])
        frame_col = _c(_jit(rng, (45, 38, 32), 10), dim)
        t = max(1.0, 0.035 * min(H, W))
        mx, my = rng.uniform(0.35, 0.65) * W, rng.uniform(0.35, 0.6) * H
        cv2.rectangle(img, _p(mx - t / 2, 0), _p(mx + t / 2, H), frame_col, -1, _AA, _SHIFT)
        cv2.rectangle(img, _p(0, my - t / 2), _p(W, my + t / 2), frame_col, -1, _AA, _SHIFT)
        cv2.rectangle(img, _p(0, 0), _p(W - 1, H - 1), frame_col, _thick(2 * t), _AA, _SHIFT)
        return img
    if cls in ("drum", "piano"):
        img = _vgrad(H, W, _jit(rng, (22, 18, 28), 8), _jit(rng, (48, 38, 42), 10))
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        cx, cy = rng.uniform(0.35, 0.65) * W, 0.55 * H
        spot = np.exp(-(((xx - cx) / (0.45 * W)) ** 2 + ((yy - cy) / (0.7 * H)) ** 2))
        img += spot[..., None] * _jit(rng, (70, 60, 45), 15).astype(np.float32)
        img *= (0.85 + 0.3 * tex[..., None]) * (0.8 if night else 1.0)
        cv2.rectangle(img, _p(0, fy), _p(W, H), _c(_jit(rng, (45, 32, 25), 10)), -1, _AA, _SHIFT)
        return img
    if cls in ("ball", "clap", "footsteps", "glass", "impact"):
        wall = {"ball": (150, 140, 120), "clap": (170, 165, 155), "footsteps": (140, 130, 120),
                "glass": (175, 160, 140), "impact": (120, 125, 135)}[cls]
        floor = {"ball": (150, 105, 65), "clap": (110, 100, 90), "footsteps": (120, 85, 55),
                 "glass": (105, 70, 45), "impact": (80, 85, 95)}[cls]
        img = _vgrad(H, W, _jit(rng, wall, 25) * 1.05, _jit(rng, wall, 25) * 0.8) * dim
        img *= (0.88 + 0.24 * tex[..., None])
        fl = _vgrad(H - fy, W, _jit(rng, floor, 20) * 0.85, _jit(rng, floor, 20) * 1.1) * dim
        img[fy:] = fl * (0.9 + 0.2 * tex[fy:, :, None])
        if cls in ("footsteps", "ball"):  # plank seams
            for x in np.arange(rng.uniform(0, 0.12 * W), W, 0.12 * W):
                cv2.line(img, _p(x, fy), _p(x + 0.03 * W, H), _c(floor, 0.55 * dim), 1, _AA, _SHIFT)
        cv2.line(img, _p(0, fy), _p(W, fy), _c(floor, 0.45 * dim), _thick(1.5 * g.s), _AA, _SHIFT)
        return img
    # ambience classes have their own drifting picture (DriftVisual); a plain fallback here
    return _vgrad(H, W, _jit(rng, (120, 130, 140), 20), _jit(rng, (70, 80, 70), 20)) * dim


class Visual:
    """Objects of one class inside ``box``: ``static`` paints the background, ``draw`` a frame."""

    def __init__(self, g: Geometry, box: Box, events: list[Event], sp: dict[str, Any], rng: np.random.Generator):
        self.g, self.box, self.events, self.sp, self.rng = g, box, events, sp, rng
        self.frames = np.array([e.frame for e in events], dtype=np.int64)

    @property
    def bw(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def bh(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def u(self) -> float:
        return min(self.bw, self.bh)

    def random_point(self, rng: np.random.Generator, side: float, top: float, bottom: float) -> tuple[float, float]:
        """A uniform point of ``box`` kept ``side``·bw from the left and right edges, ``top``·bh from
        the top and ``bottom``·bh from the bottom (x drawn first, then y)."""
        x0, y0, x1, y1 = self.box
        return (float(rng.uniform(x0 + side * self.bw, x1 - side * self.bw)),
                float(rng.uniform(y0 + top * self.bh, y1 - bottom * self.bh)))

    def recent(self, k: int, within: int) -> list[tuple[int, Event]]:
        """Events shown at or before frame ``k`` and at most ``within - 1`` frames ago: (age, event)."""
        return [(k - e.frame, e) for e in self.events if 0 <= k - e.frame < within]

    def static(self, bg: np.ndarray) -> None:
        pass

    def draw(self, k: int, frame: np.ndarray) -> None:
        pass


class ThunderVisual(Visual):
    DECAY = (1.0, 0.5, 0.25, 0.12, 0.05)

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        H, W = g.height, g.width
        near = sp["distance"] == "near"
        far = sp["distance"] == "distant"
        sky = np.clip(_lowfreq(rng, H, W, 5.0) * 0.6 + 0.4, 0, 1)
        yy = np.arange(H, dtype=np.float32)[:, None]
        sky = sky * np.where(yy < g.floor_y - 0.05 * H, 1.0, 0.3)
        col = np.asarray(_jit(rng, (200, 205, 255), 10), np.float32)
        self.flash = _u8(sky[..., None] * col)
        self.amp = (0.85, 1.0) if near else (0.45, 0.6) if far else (0.65, 0.8)
        for e in events:
            e.params["flash"] = float(rng.uniform(*self.amp))
            x_top = rng.uniform(0.12, 0.88) * W
            y_top = 0.0 if not far else rng.uniform(0.15, 0.3) * H
            y_end = g.floor_y - (0.0 if not far else 0.05 * H)
            x_end = x_top + rng.uniform(-0.15, 0.15) * W
            n = 12
            ys = np.linspace(y_top, y_end, n)
            walk = np.cumsum(rng.normal(0, 0.035 * W * (0.5 if far else 1.0), n))
            walk -= np.linspace(walk[0], walk[-1], n)
            xs = np.linspace(x_top, x_end, n) + walk
            main = np.stack([xs, ys], 1)
            branches = []
            for _ in range(int(rng.integers(1, 3))):
                i0 = int(rng.integers(2, n - 4))
                m = 5
                bx = xs[i0] + np.cumsum(np.r_[0, rng.normal(rng.choice([-1, 1]) * 0.04 * W, 0.02 * W, m - 1)])
                by = ys[i0] + np.cumsum(np.r_[0, rng.uniform(0.03, 0.06, m - 1) * H])
                branches.append(np.stack([bx, by], 1))
            e.params["bolt"] = [main, *branches]
        self.core = _thick((1.0 if far else 2.0) * g.s)
        self.glow = _thick((3.0 if far else 6.0) * g.s)

    def draw(self, k, frame):
        for age, e in self.recent(k, len(self.DECAY)):
            a = e.params["flash"] * self.DECAY[age]
            frame[...] = cv2.scaleAdd(self.flash, a, frame)
            if age < 2:
                b = 1.0 if age == 0 else 0.55
                lines = [_pts(p) for p in e.params["bolt"]]
                cv2.polylines(frame, lines, False, _c((150, 160, 255), b), self.glow, _AA, _SHIFT)
                cv2.polylines(frame, lines, False, _c((255, 255, 255), b), self.core, _AA, _SHIFT)


class RainLayer(Visual):
    """Steadily falling streaks (no transients): a tall texture scrolled down every frame."""

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        H, W = g.height, g.width
        self.th = 2 * H
        tex = np.zeros((self.th, W), np.uint8)
        n = max(4, int(0.0011 * self.th * W))
        for _ in range(n):
            L = rng.uniform(0.05, 0.12) * H
            x, y = rng.uniform(-0.1 * W, W), rng.uniform(0, self.th)
            cv2.line(tex, _p(x, y), _p(x + 0.22 * L, y + L), float(rng.uniform(18, 40)), 1, _AA, _SHIFT)
        tex[:H] = cv2.add(tex[:H], tex[H:])  # wrap the texture seamlessly
        self.tex = tex
        self.speed = rng.uniform(1.6, 2.2) * H / g.fps  # px per frame
        self.rows = np.arange(H)

    def draw(self, k, frame):
        off = int(round(k * self.speed))
        s = self.tex.take((self.rows - off) % self.th, axis=0)
        cv2.add(frame, cv2.cvtColor(s, cv2.COLOR_GRAY2RGB), dst=frame)


class RainVisual(Visual):
    """Big drops hitting the window: a splash (bright core + ring) and its streak at frame k."""

    DECAY = (1.0, 0.6, 0.36, 0.2, 0.1, 0.05)

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        for e in events:
            e.params["x"], e.params["y"] = self.random_point(rng, 0.08, 0.25, 0.12)
            e.params["r"] = float(rng.uniform(0.055, 0.08) * self.u + 1.0)
        self.col = _jit(rng, (225, 235, 255), 10)

    def draw(self, k, frame):
        for age, e in self.recent(k, len(self.DECAY)):
            a, x, y, r = self.DECAY[age], e.params["x"], e.params["y"], e.params["r"]
            rr = r * (1.7 + 0.45 * age)
            col = self.col

            def paint(p, ox, oy, age=age, x=x, y=y, r=r, rr=rr):
                cv2.circle(p, _p(x - ox, y - oy), _r(r * (1 + 0.15 * age)), _c(col, 0.85), -1, _AA, _SHIFT)
                cv2.circle(p, _p(x - ox, y - oy), _r(rr), _c(col, 0.6), _thick(1.2 * self.g.s), _AA, _SHIFT)
                if age == 0:
                    L = 4.0 * r
                    cv2.line(p, _p(x - ox - 0.2 * L, y - oy - L), _p(x - ox, y - oy), _c(col, 0.8),
                             _thick(0.6 * r), _AA, _SHIFT)

            _add_patch(frame, x - rr - 2, y - 5 * r - 2, x + rr + 2, y + rr + 2, paint, a)


class DrumVisual(Visual):
    """One or two drums; the stick snaps onto the skin at frame k and recoils, the skin flashes."""

    FLASH = (1.0, 0.55, 0.3, 0.14)

    def static_layout(self):
        x0, y0, x1, y1 = self.box
        n = self.sp["n_drums"]
        out = []
        for d in range(n):
            cx = x0 + (d + 0.5) * self.bw / n
            rx = min(0.36 * self.bw / n, 0.33 * self.bh)
            sy = y0 + 0.6 * self.bh
            out.append((cx, sy, rx, 0.3 * rx))
        return out

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        self.layout = self.static_layout()
        self.body = [_jit(rng, rng.choice([(170, 40, 40), (40, 70, 160), (200, 200, 205), (30, 120, 70)]), 20)
                     for _ in self.layout]
        self.skin = _jit(rng, (215, 205, 180), 12)
        self.stick_col = _jit(rng, (205, 170, 120), 12)
        self.rec = max(2, int(round(0.2 * g.fps)))
        self.by_drum = [[e for e in events if e.params["drum"] == d] for d in range(len(self.layout))]

    def static(self, bg):
        for (cx, sy, rx, ry), body in zip(self.layout, self.body):
            bh = 0.22 * self.bh
            cv2.rectangle(bg, _p(cx - rx, sy), _p(cx + rx, sy + bh), _c(body), -1, _AA, _SHIFT)
            cv2.ellipse(bg, _p(cx, sy + bh), (_r(rx), _r(ry)), 0, 0, 180, _c(body, 0.8), -1, _AA, _SHIFT)
            for f in (0.25, 0.75):  # rim hardware
                cv2.line(bg, _p(cx - rx, sy + f * bh), _p(cx + rx, sy + f * bh), _c((200, 200, 200)), 1, _AA, _SHIFT)

    def draw(self, k, frame):
        for d, ((cx, sy, rx, ry), evs) in enumerate(zip(self.layout, self.by_drum)):
            last = [e for e in evs if e.frame <= k]
            age = k - last[-1].frame if last else 10**6
            a = self.FLASH[age] if age < len(self.FLASH) else 0.0
            skin = _mix(self.skin, (255, 252, 235), a)
            cv2.ellipse(frame, _p(cx, sy), (_r(rx), _r(ry)), 0, 0, 360, skin, -1, _AA, _SHIFT)
            cv2.ellipse(frame, _p(cx, sy), (_r(rx), _r(ry)), 0, 0, 360, _c((90, 90, 90)), 1, _AA, _SHIFT)
            if a > 0:
                def halo(p, ox, oy, cx=cx, sy=sy, rx=rx, ry=ry):
                    cv2.ellipse(p, _p(cx - ox, sy - oy), (_r(1.35 * rx), _r(1.8 * ry)), 0, 0, 360,
                                _c((140, 120, 70)), _thick(2 * self.g.s), _AA, _SHIFT)
                _add_patch(frame, cx - 1.4 * rx - 2, sy - 2 * ry - 2, cx + 1.4 * rx + 2, sy + 2 * ry + 2, halo, a)
            # stick: hand (pivot) up and to the side, tip on the skin at the hit frame
            side = 1.0 if d % 2 == 0 else -1.0
            pivot = (cx + side * 1.05 * rx, sy - 0.5 * self.bh)
            hit = (cx + side * 0.15 * rx, sy)
            rest = (cx + side * 0.35 * rx, sy - 0.33 * self.bh)
            p = 1.0 if age >= self.rec else (age / self.rec) ** 0.6
            tip = (hit[0] + p * (rest[0] - hit[0]), hit[1] + p * (rest[1] - hit[1]))
            cv2.line(frame, _p(*pivot), _p(*tip), _c(self.stick_col), _thick(2.2 * self.g.s), _AA, _SHIFT)


class BallVisual(Visual):
    """A ball bouncing on parabolas between contacts; squash and a dust burst at contact."""

    DUST = 9

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        x0, y0, x1, y1 = box
        self.r = 0.075 * self.u + 1.0
        self.ground = g.floor_y
        self.hmax = max(1.0, self.ground - y0 - 2.6 * self.r)
        self.col = _jit(rng, rng.choice([(230, 120, 40), (220, 60, 60), (60, 120, 220), (230, 210, 60)]), 20)
        times = np.array([e.video_t for e in events])
        self.times = times
        d = g.duration_s
        if times.size:
            gaps = np.diff(times)
            hs = [self.hmax * float(np.clip((gp / 0.9) ** 2, 0.12, 1.0)) for gp in gaps]
            self.h0 = self.hmax * float(rng.uniform(0.6, 1.0))
            self.g_last = max(d - times[-1] + 0.2, 0.5)
            self.h_last = self.hmax * float(np.clip((self.g_last / 0.9) ** 2, 0.12, 1.0))
            self.hs = hs
        a, b = x0 + 1.5 * self.r, x1 - 1.5 * self.r
        if rng.random() < 0.5:
            a, b = b, a
        self.xa, self.xb = a, b
        for e in events:
            ang = rng.uniform(0.1, np.pi - 0.1, self.DUST)
            e.params["dust"] = np.stack([np.cos(ang), -np.abs(np.sin(ang)) * 0.5, rng.uniform(0.5, 1.2, self.DUST)], 1)
        self.dust_col = _jit(rng, (200, 180, 150), 15)

    def height(self, t: float) -> float:
        ts = self.times
        if ts.size == 0:
            return 0.0
        if t <= ts[0]:
            return self.h0 * (1.0 - (t / ts[0]) ** 2)
        if t >= ts[-1]:
            gl = self.g_last
            return max(0.0, 4 * self.h_last * (t - ts[-1]) * (ts[-1] + gl - t) / gl ** 2)
        i = int(np.searchsorted(ts, t, side="right")) - 1
        gp = ts[i + 1] - ts[i]
        return 4 * self.hs[i] * (t - ts[i]) * (ts[i + 1] - t) / gp ** 2

    def draw(self, k, frame):
        t = k / self.g.fps
        x = self.xa + (self.xb - self.xa) * t / max(self.g.duration_s, 1e-6)
        h = self.height(t)
        r = self.r
        gy = self.ground
        sh = max(0.3, 1.0 - 0.6 * h / self.hmax)
        cv2.ellipse(frame, _p(x, gy + 0.1 * r), (_r(r * sh), _r(0.22 * r * sh)), 0, 0, 360, _c((30, 25, 20)), -1, _AA, _SHIFT)
        contact = [e for e in self.events if e.frame == k]
        if contact:
            cv2.ellipse(frame, _p(x, gy - 0.68 * r), (_r(1.32 * r), _r(0.68 * r)), 0, 0, 360, _c(self.col), -1, _AA, _SHIFT)
        else:
            cv2.circle(frame, _p(x, gy - h - r), _r(r), _c(self.col), -1, _AA, _SHIFT)
            cv2.circle(frame, _p(x - 0.35 * r, gy - h - 1.35 * r), _r(0.3 * r), _c(_mix(self.col, (255, 255, 255), 0.5)), -1, _AA, _SHIFT)
        for age, e in self.recent(k, 8):
            a = 1.0 - age / 8.0
            ex = self.xa + (self.xb - self.xa) * e.video_t / max(self.g.duration_s, 1e-6)
            spread = (0.6 + 0.55 * age) * r
            dust = e.params["dust"]

            def paint(p, ox, oy, ex=ex, spread=spread, dust=dust, age=age):
                cv2.ellipse(p, _p(ex - ox, gy - 0.2 * r - oy), (_r(1.2 * r + spread), _r(0.45 * r + 0.3 * spread)), 0, 180, 360,
                            _c(self.dust_col, 0.8), -1, _AA, _SHIFT)
                if age < 2:
                    cv2.ellipse(p, _p(ex - ox, gy - oy), (_r(2.2 * r), _r(0.4 * r)), 0, 0, 360, _c((255, 240, 210)), -1, _AA, _SHIFT)
                for dx, dy, sz in dust:
                    cv2.circle(p, _p(ex + dx * spread * 1.6 - ox, gy + dy * spread - oy), _r(sz * 0.22 * r + 0.5),
                               _c(self.dust_col), -1, _AA, _SHIFT)

            ext = 2.4 * r + 1.6 * spread
            _add_patch(frame, ex - ext, gy - spread - 1.2 * r, ex + ext, gy + r, paint, 0.9 * a)


class ClapVisual(Visual):
    """Two hands that accelerate towards each other and meet exactly at frame k, then part."""

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        x0, y0, x1, y1 = box
        self.cx, self.cy = (x0 + x1) / 2, y0 + 0.45 * self.bh
        self.rx, self.ry = 0.07 * self.u + 1.0, 0.15 * self.u + 1.5
        self.amp = min(0.22 * self.bw, 0.3 * self.bh)
        self.skin = _jit(rng, [(224, 172, 105), (241, 194, 125), (198, 134, 66), (141, 85, 36), (255, 219, 172)][int(rng.integers(0, 5))], 10)
        self.shirt = _jit(rng, rng.choice([(40, 60, 120), (120, 40, 40), (50, 50, 55), (40, 100, 70)]), 20)
        self.ta, self.tr = 0.16, 0.32
        self.times = np.array([e.video_t for e in events])
        self.spark = _jit(rng, (255, 240, 150), 10)

    def static(self, bg):
        x0, y0, x1, y1 = self.box
        cv2.ellipse(bg, _p(self.cx, y1), (_r(0.3 * self.bw), _r(0.38 * self.bh)), 0, 180, 360, _c(self.shirt), -1, _AA, _SHIFT)

    def separation(self, t: float) -> float:
        f = 1.0
        ts = self.times
        if ts.size:
            nxt = ts[ts >= t - 1e-9]
            prv = ts[ts <= t + 1e-9]
            if nxt.size:
                x = min(1.0, (nxt[0] - t) / self.ta)
                f = min(f, 1.0 - (1.0 - x) ** 2)
            if prv.size:
                x = min(1.0, (t - prv[-1]) / self.tr)
                f = min(f, 1.0 - (1.0 - x) ** 2)
        return self.rx + self.amp * max(f, 0.0)

    def draw(self, k, frame):
        s = self.separation(k / self.g.fps)
        for side in (-1, 1):
            c = (self.cx + side * s, self.cy)
            cv2.line(frame, _p(c[0] + side * 0.2 * self.rx, c[1] + 0.7 * self.ry), _p(self.cx + side * 0.35 * self.bw, self.box[3]),
                     _c(self.shirt), _thick(1.6 * self.rx), _AA, _SHIFT)
            cv2.ellipse(frame, _p(*c), (_r(self.rx), _r(self.ry)), side * 8, 0, 360, _c(self.skin), -1, _AA, _SHIFT)
            cv2.ellipse(frame, _p(*c), (_r(self.rx), _r(self.ry)), side * 8, 0, 360, _c(self.skin, 0.7), 1, _AA, _SHIFT)
        for age, e in self.recent(k, 3):
            a = (1.0, 0.4, 0.12)[age]

            def paint(p, ox, oy):
                for ang in np.linspace(-np.pi * 0.9, -np.pi * 0.1, 5):
                    r0, r1 = 1.15 * self.ry, 1.7 * self.ry
                    ca, sa = math.cos(ang), math.sin(ang)
                    cv2.line(p, _p(self.cx + ca * r0 - ox, self.cy + sa * r0 - oy),
                             _p(self.cx + ca * r1 - ox, self.cy + sa * r1 - oy), _c(self.spark), _thick(1.5 * self.g.s), _AA, _SHIFT)
                cv2.circle(p, _p(self.cx - ox, self.cy - oy), _r(0.9 * self.rx), _c(self.spark, 0.8), -1, _AA, _SHIFT)

            ext = 1.8 * self.ry
            _add_patch(frame, self.cx - ext, self.cy - ext, self.cx + ext, self.cy + self.ry, paint, a)


class FootstepsVisual(Visual):
    """Side view of two legs walking; the swinging foot speeds up and lands exactly at frame k."""

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        x0, y0, x1, y1 = box
        n = len(events)
        self.ground = g.floor_y
        stride = 0.7 * self.bw / (n + 1)
        direction = 1.0 if rng.random() < 0.5 else -1.0
        start = x0 + 0.15 * self.bw if direction > 0 else x1 - 0.15 * self.bw
        self.X = {i: start + direction * (i + 2) * stride for i in range(-2, n)}
        self.dir = direction
        self.times = [e.video_t for e in events]
        self.foot_len = min(0.16 * self.u, 0.9 * max(stride, 0.05 * self.bw) + 0.06 * self.u) + 2
        self.lift = 0.12 * self.bh
        self.shoe = _jit(rng, rng.choice([(40, 30, 25), (150, 40, 40), (230, 230, 230), (60, 60, 90)]), 15)
        self.leg = _jit(rng, rng.choice([(40, 50, 90), (60, 60, 60), (110, 90, 60)]), 15)
        self.dust_col = _jit(rng, (190, 170, 140), 15)
        for e in events:
            e.params["dust"] = rng.uniform(-1, 1, (6, 2))

    def foot(self, f: int, t: float) -> tuple[float, float]:
        """Position (x of the heel, height above the floor) of foot ``f`` (0 or 1) at time ``t``."""
        ts = self.times
        n = len(ts)
        mine = [i for i in range(n) if i % 2 == f]
        x, h = self.X[f - 2], 0.0
        for i in mine:
            t_end = ts[i]
            t_prev = ts[i - 1] if i >= 1 else ts[i] - 0.4
            t_start = max(t_prev, t_end - 0.28)
            if t >= t_end:
                x = self.X[i]
                continue
            if t > t_start:
                q = (t - t_start) / (t_end - t_start)
                u = q ** 1.5
                x = self.X[i - 2] + (self.X[i] - self.X[i - 2]) * q ** 2
                h = self.lift * 4 * u * (1 - u)
            break
        return x, h

    def draw(self, k, frame):
        t = k / self.g.fps
        feet = [self.foot(0, t), self.foot(1, t)]
        hip_x = 0.5 * (feet[0][0] + feet[1][0]) + self.dir * 0.3 * self.foot_len
        hip = (hip_x, self.box[1] + 0.05 * self.bh)
        lw = _thick(0.07 * self.u)
        for x, h in feet:
            ankle = (x + self.dir * 0.2 * self.foot_len, self.ground - h - 0.35 * self.foot_len)
            cv2.line(frame, _p(*hip), _p(*ankle), _c(self.leg), lw, _AA, _SHIFT)
            xs = sorted([x - self.dir * 0.1 * self.foot_len, x + self.dir * 0.9 * self.foot_len])
            cv2.rectangle(frame, _p(xs[0], self.ground - h - 0.38 * self.foot_len), _p(xs[1], self.ground - h),
                          _c(self.shoe), -1, _AA, _SHIFT)
        for age, e in self.recent(k, 7):
            a = 1.0 - age / 7.0
            i = self.events.index(e)
            ex = self.X[i] + self.dir * 0.4 * self.foot_len
            spread = (0.4 + 0.22 * age) * self.foot_len
            dust = e.params["dust"]

            def paint(p, ox, oy, ex=ex, spread=spread, dust=dust, age=age):
                cv2.ellipse(p, _p(ex - ox, self.ground - oy), (_r(0.6 * self.foot_len + spread), _r(0.25 * self.foot_len + 0.15 * spread)),
                            0, 180, 360, _c(self.dust_col, 0.8), -1, _AA, _SHIFT)
                if age < 2:
                    cv2.ellipse(p, _p(ex - ox, self.ground - oy), (_r(1.1 * self.foot_len), _r(0.15 * self.foot_len)),
                                0, 0, 360, _c((255, 235, 200)), -1, _AA, _SHIFT)
                for dx, dy in dust:
                    cv2.circle(p, _p(ex + dx * spread - ox, self.ground - abs(dy) * 0.4 * spread - oy),
                               _r(0.06 * self.foot_len + 0.6), _c(self.dust_col), -1, _AA, _SHIFT)

            ext = spread + 1.2 * self.foot_len
            _add_patch(frame, ex - ext, self.ground - 0.5 * spread - 0.4 * self.foot_len - 2, ex + ext,
                       self.ground + 0.2 * self.foot_len + 2, paint, a)


class PianoVisual(Visual):
    """A keyboard; the played key lights up at frame k under a glowing note bar."""

    SCALE = (0, 2, 4, 5, 7, 9, 11)

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        x0, y0, x1, y1 = box
        self.n_white = sp["n_white"]
        self.kx0 = x0 + 0.04 * self.bw
        self.kw = 0.92 * self.bw / self.n_white
        self.ky0, self.ky1 = y0 + 0.6 * self.bh, y0 + 0.95 * self.bh
        self.hl = _jit(rng, rng.choice([(255, 190, 70), (90, 220, 255), (255, 110, 200), (140, 255, 120)]), 15)
        self.decay = max(1.0, 0.28 * g.fps)
        self.life = int(4 * self.decay)

    def static(self, bg):
        kx0, kw, y0, y1 = self.kx0, self.kw, self.ky0, self.ky1
        cv2.rectangle(bg, _p(kx0 - 2, y0 - 0.06 * self.bh), _p(kx0 + self.n_white * kw + 2, y1 + 2), _c((25, 22, 22)), -1, _AA, _SHIFT)
        for i in range(self.n_white):
            cv2.rectangle(bg, _p(kx0 + i * kw + 0.5, y0), _p(kx0 + (i + 1) * kw - 0.5, y1), _c((236, 234, 226)), -1, _AA, _SHIFT)
        for i in range(self.n_white - 1):
            if i % 7 in (0, 1, 3, 4, 5):
                cx = kx0 + (i + 1) * kw
                cv2.rectangle(bg, _p(cx - 0.3 * kw, y0), _p(cx + 0.3 * kw, y0 + 0.6 * (y1 - y0)), _c((20, 20, 24)), -1, _AA, _SHIFT)

    def draw(self, k, frame):
        for age, e in self.recent(k, self.life):
            a = math.exp(-age / self.decay)
            i = e.params["key"]
            kx, kw = self.kx0 + i * self.kw, self.kw
            ky0, ky1 = self.ky0, self.ky1
            cv2.rectangle(frame, _p(kx + 0.5, ky0 + 0.62 * (ky1 - ky0)), _p(kx + kw - 0.5, ky1),
                          _mix((236, 234, 226), self.hl, a), -1, _AA, _SHIFT)
            top = self.box[1] + 0.08 * self.bh

            def paint(p, ox, oy, kx=kx, kw=kw):
                cv2.rectangle(p, _p(kx + 0.12 * kw - ox, top - oy), _p(kx + 0.88 * kw - ox, ky0 - 0.07 * self.bh - oy),
                              _c(self.hl), -1, _AA, _SHIFT)

            _add_patch(frame, kx, top, kx + kw, ky0, paint, 0.85 * a)


class GlassVisual(Visual):
    """A row of glasses on a table; at frame k one vanishes in a flash and its shards fly."""

    SHARDS = 12

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        x0, y0, x1, y1 = box
        n = max(1, len(events))
        self.table = g.floor_y
        self.gh = 0.3 * self.bh
        self.gw = min(0.6 * self.bw / n, 0.55 * self.gh)
        order = rng.permutation(n)
        self.glasses = []
        for j in range(n):
            self.glasses.append(x0 + (j + 0.5) * self.bw / n)
        for e, j in zip(events, order):
            e.params["glass"] = int(j)
            v = np.stack([rng.uniform(-1, 1, self.SHARDS) * 1.3, rng.uniform(-1.6, 0.2, self.SHARDS),
                          rng.uniform(0.3, 1.0, self.SHARDS), rng.uniform(0, 2 * np.pi, self.SHARDS)], 1)
            e.params["shards"] = v
        self.broken_at = {e.params["glass"]: e.frame for e in events}
        self.tint = _jit(rng, (190, 225, 240), 12)
        self.life = max(3, int(round(0.6 * g.fps)))

    def shape(self, cx: float) -> np.ndarray:
        gw, gh, ty = self.gw, self.gh, self.table
        return np.array([[cx - gw / 2, ty - gh], [cx + gw / 2, ty - gh], [cx + 0.32 * gw, ty], [cx - 0.32 * gw, ty]])

    def draw(self, k, frame):
        for j, cx in enumerate(self.glasses):
            if k < self.broken_at.get(j, 10**9):
                pts = _pts(self.shape(cx))
                cv2.fillPoly(frame, [pts], _c(self.tint, 0.8), _AA, _SHIFT)
                cv2.polylines(frame, [pts], True, _c((245, 250, 255)), _thick(1.2 * self.g.s), _AA, _SHIFT)
        fps = self.g.fps
        for age, e in self.recent(k, self.life):
            cx = self.glasses[e.params["glass"]]
            cy = self.table - 0.5 * self.gh
            tau = age / fps
            a = 1.0 - age / self.life
            shards = e.params["shards"]
            u = self.u

            def paint(p, ox, oy, cx=cx, cy=cy, tau=tau, shards=shards, age=age):
                if age < 3:
                    cv2.circle(p, _p(cx - ox, cy - oy), _r(0.75 * self.gh), _c((255, 255, 255), (1.0, 0.35, 0.1)[age] / max(a, 1e-3)),
                               -1, _AA, _SHIFT)
                for vx, vy, sz, rot in shards:
                    px = cx + vx * u * tau
                    py = min(self.table, cy + vy * u * tau + 1.5 * u * tau * tau)
                    s = (0.025 + 0.035 * sz) * u + 0.8
                    ang = rot + 8 * tau
                    tri = np.array([[px + s * math.cos(ang + q), py + s * math.sin(ang + q)] for q in (0, 2.3, 4.1)])
                    cv2.fillPoly(p, [_pts(tri - [ox, oy])], _c(self.tint), _AA, _SHIFT)

            ext = 1.5 * u * tau + 0.8 * self.gh + 2
            _add_patch(frame, cx - ext, cy - ext, cx + ext, self.table + 2, paint, a)


class ImpactVisual(Visual):
    """The fallback scene: a shape pops in at frame k with a bright expanding ring, then fades."""

    def __init__(self, g, box, events, sp, rng):
        super().__init__(g, box, events, sp, rng)
        for e in events:
            e.params["x"], e.params["y"] = self.random_point(rng, 0.15, 0.2, 0.3)
            e.params["size"] = float(rng.uniform(0.1, 0.17) * self.u + 1)
            e.params["shape"] = int(rng.integers(0, 3))
            e.params["col"] = _jit(rng, rng.choice([(230, 80, 60), (60, 170, 230), (240, 200, 50), (120, 220, 110)]), 20)
        self.life = max(4, int(round(0.45 * g.fps)))

    def draw(self, k, frame):
        for age, e in self.recent(k, self.life):
            a = math.exp(-age / (0.3 * self.life))
            x, y, s = e.params["x"], e.params["y"], e.params["size"]
            col, shape = e.params["col"], e.params["shape"]
            rr = s * (1.3 + 0.6 * age)

            def paint(p, ox, oy, x=x, y=y, s=s, col=col, shape=shape, rr=rr):
                if shape == 0:
                    cv2.circle(p, _p(x - ox, y - oy), _r(s), _c(col), -1, _AA, _SHIFT)
                elif shape == 1:
                    cv2.rectangle(p, _p(x - s - ox, y - s - oy), _p(x + s - ox, y + s - oy), _c(col), -1, _AA, _SHIFT)
                else:
                    tri = np.array([[x, y - 1.2 * s], [x + s, y + 0.8 * s], [x - s, y + 0.8 * s]]) - [ox, oy]
                    cv2.fillPoly(p, [_pts(tri)], _c(col), _AA, _SHIFT)
                cv2.circle(p, _p(x - ox, y - oy), _r(rr), _c((255, 255, 255)), _thick(1.5 * self.g.s), _AA, _SHIFT)

            _add_patch(frame, x - rr - 2, y - rr - 2, x + rr + 2, y + rr + 2, paint, a)


class DriftVisual:
    """Ambience: a wide static picture seen through a slowly panning, gently breathing camera."""

    def __init__(self, cls: str, g: Geometry, rng: np.random.Generator, night: bool):
        self.g = g
        H, W = g.height, g.width
        s = g.s
        self.vx = rng.uniform(8.0, 14.0) * s * (1 if rng.random() < 0.5 else -1)  # px / s
        self.ax, self.ay = rng.uniform(0.5, 2.0) * s, rng.uniform(0.3, 1.2) * s
        self.fx, self.fy = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3)
        self.ph = rng.uniform(0, 2 * np.pi, 3)
        self.breath = rng.uniform(0.01, 0.03)
        self.vy = rng.uniform(1.5, 3.0) * s * (1 if rng.random() < 0.5 else -1)
        mx = int(math.ceil(abs(self.vx) * g.duration_s / 2 + self.ax)) + 4
        my = int(math.ceil(abs(self.vy) * g.duration_s / 2 + self.ay)) + 4
        self.mx, self.my = mx, my
        WW, HH = W + 2 * mx, H + 2 * my
        tex = _lowfreq(rng, HH, WW, 9.0)
        fine = _lowfreq(rng, HH, WW, 40.0)
        dim = 0.45 if night else 1.0
        hz = int(round(rng.uniform(0.4, 0.55) * HH))
        if cls == "wind":
            img = _vgrad(HH, WW, _jit(rng, (120, 150, 190), 20), _jit(rng, (200, 205, 210), 15))
            img *= 0.8 + 0.4 * tex[..., None]
            grass = _vgrad(HH - hz, WW, _jit(rng, (110, 140, 60), 20), _jit(rng, (60, 90, 35), 15))
            stripes = 0.8 + 0.2 * np.sin(np.arange(WW, dtype=np.float32) * rng.uniform(0.6, 1.2))[None, :, None]
            img[hz:] = grass * stripes * (0.8 + 0.4 * fine[hz:, :, None])
        elif cls == "ocean":
            img = _vgrad(HH, WW, _jit(rng, (110, 160, 210), 20), _jit(rng, (200, 215, 225), 15))
            img *= 0.9 + 0.2 * tex[..., None]
            sea = _vgrad(HH - hz, WW, _jit(rng, (30, 80, 120), 15), _jit(rng, (20, 60, 90), 15))
            yy = np.arange(HH - hz, dtype=np.float32)[:, None]
            waves = 0.85 + 0.15 * np.sin(yy * (0.5 + yy / HH) + 6 * tex[hz:] )
            img[hz:] = sea * waves[..., None] * (0.9 + 0.2 * fine[hz:, :, None])
        elif cls == "hum":
            img = _vgrad(HH, WW, _jit(rng, (60, 58, 55), 10), _jit(rng, (35, 33, 32), 10))
            yy, xx = np.mgrid[0:HH, 0:WW].astype(np.float32)
            lx, ly = rng.uniform(0.3, 0.7) * WW, rng.uniform(0.2, 0.4) * HH
            glow = np.exp(-(((xx - lx) / (0.25 * WW)) ** 2 + ((yy - ly) / (0.35 * HH)) ** 2))
            img += glow[..., None] * _jit(rng, (120, 100, 60), 15).astype(np.float32)
            bx = rng.uniform(0.15, 0.6) * WW
            cv2.rectangle(img, _p(bx, 0.55 * HH), _p(bx + 0.25 * WW, 0.9 * HH), _c(_jit(rng, (90, 95, 100), 15)), -1, _AA, _SHIFT)
            img *= 0.9 + 0.2 * tex[..., None]
        elif cls == "room":
            img = _vgrad(HH, WW, _jit(rng, (190, 180, 165), 15), _jit(rng, (150, 140, 125), 15))
            img[hz + int(0.2 * HH):] = _vgrad(HH - hz - int(0.2 * HH), WW, _jit(rng, (120, 95, 70), 15), _jit(rng, (90, 70, 50), 15))
            wx = rng.uniform(0.1, 0.6) * WW
            cv2.rectangle(img, _p(wx, 0.15 * HH), _p(wx + 0.3 * WW, 0.5 * HH), _c(_jit(rng, (225, 230, 235), 10)), -1, _AA, _SHIFT)
            img *= 0.92 + 0.16 * tex[..., None]
        else:  # ambience: a forest / meadow
            img = _vgrad(HH, WW, _jit(rng, (150, 180, 150), 20), _jit(rng, (50, 80, 45), 15))
            for _ in range(int(rng.integers(6, 14))):
                x, w = rng.uniform(0, WW), rng.uniform(0.03, 0.08) * WW
                cv2.rectangle(img, _p(x, 0.1 * HH), _p(x + w, HH), _c(_jit(rng, (45, 55, 35), 12)), -1, _AA, _SHIFT)
            img *= 0.75 + 0.5 * (0.5 * tex + 0.5 * fine)[..., None]
        if cls in ("hum", "room"):  # surface grain, so that the drift is visible
            img *= 0.75 + 0.5 * fine[..., None]
        self.img = _u8(img * (0.75 if night else 1.0))
        self.waves = None
        if cls == "ocean":  # swell rolling towards the camera on the sea, a tall periodic texture
            self.sea_top = hz - my  # first sea row in frame coordinates (before the drift)
            period = max(6, int(round(0.12 * H)))
            rows = np.arange(4 * period, dtype=np.float32)
            prof = 0.82 + 0.18 * np.sin(2 * np.pi * rows / period)
            self.waves = np.repeat(prof[:, None], W, axis=1) * (0.95 + 0.1 * _lowfreq(rng, 4 * period, W, 12.0))
            self.wave_v = rng.uniform(0.15, 0.25) * H  # px / s

    def draw(self, k: int) -> np.ndarray:
        t = k / self.g.fps
        H, W = self.g.height, self.g.width
        ox = self.mx + (self.vx * t - self.vx * self.g.duration_s / 2) + self.ax * math.sin(2 * np.pi * self.fx * t + self.ph[0])
        oy = self.my + (self.vy * t - self.vy * self.g.duration_s / 2) + self.ay * math.sin(2 * np.pi * self.fy * t + self.ph[1])
        out = cv2.getRectSubPix(self.img, (W, H), (ox + (W - 1) / 2.0, oy + (H - 1) / 2.0))
        gain = 1.0 + self.breath * math.sin(2 * np.pi * 0.2 * t + self.ph[2])
        if self.waves is not None:
            top = int(np.clip(round(self.sea_top - (oy - self.my)), 0, H))
            if top < H:
                n = self.waves.shape[0]
                pos = (np.arange(top, H) - self.wave_v * t) % n
                i0 = pos.astype(np.int64)
                fr = (pos - i0)[:, None]
                w = self.waves[i0] * (1 - fr) + self.waves[(i0 + 1) % n] * fr
                sea = out[top:].astype(np.float32) * (gain * w)[..., None]
                out[top:] = np.clip(sea + 0.5, 0, 255).astype(np.uint8)
                out[:top] = cv2.convertScaleAbs(out[:top], alpha=gain)
                return out
        return cv2.convertScaleAbs(out, alpha=gain)


VISUALS: dict[str, type[Visual]] = {
    "thunder": ThunderVisual, "rain": RainVisual, "drum": DrumVisual, "ball": BallVisual,
    "clap": ClapVisual, "footsteps": FootstepsVisual, "piano": PianoVisual, "glass": GlassVisual,
    "impact": ImpactVisual,
}


# --------------------------------------------------------------------------------------------
# Sounds (each returns the waveform from its onset; attack <= 5 ms, most are ~0.5 ms)
# --------------------------------------------------------------------------------------------


def sound_thunder(rng, sr, ep):
    dist = float(ep.get("distance_m", rng.uniform(20, 400)))
    far = min(1.0, max(0.0, (dist - 40.0) / 400.0))  # 0 near .. 1 distant
    n = int((1.6 + 0.6 * far) * sr)
    t = _time(n, sr)
    crack = _noise(rng, n) * np.exp(-t / (0.045 - 0.02 * far))
    if far > 0.3:
        crack = _filt(np.r_[np.zeros(int(0.01 * sr), np.float32), crack], "lowpass", 3000 - 1500 * far, sr)[int(0.01 * sr):]
    crack *= (1.0 - 0.45 * far)
    rumble = _filtered_noise(rng, n, sr, "lowpass", 180 - 80 * far, order=2)
    mod = 1.0 + 0.6 * _smooth_mod(rng, n, sr, 1.0, 4.0, 3)
    tau = rng.uniform(0.5, 0.8) + 0.3 * far
    env = (1.0 - np.exp(-t / 0.02)) * np.exp(-t / tau) * mod
    x = crack + 0.45 * rumble * env
    return _ramp(_fade_out(x, sr), sr)


def sound_rain(rng, sr, ep):
    n = int(0.09 * sr)
    t = _time(n, sr)
    f0 = float(rng.uniform(1800, 4200))
    f = f0 * (1.0 + 0.4 * (1.0 - np.exp(-t / 0.012)))
    phase = 2 * np.pi * np.cumsum(f) / sr
    plink = np.sin(phase).astype(np.float32) * np.exp(-t / 0.014)
    click = _noise(rng, n) * np.exp(-t / 0.0015)
    return _ramp(float(ep.get("amp", rng.uniform(0.5, 0.9))) * (0.7 * click + 0.6 * plink), sr)


def sound_drum(rng, sr, ep):
    snare = bool(ep.get("snare", rng.random() < 0.4))
    f0 = float(ep.get("f0", rng.uniform(180, 240) if snare else rng.uniform(85, 150)))
    n = int(0.55 * sr)
    t = _time(n, sr)
    phase = 2 * np.pi * f0 * (t + 0.6 * 0.018 * (1 - np.exp(-t / 0.018))) + np.pi / 2
    tone = np.sin(phase).astype(np.float32) * np.exp(-t / (0.09 if snare else 0.2))
    wires = _filtered_noise(rng, n, sr, "bandpass", 1500, 7000) * np.exp(-t / (0.06 if snare else 0.006))
    return _ramp(0.8 * tone + (0.5 if snare else 0.35) * wires, sr)


def sound_ball(rng, sr, ep):
    n = int(0.3 * sr)
    t = _time(n, sr)
    f = float(rng.uniform(70, 160))
    thud = _tone(f, t) * np.exp(-t / 0.05)
    body = _filtered_noise(rng, n, sr, "lowpass", 1500) * np.exp(-t / 0.008)
    return _ramp(float(ep.get("amp", 1.0)) * (0.8 * thud + 0.4 * body), sr)


def sound_clap(rng, sr, ep):
    n = int(0.3 * sr)
    t = _time(n, sr)
    fc = float(rng.uniform(900, 2200))
    x = _filtered_noise(rng, n, sr, "bandpass", fc * 0.6, fc * 1.8)
    env = np.exp(-t / rng.uniform(0.014, 0.024)) + 0.12 * np.exp(-t / 0.09)
    for dt in (rng.uniform(0.002, 0.005), rng.uniform(0.006, 0.011)):  # micro-bursts of a real clap
        env += 0.35 * np.where(t >= dt, np.exp(-(t - dt) / 0.004), 0.0)
    return _ramp(0.6 * x * env.astype(np.float32), sr)


def sound_footsteps(rng, sr, ep):
    n = int(0.3 * sr)
    t = _time(n, sr)
    thump = _tone(rng.uniform(55, 95), t) * np.exp(-t / 0.045)
    body = _filtered_noise(rng, n, sr, "lowpass", rng.uniform(400, 800)) * np.exp(-t / 0.012)
    heel = _noise(rng, n) * np.exp(-t / 0.0015)
    x = 0.8 * thump + 0.5 * body + 0.3 * heel
    d = int(rng.uniform(0.03, 0.06) * sr)  # toe after heel
    x[d:] += 0.3 * (body[: n - d] * np.exp(-t[: n - d] / 0.01))
    return _ramp(x, sr)


def sound_piano(rng, sr, ep):
    midi = float(ep.get("midi", rng.integers(55, 80)))
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    n = int(1.6 * sr)
    t = _time(n, sr)
    tau0 = rng.uniform(0.6, 1.1) * (440.0 / f0) ** 0.3
    x = np.zeros(n, np.float32)
    for h in range(1, 11):
        fh = h * f0 * math.sqrt(1 + 0.0004 * h * h)
        if fh >= 0.45 * sr:
            break
        amp = rng.uniform(0.7, 1.3) / h ** 1.1
        x += amp * np.sin(2 * np.pi * fh * t + rng.uniform(0, 2 * np.pi)).astype(np.float32) * np.exp(-t / (tau0 / (1 + 0.35 * (h - 1))))
    x = _peak_to(x, 0.6)
    att = int(0.002 * sr)
    x[:att] *= np.arange(1, att + 1, dtype=np.float32) / att
    hammer = _noise(rng, n) * np.exp(-t / 0.003)
    x += 0.25 * hammer
    return _ramp(_fade_out(x, sr), sr)


def sound_glass(rng, sr, ep):
    n = int(0.9 * sr)
    t = _time(n, sr)
    f1 = rng.uniform(1800, 3200)
    x = np.zeros(n, np.float32)
    for i, ratio in enumerate((1.0, 2.32, 3.71, 4.95, 6.13, 7.87)):
        f = f1 * ratio * rng.uniform(0.98, 1.02)
        if f >= 0.45 * sr:
            break
        x += (0.5 / (1 + 0.5 * i)) * _tone(f, t, rng.uniform(0, 2 * np.pi)) * np.exp(-t / (rng.uniform(0.2, 0.45) / (1 + 0.3 * i)))
    crash = _filtered_noise(rng, n, sr, "highpass", 2000) * np.exp(-t / 0.05)
    x += 0.7 * crash
    for _ in range(6):  # tinkles of falling shards
        d = int(rng.uniform(0.03, 0.4) * sr)
        m = min(int(0.03 * sr), n - d)
        f = rng.uniform(3500, 7500)
        if f < 0.45 * sr and m > 0:
            x[d:d + m] += 0.15 * _tone(f, t[:m]) * np.exp(-t[:m] / 0.008)
    return _ramp(_fade_out(x, sr), sr)


def sound_impact(rng, sr, ep):
    n = int(0.35 * sr)
    t = _time(n, sr)
    f = rng.uniform(180, 420)
    x = 0.7 * _tone(f, t) * np.exp(-t / 0.07) + 0.3 * _tone(2.7 * f, t) * np.exp(-t / 0.03)
    x += 0.6 * _noise(rng, n) * np.exp(-t / 0.004)
    return _ramp(x.astype(np.float32), sr)


SOUNDS: dict[str, Callable[[np.random.Generator, int, dict], np.ndarray]] = {
    "thunder": sound_thunder, "rain": sound_rain, "drum": sound_drum, "ball": sound_ball,
    "clap": sound_clap, "footsteps": sound_footsteps, "piano": sound_piano, "glass": sound_glass,
    "impact": sound_impact,
}


def bed(cls: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray | None:
    """Continuous sound without onsets (smooth envelopes only), or None."""
    if n <= 0:
        return None
    mod = lambda lo=0.08, hi=0.5: _smooth_mod(rng, n, sr, lo, hi)  # noqa: E731
    if cls == "thunder":
        return 0.012 * _pink(rng, n, sr, 30, 400, 0.7) * (1 + 0.3 * mod())
    if cls == "rain":
        return 0.045 * _pink(rng, n, sr, 400, 10000, 0.2) * (1 + 0.1 * mod())
    if cls == "wind":
        a = _pink(rng, n, sr, 120, 1500, 0.6) * np.maximum(0.25, 1 + 0.6 * mod(0.1, 0.5))
        b = _pink(rng, n, sr, 500, 3000, 0.3) * np.maximum(0.0, 0.5 + 0.5 * mod(0.1, 0.4))
        return 0.07 * a + 0.02 * b
    if cls == "hum":
        t = _time(n, sr)
        mains = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(a * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 6.3)) for h, a in
                zip(range(1, 7), (1.0, 0.5, 0.35, 0.2, 0.12, 0.08)) if mains * h < 0.45 * sr)
        return (0.06 * x * (1 + 0.05 * mod())).astype(np.float32) + 0.004 * _pink(rng, n, sr)
    if cls == "ocean":
        t = _time(n, sr)
        swell = 0.55 + 0.45 * np.sin(2 * np.pi * t / rng.uniform(5, 8) + rng.uniform(0, 6.3))
        return (0.1 * _pink(rng, n, sr, 40, 1200, 0.6) * swell + 0.02 * _pink(rng, n, sr, 1500, 9000, 0.2) * swell).astype(np.float32)
    if cls == "room":
        return 0.008 * _pink(rng, n, sr, 30, 2000, 0.5) + 0.002 * _pink(rng, n, sr, 90, 130, 0.0)
    if cls == "ambience":
        return 0.03 * _pink(rng, n, sr, 80, 6000, 0.4) * (1 + 0.2 * mod())
    return None


def _place(buf: np.ndarray, snd: np.ndarray, start: int) -> None:
    a0, a1 = max(start, 0), min(start + snd.size, buf.size)
    if a1 > a0:
        buf[a0:a1] += snd[a0 - start: a1 - start]


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


def seed_words(seed: int, text: str) -> list[int]:
    """Entropy for ``np.random.default_rng``: the request seed and a stable hash of the prompt."""
    return [int(seed) % (1 << 64), zlib.crc32((text or "").encode("utf-8"))]


class World:
    """One prompt + seed + geometry: a scene, an event plan, and renderers for both modalities.

    Random streams (``np.random.default_rng([seed, crc32(text), stream])``): 1 scene and plan,
    2 visual details, 3 audio beds, 1000+i the sound of event i. Knob streams live in
    :mod:`mova_bench.generators.procedural`.
    """

    def __init__(self, text: str, seed: int, g: Geometry):
        self.text, self.seed, self.g = text, seed, g
        self.spec = parse_prompt(text)
        self.words = seed_words(seed, text)
        rng = self.rng(1)
        sp = self.spec
        self.distance_m = None
        self.delay_s = 0.0
        if sp.primary == "thunder":
            lo, hi = THUNDER_DISTANCE_M[sp.distance or "mid"]
            self.distance_m = float(rng.uniform(lo, hi))
            self.delay_s = self.distance_m / SPEED_OF_SOUND_M_S
        self.scene_params: dict[str, dict[str, Any]] = {
            "thunder": {"distance": sp.distance, "distance_m": self.distance_m},
            "drum": {"n_drums": 2 if g.width / max(1, len(sp.event_classes)) >= 1.1 * g.height else 1,
                     "f0": [float(rng.uniform(85, 150)), float(rng.uniform(180, 240))]},
            "piano": {"n_white": 14 if g.width / max(1, len(sp.event_classes)) >= 140 else
                      max(5, int(g.width / max(1, len(sp.event_classes)) // 10)),
                      "base": int(rng.choice([48, 55, 60]))},
        }
        self.events = self._plan(rng)

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([*self.words, int(stream)])

    # -- plan -------------------------------------------------------------------------------
    def _plan(self, rng: np.random.Generator) -> list[Event]:
        classes = self.spec.event_classes
        if not classes:
            return []
        g = self.g
        d = g.duration_s
        scale = d / 4.0
        n_lo = max(1, int(round(min(EVENT_RATE[c][0] for c in classes) * scale)))
        n_hi = max(n_lo, int(round(max(EVENT_RATE[c][1] for c in classes) * scale)))
        gap_s = max(MIN_EVENT_GAP_S, *(EVENT_RATE[c][2] for c in classes))
        eps = 1e-9
        k_min = int(math.ceil(EVENT_START_S * g.fps - eps))
        k_max = min(g.n_frames - 1, int(math.floor((d - EVENT_END_MARGIN_S - self.delay_s) * g.fps + eps)))
        gap = int(math.ceil(gap_s * g.fps - eps))
        frames = plan_frames(rng, n_lo, n_hi, k_min, k_max, gap)
        labels = list(classes) + [classes[int(i)] for i in rng.integers(0, len(classes), max(0, len(frames) - len(classes)))]
        labels = [labels[int(i)] for i in rng.permutation(len(labels))][: len(frames)]
        events = [Event(c, k, k / g.fps) for c, k in zip(labels, frames)]
        sp_drum, sp_piano = self.scene_params["drum"], self.scene_params["piano"]
        for e in events:
            if e.cls == "drum":
                e.params["drum"] = int(rng.integers(0, sp_drum["n_drums"]))
                e.params["f0"] = sp_drum["f0"][e.params["drum"]]
                e.params["snare"] = e.params["drum"] == 1
            elif e.cls == "piano":
                key = int(rng.integers(0, sp_piano["n_white"]))
                e.params["key"] = key
                e.params["midi"] = sp_piano["base"] + 12 * (key // 7) + PianoVisual.SCALE[key % 7]
            elif e.cls == "thunder":
                e.params["distance_m"] = self.distance_m
            elif e.cls == "rain":
                e.params["amp"] = float(rng.uniform(0.55, 0.95))
        balls = [e for e in events if e.cls == "ball"]
        for prev, e in zip([None, *balls[:-1]], balls):  # louder after a longer (higher) flight
            gp = e.video_t - prev.video_t if prev is not None else 0.8
            e.params["amp"] = float(np.clip(0.45 + 0.6 * gp, 0.5, 1.0))
        return events

    # -- video ------------------------------------------------------------------------------
    def render_video(self) -> np.ndarray:
        g, sp = self.g, self.spec
        T, H, W = g.n_frames, g.height, g.width
        video = np.empty((T, H, W, 3), np.uint8)
        rng = self.rng(2)
        if sp.primary in AMBIENT_CLASSES:
            drift = DriftVisual(sp.primary, g, rng, sp.night)
            for k in range(T):
                video[k] = drift.draw(k)
            return video
        bg = environment(sp.primary, g, rng, sp.night)
        visuals: list[Visual] = []
        if sp.primary in ("thunder", "rain", "impact"):
            cls = sp.primary
            visuals.append(VISUALS[cls](g, (0.0, 0.0, float(W), float(H)), [e for e in self.events if e.cls == cls],
                                        self.scene_params.get(cls, {}), rng))
        else:
            n = len(sp.event_classes)
            for j, cls in enumerate(sp.event_classes):
                box = (j * W / n, 0.0, (j + 1) * W / n, float(H))
                visuals.append(VISUALS[cls](g, box, [e for e in self.events if e.cls == cls], self.scene_params.get(cls, {}), rng))
        if "rain" in sp.layers:
            visuals.insert(0, RainLayer(g, (0.0, 0.0, float(W), float(H)), [], {}, rng))
        for v in visuals:
            v.static(bg)
        base = _u8(bg)
        for k in range(T):
            frame = video[k]
            frame[...] = base
            for v in visuals:
                v.draw(k, frame)
        return video

    # -- audio ------------------------------------------------------------------------------
    def render_audio(self, audio_times: list[float], sound_classes: list[str], bed_class: str | None = None) -> np.ndarray:
        """Mix beds and one sound per event at ``audio_times`` (s), played as ``sound_classes``."""
        g, sp = self.g, self.spec
        sr, N = g.sample_rate, g.n_samples
        out = np.zeros(N, np.float32)
        rng = self.rng(3)
        beds = []
        primary_bed = bed_class or sp.primary
        beds.append((primary_bed, 1.0))
        if "rain" in sp.layers and sp.primary != "rain":
            beds.append(("rain", 1.0))
        beds += [(c, 0.5) for c in sp.layers if c in AMBIENT_CLASSES and c != sp.primary]
        for cls, level in beds:
            b = bed(cls, rng, N, sr)
            if b is not None:
                out += level * b.astype(np.float32)
        for i, (e, t_a, cls) in enumerate(zip(self.events, audio_times, sound_classes)):
            ep = e.params if cls == e.cls else {}
            snd = SOUNDS[cls](self.rng(1000 + i), sr, ep)
            _place(out, snd.astype(np.float32), int(round(t_a * sr)))
        peak = float(np.max(np.abs(out))) if N else 0.0
        if peak > 0.9:
            out *= 0.9 / peak
        return out
