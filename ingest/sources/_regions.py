"""Regions: latitude/longitude boxes and polygons, checked once and shared by every source.

A region dict is what a parser receives (``regions=[...]``); ids defined in ews.toml's
``[regions]`` table are turned into such dicts before a parser sees them
(:mod:`ingest.regions`). Three shapes:

- a box ``{id, name, min_lat, max_lat, min_lon, max_lon}``; longitudes in -180..180 or 0..360,
  and ``min_lon > max_lon`` (e.g. 170 .. -170) is a box across the antimeridian;
- a polygon ``{id, name, polygon}`` whose ``polygon`` is nested like GeoJSON coordinates: a
  ring ``[[lon, lat], ...]``, a polygon with holes ``[ring, hole, ...]``, or several polygons
  ``[[ring, hole, ...], ...]``. A point belongs to the region when it lies inside one of the
  polygons (even-odd rule over that polygon's rings, so holes are left out).

Point-in-polygon is a vectorised ray-casting test (:func:`points_in_polygon`): the engine
already depends on numpy, and one routine serves catalogs, grids and stations alike. Point
longitudes are compared within 180 degrees of each ring's first vertex, so a polygon written
in -180..180 matches points in 0..360, and a polygon drawn across the antimeridian (vertices
at 179 and -179) works.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError

__all__ = [
    "Region",
    "parse_regions",
    "in_region",
    "points_in_polygon",
    "region_contains",
    "extent_region",
    "region_toml",
    "assign_regions",
]

Ring = tuple[tuple[float, float], ...]
_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_POLYGON_FIX = (
    "write polygon = [[lon, lat], [lon, lat], [lon, lat], ...] (at least 3 vertices), "
    "or a list of such rings (the first one outer, the others holes)"
)


@dataclass(frozen=True)
class Region:
    """A latitude/longitude box, or a polygon (then the box is its bounding box).

    Longitudes may be given in -180..180 or 0..360; ``min_lon > max_lon`` crosses the
    antimeridian. ``polygon`` holds polygons, each a tuple of (lon, lat) rings (outer first,
    then holes).
    """

    id: str
    name: str
    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float
    polygon: tuple[tuple[Ring, ...], ...] | None = None

    @property
    def centre(self) -> tuple[float, float]:
        """Box centre as (lat, lon) with lon in -180..180 (boxes across 0°E are handled)."""
        lo = self.min_lon % 360.0
        span = 360.0 if self.max_lon - self.min_lon >= 360.0 else (self.max_lon % 360.0 - lo) % 360.0
        lon = (lo + span / 2.0) % 360.0
        return (self.min_lat + self.max_lat) / 2.0, (lon - 360.0 if lon > 180.0 else lon)


def _depth(value: Any) -> int:
    """Nesting depth of a coordinate list: 1 for a [lon, lat] pair, 2 for a ring, and so on."""
    depth = 0
    while isinstance(value, Sequence) and not isinstance(value, str) and value:
        depth, value = depth + 1, value[0]
    return depth


def _ring(raw: Any, rid: object, what: str) -> Ring:
    try:
        ring = tuple((float(v[0]), float(v[1])) for v in raw)
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"{what}: region {rid!r} polygon must hold [lon, lat] pairs", fix=_POLYGON_FIX) from None
    if len({*ring}) < 3:
        raise ConfigError(f"{what}: region {rid!r} polygon has {len(ring)} vertices", fix=_POLYGON_FIX)
    if not all(-90.0 <= lat <= 90.0 and -180.0 <= lon <= 360.0 for lon, lat in ring):
        raise ConfigError(
            f"{what}: region {rid!r} polygon has a vertex outside lat -90..90, lon -180..360",
            fix="give vertices as [lon, lat] (longitude first, as in GeoJSON) in decimal degrees",
        )
    return ring


def _polygons(raw: Any, rid: object, what: str) -> tuple[tuple[Ring, ...], ...]:
    """A ring, a polygon (rings) or a multipolygon (polygons) as a tuple of polygons."""
    depth = _depth(raw)
    if depth == 2:
        return ((_ring(raw, rid, what),),)
    if depth == 3:
        return (tuple(_ring(r, rid, what) for r in raw),)
    if depth == 4:
        return tuple(tuple(_ring(r, rid, what) for r in poly) for poly in raw)
    if depth < 2 and isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) < 3:
        raise ConfigError(f"{what}: region {rid!r} polygon has {len(raw)} vertices", fix=_POLYGON_FIX)
    raise ConfigError(f"{what}: region {rid!r} polygon is not a list of [lon, lat] rings", fix=_POLYGON_FIX)


def _wrap(lon: np.ndarray, ref: float) -> np.ndarray:
    """Longitudes moved by whole turns to lie within 180 degrees of ``ref``."""
    return ((np.asarray(lon, dtype=np.float64) - ref + 180.0) % 360.0) + ref - 180.0


def _bounding_box(polygons: tuple[tuple[Ring, ...], ...]) -> dict[str, float]:
    """The polygons' box, longitudes measured around the first vertex (so antimeridian-safe)."""
    ref = polygons[0][0][0][0]
    lons = _wrap(np.array([lon for poly in polygons for lon, _ in poly[0]]), ref)
    lats = [lat for poly in polygons for _, lat in poly[0]]
    low, high = float(lons.min()), float(lons.max())
    shift = 360.0 * math.floor((low + 180.0) / 360.0)  # bring the west edge into -180..180
    low, high = low - shift, high - shift
    if high - low >= 360.0:
        low, high = -180.0, 180.0
    elif high > 180.0:
        high -= 360.0  # east edge past 180: written as a box across the antimeridian
    return {"min_lat": min(lats), "max_lat": max(lats), "min_lon": low, "max_lon": high}


