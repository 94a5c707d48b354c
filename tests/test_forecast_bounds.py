"""Physical bounds in forecasts (forecasting.bounds): bounded series are forecast on a scale that
keeps them inside, unbounded ones exactly as before. Real bundled data (data/PROVENANCE.md):
the Choptank river's daily flows and Tohoku's daily earthquake counts, cut at the demo's replay
day (2011-03-12)."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from statsforecast import StatsForecast
from statsforecast.models import AutoETS

from core.errors import FrameError
from core.frames import QUANTILES, quantile_column, validate_series_meta
from forecasting import (
    BoundedScale,
    ForecastResult,
    backtest,
    bounds_from_meta,
    build_random_chronos,
    chronos_installed,
    forecast_chronos,
    forecast_statistical,
    from_statsforecast,
    load_chronos,
)
from forecasting.bounds import BoundMap, fit_bound_map
from ingest.sources import bundled_catalogue, parse

DATA = Path(__file__).resolve().parent.parent / "data"
REPLAY = dt.datetime(2011, 3, 13)  # data up to the demo's replay day, 2011-03-12
FLOW = "usgs_01491000_discharge"
QCOLS = [quantile_column(q) for q in QUANTILES]


def _bundled(relative_path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    entry = next(e for e in bundled_catalogue(DATA) if e.relative_path == relative_path)
    parsed = parse(DATA / entry.relative_path, entry.format, **entry.options)
    return parsed.series.filter(pl.col("ds") < REPLAY), parsed.meta


@pytest.fixture(scope="module")
def choptank() -> tuple[pl.DataFrame, pl.DataFrame]:
    return _bundled("hydro/usgs_01491000_choptank_daily_flow_cms.txt")


@pytest.fixture(scope="module")
def counts() -> pl.DataFrame:
    series, _ = _bundled("seismic/usgs_comcat_japan_2005_2014_processed.csv")
    # The quiet months before the Tohoku sequence: mostly days without an event.
    return series.filter((pl.col("unique_id") == "tohoku_count") & (pl.col("ds") < dt.datetime(2011, 3, 1)))


def _run(series: pl.DataFrame, **kw: object):
    ids = series.get_column("unique_id").unique().to_list()
    return forecast_statistical(series, frequencies=dict.fromkeys(ids, "D"), horizons={"D": 14}, max_context=1000, **kw)


def _ordered(frame: pl.DataFrame) -> bool:
    values = frame.select(QCOLS).to_numpy()
    return bool((np.diff(values, axis=1) >= 0).all())


def test_choptank_flow_forecast_stays_non_negative_because_of_the_map(choptank) -> None:
    series, meta = choptank
    bounds = bounds_from_meta(meta)
    assert bounds == {FLOW: (0.0, None)}  # discharge >= 0 from the parser's defaults
    bounded = _run(series, bounds=bounds)
    unbounded = _run(series)
    # The old path (same cut, same model, bounds removed) gives a flow interval below zero:
    # the demo's "90% interval [-25.45, 52.15]" m3/s.
    assert unbounded.forecasts.get_column("q05").min() < -20
    assert round(unbounded.forecasts.item(0, "q05"), 2) == -25.45
    # With the bound, every quantile (and the mean) of every step is >= 0, in order.
    assert bounded.forecasts.select(pl.min_horizontal("mean", *QCOLS).min()).item() >= 0.0
    assert _ordered(bounded.forecasts)
    assert bounded.forecasts.get_column("mean").equals(bounded.forecasts.get_column("q50"))
    first = bounded.forecasts.row(0, named=True)
    assert 9.0 < first["q05"] < first["q50"] < first["q95"] < 30.0
    note = bounded.notes.filter(pl.col("unique_id") == FLOW).get_column("note").to_list()
    assert any("bounded >= 0: forecast on the scale log(y)" in n for n in note)
    # The in-sample fits the anomaly step scores come back on the flow scale, with the
    # observations exactly as stored.
    fitted = bounded.fitted.join(series, on=["unique_id", "ds"], suffix="_stored")
    assert fitted.height == bounded.fitted.height
    assert fitted.get_column("y").equals(fitted.get_column("y_stored"))
    assert fitted.select(pl.min_horizontal(*QCOLS).min()).item() >= 0.0


def test_an_unbounded_series_gets_exactly_the_models_own_forecast(choptank) -> None:
    series, _ = choptank
    last = series.tail(1000)  # a complete daily grid: what the engine hands statsforecast
    twin = last.with_columns(pl.lit("choptank_unbounded").alias("unique_id"))
    mixed = _run(pl.concat([last, twin]), bounds={FLOW: (0.0, None)})
    alone = _run(twin)
    mine = mixed.forecasts.filter(pl.col("unique_id") == "choptank_unbounded")
    assert mine.equals(alone.forecasts)
    assert mixed.fitted.filter(pl.col("unique_id") == "choptank_unbounded").equals(alone.fitted)
    direct = StatsForecast(models=[AutoETS(season_length=7)], freq="D", n_jobs=1).forecast(
        df=twin.to_pandas(), h=14, level=[50, 80, 90]
    )
    assert mine.equals(from_statsforecast(direct, models=["AutoETS"]).select(mine.columns))
    # the bounded twin did change (the map is applied per series)
    assert not mixed.forecasts.filter(pl.col("unique_id") == FLOW).select(QCOLS).equals(mine.select(QCOLS))


def test_counts_with_many_zeros_use_a_log1p_scale_with_mass_at_zero(counts) -> None:
    y = counts.tail(1000).get_column("y").to_numpy()
    assert (y == 0).mean() > 0.5  # mostly quiet days
    bounded = _run(counts, bounds={"tohoku_count": (0.0, None)})
    unbounded = _run(counts)
    assert unbounded.forecasts.get_column("q05").min() < 0.0
    frame = bounded.forecasts
    assert frame.height == 14 and frame.select(pl.min_horizontal("mean", *QCOLS).min()).item() >= 0.0
    assert _ordered(frame)
    # offset 1 (the smallest step off zero for counts): log1p; the lower quantiles sit on the
    # bound itself, the probability of a day without an event, and the upper ones are counts.
    assert frame.get_column("q05").max() == 0.0
    assert frame.get_column("q95").min() > 1.0
    notes = bounded.notes.get_column("note").to_list()
    assert any("log(y + 1)" in n and "offset 1" in n for n in notes)


def test_backtest_windows_forecast_on_the_same_scale(choptank) -> None:
    series, meta = choptank
    kw = {
        "frequencies": {FLOW: "D"},
        "horizons": {"D": 14},
        "models": ("AutoETS", "Naive"),
        "windows": 2,
        "max_context": 500,
        "ensembles": (),
    }
    bounded = backtest(series, bounds=bounds_from_meta(meta), **kw)
    plain = backtest(series, **kw)
    assert plain.forecasts.get_column("q05").min() < 0.0
    assert bounded.forecasts.select(pl.min_horizontal("mean", *QCOLS).min()).item() >= 0.0
    assert set(bounded.metrics.get_column("model")) == {"AutoETS", "Naive"}
    assert (bounded.metrics.get_column("windows") == 2).all()


def test_maps_keep_every_value_inside_and_invert_exactly() -> None:
    z = np.array([-800.0, -30.0, -1.0, 0.0, 2.5, 40.0, 800.0])
    cases = {
        "lower": BoundMap(0.0, None),
        "lower, offset": BoundMap(2.0, None, 1.0),
        "upper": BoundMap(None, 100.0),
        "both": BoundMap(0.0, 100.0),
        "both, offset": BoundMap(-1.0, 1.0, 0.5),
    }
    for name, m in cases.items():
        y = m.to_values(z)
        low = -np.inf if m.lower is None else m.lower
        high = np.inf if m.upper is None else m.upper
        assert ((y >= low) & (y <= high)).all(), name
        assert (np.diff(y) >= 0).all(), name  # monotone: quantiles keep their order
        inside = np.array([low + 0.5 if np.isfinite(low) else -5.0, high - 0.5 if np.isfinite(high) else 7.0])
        assert np.allclose(m.to_values(m.to_model(inside)), inside), name
    # the offset: 0 strictly inside the bounds, the smallest step off a bound otherwise
    assert fit_bound_map(np.array([0.5, 3.0]), (0.0, None)) == BoundMap(0.0, None, 0.0)
    assert fit_bound_map(np.array([0.0, 0.0, 2.0, 7.0]), (0.0, None)) == BoundMap(0.0, None, 2.0)
    assert fit_bound_map(np.array([0.0, 100.0, 99.5]), (0.0, 100.0)) == BoundMap(0.0, 100.0, 0.5)
    assert fit_bound_map(np.array([3.0, 3.0]), (3.0, None)) == BoundMap(3.0, None, 1.0)


def test_a_two_sided_rate_stays_within_0_and_100() -> None:
    rng = np.random.default_rng(7)
    ds = pl.datetime_range(dt.datetime(2000, 1, 1), dt.datetime(2019, 12, 1), interval="1mo", eager=True)
    y = np.clip(3.0 + np.cumsum(rng.normal(0, 1.5, len(ds))), 0.5, 99.5)  # a wandering percentage
    series = pl.DataFrame({"unique_id": "rate", "ds": ds, "y": y}).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    out = forecast_statistical(
        series, frequencies={"rate": "MS"}, horizons={"MS": 24}, bounds={"rate": (0.0, 100.0)}
    ).forecasts
    assert out.select(pl.min_horizontal(*QCOLS).min()).item() >= 0.0
    assert out.select(pl.max_horizontal(*QCOLS).max()).item() <= 100.0
    assert _ordered(out)


def test_bounds_the_data_breaks_are_dropped_with_a_warning_and_a_note(choptank) -> None:
    series, _ = choptank
    short = series.tail(200)
    with pytest.warns(RuntimeWarning, match="declared bounds do not fit"):
        out = _run(short, bounds={FLOW: (5.0, None)})
    assert out.forecasts.equals(_run(short).forecasts)
    assert any("below 5 in the training data" in n for n in out.notes.get_column("note").to_list())


def test_a_rounding_excursion_is_set_to_the_bound_with_a_note_and_a_warning() -> None:
    # -2.326 + (2.308 - -2.326) * 1.0 rounds to 2.3080000000000003: above the upper bound.
    train = pl.DataFrame({"unique_id": ["x", "x"], "ds": [REPLAY, REPLAY + dt.timedelta(days=1)], "y": [0.0, 1.0]})
    scale = BoundedScale({"x": (-2.326, 2.308)}).fit(train)
    assert scale.maps_["x"].offset == 0.0
    forecast = pl.DataFrame(
        {
            "unique_id": ["x", "other"],
            "ds": [REPLAY, REPLAY],
            "model": ["m", "m"],
            "mean": [800.0, 800.0],
            **{c: [800.0, 800.0] for c in QCOLS},
        }
    )
    empty_notes = pl.DataFrame(schema={"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8})
    result = ForecastResult(forecasts=forecast, fitted=forecast.clear(), notes=empty_notes)
    with pytest.warns(RuntimeWarning, match="outside the bounds after the map back"):
        back = scale.apply(result, observed=train)
    mine = back.forecasts.filter(pl.col("unique_id") == "x")
    assert mine.select("mean", *QCOLS).row(0) == (2.308,) * (len(QCOLS) + 1)
    assert back.forecasts.filter(pl.col("unique_id") == "other").equals(forecast.filter(pl.col("unique_id") == "other"))
    assert "1 q95 value(s) outside the bounds after the map back (rounding): set to the bound" in back.notes["note"]


def test_bad_bounds_are_refused_with_a_fix() -> None:
    with pytest.raises(FrameError, match=r"bounds of x are \(5.0, 1.0\)"):
        BoundedScale({"x": (5.0, 1.0)})
    with pytest.raises(FrameError, match="not a \\(lower, upper\\) pair"):
        BoundedScale({"x": 0.0})  # type: ignore[dict-item]
    meta = pl.DataFrame(
        {
            "unique_id": ["x"],
            "domain": ["hydro"],
            "name": ["x"],
            "variable": ["v"],
            "unit": ["u"],
            "frequency": ["D"],
            "region": ["r"],
            "lat": [None],
            "lon": [None],
            "source": ["s"],
            "licence": ["l"],
            "classification": ["public"],
        },
        schema_overrides={"lat": pl.Float64, "lon": pl.Float64},
    )
    assert validate_series_meta(meta).select("lower_bound", "upper_bound").row(0) == (None, None)
    with pytest.raises(FrameError, match="lower_bound 3 >= upper_bound 1"):
        validate_series_meta(meta.with_columns(lower_bound=pl.lit(3.0), upper_bound=pl.lit(1.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unbounded batch never warns
        assert BoundedScale(None).fit(pl.DataFrame({"unique_id": ["x"], "ds": [REPLAY], "y": [1.0]})).maps_ == {}


def test_chronos_forecasts_go_through_the_same_map(choptank, tmp_path: Path) -> None:
    """A tiny random-weight Chronos-2 (no download): its flow quantiles are >= 0 with the bound,
    and the map is noted, as for the statistical models."""
    if not chronos_installed():
        pytest.skip("chronos-forecasting is not installed")
    series, meta = choptank
    model = load_chronos(build_random_chronos(tmp_path / "tiny", shape="tiny", context_length=256), threads=2)
    kw = {"frequencies": {FLOW: "D"}, "horizons": {"D": 14}, "max_context": 256, "batch_size": 8}
    out = forecast_chronos(model, series, bounds=bounds_from_meta(meta), **kw)
    frame = out.forecasts
    assert frame.height == 14 and frame.select(pl.min_horizontal("mean", *QCOLS).min()).item() >= 0.0
    assert _ordered(frame) and frame.get_column("mean").equals(frame.get_column("q50"))
    assert any("bounded >= 0" in n for n in out.notes.get_column("note").to_list())
    assert not forecast_chronos(model, series, **kw).forecasts.select(QCOLS).equals(frame.select(QCOLS))
