"""Clearance: values of a series classified above the viewer's clearance never reach a page.

Each account has a clearance (``ews users set-clearance NAME LEVEL``; default public). Every
read a page makes goes through :func:`dashboards.context.read`, which passes the result through
:func:`withhold` with the session's clearance: for each series above it, the measured figures
(every floating-point column but coordinates: observations, forecasts and their quantiles,
scores, metrics) become null and the texts that quote them (the grade evidence, the judgment,
its checks, notes, transition reasons, the CAP XML) are replaced by a notice. What stays is what a public CAP
message of such a series carries: the series' name, region, hazard, level, status and times.
A read keyed by one series (``unique_id=``) or one alert (``alert_id=``) is filtered as that
series. Pure: no Streamlit, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from core.vocabulary import Classification

__all__ = ["above", "notice", "withhold", "WITHHELD_TEXT"]

#: text columns that quote a series' values
WITHHELD_TEXT = ("evidence", "text_en", "text_zh", "checks", "note", "reason", "basis", "xml", "detail")
_JSON_TEXT = ("evidence", "checks", "basis", "detail")
_KEEP_FLOATS = ("lat", "lon")


def above(classification: str | None, clearance: str | None) -> bool:
    """True when a series of ``classification`` must be hidden from a ``clearance`` viewer."""
    level = Classification.parse(str(classification or "public"))
    cleared = Classification.parse(str(clearance or "public"))
    return level > cleared


def notice(classification: str, clearance: str) -> str:
    return f"withheld: {classification} data, your clearance is {clearance}"


def _masked_value(column: str, value: Any, text: str) -> Any:
    if column == "xml":
        return None
    if column in _JSON_TEXT:
        return json.dumps({"withheld": text})
    return text


def _mask_frame(frame: pl.DataFrame, hide: pl.Expr, text: str) -> pl.DataFrame:
    changes = []
    for name, dtype in frame.schema.items():
        if dtype.is_float() and name not in _KEEP_FLOATS:
            changes.append(pl.when(hide).then(None).otherwise(pl.col(name)).alias(name))
        elif name in WITHHELD_TEXT:
            changes.append(
                pl.when(hide)
                .then(pl.lit(_masked_value(name, None, text), dtype=pl.Utf8))
                .otherwise(pl.col(name).cast(pl.Utf8))
                .alias(name)
            )
    return frame.with_columns(changes) if changes else frame


def withhold(result: Any, *, classes: Mapping[str, str], clearance: str, series: str | None = None) -> Any:
    """``result`` (a frame, a row dict, or anything else) with the values of series above
    ``clearance`` withheld. ``classes``: unique_id -> classification. ``series``: the series a
    read is keyed by (its rows need no unique_id column)."""
    hidden = {uid: c for uid, c in classes.items() if above(c, clearance)}
    if not hidden:
        return result
    if isinstance(result, pl.DataFrame):
        if "unique_id" in result.columns:
            ids = result.get_column("unique_id").cast(pl.Utf8)
            if not ids.is_in(list(hidden)).any():
                return result
            worst = max(hidden[u] for u in set(ids.to_list()) if u in hidden)
            return _mask_frame(result, pl.col("unique_id").cast(pl.Utf8).is_in(list(hidden)), notice(worst, clearance))
        if series in hidden:
            return _mask_frame(result, pl.lit(True), notice(hidden[series], clearance))
        return result
    if isinstance(result, dict):
        uid = str(result.get("unique_id", series))
        if uid not in hidden:
            return result
        text = notice(hidden[uid], clearance)
        return {
            k: (
                None
                if isinstance(v, float) and k not in _KEEP_FLOATS
                else _masked_value(k, v, text)
                if k in WITHHELD_TEXT and v is not None
                else v
            )
            for k, v in result.items()
        }
    return result
