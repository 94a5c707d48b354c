"""EWS dashboard entry script (``ews serve`` runs ``streamlit run dashboards/app.py``).

One entry, pages by ``st.navigation``. Without a valid session only the sign-in page exists;
with one, the pages the role may read (the audit log only for admins). Every page repeats the
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

session = auth.current_session()
if session is None:
    navigation = st.navigation(
        [st.Page(auth.render_sign_in, title="Sign in", icon=":material/login:", url_path="signin", default=True)]
    )
else:
    pages = [
        st.Page(_PAGES / "overview.py", title="Overview", icon=":material/public:", default=True),
        st.Page(_PAGES / "markets.py", title="Markets", icon=":material/show_chart:"),
        st.Page(_PAGES / "hazards.py", title="Hazards", icon=":material/landslide:"),
        st.Page(_PAGES / "alert_inbox.py", title="Alert inbox", icon=":material/notifications_active:"),
        st.Page(_PAGES / "models.py", title="Models", icon=":material/model_training:"),
        st.Page(_PAGES / "data.py", title="Data", icon=":material/database:"),
        st.Page(_PAGES / "operations.py", title="Operations", icon=":material/monitor_heart:"),
    ]
    if allowed(session.role, "audit.read"):
        pages.append(st.Page(_PAGES / "audit.py", title="Audit", icon=":material/policy:"))
    navigation = st.navigation(pages)
    with st.sidebar:
        st.caption("Signed in as")
        st.text(f"{session.user} ({session.role.replace('_', ' ')})")
        st.caption(f"session ends {session.expires_at:%Y-%m-%d %H:%M} UTC")
        if st.button("Sign out", key="signout"):
            auth.sign_out()
            st.rerun()
navigation.run()  # each page puts the risk notice at its top (ui.risk_notice)
