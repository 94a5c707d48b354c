"""The summary ``ews status`` prints: series, rows per table, open alerts, batches, last run.

Functions take an open :class:`~warehouse.store.Warehouse` (read-only is enough).
"""

from __future__ import annotations

from typing import Any

from core.errors import WarehouseError
from warehouse.runs import last_run
from warehouse.store import LEVELS, Warehouse

__all__ = ["count_rows", "warehouse_status"]

#: Tables :func:`count_rows` counts (names are code constants, never user input).
_COUNTED = frozenset(
    {
        "series",
        "observations",
        "events",
        "forecasts",
        "anomaly_scores",
        "risk_grades",
        "series_state",
        "alerts",
        "judgments",
        "ingest_batches",
        "runs",
        "audit_log",
    }
)


def count_rows(wh: Warehouse, table: str) -> int:
    """Rows in one of the engine's core tables."""
    if table not in _COUNTED:
        raise WarehouseError(f"unknown table {table!r}")
    return wh._execute(f"SELECT count(*) FROM {table}")[0][0]


def warehouse_status(wh: Warehouse) -> dict[str, Any]:
    """The figures `ews status --json` prints."""
    domains = dict(wh._execute("SELECT domain, count(*) FROM series GROUP BY domain ORDER BY domain"))
    levels = dict(wh._execute("SELECT level, count(*) FROM alerts WHERE status = 'open' GROUP BY level"))
    batches = dict(wh._execute("SELECT status, count(*) FROM ingest_batches GROUP BY status"))
    last = last_run(wh)
    return {
        "warehouse": str(wh.path),
        "schema_version": wh.schema_version(),
        "series_by_domain": domains,
        "observations": count_rows(wh, "observations"),
        "events": count_rows(wh, "events"),
        "forecasts": count_rows(wh, "forecasts"),
        "anomaly_scores": count_rows(wh, "anomaly_scores"),
        "risk_grades": count_rows(wh, "risk_grades"),
        "alerts_by_level": {level: levels.get(level, 0) for level in LEVELS},
        "judgments": count_rows(wh, "judgments"),
        "ingest_batches": batches,
        "last_run": None
        if last is None
        else {
            "id": last["id"],
            "kind": last["kind"],
            "status": last["status"],
            "started_at": str(last["started_at"]),
            "finished_at": str(last["finished_at"]),
            "row_counts": last["row_counts"],
            "as_of": None if last["as_of"] is None else str(last["as_of"]),
        },
    }
