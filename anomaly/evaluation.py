"""Scoring detectors against labels: NAB, range-based precision/recall, VUS-PR, event skill.

Pure functions over numpy arrays and polars frames; no files, no clock. The CLI
(``ews evaluate``) and ``benchmarks/anomaly_nab.py`` read the data and call these.

**NAB** (Lavin & Ahmad 2015; reimplemented from the published rules, checked against NAB's
own numbers in ``tests/test_evaluation_nab.py``):

- The first ``min(floor(0.15 n), 0.15 * 5000)`` rows of a file are probationary and ignored.
- A detection inside a labelled window at relative position ``p = -(right - i + 1) / width``
  earns ``tp * S(p) / S(-1)`` with ``S(x) = 2 sigmoid(-5x) - 1``; only the best (earliest)
  detection of a window counts; a window with none costs ``-fn``.
- A detection outside windows costs ``fp * S(|i - prev_right| / (prev_width - 1))`` after a
  window (approaching ``-fp`` far from it) and ``-fp`` before the first window.
- Detections are points with ``score >= threshold``; ONE threshold per profile is chosen for
  the whole corpus (the one maximising the corpus total; the highest on ties).
- Normalised score ``100 * (S - null) / (perfect - null)`` with ``null = -fn * windows`` and
  ``perfect = tp * windows`` over the files scored: the null detector gets 0, a perfect one 100.

**Range metrics** (Paparrizos et al. 2022, "Volume under the surface", as in TSB-UAD's
``RangeAUC``): labels are widened by a soft buffer of ``l`` points (``sqrt`` decay), recall is
scaled by the share of anomaly ranges touched (existence reward), and the PR curve over 250
score quantiles is integrated. :func:`range_pr_auc` is that area at one buffer;
:func:`vus_pr` averages it over buffers ``0 .. max_buffer``.

**Event skill** (:func:`event_skill`): alarms (onsets of runs of flagged steps) against a list
of event times with a matching window written down before scoring: an event is *hit* when an
alarm starts within ``lead`` before it (or ``grace`` after it); POD, FAR, CSI, lead times, and
the Kaminsky-Lizondo-Reinhart noise-to-signal ratio on periods.

**Warning-window skill** (:func:`window_skill`): each issue at ``ds`` covers
``[ds, ds + window)``; a warned issue with an event in its window is a hit, without one a
false alarm, an unwarned issue with one a miss (the contingency table of forecast
verification, Wilks 2011 ch. 8); the Brier score (:func:`brier_score`) of the issue's
probability against that outcome.

**Calm-period false alarms** (:func:`calm_false_alarms`): onsets of runs of steps at or above
a level (default orange) that start in a *calm* step (outside every busy interval given,
i.e. no listed event near), per series-year of calm time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from core.errors import FrameError
from core.skill import brier_score  # re-exported: one definition for every table
from core.vocabulary import LEVEL_RANK, Level

__all__ = [
    "NAB_PROFILES",
    "CostMatrix",
    "NabFile",
    "NabFileResult",
    "NabResult",
    "EventSkill",
    "nab_probation_length",
    "nab_point_weights",
    "nab_score",
    "nab_scores_all_profiles",
    "range_pr_auc",
    "vus_pr",
    "point_pr_auc",
    "labels_from_windows",
    "event_skill",
    "alarm_onsets",
    "WindowSkill",
    "window_skill",
    "brier_score",
    "CalmFalseAlarms",
    "calm_false_alarms",
]


@dataclass(frozen=True)
class CostMatrix:
    """NAB application profile: reward for a true positive, costs of misses and false alarms."""

    tp: float
    fp: float
    fn: float


#: NAB's three published profiles (``config/profiles.json``).
NAB_PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}

_PROBATION_FRACTION = 0.15
_OUTSIDE = -1  # window id of a point outside every window
_PROBATION = -2  # window id of a probationary point


@dataclass(frozen=True)
class NabFile:
    """One scored file: timestamps (sorted), detector scores in [0, 1], label windows."""

    name: str
    timestamps: np.ndarray  # datetime64, strictly increasing
    scores: np.ndarray  # float, same length
    windows: tuple[tuple[datetime, datetime], ...]

    def __post_init__(self) -> None:
        if len(self.timestamps) != len(self.scores):
            raise FrameError(
                f"{self.name}: {len(self.timestamps)} timestamps but {len(self.scores)} scores",
                fix="give one score per row of the data file",
            )
        if not np.all(np.isfinite(self.scores)):
            raise FrameError(
                f"{self.name}: {int(np.sum(~np.isfinite(self.scores)))} score(s) are NaN or infinite",
                fix="score every row; a NaN cannot be compared with a threshold",
            )


@dataclass(frozen=True)
class NabFileResult:
    name: str
    score: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int
    windows_detected: int


@dataclass(frozen=True)
class NabResult:
    profile: str
    threshold: float
    raw_score: float
    null_score: float
    perfect_score: float
    normalised: float
    files: tuple[NabFileResult, ...] = field(default_factory=tuple)


def nab_probation_length(rows: int) -> int:
    """Rows at the start of a file that NAB ignores (its detectors' learning period)."""
    return int(min(math.floor(_PROBATION_FRACTION * rows), _PROBATION_FRACTION * 5000))


def _scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    out = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= 3.0, -1.0, out)


