"""Network sources: fetch, then load each batch with its watermark (``ews ingest SOURCE``).

Sources are the tables ``[ingest.sources.NAME]`` of ews.toml; ``kind`` picks the connector:

| kind | service | format landed |
|---|---|---|
| ``fred`` | FRED API series observations | ``fred_json`` |
| ``usgs_fdsn`` | USGS FDSN event service (CSV) | ``usgs_catalog`` |
| ``fdsn_event`` | any FDSN event service (``text`` or QuakeML) | ``fdsn_text`` / ``quakeml`` |
| ``nasa_power`` | NASA POWER daily point (JSON) | ``nasa_power_json`` |
| ``usgs_water`` | USGS Water Data OGC API daily values | ``usgs_water_json`` |
| ``ngl_gnss`` | Nevada Geodetic Lab tenv3 files | ``ngl_tenv3`` |
| ``netcdf_url`` | a NetCDF file URL or OPeNDAP endpoint | ``netcdf_region`` |

:func:`run_source` fetches one source in two steps that the ingest job runs apart:

- :func:`download_source` (no warehouse, no lock): reads the connector's answers within
  the source's deadline, each through the one checked decoding step of
  :mod:`ingest.connectors.http`, and lands every batch under ``EWS_HOME/raw``. An answer
  that is refused (an HTML page, a wrong content type, a cut or mis-shaped body, a watermark
  older than the stored one) is landed too, for inspection, and ends the download with a
  :class:`SourceError`;
- :func:`commit_download` (the writer): commits the landed batches in order, each with its
  watermark (see :mod:`ingest.batches`); a refused answer becomes a ``quarantined`` ledger
  row, the source's ``source_status`` shows the error and the source's run is ``failed``.

Nothing a source answers, and no bug of one connector, escapes as an exception: the other
sources of the run go on. The job that runs several sources, records the run and then the
scoring cycle is :func:`pipelines.ingest_job.run_sources` (what cron and the scheduler call).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from core.clock import utc_now
from core.errors import ConfigError, EWSError
from core.settings import Settings
from ingest.batches import IngestResult, LandedBatch, RawFile, commit_landed, land_files, quarantine_landed
from ingest.connectors import fdsn_event, fred, nasa_power, netcdf_url, ngl_gnss, usgs_fdsn, usgs_water
from ingest.connectors.base import PARSE_OPTIONS
from ingest.connectors.http import AnswerError, HttpClient, SourceError
from ingest.regions import resolve_region_option
from warehouse import Warehouse
from warehouse import ingestion as store

__all__ = [
    "CONNECTORS",
    "Download",
    "SourceRun",
    "source_names",
    "check_source",
    "download_source",
    "commit_download",
    "run_source",
    "SourceError",
]

CONNECTORS: dict[str, ModuleType] = {
    "fred": fred,
    "usgs_fdsn": usgs_fdsn,
    "fdsn_event": fdsn_event,
    "nasa_power": nasa_power,
    "usgs_water": usgs_water,
    "ngl_gnss": ngl_gnss,
    "netcdf_url": netcdf_url,
}


@dataclass
class SourceRun:
    source: str
    kind: str
    status: str  # success | failed | quarantined
    batches: list[IngestResult] = field(default_factory=list)
    error: str | None = None

    @property
    def rows_changed(self) -> int:
        return sum(b.rows_changed for b in self.batches)


def source_names(settings: Settings) -> list[str]:
    return sorted(settings.ingest.sources)


def _table(settings: Settings, name: str) -> Mapping[str, Any]:
    sources = settings.ingest.sources
    if name not in sources:
        raise ConfigError(
            f"no source named {name!r} in [ingest.sources]",
            fix=f"configured: {sorted(sources) or 'none'}; add [ingest.sources.{name}] to {settings.config_file}",
        )
    table = sources[name]
    if not isinstance(table, Mapping) or table.get("kind") not in CONNECTORS:
        kind = table.get("kind") if isinstance(table, Mapping) else table
        raise ConfigError(
            f"[ingest.sources.{name}] kind = {kind!r} is not a connector",
            fix=f"set kind to one of {sorted(CONNECTORS)}",
        )
    return table


def check_source(settings: Settings, name: str) -> str:
    """The kind of source ``name``, or :class:`ConfigError` naming the fix (before any run starts)."""
    return str(_table(settings, name)["kind"])


@dataclass
class _Landed:
    """One fetched batch, landed: no bytes kept in memory."""

    batch: LandedBatch | None  # None: the source answered, nothing new
    watermark: tuple[str, str] | None
    window: tuple[datetime, datetime] | None


@dataclass
class Download:
    """What one source's fetch brought, landed under ``EWS_HOME/raw``, not yet committed."""

    source: str
    kind: str
    at: datetime
    landed: list[_Landed] = field(default_factory=list)
    error: EWSError | None = None  # the fetch stopped here, after the batches above
    refused: LandedBatch | None = None  # the answer that was refused, landed for inspection
    seconds: float = 0.0


