"""Earthquake catalogs: ``event_catalog`` (any table with a column map), and the two
layouts the engine was built around, ``usgs_catalog`` and ``cenc_catalog``, which are fixed
column maps over the same code (:func:`catalog_parsed`).

``event_catalog`` reads CSV / TSV / ``|`` / ``;`` text, Parquet or Excel, maps the columns
from header synonyms (:mod:`ingest.sources.catalog_columns`; ``columns=`` overrides any
role) and converts times from ``timezone`` (IANA name or fixed offset; default UTC, or the
zone the time column's name states, e.g. ``发震时刻(UTC+8)``) to naive UTC. Magnitude types:
a mapped ``mag_type`` column is counted in the notes and ``mag_types=[...]`` keeps only
those types; ``mag_type="ML"`` states the one type of a file without such a column. The
events table stores one magnitude per event, not its type.

``usgs_catalog`` reads the two ComCat layouts by their own column names:

- ComCat query CSV (or a column subset of it): ``time,latitude,longitude,depth,mag,...`` with
  ISO times ending in ``Z`` (UTC); an ``id`` column is used for event ids when present.
- The EarthquakeNPP "processed" catalog: ``id,time,longitude,latitude,magnitude,x,y`` with
  ``YYYY-MM-DD HH:MM:SS.fff`` times in UTC and no depth.

Files are decoded as UTF-8, else cp1252, else latin-1 (ComCat exports with damaged place names
are cp1252). Times become naive UTC microseconds; a catalog kept in local time (e.g. Beijing
time) is shifted with ``utc_offset_hours=8``. Exact duplicates by (time, lat, lon, magnitude)
are dropped and counted.

``cenc_catalog`` reads the China Earthquake Networks Center export
(``Time,Latitude,Longitude,Magnitude,Depth,None``): ``event_catalog`` with times in Beijing
time (a fixed UTC+8, ``utc_offset_hours``) converted to UTC, and a depth of -1 meaning unknown.

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
from typing import Any, cast

import polars as pl

from core.errors import ConfigError
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
from ingest.sources.catalog_columns import (
    MAGNITUDE_TYPE_OF_COLUMN,
    choose_reading,
    describe_reading,
    event_times,
    header_kinds,
    normalise_header,
    read_catalog_table,
)

__all__ = [
    "parse_event_catalog",
    "parse_usgs_catalog",
    "parse_cenc_catalog",
    "catalog_events",
    "catalog_parsed",
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


def _comcat_columns(path: Path, raw: pl.DataFrame) -> dict[str, str]:
    """ComCat's column map: time, latitude, longitude, magnitude, and depth and id when present."""
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
            "or the processed layout (id,time,longitude,latitude,magnitude); other layouts: --format event_catalog",
        )
    reading = {
        "time": str(found["time"]),
        "latitude": str(found["latitude"]),
        "longitude": str(found["longitude"]),
        "magnitude": str(found["mag or magnitude"]),
    }
    optional = {
        "depth": _column(raw, "depth", "depth_km"),
        "event_id": _column(raw, "id"),
        "mag_type": _column(raw, "magtype"),
    }
    return reading | {role: col for role, col in optional.items() if col is not None}


def _within(path: Path, values: pl.Series, lines: pl.Series, *, column: str, low: float, high: float) -> pl.Series:
    outside = (values < low) | (values > high)
    if outside.any():
        idx = int(outside.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, column {column!r}: {values[idx]} is outside {low}..{high}",
            fix=f"check the column order (or the columns= map); {column!r} must hold values in {low}..{high}",
        )
    return values


def _numbers(path: Path, raw: pl.Series, lines: pl.Series, *, column: str, low: float, high: float) -> pl.Series:
    """Finite numbers within low..high from text or a typed column; errors name line and column."""
    text = raw if raw.dtype == pl.Utf8 else raw.cast(pl.Utf8)
    return _within(path, to_float(path, text, lines, column=column), lines, column=column, low=low, high=high)


