"""Shared page furniture: the risk notice, safe text, paging, level colours and charts.

Safety rule for free text (series names, places, sources, licences, errors, notes,
judgments): :func:`safe_md` is the one renderer for any value put into text Streamlit renders
as Markdown (markdown, captions, info/warning/error, titles, metric, expander and tab labels,
widget labels and ``help=`` tooltips): it backslash-escapes every Markdown/HTML metacharacter,
so ``![x](http://host/px.png)`` shows as those characters and loads nothing. Otherwise text is
shown by ``st.text``, ``st.code``, ``st.json`` or data frames (plain text), never with
``unsafe_allow_html``; chart and map tooltips use plain-text templates.
``tests/test_dashboard_rendering.py`` fails on any page that puts a value into Markdown text
without :func:`safe_md`; the browser test plants a Markdown image and link in a series'
source and licence and checks that nothing is fetched from their host.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from core.vocabulary import per_level
from dashboards import context

__all__ = [
    "LEVEL_COLOURS",
    "LEVEL_RGB",
    "safe_md",
    "risk_notice",
    "pager",
    "fan_chart",
    "level_timeline",
    "series_panel",
]

LEVEL_COLOURS = per_level(none="#9e9e9e", blue="#1f5fd6", yellow="#e0b700", orange="#ff8c00", red="#d7191c")
LEVEL_RGB = per_level(
    none=[158, 158, 158, 140],
    blue=[31, 95, 214, 220],
    yellow=[224, 183, 0, 230],
    orange=[255, 140, 0, 235],
    red=[215, 25, 28, 240],
)
_LEVELS = list(LEVEL_COLOURS)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:\"'=])")


def safe_md(text: object) -> str:
    """``text`` with every Markdown/HTML metacharacter escaped, for ``st.markdown``."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")


def risk_notice() -> None:
    """The notice at the top of every page: AI-assisted, for reference, labelled; data age."""
    st.warning(
        "Outputs are AI-assisted and for reference only: forecasts, anomaly grades and "
        "machine-written judgments are labelled as such, and a duty officer decides. "
        "输出由人工智能辅助生成，仅供参考，已作标识；由值班人员决定。",
        icon=":material/warning:",
    )
    cfg = context.settings()
    snap = context.snapshot()
    # as_of is checked to be an ISO date when the settings load
    exercise = f"Exercise: replay as of {date.fromisoformat(cfg.cycle.as_of):%Y-%m-%d} · " if cfg.cycle.as_of else ""
    if snap is None:
        st.caption(exercise + "no read snapshot published yet")
        return
    age = (context.now() - snap.published_at).total_seconds() / 60
    st.caption(
        exercise + f"data as of snapshot {snap.published_at:%Y-%m-%d %H:%M} UTC "
        f"({age:.0f} min ago, run {safe_md(snap.last_run or 'none')})"
    )


def pager(total: int, *, key: str, page_size: int | None = None) -> tuple[int, int]:
    """A page selector for a table of ``total`` rows; returns (limit, offset)."""
    size = page_size or context.settings().dashboard.page_size
    pages = max(1, math.ceil(total / size))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages:d})", min_value=1, max_value=pages, value=1, step=1, key=key))
    first = (page - 1) * size
    st.caption(f"rows {min(first + 1, total):d}–{min(first + size, total):d} of {total:d}")
    return size, first


