"""Interval calibration: each quantile's distance from the median scaled to its nominal level.

A model's 80 % and 90 % intervals are only as good as its error model: statsforecast's come
from normal in-sample residuals, LightGBM's from mlforecast's 2 conformal windows, an
ensemble's from a quantile-wise median of its members. The backtest already holds every
candidate's *out-of-sample* forecasts (:func:`forecasting.backtest`: each window's model saw
data up to its origin only). This module learns, from those rows and nothing else, one factor
per (group, model, quantile) that stretches or shrinks that quantile's distance from the
median so that its pooled out-of-sample exceedance rate is nominal, and applies it to the
production forecast.

**Method** (split-conformal prediction on normalised residuals: Papadopoulos, Vovk and
Gammerman 2011, "Regression conformal prediction with nearest neighbours", JAIR 40, and Lei,
G'Sell, Rinaldo, Tibshirani and Wasserman 2018, "Distribution-free predictive inference for
regression", JASA 113, section 5.2 "locally weighted"; one score per quantile and side as in
Romano, Patterson and Candès 2019, "Conformalized quantile regression", NeurIPS, Theorem 2,
with the multiplicative instead of the additive score). For a quantile level ``a`` (``q05`` …
``q95`` except ``q50``) and every scored backtest point with median ``m`` and quantile ``q_a``
at a distance ``q_a - m != 0``, the normalised residual is

    r = (y - m) / (q_a - m)

(positive when ``y`` lies on the quantile's side of the median; ``r > 1`` when beyond it). The
calibrated quantile is ``m + s_a (q_a - m)``, and ``y`` lies beyond it exactly when ``r > s_a``.
``s_a`` is the conformal ``1 - t``-quantile of the pooled ``r`` (``t = min(a, 1 - a)``, the
tail probability beyond ``q_a``): the ``ceil((n + 1)(1 - t))``-th smallest of ``n`` values, so
the share of calibration points beyond the new quantile is at most ``t`` (split-conformal's
finite-sample rank). Each side gets its own factor because errors are skewed (bounded flows,
counts, hourly load), and a factor is floored at 0 (a quantile never crosses its median).
Points where ``q_a = m`` (a zero-width interval) cannot be fixed by a factor and are left out
of that quantile's fit, counted.

**Pooling.** Factors are learned per (group, model), ``group`` being the series' frequency by
default (the caller's ``groups`` mapping), from at least ``min_points`` points; a (group,
model) with fewer points uses the model's factors pooled over every group (group ``"*"``),
and a model with fewer points in all is left uncalibrated (factor 1, noted by the caller).

**Applying** (:func:`calibrate_intervals`): quantile columns are scaled about ``q50``; the
mean and the median do not move, so MASE and sMAPE are unchanged and only the spread (WQL,
coverage) changes. Quantiles are then sorted per row (the monotone rearrangement of
Chernozhukov, Fernández-Val and Galichon 2010, which never increases quantile loss) and kept
inside the series' physical bounds (:mod:`forecasting.bounds`: a calibrated quantile below the
floor is set to the floor, i.e. probability mass at the bound, and counted in the notes).

No look-ahead: the factors use only the rows given, which in a backtest are forecasts made at
origins inside the data the backtest was given; production applies them to the forecast
after the newest observation (``tests/test_forecast_calibration.py`` changes the data after a
backtest's end and shows the factors do not move).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
import polars as pl

from core.errors import FrameError
from core.frames import QUANTILES, quantile_column
from forecasting.bounds import Bounds

__all__ = [
    "CALIBRATED_QUANTILES",
    "ALL_GROUPS",
    "learn_interval_scales",
    "interval_scales_for",
    "calibrate_intervals",
    "describe_scales",
]

#: The quantile columns a calibration scales (every one but the median).
CALIBRATED_QUANTILES: tuple[str, ...] = tuple(quantile_column(q) for q in QUANTILES if q != 0.5)
#: The group name of a model's factors pooled over every group.
ALL_GROUPS = "*"
_LEVEL = {quantile_column(q): q for q in QUANTILES}
_NEEDED = ("unique_id", "model", "y", "q50", *CALIBRATED_QUANTILES)


def _factor(r: np.ndarray, tail: float) -> float:
    """Conformal (1 - tail)-quantile of the normalised residuals ``r``, floored at 0."""
    n = len(r)
    rank = min(n, math.ceil((n + 1) * (1.0 - tail)))
    return max(0.0, float(np.sort(r)[rank - 1]))


def _fit(part: pl.DataFrame) -> dict[str, float]:
    y = part.get_column("y").to_numpy().astype(float)
    m = part.get_column("q50").to_numpy().astype(float)
    out: dict[str, float] = {"points": float(len(y))}
    for col in CALIBRATED_QUANTILES:
        width = part.get_column(col).to_numpy().astype(float) - m
        ok = np.isfinite(width) & (width != 0) & np.isfinite(y) & np.isfinite(m)
        level = _LEVEL[col]
        out[col] = _factor((y[ok] - m[ok]) / width[ok], min(level, 1.0 - level)) if ok.any() else 1.0
        out[f"{col}_points"] = float(ok.sum())
    return out


def learn_interval_scales(forecasts: pl.DataFrame, *, groups: Mapping[str, str], min_points: int = 50) -> pl.DataFrame:
    """Per (group, model) and the pooled (``"*"``, model): each quantile's factor.

    ``forecasts``: out-of-sample forecasts joined with their actuals, ``unique_id, model, y,
    q05 … q95`` (:attr:`forecasting.BacktestResult.forecasts`). ``groups``: each series'
    group (its frequency, or its domain). Out: ``group, model, points`` and one factor column
    per entry of :data:`CALIBRATED_QUANTILES`; only groups with at least ``min_points``
    scored points appear (the method is in the module docstring).
    """
    missing = [c for c in _NEEDED if c not in forecasts.columns]
    if missing:
        raise FrameError(
            f"calibration needs out-of-sample forecasts with actuals; missing column(s) {missing}",
            fix="pass BacktestResult.forecasts (forecasts joined with the actuals they are scored on)",
        )
    if min_points < 1:
        raise FrameError(f"min_points={min_points}, needs an integer >= 1", fix="pass e.g. min_points=50")
    schema = {"group": pl.Utf8, "model": pl.Utf8, "points": pl.Int64, **dict.fromkeys(CALIBRATED_QUANTILES, pl.Float64)}
    if forecasts.height == 0:
        return pl.DataFrame(schema=schema)
    unknown = set(forecasts.get_column("unique_id").unique().to_list()) - set(groups)
    if unknown:
        raise FrameError(
            f"{len(unknown)} series have no calibration group, e.g. {sorted(unknown)[:5]}",
            fix="pass groups={unique_id: frequency} for every series of the forecasts",
        )
    frame = forecasts.select(*_NEEDED).with_columns(pl.col("unique_id").replace_strict(dict(groups)).alias("group"))
    rows = []
    for key_frame in (frame, frame.with_columns(pl.lit(ALL_GROUPS).alias("group"))):
        for (group, model), part in key_frame.group_by("group", "model", maintain_order=True):
            if part.height < min_points:
                continue
            fit = _fit(part)
            rows.append((group, model, int(fit["points"]), *(fit[c] for c in CALIBRATED_QUANTILES)))
    return pl.DataFrame(rows, schema=schema, orient="row").sort("group", "model")


def interval_scales_for(scales: pl.DataFrame, *, group: str, model: str) -> dict[str, float | int | str] | None:
    """The factors a series of ``group`` forecast by ``model`` gets: its group's, else the
    model's pooled ones, else None. A dict of the factor columns plus ``points`` and ``group``
    (the group the factors were learned on), ready to store as JSON."""
    for wanted in (group, ALL_GROUPS):
        row = scales.filter((pl.col("group") == wanted) & (pl.col("model") == model))
        if row.height:
            found = row.row(0, named=True)
            out: dict[str, float | int | str] = {"group": wanted, "points": int(found["points"])}
            out.update({c: round(float(found[c]), 6) for c in CALIBRATED_QUANTILES})
            return out
    return None


def describe_scales(scales: Mapping[str, float | int | str]) -> str:
    """One line for a selection's reason: the 80 % and 90 % factors (lower / upper side)."""
    where = "all frequencies" if scales.get("group") == ALL_GROUPS else f"the {scales.get('group')} series"
    return (
        f"intervals calibrated on {scales.get('points')} backtest points of {where}: "
        f"80% x{float(scales['q10']):.2f} below / x{float(scales['q90']):.2f} above the median, "
        f"90% x{float(scales['q05']):.2f} / x{float(scales['q95']):.2f}"
    )


