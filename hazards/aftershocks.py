"""Aftershock probabilities after a mainshock: the Reasenberg-Jones model as USGS runs it.

**Model** (Reasenberg & Jones 1989, Science 243; 1994, Science 265). The rate of aftershocks
with magnitude ``>= m`` at ``t`` days after a mainshock of magnitude ``Mm`` is::

    lambda(t, m) = 10 ** (a + b (Mm - m)) * (t + c) ** -p          [events per day]

and the expected number in ``[t1, t2]`` is the closed-form integral::

    N = 10 ** (a + b (Mm - m)) * I,   I = ((t2 + c) ** (1 - p) - (t1 + c) ** (1 - p)) / (1 - p)
                                         (I = ln((t2 + c) / (t1 + c)) when p = 1)

Aftershocks are a Poisson process, so ``P(at least one M >= m in [t1, t2]) = 1 - exp(-N)``.
``m`` is a *reported* magnitude (a count of catalog events with magnitude ``>= m``), as in
the fits that produced the parameters.

**Generic parameters** (:data:`GENERIC_RJ_PARAMETERS`): Page, van der Elst, Hardebeck, Felzer
& Michael (2016), "Three ingredients for improved global aftershock forecasts: tectonic
region, time-dependent catalog incompleteness, and intersequence variability", BSSA 106(5),
2290-2301: one row per tectonic regime of Garcia et al. (2012), ``a`` normally distributed
across sequences (mean, sigma), ``b = 1``, ``c = 0.018`` day (their global fit), ``p`` per
regime. The numbers are copied from the table USGS's operational aftershock forecasting runs
on, ``opensha/opensha-oaf``, file
``src/main/resources/org/opensha/oaf/rj/GenericRJ_ParametersFetch.json`` at commit
20431f4202b1a15904f381f4ca236fa8518daedb (public domain, USGS); the magnitude-dependent
sigma is that repository's ``GenericRJ_Parameters.get_aValueSigma``:
``sigma(Mm) = sqrt(sigma0^2 + sigma1^2 / 10^max(Mm, 6))``. Settings (:data:`SETTINGS`):
``subduction`` = SZ-GENERIC (Japan, Tohoku), ``active_shallow_crust`` = ANSR-SHALCON
(mainland China, Sichuan-Yunnan, most of East Asia), ``stable_continental`` = SCR-GENERIC,
and ``global``: Page et al. publish no single world row, so the default is ANSR-SHALCON,
whose a and p (-2.42, 0.98) are within 0.1 of the subduction rows (-2.34 ... -2.47,
0.81 ... 0.92), the two kinds of regime that host nearly all M >= 6 mainshocks; name the
setting when it is known.

**Early incompleteness** (Page et al. 2016, eq. 5; ``MagCompPage_ParametersFetch.json``
of the same repository, WORLD row ``F = 0.5, G = 0.25, H = 1``): right after a large
mainshock small aftershocks are missing, and only those above
``Mc(t) = max(Mcat, F Mm - G - H log10(t))`` are counted. The sequence likelihood uses the
same ``Mc(t)``: the observed rate is ``10 ** (a + b (Mm - Mc(t))) (t + c) ** -p``.

**Sequence-specific update** (``update=``):

- ``"bayesian"`` (default, what USGS's ``RJ_AftershockModel_Bayesian`` does): ``b, p, c``
  stay generic; ``a`` gets a posterior on the grid ``-4.5 .. -0.5`` step 0.01 (the USGS
  grid), prior ``Normal(a_mean, sigma(Mm))`` times the Poisson-process likelihood of the
  ``n`` aftershocks above ``Mc(t)`` observed since the mainshock,
  ``L(a) = exp(n a ln 10 - 10**a J)``, ``J = int_0^T 10 ** (b (Mm - Mc(t))) (t + c) ** -p dt``.
  With few aftershocks the prior dominates; with many the sequence's own productivity
  does: the blend is weighted by the data, not by a fixed rule. Probabilities and
  expected counts are averaged over the posterior (``P = sum_a w(a) (1 - exp(-N(a)))``).
- ``"generic"``: the prior alone (the first forecast USGS issues). Both updates fall back
  to it during the first ``min_sequence_hours`` (3 h, USGS's ``seq_spec_min_lag``): the
  first minutes after a great earthquake are missing from catalogs even above Page's
  ``Mc(t)`` (ComCat lists no M >= 6.3 in the 14 minutes after Tohoku's M9.1), and an
  empty start would pull ``a`` down.
- ``"sequence"``: the maximum-likelihood ``a, p, c`` of the sequence itself (Ogata 1983;
  :func:`fit_omori_utsu`) once it has ``min_sequence_events`` aftershocks above ``Mc(t)``,
  the Bayesian model before that.

Every fit also reports the sequence's own maximum-likelihood Omori-Utsu parameters
(``sequence_fit_``) when there are at least 10 aftershocks.

:func:`find_mainshock` and :func:`aftershock_forecast` take a regional event frame and a
forecast time (no clock is read), :func:`aftershock_level` maps ``P(M >= 6 within 7 days)``
to a warning level, and :func:`background_rate_level` / :func:`cap_without_mainshock`
keep a rate change without a mainshock at blue.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl
from scipy import integrate, optimize, stats

from core.errors import ConfigError, FrameError
from core.vocabulary import Level
from hazards.earthquakes import mc_max_curvature

__all__ = [
    "AFTERSHOCK_THRESHOLDS",
    "FORECAST_COLUMNS",
    "GENERIC_RJ_PARAMETERS",
    "SETTINGS",
    "GenericRJParameters",
    "OmoriUtsuFit",
    "ReasenbergJones",
    "aftershock_forecast",
    "aftershock_level",
    "background_rate_level",
    "cap_without_mainshock",
    "find_mainshock",
    "fit_omori_utsu",
    "generic_parameters",
    "omori_integral",
    "page_completeness",
]

_DAY = timedelta(days=1)
_A_GRID = np.round(np.arange(-4.5, -0.5 + 1e-9, 0.01), 2)  # USGS aValue_min/max/delta


@dataclass(frozen=True)
class GenericRJParameters:
    """One regime's generic Reasenberg-Jones parameters (Page et al. 2016; times in days)."""

    regime: str
    a: float
    a_sigma: float
    a_sigma0: float
    a_sigma1: float
    b: float
    p: float
    c: float

    def sigma_a(self, mainshock_magnitude: float) -> float:
        """Standard deviation of ``a`` for a mainshock of this magnitude (USGS form)."""
        return math.sqrt(self.a_sigma0**2 + self.a_sigma1**2 / 10 ** max(mainshock_magnitude, 6.0))


