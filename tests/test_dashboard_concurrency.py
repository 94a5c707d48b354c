"""The dashboard while the engine writes: a real second process holds the DuckDB warehouse.

The writer is a child process that opens the warehouse for writing (DuckDB's file lock),
ingests a real FRED file, and holds the lock until told to finish; then it runs the same
end-of-run hook as `ews run` (pipelines.dashboard_sync.sync_dashboard). Meanwhile the
dashboard (AppTest on the real app) must load every page from its read snapshot and accept
review actions into the inbox, and `ews serve`'s supervisor (its real loop on a thread) finds
the warehouse held and leaves them queued; when the writer finishes, every action is in the
warehouse.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from core.errors import WarehouseLockedError
from core.settings import load_settings
from tests.dashboard_home import PASSWORD, copy_home, supervisor
from tests.sql import sql_rows
from warehouse import Warehouse
from warehouse.review_inbox import drain, enqueue, last_sync_check, pending_count
from warehouse.users import connect_control, control_path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboards" / "app.py"
PAGES = ("overview", "markets", "hazards", "alert_inbox", "models", "data", "operations", "audit")
FRED = ROOT / "tests" / "data" / "fred_UNRATE.csv"

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from core.settings import load_settings
    from pipelines.cli.main import open_warehouse
    from pipelines.dashboard_sync import sync_dashboard
    from ingest.batches import ingest_file

    settings = load_settings(sys.argv[1])
    with open_warehouse(settings) as wh:
        result = ingest_file(wh, settings, Path(sys.argv[2]), "fred_csv",
                             options={"unique_id": "unrate_during_lock", "frequency": "MS"})
        print("holding", result.status, flush=True)
        sys.stdin.readline()  # hold the write lock until the test says so
        synced = sync_dashboard(wh, settings)
        print("released", synced.applied, synced.refused, flush=True)
""")


