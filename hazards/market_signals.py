"""The signals approach (Kaminsky, Lizondo & Reinhart 1998) on market stress indicators.

An indicator *signals* when it is above its threshold. A signal at ``t`` is good when a
crisis starts within the horizon after ``t`` (``(t, t + horizon]``, :func:`crisis_labels`),
noise otherwise. Over a training period, with A = good signals, B = noise, C = missed
(no signal, crisis ahead), D = quiet (no signal, no crisis ahead):

    noise-to-signal ratio  NSR = (B / (B + D)) / (A / (A + C))

:func:`klr_threshold` picks, among the training quantiles of the indicator, the threshold
with the lowest NSR that still gives at least one good signal (KLR searched the 10-20 %
tail; the grid here runs from the 70th to the 99th percentile, :data:`QUANTILES`). Dates inside a crisis (onset
to trough) are left out of fitting and scoring, as KLR did: the indicator is meant to lead
the crisis, not to describe it.

:class:`MarketSignals` fits a threshold for every indicator and for the composite, and
combines them the KLR way: the *signal share* is the sum of the signals weighted by
``1 / NSR`` (only indicators with NSR < 1 count: the others are noise; the weight is capped
at 10, :data:`MIN_NSR_FOR_WEIGHT`) over the sum of the
weights, the composite counting as one more indicator. The **level** is the highest rung of
the ladder (``[markets] ladder``) whose share is reached (and, where the rung says so,
whose composite signals). Each level carries the frequency with which a crisis followed
within the horizon when that level held in training: the probability a duty officer reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from core.errors import FrameError
from core.vocabulary import Level, per_level

__all__ = [
    "DEFAULT_LADDER",
    "MarketSignals",
    "SignalFit",
    "auroc",
    "crisis_episodes",
    "crisis_labels",
    "klr_threshold",
    "signal_skill",
]

#: Candidate thresholds: the training quantiles KLR searched (the 70th to 99th percentile).
QUANTILES: tuple[float, ...] = tuple(round(q, 2) for q in np.arange(0.70, 0.995, 0.01))
#: An NSR of 0 in training (no noise at all) is luck on few crises, not infinite skill: the
#: weight 1/NSR is capped at 1/0.1 = 10.
MIN_NSR_FOR_WEIGHT = 0.1
#: level -> (minimum weighted signal share, composite must signal). docs/markets.md.
DEFAULT_LADDER: dict[str, tuple[float, bool]] = per_level(
    blue=(0.25, False), yellow=(0.5, False), orange=(0.5, True), red=(0.75, True)
)


def crisis_labels(
    ds: pl.Series | Sequence[datetime],
    events: pl.DataFrame,
    *,
    horizon_days: float,
    known_until: datetime | None = None,
) -> pl.DataFrame:
    """Per date: ``ahead`` (a crisis onset in ``(ds, ds + horizon]``), ``crisis`` (the number
    of that crisis: the first onset ahead, by order of onset; null when none), ``in_crisis`` (inside
    an event's onset .. trough, or its end when the trough is unknown, or ongoing) and
    ``usable`` (not in a crisis, and ``ds + horizon`` not after ``known_until``, the last date
    the event list covers: beyond it nobody knows yet whether a crisis followed).

    ``events``: ``onset`` and optional ``trough`` / ``end`` (dates or datetimes)."""
    if "onset" not in events.columns:
        raise FrameError(
            f"the crisis events need an 'onset' column; they have {events.columns}",
            fix="pass the events file's rows (event_id, target, onset, peak, trough, end, depth, source)",
        )
    if horizon_days <= 0:
        raise FrameError(f"horizon_days={horizon_days} must be positive", fix="e.g. 365 for a crisis within 12 months")
    dates = pl.Series("ds", list(ds)).cast(pl.Datetime("us"))
    h = timedelta(days=horizon_days)

    def col(name: str) -> list[datetime | None]:
        if name not in events.columns:
            return [None] * events.height
        return events.get_column(name).cast(pl.Datetime("us")).to_list()

    onsets, troughs, ends = col("onset"), col("trough"), col("end")
    t = dates.to_numpy().astype("datetime64[us]")
    ahead = np.zeros(len(t), dtype=bool)
    inside = np.zeros(len(t), dtype=bool)
    crisis = np.full(len(t), -1, dtype=np.int64)
    far_future = np.datetime64("9999-12-31", "us")
    for onset, trough, end in zip(onsets, troughs, ends, strict=True):
        if onset is None:
            continue
        o = np.datetime64(onset, "us")
        stop = trough or end
        s = np.datetime64(stop, "us") if stop is not None else far_future
        window = (o > t) & (o <= t + np.timedelta64(h))
        crisis[window & (crisis < 0)] = len([x for x in onsets if x is not None and x < onset])
        ahead |= window
        inside |= (t >= o) & (t <= s)
    usable = ~inside
    if known_until is not None:
        usable &= t + np.timedelta64(h) <= np.datetime64(known_until, "us")
    return pl.DataFrame(
        {
            "ds": dates,
            "ahead": ahead,
            "in_crisis": inside,
            "usable": usable,
            "crisis": pl.Series(crisis).replace(-1, None),
        }
    )


@dataclass(frozen=True)
class SignalFit:
    """A fitted threshold: signal when ``value >= threshold``. ``nsr`` is infinite when no
    threshold gave a good signal in training; ``quantile`` is its training quantile."""

    name: str
    threshold: float
    quantile: float
    nsr: float
    a: int
    b: int
    c: int
    d: int

    @property
    def weight(self) -> float:
        """KLR's composite weight: ``1 / NSR`` for a useful indicator (NSR < 1), else 0."""
        if not self.nsr < 1.0:
            return 0.0
        return 1.0 / max(self.nsr, MIN_NSR_FOR_WEIGHT)

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "quantile": self.quantile,
            "nsr": self.nsr,
            "weight": self.weight,
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "d": self.d,
        }


