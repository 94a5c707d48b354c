"""Anomaly library: polars frames in, polars score and grade frames out.

No database, no network, no clock, no file I/O. The steps are separate and small
(score -> calibrate -> combine -> grade), as in Merlion:

- detectors (:mod:`anomaly.detectors`): :func:`subsequence_iforest`, :func:`interval_exceedance`;
- :func:`calibrate` and :func:`combine` (:mod:`anomaly.calibration`): one [0, 1] scale and
  one ensemble;
- :func:`grade` (:mod:`anomaly.grading`): warning levels with k-of-n persistence.

Score frames follow :mod:`core.frames`: ``unique_id, ds, detector, raw_score, score``.
"""

from anomaly.calibration import ENSEMBLE_DETECTOR, calibrate, combine
from anomaly.detectors import (
    IFOREST_DETECTOR,
    INTERVAL_DETECTOR,
    interval_exceedance,
    subsequence_iforest,
)
from anomaly.grading import grade

__all__ = [
    "ENSEMBLE_DETECTOR",
    "IFOREST_DETECTOR",
    "INTERVAL_DETECTOR",
    "calibrate",
    "combine",
    "grade",
    "interval_exceedance",
    "subsequence_iforest",
]
