"""Reading any tabular earthquake catalog: the table, its column map, its times.

- :func:`read_catalog_table`: CSV / TSV / ``|`` / ``;`` text, Parquet or an
  Excel sheet, read by the one table reader (:mod:`ingest.sources.table_read`, shared with
  the ``table`` format) with a catalog's conventions.
- :func:`catalog_readings`: every way the header can be read as a catalog. Column names are
  compared after lowercasing and dropping bracketed units, spaces, ``_ - . /`` and a leading
  ``#`` (``Depth(km)``, ``depth_km`` and ``Depth/km`` are all ``depthkm``), against
  :data:`SYNONYMS` in English, Chinese and Turkish. The time is either one column or a date
  column plus a time-of-day column; which one is decided by the first value of each
  candidate, so ``Date,Time`` with dates and clock times reads one way only.
- :func:`event_times`: the mapped time column(s) as naive UTC: ISO-like text (``T`` or
  space, optional fraction, ``-`` ``/`` or ``.`` between date parts), a value's own ``Z`` or
  ``+hh:mm`` wins, the rest are local times in ``timezone`` (an IANA name such as
  ``Asia/Shanghai``, or a fixed offset such as ``+08:00``). Typed Parquet/Excel date-times
  are used as they are.

Used by ``event_catalog``, ``cenc_catalog`` and ``usgs_catalog`` (:mod:`ingest.sources.seismic`)
and by :mod:`ingest.sources.detect`. Errors name the line (the file's line for text and
spreadsheets, the data row for Parquet) and the column, and the option that fixes them.
"""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from core.errors import ConfigError
from ingest.sources import table_read
from ingest.sources._common import fail

__all__ = [
    "ROLES",
    "SYNONYMS",
    "normalise_header",
    "catalog_readings",
    "describe_reading",
    "choose_reading",
    "read_catalog_table",
    "header_kinds",
    "sniff_separator",
    "event_times",
    "stated_time_zone",
    "first_rows_kinds",
]

#: Roles of a catalog's columns; ``time`` alone or ``date`` + ``time`` give the origin time.
ROLES = ("time", "date", "magnitude", "latitude", "longitude", "depth", "mag_type", "event_id", "place")
_REQUIRED = ("magnitude", "latitude", "longitude")
_OPTIONAL = ("depth", "mag_type", "event_id", "place")

_BRACKETS = re.compile(r"\(.*?\)|（.*?）|\[.*?\]")
_PUNCTUATION = re.compile(r"[\s_\-./°#]+")


def normalise_header(name: str) -> str:
    """Lowercase, bracketed units and punctuation dropped: ``'Depth (km)'`` -> ``'depth'``."""
    return _PUNCTUATION.sub("", _BRACKETS.sub("", str(name)).lower())


def _names(*names: str) -> frozenset[str]:
    return frozenset(normalise_header(n) for n in names)


#: Header synonyms per role (compared after :func:`normalise_header`). ``clock`` names a
#: time-of-day column that goes with a ``date`` column.
SYNONYMS: dict[str, frozenset[str]] = {
    "time": _names(
        "time", "datetime", "date_time", "timestamp", "origin time", "origintime", "event time", "time_utc",
        "utc time", "发震时刻", "发震时间", "发生时间", "地震时间", "时间",
    ),
    "date": _names("date", "origin date", "event date", "日期", "发震日期", "tarih"),
    "clock": _names("time", "origin time", "time_utc", "utc time", "时间", "时刻", "发震时刻", "saat"),
    "magnitude": _names(
        "mag", "magnitude", "m", "ml", "mw", "mb", "ms", "md", "mww", "mwc", "mwr", "mj", "震级", "büyüklük",
        "buyukluk",
    ),
    "latitude": _names("lat", "latitude", "纬度", "北纬", "enlem"),
    "longitude": _names("lon", "long", "lng", "longitude", "经度", "东经", "boylam"),
    "depth": _names("depth", "depth_km", "z", "深度", "derinlik"),
    "mag_type": _names("mag_type", "magtype", "magnitude type", "震级类型", "mag type"),
    "event_id": _names("id", "event_id", "eventid", "evid", "事件编号", "编号"),
    "place": _names(
        "place", "location", "region", "locality", "eventlocationname", "参考位置", "地点", "位置", "震中位置",
    ),
}  # fmt: skip

