"""USGS Water Data (OGC API) daily discharge connector (``kind = "usgs_water"``).

Settings: ``site`` (monitoring location, e.g. ``USGS-01491000``, required), ``start`` (ISO
date, default 2000-01-01), ``lookback_days`` (default 30: provisional values get revised),
``page_size`` (default 10000), ``lat``/``lon``/``region`` for the series metadata, ``url``
(default ``https://api.waterdata.usgs.gov/ogcapi/v0/collections/daily/items``).

Requests ``parameter_code=00060`` (discharge) and ``statistic_id=00003`` (daily mean) for
``time=<from>/<today>``, follows ``next`` links (at most 500 pages), and lands every page as a
file of one batch. Watermark ``<source>`` = the newest day with a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ingest.batches import RawFile
from ingest.connectors.base import Fetch, Spec
from ingest.connectors.http import Expect, HttpClient, SourceError, build_url, object_with_list

__all__ = ["fetch"]

_KNOWN = ("site", "start", "lookback_days", "page_size", "lat", "lon", "region")
_MAX_PAGES = 500
_PAGE = Expect.json("OGC API items (GeoJSON FeatureCollection)", object_with_list("features"))


def fetch(
    table: Mapping[str, Any],
    *,
    name: str,
    client: HttpClient,
    watermarks: Mapping[str, str],
    now: datetime,
    environ: Mapping[str, str] = os.environ,
) -> list[Fetch]:
    spec = Spec(name, table, known=_KNOWN)
    site = str(spec.require("site", '"USGS-01491000"'))
    start = spec.date("start", "2000-01-01")
    mark = watermarks.get(name)
    if mark is not None:
        start = max(start, datetime.fromisoformat(mark) - timedelta(days=int(spec.get("lookback_days", 30))))
    base = str(spec.get("url", "https://api.waterdata.usgs.gov/ogcapi/v0/collections/daily/items"))
    url: str | None = build_url(
        base,
        {
            "monitoring_location_id": site,
            "parameter_code": "00060",
            "statistic_id": "00003",
            "time": f"{start:%Y-%m-%d}/{now:%Y-%m-%d}",
            "f": "json",
            "limit": int(spec.get("page_size", 10000)),
        },
    )
    first_url = url
    files, days = [], []
    for page in range(_MAX_PAGES):
        if url is None:
            break
        answer = client.get_answer(
            url,
            what=f"source {name} (USGS water data)",
            fix_4xx="check site (e.g. USGS-01491000) and the dates",
            expect=_PAGE,
        )
        if answer is None:
            break
        files.append(RawFile(f"daily_{site}_{start:%Y%m%d}_p{page + 1:03d}.json", answer.body))
        doc = answer.data
        days += [
            f["properties"]["time"][:10]
            for f in doc.get("features", [])
            if isinstance(f, dict)
            and isinstance(f.get("properties"), dict)
            and f["properties"].get("value") is not None
            and isinstance(f["properties"].get("time"), str)
        ]
        url = next(
            (
                str(link["href"])
                for link in (doc.get("links") if isinstance(doc.get("links"), list) else [])
                if isinstance(link, dict) and link.get("rel") == "next" and link.get("href")
            ),
            None,
        )
    else:
        raise SourceError(f"source {name}: more than {_MAX_PAGES} pages", fix="raise page_size or move start later")
    if not files:
        return []
    options = {"lat": spec.get("lat"), "lon": spec.get("lon"), "region": spec.get("region", "")}
    return [
        Fetch(
            files=files,
            fmt="usgs_water_json",
            options=options,
            location=str(first_url),
            watermark=(name, max(days)) if days else None,
        )
    ]