def _window_indices(file: NabFile) -> list[tuple[int, int]]:
    """Label windows as inclusive row-index ranges (first row >= start .. last row <= end)."""
    ts = file.timestamps
    out = []
    for start, end in sorted(file.windows):
        left = int(np.searchsorted(ts, np.datetime64(start), side="left"))
        right = int(np.searchsorted(ts, np.datetime64(end), side="right")) - 1
        if left <= right:
            out.append((left, right))
    return out


def nab_point_weights(file: NabFile, cost: CostMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the score a detection there would earn, and its window id.

    Window ids are 0.. in time order, ``-1`` outside windows, ``-2`` probationary rows.
    """
    n = len(file.timestamps)
    weights = np.empty(n, dtype=np.float64)
    ids = np.full(n, _OUTSIDE, dtype=np.int64)
    idx = np.arange(n)
    max_tp = float(_scaled_sigmoid(np.array([-1.0]))[0])
    prev_right: int | None = None
    prev_width = 0.0
    cursor = 0
    for k, (left, right) in enumerate(_window_indices(file)):
        _fill_outside(weights, idx, cursor, left, prev_right, prev_width, cost)
        width = float(right - left + 1)
        inside = idx[left : right + 1]
        weights[left : right + 1] = _scaled_sigmoid(-(right - inside + 1) / width) * cost.tp / max_tp
        ids[left : right + 1] = k
        prev_right, prev_width, cursor = right, width, right + 1
    _fill_outside(weights, idx, cursor, n, prev_right, prev_width, cost)
    ids[: nab_probation_length(n)] = _PROBATION
    return weights, ids


def _fill_outside(
    weights: np.ndarray, idx: np.ndarray, lo: int, hi: int, prev_right: int | None, prev_width: float, cost: CostMatrix
) -> None:
    if hi <= lo:
        return
    if prev_right is None:
        weights[lo:hi] = -cost.fp
        return
    # A one-row window has no width to scale by; treat what follows as far from it.
    denominator = prev_width - 1.0 if prev_width > 1.0 else 1e-9
    position = np.abs(prev_right - idx[lo:hi]) / denominator
    weights[lo:hi] = _scaled_sigmoid(position) * cost.fp


@dataclass(frozen=True)
class _Prepared:
    file: NabFile
    weights: np.ndarray
    ids: np.ndarray  # window ids, globally unique across the corpus when offset


def nab_score(files: Sequence[NabFile], *, profile: str = "standard", threshold: float | None = None) -> NabResult:
    """NAB score of a corpus under one profile (rules in the module docstring).

    ``threshold=None`` optimises one threshold over all files, as NAB does; pass a value to
    score at a fixed threshold instead.
    """
    if profile not in NAB_PROFILES:
        raise FrameError(f"unknown NAB profile {profile!r}", fix=f"use one of {sorted(NAB_PROFILES)}")
    if not files:
        raise FrameError("no files to score", fix="pass at least one NabFile with its windows")
    cost = NAB_PROFILES[profile]
    prepared = []
    offset = 0
    total_windows = 0
    for file in files:
        weights, ids = nab_point_weights(file, cost)
        keep = ids != _PROBATION
        n_windows = len(np.unique(ids[keep & (ids >= 0)]))
        shifted = np.where(ids >= 0, ids + offset, ids)
        offset += int(ids.max(initial=-1)) + 1
        total_windows += n_windows
        scored = NabFile(file.name, file.timestamps[keep], file.scores[keep], file.windows)
        prepared.append(_Prepared(scored, weights[keep], shifted[keep]))
    if threshold is None:
        threshold = _optimise_threshold(prepared, total_windows, cost)
    results = tuple(_score_file(p, threshold, cost) for p in prepared)
    raw = float(sum(r.score for r in results))
    null = -cost.fn * total_windows
    perfect = cost.tp * total_windows
    normalised = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return NabResult(profile, float(threshold), raw, null, perfect, normalised, results)


def nab_scores_all_profiles(files: Sequence[NabFile]) -> dict[str, NabResult]:
    """:func:`nab_score` for every profile, each with its own optimised threshold."""
    return {name: nab_score(files, profile=name) for name in NAB_PROFILES}


def _optimise_threshold(prepared: Sequence[_Prepared], total_windows: int, cost: CostMatrix) -> float:
    """The threshold maximising the corpus total (the highest one among equal totals)."""
    scores = np.concatenate([p.file.scores for p in prepared])
    weights = np.concatenate([p.weights for p in prepared])
    ids = np.concatenate([p.ids for p in prepared])
    order = np.argsort(-scores, kind="stable")
    scores, weights, ids = scores[order], weights[order], ids[order]
    frame = pl.DataFrame({"w": weights, "id": ids})
    # Inside a window only the best detection counts: the gain of a point is how much it
    # raises its window's running maximum (which starts at the miss cost -fn).
    running = frame.with_columns(
        pl.when(pl.col("id") >= 0)
        .then(pl.col("w").cum_max().over("id").clip(lower_bound=-cost.fn))
        .otherwise(None)
        .alias("best")
    ).with_columns(
        pl.when(pl.col("id") >= 0)
        .then(pl.col("best") - pl.col("best").shift(1, fill_value=-cost.fn).over("id"))
        .otherwise(pl.col("w"))
        .alias("gain")
    )
    totals = -cost.fn * total_windows + np.cumsum(running.get_column("gain").to_numpy())
    # A threshold t detects every point with score >= t: evaluate at the end of each run
    # of equal scores.
    last_of_run = np.append(scores[1:] != scores[:-1], True)
    candidates = totals[last_of_run]
    thresholds = scores[last_of_run]
    best = int(np.argmax(candidates))  # first maximum = highest threshold among ties
    if candidates[best] <= -cost.fn * total_windows:
        return float(scores[0]) + 1.0  # detecting nothing is best
    return float(thresholds[best])


def _score_file(p: _Prepared, threshold: float, cost: CostMatrix) -> NabFileResult:
    detected = p.file.scores >= threshold
    inside = p.ids >= 0
    window_ids = np.unique(p.ids[inside])
    score = float(np.sum(p.weights[detected & ~inside]))
    found = 0
    for wid in window_ids:
        hits = detected & (p.ids == wid)
        if hits.any():
            found += 1
            score += max(-cost.fn, float(np.max(p.weights[hits])))
        else:
            score -= cost.fn
    return NabFileResult(
        name=p.file.name,
        score=score,
        tp=int(np.sum(detected & inside)),
        fp=int(np.sum(detected & ~inside)),
        fn=int(np.sum(~detected & inside)),
        tn=int(np.sum(~detected & ~inside)),
        windows=len(window_ids),
        windows_detected=found,
    )


# -- range-based precision / recall and VUS-PR ------------------------------------------------
def labels_from_windows(timestamps: np.ndarray, windows: Sequence[tuple[datetime, datetime]]) -> np.ndarray:
    """0/1 labels: 1 for rows inside any window (inclusive)."""
    labels = np.zeros(len(timestamps), dtype=np.int8)
    for start, end in windows:
        labels[(timestamps >= np.datetime64(start)) & (timestamps <= np.datetime64(end))] = 1
    return labels


def _ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[0], (labels > 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _soft_labels(labels: np.ndarray, buffer: int) -> np.ndarray:
    soft = labels.astype(np.float64).copy()
    n = len(soft)
    if buffer <= 0:
        return soft
    half = buffer // 2
    for start, end in _ranges(labels):
        after = np.arange(end + 1, min(end + 1 + half, n))
        soft[after] += np.sqrt(np.clip(1.0 - (after - end) / buffer, 0.0, None))
        before = np.arange(max(start - half, 0), start)
        soft[before] += np.sqrt(np.clip(1.0 - (start - before) / buffer, 0.0, None))
    return np.minimum(soft, 1.0)


def _check_labelled(labels: np.ndarray, scores: np.ndarray) -> None:
    if len(labels) != len(scores):
        raise FrameError(f"{len(labels)} labels but {len(scores)} scores", fix="give one score per label")
    if not np.all(np.isfinite(scores)):
        raise FrameError("scores contain NaN or infinite values", fix="score every row with a finite number")


def range_pr_auc(labels: np.ndarray, scores: np.ndarray, *, buffer: int = 0, steps: int = 250) -> float:
    """Area under the range-based PR curve with a soft label buffer of ``buffer`` rows.

    Recall is the buffered overlap, scaled by the share of anomaly ranges with at least one
    detection; precision is the buffered overlap per detection. ``nan`` without anomalies.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    _check_labelled(labels, scores)
    positives = float(np.sum(labels > 0))
    if positives == 0:
        return float("nan")
    soft = _soft_labels(labels, buffer)
    ranges = _ranges(soft > 0)
    p_new = (positives + float(np.sum(soft))) / 2.0
    ordered = -np.sort(-scores)
    recalls, precisions = [0.0], [1.0]
    for i in np.linspace(0, len(scores) - 1, steps).astype(int):
        predicted = scores >= ordered[i]
        product = soft * predicted
        tp = float(np.sum(product))
        touched = sum(1 for a, b in ranges if product[a : b + 1].sum() > 0)
        recalls.append(min(tp / p_new, 1.0) * touched / len(ranges))
        precisions.append(tp / max(float(np.sum(predicted)), 1.0))
    recalls.append(1.0)
    precisions.append(precisions[-1])
    r, p = np.array(recalls), np.array(precisions)
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2.0))