#: A magnitude column named after a magnitude type states the type of all its values.
MAGNITUDE_TYPE_OF_COLUMN = {
    "ml": "ML", "mw": "Mw", "mb": "mb", "ms": "Ms", "md": "Md", "mww": "Mww", "mwc": "Mwc", "mwr": "Mwr", "mj": "Mj",
}  # fmt: skip

_DATE = r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}"
_KIND_DATETIME = re.compile(rf"^\s*({_DATE})[T ]\s*\d{{1,2}}:\d{{2}}")
_KIND_DATE = re.compile(rf"^\s*({_DATE})\s*$")
_KIND_CLOCK = re.compile(r"^\s*\d{1,2}:\d{2}")


def _kind(value: object) -> str:
    """What a cell holds: datetime, date, clock, other, or unknown (blank)."""
    if value is None or value == "":
        return "unknown"
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "clock"
    text = str(value)
    if _KIND_DATETIME.match(text):
        return "datetime"
    if _KIND_DATE.match(text):
        return "date"
    if _KIND_CLOCK.match(text):
        return "clock"
    return "other"


def header_kinds(table: pl.DataFrame) -> dict[str, str]:
    """The kind of each column's first non-blank value (see :func:`catalog_readings`)."""
    out = {}
    for name in table.columns:
        column = table.get_column(name)
        if column.dtype == pl.Utf8:
            column = column.filter(column.str.strip_chars() != "")
        column = column.drop_nulls()
        out[name] = _kind(column[0]) if column.len() else "unknown"
    return out


def _time_choices(
    columns: Sequence[str], fixed: Mapping[str, str], kinds: Mapping[str, str]
) -> list[tuple[str | None, str]]:
    """(date column or None, time column) pairs the header allows."""

    def fits(column: str, *wanted: str) -> bool:
        return kinds.get(column, "unknown") in (*wanted, "unknown")

    norm = {c: normalise_header(c) for c in columns}
    if "time" in fixed and "date" in fixed:
        return [(fixed["date"], fixed["time"])]
    if "time" in fixed:
        if kinds.get(fixed["time"]) == "clock":
            dates = [c for c in columns if norm[c] in SYNONYMS["date"] and fits(c, "date")]
            return [(d, fixed["time"]) for d in dates] or [(None, fixed["time"])]
        return [(None, fixed["time"])]
    dates = [fixed["date"]] if "date" in fixed else [c for c in columns if norm[c] in SYNONYMS["date"]]
    singles = [] if "date" in fixed else [c for c in columns if norm[c] in SYNONYMS["time"] and fits(c, "datetime")]
    # a "date" column holding full date-times is a time column on its own
    singles += [d for d in dates if kinds.get(d) == "datetime" and d not in singles and "date" not in fixed]
    clocks = [c for c in columns if norm[c] in SYNONYMS["clock"] and fits(c, "clock")]
    pairs = [(d, c) for d in dates if fits(d, "date") for c in clocks if c != d]
    choices: list[tuple[str | None, str]] = [(None, c) for c in singles]
    return choices + pairs


