"""Sign-in, sessions and the server-side check behind every page and action.

A session is ``st.session_state["ews_session"]``: user, role, clearance, sign-in time, expiry.
It lives on the server (Streamlit keeps session state server-side), and every check re-reads
the account from the control store, so a removed account or a changed role or clearance takes
effect on the next interaction.

**Reload and deep links.** A reload or a typed URL opens a new Streamlit session with empty
state, so the session is also carried by a cookie, ``ews_session``: an HMAC-signed token
(:mod:`warehouse.credentials`; key in ``EWS_HOME/secrets/session_key``) naming a session row
of the control store, its account and its expiry. The server reads it with
``st.context.cookies`` when a new session starts; Streamlit 1.67 has no API to set a cookie,
so the page sets it with a one-line script (``st.html(..., unsafe_allow_javascript=True)``,
holding only the server-made token: no data reaches it), ``SameSite=Strict``, ``Secure`` on
HTTPS, ``Max-Age`` = the session's remaining time. Signing out ends the session row, so the
cookie, wherever it was copied, is refused from then on. A query-string token was rejected
because URLs leak into history, logs and Referer headers. Without a session every page URL
leads to the sign-in form (no "Page not found"), and after sign-in the same URL shows the
page asked for (dashboards/app.py).

**Throttling.** Sign-in goes through :func:`warehouse.credentials.sign_in`: failures per
account name and per client address (``st.context.ip_address``; behind a reverse proxy that is
the proxy's, so the per-account limit is the one that holds) delay and then lock further tries.

:func:`require` is the one gate: it raises
:class:`alerts.permissions.AuthorizationError` for an absent or expired session or a role that
lacks the action, whatever the page showed.

Sign-in modes (``[dashboard] auth``): ``local`` (name + password, scrypt hashes in the control
store) and ``oidc`` (``st.login`` against the identity provider in
``EWS_HOME/.streamlit/secrets.toml``; the identity's e-mail must belong to an account, whose
role applies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import streamlit as st

from alerts.permissions import AuthorizationError, authorize
from core.vocabulary import Classification
from dashboards import context, ui
from warehouse import credentials, users
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
    "sync_cookie",
    "COOKIE",
]

SESSION_KEY = "ews_session"
#: the cookie that carries the signed session token across reloads and deep links
COOKIE = "ews_session"
_COOKIE_STATE = "ews_cookie"  # {"set": token, "max_age": s} or {"clear": True}: written by sync_cookie


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    signed_in_at: datetime
    expires_at: datetime
    via: str
    clearance: str = Classification.PUBLIC.label
    session_id: str | None = None


def _store(session: Session) -> None:
    st.session_state[SESSION_KEY] = {
        "user": session.user,
        "role": session.role,
        "signed_in_at": session.signed_in_at,
        "expires_at": session.expires_at,
        "via": session.via,
        "clearance": session.clearance,
        "session_id": session.session_id,
    }


def _from_cookie(at: datetime) -> Session | None:
    """A new Streamlit session (reload, deep link, new tab): the session its cookie names."""
    token = st.context.cookies.get(COOKIE)
    if not token:
        return None
    con = context.control()
    claim = credentials.read_session_token(con, credentials.session_key(context.settings()), token, at=at)
    account = None if claim is None else users.get_user(con, claim.name)
    if claim is None or account is None:
        st.session_state[_COOKIE_STATE] = {"clear": True}  # worthless: the browser may drop it
        return None
    session = Session(
        account.name, account.role, claim.created_at, claim.expires_at, "cookie", account.clearance, claim.session_id
    )
    _store(session)
    return session


def current_session(*, at: datetime | None = None) -> Session | None:
    """The signed-in session, or None when absent, expired, signed out, or its account is gone."""
    at = at or context.now()
    raw = st.session_state.get(SESSION_KEY)
    if not raw:
        return _from_cookie(at)
    try:
        session = Session(
            raw["user"],
            raw["role"],
            raw["signed_in_at"],
            raw["expires_at"],
            raw["via"],
            raw.get("clearance", Classification.PUBLIC.label),
            raw.get("session_id"),
        )
    except (KeyError, TypeError):
        st.session_state.pop(SESSION_KEY, None)
        return None
    if at >= session.expires_at:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state["ews_notice"] = "Your session expired; sign in again."
        st.session_state[_COOKIE_STATE] = {"clear": True}
        return None
    account = users.get_user(context.control(), session.user)
    if account is None:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state["ews_notice"] = "Your account was removed."
        st.session_state[_COOKIE_STATE] = {"clear": True}
        return None
    if (account.role, account.clearance) != (session.role, session.clearance):
        # a role or clearance change applies at once, never a stale grant
        session = Session(
            session.user,
            account.role,
            session.signed_in_at,
            session.expires_at,
            session.via,
            account.clearance,
            session.session_id,
        )
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
    """:func:`require` for a page: shows the refusal and stops the page instead of raising.

    Without a session the sign-in form follows the refusal: a page script can be reached without
    dashboards/app.py's navigation (Streamlit runs the first session after a server start with
    its legacy ``pages/`` router, so a deep link runs the page file itself), and signing in there
    reruns the same page.
    """
    try:
        session = require(action)
    except AuthorizationError as exc:
        sync_cookie()
        st.error(ui.safe_md(exc.problem))
        if exc.fix:
            st.caption(ui.safe_md(f"Fix: {exc.fix}"))
        if current_session() is None:
            render_sign_in()
        st.stop()
        raise  # st.stop raises; this line is for type checkers
    sync_cookie()
    return session


def _start(user: users.User, via: str) -> Session:
    at = context.now()
    minutes = context.settings().dashboard.session_minutes
    expires = at + timedelta(minutes=minutes)
    session_id, token = credentials.issue_session_token(
        context.control(), credentials.session_key(context.settings()), name=user.name, at=at, expires_at=expires
    )
    session = Session(user.name, user.role, at, expires, via, user.clearance, session_id)
    _store(session)
    st.session_state[_COOKIE_STATE] = {"set": token, "max_age": int(minutes * 60)}
    st.session_state.pop("ews_notice", None)
    enqueue_audit(
        context.control(), action="session.signed_in", user=user.name, at=at, detail={"role": user.role, "via": via}
    )
    return session


def client_address() -> str:
    """The browser's address as Streamlit sees it (a reverse proxy's, behind one)."""
    return str(st.context.ip_address or "unknown")


def sign_in(name: str, password: str) -> Session:
    """Local sign-in under the throttle; raises :class:`warehouse.users.AuthenticationError` on a
    bad pair (audited in :func:`warehouse.credentials.sign_in`) or while the name or client is held."""
    cfg = context.settings()
    user = credentials.sign_in(
        context.control(),
        name,
        password,
        client=client_address(),
        at=context.now(),
        policy=credentials.ThrottlePolicy.from_settings(cfg),
        via="local",
    )
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
    """End the session here and in the control store (its cookie is refused from now on)."""
    session = st.session_state.pop(SESSION_KEY, None)
    st.session_state[_COOKIE_STATE] = {"clear": True}
    if session:
        if session.get("session_id"):
            credentials.end_session(context.control(), session["session_id"], at=context.now())
        enqueue_audit(context.control(), action="session.signed_out", user=session["user"], at=context.now(), detail={})


def sync_cookie() -> None:
    """Write (after sign-in) or drop (after sign-out, or a worthless cookie) the session cookie.

    The script holds only the server-made token (base64url and hex) and numbers, JSON-quoted.
    """
    pending = st.session_state.get(_COOKIE_STATE)
    if not pending:
        return
    if pending.get("clear"):
        value, max_age = "", 0
    else:
        value, max_age = str(pending["set"]), int(pending["max_age"])
    cookie = json.dumps(f"{COOKIE}={value}; Path=/; Max-Age={max_age}; SameSite=Strict")
    st.html(
        "<script>document.cookie = " + cookie + ' + (location.protocol === "https:" ? "; Secure" : "");</script>',
        unsafe_allow_javascript=True,
    )


def render_sign_in() -> None:
    """The sign-in page (the only page an absent or expired session sees)."""
    sync_cookie()
    ui.risk_notice()
    st.title("Sign in")
    notice = st.session_state.get("ews_notice")
    if notice:
        st.warning(ui.safe_md(notice))
    mode = context.settings().dashboard.auth
    if mode == "oidc":
        identity = dict(st.user) if hasattr(st, "user") else {}
        if identity.get("is_logged_in"):
            if session_from_identity(identity) is not None:
                st.rerun()
            st.error(ui.safe_md(f"No EWS account has the e-mail of this identity ({identity.get('email')!s})."))
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
            st.error(ui.safe_md(exc.problem))
            if isinstance(exc, credentials.SignInHeldError) and exc.fix:
                st.caption(ui.safe_md(f"Fix: {exc.fix}"))
            return
        st.rerun()  # the same URL now shows the page it names (a deep link lands where it pointed)
