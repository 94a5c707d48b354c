"""Flood hazard: return levels and return-period thresholds of river flow, and the warning
level of a flow forecast against them (EFAS/GloFAS style).

Indicators the engine grades today (kept as they are):

- :func:`return_levels`: calendar-year maxima fitted with a Gumbel distribution (method of
  moments) and the ``T``-year return levels;
- :func:`return_level_scores`: per observation the return period of its value under its
  series' fit, in the score contract (detector ``return_level``: ``raw_score`` = return
  period in years, ``score`` = the annual-maximum CDF at the value, i.e. ``1 - 1/T``).

The field model (issue 14, "Rivers"):

1. :func:`annual_maxima`: the maximum of each **water year** of a series, with the day it
   happened and the year's coverage. A water year is named by the calendar year it ends in
   (USGS: water year 2000 = 1999-10-01 .. 2000-09-30); it starts in October for US gauges
   (the low-flow season, so a winter flood is not split between two years) and in January
   elsewhere (:func:`water_year_start`). A year **counts** only when at least
   ``min_coverage`` (default 80 %) of its days have an observation: a year with most of its
   days missing understates the maximum and would drag every threshold down.
2. :func:`return_period_thresholds`: the ``T``-year flood **threshold** for T = 2, 5, 20: the
   level the annual maximum exceeds with probability ``1/T`` in any year, i.e. the
   ``1 - 1/T`` quantile of the annual-maximum distribution. The distribution is the GEV, or
   the Gumbel (GEV with shape 0) for short records: ``method="auto"`` takes the Gumbel when
   fewer than ``gev_min_years`` (20) complete water years are available, because fewer
   maxima say little about the GEV shape, and the GEV from there on. The estimator is
   L-moments by default (Hosking 1990; the GEV shape from the L-skewness by the
   approximation of Hosking, Wallis & Wood 1985, accurate to 9e-4 for shapes in
   [-0.5, 0.5]; the Gumbel from the first two L-moments, as GloFAS v1-v4 compute their
   thresholds) or maximum likelihood (``estimator="mle"``, :mod:`pyextremes`' ``MLE``
   model, i.e. the ``scipy.stats`` fit; a GEV shape beyond +-1 is a diverged fit and is
   replaced by the L-moment one, with a note). L-moments are the hydrologists' default for
   the 10-40 years a gauge has: less biased than maximum likelihood on short samples, and
   they never fail to converge.
3. :func:`return_period_exceedance`: from the exceedance frame that
   :func:`forecasting.exceedance_probabilities` computes for those thresholds
   (:func:`exceedance_thresholds` gives its threshold input), the probability that the
   forecast exceeds each threshold **within the horizon** (the last ``p_path_cross`` of the
   window).
4. :func:`flood_levels`: those probabilities on a documented **ladder** to a warning level
   (:data:`DEFAULT_FLOOD_LADDER`, defaults from the EFAS and GloFAS criteria):

   ======  ==========================  ===================================================
   level   rule (default)              source of the default
   ======  ==========================  ===================================================
   blue    P(> 2-year) >= 0.2          GloFAS dynamic reporting points: "total probability
                                       > 20 % exceeds 2-year" is their lowest class
   yellow  P(> 2-year) >= 0.5          EFAS reporting points: 2-year with probability > 50 %
   orange  P(> 5-year) >= 0.5          EFAS formal flood notification (since EFAS v5.2):
                                       >= 50 % total probability of exceeding the 5-year
                                       threshold (formerly >= 30 % in 3 consecutive runs)
   red     P(> 20-year) >= 0.3         EFAS and GloFAS reporting points: 20-year
                                       probability > 30 % (GloFAS' purple, its most severe)
   ======  ==========================  ===================================================

   The level is the highest rung that holds; ``persistence=n`` asks a rung to hold in the
   last ``n`` consecutive forecasts (EFAS averages the current and previous forecast for its
   reporting points and once asked 3 consecutive runs for notifications). The evidence names
   the threshold, its return period, its value and unit, the probability and the window.

Thresholds from a simulated or short record are uncertain (a 20-year level fitted on 10
years is an extrapolation); the frame carries the years used so a reader can judge.
References: Hosking, J.R.M. (1990) L-moments, J. R. Stat. Soc. B 52(1) 105-124; Hosking,
Wallis & Wood (1985) Technometrics 27(3) 251-261; Hosking & Wallis (1997) Regional
Frequency Analysis, Cambridge University Press (appendix: GEV and Gumbel); EFAS notification
criteria (CEMS wiki 4.2.1, "EFAS Formal Flood Notification"); GloFAS reporting points and
flood thresholds (CEMS wiki, "GloFAS Reporting Points", "GloFAS flood thresholds").
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from scipy.special import gamma as gamma_function

from core.errors import ConfigError, FrameError
from core.frames import validate_series
from core.vocabulary import Level

__all__ = [
    "RETURN_LEVEL_DETECTOR",
    "RETURN_PERIODS",
    "ANNUAL_MAXIMA_COLUMNS",
    "THRESHOLD_COLUMNS",
    "EXCEEDANCE_INPUT_COLUMNS",
    "FloodRung",
    "DEFAULT_FLOOD_LADDER",
    "return_levels",
    "return_level_scores",
    "water_year_start",
    "annual_maxima",
    "return_period_thresholds",
    "exceedance_thresholds",
    "return_period_exceedance",
    "flood_levels",
    "ladder_levels",
    "DEFAULT_OBSERVED_RUNGS",
    "observed_rungs",
]

#: The "gauge is in flood now" rungs: when the newest observed flow is above the return level of
#: a period, the level is at least that rung (``[hazards] flood_observed_rungs``).
DEFAULT_OBSERVED_RUNGS: dict[str, float] = {Level.YELLOW.label: 2.0, Level.ORANGE.label: 5.0, Level.RED.label: 20.0}

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


# -- return-period thresholds -----------------------------------------------------------------
#: Return periods (years) of the flood thresholds EFAS and GloFAS use.
RETURN_PERIODS: tuple[int, ...] = (2, 5, 20)
ANNUAL_MAXIMA_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "water_year",
    "ds",
    "annual_max",
    "days",
    "days_in_year",
    "coverage",
    "complete",
)
THRESHOLD_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "threshold",
    "period_years",
    "threshold_value",
    "method",
    "estimator",
    "shape",
    "loc",
    "scale",
    "years_used",
    "first_year",
    "last_year",
    "water_year_start_month",
    "note",
)
_METHODS = ("auto", "gev", "gumbel")
_ESTIMATORS = ("lmoments", "mle")
#: Regions whose gauges keep the USGS water year (October-September).
_US_SUFFIXES = ("us", "usa", "united states", "united states of america")
#: Below this |shape| a GEV is a Gumbel (the GEV formulas divide by the shape).
_GUMBEL_SHAPE = 1e-6
#: A maximum-likelihood GEV shape this large is a diverged fit (short records), not a river.
_MLE_MAX_SHAPE = 1.0


def water_year_start(region: str | None) -> int:
    """Month a water year starts in for a gauge in ``region``: 10 (October) for the US, else 1.

    ``region`` is the catalogue's free text (``"Maryland, US"``); its last comma-separated
    part is read as the country.
    """
    country = (region or "").rsplit(",", 1)[-1].strip().lower()
    return 10 if country in _US_SUFFIXES else 1


def _start_months(ids: Sequence[str], water_year_start_month: int | Mapping[str, int]) -> dict[str, int]:
    months = (
        dict(water_year_start_month)
        if isinstance(water_year_start_month, Mapping)
        else dict.fromkeys(ids, water_year_start_month)
    )
    missing = [uid for uid in ids if uid not in months]
    if missing:
        raise FrameError(
            f"no water-year start month for {len(missing)} series, e.g. {missing[:3]}",
            fix="pass water_year_start_month as one month, or a mapping with every series "
            "(hazards.water_year_start(region) gives 10 for US gauges, 1 elsewhere)",
        )
    bad = {uid: m for uid, m in months.items() if not (isinstance(m, int) and 1 <= m <= 12)}
    if bad:
        raise FrameError(
            f"water_year_start_month must be a month 1..12, got {bad}",
            fix="use 10 (October, USGS) or 1 (calendar years)",
        )
    return {uid: months[uid] for uid in ids}


def annual_maxima(
    series: pl.DataFrame, *, water_year_start_month: int | Mapping[str, int] = 10, min_coverage: float = 0.8
) -> pl.DataFrame:
    """Maximum of each water year of each series (module docstring, step 1).

    Returns ``unique_id, water_year, ds, annual_max, days, days_in_year, coverage, complete``:
    ``ds`` is the first time the maximum was reached, ``days`` the calendar days with at least
    one observation, ``coverage = days / days_in_year`` and ``complete = coverage >=
    min_coverage``. Every water year with an observation is listed; fits use the complete ones.
    """
    frame = validate_series(series)
    if not 0.0 < min_coverage <= 1.0:
        raise FrameError(
            f"min_coverage={min_coverage!r} is not a share in (0, 1]",
            fix="pass e.g. min_coverage=0.8 (a year counts with 80 % of its days observed)",
        )
    ids = frame.get_column("unique_id").unique(maintain_order=True).to_list()
    months = _start_months(ids, water_year_start_month)
    start = pl.col("unique_id").replace_strict(months, return_dtype=pl.Int32)
    year, month = pl.col("ds").dt.year(), pl.col("ds").dt.month()
    water_year = pl.when(start == 1).then(year).otherwise(year + (month >= start).cast(pl.Int32))
    maxima = (
        frame.with_columns(water_year.cast(pl.Int32).alias("water_year"))
        .group_by("unique_id", "water_year")
        .agg(
            pl.col("ds").filter(pl.col("y") == pl.col("y").max()).min().alias("ds"),
            pl.col("y").max().alias("annual_max"),
            pl.col("ds").dt.date().n_unique().cast(pl.Int64).alias("days"),
        )
        .sort("unique_id", "water_year")
    )
    days_in_year = [
        _days_in_water_year(wy, months[uid]) for uid, wy in maxima.select("unique_id", "water_year").iter_rows()
    ]
    maxima = maxima.with_columns(pl.Series("days_in_year", days_in_year, dtype=pl.Int64))
    coverage = pl.col("days") / pl.col("days_in_year")
    return maxima.with_columns(coverage.alias("coverage"), (coverage >= min_coverage).alias("complete")).select(
        ANNUAL_MAXIMA_COLUMNS
    )


def _days_in_water_year(water_year: int, start_month: int) -> int:
    first = date(water_year - (1 if start_month > 1 else 0), start_month, 1)
    return (date(first.year + 1, start_month, 1) - first).days


def return_period_thresholds(
    series: pl.DataFrame,
    *,
    periods: Sequence[float] = RETURN_PERIODS,
    water_year_start_month: int | Mapping[str, int] = 10,
    method: str = "auto",
    estimator: str = "lmoments",
    min_coverage: float = 0.8,
    min_years: int = 5,
    gev_min_years: int = 20,
) -> pl.DataFrame:
    """``T``-year flood thresholds of each series from its water-year maxima (module docstring).

    ``method``: ``"gev"``, ``"gumbel"`` or ``"auto"`` (Gumbel below ``gev_min_years``
    complete water years, GEV from there); ``estimator``: ``"lmoments"`` or ``"mle"``.
    Series with fewer than ``min_years`` complete water years are left out with a warning
    (a :class:`FrameError` when none is left).

    Returns one row per series and period, columns :data:`THRESHOLD_COLUMNS`: ``threshold``
    is the label ``rp<T>`` (``rp2``, ``rp5``, ``rp20``), ``threshold_value`` the level in the
    series' unit (the ``1 - 1/T`` quantile of the annual maximum), ``shape, loc, scale`` the
    fitted distribution in :data:`scipy.stats.genextreme`'s convention (``shape`` = c =
    Hosking's k: negative = heavy upper tail; 0 for a Gumbel), ``years_used`` the complete
    water years fitted (``first_year`` .. ``last_year``), ``note`` why the method or the years
    differ from what was asked ("" when nothing to say).
    """
    if method not in _METHODS:
        raise FrameError(
            f"method={method!r} is not one of {_METHODS}",
            fix='use "auto" (Gumbel below gev_min_years, GEV from there), "gev" or "gumbel"',
        )
    if estimator not in _ESTIMATORS:
        raise FrameError(
            f"estimator={estimator!r} is not one of {_ESTIMATORS}",
            fix='use "lmoments" (Hosking 1990) or "mle" (maximum likelihood, pyextremes)',
        )
    bad = [p for p in periods if isinstance(p, bool) or not (isinstance(p, numbers.Real) and p > 1)]
    if not periods or bad:
        raise FrameError(f"return periods {list(periods)} must be years > 1", fix="pass e.g. periods=(2, 5, 20)")
    if min_years < 3:
        raise FrameError(
            f"min_years={min_years} is below 3, too few maxima to fit two parameters", fix="pass min_years=5 or more"
        )
    maxima = annual_maxima(series, water_year_start_month=water_year_start_month, min_coverage=min_coverage)
    months = _start_months(maxima.get_column("unique_id").unique(maintain_order=True).to_list(), water_year_start_month)
    rows: list[dict[str, Any]] = []
    short: list[str] = []
    for (uid,), part in maxima.group_by("unique_id", maintain_order=True):
        full = part.filter(pl.col("complete"))
        if full.height < min_years:
            short.append(f"{uid} ({full.height} complete water years < min_years {min_years})")
            continue
        x = full.get_column("annual_max").to_numpy()
        if float(np.ptp(x)) <= 0.0:
            short.append(f"{uid} (its {full.height} annual maxima are all {x[0]:g}: nothing to fit)")
            continue
        notes = []
        dropped = part.filter(~pl.col("complete")).get_column("water_year").to_list()
        if dropped:
            notes.append(f"water year(s) {dropped} left out: under {min_coverage:.0%} of days observed")
        kind = method if method != "auto" else ("gev" if full.height >= gev_min_years else "gumbel")
        if method == "auto" and kind == "gumbel":
            notes.append(f"gumbel: {full.height} complete water years < {gev_min_years} for a GEV shape")
        years = [int(y) for y in full.get_column("water_year").to_list()]
        shape, loc, scale, kind, why = _fit(x, full.get_column("ds"), kind=kind, estimator=estimator)
        if why:
            notes.append(why)
        for period in periods:
            rows.append(
                {
                    "unique_id": uid,
                    "threshold": f"rp{period:g}",
                    "period_years": float(period),
                    "threshold_value": _quantile(1.0 - 1.0 / period, shape, loc, scale),
                    "method": kind,
                    "estimator": estimator,
                    "shape": shape,
                    "loc": loc,
                    "scale": scale,
                    "years_used": full.height,
                    "first_year": min(years),
                    "last_year": max(years),
                    "water_year_start_month": months[uid],
                    "note": "; ".join(notes),
                }
            )
    if short:
        message = f"{len(short)} series get no flood thresholds: {'; '.join(short[:5])}"
        if not rows:
            raise FrameError(message, fix="load longer records, or lower min_years knowing a short fit is shaky")
        warnings.warn(message, stacklevel=2)
    return pl.DataFrame(rows, schema=_threshold_schema()).sort("unique_id", "period_years")


def _threshold_schema() -> dict[str, pl.DataType]:
    types: dict[str, pl.DataType] = {
        "period_years": pl.Float64(),
        "threshold_value": pl.Float64(),
        "shape": pl.Float64(),
        "loc": pl.Float64(),
        "scale": pl.Float64(),
        "years_used": pl.Int64(),
        "first_year": pl.Int64(),
        "last_year": pl.Int64(),
        "water_year_start_month": pl.Int64(),
    }
    return {c: types.get(c, pl.Utf8()) for c in THRESHOLD_COLUMNS}


def _quantile(p: float, shape: float, loc: float, scale: float) -> float:
    """Annual-maximum quantile: GEV in Hosking's form, the Gumbel at shape 0."""
    if abs(shape) < _GUMBEL_SHAPE:
        return loc - scale * math.log(-math.log(p))
    return loc + scale / shape * (1.0 - (-math.log(p)) ** shape)


