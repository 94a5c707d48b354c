"""What every page shares: settings, the control store, the read snapshot and cached reads.

The dashboard never opens the live warehouse to read: it reads the newest *read snapshot*
(:mod:`warehouse.snapshots`), so a running ``ews run`` / ``ews ingest`` never blocks a page
and a page never blocks a run. Reads are cached per snapshot (``st.cache_data`` keyed by the
snapshot file, which is immutable), so a page shows cached data until a new snapshot is
published. The only writes are review actions and audit entries, queued in the control store
and applied by :func:`try_sync` when the warehouse is free (else by the engine's next run).

When :func:`try_sync` applies a review action that puts a CAP message in the outbox (an
approval), it hands publication to the engine across a process boundary: after closing the
warehouse it starts ``python -m pipelines.cli --home EWS_HOME deliver`` as a detached child
(:func:`request_publication`), which renders the pending CAP files and relays deliveries. The
dashboard never imports ``pipelines`` (tests/test_import_direction.py); it only starts the
command. One child at a time per server process: a request while one runs is remembered and
served by a follow-up child when it ends. If the child cannot start, the outbox keeps the event
and the next ``ews run`` / ``ews deliver`` publishes it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from alerts.permissions import queued_action_refusal
from core.errors import WarehouseLockedError
from core.settings import Settings, load_settings
from warehouse import CURRENT_VERSION, Warehouse
from warehouse import dashboard_reads as reads
from warehouse.review_inbox import DrainResult, drain, pending_count
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
    "PUBLISHING_ACTIONS",
    "request_publication",
    "publisher_status",
    "wait_for_publisher",
]

_SYNC_INTERVAL_SECONDS = 15.0
_last_sync_attempt = 0.0
_sync_lock = threading.Lock()

#: Review actions whose application writes an outbox event (a CAP message to publish). The inbox
#: carries ``approve``; ``cancel`` (CAP Cancel) is listed for the day the inbox carries it too
#: (today ``ews alerts cancel`` is CLI-only and publishes itself).
PUBLISHING_ACTIONS = frozenset({"approve", "cancel"})
#: How long an action's sync waits for this process's own publisher child to let go of the
#: warehouse (normally about two seconds: start-up, publish, relay) before giving up and
#: leaving the action queued. Page loads never wait.
_PUBLISHER_GRACE_SECONDS = 10.0
#: The child's ``--wait``: how long it waits for another writer (the dashboard's own sync, a run).
_CHILD_WAREHOUSE_WAIT_SECONDS = 30
_CHILD_LOG = "dashboard_publish.log"


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
        try_sync(wait_for_publisher_seconds=0.0)  # a page load never waits
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


def try_sync(*, wait_for_publisher_seconds: float = _PUBLISHER_GRACE_SECONDS) -> bool:
    """Apply queued review actions and publish a snapshot if the warehouse is free right now.

    Returns False when another process (the engine) holds the warehouse: the actions stay
    queued and the engine applies them when its run ends. If this process's publisher child
    is still running, wait up to ``wait_for_publisher_seconds`` for it first (it holds the
    warehouse for about a second). When an applied action released something, hand the CAP
    publication to the engine (:func:`request_publication`) after the warehouse is closed.
    """
    global _last_sync_attempt
    cfg = settings()
    with _sync_lock:
        _last_sync_attempt = time.monotonic()
        if wait_for_publisher_seconds > 0:
            wait_for_publisher(wait_for_publisher_seconds)
        try:
            wh = Warehouse.open(cfg.warehouse_path, wait_seconds=0.0)
        except WarehouseLockedError:
            return False
        con = control()
        drained: DrainResult | None = None
        try:
            with wh:
                drained = drain(wh, con, now=now(), refusal=lambda item: queued_action_refusal(
                    partial(current_role, con), item.user, item.action))
                publish_snapshot(wh, snapshot_folder(cfg), now=now(),
                                 keep=cfg.dashboard.snapshots_keep)
                _PUBLISHER.snapshot_behind.discard(str(cfg.home))
        finally:  # the warehouse is closed here: DuckDB admits one writing process
            if drained is not None and drained.applied:
                try:
                    released = _publishing_items(con, drained.applied)
                except sqlite3.Error as exc:  # the actions are applied; the next run publishes
                    _logger(cfg).warning("could not read the applied actions (%s); CAP publication "
                                         "is left to the next `ews run` / `ews deliver`", exc)
                    released = []
                if released:
                    request_publication(cfg, reason="; ".join(released))
    return True


def sync_if_pending() -> None:
    """On a page load: retry queued actions (at most every 15 s) once the engine let go, and
    refresh the snapshot once after a publisher child has written CAP messages. Never waits."""
    if time.monotonic() - _last_sync_attempt < _SYNC_INTERVAL_SECONDS:
        return
    cfg = settings()
    behind = str(cfg.home) in _PUBLISHER.snapshot_behind
    if (behind or pending_count(control())) and cfg.warehouse_path.exists():
        try_sync(wait_for_publisher_seconds=0.0)


# -- hand-off of CAP publication to the engine -------------------------------------------------
class _Publisher:
    """This server process's publisher child (at most one at a time) and what operators see."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.child: subprocess.Popen[bytes] | None = None
        self.idle = threading.Event()
        self.idle.set()
        self.follow_up: tuple[Settings, str] | None = None
        self.snapshot_behind: set[str] = set()  # homes whose snapshot predates a finished child
        self.status: dict[str, Any] = {
            "state": "never", "pid": None, "started_at": None, "finished_at": None,
            "returncode": None, "reason": None, "error": None, "children": 0,
            "deferred": 0, "log": None, "home": None,
        }


