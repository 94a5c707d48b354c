"""Change points: level and trend shifts, for slow hazards and regime changes.

- :func:`shift_scores` (detectors ``level_shift`` and ``trend_shift``), causal: at ``t`` the
  mean of the last ``span`` points against the mean of the ``span`` points before them, in
  units of the pooled noise (a Welch-type t statistic), and the same for the least-squares
  slopes of the two spans. Slow drifts that no single point betrays show up here.

The offline step finder (binary segmentation, ``find_change_points``) moved to
:mod:`hazards.geodetic`, beside the step detector that is its one user.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from anomaly.calibration import calibrate_causal
from core.errors import FrameError
from core.frames import SCORE_COLUMNS, empty_scores, validate_series

__all__ = ["LEVEL_SHIFT_DETECTOR", "TREND_SHIFT_DETECTOR", "shift_scores"]

LEVEL_SHIFT_DETECTOR = "level_shift"
TREND_SHIFT_DETECTOR = "trend_shift"


def _rolling_stats(y: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance and OLS slope of the ``span`` points ending at each t (NaN before)."""
    s = pl.Series(y)
    mean = s.rolling_mean(span).to_numpy()
    var = s.rolling_var(span).to_numpy()
    t = np.arange(len(y), dtype=np.float64)
    ty = pl.Series(t * y).rolling_mean(span).to_numpy()
    tm = pl.Series(t).rolling_mean(span).to_numpy()
    tvar = (span * span - 1) / 12.0
    slope = (ty - tm * mean) / tvar
    return mean, var, slope


def shift_scores(series: pl.DataFrame, *, span: int, tail_quantile: float = 0.9) -> pl.DataFrame:
    """Causal level- and trend-shift statistics per point (module docstring)."""
    if span < 3:
        raise FrameError(f"span={span} is too short to compare two means", fix="use span >= 3 steps")
    frame = validate_series(series)
    parts = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        y = part.get_column("y").to_numpy()
        if len(y) < 2 * span + 1:
            continue
        mean, var, slope = _rolling_stats(y, span)
        prev_mean, prev_var, prev_slope = (np.roll(a, span) for a in (mean, var, slope))
        noise = np.sqrt((var + prev_var) / span)
        floor = 1e-9 * (np.nanmedian(np.abs(y)) + 1.0)
        level = np.abs(mean - prev_mean) / np.maximum(noise, floor)
        slope_noise = np.sqrt((var + prev_var) / (span * (span * span - 1) / 12.0))
        trend = np.abs(slope - prev_slope) / np.maximum(slope_noise, floor)
        valid = np.arange(len(y)) >= 2 * span - 1
        ds = part.get_column("ds").filter(pl.Series(valid))
        for name, values in ((LEVEL_SHIFT_DETECTOR, level), (TREND_SHIFT_DETECTOR, trend)):
            parts.append(
                pl.DataFrame(
                    {"unique_id": uid, "ds": ds, "detector": name, "raw_score": np.nan_to_num(values[valid], nan=0.0)}
                )
            )
    if not parts:
        return empty_scores()
    return calibrate_causal(pl.concat(parts), tail_quantile=tail_quantile).select(SCORE_COLUMNS)
