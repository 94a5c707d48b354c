"""Point novelty detectors: how far a value (or its step) lies from its own recent past.

Both are causal: the score at ``t`` uses observations up to ``t`` only, so a replay scores
as a live run would have. Out: the score contract of :mod:`core.frames`, with ``score`` from
:func:`anomaly.calibration.calibrate_causal`.

- :func:`level_novelty` (detector ``level``): ``|y_t - median| / (1.4826 MAD)`` over the
  ``reference`` observations before ``t`` (the standard deviation when the MAD is 0).
- :func:`change_novelty` (detector ``change``): the same for the step ``y_t - y_{t-1}``.
- :func:`suppress_repeats`: alarm-onset form of a score: a point keeps its score only when it
  beats every score of the ``span`` steps before it, otherwise it is damped. The decision
  layer of the cycle uses k-of-n persistence and cool-down instead; this is the score-level
  equivalent for point-alarm benchmarks (NAB), where repeated alarms cost false positives.
- :func:`alarm_form`: the alarm layer of :func:`anomaly.alarm_scores`: a point at or above an
  alarm ``level`` that beats the previous ``span`` scores and comes more than ``span`` steps
  after the previous alarm keeps its score (an alarm onset); every other point is scaled by
  ``level`` so it ranks below every onset but keeps its order among the rest (a ranking
  metric such as VUS-PR still sees the whole anomalous stretch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import numpy as np
import polars as pl

from anomaly.calibration import calibrate_causal, raw_score_frame
from core.errors import FrameError
from core.frames import SCORE_COLUMNS, empty_scores, validate_series

__all__ = [
    "LEVEL_DETECTOR",
    "CHANGE_DETECTOR",
    "level_novelty",
    "change_novelty",
    "robust_deviation",
    "suppress_repeats",
    "alarm_form",
    "reference_length",
]

LEVEL_DETECTOR = "level"
CHANGE_DETECTOR = "change"
_MAD_TO_SD = 1.4826
_MIN_REFERENCE = 5


def reference_length(n: int) -> int:
    """Default reference span: 5% of the series, at least 100 observations."""
    return max(100, n // 20)


def robust_deviation(y: np.ndarray, reference: int) -> np.ndarray:
    """``|y_t - median(prev)| / scale(prev)`` over the ``reference`` points before ``t``.

    The first points (fewer than 5 before them) use the statistics of the earliest full
    span, so every point gets a finite value.
    """
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return y.copy()
    s = pl.Series(y)
    median = _lagged(s.rolling_median(reference, min_samples=_MIN_REFERENCE))
    mad = _lagged(pl.Series(np.abs(y - median)).rolling_median(reference, min_samples=_MIN_REFERENCE))
    sd = _lagged(s.rolling_std(reference, min_samples=_MIN_REFERENCE))
    scale = np.where(mad > 0, _MAD_TO_SD * mad, sd)
    # Flat stretches (MAD and SD both 0) would divide by zero; any change from them is news.
    scale = np.maximum(np.nan_to_num(scale, nan=0.0), 1e-6 * (np.abs(median) + 1.0))
    return np.abs(y - median) / scale


def _lagged(rolled: pl.Series) -> np.ndarray:
    """Shift by one (the statistics of the points *before* t) and back-fill the start."""
    out = rolled.shift(1).fill_null(strategy="backward").fill_null(0.0).to_numpy()
    return np.asarray(out, dtype=np.float64)


def level_novelty(
    series: pl.DataFrame,
    *,
    reference: int | None = None,
    blocks: int = 40,
    tail_quantile: float = 0.9,
    tail: str = "exponential",
    since: Mapping[str, datetime] | None = None,
) -> pl.DataFrame:
    """Robust distance of each value from its recent past (see the module docstring).

    ``since``: per series, the first ``ds`` returned (:func:`anomaly.calibrate_causal`).
    """
    return _per_series(
        series, LEVEL_DETECTOR, lambda y, r: robust_deviation(y, r), reference, blocks, tail_quantile, tail, since
    )


def change_novelty(
    series: pl.DataFrame,
    *,
    reference: int | None = None,
    blocks: int = 40,
    tail_quantile: float = 0.9,
    tail: str = "exponential",
    since: Mapping[str, datetime] | None = None,
) -> pl.DataFrame:
    """Robust size of each step ``y_t - y_{t-1}`` against recent steps (``since``: as for level)."""

    def step(y: np.ndarray, r: int) -> np.ndarray:
        return robust_deviation(np.diff(y, prepend=y[0]), r)

    return _per_series(series, CHANGE_DETECTOR, step, reference, blocks, tail_quantile, tail, since)


def _per_series(
    series: pl.DataFrame,
    detector: str,
    raw_fn: Callable[[np.ndarray, int], np.ndarray],
    reference: int | None,
    blocks: int,
    tail_quantile: float,
    tail: str = "exponential",
    since: Mapping[str, datetime] | None = None,
) -> pl.DataFrame:
    frame = validate_series(series)
    if reference is not None and reference < _MIN_REFERENCE:
        raise FrameError(
            f"reference={reference} is too short to estimate a spread",
            fix=f"use at least {_MIN_REFERENCE} observations (default: 5% of the series)",
        )
    keys: list[tuple[str, str]] = []
    stamps: list[pl.Series] = []
    raw: list[np.ndarray] = []
    for (uid,), part in frame.partition_by("unique_id", maintain_order=True, as_dict=True).items():
        y = part.get_column("y").to_numpy()
        keys.append((str(uid), detector))
        stamps.append(part.get_column("ds"))
        raw.append(raw_fn(y, reference or reference_length(len(y))))
    if not keys:
        return empty_scores()
    return calibrate_causal(
        raw_score_frame(keys, stamps, raw), blocks=blocks, tail_quantile=tail_quantile, tail=tail, since=since
    ).select(SCORE_COLUMNS)


def suppress_repeats(scores: pl.DataFrame, *, span: int, damping: float = 0.5) -> pl.DataFrame:
    """Damp every score that does not beat the previous ``span`` scores of its series.

    Per ``(unique_id, detector)`` in time order: ``score_t`` is kept when it is higher than
    all of ``score_{t-span} .. score_{t-1}``, else multiplied by ``damping``. Threshold-free:
    for any threshold, the alarms that remain are onsets (or escalations).
    """
    if span < 1 or not 0.0 <= damping <= 1.0:
        raise FrameError(
            f"span={span}, damping={damping}: need span >= 1 and 0 <= damping <= 1",
            fix="e.g. span = 0.5% of the series, damping = 0.5",
        )
    frame = scores.sort("unique_id", "detector", "ds")
    previous = pl.col("score").rolling_max(span, min_samples=1).shift(1).over("unique_id", "detector").fill_null(0.0)
    return frame.with_columns(
        pl.when(pl.col("score") > previous).then(pl.col("score")).otherwise(pl.col("score") * damping).alias("score")
    )


def alarm_form(scores: pl.DataFrame, *, span: int, level: float) -> pl.DataFrame:
    """Keep alarm onsets at or above ``level``, scale every other score by ``level``.

    Per ``(unique_id, detector)`` in time order (scores in [0, 1]): ``t`` is an onset when
    ``score_t >= level``, ``score_t`` beats all of ``score_{t-span} .. score_{t-1}``, and no
    onset lies in ``t-span .. t-1`` (a cool-down of ``span`` steps after each alarm). Onsets
    keep their score; the rest become ``level * score`` (below every onset, same order).
    Causal: whether ``t`` is an onset depends on scores up to ``t`` only.
    """
    if span < 1 or not 0.0 < level < 1.0:
        raise FrameError(
            f"span={span}, level={level}: need span >= 1 and 0 < level < 1",
            fix="e.g. span = 0.5% of the series, level = the [risk] red threshold 0.998",
        )
    frame = scores.sort("unique_id", "detector", "ds")
    parts = []
    for _, part in frame.group_by("unique_id", "detector", maintain_order=True):
        score = part.get_column("score").to_numpy().astype(np.float64)
        previous = pl.Series(score).rolling_max(span, min_samples=1).shift(1).fill_null(0.0).to_numpy()
        out = score * level
        last = -span - 1
        for i in np.flatnonzero((score >= level) & (score > previous)):
            if i - last > span:
                out[i] = score[i]
                last = int(i)
        parts.append(part.with_columns(pl.Series("score", out)))
    if not parts:
        return frame
    return pl.concat(parts)
