"""No look-ahead in the replays of ``ews evaluate events``: truncating the data after ``t``
leaves the level (and probability) replayed at ``t`` unchanged. Real bundled data."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.event_tables import _analogue_probability, earthquake_box_levels

DATA = Path(__file__).resolve().parent.parent / "data"
TOHOKU = {"min_lat": 36.0, "max_lat": 42.0, "min_lon": 140.0, "max_lon": 146.0}


@pytest.fixture(scope="module")
def tohoku_events() -> pl.DataFrame:
    from ingest.sources import parse
    from ingest.sources.catalogue import SEISMIC_REGIONS

    parsed = parse(
        DATA / "seismic/usgs_comcat_japan_2005_2014_processed.csv", "usgs_catalog", regions=SEISMIC_REGIONS["japan"]
    )
    assert parsed.events is not None
    return parsed.events.filter(
        pl.col("lat").is_between(TOHOKU["min_lat"], TOHOKU["max_lat"])
        & pl.col("lon").is_between(TOHOKU["min_lon"], TOHOKU["max_lon"])
    )


def test_earthquake_level_at_t_ignores_events_after_t(tohoku_events: pl.DataFrame) -> None:
    dates = [datetime(2011, 3, 7) + timedelta(days=7 * i) for i in range(4)]  # Tohoku: 2011-03-11
    t = dates[1]
    full = earthquake_box_levels(tohoku_events, dates=dates, setting="subduction", m_test_simulations=10)
    cut = earthquake_box_levels(
        tohoku_events.filter(pl.col("time") < t), dates=dates[:2], setting="subduction", m_test_simulations=10
    )
    assert full.row(1) == cut.row(1)
    assert full.get_column("ds")[1] == t
    # the issue after the M9.1 of 2011-03-11 is red from the aftershock model, the one before is none
    assert full.get_column("level_rank").to_list()[:2] == [0, 4]


def test_river_probability_at_t_ignores_flows_after_t() -> None:
    from ingest.sources import parse

    flow = parse(DATA / "hydro/usgs_01491000_choptank_daily_flow_cms.txt", "usgs_daily_flow").series.sort("ds")
    train = flow.filter(pl.col("ds") < datetime(2005, 10, 1))
    test = flow.filter(pl.col("ds") >= datetime(2005, 10, 1))
    t = datetime(2008, 3, 1)
    full = _analogue_probability(train, test, 56.0)
    cut = _analogue_probability(train, test.filter(pl.col("ds") <= t), 56.0)
    i = int(np.flatnonzero(test.get_column("ds").to_numpy() == np.datetime64(t))[0])
    assert len(cut) == i + 1
    np.testing.assert_array_equal(full[: i + 1], cut)
