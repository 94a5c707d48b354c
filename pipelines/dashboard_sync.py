"""The engine's side of the dashboard: apply queued review actions, publish a read snapshot.

Called with the warehouse open for writing, at the end of ``ews demo`` and ``ews run`` (one
line in pipelines/cli/main.py), by ``ews serve`` before it starts, and by the dashboard itself when
it finds the warehouse free. Never raises for a problem of its own: the run that calls it has
already succeeded, so a failure here is logged and the next call tries again.
"""

from __future__ import annotations

import logging
from functools import partial
from dataclasses import dataclass, field

from alerts.permissions import queued_action_refusal
from core.settings import Settings
from pipelines.delivery import publish_pending
from core.clock import utc_now
from warehouse import Warehouse
from warehouse.review_inbox import drain
from warehouse.snapshots import publish_snapshot, snapshot_folder
from warehouse.users import connect_control, control_path, current_role

__all__ = ["SyncResult", "sync_dashboard"]

log = logging.getLogger("ews")


@dataclass
class SyncResult:
    applied: int = 0
    refused: int = 0
    snapshot: str | None = None
    errors: list[str] = field(default_factory=list)


def sync_dashboard(wh: Warehouse, settings: Settings) -> SyncResult:
    """Drain the review inbox into ``wh`` and publish a fresh read snapshot."""
    result = SyncResult()
    try:
        con = connect_control(control_path(settings))
        try:
            drained = drain(wh, con, now=utc_now(), refusal=lambda item: queued_action_refusal(
                partial(current_role, con), item.user, item.action))
        finally:
            con.close()
        result.applied, result.refused = len(drained.applied), len(drained.refused)
        if drained.applied:
            publish_pending(wh, settings, now=utc_now())  # releases approved from the inbox
        if drained.applied or drained.refused:
            log.info("dashboard inbox: %d review action(s) applied, %d refused",
                     result.applied, result.refused)
    except Exception as exc:  # noqa: BLE001 - see module docstring
        result.errors.append(f"inbox: {type(exc).__name__}: {exc}")
        log.warning("dashboard inbox not applied (%s); the next run retries", exc)
    try:
        snap = publish_snapshot(wh, snapshot_folder(settings), now=utc_now(),
                                keep=settings.dashboard.snapshots_keep)
        result.snapshot = str(snap.path)
    except Exception as exc:  # noqa: BLE001
        result.errors.append(f"snapshot: {type(exc).__name__}: {exc}")
        log.warning("dashboard snapshot not published (%s); the next run retries", exc)
    return result
