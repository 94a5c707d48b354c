"""Where the cycle's per-series work runs: this machine or a Dask cluster (``[cycle] engine``).

The forecast and scoring steps of ``ews run`` work series by series (fits, detectors, causal
calibration, grading), so they can run anywhere the series' frames are sent. An :class:`Engine`
gives the cycle two things for that:

- ``forecast``: a drop-in for :func:`forecasting.forecast_statistical` (same arguments, same
  :class:`~forecasting.statistical.ForecastResult`), which the forecast step calls once per
  group of series sharing their models;
- ``pool`` and ``parts``: an :class:`~concurrent.futures.Executor` that the scoring step
  submits its per-series parts to (:func:`pipelines.score_step.score_and_grade_in_pool`), and
  into how many parts it splits a chunk (``pool`` None: the cycle's own process).

**local** (the default): forecasts in this process (statsforecast's own pool,
``[forecast] n_jobs``), scoring in a spawned process pool of ``[cycle] workers`` (none for 1).

**dask**: a :class:`distributed.Client` connected to ``[cycle] scheduler`` (or, when it is
empty, to a :class:`distributed.LocalCluster` of ``[cycle] workers`` processes started for the
run). The statistical forecasts go through Fugue's ``transform`` on that client, partitioned
by ``unique_id`` (coarse: whole series per partition, two partitions per worker thread); each
partition runs the local :func:`forecasting.forecast_statistical` (regularisation, model plans,
fallbacks, physical bounds, kept ETS forms, in-sample fits) with ``n_jobs=1`` and sends its
result back as Arrow IPC bytes in one row (statsforecast's own Fugue backend sends its fitted
values back as bytes too). The scoring
parts go to the client's executor. Every series is computed by the same code as locally, so
the rows written are the same (``tests/test_cycle_dask.py``).

Why not :func:`forecasting.forecast_distributed` (statsforecast's Fugue backend on a Dask
frame)? It returns no in-sample fits (the scoring step's forecast surprise needs them), does
not regularise, cut to ``[forecast] max_context``, bound or keep ETS forms, and plans every
model for a long series: its forecasts differ from the local engine's.

The warehouse is never touched off the driver: the cycle reads the chunk's frames, sends
them, and writes what comes back (DuckDB has one writer per file).
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import multiprocessing
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import polars as pl

import forecasting
from core.errors import ConfigError, ModelError
from core.settings import Settings
from forecasting.statistical import ForecastResult

__all__ = ["Engine", "Forecaster", "open_engine", "DASK_EXTRA", "CONNECT_TIMEOUT"]

#: The signature of :func:`forecasting.forecast_statistical` (the engine's ``forecast``).
Forecaster = Callable[..., ForecastResult]

#: What to install for the dask engine (pyproject's optional dependencies).
DASK_EXTRA = 'pip install "ews[dask]"  (dask[dataframe], distributed and fugue[dask])'
#: Seconds to wait for a Dask scheduler to answer, and for its first worker.
CONNECT_TIMEOUT = 10.0

_PAYLOAD_SCHEMA = "unique_id:str,forecasts:binary,fitted:binary,notes:binary,forms:str,error:str"
_PAYLOAD_COLUMNS = ("unique_id", "forecasts", "fitted", "notes", "forms", "error")


@dataclass(frozen=True)
class Engine:
    """Where one cycle's per-series work runs (module docstring)."""

    name: str
    forecast: Forecaster
    pool: Executor | None
    parts: int  # scoring parts per chunk (1: in the cycle's own process)
    description: str


@contextmanager
def open_engine(settings: Settings, *, progress: Callable[[str], None] = lambda _m: None) -> Iterator[Engine]:
    """The engine of ``[cycle] engine`` for one cycle; its pool or cluster is closed on exit."""
    cycle = settings.cycle
    if cycle.engine == "dask":
        with _dask_engine(settings, progress) as engine:
            yield engine
        return
    if cycle.workers <= 1:
        yield Engine("local", forecasting.forecast_statistical, None, 1, "local: this process")
        return
    # Spawned, not forked: the cycle's process holds DuckDB and polars threads, which a fork
    # would copy mid-state.
    with ProcessPoolExecutor(max_workers=cycle.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield Engine(
            "local",
            forecasting.forecast_statistical,
            pool,
            cycle.workers,
            f"local: scoring in {cycle.workers} processes",
        )


@contextmanager
def _dask_engine(settings: Settings, progress: Callable[[str], None]) -> Iterator[Engine]:
    try:
        import distributed

        missing = [m for m in ("fugue", "fugue_dask", "dask.dataframe") if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(f"no module named {', '.join(missing)}")
    except ImportError as exc:
        raise ConfigError(
            f"[cycle] engine = 'dask' needs dask, distributed and fugue[dask]; {exc}",
            fix=f"{DASK_EXTRA}, or run with --engine local",
        ) from None
    address = settings.cycle.scheduler
    with ExitStack() as stack:
        if address:
            client = stack.enter_context(_connect(distributed, address))
            where = f"the Dask scheduler at {address}"
        else:
            # Fugue's partitioning is a Dask shuffle, which the scheduler reports at WARNING level
            # on every call; it is the normal path here.
            logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=settings.cycle.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(distributed.Client(cluster, set_as_default=False))
            where = (
                f"a local Dask cluster of {settings.cycle.workers} worker process(es) started for this run "
                "(no [cycle] scheduler / --scheduler address given)"
            )
            client.wait_for_workers(settings.cycle.workers)
        threads = sum(int(n) for n in client.nthreads().values()) or 1
        description = f"dask: {where}, {threads} worker thread(s); the warehouse stays in this process"
        progress(f"      engine {description}")
        yield Engine(
            "dask",
            _fugue_forecaster(client, partitions=2 * threads),
            client.get_executor(pure=False),
            max(2, threads),
            description,
        )


@contextmanager
def _connect(distributed: Any, address: str) -> Iterator[Any]:
    """A client of the scheduler at ``address`` that has at least one worker."""
    fix = (
        f"start a scheduler there (`dask scheduler`, which listens on port 8786) and at least one "
        f"worker (`dask worker {address}`), check the address, or leave [cycle] scheduler empty "
        "(no --scheduler) for a local Dask cluster on this machine"
    )
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, ValueError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT:.0f} s ({exc})", fix=fix
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"the Dask scheduler at {address!r} has no worker after {CONNECT_TIMEOUT:.0f} s ({exc})", fix=fix
            ) from None
        yield client
    finally:
        client.close()


