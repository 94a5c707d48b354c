"""Forecasting library: polars series frames in, polars forecast frames out.

No database, no network, no clock, no file I/O. The contracts (column names, quantiles)
are those of :mod:`core.frames`; see :mod:`forecasting.statistical` for the batch API and
:mod:`forecasting.regularise` for how series are put on their frequency grid.
"""

from forecasting.regularise import Regularised, regularise, snap_to_grid
from forecasting.statistical import DEFAULT_LEVELS, ForecastResult, forecast_statistical

__all__ = [
    "DEFAULT_LEVELS",
    "ForecastResult",
    "Regularised",
    "forecast_statistical",
    "regularise",
    "snap_to_grid",
]