def _depths(path: Path, raw: pl.Series, lines: pl.Series, *, column: str, unknown: float | None) -> pl.Series:
    """Depth in km, null where blank (or equal to ``unknown``)."""
    text = raw if raw.dtype == pl.Utf8 else raw.cast(pl.Utf8)
    present = (text.is_not_null() & (text.str.strip_chars() != "")).fill_null(False)
    depth = pl.Series("depth_km", [None] * raw.len(), dtype=pl.Float64)
    if present.any():
        parsed = to_float(path, text.filter(present), lines.filter(present), column=column)
        depth = depth.scatter(present.arg_true(), parsed)
    if unknown is not None:
        depth = depth.set(depth == unknown, None)
    return depth


def _event_ids(ids: pl.Series | None, time: pl.Series, lat: pl.Series, lon: pl.Series, prefix: str) -> pl.Series:
    if ids is not None:
        return pl.Series([f"{prefix}:{v}" for v in ids.cast(pl.Utf8).fill_null("").to_list()])
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


def _magnitude_types(
    path: Path,
    table: pl.DataFrame,
    reading: Mapping[str, str],
    *,
    mag_type: str | None,
    mag_types: Sequence[str] | None,
    notes: list[str],
) -> pl.DataFrame:
    """Apply the magnitude-type options: count the types, keep ``mag_types``, note a stated type."""
    type_col = reading.get("mag_type")
    named = MAGNITUDE_TYPE_OF_COLUMN.get(normalise_header(reading["magnitude"]))
    if mag_type is not None and (type_col is not None or mag_types is not None):
        raise ConfigError(
            f"{path.name}: mag_type={mag_type!r} states one type for the file, but "
            + (f"the file has a magnitude-type column {type_col!r}" if type_col else "mag_types= is also given"),
            fix="use mag_types=[...] to keep some types of the column, or drop mag_type=",
        )
    if type_col is None:
        if mag_types is not None:
            raise ConfigError(
                f"{path.name}: mag_types={list(mag_types)} needs a magnitude-type column, and none is mapped",
                fix="map it with columns={'mag_type': '<column>'}, or state the file's one type with mag_type='ML'",
            )
        stated = mag_type or named
        if stated:
            how = "mag_type=" if mag_type else f"the column name {reading['magnitude']!r}"
            notes.append(f"magnitudes are {stated} (stated by {how})")
        return table
    types = table.get_column(type_col).cast(pl.Utf8).str.strip_chars().fill_null("")
    counts = types.value_counts(sort=True)
    listed = ", ".join(f"{t or '(blank)'} {n}" for t, n in counts.iter_rows())
    notes.append(f"magnitude types in {type_col!r}: {listed}")
    if mag_types is None:
        if counts.height > 1:
            notes.append(
                "the daily max-magnitude and energy series mix these magnitude types; "
                "pass mag_types=[...] to keep one scale"
            )
        return table
    wanted = {str(t).strip().lower() for t in mag_types}
    keep = types.str.to_lowercase().is_in(list(wanted))
    if not keep.any():
        raise ConfigError(
            f"{path.name}: no event has a magnitude type in mag_types={list(mag_types)}",
            fix=f"choose among the types in the file: {[t for t in counts.get_column(type_col).to_list()]}",
        )
    notes.append(
        f"kept {int(keep.sum())} event(s) of magnitude type(s) {sorted(wanted)}; "
        f"dropped {int((~keep).sum())} of other types"
    )
    return table.filter(keep)


