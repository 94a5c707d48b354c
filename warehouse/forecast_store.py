"""Forecasting tables: the forecasts, and (migration 4) model registry, backtests, selections,
exceedance.

Functions take an open :class:`~warehouse.store.Warehouse` and frames; every value is a bound
parameter and every write an idempotent upsert (an identical row is never rewritten).

- ``forecasts``: per series, cutoff (last observed time), model and step, the mean and the
  quantiles;
- ``models``: one row per trained vertical model: what it was trained on (series and the
  ledger batch ids their observations came from, a hash of the exact data), how long, how it
  did on held-out data, and where its weights are;
- ``backtest_results``: metrics per backtest run, series and model, kept for every run so
  accuracy can be watched over time; ``members`` lists an ensemble's models,
  ``interval_scales`` the model's interval calibration factors learned on the run (JSON),
  ``window_scores`` its scores per backtest window (JSON, migration 19;
  :func:`read_latest_window_scores` reads them as a frame);
- ``model_selections``: per run and series, the production model, why, and the basis it was
  made on (frequency and candidate settings; a cycle keeps a selection while that holds) and
  the interval calibration factors its forecasts get (``interval_scales``, null = none);
- ``exceedance``: per series, forecast cutoff, threshold and horizon step, the probability
  that the step is beyond the threshold and that the path has crossed it by then.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl

from warehouse.series import known_before
from warehouse.store import Warehouse

__all__ = [
    "drop_unselected_forecasts",
    "write_backtest",
    "read_latest_backtest",
    "read_latest_window_scores",
    "read_backtest_history",
    "write_selections",
    "read_latest_selections",
    "read_model_states",
    "upsert_model_states",
    "write_exceedance",
    "read_latest_exceedance",
    "register_model",
    "read_models",
    "read_training_provenance",
    "write_forecasts",
    "read_latest_forecasts",
]

_BACKTEST_KEYS = ("run_id", "unique_id", "model")
_BACKTEST_VALUES = (
    "horizon",
    "windows",
    "points",
    "mase",
    "smape",
    "wql",
    "coverage_80",
    "coverage_90",
    "members",
    "interval_scales",
    "window_scores",
    "last_cutoff",
    "created_at",
)
_SELECTION_KEYS = ("run_id", "unique_id")
_SELECTION_VALUES = (
    "model",
    "backtest_run_id",
    "criterion",
    "score",
    "runner_up",
    "runner_up_score",
    "baseline_score",
    "windows",
    "members",
    "reason",
    "basis",
    "ets_form",
    "interval_scales",
    "decided_at",
)
_EXCEEDANCE_KEYS = ("unique_id", "cutoff", "threshold", "ds")
_EXCEEDANCE_VALUES = ("run_id", "model", "threshold_value", "direction", "p_step_exceed", "p_path_cross")
_MODEL_KEYS = ("model_id",)
_MODEL_VALUES = (
    "kind",
    "base",
    "domain",
    "training_series",
    "batch_ids",
    "data_hash",
    "steps",
    "validation",
    "path",
    "created_at",
)


def write_backtest(wh: Warehouse, metrics: pl.DataFrame, *, run_id: str, at: datetime) -> int:
    """Store one backtest run's metrics (``unique_id, model, horizon, windows, points, mase,
    smape, wql, coverage_80, coverage_90, members, interval_scales, window_scores, last_cutoff``;
    a frame without ``interval_scales`` or ``window_scores`` stores none)."""
    for column in ("interval_scales", "window_scores"):
        if column not in metrics.columns:
            metrics = metrics.with_columns(pl.lit(None, dtype=pl.Utf8).alias(column))
    return wh._upsert_rows(
        "backtest_results", metrics, keys=_BACKTEST_KEYS, values=_BACKTEST_VALUES, run_id=run_id, created_at=at
    )


def read_latest_backtest(wh: Warehouse, unique_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Each series' metrics from the newest backtest run that covered it."""
    sql = (
        "SELECT * FROM backtest_results "
        "WHERE (? IS NULL OR unique_id IN (SELECT unnest(?))) "
        "QUALIFY run_id = arg_max(run_id, created_at) OVER (PARTITION BY unique_id) "
        "ORDER BY unique_id, model"
    )
    ids = None if unique_ids is None else list(unique_ids)
    return wh._frame(sql, [ids, ids])


