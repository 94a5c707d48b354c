"""Forecasting library: polars series frames in, polars forecast frames out.

No database, no network, no clock; the only files it reads are model weights a caller asks
it to load (:func:`load_chronos`) and the only ones it writes are those a caller asks for
(:func:`train_vertical`, :func:`build_random_chronos`). The contracts (column names,
quantiles) are those of :mod:`core.frames`. Modules:

- :mod:`forecasting.models`: the statistical model set, eligibility, fallbacks;
- :mod:`forecasting.statistical`: :func:`forecast_statistical` (statsforecast, also on
  Spark/Dask/Ray frames through Fugue);
- :mod:`forecasting.forward`: a stored AutoETS fit (:class:`ETSState`) filtered forward over
  new points between refits;
- :mod:`forecasting.global_model`: :func:`forecast_global`, one LightGBM across the series of
  a frequency (mlforecast), conformal intervals, recursive or direct;
- :mod:`forecasting.chronos`: Chronos-2 / Chronos-Bolt (lazy import, staging hints);
- :mod:`forecasting.backtest`, :mod:`forecasting.metrics`, :mod:`forecasting.ensemble`,
  :mod:`forecasting.selection`: rolling-origin backtests, metrics, ensembles, model choice;
- :mod:`forecasting.exceedance`: threshold exceedance probabilities from forecast quantiles;
- :mod:`forecasting.vertical`: domain-trained Chronos-2 models;
- :mod:`forecasting.regularise`: how series are put on their frequency grid;
- :mod:`forecasting.bounds`: physical bounds, the scale a bounded series is forecast on;
- :mod:`forecasting.calibration`: interval factors learned on backtest windows, applied to
  production forecasts.
"""

from forecasting.backtest import BacktestResult, ExtraForecaster, backtest
from forecasting.bounds import BoundedScale, BoundMap, Bounds, bounds_from_meta
from forecasting.calibration import (
    CALIBRATED_QUANTILES,
    calibrate_intervals,
    describe_scales,
    interval_scales_for,
    learn_interval_scales,
)
from forecasting.chronos import (
    ChronosModel,
    build_random_chronos,
    chronos_installed,
    forecast_chronos,
    load_chronos,
)
from forecasting.ensemble import ENSEMBLE_METHODS, combine_forecasts, ensemble_name, inverse_loss_weights
from forecasting.exceedance import (
    EXCEEDANCE_COLUMNS,
    exceedance_probabilities,
    parse_threshold,
    resolve_thresholds,
)
from forecasting.forward import ETSState
from forecasting.global_model import GLOBAL_STRATEGIES, forecast_global, global_installed
from forecasting.metrics import METRICS, WINDOW_COLUMNS, pool_windows, relative_score, score_forecasts, score_windows
from forecasting.models import BASELINES, FALLBACK, GLOBAL_MODELS, STAT_MODELS
from forecasting.regularise import Regularised, regularise, snap_to_grid
from forecasting.selection import (
    RULE_COLUMNS,
    SELECTION_COLUMNS,
    PooledChoice,
    decide_rules,
    pooled_choice,
    select_by_rule,
    select_models,
)
from forecasting.statistical import (
    DEFAULT_LEVELS,
    ForecastResult,
    forecast_distributed,
    forecast_statistical,
    from_statsforecast,
)
from forecasting.vertical import TrainedModel, train_vertical, training_data_hash

__all__ = [
    "BASELINES",
    "CALIBRATED_QUANTILES",
    "DEFAULT_LEVELS",
    "ENSEMBLE_METHODS",
    "GLOBAL_MODELS",
    "GLOBAL_STRATEGIES",
    "EXCEEDANCE_COLUMNS",
    "FALLBACK",
    "METRICS",
    "RULE_COLUMNS",
    "SELECTION_COLUMNS",
    "STAT_MODELS",
    "WINDOW_COLUMNS",
    "BacktestResult",
    "BoundMap",
    "BoundedScale",
    "Bounds",
    "ChronosModel",
    "ETSState",
    "ExtraForecaster",
    "ForecastResult",
    "PooledChoice",
    "Regularised",
    "TrainedModel",
    "backtest",
    "bounds_from_meta",
    "build_random_chronos",
    "calibrate_intervals",
    "chronos_installed",
    "combine_forecasts",
    "decide_rules",
    "describe_scales",
    "ensemble_name",
    "exceedance_probabilities",
    "forecast_chronos",
    "forecast_distributed",
    "forecast_global",
    "forecast_statistical",
    "from_statsforecast",
    "global_installed",
    "interval_scales_for",
    "inverse_loss_weights",
    "learn_interval_scales",
    "load_chronos",
    "parse_threshold",
    "pool_windows",
    "pooled_choice",
    "regularise",
    "relative_score",
    "resolve_thresholds",
    "score_forecasts",
    "score_windows",
    "select_by_rule",
    "select_models",
    "snap_to_grid",
    "train_vertical",
    "training_data_hash",
]
