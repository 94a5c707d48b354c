"""Skill of flood-threshold forecasts on a gauge's own record: events, hits, false alarms, Brier.

Pure functions over one daily flow series (the series contract, one ``unique_id``) and the
forecasts issued for it; no files, no clock. ``benchmarks/flood_skill.py`` runs them on the
bundled Choptank record with thresholds fitted on one half and scored on the other.

Definitions (written down before scoring):

- **Outcome** of an issue date ``t``: the flow goes above the threshold on at least one of
  the days ``t + 1 .. t + window_days`` (:func:`exceedance_outcomes`; dates whose window
  is not fully observed have no outcome). The **base rate** (:func:`exceedance_base_rate`)
  is the share of issue dates with that outcome: the climatological forecast, fitted on
  training years only.
- **Event**: the annual peak of a complete water year when it is above the threshold
  (:func:`flood_events`, water years and coverage as in :func:`hazards.annual_maxima`). Its
  **onset** is the first day of the run of consecutive days above the threshold that holds
  the peak: a warning must come before the river is already in flood.
- **Warning**: an issue date whose probability is at least ``p_warn``; an **alarm** is a
  run of warnings on consecutive issue dates.
- **Hit**: an event with a warning issued ``1 .. window_days`` days before its onset; its
  lead time is the onset minus the earliest such warning (``lead_to_peak`` counts to the
  peak). **Miss**: an event without. **False alarm**: an alarm after which the flow stays
  below the threshold on every day from its first issue date + 1 to its last + ``window_days``.
  Flows above the threshold that are not an annual peak (a second flood in a year) are
  neither events nor false alarms.
- POD = hits / events, FAR = false alarms / alarms, CSI = hits / (hits + misses + false
  alarms), as :func:`anomaly.event_skill` counts them; the daily table counts issue dates
  (warned x outcome).
- **Brier score** ``mean((p - o)^2)`` over issue dates with an outcome, against the
  climatological forecast ``p = base rate``; Brier skill score ``1 - BS / BS_clim``
  (positive = better than climatology).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from core.errors import FrameError
from core.frames import validate_series
from core.skill import brier_score
from hazards.floods import annual_maxima

__all__ = [
    "FloodSkill",
    "exceedance_outcomes",
    "exceedance_base_rate",
    "flood_events",
    "flood_warning_skill",
]


@dataclass(frozen=True)
class FloodSkill:
    """Skill of one series' threshold forecasts (definitions in the module docstring)."""

    threshold_value: float
    window_days: int
    p_warn: float
    forecasts: int
    events: int
    hits: int
    misses: int
    alarms: int
    false_alarms: int
    pod: float
    far: float
    csi: float
    lead_times_days: tuple[float, ...]
    median_lead_days: float | None
    event_peaks: tuple[str, ...]
    event_hit: tuple[bool, ...]
    daily_hits: int
    daily_misses: int
    daily_false_alarms: int
    daily_correct_negatives: int
    base_rate: float
    observed_rate: float
    brier: float
    brier_climatology: float
    brier_skill_score: float

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _one_series(series: pl.DataFrame) -> tuple[str, np.ndarray, np.ndarray]:
    """``(unique_id, days, y)`` on a complete daily grid (NaN where a day has no observation)."""
    frame = validate_series(series)
    ids = frame.get_column("unique_id").unique().to_list()
    if len(ids) != 1:
        raise FrameError(
            f"flood skill works on one series at a time, got {len(ids)}: {ids[:5]}",
            fix="filter the frame to one unique_id",
        )
    daily = frame.group_by(pl.col("ds").dt.date().alias("day")).agg(pl.col("y").max()).sort("day")
    days = daily.get_column("day").to_numpy().astype("datetime64[D]")
    grid = np.arange(days[0], days[-1] + np.timedelta64(1, "D"), dtype="datetime64[D]")
    y = np.full(len(grid), np.nan)
    y[(days - grid[0]).astype(np.int64)] = daily.get_column("y").to_numpy()
    return ids[0], grid, y


def _check(threshold_value: float, window_days: int) -> None:
    if not np.isfinite(threshold_value):
        raise FrameError(
            f"threshold_value={threshold_value!r} is not a number",
            fix="pass the flood threshold in the series' unit, e.g. the 2-year level",
        )
    if not isinstance(window_days, int) or window_days < 1:
        raise FrameError(f"window_days={window_days!r}, needs an integer >= 1", fix="pass e.g. window_days=3")


