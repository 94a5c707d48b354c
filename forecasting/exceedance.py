"""Risk from forecasts: the probability that a series exceeds a threshold within the horizon.

Thresholds (:func:`resolve_thresholds`) are written as short specs, per domain or per series
in ``ews.toml`` (``[forecast] thresholds``):

- ``abs:5.0``: the absolute value 5.0;
- ``p99``: the series' own historical 99th percentile (``p1`` the 1st, any 0 < p < 100);
- ``rl10``: the 10-year return level: the value whose annual maximum is exceeded once in
  10 years on average (Gumbel fit to annual maxima by moments; needs 5 or more years);
- a ``:below`` suffix (``p1:below``, ``abs:2.0:below``) asks for a fall below the value
  instead of a rise above it (sea-ice extent, reservoir level, a yield floor).

Contract of :func:`exceedance_probabilities`: in, a forecast frame (``unique_id, ds, model,
mean, q05 ... q95``; one model per series) and a threshold frame (``unique_id, threshold,
value, direction``); out, one row per series, threshold and horizon step:

``unique_id, ds, model, threshold, threshold_value, direction, p_step_exceed, p_path_cross``

- ``p_step_exceed``: P(y at step ``ds`` is beyond the threshold), read off the step's forecast
  distribution: linear in normal-score space between the forecast quantiles, normal tails
  beyond q05 / q95 scaled so they meet the outer quantile (exact for a normal forecast);
- ``p_path_cross``: P(the path goes beyond the threshold at any step up to and including
  ``ds``), so it never falls along the horizon and its last value is "within the horizon".
  Marginal quantiles say nothing about how steps move together; the engine assumes
  forecast errors accumulate like a random walk (independent increments in normal-score
  space, the spread of each step taken from its q05-q95 width, made non-decreasing). Then
  the crossing probability is computed by simulation with a fixed seed (``paths`` paths,
  standard error below 0.01), so reruns agree. It always lies between the largest
  ``p_step_exceed`` so far and the sum of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from scipy.special import ndtr, ndtri

from core.errors import FrameError
from core.frames import QUANTILES, quantile_column

__all__ = [
    "EXCEEDANCE_COLUMNS",
    "parse_threshold",
    "resolve_thresholds",
    "exceedance_probabilities",
]

EXCEEDANCE_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "ds",
    "model",
    "threshold",
    "threshold_value",
    "direction",
    "p_step_exceed",
    "p_path_cross",
)
_SPEC = re.compile(r"^(?:(abs):(-?[0-9.eE+-]+)|p([0-9.]+)|rl([0-9.]+))(?::(above|below))?$")
_QCOLS = tuple(quantile_column(q) for q in QUANTILES)
_Z95 = float(ndtri(0.95))
#: Years of annual maxima needed for a return level.
_MIN_YEARS = 5
_EULER = 0.5772156649015329


def parse_threshold(spec: str) -> tuple[str, float, str]:
    """``(kind, number, direction)`` of a threshold spec, e.g. ``("p", 99.0, "above")``."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise FrameError(
            f"threshold spec {spec!r} is not understood",
            fix='write "abs:VALUE", "pNN" (historical percentile), or "rlYEARS" (return level), '
            'optionally with ":below"',
        )
    kind_abs, value, pct, years, direction = match.groups()
    direction = direction or "above"
    if kind_abs:
        return "abs", float(value), direction
    if pct is not None:
        p = float(pct)
        if not 0 < p < 100:
            raise FrameError(f"threshold {spec!r}: percentile {p} outside (0, 100)", fix="use e.g. p99")
        return "p", p, direction
    t = float(years)
    if t <= 1:
        raise FrameError(f"threshold {spec!r}: return period {t} years must exceed 1", fix="use e.g. rl10")
    return "rl", t, direction


#: A history-derived threshold first passed within this newest share of the record, and
#: still passed, measures a trend rather than a rare event (see _already_beyond).
_RECENT_SHARE = 0.10
_MIN_RECENT = 12


