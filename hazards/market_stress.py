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

__all__ = ["stress_composite", "causal_ecdf", "drawdown", "drawdown_events"]


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


def drawdown_events(series: pl.DataFrame, *, decline: float = 0.2, recovery: float = 0.2) -> pl.DataFrame:
    """Bear markets of price-like series by the 20 % rule; series contract in.

    The thresholds are the Yardeni / Ned Davis convention (Yardeni Research's S&P 500 tables:
    bear markets are declines of 20 % or more, bull markets gains over 20 % from the trough).
    Applied without hindsight, a 20 % rally inside a long decline ends the bear market.

    A state machine over the closes of each ``unique_id``, in time order. In a bull state the
    running peak is tracked (the first date of the highest close). When a close is at or below
    ``(1 - decline) * peak`` a bear market starts: ``onset`` is that date, ``peak`` the peak's
    date. In the bear state the trough is tracked (the first date of the lowest close). When a
    close is at or above ``(1 + recovery) * trough`` the bear market ends: ``end`` is that date,
    ``trough`` the trough's date, ``depth = trough close / peak close - 1`` (-0.3 = 30 % down);
    a new bull state starts with that close as its peak. A bear market still running at the
    last close has ``trough``, ``end`` and ``depth`` null: its low is not known until a recovery
    confirms it.

    Out: ``unique_id, onset, peak, trough, end, depth`` (one row per bear market, sorted by
    ``unique_id, onset``; the dates have the type of ``ds``).
    """
    from core.frames import validate_series

    frame = validate_series(series)
    bad = frame.filter(pl.col("y") <= 0)
    if bad.height:
        first = bad.row(0, named=True)
        raise FrameError(
            f"drawdown_events needs positive prices; {bad.height} value(s) are <= 0 "
            f"(first {first['unique_id']} at {first['ds']}: {first['y']})",
            fix="pass index levels or prices, not returns, spreads or changes",
        )
    if not 0.0 < decline < 1.0 or not recovery > 0.0:
        raise FrameError(
            f"decline={decline} must lie in (0, 1) and recovery={recovery} must be > 0",
            fix="use the conventional 0.2 and 0.2 (a 20 % fall starts a bear market, a 20 % rise ends it)",
        )
    rows: dict[str, list] = {k: [] for k in ("unique_id", "onset", "peak", "trough", "end", "depth")}
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        ds, y = part.get_column("ds").to_list(), part.get_column("y").to_numpy()
        peak_i, trough_i, onset_i, in_bear = 0, 0, 0, False
        for i in range(1, len(y)):
            if not in_bear:
                if y[i] > y[peak_i]:
                    peak_i = i
                elif y[i] <= (1.0 - decline) * y[peak_i]:
                    in_bear, onset_i, trough_i = True, i, i
            elif y[i] < y[trough_i]:
                trough_i = i
            elif y[i] >= (1.0 + recovery) * y[trough_i]:
                for key, value in zip(
                    rows,
                    (uid, ds[onset_i], ds[peak_i], ds[trough_i], ds[i], float(y[trough_i] / y[peak_i] - 1.0)),
                    strict=True,
                ):
                    rows[key].append(value)
                in_bear, peak_i = False, i
        if in_bear:
            for key, value in zip(rows, (uid, ds[onset_i], ds[peak_i], None, None, None), strict=True):
                rows[key].append(value)
    date = frame.schema["ds"]
    schema = {"unique_id": pl.Utf8(), **{k: date for k in ("onset", "peak", "trough", "end")}, "depth": pl.Float64()}
    return pl.DataFrame(rows, schema=schema).sort("unique_id", "onset")
