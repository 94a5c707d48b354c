"""Grading: persistence and cool-down stop flapping; evidence carries detectors, exceedance, freshness."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

import anomaly
from core.errors import ConfigError

THRESHOLDS = {"blue": 0.97, "yellow": 0.99, "orange": 0.995, "red": 0.998}
START = dt.datetime(2024, 1, 1)


def frame(values: list[float], uid: str = "S") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": uid,
            "ds": [START + dt.timedelta(days=i) for i in range(len(values))],
            "detector": "ensemble",
            "raw_score": values,
            "score": values,
        }
    )


def transitions(graded: pl.DataFrame, n: int) -> int:
    """How often the level changes over the full series (ungraded steps count as none)."""
    days = pl.DataFrame({"ds": [START + dt.timedelta(days=i) for i in range(n)]})
    levels = days.join(graded.select("ds", "level"), on="ds", how="left").get_column("level").fill_null("none")
    return sum(a != b for a, b in zip(levels[:-1], levels[1:], strict=True))


def test_persistence_and_cooldown_stop_a_flapping_series() -> None:
    # Hovering at the threshold: above on 2 of every 3 steps for 30 steps.
    values = [0.1] * 5 + [0.992, 0.992, 0.5] * 10 + [0.1] * 10
    n = len(values)
    raw = anomaly.grade(frame(values), thresholds=THRESHOLDS, persistence_k=1, persistence_n=1)
    assert transitions(raw, n) >= 20  # without rules the level flips on nearly every step
    steady = anomaly.grade(frame(values), thresholds=THRESHOLDS, persistence_k=2, persistence_n=3, cooldown=2)
    assert transitions(steady, n) == 2  # one alert: up once, down once
    levels = steady.get_column("level").to_list()
    assert "yellow" in levels
    # Last support: day 34 (2 of the 3 steps 32..34 above); held 2 more quiet steps, then released.
    last_held = steady.filter(pl.col("level") == "yellow").get_column("ds").max()
    assert last_held == START + dt.timedelta(days=36)


def test_cooldown_keeps_a_level_for_quiet_steps_and_evidence_says_so() -> None:
    values = [0.1] * 3 + [0.999] * 3 + [0.1] * 6
    graded = anomaly.grade(frame(values), thresholds=THRESHOLDS, persistence_k=2, persistence_n=3, cooldown=3)
    by_day = dict(zip(graded["ds"].to_list(), graded["level"].to_list(), strict=True))
    assert by_day[START + dt.timedelta(days=4)] == "red"
    assert by_day[START + dt.timedelta(days=9)] == "red"  # held 3 steps after the last support
    assert by_day.get(START + dt.timedelta(days=10), "none") == "none"
    cooling = graded.filter(pl.col("ds") == START + dt.timedelta(days=9)).get_column("evidence").item()
    assert json.loads(cooling)["in_cooldown"] is True
    with pytest.raises(ConfigError, match="cooldown"):
        anomaly.grade(frame(values), thresholds=THRESHOLDS, persistence_k=1, persistence_n=1, cooldown=-1)


def test_evidence_names_detectors_exceedance_and_data_freshness() -> None:
    values = [0.2] * 9 + [0.9]
    components = pl.concat(
        [
            frame(values).with_columns(pl.lit("level").alias("detector"), (pl.col("score") * 10).alias("raw_score")),
            frame([0.1] * 10).with_columns(pl.lit("change").alias("detector")),
        ]
    )
    last = START + dt.timedelta(days=9)
    exceed = pl.DataFrame(
        {"unique_id": "S", "ds": [last], "detector": "exceedance", "raw_score": 0.75, "score": 0.75, "threshold": 4.5}
    )
    graded = anomaly.grade(
        frame(values),
        thresholds=THRESHOLDS,
        persistence_k=2,
        persistence_n=3,
        components=components,
        exceedance=exceed,
        exceedance_thresholds={"blue": 0.3, "yellow": 0.5, "orange": 0.7, "red": 0.9},
        as_of=last + dt.timedelta(days=12),
        last_observed={"S": last},
        stale_after_days={"S": 10.0},
        include_latest=True,
    )
    row = graded.filter(pl.col("ds") == last)
    assert row.get_column("level").item() == "orange"  # the forecast probability 0.75 grades orange
    evidence = json.loads(row.get_column("evidence").item())
    assert evidence["exceedance"] == {
        "p_path_cross": 0.75,
        "threshold": 4.5,
        "level": "orange",
        "thresholds": {"blue": 0.3, "yellow": 0.5, "orange": 0.7, "red": 0.9},
    }
    assert evidence["detectors"]["level"] == {"raw": 9.0, "score": 0.9}
    assert evidence["detectors"]["change"]["score"] == 0.1
    assert evidence["data"]["age_days"] == 12.0 and evidence["data"]["stale"] is True
    assert graded.height == 1  # nothing else flagged; the newest row is always graded


def test_regions_take_the_highest_level_of_their_series() -> None:
    latest = pl.DataFrame(
        {"unique_id": ["a", "b", "c"], "level": ["yellow", "red", "none"], "score": [0.99, 0.999, 0.1]}
    )
    meta = pl.DataFrame({"unique_id": ["a", "b", "c"], "region": ["Japan", "Japan", "US"]})
    regions = anomaly.grade_regions(latest, meta)
    assert regions.rows() == [("Japan", "red", 0.999, ["b"]), ("US", "none", 0.1, ["c"])]
