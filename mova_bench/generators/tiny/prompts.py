"""The training prompts of mova-tiny: the built-in suites' prompts plus templated ones.

The labels never come from here: a prompt's scene and events are whatever the procedural world
makes of it (``World(text, seed, geometry)``), so any text is a valid training prompt. The
templates only make the text varied (keyword variants, several classes in one prompt, distance
and night words, prompts with no keyword at all) so that the text encoder learns the words
rather than the suites' sentences. The suites' own prompts are part of the training set (the
model is fitted to the benchmark's conditional distribution, as a generator trained on the
world would be); ``templated_prompts`` is seeded and deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHRASES: dict[str, list[str]] = {
    "thunder": ["lightning strikes", "a lightning bolt hits the ground", "thunder rolls", "a thunderstorm rages",
                "a storm breaks", "lightning flashes and thunder booms", "a thunderclap cracks", "stormy skies flash",
                "thunder rumbles", "lightning illuminates the clouds"],
    "rain": ["rain falls", "heavy rain streams down", "raindrops splash", "a light drizzle taps", "a downpour pours",
             "rainfall patters", "it is raining", "drizzling rain lands", "fat raindrops hit"],
    "drum": ["a drummer plays", "drums beat", "a snare drum is hit", "someone taps the tom-toms", "percussion hits",
             "bongos are struck", "congas are played", "drumming echoes", "a drum roll starts"],
    "ball": ["a ball bounces", "a basketball bounces", "a tennis ball bounces", "a football drops and bounces",
             "bouncing balls", "a rubber ball bounces", "a volleyball lands", "balls bounce"],
    "clap": ["someone claps", "hands clap", "a person claps their hands", "applause", "people applauding",
             "clapping hands", "a slow clap"],
    "footsteps": ["footsteps", "someone walking", "a person walks", "boots stomping", "footfalls", "soldiers marching",
                  "slow steps", "stepping feet"],
    "piano": ["a piano plays", "a pianist plays notes", "a melody on a keyboard", "soft piano music", "chords ring",
              "a xylophone is tapped", "marimba notes", "single notes", "a gentle melody"],
    "glass": ["a glass shatters", "a wine glass breaks", "bottles smash", "glasses crash to the floor",
              "a window shatters into shards", "a glass falls and smashes", "shattering glass"],
    "wind": ["wind blows", "a strong breeze", "gusts of wind", "howling wind", "windy weather", "a gentle breeze"],
    "hum": ["a fridge hums", "the mains hum", "a transformer buzzes", "a low drone", "an electrical hum",
            "a refrigerator humming"],
    "ocean": ["ocean waves roll", "the sea surf", "waves crash on the shore", "the tide comes in", "a beach with waves"],
    "room": ["room tone", "an empty room", "a quiet office", "air conditioning whirs", "a silent hall"],
    "ambience": ["forest ambience", "the atmosphere of a meadow", "a calm soundscape", "background noise of a forest",
                 "ambient sounds"],
    "none": ["a hammer hits a nail", "a door slams", "someone knocks on a door", "a book falls on the floor",
             "a car passes", "a bird sings", "a dog barks", "a spoon hits a cup", "typing on a laptop",
             "a cat jumps off a chair", "a pot lid drops", "a man chops wood", "coins fall on a table"],
}
PLACES = ["in an empty gym", "on a wooden floor", "in a kitchen", "on a stage", "in a concert hall", "in the street",
          "over a field", "in a dim room", "at the beach", "in a studio", "on a tin roof", "in a garage", "outside",
          "over the hills", "in a basement", "under a spotlight", "on a hard court", "in the valley", ""]
MODIFIERS = ["close to the camera", "nearby", "directly overhead", "in the distance", "far away", "on the horizon",
             "at night", "in the dark", "at dusk", "slowly", "loudly", "softly", "one at a time", "again and again",
             "under a pale sky", "on a calm afternoon", ""]
OPENERS = ["", "", "", "close-up of ", "a video of ", "wide shot: ", "slow motion, "]


def templated_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` varied prompts (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    keys = [k for k in PHRASES if k != "none"]
    out = []
    for _ in range(n):
        r = rng.random()
        k = 0 if r < 0.12 else 1 if r < 0.72 else 2 if r < 0.94 else 3
        classes = list(rng.choice(keys, size=k, replace=False)) if k else ["none"]
        parts = [str(rng.choice(PHRASES[c])) for c in classes]
        text = str(rng.choice(OPENERS)) + (" while ".join(parts) if rng.random() < 0.5 else " and ".join(parts))
        place = str(rng.choice(PLACES))
        if place:
            text += " " + place
        for _ in range(int(rng.integers(0, 3))):
            m = str(rng.choice(MODIFIERS))
            if m:
                text += (", " if rng.random() < 0.5 else " ") + m
        if rng.random() < 0.3:
            text = text[0].upper() + text[1:]
        out.append(text + ("." if rng.random() < 0.6 else ""))
    return out


def suite_prompts(prompts_dir: Path | None = None) -> list[str]:
    """Every prompt text of the built-in suites (sorted by suite file, then as listed)."""
    import yaml

    from mova_bench.suites import BUILTIN_SUITES_DIR, IN_SOURCE_TREE, REPO_SUITES_DIR

    d = prompts_dir or (REPO_SUITES_DIR if IN_SOURCE_TREE else BUILTIN_SUITES_DIR)
    texts: list[str] = []
    for f in sorted(Path(d).glob("*.yaml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        texts += [str(p["text"]) for p in doc.get("prompts", []) if isinstance(p, dict) and p.get("text")]
    return list(dict.fromkeys(texts))
