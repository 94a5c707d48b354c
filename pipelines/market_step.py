"""The market's field model in the cycle: the composite stress index as series, KLR levels.

Two parts, both configured by ``[markets]`` (:class:`core.settings.MarketSettings`):

- :func:`run_market_step` runs first in the cycle (:mod:`pipelines.cycle`), before the
  changed series are found, so the composite is forecast, scored and graded like any series.
  It reads the indicators' series and their frequencies from the warehouse, observations
  before the command's cutoff only, builds :func:`hazards.market_composite` (each input as
  known on its Friday, ending at the judged time) and writes the composite
  (``<composite_id>_composite``) and one sub-index per segment (``<composite_id>_<segment>``)
  as ordinary weekly series (domain market, unit ``index 0-1``, bounds 0 and 1, the source
  naming it as derived from its inputs). The writes are the warehouse's upserts, so a rerun on
  the same data writes nothing. A missing or too short input skips the composite with a note
  naming the ids; it never fails the cycle.
- :func:`market_level` (pure) is rule 1c of :mod:`pipelines.hazard_step`: the level of the
  composite's newest week from the KLR signals (:class:`hazards.MarketSignals`), fitted per
  crisis target on the composite's history up to the cutoff, with the crisis events each
  target had *announced* by then (``known_until = cutoff - lag``). Evidence contract in its
  docstring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alerts.judgment import HAZARD_MODEL, MARKET_MODEL
from core.clock import Clock
from core.errors import EWSError, FrameError
from core.settings import MarketSettings, Settings
from core.vocabulary import Classification, Domain, Level
from hazards.market_indicators import IndicatorSpec, market_composite
from hazards.market_signals import MarketSignals, crisis_episodes, crisis_labels
from warehouse import Warehouse
from warehouse.series import read_observations, read_series_meta, upsert_observations, upsert_series
from warehouse.vetting import vet_series

__all__ = [
    "EVENT_COLUMNS",
    "MARKET_EVENTS",
    "MarketModelInput",
    "MarketStepResult",
    "composite_series",
    "events_path",
    "indicator_specs",
    "market_level",
    "market_summary",
    "read_market_events",
    "run_market_step",
]

#: Columns of the crisis events file (data/events/market_crises.csv).
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "target",
    "onset",
    "peak",
    "trough",
    "end",
    "depth",
    "source",
    "covered_until",
)
#: What a crisis of each bundled target is, as the evidence's ``event`` says it (the judgment
#: reads "Probability that <event> within <window> days").
MARKET_EVENTS: dict[str, str] = {
    "us_recession": "a US recession starts",
    "sp500_bear": "the S&P 500 falls 20 % from its peak",
    "csi300_bear": "the CSI 300 falls 20 % from its peak",
}
_FREQUENCY = "W-FRI"
_UNIT = "index 0-1"
_LICENCE = "derived from the inputs' licences"


@dataclass(frozen=True)
class MarketModelInput:
    """What rule 1c needs: the composite frame of :func:`hazards.market_composite` (``ds``,
    the indicators, the segment sub-indices, ``contribution_<segment>``, ``avg_correlation``,
    ``composite``), the crisis events (:data:`EVENT_COLUMNS`) and the settings."""

    frame: pl.DataFrame
    events: pl.DataFrame
    settings: MarketSettings


@dataclass
class MarketStepResult:
    model_input: MarketModelInput | None = None  # None: no composite this cycle (notes say why)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def indicator_specs(cfg: MarketSettings) -> list[IndicatorSpec]:
    """``[markets] indicators`` as the specs :func:`hazards.market_composite` reads."""
    return [
        IndicatorSpec(
            name=str(item["name"]),
            unique_id=str(item["unique_id"]),
            transform=str(item["transform"]),
            segment=str(item["segment"]),
            window=int(item.get("window", 0)),
            log=bool(item.get("log", False)),
        )
        for item in cfg.indicators
    ]


def events_path(settings: Settings) -> Path:
    """The crisis events file: ``[markets] events_file`` (relative to EWS_HOME), else the
    bundled ``events/market_crises.csv`` of the sample-data folder."""
    from ingest.batches import sample_data_dir

    configured = settings.markets.events_file
    if not configured:
        return sample_data_dir(settings) / "events" / "market_crises.csv"
    path = Path(configured).expanduser()
    return path if path.is_absolute() else settings.home / path


def read_market_events(path: Path) -> pl.DataFrame:
    """The crisis events file: one row per event, dates as datetimes (empty = unknown: an
    ongoing event has no trough or end yet)."""
    if not path.is_file():
        raise FrameError(
            f"no crisis events file at {path}",
            fix="set [markets] events_file to a CSV with columns " + ", ".join(EVENT_COLUMNS),
        )
    frame = pl.read_csv(path, infer_schema_length=0)
    missing = [c for c in ("target", "onset") if c not in frame.columns]
    if missing:
        raise FrameError(
            f"{path} lacks column(s) {missing}; it has {frame.columns}",
            fix="give the columns " + ", ".join(EVENT_COLUMNS),
        )
    dates = [c for c in ("onset", "peak", "trough", "end", "covered_until") if c in frame.columns]
    out = frame.with_columns(
        *[pl.col(c).str.strip_chars().str.to_datetime(strict=False, time_unit="us").alias(c) for c in dates],
        *([pl.col("depth").cast(pl.Float64, strict=False)] if "depth" in frame.columns else []),
    )
    for column in dates:
        # an empty cell means unknown (an ongoing event); a cell that is not a date is an error
        unreadable = (
            frame.with_row_index("row", offset=2)
            .filter(pl.col(column).str.strip_chars().fill_null("").ne("") & out.get_column(column).is_null())
            .select("row", column)
        )
        if unreadable.height:
            row, value = unreadable.row(0)
            raise FrameError(
                f"{path} line {row}: {column} {value!r} is not a date ({unreadable.height} such cell(s))",
                fix=f"write {column} as an ISO date, e.g. 2008-01-01, or leave it empty when unknown",
            )
    if out.height == 0:
        raise FrameError(
            f"{path} holds no events (a header only)",
            fix="add one row per crisis, or point [markets] events_file at the bundled events file",
        )
    return out


def coverage_end(events: pl.DataFrame, target: str) -> datetime | None:
    """The last date the target's events were read from (``covered_until``; None when the file
    does not say): after it a week without an event is unobserved, not calm."""
    if "covered_until" not in events.columns:
        return None
    value = events.filter(pl.col("target") == target).get_column("covered_until").max()
    return value if isinstance(value, datetime) else None


def composite_series(
    frame: pl.DataFrame, cfg: MarketSettings, specs: list[IndicatorSpec]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The composite frame as long series (``unique_id, ds, y``) and their metadata rows."""
    ids = sorted({s.unique_id for s in specs})
    source = f"EWS CISS-style composite of {', '.join(ids)}"
    columns = {cfg.composite_uid: "composite", **{cfg.segment_uid(s): s for s in cfg.segments}}
    long = pl.concat(
        [
            frame.select(pl.lit(uid).alias("unique_id"), pl.col("ds").cast(pl.Datetime("us")), pl.col(col).alias("y"))
            for uid, col in columns.items()
        ]
    ).filter(pl.col("y").is_not_null() & pl.col("y").is_not_nan())
    names = {cfg.composite_uid: f"{cfg.region} market stress composite (CISS-style: {', '.join(cfg.segments)})"}
    names.update({cfg.segment_uid(s): f"{cfg.region} market stress: {s} sub-index" for s in cfg.segments})
    meta = pl.DataFrame(
        {
            "unique_id": list(columns),
            "domain": [Domain.MARKET.value] * len(columns),
            "name": [names[u] for u in columns],
            "variable": ["stress_composite" if c == "composite" else "stress_subindex" for c in columns.values()],
            "unit": [_UNIT] * len(columns),
            "frequency": [_FREQUENCY] * len(columns),
            "region": [cfg.region] * len(columns),
            "lat": [None] * len(columns),
            "lon": [None] * len(columns),
            "source": [source] * len(columns),
            "licence": [_LICENCE] * len(columns),
            "classification": [Classification.PUBLIC.label] * len(columns),
            "lower_bound": [0.0] * len(columns),
            "upper_bound": [1.0] * len(columns),
        },
        schema_overrides={"lat": pl.Float64, "lon": pl.Float64},
    )
    return long, meta