def _db(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture()
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = copy_home(tmp_path_factory, "concurrency")
    monkeypatch.setenv("EWS_HOME", str(home))
    return home


def test_pages_load_and_actions_queue_while_a_writer_holds_the_warehouse(home: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), str(FRED)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().split() == ["holding", "committed"], writer.stderr.read()
        # the live file is locked: even a read-only open fails (why the dashboard reads snapshots)
        with pytest.raises(WarehouseLockedError):
            Warehouse.open(home / "warehouse.duckdb", read_only=True)

        with supervisor(home):  # looks every 0.2 s, finds the warehouse held each time
            at = AppTest.from_file(str(APP), default_timeout=120).run()
            at.text_input(key="signin_name").input("duty_officer_user")
            at.text_input(key="signin_password").input(PASSWORD["duty_officer"])
            at.button(key="signin_submit").click().run()
            assert [t.value for t in at.title] == ["Overview"]
            for page in PAGES[:-1]:
                at.switch_page(f"pages/{page}.py").run()
                assert not at.exception and not at.error and at.title, page
            at.switch_page("pages/alert_inbox.py").run()
            pending = [o for o in at.selectbox(key="inbox_alert").options if " · pending · " in o]
            alert_id = pending[0].rsplit(" · ", 1)[-1]  # an open alert awaiting a duty officer
            at.selectbox(key="inbox_alert").set_value(alert_id).run()
            at.button(key="do_approve").click().run()
            assert any("queued" in i.value for i in at.info), [i.value for i in at.info]
            assert any("The engine holds the warehouse" in i.value for i in at.info)
            at.button(key="do_approve").click().run()  # a second approval, also queued
            at.text_input(key="review_note").input("seen during the run").run()
            at.button(key="do_acknowledge").click().run()

        con = connect_control(control_path(load_settings(home)))
        review_rows = con.execute(
            "SELECT action, state FROM review_inbox WHERE kind = 'review' ORDER BY seq"
        ).fetchall()
        assert review_rows == [("approve", "queued"), ("approve", "queued"), ("acknowledge", "queued")]
        assert pending_count(con) >= 4  # + the sign-in audit entry
        check = last_sync_check(con)  # what the page read to say "queued" at once
        assert check.outcome == "locked" and "queued" in check.detail, check

        out, err = writer.communicate("go\n", timeout=120)
        assert writer.returncode == 0, err
        released = out.split()
        assert released[0] == "released" and int(released[2]) == 1, (
            out,
            con.execute("SELECT kind, action, state, message FROM review_inbox ORDER BY seq").fetchall(),
        )
        assert int(released[1]) >= 3, (
            out,
            con.execute("SELECT kind, action, state, message FROM review_inbox ORDER BY seq").fetchall(),
        )
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()

    states = con.execute(
        "SELECT action, state, message FROM review_inbox WHERE kind = 'review' ORDER BY seq"
    ).fetchall()
    con.close()
    assert [s[:2] for s in states] == [("approve", "applied"), ("approve", "refused"), ("acknowledge", "applied")]
    assert "already released" in states[1][2]
    assert _db(home, "SELECT release_state FROM alerts WHERE alert_id = ?", [alert_id]) == [("released",)]
    audit = _db(
        home,
        "SELECT actor, action FROM audit_log WHERE target = ? AND actor = 'duty_officer_user' ORDER BY audit_id",
        [alert_id],
    )
    assert audit == [
        ("duty_officer_user", "alert.approved"),
        ("duty_officer_user", "review.refused"),
        ("duty_officer_user", "alert.acknowledged"),
    ]
    assert (
        _db(home, "SELECT count(*) FROM audit_log WHERE action = 'session.signed_in' AND actor = 'duty_officer_user'")[
            0
        ][0]
        >= 1
    )
    # the snapshot published at the end of the writer's run carries its ingest and the actions
    at.switch_page("pages/markets.py").run()
    assert any("unrate_during_lock" in o for o in at.selectbox(key="market_uid").options)


def test_a_second_drain_never_applies_an_action_twice(home: Path) -> None:
    settings = load_settings(home)
    con = connect_control(control_path(settings))
    with Warehouse.open(settings.warehouse_path) as wh:
        alert_id = sql_rows(wh, "SELECT alert_id FROM alerts WHERE status = 'open' ORDER BY alert_id LIMIT 1")[0][0]
        action_id = enqueue(
            con,
            action="feedback",
            alert_id=alert_id,
            user="analyst_user",
            role="analyst",
            at=datetime(2011, 3, 12, 12),
            verdict="confirmed",
            note="drain twice",
        )
        first = drain(wh, con, now=datetime(2011, 3, 12, 12, 1))
        assert first.applied == [action_id]
        # a crash after the warehouse commit but before the inbox update looks like this:
        with con:
            con.execute("UPDATE review_inbox SET state = 'queued' WHERE action_id = ?", [action_id])
        second = drain(wh, con, now=datetime(2011, 3, 12, 12, 2))
        assert second.applied == [] and second.already == [action_id]
        feedback = sql_rows(wh, "SELECT count(*) FROM feedback WHERE note = 'drain twice'")[0][0]
    assert feedback == 1
    assert con.execute("SELECT state FROM review_inbox WHERE action_id = ?", [action_id]).fetchone() == ("applied",)
    con.close()


def test_the_control_store_takes_writes_from_two_processes(home: Path) -> None:
    path = control_path(load_settings(home))
    code = (
        "import sys; from datetime import datetime; from warehouse.users import connect_control; "
        "from warehouse.review_inbox import enqueue_audit; con = connect_control(sys.argv[1]); "
        "[enqueue_audit(con, action='probe', user='p' + sys.argv[2], at=datetime(2011, 3, 12)) "
        "for _ in range(50)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(i)], cwd=ROOT) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with sqlite3.connect(path) as con:
        counts = dict(
            con.execute("SELECT user_name, count(*) FROM review_inbox WHERE action = 'probe' GROUP BY 1").fetchall()
        )
        seqs = [r[0] for r in con.execute("SELECT seq FROM review_inbox ORDER BY seq").fetchall()]
    assert counts == {"p0": 50, "p1": 50}
    assert len(seqs) == len(set(seqs))  # the order of the queue is total


def test_a_queued_approval_is_refused_if_the_role_was_lowered_before_it_applies(home: Path) -> None:
    from pipelines.dashboard_sync import sync_dashboard
    from warehouse.users import set_role

    settings = load_settings(home)
    con = connect_control(control_path(settings))
    with Warehouse.open(settings.warehouse_path) as wh:
        pending = sql_rows(
            wh,
            "SELECT alert_id FROM alerts WHERE status = 'open' AND release_state = 'pending' ORDER BY alert_id LIMIT 1",
        )
        assert pending, "the test home has no alert waiting for approval"
        alert_id = pending[0][0]
        # queued while the engine held the warehouse, by a duty officer ...
        action_id = enqueue(
            con,
            action="approve",
            alert_id=alert_id,
            user="duty_officer_user",
            role="duty_officer",
            at=datetime(2011, 3, 12, 12),
        )
        # ... who is made a viewer before the engine gets to apply it
        set_role(con, "duty_officer_user", "viewer", at=datetime(2011, 3, 12, 12, 1))
        result = sync_dashboard(wh, settings)
        state = sql_rows(wh, "SELECT release_state FROM alerts WHERE alert_id = ?", alert_id)[0][0]
        audit = sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'review.refused' AND target = ?", alert_id)
    row = con.execute("SELECT state, message FROM review_inbox WHERE action_id = ?", [action_id]).fetchone()
    con.close()
    assert result.refused == 1 and result.applied == 0
    assert state == "pending"
    assert row[0] == "refused" and "refused at apply time" in row[1] and "viewer" in row[1]
    assert len(audit) == 1
