"""Flood indicators on the bundled real data (data/PROVENANCE.md): Choptank river flow.

Also the flood field model of issue 14: return-period thresholds against known GEV and Gumbel
distributions, the water-year coverage rule, the warning ladder at each boundary on hand-made
probability frames, and the skill counts on a hand-made record.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import genextreme, gumbel_r

import hazards
from core.errors import ConfigError, FrameError
from core.vocabulary import Level
from hazards.floods import _gev_shape_from_t3, _sample_lmoments
from ingest.sources import bundled_catalogue, parse

DATA = Path(__file__).resolve().parent.parent / "data"
CHOPTANK = "hydro/usgs_01491000_choptank_daily_flow_cms.txt"


def _parsed(relative: str):  # noqa: ANN202
    item = next(b for b in bundled_catalogue(DATA) if b.relative_path == relative)
    return parse(DATA / item.relative_path, item.format, **item.options)


def test_return_levels_and_exceedance_of_river_flow() -> None:
    flow = _parsed("hydro/usgs_01491000_choptank_daily_flow_cms.txt").series
    fits = hazards.return_levels(flow)
    row = fits.row(0, named=True)
    assert row["years"] >= 10 and row["rl_2"] < row["rl_10"] < row["rl_100"]
    scores = hazards.return_level_scores(flow, fits)
    anomaly_days = scores.filter(pl.col("raw_score") >= 10)  # beyond the 10-year level
    assert 0 < anomaly_days.height < 10
    assert scores.get_column("score").is_between(0.0, 1.0).all()
    with pytest.raises(FrameError, match="full years"):
        hazards.return_levels(flow.head(400))


# -- return-period thresholds against known distributions ------------------------------------
def _daily_record(maxima: np.ndarray, *, first_year: int = 1001, seed: int = 0) -> pl.DataFrame:
    """A daily series whose water-year (October) maxima are ``maxima``: every other day of the
    year flows at a random share (below 0.9) of that year's maximum."""
    rng = np.random.default_rng(seed)
    start = datetime(first_year - 1, 10, 1)
    ds = pl.datetime_range(start, datetime(first_year + len(maxima) - 1, 9, 30), "1d", eager=True)
    years = (ds.dt.year() + (ds.dt.month() >= 10).cast(pl.Int32)).to_numpy() - first_year
    peak = maxima[years]
    y = peak * rng.uniform(0.0, 0.9, len(ds))
    first_day = np.flatnonzero(np.diff(years, prepend=-1))
    y[first_day + 100] = peak[first_day + 100]  # the maximum: day 100 of each water year (January)
    return pl.DataFrame({"unique_id": "sim", "ds": ds, "y": y})


@pytest.mark.parametrize("estimator", ["lmoments", "mle"])
@pytest.mark.parametrize("shape", [-0.1, 0.1])
def test_gev_thresholds_match_the_true_quantiles(shape: float, estimator: str) -> None:
    maxima = genextreme.rvs(shape, loc=100.0, scale=30.0, size=2000, random_state=11)
    thresholds = hazards.return_period_thresholds(_daily_record(maxima), estimator=estimator)
    assert thresholds.get_column("method").to_list() == ["gev"] * 3  # 2000 years >= 20: auto picks the GEV
    true = genextreme.ppf([1 - 1 / 2, 1 - 1 / 5, 1 - 1 / 20], shape, loc=100.0, scale=30.0)
    fitted = thresholds.get_column("threshold_value").to_numpy()
    assert np.abs(fitted / true - 1).max() < 0.03
    row = thresholds.row(0, named=True)
    assert abs(row["shape"] - shape) < 0.05  # scipy's c: negative = heavy upper tail
    assert (row["years_used"], row["first_year"], row["last_year"]) == (2000, 1001, 3000)
    assert thresholds.get_column("threshold").to_list() == ["rp2", "rp5", "rp20"]


@pytest.mark.parametrize("estimator", ["lmoments", "mle"])
@pytest.mark.parametrize("method", ["gumbel", "auto"])
def test_gumbel_thresholds_match_the_true_quantiles(method: str, estimator: str) -> None:
    maxima = gumbel_r.rvs(loc=50.0, scale=12.0, size=2000, random_state=5)
    thresholds = hazards.return_period_thresholds(_daily_record(maxima), method=method, estimator=estimator)
    true = gumbel_r.ppf([0.5, 0.8, 0.95], loc=50.0, scale=12.0)
    assert np.abs(thresholds.get_column("threshold_value").to_numpy() / true - 1).max() < 0.03
    assert abs(thresholds.get_column("shape")[0]) < 0.05  # "auto" fits a GEV that comes out a Gumbel


