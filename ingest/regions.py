"""Regions by id: ews.toml's ``[regions]`` turned into the region dicts parsers take.

A source's ``regions`` option (``[ingest.sources.NAME]``, ``ews ingest file --option``, the
bundled catalogue) may list ids of ``[regions]`` (``regions = ["japan", "sichuan"]``), inline
tables, or both. :func:`resolve_regions` replaces each id with its definition, so parsers stay
pure and see region dicts only (:mod:`ingest.sources._regions`); the batch id then reflects the
definition, so a region redrawn in ews.toml reloads the file instead of skipping it.

A ``geojson`` region reads its file (relative to EWS_HOME) here: a FeatureCollection, a
Feature, or a bare Polygon / MultiPolygon geometry, longitude first (RFC 7946, WGS 84).
``match = {property = value, ...}`` keeps the features whose properties equal every value
(e.g. ``{ name_zh = "四川省" }`` in a province boundary file); without ``match`` every
feature's polygons make up the region.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.settings import Settings

__all__ = ["resolve_regions", "resolve_region_option", "read_geojson_polygons"]

_WGS84 = ("urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326")


def _features(data: Any, path: Path) -> list[dict[str, Any]]:
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "FeatureCollection" and isinstance(data.get("features"), list):
        return [f for f in data["features"] if isinstance(f, dict)]
    if kind == "Feature":
        return [data]
    if kind in ("Polygon", "MultiPolygon"):
        return [{"type": "Feature", "properties": {}, "geometry": data}]
    raise ConfigError(
        f"{path}: GeoJSON type {kind!r} holds no polygons",
        fix="give a FeatureCollection, Feature, Polygon or MultiPolygon (RFC 7946)",
    )


def read_geojson_polygons(path: Path, match: Mapping[str, Any] | None = None) -> list[Any]:
    """The polygons (each a list of [lon, lat] rings) of a GeoJSON file's matching features."""
    if not path.is_file():
        raise ConfigError(f"no GeoJSON file at {path}", fix="geojson paths are relative to EWS_HOME; check the name")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not GeoJSON ({exc})", fix="save the file as UTF-8 GeoJSON") from None
    crs = ((data.get("crs") or {}).get("properties") or {}).get("name") if isinstance(data, dict) else None
    if crs is not None and crs not in _WGS84:
        raise ConfigError(
            f"{path}: coordinates are in {crs}, not longitude/latitude",
            fix="export the file in WGS 84 (EPSG:4326 / CRS84) longitude, latitude",
        )
    features = _features(data, path)
    if match:
        chosen = [f for f in features if all((f.get("properties") or {}).get(k) == v for k, v in match.items())]
        if not chosen:
            key = next(iter(match))
            values = sorted({str((f.get("properties") or {}).get(key)) for f in features})
            raise ConfigError(
                f"{path}: no feature has {dict(match)}",
                fix=f"values of {key!r} in the file: {', '.join(values[:40])}" + (" ..." if len(values) > 40 else ""),
            )
        features = chosen
    polygons: list[Any] = []
    for feature in features:
        geometry = feature.get("geometry") or {}
        if geometry.get("type") == "Polygon":
            polygons.append(geometry["coordinates"])
        elif geometry.get("type") == "MultiPolygon":
            polygons.extend(geometry["coordinates"])
    if not polygons:
        raise ConfigError(f"{path}: the chosen features hold no Polygon or MultiPolygon", fix="pick polygon features")
    return polygons


def _definition(region_id: str, settings: Settings) -> dict[str, Any]:
    table = settings.regions.tables.get(region_id)
    if table is None:
        known = settings.regions.ids
        raise ConfigError(
            f"region id {region_id!r} is not defined in [regions] of {settings.config_file}"
            f" (known ids: {', '.join(known) if known else 'none'})",
            fix=f'add {region_id} = {{ name = "...", min_lat = ..., max_lat = ..., min_lon = ..., max_lon = ... }}'
            " under [regions] in ews.toml, or use one of the known ids",
        )
    spec: dict[str, Any] = {"id": region_id, "name": table.get("name", region_id)}
    if "geojson" in table:
        path = Path(str(table["geojson"])).expanduser()
        path = path if path.is_absolute() else settings.home / path
        spec["polygon"] = read_geojson_polygons(path, table.get("match"))
    else:
        spec.update({k: v for k, v in table.items() if k not in ("name", "match")})
    return spec


def resolve_regions(value: Any, settings: Settings, *, what: str) -> list[dict[str, Any]]:
    """Region dicts from a ``regions`` option: ids of ``[regions]`` and inline tables, in order."""
    items: Sequence[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence):
        raise ConfigError(
            f"{what}: regions = {value!r} is not a list",
            fix='write regions = ["japan"] (ids of [regions] in ews.toml) or a list of region tables',
        )
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            out.append(_definition(item, settings))
        elif isinstance(item, Mapping):
            out.append(dict(item))
        else:
            raise ConfigError(
                f"{what}: region {item!r} is neither an id nor a table",
                fix='write regions = ["japan", { id = "x", name = "X", min_lat = ..., ... }]',
            )
    return out


def resolve_region_option(options: dict[str, Any], settings: Settings, *, what: str) -> dict[str, Any]:
    """``options`` with its ``regions`` (if any) resolved to region dicts."""
    if options.get("regions") is None:
        return options
    return {**options, "regions": resolve_regions(options["regions"], settings, what=what)}
