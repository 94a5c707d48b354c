"""The cycle's rows do not depend on its chunks or workers (issue 21: bounded memory, all cores).

Real data: the bundled FRED STLFSI4 (weekly), UNRATE and CPIAUCSL (monthly) files, all of
region US (so the levels step's corroboration sees series of several chunks), replayed
through the autumn of 2008. Each test cycles two fresh warehouses holding the same data, once
with every series in one chunk and once with one series per chunk (``[cycle] chunk_series``),
or with one worker and with two (``[cycle] workers``, scoring in a process pool), or with the
next chunk's forecasts made while a chunk is scored and without (``[cycle] overlap``), and
compares every row the cycle wrote, but for run ids.

The chunk test adds the Choptank river (daily discharge: a flood level from its return
periods) and the New York tide gauge (monthly sea level: steps in its evidence), both put in
region US, so market grades above the cap are lifted by a river or gauge in another chunk
(a market series never lifts another): the levels step's one rule across series.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

import forecasting
import pipelines.engines
from core.errors import ConfigError, WarehouseError
from core.frames import detached
from core.settings import Settings, load_settings
from ingest.batches import ingest_file
from ingest.sources import bundled_catalogue
from pipelines.cycle import run_cycle
from tests.fred_series import ingest_market_files
from tests.sql import sql_frame, sql_rows
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "stlfsi4": ("fred_STLFSI4.csv", "W-FRI"),
    "unrate": ("fred_UNRATE.csv", "MS"),
    "cpiaucsl": ("fred_CPIAUCSL.csv", "MS"),
}
#: Field-model series of the bundled catalogue, loaded into region US for the chunk test.
FIELD = ("hydro/usgs_01491000_choptank_daily_flow_cms.txt", "hydro/psmsl_rlr_monthly_012_new_york_battery.rlrdata")
NOW = datetime(2026, 11, 22, 3, 0)
AS_OF = "2008-10-24"

# What a cycle writes, ordered by key; run ids and wall-clock columns left out.
WRITTEN = {
    "forecasts": "SELECT * EXCLUDE (run_id) FROM forecasts ORDER BY unique_id, cutoff, model, ds",
    "anomaly_scores": "SELECT * EXCLUDE (run_id) FROM anomaly_scores ORDER BY unique_id, ds, detector",
    "risk_grades": "SELECT * EXCLUDE (run_id) FROM risk_grades ORDER BY unique_id, ds",
    "model_selections": "SELECT unique_id, model, reason, members, basis FROM model_selections ORDER BY unique_id",
    "alerts": "SELECT * EXCLUDE (run_id) FROM alerts ORDER BY alert_id",
    "alert_transitions": "SELECT * EXCLUDE (transition_id, run_id) FROM alert_transitions "
    "ORDER BY alert_id, action, to_status, to_level",
    "data_gap_notices": "SELECT * EXCLUDE (run_id) FROM data_gap_notices ORDER BY notice_id",
    "judgments": "SELECT * EXCLUDE (run_id) FROM judgments ORDER BY judgment_id",
    "outbox": "SELECT alert_id, msg_type, created_at, created_by, reason FROM outbox ORDER BY alert_id, msg_type",
}


def _cycled(path: Path, field: tuple[str, ...] = (), **env: str) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    settings: Settings = load_settings(
        path, environ={"EWS_CYCLE__AS_OF": AS_OF, "EWS_ALERTS__JUDGE": "template", **env}
    )
    catalogue = {b.relative_path: b for b in bundled_catalogue(ROOT / "data")}
    with Warehouse.open(settings.warehouse_path) as wh:
        for name in field:
            item = catalogue[name]
            options = {**item.options, "region": "US"}
            assert ingest_file(wh, settings, ROOT / "data" / name, item.format, options=options).status == "committed"
        ingest_market_files(wh, settings, FILES)
        summary = run_cycle(wh, settings, now=NOW)
        return {table: sql_frame(wh, sql) for table, sql in WRITTEN.items()}, summary.row_counts


def test_one_series_per_chunk_writes_the_rows_of_one_chunk(tmp_path: Path) -> None:
    whole, whole_counts = _cycled(tmp_path / "whole", FIELD, EWS_CYCLE__CHUNK_SERIES="0")
    chunked, chunked_counts = _cycled(tmp_path / "chunked", FIELD, EWS_CYCLE__CHUNK_SERIES="1")
    assert whole_counts == chunked_counts
    assert whole["anomaly_scores"]["unique_id"].n_unique() == len(FILES) + len(FIELD)
    assert whole["risk_grades"].height > 100 and whole["forecasts"].height > 0
    # what the comparison covers: every rule of the levels step, and alerts
    evidence = [(r["unique_id"], json.loads(r["evidence"])) for r in whole["risk_grades"].iter_rows(named=True)]
    assert {"corroborated_by", "capped_at", "hazard"} <= {k for _, ev in evidence for k in ev}
    lifted = {(uid, mate) for uid, ev in evidence for mate in ev.get("corroborated_by", [])}
    assert any(uid in FILES and mate not in FILES for uid, mate in lifted), (
        lifted
    )  # a river or gauge lifts a market grade
    assert whole["alerts"].height > 0 and whole["judgments"].height > 0
    for table, rows in whole.items():
        assert rows.equals(chunked[table]), table


def test_two_workers_write_the_rows_of_one(tmp_path: Path) -> None:
    one, one_counts = _cycled(tmp_path / "one", EWS_CYCLE__WORKERS="1")
    two, two_counts = _cycled(tmp_path / "two", EWS_CYCLE__WORKERS="2")
    assert one_counts == two_counts
    assert one["anomaly_scores"]["unique_id"].n_unique() == len(FILES)
    for table, rows in one.items():
        assert rows.equals(two[table]), table


def test_forecasting_the_next_chunk_while_one_is_scored_writes_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[cycle] overlap: chunk k+1's statistical models run on a thread while chunk k is
    scored; the rows are those of the chunks one after the other."""
    threads: list[str] = []
    real = forecasting.forecast_statistical

    def recorded(*args: object, **kwargs: object) -> forecasting.ForecastResult:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipelines.engines.forecasting, "forecast_statistical", recorded)
    after, after_counts = _cycled(tmp_path / "after", FIELD, EWS_CYCLE__CHUNK_SERIES="1", EWS_CYCLE__OVERLAP="false")
    assert threads and set(threads) == {threading.current_thread().name}
    threads.clear()
    beside, beside_counts = _cycled(tmp_path / "beside", FIELD, EWS_CYCLE__CHUNK_SERIES="1")
    assert threading.current_thread().name not in threads  # every chunk's models ran on the thread
    assert after_counts == beside_counts
    assert after["risk_grades"].height > 100 and after["forecasts"]["unique_id"].n_unique() == len(FILES) + len(FIELD)
    for table, rows in after.items():
        assert rows.equals(beside[table]), table


