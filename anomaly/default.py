"""The engine's default detection: which detectors run, and the alarm-score form of their ensemble.

:func:`detect` runs the series-only detectors by name (:data:`SERIES_DETECTORS`) and returns
their causally calibrated scores; the cycle adds the forecast-based detectors
(:mod:`anomaly.residuals`) before :func:`anomaly.combine`.

:func:`alarm_scores` is what ``ews evaluate nab`` scores, one causal chain per series:

1. :data:`ALARM_DETECTORS` (the default detectors plus ``subseq_knn``, the distance of the
   recent window to its nearest past windows), each calibrated with a generalised Pareto
   tail (``tail="gpd"``, floored at the empirical exceedance share): heavy-tailed series get
   less extreme probabilities for their routine bursts, so one threshold fits every series;
2. combined (maximum: one surprised detector is enough), then held (causal rolling maximum)
   over :func:`hold_span`, 5% of the series: NAB's labelled windows cover 10% of a file,
   about two windows per file, so an anomaly is a stretch of that order; a surprise stays
   visible while it lasts, which a ranking metric such as VUS-PR rewards;
3. :func:`anomaly.alarm_form` with ``span`` = 0.5% of the series (at least 20 steps) and
   ``level`` = the ``[risk]`` red default 0.998: an alarm onset keeps its score, repeats and
   the cool-down after an alarm rank below every onset, so a sustained anomaly raises one
   alarm rather than a train of them (NAB rewards the earliest detection in a window and
   charges every further one outside it).

The cool-down span and the level are the engine's existing alarm settings, the hold follows
NAB's window convention, the first 15% of a series (NAB's probation) is the calibration
warm-up; one setting for every series. docs/anomaly.md discloses how the NAB result moves
with the hold and the level (that corpus is also the test set).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from anomaly.calibration import combine
from anomaly.novelty import CHANGE_DETECTOR, LEVEL_DETECTOR, alarm_form, change_novelty, level_novelty
from anomaly.subsequence import PYOD_METHODS, subsequence_scores
from core.errors import FrameError
from core.frames import validate_series

__all__ = [
    "DEFAULT_DETECTORS",
    "SERIES_DETECTORS",
    "ALARM_DETECTORS",
    "ALARM_LEVEL",
    "detect",
    "alarm_scores",
    "alarm_span",
    "hold_span",
]

#: Detectors that need only the series; ``subseq_<m>`` for every PyOD method m.
SERIES_DETECTORS: tuple[str, ...] = (LEVEL_DETECTOR, CHANGE_DETECTOR, *(f"subseq_{m}" for m in PYOD_METHODS))
#: What the engine runs unless ``[scoring] detectors`` says otherwise.
DEFAULT_DETECTORS: tuple[str, ...] = (LEVEL_DETECTOR, CHANGE_DETECTOR, "subseq_pca")
#: What :func:`alarm_scores` (and so ``ews evaluate``) runs: the defaults plus the kNN
#: subsequence distance (about 2 s per 4,000-point series, so not in the cycle's default).
ALARM_DETECTORS: tuple[str, ...] = (*DEFAULT_DETECTORS, "subseq_knn")
#: Alarm level of :func:`alarm_scores`: the ``[risk]`` red default.
ALARM_LEVEL = 0.998
#: Tail model of the calibration inside :func:`alarm_scores`.
ALARM_TAIL = "gpd"


def alarm_span(n: int) -> int:
    """Cool-down span of :func:`alarm_scores`: 0.5% of a series of ``n`` points, at least 20."""
    return max(20, n // 200)


def hold_span(n: int) -> int:
    """Hold of :func:`alarm_scores`: 5% of a series of ``n`` points (at least 20)."""
    return max(20, n // 20)


def detect(
    series: pl.DataFrame,
    *,
    detectors: Sequence[str] = DEFAULT_DETECTORS,
    windows: Mapping[str, int] | None = None,
    seed: int = 0,
    min_history: int = 60,
    tail_quantile: float = 0.9,
    tail: str = "exponential",
) -> pl.DataFrame:
    """Calibrated scores of each named series detector, stacked (score contract).

    Series with fewer than ``min_history`` observations get no rows from any detector.
    ``tail`` is the tail model of the causal calibration (:func:`anomaly.tail_probability`).
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
            parts.append(level_novelty(frame, tail_quantile=tail_quantile, tail=tail))
        elif name == CHANGE_DETECTOR:
            parts.append(change_novelty(frame, tail_quantile=tail_quantile, tail=tail))
        else:
            parts.append(
                subsequence_scores(
                    frame,
                    method=name.removeprefix("subseq_"),
                    windows=windows,
                    seed=seed,
                    min_history=min_history,
                    tail_quantile=tail_quantile,
                    tail=tail,
                )
            )
    return pl.concat(parts, how="vertical_relaxed")


def alarm_scores(
    series: pl.DataFrame,
    *,
    detectors: Sequence[str] = ALARM_DETECTORS,
    windows: Mapping[str, int] | None = None,
    seed: int = 0,
    level: float = ALARM_LEVEL,
) -> pl.DataFrame:
    """Ensemble score per point in alarm-onset form (module docstring); columns ``unique_id, ds, score``."""
    scores = detect(series, detectors=detectors, windows=windows, seed=seed, min_history=1, tail=ALARM_TAIL)
    ensemble = combine(scores).sort("unique_id", "ds")
    parts = []
    for _, part in ensemble.group_by("unique_id", maintain_order=True):
        held = part.with_columns(pl.col("score").rolling_max(hold_span(part.height), min_samples=1))
        parts.append(alarm_form(held, span=alarm_span(part.height), level=level))
    if not parts:
        return ensemble.select("unique_id", "ds", "score")
    return pl.concat(parts).select("unique_id", "ds", "score").sort("unique_id", "ds")