def _row(regime: str, p: float, a: float, sigma: float, sigma1: float) -> GenericRJParameters:
    return GenericRJParameters(regime=regime, a=a, a_sigma=sigma, a_sigma0=0.49, a_sigma1=sigma1, b=1.0, p=p, c=0.018)


#: Page et al. (2016) generic parameters per Garcia et al. (2012) regime, as USGS runs them
#: (opensha-oaf GenericRJ_ParametersFetch.json @ 20431f4; sigma0 = 0.49, b = 1, c = 0.018 d).
GENERIC_RJ_PARAMETERS: dict[str, GenericRJParameters] = {
    r.regime: r
    for r in (
        _row("ANSR-ABSLDEC", 1.01, -2.29, 0.63, 560),
        _row("ANSR-ABSLOCB", 0.64, -2.82, 0.80, 890),
        _row("ANSR-ABSLSHC", 1.06, -2.85, 0.75, 800),
        _row("ANSR-DEEPCON", 0.98, -2.13, 0.52, 250),
        _row("ANSR-HOTSPOT", 1.12, -3.00, 0.68, 680),
        _row("ANSR-OCEANBD", 1.08, -3.19, 0.60, 500),
        _row("ANSR-SHALCON", 0.98, -2.42, 0.63, 570),
        _row("SCR-GENERIC", 0.73, -2.85, 0.78, 870),
        _row("SOR-GENERIC", 0.97, -3.04, 0.67, 650),
        _row("SZ-GENERIC", 0.88, -2.47, 0.63, 570),
        _row("SZ-INLBACK", 0.86, -2.43, 0.66, 640),
        _row("SZ-ONSHORE", 0.81, -2.34, 0.60, 500),
        _row("SZ-OUTERTR", 0.92, -2.42, 0.64, 540),
        _row("SCR-ABVSLAB", 0.73, -2.85, 0.78, 870),
        _row("SOR-ABVSLAB", 0.97, -3.04, 0.67, 650),
    )
}

