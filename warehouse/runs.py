"""The record of what ran and who did what: the ``runs`` table and the audit log.

Every command that writes (a cycle, an ingest, a forecast run) opens a run with
:func:`start_run` and closes it with :func:`finish_run` and its row counts; every action of a
user or of the engine (alert transitions, reviews, LLM calls, deliveries) adds one
``audit_log`` row through :func:`audit`. Functions take an open
:class:`~warehouse.store.Warehouse`; values are bound parameters.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from warehouse.store import Warehouse

__all__ = ["start_run", "finish_run", "last_run", "audit"]


def start_run(wh: Warehouse, *, run_id: str, kind: str, started_at: datetime, as_of: datetime | None = None) -> None:
    wh._execute(
        "INSERT INTO runs (run_id, kind, started_at, status, as_of) VALUES (?, ?, ?, 'running', ?)",
        [run_id, kind, started_at, as_of],
    )


def finish_run(
    wh: Warehouse,
    *,
    run_id: str,
    status: str,
    finished_at: datetime,
    row_counts: dict[str, int],
    error: str | None = None,
) -> None:
    wh._execute(
        "UPDATE runs SET status = ?, finished_at = ?, row_counts = ?, error = ? WHERE run_id = ?",
        [status, finished_at, json.dumps(row_counts), error, run_id],
    )


def last_run(wh: Warehouse, kind: str | None = None) -> dict[str, Any] | None:
    sql = "SELECT run_id, kind, status, started_at, finished_at, row_counts, error, as_of FROM runs"
    params: list[Any] = []
    if kind is not None:
        sql += " WHERE kind = ?"
        params.append(kind)
    rows = wh._execute(sql + " ORDER BY started_at DESC, run_id DESC LIMIT 1", params)
    if not rows:
        return None
    row = rows[0]
    keys = ("id", "kind", "status", "started_at", "finished_at", "row_counts", "error", "as_of")
    out = dict(zip(keys, row, strict=True))
    out["row_counts"] = json.loads(out["row_counts"]) if out["row_counts"] else {}
    return out


def audit(
    wh: Warehouse, *, at: datetime, actor: str, action: str, target: str | None, detail: dict[str, Any] | None = None
) -> None:
    wh._execute(
        "INSERT INTO audit_log (at_time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        [at, actor, action, target, json.dumps(detail or {}, default=str)],
    )