def run_market_step(
    wh: Warehouse,
    settings: Settings,
    *,
    clock: Clock,
    run_id: str,
    progress: Callable[[str], None] = lambda _m: None,
) -> MarketStepResult:
    """Build and write the composite and its sub-indices (module docstring); the returned
    :class:`MarketModelInput` is what the levels step fits the signals on."""
    cfg = settings.markets
    result = MarketStepResult()
    if not cfg.enabled:
        return result
    specs = indicator_specs(cfg)
    ids = sorted({s.unique_id for s in specs})
    meta = read_series_meta(wh, ids)
    series = read_observations(wh, ids, before=clock.cutoff)
    have = set(series.get_column("unique_id").unique().to_list())
    missing = [u for u in ids if u not in have]
    if missing:
        result.notes.append(
            f"market composite {cfg.composite_uid} skipped: input series {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not stored"
            + (f" before {clock.cutoff:%Y-%m-%d}" if clock.cutoff else "")
            + " (ingest them, or drop them from [markets] indicators)"
        )
        return result
    frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    progress(
        f"      market: composite {cfg.composite_uid} of {len(specs)} indicators from {len(ids)} series "
        f"({', '.join(ids)}), sub-indices {', '.join(cfg.segment_uid(s) for s in cfg.segments)}"
    )
    try:
        frame = market_composite(
            series,
            specs,
            frequencies=frequencies,
            available_after=dict(zip(meta["unique_id"], meta["available_after"], strict=True)),
            end=clock.judged_at,
        )
    except EWSError as exc:
        result.notes.append(f"market composite {cfg.composite_uid} skipped: {exc.problem} ({exc.fix})")
        return result
    if frame.height == 0:
        result.notes.append(
            f"market composite {cfg.composite_uid} skipped: the inputs {', '.join(ids)} overlap too briefly "
            "for the composite's 52-week warm-up (ingest longer histories)"
        )
        return result
    long, rows = composite_series(frame, cfg, specs)
    result.counts["market_series"] = upsert_series(wh, rows, batch_id=run_id)
    # their names, region and unit are the engine's, built from [markets]: vetted for publication
    vetted = rows.select("unique_id", "name", "region", "unit")
    vet_series(wh, vetted, by="engine: market step ([markets])", at=clock.now, by_operator=False)
    result.counts["market_observations"] = upsert_observations(wh, long, batch_id=run_id)
    try:
        events = read_market_events(events_path(settings))
    except EWSError as exc:
        result.notes.append(
            f"market level: no crisis events ({exc.problem}; {exc.fix}); the composite keeps a rarity grade"
        )
        events = pl.DataFrame(schema={"target": pl.Utf8, "onset": pl.Datetime("us")})
    result.model_input = MarketModelInput(frame=frame, events=events, settings=cfg)
    last = frame.row(frame.height - 1, named=True)
    result.notes.append(
        f"market composite {cfg.composite_uid}: {frame.height} weeks to {last['ds']:%Y-%m-%d}, "
        f"composite {last['composite']:.2f} ("
        + ", ".join(f"{s} {last[s]:.2f}" for s in cfg.segments)
        + f"); {result.counts['market_observations']} observation rows written"
    )
    return result


