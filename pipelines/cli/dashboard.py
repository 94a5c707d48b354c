"""``ews serve``, ``ews users ...`` and ``ews metrics``: the dashboard's commands.

- ``ews serve [--port P] [--address A]`` applies queued review actions and publishes a read
  snapshot when the warehouse is free, then starts ``streamlit run dashboards/app.py`` on the
  configured EWS_HOME as its child (working directory = EWS_HOME, so
  ``EWS_HOME/.streamlit/secrets.toml`` configures OIDC) and supervises it: every
  ``[dashboard] sync_seconds`` a thread of this process looks at the review inbox and, when
  actions wait and the warehouse is free, applies them, publishes approved alerts as CAP
  (files and deliveries) and a fresh snapshot (:class:`pipelines.dashboard_sync.SyncLoop`).
  It stops when Streamlit exits; SIGTERM or SIGINT is passed on to Streamlit and stops both.
- ``ews users add NAME --role ROLE [--email E] [--clearance C] [--password-stdin]``, ``remove``,
  ``set-role``, ``set-clearance``, ``set-password``, ``token`` (a CLI API token, printed once;
  ``--revoke``), ``unlock`` (clear sign-in failures of a name or ``--client``), ``list``: local
  accounts in the control store. Whoever runs these is the bootstrap admin: the shell owner of
  EWS_HOME can read and write the control store anyway, so ``ews users`` asks for no credential
  and records ``cli:<os user>`` in the audit log; the role check still goes through
  :func:`alerts.permissions.authorize`. Every other review or admin command needs an account's
  credential (:mod:`pipelines.cli.credentials`).
- ``ews metrics``: the Operations page's figures in Prometheus text format, read from the
  newest snapshot (never from the live warehouse, so a scrape can never block a run).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl

from alerts.permissions import authorize, parse_role
from core.clock import utc_now
from core.errors import EWSError, WarehouseLockedError
from core.settings import Settings
from pipelines.cli.credentials import operator
from pipelines.cli.main import init_home, open_warehouse, print_result, setup_logging
from pipelines.dashboard_sync import SyncLoop, sync_dashboard
from warehouse import credentials, review_inbox, users
from warehouse import dashboard_reads as reads
from warehouse.snapshots import current_snapshot, open_snapshot, snapshot_folder

__all__ = ["register", "cmd_serve", "cmd_users", "cmd_metrics", "prometheus_text", "APP_PATH", "SCRIPT_OPTIONS"]

APP_PATH = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"

#: Streamlit options for running the pages, passed on `ews serve`'s command line and set the
#: same way by the AppTest tests (tests/dashboard_home.py). Magic is off: no page relies on it
#: (every output is an explicit ``st.`` call), and with it on Streamlit ``ast.parse``s each
#: script, which on CPython 3.11 can fail with "SystemError: AST constructor recursion depth
#: mismatch" when another thread of the process parses at the same moment (the AST
#: converter's depth counter is shared by the interpreter's threads, CPython gh-106905); the
#: supervisor's thread runs beside the pages. A plain ``compile`` does not use that counter.
SCRIPT_OPTIONS: dict[str, bool] = {"runner.magicEnabled": False}


# -- serve ---------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    init_home(settings)
    setup_logging(settings, args.quiet)
    if settings.dashboard.auth not in ("local", "oidc"):
        raise EWSError(
            f"[dashboard] auth = {settings.dashboard.auth!r} is not a sign-in mode",
            fix='set auth = "local" or auth = "oidc" in ews.toml',
        )
    con = users.connect_control(users.control_path(settings))
    count = len(users.list_users(con))
    con.close()
    if settings.warehouse_path.exists():
        try:
            with open_warehouse(settings, args.wait) as wh:
                sync_dashboard(wh, settings)
        except WarehouseLockedError:
            print(
                "the engine holds the warehouse; serving the newest read snapshot "
                "(a fresh one is published when its run ends)",
                file=sys.stderr,
            )
    port = args.port or settings.dashboard.port
    address = args.address or settings.dashboard.address
    if count == 0 and settings.dashboard.auth == "local":
        print("no accounts yet: add one with `ews users add NAME --role admin`", file=sys.stderr)
    print(f"EWS dashboard on http://{address}:{port} (EWS_HOME {settings.home})", file=sys.stderr)
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
        *(part for option, value in SCRIPT_OPTIONS.items() for part in (f"--{option}", str(value).lower())),
    ]
    env = {**os.environ, "EWS_HOME": str(settings.home)}
    sys.stdout.flush()
    sys.stderr.flush()
    server = subprocess.Popen(argv, env=env, cwd=settings.home)  # noqa: S603 - our interpreter
    return _supervise(server, settings)


def _supervise(server: subprocess.Popen[bytes], settings: Settings) -> int:
    """Sync the review inbox beside the Streamlit ``server`` until it exits; SIGTERM / SIGINT
    are passed on to it. Returns its exit status (128 + signal when a signal ended it)."""
    loop = SyncLoop(settings).start()

    def pass_on(signum: int, _frame: object) -> None:
        if server.poll() is None:
            server.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:  # this process is being torn down: take the server along
            server.kill()
            server.wait()
        loop.stop()  # a look in progress finishes (it holds the warehouse for about a second)
    return code if code >= 0 else 128 - code


# -- users ---------------------------------------------------------------------------------
def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise EWSError("no password given", fix="pipe it in with --password-stdin (e.g. from a secrets manager)")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise EWSError("the two passwords differ", fix="type the same password twice")
    return first


def _user_dict(user: users.User) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role,
        "email": user.email,
        "password": user.has_password,
        "clearance": user.clearance,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    authorize("admin", "users.manage")  # the shell operator of EWS_HOME acts as admin
    init_home(settings)
    con = users.connect_control(users.control_path(settings))
    now = utc_now()
    actor = operator()
    try:
        if args.users_command == "list":
            rows = [_user_dict(u) for u in users.list_users(con)]
            text = "\n".join(
                f"{r['name']:<24} {r['role']:<13} {r['clearance']:<13} {r['email'] or '':<28} "
                f"{'password' if r['password'] else 'oidc only'}"
                for r in rows
            )
            print_result(rows, args.json, text or "no accounts yet (ews users add NAME --role ROLE)")
            return 0
        if args.users_command == "add":
            role = parse_role(args.role)
            # --email without --password-stdin = an identity-provider-only account
            password = _read_password(args) if args.password_stdin or not args.email else None
            user = users.add_user(
                con, name=args.name, role=role, password=password, email=args.email, clearance=args.clearance, at=now
            )
            detail = {"role": role, "email": args.email, "password": password is not None, "clearance": user.clearance}
            action, text = "user.added", f"added {user.name} as {user.role}"
        elif args.users_command == "remove":
            user = users.remove_user(con, args.name)
            detail, action, text = {"role": user.role}, "user.removed", f"removed {user.name}"
        elif args.users_command == "set-role":
            role = parse_role(args.role)
            before = users.get_user(con, args.name)
            user = users.set_role(con, args.name, role, at=now)
            detail = {"from": before.role if before else None, "to": role}
            action, text = "user.role_changed", f"{user.name} is now {user.role}"
        elif args.users_command == "set-clearance":
            before = users.get_user(con, args.name)
            user = users.set_clearance(con, args.name, args.clearance, at=now)
            detail = {"from": before.clearance if before else None, "to": user.clearance}
            action, text = "user.clearance_changed", f"{user.name} is now cleared for {user.clearance} data"
        elif args.users_command == "token":
            return _token(con, args, settings, actor=actor, now=now)
        elif args.users_command == "unlock":
            return _unlock(con, args, settings, actor=actor, now=now)
        else:  # set-password
            user = users.set_password(con, args.name, _read_password(args), at=now)
            detail, action, text = {}, "user.password_changed", f"password of {user.name} changed"
        review_inbox.enqueue_audit(con, action=action, user=actor, at=now, target=user.name, detail=detail)
        _apply_now(settings)
        print_result({"action": action, "user": _user_dict(user)}, args.json, text)
        return 0
    finally:
        con.close()


def _token(con: Any, args: argparse.Namespace, settings: Settings, *, actor: str, now: Any) -> int:
    """Issue (or with --revoke delete) the account's CLI API token; the token is printed once."""
    if args.revoke:
        if users.get_user(con, args.name) is None:
            raise users.AccountError(f"no account named {args.name!r}", fix="list them with `ews users list`")
        had = credentials.revoke_api_token(con, args.name)
        review_inbox.enqueue_audit(con, action="user.token_revoked", user=actor, at=now, target=args.name, detail={})
        _apply_now(settings)
        text = f"API token of {args.name} revoked" if had else f"{args.name} had no API token"
        print_result({"action": "user.token_revoked", "name": args.name, "had_token": had}, args.json, text)
        return 0
    token = credentials.issue_api_token(con, args.name, at=now)
    review_inbox.enqueue_audit(con, action="user.token_issued", user=actor, at=now, target=args.name, detail={})
    _apply_now(settings)
    print_result(
        {"action": "user.token_issued", "name": args.name, "token": token},
        args.json,
        f"{token}\n(the API token of {args.name}, shown only now: give it to them; they set "
        f"EWS_TOKEN to it. A new `ews users token {args.name}` replaces it; --revoke deletes it.)",
    )
    return 0


