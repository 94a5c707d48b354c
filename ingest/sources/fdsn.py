"""Earthquake catalogs in the two FDSN standard layouts: ``quakeml`` (QuakeML 1.2 XML) and
``fdsn_text`` (the ``format=text`` answer of any ``fdsnws-event`` service).

Both build the one events frame (:data:`ingest.sources.EVENT_SCHEMA`) through
:func:`ingest.sources.seismic.catalog_events` and hand it to the same region and daily-series
code as ``event_catalog`` and ``usgs_catalog`` (:func:`~ingest.sources.seismic.catalog_regions`,
:func:`~ingest.sources.seismic.catalog_parsed`): the daily count, max-magnitude and energy series
of a region do not depend on the layout the events came in.

``fdsn_text``: the header ``#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|
Contributor|ContributorID|MagType|Magnitude|MagAuthor|EventLocationName`` (FDSN web service
specification 1.2), optionally with a 14th ``EventType`` column (SeisComP services: EMSC, GFZ,
INGV, GeoNet); spaces around ``|`` (older IRIS and EMSC answers) are accepted. Times are UTC
(with or without ``Z``), depth is km. Rows without a time, latitude or longitude (no origin) or
without a magnitude are counted and named in the notes, not silently dropped.

``quakeml``: read with ObsPy's ``read_events`` (the QuakeML reader the seismological community
maintains and tests against the agencies' answers). It is used rather than lxml against the
QuakeML XSD because the schema only checks the shape: the reading that matters (resolving
``preferredOriginID`` / ``preferredMagnitudeID`` across the document, resource identifiers,
ISO times with and without offsets, QuakeML's own enumerations) would still be our own XML
walking. Per event: the preferred origin and preferred magnitude, else the first (said in the
notes); the event id is the ``eventid`` query parameter of the event's ``publicID`` if it has one
(USGS, IRIS, INGV), else its last path segment (EMSC ``quakeml:eu.emsc/event/20120404_0000041``);
times are UTC; **QuakeML depth is metres** and becomes km. Events without an origin or a
magnitude are counted and named in the notes; events of type ``not existing`` (withdrawn by the
agency) are left out and counted.

Options of both: ``regions`` (as every catalog), ``mag_types`` (keep those magnitude types),
``event_types`` (keep those event types, e.g. ``["earthquake"]``; default all but
``not existing``), ``event_id_prefix`` (default the file's name), ``source``, ``licence``,
``classification``.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from core.errors import ConfigError
from ingest.sources._common import Parsed, fail, parse_regions, read_text, snake
from ingest.sources.seismic import catalog_events, catalog_parsed, catalog_regions

__all__ = ["parse_quakeml", "parse_fdsn_text", "FDSN_TEXT_FIELDS", "quakeml_event_id"]

#: The columns of the FDSN ``format=text`` event answer (fdsnws-event 1.2), in order.
FDSN_TEXT_FIELDS = (
    "EventID",
    "Time",
    "Latitude",
    "Longitude",
    "Depth/km",
    "Author",
    "Catalog",
    "Contributor",
    "ContributorID",
    "MagType",
    "Magnitude",
    "MagAuthor",
    "EventLocationName",
)
_TEXT_READING = {
    "time": "Time",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "depth": "Depth/km",
    "magnitude": "Magnitude",
    "mag_type": "MagType",
    "event_id": "EventID",
}
_WITHDRAWN = "not existing"
_TEXT_FIX = (
    "an FDSN text answer has the header #EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|"
    "ContributorID|MagType|Magnitude|MagAuthor|EventLocationName (|EventType) and one event per line; "
    "ask the service with format=text, or read other tables with --format event_catalog"
)
_QUAKEML_FIX = (
    "a QuakeML 1.2 file (root q:quakeml, namespace http://quakeml.org/xmlns/bed/1.2) as an fdsnws-event "
    "service answers format=xml; re-download it whole, or ask the service for format=text"
)


def _check_options(path: Path, fmt: str, regions: Sequence[Mapping[str, object]] | None, event_types: object) -> None:
    if regions is not None:
        parse_regions(regions, what=f"{fmt} {path.name}")
    if event_types is not None and (isinstance(event_types, str) or not isinstance(event_types, Sequence)):
        raise ConfigError(
            f"{fmt} {path.name}: event_types={event_types!r} is not a list of event types",
            fix='write event_types=["earthquake"] (QuakeML / FDSN event types)',
        )


def _keep_types(
    table: pl.DataFrame, column: str, event_types: Sequence[str] | None, notes: list[str], *, what: str
) -> pl.DataFrame:
    """Count the event types; leave out withdrawn events and, with ``event_types``, other types."""
    types = table.get_column(column).fill_null("").str.strip_chars().str.to_lowercase()
    counts = types.value_counts(sort=True)
    if counts.height > 1 or (counts.height == 1 and counts.item(0, 0) != ""):
        notes.append("event types: " + ", ".join(f"{t or '(none)'} {n}" for t, n in counts.iter_rows()))
    keep = types != _WITHDRAWN
    if event_types is not None:
        wanted = {str(t).strip().lower() for t in event_types}
        keep = keep & types.is_in(list(wanted))
        if not keep.any():
            raise ConfigError(
                f"{what}: no event has a type in event_types={list(event_types)}",
                fix=f"choose among the types in the file: {sorted(set(types.to_list()))}",
            )
    dropped = table.filter(~keep)
    if dropped.height:
        why = f"not of the types {sorted(wanted)}" if event_types is not None else f"of type {_WITHDRAWN!r}"
        notes.append(f"left out {dropped.height} event(s) {why}: {_named(dropped.get_column('_id'))}")
    return table.filter(keep)


def _named(ids: pl.Series, limit: int = 5) -> str:
    shown = [str(v) for v in ids.head(limit).to_list()]
    return ", ".join(shown) + (f" and {ids.len() - limit} more" if ids.len() > limit else "")


def _parsed(
    path: Path,
    table: pl.DataFrame,
    reading: Mapping[str, str],
    *,
    regions: Sequence[Mapping[str, object]] | None,
    mag_types: Sequence[str] | None,
    event_id_prefix: str | None,
    source: str,
    licence: str,
    classification: str,
    notes: list[str],
    what: str,
) -> Parsed:
    """The shared catalog path: events (:func:`catalog_events`), regions, daily series."""
    if table.height == 0:
        raise fail(path, "holds no event with an origin and a magnitude", fix="check the query that made the file")
    events = catalog_events(
        path,
        table,
        reading,
        timezone="UTC",
        mag_types=mag_types,
        source=source,
        id_prefix=event_id_prefix or snake(path.stem),
        notes=notes,
    )
    boxes, region_notes = catalog_regions(path, events, regions, what=what)
    notes.extend(region_notes)
    return catalog_parsed(
        path, events, boxes, notes=notes, source=source, licence=licence, classification=classification
    )


# -- FDSN text -----------------------------------------------------------------------------
def _text_header(path: Path, line: str) -> list[str]:
    fields = [f.strip() for f in line.lstrip("\ufeff").lstrip("#").split("|")]
    if not line.lstrip("\ufeff").startswith("#") or [f.lower() for f in fields[:13]] != [
        f.lower() for f in FDSN_TEXT_FIELDS
    ]:
        raise fail(path, f"line 1 is not the FDSN text header: {line[:120]!r}", fix=_TEXT_FIX)
    if len(fields) > 14 or (len(fields) == 14 and fields[13].lower() != "eventtype"):
        raise fail(path, f"line 1 has unknown column(s) after EventLocationName: {fields[13:]}", fix=_TEXT_FIX)
    return [*FDSN_TEXT_FIELDS, *(["EventType"] if len(fields) == 14 else [])]


def _text_table(path: Path, text: str) -> tuple[list[str], pl.DataFrame]:
    lines = text.split("\n")
    header = _text_header(path, lines[0])
    rows: list[list[str]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != len(header):
            raise fail(
                path,
                f"line {number} has {len(fields)} '|'-separated fields, the header {len(header)}: {line[:120]!r}",
                fix="re-download the answer whole (a cut or hand-edited file); " + _TEXT_FIX,
            )
        rows.append(fields)
        numbers.append(number)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header)}
    table = pl.DataFrame({"_line": numbers, **columns}, schema={"_line": pl.Int64, **dict.fromkeys(header, pl.Utf8)})
    return header, table


def parse_fdsn_text(
    path: Path,
    *,
    regions: Sequence[Mapping[str, object]] | None = None,
    mag_types: Sequence[str] | None = None,
    event_types: Sequence[str] | None = None,
    event_id_prefix: str | None = None,
    source: str = "FDSN event service (format=text)",
    licence: str = "terms of the agency that answered; cite it",
    classification: str = "public",
) -> Parsed:
    """Parse an FDSN ``format=text`` event answer (module docstring) into events and daily series."""
    path = Path(path)
    _check_options(path, "fdsn_text", regions, event_types)
    text, used = read_text(path, encodings=("utf-8", "latin-1"))
    header, table = _text_table(path, text)
    notes = [] if used == "utf-8" else [f"decoded as {used} (the file is not valid UTF-8)"]
    notes.append(
        "FDSN text columns: time 'Time' (UTC), latitude 'Latitude', longitude 'Longitude', depth 'Depth/km' (km), "
        "magnitude 'Magnitude', magnitude type 'MagType', event id 'EventID'"
        + (", event type 'EventType'" if "EventType" in header else "")
    )
    table = table.with_columns(pl.col("EventID").alias("_id"))
    if "EventType" in header:
        table = _keep_types(table, "EventType", event_types, notes, what=f"fdsn_text {path.name}")
    elif event_types is not None:
        raise ConfigError(
            f"fdsn_text {path.name}: event_types= needs the EventType column, which this answer lacks",
            fix="leave event_types out, or ask the service for event types (SeisComP services add EventType)",
        )
    blank = [pl.col(c).str.strip_chars().fill_null("") == "" for c in ("Time", "Latitude", "Longitude")]
    no_origin = table.filter(pl.any_horizontal(blank))
    if no_origin.height:
        notes.append(
            f"left out {no_origin.height} event(s) without an origin (blank time, latitude or longitude): "
            + _named(no_origin.select(pl.format("{} (line {})", "_id", "_line")).to_series())
        )
    table = table.filter(~pl.any_horizontal(blank))
    no_mag = table.filter(pl.col("Magnitude").str.strip_chars().fill_null("") == "")
    if no_mag.height:
        notes.append(
            f"left out {no_mag.height} event(s) without a magnitude: "
            + _named(no_mag.select(pl.format("{} (line {})", "_id", "_line")).to_series())
        )
    table = table.filter(pl.col("Magnitude").str.strip_chars().fill_null("") != "")
    return _parsed(
        path,
        table.drop("_id"),
        _TEXT_READING,
        regions=regions,
        mag_types=mag_types,
        event_id_prefix=event_id_prefix,
        source=source,
        licence=licence,
        classification=classification,
        notes=notes,
        what=f"catalog {path.name}",
    )


# -- QuakeML -------------------------------------------------------------------------------
def quakeml_event_id(public_id: str) -> str:
    """The agency's event id in a QuakeML ``publicID``: its ``eventid`` query parameter, else
    its last path segment (``smi:...query?eventId=25883871`` -> ``25883871``,
    ``quakeml:eu.emsc/event/20120404_0000041`` -> ``20120404_0000041``)."""
    parts = urllib.parse.urlsplit(public_id.replace("&amp;", "&"))
    query = {k.lower(): v for k, v in urllib.parse.parse_qsl(parts.query)}
    if query.get("eventid"):
        return query["eventid"]
    tail = re.split(r"[/#=]", public_id.rstrip("/"))[-1]
    return tail or public_id


def _read_catalog(path: Path) -> tuple[Any, list[str]]:
    if not path.read_bytes().strip():
        raise fail(path, "is empty", fix=_QUAKEML_FIX)
    try:
        from obspy import read_events
    except ImportError:  # pragma: no cover - obspy is a runtime dependency (pyproject.toml)
        raise ConfigError(
            "reading QuakeML needs ObsPy, which is not installed", fix="pip install obspy (or reinstall ews)"
        ) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            catalog = read_events(str(path), format="QUAKEML")
        except Exception as exc:  # noqa: BLE001 - ObsPy raises bare Exception/ValueError/lxml errors
            raise fail(
                path, f"is not a readable QuakeML 1.2 document ({type(exc).__name__}: {exc})", fix=_QUAKEML_FIX
            ) from None
    said = list(dict.fromkeys(str(w.message) for w in caught))
    return catalog, [f"ObsPy: {m}" for m in said[:3]] + (
        [f"ObsPy: {len(said) - 3} more warning(s)"] if len(said) > 3 else []
    )


def _pick(event: Any, kind: str) -> tuple[Any, bool]:
    """The preferred origin/magnitude of ``event``, else its first; True when it fell back."""
    chosen = event.preferred_origin() if kind == "origin" else event.preferred_magnitude()
    if chosen is not None:
        return chosen, False
    listed = event.origins if kind == "origin" else event.magnitudes
    return (listed[0], True) if listed else (None, False)


def _check_range(path: Path, public_id: str, name: str, value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise fail(
            path,
            f"event {public_id}: {name} {value} is outside {low:g}..{high:g}",
            fix="correct the event in the file (or leave it out); " + _QUAKEML_FIX,
        )
    return value


def parse_quakeml(
    path: Path,
    *,
    regions: Sequence[Mapping[str, object]] | None = None,
    mag_types: Sequence[str] | None = None,
    event_types: Sequence[str] | None = None,
    event_id_prefix: str | None = None,
    source: str = "FDSN event service (QuakeML 1.2)",
    licence: str = "terms of the agency that answered; cite it",
    classification: str = "public",
) -> Parsed:
    """Parse a QuakeML 1.2 file with ObsPy (module docstring) into events and daily series."""
    path = Path(path)
    _check_options(path, "quakeml", regions, event_types)
    catalog, notes = _read_catalog(path)
    rows: list[dict[str, Any]] = []
    no_origin: list[str] = []
    no_magnitude: list[str] = []
    fell_back = {"origin": 0, "magnitude": 0}
    for event in catalog:
        public_id = str(event.resource_id.id)
        origin, origin_first = _pick(event, "origin")
        magnitude, magnitude_first = _pick(event, "magnitude")
        if origin is None or origin.time is None or origin.latitude is None or origin.longitude is None:
            no_origin.append(public_id)
            continue
        if magnitude is None or magnitude.mag is None:
            no_magnitude.append(public_id)
            continue
        fell_back["origin"] += origin_first
        fell_back["magnitude"] += magnitude_first
        depth = None if origin.depth is None else float(origin.depth) / 1000.0  # QuakeML depth is metres
        rows.append(
            {
                "_line": len(rows) + 1,
                "_id": public_id,
                "time": origin.time.datetime.replace(tzinfo=datetime.UTC),
                "latitude": _check_range(path, public_id, "latitude", float(origin.latitude), -90.0, 90.0),
                "longitude": _check_range(path, public_id, "longitude", float(origin.longitude), -180.0, 360.0),
                "depth_km": depth,
                "magnitude": _check_range(path, public_id, "magnitude", float(magnitude.mag), -3.0, 10.5),
                "mag_type": magnitude.magnitude_type or "",
                "event_id": quakeml_event_id(public_id),
                "event_type": str(event.event_type or ""),
            }
        )
    notes.append(
        f"QuakeML read with ObsPy read_events: {len(catalog)} event(s); time, latitude, longitude and depth "
        "from each event's preferred origin (depth metres -> km), magnitude and its type from the preferred "
        "magnitude, event id from the event's publicID"
    )
    for kind, count in fell_back.items():
        if count:
            notes.append(f"{count} event(s) name no (resolvable) preferred {kind}: their first {kind} was used")
    if no_origin:
        notes.append(
            f"left out {len(no_origin)} event(s) without an origin (time, latitude, longitude): "
            + _named(pl.Series(no_origin))
        )
    if no_magnitude:
        notes.append(f"left out {len(no_magnitude)} event(s) without a magnitude: " + _named(pl.Series(no_magnitude)))
    schema: dict[str, Any] = {
        "_line": pl.Int64,
        "_id": pl.Utf8,
        "time": pl.Datetime("us", "UTC"),
        "latitude": pl.Float64,
        "longitude": pl.Float64,
        "depth_km": pl.Float64,
        "magnitude": pl.Float64,
        "mag_type": pl.Utf8,
        "event_id": pl.Utf8,
        "event_type": pl.Utf8,
    }
    table = pl.DataFrame(rows, schema=schema)
    if table.height:
        table = _keep_types(table, "event_type", event_types, notes, what=f"quakeml {path.name}")
    reading = {
        "time": "time",
        "latitude": "latitude",
        "longitude": "longitude",
        "depth": "depth_km",
        "magnitude": "magnitude",
        "mag_type": "mag_type",
        "event_id": "event_id",
    }
    return _parsed(
        path,
        table.drop("_id", "event_type"),
        reading,
        regions=regions,
        mag_types=mag_types,
        event_id_prefix=event_id_prefix,
        source=source,
        licence=licence,
        classification=classification,
        notes=notes,
        what=f"catalog {path.name}",
    )
