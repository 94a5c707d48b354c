"""CSEP tests, Brier score and reliability of aftershock forecasts: hand cases, pycsep's own
functions on the same arrays (when pycsep is installed), and a replay on the Tohoku catalog."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import FrameError
from hazards import aftershock_evaluation as ae
from ingest.sources import bundled_catalogue, parse
from ingest.sources.catalogue import SEISMIC_REGIONS

DATA = Path(__file__).resolve().parent.parent / "data"


def test_number_test_hand_case_and_pycsep() -> None:
    # 5 events observed where 3 were expected:
    #   delta1 = P(X >= 5) = 1 - P(X <= 4) = 1 - 0.8152632 = 0.1847368
    #   delta2 = P(X <= 5) = 0.9160821       (X ~ Poisson(3))
    d1, d2 = ae.number_test(3.0, 5)
    assert float(d1) == pytest.approx(0.1847368, abs=1e-7) and float(d2) == pytest.approx(0.9160821, abs=1e-7)
    d1, d2 = ae.number_test(np.array([0.5, 20.0]), np.array([0, 20]))
    assert d1[0] == pytest.approx(1.0) and d2[0] == pytest.approx(np.exp(-0.5))
    csep = pytest.importorskip("csep.core.poisson_evaluations")
    rng = np.random.default_rng(3)
    for expected, observed in zip(rng.uniform(0.01, 40, 50), rng.integers(0, 50, 50), strict=True):
        ours = ae.number_test(expected, observed)
        theirs = csep._number_test_ndarray(expected, observed)
        assert np.allclose([float(ours[0]), float(ours[1])], theirs, rtol=0, atol=1e-12)


def test_magnitude_test_matches_pycsep_with_the_same_random_numbers() -> None:
    bins = np.round(np.arange(5.0, 8.01, 0.1), 1)
    forecast = 10 ** (-1.0 * (bins - 5.0))  # GR with b = 1, rates per bin up to normalisation
    forecast = forecast - np.append(forecast[1:], 0.0)
    rng = np.random.default_rng(7)
    observed = np.bincount(
        np.searchsorted(np.cumsum(forecast) / forecast.sum(), rng.random(120), side="right"), minlength=bins.size
    )[: bins.size].astype(float)
    randoms = np.random.default_rng(11).random((200, int(observed.sum())))
    ours = ae.magnitude_test(forecast, observed, num_simulations=200, random_numbers=randoms)
    assert ours.n_observed == 120 and 0.025 < ours.quantile <= 1.0  # drawn from the forecast: not rejected
    steep = 10 ** (-2.0 * (bins - 5.0))  # b = 2: far too few large events
    steep = steep - np.append(steep[1:], 0.0)
    assert ae.magnitude_test(steep, observed, num_simulations=200, seed=1).quantile < 0.025
    csep = pytest.importorskip("csep.core.poisson_evaluations")
    quantile, observed_ll, simulated = csep._poisson_likelihood_test(
        forecast,
        observed,
        num_simulations=200,
        random_numbers=randoms,
        use_observed_counts=True,
        verbose=False,
        normalize_likelihood=True,
    )
    assert ours.quantile == quantile
    assert ours.observed_log_likelihood == pytest.approx(observed_ll, rel=1e-12)
    assert np.allclose(ours.simulated_log_likelihood, simulated, rtol=1e-12)
    with pytest.raises(FrameError, match="same magnitude bins"):
        ae.magnitude_test(forecast, observed[:-1])


def test_brier_score_and_reliability_table() -> None:
    p = np.array([0.0, 0.0, 0.5, 0.5, 1.0])
    o = np.array([0, 0, 1, 0, 1])
    assert ae.brier_score(p, o) == pytest.approx((0 + 0 + 0.25 + 0.25 + 0) / 5)
    table = ae.reliability_table(p, o, edges=(0.0, 0.1, 0.6, 1.0))
    assert table.rows() == [(0.0, 0.1, 2, 0.0, 0.0), (0.1, 0.6, 2, 0.5, 0.5), (0.6, 1.0, 1, 1.0, 1.0)]


@pytest.fixture(scope="module")
def tohoku_events() -> pl.DataFrame:
    item = next(
        b for b in bundled_catalogue(DATA) if b.relative_path == "seismic/usgs_comcat_japan_2005_2014_processed.csv"
    )
    events = parse(DATA / item.relative_path, item.format, **item.options).events
    box = SEISMIC_REGIONS["japan"][0]
    return events.filter(
        pl.col("lat").is_between(box["min_lat"], box["max_lat"])
        & pl.col("lon").is_between(box["min_lon"], box["max_lon"])
    )


def test_replay_on_the_tohoku_catalog(tohoku_events: pl.DataFrame) -> None:
    dates = [dt.datetime(2010, 3, 2) + dt.timedelta(days=7 * i) for i in range(104)]  # two years, weekly
    result = ae.evaluate_aftershock_forecasts(tohoku_events, dates=dates, setting="subduction", m_test_simulations=200)
    summary = result.summary
    assert summary["settings"]["windows_overlap"] is False and summary["settings"]["regime"] == "SZ-GENERIC"
    assert summary["training"]["mc"] == pytest.approx(4.5) and summary["training"]["first_event"] == "2005-01-05"
    poisson, rj, rate = summary["poisson"], summary["reasenberg_jones"], summary["rate_test"]
    assert poisson["n_forecasts"] == rj["n_forecasts"] == rate["n_forecasts"] == 104
    assert poisson["observed_total"] == rj["observed_total"] > 500  # the Tohoku sequence is in the window
    # The constant rate cannot follow a sequence: its total N-test fails; RJ's forecasts gain information.
    assert poisson["n_test_total_delta1"] < 1e-6
    assert rj["information_gain_per_forecast"] > 1.0
    assert abs(rj["expected_total"] - rj["observed_total"]) < abs(poisson["expected_total"] - poisson["observed_total"])
    assert rj["brier"] < rate["brier"] and rj["brier_skill_vs_poisson"] > 0
    # The baseline has no look-ahead: the same probability every week, from the training span only.
    base = result.forecasts.filter(pl.col("model") == "poisson").get_column("probability")
    assert base.n_unique() == 1 and base[0] == pytest.approx(summary["training"]["poisson_p_target"])
    week = result.forecasts.filter((pl.col("model") == "reasenberg_jones") & (pl.col("ds") == dt.datetime(2011, 3, 15)))
    assert week.get_column("mainshock_magnitude").item() == 9.1 and week.get_column("probability").item() > 0.99
    assert set(result.reliability.get_column("model")) == {"poisson", "reasenberg_jones", "rate_test"}
    bins = result.magnitude_bins.filter(pl.col("model") == "poisson")
    assert bins.get_column("observed").sum() == poisson["observed_total"]
    with pytest.raises(FrameError, match="before the first forecast date"):
        ae.evaluate_aftershock_forecasts(tohoku_events, dates=[dt.datetime(2005, 1, 10)])
    with pytest.raises(FrameError, match="completeness"):
        ae.evaluate_aftershock_forecasts(tohoku_events, dates=dates[:2], count_magnitude=3.0)
