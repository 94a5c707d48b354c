"""Learned layer of the injection screen: hashed n-grams + logistic regression, numpy only.

Contract:

- :func:`features` turns one text into a sparse vector ``(indices, values)`` of length
  ``2**HASH_BITS``: character 2-5-grams and word 1-2-grams of the normalised text (NFKC,
  zero-width characters removed, case folded, whitespace collapsed, first ``MAX_CHARS``
  characters), hashed with a fixed 64-bit mix (no Python ``hash``, so every process and
  machine gives the same indices), weighted ``log1p(count)``, L2-normalised.
- :class:`InjectionModel` holds the shipped weights (``alerts/models/injection_screen.npz``,
  written by ``benchmarks/train_injection_screen.py``) and scores a text: ``score`` is the
  probability-like logistic output, higher means more like an injection; ``threshold`` (chosen
  on the training split, stored with the weights) turns it into a decision.
- :func:`load_model` loads the shipped file once (cached); no network, deterministic.

The training script calls :func:`features` too, so training and inference share one
featuriser by construction.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["HASH_BITS", "MAX_CHARS", "MODEL_PATH", "InjectionModel", "features", "load_model", "normalise"]

HASH_BITS = 18
MAX_CHARS = 2000
MODEL_PATH = Path(__file__).resolve().parent / "models" / "injection_screen.npz"

_MASK = np.uint64((1 << HASH_BITS) - 1)
_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_PRIME = np.uint64(1_000_003)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


def normalise(text: str) -> str:
    """NFKC, zero-width characters removed, case folded, whitespace collapsed, cut."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text)).casefold()
    return _SPACE.sub(" ", text).strip()[:MAX_CHARS]


def _mix(h: np.ndarray, salt: int) -> np.ndarray:
    # murmur3 finaliser: spreads nearby n-gram codes over the whole table
    h = h + np.uint64(salt) * _M2
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h & _MASK


def features(text: str, tags: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Sparse feature vector of ``text``: sorted unique int64 indices and float32 values.

    ``tags`` are extra binary features (the names of the guardrail rules that matched), each
    hashed to its own index with value 1.0 next to the L2-normalised n-gram part."""
    norm = " " + normalise(text) + " "
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts = []
    with np.errstate(over="ignore"):
        for n in range(2, 6):
            if codes.size < n:
                break
            h = np.zeros(codes.size - n + 1, dtype=np.uint64)
            for k in range(n):
                h = h * _PRIME + codes[k: codes.size - n + 1 + k]
            parts.append(_mix(h, n))
        words = _WORD.findall(norm)
        if words:
            w = np.array([zlib.crc32(t.encode("utf-8")) for t in words], dtype=np.uint64)
            parts.append(_mix(w, 11))
            if w.size > 1:
                parts.append(_mix(w[:-1] * _PRIME + w[1:], 12))
    vector: dict[int, float] = {}
    if parts:
        idx, counts = np.unique(np.concatenate(parts), return_counts=True)
        values = np.log1p(counts.astype(np.float32))
        values /= np.float32(np.sqrt(np.dot(values, values)))
        vector = dict(zip(idx.tolist(), values.tolist(), strict=True))
    if tags:
        tag_codes = np.array(sorted({zlib.crc32(t.encode("utf-8")) for t in tags}), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i in _mix(tag_codes, 13).tolist():
                vector[i] = vector.get(i, 0.0) + 1.0
    keys = np.array(sorted(vector), dtype=np.int64)
    return keys, np.array([vector[k] for k in keys.tolist()], dtype=np.float32)


@dataclass(frozen=True)
class InjectionModel:
    """Fitted weights; ``score`` never mutates them."""

    weights: np.ndarray     # float32, length 2**HASH_BITS
    bias: float
    threshold: float        # decision: score >= threshold means injection
    meta: dict

    @property
    def decisive_tags(self) -> frozenset[str]:
        """Phrase-rule tags that block on their own (chosen on the training rows)."""
        return frozenset(self.meta.get("decisive_rule_tags", ()))

    def score(self, text: str, tags: tuple[str, ...] = ()) -> float:
        """Injection score in (0, 1) of ``text`` with the rule ``tags`` that matched it."""
        idx, values = features(text, tags)
        z = float(np.dot(self.weights[idx], values)) + self.bias
        return float(1.0 / (1.0 + np.exp(-z)))

    def is_injection(self, text: str, tags: tuple[str, ...] = ()) -> bool:
        return self.score(text, tags) >= self.threshold


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> InjectionModel:
    """Load the shipped weights (local file only). Raises FileNotFoundError with the fix."""
    if not Path(path).exists():
        raise FileNotFoundError(f"injection screen weights not found at {path}; "
                                "train them with: .venv/bin/python benchmarks/train_injection_screen.py")
    with np.load(path, allow_pickle=False) as data:
        weights = data["weights"].astype(np.float32)
        meta = json.loads(str(data["meta"]))
        bias = float(data["bias"])
        threshold = float(data["threshold"])
    if weights.shape != (1 << HASH_BITS,) or meta.get("hash_bits") != HASH_BITS:
        raise ValueError(f"weights in {path} have shape {weights.shape} and hash_bits {meta.get('hash_bits')}, "
                         f"this featuriser needs {1 << HASH_BITS} ({HASH_BITS} bits); retrain them")
    return InjectionModel(weights, bias, threshold, meta)
