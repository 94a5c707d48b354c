"""PyOD detectors over sliding-window subsequences (TSB-AD's best univariate form).

:func:`subsequence_scores` turns each series into windows of ``w`` consecutive standardised
values (the window ending at ``t`` scores ``t``), fits one PyOD detector on the windows of
the *past* and scores the windows that follow, refitting at ``blocks`` cut points (train
window grows, retraining cadence fixed), so a point is never scored by a model that saw it.
The first 15% of a series (its warm-up, at most 750 points) is fitted and scored in-sample.
Raw scores are PyOD ``decision_function`` values (higher = more abnormal); ``score`` comes
from :func:`anomaly.calibration.calibrate_causal`.

Methods (:data:`PYOD_METHODS`, detector name ``subseq_<method>``): ``pca`` (Shyu et al.
principal-component outlier score), ``iforest``, ``ecod``, ``copod``, ``hbos``, ``knn``,
``lof``. Window length: pass ``windows`` per series (the ``[anomaly] window`` of its
frequency), or leave it out and :func:`dominant_period` chooses from the autocorrelation
of the warm-up only (the first 15% of the series, at most 750 points), so the window length
does not depend on data the detector has not yet seen.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from anomaly.calibration import calibrate_causal
from core.errors import FrameError
from core.frames import SCORE_COLUMNS, empty_scores, validate_series

__all__ = [
    "PYOD_METHODS",
    "STORED_METHODS",
    "SubsequenceFit",
    "cadence_basis",
    "cadence_warmup",
    "default_window",
    "dominant_period",
    "refit_edges",
    "score_from",
    "subsequence_scores",
]

#: Most windows a detector is fitted on (evenly thinned history beyond that): keeps kNN/LOF
#: and the forests at a bounded cost on long series.
_MAX_FIT = 4000
_MIN_WINDOWS = 10


class _Detector(Protocol):
    """The part of a PyOD detector used here (PyOD ships no type information)."""

    decision_scores_: np.ndarray

    # positional-only: PyOD names the argument X, callers here pass it by position
    def fit(self, x: np.ndarray, /) -> object: ...

    def decision_function(self, x: np.ndarray, /) -> np.ndarray: ...


def _pyod(method: str, seed: int) -> _Detector:
    """Build a PyOD detector lazily (imports are heavy; only the chosen one is loaded)."""
    if method == "pca":
        from pyod.models.pca import PCA

        return PCA(random_state=seed)
    if method == "iforest":
        from pyod.models.iforest import IForest

        return IForest(n_estimators=100, random_state=seed, n_jobs=1)
    if method == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD()
    if method == "copod":
        from pyod.models.copod import COPOD

        return COPOD()
    if method == "hbos":
        from pyod.models.hbos import HBOS

        return HBOS()
    if method == "knn":
        from pyod.models.knn import KNN

        return KNN(n_neighbors=10)
    if method == "lof":
        from pyod.models.lof import LOF

        return LOF(n_neighbors=20, novelty=True) if _lof_takes_novelty() else LOF(n_neighbors=20)
    raise FrameError(f"unknown subsequence method {method!r}", fix=f"use one of {list(PYOD_METHODS)}")


def _lof_takes_novelty() -> bool:
    import inspect

    from pyod.models.lof import LOF

    return "novelty" in inspect.signature(LOF.__init__).parameters


PYOD_METHODS: tuple[str, ...] = ("pca", "iforest", "ecod", "copod", "hbos", "knn", "lof")


def dominant_period(y: np.ndarray, *, low: int = 4, high: int = 400, min_correlation: float = 0.3) -> int | None:
    """Lag of the highest autocorrelation peak in ``[low, high]`` (None if below ``min_correlation``)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 3 * low:
        return None
    x = y - y.mean()
    spectrum = np.fft.rfft(x, n=2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if acf[0] <= 0:
        return None
    acf = acf / acf[0]
    upper = min(high, n // 3)
    if upper <= low:
        return None
    segment = acf[low:upper]
    # Peaks only: a slowly decaying ACF (trend) has its maximum at the lowest lag, not a period.
    peaks = np.flatnonzero((segment[1:-1] > segment[:-2]) & (segment[1:-1] >= segment[2:])) + 1
    if len(peaks) == 0:
        return None
    best = peaks[np.argmax(segment[peaks])]
    return int(low + best) if segment[best] >= min_correlation else None


def default_window(y: np.ndarray, *, fallback: int = 24, low: int = 8, high: int = 64) -> int:
    """Window from the dominant period, clipped to ``[low, high]``; ``fallback`` without one."""
    period = dominant_period(y)
    return int(np.clip(period if period else fallback, low, high))


def subsequence_scores(
    series: pl.DataFrame,
    *,
    method: str = "pca",
    windows: Mapping[str, int] | None = None,
    blocks: int = 8,
    seed: int = 0,
    min_history: int = 60,
    tail_quantile: float = 0.9,
    tail: str = "exponential",
) -> pl.DataFrame:
    """Scores of one PyOD ``method`` over sliding subsequences (module docstring).

    Series shorter than ``min_history`` (or than ``window + 10``) get no rows; the first
    ``w - 1`` points of a series carry the score of its first full window.
    """
    if method not in PYOD_METHODS:
        raise FrameError(f"unknown subsequence method {method!r}", fix=f"use one of {list(PYOD_METHODS)}")
    frame = validate_series(series)
    parts = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        y = part.get_column("y").to_numpy()
        w = _window(uid, y, windows)
        if len(y) < max(min_history, w + _MIN_WINDOWS):
            continue
        raw = _raw_scores(y, w, lambda: _pyod(method, seed), blocks)
        parts.append(
            pl.DataFrame(
                {"unique_id": uid, "ds": part.get_column("ds"), "detector": f"subseq_{method}", "raw_score": raw}
            )
        )
    if not parts:
        return empty_scores()
    return calibrate_causal(pl.concat(parts), tail_quantile=tail_quantile, tail=tail).select(SCORE_COLUMNS)


def _window(uid: str, y: np.ndarray, windows: Mapping[str, int] | None) -> int:
    if windows is None:
        # Causal: the period is read from the warm-up, not from the whole series.
        return default_window(y[: _warmup(len(y))])
    if uid not in windows:
        raise FrameError(
            f"series {uid!r} has no window length",
            fix="pass windows={unique_id: w} (the [anomaly] window of its frequency), "
            "or windows=None to use the dominant period",
        )
    w = windows[uid]
    if not isinstance(w, int) or w < 2:
        raise FrameError(
            f"window for {uid!r} is {w!r}; need an integer >= 2",
            fix="use the [anomaly] window of the series' frequency, e.g. 5 for B",
        )
    return w


def _warmup(n: int) -> int:
    """Warm-up length: 15% of the series, at least 20 and at most 750 points (NAB's probation)."""
    return int(min(max(0.15 * n, 20), 750, n))


def _raw_scores(y: np.ndarray, w: int, build: Callable[[], _Detector], blocks: int) -> np.ndarray:
    n = len(y)
    warm = int(min(max(0.15 * n, w + _MIN_WINDOWS), 750, n))
    warm = max(warm, w + _MIN_WINDOWS)
    # Standardise with the warm-up only (a later level must not leak into earlier windows).
    centre = float(np.median(y[:warm]))
    spread = float(np.std(y[:warm])) or float(np.std(y)) or 1.0
    x = (y - centre) / spread
    # A tiny deterministic jitter keeps constant stretches from giving singular fits.
    x = x + 1e-6 * np.random.default_rng(0).standard_normal(n)
    windows = sliding_window_view(x, w)  # row j = window ending at j + w - 1
    raw = np.empty(n)
    model = build()
    model.fit(windows[: warm - w + 1])
    raw[w - 1 : warm] = model.decision_scores_
    edges = np.unique(np.linspace(warm, n, max(blocks, 1) + 1).astype(int))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        past = windows[: lo - w + 1]
        if len(past) > _MAX_FIT:
            past = past[np.linspace(0, len(past) - 1, _MAX_FIT).astype(int)]
        model = build()
        model.fit(past)
        raw[lo:hi] = model.decision_function(windows[lo - w + 1 : hi - w + 1])
    raw[: w - 1] = raw[w - 1]
    return np.nan_to_num(raw, nan=0.0, posinf=np.finfo(np.float64).max / 4, neginf=0.0)


# -- fixed refit cadence (the cycle's incremental scoring, issue 21) -------------------------


def refit_edges(n: int, *, warmup: int, every: int) -> list[int]:
    """Refit edges of a series of ``n`` points under a fixed cadence, all below ``n``.

    ``warmup`` (the in-sample warm-up ends there), then doubling while below ``every``, then
    every multiple of ``every`` above the last of those. The edges are counted from the
    series' first observation and do not depend on ``n``: a point is scored by the same fit
    however long the series has grown since.
    """
    if warmup < 1 or every < 1:
        raise FrameError(
            f"warmup={warmup}, every={every}; both need to be at least 1",
            fix="use [scoring] refit_every >= 1 (default 365 steps)",
        )
    edges = [warmup]
    while edges[-1] * 2 < every:
        edges.append(edges[-1] * 2)
    step = (edges[-1] // every + 1) * every
    while step < n:
        edges.append(step)
        step += every
    return [e for e in edges if e < n]


def cadence_warmup(window: int, min_history: int) -> int:
    """In-sample warm-up under the fixed cadence: the minimum history (at least ``window + 10``)."""
    return max(window + _MIN_WINDOWS, min_history)


#: Methods whose fitted detector :class:`SubsequenceFit` stores (numpy arrays); the others refit.
STORED_METHODS: tuple[str, ...] = ("pca",)


@dataclass(frozen=True)
class SubsequenceFit:
    """A subsequence detector fitted at one refit edge: enough to score the windows after it.

    ``edge``: index (from the series' first observation) of the first point this fit scores;
    it was fitted on the windows ending before it, standardised by ``centre`` and ``spread``
    (median and standard deviation of the observations before the edge). ``arrays`` hold the
    fitted detector for the methods whose fit is stored (:data:`STORED_METHODS`: PCA's scaler
    mean and scale, selected components and their weights); for the others it is empty and
    the detector is refitted from the history when used (same seed, same result).
    """

    method: str
    window: int
    warmup: int
    every: int
    seed: int
    edge: int
    centre: float
    spread: float
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False)
    model: _Detector | None = field(default=None, compare=False, repr=False)

    @property
    def basis(self) -> str:
        """What the fit depends on besides the data: a stored fit is reused only on the same basis."""
        return cadence_basis(self.method, window=self.window, warmup=self.warmup, every=self.every, seed=self.seed)

    @property
    def stored(self) -> bool:
        """True when :meth:`to_bytes` carries the fitted detector (else it is refitted when used)."""
        return bool(self.arrays)

    def to_bytes(self) -> bytes:
        """The fit as ``.npz`` bytes (numpy arrays only, no pickle)."""
        buffer = io.BytesIO()
        header = np.asarray([self.window, self.warmup, self.every, self.seed, self.edge], dtype=np.int64)
        arrays: dict[str, Any] = {
            "method": np.asarray(self.method),
            "header": header,
            "standard": np.asarray([self.centre, self.spread], dtype=np.float64),
            **{f"a_{k}": v for k, v in self.arrays.items()},
        }
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SubsequenceFit:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            window, warmup, every, seed, edge = (int(v) for v in npz["header"])
            centre, spread = (float(v) for v in npz["standard"])
            arrays = {k.removeprefix("a_"): npz[k] for k in npz.files if k.startswith("a_")}
            method = str(npz["method"])
        return cls(method, window, warmup, every, seed, edge, centre, spread, arrays)

    def score(self, y: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        """Raw scores of the windows ending at each point of ``y[w-1:]`` (``y`` holds the
        ``w - 1`` observations before the first scored point, ``jitter`` the same span's)."""
        windows = sliding_window_view((y - self.centre) / self.spread + jitter, self.window)
        if self.arrays:
            return _pca_score(windows, self.arrays)
        if self.model is None:
            raise FrameError(
                f"the stored {self.method} fit at edge {self.edge} carries no detector",
                fix="refit it from the history (score_from does this when given the series)",
            )
        return np.asarray(self.model.decision_function(windows), dtype=np.float64)


def cadence_basis(method: str, *, window: int, warmup: int, every: int, seed: int) -> str:
    return f"subseq_{method} window={window} warmup={warmup} refit_every={every} seed={seed}"


def _pca_score(windows: np.ndarray, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """PyOD PCA's ``decision_function`` from its stored arrays: the sum of the weighted
    distances of each standardised window to the selected (smallest) principal components."""
    from scipy.spatial.distance import cdist

    x = (windows - arrays["mean"]) / arrays["scale"]
    return np.asarray(np.sum(cdist(x, arrays["components"]) / arrays["weights"], axis=1), dtype=np.float64)


def _jitter(n: int) -> np.ndarray:
    # A tiny deterministic jitter keeps constant stretches from giving singular fits; the
    # value at index i does not depend on n (the generator draws in order).
    return 1e-6 * np.random.default_rng(0).standard_normal(n)


def _fit_at(
    y: np.ndarray, jitter: np.ndarray, *, method: str, window: int, warmup: int, every: int, seed: int, edge: int
) -> tuple[SubsequenceFit, np.ndarray]:
    """Fit on the windows ending before ``edge``; returns the fit and its training windows' scores."""
    w = window
    past_y = y[:edge]
    centre = float(np.median(past_y))
    spread = float(np.std(past_y)) or 1.0
    windows = sliding_window_view((past_y - centre) / spread + jitter[:edge], w)
    past = windows
    if len(past) > _MAX_FIT:
        past = past[np.linspace(0, len(past) - 1, _MAX_FIT).astype(int)]
    model = _pyod(method, seed)
    model.fit(past)
    arrays: dict[str, np.ndarray] = {}
    if method in STORED_METHODS:
        fitted: Any = model
        arrays = {
            "mean": np.asarray(fitted.scaler_.mean_, dtype=np.float64),
            "scale": np.asarray(fitted.scaler_.scale_, dtype=np.float64),
            "components": np.asarray(fitted.selected_components_, dtype=np.float64),
            "weights": np.asarray(fitted.selected_w_components_, dtype=np.float64),
        }
    fit = SubsequenceFit(method, w, warmup, every, seed, edge, centre, spread, arrays, None if arrays else model)
    return fit, fit.score(past_y, jitter[:edge])


def score_from(
    y: np.ndarray,
    *,
    method: str,
    window: int,
    warmup: int,
    every: int,
    seed: int = 0,
    start: int = 0,
    fit: SubsequenceFit | None = None,
) -> tuple[np.ndarray, SubsequenceFit | None]:
    """Raw scores of ``y[start:]`` under the fixed refit cadence, and the fit of the last edge.

    The first ``warmup`` points are fitted and scored in-sample; from then on each block
    between two :func:`refit_edges` is scored by a detector fitted on the windows before the
    block, standardised by the observations before it. The score of a point depends on the
    observations up to it only (and on the basis), so scores computed from ``start`` equal
    those of the whole series. ``fit``: a stored fit; used for the block starting at its
    edge when its basis matches, so a series that gained a few points is scored without
    refitting. Returns ``(raw, fit)``; the fit is None when the series ends within the warm-up.
    """
    n = len(y)
    w = window
    if warmup < w + 1 or n < warmup:
        raise FrameError(
            f"a series of {n} points with window {w} cannot have a warm-up of {warmup}",
            fix="use cadence_warmup(window, min_history) and score series at least that long",
        )
    jitter = _jitter(n)
    edges = refit_edges(n, warmup=warmup, every=every)
    bounds = [*edges, n]
    raw = np.empty(n)
    args: dict[str, Any] = {"method": method, "window": w, "warmup": warmup, "every": every, "seed": seed}
    basis = cadence_basis(method, window=w, warmup=warmup, every=every, seed=seed)
    usable = fit if fit is not None and fit.stored and fit.basis == basis else None
    if start < warmup:
        usable, in_sample = _fit_at(y, jitter, edge=warmup, **args)
        raw[w - 1 : warmup] = in_sample
        raw[: w - 1] = raw[w - 1]
    last: SubsequenceFit | None = None
    for lo, hi in itertools.pairwise(bounds):
        if hi <= start:
            continue
        if usable is not None and usable.edge == lo:
            model = usable
        else:
            model, _ = _fit_at(y, jitter, edge=lo, **args)
        first = max(lo, start)
        raw[first:hi] = model.score(y[first - w + 1 : hi], jitter[first - w + 1 : hi])
        last = model
    out = np.nan_to_num(raw[start:], nan=0.0, posinf=np.finfo(np.float64).max / 4, neginf=0.0)
    return out, last
