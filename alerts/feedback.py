"""How analyst feedback would move the risk thresholds (pure: frames in, a frame out).

For each level with feedback: how many verdicts were confirmed / false alarms, the precision
at today's threshold, and the threshold that would have silenced every false alarm at that
level (just above the highest false-alarm score) with the confirmed alerts it would also
lose. A suggestion, never applied automatically: thresholds change in ews.toml ([risk]).
"""

from __future__ import annotations

from typing import cast

import polars as pl

from core.vocabulary import WARNING_LEVEL_NAMES, Verdict

__all__ = ["threshold_moves"]


def threshold_moves(feedback: pl.DataFrame, thresholds: dict[str, float]) -> pl.DataFrame:
    """``feedback``: level, score, verdict (latest verdict per alert). One row per level."""
    rows = []
    for level in WARNING_LEVEL_NAMES:
        part = feedback.filter(pl.col("level") == level)
        if part.height == 0:
            continue
        confirmed = part.filter(pl.col("verdict") == Verdict.CONFIRMED)
        false = part.filter(pl.col("verdict") == Verdict.FALSE_ALARM)
        current = thresholds[level]
        suggested = current
        lost = 0
        if false.height:
            top = cast(float, false.get_column("score").max())  # scores are floats; polars types any literal
            suggested = max(current, min(round(top + 1e-4, 4), 0.9999))
            lost = confirmed.filter(pl.col("score") < suggested).height
        rows.append(
            {
                "level": level,
                "threshold": current,
                "confirmed": confirmed.height,
                "false_alarms": false.height,
                "precision": round(confirmed.height / part.height, 3),
                "suggested_threshold": suggested,
                "false_alarms_removed": false.filter(pl.col("score") < suggested).height,
                "confirmed_lost": lost,
            }
        )
    schema = {
        "level": pl.Utf8,
        "threshold": pl.Float64,
        "confirmed": pl.Int64,
        "false_alarms": pl.Int64,
        "precision": pl.Float64,
        "suggested_threshold": pl.Float64,
        "false_alarms_removed": pl.Int64,
        "confirmed_lost": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)