def catalog_readings(
    columns: Sequence[str],
    *,
    fixed: Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """Every column map (role -> column) the header allows; ``fixed`` roles are taken as given.

    A required role (time, magnitude, latitude, longitude) with no candidate gives no
    reading; an optional one (depth, mag_type, event_id, place) is left out when absent. Two
    candidates for one role give two readings: the caller refuses to pick.
    """
    fixed = dict(fixed or {})
    kinds = dict(kinds or {})
    norm = {c: normalise_header(c) for c in columns}
    taken = set(fixed.values())
    options: dict[str, list[str | None]] = {}
    for role in (*_REQUIRED, *_OPTIONAL):
        if role in fixed:
            options[role] = [fixed[role]]
            continue
        found: list[str | None] = [c for c in columns if norm[c] in SYNONYMS[role] and c not in taken]
        options[role] = found if found or role in _REQUIRED else [None]
    readings = []
    for date_col, time_col in _time_choices(columns, fixed, kinds):
        for combo in itertools.product(*options.values()):
            chosen = dict(zip(options, combo, strict=True))
            used = [c for c in (date_col, time_col, *chosen.values()) if c is not None]
            if len(used) != len(set(used)):
                continue  # one column cannot play two roles
            reading = {"time": time_col, **({"date": date_col} if date_col else {})}
            reading.update({role: col for role, col in chosen.items() if col is not None})
            readings.append(reading)
    return readings


def describe_reading(reading: Mapping[str, str]) -> str:
    """``time <- 'Timestamp', magnitude <- 'Magnitude', ...`` in role order."""
    return ", ".join(f"{role} <- {reading[role]!r}" for role in ROLES if role in reading)


def _missing_roles(columns: Sequence[str], fixed: Mapping[str, str], kinds: Mapping[str, str]) -> list[str]:
    norm = {c: normalise_header(c) for c in columns}
    missing = [role for role in _REQUIRED if role not in fixed and not any(norm[c] in SYNONYMS[role] for c in columns)]
    if not _time_choices(columns, fixed, kinds):
        missing.insert(0, "time (or date + time)")
    return missing


def choose_reading(
    path: Path,
    columns: Sequence[str],
    *,
    fixed: Mapping[str, str] | None,
    kinds: Mapping[str, str],
) -> dict[str, str]:
    """The one reading of the header, else an error listing what is missing or every reading."""
    fixed = dict(fixed or {})
    unknown_roles = sorted(set(fixed) - set(ROLES))
    if unknown_roles:
        raise ConfigError(
            f"event_catalog {path.name}: columns= names unknown role(s) {unknown_roles}",
            fix=f"map some of the roles {list(ROLES)} to columns, e.g. columns={{'magnitude': 'ML'}}",
        )
    absent = sorted(c for c in fixed.values() if c not in columns)
    if absent:
        raise ConfigError(
            f"event_catalog {path.name}: columns= names {absent}, which the file does not have",
            fix=f"choose among the file's columns {list(columns)}",
        )
    readings = catalog_readings(columns, fixed=fixed, kinds=kinds)
    if len(readings) == 1:
        return readings[0]
    example = "columns={'time': 'Timestamp', 'magnitude': 'ML', 'latitude': 'Lat', 'longitude': 'Lon'}"
    if not readings:
        missing = _missing_roles(columns, fixed, kinds)
        raise fail(
            path,
            f"has no column for {', '.join(missing) or 'a consistent time'} that event_catalog recognises; "
            f"its columns are {list(columns)}",
            fix=f"name the columns with the option columns=, e.g. {example} "
            "(time, or date + time; magnitude; latitude; longitude; optional depth, mag_type, event_id, place)",
        )
    listed = "; ".join(f"({i}) {describe_reading(r)}" for i, r in enumerate(readings[:8], start=1))
    more = f"; and {len(readings) - 8} more" if len(readings) > 8 else ""
    differing = sorted({role for role in ROLES if len({r.get(role) for r in readings}) > 1})
    raise ConfigError(
        f"event_catalog {path.name}: the header can be read {len(readings)} ways (they differ in "
        f"{', '.join(differing)}): {listed}{more}",
        fix="say which column plays each of those roles with columns=, e.g. "
        + "columns={"
        + ", ".join(f"'{role}': '{readings[0][role]}'" for role in differing if role in readings[0])
        + "}",
    )


# -- the table ----------------------------------------------------------------------------


def sniff_separator(header_line: str) -> str:
    """The separator of a catalog's header line (:func:`ingest.sources.table_read.sniff_separator`;
    comma when none of them appears)."""
    return table_read.sniff_separator(header_line) or ","


def read_catalog_table(
    path: Path,
    *,
    sep: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    encodings: Sequence[str] = table_read.ENCODINGS,
) -> tuple[pl.DataFrame, list[str]]:
    """The table with a ``_line`` column (file line, sheet row, or data row for Parquet), plus notes.

    :func:`ingest.sources.table_read.read_table` with a catalog's conventions: every line is
    data (no comment prefixes: FDSN text's header starts with ``#``), the first is the header,
    a header without ``\t | ; ,`` is one column (refused for what it lacks), sheets are
    numbered from 0. Text comes back all-text (casts happen later with line
    numbers); Parquet keeps its types, Excel its date and time columns.
    """
    table = table_read.read_table(
        path,
        sheet=sheet,
        sheet_base=0,
        encoding=encoding,
        encodings=encodings,
        separator=sep,
        fallback_separator=",",
        comment_prefixes=(),
        header=True,
        parquet_first_line=1,
        encoding_note="decoded as {encoding} (the file is not valid UTF-8)",
        what="event_catalog",
        separator_option="sep",
    )
    return table.frame, table.notes


# -- times --------------------------------------------------------------------------------

_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
    "%Y.%m.%d %H:%M:%S%.f",
    "%Y.%m.%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
)
# a value's own zone: a trailing Z / UTC, or an offset after the clock time (Rust regex syntax)
_UTC_SUFFIX = r"(?i)\d\s*(Z|UTC|GMT)$"
_UTC_TAIL = r"(?i)\s*(Z|UTC|GMT)$"
_OFFSET = r"(?i):\d{2}(?:\.\d+)?\s*(?:UTC|GMT)?([+-])(\d{2}):?(\d{2})$"
_OFFSET_TAIL = r"(?i)\s*(?:UTC|GMT)?[+-]\d{2}:?\d{2}$"
_FIXED = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_UTC_NAMES = {"utc", "z", "gmt", "etc/utc", "etc/gmt", "utc+0", "utc+00:00", "+00:00"}
_STATED = (
    (re.compile(r"北京时间|beijing", re.IGNORECASE), "+08:00"),
    (re.compile(r"(?:UTC|GMT)\s*([+-]\s*\d{1,2}(?::?\d{2})?)", re.IGNORECASE), None),
    (re.compile(r"\b(?:UTC|GMT)\b|协调世界时|世界时", re.IGNORECASE), "UTC"),
)


