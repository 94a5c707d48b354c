"""Geodetic indicators on the bundled real data (data/PROVENANCE.md): the Ayukawa tide gauge."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import hazards
from ingest.sources import bundled_catalogue, parse

DATA = Path(__file__).resolve().parent.parent / "data"


def _parsed(relative: str):  # noqa: ANN202
    item = next(b for b in bundled_catalogue(DATA) if b.relative_path == relative)
    return parse(DATA / item.relative_path, item.format, **item.options)


def test_tide_gauge_step_after_the_tohoku_subsidence() -> None:
    series = _parsed("hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata").series
    steps = hazards.detect_steps(series, min_step=200.0)
    assert steps.height == 1
    step = steps.row(0, named=True)
    # Ayukawa sank about 1 m in 2011; relative sea level jumps up across the 2011-2012 gap.
    assert step["before_ds"] <= dt.datetime(2011, 3, 1) and step["ds"] >= dt.datetime(2011, 3, 1)
    assert step["size"] > 400.0
    velocity = hazards.velocity_change(series, span=60)
    assert velocity.get_column("velocity_change").is_finite().all()
