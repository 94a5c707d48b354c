"""A read snapshot is published by bringing a spare one up to date, not by copying the file (issue
21: a day of new data costs what is new; warehouse/snapshots.py, docs/dashboard.md).

Real parts: a DuckDB warehouse holding the bundled FRED STLFSI4 (weekly) and UNRATE (monthly)
files, cycled by the engine's own ``run_cycle`` through the autumn of 2008 (so every table a
cycle writes has rows: forecasts, scores, grades, alerts, judgments, selections, detector
state), published after each cycle as ``ews run`` does, and a reader holding a snapshot from
another process, and a revised export ingested between publications. Checked: after each
refresh every table of the published snapshot holds exactly the warehouse's rows (row for row,
every column); a spare lacking most of the warehouse, a spare a reader holds, and the setting
off (the default) all copy the file instead; a row the warehouse deleted outright is deleted
from the refreshed snapshot too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.settings import Settings, load_settings
from ingest.batches import ingest_file
from pipelines.cycle import run_cycle
from tests.fred_series import ingest_market_files
from tests.sql import sql_frame, sql_rows
from warehouse import Warehouse
from warehouse.snapshots import Snapshot, current_snapshot, open_snapshot, publish_snapshot, snapshot_folder

ROOT = Path(__file__).resolve().parent.parent
FILES = {"stlfsi4": ("fred_STLFSI4.csv", "W-FRI"), "unrate": ("fred_UNRATE.csv", "MS")}
NOW = datetime(2026, 12, 7, 3, 0)
DAYS = ("2008-09-12", "2008-09-26", "2008-10-10", "2008-10-24", "2008-11-07")

READER = textwrap.dedent("""
    import sys
    import duckdb

    con = duckdb.connect(sys.argv[1], read_only=True)  # a dashboard page reading a snapshot
    print(con.execute("SELECT count(*) FROM anomaly_scores").fetchall()[0][0], flush=True)
    sys.stdin.readline()