# -- rule 1c: the level of the composite's newest week ---------------------------------------


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _known_events(events: pl.DataFrame, target: str, known_until: datetime) -> pl.DataFrame:
    """The target's events announced by ``known_until``; a trough or end after it is not known
    yet (the event is ongoing then). A bear market's trough is known only once the 20 % rally
    that ends it (its ``end``) has happened."""
    own = events.filter((pl.col("target") == target) & (pl.col("onset") <= known_until))
    if {"trough", "end"} <= set(own.columns):
        own = own.with_columns(pl.when(pl.col("end") <= known_until).then(pl.col("trough")).alias("trough"))
    return own.with_columns(
        *[
            pl.when(pl.col(c) <= known_until).then(pl.col(c)).otherwise(None).alias(c)
            for c in ("trough", "end")
            if c in own.columns
        ]
    )


def _events_in_training(ds: np.ndarray, usable: np.ndarray, onsets: list[datetime], horizon: timedelta) -> int:
    """Episodes that label at least one usable training week as 'a crisis ahead'."""
    rows = ds[usable]
    h = np.timedelta64(horizon)
    return sum(bool(np.any((o > rows) & (o <= rows + h))) for o in (np.datetime64(x, "us") for x in onsets))


def _fit_target(
    frame: pl.DataFrame, events: pl.DataFrame, cfg: MarketSettings, target: str, lag: int, at: datetime
) -> tuple[dict[str, Any] | None, str]:
    """One target's signals at the newest week: (its evidence entry with the fitted model and
    the applied row, a note)."""
    known_until = at - timedelta(days=lag)
    if events.filter(pl.col("target") == target).height == 0:
        return None, f"{target}: no events of this target in the events file; skipped"
    covered = coverage_end(events, target)
    capped = covered is not None and covered < known_until
    if covered is not None and capped:
        # weeks after the event list's data are not calm weeks: they are unlabelled
        known_until = covered
    episodes = crisis_episodes(_known_events(events, target, known_until), gap_days=cfg.episode_gap_days)
    labels = crisis_labels(frame["ds"], episodes, horizon_days=cfg.horizon_days, known_until=known_until)
    usable = labels.get_column("usable").to_numpy()
    ahead = labels.get_column("ahead").to_numpy()
    if not (usable & ahead).any():
        return None, (
            f"{target}: no crisis known by {known_until:%Y-%m-%d} starts within {cfg.horizon_days} days of a "
            "usable training week; skipped"
        )
    names = [str(item["name"]) for item in cfg.indicators] + cfg.segments
    # an indicator without a value in any training week (a series that starts later, such as
    # the euro's exchange rate in 1999) has no threshold to fit: it sits this fit out
    trained = frame.filter(pl.Series(usable))
    idle = [n for n in names if trained.get_column(n).cast(pl.Float64).fill_nan(None).null_count() == trained.height]
    names = [n for n in names if n not in idle]
    model = MarketSignals(indicators=names, horizon_days=float(cfg.horizon_days), ladder=cfg.ladder_rungs())
    model.fit(frame, labels)
    applied = model.apply(frame.tail(1)).row(0, named=True)
    level = Level.parse(applied["level"])
    probability, from_level = _level_probability(model, level)
    ds = frame.get_column("ds").cast(pl.Datetime("us")).to_numpy()
    used = frame.get_column("ds").filter(pl.Series(usable))
    newest = frame.row(frame.height - 1, named=True)
    signals = [
        {
            "indicator": name,
            "value": _finite(newest[name]),
            # an indicator's threshold is on its causal rank (the percentile of its own past)
            "rank": _finite(newest.get(f"rank_{name}", newest[name])),
            "threshold": _finite(model.fits[name].threshold),
            "nsr": _finite(model.fits[name].nsr),
            "signalling": bool(applied[f"signal_{name}"]),
        }
        for name in model.columns
    ]
    entry = {
        "level": level.label,
        "probability": probability,
        "signal_share": float(applied["signal_share"]),
        "base_rate": float(model.base_rate),
        "train_span": [used.min().date().isoformat(), used.max().date().isoformat()],  # type: ignore[union-attr]
        "events_in_training": _events_in_training(
            ds, usable, episodes.get_column("onset").to_list(), timedelta(days=cfg.horizon_days)
        ),
    }
    entry["training_weeks"] = model.level_rows.get(from_level, int(usable.sum()))  # behind the probability
    if from_level != level.label:
        entry["probability_from"] = from_level  # no training week reached this level
    if idle:
        entry["untrained"] = idle  # no value in any training week: no threshold, no signal
    note = (
        f"{target} {level.label} (signal share {entry['signal_share']:.2f}, P {probability:.2f} within "
        f"{cfg.horizon_days} d, base rate {entry['base_rate']:.2f}, {entry['events_in_training']} crises known by "
        f"{known_until:%Y-%m-%d}"
        + (" (where its event list ends)" if capped else "")
        + (f"; no training values: {', '.join(idle)}" if idle else "")
        + ")"
    )
    return {"entry": entry, "signals": signals}, note


