"""Market-stress indicators on the bundled real data (data/PROVENANCE.md): FRED stress, rates, CPI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

import hazards
from ingest.sources import bundled_catalogue, parse

DATA = Path(__file__).resolve().parent.parent / "data"


def _parsed(relative: str):  # noqa: ANN202
    item = next(b for b in bundled_catalogue(DATA) if b.relative_path == relative)
    return parse(DATA / item.relative_path, item.format, **item.options)


def test_stress_composite_and_drawdown_on_bundled_market_data() -> None:
    from pipelines.evaluation import market_stress_frame

    composite = market_stress_frame(DATA)
    assert composite.get_column("composite").is_between(0.0, 1.0).all()
    autumn_2008 = composite.filter(pl.col("ds").is_between(dt.datetime(2008, 9, 1), dt.datetime(2008, 12, 31)))
    calm_2005 = composite.filter(pl.col("ds").dt.year() == 2005)
    assert autumn_2008.get_column("financial_stress").min() > 0.95  # record stress in its history
    assert autumn_2008.get_column("composite").mean() > calm_2005.get_column("composite").mean()
    cpi = _parsed("market/fred_CPIAUCSL.csv").series
    dd = hazards.drawdown(cpi)
    worst = dd.sort("drawdown").row(0, named=True)
    assert worst["drawdown"] < -0.01 and dt.datetime(2008, 7, 1) <= worst["peak_ds"] <= dt.datetime(2008, 8, 1)


def test_an_input_too_short_for_its_window_names_the_indicator_and_the_fix() -> None:
    import pytest

    from core.errors import FrameError
    from hazards.market_indicators import IndicatorSpec, build_indicators

    dgs10 = _parsed("market/fred_DGS10.csv").series.sort("ds").head(3)
    spec = IndicatorSpec("rates_volatility", dgs10["unique_id"][0], "volatility", "bonds", window=60)
    with pytest.raises(FrameError, match="rates_volatility.*3 value\\(s\\), too few for its volatility") as err:
        build_indicators(dgs10, [spec], frequencies={spec.unique_id: "B"})
    assert "window" in err.value.fix


def test_an_end_inside_a_friday_sees_nothing_published_later_that_day() -> None:
    """A replay at Friday noon must not see Friday's close: the closes are stamped 16:00 here
    (the New York close), so at noon the newest value is Thursday's. A daily value counts as
    known at the end of its day (core.availability), which is where a replay's cutoff sits."""
    from hazards.market_indicators import IndicatorSpec, build_indicators

    dgs10 = _parsed("market/fred_DGS10.csv").series.sort("ds").with_columns(pl.col("ds") + dt.timedelta(hours=16))
    uid = dgs10["unique_id"][0]
    spec = IndicatorSpec("dgs10", uid, "level", "bonds")
    friday = dt.datetime(2008, 10, 10)
    evening = build_indicators(dgs10, [spec], frequencies={uid: "B"}, end=friday + dt.timedelta(days=1))
    noon = build_indicators(dgs10, [spec], frequencies={uid: "B"}, end=friday + dt.timedelta(hours=12))
    close = dict(zip(dgs10["ds"], dgs10["y"], strict=True))
    assert close[friday + dt.timedelta(hours=16)] != close[dt.datetime(2008, 10, 9, 16)]
    assert evening.filter(pl.col("ds") == friday)["dgs10"][0] == close[friday + dt.timedelta(hours=16)]
    assert noon.filter(pl.col("ds") == friday)["dgs10"][0] == close[dt.datetime(2008, 10, 9, 16)]
