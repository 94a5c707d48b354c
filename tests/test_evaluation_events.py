"""Event skill: hand-computed POD / FAR / CSI / lead / KLR cases, and `ews evaluate events`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from anomaly.evaluation import alarm_onsets, event_skill
from pipelines.cli.main import main

START = datetime(2020, 1, 1)


def flags(on: list[int], n: int = 100) -> pl.DataFrame:
    return pl.DataFrame({"ds": [START + timedelta(days=i) for i in range(n)], "flag": [i in on for i in range(n)]})


def test_hits_misses_false_alarms_and_lead_times() -> None:
    # Alarm runs start on days 10, 40 and 70; events on days 25, 60 and 95; lead window 20 days.
    f = flags([10, 11, 12, 40, 41, 70])
    events = [START + timedelta(days=d) for d in (25, 60, 95)]
    skill = event_skill(f, events, lead=timedelta(days=20))
    assert alarm_onsets(f) == [START + timedelta(days=d) for d in (10, 40, 70)]
    # 25 <- 10 and 60 <- 40 are warned; nothing starts in [75, 95]; the day-70 alarm has no event
    # in the 20 days after it.
    assert (skill.hits, skill.misses, skill.false_alarms, skill.alarms) == (2, 1, 1, 3)
    assert skill.lead_times_days == (15.0, 20.0)
    assert skill.pod == pytest.approx(2 / 3) and skill.far == pytest.approx(1 / 3)
    assert skill.csi == pytest.approx(2 / 4)
    assert skill.median_lead_days == 17.5
    # An event whose lead window starts before the data could not have been warned of: left out.
    assert event_skill(f, [START + timedelta(days=5)], lead=timedelta(days=20)).events == 0


def test_klr_noise_to_signal_ratio() -> None:
    # Signal periods: 10 days before each of two events (days 20 and 60). Flags: 5 of those 20
    # days and 8 of the 80 other days (the event days themselves are left out).
    on = [12, 13, 14, 55, 56] + [30, 31, 32, 33, 80, 81, 82, 83]
    events = [START + timedelta(days=d) for d in (20, 60)]
    skill = event_skill(flags(on), events, lead=timedelta(days=10))
    a, c = 5, 15
    b, d = 8, 100 - 20 - 2 - 8
    assert skill.noise_to_signal == pytest.approx((b / (b + d)) / (a / (a + c)))
    assert event_skill(flags([]), events, lead=timedelta(days=10)).noise_to_signal is None


def test_ews_evaluate_events_reports_engine_and_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--home", str(tmp_path), "evaluate", "events", "--json", "--quiet"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["matching_rules"]["market"]["lead_days"] == 365
    market = report["market"]
    assert market["engine"]["events"] == 3  # 2001, 2008 and 2020 onsets inside the STLFSI4 record
    for block in [market, *report["seismic"].values()]:
        for who in ("engine", "iforest_baseline"):
            s = block[who]
            assert 0.0 <= s["pod"] <= 1.0 and 0.0 <= s["far"] <= 1.0
            assert s["hits"] + s["misses"] == s["events"]
        assert block["engine"]["events"] == block["iforest_baseline"]["events"]
    assert report["seismic"]["tohoku"]["engine"]["hits"] >= 1  # the 2011-03-09 foreshocks
    # issue 14's tables: the same events for every way of grading, and the done-when ratio
    for box in report["earthquakes"].values():
        assert (
            box["new"]["listed"]["events"] == box["current"]["listed"]["events"] == box["iforest"]["listed"]["events"]
        )
    rivers = report["rivers"]
    assert rivers["new"]["events"] == rivers["current"]["events"] == rivers["iforest"]["events"] > 0
    calm = report["calm_false_alarms"]
    assert len(calm["series"]) == 36 and calm["totals"]["current"]["onsets"] > 0
    # the ratio is what the table says it is (the bar, <= 0.25, is a goal reported in
    # docs/anomaly.md, not a property of the code)
    new, current = calm["totals"]["new"]["per_series_year"], calm["totals"]["current"]["per_series_year"]
    assert calm["ratio_new_to_current"] == pytest.approx(new / current, abs=1e-3)
