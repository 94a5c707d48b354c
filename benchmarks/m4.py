"""M4 Hourly and Weekly: the engine's automatic forecasting scored once on the official test part.

Selection and ensembles are decided only on the training part (rolling-origin backtests
inside it, ``--windows`` of them); the chosen forecasts are then scored once on M4's test
part with M4's own sMAPE (200|y-f|/(|y|+|f|)), MASE (in-sample seasonal-naive scale, m = 24
hourly, m = 1 weekly, as M4 did) and OWA relative to the published Naive2 totals.

Data: ../shared/data/forecasting_benchmarks (M4 research-use data, never copied into the
project). Not part of CI: ``python benchmarks/m4.py`` (several minutes on 2 cores).
Last line: one JSON object with owa_hourly, owa_weekly, smape_*, mase_*, seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _auto_forecast import auto_forecast  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "forecasting_benchmarks"
# Published Naive2 totals (m4_point_forecast_scores_by_frequency_DERIVED.csv, row Naive2).
NAIVE2 = {"Hourly": (18.383, 2.395), "Weekly": (9.161, 2.777)}
SPEC = {  # frequency alias for synthetic stamps, horizon, MASE m, candidate models
    "Hourly": ("h", 48, 24, ("AutoETS", "AutoTheta", "MSTL", "SeasonalNaive", "Naive")),
    "Weekly": ("W-SUN", 13, 1, ("AutoETS", "AutoTheta", "MSTL", "SeasonalNaive", "Naive")),
}


def read_wide(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        for row in rows:
            out[row[0]] = np.array([float(v) for v in row[1:] if v != ""])
    return out


def to_long(train: dict[str, np.ndarray], freq: str) -> pl.DataFrame:
    # M4 gives no dates for these sets: stamp each series on a regular grid ending at one time.
    end = pd.Timestamp("2017-01-01")
    parts = []
    for uid, y in train.items():
        ds = pd.date_range(end=end, periods=len(y), freq=freq)
        parts.append(pl.DataFrame({"unique_id": uid, "ds": ds.to_numpy(), "y": y}))
    return pl.concat(parts).with_columns(pl.col("ds").cast(pl.Datetime("us")))


def score(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray], forecasts: pl.DataFrame, m: int
) -> tuple[float, float]:
    smapes, mases = [], []
    by_id = {uid: part.sort("ds")["mean"].to_numpy() for (uid,), part in forecasts.group_by("unique_id")}
    for uid, y in test.items():
        f = by_id[uid][: len(y)]
        smapes.append(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))
        x = train[uid]
        scale = np.mean(np.abs(x[m:] - x[:-m]))
        mases.append(np.mean(np.abs(y - f)) / scale)
    return float(np.mean(smapes)), float(np.mean(mases))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--series", type=int, default=0, help="first N series only (0 = all)")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    if not DATA.exists():
        print(json.dumps({"skipped": f"no M4 data at {DATA}"}))
        return
    started = time.perf_counter()
    result: dict[str, float] = {}
    for name, (freq, h, m, models) in SPEC.items():
        train = read_wide(DATA / f"m4_{name.lower()}_train.csv")
        test = read_wide(DATA / f"m4_{name.lower()}_test.csv")
        if args.series:
            keep = list(train)[: args.series]
            train, test = {k: train[k] for k in keep}, {k: test[k] for k in keep}
        t0 = time.perf_counter()
        series = to_long(train, freq)
        forecasts, selections, _ = auto_forecast(
            series,
            frequencies=dict.fromkeys(train, freq),
            horizons={freq: h},
            models=models,
            windows=args.windows,
            n_jobs=args.n_jobs,
        )
        smape, mase = score(train, test, forecasts, m)
        s2, m2 = NAIVE2[name]
        owa = 0.5 * (smape / s2 + mase / m2)
        picked = dict(selections.group_by("model").len().iter_rows())
        print(
            f"{name}: {len(train)} series, sMAPE {smape:.3f}, MASE {mase:.3f}, OWA {owa:.3f} "
            f"({time.perf_counter() - t0:.0f} s); selected {picked}",
            file=sys.stderr,
        )
        key = name.lower()
        result.update({f"owa_{key}": round(owa, 4), f"smape_{key}": round(smape, 4), f"mase_{key}": round(mase, 4)})
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
