"""`ews run` refits the global learned model (LGBMGlobal) and uses it where the backtest chose it.

Real data: the bundled FRED STLFSI4 (weekly), UNRATE and CPIAUCSL (monthly) files in a real
DuckDB warehouse, replayed to 2008-10-24. ``ews backtest`` (``run_backtest``) runs with the
candidates AutoETS, AutoTheta, SeasonalNaive, Naive and LGBMGlobal, the ensembles median and
statglobal and ``[backtest] margin = 0`` (the plain lowest MASE wins). That setting is chosen so
that bundled series pick the global model and not forced: on it UNRATE's backtest is won by
LGBMGlobal and CPIAUCSL's by Ensemble-statglobal (its best statistical member and LGBMGlobal);
with the default margin of 0.2 CPIAUCSL keeps AutoETS, and STLFSI4 picks no global candidate
in either setting. Then ``ews run`` (``run_cycle``): the tests check that the chosen forecasts
are LGBMGlobal's / the ensemble's, equal (rel 1e-9) to :func:`forecasting.forecast_global`
called directly on the warehouse's monthly series cut at the cycle's as-of (and, for the
ensemble, combined with its statistical member forecast directly), that quantiles are
ordered, that the selection traces back to the backtest run, and that the rows do not depend
on ``[cycle] chunk_series`` or ``[cycle] workers``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import forecasting
from core.clock import Clock
from core.frames import forecast_columns
from core.settings import Settings, load_settings
from ingest.batches import ingest_file
from pipelines.cycle import run_cycle
from pipelines.forecast_step import GlobalFits, run_backtest
from tests.fred_series import ingest_market_files
from tests.sql import sql_frame
from warehouse import Warehouse
from warehouse.series import read_observations, read_series_meta

pytestmark = pytest.mark.skipif(not forecasting.global_installed(), reason="mlforecast/lightgbm not installed")

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "stlfsi4": ("fred_STLFSI4.csv", "W-FRI"),
    "unrate": ("fred_UNRATE.csv", "MS"),
    "cpiaucsl": ("fred_CPIAUCSL.csv", "MS"),
}
NOW = datetime(2026, 11, 22, 3, 0)
ENV = {
    "EWS_CYCLE__AS_OF": "2008-10-24",
    "EWS_ALERTS__JUDGE": "template",
    "EWS_FORECAST__MODELS": '["AutoETS", "AutoTheta", "SeasonalNaive", "Naive", "LGBMGlobal"]',
    "EWS_BACKTEST__ENSEMBLES": '["median", "statglobal"]',
    "EWS_BACKTEST__MARGIN": "0",
    # per-series choice, as these expectations were made (the rules across series:
    # tests/test_forecast_selection_rules.py)
    "EWS_BACKTEST__CHOOSE": "series",
    # the rows are compared with forecast_global called directly: the models' own intervals
    # (calibration is tested in tests/test_forecast_calibration.py)
    "EWS_BACKTEST__CALIBRATE_INTERVALS": "false",
}
FORECASTS = "SELECT * EXCLUDE (run_id) FROM forecasts ORDER BY unique_id, cutoff, model, ds"
SELECTIONS = "SELECT unique_id, model, reason, members, basis, backtest_run_id FROM model_selections ORDER BY unique_id"
QUANTILE_ORDER = ["q05", "q10", "q25", "q50", "q75", "q90", "q95"]


def _settings(home: Path, **env: str) -> Settings:
    return load_settings(home, environ={**ENV, **env})


def _backtest_and_run(home: Path, **env: str) -> tuple[Settings, dict[str, pl.DataFrame]]:
    settings = _settings(home, **env)
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
        run_backtest(wh, settings, run_id="bt_global", now=NOW)
        run_cycle(wh, settings, now=NOW)
        return settings, {"forecasts": sql_frame(wh, FORECASTS), "selections": sql_frame(wh, SELECTIONS)}


@pytest.fixture(scope="module")
def cycled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings, dict[str, pl.DataFrame]]:
    home = tmp_path_factory.mktemp("global_whole")
    settings, rows = _backtest_and_run(home)
    return home, settings, rows


def _close(actual: pl.DataFrame, expected: pl.DataFrame) -> None:
    keys = ["unique_id", "ds"]
    a = actual.sort(keys)
    e = expected.sort(keys)
    assert a.select(keys).equals(e.select(keys))
    for column in ["mean", *QUANTILE_ORDER]:
        np.testing.assert_allclose(a[column].to_numpy(), e[column].to_numpy(), rtol=1e-9, atol=0.0, err_msg=column)


def test_series_that_chose_the_global_model_get_its_refit(
    cycled: tuple[Path, Settings, dict[str, pl.DataFrame]],
) -> None:
    home, settings, rows = cycled
    selections = {r["unique_id"]: r for r in rows["selections"].iter_rows(named=True)}
    assert selections["unrate"]["model"] == "LGBMGlobal"
    assert selections["cpiaucsl"]["model"] == "Ensemble-statglobal"
    members = json.loads(selections["cpiaucsl"]["members"])
    assert "LGBMGlobal" in members and len(members) == 2
    for uid in ("unrate", "cpiaucsl"):
        # the selection traces back to the backtest, which the reason names, and it is not a fallback
        assert selections[uid]["backtest_run_id"] == "bt_global"
        assert "won backtest bt_global" in selections[uid]["reason"]
        assert "not available" not in selections[uid]["reason"]
    forecasts = rows["forecasts"]
    assert set(forecasts.filter(pl.col("unique_id") == "unrate")["model"]) == {"LGBMGlobal"}
    assert set(forecasts.filter(pl.col("unique_id") == "cpiaucsl")["model"]) == {"Ensemble-statglobal"}

    # The same data the cycle saw, straight from the warehouse, cut at the cycle's as-of.
    with Warehouse.open(settings.warehouse_path) as wh:
        meta = read_series_meta(wh)
        monthly = [u for u, f in zip(meta["unique_id"], meta["frequency"], strict=True) if f == "MS"]
        series = read_observations(wh, monthly, before=Clock.resolve(settings, now=NOW).cutoff)
    frequencies = dict.fromkeys(monthly, "MS")
    fc = settings.forecast
    direct = forecasting.forecast_global(
        series,
        frequencies=frequencies,
        horizons=fc.horizon,
        max_context=fc.max_context,
        bounds=forecasting.bounds_from_meta(meta),
        strategy="recursive",
        conformal_windows=2,
    ).forecasts
    _close(forecasts.filter(pl.col("unique_id") == "unrate"), direct.filter(pl.col("unique_id") == "unrate"))

    statistical = [m for m in members if m != "LGBMGlobal"]
    stat = forecasting.forecast_statistical(
        series.filter(pl.col("unique_id") == "cpiaucsl"),
        frequencies=frequencies,
        horizons=fc.horizon,
        models=tuple(statistical),
        max_context=fc.max_context,
        n_jobs=fc.n_jobs,
        intervals=fc.intervals,
        conformal_windows=fc.conformal_windows,
        bounds=forecasting.bounds_from_meta(meta),
    ).forecasts
    both = pl.concat(
        [stat.select(forecast_columns()), direct.filter(pl.col("unique_id") == "cpiaucsl").select(forecast_columns())]
    )
    combined = forecasting.combine_forecasts(both, members={"cpiaucsl": members}, method="statglobal")
    _close(forecasts.filter(pl.col("unique_id") == "cpiaucsl"), combined)

    chosen = forecasts.filter(pl.col("unique_id").is_in(["unrate", "cpiaucsl"]))
    values = chosen.select(QUANTILE_ORDER).to_numpy()
    assert np.isfinite(values).all()
    assert (np.diff(values, axis=1) >= 0).all()


def test_global_rows_do_not_depend_on_chunks_or_workers(
    cycled: tuple[Path, Settings, dict[str, pl.DataFrame]], tmp_path: Path
) -> None:
    _, _, whole = cycled
    _, chunked = _backtest_and_run(tmp_path / "chunked", EWS_CYCLE__CHUNK_SERIES="1")
    _, two = _backtest_and_run(tmp_path / "two", EWS_CYCLE__WORKERS="2")
    assert "LGBMGlobal" in set(whole["forecasts"]["model"])
    for table, rows in whole.items():
        assert rows.equals(chunked[table]), f"{table}: chunk_series 1 differs from all in one chunk"
        assert rows.equals(two[table]), f"{table}: workers 2 differ from 1"


def test_the_cycles_global_fit_reads_only_the_tail_it_needs(tmp_path: Path) -> None:
    """The cycle's global fit reads the newest ``[forecast] max_context`` observations of an
    unbounded series and a bounded series whole; its forecasts equal those of the full
    histories (UNRATE with its 0..100 % bounds, CPIAUCSL unbounded, max_context 300 < their
    histories)."""
    settings = _settings(tmp_path, EWS_FORECAST__MAX_CONTEXT="300")
    with Warehouse.open(settings.warehouse_path) as wh:
        for uid in ("unrate", "cpiaucsl"):
            name, freq = FILES[uid]
            bounds = {"bounds": {"unrate": [0.0, 100.0]}} if uid == "unrate" else {}
            result = ingest_file(
                wh,
                settings,
                ROOT / "data" / "market" / name,
                "fred_csv",
                options={"unique_id": uid, "frequency": freq, "domain": "market", **bounds},
            )
            assert result.status == "committed"
        cutoff = Clock.resolve(settings, now=NOW).cutoff
        fits = GlobalFits.of_warehouse(wh, settings, before=cutoff)
        found = fits.result("LGBMGlobal", "MS")
        meta = read_series_meta(wh)
        series = read_observations(wh, before=cutoff)
        tail = read_observations(wh, before=cutoff, last=300)
    assert not isinstance(found, str), found
    assert series.group_by("unique_id").len()["len"].min() > 300  # the tail read leaves rows out
    assert tail.group_by("unique_id").len()["len"].to_list() == [300, 300]
    bounds = forecasting.bounds_from_meta(meta)
    assert bounds == {"unrate": (0.0, 100.0)}
    direct = forecasting.forecast_global(
        series,
        frequencies=dict.fromkeys(["unrate", "cpiaucsl"], "MS"),
        horizons=settings.forecast.horizon,
        max_context=300,
        bounds=bounds,
        strategy="recursive",
        conformal_windows=2,
    )
    _close(found.forecasts, direct.forecasts)
    unrate = found.forecasts.filter(pl.col("unique_id") == "unrate").select(QUANTILE_ORDER).to_numpy()
    assert ((unrate >= 0.0) & (unrate <= 100.0)).all()
    assert any("bounded in [0, 100]" in n for n in found.notes["note"].to_list())


def test_global_rows_on_the_dask_engine_are_the_local_ones(
    cycled: tuple[Path, Settings, dict[str, pl.DataFrame]], tmp_path: Path
) -> None:
    """The dask engine: the statistical fits run on the cluster, the global fit on the driver."""
    pytest.importorskip("distributed")
    pytest.importorskip("fugue_dask")
    _, _, local = cycled
    _, dask = _backtest_and_run(tmp_path / "dask", EWS_CYCLE__ENGINE="dask", EWS_CYCLE__WORKERS="2")
    assert local["selections"].equals(dask["selections"])
    mine, theirs = local["forecasts"], dask["forecasts"]
    assert mine.select("unique_id", "cutoff", "model", "ds").equals(theirs.select("unique_id", "cutoff", "model", "ds"))
    for column in ["mean", *QUANTILE_ORDER]:
        np.testing.assert_allclose(mine[column].to_numpy(), theirs[column].to_numpy(), rtol=1e-9, atol=0.0)
    # the global model's own rows come from the same driver-side fit: equal bit for bit
    only = pl.col("model") == "LGBMGlobal"
    assert mine.filter(only).height and mine.filter(only).equals(theirs.filter(only))
