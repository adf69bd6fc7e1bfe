"""Pretrained weights: a registry as data (``registry.yaml``), found locally or fetched, always verified.

    from mova_bench.weights import resolve, is_present, get_entry, MissingWeightsError
    resolve("vggish")  -> Path of a verified file (size + hashes), else MissingWeightsError (exit 2)
                          whose fix is "mova-bench weights fetch vggish"
    get_entry("vggish").sha256 / .size / .licence / .filename / .layout

Files live in ``$MOVA_BENCH_HOME/weights/<name>/<filename>``; copies already in the Hugging Face or
torch hub caches are found and verified, not downloaded again (:mod:`mova_bench.weights.lookup`).
:func:`fetch` downloads (:mod:`mova_bench.weights.download`). Nothing here deserialises a file.
"""

from mova_bench.weights.catalog import (Entry, Source, entries, forget_local, get_entry, offline, register_local,
                                        user_registry_file, weights_dir)
from mova_bench.weights.download import fetch
from mova_bench.weights.errors import LicenceNotAcceptedError, MissingWeightsError, WeightsDownloadError
from mova_bench.weights.lookup import digests, hash_file, is_present, locate, resolve, verified_sha256, verify

__all__ = ["Entry", "Source", "entries", "get_entry", "register_local", "forget_local", "weights_dir",
           "user_registry_file", "offline", "resolve", "verified_sha256", "is_present", "locate", "verify", "fetch", "digests",
           "hash_file", "MissingWeightsError", "WeightsDownloadError", "LicenceNotAcceptedError"]
