"""Selection rules across series (``[backtest] choose``, forecasting.selection, issue 17).

Real bundled data (data/PROVENANCE.md): FRED's six monthly exchange rates, plus the last 40
months of the Canadian dollar rate as a seventh, short series (too short for the first of 3
backtest windows); and the FRED STLFSI4 / UNRATE / CPIAUCSL files in a real DuckDB warehouse
replayed to 2008-10-24 (`ews backtest` + `ews run`).
"""

from __future__ import annotations

import datetime as dt
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import forecasting
from core.errors import ConfigError
from core.settings import load_settings
from ingest.batches import ingest_file
from ingest.sources import bundled_catalogue, parse
from pipelines.cycle import run_cycle
from pipelines.forecast_step import run_backtest
from tests.fred_series import ingest_market_files
from tests.sql import sql_frame
from warehouse import CURRENT_VERSION, Warehouse
from warehouse import forecast_store as store

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHORT = "short_cad_per_usd"
MODELS = ("AutoETS", "AutoTheta", "SeasonalNaive", "Naive")
NOW = datetime(2026, 11, 22, 3, 0)
AS_OF = "2008-10-24"
FILES = {
    "stlfsi4": ("fred_STLFSI4.csv", "W-FRI"),
    "unrate": ("fred_UNRATE.csv", "MS"),
    "cpiaucsl": ("fred_CPIAUCSL.csv", "MS"),
}
ENV = {
    "EWS_CYCLE__AS_OF": AS_OF,
    "EWS_ALERTS__JUDGE": "template",
    "EWS_FORECAST__MODELS": '["AutoETS", "SeasonalNaive", "Naive"]',
    "EWS_BACKTEST__ENSEMBLES": '["median"]',
    "EWS_BACKTEST__CALIBRATE_INTERVALS": "false",
}


@pytest.fixture(scope="module")
def rates() -> tuple[forecasting.BacktestResult, dict[str, str]]:
    """A 3-window backtest (12 months each) of the monthly exchange rates and a short copy."""
    series, meta = [], []
    for entry in bundled_catalogue(DATA):
        if entry.relative_path.startswith("market/fred_exchange_rates"):
            parsed = parse(DATA / entry.relative_path, entry.format, **entry.options)
            series.append(parsed.series.select("unique_id", "ds", "y"))
            meta.append(parsed.meta)
    if not series:
        pytest.skip("no bundled exchange rates under data/market")
    frame = pl.concat(series)
    short = frame.filter(pl.col("unique_id") == "cad_per_usd").sort("ds").tail(40)
    frame = pl.concat([frame, short.with_columns(pl.lit(SHORT).alias("unique_id"))])
    frequencies = {u: "MS" for u in frame["unique_id"].unique().to_list()}
    result = forecasting.backtest(
        frame,
        frequencies=frequencies,
        horizons={"MS": 12},
        models=MODELS,
        windows=3,
        max_context=500,
        ensembles=("median", "top2"),
    )
    return result, frequencies


def test_window_scores_pool_back_to_the_backtest_metrics(
    rates: tuple[forecasting.BacktestResult, dict[str, str]],
) -> None:
    result, _ = rates
    windows = result.window_metrics
    assert set(windows["window"].unique()) == {0, 1, 2}
    # the short series has only the last 2 windows (40 months: the first cut leaves 4 < min_train)
    assert sorted(windows.filter(pl.col("unique_id") == SHORT)["window"].unique().to_list()) == [1, 2]
    pooled = forecasting.pool_windows(windows)
    expected = result.metrics.select(pooled.columns).sort("unique_id", "model")
    for column in ("windows", "points", "mase", "smape", "wql", "coverage_80", "coverage_90"):
        np.testing.assert_allclose(
            pooled[column].to_numpy().astype(float), expected[column].to_numpy().astype(float), rtol=1e-12
        )


