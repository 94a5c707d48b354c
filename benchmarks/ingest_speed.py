"""Ingest speed: the engine's upsert path against raw DuckDB, in the same process.

Loads ``--rows`` synthetic observations (default 5,000,000: 1,000 series of 5,000 days) into
a fresh warehouse through ``warehouse.series.upsert_observations`` (the path every batch takes), and
the same frame into a fresh DuckDB file with the same table through ``register`` +
``INSERT ... SELECT``. Then loads the frame through the engine again: nothing may change.

Last line: one JSON object with rows, engine_rows_per_s, raw_rows_per_s, ratio_engine_vs_raw
(target >= 0.8) and rerun_changed_rows (must be 0).

    .venv/bin/python benchmarks/ingest_speed.py [--rows 5000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from warehouse import Warehouse  # noqa: E402
from warehouse.migrations import MIGRATIONS  # noqa: E402
from warehouse.series import upsert_observations
from warehouse.status import count_rows


def synthetic(rows: int, *, days: int = 5000, seed: int = 0) -> pl.DataFrame:
    """``rows`` observations: rows // days series of ``days`` consecutive days each (random walks)."""
    series = max(1, rows // days)
    rng = np.random.default_rng(seed)
    ds = pl.datetime_range(
        datetime(2000, 1, 1), datetime(2000, 1, 1) + timedelta(days=days - 1), interval="1d", time_unit="us", eager=True
    )
    return pl.DataFrame(
        {
            "unique_id": np.repeat([f"s{i:05d}" for i in range(series)], days),
            "ds": np.tile(ds.to_numpy(), series),
            "y": rng.standard_normal(series * days).cumsum(),
        }
    ).with_columns(pl.col("ds").cast(pl.Datetime("us")))


def _observations_ddl() -> str:
    return next(s for s in MIGRATIONS[0].statements if "CREATE TABLE observations" in s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    frame = synthetic(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        raw = duckdb.connect(str(Path(folder) / "raw.duckdb"))
        raw.execute(_observations_ddl())
        start = time.perf_counter()
        raw.register("incoming", frame.to_arrow())
        raw.execute("INSERT INTO observations SELECT unique_id, ds, y, 'b1' FROM incoming")
        raw.execute("CHECKPOINT")
        raw_seconds = time.perf_counter() - start
        raw.close()
        with Warehouse.open(Path(folder) / "engine.duckdb") as wh:
            start = time.perf_counter()
            with wh.transaction():
                inserted = upsert_observations(wh, frame, batch_id="b1")
            wh.checkpoint()
            engine_seconds = time.perf_counter() - start
            start = time.perf_counter()
            with wh.transaction():
                rerun = upsert_observations(wh, frame, batch_id="b2")
            rerun_seconds = time.perf_counter() - start
            stored = count_rows(wh, "observations")
    assert inserted == stored == frame.height, (inserted, stored, frame.height)
    print(
        f"raw DuckDB insert: {raw_seconds:.2f} s; engine upsert: {engine_seconds:.2f} s; "
        f"engine re-run (no change): {rerun_seconds:.2f} s",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "rows": frame.height,
                "engine_rows_per_s": round(frame.height / engine_seconds),
                "raw_rows_per_s": round(frame.height / raw_seconds),
                "ratio_engine_vs_raw": round(raw_seconds / engine_seconds, 3),
                "rerun_changed_rows": rerun,
                "rerun_seconds": round(rerun_seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