def vus_pr(
    labels: np.ndarray, scores: np.ndarray, *, max_buffer: int = 100, buffer_steps: int = 11, steps: int = 250
) -> float:
    """Volume under the range-PR surface: :func:`range_pr_auc` averaged over buffers 0..max."""
    buffers = np.linspace(0, max_buffer, buffer_steps).astype(int)
    return float(np.mean([range_pr_auc(labels, scores, buffer=int(b), steps=steps) for b in buffers]))


def point_pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Point-wise average precision (area under the step PR curve)."""
    labels = np.asarray(labels) > 0
    scores = np.asarray(scores, dtype=np.float64)
    _check_labelled(labels, scores)
    if not labels.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(np.float64)
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float(np.sum(precision * hits) / hits.sum())


# -- event skill --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventSkill:
    """Early-warning skill of one alarm series against an event list."""

    events: int
    hits: int
    misses: int
    alarms: int
    false_alarms: int
    pod: float
    far: float
    csi: float
    lead_times_days: tuple[float, ...]
    median_lead_days: float | None
    noise_to_signal: float | None
    lead_window_days: float
    grace_days: float

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def alarm_onsets(flags: pl.DataFrame) -> list[datetime]:
    """Times where a run of flagged steps starts (``ds``, ``flag`` sorted by ``ds``)."""
    frame = flags.sort("ds")
    flag = frame.get_column("flag").cast(pl.Boolean).to_numpy()
    starts = flag & ~np.concatenate([[False], flag[:-1]])
    return [frame.get_column("ds")[int(i)] for i in np.flatnonzero(starts)]


def event_skill(
    flags: pl.DataFrame,
    events: Sequence[datetime],
    *,
    lead: timedelta,
    grace: timedelta = timedelta(0),
    event_ends: Sequence[datetime] | None = None,
) -> EventSkill:
    """Score alarms against events with a matching window fixed before scoring.

    ``flags``: ``ds`` and boolean ``flag`` per step (the grade at or above the alarm level).
    An alarm is an onset of a run of flags. An event at ``e`` is hit when an alarm starts in
    ``[e - lead, e + grace]``; its lead time is ``e`` minus the earliest such onset. An alarm
    is false when no event falls in ``[onset - grace, onset + lead]`` and it does not start
    inside an event (``event_ends`` gives each event's end, default the event time).
    KLR noise-to-signal on steps: a step is a *signal period* when it lies in ``[e - lead, e)``
    for some event; steps inside events are left out; NSR = (B / (B + D)) / (A / (A + C)).
    """
    if "ds" not in flags.columns or "flag" not in flags.columns:
        raise FrameError(
            f"flags need columns ['ds', 'flag'], got {flags.columns}",
            fix="pass the graded series with flag = level >= the alarm level",
        )
    events = sorted(events)
    ends = list(event_ends) if event_ends is not None else list(events)
    if len(ends) != len(events):
        raise FrameError(f"{len(events)} events but {len(ends)} event ends", fix="give one end per event")
    frame = flags.sort("ds")
    first, last = frame.get_column("ds").min(), frame.get_column("ds").max()
    pairs: list[tuple[datetime, datetime]] = []
    if events:
        if not isinstance(first, datetime) or not isinstance(last, datetime):
            # the TypeError comparing events with an empty or non-datetime ds raised here before
            raise TypeError(f"flags' ds must hold datetimes to be compared with events, got {first!r}..{last!r}")
        # Only events the flags could have warned of (their lead window overlaps the data).
        pairs = [(e, z) for e, z in sorted(zip(events, ends, strict=True)) if e - lead >= first and e <= last]
    onsets = alarm_onsets(frame)
    leads: list[float] = []
    for event, _ in pairs:
        before = [o for o in onsets if event - lead <= o <= event + grace]
        if before:
            leads.append((event - min(before)).total_seconds() / 86400.0)
    hits = len(leads)
    misses = len(pairs) - hits
    false = 0
    for onset in onsets:
        in_event = any(e <= onset <= z for e, z in pairs)
        warned = any(onset - grace <= e <= onset + lead for e, _ in pairs)
        if not warned and not in_event:
            false += 1
    pod = hits / len(pairs) if pairs else float("nan")
    far = false / len(onsets) if onsets else 0.0
    csi = hits / (hits + misses + false) if (hits + misses + false) else float("nan")
    nsr = _noise_to_signal(frame, pairs, lead)
    return EventSkill(
        events=len(pairs),
        hits=hits,
        misses=misses,
        alarms=len(onsets),
        false_alarms=false,
        pod=pod,
        far=far,
        csi=csi,
        lead_times_days=tuple(leads),
        median_lead_days=float(np.median(leads)) if leads else None,
        noise_to_signal=nsr,
        lead_window_days=lead.total_seconds() / 86400.0,
        grace_days=grace.total_seconds() / 86400.0,
    )


def _noise_to_signal(frame: pl.DataFrame, pairs: Sequence[tuple[datetime, datetime]], lead: timedelta) -> float | None:
    ds = frame.get_column("ds").to_numpy()
    flag = frame.get_column("flag").cast(pl.Boolean).to_numpy()
    signal_period = np.zeros(len(ds), dtype=bool)
    during = np.zeros(len(ds), dtype=bool)
    for event, end in pairs:
        signal_period |= (ds >= np.datetime64(event - lead)) & (ds < np.datetime64(event))
        during |= (ds >= np.datetime64(event)) & (ds <= np.datetime64(end))
    keep = ~during
    a = np.sum(flag & signal_period & keep)
    b = np.sum(flag & ~signal_period & keep)
    c = np.sum(~flag & signal_period & keep)
    d = np.sum(~flag & ~signal_period & keep)
    if a == 0 or (b + d) == 0:
        return None  # no correct signal: the ratio is undefined (infinitely noisy)
    return float((b / (b + d)) / (a / (a + c)))


# -- warning windows, Brier score, calm-period false alarms -------------------------------------
@dataclass(frozen=True)
class WindowSkill:
    """Skill of issued warnings whose window ``[ds, ds + window)`` either holds an event or not."""

    issues: int
    events: int
    hits: int
    misses: int
    false_alarms: int
    pod: float
    far: float
    csi: float
    median_lead_days: float | None
    brier: float | None
    window_days: float

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def window_skill(issues: pl.DataFrame, events: Sequence[datetime], *, window: timedelta) -> WindowSkill:
    """Contingency skill of warnings issued at ``ds`` for the window ``[ds, ds + window)``.

    ``issues``: ``ds`` (issue time, sorted or not), ``flag`` (a warning was in force) and
    optionally ``probability`` (for the Brier score). An issue's *outcome* is at least one
    event in its window. Hits = flagged issues with an outcome, false alarms = flagged
    without, misses = unflagged with; POD = hits / (hits + misses), FAR = false / (hits +
    false), CSI = hits / (hits + misses + false). ``events`` counts the events inside the
    issued period; an event's lead is its time minus the earliest flagged issue whose
    window holds it (0 .. ``window``), the median over events with one.
    """
    for col in ("ds", "flag"):
        if col not in issues.columns:
            raise FrameError(f"issues need columns ['ds', 'flag'], got {issues.columns}", fix="pass ds and flag")
    if window <= timedelta(0):
        raise FrameError(f"window={window}", fix="pass a positive window, e.g. timedelta(days=7)")
    frame = issues.sort("ds")
    ds = frame.get_column("ds").to_numpy().astype("datetime64[us]")
    flag = frame.get_column("flag").cast(pl.Boolean).fill_null(False).to_numpy()
    ev = np.sort(np.array([np.datetime64(e, "us") for e in events], dtype="datetime64[us]"))
    w = np.timedelta64(int(window.total_seconds() * 1e6), "us")
    if len(ds) == 0:
        return WindowSkill(0, 0, 0, 0, 0, float("nan"), 0.0, float("nan"), None, None, window / timedelta(days=1))
    outcome = np.searchsorted(ev, ds + w, side="left") > np.searchsorted(ev, ds, side="left")
    hits = int(np.sum(flag & outcome))
    false = int(np.sum(flag & ~outcome))
    misses = int(np.sum(~flag & outcome))
    inside = ev[(ev >= ds[0]) & (ev < ds[-1] + w)]
    leads = []
    warned = ds[flag]
    for e in inside:
        cover = warned[(warned <= e) & (warned > e - w)]
        if len(cover):
            leads.append(float((e - cover.min()) / np.timedelta64(1, "D")))
    brier = None
    if "probability" in frame.columns:
        p = frame.get_column("probability").cast(pl.Float64).to_numpy()
        known = np.isfinite(p)
        brier = brier_score(p[known], outcome[known]) if known.any() else None
    return WindowSkill(
        issues=len(ds),
        events=len(inside),
        hits=hits,
        misses=misses,
        false_alarms=false,
        pod=hits / (hits + misses) if hits + misses else float("nan"),
        far=false / (hits + false) if hits + false else 0.0,
        csi=hits / (hits + misses + false) if hits + misses + false else float("nan"),
        median_lead_days=float(np.median(leads)) if leads else None,
        brier=brier,
        window_days=window / timedelta(days=1),
    )


@dataclass(frozen=True)
class CalmFalseAlarms:
    """High-level onsets in calm time and the calm time itself."""

    onsets: int
    calm_days: float
    series_years: float
    per_series_year: float | None
    min_level: str

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _level_ranks(levels: pl.Series) -> np.ndarray:
    if levels.dtype == pl.Utf8:
        return levels.fill_null(Level.NONE.label).replace_strict(LEVEL_RANK, return_dtype=pl.Int64).to_numpy()
    return levels.cast(pl.Int64).fill_null(0).to_numpy()


def calm_false_alarms(
    levels: pl.DataFrame,
    busy: Sequence[tuple[datetime, datetime]] = (),
    *,
    min_level: Level = Level.ORANGE,
) -> CalmFalseAlarms:
    """False high levels per series-year in calm time.

    ``levels``: one series' replayed levels, ``ds`` and ``level`` (a label such as
    ``"orange"`` or a :class:`~core.vocabulary.Level` rank) on every step, not only the flagged
    ones. ``busy``: closed intervals ``(start, end)`` around the listed events (for example
    30 days either side of an earthquake); every other step is *calm*. A step represents the
    time up to the next step (the last one the median step). An *onset* is a step at
    ``min_level`` or above whose previous step was below it; onsets in calm steps are false
    alarms, counted per series-year of calm time (``None`` without calm time).
    """
    for col in ("ds", "level"):
        if col not in levels.columns:
            raise FrameError(f"levels need columns ['ds', 'level'], got {levels.columns}", fix="pass ds and level")
    frame = levels.sort("ds")
    ds = frame.get_column("ds").to_numpy().astype("datetime64[us]")
    rank = _level_ranks(frame.get_column("level"))
    if len(ds) == 0:
        return CalmFalseAlarms(0, 0.0, 0.0, None, Level(min_level).label)
    gaps = np.diff(ds) / np.timedelta64(1, "D")
    step = np.append(gaps, np.median(gaps) if len(gaps) else 1.0)
    calm = np.ones(len(ds), dtype=bool)
    for start, end in busy:
        calm &= ~((ds >= np.datetime64(start, "us")) & (ds <= np.datetime64(end, "us")))
    high = rank >= int(min_level)
    onset = high & ~np.concatenate([[False], high[:-1]])
    count = int(np.sum(onset & calm))
    calm_days = float(np.sum(step[calm]))
    years = calm_days / 365.25
    return CalmFalseAlarms(
        onsets=count,
        calm_days=calm_days,
        series_years=years,
        per_series_year=count / years if years > 0 else None,
        min_level=Level(min_level).label,
    )
