"""Rolling-origin backtests: every candidate model replayed over past windows, then scored.

Contract of :func:`backtest`:

- in: the long series frame, frequencies and horizons as for
  :func:`forecasting.forecast_statistical`, the ``models`` to compare (statistical ones and the
  global learned ones of :data:`forecasting.models.GLOBAL_MODELS`, which are refitted across
  all the series in every window, options in ``global_options``), the number
  of ``windows`` and the ``step`` between origins (grid steps per frequency, default the
  horizon, so windows do not overlap), and optionally ``extra`` forecasters (Chronos, a
  trained vertical model): callables ``(train_series, frequencies, horizons) -> forecast
  frame`` whose ``model`` column names them;
- out: a :class:`BacktestResult`: ``forecasts`` (``unique_id, cutoff, ds, model, y, mean,
  q05 ... q95``: every scored step), ``metrics`` (:func:`forecasting.metrics.score_forecasts`,
  one row per series and model, with ``members``: the JSON list an ensemble row combines in
  production, null for other rows), ``members`` (the models each series' median and weighted
  ensembles combine), ``ensemble_members`` (per ensemble and series, the members production
  combines: for top-k and statglobal, those ranked best over all windows), ``window_metrics``
  (:func:`forecasting.metrics.score_windows`: the same scores per window, ``window`` 0 the
  oldest origin, so they can be pooled across series or held out window by window:
  :mod:`forecasting.selection`'s rules) and ``notes``.

Each series is put on its grid (:mod:`forecasting.regularise`); window ``w`` of ``W`` cuts the
grid ``h + (W - 1 - w) * step`` points before its end: the models see the observations up to
the cut (at most ``max_context`` of them), and are scored on the next ``h`` grid points that
hold a real observation (forward-filled gaps are not scored). A window whose training part
would be shorter than ``min_train`` points is skipped for that series (noted).

With ``bounds`` (physical bounds per series, :mod:`forecasting.bounds`) every window
forecasts the bounded series on the scale that keeps them inside, with the map chosen on that
window's training part, so model selection scores the forecasts production will make. Extra
forecasters get the training frame as it is and apply the bounds themselves (the engine's
Chronos forecaster passes them to :func:`forecasting.forecast_chronos`).

Ensembles are candidates like any model and are scored on the same windows. Their members
are fixed per series before scoring (the non-baseline models that ran in every window), and
the ``weighted`` ensemble's weights in window ``w`` come only from windows before ``w``
(equal weights in the first), so no ensemble sees the actuals it is scored on. The same holds
for the combinations chosen on the backtest: ``top2``/``top3`` combine, in window ``w``, the
members with the lowest MASE over the windows before ``w`` (the first members in model order
in the first window), and ``statglobal`` the best statistical member so ranked with the global
model; in production (``ensemble_members``) they combine those ranked best over all windows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core.errors import FrameError, ModelError
from core.frames import FREQUENCIES, forecast_columns, validate_series
from forecasting.bounds import Bounds
from forecasting.ensemble import (
    TOP_K,
    combine_forecasts,
    ensemble_name,
    inverse_loss_weights,
    statglobal_members,
    top_members,
)
from forecasting.global_model import forecast_global
from forecasting.metrics import pool_windows, score_forecasts, score_windows, seasonal_scale
from forecasting.models import BASELINES, GLOBAL_MODELS, check_candidates
from forecasting.regularise import regularise
from forecasting.statistical import forecast_statistical

__all__ = ["BacktestResult", "ExtraForecaster", "backtest"]

#: A forecaster run alongside the statistical models: (train, frequencies, horizons) -> forecasts.
ExtraForecaster = Callable[[pl.DataFrame, Mapping[str, str], Mapping[str, int]], pl.DataFrame]


@dataclass(frozen=True)
class BacktestResult:
    """Scored backtest forecasts, metrics per series and model, ensemble members, notes."""

    forecasts: pl.DataFrame
    metrics: pl.DataFrame
    members: dict[str, list[str]]
    notes: pl.DataFrame
    windows: int
    horizons: dict[str, int]
    ensemble_members: dict[str, dict[str, list[str]]]
    #: Wall seconds per candidate over all windows ("statistical": its models run in one call).
    seconds: dict[str, float] = field(default_factory=dict)
    #: Scores per series, model and window (:data:`forecasting.metrics.WINDOW_COLUMNS`).
    window_metrics: pl.DataFrame = field(default_factory=pl.DataFrame)

    def members_of(self, unique_id: str, model: str) -> list[str] | None:
        """The members production combines for ``model`` on one series (None: not an ensemble)."""
        if not model.startswith("Ensemble-"):
            return None
        return self.ensemble_members.get(model, {}).get(unique_id, self.members.get(unique_id))


def backtest(
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    models: Sequence[str] = ("AutoETS", "AutoTheta", "SeasonalNaive", "Naive"),
    windows: int = 3,
    step: Mapping[str, int] | None = None,
    max_context: int = 1000,
    min_train: int = 10,
    n_jobs: int = 2,
    intervals: str = "model",
    conformal_windows: int = 2,
    ensembles: Sequence[str] = ("median", "weighted"),
    extra: Mapping[str, ExtraForecaster] | None = None,
    bounds: Mapping[str, Bounds] | None = None,
    global_options: Mapping[str, Any] | None = None,
) -> BacktestResult:
    """Replay and score every model over ``windows`` rolling origins (module docstring).

    ``global_options``: keyword options of :func:`forecasting.global_model.forecast_global`
    (``strategy``, ``conformal_windows``, ``n_jobs``, ``params``) for the global candidates.
    """
    frame = validate_series(series)
    names = check_candidates(tuple(models))
    if not isinstance(windows, int) or windows < 1:
        raise FrameError(f"windows={windows!r}, needs an integer >= 1", fix="pass windows=3")
    ids = frame.get_column("unique_id").unique().sort().to_list()
    missing = [uid for uid in ids if uid not in frequencies]
    if missing:
        raise FrameError(
            f"{len(missing)} series have no frequency, e.g. {missing[:5]}",
            fix="pass frequencies={unique_id: alias} for every series",
        )
    steps = {f: (step or {}).get(f, horizons.get(f, 0)) for f in set(frequencies.values())}
    notes: list[tuple[str, str, str]] = []
    cuts = _origins(frame, frequencies, horizons, steps, windows, max_context, min_train, notes)
    if cuts.height == 0:
        raise FrameError(
            f"no series is long enough for a {windows}-window backtest (min_train={min_train})",
            fix="pass fewer windows or a shorter horizon, or load more history",
        )
    scored: list[pl.DataFrame] = []
    seconds: dict[str, float] = {}
    for w in range(windows):
        window = cuts.filter(pl.col("window") == w)
        if window.height == 0:
            continue
        part = _one_window(
            frame,
            window,
            frequencies,
            horizons,
            names,
            max_context,
            n_jobs,
            intervals,
            conformal_windows,
            extra or {},
            notes,
            bounds,
            dict(global_options or {}),
            seconds,
        )
        if part.height:
            scored.append(part)
    forecasts = pl.concat(scored, how="vertical_relaxed") if scored else pl.DataFrame()
    scales = cuts.select("unique_id", "cutoff", "scale", "window")
    members = _members(forecasts, names, extra or {}, cuts)
    chosen: dict[str, dict[str, list[str]]] = {}
    if ensembles and members:
        started = time.perf_counter()
        combined, chosen = _ensemble_forecasts(forecasts, members, ensembles, scales)
        forecasts = pl.concat([forecasts, *combined], how="vertical_relaxed")
        seconds["ensembles"] = time.perf_counter() - started
    by_window = score_windows(forecasts, scales) if forecasts.height else pl.DataFrame()
    metrics = pool_windows(by_window) if by_window.height else pl.DataFrame()
    if metrics.height:
        listed = {(u, name): json.dumps(m) for name, per in chosen.items() for u, m in per.items()}
        metrics = metrics.with_columns(
            pl.Series(
                "members",
                [listed.get((u, m)) for u, m in metrics.select("unique_id", "model").iter_rows()],
                dtype=pl.Utf8,
            )
        )
    return BacktestResult(
        forecasts=forecasts.sort("unique_id", "model", "cutoff", "ds") if forecasts.height else forecasts,
        metrics=metrics,
        members=members,
        notes=pl.DataFrame(
            notes, schema={"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8}, orient="row"
        ).unique(maintain_order=True),
        windows=windows,
        horizons={f: horizons[f] for f in set(frequencies[u] for u in ids)},
        ensemble_members=chosen,
        seconds={k: round(v, 2) for k, v in seconds.items()},
        window_metrics=by_window,
    )


def _origins(
    frame: pl.DataFrame,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    steps: Mapping[str, int],
    windows: int,
    max_context: int,
    min_train: int,
    notes: list[tuple[str, str, str]],
) -> pl.DataFrame:
    """Per series and window: the cutoff time, the actuals to score, the MASE scale."""
    rows = []
    actual_parts = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        frequency = frequencies[uid]
        h, st = horizons[frequency], steps[frequency]
        context = max_context + (windows - 1) * st + h
        grid = regularise(
            part.get_column("ds").to_numpy(), part.get_column("y").to_numpy(), frequency=frequency, max_context=context
        )
        n = len(grid.y)
        for w in range(windows):
            cut = n - h - (windows - 1 - w) * st
            if cut < min_train:
                notes.append(
                    (
                        uid,
                        "none",
                        f"window {w + 1}/{windows} skipped: {max(cut, 0)} training points < min_train {min_train}",
                    )
                )
                continue
            test = slice(cut, cut + h)
            observed = grid.observed[test]
            if not observed.any():
                continue
            train_y = grid.y[max(0, cut - max_context) : cut]
            rows.append((uid, w, grid.ds[cut - 1].to_pydatetime(), seasonal_scale(train_y, FREQUENCIES[frequency])))
            actual_parts.append(
                pl.DataFrame(
                    {
                        "unique_id": uid,
                        "cutoff": grid.ds[cut - 1].to_pydatetime(),
                        "ds": grid.ds[test][observed].to_numpy(),
                        "y": grid.y[test][observed],
                    }
                )
            )
    cuts = pl.DataFrame(
        rows,
        schema={"unique_id": pl.Utf8, "window": pl.Int64, "cutoff": pl.Datetime("us"), "scale": pl.Float64},
        orient="row",
    )
    if actual_parts:
        actuals = pl.concat(actual_parts).with_columns(
            pl.col("ds").cast(pl.Datetime("us")), pl.col("cutoff").cast(pl.Datetime("us"))
        )
        cuts = cuts.join(
            actuals.group_by("unique_id", "cutoff").agg(pl.struct("ds", "y").alias("actuals")),
            on=["unique_id", "cutoff"],
        )
    return cuts


def _one_window(
    frame: pl.DataFrame,
    window: pl.DataFrame,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    names: tuple[str, ...],
    max_context: int,
    n_jobs: int,
    intervals: str,
    conformal_windows: int,
    extra: Mapping[str, ExtraForecaster],
    notes: list[tuple[str, str, str]],
    bounds: Mapping[str, Bounds] | None,
    global_options: dict[str, Any],
    seconds: dict[str, float],
) -> pl.DataFrame:
    """Forecast every model from this window's cutoffs; join the actuals."""
    cutoffs = window.select("unique_id", "cutoff")
    train = frame.join(cutoffs, on="unique_id").filter(pl.col("ds") <= pl.col("cutoff")).select("unique_id", "ds", "y")
    parts = []
    statistical = tuple(n for n in names if n not in GLOBAL_MODELS)
    if statistical:
        started = time.perf_counter()
        result = forecast_statistical(
            train,
            frequencies=frequencies,
            horizons=horizons,
            models=statistical,
            max_context=max_context,
            n_jobs=n_jobs,
            intervals=intervals,
            conformal_windows=conformal_windows,
            bounds=bounds,
        )
        notes.extend(result.notes.rows())
        parts.append(result.forecasts.select(forecast_columns()))
        seconds["statistical"] = seconds.get("statistical", 0.0) + time.perf_counter() - started
    for name in (n for n in names if n in GLOBAL_MODELS):
        started = time.perf_counter()
        try:
            found = forecast_global(
                train,
                frequencies=frequencies,
                horizons=horizons,
                max_context=max_context,
                bounds=bounds,
                name=name,
                **global_options,
            )
        except ModelError as exc:  # every series too short: the statistical candidates remain
            notes.append(("*", name, f"{name} not fitted in a backtest window: {exc}"))
            continue
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        notes.extend(found.notes.rows())
        parts.append(found.forecasts.select(forecast_columns()))
    for name, forecaster in extra.items():
        try:
            parts.append(forecaster(train, frequencies, horizons).select(forecast_columns()))
        except Exception as exc:  # noqa: BLE001 - an extra model failing must not sink the backtest
            notes.append(("*", name, f"{name} failed in a backtest window: {type(exc).__name__}: {exc}"))
    actuals = window.select("unique_id", "cutoff", "actuals").explode("actuals").unnest("actuals")
    forecasts = pl.concat(parts, how="vertical_relaxed")
    return actuals.join(forecasts, on=["unique_id", "ds"], how="inner")


