"""USGS FDSN event service connector (``kind = "usgs_fdsn"``).

Settings: ``start`` (ISO date, required), ``end`` (default: now), ``min_magnitude``, a box
``min_lat``/``max_lat``/``min_lon``/``max_lon`` (optional), ``regions`` for the daily series
(ids of ews.toml's ``[regions]``, boxes or polygons; default one region spanning each batch's
events, see :func:`ingest.sources.seismic.catalog_regions`), ``window_days`` (backfill window, default
365), ``event_id_prefix`` (default the source name), ``url`` (default
``https://earthquake.usgs.gov/fdsnws/event/1``).

- First run (no watermark): the span start..end is read in windows of ``window_days``, each its
  own batch (so a crash keeps what committed); the last one carries the watermark = the time
  the run started.
- Later runs: one query with ``updatedafter=<watermark>`` over start..now, so new, revised and
  deleted-then-restored events all come back; the watermark moves to this run's start time.
- A window that hits the service's 20,000-event cap (HTTP 400 "exceeds search limit") is split
  in two, recursively, down to one hour.
- HTTP 204 means no event: nothing is stored, and the watermark still moves.

The fetch itself is :func:`ingest.connectors.fdsn_event.fetch_events` (one code path for every
FDSN event service); this module sets USGS's default URL and its CSV answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from ingest.connectors.base import Fetch, Spec
from ingest.connectors.fdsn_event import fetch_events, query_params, split_windows
from ingest.connectors.http import Expect, HttpClient

__all__ = ["fetch", "split_windows"]

_KNOWN = (
    "start",
    "end",
    "min_magnitude",
    "min_lat",
    "max_lat",
    "min_lon",
    "max_lon",
    "regions",
    "window_days",
    "event_id_prefix",
)
_CSV = Expect("text", "an FDSN event CSV", ("csv", "text/plain", "octet-stream"), starts=(b"time,",))


def fetch(
    table: Mapping[str, Any],
    *,
    name: str,
    client: HttpClient,
    watermarks: Mapping[str, str],
    now: datetime,
    environ: Mapping[str, str] = os.environ,
) -> Iterator[Fetch]:
    spec = Spec(name, table, known=_KNOWN)
    base = str(spec.get("url", "https://earthquake.usgs.gov/fdsnws/event/1")).rstrip("/")
    spec.date("start")  # required: refused before anything is fetched
    options: dict[str, Any] = {
        "event_id_prefix": spec.get("event_id_prefix", name),
        "source": f"USGS ANSS ComCat via FDSN ({name})",
    }
    if spec.get("regions") is not None:
        options["regions"] = spec.get("regions")
    yield from fetch_events(
        spec,
        base=base,
        params=query_params(spec, "csv"),
        expect=_CSV,
        fmt="usgs_catalog",
        suffix="csv",
        options=options,
        client=client,
        watermarks=watermarks,
        now=now,
    )
