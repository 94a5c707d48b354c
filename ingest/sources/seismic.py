"""Parser for USGS ComCat-style earthquake catalogs (``usgs_catalog``).

Two layouts are recognised from the header:

- ComCat query CSV (or a column subset of it): ``time,latitude,longitude,depth,mag,...`` with
  ISO times ending in ``Z`` (UTC); an ``id`` column is used for event ids when present.
- The EarthquakeNPP "processed" catalog: ``id,time,longitude,latitude,magnitude,x,y`` with
  ``YYYY-MM-DD HH:MM:SS.fff`` times in UTC and no depth.

Files are decoded as UTF-8, else cp1252, else latin-1 (ComCat exports with damaged place names
are cp1252). Times become naive UTC microseconds; a catalog kept in local time (e.g. Beijing
time) is shifted with ``utc_offset_hours=8``. Exact duplicates by (time, lat, lon, magnitude)
are dropped and counted.

``cenc_catalog`` reads the China Earthquake Networks Center export
(``Time,Latitude,Longitude,Magnitude,Depth,None``): times are Beijing time (UTC+8) and are
converted to UTC, a depth of -1 means unknown (null), and exact repeats are dropped.

Returns ``events`` (one row per event, see ``EVENT_SCHEMA``) and, for every region of
``regions`` (default: one region spanning the catalog's events, rounded out to whole degrees
and named after the file; events outside every region given are counted in the notes with the
ews.toml line of a region that holds them, see :func:`catalog_regions`), three
calendar-daily series (:func:`daily_event_series`, which the ingest step also runs on the
stored events so that overlapping or incremental batches give the same daily values):

- ``<region>_count``: events per UTC day, zero-filled from the catalog's first to last event day;
- ``<region>_max_mag``: largest magnitude of the day (days with events only);
- ``<region>_energy``: log10 of the day's summed radiated energy in joules, with the
  Gutenberg-Richter relation log10 E = 1.5 M + 4.8 (days with events only).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import polars as pl

from ingest.sources._common import (
    EVENT_SCHEMA,
    Parsed,
    Region,
    extent_region,
    fail,
    finish,
    in_region,
    meta_row,
    parse_regions,
    read_delimited,
    read_text,
    region_toml,
    snake,
    to_float,
)

__all__ = [
    "parse_usgs_catalog",
    "parse_cenc_catalog",
    "log10_energy_joules",
    "daily_event_series",
    "default_regions",
    "catalog_regions",
]

_ENCODINGS = ("utf-8", "cp1252", "latin-1")
_SOURCE = "USGS ANSS Comprehensive Catalog (ComCat)"
_LICENCE = "public domain (USGS); cite the U.S. Geological Survey ANSS ComCat"


def log10_energy_joules(magnitude: pl.Expr) -> pl.Expr:
    """Gutenberg-Richter energy: log10 E[J] = 1.5 M + 4.8."""
    return 1.5 * magnitude + 4.8


def _column(df: pl.DataFrame, *names: str) -> str | None:
    """The first of ``names`` present in the header, compared case-insensitively."""
    lowered = {c.lower(): c for c in df.columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _parse_times(path: Path, raw: pl.Series, lines: pl.Series) -> pl.Series:
    """ISO times with 'T' or space, optional fraction, optional trailing 'Z' (all UTC)."""
    normalised = raw.str.replace(r"Z$", "").str.replace("T", " ", literal=True)
    values = normalised.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    bad = values.is_null().fill_null(True)
    if bad.any():
        idx = int(bad.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, column 'time': expected a UTC time like 2011-03-11T05:46:24.120Z, got {raw[idx]!r}",
            fix="times must be ISO 8601 in UTC ('Z' suffix or none); for local-time catalogs pass utc_offset_hours=",
        )
    return values


def _core_columns(path: Path, raw: pl.DataFrame) -> tuple[str, str, str, str]:
    """Names of the time, latitude, longitude and magnitude columns in either layout."""
    found = {
        "time": _column(raw, "time"),
        "latitude": _column(raw, "latitude", "lat"),
        "longitude": _column(raw, "longitude", "lon"),
        "mag or magnitude": _column(raw, "mag", "magnitude"),
    }
    missing = [want for want, got in found.items() if got is None]
    if missing:
        raise fail(
            path,
            f"lacks column(s) {missing} in its header; it has {[c for c in raw.columns if c != '_line']}",
            fix="use a ComCat CSV (time,latitude,longitude,depth,mag,...) "
            "or the processed layout (id,time,longitude,latitude,magnitude)",
        )
    time_col, lat_col, lon_col, mag_col = (str(v) for v in found.values())
    return time_col, lat_col, lon_col, mag_col


def _within(path: Path, values: pl.Series, lines: pl.Series, *, column: str, low: float, high: float) -> pl.Series:
    outside = (values < low) | (values > high)
    if outside.any():
        idx = int(outside.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, column {column!r}: {values[idx]} is outside {low}..{high}",
            fix=f"check the column order; {column!r} must hold values in {low}..{high}",
        )
    return values


def _depths(path: Path, raw: pl.DataFrame, lines: pl.Series, unknown: float | None = None) -> pl.Series | None:
    """Depth in km, null where blank (or equal to ``unknown``); None when the catalog has no depth column."""
    depth_col = _column(raw, "depth", "depth_km")
    if depth_col is None:
        return None
    depth_raw = raw.get_column(depth_col)
    present = (depth_raw.is_not_null() & (depth_raw != "")).fill_null(False)
    depth = pl.Series("depth_km", [None] * raw.height, dtype=pl.Float64)
    if present.any():
        parsed = to_float(path, depth_raw.filter(present), lines.filter(present), column=depth_col)
        depth = depth.scatter(present.arg_true(), parsed)
    if unknown is not None:
        depth = depth.set(depth == unknown, None)
    return depth


def _event_ids(raw: pl.DataFrame, time: pl.Series, lat: pl.Series, lon: pl.Series, prefix: str) -> pl.Series:
    id_col = _column(raw, "id")
    if id_col is not None:
        return pl.Series([f"{prefix}:{v}" for v in raw.get_column(id_col).fill_null("").to_list()])
    # No id in the file: time and place identify an event; keep it readable.
    return pl.Series(
        [
            f"{prefix}:{t:%Y%m%dT%H%M%S.%f}:{a:.4f}:{o:.4f}"
            for t, a, o in zip(time.to_list(), lat.to_list(), lon.to_list(), strict=True)
        ]
    )


def _deduplicate(events: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    before = events.height
    events = events.unique(subset=["time", "lat", "lon", "magnitude"], keep="first", maintain_order=True)
    if events.height < before:
        notes.append(f"dropped {before - events.height} duplicated event(s) (same time, lat, lon, magnitude)")
    shared = events.get_column("event_id").is_duplicated()
    if shared.any():
        # Distinct events under one id would collide downstream; make them unique and say so.
        events = events.with_columns(
            pl.when(pl.col("event_id").is_duplicated())
            .then(pl.col("event_id") + ":" + pl.int_range(pl.len()).over("event_id").cast(pl.Utf8))
            .otherwise(pl.col("event_id"))
        )
        notes.append(f"{int(shared.sum())} event(s) shared an id; suffixed ':<n>' to keep ids unique")
    return events


def _read_events(
    path: Path,
    *,
    encoding: str | None,
    utc_offset_hours: float,
    source: str,
    id_prefix: str,
    unknown_depth: float | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    text, used = read_text(path, encodings=(encoding,) if encoding else _ENCODINGS)
    raw = read_delimited(path, text).with_row_index("_line", offset=2)
    notes: list[str] = [] if used == "utf-8" else [f"decoded as {used} (the file is not valid UTF-8)"]
    time_col, lat_col, lon_col, mag_col = _core_columns(path, raw)
    lines = raw.get_column("_line")
    time = _parse_times(path, raw.get_column(time_col), lines)
    if utc_offset_hours:
        time = time - datetime.timedelta(hours=utc_offset_hours)
        notes.append(f"converted local time (UTC{utc_offset_hours:+g} h) to UTC")
    lat = _within(
        path,
        to_float(path, raw.get_column(lat_col), lines, column=lat_col),
        lines,
        column=lat_col,
        low=-90.0,
        high=90.0,
    )
    lon = _within(
        path,
        to_float(path, raw.get_column(lon_col), lines, column=lon_col),
        lines,
        column=lon_col,
        low=-180.0,
        high=360.0,
    )
    mag = _within(
        path, to_float(path, raw.get_column(mag_col), lines, column=mag_col), lines, column=mag_col, low=-3.0, high=10.5
    )
    depth = _depths(path, raw, lines, unknown_depth)
    if unknown_depth is not None and depth is not None:
        notes.append(f"{depth.null_count()} event(s) without a depth (blank or {unknown_depth:g})")
    if depth is None:
        depth = pl.Series("depth_km", [None] * raw.height, dtype=pl.Float64)
        notes.append("the catalog has no depth column; depth_km is null")
    events = pl.DataFrame(
        {
            "event_id": _event_ids(raw, time, lat, lon, id_prefix),
            "time": time,
            "lat": lat,
            "lon": lon,
            "depth_km": depth,
            "magnitude": mag,
            "source": source,
        }
    )
    events = _deduplicate(events, notes)
    return events.select([pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()]).sort("time"), notes


def _regional_series(events: pl.DataFrame, box: Region, calendar: pl.Series) -> list[pl.DataFrame]:
    daily = (
        events.filter(in_region(pl.col("lat"), pl.col("lon"), box))
        .group_by(pl.col("time").dt.truncate("1d").alias("ds"))
        .agg(
            pl.len().cast(pl.Float64).alias("count"),
            pl.col("magnitude").max().alias("max_mag"),
            # log10(sum 10^(1.5 M + 4.8)) computed around the day's maximum to stay in range.
            (
                log10_energy_joules(pl.col("magnitude").max())
                + (10.0 ** (1.5 * (pl.col("magnitude") - pl.col("magnitude").max()))).sum().log10()
            ).alias("energy"),
        )
    )
    counts = (
        pl.DataFrame({"ds": calendar})
        .join(daily.select("ds", "count"), on="ds", how="left")
        .with_columns(pl.col("count").fill_null(0.0))
    )
    return [
        counts.select(pl.lit(f"{box.id}_count").alias("unique_id"), "ds", pl.col("count").alias("y")),
        daily.select(pl.lit(f"{box.id}_max_mag").alias("unique_id"), "ds", pl.col("max_mag").alias("y")),
        daily.select(pl.lit(f"{box.id}_energy").alias("unique_id"), "ds", pl.col("energy").alias("y")),
    ]


def default_regions(path: Path, events: pl.DataFrame) -> list[dict[str, object]]:
    """One region spanning the catalog's events, rounded out to whole degrees, named after the file."""
    return [
        extent_region(
            events.get_column("lat").to_numpy(),
            events.get_column("lon").to_numpy(),
            region_id=snake(Path(path).stem),
            name=f"events in {Path(path).name}",
        )
    ]


