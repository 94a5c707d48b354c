"""Offsets (steps) against the noise of the series: the machinery GNSS and tide gauges share.

A co-seismic offset in a GNSS position and a subsided tide gauge are the same thing, the
ground under the instrument moved, so one detector serves both
(:func:`hazards.geodetic.gnss_offsets` on daily positions, :func:`hazards.coastal.sustained_steps`
on monthly sea level):

- :func:`find_offsets`: a scan of adjacent window means proposes offsets, each is placed at
  the maximum-likelihood split around it (``_best_split``, the split of
  :func:`hazards.geodetic.find_change_points`), sized against a trend + seasonal fit of the
  window before it, tested against the noise measured there, and kept if the new level
  persisted; accepted offsets enter the whole-series fit as Heaviside terms.
- :func:`offset_noise` / :class:`OffsetNoise`: white + flicker + random-walk noise from the
  Allan variance (Allan 1966, "Statistics of atomic frequency standards", Proc. IEEE 54(2)
  221-230), and the standard error of a difference of window means under it. GNSS position
  noise is white + flicker (Mao, Harrison & Dixon 1999, JGR 104(B2) 2797-2816; Williams et al.
  2004, JGR 109 B03412) with random walk from the monument (Langbein & Johnson 1997, JGR
  102(B1) 591-603); flicker noise does not average down, so a white-noise standard error is
  too small, by a factor of about 5 at 30-day windows on the bundled stations.

Arrays in, arrays out (``t`` in decimal years, sorted); the frame functions live in
:mod:`hazards.geodetic` and :mod:`hazards.coastal`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import nnls

from core.errors import FrameError

__all__ = ["OffsetNoise", "find_offsets", "offset_noise"]

_OFFSET_SCHEMA: dict[str, pl.DataType] = {
    "unique_id": pl.Utf8(),
    "ds": pl.Datetime("us"),
    "before_ds": pl.Datetime("us"),
    "confirmed_ds": pl.Datetime("us"),
    "size_mm": pl.Float64(),
    "sigma_mm": pl.Float64(),
    "z": pl.Float64(),
    "noise_mm": pl.Float64(),
    "flicker_mm": pl.Float64(),
    "random_walk_mm": pl.Float64(),
    "sigma_white_mm": pl.Float64(),
}


@dataclass(frozen=True)
class OffsetNoise:
    """Noise of a residual series, as the three terms of its Allan variance (Allan 1966).

    ``sigma_A^2(tau) = white^2 / tau + flicker^2 + random_walk^2 (2 tau^2 + 1) / (6 tau)``,
    ``tau`` in observations: white noise averages down as ``1/tau``, flicker (1/f) noise does
    not average down at all (the Allan variance of a flicker process is flat), a random walk
    grows with ``tau``. ``white`` is the scatter of one observation, ``flicker`` the floor of
    the Allan deviation, ``random_walk`` the standard deviation of one step of the walk.
    """

    white: float
    flicker: float
    random_walk: float

    def allan_variance(self, tau: float) -> float:
        """Half the expected squared difference of two adjacent ``tau``-observation means."""
        return self.white**2 / tau + self.flicker**2 + self.random_walk**2 * (2 * tau * tau + 1) / (6 * tau)

    def offset_sigma(self, before: int, after: int) -> float:
        """Standard error of ``mean(after window) - mean(before window)`` under this noise."""
        tau = 0.5 * (before + after)
        coloured = self.allan_variance(tau) - self.white**2 / tau
        return float(np.sqrt(self.white**2 * (1.0 / before + 1.0 / after) + 2.0 * coloured))

    def white_offset_sigma(self, before: int, after: int) -> float:
        """What the standard error would be if the noise were white: flicker's inflation is the ratio."""
        return float(self.white * np.sqrt(1.0 / before + 1.0 / after))


