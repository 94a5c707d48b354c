"""The three event tables of issue 14, replayed on the bundled data without look-ahead.

What ``ews evaluate events`` adds to its market/seismic report (:func:`earthquake_table`,
:func:`river_table`, :func:`calm_table`, all from :func:`event_tables`). File reading and
wiring live here; the scoring rules are pure functions in :mod:`anomaly.evaluation`
(:func:`~anomaly.evaluation.window_skill`, :func:`~anomaly.evaluation.event_skill`,
:func:`~anomaly.evaluation.calm_false_alarms`), :mod:`anomaly.corroboration` (the rarity cap)
and :mod:`hazards` (the field models and the flood skill). Three ways of grading are compared
in every table:

- ``new``: the level of the field model where one exists (earthquake boxes: Reasenberg-Jones
  ``P(M >= 6 within 7 days)`` on :func:`hazards.aftershock_level`'s ladder after a mainshock,
  otherwise the rate test's blue "unusual activity" notice at most; the Choptank river: the
  state-conditional exceedance model on the return-period ladder), and for every other
  series the rarity grade capped at yellow unless an independent series in the same region
  agrees (:func:`anomaly.cap_rarity_levels`, the cycle's rule with its ``[hazards]
  rarity_cap`` and ``corroboration_level``);
- ``current``: today's quantile grading (:func:`anomaly.grade` on the calibrated score);
- ``iforest``: PyOD's IForest on the raw values, calibrated and graded the same way (as the
  existing ``iforest_baseline``; note it is fitted on the whole series, so it looks ahead).

Matching rules and calm periods are fixed in :data:`EVENT_TABLE_RULES` before any scoring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import anomaly
import hazards
from anomaly.evaluation import calm_false_alarms, event_skill, window_skill
from core.settings import HazardSettings
from core.vocabulary import LEVEL_RANK, Level
from hazards.aftershock_evaluation import reliability_table
from pipelines.hazard_step import flood_ladder

__all__ = [
    "EVENT_TABLE_RULES",
    "event_tables",
    "earthquake_table",
    "river_table",
    "river_fold",
    "calm_table",
    "earthquake_box_levels",
    "render_event_tables",
]

#: Independent series must agree within this time to lift the rarity cap in the replay.

#: Written down before scoring.
EVENT_TABLE_RULES: dict[str, Any] = {
    "earthquakes": {
        "issue_step_days": 7,
        "target": "at least one catalog M >= 6.0 in the box within [issue, issue + 7 days)",
        "target_warning": "level >= yellow in force at the issue",
        "listed_events": "NOAA/NCEI significant earthquakes, M >= 6.0, in the box, one per 30 days",
        "listed_rule": "alarm onset (level >= blue) within 30 days before the event (as market/seismic)",
        "new": "RJ P(M>=6 within 7 d) -> aftershock_level after a mainshock (find_mainshock); "
        "without one the rate test's blue notice (p < 1e-3 on a day of the past week) at most",
        "current": "anomaly.grade of the rate-test score; weekly issue = highest daily level of the 7 days before",
        "brier": "new: the RJ probability (background + sequence); current and iforest: the highest "
        "calibrated score of the 7 days before, read as a probability",
    },
    "rivers": {
        "events": "water-year peaks above the 2-year level (flood_events), onset = first day of the run",
        "warning": "level >= yellow, issued 1-3 days before the onset (flood_warning_skill, window 3)",
        "out_of_sample": "thresholds and the new model fitted on one half (water years 2000-2005 or "
        "2006-2011) and scored on the other",
        "new": "P(max flow of the next 3 days above the 2/5/20-year level | today's flow to level, 1- and "
        "2-day log rise, season, antecedent wetness chosen by hazards.select_wetness on the training half): "
        "hazards.FloodStateModel, a logistic regression fitted on the training half, on the cycle's [hazards] "
        "flood_ladder; at least the rung of [hazards] flood_observed_rungs whose return level the day's "
        "observed flow is above",
        "model_only": "the new levels without the observed rung (the model's probabilities alone)",
        "wetness_selection": "per fold, on the training half only: leave-one-water-year-out Brier score of "
        "P(above the 2-year level within 3 days), pooled; the lowest of hazards.WETNESS_VARIANTS wins, ties "
        "to the simpler",
        "flow_band": "the ladder this table measured before: the training half's frequency given today's "
        "flow band (one of 20) and whether it rose, on the EFAS ladder hazards.DEFAULT_FLOOD_LADDER",
        "brier": "new and flow_band: P(above the 2-year level within 3 days); current and iforest: the calibrated "
        "score as a probability; climatology: the training half's base rate",
    },
    "calm": {
        "false_alarm": "onset of a run of steps at orange or red starting in a calm step",
        "busy": {
            "earthquake boxes and series in the same region": "30 days either side of a listed "
            "(NOAA/NCEI) earthquake, 7 days either side of a catalog M >= 6 in the box",
            "US market series": "365 days before an NBER recession onset to 91 days after its end",
            "Choptank river": "7 days either side of each annual peak above the 2-year level",
            "other series": "no listed event: all time is calm",
        },
        "per_series_year": "false alarms / (calm days / 365.25), summed over series",
        "rarity_cap": "anomaly.cap_rarity_levels, the cycle's rule and [hazards] settings: every series' "
        "rarity grade witnesses (an earthquake box's at most blue without a mainshock)",
    },
}

_NOAA = "events/noaa_ncei_significant_earthquakes_asia_2005_2023.csv"
_CATALOGS = {
    "japan": "seismic/usgs_comcat_japan_2005_2014_processed.csv",
    "eastasia": "seismic/usgs_comcat_eastasia_m4_2018_2023.csv",
}
#: Tectonic setting of each box (hazards.aftershocks docstring).
_SETTINGS = {
    "tohoku": "subduction",
    "japan": "subduction",
    "sichuan_yunnan": "active_shallow_crust",
    "eastasia": "global",
}
_CHOPTANK = "hydro/usgs_01491000_choptank_daily_flow_cms.txt"
_MODELS = ("new", "current", "iforest")


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else (None if isinstance(v, float) else v))
        for k, v in d.items()
        if k != "lead_times_days"
    }


def _daily_levels(scores: pl.DataFrame, grading: dict[str, Any]) -> pl.DataFrame:
    """``unique_id, ds, level_rank, score`` on every scored step (grade's flagged rows, else none)."""
    if "detector" not in scores.columns:  # alarm_scores' ensemble frame: unique_id, ds, score
        scores = scores.with_columns(
            pl.lit(anomaly.ENSEMBLE_DETECTOR).alias("detector"), pl.col("score").alias("raw_score")
        )
    graded = anomaly.grade(
        scores,
        thresholds=grading["thresholds"],
        persistence_k=grading["k"],
        persistence_n=grading["n"],
        cooldown=grading["cooldown"],
    )
    ranks = graded.select(
        "unique_id", "ds", pl.col("level").replace_strict(LEVEL_RANK, return_dtype=pl.Int64).alias("level_rank")
    )
    return (
        scores.select("unique_id", "ds", "score")
        .join(ranks, on=["unique_id", "ds"], how="left")
        .with_columns(pl.col("level_rank").fill_null(0))
        .sort("unique_id", "ds")
    )


def _weekly(daily: pl.DataFrame, dates: Sequence[datetime]) -> pl.DataFrame:
    """Issue at ``d``: the highest level and score of the daily rows in ``[d - 7 days, d)``."""
    ds = daily.get_column("ds").to_numpy()
    rank = daily.get_column("level_rank").to_numpy()
    score = daily.get_column("score").to_numpy()
    rows = []
    for d in dates:
        sel = (ds >= np.datetime64(d - timedelta(days=7))) & (ds < np.datetime64(d))
        rows.append(
            (d, int(rank[sel].max()) if sel.any() else 0, float(score[sel].max()) if sel.any() else float("nan"))
        )
    return pl.DataFrame(
        rows, schema={"ds": pl.Datetime("us"), "level_rank": pl.Int64, "probability": pl.Float64}, orient="row"
    )


def earthquake_box_levels(
    events: pl.DataFrame, *, dates: Sequence[datetime], setting: str, m_test_simulations: int = 200
) -> pl.DataFrame:
    """New-model level and probability at each issue date from the events before it only.

    ``events``: the box's catalog (``time, magnitude``, ``lat, lon``). Returns ``ds,
    level_rank, probability, mainshock_magnitude``: after a mainshock (``find_mainshock``)
    :func:`hazards.aftershock_level` of the RJ ``P(M >= 6 within 7 days)``; without one the
    rate test's blue notice when its p-value fell below 1e-3 on a day of the week before
    ``d`` (:func:`hazards.background_rate_level`, :func:`hazards.cap_without_mainshock`).
    Truncating ``events`` after ``d`` leaves the row at ``d`` unchanged (tested).
    """
    ev = events.select("time", "magnitude", *[c for c in ("lat", "lon") if c in events.columns]).sort("time")
    result = hazards.evaluate_aftershock_forecasts(
        ev,
        dates=dates,
        setting=setting,
        horizon_days=7.0,
        target_magnitude=6.0,
        count_magnitude=5.0,
        include_rate_test=False,
        m_test_simulations=m_test_simulations,
    )
    rj = result.forecasts.filter(pl.col("model") == "reasenberg_jones").sort("ds")
    indicators = hazards.seismic_indicators(ev.select("time", "magnitude"))
    p_ds = indicators.get_column("ds").to_numpy()
    p_val = indicators.get_column("rate_p_value").fill_null(1.0).to_numpy()
    rows = []
    for d, prob, mag in rj.select("ds", "probability", "mainshock_magnitude").iter_rows():
        # rate test days end at midnight: the day before d is complete at d, d itself is not.
        sel = (p_ds >= np.datetime64(d - timedelta(days=7))) & (p_ds < np.datetime64(d - timedelta(days=1)) + 1)
        min_p = float(p_val[sel].min()) if sel.any() else 1.0
        has_main = mag is not None
        level = max(hazards.aftershock_level(prob) if has_main else Level.NONE, hazards.background_rate_level(min_p))
        rows.append((d, int(hazards.cap_without_mainshock(level, has_mainshock=has_main)), prob, mag))
    return pl.DataFrame(
        rows,
        schema={
            "ds": pl.Datetime("us"),
            "level_rank": pl.Int64,
            "probability": pl.Float64,
            "mainshock_magnitude": pl.Float64,
        },
        orient="row",
    )


def _flags(levels: pl.DataFrame, floor: Level) -> pl.DataFrame:
    return levels.select("ds", (pl.col("level_rank") >= int(floor)).alias("flag"), "probability")


def _busy(times: Sequence[datetime], days: float) -> list[tuple[datetime, datetime]]:
    return [(t - timedelta(days=days), t + timedelta(days=days)) for t in times]


def _calm_dict(levels: pl.DataFrame, busy: Sequence[tuple[datetime, datetime]]) -> dict[str, Any]:
    return _rounded(calm_false_alarms(levels.select("ds", pl.col("level_rank").alias("level")), busy).as_dict())


def earthquake_table(
    data_dir: Path,
    *,
    grading: dict[str, Any],
    significant_quakes: Callable[[Path, dict[str, float], float], list[datetime]],
    baseline_scores: Callable[[pl.DataFrame], pl.DataFrame],
) -> tuple[dict[str, Any], dict[str, pl.DataFrame], dict[str, list[tuple[datetime, datetime]]]]:
    """Per region box: the table, the new weekly levels (for the calm table) and its busy spans."""
    from ingest.sources import parse
    from ingest.sources.catalogue import SEISMIC_REGIONS

    table: dict[str, Any] = {}
    new_levels: dict[str, pl.DataFrame] = {}
    busy_by_box: dict[str, list[tuple[datetime, datetime]]] = {}
    for catalog, relative in _CATALOGS.items():
        parsed = parse(data_dir / relative, "usgs_catalog", regions=SEISMIC_REGIONS[catalog])
        if parsed.events is None:  # a catalog parser always returns its events
            raise RuntimeError(f"internal error: the usgs_catalog parser returned no events for {relative}")
        for box in SEISMIC_REGIONS[catalog]:
            ev = parsed.events.filter(
                pl.col("lat").is_between(box["min_lat"], box["max_lat"])
                & pl.col("lon").is_between(box["min_lon"], box["max_lon"])
            )
            first: datetime = ev.get_column("time").min()  # type: ignore[assignment]
            last: datetime = ev.get_column("time").max()  # type: ignore[assignment]
            # A year of training for the Poisson background, then one issue a week (Mondays).
            start = datetime(first.year, first.month, first.day) + timedelta(days=365)
            start += timedelta(days=(7 - start.weekday()) % 7)
            dates = [start + timedelta(days=7 * i) for i in range(int((last - start).days // 7))]
            new = earthquake_box_levels(ev, dates=dates, setting=_SETTINGS.get(box["id"], "global"))
            indicators = hazards.seismic_indicators(ev)
            engine = hazards.seismic_rate_scores(indicators, unique_id=box["id"])
            counts = indicators.select(
                pl.lit(box["id"]).alias("unique_id"), "ds", pl.col("events").cast(pl.Float64).alias("y")
            )
            plain = baseline_scores(counts).filter(pl.col("ds") >= engine.get_column("ds").min())
            levels = {
                "new": new,
                "current": _weekly(_daily_levels(engine, grading), dates),
                "iforest": _weekly(_daily_levels(plain, grading), dates),
            }
            m6 = ev.filter(pl.col("magnitude") >= 6.0 - 1e-9).get_column("time").to_list()
            listed = significant_quakes(data_dir / _NOAA, box, 6.0)
            busy = _busy(listed, 30) + _busy(m6, 7)
            busy_by_box[box["id"]] = busy
            new_levels[box["id"]] = new
            rows = {}
            for who in _MODELS:
                lv = levels[who]
                target = _rounded(window_skill(_flags(lv, Level.YELLOW), m6, window=timedelta(days=7)).as_dict())
                noaa = _rounded(
                    event_skill(_flags(lv, Level.BLUE).select("ds", "flag"), listed, lead=timedelta(days=30)).as_dict()
                )
                rows[who] = {"m6_within_7d": target, "listed": noaa, "calm": _calm_dict(lv, busy)}
            table[box["id"]] = {
                "issues": len(dates),
                "first_issue": f"{dates[0]:%Y-%m-%d}",
                "last_issue": f"{dates[-1]:%Y-%m-%d}",
                "setting": _SETTINGS.get(box["id"], "global"),
                **rows,
            }
    return table, new_levels, busy_by_box


# -- rivers -----------------------------------------------------------------------------------------
_FLOOD_WINDOW = 3


def _flood_features(y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Cell of each day: flow bin (by the training edges) x rose since yesterday."""
    rose = np.concatenate([[False], y[1:] > y[:-1]])
    return np.searchsorted(edges, y, side="right") * 2 + rose.astype(np.int64)


def _analogue_probability(
    train: pl.DataFrame, test: pl.DataFrame, threshold_value: float, *, bins: int = 20
) -> np.ndarray:
    """P(flow above ``threshold_value`` within 3 days | today's cell), counted on the training half."""
    outcomes = hazards.exceedance_outcomes(train, threshold_value=threshold_value, window_days=_FLOOD_WINDOW)
    y_train = train.sort("ds").get_column("y").to_numpy()
    edges = np.quantile(y_train, np.linspace(0, 1, bins + 1)[1:-1])
    joined = train.sort("ds").join(outcomes.select("ds", "observed"), on="ds", how="left")
    cells = _flood_features(joined.get_column("y").to_numpy(), edges)
    observed = joined.get_column("observed").to_numpy()
    known = np.array([o is not None for o in observed])
    hit = np.array([bool(o) for o in observed])
    base = float(hit[known].mean()) if known.any() else 0.0
    n_cells = (bins + 1) * 2
    count = np.bincount(cells[known], minlength=n_cells).astype(np.float64)
    k = np.bincount(cells[known], weights=hit[known].astype(np.float64), minlength=n_cells)
    prob = (k + base) / (count + 1.0)  # one pseudo-observation at the base rate
    return prob[_flood_features(test.sort("ds").get_column("y").to_numpy(), edges)]


def _ladder(p_by_period: dict[float, np.ndarray], ladder: Sequence[hazards.FloodRung]) -> np.ndarray:
    n = len(next(iter(p_by_period.values())))
    rank = np.zeros(n, dtype=np.int64)
    for rung in ladder:
        holds = p_by_period[float(rung.period_years)] >= rung.min_probability
        rank = np.where(holds, np.maximum(rank, int(rung.level)), rank)
    return rank


#: Warning thresholds on the new model's P(> 2-year level within 3 days) reported beside the
#: ladder's (the trade-off a duty office chooses on; none of them sets the ladder).
_TRADE_OFF = (0.05, 0.1, 0.2, 0.3, 0.5)


def river_fold(
    train: pl.DataFrame,
    test: pl.DataFrame,
    *,
    periods: Sequence[float],
    window_days: int = _FLOOD_WINDOW,
    wetness: str = "auto",
) -> tuple[pl.DataFrame, hazards.FloodStateModel, pl.DataFrame]:
    """One out-of-sample fold: return levels and the state model fitted on ``train`` alone,
    probabilities for every day of ``test``. Returns ``(thresholds, model, probabilities)``,
    the last as :meth:`hazards.FloodStateModel.exceedance` gives it (``cutoff`` = issue day).
    ``wetness``: a name of :data:`hazards.WETNESS_VARIANTS`, or ``"auto"``: the variant
    :func:`hazards.select_wetness` chooses on ``train`` alone (the model's ``wetness``)."""
    thresholds = hazards.return_period_thresholds(train, periods=periods)
    if wetness == "auto":
        wetness, _ = hazards.select_wetness(train, thresholds, window_days=window_days)
    model = hazards.FloodStateModel(window_days=window_days, wetness=hazards.WETNESS_VARIANTS[wetness]).fit(
        train, thresholds
    )
    return thresholds, model, model.exceedance(test, thresholds)


def river_table(
    data_dir: Path,
    *,
    grading: dict[str, Any],
    baseline_scores: Callable[[pl.DataFrame], pl.DataFrame],
    hazard_settings: HazardSettings,
) -> tuple[dict[str, Any], pl.DataFrame]:
    """The Choptank table (two out-of-sample halves summed) and the new daily levels, on the
    cycle's ``[hazards] flood_ladder``. The second fold is fitted on the later water years and
    scored on the earlier ones: out of sample, but not a forward replay (docs/anomaly.md).

    Rows: ``new`` (the state-conditional model, :func:`river_fold`), ``current``, ``iforest``
    and ``flow_band`` (the ladder this table measured before: the training half's frequency
    per flow band and direction, :func:`_analogue_probability`, on the EFAS ladder
    :data:`hazards.DEFAULT_FLOOD_LADDER`). Also the new model's reliability table and its
    POD/FAR at other warning probabilities (``trade_off``)."""
    ladder = flood_ladder(hazard_settings)
    periods = tuple(sorted({float(r.period_years) for r in ladder} | {2.0}))
    old_ladder = hazards.DEFAULT_FLOOD_LADDER
    old_periods = {float(r.period_years) for r in old_ladder}
    from ingest.sources import parse
    from ingest.sources.catalogue import bundled_catalogue

    entry = next(e for e in bundled_catalogue(data_dir) if e.relative_path == _CHOPTANK)  # the cycle's unique_id
    parsed = parse(data_dir / entry.relative_path, entry.format, **entry.options)
    series = parsed.series.select("unique_id", "ds", "y").sort("ds")
    uid = series.get_column("unique_id")[0]
    current = _daily_levels(anomaly.alarm_scores(series), grading)
    plain = _daily_levels(baseline_scores(series), grading)
    water_year = pl.col("ds").dt.year() + (pl.col("ds").dt.month() >= 10).cast(pl.Int32)
    first_half = series.filter(water_year <= 2005)
    second_half = series.filter(water_year >= 2006)
    who_rows = (*_MODELS, "model_only", "flow_band")
    per_half: dict[str, dict[str, Any]] = {who: {} for who in who_rows}
    trade: dict[float, list[Any]] = {p: [] for p in _TRADE_OFF}
    new_parts, halves, p_all, o_all = [], [], [], []
    for name, train, test in (("2006-2011", first_half, second_half), ("2000-2005", second_half, first_half)):
        wetness = hazard_settings.flood_wetness
        selection = None
        if wetness == "auto":  # chosen on the training half alone (hazards.select_wetness)
            base_thresholds = hazards.return_period_thresholds(train, periods=periods)
            wetness, selection = hazards.select_wetness(train, base_thresholds, window_days=_FLOOD_WINDOW)
        thresholds, model, exceed = river_fold(train, test, periods=periods, wetness=wetness)
        values = dict(zip(thresholds.get_column("period_years"), thresholds.get_column("threshold_value"), strict=True))
        ds = test.get_column("ds")
        days = pl.DataFrame({"cutoff": ds})
        p = {  # one probability per test day (a day without an observation has none: 0)
            float(period): days.join(exceed.filter(pl.col("period_years") == period), on="cutoff", how="left")
            .get_column("p_exceed")
            .fill_null(0.0)
            .to_numpy()
            for period in values
        }
        # rungs whose return level the training half never went above are not issued (as in the cycle)
        supported, unsupported = model.supported_ladder(
            ladder, thresholds, min_episodes=hazard_settings.flood_min_episodes
        )
        model_rank = _ladder(p, supported)
        # the gauge above a return level now: at least that rung (the cycle's flood_observed_rungs)
        observed_rank, _ = hazards.observed_rungs(
            test.get_column("y").to_numpy(), values, rungs=hazard_settings.flood_observed_rungs
        )
        new_rank = np.maximum(model_rank, observed_rank)
        new_parts.append(pl.DataFrame({"unique_id": uid, "ds": ds, "level_rank": new_rank, "p2": p[2.0]}))
        old_p = {period: _analogue_probability(train, test, values[period]) for period in old_periods}
        old_rank = _ladder(old_p, old_ladder)
        base = hazards.exceedance_base_rate(train, threshold_value=values[2.0], window_days=_FLOOD_WINDOW)
        halves.append(
            {
                "scored_water_years": name,
                "thresholds_m3s": {f"rp{int(k)}": round(v, 2) for k, v in values.items()},
                "state_model": model.summary(),
                "unsupported_rungs": unsupported,
                "wetness": wetness,
                "wetness_selection": None
                if selection is None
                else [{**r, "brier": round(r["brier"], 6)} for r in selection.iter_rows(named=True)],
                "days_raised_by_observed_rung": int((observed_rank > model_rank).sum()),
            }
        )
        yellow = int(Level.YELLOW)
        runs: dict[str, tuple[pl.DataFrame, np.ndarray | None]] = {
            "new": (pl.DataFrame({"ds": ds, "p_exceed": (new_rank >= yellow).astype(np.float64)}), p[2.0]),
            "model_only": (pl.DataFrame({"ds": ds, "p_exceed": (model_rank >= yellow).astype(np.float64)}), p[2.0]),
            "flow_band": (pl.DataFrame({"ds": ds, "p_exceed": (old_rank >= yellow).astype(np.float64)}), old_p[2.0]),
        }
        for who, daily in (("current", current), ("iforest", plain)):
            part = daily.filter(pl.col("ds").is_in(ds.implode()))
            flag = part.select("ds", (pl.col("level_rank") >= yellow).cast(pl.Float64).alias("p_exceed"))
            runs[who] = (flag, None)
        outcomes = hazards.exceedance_outcomes(test, threshold_value=values[2.0], window_days=_FLOOD_WINDOW)
        for who, (flags, probability) in runs.items():
            skill = hazards.flood_warning_skill(
                flags, test, threshold_value=values[2.0], base_rate=base, window_days=_FLOOD_WINDOW, p_warn=0.5
            )
            if probability is None:  # the Brier score of the calibrated score, read as a probability
                daily = current if who == "current" else plain
                scored = daily.join(outcomes.select("ds", "observed"), on="ds", how="inner")
                o = scored.get_column("observed").cast(pl.Float64).to_numpy()
                brier = float(np.mean((scored.get_column("score").to_numpy() - o) ** 2))
            else:  # the Brier score of the model's P(> 2-year level within 3 days)
                probs = pl.DataFrame({"ds": ds, "p_exceed": probability})
                brier = hazards.flood_warning_skill(
                    probs, test, threshold_value=values[2.0], base_rate=base, window_days=_FLOOD_WINDOW
                ).brier
            per_half[who][name] = {**skill.as_dict(), "brier": brier}
        scored = pl.DataFrame({"ds": ds, "p": p[2.0]}).join(outcomes.select("ds", "observed"), on="ds", how="inner")
        p_all.append(scored.get_column("p").to_numpy())
        o_all.append(scored.get_column("observed").to_numpy())
        for p_warn in _TRADE_OFF:
            trade[p_warn].append(
                hazards.flood_warning_skill(
                    pl.DataFrame({"ds": ds, "p_exceed": p[2.0]}),
                    test,
                    threshold_value=values[2.0],
                    base_rate=base,
                    window_days=_FLOOD_WINDOW,
                    p_warn=p_warn,
                )
            )
    table: dict[str, Any] = {"series": uid, "halves": halves}
    for who in who_rows:
        parts = list(per_half[who].values())
        total = {k: sum(int(h[k]) for h in parts) for k in ("events", "hits", "misses", "alarms", "false_alarms")}
        n = [int(h["forecasts"]) for h in parts]
        brier = sum(h["brier"] * k for h, k in zip(parts, n, strict=True)) / sum(n)
        clim = sum(h["brier_climatology"] * k for h, k in zip(parts, n, strict=True)) / sum(n)
        leads = [x for h in parts for x in h["lead_times_days"]]
        table[who] = _rounded({**_summed(total, leads), "brier": brier, "brier_climatology": clim})
        table[who]["brier_skill_score"] = round(1.0 - brier / clim, 4) if clim > 0 else None
    table["trade_off"] = [
        _rounded(
            {
                "p_warn": p_warn,
                **_summed(
                    {
                        k: sum(int(getattr(sk, k)) for sk in skills)
                        for k in ("events", "hits", "misses", "alarms", "false_alarms")
                    },
                    [x for sk in skills for x in sk.lead_times_days],
                ),
            }
        )
        for p_warn, skills in trade.items()
    ]
    reliability = reliability_table(np.concatenate(p_all), np.concatenate(o_all))
    table["reliability"] = [_rounded(r) for r in reliability.iter_rows(named=True)]
    table["ladder"] = {r.level.label: [r.period_years, r.min_probability] for r in ladder}
    table["flow_band_ladder"] = {r.level.label: [r.period_years, r.min_probability] for r in old_ladder}
    return table, pl.concat(new_parts).sort("ds")


def _summed(total: dict[str, int], leads: Sequence[float]) -> dict[str, Any]:
    hits, misses, false = total["hits"], total["misses"], total["false_alarms"]
    return {
        **total,
        "pod": hits / (hits + misses) if hits + misses else float("nan"),
        "far": false / total["alarms"] if total["alarms"] else 0.0,
        "csi": hits / (hits + misses + false) if hits + misses + false else float("nan"),
        "median_lead_days": float(np.median(leads)) if leads else None,
    }


# -- calm-period false alarms over every bundled series -----------------------------------------------
def calm_table(
    data_dir: Path,
    *,
    grading: dict[str, Any],
    baseline_scores: Callable[[pl.DataFrame], pl.DataFrame],
    quake_levels: dict[str, pl.DataFrame],
    quake_busy: dict[str, list[tuple[datetime, datetime]]],
    river_levels: pl.DataFrame,
    recession_spans: Sequence[tuple[datetime, datetime]],
    hazard_settings: HazardSettings,
) -> dict[str, Any]:
    """False reds+oranges per series-year in calm time, per bundled series and in total."""
    from ingest.sources import parse
    from ingest.sources.catalogue import SEISMIC_REGIONS, bundled_catalogue

    series_parts, meta_parts = [], []
    for entry in bundled_catalogue(data_dir):
        parsed = parse(data_dir / entry.relative_path, entry.format, **entry.options)
        series_parts.append(parsed.series.select("unique_id", "ds", "y"))
        meta_parts.append(
            parsed.meta.select(
                "unique_id",
                "domain",
                "region",
                "source",
                *[c for c in ("variable", "lat", "lon", "frequency") if c in parsed.meta.columns],
            )
        )
    series = pl.concat(series_parts).sort("unique_id", "ds")
    meta = pl.concat(meta_parts, how="diagonal_relaxed").unique("unique_id", keep="first")
    current = _daily_levels(anomaly.alarm_scores(series), grading)
    plain = pl.concat(
        [_daily_levels(baseline_scores(part), grading) for _, part in series.group_by("unique_id", maintain_order=True)]
    )
    # The catalog parser names a box's series <box id>_count, _energy and _max_mag.
    box_ids = [box["id"] for boxes in SEISMIC_REGIONS.values() for box in boxes]
    box_of = {
        f"{box}_{variable}": box
        for box in box_ids
        for variable in ("count", "energy", "max_mag")
        if f"{box}_{variable}" in set(meta.get_column("unique_id").to_list())
    }
    region_box = {box["name"]: box["id"] for boxes in SEISMIC_REGIONS.values() for box in boxes}
    river_uid = river_levels.get_column("unique_id")[0]
    # New levels: hazard models where they exist, the capped rarity grade elsewhere.
    hazard_rows = [
        quake_levels[box].select(pl.lit(uid).alias("unique_id"), "ds", "level_rank") for uid, box in box_of.items()
    ] + [river_levels.select("unique_id", "ds", "level_rank")]
    hazard = pl.concat(hazard_rows)
    label = {int(lv): lv.label for lv in Level}
    # Witnesses: every series' rarity grade (an earthquake box's at most blue on a day without
    # a mainshock at the latest weekly issue, the cycle's rule 2); only the rarity rows are capped.
    mainshock = pl.concat(
        [
            quake_levels[box].select(
                pl.lit(uid).alias("unique_id"), "ds", pl.col("mainshock_magnitude").is_not_null().alias("_main")
            )
            for uid, box in box_of.items()
        ]
    ).sort("ds")
    witnesses = (
        current.select("unique_id", "ds", "level_rank")
        .sort("ds")
        .join_asof(mainshock, on="ds", by="unique_id", strategy="backward", check_sortedness=False)
        .with_columns(
            pl.when(pl.col("unique_id").is_in(list(box_of)) & ~pl.col("_main").fill_null(False))
            .then(pl.min_horizontal("level_rank", pl.lit(int(Level.BLUE))))
            .otherwise(pl.col("level_rank"))
            .replace_strict(label, return_dtype=pl.Utf8)
            .alias("level"),
            ~pl.col("unique_id").is_in(list(box_of) + [river_uid]).alias("_rarity"),
        )
    )
    capped = anomaly.cap_rarity_levels(
        witnesses,
        meta,
        cap=Level.parse(hazard_settings.rarity_cap),
        floor=Level.parse(hazard_settings.corroboration_level),
        subject="_rarity",
    )
    rarity_new = capped.filter(pl.col("_rarity")).select(
        "unique_id", "ds", pl.col("level").replace_strict(LEVEL_RANK, return_dtype=pl.Int64).alias("level_rank")
    )
    lifted = capped.filter(pl.col("_rarity") & (pl.col("corroborated_by").list.len() > 0)).height
    new = pl.concat([rarity_new, hazard])
    rows = []
    for uid, domain, region in meta.select("unique_id", "domain", "region").sort("unique_id").iter_rows():
        if uid in box_of:
            busy = quake_busy[box_of[uid]]
        elif region in region_box and region_box[region] in quake_busy:
            busy = quake_busy[region_box[region]]
        elif domain == "market" and region == "US":
            busy = list(recession_spans)
        elif uid == river_uid:
            busy = [
                (t - timedelta(days=7), t + timedelta(days=7))
                for t in _river_peaks(series.filter(pl.col("unique_id") == uid))
            ]
        else:
            busy = []
        row: dict[str, Any] = {"series": uid, "domain": domain, "model": _model_name(uid, box_of, river_uid)}
        for who, frame in (("new", new), ("current", current), ("iforest", plain)):
            part = frame.filter(pl.col("unique_id") == uid).select("ds", pl.col("level_rank").alias("level"))
            if who == "new" and uid not in box_of:
                # every step of the series: the capped grade, else none
                part = (
                    current.filter(pl.col("unique_id") == uid)
                    .select("ds")
                    .join(part, on="ds", how="left")
                    .with_columns(pl.col("level").fill_null(0))
                )
            row[who] = _rounded(calm_false_alarms(part, busy).as_dict())
        rows.append(row)
    totals: dict[str, Any] = {}
    for who in _MODELS:
        onsets = sum(int(r[who]["onsets"]) for r in rows)
        years = sum(float(r[who]["series_years"]) for r in rows)
        totals[who] = {
            "onsets": onsets,
            "series_years": round(years, 2),
            "per_series_year": round(onsets / years, 4) if years else None,
        }
    cur = totals["current"]["per_series_year"]
    ratio = totals["new"]["per_series_year"] / cur if cur else None
    return {
        "series": rows,
        "totals": totals,
        "ratio_new_to_current": None if ratio is None else round(ratio, 4),
        "rarity_grades_lifted_by_corroboration": lifted,
    }


def _model_name(uid: str, box_of: dict[str, str], river_uid: str) -> str:
    if uid in box_of:
        return "reasenberg_jones"
    return "return_period" if uid == river_uid else "statistical_rarity (capped at yellow)"


def _river_peaks(series: pl.DataFrame) -> list[datetime]:
    thresholds = hazards.return_period_thresholds(series)
    two = float(thresholds.filter(pl.col("period_years") == 2.0).get_column("threshold_value")[0])
    return hazards.flood_events(series, threshold_value=two).get_column("peak_ds").to_list()


def event_tables(
    data_dir: Path,
    *,
    grading: dict[str, Any],
    significant_quakes: Callable[[Path, dict[str, float], float], list[datetime]],
    baseline_scores: Callable[[pl.DataFrame], pl.DataFrame],
    recession_spans: Sequence[tuple[datetime, datetime]],
    hazard_settings: HazardSettings,
) -> dict[str, Any]:
    """``{"earthquakes", "rivers", "calm_false_alarms", "event_table_rules"}`` (module docstring)."""
    quakes, quake_levels, quake_busy = earthquake_table(
        data_dir, grading=grading, significant_quakes=significant_quakes, baseline_scores=baseline_scores
    )
    rivers, river_levels = river_table(
        data_dir, grading=grading, baseline_scores=baseline_scores, hazard_settings=hazard_settings
    )
    calm = calm_table(
        data_dir,
        grading=grading,
        baseline_scores=baseline_scores,
        quake_levels=quake_levels,
        quake_busy=quake_busy,
        river_levels=river_levels,
        recession_spans=recession_spans,
        hazard_settings=hazard_settings,
    )
    return {"event_table_rules": EVENT_TABLE_RULES, "earthquakes": quakes, "rivers": rivers, "calm_false_alarms": calm}


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_event_tables(report: dict[str, Any]) -> list[str]:
    """The three tables as text lines (the ``--json`` report holds every figure)."""
    lines = [
        "Earthquakes (weekly issues; M>=6 within 7 days: warning = yellow+; listed NOAA/NCEI: blue+ within 30 d)",
        "box            who      M6 ev hits miss FA   POD  FAR  CSI  lead  Brier | listed ev hits FA  POD  FAR"
        "  | calm R+O/yr",
    ]
    for box, block in report["earthquakes"].items():
        for who in _MODELS:
            t, li, c = block[who]["m6_within_7d"], block[who]["listed"], block[who]["calm"]
            lines.append(
                f"{box:<14} {who:<8} {t['events']:>5} {t['hits']:>4} {t['misses']:>4} {t['false_alarms']:>4} "
                f"{_f(t['pod'])} {_f(t['far'])} {_f(t['csi'])} {_f(t['median_lead_days'], 1):>5} {_f(t['brier'], 3)} "
                f"| {li['events']:>9} {li['hits']:>4} {li['false_alarms']:>3} {_f(li['pod'])} {_f(li['far'])} "
                f"| {_f(c['per_series_year'])}"
            )
    rivers = report["rivers"]
    lines += [
        "",
        f"Rivers ({rivers['series']}; annual peaks above the 2-year level, warning yellow+ 1-3 days before onset)",
        "who      events hits miss alarms FA  POD  FAR  CSI  lead  Brier  clim   BSS",
    ]
    for who in (*_MODELS, "model_only", "flow_band"):
        r = rivers[who]
        lines.append(
            f"{who:<8} {r['events']:>6} {r['hits']:>4} {r['misses']:>4} {r['alarms']:>6} {r['false_alarms']:>3} "
            f"{_f(r['pod'])} {_f(r['far'])} {_f(r['csi'])} {_f(r['median_lead_days'], 1):>5} {_f(r['brier'], 4)} "
            f"{_f(r['brier_climatology'], 4)} {_f(r['brier_skill_score'])}"
        )
    lines += [
        f"wetness ({h['scored_water_years']} scored): {h['wetness']}; days the observed rung raised: "
        f"{h['days_raised_by_observed_rung']}; inner Brier "
        + ", ".join(f"{r['variant']} {r['brier']:.6f}" for r in h["wetness_selection"] or [])
        for h in rivers["halves"]
    ]
    lines += ["new model's P(> 2-year level within 3 days) as the warning, other thresholds (trade-off):"]
    lines += [
        f"  p >= {t['p_warn']:.2f}: hits {t['hits']}/{t['events']} alarms {t['alarms']} false {t['false_alarms']} "
        f"POD {_f(t['pod'])} FAR {_f(t['far'])}"
        for t in rivers["trade_off"]
    ]
    lines += ["reliability of the new P(> 2-year level within 3 days), both halves out of sample:"]
    lines += [
        f"  [{r['bin_low']:.2f}, {r['bin_high']:.2f}) n {r['n']:>5} mean p {r['mean_forecast']:.3f} "
        f"observed {r['observed_frequency']:.3f}"
        for r in rivers["reliability"]
    ]
    calm = report["calm_false_alarms"]
    totals = calm["totals"]
    lines += [
        "",
        "Calm-period false reds+oranges per series-year (every bundled series)",
        "who      onsets series-years  per series-year",
    ]
    for who in _MODELS:
        t = totals[who]
        lines.append(f"{who:<8} {t['onsets']:>6} {t['series_years']:>12.1f}  {_f(t['per_series_year'], 4)}")
    lines.append(f"ratio new / current: {_f(calm['ratio_new_to_current'], 3)}")
    return lines
