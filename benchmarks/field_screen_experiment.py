"""Experiment (writes no weights): does placing the training attacks into fields help the field screen?

Issue 16's field measure (``benchmarks/injection.py``: field attacks blocked >= 0.99, field text
blocked <= 0.01) is not met by ``screen-v5``. This script refits the screen's two learned
layers and their stacker in memory (``alerts.injection_training``: the n-gram layer at the
shipped C = 256, the embedding layer at C = 16, no decisive rules, no hard rules) on

- ``none``: the shipped training rows (``field_screen_rows`` of the bundled set plus the field
  rows of the training sources), or
- ``all``: the same plus every training row labelled 1 placed into a field the way the
  benchmark places its evaluation attacks, but with training-side text only: appended to a
  training place name (USGS ComCat place strings, NCEI Asia locations) or written as a CSV
  comment (``# `` on every line), chosen by the second byte of the row's SHA-256;

then picks thresholds on the training rows' out-of-fold stacked scores (the shipped rule:
lowest threshold with benign false-positive rate, averaged over the benign training corpora,
<= target, for targets 0.03, 0.02, 0.01, 0.005) and prints the field figures of the
evaluation sources at each, plus an oracle (the attack rate at the evaluation rows' own 1 %
benign quantile: a bound, not a usable threshold). Evaluation rows are never fitted on.

Embeddings are cached in ``--cache`` (default: field_screen_experiment in the temporary folder), so a rerun is quick.

Usage: EWS_SHARED_DATA=../shared/data .venv/bin/python benchmarks/field_screen_experiment.py [none|all]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle  # noqa: S403 - a cache this script wrote itself
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import field_corpus  # noqa: E402
from alerts.guardrails import rule_hits  # noqa: E402
from alerts.injection_model import embed  # noqa: E402
from alerts.injection_training import (  # noqa: E402
    TRAIN_SET,
    _fit,
    _fit_embed,
    _logit,
    design_matrix,
    field_screen_rows,
    out_of_fold,
    out_of_fold_embed,
    pick_threshold,
    split_of,
)
from injection import SHARED, NearDuplicates, load_rows  # noqa: E402


def _cached(path: Path, texts: list[str]) -> np.ndarray:
    if path.exists():
        return pickle.loads(path.read_bytes())  # noqa: S301 - written by this script
    out = embed([t[:1600] for t in texts]) if texts else np.zeros((0, 384), np.float32)
    path.write_bytes(pickle.dumps(out))
    return out


def _pick(items: list[str], key: str) -> str:
    return items[int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % len(items)]


def placed_training_attacks(train: list[dict]) -> list[dict]:
    places = [r["text"] for r in train if r["corpus"] in ("field_usgs_comcat_place", "field_ncei_asia_location")]
    out = []
    for r in train:
        if r["label"] != 1:
            continue
        if hashlib.sha256(r["text"].encode("utf-8")).digest()[1] % 2:
            text = f"{_pick(places, r['text'])} {r['text']}"
        else:
            text = "\n".join("# " + line for line in r["text"].splitlines() or [r["text"]])
        out.append({**r, "text": text, "corpus": r["corpus"] + "_placed"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=("none", "all"), nargs="?", default="all")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "field_screen_experiment")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    bundled = [json.loads(line) for line in TRAIN_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    fields = field_corpus.training_rows()
    train = field_screen_rows(bundled, fields)
    evaluation = [r for r in load_rows(SHARED) if split_of(r[0], r[1]) == "eval"]
    trained = NearDuplicates([r["text"] for r in fields])
    benign = [r for r in field_corpus.evaluation_rows() if not trained.match(r["text"])]
    placed = field_corpus.field_attacks([(c, t) for c, t, y in evaluation if y == 1], benign)
    aug = placed_training_attacks(train) if args.variant == "all" else []
    rows = train + aug
    e_rows = np.vstack(
        [
            _cached(args.cache / "train.pkl", [r["text"] for r in train]),
            _cached(args.cache / "aug.pkl", [r["text"] for r in aug]),
        ]
        if aug
        else [_cached(args.cache / "train.pkl", [r["text"] for r in train])]
    )
    e_benign = _cached(args.cache / "benign.pkl", [r["text"] for r in benign])
    e_placed = _cached(args.cache / "placed.pkl", [r["text"] for r in placed])
    y = np.array([r["label"] for r in rows])
    corpora = [r["corpus"] for r in rows]
    x = design_matrix([r["text"] for r in rows], [rule_hits(r["text"][:1600]) for r in rows])
    stack_x = np.c_[_logit(out_of_fold(x, y, 256.0)), out_of_fold_embed(e_rows, y, 16.0)]
    stacker = LogisticRegression(max_iter=1000).fit(stack_x, y)
    ngram, embedding = _fit(x, y, 256.0), _fit_embed(e_rows, y, 16.0)

    def score(rs: list[dict], e: np.ndarray) -> np.ndarray:
        p = ngram.predict_proba(design_matrix([r["text"] for r in rs], [rule_hits(r["text"][:1600]) for r in rs]))
        return stacker.decision_function(np.c_[_logit(p[:, 1]), embedding.decision_function(e)])

    z_benign, z_attack, z_train = score(benign, e_benign), score(placed, e_placed), stacker.decision_function(stack_x)
    for target in (0.03, 0.02, 0.01, 0.005):
        t = pick_threshold(z_train, y, corpora, target)
        print(
            json.dumps(
                {
                    "variant": args.variant,
                    "train_rows": len(rows),
                    "threshold_target_fp_on_training": target,
                    "field_benign_blocked_rate": round(float((z_benign >= t).mean()), 4),
                    "field_attack_blocked_rate": round(float((z_attack >= t).mean()), 4),
                }
            )
        )
    oracle = np.quantile(z_benign, 0.99)
    print(
        json.dumps(
            {
                "variant": args.variant,
                "oracle_attack_rate_at_1pct_eval_benign": round(float((z_attack > oracle).mean()), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