def catalog_events(
    path: Path,
    table: pl.DataFrame,
    reading: Mapping[str, str],
    *,
    timezone: str | None,
    time_format: str | None = None,
    unknown_depth: float | None = None,
    mag_type: str | None = None,
    mag_types: Sequence[str] | None = None,
    source: str,
    id_prefix: str,
    notes: list[str],
) -> pl.DataFrame:
    """One row per event (:data:`EVENT_SCHEMA`) from a table with a ``_line`` column and a column map.

    Times become naive UTC; latitude must lie in -90..90, longitude in -180..360, magnitude
    in -3..10.5; a blank depth (or one equal to ``unknown_depth``) is null; exact repeats by
    (time, lat, lon, magnitude) are dropped and counted in ``notes``.
    """
    table = _magnitude_types(path, table, reading, mag_type=mag_type, mag_types=mag_types, notes=notes)
    lines = table.get_column("_line")
    time, time_notes = event_times(path, table, reading, timezone=timezone, time_format=time_format)
    notes.extend(time_notes)
    lat_col, lon_col, mag_col = reading["latitude"], reading["longitude"], reading["magnitude"]
    lat = _numbers(path, table.get_column(lat_col), lines, column=lat_col, low=-90.0, high=90.0)
    lon = _numbers(path, table.get_column(lon_col), lines, column=lon_col, low=-180.0, high=360.0)
    mag = _numbers(path, table.get_column(mag_col), lines, column=mag_col, low=-3.0, high=10.5)
    depth_col = reading.get("depth")
    if depth_col is None:
        depth = pl.Series("depth_km", [None] * table.height, dtype=pl.Float64)
        notes.append("the catalog has no depth column; depth_km is null")
    else:
        depth = _depths(path, table.get_column(depth_col), lines, column=depth_col, unknown=unknown_depth)
        if unknown_depth is not None:
            notes.append(f"{depth.null_count()} event(s) without a depth (blank or {unknown_depth:g})")
    id_col = reading.get("event_id")
    events = pl.DataFrame(
        {
            "event_id": _event_ids(None if id_col is None else table.get_column(id_col), time, lat, lon, id_prefix),
            "time": time,
            "lat": lat,
            "lon": lon,
            "depth_km": depth,
            "magnitude": mag,
            "source": source,
        }
    )
    events = _deduplicate(events, notes)
    return events.select([pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()]).sort("time")


def catalog_parsed(
    path: Path,
    events: pl.DataFrame,
    boxes: Sequence[Region],
    *,
    notes: Sequence[str],
    source: str,
    licence: str,
    classification: str,
) -> Parsed:
    """Events plus their daily series per region (:func:`daily_event_series`), validated."""
    days = events.get_column("time").dt.truncate("1d")
    if days.len() == 0:
        raise fail(path, "yields no events", fix="check the file and the options (mag_types ...)")
    # a Datetime column (EVENT_SCHEMA) with at least one row (checked above)
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
    return finish(path, frames, meta, notes=[*notes, *more], events=events)


def _regions(path: Path, regions: Sequence[Mapping[str, object]] | None, fmt: str) -> None:
    """Refuse bad region options before the file is read (no regions: the extent, found later)."""
    if regions is not None:
        parse_regions(regions, what=f"{fmt} {path.name}")


def _parse_table(
    path: Path,
    table: pl.DataFrame,
    reading: Mapping[str, str],
    *,
    regions: Sequence[Mapping[str, object]] | None,
    notes: list[str],
    event_id_prefix: str | None,
    source: str,
    licence: str,
    classification: str,
    **event_options: Any,
) -> Parsed:
    """Events of a mapped table (:func:`catalog_events`) and their daily series per region."""
    events = catalog_events(
        path,
        table,
        reading,
        source=source,
        id_prefix=event_id_prefix or snake(path.stem),
        notes=notes,
        **event_options,
    )
    if events.height == 0:
        raise fail(path, "yields no events", fix="check the file and the options (mag_types ...)")
    boxes, region_notes = catalog_regions(path, events, regions, what=f"catalog {path.name}")
    notes.extend(region_notes)
    return catalog_parsed(
        path, events, boxes, notes=notes, source=source, licence=licence, classification=classification
    )


def _offset_zone(hours: float) -> str:
    """``8`` -> ``'+08:00'``: the fixed offset ``utc_offset_hours`` names."""
    minutes = round(abs(hours) * 60)
    return f"{'-' if hours < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


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


