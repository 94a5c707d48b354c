"""Statistical forecasts (statsforecast) for a batch of series, with per-series fallbacks.

Contract of :func:`forecast_statistical`:

- in: the long series frame ``unique_id, ds, y`` (:func:`core.frames.validate_series`), a
  frequency per ``unique_id`` (a key of :data:`core.frames.FREQUENCIES`), a horizon per
  frequency, and the model names to run (:data:`forecasting.models.STAT_MODELS`);
- out: a :class:`ForecastResult` of three polars frames

  - ``forecasts``: ``unique_id, ds, model, mean, q05, q10, q25, q50, q75, q90, q95``
    (``h`` rows per series and model that ran, on its frequency grid after its last
    observation); ``model`` names the model that actually ran, so a fallback shows;
  - ``fitted``: ``unique_id, ds, y, model, mean, q05 ... q95``: one-step in-sample fits at
    the grid points that were observed (forward-filled gaps are left out, and so are the
    first points a model has no fit for);
  - ``notes``: ``unique_id, model, note``: everything that was not the plain path
    (regularisation, shortened seasons, conformal intervals skipped, fallbacks, skipped
    series). ``model`` is ``"none"`` for a skipped series.

  and ``ets_forms``: per series AutoETS ran on, the form it fitted (``"ANAN/7"``: error, trend,
  season, damped, then the season length). Passed back as ``ets_forms=``, AutoETS fits that
  form only (issue 21: a kept selection refits its form, about a fourteenth of the search).

Each series is regularised onto its grid first (:mod:`forecasting.regularise`). All models of
a group of alike series run in **one** StatsForecast call (``n_jobs`` processes), which is
what statsforecast itself does when called directly. Quantiles come from prediction
intervals, the models' own (``intervals="model"``) or conformal ones from rolling windows
(``intervals="conformal"``): level 50 gives q25/q75, 80 gives q10/q90, 90 gives q05/q95; q50
is the mean (the intervals are symmetric). The same input gives bit-identical output.

If the input is a Spark, Dask or Ray DataFrame instead of polars, the same function hands it to
statsforecast's Fugue backend (:func:`forecast_distributed`): the cluster does the work and the
forecasts come back as a frame of the same kind (see docs/scaling.md).

``bounds={unique_id: (lower, upper)}`` (from the series metadata,
:func:`forecasting.bounds.bounds_from_meta`) forecasts those series on a scale that keeps every
quantile inside their physical bounds (:mod:`forecasting.bounds`: the map, the mean reported
as the back-transformed median, the notes); the other series are untouched.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
import polars as pl
from statsforecast import StatsForecast
from statsforecast.ets import ets_f, forecast_ets
from statsforecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive, _add_fitted_pi
from statsforecast.utils import ConformalIntervals, _calculate_sigma, _ensure_float

from core.errors import FrameError, ModelError
from core.frames import (
    QUANTILES,
    forecast_columns,
    quantile_column,
    season_length,
    validate_forecasts,
    validate_series,
)
from forecasting.bounds import BoundedScale, Bounds
from forecasting.forward import ETSState, filter_forward, new_point_surprise, window_digest
from forecasting.models import FALLBACK, ModelPlan, check_models, plan_model
from forecasting.regularise import Regularised, regularise

__all__ = [
    "ForecastResult",
    "forecast_statistical",
    "forecast_distributed",
    "from_statsforecast",
    "DEFAULT_LEVELS",
    "INTERVAL_KINDS",
]

#: Interval levels that produce exactly the quantiles of core.frames.QUANTILES.
DEFAULT_LEVELS: tuple[int, ...] = (50, 80, 90)
#: Where prediction intervals come from.
INTERVAL_KINDS: tuple[str, ...] = ("model", "conformal")
#: Below this many observations a series is not forecast at all.
_MIN_POINTS = 3
#: Groups smaller than this run in-process; worker processes only pay off above it.
_SERIES_PER_WORKER = 24


@dataclass(frozen=True)
class ForecastResult:
    """Forecasts, in-sample fits and notes of one batch (columns in the module docstring)."""

    forecasts: pl.DataFrame
    fitted: pl.DataFrame
    notes: pl.DataFrame
    #: per series, the form AutoETS fitted (``ETS_FORM`` text, e.g. ``"ANAN/7"``), to pass back
    #: as ``ets_forms`` while the selection is kept
    ets_forms: dict[str, str] = field(default_factory=dict)
    #: per series AutoETS was fitted on, the fit (:meth:`forecasting.forward.ETSState.to_text`),
    #: to pass back as ``ets_states`` until it is refitted
    ets_states: dict[str, str] = field(default_factory=dict)
    #: series whose AutoETS forecast is a stored fit filtered forward (no fit this call)
    forwarded: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Series:
    """One regularised series and the models planned for it."""

    unique_id: str
    grid: Regularised
    plans: tuple[ModelPlan, ...]
    conformal: bool
    ets_form: str | None = None  # a kept AutoETS form (components, e.g. "AAdN" as "AADN")


@dataclass(frozen=True)
class _Forward:
    """A series whose AutoETS is a stored fit filtered forward; ``fallback``: the refit of its
    form on the usual grid, run if the filter fails."""

    unique_id: str
    grid: Regularised  # from the fit's first stamp to the newest point
    state: ETSState
    fallback: _Series


@dataclass(frozen=True)
class _Run:
    """What every StatsForecast call of one group shares."""

    frequency: str
    h: int
    levels: tuple[int, ...]
    n_jobs: int
    conformal_windows: int  # 0 = model intervals


_Notes = list[tuple[str, str, str]]
_Frames = tuple[list[pl.DataFrame], list[pl.DataFrame], dict[str, ETSState]]  # forecasts, fitted, ETS fits

#: Every form statsforecast's ETS can fit: error, trend, season, damped ("N"/"D").
_ETS_FORMS: tuple[str, ...] = tuple(
    e + t + s + d for e in "AM" for t in "NAM" for s in "NAM" for d in "ND" if not (t == "N" and d == "D")
)
_FORM_COLUMN = "ETSForm"


class _RecordingETS(AutoETS):
    """statsforecast's AutoETS that remembers the form it chose on its newest series
    (``form``), read by :class:`_ETSFormColumn` beside it. Its ``forecast`` is
    statsforecast's own (2.x), with the form kept after the conformal windows' inner fits."""

    form = ""
    fitted_par: tuple[np.ndarray, int] | None = None  # par and n_params of that fit

    def forecast(
        self,
        y: np.ndarray,
        h: int,
        X: np.ndarray | None = None,  # noqa: N803 - statsforecast's argument names
        X_future: np.ndarray | None = None,  # noqa: N803
        level: list[int] | None = None,
        fitted: bool = False,
    ) -> dict[str, Any]:
        y = _ensure_float(y)
        mod = ets_f(
            y, m=self.season_length, model=self.model, damped=self.damped, phi=self.phi, distribution=self.distribution
        )
        fcst = forecast_ets(mod, h=h, level=level)
        res = {key: fcst[key] for key in (["mean", "fitted"] if fitted else ["mean"])}
        if level is not None:
            level = sorted(level)
            if self.prediction_intervals is not None:
                res = self._add_conformal_intervals(fcst=res, y=y, X=X, level=level)
            else:
                res = {
                    **res,
                    **{f"lo-{lv}": fcst[f"lo-{lv}"] for lv in reversed(level)},
                    **{f"hi-{lv}": fcst[f"hi-{lv}"] for lv in level},
                }
            if fitted:
                se = _calculate_sigma(y - mod["fitted"], len(y) - mod["n_params"])
                res = _add_fitted_pi(res=res, se=se, level=level)
        self.form = str(mod["components"])  # after the conformal windows' own fits
        self.fitted_par = (np.asarray(mod["par"], dtype=np.float64), int(mod["n_params"]))
        return res


class _ETSFormColumn:
    """A column, not a model: statsforecast runs the models of a call one after the other on
    each series, so this one, after the :class:`_RecordingETS` it holds, returns the code of
    the form that ETS just chose (an index of ``_ETS_FORMS``) as its "forecast", and that fit's
    parameters as its in-sample "fit" (``n_params``, ``len(par)``, then ``par``; NaN after,
    read by :func:`_fits_of`). It travels with the ETS to statsforecast's worker processes
    (one pickle), so it works with n_jobs."""

    uses_exog = False

    def __init__(self, ets: _RecordingETS) -> None:
        self.ets = ets
        self.alias = _FORM_COLUMN

    def __repr__(self) -> str:
        return self.alias

    def forecast(
        self,
        y: np.ndarray,
        h: int,
        X: np.ndarray | None = None,  # noqa: N803
        X_future: np.ndarray | None = None,  # noqa: N803
        fitted: bool = False,
    ) -> dict[str, Any]:
        form = getattr(self.ets, "form", "")
        code = float(_ETS_FORMS.index(form)) if form in _ETS_FORMS else np.nan
        out = {"mean": np.full(h, code)}
        if fitted:
            out["fitted"] = np.full(len(y), np.nan)
            fit = getattr(self.ets, "fitted_par", None)
            if fit is not None and len(y) >= 2 + len(fit[0]):
                out["fitted"][: 2 + len(fit[0])] = [fit[1], len(fit[0]), *fit[0]]
        return out


def forecast_statistical(
    series: Any,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    models: Sequence[str] = ("AutoETS",),
    max_context: int = 1000,
    n_jobs: int = 2,
    levels: Sequence[int] | None = None,
    intervals: str = "model",
    conformal_windows: int = 2,
    bounds: Mapping[str, Bounds] | None = None,
    ets_forms: Mapping[str, str] | None = None,
    ets_states: Mapping[str, str] | None = None,
    refit_surprise: float = 0.0,
) -> ForecastResult:
    """Forecast every series with each of ``models``, falling back per series and model.

    ``levels`` are the prediction-interval levels (even integers in (0, 100)); they must
    include 50, 80 and 90 so the contract quantiles exist, and extra levels add extra
    quantile columns (98 adds q01 and q99). ``intervals="conformal"`` calibrates intervals
    on ``conformal_windows`` rolling windows of the horizon for series long enough (the
    others keep model intervals, noted). ``bounds``: physical bounds per series (module
    docstring). ``ets_forms``: per series, an AutoETS form of an earlier fit
    (``ForecastResult.ets_forms``): AutoETS fits that form only instead of searching every
    form (about a fourteenth of the fits, the same forecast when the search would choose it
    again; a form whose season no longer matches the series' plan is searched again).
    ``ets_states``: per series, a stored AutoETS fit (``ForecastResult.ets_states``): AutoETS
    is that fit filtered forward over the data since its window's start, parameters fixed
    (:mod:`forecasting.forward`), where it still applies: the same form and season as the plan,
    the same bound map, model intervals, its start still a grid point, at most twice
    ``max_context`` points since, and no new point further than ``refit_surprise`` standard
    deviations from the filter's one-step forecast (0 = no such limit;
    :func:`forecasting.forward.new_point_surprise`); elsewhere AutoETS is refitted (its form
    kept), with a note.
    Raises :class:`ModelError` only if models were tried and no series got a forecast.
    """
    if not isinstance(series, pl.DataFrame) and _is_distributed(series):
        if bounds:
            raise FrameError(
                "bounds are not applied to a distributed frame",
                fix="forecast bounded series locally (a polars frame), or map them "
                "upstream with forecasting.bounds.BoundedScale",
            )
        return forecast_distributed(
            series, frequencies=frequencies, horizons=horizons, models=models, n_jobs=n_jobs, levels=levels
        )
    frame = validate_series(series)
    scale = BoundedScale(bounds).fit(frame)
    states, state_notes = _usable_states(ets_states or {}, scale)
    result = _forecast_frame(
        scale.transform(frame),
        frequencies=frequencies,
        horizons=horizons,
        models=models,
        max_context=max_context,
        n_jobs=n_jobs,
        levels=levels,
        intervals=intervals,
        conformal_windows=conformal_windows,
        ets_forms=ets_forms or {},
        ets_states=states,
        refit_surprise=refit_surprise,
        extra_notes=state_notes,
    )
    out = scale.apply(result, observed=frame)
    fits = {uid: ETSState.from_text(text) for uid, text in result.ets_states.items()}
    return dataclasses.replace(
        out,
        ets_states={uid: dataclasses.replace(f, bound_map=_map_of(scale, uid)).to_text() for uid, f in fits.items()},
    )


def _map_of(scale: BoundedScale, uid: str) -> tuple[float | None, float | None, float] | None:
    found = scale.maps_.get(uid)
    return (found.lower, found.upper, found.offset) if found is not None else None


def _usable_states(texts: Mapping[str, str], scale: BoundedScale) -> tuple[dict[str, ETSState], _Notes]:
    """The stored fits that can be read and were fitted on the scale the series has now."""
    states: dict[str, ETSState] = {}
    notes: _Notes = []
    for uid, text in texts.items():
        try:
            state = ETSState.from_text(text)
        except FrameError as exc:
            notes.append((uid, "AutoETS", f"{exc.problem}; refitted"))
            continue
        now = _map_of(scale, uid)
        if state.bound_map != now:
            notes.append((uid, "AutoETS", f"bound map {now} differs from the stored fit's {state.bound_map}; refitted"))
            continue
        states[uid] = state
    return states, notes


def _forecast_frame(
    frame: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    models: Sequence[str],
    max_context: int,
    n_jobs: int,
    levels: Sequence[int] | None,
    intervals: str,
    conformal_windows: int,
    ets_forms: Mapping[str, str],
    ets_states: Mapping[str, ETSState] | None = None,
    refit_surprise: float = 0.0,
    extra_notes: _Notes | None = None,
) -> ForecastResult:
    """:func:`forecast_statistical` of a validated local frame, on the scale it is given."""
    used_levels = _check_options(frame, frequencies, horizons, max_context, n_jobs, levels)
    names = check_models(tuple(models))
    if intervals not in INTERVAL_KINDS or conformal_windows < 1:
        raise FrameError(
            f"intervals={intervals!r}, conformal_windows={conformal_windows}",
            fix=f"use intervals in {INTERVAL_KINDS} and conformal_windows >= 1",
        )
    notes: _Notes = list(extra_notes or [])
    planned, forward = _plan(
        frame,
        frequencies,
        horizons,
        names,
        max_context,
        intervals,
        conformal_windows,
        notes,
        ets_forms,
        ets_states or {},
    )

    forecasts: list[pl.DataFrame] = []
    fitted: list[pl.DataFrame] = []
    forms: dict[str, ETSState] = {}
    forwarded: list[str] = []
    ahead_fc, ahead_fv, failed = _run_forward(
        forward, horizons=horizons, levels=used_levels, refit_surprise=refit_surprise
    )
    forecasts.extend(ahead_fc)
    fitted.extend(ahead_fv)
    for ahead in forward:
        if ahead.unique_id in failed:
            notes.append(
                (ahead.unique_id, "AutoETS", f"stored fit not filtered forward: {failed[ahead.unique_id]}; refitted")
            )
            planned.append(ahead.fallback)
        else:
            forwarded.append(ahead.unique_id)
    groups: dict[tuple[Any, ...], list[_Series]] = {}
    for item in planned:
        key = (item.grid.frequency, item.conformal, tuple(p.key for p in item.plans), item.ets_form or "")
        groups.setdefault(key, []).append(item)
    for (frequency, conformal, _, _), group in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        run = _Run(frequency, horizons[frequency], used_levels, n_jobs, conformal_windows if conformal else 0)
        fc, fv, found = _run_group(group, run=run, notes=notes)
        forecasts.extend(fc)
        fitted.extend(fv)
        forms.update(found)

    if (planned or forward) and not forecasts:
        raise ModelError(
            f"no series of the batch could be forecast ({len(planned)} tried); "
            f"first reasons: {[n[2] for n in notes[:3]]}",
            fix="check the series named above (enough finite observations, sane values)",
        )
    return ForecastResult(
        forecasts=_assemble(forecasts, with_y=False, levels=used_levels),
        fitted=_assemble(fitted, with_y=True, levels=used_levels),
        notes=pl.DataFrame(notes, schema={"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8}, orient="row").sort(
            "unique_id", maintain_order=True
        ),
        ets_forms={uid: fit.form for uid, fit in forms.items()},
        ets_states={uid: fit.to_text() for uid, fit in forms.items() if fit.par},
        forwarded=tuple(sorted(forwarded)),
    )


# -- options and plans ----------------------------------------------------------------------
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
    _check_horizons(used, horizons)
    if not isinstance(max_context, int) or max_context < _MIN_POINTS:
        raise FrameError(
            f"max_context={max_context!r}, needs an integer >= {_MIN_POINTS}",
            fix="pass max_context=1000 (the [forecast] max_context setting)",
        )
    if not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise FrameError(f"n_jobs={n_jobs!r}, needs a positive integer or -1", fix="pass n_jobs=2")
    return _check_levels(levels)


def _check_horizons(used: Sequence[str], horizons: Mapping[str, int]) -> None:
    no_horizon = [f for f in used if not isinstance(horizons.get(f), int) or horizons[f] < 1]
    if no_horizon:
        raise FrameError(
            f"no positive integer horizon for frequency(ies) {no_horizon}; got {dict(horizons)}",
            fix="pass horizons={alias: steps}, e.g. the [forecast] horizon setting",
        )


def _check_levels(levels: Sequence[int] | None) -> tuple[int, ...]:
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
    horizons: Mapping[str, int],
    names: tuple[str, ...],
    max_context: int,
    intervals: str,
    conformal_windows: int,
    notes: _Notes,
    ets_forms: Mapping[str, str],
    ets_states: Mapping[str, ETSState],
) -> tuple[list[_Series], list[_Forward]]:
    """Regularise every series and plan its models; note what differs from the plain path.
    A series whose stored AutoETS fit applies (:func:`_forward_of`) has its AutoETS planned as
    a :class:`_Forward` and its other models as usual."""
    planned = []
    forward = []
    for (uid,), part in frame.partition_by("unique_id", maintain_order=True, as_dict=True).items():
        frequency = frequencies[uid]
        y = part.get_column("y").to_numpy()
        if len(y) < _MIN_POINTS:
            notes.append((uid, "none", f"skipped: {len(y)} point(s), needs at least {_MIN_POINTS}"))
            continue
        grid = regularise(part.get_column("ds").to_numpy(), y, frequency=frequency, max_context=max_context)
        plans: dict[str, ModelPlan] = {}
        for name in names:
            plan = plan_model(name, grid.y, frequency)
            if plan.why:
                notes.append((uid, plan.name, plan.why))
            if plan.name in plans:
                if plan.name != name:
                    notes.append((uid, plan.name, f"{name} became {plan.name}, already run"))
                continue
            plans[plan.name] = plan
        described = grid.describe()
        if described:
            notes.append((uid, ",".join(plans), described))
        conformal = False
        if intervals == "conformal":
            need = conformal_windows * horizons[frequency] + max(2 * season_length(frequency), 10)
            conformal = len(grid.y) >= need
            if not conformal:
                notes.append(
                    (
                        uid,
                        ",".join(plans),
                        f"{len(grid.y)} grid points < {need} needed for "
                        f"{conformal_windows} conformal windows; kept model intervals",
                    )
                )
        ets = plans.get("AutoETS")
        kept = ets_forms.get(uid, "")
        form = kept.split("/")[0] if ets is not None and kept == f"{kept.split('/')[0]}/{ets.seasons[0]}" else None
        item = _Series(uid, grid, tuple(plans.values()), conformal, form if form in _ETS_FORMS else None)
        state = ets_states.get(uid)
        ahead = _forward_of(item, state, part, max_context) if ets is not None and state is not None else None
        if isinstance(ahead, str):
            notes.append((uid, "AutoETS", f"stored fit not filtered forward: {ahead}; refitted"))
        elif ahead is not None:
            forward.append(ahead)
            others = tuple(p for p in item.plans if p.name != "AutoETS")
            if not others:
                continue
            item = _Series(uid, grid, others, conformal)
        planned.append(item)
    return planned, forward


def _forward_of(item: _Series, state: ETSState, part: pl.DataFrame, max_context: int) -> _Forward | str:
    """The stored fit's forward plan for ``item``, or why it does not apply."""
    season = next(p.seasons[0] for p in item.plans if p.name == "AutoETS")
    if state.season != season or state.components not in _ETS_FORMS:
        return f"its form {state.form} does not match the plan's season {season}"
    if item.conformal:
        return "conformal intervals need refits"
    # From the last observation at or before the window's start: a window can start on a
    # filled point (a holiday of a business-day series), whose value is that observation's.
    anchor = part.filter(pl.col("ds") <= state.start).get_column("ds").max()
    since = part.filter(pl.col("ds") >= (anchor if anchor is not None else state.start))
    if since.height > 2 * max_context:
        return f"{since.height} points since its window's start, more than twice max_context"
    if since.height == 0:
        return f"no data since its window's start {state.start:%Y-%m-%d %H:%M}"
    grid = regularise(
        since.get_column("ds").to_numpy(),
        since.get_column("y").to_numpy(),
        frequency=item.grid.frequency,
        max_context=2 * max_context,
    )
    if grid.ds[0] < state.start:
        k = int(np.searchsorted(grid.ds.to_numpy(), np.datetime64(state.start), side="left"))
        grid = dataclasses.replace(grid, ds=grid.ds[k:], y=grid.y[k:], observed=grid.observed[k:])
    if grid.ds[0] != state.start or grid.ds[-1] < state.end:
        return f"its window {state.start:%Y-%m-%d %H:%M}..{state.end:%Y-%m-%d %H:%M} is no longer on the series' grid"
    if state.window is None:
        return "it was stored without a digest of its window"
    n = int(np.searchsorted(grid.ds.to_numpy(), np.datetime64(state.end), side="right"))
    if window_digest(grid.y[:n], grid.observed[:n]) != state.window:
        return "values inside its window changed since it was fitted (a revision)"
    form = state.components
    fallback = _Series(item.unique_id, item.grid, tuple(p for p in item.plans if p.name == "AutoETS"), False, form)
    return _Forward(item.unique_id, grid, state, fallback)


