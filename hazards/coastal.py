"""Tide gauges: monthly sea-level anomaly against the seasonal cycle and the trend, and sustained steps.

A monthly mean sea level (PSMSL RLR, mm) is high every autumn at New York and rises a few mm
a year almost everywhere; neither is a hazard. What is:

- :func:`sea_level_anomaly`: the month's departure from what its own past predicts. For the
  value at month ``t`` a linear trend + annual + semi-annual harmonics are fitted by least
  squares to the ``window_years`` before ``t`` (default 19: one lunar nodal cycle, 18.61
  years, so the nodal tide does not leak into the trend; at least ``min_years`` of monthly
  values) and extrapolated to ``t``: causal, the month itself and everything after it are
  never used. The anomaly is in mm and in units of its prediction standard error.
- :func:`sustained_steps`: a shift of the level that persists (the gauge sank with the land,
  as Ayukawa did in the 2011 Tohoku earthquake, or its datum changed), found by the offset
  detector shared with GNSS (:func:`hazards.offsets.find_offsets`): a scan of adjacent
  ``min_months`` means, the step placed by the maximum-likelihood split of
  :func:`hazards.geodetic.find_change_points`, sized against the trend + seasonal fit of the
  ``window_years`` before it, with the standard error of the difference of the means
  before/after under the noise measured there (white + flicker + random walk from the Allan
  variance, :func:`hazards.offsets.offset_noise`: monthly sea level is red, interannual
  ocean variability does not average down), and kept only if the new level held for at least
  ``min_months``.

Default ``min_months=6``: a storm surge lasts days and a wind- or El Nino-driven monthly
anomaly decorrelates within a season (lag-1 autocorrelation of monthly residuals is typically
0.5-0.7), while co-seismic land motion is permanent; six months separates the two and still
flags a step within half a year. References: Holgate et al. (2013), "New data systems and
products at the Permanent Service for Mean Sea Level", J. Coastal Res. 29(3) 493-504 (the
data); Pugh & Woodworth (2014), "Sea-Level Science", Cambridge UP, ch. 6 and 10 (seasonal
cycle, nodal cycle, mean-sea-level trends and vertical land motion).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import norm

from core.errors import ConfigError, FrameError
from core.frames import validate_series
from hazards.geodetic import _years
from hazards.offsets import _design, find_offsets, offset_row, offsets_frame

__all__ = ["sea_level_anomaly", "sustained_steps"]

_ANOMALY_SCHEMA: dict[str, pl.DataType] = {
    "unique_id": pl.Utf8(),
    "ds": pl.Datetime("us"),
    "y": pl.Float64(),
    "expected": pl.Float64(),
    "anomaly_mm": pl.Float64(),
    "anomaly_sigma": pl.Float64(),
    "residual_sd_mm": pl.Float64(),
    "p_upper": pl.Float64(),
}


def _check_options(window_years: float, min_years: float, harmonics: int) -> None:
    if not np.isfinite(min_years) or min_years <= 0:
        raise ConfigError(f"min_years={min_years} must be a positive number of years", fix="use e.g. min_years=5")
    if not np.isfinite(window_years) or window_years < min_years:
        raise ConfigError(
            f"window_years={window_years} must be at least min_years={min_years}",
            fix="use e.g. window_years=19 (a nodal cycle) and min_years=5",
        )
    if harmonics not in (0, 1, 2, 3, 4):
        raise ConfigError(
            f"harmonics={harmonics} must be 0..4 (annual, semi-annual, ...)",
            fix="use harmonics=2 (annual + semi-annual)",
        )


def _monthly(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    """Refuse a series with two values in one calendar month (it is not a monthly mean)."""
    months = frame.select("unique_id", pl.col("ds").dt.truncate("1mo").alias("month"))
    dupes = months.filter(pl.struct("unique_id", "month").is_duplicated())
    if dupes.height:
        row = dupes.row(0, named=True)
        raise FrameError(
            f"{what}: series {row['unique_id']!r} has {dupes.height} values sharing a calendar month "
            f"(first {row['month']:%Y-%m}); this needs monthly mean sea level",
            fix="aggregate to monthly means first (PSMSL monthly files already are)",
        )
    return frame


def sea_level_anomaly(
    series: pl.DataFrame,
    *,
    window_years: float = 19.0,
    min_years: float = 5.0,
    harmonics: int = 2,
    steps: pl.DataFrame | None = None,
    min_months: int = 6,
) -> pl.DataFrame:
    """Causal monthly sea-level anomaly against the trend and the seasonal cycle.

    Input: series frame of monthly mean sea level in mm (one value per calendar month; gaps
    allowed). Output, one row per month that has at least ``12 * min_years`` monthly values
    in the ``window_years`` before it: ``unique_id, ds, y``; ``expected`` (the trend +
    seasonal fit of the window, extrapolated to the month, mm); ``anomaly_mm = y - expected``;
    ``residual_sd_mm`` (scatter of the window's residuals); ``anomaly_sigma`` (the anomaly
    over its prediction standard error, ``sd * sqrt(1 + x0' (X'X)^-1 x0)``, which includes the
    uncertainty of the extrapolated trend); ``p_upper`` = ``1 - Phi(anomaly_sigma)``, the
    probability of a monthly mean at least this high if only the fitted cycle, trend and
    the window's month-to-month scatter were at work (Gaussian residuals assumed; serial
    correlation does not change this one-month marginal probability, but consecutive months'
    probabilities are not independent). The real tail is heavier: at New York 0.9% of months
    reach ``anomaly_sigma >= 3`` where the Gaussian says 0.13%, so ``p_upper`` understates how
    often a high month comes; a warning ladder should be set on measured rates.

    ``steps`` (optional, e.g. :func:`sustained_steps` output: ``unique_id, ds``): a step
    enters the fit as a level shift once ``min_months`` values after it are in the window,
    so after a confirmed subsidence the anomaly is measured against the new level instead of
    staying high for ``window_years``.
    """
    _check_options(window_years, min_years, harmonics)
    if min_months < 1:
        raise ConfigError(f"min_months={min_months} must be at least 1", fix="use min_months=6, as sustained_steps")
    frame = _monthly(validate_series(series), "sea_level_anomaly")
    step_times = _step_times(steps)
    min_points = int(np.ceil(12 * min_years))
    rows = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        t = _years(part.get_column("ds"))
        y = part.get_column("y").to_numpy()
        own_steps = step_times.get(str(uid), [])
        expected = np.full(len(y), np.nan)
        sd = np.full(len(y), np.nan)
        se = np.full(len(y), np.nan)
        for i in range(len(y)):
            lo = int(np.searchsorted(t, t[i] - window_years, side="left"))
            if i - lo < min_points:
                continue
            window_t = t[lo:i]
            active = [s for s in own_steps if int(np.sum(window_t >= s)) >= min_months and s > window_t[0]]
            x = _design(window_t, t0=t[i], harmonics=harmonics, steps=active)
            x0 = _design(t[i : i + 1], t0=t[i], harmonics=harmonics, steps=active)
            beta, *_ = np.linalg.lstsq(x, y[lo:i], rcond=None)
            dof = len(window_t) - x.shape[1]
            resid = y[lo:i] - x @ beta
            sd[i] = float(np.sqrt(resid @ resid / dof)) if dof > 0 else np.nan
            expected[i] = float((x0 @ beta)[0])
            leverage = float((x0 @ np.linalg.pinv(x.T @ x) @ x0.T)[0, 0])
            se[i] = sd[i] * np.sqrt(1.0 + leverage)
        keep = np.isfinite(expected)
        anomaly = y - expected
        with np.errstate(invalid="ignore", divide="ignore"):
            z = anomaly / se
        rows.append(
            pl.DataFrame(
                {
                    "unique_id": [str(uid)] * int(keep.sum()),
                    "ds": part.get_column("ds").filter(pl.Series(keep)),
                    "y": y[keep],
                    "expected": expected[keep],
                    "anomaly_mm": anomaly[keep],
                    "anomaly_sigma": z[keep],
                    "residual_sd_mm": sd[keep],
                    "p_upper": norm.sf(z[keep]),
                },
                schema=_ANOMALY_SCHEMA,
            )
        )
    return pl.concat(rows) if rows else pl.DataFrame(schema=_ANOMALY_SCHEMA)


def _step_times(steps: pl.DataFrame | None) -> dict[str, list[float]]:
    if steps is None:
        return {}
    if not isinstance(steps, pl.DataFrame) or not {"unique_id", "ds"} <= set(steps.columns):
        raise FrameError(
            "steps must be a polars DataFrame with columns unique_id, ds",
            fix="pass the output of sustained_steps(...) or None",
        )
    out: dict[str, list[float]] = {}
    for uid, ds in steps.select("unique_id", pl.col("ds").cast(pl.Datetime("us"))).iter_rows():
        out.setdefault(str(uid), []).append(float(_years(pl.Series([ds]))[0]))
    return {k: sorted(v) for k, v in out.items()}


def sustained_steps(
    series: pl.DataFrame,
    *,
    min_months: int = 6,
    min_sigma: float = 4.0,
    window_years: float = 19.0,
    min_years: float = 5.0,
    harmonics: int = 2,
    max_steps: int = 5,
) -> pl.DataFrame:
    """Sustained steps in monthly mean sea level, with their size in mm and its standard error.

    Output, one row per step: ``unique_id, ds`` (first month after the step), ``before_ds``
    (last month before: a data gap can sit between them, as at Ayukawa 2011-03 ... 2012-12),
    ``confirmed_ds`` (the ``min_months``-th month after: the earliest month a monitor could
    flag it), ``size_mm`` (mean residual of the ``min_months`` months after minus that of the
    ``min_months`` before, residuals against the trend + seasonal fit of the ``window_years``
    before the step), ``sigma_mm`` (standard error of that difference under the noise of the
    window before), ``z = size_mm / sigma_mm``, ``months_persisted`` (months the new level
    held before a sustained return past half the step, up to the next step or the end), and
    the noise model (``noise_mm``, ``flicker_mm``, ``random_walk_mm``, ``sigma_white_mm``:
    see :func:`hazards.geodetic.gnss_offsets`).

    Flagged when ``|size_mm| >= min_sigma * sigma_mm`` and the level held for at least
    ``min_months`` months. Probability: under Gaussian noise with the fitted spectrum ``z`` is
    standard normal for a pre-chosen month, but the scan picks the month, so ``min_sigma``
    defaults to 4, measured in tests/test_hazards_coastal.py: no false step in 50 synthetic
    60-year series of red noise (9 at 3) nor in New York's 165 years (one, 1864, at 3), while
    a 200 mm step in 50 mm noise is found 35 times in 50 (18 at 5). Offline on the frame it is
    given: pass the months up to the as-of date for a replay; a step is known from
    ``confirmed_ds`` on.
    """
    _check_options(window_years, min_years, harmonics)
    if min_months < 2:
        raise ConfigError(
            f"min_months={min_months} is too short for a sustained step", fix="use min_months >= 2 (default 6)"
        )
    if not np.isfinite(min_sigma) or min_sigma <= 0:
        raise ConfigError(f"min_sigma={min_sigma} must be a positive number", fix="use e.g. min_sigma=5.0")
    frame = _monthly(validate_series(series), "sustained_steps")
    rows: list[dict[str, object]] = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        ds = part.get_column("ds")
        t, y = _years(ds), part.get_column("y").to_numpy()
        found = find_offsets(
            t,
            y,
            window=min_months,
            noise_years=window_years,
            harmonics=harmonics,
            min_sigma=min_sigma,
            min_noise_points=int(np.ceil(12 * min_years)),
            max_offsets=max_steps,
        )
        rows.extend(
            {**offset_row(str(uid), ds, k, test, window=min_months), "months_persisted": int(test["persisted"])}
            for k, test in found
        )
    return offsets_frame(rows, {"months_persisted": pl.Int64()})