def _unlock(con: Any, args: argparse.Namespace, settings: Settings, *, actor: str, now: Any) -> int:
    """Clear the sign-in failures (delay and lock) of an account name and/or a client address."""
    if args.name is None and args.client is None:
        raise EWSError("nothing to unlock", fix="name the account (`ews users unlock NAME`) and/or --client ADDRESS")
    removed = credentials.clear_failures(con, account=args.name, client=args.client)
    review_inbox.enqueue_audit(
        con,
        action="session.unlocked",
        user=actor,
        at=now,
        target=args.name or args.client,
        detail={"account": args.name, "client": args.client, "failures_cleared": removed},
    )
    _apply_now(settings)
    who = " and ".join(x for x in (args.name, args.client and f"client {args.client}") if x)
    print_result(
        {"action": "session.unlocked", "account": args.name, "client": args.client, "failures_cleared": removed},
        args.json,
        f"{who}: {removed} failed sign-in(s) cleared; the next try is checked at once",
    )
    return 0


def _apply_now(settings: Settings) -> None:
    """Write queued audit entries to the warehouse now if it is free (else the next run does)."""
    if not settings.warehouse_path.exists():
        return
    try:
        with open_warehouse(settings) as wh:
            sync_dashboard(wh, settings)
    except WarehouseLockedError:
        print(
            "the engine holds the warehouse: the audit entry is queued and written when its run ends", file=sys.stderr
        )


