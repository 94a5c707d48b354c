"""Nevada Geodetic Laboratory GNSS connector (``kind = "ngl_gnss"``).

Settings: ``stations`` (list of 4-character ids, required), ``url`` (a template with
``{station}``, default ``https://geodesy.unr.edu/gps_timeseries/IGS20/tenv3/IGS20/{station}.tenv3``),
``region``.

NGL republishes each station's whole series, so every run downloads the file; an unchanged
file has the same checksum and its batch is skipped, a changed one upserts only the days that
differ. Watermark ``<source>/<STATION>`` = the newest day in the file (shown as freshness).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from ingest.batches import RawFile
from ingest.connectors.base import Fetch, Spec
from ingest.connectors.http import Expect, HttpClient

__all__ = ["fetch"]

_KNOWN = ("stations", "region")
_TENV3 = Expect("text", "an NGL tenv3 file", ("text/plain", "octet-stream", "tenv3"), starts=(b"site",))


def _newest_day(body: bytes) -> str | None:
    days = []
    for line in body.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2:
            try:
                days.append(datetime.strptime(fields[1].title(), "%y%b%d"))
            except ValueError:
                return None  # malformed: the parser quarantines the batch and says where
    return f"{max(days):%Y-%m-%d}" if days else None


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
    template = str(spec.get("url", "https://geodesy.unr.edu/gps_timeseries/IGS20/tenv3/IGS20/{station}.tenv3"))
    for station in spec.require("stations", '["P156"]'):
        url = template.format(station=station)
        answer = client.get_answer(
            url,
            what=f"source {name} (NGL {station})",
            fix_4xx="check the station id (4 characters, as NGL spells it)",
            expect=_TENV3,
        )
        if answer is None:
            continue
        body = answer.body
        newest = _newest_day(body)
        yield Fetch(
            files=[RawFile(f"{station}.tenv3", body)],
            fmt="ngl_tenv3",
            options={"region": spec.get("region", "")},
            location=url,
            watermark=(f"{name}/{station}", newest) if newest else None,
        )
