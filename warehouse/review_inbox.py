"""The review inbox: how dashboard actions survive a warehouse held by a running engine.

DuckDB admits one writing process per file (docs/dashboard.md, "Works while the engine
works"). The dashboard therefore never writes the warehouse directly from a page:

1. :func:`enqueue` appends the action (who, role, when, what) to ``review_inbox`` in the
   control store (SQLite; many processes may append at once). It is durable from here on.
2. :func:`drain` applies queued actions in order, each in ONE warehouse transaction together
   with its row in ``review_inbox_applied`` (migration 7). Whoever holds the warehouse for
   writing drains: the engine at the end of ``ews run`` / ``ews demo`` (pipelines hook), and
   ``ews serve``'s supervisor within ``[dashboard] sync_seconds`` of an action whenever the
   warehouse is free (pipelines/dashboard_sync.py). The dashboard itself never drains.
3. A crash between the warehouse commit and the inbox update is harmless: the warehouse's
   ``review_inbox_applied`` row is the record of truth, so a second drain only copies the
   outcome back. An action the alert's state no longer allows (e.g. it was resolved by the run
   that held the lock) is *refused*, not dropped: the refusal and its reason go to the audit log
   and back to the inbox, where the user sees them.

Kinds: ``review`` (the :mod:`warehouse.review` actions) and ``audit`` (sign-ins, account
changes: only an audit-log row).

``ews serve``'s supervisor (pipelines/dashboard_sync.py) records each look at the inbox with
:func:`record_sync_check` (when, and what it found: nothing queued, applied, the warehouse
held by a run, ...); the dashboard reads :func:`last_sync_check` and :func:`action_outcome`
to tell the user whether an action was applied or stays queued.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from core.errors import TransitionError
from warehouse import review
from warehouse.runs import audit
from warehouse.store import Warehouse

__all__ = [
    "REVIEW_ACTIONS",
    "InboxItem",
    "DrainResult",
    "enqueue",
    "enqueue_audit",
    "pending_count",
    "read_inbox",
    "action_outcome",
    "drain",
    "SYNC_OUTCOMES",
    "SyncCheck",
    "record_sync_check",
    "last_sync_check",
]

#: Review actions the inbox carries, and the payload keys each needs.
REVIEW_ACTIONS: dict[str, tuple[str, ...]] = {
    "acknowledge": (),
    "approve": (),
    "reject": ("reason",),
    "silence": ("reason", "until"),
    "feedback": ("verdict",),
}

#: What a look at the inbox by ``ews serve``'s supervisor found (:func:`record_sync_check`):
#: nothing queued; queued actions applied (with a fresh snapshot); the warehouse held by
#: another writer (the actions stay queued); the sync failed (logged); no warehouse yet.
SYNC_OUTCOMES = ("idle", "synced", "locked", "failed", "no warehouse")
_CHECKER = "ews serve"

# One drain at a time per process (``ews serve`` drains on its supervisor thread); across
# processes DuckDB's own file lock keeps writers apart.
_DRAIN_LOCK = threading.Lock()


@dataclass(frozen=True)
class InboxItem:
    action_id: str
    kind: str
    action: str
    alert_id: str | None
    user: str
    role: str | None
    acted_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class SyncCheck:
    checked_at: datetime
    outcome: str  # one of SYNC_OUTCOMES
    detail: str | None


@dataclass
class DrainResult:
    applied: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    already: list[str] = field(default_factory=list)


def _new_id(at: datetime) -> str:
    return f"q_{at:%Y%m%dT%H%M%S%f}_{secrets.token_hex(4)}"


def _insert(con: sqlite3.Connection, item: InboxItem) -> str:
    # BEGIN IMMEDIATE takes the write lock before reading max(seq): two processes queuing at
    # once get distinct, ordered sequence numbers.
    with con:
        con.execute("BEGIN IMMEDIATE")
        seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM review_inbox").fetchone()[0]
        con.execute(
            "INSERT INTO review_inbox (action_id, seq, kind, action, alert_id, user_name, role, "
            "acted_at, payload, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued')",
            [
                item.action_id,
                seq,
                item.kind,
                item.action,
                item.alert_id,
                item.user,
                item.role,
                item.acted_at.isoformat(),
                json.dumps(item.payload, default=str),
            ],
        )
    return item.action_id


def enqueue(
    con: sqlite3.Connection, *, action: str, alert_id: str, user: str, role: str, at: datetime, **payload: Any
) -> str:
    """Queue one review action (already authorised by the caller); return its id."""
    if action not in REVIEW_ACTIONS:
        raise TransitionError(f"unknown review action {action!r}", fix=f"use one of {', '.join(REVIEW_ACTIONS)}")
    missing = [k for k in REVIEW_ACTIONS[action] if not str(payload.get(k) or "").strip()]
    if missing:
        raise TransitionError(
            f"{action} needs {', '.join(missing)}", fix=f"fill in {', '.join(missing)} before submitting"
        )
    if action == "silence":
        until = payload["until"]
        if not isinstance(until, datetime) or until <= at:
            raise TransitionError(
                f"silence end {until} is not after now ({at:%Y-%m-%d %H:%M})", fix="choose an end time in the future"
            )
    item = InboxItem(_new_id(at), "review", action, alert_id, user, role, at, payload)
    return _insert(con, item)


def enqueue_audit(
    con: sqlite3.Connection,
    *,
    action: str,
    user: str,
    at: datetime,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> str:
    """Queue an audit-log entry (sign-in, account change) for the warehouse."""
    item = InboxItem(_new_id(at), "audit", action, target, user, None, at, detail or {})
    return _insert(con, item)


def pending_count(con: sqlite3.Connection) -> int:
    return con.execute("SELECT count(*) FROM review_inbox WHERE state = 'queued'").fetchone()[0]


def read_inbox(
    con: sqlite3.Connection,
    *,
    user: str | None = None,
    alert_id: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> pl.DataFrame:
    """Inbox rows, newest first (what a user queued and what became of it)."""
    sql = (
        "SELECT action_id, kind, action, alert_id, user_name, role, acted_at, payload, state, "
        "message, applied_at FROM review_inbox WHERE 1 = 1"
    )
    params: list[Any] = []
    for column, value in (("user_name", user), ("alert_id", alert_id), ("kind", kind)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    rows = con.execute(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
    schema = [
        "action_id",
        "kind",
        "action",
        "alert_id",
        "user",
        "role",
        "acted_at",
        "payload",
        "state",
        "message",
        "applied_at",
    ]
    return (
        pl.DataFrame(rows, schema=schema, orient="row", infer_schema_length=None)
        if rows
        else pl.DataFrame(schema={c: pl.Utf8 for c in schema})
    )


def action_outcome(con: sqlite3.Connection, action_id: str) -> tuple[str, str | None] | None:
    """``(state, message)`` of one queued action (state: queued, applied or refused), or None."""
    row = con.execute("SELECT state, message FROM review_inbox WHERE action_id = ?", [action_id]).fetchone()
    return None if row is None else (row[0], row[1])


def record_sync_check(con: sqlite3.Connection, *, at: datetime, outcome: str, detail: str | None = None) -> None:
    """Record one look at the inbox by ``ews serve``'s supervisor (replaces the previous one)."""
    if outcome not in SYNC_OUTCOMES:
        raise ValueError(f"unknown sync outcome {outcome!r}; use one of {', '.join(SYNC_OUTCOMES)}")
    with con:
        con.execute(
            "INSERT INTO sync_checks (checker, checked_at, outcome, detail) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (checker) DO UPDATE SET checked_at = excluded.checked_at, "
            "outcome = excluded.outcome, detail = excluded.detail",
            [_CHECKER, at.isoformat(), outcome, detail],
        )


