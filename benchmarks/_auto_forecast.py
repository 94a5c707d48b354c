"""The engine's automatic forecasting, as the benchmarks run it without a warehouse.

backtest (rolling origins inside the training part) -> select_by_rule (``choose``: ``[backtest]
choose``, "series" = select_models per series) -> forecast
with the selected model (ensembles combined from the members the backtest chose, weighted ones
with the backtest's inverse-WQL weights). The same steps ``ews backtest`` + ``ews run`` take
(pipelines/forecast_step.py), minus the storage. A global learned model among the candidates
(``LGBMGlobal``) is fitted once per frequency on every series' full training part, the way the
backtest fitted it in each window, and its forecasts are used for the series that need them:
what ``ews run`` does (``pipelines.forecast_step.GlobalFits``). ``bounds``: the series' physical
bounds, applied by every model as in production. ``calibrate``: the chosen forecasts' quantiles
are scaled by the factors learned on the backtest's out-of-sample windows
(:mod:`forecasting.calibration`, per frequency and model), as ``ews run`` does with
``[backtest] calibrate_intervals = true``; ``uncalibrated`` receives the same forecasts before
that step, so one run measures both. ``backtest_result``: a backtest already run on the same
series and candidates (to compare rules on one backtest); ``rules`` receives the rule per
frequency with its held-out figures (:func:`forecasting.decide_rules`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

import forecasting
from core.frames import forecast_columns
from forecasting.calibration import calibrate_intervals, interval_scales_for, learn_interval_scales
from forecasting.ensemble import ensemble_method
from forecasting.global_model import forecast_global
from forecasting.models import GLOBAL_MODELS


def auto_forecast(
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    models: Sequence[str],
    windows: int,
    max_context: int = 1000,
    n_jobs: int = 2,
    criterion: str = "mase",
    margin: float = 0.2,
    ensembles: Sequence[str] = ("median", "weighted"),
    global_options: Mapping[str, Any] | None = None,
    bounds: Mapping[str, forecasting.Bounds] | None = None,
    candidate_forecasts: dict[str, pl.DataFrame] | None = None,
    timings: dict[str, float] | None = None,
    calibrate: bool = True,
    calibration_min_points: int = 50,
    uncalibrated: list[pl.DataFrame] | None = None,
    choose: str = "series",
    backtest_result: forecasting.BacktestResult | None = None,
    rules: list[pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, forecasting.BacktestResult]:
    """(selected forecasts, selections, backtest) for every series.

    ``candidate_forecasts``: when a dict is given, it is filled with every candidate's own
    forecast of the horizon (the statistical and global models on all series, and each
    ensemble with the members the backtest chose), for per-candidate scores. ``timings``:
    filled with the seconds the backtest, the statistical and the global final fits took.
    """
    timings = timings if timings is not None else {}
    start = time.perf_counter()
    bt = backtest_result or forecasting.backtest(
        series,
        frequencies=frequencies,
        horizons=horizons,
        models=models,
        windows=windows,
        max_context=max_context,
        n_jobs=n_jobs,
        ensembles=ensembles,
        global_options=global_options,
        bounds=bounds,
    )
    timings["backtest"] = time.perf_counter() - start
    ids = sorted(series["unique_id"].unique().to_list())
    selections, decided = forecasting.select_by_rule(
        bt.metrics,
        bt.window_metrics,
        rule=choose,
        frequencies=frequencies,
        unique_ids=ids,
        default_model=models[0],
        criterion=criterion,
        margin=margin,
    )
    if rules is not None:
        rules.append(decided)
    chosen = dict(selections.select("unique_id", "model").iter_rows())
    needed: dict[str, tuple[str, ...]] = {}
    for uid, model in chosen.items():
        needed[uid] = tuple(bt.members_of(uid, model) or []) if model.startswith("Ensemble-") else (model,)
    every = candidate_forecasts is not None
    statistical = [m for m in models if m not in GLOBAL_MODELS]
    groups: dict[tuple[str, ...], list[str]] = {}
    for uid, need in needed.items():
        stat = tuple(statistical) if every else tuple(m for m in need if m not in GLOBAL_MODELS)
        if stat:
            groups.setdefault(stat, []).append(uid)
    raw = []
    start = time.perf_counter()
    for need, group in groups.items():
        raw.append(
            forecasting.forecast_statistical(
                series.filter(pl.col("unique_id").is_in(group)),
                frequencies=frequencies,
                horizons=horizons,
                models=need,
                max_context=max_context,
                n_jobs=n_jobs,
                bounds=bounds,
            ).forecasts.select(forecast_columns())
        )
    timings["final_statistical"] = time.perf_counter() - start
    for name in (m for m in models if m in GLOBAL_MODELS):
        if every or any(name in need for need in needed.values()):
            start = time.perf_counter()
            found = forecast_global(
                series,
                frequencies=frequencies,
                horizons=horizons,
                max_context=max_context,
                name=name,
                bounds=bounds,
                **dict(global_options or {}),
            )
            timings[f"final_{name}"] = time.perf_counter() - start
            raw.append(found.forecasts.select(forecast_columns()))
    forecasts = pl.concat(raw)
    out = []
    for method in ensembles:
        name = forecasting.ensemble_name(method)
        members = {u: list(needed[u]) for u, m in chosen.items() if m == name}
        if every:
            members = {u: m for u in ids if (m := bt.members_of(u, name)) and len(m) >= 2}
        if not members:
            continue
        combined = _combine(forecasts, members, method, bt)
        if every and candidate_forecasts is not None:
            candidate_forecasts[name] = combined.select(forecast_columns())
        picked = [u for u, m in chosen.items() if m == name]
        out.append(combined.filter(pl.col("unique_id").is_in(picked)))
    if every and candidate_forecasts is not None:
        for (model,), part in forecasts.group_by("model"):
            candidate_forecasts[str(model)] = part
    single = [u for u, m in chosen.items() if not m.startswith("Ensemble-")]
    # a chosen model whose final fit fell back (e.g. a shorter season) keeps its fallback's rows
    mine = forecasts.join(
        pl.DataFrame(
            {"unique_id": single, "model": [chosen[u] for u in single]},
            schema={"unique_id": pl.Utf8, "model": pl.Utf8},
        ),
        on=["unique_id", "model"],
        how="semi",
    )
    missing = set(single) - set(mine["unique_id"].unique().to_list())
    if missing:
        first = (
            forecasts.filter(pl.col("unique_id").is_in(list(missing)))
            .group_by("unique_id")
            .agg(pl.col("model").first())
        )
        mine = pl.concat([mine, forecasts.join(first, on=["unique_id", "model"], how="semi")])
    out.append(mine)
    result = pl.concat([o.select(forecast_columns()) for o in out]).sort("unique_id", "ds")
    if uncalibrated is not None:
        uncalibrated.append(result)
    if calibrate:
        scales = learn_interval_scales(bt.forecasts, groups=frequencies, min_points=calibration_min_points)
        per_series = {u: interval_scales_for(scales, group=frequencies[u], model=m) for u, m in chosen.items()}
        result, _ = calibrate_intervals(result, per_series, bounds=bounds)
        selections = selections.with_columns(
            pl.Series(
                "interval_scales",
                [json.dumps(per_series[u]) if per_series.get(u) else None for u in selections["unique_id"]],
                dtype=pl.Utf8,
            )
        )
    return result, selections, bt


def _combine(
    forecasts: pl.DataFrame, members: dict[str, list[str]], method: str, bt: forecasting.BacktestResult
) -> pl.DataFrame:
    weights = None
    if ensemble_method(forecasting.ensemble_name(method)) == "weighted":
        weights = {}
        for uid, ms in members.items():
            weights.update(forecasting.inverse_loss_weights(bt.metrics.filter(pl.col("unique_id") == uid), members=ms))
    return forecasting.combine_forecasts(
        forecasts.filter(pl.col("unique_id").is_in(list(members))), members=members, method=method, weights=weights
    )
