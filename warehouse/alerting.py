"""SQL of the alert step, the judgments, the CAP outbox, recipients, deliveries and the LLM
switches.

Every function takes an open :class:`~warehouse.store.Warehouse`; values are bound
parameters. Callers group writes with ``wh.transaction()`` (the alert step writes alerts,
transitions, notices, provisional judgments and outbox events in one; the final judgments and
review flags follow in short transactions of their own, see pipelines/cycle.py). Writes are
set-based where they take a frame (``upsert_alert_rows``, ``upsert_notices``). Times are naive UTC.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from core.errors import DeliveryError
from core.vocabulary import WARNING_LEVEL_NAMES
from warehouse.review import record_transition
from warehouse.store import Warehouse

__all__ = [
    "ALERT_VALUES",
    "read_open_alerts",
    "read_alerts_full",
    "upsert_alert_rows",
    "closed_group_leads",
    "open_alerts_with_judgment_verdict",
    "delete_other_judgments_with_verdict",
    "write_transitions",
    "upsert_notices",
    "read_notices",
    "published_alert_ids",
    "set_review_flag",
    "pending_outbox",
    "cap_history",
    "next_free_identifier",
    "insert_cap_message",
    "read_cap_messages",
    "add_recipient",
    "read_recipients",
    "deactivate_recipient",
    "create_deliveries",
    "due_deliveries",
    "record_delivery_attempt",
    "delivery_counts",
    "read_deliveries",
    "get_control",
    "set_control",
    "read_controls",
    "insert_judgments",
    "read_judgments",
]

#: Columns of a planned data-gap notice (alerts.lifecycle); the warehouse adds the times and run.
_NOTICE_COLUMNS = ("notice_id", "unique_id", "hazard", "region", "kind", "detail")

ALERT_VALUES = (
    "run_id",
    "unique_id",
    "domain",
    "region",
    "hazard",
    "level",
    "status",
    "ds",
    "score",
    "evidence",
    "opened_at",
    "updated_at",
    "release_state",
    "expires_at",
)


# -- alerts ------------------------------------------------------------------------------
def read_open_alerts(wh: Warehouse) -> pl.DataFrame:
    return wh._frame("SELECT * FROM alerts WHERE status = 'open' ORDER BY opened_at, alert_id")


def read_alerts_full(
    wh: Warehouse, *, statuses: Sequence[str] | None = None, alert_ids: Sequence[str] | None = None
) -> pl.DataFrame:
    sql = "SELECT * FROM alerts WHERE true"
    params: list[Any] = []
    if statuses is not None:
        sql += " AND status IN (SELECT unnest(?))"
        params.append(list(statuses))
    if alert_ids is not None:
        sql += " AND alert_id IN (SELECT unnest(?))"
        params.append(list(alert_ids))
    return wh._frame(sql + " ORDER BY opened_at, alert_id", params)


def upsert_alert_rows(wh: Warehouse, alerts: pl.DataFrame, *, run_id: str) -> int:
    """Insert or update alert rows; identical rows are left alone (so reruns change nothing)."""
    if alerts.height == 0:
        return 0
    return wh._upsert_rows(
        "alerts", alerts.with_columns(pl.lit(run_id).alias("run_id")), keys=("alert_id",), values=ALERT_VALUES
    )


def closed_group_leads(wh: Warehouse) -> list[tuple[str, str, datetime]]:
    """(hazard, region, newest ``ds``) of the expired, resolved or cancelled alerts of each
    hazard + region."""
    return wh._execute(
        "SELECT hazard, region, max(ds) FROM alerts "
        "WHERE status IN ('expired', 'resolved', 'cancelled') GROUP BY hazard, region"
    )


def open_alerts_with_judgment_verdict(wh: Warehouse, verdict: str) -> pl.DataFrame:
    """Open alerts whose newest judgment has ``checks.verdict`` = ``verdict``: every alert
    column plus ``judged_at`` (when that judgment was written), oldest alert first."""
    return wh._frame(
        "SELECT a.*, j.created_at AS judged_at FROM alerts a JOIN ("
        "  SELECT alert_id, checks, created_at, row_number() OVER ("
        "    PARTITION BY alert_id ORDER BY created_at DESC, judgment_id DESC) AS n FROM judgments"
        ") j ON j.alert_id = a.alert_id AND j.n = 1 "
        "WHERE a.status = 'open' AND json_extract_string(j.checks, '$.verdict') = ? "
        "ORDER BY a.opened_at, a.alert_id",
        [verdict],
    )


def delete_other_judgments_with_verdict(wh: Warehouse, *, alert_id: str, keep_judgment_id: str, verdict: str) -> None:
    """Delete the judgments of ``alert_id`` with ``checks.verdict`` = ``verdict``, except
    ``keep_judgment_id``."""
    wh._execute(
        "DELETE FROM judgments WHERE alert_id = ? AND judgment_id <> ? "
        "AND json_extract_string(checks, '$.verdict') = ?",
        [alert_id, keep_judgment_id, verdict],
    )


def write_transitions(wh: Warehouse, transitions: list[dict[str, Any]], *, at: datetime, run_id: str | None) -> int:
    for t in transitions:
        record_transition(
            wh,
            alert_id=t["alert_id"],
            at=at,
            action=t["action"],
            actor=t["actor"],
            before=t["before"],
            after=t["after"],
            reason=t["reason"],
            run_id=run_id,
        )
    return len(transitions)


def upsert_notices(wh: Warehouse, notices: pl.DataFrame, *, at: datetime, run_id: str) -> int:
    """Open data-gap notices (one per series, kind and triggering time), set-based; a repeat
    only moves ``last_seen``. Returns the number of new notices.

    Like :meth:`Warehouse._upsert_rows`: the frame is registered and written by one
    ``INSERT ... SELECT ... ON CONFLICT`` (plus one count of the new ids), whatever its size.
    A new notice gets ``first_seen = last_seen = at`` and this ``run_id``; a notice already
    stored keeps its ``first_seen``, ``run_id`` and ``detail`` (as first raised) and only its
    ``last_seen`` moves forward to ``at`` (never back).
    """
    if notices.height == 0:
        return 0
    incoming = notices.select(_NOTICE_COLUMNS).unique("notice_id", keep="first", maintain_order=True)
    with wh._registered("incoming_notices", incoming):
        new = wh._execute(
            "SELECT count(*) FROM incoming_notices WHERE notice_id NOT IN (SELECT notice_id FROM data_gap_notices)"
        )[0][0]
        wh._execute(
            f"INSERT INTO data_gap_notices ({', '.join(_NOTICE_COLUMNS)}, first_seen, last_seen, run_id) "
            f"SELECT {', '.join(_NOTICE_COLUMNS)}, ?, ?, ? FROM incoming_notices "
            "ON CONFLICT (notice_id) DO UPDATE SET last_seen = excluded.last_seen "
            "WHERE data_gap_notices.last_seen < excluded.last_seen",
            [at, at, run_id],
        )
    return new


def read_notices(wh: Warehouse) -> pl.DataFrame:
    return wh._frame("SELECT * FROM data_gap_notices ORDER BY first_seen, notice_id")


def published_alert_ids(wh: Warehouse) -> set[str]:
    return {r[0] for r in wh._execute("SELECT DISTINCT alert_id FROM outbox")}


def set_review_flag(wh: Warehouse, alert_id: str, flag: str | None) -> None:
    wh._execute(
        "UPDATE alerts SET review_flag = ? WHERE alert_id = ? AND review_flag IS DISTINCT FROM ?",
        [flag, alert_id, flag],
    )


# -- outbox and CAP messages -----------------------------------------------------------------
def pending_outbox(wh: Warehouse) -> pl.DataFrame:
    """Outbox events not yet rendered as CAP, oldest first."""
    return wh._frame("SELECT * FROM outbox WHERE identifier IS NULL ORDER BY created_at, event_id")


def cap_history(wh: Warehouse, alert_id: str) -> list[tuple[str, str]]:
    """(identifier, sent) of every CAP message of an alert, oldest first (for references)."""
    return [
        (r[0], r[1])
        for r in wh._execute(
            "SELECT identifier, sent FROM cap_messages WHERE alert_id = ? ORDER BY created_at, identifier", [alert_id]
        )
    ]


def next_free_identifier(wh: Warehouse, candidates: Sequence[str]) -> str:
    """The first candidate identifier not used yet (GB/T identifiers are per second)."""
    used = {
        r[0]
        for r in wh._execute(
            "SELECT identifier FROM cap_messages WHERE identifier IN (SELECT unnest(?))", [list(candidates)]
        )
    }
    for candidate in candidates:
        if candidate not in used:
            return candidate
    raise DeliveryError(
        f"all {len(candidates)} candidate CAP identifiers are taken", fix="wait a minute and run `ews deliver` again"
    )


def insert_cap_message(wh: Warehouse, *, event_id: str, message: dict[str, Any], at: datetime) -> None:
    """Store a rendered CAP message and mark its outbox event published (one transaction)."""
    with wh.transaction():
        wh._execute(
            "INSERT INTO cap_messages (identifier, event_id, alert_id, msg_type, status, sent, refs, "
            "level, hazard, region, xml, valid, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                message["identifier"],
                event_id,
                message["alert_id"],
                message["msg_type"],
                message["status"],
                message["sent"],
                message["refs"],
                message["level"],
                message["hazard"],
                message["region"],
                message["xml"],
                message["valid"],
                at,
            ],
        )
        wh._execute(
            "UPDATE outbox SET identifier = ?, published_at = ? WHERE event_id = ?",
            [message["identifier"], at, event_id],
        )


def read_cap_messages(wh: Warehouse, *, alert_id: str | None = None) -> pl.DataFrame:
    sql = "SELECT * FROM cap_messages"
    params: list[Any] = []
    if alert_id is not None:
        sql += " WHERE alert_id = ?"
        params.append(alert_id)
    return wh._frame(sql + " ORDER BY created_at, identifier", params)


# -- recipients and deliveries ----------------------------------------------------------------
def add_recipient(
    wh: Warehouse,
    *,
    recipient_id: str,
    name: str,
    channel: str,
    target: str,
    regions: Sequence[str] = (),
    hazards: Sequence[str] = (),
    indicators: Sequence[str] = (),
    min_level: str = "blue",
    at: datetime,
) -> None:
    if channel not in ("folder", "webhook"):
        raise DeliveryError(f"channel {channel!r} is not supported", fix="use folder or webhook")
    if min_level not in WARNING_LEVEL_NAMES:
        raise DeliveryError(
            f"min level {min_level!r} is unknown",
            fix=f"use {', '.join(WARNING_LEVEL_NAMES[:-1])} or {WARNING_LEVEL_NAMES[-1]}",
        )
    if channel == "webhook" and not target.startswith(("http://", "https://")):
        raise DeliveryError(
            f"webhook target {target!r} is not an http(s) URL",
            fix="give the receiver's URL, e.g. https://bureau.example/cap",
        )
    wh._execute(
        "INSERT INTO recipients (recipient_id, name, channel, target, regions, hazards, indicators, "
        "min_level, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, true, ?) "
        "ON CONFLICT (recipient_id) DO UPDATE SET name = excluded.name, channel = excluded.channel, "
        "target = excluded.target, regions = excluded.regions, hazards = excluded.hazards, "
        "indicators = excluded.indicators, min_level = excluded.min_level, active = true",
        [
            recipient_id,
            name,
            channel,
            target,
            json.dumps(list(regions)),
            json.dumps(list(hazards)),
            json.dumps(list(indicators)),
            min_level,
            at,
        ],
    )


def read_recipients(wh: Warehouse, *, active_only: bool = True) -> pl.DataFrame:
    sql = "SELECT * FROM recipients" + (" WHERE active" if active_only else "")
    return wh._frame(sql + " ORDER BY recipient_id")


def deactivate_recipient(wh: Warehouse, recipient_id: str) -> bool:
    rows = wh._execute(
        "UPDATE recipients SET active = false WHERE recipient_id = ? AND active RETURNING 1", [recipient_id]
    )
    return bool(rows)


def create_deliveries(wh: Warehouse, *, identifier: str, recipient_ids: Sequence[str], at: datetime) -> int:
    n = 0
    for rid in recipient_ids:
        n += len(
            wh._execute(
                "INSERT INTO deliveries (delivery_id, identifier, recipient_id, state, attempts, "
                "next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                [f"{identifier}>{rid}", identifier, rid, at, at],
            )
        )
    return n


def due_deliveries(wh: Warehouse, *, at: datetime) -> pl.DataFrame:
    """Pending deliveries whose next attempt is due, with the message and the recipient."""
    return wh._frame(
        "SELECT d.delivery_id, d.identifier, d.recipient_id, d.attempts, d.next_attempt_at, "
        "r.channel, r.target, r.name, m.xml, m.alert_id FROM deliveries d "
        "JOIN recipients r USING (recipient_id) JOIN cap_messages m USING (identifier) "
        "WHERE d.state = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.delivery_id",
        [at],
    )


def record_delivery_attempt(
    wh: Warehouse, *, delivery_id: str, at: datetime, ok: bool, error: str | None, max_attempts: int, backoff: timedelta
) -> str:
    """Count one attempt; returns the new state (delivered, pending with a later retry, dead)."""
    attempts = wh._execute("SELECT attempts FROM deliveries WHERE delivery_id = ?", [delivery_id])[0][0] + 1
    if ok:
        state = "delivered"
    elif attempts >= max_attempts:
        state = "dead"
    else:
        state = "pending"
    wh._execute(
        "UPDATE deliveries SET attempts = ?, state = ?, last_error = ?, next_attempt_at = ?, "
        "finished_at = ? WHERE delivery_id = ?",
        [attempts, state, error, at + backoff, at if state != "pending" else None, delivery_id],
    )
    return state


def delivery_counts(wh: Warehouse) -> dict[str, int]:
    counts = dict(wh._execute("SELECT state, count(*) FROM deliveries GROUP BY state"))
    return {s: counts.get(s, 0) for s in ("pending", "delivered", "dead")}


def read_deliveries(wh: Warehouse, *, state: str | None = None) -> pl.DataFrame:
    sql = "SELECT * FROM deliveries"
    params: list[Any] = []
    if state is not None:
        sql += " WHERE state = ?"
        params.append(state)
    return wh._frame(sql + " ORDER BY created_at, delivery_id", params)


# -- LLM switches -------------------------------------------------------------------------------
def get_control(wh: Warehouse, name: str) -> Any:
    rows = wh._execute("SELECT value FROM llm_controls WHERE name = ?", [name])
    return json.loads(rows[0][0]) if rows else None


def set_control(wh: Warehouse, name: str, value: Any, *, by: str, at: datetime) -> None:
    wh._execute(
        "INSERT INTO llm_controls (name, value, set_by, set_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_by = excluded.set_by, "
        "set_at = excluded.set_at",
        [name, json.dumps(value), by, at],
    )


def read_controls(wh: Warehouse) -> pl.DataFrame:
    return wh._frame("SELECT * FROM llm_controls ORDER BY name")


# -- judgments ---------------------------------------------------------------------------
def insert_judgments(wh: Warehouse, judgments: pl.DataFrame) -> int:
    return wh._upsert("judgments", judgments)


def read_judgments(wh: Warehouse, alert_ids: Sequence[str] | None = None) -> pl.DataFrame:
    sql = "SELECT * FROM judgments"
    params: list[Any] = []
    if alert_ids is not None:
        sql += " WHERE alert_id IN (SELECT unnest(?))"
        params.append(list(alert_ids))
    return wh._frame(sql + " ORDER BY created_at, judgment_id", params)
