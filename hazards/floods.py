"""Flood indicators: return levels of river flow and water level, and the return period of each value.

- :func:`return_levels`: annual maxima fitted with a Gumbel distribution (method of moments,
  robust on the 10-40 years a gauge usually has) and the ``T``-year return levels.
- :func:`return_level_scores`: per observation the return period of its value under its
  series' fit, in the score contract (detector ``return_level``: ``raw_score`` = return
  period in years, ``score`` = the annual-maximum CDF at the value, i.e. ``1 - 1/T``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from core.errors import FrameError
from core.frames import validate_series

__all__ = ["RETURN_LEVEL_DETECTOR", "return_levels", "return_level_scores"]

RETURN_LEVEL_DETECTOR = "return_level"
_EULER = 0.5772156649


def return_levels(
    series: pl.DataFrame, *, periods: Sequence[float] = (2, 10, 50, 100), min_years: int = 8
) -> pl.DataFrame:
    """Gumbel fit to each series' annual maxima: ``unique_id, location, scale, years`` + ``rl_<T>``."""
    frame = validate_series(series)
    maxima = frame.group_by("unique_id", pl.col("ds").dt.year().alias("year")).agg(
        pl.col("y").max().alias("annual_max"), pl.len().alias("n")
    )
    rows = []
    for (uid,), part in maxima.group_by("unique_id", maintain_order=True):
        # Years with little data (partial first/last years) understate the maximum.
        full = part.filter(pl.col("n") >= pl.col("n").max() * 0.8).get_column("annual_max").to_numpy()
        if len(full) < min_years:
            continue
        scale = float(np.std(full, ddof=1) * np.sqrt(6.0) / np.pi) or 1e-9
        location = float(np.mean(full) - _EULER * scale)
        row = {"unique_id": uid, "location": location, "scale": scale, "years": len(full)}
        for period in periods:
            row[f"rl_{int(period)}"] = location - scale * np.log(-np.log(1.0 - 1.0 / period))
        rows.append(row)
    if not rows:
        raise FrameError(
            f"no series has {min_years} full years of data for a return-level fit",
            fix="pass longer records, or lower min_years knowing the fit gets shaky",
        )
    return pl.DataFrame(rows).sort("unique_id")


def return_level_scores(series: pl.DataFrame, fits: pl.DataFrame) -> pl.DataFrame:
    """Return period of every observation under its series' Gumbel fit (score contract)."""
    frame = validate_series(series).join(fits.select("unique_id", "location", "scale"), on="unique_id")
    cdf = (-(-(pl.col("y") - pl.col("location")) / pl.col("scale")).exp()).exp()
    return frame.select(
        "unique_id",
        "ds",
        pl.lit(RETURN_LEVEL_DETECTOR).alias("detector"),
        (1.0 / (1.0 - cdf).clip(lower_bound=1e-12)).alias("raw_score"),
        cdf.clip(0.0, 1.0).alias("score"),
    )