def _connector_failed(name: str, kind: str, exc: Exception) -> SourceError:
    return SourceError(
        f"source {name}: the {kind} connector failed with {type(exc).__name__}: {exc}",
        fix="the run goes on with the other sources; report this with the source's settings "
        "(it is a defect of the connector, not of your data)",
    )


def download_source(
    settings: Settings,
    name: str,
    *,
    watermarks: Mapping[str, str],
    client: HttpClient | None = None,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> Download:
    """Fetch source ``name`` from ``watermarks`` and land its batches; never touches the warehouse.

    Stops at the first refused answer or error (kept in :attr:`Download.error`); raises only
    :class:`ConfigError` for a source that is not configured.
    """
    table = _table(settings, name)
    kind = str(table["kind"])
    now = now or utc_now()
    client = client or HttpClient(settings.ingest)
    download = Download(source=name, kind=kind, at=now)
    started = time.monotonic()
    try:
        # region ids of [regions] become their definitions before anything is fetched
        table = resolve_region_option(dict(table), settings, what=f"[ingest.sources.{name}]")
        with client.source_deadline():
            for item in CONNECTORS[kind].fetch(
                table,
                name=name,
                client=client,
                watermarks=watermarks,
                now=now,
                environ=dict(os.environ) if environ is None else environ,
            ):
                batch = None
                if item.files:
                    # parse options of any kind (bounds, available_after, station regions) ride along
                    given = {k: table[k] for k in PARSE_OPTIONS if k in table and k not in item.options}
                    options = {**item.options, **given}
                    batch = land_files(
                        settings, item.files, item.fmt, source=name, kind=kind, location=item.location, options=options
                    )
                stored = watermarks.get(item.watermark[0]) if item.watermark else None
                if item.watermark and stored is not None and store.watermark_is_older(item.watermark[1], stored):
                    download.refused = batch
                    download.error = SourceError(
                        f"source {name}: the answer of {item.location} reaches only {item.watermark[1]}, older than "
                        f"the stored watermark {stored} of {item.watermark[0]} (a cut or stale answer)",
                        fix="nothing of it was stored and the watermark stays; the next run retries (the answer is "
                        "kept under EWS_HOME/raw for inspection)",
                    )
                    break
                download.landed.append(_Landed(batch, item.watermark, item.window))
    except AnswerError as exc:
        download.error = exc
        download.refused = land_files(
            settings,
            [RawFile("refused_answer.body", exc.body)],
            f"{kind}:answer",
            source=name,
            kind=kind,
            location=exc.location,
            options={"refused": True},
        )
    except EWSError as exc:
        download.error = exc
    except Exception as exc:  # noqa: BLE001 - one connector's defect must not stop the other sources
        download.error = _connector_failed(name, kind, exc)
    download.seconds = time.monotonic() - started
    return download


def _nothing_new(wh: Warehouse, name: str, kind: str, now: datetime, watermark: tuple[str, str] | None) -> None:
    with wh.transaction():
        if watermark is not None:
            store.advance_watermark(wh, watermark[0], watermark[1], batch_id=None, at=now)
        store.record_source_attempt(wh, name, kind=kind, at=now)
        store.record_source_success(wh, name, kind=kind, at=now, last_data_time=None, batch_id=None, rows=0)


def commit_download(wh: Warehouse, settings: Settings, download: Download) -> SourceRun:
    """Commit the landed batches of ``download`` in order; record its error (see module docstring)."""
    name, kind, now = download.source, download.kind, download.at
    run = SourceRun(source=name, kind=kind, status="success")
    for landed in download.landed:
        if landed.batch is None:  # nothing new, but the source answered: move the watermark
            _nothing_new(wh, name, kind, now, landed.watermark)
            continue
        result = commit_landed(wh, settings, landed.batch, watermark=landed.watermark, window=landed.window, now=now)
        run.batches.append(result)
        if result.status == "quarantined":
            # Later batches would move the watermark past this one: stop here, the next run retries.
            run.status, run.error = "quarantined", result.error
            return run
    if download.error is not None:
        # What committed before the error stays (each batch is whole); the error is recorded.
        error = str(download.error)
        if download.refused is not None:
            run.batches.append(quarantine_landed(wh, download.refused, error, now=now))
        else:
            with wh.transaction():
                store.record_source_attempt(wh, name, kind=kind, at=now)
                store.record_source_error(wh, name, kind=kind, at=now, error=error)
        run.status, run.error = "failed", error
        return run
    if not download.landed:
        _nothing_new(wh, name, kind, now, None)
    return run


def run_source(
    wh: Warehouse,
    settings: Settings,
    name: str,
    *,
    client: HttpClient | None = None,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> SourceRun:
    """Download and commit one source with ``wh`` held; errors are recorded, not raised (see SourceRun).

    The ingest job (:func:`pipelines.ingest_job.run_sources`) calls the two steps apart, so
    the warehouse is not held while downloading.
    """
    download = download_source(
        settings, name, watermarks=store.read_watermarks(wh, name), client=client, now=now, environ=environ
    )
    return commit_download(wh, settings, download)
