"""Ingestion state in the warehouse: the batch ledger, watermarks, per-source freshness, and
the reads the ingest checks need.

Contracts:

- The **ledger** (``ingest_batches``) has one row per landed file or fetch, with its checksum
  and status; :func:`batch_status` tells a committed batch, which is never loaded again.
- A **watermark** is a text per source (an ISO time, a date, an ``updated`` stamp) that a
  connector reads before fetching and writes *inside the transaction that commits the
  batch*, so it can never run ahead of the data (a crash before COMMIT leaves the old one).
  Watermarks **only move forward**: :func:`write_watermark` refuses a value older than the
  stored one (compared as times when both read as ISO dates or times, else as text), and
  :func:`watermark_regression` lets the loader refuse such an answer before it commits.
- **source_status** keeps, per source, the last attempt, last success, last error (time and
  text), the newest observation time the source delivered, its last batch and row count.
  ``ews status`` shows it through :func:`source_freshness`.
- Every statement binds its values; table names are constants of this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl

from core.errors import WarehouseError
from warehouse.store import Warehouse

__all__ = [
    "read_watermark",
    "write_watermark",
    "advance_watermark",
    "watermark_regression",
    "watermark_is_older",
    "record_source_attempt",
    "record_source_success",
    "record_source_error",
    "source_freshness",
    "stored_series_profile",
    "read_catalog_events",
    "batch_exists",
    "read_watermarks",
    "batch_status",
    "record_batch",
    "read_batches",
    "observation_changes",
]


def read_watermark(wh: Warehouse, source: str) -> str | None:
    """The source's committed watermark, or None before its first committed batch."""
    rows = wh._execute("SELECT watermark FROM source_watermarks WHERE source = ?", [source])
    return rows[0][0] if rows else None


def _order_key(value: str) -> tuple[int, Any]:
    """Watermarks compare as times when they read as ISO dates/times (``20110930`` too), else as text."""
    try:
        return (0, datetime.fromisoformat(value).replace(tzinfo=None))
    except ValueError:
        return (1, value)


def watermark_is_older(new: str, stored: str) -> bool:
    """True when watermark ``new`` lies before ``stored`` (no database: the loader's early check)."""
    a, b = _order_key(new), _order_key(stored)
    return a[0] == b[0] and a[1] < b[1]


def watermark_regression(wh: Warehouse, source: str, watermark: str) -> str | None:
    """Why ``watermark`` may not be stored for ``source`` (it is older than the stored one), or None."""
    stored = read_watermark(wh, source)
    if stored is None or not watermark_is_older(watermark, stored):
        return None
    return (
        f"watermark {source}: the answer reaches only {watermark}, older than the stored {stored} "
        "(a cut or stale answer); nothing of it was stored and the watermark stays\n"
        "  fix: the next run retries; if the source really withdrew data after "
        f"{watermark}, ask an operator to review the raw copy before loading it by hand"
    )


def write_watermark(wh: Warehouse, source: str, watermark: str, *, batch_id: str | None, at: datetime) -> None:
    """Set the watermark; call it inside the transaction that commits the batch.

    Refuses (:class:`~core.errors.WarehouseError`) a value older than the stored one.
    """
    stored = read_watermark(wh, source)
    if stored is not None and watermark_is_older(watermark, stored):
        raise WarehouseError(
            f"watermark {source} would move back from {stored} to {watermark}",
            fix="watermarks only move forward: the batch carrying it is refused (see watermark_regression)",
        )
    wh._execute(
        "INSERT INTO source_watermarks (source, watermark, batch_id, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (source) DO UPDATE SET watermark = excluded.watermark, "
        "batch_id = excluded.batch_id, updated_at = excluded.updated_at",
        [source, watermark, batch_id, at],
    )


def advance_watermark(wh: Warehouse, source: str, watermark: str, *, batch_id: str | None, at: datetime) -> bool:
    """Move the watermark to ``watermark`` only if that is forward; True when it moved."""
    stored = read_watermark(wh, source)
    if stored == watermark or (stored is not None and watermark_is_older(watermark, stored)):
        return False
    write_watermark(wh, source, watermark, batch_id=batch_id, at=at)
    return True


def _ensure_status(wh: Warehouse, source: str, kind: str) -> None:
    wh._execute(
        "INSERT INTO source_status (source, kind) VALUES (?, ?) "
        "ON CONFLICT (source) DO UPDATE SET kind = excluded.kind",
        [source, kind],
    )


def record_source_attempt(wh: Warehouse, source: str, *, kind: str, at: datetime) -> None:
    _ensure_status(wh, source, kind)
    wh._execute("UPDATE source_status SET last_attempt_at = ? WHERE source = ?", [at, source])


def record_source_success(
    wh: Warehouse,
    source: str,
    *,
    kind: str,
    at: datetime,
    last_data_time: datetime | None,
    batch_id: str | None,
    rows: int,
) -> None:
    """A batch committed (or the source had nothing new): move the freshness forward."""
    _ensure_status(wh, source, kind)
    wh._execute(
        "UPDATE source_status SET last_success_at = ?, "
        "last_data_time = CASE WHEN last_data_time IS NULL THEN ? "
        "  WHEN ? IS NULL THEN last_data_time ELSE greatest(last_data_time, ?) END, "
        "last_batch_id = coalesce(?, last_batch_id), rows_last = ? WHERE source = ?",
        [at, last_data_time, last_data_time, last_data_time, batch_id, rows, source],
    )


