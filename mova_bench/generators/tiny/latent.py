"""mova-tiny's latent space, and its decoder: the procedural world's renderer.

The model generates two vectors per clip, one per tower, on a fixed 4 s canvas
(:data:`CANVAS_S`). They are what a VAE latent is to MOVA: the renderer (:class:`LatentWorld`,
the world's own drawing and sound code) turns them into frames and a waveform, deterministically
for a given seed, and cannot correct them. Everything the metrics measure — which scene and
which events, how many, their classes, pitch and loudness, and when each sound starts relative
to its picture — is decided by the model.

Video tower (:data:`VIDEO_DIM` = 32 + 8 × 12)
    global token: the scene (primary class, one-hot over 14), the classes that carry events
    (membership over the 9 onset classes) and their left-to-right order (6 object classes), a
    rain layer, night, and the thunder distance (log scale).
    8 event slots (sorted by time): present, class (one-hot over 9), time of the visual
    transient, and a variant (which drum; which piano key).
Audio tower (:data:`AUDIO_DIM` = 21 + 8 × 13)
    global token: the ambience bed (one-hot over 14), a rain bed, ambience layers at half level
    (5), the thunder distance (the rumble's timbre).
    8 event slots: present, sound class (one-hot over 9), onset time, pitch (drum f0, piano
    note) and loudness (rain drop, ball thud).

Slot ``i`` of the audio tower is the sound of slot ``i`` of the video tower; nothing but the
model ties them together: the audio onset is an absolute time, so the sync of a clip is how
well the audio tower reads the video tower's times through the bridge (and adds the thunder's
physical delay). One-hot and flag coordinates are ±1, times ``TIME_SCALE · (2 t / 4 s − 1)``.

Decoding is total: any real vectors give a clip (argmax for categories, sign for flags,
times rounded to the frame grid and clamped to frames 1..T-1, a second visual event of the same
class on the same frame dropped, parameters clamped to physical ranges
wide enough that an over-guided latent is rendered as it is, e.g. a drum tuned too low).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mova_bench.generators.world import (
    ALL_CLASSES,
    AMBIENT_CLASSES,
    OBJECT_CLASSES,
    ONSET_CLASSES,
    SPEED_OF_SOUND_M_S,
    Event,
    Geometry,
    SceneSpec,
    World,
    seed_words,
)

CANVAS_S = 4.0
N_SLOTS = 8
TIME_SCALE = 1.5

# video global token
VG_PRIMARY = slice(0, 14)
VG_MEMBER = slice(14, 23)
VG_ORDER = slice(23, 29)
VG_RAIN = 29
VG_NIGHT = 30
VG_DIST = 31
VG_DIM = 32
# video event slot
VS_PRESENT = 0
VS_CLASS = slice(1, 10)
VS_TIME = 10
VS_VARIANT = 11
VS_DIM = 12
# audio global token
AG_BED = slice(0, 14)
AG_RAIN = 14
AG_AMBIENT = slice(15, 20)
AG_DIST = 20
AG_DIM = 21
# audio event slot
AS_PRESENT = 0
AS_CLASS = slice(1, 10)
AS_TIME = 10
AS_PITCH = 11
AS_AMP = 12
AS_DIM = 13

VIDEO_DIM = VG_DIM + N_SLOTS * VS_DIM
AUDIO_DIM = AG_DIM + N_SLOTS * AS_DIM

#: per-coordinate loss weight of the onset times (they matter most: 10 ms is 0.0075 in latent units)
TIME_LOSS_WEIGHT = 8.0


def video_weights() -> np.ndarray:
    w = np.ones(VIDEO_DIM)
    w[VG_DIM + VS_TIME :: VS_DIM] = TIME_LOSS_WEIGHT
    return w


def audio_weights() -> np.ndarray:
    w = np.ones(AUDIO_DIM)
    w[AG_DIM + AS_TIME :: AS_DIM] = TIME_LOSS_WEIGHT
    return w


def time_to_latent(t: float) -> float:
    return TIME_SCALE * (2.0 * t / CANVAS_S - 1.0)


def latent_to_time(z: float) -> float:
    return (z / TIME_SCALE + 1.0) * CANVAS_S / 2.0


def dist_to_latent(d: float) -> float:
    return (math.log10(max(d, 1.0)) - 2.0) / 0.5


def latent_to_dist(z: float) -> float:
    return float(10.0 ** (2.0 + 0.5 * float(np.clip(z, -3.0, 2.5))))  # 3 m .. 1.8 km


def distance_category(d: float) -> str:
    return "near" if d < 70.0 else "mid" if d < 275.0 else "distant"


def _flag(b: bool) -> float:
    return 1.0 if b else -1.0


def _onehot(n: int, i: int | None) -> np.ndarray:
    v = -np.ones(n)
    if i is not None:
        v[i] = 1.0
    return v


# --------------------------------------------------------------------------------------------
# world → latents (training targets)
# --------------------------------------------------------------------------------------------


def encode_world(world: World) -> tuple[np.ndarray, np.ndarray]:
    """The latents of a procedural world's plan: what the model learns to generate."""
    sp = world.spec
    v = np.zeros(VIDEO_DIM)
    a = np.zeros(AUDIO_DIM)
    v[VG_PRIMARY] = _onehot(14, ALL_CLASSES.index(sp.primary))
    v[VG_MEMBER] = [_flag(c in sp.event_classes) for c in ONSET_CLASSES]
    order = np.zeros(6)
    for rank, c in enumerate(sp.event_classes):
        if c in OBJECT_CLASSES:
            order[OBJECT_CLASSES.index(c)] = rank - 1.0
    v[VG_ORDER] = order
    v[VG_RAIN] = _flag("rain" in sp.layers and sp.primary != "rain")
    v[VG_NIGHT] = _flag(sp.night)
    dist = dist_to_latent(world.distance_m) if world.distance_m is not None else 0.0
    v[VG_DIST] = dist
    a[AG_BED] = _onehot(14, ALL_CLASSES.index(sp.primary))
    a[AG_RAIN] = _flag("rain" in sp.layers and sp.primary != "rain")
    a[AG_AMBIENT] = [_flag(c in sp.layers and c != sp.primary) for c in AMBIENT_CLASSES]
    a[AG_DIST] = dist
    events = sorted(world.events, key=lambda e: e.frame)
    assert len(events) <= N_SLOTS, len(events)
    for i in range(N_SLOTS):
        vs = v[VG_DIM + i * VS_DIM : VG_DIM + (i + 1) * VS_DIM]
        as_ = a[AG_DIM + i * AS_DIM : AG_DIM + (i + 1) * AS_DIM]
        if i >= len(events):
            vs[VS_PRESENT] = as_[AS_PRESENT] = -1.0
            continue
        e = events[i]
        ci = ONSET_CLASSES.index(e.cls)
        vs[VS_PRESENT] = as_[AS_PRESENT] = 1.0
        vs[VS_CLASS] = _onehot(9, ci)
        as_[AS_CLASS] = _onehot(9, ci)
        vs[VS_TIME] = time_to_latent(e.video_t)
        as_[AS_TIME] = time_to_latent(e.video_t + (world.delay_s if e.cls == "thunder" else 0.0))
        if e.cls == "drum":
            vs[VS_VARIANT] = _flag(e.params["drum"] == 1)
            as_[AS_PITCH] = (e.params["f0"] - 160.0) / 60.0
        elif e.cls == "piano":
            vs[VS_VARIANT] = e.params["key"] / 13.0 * 2.0 - 1.0
            as_[AS_PITCH] = (e.params["midi"] - 66.0) / 12.0
        elif e.cls == "rain":
            as_[AS_AMP] = (e.params["amp"] - 0.75) / 0.2
        elif e.cls == "ball":
            as_[AS_AMP] = (e.params["amp"] - 0.75) / 0.25
    return v, a