def exceedance_outcomes(series: pl.DataFrame, *, threshold_value: float, window_days: int = 3) -> pl.DataFrame:
    """Per day ``t``: did the flow go above ``threshold_value`` on a day of ``t+1 .. t+window_days``?

    Returns ``unique_id, ds, observed`` (bool) for the days whose window is fully observed.
    """
    _check(threshold_value, window_days)
    uid, grid, y = _one_series(series)
    if len(grid) <= window_days:
        return pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "observed": pl.Boolean})
    ahead = np.lib.stride_tricks.sliding_window_view(y[1:], window_days)  # row i: days i+1 .. i+w
    known = np.isfinite(ahead).all(axis=1)
    observed = np.asarray((np.where(np.isfinite(ahead), ahead, -np.inf) > threshold_value).any(axis=1), dtype=bool)
    ds = grid[: len(ahead)][known].astype("datetime64[us]")
    return pl.DataFrame({"unique_id": uid, "ds": ds, "observed": observed[known]})


def exceedance_base_rate(series: pl.DataFrame, *, threshold_value: float, window_days: int = 3) -> float:
    """Climatological probability of an outcome (share of days with one); fit it on training years."""
    outcomes = exceedance_outcomes(series, threshold_value=threshold_value, window_days=window_days)
    if outcomes.height == 0:
        raise FrameError(f"no day has {window_days} observed days after it", fix="pass a longer series")
    return float(outcomes.get_column("observed").mean())  # type: ignore[arg-type]


def flood_events(
    series: pl.DataFrame,
    *,
    threshold_value: float,
    water_year_start_month: int | Mapping[str, int] = 10,
    min_coverage: float = 0.8,
) -> pl.DataFrame:
    """Annual peaks above ``threshold_value`` with their onset (module docstring).

    Returns ``unique_id, water_year, peak_ds, peak, onset`` (complete water years only).
    """
    _check(threshold_value, 1)
    uid, grid, y = _one_series(series)
    maxima = annual_maxima(series, water_year_start_month=water_year_start_month, min_coverage=min_coverage)
    peaks = maxima.filter(pl.col("complete") & (pl.col("annual_max") > threshold_value))
    onsets = []
    for peak_ds in peaks.get_column("ds").to_list():
        i = int((np.datetime64(peak_ds.date()) - grid[0]).astype(np.int64))
        while i > 0 and np.isfinite(y[i - 1]) and y[i - 1] > threshold_value:
            i -= 1
        onsets.append(grid[i])
    return peaks.select(
        pl.lit(uid).alias("unique_id"),
        "water_year",
        pl.col("ds").alias("peak_ds"),
        pl.col("annual_max").alias("peak"),
        pl.Series("onset", np.array(onsets, dtype="datetime64[D]").astype("datetime64[us]")),
    )


