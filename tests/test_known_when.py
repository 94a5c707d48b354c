"""What was known when (issue 22): a replay on day T uses only values published by the end of T.

On the bundled real data loaded into a real warehouse file (``load_bundled``, the path of
``ews demo``): a replay day inside a month sees no monthly value of that month (nor of the
month before, until its publisher's lag has passed), and a whole cycle replayed on such a day
grades and alerts on nothing its readers could not have had. Also: the ``available_after``
option overrides the defaults, a version-9 warehouse keeps its rows when the column arrives,
the market indicators place values on their grid by the same rule, and the FRED connector
keeps ALFRED's first-published values.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import polars as pl
import pytest

import hazards
from core.availability import default_available_after, known_at, parse_available_after
from core.clock import Clock, replay_cutoff
from core.errors import ConfigError, DataFormatError, FrameError
from core.settings import Settings, load_settings
from hazards.market_indicators import IndicatorSpec
from ingest.batches import load_bundled
from ingest.connectors import run_source
from ingest.sources import parse
from pipelines.cycle import run_cycle
from tests.sql import sql_frame
from warehouse import Warehouse
from warehouse.migrations import CURRENT_VERSION
from warehouse.series import (
    read_observations,
    read_series_meta,
    series_fingerprints,
    upsert_observations,
    upsert_series,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ALFRED = Path(__file__).parent / "data" / "alfred_unrate_2020_vintages.json"
#: Replay days inside a month (the issue's two, and two more around a CPI release).
INSIDE_A_MONTH = ("2006-06-01", "2006-06-14", "2008-10-15", "2011-03-12")


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home with every bundled file loaded (no cycle run)."""
    home = tmp_path_factory.mktemp("bundled")
    (home / "ews.toml").write_text("", encoding="utf-8")
    settings = load_settings(home, environ={})
    with Warehouse.open(settings.warehouse_path) as wh:
        results = load_bundled(wh, settings)
    assert {r.status for r in results} == {"committed"}
    return settings


def _month_start(day: str) -> dt.datetime:
    d = dt.date.fromisoformat(day)
    return dt.datetime(d.year, d.month, 1)


@pytest.mark.parametrize("as_of", INSIDE_A_MONTH)
def test_a_replay_inside_a_month_reads_no_monthly_value_of_that_month(bundled: Settings, as_of: str) -> None:
    cutoff = replay_cutoff(as_of)
    with Warehouse.open(bundled.warehouse_path, read_only=True) as wh:
        meta = read_series_meta(wh)
        seen = read_observations(wh, before=cutoff)
        everything = read_observations(wh)
        fingerprints = series_fingerprints(wh, before=cutoff)
    monthly = meta.filter(pl.col("frequency") == "MS").get_column("unique_id").to_list()
    assert len(monthly) >= 15  # CPI, UNRATE, the H.10 rates, S&P, PSMSL, ERSST regions
    of_the_month = seen.filter(pl.col("unique_id").is_in(monthly) & (pl.col("ds") >= _month_start(as_of)))
    assert of_the_month.height == 0, of_the_month
    # The read is exactly the rule: every stored value whose known_at <= cutoff, nothing else.
    expected = []
    for row in meta.iter_rows(named=True):
        own = everything.filter(pl.col("unique_id") == row["unique_id"])
        known = own.with_columns(known_at(pl.col("ds"), row["frequency"], row["available_after"]).alias("k"))
        expected.append(known.filter(pl.col("k") <= cutoff).drop("k"))
    assert seen.equals(pl.concat(expected).sort("unique_id", "ds"))
    # the cycle's change detection counts the same rows it reads
    counts = seen.group_by("unique_id").len().sort("unique_id")
    assert fingerprints.get_column("unique_id").to_list() == counts.get_column("unique_id").to_list()
    assert [int(f.split("|")[0]) for f in fingerprints.get_column("fingerprint")] == counts.get_column("len").to_list()


def test_publication_lags_hold_back_the_previous_month_until_its_release(bundled: Settings) -> None:
    """CPI (P20D): May 2006 is read from 2006-06-20 on (BLS released it on 2006-06-14; the
    default is conservative); UNRATE (P10D), the CNY rate (P3D) and PSMSL (P1Y) likewise."""

    def newest(uid: str, as_of: str) -> dt.datetime:
        with Warehouse.open(bundled.warehouse_path, read_only=True) as wh:
            return read_observations(wh, [uid], before=replay_cutoff(as_of)).get_column("ds").max()  # type: ignore[return-value]

    assert newest("cpiaucsl", "2006-06-19") == dt.datetime(2006, 4, 1)
    assert newest("cpiaucsl", "2006-06-20") == dt.datetime(2006, 5, 1)
    assert newest("unrate", "2006-06-09") == dt.datetime(2006, 4, 1)
    assert newest("unrate", "2006-06-10") == dt.datetime(2006, 5, 1)
    assert newest("cny_per_usd", "2008-10-02") == dt.datetime(2008, 8, 1)
    assert newest("cny_per_usd", "2008-10-03") == dt.datetime(2008, 9, 1)
    assert newest("psmsl_012_new_york", "2008-10-15") == dt.datetime(2007, 9, 1)
    # a daily close is read on its own day, the weekly stress index the Thursday after its Friday
    assert newest("dgs10", "2008-10-15") == dt.datetime(2008, 10, 15)
    assert newest("stlfsi4", "2008-10-15") == dt.datetime(2008, 10, 3)
    assert newest("stlfsi4", "2008-10-16") == dt.datetime(2008, 10, 10)


