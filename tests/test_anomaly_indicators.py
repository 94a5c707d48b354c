"""Domain indicators on the bundled real data (data/PROVENANCE.md): seismic, market, geodetic, water."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import anomaly
from core.errors import FrameError
from ingest.sources import bundled_catalogue, parse
from ingest.sources.catalogue import SEISMIC_REGIONS

DATA = Path(__file__).resolve().parent.parent / "data"


def _parsed(relative: str):  # noqa: ANN202
    item = next(b for b in bundled_catalogue(DATA) if b.relative_path == relative)
    return parse(DATA / item.relative_path, item.format, **item.options)


@pytest.fixture(scope="module")
def tohoku_events() -> pl.DataFrame:
    events = _parsed("seismic/usgs_comcat_japan_2005_2014_processed.csv").events
    box = SEISMIC_REGIONS["japan"][0]
    return events.filter(pl.col("lat").is_between(box["min_lat"], box["max_lat"])
                         & pl.col("lon").is_between(box["min_lon"], box["max_lon"]))


def test_seismic_rate_ratio_is_significant_on_the_tohoku_sequence(tohoku_events: pl.DataFrame) -> None:
    ind = anomaly.seismic_indicators(tohoku_events).with_columns(pl.col("ds").dt.date().alias("day"))
    day = ind.filter(pl.col("day") == dt.date(2011, 3, 11)).row(0, named=True)
    assert day["events"] > 400 and day["max_magnitude"] >= 9.0
    assert day["rate_ratio"] > 100 and day["rate_p_value"] < 1e-12
    # The M7.3 foreshock of 2011-03-09 already stands out against the background.
    assert ind.filter(pl.col("day") == dt.date(2011, 3, 9)).get_column("rate_p_value").item() < 1e-6
    quiet = ind.filter(pl.col("ds").dt.year() == 2007)
    assert quiet.get_column("rate_p_value").median() > 0.3  # an ordinary year is not significant
    assert 0.5 < quiet.get_column("b_value").drop_nans().median() < 1.5  # the usual b near 1
    scores = anomaly.seismic_rate_scores(ind, unique_id="tohoku")
    mainshock = scores.filter(pl.col("ds") == dt.datetime(2011, 3, 11))
    assert mainshock.get_column("raw_score").item() == scores.get_column("raw_score").max()
    assert mainshock.get_column("score").item() == pytest.approx(1.0)
    with pytest.raises(FrameError, match="magnitude"):
        anomaly.seismic_indicators(tohoku_events.drop("magnitude"))


def test_stress_composite_and_drawdown_on_bundled_market_data() -> None:
    from pipelines.evaluation import market_stress_frame

    composite = market_stress_frame(DATA)
    assert composite.get_column("composite").is_between(0.0, 1.0).all()
    autumn_2008 = composite.filter(pl.col("ds").is_between(dt.datetime(2008, 9, 1), dt.datetime(2008, 12, 31)))
    calm_2005 = composite.filter(pl.col("ds").dt.year() == 2005)
    assert autumn_2008.get_column("financial_stress").min() > 0.95  # record stress in its history
    assert autumn_2008.get_column("composite").mean() > calm_2005.get_column("composite").mean()
    cpi = _parsed("market/fred_CPIAUCSL.csv").series
    dd = anomaly.drawdown(cpi)
    worst = dd.sort("drawdown").row(0, named=True)
    assert worst["drawdown"] < -0.01 and dt.datetime(2008, 7, 1) <= worst["peak_ds"] <= dt.datetime(2008, 8, 1)


def test_tide_gauge_step_after_the_tohoku_subsidence() -> None:
    series = _parsed("hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata").series
    steps = anomaly.detect_steps(series, min_step=200.0)
    assert steps.height == 1
    step = steps.row(0, named=True)
    # Ayukawa sank about 1 m in 2011; relative sea level jumps up across the 2011-2012 gap.
    assert step["before_ds"] <= dt.datetime(2011, 3, 1) and step["ds"] >= dt.datetime(2011, 3, 1)
    assert step["size"] > 400.0
    velocity = anomaly.velocity_change(series, span=60)
    assert velocity.get_column("velocity_change").is_finite().all()


def test_return_levels_and_exceedance_of_river_flow() -> None:
    flow = _parsed("hydro/usgs_01491000_choptank_daily_flow_cms.txt").series
    fits = anomaly.return_levels(flow)
    row = fits.row(0, named=True)
    assert row["years"] >= 10 and row["rl_2"] < row["rl_10"] < row["rl_100"]
    scores = anomaly.return_level_scores(flow, fits)
    anomaly_days = scores.filter(pl.col("raw_score") >= 10)  # beyond the 10-year level
    assert 0 < anomaly_days.height < 10
    assert scores.get_column("score").is_between(0.0, 1.0).all()
    with pytest.raises(FrameError, match="full years"):
        anomaly.return_levels(flow.head(400))
