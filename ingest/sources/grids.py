"""Parser for gridded NetCDF fields reduced to regional series (``netcdf_region``).

The file is opened with xarray (netCDF4 engine). ``variable`` must be a (time, lat, lon)
field; coordinate names ``lat``/``latitude`` and ``lon``/``longitude`` are recognised, with
longitudes in 0..360 or -180..180 (regions may use either convention; boxes are compared on
one 0..360 circle). xarray's CF decoding turns ``missing_value`` / ``_FillValue`` into NaN;
values whose magnitude exceeds 1e30 (un-decoded fill values such as ERSST's -9.96921e36) and
values outside the variable's ``valid_range`` are masked as well, so land cells never count.

Regions are boxes or polygons (``polygon = [[lon, lat], ...]``, or rings / several polygons
as in GeoJSON; a cell counts when its centre lies inside), or ids of ews.toml's ``[regions]``
resolved before the parser runs (:mod:`ingest.regions`). For each region, per ``statistics`` (default both):

- ``<id>_mean``: area-weighted mean over the valid cells of the region, weight cos(latitude)
  (cell area on a regular lat/lon grid is proportional to it);
- ``<id>_max``: maximum over the valid cells (optional: ``statistics=["mean"]`` leaves it out).

Time steps where a region has no valid cell are dropped and counted in ``notes``. The unit
comes from the variable's ``units`` attribute. Monthly fields must be stamped on month starts
(``MS``); the check refuses mid-month stamps instead of silently shifting them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError
from ingest.sources._common import (
    Parsed,
    Region,
    check_frequency,
    fail,
    finish,
    meta_row,
    parse_regions,
    region_contains,
)

__all__ = ["parse_netcdf_region"]

_FILL_MAGNITUDE = 1e30
_SOURCE = "NOAA NCEI Extended Reconstructed SST v5 (ERSST v5), via NOAA PSL"
_LICENCE = "no constraints on data access or use (NOAA); cite Huang et al. (2017) ERSST v5, doi:10.7289/V5T72FNM"


@dataclass(frozen=True)
class _Grid:
    values: np.ndarray  # (time, lat, lon)
    times: np.ndarray
    lats: np.ndarray
    lons: np.ndarray
    attrs: dict[str, object]


def _load(path: Path, variable: str) -> _Grid:
    """Read one (time, lat, lon) variable into memory and close the file."""
    import xarray as xr  # imported here: only grid users pay for it

    if not path.is_file():
        raise fail(path, "no such file", fix="check the path (bundled files live under data/)")
    try:
        dataset = xr.open_dataset(path)
    except (OSError, ValueError) as exc:
        raise fail(
            path,
            f"cannot be opened as NetCDF ({type(exc).__name__}: {exc})",
            fix="pass a NetCDF-3/4 file; install netCDF4 if it is missing",
        ) from None
    with dataset:
        if variable not in dataset.data_vars:
            raise fail(
                path,
                f"has no variable {variable!r}; it has {sorted(str(v) for v in dataset.data_vars)}",
                fix="pass variable= one of those",
            )
        field = dataset[variable]
        lat_name = next((n for n in ("lat", "latitude") if n in field.dims), None)
        lon_name = next((n for n in ("lon", "longitude") if n in field.dims), None)
        if "time" not in field.dims or lat_name is None or lon_name is None or field.ndim != 3:
            raise fail(
                path,
                f"variable {variable!r} has dimensions {field.dims}, expected (time, lat, lon)",
                fix="pass a 3-D field; select a level first for 4-D fields",
            )
        field = field.transpose("time", lat_name, lon_name)
        return _Grid(
            values=np.asarray(field.values, dtype=np.float64),
            times=np.asarray(field["time"].values),
            lats=np.asarray(field[lat_name].values, dtype=np.float64),
            lons=np.asarray(field[lon_name].values, dtype=np.float64),
            attrs=dict(field.attrs),
        )


def _masked(values: np.ndarray, attrs: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """Float64 copy with fill values and out-of-range values set to NaN; returns (array, cells masked here)."""
    out = np.asarray(values, dtype=np.float64).copy()
    bad = np.abs(out) > _FILL_MAGNITUDE
    valid_range = attrs.get("valid_range")
    if valid_range is not None and np.size(valid_range) == 2:
        low, high = (float(v) for v in np.asarray(valid_range).ravel())
        # A small tolerance: valid_range is stored in float32 and the data may round past it.
        bad |= (out < low - 1e-3) | (out > high + 1e-3)
    bad &= np.isfinite(out)
    out[bad] = np.nan
    return out, int(bad.sum())


_STATISTICS = ("mean", "max")


def _region_mask(lats: np.ndarray, lons: np.ndarray, box: Region) -> np.ndarray:
    """(lat, lon) boolean mask of the grid cells whose centre lies in the region."""
    grid_lon, grid_lat = np.meshgrid(lons, lats)
    return region_contains(grid_lat, grid_lon, box)


def parse_netcdf_region(
    path: Path,
    *,
    regions: Sequence[Mapping[str, object]],
    variable: str = "sst",
    frequency: str = "MS",
    domain: str = "satellite",
    statistics: Sequence[str] = _STATISTICS,
    source: str = _SOURCE,
    licence: str = _LICENCE,
    classification: str = "public",
) -> Parsed:
    """Reduce a (time, lat, lon) NetCDF field to area-weighted mean and max series per region."""
    path = Path(path)
    boxes = parse_regions(regions, what=f"netcdf_region {path.name}")
    unknown = [s for s in statistics if s not in _STATISTICS] if not isinstance(statistics, str) else [statistics]
    if unknown or not statistics:
        raise ConfigError(
            f"netcdf_region {path.name}: statistics {list(statistics)!r} are not among {list(_STATISTICS)}",
            fix='pass statistics=["mean"] or ["mean", "max"]',
        )
    grid = _load(path, variable)
    try:
        times = pl.Series("ds", grid.times).cast(pl.Datetime("us"))
    except (pl.exceptions.PolarsError, TypeError):
        raise fail(
            path,
            f"the time axis of {variable!r} does not decode to datetimes",
            fix="the file needs CF time units like 'days since 1800-01-01'",
        ) from None
    check_frequency(path, times, frequency, what=f"the time axis of {variable!r}")
    lats, lons = grid.lats, grid.lons
    unit = str(grid.attrs.get("units", ""))
    long_name = str(grid.attrs.get("long_name", variable))
    data, masked_here = _masked(grid.values, grid.attrs)
    notes = [
        f"{int(np.isnan(data).sum())} of {data.size} cell values are missing or land (NaN after CF decoding)",
        "cell weights cos(latitude) for the regional mean",
    ]
    if masked_here:
        notes.append(f"masked {masked_here} fill or out-of-range value(s) that CF decoding left in place")
    frames, meta = [], []
    for box in boxes:
        mask = _region_mask(lats, lons, box)
        if not mask.any():
            raise ConfigError(
                f"netcdf_region {path.name}: region {box.id!r} covers no grid cell "
                f"(grid lat {lats.min()}..{lats.max()}, lon {lons.min()}..{lons.max()})",
                fix="widen the box or polygon; it must contain at least one grid centre",
            )
        cells = data[:, mask]  # (time, cells in region)
        weights = np.broadcast_to(
            np.cos(np.deg2rad(np.broadcast_to(lats[:, None], mask.shape)[mask]))[None, :], cells.shape
        )
        valid = np.isfinite(cells)
        weight_sum = np.where(valid, weights, 0.0).sum(axis=1)
        has_data = weight_sum > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(valid, cells * weights, 0.0).sum(axis=1) / weight_sum
        maximum = np.where(valid, cells, -np.inf).max(axis=1)
        if not has_data.all():
            notes.append(f"region {box.id}: {int((~has_data).sum())} time step(s) without a valid cell dropped")
        notes.append(f"region {box.id}: {int(valid.any(axis=0).sum())} valid grid cell(s)")
        lat, lon = box.centre
        chosen = [
            item
            for item in (("mean", mean, "area-weighted mean"), ("max", maximum, "maximum"))
            if item[0] in statistics
        ]
        for suffix, values, what in chosen:
            uid = f"{box.id}_{suffix}"
            frames.append(
                pl.DataFrame({"unique_id": uid, "ds": times.filter(pl.Series(has_data)), "y": values[has_data]})
            )
            meta.append(
                meta_row(
                    unique_id=uid,
                    domain=domain,
                    name=f"{box.name}: {what} {long_name.lower()}",
                    variable=f"{variable}_{suffix}",
                    unit=unit,
                    frequency=frequency,
                    region=box.name,
                    lat=lat,
                    lon=lon,
                    source=source,
                    licence=licence,
                    classification=classification,
                )
            )
    return finish(path, frames, meta, notes=notes)
