"""Review actions on alerts: acknowledge, approve or reject release, silence, feedback, cancel.

Contract (what the dashboard and the ``ews alerts`` commands rely on):

- Each action validates the alert's current state first and raises
  :class:`core.errors.TransitionError` (with the fix) when the action does not fit, e.g.
  approving an alert that is resolved or already released.
- Each action writes, in ONE transaction: the alert change (if any), one
  ``alert_transitions`` row naming the acting ``user`` and the reason, and one ``audit_log``
  row. Approving a release also writes the ``outbox`` event the relay publishes as CAP (so an
  approved alert can never be lost between the decision and delivery).
- Role checks are NOT here: the caller (dashboard, CLI) authorises; these functions take the
  acting user's name and record it.
- ``at`` is the time of the action (the caller's clock); nothing here reads the clock.

State model of an alert (columns of ``alerts``):
``status``: open → resolved | expired | cancelled (set by the cycle, or by :func:`cancel_alert`);
``release_state``: pending (awaits a duty officer) → released | rejected; suppressed (held by a
silence or stale data) → released on approval.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import polars as pl

from core.errors import TransitionError
from core.vocabulary import AlertStatus, ReleaseState, Verdict
from warehouse.runs import audit
from warehouse.store import Warehouse

__all__ = [
    "STATUSES",
    "RELEASE_STATES",
    "VERDICTS",
    "acknowledge",
    "approve_release",
    "reject_release",
    "silence",
    "lift_silence",
    "mark_feedback",
    "cancel_alert",
    "read_alert",
    "read_transitions",
    "read_silences",
    "read_feedback",
    "record_transition",
    "queue_release",
]

# the vocabularies of the alert columns (core.vocabulary), as plain strings
STATUSES = AlertStatus.values()
RELEASE_STATES = ReleaseState.values()
VERDICTS = Verdict.values()

_ALERT_FIELDS = (
    "alert_id",
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
    "review_flag",
)


# -- readers -----------------------------------------------------------------------------
def read_alert(wh: Warehouse, alert_id: str) -> dict[str, Any]:
    """The alert row as a dict, or TransitionError naming how to find valid ids."""
    rows = wh._execute(f"SELECT {', '.join(_ALERT_FIELDS)} FROM alerts WHERE alert_id = ?", [alert_id])
    if not rows:
        raise TransitionError(
            f"no alert {alert_id!r}",
            fix="list alert ids with `ews alerts list` (ids look like a_0123abcd...)",
        )
    return dict(zip(_ALERT_FIELDS, rows[0], strict=True))


def read_transitions(wh: Warehouse, alert_id: str) -> pl.DataFrame:
    """Every recorded transition of one alert, oldest first."""
    return wh._frame(
        "SELECT transition_id, alert_id, at_time, action, actor, from_status, to_status, "
        "from_level, to_level, from_release, to_release, reason, run_id "
        "FROM alert_transitions WHERE alert_id = ? ORDER BY transition_id",
        [alert_id],
    )


def read_silences(wh: Warehouse, *, active_at: datetime | None = None) -> pl.DataFrame:
    """All silences, or only those in force at ``active_at`` (not lifted, not yet ended)."""
    sql = (
        "SELECT silence_id, alert_id, hazard, region, owner, reason, created_at, until, "
        "lifted_at, lifted_by FROM silences"
    )
    params: list[Any] = []
    if active_at is not None:
        sql += " WHERE lifted_at IS NULL AND created_at <= ? AND until > ?"
        params += [active_at, active_at]
    return wh._frame(sql + " ORDER BY created_at, silence_id", params)


def read_feedback(wh: Warehouse) -> pl.DataFrame:
    """Analyst verdicts with the alert snapshot (series, level, score) they were given on."""
    return wh._frame(
        "SELECT feedback_id, alert_id, unique_id, level, score, user_name, at_time, verdict, note "
        "FROM feedback ORDER BY feedback_id"
    )


# -- writers used by the actions and by the cycle ------------------------------------------
def record_transition(
    wh: Warehouse,
    *,
    alert_id: str,
    at: datetime,
    action: str,
    actor: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None = None,
    run_id: str | None = None,
) -> None:
    """Append one ``alert_transitions`` row (status, level and release state before/after)."""

    def get(row: dict[str, Any] | None, key: str) -> Any:
        return None if row is None else row.get(key)

    wh._execute(
        "INSERT INTO alert_transitions (alert_id, at_time, action, actor, from_status, to_status, "
        "from_level, to_level, from_release, to_release, reason, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            alert_id,
            at,
            action,
            actor,
            get(before, "status"),
            get(after, "status"),
            get(before, "level"),
            get(after, "level"),
            get(before, "release_state"),
            get(after, "release_state"),
            reason,
            run_id,
        ],
    )


def queue_release(
    wh: Warehouse,
    alert: dict[str, Any],
    *,
    at: datetime,
    actor: str,
    msg_type: str | None = None,
    reason: str | None = None,
) -> str:
    """Write the outbox event that makes the relay publish ``alert`` as CAP; return its id.

    ``msg_type`` defaults to Alert for the first message of an alert and Update after that.
    Call inside the transaction that changes the alert (the outbox pattern).
    """
    previous = wh._execute("SELECT count(*) FROM outbox WHERE alert_id = ?", [alert["alert_id"]])[0][0]
    if msg_type is None:
        msg_type = "Alert" if previous == 0 else "Update"
    event_id = f"{alert['alert_id']}:{previous + 1}"
    snapshot = {k: alert.get(k) for k in _ALERT_FIELDS}
    wh._execute(
        "INSERT INTO outbox (event_id, alert_id, msg_type, snapshot, created_at, created_by, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [event_id, alert["alert_id"], msg_type, json.dumps(snapshot, default=_iso), at, actor, reason],
    )
    return event_id


# -- actions -----------------------------------------------------------------------------
def acknowledge(wh: Warehouse, *, alert_id: str, user: str, at: datetime, note: str | None = None) -> dict[str, Any]:
    """Record that ``user`` has seen the alert (no state change; once per user)."""
    _need_user(user)
    with wh.transaction():
        alert = read_alert(wh, alert_id)
        _need_status(alert, (AlertStatus.OPEN,), "acknowledge")
        done = wh._execute(
            "SELECT count(*) FROM alert_transitions WHERE alert_id = ? AND action = 'acknowledged' AND actor = ?",
            [alert_id, user],
        )[0][0]
        if done:
            raise TransitionError(
                f"alert {alert_id} is already acknowledged by {user!r}",
                fix="nothing to do; add a note with `ews alerts feedback` if the verdict is known",
            )
        record_transition(
            wh, alert_id=alert_id, at=at, action="acknowledged", actor=user, before=alert, after=alert, reason=note
        )
        audit(
            wh,
            at=at,
            actor=user,
            action="alert.acknowledged",
            target=alert_id,
            detail={"note": note, "level": alert["level"]},
        )
    return read_alert(wh, alert_id)


def approve_release(wh: Warehouse, *, alert_id: str, user: str, at: datetime) -> dict[str, Any]:
    """A duty officer releases an open alert: release_state → released, outbox event written."""
    _need_user(user)
    with wh.transaction():
        alert = read_alert(wh, alert_id)
        _need_status(alert, (AlertStatus.OPEN,), "approve")
        if alert["release_state"] == ReleaseState.RELEASED:
            raise TransitionError(
                f"alert {alert_id} is already released",
                fix="nothing to approve; a later level change puts it back into review if needed",
            )
        after = _set_release(wh, alert, ReleaseState.RELEASED, at)
        event_id = queue_release(wh, after, at=at, actor=user, reason="approved by duty officer")
        record_transition(
            wh,
            alert_id=alert_id,
            at=at,
            action="approved",
            actor=user,
            before=alert,
            after=after,
            reason=f"outbox {event_id}",
        )
        audit(
            wh,
            at=at,
            actor=user,
            action="alert.approved",
            target=alert_id,
            detail={"level": alert["level"], "from": alert["release_state"], "outbox": event_id},
        )
    return read_alert(wh, alert_id)


def reject_release(wh: Warehouse, *, alert_id: str, user: str, at: datetime, reason: str) -> dict[str, Any]:
    """A duty officer holds an alert back: pending/suppressed → rejected, with a reason."""
    _need_user(user)
    _need_text(reason, "reason", "say why it must not go out, e.g. --reason 'sensor fault'")
    with wh.transaction():
        alert = read_alert(wh, alert_id)
        _need_status(alert, (AlertStatus.OPEN,), "reject")
        if alert["release_state"] == ReleaseState.RELEASED:
            raise TransitionError(
                f"alert {alert_id} is already released; rejecting cannot recall it",
                fix=f"withdraw it with `ews alerts cancel {alert_id} --reason ...` (CAP Cancel)",
            )
        if alert["release_state"] == ReleaseState.REJECTED:
            raise TransitionError(
                f"alert {alert_id} is already rejected", fix="nothing to do; approve it if you changed your mind"
            )
        after = _set_release(wh, alert, ReleaseState.REJECTED, at)
        record_transition(
            wh, alert_id=alert_id, at=at, action="rejected", actor=user, before=alert, after=after, reason=reason
        )
        audit(
            wh,
            at=at,
            actor=user,
            action="alert.rejected",
            target=alert_id,
            detail={"level": alert["level"], "reason": reason},
        )
    return read_alert(wh, alert_id)


def silence(wh: Warehouse, *, alert_id: str, user: str, at: datetime, reason: str, until: datetime) -> dict[str, Any]:
    """Silence the alert's hazard + region until ``until``: no automatic release meanwhile.

    Returns the silence row. The alert keeps being tracked (levels, transitions); what a
    silence stops is messages going out without a human decision.
    """
    _need_user(user)
    _need_text(reason, "reason", "say why, e.g. --reason 'known maintenance at the gauge'")
    if until <= at:
        raise TransitionError(
            f"silence end {until.isoformat()} is not after its start {at.isoformat()}",
            fix="give an end time in the future, e.g. --hours 6",
        )
    with wh.transaction():
        alert = read_alert(wh, alert_id)
        silence_id = f"s_{at:%Y%m%d%H%M%S}_{secrets.token_hex(3)}"
        wh._execute(
            "INSERT INTO silences (silence_id, alert_id, hazard, region, owner, reason, created_at, until) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [silence_id, alert_id, alert["hazard"], alert["region"], user, reason, at, until],
        )
        after = alert
        if alert["status"] == AlertStatus.OPEN and alert["release_state"] == ReleaseState.PENDING:
            after = _set_release(wh, alert, ReleaseState.SUPPRESSED, at)
        record_transition(
            wh,
            alert_id=alert_id,
            at=at,
            action="silenced",
            actor=user,
            before=alert,
            after=after,
            reason=f"{reason} (until {until.isoformat()}, {silence_id})",
        )
        audit(
            wh,
            at=at,
            actor=user,
            action="alert.silenced",
            target=alert_id,
            detail={
                "silence_id": silence_id,
                "hazard": alert["hazard"],
                "region": alert["region"],
                "until": until,
                "reason": reason,
            },
        )
    return read_silences(wh).filter(pl.col("silence_id") == silence_id).to_dicts()[0]


def lift_silence(wh: Warehouse, *, silence_id: str, user: str, at: datetime) -> None:
    """End a silence early."""
    _need_user(user)
    with wh.transaction():
        rows = wh._execute("SELECT alert_id, lifted_at FROM silences WHERE silence_id = ?", [silence_id])
        if not rows:
            raise TransitionError(f"no silence {silence_id!r}", fix="list silences with `ews alerts silences`")
        if rows[0][1] is not None:
            raise TransitionError(f"silence {silence_id} was already lifted at {rows[0][1]}", fix="nothing to do")
        wh._execute("UPDATE silences SET lifted_at = ?, lifted_by = ? WHERE silence_id = ?", [at, user, silence_id])
        audit(wh, at=at, actor=user, action="silence.lifted", target=silence_id, detail={"alert_id": rows[0][0]})


def mark_feedback(
    wh: Warehouse, *, alert_id: str, user: str, at: datetime, verdict: str, note: str | None = None
) -> dict[str, Any]:
    """Store an analyst's verdict (confirmed / false_alarm) on an alert, in any status."""
    _need_user(user)
    if verdict not in VERDICTS:
        raise TransitionError(
            f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}",
            fix="use --verdict confirmed or --verdict false_alarm",
        )
    with wh.transaction():
        alert = read_alert(wh, alert_id)
        wh._execute(
            "INSERT INTO feedback (alert_id, unique_id, level, score, user_name, at_time, verdict, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [alert_id, alert["unique_id"], alert["level"], alert["score"], user, at, verdict, note],
        )
        record_transition(
            wh,
            alert_id=alert_id,
            at=at,
            action=f"feedback.{verdict}",
            actor=user,
            before=alert,
            after=alert,
            reason=note,
        )
        audit(
            wh,
            at=at,
            actor=user,
            action="alert.feedback",
            target=alert_id,
            detail={"verdict": verdict, "note": note, "level": alert["level"]},
        )
    return read_feedback(wh).filter(pl.col("alert_id") == alert_id).to_dicts()[-1]


