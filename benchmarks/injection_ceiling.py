"""How far the injection screen is from issue 6's target (>= 0.95 attacks, <= 0.05 benign), and why.

An experiment, not the shipped screen: it never writes weights. On one set of rows, the odd
half (``alerts.injection_training.hash_half``) of every corpus in ../shared/data/security/prompt_injection plus
the real CAP texts, it compares:

- ``shipped``: the screen as shipped (``[guardrails] screen`` default, weights trained on the
  licence-clean rows only);
- ``with_unclear_licence_rows``: the same training pipeline (``train_injection_screen.fit_screen``,
  the same training-only threshold rule) fitted in memory on the shipped training set plus the
  even half of the corpora whose licence is unclear (Tensor Trust, xTRam1; SOURCES.md marks them
  ⚠, so weights fitted on them are never shipped), minus their rows that repeat or nearly repeat
  an evaluated row;
- ``instruction_vs_data``: the same pipeline on the shipped training set with the benign requests
  to an assistant (task prompts, questions, role-play set-ups) relabelled as instructions, so it
  separates data from text addressed to a model, which is what a field of this engine must be;
  ``against_data_benign_rows`` scores every screen on the attack rows against the benign rows
  that are data (tables, e-mails, CAP texts, place names, codes) and
  ``request_benign_rows_blocked`` says how many benign requests it blocks;
- for each, ``oracle_attack_blocked_at_5pct_fp``: the attack rate if the threshold were picked on
  the evaluated rows themselves (not a screen anyone can ship, a bound for its features).

With ``--finetune`` it also fine-tunes the sentence encoder (all-MiniLM-L6-v2, every layer, a
linear head, 3 epochs, 128 tokens) on the shipped training set and reports its oracle rate alone
and summed with the shipped screen's logit (about 17 minutes on 2 CPU cores).

Prints one JSON line. Usage:
  .venv/bin/python benchmarks/injection_ceiling.py [--corpus DIR] [--finetune]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from alerts.guardrails import screen_texts  # noqa: E402
from alerts.injection_model import InjectionModel, load_model  # noqa: E402
from alerts.injection_training import TRAIN_SET, TRAINABLE, fit_screen, hash_half, to_model  # noqa: E402
from injection import SHARED, NearDuplicates, load_rows  # noqa: E402

#: Corpora with an unclear licence: evaluated, never trained on for the shipped screen.
UNCLEAR = (
    "tensortrust_hijacking_robustness_v1",
    "tensortrust_hijacking_robustness_v1_access_codes",
    "tensortrust_extraction_robustness_v1",
    "tensortrust_extraction_robustness_v1_access_codes",
    "xtram1_safeguard_prompt_injection_test",
)
SCREEN = "rules+model+semantic"
#: Benign rows that are data (what this engine's fields carry), not requests to an assistant.
DATA_CORPORA = (
    "bipia_table_test",
    "bipia_email_test",
    "cap_descriptions",
    "ews_place_names",
    "ews_generated_codes",
    "tensortrust_hijacking_robustness_v1_access_codes",
    "tensortrust_extraction_robustness_v1_access_codes",
)


def rates(blocked: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "attack_blocked_rate": round(float(blocked[labels == 1].mean()), 4),
        "benign_false_positive_rate": round(float(blocked[labels == 0].mean()), 4),
    }


def oracle(scores: np.ndarray, labels: np.ndarray, fp: float = 0.05) -> float:
    """Attack rate at the threshold that blocks ``fp`` of the benign rows (picked on these rows)."""
    threshold = np.quantile(scores[labels == 0], 1 - fp)
    return round(float((scores[labels == 1] > threshold).mean()), 4)


def logits(model: InjectionModel, texts: list[str], blocked: np.ndarray) -> np.ndarray:
    """The stacked score's logit; rows blocked whatever the score (hard or decisive rules) rank first."""
    from alerts.guardrails import rule_hits

    heads = [t[:1600] for t in texts]
    p = np.clip(model.semantic_scores(heads, [rule_hits(h) for h in heads]), 1e-7, 1 - 1e-7)
    z = np.log(p / (1 - p))
    rule_only = blocked & (p < model.semantic_threshold)
    return np.where(rule_only, np.inf, z)


