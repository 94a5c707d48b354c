"""The engine's default detection: which detectors run, and the alarm-score form of their ensemble.

:func:`detect` runs the series-only detectors by name (:data:`SERIES_DETECTORS`) and returns
their causally calibrated scores; the cycle adds the forecast-based detectors
(:mod:`anomaly.residuals`) before :func:`anomaly.combine`. :func:`alarm_scores` is what
``ews evaluate nab`` scores: the default detectors, combined (maximum), then
:func:`anomaly.suppress_repeats` over ``0.5%`` of the series (at least 20 steps), so a
sustained anomaly raises one alarm rather than a train of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from anomaly.calibration import combine
from anomaly.novelty import CHANGE_DETECTOR, LEVEL_DETECTOR, change_novelty, level_novelty, suppress_repeats
from anomaly.subsequence import PYOD_METHODS, subsequence_scores
from core.errors import FrameError
from core.frames import validate_series

__all__ = ["DEFAULT_DETECTORS", "SERIES_DETECTORS", "detect", "alarm_scores"]

#: Detectors that need only the series; ``subseq_<m>`` for every PyOD method m.
SERIES_DETECTORS: tuple[str, ...] = (LEVEL_DETECTOR, CHANGE_DETECTOR, *(f"subseq_{m}" for m in PYOD_METHODS))
#: What the engine runs unless ``[scoring] detectors`` says otherwise.
DEFAULT_DETECTORS: tuple[str, ...] = (LEVEL_DETECTOR, CHANGE_DETECTOR, "subseq_pca")
#: Factor applied to a score that does not beat the previous span (see suppress_repeats).
ALARM_DAMPING = 0.5


def detect(
    series: pl.DataFrame,
    *,
    detectors: Sequence[str] = DEFAULT_DETECTORS,
    windows: Mapping[str, int] | None = None,
    seed: int = 0,
    min_history: int = 60,
    tail_quantile: float = 0.9,
) -> pl.DataFrame:
    """Calibrated scores of each named series detector, stacked (score contract).

    Series with fewer than ``min_history`` observations get no rows from any detector.
    """
    unknown = [d for d in detectors if d not in SERIES_DETECTORS]
    if unknown:
        raise FrameError(f"unknown detector(s) {unknown}", fix=f"choose among {list(SERIES_DETECTORS)}")
    frame = validate_series(series)
    counts = frame.group_by("unique_id").len()
    keep = counts.filter(pl.col("len") >= min_history).get_column("unique_id")
    frame = frame.filter(pl.col("unique_id").is_in(keep.implode()))
    parts = []
    for name in detectors:
        if name == LEVEL_DETECTOR:
            parts.append(level_novelty(frame, tail_quantile=tail_quantile))
        elif name == CHANGE_DETECTOR:
            parts.append(change_novelty(frame, tail_quantile=tail_quantile))
        else:
            parts.append(subsequence_scores(frame, method=name.removeprefix("subseq_"), windows=windows,
                                            seed=seed, min_history=min_history, tail_quantile=tail_quantile))
    return pl.concat(parts, how="vertical_relaxed")


def alarm_scores(series: pl.DataFrame, *, detectors: Sequence[str] = DEFAULT_DETECTORS,
                 windows: Mapping[str, int] | None = None, seed: int = 0,
                 damping: float = ALARM_DAMPING) -> pl.DataFrame:
    """Ensemble score per point in alarm-onset form (module docstring); columns ``unique_id, ds, score``."""
    scores = detect(series, detectors=detectors, windows=windows, seed=seed, min_history=1)
    ensemble = combine(scores)
    sizes = validate_series(series).group_by("unique_id").len()
    parts = []
    for (uid,), part in ensemble.group_by("unique_id", maintain_order=True):
        n = int(sizes.filter(pl.col("unique_id") == uid).get_column("len").item())
        parts.append(suppress_repeats(part, span=max(20, n // 200), damping=damping))
    if not parts:
        return ensemble.select("unique_id", "ds", "score")
    return pl.concat(parts).select("unique_id", "ds", "score").sort("unique_id", "ds")
