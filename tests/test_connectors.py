"""Network connectors against a real HTTP server on 127.0.0.1 replaying the services' answers
(tests/replay_server.py: built from the bundled real files), including slow, failing,
truncated and malformed answers. Each test uses a fresh EWS_HOME and a real DuckDB file.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError
from core.settings import Settings, load_settings
from ingest.connectors import run_source
from ingest.connectors.http import HttpClient, RateLimiter, SourceError
from pipelines.cli.main import main
from pipelines.ingest_job import run_sources
from tests.replay_server import API_KEY, CATALOG, ReplayServer
from tests.sql import sql_rows
from warehouse import Warehouse
from warehouse.ingestion import read_batches, read_watermarks, source_freshness
from warehouse.runs import last_run
from warehouse.series import read_observations, read_series_meta
from warehouse.status import count_rows

NOW = dt.datetime(2026, 1, 15, 12, 0, 0)
FAST = "[ingest]\ntimeout_seconds = 1.0\nretries = 2\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.05\n"


def _home(tmp_path: Path, sources: str) -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "ews.toml").write_text(FAST + "[ingest.sources]\n" + sources, encoding="utf-8")
    return load_settings(tmp_path, environ={})


@pytest.fixture()
def server():
    with ReplayServer() as running:
        yield running


def _fdsn(url: str, *, window_days: int = 365, extra: str = "") -> str:
    return f"""
