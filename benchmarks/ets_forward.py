"""Next-day forecasts without refitting: AutoETS refit vs filtering forward with kept parameters.

Issue 21's next-day cycle refits the selected model of every series each day (AutoETS with its
kept form: no form search, but the smoothing parameters and initial state are optimised again),
and that refit is about half of a next-day cycle (docs/scaling.md, "A profile of the next-day
cycle"). statsforecast can instead run a fitted ETS model's filter over new data with its
parameters fixed (``AutoETS.forward``). This benchmark measures what that would save and cost,
on every bundled daily series (data/, parsed by ingest/sources), in one process:

- fit the automatic AutoETS (season 7, as the engine plans daily series) on the ``--context``
  points that end ``--days + 14`` points before each series' end (day 0);
- on each of the next ``--days`` days: **refit** = AutoETS with day 0's form, fitted on the
  window of ``--context`` points ending that day (what ``ews run`` does now, sliding window);
  **forward** = day 0's model filtered forward over day 0's window grown by the new points
  (the same start, so the initial state stays aligned with its seasonal phase);
- both forecast 14 steps with 50/80/90 % intervals; the seconds of each are summed over all
  series and days, and both forecasts are scored on the 14 actual points after each day
  (MASE with the in-sample seasonal-naive scale of the refit window, 90 % coverage).

Values are the raw series (the engine fits bounded series on a log scale; not applied here).
Prints one JSON line: series, days, refit_seconds, forward_seconds, ratio, MASE and 90 %
coverage of both, and the mean relative difference of their 14-step means.

    PYTHONPATH=. .venv/bin/python benchmarks/ets_forward.py [--days 7] [--context 1000]
    PYTHONPATH=. .venv/bin/python benchmarks/ets_forward.py --synthetic 30   # cycle_scale's series
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_accuracy import load_bundled  # noqa: E402

H = 14
SEASON = 7
LEVELS = [50, 80, 90]


def _mase(actual: np.ndarray, mean: np.ndarray, train: np.ndarray) -> float:
    scale = float(np.mean(np.abs(train[SEASON:] - train[:-SEASON])))
    return float(np.mean(np.abs(actual - mean)) / scale) if scale > 0 else float("nan")


def _synthetic(count: int) -> pl.DataFrame:
    """``count`` daily series of cycle_scale's generator (random walk, weekly and yearly seasons)."""
    import cycle_scale

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic.csv"
        cycle_scale.synthetic_export(path, series=count, days=3 * 365, start=date(2015, 1, 1), seed=0)
        wide = pl.read_csv(path)
    return wide.unpivot(index="DATE", variable_name="unique_id", value_name="y").rename({"DATE": "ds"})


def one_series(y: np.ndarray, *, days: int, context: int) -> dict[str, list[float]]:
    """Day 0's automatic fit, then each next day's refit and forward (module docstring): the
    seconds, MASE, 90 % coverage and mean relative difference of each day."""
    from statsforecast.models import AutoETS

    end0 = len(y) - days - H
    start0 = end0 - context
    out: dict[str, list[float]] = {
        k: [] for k in ("refit_s", "forward_s", "refit_mase", "forward_mase", "refit_in90", "forward_in90", "diff")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        day0 = AutoETS(season_length=SEASON).fit(y[start0:end0])
        form, damped = day0.model_["components"][:3], day0.model_["components"][3] == "D"
        for k in range(1, days + 1):
            end = end0 + k
            actual, train = y[end : end + H], y[end - context : end]
            t = time.perf_counter()
            r = AutoETS(season_length=SEASON, model=form, damped=damped).fit(train).predict(H, level=LEVELS)
            out["refit_s"].append(time.perf_counter() - t)
            t = time.perf_counter()
            f = day0.forward(y[start0:end], H, level=LEVELS)
            out["forward_s"].append(time.perf_counter() - t)
            for name, fc in (("refit", r), ("forward", f)):
                out[f"{name}_mase"].append(_mase(actual, fc["mean"], train))
                out[f"{name}_in90"].append(float(np.mean((actual >= fc["lo-90"]) & (actual <= fc["hi-90"]))))
            out["diff"].append(float(np.mean(np.abs(f["mean"] - r["mean"]) / np.maximum(np.abs(r["mean"]), 1e-9))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="next days per series")
    parser.add_argument("--context", type=int, default=1000, help="points per fit ([forecast] max_context)")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="instead of the bundled series: this many series of benchmarks/cycle_scale.py's generator (3 years)",
    )
    args = parser.parse_args()
    if args.synthetic:
        series = _synthetic(args.synthetic)
        daily = series["unique_id"].unique().sort().to_list()
    else:
        series, meta = load_bundled()
        daily = meta.filter(meta["frequency"] == "D")["unique_id"].sort().to_list()
    pooled: dict[str, list[float]] = {}
    used: list[str] = []
    skipped: dict[str, str] = {}
    for uid in daily:
        y = series.filter(series["unique_id"] == uid).sort("ds")["y"].to_numpy().astype(float)
        y = y[np.isfinite(y)]
        if len(y) < args.context + args.days + H:
            skipped[uid] = f"{len(y)} points"
            continue
        try:
            result = one_series(y, days=args.days, context=args.context)
        except Exception as exc:  # noqa: BLE001 - statsforecast raises a bare Exception ("no model able to be fitted")
            skipped[uid] = str(exc)
            continue
        used.append(uid)
        for key, values in result.items():
            pooled.setdefault(key, []).extend(values)
    if not used:
        raise SystemExit(f"no bundled daily series has {args.context + args.days + H} points; lower --context")
    print(
        json.dumps(
            {
                "series": len(used),
                "days": args.days,
                "context": args.context,
                "refit_seconds": round(sum(pooled["refit_s"]), 3),
                "forward_seconds": round(sum(pooled["forward_s"]), 3),
                "ratio": round(sum(pooled["refit_s"]) / sum(pooled["forward_s"]), 1),
                "refit_mase": round(float(np.nanmean(pooled["refit_mase"])), 4),
                "forward_mase": round(float(np.nanmean(pooled["forward_mase"])), 4),
                "refit_coverage_90": round(float(np.mean(pooled["refit_in90"])), 4),
                "forward_coverage_90": round(float(np.mean(pooled["forward_in90"])), 4),
                "mean_relative_difference": round(float(np.mean(pooled["diff"])), 4),
                "series_ids": used,
                "skipped": skipped,
            }
        )
    )


if __name__ == "__main__":
    main()
