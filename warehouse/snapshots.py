"""Read snapshots: the copies of the warehouse the dashboard reads from.

A DuckDB file admits one writing process *or* many readers, and a reader blocks the writer
(REFERENCE.md). A dashboard that held the warehouse open would stop ``ews run``; one that
opened it per page would fail while a run holds it. So the process that holds the warehouse
for writing *publishes* a snapshot when it is done (``CHECKPOINT``, then a file copy, which
is consistent because that process is the only one with the file open and is between
transactions), and the dashboard reads the newest snapshot, read-only, never touching the live
file. Snapshots are immutable: a new one gets a new name, then the ``CURRENT`` pointer is
swapped atomically (``os.replace``), so a reader sees either the old or the new one whole.
Older snapshots are pruned (a reader still holding one keeps its open file on POSIX).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.errors import WarehouseError
from core.settings import Settings
from warehouse.store import Warehouse

__all__ = ["Snapshot", "publish_snapshot", "current_snapshot", "open_snapshot", "snapshot_folder"]

_POINTER = "CURRENT"


def snapshot_folder(settings: Settings) -> Path:
    """Where read snapshots are published: ``EWS_HOME/snapshots``."""
    return settings.home / "snapshots"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    published_at: datetime
    schema_version: int
    last_run: str | None

    @property
    def key(self) -> str:
        """Identifies the snapshot's content (cache key for the dashboard's reads)."""
        return self.path.name


def publish_snapshot(wh: Warehouse, folder: str | Path, *, now: datetime, keep: int = 3) -> Snapshot:
    """Publish a read snapshot of ``wh`` (open for writing, no transaction in progress)."""
    if wh.read_only:
        raise WarehouseError(
            "a read snapshot can only be published by the process that writes the warehouse",
            fix="open it for writing (the engine's run does)",
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wh.checkpoint()
    last = wh._execute("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
    name = f"warehouse_{now:%Y%m%dT%H%M%S%f}.duckdb"
    partial = folder / f".{name}.partial"
    shutil.copyfile(wh.path, partial)
    os.replace(partial, folder / name)
    snapshot = Snapshot(folder / name, now, wh.schema_version(), last[0][0] if last else None)
    pointer = folder / f".{_POINTER}.partial"
    pointer.write_text(
        json.dumps(
            {
                "file": name,
                "published_at": now.isoformat(),
                "schema_version": snapshot.schema_version,
                "last_run": snapshot.last_run,
            }
        ),
        encoding="utf-8",
    )
    os.replace(pointer, folder / _POINTER)
    _prune(folder, keep=max(keep, 1), current=name)
    return snapshot


def current_snapshot(folder: str | Path) -> Snapshot | None:
    """The newest published snapshot, or None when none was published yet."""
    pointer = Path(folder) / _POINTER
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise WarehouseError(
            f"snapshot pointer {pointer} is unreadable: {exc}",
            fix="delete it; the next `ews run` (or `ews serve`) publishes a new one",
        ) from None
    path = Path(folder) / info["file"]
    if not path.is_file():
        return None
    return Snapshot(
        path, datetime.fromisoformat(info["published_at"]), int(info["schema_version"]), info.get("last_run")
    )


def open_snapshot(snapshot: Snapshot | str | Path) -> Warehouse:
    """Open a snapshot (or a snapshot file) read-only (many readers may; it is never written)."""
    path = snapshot.path if isinstance(snapshot, Snapshot) else Path(snapshot)
    return Warehouse.open(path, read_only=True)


def _prune(folder: Path, *, keep: int, current: str) -> None:
    files = sorted(folder.glob("warehouse_*.duckdb"), reverse=True)
    for old in files[keep:]:
        if old.name != current:
            old.unlink(missing_ok=True)
