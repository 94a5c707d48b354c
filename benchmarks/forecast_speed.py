"""Engine path vs statsforecast called directly, same models, same process.

N synthetic daily series (default 2,000; ``--series`` to change) of ``--length`` points with a
weekly cycle, trend and noise. Both paths fit AutoETS, AutoTheta, SeasonalNaive and Naive
(season 7), 14 steps ahead with the 50/80/90 intervals and in-sample fits, on ``--n-jobs``
processes. The engine adds validation, regularisation onto the grid, planning and the
conversion to the long quantile frame. A small warm-up run compiles numba first.

Then the global learned model (``LGBMGlobal``, :mod:`forecasting.global_model`) against
mlforecast called directly with the same LightGBM, features, target transforms and conformal
intervals, on the first ``--global-series`` of the same series (recursive, 14 steps, levels
50/80/90): the engine adds validation, regularisation and the conversion to quantile columns.
Last line: JSON with series, engine_s, direct_s, ratio_engine_vs_direct (target <= 1.10),
global_series, global_engine_s, global_direct_s, ratio_global_vs_mlforecast.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import polars as pl
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, AutoTheta, Naive, SeasonalNaive

from forecasting import forecast_global, forecast_statistical
from forecasting.global_model import LGBM_PARAMS, global_features

MODELS = ("AutoETS", "AutoTheta", "SeasonalNaive", "Naive")


def synthetic(n: int, length: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    ds = pd.date_range("2023-01-01", periods=length, freq="D")
    frames = []
    for i in range(n):
        level = 50 + 10 * rng.random()
        y = (
            level
            + 0.01 * i * t / length
            + 3 * np.sin(2 * np.pi * t / 7 + rng.random())
            + rng.normal(0, 1, length).cumsum() * 0.2
        )
        frames.append(pd.DataFrame({"unique_id": f"s{i:05d}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def direct(df: pd.DataFrame, n_jobs: int) -> float:
    start = time.perf_counter()
    sf = StatsForecast(
        models=[AutoETS(season_length=7), AutoTheta(season_length=7), SeasonalNaive(season_length=7), Naive()],
        freq="D",
        n_jobs=n_jobs,
    )
    sf.forecast(df=df, h=14, level=[50, 80, 90], fitted=True)
    sf.forecast_fitted_values()
    return time.perf_counter() - start


def engine(frame: pl.DataFrame, n_jobs: int) -> float:
    start = time.perf_counter()
    ids = frame["unique_id"].unique().to_list()
    forecast_statistical(frame, frequencies=dict.fromkeys(ids, "D"), horizons={"D": 14}, models=MODELS, n_jobs=n_jobs)
    return time.perf_counter() - start


def global_direct(df: pd.DataFrame) -> float:
    """mlforecast as its docs show it, with the engine's daily features and LightGBM."""
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import Differences, LocalStandardScaler
    from mlforecast.utils import PredictionIntervals

    features = global_features("D", df.groupby("unique_id").size().tolist(), 14, 2)
    start = time.perf_counter()
    model = MLForecast(
        models={"LGBMGlobal": LGBMRegressor(n_jobs=1, **LGBM_PARAMS)},
        freq="D",
        lags=list(features.lags),
        lag_transforms={1: [RollingMean(window_size=w) for w in features.rolling]},
        date_features=list(features.date_features),
        target_transforms=[Differences([features.difference]), LocalStandardScaler()],
    )
    model.fit(df, prediction_intervals=PredictionIntervals(n_windows=2, h=14))
    model.predict(14, level=[50, 80, 90])
    return time.perf_counter() - start


def global_engine(frame: pl.DataFrame) -> float:
    start = time.perf_counter()
    ids = frame["unique_id"].unique().to_list()
    forecast_global(frame, frequencies=dict.fromkeys(ids, "D"), horizons={"D": 14}, n_jobs=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--length", type=int, default=180)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--global-series", type=int, default=500, help="series for the global model's line (0: skip)")
    args = parser.parse_args()
    warm = synthetic(30, args.length)
    direct(warm, 1)
    engine(pl.from_pandas(warm), 1)
    df = synthetic(args.series, args.length)
    frame = pl.from_pandas(df).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    # Alternate the order across repeats so neither path always runs on a warmer machine.
    engine_times, direct_times = [], []
    for i in range(args.repeats):
        order = ("engine", "direct") if i % 2 == 0 else ("direct", "engine")
        for name in order:
            if name == "engine":
                engine_times.append(engine(frame, args.n_jobs))
            else:
                direct_times.append(direct(df, args.n_jobs))
    engine_s, direct_s = min(engine_times), min(direct_times)
    print(f"engine {engine_times} s, direct {direct_times} s")
    result = {
        "series": args.series,
        "engine_s": round(engine_s, 2),
        "direct_s": round(direct_s, 2),
        "ratio_engine_vs_direct": round(engine_s / direct_s, 3),
    }
    if args.global_series:
        ids = sorted(df["unique_id"].unique())[: args.global_series]
        part = df[df["unique_id"].isin(ids)].reset_index(drop=True)
        part_frame = frame.filter(pl.col("unique_id").is_in(ids))
        global_engine(part_frame.filter(pl.col("unique_id").is_in(ids[:20])))  # warm-up
        g_engine, g_direct = [], []
        for i in range(args.repeats):
            for name in ("engine", "direct") if i % 2 == 0 else ("direct", "engine"):
                if name == "engine":
                    g_engine.append(global_engine(part_frame))
                else:
                    g_direct.append(global_direct(part))
        print(f"global model: engine {g_engine} s, mlforecast direct {g_direct} s")
        result.update(
            {
                "global_series": len(ids),
                "global_engine_s": round(min(g_engine), 2),
                "global_direct_s": round(min(g_direct), 2),
                "ratio_global_vs_mlforecast": round(min(g_engine) / min(g_direct), 3),
            }
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
