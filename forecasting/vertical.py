"""Vertical (domain-trained) models: Chronos-2 fine-tuned, or trained from scratch, on a domain.

Contract of :func:`train_vertical`: in, the long series frame of one domain's series, their
frequencies and horizons, an optional base model (a loaded Chronos-2
:class:`~forecasting.chronos.ChronosModel`; ``None`` trains a small Chronos-2 from random
weights), the number of optimiser ``steps`` and an ``output_dir`` the caller owns; out, a
:class:`TrainedModel` whose pipeline is saved under ``output_dir / "model"`` (loadable with
:func:`forecasting.chronos.load_chronos`).

Validation is held out: the last ``h`` grid points of every series (``h`` its frequency's
horizon) are never shown to the optimiser. After training, the model forecasts those points
from the rest, and so do the base model (when there is one) and SeasonalNaive, on the same
windows; ``validation`` holds all their MASE / WQL / coverage, so a reader can see at once
whether training helped. :func:`training_data_hash` fingerprints exactly the data trained on.
With ``bounds`` (physical bounds per series, :mod:`forecasting.bounds`) the bounded series are
trained on, and validated from, the same scale their forecasts are made on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.errors import ModelError
from core.frames import FREQUENCIES, validate_series
from forecasting.bounds import BoundedScale, Bounds
from forecasting.chronos import (
    ChronosModel,
    build_random_chronos,
    forecast_chronos,
    load_chronos,
    model_from_pipeline,
)
from forecasting.metrics import score_forecasts, seasonal_scale
from forecasting.regularise import regularise
from forecasting.statistical import forecast_statistical

__all__ = ["TrainedModel", "train_vertical", "training_data_hash", "split_holdout"]

#: Fewest training grid points (before the held-out part) a series needs to be trained on.
_MIN_TRAIN = 32


@dataclass(frozen=True)
class TrainedModel:
    """A trained vertical model, where it is saved, and how it did on held-out data."""

    model: ChronosModel
    path: Path
    base: str
    steps: int
    data_hash: str
    series: list[str]
    validation: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)


def training_data_hash(series: pl.DataFrame) -> str:
    """SHA-256 over the sorted ``unique_id, ds, y`` rows: same data, same hash."""
    frame = validate_series(series)
    digest = hashlib.sha256()
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        digest.update(str(uid).encode())
        digest.update(part.get_column("ds").cast(pl.Int64).to_numpy().tobytes())
        digest.update(part.get_column("y").to_numpy().tobytes())
    return digest.hexdigest()


def split_holdout(
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    max_context: int,
) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """(train, held-out actuals, notes): the last ``h`` grid points of each series held out."""
    train_parts, test_parts, notes = [], [], []
    for (uid,), part in validate_series(series).group_by("unique_id", maintain_order=True):
        frequency = frequencies[uid]
        h = horizons[frequency]
        grid = regularise(
            part.get_column("ds").to_numpy(),
            part.get_column("y").to_numpy(),
            frequency=frequency,
            max_context=max_context + h,
        )
        if len(grid.y) - h < _MIN_TRAIN:
            notes.append(f"{uid}: {len(grid.y) - h} training points < {_MIN_TRAIN}; left out")
            continue
        cutoff = grid.ds[-h - 1]
        train_parts.append(part.filter(pl.col("ds") <= cutoff))
        keep = grid.observed[-h:]
        test_parts.append(
            pl.DataFrame(
                {
                    "unique_id": uid,
                    "cutoff": cutoff.to_pydatetime(),
                    "ds": grid.ds[-h:][keep].to_numpy(),
                    "y": grid.y[-h:][keep],
                    "scale": seasonal_scale(grid.y[:-h], FREQUENCIES[frequency]),
                }
            ).with_columns(pl.col("ds").cast(pl.Datetime("us")), pl.col("cutoff").cast(pl.Datetime("us")))
        )
    if not train_parts:
        raise ModelError(
            "no series is long enough to train on", fix=f"each series needs {_MIN_TRAIN} points plus its horizon"
        )
    return pl.concat(train_parts), pl.concat(test_parts), notes


def train_vertical(
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    output_dir: str | Path,
    name: str,
    base: ChronosModel | None = None,
    steps: int = 100,
    learning_rate: float | None = None,
    batch_size: int = 32,
    max_context: int = 512,
    seed: int = 0,
    threads: int = 2,
    bounds: Mapping[str, Bounds] | None = None,
) -> TrainedModel:
    """Train a Chronos-2 on the domain's series with a held-out window (module docstring)."""
    if steps < 1:
        raise ModelError(f"steps={steps}: training needs at least one step", fix="pass --steps 100")
    if base is not None and base.kind != "chronos2":
        raise ModelError(
            f"base model {base.source} is {base.kind}; only Chronos-2 can be fine-tuned here",
            fix="point [chronos] source at a Chronos-2 model, or train from scratch (no base)",
        )
    output_dir = Path(output_dir)
    train, holdout, notes = split_holdout(series, frequencies=frequencies, horizons=horizons, max_context=max_context)
    start = base
    if start is None:
        # No base weights: a small Chronos-2 from random weights, trained with a larger step size.
        init = build_random_chronos(output_dir / "init", shape="tiny", context_length=max_context, seed=seed)
        start = load_chronos(init, threads=threads)
        notes.append("no base weights: trained a small Chronos-2 (d_model 64, 2 layers) from scratch")
    lr = learning_rate if learning_rate is not None else (1e-5 if base is not None else 1e-3)
    h_max = max(horizons[frequencies[u]] for u in train.get_column("unique_id").unique().to_list())
    scaled = BoundedScale(bounds).fit(train).transform(train)
    inputs = [
        part.get_column("y").to_numpy().astype(np.float32)[-max_context:]
        for _, part in scaled.group_by("unique_id", maintain_order=True)
    ]
    tuned = _fit(
        start.pipeline,
        inputs,
        h=h_max,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        work=output_dir / "trainer",
        seed=seed,
        context=max_context,
    )
    saved = output_dir / "model"
    tuned.save_pretrained(saved)
    trained = model_from_pipeline(tuned, source=str(saved), name=name)
    validation = _validate(trained, base, train, holdout, frequencies, horizons, max_context, bounds)
    return TrainedModel(
        model=trained,
        path=saved,
        base=base.source if base else "scratch",
        steps=steps,
        data_hash=training_data_hash(train),
        series=sorted(train.get_column("unique_id").unique().to_list()),
        validation=validation,
        notes=notes,
    )


