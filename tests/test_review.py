"""Review actions (warehouse/review.py): each validates the transition, records who did it,
and writes the alert change, the transition and the audit row in one transaction."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.errors import TransitionError
from tests.sql import sql_rows
from warehouse import Warehouse, alerting, review

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2020, 5, 8, 13, 0)


def _unrate_spike() -> dict:
    """A real episode: US unemployment jumped to its April 2020 peak (FRED UNRATE, bundled)."""
    raw = pl.read_csv(ROOT / "tests" / "data" / "fred_UNRATE.csv", try_parse_dates=True)
    peak = raw.drop_nulls("value").sort("value").tail(1).row(0, named=True)
    return {"date": peak["date"], "value": float(peak["value"])}


@pytest.fixture()
def wh(tmp_path: Path):
    spike = _unrate_spike()
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        ds = datetime.combine(spike["date"], datetime.min.time())
        evidence = json.dumps({"driver": "interval_exceedance", "value": spike["value"]})
        rows = []
        for alert_id, level in (("a_orange", "orange"), ("a_red", "red")):
            rows.append(
                {
                    "alert_id": alert_id,
                    "run_id": "r_test",
                    "unique_id": "fred_unrate",
                    "domain": "market",
                    "region": "US" if level == "orange" else "US-labour",
                    "hazard": "market_risk",
                    "level": level,
                    "status": "open",
                    "ds": ds,
                    "score": 0.999,
                    "evidence": evidence,
                    "opened_at": T0,
                    "updated_at": T0,
                    "release_state": "pending",
                    "expires_at": None,
                }
            )
        alerting.upsert_alert_rows(wh, pl.DataFrame(rows), run_id="r_test")
        yield wh


def test_approve_moves_pending_to_released_and_queues_the_outbox_in_one_go(wh) -> None:
    alert = review.read_alert(wh, "a_orange")
    assert alert["release_state"] == "pending"  # orange starts held for a duty officer
    after = review.approve_release(wh, alert_id="a_orange", user="duty.li", at=T0)
    assert after["release_state"] == "released"
    hist = review.read_transitions(wh, "a_orange")
    assert hist["action"].to_list() == ["approved"]
    assert hist.row(0, named=True)["actor"] == "duty.li"
    assert (hist.row(0, named=True)["from_release"], hist.row(0, named=True)["to_release"]) == ("pending", "released")
    outbox = sql_rows(wh, "SELECT event_id, msg_type, snapshot FROM outbox")
    assert [(e, m) for e, m, _ in outbox] == [("a_orange:1", "Alert")]
    assert json.loads(outbox[0][2])["level"] == "orange"
    audit = sql_rows(wh, "SELECT actor, action, target FROM audit_log")
    assert audit == [("duty.li", "alert.approved", "a_orange")]
    with pytest.raises(TransitionError, match="already released"):
        review.approve_release(wh, alert_id="a_orange", user="duty.li", at=T0)


def test_reject_needs_a_reason_and_cannot_recall_a_released_alert(wh) -> None:
    with pytest.raises(TransitionError, match="reason is required"):
        review.reject_release(wh, alert_id="a_red", user="duty.li", at=T0, reason=" ")
    after = review.reject_release(wh, alert_id="a_red", user="duty.li", at=T0, reason="sensor fault")
    assert after["release_state"] == "rejected"
    review.approve_release(wh, alert_id="a_orange", user="duty.li", at=T0)
    with pytest.raises(TransitionError, match="ews alerts cancel"):
        review.reject_release(wh, alert_id="a_orange", user="duty.li", at=T0, reason="late doubt")
    assert sql_rows(wh, "SELECT count(*) FROM outbox WHERE alert_id = 'a_red'")[0][0] == 0


def test_a_failed_action_writes_nothing(wh) -> None:
    before = sql_rows(wh, "SELECT count(*) FROM audit_log")[0][0]
    with pytest.raises(TransitionError, match="no alert 'a_missing'"):
        review.acknowledge(wh, alert_id="a_missing", user="analyst.wu", at=T0)
    with pytest.raises(TransitionError, match="no acting user"):
        review.approve_release(wh, alert_id="a_red", user="", at=T0)
    assert sql_rows(wh, "SELECT count(*) FROM audit_log")[0][0] == before
    assert sql_rows(wh, "SELECT count(*) FROM alert_transitions")[0][0] == 0


def test_acknowledge_once_per_user_and_only_while_open(wh) -> None:
    review.acknowledge(wh, alert_id="a_red", user="analyst.wu", at=T0, note="watching")
    with pytest.raises(TransitionError, match="already acknowledged"):
        review.acknowledge(wh, alert_id="a_red", user="analyst.wu", at=T0)
    review.acknowledge(wh, alert_id="a_red", user="duty.li", at=T0)
    review.cancel_alert(wh, alert_id="a_red", user="duty.li", at=T0, reason="duplicate feed")
    with pytest.raises(TransitionError, match="it is cancelled, expected open"):
        review.acknowledge(wh, alert_id="a_red", user="duty.zhao", at=T0)
    actions = review.read_transitions(wh, "a_red")["action"].to_list()
    assert actions == ["acknowledged", "acknowledged", "cancelled"]
    # nothing had gone out, so there is no CAP Cancel to send
    assert sql_rows(wh, "SELECT count(*) FROM outbox")[0][0] == 0


def test_silence_has_owner_reason_and_end_and_holds_a_pending_alert(wh) -> None:
    with pytest.raises(TransitionError, match="not after its start"):
        review.silence(wh, alert_id="a_red", user="duty.li", at=T0, reason="x", until=T0)
    row = review.silence(
        wh, alert_id="a_red", user="duty.li", at=T0, reason="gauge maintenance", until=T0 + timedelta(hours=6)
    )
    assert (row["owner"], row["reason"], row["hazard"], row["region"]) == (
        "duty.li",
        "gauge maintenance",
        "market_risk",
        "US-labour",
    )
    assert review.read_alert(wh, "a_red")["release_state"] == "suppressed"
    assert review.read_silences(wh, active_at=T0 + timedelta(hours=1)).height == 1
    assert review.read_silences(wh, active_at=T0 + timedelta(hours=7)).height == 0
    review.lift_silence(wh, silence_id=row["silence_id"], user="duty.li", at=T0 + timedelta(hours=1))
    assert review.read_silences(wh, active_at=T0 + timedelta(hours=2)).height == 0
    # a suppressed alert can still be released by an explicit approval
    assert review.approve_release(wh, alert_id="a_red", user="duty.li", at=T0)["release_state"] == "released"


def test_feedback_is_stored_with_the_alert_snapshot(wh) -> None:
    with pytest.raises(TransitionError, match="confirmed or --verdict false_alarm"):
        review.mark_feedback(wh, alert_id="a_red", user="analyst.wu", at=T0, verdict="maybe")
    review.mark_feedback(
        wh, alert_id="a_red", user="analyst.wu", at=T0, verdict="false_alarm", note="seasonal artefact"
    )
    fb = review.read_feedback(wh).row(0, named=True)
    assert (fb["unique_id"], fb["level"], fb["verdict"], fb["score"]) == ("fred_unrate", "red", "false_alarm", 0.999)
    assert review.read_transitions(wh, "a_red")["action"].to_list() == ["feedback.false_alarm"]


def test_cancel_after_release_queues_a_cap_cancel(wh) -> None:
    review.approve_release(wh, alert_id="a_orange", user="duty.li", at=T0)
    review.cancel_alert(
        wh, alert_id="a_orange", user="duty.li", at=T0 + timedelta(minutes=5), reason="wrong series mapping"
    )
    events = sql_rows(wh, "SELECT event_id, msg_type, reason FROM outbox ORDER BY event_id")
    assert events == [
        ("a_orange:1", "Alert", "approved by duty officer"),
        ("a_orange:2", "Cancel", "wrong series mapping"),
    ]
    with pytest.raises(TransitionError, match="already cancelled"):
        review.cancel_alert(wh, alert_id="a_orange", user="duty.li", at=T0, reason="again")
