"""EWS dashboard entry script (``ews serve`` runs ``streamlit run dashboards/app.py``).

One entry, pages by ``st.navigation``. Without a valid session every page's URL shows the
sign-in form (hidden pages at the same paths, so a deep link or a reload never meets "Page not
found"), and after sign-in the rerun shows the page that URL names; with a session, the pages
the role may read (the audit log only for admins). A reload keeps the session through its
signed cookie (dashboards/auth.py). Every page repeats the
server-side check itself (:func:`dashboards.auth.guard`), so a hidden page reached by URL or a
tampered client is still refused. The dashboard reads the newest read snapshot and queues
review actions and audit entries in the control store's inbox; ``ews serve``'s supervisor
applies them to the warehouse (docs/dashboard.md).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="EWS early warning", page_icon=":material/warning:", layout="wide")

from alerts.permissions import allowed  # noqa: E402 - set_page_config must come first
from dashboards import auth  # noqa: E402

_PAGES = Path(__file__).resolve().parent / "pages"
#: (file, title, icon); the first is the default page
_ALL = (
    ("overview", "Overview", ":material/public:"),
    ("markets", "Markets", ":material/show_chart:"),
    ("hazards", "Hazards", ":material/landslide:"),
    ("alert_inbox", "Alert inbox", ":material/notifications_active:"),
    ("models", "Models", ":material/model_training:"),
    ("data", "Data", ":material/database:"),
    ("operations", "Operations", ":material/monitor_heart:"),
    ("audit", "Audit", ":material/policy:"),
)

session = auth.current_session()
if session is None:
    # the sign-in form at "/" and at every page's own path (hidden), so the URL a user came with
    # is kept and shows its page after sign-in
    navigation = st.navigation(
        [st.Page(auth.render_sign_in, title="Sign in", icon=":material/login:", url_path="signin", default=True)]
        + [
            st.Page(auth.render_sign_in, title=title, icon=":material/login:", url_path=name, visibility="hidden")
            for name, title, _icon in _ALL[1:]
        ],
        position="hidden",
    )
else:
    pages = [
        st.Page(_PAGES / f"{name}.py", title=title, icon=icon, default=name == "overview")
        for name, title, icon in _ALL
        if name != "audit" or allowed(session.role, "audit.read")
    ]
    navigation = st.navigation(pages)
    with st.sidebar:
        st.caption("Signed in as")
        st.text(f"{session.user} ({session.role.replace('_', ' ')})")
        st.caption(f"session ends {session.expires_at:%Y-%m-%d %H:%M} UTC")
        if st.button("Sign out", key="signout"):
            auth.sign_out()
            st.rerun()
navigation.run()  # each page: risk notice at its top; its guard (or the sign-in form) keeps the cookie
