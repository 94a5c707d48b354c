"""Change points: level and trend shifts, for slow hazards and regime changes.

- :func:`shift_scores` (detectors ``level_shift`` and ``trend_shift``), causal: at ``t`` the
  mean of the last ``span`` points against the mean of the ``span`` points before them, in
  units of the pooled noise (a Welch-type t statistic), and the same for the least-squares
  slopes of the two spans. Slow drifts that no single point betrays show up here.
- :func:`find_change_points` (offline, whole series): binary segmentation of a piecewise
  constant mean under a Gaussian cost with penalty ``penalty * sigma^2 * log n`` (BIC-like;
  ``sigma`` from first differences, so a step does not inflate its own noise estimate).
  Returns the indices where a new segment starts. Used for step detection (co-seismic GNSS
  jumps, tide-gauge datum shifts) and in the case-study notebooks.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from anomaly.calibration import calibrate_causal
from core.errors import FrameError
from core.frames import SCORE_COLUMNS, validate_series

__all__ = ["LEVEL_SHIFT_DETECTOR", "TREND_SHIFT_DETECTOR", "shift_scores", "find_change_points",
           "segment_means"]

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
            parts.append(pl.DataFrame({"unique_id": uid, "ds": ds, "detector": name,
                                       "raw_score": np.nan_to_num(values[valid], nan=0.0)}))
    if not parts:
        return pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "detector": pl.Utf8,
                                    "raw_score": pl.Float64, "score": pl.Float64})
    return calibrate_causal(pl.concat(parts), tail_quantile=tail_quantile).select(SCORE_COLUMNS)


def find_change_points(y: np.ndarray, *, penalty: float = 3.0, min_size: int = 5,
                       max_changes: int = 20) -> list[int]:
    """Start indices of new mean segments by binary segmentation (module docstring)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 2 * min_size:
        return []
    sigma = 1.4826 * float(np.median(np.abs(np.diff(y) - np.median(np.diff(y))))) / np.sqrt(2.0)
    sigma = sigma or float(np.std(y)) or 1.0
    cost_per_change = penalty * sigma * sigma * np.log(n)
    cuts: list[int] = []
    segments = [(0, n)]
    while segments and len(cuts) < max_changes:
        best = None
        for lo, hi in segments:
            split = _best_split(y[lo:hi], min_size)
            if split is not None and (best is None or split[1] > best[2]):
                best = (lo, hi, split[1], lo + split[0])
        if best is None or best[2] <= cost_per_change:
            break
        lo, hi, _, cut = best
        cuts.append(cut)
        segments.remove((lo, hi))
        segments.extend([(lo, cut), (cut, hi)])
    return sorted(cuts)


def _best_split(x: np.ndarray, min_size: int) -> tuple[int, float] | None:
    """Split index and the drop in squared error it buys, for one segment."""
    m = len(x)
    if m < 2 * min_size:
        return None
    c1 = np.cumsum(x)
    c2 = np.cumsum(x * x)
    k = np.arange(min_size, m - min_size + 1)
    left = c2[k - 1] - c1[k - 1] ** 2 / k
    right = (c2[-1] - c2[k - 1]) - (c1[-1] - c1[k - 1]) ** 2 / (m - k)
    total = c2[-1] - c1[-1] ** 2 / m
    gain = total - (left + right)
    i = int(np.argmax(gain))
    return int(k[i]), float(gain[i])


def segment_means(y: np.ndarray, cuts: list[int]) -> list[tuple[int, int, float]]:
    """``(start, end_exclusive, mean)`` of each segment between change points."""
    y = np.asarray(y, dtype=np.float64)
    bounds = [0, *cuts, len(y)]
    return [(a, b, float(np.mean(y[a:b]))) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
