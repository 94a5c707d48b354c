"""Market tables, CSV or Parquet, with a column map (``market_table``): the ``table`` parser
(:mod:`ingest.sources.table`) with market defaults.

Made for exports such as Yahoo's ``Date,Open,High,Low,Close,...``, Shiller's monthly table,
or NetEase-163's CSI 300 export (GBK-encoded, Chinese headers 日期 / 收盘价, newest row first).
What differs from ``table``:

- ``date_column`` / ``date_format`` are the ``table`` options ``time_column`` /
  ``time_format``; the date column is by default the first of ``date``, ``trade_date``,
  ``time``, ``日期`` ... that exists (:data:`ingest.sources.table.TIME_COLUMNS`).
- ``value_columns``: ``{column: unique_id}`` or a list of columns (ids become
  ``<prefix><snake column>``). By default the one close-like column (``Close``, ``close``,
  ``CLOSE``, ``收盘价``, ``SP500``); a file with none or several of them asks for the map.
- The domain is ``market``; a close-like column's variable is ``close``, any other column's
  its snake_case name; the unit is ``unit`` (not read from the header).

Everything else (encodings UTF-8 / GBK / cp1252, Parquet, missing markers, any row order,
frequency inference, comment lines) is the ``table`` parser's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from core.errors import ConfigError
from ingest.sources._common import Parsed, snake
from ingest.sources.table import TIME_COLUMNS, ColumnSpec, read_table, table_series

__all__ = ["parse_market_table", "DATE_COLUMNS", "CLOSE_COLUMNS"]

DATE_COLUMNS = TIME_COLUMNS
CLOSE_COLUMNS = ("Close", "close", "CLOSE", "收盘价", "SP500")


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
    table = read_table(path, encoding=encoding, what="market")
    mapping = _value_map(path, table.columns, value_columns, prefix, unique_id)
    specs = {
        column: ColumnSpec(unique_id=uid, variable="close" if column in CLOSE_COLUMNS else snake(column), unit=unit)
        for column, uid in mapping.items()
    }
    return table_series(
        path,
        table,
        specs=specs,
        time_column=date_column,
        time_format=date_format,
        frequency=frequency,
        name=name,
        domain=domain,
        region=region,
        source=source,
        licence=licence,
        classification=classification,
        time_option="date_format",
    )
