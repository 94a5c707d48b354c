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
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from ingest.batches import RawFile
from ingest.connectors.base import Fetch, Spec
from ingest.connectors.http import Expect, HttpClient, HttpStatusError, SourceError, build_url

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
_ISO = "%Y-%m-%dT%H:%M:%S"
_MIN_WINDOW = timedelta(hours=1)
_CSV = Expect("text", "an FDSN event CSV", ("csv", "text/plain", "octet-stream"), starts=(b"time,",))
_FIX = "check start/end, min_magnitude and the box in [ingest.sources]; the FDSN service refuses malformed queries"


def split_windows(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """Consecutive [a, b) windows of ``size`` covering start..end."""
    out = []
    while start < end:
        out.append((start, min(start + size, end)))
        start = out[-1][1]
    return out


def _query(
    client: HttpClient, base: str, params: dict[str, Any], window: tuple[datetime, datetime], name: str
) -> list[tuple[tuple[datetime, datetime], bytes]]:
    """CSV bodies covering ``window``, split while the service says it holds too many events."""
    url = build_url(
        f"{base}/query", {**params, "starttime": window[0].strftime(_ISO), "endtime": window[1].strftime(_ISO)}
    )
    try:
        answer = client.get_answer(url, what=f"source {name} (FDSN)", fix_4xx=_FIX, expect=_CSV)
    except HttpStatusError as exc:
        if exc.status == 400 and "exceeds search limit" in exc.body.lower():
            if window[1] - window[0] <= _MIN_WINDOW:
                raise SourceError(
                    f"source {name}: more than the service's event cap within one hour at {window[0]}",
                    fix="raise min_magnitude or narrow the box",
                ) from None
            middle = window[0] + (window[1] - window[0]) / 2
            middle = middle.replace(microsecond=0)
            return _query(client, base, params, (window[0], middle), name) + _query(
                client, base, params, (middle, window[1]), name
            )
        raise
    return [] if answer is None else [(window, answer.body)]


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
    start = spec.date("start")
    end = spec.date("end") if spec.get("end") else now
    params: dict[str, Any] = {"format": "csv", "orderby": "time-asc", "minmagnitude": spec.get("min_magnitude")}
    for key, param in (
        ("min_lat", "minlatitude"),
        ("max_lat", "maxlatitude"),
        ("min_lon", "minlongitude"),
        ("max_lon", "maxlongitude"),
    ):
        params[param] = spec.get(key)
    options: dict[str, Any] = {
        "event_id_prefix": spec.get("event_id_prefix", name),
        "source": f"USGS ANSS ComCat via FDSN ({name})",
    }
    if spec.get("regions") is not None:
        options["regions"] = spec.get("regions")
    mark = watermarks.get(name)
    stamp = now.strftime(_ISO)
    if mark is None:
        windows = split_windows(start, end, timedelta(days=int(spec.get("window_days", 365))))
    else:
        params["updatedafter"] = mark
        windows = [(start, end)]
    location = f"{base}/query"
    incremental = mark is not None
    for w, window in enumerate(windows):
        pieces = _query(client, base, params, window, name)
        for i, (piece, body) in enumerate(pieces):
            last = w == len(windows) - 1 and i == len(pieces) - 1
            yield Fetch(
                files=[
                    RawFile(
                        f"events_{piece[0]:%Y%m%dT%H%M%S}_{piece[1]:%Y%m%dT%H%M%S}"
                        + (f"_updated_after_{mark.replace(':', '')}" if mark is not None else "")
                        + ".csv",
                        body,
                    )
                ],
                fmt="usgs_catalog",
                options=options,
                location=location,
                watermark=(name, stamp) if last else None,
                window=None if incremental else piece,
            )
        if w == len(windows) - 1 and not pieces:
            # the last window was empty: the watermark still moves (nothing is left to fetch)
            yield Fetch(files=[], fmt="usgs_catalog", options=options, location=location, watermark=(name, stamp))
