"""Parsers for FRED multi-column exports and FRED API answers.

- ``fred_multi``: a FRED "data list" / multi-series export: a ``DATE`` (or ``date`` /
  ``observation_date``) column followed by one column per series id, tab- or comma-separated
  (detected from the header). ``.`` or blank = missing (dropped and counted per series). Every
  value column becomes one series ``<prefix><series id lower-cased>``; ``columns=[...]`` keeps
  a subset. Frequencies are inferred per series from the spacing of its own dates unless
  given; ``units`` and ``names`` map a series id to its unit / name.
- ``fred_json``: the JSON of ``fred/series/observations`` (``{"observations": [{"date",
  "value", "realtime_start", "realtime_end"}, ...]}``); values are strings, ``.`` = missing.
  The connector passes the title, unit and frequency it read from ``fred/series``. An ALFRED
  answer (``realtime_start=1776-07-04&realtime_end=9999-12-31``) lists one row per date and
  vintage: ``vintage="first"`` keeps each date's first-published value (the earliest
  ``realtime_start``), so a replay sees the numbers as they were announced; ``"latest"`` keeps
  the newest. Repeated dates without ``vintage`` are refused with that fix.
"""

from __future__ import annotations

import json
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
    to_datetime,
    to_float,
)
from ingest.sources.markets import _drop_missing, _infer_frequency

__all__ = ["parse_fred_multi", "parse_fred_json", "FRED_FREQUENCIES"]

_SOURCE = "FRED, Federal Reserve Bank of St. Louis"
_LICENCE = "see each series' FRED notes (many are US public domain); cite FRED, Federal Reserve Bank of St. Louis"

#: FRED's ``frequency_short`` codes to the engine's frequencies (None = infer from dates).
FRED_FREQUENCIES: dict[str, str | None] = {
    "D": None,
    "W": None,
    "BW": None,
    "M": "MS",
    "Q": None,
    "SA": None,
    "A": None,
}


