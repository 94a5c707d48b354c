"""Each antecedent-wetness variant's out-of-sample river figures, reported beside the one chosen.

``ews evaluate events`` scores the variant :func:`hazards.select_wetness` picks on each fold's
training half (``[hazards] flood_wetness = "auto"``). This script reruns the same river table
(:func:`pipelines.event_tables.river_table`, bundled Choptank record, the two folds, the
default ``[risk]`` and ``[hazards]`` settings) once per variant of
:data:`hazards.WETNESS_VARIANTS` fixed for both folds, and prints one JSON line per run: the
hits, false alarms, POD, FAR and Brier skill of the issued levels (``new``: model and observed
rung) and of the model alone. These figures are reported, not used to choose: the choice rule
was fixed on training data before any variant was scored (docs/anomaly.md).

    PYTHONPATH=$PWD nice -n 5 python benchmarks/flood_wetness_variants.py
"""

import dataclasses
import json
from pathlib import Path

import hazards
from core.settings import load_settings
from pipelines.evaluation import _baseline_scores
from pipelines.event_tables import river_table

KEYS = ("events", "hits", "false_alarms", "alarms", "pod", "far", "brier", "brier_skill_score")


def main() -> None:
    settings = load_settings(environ={})
    grading = {
        "thresholds": settings.risk.thresholds(),
        "k": settings.risk.persistence_k,
        "n": settings.risk.persistence_n,
        "cooldown": settings.scoring.cooldown,
    }
    for variant in ["auto", *hazards.WETNESS_VARIANTS]:
        hazard_settings = dataclasses.replace(settings.hazards, flood_wetness=variant)
        table, _ = river_table(
            Path("data"), grading=grading, baseline_scores=_baseline_scores, hazard_settings=hazard_settings
        )
        row = {who: {k: table[who].get(k) for k in KEYS} for who in ("new", "model_only")}
        print(json.dumps({"variant": variant, "chosen": [h["wetness"] for h in table["halves"]], **row}), flush=True)


if __name__ == "__main__":
    main()
