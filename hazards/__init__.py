"""Hazard library: field indicators and models, polars frames in, polars frames out.

No database, no network, no clock, no file I/O; imports only :mod:`core` (and third-party
libraries), like :mod:`forecasting` and :mod:`anomaly` beside it. :mod:`anomaly` holds the
general detectors, calibration and the rarity grade; this room holds what belongs to one
field. One module per field:

- :mod:`hazards.earthquakes`: completeness magnitude (:func:`mc_max_curvature`,
  :func:`mc_b_stability`), b-value with its uncertainty (:func:`estimate_b`), the daily rate
  test against the background (:func:`seismic_indicators`) and its scores
  (:func:`seismic_rate_scores`);
- :mod:`hazards.aftershocks`: Reasenberg-Jones aftershock probabilities with Page et al.
  (2016) generic parameters and a Bayesian sequence update (:class:`ReasenbergJones`,
  :func:`find_mainshock`, :func:`aftershock_forecast`), their warning level
  (:func:`aftershock_level`) and the blue cap without a mainshock
  (:func:`background_rate_level`, :func:`cap_without_mainshock`);
  :mod:`hazards.aftershock_evaluation` measures them on history the CSEP way
  (:func:`evaluate_aftershock_forecasts`);
- :mod:`hazards.floods`: Gumbel return levels (:func:`return_levels`) and the return period
  of every observation (:func:`return_level_scores`); water-year maxima
  (:func:`annual_maxima`), the 2/5/20-year flood thresholds by GEV or Gumbel
  (:func:`return_period_thresholds`), the probability that a forecast exceeds them within the
  horizon (:func:`return_period_exceedance`) and its warning level on the EFAS/GloFAS-style
  ladder (:func:`flood_levels`, or :func:`ladder_levels` on any model's probabilities);
  :mod:`hazards.flood_state` is the model the cycle uses for rivers: the probability of
  passing each level within the next days given today's flow, rise and season, a logistic
  regression fitted on the gauge's own record (:class:`FloodStateModel`);
  :mod:`hazards.flood_skill` scores such forecasts on a
  gauge's record (:func:`flood_warning_skill`: events, hits, false alarms, Brier score);
- :mod:`hazards.geodetic`: velocity changes (:func:`velocity_change`) and steps
  (:func:`detect_steps`, on GNSS displacement and tide-gauge sea level alike, with the binary
  segmentation :func:`find_change_points` under it); GNSS offsets sized against the
  station's noise (:func:`gnss_offsets`) and linked to catalog earthquakes
  (:func:`link_offsets`, radius :func:`ngl_step_radius_km`);
- :mod:`hazards.coastal`: tide gauges, the causal anomaly against the seasonal cycle and the
  trend (:func:`sea_level_anomaly`) and sustained steps such as co-seismic subsidence
  (:func:`sustained_steps`);
- :mod:`hazards.offsets`: the offset detector and noise model (white + flicker + random walk)
  those two share;
- :mod:`hazards.market_stress`: the causal ECDF, the CISS-style composite
  (:func:`stress_composite`, with each segment's contribution), :func:`drawdown` and the bear
  markets of a price series (:func:`drawdown_events`, the 20 % rule);
  :mod:`hazards.market_indicators` builds its weekly inputs from stored series, each as it
  was known on the date (:class:`IndicatorSpec`, :func:`build_indicators`,
  :func:`market_composite`); :mod:`hazards.market_signals` is the KLR signals approach on
  them (:func:`crisis_labels`, :func:`klr_threshold`, :class:`MarketSignals`: thresholds,
  signal share, levels and their crisis probability; :func:`signal_skill`, :func:`auroc`).

The hazard issues add here: aftershock probabilities (earthquakes), exceedance of flood
thresholds (floods), and market-stress signals. A fitted field model is a small class with
fitted state and a documented probability output. Score frames follow :mod:`core.frames`:
``unique_id, ds, detector, raw_score, score``.
"""

