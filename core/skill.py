"""Verification scores shared by every library that measures a probability forecast.

One definition, so the aftershock, flood and event tables report the same number for the same
forecasts: :func:`brier_score` (Brier 1950; Wilks 2011, ch. 8), the mean squared difference
between forecast probabilities in [0, 1] and the 0/1 outcomes. Lower is better; a constant
forecast of the base rate b scores b (1 - b).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import FrameError

__all__ = ["brier_score"]


def brier_score(probabilities: np.ndarray | Sequence[float], outcomes: np.ndarray | Sequence[bool]) -> float:
    """Mean squared difference between probabilities in [0, 1] and 0/1 outcomes; NaN when empty."""
    p = np.asarray(probabilities, dtype=np.float64)
    o = np.asarray(outcomes, dtype=np.float64)
    if p.shape != o.shape:
        raise FrameError(f"{p.size} probabilities but {o.size} outcomes", fix="give one outcome per probability")
    if p.size == 0:
        return float("nan")
    if not np.all(np.isfinite(p)) or np.any((p < 0.0) | (p > 1.0)):
        raise FrameError("probabilities must be finite and in [0, 1]", fix="pass probabilities, not raw scores")
    return float(np.mean((p - o) ** 2))
