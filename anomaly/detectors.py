"""Detectors: turn series (or in-sample forecasts) into raw anomaly scores.

Both detectors return the score contract of :mod:`core.frames`:
``unique_id, ds, detector, raw_score, score``. ``raw_score`` is the detector's own number
(higher = more abnormal, pyod's rule); ``score`` is that raw score calibrated against the
rest of the same series in this call (:func:`anomaly.calibration.calibrate`), so every
frame handed on meets the contract. Callers that keep a longer history should recalibrate
the union of stored and new raw scores instead of trusting a batch-local ``score``.

- :func:`subsequence_iforest` (detector ``iforest_subseq``): an isolation forest over
  sliding windows of the robustly standardised level (relative to its recent past) *and*
  first differences, so both sudden jumps and departures from the recent level isolate.
- :func:`interval_exceedance` (detector ``forecast_interval``): how far an observation lies
  outside the model's own 90% in-sample interval, a surprise relative to the forecaster.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from pyod.models.iforest import IForest

from anomaly.calibration import calibrate
from core.errors import FrameError
from core.frames import SCORE_COLUMNS, empty_scores, validate_forecasts, validate_series

__all__ = ["IFOREST_DETECTOR", "INTERVAL_DETECTOR", "subsequence_iforest", "interval_exceedance"]

IFOREST_DETECTOR = "iforest_subseq"
INTERVAL_DETECTOR = "forecast_interval"

#: Scale of the median absolute deviation that estimates a normal standard deviation.
_MAD_TO_SD = 1.4826
#: Windows needed for an isolation forest to have anything to isolate against.
_MIN_WINDOWS = 2


def subsequence_iforest(
    series: pl.DataFrame,
    *,
    windows: Mapping[str, int],
    trees: int = 100,
    seed: int = 0,
    min_history: int = 60,
    n_jobs: int = 2,
) -> pl.DataFrame:
    """Isolation-forest scores of sliding subsequences, one forest per series.

    For a series of ``n`` observations and window ``w = windows[unique_id]`` the features
    of the window ending at observation ``t`` (``t = w .. n-1``) are the ``w`` standardised
    levels ``z[t-w+1 .. t]`` taken relative to the median of the ``4w`` points before the
    window (so a steady trend is not a novelty), and the ``w`` differences ``z[i] - z[i-1]``
    over the same span, with ``z = (y - median) / (1.4826 * MAD)``. The score of the window goes to its
    last timestamp, so a point is scored from data up to it; the first ``w`` points get
    none. Windows run over observations, not calendar time. Series with fewer than
    ``min_history`` observations get no rows. The forest is fitted on the whole series
    (``n_estimators=trees``, ``random_state=seed``): the same input gives the same scores.
    """
    frame = validate_series(series)
    _check_windows(frame, windows)
    if trees < 1 or min_history < 1:
        raise FrameError(
            f"trees={trees}, min_history={min_history}; both need to be at least 1",
            fix="use the [anomaly] settings (iforest_trees=100, min_history=60)",
        )
    parts = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        w = windows[uid]
        y = part.get_column("y").to_numpy()
        if len(y) < min_history or len(y) - w < _MIN_WINDOWS:
            continue
        features = _subsequence_features(_robust_z(y), w)
        forest = IForest(n_estimators=trees, random_state=seed, n_jobs=n_jobs).fit(features)
        parts.append(
            pl.DataFrame(
                {
                    "unique_id": uid,
                    "ds": part.get_column("ds")[w:],
                    "detector": IFOREST_DETECTOR,
                    "raw_score": np.asarray(forest.decision_scores_, dtype=np.float64),
                }
            )
        )
    return _finish(parts)


def interval_exceedance(fitted: pl.DataFrame) -> pl.DataFrame:
    """Distance of each observation outside its 90% in-sample interval ``[q05, q95]``.

    ``fitted`` is the in-sample frame of :class:`forecasting.ForecastResult` (``unique_id,
    ds, y, model, mean, q05 ... q95``), one model per series. ``raw_score`` is 0 inside the
    interval and otherwise the distance beyond the nearer edge in units of the interval's
    half-width (1 = one half-width past q95 or below q05). A zero-width interval (a model
    certain of its fit) gets a tiny floor width, so any miss scores very high but finite.
    """
    validate_forecasts(fitted)
    if "y" not in fitted.columns:
        raise FrameError(
            f"in-sample frame lacks column 'y'; it has {fitted.columns}",
            fix="pass ForecastResult.fitted (forecasts have no observations to compare)",
        )
    frame = fitted.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("y").cast(pl.Float64),
        pl.col("mean").cast(pl.Float64),
        pl.col("q05").cast(pl.Float64),
        pl.col("q95").cast(pl.Float64),
    )
    broken = frame.filter(~pl.all_horizontal(pl.col("y", "q05", "q95").is_finite()).fill_null(False)).height
    if broken:
        raise FrameError(
            f"in-sample frame has {broken} row(s) with a missing or non-finite y, q05 or q95",
            fix="drop rows without a fit (forecast_statistical already leaves them out)",
        )
    dupes = frame.select(pl.struct("unique_id", "ds").is_duplicated().sum()).item()
    if dupes:
        raise FrameError(
            f"in-sample frame has {dupes} rows sharing a (unique_id, ds) key",
            fix="keep one model per series (filter on the model column) before scoring",
        )
    half_width = ((pl.col("q95") - pl.col("q05")) / 2).clip(lower_bound=1e-9 * (pl.col("mean").abs() + 1.0))
    above, below = pl.col("y") - pl.col("q95"), pl.col("q05") - pl.col("y")
    beyond = pl.max_horizontal(above, below, pl.lit(0.0))
    scored = frame.select(
        "unique_id",
        "ds",
        pl.lit(INTERVAL_DETECTOR).alias("detector"),
        (beyond / half_width).alias("raw_score"),
    )
    return _finish([scored])


def _check_windows(frame: pl.DataFrame, windows: Mapping[str, int]) -> None:
    ids = frame.get_column("unique_id").unique().sort().to_list()
    missing = [uid for uid in ids if uid not in windows]
    if missing:
        raise FrameError(
            f"{len(missing)} series have no window length, e.g. {missing[:5]}",
            fix="pass windows={unique_id: w}, e.g. the [anomaly] window of each series' frequency",
        )
    bad = {u: windows[u] for u in ids if not isinstance(windows[u], int) or windows[u] < 1}
    if bad:
        raise FrameError(
            f"window lengths must be integers >= 1, got {bad}",
            fix="pass the [anomaly] window of each series' frequency, e.g. 5 for B",
        )


def _robust_z(y: np.ndarray) -> np.ndarray:
    """Standardise by median and MAD, so one extreme value does not rescale the rest."""
    centre = float(np.median(y))
    scale = _MAD_TO_SD * float(np.median(np.abs(y - centre)))
    if scale == 0.0:
        # MAD is 0 when most values are equal (e.g. mostly-zero counts); use the SD then.
        scale = float(np.std(y)) or 1.0
    return (y - centre) / scale


def _local_level(z: np.ndarray, w: int) -> np.ndarray:
    """Level relative to the median of the ``4w`` points before the current window.

    Absolute levels would make the newest end of any trending series (a GNSS station
    drifting a few mm a year, a price index) look like a novelty; relative to its own recent
    past a steady trend is ordinary while a jump or a departure still stands out.
    """
    reference = (
        pl.Series(z).rolling_median(window_size=4 * w, min_samples=1).shift(w).fill_null(strategy="backward").to_numpy()
    )
    return z - reference


def _subsequence_features(z: np.ndarray, w: int) -> np.ndarray:
    """Rows = windows ending at t = w .. n-1; columns = w local levels then w differences."""
    levels = sliding_window_view(_local_level(z, w), w)[1:]
    steps = sliding_window_view(np.diff(z), w)
    return np.hstack([levels, steps])


def _finish(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate raw scores and attach the batch-local calibrated score."""
    if not parts:
        return empty_scores()
    return calibrate(pl.concat(parts)).select(SCORE_COLUMNS)
