"""Models: backtest metrics over time per series and model, the chosen model and why, and the
vertical-model registry with training lineage (each shown when its table is stored)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboards import auth, context, ui

auth.guard("pages.read")
ui.risk_notice()
st.title("Models")

st.subheader("Model behind each series' newest forecast")
models = context.read("forecast_models")
if models.height:
    st.dataframe(models, hide_index=True)
    st.caption(
        "The cycle fits AutoETS per series and falls back to Naive when a fit fails; the "
        "model column says which produced the stored forecast."
    )
else:
    st.info("No forecasts stored yet (run `ews run`).")

sections = {
    "backtests": "Backtest metrics over time",
    "model_choice": "Which model was chosen and why",
    "registry": "Vertical-model registry and training lineage",
}
for what, title in sections.items():
    st.subheader(ui.safe_md(title))
    name, table = context.read("optional_table", what=what)
    if name is None:
        st.caption(
            "Not stored in this warehouse yet (written by the model-evaluation and "
            "fine-tuning jobs once they have run)."
        )
        continue
    st.caption(f"table {ui.safe_md(name)}, newest {table.height:d} rows")
    st.dataframe(table, hide_index=True)
    metric_cols = [c for c in ("mase", "smape", "wql", "crps", "coverage") if c in table.columns]
    time_col = next((c for c in ("cutoff", "evaluated_at", "created_at", "ds") if c in table.columns), None)
    if what == "backtests" and metric_cols and time_col and "model" in table.columns:
        st.altair_chart(
            alt.Chart(table.to_pandas())
            .mark_line(point=True)
            .encode(
                x=alt.X(f"{time_col}:T"),
                y=alt.Y(f"{metric_cols[0]}:Q"),
                color="model:N",
                tooltip=["model:N", f"{metric_cols[0]}:Q"],
            )
            .properties(height=260),
            width="stretch",
        )
