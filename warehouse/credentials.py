"""Credentials beside the accounts (control store): CLI API tokens, sign-in throttling and the
dashboard's signed session tokens.

- **API tokens** (``ews users token NAME``): one per account, 256 random bits shown once; the
  store keeps only its SHA-256 (a token is long and random, so a fast hash is enough and a
  lookup by hash is safe). ``EWS_TOKEN`` carries it to ``ews alerts approve`` and the other
  review and admin commands (:mod:`pipelines.cli.credentials`).
- **Sign-in throttling** (:func:`sign_in`): every failed try is recorded by account name (known
  or not, so the answer never tells which) and by client (the browser's address, or
  ``cli:<os user>``). After ``n`` failures within ``[dashboard] signin_window_minutes`` the
  next try waits ``signin_delay_seconds * 2**(n-1)`` (at most ``signin_max_delay_seconds``)
  from the last failure; ``signin_lock_after`` failures lock the account name or the client for
  ``signin_lock_minutes``. A held try is refused before the password is looked at. A success
  clears the account's failures; an admin clears either with ``ews users unlock``. Every
  failure, refusal and lock is audited.
- **Session tokens** (:func:`issue_session_token`, :func:`read_session_token`): the
  dashboard's cookie. ``base64url(json) + "." + HMAC-SHA256`` with a 32-byte key kept in
  ``EWS_HOME/secrets/session_key`` (mode 0600); the JSON names a session row here, its
  account and its expiry. A tampered, expired or signed-out token is worth nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from core.settings import Settings
from warehouse.review_inbox import enqueue_audit
from warehouse.users import AccountError, AuthenticationError, User, authenticate, get_user

__all__ = [
    "ThrottlePolicy",
    "Hold",
    "SignInHeldError",
    "issue_api_token",
    "user_for_api_token",
    "revoke_api_token",
    "hold_on",
    "sign_in",
    "clear_failures",
    "session_key",
    "issue_session_token",
    "read_session_token",
    "end_session",
]

_TOKEN_PREFIX = "ews_"  # noqa: S105 - the visible prefix of every API token, not a secret


# -- API tokens ------------------------------------------------------------------------------
def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_api_token(con: sqlite3.Connection, name: str, *, at: datetime) -> str:
    """A new API token for account ``name`` (any earlier one stops working); shown only now."""
    if get_user(con, name) is None:
        raise AccountError(f"no account named {name!r}", fix="list them with `ews users list`")
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    with con:
        con.execute("DELETE FROM api_tokens WHERE name = ?", [name])
        con.execute(
            "INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?, ?, ?)",
            [name, _token_hash(token), at.isoformat()],
        )
    return token


def user_for_api_token(con: sqlite3.Connection, token: str) -> User | None:
    """The account a token belongs to now, or None (unknown, revoked, or its account removed)."""
    token = token.strip()
    if not token.startswith(_TOKEN_PREFIX):
        return None
    rows = con.execute("SELECT name FROM api_tokens WHERE token_hash = ?", [_token_hash(token)]).fetchall()
    return get_user(con, rows[0][0]) if rows else None


def revoke_api_token(con: sqlite3.Connection, name: str) -> bool:
    """Delete the account's token; True when there was one."""
    with con:
        return con.execute("DELETE FROM api_tokens WHERE name = ?", [name]).rowcount > 0