def fan_chart(
    history: pl.DataFrame, forecast: pl.DataFrame, grades: pl.DataFrame, *, title: str, unit: str | None
) -> alt.LayerChart | alt.FacetChart:
    """History, forecast quantile bands (5–95 %, 25–75 %) and median, anomaly marks by level."""
    y_title = unit or "value"
    layers = [
        alt.Chart(history.to_pandas())
        .mark_line(color="#333333", strokeWidth=1.2)
        .encode(
            x=alt.X("ds:T", title=None),
            y=alt.Y("y:Q", title=y_title, scale=alt.Scale(zero=False)),
            tooltip=[alt.Tooltip("ds:T", title="time"), alt.Tooltip("y:Q", title=y_title, format=".4g")],
        )
    ]
    if forecast.height:
        fc = forecast.to_pandas()
        layers.append(alt.Chart(fc).mark_area(opacity=0.18, color="#1f77b4").encode(x="ds:T", y="q05:Q", y2="q95:Q"))
        layers.append(alt.Chart(fc).mark_area(opacity=0.32, color="#1f77b4").encode(x="ds:T", y="q25:Q", y2="q75:Q"))
        layers.append(
            alt.Chart(fc)
            .mark_line(color="#1f77b4", strokeDash=[4, 3])
            .encode(
                x="ds:T",
                y="q50:Q",
                tooltip=[
                    alt.Tooltip("ds:T", title="forecast for"),
                    alt.Tooltip("q05:Q", format=".4g"),
                    alt.Tooltip("q50:Q", title="median", format=".4g"),
                    alt.Tooltip("q95:Q", format=".4g"),
                    "model:N",
                ],
            )
        )
    marks = grades.filter(pl.col("level") != "none") if grades.height else grades
    if marks.height:
        joined = marks.join(history, on="ds", how="inner")
        if joined.height:
            layers.append(
                alt.Chart(joined.to_pandas())
                .mark_point(filled=True, size=46)
                .encode(
                    x="ds:T",
                    y="y:Q",
                    color=alt.Color(
                        "level:N",
                        scale=alt.Scale(domain=_LEVELS, range=[LEVEL_COLOURS[k] for k in _LEVELS]),
                        legend=alt.Legend(title="anomaly level", orient="bottom"),
                    ),
                    tooltip=[alt.Tooltip("ds:T", title="time"), "level:N", alt.Tooltip("score:Q", format=".4f")],
                )
            )
    return alt.layer(*layers).properties(title=title, height=300)


def level_timeline(grades: pl.DataFrame) -> alt.Chart:
    """One tick per graded point, coloured by level: when the series stood at which level."""
    return (
        alt.Chart(grades.to_pandas())
        .mark_tick(thickness=3, size=22)
        .encode(
            x=alt.X("ds:T", title=None),
            color=alt.Color(
                "level:N", scale=alt.Scale(domain=_LEVELS, range=[LEVEL_COLOURS[k] for k in _LEVELS]), legend=None
            ),
            tooltip=[alt.Tooltip("ds:T", title="time"), "level:N", alt.Tooltip("score:Q", format=".4f")],
        )
        .properties(height=50, title="level timeline")
    )


def series_panel(meta: dict[str, Any], *, points: int = 1500) -> None:
    """History + fan chart + marks, the level timeline and the exceedance levels of one series."""
    uid = str(meta["unique_id"])
    history = context.read("series_history", unique_id=uid, points=points)
    if history.height == 0:
        st.info("No observations stored for this series.")
        return
    since: datetime = history["ds"].min()
    forecast = context.read("series_forecast", unique_id=uid)
    grades = context.read("series_grades", unique_id=uid, since=since)
    st.altair_chart(
        fan_chart(history, forecast, grades, title=str(meta.get("name") or uid), unit=meta.get("unit")), width="stretch"
    )
    if grades.height:
        st.altair_chart(level_timeline(grades), width="stretch")
    else:
        st.caption("No graded points in this window (never reached blue).")
    if forecast.height:
        first = forecast.sort("ds").head(1)
        st.caption(
            "Exceedance levels of the next step (forecast quantiles): the value the "
            "series exceeds with each probability."
        )
        table = pl.DataFrame(
            {
                "probability of exceeding": ["95%", "90%", "75%", "50%", "25%", "10%", "5%"],
                "value": [first.item(0, c) for c in ("q05", "q10", "q25", "q50", "q75", "q90", "q95")],
            }
        )
        st.dataframe(table, hide_index=True)
        st.caption(
            f"Forecast from cutoff {safe_md(first.item(0, 'cutoff'))} by {safe_md(first.item(0, 'model'))} "
            f"(run {safe_md(first.item(0, 'run_id'))}); statistical model output, for reference."
        )