def parse_fred_multi(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    prefix: str = "",
    frequency: str | None = None,
    units: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    domain: str = "market",
    region: str = "US",
    source: str = _SOURCE,
    licence: str = _LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse a ``DATE`` + one-column-per-series FRED export into one series per column."""
    path = Path(path)
    text, _ = read_text(path)
    header = text.split("\n", 1)[0]
    separator = "\t" if "\t" in header else ","
    raw = read_delimited(path, text, separator=separator, what="FRED export").with_row_index("_line", offset=2)
    lowered = {c.lower(): c for c in raw.columns}
    date_col = lowered.get("date") or lowered.get("observation_date")
    if date_col is None:
        raise fail(
            path,
            f"lacks a DATE column; it has {[c for c in raw.columns if c != '_line']}",
            fix="use FRED's multi-series download (first column DATE)",
        )
    available = [c for c in raw.columns if c not in ("_line", date_col)]
    wanted = list(columns) if columns else available
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ConfigError(
            f"fred_multi {path.name}: column(s) {missing} are not in the file", fix=f"choose columns among {available}"
        )
    if not wanted:
        raise fail(path, "has a DATE column but no series columns", fix="download at least one series")
    units, names = dict(units or {}), dict(names or {})
    frames, meta, notes = [], [], []
    for column in wanted:
        kept, n_missing = _drop_missing(raw.select("_line", date_col, column), column)
        if kept.height == 0:
            notes.append(f"{column}: no value in the file, skipped")
            continue
        lines = kept.get_column("_line")
        ds = to_datetime(path, kept.get_column(date_col), "%Y-%m-%d", lines, column=date_col, example="2020-01-31")
        y = to_float(path, kept.get_column(column), lines, column=column)
        freq = frequency or _infer_frequency(path, ds.sort())
        check_frequency(path, ds, freq, what=f"column {column!r}")
        uid = f"{prefix}{snake(column)}"
        frames.append(pl.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
        meta.append(
            meta_row(
                unique_id=uid,
                domain=domain,
                name=names.get(column, f"{column} (FRED)"),
                variable=snake(column),
                unit=units.get(column, ""),
                frequency=freq,
                region=region,
                lat=None,
                lon=None,
                source=source,
                licence=licence,
                classification=classification,
            )
        )
        notes.append(f"{column}: {kept.height} value(s), {n_missing} blank or '.' dropped, frequency {freq}")
    if not frames:
        raise fail(path, "has no value in any selected column", fix="download a date range that has data")
    return finish(path, frames, meta, notes=notes)


def parse_fred_json(
    path: Path,
    *,
    unique_id: str,
    name: str | None = None,
    unit: str = "",
    frequency: str | None = None,
    domain: str = "market",
    variable: str | None = None,
    region: str = "US",
    source: str = _SOURCE,
    licence: str = _LICENCE,
    classification: str = "public",
    vintage: str | None = None,
) -> Parsed:
    """Parse a FRED API observations answer into one series (``.`` values dropped and counted);
    ``vintage`` (``first`` / ``latest``) picks one row per date of an ALFRED answer."""
    if vintage not in (None, "first", "latest"):
        raise ConfigError(
            f"fred_json: vintage={vintage!r} is not one of first, latest",
            fix='pass vintage="first" (values as first published) or "latest" (as revised)',
        )
    path = Path(path)
    text, _ = read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(
            path,
            f"is not valid JSON ({exc.msg} at line {exc.lineno})",
            fix="the answer was cut off or is not from fred/series/observations; fetch it again",
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("observations"), list):
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise fail(
            path,
            f"has no 'observations' list (top level: {keys})",
            fix="request fred/series/observations with file_type=json",
        )
    rows = document["observations"]
    bad = [i for i, r in enumerate(rows) if not isinstance(r, dict) or "date" not in r or "value" not in r]
    if bad:
        raise fail(path, f"observation {bad[0]} lacks 'date' or 'value'", fix="fetch the series again")
    raw = pl.DataFrame(
        {
            "date": [str(r["date"]) for r in rows],
            "value": [str(r["value"]) for r in rows],
            "realtime_start": [str(r.get("realtime_start", "")) for r in rows],
        },
        schema={"date": pl.Utf8, "value": pl.Utf8, "realtime_start": pl.Utf8},
    ).with_row_index("_line", offset=1)
    raw, vintage_notes = _one_vintage(path, raw, vintage)
    kept, n_missing = _drop_missing(raw.drop("realtime_start"), "value")
    if kept.height == 0:
        raise fail(path, "has no non-missing observation", fix="widen observation_start/observation_end")
    lines = kept.get_column("_line")
    ds = to_datetime(path, kept.get_column("date"), "%Y-%m-%d", lines, column="date", example="2020-01-31")
    y = to_float(path, kept.get_column("value"), lines, column="value")
    notes = [*vintage_notes, *([f"dropped {n_missing} '.' value(s)"] if n_missing else [])]
    if frequency is None:
        frequency = _infer_frequency(path, ds.sort()) if ds.len() >= 3 else None
        if frequency is None:
            raise ConfigError(
                f"{path.name}: too few observations to infer the frequency of {unique_id}",
                fix="set frequency in the source's settings",
            )
        notes.append(f"frequency {frequency!r} inferred from the spacing of the dates")
    check_frequency(path, ds, frequency, what="column 'date'")
    meta = meta_row(
        unique_id=unique_id,
        domain=domain,
        name=name or unique_id,
        variable=variable or unique_id,
        unit=unit,
        frequency=frequency,
        region=region,
        lat=None,
        lon=None,
        source=source,
        licence=licence,
        classification=classification,
    )
    return finish(path, pl.DataFrame({"unique_id": unique_id, "ds": ds, "y": y}), [meta], notes=notes)


def _one_vintage(path: Path, raw: pl.DataFrame, vintage: str | None) -> tuple[pl.DataFrame, list[str]]:
    """One row per date: the earliest (``first``) or newest (``latest``) ``realtime_start``.
    A missing ('.') first release stays missing: the value was not published then."""
    repeated = raw.get_column("date").is_duplicated()
    if not repeated.any():
        return raw, []
    if vintage is None:
        dates = raw.filter(repeated).get_column("date")
        first = dates[0]
        raise fail(
            path,
            f"lists date {first} {int((dates == first).sum())} times, and {dates.n_unique()} date(s) more than "
            "once, across vintages (an ALFRED answer with realtime_start/realtime_end)",
            fix='pass vintage="first" to keep the values as first published, or vintage="latest"',
        )
    if (raw.get_column("realtime_start") == "").any():
        raise fail(
            path,
            "repeats dates but some observations lack realtime_start",
            fix="request the vintages with realtime_start and realtime_end (fred/series/observations)",
        )
    picked = (
        raw.sort("date", "realtime_start", descending=[False, vintage == "latest"])
        .unique(subset="date", keep="first", maintain_order=True)
        .sort("_line")
    )
    revised = raw.group_by("date").agg(pl.col("value").n_unique() > 1).get_column("value").sum()
    return picked, [
        f"kept the {vintage}-published value of each of {picked.height} date(s) out of {raw.height} vintage "
        f"row(s); {revised} date(s) were revised after their first release"
    ]
