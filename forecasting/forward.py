"""A kept AutoETS fit filtered forward over new data, parameters fixed (issue 21).

A daily cycle refitting every series' AutoETS costs most of a next-day ``ews run``
(docs/scaling.md, "The lever for the next day"). Between refits the engine instead runs the
filter of the last fit over the data that has arrived since, with the smoothing parameters and
the initial state unchanged: statsforecast's ``AutoETS.forward`` (the exponential-smoothing
state-space model's own prediction, Hyndman et al. 2008, ch. 5), 14-45x cheaper than the refit
for a MASE about 1 % worse (``benchmarks/ets_forward.py``).

Contract:

- :class:`ETSState` is what a forward needs: the form (``"ANAN/7"``, as
  ``ForecastResult.ets_forms``), statsforecast's parameter vector ``par`` (alpha, beta, gamma,
  phi, then the initial states), the parameter count (the residual variance's degrees of
  freedom), the first and last grid stamps of the window it was fitted on, and the bound map of
  the scale it was fitted on (:mod:`forecasting.bounds`; ``None`` for an unbounded series).
  :meth:`ETSState.to_text` / :meth:`ETSState.from_text` are its stored form (JSON).
- :func:`new_point_surprise`: how far the points after the fit's window lie from the filter's
  one-step forecasts, in standard deviations of the window's own one-step errors; above
  ``[forecast] refit_surprise`` the series is refitted instead (a regime change is where kept
  parameters would be most wrong and a warning matters most).
- :func:`filter_forward` runs that fit over ``y``, the grid values from the same ``start``
  (the seasonal states stay aligned with their phase only from there) to the newest point,
  and returns statsforecast's forecast dictionary: ``mean``, ``fitted``, ``lo-L``/``hi-L``
  and ``fitted-lo-L``/``fitted-hi-L``, exactly what ``AutoETS(...).fit(window).forward(y, h,
  level, fitted=True)`` returns.

:func:`forecasting.forecast_statistical` takes stored states as ``ets_states=`` and decides
where a state still applies (same form and season, same bound map, model intervals, the
window's start still on the grid); everywhere else AutoETS is refitted, with a note.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from statsforecast.ets import ets_f, forecast_ets
from statsforecast.models import _add_fitted_pi
from statsforecast.utils import _calculate_sigma, _ensure_float

from core.errors import FrameError

__all__ = ["ETSState", "filter_forward", "new_point_surprise", "window_digest"]

_KEYS = ("form", "par", "n_params", "start", "end", "map")
#: Written since the digest was added; a state stored before it lacks the key (and is refitted).
_OPTIONAL_KEYS = ("window",)


def window_digest(y: np.ndarray, observed: np.ndarray) -> str:
    """A digest of a fit's window (its grid values and which of them were observed), so that
    a value revised inside the window is noticed before the fit is filtered forward."""
    body = np.ascontiguousarray(y, dtype=np.float64).tobytes() + np.asarray(observed, dtype=bool).tobytes()
    return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True)
class ETSState:
    """One AutoETS fit, as :func:`filter_forward` needs it (module docstring)."""

    form: str  # components and season length, e.g. "ANAN/7"
    par: tuple[float, ...]  # alpha, beta, gamma, phi, initial states (NaN where unused)
    n_params: int
    start: datetime  # first grid stamp of the window it was fitted on
    end: datetime  # last grid stamp of that window
    bound_map: tuple[float | None, float | None, float] | None = None  # (lower, upper, offset)
    window: str | None = None  # window_digest of the window's grid; None: stored before digests

    @property
    def components(self) -> str:
        return self.form.split("/")[0]

    @property
    def season(self) -> int:
        return int(self.form.split("/")[1])

    def to_text(self) -> str:
        """The stored form: JSON, NaN parameters as null."""
        return json.dumps(
            {
                "form": self.form,
                "par": [None if math.isnan(p) else p for p in self.par],
                "n_params": self.n_params,
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "map": list(self.bound_map) if self.bound_map is not None else None,
                "window": self.window,
            }
        )

    @classmethod
    def from_text(cls, text: str) -> ETSState:
        """Parse :meth:`to_text`'s output; a malformed text raises :class:`FrameError`."""
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or not set(_KEYS) <= set(raw) <= {*_KEYS, *_OPTIONAL_KEYS}:
                raise ValueError(f"keys {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}")
            components, season = str(raw["form"]).split("/")
            if len(components) != 4 or int(season) < 1:
                raise ValueError(f"form {raw['form']!r}")
            bound_map = raw["map"]
            return cls(
                form=str(raw["form"]),
                par=tuple(float("nan") if p is None else float(p) for p in raw["par"]),
                n_params=int(raw["n_params"]),
                start=datetime.fromisoformat(raw["start"]),
                end=datetime.fromisoformat(raw["end"]),
                bound_map=(bound_map[0], bound_map[1], float(bound_map[2])) if bound_map is not None else None,
                window=None if raw.get("window") is None else str(raw["window"]),
            )
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise FrameError(
                f"a stored AutoETS state is not readable ({exc}): {text[:120]!r}",
                fix="leave it: the series is refitted and its state written again "
                "(or set [forecast] refit_every = '0d' to refit every cycle)",
            ) from exc


def filter_forward(state: ETSState, y: np.ndarray, *, h: int, levels: Sequence[int]) -> dict[str, Any]:
    """statsforecast's forecast dictionary of ``state`` filtered over ``y`` (module docstring)."""
    y = _ensure_float(np.asarray(y))
    fitted_model = {
        "components": state.components,
        "par": np.asarray(state.par, dtype=np.float64),
        "n_params": state.n_params,
        "m": state.season,
        "fit": None,
    }
    mod = ets_f(y, m=state.season, model=fitted_model)
    level = sorted(levels)
    fcst = forecast_ets(mod, h=h, level=level)
    res: dict[str, Any] = {"mean": fcst["mean"], "fitted": fcst["fitted"]}
    res.update({f"lo-{lv}": fcst[f"lo-{lv}"] for lv in reversed(level)})
    res.update({f"hi-{lv}": fcst[f"hi-{lv}"] for lv in level})
    se = _calculate_sigma(y - mod["fitted"], len(y) - mod["n_params"])
    return dict(_add_fitted_pi(res=res, se=se, level=level))


def new_point_surprise(state: ETSState, ds: pd.DatetimeIndex, y: np.ndarray, fitted: np.ndarray) -> float:
    """The largest one-step error of the points stamped after ``state.end``, in standard
    deviations (root mean square) of the errors inside the fit's window; 0.0 without new
    points. Errors are relative for a multiplicative-error form, as the model defines them."""
    y = np.asarray(y, dtype=np.float64)
    fitted = np.asarray(fitted, dtype=np.float64)
    errors = y - fitted
    if state.components[0] == "M":
        errors = np.divide(errors, fitted, out=np.full_like(errors, np.nan), where=fitted != 0)
    after = np.asarray(ds > pd.Timestamp(state.end))
    inside = errors[~after & np.isfinite(errors)]
    new = errors[after & np.isfinite(errors)]
    if new.size == 0:
        return 0.0
    scale = float(np.sqrt(np.mean(inside**2))) if inside.size else 0.0
    if scale == 0.0:
        return float("inf") if np.any(new != 0) else 0.0
    return float(np.max(np.abs(new)) / scale)