def cancel_alert(wh: Warehouse, *, alert_id: str, user: str, at: datetime, reason: str) -> dict[str, Any]:
    """Withdraw a wrong alert: status → cancelled; if any message went out, queue a CAP Cancel."""
    _need_user(user)
    _need_text(reason, "reason", "say why the alert was wrong, e.g. --reason 'gauge fault'")
    with wh.transaction():
        alert = read_alert(wh, alert_id)
        if alert["status"] == AlertStatus.CANCELLED:
            raise TransitionError(f"alert {alert_id} is already cancelled", fix="nothing to do")
        wh._execute("UPDATE alerts SET status = 'cancelled', updated_at = ? WHERE alert_id = ?", [at, alert_id])
        after = read_alert(wh, alert_id)
        sent = wh._execute("SELECT count(*) FROM outbox WHERE alert_id = ?", [alert_id])[0][0]
        event_id = None
        if sent:
            event_id = queue_release(wh, after, at=at, actor=user, msg_type="Cancel", reason=reason)
        record_transition(
            wh, alert_id=alert_id, at=at, action="cancelled", actor=user, before=alert, after=after, reason=reason
        )
        audit(
            wh,
            at=at,
            actor=user,
            action="alert.cancelled",
            target=alert_id,
            detail={"reason": reason, "cap_cancel_outbox": event_id},
        )
    return read_alert(wh, alert_id)


# -- helpers -----------------------------------------------------------------------------
def _set_release(wh: Warehouse, alert: dict[str, Any], state: str, at: datetime) -> dict[str, Any]:
    wh._execute(
        "UPDATE alerts SET release_state = ?, updated_at = ? WHERE alert_id = ?", [state, at, alert["alert_id"]]
    )
    return {**alert, "release_state": state, "updated_at": at}


def _need_status(alert: dict[str, Any], allowed: tuple[str, ...], verb: str) -> None:
    if alert["status"] not in allowed:
        raise TransitionError(
            f"cannot {verb} alert {alert['alert_id']}: it is {alert['status']}, expected {' or '.join(allowed)}",
            fix=f"only open alerts take this action; see its history with `ews alerts show {alert['alert_id']}`",
        )


def _need_user(user: str) -> None:
    if not user or not user.strip():
        raise TransitionError("no acting user given", fix="pass --user NAME (it is recorded in the audit log)")


def _need_text(value: str | None, name: str, fix: str) -> None:
    if not value or not value.strip():
        raise TransitionError(f"a {name} is required and was empty", fix=fix)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