def _fit(x: np.ndarray, dates: pl.Series, *, kind: str, estimator: str) -> tuple[float, float, float, str, str]:
    """``(shape, loc, scale, method used, note)`` of a GEV or Gumbel fit to the maxima ``x``."""
    if estimator == "mle":
        shape, loc, scale = _fit_mle(x, dates, kind=kind)
        if abs(shape) < _MLE_MAX_SHAPE:
            return shape, loc, scale, kind, ""
        fallback = _fit(x, dates, kind=kind, estimator="lmoments")
        why = (
            f"maximum likelihood gave shape {shape:.2f} (|shape| >= {_MLE_MAX_SHAPE:g}, a diverged fit): L-moments used"
        )
        return (*fallback[:4], "; ".join(n for n in (why, fallback[4]) if n))
    l1, l2, t3 = _sample_lmoments(x)
    note = ""
    if kind == "gev":
        shape = _gev_shape_from_t3(t3)
        if shape > -1.0 + 1e-6 and abs(shape) >= _GUMBEL_SHAPE:
            g = float(gamma_function(1.0 + shape))
            scale = l2 * shape / ((1.0 - 2.0 ** (-shape)) * g)
            return shape, l1 - scale * (1.0 - g) / shape, scale, "gev", ""
        if shape <= -1.0 + 1e-6:
            kind = "gumbel"
            note = f"gumbel: L-skewness {t3:.2f} implies a GEV shape {shape:.2f} <= -1 (no finite mean)"
    # Gumbel from the first two L-moments (a GEV whose shape rounds to 0 is this Gumbel).
    scale = l2 / math.log(2.0)
    return 0.0, l1 - _EULER * scale, scale, kind, note


