"""Physical bounds: a bounded series is forecast on a scale that keeps it inside its bounds.

A series' bounds come from its metadata (``lower_bound`` / ``upper_bound``,
:data:`core.frames.SERIES_META_COLUMNS`; :func:`bounds_from_meta`). The models see the series
on an unbounded scale ``z``, and every quantile they return is mapped back to ``y``:

============  ====================================  =============================================
bounds        model scale ``z``                     back to ``y``
============  ====================================  =============================================
L             ``log(y - L + c)``                    ``L - c + exp(z)``
U             ``-log(U - y + c)``                   ``U + c - exp(-z)``
L and U       ``log(y - L + c) - log(U - y + c)``   ``L - c + (U - L + 2c) expit(z)``
============  ====================================  =============================================

**The offset** ``c`` is chosen per series on the training data the model is given (each
backtest window chooses its own). ``c = 0`` when every value lies strictly inside the bounds:
the map is then a bijection of the open range onto the real line (a log, or a logit for two
bounds; the Box-Cox member whose inverse maps *every* real ``z`` inside the range, which a
Box-Cox power with lambda > 0 does not), so any model output maps inside (up to rounding, which
the final check below catches). When
values sit exactly on a bound (days without an earthquake, a river run dry), ``log(0)`` does
not exist: ``c`` is the smallest positive distance of a value from a bound in the training
data (1 for counts: ``log1p``), or 1 when no value leaves the bound. The bound then sits at
``z = log(c)`` and model values below it map onto the bound itself (``max(L, ...)``,
``min(U, ...)``): the model puts that much probability on ``y = L`` exactly, as data with
zeros have. That floor is part of the map, stated in the series' note, not a clip.

**Quantiles** transform exactly: under a monotone non-decreasing map ``g`` the a-quantile of
``g(Z)`` is ``g`` of the a-quantile of ``Z``, so every quantile is mapped and their order kept.

**The mean** of a bounded series is reported as the back-transformed median (``mean = q50``),
not a bias-corrected mean: the models' point forecast on the ``z`` scale is their median there
(statsforecast's intervals are symmetric about it) and a median maps exactly while a mean
does not; a correction such as ``exp(sigma^2 / 2)`` assumes a normal forecast on ``z``, which
conformal intervals and Chronos' quantiles do not provide, and on flashy river flows it would
push the point forecast up with the flood tail; and the point forecast is scored by MASE and
sMAPE (absolute errors), which the median minimises.

**Checks.** Training values outside the declared bounds mean the bounds are wrong for the
data (ingestion quarantines such batches, :mod:`ingest.rules`): that series is forecast
without the map, with a note and a :class:`RuntimeWarning`. After the map back, a value
outside the bounds can only come from rounding: it is set to the bound, with a note and a
warning. A series without bounds is not touched: its rows come back bit for bit.

Used by :func:`forecasting.forecast_statistical` (and so every backtest window),
:func:`forecasting.forecast_chronos` and :func:`forecasting.train_vertical` (``bounds=``).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import polars as pl
from scipy.special import expit

from core.errors import FrameError
from core.frames import SERIES_BOUND_COLUMNS

__all__ = ["BoundMap", "BoundedScale", "Bounds", "bounds_from_meta", "fit_bound_map"]

#: (lower, upper) physical bounds of one series; None = unbounded on that side.
Bounds = tuple[float | None, float | None]

_QUANTILE_COLUMN = re.compile(r"q\d\d")
_NOTE_SCHEMA = {"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8}


class _Frames(Protocol):
    """What :meth:`BoundedScale.apply` maps back: a :class:`forecasting.ForecastResult`."""

    @property
    def forecasts(self) -> pl.DataFrame: ...
    @property
    def fitted(self) -> pl.DataFrame: ...
    @property
    def notes(self) -> pl.DataFrame: ...


_Result = TypeVar("_Result", bound=_Frames)


@dataclass(frozen=True)
class BoundMap:
    """The monotone map of one series between its values ``y`` and the model scale ``z``."""

    lower: float | None
    upper: float | None
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.lower is None and self.upper is None:
            raise FrameError(
                "a bound map needs a lower or an upper bound", fix="leave unbounded series out of the bounds mapping"
            )

    def to_model(self, y: np.ndarray) -> np.ndarray:
        """``z`` of values ``y`` that lie within the bounds."""
        return _to_model(np.asarray(y, dtype=np.float64), *self._rows(len(y)))

    def to_values(self, z: np.ndarray) -> np.ndarray:
        """``y`` of model values ``z``: the inverse of :meth:`to_model` (with an offset,
        values beyond the bound's place are the bound)."""
        return _to_values(np.asarray(z, dtype=np.float64), *self._rows(len(z)))

    def _rows(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low = np.nan if self.lower is None else self.lower
        high = np.nan if self.upper is None else self.upper
        return np.full(n, low), np.full(n, high), np.full(n, self.offset)

    def describe(self) -> str:
        """The map in words, for the forecast notes."""
        low, high, c = self.lower, self.upper, self.offset
        plus = f" + {c:g}" if c else ""
        shifted = f"y{f' - {low:g}' if low else ''}{plus}"
        if low is not None and high is not None:
            scale = f"logit(({shifted}) / {high - low + 2.0 * c:g})"
            bound = f"in [{low:g}, {high:g}]"
        elif low is not None:
            scale, bound = f"log({shifted})", f">= {low:g}"
        else:
            scale, bound = f"-log({high:g} - y{plus})", f"<= {high:g}"
        text = f"bounded {bound}: forecast on the scale {scale}, quantiles mapped back, mean = median"
        if c:
            text += (
                f" (offset {c:g} because values sit on a bound; model values beyond the bound's "
                f"place on that scale map to the bound itself)"
            )
        return text


def fit_bound_map(y: np.ndarray, bounds: Bounds) -> BoundMap | str:
    """The map for training values ``y``, or the reason there is none (values outside)."""
    low, high = bounds
    y = np.asarray(y, dtype=np.float64)
    below = int((y < low).sum()) if low is not None else 0
    above = int((y > high).sum()) if high is not None else 0
    if below or above:
        where = f"{below} below {low:g}" if below else f"{above} above {high:g}"
        return f"{where} in the training data: declared bounds do not fit; forecast without them"
    distances = np.concatenate([y - low if low is not None else [], high - y if high is not None else []])
    if (distances > 0).all():
        return BoundMap(low, high, 0.0)
    positive = distances[distances > 0]
    return BoundMap(low, high, float(positive.min()) if positive.size else 1.0)


def bounds_from_meta(meta: pl.DataFrame) -> dict[str, Bounds]:
    """``{unique_id: (lower, upper)}`` of the series with at least one bound in ``meta``."""
    if not isinstance(meta, pl.DataFrame) or "unique_id" not in meta.columns:
        raise FrameError(
            "series metadata must be a polars frame with a unique_id column",
            fix="pass the frame Warehouse.read_series_meta() returns",
        )
    if not set(SERIES_BOUND_COLUMNS) <= set(meta.columns):
        return {}
    rows = meta.select("unique_id", *SERIES_BOUND_COLUMNS).filter(
        pl.col("lower_bound").is_not_null() | pl.col("upper_bound").is_not_null()
    )
    return {uid: (low, high) for uid, low, high in rows.iter_rows()}


class BoundedScale:
    """Per-series bound maps of one batch: fit on the training frame, transform, map back.

    ``bounds``: ``{unique_id: (lower, upper)}`` (ids not in the frame are ignored). After
    :meth:`fit`, ``maps_`` holds each bounded series' :class:`BoundMap` and ``notes_`` the
    ``unique_id, model, note`` rows (model ``"*"``: the map applies to every model).
    """

    def __init__(self, bounds: Mapping[str, Bounds] | None = None) -> None:
        self.bounds = {uid: _checked(uid, b) for uid, b in (bounds or {}).items()}
        self.maps_: dict[str, BoundMap] = {}
        self.notes_: list[tuple[str, str, str]] = []

    def fit(self, series: pl.DataFrame) -> BoundedScale:
        """Choose each bounded series' map on ``series`` (a validated series frame)."""
        self.maps_, self.notes_ = {}, []
        if not self.bounds:
            return self
        present = series.filter(pl.col("unique_id").is_in(list(self.bounds)))
        for (uid,), part in present.group_by("unique_id", maintain_order=True):
            fitted = fit_bound_map(part.get_column("y").to_numpy(), self.bounds[uid])
            if isinstance(fitted, str):
                self.notes_.append((uid, "*", fitted))
                warnings.warn(f"{uid}: {fitted}", RuntimeWarning, stacklevel=3)
                continue
            self.maps_[uid] = fitted
            self.notes_.append((uid, "*", fitted.describe()))
        return self

    def transform(self, series: pl.DataFrame) -> pl.DataFrame:
        """The series frame with each bounded series' ``y`` on its model scale."""
        if not self.maps_:
            return series
        return _mapped(series, ["y"], self.maps_, _to_model)

    def inverse(self, frame: pl.DataFrame, *, observed: pl.DataFrame | None = None) -> pl.DataFrame:
        """A forecast (or in-sample) frame mapped back: quantiles, ``mean = q50``, and ``y``.

        ``y`` (in-sample frames) is taken from ``observed`` where its stamps match, so the
        observations come back exactly, and mapped back elsewhere (stamps moved onto the grid).
        """
        return self._inverse(frame, observed)[0]

    def apply(self, result: _Result, *, observed: pl.DataFrame) -> _Result:
        """A ForecastResult (forecasts, fitted, notes) mapped back, with the map notes added."""
        if not self.notes_:
            return result
        forecasts, late = self._inverse(result.forecasts, None)
        fitted, late_fit = self._inverse(result.fitted, observed)
        notes = pl.concat(
            [
                pl.DataFrame([*self.notes_, *late, *late_fit], schema=_NOTE_SCHEMA, orient="row"),
                result.notes.select(list(_NOTE_SCHEMA)),
            ]
        ).sort("unique_id", maintain_order=True)
        return dataclasses.replace(result, forecasts=forecasts, fitted=fitted, notes=notes)  # type: ignore[type-var]

    # -- internals ---------------------------------------------------------------------------
    def _inverse(
        self, frame: pl.DataFrame, observed: pl.DataFrame | None
    ) -> tuple[pl.DataFrame, list[tuple[str, str, str]]]:
        if not self.maps_ or frame.height == 0:
            return frame, []
        quantiles = [c for c in frame.columns if _QUANTILE_COLUMN.fullmatch(c)]
        columns = quantiles + (["y"] if "y" in frame.columns else [])
        out = _mapped(frame, columns, self.maps_, _to_values)
        bounded = pl.col("unique_id").is_in(list(self.maps_))
        if "mean" in frame.columns and "q50" in frame.columns:
            out = out.with_columns(pl.when(bounded).then(pl.col("q50")).otherwise(pl.col("mean")).alias("mean"))
        if "y" in frame.columns and observed is not None:
            exact = observed.select("unique_id", "ds", pl.col("y").alias("_observed"))
            out = (
                out.join(exact, on=["unique_id", "ds"], how="left", maintain_order="left")
                .with_columns(pl.when(bounded).then(pl.coalesce("_observed", "y")).otherwise(pl.col("y")).alias("y"))
                .drop("_observed")
            )
        return self._inside(out, [c for c in ("mean", *quantiles) if c in out.columns])

    def _inside(self, frame: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, list[tuple[str, str, str]]]:
        """Values outside the bounds after the map back (rounding only): set to the bound, noted."""
        params = _parameters(self.maps_)
        out = frame.join(params, on="unique_id", how="left", maintain_order="left")
        below, above = pl.col("_low").fill_nan(None), pl.col("_high").fill_nan(None)
        notes = []
        for col in columns:
            outside = (pl.col(col) < below).fill_null(False) | (pl.col(col) > above).fill_null(False)
            counts = out.filter(outside).group_by("unique_id", maintain_order=True).len()
            if counts.height == 0:
                continue
            for uid, count in counts.iter_rows():
                message = f"{count} {col} value(s) outside the bounds after the map back (rounding): set to the bound"
                notes.append((uid, "*", message))
                warnings.warn(f"{uid}: {message}", RuntimeWarning, stacklevel=4)
            out = out.with_columns(
                pl.when((pl.col(col) < below).fill_null(False))
                .then(below)
                .when((pl.col(col) > above).fill_null(False))
                .then(above)
                .otherwise(pl.col(col))
                .alias(col)
            )
        return out.drop(params.columns[1:]), notes


def _to_model(y: np.ndarray, low: np.ndarray, high: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Row-wise :meth:`BoundMap.to_model` (``low`` / ``high`` NaN where unbounded)."""
    has_low, has_high = ~np.isnan(low), ~np.isnan(high)
    z = np.full_like(y, np.nan)
    both, lower, upper = has_low & has_high, has_low & ~has_high, ~has_low & has_high
    z[both] = np.log(y[both] - low[both] + c[both]) - np.log(high[both] - y[both] + c[both])
    z[lower] = np.log(y[lower] - low[lower] + c[lower])
    z[upper] = -np.log(high[upper] - y[upper] + c[upper])
    return z


def _to_values(z: np.ndarray, low: np.ndarray, high: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Row-wise :meth:`BoundMap.to_values` (``low`` / ``high`` NaN where unbounded)."""
    has_low, has_high = ~np.isnan(low), ~np.isnan(high)
    y = np.full_like(z, np.nan)
    both, lower, upper = has_low & has_high, has_low & ~has_high, ~has_low & has_high
    with np.errstate(over="ignore"):
        y[both] = low[both] - c[both] + (high[both] - low[both] + 2.0 * c[both]) * expit(z[both])
        y[lower] = low[lower] - c[lower] + np.exp(z[lower])
        y[upper] = high[upper] + c[upper] - np.exp(-z[upper])
    # With an offset the bound sits inside the model scale: what lies beyond it is the bound
    # (the map's point mass, stated in the note). Without one nothing is floored here, so a
    # rounding excursion reaches the final check of BoundedScale (noted, warned).
    floored = c > 0
    y[floored & has_low] = np.maximum(y[floored & has_low], low[floored & has_low])
    y[floored & has_high] = np.minimum(y[floored & has_high], high[floored & has_high])
    return y


def _parameters(maps: Mapping[str, BoundMap]) -> pl.DataFrame:
    """One row per bounded series: ``unique_id, _low, _high, _offset`` (NaN = unbounded)."""
    return pl.DataFrame(
        {
            "unique_id": list(maps),
            "_low": [np.nan if m.lower is None else m.lower for m in maps.values()],
            "_high": [np.nan if m.upper is None else m.upper for m in maps.values()],
            "_offset": [m.offset for m in maps.values()],
        },
        schema={"unique_id": pl.Utf8, "_low": pl.Float64, "_high": pl.Float64, "_offset": pl.Float64},
    )


def _checked(uid: str, bounds: Any) -> Bounds:
    try:
        low, high = bounds
        low = None if low is None else float(low)
        high = None if high is None else float(high)
    except (TypeError, ValueError):
        raise FrameError(
            f"bounds of {uid} are {bounds!r}, not a (lower, upper) pair",
            fix="pass bounds={unique_id: (lower, upper)} with None for no bound",
        ) from None
    if (
        (low is not None and not np.isfinite(low))
        or (high is not None and not np.isfinite(high))
        or (low is not None and high is not None and low >= high)
    ):
        raise FrameError(
            f"bounds of {uid} are ({low}, {high})", fix="finite numbers with lower < upper, or None for no bound"
        )
    return low, high


def _mapped(frame: pl.DataFrame, columns: list[str], maps: Mapping[str, BoundMap], function: Any) -> pl.DataFrame:
    """``columns`` of the rows of the series in ``maps`` passed through ``function`` (row-wise
    :func:`_to_model` or :func:`_to_values`); the other rows keep their values untouched."""
    rows = frame.select("unique_id").join(_parameters(maps), on="unique_id", how="left", maintain_order="left")
    mask = rows.get_column("_offset").is_not_null().to_numpy()
    if not mask.any():
        return frame
    low, high, c = (rows.get_column(col).to_numpy()[mask] for col in ("_low", "_high", "_offset"))
    out = []
    for col in columns:
        values = frame.get_column(col).cast(pl.Float64).to_numpy().copy()
        values[mask] = function(values[mask], low, high, c)
        out.append(pl.when(pl.Series(mask)).then(pl.Series(values)).otherwise(pl.col(col)).alias(col))
    return frame.with_columns(out)