def parse_event_catalog(
    path: Path,
    *,
    columns: Mapping[str, str] | None = None,
    timezone: str | None = None,
    time_format: str | None = None,
    mag_type: str | None = None,
    mag_types: Sequence[str] | None = None,
    unknown_depth: float | None = None,
    regions: Sequence[Mapping[str, object]] | None = None,
    sep: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    event_id_prefix: str | None = None,
    source: str = "earthquake catalog (event_catalog)",
    licence: str = "terms of the catalog's publisher; cite it",
    classification: str = "public",
) -> Parsed:
    """Parse any tabular earthquake catalog (CSV/TSV/``|``/``;``, Parquet, Excel) with a column map.

    ``columns`` maps roles (time, or date + time; magnitude; latitude; longitude; optional
    depth, mag_type, event_id, place) to column names; roles it leaves out are found from
    header synonyms, and a header that reads more than one way stops with every reading.
    ``timezone``: the zone of times without their own ``Z``/offset (IANA name or ``+hh:mm``;
    default the zone the time column's name states, else UTC). ``time_format``: strftime
    layout when the times are not year-first. ``mag_types`` keeps events of those magnitude
    types (needs a mag_type column); ``mag_type`` states the one type of the whole file.
    ``unknown_depth``: a depth value that means "unknown" (CENC's -1).
    """
    path = Path(path)
    _regions(path, regions, "event_catalog")  # a bad region is refused before the file is read
    if columns is not None and not isinstance(columns, Mapping):
        raise ConfigError(
            f"event_catalog {path.name}: columns={columns!r} is not a table of role -> column",
            fix="""write e.g. --option 'columns={"time": "Timestamp", "magnitude": "ML"}'""",
        )
    table, notes = read_catalog_table(path, sep=sep, sheet=sheet, encoding=encoding)
    header = [c for c in table.columns if c != "_line"]
    reading = choose_reading(path, header, fixed=columns, kinds=header_kinds(table.select(header).head(20)))
    given = f"{len(columns)} from columns=, the rest " if columns else ""
    notes.append(f"mapped columns ({given}from the header): {describe_reading(reading)}")
    return _parse_table(
        path,
        table,
        reading,
        regions=regions,
        notes=notes,
        event_id_prefix=event_id_prefix,
        source=source,
        licence=licence,
        classification=classification,
        timezone=timezone,
        time_format=time_format,
        unknown_depth=unknown_depth,
        mag_type=mag_type,
        mag_types=mag_types,
    )


def parse_usgs_catalog(
    path: Path,
    *,
    regions: Sequence[Mapping[str, object]] | None = None,
    encoding: str | None = None,
    utc_offset_hours: float = 0.0,
    event_id_prefix: str | None = None,
    unknown_depth: float | None = None,
    mag_types: Sequence[str] | None = None,
    source: str = _SOURCE,
    licence: str = _LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse a ComCat CSV (or the processed layout): ComCat's column names over the shared catalog code.

    ``mag_types`` keeps the events whose ``magType`` is one of them (e.g. ``["mww", "mwr"]``).
    """
    path = Path(path)
    _regions(path, regions, "usgs_catalog")  # a bad region is refused before the file is read
    text, used = read_text(path, encodings=(encoding,) if encoding else _ENCODINGS)
    table = read_delimited(path, text).with_row_index("_line", offset=2)
    return _parse_table(
        path,
        table,
        _comcat_columns(path, table),
        regions=regions,
        notes=[] if used == "utf-8" else [f"decoded as {used} (the file is not valid UTF-8)"],
        event_id_prefix=event_id_prefix,
        source=source,
        licence=licence,
        classification=classification,
        timezone=_offset_zone(utc_offset_hours),
        unknown_depth=unknown_depth,
        mag_types=mag_types,
    )


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
    """Parse a CENC catalog: ``event_catalog`` in fixed Beijing time (UTC+8), depth -1 = unknown.

    Beijing time here is the fixed UTC+8 of the catalog, not the ``Asia/Shanghai`` zone, which
    observed summer time from 1986 to 1991.
    """
    return parse_event_catalog(
        path,
        regions=regions,
        encoding="utf-8",
        timezone=_offset_zone(utc_offset_hours),
        unknown_depth=-1.0,
        event_id_prefix=event_id_prefix or snake(Path(path).stem),
        source=source,
        licence=licence,
        classification=classification,
    )