def _sample_lmoments(x: np.ndarray) -> tuple[float, float, float]:
    """``(l1, l2, t3)``: unbiased sample L-moments from probability-weighted moments (Hosking 1990)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    j = np.arange(n, dtype=np.float64)  # rank - 1
    b0 = x.mean()
    b1 = float(np.sum(j * x)) / (n * (n - 1))
    b2 = float(np.sum(j * (j - 1) * x)) / (n * (n - 1) * (n - 2)) if n > 2 else 0.0
    l2 = 2.0 * b1 - b0
    l3 = 6.0 * b2 - 6.0 * b1 + b0
    return float(b0), float(l2), float(l3 / l2) if n > 2 else 0.0


def _gev_shape_from_t3(t3: float) -> float:
    """GEV shape k from L-skewness (the Hosking, Wallis & Wood 1985 polynomial in ``z``)."""
    z = 2.0 / (3.0 + t3) - math.log(2.0) / math.log(3.0)
    return 7.8590 * z + 2.9554 * z * z


def _fit_mle(x: np.ndarray, dates: pl.Series, *, kind: str) -> tuple[float, float, float]:
    """Maximum likelihood through pyextremes' MLE model (scipy.stats fit underneath)."""
    try:
        import pandas as pd
        from pyextremes.models import get_model
    except ImportError as exc:  # pragma: no cover - pyextremes is a declared dependency
        raise ConfigError(
            "estimator='mle' needs the pyextremes package, which is not installed",
            fix="pip install 'pyextremes>=2.6', or use estimator='lmoments'",
        ) from exc
    extremes = pd.Series(x, index=pd.DatetimeIndex(dates.cast(pl.Datetime("us")).to_numpy()), name="annual_max")
    model = get_model("MLE", extremes=extremes, distribution="genextreme" if kind == "gev" else "gumbel_r")
    params = model.fit_parameters
    return float(params.get("c", 0.0)), float(params["loc"]), float(params["scale"])


