"""Alert lifecycle (alerts/lifecycle.py) on the real Tohoku sequence of March 2011.

The daily counts come from the bundled USGS Japan catalog (data/seismic, Tohoku box
36-42N, 140-146E); the levels are what a grader would give each day. Covered: open with the
review gate, grouping and de-duplication, escalation, de-escalation, resolve, expiry,
silences, and stale/gapped-data inhibition with data-gap notices. Against a real DuckDB file:
data-gap notices are written set-based (a repeat only moves ``last_seen``), and a cycle that
processes no new data still expires an alert whose expiry time has passed (the bundled FRED
STLFSI4 weekly series cut after 2008-10-24, its autumn-2008 peak).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from alerts.lifecycle import AlertPolicy, assess_data_health, plan_alerts
from core.settings import load_settings
from ingest.batches import ingest_file
from pipelines.cycle import run_cycle
from tests.sql import sql_frame, sql_rows
from warehouse import Warehouse, alerting, review
from warehouse.runs import last_run

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 1, 1, 12, 0)


@pytest.fixture(scope="module")
def tohoku_counts() -> dict[str, int]:
    """Real events per day in the Tohoku box, 2011-03-08 .. 2011-03-13."""
    raw = pl.read_csv(
        ROOT / "data" / "seismic" / "usgs_comcat_japan_2005_2014_processed.csv",
        columns=["time", "latitude", "longitude"],
    )
    days = (
        raw.filter(pl.col("latitude").is_between(36, 42) & pl.col("longitude").is_between(140, 146))
        .with_columns(pl.col("time").str.slice(0, 10).alias("day"))
        .filter(pl.col("day").is_between(pl.lit("2011-03-08"), pl.lit("2011-03-13")))
        .group_by("day")
        .len()
    )
    return dict(zip(days["day"], days["len"], strict=True))


def _grade(
    uid: str, day: str, level: str, score: float, value: float, domain: str = "seismic", region: str = "Tohoku, Japan"
) -> dict:
    return {
        "unique_id": uid,
        "ds": datetime.fromisoformat(day),
        "level": level,
        "score": score,
        "evidence": json.dumps(
            {"value": value, "thresholds": {"blue": 0.97, "yellow": 0.99, "orange": 0.995, "red": 0.998}}
        ),
        "domain": domain,
        "region": region,
    }


def _latest(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows))


def _open(plan_alerts_frame: pl.DataFrame) -> pl.DataFrame:
    return plan_alerts_frame.filter(pl.col("status") == "open")


def test_a_group_opens_one_alert_led_by_its_highest_member_and_gates_release(tohoku_counts) -> None:
    day = "2011-03-11"
    latest = _latest(
        _grade("tohoku_count", day, "red", 0.9991, tohoku_counts[day]),
        _grade("tohoku_energy", day, "orange", 0.9962, 15.1),
        _grade("unrate", "2011-03-01", "yellow", 0.9973, 9.0, domain="market", region="US"),
    )
    monthly = {"unrate": "MS"}  # its 2011-03-01 grade is live until 3 monthly steps later
    plan = plan_alerts(latest, pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 12), frequencies=monthly)
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
    again = plan_alerts(latest, pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 12), frequencies=monthly)
    assert set(again.alerts["alert_id"]) == set(plan.alerts["alert_id"])


def test_escalate_deescalate_and_resolve_follow_the_grades(tohoku_counts) -> None:
    policy = AlertPolicy(auto_release=frozenset({"blue", "yellow"}))
    first = plan_alerts(
        _latest(_grade("tohoku_count", "2011-03-09", "yellow", 0.991, tohoku_counts["2011-03-09"])),
        pl.DataFrame(),
        now=NOW,
        clock=datetime(2011, 3, 10),
        policy=policy,
    )
    opened = first.alerts
    assert opened.row(0, named=True)["release_state"] == "released"
    published = {opened.row(0, named=True)["alert_id"]}

    up = plan_alerts(
        _latest(_grade("tohoku_count", "2011-03-11", "red", 0.9991, tohoku_counts["2011-03-11"])),
        opened,
        now=NOW,
        clock=datetime(2011, 3, 12),
        policy=policy,
        published=published,
    )
    row = up.alerts.row(0, named=True)
    assert (row["level"], row["release_state"]) == ("red", "pending")  # escalation into the gate
    assert [t["action"] for t in up.transitions] == ["escalated"]
    assert up.releases == []  # the yellow message stays out; red waits for a duty officer

    down = plan_alerts(
        _latest(_grade("tohoku_count", "2011-03-13", "yellow", 0.992, tohoku_counts["2011-03-13"])),
        up.alerts,
        now=NOW,
        clock=datetime(2011, 3, 14),
        policy=policy,
        published=published,
    )
    assert [t["action"] for t in down.transitions] == ["deescalated"]
    assert [(r["msg_type"]) for r in down.releases] == ["Update"]  # released again at yellow

    calm = plan_alerts(
        _latest(_grade("tohoku_count", "2011-03-13", "none", 0.41, tohoku_counts["2011-03-13"])),
        down.alerts,
        now=NOW,
        clock=datetime(2011, 3, 14),
        policy=policy,
        published=published,
    )
    assert calm.alerts.row(0, named=True)["status"] == "resolved"
    assert [t["action"] for t in calm.transitions] == ["resolved"]
    assert calm.releases == [{"alert_id": row["alert_id"], "msg_type": "Update", "reason": "all clear: risk passed"}]


def test_unrenewed_alert_expires_and_silence_suppresses_release(tohoku_counts) -> None:
    opened = plan_alerts(
        _latest(_grade("tohoku_count", "2011-03-11", "blue", 0.98, tohoku_counts["2011-03-11"])),
        pl.DataFrame(),
        now=NOW,
        clock=datetime(2011, 3, 12),
        silenced={("earthquake", "Tohoku, Japan")},
    )
    row = opened.alerts.row(0, named=True)
    assert row["release_state"] == "suppressed" and opened.releases == []
    assert row["expires_at"] == datetime(2011, 3, 14)  # 3 daily steps after the triggering day
    # no grade for the group in this cycle, and the clock passed expires_at
    later = plan_alerts(
        pl.DataFrame(
            schema={
                "unique_id": pl.Utf8,
                "ds": pl.Datetime("us"),
                "level": pl.Utf8,
                "score": pl.Float64,
                "evidence": pl.Utf8,
                "domain": pl.Utf8,
                "region": pl.Utf8,
            }
        ),
        opened.alerts,
        now=NOW,
        clock=datetime(2011, 3, 15),
    )
    assert later.alerts.row(0, named=True)["status"] == "expired"
    assert later.transitions[0]["action"] == "expired"


def _dgs10() -> pl.DataFrame:
    raw = pl.read_csv(ROOT / "tests" / "data" / "fred_DGS10_last800.csv", try_parse_dates=True)
    return raw.drop_nulls("value").select(
        pl.lit("dgs10").alias("unique_id"),
        pl.col(raw.columns[0]).cast(pl.Datetime("us")).alias("ds"),
        pl.col("value").cast(pl.Float64).alias("y"),
    )


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
    plan = plan_alerts(
        _latest(grade),
        pl.DataFrame(),
        now=NOW,
        clock=last + timedelta(days=20),
        frequencies={"dgs10": "B"},
        health=stale,
    )
    assert plan.alerts.height == 0
    notice = plan.notices.row(0, named=True)
    assert (notice["unique_id"], notice["kind"]) == ("dgs10", "stale")
    assert json.loads(notice["detail"])["withheld_level"] == "orange"


def _fred(name: str, uid: str) -> pl.DataFrame:
    raw = pl.read_csv(ROOT / "tests" / "data" / name, try_parse_dates=True)
    return raw.drop_nulls("value").select(
        pl.lit(uid).alias("unique_id"),
        pl.col(raw.columns[0]).cast(pl.Datetime("us")).alias("ds"),
        pl.col("value").cast(pl.Float64).alias("y"),
    )


def test_data_gap_notices_are_written_set_based_and_a_repeat_only_moves_last_seen(tmp_path) -> None:
    series = {
        "dgs10": (_dgs10(), "B"),
        "unrate": (_fred("fred_UNRATE.csv", "unrate"), "MS"),
        "stlfsi4": (_fred("fred_STLFSI4.csv", "stlfsi4"), "W-FRI"),
    }
    frequencies = {uid: freq for uid, (_, freq) in series.items()}
    observed = pl.concat([frame for frame, _ in series.values()])
    clock = observed["ds"].max() + timedelta(days=400)  # every feed has gone quiet: all stale
    health = assess_data_health(observed, frequencies, clock=clock)
    assert set(health["state"]) == {"stale"}
    latest = _latest(
        *(
            _grade(
                uid, str(frame["ds"].max().date()), "orange", 0.996, frame["y"][-1], domain="market", region=f"US-{uid}"
            )
            for uid, (frame, _) in series.items()
        )
    )
    notices = plan_alerts(latest, pl.DataFrame(), now=NOW, clock=clock, frequencies=frequencies, health=health).notices
    assert notices.height == 3

    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        statements: list[str] = []
        execute = wh._execute

        def counting(sql: str, params=None):  # noqa: ANN001, ANN202
            statements.append(sql)
            return execute(sql, params)

        wh._execute = counting  # type: ignore[method-assign]
        assert alerting.upsert_notices(wh, notices.head(1), at=NOW, run_id="r_1") == 1
        one = len(statements)
        statements.clear()
        assert alerting.upsert_notices(wh, notices, at=NOW, run_id="r_1") == 2  # two new, one repeat
        assert len(statements) == one  # set-based: the same statements for one notice or three
        del wh._execute

        later = NOW + timedelta(hours=6)
        assert alerting.upsert_notices(wh, notices, at=later, run_id="r_2") == 0  # nothing new
        stored = alerting.read_notices(wh)
        assert stored.height == 3 and set(stored["kind"]) == {"stale"}
        assert set(stored["last_seen"]) == {later}  # a repeat moves last_seen ...
        assert set(stored["first_seen"]) == {NOW} and set(stored["run_id"]) == {"r_1"}  # ... only
        assert {json.loads(d)["withheld_level"] for d in stored["detail"]} == {"orange"}
        alerting.upsert_notices(wh, notices, at=NOW, run_id="r_3")  # an older repeat: no move back
        assert set(alerting.read_notices(wh)["last_seen"]) == {later}


def _stlfsi4_until(folder: Path, last_day: str) -> Path:
    """The bundled STLFSI4 file cut after ``last_day`` (header and data lines unchanged)."""
    lines = (ROOT / "data" / "market" / "fred_STLFSI4.csv").read_text().splitlines(keepends=True)
    cut = folder / f"fred_STLFSI4_until_{last_day}.csv"
    cut.write_text(lines[0] + "".join(line for line in lines[1:] if line[:10] <= last_day))
    return cut


def test_a_cycle_without_new_data_expires_an_alert_past_its_expiry(tmp_path) -> None:
    # The 2008 stress index alone is a rarity grade (no field model), which the levels step
    # caps at yellow; this test is about expiry, so the cap is lifted to keep its red alert.
    settings = load_settings(tmp_path, environ={"EWS_ALERTS__JUDGE": "template", "EWS_HAZARDS__RARITY_CAP": "red"})
    with Warehouse.open(settings.warehouse_path) as wh:
        assert (
            ingest_file(
                wh,
                settings,
                _stlfsi4_until(tmp_path, "2008-10-24"),
                "fred_csv",
                options={"unique_id": "stlfsi4", "frequency": "W-FRI", "domain": "market", "region": "US"},
            ).status
            == "committed"
        )
        run_cycle(wh, settings, now=datetime(2008, 10, 25, 6, 0), actor="scheduler")
        alert = sql_frame(wh, "SELECT alert_id, level, status, expires_at FROM alerts").row(0, named=True)
        assert (alert["level"], alert["status"]) == ("red", "open")
        assert alert["expires_at"] == datetime(2008, 11, 14)  # 3 weekly steps after 2008-10-24

        # no new data, before expires_at: nothing changes
        quiet = run_cycle(wh, settings, now=datetime(2008, 11, 10, 6, 0), actor="scheduler")
        assert quiet.series_processed == 0 and all(v == 0 for v in quiet.row_counts.values())
        assert review.read_alert(wh, alert["alert_id"])["status"] == "open"

        # no new data, after expires_at: the cycle expires the alert and says who and why
        late = datetime(2008, 11, 20, 6, 0)
        expiring = run_cycle(wh, settings, now=late, actor="cron.ops")
        assert expiring.series_processed == 0
        row = review.read_alert(wh, alert["alert_id"])
        assert (row["status"], row["updated_at"]) == ("expired", late)
        assert (expiring.row_counts.get("alerts"), expiring.row_counts.get("alert_transitions")) == (1, 1)
        assert [(a["alert_id"], a["transition"], a["status"]) for a in expiring.alerts] == [
            (alert["alert_id"], "expired", "expired")
        ]
        last = review.read_transitions(wh, alert["alert_id"]).row(-1, named=True)
        assert (last["action"], last["actor"], last["run_id"]) == ("expired", "cycle", expiring.run_id)
        assert (last["from_status"], last["to_status"]) == ("open", "expired")
        assert last["reason"].startswith("not renewed before 2008-11-14")
        audit = sql_rows(
            wh, "SELECT actor, detail FROM audit_log WHERE action = 'alert.expired' AND target = ?", alert["alert_id"]
        )
        assert len(audit) == 1 and audit[0][0] == "cron.ops"
        detail = json.loads(audit[0][1])
        assert detail["run_id"] == expiring.run_id and detail["reason"] == last["reason"]
        assert last_run(wh)["status"] == "success"
        assert sql_rows(wh, "SELECT count(*) FROM outbox")[0][0] == 0  # expiry releases nothing

        # and expiring is done once
        again = run_cycle(wh, settings, now=late + timedelta(days=1), actor="cron.ops")
        assert all(v == 0 for v in again.row_counts.values())


def test_an_unchanged_lead_expires_and_an_expired_alert_is_never_reopened(tohoku_counts) -> None:
    """Two real series of one group (earthquake, Tohoku): the daily count leads at yellow on
    2011-03-09; later only its group mate (daily energy) gets new data."""
    key = ("earthquake", "Tohoku, Japan")
    lead = _grade("tohoku_count", "2011-03-09", "yellow", 0.991, tohoku_counts["2011-03-09"])
    first = plan_alerts(
        _latest(lead, _grade("tohoku_energy", "2011-03-09", "none", 0.42, 11.2)),
        pl.DataFrame(),
        now=NOW,
        clock=datetime(2011, 3, 10),
    )
    opened = first.alerts.row(0, named=True)
    assert (opened["status"], opened["expires_at"]) == ("open", datetime(2011, 3, 12))
    published = {opened["alert_id"]}

    # only the mate changed, the lead's grade is the same, and the clock passed expires_at:
    # the alert expires (it used to stay open, its expiry never checked)
    mate = plan_alerts(
        _latest(lead, _grade("tohoku_energy", "2011-03-13", "none", 0.40, 11.0)),
        first.alerts,
        now=NOW,
        clock=datetime(2011, 3, 13),
        published=published,
    )
    row = mate.alerts.row(0, named=True)
    assert (row["alert_id"], row["status"]) == (opened["alert_id"], "expired")
    assert [t["action"] for t in mate.transitions] == ["expired"] and mate.releases == []
    assert mate.transitions[0]["reason"].startswith("not renewed before 2011-03-12")

    # the next cycle in which the mate changes sees the same old lead: nothing is (re)opened,
    # no CAP Update goes out (it used to reopen the same id, expires_at already past)
    closed = {key: opened["ds"]}
    again = plan_alerts(
        _latest(lead, _grade("tohoku_energy", "2011-03-14", "none", 0.41, 11.1)),
        pl.DataFrame(),
        now=NOW,
        clock=datetime(2011, 3, 14),
        published=published,
        closed=closed,
    )
    assert again.alerts.height == 0 and again.transitions == [] and again.releases == []

    # a lead not newer than the group's last closed alert opens nothing, even before its
    # expiry (here the alert was cancelled on 2011-03-10 and the mate changed on 2011-03-11);
    # without ``closed`` it would reopen the cancelled alert's id
    mid = _latest(lead, _grade("tohoku_energy", "2011-03-11", "none", 0.43, 11.3))
    unguarded = plan_alerts(mid, pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 11), published=published)
    assert unguarded.alerts["alert_id"].to_list() == [opened["alert_id"]]
    guarded = plan_alerts(mid, pl.DataFrame(), now=NOW, clock=datetime(2011, 3, 11), published=published, closed=closed)
    assert guarded.alerts.height == 0 and guarded.releases == []

    # a fresh, live grade of the mate is newer: it opens a new episode with its own id
    fresh = plan_alerts(
        _latest(lead, _grade("tohoku_energy", "2011-03-13", "blue", 0.981, 15.1)),
        pl.DataFrame(),
        now=NOW,
        clock=datetime(2011, 3, 13),
        published=published,
        closed=closed,
    )
    new = fresh.alerts.row(0, named=True)
    assert (new["unique_id"], new["level"], new["status"]) == ("tohoku_energy", "blue", "open")
    assert new["alert_id"] != opened["alert_id"] and new["expires_at"] > datetime(2011, 3, 13)
    assert [r["msg_type"] for r in fresh.releases] == ["Alert"]


def _fred_until(folder: Path, name: str, last_day: str) -> Path:
    """A bundled FRED file (data/market) cut after ``last_day``."""
    lines = (ROOT / "data" / "market" / name).read_text().splitlines(keepends=True)
    cut = folder / f"{Path(name).stem}_until_{last_day}.csv"
    cut.write_text(lines[0] + "".join(line for line in lines[1:] if line[:10] <= last_day))
    return cut


def test_a_group_mates_new_data_does_not_resurrect_an_expired_alert(tmp_path) -> None:
    """STLFSI4 (weekly) and UNRATE (monthly), both market risk in the US: one group."""
    settings = load_settings(
        tmp_path,
        environ={
            "EWS_ALERTS__JUDGE": "template",
            "EWS_ALERTS__AUTO_RELEASE": '["blue", "yellow", "orange", "red"]',
            # rarity grades (no field model here) are capped at yellow by the levels step; the
            # test is about expiry and group mates, so the cap is lifted to keep its red alert
            "EWS_HAZARDS__RARITY_CAP": "red",
        },
    )

    def ingest(name: str, uid: str, frequency: str, last_day: str) -> None:
        assert (
            ingest_file(
                wh,
                settings,
                _fred_until(tmp_path, name, last_day),
                "fred_csv",
                options={"unique_id": uid, "frequency": frequency, "domain": "market", "region": "US"},
            ).status
            == "committed"
        )

    with Warehouse.open(settings.warehouse_path) as wh:
        ingest("fred_STLFSI4.csv", "stlfsi4", "W-FRI", "2008-10-24")
        ingest("fred_UNRATE.csv", "unrate", "MS", "2008-10-01")
        run_cycle(wh, settings, now=datetime(2008, 10, 25, 6, 0))
        alert = sql_frame(wh, "SELECT alert_id, unique_id, level, status, expires_at FROM alerts").row(0, named=True)
        assert (alert["unique_id"], alert["level"], alert["status"]) == ("stlfsi4", "red", "open")
        assert alert["expires_at"] == datetime(2008, 11, 14)
        outbox = "SELECT msg_type FROM outbox WHERE alert_id = ? ORDER BY created_at"
        assert [m for (m,) in sql_rows(wh, outbox, alert["alert_id"])] == ["Alert"]

        expired_at = datetime(2008, 11, 20, 6, 0)
        run_cycle(wh, settings, now=expired_at)  # no new data: expired
        assert review.read_alert(wh, alert["alert_id"])["status"] == "expired"

        # the mate gets its November point; the group's highest grade is still STLFSI4's red of
        # 2008-10-24 (expired on 2008-11-14): the expired alert stays expired, no Update
        ingest("fred_UNRATE.csv", "unrate", "MS", "2008-11-01")
        changed = run_cycle(wh, settings, now=datetime(2008, 11, 21, 6, 0))
        assert changed.series_processed == 1
        row = review.read_alert(wh, alert["alert_id"])
        assert (row["status"], row["updated_at"]) == ("expired", expired_at)
        assert [t for t in review.read_transitions(wh, alert["alert_id"])["action"]] == ["opened", "expired"]
        assert [m for (m,) in sql_rows(wh, outbox, alert["alert_id"])] == ["Alert"]
        assert alert["alert_id"] not in {a["alert_id"] for a in changed.alerts}
        # what did open is a new episode from the mate's own live grade, with its own id
        for item in changed.alerts:
            assert (item["unique_id"], item["transition"]) == ("unrate", "opened")
            fresh = review.read_alert(wh, item["alert_id"])
            assert fresh["ds"] == datetime(2008, 11, 1) and fresh["expires_at"] > datetime(2008, 11, 21)

        # and no flapping: the next quiet cycle changes nothing
        quiet = run_cycle(wh, settings, now=datetime(2008, 11, 22, 6, 0))
        assert all(v == 0 for v in quiet.row_counts.values()), quiet.row_counts
