"""The state-conditional flood model (hazards.flood_state) on the bundled Choptank record.

Real data: USGS 01491000, Choptank River near Greensboro, MD, daily mean flow, water years
2000-2011 (data/PROVENANCE.md). The evaluation's split: fitted on water years 2000-2005,
scored on 2006-2011 (and the reverse in `ews evaluate events`).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import hazards
from core.errors import FrameError
from core.settings import load_settings
from hazards.aftershock_evaluation import reliability_table
from ingest.sources import bundled_catalogue, parse
from pipelines.event_tables import river_fold
from pipelines.hazard_step import field_levels

DATA = Path(__file__).resolve().parent.parent / "data"
CHOPTANK = "hydro/usgs_01491000_choptank_daily_flow_cms.txt"
PERIODS = (2.0, 5.0, 20.0)


def _parsed():  # noqa: ANN202
    item = next(b for b in bundled_catalogue(DATA) if b.relative_path == CHOPTANK)
    return parse(DATA / item.relative_path, item.format, **item.options)


@pytest.fixture(scope="module")
def flow() -> pl.DataFrame:
    return _parsed().series.select("unique_id", "ds", "y").sort("ds")


def _halves(flow: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    water_year = pl.col("ds").dt.year() + (pl.col("ds").dt.month() >= 10).cast(pl.Int32)
    return flow.filter(water_year <= 2005), flow.filter(water_year >= 2006)


@pytest.fixture(scope="module")
def fold(flow: pl.DataFrame) -> tuple[pl.DataFrame, hazards.FloodStateModel, pl.DataFrame]:
    train, test = _halves(flow)
    return river_fold(train, test, periods=PERIODS)


def test_probabilities_are_probabilities_and_fall_as_the_level_rises(fold) -> None:
    thresholds, model, exceed = fold
    p = exceed.get_column("p_exceed").to_numpy()
    assert np.isfinite(p).all() and ((p > 0.0) & (p < 1.0)).all()
    wide = exceed.pivot(on="threshold", index="cutoff", values="p_exceed")
    assert (wide["rp5"] <= wide["rp2"]).all() and (wide["rp20"] <= wide["rp5"]).all()
    # the window is the next three days after each issue day
    row = exceed.row(0, named=True)
    assert (row["window_start"] - row["cutoff"]).days == 1 and (row["window_end"] - row["cutoff"]).days == 3
    assert model.summary()["window_days"] == 3


def test_for_a_fixed_flow_the_probability_rises_with_todays_rise(fold) -> None:
    thresholds, model, _ = fold
    two = float(thresholds.filter(pl.col("period_years") == 2.0).get_column("threshold_value")[0])
    # today's flow and the flow two days ago fixed (20 and 10 m3/s); yesterday's flow varies,
    # so today's 1-day rise goes from a fall to a fourfold rise
    rises = np.linspace(-1.0, math.log(4.0), 25)
    for day in (15, 105, 196, 288):  # one day in each season
        p = model.probability(flow=20.0, rise_1d=rises, rise_2d=math.log(2.0), day_of_year=day, level=two)
        assert (np.diff(p) >= 0).all(), (day, p)
        assert p[-1] > 3 * p[0]
    # and for a fixed rise, a higher flow is closer to the level
    flows = np.array([2.0, 5.0, 10.0, 20.0, 40.0])
    p = model.probability(flow=flows, rise_1d=0.5, rise_2d=0.7, day_of_year=80, level=two)
    assert (np.diff(p) > 0).all()


def test_the_fit_never_sees_the_evaluation_half(flow: pl.DataFrame) -> None:
    train, test = _halves(flow)
    thresholds, model, exceed = river_fold(train, test, periods=PERIODS)
    # triple every flow of the evaluation half: the fit is the same, only the scores change
    changed = test.with_columns(pl.col("y") * 3.0)
    thresholds2, model2, exceed2 = river_fold(train, changed, periods=PERIODS)
    assert thresholds.equals(thresholds2)
    assert model.coef_ == model2.coef_ and model.intercept_ == model2.intercept_
    assert model.summary() == model2.summary()
    assert not exceed.get_column("p_exceed").equals(exceed2.get_column("p_exceed"))
    # the last training days whose 3-day window would reach into the other half do not train,
    # nor the first ones without their state: two days for the rises, half of a 30-day (15) or
    # 7-day (4) antecedent window for the wetness features the fold chose
    history = 2
    if any(w.startswith("log_wet_7d") for w in model.wetness):
        history = 4
    if any(w in ("log_wet_30d", "log_baseflow_30d") for w in model.wetness):
        history = 15
    assert model.first_day_ == date(1999, 10, 1 + history) and model.last_day_ <= date(2005, 9, 27)
    assert model.training_days_ == train.height - history - 3


def test_the_probability_at_t_ignores_flows_after_t(fold, flow: pl.DataFrame) -> None:
    _, test = _halves(flow)
    thresholds, model, full = fold
    t = datetime(2010, 3, 13)
    cut = model.exceedance(test.filter(pl.col("ds") <= t), thresholds)
    assert cut.get_column("cutoff").max() == t
    mine = full.filter(pl.col("cutoff") <= t)
    np.testing.assert_array_equal(mine.get_column("p_exceed").to_numpy(), cut.get_column("p_exceed").to_numpy())


def test_out_of_sample_probabilities_are_calibrated_and_discriminate(fold, flow: pl.DataFrame) -> None:
    thresholds, _, exceed = fold
    _, test = _halves(flow)
    two = float(thresholds.filter(pl.col("period_years") == 2.0).get_column("threshold_value")[0])
    outcomes = hazards.exceedance_outcomes(test, threshold_value=two, window_days=3)
    scored = (
        exceed.filter(pl.col("period_years") == 2.0)
        .select(pl.col("cutoff").alias("ds"), "p_exceed")
        .join(outcomes.select("ds", "observed"), on="ds")
    )
    p = scored.get_column("p_exceed").to_numpy()
    o = scored.get_column("observed").to_numpy().astype(float)
    table = reliability_table(p, o)
    assert int(table.get_column("n").sum()) == scored.height
    # the days the model calls likely flood far more often than the days it calls unlikely
    likely, unlikely = o[p >= 0.1].mean(), o[p < 0.01].mean()
    assert likely > 10 * unlikely
    # and it beats the training half's base rate in the Brier score
    train, _ = _halves(flow)
    base = hazards.exceedance_base_rate(train, threshold_value=two, window_days=3)
    assert np.mean((p - o) ** 2) < np.mean((base - o) ** 2)


def test_the_ladder_reads_the_models_probabilities(fold) -> None:
    thresholds, _, exceed = fold
    levels = hazards.ladder_levels(
        exceed, thresholds, ladder=hazards.DEFAULT_STATE_FLOOD_LADDER, model=hazards.STATE_MODEL_NAME
    )
    assert levels.height == exceed.get_column("cutoff").n_unique()
    for row in levels.filter(pl.col("level") != "none").iter_rows(named=True):
        ev = json.loads(row["evidence"])
        rung = next(r for r in hazards.DEFAULT_STATE_FLOOD_LADDER if r.level.label == row["level"])
        assert ev["model"] == hazards.STATE_MODEL_NAME
        assert row["period_years"] == rung.period_years and row["probability"] >= rung.min_probability
    # the 2009-08-22 rise (0.5 -> 30 m3/s, the day before the flood of the 23rd) reaches yellow at least
    day = levels.filter(pl.col("cutoff") == datetime(2009, 8, 22)).row(0, named=True)
    assert day["level"] in ("yellow", "orange", "red")
    with pytest.raises(FrameError, match="lacks column"):
        hazards.ladder_levels(exceed.drop("p_exceed"), thresholds)


def test_the_model_refuses_what_it_cannot_use(flow: pl.DataFrame) -> None:
    train, _ = _halves(flow)
    thresholds = hazards.return_period_thresholds(train, periods=PERIODS)
    with pytest.raises(FrameError, match="window_days"):
        hazards.FloodStateModel(window_days=0)
    with pytest.raises(FrameError, match="level_multiples"):
        hazards.FloodStateModel(level_multiples=(1.0,))
    with pytest.raises(FrameError, match="not fitted"):
        hazards.FloodStateModel().exceedance(train, thresholds)
    with pytest.raises(FrameError, match="no 2-year threshold"):
        hazards.FloodStateModel().fit(train, thresholds.filter(pl.col("period_years") != 2.0))
    with pytest.raises(FrameError, match="needs a year or more"):
        hazards.FloodStateModel().fit(train.head(200), thresholds)


def _river_level(flow: pl.DataFrame, day: datetime, home: Path) -> dict:
    """The levels step (pure part of the cycle) on the Choptank record up to ``day``."""
    parsed = _parsed()
    settings = load_settings(home, environ={})
    series = flow.filter(pl.col("ds") <= day)
    grades = pl.DataFrame(
        schema={
            "unique_id": pl.Utf8,
            "ds": pl.Datetime("us"),
            "level": pl.Utf8,
            "score": pl.Float64,
            "evidence": pl.Utf8,
        }
    )
    events = pl.DataFrame(
        schema={"time": pl.Datetime("us"), "lat": pl.Float64, "lon": pl.Float64, "magnitude": pl.Float64}
    )
    out, _ = field_levels(grades, series=series, meta=parsed.meta, events=events, settings=settings.hazards, at=day)
    row = out.filter(pl.col("ds") == day).row(0, named=True)
    return {"level": row["level"], "evidence": json.loads(row["evidence"])}


def test_the_cycle_takes_the_river_level_from_the_state_model(flow: pl.DataFrame, tmp_path: Path) -> None:
    # The replay of 2010-03-14 knows the flow to the 13th: 7.5 -> 37.7 m3/s in a day, the day
    # before the March 2010 flood (93 m3/s on the 14th).
    day = datetime(2010, 3, 13)
    grade = _river_level(flow, day, tmp_path)
    ev = grade["evidence"]
    hazard = ev["hazard"]
    assert ev["basis"] == "hazard_model"
    assert hazard["model"] == "return_period" and hazard["estimator"] == hazards.STATE_MODEL_NAME
    assert hazard["window_days"] == 3.0 and hazard["window_start"].startswith("2010-03-14")
    assert hazard["state"]["flow"] == pytest.approx(37.66, abs=0.01) and hazard["state"]["rise_1d"] > 1.5
    # the same probability as the model fitted by hand on the same record
    record = flow.filter(pl.col("ds") <= day)
    thresholds = hazards.return_period_thresholds(record, periods=PERIODS)
    wetness = tuple(hazard["state_model"]["wetness"])  # the variant select_wetness chose on the record
    chosen, _ = hazards.select_wetness(record, thresholds, window_days=3)
    assert hazards.WETNESS_VARIANTS[chosen] == wetness
    model = hazards.FloodStateModel(window_days=3, wetness=wetness).fit(record, thresholds)
    mine = model.exceedance(record, thresholds, issue_dates=[day])
    p = dict(zip(mine.get_column("period_years"), mine.get_column("p_exceed"), strict=True))
    assert hazard["probability"] == pytest.approx(p[hazard["return_period_years"]], abs=1e-9)
    assert [q["probability"] for q in hazard["probabilities"]] == [round(p[k], 4) for k in PERIODS]
    # the level is the highest rung of the configured ladder that the probabilities reach
    left_out = {r["level"] for r in hazard.get("unsupported_rungs", [])}
    reached = [lv for lv, (years, prob) in hazard["ladder_rungs"].items() if p[years] >= prob and lv not in left_out]
    assert grade["level"] == (reached[-1] if reached else "none") != "none"
    # a quiet day of the same record: none
    assert _river_level(flow, datetime(2009, 6, 1), tmp_path)["level"] == "none"


def test_the_cycles_ladder_and_window_settings(tmp_path: Path) -> None:
    from core.errors import ConfigError
    from pipelines.hazard_step import flood_ladder

    settings = load_settings(tmp_path, environ={})
    assert flood_ladder(settings.hazards) == hazards.DEFAULT_STATE_FLOOD_LADDER
    assert settings.hazards.flood_window_days == 3
    assert load_settings(tmp_path, environ={"EWS_HAZARDS__FLOOD_WINDOW_DAYS": "2"}).hazards.flood_window_days == 2
    with pytest.raises(ConfigError, match="flood_window_days = 0"):
        load_settings(tmp_path, environ={"EWS_HAZARDS__FLOOD_WINDOW_DAYS": "0"})


def test_a_rung_whose_level_the_record_never_reached_is_not_issued(flow: pl.DataFrame, tmp_path: Path) -> None:
    # 2009-08-22: 0.5 -> 30 m3/s in a day; the flood that followed peaked at 74 m3/s, below the
    # 2-year level. The logistic model, linear in the rise, extrapolates to the 20-year level,
    # which the record up to that day never reached: that rung is left out, with its count.
    day = datetime(2009, 8, 22)
    record = flow.filter(pl.col("ds") <= day)
    thresholds = hazards.return_period_thresholds(record, periods=PERIODS)
    model = hazards.FloodStateModel(window_days=3).fit(record, thresholds)
    values = dict(zip(thresholds.get_column("period_years"), thresholds.get_column("threshold_value"), strict=True))
    peak = record.get_column("y").max()
    assert model.episodes_above(values[20.0]) == 0 and peak < values[20.0]
    assert model.episodes_above(values[2.0]) >= 3  # the 2-year level: several floods in the record
    ladder = hazards.DEFAULT_STATE_FLOOD_LADDER
    kept, dropped = model.supported_ladder(ladder, thresholds, min_episodes=1)
    assert [r.level.label for r in kept] == [r.level.label for r in ladder if r.period_years != 20]
    assert dropped == [
        {"level": "red", "period_years": 20.0, "threshold_value": round(values[20.0], 4), "training_episodes": 0}
    ]
    assert model.supported_ladder(ladder, thresholds, min_episodes=0)[0] == ladder
    p20 = model.exceedance(record, thresholds, issue_dates=[day]).filter(pl.col("period_years") == 20.0)
    grade = _river_level(flow, day, tmp_path)
    hazard = grade["evidence"]["hazard"]
    assert grade["level"] != "red" and hazard["unsupported_rungs"] == dropped
    # the probability is still stated as the model gives it; only the rung is not issued
    stated = {q["period_years"]: q["probability"] for q in hazard["probabilities"]}
    assert stated[20.0] == round(p20.get_column("p_exceed")[0], 4)
    with pytest.raises(FrameError, match="min_episodes=-1"):
        model.supported_ladder(ladder, thresholds, min_episodes=-1)


def test_the_min_episodes_setting(tmp_path: Path) -> None:
    from core.errors import ConfigError

    assert load_settings(tmp_path, environ={}).hazards.flood_min_episodes == 1
    with pytest.raises(ConfigError, match="flood_min_episodes = -1"):
        load_settings(tmp_path, environ={"EWS_HAZARDS__FLOOD_MIN_EPISODES": "-1"})


def test_the_wetness_state_at_t_reads_no_flow_after_t(flow: pl.DataFrame) -> None:
    train, _ = _halves(flow)
    thresholds = hazards.return_period_thresholds(train, periods=PERIODS)
    model = hazards.FloodStateModel(window_days=3, wetness=hazards.WETNESS_FEATURES).fit(train, thresholds)
    t = datetime(2004, 9, 18)  # Isabel's rise
    full = model.state(train).filter(pl.col("ds") <= t)
    cut = model.state(train.filter(pl.col("ds") <= t))
    assert full.equals(cut)
    # and tripling every later flow changes nothing up to t
    changed = train.with_columns(pl.when(pl.col("ds") > t).then(pl.col("y") * 3).otherwise(pl.col("y")).alias("y"))
    assert model.state(changed).filter(pl.col("ds") <= t).equals(full)
    # the 30-day mean at t is the mean of t-30 .. t-1, by hand
    ys = train.filter((pl.col("ds") < t) & (pl.col("ds") >= datetime(2004, 8, 19))).get_column("y")
    assert full.row(-1, named=True)["wet_30d"] == pytest.approx(float(ys.mean()), rel=1e-12)


def test_the_wetness_choice_reads_the_training_record_only(flow: pl.DataFrame) -> None:
    train, test = _halves(flow)
    thresholds = hazards.return_period_thresholds(train, periods=PERIODS)
    chosen, table = hazards.select_wetness(train, thresholds, window_days=3)
    assert chosen in hazards.WETNESS_VARIANTS and table.height == len(hazards.WETNESS_VARIANTS)
    assert table.get_column("brier").min() == table.filter(pl.col("variant") == chosen).get_column("brier")[0]
    # river_fold chooses on train alone: tripling the scored half changes neither the variant nor the fit
    tripled = test.with_columns(pl.col("y") * 3)
    _, m1, _ = river_fold(train, test, periods=PERIODS)
    _, m2, _ = river_fold(train, tripled, periods=PERIODS)
    assert m1.wetness == m2.wetness == hazards.WETNESS_VARIANTS[chosen] and m1.coef_ == m2.coef_


def test_observed_rungs_take_the_highest_return_level_the_flow_is_above() -> None:
    levels = {2.0: 50.0, 5.0: 100.0, 20.0: 200.0}
    rank, period = hazards.observed_rungs([10.0, 60.0, 150.0, 250.0, float("nan")], levels)
    assert rank.tolist() == [0, 2, 3, 4, 0]  # none, yellow, orange, red, nothing for a missing flow
    assert period[1:4].tolist() == [2.0, 5.0, 20.0] and np.isnan(period[0]) and np.isnan(period[4])
    # a rung set to 0 is left out
    rank, _ = hazards.observed_rungs([250.0], levels, rungs={"yellow": 2.0, "orange": 5.0, "red": 0})
    assert rank.tolist() == [3]


def test_a_gauge_in_flood_is_at_least_the_rung_of_its_return_level(flow: pl.DataFrame, tmp_path: Path) -> None:
    # 2006-06-27: the river at about 70 m3/s, above its 2-year level; the model's chance of staying
    # above for 3 more days is low, so without the observed rung the level fell while in flood
    day = datetime(2006, 6, 27)
    grade = _river_level(flow, day, tmp_path)
    hazard = grade["evidence"]["hazard"]
    seen = hazard["observed_rung"]
    assert seen["flow"] == pytest.approx(float(flow.filter(pl.col("ds") == day).get_column("y")[0]))
    assert seen["flow"] > seen["threshold"] and seen["return_period_years"] in PERIODS
    assert "observed above the" in seen["rule"] and "now" in seen["rule"]
    rank = {"none": 0, "blue": 1, "yellow": 2, "orange": 3, "red": 4}
    assert rank[grade["level"]] >= rank[seen["level"]] >= rank["yellow"]
    # here the model alone gave blue: the rung raised it to yellow, and the evidence says so
    assert hazard["model_level"] == "blue" and grade["level"] == "yellow" and hazard["rule"] == seen["rule"]


def test_the_settings_know_the_wetness_variants_of_the_model(tmp_path: Path) -> None:
    from core.errors import ConfigError
    from core.settings import _WETNESS_VARIANT_NAMES

    assert _WETNESS_VARIANT_NAMES == tuple(hazards.WETNESS_VARIANTS)
    for name in (*hazards.WETNESS_VARIANTS, "auto"):
        assert load_settings(tmp_path, environ={"EWS_HAZARDS__FLOOD_WETNESS": name}).hazards.flood_wetness == name
    with pytest.raises(ConfigError, match="flood_wetness = 'soil'"):
        load_settings(tmp_path, environ={"EWS_HAZARDS__FLOOD_WETNESS": "soil"})
