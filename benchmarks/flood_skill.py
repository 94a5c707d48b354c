"""Flood warnings on the bundled Choptank record: return-period thresholds out of sample, scored.

The record (data/hydro/usgs_01491000_choptank_daily_flow_cms.txt, USGS 01491000, daily mean
flow in m3/s, water years 2000-2011, parsed by ingest.sources) is split in halves:

- split A: thresholds (hazards.return_period_thresholds: water years from October, Gumbel by
  L-moments as six years are below the GEV's 20) and the climatological base rate fitted on
  water years 2000-2005, scored on 2006-2011;
- split B, the check: the reverse.

Every day ``t`` of the scored half is an issue date; each forecaster gives the probability
that the daily flow goes above the 2-year threshold on one of the days ``t+1 .. t+3``, and
hazards.flood_warning_skill scores it (events = annual peaks above the 2-year level, hits,
misses and false alarms at 1-3 days lead, warnings at p >= 0.5, Brier score against the
base rate). Forecasters, all fitted on data up to ``t`` (and the baselines on the training
half only):

- ``climatology``: the training base rate every day (the Brier reference);
- ``persistence``: conditional climatology: the training-years share of days with an outcome
  among days whose flow stood in the same band of flow / threshold (< 0.1, 0.1-0.2, 0.2-0.3,
  0.3-0.5, 0.5-0.7, 0.7-1, >= 1) and moved the same way since the day before (rising or not),
  shrunk towards the base rate with the weight of 10 days;
- ``state_model``: the cycle's river model, :class:`hazards.FloodStateModel` fitted on the
  training half (logistic regression on the day's flow to level, 1- and 2-day rise and
  season, stacked over levels; docs/anomaly.md), its probability read at the issue date;
- ``engine``: the engine's own forecaster through the public forecasting API: AutoETS (the
  default model, weekly season) refitted at every issue date on the last ``--context`` days
  (the engine's [forecast] max_context is 1000; with 365 the run takes about 30 minutes on one
  core, ``--cache`` keeps the forecasts so a rerun takes a minute), horizon 3,
  forecasting.exceedance_probabilities' ``p_path_cross`` at the third step;
- ``engine_log``: the same on log(1 + flow), the quantiles mapped back with exp(q) - 1 (a
  monotone map keeps quantiles), so no interval goes below 0.

The engine forecasts also go through hazards.flood_levels (the default EFAS/GloFAS-style
ladder on the 2/5/20-year thresholds): the number of forecasts at each level is printed, with
how many of the yellow-or-higher ones were issued while the river was already above its 2-year
level, and the dates of the orange and red ones.
Not part of CI; ``--skip-engine`` runs the baselines alone in seconds. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hazards  # noqa: E402
from core.vocabulary import LEVEL_NAMES, WARNING_LEVELS, Level  # noqa: E402
from forecasting import exceedance_probabilities, forecast_statistical  # noqa: E402
from ingest.sources import bundled_catalogue, parse  # noqa: E402

CHOPTANK = "hydro/usgs_01491000_choptank_daily_flow_cms.txt"
WINDOW_DAYS = 3
P_WARN = 0.5
MIN_HISTORY = 30
BANDS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
SHRINK_DAYS = 10.0
#: (name, training water years, scored water years)
SPLITS = (("A", (2000, 2005), (2006, 2011)), ("B", (2006, 2011), (2000, 2005)))
QCOLS = ("q05", "q10", "q25", "q50", "q75", "q90", "q95")


def load_choptank() -> pl.DataFrame:
    item = next(b for b in bundled_catalogue(ROOT / "data") if b.relative_path == CHOPTANK)
    return parse(ROOT / "data" / item.relative_path, item.format, **item.options).series.select("unique_id", "ds", "y")


def water_years(series: pl.DataFrame, first: int, last: int) -> pl.DataFrame:
    return series.filter(pl.col("ds").is_between(datetime(first - 1, 10, 1), datetime(last, 9, 30)))


def _band_keys(y: np.ndarray, threshold: float) -> np.ndarray:
    band = np.searchsorted(np.asarray(BANDS), y / threshold, side="right")
    rising = np.concatenate([[False], y[1:] > y[:-1]])
    return band * 2 + rising


def persistence_forecast(
    series: pl.DataFrame, train: pl.DataFrame, threshold: float, base_rate: float, issue: pl.Series
) -> pl.DataFrame:
    """Conditional climatology by flow band and direction (module docstring)."""
    outcomes = hazards.exceedance_outcomes(train, threshold_value=threshold, window_days=WINDOW_DAYS)
    y_train = train.get_column("y").to_numpy()
    keys_train = pl.DataFrame({"ds": train.get_column("ds"), "key": _band_keys(y_train, threshold)})
    table = (
        keys_train.join(outcomes, on="ds").group_by("key").agg(pl.col("observed").sum().alias("k"), pl.len().alias("n"))
    )
    rate = {k: (kk + SHRINK_DAYS * base_rate) / (n + SHRINK_DAYS) for k, kk, n in table.iter_rows()}
    y = series.get_column("y").to_numpy()
    keys = pl.DataFrame({"ds": series.get_column("ds"), "key": _band_keys(y, threshold)})
    return keys.filter(pl.col("ds").is_in(issue.implode())).select(
        "ds", pl.col("key").replace_strict(rate, default=base_rate, return_dtype=pl.Float64).alias("p_exceed")
    )


def state_model_forecast(
    flow: pl.DataFrame, train: pl.DataFrame, thresholds: pl.DataFrame, issue: pl.Series
) -> pl.DataFrame:
    """The cycle's river model (hazards.FloodStateModel) fitted on the training half: P(> 2-year
    level within the window | the day's flow, 1- and 2-day rise, season), at every issue date."""
    model = hazards.FloodStateModel(window_days=WINDOW_DAYS).fit(train, thresholds)
    ex = model.exceedance(flow, thresholds, issue_dates=issue.to_list())
    return ex.filter(pl.col("threshold") == "rp2").select(pl.col("cutoff").alias("ds"), "p_exceed")