def test_l_moment_estimators_by_hand_and_on_population_values() -> None:
    # Sample L-moments of 1, 2, 3, 4: l1 = 2.5, l2 = half the mean pairwise gap = 10 / 12, t3 = 0.
    l1, l2, t3 = _sample_lmoments(np.array([4.0, 1.0, 3.0, 2.0]))
    assert (l1, t3) == (2.5, pytest.approx(0.0, abs=1e-12)) and l2 == pytest.approx(10 / 12)
    # The GEV's population L-skewness t3 = 2 (1 - 3^-k) / (1 - 2^-k) - 3 (Hosking 1990) gives back
    # its shape k to the stated accuracy of the Hosking-Wallis-Wood approximation (9e-4 for |k| <= 0.5).
    for k in (-0.3, -0.1, 0.05, 0.2):
        t3_pop = 2 * (1 - 3**-k) / (1 - 2**-k) - 3
        assert _gev_shape_from_t3(t3_pop) == pytest.approx(k, abs=1e-3)
    assert _gev_shape_from_t3(0.1699) == pytest.approx(0.0, abs=1e-3)  # the Gumbel's t3 = 0.1699


def test_short_record_falls_back_to_gumbel_and_mle_divergence_is_caught() -> None:
    maxima = genextreme.rvs(-0.1, loc=100.0, scale=30.0, size=12, random_state=3)
    record = _daily_record(maxima)
    auto = hazards.return_period_thresholds(record)
    assert auto.get_column("method").unique().to_list() == ["gumbel"]
    assert "12 complete water years < 20" in auto.get_column("note")[0]
    gev = hazards.return_period_thresholds(record, method="gev", estimator="mle")
    values = gev.get_column("threshold_value").to_numpy()
    assert np.all(np.diff(values) > 0) and values[-1] < 10 * values[0]  # no diverged fit


# -- water years and coverage -----------------------------------------------------------------
def _flat_days(start: datetime, end: datetime, *, skip: tuple[datetime, datetime] | None = None) -> pl.DataFrame:
    ds = pl.datetime_range(start, end, "1d", eager=True)
    y = np.random.default_rng(start.toordinal()).gamma(2.0, 10.0, len(ds))
    frame = pl.DataFrame({"unique_id": "g", "ds": ds, "y": y})
    if skip:
        frame = frame.filter(~pl.col("ds").is_between(*skip))
    return frame


def test_annual_maxima_coverage_rule_and_water_years() -> None:
    # Water years (October) 2001 .. 2010; WY2001 starts late (2001-06-01: 122 of 365 days),
    # WY2005 misses 73 days (292 of 365 = 0.8 exactly: kept), WY2007 misses 74 (291: dropped).
    series = pl.concat(
        [
            _flat_days(datetime(2001, 6, 1), datetime(2004, 12, 31)),
            _flat_days(datetime(2005, 3, 15), datetime(2006, 12, 31)),
            _flat_days(datetime(2007, 3, 16), datetime(2010, 9, 30)),
        ]
    )
    maxima = hazards.annual_maxima(series)
    by_year = {r["water_year"]: r for r in maxima.iter_rows(named=True)}
    assert list(by_year) == list(range(2001, 2011))
    assert (by_year[2001]["days"], by_year[2001]["days_in_year"], by_year[2001]["complete"]) == (122, 365, False)
    assert (by_year[2005]["days"], by_year[2005]["coverage"], by_year[2005]["complete"]) == (292, 0.8, True)
    assert (by_year[2007]["days"], by_year[2007]["complete"]) == (291, False)
    assert by_year[2008]["days_in_year"] == 366  # 2007-10-01 .. 2008-09-30 holds 29 February
    thresholds = hazards.return_period_thresholds(series)
    row = thresholds.row(0, named=True)
    assert (row["years_used"], row["first_year"], row["last_year"]) == (8, 2002, 2010)
    assert "water year(s) [2001, 2007] left out" in row["note"]
    # Calendar years: 2001-06-01 .. 2001-12-31 is the year 2001 (214 days).
    calendar = hazards.annual_maxima(series, water_year_start_month=1)
    assert calendar.row(0, named=True)["water_year"] == 2001 and calendar.row(0, named=True)["days"] == 214
    with pytest.raises(FrameError, match="complete water years < min_years 20"):
        hazards.return_period_thresholds(series, min_years=20)
    with pytest.raises(FrameError, match="min_coverage"):
        hazards.annual_maxima(series, min_coverage=1.5)
    with pytest.raises(FrameError, match="no water-year start month"):
        hazards.annual_maxima(series, water_year_start_month={"other": 10})