def _level_probability(model: MarketSignals, level: Level) -> tuple[float, str]:
    """The training frequency of a crisis within the horizon at ``level`` or above; where no
    training week reached it, that of the next level down that has weeks (the base rate below
    every rung)."""
    for rung in sorted((lv for lv in Level if lv <= level), reverse=True):
        if rung is Level.NONE:
            break
        p = model.level_probability.get(rung.label, float("nan"))
        if model.level_rows.get(rung.label, 0) > 0 and math.isfinite(p):
            return float(p), rung.label
    return float(model.base_rate), Level.NONE.label


def market_level(
    model_input: MarketModelInput, *, at: datetime, ds: datetime | None = None
) -> tuple[tuple[Level, dict[str, Any]] | None, list[str]]:
    """Rule 1c: the composite's level at its newest week (``ds``; default the frame's last)
    from the KLR signals, and notes. None when no target could be fitted (the notes say why).

    Per target of ``[markets] targets`` (name -> announcement lag): its events known by
    ``known_until = at - lag`` (onset on or before it), merged into episodes
    (:func:`hazards.crisis_episodes`, ``episode_gap_days``), label every week
    (:func:`hazards.crisis_labels` with ``known_until``: a week counts in training only when
    its whole horizon was known by then); :class:`hazards.MarketSignals` is fitted on every
    week up to ``ds`` (the labels' ``usable`` decides which train) with the indicators and the
    segment sub-indices as signals, and applied to the newest week. A target with no crisis
    ahead of any usable week is skipped with a note. The level is the highest over the targets
    (ties: the higher probability).

    Evidence (the ``hazard`` of the grade): ``model`` "klr_signals", ``probability`` (the
    training frequency of a crisis within the horizon at the level or above, of the deciding
    target), ``window_days``, ``event``, ``target``, ``targets`` ({target: level, probability,
    signal_share, base_rate, train_span, events_in_training}), ``segments`` ([{segment,
    subindex, contribution}], largest contribution first), ``composite``, ``avg_correlation``,
    ``signals`` ([{indicator, value, threshold, nsr, signalling}] of the deciding target; null
    for a threshold never crossed in training), ``ladder`` ({level: [share, composite
    required]}) and ``level``.
    """
    cfg = model_input.settings
    frame = model_input.frame.sort("ds")
    if ds is not None:
        frame = frame.filter(pl.col("ds") <= ds)
    notes: list[str] = []
    if frame.height == 0:
        return None, [f"{cfg.composite_uid}: no composite week to grade"]
    fitted: dict[str, dict[str, Any]] = {}
    for target, lag in cfg.targets.items():
        try:
            fit, note = _fit_target(frame, model_input.events, cfg, target, int(lag), at)
        except EWSError as exc:
            fit, note = None, f"{target}: not fitted ({exc.problem}); skipped"
        notes.append(note)
        if fit is not None:
            fitted[target] = fit
    if not fitted:
        return None, [f"{cfg.composite_uid}: no market level ({'; '.join(notes)}); the rarity grade stands"]

    def rank(target: str) -> tuple[int, float]:
        entry = fitted[target]["entry"]
        return int(Level.parse(entry["level"])), entry["probability"]

    chosen = max(fitted, key=rank)
    level = Level.parse(fitted[chosen]["entry"]["level"])
    newest = frame.row(frame.height - 1, named=True)
    contributions = {s: _finite(newest[f"contribution_{s}"]) for s in cfg.segments}
    order = sorted(cfg.segments, key=lambda s: -(c if (c := contributions[s]) is not None else -math.inf))
    segments = [{"segment": s, "subindex": _finite(newest[s]), "contribution": contributions[s]} for s in order]
    evidence = {
        "model": MARKET_MODEL,
        "probability": fitted[chosen]["entry"]["probability"],
        "window_days": float(cfg.horizon_days),
        "event": MARKET_EVENTS.get(chosen, f"a {chosen.replace('_', ' ')} crisis starts"),
        "target": chosen,
        "targets": {t: f["entry"] for t, f in fitted.items()},
        "segments": segments,
        "composite": _finite(newest["composite"]),
        "avg_correlation": _finite(newest["avg_correlation"]),
        "signals": fitted[chosen]["signals"],
        "ladder": {name: [share, needs] for name, (share, needs) in cfg.ladder_rungs().items()},
        "level": level.label,
    }
    notes = [f"{cfg.composite_uid}: KLR signals at {newest['ds']:%Y-%m-%d}: " + "; ".join(notes) + f" -> {level.label}"]
    return (level, evidence), notes


def market_summary(grades: pl.DataFrame, cfg: MarketSettings) -> dict[str, Any] | None:
    """The composite's newest graded level as the run summary shows it, or None."""
    own = grades.filter(pl.col("unique_id") == cfg.composite_uid).sort("ds")
    if own.height == 0:
        return None
    row = own.row(own.height - 1, named=True)
    evidence: Mapping[str, Any] = json.loads(row["evidence"] or "{}")
    hazard = evidence.get("hazard") if evidence.get("basis") == HAZARD_MODEL else None
    if not isinstance(hazard, dict) or hazard.get("model") != MARKET_MODEL:
        return None
    return {
        "unique_id": cfg.composite_uid,
        "ds": row["ds"],
        "level": row["level"],
        "probability": hazard["probability"],
        "window_days": hazard["window_days"],
        "event": hazard["event"],
        "target": hazard["target"],
        "composite": hazard["composite"],
        "segments": hazard["segments"],
    }
