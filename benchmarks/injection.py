"""Prompt-injection screen, measured: attack rows blocked, benign rows passed.

Reads the corpora in ../shared/data/security/prompt_injection when present (else the bundled
MIT/Apache subset in tests/data/injection). Attack rows: CyberSecEval user inputs (English and
machine-translated), BIPIA attack instructions (text and code), deepset and xTRam1 label-1
rows, jackhhao jailbreaks, Tensor Trust hijacking and extraction attacks. Benign rows: BIPIA
clean table and e-mail contexts, deepset / xTRam1 / jackhhao label-0 rows, Tensor Trust
access codes, plus the descriptions of the real CAP alerts in ../shared/data/cap (the kind of
free text this engine actually feeds to a prompt).

Prints one line per corpus, then (last line) one JSON object with attack_rows,
attack_blocked_rate, benign_rows, benign_false_positive_rate, and the peer: the same corpora
through a naive keyword filter ("ignore previous instructions" and friends), in-process.

Usage: .venv/bin/python benchmarks/injection.py [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.cap import parse_cap  # noqa: E402
from alerts.guardrails import SCREEN_VERSION, screen_text  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "security" / "prompt_injection"
BUNDLED = ROOT / "tests" / "data" / "injection"


def _json(path: Path):  # noqa: ANN202
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_rows(folder: Path) -> list[tuple[str, str, int]]:
    """(corpus, text, 1 = attack / 0 = benign) for every file found in ``folder``."""
    rows: list[tuple[str, str, int]] = []

    def add(corpus: str, text: object, label: int) -> None:
        if isinstance(text, str) and text.strip():
            rows.append((corpus, text, label))

    for name in ("purplellama_cyberseceval_prompt_injection.json",
                 "purplellama_cyberseceval_prompt_injection_multilingual_mt.json"):
        if (folder / name).exists():
            for r in _json(folder / name):
                add(name.split(".")[0], r["user_input"], 1)
    for name in ("bipia_text_attack_test.json", "bipia_text_attack_train.json", "bipia_code_attack_test.json"):
        if (folder / name).exists():
            for items in _json(folder / name).values():
                for text in items:
                    add(name.split(".")[0], text, 1)
    for name in ("bipia_table_test.jsonl", "bipia_email_test.jsonl"):
        if (folder / name).exists():
            for r in _jsonl(folder / name):
                add(name.split(".")[0], r["context"], 0)
    for name in ("deepset_prompt_injections_test.json", "xtram1_safeguard_prompt_injection_test.json",
                 "jackhhao_jailbreak_classification_test.json"):
        if (folder / name).exists():
            for r in _json(folder / name):
                label = r["label"] if isinstance(r["label"], int) else int(r["label"] in ("jailbreak", "1"))
                add(name.split(".")[0], r["text"], label)
    for name in ("tensortrust_hijacking_robustness_v1.jsonl", "tensortrust_extraction_robustness_v1.jsonl"):
        if (folder / name).exists():
            for r in _jsonl(folder / name):
                add(name.split(".")[0], r["attack"], 1)
                add(name.split(".")[0] + "_access_codes", r["access_code"], 0)
    cap_dir = folder.parent.parent / "cap"
    for path in sorted(cap_dir.glob("*_valid.xml")) if cap_dir.exists() else []:
        try:
            message = parse_cap(path.read_bytes())
        except Exception:  # noqa: BLE001 - a broken sample is simply not a row
            continue
        for info in message["info"]:
            for text in (info["headline"], info["description"], *info["areas"]):
                add("cap_descriptions", text, 0)
    return rows


_NAIVE = re.compile(r"ignore (all )?(previous|prior|above) instructions|disregard (the )?(previous|above)"
                    r"|you are now|system prompt|jailbreak", re.I)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED if SHARED.exists() else BUNDLED)
    args = parser.parse_args()
    rows = load_rows(args.corpus)
    if not rows:
        raise SystemExit(f"no corpus rows under {args.corpus}")
    started = time.perf_counter()
    verdicts = [not screen_text(text).allowed for _, text, _ in rows]
    elapsed = time.perf_counter() - started
    naive = [bool(_NAIVE.search(text)) for _, text, _ in rows]
    per: dict[tuple[str, int], list[int]] = {}
    for (corpus, _, label), blocked in zip(rows, verdicts, strict=True):
        stats = per.setdefault((corpus, label), [0, 0])
        stats[0] += 1
        stats[1] += int(blocked)
    for (corpus, label), (n, blocked) in sorted(per.items()):
        kind = "attack" if label else "benign"
        print(f"{corpus:<58} {kind:<6} rows {n:>5}  blocked {blocked / n:6.1%}")

    def rates(flags: list[bool]) -> tuple[int, float, int, float]:
        attack = [f for f, (_, _, y) in zip(flags, rows, strict=True) if y == 1]
        benign = [f for f, (_, _, y) in zip(flags, rows, strict=True) if y == 0]
        return (len(attack), sum(attack) / max(len(attack), 1), len(benign), sum(benign) / max(len(benign), 1))

    a, ar, b, br = rates(verdicts)
    # benign rows that look like what this engine feeds a prompt: data (tables, e-mails, real
    # CAP text, short codes), not chat requests addressed to an assistant
    data_like = [not blocked for (c, _, y), blocked in zip(rows, verdicts, strict=True)
                 if y == 0 and c.startswith(("bipia_table", "bipia_email", "cap_", "tensortrust"))]
    data_fp = 1 - sum(data_like) / max(len(data_like), 1)
    _, nar, _, nbr = rates(naive)
    print(json.dumps({
        "screen": SCREEN_VERSION, "corpus": str(args.corpus),
        "attack_rows": a, "attack_blocked_rate": round(ar, 4),
        "benign_rows": b, "benign_false_positive_rate": round(br, 4),
        "targets_met": ar >= 0.95 and br <= 0.05,
        "data_field_benign_rows": len(data_like), "data_field_false_positive_rate": round(data_fp, 4),
        "peer_naive_keyword_blocked_rate": round(nar, 4), "peer_naive_keyword_fp_rate": round(nbr, 4),
        "rows_per_second": round(len(rows) / elapsed, 1),
    }))


if __name__ == "__main__":
    main()
