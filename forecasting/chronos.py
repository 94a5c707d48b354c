"""Chronos foundation models (Chronos-2, Chronos-Bolt) behind the engine's frame contract.

``chronos-forecasting`` and ``torch`` are imported lazily, only when a Chronos model is
loaded, so the statistical path never pays for them. The caller builds the model once
(:func:`load_chronos`, the one place this library reads files: the weights) and passes it in.

- :func:`load_chronos`: ``BaseChronosPipeline.from_pretrained`` on a local directory (holding
  ``config.json`` and ``model.safetensors``) or a Hugging Face hub id, on CPU in float32
  (bfloat16 is emulated on CPU and about 30x slower). ``threads`` sets torch's thread pool.
  A hub id is looked up in the local Hugging Face cache only (``allow_download=False``), so an
  air-gapped machine fails fast; the :class:`~core.errors.ModelError` then says exactly what
  was looked for and how to stage the weights (:data:`STAGING_HINT`).
- :func:`forecast_chronos`: series frame in, forecast frame out (``model`` = the loaded
  model's name), through the pipeline's ``predict_df``. Series are regularised onto their
  grid first (``predict_df`` needs regular stamps) and trimmed to ``max_context`` points.
  ``mean`` is the pipeline's point forecast; the quantiles are its own. Chronos-Bolt was
  trained on the levels 0.1 ... 0.9, so its q05/q95 are clamped to q10/q90 (noted).
  ``bounds={unique_id: (lower, upper)}`` forecasts those series on the scale that keeps them
  inside their physical bounds, as the statistical models do (:mod:`forecasting.bounds`).
- :func:`build_random_chronos`: writes a Chronos-2 or Chronos-Bolt model with random weights
  from a config (tests and speed benchmarks: the real loading and prediction code on a model
  that needs no download). Shapes: ``tiny``, ``chronos-2`` (120M), ``chronos-bolt-small`` (48M).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from core.errors import ModelError
from core.frames import QUANTILES, forecast_columns, quantile_column, validate_series
from forecasting.bounds import BoundedScale, Bounds
from forecasting.regularise import regularise
from forecasting.statistical import ForecastResult

__all__ = [
    "ChronosModel",
    "STAGING_HINT",
    "RANDOM_SHAPES",
    "chronos_installed",
    "load_chronos",
    "forecast_chronos",
    "build_random_chronos",
    "model_from_pipeline",
]

STAGING_HINT = (
    "stage the weights: on a machine with internet run "
    "`huggingface-cli download {hub} --local-dir {hub_name}` (or in Python: "
    "huggingface_hub.snapshot_download('{hub}', local_dir='{hub_name}')), copy that folder "
    "(config.json + model.safetensors) to EWS_HOME/models/{hub_name} and set "
    '[chronos] source = "models/{hub_name}" in ews.toml (relative to EWS_HOME); or pre-fill '
    "the Hugging Face cache (HF_HOME) with the hub id and set HF_HUB_OFFLINE=1. "
    "Until then the engine carries on with the statistical models"
)

#: Random-weight shapes: (kind, config sizes). The large ones match the published models.
RANDOM_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"kind": "chronos2", "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4},
    "chronos-2": {"kind": "chronos2", "d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12},
    "tiny-bolt": {"kind": "bolt", "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4},
    "chronos-bolt-small": {"kind": "bolt", "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8},
}
_BOLT_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
_CHRONOS2_QUANTILES = [
    0.01,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.55,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
    0.99,
]


@dataclass(frozen=True)
class ChronosModel:
    """A loaded Chronos pipeline and what it is: ``name`` goes into the ``model`` column."""

    name: str
    pipeline: Any
    source: str
    kind: str  # "chronos2" | "bolt" | "chronos"

    @property
    def quantile_range(self) -> tuple[float, float]:
        levels = list(getattr(self.pipeline, "quantiles", _BOLT_QUANTILES))
        return min(levels), max(levels)


def chronos_installed() -> bool:
    """Whether chronos-forecasting can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("chronos") is not None


def _import_chronos() -> Any:
    try:
        import chronos
    except ImportError as exc:  # pragma: no cover - the project installs it
        raise ModelError(
            f"chronos-forecasting is not installed ({exc})",
            fix="pip install chronos-forecasting torch==2.13.0 (the CPU wheel)",
        ) from None
    return chronos


def _hint(source: str) -> str:
    looks_like_hub = source.count("/") == 1 and not source.startswith((".", "/", "~"))
    hub = source if looks_like_hub and not Path(source).exists() else "amazon/chronos-2"
    return STAGING_HINT.format(hub=hub, hub_name=hub.split("/")[-1])