def _run_forward(
    items: list[_Forward], *, horizons: Mapping[str, int], levels: tuple[int, ...], refit_surprise: float
) -> tuple[list[pl.DataFrame], list[pl.DataFrame], dict[str, str]]:
    """The forecasts and observed in-sample fits (the frames of :func:`_run_statsforecast`) of
    the stored fits filtered forward, converted in one frame each; and, per series where the
    filter is not used, why (an error, non-finite values, a new point beyond ``refit_surprise``)."""
    wide: list[dict[str, Any]] = []
    wide_fits: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for item in items:
        h = horizons[item.grid.frequency]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = filter_forward(item.state, item.grid.y, h=h, levels=levels)
                surprise = new_point_surprise(item.state, item.grid.ds, item.grid.y, res["fitted"])
        except Exception as exc:  # noqa: BLE001 - any library failure falls back to the refit
            failed[item.unique_id] = f"the filter failed ({_reason(exc)})"
            continue
        columns = {"AutoETS": res["mean"]}
        fitted_columns = {"AutoETS": res["fitted"]}
        for level in levels:
            for side in ("lo", "hi"):
                columns[f"AutoETS-{side}-{level}"] = res[f"{side}-{level}"]
                fitted_columns[f"AutoETS-{side}-{level}"] = res[f"fitted-{side}-{level}"]
        if not all(np.isfinite(v).all() for v in columns.values()):
            failed[item.unique_id] = "the filter's forecast is not finite"
            continue
        if refit_surprise > 0 and surprise > refit_surprise:
            failed[item.unique_id] = (
                f"a new point {surprise:.1f} sd from its one-step forecast (refit_surprise = {refit_surprise:g})"
            )
            continue
        future = pd.date_range(item.grid.ds[-1], periods=h + 1, freq=item.grid.frequency)[1:]
        wide.append({"unique_id": np.repeat(item.unique_id, h), "ds": future, **columns})
        observed = item.grid.observed & np.all([np.isfinite(v) for v in fitted_columns.values()], axis=0)
        wide_fits.append(
            {
                "unique_id": np.repeat(item.unique_id, int(observed.sum())),
                "ds": item.grid.ds[observed],
                "y": item.grid.y[observed],
                **{k: v[observed] for k, v in fitted_columns.items()},
            }
        )
    if not wide:
        return [], [], failed

    def frame(parts: list[dict[str, Any]]) -> pl.DataFrame:
        merged = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
        return from_statsforecast(pd.DataFrame(merged), models=["AutoETS"], levels=levels)

    return [frame(wide)], [frame(wide_fits)], failed


