"""Tell a file's format from its first bytes, when that is unambiguous (``ews ingest file``
without ``--format``).

A table whose header reads as an earthquake catalog (header synonyms, see
:mod:`ingest.sources.catalog_columns`) is ``event_catalog``, unless a fixed catalog layout
(``usgs_catalog``, ``cenc_catalog``, ``fdsn_text``) also matches: that one wins, as the more
precise name. QuakeML (``quakeml``) is told by its root element and namespace.

:func:`detect_format` returns ``(format, reason)``; the reason says what gave it away, and the
CLI prints it. A file that matches no signature, or more than one, raises
:class:`core.errors.ConfigError` naming the candidates and asking for ``--format``: guessing
wrong would store wrong numbers, so the detector never picks between two.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import polars as pl

from core.errors import ConfigError
from ingest.sources.catalog_columns import catalog_readings, describe_reading, first_rows_kinds, sniff_separator
from ingest.sources.fdsn import FDSN_TEXT_FIELDS

__all__ = ["detect_format"]

_HEAD_BYTES = 8192


def _head(path: Path) -> tuple[bytes, str]:
    with path.open("rb") as handle:
        raw = handle.read(_HEAD_BYTES)
    for encoding in ("utf-8", "gbk"):
        for cut in range(4):  # the head may end inside a multi-byte character
            try:
                return raw, raw[: len(raw) - cut].decode(encoding).replace("\r\n", "\n").lstrip("\ufeff")
            except UnicodeDecodeError:
                continue
    return raw, raw.decode("latin-1").replace("\r\n", "\n")


def _first_data_line(text: str) -> str:
    return next((line for line in text.split("\n") if line.strip() and not line.startswith("#")), "")


def _header_fields(text: str) -> list[str]:
    first = text.split("\n", 1)[0]
    return [f.strip() for f in re.split(r"[,\t]", first)]


_PRICE_COLUMNS = {"OPEN", "HIGH", "LOW", "CLOSE", "VOLUME"}
# event_catalog reads these layouts too; their own signature names the file more precisely
_FIXED_CATALOGS = {"usgs_catalog", "cenc_catalog", "fdsn_text"}
_QUAKEML_ROOT = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*<(\w+:)?quakeml[\s>]", re.DOTALL)


def _is_quakeml(text: str) -> bool:
    """Root element ``quakeml`` (any prefix) and the QuakeML 1.2 BED namespace in the head."""
    return bool(_QUAKEML_ROOT.match(text)) and "http://quakeml.org/xmlns/bed/1.2" in text


def _is_fdsn_text(text: str) -> bool:
    """The FDSN ``format=text`` event header (spaces around ``|`` allowed, ``|EventType`` optional)."""
    first = text.split("\n", 1)[0]
    if not first.startswith("#"):
        return False
    fields = [f.strip().lower() for f in first[1:].split("|")]
    return fields[:13] == [f.lower() for f in FDSN_TEXT_FIELDS] and fields[13:] in ([], ["eventtype"])


def _catalog_readings(path: Path, raw: bytes, text: str) -> list[dict[str, str]]:
    """The ways a table's header reads as an earthquake catalog (Parquet or delimited text)."""
    if raw[:4] == b"PAR1":
        try:
            schema = pl.read_parquet_schema(path)
        except (pl.exceptions.PolarsError, OSError):
            return []
        kinds = {
            name: "datetime" if isinstance(dtype, pl.Datetime) else "date" if dtype == pl.Date else "unknown"
            for name, dtype in schema.items()
        }
        return catalog_readings(list(schema), kinds=kinds)
    first = text.split("\n", 1)[0]
    if first.startswith("{") or first.startswith("<"):
        return []
    header, kinds = first_rows_kinds(text, sniff_separator(first))
    return catalog_readings(header, kinds=kinds) if len(header) >= 4 else []


_PSMSL_ROW = re.compile(r"^\s*\d{4}\.\d{4};\s*-?\d+;\s*-?\d+;\s*\d{3}\s*$")