# -- sign-in throttling ------------------------------------------------------------------------
@dataclass(frozen=True)
class ThrottlePolicy:
    """``[dashboard] signin_*`` (see the module docstring)."""

    delay_seconds: float = 1.0
    max_delay_seconds: float = 60.0
    lock_after: int = 10
    window: timedelta = timedelta(minutes=15)
    lock: timedelta = timedelta(minutes=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        d = settings.dashboard
        return cls(
            delay_seconds=d.signin_delay_seconds,
            max_delay_seconds=d.signin_max_delay_seconds,
            lock_after=d.signin_lock_after,
            window=timedelta(minutes=d.signin_window_minutes),
            lock=timedelta(minutes=d.signin_lock_minutes),
        )

    def delay(self, failures: int) -> timedelta:
        """The wait after the ``failures``-th failure in the window (exponential, capped)."""
        if failures <= 0:
            return timedelta(0)
        return timedelta(seconds=min(self.delay_seconds * 2 ** min(failures - 1, 30), self.max_delay_seconds))


@dataclass(frozen=True)
class Hold:
    """Why a sign-in try is refused before its password is checked."""

    scope: str  # account | client
    subject: str
    failures: int
    until: datetime
    locked: bool


class SignInHeldError(AuthenticationError):
    """A try came while the account name or the client waits after failures, or is locked."""


def _failures(con: sqlite3.Connection, scope: str, subject: str, since: datetime) -> list[datetime]:
    rows = con.execute(
        "SELECT failed_at FROM sign_in_failures WHERE scope = ? AND subject = ? AND failed_at > ? ORDER BY failed_at",
        [scope, subject, since.isoformat()],
    ).fetchall()
    return [datetime.fromisoformat(r[0]) for r in rows]


def hold_on(con: sqlite3.Connection, *, account: str, client: str, at: datetime, policy: ThrottlePolicy) -> Hold | None:
    """The hold (lock first, then delay) on ``account`` or ``client`` at ``at``, if any."""
    holds = []
    look_back = at - max(policy.window, policy.lock) - policy.window
    for scope, subject in (("account", account), ("client", client)):
        times = _failures(con, scope, subject, look_back)
        if not times:
            continue
        last = times[-1]
        in_window = [t for t in times if t > last - policy.window]
        if len(in_window) >= policy.lock_after and at < last + policy.lock:
            holds.append(Hold(scope, subject, len(in_window), last + policy.lock, True))
            continue
        recent = [t for t in times if t > at - policy.window]
        until = last + policy.delay(len(recent))
        if recent and at < until:
            holds.append(Hold(scope, subject, len(recent), until, False))
    if not holds:
        return None
    return max(holds, key=lambda h: (h.locked, h.until))


def _held_error(hold: Hold, at: datetime, policy: ThrottlePolicy) -> SignInHeldError:
    who = "this account name" if hold.scope == "account" else "this address"
    if hold.locked:
        return SignInHeldError(
            f"sign-in locked: {hold.failures} failed tries for {who} within "
            f"{policy.window.total_seconds() / 60:g} min; it opens again at {hold.until:%Y-%m-%d %H:%M:%S} UTC",
            fix="wait, or ask an admin to run `ews users unlock NAME` (or `--client ADDRESS`)",
        )
    wait = max(1, round((hold.until - at).total_seconds() + 0.49))
    return SignInHeldError(
        f"too many failed sign-ins for {who}: try again in {wait} s",
        fix="check the name and password; each further failure doubles the wait",
    )


def sign_in(
    con: sqlite3.Connection, name: str, password: str, *, client: str, at: datetime, policy: ThrottlePolicy, via: str
) -> User:
    """Check ``name`` / ``password`` under the throttle; the account, or an
    :class:`~warehouse.users.AuthenticationError` (:class:`SignInHeldError` while held).

    Unknown names and wrong passwords fail alike and count alike. Audited: ``session.sign_in_failed``,
    ``session.sign_in_held`` (a try refused by a delay or lock) and ``session.sign_in_locked``
    (the failure that starts a lock).
    """
    subject = name or "?"
    hold = hold_on(con, account=subject, client=client, at=at, policy=policy)
    if hold is not None:
        enqueue_audit(
            con,
            action="session.sign_in_held",
            user=subject,
            at=at,
            detail={"via": via, "client": client, "scope": hold.scope, "locked": hold.locked, "until": str(hold.until)},
        )
        raise _held_error(hold, at, policy)
    try:
        user = authenticate(con, name, password)
    except AuthenticationError:
        with con:
            con.executemany(
                "INSERT INTO sign_in_failures (scope, subject, failed_at) VALUES (?, ?, ?)",
                [("account", subject, at.isoformat()), ("client", client, at.isoformat())],
            )
        enqueue_audit(con, action="session.sign_in_failed", user=subject, at=at, detail={"via": via, "client": client})
        after = hold_on(con, account=subject, client=client, at=at, policy=policy)
        if after is not None and after.locked:
            enqueue_audit(
                con,
                action="session.sign_in_locked",
                user=subject,
                at=at,
                target=after.subject,
                detail={"scope": after.scope, "failures": after.failures, "until": str(after.until), "via": via},
            )
        raise
    with con:
        con.execute("DELETE FROM sign_in_failures WHERE scope = 'account' AND subject = ?", [subject])
    return user


def clear_failures(con: sqlite3.Connection, *, account: str | None = None, client: str | None = None) -> int:
    """An admin's unlock: forget the failures of an account name and/or a client; rows removed."""
    removed = 0
    with con:
        for scope, subject in (("account", account), ("client", client)):
            if subject is not None:
                removed += con.execute(
                    "DELETE FROM sign_in_failures WHERE scope = ? AND subject = ?", [scope, subject]
                ).rowcount
    return removed


# -- dashboard session tokens ----------------------------------------------------------------
def session_key(settings: Settings) -> bytes:
    """The HMAC key of session tokens (``EWS_HOME/secrets/session_key``, made on first use).

    Deleting the file signs every browser out.
    """
    path = Path(settings.home) / "secrets" / "session_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"session_key.{os.getpid()}.tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # atomic and never overwrites: two first servers agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).hexdigest()


def issue_session_token(
    con: sqlite3.Connection, key: bytes, *, name: str, at: datetime, expires_at: datetime
) -> tuple[str, str]:
    """Record a session for ``name`` and return ``(session_id, signed token)``."""
    session_id = secrets.token_hex(16)
    with con:
        con.execute(
            "INSERT INTO web_sessions (session_id, name, created_at, expires_at) VALUES (?, ?, ?, ?)",
            [session_id, name, at.isoformat(), expires_at.isoformat()],
        )
    body = _b64(json.dumps({"sid": session_id, "u": name, "exp": expires_at.isoformat()}).encode("utf-8"))
    return session_id, f"{body}.{_sign(key, body)}"


@dataclass(frozen=True)
class SessionClaim:
    session_id: str
    name: str
    created_at: datetime
    expires_at: datetime


def read_session_token(con: sqlite3.Connection, key: bytes, token: str, *, at: datetime) -> SessionClaim | None:
    """The session a token stands for, or None (bad signature, expired, signed out, unknown)."""
    body, _, signature = str(token).partition(".")
    if not body or not hmac.compare_digest(_sign(key, body), signature):
        return None
    try:
        claim = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        expires = datetime.fromisoformat(claim["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if at >= expires:
        return None
    rows = con.execute(
        "SELECT name, created_at, expires_at FROM web_sessions WHERE session_id = ? AND ended_at IS NULL",
        [claim.get("sid")],
    ).fetchall()
    if not rows or rows[0][0] != claim.get("u") or datetime.fromisoformat(rows[0][2]) != expires:
        return None
    return SessionClaim(str(claim["sid"]), rows[0][0], datetime.fromisoformat(rows[0][1]), expires)


def end_session(con: sqlite3.Connection, session_id: str, *, at: datetime) -> None:
    """Sign out: the session's token is refused from now on, wherever it was copied."""
    with con:
        con.execute(
            "UPDATE web_sessions SET ended_at = ? WHERE session_id = ? AND ended_at IS NULL",
            [at.isoformat(), session_id],
        )