def _fugue_forecaster(client: Any, *, partitions: int) -> Forecaster:
    """:func:`forecasting.forecast_statistical` with its series sent through Fugue to ``client``."""

    def forecast(series: pl.DataFrame, **options: Any) -> ForecastResult:
        from fugue import transform

        ids = series.get_column("unique_id").unique().to_list()
        # Fugue's Dask engine keeps the client but computes on the current one: make it ours
        # (a client that is not the process default would otherwise leave the work here).
        with client.as_current(), warnings.catch_warnings():
            # dask's groupby-apply under Fugue's coarse partitioning warns about a pandas
            # deprecation on every call; nothing of ours depends on it (the grouping column
            # is passed and used on purpose)
            warnings.filterwarnings("ignore", "DataFrameGroupBy.apply operated on the grouping", FutureWarning)
            out = transform(
                series.select("unique_id", "ds", "y").to_pandas(),
                _forecast_partition,
                schema=_PAYLOAD_SCHEMA,
                params={"options": {**options, "n_jobs": 1}},  # a Dask worker runs one partition per thread
                partition={"by": "unique_id", "algo": "coarse", "num": max(1, min(partitions, len(ids)))},
                engine=client,
                as_local=True,
            )
        return _merge(out)

    return forecast


def _forecast_partition(df: pd.DataFrame, options: Any) -> pd.DataFrame:
    """One Fugue partition (whole series): the local forecast, in one row (the three frames as
    Arrow IPC bytes, the ETS forms, fits and forwarded series as JSON). A batch in which no series could be forecast
    travels as its :class:`ModelError`'s text in ``error``."""
    if df.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in _PAYLOAD_COLUMNS})
    frame = pl.from_pandas(df[["unique_id", "ds", "y"]])
    ids = set(frame.get_column("unique_id").cast(pl.Utf8).unique().to_list())
    kwargs = dict(options)
    for key in ("frequencies", "bounds", "ets_forms", "ets_states"):
        if kwargs.get(key):
            kwargs[key] = {u: v for u, v in kwargs[key].items() if u in ids}
    row: dict[str, Any] = dict.fromkeys(_PAYLOAD_COLUMNS)
    row["unique_id"] = min(ids)
    try:
        result = forecasting.forecast_statistical(frame, **kwargs)
    except ModelError as exc:
        row["error"] = str(exc)
    else:
        row.update(
            forecasts=_ipc(result.forecasts),
            fitted=_ipc(result.fitted),
            notes=_ipc(result.notes),
            forms=json.dumps(
                {"forms": result.ets_forms, "states": result.ets_states, "forwarded": list(result.forwarded)}
            ),
        )
    return pd.DataFrame({c: [v] for c, v in row.items()})


def _ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


def _merge(rows: pd.DataFrame) -> ForecastResult:
    """The partitions' results as one: the local call's rows, in its order."""
    done = rows[rows["error"].isna()]
    errors = [str(e) for e in rows["error"].dropna()]
    if errors and done.empty:
        raise ModelError(errors[0], fix="check the series named above (enough finite observations, sane values)")

    def frames(column: str) -> pl.DataFrame:
        return pl.concat([pl.read_ipc(io.BytesIO(b)) for b in done[column]], how="vertical_relaxed")

    notes = frames("notes")
    if errors:
        notes = pl.concat(
            [notes, pl.DataFrame({"unique_id": ["(batch)"] * len(errors), "model": "none", "note": errors})]
        )
    forms: dict[str, str] = {}
    states: dict[str, str] = {}
    forwarded: list[str] = []
    for text in done["forms"]:
        fits = json.loads(text)
        forms.update(fits["forms"])
        states.update(fits["states"])
        forwarded.extend(fits["forwarded"])
    return ForecastResult(
        forecasts=frames("forecasts").sort("unique_id", "model", "ds"),
        fitted=frames("fitted").sort("unique_id", "model", "ds"),
        notes=notes.sort("unique_id", maintain_order=True),
        ets_forms=forms,
        ets_states=states,
        forwarded=tuple(sorted(forwarded)),
    )
