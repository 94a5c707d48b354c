"""Market crisis events: the bear-market rule (hazards.drawdown_events) and data/events/market_crises.csv.

The events file is written by benchmarks/build_market_events.py from the bundled USREC series and
the shared (not bundled) S&P 500 and CSI 300 closes; the tests that need the shared folder skip
cleanly without it.
"""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from core.errors import FrameError
from hazards import drawdown_events

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
EVENTS = DATA / "events" / "market_crises.csv"
USREC = DATA / "events" / "fred_USREC_nber_recession_monthly.csv"
SCRIPT = ROOT / "benchmarks" / "build_market_events.py"
SHARED = next((p for p in (ROOT.parent / "shared/data", ROOT.parent.parent / "shared/data") if p.is_dir()), None)
START = dt.datetime(2020, 1, 1)


def _prices(values: list[float], unique_id: str = "idx") -> pl.DataFrame:
    return pl.DataFrame(
        {"unique_id": unique_id, "ds": [START + dt.timedelta(days=i) for i in range(len(values))], "y": values}
    )


def _day(i: int) -> dt.datetime:
    return START + dt.timedelta(days=i)


def _events() -> list[dict[str, str]]:
    with EVENTS.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_drawdown_events_finds_a_finished_and_a_running_bear_market() -> None:
    # day: 0    1    2   3   4   5   6   7   8   9    10  11  12
    path = [100, 110, 89, 88, 80, 70, 75, 84, 90, 100, 80, 60, 65]
    # 89 is 19 % below the peak of 110 (no bear yet); 88 = 0.8 * 110 starts one; the low is 70;
    # 84 = 1.2 * 70 ends it and becomes the new peak; 100 is the next peak; 80 = 0.8 * 100
    # starts a second bear that is still running at the last close.
    calm = _prices([100, 95, 85, 99, 120], unique_id="calm")  # 15 % at most: never a bear
    events = drawdown_events(pl.concat([_prices(path), calm]))
    assert events.columns == ["unique_id", "onset", "peak", "trough", "end", "depth"]
    assert events.schema["onset"] == pl.Datetime("us") and events.schema["depth"] == pl.Float64
    assert events.get_column("unique_id").to_list() == ["idx", "idx"]
    done, running = events.rows(named=True)
    assert (done["peak"], done["onset"], done["trough"], done["end"]) == (_day(1), _day(3), _day(5), _day(7))
    assert done["depth"] == pytest.approx(70 / 110 - 1)
    assert (running["peak"], running["onset"]) == (_day(9), _day(10))
    assert (running["trough"], running["end"], running["depth"]) == (None, None, None)


def test_drawdown_events_thresholds_are_options() -> None:
    path = [100, 110, 89, 88, 80, 70, 75, 84, 90, 100, 80, 60, 65]
    # a 38 % decline rule misses the first fall (110 -> 70 = -36 %); without a bear the peak stays
    # at 110, and the fall to 60 (-45 %) starts one on day 11
    deep = drawdown_events(_prices(path), decline=0.38)
    assert deep.select("peak", "onset", "end").rows() == [(_day(1), _day(11), None)]
    # with a 50 % recovery rule the rally from 70 to 100 does not end the first bear: one long
    # bear from 110, still running
    slow = drawdown_events(_prices(path), recovery=0.5)
    assert slow.select("peak", "onset", "trough", "end").rows() == [(_day(1), _day(3), None, None)]


def test_drawdown_events_refuses_prices_that_are_not_positive() -> None:
    with pytest.raises(FrameError, match=r"needs positive prices; 1 value\(s\) are <= 0 \(first idx at 2020-01-03"):
        drawdown_events(_prices([100, 90, 0, 95]))
    with pytest.raises(FrameError, match=r"needs positive prices; 2 value\(s\)"):
        drawdown_events(_prices([0.5, -0.2, -0.1]))
    with pytest.raises(FrameError, match=r"decline=1.5 must lie in \(0, 1\)"):
        drawdown_events(_prices([100, 90]), decline=1.5)


