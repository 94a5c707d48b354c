"""Series metadata, observations, seismic events and the per-series state of the cycle.

Functions take an open :class:`~warehouse.store.Warehouse`. Writes are idempotent set-based
upserts (an identical row is never rewritten), tagged with the ledger batch they came from;
``series_state`` keeps, per series, the fingerprint of the observations the last cycle used,
so a rerun on unchanged data processes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl

from core.frames import SERIES_ATTRIBUTES_COLUMN, SERIES_BOUND_COLUMNS, SERIES_META_COLUMNS
from warehouse.store import _TABLES, Warehouse

__all__ = [
    "upsert_series",
    "upsert_observations",
    "upsert_events",
    "read_events",
    "read_series_meta",
    "read_observations",
    "series_fingerprints",
    "read_series_state",
    "upsert_series_state",
]


def upsert_series(wh: Warehouse, meta: pl.DataFrame, *, batch_id: str) -> int:
    """Insert or update series metadata rows (:data:`core.frames.SERIES_META_COLUMNS`).

    A frame without the bound columns (``lower_bound``, ``upper_bound``) or the
    ``attributes`` column leaves the stored values as they are (null for a new series);
    with them, it sets them.
    """
    keys, values = _TABLES["series"]
    optional = (*SERIES_BOUND_COLUMNS, SERIES_ATTRIBUTES_COLUMN)
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
    wh: Warehouse, unique_ids: Sequence[str] | None = None, *, before: datetime | None = None
) -> pl.DataFrame:
    """Observations (all, or of ``unique_ids``), only those earlier than ``before`` if given."""
    sql = "SELECT unique_id, ds, y FROM observations WHERE ds < coalesce(?, 'infinity'::TIMESTAMP)"
    params: list[Any] = [before]
    if unique_ids is not None:
        sql += " AND unique_id IN (SELECT unnest(?))"
        params.append(list(unique_ids))
    return wh._frame(sql + " ORDER BY unique_id, ds", params)


def series_fingerprints(wh: Warehouse, *, before: datetime | None = None) -> pl.DataFrame:
    """Per series a fingerprint of its observations (earlier than ``before`` if given):
    it changes when any value does."""
    return wh._frame(
        "SELECT unique_id, count(*)::VARCHAR || '|' || max(ds)::VARCHAR || '|' || "
        "bit_xor(hash(ds, y))::VARCHAR AS fingerprint "
        "FROM observations WHERE ds < coalesce(?, 'infinity'::TIMESTAMP) "
        "GROUP BY unique_id ORDER BY unique_id",
        [before],
    )


def read_series_state(wh: Warehouse) -> pl.DataFrame:
    return wh._frame("SELECT unique_id, fingerprint FROM series_state")


def upsert_series_state(wh: Warehouse, state: pl.DataFrame, *, run_id: str, at: datetime) -> int:
    return wh._upsert("series_state", state, run_id=run_id, processed_at=at)
