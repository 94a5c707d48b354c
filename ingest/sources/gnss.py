"""Parsers for GNSS daily position series besides PBO ``.pos``: NGL ``tenv3`` and SIO ``.neu``.

- ``ngl_tenv3`` (Nevada Geodetic Laboratory): one header line ``site YYMMMDD yyyy.yyyy ...``,
  then whitespace rows; columns 8+9 are the east coordinate (integer + fractional metres),
  10+11 north, 12+13 up; 21-22 the station latitude and longitude (longitude may be written
  below -180, e.g. -268.896 for 91.104 E). The date is ``YYMMMDD`` (``95MAY19``).
- ``sio_neu`` reads two layouts of ``decyear year doy dN dE dU sN sE sU`` rows (metres; the
  date is year + day of year; rows may come out of order; repeated days with the same values
  are dropped):

  - PBO-style header (as written by the iGPS tools): ``#`` lines carrying ``4-character ID:``
    and ``NEU Reference position : lat lon height``.
  - SOPAC's own cleaned / unfiltered / residual series (``bjfsCleanUnf.neu``,
    ``p231CleanFlt.neu``): a ``# Refined Model Terms:`` comment block (or ``... Model
    Terms:``) listing, per ``n`` / ``e`` / ``u component``, the fitted slopes, offsets,
    annual and semi-annual terms (``value +/- sigma unit``, phases, spans), and no station
    line: the station is the file name's first four characters (``bjfs``) or
    ``station_id``. A ``Reference position: N36 37 18.03 W121 54 19.47 ...`` line, when
    present, gives the latitude and longitude. The model terms go into each component
    series' ``attributes`` (metadata column, JSON): ``{"model_terms": [{"term": "slope 1",
    "value": -0.0105, "sigma": 0.0002, "unit": "m/yr", "detail": "(1999.8068 - 2008.8374)"},
    ...], "model_terms_header": "Refined Model Terms"}``, values as the file writes them
    (NaN written as null).

Both give three calendar-daily series ``<station>_north``, ``<station>_east``, ``<station>_up``
in millimetres relative to the first epoch, like ``pbo_pos``; ``ds`` is the day at midnight.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import polars as pl

from ingest.sources._common import Parsed, calendar_span_days, fail, finish, meta_row, read_text, snake

__all__ = ["parse_ngl_tenv3", "parse_sio_neu"]

_NGL_SOURCE = "Nevada Geodetic Laboratory (NGL), University of Nevada, Reno"
_NGL_LICENCE = "free to use with citation: Blewitt, Hammond and Kreemer (2018) Eos 99, doi:10.1029/2018EO104623"
_SIO_SOURCE = "SOPAC / Scripps Orbit and Permanent Array Center (SIO) GNSS time series"
_SIO_LICENCE = "free to use with citation of SOPAC/SIO"
_NUMBER = r"[-+]?\d+(?:\.\d*)?"
_TENV3_MIN_FIELDS = 20


def _series(
    path: Path,
    frame: pl.DataFrame,
    *,
    prefix: str,
    station: str,
    lat: float | None,
    lon: float | None,
    region: str,
    source: str,
    licence: str,
    classification: str,
    notes: list[str],
    attributes: dict[str, dict[str, object]] | None = None,
) -> Parsed:
    """Displacements in mm from the first epoch, one series per component; ``attributes``
    maps a component letter (n, e, u) to that series' metadata attributes."""
    frame = frame.sort("ds").with_columns(((pl.col(c) - pl.col(c).first()) * 1000.0) for c in ("n", "e", "u"))
    span = calendar_span_days(frame.get_column("ds"))
    notes.append(f"{frame.height} daily solutions over {span} calendar days; mm relative to the first epoch")
    frames, meta = [], []
    for column, component in (("n", "north"), ("e", "east"), ("u", "up")):
        uid = f"{prefix}_{component}"
        frames.append(frame.select(pl.lit(uid).alias("unique_id"), "ds", pl.col(column).alias("y")))
        meta.append(
            meta_row(
                unique_id=uid,
                domain="geodetic",
                name=f"{station}: {component} displacement",
                variable=f"displacement_{component}",
                unit="mm",
                frequency="D",
                region=region or station,
                lat=lat,
                lon=lon,
                source=source,
                licence=licence,
                classification=classification,
                attributes=(attributes or {}).get(column),
            )
        )
    return finish(path, frames, meta, notes=notes)


def _longitude(value: float) -> float:
    return ((value + 180.0) % 360.0) - 180.0


