"""Earthquake indicators on the bundled real data (data/PROVENANCE.md): the Tohoku sequence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import hazards
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
    return events.filter(
        pl.col("lat").is_between(box["min_lat"], box["max_lat"])
        & pl.col("lon").is_between(box["min_lon"], box["max_lon"])
    )


def test_seismic_rate_ratio_is_significant_on_the_tohoku_sequence(tohoku_events: pl.DataFrame) -> None:
    ind = hazards.seismic_indicators(tohoku_events).with_columns(pl.col("ds").dt.date().alias("day"))
    day = ind.filter(pl.col("day") == dt.date(2011, 3, 11)).row(0, named=True)
    assert day["events"] > 400 and day["max_magnitude"] >= 9.0
    assert day["rate_ratio"] > 100 and day["rate_p_value"] < 1e-12
    # The M7.3 foreshock of 2011-03-09 already stands out against the background.
    assert ind.filter(pl.col("day") == dt.date(2011, 3, 9)).get_column("rate_p_value").item() < 1e-6
    quiet = ind.filter(pl.col("ds").dt.year() == 2007)
    assert quiet.get_column("rate_p_value").median() > 0.3  # an ordinary year is not significant
    assert 0.5 < quiet.get_column("b_value").drop_nans().median() < 1.5  # the usual b near 1
    scores = hazards.seismic_rate_scores(ind, unique_id="tohoku")
    mainshock = scores.filter(pl.col("ds") == dt.datetime(2011, 3, 11))
    assert mainshock.get_column("raw_score").item() == scores.get_column("raw_score").max()
    assert mainshock.get_column("score").item() == pytest.approx(1.0)
    with pytest.raises(FrameError, match="magnitude"):
        hazards.seismic_indicators(tohoku_events.drop("magnitude"))
