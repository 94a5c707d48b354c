"""Statistical forecasts (statsforecast AutoETS, Naive fallback) for a batch of series.

Contract of :func:`forecast_statistical`:

- in: the long series frame ``unique_id, ds, y`` (:func:`core.frames.validate_series`), a
  frequency per ``unique_id`` (a key of :data:`core.frames.FREQUENCIES`) and a horizon per
  frequency;
- out: a :class:`ForecastResult` of three polars frames

  - ``forecasts``: ``unique_id, ds, model, mean, q05, q10, q25, q50, q75, q90, q95``
    (``h`` rows per forecast series, on its frequency grid after its last observation);
  - ``fitted``: ``unique_id, ds, y, model, mean, q05 ... q95``: one-step in-sample fits at
    the grid points that were observed (forward-filled gaps are left out, and so is
    Naive's first point, which has no fit);
  - ``notes``: ``unique_id, model, note``: everything that was not the plain path
    (regularisation, shortened seasons, fallbacks, skipped series). ``model`` is ``"none"``
    for a skipped series.

Each series is regularised onto its grid first (:mod:`forecasting.regularise`). Quantiles
come from statsforecast's prediction intervals: level 50 gives q25/q75, 80 gives q10/q90,
90 gives q05/q95; q50 is the mean (the intervals are symmetric). The same input gives
bit-identical output (ETS fitting is deterministic and series keep their order).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, Naive

from core.errors import FrameError, ModelError
from core.frames import (
    FREQUENCIES,
    QUANTILES,
    forecast_columns,
    quantile_column,
    season_length,
    validate_forecasts,
    validate_series,
)
from forecasting.regularise import Regularised, regularise

__all__ = ["ForecastResult", "forecast_statistical", "DEFAULT_LEVELS"]

#: Interval levels that produce exactly the quantiles of core.frames.QUANTILES.
DEFAULT_LEVELS: tuple[int, ...] = (50, 80, 90)
#: Below this many observations a series is not forecast at all.
_MIN_POINTS = 3
#: statsforecast's ETS refuses n <= parameters + 4; simple exponential smoothing has 2.
_MIN_ETS_POINTS = 7
#: ETS in statsforecast ignores seasons longer than this.
_MAX_ETS_SEASON = 24
#: Points beyond two full seasons needed before a seasonal ETS is worth trying.
_SEASON_SLACK = 3

_ETS = "AutoETS"
_NAIVE = "Naive"


@dataclass(frozen=True)
class ForecastResult:
    """Forecasts, in-sample fits and notes of one batch (columns in the module docstring)."""

    forecasts: pl.DataFrame
    fitted: pl.DataFrame
    notes: pl.DataFrame


@dataclass(frozen=True)
class _Plan:
    """How one regularised series will be modelled."""

    unique_id: str
    grid: Regularised
    model: str  # _ETS or _NAIVE
    season: int
    data_notes: tuple[str, ...]  # what regularisation and model choice changed


def forecast_statistical(
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    max_context: int = 1000,
    n_jobs: int = 2,
    levels: Sequence[int] | None = None,
) -> ForecastResult:
    """Forecast every series with AutoETS, falling back to Naive per series.

    ``levels`` are the prediction-interval levels (even integers in (0, 100)); they must
    include 50, 80 and 90 so the contract quantiles exist, and extra levels add extra
    quantile columns (98 adds q01 and q99). One StatsForecast call runs per frequency and
    season length (``n_jobs`` worker processes each). Raises :class:`ModelError` only if
    models were tried and no series got a forecast.
    """
    frame = validate_series(series)
    used_levels = _check_options(frame, frequencies, horizons, max_context, n_jobs, levels)
    skipped: list[tuple[str, str, str]] = []
    plans = _plan(frame, frequencies, max_context, skipped)
    notes: list[tuple[str, str, str]] = []

    forecasts: list[pl.DataFrame] = []
    fitted: list[pl.DataFrame] = []
    groups: dict[tuple[str, str, int], list[_Plan]] = {}
    for plan in plans:
        key = (plan.grid.frequency, plan.model, plan.season)
        groups.setdefault(key, []).append(plan)
    for (frequency, model, season), group in sorted(groups.items()):
        run = _Run(frequency, horizons[frequency], used_levels, n_jobs)
        if model == _ETS:
            fc, fv = _run_ets_group(group, season=season, run=run, notes=notes)
        else:
            fc, fv = _run_naive(group, run=run, notes=notes)
        forecasts.extend(fc)
        fitted.extend(fv)

    if plans and not forecasts:
        raise ModelError(
            f"no series of the batch could be forecast ({len(plans)} tried); "
            f"first reasons: {[n[2] for n in notes[:3]]}",
            fix="check the series named above (enough finite observations, sane values)",
        )
    forecast_frame = _assemble(forecasts, with_y=False, levels=used_levels)
    # Data notes name the model that finally ran, which a fallback may have changed.
    final = dict(forecast_frame.select("unique_id", "model").unique().iter_rows())
    data_notes = [
        (p.unique_id, final.get(p.unique_id, "none"), note) for p in plans for note in p.data_notes
    ]
    return ForecastResult(
        forecasts=forecast_frame,
        fitted=_assemble(fitted, with_y=True, levels=used_levels),
        notes=pl.DataFrame(
            skipped + data_notes + notes,
            schema={"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8},
            orient="row",
        ).sort("unique_id", maintain_order=True),
    )


def _check_options(
    frame: pl.DataFrame,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    max_context: int,
    n_jobs: int,
    levels: Sequence[int] | None,
) -> tuple[int, ...]:
    ids = frame.get_column("unique_id").unique().sort().to_list()
    missing = [uid for uid in ids if uid not in frequencies]
    if missing:
        raise FrameError(
            f"{len(missing)} series have no frequency, e.g. {missing[:5]}",
            fix="pass frequencies={unique_id: alias} for every unique_id in the frame",
        )
    used = sorted({frequencies[uid] for uid in ids})
    for frequency in used:
        season_length(frequency)  # raises FrameError naming the allowed aliases
    no_horizon = [f for f in used if not isinstance(horizons.get(f), int) or horizons[f] < 1]
    if no_horizon:
        raise FrameError(
            f"no positive integer horizon for frequency(ies) {no_horizon}; got {dict(horizons)}",
            fix="pass horizons={alias: steps}, e.g. the [forecast] horizon setting",
        )
    if not isinstance(max_context, int) or max_context < _MIN_POINTS:
        raise FrameError(
            f"max_context={max_context!r}, needs an integer >= {_MIN_POINTS}",
            fix="pass max_context=1000 (the [forecast] max_context setting)",
        )
    if not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise FrameError(f"n_jobs={n_jobs!r}, needs a positive integer or -1", fix="pass n_jobs=2")
    chosen = tuple(sorted(DEFAULT_LEVELS if levels is None else set(levels)))
    bad = [lv for lv in chosen if not isinstance(lv, int) or not 0 < lv < 100 or lv % 2]
    if bad or not set(DEFAULT_LEVELS) <= set(chosen):
        raise FrameError(
            f"levels={list(chosen)}: needs even integers in (0, 100) including 50, 80 and 90",
            fix="leave levels=None, or add levels such as 98 to the defaults",
        )
    return chosen


def _plan(
    frame: pl.DataFrame,
    frequencies: Mapping[str, str],
    max_context: int,
    skipped: list[tuple[str, str, str]],
) -> list[_Plan]:
    """Regularise every series and choose its model; note the ones too short to forecast."""
    plans = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        frequency = frequencies[uid]
        ds = part.get_column("ds").to_numpy()
        y = part.get_column("y").to_numpy()
        if len(y) < _MIN_POINTS:
            note = f"skipped: {len(y)} point(s), needs at least {_MIN_POINTS}"
            skipped.append((uid, "none", note))
            continue
        grid = regularise(ds, y, frequency=frequency, max_context=max_context)
        model, season, why = _choose_model(grid)
        data_notes = tuple(n for n in (grid.describe(), why) if n)
        plans.append(_Plan(uid, grid, model, season, data_notes))
    return plans


def _choose_model(grid: Regularised) -> tuple[str, int, str]:
    """Model, season length and (if not the plain path) why, for one regularised series."""
    n = len(grid.y)
    if n < _MIN_ETS_POINTS:
        return _NAIVE, 1, f"{n} grid points, AutoETS needs at least {_MIN_ETS_POINTS}; used Naive"
    if np.ptp(grid.y) == 0.0:
        why = f"constant series (every y = {grid.y[0]:g}); AutoETS not fitted; used Naive"
        return _NAIVE, 1, why
    season = FREQUENCIES[grid.frequency]
    if season > _MAX_ETS_SEASON:
        # statsforecast's ETS would drop this season anyway; say so by asking for none.
        return _ETS, 1, ""
    if n < 2 * season + _SEASON_SLACK:
        return _ETS, 1, (
            f"{n} grid points < 2 seasons of {season} + {_SEASON_SLACK}; fitted non-seasonal ETS"
        )
    return _ETS, season, ""


@dataclass(frozen=True)
class _Run:
    """What every StatsForecast call of one group shares."""

    frequency: str
    h: int
    levels: tuple[int, ...]
    n_jobs: int


_Frames = tuple[list[pl.DataFrame], list[pl.DataFrame]]  # (forecasts, fitted) parts


def _run_ets_group(
    group: list[_Plan], *, season: int, run: _Run, notes: list[tuple[str, str, str]]
) -> _Frames:
    """AutoETS for one group in one call; if the call fails, retry series by series."""
    try:
        fc, fv = _run_statsforecast(group, model=AutoETS(season_length=season), name=_ETS, run=run)
    except Exception as exc:  # noqa: BLE001 - any library failure degrades to per-series runs
        if len(group) == 1:
            return _fall_back(group, run=run, notes=notes, reason=_reason(exc))
        single = _Run(run.frequency, run.h, run.levels, n_jobs=1)
        forecasts: list[pl.DataFrame] = []
        fitted: list[pl.DataFrame] = []
        for plan in group:
            one_fc, one_fv = _run_ets_group([plan], season=season, run=single, notes=notes)
            forecasts.extend(one_fc)
            fitted.extend(one_fv)
        return forecasts, fitted
    # A fit can also fail quietly, with non-finite forecasts for some series.
    finite = pl.all_horizontal(pl.col(_value_columns(run.levels)).is_finite())
    bad = set(fc.filter(~finite).get_column("unique_id").to_list())
    if not bad:
        return [fc], [fv]
    keep = ~pl.col("unique_id").is_in(sorted(bad))
    more_fc, more_fv = _fall_back(
        [p for p in group if p.unique_id in bad], run=run, notes=notes, reason="non-finite forecast"
    )
    return [fc.filter(keep), *more_fc], [fv.filter(keep), *more_fv]


def _fall_back(
    group: list[_Plan], *, run: _Run, notes: list[tuple[str, str, str]], reason: str
) -> _Frames:
    """Naive for series AutoETS could not fit, with a note per series and one warning."""
    for plan in group:
        notes.append((plan.unique_id, _NAIVE, f"AutoETS failed: {reason}; fell back to Naive"))
    warnings.warn(
        f"AutoETS failed for {len(group)} series ({reason}); fell back to Naive",
        RuntimeWarning,
        stacklevel=4,
    )
    return _run_naive(group, run=run, notes=notes)


def _run_naive(group: list[_Plan], *, run: _Run, notes: list[tuple[str, str, str]]) -> _Frames:
    """Naive for a group; if that fails, per series, noting any left without a forecast."""
    try:
        fc, fv = _run_statsforecast(group, model=Naive(), name=_NAIVE, run=run)
        return [fc], [fv]
    except Exception as exc:  # noqa: BLE001 - the last resort must not sink the batch
        if len(group) == 1:
            notes.append((group[0].unique_id, "none", f"Naive failed: {_reason(exc)}; no forecast"))
            return [], []
        single = _Run(run.frequency, run.h, run.levels, n_jobs=1)
        forecasts: list[pl.DataFrame] = []
        fitted: list[pl.DataFrame] = []
        for plan in group:
            one_fc, one_fv = _run_naive([plan], run=single, notes=notes)
            forecasts.extend(one_fc)
            fitted.extend(one_fv)
        return forecasts, fitted


def _run_statsforecast(
    group: list[_Plan], *, model: object, name: str, run: _Run
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One StatsForecast call over a group; returns (forecasts, observed in-sample fits)."""
    data = pd.DataFrame(
        {
            "unique_id": np.repeat([p.unique_id for p in group], [len(p.grid.y) for p in group]),
            "ds": np.concatenate([p.grid.ds.to_numpy() for p in group]),
            "y": np.concatenate([p.grid.y for p in group]),
        }
    )
    observed = pl.DataFrame(
        {
            "unique_id": data["unique_id"].to_numpy(),
            "ds": data["ds"].to_numpy(),
            "observed": np.concatenate([p.grid.observed for p in group]),
        }
    ).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    # Process pools cost about a second to start; never start more workers than series.
    workers = len(group) if run.n_jobs == -1 else min(len(group), run.n_jobs)
    engine = StatsForecast(models=[model], freq=run.frequency, n_jobs=workers)
    forecast_pd = engine.forecast(df=data, h=run.h, fitted=True, level=list(run.levels))
    fitted_pd = engine.forecast_fitted_values()
    forecasts = _from_statsforecast(forecast_pd, model=name, levels=run.levels)
    finite = pl.all_horizontal(pl.col(_value_columns(run.levels)).is_finite())
    fitted = (
        _from_statsforecast(fitted_pd, model=name, levels=run.levels)
        .join(observed, on=["unique_id", "ds"], how="left")
        .filter(pl.col("observed") & finite)
        .drop("observed")
    )
    return forecasts, fitted


