"""Global learned models: one LightGBM trained across all the series of a frequency (mlforecast).

Contract of :func:`forecast_global` (the same frames as :func:`forecasting.forecast_statistical`):

- in: the long series frame ``unique_id, ds, y``, a frequency per ``unique_id``, a horizon per
  frequency; options: ``strategy`` (``"recursive"``: one model, its own forecasts fed back as
  lags; ``"direct"``: one model per horizon step, mlforecast's ``max_horizon``),
  ``conformal_windows`` (rolling windows of the horizon that calibrate the intervals),
  ``max_context``, ``n_jobs`` (LightGBM threads), ``levels``, ``bounds``;
- out: a :class:`forecasting.statistical.ForecastResult`: ``forecasts`` ``unique_id, ds, model,
  mean, q05 ... q95`` with ``model = "LGBMGlobal"``; ``fitted`` is empty (a global model's
  in-sample fit is not a one-step forecast the anomaly step could score); ``notes`` name every
  series left out of the global fit and why.

Per frequency, every series is put on its grid (:mod:`forecasting.regularise`) and one
mlforecast ``MLForecast`` with a small CPU LightGBM is fitted on all of them at once:

- **features**: the lags of :data:`GLOBAL_LAGS` (the frequency's season and its multiples), the
  rolling means of :data:`GLOBAL_ROLLING` over the last lag and the seasonal lag transforms of
  :data:`GLOBAL_LAG_TRANSFORMS` (mlforecast ``lag_transforms``), and the calendar features of
  :data:`GLOBAL_DATE_FEATURES`;
- **target transforms**: a difference (:data:`GLOBAL_DIFFERENCE`: the first, or for hourly
  series the daily one), then per-series standard scaling where :data:`GLOBAL_SCALE` says so
  (``Differences``, ``LocalStandardScaler``), so one model fits series of any level and
  scale; both are undone on the forecasts;
- **LightGBM**: :data:`LGBM_PARAMS`, with a frequency's own settings from
  :data:`GLOBAL_FREQUENCY_PARAMS` (hourly: mlforecast's M4 Hourly configuration);
- **intervals**: mlforecast's conformal ``PredictionIntervals`` (``conformal_windows`` windows of
  ``h`` at the end of the training data, refitted per window), at levels 50, 80 and 90, named
  as the statistical models name theirs (``q25/q75``, ``q10/q90``, ``q05/q95``; ``q50`` is the
  mean), then sorted per row so no quantile crosses another.

A series needs ``reach + h * (1 + conformal_windows) + _MIN_ROWS`` grid points to enter the
fit (``reach``: the largest lag, or a rolling transform's lag + window, plus a seasonal
difference) (its training rows must survive the lags inside every calibration window); a shorter
one is left out with a note and keeps only the statistical candidates. Lags longer than the
history of most series of a frequency are dropped from that frequency's feature set (noted)
rather than excluding most series. The same input gives the same output (fixed seeds,
deterministic LightGBM).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from core.errors import FrameError, ModelError
from core.frames import QUANTILES, quantile_column, season_length, validate_series
from forecasting.bounds import BoundedScale, Bounds
from forecasting.models import GLOBAL_MODELS
from forecasting.regularise import regularise
from forecasting.statistical import DEFAULT_LEVELS, ForecastResult, from_statsforecast

__all__ = [
    "GLOBAL_MODELS",
    "GLOBAL_STRATEGIES",
    "GLOBAL_LAGS",
    "GLOBAL_ROLLING",
    "GLOBAL_DATE_FEATURES",
    "GLOBAL_LAG_TRANSFORMS",
    "GLOBAL_DIFFERENCE",
    "GLOBAL_SCALE",
    "GLOBAL_FREQUENCY_PARAMS",
    "global_params",
    "lag_transforms",
    "global_mlforecast",
    "LGBM_PARAMS",
    "GlobalFeatures",
    "global_features",
    "forecast_global",
    "global_installed",
]

#: Multi-step strategies: ``recursive`` feeds forecasts back as lags; ``direct`` fits one
#: model per step (mlforecast ``max_horizon``).
GLOBAL_STRATEGIES: tuple[str, ...] = ("recursive", "direct")
#: Lags per frequency: the recent past and the season(s).
GLOBAL_LAGS: dict[str, tuple[int, ...]] = {
    # Hourly: the same hour of the last 14 days (mlforecast's own M4 Hourly configuration; the
    # recent hours, lags 1-24, scored worse on the training part's last horizon, see
    # docs/forecasting.md).
    "h": tuple(24 * i for i in range(1, 15)),
    "D": (*range(1, 8), 14, 28, 365),
    "B": (*range(1, 6), 10, 20, 261),
    "W-FRI": (1, 2, 3, 4, 13, 52),
    "W-SUN": (1, 2, 3, 4, 13, 52),
    "MS": (*range(1, 13),),
}
#: Rolling-mean windows (over the lag-1 values) per frequency.
GLOBAL_ROLLING: dict[str, tuple[int, ...]] = {
    "h": (),
    "D": (7, 28),
    "B": (5, 20),
    "W-FRI": (4, 13),
    "W-SUN": (4, 13),
    "MS": (3, 12),
}
#: Calendar features per frequency (pandas date attributes).
GLOBAL_DATE_FEATURES: dict[str, tuple[str, ...]] = {
    "h": ("hour", "dayofweek"),
    "D": ("dayofweek", "month"),
    "B": ("dayofweek", "month"),
    "W-FRI": ("month",),
    "W-SUN": ("month",),
    "MS": ("month",),
}
#: Seasonal lag transforms per frequency: ``{lag: ((kind, value), ...)}``, kind ``"mean"`` (a
#: rolling mean over ``value`` steps of the values ``lag`` steps back) or ``"ewm"`` (an
#: exponentially weighted mean with ``alpha = value``).
GLOBAL_LAG_TRANSFORMS: dict[str, dict[int, tuple[tuple[str, float], ...]]] = {
    "h": {lag: (("ewm", 0.3), ("mean", 168), ("mean", 336)) for lag in (24, 48)},
}
#: Differencing lag of the target before scaling (0: none) per frequency.
GLOBAL_DIFFERENCE: dict[str, int] = {**dict.fromkeys(GLOBAL_LAGS, 1), "h": 24}
#: Whether the (differenced) target is scaled per series (``LocalStandardScaler``). Hourly too,
#: although mlforecast's M4 configuration leaves it out: on M4 both score the same, and without it
#: two real hourly series of other scales (NAB's taxi counts and temperatures, tests) ruin the
#: smaller one (temperature MAE 54.7 against seasonal naive's 5.1; 1.2 scaled).
GLOBAL_SCALE: dict[str, bool] = dict.fromkeys(GLOBAL_LAGS, True)
#: Small CPU LightGBM (a few seconds on a thousand series of a thousand points).
LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 150,
    "learning_rate": 0.08,
    "num_leaves": 31,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "random_state": 0,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
#: LightGBM settings that replace :data:`LGBM_PARAMS`' own for one frequency. Hourly: mlforecast's
#: M4 Hourly settings (wide trees; 31 leaves scored worse, docs/forecasting.md).
GLOBAL_FREQUENCY_PARAMS: dict[str, dict[str, Any]] = {
    "h": {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 2500,
        "reg_alpha": 0.03,
        "reg_lambda": 0.5,
        "subsample": 0.9,
        "colsample_bytree": 0.8,
    },
}
#: Training rows a series must keep after its largest lag in the earliest calibration window.
_MIN_ROWS = 10


@dataclass(frozen=True)
class GlobalFeatures:
    """The feature set of one frequency's global model."""

    lags: tuple[int, ...]
    rolling: tuple[int, ...]
    date_features: tuple[str, ...]
    dropped_lags: tuple[int, ...] = ()
    difference: int = 1
    #: ``(lag, kind, value)`` of the seasonal lag transforms kept (:data:`GLOBAL_LAG_TRANSFORMS`).
    transforms: tuple[tuple[int, str, float], ...] = ()
    scale: bool = True

    @property
    def reach(self) -> int:
        """Steps back the features read: the largest lag, a rolling mean's lag + window, and a
        seasonal difference's lag beyond the first (a first difference is in ``_MIN_ROWS``)."""
        back = max([*self.lags, *(lag + int(v) for lag, kind, v in self.transforms if kind == "mean")])
        return back + max(self.difference - 1, 0)

    def min_points(self, h: int, conformal_windows: int) -> int:
        """Grid points a series needs to enter the global fit."""
        return self.reach + h * (1 + conformal_windows) + _MIN_ROWS


