"""Review actions from the dashboard: authorise on the server, queue, report what became of it.

:func:`submit` is the only path from a button to the warehouse. It re-checks the session and
the role (:func:`dashboards.auth.require`, whatever the page showed) and queues the action in
the control store with one call (:func:`warehouse.review_inbox.enqueue`; durable from then on).
The engine applies it: ``ews serve``'s supervisor within ``[dashboard] sync_seconds`` when the
warehouse is free (pipelines/dashboard_sync.py), else the run holding the warehouse when it
ends. Meanwhile ``submit`` reads the control store to tell the user what happened: *applied*
or *refused* as soon as the supervisor has applied it; *queued* as soon as the supervisor
reports the warehouse held by a run, at once when no supervisor is looking (a dashboard not
started by ``ews serve``), and at the latest after ``sync_seconds`` + 10 s. The inbox page
shows which.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alerts.permissions import REVIEW_PERMISSION
from core.settings import Settings
from dashboards import auth, context
from warehouse.review_inbox import action_outcome, enqueue, last_sync_check

__all__ = ["PERMISSION", "Outcome", "submit"]

#: review action -> the permission it needs (alerts.permissions.ACTIONS)
PERMISSION = REVIEW_PERMISSION

#: Beyond one ``sync_seconds`` interval, how long a click waits for the supervisor's look.
_GRACE_SECONDS = 10.0
#: Why an action stays queued, by the supervisor's last look (warehouse.review_inbox.SYNC_OUTCOMES)
#: that says it cannot be applied now; shown after "queued." on the page.
_NOT_NOW = {
    "locked": "The engine holds the warehouse; it is applied when the run ends (nothing is lost).",
    "failed": "The engine could not apply it just now (see EWS_HOME/logs/ews.log); it tries again (nothing is lost).",
    "no warehouse": "There is no warehouse yet; the first `ews run` applies it (nothing is lost).",
}
_NOBODY = "No `ews serve` is applying actions; the engine's next run applies it (nothing is lost)."
_NOT_YET = "The engine has not applied it yet; it does as soon as it can (nothing is lost)."


@dataclass(frozen=True)
class Outcome:
    action_id: str
    state: str  # applied | refused | queued
    message: str | None


def submit(action: str, *, alert_id: str, **payload: Any) -> Outcome:
    """Authorise and queue one review action; report whether the engine applied it."""
    session = auth.require(PERMISSION[action])
    at = context.now()
    con = context.control()
    action_id = enqueue(con, action=action, alert_id=alert_id, user=session.user, role=session.role, at=at, **payload)
    state, message = _await_outcome(con, action_id, queued_at=at, cfg=context.settings())
    return Outcome(action_id, state, message)


def _await_outcome(
    con: sqlite3.Connection, action_id: str, *, queued_at: datetime, cfg: Settings
) -> tuple[str, str | None]:
    """Read the action's state until the supervisor has applied it or cannot now."""
    interval = cfg.dashboard.sync_seconds
    deadline = time.monotonic() + interval + _GRACE_SECONDS
    looking_since = queued_at - timedelta(seconds=3 * interval + 5)  # older: nobody is looking
    while True:
        state, message = action_outcome(con, action_id) or ("queued", None)
        if state != "queued":
            return state, message
        check = last_sync_check(con)
        if check is None or check.checked_at < looking_since:
            return "queued", _NOBODY
        if check.checked_at >= queued_at and check.outcome in _NOT_NOW:
            return "queued", _NOT_NOW[check.outcome]
        if time.monotonic() >= deadline:
            return "queued", _NOT_YET
        time.sleep(0.1)
