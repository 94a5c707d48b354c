"""Detectors and calibration on real series: injected shocks, uniform calibration, PyOD family.

Data: tests/data (FRED DGS10 last 800 days, STLFSI4; see tests/data/README.md).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

import anomaly
import hazards
from core.errors import FrameError
from core.frames import QUANTILES, quantile_column, validate_scores
from tests.fred_series import load_fred

ALARM = 0.99


def ensemble(series: pl.DataFrame) -> pl.DataFrame:
    return anomaly.combine(anomaly.detect(series, windows={"DGS10": 5}))


@pytest.mark.parametrize("at", [400, 650], ids=["mid-2024", "2025"])
def test_injected_shock_is_flagged_in_its_window_and_nowhere_else(dgs10: pl.DataFrame, at: int) -> None:
    """A 0.5 percentage-point jump for one day in the real 10-year yield (about 8 daily sds)."""
    clean = ensemble(dgs10)
    days = dgs10.get_column("ds").to_list()
    shocked_series = dgs10.with_columns(
        pl.when(pl.col("ds") == days[at]).then(pl.col("y") + 0.5).otherwise(pl.col("y")).alias("y")
    )
    shocked = ensemble(shocked_series)
    window = set(days[at : at + 6])  # the shock day and the subsequence windows that contain it
    flagged_clean = set(clean.filter(pl.col("score") >= ALARM).get_column("ds").to_list())
    flagged = set(shocked.filter(pl.col("score") >= ALARM).get_column("ds").to_list())
    assert days[at] in flagged
    assert not (window & flagged_clean)  # the clean series was quiet there
    assert flagged - window <= flagged_clean  # and nothing new appears elsewhere
    driver = shocked.filter(pl.col("ds") == days[at]).get_column("driver").item()
    assert driver in ("level", "change", "subseq_pca")


def test_causal_calibration_is_near_uniform_on_a_real_detector_history() -> None:
    series = load_fred("fred_STLFSI4.csv", "STLFSI4")
    scores = anomaly.level_novelty(series)
    validate_scores(scores)
    # Beyond the warm-up each point is ranked against its past: the calibrated values of a
    # stationary-ish history spread out over (0, 1) like a uniform sample.
    values = np.sort(scores.get_column("score").to_numpy()[250:])
    n = len(values)
    ks = float(np.max(np.abs(values - np.arange(1, n + 1) / n)))
    assert ks < 0.12
    assert values.min() >= 0.0 and values.max() < 1.0
    # The same raw history always calibrates the same way (deterministic, no clock).
    assert anomaly.level_novelty(series).equals(scores)


def test_tail_probability_extrapolates_beyond_the_largest_value_seen() -> None:
    rng = np.random.default_rng(3)
    raw = np.abs(rng.standard_normal(2000))
    raw = np.append(raw, [raw.max() + 0.5, raw.max() + 3.0])
    p = anomaly.tail_probability(raw)
    assert p[-1] < p[-2] < 1.0 / 2000  # both beyond history, the farther one rarer
    with pytest.raises(FrameError, match="NaN or infinite"):
        anomaly.tail_probability(np.array([1.0, np.nan]))


@pytest.mark.parametrize("method", anomaly.PYOD_METHODS)
def test_every_pyod_subsequence_method_scores_a_real_series(dgs10: pl.DataFrame, method: str) -> None:
    series = dgs10.tail(300)
    scores = anomaly.subsequence_scores(series, method=method, windows={"DGS10": 5}, blocks=3)
    validate_scores(scores)
    assert scores.height == series.height
    assert set(scores["detector"]) == {f"subseq_{method}"}
    assert scores["raw_score"].is_finite().all()


def test_window_follows_the_dominant_period() -> None:
    t = np.arange(2000)
    y = np.sin(2 * np.pi * t / 48) + 0.1 * np.random.default_rng(0).standard_normal(2000)
    assert anomaly.dominant_period(y) in (47, 48, 49)
    assert anomaly.default_window(y) == anomaly.dominant_period(y)
    assert anomaly.dominant_period(np.cumsum(np.ones(500))) is None  # a trend has no period


def test_forecast_surprise_is_in_normal_units_of_the_quantile_fan() -> None:
    day = dt.datetime(2024, 1, 1)
    qcols = [quantile_column(q) for q in QUANTILES]
    fan = dict(zip(qcols, [-1.645, -1.2816, -0.6745, 0.0, 0.6745, 1.2816, 1.645], strict=True))  # N(0, 1)
    fitted = pl.DataFrame(
        {
            "unique_id": "X",
            "ds": [day + dt.timedelta(days=i) for i in range(4)],
            "y": [0.0, 1.645, -0.6745, 3.0],
            "model": "m",
            "mean": 0.0,
            **fan,
        }
    )
    raw = anomaly.forecast_surprise(fitted).sort("ds").get_column("raw_score").to_list()
    assert raw == pytest.approx([0.0, 1.645, 0.6745, 3.0], abs=2e-3)


def test_exceedance_probabilities_become_scores_at_the_last_observation() -> None:
    now = dt.datetime(2024, 3, 1)
    probs = pl.DataFrame(
        {
            "unique_id": ["A", "A", "B"],
            "ds": [now + dt.timedelta(days=d) for d in (1, 2, 1)],
            "threshold": [5.0, 5.0, 1.0],
            "p_step_exceed": [0.1, 0.3, 0.05],
            "p_path_cross": [0.2, 0.45, 0.05],
        }
    )
    rows = anomaly.exceedance_scores(probs, at={"A": now, "B": now})
    assert rows.get_column("score").to_list() == [0.45, 0.05]
    assert rows.get_column("ds").to_list() == [now, now]
    with pytest.raises(FrameError, match="lacks"):
        anomaly.exceedance_scores(probs.drop("p_path_cross"), at={"A": now})


def test_level_and_trend_shifts_and_offline_steps() -> None:
    rng = np.random.default_rng(1)
    y = np.concatenate([rng.normal(0, 1, 300), rng.normal(4, 1, 300)])
    assert hazards.find_change_points(y) == [300] or abs(hazards.find_change_points(y)[0] - 300) <= 3
    ds = [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(600)]
    scores = anomaly.shift_scores(pl.DataFrame({"unique_id": "S", "ds": ds, "y": y}), span=20)
    level = scores.filter(pl.col("detector") == "level_shift").sort("ds")
    peak = level.sort("raw_score", descending=True).get_column("ds")[0]
    assert abs((peak - ds[300]).days) <= 20
    assert hazards.find_change_points(rng.normal(0, 1, 600)) == []


def test_suppress_repeats_keeps_onsets_only() -> None:
    day = dt.datetime(2024, 1, 1)
    frame = pl.DataFrame(
        {
            "unique_id": "S",
            "ds": [day + dt.timedelta(days=i) for i in range(6)],
            "detector": "ensemble",
            "raw_score": 0.0,
            "score": [0.1, 0.99, 0.98, 0.995, 0.2, 0.2],
        }
    )
    out = anomaly.suppress_repeats(frame, span=3).get_column("score").to_list()
    assert out == pytest.approx([0.1, 0.99, 0.49, 0.995, 0.1, 0.1])


def test_alarm_form_keeps_onsets_and_ranks_the_rest_below_them() -> None:
    day = dt.datetime(2024, 1, 1)
    scores = [0.1, 0.999, 0.9995, 0.5, 0.9999, 0.2, 0.2, 0.2, 0.9991]
    frame = pl.DataFrame(
        {
            "unique_id": "S",
            "ds": [day + dt.timedelta(days=i) for i in range(9)],
            "detector": "ensemble",
            "raw_score": 0.0,
            "score": scores,
        }
    )
    out = anomaly.alarm_form(frame, span=3, level=0.998).get_column("score").to_list()
    # Onsets at 1 and 8 (beats the 3 before it, more than 3 steps after the last onset);
    # 2 and 4 beat their past but fall in the cool-down after 1.
    assert out[1] == pytest.approx(0.999) and out[8] == pytest.approx(0.9991)
    rest = [out[i] for i in range(8) if i != 1]
    assert max(rest) < 0.998
    assert rest == pytest.approx([0.998 * scores[i] for i in range(8) if i != 1])
    with pytest.raises(FrameError, match="span"):
        anomaly.alarm_form(frame, span=0, level=0.998)


def test_gpd_tail_is_less_extreme_than_the_exponential_on_heavy_tails() -> None:
    rng = np.random.default_rng(3)
    raw = rng.pareto(2.5, 3000)  # heavy tail (shape 0.4)
    raw[2900] = np.quantile(raw[:2900], 0.9995)  # a routine extreme of this history
    expo = anomaly.tail_probability(raw)
    gpd = anomaly.tail_probability(raw, tail="gpd")
    assert gpd[2900] > expo[2900]
    # Never rarer than the history shows: at least the share of earlier scores as high.
    share = np.mean(raw[:2850] >= raw[2900])
    assert gpd[2900] >= share
    assert np.all((gpd > 0) & (gpd <= 1))
    with pytest.raises(FrameError, match="tail model"):
        anomaly.tail_probability(raw, tail="weibull")


def test_alarm_scores_flag_an_injected_shock_once_and_stay_below_the_level_elsewhere(dgs10: pl.DataFrame) -> None:
    y = dgs10.get_column("y").to_numpy().copy()
    y[650] += 0.6
    series = dgs10.with_columns(pl.Series("y", y))
    out = anomaly.alarm_scores(series, windows={"DGS10": 5}).sort("ds")
    score = out.get_column("score").to_numpy()
    assert out.height == dgs10.height and np.all(np.isfinite(score))
    onsets = np.flatnonzero(score >= anomaly.ALARM_LEVEL)
    assert 650 in onsets
    assert len(onsets) <= 3
    # The shock's stretch keeps a high rank after its onset (held), below the level.
    assert np.all(score[651:660] > np.median(score)) and np.all(score[651:660] < anomaly.ALARM_LEVEL)


def test_subsequence_window_and_warmup_scores_ignore_the_future() -> None:
    # Same first 15%, a different period afterwards: the window (read from the warm-up) and
    # so the warm-up scores must not change.
    n = 2000
    t = np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(5)
    early = np.sin(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(n)
    late = early.copy()
    late[400:] = 3 * np.sin(2 * np.pi * t[400:] / 50)
    ds = [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)]
    a = anomaly.subsequence_scores(pl.DataFrame({"unique_id": "S", "ds": ds, "y": early}), method="pca")
    b = anomaly.subsequence_scores(pl.DataFrame({"unique_id": "S", "ds": ds, "y": late}), method="pca")
    warm = 300  # 15% of 2000
    assert a.get_column("raw_score")[:warm].to_list() == pytest.approx(b.get_column("raw_score")[:warm].to_list())


def _pit_reference(y: np.ndarray, fan: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The row-by-row definition of ``anomaly.residuals.pit_levels`` (np.interp inside)."""
    from scipy.stats import norm

    fan = np.sort(fan, axis=1)
    z_lo, z_hi = norm.ppf(levels[0]), norm.ppf(levels[-1])
    sigma = np.maximum((fan[:, -1] - fan[:, 0]) / (z_hi - z_lo), 1e-9 * (np.abs(fan[:, 0]) + 1.0))
    out = np.empty(len(y))
    for i, row in enumerate(fan):
        if y[i] < row[0]:
            out[i] = norm.cdf(z_lo - (row[0] - y[i]) / sigma[i])
        elif y[i] > row[-1]:
            out[i] = norm.sf(-(z_hi + (y[i] - row[-1]) / sigma[i]))
        else:
            out[i] = np.interp(y[i], row, levels) if row[-1] > row[0] else 0.5
    return np.clip(out, 1e-300, 1.0 - 1e-16)


def test_pit_levels_equal_the_row_by_row_interpolation_on_a_real_series(dgs10: pl.DataFrame) -> None:
    """The vectorised PIT equals np.interp row by row, ties included: each day's fan is the
    real 10-year yield's empirical quantiles over the 20 days before (quoted to 0.01, so fans
    have tied quantiles, and many days sit exactly on a quantile or beyond the outer ones)."""
    from anomaly.residuals import pit_levels

    y = dgs10.sort("ds").get_column("y").to_numpy()
    levels = np.asarray(QUANTILES)
    days = np.arange(20, len(y))
    fan = np.stack([np.quantile(y[t - 20 : t], levels, method="lower") for t in days])
    got, want = pit_levels(y[days], fan), _pit_reference(y[days], fan, levels)
    on_quantile = (fan == y[days][:, None]).any(axis=1)
    tied = (np.diff(fan, axis=1) == 0).any(axis=1)
    assert on_quantile.sum() > 50 and tied.sum() > 50
    assert (y[days] < fan[:, 0]).sum() > 20 and (y[days] > fan[:, -1]).sum() > 20
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