def finetuned_scores(train: list[dict], texts: list[str], epochs: float = 3.0, max_len: int = 128) -> np.ndarray:
    """Fine-tune all-MiniLM-L6-v2 with a linear head on ``train``; logits of ``texts``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from alerts.injection_model import _encoder_dir

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    folder = _encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoder = AutoModel.from_pretrained(folder, local_files_only=True)
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    params = [*encoder.parameters(), *head.parameters()]
    optimiser = torch.optim.AdamW(params, lr=4e-5, weight_decay=0.01)
    x = [r["text"][:1600] for r in train]
    y = np.array([r["label"] for r in train], dtype=np.float32)
    positive_weight = float((y == 0).sum() / (y == 1).sum())
    batch, steps = 16, int(epochs * len(x) / 16)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, s / (0.06 * steps)) * max(0.0, (steps - s) / steps)
    )

    def forward(chunk: list[str]) -> torch.Tensor:
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        hidden = encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return head((hidden * mask).sum(1) / mask.sum(1)).squeeze(-1)

    encoder.train()
    step = 0
    while step < steps:
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            if step >= steps:
                break
            idx = order[start : start + batch]
            target = torch.tensor(y[idx])
            weight = torch.where(target == 1, positive_weight, 1.0)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                forward([x[i] for i in idx]), target, weight=weight
            )
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            step += 1
    encoder.eval()
    out = np.zeros(len(texts))
    order = np.argsort([len(t) for t in texts])
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            idx = order[start : start + 64]
            out[idx] = forward([texts[i][:1600] for i in idx]).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED)
    parser.add_argument("--finetune", action="store_true", help="also fine-tune the encoder (about 17 min)")
    args = parser.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found: this experiment needs the shared corpora (SOURCES.md section 7)")
    started = time.perf_counter()
    every = load_rows(args.corpus)
    evaluated = [r for r in every if hash_half(r[1]) == "eval"]
    texts = [t for _, t, _ in evaluated]
    labels = np.array([y for _, _, y in evaluated])
    shipped_train = [json.loads(line) for line in TRAIN_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    if any(NearDuplicates([r["text"] for r in shipped_train]).match(t) for t in texts):
        raise SystemExit("an evaluated row (nearly) repeats a shipped training row; retrain the screen")
    near = NearDuplicates(texts)
    unclear = [
        {"corpus": c, "label": y, "text": t}
        for c, t, y in every
        if c in UNCLEAR and hash_half(t) == "train" and not near.match(t)
    ]
    dropped = sum(1 for c, t, _ in every if c in UNCLEAR and hash_half(t) == "train") - len(unclear)

    out: dict[str, object] = {
        "evaluated_rows": len(evaluated),
        "attack_rows": int(labels.sum()),
        "benign_rows": int((labels == 0).sum()),
        "unclear_licence_training_rows": len(unclear),
        "unclear_licence_rows_dropped_as_near_copies": dropped,
    }
    groups = {
        "held_out_corpora": np.array([c not in TRAINABLE for c, _, _ in evaluated]),
        "trainable_corpora": np.array([c in TRAINABLE for c, _, _ in evaluated]),
    }
    # the question this engine asks of a field: data, or text addressed to a model? Benign
    # requests to an assistant (task prompts, questions) count as instructions here
    as_instructions = [{**r, "label": int(r["label"] == 1 or r["corpus"] not in DATA_CORPORA)} for r in shipped_train]
    models = {
        "shipped": load_model(),
        "with_unclear_licence_rows": to_model(*fit_screen(shipped_train + unclear, 0.03)),
        "instruction_vs_data": to_model(*fit_screen(as_instructions, 0.03)),
    }
    data = np.array([c in DATA_CORPORA for c, _, _ in evaluated])
    shipped_logits = None
    for name, model in models.items():
        blocked = np.array([not v.allowed for v in screen_texts(texts, screen=SCREEN, model=model)])
        z = logits(model, texts, blocked)
        shipped_logits = z if name == "shipped" else shipped_logits
        out[name] = {
            **rates(blocked, labels),
            **{group: rates(blocked[mask], labels[mask]) for group, mask in groups.items()},
            "oracle_attack_blocked_at_5pct_fp": oracle(z, labels),
            # attack rows against benign rows that are data (the engine's own fields)
            "against_data_benign_rows": rates(blocked[data | (labels == 1)], labels[data | (labels == 1)]),
            "request_benign_rows_blocked": round(float(blocked[~data & (labels == 0)].mean()), 4),
        }
    if args.finetune:
        tuned = finetuned_scores(shipped_train, texts)
        out["finetuned_encoder"] = {
            "oracle_attack_blocked_at_5pct_fp": oracle(tuned, labels),
            "summed_with_shipped_oracle": oracle(shipped_logits + tuned, labels),
        }
    out["target"] = {"attack_blocked_rate": 0.95, "benign_false_positive_rate": 0.05}
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
