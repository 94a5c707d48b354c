"""A release approved in the dashboard goes out within seconds: `ews serve`'s supervisor applies
the queued approval and publishes it as CAP (pipelines/dashboard_sync.py, docs/dashboard.md).

Real parts throughout: an EWS home made by the engine's own `init_home`, a DuckDB warehouse
holding the bundled real FRED UNRATE series and orange/red alerts on its April 2020 peak (the
episode tests/test_review.py uses), a duty-officer account in the control store, approvals
queued with the dashboard's one write call (`warehouse.review_inbox.enqueue`), the supervisor's
real loop (`SyncLoop`, the thread `ews serve` runs; and `ews serve` itself as a process), and
CAP 1.2 files that must validate against the XSD (alerts.cap.validate_cap). Nothing of the
engine is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from alerts.cap import validate_cap
from core.settings import Settings, load_settings
from ingest.batches import ingest_file
from pipelines.cli.main import init_home, setup_logging
from pipelines.dashboard_sync import SyncLoop
from tests.sql import sql_rows
from warehouse import Warehouse, alerting, users
from warehouse.review_inbox import action_outcome, enqueue, last_sync_check
from warehouse.snapshots import current_snapshot, snapshot_folder

ROOT = Path(__file__).resolve().parent.parent
FRED = ROOT / "tests" / "data" / "fred_UNRATE.csv"
T0 = datetime(2020, 5, 8, 13, 0)
OFFICER = "duty_officer_user"
BOUND_SECONDS = 60.0
#: what the dashboard promises (docs/dashboard.md): the CAP file within a few seconds
PROMPT_SECONDS = 10.0

HOLDER = textwrap.dedent("""
    import sys
    from warehouse import Warehouse

    with Warehouse.open(sys.argv[1]) as wh:  # the writer lock, as a running `ews run` holds it
        print("holding", flush=True)
        sys.stdin.readline()
