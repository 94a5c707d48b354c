"""Parsers for FRED downloads (St. Louis Fed).

- ``fred_csv``: one series per file, header ``date,value`` (FRED's graph download; the older
  ``DATE,<SERIES>`` / ``observation_date,<SERIES>`` headers are accepted too). A blank or ``.``
  value is a missing observation: the row is dropped and the count is reported in ``notes``.
- ``fred_long_fx``: the long ``Date,Country,Exchange rate`` table of Fed H.10 monthly rates
  (datahub's ``exchange-rates``); one country is selected with ``country=``.

``ds`` is the observation date at midnight. Frequencies are declared (``B`` business daily,
``W-FRI`` weekly stamped on Fridays, ``MS`` month start) and checked against the dates; when
not given, the frequency is inferred from the median gap between dates and said in ``notes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

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
    require_columns,
    snake,
    to_datetime,
    to_float,
)

__all__ = ["parse_fred_csv", "parse_fred_long_fx"]

_MISSING_MARKERS = ("", ".")
_FRED_SOURCE = "FRED, Federal Reserve Bank of St. Louis"
_FRED_LICENCE = "public domain (US government data via FRED); cite FRED, Federal Reserve Bank of St. Louis"


def _infer_frequency(path: Path, ds: pl.Series) -> str:
    """Guess B / D / W-FRI / W-SUN / MS from the median spacing of the dates."""
    if ds.len() < 3:
        raise ConfigError(f"{path.name}: too few dates to infer a frequency", fix="pass frequency=... explicitly")
    # polars types a median as any Python literal; of whole days it is a float, or None if empty
    gap_days = cast("float | None", ds.diff().drop_nulls().dt.total_days().median())
    if gap_days is not None and gap_days <= 1:
        return "B" if (ds.dt.weekday() <= 5).all() else "D"
    if gap_days == 7:
        weekday = ds.dt.weekday().mode()[0]
        if weekday in (5, 7):
            return "W-FRI" if weekday == 5 else "W-SUN"
    if gap_days is not None and 28 <= gap_days <= 31 and (ds.dt.day() == 1).all():
        return "MS"
    raise ConfigError(
        f"{path.name}: cannot infer a frequency (median gap {gap_days} days)",
        fix="pass frequency= one of B, D, W-FRI, W-SUN, MS",
    )


def _drop_missing(raw: pl.DataFrame, value_col: str) -> tuple[pl.DataFrame, int]:
    missing = raw.get_column(value_col).is_null() | raw.get_column(value_col).is_in(_MISSING_MARKERS)
    return raw.filter(~missing), int(missing.sum())


def parse_fred_csv(
    path: Path,
    *,
    unique_id: str | None = None,
    name: str | None = None,
    unit: str = "",
    frequency: str | None = None,
    domain: str = "market",
    variable: str | None = None,
    region: str = "US",
    lat: float | None = None,
    lon: float | None = None,
    source: str = _FRED_SOURCE,
    licence: str = _FRED_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse a FRED ``date,value`` CSV into one series (missing values dropped and counted)."""
    path = Path(path)
    text, _ = read_text(path)
    raw = read_delimited(path, text).with_row_index("_line", offset=2)
    lowered = {c.lower(): c for c in raw.columns if c != "_line"}
    date_col = lowered.get("date") or lowered.get("observation_date")
    others = [c for c in raw.columns if c not in ("_line", date_col)]
    value_col = lowered.get("value") or (others[0] if len(others) == 1 else None)
    if date_col is None or value_col is None:
        raise fail(
            path,
            f"lacks column(s) 'date' and 'value' in its header; it has {[c for c in raw.columns if c != '_line']}",
            fix="use FRED's CSV download (header date,value)",
        )
    kept, n_missing = _drop_missing(raw, value_col)
    if kept.height == 0:
        raise fail(path, f"has no non-missing value in column {value_col!r}", fix="download a date range that has data")
    lines = kept.get_column("_line")
    ds = to_datetime(path, kept.get_column(date_col), "%Y-%m-%d", lines, column=date_col, example="2020-01-31")
    y = to_float(path, kept.get_column(value_col), lines, column=value_col)
    notes = [f"dropped {n_missing} blank or '.' value(s)"] if n_missing else []
    if frequency is None:
        frequency = _infer_frequency(path, ds.sort())
        notes.append(f"frequency {frequency!r} inferred from the spacing of the dates")
    check_frequency(path, ds, frequency, what=f"column {date_col!r}")
    series_id = unique_id or snake(path.stem)
    meta = meta_row(
        unique_id=series_id,
        domain=domain,
        name=name or series_id,
        variable=variable or snake(value_col if value_col.lower() != "value" else series_id),
        unit=unit,
        frequency=frequency,
        region=region,
        lat=lat,
        lon=lon,
        source=source,
        licence=licence,
        classification=classification,
    )
    series = pl.DataFrame({"unique_id": series_id, "ds": ds, "y": y})
    return finish(path, series, [meta], notes=notes)


def parse_fred_long_fx(
    path: Path,
    *,
    country: str,
    unique_id: str | None = None,
    name: str | None = None,
    unit: str = "",
    frequency: str = "MS",
    domain: str = "market",
    variable: str = "exchange_rate",
    region: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    source: str = "Federal Reserve Board H.10 via FRED (datahub.io exchange-rates)",
    licence: str = "public domain (Federal Reserve); datahub packaging PDDL",
    classification: str = "public",
) -> Parsed:
    """Parse one country's rates from the long ``Date,Country,Exchange rate`` table."""
    path = Path(path)
    text, _ = read_text(path)
    raw = read_delimited(path, text).with_row_index("_line", offset=2)
    require_columns(path, raw, ["Date", "Country", "Exchange rate"])
    rows = raw.filter(pl.col("Country") == country)
    if rows.height == 0:
        known = sorted(set(raw.get_column("Country").drop_nulls().to_list()))
        raise fail(
            path,
            f"has no rows for country {country!r}; it lists {known[:12]}{' ...' if len(known) > 12 else ''}",
            fix="pass country= exactly as spelled in the Country column",
        )
    kept, n_missing = _drop_missing(rows, "Exchange rate")
    if kept.height == 0:
        raise fail(path, f"has no non-missing rate for {country!r}", fix="use a file with data for that country")
    lines = kept.get_column("_line")
    ds = to_datetime(path, kept.get_column("Date"), "%Y-%m-%d", lines, column="Date", example="2020-01-01")
    y = to_float(path, kept.get_column("Exchange rate"), lines, column="Exchange rate")
    check_frequency(path, ds, frequency, what="column 'Date'")
    series_id = unique_id or f"{snake(country)}_fx"
    notes = [f"selected {rows.height} row(s) for {country}"]
    if n_missing:
        notes.append(f"dropped {n_missing} blank or '.' value(s)")
    meta = meta_row(
        unique_id=series_id,
        domain=domain,
        name=name or f"{country} exchange rate",
        variable=variable,
        unit=unit,
        frequency=frequency,
        region=region or country,
        lat=lat,
        lon=lon,
        source=source,
        licence=licence,
        classification=classification,
    )
    series = pl.DataFrame({"unique_id": series_id, "ds": ds, "y": y})
    return finish(path, series, [meta], notes=notes)
