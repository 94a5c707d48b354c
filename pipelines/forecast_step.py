"""The forecasting step of the cycle, the backtest run and vertical-model training (wiring).

- :func:`run_forecast_step` (step [1/4] of ``ews run``): each series gets the model its newest
  stored backtest chose (:func:`forecasting.select_models`; a series never backtested gets
  the configured default, and its selection row says it is not a winner). It writes the
  selected model's quantile forecasts, the selection with its reason, and the exceedance
  probabilities of the series' thresholds, and returns the in-sample fits the anomaly step
  scores (the selected model's; for a foundation model, which has none, the default model's).
  Series with physical bounds in their metadata are forecast on the scale that keeps them
  inside (:mod:`forecasting.bounds`), by every model, here and in the backtest.
- :func:`run_backtest` (``ews backtest``): rolling-origin backtest of every candidate (the
  statistical models, ensembles, Chronos when configured and reachable, the newest vertical
  model of each series' domain), stored per run in ``backtest_results``.
- :func:`train_domain_model` (``ews model train``): fine-tune (or train from scratch) a
  Chronos-2 on one domain's series and register it with its training provenance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

import forecasting
from core.clock import Clock
from core.errors import EWSError, ModelError
from core.frames import forecast_columns
from core.settings import Settings
from forecasting.chronos import ChronosModel
from warehouse import Warehouse
from warehouse import forecast_store as store
from warehouse.series import read_observations, read_series_meta

__all__ = [
    "GLOBAL_OPTIONS",
    "GlobalFits",
    "SelectionPool",
    "ForecastStepResult",
    "BacktestSummary",
    "run_forecast_step",
    "ForecastPlan",
    "Statistical",
    "plan_forecast_step",
    "finish_forecast_step",
    "run_backtest",
    "train_domain_model",
    "load_foundation_models",
]

_Progress = Callable[[str], None]


@dataclass
class ForecastStepResult:
    """What the forecast step wrote and what the scoring step needs (``fitted``)."""

    forecasts: pl.DataFrame
    fitted: pl.DataFrame
    exceedance: pl.DataFrame
    selections: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class BacktestSummary:
    run_id: str
    metrics: pl.DataFrame
    notes: list[str]
    rows: int


# -- foundation and vertical models ---------------------------------------------------------
def _chronos_source(settings: Settings) -> str:
    """The [chronos] source, made absolute when it names a folder under EWS_HOME."""
    source = settings.chronos.source
    if source and not Path(source).is_absolute() and (settings.home / source).exists():
        return str(settings.home / source)
    return source


def load_foundation_models(
    wh: Warehouse, settings: Settings, names: Sequence[str], notes: list[str]
) -> dict[str, ChronosModel]:
    """Load the named Chronos / vertical models that can be loaded; note the others."""
    out: dict[str, ChronosModel] = {}
    registry = store.read_models(wh)
    paths = dict(zip(registry["model_id"], registry["path"], strict=True)) if registry.height else {}
    for name in names:
        try:
            if name == settings.chronos.name and settings.chronos.source:
                out[name] = forecasting.load_chronos(
                    _chronos_source(settings),
                    name=name,
                    threads=settings.runtime.threads,
                    allow_download=settings.chronos.allow_download,
                )
            elif name in paths:
                out[name] = forecasting.load_chronos(paths[name], name=name, threads=settings.runtime.threads)
        except ModelError as exc:
            notes.append(f"{name} unavailable: {exc}")
    return out


def _chronos_forecaster(
    model: ChronosModel,
    settings: Settings,
    only: set[str] | None = None,
    bounds: Mapping[str, forecasting.Bounds] | None = None,
) -> forecasting.ExtraForecaster:
    def run(train: pl.DataFrame, frequencies: Mapping[str, str], horizons: Mapping[str, int]) -> pl.DataFrame:
        if only is not None:
            train = train.filter(pl.col("unique_id").is_in(sorted(only)))
        if train.height == 0:
            schema = {c: pl.Float64 for c in forecast_columns()}
            return pl.DataFrame(schema=schema | {"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "model": pl.Utf8})
        return forecasting.forecast_chronos(
            model,
            train,
            frequencies=frequencies,
            horizons=horizons,
            max_context=settings.chronos.max_context,
            batch_size=settings.chronos.batch_size,
            bounds=bounds,
        ).forecasts

    return run


# -- the cycle's forecast step ------------------------------------------------------------------
def run_forecast_step(
    wh: Warehouse,
    settings: Settings,
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    meta: pl.DataFrame,
    run_id: str,
    now: datetime,
    progress: _Progress = lambda _msg: None,
    forecast: Callable[..., forecasting.ForecastResult] | None = None,
    global_fits: GlobalFits | None = None,
    pool: SelectionPool | None = None,
) -> ForecastStepResult:
    """Forecast each series with its selected model; write forecasts, selections, exceedance.

    ``forecast``: what runs the statistical models, :func:`forecasting.forecast_statistical`
    (default, in this process) or a drop-in with its arguments and result that runs it
    elsewhere (:mod:`pipelines.engines`: a Dask cluster). ``global_fits``: the cycle's global
    model fits (:class:`GlobalFits`, one per frequency across all the warehouse's series of
    it, shared by the chunks); default: fitted across the series of ``series`` only.
    ``pool``: what ``[backtest] choose`` = ``"frequency"`` / ``"auto"`` pools
    (:class:`SelectionPool`: the window scores of every warehouse series of a frequency, and
    auto's decision per frequency, made once and shared by the chunks); default: read from
    the warehouse for the frequencies of ``series``."""
    plan = plan_forecast_step(
        wh,
        settings,
        series,
        frequencies=frequencies,
        meta=meta,
        now=now,
        progress=progress,
        global_fits=global_fits,
        pool=pool,
    )
    return finish_forecast_step(wh, plan, plan.statistical(forecast), run_id=run_id, progress=progress)


@dataclass
class ForecastPlan:
    """What the forecast step decided from the warehouse before any model ran (the reads of
    :func:`plan_forecast_step`): each series' selection, the statistical models it needs,
    the kept ETS forms and stored fits, the loaded foundation models. :meth:`statistical`
    runs the statistical models (no warehouse access, so the cycle may run it on a thread
    while it scores the previous chunk); :func:`finish_forecast_step` does the rest and writes."""

    settings: Settings
    series: pl.DataFrame
    frequencies: Mapping[str, str]
    meta: pl.DataFrame
    now: datetime
    bounds: dict[str, forecasting.Bounds]
    fresh: pl.DataFrame
    usable: pl.DataFrame
    selections: pl.DataFrame
    members: dict[str, list[str]]
    weights: dict[str, dict[str, float]]
    stat_needed: dict[str, list[str]]
    kept_forms: dict[str, str]
    kept_states: dict[str, str]
    loaded: dict[str, Any]
    installed: bool
    global_fits: GlobalFits
    notes: list[str]

    def statistical(self, forecast: Callable[..., forecasting.ForecastResult] | None = None) -> Statistical:
        """The statistical forecasts and in-sample fits (``forecast``: as :func:`run_forecast_step`)."""
        return _run_statistical(
            self.series,
            self.stat_needed,
            self.frequencies,
            self.settings,
            self.bounds,
            self.kept_forms,
            self.kept_states,
            forecast or forecasting.forecast_statistical,
        )


def plan_forecast_step(
    wh: Warehouse,
    settings: Settings,
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    meta: pl.DataFrame,
    now: datetime,
    progress: _Progress = lambda _msg: None,
    global_fits: GlobalFits | None = None,
    pool: SelectionPool | None = None,
) -> ForecastPlan:
    """The reads and decisions of :func:`run_forecast_step` (its arguments), up to the
    statistical models; writes nothing."""
    uids = sorted(series.get_column("unique_id").unique().to_list())
    notes: list[str] = []
    bounds = forecasting.bounds_from_meta(meta)
    backtests = store.read_latest_backtest(wh, uids)
    fc = settings.forecast
    bases = {uid: _basis(frequencies[uid], settings) for uid in uids}
    kept = _kept_selections(
        store.read_latest_selections(wh, uids),
        backtests,
        bases=bases,
        now=now,
        period=settings.backtest.reselect_period(),
    )
    select: dict[str, Any] = dict(
        default_model=fc.default_model,
        criterion=settings.backtest.criterion,
        margin=settings.backtest.margin,
    )
    due = [u for u in uids if u not in set(kept["unique_id"].to_list())]
    first = forecasting.select_models(backtests, unique_ids=due, **select)
    named = set(_needed(first, backtests)) | set(kept["model"].to_list()) | _stored_members(kept)
    rule = settings.backtest.choose
    if rule != "series" and due and backtests.height:  # a pooled winner may be any candidate
        named |= set(backtests.get_column("model").to_list())
    foreign = sorted(named - set(forecasting.STAT_MODELS) - set(forecasting.GLOBAL_MODELS))
    loaded = load_foundation_models(wh, settings, foreign, notes) if foreign else {}
    # The global learned models are refitted once per frequency per cycle (GlobalFits) when
    # mlforecast and LightGBM are installed; without them a series whose backtest one won gets
    # the best available candidate, and its reason says why.
    installed = forecasting.global_installed()
    available = {
        *forecasting.STAT_MODELS,
        *loaded,
        *(forecasting.GLOBAL_MODELS if installed else ()),
        *(forecasting.ensemble_name(m) for m in forecasting.ENSEMBLE_METHODS),
    }
    if global_fits is None:
        global_fits = GlobalFits.of_frame(series, frequencies=frequencies, settings=settings, bounds=bounds)
    # A kept selection whose model (or an ensemble member) cannot be loaded now is made again.
    usable = kept.filter(
        pl.col("model").is_in(sorted(available))
        & ~pl.col("unique_id").is_in([u for u, m in _kept_members(kept).items() if not set(m) <= available])
    )
    due = sorted(set(uids) - set(usable["unique_id"].to_list()))
    if pool is None:
        pool = SelectionPool.of_warehouse(wh, only=frequencies)
    fresh = pool.select(backtests, unique_ids=due, rule=rule, available=available, **select)
    if not installed:
        fresh = _say_not_installed(fresh, backtests)
    members = {**_members(fresh, backtests, available), **_kept_members(usable)}
    fresh = fresh.with_columns(
        pl.Series(
            "members", [json.dumps(members.get(u)) if u in members else None for u in fresh["unique_id"]], dtype=pl.Utf8
        ),
        pl.Series("backtest_run_id", [_run_of(backtests, u) for u in fresh["unique_id"]], dtype=pl.Utf8),
        pl.Series("basis", [bases[u] for u in fresh["unique_id"]], dtype=pl.Utf8),
        pl.lit(None, dtype=pl.Utf8).alias("ets_form"),  # known once AutoETS has run, below
    )
    fresh = _with_interval_scales(fresh, backtests, calibrate=settings.backtest.calibrate_intervals)
    selections = pl.concat([fresh, usable.select(fresh.columns)], how="vertical_relaxed").sort("unique_id")
    if usable.height:
        progress(
            f"      model selection: {fresh.height} series selected, {usable.height} keep their selection "
            f"(younger than [backtest] reselect_every = {settings.backtest.reselect_every!r})"
        )
    weights = _weights(selections, backtests, members)

    stat_needed = {
        uid: [m for m in members.get(uid, [model]) if m in forecasting.STAT_MODELS]
        for uid, model in selections.select("unique_id", "model").iter_rows()
    }
    for uid, model in selections.select("unique_id", "model").iter_rows():
        if not stat_needed[uid]:
            stat_needed[uid] = [fc.default_model]  # in-sample fits for the anomaly step
            notes.append(f"{uid}: {model} has no in-sample fit; anomaly scoring uses {fc.default_model}'s")
    # A kept selection refits the AutoETS form it was made with (issue 21: one fit, not the
    # search), or, while its last fit is younger than [forecast] refit_every, filters that fit
    # forward over the new points (no fit at all).
    kept_forms = {u: f for u, f in usable.select("unique_id", "ets_form").iter_rows() if f}
    kept_states = _kept_states(wh, kept_forms, now=now, period=fc.refit_period())
    return ForecastPlan(
        settings=settings,
        series=series,
        frequencies=frequencies,
        meta=meta,
        now=now,
        bounds=bounds,
        fresh=fresh,
        usable=usable,
        selections=selections,
        members=members,
        weights=weights,
        stat_needed=stat_needed,
        kept_forms=kept_forms,
        kept_states=kept_states,
        loaded=loaded,
        installed=installed,
        global_fits=global_fits,
        notes=notes,
    )


def finish_forecast_step(
    wh: Warehouse,
    plan: ForecastPlan,
    statistical: Statistical,
    *,
    run_id: str,
    progress: _Progress = lambda _msg: None,
) -> ForecastStepResult:
    """The rest of :func:`run_forecast_step` once ``plan``'s statistical models ran
    (``statistical``: :meth:`ForecastPlan.statistical`): foundation and global models,
    combinations, calibrated intervals, exceedance; writes forecasts, selections, fits."""
    settings, series, frequencies, meta, now = plan.settings, plan.series, plan.frequencies, plan.meta, plan.now
    bounds, fresh, usable, selections = plan.bounds, plan.fresh, plan.usable, plan.selections
    members, weights, loaded, notes = plan.members, plan.weights, plan.loaded, list(plan.notes)
    fc = settings.forecast
    parts, fitted_parts, stat_notes, fits = statistical
    forms = fits.ets_forms
    fresh = fresh.with_columns(pl.Series("ets_form", [forms.get(u) for u in fresh["unique_id"]], dtype=pl.Utf8))
    notes.extend(stat_notes)
    for name, model in loaded.items():
        wanted = {u for u, m in members.items() if name in m} | set(
            selections.filter(pl.col("model") == name)["unique_id"].to_list()
        )
        if wanted:
            part = _chronos_forecaster(model, settings, wanted, bounds)(series, frequencies, fc.horizon)
            parts.append(part.select(forecast_columns()))
    if plan.installed:
        parts.extend(_run_global(selections, members, frequencies, plan.global_fits, notes))
    raw = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
    fitted_all = pl.concat(fitted_parts, how="vertical_relaxed") if fitted_parts else pl.DataFrame()
    chosen, fitted = _assemble(raw, fitted_all, selections, members, weights, notes)
    if settings.backtest.calibrate_intervals:
        scales = dict(selections.select("unique_id", "interval_scales").iter_rows())
        chosen, calibrated = forecasting.calibrate_intervals(chosen, scales, bounds=bounds)
        notes.extend(f"{u}: {n}" for u, _, n in calibrated)

    cutoffs = series.group_by("unique_id").agg(pl.col("ds").max().alias("cutoff"))
    forecasts = chosen.join(cutoffs, on="unique_id", how="left")
    # A series whose selected model changed keeps one model per cutoff: the new selection's.
    store.drop_unselected_forecasts(wh, forecasts.select("unique_id", "cutoff", "model").unique())
    counts = {"forecasts": store.write_forecasts(wh, forecasts, run_id=run_id)}
    counts["model_selections"] = store.write_selections(wh, fresh, run_id=run_id, at=now)
    counts["model_selections_kept"] = usable.height
    if fits.ets_states:
        new_states = pl.DataFrame(
            {"unique_id": list(fits.ets_states), "state": list(fits.ets_states.values())},
            schema={"unique_id": pl.Utf8, "state": pl.Utf8},
        )
        store.upsert_model_states(wh, new_states, model="AutoETS", run_id=run_id, at=now)
    counts["ets_fitted"] = len(fits.ets_states)
    counts["ets_forwarded"] = len(fits.forwarded)
    if fits.forwarded:
        progress(
            f"      AutoETS: {len(fits.forwarded)} series filtered forward from their stored fit, "
            f"{len(fits.ets_states)} fitted ([forecast] refit_every = {fc.refit_every!r})"
        )
    exceedance = _exceedance(series, chosen, meta, settings, notes)
    if exceedance.height:
        counts["exceedance"] = store.write_exceedance(wh, exceedance.join(cutoffs, on="unique_id"), run_id=run_id)
    else:
        counts["exceedance"] = 0
    picked = selections.group_by("model").len().sort("model")
    progress("      models: " + ", ".join(f"{m} {n}" for m, n in picked.iter_rows()))
    return ForecastStepResult(
        forecasts=forecasts, fitted=fitted, exceedance=exceedance, selections=selections, counts=counts, notes=notes
    )


#: Options of the global models, the same in `ews backtest` (every window) and `ews run`.
GLOBAL_OPTIONS: dict[str, Any] = {"strategy": "recursive", "conformal_windows": 2, "n_jobs": 1}
_NOT_INSTALLED = (
    " (the global model is not refitted here: mlforecast and lightgbm are not installed; "
    "pip install mlforecast lightgbm)"
)


class GlobalFits:
    """The global learned models of one cycle: each fitted once per frequency, on first need.

    ``load(frequency)`` returns the series frame (``unique_id, ds, y``) the fit of that
    frequency learns from; :meth:`of_warehouse` reads every warehouse series of the frequency
    known at the cycle's cutoff, so the fit is the one ``ews backtest`` makes on the same data
    (its final fit) whatever the cycle's chunks, workers or engine. The fit runs in this
    process (the driver); only its forecasts (``h`` rows of each series) are kept between
    chunks, the histories are dropped when the fit returns.

    Memory: the fit holds one frequency's series at a time. Of an unbounded series it reads
    only the newest ``[forecast] max_context`` observations: the global model itself keeps no
    more (:func:`forecasting.regularise` keeps the last ``max_context`` observations before it
    builds the grid), so its forecasts are those of the full history. A bounded series is read
    whole: its bound map's offset is chosen on all the values the model is given, as in the
    backtest and the statistical path.
    """

    def __init__(
        self,
        load: Callable[[str], pl.DataFrame],
        *,
        frequencies: Mapping[str, str],
        settings: Settings,
        bounds: Mapping[str, forecasting.Bounds],
    ) -> None:
        self._load = load
        self.frequencies = dict(frequencies)
        self._settings = settings
        self._bounds = dict(bounds)
        self._done: dict[tuple[str, str], forecasting.ForecastResult | str] = {}
        #: Wall seconds of each fit, ``{"LGBMGlobal@W-FRI": 1.2}`` (benchmarks report them).
        self.seconds: dict[str, float] = {}

    @classmethod
    def of_warehouse(cls, wh: Warehouse, settings: Settings, *, before: datetime | None) -> GlobalFits:
        """Fits across every series of the warehouse, observations known by ``before``."""
        meta = read_series_meta(wh)
        frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
        bounds = forecasting.bounds_from_meta(meta)
        tail = settings.forecast.max_context

        def load(frequency: str) -> pl.DataFrame:
            ids = sorted(u for u, f in frequencies.items() if f == frequency)
            whole = [u for u in ids if u in bounds]
            parts = [read_observations(wh, [u for u in ids if u not in bounds], before=before, last=tail)]
            if whole:
                parts.append(read_observations(wh, whole, before=before))
            return pl.concat(parts).sort("unique_id", "ds")

        return cls(load, frequencies=frequencies, settings=settings, bounds=bounds)

    @classmethod
    def of_frame(
        cls,
        series: pl.DataFrame,
        *,
        frequencies: Mapping[str, str],
        settings: Settings,
        bounds: Mapping[str, forecasting.Bounds],
    ) -> GlobalFits:
        """Fits across the series of ``series`` only."""

        def load(frequency: str) -> pl.DataFrame:
            ids = sorted(u for u, f in frequencies.items() if f == frequency)
            return series.filter(pl.col("unique_id").is_in(ids))

        return cls(load, frequencies=frequencies, settings=settings, bounds=bounds)

    def result(self, name: str, frequency: str) -> forecasting.ForecastResult | str:
        """The fit of ``name`` on the series of ``frequency`` (made once), or why there is none."""
        key = (name, frequency)
        if key not in self._done:
            started = time.perf_counter()
            train = self._load(frequency)
            fc = self._settings.forecast
            try:
                self._done[key] = forecasting.forecast_global(
                    train,
                    frequencies={u: self.frequencies[u] for u in train["unique_id"].unique().to_list()},
                    horizons=fc.horizon,
                    max_context=fc.max_context,
                    bounds=self._bounds,
                    name=name,
                    **GLOBAL_OPTIONS,
                )
            except ModelError as exc:
                self._done[key] = f"{name} not fitted on the {frequency} series: {exc}"
            del train
            self.seconds[f"{name}@{frequency}"] = round(time.perf_counter() - started, 3)
        return self._done[key]


class SelectionPool:
    """What the rules across series (``[backtest] choose``, :func:`forecasting.select_by_rule`)
    pool, per frequency: the window scores of the newest backtest of **every** series of the
    frequency in the warehouse (not only the chunk's), read once per cycle, and ``"auto"``'s
    decision (:func:`forecasting.decide_rules`), made once. So every chunk of a cycle pools
    the same series and takes the same rule and pooled candidate, whatever ``[cycle]
    chunk_series``: a frequency split over chunks is pooled whole.

    The series of a frequency may have been covered by different backtest runs (``ews backtest
    --series``): each contributes its newest run's windows; a series whose newest run was
    stored before migration 19 has no window scores and keeps the per-series rule.
    """

    def __init__(self, load: Callable[[list[str]], pl.DataFrame], *, frequencies: Mapping[str, str]) -> None:
        self._load = load
        self.frequencies = dict(frequencies)
        self._windows: dict[str, pl.DataFrame] = {}
        self._rules: dict[tuple[str, frozenset[str]], pl.DataFrame] = {}

    @classmethod
    def of_warehouse(cls, wh: Warehouse, *, only: Mapping[str, str] | None = None) -> SelectionPool:
        """The pool of every warehouse series (``only``: of these series' frequencies)."""
        meta = read_series_meta(wh)
        frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
        if only is not None:
            frequencies = {u: f for u, f in frequencies.items() if f in set(only.values())} | dict(only)
        return cls(lambda ids: store.read_latest_window_scores(wh, ids), frequencies=frequencies)

    def windows(self, frequency: str) -> pl.DataFrame:
        """The stored window scores of every series of ``frequency`` (read once)."""
        if frequency not in self._windows:
            ids = sorted(u for u, f in self.frequencies.items() if f == frequency)
            self._windows[frequency] = self._load(ids)
        return self._windows[frequency]

    def select(
        self,
        backtests: pl.DataFrame,
        *,
        unique_ids: Sequence[str],
        rule: str,
        available: Collection[str],
        default_model: str,
        criterion: str,
        margin: float,
    ) -> pl.DataFrame:
        """The fresh selections of ``unique_ids`` under ``rule`` (reasons name the rule)."""
        if rule == "series" or not unique_ids:
            return forecasting.select_models(
                backtests,
                unique_ids=unique_ids,
                default_model=default_model,
                criterion=criterion,
                available=available,
                margin=margin,
            )
        wanted = sorted({self.frequencies[u] for u in unique_ids})
        windows = pl.concat([self.windows(f) for f in wanted], how="vertical_relaxed")
        known = [self._rules[(f, frozenset(available))] for f in wanted if (f, frozenset(available)) in self._rules]
        selections, rules = forecasting.select_by_rule(
            backtests,
            windows,
            rule=rule,
            frequencies=self.frequencies,
            unique_ids=unique_ids,
            default_model=default_model,
            criterion=criterion,
            available=available,
            margin=margin,
            rules=pl.concat(known) if known else None,
        )
        if rule == "auto":
            for (frequency,), row in rules.group_by("frequency"):
                self._rules[(str(frequency), frozenset(available))] = row
        return selections


def _say_not_installed(fresh: pl.DataFrame, backtests: pl.DataFrame) -> pl.DataFrame:
    """Reasons of selections a global model would have served, when it cannot run here."""
    listed = {}
    if backtests.height and "members" in backtests.columns:
        listed = {
            (u, m): json.loads(t) or []
            for u, m, t in backtests.select("unique_id", "model", "members").drop_nulls("members").iter_rows()
        }
    names = set(forecasting.GLOBAL_MODELS)
    reasons = []
    for uid, model, reason in fresh.select("unique_id", "model", "reason").iter_rows():
        lost = ("not available now" in reason and any(n in reason for n in names)) or bool(
            names & set(listed.get((uid, model), []))
        )
        reasons.append(reason + _NOT_INSTALLED if lost else reason)
    return fresh.with_columns(pl.Series("reason", reasons, dtype=pl.Utf8))


def _run_global(
    selections: pl.DataFrame,
    members: Mapping[str, list[str]],
    frequencies: Mapping[str, str],
    fits: GlobalFits,
    notes: list[str],
) -> list[pl.DataFrame]:
    """The global models' forecasts of the series that selected one or combine one."""
    parts = []
    for name in forecasting.GLOBAL_MODELS:
        wanted = {u for u, m in members.items() if name in m} | set(
            selections.filter(pl.col("model") == name)["unique_id"].to_list()
        )
        by_frequency: dict[str, list[str]] = {}
        for uid in sorted(wanted):
            by_frequency.setdefault(frequencies[uid], []).append(uid)
        for frequency, ids in sorted(by_frequency.items()):
            found = fits.result(name, frequency)
            if isinstance(found, str):
                notes.extend(f"{u}: {found}" for u in ids)
                continue
            parts.append(found.forecasts.filter(pl.col("unique_id").is_in(ids)).select(forecast_columns()))
            mine = found.notes.filter(pl.col("unique_id").is_in([*ids, "*"]))
            notes.extend(f"{u}: {n}" for u, _, n in mine.iter_rows())
    return parts


def _basis(frequency: str, settings: Settings) -> str:
    """What a selection is made for (JSON): the series' frequency and the candidate settings.
    A stored selection is kept only while its basis equals the current one."""
    return json.dumps(
        {
            "frequency": frequency,
            "models": sorted(settings.forecast.models),
            "default_model": settings.forecast.default_model,
            "criterion": settings.backtest.criterion,
            "margin": settings.backtest.margin,
            "ensembles": sorted(settings.backtest.ensembles),
            "chronos": settings.chronos.name if settings.chronos.source else None,
            "calibrate_intervals": settings.backtest.calibrate_intervals,
            "choose": settings.backtest.choose,
        },
        sort_keys=True,
    )


def _kept_selections(
    stored: pl.DataFrame,
    backtests: pl.DataFrame,
    *,
    bases: Mapping[str, str],
    now: datetime,
    period: timedelta,
) -> pl.DataFrame:
    """The stored selections a cycle keeps (``[backtest] reselect_every``): younger than
    ``period`` at ``now``, made on the current basis, and on the newest backtest run that
    covers the series (a newer ``ews backtest`` is taken up at once). Every other series
    (none stored, too old, basis changed, newer backtest) is selected again."""
    if stored.height == 0 or period <= timedelta(0):
        return stored.clear()
    newest = dict(backtests.group_by("unique_id").agg(pl.col("run_id").first()).iter_rows()) if backtests.height else {}
    keep = [
        row["unique_id"]
        for row in stored.iter_rows(named=True)
        if row["decided_at"] is not None
        and now - row["decided_at"] < period
        and row.get("basis") == bases.get(row["unique_id"])
        and row["backtest_run_id"] == newest.get(row["unique_id"])
    ]
    return stored.filter(pl.col("unique_id").is_in(keep))


def _with_interval_scales(fresh: pl.DataFrame, backtests: pl.DataFrame, *, calibrate: bool) -> pl.DataFrame:
    """Fresh selections with the interval factors of their model's backtest row (``[backtest]
    calibrate_intervals``; null when off) and a reason that names them."""
    if not calibrate:
        return fresh.with_columns(pl.lit(None, dtype=pl.Utf8).alias("interval_scales"))
    stored: dict[tuple[str, str], str | None] = {}
    if backtests.height and "interval_scales" in backtests.columns:
        stored = {(u, m): t for u, m, t in backtests.select("unique_id", "model", "interval_scales").iter_rows()}
    scales, reasons = [], []
    for uid, model, reason in fresh.select("unique_id", "model", "reason").iter_rows():
        text = stored.get((uid, model))
        scales.append(text)
        if text:
            reasons.append(f"{reason}; {forecasting.describe_scales(json.loads(text))}")
        elif (uid, model) in stored:
            reasons.append(f"{reason}; intervals as the model gives them (too few backtest points to calibrate)")
        else:
            reasons.append(reason)
    return fresh.with_columns(
        pl.Series("interval_scales", scales, dtype=pl.Utf8), pl.Series("reason", reasons, dtype=pl.Utf8)
    )


def _kept_members(kept: pl.DataFrame) -> dict[str, list[str]]:
    """Ensemble members of the kept selections that are ensembles."""
    return {
        uid: (json.loads(text) or []) if text else []
        for uid, model, text in kept.select("unique_id", "model", "members").iter_rows()
        if model.startswith("Ensemble-")
    }


def _stored_members(kept: pl.DataFrame) -> set[str]:
    return {m for members in _kept_members(kept).values() for m in members}


def _needed(selections: pl.DataFrame, backtests: pl.DataFrame) -> list[str]:
    """Every model a selection could use: the winners and their ensemble members."""
    names = set(selections.get_column("model").to_list())
    if backtests.height and "members" in backtests.columns:
        for text in backtests.drop_nulls("members").get_column("members").to_list():
            names.update(json.loads(text) or [])
    return sorted(names)


def _members(selections: pl.DataFrame, backtests: pl.DataFrame, available: set[str]) -> dict[str, list[str]]:
    out = {}
    ens = selections.filter(pl.col("model").str.starts_with("Ensemble-"))
    for uid, model in ens.select("unique_id", "model").iter_rows():
        row = backtests.filter((pl.col("unique_id") == uid) & (pl.col("model") == model))
        listed = json.loads(row.item(0, "members")) if row.height and row.item(0, "members") else []
        out[uid] = [m for m in listed if m in available]
    return out


def _weights(
    selections: pl.DataFrame, backtests: pl.DataFrame, members: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    weighted = selections.filter(pl.col("model") == "Ensemble-weighted")["unique_id"].to_list()
    out = {}
    for uid in weighted:
        found = forecasting.inverse_loss_weights(
            backtests.filter(pl.col("unique_id") == uid), members=members.get(uid, [])
        )
        out[uid] = found.get(uid, {m: 1.0 for m in members.get(uid, [])})
    return out


def _run_of(backtests: pl.DataFrame, uid: str) -> str | None:
    row = backtests.filter(pl.col("unique_id") == uid)
    return row.item(0, "run_id") if row.height else None


@dataclass(frozen=True)
class _ETSFits:
    """What the statistical calls say of AutoETS: the form of each series it ran on, the fits
    made (state text), the series whose stored fit was filtered forward instead."""

    ets_forms: dict[str, str]
    ets_states: dict[str, str]
    forwarded: tuple[str, ...]


#: What :func:`_run_statistical` returns: forecasts, in-sample fits, notes, what AutoETS did.
Statistical = tuple[list[pl.DataFrame], list[pl.DataFrame], list[str], _ETSFits]


def _kept_states(wh: Warehouse, kept_forms: Mapping[str, str], *, now: datetime, period: timedelta) -> dict[str, str]:
    """The stored AutoETS fits to filter forward: of kept selections, fitted with the kept form
    less than ``period`` ago ([forecast] refit_every; none when it is zero)."""
    if not kept_forms or period <= timedelta(0):
        return {}
    stored = store.read_model_states(wh, sorted(kept_forms), model="AutoETS")
    kept: dict[str, str] = {}
    for uid, text, fitted_at in stored.iter_rows():
        if now - fitted_at >= period:
            continue
        try:
            form = forecasting.ETSState.from_text(text).form
        except EWSError:
            form = kept_forms[uid]  # unreadable: forecast_statistical refits it and says why
        if form == kept_forms[uid]:
            kept[uid] = text
    return kept


def _run_statistical(
    series: pl.DataFrame,
    needed: dict[str, list[str]],
    frequencies: Mapping[str, str],
    settings: Settings,
    bounds: Mapping[str, forecasting.Bounds],
    ets_forms: Mapping[str, str] | None = None,
    ets_states: Mapping[str, str] | None = None,
    forecast: Callable[..., forecasting.ForecastResult] = forecasting.forecast_statistical,
) -> Statistical:
    """One forecast_statistical call per distinct set of needed models; also returns what
    AutoETS did (``ets_forms``: kept forms to refit; ``ets_states``: stored fits to filter
    forward)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for uid, wanted in needed.items():
        groups.setdefault(tuple(wanted), []).append(uid)
    parts: list[pl.DataFrame] = []
    fitted: list[pl.DataFrame] = []
    notes: list[str] = []
    forms: dict[str, str] = {}
    states: dict[str, str] = {}
    forwarded: list[str] = []
    fc = settings.forecast
    for models, ids in sorted(groups.items()):
        result = forecast(
            series.filter(pl.col("unique_id").is_in(ids)),
            frequencies=frequencies,
            horizons=fc.horizon,
            models=models,
            max_context=fc.max_context,
            n_jobs=fc.n_jobs,
            intervals=fc.intervals,
            conformal_windows=fc.conformal_windows,
            bounds=bounds,
            ets_forms={u: ets_forms[u] for u in ids if u in ets_forms} if ets_forms else None,
            ets_states={u: ets_states[u] for u in ids if u in ets_states} if ets_states else None,
            refit_surprise=fc.refit_surprise,
        )
        parts.append(result.forecasts.select(forecast_columns()))
        fitted.append(result.fitted)
        notes.extend(f"{u}: {n}" for u, _, n in result.notes.iter_rows())
        forms.update(result.ets_forms)
        states.update(result.ets_states)
        forwarded.extend(result.forwarded)
    return parts, fitted, notes, _ETSFits(forms, states, tuple(sorted(forwarded)))


def _assemble(
    raw: pl.DataFrame,
    fitted_all: pl.DataFrame,
    selections: pl.DataFrame,
    members: dict[str, list[str]],
    weights: dict[str, dict[str, float]],
    notes: list[str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each series' selected forecast (ensembles combined) and its in-sample fits."""
    chosen, fits = [], []
    # split once (filtering the whole frame per series costs series x rows)
    raw_of = {k[0]: v for k, v in raw.partition_by("unique_id", as_dict=True).items()} if raw.height else {}
    fit_of = (
        {k[0]: v for k, v in fitted_all.partition_by("unique_id", as_dict=True).items()} if fitted_all.height else {}
    )
    for uid, model in selections.select("unique_id", "model").iter_rows():
        mine = raw_of.get(uid, raw.clear())
        ran = set(mine.get_column("model").to_list()) if mine.height else set()
        fit = fit_of.get(uid, fitted_all.clear())
        if model.startswith("Ensemble-"):
            present = [m for m in members.get(uid, []) if m in ran]
            if len(present) >= 2:
                method = model.split("-", 1)[1]
                w = {uid: weights.get(uid, {})} if method == "weighted" else None
                chosen.append(forecasting.combine_forecasts(mine, members={uid: present}, method=method, weights=w))
                stat = [m for m in present if m in forecasting.STAT_MODELS]
                if len(stat) >= 2 and fit.height:
                    combo = forecasting.combine_forecasts(fit, members={uid: stat}, method="median")
                    y = fit.select("unique_id", "ds", "y").unique()
                    fits.append(combo.join(y, on=["unique_id", "ds"]))
                elif fit.height:
                    fits.append(fit.filter(pl.col("model") == fit["model"][0]))
                continue
            notes.append(f"{uid}: {model} has {len(present)} member(s) left; used them directly")
        pick = model if model in ran else (sorted(ran)[0] if ran else None)
        if pick is None:
            notes.append(f"{uid}: no forecast from {model}")
            continue
        if pick != model:
            notes.append(f"{uid}: selected {model} did not run; forecast comes from {pick}")
        chosen.append(mine.filter(pl.col("model") == pick).select(forecast_columns()))
        if fit.height:
            fit_model = pick if pick in set(fit["model"].to_list()) else fit["model"][0]
            fits.append(fit.filter(pl.col("model") == fit_model))
    forecasts = pl.concat([c.select(forecast_columns()) for c in chosen]) if chosen else raw.clear()
    fitted = (
        pl.concat([f.select("unique_id", "ds", "y", *forecast_columns()[2:]) for f in fits])
        if fits
        else fitted_all.clear()
    )
    return forecasts.sort("unique_id", "ds"), fitted.sort("unique_id", "ds")


def _exceedance(
    series: pl.DataFrame, forecasts: pl.DataFrame, meta: pl.DataFrame, settings: Settings, notes: list[str]
) -> pl.DataFrame:
    domains = dict(zip(meta["unique_id"], meta["domain"], strict=True))
    specs = {
        uid: settings.forecast.series_thresholds.get(uid) or settings.forecast.thresholds.get(domain, [])
        for uid, domain in domains.items()
    }
    thresholds, unresolved = forecasting.resolve_thresholds(series, specs)
    notes.extend(f"{u}: threshold {s} not set: {why}" for u, s, why in unresolved)
    if thresholds.height == 0 or forecasts.height == 0:
        return pl.DataFrame(schema={c: pl.Utf8 for c in forecasting.EXCEEDANCE_COLUMNS})
    return forecasting.exceedance_probabilities(forecasts, thresholds)


# -- ews backtest ---------------------------------------------------------------------------
def run_backtest(
    wh: Warehouse,
    settings: Settings,
    *,
    run_id: str,
    now: datetime | None = None,
    clock: Clock | None = None,
    unique_ids: Sequence[str] | None = None,
    horizon: int | None = None,
    windows: int | None = None,
    models: Sequence[str] | None = None,
    progress: _Progress = lambda _msg: None,
) -> BacktestSummary:
    """Backtest every candidate on the warehouse's series and store the metrics (one run).

    ``clock``: the command's clock (data up to its replay day; ``now`` stamps the rows);
    default: built from ``settings`` at ``now``.
    """
    clock = Clock.resolve(settings, clock=clock, now=now)
    as_of = clock.cutoff
    meta = read_series_meta(wh, unique_ids)
    if unique_ids is not None:
        unknown = sorted(set(unique_ids) - set(meta["unique_id"].to_list()))
        if unknown:
            raise EWSError(f"unknown series {unknown}", fix="list series with `ews status --json`")
    ids = meta["unique_id"].to_list()
    series = read_observations(wh, ids, before=as_of)
    frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    horizons = {f: horizon for f in set(frequencies.values())} if horizon else dict(settings.forecast.horizon)
    notes: list[str] = []
    bounds = forecasting.bounds_from_meta(meta)
    extra: dict[str, forecasting.ExtraForecaster] = {}
    if settings.chronos.source:
        loaded = load_foundation_models(wh, settings, [settings.chronos.name], notes)
        for name, model in loaded.items():
            extra[name] = _chronos_forecaster(model, settings, bounds=bounds)
    registry = store.read_models(wh)
    domains = dict(zip(meta["unique_id"], meta["domain"], strict=True))
    newest = registry.unique("domain", keep="first", maintain_order=True) if registry.height else registry
    for row in newest.iter_rows(named=True) if newest.height else []:
        domain_ids = {u for u, d in domains.items() if d == row["domain"]}
        if not domain_ids:
            continue
        loaded = load_foundation_models(wh, settings, [row["model_id"]], notes)
        for name, model in loaded.items():
            extra[name] = _chronos_forecaster(model, settings, domain_ids, bounds)
    candidates = tuple(models or settings.forecast.models)
    progress(
        f"backtest: {len(ids)} series, {windows or settings.backtest.windows} windows, "
        f"models {', '.join([*candidates, *extra])}"
    )
    result = forecasting.backtest(
        series,
        frequencies=frequencies,
        horizons=horizons,
        models=candidates,
        windows=windows or settings.backtest.windows,
        step=settings.backtest.step or None,
        max_context=settings.forecast.max_context,
        n_jobs=settings.forecast.n_jobs,
        intervals=settings.forecast.intervals,
        conformal_windows=settings.forecast.conformal_windows,
        ensembles=settings.backtest.ensembles,
        extra=extra,
        bounds=bounds,
        global_options=GLOBAL_OPTIONS,
    )
    notes.extend(f"{u}: {n}" for u, _, n in result.notes.iter_rows())
    # Interval factors per frequency and model, learned on this run's out-of-sample windows and
    # stored with every row, whatever [backtest] calibrate_intervals says (it decides their use).
    scales = forecasting.learn_interval_scales(
        result.forecasts, groups=frequencies, min_points=settings.backtest.calibration_min_points
    )
    factors = {
        (u, m): forecasting.interval_scales_for(scales, group=frequencies[u], model=m)
        for u, m in result.metrics.select("unique_id", "model").iter_rows()
    }
    last = result.forecasts.group_by("unique_id").agg(pl.col("cutoff").max().alias("last_cutoff"))
    metrics = result.metrics.join(last, on="unique_id").with_columns(
        pl.col("unique_id").replace_strict(frequencies).replace_strict(horizons).cast(pl.Int64).alias("horizon"),
        pl.struct("unique_id", "model")
        .map_elements(
            lambda r: (
                json.dumps(result.members_of(r["unique_id"], r["model"]))
                if r["model"].startswith("Ensemble-")
                else None
            ),
            return_dtype=pl.Utf8,
        )
        .alias("members"),
        pl.Series(
            "interval_scales",
            [
                json.dumps(found) if (found := factors.get((u, m))) else None
                for u, m in result.metrics.select("unique_id", "model").iter_rows()
            ],
            dtype=pl.Utf8,
        ),
    )
    metrics = metrics.join(_window_scores_json(result.window_metrics), on=["unique_id", "model"], how="left")
    rows = store.write_backtest(wh, metrics, run_id=run_id, at=clock.now)
    return BacktestSummary(run_id=run_id, metrics=metrics, notes=notes, rows=rows)


def _window_scores_json(window_metrics: pl.DataFrame) -> pl.DataFrame:
    """``unique_id, model, window_scores``: each row's scores per window as the JSON the
    warehouse stores (``backtest_results.window_scores``, migration 19)."""
    if window_metrics.height == 0:
        return pl.DataFrame(schema={"unique_id": pl.Utf8, "model": pl.Utf8, "window_scores": pl.Utf8})
    fields = [c for c in forecasting.WINDOW_COLUMNS if c not in ("unique_id", "model")]
    texts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in window_metrics.sort("unique_id", "model", "window").iter_rows(named=True):
        item = {k: row[k] for k in fields}
        item["cutoff"] = row["cutoff"].isoformat()
        texts.setdefault((row["unique_id"], row["model"]), []).append(item)
    return pl.DataFrame(
        [(u, m, json.dumps(items)) for (u, m), items in texts.items()],
        schema={"unique_id": pl.Utf8, "model": pl.Utf8, "window_scores": pl.Utf8},
        orient="row",
    )


# -- ews model train ------------------------------------------------------------------------
def train_domain_model(
    wh: Warehouse,
    settings: Settings,
    *,
    domain: str,
    now: datetime | None = None,
    clock: Clock | None = None,
    steps: int | None = None,
    progress: _Progress = lambda _msg: None,
) -> dict[str, Any]:
    """Train a vertical Chronos-2 on one domain's series and register it; return its entry.

    ``clock``: the command's clock (data up to its replay day; ``now`` names and stamps the
    model); default: built from ``settings`` at ``now``.
    """
    clock = Clock.resolve(settings, clock=clock, now=now)
    as_of, now = clock.cutoff, clock.now
    meta = read_series_meta(wh).filter(pl.col("domain") == domain)
    if meta.height == 0:
        raise EWSError(
            f"no series of domain {domain!r} in the warehouse",
            fix="load data first (`ews demo`, `ews ingest`), or pick another domain",
        )
    ids = meta["unique_id"].to_list()
    series = read_observations(wh, ids, before=as_of)
    frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    notes: list[str] = []
    base = None
    if settings.chronos.source:
        base = load_foundation_models(wh, settings, [settings.chronos.name], notes).get(settings.chronos.name)
    if base is None:
        notes.append("no base weights reachable: training a small Chronos-2 from scratch")
    hash_now = forecasting.training_data_hash(series)[:10]
    model_id = f"{domain}-chronos2-{hash_now}-{now:%Y%m%d%H%M%S}"
    out_dir = settings.path("models") / model_id
    progress(
        f"training {model_id} on {len(ids)} {domain} series "
        f"({'fine-tuning ' + base.source if base else 'from scratch'})"
    )
    c = settings.chronos
    trained = forecasting.train_vertical(
        series,
        frequencies=frequencies,
        horizons=settings.forecast.horizon,
        output_dir=out_dir,
        name=model_id,
        base=base,
        steps=steps or c.train_steps,
        learning_rate=c.train_learning_rate or None,
        batch_size=c.train_batch_size,
        max_context=c.train_context,
        threads=settings.runtime.threads,
        bounds=forecasting.bounds_from_meta(meta),
    )
    provenance = store.read_training_provenance(wh, trained.series, before=as_of)
    entry = {
        "model_id": model_id,
        "kind": "chronos2",
        "base": trained.base,
        "domain": domain,
        "training_series": trained.series,
        "batch_ids": sorted({b for bs in provenance["batch_ids"].to_list() for b in bs}),
        "data_hash": trained.data_hash,
        "steps": trained.steps,
        "validation": trained.validation,
        "path": str(trained.path),
        "created_at": now,
    }
    store.register_model(wh, entry)
    entry["notes"] = notes + trained.notes
    return entry
