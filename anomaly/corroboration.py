"""The cap on statistical-rarity grades and its lifting by an independent second series.

Issue 14: a series without a hazard model keeps its quantile (rarity) grade, but a rare value
alone is not a hazard, so the grade is capped at ``cap`` (``[hazards] rarity_cap``, default
yellow) unless a second, *independent* series in the *same region* agrees.

:func:`cap_rarity_levels` applies that rule to a frame of grades (the cycle's latest grades or
a replay over history; no database, no clock):

- *same region*: equal ``region`` text in the series metadata (series without a region are
  never corroborated);
- *independent*: a different ``unique_id`` **and** a different ``source`` (the
  metadata's provider text). Three variables of one catalog box, or three components of one
  GNSS station, share a source and so never corroborate each other; a tide gauge and a
  seismic catalog in the same region do. Without a ``source`` column every series is its
  own source;
- *agrees*: that series' own uncapped grade is above the cap too, within ``window`` of the
  grade's time (``|ds - ds'| <= window``; 0 = the same timestamp).

The output keeps every input row and adds the evidence fields of the shared contract:
``uncapped_level`` (the grade before the cap), ``capped_at`` (the cap's label when the cap
lowered the level, else null) and ``corroborated_by`` (the sorted ``unique_id`` list that
lifted the cap, empty otherwise). ``level`` is the level after the rule.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from core.errors import FrameError
from core.vocabulary import LEVEL_RANK, Level

__all__ = ["cap_rarity_levels"]

_LABELS = {int(lv): lv.label for lv in Level}


def cap_rarity_levels(
    grades: pl.DataFrame,
    meta: pl.DataFrame,
    *,
    cap: Level = Level.YELLOW,
    window: timedelta = timedelta(0),
) -> pl.DataFrame:
    """Cap rarity grades at ``cap`` unless an independent series in the same region agrees.

    ``grades``: ``unique_id, ds, level`` (level labels such as ``"red"``; other columns are
    kept). ``meta``: ``unique_id, region`` and optionally ``source`` (rules in the module
    docstring). Returns ``grades`` with ``level`` after the rule and ``uncapped_level``,
    ``capped_at``, ``corroborated_by`` added.
    """
    missing = [c for c in ("unique_id", "ds", "level") if c not in grades.columns]
    if missing:
        raise FrameError(f"grades lack column(s) {missing}; have {grades.columns}", fix="pass unique_id, ds, level")
    if "unique_id" not in meta.columns or "region" not in meta.columns:
        raise FrameError(f"meta needs unique_id and region, got {meta.columns}", fix="pass the series metadata")
    if grades.get_column("level").dtype != pl.Utf8:
        raise FrameError("grades' level must hold labels such as 'orange'", fix="pass Level.label values")
    unknown = set(grades.get_column("level").drop_nulls().unique().to_list()) - set(LEVEL_RANK)
    if unknown:
        raise FrameError(f"unknown level label(s) {sorted(unknown)}", fix=f"use one of {sorted(LEVEL_RANK)}")
    if window < timedelta(0):
        raise FrameError(f"window={window}", fix="pass a non-negative window")
    cap = Level(cap)
    info = meta.select(
        "unique_id",
        pl.col("region").cast(pl.Utf8),
        (pl.col("source") if "source" in meta.columns else pl.col("unique_id")).cast(pl.Utf8).alias("_source"),
    ).unique("unique_id", keep="first")
    frame = (
        grades.with_row_index("_row")
        .with_columns(pl.col("level").fill_null(Level.NONE.label).replace_strict(LEVEL_RANK).alias("_rank"))
        .join(info, on="unique_id", how="left")
    )
    high = frame.filter((pl.col("_rank") > int(cap)) & pl.col("region").is_not_null()).select(
        "_row", "unique_id", "ds", "region", "_source"
    )
    # Join on (region, time bucket of one window) against the neighbouring buckets too, so the
    # pairs stay local in time instead of a region-wide cross product.
    if window > timedelta(0):
        width = int(window.total_seconds() * 1e6)
        high = high.with_columns((pl.col("ds").dt.epoch("us") // width).alias("_bucket"))
        other = high.with_columns(pl.col("_bucket") + pl.lit([-1, 0, 1])).explode("_bucket")
    else:
        high = high.with_columns(pl.col("ds").dt.epoch("us").alias("_bucket"))
        other = high
    pairs = (
        high.join(other, on=["region", "_bucket"], suffix="_other")
        .filter(
            (pl.col("unique_id") != pl.col("unique_id_other"))
            & (pl.col("_source") != pl.col("_source_other"))
            & ((pl.col("ds") - pl.col("ds_other")).abs() <= window)
        )
        .group_by("_row")
        .agg(pl.col("unique_id_other").unique().sort().alias("corroborated_by"))
    )
    out = frame.join(pairs, on="_row", how="left").sort("_row")
    lowered = (pl.col("_rank") > int(cap)) & pl.col("corroborated_by").is_null()
    return out.with_columns(
        pl.col("level").alias("uncapped_level"),
        pl.when(lowered).then(pl.lit(cap.label)).otherwise(pl.col("level")).alias("level"),
        pl.when(lowered).then(pl.lit(cap.label)).otherwise(pl.lit(None, dtype=pl.Utf8)).alias("capped_at"),
        pl.col("corroborated_by").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
    ).select(*grades.columns, "uncapped_level", "capped_at", "corroborated_by")
