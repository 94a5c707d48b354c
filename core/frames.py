"""The frame contracts every package speaks (polars DataFrames).

- **Series** (long frame): ``unique_id`` (str), ``ds`` (datetime, microseconds, naive UTC),
  ``y`` (float64). Sorted by ``unique_id, ds``; one row per key. Missing values are rows
  that are absent, never NaN.
- **Series metadata**: one row per ``unique_id`` with the columns of ``SERIES_META_COLUMNS``.
  ``lower_bound`` / ``upper_bound`` are the series' physical bounds (float, null =
  unbounded; ``lower_bound < upper_bound`` when both are set): forecasts of a bounded series
  are made on a scale that keeps them inside (:mod:`forecasting.bounds`). ``attributes``
  (text, null = none) is a JSON object of facts about the series that have no column of their
  own, as its source states them (e.g. a GNSS file's fitted rates and seasonal terms).
  ``available_after`` (text, ISO 8601 duration) is how long after its period ends a value is
  published: an as-of replay sees a value only from then on (:mod:`core.availability`).
- **Forecasts**: ``unique_id, ds, model, mean`` plus one column per quantile of
  ``QUANTILES`` named by :func:`quantile_column` (``q05`` ... ``q95``).
- **Scores**: ``unique_id, ds, detector, raw_score, score``. ``raw_score`` is the
  detector's own number (higher = more abnormal, pyod's rule); ``score`` is the calibrated
  value in [0, 1] on one scale shared by every detector.
- **Grades**: ``unique_id, ds, level, score, evidence`` (evidence is a JSON string).
- **Exceedance** (forecasting.exceedance_probabilities, table ``exceedance``): ``unique_id,
  ds`` (horizon step), ``model``, ``threshold`` (spec such as ``p99``), ``threshold_value``,
  ``direction`` (above/below), ``p_step_exceed`` (P(beyond at ds)) and ``p_path_cross``
  (P(beyond at any step up to ds), non-decreasing); stored with the forecast ``cutoff``.

Each library validates its input once, at the entry of its public function, with the
``validate_*`` functions below; errors quote what came against what is required.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import polars as pl

from core.availability import parse_available_after
from core.errors import FrameError
from core.vocabulary import Classification, Domain, Level  # re-exported: defined in core.vocabulary

__all__ = [
    "Domain",
    "Level",
    "Classification",
    "FREQUENCIES",
    "QUANTILES",
    "SERIES_SCHEMA",
    "SERIES_META_COLUMNS",
    "SERIES_BOUND_COLUMNS",
    "SERIES_ATTRIBUTES_COLUMN",
    "SERIES_AVAILABLE_AFTER_COLUMN",
    "SCORE_COLUMNS",
    "empty_scores",
    "quantile_column",
    "forecast_columns",
    "season_length",
    "validate_series",
    "validate_series_meta",
    "validate_forecasts",
    "validate_scores",
    "detached",
]


#: Frequencies a series may declare (pandas offset aliases, which statsforecast
#: uses to lay out future timestamps) and the season length each implies.
FREQUENCIES: dict[str, int] = {
    "h": 24,  # hourly: daily cycle
    "D": 7,  # calendar daily: weekly cycle
    "B": 5,  # business daily (markets): trading week
    "W-FRI": 52,  # weekly, Friday stamps (FRED weekly indexes)
    "W-SUN": 52,
    "MS": 12,  # monthly, stamped on the first day
}

#: Quantile levels every forecast carries.
QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)

SERIES_SCHEMA: dict[str, pl.DataType] = {
    "unique_id": pl.Utf8(),
    "ds": pl.Datetime("us"),
    "y": pl.Float64(),
}

SERIES_META_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "domain",
    "name",
    "variable",
    "unit",
    "frequency",
    "region",
    "lat",
    "lon",
    "source",
    "licence",
    "classification",
    "attributes",
    "available_after",
    "lower_bound",
    "upper_bound",
)

#: The physical-bound columns of the series metadata (float, null = unbounded). A metadata
#: frame may leave them out: :func:`validate_series_meta` then adds them as null.
SERIES_BOUND_COLUMNS: tuple[str, ...] = ("lower_bound", "upper_bound")

#: The free-form metadata column (a JSON object as text, null = none). A metadata frame may
#: leave it out: :func:`validate_series_meta` then adds it as null.
SERIES_ATTRIBUTES_COLUMN = "attributes"

#: When a value becomes known: an ISO 8601 duration after its period ends (``P20D``; null =
#: the default of its variable, :mod:`core.availability`). A metadata frame may leave it out:
#: :func:`validate_series_meta` then adds it as null.
SERIES_AVAILABLE_AFTER_COLUMN = "available_after"

SCORE_COLUMNS: tuple[str, ...] = ("unique_id", "ds", "detector", "raw_score", "score")


def empty_scores() -> pl.DataFrame:
    """A score frame with no rows (the columns of :data:`SCORE_COLUMNS` and their types)."""
    return pl.DataFrame(
        schema={
            "unique_id": pl.Utf8,
            "ds": pl.Datetime("us"),
            "detector": pl.Utf8,
            "raw_score": pl.Float64,
            "score": pl.Float64,
        }
    )


def detached(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with every string owning its own bytes, for a frame held across chunks.

    Polars stores strings as views into shared buffers, and a join, filter or gather copies
    the views, not the bytes: a few rows taken from a large frame keep that frame's whole
    string buffers alive. The cycle's levels step kept one row per series of each chunk's
    grades and so held every chunk's evidence text, about 0.5 MB a series (docs/scaling.md,
    issue 21). This copies the strings out (through Arrow's plain string layout); the values
    and dtypes are unchanged. Use it on small frames only: it copies every string.
    """
    copied = pl.DataFrame(pl.from_arrow(df.to_arrow(compat_level=pl.CompatLevel.oldest())))
    return copied.cast(df.schema)


