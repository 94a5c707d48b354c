"""Chronos on CPU through the real loading and prediction code, on tiny random-weight models
built from configs (no download), plus vertical-model training and the staging message.

A model with random weights forecasts nonsense, so these tests pin the contract (shapes,
grid, quantile order, names, provenance), never accuracy."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import ModelError
from core.frames import QUANTILES, quantile_column
from core.settings import load_settings
from forecasting import build_random_chronos, forecast_chronos, load_chronos
from ingest.batches import ingest_file
from pipelines.cli.main import main
from pipelines.forecast_step import run_backtest, run_forecast_step
from tests.fred_series import load_fred
from warehouse import Warehouse
from warehouse import forecast_store as store
from warehouse.series import read_observations, read_series_meta

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.chronos


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chronos")
    return {
        "chronos2": build_random_chronos(root / "tiny-chronos2", shape="tiny", context_length=256),
        "bolt": build_random_chronos(root / "tiny-bolt", shape="tiny-bolt", context_length=256),
    }


@pytest.fixture(scope="module")
def series() -> pl.DataFrame:
    return pl.concat([load_fred("fred_STLFSI4.csv", "STLFSI4"), load_fred("fred_DGS10_last800.csv", "DGS10")])


@pytest.mark.parametrize("kind", ["chronos2", "bolt"])
def test_tiny_model_loads_from_a_local_dir_and_forecasts_the_contract(
    tiny: dict[str, Path], series: pl.DataFrame, kind: str
) -> None:
    model = load_chronos(tiny[kind], threads=2)
    assert model.kind == kind and model.name in ("Chronos2", "ChronosBolt")
    assert (tiny[kind] / "config.json").is_file()
    out = forecast_chronos(
        model,
        series,
        frequencies={"STLFSI4": "W-FRI", "DGS10": "B"},
        horizons={"W-FRI": 4, "B": 5},
        max_context=256,
        batch_size=8,
    )
    fc = out.forecasts
    assert dict(fc.group_by("unique_id").len().iter_rows()) == {"STLFSI4": 4, "DGS10": 5}
    assert set(fc["model"]) == {model.name}
    q = fc.select([quantile_column(x) for x in QUANTILES]).to_numpy()
    assert np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()
    first = fc.filter(pl.col("unique_id") == "STLFSI4")["ds"].min()
    assert first > series.filter(pl.col("unique_id") == "STLFSI4")["ds"].max()
    assert first.weekday() == 4  # Friday grid
    assert (fc.filter(pl.col("unique_id") == "DGS10")["ds"].dt.weekday() <= 5).all()
    notes = " ".join(out.notes["note"])
    assert "gap(s) forward-filled" in notes  # DGS10 holidays regularised before predict_df
    if kind == "bolt":
        assert "clamped" in notes  # Bolt was trained on 0.1 ... 0.9 only


def test_missing_weights_say_exactly_what_and_how_to_stage_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="no directory .*nowhere") as info:
        load_chronos(tmp_path / "nowhere")
    assert "huggingface-cli download amazon/chronos-2" in str(info.value)
    assert "EWS_HOME/models/chronos-2" in str(info.value)
    with pytest.raises(ModelError, match="hub id 'amazon/chronos-bolt-small' \\(local cache only\\)") as info:
        load_chronos("amazon/chronos-bolt-small")
    assert "HF_HUB_OFFLINE=1" in str(info.value) and "carries on" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        load_chronos(tmp_path / "empty")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny: dict[str, Path]) -> Path:
    home = tmp_path_factory.mktemp("ews-chronos")
    settings = load_settings(home)
    with Warehouse.open(settings.warehouse_path) as wh:
        for uid, name, freq in (("stlfsi4", "fred_STLFSI4.csv", "W-FRI"), ("unrate", "fred_UNRATE.csv", "MS")):
            ingest_file(
                wh,
                settings,
                DATA / name,
                "fred_csv",
                options={
                    "unique_id": uid,
                    "name": uid,
                    "unit": "index",
                    "frequency": freq,
                    "variable": uid,
                    "domain": "market",
                    "region": "US",
                    "source": "FRED",
                    "licence": "public domain",
                    "classification": "public",
                },
            )
    return home


def _settings(home: Path, **chronos: str):
    env = {f"EWS_CHRONOS__{k.upper()}": v for k, v in chronos.items()}
    env |= {"EWS_FORECAST__MAX_CONTEXT": "300", "EWS_CHRONOS__TRAIN_CONTEXT": "128"}
    return load_settings(home, environ=env)


def test_backtest_carries_on_without_weights_and_includes_chronos_with_them(home: Path, tiny: dict[str, Path]) -> None:
    missing = _settings(home, source=str(home / "models" / "chronos-2"))
    with Warehouse.open(missing.warehouse_path) as wh, wh.transaction():
        result = run_backtest(
            wh,
            missing,
            run_id="bt_a",
            now=datetime(2026, 1, 1),
            windows=1,
            models=("AutoETS", "Naive"),
            unique_ids=["stlfsi4"],
        )
    assert set(result.metrics["model"]) >= {"AutoETS", "Naive"}
    assert any("Chronos2 unavailable" in n and "stage the weights" in n for n in result.notes)
    present = _settings(home, source=str(tiny["chronos2"]))
    with Warehouse.open(present.warehouse_path) as wh, wh.transaction():
        result = run_backtest(
            wh,
            present,
            run_id="bt_b",
            now=datetime(2026, 1, 2),
            windows=1,
            models=("AutoETS", "Naive"),
            unique_ids=["stlfsi4"],
        )
    assert "Chronos2" in set(result.metrics["model"])


def test_vertical_model_is_trained_registered_backtested_and_selectable(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_home = ["--home", str(home)]
    import os

    os.environ["EWS_CHRONOS__TRAIN_CONTEXT"] = "128"
    try:
        assert main([*env_home, "model", "train", "--domain", "market", "--steps", "2", "--json", "--quiet"]) == 0
    finally:
        del os.environ["EWS_CHRONOS__TRAIN_CONTEXT"]
    entry = json.loads(capsys.readouterr().out)
    assert entry["base"] == "scratch" and entry["steps"] == 2
    assert entry["training_series"] == ["stlfsi4", "unrate"]
    assert len(entry["batch_ids"]) == 2 and all(b.startswith("b_") for b in entry["batch_ids"])
    assert {"trained", "SeasonalNaive"} <= set(entry["validation"])
    assert Path(entry["path"], "config.json").is_file()
    assert main([*env_home, "model", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["models"]
    assert [m["model_id"] for m in listed] == [entry["model_id"]]
    assert listed[0]["data_hash"] == entry["data_hash"]

    settings = _settings(home)
    with Warehouse.open(settings.warehouse_path) as wh, wh.transaction():
        bt = run_backtest(
            wh, settings, run_id="bt_c", now=datetime(2026, 1, 3), windows=1, models=("Naive",), unique_ids=["stlfsi4"]
        )
    assert entry["model_id"] in set(bt.metrics["model"])  # it competes for its domain's series
    # A backtest in which it is the only candidate it wins; the cycle then forecasts with it.
    only = bt.metrics.filter(pl.col("model") == entry["model_id"])
    with Warehouse.open(settings.warehouse_path) as wh, wh.transaction():
        store.write_backtest(wh, only, run_id="bt_d", at=datetime(2026, 1, 4))
        meta = read_series_meta(wh, ["stlfsi4"])
        result = run_forecast_step(
            wh,
            settings,
            read_observations(wh, ["stlfsi4"]),
            frequencies={"stlfsi4": "W-FRI"},
            meta=meta,
            run_id="r_v",
            now=datetime(2026, 1, 4),
        )
    assert set(result.forecasts["model"]) == {entry["model_id"]}
    assert result.selections["reason"][0].startswith("won backtest bt_d")
    assert result.fitted.height > 0 and set(result.fitted["model"]) == {"AutoETS"}