def exceedance_thresholds(thresholds: pl.DataFrame) -> pl.DataFrame:
    """The threshold frame :func:`forecasting.exceedance_probabilities` takes for these thresholds.

    ``unique_id, threshold, value, direction`` (``rp<T>``, the level, ``"above"``).
    """
    _require(
        thresholds,
        ("unique_id", "threshold", "threshold_value"),
        what="thresholds",
        fix="pass the frame return_period_thresholds returns",
    )
    return thresholds.select(
        "unique_id", "threshold", pl.col("threshold_value").alias("value"), pl.lit("above").alias("direction")
    )


def _require(frame: pl.DataFrame, columns: Sequence[str], *, what: str, fix: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FrameError(f"the {what} frame lacks column(s) {missing}; it has {frame.columns}", fix=fix)


# -- exceedance within the horizon and the warning ladder -------------------------------------
#: Columns :func:`return_period_exceedance` needs (``forecasting.EXCEEDANCE_COLUMNS`` without
#: ``model``; an optional ``cutoff`` column keeps several forecasts apart).
EXCEEDANCE_INPUT_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "ds",
    "threshold",
    "threshold_value",
    "direction",
    "p_step_exceed",
    "p_path_cross",
)


@dataclass(frozen=True)
class FloodRung:
    """One rung of the ladder: ``level`` when P(flow > the ``period_years`` threshold within
    the horizon) >= ``min_probability``."""

    level: Level
    period_years: float
    min_probability: float


