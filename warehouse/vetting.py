"""The vetted catalogue (table ``vetted_series``, schema version 13): the display name, region
and unit of each series that published text may quote (:mod:`alerts.vetting`).

Rows are written by an operator (``ews series approve``, ``by_operator`` true) or by the
engine's own catalogue (the bundled data's load, the market step's composite series); the
engine never replaces a row a person wrote. Ingest does not write here, so a source cannot
vet its own text. Writes are idempotent: an identical row is never rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl

from warehouse.store import Warehouse

__all__ = [
    "BUNDLED_VETTER",
    "read_vetted",
    "vet_series",
    "vet_written_by",
    "unvet_series",
    "vetting_status",
    "vetted_regions",
]

_FIELDS = ("name", "region", "unit")

#: ``vetted_by`` of the rows the bundled catalogue writes (``ingest.batches.load_bundled``).
BUNDLED_VETTER = "engine: bundled catalogue (data/PROVENANCE.md)"


def read_vetted(wh: Warehouse, unique_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """unique_id -> its vetted row (``name``, ``region``, ``unit``, ``vetted_by``,
    ``by_operator``, ``vetted_at``); series without a row are absent."""
    sql = "SELECT unique_id, name, region, unit, vetted_by, by_operator, vetted_at FROM vetted_series"
    params: list[Any] = []
    if unique_ids is not None:
        sql += " WHERE unique_id IN (SELECT unnest(?))"
        params.append(list(unique_ids))
    rows = wh._frame(sql + " ORDER BY unique_id", params)
    return {r["unique_id"]: r for r in rows.iter_rows(named=True)}


def vetted_regions(wh: Warehouse) -> set[str]:
    """Every region name some vetted row publishes."""
    return {r for (r,) in wh._execute("SELECT DISTINCT region FROM vetted_series WHERE region IS NOT NULL")}


def vet_series(wh: Warehouse, rows: pl.DataFrame, *, by: str, at: datetime, by_operator: bool) -> int:
    """Write vetted rows (``unique_id`` and any of ``name``, ``region``, ``unit``; a missing or
    null field is not vetted). An operator's rows replace any row; the engine's (``by_operator``
    false) never replace a row a person wrote. Returns the number of rows inserted or changed."""
    frame = rows.select(
        pl.col("unique_id").cast(pl.Utf8),
        *((pl.col(f) if f in rows.columns else pl.lit(None)).cast(pl.Utf8).alias(f) for f in _FIELDS),
    )
    guard = "" if by_operator else "NOT vetted_series.by_operator AND "
    with wh._registered("vetting_rows", frame):
        changed = wh._execute(
            "SELECT count(*) FROM vetting_rows v LEFT JOIN vetted_series s USING (unique_id) "
            "WHERE s.unique_id IS NULL OR ("
            + guard.replace("vetted_series", "s")
            + "(s.name IS DISTINCT FROM v.name OR s.region IS DISTINCT FROM v.region "
            "OR s.unit IS DISTINCT FROM v.unit OR s.by_operator IS DISTINCT FROM ?))",
            [by_operator],
        )[0][0]
        wh._execute(
            "INSERT INTO vetted_series (unique_id, name, region, unit, vetted_by, by_operator, vetted_at) "
            "SELECT unique_id, name, region, unit, ?, ?, ? FROM vetting_rows "
            "ON CONFLICT (unique_id) DO UPDATE SET name = excluded.name, region = excluded.region, "
            "unit = excluded.unit, vetted_by = excluded.vetted_by, by_operator = excluded.by_operator, "
            "vetted_at = excluded.vetted_at WHERE " + guard + "(vetted_series.name IS DISTINCT FROM excluded.name "
            "OR vetted_series.region IS DISTINCT FROM excluded.region "
            "OR vetted_series.unit IS DISTINCT FROM excluded.unit "
            "OR vetted_series.by_operator IS DISTINCT FROM excluded.by_operator)",
            [by, by_operator, at],
        )
    return int(changed)


def vet_written_by(wh: Warehouse, batch_ids: Sequence[str], *, by: str, at: datetime) -> int:
    """Vet, as the engine, the stored name, region and unit of every series whose row was last
    written by one of ``batch_ids`` (the bundled catalogue's batches, a market step's run): that
    text is the project's own. A series a later batch rewrote is left out. Returns the rows
    inserted or changed."""
    rows = wh._frame(
        "SELECT unique_id, name, region, unit FROM series WHERE batch_id IN (SELECT unnest(?)) ORDER BY unique_id",
        [list(batch_ids)],
    )
    return vet_series(wh, rows, by=by, at=at, by_operator=False) if rows.height else 0


def unvet_series(wh: Warehouse, unique_ids: Sequence[str]) -> int:
    """Delete the vetted rows of ``unique_ids``; returns how many there were."""
    count = wh._execute("SELECT count(*) FROM vetted_series WHERE unique_id IN (SELECT unnest(?))", [list(unique_ids)])
    wh._execute("DELETE FROM vetted_series WHERE unique_id IN (SELECT unnest(?))", [list(unique_ids)])
    return int(count[0][0])


def vetting_status(wh: Warehouse) -> pl.DataFrame:
    """One row per stored series: its name, region and unit as the source gave them, the
    vetted ones (null = not vetted), who vetted them and when."""
    return wh._frame(
        "SELECT s.unique_id, s.name, s.region, s.unit, v.name AS vetted_name, v.region AS vetted_region, "
        "v.unit AS vetted_unit, v.vetted_by, v.by_operator, v.vetted_at "
        "FROM series s LEFT JOIN vetted_series v USING (unique_id) ORDER BY s.unique_id"
    )