def offset_noise(residual: np.ndarray) -> OffsetNoise:
    """White + flicker + random-walk noise of ``residual`` (trend and seasonal terms removed).

    The Allan variance is measured at averaging lengths 1, 2, 3, 5, ... up to an eighth of the
    series (overlapping windows; robust scale, 1.4826 x MAD, so an outlier or a stray step
    barely moves it), and the three terms of :class:`OffsetNoise` are fitted to it by
    non-negative least squares on relative error, each length weighted by the square root of
    its number of independent window pairs (the long ones are few and noisy). Needs at least
    16 values.
    """
    r = np.asarray(residual, dtype=np.float64)
    r = r[np.isfinite(r)]
    n = len(r)
    if n < 16:
        raise FrameError(
            f"the noise window has {n} values, the noise estimate needs at least 16",
            fix="give the series a longer stretch before the offset",
        )
    taus = np.unique(np.round(np.geomspace(1, max(2, n // 8), num=12)).astype(int))
    rows, observed, weight = [], [], []
    for tau in taus:
        avar = _allan_variance(r, int(tau))
        if avar <= 0.0:
            continue
        rows.append([1.0 / tau, 1.0, (2.0 * tau * tau + 1.0) / (6.0 * tau)])
        observed.append(avar)
        weight.append(np.sqrt(n / (2.0 * tau)))
    if not rows:
        return OffsetNoise(white=float(np.std(r)), flicker=0.0, random_walk=0.0)
    w = np.asarray(weight) / np.asarray(observed)
    coef, _ = nnls(np.asarray(rows) * w[:, None], np.asarray(weight))
    return OffsetNoise(
        white=float(np.sqrt(coef[0])), flicker=float(np.sqrt(coef[1])), random_walk=float(np.sqrt(coef[2]))
    )


def _allan_variance(r: np.ndarray, tau: int) -> float:
    """Robust overlapping Allan variance of ``r`` at averaging length ``tau`` (0.0 when too short)."""
    csum = np.concatenate(([0.0], np.cumsum(r)))
    means = (csum[tau:] - csum[:-tau]) / tau
    diff = means[tau:] - means[:-tau]
    if len(diff) < 2:
        return 0.0
    scale = 1.4826 * float(np.median(np.abs(diff - np.median(diff))))
    return 0.5 * scale * scale


def _design(t: np.ndarray, *, t0: float, harmonics: int, steps: list[float]) -> np.ndarray:
    """Columns: 1, t - t0 (years), cos/sin(2 pi k t) for k = 1..harmonics, H(t >= step)."""
    cols = [np.ones_like(t), t - t0]
    for k in range(1, harmonics + 1):
        cols += [np.cos(2 * np.pi * k * t), np.sin(2 * np.pi * k * t)]
    cols += [(t >= s).astype(np.float64) for s in steps]
    return np.column_stack(cols)


def _seasonal_terms(t: np.ndarray, harmonics: int) -> int:
    """Seasonal harmonics only when the fit spans 1.5 years or more (else they alias the trend)."""
    return harmonics if len(t) and t[-1] - t[0] >= 1.5 else 0


def _offset_at(
    t: np.ndarray,
    y: np.ndarray,
    k: int,
    *,
    window: int,
    noise_years: float,
    harmonics: int,
    min_noise_points: int,
    start: int,
    end: int,
    seasonal: np.ndarray,
) -> dict[str, float] | None:
    """Test an offset between index ``k - 1`` and ``k``; None when the data cannot test it.

    Trend + seasonal terms are fitted on the ``noise_years`` before ``t[k]``, never reaching
    back past ``start`` (the previous offset: a new regime starts there) and extrapolated
    forward; a window shorter than 1.5 years takes its seasonal terms from the whole-series
    fit (``seasonal``) and fits only the line. ``size`` is the mean residual of the
    ``window`` observations from ``k`` (fewer if ``end``, the next offset, comes first; at
    least half) minus that of the ``window`` before, ``sigma`` its standard error;
    ``level`` is the mean residual after against the fit itself (a return from a short
    excursion has a large ``size`` but no ``level``). ``persisted`` counts the observations
    from ``k`` (up to ``end``) before the residual makes a sustained return: the first ``j``
    where the mean of ``window`` residuals from ``j`` is back on the old side of ``size / 2``.
    """
    lo = max(int(np.searchsorted(t, t[k] - noise_years, side="left")), start)
    if k - lo < max(min_noise_points, window + 8):
        return None
    hi = min(k + window, end)
    if hi - k < max(1, window // 2):
        return None
    pre_t = t[lo:k]
    h = _seasonal_terms(pre_t, harmonics)
    y = y if h or not harmonics else y - seasonal
    beta, *_ = np.linalg.lstsq(_design(pre_t, t0=t[k], harmonics=h, steps=[]), y[lo:k], rcond=None)
    r_pre = y[lo:k] - _design(pre_t, t0=t[k], harmonics=h, steps=[]) @ beta
    r_after = y[k:end] - _design(t[k:end], t0=t[k], harmonics=h, steps=[]) @ beta
    before, after = min(window, len(r_pre)), hi - k
    noise = offset_noise(r_pre)
    level = float(np.mean(r_after[:after]))
    size = level - float(np.mean(r_pre[-before:]))
    # A short noise window cannot tell a random walk from the trend it fits away, so the model
    # may miss coloured power at the window's own length: take the direct measurement there
    # when it is larger (conservative).
    measured = np.sqrt(2.0 * _allan_variance(r_pre, window)) if len(r_pre) >= 4 * window else 0.0
    unequal = np.sqrt(window * (1.0 / before + 1.0 / after) / 2.0)
    sigma = max(noise.offset_sigma(before, after), float(measured) * unequal)
    return {
        "size": size,
        "level": level,
        "sigma": sigma,
        "white": noise.white,
        "flicker": noise.flicker,
        "random_walk": noise.random_walk,
        "sigma_white": noise.white_offset_sigma(before, after),
        "persisted": float(_persisted(r_after, size=size, window=window)),
    }


def _persisted(r_after: np.ndarray, *, size: float, window: int) -> int:
    """Observations until the mean of ``window`` residuals falls back past ``size / 2`` (or all)."""
    n = len(r_after)
    if n < window:
        return n
    c = np.concatenate(([0.0], np.cumsum(r_after)))
    means = (c[window:] - c[:-window]) / window
    back = np.flatnonzero(np.sign(size) * (means - size / 2.0) <= 0.0)
    return int(back[0]) if len(back) else n


def _window_scan(r: np.ndarray, window: int) -> np.ndarray:
    """``mean(r[k:k+w]) - mean(r[k-w:k])`` for k = w .. n - w (element j is k = j + w)."""
    c = np.concatenate(([0.0], np.cumsum(r)))
    k = np.arange(window, len(r) - window + 1)
    return (c[k + window] - c[k]) / window - (c[k] - c[k - window]) / window


def _refine(r: np.ndarray, k: int, window: int) -> int:
    """Place an offset found by the scan at the maximum-likelihood split of the residual around it.

    The scan's peak is a broad triangle; the single-change split of
    :func:`hazards.geodetic.find_change_points` (``_best_split``) on
    ``r[k - window : k + window]`` is sharper.
    """
    lo, hi = max(0, k - window), min(len(r), k + window)
    split = _best_split(r[lo:hi], max(2, window // 10))
    return k if split is None else lo + split[0]


def find_offsets(
    t: np.ndarray,
    y: np.ndarray,
    *,
    window: int,
    noise_years: float,
    harmonics: int,
    min_sigma: float,
    min_noise_points: int,
    max_offsets: int = 10,
    max_tests: int = 200,
) -> list[tuple[int, dict[str, float]]]:
    """Offsets ``(index of the first observation after, test)`` in one sorted series (arrays).

    1. Fit trend + seasonal + the offsets accepted so far to the whole series; scan the
       residual for the largest differences of adjacent ``window`` means (scaled by their own
       robust spread, so the scan adapts to coloured noise); place each peak at the
       maximum-likelihood split around it (:func:`_refine`).
    2. Test the peaks, largest first (down to ``min_sigma / 2`` on the scan's scale), against
       the noise of the window before each (:func:`_offset_at`): accept the first whose
       ``|size|`` reaches ``min_sigma * sigma`` and whose ``level`` is at least half the size
       on the same side (not a return from an excursion); refit, rescan. Peaks within
       ``window`` of an accepted or rejected one are skipped.
    3. Re-measure every accepted offset knowing the others, and keep those whose new level
       persisted for at least ``window`` observations (a snow-on-antenna excursion or a warm
       season that comes and goes is not an offset).
    """
    n = len(y)
    accepted: list[int] = []
    rejected: list[int] = []
    tests = 0

    h = _seasonal_terms(t, harmonics)
    seasonal = np.zeros(n)

    def test_at(k: int, offsets: list[int]) -> dict[str, float] | None:
        start = max((i for i in offsets if i < k), default=0)
        end = min((i for i in offsets if i > k), default=n)
        return _offset_at(
            t,
            y,
            k,
            window=window,
            noise_years=noise_years,
            harmonics=harmonics,
            min_noise_points=min_noise_points,
            start=start,
            end=end,
            seasonal=seasonal,
        )

    while len(accepted) < max_offsets and n >= 2 * window + 2 and tests < max_tests:
        steps = [float(t[i]) for i in sorted(accepted)]
        x = _design(t, t0=float(np.mean(t)), harmonics=h, steps=steps)
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ beta
        seasonal = x[:, 2 : 2 + 2 * h] @ beta[2 : 2 + 2 * h]
        scan = _window_scan(resid, window)
        spread = 1.4826 * float(np.median(np.abs(scan - np.median(scan)))) or float(np.std(scan)) or 1.0
        found = None
        for j in np.argsort(-np.abs(scan)):
            if abs(scan[j]) / spread < 0.5 * min_sigma or tests >= max_tests:
                break
            k = _refine(resid, int(j) + window, window)
            if k < 1 or any(abs(k - other) < window for other in accepted + rejected):
                continue
            tests += 1
            test = test_at(k, accepted)
            if (
                test is not None
                and abs(test["size"]) >= min_sigma * test["sigma"]
                and test["size"] * test["level"] >= 0.5 * test["size"] ** 2
            ):
                found = k
                break
            rejected.append(k)
        if found is None:
            break
        accepted.append(found)
    kept = sorted(accepted)
    while True:  # each pass drops at least one offset or returns
        tests_now = [(k, test_at(k, kept)) for k in kept]
        still = [k for k, test in tests_now if test is not None and test["persisted"] >= window]
        if still == kept:
            return [(k, test) for k, test in tests_now if test is not None]
        kept = still


def _best_split(x: np.ndarray, min_size: int) -> tuple[int, float] | None:
    """Split index and the drop in squared error it buys, for one segment."""
    m = len(x)
    if m < 2 * min_size:
        return None
    c1 = np.cumsum(x)
    c2 = np.cumsum(x * x)
    k = np.arange(min_size, m - min_size + 1)
    left = c2[k - 1] - c1[k - 1] ** 2 / k
    right = (c2[-1] - c2[k - 1]) - (c1[-1] - c1[k - 1]) ** 2 / (m - k)
    total = c2[-1] - c1[-1] ** 2 / m
    gain = total - (left + right)
    i = int(np.argmax(gain))
    return int(k[i]), float(gain[i])


def offsets_frame(rows: list[dict[str, object]], extra: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Rows into the offset frame (columns of ``_OFFSET_SCHEMA`` plus ``extra``)."""
    schema = {**_OFFSET_SCHEMA, **(extra or {})}
    return pl.DataFrame(rows, schema=schema)


def offset_row(uid: str, ds: pl.Series, k: int, test: dict[str, float], *, window: int) -> dict[str, object]:
    """One row of the offset frame for the offset before ``ds[k]`` (``confirmed_ds``: ``window`` later)."""
    return {
        "unique_id": uid,
        "ds": ds[k],
        "before_ds": ds[k - 1],
        "confirmed_ds": ds[min(k + window - 1, len(ds) - 1)],
        "size_mm": test["size"],
        "sigma_mm": test["sigma"],
        "z": test["size"] / test["sigma"],
        "noise_mm": test["white"],
        "flicker_mm": test["flicker"],
        "random_walk_mm": test["random_walk"],
        "sigma_white_mm": test["sigma_white"],
    }
