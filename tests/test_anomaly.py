"""Behaviour of the anomaly library on the real STLFSI4 weekly series (tests/data/README.md)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from anomaly import calibrate, combine, grade, interval_exceedance, subsequence_iforest
from core.errors import ConfigError, FrameError
from core.frames import QUANTILES, quantile_column, validate_scores
from forecasting import forecast_statistical
from tests.fred_series import load_fred

UID = "STLFSI4"
WINDOW = 4  # the [anomaly] window for W-FRI
ALARM = 0.99  # the [risk] blue threshold
THRESHOLDS = {"blue": 0.99, "yellow": 0.995, "orange": 0.998, "red": 0.9995}
QUANTILE_COLUMNS = [quantile_column(q) for q in QUANTILES]


def ensemble(series: pl.DataFrame) -> pl.DataFrame:
    """The production chain: AutoETS in-sample interval misses + subsequence forest, combined."""
    fit = forecast_statistical(series, frequencies={UID: "W-FRI"}, horizons={"W-FRI": 8}, n_jobs=1)
    scores = pl.concat([subsequence_iforest(series, windows={UID: WINDOW}), interval_exceedance(fit.fitted)])
    return combine(scores)


def robust_sd(y: pl.Series) -> float:
    values = y.to_numpy()
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


@pytest.fixture(scope="module")
def stlfsi() -> pl.DataFrame:
    return load_fred("fred_STLFSI4.csv", UID)


@pytest.fixture(scope="module")
def clean_ensemble(stlfsi: pl.DataFrame) -> pl.DataFrame:
    return ensemble(stlfsi)


def _flagged(scores: pl.DataFrame) -> set[dt.datetime]:
    return set(scores.filter(pl.col("score") >= ALARM).get_column("ds").to_list())


@pytest.mark.parametrize(
    ("shock_day", "weeks"),
    [("2014-06-06", 1), ("2019-01-04", 1), ("2017-06-02", 8)],
    ids=["spike-2014", "spike-2019", "level-step-2017"],
)
def test_injected_shock_is_flagged_in_its_window_and_nowhere_new(
    stlfsi: pl.DataFrame, clean_ensemble: pl.DataFrame, shock_day: str, weeks: int
) -> None:
    start = dt.datetime.fromisoformat(shock_day)
    end = start + dt.timedelta(weeks=weeks)
    shocked = stlfsi.with_columns(
        pl.when(pl.col("ds").is_between(start, end, closed="left"))
        .then(pl.col("y") + 8 * robust_sd(stlfsi["y"]))
        .otherwise(pl.col("y"))
    )
    days = stlfsi.get_column("ds").to_list()
    at = days.index(start)
    alarm_window = days[at : at + WINDOW + 1]  # the shock step and the following w steps
    affected = set(days[at : at + weeks + WINDOW + 1])  # every step whose window saw the shock

    scores = ensemble(shocked)

    in_window = scores.filter(pl.col("ds").is_in(alarm_window))
    assert in_window["score"].max() >= ALARM
    quiet_before = clean_ensemble.filter(pl.col("ds").is_in(alarm_window))
    assert quiet_before["score"].max() < ALARM
    assert _flagged(scores) - affected <= _flagged(clean_ensemble)


def test_ensemble_is_the_max_with_its_driver(stlfsi: pl.DataFrame) -> None:
    series = stlfsi.tail(300)
    forest = subsequence_iforest(series, windows={UID: WINDOW})
    fit = forecast_statistical(series, frequencies={UID: "W-FRI"}, horizons={"W-FRI": 2}, n_jobs=1)
    interval = interval_exceedance(fit.fitted)
    combined = combine(pl.concat([forest, interval]))
    validate_scores(combined)
    assert set(combined["detector"]) == {"ensemble"}
    wide = forest.select("ds", pl.col("score").alias("f")).join(
        interval.select("ds", pl.col("score").alias("i")), on="ds", how="full", coalesce=True
    )
    expected = wide.select("ds", pl.max_horizontal("f", "i").alias("expected"))
    checked = combined.join(expected, on="ds")
    assert checked.height == combined.height
    assert (checked["score"] == checked["expected"]).all()
    assert (checked["raw_score"] == checked["score"]).all()
    assert set(checked["driver"]) == {"iforest_subseq", "forecast_interval"}


def test_subsequence_scores_start_after_one_window_and_need_history(stlfsi: pl.DataFrame) -> None:
    series = stlfsi.tail(120)
    scores = subsequence_iforest(series, windows={UID: WINDOW}, min_history=60)
    assert scores.height == series.height - WINDOW
    assert scores["ds"].min() == series["ds"][WINDOW]
    assert subsequence_iforest(series, windows={UID: WINDOW}, min_history=121).height == 0
    again = subsequence_iforest(series, windows={UID: WINDOW}, min_history=60)
    assert again.equals(scores)
    with pytest.raises(FrameError, match="no window length"):
        subsequence_iforest(series, windows={})


def test_interval_exceedance_is_in_half_widths_beyond_the_edge() -> None:
    day = dt.datetime(2024, 1, 1)
    fitted = pl.DataFrame(
        {
            "unique_id": "X",
            "ds": [day + dt.timedelta(days=i) for i in range(4)],
            "y": [1.0, 3.0, -2.0, 2.0],
            "model": "AutoETS",
            "mean": 1.0,
            **dict(zip(QUANTILE_COLUMNS, [0.0, 0.2, 0.5, 1.0, 1.5, 1.8, 2.0], strict=True)),
        }
    )
    raw = interval_exceedance(fitted).sort("ds")["raw_score"].to_list()
    assert raw == [0.0, 1.0, 2.0, 0.0]  # inside, 1 half-width above, 2 below, on the edge


def test_calibration_is_near_uniform_tied_and_deterministic(stlfsi: pl.DataFrame) -> None:
    forest = subsequence_iforest(stlfsi, windows={UID: WINDOW})
    scores = np.sort(forest["score"].to_numpy())
    n = len(scores)
    ecdf = np.arange(1, n + 1) / n
    ks = float(np.max(np.maximum(np.abs(ecdf - scores), np.abs(ecdf - 1 / n - scores))))
    assert ks < 0.05
    assert 0 < scores.min() and scores.max() < 1

    shuffled = forest.sample(fraction=1.0, shuffle=True, seed=7).drop("score")
    assert calibrate(shuffled).select(forest.columns).equals(forest)

    # Ties share one value: every point inside its interval scores the same.
    fit = forecast_statistical(stlfsi, frequencies={UID: "W-FRI"}, horizons={"W-FRI": 2}, n_jobs=1)
    interval = interval_exceedance(fit.fitted)
    inside = interval.filter(pl.col("raw_score") == 0)
    assert inside.height > 0.5 * interval.height
    assert inside["score"].n_unique() == 1

    with pytest.raises(FrameError, match="non-finite raw_score"):
        calibrate(forest.with_columns(pl.lit(float("nan")).alias("raw_score")))


def _score_frame(values: list[float]) -> pl.DataFrame:
    start = dt.datetime(2024, 1, 1)
    return pl.DataFrame(
        {
            "unique_id": "S",
            "ds": [start + dt.timedelta(days=i) for i in range(len(values))],
            "detector": "ensemble",
            "raw_score": values,
            "score": values,
        }
    )


def test_thresholds_map_to_the_right_levels() -> None:
    scores = _score_frame([0.5, 0.99, 0.995, 0.998, 0.9995, 0.989])
    graded = grade(scores, thresholds=THRESHOLDS, persistence_k=1, persistence_n=1)
    assert graded["level"].to_list() == ["blue", "yellow", "orange", "red"]
    evidence = json.loads(graded["evidence"][3])
    assert evidence["raw_level"] == "red" and evidence["level"] == "red"
    assert evidence["thresholds"] == THRESHOLDS
    assert evidence["driver"] == "ensemble"


def test_persistence_suppresses_isolated_spikes_but_keeps_sustained_runs() -> None:
    spikes = _score_frame([0.999, 0.1, 0.1] * 10)
    graded = grade(spikes, thresholds=THRESHOLDS, persistence_k=2, persistence_n=3)
    assert set(graded["level"]) == {"none"}  # each spike is reported, none is graded
    assert graded.height == 10
    assert json.loads(graded["evidence"][0])["hits"]["orange"] == 1

    # Alternating 0.999/0.1 puts 2 hits in every window of 3, so it needs k=2 of n=2 to stop.
    flapping = _score_frame([0.999, 0.1] * 10)
    two_of_two = grade(flapping, thresholds=THRESHOLDS, persistence_k=2, persistence_n=2)
    assert set(two_of_two["level"]) == {"none"}
    two_of_three = grade(flapping, thresholds=THRESHOLDS, persistence_k=2, persistence_n=3)
    assert "orange" in set(two_of_three["level"])

    sustained = _score_frame([0.1] * 5 + [0.999] * 4 + [0.1] * 5)
    graded = grade(sustained, thresholds=THRESHOLDS, persistence_k=2, persistence_n=3)
    levels = dict(zip(graded["ds"].to_list(), graded["level"].to_list(), strict=True))
    run = sustained["ds"].to_list()[5:9]
    assert [levels[d] for d in run] == ["none", "orange", "orange", "orange"]
    # The level holds one step past the run (2 of the last 3 still reached it).
    assert levels[sustained["ds"][9]] == "orange"


def test_grade_checks_its_inputs() -> None:
    scores = _score_frame([0.5, 0.999])
    with pytest.raises(ConfigError, match="rise strictly"):
        grade(scores, thresholds={**THRESHOLDS, "red": 0.9}, persistence_k=1, persistence_n=1)
    with pytest.raises(ConfigError, match="1 <= k <= n"):
        grade(scores, thresholds=THRESHOLDS, persistence_k=3, persistence_n=2)
    two_detectors = pl.concat([scores, scores.with_columns(pl.lit("other").alias("detector"))])
    with pytest.raises(FrameError, match="pass anomaly.combine"):
        grade(two_detectors, thresholds=THRESHOLDS, persistence_k=1, persistence_n=1)