def global_installed() -> bool:
    """Whether mlforecast and LightGBM can be imported."""
    try:
        import lightgbm  # noqa: F401
        import mlforecast  # noqa: F401
    except ImportError:
        return False
    return True


def global_features(frequency: str, lengths: Sequence[int], h: int, conformal_windows: int) -> GlobalFeatures:
    """The frequency's features, without lags too long for most of the series' ``lengths``."""
    season_length(frequency)  # raises FrameError naming the allowed aliases
    lags = GLOBAL_LAGS[frequency]
    typical = float(np.median(lengths)) if len(lengths) else 0.0
    kept = tuple(lag for lag in lags if lag <= 12 or lag + h * (1 + conformal_windows) + _MIN_ROWS <= typical)
    kept = kept or lags[:1]
    room = typical - h * (1 + conformal_windows) - _MIN_ROWS
    transforms = tuple(
        (lag, kind, float(value))
        for lag, specs in GLOBAL_LAG_TRANSFORMS.get(frequency, {}).items()
        for kind, value in specs
        if lag <= max(kept) and (kind != "mean" or lag + value <= room)
    )
    return GlobalFeatures(
        lags=kept,
        rolling=tuple(w for w in GLOBAL_ROLLING[frequency] if w <= max(kept)),
        date_features=GLOBAL_DATE_FEATURES[frequency],
        dropped_lags=tuple(lag for lag in lags if lag not in kept),
        difference=GLOBAL_DIFFERENCE[frequency],
        transforms=transforms,
        scale=GLOBAL_SCALE[frequency],
    )


