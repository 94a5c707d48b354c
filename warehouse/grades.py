"""Anomaly scores and risk grades: what the score and grade steps of the cycle write.

Functions take an open :class:`~warehouse.store.Warehouse`; writes are idempotent set-based
upserts tagged with the run that made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from warehouse.store import Warehouse

__all__ = ["upsert_scores", "upsert_grades", "read_latest_grades", "newest_scored"]


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
