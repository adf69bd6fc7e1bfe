"""Registries with lazy ``"module:Class"`` entries, "did you mean" errors and entry points.

Four registries exist: generators, features, metrics and suites. Built-in entries are strings so
heavy backends are only imported when used. Outside packages add entries through the entry-point
group ``mova_bench.plugins``: each entry point names a callable that receives the module
``mova_bench.registry`` and registers what it brings, e.g.::

    [project.entry-points."mova_bench.plugins"]
    mymodel = "my_pkg.plugin:register"

    def register(registry):
        registry.generators.register("mymodel", "my_pkg.adapter:MyGenerator")
"""

from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from mova_bench.errors import ConfigError, UnknownNameError

T = TypeVar("T")
ENTRY_POINT_GROUP = "mova_bench.plugins"


def import_object(spec: str) -> Any:
    """Import ``"package.module:Attr"``."""
    if ":" not in spec:
        raise ConfigError(f"invalid import spec {spec!r}: expected 'package.module:Attribute'")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        from mova_bench.errors import MissingDependencyError

        missing = getattr(exc, "name", None) or module_name
        raise MissingDependencyError(
            f"cannot import {module_name!r} (for {spec!r}): {exc}",
            fix=f"install the package that provides {missing!r} into this environment (pip install ...), "
            "or correct the module path",
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"{module_name!r} has no attribute {attr!r} (from {spec!r})") from exc


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class Registry(Generic[T]):
    """Name → object, where the object may be given lazily as an import string."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, obj: Any = None, *, aliases: tuple[str, ...] = (), replace: bool = False):
        """Register ``obj`` (an object or a ``"module:Attr"`` string). Usable as a decorator."""

        def _do(target: Any) -> Any:
            if not replace and (name in self._entries or name in self._aliases):
                raise ConfigError(f"{self.kind} {name!r} is already registered; pass replace=True to override")
            self._entries[name] = target
            for alias in aliases:
                self._aliases[alias] = name
            return target

        if obj is None:
            return _do
        return _do(obj)

    def names(self) -> list[str]:
        _load_plugins()
        return sorted(self._entries)

    def canonical(self, name: str) -> str:
        _load_plugins()
        name = self._aliases.get(name, name)
        if name not in self._entries:
            choices = sorted(self._entries) + sorted(self._aliases)
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, choices)} "
                f"Valid {self.kind}s: {', '.join(sorted(self._entries))}. "
                f"See `mova-bench list {self.kind}s`."
            )
        return name

    def get(self, name: str) -> T:
        name = self.canonical(name)
        obj = self._entries[name]
        if isinstance(obj, str):
            obj = import_object(obj)  # an import failure is a MissingDependencyError naming the package
            self._entries[name] = obj
        return obj

    def __contains__(self, name: str) -> bool:
        _load_plugins()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


generators: Registry[Any] = Registry("model")
features: Registry[Any] = Registry("backbone")
metrics: Registry[Any] = Registry("metric")
suites: Registry[Any] = Registry("suite")

_plugins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        hook: Callable[[Any], None] = ep.load()
        hook(importlib.import_module(__name__))


# Built-in entries (lazy).
generators.register("procedural", "mova_bench.generators.procedural:ProceduralGenerator")
generators.register("mova", "mova_bench.generators.mova:MovaGenerator")
generators.register("http", "mova_bench.generators.http:HttpGenerator")
generators.register("command", "mova_bench.generators.command:CommandGenerator")
generators.register("files", "mova_bench.generators.files:FilesGenerator")
generators.register("ltx-2", "mova_bench.generators.ltx2:LTX2Generator")
generators.register("ovi", "mova_bench.generators.ovi:OviGenerator")
generators.register("cascade", "mova_bench.generators.cascade:CascadeGenerator")
generators.register("mova-tiny", "mova_bench.generators.tiny.generator:MovaTinyGenerator")

features.register("vstats", "mova_bench.features.vstats:VideoStats")
features.register("melstats", "mova_bench.features.melstats:MelStats")
features.register("forensic", "mova_bench.features.forensic:ForensicFeatures")
features.register("sync_dsp", "mova_bench.features.sync:SyncAnalyzer")
features.register("av_align", "mova_bench.features.av_align:AVAlignAnalyzer")
features.register("openclip-vit-b-32", "mova_bench.features.openclip:OpenClipB32")
features.register("openclip-vit-l-14", "mova_bench.features.openclip:OpenClipL14")
features.register("laion-clap", "mova_bench.features.clap:LaionClap")
features.register("i3d", "mova_bench.features.i3d:I3D")
features.register("inception-v3", "mova_bench.features.inception:InceptionV3")
features.register("vggish", "mova_bench.features.vggish:Vggish")
features.register("panns-cnn14", "mova_bench.features.panns:PannsCnn14")
features.register("synchformer", "mova_bench.features.synchformer:Synchformer")
features.register("imagebind", "mova_bench.features.imagebind:ImageBind")

metrics.register("fd_video", "mova_bench.metrics.distribution:FrechetVideo")
metrics.register("fd_audio", "mova_bench.metrics.distribution:FrechetAudio")
metrics.register("kid_video", "mova_bench.metrics.distribution:KIDVideo")
metrics.register("kid_audio", "mova_bench.metrics.distribution:KIDAudio")
metrics.register("fid_frames", "mova_bench.metrics.frames:FrameFID")
metrics.register("is_audio", "mova_bench.metrics.audio_quality:InceptionScoreAudio")
metrics.register("sync_offset_ms", "mova_bench.metrics.sync:SyncOffset")
metrics.register("sync_offset_abs_ms", "mova_bench.metrics.sync:SyncOffsetAbs")
metrics.register("in_sync_rate", "mova_bench.metrics.sync:InSyncRate")
metrics.register("in_sync_rate_synchronizable", "mova_bench.metrics.sync:InSyncRateSynchronizable")
metrics.register("synchronizable_rate", "mova_bench.metrics.sync:SynchronizableRate")
metrics.register("av_align", "mova_bench.metrics.sync:AVAlign")
metrics.register("desync", "mova_bench.metrics.desync:DeSync")
metrics.register("detector_auc", "mova_bench.metrics.detector:DetectorAUC")
metrics.register("clip_score", "mova_bench.metrics.alignment:ClipScore")
metrics.register("clap_score", "mova_bench.metrics.alignment:ClapScore")
metrics.register("ib_score", "mova_bench.metrics.ib_score:IBScore")
