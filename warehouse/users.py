"""User accounts of the dashboard, kept in the control store (``EWS_HOME/control.sqlite``).

Why not in the DuckDB warehouse: DuckDB admits one writing process at a time, and a scoring
or ingest run may hold the warehouse for minutes. Signing in, ``ews users add`` and queuing a
review action must work during such a run, so accounts and the review inbox
(:mod:`warehouse.review_inbox`) live in a small SQLite file that many processes may write
with short, locked transactions (WAL mode, busy timeout). Everything a user does is still
written to the warehouse audit log: through the inbox, applied by whichever process next holds
the warehouse for writing.

Passwords are never stored: each account keeps a random 16-byte salt and the scrypt hash of
the password (``hashlib.scrypt``, n=2**14, r=8, p=1), compared in constant time. Accounts for
an OpenID Connect identity provider carry an e-mail and no password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.errors import EWSError
from core.settings import Settings
from core.vocabulary import Classification, Role

__all__ = [
    "AuthenticationError",
    "AccountError",
    "User",
    "connect_control",
    "control_path",
    "hash_password",
    "verify_password",
    "add_user",
    "remove_user",
    "set_role",
    "set_password",
    "set_clearance",
    "get_user",
    "find_user_by_email",
    "list_users",
    "authenticate",
    "MIN_PASSWORD_LENGTH",
]

MIN_PASSWORD_LENGTH = 8
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_CLEARANCES = tuple(c.label for c in Classification)
_CLEARANCE_COLUMN = (
    "ALTER TABLE users ADD COLUMN clearance TEXT NOT NULL DEFAULT 'public' "
    "CHECK (clearance IN ('public', 'internal', 'confidential', 'secret'))"
)
_ROLES = Role.values()  # core.vocabulary.Role; the CHECK below lists the same roles (tests compare them)

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS users (
        name          TEXT PRIMARY KEY,
        role          TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'duty_officer', 'admin')),
        password_hash TEXT,
        email         TEXT UNIQUE,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    )
    """,
    # (clearance: the highest data classification the account may see; added below)
    """
    CREATE TABLE IF NOT EXISTS review_inbox (
        action_id  TEXT PRIMARY KEY,
        seq        INTEGER NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('review', 'audit')),
        action     TEXT NOT NULL,
        alert_id   TEXT,
        user_name  TEXT NOT NULL,
        role       TEXT,
        acted_at   TEXT NOT NULL,
        payload    TEXT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('queued', 'applied', 'refused')),
        message    TEXT,
        applied_at TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS review_inbox_state ON review_inbox (state, seq)",
    # CLI credentials: one API token per account, stored as its SHA-256 (warehouse.credentials)
    """
    CREATE TABLE IF NOT EXISTS api_tokens (
        name       TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    )
    """,
    # sign-in throttling: every failed try by account name and by client (warehouse.credentials)
    """
    CREATE TABLE IF NOT EXISTS sign_in_failures (
        scope     TEXT NOT NULL CHECK (scope IN ('account', 'client')),
        subject   TEXT NOT NULL,
        failed_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS sign_in_failures_subject ON sign_in_failures (scope, subject, failed_at)",
    # dashboard sessions behind the signed cookie: signing out ends one for good
    """
    CREATE TABLE IF NOT EXISTS web_sessions (
        session_id TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        ended_at   TEXT
    )
    """,
    # one row: the last time `ews serve`'s supervisor looked at the inbox, and what it found
    # (warehouse.review_inbox.record_sync_check); the dashboard reads it, never writes it
    """
    CREATE TABLE IF NOT EXISTS sync_checks (
        checker    TEXT PRIMARY KEY,
        checked_at TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        detail     TEXT
    )
    """,
)


class AuthenticationError(EWSError):
    """Sign-in failed: unknown user or wrong password (the message never says which)."""

    exit_code = 14


class AccountError(EWSError):
    """An account cannot be created or changed as asked."""

    exit_code = 15


@dataclass(frozen=True)
class User:
    name: str
    role: str
    email: str | None
    has_password: bool
    created_at: str
    updated_at: str
    clearance: str = Classification.PUBLIC.label


def control_path(settings: Settings) -> Path:
    """The control store file (``[dashboard] control``, relative to EWS_HOME)."""
    return settings.home / settings.dashboard.control


