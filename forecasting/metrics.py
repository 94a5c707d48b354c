"""Forecast accuracy: MASE, sMAPE, weighted quantile loss and interval coverage.

Definitions (``y`` actuals, ``f`` point forecasts, ``q_a`` the forecast quantile at level ``a``):

- **MASE** = mean |y - f| / scale, where scale is the in-sample mean absolute error of the
  seasonal naive forecast (lag = season length; lag 1 when the training part is shorter
  than two seasons). NaN when the scale is 0 (a constant training part).
- **sMAPE** = mean 200 |y - f| / (|y| + |f|) (M4's definition, in percent; a step where both
  are 0 counts 0).
- **WQL** = sum over steps and quantiles of 2 * pinball_a(y, q_a), divided by the number of
  quantiles times sum |y| (GluonTS' mean weighted quantile loss; NaN if sum |y| is 0).
- **coverage_80 / coverage_90** = share of actuals inside [q10, q90] / [q05, q95].

:func:`score_forecasts` takes a frame of forecasts joined with actuals (``unique_id, model,
cutoff, ds, y, mean, q05 ... q95``) and a frame of scales (``unique_id, cutoff, scale``) and
returns one row per ``unique_id, model``: ``windows, points, mase, smape, wql, coverage_80,
coverage_90``. MASE is averaged over windows (each window has its own scale); WQL pools the
windows. :func:`score_windows` gives the same figures per window (one row per ``unique_id,
model, cutoff``, with ``window`` and the sums that pool them: ``points``, ``abs_y``), so scores
can be pooled across series or over a subset of windows; :func:`pool_windows` turns any subset
of those rows back into :func:`score_forecasts`' rows (equal to scoring those windows' forecasts
directly). :func:`relative_score` gives the geometric mean of per-series ratios to a baseline,
the way Chronos' Benchmark II reports relative MASE and WQL.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.errors import FrameError
from core.frames import QUANTILES, quantile_column

__all__ = [
    "METRICS",
    "seasonal_scale",
    "smape",
    "pinball",
    "score_forecasts",
    "score_windows",
    "pool_windows",
    "WINDOW_COLUMNS",
    "relative_score",
]

#: Metric columns of :func:`score_forecasts`; all but coverage are "lower is better".
METRICS: tuple[str, ...] = ("mase", "smape", "wql", "coverage_80", "coverage_90")
_QCOLS = tuple(quantile_column(q) for q in QUANTILES)
#: Columns of :func:`score_windows`: per window, the metrics and the sums that pool them.
WINDOW_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "model",
    "cutoff",
    "window",
    "points",
    "abs_y",
    "ql_sum",
    "mase",
    "smape",
    "wql",
    "coverage_80",
    "coverage_90",
)


def seasonal_scale(y: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (the MASE denominator)."""
    lag = season if len(y) > 2 * season else 1
    if len(y) <= lag:
        return float("nan")
    scale = float(np.mean(np.abs(y[lag:] - y[:-lag])))
    return scale if scale > 0 else float("nan")


