"""Parser for any station or indicator table: a time column and value columns (``table``).

One reader for a river authority's gauge CSV, a mass-anomaly text file with ``HDR`` comment
lines and decimal-year times, a sensor log with year and day-of-year columns, an Excel sheet,
or a market export (``market_table`` is this parser with market defaults, see
:mod:`ingest.sources.market_table`).

Reading is :func:`ingest.sources.table_read.read_table`, the one reader of tabular files
(``event_catalog`` uses it too):

- **Containers**: delimited text; Excel (``.xlsx``/``.xlsm``/``.xls``/``.xlsb``/``.ods``, through
  polars' ``fastexcel`` engine; ``sheet`` by name or 1-based number, default the first); Parquet
  (by suffix or magic bytes).
- **Text**: ``encoding`` by default UTF-8, then GBK, then cp1252 (the one used is in
  ``notes``). GBK accepts most cp1252 byte pairs, so a cp1252 file with accented headers
  needs ``encoding="cp1252"``. Lines starting with one of ``comment_prefixes`` (default ``#``, ``HDR``,
  ``%``) and blank lines are skipped; error messages keep the file's own line numbers.
- **Separator**: ``\t`` ``|`` ``;`` ``,`` (the one found most often in the first line, the
  earlier of them on a tie), or runs of whitespace when none of them appears; ``separator=``
  overrides (``"whitespace"`` for the last).
- **Header**: by default the first line is a header unless every field of it is a number;
  a headerless file gets columns ``column_1``, ``column_2`` ... or ``column_names=[...]``.

Times (``time_column``; by default the first column named date, time, datetime, timestamp,
trade_date, observation_date, 日期, 时间, decimal_year, decyear; else a ``year`` column with a
``doy``/``day_of_year`` column; else, in a headerless file, the first column):

- Dates and date-times by ``time_format`` (strftime), by default the first of
  ``%Y-%m-%d``, ``%Y/%m/%d``, ``%Y%m%d``, ``%Y-%m-%d %H:%M:%S``, ``%Y-%m-%dT%H:%M:%S``,
  ``%Y-%m-%d %H:%M``, ``%Y-%m-%dT%H:%M:%SZ`` that reads every row. Times are taken as UTC.
- **Decimal years** (``time_format="decimal_year"``, or values like ``2002.2917``): the
  instant ``Jan 1 of the year + fraction x days in that year``, rounded to the nearest
  second, then ``ds`` is the start of the calendar day that holds it (floor, never rounded
  up). Mid-day stamps (SOPAC, NGL) and mid-month stamps (GRACE, PSMSL) therefore land on
  their own day and month; a stamp written for midnight and rounded down may land on the day
  before, so give dates for such files. A monthly series (the frequency declared ``MS``, or
  inferred from a median spacing of 28-31 days) gets ``ds`` = the first day of the month that
  holds the instant. Two times that land in one period (GRACE has months with two
  solutions) are refused, naming their lines, unless ``combine_repeated`` is ``"mean"``,
  ``"first"`` or ``"last"``.
- **Year and day of year** (``time_column=[year_column, doy_column]``, or
  ``time_format="year_doy"`` with one ``2002123`` / ``2002-123`` column): ``ds`` = 1 January
  + (day - 1).

Values (``value_columns``): a list of columns, or ``{column: unique_id}``, or ``{column:
{unique_id, name, domain, variable, unit}}`` for per-column metadata; by default every column
other than the time column(s). A header ``Flow (m3/s)`` or ``Mass [Gt]`` gives variable
``flow`` / ``mass`` and unit ``m3/s`` / ``Gt`` unless stated. File-wide ``domain`` (required
unless each column names one), ``variable`` and ``unit`` apply to columns that state none.
Physical bounds use the option every format takes, ``bounds={unique_id: [lower, upper]}`` (or
``"*"``), over :data:`ingest.sources._common.DEFAULT_BOUNDS` of the variable. Missing values:
blank, ``.``, ``None``, ``null``, ``NaN``, ``-`` (dropped, counted). Rows may come in any order.
The frequency is inferred (``h``, ``B``, ``D``, ``W-FRI``, ``W-SUN``, ``MS``) unless given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import polars as pl

from core.errors import ConfigError
from core.frames import Domain
from ingest.sources._common import Parsed, _first_bad, check_frequency, fail, finish, meta_row, snake, to_float
from ingest.sources.markets import _infer_frequency
from ingest.sources.table_read import Table, read_table

__all__ = ["parse_table", "read_table", "table_series", "ColumnSpec", "Table", "TIME_COLUMNS"]

#: Header names taken as the time column, in order of preference (compared case-insensitively).
TIME_COLUMNS = (
    "date",
    "trade_date",
    "time",
    "datetime",
    "timestamp",
    "observation_date",
    "日期",
    "时间",
    "decimal_year",
    "decyear",
)
_YEAR_NAMES = ("year", "yyyy", "年")
_DOY_NAMES = ("doy", "day_of_year", "dayofyear", "julian_day", "day")
MISSING = ("", ".", "None", "none", "null", "NULL", "NaN", "nan", "-")
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y%m%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%SZ",
)
_DECIMAL_YEAR = re.compile(r"^\s*[12]\d{3}\.\d+\s*$")
_UNIT_IN_HEADER = re.compile(r"^(?P<name>.*?)\s*[\(\[（](?P<unit>[^\)\]）]+)[\)\]）]\s*$")
_SPEC_KEYS = {"unique_id", "name", "domain", "variable", "unit"}


@dataclass(frozen=True)
class ColumnSpec:
    """How one value column becomes a series."""

    unique_id: str
    name: str | None = None
    domain: str | None = None
    variable: str | None = None
    unit: str | None = None


# -- times ----------------------------------------------------------------------------------------


def _find_time_columns(path: Path, table: Table, time_column: str | Sequence[str] | None) -> list[str]:
    columns = table.columns
    if time_column is not None:
        chosen = [time_column] if isinstance(time_column, str) else list(time_column)
        missing = [c for c in chosen if c not in columns]
        if missing or not 1 <= len(chosen) <= 2:
            raise ConfigError(
                f"{path.name}: time_column={time_column!r} does not name one column (or a year and a day-of-year "
                f"column) of the file; it has {columns}",
                fix="pass time_column= one of the columns, or [year_column, day_of_year_column]",
            )
        return chosen
    lowered = {c.strip().lower(): c for c in reversed(columns)}
    for name in TIME_COLUMNS:
        if name in lowered:
            return [lowered[name]]
    year = next((lowered[n] for n in _YEAR_NAMES if n in lowered), None)
    doy = next((lowered[n] for n in _DOY_NAMES if n in lowered), None)
    if year and doy:
        return [year, doy]
    if table.headerless:
        return [columns[0]]
    raise fail(
        path,
        f"has no time column; it has {columns}",
        fix="pass time_column= naming the date/time column (or [year_column, day_of_year_column])",
    )


def _times(
    path: Path,
    frame: pl.DataFrame,
    columns: list[str],
    time_format: str | None,
    *,
    option: str,
) -> tuple[pl.Series, str]:
    """(ds, kind) with kind one of "date", "decimal_year", "year_doy"."""
    lines = frame.get_column("_line")
    if len(columns) == 2 or time_format == "year_doy":
        return _year_doy(path, frame, columns, lines, option=option), "year_doy"
    raw = frame.get_column(columns[0])
    if raw.dtype == pl.Date or isinstance(raw.dtype, pl.Datetime):
        return raw.cast(pl.Datetime("us")), "date"
    text = raw.cast(pl.Utf8).str.strip_chars()
    if time_format == "decimal_year" or (
        time_format is None and text.len() and text.str.contains(_DECIMAL_YEAR.pattern).all()
    ):
        return _decimal_years(path, text, lines, column=columns[0]), "decimal_year"
    for fmt in (time_format,) if time_format else _DATE_FORMATS:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        if parsed.null_count() == 0:
            return parsed, "date"
    parsed = text.str.to_datetime(time_format or _DATE_FORMATS[0], strict=False, time_unit="us")
    idx = int(parsed.is_null().arg_true()[0])
    raise fail(
        path,
        f"line {lines[idx]}, column {columns[0]!r}: expected a date like "
        f"{'2020-01-31' if time_format is None else time_format}, got {text[idx]!r}",
        fix=f"pass {option}= matching the file (strftime codes, or 'decimal_year' / 'year_doy')",
    )


def _decimal_years(path: Path, text: pl.Series, lines: pl.Series, *, column: str) -> pl.Series:
    values = to_float(path, text, lines, column=column)
    frame = pl.DataFrame({"v": values}).with_columns(pl.col("v").floor().cast(pl.Int32).alias("year"))
    frame = frame.with_columns(
        pl.when(pl.date(pl.col("year"), 12, 31).dt.ordinal_day() == 366).then(366).otherwise(365).alias("days")
    )
    seconds = ((pl.col("v") - pl.col("year")) * pl.col("days") * 86400.0).round(0).cast(pl.Int64)
    instant = pl.datetime(pl.col("year"), 1, 1, time_unit="us") + pl.duration(seconds=seconds)
    return frame.select(instant.dt.truncate("1d").alias(column)).to_series()


def _year_doy(path: Path, frame: pl.DataFrame, columns: list[str], lines: pl.Series, *, option: str) -> pl.Series:
    if len(columns) == 1:
        text = frame.get_column(columns[0]).cast(pl.Utf8).str.strip_chars().str.replace("-", "")
        ok = text.str.contains(r"^\d{7}$")
        if not ok.all():
            idx = int((~ok).arg_true()[0])
            raise fail(
                path,
                f"line {lines[idx]}, column {columns[0]!r}: expected year and day of year like 2002123 or 2002-123, "
                f"got {frame.get_column(columns[0])[idx]!r}",
                fix=f"pass {option}= matching the file, or time_column=[year_column, day_of_year_column]",
            )
        year, doy = text.str.slice(0, 4).cast(pl.Int32), text.str.slice(4, 3).cast(pl.Int32)
    else:
        numbers = [to_float(path, frame.get_column(c).cast(pl.Utf8), lines, column=c) for c in columns]
        for col, values in zip(columns, numbers, strict=True):
            raw = frame.get_column(col).cast(pl.Utf8)
            _first_bad(path, raw, values != values.floor(), lines, column=col, expected="a whole number")
        year, doy = numbers[0].cast(pl.Int32), numbers[1].cast(pl.Int32)
    days = pl.DataFrame({"y": year}).select(pl.date(pl.col("y"), 12, 31).dt.ordinal_day()).to_series()
    bad = (doy < 1) | (doy > days)
    if bad.any():
        idx = int(bad.arg_true()[0])
        raise fail(
            path,
            f"line {lines[idx]}, column {columns[-1]!r}: day of year {doy[idx]} is outside 1..{days[idx]}"
            f" of {year[idx]}",
            fix="correct the day of year (1 = 1 January)",
        )
    return (
        pl.DataFrame({"y": year, "d": doy})
        .select((pl.datetime(pl.col("y"), 1, 1, time_unit="us") + pl.duration(days=pl.col("d") - 1)).alias("ds"))
        .to_series()
    )


def _frequency(path: Path, ds: pl.Series) -> str:
    """:func:`markets._infer_frequency`, plus hourly series."""
    gaps = ds.sort().diff().drop_nulls()
    if gaps.len() >= 2 and cast("object", gaps.dt.total_minutes().median()) == 60:
        return "h"
    return _infer_frequency(path, ds.sort())


# -- series --------------------------------------------------------------------------------------


def _specs(
    path: Path,
    table: Table,
    time_columns: list[str],
    value_columns: Mapping[str, str | Mapping[str, str]] | Sequence[str] | None,
    prefix: str,
    unique_id: str | None,
) -> dict[str, ColumnSpec]:
    columns = table.columns
    if value_columns is None:
        chosen: dict[str, object] = {c: None for c in columns if c not in time_columns}
        if not chosen:
            raise fail(path, f"has no value column besides {time_columns}", fix="pass a file with value columns")
    elif isinstance(value_columns, Mapping):
        chosen = dict(value_columns)
    elif isinstance(value_columns, Sequence) and not isinstance(value_columns, str):
        chosen = {c: None for c in value_columns}
    else:
        raise ConfigError(
            f"{path.name}: value_columns={value_columns!r} is neither a list of columns nor a column map",
            fix="pass value_columns=['Flow (m3/s)'] or {'Flow (m3/s)': 'my_gauge_flow'}",
        )
    missing = [c for c in chosen if c not in columns]
    if missing:
        raise ConfigError(f"{path.name}: value column(s) {missing} are not in the file", fix=f"choose among {columns}")
    specs = {}
    for index, (column, spec) in enumerate(chosen.items()):
        base = snake(_base_name(column))
        if base == "s_":  # no Latin letters or digits in the header (e.g. 流量): name it after the file
            base = snake(path.stem) if len(chosen) == 1 else f"{snake(path.stem)}_{index + 1}"
        default_id = unique_id if unique_id and len(chosen) == 1 else f"{prefix}{base}"
        if spec is None or isinstance(spec, str):
            specs[column] = ColumnSpec(unique_id=spec or default_id)
        elif isinstance(spec, Mapping):
            extra = sorted(set(spec) - _SPEC_KEYS)
            if extra:
                raise ConfigError(
                    f"{path.name}: value_columns[{column!r}] has unknown key(s) {extra}",
                    fix=f"use some of {sorted(_SPEC_KEYS)}",
                )
            specs[column] = ColumnSpec(
                unique_id=str(spec.get("unique_id") or default_id),
                **{k: (None if spec.get(k) is None else str(spec[k])) for k in ("name", "domain", "variable", "unit")},
            )
        else:
            raise ConfigError(
                f"{path.name}: value_columns[{column!r}] is {spec!r}",
                fix="map a column to a unique_id string or to {unique_id, name, domain, variable, unit}",
            )
    return specs


def _base_name(column: str) -> str:
    match = _UNIT_IN_HEADER.match(column)
    return match.group("name") if match and match.group("name") else column


def _variable(column: str) -> str:
    base = _base_name(column)
    name = snake(base)
    return base.strip().lower() if name == "s_" else name


def _header_unit(column: str) -> str | None:
    match = _UNIT_IN_HEADER.match(column)
    return match.group("unit").strip() if match and match.group("name") else None


_COMBINE = (None, "mean", "first", "last")


def _repeated(
    path: Path,
    y: pl.Series,
    ds: pl.Series,
    lines: pl.Series,
    column: str,
    *,
    kind: str,
    combine: str | None,
    notes: list[str],
) -> tuple[pl.Series, pl.Series]:
    """Values that share a timestamp: combined as asked, refused (naming their lines) when
    the sharing comes from reading decimal years, else left for :func:`finish` to judge."""
    frame = pl.DataFrame({"ds": ds, "y": y, "_line": lines})
    counts = frame.group_by("ds").len().filter(pl.col("len") > 1)
    if counts.height == 0 or (combine is None and kind != "decimal_year"):
        return y, ds
    if combine is None:
        first = counts.sort("ds").item(0, "ds")
        where = frame.filter(pl.col("ds") == first).get_column("_line").to_list()
        raise fail(
            path,
            f"column {column!r}: lines {where} fall in the same period {first:%Y-%m-%d} once decimal years are "
            f"read as calendar periods ({counts.height} such period(s))",
            fix="pass combine_repeated='mean' (or 'first' / 'last') to keep one value per period, "
            "or frequency='D' to keep each time on its own day",
        )
    agg = {"mean": pl.col("y").mean(), "first": pl.col("y").first(), "last": pl.col("y").last()}[combine]
    out = frame.group_by("ds", maintain_order=True).agg(agg)
    notes.append(f"{column}: {frame.height - out.height} value(s) sharing a period with another combined ({combine})")
    return out.get_column("y"), out.get_column("ds")


def table_series(
    path: Path,
    table: Table,
    *,
    specs: Mapping[str, ColumnSpec] | None = None,
    time_column: str | Sequence[str] | None = None,
    time_format: str | None = None,
    value_columns: Mapping[str, str | Mapping[str, str]] | Sequence[str] | None = None,
    unique_id: str | None = None,
    prefix: str = "",
    frequency: str | None = None,
    name: str | None = None,
    domain: str | None = None,
    variable: str | None = None,
    unit: str = "",
    region: str = "",
    lat: float | None = None,
    lon: float | None = None,
    source: str = "",
    licence: str = "",
    classification: str = "public",
    combine_repeated: str | None = None,
    time_option: str = "time_format",
) -> Parsed:
    """Turn a read :class:`Table` into one validated series per value column.

    ``specs`` (already resolved column specs) wins over ``value_columns``; ``time_option``
    is the option name error messages point to.
    """
    if combine_repeated not in _COMBINE:
        raise ConfigError(
            f"table {path.name}: combine_repeated={combine_repeated!r} is not supported",
            fix=f"use one of {[c for c in _COMBINE if c]} (or leave it unset to refuse repeated times)",
        )
    time_columns = _find_time_columns(path, table, time_column)
    if specs is None:
        specs = _specs(path, table, time_columns, value_columns, prefix, unique_id)
    notes = list(table.notes)
    frames, meta = [], []
    for column, spec in specs.items():
        col_domain = spec.domain or domain
        if col_domain is None:
            raise ConfigError(
                f"table {path.name}: no domain for column {column!r}",
                fix=f"pass domain= (--domain on the command line) one of {[d.value for d in Domain]}, "
                "or a domain per column in value_columns",
            )
        text = table.frame.get_column(column).cast(pl.Utf8).str.strip_chars()
        missing = text.is_null() | text.is_in(MISSING)
        kept = table.frame.filter(~missing)
        lines = kept.get_column("_line")
        ds, kind = _times(path, kept, time_columns, time_format, option=time_option)
        y = to_float(path, kept.get_column(column).cast(pl.Utf8), lines, column=column)
        if ds.len() > 1:
            order = "newest first" if ds[0] > ds[-1] else "oldest first"
            notes.append(
                f"{column}: {kept.height} value(s) ({order} in the file), {int(missing.sum())} missing dropped"
            )
        freq = frequency
        if kind == "decimal_year":
            gap = ds.sort().diff().drop_nulls().dt.total_days().median() if ds.len() > 1 else None
            if freq == "MS" or (freq is None and gap is not None and 28 <= cast(float, gap) <= 31):
                ds = ds.dt.truncate("1mo")
                notes.append(f"{column}: decimal years read as months (ds = first day of the month holding the time)")
            else:
                notes.append(f"{column}: decimal years read as days (ds = the day holding the time)")
        y, ds = _repeated(path, y, ds, lines, column, kind=kind, combine=combine_repeated, notes=notes)
        freq = freq or _frequency(path, ds)
        if frequency is None and kind != "date":
            notes.append(f"{column}: frequency {freq!r} inferred from the spacing of the times")
        check_frequency(path, ds, freq, what=f"column {' + '.join(time_columns)!r}")
        frames.append(pl.DataFrame({"unique_id": spec.unique_id, "ds": ds, "y": y}))
        col_unit = spec.unit if spec.unit is not None else (unit or _header_unit(column) or "")
        col_variable = spec.variable or variable or _variable(column)
        meta.append(
            meta_row(
                unique_id=spec.unique_id,
                domain=col_domain,
                name=spec.name or (name if name and len(specs) == 1 else f"{spec.unique_id} ({column})"),
                variable=col_variable,
                unit=col_unit,
                frequency=freq,
                region=region,
                lat=lat,
                lon=lon,
                source=source,
                licence=licence,
                classification=classification,
            )
        )
    return finish(path, frames, meta, notes=notes)


def parse_table(
    path: Path,
    *,
    time_column: str | Sequence[str] | None = None,
    time_format: str | None = None,
    value_columns: Mapping[str, str | Mapping[str, str]] | Sequence[str] | None = None,
    unique_id: str | None = None,
    prefix: str = "",
    domain: str | None = None,
    variable: str | None = None,
    unit: str = "",
    name: str | None = None,
    frequency: str | None = None,
    combine_repeated: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    separator: str | None = None,
    comment_prefixes: Sequence[str] = ("#", "HDR", "%"),
    header: bool | None = None,
    column_names: Sequence[str] | None = None,
    region: str = "",
    lat: float | None = None,
    lon: float | None = None,
    source: str = "own data",
    licence: str = "as stated by the data owner",
    classification: str = "public",
) -> Parsed:
    """Parse a station or indicator table into one series per value column (module docstring)."""
    path = Path(path)
    if isinstance(comment_prefixes, str):
        comment_prefixes = (comment_prefixes,)
    table = read_table(
        path,
        sheet=sheet,
        encoding=encoding,
        separator=separator,
        comment_prefixes=comment_prefixes,
        header=header,
        column_names=column_names,
    )
    return table_series(
        path,
        table,
        time_column=time_column,
        time_format=time_format,
        value_columns=value_columns,
        unique_id=unique_id,
        prefix=prefix,
        frequency=frequency,
        name=name,
        domain=domain,
        variable=variable,
        unit=unit,
        region=region,
        lat=lat,
        lon=lon,
        source=source,
        licence=licence,
        classification=classification,
        combine_repeated=combine_repeated,
    )
