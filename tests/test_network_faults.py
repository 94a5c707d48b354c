"""Issue 20, findings 1-3 and 6: every connector driven through a real loopback fault server
(tests/replay_server.py) into a real DuckDB file.

Each fault is what a real service, proxy or network does: 500, 429 with Retry-After, a server
that never answers, one that drips its answer a byte at a time, an answer cut short with and
without Content-Length, an HTML maintenance page with status 200, JSON of the wrong shape, and
a whole-looking answer older than what is stored. Whatever comes, the source's run ends as
``success`` or ``failed`` with the fix, within its deadline; nothing of a refused answer is
stored; a refused answer has a ``quarantined`` ledger row and its bytes under ``raw/``;
``source_status`` shows the source failing; the watermark never moves back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from core.errors import WarehouseError
from core.settings import Settings, load_settings
from ingest.connectors import CONNECTORS, run_source
from ingest.connectors.http import HttpClient
from pipelines.cli.main import main
from tests.replay_server import API_KEY, ReplayServer
from warehouse import Warehouse
from warehouse.ingestion import advance_watermark, read_batches, read_watermarks, source_freshness, write_watermark
from warehouse.status import count_rows

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 1, 15, 12, 0, 0)
TIMEOUT = 1.0
FAST = (
    f"[ingest]\ntimeout_seconds = {TIMEOUT}\nretries = 1\nbackoff_seconds = 0.01\nmax_backoff_seconds = 2.0\n"
    "source_deadline_seconds = 30.0\n"
)

# kind -> (source table, path the faults hit, clock of the run, environment)
SOURCES: dict[str, tuple[str, str, dt.datetime, dict[str, str]]] = {
    "fred": (
        'url = "{url}/fred"\nseries = ["UNRATE"]\nstart = "2020-01-01"\n',
        "/fred/series/observations",
        NOW,
        {"FRED_API_KEY": API_KEY},
    ),
    "usgs_fdsn": (
        'url = "{url}/fdsnws/event/1"\nstart = "2018-01-01"\nend = "2023-03-01"\nmin_magnitude = 4.5\n'
        "window_days = 3000\n",
        "/fdsnws/event/1/query",
        NOW,
        {},
    ),
    "fdsn_event": (
        'url = "{url}/ingv/fdsnws/event/1"\nstart = "2021-01-01"\nend = "2021-01-02"\nformat = "text"\n',
        "/ingv/fdsnws/event/1/query",
        NOW,
        {},
    ),
    "nasa_power": (
        'url = "{url}/power/daily/point"\nlatitude = 38.997\nlongitude = -75.786\nparameters = ["PRECTOTCORR"]\n'
        'start = "2011-09-01"\n',
        "/power/daily/point",
        dt.datetime(2011, 10, 20),
        {},
    ),
    "usgs_water": (
        'url = "{url}/ogcapi/daily/items"\nsite = "USGS-02177000"\nstart = "2012-09-01"\n',
        "/ogcapi/daily/items",
        NOW,
        {},
    ),
    "ngl_gnss": ('url = "{url}/ngl/{{station}}.tenv3"\nstations = ["P156"]\n', "/ngl/P156.tenv3", NOW, {}),
    "netcdf_url": (
        'url = "{url}/grids/sst.nc"\nvariable = "sst"\nstatistics = ["mean"]\n'
        'regions = [{{ id = "nino34", name = "Nino 3.4", polygon = [[190, -5], [240, -5], [240, 5], [190, 5]] }}]\n',
        "/grids/sst.nc",
        NOW,
        {},
    ),
}


def test_every_connector_is_in_the_fault_matrix() -> None:
    assert set(CONNECTORS) == set(SOURCES), "a new connector needs its row in SOURCES (and so the whole matrix)"


def _home(tmp_path: Path, server: ReplayServer, kind: str, extra: str = "") -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    table = SOURCES[kind][0].format(url=server.url)
    text = FAST + extra + f'[ingest.sources]\n[ingest.sources.src]\nkind = "{kind}"\n{table}'
    (tmp_path / "ews.toml").write_text(text, encoding="utf-8")
    return load_settings(tmp_path, environ={})


def _run(settings: Settings, kind: str, client: HttpClient | None = None, *, later: int = 0):
    _, _, now, environ = SOURCES[kind]
    with Warehouse.open(settings.warehouse_path) as wh:
        return run_source(wh, settings, "src", client=client, now=now + dt.timedelta(hours=later), environ=environ)


# (fault list on the path, what the run must end as, words its error must hold)
TRANSPORT = {
    "500": (["500", "500"], "failed 2 time(s), last HTTP 500"),
    "cut_with_length": (["truncate", "truncate"], "failed 2 time(s), last IncompleteRead"),
    "hang": (["hang", "hang"], "failed 2 time(s), last TimeoutError"),
    "drip": (["drip", "drip"], "did not arrive within 1 s"),
}
# (fault -> what the error must say: one of these, by the connector's format)
REFUSED = {
    "html200": ("answered an HTML page (text/html) where",),
    "wrongjson": ("answered JSON of the wrong shape", "answered content type 'application/json'", "does not start as"),
    "cut_nolength": ("that are not JSON (", "neither Content-Length nor chunked framing", "cannot be opened as NetCDF"),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest.mark.parametrize("fault", sorted(TRANSPORT))
def test_transport_faults_fail_the_source_within_its_deadline(tmp_path, kind, fault) -> None:
    with ReplayServer() as server:
        server.drip_seconds = 0.2
        settings = _home(tmp_path, server, kind)
        faults, words = TRANSPORT[fault]
        server.faults[SOURCES[kind][1]] = list(faults)
        started = time.monotonic()
        run = _run(settings, kind)
        elapsed = time.monotonic() - started
    assert run.status == "failed" and words in run.error and "fix:" in run.error, run.error
    # two attempts of at most timeout_seconds each (a drip used to hold one attempt for minutes)
    assert elapsed < 2 * TIMEOUT + 2.5, elapsed
    with Warehouse.open(settings.warehouse_path) as wh:
        assert source_freshness(wh)["src"]["failing"] is True
        assert count_rows(wh, "observations") == 0 and read_watermarks(wh, "src") == {}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_429_with_retry_after_waits_as_told_then_loads(tmp_path, kind) -> None:
    with ReplayServer() as server:
        settings = _home(tmp_path, server, kind)
        server.faults[SOURCES[kind][1]] = ["429ra"]
        client = HttpClient(settings.ingest)
        started = time.monotonic()
        run = _run(settings, kind, client)
        elapsed = time.monotonic() - started
    assert run.status == "success", run.error
    assert client.retried == 1 and elapsed >= 1.0  # Retry-After: 1, not the 0.01 s backoff
    with Warehouse.open(settings.warehouse_path) as wh:
        assert count_rows(wh, "observations") > 0 and source_freshness(wh)["src"]["failing"] is False


@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest.mark.parametrize("fault", sorted(REFUSED))
def test_answers_that_are_not_the_data_are_quarantined_with_a_ledger_row(tmp_path, kind, fault) -> None:
    with ReplayServer() as server:
        settings = _home(tmp_path, server, kind)
        server.faults[SOURCES[kind][1]] = [fault]
        run = _run(settings, kind)
    assert run.status in ("failed", "quarantined") and "fix:" in run.error, (run.status, run.error)
    assert any(words in run.error for words in REFUSED[fault]), run.error
    with Warehouse.open(settings.warehouse_path) as wh:
        ledger = read_batches(wh).filter(pl.col("source") == "src")
        assert ledger.get_column("status").to_list() == ["quarantined"]
        assert source_freshness(wh)["src"]["failing"] is True
        assert count_rows(wh, "observations") == 0 and read_watermarks(wh, "src") == {}
        landed = list((settings.path("raw") / ledger.get_column("batch_id").item()).iterdir())
        assert landed and all(p.stat().st_size > 0 for p in landed)
    # the service recovers (a fresh server, same warehouse): the next run loads, the source is not failing
    with ReplayServer() as healthy:
        healthy_settings = _home(settings.home, healthy, kind)
        assert _run(healthy_settings, kind, later=1).status == "success"
    with Warehouse.open(settings.warehouse_path) as wh:
        assert count_rows(wh, "observations") > 0 and source_freshness(wh)["src"]["failing"] is False


def test_the_source_deadline_bounds_all_attempts_together(tmp_path) -> None:
    with ReplayServer() as server:
        settings = _home(tmp_path, server, "ngl_gnss")
        text = (
            settings.config_file.read_text()
            .replace("retries = 1", "retries = 20")
            .replace("source_deadline_seconds = 30.0", "source_deadline_seconds = 2.5")
        )
        settings.config_file.write_text(text)
        settings = load_settings(tmp_path, environ={})
        server.faults["/ngl/P156.tenv3"] = ["hang"] * 21
        started = time.monotonic()
        run = _run(settings, "ngl_gnss")
        elapsed = time.monotonic() - started
    assert run.status == "failed" and "source's deadline of 2.5 s" in run.error, run.error
    assert "source_deadline_seconds" in run.error and elapsed < 2.5 + 1.0, elapsed


def test_watermarks_only_move_forward(tmp_path) -> None:
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        write_watermark(wh, "ngl/P156", "2007-01-29", batch_id=None, at=NOW)
        with pytest.raises(WarehouseError, match="would move back from 2007-01-29 to 2001-05-13"):
            write_watermark(wh, "ngl/P156", "2001-05-13", batch_id=None, at=NOW)
        assert advance_watermark(wh, "ngl/P156", "2001-05-13", batch_id=None, at=NOW) is False
        assert advance_watermark(wh, "ngl/P156", "2007-01-30", batch_id=None, at=NOW) is True
        write_watermark(wh, "power", "20110930", batch_id=None, at=NOW)
        with pytest.raises(WarehouseError, match="move back"):
            write_watermark(wh, "power", "20110929", batch_id=None, at=NOW)
        assert read_watermarks(wh, "ngl") == {"ngl/P156": "2007-01-30"}


@pytest.mark.parametrize("fault", ["stale", "cut_nolength"])
def test_a_cut_or_stale_ngl_answer_never_moves_the_watermark_back(tmp_path, fault) -> None:
    """The issue's case: a station file cut at a line end (without Content-Length, or framed as
    if whole) came back as success and moved the watermark from 2015 to 2010."""
    with ReplayServer() as server:
        settings = _home(tmp_path, server, "ngl_gnss")
        assert _run(settings, "ngl_gnss").status == "success"
        with Warehouse.open(settings.warehouse_path) as wh:
            assert read_watermarks(wh, "src") == {"src/P156": "2015-03-14"}
            before = count_rows(wh, "observations")
        server.faults["/ngl/P156.tenv3"] = [fault]
        run = _run(settings, "ngl_gnss")
    assert run.status == "failed" and "fix:" in run.error, run.error
    words = "older than the stored watermark 2015-03-14" if fault == "stale" else "neither Content-Length nor chunked"
    assert words in run.error
    with Warehouse.open(settings.warehouse_path) as wh:
        assert read_watermarks(wh, "src") == {"src/P156": "2015-03-14"}
        assert count_rows(wh, "observations") == before
        assert read_batches(wh).get_column("status").to_list().count("quarantined") == 1
        assert source_freshness(wh)["src"]["failing"] is True


def test_cli_ingest_of_two_sources_goes_on_past_a_refused_answer_without_a_traceback(tmp_path) -> None:
    with ReplayServer() as server:
        tmp_path.mkdir(exist_ok=True)
        fred = SOURCES["fred"][0].format(url=server.url)
        ngl = SOURCES["ngl_gnss"][0].format(url=server.url)
        (tmp_path / "ews.toml").write_text(
            FAST + f'[ingest.sources.a_fred]\nkind = "fred"\n{fred}\n[ingest.sources.b_ngl]\nkind = "ngl_gnss"\n{ngl}',
            encoding="utf-8",
        )
        server.faults["/fred/series/observations"] = ["html200"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FRED_API_KEY": API_KEY}
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "--home", str(tmp_path), "ingest", "a_fred", "b_ngl", "--no-cycle"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=ROOT,
        )
    assert done.returncode == 8, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "a_fred (fred): failed" in done.stdout and "answered an HTML page" in done.stdout
    assert "b_ngl (ngl_gnss): success" in done.stdout
    assert main(["--home", str(tmp_path), "status", "--json"]) == 0


def test_a_file_whose_frequency_cannot_be_inferred_is_quarantined_with_a_ledger_row(tmp_path, capsys) -> None:
    """Finding 6: the parser raises ConfigError (not DataFormatError); the file is quarantined."""
    real = (ROOT / "data" / "market" / "fred_UNRATE.csv").read_text().splitlines()
    short = tmp_path / "unrate_two_months.csv"
    short.write_text("\n".join(real[:3]) + "\n")  # the header and two real months: too few to infer
    home = tmp_path / "home"
    code = main(["--home", str(home), "ingest", "file", str(short), "--format", "fred_csv", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 4 and out["status"] == "quarantined"
    assert "infer a frequency" in out["error"] and "frequency=" in out["error"]
    with Warehouse.open(load_settings(home, environ={}).warehouse_path) as wh:
        ledger = read_batches(wh)
        assert ledger.get_column("status").to_list() == ["quarantined"]
        assert count_rows(wh, "observations") == 0


def test_a_redirect_to_another_scheme_is_refused(tmp_path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from ingest.connectors.http import Expect, SourceError

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            return

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = load_settings(tmp_path, environ={})
        with pytest.raises(SourceError, match="redirected to file:///etc/passwd, which is not an http"):
            HttpClient(settings.ingest).get_answer(
                f"http://127.0.0.1:{server.server_address[1]}/x", what="t", fix_4xx="-", expect=Expect.json("JSON")
            )
    finally:
        server.shutdown()
        server.server_close()


def test_any_source_takes_the_parse_options_bounds_available_after_and_station_regions(tmp_path) -> None:
    """A station source (NGL) with `available_after` and `regions` (an id of [regions]) in its
    table: the keys are accepted and reach the stored series, as for a file."""
    with ReplayServer() as server:
        box = 'name = "California", min_lat = 32, max_lat = 42, min_lon = -125, max_lon = -114'
        extra = f"[regions]\ncalifornia = {{ {box} }}\n"
        settings = _home(tmp_path, server, "ngl_gnss", extra)
        toml = (tmp_path / "ews.toml").read_text(encoding="utf-8")
        toml += 'available_after = "P30D"\nregions = ["california"]\n'
        (tmp_path / "ews.toml").write_text(toml, encoding="utf-8")
        settings = load_settings(tmp_path, environ={})
        run = _run(settings, "ngl_gnss")
    assert run.status == "success", run.error
    with Warehouse.open(settings.warehouse_path) as wh:
        meta = wh._frame("SELECT unique_id, region, available_after FROM series ORDER BY unique_id")
    assert meta.height == 3 and set(meta.get_column("region")) == {"California"}
    assert set(meta.get_column("available_after")) == {"P30D"}
