"""Review and admin commands act for an authenticated account (issue 20, finding 7), sign-in is
throttled (finding 8), and a classified series' CAP message carries no figures (finding 12).

Real parts: a home with the real FRED UNRATE series ingested through `ews ingest file`
(classified confidential for the CAP test), alerts on its three highest readings in the DuckDB
warehouse, accounts, tokens and failures in the real control store, and `ews` itself
(`pipelines.cli.main.main`).
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from alerts.cap import parse_cap, validate_cap
from core.settings import load_settings
from pipelines.cli.credentials import operator
from pipelines.cli.main import main
from pipelines.dashboard_sync import sync_dashboard
from warehouse import Warehouse, alerting, credentials, users

ROOT = Path(__file__).resolve().parent.parent
UNRATE = ROOT / "tests" / "data" / "fred_UNRATE.csv"
T0 = datetime(2026, 11, 22, 0, 38, 5)
PASSWORD = {"viewer": "viewer-pass-1234", "analyst": "analyst-pass-1234", "duty_officer": "duty-pass-1234"}


def _home(tmp_path: Path, classification: str) -> Path:
    home = tmp_path / "home"
    code = main(
        [
            "--home",
            str(home),
            "ingest",
            "file",
            str(UNRATE),
            "--format",
            "fred_csv",
            "--option",
            "unique_id=unrate",
            "--option",
            "frequency=MS",
            "--option",
            f"classification={classification}",
            "--quiet",
        ]
    )
    assert code == 0
    settings = load_settings(home)
    raw = pl.read_csv(UNRATE, try_parse_dates=True).drop_nulls("value")
    peaks = raw.sort("value", descending=True).head(3)  # the three highest real readings
    rows = [
        {
            "alert_id": f"a_unrate_{i}",
            "run_id": "r_t",
            "unique_id": "unrate",
            "domain": "market",
            "region": ["US", "US-Midwest", "US-South"][i],
            "hazard": "market_risk",
            "level": ["red", "orange", "yellow"][i],
            "status": "open",
            "ds": datetime.combine(day, datetime.min.time()),
            "score": 0.999,
            "evidence": json.dumps({"value": value, "classification": classification}),
            "opened_at": T0,
            "updated_at": T0,
            "release_state": "pending",
            "expires_at": None,
        }
        for i, (day, value) in enumerate(peaks.iter_rows())
    ]
    with Warehouse.open(settings.warehouse_path) as wh:
        alerting.upsert_alert_rows(wh, pl.DataFrame(rows), run_id="r_t")
    con = users.connect_control(users.control_path(settings))
    for role, password in PASSWORD.items():
        users.add_user(con, name=f"{role}_user", role=role, password=password, at=T0)
    con.close()
    return home


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("EWS_TOKEN", raising=False)
    return _home(tmp_path, "public")


def _token(home: Path, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["--home", str(home), "users", "token", name, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["token"]


def _alert(home: Path, alert_id: str = "a_unrate_0") -> dict:
    with Warehouse.open(load_settings(home).warehouse_path) as wh:
        return alerting.read_alerts_full(wh, alert_ids=[alert_id]).row(0, named=True)


def _audit(home: Path, action: str) -> list[tuple]:
    settings = load_settings(home)
    with Warehouse.open(settings.warehouse_path) as wh:
        sync_dashboard(wh, settings)  # audit entries queued in the control store land here
        return wh._execute("SELECT actor, target FROM audit_log WHERE action = ? ORDER BY audit_id", [action])


REVIEW = {
    "ack": [],
    "approve": [],
    "feedback": ["--verdict", "confirmed"],
    "silence": ["--reason", "sensor check", "--hours", "2"],
    "cancel": ["--reason", "wrong series"],
}


def test_a_user_name_alone_is_refused_by_every_review_command(home: Path, capsys) -> None:
    for command, extra in REVIEW.items():
        code = main(["--home", str(home), "alerts", command, "a_unrate_0", "--user", "duty_officer_user", *extra])
        err = capsys.readouterr().err
        assert code == 14, (command, err)
        assert "--user 'duty_officer_user' alone proves nothing" in err and "EWS_TOKEN" in err, err
    alert = _alert(home)
    assert (alert["status"], alert["release_state"]) == ("open", "pending")
    assert not list(load_settings(home).path("alerts").glob("*.xml"))  # no CAP written
    assert _audit(home, "alert.approved") == []


def test_a_viewer_token_cannot_release_a_red_alert(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EWS_TOKEN", _token(home, "viewer_user", capsys))
    for command, extra in REVIEW.items():
        assert main(["--home", str(home), "alerts", command, "a_unrate_0", *extra]) == 13, command
        assert "role 'viewer' may not" in capsys.readouterr().err
    assert _alert(home)["release_state"] == "pending"
    assert not list(load_settings(home).path("alerts").glob("*.xml"))


def test_a_duty_officer_token_approves_and_the_audit_names_that_account(home: Path, capsys, monkeypatch) -> None:
    token = _token(home, "duty_officer_user", capsys)
    monkeypatch.setenv("EWS_TOKEN", token)
    code = main(["--home", str(home), "alerts", "approve", "a_unrate_1", "--user", "viewer_user"])
    assert code == 14 and "differs from the account of EWS_TOKEN" in capsys.readouterr().err
    assert main(["--home", str(home), "alerts", "approve", "a_unrate_0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cap_published"]
    assert _alert(home)["release_state"] == "released"
    assert _audit(home, "alert.approved") == [("duty_officer_user", "a_unrate_0")]
    # a new token replaces the old; removing the account kills its token
    fresh = _token(home, "duty_officer_user", capsys)
    assert main(["--home", str(home), "alerts", "approve", "a_unrate_1"]) == 14
    assert "not a valid API token" in capsys.readouterr().err
    monkeypatch.setenv("EWS_TOKEN", fresh)
    assert main(["--home", str(home), "users", "remove", "duty_officer_user"]) == 0
    assert main(["--home", str(home), "alerts", "approve", "a_unrate_1"]) == 14
    assert _alert(home, "a_unrate_1")["release_state"] == "pending"
    con = users.connect_control(users.control_path(load_settings(home)))
    assert con.execute("SELECT count(*) FROM api_tokens").fetchone()[0] == 0  # hashes only, and none left
    con.close()


def test_password_stdin_authenticates_under_the_sign_in_throttle(home: Path, capsys, monkeypatch) -> None:
    argv = ["--home", str(home), "alerts", "ack", "a_unrate_0", "--user", "analyst_user", "--password-stdin"]
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong-password\n"))
    assert main(argv) == 14 and "unknown user or wrong password" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD["analyst"] + "\n"))
    assert main(argv) == 14  # the right password, too soon after a failure: held
    assert "too many failed sign-ins" in capsys.readouterr().err
    assert main(["--home", str(home), "users", "unlock", "analyst_user", "--client", operator()]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD["analyst"] + "\n"))
    assert main(argv) == 0, capsys.readouterr().err
    assert _audit(home, "alert.acknowledged")[-1][0] == "analyst_user"
    assert [a for a, _ in _audit(home, "session.sign_in_failed")] == ["analyst_user"]
    assert _audit(home, "session.unlocked")[0][1] == "analyst_user"


def test_thirty_wrong_passwords_lock_the_account_until_an_admin_or_time_clears_it(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    con = users.connect_control(users.control_path(settings))
    users.add_user(con, name="admin_a", role="admin", password="the-right-one", at=T0)
    policy = credentials.ThrottlePolicy.from_settings(settings)  # shipped: 1 s doubling, lock after 10 in 15 min
    at, outcomes = T0, []
    for _ in range(30):  # 30 tries in 39 s, as in the issue
        try:
            credentials.sign_in(con, "admin_a", "wrong", client="203.0.113.7", at=at, policy=policy, via="local")
        except credentials.SignInHeldError:
            outcomes.append("held")
        except users.AuthenticationError as exc:
            outcomes.append("failed")
            assert exc.problem == "unknown user or wrong password"
        at += timedelta(seconds=1.3)
    assert outcomes.count("failed") == 6  # waits of 1, 2, 4, 8, 16 s fit in 39 s; the 6th failure's 32 s do not
    with pytest.raises(credentials.SignInHeldError, match="too many failed sign-ins"):  # the right one: held
        credentials.sign_in(con, "admin_a", "the-right-one", client="203.0.113.7", at=at, policy=policy, via="local")
    # an attacker who waits out every delay: the 10th failure within 15 min locks the account
    while True:
        hold = credentials.hold_on(con, account="admin_a", client="203.0.113.7", at=at, policy=policy)
        if hold is not None and hold.locked:
            break
        at = at if hold is None else hold.until
        with pytest.raises(users.AuthenticationError):
            credentials.sign_in(con, "admin_a", "wrong", client="203.0.113.7", at=at, policy=policy, via="local")
    assert hold.failures == 10 and at - T0 < policy.window
    # no failure came sooner than the delay of the one before (1 s, doubling, at most 60 s)
    failures = con.execute("SELECT failed_at FROM sign_in_failures WHERE scope = 'account'").fetchall()
    gaps = [
        (datetime.fromisoformat(b[0]) - datetime.fromisoformat(a[0])).total_seconds()
        for a, b in zip(failures, failures[1:], strict=False)
    ]
    assert all(gap >= policy.delay(n).total_seconds() for n, gap in enumerate(gaps[:9], start=1)), gaps
    assert [policy.delay(n).total_seconds() for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    with pytest.raises(credentials.SignInHeldError, match="sign-in locked"):
        credentials.sign_in(con, "admin_a", "the-right-one", client="198.51.100.2", at=at, policy=policy, via="local")
    # an unknown name gets the very same answers
    for _ in range(2):
        with pytest.raises(users.AuthenticationError) as caught:
            credentials.sign_in(con, "nobody", "x", client="198.51.100.9", at=at, policy=policy, via="local")
    assert "too many failed sign-ins for this account name" in caught.value.problem
    # time clears it ...
    later = at + policy.lock + timedelta(seconds=1)
    assert credentials.sign_in(
        con, "admin_a", "the-right-one", client="198.51.100.2", at=later, policy=policy, via="local"
    )
    # ... and so does an admin
    for i in range(10):
        with pytest.raises(users.AuthenticationError):
            credentials.sign_in(
                con, "admin_a", "wrong", client="192.0.2.1", at=later + timedelta(minutes=i), policy=policy, via="local"
            )
    with pytest.raises(credentials.SignInHeldError, match="locked"):
        credentials.sign_in(
            con,
            "admin_a",
            "the-right-one",
            client="192.0.2.2",
            at=later + timedelta(minutes=11),
            policy=policy,
            via="l",
        )
    assert credentials.clear_failures(con, account="admin_a") == 10
    assert credentials.sign_in(
        con, "admin_a", "the-right-one", client="192.0.2.2", at=later + timedelta(minutes=11), policy=policy, via="l"
    )
    actions = [r[0] for r in con.execute("SELECT action FROM review_inbox WHERE kind = 'audit'")]
    assert actions.count("session.sign_in_locked") >= 2 and "session.sign_in_held" in actions
    con.close()


def test_a_confidential_series_cap_carries_level_area_and_advice_not_its_numbers(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EWS_TOKEN", raising=False)
    home = _home(tmp_path, "confidential")
    monkeypatch.setenv("EWS_TOKEN", _token(home, "duty_officer_user", capsys))
    assert main(["--home", str(home), "alerts", "approve", "a_unrate_0", "--json"]) == 0
    [identifier] = json.loads(capsys.readouterr().out)["cap_published"]
    xml = (load_settings(home).path("alerts") / f"{identifier}.xml").read_bytes()
    assert validate_cap(xml) == []
    cap = parse_cap(xml)
    text = xml.decode("utf-8")
    value = json.loads(_alert(home)["evidence"])["value"]
    for figure in (f"{value}", f"{value:g}", "0.9990", "0.999"):
        assert figure not in text, figure
    assert "<severity>Extreme</severity>" in text and "<areaDesc>" in text and "<instruction>" in text
    assert "<certainty>Unknown</certainty>" in text and "EWS_CLASSIFICATION" in text and "confidential" in text
    assert cap["identifier"] == identifier
    # configurable per classification: "full" for confidential brings the figures back
    toml = home / "ews.toml"
    lines = toml.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("cap_detail = ") for line in lines)
    toml.write_text(
        "\n".join(
            'cap_detail = { public = "full", internal = "full", confidential = "full", secret = "level" }'
            if line.startswith("cap_detail = ")
            else line
            for line in lines
        )
        + "\n",
        encoding="utf-8",
    )
    assert main(["--home", str(home), "alerts", "approve", "a_unrate_1", "--json"]) == 0
    [full] = json.loads(capsys.readouterr().out)["cap_published"]
    text = (load_settings(home).path("alerts") / f"{full}.xml").read_text(encoding="utf-8")
    assert "0.9990" in text and "EWS_CLASSIFICATION" not in text
