"""Audit (admins only): the audit log, filterable by actor, action, time and text; the
accounts; and the review inbox with refused actions."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import streamlit as st

from dashboards import auth, context, ui
from warehouse.review_inbox import read_inbox
from warehouse.users import list_users

auth.guard("audit.read")
ui.risk_notice()
st.title("Audit log")

actors, actions = context.read("audit_actions")
with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    actor = c1.selectbox("Actor", ["any", *actors], key="audit_actor")
    action = c2.selectbox("Action", ["any", *actions], key="audit_action")
    text = c3.text_input("Target or detail contains", key="audit_text")
    d1, d2 = st.columns(2)
    since = d1.date_input("From", value=None, key="audit_since")
    until = d2.date_input("To (inclusive)", value=None, key="audit_until")
filters = {
    "actor": None if actor == "any" else actor,
    "action": None if action == "any" else action,
    "text": text.strip() or None,
    "since": None if since is None else datetime.combine(since, time.min),
    "until": None if until is None else datetime.combine(until, time.min) + timedelta(days=1),
}
total = context.read("count_audit", **filters)
limit, offset = ui.pager(total, key="audit_page")
st.dataframe(context.read("audit_page", **filters, limit=limit, offset=offset), hide_index=True)

st.subheader("Accounts")
accounts = list_users(context.control())
st.dataframe(
    [
        {"name": u.name, "role": u.role, "email": u.email, "password": u.has_password, "updated_at": u.updated_at}
        for u in accounts
    ],
    hide_index=True,
)
st.caption("Manage accounts with `ews users add/remove/set-role/set-password` on the server.")

st.subheader("Review inbox")
st.dataframe(read_inbox(context.control(), limit=100), hide_index=True)
st.caption("Actions queued while the engine held the warehouse, and what became of them.")