#: Plain-language settings -> regime (module docstring says why ``global`` is ANSR-SHALCON).
SETTINGS: dict[str, str] = {
    "subduction": "SZ-GENERIC",
    "active_shallow_crust": "ANSR-SHALCON",
    "stable_continental": "SCR-GENERIC",
    "global": "ANSR-SHALCON",
}

#: Page et al. (2016) time-dependent completeness, WORLD row of MagCompPage_ParametersFetch.json.
_PAGE_F, _PAGE_G, _PAGE_H = 0.5, 0.25, 1.0


def generic_parameters(setting: str) -> GenericRJParameters:
    """The generic parameters of a setting (``subduction`` ...) or a Garcia regime name."""
    regime = SETTINGS.get(setting, setting)
    if regime not in GENERIC_RJ_PARAMETERS:
        raise ConfigError(
            f"unknown tectonic setting {setting!r}",
            fix=f"use one of {sorted(SETTINGS)} or a regime of {sorted(GENERIC_RJ_PARAMETERS)}",
        )
    return GENERIC_RJ_PARAMETERS[regime]


def page_completeness(
    t_days: np.ndarray | float,
    *,
    mainshock_magnitude: float,
    catalog_mc: float,
    f: float = _PAGE_F,
    g: float = _PAGE_G,
    h: float = _PAGE_H,
) -> np.ndarray:
    """``Mc(t) = max(catalog_mc, f Mm - g - h log10(t))`` (Page et al. 2016), ``t`` in days > 0."""
    t = np.maximum(np.asarray(t_days, dtype=np.float64), 1e-12)
    return np.maximum(catalog_mc, f * mainshock_magnitude - g - h * np.log10(t))


def omori_integral(t1: float | np.ndarray, t2: float | np.ndarray, *, p: float, c: float) -> np.ndarray:
    """``int_{t1}^{t2} (t + c) ** -p dt`` in closed form (days)."""
    t1, t2 = np.asarray(t1, dtype=np.float64), np.asarray(t2, dtype=np.float64)
    if abs(p - 1.0) < 1e-9:
        return np.log((t2 + c) / (t1 + c))
    return ((t2 + c) ** (1.0 - p) - (t1 + c) ** (1.0 - p)) / (1.0 - p)


def _observed_integral(
    t_end: float, *, p: float, c: float, b: float, mainshock_magnitude: float, catalog_mc: float, incompleteness: bool
) -> float:
    """``J = int_0^T 10 ** (b (Mm - Mc(t))) (t + c) ** -p dt``: the expected count above Mc(t)
    per unit of ``10 ** a``."""
    if t_end <= 0:
        return 0.0
    full = 10 ** (b * (mainshock_magnitude - catalog_mc))
    if not incompleteness:
        return float(full * omori_integral(0.0, t_end, p=p, c=c))
    # Before t_star Mc(t) is above the catalog's Mc: 10 ** (b (Mm - Mc(t))) = 10 ** (b (Mm (1 - f) + g)) t ** (b h).
    t_star = 10 ** ((_PAGE_F * mainshock_magnitude - _PAGE_G - catalog_mc) / _PAGE_H)
    early_end = min(t_star, t_end)
    scale = 10 ** (b * (mainshock_magnitude * (1.0 - _PAGE_F) + _PAGE_G))
    with warnings.catch_warnings():  # the integrand is smooth; quad's accuracy notes are noise here
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        early, _ = integrate.quad(
            lambda t: scale * t ** (b * _PAGE_H) * (t + c) ** -p,
            0.0,
            early_end,
            limit=200,
            points=[c] if c < early_end else None,
        )
    late = full * float(omori_integral(early_end, t_end, p=p, c=c)) if t_end > early_end else 0.0
    return float(early + late)


@dataclass(frozen=True)
class OmoriUtsuFit:
    """Maximum-likelihood Omori-Utsu parameters of one sequence (Ogata 1983), ``b`` fixed."""

    a: float
    p: float
    c: float
    b: float
    n: int
    log_likelihood: float


def _sequence_times(
    times: np.ndarray, mags: np.ndarray, *, mainshock_magnitude: float, catalog_mc: float, incompleteness: bool
) -> np.ndarray:
    threshold = (
        page_completeness(times, mainshock_magnitude=mainshock_magnitude, catalog_mc=catalog_mc)
        if incompleteness
        else np.full(times.shape, catalog_mc)
    )
    return times[(mags >= threshold - 1e-9) & (times > 0)]