def flood_warning_skill(
    probabilities: pl.DataFrame,
    series: pl.DataFrame,
    *,
    threshold_value: float,
    base_rate: float,
    window_days: int = 3,
    p_warn: float = 0.5,
    water_year_start_month: int | Mapping[str, int] = 10,
    min_coverage: float = 0.8,
) -> FloodSkill:
    """Score forecasts of "above ``threshold_value`` within ``window_days``" (module docstring).

    ``probabilities``: ``ds`` (issue date: the forecast saw the flow up to that day) and
    ``p_exceed`` (probability of an outcome), one row per issue date; the issue dates are the
    period scored. ``series``: the observed daily flow (one series, covering the period and
    ``window_days`` after it). ``base_rate``: the climatological probability, from
    :func:`exceedance_base_rate` on training years.
    """
    _check(threshold_value, window_days)
    missing = [c for c in ("ds", "p_exceed") if c not in probabilities.columns]
    if missing:
        raise FrameError(
            f"the probability frame lacks column(s) {missing}; it has {probabilities.columns}",
            fix="pass ds (issue date) and p_exceed (probability of exceeding within the window)",
        )
    if not 0.0 < p_warn <= 1.0 or not 0.0 <= base_rate <= 1.0:
        raise FrameError(
            f"p_warn={p_warn} must be in (0, 1] and base_rate={base_rate} in [0, 1]",
            fix="pass probabilities, e.g. p_warn=0.5",
        )
    forecasts = (
        probabilities.select(pl.col("ds").dt.date().alias("day"), pl.col("p_exceed").cast(pl.Float64))
        .drop_nulls()
        .unique("day", keep="last")
        .sort("day")
    )
    bad = forecasts.filter(~pl.col("p_exceed").is_between(0.0, 1.0))
    if bad.height:
        raise FrameError(
            f"{bad.height} probabilities lie outside [0, 1], e.g. {bad.row(0)}", fix="pass probabilities, not scores"
        )
    if forecasts.height == 0:
        raise FrameError("no forecast to score", fix="pass at least one issue date with a probability")
    _, grid, y = _one_series(series)
    issue = forecasts.get_column("day").to_numpy().astype("datetime64[D]")
    p = forecasts.get_column("p_exceed").to_numpy()
    warned = p >= p_warn

    outcomes = exceedance_outcomes(series, threshold_value=threshold_value, window_days=window_days)
    scored = forecasts.join(outcomes.select(pl.col("ds").dt.date().alias("day"), "observed"), on="day", how="inner")
    o = scored.get_column("observed").to_numpy().astype(np.float64)
    ps = scored.get_column("p_exceed").to_numpy()
    w = ps >= p_warn
    brier = brier_score(ps, o)
    brier_clim = brier_score(np.full(len(o), base_rate), o)

    events = flood_events(
        series,
        threshold_value=threshold_value,
        water_year_start_month=water_year_start_month,
        min_coverage=min_coverage,
    )
    first, last = issue[0], issue[-1]
    lead = np.timedelta64(window_days, "D")
    one = np.timedelta64(1, "D")
    leads: list[float] = []
    peaks: list[str] = []
    hit_flags: list[bool] = []
    for onset_dt, peak_dt in events.select("onset", "peak_ds").iter_rows():
        onset = np.datetime64(onset_dt.date())
        if onset - one < first or onset - lead > last:
            continue  # no issue date could have warned of it
        before = issue[(issue >= onset - lead) & (issue <= onset - one) & warned]
        peaks.append(f"{peak_dt:%Y-%m-%d}")
        hit_flags.append(bool(len(before)))
        if len(before):
            leads.append(float((onset - before.min()).astype(np.int64)))

    alarms, false = _alarms(issue, warned, grid, y, threshold_value=threshold_value, window_days=window_days)
    hits = sum(hit_flags)
    misses = len(hit_flags) - hits
    return FloodSkill(
        threshold_value=float(threshold_value),
        window_days=window_days,
        p_warn=p_warn,
        forecasts=len(o),
        events=len(hit_flags),
        hits=hits,
        misses=misses,
        alarms=alarms,
        false_alarms=false,
        pod=hits / len(hit_flags) if hit_flags else float("nan"),
        far=false / alarms if alarms else 0.0,
        csi=hits / (hits + misses + false) if (hits + misses + false) else float("nan"),
        lead_times_days=tuple(leads),
        median_lead_days=float(np.median(leads)) if leads else None,
        event_peaks=tuple(peaks),
        event_hit=tuple(hit_flags),
        daily_hits=int((w & (o == 1)).sum()),
        daily_misses=int((~w & (o == 1)).sum()),
        daily_false_alarms=int((w & (o == 0)).sum()),
        daily_correct_negatives=int((~w & (o == 0)).sum()),
        base_rate=float(base_rate),
        observed_rate=float(o.mean()) if len(o) else float("nan"),
        brier=brier,
        brier_climatology=brier_clim,
        brier_skill_score=1.0 - brier / brier_clim if brier_clim > 0 else float("nan"),
    )


def _alarms(
    issue: np.ndarray, warned: np.ndarray, grid: np.ndarray, y: np.ndarray, *, threshold_value: float, window_days: int
) -> tuple[int, int]:
    """``(alarms, false alarms)``: runs of warnings on consecutive issue dates, and those the
    flow never justified (below the threshold from the run's first date + 1 to its last + window)."""
    alarms = false = 0
    start = None
    for i in range(len(issue)):
        if not warned[i]:
            continue
        if start is None:
            start = i
        run_ends = i + 1 == len(issue) or not warned[i + 1] or issue[i + 1] - issue[i] != np.timedelta64(1, "D")
        if not run_ends:
            continue
        alarms += 1
        lo = int((issue[start] - grid[0]).astype(np.int64)) + 1
        hi = int((issue[i] - grid[0]).astype(np.int64)) + window_days
        window = y[max(lo, 0) : hi + 1]
        if not (np.where(np.isfinite(window), window, -np.inf) > threshold_value).any():
            false += 1
        start = None
    return alarms, false