[ingest.sources.east_asia]
kind = "usgs_fdsn"
url = "{url}/fdsnws/event/1"
start = "2018-01-01"
end = "2023-03-01"
min_magnitude = 4.5
window_days = {window_days}
regions = [{{ id = "sichuan_yunnan", name = "Sichuan-Yunnan", min_lat = 21, max_lat = 34, min_lon = 97, max_lon = 106 }}]
{extra}"""  # noqa: E501 - a TOML 1.0 inline table stays on one line


def _obs(wh: Warehouse, uid: str) -> pl.DataFrame:
    return read_observations(wh, [uid])


# --- USGS FDSN ------------------------------------------------------------------------------


def test_fdsn_backfill_windows_store_events_and_daily_series_and_a_watermark(tmp_path, server) -> None:
    settings = _home(tmp_path, _fdsn(server.url))
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "east_asia", now=NOW)
        assert run.status == "success", run.error
        assert len(run.batches) == 6  # 2018..2023-03 in 365-day windows
        expected = sum(
            1 for line in CATALOG.read_bytes().decode("cp1252").splitlines()[1:] if float(line.split(",")[4]) >= 4.5
        )
        assert count_rows(wh, "events") == expected
        # 2019-06-17 Changning (Sichuan) M5.8 and its aftershocks: the region's busiest M4.5+ day.
        counts = _obs(wh, "sichuan_yunnan_count")
        assert counts.sort("y").tail(1).get_column("ds").item() == dt.datetime(2019, 6, 17)
        assert counts.get_column("ds").min() == dt.datetime(2018, 1, 1)  # zero-filled over the windows
        assert read_watermarks(wh, "east_asia") == {"east_asia": "2026-01-15T12:00:00"}
        fresh = source_freshness(wh)["east_asia"]
        assert (
            fresh["kind"] == "usgs_fdsn" and fresh["last_error"] is None and fresh["last_data_time"].startswith("2023-")
        )
        digest = sql_rows(wh, "SELECT count(*), bit_xor(hash(unique_id, ds, y)) FROM observations")[0]
        # the next run asks only for events updated after the watermark; none were
        again = run_source(wh, settings, "east_asia", now=NOW + dt.timedelta(hours=1))
        assert again.status == "success" and again.batches == []
        assert "updatedafter=2026-01-15T12%3A00%3A00" in server.requests[-1]
        assert sql_rows(wh, "SELECT count(*), bit_xor(hash(unique_id, ds, y)) FROM observations")[0] == digest
        assert read_watermarks(wh, "east_asia")["east_asia"] == "2026-01-15T13:00:00"


def test_fdsn_window_over_the_event_cap_is_split_until_it_fits(tmp_path) -> None:
    with ReplayServer(event_cap=400) as server:
        settings = _home(tmp_path, _fdsn(server.url, window_days=2000))
        with Warehouse.open(settings.warehouse_path) as wh:
            run = run_source(wh, settings, "east_asia", now=NOW)
            assert run.status == "success", run.error
            refused = [r for r in server.requests if "starttime=2018-01-01T00" in r]
            assert len(run.batches) >= 3 and len(refused) >= 2
            with ReplayServer() as uncapped:
                other = _home(tmp_path / "b", _fdsn(uncapped.url))
                with Warehouse.open(other.warehouse_path) as wh2:
                    run_source(wh2, other, "east_asia", now=NOW)
                    same = "SELECT count(*), bit_xor(hash(event_id, time, magnitude)) FROM events"
                    assert sql_rows(wh, same) == sql_rows(wh2, same)
                    daily = "SELECT count(*), bit_xor(hash(unique_id, ds, y)) FROM observations"
                    assert sql_rows(wh, daily) == sql_rows(wh2, daily)


def test_fdsn_retries_500_429_and_slow_answers_then_succeeds(tmp_path, server) -> None:
    settings = _home(tmp_path, _fdsn(server.url, window_days=3000))
    server.faults["/fdsnws/event/1/query"] = ["500", "429"]
    client = HttpClient(settings.ingest)
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "east_asia", client=client, now=NOW)
        assert run.status == "success"
        assert client.retried == 2 and server.count("/fdsnws/event/1/query") == 3
    server.slow_seconds = 1.5  # beyond the 1 s timeout
    server.faults["/fdsnws/event/1/query"] = ["slow"]
    settings2 = _home(tmp_path / "slow", _fdsn(server.url, window_days=3000))
    client2 = HttpClient(settings2.ingest)
    with Warehouse.open(settings2.warehouse_path) as wh:
        run = run_source(wh, settings2, "east_asia", client=client2, now=NOW)
        assert run.status == "success" and client2.retried == 1


def test_persistent_5xx_fails_the_source_keeps_the_watermark_and_records_the_error(tmp_path, server) -> None:
    settings = _home(tmp_path, _fdsn(server.url, window_days=3000))
    with Warehouse.open(settings.warehouse_path) as wh:
        assert run_source(wh, settings, "east_asia", now=NOW).status == "success"
        before = sql_rows(wh, "SELECT count(*) FROM events")[0][0]
        server.faults["/fdsnws/event/1/query"] = ["503", "503", "503"]
        run = run_source(wh, settings, "east_asia", now=NOW + dt.timedelta(hours=1))
        assert run.status == "failed"
        assert "failed 3 time(s), last HTTP 503" in run.error and "fix:" in run.error
        assert read_watermarks(wh, "east_asia")["east_asia"] == "2026-01-15T12:00:00"  # not advanced
        assert sql_rows(wh, "SELECT count(*) FROM events")[0][0] == before
        fresh = source_freshness(wh)["east_asia"]
        assert fresh["failing"] and "HTTP 503" in fresh["last_error"]["error"]


def test_truncated_answer_is_retried_and_malformed_answer_is_quarantined(tmp_path, server) -> None:
    settings = _home(tmp_path, _fdsn(server.url, window_days=3000))
    server.faults["/fdsnws/event/1/query"] = ["truncate"]
    client = HttpClient(settings.ingest)
    with Warehouse.open(settings.warehouse_path) as wh:
        assert run_source(wh, settings, "east_asia", client=client, now=NOW).status == "success"
        assert client.retried == 1
    settings = _home(tmp_path / "bad", _fdsn(server.url, window_days=3000))
    server.faults["/fdsnws/event/1/query"] = ["malformed"]
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "east_asia", now=NOW)
        assert run.status == "quarantined"
        assert count_rows(wh, "events") == 0 and count_rows(wh, "observations") == 0
        assert read_watermarks(wh, "east_asia") == {}
        batch = read_batches(wh).row(0, named=True)
        assert batch["status"] == "quarantined" and "line" in batch["error"]
        landed = list((tmp_path / "bad" / "raw" / batch["batch_id"]).iterdir())
        assert len(landed) == 1 and b"proxy error" in landed[0].read_bytes()
        # the service recovers: the next run loads everything
        assert run_source(wh, settings, "east_asia", now=NOW).status == "success"
        assert count_rows(wh, "events") > 1000


def test_a_4xx_is_not_retried_and_names_the_fix(tmp_path, server) -> None:
    settings = _home(tmp_path, _fdsn(server.url, window_days=3000))
    server.faults["/fdsnws/event/1/query"] = ["403"]
    client = HttpClient(settings.ingest)
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "east_asia", client=client, now=NOW)
    assert run.status == "failed" and client.retried == 0
    assert "answered HTTP 403" in run.error and "fix: check start/end" in run.error


# --- FRED -----------------------------------------------------------------------------------


def _fred(url: str) -> str:
    return f"""
