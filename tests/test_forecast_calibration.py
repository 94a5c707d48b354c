"""Calibrated forecast intervals (forecasting.calibration, issue 17): factors learned on the
backtest's out-of-sample windows only, applied to production forecasts by `ews run`.

Real bundled data (data/PROVENANCE.md): FRED's monthly exchange rates (held-out coverage),
Tohoku's daily earthquake counts (bounded at 0), and the FRED STLFSI4 / UNRATE / CPIAUCSL files
in a real DuckDB warehouse replayed to 2008-10-24 (`ews backtest` + `ews run`).
"""

from __future__ import annotations

import datetime as dt
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import forecasting
from core.errors import FrameError
from core.frames import QUANTILES, quantile_column
from core.settings import load_settings
from forecasting.calibration import ALL_GROUPS
from ingest.batches import ingest_file
from ingest.sources import bundled_catalogue, parse
from pipelines.cycle import run_cycle
from pipelines.forecast_step import run_backtest
from tests.fred_series import ingest_market_files
from tests.sql import sql_frame
from warehouse import Warehouse
from warehouse.series import read_series_meta

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
QCOLS = [quantile_column(q) for q in QUANTILES]
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
    "EWS_BACKTEST__ENSEMBLES": "[]",
}


def _bundled(prefix: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    series, meta = [], []
    for entry in bundled_catalogue(DATA):
        if entry.relative_path.startswith(prefix):
            parsed = parse(DATA / entry.relative_path, entry.format, **entry.options)
            series.append(parsed.series.select("unique_id", "ds", "y"))
            meta.append(parsed.meta)
    if not series:
        pytest.skip(f"no bundled data under data/{prefix}")
    return pl.concat(series), pl.concat(meta, how="diagonal_relaxed").unique("unique_id")


def _coverage(frame: pl.DataFrame, low: str, high: str) -> float:
    inside = (frame["y"] >= frame[low]) & (frame["y"] <= frame[high])
    return float(inside.cast(pl.Float64).sum()) / frame.height


def _ordered(frame: pl.DataFrame) -> bool:
    return bool((np.diff(frame.select(QCOLS).to_numpy(), axis=1) >= 0).all())


def _four_windows(
    series: pl.DataFrame, frequencies: dict[str, str], horizons: dict[str, int], bounds: dict
) -> forecasting.BacktestResult:
    """A backtest of AutoETS and SeasonalNaive over 4 windows (no ensembles)."""
    return forecasting.backtest(
        series,
        frequencies=frequencies,
        horizons=horizons,
        models=("AutoETS", "SeasonalNaive"),
        windows=4,
        max_context=500,
        bounds=bounds,
        ensembles=(),
    )


def test_held_out_coverage_moves_toward_nominal_on_the_exchange_rates() -> None:
    # Six monthly exchange rates, 4 rolling windows of 12 months: factors learned on the first 3
    # windows, applied to the 4th (never seen by the calibration).
    series, meta = _bundled("market/fred_exchange_rates")
    frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    bounds = forecasting.bounds_from_meta(meta)
    result = _four_windows(series, frequencies, {"MS": 12}, bounds)
    last = result.forecasts.group_by("unique_id").agg(pl.col("cutoff").max().alias("last"))
    scored = result.forecasts.join(last, on="unique_id")
    earlier = scored.filter(pl.col("cutoff") < pl.col("last")).drop("last")
    held = scored.filter(pl.col("cutoff") == pl.col("last")).drop("last")
    scales = forecasting.learn_interval_scales(earlier, groups=frequencies, min_points=50)
    assert set(scales["model"]) == {"AutoETS", "SeasonalNaive"}
    calibrated = []
    for (model,), part in held.group_by("model"):
        factors = {u: forecasting.interval_scales_for(scales, group="MS", model=str(model)) for u in frequencies}
        calibrated.append(forecasting.calibrate_intervals(part, factors, bounds=bounds)[0])
    after = pl.concat(calibrated)
    # on the windows it was learned from, each calibrated interval covers at least its nominal
    # share (the conformal rank), whatever the models' own intervals did there
    learned = pl.concat(
        forecasting.calibrate_intervals(
            part, {u: forecasting.interval_scales_for(scales, group="MS", model=str(m)) for u in frequencies}
        )[0]
        for (m,), part in earlier.group_by("model")
    )
    for (m,), part in learned.group_by("model"):
        assert _coverage(part, "q10", "q90") >= 0.8 and _coverage(part, "q05", "q95") >= 0.9, m
    for low, high, nominal in (("q10", "q90", 0.8), ("q05", "q95", 0.9)):
        raw, cal = _coverage(held, low, high), _coverage(after, low, high)
        # the models' own intervals over-cover these rates; the calibrated ones are closer to nominal
        assert abs(cal - nominal) < abs(raw - nominal), (low, high, raw, cal)
    # only the spread moves: the point forecast (mean) and the median are the models'
    keys = ["unique_id", "model", "cutoff", "ds"]
    before, moved = held.sort(keys), after.sort(keys)
    assert moved.select("mean", "q50").equals(before.select("mean", "q50"))
    assert _ordered(moved)


def test_calibrated_quantiles_are_ordered_and_never_below_the_floor() -> None:
    series, meta = _bundled("seismic/usgs_comcat_japan_2005_2014_processed.csv")
    counts = series.filter((pl.col("unique_id") == "tohoku_count") & (pl.col("ds") < dt.datetime(2011, 3, 1)))
    bounds = forecasting.bounds_from_meta(meta.filter(pl.col("unique_id") == "tohoku_count"))
    assert bounds["tohoku_count"][0] == 0.0
    frequencies = {"tohoku_count": "D"}
    result = _four_windows(counts, frequencies, {"D": 14}, bounds)
    scales = forecasting.learn_interval_scales(result.forecasts, groups=frequencies, min_points=40)
    factors = forecasting.interval_scales_for(scales, group="D", model="AutoETS")
    assert factors is not None and factors["group"] == "D" and factors["points"] == 56
    final = forecasting.forecast_statistical(
        counts, frequencies=frequencies, horizons={"D": 14}, models=("AutoETS",), max_context=500, bounds=bounds
    ).forecasts
    # Stretch the lower side far beyond the learned factors too: the floor must hold whatever
    # the factors are, and the notes must say when it did.
    wide = dict(factors) | {"q05": 50.0, "q10": 40.0, "q25": 0.1}
    for chosen in (factors, wide):
        out, notes = forecasting.calibrate_intervals(final, {"tohoku_count": chosen}, bounds=bounds)
        assert out.columns == final.columns and out.height == final.height
        assert _ordered(out)
        assert out.select(pl.min_horizontal(*QCOLS).min()).item() >= 0.0
        assert out.select("mean", "q50").equals(final.select("mean", "q50"))
    assert any("reached the bound 0" in note for _, _, note in notes)
    assert (out["q05"] == 0.0).any()  # the stretched lower side sits on the floor: mass at zero counts


def test_learning_refuses_frames_without_actuals_and_series_without_a_group() -> None:
    series, meta = _bundled("market/fred_exchange_rates_china")
    frame = forecasting.forecast_statistical(
        series, frequencies={u: "MS" for u in meta["unique_id"]}, horizons={"MS": 12}, models=("Naive",)
    ).forecasts
    with pytest.raises(FrameError, match="missing column"):
        forecasting.learn_interval_scales(frame, groups={u: "MS" for u in meta["unique_id"]})
    scored = frame.with_columns(pl.col("mean").alias("y"))
    with pytest.raises(FrameError, match="no calibration group"):
        forecasting.learn_interval_scales(scored, groups={})


# -- the warehouse path: `ews backtest` learns, `ews run` applies ---------------------------
def _altered_unrate(tmp: Path, *, after: str | None = None, before: str | None = None) -> Path:
    """UNRATE with the values after (or before) a date doubled: later data / earlier data changed."""
    raw = pl.read_csv(DATA / "market" / "fred_UNRATE.csv", schema_overrides={"value": pl.Float64})
    day = pl.col("date").str.to_date("%Y-%m-%d")
    where = day > dt.date.fromisoformat(after) if after else day < dt.date.fromisoformat(before or "1900-01-01")
    path = tmp / "fred_UNRATE.csv"
    raw.with_columns(pl.when(where).then(pl.col("value") * 2).otherwise(pl.col("value")).alias("value")).write_csv(path)
    return path


def _backtest_factors(home: Path, path: Path) -> dict[str, str | None]:
    settings = load_settings(home, environ={**ENV, "EWS_BACKTEST__CALIBRATION_MIN_POINTS": "15"})
    with Warehouse.open(settings.warehouse_path) as wh:
        done = ingest_file(
            wh,
            settings,
            path,
            "fred_csv",
            options={"unique_id": "unrate", "frequency": "MS", "domain": "market", "region": "US"},
        )
        assert done.status == "committed"
        run_backtest(wh, settings, run_id="bt_cal", now=NOW)
        rows = sql_frame(wh, "SELECT model, interval_scales FROM backtest_results ORDER BY model")
    return dict(rows.iter_rows())


def test_factors_come_from_the_backtest_windows_and_not_from_later_data(tmp_path: Path) -> None:
    original = _backtest_factors(tmp_path / "a", DATA / "market" / "fred_UNRATE.csv")
    assert original["AutoETS"] is not None
    learned = json.loads(original["AutoETS"])
    assert learned["group"] == "MS" and learned["points"] == 18  # 3 windows x 6 months, replayed to 2008-10-24
    (tmp_path / "later").mkdir()
    later = _backtest_factors(tmp_path / "b", _altered_unrate(tmp_path / "later", after=AS_OF))
    assert later == original  # values after the replay day doubled: no factor moves
    (tmp_path / "earlier").mkdir()
    earlier = _backtest_factors(tmp_path / "c", _altered_unrate(tmp_path / "earlier", before="2008-06-01"))
    # values inside the backtest's windows changed: the factors follow (the check above is not vacuous)
    assert earlier["AutoETS"] != original["AutoETS"]


def _cycle(home: Path, **env: str) -> tuple[dict[str, forecasting.Bounds], dict[str, pl.DataFrame]]:
    settings = load_settings(home, environ={**ENV, **env})
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_market_files(wh, settings, FILES)
        run_backtest(wh, settings, run_id="bt_cal", now=NOW)
        run_cycle(wh, settings, now=NOW)
        return forecasting.bounds_from_meta(read_series_meta(wh)), {
            "forecasts": sql_frame(wh, "SELECT * EXCLUDE (run_id) FROM forecasts ORDER BY unique_id, ds"),
            "selections": sql_frame(
                wh, "SELECT unique_id, model, reason, interval_scales FROM model_selections ORDER BY unique_id"
            ),
        }


def test_ews_run_stores_calibrated_forecasts_and_the_selection_names_the_factors(tmp_path: Path) -> None:
    bounds, on = _cycle(tmp_path / "on")
    _, off = _cycle(tmp_path / "off", EWS_BACKTEST__CALIBRATE_INTERVALS="false")
    # the same backtest, the same models chosen: calibration changes no selection
    assert on["selections"]["model"].to_list() == off["selections"]["model"].to_list()
    assert off["selections"]["interval_scales"].null_count() == off["selections"].height
    assert not any("calibrated" in r for r in off["selections"]["reason"])
    factors = {}
    for uid, _model, reason, text in on["selections"].iter_rows():
        found = json.loads(text)
        # 2 monthly series x 3 windows x 6 months = 36 points < calibration_min_points = 50: the
        # factors are the model's pooled over all frequencies (with STLFSI4's 3 x 8 weeks: 60)
        assert found["group"] == ALL_GROUPS and found["points"] == 60, (uid, found)
        assert f"intervals calibrated on {found['points']} backtest points of all frequencies" in reason
        assert f"80% x{found['q10']:.2f} below / x{found['q90']:.2f} above" in reason
        factors[uid] = found
    assert set(factors) == set(FILES)
    keys = ["unique_id", "ds"]
    a, b = on["forecasts"].sort(keys), off["forecasts"].sort(keys)
    assert a.select(*keys, "model", "mean", "q50").equals(b.select(*keys, "model", "mean", "q50"))
    # the stored rows are the uncalibrated ones scaled by the stored factors, inside the bounds
    expected, _ = forecasting.calibrate_intervals(b, factors, bounds=bounds)
    for column in QCOLS:
        np.testing.assert_allclose(a[column].to_numpy(), expected[column].to_numpy(), rtol=1e-9, err_msg=column)
    assert _ordered(a)
    moved = a.filter(pl.col("unique_id").is_in(list(factors))).select(QCOLS).to_numpy()
    assert not np.allclose(moved, b.filter(pl.col("unique_id").is_in(list(factors))).select(QCOLS).to_numpy())