def catalog_regions(
    path: Path, events: pl.DataFrame, regions: Sequence[Mapping[str, object]] | None, *, what: str
) -> tuple[list[Region], list[str]]:
    """The regions a catalog's daily series are made for, and notes saying what they leave out.

    No regions given, or none holding any event: one region spanning the events' extent
    (:func:`default_regions`). Events outside every region stay in the events table; the notes
    count them and give the ews.toml line of a region that would hold them.
    """
    add = 'then list its id in the regions option (regions = ["{id}"])'
    if regions is None:
        spec = default_regions(path, events)[0]
        note = (
            f"no regions given: one region {spec['id']!r} spanning the catalog's extent "
            f"(lat {spec['min_lat']:g}..{spec['max_lat']:g}, lon {spec['min_lon']:g}..{spec['max_lon']:g}); "
            f"to choose your own, put under [regions] in ews.toml: {region_toml(spec)} and edit it, "
            + add.format(id=spec["id"])
        )
        return parse_regions([spec], what=what), [note]
    boxes = parse_regions(regions, what=what)
    if events.height == 0:
        return boxes, []
    covered = pl.any_horizontal([in_region(pl.col("lat"), pl.col("lon"), box) for box in boxes])
    outside = events.filter(~covered)
    if outside.height == 0:
        return boxes, []
    ids = [b.id for b in boxes]
    if outside.height == events.height:
        spec = default_regions(path, events)[0]
        if spec["id"] in ids:
            spec["id"] = f"{spec['id']}_extent"
        note = (
            f"none of the {events.height} event(s) lies in the regions {ids}: added one region {spec['id']!r} "
            f"spanning the catalog's extent; to keep it, put under [regions] in ews.toml: {region_toml(spec)} "
            f"and {add.format(id=spec['id'])}"
        )
        return [*boxes, *parse_regions([spec], what=what)], [note]
    rest = default_regions(path, outside)[0]
    rest["id"], rest["name"] = f"{rest['id']}_outside", f"events of {Path(path).name} outside {', '.join(ids)}"
    return boxes, [
        f"{outside.height} of {events.height} event(s) lie outside every region {ids} "
        f"(lat {rest['min_lat']:g}..{rest['max_lat']:g}, lon {rest['min_lon']:g}..{rest['max_lon']:g}): "
        "they are kept in the events table but counted in no daily series; to count them, put under [regions] "
        f"in ews.toml: {region_toml(rest)} and {add.format(id=rest['id'])}"
    ]