def stated_time_zone(column: str) -> str | None:
    """A time zone written in a time column's name: ``发震时刻(UTC+8)`` -> ``+8``, ``(北京时间)`` -> ``+08:00``."""
    for pattern, zone in _STATED:
        match = pattern.search(column)
        if match:
            return zone if zone is not None else match.group(1).replace(" ", "")
    return None


def _fixed_offset(spec: str) -> datetime.timedelta | None:
    match = _FIXED.match(spec.strip())
    if not match:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes >= 60:
        raise ConfigError(f"time zone {spec!r} is not a UTC offset", fix="write e.g. '+08:00' or '-05:30'")
    delta = datetime.timedelta(hours=hours, minutes=minutes)
    return -delta if sign == "-" else delta


def _text_times(
    path: Path, text: pl.Series, lines: pl.Series, *, column: str, time_format: str | None
) -> tuple[pl.Series, pl.Series]:
    """Naive times from text, and each value's own offset in minutes (null where it has none)."""
    stripped = text.str.strip_chars()
    blank = stripped.is_null() | (stripped == "")
    if blank.any():
        idx = int(blank.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, column {column!r}: the time is blank ({int(blank.sum())} such row(s))",
            fix="give every event its origin time, or delete the rows without one",
        )
    value = pl.col("value")
    group = value.str.extract_groups(_OFFSET).struct
    sign = pl.when(group.field("1") == "-").then(-1).otherwise(1)
    own_offset = (group.field("2").cast(pl.Int64) * 60 + group.field("3").cast(pl.Int64)) * sign
    split = pl.DataFrame({"value": stripped}).select(
        pl.when(value.str.contains(_OFFSET))
        .then(own_offset)
        .when(value.str.contains(_UTC_SUFFIX))
        .then(0)
        .otherwise(None)
        .cast(pl.Int64)
        .alias("offset"),
        pl.when(value.str.contains(_OFFSET))
        .then(value.str.replace(_OFFSET_TAIL, ""))
        .when(value.str.contains(_UTC_SUFFIX))
        .then(value.str.replace(_UTC_TAIL, ""))
        .otherwise(value)
        .str.replace(r"^(\d{4}\D\d{1,2}\D\d{1,2})T", "$1 ")
        .alias("naive"),
    )
    offsets, naive = split.get_column("offset"), split.get_column("naive")
    formats = (time_format,) if time_format else _TIME_FORMATS
    # each value by the first layout that reads it (exports drop ':00' seconds, or the fraction)
    best = pl.select(
        pl.coalesce([naive.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in formats])
    ).to_series()
    if best.null_count() == 0:
        return best.alias("time"), offsets
    idx = int(best.is_null().arg_true()[0])
    fix = (
        f"correct the value, or check time_format={time_format!r} against the file (strftime codes)"
        if time_format
        else "pass time_format= with the file's layout in strftime codes, e.g. time_format='%d/%m/%Y %H:%M:%S'"
    )
    raise fail(
        path,
        f"line {lines[idx]}, column {column!r}: expected a date/time like '2021-05-21 18:04:13' or "
        f"'2021-05-21T18:04:13Z', got {text[idx]!r} ({int(best.is_null().sum())} such value(s))",
        fix=fix,
    )


def _as_text(values: pl.Series, role: str) -> pl.Series:
    if values.dtype == pl.Utf8:
        return values
    if values.dtype == pl.Date or (isinstance(values.dtype, pl.Datetime) and role == "date"):
        return values.dt.strftime("%Y-%m-%d")
    if values.dtype == pl.Time:
        return values.dt.strftime("%H:%M:%S%.f")
    if isinstance(values.dtype, pl.Datetime):
        return values.dt.strftime("%Y-%m-%d %H:%M:%S%.f")
    return values.cast(pl.Utf8)