def test_a_cycle_past_its_memory_limit_fails_naming_the_setting_and_writes_nothing(tmp_path: Path) -> None:
    """[cycle] memory_limit caps DuckDB during the cycle; a cycle that needs more fails with
    an error that names the key to raise, is recorded as failed, and leaves no row of the
    chunk it was in. The limit is restored after the cycle, whichever way it ends."""
    settings = load_settings(
        tmp_path,
        environ={"EWS_CYCLE__AS_OF": AS_OF, "EWS_ALERTS__JUDGE": "template", "EWS_CYCLE__MEMORY_LIMIT": "1MB"},
    )
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
        before = sql_rows(wh, "SELECT current_setting('memory_limit')")[0][0]
        with pytest.raises(
            WarehouseError, match=r"(?s)memory limit 1MB \(\[cycle\] memory_limit\).*raise \[cycle\] memory_limit"
        ):
            run_cycle(wh, settings, now=NOW)
        assert sql_rows(wh, "SELECT current_setting('memory_limit')")[0][0] == before
        assert sql_rows(wh, "SELECT status FROM runs") == [("failed",)]
        assert sql_rows(wh, "SELECT count(*) FROM forecasts")[0][0] == 0
        assert sql_rows(wh, "SELECT count(*) FROM anomaly_scores")[0][0] == 0
    with pytest.raises(ConfigError, match=r"\[cycle\] memory_limit = 'plenty' is not a memory size"):
        load_settings(tmp_path, environ={"EWS_CYCLE__MEMORY_LIMIT": "plenty"})