_PUBLISHER = _Publisher()
_log_lock = threading.Lock()
_log_target: str | None = None


def _logger(cfg: Settings) -> logging.Logger:
    """``ews.dashboard``: one line per hand-off in ``EWS_HOME/logs/ews.log`` (beside the engine's
    lines), warnings also on the server's stderr."""
    global _log_target
    logger = logging.getLogger("ews.dashboard")
    path = cfg.path("logs") / "ews.log"
    with _log_lock:
        if _log_target != str(path):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                file_handler = logging.FileHandler(path, encoding="utf-8", delay=True)
                file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
                logger.addHandler(file_handler)
            except OSError:
                pass  # the stderr handler below still reports
            console = logging.StreamHandler(sys.stderr)
            console.setLevel(logging.WARNING)
            console.setFormatter(logging.Formatter("ews dashboard: %(levelname)s %(message)s"))
            logger.addHandler(console)
            logger.setLevel(logging.INFO)
            logger.propagate = False
            _log_target = str(path)
    return logger


def _publishing_items(con: sqlite3.Connection, action_ids: Iterable[str]) -> list[str]:
    """``action alert_id by user`` for the applied inbox items that wrote an outbox event."""
    ids = list(action_ids)
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    rows = con.execute(
        f"SELECT action, alert_id, user_name FROM review_inbox WHERE kind = 'review' "  # noqa: S608
        f"AND action_id IN ({marks}) ORDER BY seq", ids).fetchall()
    return [f"{action} {alert_id} by {user}" for action, alert_id, user in rows
            if action in PUBLISHING_ACTIONS]


def _child_command(cfg: Settings) -> list[str]:
    # A command line, not an import: dashboards must not import pipelines.
    return [sys.executable, "-m", "pipelines.cli", "--home", str(Path(cfg.home).resolve()),
            "deliver", "--json", "--quiet", "--wait", str(_CHILD_WAREHOUSE_WAIT_SECONDS)]


def _child_env(cfg: Settings) -> dict[str, str]:
    env = {**os.environ, "EWS_HOME": str(Path(cfg.home).resolve())}
    root = Path(__file__).resolve().parent.parent  # where `pipelines` sits beside `dashboards`
    if (root / "pipelines" / "cli.py").is_file():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


