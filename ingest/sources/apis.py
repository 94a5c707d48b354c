"""Parsers for JSON answers of public data APIs (what the network connectors land on disk).

- ``nasa_power_json``: NASA POWER daily point answer: ``properties.parameter.<PARAM>.<YYYYMMDD>``
  = value, ``header.fill_value`` (-999) = missing (dropped, counted), ``parameters.<PARAM>.units``
  and ``longname``, ``geometry.coordinates`` = [lon, lat, elevation]. One daily series per
  parameter, ``<site>_<param lower-cased>``.
- ``usgs_water_json``: USGS Water Data OGC API ``collections/daily/items`` GeoJSON
  (``features[].properties``: ``time``, ``value`` (text), ``unit_of_measure``,
  ``monitoring_location_id``, ``parameter_code``). Discharge in ``ft^3/s`` is converted to m³/s
  (the same ``usgs_<site>_discharge`` series as ``nwis_rdb``); a null value is a missing day.
  A document may hold several pages as ``{"pages": [FeatureCollection, ...]}`` (what the
  connector writes when it follows ``next`` links).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from core.errors import ConfigError
from ingest.sources._common import (
    Parsed,
    check_frequency,
    fail,
    finish,
    meta_row,
    read_text,
    snake,
    to_datetime,
    to_float,
)
from ingest.sources.hydro import CFS_TO_CMS

__all__ = ["parse_nasa_power_json", "parse_usgs_water_json"]

_POWER_SOURCE = "NASA Langley Research Center POWER Project (daily point API)"
_POWER_LICENCE = "NASA open data; cite the NASA Langley Research Center POWER Project"
_USGS_SOURCE = "U.S. Geological Survey, Water Data OGC API (daily values)"
_USGS_LICENCE = "public domain (USGS); cite USGS water data"
_CFS_UNITS = {"ft^3/s", "ft3/s", "cfs"}
_CMS_UNITS = {"m^3/s", "m3/s", "cms"}


def _json(path: Path, what: str, fix: str) -> Any:
    text, _ = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(
            path,
            f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            fix=f"the {what} answer was cut off or is not JSON; {fix}",
        ) from None


def parse_nasa_power_json(
    path: Path,
    *,
    site_id: str,
    site_name: str | None = None,
    domain: str = "hydro",
    region: str = "",
    source: str = _POWER_SOURCE,
    licence: str = _POWER_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse a POWER daily point answer into one daily series per parameter."""
    path = Path(path)
    doc = _json(path, "NASA POWER", "fetch it again with format=JSON")
    try:
        parameters: dict[str, dict[str, Any]] = doc["properties"]["parameter"]
        fill = float(doc.get("header", {}).get("fill_value", -999.0))
        coords = doc.get("geometry", {}).get("coordinates") or [None, None]
    except (KeyError, TypeError, AttributeError):
        raise fail(
            path, "has no properties.parameter table", fix="request /api/temporal/daily/point with format=JSON"
        ) from None
    if not isinstance(parameters, dict) or not parameters:
        raise fail(path, "lists no parameter", fix="request at least one parameter, e.g. parameters=PRECTOTCORR")
    info = doc.get("parameters", {}) if isinstance(doc.get("parameters"), dict) else {}
    frames, meta, notes = [], [], []
    for name, values in sorted(parameters.items()):
        if not isinstance(values, dict):
            raise fail(
                path,
                f"parameter {name!r} is not a date -> value table",
                fix="fetch the daily (not climatology) endpoint",
            )
        raw = pl.DataFrame(
            {"day": list(values), "value": [str(v) for v in values.values()]}, schema={"day": pl.Utf8, "value": pl.Utf8}
        ).with_row_index("_line", offset=1)
        lines = raw.get_column("_line")
        ds = to_datetime(path, raw.get_column("day"), "%Y%m%d", lines, column=f"{name} date", example="20200131")
        y = to_float(path, raw.get_column("value"), lines, column=name)
        frame = pl.DataFrame({"ds": ds, "y": y})
        missing = frame.get_column("y") == fill
        frame = frame.filter(~missing)
        uid = f"{site_id}_{snake(name)}"
        notes.append(f"{name}: {frame.height} value(s), {int(missing.sum())} fill value(s) {fill:g} dropped")
        if frame.height == 0:
            continue
        check_frequency(path, frame.get_column("ds"), "D", what=f"parameter {name!r}")
        details = info.get(name, {}) if isinstance(info.get(name), dict) else {}
        frames.append(frame.select(pl.lit(uid).alias("unique_id"), "ds", "y"))
        meta.append(
            meta_row(
                unique_id=uid,
                domain=domain,
                name=f"{site_name or site_id}: {details.get('longname', name)}",
                variable=snake(name),
                unit=str(details.get("units", "")),
                frequency="D",
                region=region,
                lat=coords[1] if len(coords) > 1 else None,
                lon=coords[0],
                source=source,
                licence=licence,
                classification=classification,
            )
        )
    if not frames:
        raise fail(path, "holds only fill values", fix="ask for a period with data")
    return finish(path, frames, meta, notes=notes)


