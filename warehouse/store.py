"""The DuckDB warehouse connection: opening, schema migrations, transactions, and the private
raw-SQL entry points (``_execute``, ``_frame``, ``_registered``, ``_upsert``) of this package.

Every SQL statement of the engine lives in ``warehouse/``. The reads and writes of the tables
are functions in topic modules (:mod:`warehouse.series`, :mod:`warehouse.runs`,
:mod:`warehouse.alerting`, ...) that take an open :class:`Warehouse` as their first argument;
the class holds no query of its own beyond the schema and the generic upsert.

Writes are set-based upserts from polars frames (registered as Arrow, then one
``INSERT ... SELECT ... ON CONFLICT`` per table), never row-by-row inserts, and they only
touch rows whose values differ, so re-running a load changes nothing. Values are bound
parameters; table and column names come from constants of this package only.

DuckDB allows one read-write process *or* many read-only processes per file. A second writer
gets :class:`~core.errors.WarehouseLockedError` (after waiting ``wait_seconds``) with the fix.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core.clock import utc_now
from core.errors import WarehouseError, WarehouseLockedError
from core.frames import QUANTILES, SERIES_META_COLUMNS, quantile_column
from core.settings import memory_size
from core.vocabulary import WARNING_LEVEL_NAMES
from warehouse.migrations import CURRENT_VERSION, MIGRATIONS

#: DuckDB's ``duckdb_je_mallctl`` once looked up (False: not exported by this build).
_JEMALLOC_CTL: Any = None

__all__ = ["Warehouse", "LEVELS"]

LEVELS = WARNING_LEVEL_NAMES  # the warning levels, mildest first (core.vocabulary)
_QCOLS = tuple(quantile_column(q) for q in QUANTILES)

# Upsert layout per table written through ``Warehouse._upsert``: key columns, then value
# columns compared for change (the topic modules pass their own layouts to ``_upsert_rows``).
_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "series": (("unique_id",), tuple(c for c in SERIES_META_COLUMNS if c != "unique_id") + ("batch_id",)),
    "observations": (("unique_id", "ds"), ("y", "batch_id")),
    "events": (("source", "event_id"), ("time", "lat", "lon", "depth_km", "magnitude", "batch_id")),
    "forecasts": (("unique_id", "cutoff", "model", "ds"), ("run_id", "mean", *_QCOLS)),
    "anomaly_scores": (("unique_id", "ds", "detector"), ("run_id", "raw_score", "score")),
    "risk_grades": (("unique_id", "ds"), ("run_id", "level", "score", "evidence")),
    "series_state": (("unique_id",), ("fingerprint", "run_id", "processed_at")),
    "judgments": (
        ("judgment_id",),
        (
            "alert_id",
            "run_id",
            "writer",
            "model",
            "prompt_version",
            "evidence_hash",
            "label",
            "text_en",
            "text_zh",
            "checks",
            "created_at",
        ),
    ),
}
# Columns whose change alone does not count as a change (bookkeeping, not content).
_NOT_CONTENT = {"run_id", "batch_id", "processed_at", "updated_at"}
#: Tables whose key this writer keeps without a primary-key index (schema 20: DuckDB holds
#: an index wholly in memory, and these grew with every series; docs/scaling.md).
_UNINDEXED = {"anomaly_scores", "risk_grades"}


class Warehouse:
    """One open connection to the warehouse file, migrated to the current schema.

    Use as a context manager: ``with Warehouse.open(path) as wh: ...``, then pass ``wh`` to
    the functions of the topic modules.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self._con = con
        self.path = path
        self.read_only = read_only
        self._in_transaction = False

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        read_only: bool = False,
        wait_seconds: float = 0.0,
        migrate: bool = True,
        target_version: int = CURRENT_VERSION,
    ) -> Warehouse:
        """Open (creating if needed) and migrate the file at ``path``.

        ``target_version`` below the current one exists for tests that build an older file.
        """
        path = Path(path)
        if read_only and not path.exists():
            raise WarehouseError(
                f"no warehouse at {path}",
                fix="run `ews init` (or `ews demo`) first, or set EWS_HOME to the right folder",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                con = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise WarehouseError(
                        f"cannot open warehouse {path}: {exc}",
                        fix="check the path and its permissions; the raw landing files under "
                        "EWS_HOME/raw can rebuild it with `ews ingest`",
                    ) from None
                if time.monotonic() >= deadline:
                    raise WarehouseLockedError(
                        f"warehouse {path} is held by another process ({_holder(exc)})",
                        fix="wait for that run to finish, or pass --wait SECONDS to queue behind "
                        "it; DuckDB allows one writer at a time",
                    ) from None
                time.sleep(0.2)
        wh = cls(con, path, read_only)
        if migrate and not read_only:
            wh.migrate(target_version)
            if target_version == CURRENT_VERSION:
                from warehouse.runs import abort_dead_runs  # runs imports this module

                abort_dead_runs(wh, at=utc_now())
        elif read_only and wh.schema_version() != CURRENT_VERSION:
            raise WarehouseError(
                f"warehouse {path} is at schema version {wh.schema_version()}, "
                f"this engine reads version {CURRENT_VERSION}",
                fix="open it once for writing (e.g. `ews init`) so the migrations run",
            )
        return wh

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw SQL: private to warehouse/ (its topic modules call these) ---------------------
    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and read its whole result (DuckDB 2 wants results finished)."""
        return self._con.execute(sql, list(params or [])).fetchall()

    @contextmanager
    def _registered(self, name: str, frame: pl.DataFrame) -> Iterator[None]:
        """``frame`` visible to SQL as the view ``name`` (a code constant) while inside."""
        self._con.register(name, frame.to_arrow())
        try:
            yield
        finally:
            self._con.unregister(name)

    def _frame(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run one query and return its result as a polars frame."""
        return self._con.sql(sql, params=list(params) if params else None).pl()

    # -- schema ------------------------------------------------------------------------
    def schema_version(self) -> int:
        exists = self._execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'")[
            0
        ][0]
        if not exists:
            return 0
        return self._execute("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0]

    def migrate(self, target_version: int = CURRENT_VERSION) -> list[int]:
        """Apply the missing migrations up to ``target_version``; return those applied."""
        self._execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
        )
        current = self.schema_version()
        if current > CURRENT_VERSION:
            raise WarehouseError(
                f"warehouse {self.path} is at schema version {current}, newer than this engine's {CURRENT_VERSION}",
                fix="upgrade EWS to the version that wrote this file",
            )
        applied = []
        for migration in sorted(MIGRATIONS, key=lambda m: m.version):
            if current < migration.version <= target_version:
                with self.transaction():
                    for statement in migration.statements:
                        self._execute(statement)
                    self._execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, now())",
                        [migration.version, migration.description],
                    )
                applied.append(migration.version)
        if applied:
            self._execute("CHECKPOINT")
        return applied

    def tables(self) -> list[str]:
        rows = self._execute("SELECT table_name FROM information_schema.tables ORDER BY table_name")
        return [r[0] for r in rows]

    # -- transactions ------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """True while a :meth:`transaction` block is open on this connection (read-only)."""
        return self._in_transaction

    @contextmanager
    def memory_limit(self, limit: str, *, setting: str) -> Iterator[None]:
        """DuckDB's memory capped at ``limit`` (``"1GB"``; empty: left as it is) inside the
        block, then reset to DuckDB's default (80% of the machine's memory). Past the cap
        DuckDB evicts cached blocks and spills large operators to disk; what it cannot (an
        index) fails the block with an error naming ``setting``, the key that raises the cap."""
        if not limit:
            yield
            return
        self._execute(f"SET memory_limit = '{memory_size(limit, setting)}'")
        try:
            yield
        except duckdb.OutOfMemoryException as exc:
            raise WarehouseError(
                f"the warehouse ran out of its memory limit {limit} ({setting}): {str(exc).splitlines()[0]}",
                fix=f'raise {setting} (e.g. to twice {limit}), or set it to "" for DuckDB\'s own limit '
                "(80% of this machine's memory); nothing of the failed chunk was written",
            ) from None
        finally:
            self._execute("RESET memory_limit")

    @staticmethod
    def release_freed_memory() -> bool:
        """Give the pages DuckDB's queries freed back to the system now: a purge of every arena
        of DuckDB's own jemalloc, which otherwise keeps them for seconds (and between a cycle's
        chunks held up to as much again as DuckDB had allocated: 726 against 340 MB after 600
        series, docs/scaling.md). What DuckDB caches (its buffer pool, under ``memory_limit``)
        stays. Returns False where DuckDB's build does not export its jemalloc
        (``duckdb_je_mallctl``: the Linux wheels do; macOS and Windows builds do not)."""
        global _JEMALLOC_CTL
        if _JEMALLOC_CTL is None:
            try:
                _JEMALLOC_CTL = ctypes.CDLL(duckdb._duckdb.__file__).duckdb_je_mallctl
            except (OSError, AttributeError):
                _JEMALLOC_CTL = False
        if not _JEMALLOC_CTL:
            return False
        # "arena.<MALLCTL_ARENAS_ALL = 4096>.purge": the unused dirty pages of every arena
        return _JEMALLOC_CTL(b"arena.4096.purge", None, None, None, ctypes.c_size_t(0)) == 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nesting joins the outer one)."""
        if self._in_transaction:
            yield
            return
        self._execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK")
            raise
        else:
            self._execute("COMMIT")
        finally:
            self._in_transaction = False

    def checkpoint(self) -> None:
        self._execute("CHECKPOINT")

    # -- generic upsert (private) ----------------------------------------------------------
    def _upsert(self, table: str, frame: pl.DataFrame, **constants: Any) -> int:
        keys, values = _TABLES[table]
        return self._upsert_rows(table, frame, keys=keys, values=values, **constants)

    def _upsert_rows(
        self, table: str, frame: pl.DataFrame, *, keys: Sequence[str], values: Sequence[str], **constants: Any
    ) -> int:
        """Insert new keys and update changed rows of ``table`` from ``frame``.

        ``keys`` is the table's primary key, ``values`` the other columns written.
        ``constants`` are values bound for columns the frame lacks (e.g. ``run_id``).
        Returns the number of rows inserted or changed; identical rows are left alone.
        Table and column names must come from code, never from user input.
        """
        keys, values = tuple(keys), tuple(values)
        columns = keys + values
        if frame.height == 0:
            return 0
        select = []
        params = []
        for col in columns:
            if col in constants:
                select.append(f"? AS {col}")
                params.append(constants[col])
            elif col in frame.columns:
                select.append(f"incoming.{col}")
            else:
                raise WarehouseError(f"frame for {table} lacks column {col!r}: has {frame.columns}")
        changed = [c for c in values if c not in _NOT_CONTENT]
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)
        where = " OR ".join(f"{table}.{c} IS DISTINCT FROM excluded.{c}" for c in changed)
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT {', '.join(select)} FROM incoming "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}" + (f" WHERE {where}" if where else "")
        )
        empty = not self._execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)")[0][0]
        if table in _UNINDEXED and not empty:
            return self._replace_rows(table, frame, keys=keys, columns=columns, select=select, params=params)
        if empty:
            # An empty table has nothing to conflict with: a plain bulk insert (same result, and
            # DuckDB skips the per-row conflict check, which dominates a first load).
            sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(select)} FROM incoming"
        return self._with_frame(sql, frame, params)[0][0]

    def _replace_rows(
        self,
        table: str,
        frame: pl.DataFrame,
        *,
        keys: tuple[str, ...],
        columns: tuple[str, ...],
        select: Sequence[str],
        params: Sequence[Any],
    ) -> int:
        """:meth:`_upsert_rows` for a table without a key index (``_UNINDEXED``): the stored
        rows whose content differs from ``frame``'s are deleted, then every key of ``frame``
        not stored is inserted (new keys and the changed rows); identical rows are left alone.
        Returns the rows inserted or changed, as the indexed upsert does. Both statements run
        in one transaction (the caller's, when one is open), so no changed row is ever missing."""
        if frame.select(keys).is_duplicated().any():
            raise WarehouseError(
                f"rows for {table} repeat a key ({', '.join(keys)})",
                fix="write one row per key (a bug in the caller: report it)",
            )
        changed = [c for c in columns if c not in keys and c not in _NOT_CONTENT]
        mine = f"(SELECT * FROM {table} WHERE {keys[0]} IN (SELECT DISTINCT {keys[0]} FROM incoming))"
        match = " AND ".join(f"t.{k} = i.{k}" for k in keys)
        differs = " OR ".join(f"t.{c} IS DISTINCT FROM i.{c}" for c in changed) or "false"
        incoming = frame.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan, by name
        with self.transaction():
            self._con.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT t.rowid FROM {table} t JOIN "
                f"(SELECT {', '.join(select)} FROM incoming) i ON {match} "
                f"WHERE t.{keys[0]} IN (SELECT DISTINCT {keys[0]} FROM incoming) AND ({differs}))",
                list(params),
            )
            inserted: int = self._con.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT * FROM (SELECT {', '.join(select)} FROM incoming) i "
                f"WHERE NOT EXISTS (SELECT 1 FROM {mine} t WHERE {match})",
                list(params),
            ).fetchall()[0][0]
        return inserted

    def _with_frame(self, sql: str, frame: pl.DataFrame, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` reading ``frame`` as the table ``incoming`` (a code constant), found by
        DuckDB's replacement scan of this function's local of that name.

        Not ``register``: DuckDB keeps every Python object registered inside a transaction
        alive until the transaction ends, so a cycle that wrote its chunks in one transaction
        held every chunk's written frames (issue 21, docs/scaling.md "Per-chunk commits"); a
        scanned local is released when this call returns. A catalog table of that name would
        take precedence, so the name is one no migration creates.
        """
        incoming = frame.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan, by name
        return self._con.execute(sql, list(params or [])).fetchall()


def _holder(exc: duckdb.IOException) -> str:
    """DuckDB names the holding process in its lock error; keep just that part."""
    text = str(exc)
    marker = "Conflicting lock is held in"
    return text[text.index(marker) :].strip() if marker in text else text.strip()