def request_publication(cfg: Settings, reason: str) -> str:
    """Start the engine's ``ews deliver`` as a detached child; never blocks, never raises.

    Returns ``"started"``, ``"deferred"`` (a child of this process is still running: a
    follow-up child starts when it ends, so an event committed after it published is not
    missed) or ``"failed"`` (logged; the outbox is durable and the next ``ews run`` /
    ``ews deliver`` / scheduled cycle publishes it).
    """
    log = _logger(cfg)
    pub = _PUBLISHER
    with pub.lock:
        # busy until _watch has reaped the child and handed over (it owns pub.child): a child
        # that has exited but is not yet reaped still counts, so at most one runs at a time
        if pub.child is not None:
            previous = pub.follow_up[1] + "; " if pub.follow_up else ""
            pub.follow_up = (cfg, previous + reason)
            pub.status["deferred"] += 1
            log.info("CAP publication for %s: deliver child pid %s still running; "
                     "a follow-up starts when it ends", reason, pub.child.pid)
            return "deferred"
        log_path = cfg.path("logs") / _CHILD_LOG
        command = _child_command(cfg)
        started = now()
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as out:
                out.write(f"== {started:%Y-%m-%d %H:%M:%S} UTC dashboard hand-off ({reason}): "
                          f"{' '.join(command[1:])}\n".encode())
                out.flush()
                child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    command, env=_child_env(cfg), cwd=str(cfg.home), stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        except Exception as exc:  # noqa: BLE001 - never break the page; the outbox keeps the event
            try:
                with open(log_path, "ab") as out:
                    out.write(f"   not started: {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
            pub.status.update(state="failed to start", error=f"{type(exc).__name__}: {exc}",
                              reason=reason, started_at=started, finished_at=None, pid=None,
                              returncode=None, home=str(cfg.home))
            log.warning("CAP publication for %s not started (%s: %s); the outbox keeps it and the "
                        "next `ews run` / `ews deliver` publishes it", reason, type(exc).__name__, exc)
            return "failed"
        pub.child = child
        pub.idle.clear()
        pub.status.update(state="running", pid=child.pid, started_at=started, finished_at=None,
                          returncode=None, reason=reason, error=None, log=str(log_path),
                          home=str(cfg.home))
        pub.status["children"] += 1
        log.info("CAP publication for %s handed to the engine: `ews deliver` pid %s (output in %s)",
                 reason, child.pid, log_path)
        threading.Thread(target=_watch, args=(child, cfg), name=f"ews-deliver-{child.pid}",
                         daemon=True).start()
    return "started"


def _watch(child: subprocess.Popen[bytes], cfg: Settings) -> None:
    """Reap the child, record how it ended, start the follow-up if one was asked for."""
    code = child.wait()
    pub = _PUBLISHER
    log = _logger(cfg)
    with pub.lock:
        pub.status.update(state="finished" if code == 0 else "failed", returncode=code,
                          finished_at=now())
        if code == 0:
            pub.snapshot_behind.add(str(cfg.home))
        follow_up, pub.follow_up = pub.follow_up, None
        if pub.child is child:
            pub.child = None
        if follow_up is None:
            pub.idle.set()
    if code == 0:
        log.info("`ews deliver` pid %s finished: CAP published and relayed (see %s)",
                 child.pid, pub.status["log"])
    else:
        log.warning("`ews deliver` pid %s exited with %s (see %s); the outbox keeps the event and "
                    "the next `ews run` / `ews deliver` publishes it", child.pid, code,
                    pub.status["log"])
    if follow_up is not None:
        if request_publication(*follow_up) != "started":
            with pub.lock:
                if pub.child is None:
                    pub.idle.set()


def wait_for_publisher(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until no publisher child of this process runs."""
    return _PUBLISHER.idle.wait(timeout)


def publisher_status() -> dict[str, Any]:
    """The last hand-off of this server process (state, pid, times, exit code, log file)."""
    with _PUBLISHER.lock:
        status = dict(_PUBLISHER.status)
        running = _PUBLISHER.child is not None and _PUBLISHER.child.poll() is None
    status["running"] = running
    return status