#: Default ladder (module docstring: EFAS/GloFAS criteria behind each rung).
DEFAULT_FLOOD_LADDER: tuple[FloodRung, ...] = (
    FloodRung(Level.BLUE, 2, 0.2),
    FloodRung(Level.YELLOW, 2, 0.5),
    FloodRung(Level.ORANGE, 5, 0.5),
    FloodRung(Level.RED, 20, 0.3),
)


def return_period_exceedance(
    exceedance: pl.DataFrame, thresholds: pl.DataFrame, *, horizon_steps: int | None = None
) -> pl.DataFrame:
    """P(the forecast exceeds each return-period threshold within the horizon).

    ``exceedance``: the frame of :func:`forecasting.exceedance_probabilities` (columns
    :data:`EXCEEDANCE_INPUT_COLUMNS`, optionally ``cutoff`` for several forecasts of a
    series) computed with :func:`exceedance_thresholds`; rows of other thresholds (``p99``)
    are ignored. ``thresholds``: the frame of :func:`return_period_thresholds`.
    ``horizon_steps`` keeps the first n steps of each forecast (default: all).

    Returns ``unique_id, [cutoff,] threshold, period_years, threshold_value, p_exceed,
    window_start, window_end, steps``: ``p_exceed`` is ``p_path_cross`` at the window's last
    step, the probability that the flow goes above the threshold on at least one step from
    ``window_start`` to ``window_end`` (the forecast's dependence assumption is
    :mod:`forecasting.exceedance`'s).
    """
    _require(
        exceedance,
        EXCEEDANCE_INPUT_COLUMNS,
        what="exceedance",
        fix="pass forecasting.exceedance_probabilities(forecasts, exceedance_thresholds(thresholds))",
    )
    _require(
        thresholds,
        ("unique_id", "threshold", "period_years", "threshold_value"),
        what="thresholds",
        fix="pass the frame return_period_thresholds returns",
    )
    if horizon_steps is not None and (not isinstance(horizon_steps, int) or horizon_steps < 1):
        raise FrameError(
            f"horizon_steps={horizon_steps!r}, needs an integer >= 1 or None",
            fix="pass e.g. horizon_steps=3 for the first three days of a daily forecast",
        )
    keys = ["unique_id", "cutoff"] if "cutoff" in exceedance.columns else ["unique_id"]
    rows = exceedance.join(
        thresholds.select("unique_id", "threshold", "period_years"), on=["unique_id", "threshold"], how="inner"
    )
    if rows.height == 0:
        raise FrameError(
            "no exceedance row is for a return-period threshold of the thresholds frame",
            fix="compute the exceedance with exceedance_thresholds(thresholds) as its thresholds",
        )
    wrong = rows.filter(pl.col("direction") != "above")
    if wrong.height:
        raise FrameError(
            f"return-period thresholds are exceeded from below; {wrong.height} row(s) have "
            f"direction {wrong.get_column('direction').unique().to_list()}",
            fix="compute the exceedance with exceedance_thresholds(thresholds)",
        )
    step = pl.int_range(pl.len()).over([*keys, "threshold"])
    if horizon_steps is not None:
        rows = rows.sort([*keys, "threshold", "ds"]).filter(step < horizon_steps)
    return (
        rows.group_by([*keys, "threshold"])
        .agg(
            pl.col("period_years").first(),
            pl.col("threshold_value").first(),
            pl.col("p_path_cross").sort_by("ds").last().clip(0.0, 1.0).alias("p_exceed"),
            pl.col("ds").min().alias("window_start"),
            pl.col("ds").max().alias("window_end"),
            pl.len().cast(pl.Int64).alias("steps"),
        )
        .sort([*keys, "period_years"])
    )