def fit_omori_utsu(
    t_days: np.ndarray,
    magnitudes: np.ndarray,
    *,
    t_end: float,
    mainshock_magnitude: float,
    catalog_mc: float,
    b: float = 1.0,
    incompleteness: bool = True,
) -> OmoriUtsuFit:
    """Ogata's (1983) maximum-likelihood ``a, p, c`` of a sequence observed on ``(0, t_end]`` days.

    Only aftershocks at or above ``Mc(t)`` count (:func:`page_completeness` when
    ``incompleteness``, else the constant ``catalog_mc``). For given ``p, c`` the best ``a``
    is closed-form (``10 ** a = n / J``), so the search is over ``p`` (0.2 .. 2.5) and
    ``log10 c`` (-4 .. 0.5) with L-BFGS-B from three starts. Needs at least 10 aftershocks.
    """
    times = _sequence_times(
        np.asarray(t_days, dtype=np.float64),
        np.asarray(magnitudes, dtype=np.float64),
        mainshock_magnitude=mainshock_magnitude,
        catalog_mc=catalog_mc,
        incompleteness=incompleteness,
    )
    times = times[times <= t_end]
    n = int(times.size)
    if n < 10:
        raise FrameError(
            f"{n} aftershock(s) above the completeness magnitude; an Omori-Utsu fit needs 10",
            fix="wait for the sequence to grow or lower catalog_mc",
        )

    def negative(x: np.ndarray) -> float:
        p, c = float(x[0]), 10 ** float(x[1])
        j = _observed_integral(
            t_end,
            p=p,
            c=c,
            b=b,
            mainshock_magnitude=mainshock_magnitude,
            catalog_mc=catalog_mc,
            incompleteness=incompleteness,
        )
        if not np.isfinite(j) or j <= 0:
            return 1e300
        return -(n * math.log(n / j) - n - p * float(np.log(times + c).sum()))

    best = None
    for start in ((1.0, -1.5), (0.8, -2.5), (1.3, -0.5)):
        result = optimize.minimize(negative, np.array(start), method="L-BFGS-B", bounds=[(0.2, 2.5), (-4.0, 0.5)])
        if best is None or result.fun < best.fun:
            best = result
    if best is None:  # the loop above always runs: three starting points
        raise RuntimeError("internal error: the Omori-Utsu fit tried no starting point")
    p, c = float(best.x[0]), 10 ** float(best.x[1])
    j = _observed_integral(
        t_end,
        p=p,
        c=c,
        b=b,
        mainshock_magnitude=mainshock_magnitude,
        catalog_mc=catalog_mc,
        incompleteness=incompleteness,
    )
    # The observed-rate constant 10 ** a was fitted above Mc(t); a is referred to M = Mm.
    return OmoriUtsuFit(a=math.log10(n / j), p=p, c=c, b=b, n=n, log_likelihood=-float(best.fun))


def _validate_events(events: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("time", "magnitude") if c not in events.columns]
    if missing:
        raise FrameError(
            f"event frame lacks {missing}; it has {events.columns}",
            fix="pass events with columns time (UTC datetime) and magnitude",
        )
    if events.schema["time"] not in (pl.Datetime("us"), pl.Datetime("ns"), pl.Datetime("ms")):
        raise FrameError(
            f"column time is {events.schema['time']}, not a datetime",
            fix="parse the catalog with ingest.sources (time as a UTC datetime)",
        )
    return events.with_columns(pl.col("time").cast(pl.Datetime("us")), pl.col("magnitude").cast(pl.Float64)).drop_nulls(
        ["time", "magnitude"]
    )


def _rupture_radius_km(magnitude: float) -> float:
    """Aftershock-zone radius: Wells & Coppersmith (1994) surface rupture length (all slip
    types, log10 L = -3.22 + 0.69 M), clipped to 10 .. 2000 km like USGS's
    ``SearchRadiusFnWCClip`` (radiusMult 1, radiusMin 10, radiusMax 2000)."""
    return float(min(max(10 ** (-3.22 + 0.69 * magnitude), 10.0), 2000.0))


