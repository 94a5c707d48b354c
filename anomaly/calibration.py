"""Calibrate raw detector scores onto one [0, 1] scale and combine detectors.

- :func:`calibrate`: per ``(unique_id, detector)``, ``score`` = the empirical CDF of
  ``raw_score`` against that series' own scores: ``mid-rank / (n + 1)``, where tied raw
  scores share their average rank. A score of 0.99 then means "more abnormal than 99% of
  this series' history under this detector", whatever the detector's raw units, so one
  threshold serves every detector and series. Scores lie strictly inside (0, 1): the
  highest reachable score is ``n / (n + 1)``, so a threshold ``t`` can only be reached by a
  series with at least ``t / (1 - t)`` scores (99 for 0.99, 499 for 0.998, 1999 for 0.9995).
  The ECDF is taken over every score passed in (history and new points alike); pass the
  stored history together with new raw scores so new points are ranked against it.
- :func:`calibrate_causal` (and its array form :func:`tail_probability`): the score of a
  point is ranked only against the *earlier* raw scores of its series, as a deployed detector
  sees them, and above the ``tail_quantile`` of that history an exponential tail (peaks over
  threshold, a generalised Pareto tail with shape 0, as in SPOT, Siffer et al. 2017) is
  fitted to the exceedances, so a value beyond anything seen before still gets a graded,
  finite score instead of saturating at ``n / (n + 1)``. The history is refreshed in
  ``blocks`` (train window grows, recalibration cadence fixed); the first ``warmup`` points
  are ranked in-sample. This is the scale the cycle and ``ews evaluate`` use.
  ``tail="gpd"`` fits a generalised Pareto tail whose shape is estimated too (method of
  moments, shape clipped to [-0.5, 0.5]): a heavy-tailed detector (bursty counts, tweet
  volumes) then gets less extreme probabilities for its routine large values than the
  exponential tail gives it, which matters when one threshold serves many series
  (:func:`anomaly.alarm_scores`, ``ews evaluate nab``); and the fitted tail is floored at
  the empirical share of earlier scores at least as high, so a recurring large value (a
  daily step) is never called rarer than the history shows it to be.
- :func:`combine`: the ``ensemble`` detector, per ``(unique_id, ds)`` the maximum of the
  calibrated scores, with the detector that gave it in ``driver``.

Both take and return the score frame of :mod:`core.frames` (``unique_id, ds, detector,
raw_score, score``); extra columns are kept by :func:`calibrate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import polars as pl

from core.errors import FrameError
from core.frames import SCORE_COLUMNS, validate_scores

__all__ = [
    "ENSEMBLE_DETECTOR",
    "TAIL_MODELS",
    "calibrate",
    "calibrate_causal",
    "combine",
    "raw_score_frame",
    "tail_probability",
]

ENSEMBLE_DETECTOR = "ensemble"

_RAW_COLUMNS = ("unique_id", "ds", "detector", "raw_score")
_RAW_SCHEMA = pl.Schema(
    {"unique_id": pl.String(), "ds": pl.Datetime("us"), "detector": pl.String(), "raw_score": pl.Float64()}
)


def calibrate(scores: pl.DataFrame) -> pl.DataFrame:
    """Replace ``score`` by the per-(series, detector) empirical CDF of ``raw_score``.

    Needs ``unique_id, ds, detector, raw_score`` (an existing ``score`` is recomputed).
    Deterministic: ranks are exact and ties share the average rank. Output is sorted by
    ``unique_id, detector, ds``.
    """
    frame = _raw_frame(scores)
    group = ["unique_id", "detector"]
    calibrated = frame.with_columns(
        (pl.col("raw_score").rank("average").over(group) / (pl.len().over(group) + 1)).alias("score")
    )
    extra = [c for c in calibrated.columns if c not in SCORE_COLUMNS]
    return calibrated.select(*SCORE_COLUMNS, *extra).sort("unique_id", "detector", "ds")


#: Tail models of :func:`tail_probability`.
TAIL_MODELS: tuple[str, ...] = ("exponential", "gpd")
_GPD_MIN_EXCESSES = 10
_GPD_SHAPE_BOUNDS = (-0.5, 0.5)


def tail_probability(
    raw: np.ndarray,
    *,
    warmup: int | None = None,
    blocks: int = 40,
    tail_quantile: float = 0.9,
    tail: str = "exponential",
    start: int = 0,
) -> np.ndarray:
    """Causal upper-tail probability of each raw score against the scores before it.

    ``p[t]`` = share of earlier scores at least as high, below the ``tail_quantile`` of the
    history; above it ``(k / m) * exp(-(x - u) / mean_excess)`` (exponential tail over the
    threshold ``u``; ``k`` exceedances among ``m`` points). History is taken at the start of
    each of ``blocks`` equal blocks after ``warmup`` (default: 15% of the points, at most
    750, at least 20), whose own points are ranked in-sample. Returns values in (0, 1].
    ``tail="gpd"``: generalised Pareto tail with a moment-estimated shape (exponential when
    fewer than 10 exceedances or no spread), never below the empirical share of earlier
    scores at least as high. ``start``: return the probabilities of ``raw[start:]`` only
    (the same values as the whole call gives there; blocks ending before it are skipped).
    """
    raw = np.asarray(raw, dtype=np.float64)
    n = len(raw)
    if n == 0:
        return raw.copy()
    if not np.all(np.isfinite(raw)):
        raise FrameError(
            f"{int(np.sum(~np.isfinite(raw)))} raw score(s) are NaN or infinite",
            fix="drop unscored rows before calibrating",
        )
    if not 0.5 <= tail_quantile < 1.0:
        raise FrameError(f"tail_quantile={tail_quantile} must lie in [0.5, 1)", fix="use 0.9 (the [scoring] default)")
    if tail not in TAIL_MODELS:
        raise FrameError(f"unknown tail model {tail!r}", fix=f"use one of {list(TAIL_MODELS)}")
    warm = warmup if warmup is not None else int(min(max(0.15 * n, 20), 750))
    warm = min(max(warm, 1), n)
    start = min(max(start, 0), n)
    out = np.empty(n)
    if start < warm:
        history = np.sort(raw[:warm])
        out[:warm] = 1.0 - (np.searchsorted(history, raw[:warm], side="left")) / (warm + 1.0)
    edges = np.unique(np.linspace(warm, n, max(blocks, 1) + 1).astype(int))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= start:
            continue
        history = np.sort(raw[:lo])
        out[lo:hi] = _tail(history, raw[lo:hi], tail_quantile, gpd=tail == "gpd")
    return np.clip(out[start:], 1e-15, 1.0)


def _tail(history: np.ndarray, x: np.ndarray, q: float, *, gpd: bool = False) -> np.ndarray:
    m = len(history)
    u = history[int(q * (m - 1))]
    excess = history[history > u] - u
    empirical = 1.0 - np.searchsorted(history, x, side="left") / (m + 1.0)
    if len(excess) == 0:
        # A flat history (all equal): anything above it is new; scale by a tiny spread.
        scale = max(abs(float(u)) * 1e-6, 1e-12)
        return np.where(x > u, np.exp(-np.clip(x - u, 0, None) / scale) / (m + 1.0), empirical)
    z = np.clip(x - u, 0.0, None)
    mean = max(float(excess.mean()), 1e-12)
    var = float(excess.var())
    if gpd and len(excess) >= _GPD_MIN_EXCESSES and var > 0:
        survival = _gpd_survival(z, mean, var)
    else:
        survival = np.exp(-z / mean)
    tail = (len(excess) / (m + 1.0)) * survival
    if gpd:
        # The fitted tail must not call a value rarer than the history shows it to be: a
        # recurring large value (a daily jump) is as common as its share of the history.
        tail = np.maximum(tail, empirical)
    return np.where(x > u, tail, empirical)


def _gpd_survival(z: np.ndarray, mean: float, var: float) -> np.ndarray:
    """GPD survival ``(1 + xi z / sigma)^(-1/xi)`` with method-of-moments ``xi, sigma``."""
    ratio = mean * mean / var
    xi = float(np.clip(0.5 * (1.0 - ratio), *_GPD_SHAPE_BOUNDS))
    sigma = max(0.5 * mean * (ratio + 1.0), 1e-12)
    if abs(xi) < 1e-6:
        return np.exp(-z / sigma)
    base = 1.0 + xi * z / sigma
    # A light tail (xi < 0) has a finite end point: beyond it the probability is 0.
    return np.where(base > 0, np.clip(base, 1e-300, None) ** (-1.0 / xi), 0.0)


def calibrate_causal(
    scores: pl.DataFrame,
    *,
    blocks: int = 40,
    tail_quantile: float = 0.9,
    tail: str = "exponential",
    since: Mapping[str, datetime] | None = None,
) -> pl.DataFrame:
    """Set ``score = 1 - tail_probability(raw_score)`` per ``(unique_id, detector)`` in time order.

    Same frame in and out as :func:`calibrate` (sorted by ``unique_id, detector, ds``).
    ``since``: per series, the first ``ds`` to calibrate; its earlier rows serve as history
    only and are left out of the result (their scores would be the same as without it).
    """
    frame = _raw_frame(scores).sort("unique_id", "detector", "ds")
    parts = []
    # partition_by splits in one pass (iterating a group_by gathers each group anew), and the
    # start is found on the numpy stamps (a polars search_sorted is a query of its own): at a
    # few thousand (series, detector) pairs a cycle, each was a second of the next-day cycle.
    for (uid, _), part in frame.partition_by("unique_id", "detector", maintain_order=True, as_dict=True).items():
        first = since.get(str(uid)) if since is not None else None
        start = 0 if first is None else _position(part.get_column("ds"), first)
        p = tail_probability(
            part.get_column("raw_score").to_numpy(), blocks=blocks, tail_quantile=tail_quantile, tail=tail, start=start
        )
        parts.append(part.slice(start).with_columns(pl.Series("score", 1.0 - p)))
    if not parts:
        return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("score")).select(
            *SCORE_COLUMNS, *[c for c in frame.columns if c not in SCORE_COLUMNS]
        )
    out = pl.concat(parts)
    extra = [c for c in out.columns if c not in SCORE_COLUMNS]
    return out.select(*SCORE_COLUMNS, *extra)


def raw_score_frame(
    keys: Sequence[tuple[str, str]], stamps: Sequence[pl.Series], raw: Sequence[np.ndarray]
) -> pl.DataFrame:
    """One raw score frame (``unique_id, ds, detector, raw_score``) from per-series parts:
    ``keys[i] = (unique_id, detector)`` scored ``raw[i]`` at ``stamps[i]`` (built in one go;
    a frame per part with its key broadcast costs a query per part)."""
    if not keys:
        return pl.DataFrame(schema=_RAW_SCHEMA)
    index = pl.Series(np.repeat(np.arange(len(keys)), [len(r) for r in raw]))
    return pl.DataFrame(
        {
            "unique_id": pl.Series([k[0] for k in keys], dtype=pl.Utf8).gather(index),
            "ds": pl.concat(stamps).cast(pl.Datetime("us")),
            "detector": pl.Series([k[1] for k in keys], dtype=pl.Utf8).gather(index),
            "raw_score": np.concatenate(raw).astype(np.float64, copy=False),
        }
    )


def _position(stamps: pl.Series, first: datetime) -> int:
    """Index of the first of the sorted ``stamps`` (Datetime("us")) at or after ``first``."""
    target = pl.Series([first]).cast(pl.Datetime("us")).to_numpy()[0]
    return int(np.searchsorted(stamps.to_numpy(), target, side="left"))


def _raw_frame(scores: pl.DataFrame) -> pl.DataFrame:
    if not isinstance(scores, pl.DataFrame) or any(c not in scores.columns for c in _RAW_COLUMNS):
        got = scores.columns if isinstance(scores, pl.DataFrame) else type(scores).__name__
        raise FrameError(
            f"calibration needs columns {list(_RAW_COLUMNS)}, got {got}",
            fix="pass the output of a detector (e.g. anomaly.level_novelty)",
        )
    frame = scores.with_columns(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("detector").cast(pl.Utf8),
        pl.col("raw_score").cast(pl.Float64),
    )
    broken = frame.filter(~pl.col("raw_score").is_finite().fill_null(False)).height
    if broken:
        raise FrameError(
            f"score frame has {broken} missing or non-finite raw_score value(s)",
            fix="drop unscored rows; a NaN score cannot be ranked against history",
        )
    if "score" in frame.columns:
        frame = frame.drop("score")
    return frame


def combine(scores: pl.DataFrame) -> pl.DataFrame:
    """Ensemble of calibrated detectors: the highest score per ``(unique_id, ds)``.

    Why the maximum: the detectors look for different things (an unusual shape, a miss
    of the forecaster's interval), so one detector's surprise is enough to count. An
    average would let a quiet detector mask a loud one. The price is a higher false-alarm
    rate: with ``D`` detectors a threshold ``t`` is reached by chance at most
    ``D * (1 - t)`` of the time. Where only some detectors scored a timestamp, the maximum
    is over those. Rows of an earlier ensemble in the input are ignored.

    Out: ``unique_id, ds, detector="ensemble", raw_score, score, driver`` with
    ``raw_score == score`` (the maximum) and ``driver`` the detector that reached it (ties
    go to the alphabetically first detector, so the output is deterministic).
    """
    frame = validate_scores(scores).filter(pl.col("detector") != ENSEMBLE_DETECTOR)
    best = (
        frame.sort(["unique_id", "ds", "score", "detector"], descending=[False, False, True, False])
        .group_by("unique_id", "ds", maintain_order=True)
        .first()
    )
    return best.select(
        "unique_id",
        "ds",
        pl.lit(ENSEMBLE_DETECTOR).alias("detector"),
        pl.col("score").alias("raw_score"),
        "score",
        pl.col("detector").alias("driver"),
    )
