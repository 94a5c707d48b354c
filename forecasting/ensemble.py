"""Ensembles: several models' forecast frames combined into one per series.

Quantiles are combined level by level (quantile averaging, "Vincentization"), which keeps
the combined forecast a proper quantile forecast; rows are re-sorted afterwards so the
quantiles stay monotone. Two methods:

- ``median``: the per-column median of the members (robust to one bad member);
- ``weighted``: a weighted mean with weights per series and member (e.g. inverse backtest
  loss, :func:`inverse_loss_weights`), normalised to sum to 1 over the members present.

Contract of :func:`combine_forecasts`: in, a forecast frame (``unique_id, ds, model, mean,
q05 ... q95``, optionally with extra key columns such as ``cutoff``) and the members per series;
out, a forecast frame with ``model = name`` and one row per key and step where every
member of that series has a forecast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from core.errors import FrameError
from core.frames import QUANTILES, quantile_column

__all__ = ["ENSEMBLE_METHODS", "ensemble_name", "combine_forecasts", "inverse_loss_weights"]

ENSEMBLE_METHODS: tuple[str, ...] = ("median", "weighted")
_VALUES = ("mean", *(quantile_column(q) for q in QUANTILES))


def ensemble_name(method: str) -> str:
    """Model name of an ensemble: ``Ensemble-median`` or ``Ensemble-weighted``."""
    if method not in ENSEMBLE_METHODS:
        raise FrameError(f"unknown ensemble method {method!r}", fix=f"use one of {ENSEMBLE_METHODS}")
    return f"Ensemble-{method}"


def combine_forecasts(
    forecasts: pl.DataFrame,
    *,
    members: Mapping[str, Sequence[str]],
    method: str = "median",
    weights: Mapping[str, Mapping[str, float]] | None = None,
    keys: Sequence[str] = ("unique_id", "ds"),
) -> pl.DataFrame:
    """Combine the members of each series (see the module docstring)."""
    name = ensemble_name(method)
    if method == "weighted" and weights is None:
        raise FrameError("weighted ensemble without weights", fix="pass weights={uid: {model: w}}")
    weights = weights or {}
    rows = [(uid, m) for uid, models in members.items() for m in models]
    if not rows:
        return forecasts.clear().select(*keys, pl.lit(name).alias("model"), *_VALUES)
    wanted = pl.DataFrame(rows, schema={"unique_id": pl.Utf8, "model": pl.Utf8}, orient="row")
    if method == "weighted":
        wanted = wanted.with_columns(pl.Series("w", [float(weights[u].get(m, 0.0)) for u, m in rows], dtype=pl.Float64))
    else:
        wanted = wanted.with_columns(w=pl.lit(1.0))
    part = forecasts.join(wanted, on=["unique_id", "model"], how="inner")
    need = wanted.group_by("unique_id").agg(pl.len().alias("n_members"))
    if method == "median":
        combined = part.group_by(*keys).agg(pl.len().alias("n"), *(pl.col(c).median() for c in _VALUES))
    else:
        combined = part.group_by(*keys).agg(
            pl.len().alias("n"),
            *((pl.col(c) * pl.col("w")).sum() / pl.col("w").sum() for c in _VALUES),
        )
    combined = (
        combined.join(need, on="unique_id")
        .filter(pl.col("n") == pl.col("n_members"))  # only steps every member forecast
        .drop("n", "n_members")
    )
    return _sorted_quantiles(combined).select(*keys, pl.lit(name).alias("model"), *_VALUES).sort(*keys)


def _sorted_quantiles(frame: pl.DataFrame) -> pl.DataFrame:
    """Re-sort each row's quantiles so they rise with the level (combination can cross them)."""
    if frame.height == 0:
        return frame
    qcols = [quantile_column(q) for q in QUANTILES]
    values = np.sort(frame.select(qcols).to_numpy(), axis=1)
    return frame.with_columns(pl.Series(c, values[:, i]) for i, c in enumerate(qcols))


def inverse_loss_weights(
    metrics: pl.DataFrame, *, members: Sequence[str], metric: str = "wql"
) -> dict[str, dict[str, float]]:
    """Per series, weights proportional to 1 / loss of each member (equal if any loss is 0/NaN)."""
    out: dict[str, dict[str, float]] = {}
    part = metrics.filter(pl.col("model").is_in(list(members)))
    for (uid,), rows in part.group_by("unique_id", maintain_order=True):
        losses = dict(zip(rows["model"], rows[metric], strict=True))
        values = [losses.get(m) for m in members]
        if any(v is None or not np.isfinite(v) or v <= 0 for v in values):
            out[uid] = dict.fromkeys(members, 1.0 / len(members))
            continue
        inv = np.array([1.0 / v for v in values if v is not None])  # all present: checked above
        out[uid] = dict(zip(members, (inv / inv.sum()).tolist(), strict=True))
    return out