def _from_statsforecast(
    frame: pd.DataFrame, *, model: str, levels: tuple[int, ...]
) -> pl.DataFrame:
    """The one adapter from statsforecast's column names to ours.

    statsforecast names the point forecast after the model (``AutoETS``) and intervals
    ``AutoETS-lo-90`` / ``AutoETS-hi-90``; a level-``L`` interval spans the quantiles
    ``(100 - L) / 200`` and ``(100 + L) / 200``. Our median ``q50`` is the mean.
    """
    # statsforecast < 2 kept unique_id as the index; 2.x returns it as a column.
    out = pl.from_pandas(frame.reset_index(drop=frame.index.name != "unique_id"))
    renames = {model: "mean"}
    for level in levels:
        renames[f"{model}-lo-{level}"] = quantile_column((100 - level) / 200)
        renames[f"{model}-hi-{level}"] = quantile_column((100 + level) / 200)
    keep = ["unique_id", "ds", *(["y"] if "y" in out.columns else []), *renames]
    return (
        out.select(keep)
        .rename(renames)
        .with_columns(
            pl.col("unique_id").cast(pl.Utf8),
            pl.col("ds").cast(pl.Datetime("us")),
            pl.lit(model).alias("model"),
            pl.col("mean").alias(quantile_column(0.5)),
        )
        .with_columns(pl.col(c).cast(pl.Float64) for c in _value_columns(levels))
    )


def _value_columns(levels: tuple[int, ...]) -> list[str]:
    """``mean`` and every quantile column, in rising quantile order."""
    quantiles = set(QUANTILES)
    for level in levels:
        quantiles |= {(100 - level) / 200, (100 + level) / 200}
    return ["mean", *(quantile_column(q) for q in sorted(quantiles))]


def _assemble(parts: list[pl.DataFrame], *, with_y: bool, levels: tuple[int, ...]) -> pl.DataFrame:
    """Concatenate group outputs into one frame in contract column order."""
    base = list(forecast_columns())
    extra = [c for c in _value_columns(levels) if c not in base]
    columns = [*base[:2], *(["y"] if with_y else []), *base[2:], *extra]
    if not parts:
        schema = {c: pl.Float64 for c in columns}
        schema.update({"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "model": pl.Utf8})
        return pl.DataFrame(schema=schema)
    out = pl.concat([p.select(columns) for p in parts]).sort("unique_id", "ds")
    validate_forecasts(out)
    return out


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
