"""Model cards (``models/*.yaml``): which adapter, its defaults, the native output format and
where weights live. Validated with pydantic; ``mova-bench validate`` checks them without a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mova_bench.config_files import read_yaml_mapping, validation_message
from mova_bench.errors import ConfigError, UnknownNameError
from mova_bench.registry import did_you_mean, generators
from mova_bench.suites import IN_SOURCE_TREE, PACKAGE_ROOT

REPO_MODELS_DIR = PACKAGE_ROOT.parent / "models"
#: the built-in cards of an installed package (a wheel ships models/ there, see setup.py)
BUILTIN_MODELS_DIR = PACKAGE_ROOT / "data" / "models"
#: where the built-in cards are: the checkout's models/ or, installed, the packaged copy
MODELS_DIR = REPO_MODELS_DIR if IN_SOURCE_TREE else BUILTIN_MODELS_DIR


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationFormat(_Strict):
    """The model's native output; overrides the suite's defaults when set."""

    duration_s: Optional[float] = Field(None, gt=0)
    num_frames: Optional[int] = Field(None, ge=1)
    fps: Optional[float] = Field(None, gt=0)
    sample_rate: Optional[int] = Field(None, ge=8000)
    width: Optional[int] = Field(None, ge=16)
    height: Optional[int] = Field(None, ge=16)


class Weights(_Strict):
    source: Optional[str] = None  # e.g. "hf:OpenMOSS-Team/MOVA-360p"
    env: Optional[str] = None  # environment variable holding the local path
    default_path: Optional[str] = None
    download: Optional[str] = None  # the command a user runs to fetch them


class Resources(_Strict):
    gpus: float = 0
    vram_gb: Optional[float] = None
    cpus: float = 1


class ModelCard(_Strict):
    name: str
    display_name: str = ""
    description: str = ""
    adapter: str  # registry name or "module:Class"
    aliases: tuple[str, ...] = ()
    defaults: dict[str, Any] = Field(default_factory=dict)
    generation: GenerationFormat = GenerationFormat()
    weights: Weights = Weights()
    install: Optional[str] = None
    resources: Resources = Resources()
    learned: bool = True
    source: Optional[str] = Field(None, exclude=True)

    def adapter_class(self):
        from mova_bench.registry import import_object

        if ":" in self.adapter:
            return import_object(self.adapter)
        return generators.get(self.adapter)

    def weights_path(self) -> Optional[Path]:
        if self.weights.env and os.environ.get(self.weights.env):
            return Path(os.environ[self.weights.env]).expanduser()
        if self.weights.default_path:
            from mova_bench.cache import home

            raw = self.weights.default_path.replace("$MOVA_BENCH_HOME", str(home())).replace("${MOVA_BENCH_HOME}", str(home()))
            return Path(os.path.expandvars(raw)).expanduser()
        return None


def model_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("MOVA_BENCH_MODELS_PATH", "").split(os.pathsep) if p]
    return [*extra, *([REPO_MODELS_DIR] if IN_SOURCE_TREE else []), BUILTIN_MODELS_DIR]


def _read_card(path: Path) -> ModelCard:
    raw = read_yaml_mapping(path, "model card", "at least 'name' and 'adapter'")
    try:
        return ModelCard.model_validate({**raw, "source": str(path)})
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, path, "model card")) from None


def available_cards() -> dict[str, ModelCard]:
    """Name and alias → card, from ``models/`` (plus MOVA_BENCH_MODELS_PATH) and plugin generators."""
    cards: dict[str, ModelCard] = {}
    for d in model_dirs():
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.yaml")):
            card = _read_card(f)
            cards.setdefault(card.name, card)
            for alias in card.aliases:
                cards.setdefault(alias, card)
    # A generator registered by a plugin without a card gets an implicit one.
    for name in generators.names():
        cards.setdefault(name, ModelCard(name=name, adapter=name))
    return cards


def load_card(name_or_path: str) -> ModelCard:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"model card file {name_or_path!r} does not exist")
        return _read_card(p)
    cards = available_cards()
    if name_or_path not in cards:
        raise UnknownNameError(
            f"unknown model {name_or_path!r}.{did_you_mean(name_or_path, sorted(cards))} "
            f"Valid models: {', '.join(sorted(cards))}. See `mova-bench list models`."
        )
    return cards[name_or_path]