def last_sync_check(con: sqlite3.Connection) -> SyncCheck | None:
    """The supervisor's most recent look at the inbox, or None if no ``ews serve`` ever looked."""
    row = con.execute("SELECT checked_at, outcome, detail FROM sync_checks WHERE checker = ?", [_CHECKER]).fetchone()
    return None if row is None else SyncCheck(datetime.fromisoformat(row[0]), row[1], row[2])


def _queued(con: sqlite3.Connection, limit: int) -> list[InboxItem]:
    rows = con.execute(
        "SELECT action_id, kind, action, alert_id, user_name, role, acted_at, payload "
        "FROM review_inbox WHERE state = 'queued' ORDER BY seq LIMIT ?",
        [limit],
    ).fetchall()
    items = []
    for action_id, kind, action, alert_id, user, role, acted_at, payload in rows:
        items.append(
            InboxItem(
                action_id, kind, action, alert_id, user, role, datetime.fromisoformat(acted_at), json.loads(payload)
            )
        )
    return items


def _mark(con: sqlite3.Connection, action_id: str, state: str, message: str | None, at: datetime) -> None:
    with con:
        con.execute(
            "UPDATE review_inbox SET state = ?, message = ?, applied_at = ? WHERE action_id = ?",
            [state, message, at.isoformat(), action_id],
        )