# -- running --------------------------------------------------------------------------------
def _build(plan: ModelPlan, conformal: ConformalIntervals | None, ets_form: str | None = None) -> Any:
    """The statsforecast object for one plan, aliased with the plan's name (AutoETS: of the
    kept form ``ets_form`` when given, else one that records the form it chooses)."""
    season = plan.seasons[0]
    extra: dict[str, Any] = {"prediction_intervals": conformal} if conformal is not None else {}
    if plan.name == "AutoETS":
        if ets_form:
            return _RecordingETS(season_length=season, model=ets_form[:3], damped=ets_form[3] == "D", **extra)
        return _RecordingETS(season_length=season, **extra)
    if plan.name == "AutoARIMA":
        return AutoARIMA(season_length=season, **extra)
    if plan.name == "AutoTheta":
        return AutoTheta(season_length=season, **extra)
    if plan.name == "MSTL":
        # A non-seasonal ETS trend gives MSTL its prediction intervals.
        return MSTL(season_length=list(plan.seasons), trend_forecaster=AutoETS(model="ZZN"), **extra)
    if plan.name == "SeasonalNaive":
        return SeasonalNaive(season_length=season, **extra)
    return Naive(**extra)


def _run_group(group: list[_Series], *, run: _Run, notes: _Notes) -> _Frames:
    """All planned models of a group in one call; on failure, series by series and model by model."""
    plans = group[0].plans
    try:
        fc, fv, forms = _run_statsforecast(group, plans=plans, run=run)
    except Exception as exc:  # noqa: BLE001 - any library failure degrades to smaller runs
        if len(group) == 1 and len(plans) == 1:
            return _fall_back(group[0], plans[0], run=run, notes=notes, reason=_reason(exc), done=set())
        single = _Run(run.frequency, run.h, run.levels, 1, run.conformal_windows)
        forecasts: list[pl.DataFrame] = []
        fitted: list[pl.DataFrame] = []
        found: dict[str, ETSState] = {}
        for item in group:
            for plan in item.plans:
                one = _Series(item.unique_id, item.grid, (plan,), item.conformal, item.ets_form)
                one_fc, one_fv, one_forms = _run_group([one], run=single, notes=notes)
                forecasts.extend(one_fc)
                fitted.extend(one_fv)
                found.update(one_forms)
        return forecasts, fitted, found
    # A fit can also fail quietly, with non-finite forecasts for some series.
    finite = pl.all_horizontal(pl.col(_value_columns(run.levels)).is_finite())
    bad = fc.filter(~finite).select("unique_id", "model").unique().sort("unique_id", "model")
    if bad.height == 0:
        return [fc], [fv], forms
    pairs = bad.rows()
    keep = ~pl.struct("unique_id", "model").is_in([{"unique_id": u, "model": m} for u, m in pairs])
    forecasts, fitted = [fc.filter(keep)], [fv.filter(keep)]
    forms = {u: f for u, f in forms.items() if (u, "AutoETS") not in set(pairs)}
    by_id = {item.unique_id: item for item in group}
    ran = fc.filter(keep).select("unique_id", "model").unique().rows()
    for uid, model in pairs:
        plan = next(p for p in by_id[uid].plans if p.name == model)
        done = {m for u, m in ran if u == uid}
        more_fc, more_fv, _ = _fall_back(
            by_id[uid], plan, run=run, notes=notes, reason="non-finite forecast", done=done
        )
        forecasts.extend(more_fc)
        fitted.extend(more_fv)
    return forecasts, fitted, forms


