"""Gridded data from a NetCDF file URL or an OPeNDAP endpoint (``kind = "netcdf_url"``).

Settings: ``url`` (required), ``variable``, ``regions`` (boxes or polygons, required),
``frequency`` (default ``MS``), ``statistics`` (default ``["mean", "max"]``), ``domain``
(default ``satellite``), ``opendap`` (default false).

- A plain URL (HTTP file server, THREDDS ``fileServer``) is downloaded whole through the
  retrying client and landed as it is.
- ``opendap = true`` opens the URL with xarray (netCDF4's DAP client), keeps ``variable`` with
  its coordinates, and lands that subset as a NetCDF file. (Not exercised by the test suite:
  there is no DAP server offline; the download path is.)

The batch is skipped when the bytes have not changed; otherwise the regional series are
upserted (only changed months are rewritten).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.batches import RawFile
from ingest.connectors.base import Fetch, Spec
from ingest.connectors.http import Expect, HttpClient, SourceError

__all__ = ["fetch"]

_KNOWN = ("variable", "regions", "frequency", "statistics", "domain", "opendap")
#: NetCDF classic (CDF1/2/5) or NetCDF-4 (HDF5) signatures; any content type but HTML.
_NETCDF = Expect("binary", "a NetCDF file", starts=(b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n"))


def _opendap_subset(url: str, variable: str) -> bytes:
    import xarray as xr  # heavy: only grid sources pay for it

    try:
        with xr.open_dataset(url) as dataset:
            subset = dataset[[variable]].load()
    except (OSError, KeyError, ValueError) as exc:
        raise SourceError(
            f"OPeNDAP {url}: {type(exc).__name__}: {exc}",
            fix="check the URL (open it with ncdump -h) and the variable name",
        ) from None
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "subset.nc"
        subset.to_netcdf(target)
        return target.read_bytes()


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
    url = str(spec.require("url", '"https://example.org/thredds/fileServer/sst.mnmean.nc"'))
    variable = str(spec.get("variable", "sst"))
    regions = spec.require(
        "regions", '[{ id = "nino34", name = "Nino 3.4", min_lat = -5, max_lat = 5, min_lon = 190, max_lon = 240 }]'
    )
    if spec.get("opendap", False):
        body: bytes | None = _opendap_subset(url, variable)
    else:
        answer = client.get_answer(
            url, what=f"source {name} (NetCDF)", fix_4xx="check the URL of the NetCDF file", expect=_NETCDF
        )
        body = None if answer is None else answer.body
    if not body:
        return []
    options = {
        "regions": regions,
        "variable": variable,
        "frequency": spec.get("frequency", "MS"),
        "statistics": list(spec.get("statistics", ["mean", "max"])),
        "domain": spec.get("domain", "satellite"),
    }
    return [Fetch(files=[RawFile(f"{name}.nc", body)], fmt="netcdf_region", options=options, location=url)]
