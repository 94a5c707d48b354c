"""`ews users ...`, `ews metrics` and `ews serve` on the real demo home; password hashing; safe text."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from alerts.permissions import ROLES, AuthorizationError, authorize, parse_role
from core.settings import load_settings
from pipelines.cli.main import main
from tests.dashboard_home import copy_home
from warehouse import users
from warehouse.review_inbox import last_sync_check

ROOT = Path(__file__).resolve().parent.parent

# Prometheus text format 0.0.4: `name{label="value",...} number`
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r"-?[0-9.e+-]+$"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_home(tmp_path_factory, "cli")


def _ews(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_users_commands_manage_accounts_and_write_the_audit_log(home, capsys, monkeypatch) -> None:
    h = ("--home", str(home))
    code, out, _ = _ews(
        capsys,
        monkeypatch,
        *h,
        "users",
        "add",
        "zhang.wei",
        "--role",
        "duty-officer",
        "--password-stdin",
        "--json",
        stdin="long enough pw\n",
    )
    assert code == 0 and json.loads(out)["user"]["role"] == "duty_officer"
    code, _, err = _ews(
        capsys,
        monkeypatch,
        *h,
        "users",
        "add",
        "zhang.wei",
        "--role",
        "viewer",
        "--password-stdin",
        stdin="another pw 123\n",
    )
    assert code == 15 and "already exists" in err
    code, _, err = _ews(
        capsys, monkeypatch, *h, "users", "add", "shorty", "--role", "viewer", "--password-stdin", stdin="short\n"
    )
    assert code == 15 and "at least 8 characters" in err
    code, _, err = _ews(
        capsys, monkeypatch, *h, "users", "add", "x", "--role", "chief", "--password-stdin", stdin="long enough pw\n"
    )
    assert code == 13 and "use one of viewer, analyst, duty_officer, admin" in err
    code, out, _ = _ews(
        capsys,
        monkeypatch,
        *h,
        "users",
        "add",
        "oidc.person",
        "--role",
        "analyst",
        "--email",
        "Person@Example.org",
        "--json",
    )
    assert code == 0 and json.loads(out)["user"]["password"] is False
    code, out, _ = _ews(capsys, monkeypatch, *h, "users", "set-role", "zhang.wei", "viewer")
    assert code == 0 and "zhang.wei is now viewer" in out
    code, out, _ = _ews(capsys, monkeypatch, *h, "users", "list", "--json")
    listed = {u["name"]: u for u in json.loads(out)}
    assert listed["zhang.wei"]["role"] == "viewer" and listed["oidc.person"]["email"] == "person@example.org"
    code, out, _ = _ews(capsys, monkeypatch, *h, "users", "remove", "zhang.wei")
    assert code == 0 and "removed zhang.wei" in out
    code, _, err = _ews(capsys, monkeypatch, *h, "users", "remove", "zhang.wei")
    assert code == 15 and "no account named 'zhang.wei'" in err
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        mine = "action LIKE 'user.%' AND target IN ('zhang.wei', 'oidc.person')"
        rows = con.execute(f"SELECT action, target FROM audit_log WHERE {mine} ORDER BY audit_id").fetchall()
        actors = {r[0] for r in con.execute(f"SELECT actor FROM audit_log WHERE {mine}").fetchall()}
    assert rows == [
        ("user.added", "zhang.wei"),
        ("user.added", "oidc.person"),
        ("user.role_changed", "zhang.wei"),
        ("user.removed", "zhang.wei"),
    ]
    assert len(actors) == 1 and next(iter(actors)).startswith("cli:")


def test_metrics_print_valid_prometheus_text_with_the_warehouse_figures(home, capsys, monkeypatch) -> None:
    code, out, _ = _ews(capsys, monkeypatch, "--home", str(home), "metrics")
    assert code == 0
    lines = out.splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert samples and all(SAMPLE.match(line) for line in samples), [line for line in samples if not SAMPLE.match(line)]
    declared = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    assert {s.split("{")[0].split()[0] for s in samples} == declared
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in samples}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        red = con.execute(
            "SELECT count(*) FROM alerts WHERE status = 'open' AND level = 'red' AND domain = 'seismic'"
        ).fetchall()[0][0]
        committed = con.execute("SELECT count(*) FROM ingest_batches WHERE status = 'committed'").fetchall()[0][0]
    assert values['ews_alerts_open{domain="seismic",level="red"}'] == red
    assert values['ews_ingest_batches_total{status="committed"}'] == committed
    assert values["ews_review_inbox_pending"] >= 0 and values["ews_snapshot_age_seconds"] >= 0
    assert any(k.startswith("ews_last_run_duration_seconds") for k in values)


def test_serve_stops_its_supervisor_when_streamlit_exits(home) -> None:
    con = users.connect_control(users.control_path(load_settings(home)))
    try:
        assert last_sync_check(con) is None  # no `ews serve` has looked at this home yet
        with socket.socket() as taken:  # Streamlit cannot bind: it exits at once, with an error
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = subprocess.run(
                [sys.executable, "-m", "pipelines.cli", "--home", str(home), "serve", "--port", str(port)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=180,
            )
        assert done.returncode != 0, done.stderr
        assert f"Port {port} is not available" in done.stdout + done.stderr, done.stdout + done.stderr
        check = last_sync_check(con)  # the supervisor looked (at once), then stopped with it
    finally:
        con.close()
    assert check is not None and check.outcome in ("idle", "synced"), check


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = users.hash_password("same password"), users.hash_password("same password")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert "same password" not in first
    assert users.verify_password("same password", first) and users.verify_password("same password", second)
    assert not users.verify_password("same passwore", first)
    assert not users.verify_password("anything", "md5$abc")


def test_sign_in_refuses_wrong_pairs_without_saying_which(tmp_path: Path) -> None:
    from datetime import datetime

    con = users.connect_control(tmp_path / "control.sqlite")
    users.add_user(con, name="li.na", role="analyst", password="correct battery", at=datetime(2011, 3, 12))
    assert users.authenticate(con, "li.na", "correct battery").role == "analyst"
    for name, password in (("li.na", "wrong battery"), ("nobody", "correct battery"), ("li.na", "")):
        with pytest.raises(users.AuthenticationError, match="unknown user or wrong password"):
            users.authenticate(con, name, password)
    stored = con.execute("SELECT password_hash FROM users").fetchone()[0]
    assert "correct battery" not in stored


def test_roles_agree_between_permissions_and_accounts() -> None:
    assert users._ROLES == ROLES  # the control store's CHECK lists the same roles
    assert parse_role("Duty-Officer") == "duty_officer"
    with pytest.raises(AuthorizationError, match="not signed in"):
        authorize(None, "pages.read")
    with pytest.raises(AuthorizationError, match="unknown action"):
        authorize("admin", "alerts.delete_everything")


def test_free_text_is_escaped_for_markdown() -> None:
    from dashboards.ui import safe_md

    probe = "<script>alert(1)</script> [x](javascript:alert(2)) ![i](http://e/x.png) **b**"
    escaped = safe_md(probe)
    assert "<script>" not in escaped and "](" not in escaped and "**" not in escaped
    assert escaped.replace("\\", "") == probe
