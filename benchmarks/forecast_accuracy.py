"""Accuracy of the engine's chosen forecast on the project's real series, against baselines.

Every bundled series (data/, parsed by ingest/sources) is cut ``--origins`` times from its
end (non-overlapping, one horizon apart). At each outer origin the engine decides on the
training part only (inner rolling backtest of ``--windows`` windows, per-series selection,
ensembles) and forecasts the held-out horizon; SeasonalNaive and AutoETS alone forecast the
same horizon from the same data. Relative scores are geometric means over series and origins
of chosen / baseline (the Chronos Benchmark II convention; bolt-small zero-shot relative MASE
0.819). Candidates: the statistical models, the global LightGBM (``LGBMGlobal``, one per
frequency across the bundled series of it) and the ensembles median, weighted, top2, top3 and
statglobal (``--no-global``: the statistical models, median and weighted only). The chosen
forecast is made as ``ews backtest`` + ``ews run`` make it: every model on the bounded scale of a
series with physical bounds (``--no-bounds``: raw scale, as measured before issue 17), the global
model refitted once per frequency on every series' training part (``GlobalFits``). The baselines
(SeasonalNaive, AutoETS alone) stay on the raw scale. The chosen forecast's intervals are
calibrated on the inner backtest's out-of-sample windows (:mod:`forecasting.calibration`, per
frequency and model, ``[backtest] calibrate_intervals``); the same forecasts before calibration
are scored in the same run (``uncalibrated``; ``--no-calibration`` skips the step). Per domain
and overall. Not part of CI. Last line: JSON with relative_mase_vs_seasonal_naive,
relative_mase_vs_autoets, relative_wql_vs_seasonal_naive, coverage_80, coverage_90 (of the
chosen forecasts as production makes them) and the same under ``uncalibrated``. ``--choose``:
the selection rule (``[backtest] choose``: series, frequency or auto; the benchmark's default
stays "series", the figures measured before the rules existed); ``rules`` in the JSON gives, per
origin, the rule used per frequency and auto's held-out figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import forecasting  # noqa: E402
from _auto_forecast import auto_forecast  # noqa: E402
from core.frames import FREQUENCIES  # noqa: E402
from core.settings import DEFAULT_TOML  # noqa: E402
from core.vocabulary import SELECTION_RULES  # noqa: E402
from forecasting.metrics import score_forecasts, seasonal_scale  # noqa: E402
from ingest.sources import bundled_catalogue, parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("AutoETS", "AutoTheta", "MSTL", "SeasonalNaive", "Naive")
GLOBAL = ("LGBMGlobal",)  # one LightGBM per frequency across the bundled series of it
ENSEMBLES = ("median", "weighted", "top2", "top3", "statglobal")


def load_bundled() -> tuple[pl.DataFrame, pl.DataFrame]:
    series, meta = [], []
    for item in bundled_catalogue(ROOT / "data"):
        parsed = parse(ROOT / "data" / item.relative_path, item.format, **item.options)
        series.append(parsed.series.select("unique_id", "ds", "y"))
        columns = [c for c in ("unique_id", "domain", "frequency", "lower_bound", "upper_bound") if c in parsed.meta]
        meta.append(parsed.meta.select(columns))
    return pl.concat(series), pl.concat(meta, how="diagonal_relaxed").unique("unique_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--origins", type=int, default=2)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--max-context", type=int, default=500)
    parser.add_argument("--margin", type=float, default=0.2, help="selection margin over AutoETS ([backtest] margin)")
    parser.add_argument("--no-global", action="store_true", help="statistical candidates, median/weighted only")
    parser.add_argument(
        "--no-bounds", action="store_true", help="ignore the series' physical bounds (before issue 17's run)"
    )
    parser.add_argument(
        "--no-calibration", action="store_true", help="leave the chosen intervals as the models give them"
    )
    parser.add_argument("--min-points", type=int, default=50, help="[backtest] calibration_min_points")
    parser.add_argument("--choose", choices=SELECTION_RULES, default="series", help="[backtest] choose")
    args = parser.parse_args()
    started = time.perf_counter()
    horizons = dict(tomllib.loads(DEFAULT_TOML)["forecast"]["horizon"])  # the shipped defaults
    series, meta = load_bundled()
    freqs = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    domains = dict(zip(meta["unique_id"], meta["domain"], strict=True))
    bounds = {} if args.no_bounds else forecasting.bounds_from_meta(meta)
    rows = []
    used: dict[str, dict[str, object]] = {}
    for origin in range(args.origins):
        train_parts, tests, scales = [], [], []
        for (uid,), part in series.sort("unique_id", "ds").group_by("unique_id", maintain_order=True):
            f = freqs[uid]
            grid = forecasting.regularise(part["ds"].to_numpy(), part["y"].to_numpy(), frequency=f, max_context=10**6)
            h = horizons[f]
            cut = len(grid.y) - h * (origin + 1)
            if cut < max(3 * h, 40):
                continue
            cutoff = grid.ds[cut - 1]
            train_parts.append(part.filter(pl.col("ds") <= cutoff))
            keep = grid.observed[cut : cut + h]
            tests.append(
                pl.DataFrame(
                    {
                        "unique_id": uid,
                        "cutoff": cutoff.to_pydatetime(),
                        "ds": grid.ds[cut : cut + h][keep].to_numpy(),
                        "y": grid.y[cut : cut + h][keep],
                    }
                )
            )
            scales.append(
                (
                    uid,
                    cutoff.to_pydatetime(),
                    seasonal_scale(grid.y[max(0, cut - args.max_context) : cut], FREQUENCIES[f]),
                )
            )
        train = pl.concat(train_parts)
        test = pl.concat(tests).with_columns(
            pl.col("ds").cast(pl.Datetime("us")), pl.col("cutoff").cast(pl.Datetime("us"))
        )
        before: list[pl.DataFrame] = []
        rules: list[pl.DataFrame] = []
        chosen, selections, _ = auto_forecast(
            train,
            frequencies=freqs,
            horizons=horizons,
            models=MODELS if args.no_global else (*MODELS, *GLOBAL),
            windows=args.windows,
            max_context=args.max_context,
            margin=args.margin,
            ensembles=("median", "weighted") if args.no_global else ENSEMBLES,
            bounds=bounds,
            calibrate=not args.no_calibration,
            calibration_min_points=args.min_points,
            uncalibrated=before,
            choose=args.choose,
            rules=rules,
        )
        used[f"origin {origin + 1}"] = {
            row["frequency"]: {
                "rule": row["rule"],
                "held_out_series": row["series_score"],
                "held_out_frequency": row["frequency_score"],
                "folds": row["folds"],
                "series": row["series"],
            }
            for row in rules[0].iter_rows(named=True)
        }
        base = forecasting.forecast_statistical(
            train,
            frequencies=freqs,
            horizons=horizons,
            models=("SeasonalNaive", "AutoETS"),
            max_context=args.max_context,
        ).forecasts
        forecasts = pl.concat(
            [
                chosen.with_columns(pl.lit("chosen").alias("model")),
                before[0].with_columns(pl.lit("uncalibrated").alias("model")),
                base,
            ]
        )
        joined = test.join(forecasts, on=["unique_id", "ds"])
        scale = pl.DataFrame(
            scales, schema={"unique_id": pl.Utf8, "cutoff": pl.Datetime("us"), "scale": pl.Float64}, orient="row"
        )
        metrics = score_forecasts(joined, scale).with_columns(pl.lit(origin).alias("origin"))
        rows.append(metrics)
        print(
            f"origin {origin + 1}: {train['unique_id'].n_unique()} series; selected "
            f"{dict(selections.group_by('model').len().iter_rows())}",
            file=sys.stderr,
        )
    metrics = pl.concat(rows).with_columns(
        (pl.col("unique_id") + "@" + pl.col("origin").cast(pl.Utf8)).alias("unique_id"),
        pl.col("unique_id").replace_strict(domains).alias("domain"),
    )

    def rel(part: pl.DataFrame, baseline: str, metric: str) -> float:
        return round(forecasting.relative_score(part, model="chosen", baseline=baseline, metric=metric), 4)

    for (domain,), part in metrics.sort("domain").group_by("domain", maintain_order=True):
        print(
            f"{domain:10s} series@origins {part['unique_id'].n_unique():3d}  "
            f"rel MASE vs SN {rel(part, 'SeasonalNaive', 'mase')}  vs AutoETS "
            f"{rel(part, 'AutoETS', 'mase')}  rel WQL vs SN {rel(part, 'SeasonalNaive', 'wql')}",
            file=sys.stderr,
        )

    def coverage(model: str, level: int) -> float:
        mine = metrics.filter(pl.col("model") == model)
        return round(float((mine[f"coverage_{level}"] * mine["points"]).sum() / mine["points"].sum()), 4)

    def rel_of(model: str, baseline: str, metric: str) -> float:
        return round(forecasting.relative_score(metrics, model=model, baseline=baseline, metric=metric), 4)

    chosen = metrics.filter(pl.col("model") == "chosen")
    print(
        json.dumps(
            {
                "series_origins": int(chosen.height),
                "relative_mase_vs_seasonal_naive": rel(metrics, "SeasonalNaive", "mase"),
                "relative_mase_vs_autoets": rel(metrics, "AutoETS", "mase"),
                "relative_wql_vs_seasonal_naive": rel(metrics, "SeasonalNaive", "wql"),
                "coverage_80": coverage("chosen", 80),
                "coverage_90": coverage("chosen", 90),
                "calibrated": not args.no_calibration,
                "uncalibrated": {
                    "relative_mase_vs_seasonal_naive": rel_of("uncalibrated", "SeasonalNaive", "mase"),
                    "relative_wql_vs_seasonal_naive": rel_of("uncalibrated", "SeasonalNaive", "wql"),
                    "coverage_80": coverage("uncalibrated", 80),
                    "coverage_90": coverage("uncalibrated", 90),
                },
                "choose": args.choose,
                "rules": used,
                "bounded_series": len(bounds),
                "global": not args.no_global,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