def _counts(signal: np.ndarray, ahead: np.ndarray) -> tuple[int, int, int, int]:
    a = int(np.sum(signal & ahead))
    b = int(np.sum(signal & ~ahead))
    c = int(np.sum(~signal & ahead))
    d = int(np.sum(~signal & ~ahead))
    return a, b, c, d


def _nsr(a: int, b: int, c: int, d: int) -> float:
    if a == 0 or a + c == 0:
        return float("inf")
    noise = b / (b + d) if b + d else 0.0
    return noise / (a / (a + c))


def klr_threshold(
    values: np.ndarray,
    ahead: np.ndarray,
    *,
    name: str = "indicator",
    quantiles: Sequence[float] | None = None,
    crisis: np.ndarray | None = None,
    min_coverage: float = 0.0,
) -> SignalFit:
    """The NSR-minimising threshold over the training rows given (module docstring).

    ``values`` and ``ahead`` are the usable training rows (NaN values are dropped). Ties in
    NSR go to the lower threshold (more good signals). With ``crisis`` (per row, the number of
    the crisis ahead, -1 for none: :func:`crisis_labels`' ``crisis``) a threshold must signal
    ahead of at least ``min_coverage`` of the training crises: an indicator that warned of one
    crisis in three did it by luck as often as by skill, and its NSR of 0 says nothing."""
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(ahead, dtype=bool)
    if x.shape != y.shape:
        raise FrameError(f"{name}: {x.shape[0]} values but {y.shape[0]} labels", fix="pass aligned arrays")
    keep = ~np.isnan(x)
    ids = np.full(x.shape[0], -1) if crisis is None else np.asarray(crisis, dtype=np.int64)
    x, y, ids = x[keep], y[keep], ids[keep]
    n_crises = len(set(ids[ids >= 0].tolist()))
    needed = int(np.ceil(min_coverage * n_crises - 1e-9))
    if x.size == 0:
        raise FrameError(f"{name}: no training values", fix="train on a period where the indicator has values")
    grid = np.asarray(quantiles if quantiles is not None else QUANTILES)
    best: SignalFit | None = None
    for q in grid:
        threshold = float(np.quantile(x, q))
        fired = x >= threshold
        a, b, c, d = _counts(fired, y)
        if needed and len(set(ids[fired & (ids >= 0)].tolist())) < needed:
            continue
        nsr = _nsr(a, b, c, d)
        if best is None or nsr < best.nsr:
            best = SignalFit(name, threshold, float(q), nsr, a, b, c, d)
    if best is None or not np.isfinite(best.nsr):  # never a good signal: set it where it never fires
        a, b, c, d = _counts(np.zeros_like(y), y)
        return SignalFit(name, float(np.inf), 1.0, float("inf"), a, b, c, d)
    return best


