"""The cycle's detection with stored state: score what is new, equal to a full recompute.

:func:`detect_resumable` is :func:`anomaly.detect` for a cycle that keeps state between runs
(issue 21). It differs in two ways, both chosen so that an incremental run gives the scores
of a full recompute on the same data:

- the ``subseq_*`` detectors refit on a fixed cadence counted from each series' first
  observation (:func:`anomaly.subsequence.score_from`, ``[scoring] refit_every``), instead of
  8 blocks spread over whatever length the series has now. A point's raw score then depends
  only on the observations up to it, so a stored raw score stays the recompute's;
- a series with a :class:`Resume` is computed from its ``start`` index only: the subsequence
  detectors score ``[start, n)`` with the stored fit of their last edge (refitting only when
  the series crossed a new edge), and take the raw scores before ``start`` from the stored
  ones (the calibration ranks against them); the level and change detectors, cheap, run
  over the whole history as before; every detector is calibrated from ``start`` on only
  (:func:`anomaly.calibrate_causal` with ``since``), which gives the same values there.

Out: the calibrated scores (rows from each series' ``start``; whole series without a
resume) and the newest :class:`~anomaly.subsequence.SubsequenceFit` per series and
subsequence detector, for the caller to store. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from anomaly.calibration import calibrate_causal, raw_score_frame
from anomaly.default import DEFAULT_DETECTORS, SERIES_DETECTORS
from anomaly.novelty import CHANGE_DETECTOR, LEVEL_DETECTOR, change_novelty, level_novelty
from anomaly.subsequence import _MIN_WINDOWS, SubsequenceFit, cadence_warmup, score_from
from core.errors import FrameError
from core.frames import SCORE_COLUMNS, empty_scores, validate_series

__all__ = ["Detection", "Resume", "detect_resumable", "subsequence_detectors"]


@dataclass(frozen=True)
class Resume:
    """Where a series scored before resumes.

    ``start``: index (from its first observation) of the first point to compute; ``raw_before``:
    per subsequence detector, the stored raw scores of points ``0 .. start - 1``; ``fits``: per
    subsequence detector, the stored fit of its last refit edge (may be missing: refitted).
    """

    start: int
    raw_before: Mapping[str, np.ndarray] = field(default_factory=dict)
    fits: Mapping[str, SubsequenceFit] = field(default_factory=dict)


@dataclass
class Detection:
    scores: pl.DataFrame  # score contract, calibrated
    fits: dict[tuple[str, str], SubsequenceFit]  # (unique_id, detector) -> fit of its last edge
    since: dict[str, datetime]  # per resumed series, the first ds in ``scores``


def subsequence_detectors(detectors: Sequence[str]) -> list[str]:
    """The ``subseq_*`` names among ``detectors`` (those that keep a stored fit)."""
    return [d for d in detectors if d.startswith("subseq_")]


def detect_resumable(
    series: pl.DataFrame,
    *,
    windows: Mapping[str, int],
    refit_every: int,
    detectors: Sequence[str] = DEFAULT_DETECTORS,
    seed: int = 0,
    min_history: int = 60,
    tail_quantile: float = 0.9,
    resume: Mapping[str, Resume] | None = None,
) -> Detection:
    """Calibrated scores of each named series detector, from stored state where given (module docstring)."""
    unknown = [d for d in detectors if d not in SERIES_DETECTORS]
    if unknown:
        raise FrameError(f"unknown detector(s) {unknown}", fix=f"choose among {list(SERIES_DETECTORS)}")
    resume = resume or {}
    frame = validate_series(series)
    counts = frame.group_by("unique_id").len()
    keep = counts.filter(pl.col("len") >= min_history).get_column("unique_id")
    frame = frame.filter(pl.col("unique_id").is_in(keep.implode()))
    keys: list[tuple[str, str]] = []
    stamps: list[pl.Series] = []
    raw_parts: list[np.ndarray] = []
    fits: dict[tuple[str, str], SubsequenceFit] = {}
    since: dict[str, datetime] = {}
    subseq = subsequence_detectors(detectors)
    for (uid,), part in frame.partition_by("unique_id", maintain_order=True, as_dict=True).items():
        uid = str(uid)
        ds = part.get_column("ds")
        y = part.get_column("y").to_numpy()
        back = resume.get(uid)
        start = 0 if back is None else min(max(back.start, 0), len(y) - 1)
        if start:
            since[uid] = ds[start]
        if not subseq:
            continue
        if uid not in windows:
            raise FrameError(
                f"series {uid!r} has no window length",
                fix="pass windows={unique_id: w} (the [anomaly] window of its frequency)",
            )
        w = windows[uid]
        if len(y) < max(min_history, w + _MIN_WINDOWS):
            continue
        warmup = cadence_warmup(w, min_history)
        for name in subseq:
            before = back.raw_before.get(name) if back is not None and start else None
            if start and (before is None or len(before) != start):
                raise FrameError(
                    f"series {uid!r} resumes at point {start} but {name} has "
                    f"{'no' if before is None else len(before)} stored raw scores before it",
                    fix="resume only series whose stored scores cover the points before the start",
                )
            first = start if before is not None else 0
            raw, fit = score_from(
                y,
                method=name.removeprefix("subseq_"),
                window=w,
                warmup=warmup,
                every=refit_every,
                seed=seed,
                start=first,
                fit=back.fits.get(name) if back is not None else None,
            )
            if before is not None:
                raw = np.concatenate([before, raw])
            if fit is not None:
                fits[(uid, name)] = fit
            keys.append((uid, name))
            stamps.append(ds)
            raw_parts.append(raw)
    parts: list[pl.DataFrame] = []
    # The level and change detectors are cheap: whole history, calibrated from the start only.
    if LEVEL_DETECTOR in detectors:
        parts.append(level_novelty(frame, tail_quantile=tail_quantile, since=since))
    if CHANGE_DETECTOR in detectors:
        parts.append(change_novelty(frame, tail_quantile=tail_quantile, since=since))
    if raw_parts:
        parts.append(
            calibrate_causal(raw_score_frame(keys, stamps, raw_parts), tail_quantile=tail_quantile, since=since).select(
                SCORE_COLUMNS
            )
        )
    scores = pl.concat(parts, how="vertical_relaxed") if parts else empty_scores()
    return Detection(scores=scores, fits=fits, since=since)
