"""Anomaly scores and risk grades: what the score and grade steps of the cycle write.

Functions take an open :class:`~warehouse.store.Warehouse`; writes are idempotent set-based
upserts tagged with the run that made them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import polars as pl

from warehouse.store import Warehouse

__all__ = [
    "upsert_scores",
    "upsert_grades",
    "read_latest_grades",
    "newest_scored",
    "open_grade_stash",
    "stash_grades",
    "read_stashed_grades",
    "drop_grade_stash",
]

#: The temporary table a cycle's levels step parks the grades it can only finish once every
#: chunk is graded (rarity grades above the cap, waiting for corroboration; issue 21).
_STASH = "cycle_grade_stash"


def upsert_scores(wh: Warehouse, scores: pl.DataFrame, *, run_id: str) -> int:
    return wh._upsert("anomaly_scores", scores, run_id=run_id)


def newest_scored(wh: Warehouse, unique_ids: Sequence[str], *, detector: str) -> dict[str, datetime]:
    """The newest ``ds`` with a stored score of ``detector`` per series (series never scored are absent)."""
    rows = wh._execute(
        "SELECT unique_id, max(ds) FROM anomaly_scores WHERE detector = ? AND unique_id IN (SELECT unnest(?)) "
        "GROUP BY unique_id",
        [detector, list(unique_ids)],
    )
    return {uid: ds for uid, ds in rows}


def upsert_grades(wh: Warehouse, grades: pl.DataFrame, *, run_id: str) -> int:
    return wh._upsert("risk_grades", grades, run_id=run_id)


def read_latest_grades(wh: Warehouse) -> pl.DataFrame:
    """The newest grade of every graded series, joined with its metadata."""
    return wh._frame(
        "SELECT g.unique_id, g.ds, g.level, g.score, g.evidence, s.domain, s.region, s.name "
        "FROM risk_grades g JOIN series s USING (unique_id) "
        "QUALIFY row_number() OVER (PARTITION BY g.unique_id ORDER BY g.ds DESC) = 1 "
        "ORDER BY g.unique_id"
    )


def open_grade_stash(wh: Warehouse) -> None:
    """An empty temporary table for :func:`stash_grades` (this connection only, never
    committed to the file; inside a transaction it goes with a rollback)."""
    wh._execute(
        f"CREATE OR REPLACE TEMP TABLE {_STASH} (unique_id VARCHAR, ds TIMESTAMP, level VARCHAR, "
        "score DOUBLE, evidence VARCHAR, rank BIGINT, bound BIGINT, steps VARCHAR)"
    )


def stash_grades(wh: Warehouse, frame: pl.DataFrame) -> int:
    """Append ``frame`` (the columns of :func:`open_grade_stash`) to the stash; returns its rows."""
    if frame.height == 0:
        return 0
    wh._with_frame(
        f"INSERT INTO {_STASH} SELECT unique_id, ds, level, score, evidence, rank, bound, steps FROM incoming", frame
    )
    return frame.height


def read_stashed_grades(wh: Warehouse, *, batch: int) -> Iterator[pl.DataFrame]:
    """The stashed rows, ``batch`` at a time, ordered by series and time."""
    total = wh._execute(f"SELECT count(*) FROM {_STASH}")[0][0]
    for offset in range(0, total, max(1, batch)):
        yield wh._frame(
            f"SELECT * FROM {_STASH} ORDER BY unique_id, ds LIMIT ? OFFSET ?",
            [max(1, batch), offset],
        )


def drop_grade_stash(wh: Warehouse) -> None:
    wh._execute(f"DROP TABLE IF EXISTS {_STASH}")
