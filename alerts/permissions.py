"""Who may do what: the role-by-action matrix and :func:`authorize` (pure, no I/O).

Roles, from least to most trusted (each holds every right of the one before):

- ``viewer``: reads every page except the audit log, downloads CAP XML.
- ``analyst``: + acknowledges alerts, marks them confirmed or false alarm, adds notes;
  on the dashboard, previews an uploaded file as ``ews ingest file --dry-run`` shows it (the CLI
  is the warehouse owner's and checks no role).
- ``duty_officer``: + approves or rejects the release of an alert, silences with a reason and
  end, cancels a wrong alert, switches the LLM path off and on, approves the name, region and
  unit a series is published under (``ews series approve``: the vetted catalogue).
- ``admin``: + manages user accounts, reads the audit log, revokes or restores LLM endpoints and
  rotates their key, manages CAP recipients.

The dashboard and the CLI call :func:`authorize` on the server before every action (the CLI
with the role of the account its credential names: pipelines/cli/credentials.py); hiding a
button is a courtesy, never the check. An action a role lacks raises
:class:`AuthorizationError` naming the role that would be needed.
"""

from __future__ import annotations

from collections.abc import Callable

from core.errors import EWSError
from core.vocabulary import Role

__all__ = [
    "REVIEW_PERMISSION",
    "queued_action_refusal",
    "ROLES",
    "ACTIONS",
    "MATRIX",
    "AuthorizationError",
    "authorize",
    "allowed",
    "parse_role",
    "minimum_role",
]

#: Role names, least to most trusted (core.vocabulary.Role).
ROLES: tuple[Role, ...] = tuple(Role)

#: Every action the server checks, with what it means.
ACTIONS: dict[str, str] = {
    "pages.read": "open the overview, markets, hazards, alert inbox, models, data and operations pages",
    "cap.download": "download an alert's CAP XML",
    "alert.acknowledge": "acknowledge an open alert",
    "alert.feedback": "mark an alert confirmed or false alarm, with a note",
    "alert.approve": "approve the release of an alert",
    "alert.reject": "reject the release of an alert",
    "alert.silence": "silence an alert's hazard and region until a given end",
    "data.ingest": "load data files (the dashboard previews an uploaded file as `ews ingest file --dry-run`)",
    "alert.cancel": "cancel a wrong alert (a CAP Cancel if it went out)",
    "llm.switch": "switch the LLM path off or on",
    "series.vet": "approve or withdraw the name, region and unit a series is published under",
    "audit.read": "read the audit log",
    "users.manage": "add, remove or change the role of user accounts",
    "llm.endpoints": "revoke or restore an LLM endpoint, rotate its key",
    "recipients.manage": "subscribe or unsubscribe CAP recipients",
}

_GRANTS: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset({"pages.read", "cap.download"}),
    Role.ANALYST: frozenset({"alert.acknowledge", "alert.feedback", "data.ingest"}),
    Role.DUTY_OFFICER: frozenset(
        {"alert.approve", "alert.reject", "alert.silence", "alert.cancel", "llm.switch", "series.vet"}
    ),
    Role.ADMIN: frozenset({"audit.read", "users.manage", "llm.endpoints", "recipients.manage"}),
}


def _build_matrix() -> dict[str, frozenset[str]]:
    matrix: dict[str, frozenset[str]] = {}
    held: frozenset[str] = frozenset()
    for role in ROLES:
        held = held | _GRANTS[role]
        matrix[role] = held
    return matrix


#: role -> the actions it may take (cumulative up the ladder of :data:`ROLES`).
MATRIX: dict[str, frozenset[str]] = _build_matrix()


class AuthorizationError(EWSError):
    """A signed-in user (or an absent/expired session) tried an action their role lacks."""

    exit_code = 13


def parse_role(text: str) -> str:
    """Normalise a role name (``duty-officer`` and ``Duty_Officer`` both work)."""
    role = str(text).strip().lower().replace("-", "_").replace(" ", "_")
    if role not in ROLES:
        raise AuthorizationError(
            f"unknown role {text!r}",
            fix=f"use one of {', '.join(ROLES)}",
        )
    return role


def minimum_role(action: str) -> str:
    """The least trusted role that may take ``action``."""
    _known_action(action)
    return next(role for role in ROLES if action in MATRIX[role])


def allowed(role: str | None, action: str) -> bool:
    """True when ``role`` may take ``action``; an absent role may take nothing."""
    _known_action(action)
    return role in MATRIX and action in MATRIX[role]


def authorize(role: str | None, action: str) -> None:
    """Raise :class:`AuthorizationError` unless ``role`` may take ``action``.

    ``role`` is None for an absent or expired session: every action is refused.
    """
    if allowed(role, action):
        return
    need = minimum_role(action)
    if role is None:
        raise AuthorizationError(
            f"not signed in: {ACTIONS[action]} needs a signed-in {need}",
            fix="sign in again (sessions expire; see [dashboard] session_minutes)",
        )
    raise AuthorizationError(
        f"role {role!r} may not {ACTIONS[action]} (action {action!r} needs {need} or above)",
        fix=f"ask an admin to run `ews users set-role NAME {need}` if your duties include this",
    )


def _known_action(action: str) -> None:
    if action not in ACTIONS:
        raise AuthorizationError(
            f"unknown action {action!r}",
            fix=f"use one of {', '.join(ACTIONS)}",
        )


#: review action (as queued by the dashboard or CLI) -> the permission it needs
REVIEW_PERMISSION: dict[str, str] = {
    "acknowledge": "alert.acknowledge",
    "feedback": "alert.feedback",
    "approve": "alert.approve",
    "reject": "alert.reject",
    "silence": "alert.silence",
    "cancel": "alert.cancel",
}


def queued_action_refusal(role_of: Callable[[str], str | None], user: str, action: str) -> str | None:
    """Why a queued review ``action`` by ``user`` must be refused now, or None if it may apply.

    Actions queued while the engine held the warehouse are applied later; the user's role is
    looked up again then (``role_of`` reads the current account), so an account removed or
    downgraded in between cannot still approve a release.
    """
    permission = REVIEW_PERMISSION.get(action)
    if permission is None:
        return None  # not a role-gated review action (the inbox validates its own kinds)
    try:
        authorize(role_of(user), permission)
    except AuthorizationError as exc:
        return f"refused at apply time: {exc.problem}"
    return None
