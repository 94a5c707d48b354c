"""Ensembles: several models' forecast frames combined into one per series.

Quantiles are combined level by level (quantile averaging, "Vincentization"), which keeps
the combined forecast a proper quantile forecast; rows are re-sorted afterwards so the
quantiles stay monotone. Methods (the name of the ensemble is ``Ensemble-<method>``):

- ``median``: the per-column median of the members (robust to one bad member);
- ``weighted``: a weighted mean with weights per series and member (e.g. inverse backtest
  loss, :func:`inverse_loss_weights`), normalised to sum to 1 over the members present;
- ``top2``, ``top3``: the median of the series' best 2 or 3 members, ranked on the backtest
  (:func:`top_members`; the backtest ranks them on earlier windows only);
- ``statglobal``: the mean of the series' best statistical member and the global learned
  model(s) (:data:`forecasting.global_model.GLOBAL_MODELS`), a statistical + global combination.

Which members each series' ensemble combines is decided by the caller (the backtest, from
the training part only); :func:`combine_forecasts` combines what it is given.

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

__all__ = [
    "ENSEMBLE_METHODS",
    "ensemble_name",
    "ensemble_method",
    "combine_forecasts",
    "inverse_loss_weights",
    "top_members",
    "statglobal_members",
]

ENSEMBLE_METHODS: tuple[str, ...] = ("median", "weighted", "top2", "top3", "statglobal")
#: How many members the top-k methods keep.
TOP_K: dict[str, int] = {"top2": 2, "top3": 3}
_VALUES = ("mean", *(quantile_column(q) for q in QUANTILES))


def ensemble_name(method: str) -> str:
    """Model name of an ensemble: ``Ensemble-median`` or ``Ensemble-weighted``."""
    if method not in ENSEMBLE_METHODS:
        raise FrameError(f"unknown ensemble method {method!r}", fix=f"use one of {ENSEMBLE_METHODS}")
    return f"Ensemble-{method}"


def ensemble_method(model: str) -> str:
    """The method of an ensemble's model name (``Ensemble-top3`` -> ``top3``)."""
    method = model.split("-", 1)[1] if model.startswith("Ensemble-") else ""
    ensemble_name(method)  # raises FrameError naming the methods
    return method


def top_members(scores: Mapping[str, float], members: Sequence[str], k: int) -> list[str]:
    """The ``k`` members with the lowest finite score (ties and unscored members keep the
    given order, so without scores the first ``k`` members are kept)."""
    order = {m: i for i, m in enumerate(members)}

    def key(m: str) -> tuple[float, int]:
        value = scores.get(m)
        finite = value is not None and np.isfinite(value)
        return (float(value) if finite else np.inf, order[m])  # type: ignore[arg-type]

    return sorted(members, key=key)[:k]


def statglobal_members(scores: Mapping[str, float], members: Sequence[str], global_models: Sequence[str]) -> list[str]:
    """The best statistical member (lowest score; the first without scores) and the global
    model members; empty when either side is missing."""
    glob = [m for m in members if m in global_models]
    stat = [m for m in members if m not in global_models]
    if not glob or not stat:
        return []
    return [*top_members(scores, stat, 1), *glob]


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
    if method != "weighted":  # median, top-k (median of the best k), statglobal (2 members: their mean)
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
