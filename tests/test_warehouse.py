"""The warehouse: migrations on open, idempotent upserts, one writer at a time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from core.errors import WarehouseError, WarehouseLockedError
from tests.sql import sql_frame, sql_rows
from warehouse import CURRENT_VERSION, MIGRATIONS, Warehouse
from warehouse.dashboard_reads import full_table_row_counts
from warehouse.grades import upsert_scores
from warehouse.series import read_observations, read_series_meta, upsert_observations, upsert_series
from warehouse.status import count_rows

ROOT = Path(__file__).resolve().parent.parent


def _fred_frame() -> pl.DataFrame:
    """Real rows: the first year of FRED UNRATE as bundled."""
    raw = pl.read_csv(ROOT / "data" / "market" / "fred_UNRATE.csv", try_parse_dates=True)
    return (
        raw.drop_nulls("value")
        .head(12)
        .select(
            pl.lit("unrate").alias("unique_id"),
            pl.col("date").cast(pl.Datetime("us")).alias("ds"),
            pl.col("value").cast(pl.Float64).alias("y"),
        )
    )


META = pl.DataFrame(
    {
        "unique_id": ["unrate"],
        "domain": ["market"],
        "name": ["US unemployment rate"],
        "variable": ["unemployment"],
        "unit": ["percent"],
        "frequency": ["MS"],
        "region": ["US"],
        "lat": [None],
        "lon": [None],
        "source": ["FRED"],
        "licence": ["public domain"],
        "classification": ["public"],
    },
    schema_overrides={"lat": pl.Float64, "lon": pl.Float64},
)


def test_fresh_file_ends_at_current_version(tmp_path: Path) -> None:
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        assert wh.schema_version() == CURRENT_VERSION
        expected = {
            "series",
            "observations",
            "ingest_batches",
            "forecasts",
            "anomaly_scores",
            "alerts",
            "judgments",
            "audit_log",
            "runs",
            "risk_grades",
            "series_state",
            "events",
        }
        assert expected <= set(wh.tables())


def test_older_file_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Warehouse.open(path, target_version=1) as wh:
        assert wh.schema_version() == 1
        assert "risk_grades" not in wh.tables()
        upsert_series(wh, META, batch_id="b_old")
        upsert_observations(wh, _fred_frame(), batch_id="b_old")
    with Warehouse.open(path) as wh:
        assert wh.schema_version() == CURRENT_VERSION == max(m.version for m in MIGRATIONS)
        assert "risk_grades" in wh.tables()
        assert count_rows(wh, "observations") == 12
        assert read_series_meta(wh)["name"].to_list() == ["US unemployment rate"]


def test_newer_file_is_refused_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    with Warehouse.open(path) as wh:
        sql_rows(wh, "INSERT INTO schema_migrations VALUES (?, 'future', now())", CURRENT_VERSION + 1)
    with pytest.raises(WarehouseError, match="newer than this engine"):
        Warehouse.open(path)


def test_upsert_is_idempotent_and_counts_only_changes(tmp_path: Path) -> None:
    frame = _fred_frame()
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        assert upsert_series(wh, META, batch_id="b1") == 1
        assert upsert_observations(wh, frame, batch_id="b1") == 12
        before = read_observations(wh)
        # the same rows again, even under another batch id, change nothing
        assert upsert_series(wh, META, batch_id="b2") == 0
        assert upsert_observations(wh, frame, batch_id="b2") == 0
        assert read_observations(wh).equals(before)
        # a revised value and a late row: exactly two rows change
        revised = pl.concat(
            [
                frame.with_columns(pl.when(pl.col("ds") == frame["ds"][3]).then(9.9).otherwise(pl.col("y")).alias("y")),
                pl.DataFrame({"unique_id": ["unrate"], "ds": [datetime(1979, 12, 1)], "y": [6.0]}).with_columns(
                    pl.col("ds").cast(pl.Datetime("us"))
                ),
            ]
        )
        assert upsert_observations(wh, revised, batch_id="b3") == 2
        assert count_rows(wh, "observations") == 13


def _scores(values: list[tuple[str, int, float]]) -> pl.DataFrame:
    """Anomaly score rows of the real UNRATE dates: (series, month index, calibrated score)."""
    months = _fred_frame()["ds"]
    return pl.DataFrame(
        {
            "unique_id": [u for u, _, _ in values],
            "ds": [months[i] for _, i, _ in values],
            "detector": ["level"] * len(values),
            "raw_score": [10 * s for _, _, s in values],
            "score": [s for _, _, s in values],
        }
    )


def test_scores_keep_one_row_per_key_without_an_index(tmp_path: Path) -> None:
    """Schema 20: anomaly_scores has no primary-key index (DuckDB holds one wholly in memory);
    the writer keeps the key: new keys inserted, changed rows replaced, identical rows left
    with the run that wrote them, a repeated key refused."""
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        assert not sql_rows(
            wh,
            "SELECT 1 FROM duckdb_constraints() WHERE table_name IN ('anomaly_scores', 'risk_grades') "
            "AND constraint_type = 'PRIMARY KEY'",
        )
        first = _scores([("unrate", 0, 0.1), ("unrate", 1, 0.2), ("cpi", 0, 0.3)])
        with wh.transaction():
            assert upsert_scores(wh, first, run_id="r1") == 3
        again = _scores([("unrate", 0, 0.1), ("unrate", 1, 0.25), ("dgs10", 0, 0.3)])
        with wh.transaction():
            assert upsert_scores(wh, again, run_id="r2") == 2  # one changed, one new
        rows = sql_rows(wh, "SELECT unique_id, ds, score, run_id FROM anomaly_scores ORDER BY unique_id, ds")
        months = _fred_frame()["ds"]
        assert rows == [
            ("cpi", months[0], 0.3, "r1"),
            ("dgs10", months[0], 0.3, "r2"),
            ("unrate", months[0], 0.1, "r1"),
            ("unrate", months[1], 0.25, "r2"),
        ]
        with pytest.raises(WarehouseError, match="repeat a key"):
            upsert_scores(wh, pl.concat([again, again]), run_id="r3")
        assert count_rows(wh, "anomaly_scores") == 4


def test_version_19_scores_move_to_the_unindexed_table_keeping_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "v19.duckdb"
    with Warehouse.open(path, target_version=19) as wh:
        assert sql_rows(
            wh,
            "SELECT 1 FROM duckdb_constraints() WHERE table_name = 'anomaly_scores' "
            "AND constraint_type = 'PRIMARY KEY'",
        )
        upsert_scores(wh, _scores([("unrate", i, i / 20) for i in range(12)]), run_id="r19")
        before = sql_frame(wh, "SELECT * FROM anomaly_scores ORDER BY unique_id, ds")
    with Warehouse.open(path) as wh:
        assert wh.schema_version() == CURRENT_VERSION >= 20
        assert sql_frame(wh, "SELECT * FROM anomaly_scores ORDER BY unique_id, ds").equals(before)
        with pytest.raises(Exception, match="CHECK constraint"):  # the score's range is still checked
            sql_rows(wh, "INSERT INTO anomaly_scores VALUES ('r', 'unrate', TIMESTAMP '2030-01-01', 'level', 1, 2)")


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        upsert_series(wh, META, batch_id="b1")
        with pytest.raises(RuntimeError):
            with wh.transaction():
                upsert_observations(wh, _fred_frame(), batch_id="b1")
                raise RuntimeError("crash in the middle of a batch")
        assert count_rows(wh, "observations") == 0


def test_full_table_reads_count_every_row_and_refuse_unknown_tables(tmp_path: Path) -> None:
    # the dashboard benchmark's naive peer (benchmarks/dashboard_pages.py) reads through this
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        upsert_series(wh, META, batch_id="b1")
        upsert_observations(wh, _fred_frame(), batch_id="b1")
        assert full_table_row_counts(wh, ("observations", "series", "alerts")) == {
            "observations": 12,
            "series": 1,
            "alerts": 0,
        }
        with pytest.raises(WarehouseError, match="no table 'nonsense'"):
            full_table_row_counts(wh, ("observations", "nonsense"))


def test_second_writer_gets_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    Warehouse.open(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time, duckdb
            con = duckdb.connect({str(path)!r})
            print("held", flush=True)
            sys.stdin.readline()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseLockedError, match="(?s)held by another process.*--wait"):
            Warehouse.open(path, wait_seconds=0.5)
    finally:
        holder.communicate("\n", timeout=30)
    with Warehouse.open(path) as wh:  # released: the writer can come in
        assert wh.schema_version() == CURRENT_VERSION


def test_read_only_open_of_missing_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="run `ews init`"):
        Warehouse.open(tmp_path / "absent.duckdb", read_only=True)


def test_previous_version_file_gains_series_bounds_keeping_its_rows(tmp_path: Path) -> None:
    """Migration 8 adds lower_bound / upper_bound to a version-7 file in place: rows stay,
    their bounds are null (unbounded) until the source is ingested again."""
    path = tmp_path / "v7.duckdb"
    with Warehouse.open(path, target_version=7) as wh:
        assert wh.schema_version() == 7
        columns = [
            r[0] for r in sql_rows(wh, "SELECT column_name FROM information_schema.columns WHERE table_name = 'series'")
        ]
        assert "lower_bound" not in columns
        upsert_series(wh, META, batch_id="b_v7")
        upsert_observations(wh, _fred_frame(), batch_id="b_v7")
        before = sql_frame(wh, "SELECT * FROM series")
        observations = read_observations(wh)
    with Warehouse.open(path) as wh:
        assert wh.schema_version() == CURRENT_VERSION >= 8
        assert read_observations(wh).equals(observations)
        after = sql_frame(wh, "SELECT * FROM series")
        assert after.select(before.columns).equals(before)
        assert after.select("lower_bound", "upper_bound").row(0) == (None, None)
        meta = read_series_meta(wh)
        assert meta.columns[-2:] == ["lower_bound", "upper_bound"]
        # the next ingest of the series sets its bounds; a frame without them leaves them alone
        bounded = META.with_columns(pl.lit(0.0).alias("lower_bound"), pl.lit(100.0).alias("upper_bound"))
        assert upsert_series(wh, bounded, batch_id="b_v8") == 1
        assert upsert_series(wh, META, batch_id="b_v8b") == 0
        assert read_series_meta(wh).select("lower_bound", "upper_bound").row(0) == (0.0, 100.0)


def test_latest_grades_are_each_series_newest_row_of_all_or_of_the_series_asked(tmp_path: Path) -> None:
    """warehouse.grades.read_latest_grades: the newest grade per series with its metadata;
    with ids, only theirs (the cycle's levels and alert steps ask for the stored grades of the
    series outside the cycle only); an empty list reads nothing."""
    from warehouse.grades import read_latest_grades, upsert_grades

    meta = pl.concat([META.with_columns(pl.lit(uid).alias("unique_id")) for uid in ("a", "b", "c")])
    grades = pl.DataFrame(
        {
            "unique_id": ["a", "a", "b", "b", "b", "c"],
            "ds": [datetime(2020, m, 1) for m in (1, 2, 1, 3, 2, 5)],
            "level": ["none", "yellow", "blue", "orange", "none", "red"],
            "score": [0.1, 0.99, 0.5, 0.996, 0.2, 0.999],
            "evidence": ['{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}', '{"n": 5}', '{"n": 6}'],
        }
    )
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        upsert_series(wh, meta, batch_id="b1")
        upsert_grades(wh, grades, run_id="r1")
        every = read_latest_grades(wh)
        assert every.select("unique_id", "ds", "level", "evidence").rows() == [
            ("a", datetime(2020, 2, 1), "yellow", '{"n": 2}'),
            ("b", datetime(2020, 3, 1), "orange", '{"n": 4}'),
            ("c", datetime(2020, 5, 1), "red", '{"n": 6}'),
        ]
        assert every["region"].to_list() == ["US"] * 3 and every["domain"].to_list() == ["market"] * 3
        asked = read_latest_grades(wh, ["c", "a", "nobody"])
        assert asked.rows() == every.filter(pl.col("unique_id").is_in(["a", "c"])).rows()
        none = read_latest_grades(wh, [])
        assert none.height == 0 and none.columns == every.columns


def _duckdb_jemalloc_mb(name: str) -> float:
    """DuckDB's jemalloc ``stats.<name>`` in MB (refreshed first)."""
    import ctypes

    import duckdb

    ctl = ctypes.CDLL(duckdb._duckdb.__file__).duckdb_je_mallctl
    epoch, size = ctypes.c_uint64(1), ctypes.c_size_t(8)
    ctl(b"epoch", ctypes.byref(epoch), ctypes.byref(size), ctypes.byref(epoch), ctypes.c_size_t(8))
    value, size = ctypes.c_size_t(0), ctypes.c_size_t(8)
    assert ctl(f"stats.{name}".encode(), ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)) == 0
    return value.value / 2**20