def _distance_km(lat0: float, lon0: float, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    p0, p1 = math.radians(lat0), np.radians(lat)
    dlat, dlon = p1 - p0, np.radians(lon - lon0)
    h = np.sin(dlat / 2) ** 2 + math.cos(p0) * np.cos(p1) * np.sin(dlon / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


class ReasenbergJones:
    """Reasenberg-Jones aftershock forecast of one sequence (module docstring for the model).

    ``ReasenbergJones(setting="subduction").fit(events, at=forecast_time)`` takes the largest
    event of ``events`` before ``at`` as the mainshock (or ``mainshock_time``) and the events
    after it, up to ``at``, as its aftershocks (within the Wells-Coppersmith radius when the
    frame has ``lat``/``lon``). ``catalog_mc`` is the catalog's completeness (default: maximum
    curvature + 0.2 of the events before ``at``). :meth:`probabilities` gives the expected
    number and ``P(at least one)`` of aftershocks ``M >= m`` in windows starting at ``at``.
    """

    def __init__(
        self,
        *,
        setting: str = "global",
        params: GenericRJParameters | None = None,
        update: Literal["bayesian", "generic", "sequence"] = "bayesian",
        catalog_mc: float | None = None,
        incompleteness: bool = True,
        min_sequence_events: int = 50,
        min_sequence_hours: float = 3.0,
    ) -> None:
        if update not in ("bayesian", "generic", "sequence"):
            raise ConfigError(f"update={update!r}", fix="use 'bayesian', 'generic' or 'sequence'")
        self.setting = setting
        self.params = params if params is not None else generic_parameters(setting)
        self.update = update
        self.catalog_mc = catalog_mc
        self.incompleteness = incompleteness
        self.min_sequence_events = min_sequence_events
        self.min_sequence_hours = min_sequence_hours

    def fit(self, events: pl.DataFrame, *, at: datetime, mainshock_time: datetime | None = None) -> ReasenbergJones:
        """Fit on the events known at ``at`` (UTC); returns ``self``."""
        ev = _validate_events(events).filter(pl.col("time") < at).sort("time")
        if ev.height == 0:
            raise FrameError(
                f"no event before {at:%Y-%m-%d %H:%M}", fix="pass the sequence's events up to the forecast time"
            )
        if mainshock_time is None:
            main = ev.sort(["magnitude", "time"], descending=[True, False]).row(0, named=True)
        else:
            rows = ev.filter(pl.col("time") == mainshock_time)
            if rows.height == 0:
                raise FrameError(
                    f"no event at mainshock_time {mainshock_time}", fix="pass the time of an event of the frame"
                )
            main = rows.sort("magnitude", descending=True).row(0, named=True)
        mm = float(main["magnitude"])
        self.mainshock_time_: datetime = main["time"]
        self.mainshock_magnitude_ = mm
        self.fitted_at_: datetime = at
        self.catalog_mc_ = float(
            self.catalog_mc if self.catalog_mc is not None else mc_max_curvature(ev.get_column("magnitude").to_numpy())
        )
        after = ev.filter(pl.col("time") > self.mainshock_time_)
        if "lat" in after.columns and "lon" in after.columns and main.get("lat") is not None:
            self.radius_km_: float | None = _rupture_radius_km(mm)
            near = (
                _distance_km(
                    float(main["lat"]),
                    float(main["lon"]),
                    after.get_column("lat").to_numpy(),
                    after.get_column("lon").to_numpy(),
                )
                <= self.radius_km_
            )
            after = after.filter(pl.Series(near))
        else:
            self.radius_km_ = None
        t = (after.get_column("time") - self.mainshock_time_).dt.total_microseconds().to_numpy() / 8.64e10
        mags = after.get_column("magnitude").to_numpy()
        self.t_end_ = (at - self.mainshock_time_) / _DAY
        used = _sequence_times(
            t, mags, mainshock_magnitude=mm, catalog_mc=self.catalog_mc_, incompleteness=self.incompleteness
        )
        self.n_aftershocks_ = int(used.size)
        self.sequence_fit_: OmoriUtsuFit | None = None
        if used.size >= 10:
            try:
                self.sequence_fit_ = fit_omori_utsu(
                    t,
                    mags,
                    t_end=self.t_end_,
                    mainshock_magnitude=mm,
                    catalog_mc=self.catalog_mc_,
                    b=self.params.b,
                    incompleteness=self.incompleteness,
                )
            except FrameError:
                self.sequence_fit_ = None
        gp = self.params
        self.b_, self.p_, self.c_ = gp.b, gp.p, gp.c
        prior_log = stats.norm.logpdf(_A_GRID, loc=gp.a, scale=gp.sigma_a(mm))
        method = self.update
        if method != "generic" and self.t_end_ * 24.0 < self.min_sequence_hours:
            method = "generic"  # USGS waits 3 h (seq_spec_min_lag): the first minutes are missing from catalogs
        if method == "sequence" and (self.sequence_fit_ is None or self.n_aftershocks_ < self.min_sequence_events):
            method = "bayesian"
        if method == "sequence":
            fit = self.sequence_fit_
            if fit is None:  # guarded by the condition above
                raise RuntimeError("internal error: a sequence fit was chosen without one")
            self.a_grid_, self.a_weights_ = np.array([fit.a]), np.array([1.0])
            self.p_, self.c_ = fit.p, fit.c
        else:
            log_post = prior_log.copy()
            if method == "bayesian" and self.t_end_ > 0:
                j = _observed_integral(
                    self.t_end_,
                    p=gp.p,
                    c=gp.c,
                    b=gp.b,
                    mainshock_magnitude=mm,
                    catalog_mc=self.catalog_mc_,
                    incompleteness=self.incompleteness,
                )
                log_post = log_post + self.n_aftershocks_ * _A_GRID * math.log(10.0) - 10.0**_A_GRID * j
            weights = np.exp(log_post - log_post.max())
            self.a_grid_, self.a_weights_ = _A_GRID, weights / weights.sum()
        self.method_ = method
        self.a_ = float(np.sum(self.a_grid_ * self.a_weights_))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "a_weights_"):
            raise FrameError("ReasenbergJones is not fitted", fix="call fit(events, at=...) first")

    def expected_counts(self, *, t1: float, t2: float, m: float) -> np.ndarray:
        """Expected number of ``M >= m`` in ``[t1, t2]`` days after the mainshock, one per ``a``
        of the grid (weights ``a_weights_``)."""
        self._check_fitted()
        scale = float(omori_integral(t1, t2, p=self.p_, c=self.c_))
        return 10.0 ** (self.a_grid_ + self.b_ * (self.mainshock_magnitude_ - m)) * scale

    def probabilities(
        self,
        *,
        at: datetime | None = None,
        magnitudes: Sequence[float] = (5.0, 6.0, 7.0),
        windows_days: Sequence[float] = (1.0, 7.0, 30.0),
    ) -> pl.DataFrame:
        """One row per (``m_min``, ``window_days``): the window starts at ``at`` (default the fit
        time) and lasts ``window_days``. Columns :data:`FORECAST_COLUMNS`: ``expected_count``
        (posterior mean of N), ``probability`` (``P(at least one M >= m_min)``), ``count_low`` /
        ``count_high`` (2.5% / 97.5% of the predictive number), and the fit behind them."""
        self._check_fitted()
        start = self.fitted_at_ if at is None else at
        t1 = (start - self.mainshock_time_) / _DAY
        if t1 < 0:
            raise FrameError(
                f"forecast start {start} is before the mainshock {self.mainshock_time_}",
                fix="forecast from a time after the mainshock",
            )
        rows = []
        for m in magnitudes:
            for window in windows_days:
                if window <= 0:
                    raise FrameError(f"window_days={window}", fix="windows must last more than 0 days")
                n = self.expected_counts(t1=t1, t2=t1 + window, m=m)
                low, high = _mixture_quantiles(n, self.a_weights_, (0.025, 0.975))
                rows.append(
                    {
                        "forecast_time": start,
                        "mainshock_time": self.mainshock_time_,
                        "mainshock_magnitude": self.mainshock_magnitude_,
                        "days_since_mainshock": t1,
                        "m_min": float(m),
                        "window_days": float(window),
                        "expected_count": float(np.sum(self.a_weights_ * n)),
                        "probability": float(np.sum(self.a_weights_ * -np.expm1(-n))),
                        "count_low": low,
                        "count_high": high,
                        "a_value": self.a_,
                        "b_value": self.b_,
                        "omori_p": self.p_,
                        "omori_c": self.c_,
                        "n_aftershocks": self.n_aftershocks_,
                        "catalog_mc": self.catalog_mc_,
                        "regime": self.params.regime,
                        "update": self.method_,
                    }
                )
        return pl.DataFrame(rows, schema=_FORECAST_SCHEMA)


def _mixture_quantiles(means: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> list[int]:
    """Quantiles of a Poisson mixture ``sum_i w_i Poisson(means_i)``."""
    keep = weights > 1e-12
    means, weights = means[keep], weights[keep] / weights[keep].sum()
    top = int(stats.poisson.ppf(0.9999, float(means.max()))) + 1
    ks = np.arange(top + 1)
    cdf = (weights[:, None] * stats.poisson.cdf(ks[None, :], means[:, None])).sum(axis=0)
    return [int(ks[np.searchsorted(cdf, q - 1e-12)]) if cdf[-1] >= q else top for q in qs]


_SCHEMA_TYPES: dict[str, pl.DataType] = {
    "forecast_time": pl.Datetime("us"),
    "mainshock_time": pl.Datetime("us"),
    "mainshock_magnitude": pl.Float64(),
    "days_since_mainshock": pl.Float64(),
    "m_min": pl.Float64(),
    "window_days": pl.Float64(),
    "expected_count": pl.Float64(),
    "probability": pl.Float64(),
    "count_low": pl.Int64(),
    "count_high": pl.Int64(),
    "a_value": pl.Float64(),
    "b_value": pl.Float64(),
    "omori_p": pl.Float64(),
    "omori_c": pl.Float64(),
    "n_aftershocks": pl.Int64(),
    "catalog_mc": pl.Float64(),
    "regime": pl.String(),
    "update": pl.String(),
}
_FORECAST_SCHEMA = pl.Schema(_SCHEMA_TYPES)
#: Columns of :meth:`ReasenbergJones.probabilities` and :func:`aftershock_forecast`.
FORECAST_COLUMNS: tuple[str, ...] = tuple(_FORECAST_SCHEMA.names())


def find_mainshock(
    events: pl.DataFrame,
    *,
    at: datetime,
    min_magnitude: float = 6.0,
    lookback_days: float = 365.0,
    setting: str = "global",
    min_probability: float = 0.01,
) -> dict[str, object] | None:
    """The mainshock whose sequence drives the forecast at ``at``, or ``None`` when no
    sequence is active.

    Candidates are the events with ``M >= min_magnitude`` in ``[at - lookback_days, at)``;
    the defaults are USGS's operational ones (opensha-oaf ``ActionConfig.json``): outside
    well-instrumented regions it forecasts after M >= 5.95 (``WORLD`` intake ``min_mag``)
    and keeps a sequence's forecast for up to 365 days (``def_max_forecast_lag``). Of several
    candidates the one with the highest generic rate ``10 ** (b Mm) (dt + c) ** -p`` at
    ``at`` drives the forecast: the largest event, unless a smaller one is much more recent
    (a M6.5 of yesterday outranks a M7 of last year; an aftershock of a great earthquake
    does not outrank it for months). That sequence is *active* while its generic forecast
    still gives ``P(M >= min_magnitude within 7 days) >= min_probability`` (1 %, a fifth of
    the yellow threshold of :func:`aftershock_level`), which scales the look-back with the
    magnitude (subduction: a M6 for 11 hours, a M6.5 a week, a M7 five weeks, a M7.3 eleven
    weeks, a M7.5 four months, a M8 or larger the full year). Returns the event's row (``time``, ``magnitude``, and
    ``lat``/``lon`` when the frame has them).
    """
    ev = _validate_events(events)
    start = at - timedelta(days=lookback_days)
    cand = ev.filter((pl.col("time") >= start) & (pl.col("time") < at) & (pl.col("magnitude") >= min_magnitude - 1e-9))
    if cand.height == 0:
        return None
    gp = generic_parameters(setting)
    dt = (at - cand.get_column("time")).dt.total_microseconds().to_numpy() / 8.64e10
    mags = cand.get_column("magnitude").to_numpy()
    best = int(np.argmax(gp.b * mags - gp.p * np.log10(dt + gp.c)))
    n = 10 ** (gp.a + gp.b * (mags[best] - min_magnitude)) * float(
        omori_integral(dt[best], dt[best] + 7.0, p=gp.p, c=gp.c)
    )
    return cand.row(best, named=True) if -math.expm1(-n) >= min_probability else None


def aftershock_forecast(
    events: pl.DataFrame,
    *,
    at: datetime,
    setting: str = "global",
    min_magnitude: float = 6.0,
    lookback_days: float = 365.0,
    min_probability: float = 0.01,
    magnitudes: Sequence[float] = (5.0, 6.0, 7.0),
    windows_days: Sequence[float] = (1.0, 7.0, 30.0),
    update: Literal["bayesian", "generic", "sequence"] = "bayesian",
    catalog_mc: float | None = None,
) -> pl.DataFrame:
    """Reasenberg-Jones probabilities at ``at`` for a regional event frame, or an empty frame
    (columns :data:`FORECAST_COLUMNS`) when :func:`find_mainshock` finds no mainshock.

    ``events`` is the region's catalog (``time, magnitude``; ``lat, lon`` optional) and may
    run past ``at``: nothing at or after ``at`` is used. ``catalog_mc`` defaults to maximum
    curvature + 0.2 over the events before ``at``.
    """
    main = find_mainshock(
        events,
        at=at,
        min_magnitude=min_magnitude,
        lookback_days=lookback_days,
        setting=setting,
        min_probability=min_probability,
    )
    if main is None:
        return pl.DataFrame(schema=_FORECAST_SCHEMA)
    model = ReasenbergJones(setting=setting, update=update, catalog_mc=catalog_mc)
    model.fit(events, at=at, mainshock_time=main["time"])  # type: ignore[arg-type]
    return model.probabilities(magnitudes=magnitudes, windows_days=windows_days)


#: Default ``P(M >= 6 within 7 days)`` thresholds of :func:`aftershock_level`.
AFTERSHOCK_THRESHOLDS: dict[Level, float] = {Level.YELLOW: 0.05, Level.ORANGE: 0.20, Level.RED: 0.50}


def aftershock_level(probability: float, *, yellow: float = 0.05, orange: float = 0.20, red: float = 0.50) -> Level:
    """Warning level of an aftershock forecast's ``P(M >= 6 within 7 days)``.

    No agency publishes colour thresholds for aftershock probabilities (USGS, GeoNet and
    CENC publish the probabilities themselves), so the defaults are reasoned and
    configurable:

    - yellow at 5 %: the chance USGS has long quoted that a California earthquake is a
      foreshock to a larger one within days (Jones 1985; Reasenberg & Jones 1989), the
      level at which a mainshock's sequence is a named hazard of its own.
    - red at 50 %: more likely than not. The only US short-term alert scale ever run
      (Parkfield, Bakun et al. 1987) issued its highest level, A, at 37 % in 72 hours,
      about 50 % over 7 days with Omori decay (p ~ 1).
    - orange at 20 %, near the geometric middle of yellow and red (sqrt(5 x 50) = 16 %),
      rounded to one in five.

    The generic subduction model an hour after the mainshock gives: M6 5 % (just under
    yellow), M6.5 10 % (yellow), M7 22 % and M7.5 44 % (orange), M8 72 % (red); a day
    later M7 13 % (yellow) and M8 56 % (red). The sequence's own aftershocks then move it.
    """
    if not (0.0 < yellow <= orange <= red <= 1.0):
        raise ConfigError(
            f"thresholds yellow={yellow}, orange={orange}, red={red}",
            fix="need 0 < yellow <= orange <= red <= 1, e.g. 0.05, 0.20, 0.50",
        )
    if not math.isfinite(probability):
        return Level.NONE
    for level, threshold in ((Level.RED, red), (Level.ORANGE, orange), (Level.YELLOW, yellow)):
        if probability >= threshold:
            return level
    return Level.NONE


def background_rate_level(rate_p_value: float, *, significance: float = 1e-3) -> Level:
    """A significant rise of the event rate with no mainshock is an "unusual activity"
    notice, never more: ``Level.BLUE`` when the rate test's ``p < significance``
    (:func:`hazards.earthquakes.seismic_indicators`' ``rate_p_value``), else ``Level.NONE``.
    Swarms and rate changes precede a large earthquake too rarely for a warning (the
    engine's own 2005-2014 Tohoku run: POD 0.15, FAR 0.91)."""
    if not (0.0 < significance < 1.0):
        raise ConfigError(f"significance={significance}", fix="use a p-value threshold in (0, 1), e.g. 0.001")
    return Level.BLUE if math.isfinite(rate_p_value) and rate_p_value < significance else Level.NONE


def cap_without_mainshock(level: Level, *, has_mainshock: bool) -> Level:
    """Any seismic level without a mainshock (no :func:`find_mainshock` result) is at most blue."""
    return level if has_mainshock else min(Level(level), Level.BLUE)
