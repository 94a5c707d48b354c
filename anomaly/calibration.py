"""Calibrate raw detector scores onto one [0, 1] scale and combine detectors.

- :func:`calibrate`: per ``(unique_id, detector)``, ``score`` = the empirical CDF of
  ``raw_score`` against that series' own scores: ``mid-rank / (n + 1)``, where tied raw
  scores share their average rank. A score of 0.99 then means "more abnormal than 99% of
  this series' history under this detector", whatever the detector's raw units, so one
  threshold serves every detector and series. Scores lie strictly inside (0, 1): the
  highest reachable score is ``n / (n + 1)``, so a threshold ``t`` can only be reached by a
  series with at least ``t / (1 - t)`` scores (99 for 0.99, 499 for 0.998, 1999 for 0.9995).
  The ECDF is taken over every score passed in (history and new points alike); pass the
  stored history together with new raw scores so new points are ranked against it.
- :func:`combine`: the ``ensemble`` detector, per ``(unique_id, ds)`` the maximum of the
  calibrated scores, with the detector that gave it in ``driver``.

Both take and return the score frame of :mod:`core.frames` (``unique_id, ds, detector,
raw_score, score``); extra columns are kept by :func:`calibrate`.
"""

from __future__ import annotations

import polars as pl

from core.errors import FrameError
from core.frames import SCORE_COLUMNS, validate_scores

__all__ = ["ENSEMBLE_DETECTOR", "calibrate", "combine"]

ENSEMBLE_DETECTOR = "ensemble"

_RAW_COLUMNS = ("unique_id", "ds", "detector", "raw_score")


def calibrate(scores: pl.DataFrame) -> pl.DataFrame:
    """Replace ``score`` by the per-(series, detector) empirical CDF of ``raw_score``.

    Needs ``unique_id, ds, detector, raw_score`` (an existing ``score`` is recomputed).
    Deterministic: ranks are exact and ties share the average rank. Output is sorted by
    ``unique_id, detector, ds``.
    """
    if not isinstance(scores, pl.DataFrame) or any(c not in scores.columns for c in _RAW_COLUMNS):
        got = scores.columns if isinstance(scores, pl.DataFrame) else type(scores).__name__
        raise FrameError(
            f"calibrate needs columns {list(_RAW_COLUMNS)}, got {got}",
            fix="pass the output of a detector (anomaly.subsequence_iforest, interval_exceedance)",
        )
    frame = scores.with_columns(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("detector").cast(pl.Utf8),
        pl.col("raw_score").cast(pl.Float64),
    )
    broken = frame.filter(~pl.col("raw_score").is_finite().fill_null(False)).height
    if broken:
        raise FrameError(
            f"score frame has {broken} missing or non-finite raw_score value(s)",
            fix="drop unscored rows; a NaN score cannot be ranked against history",
        )
    group = ["unique_id", "detector"]
    calibrated = frame.with_columns(
        (
            pl.col("raw_score").rank("average").over(group) / (pl.len().over(group) + 1)
        ).alias("score")
    )
    extra = [c for c in calibrated.columns if c not in SCORE_COLUMNS]
    return calibrated.select(*SCORE_COLUMNS, *extra).sort("unique_id", "detector", "ds")


def combine(scores: pl.DataFrame) -> pl.DataFrame:
    """Ensemble of calibrated detectors: the highest score per ``(unique_id, ds)``.

    Why the maximum: the detectors look for different things (an unusual shape, a miss
    of the forecaster's interval), so one detector's surprise is enough to count. An
    average would let a quiet detector mask a loud one. The price is a higher false-alarm
    rate: with ``D`` detectors a threshold ``t`` is reached by chance at most
    ``D * (1 - t)`` of the time. Where only some detectors scored a timestamp, the maximum
    is over those. Rows of an earlier ensemble in the input are ignored.

    Out: ``unique_id, ds, detector="ensemble", raw_score, score, driver`` with
    ``raw_score == score`` (the maximum) and ``driver`` the detector that reached it (ties
    go to the alphabetically first detector, so the output is deterministic).
    """
    frame = validate_scores(scores).filter(pl.col("detector") != ENSEMBLE_DETECTOR)
    best = (
        frame.sort(["unique_id", "ds", "score", "detector"], descending=[False, False, True, False])
        .group_by("unique_id", "ds", maintain_order=True)
        .first()
    )
    return best.select(
        "unique_id",
        "ds",
        pl.lit(ENSEMBLE_DETECTOR).alias("detector"),
        pl.col("score").alias("raw_score"),
        "score",
        pl.col("detector").alias("driver"),
    )
