"""Shared plumbing of the source parsers: the ``Parsed`` result, strict column casts that
name the offending line, metadata rows; regions (boxes and polygons) live in
:mod:`ingest.sources._regions` and are re-exported here.

Every helper raises :class:`core.errors.DataFormatError` (the file is wrong) or
:class:`core.errors.ConfigError` (an option is wrong); none of them returns a partial frame.
"""

from __future__ import annotations

import datetime
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from core.availability import DEFAULT_AVAILABLE_AFTER, default_available_after, parse_available_after
from core.errors import ConfigError, DataFormatError, FrameError
from core.frames import (
    FREQUENCIES,
    SERIES_BOUND_COLUMNS,
    SERIES_META_COLUMNS,
    Classification,
    Domain,
    validate_series,
    validate_series_meta,
)
from ingest.sources._regions import (
    Region,
    assign_regions,
    extent_region,
    in_region,
    parse_regions,
    points_in_polygon,
    region_contains,
    region_toml,
)

__all__ = [
    "Parsed",
    "Region",
    "EVENT_SCHEMA",
    "fail",
    "read_text",
    "read_delimited",
    "require_columns",
    "to_float",
    "to_datetime",
    "meta_row",
    "DEFAULT_BOUNDS",
    "apply_bounds",
    "DEFAULT_AVAILABLE_AFTER",
    "apply_available_after",
    "finish",
    "check_frequency",
    "parse_regions",
    "in_region",
    "snake",
    "points_in_polygon",
    "region_contains",
    "extent_region",
    "region_toml",
    "assign_regions",
    "with_exact_duplicates_dropped",
    "calendar_span_days",
]

#: Columns and types of the ``events`` frame that earthquake catalogs return.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.Utf8(),
    "time": pl.Datetime("us"),
    "lat": pl.Float64(),
    "lon": pl.Float64(),
    "depth_km": pl.Float64(),
    "magnitude": pl.Float64(),
    "source": pl.Utf8(),
}

_META_SCHEMA: dict[str, pl.DataType] = {
    col: (pl.Float64() if col in ("lat", "lon", *SERIES_BOUND_COLUMNS) else pl.Utf8()) for col in SERIES_META_COLUMNS
}

#: Physical bounds (lower, upper; None = unbounded) a series gets by default from its
#: ``variable``, in the unit the parsers store. Variables not listed are unbounded:
#: interest rates and spreads (they can go negative), sea level on a datum, GNSS
#: displacement, magnitudes and log10 energy (kept as they are), temperatures, closes (a
#: futures price can go negative). A file's ``bounds`` option overrides these
#: (:func:`apply_bounds`, docs/ingestion.md).
DEFAULT_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "discharge": (0.0, None),  # m3/s: a river does not flow backwards past the gauge's floor
    "event_count": (0.0, None),  # earthquakes per day
    "sea_ice_extent": (0.0, None),  # 10^6 km2
    "prectotcorr": (0.0, None),  # NASA POWER precipitation, mm/day
    "precipitation": (0.0, None),
    "unemployment_rate": (0.0, 100.0),  # percent of the labour force
    "consumer_price_index": (0.0, None),  # an index of prices
    "exchange_rate": (0.0, None),  # a price ratio
}

_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@dataclass(frozen=True)
class Parsed:
    """What a parser hands back: validated series, their metadata, and (catalogs only) events."""

    series: pl.DataFrame
    meta: pl.DataFrame
    events: pl.DataFrame | None = None
    notes: tuple[str, ...] = ()


def fail(path: Path, problem: str, *, fix: str) -> DataFormatError:
    """Build the error every parser raises: the file's name first, then what is wrong."""
    return DataFormatError(f"{path.name}: {problem}", fix=fix)


def snake(text: str) -> str:
    """Lowercase snake_case form of ``text`` (for default unique_ids)."""
    out = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return out if out and out[0].isalpha() else f"s_{out}"