def _check_ladder(ladder: Sequence[FloodRung]) -> tuple[FloodRung, ...]:
    rungs = tuple(ladder)
    levels = [r.level for r in rungs]
    problems = []
    if not rungs:
        problems.append("the ladder is empty")
    if len(set(levels)) != len(levels):
        problems.append(f"a level appears twice: {[lv.label for lv in levels]}")
    for r in rungs:
        if not isinstance(r.level, Level) or r.level is Level.NONE:
            problems.append(f"{r.level!r} is not a warning level")
        if not 0.0 < r.min_probability <= 1.0:
            problems.append(f"{r.level.label}: min_probability {r.min_probability} outside (0, 1]")
        if not r.period_years > 1:
            problems.append(f"{r.level.label}: period_years {r.period_years} must exceed 1")
    if problems:
        raise ConfigError(
            "flood ladder: " + "; ".join(problems),
            fix="give each of blue..red at most once, with a return period > 1 and a "
            "probability in (0, 1], e.g. hazards.DEFAULT_FLOOD_LADDER",
        )
    return tuple(sorted(rungs, key=lambda r: int(r.level)))


def flood_levels(
    exceedance: pl.DataFrame,
    thresholds: pl.DataFrame,
    *,
    ladder: Sequence[FloodRung] = DEFAULT_FLOOD_LADDER,
    horizon_steps: int | None = None,
    persistence: int = 1,
    units: str | Mapping[str, str] = "m3/s",
) -> pl.DataFrame:
    """Warning level of each forecast from its return-period exceedance (module docstring, step 4).

    Inputs as for :func:`return_period_exceedance`. A rung holds for a forecast when P(flow >
    its threshold within the window) >= its ``min_probability``, and, with ``persistence=n``,
    also in the ``n - 1`` forecasts (``cutoff`` values) before it of the same series; a
    series with fewer earlier forecasts in the frame does not reach that rung yet. A rung
    whose return period has no threshold for the series is skipped (said in the evidence).
    ``units``: the unit of the thresholds, one for all or per series.

    Returns one row per forecast: ``unique_id, [cutoff,] level`` (label ``none`` ... ``red``),
    ``probability, period_years, threshold_value, window_start, window_end, evidence``: the
    deciding rung's probability and threshold (for ``none``, those of the lowest return
    period), and ``evidence`` a JSON object with the rule, the threshold (label, return
    period, value, unit), the probability, the window, every threshold's probability and the fit.
    """
    rungs = _check_ladder(ladder)
    if not isinstance(persistence, int) or persistence < 1:
        raise FrameError(
            f"persistence={persistence!r}, needs an integer >= 1",
            fix="pass 1 (this forecast alone) or e.g. 2 (this and the previous forecast)",
        )
    if persistence > 1 and "cutoff" not in exceedance.columns:
        raise FrameError(
            f"persistence={persistence} needs several forecasts, told apart by a 'cutoff' column",
            fix="pass the stored exceedance rows with their cutoff, or persistence=1",
        )
    probs = return_period_exceedance(exceedance, thresholds, horizon_steps=horizon_steps)
    return ladder_levels(probs, thresholds, ladder=rungs, persistence=persistence, units=units)