def test_bundled_recessions_are_the_usrec_runs() -> None:
    with USREC.open(newline="") as handle:
        usrec = [(dt.date.fromisoformat(r["date"]), float(r["value"])) for r in csv.DictReader(handle)]
    recession_months = {day for day, flag in usrec if flag == 1.0}
    rows = [r for r in _events() if r["target"] == "us_recession"]
    covered = set()
    for row in rows:
        onset, end, peak = (dt.date.fromisoformat(row[k]) for k in ("onset", "end", "peak"))
        months = {day for day, _ in usrec if onset <= day <= end}
        assert months <= recession_months, row["event_id"]
        covered |= months
        before = [day for day, _ in usrec if day < onset]
        assert peak == before[-1] and peak not in recession_months  # the NBER peak: the month before
        assert row["trough"] == row["end"] and row["depth"] == ""
    assert covered == recession_months
    # the NBER's published peak and trough months since 1980
    assert [(r["peak"][:7], r["trough"][:7]) for r in rows] == [
        ("1980-01", "1980-07"),
        ("1981-07", "1982-11"),
        ("1990-07", "1991-03"),
        ("2001-03", "2001-11"),
        ("2007-12", "2009-06"),
        ("2020-02", "2020-04"),
    ]


def test_bundled_bear_markets_are_ordered_and_include_the_known_crashes() -> None:
    rows = _events()
    assert list(rows[0]) == ["event_id", "target", "onset", "peak", "trough", "end", "depth", "source", "covered_until"]
    assert len({r["event_id"] for r in rows}) == len(rows)
    bears = [r for r in rows if r["target"] in ("sp500_bear", "csi300_bear")]
    assert {r["target"] for r in bears} == {"sp500_bear", "csi300_bear"}
    for row in bears:
        dates = [dt.date.fromisoformat(row[k]) for k in ("peak", "onset", "trough", "end") if row[k]]
        assert dates == sorted(dates), row["event_id"]
        if row["end"]:
            assert -1.0 < float(row["depth"]) <= -0.2, row["event_id"]
        assert "not bundled" in row["source"]
    sp500_years = {int(r["onset"][:4]) for r in bears if r["target"] == "sp500_bear"}
    # 1929, 1973-74, 1987, 2000-02, 2007-09, 2020 and 2022 (onset = the day 20 % down is reached)
    for years in ({1929}, {1973, 1974}, {1987}, {2000, 2001, 2002}, {2007, 2008, 2009}, {2020}, {2022}):
        assert sp500_years & years, years
    csi300_years = {int(r["onset"][:4]) for r in bears if r["target"] == "csi300_bear"}
    assert {2008, 2015} <= csi300_years  # the A-share crashes


@pytest.mark.skipif(SHARED is None, reason="the shared data folder (../shared/data) is absent")
def test_the_bundled_events_file_is_what_the_script_writes(tmp_path: Path) -> None:
    out = tmp_path / "market_crises.csv"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--shared", str(SHARED), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes() == EVENTS.read_bytes()
    assert f"wrote {len(_events())} events" in done.stdout


@pytest.mark.skipif(SHARED is None, reason="the shared data folder (../shared/data) is absent")
def test_bundled_market_files_are_the_shared_bytes() -> None:
    shiller = "market/sp500_shiller_monthly_1871_2026.csv"
    assert (DATA / shiller).read_bytes() == (SHARED / shiller).read_bytes()
    source = (SHARED / "market/fred_exchange_rates_monthly_1971_2026.csv").read_bytes().splitlines(keepends=True)
    keep = {b"Japan", b"United Kingdom", b"Euro", b"Canada", b"Switzerland"}
    cut = [source[0]] + [line for line in source[1:] if line.split(b",")[1] in keep]
    assert (DATA / "market/fred_exchange_rates_major_monthly.csv").read_bytes() == b"".join(cut)


def test_the_script_stops_with_exit_2_without_the_price_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--shared", str(tmp_path), "--out", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "pass --shared PATH" in done.stderr and not (tmp_path / "x.csv").exists()