def _features(path: Path, doc: Any) -> list[dict[str, Any]]:
    pages = doc["pages"] if isinstance(doc, dict) and "pages" in doc else [doc]
    features: list[dict[str, Any]] = []
    for page in pages:
        if not isinstance(page, dict) or not isinstance(page.get("features"), list):
            raise fail(
                path,
                "is not a GeoJSON FeatureCollection (no 'features' list)",
                fix="request collections/daily/items with f=json",
            )
        features.extend(page["features"])
    return features


def parse_usgs_water_json(
    path: Path,
    *,
    lat: float | None = None,
    lon: float | None = None,
    region: str = "",
    name: str | None = None,
    source: str = _USGS_SOURCE,
    licence: str = _USGS_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse OGC API daily discharge items into one m³/s series per monitoring location."""
    path = Path(path)
    features = _features(path, _json(path, "USGS water data", "fetch it again with f=json"))
    if not features:
        raise fail(path, "holds no feature (no daily value in the window)", fix="widen the time window")
    rows = []
    for i, feature in enumerate(features, start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict) or "time" not in props or "monitoring_location_id" not in props:
            raise fail(
                path, f"feature {i} lacks properties.time or monitoring_location_id", fix="fetch the items again"
            )
        rows.append(
            {
                "site": str(props["monitoring_location_id"]),
                "time": str(props["time"])[:10],
                "value": None if props.get("value") is None else str(props["value"]),
                "unit": str(props.get("unit_of_measure") or ""),
                "parameter": str(props.get("parameter_code") or ""),
            }
        )
        if i == 1 and isinstance(feature.get("geometry"), dict) and lat is None:
            coordinates = feature["geometry"].get("coordinates") or [None, None]
            lon, lat = coordinates[0], coordinates[1]
    table = pl.DataFrame(
        rows, schema={"site": pl.Utf8, "time": pl.Utf8, "value": pl.Utf8, "unit": pl.Utf8, "parameter": pl.Utf8}
    ).with_row_index("_line", offset=1)
    other = sorted(set(table.get_column("parameter").to_list()) - {"00060", ""})
    if other:
        raise ConfigError(
            f"{path.name}: parameter code(s) {other} are not daily discharge (00060)",
            fix="request parameter_code=00060",
        )
    units = set(table.get_column("unit").to_list())
    unknown = units - _CFS_UNITS - _CMS_UNITS
    if unknown:
        raise fail(
            path,
            f"discharge is in unit(s) {sorted(unknown)}, expected ft^3/s or m^3/s",
            fix="check the parameter code; only discharge is converted",
        )
    missing = table.get_column("value").is_null() | (table.get_column("value") == "")
    kept = table.filter(~missing)
    lines = kept.get_column("_line")
    ds = to_datetime(path, kept.get_column("time"), "%Y-%m-%d", lines, column="time", example="2020-10-24")
    value = to_float(path, kept.get_column("value"), lines, column="value")
    factor = pl.when(kept.get_column("unit").is_in(list(_CFS_UNITS))).then(CFS_TO_CMS).otherwise(1.0)
    frame = pl.DataFrame({"site": kept.get_column("site"), "ds": ds, "y": value}).with_columns(
        (pl.col("y") * pl.select(factor).to_series()).alias("y")
    )
    notes = [f"{len(features)} daily item(s); {int(missing.sum())} without a value dropped"]
    if units & _CFS_UNITS:
        notes.append(f"converted discharge from ft³/s to m³/s (× {CFS_TO_CMS})")
    frames, meta = [], []
    for site in sorted(frame.get_column("site").unique().to_list()):
        number = site.split("-", 1)[-1]
        uid = f"usgs_{snake(number).removeprefix('s_')}_discharge"
        part = frame.filter(pl.col("site") == site)
        check_frequency(path, part.get_column("ds"), "D", what=f"site {site}")
        frames.append(part.select(pl.lit(uid).alias("unique_id"), "ds", "y"))
        meta.append(
            meta_row(
                unique_id=uid,
                domain="hydro",
                name=name or f"USGS {number} daily discharge",
                variable="discharge",
                unit="m3/s",
                frequency="D",
                region=region,
                lat=lat,
                lon=lon,
                source=source,
                licence=licence,
                classification=classification,
            )
        )
    return finish(path, frames, meta, notes=notes)