def ladder_levels(
    probabilities: pl.DataFrame,
    thresholds: pl.DataFrame,
    *,
    ladder: Sequence[FloodRung] = DEFAULT_FLOOD_LADDER,
    persistence: int = 1,
    units: str | Mapping[str, str] = "m3/s",
    model: str = "return_period_exceedance",
) -> pl.DataFrame:
    """The ladder step of :func:`flood_levels` on probabilities from any model.

    ``probabilities``: ``unique_id, [cutoff,] threshold, period_years, threshold_value,
    p_exceed, window_start, window_end`` (as :func:`return_period_exceedance` returns, or
    :meth:`hazards.FloodStateModel.exceedance`); ``model`` names the source in the evidence.
    Output and rules as :func:`flood_levels`.
    """
    rungs = _check_ladder(ladder)
    if not isinstance(persistence, int) or persistence < 1:
        raise FrameError(
            f"persistence={persistence!r}, needs an integer >= 1",
            fix="pass 1 (this forecast alone) or e.g. 2 (this and the previous forecast)",
        )
    _require(
        probabilities,
        ("unique_id", "threshold", "period_years", "threshold_value", "p_exceed", "window_start", "window_end"),
        what="probabilities",
        fix="pass return_period_exceedance(...) or FloodStateModel.exceedance(...)",
    )
    if persistence > 1 and "cutoff" not in probabilities.columns:
        raise FrameError(
            f"persistence={persistence} needs several forecasts, told apart by a 'cutoff' column",
            fix="pass the probabilities with their cutoff, or persistence=1",
        )
    probs = probabilities
    keys = ["unique_id", "cutoff"] if "cutoff" in probs.columns else ["unique_id"]
    fit_columns: list[str] = [
        c for c in ("method", "estimator", "years_used", "first_year", "last_year") if c in thresholds.columns
    ]
    fits = {
        row["unique_id"]: {c: row[c] for c in fit_columns}
        for row in thresholds.unique("unique_id", keep="first", maintain_order=True).iter_rows(named=True)
    }
    out = []
    for (uid,), part in probs.group_by("unique_id", maintain_order=True):
        unit = units if isinstance(units, str) else units.get(uid, "")
        forecasts = [g for _, g in part.group_by(keys, maintain_order=True)]
        forecasts.sort(key=lambda g: g.get_column(keys[-1])[0])
        held_history: list[set[Level]] = []
        for forecast in forecasts:
            by_period = {row["period_years"]: row for row in forecast.iter_rows(named=True)}
            reached = {
                r.level
                for r in rungs
                if r.period_years in by_period and by_period[r.period_years]["p_exceed"] >= r.min_probability
            }
            held_history.append(reached)
            window = held_history[-persistence:]
            held = [r for r in rungs if len(window) == persistence and all(r.level in s for s in window)]
            out.append(
                _level_row(
                    forecast,
                    keys,
                    by_period,
                    rungs,
                    held[-1] if held else None,
                    unit=unit,
                    persistence=persistence,
                    fit=fits.get(uid, {}),
                    model=model,
                )
            )
    schema = {
        "unique_id": pl.Utf8(),
        **({"cutoff": probs.schema["cutoff"]} if "cutoff" in keys else {}),
        "level": pl.Utf8(),
        "probability": pl.Float64(),
        "period_years": pl.Float64(),
        "threshold_value": pl.Float64(),
        "window_start": probs.schema["window_start"],
        "window_end": probs.schema["window_end"],
        "evidence": pl.Utf8(),
    }
    return pl.DataFrame(out, schema=schema, orient="row")