# -- metrics -------------------------------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(metrics: pl.DataFrame) -> str:
    """Render ``name, labels, value, type, help`` rows in the Prometheus text format 0.0.4."""
    lines: list[str] = []
    seen: set[str] = set()
    for row in metrics.sort("name", maintain_order=True).iter_rows(named=True):
        name = row["name"]
        if name not in seen:
            seen.add(name)
            lines.append(f"# HELP {name} {_escape(row['help'])}")
            lines.append(f"# TYPE {name} {row['type']}")
        labels = json.loads(row["labels"] or "{}")
        label_text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
        value = row["value"]
        number = repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)
        lines.append(f"{name}{{{label_text}}} {number}" if label_text else f"{name} {number}")
    return "\n".join(lines) + "\n"


def collect_metrics(settings: Settings) -> pl.DataFrame:
    """The Operations figures from the newest snapshot, plus snapshot age and inbox backlog."""
    now = utc_now()
    snap = current_snapshot(snapshot_folder(settings))
    if snap is None:
        raise EWSError(
            f"no read snapshot in {snapshot_folder(settings)}",
            fix="run `ews demo`, `ews run` or `ews serve` once; each publishes one",
        )
    with open_snapshot(snap) as wh:
        metrics = reads.operations_metrics(wh, now=now)
    con = users.connect_control(users.control_path(settings))
    try:
        pending = review_inbox.pending_count(con)
    finally:
        con.close()
    extra = pl.DataFrame(
        [
            {
                "name": "ews_snapshot_age_seconds",
                "labels": "{}",
                "value": (now - snap.published_at).total_seconds(),
                "type": "gauge",
                "help": "Seconds since the read snapshot these figures come from was published.",
            },
            {
                "name": "ews_review_inbox_pending",
                "labels": "{}",
                "value": float(pending),
                "type": "gauge",
                "help": "Review actions queued while the engine held the warehouse, not yet applied.",
            },
        ],
        schema=metrics.schema,
    )
    return pl.concat([metrics, extra])


def cmd_metrics(args: argparse.Namespace, settings: Settings) -> int:
    metrics = collect_metrics(settings)
    if args.json:
        print_result(metrics.to_dicts(), True, "")
    else:
        sys.stdout.write(prometheus_text(metrics))
    return 0


# -- parser --------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", parents=[common], help="start the dashboard (Streamlit)")
    serve.add_argument("--port", type=int, help="port (default [dashboard] port, 8501)")
    serve.add_argument("--address", help="address to bind (default [dashboard] address, 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)

    usr = sub.add_parser("users", help="dashboard accounts (local sign-in)")
    usub = usr.add_subparsers(dest="users_command", required=True)
    add = usub.add_parser("add", parents=[common], help="create an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="viewer, analyst, duty_officer or admin")
    add.add_argument("--email", help="identity-provider e-mail (OIDC sign-in)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument(
        "--clearance",
        default="public",
        help="highest data classification the account may see: public (default), internal, confidential, secret",
    )
    rm = usub.add_parser("remove", parents=[common], help="delete an account")
    rm.add_argument("name")
    role = usub.add_parser("set-role", parents=[common], help="change an account's role")
    role.add_argument("name")
    role.add_argument("role")
    pw = usub.add_parser("set-password", parents=[common], help="reset an account's password")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    clear = usub.add_parser("set-clearance", parents=[common], help="change the classification an account may see")
    clear.add_argument("name")
    clear.add_argument("clearance", help="public, internal, confidential or secret")
    tok = usub.add_parser("token", parents=[common], help="issue an account's CLI API token (for EWS_TOKEN)")
    tok.add_argument("name")
    tok.add_argument("--revoke", action="store_true", help="delete the token instead")
    unlock = usub.add_parser("unlock", parents=[common], help="clear failed sign-ins (delay or lock)")
    unlock.add_argument("name", nargs="?", help="account name as typed at sign-in")
    unlock.add_argument("--client", help="client address (as in the session.sign_in_failed audit entries)")
    usub.add_parser("list", parents=[common], help="list accounts")
    for parser in (add, rm, role, pw, clear, tok, unlock):
        parser.set_defaults(func=cmd_users)
    usub.choices["list"].set_defaults(func=cmd_users)

    metrics = sub.add_parser("metrics", parents=[common], help="monitoring figures in Prometheus text format")
    metrics.set_defaults(func=cmd_metrics)
