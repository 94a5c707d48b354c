"""M4 Hourly and Weekly: a small Chronos-2 trained from scratch on each set's training parts.

Issue 17 asks for the OWA of the domain model ``ews model train`` builds when no base weights
can be downloaded (this machine has none): a Chronos-2 of d_model 64 and 2 layers from random
weights (:func:`forecasting.train_vertical` with ``base=None``, the same call the command makes),
trained on the training part of every series of one M4 set, then asked once for the test
horizon from the whole training part and scored on M4's test part with M4's sMAPE, MASE and
OWA against the published Naive2 (the same scoring as ``benchmarks/m4.py``). The optimiser
never sees the test part; ``train_vertical`` also holds out the last horizon of every training
part and reports the held-out MASE of the model and of SeasonalNaive (``validation``).

Also printed: empirical coverage of the model's central 80 % (q10-q90) and 90 % (q05-q95)
intervals on the test part.

Data: ../shared/data/forecasting_benchmarks (M4 research-use data, never copied into the
project). Not part of CI: ``python benchmarks/m4_chronos2.py`` (about 10-20 minutes on 2
cores with the default 300 steps; ``--steps`` and ``--series`` shorten it).
Last line: one JSON object with owa_*, smape_*, mase_*, coverage_80_*, coverage_90_*,
train_seconds_*, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecasting import forecast_chronos, train_vertical  # noqa: E402
from m4 import DATA, NAIVE2, SPEC, read_wide, score, to_long  # noqa: E402


def coverage(test: dict[str, np.ndarray], forecasts: pl.DataFrame, low: str, high: str) -> float:
    """Share of test points inside [low, high] of the forecast's quantile columns."""
    inside = total = 0
    by_id = {uid: part.sort("ds") for (uid,), part in forecasts.group_by("unique_id")}
    for uid, y in test.items():
        part = by_id[uid]
        lo, hi = part[low].to_numpy()[: len(y)], part[high].to_numpy()[: len(y)]
        inside += int(np.sum((y >= lo) & (y <= hi)))
        total += len(y)
    return inside / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per set")
    parser.add_argument("--series", type=int, default=0, help="first N series only (0 = all)")
    parser.add_argument("--context", type=int, default=512, help="context length trained and forecast on")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not DATA.exists():
        print(json.dumps({"skipped": f"no M4 data at {DATA}"}))
        return
    started = time.perf_counter()
    result: dict[str, float | int] = {"steps": args.steps}
    for name, (freq, h, m) in SPEC.items():
        train = read_wide(DATA / f"m4_{name.lower()}_train.csv")
        test = read_wide(DATA / f"m4_{name.lower()}_test.csv")
        if args.series:
            keep = list(train)[: args.series]
            train, test = {k: train[k] for k in keep}, {k: test[k] for k in keep}
        series = to_long(train, freq)
        frequencies = dict.fromkeys(train, freq)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="m4-chronos2-") as work:
            trained = train_vertical(
                series,
                frequencies=frequencies,
                horizons={freq: h},
                output_dir=work,
                name=f"m4-{name.lower()}-chronos2",
                steps=args.steps,
                max_context=args.context,
                threads=args.threads,
            )
            train_seconds = time.perf_counter() - t0
            forecasts = forecast_chronos(
                trained.model, series, frequencies=frequencies, horizons={freq: h}, max_context=args.context
            ).forecasts
        smape, mase = score(train, test, forecasts, m)
        s2, m2 = NAIVE2[name]
        owa = 0.5 * (smape / s2 + mase / m2)
        key = name.lower()
        c80, c90 = coverage(test, forecasts, "q10", "q90"), coverage(test, forecasts, "q05", "q95")
        print(
            f"{name}: {len(train)} series, Chronos-2 from scratch ({args.steps} steps, {train_seconds:.0f} s): "
            f"sMAPE {smape:.3f}, MASE {mase:.3f}, OWA {owa:.3f}, coverage 80 % {c80:.3f}, 90 % {c90:.3f}; "
            f"held-out validation {json.dumps(trained.validation)}",
            file=sys.stderr,
        )
        result.update(
            {
                f"owa_{key}": round(owa, 4),
                f"smape_{key}": round(smape, 4),
                f"mase_{key}": round(mase, 4),
                f"coverage_80_{key}": round(c80, 4),
                f"coverage_90_{key}": round(c90, 4),
                f"train_seconds_{key}": round(train_seconds, 1),
            }
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
