"""Series per second for Chronos: the engine wrapper vs the pipeline called directly.

Random-weight models with the published shapes (chronos-bolt-small: d_model 512, 6+6 layers;
chronos-2: d_model 768, 12 layers) are built from configs and loaded through the real
``BaseChronosPipeline.from_pretrained`` on CPU float32 (no download; the speed of a forward pass
does not depend on the weights' values). ``--series`` daily series of ``--length`` points, 14
steps ahead. Direct = ``pipeline.predict_df`` on the same pandas frame; engine =
``forecasting.forecast_chronos`` on the polars frame (validation, regularisation, conversion).
Last line: JSON with per-shape series/s and ratio_engine_vs_direct (target <= 1.05: the engine
takes at most 5% longer).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from core.frames import QUANTILES
from forecasting import ChronosModel, build_random_chronos, forecast_chronos, load_chronos


def synthetic(n: int, length: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-01", periods=length, freq="D")
    return pd.concat(
        [
            pd.DataFrame(
                {"unique_id": f"s{i:04d}", "ds": ds, "y": (rng.normal(size=length).cumsum() + 50).astype(np.float32)}
            )
            for i in range(n)
        ],
        ignore_index=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=64)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    df = synthetic(args.series, args.length)
    frame = pl.from_pandas(df).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    freqs = dict.fromkeys(df["unique_id"].unique(), "D")
    out: dict[str, float] = {"series": args.series}
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in ("chronos-bolt-small", "chronos-2"):
            path = build_random_chronos(Path(tmp) / shape, shape=shape, context_length=args.length)
            model = load_chronos(path, threads=args.threads)

            def run_direct(model: ChronosModel = model) -> None:
                model.pipeline.predict_df(
                    df,
                    id_column="unique_id",
                    timestamp_column="ds",
                    target="y",
                    prediction_length=14,
                    quantile_levels=list(QUANTILES),
                    batch_size=args.batch_size,
                )

            def run_engine(model: ChronosModel = model) -> None:
                forecast_chronos(
                    model,
                    frame,
                    frequencies=freqs,
                    horizons={"D": 14},
                    max_context=args.length,
                    batch_size=args.batch_size,
                )

            run_direct()  # warm-up (allocations, thread pools)
            times = {"direct": [], "engine": []}
            for _ in range(args.repeats):
                for name, fn in (("engine", run_engine), ("direct", run_direct)):
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
            engine_s, direct_s = min(times["engine"]), min(times["direct"])
            key = shape.replace("-", "_")
            out[f"{key}_engine_series_per_s"] = round(args.series / engine_s, 2)
            out[f"{key}_direct_series_per_s"] = round(args.series / direct_s, 2)
            out[f"{key}_ratio_engine_vs_direct"] = round(engine_s / direct_s, 3)
            ratios.append(engine_s / direct_s)
            print(f"{shape}: engine {engine_s:.2f} s, direct {direct_s:.2f} s")
    out["ratio_engine_vs_direct"] = round(max(ratios), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
