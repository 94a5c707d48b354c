"""FRED API connector (``kind = "fred"``).

Settings: ``series`` (list of FRED ids), ``api_key_env`` (name of the environment variable
holding the key, default ``FRED_API_KEY``; the key itself never goes into ews.toml), ``start``
(first observation date, default 1980-01-01), ``lookback_days`` (re-read this many days before
the watermark to pick up revisions, default 45), ``prefix`` (series id prefix), ``frequency``
(a table ``{ SERIES = "B" }`` overriding the frequency read from FRED), ``domain``, ``region``,
``url`` (default ``https://api.stlouisfed.org/fred``), ``vintage`` (``"first"``: ask ALFRED
for every vintage, ``realtime_start=1776-07-04&realtime_end=9999-12-31``, and keep each
date's first-published value, so a revised series replays as it was announced; default: the
latest values only).

Per series: ``fred/series`` (title, units, frequency) then ``fred/series/observations`` from
the watermark minus ``lookback_days``; one batch per series, watermark ``<source>/<SERIES>`` =
the last observation date. Requests go through a 120-per-minute limiter (FRED's limit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from core.errors import ConfigError
from ingest.batches import RawFile
from ingest.connectors.base import Fetch, Spec
from ingest.connectors.http import Expect, HttpClient, RateLimiter, SourceError, build_url, object_with_list
from ingest.sources._common import snake

__all__ = ["fetch", "FRED_REQUESTS_PER_MINUTE"]

FRED_REQUESTS_PER_MINUTE = 120
_KNOWN = ("series", "api_key_env", "start", "lookback_days", "prefix", "frequency", "domain", "region", "vintage")
_FREQ = {"D": "B", "W": "W-FRI", "M": "MS"}
_FIX = "check the series id and the API key (https://fred.stlouisfed.org/docs/api/api_key.html)"
_limiter = RateLimiter(FRED_REQUESTS_PER_MINUTE, 60.0)  # one per process: the limit is per key


_SERIES = Expect.json("FRED series JSON", object_with_list("seriess"))
_OBSERVATIONS = Expect.json("FRED observations JSON", object_with_list("observations"))


def _json(client: HttpClient, url: str, key: str, what: str, expect: Expect = _SERIES) -> tuple[bytes, dict[str, Any]]:
    answer = client.get_answer(url, what=what, fix_4xx=_FIX, expect=expect, limiter=_limiter, redact=key)
    return (b"", {}) if answer is None else (answer.body, answer.data)


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
    series = spec.require("series", '["DGS10", "UNRATE"]')
    key_env = spec.get("api_key_env", "FRED_API_KEY")
    key = environ.get(key_env, "")
    if not key:
        raise ConfigError(
            f"source {name}: the FRED API key is not set (environment variable {key_env})",
            fix=f"export {key_env}=<your 32-character key> (free at fred.stlouisfed.org)",
        )
    base = str(spec.get("url", "https://api.stlouisfed.org/fred")).rstrip("/")
    start = spec.date("start", "1980-01-01")
    lookback = timedelta(days=int(spec.get("lookback_days", 45)))
    overrides = dict(spec.get("frequency", {}) or {})
    vintage = spec.get("vintage", "latest")
    if vintage not in ("first", "latest"):
        raise ConfigError(
            f"source {name}: vintage = {vintage!r} is not one of first, latest",
            fix='write vintage = "first" to replay first-published values (ALFRED), or leave it out',
        )
    for series_id in series:
        mark_key = f"{name}/{series_id}"
        since = start
        if mark_key in watermarks:
            since = max(start, datetime.fromisoformat(watermarks[mark_key]) - lookback)
        _, info = _json(
            client,
            build_url(f"{base}/series", {"series_id": series_id, "api_key": key, "file_type": "json"}),
            key,
            f"FRED series {series_id}",
        )
        described = (info.get("seriess") or [{}])[0]
        code = str(described.get("frequency_short", "")).upper()
        frequency = overrides.get(series_id) or _FREQ.get(code)
        if frequency is None:
            raise SourceError(
                f"FRED series {series_id} has frequency {code!r}, which the engine does not model",
                fix='pick a daily, weekly or monthly series, or set frequency = { SERIES = "MS" }',
            )
        query = {"series_id": series_id, "api_key": key, "file_type": "json", "observation_start": f"{since:%Y-%m-%d}"}
        if vintage == "first":
            query.update(realtime_start="1776-07-04", realtime_end="9999-12-31")  # every vintage (ALFRED)
        url = build_url(f"{base}/series/observations", query)
        body, answer = _json(client, url, key, f"FRED observations {series_id}", _OBSERVATIONS)
        observed = answer.get("observations", [])
        dates: list[Any] = [
            o["date"] for o in observed if isinstance(o.get("date"), str) and o.get("value") not in (None, ".")
        ]
        if not dates or not body:
            continue
        options = {
            "unique_id": f"{spec.get('prefix', '')}{snake(series_id)}",
            "name": described.get("title") or series_id,
            "unit": described.get("units", ""),
            "frequency": frequency,
            "variable": snake(series_id),
            "domain": spec.get("domain", "market"),
            "region": spec.get("region", "US"),
            **({"vintage": "first"} if vintage == "first" else {}),
        }
        yield Fetch(
            files=[RawFile(f"{series_id}_{since:%Y%m%d}.json", body)],
            fmt="fred_json",
            options=options,
            location=url.replace(key, "***"),
            watermark=(mark_key, max(dates)),
        )