def engine_forecasts(
    series: pl.DataFrame,
    issue: list[datetime],
    *,
    context: int,
    log: bool,
    n_jobs: int,
    cache: Path | None,
    batch: int = 100,
) -> pl.DataFrame:
    """AutoETS forecasts of the next 3 days from every issue date; ``unique_id`` = ``o<YYYYMMDD>``.

    With a ``cache`` folder each batch is written there and reused, so a stopped run resumes.
    """
    parts = []
    for start in range(0, len(issue), batch):
        dates = issue[start : start + batch]
        name = f"{'log' if log else 'raw'}_{context}_{dates[0]:%Y%m%d}_{dates[-1]:%Y%m%d}.parquet"
        if cache is not None and (cache / name).exists():
            parts.append(pl.read_parquet(cache / name))
            continue
        cut = []
        for t in dates:
            window = series.filter(pl.col("ds").is_between(t - timedelta(days=context - 1), t))
            cut.append(window.with_columns(pl.lit(f"o{t:%Y%m%d}").alias("unique_id")))
        frame = pl.concat(cut)
        if log:
            frame = frame.with_columns(pl.col("y").log1p())
        ids = frame.get_column("unique_id").unique().to_list()
        result = forecast_statistical(
            frame,
            frequencies=dict.fromkeys(ids, "D"),
            horizons={"D": WINDOW_DAYS},
            models=("AutoETS",),
            max_context=context,
            n_jobs=n_jobs,
        )
        fc = result.forecasts
        if log:
            fc = fc.with_columns([pl.col(c).exp() - 1.0 for c in ("mean", *QCOLS)])
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            fc.write_parquet(cache / name)
        parts.append(fc)
        print(
            f"  {'log ' if log else ''}engine forecasts: {min(start + batch, len(issue))}/{len(issue)}",
            file=sys.stderr,
            flush=True,
        )
    return pl.concat(parts)


