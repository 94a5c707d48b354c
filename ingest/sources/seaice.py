"""Parser for the NSIDC Sea Ice Index daily extent CSV (``nsidc_extent``, G02135 v3).

Layout: a header line ``Year, Month, Day, Extent, Missing, Source Data``, a units line
(``YYYY, MM, DD, 10^6 sq km, ...``), then one row per day with space-padded fields; the last
field quotes the list of input files. One series ``arctic_sea_ice_extent`` (by default) in
10^6 km², calendar daily. Before 1987-08 (SMMR era) the product has a value every other day
and there is a gap 1987-12-03 .. 1988-01-12; absent days stay absent rows. A negative extent
(NSIDC's -9999 missing marker) is dropped and counted. ``Missing`` > 0 means part of the
hemisphere had no data that day; such days are kept and counted in ``notes``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import polars as pl

from ingest.sources._common import (
    Parsed,
    calendar_span_days,
    fail,
    finish,
    meta_row,
    read_delimited,
    read_text,
    require_columns,
    to_datetime,
    to_float,
)

__all__ = ["parse_nsidc_extent"]

_SOURCE = "National Snow and Ice Data Center (NSIDC), Sea Ice Index v3 (G02135)"
_LICENCE = (
    "free to use with citation: Fetterer, F. et al. (2017, updated daily) Sea Ice Index, Version 3, NSIDC, "
    "doi:10.7265/N5K072F8"
)
_SMMR_END = datetime.datetime(1987, 8, 1)


def parse_nsidc_extent(
    path: Path,
    *,
    unique_id: str = "arctic_sea_ice_extent",
    name: str = "Arctic sea-ice extent (daily)",
    region: str = "Arctic",
    lat: float | None = 90.0,
    lon: float | None = 0.0,
    source: str = _SOURCE,
    licence: str = _LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse NSIDC daily sea-ice extent into one series in 10^6 km²."""
    path = Path(path)
    text, _ = read_text(path)
    head, _, rest = text.partition("\n")
    units, _, body = rest.partition("\n")
    if not units.replace(" ", "").startswith("YYYY,MM,DD"):
        raise fail(
            path,
            f"line 2: expected the units line 'YYYY, MM, DD, 10^6 sq km, ...', got {units[:60]!r}",
            fix="use the unmodified NSIDC CSV (two header lines: names, then units)",
        )
    raw = read_delimited(path, head + "\n" + body, what="NSIDC CSV").with_row_index("_line", offset=3)
    require_columns(path, raw, ["Year", "Month", "Day", "Extent"])
    lines = raw.get_column("_line")
    stamp = raw.select(pl.concat_str(["Year", "Month", "Day"], separator="-")).to_series()
    ds = to_datetime(path, stamp, "%Y-%m-%d", lines, column="Year, Month, Day", example="2000-01-31")
    extent = to_float(path, raw.get_column("Extent"), lines, column="Extent")
    frame = pl.DataFrame({"ds": ds, "y": extent})
    if "Missing" in raw.columns:
        missing_area = to_float(path, raw.get_column("Missing"), lines, column="Missing")
        partial = int((missing_area > 0).sum())
    else:
        partial = 0
    negative = frame.get_column("y") < 0
    frame = frame.filter(~negative)
    notes = []
    if negative.any():
        notes.append(f"dropped {int(negative.sum())} missing extent value(s) (negative, NSIDC uses -9999)")
    if partial:
        notes.append(f"{partial} day(s) report a non-zero 'Missing' area (partial coverage); kept")
    smmr = int((frame.get_column("ds") < _SMMR_END).sum())
    if smmr:
        notes.append(f"{smmr} value(s) before 1987-08 come from SMMR, one every other day")
    span = calendar_span_days(frame.get_column("ds"))
    notes.append(f"{frame.height} daily value(s) over {span} calendar days")
    meta = meta_row(
        unique_id=unique_id,
        domain="satellite",
        name=name,
        variable="sea_ice_extent",
        unit="10^6 km2",
        frequency="D",
        region=region,
        lat=lat,
        lon=lon,
        source=source,
        licence=licence,
        classification=classification,
    )
    return finish(path, frame.select(pl.lit(unique_id).alias("unique_id"), "ds", "y"), [meta], notes=notes)