def _members(
    forecasts: pl.DataFrame, names: tuple[str, ...], extra: Mapping[str, ExtraForecaster], cuts: pl.DataFrame
) -> dict[str, list[str]]:
    """Per series, the non-baseline models that forecast in every one of its windows."""
    if forecasts.height == 0:
        return {}
    candidates = [n for n in (*names, *extra) if n not in BASELINES]
    windows = cuts.group_by("unique_id").agg(pl.len().alias("n_windows"))
    ran = (
        forecasts.filter(pl.col("model").is_in(candidates))
        .group_by("unique_id", "model")
        .agg(pl.col("cutoff").n_unique().alias("n"))
        .join(windows, on="unique_id")
        .filter(pl.col("n") == pl.col("n_windows"))
    )
    out: dict[str, list[str]] = {}
    for (uid,), rows in ran.group_by("unique_id", maintain_order=True):
        models = sorted(
            rows["model"].to_list(), key=lambda m: (*names, *extra).index(m) if m in (*names, *extra) else 99
        )
        if len(models) >= 2:  # an ensemble of one model is that model
            out[uid] = models
    return out


def _ensemble_forecasts(
    forecasts: pl.DataFrame, members: dict[str, list[str]], methods: Sequence[str], scales: pl.DataFrame
) -> tuple[list[pl.DataFrame], dict[str, dict[str, list[str]]]]:
    """Ensemble forecasts per window, and the members each ensemble combines in production.

    Weighted ones and the combinations chosen on the backtest (top-k, statglobal) use only
    earlier windows' scores in a window; production members come from all windows.
    """
    out = []
    keys = ("unique_id", "cutoff", "ds")
    actual = forecasts.select("unique_id", "cutoff", "ds", "y").unique()
    cutoffs = forecasts.get_column("cutoff").unique().sort().to_list()
    final_metrics = score_forecasts(forecasts, scales)
    production: dict[str, dict[str, list[str]]] = {}
    for method in methods:
        name = ensemble_name(method)
        if method == "median":
            combined = combine_forecasts(forecasts, members=members, method="median", keys=keys)
            production[name] = members
        else:
            parts = []
            for cutoff in cutoffs:
                past = forecasts.filter(pl.col("cutoff") < cutoff)
                this = forecasts.filter(pl.col("cutoff") == cutoff)
                present = set(this.get_column("unique_id").to_list())
                here = {u: m for u, m in members.items() if u in present}
                if not here:
                    continue
                past_metrics = score_forecasts(past, scales) if past.height else None
                if method == "weighted":
                    weights = _weights(past_metrics, here)
                    parts.append(combine_forecasts(this, members=here, method="weighted", weights=weights, keys=keys))
                    continue
                chosen = _chosen_members(method, past_metrics, here)
                if chosen:
                    parts.append(combine_forecasts(this, members=chosen, method=method, keys=keys))
            combined = pl.concat(parts) if parts else pl.DataFrame()
            production[name] = members if method == "weighted" else _chosen_members(method, final_metrics, members)
        if combined.height:
            out.append(
                combined.join(actual, on=list(keys)).select(forecasts.columns).with_columns(pl.lit(name).alias("model"))
            )
    return out, production


def _chosen_members(
    method: str, metrics: pl.DataFrame | None, members: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """Per series, the members a top-k or statglobal ensemble combines given these scores."""
    scores: dict[str, dict[str, float]] = {}
    if metrics is not None and metrics.height:
        for uid, model, mase in metrics.select("unique_id", "model", "mase").iter_rows():
            if mase is not None:
                scores.setdefault(uid, {})[model] = mase
    out = {}
    for uid, models in members.items():
        if method in TOP_K:
            if len(models) < TOP_K[method]:
                continue  # fewer members than k: the median ensemble already is this one
            picked = top_members(scores.get(uid, {}), models, TOP_K[method])
        else:
            picked = statglobal_members(scores.get(uid, {}), models, GLOBAL_MODELS)
        if len(picked) >= 2:
            out[uid] = picked
    return out


def _weights(past: pl.DataFrame | None, members: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    weights = {u: dict.fromkeys(m, 1.0 / len(m)) for u, m in members.items()}
    if past is None or past.height == 0:
        return weights
    for uid, models in members.items():
        found = inverse_loss_weights(past.filter(pl.col("unique_id") == uid), members=models)
        if uid in found:
            weights[uid] = found[uid]
    return weights
