"""Markets: the CISS-style stress composite the cycle writes (its level with the KLR signals'
probability, the segment contributions and sub-indices, the signals), the published stress
index it is compared with, then each indicator with its history, fan chart, exceedance levels,
anomaly marks and level timeline."""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from alerts.judgment import HAZARD_MODEL, MARKET_MODEL, percent
from core.vocabulary import Domain
from dashboards import auth, context, ui

#: Published stress indices loaded beside the composite, shown as comparisons (the St. Louis
#: Fed Financial Stress Index, built from 18 weekly market series; see ews evaluate market).
PUBLISHED_INDICES = ("stlfsi4",)


def klr_hazard(grade: dict[str, Any] | None) -> dict[str, Any] | None:
    """The KLR signals forecast in a grade's evidence, or None (a rarity grade, no grade)."""
    if grade is None:
        return None
    raw = grade.get("evidence")
    evidence = json.loads(raw) if isinstance(raw, str) else (raw or {})
    hazard = evidence.get("hazard") if evidence.get("basis") == HAZARD_MODEL else None
    return hazard if isinstance(hazard, dict) and hazard.get("model") == MARKET_MODEL else None


def probability_sentence(hazard: dict[str, Any]) -> str:
    """P(event within window) with the training behind it, as plain text."""
    targets = hazard.get("targets")
    entry = targets.get(hazard.get("target"), {}) if isinstance(targets, dict) else {}
    text = (
        f"P({hazard.get('event')} within {float(hazard.get('window_days') or 0):g} days) = "
        f"{percent(float(hazard['probability']))}, KLR signals (target {hazard.get('target')})"
    )
    below = entry.get("probability_from")
    if below == "none":
        text += "; no training week reached this level: the training base rate"
    elif below:
        text += f"; no training week reached this level: the frequency at {str(below).upper()} or above"
    parts = []
    if entry.get("base_rate") is not None:
        parts.append(f"training base rate {percent(float(entry['base_rate']))}")
    span = entry.get("train_span")
    if isinstance(span, list) and len(span) == 2:
        parts.append(f"trained {span[0]} to {span[1]}")
    if entry.get("events_in_training") is not None:
        parts.append(f"{entry['events_in_training']} crises in training")
    if entry.get("signal_share") is not None:
        parts.append(f"weighted signal share {float(entry['signal_share']):.2f}")
    return text + ("; " + ", ".join(parts) if parts else "") + "."


def contributions_chart(segments: list[dict[str, Any]]) -> alt.Chart:
    """One bar per segment: its contribution to the composite at the graded week."""
    frame = pl.DataFrame(
        [
            {"segment": str(s.get("segment")), "contribution": s.get("contribution"), "subindex": s.get("subindex")}
            for s in segments
        ],
        schema={"segment": pl.Utf8, "contribution": pl.Float64, "subindex": pl.Float64},
        orient="row",
    )
    return (
        alt.Chart(frame.to_pandas())
        .mark_bar(color="#1f5fd6")
        .encode(
            x=alt.X("contribution:Q", title="contribution to the composite"),
            y=alt.Y("segment:N", sort="-x", title=None),
            tooltip=["segment:N", alt.Tooltip("contribution:Q", format=".3f"), alt.Tooltip("subindex:Q", format=".3f")],
        )
        .properties(title="segment contributions at the newest grade", height=40 + 30 * frame.height)
    )


def subindex_chart(history: pl.DataFrame) -> alt.Chart:
    """The segment sub-indices over time (``ds, y, segment``), one line each."""
    return (
        alt.Chart(history.to_pandas())
        .mark_line(strokeWidth=1.2)
        .encode(
            x=alt.X("ds:T", title=None),
            y=alt.Y("y:Q", title="sub-index (0-1)"),
            color=alt.Color("segment:N", legend=alt.Legend(orient="bottom")),
            tooltip=[alt.Tooltip("ds:T", title="time"), "segment:N", alt.Tooltip("y:Q", format=".3f")],
        )
        .properties(title="segment sub-indices", height=260)
    )