def test_a_series_too_short_is_left_out_with_a_warning() -> None:
    long = _flat_days(datetime(1999, 10, 1), datetime(2009, 9, 30))
    short = _flat_days(datetime(2007, 10, 1), datetime(2009, 9, 30)).with_columns(pl.lit("short").alias("unique_id"))
    with pytest.warns(UserWarning, match=r"short \(2 complete water years < min_years 5\)"):
        thresholds = hazards.return_period_thresholds(pl.concat([long, short]))
    assert thresholds.get_column("unique_id").unique().to_list() == ["g"]


def test_water_year_start_by_region() -> None:
    assert hazards.water_year_start("Maryland, US") == 10
    assert hazards.water_year_start("Miyagi, Japan") == 1
    assert hazards.water_year_start(None) == 1


# -- the Choptank record --------------------------------------------------------------------------
def test_choptank_water_year_maxima_are_what_the_file_says() -> None:
    flow = _parsed(CHOPTANK).series
    maxima = hazards.annual_maxima(flow, water_year_start_month=hazards.water_year_start("Maryland, US"))
    assert maxima.height == 12 and maxima.get_column("complete").all()
    # By hand from the text file: water year 2003 = 2002-10-01 .. 2003-09-30.
    with (DATA / CHOPTANK).open() as handle:
        rows = [
            (datetime.strptime(r["date"], "%m/%d/%Y"), float(r["Qdaily"]))
            for r in csv.DictReader(handle, delimiter="\t")
        ]
    wy2003 = [(q, d) for d, q in rows if datetime(2002, 10, 1) <= d <= datetime(2003, 9, 30)]
    peak, day = max(wy2003)
    got = maxima.filter(pl.col("water_year") == 2003).row(0, named=True)
    assert (got["annual_max"], got["ds"], got["days"]) == (peak, day, len(wy2003)) == (peak, datetime(2003, 2, 24), 365)
    # Hurricane Irene: the record's largest daily flow, 246.4 m3/s on 2011-08-28.
    irene = maxima.filter(pl.col("water_year") == 2011).row(0, named=True)
    assert irene["ds"] == datetime(2011, 8, 28) and irene["annual_max"] == pytest.approx(246.356563)


def test_choptank_return_period_thresholds() -> None:
    flow = _parsed(CHOPTANK).series
    thresholds = hazards.return_period_thresholds(flow)  # 12 water years: Gumbel by L-moments
    values = dict(zip(thresholds["period_years"], thresholds["threshold_value"], strict=True))
    assert values == {
        2.0: pytest.approx(77.17, abs=0.01),
        5.0: pytest.approx(123.93, abs=0.01),
        20.0: pytest.approx(184.59, abs=0.01),
    }
    row = thresholds.row(0, named=True)
    assert (row["method"], row["estimator"], row["years_used"], row["first_year"], row["last_year"]) == (
        "gumbel",
        "lmoments",
        12,
        2000,
        2011,
    )
    assert row["shape"] == 0.0 and row["water_year_start_month"] == 10
    # Maximum likelihood (pyextremes) on the same Gumbel lands within 5 %.
    mle = hazards.return_period_thresholds(flow, estimator="mle").get_column("threshold_value").to_numpy()
    assert np.abs(mle / thresholds.get_column("threshold_value").to_numpy() - 1).max() < 0.05
    # The Choptank's four annual peaks above its 2-year level, with their onsets.
    events = hazards.flood_events(flow, threshold_value=values[2.0])
    assert [f"{d:%Y-%m-%d}" for d in events["peak_ds"]] == ["2001-06-18", "2007-04-16", "2010-03-14", "2011-08-28"]
    assert events["onset"][0] == datetime(2001, 6, 17)


# -- the warning ladder ------------------------------------------------------------------------
THRESHOLDS = pl.DataFrame(
    {
        "unique_id": ["r"] * 3,
        "threshold": ["rp2", "rp5", "rp20"],
        "period_years": [2.0, 5.0, 20.0],
        "threshold_value": [77.0, 124.0, 185.0],
        "method": ["gumbel"] * 3,
        "years_used": [12] * 3,
    }
)
T0 = datetime(2011, 8, 27)


