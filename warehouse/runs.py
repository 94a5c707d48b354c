"""The record of what ran and who did what: the ``runs`` table and the audit log.

Every command that writes (a cycle, an ingest, a forecast run) opens a run with
:func:`start_run` and closes it with :func:`finish_run` and its row counts. The run row names
its process (pid, host, the process's start time): a process killed mid-run leaves its row
``running``, and the next writer marks it ``aborted`` (:func:`abort_dead_runs`, called when
the warehouse is opened for writing) once that process is gone. Every action of a
user or of the engine (alert transitions, reviews, LLM calls, deliveries) adds one
``audit_log`` row through :func:`audit`. Functions take an open
:class:`~warehouse.store.Warehouse`; values are bound parameters.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from warehouse.store import Warehouse

__all__ = ["start_run", "finish_run", "last_run", "audit", "abort_dead_runs", "process_alive"]


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux /proc; None elsewhere): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 (starttime), counted after the name


def process_alive(pid: int | None, host: str | None, started: str | None) -> bool:
    """Whether the process that opened a run may still be running.

    Another host cannot be checked from here, so its runs count as alive; on this host the
    pid must exist and (where recorded) have the same start time.
    """
    if pid is None or host != socket.gethostname():
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return started is None or _process_start(pid) in (None, started)


def start_run(wh: Warehouse, *, run_id: str, kind: str, started_at: datetime, as_of: datetime | None = None) -> None:
    pid = os.getpid()
    wh._execute(
        "INSERT INTO runs (run_id, kind, started_at, status, as_of, pid, host, process_start) "
        "VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
        [run_id, kind, started_at, as_of, pid, socket.gethostname(), _process_start(pid)],
    )


def abort_dead_runs(wh: Warehouse, *, at: datetime) -> list[str]:
    """Mark ``aborted`` every ``running`` run whose process is gone; returns their ids.

    Called by the writer when it opens the warehouse. A run of a live process (one that
    downloads without holding the warehouse, or this process) is left alone.
    """
    rows = wh._execute("SELECT run_id, pid, host, process_start FROM runs WHERE status = 'running'")
    dead = [run_id for run_id, pid, host, started in rows if not process_alive(pid, host, started)]
    for run_id, pid, host, _ in rows:
        if run_id in dead:
            wh._execute(
                "UPDATE runs SET status = 'aborted', finished_at = ?, error = ? "
                "WHERE run_id = ? AND status = 'running'",
                [at, f"aborted: process {pid} on {host} ended without finishing the run", run_id],
            )
            audit(wh, at=at, actor="engine", action="run.aborted", target=run_id, detail={"pid": pid, "host": host})
    return dead


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