def smape(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Per-point M4 sMAPE in percent (0 where both actual and forecast are 0)."""
    denom = np.abs(y) + np.abs(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom == 0, 0.0, 200.0 * np.abs(y - f) / denom)


def pinball(y: np.ndarray, q: np.ndarray, level: float) -> np.ndarray:
    """Quantile (pinball) loss of forecast quantile ``q`` at ``level``."""
    diff = y - q
    return np.maximum(level * diff, (level - 1.0) * diff)


def score_forecasts(joined: pl.DataFrame, scales: pl.DataFrame) -> pl.DataFrame:
    """Metrics per ``unique_id, model`` (definitions in the module docstring)."""
    return pool_windows(score_windows(joined, scales))


def score_windows(joined: pl.DataFrame, scales: pl.DataFrame) -> pl.DataFrame:
    """Metrics per ``unique_id, model, cutoff`` (one backtest window), :data:`WINDOW_COLUMNS`.

    ``window`` is the window's number when ``scales`` has a ``window`` column (the backtest's:
    0 the oldest origin, the same number for every series), else the cutoff's rank within the
    series (0 the oldest). ``points``, ``abs_y`` (sum of |y|) and ``ql_sum`` (sum of the
    steps' mean quantile loss) are what :func:`pool_windows` pools sMAPE, coverage and WQL
    with; ``mase`` is the window's own (its own scale; null when that is not finite).
    """
    required = ("unique_id", "model", "cutoff", "ds", "y", "mean", *_QCOLS)
    missing = [c for c in required if c not in joined.columns]
    if missing:
        raise FrameError(
            f"scored frame lacks column(s) {missing}; it has {joined.columns}",
            fix="join forecasts (with cutoff) to actuals on unique_id, ds first",
        )
    keep = ["unique_id", "cutoff", "scale", *(["window"] if "window" in scales.columns else [])]
    frame = joined.join(scales.select(keep), on=["unique_id", "cutoff"], how="left")
    y = frame.get_column("y").to_numpy()
    losses = [2.0 * pinball(y, frame.get_column(quantile_column(a)).to_numpy(), a) for a in QUANTILES]
    frame = frame.with_columns(
        abs_err=(pl.col("y") - pl.col("mean")).abs(),
        smape_pt=pl.Series(smape(y, frame.get_column("mean").to_numpy())),
        ql=pl.Series(np.sum(losses, axis=0) / len(QUANTILES)),
        in80=((pl.col("y") >= pl.col("q10")) & (pl.col("y") <= pl.col("q90"))).cast(pl.Float64),
        in90=((pl.col("y") >= pl.col("q05")) & (pl.col("y") <= pl.col("q95"))).cast(pl.Float64),
        abs_y=pl.col("y").abs(),
    )
    if "window" not in frame.columns:
        frame = frame.with_columns(
            (pl.col("cutoff").rank("dense").over("unique_id") - 1).cast(pl.Int64).alias("window")
        )
    per_window = frame.group_by("unique_id", "model", "cutoff").agg(
        pl.col("window").first().cast(pl.Int64),
        pl.len().cast(pl.Int64).alias("points"),
        pl.col("abs_y").sum().alias("abs_y"),
        (pl.col("abs_err").mean() / pl.col("scale").first()).alias("mase"),
        pl.col("smape_pt").mean().alias("smape"),
        pl.col("ql").sum().alias("ql_sum"),
        pl.col("in80").mean().alias("coverage_80"),
        pl.col("in90").mean().alias("coverage_90"),
    )
    return (
        per_window.with_columns(
            pl.when(pl.col("abs_y") > 0).then(pl.col("ql_sum") / pl.col("abs_y")).otherwise(None).alias("wql"),
            pl.col("mase").fill_nan(None),
        )
        .select(WINDOW_COLUMNS)
        .sort("unique_id", "model", "cutoff")
    )


def pool_windows(windows: pl.DataFrame, by: tuple[str, ...] = ("unique_id", "model")) -> pl.DataFrame:
    """:func:`score_forecasts`' rows from :func:`score_windows`' rows (any subset of them).

    MASE is the mean of the windows' MASE (null if one window has no finite scale), sMAPE
    and coverage are weighted by points, WQL pools sum of losses over sum of |y|. ``by``: the
    grouping (default one row per series and model).
    """
    return (
        windows.group_by(*by)
        .agg(
            pl.len().cast(pl.Int64).alias("windows"),
            pl.col("points").sum().cast(pl.Int64).alias("points"),
            # a window without a finite scale (constant training part) makes the whole MASE null
            pl.when(pl.col("mase").null_count() > 0).then(None).otherwise(pl.col("mase").mean()).alias("mase"),
            ((pl.col("smape") * pl.col("points")).sum() / pl.col("points").sum()).alias("smape"),
            pl.when(pl.col("abs_y").sum() > 0)
            .then(pl.col("ql_sum").sum() / pl.col("abs_y").sum())
            .otherwise(None)
            .alias("wql"),
            ((pl.col("coverage_80") * pl.col("points")).sum() / pl.col("points").sum()).alias("coverage_80"),
            ((pl.col("coverage_90") * pl.col("points")).sum() / pl.col("points").sum()).alias("coverage_90"),
        )
        .with_columns(pl.col("mase").fill_nan(None))
        .sort(*by)
    )


def relative_score(metrics: pl.DataFrame, *, model: str | pl.Expr, baseline: str, metric: str) -> float:
    """Geometric mean over series of ``metric(model) / metric(baseline)``.

    ``model`` is a model name, or an expression selecting each series' row (e.g. the
    selected model). Series where either value is missing or 0 are left out.
    """
    mine = metrics.filter(pl.col("model") == model if isinstance(model, str) else model)
    base = metrics.filter(pl.col("model") == baseline)
    both = (
        mine.select("unique_id", pl.col(metric).alias("a"))
        .join(base.select("unique_id", pl.col(metric).alias("b")), on="unique_id")
        .filter((pl.col("a") > 0) & (pl.col("b") > 0))
    )
    if both.height == 0:
        return float("nan")
    return float(np.exp(np.mean(np.log(both["a"].to_numpy() / both["b"].to_numpy()))))