from hazards.aftershock_evaluation import evaluate_aftershock_forecasts
from hazards.aftershocks import (
    ReasenbergJones,
    aftershock_forecast,
    aftershock_level,
    background_rate_level,
    cap_without_mainshock,
    find_mainshock,
)
from hazards.coastal import sea_level_anomaly, sustained_steps
from hazards.earthquakes import (
    SEISMIC_RATE_DETECTOR,
    BValueEstimate,
    b_value,
    completeness_magnitude,
    estimate_b,
    mc_b_stability,
    mc_max_curvature,
    seismic_indicators,
    seismic_rate_scores,
)
from hazards.flood_skill import (
    FloodSkill,
    exceedance_base_rate,
    exceedance_outcomes,
    flood_events,
    flood_warning_skill,
)
from hazards.flood_state import (
    DEFAULT_LEVEL_MULTIPLES,
    DEFAULT_STATE_FLOOD_LADDER,
    STATE_MODEL_NAME,
    WETNESS_FEATURES,
    WETNESS_VARIANTS,
    FloodStateModel,
    select_wetness,
)
from hazards.floods import (
    DEFAULT_FLOOD_LADDER,
    DEFAULT_OBSERVED_RUNGS,
    RETURN_LEVEL_DETECTOR,
    RETURN_PERIODS,
    FloodRung,
    annual_maxima,
    exceedance_thresholds,
    flood_levels,
    ladder_levels,
    observed_rungs,
    return_level_scores,
    return_levels,
    return_period_exceedance,
    return_period_thresholds,
    water_year_start,
)
from hazards.geodetic import (
    detect_steps,
    find_change_points,
    gnss_offsets,
    link_offsets,
    ngl_step_radius_km,
    segment_means,
    velocity_change,
)
from hazards.market_indicators import IndicatorSpec, build_indicators, market_composite
from hazards.market_signals import (
    MarketSignals,
    SignalFit,
    auroc,
    crisis_episodes,
    crisis_labels,
    klr_threshold,
    signal_skill,
)
from hazards.market_stress import causal_ecdf, drawdown, drawdown_events, stress_composite

__all__ = [
    "BValueEstimate",
    "DEFAULT_FLOOD_LADDER",
    "FloodRung",
    "FloodSkill",
    "RETURN_LEVEL_DETECTOR",
    "RETURN_PERIODS",
    "ReasenbergJones",
    "SEISMIC_RATE_DETECTOR",
    "aftershock_forecast",
    "aftershock_level",
    "annual_maxima",
    "b_value",
    "background_rate_level",
    "cap_without_mainshock",
    "causal_ecdf",
    "completeness_magnitude",
    "detect_steps",
    "drawdown",
    "drawdown_events",
    "IndicatorSpec",
    "build_indicators",
    "market_composite",
    "MarketSignals",
    "SignalFit",
    "auroc",
    "crisis_episodes",
    "crisis_labels",
    "klr_threshold",
    "signal_skill",
    "estimate_b",
    "evaluate_aftershock_forecasts",
    "exceedance_base_rate",
    "exceedance_outcomes",
    "exceedance_thresholds",
    "find_change_points",
    "find_mainshock",
    "flood_events",
    "flood_levels",
    "ladder_levels",
    "FloodStateModel",
    "DEFAULT_LEVEL_MULTIPLES",
    "DEFAULT_STATE_FLOOD_LADDER",
    "STATE_MODEL_NAME",
    "WETNESS_FEATURES",
    "WETNESS_VARIANTS",
    "select_wetness",
    "DEFAULT_OBSERVED_RUNGS",
    "observed_rungs",
    "flood_warning_skill",
    "gnss_offsets",
    "link_offsets",
    "mc_b_stability",
    "mc_max_curvature",
    "ngl_step_radius_km",
    "return_level_scores",
    "return_levels",
    "return_period_exceedance",
    "return_period_thresholds",
    "sea_level_anomaly",
    "segment_means",
    "seismic_indicators",
    "seismic_rate_scores",
    "stress_composite",
    "sustained_steps",
    "velocity_change",
    "water_year_start",
]