def load_chronos(
    source: str | Path,
    *,
    name: str | None = None,
    threads: int = 2,
    allow_download: bool = False,
) -> ChronosModel:
    """Load a Chronos-2 / Chronos-Bolt pipeline from a directory or hub id (module docstring)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    chronos = _import_chronos()
    text = str(source)
    if not text:
        raise ModelError("no Chronos model configured ([chronos] source is empty)", fix=_hint(text))
    path = Path(text).expanduser()
    local = path.exists()
    if local and not (path / "config.json").is_file():
        raise ModelError(
            f"Chronos directory {path} has no config.json (found: {sorted(p.name for p in path.iterdir())[:8]})",
            fix="point [chronos] source at the folder that holds config.json and model.safetensors; " + _hint(text),
        )
    if not local and ("/" not in text or text.startswith((".", "/", "~"))):
        raise ModelError(f"Chronos weights not found: no directory {path}", fix=_hint(text))
    kwargs: dict[str, Any] = {"device_map": "cpu", "dtype": torch.float32}
    if not local and not allow_download:
        kwargs["local_files_only"] = True
    try:
        pipeline = chronos.BaseChronosPipeline.from_pretrained(str(path) if local else text, **kwargs)
    except (OSError, ValueError) as exc:
        where = (
            f"directory {path}"
            if local
            else f"hub id {text!r} (local cache only)"
            if not allow_download
            else f"hub id {text!r}"
        )
        raise ModelError(
            f"Chronos weights not reachable from {where}: {str(exc).splitlines()[0]}",
            fix=_hint(text),
        ) from None
    return model_from_pipeline(pipeline, source=text, name=name)


def model_from_pipeline(pipeline: Any, *, source: str, name: str | None = None) -> ChronosModel:
    """Wrap an already built pipeline (e.g. a freshly fine-tuned one)."""
    kind = {"Chronos2Pipeline": "chronos2", "ChronosBoltPipeline": "bolt"}.get(type(pipeline).__name__, "chronos")
    default = {"chronos2": "Chronos2", "bolt": "ChronosBolt"}.get(kind, "Chronos")
    return ChronosModel(name=name or default, pipeline=pipeline, source=source, kind=kind)


def forecast_chronos(
    model: ChronosModel,
    series: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    max_context: int = 2048,
    batch_size: int = 64,
    bounds: Mapping[str, Bounds] | None = None,
) -> ForecastResult:
    """Forecast every series with a loaded Chronos model (module docstring)."""
    frame = validate_series(series)
    scale = BoundedScale(bounds).fit(frame)
    result = _forecast_frame(
        model,
        scale.transform(frame),
        frequencies=frequencies,
        horizons=horizons,
        max_context=max_context,
        batch_size=batch_size,
    )
    return scale.apply(result, observed=frame)


def _forecast_frame(
    model: ChronosModel,
    frame: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    horizons: Mapping[str, int],
    max_context: int,
    batch_size: int,
) -> ForecastResult:
    """:func:`forecast_chronos` of a validated frame, on the scale it is given."""
    notes: list[tuple[str, str, str]] = []
    # Per frequency: ids, stamps and values of the regularised series, gathered as arrays and
    # turned into one pandas frame per call (one frame per series costs more than the model).
    by_frequency: dict[str, tuple[list[str], list[int], list[np.ndarray], list[np.ndarray]]] = {}
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        frequency = frequencies[uid]
        grid = regularise(
            part.get_column("ds").to_numpy(),
            part.get_column("y").to_numpy(),
            frequency=frequency,
            max_context=max_context,
        )
        if grid.describe():
            notes.append((uid, model.name, grid.describe()))
        ids, sizes, stamps, values = by_frequency.setdefault(frequency, ([], [], [], []))
        ids.append(uid)
        sizes.append(len(grid.y))
        stamps.append(grid.ds.to_numpy())
        values.append(grid.y)
    low, high = model.quantile_range
    clamped = [q for q in QUANTILES if not low <= q <= high]
    parts = []
    for frequency, (ids, sizes, stamps, values) in sorted(by_frequency.items()):
        data = pd.DataFrame(
            {
                "unique_id": np.repeat(ids, sizes),
                "ds": np.concatenate(stamps),
                "y": np.concatenate(values).astype(np.float32),
            }
        )
        try:
            out = predict_frame(model, data, h=horizons[frequency], frequency=frequency, batch_size=batch_size)
        except Exception as exc:  # noqa: BLE001 - a model failure is reported per series, not raised
            for uid in data["unique_id"].unique():
                notes.append((uid, model.name, f"{model.name} failed: {type(exc).__name__}: {exc}"))
            continue
        parts.append(out)
        if clamped:
            for uid in data["unique_id"].unique():
                notes.append(
                    (
                        uid,
                        model.name,
                        f"quantiles {clamped} outside the model's trained "
                        f"range [{low}, {high}]: clamped to its nearest level",
                    )
                )
    forecasts = (
        pl.concat(parts)
        if parts
        else pl.DataFrame(
            schema={c: pl.Float64 for c in forecast_columns()}
            | {"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "model": pl.Utf8}
        )
    )
    empty_fit = forecasts.clear().with_columns(pl.lit(None, pl.Float64).alias("y"))
    return ForecastResult(
        forecasts=forecasts.sort("unique_id", "ds"),
        fitted=empty_fit.select("unique_id", "ds", "y", *forecast_columns()[2:]),
        notes=pl.DataFrame(notes, schema={"unique_id": pl.Utf8, "model": pl.Utf8, "note": pl.Utf8}, orient="row"),
    )


def predict_frame(model: ChronosModel, data: pd.DataFrame, *, h: int, frequency: str, batch_size: int) -> pl.DataFrame:
    """One ``predict_df`` call on regular pandas data; our columns out (the one adapter)."""
    import warnings

    with warnings.catch_warnings():
        # Bolt warns on every call that q05/q95 lie outside its levels; forecast_chronos notes it.
        warnings.simplefilter("ignore", UserWarning)
        out = model.pipeline.predict_df(
            data,
            id_column="unique_id",
            timestamp_column="ds",
            target="y",
            prediction_length=h,
            quantile_levels=list(QUANTILES),
            batch_size=batch_size,
            freq=frequency,
            validate_inputs=False,
        )
    renames = {str(q): quantile_column(q) for q in QUANTILES} | {"predictions": "mean"}
    frame = pl.from_pandas(out[["unique_id", "ds", "predictions", *(str(q) for q in QUANTILES)]])
    qcols = [quantile_column(q) for q in QUANTILES]
    frame = frame.rename(renames).with_columns(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.lit(model.name).alias("model"),
        *(pl.col(c).cast(pl.Float64) for c in ["mean", *qcols]),
    )
    values = np.sort(frame.select(qcols).to_numpy(), axis=1)  # keep quantiles monotone
    frame = frame.with_columns(pl.Series(c, values[:, i]) for i, c in enumerate(qcols))
    return frame.select(forecast_columns())


def build_random_chronos(
    directory: str | Path,
    *,
    shape: str = "tiny",
    context_length: int = 512,
    seed: int = 0,
) -> Path:
    """Write a random-weight Chronos model of ``shape`` (:data:`RANDOM_SHAPES`) to ``directory``."""
    import torch

    if shape not in RANDOM_SHAPES:
        raise ModelError(f"unknown Chronos shape {shape!r}", fix=f"use one of {list(RANDOM_SHAPES)}")
    chronos = _import_chronos()
    sizes = dict(RANDOM_SHAPES[shape])
    kind = sizes.pop("kind")
    torch.manual_seed(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "chronos2":
        from chronos.chronos2 import Chronos2Model
        from chronos.chronos2.config import Chronos2CoreConfig

        config = Chronos2CoreConfig(
            **sizes,
            chronos_config={
                "context_length": context_length,
                "input_patch_size": 16,
                "input_patch_stride": 16,
                "output_patch_size": 16,
                "quantiles": _CHRONOS2_QUANTILES,
                "use_reg_token": True,
                "use_arcsinh": True,
                "max_output_patches": 64,
            },
        )
        config.architectures = ["Chronos2Model"]
        config.chronos_pipeline_class = "Chronos2Pipeline"
        chronos.Chronos2Pipeline(Chronos2Model(config)).save_pretrained(directory)
    else:
        from chronos.chronos_bolt import ChronosBoltModelForForecasting
        from transformers import T5Config

        # transformers' T5Config is a strict dataclass whose typed __init__ lists only its own
        # fields, yet it takes the extra config keys at runtime (they become attributes): hence the ignore
        config = T5Config(
            **sizes,
            num_decoder_layers=sizes["num_layers"],
            vocab_size=2,  # type: ignore[call-arg]
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
            chronos_config={
                "context_length": context_length,
                "prediction_length": 64,
                "input_patch_size": 16,
                "input_patch_stride": 16,
                "quantiles": _BOLT_QUANTILES,
                "use_reg_token": True,
            },
        )
        config.architectures = ["ChronosBoltModelForForecasting"]
        config.chronos_pipeline_class = "ChronosBoltPipeline"
        ChronosBoltModelForForecasting(config).save_pretrained(directory)
    return directory
