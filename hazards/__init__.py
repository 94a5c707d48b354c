"""Hazard library: field indicators and models, polars frames in, polars frames out.

No database, no network, no clock, no file I/O; imports only :mod:`core` (and third-party
libraries), like :mod:`forecasting` and :mod:`anomaly` beside it. :mod:`anomaly` holds the
general detectors, calibration and the rarity grade; this room holds what belongs to one
field. One module per field:

- :mod:`hazards.earthquakes`: completeness magnitude, b-value, the daily rate test against
  the background (:func:`seismic_indicators`) and its scores (:func:`seismic_rate_scores`);
- :mod:`hazards.floods`: Gumbel return levels (:func:`return_levels`) and the return period
  of every observation (:func:`return_level_scores`); water-year maxima
  (:func:`annual_maxima`), the 2/5/20-year flood thresholds by GEV or Gumbel
  (:func:`return_period_thresholds`), the probability that a forecast exceeds them within the
  horizon (:func:`return_period_exceedance`) and its warning level on the EFAS/GloFAS-style
  ladder (:func:`flood_levels`); :mod:`hazards.flood_skill` scores such forecasts on a
  gauge's record (:func:`flood_warning_skill`: events, hits, false alarms, Brier score);
- :mod:`hazards.geodetic`: velocity changes (:func:`velocity_change`) and steps
  (:func:`detect_steps`, on GNSS displacement and tide-gauge sea level alike, with the binary
  segmentation :func:`find_change_points` under it);
- :mod:`hazards.market_stress`: the causal ECDF, the CISS-style composite
  (:func:`stress_composite`) and :func:`drawdown`.

The hazard issues add here: aftershock probabilities (earthquakes), exceedance of flood
thresholds (floods), a coastal module (seasonal sea-level anomaly; its steps come from
:func:`detect_steps`), and market-stress signals. A fitted field model is a small class with
fitted state and a documented probability output. Score frames follow :mod:`core.frames`:
``unique_id, ds, detector, raw_score, score``.
"""

from hazards.earthquakes import (
    SEISMIC_RATE_DETECTOR,
    b_value,
    completeness_magnitude,
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
from hazards.floods import (
    DEFAULT_FLOOD_LADDER,
    RETURN_LEVEL_DETECTOR,
    RETURN_PERIODS,
    FloodRung,
    annual_maxima,
    exceedance_thresholds,
    flood_levels,
    return_level_scores,
    return_levels,
    return_period_exceedance,
    return_period_thresholds,
    water_year_start,
)
from hazards.geodetic import detect_steps, find_change_points, segment_means, velocity_change
from hazards.market_stress import causal_ecdf, drawdown, stress_composite

__all__ = [
    "DEFAULT_FLOOD_LADDER",
    "FloodRung",
    "FloodSkill",
    "RETURN_LEVEL_DETECTOR",
    "RETURN_PERIODS",
    "SEISMIC_RATE_DETECTOR",
    "annual_maxima",
    "b_value",
    "causal_ecdf",
    "completeness_magnitude",
    "detect_steps",
    "drawdown",
    "exceedance_base_rate",
    "exceedance_outcomes",
    "exceedance_thresholds",
    "find_change_points",
    "flood_events",
    "flood_levels",
    "flood_warning_skill",
    "return_level_scores",
    "return_levels",
    "return_period_exceedance",
    "return_period_thresholds",
    "seismic_indicators",
    "seismic_rate_scores",
    "segment_means",
    "stress_composite",
    "velocity_change",
    "water_year_start",
]
