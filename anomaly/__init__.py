"""Anomaly library: polars frames in, polars score and grade frames out.

No database, no network, no clock, no file I/O. The steps are separate and small
(score -> calibrate -> combine -> grade), as in Merlion:

- detectors (raw scores, higher = more abnormal): :func:`level_novelty`,
  :func:`change_novelty` (:mod:`anomaly.novelty`); PyOD over sliding subsequences,
  :func:`subsequence_scores` (:mod:`anomaly.subsequence`, and the older
  :func:`subsequence_iforest`; :func:`detect_resumable`, the cycle's form with a fixed refit
  cadence and stored fits, :mod:`anomaly.incremental`); forecast residuals :func:`forecast_surprise` and
  :func:`interval_exceedance`, and the forecasting exceedance probabilities
  :func:`exceedance_scores` (:mod:`anomaly.residuals`); level and trend shifts
  :func:`shift_scores` (:mod:`anomaly.changepoints`);
- field indicators (earthquakes, floods, geodetic steps, market stress) live in :mod:`hazards`;
- :func:`calibrate`, :func:`calibrate_causal` and :func:`combine`
  (:mod:`anomaly.calibration`): one [0, 1] scale and one ensemble;
- :func:`grade` and :func:`grade_regions` (:mod:`anomaly.grading`): warning levels with k-of-n
  persistence, cool-down and evidence; :func:`cap_rarity_levels` (:mod:`anomaly.corroboration`):
  rarity grades capped (default yellow) unless an independent series in the same region agrees;
- :mod:`anomaly.evaluation`: NAB, range-based PR / VUS-PR, and event skill.

Score frames follow :mod:`core.frames`: ``unique_id, ds, detector, raw_score, score``.
"""

from anomaly.calibration import ENSEMBLE_DETECTOR, calibrate, calibrate_causal, combine, tail_probability
from anomaly.changepoints import shift_scores
from anomaly.corroboration import cap_rarity_levels
from anomaly.default import ALARM_DETECTORS, ALARM_LEVEL, DEFAULT_DETECTORS, SERIES_DETECTORS, alarm_scores, detect
from anomaly.detectors import (
    IFOREST_DETECTOR,
    INTERVAL_DETECTOR,
    interval_exceedance,
    subsequence_iforest,
)
from anomaly.grading import grade, grade_regions
from anomaly.incremental import Detection, Resume, detect_resumable, subsequence_detectors
from anomaly.novelty import alarm_form, change_novelty, level_novelty, suppress_repeats
from anomaly.residuals import exceedance_scores, forecast_surprise
from anomaly.subsequence import (
    PYOD_METHODS,
    SubsequenceFit,
    cadence_basis,
    cadence_warmup,
    default_window,
    dominant_period,
    subsequence_scores,
)

__all__ = [
    "ALARM_DETECTORS",
    "Detection",
    "Resume",
    "SubsequenceFit",
    "cadence_basis",
    "cadence_warmup",
    "detect_resumable",
    "subsequence_detectors",
    "ALARM_LEVEL",
    "DEFAULT_DETECTORS",
    "ENSEMBLE_DETECTOR",
    "IFOREST_DETECTOR",
    "INTERVAL_DETECTOR",
    "PYOD_METHODS",
    "SERIES_DETECTORS",
    "alarm_form",
    "alarm_scores",
    "calibrate",
    "cap_rarity_levels",
    "calibrate_causal",
    "change_novelty",
    "combine",
    "default_window",
    "detect",
    "dominant_period",
    "exceedance_scores",
    "forecast_surprise",
    "grade",
    "grade_regions",
    "interval_exceedance",
    "level_novelty",
    "shift_scores",
    "subsequence_iforest",
    "subsequence_scores",
    "suppress_repeats",
    "tail_probability",
]