def event_times(
    path: Path,
    table: pl.DataFrame,
    reading: Mapping[str, str],
    *,
    timezone: str | None,
    time_format: str | None = None,
) -> tuple[pl.Series, list[str]]:
    """Origin times of the rows as naive UTC microseconds, plus notes on the conversion.

    ``timezone`` None means the zone written in the time column's name if any (``UTC+8``,
    ``北京时间``), else UTC.
    """
    lines = table.get_column("_line")
    time_col, date_col = reading["time"], reading.get("date")
    column = f"{date_col}+{time_col}" if date_col else time_col
    notes: list[str] = []
    zone = timezone
    if zone is None:
        stated = stated_time_zone(time_col) or (stated_time_zone(date_col) if date_col else None)
        zone = stated or "UTC"
        if stated and stated != "UTC":
            notes.append(f"the time column {time_col!r} states its zone: read as {stated} (pass timezone= to override)")
    raw = table.get_column(time_col)
    if date_col is None and isinstance(raw.dtype, pl.Datetime):
        if raw.dtype.time_zone is not None:
            if timezone not in (None, "UTC"):
                notes.append(f"{time_col!r} carries its own time zone; timezone={timezone!r} is not applied")
            return raw.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(pl.Datetime("us")), notes
        local, own = raw.cast(pl.Datetime("us")), pl.Series([None] * raw.len(), dtype=pl.Int64)
    elif date_col is None and raw.dtype == pl.Date:
        local, own = raw.cast(pl.Datetime("us")), pl.Series([None] * raw.len(), dtype=pl.Int64)
    else:
        text = _as_text(raw, "time")
        if date_col is not None:
            text = _as_text(table.get_column(date_col), "date").str.strip_chars() + " " + text.str.strip_chars()
        local, own = _text_times(path, text, lines, column=column, time_format=time_format)
    converted = _to_utc(path, local, lines, zone=zone, column=column)
    if own.is_not_null().any():
        stated_rows = own.is_not_null()
        converted = (
            pl.DataFrame({"local": local, "own": own, "zoned": converted})
            .select(
                pl.when(pl.col("own").is_not_null())
                .then(pl.col("local") - pl.duration(minutes=pl.col("own")))
                .otherwise(pl.col("zoned"))
            )
            .to_series()
        )
        if zone.lower() not in _UTC_NAMES:
            notes.append(
                f"{int(stated_rows.sum())} time(s) carry their own offset ('Z' or +hh:mm) and were converted by it; "
                f"timezone {zone!r} applies to the other {int((~stated_rows).sum())}"
            )
    elif zone.lower() not in _UTC_NAMES:
        notes.append(f"converted times from {zone} to UTC")
    return converted.cast(pl.Datetime("us")).alias("time"), notes


def _to_utc(path: Path, local: pl.Series, lines: pl.Series, *, zone: str, column: str) -> pl.Series:
    if zone.strip().lower() in _UTC_NAMES:
        return local
    offset = _fixed_offset(zone)
    if offset is not None:
        return local - offset
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {zone!r}",
            fix="use an IANA name such as 'Asia/Shanghai', 'Europe/Istanbul', 'Asia/Tokyo', 'America/Los_Angeles', "
            "or a fixed offset such as '+08:00'",
        ) from None
    utc = (
        local.dt.replace_time_zone(zone, ambiguous="null", non_existent="null")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )
    bad = utc.is_null() & local.is_not_null()
    if bad.any():
        idx = int(bad.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, column {column!r}: {local[idx]} does not exist or happens twice in {zone} "
            f"(a summer-time change; {int(bad.sum())} such time(s))",
            fix="correct the time, or pass timezone='+08:00' (a fixed offset) if the catalog keeps one offset all year",
        )
    return utc


def first_rows_kinds(text: str, separator: str) -> tuple[list[str], dict[str, str]]:
    """Header fields and the kinds of the first data row's values, from the head of a text file."""
    try:
        rows = list(itertools.islice(csv.reader(io.StringIO(text), delimiter=separator), 2))
    except csv.Error:  # not delimited text (a binary file decoded as latin-1, say)
        return [], {}
    if not rows:
        return [], {}
    header = [h.strip() for h in rows[0]]
    values = rows[1] if len(rows) > 1 else []
    return header, {h: _kind(v.strip()) for h, v in zip(header, values, strict=False)}
