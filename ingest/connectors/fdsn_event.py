"""Any FDSN event web service (``kind = "fdsn_event"``): EMSC, INGV, GFZ GEOFON, GeoNet, IRIS,
USGS and every other ``fdsnws-event`` 1.x service, in its standard ``text`` or QuakeML answer.

Settings: ``url`` (the service's base, e.g. ``https://www.seismicportal.eu/fdsnws/event/1``;
required), ``format`` (``"text"``, the default, lands ``fdsn_text``; ``"xml"`` asks for QuakeML
and lands ``quakeml``), ``start`` (ISO date, required), ``end`` (default: now),
``min_magnitude``, a box ``min_lat``/``max_lat``/``min_lon``/``max_lon`` (optional), ``regions``
for the daily series (ids of ews.toml's ``[regions]``, boxes or polygons; default one region
spanning each batch's events), ``window_days`` (backfill window, default 365),
``event_types`` (keep those event types, e.g. ``["earthquake"]``), ``event_id_prefix``
(default the source name).

The fetch is the one of :mod:`ingest.connectors.usgs_fdsn`, with the FDSN standard's own
parameters and answers:

- First run (no watermark): start..end in windows of ``window_days``, each its own batch; the
  last carries the watermark = the time the run started.
- Later runs: one query with ``updatedafter=<watermark>`` over start..now (new and revised
  events come back); the watermark moves to this run's start time.
- A window the service refuses as too large (HTTP 413, the FDSN code for "too much data", or a
  400 naming a limit) is split in two, recursively, down to one hour.
- HTTP 204 (the FDSN "no data" answer) means no event: nothing is stored and the watermark
  still moves.

Every answer goes through the checked decoding step (:func:`ingest.connectors.http.check_answer`):
a ``text`` answer must start with ``#EventID`` and be framed (Content-Length or chunked), a
QuakeML answer must be XML; an HTML page or a wrong content type is refused and quarantined.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from core.errors import ConfigError
from ingest.batches import RawFile
from ingest.connectors.base import Fetch, Spec
from ingest.connectors.http import Expect, HttpClient, HttpStatusError, SourceError, build_url

__all__ = ["fetch", "fetch_events", "query_params", "split_windows"]

_KNOWN = (
    "format",
    "start",
    "end",
    "min_magnitude",
    "min_lat",
    "max_lat",
    "min_lon",
    "max_lon",
    "regions",
    "window_days",
    "event_types",
    "event_id_prefix",
)
_ISO = "%Y-%m-%dT%H:%M:%S"
_MIN_WINDOW = timedelta(hours=1)
# format setting -> (fdsnws format parameter, parser, file suffix, what the answer must be)
_FORMATS: dict[str, tuple[str, str, str, Expect]] = {
    "text": (
        "text",
        "fdsn_text",
        "txt",
        Expect("text", "an FDSN event text table", ("text/plain", "text/csv", "octet-stream"), starts=(b"#EventID",)),
    ),
    "xml": (
        "xml",
        "quakeml",
        "xml",
        Expect("xml", "a QuakeML document", ("xml", "octet-stream"), starts=(b"<?xml", b"<q:quakeml", b"<quakeml")),
    ),
}
_FIX = "check start/end, min_magnitude and the box in [ingest.sources]; the FDSN service refuses malformed queries"
_TOO_MUCH = ("exceeds", "too many", "too much", "limit")


def split_windows(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """Consecutive [a, b) windows of ``size`` covering start..end."""
    out = []
    while start < end:
        out.append((start, min(start + size, end)))
        start = out[-1][1]
    return out


def _query(
    client: HttpClient,
    base: str,
    params: dict[str, Any],
    window: tuple[datetime, datetime],
    name: str,
    expect: Expect,
) -> list[tuple[tuple[datetime, datetime], bytes]]:
    """Answer bodies covering ``window``, split while the service says it holds too many events."""
    url = build_url(
        f"{base}/query", {**params, "starttime": window[0].strftime(_ISO), "endtime": window[1].strftime(_ISO)}
    )
    try:
        answer = client.get_answer(url, what=f"source {name} (FDSN)", fix_4xx=_FIX, expect=expect)
    except HttpStatusError as exc:
        too_much = exc.status == 413 or (exc.status == 400 and any(w in exc.body.lower() for w in _TOO_MUCH))
        if not too_much:
            raise
        if window[1] - window[0] <= _MIN_WINDOW:
            raise SourceError(
                f"source {name}: more than the service's event cap within one hour at {window[0]}",
                fix="raise min_magnitude or narrow the box",
            ) from None
        middle = (window[0] + (window[1] - window[0]) / 2).replace(microsecond=0)
        return _query(client, base, params, (window[0], middle), name, expect) + _query(
            client, base, params, (middle, window[1]), name, expect
        )
    return [] if answer is None else [(window, answer.body)]


def query_params(spec: Spec, wire_format: str) -> dict[str, Any]:
    """The fdsnws-event query parameters of a source's settings (time window and watermark aside)."""
    params: dict[str, Any] = {"format": wire_format, "orderby": "time-asc", "minmagnitude": spec.get("min_magnitude")}
    for key, param in (
        ("min_lat", "minlatitude"),
        ("max_lat", "maxlatitude"),
        ("min_lon", "minlongitude"),
        ("max_lon", "maxlongitude"),
    ):
        params[param] = spec.get(key)
    return params


