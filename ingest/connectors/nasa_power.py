"""NASA POWER daily point connector (``kind = "nasa_power"``).

Settings: ``latitude``, ``longitude`` (required), ``parameters`` (default
``["PRECTOTCORR", "T2M"]``), ``community`` (default ``AG``), ``start`` (ISO date, default
2000-01-01), ``site_id`` (series prefix, default the source name), ``lookback_days``
(default 7: POWER revises recent days), ``domain`` (default ``hydro``), ``region``, ``url``
(default ``https://power.larc.nasa.gov/api/temporal/daily/point``).

One request from the watermark (last day with a value) minus ``lookback_days`` to today;
``-999`` marks missing days. Watermark ``<source>`` = the last day with a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ingest.batches import RawFile
from ingest.connectors.base import Fetch, Spec
from ingest.connectors.http import Expect, HttpClient, build_url

__all__ = ["fetch"]

_KNOWN = ("latitude", "longitude", "parameters", "community", "start", "site_id", "lookback_days", "domain", "region")


def _parameters(doc: Any) -> str | None:
    """The shape POWER answers in: properties.parameter = {NAME: {YYYYMMDD: value}}."""
    parameters = doc.get("properties", {}).get("parameter") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(doc.get("properties"), dict) or not isinstance(parameters, dict):
        return "no properties.parameter object"
    odd = next((k for k, v in parameters.items() if not isinstance(v, dict)), None)
    return None if odd is None else f"properties.parameter.{odd} is not an object of daily values"


_ANSWER = Expect.json("NASA POWER daily point JSON", _parameters)


def _last_day(doc: dict[str, Any]) -> str | None:
    """Newest YYYYMMDD with a non-fill value in any parameter (None if the answer has none)."""
    try:
        fill = float(doc.get("header", {}).get("fill_value", -999.0))
        days = [d for values in doc["properties"]["parameter"].values() for d, v in values.items() if float(v) != fill]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # odd values: the parser will quarantine the batch and say where
    return max(days) if days else None


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
    lat, lon = float(spec.require("latitude", "38.3")), float(spec.require("longitude", "141.5"))
    start = spec.date("start", "2000-01-01")
    mark = watermarks.get(name)
    if mark is not None:
        start = max(start, datetime.strptime(mark, "%Y%m%d") - timedelta(days=int(spec.get("lookback_days", 7))))
    parameters = list(spec.get("parameters", ["PRECTOTCORR", "T2M"]))
    base = str(spec.get("url", "https://power.larc.nasa.gov/api/temporal/daily/point"))
    url = build_url(
        base,
        {
            "parameters": ",".join(parameters),
            "community": spec.get("community", "AG"),
            "latitude": lat,
            "longitude": lon,
            "start": f"{start:%Y%m%d}",
            "end": f"{now:%Y%m%d}",
            "format": "JSON",
        },
    )
    answer = client.get_answer(
        url,
        what=f"source {name} (NASA POWER)",
        fix_4xx="check latitude/longitude, the parameter names and the dates (YYYYMMDD, not before 1981)",
        expect=_ANSWER,
    )
    if answer is None:
        return []
    body, last = answer.body, _last_day(answer.data)
    options = {
        "site_id": str(spec.get("site_id", name)),
        "domain": spec.get("domain", "hydro"),
        "region": spec.get("region", ""),
    }
    return [
        Fetch(
            files=[RawFile(f"power_{start:%Y%m%d}_{now:%Y%m%d}.json", body)],
            fmt="nasa_power_json",
            options=options,
            location=url,
            watermark=(name, last) if last else None,
        )
    ]
