"""Earthquake indicators on the bundled real data (data/PROVENANCE.md): the Tohoku sequence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
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


# --- Magnitude of completeness and b-value -------------------------------------------------

# SeismoStats 1.0.1's documented example (seismostats/analysis/estimate_mc.py docstrings).
SEISMOSTATS_EXAMPLE = np.array(
    [
        2.3,
        1.2,
        1.5,
        1.2,
        1.7,
        1.1,
        1.2,
        1.8,
        1.6,
        1.2,
        1.5,
        1.2,
        1.7,
        1.6,
        1.1,
        1.1,
        1.2,
        2.0,
        1.1,
        1.2,
        1.1,
        1.2,
        1.6,
        1.9,
        1.3,
        1.7,
        1.3,
        1.0,
        1.2,
        1.7,
        1.3,
        1.3,
        1.1,
        1.5,
        1.4,
        1.5,
    ]
)


def _gutenberg_richter(rng: np.random.Generator, n: int, *, b: float, mc: float, incomplete: int = 0) -> np.ndarray:
    """``n`` magnitudes of a binned GR law from ``mc`` (0.1 bins), plus ``incomplete`` events
    below ``mc`` whose detection falls off a decade per 0.5 magnitude units."""
    complete = mc - 0.05 + rng.exponential(1.0 / (b * np.log(10.0)), n)
    below = mc - 0.05 - rng.exponential(0.5 / np.log(10.0), incomplete)
    return np.round(np.concatenate([complete, below]) / 0.1) * 0.1


@pytest.mark.parametrize(("b_true", "seed"), [(1.0, 1), (0.8, 2)])
def test_b_value_and_mc_on_a_synthetic_gutenberg_richter_catalog(b_true: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mags = _gutenberg_richter(rng, 5000, b=b_true, mc=2.0, incomplete=1500)
    # Maximum curvature finds the bin where the catalog stops being complete (+0.2 by default).
    assert hazards.mc_max_curvature(mags, correction=0.0) == pytest.approx(2.0)
    assert hazards.mc_max_curvature(mags) == pytest.approx(2.2)
    assert 2.0 - 1e-9 <= hazards.mc_b_stability(mags) <= 2.3
    for method in ("tinti_mulargia", "utsu"):
        est = hazards.estimate_b(mags, mc=2.0, method=method)
        assert est.n == 5000  # exactly the complete events
        assert abs(est.b - b_true) < 2 * est.sigma, (method, est)
        assert est.sigma == pytest.approx(b_true / np.sqrt(est.n), rel=0.1)  # Shi & Bolt ~ b / sqrt(n)
    # Cut above the true Mc the estimate stays unbiased, with fewer events and a wider sigma.
    high = hazards.estimate_b(mags, mc=2.5)
    assert high.n < 5000 and high.sigma > est.sigma and abs(high.b - b_true) < 2 * high.sigma


def test_mc_and_b_reproduce_seismostats_documented_values() -> None:
    assert hazards.mc_max_curvature(SEISMOSTATS_EXAMPLE, delta_m=0.1) == pytest.approx(1.4)
    assert hazards.mc_b_stability(SEISMOSTATS_EXAMPLE, delta_m=0.1) == pytest.approx(1.1)
    # b_values_tested and diff_bs of estimate_mc_b_stability's example.
    at_10, at_11 = (hazards.estimate_b(SEISMOSTATS_EXAMPLE, mc=mc) for mc in (1.0, 1.1))
    assert at_10.b == pytest.approx(0.9571853220063772, abs=1e-12)
    assert at_11.b == pytest.approx(1.190298769977797, abs=1e-12)
    for mc, here, diff in ((1.0, at_10, 2.2337527711215786), (1.1, at_11, 0.9457747650207581)):
        ahead = [hazards.estimate_b(SEISMOSTATS_EXAMPLE, mc=mc + 0.1 * k).b for k in range(5)]
        assert abs(np.mean(ahead) - here.b) / here.sigma == pytest.approx(diff, abs=1e-9)
    # ClassicBValueEstimator's example (Tinti & Mulargia 1987).
    mags = np.array(
        [
            2.0,
            2.5,
            2.1,
            2.2,
            2.5,
            2.2,
            2.6,
            2.3,
            2.7,
            2.2,
            2.4,
            2.0,
            2.7,
            2.2,
            2.3,
            2.1,
            2.4,
            2.6,
            2.2,
            2.2,
            2.7,
            2.4,
            2.2,
            2.5,
        ]
    )
    assert hazards.estimate_b(mags, mc=2.0).b == pytest.approx(1.114920128810535, abs=1e-12)
    with pytest.raises(FrameError, match="at least two distinct"):
        hazards.estimate_b(mags, mc=3.0)


def test_legacy_completeness_and_b_value_keep_their_results(tohoku_events: pl.DataFrame) -> None:
    mags = tohoku_events.get_column("magnitude").to_numpy()
    rounded = np.round(mags / 0.1) * 0.1  # the old code, inline
    values, counts = np.unique(rounded, return_counts=True)
    assert hazards.completeness_magnitude(mags) == float(values[np.argmax(counts)] + 0.2)
    mc = hazards.completeness_magnitude(mags)
    above = mags[mags >= mc - 1e-9]
    assert hazards.b_value(mags, mc) == np.log10(np.e) / (above.mean() - (mc - 0.05))
    assert hazards.estimate_b(mags, mc=mc, method="utsu").b == pytest.approx(hazards.b_value(mags, mc), rel=1e-12)
