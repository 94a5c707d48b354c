"""What every page shares: settings, the control store, the read snapshot and cached reads.

The dashboard never opens the live warehouse to read: it reads the newest *read snapshot*
(:mod:`warehouse.snapshots`), so a running ``ews run`` / ``ews ingest`` never blocks a page
and a page never blocks a run. Reads are cached per snapshot (``st.cache_data`` keyed by the
snapshot file, which is immutable), so a page shows cached data until a new snapshot is
published. The only writes are review actions and audit entries, queued in the control store
and applied by :func:`try_sync` when the warehouse is free (else by the engine's next run).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from datetime import UTC, datetime
from typing import Any

import polars as pl
import streamlit as st

from alerts.permissions import queued_action_refusal
from core.errors import WarehouseLockedError
from core.settings import Settings, load_settings
from warehouse import CURRENT_VERSION, Warehouse
from warehouse import dashboard_reads as reads
from warehouse.review_inbox import drain, pending_count
from warehouse.snapshots import Snapshot, current_snapshot, publish_snapshot, snapshot_folder
from warehouse.users import connect_control, control_path, current_role

__all__ = [
    "now",
    "settings",
    "control",
    "snapshot",
    "read",
    "try_sync",
    "sync_if_pending",
]

_SYNC_INTERVAL_SECONDS = 15.0
_last_sync_attempt = 0.0
_sync_lock = threading.Lock()


def now() -> datetime:
    """The dashboard's clock: naive UTC, like the warehouse."""
    return datetime.now(UTC).replace(tzinfo=None)


@st.cache_resource(show_spinner=False)
def _settings(home: str) -> Settings:
    return load_settings(home)


def settings() -> Settings:
    """Settings of the EWS_HOME the server was started on (``ews serve`` sets EWS_HOME)."""
    return _settings(os.environ.get("EWS_HOME", "ews-home"))


def control() -> sqlite3.Connection:
    """A connection to the control store (accounts, review inbox).

    A new one per call (about a millisecond): Streamlit runs sessions on threads, and a shared
    SQLite connection would mix their transactions. CPython closes it when it goes out of use.
    """
    return connect_control(control_path(settings()))


def snapshot() -> Snapshot | None:
    """The newest read snapshot; publishes one first if none exists and the warehouse is free."""
    found = current_snapshot(snapshot_folder(settings()))
    stale = found is not None and found.schema_version != CURRENT_VERSION  # engine upgraded
    if (found is None or stale) and settings().warehouse_path.exists():
        try_sync()
        found = current_snapshot(snapshot_folder(settings()))
    return found


@st.cache_data(show_spinner=False, max_entries=512)
def _cached(path: str, name: str, kwargs: tuple[tuple[str, Any], ...]) -> Any:
    function: Callable[..., Any] = getattr(reads, name)
    with Warehouse.open(path, read_only=True) as wh:
        return function(wh, **dict(kwargs))


def read(name: str, **kwargs: Any) -> Any:
    """Call ``warehouse.dashboard_reads.<name>`` on the current snapshot, cached per snapshot."""
    snap = snapshot()
    if snap is None:
        return pl.DataFrame()
    return _cached(str(snap.path), name, tuple(sorted(kwargs.items())))


def try_sync() -> bool:
    """Apply queued review actions and publish a snapshot if the warehouse is free right now.

    Returns False when another process (the engine) holds the warehouse: the actions stay
    queued and the engine applies them when its run ends.
    """
    global _last_sync_attempt
    cfg = settings()
    with _sync_lock:
        _last_sync_attempt = time.monotonic()
        try:
            wh = Warehouse.open(cfg.warehouse_path, wait_seconds=0.0)
        except WarehouseLockedError:
            return False
        with wh:
            con = control()
            drain(wh, con, now=now(), refusal=lambda item: queued_action_refusal(
                partial(current_role, con), item.user, item.action))
            publish_snapshot(wh, snapshot_folder(cfg), now=now(), keep=cfg.dashboard.snapshots_keep)
    return True


def sync_if_pending() -> None:
    """On a page load: retry queued actions (at most every 15 s) once the engine let go."""
    if time.monotonic() - _last_sync_attempt < _SYNC_INTERVAL_SECONDS:
        return
    if pending_count(control()) and settings().warehouse_path.exists():
        try_sync()