def _fall_back(item: _Series, plan: ModelPlan, *, run: _Run, notes: _Notes, reason: str, done: set[str]) -> _Frames:
    """Replace a failed model on one series by its simpler fallback, noting and warning."""
    simpler = FALLBACK.get(plan.name)
    if simpler is None:
        notes.append((item.unique_id, "none", f"{plan.name} failed: {reason}; no forecast"))
        return [], [], {}
    fallback = plan_model(simpler, item.grid.y, item.grid.frequency)
    notes.append((item.unique_id, fallback.name, f"{plan.name} failed: {reason}; fell back to {fallback.name}"))
    warnings.warn(
        f"{plan.name} failed for {item.unique_id} ({reason}); fell back to {fallback.name}",
        RuntimeWarning,
        stacklevel=5,
    )
    if fallback.name in done or any(p.name == fallback.name for p in item.plans if p != plan):
        return [], [], {}  # the fallback already runs on this series as a model of its own
    one = _Series(item.unique_id, item.grid, (fallback,), item.conformal)
    single = _Run(run.frequency, run.h, run.levels, 1, run.conformal_windows)
    return _run_group([one], run=single, notes=notes)


def _run_statsforecast(
    group: list[_Series], *, plans: tuple[ModelPlan, ...], run: _Run
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, ETSState]]:
    """One StatsForecast call over a group; returns (forecasts, observed in-sample fits, the
    AutoETS form of each series)."""
    data = pd.DataFrame(
        {
            "unique_id": np.repeat([s.unique_id for s in group], [len(s.grid.y) for s in group]),
            "ds": np.concatenate([s.grid.ds.to_numpy() for s in group]),
            "y": np.concatenate([s.grid.y for s in group]),
        }
    )
    observed = pl.DataFrame(
        {
            "unique_id": data["unique_id"].to_numpy(),
            "ds": data["ds"].to_numpy(),
            "observed": np.concatenate([s.grid.observed for s in group]),
        }
    ).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    conformal = ConformalIntervals(h=run.h, n_windows=run.conformal_windows) if run.conformal_windows else None
    # A process pool costs about a second to start: small groups run in this process.
    workers = (
        1 if len(group) < _SERIES_PER_WORKER else (len(group) if run.n_jobs == -1 else min(len(group), run.n_jobs))
    )
    models = [_build(p, conformal, group[0].ets_form) for p in plans]
    recorders = [m for m in models if isinstance(m, _RecordingETS)]
    if recorders:
        models.append(_ETSFormColumn(recorders[0]))
    engine = StatsForecast(models=models, freq=run.frequency, n_jobs=workers)
    names = [p.name for p in plans]
    forecast_pd = cast(pd.DataFrame, engine.forecast(df=data, h=run.h, fitted=True, level=list(run.levels)))
    fitted_pd = cast(pd.DataFrame, engine.forecast_fitted_values())
    forms: dict[str, ETSState] = {}
    if recorders:
        season = next(p.seasons[0] for p in plans if p.name == "AutoETS")
        forms = _fits_of(forecast_pd, fitted_pd, group, season)
        forecast_pd = forecast_pd.drop(columns=[_FORM_COLUMN])
        fitted_pd = fitted_pd.drop(columns=[_FORM_COLUMN])
    forecasts = from_statsforecast(forecast_pd, models=names, levels=run.levels)
    finite = pl.all_horizontal(pl.col(_value_columns(run.levels)).is_finite())
    fitted = (
        from_statsforecast(fitted_pd, models=names, levels=run.levels)
        .join(observed, on=["unique_id", "ds"], how="left")
        .filter(pl.col("observed") & finite)
        .drop("observed")
    )
    return forecasts, fitted, forms