def points_in_polygon(lon: np.ndarray, lat: np.ndarray, polygon: Sequence[tuple[float, float]]) -> np.ndarray:
    """Even-odd test of points against one (lon, lat) ring.

    Point longitudes are first brought within 180 degrees of the ring's first vertex, so
    a ring written in -180..180 matches grids in 0..360 and the other way round.
    """
    poly = np.asarray(polygon, dtype=np.float64)
    ref = float(poly[0, 0])
    px = _wrap(np.asarray(lon, dtype=np.float64), ref)
    py = np.asarray(lat, dtype=np.float64)
    vx = _wrap(poly[:, 0], ref)
    vy = poly[:, 1]
    inside = np.zeros(px.shape, dtype=bool)
    j = len(poly) - 1
    for i in range(len(poly)):
        crosses = (vy[i] > py) != (vy[j] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (vx[j] - vx[i]) * (py - vy[i]) / (vy[j] - vy[i]) + vx[i]
        inside ^= crosses & (px < x_at)
        j = i
    return inside


def _box_contains(lat: np.ndarray, lon: np.ndarray, box: Region) -> np.ndarray:
    lat_ok = (lat >= box.min_lat) & (lat <= box.max_lat)
    if box.max_lon - box.min_lon >= 360.0:
        return lat_ok
    lo, hi, east = box.min_lon % 360.0, box.max_lon % 360.0, lon % 360.0
    lon_ok = ((east >= lo) & (east <= hi)) if lo <= hi else ((east >= lo) | (east <= hi))
    return lat_ok & lon_ok


def region_contains(lat: np.ndarray, lon: np.ndarray, box: Region) -> np.ndarray:
    """Boolean array: which (lat, lon) points lie in the region (box, or inside one of its polygons)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if box.polygon is None:
        return _box_contains(lat, lon, box)
    inside = np.zeros(np.broadcast(lat, lon).shape, dtype=bool)
    candidates = (lat >= box.min_lat) & (lat <= box.max_lat)
    for rings in box.polygon:
        part = np.zeros_like(inside)
        for ring in rings:
            part ^= points_in_polygon(lon, lat, ring)
        inside |= part
    return inside & candidates


def in_region(lat: pl.Expr, lon: pl.Expr, box: Region) -> pl.Expr:
    """Boolean expression: inside the box (longitudes compared on one 0..360 circle) or polygon."""
    if box.polygon is not None:
        return pl.map_batches(
            [lat, lon],
            lambda cols: pl.Series(region_contains(cols[0].to_numpy(), cols[1].to_numpy(), box)),
            return_dtype=pl.Boolean,
        )
    lat_ok = (lat >= box.min_lat) & (lat <= box.max_lat)
    if box.max_lon - box.min_lon >= 360.0:
        return lat_ok
    lo, hi = box.min_lon % 360.0, box.max_lon % 360.0
    east = lon % 360.0
    # lo > hi means the box crosses 0°E (e.g. 350..10): take the two arcs.
    lon_ok = ((east >= lo) & (east <= hi)) if lo <= hi else ((east >= lo) | (east <= hi))
    return lat_ok & lon_ok


def parse_regions(regions: Sequence[Mapping[str, Any]] | None, *, what: str) -> list[Region]:
    """Turn region dicts into checked regions: boxes {id, name, min_lat, max_lat, min_lon,
    max_lon} or polygons {id, name, polygon} (see the module docstring)."""
    if not regions:
        raise ConfigError(
            f"{what} needs at least one region",
            fix="pass regions=[{'id': 'japan', 'name': 'Japan', 'min_lat': 22, 'max_lat': 46, "
            "'min_lon': 122, 'max_lon': 150}]"
            " or a polygon {'id': ..., 'name': ..., 'polygon': [[lon, lat], ...]},"
            ' or ids of the [regions] table of ews.toml (regions = ["japan"])',
        )
    out: list[Region] = []
    for spec in regions:
        if isinstance(spec, str):
            raise ConfigError(
                f"{what}: region {spec!r} is an id, but no [regions] table was consulted",
                fix="load the file through `ews ingest` (which resolves ids from ews.toml), or pass the region's table",
            )
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"{what}: region {spec!r} is not a table", fix="write each region as {id = ..., name = ..., ...}"
            )
        polygon = None
        if "polygon" in spec:
            polygon = _polygons(spec["polygon"], spec.get("id"), what)
            spec = {**spec, **_bounding_box(polygon)}
        keys = ("id", "name", "min_lat", "max_lat", "min_lon", "max_lon")
        missing = [k for k in keys if k not in spec]
        if missing:
            raise ConfigError(
                f"{what}: region {dict(spec)} lacks {missing}", fix=f"give every region the keys {list(keys)}"
            )
        try:
            box = Region(
                id=str(spec["id"]), name=str(spec["name"]), **{k: float(spec[k]) for k in keys[2:]}, polygon=polygon
            )
        except (TypeError, ValueError):
            raise ConfigError(
                f"{what}: region {dict(spec)} has a non-numeric bound", fix="give bounds in decimal degrees"
            ) from None
        if not _ID.match(box.id):
            raise ConfigError(
                f"{what}: region id {box.id!r} is not lowercase snake_case", fix="use e.g. 'sichuan_yunnan'"
            )
        if not -90.0 <= box.min_lat < box.max_lat <= 90.0:
            raise ConfigError(
                f"{what}: region {box.id!r} has latitudes {box.min_lat}..{box.max_lat}",
                fix="need -90 <= min_lat < max_lat <= 90",
            )
        if not (-180.0 <= box.min_lon <= 360.0 and -180.0 <= box.max_lon <= 360.0):
            raise ConfigError(
                f"{what}: region {box.id!r} has longitudes {box.min_lon}..{box.max_lon}",
                fix="give longitudes in -180..180 or 0..360 degrees east",
            )
        out.append(box)
    ids = [r.id for r in out]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{what}: region ids {ids} repeat", fix="give each region its own id")
    return out


def _longitude_arc(lon: np.ndarray) -> tuple[float, float]:
    """West and east edge of the shortest arc holding every longitude (west > east: across 180°)."""
    east = np.unique(((np.asarray(lon, dtype=np.float64) + 180.0) % 360.0) - 180.0)
    if east.size == 1:
        return float(east[0]), float(east[0])
    gaps = np.diff(np.append(east, east[0] + 360.0))
    widest = int(np.argmax(gaps))  # the arc starts after the widest empty gap
    if widest == east.size - 1:
        return float(east[0]), float(east[-1])
    return float(east[widest + 1]), float(east[widest])


def extent_region(lat: np.ndarray, lon: np.ndarray, *, region_id: str, name: str) -> dict[str, Any]:
    """A box holding every point, its edges rounded outwards to whole degrees.

    Longitudes take the shortest arc, so points on both sides of the antimeridian (Fiji,
    Tonga) give a box across it (``min_lon > max_lon``), not one around the globe.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.size == 0:
        raise ValueError("extent_region needs at least one point")
    south, north = math.floor(float(lat.min())), math.ceil(float(lat.max()))
    if south == north:
        south, north = (south - 1, north) if north >= 90 else (south, north + 1)
    west_raw, east_raw = _longitude_arc(lon)
    west, east = math.floor(west_raw), math.ceil(east_raw)
    if west_raw <= east_raw and west == east:
        east += 1  # every point on one whole meridian
    width = east - west if west_raw <= east_raw else east + 360 - west
    if width >= 360:
        west, east = -180, 180
    return {
        "id": region_id,
        "name": name,
        "min_lat": float(max(south, -90)),
        "max_lat": float(min(north, 90)),
        "min_lon": float(west),
        "max_lon": float(east),
    }


def region_toml(spec: Mapping[str, Any]) -> str:
    """The ews.toml line that defines a box region under ``[regions]``."""

    def number(value: Any) -> str:
        return f"{float(value):g}"

    name = json.dumps(str(spec["name"]), ensure_ascii=False)
    bounds = ", ".join(f"{k} = {number(spec[k])}" for k in ("min_lat", "max_lat", "min_lon", "max_lon"))
    return f"{spec['id']} = {{ name = {name}, {bounds} }}"


def assign_regions(meta: pl.DataFrame, boxes: Sequence[Region], *, what: str) -> tuple[pl.DataFrame, list[str]]:
    """Stations with lat/lon get the name of the first region holding them in ``region``.

    A station outside every region keeps the region its file gave, and the notes name it;
    series without coordinates are left alone and counted.
    """
    if meta.height == 0:
        return meta, []
    lat = meta.get_column("lat").cast(pl.Float64).to_numpy()
    lon = meta.get_column("lon").cast(pl.Float64).to_numpy()
    located = ~(np.isnan(lat) | np.isnan(lon))
    chosen: list[str | None] = [None] * meta.height
    for box in boxes:
        inside = np.zeros(meta.height, dtype=bool)
        inside[located] = region_contains(lat[located], lon[located], box)
        for i in np.flatnonzero(inside):
            chosen[i] = chosen[i] or box.name
    names = [r.id for r in boxes]
    notes: list[str] = []
    placed = sum(c is not None for c in chosen)
    if placed:
        notes.append(f"{what}: {placed} series placed in region(s) {sorted({c for c in chosen if c})}")
    outside = [
        f"{uid} ({la:.3f}, {lo:.3f})"
        for uid, la, lo, ok, c in zip(meta.get_column("unique_id"), lat, lon, located, chosen, strict=True)
        if ok and c is None
    ]
    if outside:
        notes.append(
            f"{what}: {len(outside)} series lie outside every region {names}: {', '.join(outside[:10])}"
            + (" ..." if len(outside) > 10 else "")
            + "; they keep the region their file gave; add a [regions] entry in ews.toml that holds them to move them"
        )
    unplaced = int((~located).sum())
    if unplaced:
        notes.append(f"{what}: {unplaced} series have no coordinates; their region is unchanged")
    region = pl.Series("region", [c if c is not None else r for c, r in zip(chosen, meta["region"], strict=True)])
    return meta.with_columns(region.cast(meta.schema["region"])), notes