def _level_row(
    forecast: pl.DataFrame,
    keys: list[str],
    by_period: dict[float, dict[str, Any]],
    rungs: tuple[FloodRung, ...],
    rung: FloodRung | None,
    *,
    unit: str,
    persistence: int,
    fit: dict[str, Any],
    model: str,
) -> tuple[Any, ...]:
    deciding = by_period[rung.period_years] if rung else by_period[min(by_period)]
    level = rung.level if rung else Level.NONE
    start, end = deciding["window_start"], deciding["window_end"]
    missing = sorted({r.period_years for r in rungs} - set(by_period))
    evidence: dict[str, Any] = {
        "model": model,
        "level": level.label,
        "threshold": deciding["threshold"],
        "period_years": deciding["period_years"],
        "threshold_value": deciding["threshold_value"],
        "unit": unit,
        "probability": round(deciding["p_exceed"], 4),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "rule": (
            f"P(> {deciding['period_years']:g}-year level {deciding['threshold_value']:.4g} {unit} "
            f"between {start:%Y-%m-%d} and {end:%Y-%m-%d}) = {deciding['p_exceed']:.2f}"
            + (
                f" >= {rung.min_probability:g}"
                + (f" in {persistence} consecutive forecasts" if persistence > 1 else "")
                if rung
                else ": no rung of the ladder reached"
            )
        ),
        "probabilities": [
            {
                "threshold": r["threshold"],
                "period_years": r["period_years"],
                "threshold_value": r["threshold_value"],
                "probability": round(r["p_exceed"], 4),
            }
            for _, r in sorted(by_period.items())
        ],
        "ladder": [
            {"level": r.level.label, "period_years": r.period_years, "min_probability": r.min_probability}
            for r in rungs
        ],
        "persistence": persistence,
        "fit": fit,
    }
    if missing:
        evidence["skipped_periods"] = missing
    key_values = tuple(deciding[k] for k in keys)
    return (
        *key_values,
        level.label,
        deciding["p_exceed"],
        deciding["period_years"],
        deciding["threshold_value"],
        start,
        end,
        json.dumps(evidence, default=str),
    )


def observed_rungs(
    flow: np.ndarray | Sequence[float],
    return_levels_by_period: Mapping[float, float],
    *,
    rungs: Mapping[str, float] = DEFAULT_OBSERVED_RUNGS,
) -> tuple[np.ndarray, np.ndarray]:
    """The level the observed flow itself sets: per flow, the rank (:class:`Level`) of the
    highest rung of ``rungs`` (level name -> return period) whose return level
    (``return_levels_by_period``: period -> level, in the flow's unit) the flow is above, 0
    when none; and that rung's return period (NaN when none). A period of 0, or one with no
    return level given, is no rung. A missing flow (NaN) sets nothing.

    This is an observation, not a forecast: the river is in flood of that return period now.
    The model's probability (:func:`ladder_levels`) is of the days ahead; the cycle and the
    evaluation issue the higher of the two.
    """
    values = np.asarray(flow, dtype=np.float64)
    rank = np.zeros(values.shape, dtype=np.int64)
    period = np.full(values.shape, np.nan)
    levels = {float(k): float(v) for k, v in return_levels_by_period.items()}
    for name, years in sorted(rungs.items(), key=lambda kv: int(Level.parse(kv[0]))):
        level = Level.parse(name)
        if not years or float(years) not in levels:
            continue
        above = np.nan_to_num(values, nan=-np.inf) > levels[float(years)]
        higher = above & (int(level) >= rank)
        rank = np.where(higher, int(level), rank)
        period = np.where(higher, float(years), period)
    return rank, period
