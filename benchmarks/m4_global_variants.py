"""Feature sets of the global model (LightGBM through mlforecast) compared on M4 Hourly or Weekly.

Each variant is fitted once on every training series cut by the horizon (48 hours, 13 weeks)
and scored on that horizon against seasonal naive (naive for Weekly, M4's m = 1; the mean of
the sMAPE ratio and the MASE ratio; lower is better): that is the comparison the choice rests
on, and it never reads M4's test part. Then the variant is fitted on the whole training parts
and scored on the test part (OWA against M4's published Naive2), for the record. No conformal
fits: the point forecast only. Weekly series enter with their newest ``max_context`` (1,000)
points, as the engine's fit takes them.

    EWS_M4_DATA=../shared/data/forecasting_benchmarks python benchmarks/m4_global_variants.py
    ... --variants engine earlier  # a subset
    ... --set Weekly  # the weekly variants (names starting ``w_``, and ``engine``)

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

#: Per set: frequency alias, horizon, MASE season (M4's), context kept (the engine's max_context).
SETS: dict[str, tuple[str, int, int, int | None]] = {
    "Hourly": ("h", 48, 24, None),
    "Weekly": ("W-SUN", 13, 1, 1000),
}
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
#: Weekly variants: each changes one thing of the engine's weekly set (lags 1-4, 13, 52; rolling
#: means of 4 and 13 over lag 1; month; first difference, scaled per series; LGBM_PARAMS).
WEEKLY_VARIANTS = (
    "w_no_month",
    "w_lags13",
    "w_lags13_26",
    "w_ewm",
    "w_no_diff",
    "w_log",
    "w_trees500",
    "w_leaves15",
    "w_leaves63",
    "w_min_child50",
)


def to_frame(series: dict[str, np.ndarray], freq: str = "h") -> pd.DataFrame:
    end = pd.Timestamp("2017-01-01")
    parts = [
        pd.DataFrame({"unique_id": uid, "ds": pd.date_range(end=end, periods=len(y), freq=freq), "y": y})
        for uid, y in series.items()
    ]
    return pd.concat(parts, ignore_index=True)


def weekly_spec(variant: str) -> dict[str, Any]:
    """mlforecast arguments and LightGBM settings of a weekly variant."""
    from mlforecast.lag_transforms import ExponentiallyWeightedMean, RollingMean
    from mlforecast.target_transforms import Differences, GlobalSklearnTransformer, LocalStandardScaler
    from sklearn.preprocessing import FunctionTransformer

    out: dict[str, Any] = {
        "lags": [1, 2, 3, 4, 13, 52],
        "lag_transforms": {1: [RollingMean(window_size=4), RollingMean(window_size=13)]},
        "date_features": ["month"],
        "target_transforms": [Differences([1]), LocalStandardScaler()],
        "params": global_params("W-SUN"),
    }
    if variant == "w_no_month":
        out["date_features"] = []
    elif variant == "w_lags13":
        out["lags"] = [*range(1, 14), 52]
    elif variant == "w_lags13_26":
        out["lags"] = [*range(1, 14), 26, 52]
        out["lag_transforms"] = {1: [RollingMean(window_size=w) for w in (4, 13, 26)]}
    elif variant == "w_ewm":
        out["lag_transforms"][1] += [ExponentiallyWeightedMean(alpha=0.5), ExponentiallyWeightedMean(alpha=0.1)]
    elif variant == "w_no_diff":
        out["target_transforms"] = [LocalStandardScaler()]
    elif variant == "w_log":
        log = GlobalSklearnTransformer(FunctionTransformer(func=np.log, inverse_func=np.exp))
        out["target_transforms"] = [log, *out["target_transforms"]]
    elif variant == "w_trees500":
        out["params"].update(n_estimators=500, learning_rate=0.03)
    elif variant == "w_leaves15":
        out["params"]["num_leaves"] = 15
    elif variant == "w_leaves63":
        out["params"]["num_leaves"] = 63
    elif variant == "w_min_child50":
        out["params"]["min_child_samples"] = 50
    else:
        raise ValueError(f"unknown weekly variant {variant!r}")
    return out


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


def forecast(variant: str, series: dict[str, np.ndarray], name: str = "Hourly") -> dict[str, np.ndarray]:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast

    freq, h, _, _ = SETS[name]
    model: Any
    if variant == "engine":  # built as forecasting.global_model builds it
        features = global_features(freq, [len(y) for y in series.values()], h, 2)
        model = global_mlforecast(freq, features, global_params(freq), n_jobs=1, name="m")
    else:
        s = weekly_spec(variant) if name == "Weekly" else spec(variant)
        model = MLForecast(
            models={"m": LGBMRegressor(n_jobs=1, **s["params"])},
            freq=freq,
            lags=s["lags"],
            lag_transforms=s["lag_transforms"],
            date_features=s["date_features"],
            target_transforms=s["target_transforms"],
            num_threads=1,
        )
    model.fit(to_frame(series, freq))
    wide: Any = model.predict(h)
    return {str(uid): part["m"].to_numpy() for uid, part in wide.groupby("unique_id")}


def errors(
    history: dict[str, np.ndarray], actual: dict[str, np.ndarray], fc: dict[str, np.ndarray], name: str = "Hourly"
) -> tuple[float, float, float, float]:
    """Mean sMAPE and MASE of the forecasts and of seasonal naive (lag M4's m)."""
    _, h, m, _ = SETS[name]
    smape, mase, smape0, mase0 = [], [], [], []
    for uid, y in actual.items():
        x = history[uid]
        f = fc[uid][: len(y)]
        naive = np.tile(x[-m:], h // m + 1)[: len(y)]
        scale = np.mean(np.abs(x[m:] - x[:-m]))
        smape.append(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))
        mase.append(np.mean(np.abs(y - f)) / scale)
        smape0.append(np.mean(200 * np.abs(y - naive) / (np.abs(y) + np.abs(naive))))
        mase0.append(np.mean(np.abs(y - naive)) / scale)
    return float(np.mean(smape)), float(np.mean(mase)), float(np.mean(smape0)), float(np.mean(mase0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="name", choices=tuple(SETS), default="Hourly")
    parser.add_argument("--variants", nargs="+", choices=("engine", *VARIANTS[1:], *WEEKLY_VARIANTS))
    args = parser.parse_args()
    if not DATA.exists():
        print(json.dumps({"skipped": f"no M4 data at {DATA}"}))
        return
    variants = args.variants or (list(VARIANTS) if args.name == "Hourly" else ["engine", *WEEKLY_VARIANTS])
    _, h, _, context = SETS[args.name]
    train = read_wide(DATA / f"m4_{args.name.lower()}_train.csv")
    test = read_wide(DATA / f"m4_{args.name.lower()}_test.csv")
    cut = {uid: y[:-h] for uid, y in train.items()}
    held = {uid: y[-h:] for uid, y in train.items()}

    def tail(series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return series if context is None else {uid: y[-context:] for uid, y in series.items()}

    for variant in variants:
        started = time.perf_counter()
        s, m, s0, m0 = errors(cut, held, forecast(variant, tail(cut), args.name), args.name)
        ts, tm, _, _ = errors(train, test, forecast(variant, tail(train), args.name), args.name)
        print(
            json.dumps(
                {
                    "set": args.name,
                    "variant": variant,
                    "validation_relative": round(0.5 * (s / s0 + m / m0), 4),
                    "test_owa": round(owa(ts, tm, args.name), 4),
                    "test_smape": round(ts, 3),
                    "test_mase": round(tm, 4),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
