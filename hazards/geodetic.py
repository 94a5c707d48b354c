"""Geodetic indicators: velocity changes and steps (offsets) in displacement and sea-level series.

- :func:`velocity_change`: least-squares velocity (units per year) of the ``span`` points
  before each time against the ``span`` before that; the change is what a slow-slip event or
  post-seismic relaxation shows.
- :func:`detect_steps`: jumps in a GNSS displacement series (co-seismic offsets, antenna or
  datum changes) and in a tide-gauge sea-level series (a gauge that sank with the land, as
  Ayukawa did in 2011, or a datum change): both are offsets of the ground under the
  instrument, so the one detector lives here and serves both. Found by
  :func:`find_change_points` on the detrended series, reported with their size and the dates
  around them. Offline (uses the whole series).
- :func:`find_change_points` (offline, whole series): binary segmentation of a piecewise
  constant mean under a Gaussian cost with penalty ``penalty * sigma^2 * log n`` (BIC-like;
  ``sigma`` from first differences, so a step does not inflate its own noise estimate).
  Returns the indices where a new segment starts; :func:`segment_means` gives the segments.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.errors import FrameError
from core.frames import validate_series

__all__ = ["velocity_change", "detect_steps", "find_change_points", "segment_means"]

_DAYS_PER_YEAR = 365.25


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
        parts.append(
            part.with_columns(
                pl.Series("velocity_before", before),
                pl.Series("velocity_recent", recent),
                pl.Series("velocity_change", recent - before),
            )
        )
    out = pl.concat(parts)
    return out.filter(pl.col("velocity_change").is_not_nan())


def _rolling_slope(t: np.ndarray, y: np.ndarray, span: int) -> np.ndarray:
    st, sy = pl.Series(t), pl.Series(y)
    mt, my = st.rolling_mean(span).to_numpy(), sy.rolling_mean(span).to_numpy()
    mty = pl.Series(t * y).rolling_mean(span).to_numpy()
    mtt = pl.Series(t * t).rolling_mean(span).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (mty - mt * my) / (mtt - mt * mt)


def detect_steps(
    series: pl.DataFrame, *, penalty: float = 8.0, min_size: int = 10, min_step: float = 0.0
) -> pl.DataFrame:
    """Steps per series: ``unique_id, ds`` (first point after the step), ``size``, ``before_ds``.

    GNSS displacement and tide-gauge sea level alike (module docstring). The series is
    detrended with its overall least-squares line first (a station's steady velocity is not
    a step); ``min_step`` drops steps smaller than that (in y units).
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
    return pl.DataFrame(
        rows, schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "before_ds": pl.Datetime("us"), "size": pl.Float64}
    )


def find_change_points(y: np.ndarray, *, penalty: float = 3.0, min_size: int = 5, max_changes: int = 20) -> list[int]:
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