def daily_event_series(
    events: pl.DataFrame,
    boxes: Sequence[Region],
    *,
    first_day: datetime.datetime,
    last_day: datetime.datetime,
    source: str,
    licence: str,
    classification: str,
) -> tuple[list[pl.DataFrame], list[dict[str, object]], list[str]]:
    """Daily count (zero-filled over ``first_day..last_day``), max magnitude and log10 energy per region."""
    calendar = pl.datetime_range(first_day, last_day, interval="1d", time_unit="us", eager=True)
    events = events.filter(pl.col("time").is_between(first_day, last_day + datetime.timedelta(days=1), closed="left"))
    frames: list[pl.DataFrame] = []
    meta: list[dict[str, object]] = []
    notes: list[str] = []
    for box in boxes:
        parts = [p for p in _regional_series(events, box, calendar) if p.height]
        n_events = int(events.select(in_region(pl.col("lat"), pl.col("lon"), box).sum()).item())
        notes.append(f"region {box.id}: {n_events} event(s)")
        lat, lon = box.centre
        specs = {
            f"{box.id}_count": ("event_count", "events/day", f"{box.name}: earthquakes per day"),
            f"{box.id}_max_mag": ("max_magnitude", "magnitude", f"{box.name}: largest magnitude of the day"),
            f"{box.id}_energy": ("log10_energy", "log10 J", f"{box.name}: log10 radiated energy per day"),
        }
        for part in parts:
            uid = part.get_column("unique_id")[0]
            variable, unit, name = specs[uid]
            frames.append(part)
            meta.append(
                meta_row(
                    unique_id=uid,
                    domain="seismic",
                    name=name,
                    variable=variable,
                    unit=unit,
                    frequency="D",
                    region=box.name,
                    lat=lat,
                    lon=lon,
                    source=source,
                    licence=licence,
                    classification=classification,
                )
            )
        if n_events == 0:
            notes.append(f"region {box.id} has no events: only its all-zero count series is returned")
    return frames, meta, notes