[ingest.sources.fred_macro]
kind = "fred"
url = "{url}/fred"
series = ["UNRATE", "DGS10"]
start = "2020-01-01"
"""


def test_fred_loads_each_series_with_its_watermark_and_hides_the_key(tmp_path, server) -> None:
    settings = _home(tmp_path, _fred(server.url))
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "fred_macro", now=NOW, environ={"FRED_API_KEY": API_KEY})
        assert run.status == "success", run.error
        meta = dict(read_series_meta(wh).select("unique_id", "frequency").iter_rows())
        assert meta == {"unrate": "MS", "dgs10": "B"}
        unrate = _obs(wh, "unrate")
        assert unrate.get_column("ds").min() == dt.datetime(2020, 1, 1)
        assert unrate.filter(pl.col("ds") == dt.datetime(2020, 4, 1)).get_column("y").item() == 14.8  # COVID peak
        assert read_watermarks(wh, "fred_macro") == {
            "fred_macro/UNRATE": "2025-11-01",
            "fred_macro/DGS10": "2025-12-30",
        }
        ledger = read_batches(wh)
        assert not ledger.filter(pl.col("location").str.contains(API_KEY)).height
        # incremental: the next run asks from the watermark minus the 45-day lookback
        again = run_source(wh, settings, "fred_macro", now=NOW, environ={"FRED_API_KEY": API_KEY})
        assert {b.status for b in again.batches} == {"committed"} and sum(b.rows_changed for b in again.batches) == 0
        assert any("observation_start=2025-09-17" in r for r in server.requests)


def test_fred_without_a_key_or_with_a_wrong_key_explains(tmp_path, server) -> None:
    settings = _home(tmp_path, _fred(server.url))
    with Warehouse.open(settings.warehouse_path) as wh:
        missing = run_source(wh, settings, "fred_macro", now=NOW, environ={})
        assert missing.status == "failed" and "FRED_API_KEY" in missing.error
        wrong = run_source(wh, settings, "fred_macro", now=NOW, environ={"FRED_API_KEY": "x" * 32})
        assert wrong.status == "failed" and "not registered" in wrong.error and "x" * 32 not in wrong.error


def test_rate_limiter_holds_fred_to_120_requests_per_minute() -> None:
    clock = {"t": 0.0}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["t"] += seconds

    limiter = RateLimiter(120, 60.0, clock=lambda: clock["t"], sleep=sleep)
    for _ in range(300):
        limiter.acquire()
        clock["t"] += 0.01  # each request takes 10 ms
    # 300 requests at 120/min need at least two full minutes of waiting
    assert clock["t"] >= 120.0 and len(sleeps) >= 2
    starts = []
    limiter = RateLimiter(120, 60.0, clock=lambda: clock["t"], sleep=sleep)
    for _ in range(360):
        limiter.acquire()
        starts.append(clock["t"])
    for i in range(len(starts) - 120):
        assert starts[i + 120] - starts[i] >= 60.0  # never more than 120 in any minute


# --- USGS water, NASA POWER, NGL, NetCDF ----------------------------------------------------


def test_usgs_water_follows_pages_and_converts_to_cubic_metres(tmp_path) -> None:
    with ReplayServer(page_size=10) as server:
        settings = _home(
            tmp_path,
            f"""
[ingest.sources.chattooga]
kind = "usgs_water"
url = "{server.url}/ogcapi/daily/items"
site = "USGS-02177000"
start = "2012-09-01"
""",
        )
        with Warehouse.open(settings.warehouse_path) as wh:
            run = run_source(wh, settings, "chattooga", now=NOW)
            assert run.status == "success", run.error
            assert server.count("/ogcapi/daily/items") == 4  # 31 days in pages of 10
            flow = _obs(wh, "usgs_02177000_discharge")
            assert flow.height == 31
            assert flow.sort("y").tail(1).get_column("y").item() == pytest.approx(1470 * 0.0283168466)
            assert read_watermarks(wh, "chattooga") == {"chattooga": "2012-10-01"}
            assert len(list((tmp_path / "raw" / run.batches[0].batch_id).iterdir())) == 4
            # the same numbers as the NWIS RDB file of the same gauge: no doubled series
            from ingest.batches import ingest_file

            rdb = Path(__file__).resolve().parent.parent / "data/hydro/usgs_nwis_rdb_02177000_chattooga_2012.rdb"
            assert ingest_file(wh, settings, rdb, "nwis_rdb").rows_changed == 0


def test_nasa_power_drops_fill_values_and_resumes_after_the_watermark(tmp_path, server) -> None:
    settings = _home(
        tmp_path,
        f"""
