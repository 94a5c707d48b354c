"""What every page shares: settings, the control store, the read snapshot and cached reads.

The dashboard only reads. It never opens the live warehouse: it reads the newest *read
snapshot* (:mod:`warehouse.snapshots`), so a running ``ews run`` / ``ews ingest`` never blocks
a page and a page never blocks a run. Reads are cached per snapshot (``st.cache_data`` keyed by
the snapshot file's name: a file's content never changes under its name, as a refresh renames
the spare it brings up to date), so a page shows cached data until a new snapshot is
published. An uploaded file is previewed against that snapshot too (:func:`preview_upload`,
the same read-only preview as ``ews ingest file --dry-run``). Review actions and audit
entries are queued in the control store
(:mod:`warehouse.review_inbox`, see :mod:`dashboards.actions`); the engine applies them:
``ews serve``'s supervisor within ``[dashboard] sync_seconds`` when the warehouse is free,
else the run that holds it, when it ends (pipelines/dashboard_sync.py).

Every read passes through the viewer's clearance (:mod:`dashboards.clearance`): the values of
a series classified above it are withheld before a page sees them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl
import streamlit as st

from core.errors import EWSError
from core.settings import Settings, load_settings
from dashboards.clearance import above, withhold
from warehouse import dashboard_reads as reads
from warehouse.snapshots import Snapshot, current_snapshot, open_snapshot, snapshot_folder
from warehouse.users import connect_control, control_path

if TYPE_CHECKING:
    from ingest.preview import Preview

__all__ = ["now", "settings", "control", "snapshot", "read", "preview_upload"]


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
    """The newest read snapshot, or None when none was published yet (``ews serve`` publishes
    one when it starts and the warehouse is free, else the engine's run when it ends)."""
    return current_snapshot(snapshot_folder(settings()))


@st.cache_data(show_spinner=False, max_entries=512)
def _cached(path: str, name: str, kwargs: tuple[tuple[str, Any], ...]) -> Any:
    function: Callable[..., Any] = getattr(reads, name)
    with open_snapshot(path) as wh:
        return function(wh, **dict(kwargs))


def clearance() -> str:
    """The signed-in account's clearance (as re-read by dashboards.auth.current_session at the
    top of the page); public without a session."""
    raw = st.session_state.get("ews_session") or {}
    return str(raw.get("clearance") or "public")


def read(name: str, **kwargs: Any) -> Any:
    """Call ``warehouse.dashboard_reads.<name>`` on the current snapshot, cached per snapshot,
    with the values of series above the viewer's clearance withheld."""
    snap = snapshot()
    if snap is None:
        return pl.DataFrame()
    path = str(snap.path)
    result = _cached(path, name, tuple(sorted(kwargs.items())))
    series = kwargs.get("unique_id")
    if series is None and kwargs.get("alert_id") is not None:
        row = _cached(path, "alert_row", (("alert_id", kwargs["alert_id"]),))
        series = None if row is None else row.get("unique_id")
    classes = _cached(path, "series_classifications", ())
    return withhold(result, classes=classes, clearance=clearance(), series=None if series is None else str(series))


def preview_upload(name: str, data: bytes, fmt: str | None, options: dict[str, Any]) -> Preview:
    """An uploaded file read and checked as ``ews ingest file --dry-run`` would, compared with
    the current read snapshot (never the live warehouse); nothing is written or kept."""
    from ingest.preview import preview_bytes  # the parsers load only when a file is previewed

    snap = snapshot()
    with ExitStack() as stack:
        wh = None if snap is None else stack.enter_context(open_snapshot(snap))
        compared = (
            "no read snapshot yet: every series shows as new"
            if snap is None
            else f"the read snapshot of {snap.published_at:%Y-%m-%d %H:%M} UTC"
        )
        preview = preview_bytes(name, data, fmt, options=options, settings=settings(), wh=wh, compared_with=compared)
    # The comparison with stored rows (changed / unchanged counts, quarantine findings against the
    # stored median) would tell whether guessed values of a classified series are the stored ones.
    classes = {} if snap is None else _cached(str(snap.path), "series_classifications", ())
    viewer = clearance()
    hidden = sorted(u for u in preview.series.get_column("unique_id").to_list() if above(classes.get(u), viewer))
    if hidden:
        raise EWSError(
            f"the file writes {len(hidden)} stored series classified above your clearance ({viewer}): "
            f"{', '.join(hidden[:5])}{' ...' if len(hidden) > 5 else ''}; its preview compares values with theirs",
            fix="ask an account cleared for them to preview the file, or give it other unique_id values",
        )
    return preview
