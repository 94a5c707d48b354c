"""Seismic indicators specialists read: rate against background, magnitude, energy, b-value drift.

Input: an event frame ``time, magnitude`` (already cut to the region of interest; the
warehouse ``events`` table or :func:`ingest.sources.parse_usgs_catalog` give it).

:func:`seismic_indicators`, one row per day (UTC) from the first to the last event day:

- ``events``: events that day; ``rate_ratio``: events in the last ``window_days`` over the
  count expected from the ``background_days`` before them;
- ``rate_p_value``: one-sided Poisson test ``P(N >= observed | background rate)`` (a small
  value = a significant swarm or sequence);
- ``max_magnitude`` (NaN on a quiet day) and ``log10_energy`` (log10 of joules summed with
  log10 E = 1.5 M + 4.8, Gutenberg-Richter; NaN on a quiet day);
- ``b_value``: Aki-Utsu maximum-likelihood b over the last ``b_events`` events above the
  completeness magnitude ``mc`` (maximum curvature + 0.2 unless given),
  ``b_value_background`` over the ``b_events`` before those, and ``b_drift`` their
  difference (falling b before large events is the classic precursor claim).

:func:`seismic_rate_scores` turns the rate test into the score contract (detector
``seismic_rate``): ``raw_score = -log10(p)``, ``score = 1 - p`` (a significance already is a
calibrated probability, so it is not re-ranked).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import polars as pl
from scipy.stats import poisson

from core.errors import FrameError

__all__ = ["SEISMIC_RATE_DETECTOR", "seismic_indicators", "seismic_rate_scores", "b_value", "completeness_magnitude"]

SEISMIC_RATE_DETECTOR = "seismic_rate"
_BIN = 0.1  # magnitude rounding of catalogs


def completeness_magnitude(magnitudes: np.ndarray) -> float:
    """Maximum-curvature completeness (the most frequent 0.1 bin) plus the usual 0.2."""
    mags = np.round(np.asarray(magnitudes, dtype=np.float64) / _BIN) * _BIN
    values, counts = np.unique(mags, return_counts=True)
    return float(values[np.argmax(counts)] + 0.2)


def b_value(magnitudes: np.ndarray, mc: float) -> float:
    """Aki-Utsu estimate ``log10(e) / (mean(M) - (mc - 0.05))`` over events with ``M >= mc``."""
    above = np.asarray(magnitudes, dtype=np.float64)
    above = above[above >= mc - 1e-9]
    if len(above) < 10:
        return float("nan")
    return float(math.log10(math.e) / (above.mean() - (mc - _BIN / 2.0)))


def seismic_indicators(
    events: pl.DataFrame,
    *,
    window_days: int = 7,
    background_days: int = 365,
    b_events: int = 100,
    mc: float | None = None,
) -> pl.DataFrame:
    """Daily seismic indicators (module docstring)."""
    missing = [c for c in ("time", "magnitude") if c not in events.columns]
    if missing:
        raise FrameError(
            f"event frame lacks {missing}; it has {events.columns}",
            fix="pass events with columns time (UTC datetime) and magnitude",
        )
    if window_days < 1 or background_days <= window_days:
        raise FrameError(
            f"window_days={window_days}, background_days={background_days}",
            fix="need 1 <= window_days < background_days, e.g. 7 and 365",
        )
    ev = events.select(pl.col("time").cast(pl.Datetime("us")), pl.col("magnitude").cast(pl.Float64)).sort("time")
    if ev.height == 0:
        raise FrameError("event frame is empty", fix="widen the region or the time range")
    mags = ev.get_column("magnitude").to_numpy()
    mc = completeness_magnitude(mags) if mc is None else mc
    daily = (
        ev.with_columns(
            pl.col("time").dt.truncate("1d").alias("ds"), (10 ** (1.5 * pl.col("magnitude") + 4.8)).alias("energy")
        )
        .group_by("ds")
        .agg(
            pl.len().alias("events"),
            pl.col("magnitude").max().alias("max_magnitude"),
            pl.col("energy").sum().log10().alias("log10_energy"),
        )
    )
    first = cast(datetime, daily.get_column("ds").min())  # the frame has rows: checked on entry
    last = cast(datetime, daily.get_column("ds").max())
    grid = pl.DataFrame({"ds": pl.datetime_range(first, last, timedelta(days=1), eager=True)})
    frame = grid.join(daily, on="ds", how="left").with_columns(pl.col("events").fill_null(0))
    counts = frame.get_column("events").to_numpy().astype(np.float64)
    recent = pl.Series(counts).rolling_sum(window_days, min_samples=1).to_numpy()
    background = pl.Series(counts).rolling_sum(background_days, min_samples=1).shift(window_days).to_numpy()
    days_seen = np.minimum(np.arange(len(counts)) - window_days + 1, background_days).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A floor of half an event per background span: a silent background is not a zero rate.
        expected = np.maximum(np.nan_to_num(background, nan=0.0), 0.5) * window_days / np.maximum(days_seen, 1.0)
        ratio = np.where(days_seen >= window_days, recent / expected, np.nan)
        p_value = np.where(days_seen >= window_days, poisson.sf(recent - 1, expected), np.nan)
    b_now, b_before = _b_series(ev, frame.get_column("ds"), mc, b_events)
    return frame.with_columns(
        pl.Series("rate_ratio", ratio),
        pl.Series("rate_p_value", p_value),
        pl.Series("b_value", b_now),
        pl.Series("b_value_background", b_before),
        pl.Series("b_drift", b_now - b_before),
        pl.lit(mc).alias("mc"),
    ).select(
        "ds",
        "events",
        "rate_ratio",
        "rate_p_value",
        "max_magnitude",
        "log10_energy",
        "b_value",
        "b_value_background",
        "b_drift",
        "mc",
    )


def _b_series(ev: pl.DataFrame, days: pl.Series, mc: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """b over the last ``n`` complete events up to each day's end, and over the ``n`` before."""
    complete = ev.filter(pl.col("magnitude") >= mc - 1e-9)
    times = complete.get_column("time").to_numpy()
    mags = complete.get_column("magnitude").to_numpy()
    ends = np.searchsorted(times, (days + timedelta(days=1)).to_numpy(), side="left")
    now = np.full(len(ends), np.nan)
    before = np.full(len(ends), np.nan)
    for i, end in enumerate(ends):
        if end >= n:
            now[i] = b_value(mags[end - n : end], mc)
        if end >= 2 * n:
            before[i] = b_value(mags[end - 2 * n : end - n], mc)
    return now, before


def seismic_rate_scores(indicators: pl.DataFrame, *, unique_id: str) -> pl.DataFrame:
    """Score rows (detector ``seismic_rate``) from :func:`seismic_indicators`."""
    frame = indicators.filter(pl.col("rate_p_value").is_not_null() & pl.col("rate_p_value").is_not_nan())
    p = frame.get_column("rate_p_value").clip(1e-300, 1.0)
    return frame.select(
        pl.lit(unique_id).alias("unique_id"),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.lit(SEISMIC_RATE_DETECTOR).alias("detector"),
        (-p.log10()).alias("raw_score"),
        (1.0 - p).alias("score"),
    )