def read_text(path: Path, *, encodings: Sequence[str] = ("utf-8",)) -> tuple[str, str]:
    """Read a whole text file, trying ``encodings`` in order; returns (text, encoding used).

    Line endings are normalised to ``\\n`` so CRLF files parse like LF ones.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            f"{path}: no such file",
            fix="check the path (bundled files live under data/, see bundled_catalogue)",
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise fail(path, "the file is empty", fix="download the file again; it should hold a header and data rows")
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff"), encoding
    raise fail(
        path,
        f"cannot be decoded as {' or '.join(encodings)}",
        fix="re-export the file as UTF-8 or pass encoding=... with the file's encoding",
    )


def read_delimited(path: Path, text: str, *, separator: str = ",", what: str = "CSV") -> pl.DataFrame:
    """Parse delimited text into an all-text frame (casts happen later, with line numbers)."""
    try:
        df = pl.read_csv(
            io.StringIO(text),
            separator=separator,
            infer_schema=False,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(
            path,
            f"is not a well-formed {what} ({first})",
            fix=f"every row must have as many {separator!r}-separated fields as the header",
        ) from None
    if df.height == 0:
        raise fail(path, "has a header but no data rows", fix="download the file again with data in it")
    return df.rename({c: c.strip() for c in df.columns}).with_columns(pl.all().str.strip_chars())


def require_columns(path: Path, df: pl.DataFrame, required: Iterable[str]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise fail(
            path,
            f"lacks column(s) {missing} in its header; it has {df.columns}",
            fix=f"use a file whose header names {list(required)}",
        )


def _first_bad(path: Path, raw: pl.Series, bad: pl.Series, lines: pl.Series, *, column: str, expected: str) -> None:
    """Raise naming the file line of the first row where ``bad`` is true."""
    if not bad.any():
        return
    idx = int(bad.arg_true()[0])
    raise fail(
        path,
        f"line {lines[idx]}, column {column!r}: expected {expected}, got {raw[idx]!r}"
        f" ({int(bad.sum())} such value(s) in the file)",
        fix=f"correct the value(s) in column {column!r} (or blank them out where the format allows missing values)",
    )


def to_float(path: Path, raw: pl.Series, lines: pl.Series, *, column: str) -> pl.Series:
    """Cast text to finite float64; anything else (text, blank, NaN, inf) raises with its line.

    ``lines`` holds each row's 1-based line number in the file, so errors point at the right
    line even after rows were filtered out.
    """
    values = raw.cast(pl.Float64, strict=False)
    bad = (values.is_null() | ~values.is_finite()).fill_null(True)
    _first_bad(path, raw, bad, lines, column=column, expected="a finite number")
    return values


def to_datetime(path: Path, raw: pl.Series, fmt: str, lines: pl.Series, *, column: str, example: str) -> pl.Series:
    """Parse text with a strftime ``fmt`` to Datetime(us); unparsable values raise with their line."""
    values = raw.str.to_datetime(fmt, strict=False, time_unit="us")
    bad = values.is_null().fill_null(True)
    _first_bad(path, raw, bad, lines, column=column, expected=f"a date/time like {example!r}")
    return values


def check_frequency(path: Path, ds: pl.Series, frequency: str, *, what: str) -> None:
    """Refuse timestamps that contradict the declared frequency (a wrong option or a wrong file)."""
    if frequency not in FREQUENCIES:
        raise ConfigError(
            f"{path.name}: unknown frequency {frequency!r} for {what}",
            fix=f"declare one of {', '.join(FREQUENCIES)}",
        )
    midnight = datetime.time(0)
    if frequency == "MS":
        bad = (ds.dt.day() != 1) | (ds.dt.time() != midnight)
    elif frequency == "B":
        bad = ds.dt.weekday() > 5
    elif frequency == "W-FRI":
        bad = ds.dt.weekday() != 5
    elif frequency == "W-SUN":
        bad = ds.dt.weekday() != 7
    elif frequency == "D":
        bad = ds.dt.time() != midnight
    else:
        return
    if bad.any():
        first = ds.filter(bad)[0]
        raise fail(
            path,
            f"{what} is declared {frequency!r} but has {int(bad.sum())} timestamp(s) that do not fit, first {first}",
            fix="pass the frequency that matches the file (B, W-FRI, MS, D ...)",
        )


def meta_row(
    *,
    unique_id: str,
    domain: str,
    name: str,
    variable: str,
    unit: str,
    frequency: str,
    region: str,
    lat: float | None,
    lon: float | None,
    source: str,
    licence: str,
    classification: str = "public",
    bounds: tuple[float | None, float | None] | None = None,
    attributes: Mapping[str, object] | None = None,
    available_after: str | None = None,
) -> dict[str, object]:
    """One metadata row; options are checked here so every parser rejects them the same way.

    ``bounds`` (lower, upper) defaults to :data:`DEFAULT_BOUNDS` of the ``variable``;
    ``available_after`` (how long after its period a value is published, ISO 8601) to
    :data:`DEFAULT_AVAILABLE_AFTER` of the ``variable`` (:func:`core.availability.default_available_after`).
    ``attributes`` (facts the source states that have no column of their own) is stored as
    JSON object text with sorted keys, or null when None or empty.
    """
    if not _SNAKE.match(unique_id):
        raise ConfigError(
            f"unique_id {unique_id!r} is not lowercase snake_case",
            fix="use letters, digits and single underscores, starting with a letter (e.g. 'dgs10')",
        )
    if domain not in {d.value for d in Domain}:
        raise ConfigError(f"unknown domain {domain!r} for {unique_id}", fix=f"use one of {[d.value for d in Domain]}")
    if frequency not in FREQUENCIES:
        raise ConfigError(f"unknown frequency {frequency!r} for {unique_id}", fix=f"use one of {list(FREQUENCIES)}")
    try:
        Classification.parse(classification)
    except FrameError as exc:
        raise ConfigError(exc.problem, fix=exc.fix) from None
    return {
        "unique_id": unique_id,
        "domain": domain,
        "name": name,
        "variable": variable,
        "unit": unit,
        "frequency": frequency,
        "region": region,
        "lat": None if lat is None else float(lat),
        "lon": None if lon is None else float(lon),
        "source": source,
        "licence": licence,
        "classification": classification.lower(),
        "attributes": json.dumps(dict(attributes), sort_keys=True, ensure_ascii=False) if attributes else None,
        **_bounds_row(unique_id, DEFAULT_BOUNDS.get(variable, (None, None)) if bounds is None else bounds),
        "available_after": _available_after(
            unique_id, default_available_after(variable) if available_after is None else available_after
        ),
    }


def _available_after(unique_id: str, text: object) -> str:
    """``text`` as a checked ISO 8601 duration in upper case; ConfigError naming the option."""
    try:
        parse_available_after(text, what=f"available_after of {unique_id}")
    except FrameError as exc:
        raise ConfigError(
            exc.problem, fix=f'{exc.fix}; e.g. available_after="P20D" or {{"{unique_id}": "P20D"}}'
        ) from None
    return str(text).strip().upper()


def apply_available_after(meta: pl.DataFrame, option: object, *, what: str) -> pl.DataFrame:
    """The metadata with a file's ``available_after`` option applied: one duration for every
    series (``"P20D"``), or ``{unique_id: "P20D"}`` (``"*"`` for the rest of the file). Ids the
    file does not yield are refused, like :func:`apply_bounds`."""
    if option is None:
        return meta
    ids = meta.get_column("unique_id").to_list()
    spec: Mapping[str, object] = {"*": option} if isinstance(option, str) else option  # type: ignore[assignment]
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{what}: available_after={option!r} is neither a duration nor a table of series ids",
            fix='write available_after="P20D", or {"<unique_id>": "P20D", "*": "P0D"}',
        )
    unknown = sorted(set(spec) - set(ids) - {"*"})
    if unknown:
        raise ConfigError(
            f"{what}: available_after names series {unknown} that the file does not yield",
            fix=f'name some of {ids}, or "*" for every series of the file',
        )
    chosen = {
        uid: _available_after(uid, spec[uid] if uid in spec else spec["*"]) for uid in ids if uid in spec or "*" in spec
    }
    if not chosen:
        return meta
    return meta.with_columns(
        pl.col("unique_id")
        .replace_strict(chosen, default=pl.col("available_after"), return_dtype=pl.Utf8)
        .alias("available_after")
    )


def _bounds_row(unique_id: str, bounds: object) -> dict[str, float | None]:
    """``{lower_bound, upper_bound}`` from (lower, upper) or {lower, upper}; None = unbounded."""
    example = f"bounds={{'{unique_id}': [0, null]}} (JSON) or {{ {unique_id} = {{ lower = 0 }} }} (TOML)"
    if isinstance(bounds, Mapping):
        extra = sorted(set(bounds) - {"lower", "upper"})
        if extra:
            raise ConfigError(
                f"bounds of {unique_id} have unknown key(s) {extra}", fix=f"use lower / upper, e.g. {example}"
            )
        pair: Sequence[object] = (bounds.get("lower"), bounds.get("upper"))
    elif isinstance(bounds, Sequence) and not isinstance(bounds, str) and len(bounds) == 2:
        pair = bounds
    else:
        raise ConfigError(f"bounds of {unique_id} are {bounds!r}, not a [lower, upper] pair", fix=f"write {example}")
    out: dict[str, float | None] = {}
    for col, value in zip(SERIES_BOUND_COLUMNS, pair, strict=True):
        if value is None:
            out[col] = None
            continue
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not np.isfinite(number):
            raise ConfigError(f"{col} of {unique_id} is {value!r}, not a finite number", fix=f"write {example}")
        out[col] = number
    low, high = out["lower_bound"], out["upper_bound"]
    if low is not None and high is not None and low >= high:
        raise ConfigError(
            f"bounds of {unique_id}: lower {low:g} is not below upper {high:g}",
            fix="give the lower bound first and make it smaller than the upper one",
        )
    return out


def apply_bounds(meta: pl.DataFrame, bounds: Mapping[str, object] | None, *, what: str) -> pl.DataFrame:
    """The metadata with the ``bounds`` option of a file applied: ``{unique_id: [lower, upper]}``
    (or ``{lower, upper}`` tables; None / a missing key = unbounded), ``"*"`` for every series
    of the file. Ids the file does not yield are refused (a typo would otherwise pass silently).
    """
    if bounds is None:
        return meta
    if not isinstance(bounds, Mapping):
        raise ConfigError(
            f"{what}: bounds={bounds!r} is not a table of series ids",
            fix='write bounds={"<unique_id>": [lower, upper]} (null for no bound), or "*" for every series',
        )
    ids = meta.get_column("unique_id").to_list()
    unknown = sorted(set(bounds) - set(ids) - {"*"})
    if unknown:
        raise ConfigError(
            f"{what}: bounds name series {unknown} that the file does not yield",
            fix=f'name some of {ids}, or "*" for every series of the file',
        )
    rows = []
    for uid in ids:
        if uid not in bounds and "*" not in bounds:
            continue  # keeps its parser's default
        spec = bounds[uid] if uid in bounds else bounds["*"]
        rows.append({"unique_id": uid, **_bounds_row(uid, (None, None) if spec is None else spec)})
    chosen = pl.DataFrame(rows, schema={"unique_id": pl.Utf8, "lower_bound": pl.Float64, "upper_bound": pl.Float64})
    if chosen.height == 0:
        return meta
    kept = meta.filter(~pl.col("unique_id").is_in(chosen.get_column("unique_id").implode()))
    updated = meta.drop(SERIES_BOUND_COLUMNS).join(chosen, on="unique_id", how="inner").select(meta.columns)
    return pl.concat([kept, updated]).sort("unique_id")


def finish(
    path: Path,
    series: pl.DataFrame | Sequence[pl.DataFrame],
    meta: Sequence[Mapping[str, object]],
    *,
    notes: Sequence[str] = (),
    events: pl.DataFrame | None = None,
) -> Parsed:
    """Validate series and metadata against the core contracts and package the result.

    A contract breach here means the file itself is inconsistent (say, a date listed twice), so
    it is reported as a :class:`DataFormatError` naming the file.
    """
    frames = [series] if isinstance(series, pl.DataFrame) else list(series)
    frames = [
        f.select(pl.col("unique_id").cast(pl.Utf8), pl.col("ds").cast(pl.Datetime("us")), pl.col("y").cast(pl.Float64))
        for f in frames
    ]
    combined = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "y": pl.Float64})
    )
    combined, exact = with_exact_duplicates_dropped(combined)
    if exact:
        notes = [*notes, f"dropped {exact} exact duplicate row(s) (same series, time and value)"]
    if combined.height == 0:
        raise fail(
            path,
            "yields no observations (every value is missing or filtered out)",
            fix="check the file and the options (country, regions ...)",
        )
    dupes = combined.group_by("unique_id", "ds").len().filter(pl.col("len") > 1).sort("unique_id", "ds")
    if dupes.height:
        uid, ds, n = dupes.row(0)
        raise fail(
            path,
            f"series {uid!r} has {n} values at {ds} ({dupes.height} repeated timestamp(s) in all)",
            fix="remove the repeated rows; a series holds one value per timestamp",
        )
    try:
        valid = validate_series(combined, what=f"series parsed from {path.name}")
        meta_frame = validate_series_meta(pl.DataFrame(list(meta), schema=_META_SCHEMA))
    except FrameError as exc:
        raise fail(path, exc.problem, fix=exc.fix or "fix the file") from None
    ids_series = set(valid.get_column("unique_id").unique().to_list())
    ids_meta = set(meta_frame.get_column("unique_id").to_list())
    if ids_series != ids_meta:
        # A parser bug, not a user error: say so plainly.
        raise RuntimeError(f"{path.name}: series ids {sorted(ids_series)} differ from metadata ids {sorted(ids_meta)}")
    if events is not None:
        events = events.select([pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()]).sort("time")
    return Parsed(series=valid, meta=meta_frame.sort("unique_id"), events=events, notes=tuple(notes))


def with_exact_duplicates_dropped(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop rows repeated with the same (unique_id, ds, y); conflicting values stay for the caller to refuse."""
    unique = frame.unique(subset=["unique_id", "ds", "y"], keep="first", maintain_order=True)
    return unique, frame.height - unique.height


def calendar_span_days(ds: pl.Series) -> int:
    """Calendar days from the first to the last timestamp, both ends counted."""
    first, last = ds.min(), ds.max()
    if not isinstance(first, datetime.date) or not isinstance(last, datetime.date):
        # The same TypeError the bare subtraction raised on an empty column (min and max None).
        raise TypeError(f"unsupported operand type(s) for -: {type(last).__name__!r} and {type(first).__name__!r}")
    return (last - first).days + 1