def parse_usgs_catalog(
    path: Path,
    *,
    regions: Sequence[Mapping[str, object]] | None = None,
    encoding: str | None = None,
    utc_offset_hours: float = 0.0,
    event_id_prefix: str | None = None,
    unknown_depth: float | None = None,
    source: str = _SOURCE,
    licence: str = _LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse an earthquake catalog into events plus daily count / max-magnitude / energy series per region."""
    path = Path(path)
    if regions is not None:
        parse_regions(regions, what=f"usgs_catalog {path.name}")  # bad options fail before the file is read
    events, notes = _read_events(
        path,
        encoding=encoding,
        utc_offset_hours=utc_offset_hours,
        source=source,
        id_prefix=event_id_prefix or snake(path.stem),
        unknown_depth=unknown_depth,
    )
    boxes, region_notes = catalog_regions(path, events, regions, what=f"usgs_catalog {path.name}")
    notes.extend(region_notes)
    days = events.get_column("time").dt.truncate("1d")
    # a Datetime column (EVENT_SCHEMA) with a row per data line (read_delimited refuses a file without)
    first_day, last_day = cast(datetime.datetime, days.min()), cast(datetime.datetime, days.max())
    frames, meta, more = daily_event_series(
        events,
        boxes,
        first_day=first_day,
        last_day=last_day,
        source=source,
        licence=licence,
        classification=classification,
    )
    return finish(path, frames, meta, notes=notes + more, events=events)


def parse_cenc_catalog(
    path: Path,
    *,
    regions: Sequence[Mapping[str, object]] | None = None,
    utc_offset_hours: float = 8.0,
    event_id_prefix: str | None = None,
    source: str = "China Earthquake Networks Center (CENC)",
    licence: str = "terms of the China Earthquake Networks Center; cite CENC",
    classification: str = "public",
) -> Parsed:
    """Parse a CENC catalog (Beijing time, depth -1 = unknown) like ``usgs_catalog``."""
    return parse_usgs_catalog(
        path,
        regions=regions,
        encoding="utf-8",
        utc_offset_hours=utc_offset_hours,
        event_id_prefix=event_id_prefix or snake(Path(path).stem),
        unknown_depth=-1.0,
        source=source,
        licence=licence,
        classification=classification,
    )