def test_freed_duckdb_pages_go_back_to_the_system_and_the_data_stays(tmp_path: Path) -> None:
    """A chunk's queries free pages DuckDB's jemalloc keeps resident; the release purges them
    (what the cycle does after every chunk) and leaves the warehouse's rows as they were."""
    if not sys.platform.startswith("linux"):
        pytest.skip("DuckDB exports its jemalloc on its Linux builds only")
    with Warehouse.open(tmp_path / "wh.duckdb") as wh:
        wh._execute("CREATE TABLE big AS SELECT range AS i, random() AS x FROM range(4000000)")
        sql_rows(wh, "SELECT i % 1000 AS k, sum(x) FROM big GROUP BY k")
        wh._execute("DROP TABLE big")
        wh._execute("CREATE TABLE kept AS SELECT range AS i FROM range(1000)")
        before = _duckdb_jemalloc_mb("resident")
        assert Warehouse.release_freed_memory() is True
        after, allocated = _duckdb_jemalloc_mb("resident"), _duckdb_jemalloc_mb("allocated")
        assert after < before - 20, f"DuckDB's resident pages {before:.0f} -> {after:.0f} MB"
        assert after < allocated + 64, f"{after:.0f} MB resident for {allocated:.0f} MB allocated"
        assert sql_rows(wh, "SELECT count(*), sum(i) FROM kept") == [(1000, 499500)]
