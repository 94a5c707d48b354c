"""The levels step of the cycle: field models set the level, rarity is a capped fallback.

Runs after grading (:mod:`pipelines.score_step`, the statistical-rarity grade of every
series) and before the alert step; it rewrites the grade frame (``unique_id, ds, level,
score, evidence``) and writes it to ``risk_grades``. :func:`field_levels` is pure (frames in,
frames out; :class:`FieldLevels` is the same one part of the series at a time);
:class:`HazardStep` reads the catalog events up to the command's cutoff and writes, one chunk
of the cycle at a time (grades that rule 3 may lift, and its witnesses, wait in the
warehouse until every chunk is graded). The rules, in order (docs/anomaly.md, "Levels: field models first, rarity as a
capped fallback"):

1. **Earthquakes: the aftershock forecast.** A seismic region is the ``<region>`` of its
   ``<region>_count``, ``<region>_max_mag`` and ``<region>_energy`` series; its events are the
   catalog events inside the region's box (``ingest.sources.catalogue.SEISMIC_REGIONS``; a
   region not listed there, e.g. a user catalog's whole-globe default region, takes every
   stored event). At the judged time (the end of the replay day, or now) the region's
   Reasenberg-Jones forecast (:func:`hazards.aftershock_forecast`, the tectonic setting of
   ``[hazards] region_settings``) gives ``P(at least one M >= forecast_magnitude within
   forecast_days)``; when it finds a mainshock, the count series' grade at its newest
   observation becomes :func:`hazards.aftershock_level` of that probability (thresholds
   ``[hazards] aftershock_thresholds``), with ``basis: hazard_model`` and the forecast in the
   evidence. A hazard-model level is never capped.
   **Rivers: return periods.** Every discharge series (domain hydro, variable discharge)
   gets, at its newest observation, the level of the EFAS/GloFAS-style ladder
   (``[hazards] flood_ladder``, :func:`hazards.floods.ladder_levels`) from the probability
   that its maximum flow over the next ``flood_window_days`` days passes its 2/5/20-year
   return levels, given today's flow, its 1- and 2-day rise and the season
   (:class:`hazards.FloodStateModel`, the model ``ews evaluate events`` measures); the return
   levels (:func:`hazards.floods.return_period_thresholds`) and the model are fitted on the
   series' own record up to the cutoff. With fewer than ``flood_min_years`` complete water
   years there is no fit and the river keeps its rarity grade (rule 3).
   **Markets: KLR signals on the composite stress index** (rule 1c). The composite series
   ``<composite_id>_composite`` (written by :mod:`pipelines.market_step` in this cycle) gets, at
   its newest week, the level of the KLR signals (:func:`pipelines.market_step.market_level`:
   thresholds fitted per crisis target on the composite's history up to the cutoff, with the
   events announced by then; ladder ``[markets] ladder``), with the probability of a crisis
   within ``[markets] horizon_days`` at that level in training and the segments driving it.
   With no target fitted (no events file, no crisis in training) it keeps its rarity grade.
2. **No mainshock, at most blue.** Every grade of a region's seismic series made at a time
   without an active mainshock sequence (:func:`hazards.find_mainshock` at the end of that
   day) is at most blue (:func:`hazards.cap_without_mainshock`): a rate change alone is an
   "unusual activity" notice.
3. **Everything else keeps the rarity grade**, labelled ``basis: statistical_rarity`` and
   capped at ``[hazards] rarity_cap`` (``capped_at``, ``uncapped_level``), unless a second,
   independent series of the same region agrees: a series of the same ``region`` from
   another ``source``, or of another variable (but not of the same source at the same known
   site, lat/lon: that is one instrument), whose own rarity
   level (after rule 2, before any cap) at some point of the same period (the coarser of the
   two series' periods: the hour, day, week or month) reaches at least the smaller of the
   capped grade's uncapped level and ``[hazards] corroboration_level`` (default orange).
   Then the uncapped level stands and ``corroborated_by`` names the agreeing series. The
   components of one instrument (a GNSS station's north, east and up; the count, magnitude
   and energy series of one catalog box) are one witness, not two. The rule is
   :func:`anomaly.cap_rarity_levels`, which the evaluation replay calls too. Market series
   do not lift each other's cap (they are correlated inputs of one composite, not independent
   witnesses); a non-market series of the region can.

4. **Steps as evidence.** The newest grade of a GNSS component or a tide gauge carries the
   steps known by then (``steps``: size and standard error in mm, z, the catalog earthquake
   that explains it, if any; :func:`hazards.gnss_offsets`, :func:`hazards.sustained_steps`,
   :func:`hazards.link_offsets`). They inform the analyst; they do not set the level.

The ``score`` column stays the calibrated rarity score (a hazard model's probability is in
``evidence.hazard.probability``); the rarity grade a hazard level replaced stays in the
evidence as ``rarity``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

import anomaly
import hazards
from core.clock import Clock
from core.errors import EWSError, FrameError
from core.frames import detached
from core.settings import HazardSettings, Settings
from core.vocabulary import LEVEL_RANK, Domain, Level
from hazards import floods
from ingest.sources.catalogue import SEISMIC_REGIONS
from pipelines.market_step import MarketModelInput, market_level, market_summary
from warehouse import Warehouse
from warehouse.grades import (
    clear_grade_stash,
    read_latest_grades,
    read_stashed_grades,
    read_witnesses,
    stash_grades,
    stash_witnesses,
    upsert_grades,
)
from warehouse.series import read_events, read_series_meta

__all__ = ["HazardStep", "HazardStepResult", "FieldLevels", "field_levels", "SEISMIC_SUFFIXES", "PENDING_SCHEMA"]

#: Suffixes of the daily series a catalog region produces (ingest.sources.seismic).
SEISMIC_SUFFIXES: tuple[str, ...] = ("_count", "_max_mag", "_energy")
_BASIS_MODEL = "hazard_model"
_BASIS_RARITY = "statistical_rarity"
_RARITY_PREFIX = '{"basis": ' + json.dumps(_BASIS_RARITY) + ", "
_MODEL_NAME = "reasenberg_jones"
_GRADE_SCHEMA: dict[str, pl.DataType] = {
    "unique_id": pl.Utf8(),
    "ds": pl.Datetime("us"),
    "level": pl.Utf8(),
    "score": pl.Float64(),
    "evidence": pl.Utf8(),
}


@dataclass
class HazardStepResult:
    # each changed series' newest observation and its level there (unique_id, ds, level, score,
    # evidence; level null where that point has no grade): what the alert step reads
    latest: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    market: dict[str, Any] | None = None  # the composite's level (pipelines.market_step.market_summary)


def _seismic_region(uid: str) -> str | None:
    for suffix in SEISMIC_SUFFIXES:
        if uid.endswith(suffix):
            return uid[: -len(suffix)]
    return None


def _boxes() -> dict[str, dict[str, Any]]:
    return {box["id"]: box for boxes in SEISMIC_REGIONS.values() for box in boxes}


def _region_events(events: pl.DataFrame, region: str) -> pl.DataFrame:
    box = _boxes().get(region)
    if box is None:
        return events
    return events.filter(
        pl.col("lat").is_between(box["min_lat"], box["max_lat"])
        & pl.col("lon").is_between(box["min_lon"], box["max_lon"])
    )


def _aftershock_evidence(row: dict[str, Any], cfg: HazardSettings, setting: str, level: Level) -> dict[str, Any]:
    return {
        "model": _MODEL_NAME,
        "probability": float(row["probability"]),
        "window_days": float(row["window_days"]),
        "magnitude": float(row["m_min"]),
        "event": f"M>={row['m_min']:g} earthquake",
        "expected_count": float(row["expected_count"]),
        "count_range": [int(row["count_low"]), int(row["count_high"])],
        "mainshock": {"time": row["mainshock_time"].isoformat(), "magnitude": float(row["mainshock_magnitude"])},
        "days_since_mainshock": float(row["days_since_mainshock"]),
        "forecast_time": row["forecast_time"].isoformat(),
        "setting": setting,
        "regime": row["regime"],
        "update": row["update"],
        "n_aftershocks": int(row["n_aftershocks"]),
        "catalog_mc": float(row["catalog_mc"]),
        "parameters": {
            "a": float(row["a_value"]),
            "b": float(row["b_value"]),
            "p": float(row["omori_p"]),
            "c": float(row["omori_c"]),
        },
        "ladder": dict(cfg.aftershock_thresholds),
        "level": level.label,
    }


def _aftershock_grades(
    *,
    latest: Mapping[str, datetime],
    events: pl.DataFrame,
    cfg: HazardSettings,
    at: datetime,
) -> tuple[dict[tuple[str, datetime], tuple[Level, dict[str, Any]]], dict[str, bool], list[str]]:
    """Rule 1: the hazard level of each region's count series at its newest observation.
    Returns ``{(uid, ds): (level, hazard evidence)}``, whether each region has a mainshock at
    ``at``, and notes."""
    out: dict[tuple[str, datetime], tuple[Level, dict[str, Any]]] = {}
    active: dict[str, bool] = {}
    notes: list[str] = []
    for uid, ds in sorted(latest.items()):
        region = _seismic_region(uid)
        if region is None or not uid.endswith("_count"):
            continue
        setting = cfg.region_settings.get(region, cfg.default_setting)
        forecast = hazards.aftershock_forecast(
            _region_events(events, region),
            at=at,
            setting=setting,
            min_magnitude=cfg.min_mainshock_magnitude,
            lookback_days=cfg.lookback_days,
            magnitudes=sorted({5.0, 6.0, 7.0, cfg.forecast_magnitude}),
            windows_days=sorted({1.0, 7.0, 30.0, cfg.forecast_days}),
        )
        active[region] = forecast.height > 0
        if forecast.height == 0:
            continue
        row = forecast.filter(
            ((pl.col("m_min") - cfg.forecast_magnitude).abs() < 1e-9)
            & ((pl.col("window_days") - cfg.forecast_days).abs() < 1e-9)
        ).row(0, named=True)
        th = cfg.aftershock_thresholds
        level = hazards.aftershock_level(row["probability"], yellow=th["yellow"], orange=th["orange"], red=th["red"])
        out[(uid, ds)] = (level, _aftershock_evidence(row, cfg, setting, level))
        notes.append(
            f"{uid}: aftershock forecast after the M{row['mainshock_magnitude']:g} of "
            f"{row['mainshock_time']:%Y-%m-%d %H:%M} UTC, P(M>={cfg.forecast_magnitude:g} within "
            f"{cfg.forecast_days:g} d) = {row['probability']:.2f} -> {level.label}"
        )
    return out, active, notes


def flood_ladder(cfg: HazardSettings) -> tuple[floods.FloodRung, ...]:
    """The ``[hazards] flood_ladder`` setting as the rungs :func:`hazards.flood_levels` reads."""
    return tuple(
        floods.FloodRung(Level.parse(name), float(rung[0]), float(rung[1])) for name, rung in cfg.flood_ladder.items()
    )


def _flood_grades(
    *,
    series: pl.DataFrame,
    meta: pl.DataFrame,
    latest: Mapping[str, datetime],
    cfg: HazardSettings,
) -> tuple[dict[tuple[str, datetime], tuple[Level, dict[str, Any]]], list[str]]:
    """Rule 1b: the flood level of each discharge series at its newest observation, from the
    state-conditional model (:class:`hazards.FloodStateModel`) fitted on the series' own
    record up to the cutoff: P(the maximum flow of the next ``flood_window_days`` days passes
    each 2/5/20-year return level, fitted on the same record | today's flow, rise, season),
    on the ladder ``[hazards] flood_ladder``. A series with too few complete water years, or
    too short a daily record for the model, keeps its rarity grade (said in the notes)."""
    out: dict[tuple[str, datetime], tuple[Level, dict[str, Any]]] = {}
    notes: list[str] = []
    ladder = flood_ladder(cfg)
    rivers = meta.filter(
        (pl.col("domain") == Domain.HYDRO.value)
        & (pl.col("variable") == "discharge")
        & pl.col("unique_id").is_in(list(latest))
    )
    for r in rivers.iter_rows(named=True):
        uid = r["unique_id"]
        own = series.filter(pl.col("unique_id") == uid).select("unique_id", "ds", "y")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                thresholds = floods.return_period_thresholds(
                    own,
                    periods=sorted(
                        {2.0}
                        | {float(rung.period_years) for rung in ladder}
                        | {float(y) for y in cfg.flood_observed_rungs.values() if y}
                    ),
                    water_year_start_month=floods.water_year_start(r["region"]),
                    min_years=cfg.flood_min_years,
                )
            wetness = cfg.flood_wetness
            if wetness == "auto":  # chosen on the record up to the cutoff (hazards.select_wetness)
                wetness, _ = hazards.select_wetness(
                    own,
                    thresholds,
                    window_days=cfg.flood_window_days,
                    water_year_start_month=floods.water_year_start(r["region"]),
                )
            model = hazards.FloodStateModel(
                window_days=cfg.flood_window_days, wetness=hazards.WETNESS_VARIANTS[wetness]
            ).fit(own, thresholds)
        except FrameError as exc:
            notes.append(f"{uid}: no flood model ({exc.problem}); the rarity grade stands")
            continue
        supported, unsupported = model.supported_ladder(ladder, thresholds, min_episodes=cfg.flood_min_episodes)
        if not supported:
            notes.append(f"{uid}: its record never went above any rung's return level; the rarity grade stands")
            continue
        probs = model.exceedance(own, thresholds, issue_dates=[latest[uid]])
        graded = floods.ladder_levels(
            probs, thresholds, ladder=supported, units={uid: r["unit"] or ""}, model=hazards.STATE_MODEL_NAME
        )
        row = graded.row(0, named=True)
        level = Level.parse(row["level"])
        detail = json.loads(row["evidence"])
        state = model.state(own).filter(pl.col("ds") == latest[uid]).row(0, named=True)
        values = dict(zip(thresholds.get_column("period_years"), thresholds.get_column("threshold_value"), strict=True))
        seen_rank, seen_period = floods.observed_rungs(
            np.array([float(state["flow"])]), values, rungs=cfg.flood_observed_rungs
        )
        observed: dict[str, Any] | None = None
        if int(seen_rank[0]) > 0:
            years = float(seen_period[0])
            observed = {
                "level": Level(int(seen_rank[0])).label,
                "return_period_years": years,
                "threshold": round(float(values[years]), 4),
                "flow": float(state["flow"]),
                "ds": state["ds"].isoformat(),
                "rule": f"observed above the {years:g}-year level now ({float(state['flow']):.4g} > "
                f"{float(values[years]):.4g} {r['unit'] or ''})".rstrip(),
            }
        days = (row["window_end"] - row["window_start"]).total_seconds() / 86400.0 + 1.0
        evidence = {
            "model": "return_period",
            "estimator": hazards.STATE_MODEL_NAME,
            "probability": float(row["probability"]),
            "window_days": days,
            "window_start": row["window_start"].isoformat(),
            "window_end": row["window_end"].isoformat(),
            "event": f"flow above the {row['period_years']:g}-year return level",
            "threshold": float(row["threshold_value"]),
            "unit": r["unit"] or "",
            "return_period_years": float(row["period_years"]),
            # the rungs on this event's threshold ({level: probability}, as for every model);
            # the whole ladder, rungs on other return periods included, under ladder_rungs
            "ladder": {
                rung.level.label: rung.min_probability
                for rung in ladder
                if rung.period_years == float(row["period_years"])
            },
            "ladder_rungs": {rung.level.label: [rung.period_years, rung.min_probability] for rung in ladder},
            "probabilities": detail.get("probabilities"),
            "distribution": (detail.get("fit") or {}).get("method"),
            "return_level_fit": detail.get("fit"),
            "state": {
                "ds": state["ds"].isoformat(),
                "flow": float(state["flow"]),
                "rise_1d": round(float(state["rise_1d"]), 4),
                "rise_2d": round(float(state["rise_2d"]), 4),
                "rise_known": bool(state["rise_known"]),
                **{
                    k: round(float(state[k]), 4)
                    for k in ("wet_7d", "wet_30d", "baseflow_30d", "days_since_rise")
                    if any(f.endswith(k) for f in model.wetness)
                },
                "wetness_known": bool(state["wetness_known"]),
            },
            "state_model": model.summary(),
            "rule": detail.get("rule"),
            "level": level.label,
        }
        if unsupported:  # rungs this record gives no case of ([hazards] flood_min_episodes)
            evidence["unsupported_rungs"] = unsupported
        if observed is not None:  # the gauge is in flood now ([hazards] flood_observed_rungs)
            evidence["observed_rung"] = observed
            if int(seen_rank[0]) > int(level):
                level = Level(int(seen_rank[0]))
                evidence["model_level"] = evidence["level"]
                evidence["level"] = level.label
                evidence["rule"] = observed["rule"]
        out[(uid, latest[uid])] = (level, evidence)
        notes.append(f"{uid}: flood state model, {evidence.get('rule')} -> {level.label}")
    return out, notes


def _mainshock_bound(
    frame: pl.DataFrame, *, events: pl.DataFrame, cfg: HazardSettings, at: datetime, active: dict[str, bool]
) -> pl.DataFrame:
    """Rule 2: column ``bound`` (rank) = the rarity rank, at most blue for seismic grades made
    without an active mainshock sequence at the end of their day."""
    seismic = frame.filter(pl.col("region_id").is_not_null() & (pl.col("rank") > int(Level.BLUE)))
    has_main: dict[tuple[str, datetime], bool] = {}
    for region, ds in seismic.select("region_id", "ds").unique().iter_rows():
        when = min(ds + timedelta(days=1), at)
        if when == at and region in active:
            has_main[(region, ds)] = active[region]
            continue
        setting = cfg.region_settings.get(region, cfg.default_setting)
        found = hazards.find_mainshock(
            _region_events(events, region).filter(pl.col("time") < when),
            at=when,
            min_magnitude=cfg.min_mainshock_magnitude,
            lookback_days=cfg.lookback_days,
            setting=setting,
        )
        has_main[(region, ds)] = found is not None
    keys = pl.DataFrame(
        {
            "region_id": [k[0] for k in has_main],
            "ds": [k[1] for k in has_main],
            "has_mainshock": list(has_main.values()),
        },
        schema={"region_id": pl.Utf8, "ds": pl.Datetime("us"), "has_mainshock": pl.Boolean},
    )
    frame = frame.join(keys, on=["region_id", "ds"], how="left")
    return frame.with_columns(
        pl.when(pl.col("region_id").is_not_null() & pl.col("has_mainshock").not_())
        .then(pl.min_horizontal("rank", pl.lit(int(Level.BLUE))))
        .otherwise(pl.col("rank"))
        .alias("bound")
    )


def _corroboration(
    frame: pl.DataFrame, meta: pl.DataFrame, *, cap: int, floor: int
) -> dict[tuple[str, datetime], list[str]]:
    """Rule 3 (:func:`anomaly.cap_rarity_levels`): for each of this cycle's grades above the
    cap, the independent series of its region whose rarity rank (``bound``) agrees."""
    labels = {int(lv): lv.label for lv in Level}
    ruled = anomaly.cap_rarity_levels(
        frame.select(
            "unique_id", "ds", pl.col("bound").replace_strict(labels, return_dtype=pl.Utf8).alias("level"), "own"
        ),
        meta,
        cap=Level(cap),
        floor=Level(floor),
        subject="own",
    )
    return {
        (uid, ds): mates
        for uid, ds, mates in ruled.filter(pl.col("corroborated_by").list.len() > 0)
        .select("unique_id", "ds", "corroborated_by")
        .iter_rows()
    }


def _steps_evidence(
    series: pl.DataFrame, meta: pl.DataFrame, events: pl.DataFrame, latest: Mapping[str, datetime]
) -> dict[str, list[dict[str, Any]]]:
    """Rule 4: the steps known by each GNSS component's and tide gauge's newest observation
    (:func:`hazards.gnss_offsets`, :func:`hazards.sustained_steps`, confirmed by then), sized in
    mm against the station's noise and linked to a catalog earthquake when one explains them
    (:func:`hazards.link_offsets`). Evidence only: they do not set the level."""
    out: dict[str, list[dict[str, Any]]] = {}
    linkable = {"event_id", "time", "lat", "lon", "magnitude"} <= set(events.columns)
    for r in meta.iter_rows(named=True):
        uid, variable = r["unique_id"], r.get("variable") or ""
        if uid not in latest:
            continue
        if r["domain"] == Domain.GEODETIC.value and variable.startswith("displacement"):
            finder: Callable[[pl.DataFrame], pl.DataFrame] = hazards.gnss_offsets
        elif r["domain"] == Domain.HYDRO.value and variable == "mean_sea_level":
            finder = hazards.sustained_steps
        else:
            continue
        own = series.filter(pl.col("unique_id") == uid)
        try:
            steps = finder(own)
        except EWSError as exc:  # too short a record for the noise model: say so, keep the grade
            out[uid] = [{"note": f"no step analysis: {exc}"}]
            continue
        steps = steps.filter(pl.col("confirmed_ds") <= latest[uid])
        if steps.height == 0:
            continue
        if linkable and r["lat"] is not None and r["lon"] is not None:
            steps = hazards.link_offsets(steps, events, station_lat=r["lat"], station_lon=r["lon"])
        rows = []
        for st in steps.sort("ds").tail(3).iter_rows(named=True):
            item = {
                "ds": st["ds"].isoformat(),
                "confirmed_ds": st["confirmed_ds"].isoformat(),
                "size_mm": round(float(st["size_mm"]), 2),
                "sigma_mm": round(float(st["sigma_mm"]), 2),
                "z": round(float(st["z"]), 2),
                "linked_event": None,
            }
            if st.get("event_id") is not None:
                item["linked_event"] = {
                    "event_id": st["event_id"],
                    "time": st["event_time"].isoformat(),
                    "magnitude": float(st["magnitude"]),
                    "distance_km": round(float(st["distance_km"]), 1),
                }
            rows.append(item)
        out[uid] = rows
    return out


def _stored_mates(stored: pl.DataFrame | None, present: set[str]) -> pl.DataFrame:
    """Newest stored grades of series outside this cycle, their rarity level recovered from
    the evidence (the uncapped level, or the rarity a hazard level replaced)."""
    if stored is None or stored.height == 0:
        return pl.DataFrame(schema=_GRADE_SCHEMA)
    rows = []
    for r in stored.filter(~pl.col("unique_id").is_in(list(present))).iter_rows(named=True):
        ev = json.loads(r["evidence"] or "{}")
        level = ev.get("rarity", {}).get("level") or ev.get("uncapped_level") or r["level"]
        rows.append({**{k: r[k] for k in _GRADE_SCHEMA}, "level": level})
    return pl.DataFrame(rows, schema=_GRADE_SCHEMA)


#: Columns of a grade parked until corroboration is known (:class:`FieldLevels`): the grade,
#: its rarity rank, its rank after rule 2 and the steps evidence of rule 4 (JSON, or null).
PENDING_SCHEMA: dict[str, pl.DataType] = {
    **_GRADE_SCHEMA,
    "rank": pl.Int64(),
    "bound": pl.Int64(),
    "steps": pl.Utf8(),
}


class FieldLevels:
    """:func:`field_levels` one part of the series at a time (the cycle's chunks, issue 21).

    Rules 1, 2 and 4 are per series (rule 2 per region and day, from the catalog alone), so
    :meth:`add` finishes every grade of a part but those rule 3 may lift: rarity grades above
    the cap, which wait (returned as *pending*, :data:`PENDING_SCHEMA`) until every part is
    in. Across parts it keeps only the witnesses of rule 3 (``unique_id, ds`` and rank of the
    grades at or above the lowest rank that can agree: the smaller of cap + 1 and
    ``[hazards] corroboration_level``) and the regions' mainshock states. :meth:`corroborate`
    then applies rule 3 once, with the stored grades of series outside the cycle, and
    :meth:`finish` finishes pending grades (in batches, if the caller parked them elsewhere).
    The rows equal those of one call over all series.
    """

    def __init__(
        self,
        *,
        meta: pl.DataFrame,
        events: pl.DataFrame,
        settings: HazardSettings,
        at: datetime,
        market: MarketModelInput | None = None,
    ) -> None:
        self.cfg = settings
        self.cap = int(Level.parse(settings.rarity_cap))
        self.floor = int(Level.parse(settings.corroboration_level))
        self.lowest = min(self.cap + 1, self.floor)
        self.meta = meta
        self.events = events.filter(pl.col("time") < at)
        self.at = at
        self.market = market
        self.seismic_ids = set(meta.filter(pl.col("domain") == Domain.SEISMIC.value).get_column("unique_id").to_list())
        self.active: dict[str, bool] = {}  # region -> mainshock at ``at`` (rule 1, read by rule 2)
        self.notes: list[str] = []
        self.counts = {"hazard_model": 0, "capped": 0, "corroborated": 0, "no_mainshock": 0}
        self.own: set[str] = set()
        self._witnesses: list[pl.DataFrame] = []
        self._lifted: dict[tuple[str, datetime], list[str]] | None = None

    def _ranked(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``rank`` (rarity), the seismic ``region_id`` and ``bound`` (rule 2) of grade rows."""
        names = frame.get_column("level").str.to_lowercase()
        for text in set(names.unique().drop_nulls().to_list()) - set(LEVEL_RANK):
            Level.parse(text)  # raises the error that names the valid levels
        seismic = sorted(self.seismic_ids & set(frame.get_column("unique_id").unique().to_list()))
        regions = {uid: _seismic_region(uid) for uid in seismic}
        frame = frame.with_columns(
            names.replace_strict(LEVEL_RANK, return_dtype=pl.Int64).alias("rank"),
            pl.col("unique_id").replace_strict(regions, default=None, return_dtype=pl.Utf8).alias("region_id"),
        )
        return _mainshock_bound(frame, events=self.events, cfg=self.cfg, at=self.at, active=self.active)

    def add(self, grades: pl.DataFrame, series: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Rules 1, 2 and 4 for a part (``grades`` and ``series`` of the same series): returns
        its finished grades (``_GRADE_SCHEMA``) and its pending ones (:data:`PENDING_SCHEMA`)."""
        cfg, at, events = self.cfg, self.at, self.events
        latest = dict(series.group_by("unique_id").agg(pl.col("ds").max()).iter_rows())
        hazard, active, notes = _aftershock_grades(latest=latest, events=events, cfg=cfg, at=at)
        self.active.update(active)
        rivers, river_notes = _flood_grades(series=series, meta=self.meta, latest=latest, cfg=cfg)
        hazard.update(rivers)
        notes.extend(river_notes)
        market = self.market
        if market is not None and market.settings.composite_uid in latest:
            uid = market.settings.composite_uid
            graded, market_notes = market_level(market, at=at, ds=latest[uid])
            if graded is not None:
                hazard[(uid, latest[uid])] = graded
            notes.extend(market_notes)
        self.notes.extend(notes)

        base = grades.select(list(_GRADE_SCHEMA)).cast(_GRADE_SCHEMA)  # type: ignore[arg-type]
        missing = [k for k in hazard if base.filter((pl.col("unique_id") == k[0]) & (pl.col("ds") == k[1])).height == 0]
        if missing:  # a count series whose newest point the rarity grade left out (too short, say)
            base = pl.concat(
                [
                    base,
                    pl.DataFrame(
                        {
                            "unique_id": [k[0] for k in missing],
                            "ds": [k[1] for k in missing],
                            "level": [Level.NONE.label] * len(missing),
                            "score": [0.0] * len(missing),
                            "evidence": ["{}"] * len(missing),
                        },
                        schema=_GRADE_SCHEMA,
                    ),
                ]
            )
        self.own.update(base.get_column("unique_id").to_list())
        frame = self._ranked(base)
        self._witnesses.append(frame.filter(pl.col("bound") >= self.lowest).select("unique_id", "ds", "bound"))
        steps = _steps_evidence(series, self.meta, events, latest)

        rows, pending = [], []
        for r in frame.iter_rows(named=True):
            key = (r["unique_id"], r["ds"])
            found = steps.get(r["unique_id"]) if r["ds"] == latest.get(r["unique_id"]) else None
            if key not in hazard and r["bound"] > self.cap:  # rule 3 decides, once every part is in
                pending.append(
                    {
                        **{k: r[k] for k in PENDING_SCHEMA if k != "steps"},
                        "steps": None if found is None else json.dumps(found, sort_keys=True),
                    }
                )
                continue
            rows.append(self._row(r, hazard.get(key), found))
        return pl.DataFrame(rows, schema=_GRADE_SCHEMA), pl.DataFrame(pending, schema=PENDING_SCHEMA)

    def take_witnesses(self) -> pl.DataFrame:
        """The witnesses held so far (``unique_id, ds, bound``), handed over and forgotten
        (the cycle parks them in the warehouse and gives them back to :meth:`corroborate`)."""
        frames, self._witnesses = self._witnesses, []
        return (
            pl.concat(frames)
            if frames
            else pl.DataFrame(schema={k: _WITNESS_SCHEMA[k] for k in ("unique_id", "ds", "bound")})
        )

    def corroborate(self, stored: pl.DataFrame | None = None, *, witnesses: pl.DataFrame | None = None) -> None:
        """Rule 3 over every part added: which pending grades an independent series lifts.
        ``stored``: newest stored grades of series outside the cycle (witnesses only);
        ``witnesses``: the parts' witnesses, when :meth:`take_witnesses` took them."""
        mates = _stored_mates(stored, self.own)
        held = self._witnesses if witnesses is None else [witnesses]
        witnesses_ = [w.with_columns(pl.lit(True).alias("own")) for w in held]
        if mates.height:
            ranked = self._ranked(mates).filter(pl.col("bound") >= self.lowest)
            witnesses_.append(ranked.select("unique_id", "ds", "bound", pl.lit(False).alias("own")))
        frame = pl.concat(witnesses_) if witnesses_ else pl.DataFrame(schema=_WITNESS_SCHEMA)
        self._lifted = _corroboration(frame, self.meta, cap=self.cap, floor=self.floor)
        self._witnesses = []

    def finish(self, pending: pl.DataFrame) -> pl.DataFrame:
        """Pending grades (from :meth:`add`) finished by rule 3; :meth:`corroborate` first."""
        if self._lifted is None:
            raise RuntimeError("FieldLevels.finish runs after corroborate()")
        rows = [
            self._row(r, None, None if r["steps"] is None else json.loads(r["steps"]), lifted=self._lifted)
            for r in pending.iter_rows(named=True)
        ]
        return pl.DataFrame(rows, schema=_GRADE_SCHEMA)

    def summary(self) -> str:
        counts = self.counts
        return (
            f"levels: {counts['hazard_model']} from field models; rarity grades above "
            f"{Level(self.cap).label} capped {counts['capped']}, corroborated {counts['corroborated']}; "
            f"seismic grades without a mainshock held at blue {counts['no_mainshock']}"
        )

    def _row(
        self,
        r: dict[str, Any],
        model_level: tuple[Level, dict[str, Any]] | None,
        steps: list[dict[str, Any]] | None,
        lifted: Mapping[tuple[str, datetime], list[str]] | None = None,
    ) -> dict[str, Any]:
        """The finished grade of one ranked row (rules 1 to 4, module docstring)."""
        counts = self.counts
        text = r["evidence"] or "{}"
        ev = json.loads(text)
        if model_level is None and steps is None and r["bound"] == r["rank"] <= self.cap:
            # Most rows of a first cycle: a rarity grade that no rule changes gains only its
            # basis, the first key in sorted order; the grading's own sorted JSON is kept
            # (re-encoding it would give the same text).
            level = Level(r["bound"])
            if ev and "basis" not in ev and ev.get("level") == level.label and min(ev) > "basis":
                return {
                    "unique_id": r["unique_id"],
                    "ds": r["ds"],
                    "level": level.label,
                    "score": r["score"],
                    "evidence": _RARITY_PREFIX + text[1:],
                }
        key = (r["unique_id"], r["ds"])
        rarity = Level(r["rank"])
        if model_level is not None:
            level, model = model_level
            ev.update(
                basis=_BASIS_MODEL,
                hazard=model,
                rarity={"level": rarity.label, "score": r["score"], "raw_level": ev.get("raw_level")},
                level=level.label,
            )
            counts["hazard_model"] += 1
        else:
            level = Level(r["bound"])
            ev["basis"] = _BASIS_RARITY
            if level < rarity:
                ev["seismic_cap"] = {
                    "capped_at": level.label,
                    "uncapped_level": rarity.label,
                    "reason": "no mainshock: a rate change alone is an unusual-activity notice",
                }
                counts["no_mainshock"] += 1
            if level > self.cap:
                if lifted is None:
                    raise RuntimeError(f"{key}: a grade above the cap is finished only after corroborate()")
                if key in lifted:
                    ev["corroborated_by"] = lifted[key]
                    counts["corroborated"] += 1
                else:
                    ev.update(capped_at=Level(self.cap).label, uncapped_level=level.label)
                    level = Level(self.cap)
                    counts["capped"] += 1
            ev["level"] = level.label
        if steps is not None:
            ev["steps"] = steps
        return {
            "unique_id": r["unique_id"],
            "ds": r["ds"],
            "level": level.label,
            "score": r["score"],
            "evidence": json.dumps(ev, sort_keys=True, default=str),
        }


#: Parked grades finished (and written) at a time by :meth:`HazardStep.finish`.
_FINISH_BATCH = 20_000

_WITNESS_SCHEMA: dict[str, pl.DataType] = {
    "unique_id": pl.Utf8(),
    "ds": pl.Datetime("us"),
    "bound": pl.Int64(),
    "own": pl.Boolean(),
}


def field_levels(
    grades: pl.DataFrame,
    *,
    series: pl.DataFrame,
    meta: pl.DataFrame,
    events: pl.DataFrame,
    settings: HazardSettings,
    at: datetime,
    stored: pl.DataFrame | None = None,
    market: MarketModelInput | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """The grade frame with the field models' levels and the capped rarity (module docstring).

    ``grades``: the rarity grades of this cycle; ``series``: its observations (their newest
    ``ds`` per series is where a hazard level is set); ``meta``: series metadata of every
    series that may corroborate (``unique_id, region, source, lat, lon, frequency``);
    ``events``: catalog events (``time, lat, lon, magnitude``), none at or after ``at``;
    ``stored``: newest stored grades of series outside this cycle (corroboration only).
    ``market``: the composite frame, crisis events and ``[markets]`` settings of this cycle's
    market step (rule 1c; None: no market level).
    Returns the grades (same contract) and notes for the run summary. One
    :class:`FieldLevels` part; the cycle adds its chunks one by one.
    """
    levels = FieldLevels(meta=meta, events=events, settings=settings, at=at, market=market)
    done, pending = levels.add(grades, series)
    levels.corroborate(stored)
    out = pl.concat([done, levels.finish(pending)]).sort("unique_id", "ds")
    return out, [*levels.notes, levels.summary()]


class HazardStep:
    """The levels step of the cycle, chunk by chunk (issue 21: bounded memory).

    :meth:`add` takes one chunk's rarity grades and observations, writes its finished levels
    to ``risk_grades`` and parks its grades above the cap (waiting for rule 3) and the
    witnesses of rule 3 (key and rank of the grades at or above the lowest agreeing rank) in
    the warehouse (``grade_stash``, ``grade_witnesses``: :func:`warehouse.grades.stash_grades`),
    in the caller's transaction, so a chunk committed on its own leaves what rule 3 needs
    for whichever run finishes. :meth:`finish` applies rule 3 once every chunk is in (with
    every parked witness and grade, an interrupted earlier run's included), writes the
    parked grades finished, ``batch`` at a time, empties the parking tables and returns each
    changed series' grade at its newest observation (what the alert step reads). Held across
    chunks in memory: one row per series (its newest observation's grade).
    """

    def __init__(
        self,
        wh: Warehouse,
        settings: Settings,
        *,
        meta: pl.DataFrame,
        clock: Clock,
        run_id: str,
        market: MarketModelInput | None = None,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.wh, self.run_id, self.progress = wh, run_id, progress
        self.market_settings = market.settings if market is not None else None
        self.meta = meta  # the changed series (region roll-up, the regions of stored mates)
        cfg = settings.hazards
        self.message = (
            f"      levels: aftershock forecasts for the earthquake counts, return periods for the "
            f"rivers, KLR signals for the market composite; rarity capped at "
            f"{cfg.rarity_cap} unless a second series of the region agrees"
        )
        self.levels = FieldLevels(
            meta=read_series_meta(wh),
            events=read_events(wh, before=clock.cutoff),
            settings=cfg,
            at=clock.judged_at,
            market=market,
        )
        self.counts = {"risk_grades": 0}
        self._newest: list[pl.DataFrame] = []

    def add(self, grades: pl.DataFrame, series: pl.DataFrame, *, label: str = "") -> None:
        """Levels of one chunk (``grades`` and ``series`` of the same series)."""
        self.progress(self.message + label)
        done, pending = self.levels.add(grades, series)
        self.counts["risk_grades"] += upsert_grades(self.wh, done, run_id=self.run_id)
        stash_grades(self.wh, pending, run_id=self.run_id)
        stash_witnesses(self.wh, self.levels.take_witnesses())
        last = series.group_by("unique_id").agg(pl.col("ds").max().alias("ds"))
        # detached: the joined rows' evidence would otherwise keep the whole chunk's evidence text
        graded = done.select("unique_id", "ds", "level", "score", "evidence")
        newest = last.join(graded, on=["unique_id", "ds"], how="left")
        self._newest.append(detached(newest))

    def finish(self) -> HazardStepResult:
        wh = self.wh
        regions = set(self.meta["region"].drop_nulls())
        others = self.levels.meta.filter(
            pl.col("region").is_in(list(regions)) & ~pl.col("unique_id").is_in(list(self.levels.own))
        )  # the stored grades of these may corroborate (on a first cycle: none)
        stored = read_latest_grades(wh, others.get_column("unique_id").to_list())
        self.levels.corroborate(stored, witnesses=read_witnesses(wh))
        newest = pl.concat(self._newest) if self._newest else pl.DataFrame(schema=_GRADE_SCHEMA)
        keys = newest.select("unique_id", "ds")
        fills = []
        for part in read_stashed_grades(wh, batch=_FINISH_BATCH):
            finished = self.levels.finish(part)
            self.counts["risk_grades"] += upsert_grades(wh, finished, run_id=self.run_id)
            fills.append(detached(finished.join(keys, on=["unique_id", "ds"])))  # not the batch's buffers
        clear_grade_stash(wh)
        if fills and newest.height:
            fill = pl.concat(fills)
            newest = newest.join(fill, on=["unique_id", "ds"], how="left", suffix="_f").select(
                "unique_id",
                "ds",
                *(pl.coalesce(f"{c}_f", c).alias(c) for c in ("level", "score", "evidence")),
            )
        result = HazardStepResult(latest=newest, notes=[*self.levels.notes, self.levels.summary()])
        result.counts.update(self.counts)
        if self.market_settings is not None:
            result.market = market_summary(newest.filter(pl.col("level").is_not_null()), self.market_settings)
        latest = newest.with_columns(pl.col("level").fill_null(Level.NONE.label), pl.col("score").fill_null(0.0))
        region_levels = anomaly.grade_regions(latest, self.meta) if latest.height else pl.DataFrame()
        for row in region_levels.iter_rows(named=True) if region_levels.height else []:
            if row["level"] != Level.NONE.label:
                result.notes.append(f"region {row['region']}: {row['level']} ({', '.join(row['series'])})")
        return result