def record_source_error(wh: Warehouse, source: str, *, kind: str, at: datetime, error: str) -> None:
    _ensure_status(wh, source, kind)
    wh._execute(
        "UPDATE source_status SET last_error_at = ?, last_error = ? WHERE source = ?",
        [at, error[:2000], source],
    )


def source_freshness(wh: Warehouse) -> dict[str, dict[str, Any]]:
    """Per source: kind, last data time, last success, last error (what `ews status` shows)."""
    rows = wh._execute(
        "SELECT source, kind, last_data_time, last_success_at, last_attempt_at, last_error_at, "
        "last_error, last_batch_id, rows_last FROM source_status ORDER BY source"
    )
    out: dict[str, dict[str, Any]] = {}
    for source, kind, data_time, success, attempt, error_at, error, batch, rows_last in rows:
        failing = error_at is not None and (success is None or error_at >= success)
        out[source] = {
            "kind": kind,
            "last_data_time": None if data_time is None else str(data_time),
            "last_success": None if success is None else str(success),
            "last_attempt": None if attempt is None else str(attempt),
            "last_error": None if error_at is None else {"at": str(error_at), "error": error},
            "failing": failing,
            "last_batch_id": batch,
            "rows_last": rows_last,
        }
    return out


def stored_series_profile(wh: Warehouse, unique_ids: Sequence[str]) -> pl.DataFrame:
    """Unit, domain and the median of the stored values of each known series (for unit checks)."""
    return wh._frame(
        "SELECT s.unique_id, s.unit, s.domain, median(o.y) AS median_y, count(o.y) AS n "
        "FROM series s LEFT JOIN observations o USING (unique_id) "
        "WHERE s.unique_id IN (SELECT unnest(?)) GROUP BY s.unique_id, s.unit, s.domain "
        "ORDER BY s.unique_id",
        [list(unique_ids)],
    )


def read_catalog_events(wh: Warehouse, *, id_prefix: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Stored events of one catalog (ids ``<prefix>:...``) with ``start <= time < end``."""
    return wh._frame(
        "SELECT event_id, time, lat, lon, depth_km, magnitude, source FROM events "
        "WHERE starts_with(event_id, ?) AND time >= ? AND time < ? ORDER BY time, event_id",
        [f"{id_prefix}:", start, end],
    )


def catalog_event_points(wh: Warehouse, *, id_prefix: str) -> pl.DataFrame:
    """``lat``, ``lon`` of every stored event of one catalog (the extent of a catalog loaded without regions)."""
    return wh._frame("SELECT lat, lon FROM events WHERE starts_with(event_id, ?)", [f"{id_prefix}:"])


def batch_exists(wh: Warehouse, batch_id: str) -> bool:
    return bool(wh._execute("SELECT count(*) FROM ingest_batches WHERE batch_id = ?", [batch_id])[0][0])


def read_watermarks(wh: Warehouse, source: str) -> dict[str, str]:
    """Every watermark of a source: its own key and sub-keys ``<source>/<item>`` (per series, station)."""
    rows = wh._execute(
        "SELECT source, watermark FROM source_watermarks WHERE source = ? OR starts_with(source, ?)",
        [source, f"{source}/"],
    )
    return dict(rows)


# -- the ingest ledger (one row per landed file or fetch) --------------------------------
def batch_status(wh: Warehouse, batch_id: str) -> str | None:
    rows = wh._execute("SELECT status FROM ingest_batches WHERE batch_id = ?", [batch_id])
    return rows[0][0] if rows else None


def record_batch(
    wh: Warehouse,
    *,
    batch_id: str,
    source: str,
    fmt: str,
    location: str,
    fetched_at: datetime,
    checksum: str,
    status: str,
    row_count: int | None = None,
    rows_changed: int | None = None,
    error: str | None = None,
) -> None:
    wh._execute(
        "INSERT OR REPLACE INTO ingest_batches (batch_id, source, format, location, fetched_at, "
        "row_count, rows_changed, checksum, status, error) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [batch_id, source, fmt, location, fetched_at, row_count, rows_changed, checksum, status, error],
    )


def read_batches(wh: Warehouse, limit: int = 100) -> pl.DataFrame:
    return wh._frame("SELECT * FROM ingest_batches ORDER BY fetched_at DESC, batch_id LIMIT ?", [limit])


def observation_changes(wh: Warehouse, series: pl.DataFrame) -> pl.DataFrame:
    """Per series of ``series`` (``unique_id, ds, y``), how its rows compare with what is stored:
    ``new_rows`` (no stored value at that time), ``changed_rows`` (a different value),
    ``unchanged_rows``; what an upsert of ``series`` would insert, update and leave alone. Reads only."""
    with wh._registered("_incoming_rows", series.select("unique_id", "ds", "y")):
        return wh._frame(
            "SELECT i.unique_id, "
            "count(*) FILTER (WHERE o.ds IS NULL) AS new_rows, "
            "count(*) FILTER (WHERE o.ds IS NOT NULL AND o.y IS DISTINCT FROM i.y) AS changed_rows, "
            "count(*) FILTER (WHERE o.ds IS NOT NULL AND o.y IS NOT DISTINCT FROM i.y) AS unchanged_rows "
            "FROM _incoming_rows i LEFT JOIN observations o ON o.unique_id = i.unique_id AND o.ds = i.ds "
            "GROUP BY i.unique_id ORDER BY i.unique_id"
        )
