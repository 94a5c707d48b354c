"""The DuckDB warehouse: every SQL statement of the engine lives in this package.

Writes are set-based upserts from polars frames (registered as Arrow, then one
``INSERT ... SELECT ... ON CONFLICT`` per table), never row-by-row inserts, and they only
touch rows whose values differ, so re-running a load changes nothing. Values are bound
parameters; table and column names come from constants in this module only.

DuckDB allows one read-write process *or* many read-only processes per file. A second writer
gets :class:`~core.errors.WarehouseLockedError` (after waiting ``wait_seconds``) with the fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core.errors import WarehouseError, WarehouseLockedError
from core.frames import QUANTILES, SERIES_BOUND_COLUMNS, SERIES_META_COLUMNS, quantile_column
from core.vocabulary import WARNING_LEVEL_NAMES
from warehouse.migrations import CURRENT_VERSION, MIGRATIONS

__all__ = ["Warehouse", "LEVELS"]

LEVELS = WARNING_LEVEL_NAMES  # the warning levels, mildest first (core.vocabulary)
_QCOLS = tuple(quantile_column(q) for q in QUANTILES)

# Upsert layout per table: key columns, then value columns compared for change.
_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "series": (("unique_id",), tuple(c for c in SERIES_META_COLUMNS if c != "unique_id") + ("batch_id",)),
    "observations": (("unique_id", "ds"), ("y", "batch_id")),
    "events": (("source", "event_id"), ("time", "lat", "lon", "depth_km", "magnitude", "batch_id")),
    "forecasts": (("unique_id", "cutoff", "model", "ds"), ("run_id", "mean", *_QCOLS)),
    "anomaly_scores": (("unique_id", "ds", "detector"), ("run_id", "raw_score", "score")),
    "risk_grades": (("unique_id", "ds"), ("run_id", "level", "score", "evidence")),
    "series_state": (("unique_id",), ("fingerprint", "run_id", "processed_at")),
    "alerts": (
        ("alert_id",),
        ("run_id", "unique_id", "domain", "region", "hazard", "level", "status", "ds",
         "score", "evidence", "opened_at", "updated_at"),
    ),
    "judgments": (
        ("judgment_id",),
        ("alert_id", "run_id", "writer", "model", "prompt_version", "evidence_hash", "label",
         "text_en", "text_zh", "checks", "created_at"),
    ),
}
# Columns whose change alone does not count as a change (bookkeeping, not content).
_NOT_CONTENT = {"run_id", "batch_id", "processed_at", "updated_at"}


class Warehouse:
    """One open connection to the warehouse file, migrated to the current schema.

    Use as a context manager: ``with Warehouse.open(path) as wh: ...``.
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
        elif read_only and wh.schema_version() != CURRENT_VERSION:
            raise WarehouseError(
                f"warehouse {path} is at schema version {wh.schema_version()}, "
                f"this engine reads version {CURRENT_VERSION}",
                fix="open it once for writing (e.g. `ews status`) so the migrations run",
            )
        return wh

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and read its whole result (DuckDB 2 wants results finished)."""
        return self._con.execute(sql, list(params or [])).fetchall()

    @contextmanager
    def registered(self, name: str, frame: pl.DataFrame) -> Iterator[None]:
        """``frame`` visible to SQL as the view ``name`` (a code constant) while inside."""
        self._con.register(name, frame.to_arrow())
        try:
            yield
        finally:
            self._con.unregister(name)

    def frame(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run one query and return its result as a polars frame."""
        return self._con.sql(sql, params=list(params) if params else None).pl()

    # -- schema ------------------------------------------------------------------------
    def schema_version(self) -> int:
        exists = self.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        )[0][0]
        if not exists:
            return 0
        return self.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0]

    def migrate(self, target_version: int = CURRENT_VERSION) -> list[int]:
        """Apply the missing migrations up to ``target_version``; return those applied."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
        )
        current = self.schema_version()
        if current > CURRENT_VERSION:
            raise WarehouseError(
                f"warehouse {self.path} is at schema version {current}, newer than this "
                f"engine's {CURRENT_VERSION}",
                fix="upgrade EWS to the version that wrote this file",
            )
        applied = []
        for migration in sorted(MIGRATIONS, key=lambda m: m.version):
            if current < migration.version <= target_version:
                with self.transaction():
                    for statement in migration.statements:
                        self.execute(statement)
                    self.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, now())",
                        [migration.version, migration.description],
                    )
                applied.append(migration.version)
        if applied:
            self.execute("CHECKPOINT")
        return applied

    def tables(self) -> list[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name"
        )
        return [r[0] for r in rows]

    # -- transactions ------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """True while a :meth:`transaction` block is open on this connection (read-only)."""
        return self._in_transaction

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nesting joins the outer one)."""
        if self._in_transaction:
            yield
            return
        self.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")
        finally:
            self._in_transaction = False

    def checkpoint(self) -> None:
        self.execute("CHECKPOINT")

    # -- generic upsert ----------------------------------------------------------------
    def _upsert(self, table: str, frame: pl.DataFrame, **constants: Any) -> int:
        keys, values = _TABLES[table]
        return self.upsert(table, frame, keys=keys, values=values, **constants)

    def upsert(self, table: str, frame: pl.DataFrame, *, keys: Sequence[str],
               values: Sequence[str], **constants: Any) -> int:
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
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
            + (f" WHERE {where}" if where else "")
        )
        if not self.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)")[0][0]:
            # An empty table has nothing to conflict with: a plain bulk insert (same result, and
            # DuckDB skips the per-row conflict check, which dominates a first load).
            sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(select)} FROM incoming"
        self._con.register("incoming", frame.to_arrow())
        try:
            return self.execute(sql, params)[0][0]
        finally:
            self._con.unregister("incoming")

    # -- series and observations -------------------------------------------------------
    def upsert_series(self, meta: pl.DataFrame, *, batch_id: str) -> int:
        """Insert or update series metadata rows (:data:`core.frames.SERIES_META_COLUMNS`).

        A frame without the bound columns (``lower_bound``, ``upper_bound``) leaves the
        stored bounds as they are (null for a new series); with them, it sets them.
        """
        keys, values = _TABLES["series"]
        values = tuple(c for c in values if c in meta.columns or c not in SERIES_BOUND_COLUMNS)
        return self.upsert("series", meta, keys=keys, values=values, batch_id=batch_id)

    def upsert_observations(self, series: pl.DataFrame, *, batch_id: str) -> int:
        return self._upsert("observations", series.select("unique_id", "ds", "y"), batch_id=batch_id)

    def upsert_events(self, events: pl.DataFrame, *, batch_id: str) -> int:
        return self._upsert("events", events, batch_id=batch_id)

    def read_series_meta(self, unique_ids: Sequence[str] | None = None) -> pl.DataFrame:
        sql = f"SELECT {', '.join(SERIES_META_COLUMNS)} FROM series"
        if unique_ids is not None:
            return self.frame(sql + " WHERE unique_id IN (SELECT unnest(?)) ORDER BY unique_id",
                                     [list(unique_ids)])
        return self.frame(sql + " ORDER BY unique_id")

    def read_observations(self, unique_ids: Sequence[str] | None = None, *,
                          before: datetime | None = None) -> pl.DataFrame:
        """Observations (all, or of ``unique_ids``), only those earlier than ``before`` if given."""
        sql = "SELECT unique_id, ds, y FROM observations WHERE ds < coalesce(?, 'infinity'::TIMESTAMP)"
        params: list[Any] = [before]
        if unique_ids is not None:
            sql += " AND unique_id IN (SELECT unnest(?))"
            params.append(list(unique_ids))
        return self.frame(sql + " ORDER BY unique_id, ds", params)

    def series_fingerprints(self, *, before: datetime | None = None) -> pl.DataFrame:
        """Per series a fingerprint of its observations (earlier than ``before`` if given):
        it changes when any value does."""
        return self.frame(
            "SELECT unique_id, count(*)::VARCHAR || '|' || max(ds)::VARCHAR || '|' || "
            "bit_xor(hash(ds, y))::VARCHAR AS fingerprint "
            "FROM observations WHERE ds < coalesce(?, 'infinity'::TIMESTAMP) "
            "GROUP BY unique_id ORDER BY unique_id",
            [before],
        )

    def read_series_state(self) -> pl.DataFrame:
        return self.frame("SELECT unique_id, fingerprint FROM series_state")

    def upsert_series_state(self, state: pl.DataFrame, *, run_id: str, at: datetime) -> int:
        return self._upsert("series_state", state, run_id=run_id, processed_at=at)

    # -- ingest ledger -----------------------------------------------------------------
    def batch_status(self, batch_id: str) -> str | None:
        row = _first(self.execute(
            "SELECT status FROM ingest_batches WHERE batch_id = ?", [batch_id]
        ))
        return None if row is None else row[0]

    def record_batch(
        self,
        *,
        batch_id: str,
        source: str,
        fmt: str,
        location: str,
        fetched_at: datetime,
        checksum: str,
        status: str,
        row_count: int | None = None,
        rows_changed: int | None = None,
        error: str | None = None,
    ) -> None:
        self.execute(
            "INSERT OR REPLACE INTO ingest_batches (batch_id, source, format, location, fetched_at, "
            "row_count, rows_changed, checksum, status, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [batch_id, source, fmt, location, fetched_at, row_count, rows_changed,
             checksum, status, error],
        )

    def read_batches(self, limit: int = 100) -> pl.DataFrame:
        return self.frame(
            "SELECT * FROM ingest_batches ORDER BY fetched_at DESC, batch_id LIMIT ?", [limit]
        )

    # -- runs --------------------------------------------------------------------------
    def start_run(self, *, run_id: str, kind: str, started_at: datetime,
                  as_of: datetime | None = None) -> None:
        self.execute(
            "INSERT INTO runs (run_id, kind, started_at, status, as_of) VALUES (?, ?, ?, 'running', ?)",
            [run_id, kind, started_at, as_of],
        )

    def finish_run(
        self,
        *,
        run_id: str,
        status: str,
        finished_at: datetime,
        row_counts: dict[str, int],
        error: str | None = None,
    ) -> None:
        self.execute(
            "UPDATE runs SET status = ?, finished_at = ?, row_counts = ?, error = ? WHERE run_id = ?",
            [status, finished_at, json.dumps(row_counts), error, run_id],
        )

    def last_run(self, kind: str | None = None) -> dict[str, Any] | None:
        sql = "SELECT run_id, kind, status, started_at, finished_at, row_counts, error, as_of FROM runs"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        row = _first(self.execute(sql + " ORDER BY started_at DESC, run_id DESC LIMIT 1", params))
        if row is None:
            return None
        keys = ("id", "kind", "status", "started_at", "finished_at", "row_counts", "error", "as_of")
        out = dict(zip(keys, row, strict=True))
        out["row_counts"] = json.loads(out["row_counts"]) if out["row_counts"] else {}
        return out

    # -- results -----------------------------------------------------------------------
    def write_forecasts(self, forecasts: pl.DataFrame, *, run_id: str) -> int:
        """Store forecasts; each row carries the ``cutoff`` (last observed time) it came from."""
        return self._upsert("forecasts", forecasts, run_id=run_id)

    def upsert_scores(self, scores: pl.DataFrame, *, run_id: str) -> int:
        return self._upsert("anomaly_scores", scores, run_id=run_id)

    def upsert_grades(self, grades: pl.DataFrame, *, run_id: str) -> int:
        return self._upsert("risk_grades", grades, run_id=run_id)

    def read_latest_grades(self) -> pl.DataFrame:
        """The newest grade of every graded series, joined with its metadata."""
        return self.frame(
            "SELECT g.unique_id, g.ds, g.level, g.score, g.evidence, s.domain, s.region, s.name "
            "FROM risk_grades g JOIN series s USING (unique_id) "
            "QUALIFY row_number() OVER (PARTITION BY g.unique_id ORDER BY g.ds DESC) = 1 "
            "ORDER BY g.unique_id"
        )

    def read_latest_forecasts(self, unique_ids: Sequence[str]) -> pl.DataFrame:
        """The forecasts from each series' newest cutoff."""
        return self.frame(
            "SELECT * FROM forecasts WHERE unique_id IN (SELECT unnest(?)) "
            "QUALIFY cutoff = max(cutoff) OVER (PARTITION BY unique_id) ORDER BY unique_id, ds",
            [list(unique_ids)],
        )

    def read_alerts(self, *, statuses: Sequence[str] | None = None) -> pl.DataFrame:
        sql = "SELECT * FROM alerts"
        params: list[Any] = []
        if statuses is not None:
            sql += " WHERE status IN (SELECT unnest(?))"
            params.append(list(statuses))
        return self.frame(sql + " ORDER BY opened_at, alert_id", params)

    def upsert_alerts(self, alerts: pl.DataFrame) -> int:
        return self._upsert("alerts", alerts)

    def insert_judgments(self, judgments: pl.DataFrame) -> int:
        return self._upsert("judgments", judgments)

    def read_judgments(self, alert_ids: Sequence[str] | None = None) -> pl.DataFrame:
        sql = "SELECT * FROM judgments"
        params: list[Any] = []
        if alert_ids is not None:
            sql += " WHERE alert_id IN (SELECT unnest(?))"
            params.append(list(alert_ids))
        return self.frame(sql + " ORDER BY created_at, judgment_id", params)

    # -- audit -------------------------------------------------------------------------
    def audit(self, *, at: datetime, actor: str, action: str, target: str | None,
              detail: dict[str, Any] | None = None) -> None:
        self.execute(
            "INSERT INTO audit_log (at_time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            [at, actor, action, target, json.dumps(detail or {}, default=str)],
        )

    def read_audit(self, limit: int = 100) -> pl.DataFrame:
        return self.frame(
            "SELECT * FROM audit_log ORDER BY audit_id DESC LIMIT ?", [limit]
        )

    # -- summaries ---------------------------------------------------------------------
    def count(self, table: str) -> int:
        if table not in _TABLES and table not in ("ingest_batches", "runs", "audit_log"):
            raise WarehouseError(f"unknown table {table!r}")
        return self.execute(f"SELECT count(*) FROM {table}")[0][0]

    def status(self) -> dict[str, Any]:
        """The figures `ews status --json` prints."""
        domains = dict(self.execute(
            "SELECT domain, count(*) FROM series GROUP BY domain ORDER BY domain"
        ))
        levels = dict(self.execute(
            "SELECT level, count(*) FROM alerts WHERE status = 'open' GROUP BY level"
        ))
        batches = dict(self.execute(
            "SELECT status, count(*) FROM ingest_batches GROUP BY status"
        ))
        last = self.last_run()
        return {
            "warehouse": str(self.path),
            "schema_version": self.schema_version(),
            "series_by_domain": domains,
            "observations": self.count("observations"),
            "events": self.count("events"),
            "forecasts": self.count("forecasts"),
            "anomaly_scores": self.count("anomaly_scores"),
            "risk_grades": self.count("risk_grades"),
            "alerts_by_level": {level: levels.get(level, 0) for level in LEVELS},
            "judgments": self.count("judgments"),
            "ingest_batches": batches,
            "last_run": None if last is None else {
                "id": last["id"], "kind": last["kind"], "status": last["status"],
                "started_at": str(last["started_at"]), "finished_at": str(last["finished_at"]),
                "row_counts": last["row_counts"],
                "as_of": None if last["as_of"] is None else str(last["as_of"]),
            },
        }


def _first(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    return rows[0] if rows else None


def _holder(exc: duckdb.IOException) -> str:
    """DuckDB names the holding process in its lock error; keep just that part."""
    text = str(exc)
    marker = "Conflicting lock is held in"
    return text[text.index(marker):].strip() if marker in text else text.strip()
