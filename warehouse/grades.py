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
    "stash_grades",
    "stash_witnesses",
    "read_witnesses",
    "read_stashed_grades",
    "clear_grade_stash",
]

#: The tables a cycle's levels step parks what it can only finish once every chunk is graded
#: (schema 16, issue 21): the rarity grades above the cap waiting for corroboration, and the
#: witnesses of corroboration (key and rank of the grades that can agree). Committed with each
#: chunk, so a cycle interrupted after some chunks leaves them for the run that completes.
_STASH = "grade_stash"
_WITNESSES = "grade_witnesses"


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


def read_latest_grades(wh: Warehouse, unique_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """The newest grade of every graded series (or of ``unique_ids``), joined with its metadata.

    The newest ``ds`` of each series is found on the keys alone and only those rows' evidence
    is read: a window over the whole table carried every grade's evidence text through DuckDB
    (5.9 million rows at 6,000 daily series, docs/scaling.md)."""
    columns = "SELECT g.unique_id, g.ds, g.level, g.score, g.evidence, s.domain, s.region, s.name "
    if unique_ids is not None and not unique_ids:
        return wh._frame(columns + "FROM risk_grades g JOIN series s USING (unique_id) WHERE false")
    only = "WHERE unique_id IN (SELECT unnest(?)) " if unique_ids is not None else ""
    return wh._frame(
        "WITH newest AS (SELECT unique_id, max(ds) AS ds FROM risk_grades "
        + only
        + "GROUP BY unique_id) "
        + columns
        + "FROM newest n JOIN risk_grades g ON g.unique_id = n.unique_id AND g.ds = n.ds "
        "JOIN series s ON s.unique_id = g.unique_id "
        "ORDER BY g.unique_id",
        [list(unique_ids)] if unique_ids is not None else None,
    )


def stash_grades(wh: Warehouse, frame: pl.DataFrame, *, run_id: str) -> int:
    """Park ``frame`` (``unique_id, ds, level, score, evidence, rank, bound, steps``) until
    :func:`read_stashed_grades`; an earlier run's row of the same point is replaced."""
    keys, values = ("unique_id", "ds"), ("level", "score", "evidence", "rank", "bound", "steps", "run_id")
    wh._upsert_rows(_STASH, frame, keys=keys, values=values, run_id=run_id)
    return frame.height


def stash_witnesses(wh: Warehouse, frame: pl.DataFrame) -> int:
    """Park the witnesses ``frame`` (``unique_id, ds, bound``) until :func:`read_witnesses`."""
    return wh._upsert_rows(_WITNESSES, frame, keys=("unique_id", "ds"), values=("bound",))


def read_witnesses(wh: Warehouse) -> pl.DataFrame:
    """Every parked witness (keys and ranks only: a few bytes a row)."""
    return wh._frame(f"SELECT unique_id, ds, bound FROM {_WITNESSES} ORDER BY unique_id, ds")


def read_stashed_grades(wh: Warehouse, *, batch: int) -> Iterator[pl.DataFrame]:
    """The parked grades, ``batch`` at a time, ordered by series and time."""
    total = wh._execute(f"SELECT count(*) FROM {_STASH}")[0][0]
    for offset in range(0, total, max(1, batch)):
        yield wh._frame(
            f"SELECT unique_id, ds, level, score, evidence, rank, bound, steps FROM {_STASH} "
            "ORDER BY unique_id, ds LIMIT ? OFFSET ?",
            [max(1, batch), offset],
        )


def clear_grade_stash(wh: Warehouse) -> None:
    """Empty both parking tables (the levels step finished every parked grade)."""
    wh._execute(f"DELETE FROM {_STASH}")
    wh._execute(f"DELETE FROM {_WITNESSES}")
