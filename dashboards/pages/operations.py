"""Operations (monitoring and evaluation): run durations and failures, data freshness, forecast
accuracy drift, LLM latency and check verdicts, blocked injections, delivery backlog and dead
letters. ``ews metrics`` prints the same figures in Prometheus text format."""

from __future__ import annotations

import json

import altair as alt
import polars as pl
import streamlit as st

from dashboards import auth, context, ui
from warehouse.review_inbox import last_sync_check, pending_count

auth.guard("pages.read")
ui.risk_notice()
st.title("Operations")

metrics = context.read("operations_metrics", now=context.now().replace(second=0, microsecond=0))
pending = pending_count(context.control())


def _section(title: str, prefixes: tuple[str, ...], empty: str) -> None:
    st.subheader(ui.safe_md(title))
    rows = metrics.filter(pl.any_horizontal(*(pl.col("name").str.starts_with(p) for p in prefixes)))
    if rows.height == 0:
        st.caption(ui.safe_md(empty))
        return
    shown = rows.with_columns(
        pl.col("labels").map_elements(
            lambda text: ", ".join(f"{k}={v}" for k, v in json.loads(text).items()), return_dtype=pl.Utf8
        )
    )
    st.dataframe(shown.select("name", "labels", "value", "help"), hide_index=True)


st.subheader("Run durations and failures")
runs = context.read("runs_page", limit=200, offset=0)
if runs.height:
    st.altair_chart(
        alt.Chart(runs.to_pandas())
        .mark_bar()
        .encode(
            x=alt.X("started_at:T", title="started"),
            y=alt.Y("seconds:Q", title="duration (s)"),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=["success", "failed", "running"], range=["#2ca02c", "#d62728", "#7f7f7f"]),
            ),
            tooltip=["run_id:N", "kind:N", "status:N", "seconds:Q"],
        )
        .properties(height=200),
        width="stretch",
    )
_section("Run figures", ("ews_runs", "ews_last_run"), "No runs yet.")
_section("Data freshness", ("ews_source", "ews_feed", "ews_ingest"), "No data loaded yet.")
_section(
    "Forecast accuracy drift",
    ("ews_anomaly",),
    "No scores yet. The recent mean calibrated score rises above 0.5 when observations "
    "fall outside what the models expected more often than in the past.",
)
_section(
    "Judgments: LLM latency, check verdicts, blocked injections",
    ("ews_judgment", "ews_llm", "ews_blocked"),
    "No judgments yet.",
)
_section("Delivery backlog and dead letters", ("ews_deliveries", "ews_outbox"), "Nothing queued for delivery.")
check = last_sync_check(context.control())
if check is None:
    st.caption(
        "No `ews serve` supervisor has looked at the review inbox yet: queued actions wait for the engine's next run."
    )
else:
    # `ews serve` applies queued actions and publishes approved alerts as CAP (docs/dashboard.md)
    st.caption(
        "Last look at the review inbox by `ews serve` (applies queued actions, publishes "
        "approved alerts as CAP and a fresh snapshot; the figures above come from the "
        "snapshot and may predate it):"
    )
    st.text(
        f"{check.checked_at:%Y-%m-%d %H:%M:%S} UTC: {check.outcome}" + (f" — {check.detail}" if check.detail else "")
    )
st.subheader("Dashboard")
c1, c2 = st.columns(2)
c1.metric("Review actions waiting for the warehouse", pending)
snap = context.snapshot()
c2.metric(
    "Snapshot age (minutes)",
    "n/a" if snap is None else round((context.now() - snap.published_at).total_seconds() / 60, 1),
)
_section("Review actions applied", ("ews_review",), "No review actions yet.")
