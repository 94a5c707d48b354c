"""Grade calibrated scores into warning levels, with persistence against flapping.

Contract of :func:`grade`: in, a calibrated score frame with one detector per series
(normally :func:`anomaly.combine`'s ensemble; a ``driver`` column is used when present);
out, the grade frame of :mod:`core.frames`: ``unique_id, ds, level, score, evidence``.

1. The *raw level* at a timestamp is the highest of blue < yellow < orange < red whose
   threshold the score reaches (:class:`core.frames.Level`).
2. A level *holds* at a timestamp only if at least ``persistence_k`` of the last
   ``persistence_n`` steps of the series (this one included) reached at least that level.
   Steps are the series' own rows, not calendar time. One isolated spike therefore
   grades nothing when ``k >= 2``; a sustained run does.

Only rows whose raw level or held level is at least blue are returned (a single spike
shows up with ``level="none"`` and its evidence). ``evidence`` is a JSON object with the
score, the thresholds, the raw and held levels, the hits per level in the window, the
window ``n`` and ``k``, and the driver detector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import polars as pl

from core.errors import ConfigError, FrameError
from core.frames import Level, validate_scores

__all__ = ["grade"]

_LEVELS = (Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED)


def grade(
    scores: pl.DataFrame,
    *,
    thresholds: Mapping[str, float],
    persistence_k: int,
    persistence_n: int,
) -> pl.DataFrame:
    """Warning level per flagged timestamp (rules in the module docstring)."""
    ladder = _check_thresholds(thresholds)
    if not (isinstance(persistence_k, int) and isinstance(persistence_n, int)) or not (
        1 <= persistence_k <= persistence_n
    ):
        raise ConfigError(
            f"persistence_k={persistence_k!r}, persistence_n={persistence_n!r}: "
            "need integers with 1 <= k <= n",
            fix="use the [risk] settings, e.g. persistence_k=2, persistence_n=3",
        )
    validate_scores(scores)
    driver = pl.col("driver") if "driver" in scores.columns else pl.col("detector")
    frame = scores.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("score").cast(pl.Float64),
        driver.cast(pl.Utf8).alias("driver"),
    )
    if frame.get_column("score").null_count():
        raise FrameError(
            "score frame has missing calibrated scores",
            fix="run anomaly.calibrate (or anomaly.combine) before grading",
        )
    dupes = frame.select(pl.struct("unique_id", "ds").is_duplicated().sum()).item()
    if dupes:
        raise FrameError(
            f"score frame has {dupes} rows sharing a (unique_id, ds) key (several detectors?)",
            fix="grade one detector per series: pass anomaly.combine(scores)",
        )

    frame = frame.sort("unique_id", "ds").with_columns(
        # Thresholds rise, so the number reached is the raw level's index.
        pl.sum_horizontal(
            [(pl.col("score") >= ladder[lv]).cast(pl.Int32) for lv in _LEVELS]
        ).alias("raw_level")
    )
    hits = [
        (pl.col("raw_level") >= int(lv))
        .cast(pl.Int32)
        .rolling_sum(persistence_n, min_samples=1)
        .over("unique_id")
        .alias(f"hits_{lv.label}")
        for lv in _LEVELS
    ]
    frame = frame.with_columns(hits).with_columns(
        # Hits fall as the level rises, so the count of levels held is the held level.
        pl.sum_horizontal(
            [(pl.col(f"hits_{lv.label}") >= persistence_k).cast(pl.Int32) for lv in _LEVELS]
        ).alias("level_index")
    )
    flagged = frame.filter((pl.col("raw_level") >= 1) | (pl.col("level_index") >= 1))
    threshold_map = {lv.label: ladder[lv] for lv in _LEVELS}
    evidence = [
        json.dumps(
            {
                "score": row["score"],
                "thresholds": threshold_map,
                "raw_level": Level(row["raw_level"]).label,
                "level": Level(row["level_index"]).label,
                "hits": {lv.label: row[f"hits_{lv.label}"] for lv in _LEVELS},
                "window_n": persistence_n,
                "min_hits_k": persistence_k,
                "driver": row["driver"],
            },
            sort_keys=True,
        )
        for row in flagged.iter_rows(named=True)
    ]
    return flagged.select(
        "unique_id",
        "ds",
        pl.col("level_index")
        .replace_strict({int(lv): lv.label for lv in Level}, return_dtype=pl.Utf8)
        .alias("level"),
        "score",
        pl.Series("evidence", evidence, dtype=pl.Utf8),
    )


def _check_thresholds(thresholds: Mapping[str, float]) -> dict[Level, float]:
    names = [lv.label for lv in _LEVELS]
    if set(thresholds) != set(names):
        raise ConfigError(
            f"thresholds name levels {sorted(thresholds)}, need exactly {names}",
            fix="pass RiskSettings.thresholds() (the [risk] settings)",
        )
    ladder = {lv: float(thresholds[lv.label]) for lv in _LEVELS}
    values = list(ladder.values())
    if not all(0.0 < v <= 1.0 for v in values) or any(a >= b for a, b in zip(values, values[1:])):
        raise ConfigError(
            f"thresholds must rise strictly within (0, 1] from blue to red, got {values}",
            fix="e.g. blue=0.99, yellow=0.995, orange=0.998, red=0.9995",
        )
    return ladder
