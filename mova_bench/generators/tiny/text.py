"""The text front end of mova-tiny: words → hashed character n-gram features (no vocabulary file).

A prompt is lower-cased and split into words (``[a-z0-9]+``); at most :data:`MAX_WORDS` are kept.
Each word becomes a bag of features, each hashed with CRC-32 into :data:`N_BUCKETS` buckets of a
learned embedding table: the word itself, and the character 3- and 4-grams of ``<word>`` (words
longer than :data:`MAX_WORD_CHARS` are cut). The word's token embedding is the mean of its
features' rows, so unseen spellings ("basketballs", "thunderclaps") share most of their rows with
seen ones. The encoder (a small transformer over these tokens, see ``model_np``) is trained from
scratch with the rest of the model.

Pure Python and numpy: the same function feeds training (torch) and sampling (numpy).
"""

from __future__ import annotations

import re
import zlib

import numpy as np

N_BUCKETS = 2048
MAX_WORDS = 32
MAX_WORD_CHARS = 12
MAX_FEATURES = 24  # per word: 1 word + (len) 3-grams + (len - 1) 4-grams <= 24 for len <= 12

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())[:MAX_WORDS]


def word_features(word: str) -> list[int]:
    w = word[:MAX_WORD_CHARS]
    b = f"<{w}>"
    feats = [f"w:{w}"] + [f"c3:{b[i:i + 3]}" for i in range(len(b) - 2)] + [f"c4:{b[i:i + 4]}" for i in range(len(b) - 3)]
    return [zlib.crc32(f.encode("utf-8")) % N_BUCKETS for f in feats[:MAX_FEATURES]]


def encode(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, weight)``, each ``(MAX_WORDS, MAX_FEATURES)``: bucket indices and mean weights
    (``1/n`` for a word's ``n`` features, 0 for padding). Row ``i`` is word ``i``; rows past the
    prompt's last word are all-zero weights (masked)."""
    idx = np.zeros((MAX_WORDS, MAX_FEATURES), np.int64)
    wt = np.zeros((MAX_WORDS, MAX_FEATURES), np.float64)
    for i, w in enumerate(words(text)):
        f = word_features(w)
        idx[i, : len(f)] = f
        wt[i, : len(f)] = 1.0 / len(f)
    return idx, wt


def n_words(text: str) -> int:
    return len(words(text))
