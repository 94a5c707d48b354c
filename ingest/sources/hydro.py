"""Parsers for river gauges and tide gauges.

- ``usgs_daily_flow``: tab-separated ``date<TAB>Qdaily`` with ``M/D/YYYY`` dates and daily mean
  discharge already in m³/s (the dataRetrieval package's Choptank example).
- ``nwis_rdb``: USGS NWIS RDB daily values: ``#`` comment lines, a header row, a format row
  (``5s 15s 20d 14n ...``), then data. The column ending ``_00060_00003`` (discharge, daily
  mean, ft³/s) is converted to m³/s. NWIS puts codes such as ``Ice`` or ``Eqp`` in the value
  column when there is no value; those rows are dropped and counted, any other text is an error.
  One series per ``site_no`` named ``usgs_<site_no>_discharge``.
- ``psmsl_monthly``: PSMSL RLR monthly mean sea level, ``;``-separated ``decimal year; mm;
  missing days; flag``. Decimal years are month mid-points, year + (month - 0.5) / 12, so the
  month is floor(fraction * 12) + 1; ``ds`` is the first day of that month. ``-99999`` marks
  a missing month (dropped, counted). Flag ``001`` ("flagged for attention" by PSMSL, e.g. a
  datum in doubt) and ``010`` (mean tide level) values are kept unless ``drop_flagged=True``;
  their counts are reported in ``notes``.

All series are calendar daily (``D``) or monthly (``MS``) with domain ``hydro``.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from ingest.sources._common import (
    Parsed,
    check_frequency,
    fail,
    finish,
    meta_row,
    read_delimited,
    read_text,
    require_columns,
    snake,
    to_datetime,
    to_float,
)

__all__ = ["CFS_TO_CMS", "parse_usgs_daily_flow", "parse_nwis_rdb", "parse_psmsl_monthly"]

#: Cubic feet per second to cubic metres per second (exact: 0.3048³).
CFS_TO_CMS = 0.0283168466
_USGS_SOURCE = "U.S. Geological Survey, National Water Information System (NWIS)"
_USGS_LICENCE = "public domain (USGS); cite USGS NWIS"
_PSMSL_SOURCE = "Permanent Service for Mean Sea Level (PSMSL), RLR monthly means"
_PSMSL_LICENCE = "free to use with citation: Holgate et al. (2013) J. Coastal Res. 29(3) 493-504, and PSMSL"
#: Value codes NWIS writes instead of a number when a day has no value.
_NWIS_NO_VALUE = {
    "Ice",
    "Eqp",
    "Bkw",
    "Dis",
    "Ssn",
    "Mnt",
    "Fld",
    "Pr",
    "Rat",
    "Tst",
    "ZFl",
    "Dry",
    "Zero",
    "***",
    "--",
    "",
}
_RDB_FORMAT = re.compile(r"^\d+[sdnSDN]$")


def parse_usgs_daily_flow(
    path: Path,
    *,
    unique_id: str | None = None,
    name: str | None = None,
    site_no: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    region: str = "",
    source: str = _USGS_SOURCE,
    licence: str = _USGS_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse a ``date<TAB>Qdaily`` file (m³/s) into one daily discharge series."""
    path = Path(path)
    text, _ = read_text(path)
    raw = read_delimited(path, text, separator="\t", what="tab-separated file").with_row_index("_line", offset=2)
    require_columns(path, raw, ["date", "Qdaily"])
    blank = raw.get_column("Qdaily").is_null() | (raw.get_column("Qdaily") == "")
    kept = raw.filter(~blank)
    lines = kept.get_column("_line")
    ds = to_datetime(path, kept.get_column("date"), "%m/%d/%Y", lines, column="date", example="10/1/1999")
    y = to_float(path, kept.get_column("Qdaily"), lines, column="Qdaily")
    _refuse_negative(path, y, lines, column="Qdaily")
    check_frequency(path, ds, "D", what="column 'date'")
    uid = unique_id or (f"usgs_{site_no}_discharge" if site_no else snake(path.stem))
    notes = [f"dropped {int(blank.sum())} blank value(s)"] if blank.any() else []
    meta = meta_row(
        unique_id=uid,
        domain="hydro",
        name=name or uid,
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
    return finish(path, pl.DataFrame({"unique_id": uid, "ds": ds, "y": y}), [meta], notes=notes)


def _refuse_negative(path: Path, y: pl.Series, lines: pl.Series, *, column: str) -> None:
    negative = y < 0
    if negative.any():
        idx = int(negative.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, column {column!r}: discharge {y[idx]} is negative",
            fix="check the column; daily mean discharge cannot be below 0",
        )


def _rdb_table(path: Path, text: str) -> tuple[pl.DataFrame, dict[str, str], int]:
    """Split an RDB file into (all-text table with file line numbers, site names, header line)."""
    lines = text.split("\n")
    names: dict[str, str] = {}
    header_at = None
    for i, line in enumerate(lines):
        if line.startswith("#"):
            match = re.match(r"#\s+USGS\s+(\d+)\s+(.+?)\s*$", line)
            if match:
                names[match.group(1)] = match.group(2)
            continue
        if line.strip():
            header_at = i
            break
    if header_at is None:
        raise fail(path, "has only comment lines, no header row", fix="download the RDB file again (format=rdb)")
    if header_at + 1 >= len(lines) or not all(_RDB_FORMAT.match(f) for f in lines[header_at + 1].split("\t")):
        got = lines[header_at + 1] if header_at + 1 < len(lines) else ""
        raise fail(
            path,
            f"line {header_at + 2}: expected the RDB format row (e.g. '5s<TAB>15s<TAB>20d<TAB>14n'), got {got!r}",
            fix="this does not look like NWIS RDB; download with format=rdb",
        )
    body = "\n".join([lines[header_at], *lines[header_at + 2 :]])
    table = read_delimited(path, body, separator="\t", what="RDB table")
    return table.with_row_index("_line", offset=header_at + 3), names, header_at + 1


def parse_nwis_rdb(
    path: Path,
    *,
    lat: float | None = None,
    lon: float | None = None,
    region: str = "",
    source: str = _USGS_SOURCE,
    licence: str = _USGS_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse NWIS RDB daily discharge (ft³/s) into one m³/s series per site."""
    path = Path(path)
    text, _ = read_text(path)
    table, names, header_line = _rdb_table(path, text)
    value_cols = [c for c in table.columns if c.endswith("_00060_00003")]
    if "site_no" not in table.columns or "datetime" not in table.columns or len(value_cols) != 1:
        raise fail(
            path,
            f"line {header_line}: expected columns site_no, datetime and one '*_00060_00003' "
            f"(daily mean discharge); got {[c for c in table.columns if c != '_line']}",
            fix="request parameterCd=00060 and statCd=00003 from the NWIS daily-values service",
        )
    value_col = value_cols[0]
    no_value = table.get_column(value_col).fill_null("").is_in(list(_NWIS_NO_VALUE))
    kept = table.filter(~no_value)
    lines = kept.get_column("_line")
    ds = to_datetime(path, kept.get_column("datetime"), "%Y-%m-%d", lines, column="datetime", example="2012-09-01")
    cfs = to_float(path, kept.get_column(value_col), lines, column=value_col)
    _refuse_negative(path, cfs, lines, column=value_col)
    check_frequency(path, ds, "D", what="column 'datetime'")
    notes = [f"converted discharge from ft³/s to m³/s (× {CFS_TO_CMS})"]
    if no_value.any():
        notes.append(f"dropped {int(no_value.sum())} row(s) without a value (blank or an NWIS code such as Ice, Eqp)")
    code_col = f"{value_col}_cd"
    if code_col in kept.columns:
        provisional = int(kept.get_column(code_col).fill_null("").str.contains("P").sum())
        if provisional:
            notes.append(f"{provisional} value(s) are provisional (code P) and may be revised by USGS")
    frame = pl.DataFrame({"site_no": kept.get_column("site_no"), "ds": ds, "y": cfs * CFS_TO_CMS})
    frames, meta = [], []
    for site in sorted(frame.get_column("site_no").unique().to_list()):
        uid = f"usgs_{snake(site).removeprefix('s_')}_discharge"
        frames.append(frame.filter(pl.col("site_no") == site).select(pl.lit(uid).alias("unique_id"), "ds", "y"))
        meta.append(
            meta_row(
                unique_id=uid,
                domain="hydro",
                name=f"USGS {site} {names[site]}" if site in names else f"USGS {site}",
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
    if lat is None:
        notes.append("the RDB file carries no coordinates; lat/lon are null unless passed as options")
    return finish(path, frames, meta, notes=notes)


def parse_psmsl_monthly(
    path: Path,
    *,
    unique_id: str | None = None,
    name: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    region: str = "",
    drop_flagged: bool = False,
    source: str = _PSMSL_SOURCE,
    licence: str = _PSMSL_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse a PSMSL RLR monthly file into one monthly mean-sea-level series in mm."""
    path = Path(path)
    text, _ = read_text(path)
    header = "decimal_year;msl_mm;missing_days;flag\n"
    raw = read_delimited(path, header + text.strip("\n") + "\n", separator=";", what="PSMSL ';'-separated file")
    if raw.width != 4:
        raise fail(
            path, f"has {raw.width} ';'-separated fields per line, expected 4", fix="use a PSMSL .rlrdata monthly file"
        )
    raw = raw.with_row_index("_line", offset=1)
    lines = raw.get_column("_line")
    short = raw.get_column("flag").is_null()  # polars pads short rows with nulls
    if short.any():
        raise fail(
            path,
            f"line {lines[int(short.arg_true()[0])]}: expected 4 ';'-separated fields (year; mm; missing days; flag)",
            fix="use an unmodified PSMSL .rlrdata monthly file",
        )
    year = to_float(path, raw.get_column("decimal_year"), lines, column="decimal year (field 1)")
    msl = to_float(path, raw.get_column("msl_mm"), lines, column="mean sea level mm (field 2)")
    whole = year.floor()
    position = (year - whole) * 12.0
    # A PSMSL month sits at its mid-point, so fraction*12 must end in .5.
    off_mid = ((position - position.floor()) - 0.5).abs() > 0.01
    if off_mid.any():
        idx = int(off_mid.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, field 1: decimal year {year[idx]} is not a month mid-point (year + (month - 0.5)/12)",
            fix="use a PSMSL monthly file; annual files have one value per year",
        )
    frame = pl.DataFrame(
        {
            "ds": pl.select(
                pl.datetime(whole.cast(pl.Int32), (position.floor() + 1).cast(pl.Int8), 1, time_unit="us")
            ).to_series(),
            "y": msl,
            "flag": raw.get_column("flag"),
        }
    )
    missing = frame.get_column("y") == -99999
    flags = frame.filter(~missing).get_column("flag").fill_null("000")
    attention = int(flags.str.slice(-1).eq("1").sum())
    mtl = int(flags.str.slice(-2, 1).eq("1").sum())
    notes = [f"dropped {int(missing.sum())} missing month(s) (-99999)"] if missing.any() else []
    if attention:
        notes.append(
            f"{attention} month(s) flagged for attention by PSMSL (flag 001): {'dropped' if drop_flagged else 'kept'}"
        )
    if mtl:
        notes.append(f"{mtl} month(s) are mean tide level, not mean sea level (flag 010)")
    keep = ~missing
    if drop_flagged:
        keep = keep & ~frame.get_column("flag").fill_null("000").str.slice(-1).eq("1")
    frame = frame.filter(keep)
    uid = unique_id or snake(path.stem)
    meta = meta_row(
        unique_id=uid,
        domain="hydro",
        name=name or uid,
        variable="mean_sea_level",
        unit="mm",
        frequency="MS",
        region=region,
        lat=lat,
        lon=lon,
        source=source,
        licence=licence,
        classification=classification,
    )
    return finish(path, frame.select(pl.lit(uid).alias("unique_id"), "ds", "y"), [meta], notes=notes)