def fetch_events(
    spec: Spec,
    *,
    base: str,
    params: dict[str, Any],
    expect: Expect,
    fmt: str,
    suffix: str,
    options: dict[str, Any],
    client: HttpClient,
    watermarks: Mapping[str, str],
    now: datetime,
) -> Iterator[Fetch]:
    """The batches of one FDSN event source: backfill windows, or one ``updatedafter`` query
    (module docstring); shared by ``fdsn_event`` and ``usgs_fdsn``."""
    name = spec.name
    start = spec.date("start")
    end = spec.date("end") if spec.get("end") else now
    mark = watermarks.get(name)
    stamp = now.strftime(_ISO)
    if mark is None:
        windows = split_windows(start, end, timedelta(days=int(spec.get("window_days", 365))))
    else:
        params = {**params, "updatedafter": mark}
        windows = [(start, end)]
    location = f"{base}/query"
    for w, window in enumerate(windows):
        pieces = _query(client, base, params, window, name, expect)
        for i, (piece, body) in enumerate(pieces):
            last = w == len(windows) - 1 and i == len(pieces) - 1
            yield Fetch(
                files=[
                    RawFile(
                        f"events_{piece[0]:%Y%m%dT%H%M%S}_{piece[1]:%Y%m%dT%H%M%S}"
                        + (f"_updated_after_{mark.replace(':', '')}" if mark is not None else "")
                        + f".{suffix}",
                        body,
                    )
                ],
                fmt=fmt,
                options=options,
                location=location,
                watermark=(name, stamp) if last else None,
                window=None if mark is not None else piece,
            )
        if w == len(windows) - 1 and not pieces:
            # the last window was empty (204): the watermark still moves, nothing is left to fetch
            yield Fetch(files=[], fmt=fmt, options=options, location=location, watermark=(name, stamp))


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
    base = str(spec.require("url", '"https://www.seismicportal.eu/fdsnws/event/1"')).rstrip("/")
    base = base.removesuffix("/query")
    kind = str(spec.get("format", "text"))
    if kind not in _FORMATS:
        raise ConfigError(
            f"[ingest.sources.{name}] format = {kind!r} is not one this connector reads",
            fix='write format = "text" (FDSN text, the default) or format = "xml" (QuakeML)',
        )
    wire, fmt, suffix, expect = _FORMATS[kind]
    spec.date("start")  # required: refused before anything is fetched
    options: dict[str, Any] = {
        "event_id_prefix": spec.get("event_id_prefix", name),
        "source": f"FDSN event service {base} ({name})",
    }
    for key in ("regions", "event_types"):
        if spec.get(key) is not None:
            options[key] = spec.get(key)
    yield from fetch_events(
        spec,
        base=base,
        params=query_params(spec, wire),
        expect=expect,
        fmt=fmt,
        suffix=suffix,
        options=options,
        client=client,
        watermarks=watermarks,
        now=now,
    )
