"""A kept AutoETS form forecasts as the full AutoETS search does (issue 21).

Real data: the bundled FRED DGS10 (last 800 business days), STLFSI4 (weekly) and UNRATE
(monthly). ``forecast_statistical`` reports the ETS form AutoETS chose per series
(``ets_forms``); passed back, AutoETS fits only that form. The forecasts, intervals and
in-sample fits must be those of the full search, and a form whose season no longer matches
the series' plan is searched again.
"""

from __future__ import annotations

import polars as pl
import pytest

import forecasting
from tests.fred_series import load_fred

FREQUENCIES = {"DGS10": "B", "STLFSI4": "W-FRI", "UNRATE": "MS"}
HORIZONS = {"B": 10, "W-FRI": 8, "MS": 6}


@pytest.fixture(scope="module")
def series(dgs10: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([dgs10, load_fred("fred_STLFSI4.csv", "STLFSI4"), load_fred("fred_UNRATE.csv", "UNRATE")])


def _forecast(series: pl.DataFrame, forms: dict[str, str] | None = None) -> forecasting.ForecastResult:
    return forecasting.forecast_statistical(
        series, frequencies=FREQUENCIES, horizons=HORIZONS, models=("AutoETS",), n_jobs=1, ets_forms=forms
    )


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.select("unique_id", "ds", "model").equals(b.select("unique_id", "ds", "model"))
    for column in a.columns:
        if a[column].dtype == pl.Float64:
            assert a[column].to_numpy() == pytest.approx(b[column].to_numpy(), rel=1e-9, abs=1e-12), column


def test_the_kept_form_forecasts_as_the_full_search(series: pl.DataFrame) -> None:
    full = _forecast(series)
    assert sorted(full.ets_forms) == sorted(FREQUENCIES)
    for uid, form in full.ets_forms.items():
        components, season = form.split("/")
        assert len(components) == 4 and int(season) >= 1, (uid, form)
    kept = _forecast(series, full.ets_forms)
    assert kept.ets_forms == full.ets_forms
    _same(full.forecasts.sort("unique_id", "ds"), kept.forecasts.sort("unique_id", "ds"))
    _same(full.fitted.sort("unique_id", "ds"), kept.fitted.sort("unique_id", "ds"))


def test_a_form_of_another_season_is_searched_again(series: pl.DataFrame) -> None:
    unrate = series.filter(pl.col("unique_id") == "UNRATE")
    full = _forecast(unrate)
    components = full.ets_forms["UNRATE"].split("/")[0]
    stale = _forecast(unrate, {"UNRATE": f"{components}/4"})  # a season the monthly plan does not use
    assert stale.ets_forms == full.ets_forms
    _same(full.forecasts, stale.forecasts)
