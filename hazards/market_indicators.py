"""Market stress indicators on one weekly grid, each as it was known on the grid's date.

An :class:`IndicatorSpec` names a stored series, a transform and the market segment it
belongs to (the CISS segments: equity, bonds, fx, credit, money). :func:`build_indicators`
turns a long frame (``unique_id, ds, y``) into the wide frame :func:`stress_composite` and
:func:`klr_fit` read: ``ds`` (Fridays) plus one column per indicator, *higher = more stress*.

Transforms, computed on the series' own frequency before it meets the grid:

- ``level``: the value itself (a spread, a volatility index);
- ``inverted``: minus the value (a term spread: stress when the curve inverts);
- ``volatility``: standard deviation of the last ``window`` changes (``log`` changes of a
  price or exchange rate, plain differences of a yield or spread);
- ``drawdown``: ``1 - y / max(y over the last window observations)`` (CISS's CMAX, 0 at a
  new high, 0.3 = 30 % below the window's peak).

**What was known when.** A value stamped ``ds`` is usable from the moment it was published:
the end of its period plus the series' ``available_after`` (the engine's one rule,
:func:`core.availability.known_at`: a daily close at the end of its day, a monthly mean
after its month ends and its publisher's lag, e.g. 3 days for the Fed's monthly exchange
rates). :func:`build_indicators` joins every indicator *as of* the grid date on that time,
so a grid value never uses data published after its date (the no-look-ahead test in
``tests/test_hazards_market_signals.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from core.availability import known_at
from core.errors import FrameError
from core.vocabulary import MARKET_TRANSFORMS

__all__ = ["IndicatorSpec", "TRANSFORMS", "build_indicators", "market_composite"]

TRANSFORMS = MARKET_TRANSFORMS  # defined once in core.vocabulary: [markets] indicators are checked against it
#: A value older than this at a grid date is stale: the grid holds null there (a series that
#: stopped does not freeze its last value into the composite). Covers a monthly value, which
#: is known a month after its stamp and replaced a month later.
STALE_AFTER = timedelta(days=93)


@dataclass(frozen=True)
class IndicatorSpec:
    """One composite input: ``name`` (its column), the stored ``unique_id``, ``transform``
    (one of :data:`TRANSFORMS`), ``segment``, ``window`` (observations, for volatility and
    drawdown) and ``log`` (volatility of log changes, for prices and exchange rates)."""

    name: str
    unique_id: str
    transform: str
    segment: str
    window: int = 0
    log: bool = False

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise FrameError(
                f"indicator {self.name!r}: transform {self.transform!r} is unknown",
                fix=f"use one of {', '.join(TRANSFORMS)}",
            )
        if self.transform in ("volatility", "drawdown") and self.window < 2:
            raise FrameError(
                f"indicator {self.name!r}: {self.transform} needs window >= 2 observations, got {self.window}",
                fix="e.g. window = 20 for a daily yield's volatility, 24 for a monthly index's drawdown",
            )


def _transform(values: np.ndarray, spec: IndicatorSpec) -> np.ndarray:
    y = values.astype(np.float64)
    if spec.transform == "level":
        return y
    if spec.transform == "inverted":
        return -y
    if spec.transform == "drawdown":
        if np.any(y <= 0):
            raise FrameError(
                f"indicator {spec.name!r}: drawdown needs positive prices, {spec.unique_id} has values <= 0",
                fix="use a price or index level series, not returns or spreads",
            )
        peak = pl.Series(y).rolling_max(spec.window, min_samples=1).to_numpy()
        return 1.0 - y / peak
    if spec.log and np.any(y <= 0):
        raise FrameError(
            f"indicator {spec.name!r}: log changes need positive values, {spec.unique_id} has values <= 0",
            fix="set log = false for a yield or spread",
        )
    change = np.diff(np.log(y) if spec.log else y, prepend=np.nan)
    return pl.Series(change).rolling_std(spec.window, min_samples=max(2, spec.window // 2)).to_numpy()


def build_indicators(
    series: pl.DataFrame,
    specs: Sequence[IndicatorSpec],
    *,
    frequencies: dict[str, str],
    available_after: Mapping[str, str | None] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Wide weekly (Friday) frame ``ds`` + one column per spec, each value as known at ``ds``.

    ``series``: long frame ``unique_id, ds, y`` holding every spec's series (nulls dropped);
    ``frequencies``: each series' frequency (``MS``, ``B``, ``W-FRI``, ...) and
    ``available_after``: its publication lag (the series metadata's column; missing = known
    when its period ends), for :func:`core.availability.known_at`. The grid runs from the
    first Friday at which every indicator has a value (or ``start``) to the last Friday on or
    before the newest value (or ``end``).
    """
    if not specs:
        raise FrameError("no indicators to build", fix="list at least one indicator in [markets] indicators")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise FrameError(f"indicator names repeat: {names}", fix="give every indicator its own name")
    have = set(series.get_column("unique_id").unique().to_list()) if series.height else set()
    missing = sorted({s.unique_id for s in specs} - have)
    if missing:
        raise FrameError(
            f"the market composite needs series {missing}, which are not stored",
            fix="ingest them first (ews ingest), or drop them from [markets] indicators",
        )
    columns: list[pl.DataFrame] = []
    for spec in specs:
        own = series.filter((pl.col("unique_id") == spec.unique_id) & pl.col("y").is_not_null()).sort("ds")
        values = _transform(own.get_column("y").to_numpy(), spec)
        col = (
            own.select(
                known_at(
                    pl.col("ds"),
                    frequencies.get(spec.unique_id, ""),
                    (available_after or {}).get(spec.unique_id) or "P0D",
                ).alias("known")
            )
            .with_columns(pl.Series(spec.name, values))
            .filter(pl.col(spec.name).is_not_nan() & pl.col(spec.name).is_not_null())
            .group_by("known", maintain_order=True)
            .last()
            .sort("known")
        )
        if col.height == 0:
            raise FrameError(
                f"indicator {spec.name!r}: {spec.unique_id} has {own.height} value(s), too few for its "
                f"{spec.transform} over a window of {spec.window}",
                fix=f"ingest a longer history of {spec.unique_id}, or shorten window / drop {spec.name!r} "
                "in [markets] indicators",
            )
        columns.append(col)
    # The grid starts when every segment has one indicator (a segment's mean skips the others).
    starts: dict[str, datetime] = {}
    last: datetime = datetime.min
    for spec, col in zip(specs, columns, strict=True):
        known = col.get_column("known").to_list()
        starts[spec.segment] = min(starts.get(spec.segment, known[0]), known[0])
        last = max(last, known[-1])
    first = max(starts.values())
    first = max(first, start) if start else first
    last = min(last, end) if end else last
    # Fridays from the first one on or after `first`.
    offset = (4 - first.weekday()) % 7
    friday = datetime(first.year, first.month, first.day) + timedelta(days=offset)
    if friday > last:
        raise FrameError(
            f"the indicators overlap for less than a week ({first:%Y-%m-%d} .. {last:%Y-%m-%d})",
            fix="ingest longer histories, or drop the shortest series from [markets] indicators",
        )
    grid = pl.DataFrame({"ds": pl.datetime_range(friday, last, interval="7d", time_unit="us", eager=True)})
    # A value known by the end of Friday counts for that Friday (a close is known at the end of
    # its day, the instant Saturday starts: known_at's rule, which a replay's reads share), or
    # by ``end`` when it falls inside that Friday: an as-of cycle sees nothing published later.
    until = pl.col("ds") + timedelta(days=1)
    if end is not None:
        until = pl.min_horizontal(until, pl.lit(end).cast(pl.Datetime("us")))
    frame = grid.with_columns(until.alias("until"))
    for col in columns:
        frame = frame.join_asof(
            col.with_columns(pl.col("known").cast(pl.Datetime("us"))),
            left_on="until",
            right_on="known",
            strategy="backward",
            tolerance=STALE_AFTER,
        ).drop("known")
    return frame.drop("until")


