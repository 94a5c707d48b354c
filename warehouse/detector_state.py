"""Stored detector state: the fits the cycle's subsequence detectors resume from (schema 15).

:func:`read_detector_state` and :func:`upsert_detector_state` move the ``detector_state``
rows (one per series and ``subseq_*`` detector: basis, refit edge, ``.npz`` fit bytes);
:func:`read_raw_scores` reads the stored raw scores the causal calibration of new points
ranks against. The bytes are decoded by :class:`anomaly.SubsequenceFit`, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from warehouse.store import Warehouse

__all__ = ["STATE_COLUMNS", "read_detector_state", "read_raw_scores", "upsert_detector_state"]

STATE_COLUMNS = ("unique_id", "detector", "basis", "edge", "edge_ds", "fit")
_KEYS = ("unique_id", "detector")
_VALUES = ("basis", "edge", "edge_ds", "fit", "run_id")


def read_detector_state(wh: Warehouse, unique_ids: Sequence[str]) -> pl.DataFrame:
    """The stored state rows of ``unique_ids`` (columns :data:`STATE_COLUMNS`)."""
    return wh._frame(
        "SELECT unique_id, detector, basis, edge, edge_ds, fit FROM detector_state "
        "WHERE unique_id IN (SELECT unnest(?)) ORDER BY unique_id, detector",
        [list(unique_ids)],
    )


def upsert_detector_state(wh: Warehouse, state: pl.DataFrame, *, run_id: str) -> int:
    """Insert or replace the state rows in ``state`` (columns :data:`STATE_COLUMNS`)."""
    return wh._upsert_rows("detector_state", state, keys=_KEYS, values=_VALUES, run_id=run_id)


def read_raw_scores(wh: Warehouse, unique_ids: Sequence[str], detectors: Sequence[str]) -> pl.DataFrame:
    """Stored ``unique_id, detector, ds, raw_score`` of ``detectors`` for ``unique_ids``, in time order."""
    return wh._frame(
        "SELECT unique_id, detector, ds, raw_score FROM anomaly_scores "
        "WHERE unique_id IN (SELECT unnest(?)) AND detector IN (SELECT unnest(?)) "
        "ORDER BY unique_id, detector, ds",
        [list(unique_ids), list(detectors)],
    )
