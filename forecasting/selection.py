"""Choosing each series' production model from its backtest, and saying why.

Rule (:func:`select_models`): per series, the candidates are the models scored on the
series' full set of backtest windows; the winner is the one with the lowest ``criterion``
(MASE by default, ties broken by WQL). Nothing else is ever promoted:

- with a ``margin`` (``[backtest] margin``), a challenger replaces the configured default
  model only when it beats the default's score on the same windows by more than that share;
  otherwise the default, itself scored in the backtest, is kept and the reason says by how
  little the challenger won (a few noisy windows should not flip a series' model);

- a series **without** a backtest gets the configured default model, and the reason says
  so ("no backtest yet") so it is visibly not a winner;
- when the winner is not available now (e.g. Chronos weights were removed), the best
  *available* candidate of the same backtest is used and the reason names both.

Out: one row per series: ``unique_id, model, criterion, score, runner_up, runner_up_score,
baseline_score, windows, reason`` (``score`` is the winner's criterion value, ``baseline_score``
SeasonalNaive's on the same windows when it was scored). When ``metrics`` carries a ``run_id``
column (stored backtests), the reason names the backtest run each series was judged on; when it
carries ``members`` (the JSON list an ensemble row combines, :func:`forecasting.backtest`), the
reason of a series that chose an ensemble names its members and how they were chosen.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

import polars as pl

from core.errors import FrameError

__all__ = ["SELECTION_COLUMNS", "select_models"]

SELECTION_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "model",
    "criterion",
    "score",
    "runner_up",
    "runner_up_score",
    "baseline_score",
    "windows",
    "reason",
)
_CRITERIA = ("mase", "smape", "wql")
#: How an ensemble's members were chosen, for the selection's reason.
_HOW = {
    "Ensemble-top2": " (the best 2 candidates by backtest MASE)",
    "Ensemble-top3": " (the best 3 candidates by backtest MASE)",
    "Ensemble-statglobal": " (the best statistical candidate by backtest MASE and the global model)",
    "Ensemble-weighted": " (weights: inverse backtest WQL)",
}


def select_models(
    metrics: pl.DataFrame,
    *,
    unique_ids: Sequence[str],
    default_model: str,
    criterion: str = "mase",
    available: Collection[str] | None = None,
    backtest_id: str | None = None,
    margin: float = 0.0,
) -> pl.DataFrame:
    """The production model of every id in ``unique_ids`` (rule in the module docstring)."""
    if not 0.0 <= margin < 1.0:
        raise FrameError(f"selection margin {margin} outside [0, 1)", fix="use e.g. 0.05 (5%)")
    if criterion not in _CRITERIA:
        raise FrameError(f"unknown selection criterion {criterion!r}", fix=f"use one of {_CRITERIA}")
    rows = []
    by_id = {uid: part for (uid,), part in metrics.group_by("unique_id")} if metrics.height else {}
    for uid in unique_ids:
        where = f" {backtest_id}" if backtest_id else ""
        part = by_id.get(uid)
        if part is not None and "run_id" in part.columns:
            where = f" {part.item(0, 'run_id')}"
        if part is None:
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    None,
                    None,
                    None,
                    None,
                    0,
                    f"no backtest yet: configured default {default_model}, not a backtest winner (run `ews backtest`)",
                )
            )
            continue
        full = part.filter(pl.col("windows") == part["windows"].max())
        ranked = (
            full.with_columns(pl.col(criterion).fill_nan(None))
            .drop_nulls(criterion)
            .sort(criterion, "wql", "model", nulls_last=True)
        )
        if ranked.height == 0:
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    None,
                    None,
                    None,
                    None,
                    0,
                    f"backtest{where} has no finite {criterion} for this series "
                    f"(constant history?): configured default {default_model}",
                )
            )
            continue
        baseline = full.filter(pl.col("model") == "SeasonalNaive")
        base_score = baseline.item(0, criterion) if baseline.height else None
        windows = int(ranked.item(0, "windows"))
        winner = ranked.row(0, named=True)
        usable = ranked if available is None else ranked.filter(pl.col("model").is_in(list(available)))
        if usable.height == 0:
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    None,
                    None,
                    None,
                    base_score,
                    windows,
                    f"backtest{where} winner {winner['model']} and every other candidate "
                    f"are unavailable now: configured default {default_model}",
                )
            )
            continue
        chosen = usable.row(0, named=True)
        runner = usable.row(1, named=True) if usable.height > 1 else None
        incumbent = usable.filter(pl.col("model") == default_model)
        if (
            margin
            and chosen["model"] != default_model
            and incumbent.height
            and chosen[criterion] > (1.0 - margin) * incumbent.item(0, criterion)
        ):
            kept = incumbent.row(0, named=True)
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    kept[criterion],
                    chosen["model"],
                    chosen[criterion],
                    base_score,
                    windows,
                    f"default {default_model} kept: best challenger {chosen['model']} "
                    f"({chosen[criterion]:.4g}) beat its {criterion.upper()} "
                    f"{kept[criterion]:.4g} in backtest{where} by less than the "
                    f"{margin:.0%} margin over {windows} window(s)",
                )
            )
            continue
        text = f"won backtest{where} on {criterion.upper()} {chosen[criterion]:.4g} over {windows} window(s)"
        if runner is not None:
            text += f"; runner-up {runner['model']} {runner[criterion]:.4g}"
        if base_score is not None:
            text += f"; SeasonalNaive {base_score:.4g}"
        listed = chosen.get("members")
        if chosen["model"].startswith("Ensemble-") and listed:
            text += f"; combines {', '.join(json.loads(listed))}{_HOW.get(chosen['model'], '')}"
        if chosen["model"] != winner["model"]:
            text = (
                f"backtest{where} winner {winner['model']} ({winner[criterion]:.4g}) is not "
                f"available now; best available candidate of that backtest: " + text
            )
        rows.append(
            _row(
                uid,
                chosen["model"],
                criterion,
                chosen[criterion],
                None if runner is None else runner["model"],
                None if runner is None else runner[criterion],
                base_score,
                windows,
                text,
            )
        )
    return pl.DataFrame(
        rows,
        schema={
            "unique_id": pl.Utf8,
            "model": pl.Utf8,
            "criterion": pl.Utf8,
            "score": pl.Float64,
            "runner_up": pl.Utf8,
            "runner_up_score": pl.Float64,
            "baseline_score": pl.Float64,
            "windows": pl.Int64,
            "reason": pl.Utf8,
        },
        orient="row",
    )


def _row(
    uid: str,
    model: str,
    criterion: str,
    score: float | None,
    runner: str | None,
    runner_score: float | None,
    base: float | None,
    windows: int,
    reason: str,
) -> tuple:
    return (uid, model, criterion, score, runner, runner_score, base, windows, reason)
