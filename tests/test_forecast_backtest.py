"""Metrics with known answers, honest rolling-origin backtests, selection that never promotes a
model that has not won, and the stored path: `ews backtest`, then `ews run` forecasting with the
selected model and writing exceedance probabilities (real FRED series, tests/data/README.md)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from core.settings import Settings, load_settings
from forecasting import backtest, select_models
from forecasting.metrics import score_forecasts, seasonal_scale, smape
from ingest.batches import ingest_file
from pipelines.cli.main import main
from pipelines.forecast_step import run_forecast_step
from tests.fred_series import load_fred
from tests.sql import sql_frame
from warehouse import Warehouse
from warehouse import forecast_store as store
from warehouse.runs import last_run
from warehouse.series import read_observations, read_series_meta

DATA = Path(__file__).parent / "data"
FRED = {
    "unrate": ("fred_UNRATE.csv", "MS"),
    "stlfsi4": ("fred_STLFSI4.csv", "W-FRI"),
}


def test_metrics_match_hand_computed_values() -> None:
    cutoff = datetime(2024, 1, 1)
    joined = pl.DataFrame(
        {
            "unique_id": ["A", "A"],
            "model": ["M", "M"],
            "cutoff": [cutoff, cutoff],
            "ds": [datetime(2024, 1, 2), datetime(2024, 1, 3)],
            "y": [10.0, 20.0],
            "mean": [12.0, 20.0],
            "q05": [5.0, 15.0],
            "q10": [6.0, 16.0],
            "q25": [9.0, 18.0],
            "q50": [12.0, 20.0],
            "q75": [13.0, 22.0],
            "q90": [14.0, 24.0],
            "q95": [15.0, 25.0],
        }
    )
    scales = pl.DataFrame({"unique_id": ["A"], "cutoff": [cutoff], "scale": [4.0]})
    row = score_forecasts(joined, scales).row(0, named=True)
    assert row["mase"] == pytest.approx((2 + 0) / 2 / 4.0)
    assert row["smape"] == pytest.approx((200 * 2 / 22 + 0) / 2)
    # Pinball at each level for y=10 (q50=12 over by 2; q25=9 under by 1, ...), y=20 exact at q50.
    levels = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
    q1 = (5, 6, 9, 12, 13, 14, 15)
    q2 = (15, 16, 18, 20, 22, 24, 25)
    loss = sum(
        max(a * (10 - q), (a - 1) * (10 - q)) + max(a * (20 - r), (a - 1) * (20 - r))
        for a, q, r in zip(levels, q1, q2, strict=True)
    )
    assert row["wql"] == pytest.approx(2 * loss / 7 / 30)
    assert row["coverage_80"] == 1.0 and row["coverage_90"] == 1.0
    assert seasonal_scale(np.array([1.0, 2, 3, 4, 5, 6, 7]), 2) == pytest.approx(2.0)
    assert smape(np.array([0.0]), np.array([0.0]))[0] == 0.0


@pytest.fixture(scope="module")
def monthly_backtest():
    series = pl.concat([load_fred("fred_UNRATE.csv", "UNRATE"), load_fred("fred_STLFSI4.csv", "STLFSI4")])
    return series, backtest(
        series,
        frequencies={"UNRATE": "MS", "STLFSI4": "W-FRI"},
        horizons={"MS": 6, "W-FRI": 8},
        windows=3,
        max_context=400,
        n_jobs=1,
        models=("AutoETS", "AutoTheta", "SeasonalNaive", "Naive"),
    )


def test_backtest_never_lets_a_model_see_what_it_is_scored_on(monthly_backtest) -> None:
    series, result = monthly_backtest
    fc = result.forecasts
    assert (fc["ds"] > fc["cutoff"]).all()
    cutoffs = fc.group_by("unique_id").agg(pl.col("cutoff").n_unique())
    assert dict(cutoffs.iter_rows()) == {"UNRATE": 3, "STLFSI4": 3}
    # Scored values are the real observations at those times.
    check = fc.select("unique_id", "ds", "y").unique().join(series, on=["unique_id", "ds"], suffix="_obs")
    assert check.height > 0 and (check["y"] == check["y_obs"]).all()
    # Non-overlapping windows: step = horizon, so the last window ends at the last observation.
    last = fc.filter(pl.col("unique_id") == "STLFSI4")["ds"].max()
    assert last == series.filter(pl.col("unique_id") == "STLFSI4")["ds"].max()


def test_ensembles_compete_with_fixed_members_and_every_model_is_scored(monthly_backtest) -> None:
    _, result = monthly_backtest
    models = set(result.metrics["model"])
    assert models == {"AutoETS", "AutoTheta", "SeasonalNaive", "Naive", "Ensemble-median", "Ensemble-weighted"}
    assert result.members == {"STLFSI4": ["AutoETS", "AutoTheta"], "UNRATE": ["AutoETS", "AutoTheta"]}
    assert (result.metrics["windows"] == 3).all()
    print(result.metrics.select("unique_id", "model", "mase", "wql", "coverage_90"))


def test_selection_picks_the_winner_and_says_why(monthly_backtest) -> None:
    _, result = monthly_backtest
    chosen = select_models(
        result.metrics, unique_ids=["UNRATE", "STLFSI4", "NEW"], default_model="AutoETS", backtest_id="bt_x"
    )
    for row in chosen.filter(pl.col("unique_id") != "NEW").iter_rows(named=True):
        mine = result.metrics.filter(pl.col("unique_id") == row["unique_id"])
        assert row["model"] == mine.sort("mase")["model"][0]
        assert row["score"] == pytest.approx(mine["mase"].min())
        assert row["reason"].startswith(f"won backtest bt_x on MASE {row['score']:.4g}")
    new = chosen.filter(pl.col("unique_id") == "NEW").row(0, named=True)
    assert new["model"] == "AutoETS" and "not a backtest winner" in new["reason"]
    # When the winner cannot run now, the best available candidate is used, and said so.
    stl = result.metrics.filter(pl.col("unique_id") == "STLFSI4").sort("mase")
    winner, second = stl["model"][0], stl["model"][1]
    fallback = select_models(
        result.metrics,
        unique_ids=["STLFSI4"],
        default_model="AutoETS",
        available={m for m in stl["model"] if m != winner},
    )
    assert fallback["model"][0] == second
    assert f"winner {winner}" in fallback["reason"][0] and "not available now" in fallback["reason"][0]


def test_a_challenger_needs_the_margin_to_replace_the_default(monthly_backtest) -> None:
    _, result = monthly_backtest
    checked = 0
    for uid in ("UNRATE", "STLFSI4"):
        mine = result.metrics.filter(pl.col("unique_id") == uid).sort("mase")
        best, best_mase = mine["model"][0], mine["mase"][0]
        ets = mine.filter(pl.col("model") == "AutoETS")["mase"][0]
        if best == "AutoETS":
            continue
        gain = 1 - best_mase / ets  # the challenger's relative improvement over the default
        above = select_models(
            result.metrics, unique_ids=[uid], default_model="AutoETS", margin=max(gain - 0.01, 0.0)
        ).row(0, named=True)
        below = select_models(
            result.metrics, unique_ids=[uid], default_model="AutoETS", margin=min(gain + 0.01, 0.99)
        ).row(0, named=True)
        assert above["model"] == best
        assert below["model"] == "AutoETS" and below["runner_up"] == best
        assert "kept" in below["reason"] and "margin" in below["reason"]
        checked += 1
    assert checked >= 1, "no series where a challenger beat AutoETS: the test checks nothing"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ews-forecast")
    settings = load_settings(home)
    with Warehouse.open(settings.warehouse_path) as wh:
        for uid, (name, freq) in FRED.items():
            result = ingest_file(
                wh,
                settings,
                DATA / name,
                "fred_csv",
                options={
                    "unique_id": uid,
                    "name": uid.upper(),
                    "unit": "index",
                    "frequency": freq,
                    "variable": uid,
                    "domain": "market",
                    "region": "US",
                    "source": "FRED",
                    "licence": "public domain; cite FRED",
                    "classification": "public",
                },
            )
            assert result.status == "committed"
    return home


def test_ews_backtest_prints_each_models_metrics_and_stores_the_run(home: Path, capsys) -> None:
    code = main(
        [
            "--home",
            str(home),
            "backtest",
            "--series",
            "unrate",
            "--horizon",
            "3",
            "--windows",
            "2",
            "--models",
            "AutoETS",
            "AutoTheta",
            "Naive",
            "--json",
            "--quiet",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and set(out["series"]) == {"unrate"}
    metrics = out["series"]["unrate"]
    assert {"AutoETS", "AutoTheta", "Naive", "Ensemble-median"} <= set(metrics)
    for values in metrics.values():
        # 2 windows x 3 months, less 2025-10, which FRED leaves blank: gaps are never scored.
        assert values["horizon"] == 3 and values["windows"] == 2 and values["points"] == 5
        assert 0 <= values["coverage_90"] <= 1 and values["mase"] > 0
    with Warehouse.open(load_settings(home).warehouse_path) as wh:
        stored = store.read_backtest_history(wh, "unrate")
        assert set(stored["run_id"]) == {out["run_id"]}
        assert last_run(wh, "backtest")["status"] == "success"


def test_run_forecasts_with_the_selected_model_and_writes_exceedance(home: Path, capsys) -> None:
    assert (
        main(
            [
                "--home",
                str(home),
                "backtest",
                "--windows",
                "2",
                "--models",
                "AutoETS",
                "AutoTheta",
                "SeasonalNaive",
                "Naive",
                "--json",
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    settings = _per_series(home)
    with Warehouse.open(settings.warehouse_path) as wh:
        meta = read_series_meta(wh)
        series = read_observations(wh)
        frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
        with wh.transaction():
            result = run_forecast_step(
                wh, settings, series, frequencies=frequencies, meta=meta, run_id="r_test", now=datetime(2026, 1, 1)
            )
        scored = store.read_latest_backtest(wh)
        best = scored.sort("mase").unique("unique_id", keep="first")
        stored = sql_frame(wh, "SELECT unique_id, model, count(*) AS n FROM forecasts GROUP BY ALL")
        exceedance = store.read_latest_exceedance(wh)
        selections = store.read_latest_selections(wh)
    # the lowest MASE wins unless it beats the default AutoETS by less than [backtest] margin
    ets = dict(scored.filter(pl.col("model") == "AutoETS").select("unique_id", "mase").iter_rows())
    winners = {
        uid: model if model == "AutoETS" or mase <= (1 - settings.backtest.margin) * ets[uid] else "AutoETS"
        for uid, model, mase in best.select("unique_id", "model", "mase").iter_rows()
    }
    assert dict(selections.select("unique_id", "model").iter_rows()) == winners
    assert dict(stored.select("unique_id", "model").iter_rows()) == winners
    assert dict(stored.select("unique_id", "n").iter_rows()) == {"unrate": 6, "stlfsi4": 8}
    # Market defaults: p99 and p1:below per series, every horizon step, probabilities in [0, 1].
    assert exceedance.height == 2 * (6 + 8)
    assert set(exceedance["threshold"]) == {"p99", "p1:below"}
    assert exceedance.select(pl.col("p_path_cross") >= pl.col("p_step_exceed") - 1e-12).to_series().all()
    # The in-sample fits handed to anomaly scoring are the selected model's (or an ensemble's).
    assert set(result.fitted["unique_id"]) == {"unrate", "stlfsi4"}
    assert result.counts["exceedance"] == exceedance.height


def test_a_rerun_of_the_forecast_step_changes_no_rows(home: Path) -> None:
    settings = _per_series(home)  # the settings of the test before: a changed rule would reselect
    with Warehouse.open(settings.warehouse_path) as wh:
        meta = read_series_meta(wh)
        series = read_observations(wh)
        frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
        with wh.transaction():
            again = run_forecast_step(
                wh, settings, series, frequencies=frequencies, meta=meta, run_id="r_test2", now=datetime(2026, 1, 2)
            )
    assert again.counts["forecasts"] == 0 and again.counts["exceedance"] == 0
    # A day later is within [backtest] reselect_every (7d): the selection of r_test is kept.
    assert again.counts["model_selections"] == 0 and again.counts["model_selections_kept"] == 2
    assert _selection_runs(settings) == ["r_test"]
    with Warehouse.open(settings.warehouse_path) as wh, wh.transaction():
        later = run_forecast_step(
            wh, settings, series, frequencies=frequencies, meta=meta, run_id="r_test3", now=datetime(2026, 1, 8)
        )
    # Seven days after r_test's decision the series are selected again, on the same backtest.
    assert later.counts["model_selections"] == 2 and later.counts["model_selections_kept"] == 0
    assert later.counts["forecasts"] == 0
    assert _selection_runs(settings) == ["r_test", "r_test3"]


def _per_series(home: Path) -> Settings:
    """The home's settings with per-series choice, which these tests' expectations spell out
    (the rules across series: tests/test_forecast_selection_rules.py)."""
    return load_settings(home, environ={"EWS_BACKTEST__CHOOSE": "series"})


def _selection_runs(settings: Settings) -> list[str]:
    """The runs that wrote a model selection: each one is a decision a reader can trace."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = con.execute("SELECT DISTINCT run_id FROM model_selections ORDER BY run_id").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]