def auroc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann-Whitney) formula, ties counted half; NaN
    scores dropped; NaN when one class is empty."""
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(label, dtype=bool)
    keep = ~np.isnan(s)
    s, y = s[keep], y[keep]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pl.Series(s).rank("average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def signal_skill(
    ds: pl.Series | Sequence[datetime],
    signal: np.ndarray,
    labels: pl.DataFrame,
    onsets: Sequence[datetime],
    *,
    horizon_days: float,
) -> dict[str, Any]:
    """How a binary signal did over the rows given (``labels`` from :func:`crisis_labels`,
    same rows): the KLR counts and NSR over usable rows; POD = share of the ``onsets`` (those
    whose whole horizon window lies inside the rows' span) with a signal in the horizon before
    them; FAR = noise over all signals; the median lead time (days from the first signal in the
    window to the onset) of the detected crises."""
    dates = np.asarray(pl.Series(list(ds)).cast(pl.Datetime("us")).to_numpy()).astype("datetime64[us]")
    sig = np.asarray(signal, dtype=bool)
    usable = labels.get_column("usable").to_numpy()
    ahead = labels.get_column("ahead").to_numpy()
    a, b, c, d = _counts(sig[usable], ahead[usable])
    h = np.timedelta64(timedelta(days=horizon_days))
    detected, leads, counted = 0, [], 0
    for onset in onsets:
        o = np.datetime64(onset, "us")
        if len(dates) == 0 or o - h < dates[0] or o > dates[-1]:
            continue
        counted += 1
        window = (dates >= o - h) & (dates < o) & sig
        if window.any():
            detected += 1
            leads.append((o - dates[window][0]) / np.timedelta64(1, "D"))
    return {
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "nsr": _nsr(a, b, c, d),
        "events": counted,
        "detected": detected,
        "pod": detected / counted if counted else float("nan"),
        "far": b / (a + b) if a + b else float("nan"),
        "median_lead_days": float(np.median(leads)) if leads else float("nan"),
        "signal_rate": float(sig[usable].mean()) if usable.any() else float("nan"),
    }


@dataclass
class MarketSignals:
    """KLR thresholds for every indicator and the composite, and the levels they give.

    ``on_ranks``: an indicator ``x`` with a ``rank_x`` column in the frame (its causal rank,
    :func:`hazards.market_composite`) is thresholded on that rank: the signal is "x is above
    the q-th percentile of its own past", KLR's own definition, which survives a level shift
    (the 1981 yield-curve inversion was 2 points deep, the 2006 one half a point) where a
    threshold in the indicator's units fitted on one period does not fire in the next.
    ``min_coverage``: a threshold must signal ahead of at least this share of the training
    crises (:func:`klr_threshold`); the default, half, keeps one lucky crisis from making an
    indicator the composite's heaviest weight.

    Fit with :meth:`fit` on training rows; :meth:`apply` adds ``signal_<name>`` columns, the
    weighted ``signal_share``, the ``level`` and its training ``probability``."""

    indicators: list[str]
    composite: str = "composite"
    horizon_days: float = 365.0
    min_coverage: float = 0.5
    on_ranks: bool = True
    ladder: Mapping[str, tuple[float, bool]] = field(default_factory=lambda: dict(DEFAULT_LADDER))
    fits: dict[str, SignalFit] = field(default_factory=dict)
    level_probability: dict[str, float] = field(default_factory=dict)
    level_rows: dict[str, int] = field(default_factory=dict)
    base_rate: float = float("nan")
    train_span: tuple[datetime, datetime] | None = None

    def __post_init__(self) -> None:
        order = [lv.label for lv in (Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED)]
        if set(self.ladder) - set(order) or not self.ladder:
            raise FrameError(
                f"market ladder levels {sorted(self.ladder)} are not warning levels",
                fix=f"use some of {', '.join(order)}",
            )
        shares = [self.ladder[k][0] for k in order if k in self.ladder]
        if any(not 0.0 < s <= 1.0 for s in shares) or shares != sorted(shares):
            raise FrameError(
                f"market ladder shares {shares} must rise with the level and lie in (0, 1]",
                fix="e.g. blue 0.25, yellow 0.5, orange 0.5 with the composite, red 0.75 with the composite",
            )

    def _values(self, frame: pl.DataFrame, name: str) -> np.ndarray:
        """The column a threshold applies to: ``rank_<name>`` when ranks are on and present."""
        column = f"rank_{name}" if self.on_ranks and f"rank_{name}" in frame.columns else name
        return frame.get_column(column).cast(pl.Float64).fill_null(np.nan).to_numpy()

    @property
    def columns(self) -> list[str]:
        return [*self.indicators, self.composite]

    def fit(self, frame: pl.DataFrame, labels: pl.DataFrame) -> MarketSignals:
        """Thresholds from the usable rows of ``frame`` (``ds`` + the indicator and composite
        columns) with ``labels`` (:func:`crisis_labels` on the same ``ds``)."""
        missing = [c for c in ["ds", *self.columns] if c not in frame.columns]
        if missing:
            raise FrameError(
                f"the signal frame lacks {missing}", fix="build it with build_indicators + stress_composite"
            )
        if labels.height != frame.height:
            raise FrameError(
                f"{labels.height} labels for {frame.height} rows",
                fix="label the same dates (crisis_labels(frame['ds']))",
            )
        usable = labels.get_column("usable").to_numpy()
        ahead = labels.get_column("ahead").to_numpy()[usable]
        crisis = labels.get_column("crisis").fill_null(-1).to_numpy()[usable] if "crisis" in labels.columns else None
        if not ahead.any():
            raise FrameError(
                "no crisis starts within the horizon of any training date",
                fix="train on a period with at least one listed crisis, or lengthen the horizon",
            )
        for name in self.columns:
            values = self._values(frame, name)[usable]
            if np.isnan(values).all():  # no history in training (the euro before 1999): never signals
                a, b, c, d = _counts(np.zeros_like(ahead), ahead)
                self.fits[name] = SignalFit(name, float(np.inf), 1.0, float("inf"), a, b, c, d)
                continue
            self.fits[name] = klr_threshold(values, ahead, name=name, crisis=crisis, min_coverage=self.min_coverage)
        applied = self._levels(frame)
        self.base_rate = float(ahead.mean())
        self.level_probability, self.level_rows = {}, {}
        levels = applied.get_column("level").to_numpy()[usable]
        for label in self.ladder:
            at_or_above = np.array([Level.parse(v) >= Level.parse(label) for v in levels])
            self.level_rows[label] = int(at_or_above.sum())
            self.level_probability[label] = float(ahead[at_or_above].mean()) if at_or_above.any() else float("nan")
        ds = frame.get_column("ds")
        self.train_span = (ds.min(), ds.max())  # type: ignore[assignment]
        return self

    def _levels(self, frame: pl.DataFrame) -> pl.DataFrame:
        weights = {n: f.weight for n, f in self.fits.items()}
        total = sum(weights.values())
        signals = {f"signal_{n}": self._values(frame, n) >= self.fits[n].threshold for n in self.columns}
        share = (
            sum(weights[n] * signals[f"signal_{n}"].astype(float) for n in self.columns) / total
            if total > 0
            else np.zeros(frame.height)
        )
        comp = signals[f"signal_{self.composite}"]
        order = sorted(self.ladder, key=lambda k: int(Level.parse(k)))
        level = np.full(frame.height, Level.NONE.label, dtype=object)
        for label in order:
            min_share, needs_composite = self.ladder[label]
            hit = (share >= min_share - 1e-12) & (comp if needs_composite else True)
            level[hit] = label
        return frame.select("ds").with_columns(
            *[pl.Series(k, v) for k, v in signals.items()],
            pl.Series("signal_share", np.asarray(share, dtype=np.float64)),
            pl.Series("level", level.astype(str)),
        )

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``ds``, ``signal_<name>`` per column, ``signal_share``, ``level`` and
        ``probability`` (the training frequency of a crisis within the horizon at that level
        or above; the base rate where no rung holds)."""
        if not self.fits:
            raise FrameError("the market signals are not fitted", fix="call fit(frame, labels) on a training period")
        out = self._levels(frame)
        probs = {**self.level_probability, Level.NONE.label: self.base_rate}
        return out.with_columns(pl.col("level").replace_strict(probs, return_dtype=pl.Float64).alias("probability"))

    def describe(self) -> dict[str, Any]:
        """The fit as JSON-ready evidence: thresholds, NSR, weights, level probabilities."""
        span = self.train_span
        return {
            "method": "KLR signals (Kaminsky, Lizondo & Reinhart 1998) on a CISS-style composite",
            "horizon_days": self.horizon_days,
            "train_span": [span[0].isoformat(), span[1].isoformat()] if span else None,
            "fits": {n: f.as_dict() for n, f in self.fits.items()},
            "ladder": {k: list(v) for k, v in self.ladder.items()},
            "level_probability": self.level_probability,
            "level_rows": self.level_rows,
            "base_rate": self.base_rate,
        }


def crisis_episodes(events: pl.DataFrame, *, gap_days: float) -> pl.DataFrame:
    """Merge events whose onset falls within ``gap_days`` of the previous one's trough (or
    end) into one episode: the onset of the first, the latest trough and end. A second leg of
    one crisis (2002 after 2001, 2009 after 2008) is not a new crisis to warn of; KLR merged
    crises the same way. ``events`` sorted or not; columns ``onset`` and optional ``trough``,
    ``end``, ``peak``, ``depth``, ``event_id``."""
    if events.height == 0:
        return events
    frame = events.sort("onset")
    rows: list[dict[str, Any]] = []
    for r in frame.iter_rows(named=True):
        if rows:
            last = rows[-1]
            stop = last.get("trough") or last.get("end")
            if stop is not None and r["onset"] - stop <= timedelta(days=gap_days):
                for key in ("trough", "end"):
                    if key in r and (r[key] is None or (last.get(key) is not None and r[key] > last[key])):
                        last[key] = r[key]
                if (
                    "depth" in r
                    and r["depth"] is not None
                    and (last.get("depth") is None or r["depth"] < last["depth"])
                ):
                    last["depth"] = r["depth"]
                continue
        rows.append(dict(r))
    return pl.DataFrame(rows, schema=frame.schema)