""")


def _settings(home: Path, as_of: str, **env: str) -> Settings:
    return load_settings(home, environ={"EWS_CYCLE__AS_OF": as_of, "EWS_BACKTEST__ENSEMBLES": "[]", **env})


def _revised(path: Path, *, dates: tuple[str, ...]) -> Path:
    """The bundled STLFSI4 export with the values of ``dates`` revised up by 0.5."""
    lines = (ROOT / "data" / "market" / FILES["stlfsi4"][0]).read_text().splitlines()
    out = []
    for line in lines:
        day, _, value = line.partition(",")
        out.append(f"{day},{float(value) + 0.5:.4f}" if day in dates else line)
    path.write_text("\n".join(out) + "\n")
    return path


def _tables(wh: Warehouse) -> dict[str, pl.DataFrame]:
    """Every base table, sorted on all its columns (blobs compared as hex text)."""
    names = [
        r[0] for r in sql_rows(wh, "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()")
    ]
    out = {}
    for name in sorted(names):
        frame = sql_frame(wh, f"SELECT * FROM {name}")
        frame = frame.with_columns(
            pl.col(c).bin.encode("hex") for c, t in frame.schema.items() if t == pl.Binary
        ).with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t in (pl.Object, pl.Null))
        out[name] = frame.sort(frame.columns, nulls_last=True) if frame.width else frame
    return out


def _cycles(wh: Warehouse, home: Path, days: tuple[str, ...], *, refresh: bool = True) -> list[Snapshot]:
    """Ingest the FRED files, then run a cycle as of each of ``days``, publishing after each."""
    settings = _settings(home, days[0])
    ingest_market_files(wh, settings, FILES)
    published = []
    for k, day in enumerate(days):
        run_cycle(wh, _settings(home, day), now=NOW + timedelta(days=k))
        published.append(
            publish_snapshot(wh, snapshot_folder(settings), refresh=refresh, now=NOW + timedelta(days=k, hours=1))
        )
    return published


def _assert_same(live: Warehouse, snapshot_path: Path) -> None:
    mine = _tables(live)
    with open_snapshot(snapshot_path) as snap:
        theirs = _tables(snap)
    assert list(theirs) == list(mine)
    for name, frame in mine.items():
        assert theirs[name].equals(frame), f"{name}: the snapshot differs from the warehouse"


def test_each_publication_refreshes_a_spare_to_exactly_the_warehouse(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _settings(home, DAYS[0])
    folder = snapshot_folder(settings)
    methods = []
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
        methods.append(publish_snapshot(wh, folder, refresh=True, now=NOW).method)  # what an ingest job publishes
        for k, day in enumerate(DAYS):
            if k == 1:
                # a revision between publications: a new ingest batch rewrites published values
                # (their rows change tag), as a FRED vintage does
                revised = _revised(tmp_path / "stlfsi4_revised.csv", dates=("2008-01-04", "2008-01-11"))
                result = ingest_file(
                    wh,
                    settings,
                    revised,
                    "fred_csv",
                    options={"unique_id": "stlfsi4", "frequency": "W-FRI", "domain": "market", "region": "US"},
                )
                assert result.status == "committed"
                assert sql_rows(wh, "SELECT count(DISTINCT batch_id) FROM observations")[0][0] == 3
            cycle = run_cycle(wh, _settings(home, day), now=NOW + timedelta(days=k + 1))
            assert cycle.series_processed >= 1
            if k == 3:
                # a plain delete in the warehouse (as forecast_store.drop_unselected_forecasts
                # makes): rows of an older run go without a newer tag replacing them
                gone = sql_rows(
                    wh,
                    "DELETE FROM forecasts WHERE unique_id = 'unrate' AND cutoff = "
                    "(SELECT min(cutoff) FROM forecasts WHERE unique_id = 'unrate')",
                )[0][0]
                assert gone > 0
            snap = publish_snapshot(wh, folder, refresh=True, now=NOW + timedelta(days=k + 1, hours=1))
            methods.append(snap.method)
            assert current_snapshot(folder) == snap
            _assert_same(wh, snap.path)
        scores = sql_rows(wh, "SELECT count(*) FROM anomaly_scores")[0][0]
        grades = sql_rows(wh, "SELECT count(*) FROM risk_grades")[0][0]
    # After the ingest and after the first cycle the spares lack most of the warehouse (the
    # first cycle writes every history's scores): copied. From then on each publication
    # refreshes the spare published two before it.
    assert methods == ["copy", "copy", "copy", "refresh", "refresh", "refresh"]
    assert scores > 1000 and grades > 100
    files = sorted(folder.glob("warehouse_*.duckdb"))
    assert len(files) <= 3 and not list(folder.glob("*.wal")) and not list(folder.glob(".*partial"))


def test_a_spare_held_by_a_reader_is_left_alone_and_the_file_is_copied(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _settings(home, DAYS[0])
    folder = snapshot_folder(settings)
    with Warehouse.open(settings.warehouse_path) as wh:
        published = _cycles(wh, home, DAYS[:3])
        spare = published[1].path  # the newest spare: what the next publication would refresh
        before = spare.read_bytes()
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(spare)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            held_rows = int(reader.stdout.readline())
            run_cycle(wh, _settings(home, DAYS[3]), now=NOW + timedelta(days=3))
            # the only spare is held (published[0] became published[2]): the file is copied
            snap = publish_snapshot(wh, folder, refresh=True, now=NOW + timedelta(days=3, hours=1))
            assert snap.method == "copy"
            assert spare.read_bytes() == before  # the held file is untouched
            _assert_same(wh, snap.path)
        finally:
            reader.communicate("\n", timeout=60)
        assert reader.returncode == 0 and held_rows > 0
        # Released, the spare is refreshed by the next publication.
        run_cycle(wh, _settings(home, DAYS[4]), now=NOW + timedelta(days=4))
        after = publish_snapshot(wh, folder, refresh=True, now=NOW + timedelta(days=4, hours=1))
        assert after.method == "refresh"
        _assert_same(wh, after.path)


def test_the_default_setting_copies_the_file_every_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _settings(home, DAYS[0])
    assert settings.dashboard.snapshot_refresh is False  # the shipped default (docs/scaling.md)
    with Warehouse.open(settings.warehouse_path) as wh:
        published = _cycles(wh, home, DAYS[:4], refresh=settings.dashboard.snapshot_refresh)
        _assert_same(wh, published[-1].path)
    assert [snap.method for snap in published] == ["copy"] * 4


def test_a_reader_holding_a_snapshot_gone_by_a_refresh_opens_the_current_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _settings(home, DAYS[0])
    with Warehouse.open(settings.warehouse_path) as wh:
        published = _cycles(wh, home, DAYS[:4])
        assert published[-1].method == "refresh"
        # published[1] was the spare the last publication refreshed and renamed
        assert not published[1].path.exists()
        with open_snapshot(published[1]) as snap:
            assert snap.path == published[-1].path
        with pytest.raises(Exception, match="no warehouse"):
            open_snapshot(tmp_path / "nowhere" / "warehouse_x.duckdb")