def _exceedance(p2: float, p5: float, p20: float, *, cutoff: datetime | None = None) -> pl.DataFrame:
    """Three daily steps per threshold; the path probability reaches ``p`` at the last step."""
    rows = []
    for label, value, p in (("rp2", 77.0, p2), ("rp5", 124.0, p5), ("rp20", 185.0, p20), ("p99", 40.0, 0.99)):
        for step, share in enumerate((0.25, 0.5, 1.0)):
            rows.append(
                {
                    "unique_id": "r",
                    "ds": (cutoff or T0) + timedelta(days=step + 1),
                    "model": "AutoETS",
                    "threshold": label,
                    "threshold_value": value,
                    "direction": "above",
                    "p_step_exceed": p * share,
                    "p_path_cross": p * share if share < 1 else p,
                    **({"cutoff": cutoff} if cutoff else {}),
                }
            )
    return pl.DataFrame(rows)


@pytest.mark.parametrize(
    ("p2", "p5", "p20", "level"),
    [
        (0.0, 0.0, 0.0, "none"),
        (0.19999, 0.0, 0.0, "none"),
        (0.2, 0.0, 0.0, "blue"),
        (0.49999, 0.3, 0.1, "blue"),
        (0.5, 0.3, 0.1, "yellow"),
        (0.9, 0.49999, 0.29999, "yellow"),
        (0.9, 0.5, 0.29999, "orange"),
        (0.9, 0.5, 0.3, "red"),
        (0.35, 0.31, 0.3, "red"),  # the highest rung that holds decides, whatever the lower ones say
    ],
)
def test_default_ladder_at_each_boundary(p2: float, p5: float, p20: float, level: str) -> None:
    graded = hazards.flood_levels(_exceedance(p2, p5, p20), THRESHOLDS)
    assert graded.height == 1 and graded["level"][0] == level


def test_evidence_names_threshold_period_value_unit_probability_and_window() -> None:
    graded = hazards.flood_levels(_exceedance(0.9, 0.62, 0.1), THRESHOLDS).row(0, named=True)
    assert (graded["level"], graded["probability"], graded["period_years"], graded["threshold_value"]) == (
        "orange",
        0.62,
        5.0,
        124.0,
    )
    evidence = json.loads(graded["evidence"])
    assert {k: evidence[k] for k in ("threshold", "period_years", "threshold_value", "unit", "probability")} == {
        "threshold": "rp5",
        "period_years": 5.0,
        "threshold_value": 124.0,
        "unit": "m3/s",
        "probability": 0.62,
    }
    assert (evidence["window_start"], evidence["window_end"]) == ("2011-08-28T00:00:00", "2011-08-30T00:00:00")
    assert evidence["rule"] == "P(> 5-year level 124 m3/s between 2011-08-28 and 2011-08-30) = 0.62 >= 0.5"
    assert [p["probability"] for p in evidence["probabilities"]] == [0.9, 0.62, 0.1]
    assert evidence["fit"] == {"method": "gumbel", "years_used": 12}


def test_window_persistence_and_a_custom_ladder() -> None:
    within = hazards.return_period_exceedance(_exceedance(0.8, 0.4, 0.2), THRESHOLDS, horizon_steps=2)
    assert within.get_column("p_exceed").to_list() == [0.4, 0.2, 0.1]  # the path probability at step 2
    assert within.get_column("window_end").unique().to_list() == [T0 + timedelta(days=2)]
    two = pl.concat(
        [
            _exceedance(0.9, 0.6, 0.4, cutoff=T0),
            _exceedance(0.9, 0.2, 0.1, cutoff=T0 + timedelta(days=1)),
            _exceedance(0.9, 0.6, 0.1, cutoff=T0 + timedelta(days=2)),
        ]
    )
    assert hazards.flood_levels(two, THRESHOLDS)["level"].to_list() == ["red", "yellow", "orange"]
    # Two consecutive forecasts must agree: the first has no predecessor, the third's was yellow.
    assert hazards.flood_levels(two, THRESHOLDS, persistence=2)["level"].to_list() == ["none", "yellow", "yellow"]
    ladder = (hazards.FloodRung(Level.ORANGE, 2, 0.8), hazards.FloodRung(Level.RED, 5, 0.3))
    assert hazards.flood_levels(two, THRESHOLDS, ladder=ladder)["level"].to_list() == ["red", "orange", "red"]