def signals_table(signals: list[Any]) -> pl.DataFrame:
    """The KLR signals of the deciding target as a table."""
    return pl.DataFrame(
        [
            {
                "indicator": str(s.get("indicator")),
                "value": s.get("value"),
                "percentile": s.get("rank"),
                "threshold": s.get("threshold"),
                "NSR": s.get("nsr"),
                "signalling": bool(s.get("signalling")),
            }
            for s in signals
            if isinstance(s, dict)
        ],
        schema={
            "indicator": pl.Utf8,
            "value": pl.Float64,
            "percentile": pl.Float64,
            "threshold": pl.Float64,
            "NSR": pl.Float64,
            "signalling": pl.Boolean,
        },
        orient="row",
    )


auth.guard("pages.read")
ui.risk_notice()
st.title("Markets")

catalog = context.read("series_catalog", domains=(Domain.MARKET.value,))
if catalog.height == 0:
    st.info("No market series in the warehouse yet (`ews ingest` a FRED file, or `ews demo`).")
    st.stop()

levels = context.read("series_levels").select("unique_id", "level", "score")
catalog = catalog.join(levels, on="unique_id", how="left")
cfg = context.settings().markets
composite_uid = cfg.composite_uid
segment_uids = {cfg.segment_uid(s): s for s in cfg.segments}
stored = set(catalog.get_column("unique_id").to_list())

st.subheader("Stress composite")
if composite_uid not in stored:
    inputs = ", ".join(sorted({str(i["unique_id"]) for i in cfg.indicators}))
    st.info(
        f"No stress composite ({ui.safe_md(composite_uid)}) is stored yet: `ews demo` builds one, or `ews run` "
        f"once the \\[markets\\] indicators' input series are ingested ({ui.safe_md(inputs)})."
    )
else:
    ui.series_panel(catalog.filter(pl.col("unique_id") == composite_uid).row(0, named=True))
    grade = context.read("newest_grade", unique_id=composite_uid)
    hazard = klr_hazard(grade)
    if grade is None:
        st.caption("The composite has no graded week yet.")
    else:
        newest = f"Newest level **{ui.safe_md(str(grade['level']).upper())}** at {ui.safe_md(grade['ds'].date())}"
        if hazard is None:
            st.markdown(
                newest + ": a statistical rarity grade (no KLR signals fitted: no crisis events known to train on)."
            )
        else:
            figures = []
            if hazard.get("composite") is not None:
                figures.append(f"composite {hazard['composite']:.2f}")
            if hazard.get("avg_correlation") is not None:
                figures.append(f"average segment correlation {hazard['avg_correlation']:.2f}")
            st.markdown(newest + (f" ({ui.safe_md(', '.join(figures))})" if figures else ""))
            st.markdown(ui.safe_md(probability_sentence(hazard)))
            segments = [s for s in hazard.get("segments") or [] if isinstance(s, dict)]
            if segments:
                st.altair_chart(contributions_chart(segments), width="stretch")
    parts = [
        context.read("series_history", unique_id=uid, points=1500).with_columns(pl.lit(segment).alias("segment"))
        for uid, segment in segment_uids.items()
        if uid in stored
    ]
    if parts:
        st.altair_chart(subindex_chart(pl.concat(parts)), width="stretch")
    if hazard is not None and hazard.get("signals"):
        st.caption(
            "KLR signals at the newest grade: an indicator signals when its percentile (the rank of its value "
            "among its own past, 0-1) passes the threshold fitted on the training weeks (a segment or the "
            "composite: its own value); NSR is its noise-to-signal ratio there (lower is better; no threshold: "
            "no threshold signalled ahead of enough training crises)."
        )
        st.dataframe(signals_table(hazard["signals"]), hide_index=True)

own = [composite_uid, *segment_uids]
published = catalog.filter(pl.col("unique_id").is_in(list(PUBLISHED_INDICES)))
indicators = catalog.filter(~pl.col("unique_id").is_in([*own, *PUBLISHED_INDICES]))
columns = ("unique_id", "name", "unit", "frequency", "level", "score")
if published.height:
    st.subheader("Published stress index (comparison)")
    st.caption("Published by others and loaded for comparison with the composite; it is not one of its inputs.")
    st.dataframe(published.select(columns), hide_index=True)
st.subheader("Indicators")
st.dataframe(indicators.select(columns), hide_index=True)

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
