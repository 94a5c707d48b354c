"""The statistical model set: names, capabilities, per-series eligibility and fallbacks.

Every model the engine runs through statsforecast is named here (:data:`STAT_MODELS`) with
what it needs from a series, so callers ask (:func:`plan_model`) instead of try/except:

========== ===================================================== =========================
name       what it is                                            falls back to
========== ===================================================== =========================
AutoETS    exponential smoothing, automatic (season <= 24)       Naive
AutoARIMA  ARIMA, automatic order (slow on long seasons)         AutoETS
AutoTheta  Theta family, automatic (decomposition if seasonal)   AutoETS
MSTL       multiple seasonal decomposition + ETS trend           AutoETS
SeasonalNaive  last season repeated                              Naive
Naive      last value repeated                                   (none: last resort)
========== ===================================================== =========================

The global learned models (:data:`GLOBAL_MODELS`, :mod:`forecasting.global_model`) are
candidates of the backtest beside these; they are fitted across series, not planned per series.

The season length comes from the series' frequency (:data:`core.frames.FREQUENCIES`);
MSTL also uses the longer cycles of :data:`MSTL_SEASONS` that the series is long enough for.
:func:`plan_model` returns the model that will actually run on one series and, when that is
not the plain path, why (a shortened season, too few points, a constant series).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import FrameError
from core.frames import FREQUENCIES

__all__ = [
    "STAT_MODELS",
    "GLOBAL_MODELS",
    "BASELINES",
    "FALLBACK",
    "MSTL_SEASONS",
    "ModelPlan",
    "plan_model",
    "check_models",
    "check_candidates",
]

#: Statistical models the engine knows, in the order they are reported.
STAT_MODELS: tuple[str, ...] = ("AutoETS", "AutoARIMA", "AutoTheta", "MSTL", "SeasonalNaive", "Naive")
#: Global learned models (one model across the series of a frequency: forecasting.global_model).
GLOBAL_MODELS: tuple[str, ...] = ("LGBMGlobal",)
#: Baselines every backtest includes so a winner always has something to beat.
BASELINES: tuple[str, ...] = ("SeasonalNaive", "Naive")
#: The simpler model a series falls back to when a model cannot fit it.
FALLBACK: dict[str, str | None] = {
    "AutoETS": "Naive",
    "AutoARIMA": "AutoETS",
    "AutoTheta": "AutoETS",
    "MSTL": "AutoETS",
    "SeasonalNaive": "Naive",
    "Naive": None,
}
#: Seasonalities MSTL tries per frequency (those the series is long enough for are kept).
MSTL_SEASONS: dict[str, tuple[int, ...]] = {
    "h": (24, 168),
    "D": (7, 365),
    "B": (5, 261),
    "W-FRI": (52,),
    "W-SUN": (52,),
    "MS": (12,),
}

#: Fewest grid points for each model (statsforecast's ETS refuses n <= parameters + 4).
_MIN_POINTS: dict[str, int] = {
    "AutoETS": 7,
    "AutoARIMA": 10,
    "AutoTheta": 7,
    "MSTL": 7,
    "SeasonalNaive": 1,
    "Naive": 1,
}
#: statsforecast's ETS ignores seasons longer than this.
_MAX_ETS_SEASON = 24
#: AutoARIMA's seasonal search is impractically slow beyond this season length (52: minutes a series).
_MAX_ARIMA_SEASON = 24
#: Points beyond two full seasons needed before a seasonal fit is worth trying.
_SEASON_SLACK = 3


@dataclass(frozen=True)
class ModelPlan:
    """The model that will run on one series: name, season length(s), and why if changed."""

    name: str
    seasons: tuple[int, ...]
    why: str = ""

    @property
    def key(self) -> tuple[str, tuple[int, ...]]:
        return (self.name, self.seasons)


def check_models(models: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate requested model names; return them de-duplicated in the given order."""
    unknown = [m for m in models if m not in STAT_MODELS]
    if unknown or not models:
        raise FrameError(
            f"unknown or no statistical model(s) {unknown or list(models)}",
            fix=f"choose among {', '.join(STAT_MODELS)}",
        )
    return tuple(dict.fromkeys(models))


def check_candidates(models: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate backtest candidates: statistical and global model names, de-duplicated."""
    unknown = [m for m in models if m not in (*STAT_MODELS, *GLOBAL_MODELS)]
    if unknown or not models:
        raise FrameError(
            f"unknown or no candidate model(s) {unknown or list(models)}",
            fix=f"choose among {', '.join((*STAT_MODELS, *GLOBAL_MODELS))}",
        )
    return tuple(dict.fromkeys(models))


def plan_model(name: str, y: np.ndarray, frequency: str) -> ModelPlan:
    """What model ``name`` becomes on a series of grid values ``y`` at ``frequency``."""
    n = len(y)
    season = FREQUENCIES[frequency]
    if name != "Naive" and np.ptp(y) == 0.0:
        return ModelPlan("Naive", (1,), f"constant series (every y = {y[0]:g}); {name} not fitted; used Naive")
    if n < _MIN_POINTS[name]:
        simpler = FALLBACK[name] or "Naive"
        plan = plan_model(simpler, y, frequency)
        why = f"{n} grid points, {name} needs at least {_MIN_POINTS[name]}; used {plan.name}"
        return ModelPlan(plan.name, plan.seasons, why)
    long_enough = n >= 2 * season + _SEASON_SLACK
    if name == "Naive":
        return ModelPlan("Naive", (1,))
    if name == "SeasonalNaive":
        if n <= season:
            return ModelPlan("Naive", (1,), f"{n} grid points <= one season of {season}; used Naive")
        return ModelPlan("SeasonalNaive", (season,))
    if name == "AutoETS":
        if season > _MAX_ETS_SEASON:
            # statsforecast's ETS would drop this season anyway; say so by asking for none.
            return ModelPlan("AutoETS", (1,))
        if not long_enough:
            return ModelPlan("AutoETS", (1,), _short(n, season, "non-seasonal ETS"))
        return ModelPlan("AutoETS", (season,))
    if name == "AutoARIMA":
        if season > _MAX_ARIMA_SEASON or not long_enough:
            why = "" if season > _MAX_ARIMA_SEASON else _short(n, season, "non-seasonal ARIMA")
            return ModelPlan("AutoARIMA", (1,), why)
        return ModelPlan("AutoARIMA", (season,))
    if name == "AutoTheta":
        if not long_enough:
            return ModelPlan("AutoTheta", (1,), _short(n, season, "non-seasonal Theta"))
        return ModelPlan("AutoTheta", (season,))
    # MSTL: keep the cycles with at least two full periods (plus slack) of data.
    seasons = tuple(s for s in MSTL_SEASONS[frequency] if n >= 2 * s + _SEASON_SLACK)
    if not seasons:
        plan = plan_model("AutoETS", y, frequency)
        why = (
            f"{n} grid points < 2 seasons of {MSTL_SEASONS[frequency][0]} + {_SEASON_SLACK}; "
            f"MSTL needs one; used AutoETS"
        )
        return ModelPlan(plan.name, plan.seasons, why)
    dropped = [s for s in MSTL_SEASONS[frequency] if s not in seasons]
    why = f"MSTL season(s) {dropped} dropped: series shorter than two of them" if dropped else ""
    return ModelPlan("MSTL", seasons, why)


def _short(n: int, season: int, what: str) -> str:
    return f"{n} grid points < 2 seasons of {season} + {_SEASON_SLACK}; fitted {what}"
