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
