"""Who runs a review or admin command: the account a credential proves, checked by role.

``ews alerts approve/reject/ack/silence/unsilence/feedback/cancel``, ``ews llm ...`` and
``ews deliver subscribe/unsubscribe`` act for an account of the control store, proven by one of:

- ``EWS_TOKEN``: the account's API token (``ews users token NAME`` prints it once; the store
  keeps only its hash). ``--user``, if given too, must name the same account.
- ``--password-stdin`` with ``--user NAME``: the account's password on stdin, under the same
  sign-in throttle as the dashboard (client ``cli:<os user>``).

The role is then checked with :func:`alerts.permissions.authorize` (the dashboard's check), and
the audit log records the authenticated name. ``--user`` alone proves nothing and is refused.
``ews users`` is the exception: whoever owns EWS_HOME's shell is its bootstrap admin (they can
read and write the control store anyway), recorded as ``cli:<os user>``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from alerts.permissions import authorize
from core.clock import utc_now
from core.settings import Settings
from warehouse import users
from warehouse.credentials import ThrottlePolicy, sign_in, user_for_api_token
from warehouse.review_inbox import enqueue_audit

__all__ = ["TOKEN_VARIABLE", "add_credential_arguments", "operator", "authenticated_user"]

TOKEN_VARIABLE = "EWS_TOKEN"  # noqa: S105 - the name of the environment variable


def operator() -> str:
    """``cli:<os user>``: the shell owner of EWS_HOME, as the audit log names them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user",
        help=f"account name; needs a credential: {TOKEN_VARIABLE} (from `ews users token NAME`) or --password-stdin",
    )
    parser.add_argument("--password-stdin", action="store_true", help="read the --user account's password from stdin")


def authenticated_user(args: argparse.Namespace, settings: Settings, action: str) -> users.User:
    """The account the command's credential proves, if its role may take ``action``.

    Raises :class:`warehouse.users.AuthenticationError` (exit 14) without a valid credential and
    :class:`alerts.permissions.AuthorizationError` (exit 13) for a role that lacks ``action``.
    """
    claimed = getattr(args, "user", None)
    con = users.connect_control(users.control_path(settings))
    try:
        if getattr(args, "password_stdin", False):
            if not claimed:
                raise users.AuthenticationError(
                    "--password-stdin needs --user NAME (whose password it is)",
                    fix="add --user NAME, or drop --password-stdin and set EWS_TOKEN",
                )
            password = sys.stdin.readline().rstrip("\r\n")
            user = sign_in(
                con,
                claimed,
                password,
                client=operator(),
                at=utc_now(),
                policy=ThrottlePolicy.from_settings(settings),
                via="cli",
            )
        elif os.environ.get(TOKEN_VARIABLE):
            found = user_for_api_token(con, os.environ[TOKEN_VARIABLE])
            if found is None:
                enqueue_audit(
                    con, action="cli.token_refused", user=claimed or "?", at=utc_now(), detail={"client": operator()}
                )
                raise users.AuthenticationError(
                    f"{TOKEN_VARIABLE} is not a valid API token (unknown, replaced or its account removed)",
                    fix="ask an admin for a new one: `ews users token NAME`",
                )
            if claimed and claimed != found.name:
                raise users.AuthenticationError(
                    f"--user {claimed!r} differs from the account of {TOKEN_VARIABLE} ({found.name!r})",
                    fix=f"drop --user (the token names the account), or use {claimed!r}'s own token",
                )
            user = found
        else:
            named = f"--user {claimed!r} alone" if claimed else "no credential"
            raise users.AuthenticationError(
                f"{named} proves nothing: review and admin commands act for an authenticated account",
                fix=f"set {TOKEN_VARIABLE} to the account's API token (an admin makes one with "
                "`ews users token NAME`), or pass --user NAME --password-stdin with the password on stdin",
            )
    finally:
        con.close()
    authorize(user.role, action)
    return user
