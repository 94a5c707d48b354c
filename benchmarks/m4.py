"""M4 Hourly and Weekly: the engine's automatic forecasting scored once on the official test part.

Selection and ensembles are decided only on the training part (rolling-origin backtests
inside it, ``--windows`` of them); the chosen forecasts are then scored once on M4's test
part with M4's own sMAPE (200|y-f|/(|y|+|f|)), MASE (in-sample seasonal-naive scale, m = 24
hourly, m = 1 weekly, as M4 did) and OWA relative to the published Naive2 totals.

Candidates: AutoETS, AutoTheta, MSTL, SeasonalNaive, Naive, on Weekly also AutoARIMA
(``ADDED``; ``--add-models`` changes the additions), the global LightGBM (``LGBMGlobal``,
:mod:`forecasting.global_model`, ``--strategy`` recursive or direct) and the ensembles median,
weighted, top2, top3 and statglobal (members chosen on the training backtest).

Intervals: the chosen forecasts' quantiles are calibrated on the training backtest's
out-of-sample windows (:mod:`forecasting.calibration`, per model, ``[backtest]
calibrate_intervals``); the same forecasts before calibration are scored in the same run
(``uncalibrated``: OWA, which must equal the calibrated one since only the spread moves, and
coverage); ``--no-calibration`` skips the step.

Data: ../shared/data/forecasting_benchmarks (M4 research-use data, never copied into the
project; ``EWS_M4_DATA`` names another folder). Not part of CI: ``python benchmarks/m4.py``
(tens of minutes on 2 cores; ``--max-series N`` runs the first N series of each set).
Last line: one JSON object with owa_hourly, owa_weekly, smape_*, mase_*, coverage_80/90 (of the
chosen forecasts on the test part), per-candidate OWA (``candidates``: each candidate's own
forecast of every series; a series a candidate has no forecast for, e.g. one too short for the
global model, counts with its chosen forecast, and ``covered`` says how many it had), wall
seconds per candidate (backtest + final fit), the chosen model counted per set, and seconds.

Selection rule: ``--choose`` (``[backtest] choose``: series, frequency or auto;
:func:`forecasting.select_by_rule`); ``rules_<set>`` gives the rule used per frequency and, for
auto, its held-out figures (chosen on earlier backtest windows, scored on later ones: never the
test part). A comma list (``--choose series,frequency,auto``) scores every rule on the same
backtest (deterministic, so each equals its own run); the first rule's figures are the main
fields and ``by_rule_<set>`` has each rule's OWA, sMAPE, MASE, coverage, chosen models and rules.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _auto_forecast import auto_forecast  # noqa: E402
from core.vocabulary import SELECTION_RULES  # noqa: E402
from forecasting.calibration import calibrate_intervals, interval_scales_for, learn_interval_scales  # noqa: E402

# ../shared beside the checkout; a worktree elsewhere names it with EWS_M4_DATA.
DATA = Path(
    os.environ.get("EWS_M4_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "forecasting_benchmarks")
)
# Published Naive2 totals (m4_point_forecast_scores_by_frequency_DERIVED.csv, row Naive2).
NAIVE2 = {"Hourly": (18.383, 2.395), "Weekly": (9.161, 2.777)}
STATISTICAL = ("AutoETS", "AutoTheta", "MSTL", "SeasonalNaive", "Naive")
SPEC = {  # frequency alias for synthetic stamps, horizon, MASE m
    "Hourly": ("h", 48, 24),
    "Weekly": ("W-SUN", 13, 1),
}
#: Candidates beyond the statistical ones (--no-global leaves them out: the previous set).
GLOBAL = ("LGBMGlobal",)
#: Statistical candidates one set adds (``--add-models`` replaces them). Weekly: AutoARIMA
#: (non-seasonal: the engine fits seasonal ARIMA only for seasons up to 24), M4's own ARIMA
#: benchmark; on the training backtest's held-out folds the set with it chose better (pooled
#: MASE 0.528 against 0.552 without it; docs/forecasting.md). Hourly: none (seasonal ARIMA on
#: 24-hour seasons costs more than the benchmark's hour).
ADDED: dict[str, tuple[str, ...]] = {"Weekly": ("AutoARIMA",)}
ENSEMBLES = ("median", "weighted", "top2", "top3", "statglobal")


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


def coverage(test: dict[str, np.ndarray], forecasts: pl.DataFrame) -> tuple[float, float, int]:
    """Shares of test actuals inside [q10, q90] and [q05, q95]; points counted."""
    inside80 = inside90 = points = 0
    for (uid,), part in forecasts.group_by("unique_id"):
        y = test[str(uid)]
        p = part.sort("ds").head(len(y))
        q = {c: p[c].to_numpy() for c in ("q05", "q10", "q90", "q95")}
        inside80 += int(np.sum((y >= q["q10"]) & (y <= q["q90"])))
        inside90 += int(np.sum((y >= q["q05"]) & (y <= q["q95"])))
        points += len(y)
    return inside80 / points, inside90 / points, points


def owa(smape: float, mase: float, name: str) -> float:
    s2, m2 = NAIVE2[name]
    return 0.5 * (smape / s2 + mase / m2)


def _rules(rules: list[pl.DataFrame]) -> dict[str, dict[str, object]]:
    """The rule used per frequency and its held-out figures (JSON-ready)."""
    out: dict[str, dict[str, object]] = {}
    for frame in rules:
        for row in frame.iter_rows(named=True):
            out[row["frequency"]] = {
                "rule": row["rule"],
                "held_out_series": None if row["series_score"] is None else round(row["series_score"], 4),
                "held_out_frequency": None if row["frequency_score"] is None else round(row["frequency_score"], 4),
                "folds": row["folds"],
                "series": row["series"],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument(
        "--max-series", "--series", dest="series", type=int, default=0, help="first N series only (0 = all)"
    )
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--strategy", choices=("recursive", "direct"), default="recursive")
    parser.add_argument("--no-global", action="store_true", help="statistical candidates and median/weighted only")
    parser.add_argument(
        "--add-models",
        default=None,
        help="comma-separated engine models added to every set's candidates ('none': no additions; "
        "default: each set's own, ADDED)",
    )
    parser.add_argument("--sets", default="Hourly,Weekly", help="comma-separated M4 sets")
    parser.add_argument(
        "--no-calibration", action="store_true", help="leave the chosen intervals as the models give them"
    )
    parser.add_argument("--min-points", type=int, default=50, help="[backtest] calibration_min_points")
    parser.add_argument(
        "--choose",
        default="series",
        help="[backtest] choose: series, frequency or auto; a comma list scores each on one backtest",
    )
    args = parser.parse_args()
    choices = [c.strip() for c in args.choose.split(",") if c.strip()]
    unknown = [c for c in choices if c not in SELECTION_RULES]
    if unknown or not choices:
        parser.error(f"--choose {args.choose!r}: give one or more of {', '.join(SELECTION_RULES)}")
    if not DATA.exists():
        print(json.dumps({"skipped": f"no M4 data at {DATA}"}))
        return
    started = time.perf_counter()
    result: dict[str, object] = {"series": args.series or "all", "strategy": args.strategy, "choose": choices}
    given = None if args.add_models is None else tuple(m.strip() for m in args.add_models.split(",") if m.strip())
    ensembles = ("median", "weighted") if args.no_global else ENSEMBLES
    cover80 = cover90 = total_points = raw80 = raw90 = 0.0
    for name in args.sets.split(","):
        freq, h, m = SPEC[name]
        train = read_wide(DATA / f"m4_{name.lower()}_train.csv")
        test = read_wide(DATA / f"m4_{name.lower()}_test.csv")
        if args.series:
            keep = list(train)[: args.series]
            train, test = {k: train[k] for k in keep}, {k: test[k] for k in keep}
        t0 = time.perf_counter()
        extra = ADDED.get(name, ()) if given is None else tuple(m for m in given if m != "none")
        models = (*STATISTICAL, *extra) if args.no_global else (*STATISTICAL, *extra, *GLOBAL)
        result[f"candidates_added_{name.lower()}"] = list(extra)
        series = to_long(train, freq)
        candidates: dict[str, pl.DataFrame] = {}
        timings: dict[str, float] = {}
        before: list[pl.DataFrame] = []
        rules: list[pl.DataFrame] = []
        # the same set, models and windows for every rule (each later rule reuses the backtest)
        run = partial(
            auto_forecast,
            series,
            frequencies=dict.fromkeys(train, freq),
            horizons={freq: h},
            models=models,
            windows=args.windows,
            n_jobs=args.n_jobs,
            ensembles=ensembles,
            global_options={"strategy": args.strategy, "n_jobs": args.n_jobs},
            calibrate=not args.no_calibration,
            calibration_min_points=args.min_points,
            rules=rules,
        )
        forecasts, selections, bt = run(
            candidate_forecasts=candidates, timings=timings, uncalibrated=before, choose=choices[0]
        )
        by_rule: dict[str, dict[str, object]] = {}
        for rule in choices:
            if rule != choices[0]:
                rules.clear()
                again, picks, _ = run(choose=rule, backtest_result=bt)
            else:
                again, picks = forecasts, selections
            rs, rm = score(train, test, again, m)
            r80, r90, _ = coverage(test, again)
            by_rule[rule] = {
                "owa": round(owa(rs, rm, name), 4),
                "smape": round(rs, 4),
                "mase": round(rm, 4),
                "coverage_80_90": [round(r80, 4), round(r90, 4)],
                "chosen": dict(sorted(picks.group_by("model").len().iter_rows(), key=lambda kv: -kv[1])),
                "rules": _rules(rules),
            }
            print(f"{name} choose={rule}: {by_rule[rule]}", file=sys.stderr)
        smape, mase = score(train, test, forecasts, m)
        c80, c90, points = coverage(test, forecasts)
        cover80, cover90, total_points = cover80 + c80 * points, cover90 + c90 * points, total_points + points
        r80, r90, _ = coverage(test, before[0])
        raw80, raw90 = raw80 + r80 * points, raw90 + r90 * points
        raw_smape, raw_mase = score(train, test, before[0], m)
        per_candidate: dict[str, dict[str, object]] = {}
        scales = learn_interval_scales(bt.forecasts, groups=dict.fromkeys(train, freq), min_points=args.min_points)
        for cand, frame in sorted(candidates.items()):
            covered = set(frame["unique_id"].unique().to_list())
            filled = pl.concat([frame, forecasts.filter(~pl.col("unique_id").is_in(list(covered)))])
            cs, cm = score(train, test, filled, m)
            per_candidate[cand] = {"owa": round(owa(cs, cm, name), 4), "covered": len(covered & set(test))}
            # coverage of the candidate's own forecasts (the series it covers), before and after
            # calibration with its own factors: is a shortfall the selection's or the model's?
            own = frame.filter(pl.col("unique_id").is_in(list(test)))
            factors = {u: interval_scales_for(scales, group=freq, model=cand) for u in covered}
            fixed, _ = calibrate_intervals(own, factors)
            per_candidate[cand]["coverage_80_90"] = [round(v, 3) for v in coverage(test, own)[:2]]
            per_candidate[cand]["calibrated_80_90"] = [round(v, 3) for v in coverage(test, fixed)[:2]]
        seconds = dict(bt.seconds)
        for key, value in timings.items():
            if key.startswith("final_"):
                model = key.removeprefix("final_")
                seconds[model] = round(seconds.get(model, 0.0) + value, 1)
        picked = dict(sorted(selections.group_by("model").len().iter_rows(), key=lambda kv: -kv[1]))
        value = owa(smape, mase, name)
        print(
            f"{name}: {len(train)} series, sMAPE {smape:.3f}, MASE {mase:.3f}, OWA {value:.3f}, "
            f"coverage 80/90 {c80:.3f}/{c90:.3f} (uncalibrated {r80:.3f}/{r90:.3f}) "
            f"({time.perf_counter() - t0:.0f} s); selected {picked}; "
            f"candidates {per_candidate}; seconds {seconds}",
            file=sys.stderr,
        )
        key = name.lower()
        result.update(
            {
                f"owa_{key}": round(value, 4),
                f"smape_{key}": round(smape, 4),
                f"mase_{key}": round(mase, 4),
                f"coverage_80_{key}": round(c80, 4),
                f"coverage_90_{key}": round(c90, 4),
                f"candidates_{key}": per_candidate,
                f"seconds_per_candidate_{key}": {k: round(v, 1) for k, v in seconds.items()},
                f"chosen_{key}": picked,
                f"rules_{key}": by_rule[choices[0]]["rules"],
                f"by_rule_{key}": by_rule,
                f"uncalibrated_{key}": {
                    "owa": round(owa(raw_smape, raw_mase, name), 4),
                    "coverage_80": round(r80, 4),
                    "coverage_90": round(r90, 4),
                },
                f"seconds_{key}": round(time.perf_counter() - t0, 1),
            }
        )
    result["coverage_80"] = round(cover80 / total_points, 4)
    result["coverage_90"] = round(cover90 / total_points, 4)
    result["calibrated"] = not args.no_calibration
    result["uncalibrated_coverage_80"] = round(raw80 / total_points, 4)
    result["uncalibrated_coverage_90"] = round(raw90 / total_points, 4)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
