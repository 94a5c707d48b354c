"""Geodetic and water indicators: velocity changes, steps, return-level exceedances.

- :func:`velocity_change`: least-squares velocity (units per year) of the ``span`` points
  before each time against the ``span`` before that; the change is what a slow-slip event or
  post-seismic relaxation shows.
- :func:`detect_steps`: jumps in a displacement or sea-level series (co-seismic offsets,
  datum changes), found by :func:`anomaly.find_change_points` on the detrended series,
  reported with their size and the dates around them. Offline (uses the whole series).
- :func:`return_levels` / :func:`return_level_scores`: annual maxima fitted with a Gumbel
  distribution (method of moments, robust on the 10-40 years a gauge usually has), the
  ``T``-year return levels, and per observation the return period of its value (detector
  ``return_level``: ``raw_score`` = return period in years, ``score`` = the annual-maximum
  CDF at the value, i.e. ``1 - 1/T``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from anomaly.changepoints import find_change_points
from core.errors import FrameError
from core.frames import validate_series

__all__ = ["RETURN_LEVEL_DETECTOR", "velocity_change", "detect_steps", "return_levels",
           "return_level_scores"]

RETURN_LEVEL_DETECTOR = "return_level"
_DAYS_PER_YEAR = 365.25
_EULER = 0.5772156649


def _years(ds: pl.Series) -> np.ndarray:
    epoch = ds.cast(pl.Datetime("us")).dt.epoch("us").to_numpy().astype(np.float64)
    return epoch / (86400e6 * _DAYS_PER_YEAR)


def velocity_change(series: pl.DataFrame, *, span: int) -> pl.DataFrame:
    """Per row from ``2 span`` on: ``velocity_before``, ``velocity_recent`` (per year) and ``velocity_change``."""
    if span < 3:
        raise FrameError(f"span={span} is too short for a velocity", fix="use span >= 3 observations")
    frame = validate_series(series)
    parts = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        t = _years(part.get_column("ds"))
        y = part.get_column("y").to_numpy()
        recent = _rolling_slope(t, y, span)
        before = np.roll(recent, span)
        before[: 2 * span - 1] = np.nan
        parts.append(part.with_columns(pl.Series("velocity_before", before), pl.Series("velocity_recent", recent),
                                       pl.Series("velocity_change", recent - before)))
    out = pl.concat(parts)
    return out.filter(pl.col("velocity_change").is_not_nan())


def _rolling_slope(t: np.ndarray, y: np.ndarray, span: int) -> np.ndarray:
    st, sy = pl.Series(t), pl.Series(y)
    mt, my = st.rolling_mean(span).to_numpy(), sy.rolling_mean(span).to_numpy()
    mty = pl.Series(t * y).rolling_mean(span).to_numpy()
    mtt = pl.Series(t * t).rolling_mean(span).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (mty - mt * my) / (mtt - mt * mt)


def detect_steps(series: pl.DataFrame, *, penalty: float = 8.0, min_size: int = 10,
                 min_step: float = 0.0) -> pl.DataFrame:
    """Steps per series: ``unique_id, ds`` (first point after the step), ``size``, ``before_ds``.

    The series is detrended with its overall least-squares line first (a station's steady
    velocity is not a step); ``min_step`` drops steps smaller than that (in y units).
    """
    frame = validate_series(series)
    rows = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        y = part.get_column("y").to_numpy()
        t = _years(part.get_column("ds"))
        slope, intercept = np.polyfit(t - t[0], y, 1) if len(y) > 2 else (0.0, float(np.mean(y)))
        resid = y - (intercept + slope * (t - t[0]))
        ds = part.get_column("ds")
        for cut in find_change_points(resid, penalty=penalty, min_size=min_size):
            k = min(min_size, cut, len(y) - cut)
            size = float(np.median(resid[cut : cut + k]) - np.median(resid[cut - k : cut]))
            if abs(size) >= min_step:
                rows.append({"unique_id": uid, "ds": ds[cut], "before_ds": ds[cut - 1], "size": size})
    return pl.DataFrame(rows, schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"),
                                      "before_ds": pl.Datetime("us"), "size": pl.Float64})


def return_levels(series: pl.DataFrame, *, periods: Sequence[float] = (2, 10, 50, 100),
                  min_years: int = 8) -> pl.DataFrame:
    """Gumbel fit to each series' annual maxima: ``unique_id, location, scale, years`` + ``rl_<T>``."""
    frame = validate_series(series)
    maxima = (frame.group_by("unique_id", pl.col("ds").dt.year().alias("year"))
              .agg(pl.col("y").max().alias("annual_max"), pl.len().alias("n")))
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
        raise FrameError(f"no series has {min_years} full years of data for a return-level fit",
                         fix="pass longer records, or lower min_years knowing the fit gets shaky")
    return pl.DataFrame(rows).sort("unique_id")


def return_level_scores(series: pl.DataFrame, fits: pl.DataFrame) -> pl.DataFrame:
    """Return period of every observation under its series' Gumbel fit (score contract)."""
    frame = validate_series(series).join(fits.select("unique_id", "location", "scale"), on="unique_id")
    cdf = (-(-(pl.col("y") - pl.col("location")) / pl.col("scale")).exp()).exp()
    return frame.select(
        "unique_id", "ds", pl.lit(RETURN_LEVEL_DETECTOR).alias("detector"),
        (1.0 / (1.0 - cdf).clip(lower_bound=1e-12)).alias("raw_score"),
        cdf.clip(0.0, 1.0).alias("score"),
    )
