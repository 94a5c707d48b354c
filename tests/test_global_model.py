"""The global learned candidate (one LightGBM across the series of a frequency, mlforecast) and the
combinations chosen on the backtest, on the project's bundled real monthly series (FRED exchange
rates, unemployment, CPI; PSMSL sea levels) and two real hourly ones (NAB: data/PROVENANCE.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import FrameError
from core.frames import QUANTILES, forecast_columns, quantile_column
from forecasting import backtest, bounds_from_meta, forecast_global, global_installed, select_models
from forecasting.global_model import global_features
from ingest.sources import bundled_catalogue, parse

pytestmark = pytest.mark.skipif(not global_installed(), reason="mlforecast/lightgbm not installed")

DATA = Path(__file__).resolve().parent.parent / "data"
MONTHLY = {"jpy_per_usd", "gbp_per_usd", "eur_per_usd", "cad_per_usd", "chf_per_usd", "unrate", "cpiaucsl"}
QCOLS = [quantile_column(q) for q in QUANTILES]
SMALL = {"params": {"n_estimators": 30, "num_leaves": 15}, "n_jobs": 1}  # a fast LightGBM for tests
H = 6


@pytest.fixture(scope="module")
def monthly() -> pl.DataFrame:
    parts = []
    for entry in bundled_catalogue(DATA):
        if entry.options.get("unique_id") not in MONTHLY:
            continue
        parsed = parse(DATA / entry.relative_path, entry.format, **entry.options)
        parts.append(parsed.series.filter(pl.col("unique_id").is_in(sorted(MONTHLY))).select("unique_id", "ds", "y"))
    # the last 20 years: enough for lag 12 and the conformal windows, quick to fit
    series = pl.concat(parts).sort("unique_id", "ds").group_by("unique_id", maintain_order=True).tail(240)
    assert set(series["unique_id"].unique()) == MONTHLY
    return series


def _freqs(series: pl.DataFrame) -> dict[str, str]:
    return dict.fromkeys(series["unique_id"].unique().to_list(), "MS")


def _ordered(frame: pl.DataFrame) -> bool:
    return bool((np.diff(frame.select(QCOLS).to_numpy(), axis=1) >= 0).all())


def test_global_model_forecasts_every_series_with_ordered_conformal_quantiles(monthly) -> None:
    result = forecast_global(monthly, frequencies=_freqs(monthly), horizons={"MS": H}, **SMALL)
    fc = result.forecasts
    assert tuple(fc.columns) == forecast_columns()
    assert fc.height == len(MONTHLY) * H and set(fc["model"]) == {"LGBMGlobal"}
    assert fc.select(pl.all_horizontal(pl.col(["mean", *QCOLS]).is_finite())).to_series().all()
    assert _ordered(fc) and (fc["q50"] == fc["mean"]).all()
    # conformal intervals: wider at 90 than at 80 than at 50 somewhere, never narrower
    assert ((fc["q95"] - fc["q05"]) >= (fc["q90"] - fc["q10"])).all()
    assert ((fc["q90"] - fc["q10"]) > (fc["q75"] - fc["q25"])).any()
    # the forecasts start one month after each series' last observation
    last = monthly.group_by("unique_id").agg(pl.col("ds").max())
    first = fc.group_by("unique_id").agg(pl.col("ds").min()).join(last, on="unique_id")
    assert (first["ds"] > first["ds_right"]).all()
    # the same input gives the same output
    again = forecast_global(monthly, frequencies=_freqs(monthly), horizons={"MS": H}, **SMALL).forecasts
    assert again.equals(fc)


def test_direct_strategy_gives_the_same_columns(monthly) -> None:
    part = monthly.filter(pl.col("unique_id").is_in(["jpy_per_usd", "gbp_per_usd", "eur_per_usd"]))
    fc = forecast_global(part, frequencies=_freqs(part), horizons={"MS": 3}, strategy="direct", **SMALL).forecasts
    assert fc.height == 9 and _ordered(fc)
    with pytest.raises(FrameError, match="strategy"):
        forecast_global(part, frequencies=_freqs(part), horizons={"MS": 3}, strategy="sideways")


def test_short_series_is_left_out_with_its_reason(monthly) -> None:
    short = (
        monthly.filter(pl.col("unique_id") == "unrate").tail(30).with_columns(pl.lit("unrate_short").alias("unique_id"))
    )
    frame = pl.concat([monthly, short])
    result = forecast_global(frame, frequencies=_freqs(frame), horizons={"MS": H}, **SMALL)
    assert "unrate_short" not in set(result.forecasts["unique_id"])
    note = result.notes.filter(pl.col("unique_id") == "unrate_short")["note"].item()
    assert "grid points < 40 (features reach 12 + horizon 6" in note and "statistical candidates only" in note
    # in a backtest the short series keeps its statistical candidates
    bt = backtest(
        frame,
        frequencies=_freqs(frame),
        horizons={"MS": H},
        models=("AutoETS", "SeasonalNaive", "LGBMGlobal"),
        windows=1,
        n_jobs=1,
        ensembles=(),
        global_options=SMALL,
    )
    models = set(bt.metrics.filter(pl.col("unique_id") == "unrate_short")["model"])
    assert models == {"AutoETS", "SeasonalNaive"}


@pytest.fixture(scope="module")
def leak_check(monthly):
    """The engine's path on the training part (all but the last H months), run twice: with the
    real held-out months and with them replaced by nonsense."""
    cut = monthly.group_by("unique_id").agg(pl.col("ds").sort().get(-H - 1).alias("cut"))
    changed = monthly.join(cut, on="unique_id").with_columns(
        pl.when(pl.col("ds") > pl.col("cut")).then(pl.col("y") * -100.0 + 1e6).otherwise(pl.col("y")).alias("y")
    )

    def engine(frame: pl.DataFrame):
        train = frame.join(cut, on="unique_id").filter(pl.col("ds") <= pl.col("cut")).drop("cut")
        bt = backtest(
            train,
            frequencies=_freqs(train),
            horizons={"MS": H},
            models=("AutoETS", "AutoTheta", "SeasonalNaive", "Naive", "LGBMGlobal"),
            windows=2,
            n_jobs=1,
            ensembles=("median", "top2", "statglobal"),
            global_options=SMALL,
        )
        ids = sorted(train["unique_id"].unique().to_list())
        return bt, select_models(bt.metrics, unique_ids=ids, default_model="AutoETS", margin=0.2)

    return engine(monthly), engine(changed.drop("cut"))


def test_selection_never_sees_the_held_out_test_part(leak_check) -> None:
    (bt, selected), (bt_changed, selected_changed) = leak_check
    assert "LGBMGlobal" in set(bt.metrics["model"])
    assert selected.equals(selected_changed)
    assert_frame_equal(bt.metrics.sort("unique_id", "model"), bt_changed.metrics.sort("unique_id", "model"))
    assert bt.ensemble_members == bt_changed.ensemble_members


def test_backtest_windows_never_see_what_they_are_scored_on(monthly) -> None:
    """Changing the actuals after each series' last backtest cutoff changes their scores but no
    forecast of any window, the global model's and the combinations' included."""

    def run(frame: pl.DataFrame):
        return backtest(
            frame,
            frequencies=_freqs(frame),
            horizons={"MS": H},
            models=("AutoETS", "SeasonalNaive", "LGBMGlobal"),
            windows=2,
            n_jobs=1,
            ensembles=("top2", "statglobal"),
            global_options=SMALL,
        )

    first = run(monthly)
    last_cut = first.forecasts.group_by("unique_id").agg(pl.col("cutoff").max().alias("cut"))
    changed = (
        monthly.join(last_cut, on="unique_id")
        .with_columns(pl.when(pl.col("ds") > pl.col("cut")).then(pl.col("y") + 50.0).otherwise(pl.col("y")).alias("y"))
        .drop("cut")
    )
    real, moved = (r.forecasts.sort("unique_id", "model", "cutoff", "ds") for r in (first, run(changed)))
    assert {"LGBMGlobal", "Ensemble-top2", "Ensemble-statglobal"} <= set(real["model"])
    assert_frame_equal(real.drop("y"), moved.drop("y"))
    assert not real["y"].equals(moved["y"])


def test_a_combination_chosen_on_the_backtest_states_its_members_in_the_reason(leak_check) -> None:
    (bt, _), _ = leak_check
    metrics = bt.metrics
    for uid, members in bt.ensemble_members["Ensemble-statglobal"].items():
        mine = metrics.filter(pl.col("unique_id") == uid)
        stat = mine.filter(pl.col("model").is_in(["AutoETS", "AutoTheta"])).sort("mase")
        assert members == [stat["model"][0], "LGBMGlobal"]
        row = mine.filter(pl.col("model") == "Ensemble-statglobal")
        assert json.loads(row["members"].item()) == members
    for uid, members in bt.ensemble_members["Ensemble-top2"].items():
        scores = dict(metrics.filter(pl.col("unique_id") == uid).select("model", "mase").iter_rows())
        ranked = sorted(bt.members[uid], key=lambda m: (scores[m], bt.members[uid].index(m)))
        assert members == ranked[:2]
    # a series choosing the combination is told which members it combines and how they were chosen
    uid = next(iter(bt.ensemble_members["Ensemble-statglobal"]))
    only = metrics.filter((pl.col("unique_id") == uid) & (pl.col("model") == "Ensemble-statglobal"))
    reason = select_models(only, unique_ids=[uid], default_model="AutoETS").item(0, "reason")
    members = bt.ensemble_members["Ensemble-statglobal"][uid]
    assert f"combines {', '.join(members)}" in reason and "global model" in reason


def test_bounded_series_stays_inside_its_bounds() -> None:
    """A river's flow (lower bound 0 in its metadata) forecast by the global model on the bounded
    scale: no quantile below 0, the map noted."""
    entry = next(e for e in bundled_catalogue(DATA) if e.relative_path.endswith("choptank_daily_flow_cms.txt"))
    parsed = parse(DATA / entry.relative_path, entry.format, **entry.options)
    bounds = bounds_from_meta(parsed.meta)
    assert bounds, "the bundled Choptank flow declares a lower bound"
    series = parsed.series.select("unique_id", "ds", "y")
    ids = series["unique_id"].unique().to_list()
    result = forecast_global(
        series, frequencies=dict.fromkeys(ids, "D"), horizons={"D": 14}, max_context=600, bounds=bounds, **SMALL
    )
    fc = result.forecasts
    assert fc.height == 14 * len(ids) and _ordered(fc)
    assert (fc["q05"] >= 0.0).all()
    assert result.notes["note"].str.contains("bounded").any()


def _nab_hourly(name: str, unique_id: str, how: str) -> pl.DataFrame:
    """A NAB series (data/nab, MIT) on the hour: sums of the half-hourly taxi counts, means of
    the hourly temperatures."""
    raw = pl.read_csv(DATA / "nab" / "realKnownCause" / f"{name}.csv", try_parse_dates=True).sort("timestamp")
    value = pl.col("value").sum() if how == "sum" else pl.col("value").mean()
    hourly = raw.group_by_dynamic("timestamp", every="1h").agg(value)
    return hourly.select(
        pl.lit(unique_id).alias("unique_id"),
        pl.col("timestamp").cast(pl.Datetime("us")).alias("ds"),
        pl.col("value").cast(pl.Float64).alias("y"),
    )


def test_hourly_global_model_uses_the_daily_season_and_beats_seasonal_naive_on_real_series() -> None:
    # Two real hourly series of scales four orders apart: New York taxi passengers per hour and
    # a machine room's temperature (NAB realKnownCause, data/PROVENANCE.md); the last 2 days held out.
    h = 48
    series = pl.concat(
        [
            _nab_hourly("nyc_taxi", "nyc_taxi", "sum"),
            _nab_hourly("ambient_temperature_system_failure", "ambient_temperature", "mean"),
        ]
    )
    train = series.group_by("unique_id", maintain_order=True).map_groups(lambda g: g.head(g.height - h))
    held = series.group_by("unique_id", maintain_order=True).map_groups(lambda g: g.tail(h))
    frequencies = dict.fromkeys(["nyc_taxi", "ambient_temperature"], "h")

    features = global_features("h", [5000, 7000], h, 2)
    assert features.lags == tuple(24 * i for i in range(1, 15)) and features.difference == 24
    assert {(lag, kind) for lag, kind, _ in features.transforms} == {
        (24, "ewm"),
        (24, "mean"),
        (48, "ewm"),
        (48, "mean"),
    }
    assert features.min_points(h, 2) == 48 + 336 + 23 + h * 3 + 10

    result = forecast_global(train, frequencies=frequencies, horizons={"h": h}, n_jobs=1)
    fc = result.forecasts
    assert result.notes.is_empty() and fc.height == 2 * h and _ordered(fc)
    for uid in frequencies:
        y = held.filter(pl.col("unique_id") == uid)["y"].to_numpy()
        past = train.filter(pl.col("unique_id") == uid)["y"].to_numpy()
        mean = fc.filter(pl.col("unique_id") == uid).sort("ds")["mean"].to_numpy()
        first = fc.filter(pl.col("unique_id") == uid)["ds"].min()
        assert first == train.filter(pl.col("unique_id") == uid)["ds"].max() + timedelta(hours=1)
        seasonal_naive = np.tile(past[-24:], 2)
        # each series is forecast on its own scale, better than repeating its last day
        assert np.mean(np.abs(y - mean)) < 0.6 * np.mean(np.abs(y - seasonal_naive)), uid
