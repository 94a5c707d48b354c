"""Network sources: fetch, then load each batch with its watermark (``ews ingest SOURCE``).

Sources are the tables ``[ingest.sources.NAME]`` of ews.toml; ``kind`` picks the connector:

| kind | service | format landed |
|---|---|---|
| ``fred`` | FRED API series observations | ``fred_json`` |
| ``usgs_fdsn`` | USGS FDSN event service (CSV) | ``usgs_catalog`` |
| ``nasa_power`` | NASA POWER daily point (JSON) | ``nasa_power_json`` |
| ``usgs_water`` | USGS Water Data OGC API daily values | ``usgs_water_json`` |
| ``ngl_gnss`` | Nevada Geodetic Lab tenv3 files | ``ngl_tenv3`` |
| ``netcdf_url`` | a NetCDF file URL or OPeNDAP endpoint | ``netcdf_region`` |

:func:`run_source` fetches one source: it reads the committed watermarks, fetches, commits batch
by batch (each with its watermark, see :mod:`ingest.batches`) and records freshness or the
error. The job that runs several sources, records the run and then the scoring cycle is
:func:`pipelines.ingest_job.run_sources` (what cron and the scheduler call).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from core.clock import utc_now
from core.errors import ConfigError, EWSError
from core.settings import Settings
from ingest.batches import IngestResult, ingest_files
from ingest.connectors import fred, nasa_power, netcdf_url, ngl_gnss, usgs_fdsn, usgs_water
from ingest.connectors.http import HttpClient, SourceError
from ingest.regions import resolve_region_option
from warehouse import Warehouse
from warehouse import ingestion as store

__all__ = ["CONNECTORS", "SourceRun", "source_names", "run_source", "SourceError"]

CONNECTORS: dict[str, ModuleType] = {
    "fred": fred,
    "usgs_fdsn": usgs_fdsn,
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


def _nothing_new(wh: Warehouse, name: str, kind: str, now: datetime, watermark: tuple[str, str] | None) -> None:
    with wh.transaction():
        if watermark is not None:
            store.write_watermark(wh, watermark[0], watermark[1], batch_id=None, at=now)
        store.record_source_attempt(wh, name, kind=kind, at=now)
        store.record_source_success(wh, name, kind=kind, at=now, last_data_time=None, batch_id=None, rows=0)


def run_source(
    wh: Warehouse,
    settings: Settings,
    name: str,
    *,
    client: HttpClient | None = None,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> SourceRun:
    """Fetch one source and commit its batches; errors are recorded, not raised (see SourceRun)."""
    table = _table(settings, name)
    kind = str(table["kind"])
    now = now or utc_now()
    client = client or HttpClient(settings.ingest)
    run = SourceRun(source=name, kind=kind, status="success")
    fetched = 0
    try:
        # region ids of [regions] become their definitions before anything is fetched
        table = resolve_region_option(dict(table), settings, what=f"[ingest.sources.{name}]")
        for item in CONNECTORS[kind].fetch(
            table,
            name=name,
            client=client,
            watermarks=store.read_watermarks(wh, name),
            now=now,
            environ=dict(os.environ) if environ is None else environ,
        ):
            fetched += 1
            if not item.files:  # nothing new, but the source answered: move the watermark
                _nothing_new(wh, name, kind, now, item.watermark)
                continue
            # `bounds` (any kind) is the parse option that sets the series' physical bounds.
            options = item.options if "bounds" not in table else {**item.options, "bounds": table["bounds"]}
            result = ingest_files(
                wh,
                settings,
                item.files,
                item.fmt,
                source=name,
                kind=kind,
                location=item.location,
                options=options,
                watermark=item.watermark,
                window=item.window,
                now=now,
            )
            run.batches.append(result)
            if result.status == "quarantined":
                # Later batches would move the watermark past this one: stop here, the next run retries.
                run.status, run.error = "quarantined", result.error
                return run
    except EWSError as exc:
        # What committed before the error stays (each batch is whole); the error is recorded.
        with wh.transaction():
            store.record_source_attempt(wh, name, kind=kind, at=now)
            store.record_source_error(wh, name, kind=kind, at=now, error=str(exc))
        run.status, run.error = "failed", str(exc)
        return run
    if fetched == 0:
        _nothing_new(wh, name, kind, now, None)
    return run
