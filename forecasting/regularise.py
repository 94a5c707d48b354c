"""Put one series on its declared frequency grid before a model sees it.

Statistical models (and Chronos' ``predict_df``) assume one value per grid step with no gaps.
Real series break that in two ways, both handled here explicitly and counted:

- **off-grid stamps** are snapped to the grid point of the period they belong to:
  ``h`` and ``D`` floor to the hour / day; ``B`` and ``MS`` roll *back* to the business day /
  month start at or before the stamp (a Saturday value belongs to Friday's session, a
  mid-month value to its month); ``W-FRI`` and ``W-SUN`` roll *forward* to the week's anchor
  day, because a week-ending stamp labels the week that ends on it (a FRED weekly value
  stamped on a Thursday before a Friday holiday belongs to that Friday). When two stamps
  land on one grid point the later observation wins.
- **gaps** (market holidays on a business-day grid, days without an event) are
  forward-filled from the last observation, and flagged so callers can drop them again
  (in-sample fits are only reported where a value was actually observed).

Contract: :func:`regularise` takes the ``ds`` and ``y`` of one series (sorted, unique, as
:func:`core.frames.validate_series` returns them) and returns a :class:`Regularised` whose
``ds`` is a complete grid of at most ``max_context`` points ending at the last observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from core.errors import FrameError
from core.frames import FREQUENCIES

__all__ = ["Regularised", "regularise", "snap_to_grid"]

#: Frequencies whose grid point labels the *end* of its period (snap forward onto it).
_PERIOD_END_FREQUENCIES = ("W-FRI", "W-SUN")
#: Frequencies that are plain clock units (snap by flooring).
_FLOOR_FREQUENCIES = ("h", "D")
#: Step in seconds of the clock frequencies (a complete grid of them needs no work).
_FIXED_STEPS = {"h": 3600, "D": 86400}


@dataclass(frozen=True)
class Regularised:
    """One series on a complete grid.

    ``ds``/``y`` hold one value per grid step; ``observed[i]`` is False where ``y[i]`` was
    forward-filled. ``snapped`` counts stamps moved onto the grid, ``merged`` the
    observations dropped because a later one landed on the same grid point.
    """

    frequency: str
    ds: pd.DatetimeIndex
    y: np.ndarray
    observed: np.ndarray
    snapped: int
    merged: int

    @property
    def filled(self) -> int:
        """Grid points whose value was forward-filled."""
        return int((~self.observed).sum())

    def describe(self) -> str:
        """One-line account of what regularisation changed (empty if nothing)."""
        parts = []
        if self.filled:
            parts.append(f"{self.filled} gap(s) forward-filled")
        if self.snapped:
            parts.append(f"{self.snapped} off-grid stamp(s) snapped to the grid")
        if self.merged:
            parts.append(f"{self.merged} observation(s) merged into a later one on the same step")
        if not parts:
            return ""
        grid = f"regularised onto {self.frequency} grid ({len(self.ds)} points)"
        return f"{grid}: {', '.join(parts)}"


def snap_to_grid(ds: pd.DatetimeIndex, frequency: str) -> pd.DatetimeIndex:
    """Move every stamp onto the grid of ``frequency`` (rules in the module docstring)."""
    if frequency not in FREQUENCIES:
        raise FrameError(f"unknown frequency {frequency!r}", fix=f"declare one of {', '.join(FREQUENCIES)}")
    if frequency in _FLOOR_FREQUENCIES:
        return ds.floor(frequency)
    offset = to_offset(frequency)
    day = ds.normalize()
    if frequency in _PERIOD_END_FREQUENCIES:
        # Back one anchor then forward one: lands on the anchor at or after the stamp.
        return (day - offset) + offset
    # Forward one then back one: lands on the grid point at or before the stamp.
    return (day + offset) - offset


def regularise(
    ds: pd.DatetimeIndex | np.ndarray,
    y: np.ndarray,
    *,
    frequency: str,
    max_context: int,
) -> Regularised:
    """Snap, keep the last ``max_context`` observations, fill the grid, trim it to ``max_context``.

    ``ds`` must be sorted and unique (one series); ``y`` finite floats of the same length.
    """
    stamps = pd.DatetimeIndex(ds)
    values = np.asarray(y, dtype=np.float64)
    if len(stamps) != len(values) or len(stamps) == 0:
        raise FrameError(
            f"regularise got {len(stamps)} stamps and {len(values)} values",
            fix="pass the ds and y columns of one non-empty series",
        )
    # Trim first: snapping and the grid only ever concern the context a model will see.
    stamps, values = stamps[-max_context:], values[-max_context:]
    if frequency in _FIXED_STEPS and len(stamps) > 1:
        # Fast path for clock frequencies: a series already on a complete grid is returned
        # as it is (the common case for hourly and daily feeds; no snapping, no reindexing).
        step = np.timedelta64(_FIXED_STEPS[frequency], "s")
        raw = stamps.to_numpy()
        if (raw == raw.astype("datetime64[h]" if frequency == "h" else "datetime64[D]")).all() and (
            np.diff(raw) == step
        ).all():
            grid = pd.DatetimeIndex(raw.astype("datetime64[ns]"), freq=frequency)  # as date_range
            return Regularised(
                frequency=frequency, ds=grid, y=values, observed=np.ones(len(values), dtype=bool), snapped=0, merged=0
            )
    snapped_stamps = snap_to_grid(stamps, frequency)
    snapped = int((snapped_stamps != stamps).sum())
    on_grid = pd.Series(values, index=snapped_stamps)
    keep_last = ~on_grid.index.duplicated(keep="last")
    merged = int((~keep_last).sum())
    on_grid = on_grid[keep_last]

    grid = pd.date_range(on_grid.index[0], on_grid.index[-1], freq=frequency)
    full = on_grid.reindex(grid)
    observed = full.notna().to_numpy()
    # The whole grid is filled before trimming so its first point always has a value.
    filled = full.ffill().to_numpy()
    return Regularised(
        frequency=frequency,
        ds=grid[-max_context:],
        y=filled[-max_context:],
        observed=observed[-max_context:],
        snapped=snapped,
        merged=merged,
    )