def resolve_thresholds(
    series: pl.DataFrame, specs: Mapping[str, Sequence[str]]
) -> tuple[pl.DataFrame, list[tuple[str, str, str]]]:
    """Threshold values per series from their specs and history.

    Returns ``(thresholds, notes)``: thresholds ``unique_id, threshold, value, direction``,
    and notes ``(unique_id, spec, why)`` for specs that could not be resolved (too little
    history for a return level) or say nothing (a trending series already beyond them).
    """
    rows = []
    notes: list[tuple[str, str, str]] = []
    value: float | None  # None: no return level could be fitted
    for (uid,), part in series.partition_by("unique_id", maintain_order=True, as_dict=True).items():
        y = part.get_column("y").to_numpy()
        for spec in specs.get(uid, ()):
            kind, number, direction = parse_threshold(spec)
            if kind == "abs":
                value = number
            elif kind == "p":
                value = float(np.percentile(y, number))
            else:
                value, why = _return_level(part, number, direction)
                if value is None:
                    notes.append((uid, spec, why))
                    continue
            if kind != "abs":
                why = _already_beyond(y, value, direction)
                if why:
                    notes.append((uid, spec, why))
                    continue
            rows.append((uid, spec, value, direction))
    frame = pl.DataFrame(
        rows,
        schema={"unique_id": pl.Utf8, "threshold": pl.Utf8, "value": pl.Float64, "direction": pl.Utf8},
        orient="row",
    )
    return frame, notes


def _already_beyond(y: np.ndarray, value: float, direction: str) -> str:
    """Why a history-derived threshold says nothing for this series, or "" when it does.

    A percentile or return level of a trending series (a price index, a drifting GNSS
    station) is passed at the end of the record and stays passed: "probability of crossing"
    would be near 1 every cycle and flag no risk. The sign: the newest observation is beyond
    the value and every earlier exceedance lies in the newest tenth of the record (a series
    with rare episodes, like a stress index in 2008 and 2020, keeps its threshold). Such a
    threshold is skipped with this note; an absolute threshold still applies.
    """
    beyond = y > value if direction == "above" else y < value
    if len(y) < _MIN_RECENT or not beyond[-1]:
        return ""
    first = int(np.argmax(beyond))
    if first < len(y) * (1 - _RECENT_SHARE):
        return ""
    return (
        f"not informative: the series has been beyond {value:.6g} only in its newest "
        f"{len(y) - first} of {len(y)} observations and still is (a trending series); "
        "set an absolute threshold in [forecast] series_thresholds"
    )


def _return_level(part: pl.DataFrame, years: float, direction: str) -> tuple[float | None, str]:
    """T-year return level from annual maxima (minima for ``below``), Gumbel by moments."""
    agg = pl.col("y").max() if direction == "above" else pl.col("y").min()
    # in year order: a group_by's order varies from run to run, and with it the last digit of
    # the mean and standard deviation (and of every threshold and grade evidence built on them)
    annual = part.group_by(pl.col("ds").dt.year()).agg(agg).sort("ds").get_column("y").to_numpy()
    if len(annual) < _MIN_YEARS:
        return None, f"{len(annual)} year(s) of history, a return level needs {_MIN_YEARS}"
    sign = 1.0 if direction == "above" else -1.0
    x = sign * annual
    beta = math.sqrt(6.0) * float(np.std(x, ddof=1)) / math.pi
    mu = float(np.mean(x)) - _EULER * beta
    level = mu - beta * math.log(-math.log(1.0 - 1.0 / years))
    return sign * level, ""


def exceedance_probabilities(
    forecasts: pl.DataFrame,
    thresholds: pl.DataFrame,
    *,
    paths: int = 4000,
    seed: int = 0,
) -> pl.DataFrame:
    """Step and path exceedance probabilities (definitions in the module docstring)."""
    missing = [c for c in ("unique_id", "ds", "model", *_QCOLS) if c not in forecasts.columns]
    if missing:
        raise FrameError(f"forecast frame lacks column(s) {missing}", fix="pass a forecast frame")
    per_series = forecasts.group_by("unique_id").agg(pl.col("model").n_unique().alias("n"))
    if per_series.filter(pl.col("n") > 1).height:
        raise FrameError(
            "exceedance needs one model per series; the frame has several",
            fix="filter the forecasts to each series' selected model first",
        )
    joined = thresholds.join(forecasts.select("unique_id").unique(), on="unique_id")
    if joined.height == 0:
        return pl.DataFrame(schema=_schema())
    fc = {uid: part.sort("ds") for (uid,), part in forecasts.partition_by("unique_id", as_dict=True).items()}
    fans = {uid: part.select(_QCOLS).to_numpy() for uid, part in fc.items()}
    rng_cache: dict[int, np.ndarray] = {}
    parts: dict[str, list] = {c: [] for c in ("row", "p_step", "p_path")}
    for i, row in enumerate(joined.iter_rows(named=True)):
        quantiles = fans[row["unique_id"]]
        h = quantiles.shape[0]
        if h not in rng_cache:
            rng_cache[h] = np.random.default_rng(seed).standard_normal((paths, h))
        p_step = _step_probability(quantiles, row["value"], above=row["direction"] == "above")
        parts["row"].append(np.full(h, i))
        parts["p_step"].append(p_step)
        parts["p_path"].append(_path_probability(p_step, quantiles, rng_cache[h]))
    # one frame for every (series, threshold): the threshold's row repeated over its series' steps
    index = pl.Series("index", np.concatenate(parts["row"]), dtype=pl.UInt32)
    meta = joined.select(
        "unique_id", "threshold", pl.col("value").cast(pl.Float64).alias("threshold_value"), "direction"
    ).select(pl.all().gather(index))
    steps = pl.concat([fc[uid].select("ds", "model") for uid in joined.get_column("unique_id")], how="vertical")
    out = pl.concat([meta, steps], how="horizontal").with_columns(
        pl.Series("p_step_exceed", np.concatenate(parts["p_step"])),
        pl.Series("p_path_cross", np.concatenate(parts["p_path"])),
    )
    return out.select(EXCEEDANCE_COLUMNS).sort("unique_id", "threshold", "ds")