def _fits_of(
    forecast_pd: pd.DataFrame, fitted_pd: pd.DataFrame, group: list[_Series], season: int
) -> dict[str, ETSState]:
    """Each series' AutoETS fit, from the :class:`_ETSFormColumn` rows of a call: the form code
    in its forecast, ``n_params``, ``len(par)`` and ``par`` in its in-sample column (an empty
    ``par`` where the series was too short to carry them)."""
    codes = forecast_pd.groupby("unique_id", observed=True)[_FORM_COLUMN].first()
    grids = {s.unique_id: s.grid for s in group}
    columns = fitted_pd[["unique_id", _FORM_COLUMN]]
    fits: dict[str, ETSState] = {}
    for uid, values in columns.groupby("unique_id", observed=True, sort=False)[_FORM_COLUMN]:
        code = codes.get(uid)
        if code is None or not np.isfinite(code):
            continue
        encoded = values.to_numpy(dtype=np.float64)
        has_par = len(encoded) >= 2 and np.isfinite(encoded[:2]).all()
        count = int(encoded[1]) if has_par else 0
        grid = grids[str(uid)]
        fits[str(uid)] = ETSState(
            form=f"{_ETS_FORMS[int(code)]}/{season}",
            par=tuple(float(v) for v in encoded[2 : 2 + count]),
            n_params=int(encoded[0]) if has_par else 0,
            start=grid.ds[0].to_pydatetime(),
            end=grid.ds[-1].to_pydatetime(),
            window=window_digest(grid.y, grid.observed),
        )
    return fits