def calibrate_intervals(
    forecasts: pl.DataFrame,
    scales: Mapping[str, Mapping[str, float | int | str] | str | None],
    *,
    bounds: Mapping[str, Bounds] | None = None,
) -> tuple[pl.DataFrame, list[tuple[str, str, str]]]:
    """Forecasts with each series' quantiles scaled about its median (module docstring).

    ``scales``: per series, the factors (:func:`interval_scales_for`, or its JSON text); a
    series absent or mapped to None is returned unchanged. ``bounds``: physical bounds per
    series; a calibrated quantile outside is set to the bound (counted in the notes). Out: the
    frame (same columns and rows) and notes ``(unique_id, model, note)``.
    """
    missing = [c for c in ("unique_id", "q50", *CALIBRATED_QUANTILES) if c not in forecasts.columns]
    if missing:
        raise FrameError(
            f"forecast frame lacks quantile column(s) {missing}", fix="pass a forecast frame (core.frames)"
        )
    factors: dict[str, dict[str, float]] = {}
    for uid, found in scales.items():
        loaded = json.loads(found) if isinstance(found, str) else found
        if loaded:
            factors[uid] = {c: float(loaded[c]) for c in CALIBRATED_QUANTILES}
    if not factors or forecasts.height == 0:
        return forecasts, []
    table = pl.DataFrame(
        [(u, *(f[c] for c in CALIBRATED_QUANTILES)) for u, f in factors.items()],
        schema={"unique_id": pl.Utf8, **{f"_s_{c}": pl.Float64 for c in CALIBRATED_QUANTILES}},
        orient="row",
    )
    columns = forecasts.columns
    out = forecasts.join(table, on="unique_id", how="left", maintain_order="left")
    out = out.with_columns(
        (pl.col("q50") + pl.col(f"_s_{c}").fill_null(1.0) * (pl.col(c) - pl.col("q50"))).alias(c)
        for c in CALIBRATED_QUANTILES
    )
    ordered = [quantile_column(q) for q in QUANTILES]
    values = np.sort(out.select(ordered).to_numpy(), axis=1)
    out = out.with_columns(pl.Series(c, values[:, i]) for i, c in enumerate(ordered))
    notes: list[tuple[str, str, str]] = []
    limits = [(u, lo, hi) for u, (lo, hi) in (bounds or {}).items() if u in factors and (lo, hi) != (None, None)]
    if limits:
        table = pl.DataFrame(limits, schema={"unique_id": pl.Utf8, "_lo": pl.Float64, "_hi": pl.Float64}, orient="row")
        out = out.join(table, on="unique_id", how="left", maintain_order="left")
        below = pl.any_horizontal(pl.col(c) < pl.col("_lo") for c in ordered).fill_null(False)
        above = pl.any_horizontal(pl.col(c) > pl.col("_hi") for c in ordered).fill_null(False)
        hits = {
            u: (lo_hits, hi_hits)
            for u, lo_hits, hi_hits in out.group_by("unique_id")
            .agg(below.sum().alias("lo"), above.sum().alias("hi"))
            .iter_rows()
        }
        for uid, low, high in limits:  # the notes in the order of the bounds given, lower first
            for limit, hit in ((low, hits.get(uid, (0, 0))[0]), (high, hits.get(uid, (0, 0))[1])):
                if limit is not None and hit:
                    notes.append((uid, "*", f"{hit} calibrated step(s) reached the bound {limit:g}: set to the bound"))
        out = out.with_columns(
            pl.col(c).clip(lower_bound=pl.col("_lo"), upper_bound=pl.col("_hi")).alias(c) for c in ordered
        )
    return out.select(columns), notes