def _schema() -> dict[str, pl.DataType]:
    return {
        "unique_id": pl.Utf8(),
        "ds": pl.Datetime("us"),
        "model": pl.Utf8(),
        "threshold": pl.Utf8(),
        "threshold_value": pl.Float64(),
        "direction": pl.Utf8(),
        "p_step_exceed": pl.Float64(),
        "p_path_cross": pl.Float64(),
    }


def _step_probability(quantiles: np.ndarray, value: float, *, above: bool) -> np.ndarray:
    """P(Y_t > value) (or < value) per step from the step's quantiles (all steps at once)."""
    z_levels = ndtri(np.asarray(QUANTILES))
    q = np.maximum.accumulate(quantiles, axis=1)  # guard against crossed quantiles
    first, middle, last = q[:, 0], q[:, q.shape[1] // 2], q[:, -1]
    low = value <= first
    high = ~low & (value >= last)
    inside = ~low & ~high
    cdf = np.empty(q.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = (middle - first) / _Z95
        cdf[low] = np.where(sigma[low] > 0, ndtr(-_Z95 + (value - first[low]) / sigma[low]), 0.0)
        sigma = (last - middle) / _Z95
        cdf[high] = np.where(sigma[high] > 0, ndtr(_Z95 + (value - last[high]) / sigma[high]), 1.0)
        # Linear in normal-score space between quantiles (np.interp per step: the last quantile
        # at or below the value, then the slope to the next): exact for a normal forecast.
        rows = q[inside]
        j = np.minimum((rows <= value).sum(axis=1) - 1, rows.shape[1] - 2)
        x0 = np.take_along_axis(rows, j[:, None], axis=1)[:, 0]
        x1 = np.take_along_axis(rows, j[:, None] + 1, axis=1)[:, 0]
        z = np.where(value == x0, z_levels[j], (z_levels[j + 1] - z_levels[j]) / (x1 - x0) * (value - x0) + z_levels[j])
        cdf[inside] = ndtr(z)
    out = 1.0 - cdf if above else cdf
    return np.clip(out, 0.0, 1.0)


def _path_probability(p_step: np.ndarray, quantiles: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """P(crossing by step t) under independent increments in normal-score space."""
    width = np.maximum.accumulate(np.maximum(quantiles[:, -1] - quantiles[:, 0], 0.0))
    if width[-1] <= 0:
        # No spread anywhere: the path is known, it crosses where a step does.
        return np.maximum.accumulate(p_step)
    var = np.maximum(width, width[-1] * 1e-9) ** 2
    increments = np.sqrt(np.diff(var, prepend=0.0))
    walk = np.cumsum(normals * increments, axis=1) / np.sqrt(var)  # standard normal per step
    with np.errstate(divide="ignore"):
        bars = ndtri(1.0 - p_step)  # beyond this normal score the step is past the threshold
    crossed = np.maximum.accumulate(walk > bars, axis=1)
    p_path = crossed.mean(axis=0)
    # Simulation noise must not break the exact bounds: at least the largest step so far.
    return np.clip(np.maximum(p_path, np.maximum.accumulate(p_step)), 0.0, 1.0)