def connect_control(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the control store; safe from many processes at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # autocommit off + explicit `with con:` blocks = one short transaction per change;
    # check_same_thread=False because Streamlit runs sessions on threads (each call is short
    # and SQLite serialises them).
    con = sqlite3.connect(str(path), timeout=15.0, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA busy_timeout=15000")
    with con:
        for statement in _SCHEMA:
            con.execute(statement)
        columns = {row[1] for row in con.execute("PRAGMA table_info(users)")}
        if "clearance" not in columns:  # control stores made before clearances existed
            con.execute(_CLEARANCE_COLUMN)
    return con


# -- password hashing --------------------------------------------------------------------
def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt_hex$hash_hex`` for ``password`` (a fresh random salt by default)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` hashes to ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(hash_hex) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


# A hash to burn time on when the user does not exist, so a wrong name and a wrong password
# take equally long (no account enumeration by timing).
_DUMMY_HASH = hash_password("not a real password", salt=b"\x00" * 16)


# -- accounts ----------------------------------------------------------------------------
def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise AccountError(
            f"user name {name!r} is not allowed",
            fix="use 1-64 letters, digits or . _ @ - (e.g. an e-mail or first.last)",
        )
    return name


def _check_role(role: str) -> str:
    if role not in _ROLES:
        raise AccountError(f"unknown role {role!r}", fix=f"use one of {', '.join(_ROLES)}")
    return role


def _check_clearance(clearance: str) -> str:
    text = str(clearance).strip().lower()
    if text not in _CLEARANCES:
        raise AccountError(f"unknown clearance {clearance!r}", fix=f"use one of {', '.join(_CLEARANCES)}")
    return text


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"password is shorter than {MIN_PASSWORD_LENGTH} characters",
            fix=f"choose a password of at least {MIN_PASSWORD_LENGTH} characters",
        )


def add_user(
    con: sqlite3.Connection,
    *,
    name: str,
    role: str,
    password: str | None,
    email: str | None = None,
    clearance: str = Classification.PUBLIC.label,
    at: datetime,
) -> User:
    """Create an account. ``password`` None makes an identity-provider-only account (needs email).

    ``clearance``: the highest data classification the account may see (default public: values
    of internal, confidential and secret series are withheld from it until an admin raises it).
    """
    _check_name(name)
    _check_role(role)
    clearance = _check_clearance(clearance)
    if password is None and not email:
        raise AccountError(
            f"account {name!r} would have neither a password nor an e-mail",
            fix="give --password-stdin for a local account, or --email for OIDC sign-in",
        )
    if password is not None:
        _check_password(password)
    stamp = at.isoformat()
    try:
        with con:
            con.execute(
                "INSERT INTO users (name, role, password_hash, email, created_at, updated_at, clearance) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    name,
                    role,
                    None if password is None else hash_password(password),
                    email.lower() if email else None,
                    stamp,
                    stamp,
                    clearance,
                ],
            )
    except sqlite3.IntegrityError:
        raise AccountError(
            f"an account named {name!r} (or with e-mail {email!r}) already exists",
            fix="pick another name, or change it with `ews users set-role` / remove it first",
        ) from None
    return _require(con, name)


def remove_user(con: sqlite3.Connection, name: str) -> User:
    user = _require(con, name)
    with con:
        con.execute("DELETE FROM users WHERE name = ?", [name])
        con.execute("DELETE FROM api_tokens WHERE name = ?", [name])  # its CLI token dies with it
    return user


def set_role(con: sqlite3.Connection, name: str, role: str, *, at: datetime) -> User:
    _check_role(role)
    _require(con, name)
    with con:
        con.execute("UPDATE users SET role = ?, updated_at = ? WHERE name = ?", [role, at.isoformat(), name])
    return _require(con, name)


def set_clearance(con: sqlite3.Connection, name: str, clearance: str, *, at: datetime) -> User:
    """Change the highest classification the account may see (applies on its next page or command)."""
    clearance = _check_clearance(clearance)
    _require(con, name)
    with con:
        con.execute("UPDATE users SET clearance = ?, updated_at = ? WHERE name = ?", [clearance, at.isoformat(), name])
    return _require(con, name)


def set_password(con: sqlite3.Connection, name: str, password: str, *, at: datetime) -> User:
    _check_password(password)
    _require(con, name)
    with con:
        con.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
            [hash_password(password), at.isoformat(), name],
        )
    return _require(con, name)


def get_user(con: sqlite3.Connection, name: str) -> User | None:
    rows = con.execute(
        "SELECT name, role, email, password_hash IS NOT NULL, created_at, updated_at, clearance FROM users "
        "WHERE name = ?",
        [name],
    ).fetchall()
    if not rows:
        return None
    r = rows[0]
    return User(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6])


def current_role(con: sqlite3.Connection, name: str) -> str | None:
    """The account's role now, or None when it no longer exists."""
    user = get_user(con, name)
    return None if user is None else user.role


def find_user_by_email(con: sqlite3.Connection, email: str) -> User | None:
    """The account an identity provider's e-mail maps to (case-insensitive), if any."""
    rows = con.execute("SELECT name FROM users WHERE email = ?", [email.lower()]).fetchall()
    return None if not rows else get_user(con, rows[0][0])


def list_users(con: sqlite3.Connection) -> list[User]:
    names = [r[0] for r in con.execute("SELECT name FROM users ORDER BY name").fetchall()]
    return [u for u in (get_user(con, n) for n in names) if u is not None]


def authenticate(con: sqlite3.Connection, name: str, password: str) -> User:
    """The account when ``password`` is right; :class:`AuthenticationError` otherwise."""
    rows = con.execute("SELECT password_hash FROM users WHERE name = ?", [name]).fetchall()
    stored = rows[0][0] if rows and rows[0][0] else None
    ok = verify_password(password, stored or _DUMMY_HASH) and stored is not None
    if not ok:
        raise AuthenticationError(
            "unknown user or wrong password",
            fix="check both; an admin can reset it with `ews users set-password NAME`",
        )
    user = get_user(con, name)
    if user is None:  # removed between the two reads
        raise AuthenticationError("unknown user or wrong password", fix="check both")
    return user


def _require(con: sqlite3.Connection, name: str) -> User:
    user = get_user(con, name)
    if user is None:
        known = ", ".join(u.name for u in list_users(con)) or "none yet"
        raise AccountError(
            f"no account named {name!r} (accounts: {known})",
            fix="list them with `ews users list`; add one with `ews users add`",
        )
    return user