""")


def _peak() -> tuple[datetime, float]:
    raw = pl.read_csv(FRED, try_parse_dates=True).drop_nulls("value").sort("value").tail(1)
    row = raw.row(0, named=True)
    return datetime.combine(row["date"], datetime.min.time()), float(row["value"])


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A home with a red and an orange alert awaiting a duty officer, no CAP file yet."""
    root = tmp_path / "home"
    init_home(load_settings(root), as_of="2020-05-08")  # replay clock: CAP status Exercise
    settings = load_settings(root)
    ds, value = _peak()
    with Warehouse.open(settings.warehouse_path) as wh:
        loaded = ingest_file(wh, settings, FRED, "fred_csv", options={"unique_id": "fred_unrate", "frequency": "MS"})
        assert loaded.status == "committed"
        evidence = json.dumps({"driver": "interval_exceedance", "value": value})
        rows = [
            {
                "alert_id": alert_id,
                "run_id": "r_test",
                "unique_id": "fred_unrate",
                "domain": "market",
                "region": region,
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
            for alert_id, level, region in (("a_red", "red", "US-labour"), ("a_orange", "orange", "US"))
        ]
        alerting.upsert_alert_rows(wh, pl.DataFrame(rows), run_id="r_test")
        states = sql_rows(wh, "SELECT alert_id, release_state FROM alerts ORDER BY alert_id")
    assert states == [("a_orange", "pending"), ("a_red", "pending")]
    con = users.connect_control(users.control_path(settings))
    users.add_user(con, name=OFFICER, role="duty_officer", password="duty-officer-pass-1", at=T0)
    con.close()
    monkeypatch.setenv("EWS_HOME", str(root))
    yield settings


def _approve(settings: Settings, alert_id: str) -> str:
    """What the Approve button does: one call into the control store's inbox."""
    con = users.connect_control(users.control_path(settings))
    try:
        return enqueue(
            con,
            action="approve",
            alert_id=alert_id,
            user=OFFICER,
            role="duty_officer",
            at=datetime.now(UTC).replace(tzinfo=None),
        )
    finally:
        con.close()


def _control(settings: Settings, function, *args):  # noqa: ANN001, ANN202
    con = users.connect_control(users.control_path(settings))
    try:
        return function(con, *args)
    finally:
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


def test_a_dashboard_approval_is_published_as_cap_within_seconds_and_once(home: Settings) -> None:
    setup_logging(home, quiet=True)  # as `ews serve` does: the engine's lines go to ews.log
    loop = SyncLoop(home).start()  # the supervisor `ews serve` runs, at its default interval
    try:
        started = time.monotonic()
        action_id = _approve(home, "a_red")
        # within a few seconds the supervisor has applied it and written the alert's CAP file
        assert _poll(lambda: len(_cap_files(home)) == 1), _control(home, last_sync_check)
        assert time.monotonic() - started < PROMPT_SECONDS
        assert _control(home, action_outcome, action_id) == ("applied", "approve applied")
        assert loop.wait_idle(BOUND_SECONDS)
        [path] = _cap_files(home)
        sizes = {p.name: p.stat().st_mtime_ns for p in _cap_files(home)}
        time.sleep(2 * home.dashboard.sync_seconds + 0.5)  # more looks: nothing new to publish
        assert _control(home, last_sync_check).outcome == "idle"
    finally:
        loop.stop()
    xml = path.read_bytes()
    assert validate_cap(xml) == []
    assert b"<status>Exercise</status>" in xml and b"<msgType>Alert</msgType>" in xml
    assert _warehouse(home, "SELECT identifier, alert_id, msg_type FROM cap_messages") == [
        (path.stem, "a_red", "Alert")
    ]
    assert _warehouse(home, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    assert _warehouse(home, "SELECT actor, action FROM audit_log WHERE target = 'a_red'") == [
        (OFFICER, "alert.approved")
    ]
    engine_log = (home.path("logs") / "ews.log").read_text()
    assert "1 review action(s) applied" in engine_log and path.stem in engine_log
    # no second file, no second message
    assert {p.name: p.stat().st_mtime_ns for p in _cap_files(home)} == sizes
    assert _warehouse(home, "SELECT count(*) FROM cap_messages") == [(1,)]
    # the sync also published a snapshot that carries the CAP message for the Alert inbox
    snap = current_snapshot(snapshot_folder(home))
    with Warehouse.open(snap.path, read_only=True) as wh:
        assert sql_rows(wh, "SELECT alert_id FROM cap_messages") == [("a_red",)]


def test_each_approval_is_published_once_whenever_it_arrives(home: Settings) -> None:
    loop = SyncLoop(home, interval=0.2)
    _approve(home, "a_red")
    first = loop.tick()
    _approve(home, "a_orange")  # a second approval after the first was published
    _approve(home, "a_orange")  # and a double click: the second does not fit the state
    second = loop.tick()
    assert loop.tick().outcome == "idle"  # nothing queued: the warehouse is not even opened
    files = _cap_files(home)
    assert len(files) == 2
    # what operators see (Operations page): each look, what it applied and published
    assert first.outcome == second.outcome == "synced"
    assert first.detail.startswith("1 applied, 0 refused; CAP ") and second.detail.startswith(
        "1 applied, 1 refused; CAP "
    )
    assert sorted(p.stem for p in files) == sorted(c.detail.split("CAP ")[1].split()[0] for c in (first, second))
    for path in files:
        assert validate_cap(path.read_bytes()) == []
    assert sorted(_warehouse(home, "SELECT alert_id FROM cap_messages")) == [("a_orange",), ("a_red",)]
    assert _warehouse(
        home, "SELECT count(*) FROM audit_log WHERE action = 'review.refused' AND target = 'a_orange'"
    ) == [(1,)]


def test_a_held_warehouse_means_next_time_and_nothing_is_lost(home: Settings) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home.warehouse_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    loop = SyncLoop(home, interval=0.2)
    try:
        assert holder.stdout.readline().strip() == "holding"
        action_id = _approve(home, "a_red")
        check = loop.tick()
        assert check.outcome == "locked" and "1 action(s) queued" in check.detail
        assert _control(home, last_sync_check) == check  # what the page reads to say "queued"
        assert _control(home, action_outcome, action_id) == ("queued", None)
        assert _cap_files(home) == []
        holder.communicate("go\n", timeout=BOUND_SECONDS)
        assert holder.returncode == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert loop.tick().outcome == "synced"  # the writer let go: the next look applies it
    assert _control(home, action_outcome, action_id)[0] == "applied"
    [path] = _cap_files(home)
    assert validate_cap(path.read_bytes()) == []
    assert _warehouse(home, "SELECT release_state FROM alerts WHERE alert_id = 'a_red'") == [("released",)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.read() == b"ok"
    except OSError:
        return False


def test_ews_serve_publishes_an_approval_and_stops_with_streamlit_on_sigterm(home: Settings) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home.home / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "--home", str(home.home), "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert _poll(lambda: _healthy(url) or serve.poll() is not None, 120) and _healthy(url), (
            home.home / "serve.log"
        ).read_text()
        started = time.monotonic()
        _approve(home, "a_orange")
        assert _poll(lambda: len(_cap_files(home)) == 1, BOUND_SECONDS), (home.home / "serve.log").read_text()
        assert time.monotonic() - started < PROMPT_SECONDS
        [path] = _cap_files(home)
        assert validate_cap(path.read_bytes()) == []
        os.kill(serve.pid, signal.SIGTERM)  # to `ews serve` only: it passes it on to Streamlit
        code = serve.wait(timeout=60)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        log.close()
    assert code == 0, (home.home / "serve.log").read_text()
    assert not _healthy(url)  # Streamlit is gone with it
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT; fails if listened on
        s.bind(("127.0.0.1", port))  # and its port is free again
        s.listen()
