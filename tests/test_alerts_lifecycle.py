"""Alert lifecycle (alerts/lifecycle.py) on the real Tohoku sequence of March 2011.

The daily counts come from the bundled USGS Japan catalog (data/seismic, Tohoku box
36-42N, 140-146E); the levels are what a grader would give each day. Covered: open with the
review gate, grouping and de-duplication, escalation, de-escalation, resolve, expiry,
silences, and stale/gapped-data inhibition with data-gap notices.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from alerts.lifecycle import AlertPolicy, assess_data_health, plan_alerts

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 1, 1, 12, 0)


@pytest.fixture(scope="module")
def tohoku_counts() -> dict[str, int]:
    """Real events per day in the Tohoku box, 2011-03-08 .. 2011-03-13."""
    raw = pl.read_csv(ROOT / "data" / "seismic" / "usgs_comcat_japan_2005_2014_processed.csv",
                      columns=["time", "latitude", "longitude"])
    days = (raw.filter(pl.col("latitude").is_between(36, 42) & pl.col("longitude").is_between(140, 146))
            .with_columns(pl.col("time").str.slice(0, 10).alias("day"))
            .filter(pl.col("day").is_between(pl.lit("2011-03-08"), pl.lit("2011-03-13")))
            .group_by("day").len())
    return dict(zip(days["day"], days["len"], strict=True))


def _grade(uid: str, day: str, level: str, score: float, value: float, domain: str = "seismic",
           region: str = "Tohoku, Japan") -> dict:
    return {"unique_id": uid, "ds": datetime.fromisoformat(day), "level": level, "score": score,
            "evidence": json.dumps({"value": value, "thresholds": {"blue": 0.97, "yellow": 0.99,
                                                                   "orange": 0.995, "red": 0.998}}),
            "domain": domain, "region": region}


def _latest(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows))


def _open(plan_alerts_frame: pl.DataFrame) -> pl.DataFrame:
    return plan_alerts_frame.filter(pl.col("status") == "open")


def test_a_group_opens_one_alert_led_by_its_highest_member_and_gates_release(tohoku_counts) -> None:
    day = "2011-03-11"
    latest = _latest(_grade("tohoku_count", day, "red", 0.9991, tohoku_counts[day]),
                     _grade("tohoku_energy", day, "orange", 0.9962, 15.1),
                     _grade("unrate", "2011-03-01", "yellow", 0.9973, 9.0, domain="market", region="US"))
    plan = plan_alerts(latest, pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 12))
    assert plan.alerts.height == 2  # one per hazard + region, not one per series
    quake = plan.alerts.filter(pl.col("hazard") == "earthquake").row(0, named=True)
    assert (quake["unique_id"], quake["level"], quake["release_state"]) == ("tohoku_count", "red", "pending")
    members = json.loads(quake["evidence"])["group_members"]
    assert {m["unique_id"] for m in members} == {"tohoku_count", "tohoku_energy"}
    market = plan.alerts.filter(pl.col("hazard") == "market_risk").row(0, named=True)
    assert market["release_state"] == "released"  # yellow is in auto_release
    assert [r["alert_id"] for r in plan.releases] == [market["alert_id"]]
    assert {t["action"] for t in plan.transitions} == {"opened"}
    assert all(t["actor"] == "cycle" and t["reason"] for t in plan.transitions)
    # a rerun on the same grades plans the same ids (de-duplication across runs)
    again = plan_alerts(latest, pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 12))
    assert set(again.alerts["alert_id"]) == set(plan.alerts["alert_id"])


def test_escalate_deescalate_and_resolve_follow_the_grades(tohoku_counts) -> None:
    policy = AlertPolicy(auto_release=frozenset({"blue", "yellow"}))
    first = plan_alerts(_latest(_grade("tohoku_count", "2011-03-09", "yellow", 0.991, tohoku_counts["2011-03-09"])),
                        pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 10), policy=policy)
    opened = first.alerts
    assert opened.row(0, named=True)["release_state"] == "released"
    published = {opened.row(0, named=True)["alert_id"]}

    up = plan_alerts(_latest(_grade("tohoku_count", "2011-03-11", "red", 0.9991, tohoku_counts["2011-03-11"])),
                     opened, now=NOW, clock=datetime(2011, 3, 12), policy=policy, published=published)
    row = up.alerts.row(0, named=True)
    assert (row["level"], row["release_state"]) == ("red", "pending")  # escalation into the gate
    assert [t["action"] for t in up.transitions] == ["escalated"]
    assert up.releases == []  # the yellow message stays out; red waits for a duty officer

    down = plan_alerts(_latest(_grade("tohoku_count", "2011-03-13", "yellow", 0.992, tohoku_counts["2011-03-13"])),
                       up.alerts, now=NOW, clock=datetime(2011, 3, 14), policy=policy, published=published)
    assert [t["action"] for t in down.transitions] == ["deescalated"]
    assert [(r["msg_type"]) for r in down.releases] == ["Update"]  # released again at yellow

    calm = plan_alerts(_latest(_grade("tohoku_count", "2011-03-13", "none", 0.41, tohoku_counts["2011-03-13"])),
                       down.alerts, now=NOW, clock=datetime(2011, 3, 14), policy=policy, published=published)
    assert calm.alerts.row(0, named=True)["status"] == "resolved"
    assert [t["action"] for t in calm.transitions] == ["resolved"]
    assert calm.releases == [{"alert_id": row["alert_id"], "msg_type": "Update", "reason": "all clear: risk passed"}]


def test_unrenewed_alert_expires_and_silence_suppresses_release(tohoku_counts) -> None:
    opened = plan_alerts(_latest(_grade("tohoku_count", "2011-03-11", "blue", 0.98, tohoku_counts["2011-03-11"])),
                         pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 12),
                         silenced={("earthquake", "Tohoku, Japan")})
    row = opened.alerts.row(0, named=True)
    assert row["release_state"] == "suppressed" and opened.releases == []
    assert row["expires_at"] == datetime(2011, 3, 14)  # 3 daily steps after the triggering day
    # no grade for the group in this cycle, and the clock passed expires_at
    later = plan_alerts(pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "level": pl.Utf8,
                                             "score": pl.Float64, "evidence": pl.Utf8, "domain": pl.Utf8,
                                             "region": pl.Utf8}),
                        opened.alerts, now=NOW, clock=datetime(2011, 3, 15))
    assert later.alerts.row(0, named=True)["status"] == "expired"
    assert later.transitions[0]["action"] == "expired"


def _dgs10() -> pl.DataFrame:
    raw = pl.read_csv(ROOT / "tests" / "data" / "fred_DGS10_last800.csv", try_parse_dates=True)
    return raw.drop_nulls("value").select(pl.lit("dgs10").alias("unique_id"),
                                          pl.col(raw.columns[0]).cast(pl.Datetime("us")).alias("ds"),
                                          pl.col("value").cast(pl.Float64).alias("y"))


def test_stale_and_gapped_series_are_inhibited_with_a_notice() -> None:
    series = _dgs10()
    last = series["ds"].max()
    ok = assess_data_health(series, {"dgs10": "B"}, clock=last + timedelta(days=1))
    assert ok.row(0, named=True)["state"] == "ok"
    stale = assess_data_health(series, {"dgs10": "B"}, clock=last + timedelta(days=20))
    assert stale.row(0, named=True)["state"] == "stale"
    # drop 20 of the last 30 trading days: the feed has holes
    recent = series.filter(pl.col("ds") > last - timedelta(days=42))
    holes = set(recent["ds"].to_list()[::3])
    gapped = series.filter(~pl.col("ds").is_in(list(set(recent["ds"].to_list()) - holes)) | (pl.col("ds") == last))
    state = assess_data_health(gapped, {"dgs10": "B"}, clock=last + timedelta(days=1)).row(0, named=True)
    assert state["state"] == "gap", state

    grade = _grade("dgs10", str(last.date()), "orange", 0.996, 4.1, domain="market", region="US")
    plan = plan_alerts(_latest(grade), pl.DataFrame(), now=NOW, clock=last + timedelta(days=20),
                       frequencies={"dgs10": "B"}, health=stale)
    assert plan.alerts.height == 0
    notice = plan.notices.row(0, named=True)
    assert (notice["unique_id"], notice["kind"]) == ("dgs10", "stale")
    assert json.loads(notice["detail"])["withheld_level"] == "orange"
