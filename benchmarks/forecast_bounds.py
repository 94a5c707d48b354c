"""Bounded-scale forecasts against the same model on the raw scale, on the bundled bounded series.

Every bundled series with a physical bound (their parsers' defaults: discharge, daily earthquake
counts, sea-ice extent, CPI, the CNY rate >= 0, unemployment in 0..100) is cut at the demo's
replay day (data up to 2011-03-12) and backtested with AutoETS over ``--windows`` rolling
origins (horizon: the shipped defaults, D 14, MS 6), once with the bounds from its metadata
(forecasting.bounds) and once without, in the same process. Per series: MASE, sMAPE, WQL and
80 / 90 % coverage of both, and the ratio bounded / raw. Not part of CI. Last line: JSON with
the geometric-mean ratios of MASE and WQL over the series.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import warnings
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecasting import backtest, bounds_from_meta
from ingest.sources import bundled_catalogue, parse

REPLAY = dt.datetime(2011, 3, 13)


def load_bounded() -> tuple[pl.DataFrame, pl.DataFrame]:
    series, meta = [], []
    for item in bundled_catalogue(ROOT / "data"):
        parsed = parse(ROOT / "data" / item.relative_path, item.format, **item.options)
        bounded = parsed.meta.filter(pl.col("lower_bound").is_not_null() | pl.col("upper_bound").is_not_null())
        ids = bounded.get_column("unique_id").implode()
        part = parsed.series.filter(pl.col("unique_id").is_in(ids) & (pl.col("ds") < REPLAY))
        long_enough = part.group_by("unique_id").len().filter(pl.col("len") >= 100).get_column("unique_id")
        series.append(part.filter(pl.col("unique_id").is_in(long_enough.implode())))
        meta.append(bounded.filter(pl.col("unique_id").is_in(long_enough.implode())))
    return pl.concat(series), pl.concat(meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--max-context", type=int, default=1000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    series, meta = load_bounded()
    kw = {
        "frequencies": dict(zip(meta["unique_id"], meta["frequency"], strict=True)),
        "horizons": {"D": 14, "MS": 6},
        "models": ("AutoETS",),
        "windows": args.windows,
        "ensembles": (),
        "max_context": args.max_context,
    }
    raw = backtest(series, **kw).metrics
    bounded = backtest(series, bounds=bounds_from_meta(meta), **kw).metrics
    columns = ["mase", "smape", "wql", "coverage_80", "coverage_90"]
    table = (
        raw.select("unique_id", "points", *columns)
        .join(bounded.select("unique_id", *columns), on="unique_id", suffix="_bounded")
        .sort("unique_id")
    )
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=220, float_precision=3):
        print(table, file=sys.stderr)

    def geo(metric: str) -> float:
        ratios = (table[f"{metric}_bounded"] / table[metric]).to_list()
        return round(math.exp(sum(math.log(r) for r in ratios) / len(ratios)), 4)

    print(
        json.dumps(
            {
                "series": table.height,
                "windows": args.windows,
                "relative_mase_bounded_vs_raw": geo("mase"),
                "relative_wql_bounded_vs_raw": geo("wql"),
            }
        )
    )


if __name__ == "__main__":
    main()
