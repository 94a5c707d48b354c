"""The engine's automatic forecasting, as the benchmarks run it without a warehouse.

backtest (rolling origins inside the training part) -> select_models per series -> forecast
with the selected model (ensembles combined from their members, weighted ones with the
backtest's inverse-WQL weights). The same steps ``ews backtest`` + ``ews run`` take
(pipelines/forecast_step.py), minus the storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

import forecasting
from core.frames import forecast_columns


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
) -> tuple[pl.DataFrame, pl.DataFrame, forecasting.BacktestResult]:
    """(selected forecasts, selections, backtest) for every series."""
    bt = forecasting.backtest(
        series,
        frequencies=frequencies,
        horizons=horizons,
        models=models,
        windows=windows,
        max_context=max_context,
        n_jobs=n_jobs,
    )
    ids = sorted(series["unique_id"].unique().to_list())
    selections = forecasting.select_models(
        bt.metrics, unique_ids=ids, default_model=models[0], criterion=criterion, margin=margin
    )
    chosen = dict(selections.select("unique_id", "model").iter_rows())
    needed: dict[str, tuple[str, ...]] = {}
    for uid, model in chosen.items():
        needed[uid] = tuple(bt.members.get(uid, [])) if model.startswith("Ensemble-") else (model,)
    groups: dict[tuple[str, ...], list[str]] = {}
    for uid, need in needed.items():
        groups.setdefault(need, []).append(uid)
    raw = []
    for need, group in groups.items():
        raw.append(
            forecasting.forecast_statistical(
                series.filter(pl.col("unique_id").is_in(group)),
                frequencies=frequencies,
                horizons=horizons,
                models=need,
                max_context=max_context,
                n_jobs=n_jobs,
            ).forecasts
        )
    forecasts = pl.concat(raw)
    out = []
    for method in ("median", "weighted"):
        name = forecasting.ensemble_name(method)
        members = {u: list(needed[u]) for u, m in chosen.items() if m == name}
        if not members:
            continue
        weights = None
        if method == "weighted":
            weights = {}
            for uid, ms in members.items():
                weights.update(
                    forecasting.inverse_loss_weights(bt.metrics.filter(pl.col("unique_id") == uid), members=ms)
                )
        out.append(
            forecasting.combine_forecasts(
                forecasts.filter(pl.col("unique_id").is_in(list(members))),
                members=members,
                method=method,
                weights=weights,
            )
        )
    single = [u for u, m in chosen.items() if not m.startswith("Ensemble-")]
    out.append(forecasts.filter(pl.col("unique_id").is_in(single)))
    return pl.concat([o.select(forecast_columns()) for o in out]).sort("unique_id", "ds"), selections, bt
