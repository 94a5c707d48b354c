"""Forecast-based detectors: surprise against the model's quantiles, and exceedance probabilities.

- :func:`forecast_surprise` (detector ``forecast_surprise``): where does the observation fall
  in the model's predictive distribution? The quantile fan ``q05 .. q95`` is interpolated
  linearly to the observation's probability level ``u`` (PIT), extrapolated beyond the outer
  quantiles with the normal tail implied by ``q05``/``q95``; ``raw_score`` is the two-sided
  normal deviate ``|Phi^-1(u)|``: 1.645 on the edge of the 90% interval, 3 for a one-in-370
  surprise under the model. So a value that looks ordinary but the model did not expect
  still counts, in units a forecaster reads. ``score`` is the causal calibration of that.
- :func:`exceedance_scores` (detector ``exceedance``): the forecasting issue's exceedance
  probabilities (``unique_id, ds, threshold, p_step_exceed, p_path_cross``) as a score row at
  each series' last observation: ``score = raw_score = max p_path_cross`` (already a
  probability, so it is not re-ranked), with the threshold and horizon that gave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import polars as pl
from scipy.stats import norm

from anomaly.calibration import calibrate_causal
from core.errors import FrameError
from core.frames import QUANTILES, SCORE_COLUMNS, empty_scores, quantile_column, validate_forecasts

__all__ = [
    "SURPRISE_DETECTOR",
    "EXCEEDANCE_DETECTOR",
    "EXCEEDANCE_COLUMNS",
    "forecast_surprise",
    "pit_levels",
    "exceedance_scores",
]

SURPRISE_DETECTOR = "forecast_surprise"
EXCEEDANCE_DETECTOR = "exceedance"
EXCEEDANCE_COLUMNS = ("unique_id", "ds", "threshold", "p_step_exceed", "p_path_cross")
_EPS = 1e-9
_QUANTILE_LEVELS = np.asarray(QUANTILES)  # pit_levels' default ladder, built once


def pit_levels(y: np.ndarray, fan: np.ndarray, levels: np.ndarray = _QUANTILE_LEVELS) -> np.ndarray:
    """Probability level of each ``y`` within its row of quantiles ``fan`` (n x len(levels)).

    Linear between quantiles; beyond the outer ones a normal tail with the spread implied by
    the outer pair, so the level keeps falling (rising) the further out ``y`` lies.
    """
    fan = np.sort(fan, axis=1)  # crossing quantiles from a sloppy model must not break the map
    y, levels = np.asarray(y, dtype=float), np.asarray(levels, dtype=float)
    z_lo, z_hi = norm.ppf(levels[0]), norm.ppf(levels[-1])
    sigma = np.maximum((fan[:, -1] - fan[:, 0]) / (z_hi - z_lo), _EPS * (np.abs(fan[:, 0]) + 1.0))
    low, high = fan[:, 0], fan[:, -1]
    below, above = y < low, y > high
    out = np.full(len(y), 0.5)  # a zero-width fan that holds y: the middle
    out[below] = norm.cdf(z_lo - (low[below] - y[below]) / sigma[below])
    out[above] = norm.sf(-(z_hi + (y[above] - high[above]) / sigma[above]))
    # Inside: linear between the quantiles, as np.interp row by row (the last quantile at or
    # below y, then the slope to the next one; y on the top quantile is its level).
    inside = ~below & ~above & (high > low)
    rows, x = fan[inside], y[inside]
    j = (rows <= x[:, None]).sum(axis=1) - 1
    top = j >= rows.shape[1] - 1
    jj = np.minimum(j, rows.shape[1] - 2)
    x0 = np.take_along_axis(rows, jj[:, None], axis=1)[:, 0]
    x1 = np.take_along_axis(rows, jj[:, None] + 1, axis=1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (levels[jj + 1] - levels[jj]) / (x1 - x0)
        value = np.where(x == x0, levels[jj], slope * (x - x0) + levels[jj])
    out[inside] = np.where(top, levels[-1], value)
    return np.clip(out, 1e-300, 1.0 - 1e-16)


def forecast_surprise(
    fitted: pl.DataFrame, *, tail_quantile: float = 0.9, since: Mapping[str, datetime] | None = None
) -> pl.DataFrame:
    """Surprise of each in-sample observation against its forecast quantiles (module docstring).

    ``fitted``: ``unique_id, ds, y, model, mean, q05 .. q95``, one model per series
    (``ForecastResult.fitted``). ``since``: per series, the first ``ds`` returned (the earlier
    rows are the calibration's history only, :func:`anomaly.calibrate_causal`).
    """
    validate_forecasts(fitted)
    if "y" not in fitted.columns:
        raise FrameError(
            f"in-sample frame lacks column 'y'; it has {fitted.columns}",
            fix="pass ForecastResult.fitted (forecasts have no observations to compare)",
        )
    qcols = [quantile_column(q) for q in QUANTILES]
    frame = fitted.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("y").cast(pl.Float64),
        *[pl.col(c).cast(pl.Float64) for c in qcols],
    )
    frame = frame.filter(pl.all_horizontal(pl.col("y", *qcols).is_finite()).fill_null(False))
    dupes = frame.select(pl.struct("unique_id", "ds").is_duplicated().sum()).item()
    if dupes:
        raise FrameError(
            f"in-sample frame has {dupes} rows sharing a (unique_id, ds) key",
            fix="keep one model per series (filter on the model column) before scoring",
        )
    if frame.height == 0:
        return empty_scores()
    frame = frame.sort("unique_id", "ds")
    u = pit_levels(frame.get_column("y").to_numpy(), frame.select(qcols).to_numpy())
    z = np.abs(norm.ppf(u))
    raw = frame.select(
        "unique_id", "ds", pl.lit(SURPRISE_DETECTOR).alias("detector"), pl.Series("raw_score", np.minimum(z, 40.0))
    )
    return calibrate_causal(raw, tail_quantile=tail_quantile, since=since).select(SCORE_COLUMNS)


def exceedance_scores(probabilities: pl.DataFrame, *, at: Mapping[str, datetime]) -> pl.DataFrame:
    """One ``exceedance`` score row per series at ``at[unique_id]`` (its last observation).

    Out: the score contract plus ``threshold`` (spec), ``threshold_value`` and ``horizon_ds``
    (where the highest path crossing probability was found). Series missing from ``at`` are dropped.
    """
    missing = [c for c in EXCEEDANCE_COLUMNS if c not in probabilities.columns]
    if missing:
        raise FrameError(
            f"exceedance frame lacks {missing}; it has {probabilities.columns}",
            fix=f"pass the forecasting exceedance frame with {list(EXCEEDANCE_COLUMNS)}",
        )
    # The threshold is a spec (``p99``, ``rl10``, ``abs:5.0:below``) or a number: kept as given,
    # with its resolved value when the frame carries one.
    value = (
        pl.col("threshold_value").cast(pl.Float64)
        if "threshold_value" in probabilities.columns
        else pl.lit(None, dtype=pl.Float64)
    ).alias("threshold_value")
    frame = probabilities.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("threshold"),
        value,
        pl.col("p_path_cross").cast(pl.Float64),
    )
    outside = frame.filter(~pl.col("p_path_cross").is_between(0.0, 1.0)).height
    if outside:
        raise FrameError(
            f"{outside} exceedance probabilities lie outside [0, 1]", fix="p_path_cross must be a probability"
        )
    best = (
        frame.sort(["unique_id", "p_path_cross", "ds"], descending=[False, True, False])
        .group_by("unique_id", maintain_order=True)
        .first()
    )
    cut = pl.DataFrame(
        {"unique_id": list(at), "at": list(at.values())}, schema={"unique_id": pl.Utf8, "at": pl.Datetime("us")}
    )
    joined = best.join(cut, on="unique_id", how="inner")
    return joined.select(
        "unique_id",
        pl.col("at").alias("ds"),
        pl.lit(EXCEEDANCE_DETECTOR).alias("detector"),
        pl.col("p_path_cross").alias("raw_score"),
        pl.col("p_path_cross").alias("score"),
        "threshold",
        "threshold_value",
        pl.col("ds").alias("horizon_ds"),
    ).sort("unique_id")