def origin_exceedance(forecasts: pl.DataFrame, thresholds: pl.DataFrame, uid: str) -> pl.DataFrame:
    """Exceedance of the return-period thresholds for every origin, keyed back to the series."""
    spec = hazards.exceedance_thresholds(thresholds).drop("unique_id")
    origins = forecasts.select("unique_id").unique()
    per_origin = origins.join(spec, how="cross")
    ex = exceedance_probabilities(forecasts, per_origin)
    return ex.with_columns(
        pl.col("unique_id").str.slice(1).str.strptime(pl.Datetime("us"), "%Y%m%d").alias("cutoff"),
        pl.lit(uid).alias("unique_id"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=int, default=365, help="days each engine forecast sees")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--skip-engine", action="store_true", help="baselines only (seconds)")
    parser.add_argument(
        "--engine-splits", default="A,B", help="splits whose scored half the engine forecasts (A, B or A,B)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder for the engine forecasts (parquet batches), reused when present",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    flow = load_choptank()
    uid = flow.get_column("unique_id")[0]

    engines: dict[str, pl.DataFrame] = {}
    engine_splits = [] if args.skip_engine else args.engine_splits.split(",")
    if engine_splits:
        scored = pl.concat([water_years(flow, *test) for name, _, test in SPLITS if name in engine_splits]).get_column(
            "ds"
        )
        first_issue = flow.get_column("ds")[MIN_HISTORY - 1]
        issue_all = scored.filter(scored >= first_issue).to_list()
        for name, log in (("engine", False), ("engine_log", True)):
            t0 = time.perf_counter()
            engines[name] = engine_forecasts(
                flow, issue_all, context=args.context, log=log, n_jobs=args.n_jobs, cache=args.cache
            )
            print(f"{name}: {len(issue_all)} forecasts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    print(
        f"Choptank River near Greensboro, MD (USGS 01491000), daily flow m3/s; window {WINDOW_DAYS} days, "
        f"warning at p >= {P_WARN}"
    )
    rows, summary = [], {}
    for split, (train_first, train_last), (test_first, test_last) in SPLITS:
        train = water_years(flow, train_first, train_last)
        test = water_years(flow, test_first, test_last)
        thresholds = hazards.return_period_thresholds(train)
        levels = dict(zip(thresholds["period_years"], thresholds["threshold_value"], strict=True))
        t2 = levels[2.0]
        base = hazards.exceedance_base_rate(train, threshold_value=t2, window_days=WINDOW_DAYS)
        fit = thresholds.row(0, named=True)
        print(
            f"\nsplit {split}: thresholds from water years {train_first}-{train_last} "
            f"({fit['method']}, {fit['estimator']}, {fit['years_used']} years): "
            + ", ".join(f"{p:g}-year {v:.1f}" for p, v in levels.items())
            + f" m3/s; base rate P(> 2-year within {WINDOW_DAYS} d) = {base:.4f}; "
            f"scored on {test_first}-{test_last}"
        )
        # Issue dates: the scored half, less the days an engine forecast lacks history for.
        issue = test.get_column("ds")
        if split in engine_splits:
            have = engines["engine"].select(pl.col("unique_id").str.slice(1).str.strptime(pl.Datetime("us"), "%Y%m%d"))
            issue = issue.filter(issue.is_in(have.to_series().implode()))
        forecasts = {
            "climatology": pl.DataFrame({"ds": issue, "p_exceed": base}),
            "persistence": persistence_forecast(flow, train, t2, base, issue),
            "state_model": state_model_forecast(flow, train, thresholds, issue),
        }
        ladder_counts, in_flood, severe_dates = {}, {}, {}
        for name, fc in engines.items() if split in engine_splits else ():
            ex = origin_exceedance(fc, thresholds, uid).filter(pl.col("cutoff").is_in(issue.implode()))
            p2 = (
                ex.filter(pl.col("threshold") == "rp2")
                .group_by("cutoff")
                .agg(pl.col("p_path_cross").sort_by("ds").last().alias("p_exceed"))
                .rename({"cutoff": "ds"})
            )
            forecasts[name] = p2
            graded = hazards.flood_levels(ex, thresholds)
            ladder_counts[name] = dict(graded.group_by("level").len().iter_rows())
            # A warning is worth its name when the river is not already in flood at issue.
            raised = graded.filter(
                pl.col("level").is_in([lv.label for lv in WARNING_LEVELS if lv >= Level.YELLOW])
            ).join(flow.select(pl.col("ds").alias("cutoff"), pl.col("y").alias("flow_at_issue")), on="cutoff")
            in_flood[name] = (raised.height, raised.filter(pl.col("flow_at_issue") > t2).height)
            severe = raised.filter(
                pl.col("level").is_in([lv.label for lv in WARNING_LEVELS if lv >= Level.ORANGE])
            ).sort("cutoff")
            severe_dates[name] = [
                f"{d:%Y-%m-%d} {lv} (flow {q:.0f})"
                for d, lv, q in severe.select("cutoff", "level", "flow_at_issue").rows()
            ]
        print(
            "forecaster   issued events hits miss alarms FA   POD   FAR   CSI   Brier    clim     BSS   "
            "lead(d)  daily H/M/FA"
        )
        for name, fc in forecasts.items():
            skill = hazards.flood_warning_skill(
                fc, flow, threshold_value=t2, base_rate=base, window_days=WINDOW_DAYS, p_warn=P_WARN
            )
            s = skill.as_dict()
            print(
                f"{name:<12} {s['forecasts']:>6} {s['events']:>6} {s['hits']:>4} {s['misses']:>4} "
                f"{s['alarms']:>6} {s['false_alarms']:>3} {s['pod']:>5.2f} {s['far']:>5.2f} {s['csi']:>5.2f} "
                f"{s['brier']:.5f} {s['brier_climatology']:.5f} {s['brier_skill_score']:>+6.3f} "
                f"{str(s['median_lead_days']):>6}   {s['daily_hits']}/{s['daily_misses']}/{s['daily_false_alarms']}"
            )
            rows.append(
                {
                    "split": split,
                    "forecaster": name,
                    **{
                        k: s[k]
                        for k in (
                            "forecasts",
                            "events",
                            "hits",
                            "misses",
                            "alarms",
                            "false_alarms",
                            "pod",
                            "far",
                            "csi",
                            "brier",
                            "brier_climatology",
                            "brier_skill_score",
                            "median_lead_days",
                        )
                    },
                }
            )
        print(
            "events (annual peaks above the 2-year level): "
            + (
                ", ".join(f"{d}{' hit' if h else ''}" for d, h in zip(skill.event_peaks, skill.event_hit, strict=True))
                or "none"
            )
        )
        for name, counts in ladder_counts.items():
            print(
                f"{name} forecasts per level (default ladder): "
                + ", ".join(f"{lv} {counts.get(lv, 0)}" for lv in LEVEL_NAMES)
                + f"; of {in_flood[name][0]} yellow or higher, {in_flood[name][1]} issued with the flow already "
                f"above the 2-year level; orange/red: {', '.join(severe_dates[name]) or 'none'}"
            )
        summary[split] = {
            "thresholds_m3s": {f"{p:g}": round(v, 2) for p, v in levels.items()},
            "base_rate": round(base, 5),
            "levels": ladder_counts,
            "yellow_plus_issued_in_flood": in_flood,
        }
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(
        json.dumps(
            {
                "benchmark": "flood_skill",
                "window_days": WINDOW_DAYS,
                "p_warn": P_WARN,
                "context_days": None if args.skip_engine else args.context,
                "splits": summary,
                "rows": rows,
            },
            default=float,
        )
    )


if __name__ == "__main__":
    main()
