"""Markets: the stress composite and its segments, then each indicator with its history, fan
chart, exceedance levels, anomaly marks and level timeline."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core.vocabulary import Domain
from dashboards import auth, context, ui

auth.guard("pages.read")
ui.risk_notice()
st.title("Markets")

catalog = context.read("series_catalog", domains=(Domain.MARKET.value,))
if catalog.height == 0:
    st.info("No market series in the warehouse yet (`ews ingest` a FRED file, or `ews demo`).")
    st.stop()

levels = context.read("series_levels").select("unique_id", "level", "score")
catalog = catalog.join(levels, on="unique_id", how="left")

st.subheader("Stress composite and segments")
# The composite is a published index when one is loaded (the St. Louis Fed Financial Stress
# Index is built from 18 weekly market series); segments are the other market indicators.
composite = catalog.filter(pl.col("unique_id").str.contains("stlfsi|stress|composite"))
segments = catalog.filter(~pl.col("unique_id").is_in(composite["unique_id"].implode()))
if composite.height:
    ui.series_panel(composite.row(0, named=True))
else:
    st.info("No stress composite series is loaded; the segments below are the market indicators.")
st.dataframe(segments.select("unique_id", "name", "unit", "frequency", "level", "score"), hide_index=True)

st.subheader("Indicator")
labels = {
    r["unique_id"]: f"{r['name']} [{r['unique_id']}] level {r['level'] or 'none'}"
    for r in catalog.iter_rows(named=True)
}
choice = st.selectbox("Indicator", list(labels), format_func=labels.__getitem__, key="market_uid")
meta = catalog.filter(pl.col("unique_id") == choice).row(0, named=True)
st.markdown(
    f"**{ui.safe_md(meta['name'])}** · {ui.safe_md(meta['unit'] or '')} · "
    f"{ui.safe_md(meta['frequency'])} · source: {ui.safe_md(meta['source'] or 'n/a')}"
)
ui.series_panel(meta)
