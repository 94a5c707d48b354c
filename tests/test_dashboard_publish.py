"""A release approved in the dashboard goes out now: the dashboard hands CAP publication to the
engine's `ews deliver` in a detached child process (dashboards/context.py, docs/dashboard.md).

Real parts throughout: an EWS home made by the engine's own `init_home`, a DuckDB warehouse
holding the bundled real FRED UNRATE series and orange/red alerts on its April 2020 peak (the
episode tests/test_review.py uses), a duty-officer account in the control store, approvals
queued through the review inbox, the dashboard's real sync path (`context.try_sync`), and the
real `python -m pipelines.cli deliver` child writing CAP 1.2 files that must validate against
the XSD (alerts.cap.validate_cap). Nothing of the engine is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from alerts.cap import validate_cap
from core.settings import Settings, load_settings
from pipelines.cli.main import init_home
from ingest.batches import ingest_file
from warehouse import Warehouse, alerting, users
from warehouse.review_inbox import enqueue
from warehouse.snapshots import current_snapshot, snapshot_folder
from sql import sql_rows

ROOT = Path(__file__).resolve().parent.parent
FRED = ROOT / "tests" / "data" / "fred_UNRATE.csv"
T0 = datetime(2020, 5, 8, 13, 0)
OFFICER = "duty_officer_user"
BOUND_SECONDS = 60.0


def _peak() -> tuple[datetime, float]:
    raw = pl.read_csv(FRED, try_parse_dates=True).drop_nulls("value").sort("value").tail(1)
    row = raw.row(0, named=True)
    return datetime.combine(row["date"], datetime.min.time()), float(row["value"])


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A home with a red and an orange alert awaiting a duty officer, no CAP file yet."""
    from dashboards import context

    assert context.wait_for_publisher(BOUND_SECONDS)  # nothing left over from another test
    root = tmp_path / "home"
    init_home(load_settings(root), as_of="2020-05-08")  # replay clock: CAP status Exercise
    settings = load_settings(root)
    ds, value = _peak()
    with Warehouse.open(settings.warehouse_path) as wh:
        loaded = ingest_file(wh, settings, FRED, "fred_csv", options={"unique_id": "fred_unrate", "frequency": "MS"})
        assert loaded.status == "committed"
        evidence = json.dumps({"driver": "interval_exceedance", "value": value})
        rows = [
            {"alert_id": alert_id, "run_id": "r_test", "unique_id": "fred_unrate", "domain": "market",
             "region": region, "hazard": "market_risk", "level": level, "status": "open", "ds": ds,
             "score": 0.999, "evidence": evidence, "opened_at": T0, "updated_at": T0,
             "release_state": "pending", "expires_at": None}
            for alert_id, level, region in (("a_red", "red", "US-labour"), ("a_orange", "orange", "US"))]
        alerting.upsert_alert_rows(wh, pl.DataFrame(rows), run_id="r_test")
        states = sql_rows(wh, "SELECT alert_id, release_state FROM alerts ORDER BY alert_id")
    assert states == [("a_orange", "pending"), ("a_red", "pending")]
    con = users.connect_control(users.control_path(settings))
    users.add_user(con, name=OFFICER, role="duty_officer", password="duty-officer-pass-1", at=T0)
    con.close()
    monkeypatch.setenv("EWS_HOME", str(root))
    yield settings
    assert context.wait_for_publisher(BOUND_SECONDS)  # never leave a child behind


def _approve(settings: Settings, alert_id: str) -> None:
    con = users.connect_control(users.control_path(settings))
    enqueue(con, action="approve", alert_id=alert_id, user=OFFICER, role="duty_officer", at=datetime.now(UTC).replace(tzinfo=None))
    con.close()


def _cap_files(settings: Settings) -> list[Path]:
    return sorted(settings.path("alerts").glob("*.xml"))


def _poll(condition, seconds: float = BOUND_SECONDS) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _warehouse(settings: Settings, sql: str) -> list[tuple]:
    with Warehouse.open(settings.warehouse_path, read_only=True) as wh:
        return sql_rows(wh, sql)