def from_statsforecast(
    frame: pd.DataFrame, *, models: Sequence[str], levels: Sequence[int] = DEFAULT_LEVELS
) -> pl.DataFrame:
    """The one adapter from statsforecast's wide columns to our long forecast frame.

    statsforecast names the point forecast after the model (``AutoETS``) and intervals
    ``AutoETS-lo-90`` / ``AutoETS-hi-90``; a level-``L`` interval spans the quantiles
    ``(100 - L) / 200`` and ``(100 + L) / 200``. Our median ``q50`` is the mean. One block of
    rows per model, stacked, with a ``model`` column.
    """
    # statsforecast < 2 kept unique_id as the index; 2.x returns it as a column.
    out = pl.from_pandas(frame.reset_index(drop=frame.index.name != "unique_id"))
    base = ["unique_id", "ds", *(["y"] if "y" in out.columns else [])]
    parts = []
    for model in models:
        renames = {model: "mean"}
        for level in levels:
            renames[f"{model}-lo-{level}"] = quantile_column((100 - level) / 200)
            renames[f"{model}-hi-{level}"] = quantile_column((100 + level) / 200)
        parts.append(
            out.select(*base, *renames)
            .rename(renames)
            .with_columns(
                pl.col("unique_id").cast(pl.Utf8),
                pl.col("ds").cast(pl.Datetime("us")),
                pl.lit(model).alias("model"),
                pl.col("mean").alias(quantile_column(0.5)),
            )
            .with_columns(pl.col(c).cast(pl.Float64) for c in _value_columns(tuple(levels)))
        )
    return pl.concat(parts)


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
        schema: dict[str, pl.DataType | type[pl.DataType]] = {c: pl.Float64 for c in columns}
        schema.update({"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "model": pl.Utf8})
        return pl.DataFrame(schema=schema)
    out = pl.concat([p.select(columns) for p in parts]).sort("unique_id", "model", "ds")
    validate_forecasts(out)
    return out


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- distributed frames (Fugue) ----------------------------------------------------------------
_DISTRIBUTED_MODULES = ("dask", "pyspark", "ray")


def _is_distributed(frame: Any) -> bool:
    return type(frame).__module__.split(".")[0] in _DISTRIBUTED_MODULES


def forecast_distributed(
    frame: Any,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    models: Sequence[str] = ("AutoETS",),
    n_jobs: int = -1,
    levels: Sequence[int] | None = None,
) -> ForecastResult:
    """Forecast a Spark, Dask or Ray DataFrame through statsforecast's Fugue backend.

    The frame must hold ``unique_id, ds, y`` of series already on one frequency grid (no
    gaps: regularise upstream, where the data lives). ``frequencies`` may map ids or be
    ``{"*": alias}``; all series of one call share one frequency and one horizon. The work
    runs on the frame's own cluster; ``forecasts`` comes back as a frame of the same kind
    with our columns (``unique_id, ds, model, mean, q05 ... q95``), and ``fitted`` and
    ``notes`` are empty polars frames (in-sample fits do not travel back from a cluster).
    """
    used = sorted(set(frequencies.values()))
    if len(used) != 1:
        raise FrameError(
            f"a distributed frame needs one frequency per call, got {used}",
            fix="split the frame by frequency and call once per frequency",
        )
    frequency = used[0]
    season_length(frequency)
    _check_horizons(used, horizons)
    chosen = _check_levels(levels)
    names = check_models(tuple(models))
    missing = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
    if missing:
        raise FrameError(
            f"distributed frame lacks column(s) {missing}; it has {list(frame.columns)}",
            fix="name the columns unique_id, ds, y",
        )
    # Without per-series lengths on the driver, plan each model for a long seasonal series.
    long_y = np.arange(10_000, dtype=np.float64)
    plans = [plan_model(name, long_y, frequency) for name in names]
    engine = StatsForecast(models=[_build(p, None) for p in plans], freq=frequency, n_jobs=n_jobs)
    wide = engine.forecast(df=frame, h=horizons[frequency], level=list(chosen))
    empty = _assemble([], with_y=True, levels=chosen)
    notes = pl.DataFrame(schema={"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8})
    return ForecastResult(
        forecasts=_rename_distributed(wide, [p.name for p in plans], chosen), fitted=empty, notes=notes
    )


def _rename_distributed(wide: Any, models: list[str], levels: tuple[int, ...]) -> Any:
    """Our long layout on a Dask frame; Spark and Ray frames keep statsforecast's wide
    columns (convert them with :func:`from_statsforecast` once collected)."""
    if type(wide).__module__.split(".")[0] != "dask":
        return wide
    parts = []
    for model in models:
        renames = {model: "mean"}
        for level in levels:
            renames[f"{model}-lo-{level}"] = quantile_column((100 - level) / 200)
            renames[f"{model}-hi-{level}"] = quantile_column((100 + level) / 200)
        part = wide[["unique_id", "ds", *renames]].rename(columns=renames)
        part = part.assign(model=model, q50=part["mean"])
        parts.append(part[list(forecast_columns())])
    import dask.dataframe as dd

    return dd.concat(parts)
