"""FRED ``date,value`` files bundled in tests/data, read as series frames (``unique_id, ds, y``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

DATA = Path(__file__).parent / "data"


def load_fred(name: str, unique_id: str) -> pl.DataFrame:
    """A FRED ``date,value`` file from tests/data as a series frame (blank values dropped)."""
    path = DATA / name
    if not path.exists():
        pytest.skip(f"test data {path} is missing (see tests/data/README.md)")
    raw = pl.read_csv(path, schema_overrides={"value": pl.Float64}, null_values=["", "."])
    return raw.drop_nulls().select(
        pl.lit(unique_id).alias("unique_id"),
        pl.col("date").str.to_datetime("%Y-%m-%d").alias("ds"),
        pl.col("value").alias("y"),
    )