# --------------------------------------------------------------------------------------------
# latents → a world to render
# --------------------------------------------------------------------------------------------


@dataclass
class Decoded:
    video_spec: SceneSpec
    video_events: list[Event]
    audio_spec: SceneSpec
    audio_events: list[Event]
    audio_times: list[float]
    distance_m: float | None
    scene_params: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable: what the manifest records about the clip."""
        out: dict[str, Any] = {
            "scene": self.video_spec.scene,
            "layers": list(self.video_spec.layers),
            "audio_bed": self.audio_spec.primary,
            "audio_layers": list(self.audio_spec.layers),
            "video_events": [{"class": e.cls, "frame": int(e.frame), "video_t": round(float(e.video_t), 6)}
                             for e in self.video_events],
            "audio_events": [{"class": e.cls, "audio_t": round(float(t), 6)}
                             for e, t in zip(self.audio_events, self.audio_times)],
        }
        if self.distance_m is not None:
            out["distance_m"] = round(self.distance_m, 2)
        return out


def decode(video: np.ndarray, audio: np.ndarray, g: Geometry) -> Decoded:
    """Latents → scene specs and events for each tower (see the module docstring)."""
    v = np.asarray(video, dtype=np.float64)
    a = np.asarray(audio, dtype=np.float64)
    # ---- video scene
    primary = ALL_CLASSES[int(np.argmax(v[VG_PRIMARY]))]
    member = v[VG_MEMBER]
    order = v[VG_ORDER]
    distance_m = latent_to_dist(v[VG_DIST]) if primary == "thunder" else None
    if primary == "thunder":
        event_classes: tuple[str, ...] = ("thunder",)
    elif primary in OBJECT_CLASSES:
        others = [c for c in OBJECT_CLASSES if c != primary and member[ONSET_CLASSES.index(c)] > 0]
        others.sort(key=lambda c: order[OBJECT_CLASSES.index(c)])
        event_classes = (primary, *others[:2])
    elif primary in ("rain", "impact"):
        event_classes = (primary,)
    else:  # ambience: no events are drawn
        event_classes = ()
    layers = tuple(dict.fromkeys([primary, *event_classes, *(["rain"] if v[VG_RAIN] > 0 else [])]))
    scene = "fallback" if primary == "impact" else primary
    dcat = distance_category(distance_m) if distance_m is not None else None
    vspec = SceneSpec(scene, primary, layers, event_classes, dcat, bool(v[VG_NIGHT] > 0))
    n_cls = max(1, len(event_classes))
    scene_params: dict[str, Any] = {
        "thunder": {"distance": dcat or "mid", "distance_m": distance_m},
        "drum": {"n_drums": 2 if g.width / n_cls >= 1.1 * g.height else 1, "f0": [120.0, 210.0]},
        "piano": {"n_white": 14 if g.width / n_cls >= 140 else max(5, int(g.width / n_cls // 10)), "base": 60},
    }
    # ---- video events
    vevents: list[Event] = []
    for i in range(N_SLOTS):
        s = v[VG_DIM + i * VS_DIM : VG_DIM + (i + 1) * VS_DIM]
        if s[VS_PRESENT] <= 0:
            continue
        cls = ONSET_CLASSES[int(np.argmax(s[VS_CLASS]))]
        t = latent_to_time(s[VS_TIME])
        k = int(np.clip(round(t * g.fps), 1, max(1, g.n_frames - 1)))
        if any(o.cls == cls and o.frame == k for o in vevents):
            continue  # one transient per class and frame (the visuals look events up by value)
        e = Event(cls, k, k / g.fps)
        if cls == "drum":
            e.params["drum"] = int(s[VS_VARIANT] > 0 and scene_params["drum"]["n_drums"] > 1)
        elif cls == "piano":
            e.params["key"] = int(np.clip(round((s[VS_VARIANT] + 1.0) / 2.0 * 13.0), 0, scene_params["piano"]["n_white"] - 1))
        elif cls == "thunder":
            e.params["distance_m"] = distance_m
        vevents.append(e)
    vevents.sort(key=lambda e: e.frame)
    # ---- audio scene
    bed = ALL_CLASSES[int(np.argmax(a[AG_BED]))]
    alayers = [bed] + (["rain"] if a[AG_RAIN] > 0 and bed != "rain" else [])
    alayers += [c for c, f in zip(AMBIENT_CLASSES, a[AG_AMBIENT]) if f > 0 and c != bed]
    aspec = SceneSpec(bed, bed, tuple(dict.fromkeys(alayers)), (), None, False)
    adist = latent_to_dist(a[AG_DIST])
    # ---- audio events
    slots = []
    for i in range(N_SLOTS):
        s = a[AG_DIM + i * AS_DIM : AG_DIM + (i + 1) * AS_DIM]
        if s[AS_PRESENT] <= 0:
            continue
        cls = ONSET_CLASSES[int(np.argmax(s[AS_CLASS]))]
        t = float(np.clip(latent_to_time(s[AS_TIME]), -1.0, CANVAS_S + 1.0))
        e = Event(cls, int(round(t * g.fps)), t)
        if cls == "drum":
            f0 = float(np.clip(160.0 + 60.0 * s[AS_PITCH], 30.0, 600.0))
            e.params["f0"] = f0
            e.params["snare"] = f0 >= 165.0
        elif cls == "piano":
            e.params["midi"] = int(np.clip(round(66.0 + 12.0 * s[AS_PITCH]), 21, 108))
        elif cls == "rain":
            e.params["amp"] = float(np.clip(0.75 + 0.2 * s[AS_AMP], 0.05, 2.0))
        elif cls == "ball":
            e.params["amp"] = float(np.clip(0.75 + 0.25 * s[AS_AMP], 0.05, 2.0))
        elif cls == "thunder":
            e.params["distance_m"] = adist
        slots.append((t, e))
    slots.sort(key=lambda x: x[0])
    return Decoded(vspec, vevents, aspec, [e for _, e in slots], [t for t, _ in slots], distance_m, scene_params)


class LatentWorld(World):
    """A :class:`World` whose scene and events come from decoded latents instead of the prompt.

    It sets the attributes ``World.render_video`` and ``World.render_audio`` read (``g``,
    ``spec``, ``events``, ``scene_params``, and the seed words of the random streams 2, 3 and
    1000 + i that draw visual and sound details), so the pictures and sounds are the world's own.
    """

    def __init__(self, text: str, seed: int, g: Geometry, decoded: Decoded):  # noqa: D107 (no super: no prompt parse)
        self.text, self.seed, self.g = text, seed, g
        self.words = seed_words(seed, text)
        self.decoded = decoded
        self.distance_m = decoded.distance_m
        self.delay_s = 0.0 if decoded.distance_m is None else decoded.distance_m / SPEED_OF_SOUND_M_S
        self.scene_params = decoded.scene_params
        self.spec = decoded.video_spec
        self.events = decoded.video_events

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.decoded
        self.spec, self.events = d.video_spec, d.video_events
        video = self.render_video()
        self.spec, self.events = d.audio_spec, d.audio_events
        try:
            audio = self.render_audio(d.audio_times, [e.cls for e in d.audio_events])
        finally:
            self.spec, self.events = d.video_spec, d.video_events
        return video, audio
