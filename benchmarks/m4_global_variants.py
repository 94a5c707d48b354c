"""Feature sets of the hourly global model (LightGBM through mlforecast) compared on M4 Hourly.

Each variant is fitted once on every training series cut by the horizon (48 hours) and scored on
those 48 hours against seasonal naive (the mean of the sMAPE ratio and the MASE ratio; lower is
better): that is the comparison the choice rests on, and it never reads M4's test part. Then the
variant is fitted on the whole training parts and scored on the test part (OWA against M4's
published Naive2), for the record. No conformal fits: the point forecast only.

    EWS_M4_DATA=../shared/data/forecasting_benchmarks python benchmarks/m4_global_variants.py
    ... --variants engine earlier  # a subset

One JSON line per variant: ``variant``, ``validation_relative``, ``test_owa``, ``test_smape``,
``test_mase``, ``seconds``. Variants: ``engine`` (what :mod:`forecasting.global_model` uses for
``h``), ``earlier`` (the hourly set before it), ``earlier_d24``, ``earlier_log_d24_lags336``,
``mlforecast`` (mlforecast's own M4 Hourly configuration: unscaled, no calendar),
``mlforecast_scaled``, ``mlforecast_calendar``, ``mlforecast_recent`` (lags 1-24 added),
``scaled_255``, ``scaled_31``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.m4 import DATA, owa, read_wide  # noqa: E402
from forecasting.global_model import (  # noqa: E402
    GLOBAL_DATE_FEATURES,
    LGBM_PARAMS,
    global_features,
    global_mlforecast,
    global_params,
)

H, M = 48, 24
#: mlforecast's M4 Hourly LightGBM settings: the engine's hourly ones (forecasting.global_model).
MLFORECAST_PARAMS: dict[str, Any] = global_params("h")
VARIANTS = (
    "engine",
    "earlier",
    "earlier_d24",
    "earlier_log_d24_lags336",
    "mlforecast",
    "mlforecast_scaled",
    "mlforecast_calendar",
    "mlforecast_recent",
    "scaled_255",
    "scaled_31",
)


def to_frame(series: dict[str, np.ndarray]) -> pd.DataFrame:
    end = pd.Timestamp("2017-01-01")
    parts = [
        pd.DataFrame({"unique_id": uid, "ds": pd.date_range(end=end, periods=len(y), freq="h"), "y": y})
        for uid, y in series.items()
    ]
    return pd.concat(parts, ignore_index=True)


def spec(variant: str) -> dict[str, Any]:
    """mlforecast arguments and LightGBM settings of a variant."""
    from mlforecast.lag_transforms import ExponentiallyWeightedMean, RollingMean
    from mlforecast.target_transforms import Differences, GlobalSklearnTransformer, LocalStandardScaler
    from sklearn.preprocessing import FunctionTransformer

    if variant.startswith("earlier"):
        out: dict[str, Any] = {
            "lags": [*range(1, 25), 48, 168],
            "lag_transforms": {1: [RollingMean(window_size=24), RollingMean(window_size=168)]},
            "date_features": list(GLOBAL_DATE_FEATURES["h"]),
            "target_transforms": [Differences([1]), LocalStandardScaler()],
            "params": dict(LGBM_PARAMS),
        }
        if "d24" in variant:
            out["target_transforms"] = [Differences([24]), LocalStandardScaler()]
        if "log" in variant:
            log = GlobalSklearnTransformer(FunctionTransformer(func=np.log, inverse_func=np.exp))
            out["target_transforms"] = [log, *out["target_transforms"]]
        if "lags336" in variant:
            out["lags"] = [*range(1, 49), 72, 96, 120, 144, 168, 336]
        return out
    seasonal = [ExponentiallyWeightedMean(alpha=0.3), RollingMean(window_size=168), RollingMean(window_size=336)]
    out = {
        "lags": [24 * i for i in range(1, 15)],
        "lag_transforms": {24: seasonal, 48: list(seasonal)},
        "date_features": [],
        "target_transforms": [Differences([24])],
        "params": dict(MLFORECAST_PARAMS),
    }
    if variant not in ("mlforecast", "mlforecast_calendar", "mlforecast_recent"):  # the scaled ones
        out["target_transforms"] = [Differences([24]), LocalStandardScaler()]
    if variant == "mlforecast_calendar":
        out["date_features"] = list(GLOBAL_DATE_FEATURES["h"])
    if variant == "mlforecast_recent":
        out["lags"] = [*range(1, 25), *(24 * i for i in range(2, 15))]
    if variant == "scaled_255":
        out["params"]["num_leaves"] = 255
    if variant == "scaled_31":
        out["params"].update(num_leaves=31, n_estimators=300)
    return out


def forecast(variant: str, series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast

    model: Any
    if variant == "engine":  # built as forecasting.global_model builds it
        features = global_features("h", [len(y) for y in series.values()], H, 2)
        model = global_mlforecast("h", features, global_params("h"), n_jobs=1, name="m")
    else:
        s = spec(variant)
        model = MLForecast(
            models={"m": LGBMRegressor(n_jobs=1, **s["params"])},
            freq="h",
            lags=s["lags"],
            lag_transforms=s["lag_transforms"],
            date_features=s["date_features"],
            target_transforms=s["target_transforms"],
            num_threads=1,
        )
    model.fit(to_frame(series))
    wide: Any = model.predict(H)
    return {str(uid): part["m"].to_numpy() for uid, part in wide.groupby("unique_id")}


def errors(
    history: dict[str, np.ndarray], actual: dict[str, np.ndarray], fc: dict[str, np.ndarray]
) -> tuple[float, float, float, float]:
    """Mean sMAPE and MASE of the forecasts and of seasonal naive (lag 24)."""
    smape, mase, smape0, mase0 = [], [], [], []
    for uid, y in actual.items():
        x = history[uid]
        f = fc[uid][: len(y)]
        naive = np.tile(x[-M:], H // M + 1)[: len(y)]
        scale = np.mean(np.abs(x[M:] - x[:-M]))
        smape.append(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))
        mase.append(np.mean(np.abs(y - f)) / scale)
        smape0.append(np.mean(200 * np.abs(y - naive) / (np.abs(y) + np.abs(naive))))
        mase0.append(np.mean(np.abs(y - naive)) / scale)
    return float(np.mean(smape)), float(np.mean(mase)), float(np.mean(smape0)), float(np.mean(mase0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    if not DATA.exists():
        print(json.dumps({"skipped": f"no M4 data at {DATA}"}))
        return
    train = read_wide(DATA / "m4_hourly_train.csv")
    test = read_wide(DATA / "m4_hourly_test.csv")
    cut = {uid: y[:-H] for uid, y in train.items()}
    held = {uid: y[-H:] for uid, y in train.items()}
    for variant in args.variants:
        started = time.perf_counter()
        s, m, s0, m0 = errors(cut, held, forecast(variant, cut))
        ts, tm, _, _ = errors(train, test, forecast(variant, train))
        print(
            json.dumps(
                {
                    "variant": variant,
                    "validation_relative": round(0.5 * (s / s0 + m / m0), 4),
                    "test_owa": round(owa(ts, tm, "Hourly"), 4),
                    "test_smape": round(ts, 3),
                    "test_mase": round(tm, 4),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
