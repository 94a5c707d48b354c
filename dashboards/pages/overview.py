"""Overview: the map coloured by level, counts by level and domain, newest alerts, freshness."""

from __future__ import annotations

import polars as pl
import pydeck as pdk
import streamlit as st

from core.vocabulary import WARNING_LEVEL_NAMES
from dashboards import auth, context, ui

auth.guard("pages.read")
ui.risk_notice()
st.title("Overview")

levels = context.read("series_levels")
counts = context.read("open_alert_counts")
columns = st.columns(4)
for column, level in zip(columns, WARNING_LEVEL_NAMES[::-1], strict=True):
    n = int(counts.filter(pl.col("level") == level)["alerts"].sum()) if counts.height else 0
    column.metric(f"{ui.safe_md(level.upper())} open alerts", n)

left, right = st.columns([3, 2])
with left:
    st.subheader("Stations and regions by current level")
    located = levels.filter(pl.col("lat").is_not_null() & pl.col("lon").is_not_null())
    if located.height:
        channels = {
            c: pl.col("level").replace_strict({k: v[i] for k, v in ui.LEVEL_RGB.items()}, return_dtype=pl.Int64)
            for i, c in enumerate(("r", "g", "b", "a"))
        }
        points = located.with_columns(
            **channels,
            radius=60_000 + pl.col("rank") * 60_000,
            level_text=pl.col("level").str.to_uppercase(),
        ).select("unique_id", "name", "region", "domain", "level_text", "lat", "lon", "r", "g", "b", "a", "radius")
        layer = pdk.Layer(
            "ScatterplotLayer",
            data=points.to_pandas(),
            get_position=["lon", "lat"],
            get_fill_color="[r, g, b, a]",
            get_radius="radius",
            radius_min_pixels=5,
            radius_max_pixels=30,
            pickable=True,
            stroked=True,
            get_line_color=[40, 40, 40, 200],
            line_width_min_pixels=1,
        )
        deck = pdk.Deck(
            layers=[layer],
            initial_view_state=pdk.ViewState(latitude=30, longitude=150, zoom=0.6),
            map_style=None,
            # plain-text tooltip: names come from ingested data and must not render HTML
            tooltip={"text": "{name}\n{region} ({domain})\nlevel: {level_text}"},
        )
        st.pydeck_chart(deck, height=380)
        st.caption("Series without a location (e.g. national market indicators) are counted below but not mapped.")
    else:
        st.info("No located series in the warehouse yet.")
with right:
    st.subheader("Open alerts by domain and level")
    if counts.height:
        table = counts.pivot(on="level", index="domain", values="alerts").fill_null(0)
        ordered = [c for c in WARNING_LEVEL_NAMES[::-1] if c in table.columns]
        st.dataframe(table.select("domain", *ordered), hide_index=True)
    else:
        st.success("No open alerts.")
    by_level = levels.group_by("domain", "level").len().sort("domain", "level")
    st.caption("Series by domain and current level")
    st.dataframe(by_level.pivot(on="level", index="domain", values="len").fill_null(0), hide_index=True)

st.subheader("Newest alerts")
st.dataframe(context.read("newest_alerts", limit=10), hide_index=True)

st.subheader("Data freshness per source")
st.dataframe(context.read("data_freshness"), hide_index=True)