def test_a_failed_read_of_the_next_chunk_leaves_this_chunk_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With [cycle] overlap the next chunk is read inside this chunk's transaction; a failure
    of that read is raised after this chunk commits, as it was when chunks ran one by one."""
    import pipelines.cycle

    real = pipelines.cycle.read_observations
    calls: list[list[str]] = []

    def second_read_fails(wh: Warehouse, ids: list[str], **kwargs: object) -> pl.DataFrame:
        calls.append(list(ids))
        if len(calls) == 2:
            raise OSError("disk gone while reading the second chunk")
        return real(wh, ids, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipelines.cycle, "read_observations", second_read_fails)
    settings = load_settings(
        tmp_path,
        environ={"EWS_CYCLE__AS_OF": AS_OF, "EWS_ALERTS__JUDGE": "template", "EWS_CYCLE__CHUNK_SERIES": "1"},
    )
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
        with pytest.raises(OSError, match="second chunk"):
            run_cycle(wh, settings, now=NOW)
        written = sql_rows(wh, "SELECT DISTINCT unique_id FROM forecasts")
        scored = sql_rows(wh, "SELECT DISTINCT unique_id FROM anomaly_scores")
        assert written == scored == [(calls[0][0],)]  # the first chunk, whole
        assert sql_rows(wh, "SELECT status FROM runs") == [("failed",)]


def _held_bytes(column: pl.Series) -> int:
    """Bytes of the buffers a string column keeps alive (polars shares them between frames)."""
    array = column.to_arrow(compat_level=pl.CompatLevel.newest())
    return sum(buffer.size for buffer in array.buffers() if buffer is not None)


def _own_bytes(column: pl.Series) -> int:
    """Bytes the column's strings take by themselves (their text, a 16-byte view each, validity)."""
    return sum(len(text.encode()) for text in column.drop_nulls()) + 17 * column.len()


def test_what_the_levels_step_holds_across_chunks_does_not_keep_the_chunks_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21, bounded memory: the levels step keeps each series' newest grade across
    chunks. Taken from a chunk's grades by a join, its evidence would be views into the
    buffers of the chunk's whole evidence column (polars), keeping every chunk's evidence
    alive to the end of the cycle (about 0.5 MB a ten-year daily series, docs/scaling.md).
    What it holds when the last chunk is in takes about its own bytes."""
    import pipelines.hazard_step

    held: list[pl.DataFrame] = []
    real = pipelines.hazard_step.HazardStep.finish

    def recorded(self: pipelines.hazard_step.HazardStep) -> object:
        held.extend(self._newest)
        return real(self)

    monkeypatch.setattr(pipelines.hazard_step.HazardStep, "finish", recorded)
    _, counts = _cycled(tmp_path, FIELD, EWS_CYCLE__CHUNK_SERIES="1")
    assert len(held) == len(FILES) + len(FIELD)  # one frame a chunk, one series a chunk
    assert sum(frame.height for frame in held) == len(held)
    assert counts["risk_grades"] > 100 * len(held)  # the chunks graded far more rows than are held
    for frame in held:
        column = frame["evidence"]
        kept, own = _held_bytes(column), _own_bytes(column)
        assert kept <= 2 * own + 4096, f"{frame['unique_id'][0]}: {kept} bytes alive for {own} of its own"


def test_a_detached_frame_holds_only_its_own_strings() -> None:
    """core.frames.detached: the same values and dtypes, without the source's buffers."""
    many = pl.DataFrame(
        {
            "unique_id": [f"station_{i % 7:03d}_north" for i in range(20_000)],
            "ds": pl.datetime_range(datetime(2000, 1, 1), datetime(2000, 1, 1, 5, 33, 19), "1s", eager=True),
            "evidence": [json.dumps({"i": i, "note": "a rare value" * 5}) for i in range(20_000)],
            "level": pl.Series(["yellow", "blue"] * 10_000, dtype=pl.Enum(["blue", "yellow"])),
        }
    )
    few = pl.DataFrame({"ds": [datetime(2000, 1, 1, 0, 0, 5), datetime(2000, 1, 1, 1)]}).join(many, on="ds")
    assert _held_bytes(few["evidence"]) > 1_000_000  # views into the 20,000 rows' text
    out = detached(few)
    assert out.equals(few) and out.schema == few.schema
    for name in ("unique_id", "evidence"):
        assert _held_bytes(out[name]) <= 2 * _own_bytes(out[name]) + 4096, name
    assert detached(few.clear()).schema == few.schema
