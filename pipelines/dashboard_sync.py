"""The engine's side of the dashboard: apply queued review actions, publish CAP and a snapshot.

The dashboard only reads (the newest read snapshot, the control store) and queues review
actions in the control store's inbox (:mod:`warehouse.review_inbox`). Whatever writes the
warehouse on its behalf lives here, once:

- :func:`sync_dashboard` (warehouse open for writing): drain the review inbox, render the CAP
  messages of the releases it approved (:func:`pipelines.delivery.publish_pending`: files in
  ``EWS_HOME/alerts`` and delivery rows; with ``deliver=True`` also relayed to the recipients)
  and publish a read snapshot. Called at the end of ``ews demo``, ``ews run`` and scheduled
  jobs (one line each), by ``ews serve`` before it starts, by ``ews users``, and by:
- :func:`sync_when_free`: one look by ``ews serve``'s supervisor. When actions are queued (or
  no current snapshot exists) and the warehouse's writer lock is free right now, it opens the
  warehouse, runs :func:`sync_dashboard` and closes it; a warehouse held by another process
  (a run) just means "next time", and that run applies the actions itself when it ends. Each
  look is recorded in the control store (:func:`warehouse.review_inbox.record_sync_check`):
  that is how a page tells its user "applied" or "queued".
- :class:`SyncLoop`: :func:`sync_when_free` every ``[dashboard] sync_seconds`` on one thread
  until stopped; ``ews serve`` runs it beside the Streamlit server (pipelines/cli/dashboard.py).

Never raises for a problem of its own: the run that calls :func:`sync_dashboard` has already
succeeded, and the supervisor must outlive a bad look, so a failure is logged (and recorded)
and the next call tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial

from alerts.permissions import queued_action_refusal
from core.clock import utc_now
from core.errors import WarehouseLockedError
from core.settings import Settings
from pipelines.delivery import publish_pending, relay
from warehouse import CURRENT_VERSION, Warehouse
from warehouse.review_inbox import SyncCheck, drain, pending_count, record_sync_check
from warehouse.snapshots import current_snapshot, publish_snapshot, snapshot_folder
from warehouse.users import connect_control, control_path, current_role

__all__ = ["SyncResult", "sync_dashboard", "sync_when_free", "SyncLoop"]

log = logging.getLogger("ews")


@dataclass
class SyncResult:
    applied: int = 0
    refused: int = 0
    #: CAP identifiers rendered for the releases the drained actions approved
    published: list[str] = field(default_factory=list)
    #: deliveries made by the relay (only with ``deliver=True``)
    delivered: int = 0
    snapshot: str | None = None
    #: how the snapshot was published ("copy" or "refresh", warehouse/snapshots.py) and its seconds
    snapshot_method: str | None = None
    snapshot_seconds: float | None = None
    errors: list[str] = field(default_factory=list)


def sync_dashboard(wh: Warehouse, settings: Settings, *, deliver: bool = False) -> SyncResult:
    """Drain the review inbox into ``wh``, publish the CAP messages it released and a fresh
    read snapshot. ``deliver=True`` (``ews serve``'s supervisor) also relays those messages to
    their recipients at once, as ``ews deliver`` would."""
    result = SyncResult()
    try:
        con = connect_control(control_path(settings))
        try:
            drained = drain(
                wh,
                con,
                now=utc_now(),
                refusal=lambda item: queued_action_refusal(partial(current_role, con), item.user, item.action),
            )
        finally:
            con.close()
        result.applied, result.refused = len(drained.applied), len(drained.refused)
        if drained.applied:
            result.published = publish_pending(wh, settings, now=utc_now())  # releases approved from the inbox
        if drained.applied or drained.refused:
            log.info("dashboard inbox: %d review action(s) applied, %d refused", result.applied, result.refused)
    except Exception as exc:  # noqa: BLE001 - see module docstring
        result.errors.append(f"inbox: {type(exc).__name__}: {exc}")
        log.warning("dashboard inbox not applied (%s); the next run retries", exc)
    if deliver and result.published:
        log.info("dashboard inbox: CAP %s written to %s", ", ".join(result.published), settings.path("alerts"))
        try:
            result.delivered = relay(wh, settings).delivered
        except Exception as exc:  # noqa: BLE001 - the deliveries stay due for `ews deliver`
            result.errors.append(f"relay: {type(exc).__name__}: {exc}")
            log.warning("CAP deliveries not relayed (%s); the next `ews deliver` sends them", exc)
    try:
        started = time.perf_counter()
        snap = publish_snapshot(
            wh,
            snapshot_folder(settings),
            now=utc_now(),
            keep=settings.dashboard.snapshots_keep,
            refresh=settings.dashboard.snapshot_refresh,
        )
        result.snapshot = str(snap.path)
        result.snapshot_method, result.snapshot_seconds = snap.method, round(time.perf_counter() - started, 3)
    except Exception as exc:  # noqa: BLE001
        result.errors.append(f"snapshot: {type(exc).__name__}: {exc}")
        log.warning("dashboard snapshot not published (%s); the next run retries", exc)
    return result


def _snapshot_needed(settings: Settings) -> bool:
    """No usable read snapshot: none yet, an unreadable pointer, or one from an older schema."""
    try:
        found = current_snapshot(snapshot_folder(settings))
    except Exception:  # noqa: BLE001 - an unreadable pointer is replaced by the next publication
        return True
    return found is None or found.schema_version != CURRENT_VERSION


def _look(settings: Settings, pending: int) -> tuple[str, str | None]:
    if not settings.warehouse_path.exists():
        return "no warehouse", f"no warehouse at {settings.warehouse_path} yet"
    if not pending and not _snapshot_needed(settings):
        return "idle", None
    try:
        wh = Warehouse.open(settings.warehouse_path, wait_seconds=0.0)
    except WarehouseLockedError:
        return "locked", (
            f"{pending} action(s) queued; another process holds the warehouse "
            "(its run applies them when it ends, else the next look does)"
        )
    with wh:
        result = sync_dashboard(wh, settings, deliver=True)
    if result.errors:
        return "failed", "; ".join(result.errors)
    detail = f"{result.applied} applied, {result.refused} refused"
    if result.published:
        detail += f"; CAP {', '.join(result.published)} published, {result.delivered} delivered"
    return "synced", detail


def sync_when_free(settings: Settings) -> SyncCheck:
    """One look at the review inbox (see the module docstring); returns what it found, as
    recorded in the control store."""
    con = connect_control(control_path(settings))
    try:
        try:
            outcome, detail = _look(settings, pending_count(con))
        except Exception as exc:  # noqa: BLE001 - e.g. a warehouse that cannot be migrated
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("dashboard sync failed (%s); the next look tries again", detail)
        check = SyncCheck(utc_now(), outcome, detail)
        record_sync_check(con, at=check.checked_at, outcome=outcome, detail=detail)
    finally:
        con.close()
    return check


class SyncLoop:
    """:func:`sync_when_free` every ``interval`` seconds (default ``[dashboard] sync_seconds``)
    on one daemon thread, from :meth:`start` until :meth:`stop`. One look at a time."""

    def __init__(self, settings: Settings, *, interval: float | None = None) -> None:
        self.settings = settings
        self.interval = interval if interval is not None else settings.dashboard.sync_seconds
        self.last: SyncCheck | None = None
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def start(self) -> SyncLoop:
        self._thread = threading.Thread(target=self._run, name="ews-dashboard-sync", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def tick(self) -> SyncCheck | None:
        """One look now (also usable without the thread)."""
        self._idle.clear()
        try:
            self.last = sync_when_free(self.settings)
        except Exception as exc:  # noqa: BLE001 - e.g. the control store is unwritable; keep looking
            log.warning("dashboard sync: %s: %s; trying again in %g s", type(exc).__name__, exc, self.interval)
            self.last = None
        finally:
            self._idle.set()
        return self.last

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no look is in progress (the warehouse is closed)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop looking; a look in progress finishes first (up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
