"""The cycle on a Dask cluster writes the rows of the local engine (issue 21: beyond one machine).

Real data: the bundled FRED STLFSI4 (weekly), UNRATE and CPIAUCSL (monthly) files, region US,
replayed through the autumn of 2008 (the set of ``tests/test_cycle_chunks.py``). One warehouse
is cycled with the local engine, another with ``[cycle] engine = "dask"``: once on the local
Dask cluster the cycle starts itself (``[cycle] workers`` processes), once through
``ews run --engine dask --scheduler ADDRESS`` against a scheduler this test starts on loopback.
Every row the cycle wrote is compared, but for run ids and wall-clock stamps; floating point
columns to a relative 1e-9 (the same code runs on each series, in other processes).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from core.settings import Settings, load_settings
from pipelines.cli.main import main
from pipelines.cycle import run_cycle
from tests.fred_series import ingest_market_files
from tests.sql import sql_frame
from warehouse import Warehouse

distributed = pytest.importorskip("distributed")
pytest.importorskip("fugue_dask")

pytestmark = pytest.mark.dask

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "stlfsi4": ("fred_STLFSI4.csv", "W-FRI"),
    "unrate": ("fred_UNRATE.csv", "MS"),
    "cpiaucsl": ("fred_CPIAUCSL.csv", "MS"),
}
NOW = datetime(2026, 11, 22, 3, 0)
AS_OF = "2008-10-24"

WRITTEN = {
    "forecasts": "SELECT * EXCLUDE (run_id) FROM forecasts ORDER BY unique_id, cutoff, model, ds",
    "anomaly_scores": "SELECT * EXCLUDE (run_id) FROM anomaly_scores ORDER BY unique_id, ds, detector",
    "risk_grades": "SELECT * EXCLUDE (run_id) FROM risk_grades ORDER BY unique_id, ds",
    "model_selections": "SELECT unique_id, model, reason, members, basis, ets_form FROM model_selections "
    "ORDER BY unique_id",
    "exceedance": "SELECT * EXCLUDE (run_id) FROM exceedance ORDER BY ALL",
    "alerts": "SELECT unique_id, level, status FROM alerts ORDER BY unique_id",
}


def _loaded(path: Path, **env: str) -> Settings:
    settings: Settings = load_settings(path, environ={"EWS_CYCLE__AS_OF": AS_OF, **env})
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
    return settings


def _written(settings: Settings) -> dict[str, pl.DataFrame]:
    with Warehouse.open(settings.warehouse_path) as wh:
        return {table: sql_frame(wh, sql) for table, sql in WRITTEN.items()}


def _cycled(path: Path, **env: str) -> tuple[dict[str, pl.DataFrame], dict[str, int], list[str]]:
    settings = _loaded(path, **env)
    with Warehouse.open(settings.warehouse_path) as wh:
        summary = run_cycle(wh, settings, now=NOW)
    return _written(settings), summary.row_counts, summary.notes


def _assert_same(local: dict[str, pl.DataFrame], other: dict[str, pl.DataFrame]) -> None:
    for table, rows in local.items():
        theirs = other[table]
        assert rows.columns == theirs.columns and rows.height == theirs.height, table
        for column in rows.columns:
            mine, yours = rows.get_column(column), theirs.get_column(column)
            if mine.dtype.is_float():
                assert np.allclose(mine.to_numpy(), yours.to_numpy(), rtol=1e-9, atol=0.0, equal_nan=True), (
                    table,
                    column,
                )
            else:
                assert mine.equals(yours), (table, column)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    rows, counts, _ = _cycled(tmp_path_factory.mktemp("local"), EWS_CYCLE__ENGINE="local")
    assert rows["anomaly_scores"]["unique_id"].n_unique() == len(FILES)
    assert rows["risk_grades"].height > 100 and rows["forecasts"].height > 0
    assert rows["exceedance"].height > 0 or rows["forecasts"].height > 0
    return rows, counts


def test_dask_engine_on_its_own_local_cluster_writes_the_local_rows(
    tmp_path: Path, local: tuple[dict[str, pl.DataFrame], dict[str, int]]
) -> None:
    rows, counts = local
    dask_rows, dask_counts, notes = _cycled(
        tmp_path, EWS_CYCLE__ENGINE="dask", EWS_CYCLE__WORKERS="2", EWS_CYCLE__CHUNK_SERIES="2"
    )
    assert dask_counts == counts
    assert any("local Dask cluster of 2 worker process(es)" in n for n in notes)
    _assert_same(rows, dask_rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ews_run_on_a_scheduler_address_writes_the_local_rows(
    tmp_path: Path,
    local: tuple[dict[str, pl.DataFrame], dict[str, int]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows, _ = local
    home = tmp_path / "home"
    monkeypatch.setenv("EWS_CYCLE__AS_OF", AS_OF)  # what `ews run` reads, as _loaded does
    settings = _loaded(home)
    assert settings.cycle.engine == "local"  # the flag alone turns the dask engine on
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        code = main(["--home", str(home), "run", "--json", "--scheduler", cluster.scheduler_address])
    assert code == 0
    assert f"the Dask scheduler at {cluster.scheduler_address}" in capsys.readouterr().out
    written = _written(settings)
    # run at the wall clock, not NOW: compare what does not depend on the day it ran
    for table in ("forecasts", "anomaly_scores", "model_selections", "exceedance"):
        _assert_same({table: rows[table]}, {table: written[table]})


def test_an_unreachable_scheduler_is_named_with_how_to_start_one(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    settings = _loaded(tmp_path, EWS_CYCLE__ENGINE="dask", EWS_CYCLE__SCHEDULER=address)
    with Warehouse.open(settings.warehouse_path) as wh:
        with pytest.raises(ConfigError, match="cannot reach the Dask scheduler") as caught:
            run_cycle(wh, settings, now=NOW)
        assert sql_frame(wh, "SELECT count(*) AS n FROM observations").item() > 0  # the data stays
        assert sql_frame(wh, "SELECT status FROM runs").get_column("status").to_list() == ["failed"]
    assert address in str(caught.value) and "`dask scheduler`" in str(caught.value)
    assert f"`dask worker {address}`" in str(caught.value)


def test_a_scheduler_without_workers_is_named(tmp_path: Path) -> None:
    with distributed.LocalCluster(n_workers=0, dashboard_address=None, host="127.0.0.1") as cluster:
        settings = _loaded(tmp_path, EWS_CYCLE__ENGINE="dask", EWS_CYCLE__SCHEDULER=cluster.scheduler_address)
        with Warehouse.open(settings.warehouse_path) as wh, pytest.raises(ConfigError, match="has no worker") as caught:
            run_cycle(wh, settings, now=NOW)
    assert f"`dask worker {cluster.scheduler_address}`" in str(caught.value)


def test_the_local_engine_refuses_a_scheduler_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="engine = 'local'"):
        load_settings(tmp_path, environ={"EWS_CYCLE__SCHEDULER": "tcp://127.0.0.1:8786"})
    with pytest.raises(ConfigError, match="not an engine"):
        load_settings(tmp_path, environ={"EWS_CYCLE__ENGINE": "spark"})
    home = str(tmp_path / "home")
    assert main(["--home", home, "run", "--engine", "local", "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert "needs the dask engine" in capsys.readouterr().err


def test_without_dask_installed_the_error_names_the_extra(tmp_path: Path) -> None:
    # A child interpreter in which `distributed` cannot be imported (as on an install without it).
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from core.settings import load_settings\n"
        "from pipelines.engines import open_engine\n"
        f"settings = load_settings({str(tmp_path)!r}, environ={{'EWS_CYCLE__ENGINE': 'dask'}})\n"
        "with open_engine(settings):\n"
        "    pass\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode != 0
    assert 'pip install "ews[dask]"' in done.stderr and "ConfigError" in done.stderr
