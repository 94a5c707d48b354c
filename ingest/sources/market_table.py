"""Parser for generic market tables, CSV or Parquet, with a column map (``market_table``).

Made for exports such as Yahoo's ``Date,Open,High,Low,Close,...``, Shiller's monthly table,
or NetEase-163's CSI 300 export (GBK-encoded, Chinese headers 日期 / 收盘价, newest row first).

- ``date_column``: the date column; by default the first of ``date``, ``Date``, ``DATE``,
  ``日期``, ``trade_date``, ``time`` that exists.
- ``value_columns``: ``{column: unique_id}`` or a list of columns (ids become
  ``<prefix><snake column>``). By default the one close-like column (``Close``, ``close``,
  ``CLOSE``, ``收盘价``, ``SP500``); a file with none or several of them asks for the map.
- ``encoding``: by default UTF-8, then GBK (the common encoding of Chinese exports), then
  cp1252; the encoding used is said in ``notes``.
- Dates: ``date_format`` (strftime), by default ``%Y-%m-%d``, ``%Y/%m/%d`` or ``%Y%m%d``.
  Parquet date/datetime columns are used as they are.
- Missing values: blank, ``.``, ``None``, ``null``, ``NaN``, ``-`` (dropped, counted).
- Rows may come in any order (newest first is common): the series is sorted, and the order
  found is said in ``notes``. The frequency is inferred (``B`` for trading days) unless given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from core.errors import ConfigError
from ingest.sources._common import (
    Parsed,
    check_frequency,
    fail,
    finish,
    meta_row,
    read_delimited,
    read_text,
    snake,
    to_float,
)
from ingest.sources.markets import _infer_frequency

__all__ = ["parse_market_table", "DATE_COLUMNS", "CLOSE_COLUMNS"]

DATE_COLUMNS = ("date", "Date", "DATE", "日期", "trade_date", "time")
CLOSE_COLUMNS = ("Close", "close", "CLOSE", "收盘价", "SP500")
_MISSING = ("", ".", "None", "none", "null", "NULL", "NaN", "nan", "-")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d")


def _read(path: Path, encoding: str | None) -> tuple[pl.DataFrame, list[str]]:
    """All-text table (CSV) or typed table (Parquet), plus notes."""
    if path.suffix.lower() in (".parquet", ".pq") or path.read_bytes()[:4] == b"PAR1":
        try:
            return pl.read_parquet(path), ["read as Parquet"]
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise fail(path, f"cannot be read as Parquet ({exc})", fix="pass an intact Parquet file") from None
    text, used = read_text(path, encodings=(encoding,) if encoding else ("utf-8", "gbk", "cp1252"))
    notes = [] if used == "utf-8" else [f"decoded as {used}"]
    return read_delimited(path, text, what="market CSV"), notes


def _value_map(
    path: Path,
    columns: Sequence[str],
    value_columns: Mapping[str, str] | Sequence[str] | None,
    prefix: str,
    unique_id: str | None,
) -> dict[str, str]:
    if value_columns is None:
        found = [c for c in CLOSE_COLUMNS if c in columns]
        if len(found) != 1:
            raise ConfigError(
                f"market_table {path.name}: cannot tell which column holds the values ({len(found)} close-like "
                f"column(s) among {list(columns)})",
                fix="pass value_columns={'Close': 'my_series_id'} (or a list of columns)",
            )
        return {found[0]: unique_id or f"{prefix}{snake(path.stem)}"}
    mapping = (
        dict(value_columns) if isinstance(value_columns, Mapping) else {c: f"{prefix}{snake(c)}" for c in value_columns}
    )
    missing = [c for c in mapping if c not in columns]
    if missing:
        raise ConfigError(
            f"market_table {path.name}: column(s) {missing} are not in the file", fix=f"choose among {list(columns)}"
        )
    return mapping


def _dates(path: Path, raw: pl.Series, lines: pl.Series, date_format: str | None) -> pl.Series:
    if raw.dtype in (pl.Date, pl.Datetime) or isinstance(raw.dtype, pl.Datetime):
        return raw.cast(pl.Datetime("us"))
    text = raw.cast(pl.Utf8)
    for fmt in (date_format,) if date_format else _DATE_FORMATS:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        if parsed.null_count() == 0:
            return parsed
    parsed = text.str.to_datetime(date_format or _DATE_FORMATS[0], strict=False, time_unit="us")
    idx = int(parsed.is_null().arg_true()[0])
    raise fail(
        path,
        f"line {lines[idx]}, date column: expected a date like 2020-01-31, got {text[idx]!r}",
        fix="pass date_format= matching the file (strftime codes)",
    )


def parse_market_table(
    path: Path,
    *,
    value_columns: Mapping[str, str] | Sequence[str] | None = None,
    date_column: str | None = None,
    unique_id: str | None = None,
    prefix: str = "",
    encoding: str | None = None,
    date_format: str | None = None,
    frequency: str | None = None,
    name: str | None = None,
    unit: str = "",
    domain: str = "market",
    region: str = "",
    source: str = "market data export",
    licence: str = "terms of the data vendor",
    classification: str = "public",
) -> Parsed:
    """Parse a market CSV/Parquet into one series per mapped value column."""
    path = Path(path)
    table, notes = _read(path, encoding)
    table = table.with_row_index("_line", offset=2)
    columns = [c for c in table.columns if c != "_line"]
    date_col = date_column or next((c for c in DATE_COLUMNS if c in columns), None)
    if date_col is None or date_col not in columns:
        raise fail(
            path,
            f"has no date column {date_column or ''}; it has {columns}",
            fix="pass date_column= naming the date column",
        )
    mapping = _value_map(path, columns, value_columns, prefix, unique_id)
    frames, meta = [], []
    for column, uid in mapping.items():
        values = table.get_column(column)
        text = values.cast(pl.Utf8).str.strip_chars()
        missing = text.is_null() | text.is_in(_MISSING)
        kept = table.filter(~missing)
        lines = kept.get_column("_line")
        ds = _dates(path, kept.get_column(date_col), lines, date_format)
        y = to_float(path, kept.get_column(column).cast(pl.Utf8), lines, column=column)
        if ds.len() > 1:
            order = "newest first" if ds[0] > ds[-1] else "oldest first"
            notes.append(
                f"{column}: {kept.height} value(s) ({order} in the file), {int(missing.sum())} missing dropped"
            )
        freq = frequency or _infer_frequency(path, ds.sort())
        check_frequency(path, ds, freq, what=f"column {date_col!r}")
        frames.append(pl.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
        meta.append(
            meta_row(
                unique_id=uid,
                domain=domain,
                name=name if name and len(mapping) == 1 else f"{uid} ({column})",
                variable="close" if column in CLOSE_COLUMNS else snake(column),
                unit=unit,
                frequency=freq,
                region=region,
                lat=None,
                lon=None,
                source=source,
                licence=licence,
                classification=classification,
            )
        )
    return finish(path, frames, meta, notes=notes)
