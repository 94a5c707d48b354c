"""Quarantine rules: reasons a parsed batch must not reach the warehouse.

A batch that parses can still be wrong. :func:`quarantine_findings` looks at the parsed
frames, what the warehouse already holds about the same series, and the clock, and returns
every reason it finds with the rows behind it (an empty list means the batch may be
committed; ``ews ingest file --dry-run`` shows the rows):

- **future timestamps**: an observation or event later than ``now + tolerance`` (a time-zone
  or clock error at the source; real data cannot come from the future);
- **impossible values**: a value outside the physical range of its variable
  (:data:`PHYSICAL_RANGES`, e.g. negative discharge, magnitude above 10.5, sea-ice extent above
  30 million km²), or outside the series' own declared bounds (``lower_bound`` /
  ``upper_bound`` of its metadata: the forecasts rely on them);
- **wrong units**: the batch declares a unit different from the one stored for the same
  series, or (for variables that are strictly positive levels, :data:`SCALE_CHECKED`) its
  median differs from the stored median by more than :data:`SCALE_FACTOR` times, the mark of
  ft³/s loaded as m³/s or metres as millimetres.

Pure functions: frames and values in, reasons out; no database, no clock of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

__all__ = [
    "PHYSICAL_RANGES",
    "SCALE_CHECKED",
    "SCALE_FACTOR",
    "Profile",
    "Finding",
    "quarantine_findings",
]

#: variable -> (lowest, highest) physically possible value, in the unit the parsers store.
PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "discharge": (0.0, 400_000.0),  # m3/s; the Amazon's largest floods stay below 400,000
    "mean_sea_level": (-20_000.0, 50_000.0),  # mm on a tide-gauge datum (PSMSL RLR sits near 7,000)
    "event_count": (0.0, 1e6),
    "max_magnitude": (-3.0, 10.5),
    "magnitude": (-3.0, 10.5),
    "log10_energy": (0.0, 25.0),  # joules; an M10.5 gives 20.55
    "sea_ice_extent": (0.0, 30.0),  # 10^6 km2; the Arctic peaks near 16
    "displacement_north": (-1e5, 1e5),  # mm: 100 m of motion is a broken series, not tectonics
    "displacement_east": (-1e5, 1e5),
    "displacement_up": (-1e5, 1e5),
    "unemployment_rate": (0.0, 100.0),
    "exchange_rate": (0.0, 1e7),
    "close": (0.0, 1e9),
    "t2m": (-95.0, 70.0),  # degrees C at 2 m
    "prectotcorr": (0.0, 2_000.0),  # mm/day
    "sst_mean": (-3.0, 40.0),
    "sst_max": (-3.0, 40.0),
}

#: Variables that are strictly positive levels, where a jump of the median by a large factor
#: against the stored history means a unit mix-up, not a change in the world.
SCALE_CHECKED = frozenset(
    {"discharge", "mean_sea_level", "sea_ice_extent", "exchange_rate", "close", "consumer_price_index"}
)
SCALE_FACTOR = 20.0
_MIN_POINTS_FOR_SCALE = 10


@dataclass(frozen=True)
class Profile:
    """What the warehouse holds about one series before the batch."""

    unit: str | None
    median: float | None
    count: int


@dataclass(frozen=True)
class Finding:
    """One reason to quarantine a batch and the rows behind it: observations (``unique_id,
    ds, y``) or catalog events (``event_id, time, magnitude``); for a unit mismatch, every
    row of the series in the batch."""

    reason: str
    rows: pl.DataFrame


def _future(series: pl.DataFrame, events: pl.DataFrame | None, limit: datetime) -> list[Finding]:
    findings = []
    late = series.filter(pl.col("ds") > limit).sort("ds")
    if late.height:
        first = late.row(0, named=True)
        findings.append(
            Finding(
                f"future timestamps: {late.height} observation(s) after {limit:%Y-%m-%d %H:%M} UTC "
                f"(first {first['unique_id']} at {first['ds']})",
                late.select("unique_id", "ds", "y"),
            )
        )
    if events is not None and events.height:
        ahead = events.filter(pl.col("time") > limit).sort("time")
        if ahead.height:
            findings.append(
                Finding(
                    f"future timestamps: {ahead.height} event(s) after {limit:%Y-%m-%d %H:%M} UTC "
                    f"(first {ahead.get_column('time')[0]})",
                    ahead.select("event_id", "time", "magnitude"),
                )
            )
    return findings


def _impossible(series: pl.DataFrame, variables: dict[str, str], events: pl.DataFrame | None) -> list[Finding]:
    findings = []
    checks = pl.DataFrame(
        [(uid, *PHYSICAL_RANGES[var]) for uid, var in variables.items() if var in PHYSICAL_RANGES],
        schema={"unique_id": pl.Utf8, "low": pl.Float64, "high": pl.Float64},
        orient="row",
    )
    if checks.height:
        bad = series.join(checks, on="unique_id").filter((pl.col("y") < pl.col("low")) | (pl.col("y") > pl.col("high")))
        for uid, rows in bad.group_by("unique_id", maintain_order=True):
            first = rows.row(0, named=True)
            findings.append(
                Finding(
                    f"impossible values: {rows.height} value(s) of {uid[0]} ({variables[uid[0]]}) outside "
                    f"{first['low']:g}..{first['high']:g}, first {first['y']:g} at {first['ds']}",
                    rows.select("unique_id", "ds", "y"),
                )
            )
    if events is not None and events.height:
        low, high = PHYSICAL_RANGES["magnitude"]
        wrong = events.filter((pl.col("magnitude") < low) | (pl.col("magnitude") > high))
        if wrong.height:
            findings.append(
                Finding(
                    f"impossible values: {wrong.height} event magnitude(s) outside {low:g}..{high:g}",
                    wrong.select("event_id", "time", "magnitude"),
                )
            )
    return findings


def _outside_bounds(series: pl.DataFrame, meta: pl.DataFrame) -> list[Finding]:
    """Values beyond the bounds the batch declares for their series."""
    if "lower_bound" not in meta.columns:
        return []
    bounds = meta.select("unique_id", "lower_bound", "upper_bound").filter(
        pl.col("lower_bound").is_not_null() | pl.col("upper_bound").is_not_null()
    )
    if bounds.height == 0:
        return []
    bad = series.join(bounds, on="unique_id").filter(
        (pl.col("y") < pl.col("lower_bound")).fill_null(False) | (pl.col("y") > pl.col("upper_bound")).fill_null(False)
    )
    findings = []
    for (uid,), rows in bad.group_by("unique_id", maintain_order=True):
        first = rows.row(0, named=True)
        low = "-inf" if first["lower_bound"] is None else f"{first['lower_bound']:g}"
        high = "inf" if first["upper_bound"] is None else f"{first['upper_bound']:g}"
        findings.append(
            Finding(
                f"impossible values: {rows.height} value(s) of {uid} outside its declared bounds "
                f"{low}..{high}, first {first['y']:g} at {first['ds']} (correct the data or the bounds option)",
                rows.select("unique_id", "ds", "y"),
            )
        )
    return findings


def _units(series: pl.DataFrame, meta: pl.DataFrame, stored: dict[str, Profile]) -> list[Finding]:
    findings = []
    medians = dict(series.group_by("unique_id").agg(pl.col("y").median()).iter_rows())
    counts = dict(series.group_by("unique_id").len().iter_rows())
    for row in meta.iter_rows(named=True):
        uid, unit, variable = row["unique_id"], row["unit"] or "", row["variable"] or ""
        before = stored.get(uid)
        if before is None:
            continue
        rows = series.filter(pl.col("unique_id") == uid).select("unique_id", "ds", "y")
        if before.unit is not None and before.unit != unit:
            findings.append(
                Finding(f"wrong units: {uid} is stored in {before.unit!r} but the batch says {unit!r}", rows)
            )
            continue
        new_median = medians.get(uid)
        if (
            variable in SCALE_CHECKED
            and before.median
            and new_median
            and before.median > 0
            and new_median > 0
            and before.count >= _MIN_POINTS_FOR_SCALE
            and counts.get(uid, 0) >= _MIN_POINTS_FOR_SCALE
        ):
            ratio = max(new_median / before.median, before.median / new_median)
            if ratio > SCALE_FACTOR:
                findings.append(
                    Finding(
                        f"wrong units: {uid} values have median {new_median:g} against {before.median:g} stored "
                        f"({ratio:.0f}x): a unit mix-up such as ft3/s for m3/s or m for mm",
                        rows,
                    )
                )
    return findings


def quarantine_findings(
    series: pl.DataFrame,
    meta: pl.DataFrame,
    events: pl.DataFrame | None,
    *,
    stored: dict[str, Profile],
    now: datetime,
    tolerance: timedelta,
) -> list[Finding]:
    """Every reason to quarantine the batch with its rows (see the module docstring); empty = commit it."""
    variables = dict(
        zip(meta.get_column("unique_id").to_list(), meta.get_column("variable").fill_null("").to_list(), strict=True)
    )
    return [
        *_future(series, events, now + tolerance),
        *_impossible(series, variables, events),
        *_outside_bounds(series, meta),
        *_units(series, meta, stored),
    ]
