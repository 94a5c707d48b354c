"""Review actions from the dashboard: authorise on the server, queue, apply when possible.

:func:`submit` is the only path from a button to the warehouse. It re-checks the session and
the role (:func:`dashboards.auth.require`, whatever the page showed), queues the action in the
control store (durable from then on) and applies it at once when the warehouse is free. While
the engine holds the warehouse the action stays queued and the engine applies it when its run
ends; the inbox page shows which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.permissions import REVIEW_PERMISSION
from dashboards import auth, context
from warehouse.review_inbox import enqueue, read_inbox

__all__ = ["PERMISSION", "Outcome", "submit"]

#: review action -> the permission it needs (alerts.permissions.ACTIONS)
PERMISSION = REVIEW_PERMISSION


@dataclass(frozen=True)
class Outcome:
    action_id: str
    state: str  # applied | refused | queued
    message: str | None


def submit(action: str, *, alert_id: str, **payload: Any) -> Outcome:
    """Authorise, queue and (if the warehouse is free) apply one review action."""
    session = auth.require(PERMISSION[action])
    at = context.now()
    action_id = enqueue(context.control(), action=action, alert_id=alert_id, user=session.user,
                        role=session.role, at=at, **payload)
    context.try_sync()
    row = read_inbox(context.control(), user=session.user, alert_id=alert_id, limit=20)
    mine = row.filter(row["action_id"] == action_id) if row.height else row
    if mine.height == 0:
        return Outcome(action_id, "queued", None)
    return Outcome(action_id, mine.item(0, "state"), mine.item(0, "message"))
