"""Flood indicators on the bundled real data (data/PROVENANCE.md): Choptank river flow."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import hazards
from core.errors import FrameError
from ingest.sources import bundled_catalogue, parse

DATA = Path(__file__).resolve().parent.parent / "data"


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