def global_params(frequency: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """LightGBM settings of a frequency's fit: :data:`LGBM_PARAMS`, the frequency's own
    (:data:`GLOBAL_FREQUENCY_PARAMS`), then the caller's ``params``."""
    return {**LGBM_PARAMS, **GLOBAL_FREQUENCY_PARAMS.get(frequency, {}), **(params or {})}


def global_mlforecast(
    frequency: str, features: GlobalFeatures, params: Mapping[str, Any], *, n_jobs: int = 1, name: str = "LGBMGlobal"
) -> Any:
    """The unfitted mlforecast ``MLForecast`` of one frequency's global model: ``features``
    (:func:`global_features`) and LightGBM ``params`` (:func:`global_params`)."""
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.target_transforms import Differences, LocalStandardScaler

    transforms: list[Any] = [
        *([Differences([features.difference])] if features.difference else []),
        *([LocalStandardScaler()] if features.scale else []),
    ]
    return MLForecast(
        models={name: LGBMRegressor(n_jobs=n_jobs, **params)},
        freq=frequency,
        lags=list(features.lags),
        lag_transforms=lag_transforms(features),
        date_features=list(features.date_features),
        target_transforms=transforms or None,
        num_threads=1,
    )


def lag_transforms(features: GlobalFeatures) -> dict[int, list[Any]]:
    """mlforecast ``lag_transforms`` of a feature set: the rolling means over lag 1 and the
    seasonal transforms."""
    from mlforecast.lag_transforms import ExponentiallyWeightedMean, RollingMean

    out: dict[int, list[Any]] = {}
    if features.rolling:
        out[1] = [RollingMean(window_size=w) for w in features.rolling]
    for lag, kind, value in features.transforms:
        made = ExponentiallyWeightedMean(alpha=value) if kind == "ewm" else RollingMean(window_size=int(value))
        out.setdefault(lag, []).append(made)
    return out


def forecast_global(
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    strategy: str = "recursive",
    conformal_windows: int = 2,
    max_context: int = 1000,
    n_jobs: int = 1,
    levels: Sequence[int] | None = None,
    params: Mapping[str, Any] | None = None,
    bounds: Mapping[str, Bounds] | None = None,
    name: str = "LGBMGlobal",
) -> ForecastResult:
    """One LightGBM per frequency across all its series (contract in the module docstring).

    Raises :class:`ModelError` when mlforecast or LightGBM is missing, or when series were
    given and none could enter a global fit.
    """
    if strategy not in GLOBAL_STRATEGIES:
        raise FrameError(f"strategy={strategy!r}", fix=f"use one of {GLOBAL_STRATEGIES}")
    if not isinstance(conformal_windows, int) or conformal_windows < 2:
        raise FrameError(
            f"conformal_windows={conformal_windows!r}: mlforecast's conformal intervals need at least 2",
            fix="pass conformal_windows=2 or more",
        )
    used_levels = tuple(sorted(DEFAULT_LEVELS if levels is None else set(levels)))
    if not set(DEFAULT_LEVELS) <= set(used_levels):
        raise FrameError(f"levels={list(used_levels)} must include 50, 80 and 90", fix="leave levels=None")
    if not global_installed():
        raise ModelError(
            "the global model needs mlforecast and lightgbm, which are not installed",
            fix="pip install mlforecast lightgbm (they are in the project's dependencies)",
        )
    frame = validate_series(series)
    missing = sorted(set(frame.get_column("unique_id").unique().to_list()) - set(frequencies))
    if missing:
        raise FrameError(
            f"{len(missing)} series have no frequency, e.g. {missing[:5]}",
            fix="pass frequencies={unique_id: alias} for every series",
        )
    scale = BoundedScale(bounds).fit(frame)
    model_frame = scale.transform(frame)
    notes: list[tuple[str, str, str]] = []
    parts: list[pl.DataFrame] = []
    by_frequency: dict[str, list[tuple[str, pl.DataFrame]]] = {}
    for (uid,), part in model_frame.group_by("unique_id", maintain_order=True):
        by_frequency.setdefault(frequencies[uid], []).append((uid, part))
    for frequency, members in sorted(by_frequency.items()):
        h = horizons.get(frequency)
        if not isinstance(h, int) or h < 1:
            raise FrameError(
                f"no positive integer horizon for frequency {frequency!r}", fix="pass horizons={alias: steps}"
            )
        fc = _fit_frequency(
            members,
            frequency=frequency,
            h=h,
            strategy=strategy,
            conformal_windows=conformal_windows,
            max_context=max_context,
            n_jobs=n_jobs,
            levels=used_levels,
            params=global_params(frequency, params),
            name=name,
            notes=notes,
        )
        if fc is not None:
            parts.append(fc)
    if frame.height and not parts:
        raise ModelError(
            f"no series could enter a global fit; first reasons: {[n[2] for n in notes[:3]]}",
            fix="forecast these series with the statistical models (they are too short for the global model's lags)",
        )
    columns = ["unique_id", "ds", "model", *_value_columns(used_levels)]
    forecasts = (
        pl.concat(parts).select(columns).sort("unique_id", "ds")
        if parts
        else pl.DataFrame(schema={c: pl.Float64 for c in columns}).with_columns(
            pl.col("unique_id").cast(pl.Utf8), pl.col("ds").cast(pl.Datetime("us")), pl.col("model").cast(pl.Utf8)
        )
    )
    fitted = forecasts.clear().with_columns(pl.lit(None, dtype=pl.Float64).alias("y"))
    result = ForecastResult(
        forecasts=forecasts,
        fitted=fitted.select("unique_id", "ds", "y", *columns[2:]),
        notes=pl.DataFrame(notes, schema={"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8}, orient="row"),
    )
    return scale.apply(result, observed=frame)


def _fit_frequency(
    members: list[tuple[str, pl.DataFrame]],
    *,
    frequency: str,
    h: int,
    strategy: str,
    conformal_windows: int,
    max_context: int,
    n_jobs: int,
    levels: tuple[int, ...],
    params: dict[str, Any],
    name: str,
    notes: list[tuple[str, str, str]],
) -> pl.DataFrame | None:
    """Fit and forecast one frequency's series; note and leave out the short ones."""
    from mlforecast.utils import PredictionIntervals

    grids = []
    for uid, part in members:
        grid = regularise(
            part.get_column("ds").to_numpy(),
            part.get_column("y").to_numpy(),
            frequency=frequency,
            max_context=max_context,
        )
        grids.append((uid, grid))
    features = global_features(frequency, [len(g.y) for _, g in grids], h, conformal_windows)
    need = features.min_points(h, conformal_windows)
    kept = []
    for uid, grid in grids:
        if len(grid.y) < need:
            notes.append(
                (
                    uid,
                    name,
                    f"left out of the {frequency} global fit: {len(grid.y)} grid points < {need} "
                    f"(features reach {features.reach} + horizon {h} x (1 + {conformal_windows} conformal "
                    f"windows) + {_MIN_ROWS}); statistical candidates only",
                )
            )
        elif np.ptp(grid.y) == 0.0:
            notes.append((uid, name, "left out of the global fit: constant series (no scale to learn)"))
        else:
            kept.append((uid, grid))
    if features.dropped_lags:
        notes.append(
            (
                "*",
                name,
                f"{frequency} global fit: lag(s) {list(features.dropped_lags)} dropped, longer than "
                f"the history of most series",
            )
        )
    if not kept:
        return None
    data = pd.DataFrame(
        {
            "unique_id": np.repeat([u for u, _ in kept], [len(g.y) for _, g in kept]),
            "ds": np.concatenate([g.ds.to_numpy() for _, g in kept]),
            "y": np.concatenate([g.y for _, g in kept]).astype(np.float64),
        }
    )
    model = global_mlforecast(frequency, features, params, n_jobs=n_jobs, name=name)
    model.fit(
        data,
        prediction_intervals=PredictionIntervals(n_windows=conformal_windows, h=h),
        max_horizon=h if strategy == "direct" else None,
    )
    wide = model.predict(h, level=list(levels))
    return _ordered(from_statsforecast(wide, models=[name], levels=levels), levels)


def _value_columns(levels: tuple[int, ...]) -> list[str]:
    quantiles = set(QUANTILES)
    for level in levels:
        quantiles |= {(100 - level) / 200, (100 + level) / 200}
    return ["mean", *(quantile_column(q) for q in sorted(quantiles))]


def _ordered(frame: pl.DataFrame, levels: tuple[int, ...]) -> pl.DataFrame:
    """Quantiles sorted per row, so a narrower interval never pokes out of a wider one."""
    qcols = _value_columns(levels)[1:]
    values = np.sort(frame.select(qcols).to_numpy(), axis=1)
    return frame.with_columns(pl.Series(c, values[:, i]) for i, c in enumerate(qcols))