def _signatures() -> list[tuple[str, str, Callable[[Path, bytes, str], bool]]]:
    """(format, what gives it away, test) for every format that can be recognised."""

    def header(*names: str) -> Callable[[Path, bytes, str], bool]:
        return lambda _p, _r, text: (
            [h.lower() for h in _header_fields(text)[: len(names)]] == [n.lower() for n in names]
        )

    return [
        (
            "netcdf_region",
            "NetCDF/HDF5 magic bytes",
            lambda p, raw, _t: raw[:3] == b"CDF" or raw[:8] == b"\x89HDF\r\n\x1a\n",
        ),
        (
            "market_table",
            "Parquet magic bytes",
            lambda p, raw, t: raw[:4] == b"PAR1" and not _catalog_readings(p, raw, t),
        ),
        (
            "event_catalog",
            "a header that reads as an earthquake catalog",
            lambda p, raw, t: bool(_catalog_readings(p, raw, t)),
        ),
        (
            "quakeml",
            "XML root 'quakeml' in the QuakeML 1.2 namespace http://quakeml.org/xmlns/bed/1.2",
            lambda p, _r, t: _is_quakeml(t),
        ),
        (
            "fdsn_text",
            "FDSN event text header '#EventID|Time|Latitude|Longitude|Depth/km|...'",
            lambda p, _r, t: _is_fdsn_text(t),
        ),
        ("ngl_tenv3", "NGL tenv3 header 'site YYMMMDD'", lambda p, _r, t: t.split()[:2] == ["site", "YYMMMDD"]),
        (
            "pbo_pos",
            "PBO .pos header with a '*YYYYMMDD' column line",
            lambda p, _r, t: "PBO Station Position Time Series" in t and "\n*YYYYMMDD" in t,
        ),
        (
            "sio_neu",
            "'#'-commented PBO-style header with 'decyear year doy dN dE dU' rows",
            lambda p, _r, t: "#4-character ID:" in t and len(_first_data_line(t).split()) == 9,
        ),
        (
            "sio_neu",
            "SOPAC cleaned .neu: a '# ... Model Terms:' block, then 'decyear year doy dN dE dU' rows",
            lambda p, _r, t: (
                bool(re.search(r"^#\s*[\w .-]*Model Terms\s*:", t, re.MULTILINE | re.IGNORECASE))
                and len(_first_data_line(t).split()) == 9
            ),
        ),
        (
            "nwis_rdb",
            "NWIS RDB comments, header and format row",
            lambda p, _r, t: t.startswith("#") and "agency_cd\tsite_no" in t,
        ),
        (
            "psmsl_monthly",
            "PSMSL 'year.fraction; mm; days; flag' rows",
            lambda p, _r, t: bool(_PSMSL_ROW.match(t.split("\n", 1)[0])),
        ),
        ("usgs_daily_flow", "header 'date<TAB>Qdaily'", header("date", "Qdaily")),
        ("nsidc_extent", "NSIDC header 'Year, Month, Day, Extent'", header("Year", "Month", "Day", "Extent")),
        ("fred_long_fx", "header 'Date,Country,Exchange rate'", header("Date", "Country", "Exchange rate")),
        (
            "cenc_catalog",
            "CENC header 'Time,Latitude,Longitude,Magnitude,Depth'",
            lambda p, _r, t: _header_fields(t)[:5] == ["Time", "Latitude", "Longitude", "Magnitude", "Depth"],
        ),
        (
            "usgs_catalog",
            "ComCat header with time, latitude, longitude and mag",
            lambda p, _r, t: (
                lambda h: (
                    h[:1] in (["time"], ["id"])
                    and {"latitude", "longitude"} <= set(h)
                    and bool({"mag", "magnitude"} & set(h))
                )
            )(_header_fields(t)),
        ),
        (
            "fred_csv",
            "FRED header 'date,value' (or DATE/observation_date and one series)",
            lambda p, _r, t: (
                lambda h: (
                    "\t" not in t.split("\n", 1)[0]
                    and len(h) == 2
                    and h[0].lower() in ("date", "observation_date")
                    and (h[1].lower() == "value" or bool(re.fullmatch(r"[A-Z0-9_]+", h[1])))
                )
            )(_header_fields(t)),
        ),
        (
            "fred_multi",
            "FRED export: DATE then several series columns",
            lambda p, _r, t: (
                lambda h: (
                    len(h) > 2
                    and h[0] == "DATE"
                    and not set(h) & _PRICE_COLUMNS
                    and all(re.fullmatch(r"[A-Z0-9_]+", c) for c in h[1:])
                )
            )(_header_fields(t)),
        ),
        (
            "market_table",
            "market table header (a date column and a close column)",
            lambda p, _r, t: (
                lambda h: (
                    bool({"Date", "date", "DATE", "日期"} & set(h))
                    and bool({"Close", "close", "CLOSE", "收盘价"} & set(h))
                )
            )(_header_fields(t)),
        ),
        (
            "fred_json",
            "FRED API JSON with an 'observations' list",
            lambda p, _r, t: t.lstrip().startswith("{") and '"observations"' in t,
        ),
        (
            "nasa_power_json",
            "NASA POWER JSON (properties.parameter)",
            lambda p, _r, t: t.lstrip().startswith("{") and '"parameter"' in t and "POWER" in t,
        ),
        (
            "usgs_water_json",
            "OGC API FeatureCollection with monitoring_location_id",
            lambda p, _r, t: t.lstrip().startswith("{") and '"monitoring_location_id"' in t,
        ),
    ]


