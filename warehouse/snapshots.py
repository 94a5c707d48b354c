"""Read snapshots: the copies of the warehouse the dashboard reads from.

A DuckDB file admits one writing process *or* many readers, and a reader blocks the writer
(REFERENCE.md). A dashboard that held the warehouse open would stop ``ews run``; one that
opened it per page would fail while a run holds it. So the process that holds the warehouse
for writing *publishes* a snapshot when it is done (``CHECKPOINT``, then a refresh or a file
copy, either consistent because that process is the only writer and is between transactions),
and the dashboard reads the newest snapshot, read-only, never touching the live file. A file's
content never changes under its name: a new snapshot gets a new name, then the ``CURRENT``
pointer is swapped atomically (``os.replace``), so a reader sees either the old or the new one
whole. Older snapshots are pruned (a reader still holding one keeps its open file on POSIX).

**Refreshing instead of copying** (issue 21: a day of new data costs what is new; off by
default, ``[dashboard] snapshot_refresh``: measured on 2 cores with the page cache warm, it
beat the copy at 1,000 series and lost to it at 3,000, slower and about 1.5 GB larger in
memory, docs/scaling.md "Read snapshots refreshed"). A file copy costs the whole warehouse each
time: 0.9 GB at 1,000 ten-year daily series, about 9 GB at 10,000. So a publication first tries
to bring the newest *spare* snapshot (published earlier, no longer current) up to date and
publish it under the new name (:func:`_refresh`): the writing process attaches it (DuckDB
refuses while a reader in another process holds it, and then the next spare or a copy is used;
a read-only connection in the writing process itself would not stop it, and the engine opens
none), copies the rows written since into it in one transaction, checks it, and detaches it. So
a refresh needs ``[dashboard] snapshots_keep`` of 2 or more (3 leaves a second spare for when a
page holds the first). The large tables are kept in step row by row through their tags
(``_TAGGED``): every writer of theirs stamps a row it inserts or changes with its run or ingest
batch and no row changes while keeping its tag, so a snapshot lacks exactly the rows of the
tags it has not seen, and a tag whose row count differs lost rows to later ones (or to a plain
delete: that tag is then taken again whole). Every other table (small: runs, alerts, judgments,
the audit log) is replaced whole. After the refresh each tag's row count equals the
warehouse's, or the transaction is rolled back and the file is copied as before (so is a spare
of another schema, one larger than twice the warehouse, or one that lacks more than half of the
warehouse's tagged rows). Readers never see a snapshot change: the one refreshed is not
current, and it is renamed only once complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.errors import WarehouseError
from core.settings import Settings
from warehouse.store import Warehouse

__all__ = ["Snapshot", "publish_snapshot", "current_snapshot", "open_snapshot", "snapshot_folder"]

_POINTER = "CURRENT"
log = logging.getLogger("ews")

#: Tables a refresh keeps in step row by row (module docstring): table -> (tag column, key).
#: Their one writer, ``Warehouse._upsert_rows``, stamps a row it inserts or changes with the
#: writing run or ingest batch and no other statement updates them (alerts are: their review
#: updates keep the run). ``forecast_store`` deletes rows outright (the unselected models'
#: forecasts, an unfinished run's selections), which the per-tag count finds: that tag is
#: taken again whole.
_TAGGED: dict[str, tuple[str, tuple[str, ...]]] = {
    "observations": ("batch_id", ("unique_id", "ds")),
    "events": ("batch_id", ("source", "event_id")),
    "forecasts": ("run_id", ("unique_id", "cutoff", "model", "ds")),
    "anomaly_scores": ("run_id", ("unique_id", "ds", "detector")),
    "risk_grades": ("run_id", ("unique_id", "ds")),
    "exceedance": ("run_id", ("unique_id", "cutoff", "threshold", "ds")),
    "backtest_results": ("run_id", ("run_id", "unique_id", "model")),
    "model_selections": ("run_id", ("run_id", "unique_id")),
    "model_states": ("run_id", ("unique_id", "model")),
    "detector_state": ("run_id", ("unique_id", "detector")),
    "series_state": ("run_id", ("unique_id",)),
}
#: A spare lacking more than this share of the warehouse's tagged rows is not refreshed: the
#: file copy is the cheaper way (e.g. the first publication after a first cycle).
REFRESH_SHARE = 0.5
#: A spare larger than this many times the warehouse file is copied anew instead (rows deleted
#: by refreshes leave room that DuckDB reuses only in part).
REFRESH_GROWTH = 2.0
_ALIAS = "ews_snapshot"


def snapshot_folder(settings: Settings) -> Path:
    """Where read snapshots are published: ``EWS_HOME/snapshots``."""
    return settings.home / "snapshots"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    published_at: datetime
    schema_version: int
    last_run: str | None
    #: how it was published: "copy" (the whole file) or "refresh" (a spare brought up to date)
    method: str = "copy"

    @property
    def key(self) -> str:
        """Identifies the snapshot's content (cache key for the dashboard's reads)."""
        return self.path.name


def publish_snapshot(
    wh: Warehouse, folder: str | Path, *, now: datetime, keep: int = 3, refresh: bool = False
) -> Snapshot:
    """Publish a read snapshot of ``wh`` (open for writing, no transaction in progress).

    ``refresh`` (``[dashboard] snapshot_refresh``, off by default): bring the newest spare
    snapshot up to date instead of copying the file, when one can be (module docstring)."""
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
    started = time.perf_counter()
    method = "copy"
    if refresh:
        for spare in _spares(folder):
            moved = _refresh(wh, spare)
            if moved is not None:
                os.replace(spare, folder / name)
                method = "refresh"
                log.info(
                    "read snapshot %s: %s refreshed (%d rows moved) in %.1f s",
                    name,
                    spare.name,
                    moved,
                    time.perf_counter() - started,
                )
                break
    if method == "copy":
        partial = folder / f".{name}.partial"
        shutil.copyfile(wh.path, partial)
        os.replace(partial, folder / name)
        log.info("read snapshot %s: warehouse file copied in %.1f s", name, time.perf_counter() - started)
    snapshot = Snapshot(folder / name, now, wh.schema_version(), last[0][0] if last else None, method)
    pointer = folder / f".{_POINTER}.partial"
    pointer.write_text(
        json.dumps(
            {
                "file": name,
                "published_at": now.isoformat(),
                "schema_version": snapshot.schema_version,
                "last_run": snapshot.last_run,
                "method": method,
            }
        ),
        encoding="utf-8",
    )
    os.replace(pointer, folder / _POINTER)
    _prune(folder, keep=max(keep, 1), current=name)
    return snapshot


def _spares(folder: Path) -> list[Path]:
    """The published snapshots other than the current one, newest first."""
    try:
        current = current_snapshot(folder)
    except WarehouseError:
        current = None
    files = sorted(folder.glob("warehouse_*.duckdb"), reverse=True)
    return [f for f in files if current is None or f != current.path]


def _refresh(wh: Warehouse, spare: Path) -> int | None:
    """Bring the snapshot file ``spare`` to ``wh``'s content (module docstring); the rows moved,
    or None (the file untouched, or rolled back) when it cannot or should not be refreshed."""
    if spare.stat().st_size > REFRESH_GROWTH * max(wh.path.stat().st_size, 1):
        return None
    quoted = str(spare).replace("'", "''")
    try:
        wh._execute(f"ATTACH '{quoted}' AS {_ALIAS}")
    except Exception as exc:  # noqa: BLE001 - held by a reader (or unreadable): copy instead
        log.info("read snapshot %s not refreshed (%s); copying", spare.name, str(exc).splitlines()[0])
        return None
    moved: int | None = None
    try:
        live = str(wh._execute("SELECT current_database()")[0][0])
        tables = _tables(wh, live)
        # another schema (a migration since it was published) is copied anew
        if tables is not None and tables == _tables(wh, _ALIAS) and _version(wh, live) == _version(wh, _ALIAS):
            moved = _apply(wh, f"{_quote(live)}.main", f"{_ALIAS}.main", sorted(tables))
    except Exception as exc:  # noqa: BLE001 - rolled back; the copy is always right
        log.warning("read snapshot %s not refreshed (%s: %s); copying", spare.name, type(exc).__name__, exc)
        moved = None
    try:
        wh._execute(f"DETACH {_ALIAS}")
    except Exception as exc:  # noqa: BLE001 - not published: the copy is always right
        log.warning("read snapshot %s not detached (%s); copying", spare.name, exc)
        return None
    # A refreshed file is published only whole: checkpointed, with no write-ahead log beside it.
    return None if Path(f"{spare}.wal").exists() else moved


def _tables(wh: Warehouse, catalog: str) -> dict[str, tuple[str, ...]] | None:
    """Each base table of ``catalog`` with its columns in order."""
    rows = wh._execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE c.table_catalog = ? AND c.table_schema = 'main' AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position",
        [catalog],
    )
    tables: dict[str, list[str]] = {}
    for table, column, dtype in rows:
        tables.setdefault(table, []).append(f"{column} {dtype}")
    return {t: tuple(c) for t, c in tables.items()} or None


def _version(wh: Warehouse, catalog: str) -> int:
    return int(wh._execute(f"SELECT coalesce(max(version), 0) FROM {_quote(catalog)}.main.schema_migrations")[0][0])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tag_counts(wh: Warehouse, live: str, snap: str, table: str, tag: str) -> list[tuple[str, int, int]]:
    """(tag, rows in the warehouse, rows in the snapshot) for every tag whose counts differ."""
    rows = wh._execute(
        f"SELECT coalesce(w.tag, s.tag), coalesce(w.n, 0), coalesce(s.n, 0) FROM "
        f"(SELECT {tag} AS tag, count(*) AS n FROM {live}.{table} GROUP BY ALL) w FULL JOIN "
        f"(SELECT {tag} AS tag, count(*) AS n FROM {snap}.{table} GROUP BY ALL) s ON w.tag IS NOT DISTINCT FROM s.tag "
        "WHERE w.n IS DISTINCT FROM s.n"
    )
    return [(str(t), int(w), int(s)) for t, w, s in rows]


def _apply(wh: Warehouse, live: str, snap: str, tables: list[str]) -> int | None:
    """Move the rows (one transaction on the snapshot); None when a copy is cheaper."""
    plans = {t: _tag_counts(wh, live, snap, t, _TAGGED[t][0]) for t in tables if t in _TAGGED}
    fresh_rows = sum(w for plan in plans.values() for _, w, s in plan if s == 0)
    total = sum(wh._execute(f"SELECT count(*) FROM {live}.{t}")[0][0] for t in plans)
    if fresh_rows > REFRESH_SHARE * total:
        return None
    moved = 0
    with wh.transaction():
        for table, plan in plans.items():
            tag = _TAGGED[table][0]
            # tags the snapshot has not seen, and tags the warehouse no longer holds
            moved += _retake(wh, live, snap, table, [t for t, w, s in plan if s == 0 or w == 0])
            left = _tag_counts(wh, live, snap, table, tag)
            if left:
                # rows of an older tag deleted outright in the warehouse (or, defensively, missing)
                moved += _retake(wh, live, snap, table, [t for t, _, _ in left])
                left = _tag_counts(wh, live, snap, table, tag)
            if left:
                raise WarehouseError(f"{table}: {len(left)} tag(s) still differ after the refresh (first {left[0]})")
        for table in tables:
            if table in _TAGGED:
                continue
            wh._execute(f"DELETE FROM {snap}.{table}")
            moved += wh._execute(f"INSERT INTO {snap}.{table} SELECT * FROM {live}.{table}")[0][0]
    wh._execute(f"CHECKPOINT {_ALIAS}")
    return int(moved)


def _retake(wh: Warehouse, live: str, snap: str, table: str, tags: list[str]) -> int:
    """Make the snapshot's rows of ``tags`` the warehouse's: its rows holding a key the
    warehouse holds under one of ``tags`` (whatever their tag) and its rows of ``tags`` go,
    then the warehouse's rows of ``tags`` are inserted. Returns the rows inserted."""
    if not tags:
        return 0
    tag, keys = _TAGGED[table]
    match = " AND ".join(f"s.{k} = f.{k}" for k in keys)
    wh._execute(
        f"DELETE FROM {snap}.{table} s USING (SELECT {', '.join(keys)} FROM {live}.{table} "
        f"WHERE {tag} IN (SELECT unnest(?))) f WHERE {match}",
        [tags],
    )
    wh._execute(f"DELETE FROM {snap}.{table} WHERE {tag} IN (SELECT unnest(?))", [tags])
    return int(
        wh._execute(
            f"INSERT INTO {snap}.{table} SELECT * FROM {live}.{table} WHERE {tag} IN (SELECT unnest(?))", [tags]
        )[0][0]
    )


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
        path,
        datetime.fromisoformat(info["published_at"]),
        int(info["schema_version"]),
        info.get("last_run"),
        str(info.get("method", "copy")),
    )


def open_snapshot(snapshot: Snapshot | str | Path) -> Warehouse:
    """Open a snapshot (or a snapshot file) read-only (many readers may; it never changes under
    its name).

    A snapshot two publications old may be gone or held (a refresh renames the spare it brings
    up to date): the current one is opened instead."""
    path = snapshot.path if isinstance(snapshot, Snapshot) else Path(snapshot)
    try:
        return Warehouse.open(path, read_only=True)
    except WarehouseError:
        current = current_snapshot(path.parent)
        if current is None or current.path == path:
            raise
        return Warehouse.open(current.path, read_only=True)


def _prune(folder: Path, *, keep: int, current: str) -> None:
    files = sorted(folder.glob("warehouse_*.duckdb"), reverse=True)
    for old in files[keep:]:
        if old.name != current:
            old.unlink(missing_ok=True)
            Path(f"{old}.wal").unlink(missing_ok=True)  # left by a refresh cut off before its checkpoint