def quantile_column(q: float) -> str:
    """Column name of quantile ``q``: 0.05 -> ``q05``, 0.5 -> ``q50``."""
    if not 0.0 < q < 1.0:
        raise FrameError(f"quantile {q} is outside (0, 1)", fix="pass a level such as 0.9")
    return f"q{round(q * 100):02d}"


def forecast_columns() -> tuple[str, ...]:
    return ("unique_id", "ds", "model", "mean", *(quantile_column(q) for q in QUANTILES))


def season_length(frequency: str) -> int:
    """Season length implied by a series' declared frequency."""
    try:
        return FREQUENCIES[frequency]
    except KeyError:
        raise FrameError(
            f"unknown frequency {frequency!r}",
            fix=f"declare one of {', '.join(FREQUENCIES)}",
        ) from None


def _require_columns(df: pl.DataFrame, required: Sequence[str], what: str) -> None:
    if not isinstance(df, pl.DataFrame):
        raise FrameError(
            f"{what} must be a polars DataFrame, got {type(df).__name__}",
            fix="convert with polars.from_pandas(...) or polars.DataFrame(...)",
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FrameError(
            f"{what} lacks column(s) {missing}; it has {df.columns}",
            fix=f"rename or add columns so the frame has {list(required)}",
        )


def validate_series(df: pl.DataFrame, *, what: str = "series frame") -> pl.DataFrame:
    """Check the long series contract and return the frame cast and sorted.

    Raises :class:`FrameError` naming the first broken guarantee.
    """
    _require_columns(df, tuple(SERIES_SCHEMA), what)
    try:
        out = df.with_columns(
            pl.col("unique_id").cast(pl.Utf8),
            pl.col("ds").cast(pl.Datetime("us")),
            pl.col("y").cast(pl.Float64),
        )
    except pl.exceptions.PolarsError as exc:
        raise FrameError(
            f"{what} has columns of the wrong type: {dict(df.schema)} ({exc})",
            fix="unique_id must be text, ds a datetime and y a number",
        ) from None
    for col in ("unique_id", "ds", "y"):
        nulls = out.get_column(col).null_count()
        if nulls:
            raise FrameError(
                f"{what} has {nulls} null value(s) in {col!r}",
                fix="drop missing observations instead of keeping them as nulls",
            )
    non_finite = out.filter(~pl.col("y").is_finite()).height
    if non_finite:
        raise FrameError(
            f"{what} has {non_finite} non-finite y value(s) (NaN or inf)",
            fix="drop missing observations; the warehouse keeps only real numbers",
        )
    dupes = out.select(pl.struct("unique_id", "ds").is_duplicated().sum()).item()
    if dupes:
        raise FrameError(
            f"{what} has {dupes} rows sharing a (unique_id, ds) key",
            fix="aggregate or de-duplicate before loading (one value per series and time)",
        )
    return out.sort("unique_id", "ds")


def validate_series_meta(df: pl.DataFrame) -> pl.DataFrame:
    """Check series metadata: known domains, frequencies and classifications, and bounds.

    Absent bound columns are added as null (unbounded); present ones must be numbers or
    null, finite, with ``lower_bound < upper_bound`` where both are set. An absent
    ``attributes`` column is added as null; present values must be JSON objects or null.
    An absent ``available_after`` is added as null (the default of the series' variable);
    present values must be ISO 8601 durations (:func:`core.availability.parse_available_after`).
    """
    if isinstance(df, pl.DataFrame):
        df = df.with_columns(pl.lit(None, pl.Float64).alias(c) for c in SERIES_BOUND_COLUMNS if c not in df.columns)
        for column in (SERIES_ATTRIBUTES_COLUMN, SERIES_AVAILABLE_AFTER_COLUMN):
            if column not in df.columns:
                df = df.with_columns(pl.lit(None, pl.Utf8).alias(column))
    _require_columns(df, SERIES_META_COLUMNS, "series metadata")
    df = _checked_bounds(df)
    _check_attributes(df)
    for uid, lag in df.select("unique_id", SERIES_AVAILABLE_AFTER_COLUMN).iter_rows():
        if lag is not None:
            parse_available_after(lag, what=f"series {uid!r} available_after")
    domains = {d.value for d in Domain}
    bad = sorted(set(df.get_column("domain").to_list()) - domains)
    if bad:
        raise FrameError(
            f"series metadata names unknown domain(s) {bad}",
            fix=f"use one of {sorted(domains)}",
        )
    bad = sorted(set(df.get_column("frequency").to_list()) - set(FREQUENCIES))
    if bad:
        raise FrameError(
            f"series metadata names unknown frequency(ies) {bad}",
            fix=f"use one of {list(FREQUENCIES)}",
        )
    for text in set(df.get_column("classification").to_list()):
        Classification.parse(text)
    if df.get_column("unique_id").is_duplicated().any():
        raise FrameError(
            "series metadata lists a unique_id more than once",
            fix="give each series one metadata row",
        )
    return df.select(SERIES_META_COLUMNS)


def _check_attributes(df: pl.DataFrame) -> None:
    """Each ``attributes`` value is null or the text of a JSON object."""
    for uid, text in df.select("unique_id", SERIES_ATTRIBUTES_COLUMN).iter_rows():
        if text is None:
            continue
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise FrameError(
                f"series {uid!r} has attributes {str(text)[:60]!r}, not a JSON object",
                fix="give attributes as JSON object text, e.g. '{\"slope_mm_per_yr\": 3.1}', or null",
            )


def _checked_bounds(df: pl.DataFrame) -> pl.DataFrame:
    """The metadata with its bound columns cast to float; raises naming the first bad row."""
    try:
        out = df.with_columns(pl.col(c).cast(pl.Float64) for c in SERIES_BOUND_COLUMNS)
    except pl.exceptions.PolarsError:
        raise FrameError(
            f"series metadata has non-numeric bounds: {dict(df.select(SERIES_BOUND_COLUMNS).schema)}",
            fix="give lower_bound / upper_bound as numbers, or null for no bound",
        ) from None
    for col in SERIES_BOUND_COLUMNS:
        bad = out.filter(pl.col(col).is_not_null() & ~pl.col(col).is_finite())
        if bad.height:
            raise FrameError(
                f"series {bad.item(0, 'unique_id')!r} has {col} = {bad.item(0, col)}",
                fix="give a finite number, or null for no bound",
            )
    crossed = out.filter(pl.col("lower_bound") >= pl.col("upper_bound"))
    if crossed.height:
        row = crossed.row(0, named=True)
        raise FrameError(
            f"series {row['unique_id']!r} has lower_bound {row['lower_bound']:g} >= upper_bound {row['upper_bound']:g}",
            fix="the lower bound must be below the upper bound (or leave one of them null)",
        )
    return out


def validate_forecasts(df: pl.DataFrame) -> pl.DataFrame:
    _require_columns(df, forecast_columns(), "forecast frame")
    return df.select(forecast_columns())


def validate_scores(df: pl.DataFrame) -> pl.DataFrame:
    _require_columns(df, SCORE_COLUMNS, "score frame")
    out = df.select(SCORE_COLUMNS)
    outside = out.filter((pl.col("score") < 0) | (pl.col("score") > 1)).height
    if outside:
        raise FrameError(
            f"score frame has {outside} calibrated score(s) outside [0, 1]",
            fix="calibrate raw scores (anomaly.calibrate) before handing them on",
        )
    return out