def test_ladder_and_frames_are_validated() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        hazards.flood_levels(
            _exceedance(0.5, 0, 0),
            THRESHOLDS,
            ladder=(hazards.FloodRung(Level.RED, 20, 0.3), hazards.FloodRung(Level.RED, 5, 0.5)),
        )
    with pytest.raises(ConfigError, match="outside"):
        hazards.flood_levels(_exceedance(0.5, 0, 0), THRESHOLDS, ladder=(hazards.FloodRung(Level.RED, 20, 1.3),))
    with pytest.raises(FrameError, match=r"lacks column\(s\) \['p_path_cross'\]"):
        hazards.flood_levels(_exceedance(0.5, 0, 0).drop("p_path_cross"), THRESHOLDS)
    with pytest.raises(FrameError, match="exceeded from below"):
        hazards.flood_levels(_exceedance(0.5, 0, 0).with_columns(pl.lit("below").alias("direction")), THRESHOLDS)
    with pytest.raises(FrameError, match="needs several forecasts"):
        hazards.flood_levels(_exceedance(0.5, 0, 0), THRESHOLDS, persistence=2)
    with pytest.raises(FrameError, match="no exceedance row"):
        hazards.flood_levels(_exceedance(0.5, 0, 0).filter(pl.col("threshold") == "p99"), THRESHOLDS)
    spec = hazards.exceedance_thresholds(THRESHOLDS)
    assert spec.columns == ["unique_id", "threshold", "value", "direction"]
    assert spec.get_column("direction").unique().to_list() == ["above"]


# -- skill on a hand-made record ----------------------------------------------------------------
def test_flood_warning_skill_counts_a_hand_made_record() -> None:
    # Two water years of base flow 10 (2001-10-01 .. 2003-09-30) with one flood each: WY2002 rises
    # above 50 on 2002-03-10 and peaks on 03-11; WY2003 jumps to 90 on 2003-05-20.
    ds = pl.datetime_range(datetime(2001, 10, 1), datetime(2003, 9, 30), "1d", eager=True)
    y = np.full(len(ds), 10.0)
    day = {d: i for i, d in enumerate(ds.to_list())}
    y[day[datetime(2002, 3, 10)]], y[day[datetime(2002, 3, 11)]] = 60.0, 80.0
    y[day[datetime(2003, 5, 20)]] = 90.0
    series = pl.DataFrame({"unique_id": "g", "ds": ds, "y": y})
    events = hazards.flood_events(series, threshold_value=50.0)
    assert events.select("water_year", "peak", "onset").rows() == [
        (2002, 80.0, datetime(2002, 3, 10)),
        (2003, 90.0, datetime(2003, 5, 20)),
    ]
    outcomes = hazards.exceedance_outcomes(series, threshold_value=50.0, window_days=3)
    warned_days = outcomes.filter(pl.col("observed")).get_column("ds").to_list()
    assert warned_days == [datetime(2002, 3, d) for d in (7, 8, 9, 10)] + [datetime(2003, 5, d) for d in (17, 18, 19)]
    assert hazards.exceedance_base_rate(series, threshold_value=50.0) == pytest.approx(7 / (len(ds) - 3))
    # Warnings: 2002-03-08 (2 days before the onset: a hit), nothing before 2003-05-20 (a miss),
    # and a run 2002-07-01 .. 07-02 that no flood follows (a false alarm).
    p = {datetime(2002, 3, 8): 0.7, datetime(2002, 3, 9): 0.4, datetime(2002, 7, 1): 0.6, datetime(2002, 7, 2): 0.9}
    probabilities = pl.DataFrame({"ds": ds[:-3], "p_exceed": [p.get(d, 0.0) for d in ds[:-3].to_list()]})
    skill = hazards.flood_warning_skill(probabilities, series, threshold_value=50.0, base_rate=0.01)
    assert (skill.events, skill.hits, skill.misses, skill.alarms, skill.false_alarms) == (2, 1, 1, 2, 1)
    assert (skill.pod, skill.far, skill.csi) == (0.5, 0.5, pytest.approx(1 / 3))
    assert skill.lead_times_days == (2.0,) and skill.event_hit == (True, False)
    assert (skill.daily_hits, skill.daily_misses, skill.daily_false_alarms) == (1, 6, 2)
    o = outcomes.join(probabilities, on="ds")
    expected = float(((o["p_exceed"] - o["observed"].cast(pl.Float64)) ** 2).mean())
    assert skill.brier == pytest.approx(expected)
    assert skill.brier_climatology == pytest.approx(float(((0.01 - o["observed"].cast(pl.Float64)) ** 2).mean()))
    assert skill.brier_skill_score == pytest.approx(1 - expected / skill.brier_climatology)
    assert math.isclose(skill.observed_rate, 7 / o.height)
    with pytest.raises(FrameError, match="outside"):
        hazards.flood_warning_skill(
            probabilities.with_columns(pl.lit(2.0).alias("p_exceed")), series, threshold_value=50.0, base_rate=0.01
        )
    two_series = pl.concat([series, series.with_columns(pl.lit("h").alias("unique_id"))])
    with pytest.raises(FrameError, match="one series at a time"):
        hazards.flood_warning_skill(probabilities, two_series, threshold_value=50.0, base_rate=0.01)
