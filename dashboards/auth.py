"""Sign-in, sessions and the server-side check behind every page and action.

A session is ``st.session_state["ews_session"]``: user, role, sign-in time, expiry. It lives
on the server (Streamlit keeps session state server-side; the browser only holds a websocket),
and every check re-reads the account from the control store, so a removed account or a
changed role takes effect on the next interaction. :func:`require` is the one gate: it raises
:class:`alerts.permissions.AuthorizationError` for an absent or expired session or a role that
lacks the action, whatever the page showed.

Sign-in modes (``[dashboard] auth``): ``local`` (name + password, scrypt hashes in the control
store) and ``oidc`` (``st.login`` against the identity provider in
``EWS_HOME/.streamlit/secrets.toml``; the identity's e-mail must belong to an account, whose
role applies).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import streamlit as st

from alerts.permissions import AuthorizationError, authorize
from dashboards import context, ui
from warehouse import users
from warehouse.review_inbox import enqueue_audit

__all__ = [
    "Session",
    "SESSION_KEY",
    "current_session",
    "require",
    "guard",
    "sign_in",
    "sign_out",
    "session_from_identity",
    "render_sign_in",
]

SESSION_KEY = "ews_session"


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    signed_in_at: datetime
    expires_at: datetime
    via: str


def _store(session: Session) -> None:
    st.session_state[SESSION_KEY] = {
        "user": session.user,
        "role": session.role,
        "signed_in_at": session.signed_in_at,
        "expires_at": session.expires_at,
        "via": session.via,
    }


def current_session(*, at: datetime | None = None) -> Session | None:
    """The signed-in session, or None when absent, expired, or its account is gone."""
    raw = st.session_state.get(SESSION_KEY)
    if not raw:
        return None
    at = at or context.now()
    try:
        session = Session(raw["user"], raw["role"], raw["signed_in_at"], raw["expires_at"], raw["via"])
    except (KeyError, TypeError):
        st.session_state.pop(SESSION_KEY, None)
        return None
    if at >= session.expires_at:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state["ews_notice"] = "Your session expired; sign in again."
        return None
    account = users.get_user(context.control(), session.user)
    if account is None:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state["ews_notice"] = "Your account was removed."
        return None
    if account.role != session.role:  # a role change applies at once, never a stale grant
        session = Session(session.user, account.role, session.signed_in_at, session.expires_at, session.via)
        _store(session)
    return session


def require(action: str) -> Session:
    """The session if it may take ``action`` now; :class:`AuthorizationError` otherwise."""
    session = current_session()
    authorize(None if session is None else session.role, action)
    if session is None:  # authorize refuses every action without a role; kept for type checkers
        raise AuthorizationError("not signed in", fix="sign in again")
    return session


def guard(action: str) -> Session:
    """:func:`require` for a page: shows the refusal and stops the page instead of raising."""
    try:
        return require(action)
    except AuthorizationError as exc:
        st.error(exc.problem)
        if exc.fix:
            st.caption(f"Fix: {exc.fix}")
        st.stop()
        raise  # st.stop raises; this line is for type checkers


def _start(user: users.User, via: str) -> Session:
    at = context.now()
    minutes = context.settings().dashboard.session_minutes
    session = Session(user.name, user.role, at, at + timedelta(minutes=minutes), via)
    _store(session)
    st.session_state.pop("ews_notice", None)
    enqueue_audit(
        context.control(), action="session.signed_in", user=user.name, at=at, detail={"role": user.role, "via": via}
    )
    return session


def sign_in(name: str, password: str) -> Session:
    """Local sign-in; raises :class:`warehouse.users.AuthenticationError` on a bad pair."""
    try:
        user = users.authenticate(context.control(), name, password)
    except users.AuthenticationError:
        enqueue_audit(
            context.control(),
            action="session.sign_in_failed",
            user=name or "?",
            at=context.now(),
            detail={"via": "local"},
        )
        raise
    return _start(user, "local")


def session_from_identity(identity: dict[str, Any]) -> Session | None:
    """OIDC: map the identity provider's verified e-mail to an account and start a session."""
    email = str(identity.get("email") or "").strip()
    if not identity.get("is_logged_in") or not email:
        return None
    account = users.find_user_by_email(context.control(), email)
    if account is None:
        enqueue_audit(
            context.control(),
            action="session.sign_in_failed",
            user=email,
            at=context.now(),
            detail={"via": "oidc", "reason": "no account"},
        )
        return None
    return _start(account, "oidc")


def sign_out() -> None:
    session = st.session_state.pop(SESSION_KEY, None)
    if session:
        enqueue_audit(context.control(), action="session.signed_out", user=session["user"], at=context.now(), detail={})


def render_sign_in() -> None:
    """The sign-in page (the only page an absent or expired session sees)."""
    ui.risk_notice()
    st.title("Sign in")
    notice = st.session_state.get("ews_notice")
    if notice:
        st.warning(notice)
    mode = context.settings().dashboard.auth
    if mode == "oidc":
        identity = dict(st.user) if hasattr(st, "user") else {}
        if identity.get("is_logged_in"):
            if session_from_identity(identity) is not None:
                st.rerun()
            st.error(f"No EWS account has the e-mail of this identity ({identity.get('email')!s}).")
            st.caption("Fix: ask an admin to run `ews users add NAME --role ROLE --email ADDRESS`.")
            return
        st.button("Sign in with your identity provider", on_click=st.login, key="oidc_login")
        return
    name = st.text_input("User name", key="signin_name")
    password = st.text_input("Password", type="password", key="signin_password")
    if st.button("Sign in", key="signin_submit", type="primary"):
        try:
            sign_in(name.strip(), password)
        except users.AuthenticationError as exc:
            st.error(exc.problem)
            return
        st.rerun()