def test_a_cycle_replayed_on_2008_10_15_grades_no_value_published_after_it(bundled: Settings, tmp_path: Path) -> None:
    """The issue's case: on 2008-10-15 the October CNY rate (published in November) raised an
    alert. Replayed now, every grade and alert of a series rests on a value known that day."""
    home = tmp_path / "replay"
    shutil.copytree(bundled.home, home)
    settings = load_settings(home, environ={"EWS_CYCLE__AS_OF": "2008-10-15"})
    clock = Clock.from_settings(settings)
    with Warehouse.open(settings.warehouse_path) as wh:
        summary = run_cycle(wh, settings, clock=clock)
        meta = read_series_meta(wh)
        grades = sql_frame(wh, "SELECT unique_id, ds FROM risk_grades")
        alerts = sql_frame(wh, "SELECT unique_id, ds FROM alerts")
    assert summary.series_processed > 20 and grades.height > 0
    rules = {r["unique_id"]: r for r in meta.iter_rows(named=True)}
    for frame in (grades, alerts):
        for uid, ds in frame.iter_rows():
            rule = rules[uid]
            known = pl.select(known_at(pl.lit(ds), rule["frequency"], rule["available_after"])).item()
            assert known <= clock.cutoff, (uid, ds, known)
    monthly = [u for u, r in rules.items() if r["frequency"] == "MS"]
    october = grades.filter(pl.col("unique_id").is_in(monthly) & (pl.col("ds") >= dt.datetime(2008, 10, 1)))
    assert october.height == 0
    # the newest CNY grade is September's (published 2008-10-01), not October's
    assert grades.filter(pl.col("unique_id") == "cny_per_usd").get_column("ds").max() == dt.datetime(2008, 9, 1)


def test_available_after_defaults_by_variable_and_the_option_overrides_them() -> None:
    cpi = DATA / "market" / "fred_CPIAUCSL.csv"
    options = {"unique_id": "cpiaucsl", "frequency": "MS", "variable": "consumer_price_index"}
    assert parse(cpi, "fred_csv", **options).meta.get_column("available_after").to_list() == ["P20D"]
    assert parse(cpi, "fred_csv", **options, available_after="p1m").meta.item(0, "available_after") == "P1M"
    assert parse(cpi, "fred_csv", **options, available_after={"*": "P15D"}).meta.item(0, "available_after") == "P15D"
    with pytest.raises(ConfigError, match=r"available_after of cpiaucsl = 'two weeks' is not an ISO 8601 duration"):
        parse(cpi, "fred_csv", **options, available_after="two weeks")
    with pytest.raises(ConfigError, match=r"available_after names series \['cpi'\] that the file does not yield"):
        parse(cpi, "fred_csv", **options, available_after={"cpi": "P1D"})
    # the rule itself: prefixes of a variable, P0D when nothing is listed
    assert default_available_after("displacement_north") == "P18D"
    assert default_available_after("sst_mean") == "P10D"
    assert default_available_after("event_count") == "P0D"
    assert parse_available_after("P1Y2M3DT4H") == (14, dt.timedelta(days=3, hours=4))
    with pytest.raises(FrameError, match="not an ISO 8601 duration"):
        parse_available_after("P")


def test_a_version_9_warehouse_keeps_its_series_and_reads_them_by_their_variables_default(tmp_path: Path) -> None:
    parsed = parse(
        DATA / "market" / "fred_CPIAUCSL.csv",
        "fred_csv",
        unique_id="cpiaucsl",
        frequency="MS",
        variable="consumer_price_index",
    )
    path = tmp_path / "v9.duckdb"
    with Warehouse.open(path, target_version=9) as wh:
        upsert_series(wh, parsed.meta.drop("available_after"), batch_id="b_v9")
        upsert_observations(wh, parsed.series, batch_id="b_v9")
        before = sql_frame(wh, "SELECT * FROM series")
        stored = read_observations(wh)
    with Warehouse.open(path) as wh:
        assert wh.schema_version() == CURRENT_VERSION >= 10
        after = sql_frame(wh, "SELECT * FROM series")
        assert after.select(before.columns).equals(before)
        assert after.get_column("available_after").to_list() == [None]
        assert read_observations(wh).equals(stored)
        # null reads as the default of its variable (P20D for CPI): May 2006 is not known on 06-19
        seen = read_observations(wh, before=replay_cutoff("2006-06-19"))
        assert seen.get_column("ds").max() == dt.datetime(2006, 4, 1)
        # the next ingest writes the rule; a frame without the column leaves it alone
        assert upsert_series(wh, parsed.meta, batch_id="b_v10") == 1
        assert upsert_series(wh, parsed.meta.drop("available_after"), batch_id="b_v10b") == 0
        assert read_series_meta(wh).item(0, "available_after") == "P20D"