def market_composite(
    series: pl.DataFrame,
    specs: Sequence[IndicatorSpec],
    *,
    frequencies: dict[str, str],
    available_after: Mapping[str, str | None] | None = None,
    lam: float = 0.93,
    warmup: int = 52,
    end: datetime | None = None,
) -> pl.DataFrame:
    """The weekly composite and everything under it, one row per Friday with a composite.

    Columns: ``ds``; one per indicator (its transformed value as known then) and its
    ``rank_<indicator>`` (the causal rank among its own values up to the row, in ``(0, 1]``:
    what the composite aggregates and what KLR thresholds are set on); one per
    segment (its sub-index, the mean causal rank of its indicators); ``contribution_<segment>``
    (its share of the composite); ``avg_correlation``; ``composite`` (in ``[0, 1]``).
    :func:`build_indicators` then :func:`hazards.market_stress.stress_composite`."""
    from hazards.market_stress import causal_ecdf, stress_composite

    indicators = build_indicators(series, specs, frequencies=frequencies, available_after=available_after, end=end)
    segments: dict[str, list[str]] = {}
    for spec in specs:
        segments.setdefault(spec.segment, []).append(spec.name)
    if set(segments) & {s.name for s in specs}:
        raise FrameError(
            f"segment names {sorted(set(segments) & {s.name for s in specs})} repeat indicator names",
            fix="give segments and indicators different names",
        )
    composite = stress_composite(indicators, segments=segments, lam=lam, warmup=warmup)
    ranks = indicators.select(
        "ds",
        *[
            pl.Series(
                f"rank_{s.name}", causal_ecdf(indicators.get_column(s.name).cast(pl.Float64).to_numpy())
            ).fill_nan(None)
            for s in specs
        ],
    )
    return indicators.join(ranks, on="ds").join(composite, on="ds", how="inner").drop_nulls("composite")