#: Fields of one window in ``backtest_results.window_scores`` and their types.
_WINDOW_FIELDS: dict[str, Any] = {
    "window": pl.Int64,
    "cutoff": pl.Datetime("us"),
    "points": pl.Int64,
    "abs_y": pl.Float64,
    "ql_sum": pl.Float64,
    "mase": pl.Float64,
    "smape": pl.Float64,
    "wql": pl.Float64,
    "coverage_80": pl.Float64,
    "coverage_90": pl.Float64,
}


def read_latest_window_scores(wh: Warehouse, unique_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """The per-window scores of each series' newest backtest run: ``run_id, unique_id, model``
    and one row per window (:data:`_WINDOW_FIELDS`). Rows stored without them (before
    migration 19) are left out."""
    ids = None if unique_ids is None else list(unique_ids)
    stored = wh._frame(
        "SELECT run_id, unique_id, model, window_scores FROM backtest_results "
        "WHERE (? IS NULL OR unique_id IN (SELECT unnest(?))) "
        "QUALIFY run_id = arg_max(run_id, created_at) OVER (PARTITION BY unique_id) "
        "ORDER BY unique_id, model",
        [ids, ids],
    )
    rows = []
    for run_id, uid, model, text in stored.iter_rows() if stored.height else []:
        for item in json.loads(text) if text else []:
            rows.append(
                {"run_id": run_id, "unique_id": uid, "model": model}
                | {k: item.get(k) for k in _WINDOW_FIELDS if k != "cutoff"}
                | {"cutoff": datetime.fromisoformat(item["cutoff"])}
            )
    schema = {"run_id": pl.Utf8, "unique_id": pl.Utf8, "model": pl.Utf8} | _WINDOW_FIELDS
    return pl.DataFrame(rows, schema=schema)


def read_backtest_history(wh: Warehouse, unique_id: str) -> pl.DataFrame:
    """Every stored backtest result of one series, newest first (accuracy over time)."""
    return wh._frame(
        "SELECT * FROM backtest_results WHERE unique_id = ? ORDER BY created_at DESC, model",
        [unique_id],
    )


def drop_unselected_forecasts(wh: Warehouse, chosen: pl.DataFrame) -> int:
    """Delete forecasts at the given ``(unique_id, cutoff)`` made by a model other than the
    chosen one (``chosen``: unique_id, cutoff, model), so each cutoff keeps one model."""
    if chosen.height == 0:
        return 0
    with wh._registered("chosen_models", chosen):
        return wh._execute(
            "DELETE FROM forecasts f USING chosen_models c WHERE f.unique_id = c.unique_id "
            "AND f.cutoff = c.cutoff AND f.model <> c.model"
        )[0][0]


#: The runs whose rows are not a decision of record: failed, or aborted (their process died).
_UNFINISHED_RUNS = "SELECT run_id FROM runs WHERE status IN ('failed', 'aborted')"


def write_selections(wh: Warehouse, selections: pl.DataFrame, *, run_id: str, at: datetime) -> int:
    """Store the production model of each series for this run, with its reason.

    A selection that a failed or aborted run made for the same series goes (chunks commit on
    their own, issue 21: the cycle that takes the series again decides for that run)."""
    if selections.height:
        wh._with_frame(
            "DELETE FROM model_selections WHERE unique_id IN (SELECT unique_id FROM incoming) "
            f"AND run_id IN ({_UNFINISHED_RUNS})",
            selections.select("unique_id"),
        )
    return wh._upsert_rows(
        "model_selections", selections, keys=_SELECTION_KEYS, values=_SELECTION_VALUES, run_id=run_id, decided_at=at
    )


def read_latest_selections(wh: Warehouse, unique_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Each series' most recent selection (made by a run that did not fail or abort: the
    rows of an interrupted cycle's committed chunks are not kept, issue 21)."""
    ids = None if unique_ids is None else list(unique_ids)
    return wh._frame(
        "SELECT * FROM model_selections "
        "WHERE (? IS NULL OR unique_id IN (SELECT unnest(?))) "
        f"AND run_id NOT IN ({_UNFINISHED_RUNS}) "
        "QUALIFY row_number() OVER (PARTITION BY unique_id ORDER BY decided_at DESC, run_id DESC) = 1 "
        "ORDER BY unique_id",
        [ids, ids],
    )


def read_model_states(wh: Warehouse, unique_ids: Sequence[str], *, model: str) -> pl.DataFrame:
    """The stored ``unique_id, state, fitted_at`` of ``model``'s last fit of each of ``unique_ids``."""
    return wh._frame(
        "SELECT unique_id, state, fitted_at FROM model_states "
        "WHERE model = ? AND unique_id IN (SELECT unnest(?)) ORDER BY unique_id",
        [model, list(unique_ids)],
    )


def upsert_model_states(wh: Warehouse, states: pl.DataFrame, *, model: str, run_id: str, at: datetime) -> int:
    """Insert or replace ``model``'s fit of each series in ``states`` (``unique_id, state``)."""
    return wh._upsert_rows(
        "model_states",
        states.select("unique_id", "state").with_columns(pl.lit(model).alias("model")),
        keys=("unique_id", "model"),
        values=("state", "fitted_at", "run_id"),
        run_id=run_id,
        fitted_at=at,
    )


def write_exceedance(wh: Warehouse, exceedance: pl.DataFrame, *, run_id: str) -> int:
    """Store exceedance probabilities (frame with ``cutoff`` and the exceedance columns)."""
    return wh._upsert_rows("exceedance", exceedance, keys=_EXCEEDANCE_KEYS, values=_EXCEEDANCE_VALUES, run_id=run_id)


def read_latest_exceedance(wh: Warehouse, unique_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Exceedance rows from each series' newest forecast cutoff: what risk grading reads."""
    ids = None if unique_ids is None else list(unique_ids)
    return wh._frame(
        "SELECT unique_id, ds, model, threshold, threshold_value, direction, p_step_exceed, "
        "p_path_cross, cutoff, run_id FROM exceedance "
        "WHERE (? IS NULL OR unique_id IN (SELECT unnest(?))) "
        "QUALIFY cutoff = max(cutoff) OVER (PARTITION BY unique_id) "
        "ORDER BY unique_id, threshold, ds",
        [ids, ids],
    )


def register_model(wh: Warehouse, entry: dict[str, Any]) -> int:
    """Add (or update) one trained model in the registry; JSON fields may be Python objects."""
    row = dict(entry)
    for key in ("training_series", "batch_ids", "validation"):
        if not isinstance(row[key], str):
            row[key] = json.dumps(row[key], sort_keys=True, default=str)
    frame = pl.DataFrame([row])
    return wh._upsert_rows("models", frame, keys=_MODEL_KEYS, values=_MODEL_VALUES)


def read_models(wh: Warehouse, *, domain: str | None = None) -> pl.DataFrame:
    """Registered models, newest first (of one domain if given)."""
    return wh._frame(
        "SELECT * FROM models WHERE (? IS NULL OR domain = ?) ORDER BY created_at DESC, model_id",
        [domain, domain],
    )


def read_training_provenance(wh: Warehouse, unique_ids: Sequence[str], before: datetime | None = None) -> pl.DataFrame:
    """Per series: observation count, last time, and the ledger batches its rows came from
    (with ``before``, of the rows known by then: :func:`warehouse.series.known_before`)."""
    with known_before(wh, before, unique_ids) as (where, params):
        return wh._frame(
            "SELECT o.unique_id, count(*) AS rows, max(o.ds) AS last_ds, "
            "list_sort(list_distinct(list(o.batch_id))) AS batch_ids "
            f"FROM observations o {where} AND o.unique_id IN (SELECT unnest(?)) "
            "GROUP BY o.unique_id ORDER BY o.unique_id",
            [*params, list(unique_ids)],
        )


# -- forecasts ---------------------------------------------------------------------------
def write_forecasts(wh: Warehouse, forecasts: pl.DataFrame, *, run_id: str) -> int:
    """Store forecasts; each row carries the ``cutoff`` (last observed time) it came from."""
    return wh._upsert("forecasts", forecasts, run_id=run_id)


def read_latest_forecasts(wh: Warehouse, unique_ids: Sequence[str]) -> pl.DataFrame:
    """The forecasts from each series' newest cutoff."""
    return wh._frame(
        "SELECT * FROM forecasts WHERE unique_id IN (SELECT unnest(?)) "
        "QUALIFY cutoff = max(cutoff) OVER (PARTITION BY unique_id) ORDER BY unique_id, ds",
        [list(unique_ids)],
    )