def _fit(
    pipeline: Any,
    inputs: list[np.ndarray],
    *,
    h: int,
    steps: int,
    lr: float,
    batch_size: int,
    work: Path,
    seed: int,
    context: int,
) -> Any:
    try:
        return pipeline.fit(
            inputs,
            prediction_length=h,
            num_steps=steps,
            learning_rate=lr,
            batch_size=batch_size,
            output_dir=str(work),
            context_length=context,
            remove_printer_callback=True,
            disable_tqdm=True,
            seed=seed,
            logging_steps=max(1, steps),
        )
    except Exception as exc:
        raise ModelError(
            f"Chronos-2 training failed: {type(exc).__name__}: {exc}",
            fix="try fewer steps or a smaller batch size; check the series",
        ) from exc


def _validate(
    trained: ChronosModel,
    base: ChronosModel | None,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    max_context: int,
    bounds: Mapping[str, Bounds] | None,
) -> dict[str, dict[str, float]]:
    """Held-out metrics of the trained model, its base and SeasonalNaive (pooled over series)."""
    parts = [
        forecast_chronos(
            trained, train, frequencies=frequencies, horizons=horizons, max_context=max_context, bounds=bounds
        ).forecasts
    ]
    if base is not None:
        parts.append(
            forecast_chronos(
                base, train, frequencies=frequencies, horizons=horizons, max_context=max_context, bounds=bounds
            ).forecasts
        )
    parts.append(
        forecast_statistical(
            train, frequencies=frequencies, horizons=horizons, models=("SeasonalNaive",), n_jobs=1, bounds=bounds
        ).forecasts
    )
    forecasts = pl.concat(parts, how="vertical_relaxed")
    joined = holdout.drop("scale").join(forecasts, on=["unique_id", "ds"])
    metrics = score_forecasts(joined, holdout.select("unique_id", "cutoff", "scale").unique())
    out: dict[str, dict[str, float]] = {}
    for (model,), part in metrics.group_by("model"):
        label = "trained" if model == trained.name else "base" if base and model == base.name else str(model)
        out[label] = {
            "series": float(part.height),
            "mase": _mean(part["mase"]),
            "wql": _mean(part["wql"]),
            "coverage_90": _mean(part["coverage_90"]),
        }
    return out


def _mean(column: pl.Series) -> float:
    values = column.drop_nulls().to_numpy()
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")