_COMMENT_PREFIXES = ("#", "HDR", "%")
_TIME_HEADERS = {"date", "trade_date", "time", "datetime", "timestamp", "observation_date", "日期", "时间", "decyear"}
_TIME_VALUE = re.compile(r"^([12]\d{3}\.\d+|\d{4}[-/]\d{1,2}[-/]\d{1,2}([ T][\d:]+Z?)?|\d{8})$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _is_table(path: Path, _raw: bytes, text: str) -> bool:
    """A time column and numeric value columns (the generic ``table``; tried only when no
    specific format matched)."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return True
    lines = [ln for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith(_COMMENT_PREFIXES)][:3]
    if len(lines) < 2:
        return False
    counts = {sep: lines[0].count(sep) for sep in (",", "\t", ";", "|")}
    sep = max(counts, key=lambda k: counts[k]) if max(counts.values()) else None

    def fields(line: str) -> list[str]:
        return [f.strip().strip('"') for f in (line.split() if sep is None else line.split(sep))]

    head, row = fields(lines[0]), fields(lines[1])
    if len(head) < 2 or len(row) != len(head):
        return False
    if all(_NUMBER.match(f) or _TIME_VALUE.match(f) for f in head):  # headerless
        return bool(_TIME_VALUE.match(head[0])) and all(_NUMBER.match(f) for f in head[1:])
    names = [h.lower() for h in head]
    at = next((i for i, h in enumerate(names) if h in _TIME_HEADERS), None)
    if at is None and "year" in names and ({"doy", "day_of_year"} & set(names)):
        return True
    return at is not None and any(_NUMBER.match(f) for i, f in enumerate(row) if i != at)


def detect_format(path: Path) -> tuple[str, str]:
    """The one format whose signature ``path`` matches, with the reason; else a ConfigError.

    The generic ``table`` (a time column and numeric columns) is the answer only when no
    specific format matched.
    """
    path = Path(path)
    raw, text = _head(path)
    matches = [(fmt, why) for fmt, why, test in _signatures() if test(path, raw, text)]
    found = {fmt for fmt, _ in matches}
    if "event_catalog" in found and len(found) > 1 and found <= {"event_catalog", *_FIXED_CATALOGS}:
        matches = [(fmt, why) for fmt, why in matches if fmt != "event_catalog"]
    if not matches and _is_table(path, raw, text):
        matches = [("table", "a time column and numeric columns (no specific format matched)")]
    formats = sorted({fmt for fmt, _ in matches})
    if formats == ["event_catalog"]:
        readings = _catalog_readings(path, raw, text)
        if len(readings) == 1:
            return "event_catalog", f"a header that reads as an earthquake catalog: {describe_reading(readings[0])}"
        return "event_catalog", (
            f"a header that reads as an earthquake catalog in {len(readings)} ways (the parse lists them; "
            "choose with --option 'columns={...}')"
        )
    if len(formats) == 1:
        return formats[0], matches[0][1]
    if not formats:
        first = text.split("\n", 1)[0][:80]
        raise ConfigError(
            f"cannot tell the format of {path.name} (first line {first!r})",
            fix="pass --format FMT (`ews ingest file --help` lists them)",
        )
    raise ConfigError(
        f"{path.name} could be any of {formats}",
        fix=f"pass --format with one of {formats}",
    )