def parse_ngl_tenv3(
    path: Path,
    *,
    station_id: str | None = None,
    region: str = "",
    source: str = _NGL_SOURCE,
    licence: str = _NGL_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse an NGL tenv3 file into east/north/up displacement series in mm."""
    path = Path(path)
    text, _ = read_text(path)
    lines = text.split("\n")
    if not lines[0].split()[:2] == ["site", "YYMMMDD"]:
        raise fail(
            path,
            f"line 1: expected the tenv3 header 'site YYMMMDD yyyy.yyyy ...', got {lines[0][:50]!r}",
            fix="use an unmodified NGL .tenv3 file",
        )
    days, n, e, u = [], [], [], []
    station = lat = lon = None
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < _TENV3_MIN_FIELDS:
            raise fail(
                path,
                f"line {number}: expected at least {_TENV3_MIN_FIELDS} whitespace-separated fields, got {len(fields)}",
                fix="the file may be truncated; download it again",
            )
        try:
            day = datetime.datetime.strptime(fields[1].title(), "%y%b%d")
        except ValueError:
            raise fail(
                path,
                f"line {number}, field YYMMMDD: expected a date like 95MAY19, got {fields[1]!r}",
                fix="download the file again",
            ) from None
        try:
            east = float(fields[7]) + float(fields[8])
            north = float(fields[9]) + float(fields[10])
            up = float(fields[11]) + float(fields[12])
        except ValueError:
            raise fail(
                path,
                f"line {number}: east/north/up fields 8-13 must be numbers, got {fields[7:13]}",
                fix="download the file again",
            ) from None
        station = station or fields[0]
        if len(fields) >= 22 and lat is None:
            lat, lon = float(fields[20]), _longitude(float(fields[21]))
        days.append(day)
        n.append(north)
        e.append(east)
        u.append(up)
    if not days:
        raise fail(path, "has a header but no position rows", fix="download a file with data in it")
    frame = pl.DataFrame({"ds": days, "n": n, "e": e, "u": u}).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    notes = ["east/north/up = integer + fractional parts (NGL tenv3 columns 8-13)"]
    return _series(
        path,
        frame,
        prefix=station_id or snake(str(station)),
        station=str(station),
        lat=lat,
        lon=lon,
        region=region,
        source=source,
        licence=licence,
        classification=classification,
        notes=notes,
    )


_MODEL_HEADER = re.compile(r"^#\s*(?P<title>[A-Za-z][\w .-]*Model Terms)\s*:", re.IGNORECASE)
_COMPONENT = re.compile(r"^#\s*(?P<c>[neu])\s+component\s*$", re.IGNORECASE)
_TERM = re.compile(
    r"^#\s*(?P<term>[A-Za-z][A-Za-z !-]*?\d*)\s*:\s*(?P<value>[-+]?(?:NaN|\d[\d.]*(?:[eE][-+]?\d+)?|\.\d+))"
    r"\s*\+/?-\s*(?P<sigma>[-+]?(?:NaN|\d[\d.]*(?:[eE][-+]?\d+)?))\s*(?P<unit>[a-zA-Z/]+)?\s*;?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_PHASE = re.compile(r"phase:\s*(?P<phase>[-+]?[\d.]+|[-+]?NaN)\s*(?P<unit>deg|rad)?", re.IGNORECASE)
_DMS = re.compile(
    r"Reference position:\s*(?P<ns>[NS])(?P<lat>\d+ \d+ [\d.]+)\s+(?P<ew>[EW])(?P<lon>\d+ \d+ [\d.]+)", re.IGNORECASE
)
_SOPAC_NAME = re.compile(r"^(?P<site>[A-Za-z0-9]{4})Clean", re.IGNORECASE)


def _number(text: str) -> float | None:
    value = float(text)
    return None if value != value else value  # NaN -> None (JSON has no NaN)


def _model_terms(header: list[str]) -> tuple[str | None, dict[str, list[dict[str, object]]]]:
    """The title and the per-component terms of a SOPAC ``# ... Model Terms:`` block."""
    title, component = None, None
    terms: dict[str, list[dict[str, object]]] = {}
    for line in header:
        if title is None:
            match = _MODEL_HEADER.match(line)
            title = match.group("title").strip() if match else None
            continue
        comp = _COMPONENT.match(line)
        if comp:
            component = comp.group("c").lower()
            continue
        term = _TERM.match(line)
        if term is None or component is None:
            continue
        entry: dict[str, object] = {
            "term": " ".join(term.group("term").split()),
            "value": _number(term.group("value")),
            "sigma": _number(term.group("sigma")),
        }
        if term.group("unit"):
            entry["unit"] = term.group("unit")
        rest = term.group("rest").strip()
        phase = _PHASE.search(rest)
        if phase:
            entry["phase"] = _number(phase.group("phase"))
            if phase.group("unit"):
                entry["phase_unit"] = phase.group("unit")
            rest = _PHASE.sub("", rest).strip(" ;")
        if rest:
            entry["detail"] = rest
        terms.setdefault(component, []).append(entry)
    return title, terms


def _dms(text: str, hemisphere: str) -> float:
    degrees, minutes, seconds = (float(v) for v in text.split())
    value = degrees + minutes / 60.0 + seconds / 3600.0
    return -value if hemisphere.upper() in ("S", "W") else value


def parse_sio_neu(
    path: Path,
    *,
    station_id: str | None = None,
    region: str = "",
    source: str = _SIO_SOURCE,
    licence: str = _SIO_LICENCE,
    classification: str = "public",
) -> Parsed:
    """Parse an SIO-style ``.neu`` file (decyear year doy dN dE dU ...) into displacement series in mm."""
    path = Path(path)
    text, _ = read_text(path, encodings=("utf-8", "latin-1"))
    station = None
    lat = lon = None
    days, n, e, u = [], [], [], []
    header: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("#"):
            header.append(line)
            if "4-character ID:" in line:
                station = line.split(":", 1)[1].strip()
            elif "NEU Reference position" in line:
                numbers = re.findall(_NUMBER, line.split(":", 1)[1])
                if len(numbers) >= 2:
                    lat, lon = float(numbers[0]), _longitude(float(numbers[1]))
            elif (dms := _DMS.search(line)) and lat is None:
                lat, lon = _dms(dms.group("lat"), dms.group("ns")), _dms(dms.group("lon"), dms.group("ew"))
            continue
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 6:
            raise fail(
                path,
                f"line {number}: expected 'decyear year doy dN dE dU ...', got {len(fields)} field(s)",
                fix="the file may be truncated; download it again",
            )
        try:
            year, doy = int(fields[1]), int(fields[2])
            values = [float(v) for v in fields[3:6]]
        except ValueError:
            raise fail(
                path,
                f"line {number}: year, day of year and dN dE dU must be numbers, got {fields[:6]}",
                fix="download the file again",
            ) from None
        if not 1 <= doy <= 366:
            raise fail(path, f"line {number}: day of year {doy} is outside 1..366", fix="download the file again")
        days.append(datetime.datetime(year, 1, 1) + datetime.timedelta(days=doy - 1))
        n.append(values[0])
        e.append(values[1])
        u.append(values[2])
    title, terms = _model_terms(header)
    layout = "PBO-style header"
    if station is None and title is not None:
        named = _SOPAC_NAME.match(path.name)
        station = station_id or (named.group("site").lower() if named else None)
        layout = f"SOPAC '{title}' header"
        if station is None:
            raise fail(
                path,
                f"has a SOPAC '# {title}:' header but no station line, and the file name does not start with the "
                "4-character station code (as in bjfsCleanUnf.neu)",
                fix="pass station_id= (e.g. station_id='bjfs'), or keep SOPAC's file name",
            )
    if station is None:
        raise fail(
            path,
            "has neither a '#4-character ID:' header line (PBO-style) nor a '# Refined Model Terms:' block (SOPAC);"
            " this is not an SIO .neu file",
            fix="use an SIO/SOPAC .neu file, or pick the parser for the file's format (--format)",
        )
    if not days:
        raise fail(path, "has a header but no position rows", fix="download a file with data in it")
    frame = pl.DataFrame({"ds": days, "n": n, "e": e, "u": u}).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    before = frame.height
    frame = frame.unique(maintain_order=True)
    notes = [f"columns dN dE dU (metres) of the SIO layout ({layout})"]
    if frame.height < before:
        notes.append(f"dropped {before - frame.height} repeated row(s)")
    attributes: dict[str, dict[str, object]] = {
        component: {"model_terms_header": title, "model_terms": entries} for component, entries in terms.items()
    }
    if attributes:
        notes.append(
            f"model terms of the header kept in the series' attributes ({', '.join(sorted(attributes))} components,"
            f" {sum(len(v) for v in terms.values())} terms, values as written)"
        )
    return _series(
        path,
        frame,
        prefix=station_id or snake(station),
        station=station,
        lat=lat,
        lon=lon,
        region=region,
        source=source,
        licence=licence,
        classification=classification,
        notes=notes,
        attributes=attributes,
    )
