"""Clearance on every page (issue 20, finding 12) and the throttled sign-in form (finding 8),
through the real entry script (AppTest) on a copy of the real demo home.

The series of the highest-scoring open alert that has a CAP message is made confidential in
the DuckDB warehouse (as an ingest with ``--option classification=confidential`` would store it)
and a fresh read snapshot is published. A viewer cleared for public data then sees its level
and region but none of its values on any page, nor its CAP XML; after
``ews users set-clearance`` the same account sees them.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from core.clock import utc_now
from core.settings import load_settings
from pipelines.cli.main import main
from tests.dashboard_home import PASSWORD, copy_home
from warehouse import Warehouse
from warehouse.snapshots import publish_snapshot, snapshot_folder

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboards" / "app.py"
PAGES = ("overview", "markets", "hazards", "alert_inbox", "models", "data", "operations")


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    home = copy_home(tmp_path_factory, "clearance")
    settings = load_settings(home)
    with Warehouse.open(settings.warehouse_path) as wh:
        alert = wh._frame(
            "SELECT a.alert_id, a.unique_id, a.score, a.evidence::VARCHAR AS evidence, a.level, a.region "
            "FROM alerts a JOIN cap_messages c USING (alert_id) WHERE a.status = 'open' "
            "ORDER BY a.score DESC, a.alert_id LIMIT 1"
        ).row(0, named=True)
        wh._execute("UPDATE series SET classification = 'confidential' WHERE unique_id = ?", [alert["unique_id"]])
        newest = wh._execute("SELECT max(y) FROM observations WHERE unique_id = ?", [alert["unique_id"]])[0][0]
        alert["y_max"] = newest
        publish_snapshot(wh, snapshot_folder(settings), now=utc_now(), keep=settings.dashboard.snapshots_keep)
    return home, alert


def _signed_in(role: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.text_input(key="signin_name").input(f"{role}_user")
    at.text_input(key="signin_password").input(PASSWORD[role])
    at.button(key="signin_submit").click().run()
    assert [t.value for t in at.title] == ["Overview"], [e.value for e in at.error]
    return at


def _inbox_on(at: AppTest, alert_id: str) -> AppTest:
    at.switch_page("pages/alert_inbox.py").run()
    at.multiselect(key="inbox_status").set_value(["open", "acknowledged", "resolved", "expired", "cancelled"]).run()
    box = at.selectbox(key="inbox_alert")
    assert any(label.endswith(alert_id) for label in box.options)
    box.set_value(alert_id).run()
    assert not at.exception, at.exception
    return at


def _shown(at: AppTest) -> str:
    parts = [m.value for m in (*at.subheader, *at.markdown, *at.caption)] + [str(j.value) for j in at.json]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(str(p) for p in parts)


def test_a_public_viewer_sees_no_value_of_a_confidential_series_on_any_page(classified, monkeypatch) -> None:
    home, alert = classified
    monkeypatch.setenv("EWS_HOME", str(home))
    at = _signed_in("viewer")
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
    at = _inbox_on(at, alert["alert_id"])
    shown = _shown(at)
    assert f"{alert['score']:.4f}" not in shown and "score withheld" in shown
    assert "withheld: confidential data, your clearance is public" in shown  # evidence and judgment
    evidence = json.loads(alert["evidence"])
    assert str(evidence.get("value")) not in shown
    assert alert["level"].upper() in shown  # the level stays, as in the public CAP
    assert not at.get("download_button") and "CAP download withheld" in shown
    table = at.dataframe[0].value
    assert table.loc[table["alert_id"] == alert["alert_id"], "score"].isna().all()

    # the same account, cleared for confidential data: the values come back on the next page
    assert main(["--home", str(home), "users", "set-clearance", "viewer_user", "confidential"]) == 0
    at = _inbox_on(at, alert["alert_id"])
    shown = _shown(at)
    assert f"{alert['score']:.4f}" in shown and "withheld" not in shown
    assert at.get("download_button")


def test_the_sign_in_form_holds_after_a_failure_even_for_the_right_password(classified, monkeypatch) -> None:
    home, _alert = classified
    monkeypatch.setenv("EWS_HOME", str(home))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.text_input(key="signin_name").input("admin_user")
    at.text_input(key="signin_password").input("not the password")
    at.button(key="signin_submit").click().run()
    assert [e.value for e in at.error] == ["unknown user or wrong password"]
    at.text_input(key="signin_password").input(PASSWORD["admin"])
    at.button(key="signin_submit").click().run()
    [refusal] = [e.value for e in at.error]
    assert refusal.startswith("too many failed sign") and [t.value for t in at.title] == ["Sign in"]
    assert main(["--home", str(home), "users", "unlock", "admin_user", "--client", "unknown"]) == 0
    at.button(key="signin_submit").click().run()
    assert [t.value for t in at.title] == ["Overview"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        held = con.execute("SELECT count(*) FROM audit_log WHERE action = 'session.sign_in_held'").fetchone()[0]
    assert held >= 1
