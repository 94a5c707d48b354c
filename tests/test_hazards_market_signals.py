"""The market composite's inputs as known when, the KLR thresholds, the CISS weighting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import hazards
from core.errors import FrameError
from hazards.market_indicators import IndicatorSpec

DATA = Path(__file__).resolve().parent.parent / "data"


def _fred(name: str, uid: str) -> pl.DataFrame:
    f = pl.read_csv(DATA / "market" / name, schema_overrides={"value": pl.Float64}, null_values=["", "."])
    return f.drop_nulls().select(
        pl.lit(uid).alias("unique_id"),
        pl.col("date").str.to_datetime("%Y-%m-%d", time_unit="us").alias("ds"),
        pl.col("value").alias("y"),
    )


SPECS = [
    IndicatorSpec("rates_volatility", "dgs10", "volatility", "bonds", window=20),
    IndicatorSpec("curve_inversion", "t10y2y", "inverted", "bonds"),
    IndicatorSpec("unemployment", "unrate", "level", "labour"),
]
FREQS = {"dgs10": "B", "t10y2y": "B", "unrate": "MS"}


def _bundled() -> pl.DataFrame:
    return pl.concat(
        [_fred("fred_DGS10.csv", "dgs10"), _fred("fred_T10Y2Y.csv", "t10y2y"), _fred("fred_UNRATE.csv", "unrate")]
    )


def test_composite_at_t_uses_only_data_published_by_t() -> None:
    """Cut the data at t (keep what was published by t), rebuild: every row up to t is the
    same. A monthly value (UNRATE, stamped on the 1st) enters only after its month."""
    series = _bundled()
    full = hazards.market_composite(series, SPECS, frequencies=FREQS)
    cut = dt.datetime(2008, 9, 12)
    known = series.filter(
        pl.when(pl.col("unique_id") == "unrate")
        .then(pl.col("ds").dt.offset_by("1mo") <= cut + dt.timedelta(days=1))
        .otherwise(pl.col("ds") <= cut)
    )
    early = hazards.market_composite(known, SPECS, frequencies=FREQS)
    assert early.get_column("ds").max() == cut
    same = full.filter(pl.col("ds") <= cut)
    assert same.height == early.height > 1000
    for col in ["composite", "bonds", "labour", "rates_volatility", "unemployment"]:
        np.testing.assert_allclose(same.get_column(col).to_numpy(), early.get_column(col).to_numpy(), rtol=0, atol=0)
    # August 2008's unemployment rate (6.1 %) is stamped 2008-08-01 but published in September:
    # the Friday 2008-08-29 still carries July's 5.8 %, 2008-09-05 has August's.
    row = full.filter(pl.col("ds").is_in([dt.datetime(2008, 8, 29), dt.datetime(2008, 9, 5)]))
    assert row.get_column("unemployment").to_list() == [5.8, 6.1]


def test_klr_threshold_finds_the_known_best_threshold() -> None:
    """Values above 5 precede a crisis; 3..5 is noise half the time; below 3 never. The
    NSR-minimising threshold is the smallest value above 5 in the candidate quantiles, with
    NSR 0 (no noise) and every crisis-ahead row signalled."""
    rng = np.random.default_rng(7)
    quiet = rng.uniform(0.0, 3.0, 700)
    noisy = rng.uniform(3.0, 5.0, 200)
    warning = rng.uniform(5.0, 6.0, 100)
    values = np.concatenate([quiet, noisy, warning])
    ahead = np.concatenate([np.zeros(700, bool), rng.random(200) < 0.1, np.ones(100, bool)])
    fit = hazards.klr_threshold(values, ahead)
    # quantile 0.90 of the values separates the noise band from the warning band
    assert fit.quantile == pytest.approx(0.90)
    assert noisy.max() < fit.threshold <= warning.min()
    a_plus_c = int(ahead.sum())
    assert fit.a + fit.c == a_plus_c and fit.b == 0
    assert fit.nsr == 0.0 and fit.a == 100
    # the 3..5 band alone would have been worse: its NSR is positive
    lower = (values >= 3.0).astype(bool)
    noise = np.sum(lower & ~ahead) / np.sum(~ahead)
    assert noise / (np.sum(lower & ahead) / a_plus_c) > 0.1
    # an indicator whose top values never precede a crisis gets no weight in the composite
    x = np.arange(300.0)
    late = np.zeros(300, bool)
    late[:10] = True  # the crises follow the ten lowest values only
    never = hazards.klr_threshold(x, late)
    assert never.weight == 0.0 and never.a == 0 and not np.isfinite(never.threshold)


def test_stress_in_two_segments_at_once_scores_higher_than_in_one() -> None:
    """CISS's point: with correlated stress the composite approaches the mean of the
    sub-indices; the same sub-index levels with one segment alone stressed score lower."""
    n = 400
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, (n, 3))
    ds = pl.datetime_range(
        dt.datetime(2000, 1, 7), dt.datetime(2000, 1, 7) + dt.timedelta(weeks=n - 1), "7d", eager=True
    )
    together = base.copy()
    together[300:, 0] += 6.0
    together[300:, 1] += 6.0
    alone = base.copy()
    alone[300:, 0] += 6.0
    segments = {"a": ["a"], "b": ["b"], "c": ["c"]}

    def composite(x: np.ndarray) -> pl.DataFrame:
        return hazards.stress_composite(
            pl.DataFrame({"ds": ds, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), segments=segments
        )

    both, one = composite(together), composite(alone)
    assert both["composite"][-1] > one["composite"][-1] + 0.1
    assert both["avg_correlation"][-1] > one["avg_correlation"][-1]
    # the contributions add up to the composite, and the stressed segments carry it
    last = both.row(-1, named=True)
    total = last["contribution_a"] + last["contribution_b"] + last["contribution_c"]
    assert total == pytest.approx(last["composite"], rel=1e-9)
    assert min(last["contribution_a"], last["contribution_b"]) > last["contribution_c"]


def test_crisis_labels_and_episodes() -> None:
    events = pl.DataFrame(
        {
            "onset": [dt.datetime(2001, 3, 12), dt.datetime(2002, 7, 10), dt.datetime(2008, 7, 9)],
            "trough": [dt.datetime(2001, 9, 21), dt.datetime(2002, 7, 23), None],
            "end": [dt.datetime(2001, 12, 5), dt.datetime(2002, 8, 22), None],
        }
    )
    merged = hazards.crisis_episodes(events, gap_days=365)
    assert merged.height == 2  # the 2002 leg is within a year of the 2001 trough
    assert merged.row(0, named=True)["trough"] == dt.datetime(2002, 7, 23)
    ds = [dt.datetime(2000, 3, 13), dt.datetime(2000, 3, 11), dt.datetime(2001, 6, 1), dt.datetime(2007, 9, 1)]
    labels = hazards.crisis_labels(ds, merged, horizon_days=365, known_until=dt.datetime(2008, 1, 1))
    # 2000-03-13 is within a year of the 2001-03-12 onset, 2000-03-11 is not; 2007-09-01
    # has the 2008 onset ahead
    assert labels.get_column("ahead").to_list() == [True, False, False, True]
    assert labels.get_column("in_crisis").to_list() == [False, False, True, False]
    # 2007-09 + 365 days is past what the event list covers: nobody knows yet
    assert labels.get_column("usable").to_list() == [True, True, False, False]
    with pytest.raises(FrameError, match="onset"):
        hazards.crisis_labels(ds, pl.DataFrame({"start": ds}), horizon_days=365)


def test_market_signals_levels_and_their_training_probability() -> None:
    n = 520
    ds = pl.datetime_range(
        dt.datetime(1990, 1, 5), dt.datetime(1990, 1, 5) + dt.timedelta(weeks=n - 1), "7d", eager=True
    )
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, n)
    y = rng.uniform(0, 1, n)
    onsets = [ds[150], ds[400]]
    for o in onsets:
        i = ds.to_list().index(o)
        x[i - 30 : i] = 2.0  # both indicators lead each crisis by 30 weeks
        y[i - 20 : i] = 2.0
    frame = pl.DataFrame({"ds": ds, "x": x, "y": y, "composite": (x + y) / 2})
    events = pl.DataFrame({"onset": onsets, "trough": [o + dt.timedelta(weeks=10) for o in onsets]})
    labels = hazards.crisis_labels(ds, events, horizon_days=365)
    model = hazards.MarketSignals(indicators=["x", "y"]).fit(frame, labels)
    applied = model.apply(frame)
    i = ds.to_list().index(onsets[1])
    row = applied.row(i - 5, named=True)
    assert row["signal_x"] and row["signal_y"] and row["signal_composite"]
    assert row["level"] == "red" and row["signal_share"] == pytest.approx(1.0)
    assert row["probability"] == pytest.approx(model.level_probability["red"]) and row["probability"] > 0.9
    quiet = applied.row(i + 40, named=True)
    assert quiet["level"] in ("none", "blue") and quiet["probability"] < 0.5
    with pytest.raises(FrameError, match="ladder"):
        hazards.MarketSignals(indicators=["x"], ladder={"red": (0.5, True), "yellow": (0.9, False)})
