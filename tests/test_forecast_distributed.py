"""The same forecast function on a Dask DataFrame runs through statsforecast's Fugue backend
on a local Dask cluster and agrees with the in-process result (real FRED series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import FrameError
from forecasting import forecast_statistical

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.dask


@pytest.fixture(scope="module")
def weekly() -> pl.DataFrame:
    raw = pl.read_csv(DATA / "fred_STLFSI4.csv", schema_overrides={"value": pl.Float64})
    stl = (
        raw.drop_nulls()
        .select(
            pl.lit("STLFSI4").alias("unique_id"),
            pl.col("date").str.to_datetime("%Y-%m-%d").alias("ds"),
            pl.col("value").alias("y"),
        )
        .tail(300)
    )
    # A second series on the same grid: the index doubled and shifted (still real dynamics).
    return pl.concat([stl, stl.with_columns(pl.lit("STLFSI4x2").alias("unique_id"), pl.col("y") * 2 + 1)])


def test_dask_frame_forecasts_on_a_local_cluster_like_the_local_path(weekly: pl.DataFrame) -> None:
    frequencies = {"STLFSI4": "W-FRI", "STLFSI4x2": "W-FRI"}
    local = forecast_statistical(
        weekly, frequencies=frequencies, horizons={"W-FRI": 4}, models=("AutoETS", "Naive"), n_jobs=1
    ).forecasts
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        frame = dd.from_pandas(weekly.to_pandas(), npartitions=2)
        result = forecast_statistical(
            frame, frequencies=frequencies, horizons={"W-FRI": 4}, models=("AutoETS", "Naive")
        )
        assert type(result.forecasts).__module__.startswith("dask")
        remote = pl.from_pandas(result.forecasts.compute()).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    assert result.fitted.height == 0  # in-sample fits stay on the cluster
    joined = local.join(remote, on=["unique_id", "ds", "model"], suffix="_dask")
    assert joined.height == local.height == 16
    for col in ("mean", "q05", "q95"):
        assert np.allclose(joined[col].to_numpy(), joined[f"{col}_dask"].to_numpy(), rtol=1e-6)


def test_distributed_frames_need_one_frequency_per_call(weekly: pl.DataFrame) -> None:
    frame = dd.from_pandas(weekly.to_pandas(), npartitions=1)
    with pytest.raises(FrameError, match="one frequency per call"):
        forecast_statistical(frame, frequencies={"STLFSI4": "W-FRI", "STLFSI4x2": "B"}, horizons={"W-FRI": 4, "B": 4})


def test_both_cores_give_the_same_forecasts_as_one(weekly: pl.DataFrame) -> None:
    # 24 series: at the in-process threshold, so n_jobs=2 really starts two workers.
    base = weekly.filter(pl.col("unique_id") == "STLFSI4")
    many = pl.concat([base.with_columns(pl.lit(f"S{i:02d}").alias("unique_id"), pl.col("y") + i) for i in range(24)])
    frequencies = dict.fromkeys(many["unique_id"].unique().to_list(), "W-FRI")
    one = forecast_statistical(many, frequencies=frequencies, horizons={"W-FRI": 4}, models=("AutoETS",), n_jobs=1)
    two = forecast_statistical(many, frequencies=frequencies, horizons={"W-FRI": 4}, models=("AutoETS",), n_jobs=2)
    assert two.forecasts.height == 24 * 4
    assert two.forecasts.equals(one.forecasts) and two.fitted.equals(one.fitted)
