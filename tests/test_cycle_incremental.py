"""A next-day cycle costs what is new (issue 21): bounded score writes, selections on a schedule.

Real data: the bundled FRED STLFSI4 (weekly) and UNRATE (monthly) files, replayed through the
autumn of 2008 (the financial stress index climbs to its high of 2008-10-24).

Checked: a cycle after new points writes the scores of the new points and of the
``[scoring] recent_window`` steps before them, not the history, and computes them from stored
state (the subsequence detectors' fits in ``detector_state``, the stored raw scores the
calibration ranks against); its scores (raw and calibrated, every detector and the ensemble),
grades and open alerts equal those of a full recompute (a fresh warehouse cycled once on the
same data), also when the new points cross a refit edge (``[scoring] refit_every``) and for a
detector whose fit is not stored (refitted when used). The documented exceptions, excluded
here by setting: a kept model selection or ETS form (``[backtest] reselect_every``, so
``reselect_every = "0d"`` below), a kept AutoETS fit filtered forward (``[forecast]
refit_every``) and a revised observation older than the recent window. A cycle within
``[backtest] reselect_every`` keeps the stored selection (no selection row) and its forecasts
are those of refitting the selected model when a new point is far from the stored fit's
one-step forecast (the autumn of 2008), or of that fit filtered forward over the new points in a
calm spring (2006) until ``[forecast] refit_every`` has passed; after the period the series are
selected again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import forecasting
from core.settings import Settings, load_settings
from pipelines.cycle import run_cycle
from pipelines.forecast_step import run_backtest
from tests.fred_series import ingest_market_files
from tests.sql import sql_frame
from warehouse import Warehouse
from warehouse.series import read_observations

ROOT = Path(__file__).resolve().parent.parent
FILES = {"stlfsi4": ("fred_STLFSI4.csv", "W-FRI"), "unrate": ("fred_UNRATE.csv", "MS")}
NOW = datetime(2026, 11, 22, 3, 0)


# Plain models only, so the selected model can be refitted on its own below.
PLAIN = {"EWS_BACKTEST__ENSEMBLES": "[]"}
# Selection (and the AutoETS form) made anew every cycle: the full recompute searches every
# ETS form on its data, and a kept form is by design the one chosen on the older data
# (checked by the second test); the first test compares what scoring and grading write.
EVERY_CYCLE = {"EWS_BACKTEST__RESELECT_EVERY": "0d"}


def _home(path: Path, as_of: str, **env: str) -> Settings:
    """A home holding both series (whole files; the replay day limits what a cycle sees)."""
    settings = load_settings(path, environ={"EWS_CYCLE__AS_OF": as_of, **PLAIN, **env})
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
    return settings


def _on(settings: Settings, as_of: str, **env: str) -> Settings:
    return load_settings(settings.home, environ={"EWS_CYCLE__AS_OF": as_of, **PLAIN, **env})


def _grades(wh: Warehouse, since: str) -> pl.DataFrame:
    return sql_frame(
        wh,
        "SELECT unique_id, ds, level, score, evidence FROM risk_grades WHERE ds >= ? ORDER BY unique_id, ds",
        datetime.fromisoformat(since),
    )


def _open_alerts(wh: Warehouse) -> list[tuple]:
    rows = sql_frame(wh, "SELECT unique_id, level, status FROM alerts WHERE status = 'open' ORDER BY unique_id")
    return rows.rows()


def _scores(wh: Warehouse, run_id: str | None = None) -> pl.DataFrame:
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return sql_frame(
        wh,
        f"SELECT unique_id, ds, detector, raw_score, score FROM anomaly_scores {where} "
        "ORDER BY unique_id, detector, ds",
        *params,
    )


# Every written row of an incremental cycle equals the full recompute's, with the shipped
# cadence (the new points are scored by the stored PCA fit) and with a refit every 2 steps
# (the new points cross refit edges) plus a detector whose fit is refitted when used (HBOS).
CADENCES = {
    "stored-fit": {},
    "crossing-edges": {
        "EWS_SCORING__REFIT_EVERY": "2",
        "EWS_SCORING__DETECTORS": '["level", "change", "subseq_pca", "subseq_hbos"]',
    },
}


@pytest.mark.parametrize("cadence", list(CADENCES))
def test_a_next_day_cycle_writes_recent_scores_and_grades_as_a_full_recompute(tmp_path: Path, cadence: str) -> None:
    env = {**EVERY_CYCLE, **CADENCES[cadence]}
    incremental = _home(tmp_path / "incremental", "2008-10-10", **env)
    with Warehouse.open(incremental.warehouse_path) as wh:
        first = run_cycle(wh, incremental, now=NOW)
        scored = sql_frame(wh, "SELECT max(ds) AS ds FROM anomaly_scores WHERE unique_id = 'stlfsi4'")["ds"].item()
        stored = sql_frame(wh, "SELECT unique_id, detector, edge, edge_ds FROM detector_state ORDER BY ALL")
        later = _on(incremental, "2008-10-24", **env)
        second = run_cycle(wh, later, now=NOW + timedelta(days=1))
        state = sql_frame(wh, "SELECT unique_id, detector, edge, edge_ds, fit FROM detector_state ORDER BY ALL")
        incremental_scores = _scores(wh, second.run_id)
        written = sql_frame(
            wh,
            "SELECT unique_id, count(DISTINCT ds) AS steps, min(ds) AS earliest FROM anomaly_scores "
            "WHERE run_id = ? GROUP BY unique_id ORDER BY unique_id",
            second.run_id,
        )
        observations = read_observations(wh, before=datetime(2008, 10, 25))
        incremental_grades = _grades(wh, "2008-09-01")
        incremental_alerts = _open_alerts(wh)
    full = _home(tmp_path / "full", "2008-10-24", **env)
    with Warehouse.open(full.warehouse_path) as wh:
        recompute = run_cycle(wh, full, now=NOW + timedelta(days=1))
        full_grades = _grades(wh, "2008-09-01")
        full_alerts = _open_alerts(wh)
        full_scores = _scores(wh)
        full_state = sql_frame(wh, "SELECT unique_id, detector, edge, edge_ds, fit FROM detector_state ORDER BY ALL")

    # The first cycle stored a fit per series and subsequence detector; the second resumed
    # from it (no series fell back to a whole-history rewrite) and left the state a full
    # recompute stores.
    subseq = [d for d in later.scoring.detectors if d.startswith("subseq_")]
    assert stored.height == 2 * len(subseq)
    assert not [n for n in second.notes if "no usable stored detector state" in n]
    assert state.equals(full_state)
    pca = state.filter(pl.col("detector") == "subseq_pca")
    assert pca["fit"].null_count() == 0
    assert (
        state.filter(pl.col("detector") == "subseq_hbos")["fit"].null_count()
        == state.filter(pl.col("detector") == "subseq_hbos").height
    )
    moved = stored.join(state, on=["unique_id", "detector"]).filter(pl.col("edge") != pl.col("edge_right"))
    if cadence == "crossing-edges":
        assert moved.height >= 1  # STLFSI4 crossed a refit edge between the two cycles
    else:
        assert moved.height == 0  # its new points were scored by the stored fit

    # Every score row the incremental cycle wrote (each detector, the forecast surprise, the
    # ensemble, the exceedance score) equals the full recompute's row, raw and calibrated.
    assert set(incremental_scores["detector"]) >= {*later.scoring.detectors, "forecast_surprise", "ensemble"}
    same = incremental_scores.join(full_scores, on=["unique_id", "ds", "detector"], how="left")
    assert same.height == incremental_scores.height
    assert same["raw_score"].to_list() == same["raw_score_right"].to_list()
    assert same["score"].to_list() == same["score_right"].to_list()

    window = later.scoring.recent_window
    # The first cycle scored every point; the next one only the new points and the window.
    assert first.row_counts["anomaly_scores"] > 10 * second.row_counts["anomaly_scores"] > 0
    # STLFSI4 gained the weeks after its first scored newest point, up to 2008-10-17 (a week is
    # published the Thursday after); UNRATE gained nothing, so the cycle skipped it (unchanged
    # fingerprint) and it keeps the grades of the first cycle.
    assert second.series_processed == 1 and written["unique_id"].to_list() == ["stlfsi4"]
    stlfsi4 = observations.filter(pl.col("unique_id") == "stlfsi4").sort("ds")
    new = stlfsi4.filter(pl.col("ds") > scored).height
    assert stlfsi4["ds"][-1] == datetime(2008, 10, 17) and new >= 1
    assert written["steps"].item() == new + window
    assert written["earliest"].item() == stlfsi4["ds"][-(new + window)]
    # Every grade the incremental cycle left in the recent window equals the full recompute's,
    # evidence included (detector values, persistence hits, cool-down, freshness).
    mine = incremental_grades.filter(pl.col("unique_id") == "stlfsi4")
    assert mine.height >= 7 and mine["level"].to_list()[-1] == "yellow"
    assert mine.equals(full_grades.filter(pl.col("unique_id") == "stlfsi4"))
    assert incremental_alerts == full_alerts and len(full_alerts) >= 1
    assert recompute.row_counts["anomaly_scores"] > 10 * second.row_counts["anomaly_scores"]


def test_a_cycle_within_reselect_every_refits_the_kept_model_and_reselects_after_it(tmp_path: Path) -> None:
    settings = _home(tmp_path / "home", "2008-10-10")
    with Warehouse.open(settings.warehouse_path) as wh:
        with wh.transaction():
            run_backtest(
                wh,
                settings,
                run_id="bt1",
                now=NOW,
                windows=2,
                models=("AutoETS", "AutoTheta", "SeasonalNaive", "Naive"),
            )
        first = run_cycle(wh, settings, now=NOW)
        chosen = dict(sql_frame(wh, "SELECT unique_id, model FROM model_selections").rows())
        forms = {u: f for u, f in sql_frame(wh, "SELECT unique_id, ets_form FROM model_selections").rows() if f}
        assert first.row_counts["model_selections"] == 2

        later = _on(settings, "2008-10-24")
        second = run_cycle(wh, later, now=NOW + timedelta(days=3))
        assert second.row_counts["model_selections"] == 0
        assert second.row_counts["model_selections_kept"] == 1  # only STLFSI4 has new points
        # October 2008: the new weeks are far from the stored fit's one-step forecasts, so the
        # fit is not filtered forward ([forecast] refit_every) but refitted, and the note says so.
        assert second.row_counts["ets_forwarded"] == 0 and second.row_counts["ets_fitted"] == 1
        assert [n for n in second.notes if n.startswith("stlfsi4: stored fit not filtered forward: a new point")]
        stored = sql_frame(
            wh,
            "SELECT unique_id, ds, model, mean, q10, q90 FROM forecasts WHERE unique_id = 'stlfsi4' "
            "AND cutoff = (SELECT max(cutoff) FROM forecasts WHERE unique_id = 'stlfsi4') ORDER BY ds",
        )
        series = read_observations(wh, ["stlfsi4"], before=datetime(2008, 10, 25))

        latest = _on(settings, "2008-10-31")
        third = run_cycle(wh, latest, now=NOW + timedelta(days=8))
        assert third.row_counts["model_selections"] == 1 and third.row_counts["model_selections_kept"] == 0
        runs = sql_frame(wh, "SELECT DISTINCT run_id FROM model_selections ORDER BY run_id")["run_id"].to_list()
    assert runs == sorted([first.run_id, third.run_id])

    # The kept selection's forecast is that model refitted on the new data, nothing else (an
    # AutoETS of the form chosen with the selection: statsforecast fits only that form).
    fc = later.forecast
    refit = forecasting.forecast_statistical(
        series,
        frequencies={"stlfsi4": "W-FRI"},
        horizons=fc.horizon,
        models=(chosen["stlfsi4"],),
        max_context=fc.max_context,
        n_jobs=1,
        intervals=fc.intervals,
        conformal_windows=fc.conformal_windows,
        ets_forms=forms,
    ).forecasts
    assert stored["model"].unique().to_list() == [chosen["stlfsi4"]]
    assert stored.height == refit.height == fc.horizon["W-FRI"]
    for column in ("mean", "q10", "q90"):
        assert stored[column].to_numpy() == pytest.approx(refit[column].to_numpy(), rel=1e-9)


def test_a_cycle_within_refit_every_filters_the_stored_fit_forward_and_refits_after_it(tmp_path: Path) -> None:
    # A calm spring (no point far from its one-step forecast): STLFSI4's AutoETS fit of the
    # first cycle is filtered forward by the next cycles until [forecast] refit_every has passed.
    env = {"EWS_BACKTEST__RESELECT_EVERY": "30d", "EWS_FORECAST__REFIT_EVERY": "7d"}
    settings = _home(tmp_path / "home", "2006-04-28", **env)
    with Warehouse.open(settings.warehouse_path) as wh:
        with wh.transaction():
            run_backtest(wh, settings, run_id="bt1", now=NOW, windows=2, models=("AutoETS",))
        first = run_cycle(wh, settings, now=NOW)
        assert first.row_counts["ets_fitted"] == 2 and first.row_counts["ets_forwarded"] == 0
        states = sql_frame(wh, "SELECT unique_id, state, fitted_at, run_id FROM model_states ORDER BY unique_id")
        assert states["unique_id"].to_list() == ["stlfsi4", "unrate"] and set(states["run_id"]) == {first.run_id}

        later = _on(settings, "2006-05-19", **env)
        second = run_cycle(wh, later, now=NOW + timedelta(days=3))
        assert second.row_counts["ets_forwarded"] >= 1 and second.row_counts["ets_fitted"] == 0
        stored = sql_frame(
            wh,
            "SELECT unique_id, ds, model, mean, q05, q95 FROM forecasts WHERE unique_id = 'stlfsi4' "
            "AND cutoff = (SELECT max(cutoff) FROM forecasts WHERE unique_id = 'stlfsi4') ORDER BY ds",
        )
        series = read_observations(wh, ["stlfsi4"], before=datetime(2006, 5, 20))
        kept = sql_frame(wh, "SELECT unique_id, state, fitted_at, run_id FROM model_states ORDER BY unique_id")
        assert kept.equals(states)  # a forward writes no fit

        latest = _on(settings, "2006-06-02", **env)
        third = run_cycle(wh, latest, now=NOW + timedelta(days=8))
        assert third.row_counts["model_selections"] == 0  # the selection is kept (30 days) ...
        assert third.row_counts["ets_forwarded"] == 0 and third.row_counts["ets_fitted"] >= 1  # ... the fit is not
        refitted = sql_frame(wh, "SELECT fitted_at, run_id FROM model_states WHERE unique_id = 'stlfsi4'")
    assert refitted.rows() == [(NOW + timedelta(days=8), third.run_id)]

    # The second cycle's forecast is the first cycle's stored fit filtered forward over the data
    # that cycle saw: what forecast_statistical computes from that state, nothing else.
    fc = later.forecast
    state = dict(states.select("unique_id", "state").rows())["stlfsi4"]
    forward = forecasting.forecast_statistical(
        series,
        frequencies={"stlfsi4": "W-FRI"},
        horizons=fc.horizon,
        models=("AutoETS",),
        max_context=fc.max_context,
        n_jobs=1,
        ets_states={"stlfsi4": state},
        refit_surprise=fc.refit_surprise,
    )
    assert forward.forwarded == ("stlfsi4",)
    assert stored["model"].unique().to_list() == ["AutoETS"]
    assert stored.height == forward.forecasts.height == fc.horizon["W-FRI"]
    for column in ("mean", "q05", "q95"):
        assert stored[column].to_numpy() == pytest.approx(forward.forecasts[column].to_numpy(), rel=1e-9)
