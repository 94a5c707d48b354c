"""Scoring rules of the issue-14 event tables on hand-made cases: warning windows (POD, FAR,
CSI, lead), the Brier score, calm-period false alarms per series-year, the rarity cap."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from anomaly import cap_rarity_levels
from anomaly.evaluation import brier_score, calm_false_alarms, window_skill
from core.errors import FrameError
from core.vocabulary import Level


def _days(n: int, start: datetime = datetime(2020, 1, 1)) -> list[datetime]:
    return [start + timedelta(days=i) for i in range(n)]


def test_brier_score_by_hand() -> None:
    # (0.9-1)^2 + (0.2-0)^2 + (0.5-1)^2 + 0 = 0.01 + 0.04 + 0.25 = 0.30, / 4
    assert brier_score([0.9, 0.2, 0.5, 0.0], [True, False, True, False]) == pytest.approx(0.075)
    with pytest.raises(FrameError, match="in \\[0, 1\\]"):
        brier_score([1.5], [True])
    with pytest.raises(FrameError, match="one outcome per probability"):
        brier_score([0.5, 0.5], [True])


def test_window_skill_contingency_and_lead() -> None:
    # 10 daily issues, window 2 days: issue d covers [d, d+2).
    ds = _days(10)
    flag = [False, False, True, True, False, False, False, True, False, False]
    prob = [0.0, 0.0, 0.8, 0.8, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0]
    event = datetime(2020, 1, 4, 12)  # day index 3: in the windows of issues 2 and 3
    issues = pl.DataFrame({"ds": ds, "flag": flag, "probability": prob})
    s = window_skill(issues, [event, datetime(2019, 1, 1)], window=timedelta(days=2))
    # outcomes: issues 2, 3 -> event; hits 2 (issues 2, 3), false 1 (issue 7), misses 0
    assert (s.issues, s.events, s.hits, s.misses, s.false_alarms) == (10, 1, 2, 0, 1)
    assert s.pod == 1.0
    assert s.far == pytest.approx(1 / 3)
    assert s.csi == pytest.approx(2 / 3)
    assert s.median_lead_days == pytest.approx(1.5)  # earliest covering warning: day 2, event day 3.5
    outcome = [False, False, True, True, False, False, False, False, False, False]
    assert s.brier == pytest.approx(brier_score(prob, outcome))
    unwarned = window_skill(issues.with_columns(pl.lit(False).alias("flag")), [event], window=timedelta(days=2))
    assert (unwarned.hits, unwarned.misses, unwarned.false_alarms, unwarned.pod) == (0, 2, 0, 0.0)
    assert unwarned.median_lead_days is None


def test_calm_false_alarms_per_series_year() -> None:
    # 730 daily steps (2 years); orange runs start on days 100, 400 and 600; an event on day 605.
    ds = _days(730)
    level = ["none"] * 730
    for start, length in ((100, 3), (400, 1), (600, 10)):
        for i in range(start, start + length):
            level[i] = "orange" if i != start + 1 else "red"
    levels = pl.DataFrame({"ds": ds, "level": level})
    quiet = calm_false_alarms(levels)
    assert quiet.onsets == 3  # the orange->red step inside a run is not a new onset
    assert quiet.calm_days == pytest.approx(730.0)
    assert quiet.per_series_year == pytest.approx(3 / (730 / 365.25))
    event = ds[605]
    busy = calm_false_alarms(levels, [(event - timedelta(days=30), event + timedelta(days=30))])
    assert busy.onsets == 2  # the run starting on day 600 is near the listed event
    assert busy.calm_days == pytest.approx(730.0 - 61.0)
    assert busy.per_series_year == pytest.approx(2 / ((730 - 61) / 365.25))
    reds = calm_false_alarms(levels, min_level=Level.RED)
    assert reds.onsets == 2  # red on days 101 and 601 (day 401's run has one orange day only)
    weekly = pl.DataFrame({"ds": _days(52 * 7)[::7], "level": [int(Level.ORANGE)] + [0] * 51})
    assert calm_false_alarms(weekly).calm_days == pytest.approx(364.0)


def _grades(rows: list[tuple[str, int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": [r[0] for r in rows],
            "ds": [datetime(2011, 3, 1) + timedelta(days=r[1]) for r in rows],
            "level": [r[2] for r in rows],
        }
    )


META = pl.DataFrame(
    {
        "unique_id": ["tohoku_count", "tohoku_energy", "ayukawa", "new_york", "p156_up"],
        "region": ["Tohoku, Japan", "Tohoku, Japan", "Tohoku, Japan", "New York, US", None],
        "source": ["USGS", "USGS", "PSMSL", "PSMSL", "UNAVCO"],
        "variable": ["count", "energy", "mean_sea_level", "mean_sea_level", "displacement_up"],
        "lat": [38.0, 38.0, 38.3, 40.7, 40.0],
        "lon": [142.0, 142.0, 141.5, -74.0, -123.9],
        "frequency": ["D", "D", "D", "D", "D"],
    }
)


def test_cap_rarity_levels_caps_unless_an_independent_series_agrees() -> None:
    grades = _grades(
        [
            ("tohoku_count", 10, "red"),
            ("tohoku_energy", 10, "orange"),  # same source and site as tohoku_count: one instrument
            ("ayukawa", 12, "orange"),  # independent, same region, another day
            ("new_york", 10, "red"),  # alone in its region
            ("p156_up", 10, "orange"),  # no region
            ("new_york", 11, "yellow"),  # at the cap: untouched
        ]
    )
    apart = cap_rarity_levels(grades, META)
    assert apart.get_column("level").to_list() == ["yellow", "yellow", "yellow", "yellow", "yellow", "yellow"]
    assert apart.get_column("uncapped_level").to_list() == grades.get_column("level").to_list()
    assert apart.get_column("capped_at").to_list() == ["yellow"] * 5 + [None]
    # the same day (the period of two daily series): ayukawa agrees with the catalog box
    same_day = grades.with_columns(
        pl.when(pl.col("unique_id") == "ayukawa").then(datetime(2011, 3, 11, 12)).otherwise(pl.col("ds")).alias("ds")
    )
    lifted = cap_rarity_levels(same_day, META)
    assert lifted.get_column("level").to_list() == ["red", "orange", "orange", "yellow", "yellow", "yellow"]
    assert lifted.get_column("corroborated_by").to_list() == [
        ["ayukawa"],
        ["ayukawa"],
        ["tohoku_count", "tohoku_energy"],
        [],
        [],
        [],
    ]
    assert lifted.get_column("capped_at").to_list() == [None, None, None, "yellow", "yellow", None]
    # a weekly partner: the coarser period (the week) decides, and only what was known by then
    # counts: the week ending Sunday 03-13 lifts nothing on Friday 03-11, while the catalog's
    # 03-11 value (known 03-12) lifts the weekly gauge
    is_gauge = pl.col("unique_id") == "ayukawa"
    weekly = META.with_columns(
        pl.when(is_gauge).then(pl.lit("W-SUN")).otherwise(pl.col("frequency")).alias("frequency")
    )
    assert cap_rarity_levels(grades, weekly).get_column("level").to_list()[:3] == ["yellow", "yellow", "orange"]
    # an agreeing partner must reach min(own level, floor): a red needs a red partner now
    assert cap_rarity_levels(same_day, META, floor=Level.RED).get_column("level").to_list()[:3] == [
        "yellow",
        "orange",
        "orange",
    ]
    orange_cap = cap_rarity_levels(grades, META, cap=Level.ORANGE)
    assert orange_cap.get_column("level").to_list()[:4] == ["orange", "orange", "orange", "orange"]


def test_market_rarity_is_not_its_own_witness() -> None:
    # the composite's inputs and sub-indices are correlated: no market series lifts another,
    # whatever its source or variable; a series of another domain in the region still does
    meta = pl.DataFrame(
        {
            "unique_id": ["dgs10", "t10y2y", "us_stress_fx", "river_us"],
            "domain": ["market", "market", "market", "hydro"],
            "region": ["US", "US", "US", "US"],
            "source": ["FRED", "FRED", "EWS CISS-style composite", "USGS"],
            "variable": ["yield", "yield_spread", "stress_subindex", "discharge"],
            "frequency": ["B", "B", "W-FRI", "D"],
        }
    )
    markets = _grades([("dgs10", 10, "red"), ("t10y2y", 10, "red"), ("us_stress_fx", 10, "orange")])
    alone = cap_rarity_levels(markets, meta)
    assert alone.get_column("level").to_list() == ["yellow", "yellow", "yellow"]
    assert alone.get_column("corroborated_by").to_list() == [[], [], []]
    with_river = cap_rarity_levels(pl.concat([markets, _grades([("river_us", 10, "orange")])]), meta)
    assert with_river.get_column("level").to_list() == ["red", "red", "orange", "orange"]
    assert with_river.get_column("corroborated_by").to_list() == [
        ["river_us"],
        ["river_us"],
        ["river_us"],
        ["dgs10", "t10y2y", "us_stress_fx"],  # a market series may still witness for another domain
    ]
    # metadata without a domain: no series is known to be a market series (the rule of old)
    assert cap_rarity_levels(markets, meta.drop("domain")).get_column("level").to_list() == ["red", "red", "orange"]


def test_cap_rarity_levels_checks_its_input() -> None:
    with pytest.raises(FrameError, match="unknown level"):
        cap_rarity_levels(_grades([("new_york", 0, "purple")]), META)
    with pytest.raises(FrameError, match="region"):
        cap_rarity_levels(_grades([("new_york", 0, "red")]), META.drop("region"))