def _by_frequency(result: forecasting.BacktestResult, frequencies: dict[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The frequency rule on the rates' backtest (every series, AutoETS default, margin 0.2)."""
    return forecasting.select_by_rule(
        result.metrics,
        result.window_metrics,
        rule="frequency",
        frequencies=frequencies,
        unique_ids=sorted(frequencies),
        default_model="AutoETS",
        margin=0.2,
    )


def test_the_frequency_rule_picks_one_candidate_on_the_pooled_window_scores(
    rates: tuple[forecasting.BacktestResult, dict[str, str]],
) -> None:
    result, frequencies = rates
    ids = sorted(frequencies)
    chosen, rules = _by_frequency(result, frequencies)
    full = [u for u in ids if u != SHORT]
    picked = set(chosen.filter(pl.col("unique_id").is_in(full))["model"])
    assert len(picked) == 1 and rules.row(0, named=True)["rule"] == "frequency"
    winner = picked.pop()
    # the winner is the lowest mean window MASE over the 6 full series x 3 windows, computed here
    full_rows = result.window_metrics.filter(pl.col("unique_id").is_in(full))
    means = {
        str(m): float(np.mean(part["mase"].to_numpy()))
        for (m,), part in full_rows.group_by("model")
        if part.height == len(full) * 3
    }
    assert winner == min(means, key=lambda m: means[m])
    assert f"{winner} has the best pooled MASE {means[winner]:.4g} over 6 MS series" in chosen["reason"][0]
    # not the per-series choice: at least one series' own backtest picked another candidate
    own = forecasting.select_models(result.metrics, unique_ids=ids, default_model="AutoETS", margin=0.2)
    assert set(own.filter(pl.col("unique_id").is_in(full))["model"]) != {winner}


def test_a_series_too_short_for_the_pooled_windows_keeps_its_own_choice(
    rates: tuple[forecasting.BacktestResult, dict[str, str]],
) -> None:
    result, frequencies = rates
    ids = sorted(frequencies)
    chosen, _ = _by_frequency(result, frequencies)
    own = forecasting.select_models(result.metrics, unique_ids=ids, default_model="AutoETS", margin=0.2)
    short = chosen.filter(pl.col("unique_id") == SHORT).row(0, named=True)
    mine = own.filter(pl.col("unique_id") == SHORT).row(0, named=True)
    assert (short["model"], short["score"]) == (mine["model"], mine["score"])
    assert "keeps its own choice" in short["reason"] and mine["reason"] in short["reason"]
    # the pooled comparison did not include it: 6 series, 18 (series, window) pairs
    assert (
        "over 6 MS series x their windows (18 pairs)"
        in chosen.filter(pl.col("unique_id") == "jpy_per_usd")["reason"][0]
    )


def test_auto_decides_on_earlier_windows_scored_on_later_ones(
    rates: tuple[forecasting.BacktestResult, dict[str, str]],
) -> None:
    result, frequencies = rates
    decided = forecasting.decide_rules(
        result.window_metrics, frequencies=frequencies, default_model="AutoETS", margin=0.2
    ).row(0, named=True)
    assert decided["folds"] == 2 and decided["series"] == 7
    # refigured here: fold k chooses on windows < k and is scored on window k
    windows = result.window_metrics
    scored = {"series": [], "frequency": []}
    for k in (1, 2):
        before = windows.filter(pl.col("window") < k)
        test = windows.filter(pl.col("window") == k)
        ids = sorted(set(before["unique_id"]) & set(test["unique_id"]))
        own = forecasting.select_models(
            forecasting.pool_windows(before), unique_ids=ids, default_model="AutoETS", margin=0.2
        )
        pooled = forecasting.pooled_choice(before)
        assert pooled is not None
        for uid, model in own.select("unique_id", "model").iter_rows():
            score = test.filter((pl.col("unique_id") == uid) & (pl.col("model") == model))["mase"].item()
            common = pooled.model if uid in pooled.covered else model
            other = test.filter((pl.col("unique_id") == uid) & (pl.col("model") == common))["mase"].item()
            scored["series"].append(score)
            scored["frequency"].append(other)
    assert decided["series_score"] == pytest.approx(np.mean(scored["series"]), rel=1e-12)
    assert decided["frequency_score"] == pytest.approx(np.mean(scored["frequency"]), rel=1e-12)
    assert decided["rule"] == ("frequency" if decided["frequency_score"] < decided["series_score"] else "series")
    assert (
        f"per series {decided['series_score']:.4g}, per frequency {decided['frequency_score']:.4g}"
        in (decided["reason"])
    )


def test_auto_leaves_out_a_series_whose_windows_are_not_on_the_common_cutoffs(
    rates: tuple[forecasting.BacktestResult, dict[str, str]],
) -> None:
    """A series that ended a year before the others has its window k a year earlier: its
    "windows before k" would be the others' past no longer, so it takes no part in the
    held-out folds, and the decision is the one made without it."""
    result, frequencies = rates
    early = "usd_per_gbp" if "usd_per_gbp" in frequencies else sorted(frequencies)[0]
    shifted = result.window_metrics.with_columns(
        pl.when(pl.col("unique_id") == early)
        .then(pl.col("cutoff").dt.offset_by("-12mo"))
        .otherwise(pl.col("cutoff"))
        .alias("cutoff")
    )
    decided = forecasting.decide_rules(shifted, frequencies=frequencies, default_model="AutoETS", margin=0.2).row(
        0, named=True
    )
    without = forecasting.decide_rules(
        result.window_metrics.filter(pl.col("unique_id") != early),
        frequencies=frequencies,
        default_model="AutoETS",
        margin=0.2,
    ).row(0, named=True)
    assert decided["series"] == 6 and without["series"] == 6
    assert (decided["rule"], decided["series_score"], decided["frequency_score"]) == (
        without["rule"],
        without["series_score"],
        without["frequency_score"],
    )
    assert "1 series whose backtest windows are not on the frequency's common cutoffs" in decided["reason"]
    assert "common cutoffs" not in without["reason"]


def test_the_setting_names_the_rules_and_the_fix(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}).backtest.choose == "auto"
    with pytest.raises(ConfigError, match=r"\[backtest\] choose = 'pooled' is not a selection rule") as caught:
        load_settings(tmp_path, environ={"EWS_BACKTEST__CHOOSE": "pooled"})
    assert "'series', 'frequency', 'auto'" in caught.value.fix


# -- the warehouse path --------------------------------------------------------------------
def _altered_unrate(tmp: Path, *, after: str | None = None, before: str | None = None) -> Path:
    """UNRATE with the values after (or before) a date tripled."""
    raw = pl.read_csv(DATA / "market" / "fred_UNRATE.csv", schema_overrides={"value": pl.Float64})
    day = pl.col("date").str.to_date("%Y-%m-%d")
    where = day > dt.date.fromisoformat(after) if after else day < dt.date.fromisoformat(before or "1900-01-01")
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "fred_UNRATE.csv"
    raw.with_columns(pl.when(where).then(pl.col("value") * 3).otherwise(pl.col("value")).alias("value")).write_csv(path)
    return path


def _stored_decision(home: Path, unrate: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`ews backtest` of UNRATE (file given) and CPIAUCSL; the stored window scores and auto's decision."""
    settings = load_settings(home, environ=ENV)
    with Warehouse.open(settings.warehouse_path) as wh:
        for uid, path in (("unrate", unrate), ("cpiaucsl", DATA / "market" / "fred_CPIAUCSL.csv")):
            done = ingest_file(
                wh,
                settings,
                path,
                "fred_csv",
                options={"unique_id": uid, "frequency": "MS", "domain": "market", "region": "US"},
            )
            assert done.status == "committed"
        run_backtest(wh, settings, run_id="bt_rules", now=NOW)
        windows = store.read_latest_window_scores(wh)
    decided = forecasting.decide_rules(
        windows, frequencies={"unrate": "MS", "cpiaucsl": "MS"}, default_model="AutoETS", margin=0.2
    )
    return windows, decided


def test_auto_never_sees_the_test_part(tmp_path: Path) -> None:
    windows, decided = _stored_decision(tmp_path / "a", DATA / "market" / "fred_UNRATE.csv")
    assert windows.height and decided["folds"].item() == 2
    assert windows["cutoff"].max() < datetime.fromisoformat(AS_OF)
    # the test part (every value after the replay day) tripled: the same windows, the same decision
    later_windows, later = _stored_decision(tmp_path / "b", _altered_unrate(tmp_path / "later", after=AS_OF))
    assert later_windows.drop("run_id").equals(windows.drop("run_id"))
    assert later.equals(decided)
    # values inside the backtest's windows changed: the held-out figures follow (not vacuous)
    _, earlier = _stored_decision(tmp_path / "c", _altered_unrate(tmp_path / "earlier", before="2008-06-01"))
    assert earlier["series_score"].item() != decided["series_score"].item()


def test_migration_19_keeps_an_existing_schema_18_file(tmp_path: Path) -> None:
    path = tmp_path / "v18.duckdb"
    with Warehouse.open(path, target_version=18) as wh:
        assert wh.schema_version() == 18
        wh._execute(
            "INSERT INTO backtest_results (run_id, unique_id, model, horizon, windows, points, mase, smape, wql, "
            "coverage_80, coverage_90, members, interval_scales, last_cutoff, created_at) VALUES "
            "('bt_old', 'unrate', 'AutoETS', 12, 3, 36, 0.41, 3.2, 0.02, 0.8, 0.9, NULL, NULL, "
            "TIMESTAMP '2008-09-01', TIMESTAMP '2026-11-01')"
        )
    with Warehouse.open(path) as wh:
        assert wh.schema_version() == CURRENT_VERSION >= 19
        kept = store.read_latest_backtest(wh, ["unrate"])
        assert kept.select("run_id", "model", "mase", "points").rows() == [("bt_old", "AutoETS", 0.41, 36)]
        assert kept["window_scores"].to_list() == [None]
        assert store.read_latest_window_scores(wh, ["unrate"]).height == 0  # kept rows have none


def _selections(wh: Warehouse) -> pl.DataFrame:
    return sql_frame(wh, "SELECT run_id, unique_id, model, reason, basis FROM model_selections ORDER BY run_id")


def test_a_change_of_rule_selects_every_series_again_once(tmp_path: Path) -> None:
    env = {**ENV, "EWS_BACKTEST__CHOOSE": "series", "EWS_BACKTEST__RESELECT_EVERY": "30d"}
    settings = load_settings(tmp_path, environ=env)
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
        run_backtest(wh, settings, run_id="bt_rules", now=NOW)
        first = run_cycle(wh, settings, now=NOW)
        assert first.row_counts["model_selections"] == 3
        # the rule changes: a cycle a week later (STLFSI4 has new points) selects STLFSI4 again
        # under the new rule, though its selection is younger than reselect_every
        changed = load_settings(
            tmp_path, environ={**env, "EWS_BACKTEST__CHOOSE": "frequency", "EWS_CYCLE__AS_OF": "2008-10-31"}
        )
        second = run_cycle(wh, changed, now=NOW + timedelta(days=7))
        assert second.row_counts["model_selections"] == 1 and second.row_counts["model_selections_kept"] == 0
        rows = _selections(wh)
        new = rows.filter(pl.col("run_id") == second.run_id).row(0, named=True)
        assert new["unique_id"] == "stlfsi4" and new["reason"].startswith("frequency rule")
        assert json.loads(new["basis"])["choose"] == "frequency"
        # once: the next cycle under the same rule keeps that selection
        again = load_settings(
            tmp_path, environ={**env, "EWS_BACKTEST__CHOOSE": "frequency", "EWS_CYCLE__AS_OF": "2008-11-07"}
        )
        third = run_cycle(wh, again, now=NOW + timedelta(days=14))
        assert third.row_counts["model_selections"] == 0 and third.row_counts["model_selections_kept"] == 1


def _frequency_cycle(home: Path, chunk: str) -> pl.DataFrame:
    env = {**ENV, "EWS_BACKTEST__CHOOSE": "frequency", "EWS_CYCLE__CHUNK_SERIES": chunk}
    settings = load_settings(home, environ=env)
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
        run_backtest(wh, settings, run_id="bt_rules", now=NOW)
        run_cycle(wh, settings, now=NOW)
        return sql_frame(wh, "SELECT unique_id, model, reason FROM model_selections ORDER BY unique_id")


def test_chunks_that_split_a_frequency_pool_it_whole(tmp_path: Path) -> None:
    whole = _frequency_cycle(tmp_path / "whole", "0")
    split = _frequency_cycle(tmp_path / "split", "1")  # UNRATE and CPIAUCSL (both MS) in separate chunks
    assert split.equals(whole)
    monthly = whole.filter(pl.col("unique_id").is_in(["unrate", "cpiaucsl"]))
    assert monthly["model"].n_unique() == 1
    assert all("over 2 MS series" in r for r in monthly["reason"])
