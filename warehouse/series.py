"""Series metadata, observations, seismic events and the per-series state of the cycle.

Functions take an open :class:`~warehouse.store.Warehouse`. Writes are idempotent set-based
upserts (an identical row is never rewritten), tagged with the ledger batch they came from;
``series_state`` keeps, per series, the fingerprint of the observations the last cycle used,
so a rerun on unchanged data processes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import polars as pl

from core.availability import offsets_frame
from core.frames import (
    SERIES_ATTRIBUTES_COLUMN,
    SERIES_AVAILABLE_AFTER_COLUMN,
    SERIES_BOUND_COLUMNS,
    SERIES_META_COLUMNS,
)
from warehouse.store import _TABLES, Warehouse

__all__ = [
    "upsert_series",
    "upsert_observations",
    "upsert_events",
    "read_events",
    "read_series_meta",
    "read_observations",
    "known_before",
    "series_fingerprints",
    "read_series_state",
    "upsert_series_state",
]


def upsert_series(wh: Warehouse, meta: pl.DataFrame, *, batch_id: str) -> int:
    """Insert or update series metadata rows (:data:`core.frames.SERIES_META_COLUMNS`).

    A frame without the bound columns (``lower_bound``, ``upper_bound``), the
    ``attributes`` or the ``available_after`` column leaves the stored values as they are
    (null for a new series); with them, it sets them.
    """
    keys, values = _TABLES["series"]
    optional = (*SERIES_BOUND_COLUMNS, SERIES_ATTRIBUTES_COLUMN, SERIES_AVAILABLE_AFTER_COLUMN)
    values = tuple(c for c in values if c in meta.columns or c not in optional)
    return wh._upsert_rows("series", meta, keys=keys, values=values, batch_id=batch_id)


def upsert_observations(wh: Warehouse, series: pl.DataFrame, *, batch_id: str) -> int:
    return wh._upsert("observations", series.select("unique_id", "ds", "y"), batch_id=batch_id)


def upsert_events(wh: Warehouse, events: pl.DataFrame, *, batch_id: str) -> int:
    return wh._upsert("events", events, batch_id=batch_id)


def read_events(wh: Warehouse, *, before: datetime | None = None) -> pl.DataFrame:
    """Catalog events (``source, event_id, time, lat, lon, depth_km, magnitude``), only those
    earlier than ``before`` if given, oldest first."""
    return wh._frame(
        "SELECT source, event_id, time, lat, lon, depth_km, magnitude FROM events "
        "WHERE time < coalesce(?, 'infinity'::TIMESTAMP) ORDER BY time, source, event_id",
        [before],
    )


def read_series_meta(wh: Warehouse, unique_ids: Sequence[str] | None = None) -> pl.DataFrame:
    sql = f"SELECT {', '.join(SERIES_META_COLUMNS)} FROM series"
    if unique_ids is not None:
        return wh._frame(sql + " WHERE unique_id IN (SELECT unnest(?)) ORDER BY unique_id", [list(unique_ids)])
    return wh._frame(sql + " ORDER BY unique_id")


def read_observations(
    wh: Warehouse,
    unique_ids: Sequence[str] | None = None,
    *,
    before: datetime | None = None,
    last: int | None = None,
) -> pl.DataFrame:
    """Observations (all, or of ``unique_ids``); with ``before`` (a replay's cutoff), only
    those known by then (:func:`known_before`); with ``last``, only each series' ``last``
    newest of those."""
    with known_before(wh, before, unique_ids) as (where, params):
        sql = f"SELECT o.unique_id, o.ds, o.y FROM observations o {where}"
        if unique_ids is not None:
            sql += " AND o.unique_id IN (SELECT unnest(?))"
            params = [*params, list(unique_ids)]
        if last is not None:
            sql += " QUALIFY row_number() OVER (PARTITION BY o.unique_id ORDER BY o.ds DESC) <= ?"
            params = [*params, int(last)]
        return wh._frame(sql + " ORDER BY o.unique_id, o.ds", params)


def series_fingerprints(wh: Warehouse, *, before: datetime | None = None) -> pl.DataFrame:
    """Per series a fingerprint of its observations (those known by ``before`` if given, the
    rule of :func:`read_observations`): it changes when any value does."""
    with known_before(wh, before) as (where, params):
        return wh._frame(
            "SELECT o.unique_id, count(*)::VARCHAR || '|' || max(o.ds)::VARCHAR || '|' || "
            f"bit_xor(hash(o.ds, o.y))::VARCHAR AS fingerprint FROM observations o {where} "
            "GROUP BY o.unique_id ORDER BY o.unique_id",
            params,
        )


@contextmanager
def known_before(
    wh: Warehouse, before: datetime | None, unique_ids: Sequence[str] | None = None
) -> Iterator[tuple[str, list[Any]]]:
    """The ``LEFT JOIN ... WHERE`` text (alias ``o`` for ``observations``) and its parameters
    that keep only the observations known by ``before``: the single rule every read of a
    cycle uses.

    A value stamped ``ds`` is known at the end of its period (``ds`` cut back to its hour, day
    or month, plus one period of its frequency) plus ``available_after``
    (:mod:`core.availability`; a null ``available_after`` is the default of the series'
    variable); it is kept when that is at or before ``before`` (the end of the replay day).
    ``before`` None (a live run): every stored value, which was known when it was fetched.
    """
    if before is None:
        yield "WHERE true", []
        return
    sql = "SELECT unique_id, frequency, available_after, variable FROM series"
    rows = (
        wh._frame(sql + " WHERE unique_id IN (SELECT unnest(?))", [list(unique_ids)])
        if unique_ids is not None
        else wh._frame(sql)
    )
    rules = offsets_frame(
        {r["unique_id"]: (r["frequency"], r["available_after"], r["variable"]) for r in rows.iter_rows(named=True)}
    )
    with wh._registered("known_rules", rules):
        yield (
            "LEFT JOIN known_rules k ON k.unique_id = o.unique_id WHERE o.ds < ? "
            "AND date_trunc(coalesce(k.unit, 'microseconds'), o.ds) + to_months(coalesce(k.months, 0)) "
            "+ to_microseconds(coalesce(k.micros, 0)) <= ?",
            [before, before],
        )


def read_series_state(wh: Warehouse) -> pl.DataFrame:
    return wh._frame("SELECT unique_id, fingerprint FROM series_state")


def upsert_series_state(wh: Warehouse, state: pl.DataFrame, *, run_id: str, at: datetime) -> int:
    return wh._upsert("series_state", state, run_id=run_id, processed_at=at)
