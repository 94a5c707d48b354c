"""Aftershock forecasts measured on history the way CSEP measures them.

:func:`evaluate_aftershock_forecasts` replays a regional catalog: at every forecast date it
issues, from the events before that date only,

- ``reasenberg_jones``: a constant background (the Poisson baseline below) plus the
  Reasenberg-Jones rate of the active sequence (:mod:`hazards.aftershocks`: the mainshock
  :func:`~hazards.aftershocks.find_mainshock` picks, Page et al. 2016 generic parameters,
  Bayesian update on the aftershocks seen so far). With no active sequence it *is* the
  baseline; during a sequence it counts the baseline's average aftershock share twice,
  which errs towards over-forecasting by at most the baseline rate;
- ``poisson``: the constant-rate baseline, fitted on the events *before the first
  forecast date* (no look-ahead): the rate of ``M >= Mc`` over that span (Mc by maximum
  curvature + 0.2) with Gutenberg-Richter magnitudes (its b by Tinti-Mulargia);
- ``rate_test`` (with ``include_rate_test``): the engine's current seismic grade input,
  ``1 - p`` of the daily Poisson rate test of
  :func:`~hazards.earthquakes.seismic_indicators` on the day before the forecast date. It is
  not a probability of anything; it enters only the Brier score and the reliability table,
  to show what grading on it means.

Each forecast covers ``[date, date + horizon_days)``. Measured per model:

- CSEP **N-test** (Zechar, Gerstenberger & Rhoades 2010; pycsep's ``_number_test_ndarray``):
  ``delta1 = P(X >= n_obs)``, ``delta2 = P(X <= n_obs)`` for ``X ~ Poisson(expected)`` of
  the number of ``M >= count_magnitude``, per forecast; the summary gives the share of
  forecasts with ``delta1 < 0.025`` (too few forecast) or ``delta2 < 0.025`` (too many), and,
  when the windows do not overlap, the N-test of the total;
- the joint Poisson log-likelihood of the counts and its gain per forecast over ``poisson``;
- CSEP **M-test** (Zechar et al. 2010; pycsep's ``magnitude_test``): the magnitude
  distribution of all forecasts summed, in ``delta_m`` bins from ``count_magnitude``,
  against the observed one, by the normalised likelihood quantile over
  ``m_test_simulations`` catalogs of the observed size;
- the **Brier score** of "at least one ``M >= target_magnitude`` within the horizon" and its
  skill against ``poisson``, and a **reliability table** (forecasts binned by probability:
  count, mean forecast, observed frequency).

Nothing here reads files or a clock: the caller passes the catalog (``time, magnitude``;
``lat, lon`` optional) cut to its region and the forecast dates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import numpy as np
import polars as pl
from scipy import stats

from core.errors import FrameError
from core.skill import brier_score  # re-exported: one definition for every table
from hazards.aftershocks import (
    ReasenbergJones,
    _validate_events,
    find_mainshock,
    generic_parameters,
)
from hazards.earthquakes import estimate_b, mc_max_curvature, seismic_indicators

__all__ = [
    "RELIABILITY_EDGES",
    "AftershockEvaluation",
    "MagnitudeTestResult",
    "brier_score",
    "evaluate_aftershock_forecasts",
    "magnitude_test",
    "number_test",
    "poisson_log_likelihood",
    "reliability_table",
]

_EPSILON = 1e-6  # pycsep's tolerance in the N-test
#: Probability bins of :func:`reliability_table` (forecasts of rare events sit near 0).
RELIABILITY_EDGES: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0)


def number_test(expected: np.ndarray | float, observed: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """CSEP Poisson N-test quantiles ``(delta1, delta2)``: ``delta1 = P(X >= observed)``,
    ``delta2 = P(X <= observed)``, ``X ~ Poisson(expected)`` (pycsep's formula, eps 1e-6).
    A forecast is rejected at 5 % (two-sided) when either is below 0.025."""
    expected = np.asarray(expected, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    delta1 = 1.0 - stats.poisson.cdf(observed - _EPSILON, expected)
    delta2 = stats.poisson.cdf(observed + _EPSILON, expected)
    return delta1, delta2


def poisson_log_likelihood(expected: np.ndarray, observed: np.ndarray) -> float:
    """Joint log-likelihood ``sum log Poisson(observed | expected)``."""
    return float(stats.poisson.logpmf(np.asarray(observed), np.asarray(expected, dtype=np.float64)).sum())


@dataclass(frozen=True)
class MagnitudeTestResult:
    """CSEP M-test: ``quantile`` = share of simulated catalogs whose normalised
    log-likelihood is at or below the observed one (small = the observed magnitudes are
    unlikely under the forecast; reject below 0.025, one-sided as in pycsep)."""

    quantile: float
    observed_log_likelihood: float
    simulated_log_likelihood: np.ndarray = field(repr=False)
    n_observed: int


def magnitude_test(
    forecast_counts: np.ndarray,
    observed_counts: np.ndarray,
    *,
    num_simulations: int = 1000,
    seed: int | None = None,
    random_numbers: np.ndarray | None = None,
) -> MagnitudeTestResult:
    """CSEP M-test of a magnitude-binned forecast, pycsep's ``_poisson_likelihood_test`` with
    ``use_observed_counts=True, normalize_likelihood=True``: the forecast is scaled to the
    observed number ``n``, ``num_simulations`` catalogs of ``n`` events are drawn from it, and
    the quantile of the observed joint Poisson log-likelihood among theirs is returned.
    ``random_numbers`` (``num_simulations x n`` uniforms) replaces the generator (tests)."""
    forecast = np.asarray(forecast_counts, dtype=np.float64).ravel()
    observed = np.asarray(observed_counts, dtype=np.float64).ravel()
    if forecast.shape != observed.shape or forecast.size == 0:
        raise FrameError(
            f"forecast has {forecast.size} bins, observation {observed.size}",
            fix="bin forecast and observation on the same magnitude bins",
        )
    if np.any(forecast <= 0):
        raise FrameError("a magnitude bin has a forecast of 0", fix="forecast a positive rate in every bin")
    n_obs = int(observed.sum())
    log_rates = np.log(forecast * n_obs / forecast.sum()) if n_obs else np.log(forecast)
    cumulative = np.cumsum(forecast) / forecast.sum()
    rng = np.random.default_rng(seed)

    def joint(counts: np.ndarray) -> float:
        hit = counts > 0
        return float(np.sum(log_rates[hit] * counts[hit]) - n_obs - np.sum([math.lgamma(k + 1) for k in counts[hit]]))

    simulated = np.empty(num_simulations)
    for i in range(num_simulations):
        u = random_numbers[i, :] if random_numbers is not None else rng.random(n_obs)
        counts = np.bincount(np.searchsorted(cumulative, u, side="right"), minlength=forecast.size)[: forecast.size]
        simulated[i] = joint(counts.astype(np.float64))
    observed_ll = joint(observed)
    return MagnitudeTestResult(
        quantile=float(np.sum(simulated <= observed_ll) / num_simulations),
        observed_log_likelihood=observed_ll,
        simulated_log_likelihood=simulated,
        n_observed=n_obs,
    )


def reliability_table(
    probability: np.ndarray, outcome: np.ndarray, *, edges: Sequence[float] = RELIABILITY_EDGES
) -> pl.DataFrame:
    """Forecasts binned by probability (``[low, high)``, the last bin closed): ``n``,
    ``mean_forecast``, ``observed_frequency`` (events / n); empty bins are left out."""
    p = np.asarray(probability, dtype=np.float64)
    o = np.asarray(outcome, dtype=np.float64)
    rows = []
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        inside = (p >= low) & ((p < high) if i < len(edges) - 2 else (p <= high))
        if inside.any():
            rows.append(
                {
                    "bin_low": low,
                    "bin_high": high,
                    "n": int(inside.sum()),
                    "mean_forecast": float(p[inside].mean()),
                    "observed_frequency": float(o[inside].mean()),
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "bin_low": pl.Float64,
            "bin_high": pl.Float64,
            "n": pl.Int64,
            "mean_forecast": pl.Float64,
            "observed_frequency": pl.Float64,
        },
    )


@dataclass
class AftershockEvaluation:
    """What :func:`evaluate_aftershock_forecasts` measured.

    - ``forecasts``: one row per (``ds``, ``model``): ``expected_count`` and
      ``observed_count`` of ``M >= count_magnitude``, ``delta1``/``delta2`` (N-test),
      ``probability`` of ``M >= target_magnitude`` and ``event`` (it happened),
      ``mainshock_magnitude`` (null without an active sequence);
    - ``summary``: per model, the figures of the module docstring, plus ``training`` (the
      baseline's span, Mc, b and rate) and ``settings``;
    - ``reliability``: :func:`reliability_table` per model (column ``model``);
    - ``magnitude_bins``: the M-test's input, per model and magnitude bin (``magnitude`` =
      the bin's reported magnitude, the last bin open-ended): ``forecast`` summed over all
      forecasts and ``observed``.
    """

    forecasts: pl.DataFrame
    summary: dict[str, Any]
    reliability: pl.DataFrame
    magnitude_bins: pl.DataFrame


def evaluate_aftershock_forecasts(
    events: pl.DataFrame,
    *,
    dates: Sequence[datetime],
    setting: str = "global",
    horizon_days: float = 7.0,
    target_magnitude: float = 6.0,
    count_magnitude: float = 5.0,
    min_mainshock: float = 6.0,
    lookback_days: float = 365.0,
    update: Literal["bayesian", "generic", "sequence"] = "bayesian",
    delta_m: float = 0.1,
    max_magnitude: float = 9.5,
    m_test_simulations: int = 1000,
    seed: int = 0,
    include_rate_test: bool = True,
) -> AftershockEvaluation:
    """Replay RJ and Poisson forecasts on ``dates`` and measure them (module docstring)."""
    ev = _validate_events(events).sort("time")
    dates = sorted(dates)
    if not dates:
        raise FrameError("no forecast dates were given", fix="pass dates, e.g. every 7 days of the test period")
    if horizon_days <= 0 or count_magnitude > target_magnitude:
        raise FrameError(
            f"horizon_days={horizon_days}, count_magnitude={count_magnitude}, target_magnitude={target_magnitude}",
            fix="need horizon_days > 0 and count_magnitude <= target_magnitude",
        )
    generic_parameters(setting)  # fails early on an unknown setting
    training = ev.filter(pl.col("time") < dates[0])
    if training.height < 50:
        raise FrameError(
            f"{training.height} event(s) before the first forecast date {dates[0]:%Y-%m-%d}",
            fix="start the forecasts later: the baseline is fitted on the events before them",
        )
    first_event: datetime = training.get_column("time").min()  # type: ignore[assignment]
    span_days = (dates[0] - first_event) / timedelta(days=1)
    mags = training.get_column("magnitude").to_numpy()
    mc = mc_max_curvature(mags, delta_m=delta_m)
    if count_magnitude < mc - 1e-9:
        raise FrameError(
            f"count_magnitude={count_magnitude} is below the catalog's completeness Mc={mc:.1f}",
            fix=f"count events at or above {mc:.1f}",
        )
    b_fit = estimate_b(mags, mc=mc, delta_m=delta_m)
    rate_mc = float((mags >= mc - delta_m / 2).sum()) / span_days

    def baseline(m: float | np.ndarray) -> np.ndarray:
        return rate_mc * 10.0 ** (-b_fit.b * (np.asarray(m) - mc)) * horizon_days

    bins = np.round(np.arange(count_magnitude, max_magnitude + delta_m / 2, delta_m), 6)

    def binned(total_above: np.ndarray) -> np.ndarray:  # N(>= m_k) -> counts per bin, last bin open
        return total_above - np.append(total_above[1:], 0.0)

    times = ev.get_column("time").to_numpy()
    magnitudes = ev.get_column("magnitude").to_numpy()
    rate_p = _rate_test_by_day(ev) if include_rate_test else {}
    rows: list[dict[str, Any]] = []
    m_forecast = {"reasenberg_jones": np.zeros(bins.size), "poisson": np.zeros(bins.size)}
    m_observed = np.zeros(bins.size)
    for d in dates:
        end = d + timedelta(days=horizon_days)
        window = magnitudes[(times >= np.datetime64(d)) & (times < np.datetime64(end))]
        observed = int((window >= count_magnitude - 1e-9).sum())
        event = bool((window >= target_magnitude - 1e-9).any())
        m_observed += np.histogram(
            np.clip(window[window >= count_magnitude - 1e-9], None, bins[-1]),
            bins=np.append(bins - delta_m / 2, np.inf),
        )[0]
        base_bins = binned(baseline(bins))
        base_target = float(baseline(target_magnitude))
        main = find_mainshock(ev, at=d, min_magnitude=min_mainshock, lookback_days=lookback_days, setting=setting)
        if main is None:
            rj_bins, rj_prob, main_mag = base_bins, -math.expm1(-base_target), None
        else:
            model = ReasenbergJones(setting=setting, update=update, catalog_mc=mc).fit(
                ev, at=d, mainshock_time=cast(datetime, main["time"])
            )
            t1 = model.t_end_
            per_a = np.stack([model.expected_counts(t1=t1, t2=t1 + horizon_days, m=m) for m in bins], axis=1)
            rj_bins = base_bins + binned(model.a_weights_ @ per_a)
            target_n = model.expected_counts(t1=t1, t2=t1 + horizon_days, m=target_magnitude) + base_target
            rj_prob, main_mag = float(model.a_weights_ @ -np.expm1(-target_n)), float(main["magnitude"])  # type: ignore[arg-type]
        for name, counts, prob in (
            ("reasenberg_jones", rj_bins, rj_prob),
            ("poisson", base_bins, -math.expm1(-base_target)),
        ):
            m_forecast[name] += counts
            rows.append(
                {
                    "ds": d,
                    "model": name,
                    "expected_count": float(counts.sum()),
                    "observed_count": observed,
                    "probability": prob,
                    "event": event,
                    "mainshock_magnitude": main_mag,
                }
            )
        if include_rate_test:
            p_value = rate_p.get((d - timedelta(days=1)).date(), float("nan"))
            rows.append(
                {
                    "ds": d,
                    "model": "rate_test",
                    "expected_count": None,
                    "observed_count": observed,
                    "probability": 1.0 - p_value if math.isfinite(p_value) else None,
                    "event": event,
                    "mainshock_magnitude": main_mag,
                }
            )
    frame = pl.DataFrame(
        rows,
        schema={
            "ds": pl.Datetime("us"),
            "model": pl.String,
            "expected_count": pl.Float64,
            "observed_count": pl.Int64,
            "probability": pl.Float64,
            "event": pl.Boolean,
            "mainshock_magnitude": pl.Float64,
        },
    )
    counted = frame.filter(pl.col("expected_count").is_not_null())
    d1, d2 = number_test(
        counted.get_column("expected_count").to_numpy(), counted.get_column("observed_count").to_numpy()
    )
    frame = frame.join(
        counted.select("ds", "model", pl.Series("delta1", d1), pl.Series("delta2", d2)), on=["ds", "model"], how="left"
    )
    overlap = any((b - a) < timedelta(days=horizon_days) for a, b in itertools.pairwise(dates))
    summary: dict[str, Any] = {
        "settings": {
            "setting": setting,
            "regime": generic_parameters(setting).regime,
            "update": update,
            "horizon_days": horizon_days,
            "target_magnitude": target_magnitude,
            "count_magnitude": count_magnitude,
            "min_mainshock": min_mainshock,
            "lookback_days": lookback_days,
            "first_date": f"{dates[0]:%Y-%m-%d}",
            "last_date": f"{dates[-1]:%Y-%m-%d}",
            "n_dates": len(dates),
            "windows_overlap": overlap,
        },
        "training": {
            "first_event": f"{first_event:%Y-%m-%d}",
            "span_days": round(span_days, 1),
            "mc": round(mc, 2),
            "b": round(b_fit.b, 3),
            "b_sigma": round(b_fit.sigma, 3),
            "b_n": b_fit.n,
            "rate_per_day_above_mc": rate_mc,
            "poisson_p_target": -math.expm1(-float(baseline(target_magnitude))),
        },
    }
    tables = []
    base_ll = None
    for name in ("poisson", "reasenberg_jones", "rate_test"):
        part = frame.filter((pl.col("model") == name) & pl.col("probability").is_not_null())
        if part.height == 0:
            continue
        probs = part.get_column("probability").to_numpy()
        outcomes = part.get_column("event").to_numpy()
        stats_row: dict[str, Any] = {
            "n_forecasts": part.height,
            "n_events": int(outcomes.sum()),
            "mean_probability": float(probs.mean()),
            "brier": brier_score(probs, outcomes),
        }
        if name != "rate_test":
            expected = part.get_column("expected_count").to_numpy()
            counts = part.get_column("observed_count").to_numpy()
            ll = poisson_log_likelihood(expected, counts)
            base_ll = ll if name == "poisson" else base_ll
            delta1, delta2 = number_test(expected.sum(), counts.sum())
            m_result = magnitude_test(m_forecast[name], m_observed, num_simulations=m_test_simulations, seed=seed)
            stats_row.update(
                {
                    "expected_total": float(expected.sum()),
                    "observed_total": int(counts.sum()),
                    "n_test_total_delta1": None if overlap else float(delta1),
                    "n_test_total_delta2": None if overlap else float(delta2),
                    "n_test_share_too_few_forecast": float(np.mean(part.get_column("delta1").to_numpy() < 0.025)),
                    "n_test_share_too_many_forecast": float(np.mean(part.get_column("delta2").to_numpy() < 0.025)),
                    "log_likelihood": ll,
                    "information_gain_per_forecast": None if base_ll is None else (ll - base_ll) / part.height,
                    "m_test_quantile": m_result.quantile,
                    "m_test_events": m_result.n_observed,
                }
            )
        summary[name] = stats_row
        tables.append(reliability_table(probs, outcomes).select(pl.lit(name).alias("model"), pl.all()))
    poisson_brier = summary["poisson"]["brier"]
    for name in ("reasenberg_jones", "rate_test"):
        if name in summary:
            summary[name]["brier_skill_vs_poisson"] = (
                1.0 - summary[name]["brier"] / poisson_brier if poisson_brier > 0 else None
            )
    magnitude_bins = pl.concat(
        [
            pl.DataFrame({"model": name, "magnitude": bins, "forecast": counts, "observed": m_observed})
            for name, counts in m_forecast.items()
        ]
    )
    return AftershockEvaluation(
        forecasts=frame, summary=summary, reliability=pl.concat(tables), magnitude_bins=magnitude_bins
    )


def _rate_test_by_day(ev: pl.DataFrame) -> dict[Any, float]:
    """``rate_p_value`` of :func:`seismic_indicators` per calendar day (causal: day ``d`` uses
    events up to the end of ``d``)."""
    indicators = seismic_indicators(ev.select("time", "magnitude"))
    return dict(
        zip(
            indicators.get_column("ds").dt.date().to_list(),
            indicators.get_column("rate_p_value").fill_null(float("nan")).to_list(),
            strict=True,
        )
    )
