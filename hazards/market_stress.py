"""Market indicators: a composite stress index in the spirit of the ECB's CISS, and drawdowns.

:func:`stress_composite` follows Holló, Kremer & Lo Duca (2012): every raw indicator is
mapped to ``[0, 1]`` by its *causal* empirical CDF (rank among its own past values, so the
index at ``t`` uses data up to ``t``); a segment's sub-index is the mean of its indicators;
the composite is ``sqrt(s' C s) / sum(w)`` with ``s = w * sub-indices`` and ``C`` the
exponentially weighted correlation matrix of the sub-indices (decay ``lam``). When segments
move together the correlations rise towards 1 and the composite towards the weighted mean;
when they diverge it falls: systemic stress is stress that is everywhere at once.

Input: a wide frame ``ds`` plus one column per indicator, oriented so that *higher = more
stress* (negate a spread whose inversion is the stress signal), on one regular grid with
no gaps (forward-fill a slower series onto it first), and ``segments`` mapping a segment name
(volatility, credit, yield_curve, funding, fx, ...) to its indicator columns.

:func:`drawdown`: ``y / running max - 1`` of a price-like series (0 at a new high, -0.3 = 30%
below the peak), with the peak's date.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from core.errors import FrameError

__all__ = ["stress_composite", "causal_ecdf", "drawdown"]


def causal_ecdf(x: np.ndarray) -> np.ndarray:
    """Rank of each value among itself and the values before it, over their count (NaN kept)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    seen: list[float] = []
    import bisect

    for i, value in enumerate(x):
        if np.isnan(value):
            continue
        bisect.insort(seen, value)
        out[i] = bisect.bisect_right(seen, value) / len(seen)
    return out


def stress_composite(
    indicators: pl.DataFrame,
    *,
    segments: Mapping[str, Sequence[str]],
    weights: Mapping[str, float] | None = None,
    lam: float = 0.93,
    warmup: int = 52,
) -> pl.DataFrame:
    """CISS-like composite (module docstring). Out: ``ds``, one column per segment (its
    sub-index), ``contribution_<segment>`` (its share of the composite; they add up to it),
    ``avg_correlation``, ``composite``.

    Rows before ``warmup`` steps have a null composite (the ranks and correlations have
    too little history to mean anything).
    """
    if "ds" not in indicators.columns:
        raise FrameError(
            f"indicator frame lacks 'ds'; it has {indicators.columns}",
            fix="pass a wide frame: ds plus one column per indicator",
        )
    unknown = sorted({c for cols in segments.values() for c in cols} - set(indicators.columns))
    if unknown or not segments:
        raise FrameError(
            f"segments name columns {unknown} that the frame lacks (or no segments)",
            fix=f"map segment names to columns among {indicators.columns}",
        )
    if not 0.0 < lam < 1.0:
        raise FrameError(f"lam={lam} must lie in (0, 1)", fix="use the CISS value 0.93")
    frame = indicators.sort("ds")
    names = list(segments)
    w = np.array([float((weights or {}).get(s, 1.0)) for s in names])
    with warnings.catch_warnings():  # a segment whose indicators all lack a value: NaN, skipped
        warnings.simplefilter("ignore", RuntimeWarning)
        sub = np.column_stack(
            [
                np.nanmean(
                    np.column_stack(
                        [causal_ecdf(frame.get_column(c).cast(pl.Float64).to_numpy()) for c in segments[s]]
                    ),
                    axis=1,
                )
                for s in names
            ]
        )
    composite, avg_corr, contrib = _ciss(sub, w, lam, warmup)
    return pl.DataFrame(
        {
            "ds": frame.get_column("ds"),
            **{s: sub[:, i] for i, s in enumerate(names)},
            **{f"contribution_{s}": contrib[:, i] for i, s in enumerate(names)},
            "avg_correlation": avg_corr,
            "composite": composite,
        }
    ).with_columns(
        pl.col("composite").fill_nan(None),
        pl.col("avg_correlation").fill_nan(None),
        *[pl.col(f"contribution_{s}").fill_nan(None) for s in names],
    )


def _ciss(sub: np.ndarray, w: np.ndarray, lam: float, warmup: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite, average cross-correlation and each segment's contribution.

    ``composite**2 = sum_i (w_i s_i) (C w s)_i / sum(w)**2``, so segment ``i`` contributes
    ``(w_i s_i) (C w s)_i / sum(w)**2 / composite`` and the contributions add up to the
    composite (Hollo et al. 2012, section 3.3)."""
    n, k = sub.shape
    composite = np.full(n, np.nan)
    avg_corr = np.full(n, np.nan)
    contrib = np.full((n, k), np.nan)
    cov = np.eye(k) * 1e-3
    # CISS demeans by the theoretical median of a uniform rank, 0.5.
    for t in range(n):
        s = sub[t]
        if np.any(np.isnan(s)):
            continue
        d = s - 0.5
        cov = lam * cov + (1.0 - lam) * np.outer(d, d)
        sd = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
        corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
        if t >= warmup:
            ws = w * s
            quad = max(float(ws @ corr @ ws), 0.0)
            composite[t] = float(np.sqrt(quad) / w.sum())
            avg_corr[t] = float((corr.sum() - k) / (k * (k - 1))) if k > 1 else 1.0
            if quad > 0.0:
                contrib[t] = ws * (corr @ ws) / w.sum() ** 2 / composite[t]
    return composite, avg_corr, contrib


def drawdown(series: pl.DataFrame) -> pl.DataFrame:
    """Per row: ``drawdown`` (fraction below the running peak) and ``peak_ds`` (series contract in)."""
    from core.frames import validate_series

    frame = validate_series(series)
    if frame.filter(pl.col("y") <= 0).height:
        raise FrameError(
            "drawdown needs a positive price-like series", fix="use index levels or prices, not returns or spreads"
        )
    peak = pl.col("y").cum_max().over("unique_id")
    out = frame.with_columns((pl.col("y") / peak - 1.0).alias("drawdown"))
    is_peak = pl.col("y") >= pl.col("y").cum_max().over("unique_id")
    return out.with_columns(
        pl.when(is_peak).then(pl.col("ds")).otherwise(None).forward_fill().over("unique_id").alias("peak_ds")
    )
