"""Exceedance probabilities against cases with a known answer, and threshold resolution."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

from core.errors import FrameError
from core.frames import QUANTILES, quantile_column
from forecasting import exceedance_probabilities, parse_threshold, resolve_thresholds

DATA = Path(__file__).parent / "data"


def gaussian_forecast(sigmas: list[float], mean: float = 0.0, uid: str = "X") -> pl.DataFrame:
    """A forecast whose step t is exactly Normal(mean, sigmas[t]) at the contract quantiles."""
    start = datetime(2024, 1, 1)
    rows = []
    for t, s in enumerate(sigmas):
        row = {"unique_id": uid, "ds": start + timedelta(days=t + 1), "model": "Exact", "mean": mean}
        row.update({quantile_column(q): mean + s * float(norm.ppf(q)) for q in QUANTILES})
        rows.append(row)
    return pl.DataFrame(rows)


def threshold(value: float, direction: str = "above", uid: str = "X") -> pl.DataFrame:
    return pl.DataFrame({"unique_id": [uid], "threshold": [f"abs:{value}"], "value": [value], "direction": [direction]})


def test_step_probability_is_exact_for_a_normal_forecast() -> None:
    fc = gaussian_forecast([1.0])
    for value, expected in [
        (norm.ppf(0.9), 0.1),
        (0.0, 0.5),
        (2.0, 1 - norm.cdf(2.0)),
        (0.3, 1 - norm.cdf(0.3)),
        (1.5, 1 - norm.cdf(1.5)),
        (3.0, 1 - norm.cdf(3.0)),
        (-2.5, 1 - norm.cdf(-2.5)),
    ]:
        got = exceedance_probabilities(fc, threshold(value))["p_step_exceed"][0]
        assert got == pytest.approx(expected, abs=1e-9), value
    below = exceedance_probabilities(fc, threshold(-2.0, "below"))["p_step_exceed"][0]
    assert below == pytest.approx(norm.cdf(-2.0), abs=1e-6)  # tails are exact normal


def test_path_of_identical_steps_without_growing_spread_crosses_like_its_worst_step() -> None:
    # Constant spread = no new uncertainty after step 1: the whole path moves together.
    fc = gaussian_forecast([1.0, 1.0, 1.0, 1.0])
    out = exceedance_probabilities(fc, threshold(2.0))
    assert out["p_path_cross"].to_list() == pytest.approx([1 - norm.cdf(2.0)] * 4, abs=1e-9)
    inside = exceedance_probabilities(fc, threshold(1.5))  # between q90 and q95
    assert inside["p_path_cross"].to_list() == pytest.approx([1 - norm.cdf(1.5)] * 4, abs=1e-9)


def test_path_crossing_of_a_random_walk_matches_direct_simulation() -> None:
    h, level = 10, 3.0
    fc = gaussian_forecast([float(np.sqrt(t + 1)) for t in range(h)])  # N(0, t): a random walk
    out = exceedance_probabilities(fc, threshold(level), paths=20_000)
    walks = np.cumsum(np.random.default_rng(7).standard_normal((200_000, h)), axis=1)
    direct = np.maximum.accumulate(walks > level, axis=1).mean(axis=0)
    p_path = out["p_path_cross"].to_numpy()
    assert np.abs(p_path - direct).max() < 0.01
    p_step = out["p_step_exceed"].to_numpy()
    assert p_step[-1] == pytest.approx(1 - norm.cdf(level / np.sqrt(h)), abs=1e-9)
    # Bounds that hold whatever the dependence: worst step <= path <= sum of steps.
    assert (p_path >= np.maximum.accumulate(p_step) - 1e-12).all()
    assert (p_path <= np.cumsum(p_step) + 1e-12).all()
    assert (np.diff(p_path) >= 0).all()
    # Continuous-time reflection principle is an upper bound for a walk watched at steps.
    assert p_path[-1] < 2 * (1 - norm.cdf(level / np.sqrt(h)))


def test_reruns_are_identical_and_certain_cases_are_certain() -> None:
    fc = gaussian_forecast([1.0, 1.5, 2.0])
    a = exceedance_probabilities(fc, threshold(2.0))
    assert a.equals(exceedance_probabilities(fc, threshold(2.0)))
    far_below = exceedance_probabilities(fc, threshold(-50.0))
    assert far_below["p_step_exceed"].to_list() == pytest.approx([1.0] * 3)
    assert far_below["p_path_cross"].to_list() == pytest.approx([1.0] * 3)
    far_above = exceedance_probabilities(fc, threshold(50.0))
    assert far_above["p_path_cross"].max() == pytest.approx(0.0, abs=1e-12)


def test_one_model_per_series_is_required() -> None:
    two = pl.concat([gaussian_forecast([1.0]), gaussian_forecast([1.0]).with_columns(pl.lit("Other").alias("model"))])
    with pytest.raises(FrameError, match="one model per series"):
        exceedance_probabilities(two, threshold(1.0))


def test_threshold_specs_parse_and_bad_ones_say_how_to_write_them() -> None:
    assert parse_threshold("p99") == ("p", 99.0, "above")
    assert parse_threshold("abs:-2.5:below") == ("abs", -2.5, "below")
    assert parse_threshold("rl10") == ("rl", 10.0, "above")
    with pytest.raises(FrameError, match="not understood"):
        parse_threshold("99th")
    with pytest.raises(FrameError, match="outside"):
        parse_threshold("p100")


def test_thresholds_resolve_from_real_history() -> None:
    raw = pl.read_csv(DATA / "fred_STLFSI4.csv", schema_overrides={"value": pl.Float64})
    series = raw.drop_nulls().select(
        pl.lit("STLFSI4").alias("unique_id"),
        pl.col("date").str.to_datetime("%Y-%m-%d").alias("ds"),
        pl.col("value").alias("y"),
    )
    found, notes = resolve_thresholds(series, {"STLFSI4": ["p99", "p1:below", "rl10", "abs:1.0"]})
    values = dict(zip(found["threshold"], found["value"], strict=True))
    y = series["y"].to_numpy()
    assert values["p99"] == pytest.approx(np.percentile(y, 99))
    assert values["p1:below"] == pytest.approx(np.percentile(y, 1))
    assert values["abs:1.0"] == 1.0
    # Gumbel by moments on the annual maxima, written out independently here.
    annual = series.group_by(pl.col("ds").dt.year()).agg(pl.col("y").max())["y"].to_numpy()
    beta = np.sqrt(6) * annual.std(ddof=1) / np.pi
    expected = annual.mean() - 0.5772156649 * beta - beta * np.log(-np.log(1 - 1 / 10))
    assert values["rl10"] == pytest.approx(expected)
    assert annual.max() > values["rl10"] > np.median(annual)  # 2008 and 2020 exceeded it
    assert notes == []
    short, notes = resolve_thresholds(series.tail(100), {"STLFSI4": ["rl10"]})
    assert short.height == 0 and "needs 5" in notes[0][2]


def test_history_thresholds_a_trending_series_has_passed_are_skipped_with_a_note() -> None:
    # US CPI rises for decades: its own p99 and 10-year return level are passed and stay
    # passed, so "probability of crossing them" would flag risk every month.
    def load(path: Path, uid: str) -> pl.DataFrame:
        raw = pl.read_csv(path, schema_overrides={"value": pl.Float64})
        return raw.drop_nulls().select(
            pl.lit(uid).alias("unique_id"),
            pl.col("date").str.to_datetime("%Y-%m-%d").alias("ds"),
            pl.col("value").alias("y"),
        )

    unrate = load(DATA / "fred_UNRATE.csv", "unrate")
    trending = load(Path(__file__).parent.parent / "data" / "market" / "fred_CPIAUCSL.csv", "trend")
    both = pl.concat([unrate, trending])
    specs = {uid: ["p99", "rl10", "abs:5.0"] for uid in ("unrate", "trend")}
    found, notes = resolve_thresholds(both, specs)
    kept = set(zip(found["unique_id"], found["threshold"], strict=True))
    assert {("unrate", "p99"), ("unrate", "rl10"), ("unrate", "abs:5.0")} <= kept
    assert ("trend", "abs:5.0") in kept  # an explicit threshold always applies
    assert ("trend", "p99") not in kept and ("trend", "rl10") not in kept
    skipped = {(uid, spec): why for uid, spec, why in notes}
    assert "trending series" in skipped[("trend", "p99")]
    assert "[forecast] series_thresholds" in skipped[("trend", "rl10")]


def test_many_series_and_thresholds_at_once_equal_each_one_alone() -> None:
    """One call over several series (different horizons) and several thresholds each gives, row
    for row, what each (series, threshold) gives on its own: the one frame the function builds
    keeps every threshold with its own series' steps."""
    forecasts = pl.concat(
        [
            gaussian_forecast([1.0, 1.5, 2.0], mean=0.0, uid="A"),
            gaussian_forecast([0.5, 0.5, 1.0, 2.0, 3.0], mean=10.0, uid="B"),
            gaussian_forecast([2.0], mean=-1.0, uid="C"),
        ]
    )
    thresholds = pl.concat(
        [
            threshold(1.0, uid="A"),
            threshold(-2.0, "below", uid="A"),
            threshold(11.0, uid="B"),
            threshold(0.0, "below", uid="C"),
            threshold(3.0, uid="C"),
        ]
    ).with_columns(pl.format("{}-{}", "threshold", "direction").alias("threshold"))
    together = exceedance_probabilities(forecasts, thresholds)
    alone = pl.concat(
        [
            exceedance_probabilities(forecasts.filter(pl.col("unique_id") == row["unique_id"]), pl.DataFrame([row]))
            for row in thresholds.iter_rows(named=True)
        ]
    ).sort("unique_id", "threshold", "ds")
    assert together.height == 3 * 2 + 5 + 1 * 2
    assert together.equals(alone)