def _apply(wh: Warehouse, item: InboxItem) -> str:
    """Run one item against the warehouse (inside the caller's transaction); return a summary."""
    p = item.payload
    common: dict[str, Any] = {"alert_id": item.alert_id, "user": item.user, "at": item.acted_at}
    if item.kind == "audit":
        audit(wh, at=item.acted_at, actor=item.user, action=item.action, target=item.alert_id, detail=p)
        return "recorded"
    if item.action == "acknowledge":
        review.acknowledge(wh, **common, note=p.get("note") or None)
    elif item.action == "approve":
        review.approve_release(wh, **common)
    elif item.action == "reject":
        review.reject_release(wh, **common, reason=p["reason"])
    elif item.action == "silence":
        review.silence(wh, **common, reason=p["reason"], until=datetime.fromisoformat(str(p["until"])))
    elif item.action == "feedback":
        review.mark_feedback(wh, **common, verdict=p["verdict"], note=p.get("note") or None)
    else:
        raise TransitionError(f"unknown review action {item.action!r}", fix="nothing to do")
    return f"{item.action} applied"


def _record(wh: Warehouse, item: InboxItem, *, outcome: str, message: str, now: datetime) -> None:
    wh._execute(
        "INSERT INTO review_inbox_applied (action_id, kind, action, alert_id, actor, acted_at, "
        "applied_at, outcome, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [item.action_id, item.kind, item.action, item.alert_id, item.user, item.acted_at, now, outcome, message],
    )


def drain(
    wh: Warehouse,
    con: sqlite3.Connection,
    *,
    now: datetime,
    limit: int = 1000,
    refusal: Callable[[InboxItem], str | None] | None = None,
) -> DrainResult:
    """Apply queued inbox items to ``wh`` (open for writing) in the order they were queued.

    ``refusal(item)`` (the caller's authoriser, e.g. alerts.permissions.queued_action_refusal
    over the current accounts) is asked again at apply time: a reason refuses the item. An
    item that fails for any reason is recorded as refused with the error and audited, so one
    bad item never blocks those queued after it.
    """
    result = DrainResult()
    with _DRAIN_LOCK:
        for item in _queued(con, limit):
            done = wh._execute(
                "SELECT outcome, message FROM review_inbox_applied WHERE action_id = ?", [item.action_id]
            )
            if done:
                _mark(con, item.action_id, done[0][0], done[0][1], now)
                result.already.append(item.action_id)
                continue
            try:
                denied = refusal(item) if refusal is not None else None
                if denied:
                    raise TransitionError(denied, fix="ask an admin to check the account's role")
                with wh.transaction():
                    message = _apply(wh, item)
                    _record(wh, item, outcome="applied", message=message, now=now)
            except Exception as exc:  # noqa: BLE001 - recorded and audited, never blocks the queue
                reason = exc.problem if isinstance(exc, TransitionError) else f"{type(exc).__name__}: {exc}"
                message = str(exc) if isinstance(exc, TransitionError) else reason
                with wh.transaction():
                    _record(wh, item, outcome="refused", message=message, now=now)
                    audit(
                        wh,
                        at=now,
                        actor=item.user,
                        action="review.refused",
                        target=item.alert_id,
                        detail={
                            "action": item.action,
                            "acted_at": item.acted_at,
                            "reason": reason,
                            "inbox_id": item.action_id,
                        },
                    )
                _mark(con, item.action_id, "refused", message, now)
                result.refused[item.action_id] = message
                continue
            _mark(con, item.action_id, "applied", message, now)
            result.applied.append(item.action_id)
    return result
