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
  of every observation (:func:`return_level_scores`);
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
  (:func:`stress_composite`) and :func:`drawdown`.

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
from hazards.floods import RETURN_LEVEL_DETECTOR, return_level_scores, return_levels
from hazards.geodetic import (
    detect_steps,
    find_change_points,
    gnss_offsets,
    link_offsets,
    ngl_step_radius_km,
    segment_means,
    velocity_change,
)
from hazards.market_stress import causal_ecdf, drawdown, stress_composite

__all__ = [
    "RETURN_LEVEL_DETECTOR",
    "SEISMIC_RATE_DETECTOR",
    "BValueEstimate",
    "ReasenbergJones",
    "aftershock_forecast",
    "aftershock_level",
    "b_value",
    "background_rate_level",
    "cap_without_mainshock",
    "causal_ecdf",
    "completeness_magnitude",
    "detect_steps",
    "drawdown",
    "estimate_b",
    "evaluate_aftershock_forecasts",
    "find_change_points",
    "find_mainshock",
    "gnss_offsets",
    "link_offsets",
    "mc_b_stability",
    "mc_max_curvature",
    "ngl_step_radius_km",
    "return_level_scores",
    "return_levels",
    "sea_level_anomaly",
    "segment_means",
    "seismic_indicators",
    "seismic_rate_scores",
    "stress_composite",
    "sustained_steps",
    "velocity_change",
]
