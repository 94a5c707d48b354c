"""Parser for UNAVCO / EarthScope PBO ``.pos`` GNSS position time series (``pbo_pos``).

Layout (format version 1.1.0): a header with ``4-character ID:``, ``NEU Reference position :``
(lat, east longitude, height), a field description block, a column line starting ``*YYYYMMDD``,
then one whitespace-separated row of 25 fields per daily solution. Fields 16-18 are dN, dE, dU
in metres from the reference position.

Returns three calendar-daily series ``<station>_north``, ``<station>_east``, ``<station>_up``
in millimetres relative to the first epoch (so every series starts at 0). ``ds`` is the day
at midnight: PBO daily solutions are stamped 12:00 UTC, the middle of the 24-hour session.
Station latitude/longitude come from the NEU reference position, with the east longitude
(0..360) turned into -180..180.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import polars as pl

from ingest.sources._common import Parsed, calendar_span_days, fail, finish, meta_row, read_text, snake

__all__ = ["parse_pbo_pos"]

_FIELDS = 25  # YYYYMMDD HHMMSS MJD X Y Z Sx Sy Sz Rxy Rxz Ryz NLat Elong Height dN dE dU Sn Se Su Rne Rnu Reu Soln
_DN, _DE, _DU = 15, 16, 17
_SOURCE = "EarthScope Consortium (formerly UNAVCO), Plate Boundary Observatory GNSS"
_LICENCE = "CC BY 4.0; cite the EarthScope Consortium GNSS data products"
_NUMBER = r"[-+]?\d+(?:\.\d*)?"


def _header(path: Path, lines: list[str]) -> tuple[str, str, float, float, int]:
    """Station id, station name, lat, lon (-180..180) and index of the first data line."""
    station = name = None
    lat = lon = None
    for i, line in enumerate(lines):
        if line.startswith("4-character ID:"):
            station = line.split(":", 1)[1].strip()
        elif line.startswith("Station name"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("NEU Reference position"):
            numbers = re.findall(_NUMBER, line.split(":", 1)[1])
            if len(numbers) < 2:
                raise fail(
                    path,
                    f"line {i + 1}: expected 'NEU Reference position : <lat> <east lon> <height>', "
                    f"got {line.strip()!r}",
                    fix="use an unmodified PBO .pos file",
                )
            lat, lon_east = float(numbers[0]), float(numbers[1])
            lon = lon_east - 360.0 if lon_east > 180.0 else lon_east
        elif line.startswith("*YYYYMMDD"):
            if station is None or lat is None or lon is None:
                raise fail(
                    path,
                    "the header lacks '4-character ID:' or 'NEU Reference position' before the column line",
                    fix="use an unmodified PBO .pos file (format version 1.1.0)",
                )
            return station, name or station, lat, lon, i + 1
    raise fail(
        path,
        "has no column line starting '*YYYYMMDD'; this is not a PBO .pos file",
        fix="use a PBO .pos file (format version 1.1.0), or pick the parser for the file's format",
    )


def _rows(
    path: Path, lines: list[str], first: int
) -> tuple[list[datetime.datetime], list[list[float]], dict[str, int]]:
    days: list[datetime.datetime] = []
    neu: list[list[float]] = []
    solutions: dict[str, int] = {}
    for number, line in enumerate(lines[first:], start=first + 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != _FIELDS:
            raise fail(
                path,
                f"line {number}: expected {_FIELDS} whitespace-separated fields, got {len(fields)}",
                fix="the file may be truncated or edited; download it again",
            )
        try:
            day = datetime.datetime.strptime(fields[0], "%Y%m%d")
        except ValueError:
            raise fail(
                path,
                f"line {number}, field YYYYMMDD: expected a date like 20060608, got {fields[0]!r}",
                fix="download the file again",
            ) from None
        values: list[float] = []
        for index, label in ((_DN, "dN"), (_DE, "dE"), (_DU, "dU")):
            try:
                values.append(float(fields[index]))
            except ValueError:
                raise fail(
                    path,
                    f"line {number}, field {label}: expected a number in metres, got {fields[index]!r}",
                    fix="download the file again",
                ) from None
        days.append(day)
        neu.append(values)
        solutions[fields[-1]] = solutions.get(fields[-1], 0) + 1
    if not days:
        raise fail(path, "has a header but no position rows", fix="download a file with data in it")
    return days, neu, solutions


def parse_pbo_pos(
    path: Path,
    *,
    station_id: str | None = None,
    region: str = "",
    source: str = _SOURCE,
    licence: str = _LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse a PBO .pos file into north/east/up displacement series in mm from the first epoch."""
    path = Path(path)
    text, _ = read_text(path, encodings=("utf-8", "latin-1"))
    lines = text.split("\n")
    station, name, lat, lon, first = _header(path, lines)
    days, neu, solutions = _rows(path, lines, first)
    prefix = station_id or snake(station)
    frame = (
        pl.DataFrame({"ds": days, "n": [r[0] for r in neu], "e": [r[1] for r in neu], "u": [r[2] for r in neu]})
        .with_columns(pl.col("ds").cast(pl.Datetime("us")))
        .sort("ds")
    )
    # Relative to the first epoch, in mm: the reference position is arbitrary, the motion is not.
    frame = frame.with_columns(((pl.col(c) - pl.col(c).first()) * 1000.0) for c in ("n", "e", "u"))
    span = calendar_span_days(frame.get_column("ds"))
    notes = [
        "daily solutions stamped 12:00 UTC are stored at the day's midnight",
        f"{frame.height} daily solutions over {span} calendar days ({span - frame.height} days without a solution)",
        "solution types: " + ", ".join(f"{k} {v}" for k, v in sorted(solutions.items())),
    ]
    frames, meta = [], []
    for column, component in (("n", "north"), ("e", "east"), ("u", "up")):
        uid = f"{prefix}_{component}"
        frames.append(frame.select(pl.lit(uid).alias("unique_id"), "ds", pl.col(column).alias("y")))
        meta.append(
            meta_row(
                unique_id=uid,
                domain="geodetic",
                name=f"{station} {name}: {component} displacement",
                variable=f"displacement_{component}",
                unit="mm",
                frequency="D",
                region=region or station,
                lat=lat,
                lon=lon,
                source=source,
                licence=licence,
                classification=classification,
            )
        )
    return finish(path, frames, meta, notes=notes)
