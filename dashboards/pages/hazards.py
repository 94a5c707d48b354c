"""Hazards: seismic rate and magnitude per region, GNSS displacement with detected steps, river
flow and sea level, gridded-data indices, each with fan charts, marks and level timelines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from core.vocabulary import Domain
from dashboards import auth, context, ui

auth.guard("pages.read")
ui.risk_notice()
st.title("Hazards")

catalog = context.read("series_catalog", domains=tuple(d.value for d in Domain if d is not Domain.MARKET))
if catalog.height == 0:
    st.info("No hazard series in the warehouse yet (`ews demo` loads real ones).")
    st.stop()
levels = context.read("series_levels").select("unique_id", "level", "lat", "lon")
catalog = catalog.join(levels, on="unique_id", how="left")

_TABS = {
    Domain.SEISMIC.value: "Seismic rate and magnitude",
    Domain.GEODETIC.value: "GNSS displacement",
    Domain.HYDRO.value: "River flow and sea level",
    Domain.SATELLITE.value: "Gridded and satellite indices",
}
_NOTES = {
    Domain.GEODETIC.value: "Detected steps are the graded anomaly marks on the displacement series.",
    Domain.HYDRO.value: "Coloured marks are graded exceedances of the series' own history; return-level "
    "curves appear here once a return-level table is stored.",
    Domain.SATELLITE.value: "Regional indices computed at ingestion from gridded data (e.g. Nino 3.4 mean SST).",
}


def _pick(domain: str) -> dict[str, object] | None:
    rows = catalog.filter(pl.col("domain") == domain)
    if rows.height == 0:
        st.info(f"No {ui.safe_md(domain)} series loaded.")
        return None
    labels = {
        r["unique_id"]: f"{r['region'] or '-'} · {r['name']} (level {r['level'] or 'none'})"
        for r in rows.iter_rows(named=True)
    }
    uid = st.selectbox("Series", list(labels), format_func=labels.__getitem__, key=f"hz_{domain}")
    return rows.filter(pl.col("unique_id") == uid).row(0, named=True)


def _events(meta: dict[str, Any]) -> None:
    """Magnitude-time panel of catalog events near the series' region centre."""
    if meta.get("lat") is None or meta.get("lon") is None:
        return
    history = context.read("series_history", unique_id=str(meta["unique_id"]), points=400)
    if history.height == 0:
        return
    end = history["ds"].max() + timedelta(days=1)
    start = end - timedelta(days=365)
    events = context.read(
        "seismic_events",
        lat=float(meta["lat"]),
        lon=float(meta["lon"]),
        radius_deg=6.0,
        start=start,
        end=end,
        min_magnitude=4.0,
        limit=3000,
    )
    if events.height == 0:
        return
    st.altair_chart(
        alt.Chart(events.to_pandas())
        .mark_circle(opacity=0.6)
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y("magnitude:Q", scale=alt.Scale(zero=False)),
            size=alt.Size("magnitude:Q", legend=None),
            color=alt.value("#7b3294"),
            tooltip=[alt.Tooltip("time:T"), alt.Tooltip("magnitude:Q"), alt.Tooltip("depth_km:Q")],
        )
        .properties(
            title=f"M4+ events within 6° of the region centre, last 365 days "
            f"({events.height} shown, newest {min(events.height, 3000)})",
            height=220,
        ),
        width="stretch",
    )


for tab, domain in zip(st.tabs([ui.safe_md(t) for t in _TABS.values()]), _TABS, strict=True):
    with tab:
        meta = _pick(domain)
        if meta is None:
            continue
        if domain in _NOTES:
            st.caption(ui.safe_md(_NOTES[domain]))
        ui.series_panel(meta)
        if domain == Domain.SEISMIC:
            _events(meta)
