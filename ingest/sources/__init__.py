"""Source parsers: bundled or downloaded files in, validated long series frames out.

Contract: every parser is ``parse_<format>(path, **options) -> Parsed`` with keyword-only
options. ``Parsed.series`` satisfies :func:`core.frames.validate_series` (``unique_id, ds,
y``; naive-UTC microsecond ``ds``; missing observations are absent rows), ``Parsed.meta``
satisfies :func:`core.frames.validate_series_meta` (one row per ``unique_id``),
``Parsed.events`` is set by earthquake catalogs only, and ``Parsed.notes`` says in words what
was dropped, converted or assumed.

A malformed file raises :class:`core.errors.DataFormatError` naming the file, the line or
column, what was expected and a fix; a bad option raises :class:`core.errors.ConfigError`.
Nothing partial is ever returned.

This package reads files only: it imports ``core``, polars, numpy, xarray, ObsPy (QuakeML) and
the standard library, never ``warehouse``, ``forecasting``, ``anomaly`` or ``dashboards``.

Every format also takes the option ``bounds`` (:func:`parse` applies it): the physical
bounds of the series it yields, ``{unique_id: [lower, upper]}`` (null for no bound; ``"*"``
for every series of the file), overriding the parsers' defaults by variable
(:data:`DEFAULT_BOUNDS`). They land in the ``lower_bound`` / ``upper_bound`` metadata columns.
Formats without regional series (stations) also take ``regions``: a station whose lat/lon lies
in one gets that region's name in its ``region`` metadata (:func:`assign_regions`).
Likewise ``available_after``: how long after its period a value is published (ISO 8601,
``"P20D"``, or ``{unique_id: "P20D"}``), overriding :data:`DEFAULT_AVAILABLE_AFTER`; an as-of
replay sees a value only from then on (:mod:`core.availability`).

Formats (keys of :data:`PARSERS`): fred_csv, fred_multi, fred_json, fred_long_fx, market_table,
usgs_catalog, cenc_catalog, event_catalog (any earthquake catalog table), pbo_pos, ngl_tenv3,
sio_neu, usgs_daily_flow, nwis_rdb, usgs_water_json, psmsl_monthly, netcdf_region,
nasa_power_json, nsidc_extent, table (any station or indicator table; ``market_table`` is a case
of it), quakeml and fdsn_text (FDSN event answers, :mod:`ingest.sources.fdsn`).
:func:`detect_format` names the format of a file when its first bytes leave no doubt.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from ingest.sources._common import (
    DEFAULT_AVAILABLE_AFTER,
    DEFAULT_BOUNDS,
    EVENT_SCHEMA,
    Parsed,
    apply_available_after,
    apply_bounds,
    assign_regions,
    parse_regions,
)
from ingest.sources.apis import parse_nasa_power_json, parse_usgs_water_json
from ingest.sources.catalogue import BundledFile, bundled_catalogue
from ingest.sources.detect import detect_format
from ingest.sources.fdsn import parse_fdsn_text, parse_quakeml
from ingest.sources.fred_tables import parse_fred_json, parse_fred_multi
from ingest.sources.geodetic import parse_pbo_pos
from ingest.sources.gnss import parse_ngl_tenv3, parse_sio_neu
from ingest.sources.grids import parse_netcdf_region
from ingest.sources.hydro import parse_nwis_rdb, parse_psmsl_monthly, parse_usgs_daily_flow
from ingest.sources.market_table import parse_market_table
from ingest.sources.markets import parse_fred_csv, parse_fred_long_fx
from ingest.sources.seaice import parse_nsidc_extent
from ingest.sources.seismic import parse_cenc_catalog, parse_event_catalog, parse_usgs_catalog
from ingest.sources.table import parse_table

__all__ = [
    "Parsed",
    "EVENT_SCHEMA",
    "DEFAULT_BOUNDS",
    "apply_bounds",
    "DEFAULT_AVAILABLE_AFTER",
    "apply_available_after",
    "PARSERS",
    "parse",
    "detect_format",
    "BundledFile",
    "bundled_catalogue",
    "parse_fred_csv",
    "parse_fred_long_fx",
    "parse_usgs_catalog",
    "parse_pbo_pos",
    "parse_usgs_daily_flow",
    "parse_nwis_rdb",
    "parse_psmsl_monthly",
    "parse_netcdf_region",
    "parse_nsidc_extent",
    "parse_fred_multi",
    "parse_fred_json",
    "parse_market_table",
    "parse_cenc_catalog",
    "parse_event_catalog",
    "parse_ngl_tenv3",
    "parse_sio_neu",
    "parse_nasa_power_json",
    "parse_usgs_water_json",
    "parse_table",
    "parse_quakeml",
    "parse_fdsn_text",
]

PARSERS: dict[str, Callable[..., Parsed]] = {
    "fred_csv": parse_fred_csv,
    "fred_long_fx": parse_fred_long_fx,
    "usgs_catalog": parse_usgs_catalog,
    "pbo_pos": parse_pbo_pos,
    "usgs_daily_flow": parse_usgs_daily_flow,
    "nwis_rdb": parse_nwis_rdb,
    "psmsl_monthly": parse_psmsl_monthly,
    "netcdf_region": parse_netcdf_region,
    "nsidc_extent": parse_nsidc_extent,
    "fred_multi": parse_fred_multi,
    "fred_json": parse_fred_json,
    "market_table": parse_market_table,
    "cenc_catalog": parse_cenc_catalog,
    "event_catalog": parse_event_catalog,
    "ngl_tenv3": parse_ngl_tenv3,
    "sio_neu": parse_sio_neu,
    "nasa_power_json": parse_nasa_power_json,
    "usgs_water_json": parse_usgs_water_json,
    "table": parse_table,
    "quakeml": parse_quakeml,
    "fdsn_text": parse_fdsn_text,
}


def parse(path: Path, fmt: str, **options: Any) -> Parsed:
    """Parse ``path`` with the parser registered for ``fmt``; options are checked before reading.

    ``bounds`` (any format) sets the physical bounds of the series the file yields;
    ``regions`` places the stations of formats that make no regional series.
    ``available_after`` (any format) when their values became known (:mod:`core.availability`).
    """
    try:
        parser = PARSERS[fmt]
    except KeyError:
        raise ConfigError(f"unknown source format {fmt!r}", fix=f"use one of {sorted(PARSERS)}") from None
    bounds = options.pop("bounds", None)
    available_after = options.pop("available_after", None)
    what = f"{fmt} {Path(path).name}"
    # Formats that do not make regional series (stations) take regions to place their stations.
    stations = None
    if "regions" not in inspect.signature(parser).parameters and options.get("regions") is not None:
        stations = parse_regions(options.pop("regions"), what=what)
    try:
        inspect.signature(parser).bind(Path(path), **options)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(parser).parameters if p != "path"]
        accepted += ["bounds", "regions", "available_after"]
        raise ConfigError(f"format {fmt!r}: {exc}", fix=f"options of {fmt!r} are {accepted}") from None
    parsed = parser(Path(path), **options)
    if bounds is None and stations is None and available_after is None:
        return parsed
    meta, notes = parsed.meta, parsed.notes
    if bounds is not None:
        meta = apply_bounds(meta, bounds, what=what)
    if available_after is not None:
        meta = apply_available_after(meta, available_after, what=what)
    if stations is not None:
        meta, placed = assign_regions(meta, stations, what=what)
        notes = (*notes, *placed)
    return Parsed(series=parsed.series, meta=meta, events=parsed.events, notes=notes)