def test_a_dashboard_approval_is_published_as_cap_now_and_once(home: Settings) -> None:
    from dashboards import context

    before = context.publisher_status()["children"]
    _approve(home, "a_red")
    started = time.monotonic()
    assert context.try_sync() is True  # applied by the dashboard itself, not by an engine run
    assert time.monotonic() - started < 5.0, "the page must not wait for the publication"
    status = context.publisher_status()
    assert status["children"] == before + 1 and status["reason"] == f"approve a_red by {OFFICER}"
    assert status["pid"] and status["home"] == str(home.home)

    # within a bounded wait the engine child has written the alert's CAP file, and it validates
    assert _poll(lambda: len(_cap_files(home)) == 1), (home.path("logs") / "dashboard_publish.log").read_text()
    assert context.wait_for_publisher(BOUND_SECONDS)
    status = context.publisher_status()
    assert (status["state"], status["returncode"], status["running"]) == ("finished", 0, False)
    [path] = _cap_files(home)
    xml = path.read_bytes()
    assert validate_cap(xml) == []
    assert b"<status>Exercise</status>" in xml and b"<msgType>Alert</msgType>" in xml
    assert _warehouse(home, "SELECT identifier, alert_id, msg_type FROM cap_messages") == \
        [(path.stem, "a_red", "Alert")]
    assert _warehouse(home, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    # what operators see: the hand-off and its end in ews.log, the child's own output beside it
    engine_log = (home.path("logs") / "ews.log").read_text()
    assert f"`ews deliver` pid {status['pid']}" in engine_log and "finished" in engine_log
    child_out = (home.path("logs") / "dashboard_publish.log").read_text()
    assert path.stem in child_out  # `ews deliver --json` lists what it published

    # a second sync: nothing new was released, so no second child and no second file
    sizes = {p.name: p.stat().st_mtime_ns for p in _cap_files(home)}
    assert context.try_sync() is True
    assert context.publisher_status()["children"] == before + 1
    time.sleep(1.0)
    assert {p.name: p.stat().st_mtime_ns for p in _cap_files(home)} == sizes
    assert _warehouse(home, "SELECT count(*) FROM cap_messages") == [(1,)]
    # that sync also published a snapshot that now carries the CAP message for the Alert inbox
    snap = current_snapshot(snapshot_folder(home))
    with Warehouse.open(snap.path, read_only=True) as wh:
        assert sql_rows(wh, "SELECT alert_id FROM cap_messages") == [("a_red",)]


def test_approvals_while_a_child_runs_never_pile_up_and_are_not_missed(home: Settings) -> None:
    from dashboards import context

    before = context.publisher_status()["children"]
    _approve(home, "a_red")
    assert context.try_sync() is True
    assert context.publisher_status()["running"]  # the child needs ~1.5 s to start
    _approve(home, "a_orange")
    # a page-load style sync (no waiting): either the child has not taken the warehouse yet and
    # the approval is applied now (the request is deferred to a follow-up child), or the child
    # holds it and the approval stays queued for the next sync
    second = context.try_sync(wait_for_publisher_seconds=0.0)
    deferred = context.publisher_status()["deferred"]
    if not second:
        assert context.wait_for_publisher(BOUND_SECONDS)
        assert context.try_sync() is True
    assert _poll(lambda: len(_cap_files(home)) == 2)
    assert context.wait_for_publisher(BOUND_SECONDS)
    status = context.publisher_status()
    assert status["children"] == before + 2, status  # one at a time: never a third, never two at once
    assert status["returncode"] == 0
    if second:
        assert deferred >= 1
    for path in _cap_files(home):
        assert validate_cap(path.read_bytes()) == []
    assert sorted(_warehouse(home, "SELECT alert_id FROM cap_messages")) == [("a_orange",), ("a_red",)]


def test_a_child_that_cannot_start_leaves_the_release_in_the_outbox(home: Settings,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboards import context

    _approve(home, "a_red")
    with monkeypatch.context() as patch:  # an interpreter path that no longer exists
        patch.setattr(sys, "executable", str(home.home / "no-such-python"))
        assert context.try_sync() is True  # the approval itself is applied; the page goes on
    status = context.publisher_status()
    assert status["state"] == "failed to start" and "FileNotFoundError" in status["error"]
    assert "not started" in (home.path("logs") / "ews.log").read_text()
    assert _cap_files(home) == []
    assert _warehouse(home, "SELECT release_state FROM alerts WHERE alert_id = 'a_red'") == [("released",)]
    assert _warehouse(home, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(1,)]
    # the outbox is durable: the engine's next `ews deliver` publishes it
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "--home", str(home.home), "deliver",
                           "--quiet", "--json"], capture_output=True, text=True, timeout=BOUND_SECONDS)
    assert done.returncode == 0, done.stderr
    [path] = _cap_files(home)
    assert validate_cap(path.read_bytes()) == []
