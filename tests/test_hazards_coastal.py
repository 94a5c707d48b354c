"""Tide gauges: seasonal/trend anomaly and sustained steps on the bundled PSMSL records
(New York, The Battery; Ayukawa, Japan: data/PROVENANCE.md) and on synthetic series."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, FrameError
from hazards.coastal import sea_level_anomaly, sustained_steps
from hazards.geodetic import link_offsets
from ingest.sources import bundled_catalogue, parse

DATA = Path(__file__).resolve().parent.parent / "data"
NEW_YORK = "hydro/psmsl_rlr_monthly_012_new_york_battery.rlrdata"
AYUKAWA = "hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata"


def _bundled(relative: str):  # noqa: ANN202
    item = next(b for b in bundled_catalogue(DATA) if b.relative_path == relative)
    return parse(DATA / item.relative_path, item.format, **item.options)


def _annual_harmonic(frame: pl.DataFrame, column: str) -> tuple[float, float]:
    """Amplitude (mm) and F statistic of an annual harmonic fitted to ``column`` by calendar month."""
    phase = 2 * np.pi * (frame.get_column("ds").dt.month().to_numpy() - 0.5) / 12
    x = np.column_stack([np.ones(len(phase)), np.cos(phase), np.sin(phase)])
    y = frame.get_column(column).to_numpy()
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    cov = resid @ resid / (len(y) - 3) * np.linalg.inv(x.T @ x)
    f_stat = float(beta[1:] @ np.linalg.inv(cov[1:, 1:]) @ beta[1:]) / 2
    return float(np.hypot(beta[1], beta[2])), f_stat


def _synthetic(seed: int, *, step: float = 0.0, years: int = 60, at: int = 420) -> pl.DataFrame:
    """3 mm/yr trend + 80 mm annual + 20 mm semi-annual + AR(1) noise (sd 50 mm, rho 0.6), monthly."""
    rng = np.random.default_rng(seed)
    n = 12 * years
    noise = np.empty(n)
    noise[0] = rng.normal(0.0, 50.0)
    for i in range(1, n):
        noise[i] = 0.6 * noise[i - 1] + rng.normal(0.0, 50.0 * np.sqrt(1 - 0.36))
    t = np.arange(n) / 12
    y = 7000 + 3 * t + 80 * np.cos(2 * np.pi * (t - 0.7)) + 20 * np.cos(4 * np.pi * t) + noise
    y[at:] += step
    ds = [dt.datetime(1950 + i // 12, i % 12 + 1, 1) for i in range(n)]
    return pl.DataFrame({"unique_id": f"syn{seed}", "ds": ds, "y": y})


def test_new_york_seasonal_cycle_and_trend_are_removed() -> None:
    series = _bundled(NEW_YORK).series
    anomaly = sea_level_anomaly(series)
    # 1790 months; the first 5 years (and months after long gaps) have no anomaly yet.
    assert 1600 < anomaly.height < series.height
    raw = anomaly.with_columns((pl.col("y") - pl.col("y").rolling_mean(13, center=True)).alias("raw")).drop_nulls()
    raw_amplitude, raw_f = _annual_harmonic(raw, "raw")
    amplitude, f_stat = _annual_harmonic(anomaly, "anomaly_mm")
    assert raw_amplitude > 70.0 and raw_f > 100.0  # the Battery's seasonal cycle: ~78 mm
    assert amplitude < 6.0 and f_stat < 3.0  # measured: 4.3 mm, F = 2.1 (p ~ 0.12): not significant
    # September is the seasonal high (+70 mm above the annual mean); its anomaly is not.
    september = anomaly.filter(pl.col("ds").dt.month() == 9)
    assert raw.filter(pl.col("ds").dt.month() == 9).get_column("raw").mean() > 50.0
    assert abs(september.get_column("anomaly_mm").mean()) < 15.0
    assert abs(september.get_column("anomaly_sigma").mean()) < 0.3
    assert september.filter(pl.col("ds") == dt.datetime(2010, 9, 1)).get_column("anomaly_sigma")[0] < 1.0
    # In units of the prediction standard error the anomaly has unit spread.
    assert anomaly.get_column("anomaly_sigma").std() == pytest.approx(1.0, abs=0.15)


def test_anomaly_is_causal() -> None:
    series = _bundled(NEW_YORK).series.filter(pl.col("ds") < dt.datetime(1990, 1, 1))
    before = sea_level_anomaly(series)
    shocked = series.with_columns(
        pl.when(pl.col("ds") >= dt.datetime(1980, 1, 1)).then(pl.col("y") + 1000.0).otherwise(pl.col("y")).alias("y")
    )
    after = sea_level_anomaly(shocked)
    early = pl.col("ds") <= dt.datetime(1980, 1, 1)
    assert before.filter(early).get_column("expected").equals(after.filter(early).get_column("expected"))
    first = after.filter(pl.col("ds") == dt.datetime(1980, 1, 1)).row(0, named=True)
    assert first["anomaly_mm"] > 900.0 and first["p_upper"] < 1e-6


def test_new_york_has_no_sustained_step() -> None:
    # 165 years with a trend, a strong seasonal cycle and interannual swings: no step at the
    # default min_sigma=4 (at 3 one appears, 1864-03, +78 mm, in the sparse early record).
    series = _bundled(NEW_YORK).series
    assert sustained_steps(series).height == 0
    calm = sustained_steps(series.filter(pl.col("ds").dt.year().is_between(1920, 2000)), min_sigma=3.0)
    assert calm.height == 0


def test_ayukawa_subsidence_step() -> None:
    parsed = _bundled(AYUKAWA)
    series = parsed.series
    steps = sustained_steps(series)
    assert steps.height == 1
    step = steps.row(0, named=True)
    # The bundled record runs to 2020: last month before 2011-02, gap to 2012-12, step in 2013-01.
    assert step["before_ds"] == dt.datetime(2011, 2, 1) and step["ds"] == dt.datetime(2013, 1, 1)
    # Relative sea level up by ~750 mm (the land sank; GSI measured ~1.2 m at Oshika in 2011, the
    # gauge's first months back, 22 months later, carry part of the post-seismic uplift).
    assert step["size_mm"] == pytest.approx(750.0, abs=40.0)
    assert step["sigma_mm"] == pytest.approx(23.0, abs=5.0) and step["z"] > 20.0
    assert step["months_persisted"] >= 6 and step["confirmed_ds"] == dt.datetime(2013, 6, 1)
    # The mainshock lies in the gap and within the NGL radius of the gauge.
    catalog = _bundled("seismic/usgs_comcat_japan_2005_2014_processed.csv").events
    linked = link_offsets(steps, catalog, station_lat=38.297, station_lon=141.505).row(0, named=True)
    assert linked["magnitude"] == 9.1 and linked["event_time"].date() == dt.date(2011, 3, 11)
    assert linked["distance_km"] == pytest.approx(76.0, abs=2.0)
    # The anomaly: ~+820 mm in 2013-01; once the step is confirmed it is measured from the new level.
    anomaly = sea_level_anomaly(series, steps=steps)
    january = anomaly.filter(pl.col("ds") == dt.datetime(2013, 1, 1)).row(0, named=True)
    assert january["anomaly_mm"] > 700.0 and january["anomaly_sigma"] > 10.0
    later = anomaly.filter(pl.col("ds").is_between(dt.datetime(2013, 7, 1), dt.datetime(2013, 12, 1)))
    assert later.get_column("anomaly_sigma").abs().max() < 2.0


def test_synthetic_step_size_and_false_steps() -> None:
    """A 300 mm step in red noise is found with its size; 50 noise-only series x 60 years give none.

    Measured on 50 seeds: a 200 mm step (4 standard errors) is found in 35 at min_sigma=4 and
    18 at 5; noise only gives 9 false steps at min_sigma=3 and none at 4.
    """
    steps = sustained_steps(pl.concat([_synthetic(seed, step=300.0) for seed in range(20)]))
    at_step = steps.filter(pl.col("ds") == dt.datetime(1985, 1, 1))
    assert at_step.height == 20 and steps.height == 20
    error = (at_step.get_column("size_mm") - 300.0).abs() / at_step.get_column("sigma_mm")
    assert (error <= 2.0).sum() >= 18
    assert sustained_steps(pl.concat([_synthetic(seed) for seed in range(50)])).height == 0


def test_an_excursion_that_returns_is_not_a_step() -> None:
    bump = _synthetic(7).with_columns(
        pl.when(pl.col("ds").is_between(dt.datetime(1985, 1, 1), dt.datetime(1985, 4, 1)))
        .then(pl.col("y") + 400.0)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    assert sustained_steps(bump).height == 0  # 4 months high, then back: not sustained
    assert sustained_steps(bump, min_months=3).height == 1


def test_inputs_are_checked() -> None:
    series = _synthetic(0, years=10)
    with pytest.raises(ConfigError, match="window_years"):
        sea_level_anomaly(series, window_years=3, min_years=5)
    with pytest.raises(ConfigError, match="min_months"):
        sustained_steps(series, min_months=1)
    daily = pl.DataFrame({"unique_id": "d", "ds": [dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 2)], "y": [1.0, 2.0]})
    with pytest.raises(FrameError, match="share a calendar month|sharing a calendar month"):
        sea_level_anomaly(daily)
