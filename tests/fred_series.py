"""FRED ``date,value`` files bundled in tests/data, read as series frames (``unique_id, ds, y``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl
import pytest

from core.settings import Settings
from ingest.batches import ingest_file
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
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


def ingest_market_files(wh: Warehouse, settings: Settings, files: Mapping[str, tuple[str, str]]) -> None:
    """Ingest the FRED exports of data/market, ``{unique_id: (file name, frequency)}``, as
    market series of region US (what the cycle tests build their warehouse from); each commits."""
    for uid, (name, freq) in files.items():
        result = ingest_file(
            wh,
            settings,
            ROOT / "data" / "market" / name,
            "fred_csv",
            options={"unique_id": uid, "frequency": freq, "domain": "market", "region": "US"},
        )
        assert result.status == "committed", (name, result)
