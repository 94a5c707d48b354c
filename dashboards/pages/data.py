"""Data: ingestion runs, the ledger of batches (source, rows, checksum, status), the
quarantined batches with their reasons, and, for the roles that may load data
(``data.ingest``), a preview of an uploaded file as ``ews ingest file --dry-run`` shows it.

Everything taken from an uploaded file (names, notes, errors, values) is shown as text, data
frames or through :func:`dashboards.ui.safe_md`, never as Markdown of its own."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import streamlit as st

from alerts.permissions import AuthorizationError, allowed
from core.errors import EWSError
from dashboards import auth, context, ui

if TYPE_CHECKING:
    from ingest.preview import Preview

session = auth.guard("pages.read")
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


def _render_preview(preview: Preview) -> None:
    how = f"detected ({preview.detected})" if preview.detected else "as chosen"
    st.markdown(ui.safe_md(f"{preview.name}: format {preview.fmt}, {how}. Nothing was written."))
    if preview.notes:
        st.caption("Parser notes (column mapping, conversions, drops)")
        st.text("\n".join(f"- {n}" for n in preview.notes))
    if preview.error is not None:
        st.error("The file does not parse; loading it would quarantine the batch.")
        st.code(preview.error, language=None)
        return
    st.caption(f"First rows as parsed ({preview.series_head.height:d} shown)")
    st.dataframe(preview.series_head, hide_index=True)
    if preview.events_head is not None:
        st.caption(f"Events: {preview.event_count:d}, the first {preview.events_head.height:d}")
        st.dataframe(preview.events_head, hide_index=True)
    st.caption(ui.safe_md(f"Series a load would write, compared with {preview.compared_with}"))
    st.dataframe(preview.series, hide_index=True)
    st.caption("Regions")
    st.dataframe(preview.regions, hide_index=True)
    for finding in preview.findings:
        st.markdown(ui.safe_md(f"Would be quarantined: {finding.reason}"))
        st.dataframe(finding.rows.head(20), hide_index=True)
    new, changed = int(preview.series["new_rows"].sum()), int(preview.series["changed_rows"].sum())
    verdict = {
        "skip": f"Loading it would skip it: batch {preview.batch_id} is already committed.",
        "quarantine": f"Loading it would quarantine batch {preview.batch_id} ({len(preview.findings)} reason(s)).",
        "commit": f"Loading it would commit batch {preview.batch_id}: {new} new and {changed} changed row(s).",
    }[preview.outcome]
    (st.error if preview.outcome == "quarantine" else st.success)(ui.safe_md(verdict))


if allowed(session.role, "data.ingest"):
    st.subheader("Preview a file before loading it")
    st.caption(
        "The same read and checks as `ews ingest file PATH --dry-run`: the format and why, the rows as "
        "parsed, the series and regions a load would write against the read snapshot, and the rows that "
        "would be quarantined. Nothing is written; load the file with `ews ingest file`."
    )
    from ingest.preview import known_formats  # the parsers load only for roles that preview

    upload = st.file_uploader("Data file", key="preview_upload")
    fmt = st.selectbox("Format", ["detect from the file", *known_formats()], key="preview_format")
    raw_options = st.text_area("Options (JSON object, as --option KEY=VALUE)", value="{}", key="preview_options")
    if upload is not None:
        try:
            auth.require("data.ingest")  # the server's check, whatever the page showed
            options: Any = json.loads(raw_options or "{}")
            if not isinstance(options, dict):
                raise EWSError("the options are not a JSON object", fix='write e.g. {"unique_id": "my_gauge"}')
            chosen = None if fmt == "detect from the file" else fmt
            _render_preview(context.preview_upload(upload.name, upload.getvalue(), chosen, options))
        except json.JSONDecodeError as exc:
            st.error(ui.safe_md(f"The options are not JSON: {exc}"))
        except (EWSError, AuthorizationError) as exc:
            st.error(ui.safe_md(exc.problem))
            if exc.fix:
                st.caption(ui.safe_md(f"Fix: {exc.fix}"))