def test_market_indicators_place_a_monthly_value_on_the_grid_when_it_was_published() -> None:
    """The Fed's July 2008 CNY average enters the Friday grid on Friday 2008-08-01 with no lag
    (known when July ends) and a week later with the default P3D (known at the end of 08-03)."""
    parsed = parse(
        DATA / "market" / "fred_exchange_rates_china_monthly.csv",
        "fred_long_fx",
        country="China",
        unique_id="cny_per_usd",
        frequency="MS",
        variable="exchange_rate",
    )
    lag = parsed.meta.item(0, "available_after")
    assert lag == "P3D"
    spec = [IndicatorSpec("cny", "cny_per_usd", "level", "fx")]
    kwargs: dict[str, Any] = {"frequencies": {"cny_per_usd": "MS"}}
    at_once = hazards.build_indicators(parsed.series, spec, **kwargs, available_after={"cny_per_usd": "P0D"})
    lagged = hazards.build_indicators(parsed.series, spec, **kwargs, available_after={"cny_per_usd": lag})
    series = parsed.series.filter(pl.col("ds").is_in([dt.datetime(2008, 6, 1), dt.datetime(2008, 7, 1)]))
    june, july = series.sort("ds").get_column("y").to_list()
    friday, next_friday = dt.datetime(2008, 8, 1), dt.datetime(2008, 8, 8)
    assert at_once.filter(pl.col("ds") == friday).item(0, "cny") == july
    assert lagged.filter(pl.col("ds") == friday).item(0, "cny") == june
    assert lagged.filter(pl.col("ds") == next_friday).item(0, "cny") == july


# --- FRED / ALFRED vintages on a loopback server --------------------------------------------

API_KEY = "abcdefghijklmnopqrstuvwxyz123456"


class _Alfred:
    """A real HTTP server on 127.0.0.1 answering fred/series and fred/series/observations;
    the observations answer is the ALFRED-shaped body of tests/data (every vintage) when the
    request asks for the full real-time period, else only the current vintage."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        body = json.loads(ALFRED.read_text(encoding="utf-8"))
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                owner.requests.append(self.path)
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if query.get("api_key") != API_KEY:
                    self._send(400, {"error_code": 400, "error_message": "Bad Request."})
                elif url.path.endswith("/series"):
                    info = {"id": "UNRATE", "title": "Unemployment Rate", "units": "Percent", "frequency_short": "M"}
                    self._send(200, {"seriess": [info]})
                elif query.get("realtime_start") == "1776-07-04":
                    self._send(200, body)
                else:
                    current = [o for o in body["observations"] if o["realtime_end"] == "9999-12-31"]
                    self._send(200, {**body, "observations": current})

            def _send(self, status: int, data: object) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Alfred:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def alfred() -> Iterator[_Alfred]:
    with _Alfred() as running:
        yield running


def _fred_home(tmp_path: Path, url: str, extra: str) -> Settings:
    (tmp_path / "ews.toml").write_text(
        "[ingest]\ntimeout_seconds = 2.0\nretries = 1\nbackoff_seconds = 0.01\n"
        f'[ingest.sources.macro]\nkind = "fred"\nurl = "{url}/fred"\nseries = ["UNRATE"]\n'
        f'start = "2020-01-01"\n{extra}\n',
        encoding="utf-8",
    )
    return load_settings(tmp_path, environ={})


@pytest.mark.parametrize(("extra", "april"), [("", 14.8), ('vintage = "first"', 14.7)])
def test_fred_vintage_first_keeps_the_values_as_first_published(
    tmp_path: Path, alfred: _Alfred, extra: str, april: float
) -> None:
    settings = _fred_home(tmp_path, alfred.url, extra)
    with Warehouse.open(settings.warehouse_path) as wh:
        run = run_source(wh, settings, "macro", now=dt.datetime(2026, 1, 15), environ={"FRED_API_KEY": API_KEY})
        assert run.status == "success", run.error
        unrate = read_observations(wh, ["unrate"])
        assert read_series_meta(wh).item(0, "available_after") == "P10D"
    assert unrate.filter(pl.col("ds") == dt.datetime(2020, 4, 1)).item(0, "y") == april
    asked = [r for r in alfred.requests if "/series/observations" in r]
    assert ("realtime_start=1776-07-04" in asked[0]) == bool(extra)


def test_an_alfred_answer_needs_a_vintage_choice() -> None:
    with pytest.raises(
        DataFormatError,
        match=r'lists date 2020-04-01 2 times, and 3 date\(s\) more than once.*\n.*fix: pass vintage="first"',
    ):
        parse(ALFRED, "fred_json", unique_id="unrate", frequency="MS")
    latest = parse(ALFRED, "fred_json", unique_id="unrate", frequency="MS", vintage="latest")
    first = parse(ALFRED, "fred_json", unique_id="unrate", frequency="MS", vintage="first")
    assert latest.series.height == first.series.height == 4
    assert any("were revised after their first release" in n for n in first.notes)
    assert first.series.get_column("y").to_list() != latest.series.get_column("y").to_list()
