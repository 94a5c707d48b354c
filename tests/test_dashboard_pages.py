"""AppTest on the real demo warehouse: every page, the full role-by-action matrix on the
server, absent and expired sessions.

Each test drives the real entry script (dashboards/app.py) through Streamlit's AppTest:
sign-in through the form, real scrypt hashes, the real read snapshot published by `ews demo`,
and review actions that go through the control-store inbox into the DuckDB warehouse, applied
by `ews serve`'s supervisor (its real loop on a thread here, tests/dashboard_home.supervisor).
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard_home import PASSWORD, ROLES, copy_home, settle, supervisor

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboards" / "app.py"
PAGES = ("overview", "markets", "hazards", "alert_inbox", "models", "data", "operations")
TIMEOUT = 120

# The documented matrix, written out (alerts/permissions.py must match it, not the reverse).
EXPECTED = {
    "viewer": {"pages.read", "cap.download"},
    "analyst": {"pages.read", "cap.download", "alert.acknowledge", "alert.feedback", "data.ingest"},
    "duty_officer": {
        "pages.read",
        "cap.download",
        "alert.acknowledge",
        "alert.feedback",
        "data.ingest",
        "alert.approve",
        "alert.reject",
        "alert.silence",
        "alert.cancel",
        "llm.switch",
        "series.vet",
    },
    "admin": {
        "pages.read",
        "cap.download",
        "alert.acknowledge",
        "alert.feedback",
        "data.ingest",
        "alert.approve",
        "alert.reject",
        "alert.silence",
        "alert.cancel",
        "llm.switch",
        "series.vet",
        "audit.read",
        "users.manage",
        "llm.endpoints",
        "recipients.manage",
    },
}
BUTTONS = {
    "do_acknowledge": "alert.acknowledge",
    "do_feedback": "alert.feedback",
    "do_approve": "alert.approve",
    "do_reject": "alert.reject",
    "do_silence": "alert.silence",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_home(tmp_path_factory, "pages")


@pytest.fixture()
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EWS_HOME", str(home))
    return home


def _signed_in(role: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.text_input(key="signin_name").input(f"{role}_user")
    at.text_input(key="signin_password").input(PASSWORD[role])
    at.button(key="signin_submit").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Overview"], [e.value for e in at.error]
    return at


def _texts(at: AppTest) -> str:
    parts = (
        [m.value for m in at.markdown]
        + [c.value for c in at.caption]
        + [w.value for w in at.warning]
        + [e.value for e in at.error]
        + [i.value for i in at.info]
    )
    # as a reader sees it: ui.safe_md's backslash escapes removed
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def _db(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_page_renders_real_data_for_an_admin(env: Path) -> None:
    at = _signed_in("admin")
    open_red = _db(env, "SELECT count(*) FROM alerts WHERE status = 'open' AND level = 'red'")[0][0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["RED open alerts"] == str(open_red) and open_red >= 1
    assert "AI-assisted" in _texts(at) and "Exercise: replay as of 2011-03-12" in _texts(at)
    assert at.get("deck_gl_json_chart"), "the overview map is missing"
    for page in (*PAGES, "audit"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
        assert at.title, page
        assert "AI-assisted" in _texts(at), page  # the risk notice stands on every page
    at.switch_page("pages/markets.py").run()
    assert len(at.get("vega_lite_chart")) >= 2  # composite + indicator fan charts
    at.switch_page("pages/hazards.py").run()
    assert len(at.get("vega_lite_chart")) >= 4  # one panel per hazard tab, plus events
    at.switch_page("pages/alert_inbox.py").run()
    n_open = _db(env, "SELECT count(*) FROM alerts WHERE status = 'open'")[0][0]
    assert len(at.selectbox(key="inbox_alert").options) == n_open
    assert "auxiliary and for reference only" in _texts(at)  # the judgment's AI label is shown
    at.switch_page("pages/audit.py").run()
    audit = at.dataframe[0].value
    assert "batch.committed" in set(audit["action"])
    # no page holds the live warehouse, not even for reading: a run could take it right now
    from warehouse import Warehouse

    with Warehouse.open(env / "warehouse.duckdb", wait_seconds=0.0):
        pass


def test_markets_shows_the_stress_composite_the_cycle_graded(env: Path) -> None:
    import json

    import pyarrow as pa

    from alerts.judgment import percent
    from core.settings import load_settings

    cfg = load_settings(env).markets
    rows = _db(
        env,
        f"SELECT ds, level, CAST(evidence AS VARCHAR) FROM risk_grades WHERE unique_id = '{cfg.composite_uid}' "
        "ORDER BY ds DESC LIMIT 1",
    )
    assert rows, "the demo cycle graded no stress composite"
    ds, level, raw = rows[0]
    hazard = json.loads(raw)["hazard"]
    assert hazard["model"] == "klr_signals"
    at = _signed_in("viewer")
    at.switch_page("pages/markets.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "AI-assisted" in _texts(at)
    subheaders = [h.value for h in at.subheader]
    assert subheaders[0] == "Stress composite"
    assert "Published stress index (comparison)" in subheaders and "Indicators" in subheaders
    text = _texts(at).replace("\\", "")  # safe_md escapes every metacharacter
    assert f"Newest level **{level.upper()}** at {ds:%Y-%m-%d}" in text
    entry = hazard["targets"][hazard["target"]]
    assert (
        f"P({hazard['event']} within {hazard['window_days']:g} days) = {percent(hazard['probability'])}, KLR signals"
        in text
    )
    assert f"training base rate {percent(entry['base_rate'])}" in text
    # composite fan chart, its level timeline, the contributions, the sub-indices, the indicator's panel
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titles = [str(spec.get("title", "")) for spec in specs]
    assert "segment contributions at the newest grade" in titles
    assert "segment sub-indices" in titles
    contributions = next(c for c in at.get("vega_lite_chart") if "contributions" in c.proto.spec)
    bars = pa.ipc.open_stream(contributions.proto.datasets[0].data.data).read_all().to_pylist()
    assert [(b["segment"], b["contribution"]) for b in bars] == [
        (s["segment"], s["contribution"]) for s in hazard["segments"]
    ]
    assert {b["segment"] for b in bars} == set(cfg.segments)
    signals = next(d.value for d in at.dataframe if "NSR" in d.value.columns)
    assert list(signals.columns) == ["indicator", "value", "percentile", "threshold", "NSR", "signalling"]
    assert list(signals["indicator"]) == [s["indicator"] for s in hazard["signals"]]
    assert list(signals["signalling"]) == [s["signalling"] for s in hazard["signals"]]
    # an indicator's threshold is on its percentile (its causal rank), shown beside its value
    ranks = [s["rank"] for s in hazard["signals"]]
    assert all(r is not None and 0.0 < r <= 1.0 for r in ranks)
    assert signals["percentile"].tolist() == pytest.approx(ranks)
    published, indicators = [d.value for d in at.dataframe if "unique_id" in d.value.columns]
    assert list(published["unique_id"]) == ["stlfsi4"]
    assert cfg.composite_uid not in set(indicators["unique_id"]) and "stlfsi4" not in set(indicators["unique_id"])
    assert {"sp500_monthly", "dgs10"} <= set(indicators["unique_id"])


def test_markets_says_how_to_get_a_composite_when_none_is_stored(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same warehouse under settings whose composite id names no stored series
    other = tmp_path / "home"
    shutil.copytree(home, other)
    toml = other / "ews.toml"
    toml.write_text(toml.read_text().replace('composite_id = "us_stress"', 'composite_id = "eu_stress"', 1))
    monkeypatch.setenv("EWS_HOME", str(other))
    at = _signed_in("viewer")
    at.switch_page("pages/markets.py").run()
    assert not at.exception, at.exception
    info = " ".join(i.value for i in at.info)
    assert "No stress composite" in info and "`ews demo`" in info and "`ews run`" in info
    assert "Published stress index (comparison)" in [h.value for h in at.subheader]
    assert not any("NSR" in d.value.columns for d in at.dataframe)


def test_the_full_role_by_action_matrix_is_enforced_on_the_server(env: Path) -> None:
    from alerts.permissions import ACTIONS, MATRIX, AuthorizationError, authorize

    assert {role: set(actions) for role, actions in MATRIX.items()} == EXPECTED
    for role in ROLES:
        for action in ACTIONS:
            if action in EXPECTED[role]:
                authorize(role, action)
            else:
                with pytest.raises(AuthorizationError, match="may not"):
                    authorize(role, action)
    with supervisor(env) as loop:
        for role in ROLES:
            at = _signed_in(role)
            at.switch_page("pages/alert_inbox.py").run()
            alert_id = at.selectbox(key="inbox_alert").value
            at.text_input(key="review_reason").input(f"matrix test by {role}").run()
            for key, action in BUTTONS.items():
                verb = key.removeprefix("do_")
                button = at.button(key=key)
                assert button.disabled is (action not in EXPECTED[role]), (role, key)
                if action in EXPECTED[role]:
                    button.click().run()
                    assert not at.exception, (role, key, at.exception)
                    shown = [m.value for m in (*at.success, *at.error, *at.info)]
                    assert any(m.startswith(f"{verb}: ") for m in shown), (role, key, shown)
                    assert not any("may not" in m for m in shown), (role, key, shown)
                else:
                    # a tampered client can call the action anyway: the server refuses it
                    forged = AppTest.from_function(_forged_submit, args=(verb, alert_id), default_timeout=TIMEOUT)
                    forged.session_state["ews_session"] = at.session_state["ews_session"]
                    forged.run()
                    assert not forged.exception, forged.exception
                    assert [e.value for e in forged.error] == [f"refused: role '{role}' may not"], (role, key)
            settle(loop, env)
            applied = _db(
                env, f"SELECT action FROM review_inbox_applied WHERE actor = '{role}_user' AND kind = 'review'"
            )
            assert {a for (a,) in applied} == {
                k.removeprefix("do_") for k, a in BUTTONS.items() if a in EXPECTED[role]
            }, role
            at.switch_page("pages/audit.py").run()
            if "audit.read" in EXPECTED[role]:
                assert at.title[0].value == "Audit log"
            else:
                assert not at.title and f"role '{role}' may not read the audit log" in _texts(at)


def _forged_submit(verb: str, alert_id: str) -> None:
    """A page that calls the server-side action directly, as a tampered client could."""
    from datetime import timedelta

    import streamlit as st

    from alerts.permissions import AuthorizationError
    from dashboards import actions, context

    payload = {
        "reject": {"reason": "forged"},
        "feedback": {"verdict": "confirmed"},
        "silence": {"reason": "forged", "until": context.now() + timedelta(hours=1)},
    }
    try:
        actions.submit(verb, alert_id=alert_id, **payload.get(verb, {}))
    except AuthorizationError as exc:
        st.error("refused: " + exc.problem.split(" may not")[0] + " may not")
    else:
        st.success("accepted")


def test_actions_are_in_the_warehouse_audit_log_with_the_user(env: Path) -> None:
    with supervisor(env) as loop:
        at = _signed_in("duty_officer")
        at.switch_page("pages/alert_inbox.py").run()
        pending = [o for o in at.selectbox(key="inbox_alert").options if " · pending · " in o]
        alert_id = pending[-1].rsplit(" · ", 1)[-1]  # an open alert awaiting a duty officer
        at.selectbox(key="inbox_alert").set_value(alert_id).run()
        # seen once in a loaded run: the page stopped before its buttons; say why if it does again
        assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
        at.button(key="do_approve").click().run()
        assert "approve: applied." in [s.value for s in at.success]
        # the supervisor went on to publish the CAP message and a snapshot; read the file once
        # it has let go
        settle(loop, env)
        rows = _db(
            env, f"SELECT actor, action FROM audit_log WHERE target = '{alert_id}' AND action = 'alert.approved'"
        )
        assert rows == [("duty_officer_user", "alert.approved")]
        assert _db(env, f"SELECT release_state FROM alerts WHERE alert_id = '{alert_id}'")[0][0] == "released"
        signins = _db(
            env, "SELECT count(*) FROM audit_log WHERE action = 'session.signed_in' AND actor = 'duty_officer_user'"
        )[0][0]
        assert signins >= 1
        at.button(key="do_approve").click().run()  # a second approval does not fit the state
        assert any("already released" in e.value for e in at.error)
        settle(loop, env)
        refused = _db(env, f"SELECT count(*) FROM audit_log WHERE target = '{alert_id}' AND action = 'review.refused'")[
            0
        ][0]
        assert refused == 1


def test_absent_session_sees_only_sign_in_and_pages_refuse(env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert [t.value for t in at.title] == ["Sign in"]
    assert "AI-assisted" in _texts(at)
    at.text_input(key="signin_name").input("admin_user")
    at.text_input(key="signin_password").input("wrong password!")
    at.button(key="signin_submit").click().run()
    assert [e.value for e in at.error] == ["unknown user or wrong password"]
    assert [t.value for t in at.title] == ["Sign in"]
    for page in (*PAGES, "audit"):  # a page script reached without a session (direct URL)
        direct = AppTest.from_file(str(ROOT / "dashboards" / "pages" / f"{page}.py"), default_timeout=TIMEOUT).run()
        assert [t.value for t in direct.title] == ["Sign in"], page  # the refusal, then the sign-in form
        assert any("not signed in" in e.value for e in direct.error), page


def test_expired_session_is_refused_on_every_page_and_action(env: Path) -> None:
    at = _signed_in("admin")
    session = dict(at.session_state["ews_session"])
    session["expires_at"] = session["signed_in_at"] - timedelta(seconds=1)  # ended already
    at.session_state["ews_session"] = session
    at.run()  # the next interaction after expiry: the page refuses, the session is dropped
    assert [t.value for t in at.title] == ["Sign in"] and any("not signed in" in e.value for e in at.error)
    assert "ews_session" not in at.session_state
    assert at.session_state["ews_notice"] == "Your session expired; sign in again."
    before = _db(env, "SELECT count(*) FROM review_inbox_applied")[0][0]
    inbox = AppTest.from_file(str(ROOT / "dashboards" / "pages" / "alert_inbox.py"), default_timeout=TIMEOUT)
    inbox.session_state["ews_session"] = session
    inbox.run()
    assert [t.value for t in inbox.title] == ["Sign in"] and any("not signed in" in e.value for e in inbox.error)
    assert _db(env, "SELECT count(*) FROM review_inbox_applied")[0][0] == before


def test_role_change_and_removal_apply_to_a_live_session(env: Path) -> None:
    from core.settings import load_settings
    from warehouse import users

    at = _signed_in("analyst")
    con = users.connect_control(users.control_path(load_settings(env)))
    try:
        users.set_role(con, "analyst_user", "viewer", at=datetime(2011, 3, 12, 10))
        at.switch_page("pages/alert_inbox.py").run()
        assert at.button(key="do_acknowledge").disabled  # the page re-read the role
        forged = AppTest.from_function(_forged_submit, args=("acknowledge", "a_any"), default_timeout=TIMEOUT)
        forged.session_state["ews_session"] = at.session_state["ews_session"]
        forged.run()
        assert [e.value for e in forged.error] == ["refused: role 'viewer' may not"]
        users.remove_user(con, "analyst_user")
        at.run()
        assert [t.value for t in at.title] == ["Sign in"] and any("not signed in" in e.value for e in at.error)
        assert at.session_state["ews_notice"] == "Your account was removed."
    finally:
        if users.get_user(con, "analyst_user") is None:
            users.add_user(
                con, name="analyst_user", role="analyst", password=PASSWORD["analyst"], at=datetime(2011, 3, 12, 11)
            )
        con.close()
