"""A stored AutoETS fit filtered forward equals statsforecast's own ``AutoETS.forward`` (issue 21).

Real data: the bundled FRED DGS10 (last 800 business days), STLFSI4 (weekly) and UNRATE
(monthly). ``forecast_statistical`` returns each AutoETS fit as text (``ets_states``); passed
back with the series grown by new points, AutoETS is not refitted: that fit runs its filter over
the window from its first stamp to the newest point with its parameters fixed. The forecasts,
intervals and in-sample fits must be what statsforecast computes for the same fit
(``AutoETS(...).fit(window).forward(grown, ...)``), on the stamps the refit would forecast;
where a stored fit no longer applies the series is refitted, and the notes say why.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from statsforecast.models import AutoETS

import forecasting
from core.errors import FrameError
from forecasting.forward import ETSState
from tests.fred_series import load_fred

FREQUENCIES = {"DGS10": "B", "STLFSI4": "W-FRI", "UNRATE": "MS"}
HORIZONS = {"B": 10, "W-FRI": 8, "MS": 6}
SEASONS = {"B": 5, "W-FRI": 1, "MS": 12}  # the engine's ETS seasons (weekly: none; 52 is too long for ETS)
NEW_POINTS = {"DGS10": 6, "STLFSI4": 3, "UNRATE": 2}
MAX_CONTEXT = 400


@pytest.fixture(scope="module")
def series(dgs10: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([dgs10, load_fred("fred_STLFSI4.csv", "STLFSI4"), load_fred("fred_UNRATE.csv", "UNRATE")])


@pytest.fixture(scope="module")
def earlier(series: pl.DataFrame) -> pl.DataFrame:
    """Each series without its newest points (the day of the stored fit)."""
    return pl.concat(
        part.sort("ds").head(part.height - NEW_POINTS[uid])
        for (uid,), part in series.group_by("unique_id", maintain_order=True)
    )


def _forecast(frame: pl.DataFrame, **options: object) -> forecasting.ForecastResult:
    return forecasting.forecast_statistical(
        frame,
        frequencies=FREQUENCIES,
        horizons=HORIZONS,
        models=("AutoETS",),
        n_jobs=1,
        max_context=MAX_CONTEXT,
        **options,  # type: ignore[arg-type]
    )


def _grid(frame: pl.DataFrame, uid: str, *, since: datetime | None = None) -> forecasting.Regularised:
    part = frame.filter(pl.col("unique_id") == uid).sort("ds")
    if since is not None:
        part = part.filter(pl.col("ds") >= since)
    return forecasting.regularise(
        part["ds"].to_numpy(), part["y"].to_numpy(), frequency=FREQUENCIES[uid], max_context=2 * MAX_CONTEXT
    )


def test_a_stored_fit_filtered_forward_is_statsforecasts_forward(series: pl.DataFrame, earlier: pl.DataFrame) -> None:
    day0 = _forecast(earlier)
    assert sorted(day0.ets_states) == sorted(FREQUENCIES) and day0.forwarded == ()
    later = _forecast(series, ets_states=day0.ets_states, ets_forms=day0.ets_forms)
    assert later.forwarded == tuple(sorted(FREQUENCIES))
    assert later.ets_states == {}  # nothing was fitted: the stored fits stay
    refit = _forecast(series, ets_forms=day0.ets_forms)  # what a refit of the kept form forecasts
    assert later.forecasts.select("unique_id", "ds").equals(refit.forecasts.select("unique_id", "ds"))
    assert not later.forecasts.select("mean").equals(refit.forecasts.select("mean"))  # not a refit

    for uid, frequency in FREQUENCIES.items():
        state = ETSState.from_text(day0.ets_states[uid])
        window = forecasting.regularise(
            earlier.filter(pl.col("unique_id") == uid)["ds"].to_numpy(),
            earlier.filter(pl.col("unique_id") == uid)["y"].to_numpy(),
            frequency=frequency,
            max_context=MAX_CONTEXT,
        )
        assert (state.start, state.end) == (window.ds[0], window.ds[-1])
        grown = _grid(series, uid, since=state.start)
        # the window, then the new points (a market holiday among them is a filled grid point)
        assert grown.ds[: len(window.ds)].equals(window.ds) and len(grown.y) >= len(window.y) + NEW_POINTS[uid]
        # statsforecast's own: the automatic AutoETS fitted on day 0's window, then forward.
        model = AutoETS(season_length=SEASONS[frequency]).fit(window.y)
        assert f"{model.model_['components']}/{SEASONS[frequency]}" == state.form
        expected = model.forward(grown.y, HORIZONS[frequency], level=[50, 80, 90], fitted=True)
        mine = later.forecasts.filter(pl.col("unique_id") == uid).sort("ds")
        np.testing.assert_allclose(mine["mean"], expected["mean"], rtol=1e-9)
        np.testing.assert_allclose(mine["q05"], expected["lo-90"], rtol=1e-9)
        np.testing.assert_allclose(mine["q90"], expected["hi-80"], rtol=1e-9)
        np.testing.assert_allclose(mine["q75"], expected["hi-50"], rtol=1e-9)
        # In-sample fits of the grown window at the observed grid points (the forecast surprise).
        fits = later.fitted.filter(pl.col("unique_id") == uid).sort("ds")
        observed = grown.ds[grown.observed & np.isfinite(expected["fitted"])]
        assert fits["ds"].to_list() == [t.to_pydatetime() for t in observed]
        on_grid = dict(zip(grown.ds, expected["fitted"], strict=True))
        np.testing.assert_allclose(fits["mean"], [on_grid[t] for t in observed], rtol=1e-9)


def test_where_a_stored_fit_does_not_apply_the_series_is_refitted(series: pl.DataFrame, earlier: pl.DataFrame) -> None:
    day0 = _forecast(earlier)
    states = {uid: ETSState.from_text(text) for uid, text in day0.ets_states.items()}
    unrate = states["UNRATE"]
    broken = {
        "DGS10": states["DGS10"].to_text().replace('"form": "', '"form": "X'),  # unreadable
        "STLFSI4": ETSState(
            **{**states["STLFSI4"].__dict__, "start": states["STLFSI4"].start + timedelta(days=1)}
        ).to_text(),
        "UNRATE": ETSState(**{**unrate.__dict__, "form": f"{unrate.components}/4"}).to_text(),  # other season
    }
    later = _forecast(series, ets_states=broken, ets_forms=day0.ets_forms)
    refit = _forecast(series, ets_forms=day0.ets_forms)
    assert later.forwarded == ()
    assert later.forecasts.equals(refit.forecasts)
    notes = {u: n for u, m, n in later.notes.iter_rows() if m == "AutoETS" and "refitted" in n}
    assert "not readable" in notes["DGS10"]
    assert "no longer on the series' grid" in notes["STLFSI4"]
    assert "does not match the plan's season 12" in notes["UNRATE"]
    # A refit writes each fit again, so the next cycle can filter it forward.
    assert sorted(later.ets_states) == sorted(FREQUENCIES)

    conformal = _forecast(series, ets_states=day0.ets_states, intervals="conformal")
    assert conformal.forwarded == ()
    assert any("conformal intervals need refits" in n for n in conformal.notes["note"])


def test_a_revised_value_inside_the_window_refits(series: pl.DataFrame, earlier: pl.DataFrame) -> None:
    """A value revised inside a stored fit's window (FRED's latest vintage, a provisional gauge
    reading made final) would be filtered with parameters fitted on the old value: refitted, and
    the note says why; so is a state stored before the window's digest was kept."""
    day0 = _forecast(earlier)
    dgs10 = earlier.filter(pl.col("unique_id") == "DGS10").sort("ds")
    revised_at = dgs10["ds"][-50]
    grown = series.with_columns(
        pl.when((pl.col("unique_id") == "DGS10") & (pl.col("ds") == revised_at))
        .then(pl.col("y") + 0.25)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    undigested = json.loads(day0.ets_states["UNRATE"])
    del undigested["window"]
    states = {**day0.ets_states, "UNRATE": json.dumps(undigested)}
    later = _forecast(grown, ets_states=states, ets_forms=day0.ets_forms)
    assert later.forwarded == ("STLFSI4",)
    notes = {u: n for u, m, n in later.notes.iter_rows() if m == "AutoETS" and "refitted" in n}
    assert "values inside its window changed since it was fitted" in notes["DGS10"]
    assert "stored without a digest of its window" in notes["UNRATE"]
    # unrevised, the same states filter forward
    assert _forecast(series, ets_states=day0.ets_states, ets_forms=day0.ets_forms).forwarded == (
        "DGS10",
        "STLFSI4",
        "UNRATE",
    )


def test_a_window_that_starts_on_a_holiday_is_filtered_forward(series: pl.DataFrame) -> None:
    """A business-day window can start on a filled point (a holiday): the forward pass regrids
    from the observation before it, so the stored fit still applies."""
    dgs10 = series.filter(pl.col("unique_id") == "DGS10").sort("ds")
    for cut in range(dgs10.height - NEW_POINTS["DGS10"], dgs10.height - 200, -1):
        if not _grid(dgs10.head(cut), "DGS10").observed[-MAX_CONTEXT]:  # the window's first point is filled
            break
    else:
        pytest.skip("no DGS10 window in the last 200 days starts on a filled point")
    day0 = _forecast(dgs10.head(cut))
    state = ETSState.from_text(day0.ets_states["DGS10"])
    assert state.start not in set(dgs10["ds"].to_list())  # not an observation: a filled holiday
    later = _forecast(dgs10.head(cut + 3), ets_states=day0.ets_states, ets_forms=day0.ets_forms)
    assert later.forwarded == ("DGS10",)


def test_a_bounded_series_is_filtered_forward_on_the_scale_it_was_fitted_on(series: pl.DataFrame) -> None:
    unrate = series.filter(pl.col("unique_id") == "UNRATE").sort("ds")
    bounds = {"UNRATE": (0.0, 100.0)}
    day0 = _forecast(unrate.head(unrate.height - 2), bounds=bounds)
    state = ETSState.from_text(day0.ets_states["UNRATE"])
    assert state.bound_map == (0.0, 100.0, 0.0)
    later = _forecast(unrate, bounds=bounds, ets_states=day0.ets_states)
    assert later.forwarded == ("UNRATE",)
    assert (later.forecasts["q05"] >= 0).all() and (later.forecasts["q95"] <= 100).all()
    # The same fit on another scale does not apply: refitted, and the note says why.
    unbounded = _forecast(unrate, ets_states=day0.ets_states)
    assert unbounded.forwarded == ()
    assert any("bound map None differs" in n for n in unbounded.notes["note"])


def test_a_state_keeps_its_parameters_through_its_text() -> None:
    state = ETSState(
        form="ANAN/7",
        par=(0.5, math.nan, 0.1, math.nan, 10.0, 1.5),
        n_params=5,
        start=datetime(2020, 1, 1),
        end=datetime(2021, 1, 1),
        bound_map=(0.0, None, 0.25),
        window="0123456789abcdef0123456789abcdef",
    )
    back = ETSState.from_text(state.to_text())
    assert back.window == state.window
    assert back.to_text() == state.to_text()
    assert back.par[:3] == (0.5, back.par[1], 0.1) and math.isnan(back.par[1]) and math.isnan(back.par[3])
    with pytest.raises(FrameError, match="refit_every"):
        ETSState.from_text('{"form": "ANAN"}')


def test_a_surprising_new_point_refits_instead(series: pl.DataFrame) -> None:
    # STLFSI4 through the autumn of 2008: fitted on the weeks to 2008-09-12, the weeks to
    # 2008-10-24 lie far from the filter's one-step forecasts (the index's climb to its high).
    stress = series.filter(pl.col("unique_id") == "STLFSI4").sort("ds")
    day0 = _forecast(stress.filter(pl.col("ds") <= datetime(2008, 9, 12)))
    grown = stress.filter(pl.col("ds") <= datetime(2008, 10, 24))
    state = ETSState.from_text(day0.ets_states["STLFSI4"])
    window = _grid(grown, "STLFSI4", since=state.start)
    ahead = forecasting.forward.filter_forward(state, window.y, h=8, levels=[50, 80, 90])
    surprise = forecasting.forward.new_point_surprise(state, window.ds, window.y, ahead["fitted"])
    # by hand: the largest error after 2008-09-12 over the root mean square error before it
    errors = window.y - ahead["fitted"]
    before = np.asarray(window.ds <= state.end)
    inside = errors[before & np.isfinite(errors)]
    assert surprise == pytest.approx(np.max(np.abs(errors[~before])) / np.sqrt(np.mean(inside**2)), rel=1e-12)
    assert round(surprise, 1) == 15.1  # the figure docs/scaling.md quotes
    refitted = _forecast(grown, ets_states=day0.ets_states, refit_surprise=3.0)
    assert refitted.forwarded == () and "STLFSI4" in refitted.ets_states
    assert any(f"a new point {surprise:.1f} sd" in n for n in refitted.notes["note"])
    kept = _forecast(grown, ets_states=day0.ets_states, refit_surprise=surprise + 0.1)
    assert kept.forwarded == ("STLFSI4",)