[ingest.sources.power_site]
kind = "nasa_power"
url = "{server.url}/power/daily/point"
latitude = 38.997
longitude = -75.786
parameters = ["PRECTOTCORR"]
start = "2011-09-01"
""",
    )
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "power_site", now=dt.datetime(2011, 10, 20))
        assert run.status == "success", run.error
        series = _obs(wh, "power_site_prectotcorr")
        assert series.get_column("ds").max() == dt.datetime(2011, 9, 30)  # later days are -999 fill values
        assert series.height == 30
        assert read_watermarks(wh, "power_site") == {"power_site": "20110930"}
        assert "PRECTOTCORR: 30 value(s), 20 fill value(s) -999 dropped" in run.batches[0].notes
        run_source(wh, settings, "power_site", now=dt.datetime(2011, 10, 21))
        assert "start=20110923" in server.requests[-1]  # watermark minus the 7-day lookback


def test_ngl_station_file_and_netcdf_grid_url(tmp_path, server) -> None:
    settings = _home(
        tmp_path,
        f"""
[ingest.sources.ngl]
kind = "ngl_gnss"
url = "{server.url}/ngl/{{station}}.tenv3"
stations = ["P156"]

[ingest.sources.sst]
kind = "netcdf_url"
url = "{server.url}/grids/sst.nc"
variable = "sst"
statistics = ["mean"]
regions = [{{ id = "nino34", name = "Nino 3.4", polygon = [[190, -5], [240, -5], [240, 5], [190, 5]] }}]
""",
    )
    run = run_sources(settings, ["ngl", "sst"], cycle=False, now=NOW)
    assert run.ok, [s.error for s in run.sources]
    with Warehouse.open(settings.warehouse_path) as wh:
        east = _obs(wh, "p156_east")
        assert east.height == 3196 and east.get_column("y").tail(1).item() == pytest.approx(
            (-0.21577 - 0.06265) * 1000, abs=1e-3
        )
        assert read_watermarks(wh, "ngl") == {"ngl/P156": "2015-03-14"}
        assert set(read_series_meta(wh).get_column("unique_id").to_list()) == {
            "p156_east",
            "p156_north",
            "p156_up",
            "nino34_mean",
        }
        assert _obs(wh, "nino34_mean").height == 128
    again = run_sources(settings, ["ngl", "sst"], cycle=False, now=NOW + dt.timedelta(hours=1))
    assert [b.status for s in again.sources for b in s.batches] == ["skipped", "skipped"]
    with Warehouse.open(settings.warehouse_path) as wh:
        last = last_run(wh, "ingest")
        assert last["status"] == "success" and last["row_counts"] == {"ngl": 0, "sst": 0}


def test_unknown_source_and_bad_settings_are_config_errors(tmp_path, server) -> None:
    settings = _home(tmp_path, '[ingest.sources.odd]\nkind = "ftp"\n')
    with Warehouse.open(settings.warehouse_path) as wh:
        with pytest.raises(ConfigError, match="kind = 'ftp' is not a connector"):
            run_source(wh, settings, "odd")
        with pytest.raises(ConfigError, match="no source named 'nope'"):
            run_source(wh, settings, "nope")
    settings = _home(tmp_path / "typo", _fdsn(server.url, extra="minmag = 4"))
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "east_asia", now=NOW)
        assert run.status == "failed" and "unknown key(s) ['minmag']" in run.error


def test_cli_ingest_all_runs_sources_records_the_run_and_status_shows_freshness(tmp_path, server, capsys) -> None:
    _home(
        tmp_path,
        _fdsn(server.url, window_days=3000)
        + f"""
[ingest.sources.ngl]
kind = "ngl_gnss"
url = "{server.url}/ngl/{{station}}.tenv3"
stations = ["P156", "ZZZZ"]
""",
    )
    code = main(["--home", str(tmp_path), "ingest", "--all", "--no-cycle", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 8  # ZZZZ does not exist: that source failed, the other committed
    by_source = {s["source"]: s for s in out["sources"]}
    assert by_source["east_asia"]["status"] == "success" and by_source["ngl"]["status"] == "failed"
    assert "HTTP 404" in by_source["ngl"]["error"]
    assert main(["--home", str(tmp_path), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["series_by_domain"] == {"geodetic": 3, "seismic": 3}
    assert status["sources"]["east_asia"]["last_error"] is None
    assert status["sources"]["ngl"]["failing"] is True
    assert status["last_run"]["kind"] == "ingest" and status["last_run"]["status"] == "failed"
    with pytest.raises(SystemExit):
        main(["--home", str(tmp_path), "ingest", "--bogus"])
    capsys.readouterr()
    assert main(["--home", str(tmp_path), "ingest", "east_asia", "--format", "fred_csv"]) == 1
    assert "apply to `ews ingest file` only" in capsys.readouterr().err


def test_source_error_is_an_ews_error_with_its_own_exit_code() -> None:
    error = SourceError("x", fix="y")
    assert error.exit_code == 8 and "fix: y" in str(error)
