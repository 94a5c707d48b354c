"""Data: ingestion runs, the ledger of batches (source, rows, checksum, status) and the
quarantined batches with their reasons."""

from __future__ import annotations

import streamlit as st

from dashboards import auth, context, ui

auth.guard("pages.read")
ui.risk_notice()
st.title("Data")

st.subheader("Runs")
total = context.read("count_runs")
limit, offset = ui.pager(total, key="runs_page")
st.dataframe(context.read("runs_page", limit=limit, offset=offset), hide_index=True)

st.subheader("Ledger of ingested batches")
status = st.selectbox("Status", ["all", "committed", "quarantined", "failed"], key="ledger_status")
chosen = None if status == "all" else status
total = context.read("count_batches", status=chosen)
limit, offset = ui.pager(total, key="ledger_page")
st.dataframe(context.read("batches_page", status=chosen, limit=limit, offset=offset), hide_index=True)

st.subheader("Quarantined batches")
quarantined = context.read("batches_page", status="quarantined", limit=20, offset=0)
if quarantined.height == 0:
    st.success("No batch is quarantined.")
for row in quarantined.iter_rows(named=True):
    title = f"{ui.safe_md(row['batch_id'])} · {row['fetched_at']:%Y-%m-%d %H:%M} · {ui.safe_md(row['format'])}"
    with st.expander(title):
        st.text(f"file: {row['location']}\nsource: {row['source']}\nchecksum: {row['checksum']}")
        st.code(row["error"] or "no reason recorded", language=None)
        st.caption("The landing copy stays under EWS_HOME/raw/<batch_id>/ for inspection.")
