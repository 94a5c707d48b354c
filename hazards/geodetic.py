"""Geodetic indicators: velocity changes and steps (offsets) in displacement and sea-level series.

- :func:`velocity_change`: least-squares velocity (units per year) of the ``span`` points
  before each time against the ``span`` before that; the change is what a slow-slip event or
  post-seismic relaxation shows.
- :func:`detect_steps`: jumps in a GNSS displacement series (co-seismic offsets, antenna or
  datum changes) and in a tide-gauge sea-level series (a gauge that sank with the land, as
  Ayukawa did in 2011, or a datum change): both are offsets of the ground under the
  instrument, so the one detector lives here and serves both. Found by
  :func:`find_change_points` on the detrended series, reported with their size and the dates
  around them. Offline (uses the whole series).
- :func:`find_change_points` (offline, whole series): binary segmentation of a piecewise
  constant mean under a Gaussian cost with penalty ``penalty * sigma^2 * log n`` (BIC-like;
  ``sigma`` from first differences, so a step does not inflate its own noise estimate).
  Returns the indices where a new segment starts; :func:`segment_means` gives the segments.
- :func:`gnss_offsets`: offsets in daily GNSS positions with their size and standard error
  against the station's noise (white + flicker + random walk), found by
  :func:`hazards.offsets.find_offsets` (shared with :func:`hazards.coastal.sustained_steps`);
  the benchmark for such detectors is DOGEx (Gazeaux et al. 2013).
- :func:`link_offsets`: each offset linked to the catalog earthquake that can explain it,
  within the NGL radius :func:`ngl_step_radius_km` (``10 ** (M/2 - 0.79)`` km) and a time
  tolerance.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.errors import ConfigError, FrameError
from core.frames import validate_series
from hazards.offsets import _best_split, find_offsets, offset_row, offsets_frame

__all__ = [
    "velocity_change",
    "detect_steps",
    "find_change_points",
    "segment_means",
    "gnss_offsets",
    "ngl_step_radius_km",
    "link_offsets",
]

_DAYS_PER_YEAR = 365.25


def _years(ds: pl.Series) -> np.ndarray:
    epoch = ds.cast(pl.Datetime("us")).dt.epoch("us").to_numpy().astype(np.float64)
    return epoch / (86400e6 * _DAYS_PER_YEAR)


def velocity_change(series: pl.DataFrame, *, span: int) -> pl.DataFrame:
    """Per row from ``2 span`` on: ``velocity_before``, ``velocity_recent`` (per year) and ``velocity_change``."""
    if span < 3:
        raise FrameError(f"span={span} is too short for a velocity", fix="use span >= 3 observations")
    frame = validate_series(series)
    parts = []
    for _, part in frame.group_by("unique_id", maintain_order=True):
        t = _years(part.get_column("ds"))
        y = part.get_column("y").to_numpy()
        recent = _rolling_slope(t, y, span)
        before = np.roll(recent, span)
        before[: 2 * span - 1] = np.nan
        parts.append(
            part.with_columns(
                pl.Series("velocity_before", before),
                pl.Series("velocity_recent", recent),
                pl.Series("velocity_change", recent - before),
            )
        )
    out = pl.concat(parts)
    return out.filter(pl.col("velocity_change").is_not_nan())


def _rolling_slope(t: np.ndarray, y: np.ndarray, span: int) -> np.ndarray:
    st, sy = pl.Series(t), pl.Series(y)
    mt, my = st.rolling_mean(span).to_numpy(), sy.rolling_mean(span).to_numpy()
    mty = pl.Series(t * y).rolling_mean(span).to_numpy()
    mtt = pl.Series(t * t).rolling_mean(span).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (mty - mt * my) / (mtt - mt * mt)


def detect_steps(
    series: pl.DataFrame, *, penalty: float = 8.0, min_size: int = 10, min_step: float = 0.0
) -> pl.DataFrame:
    """Steps per series: ``unique_id, ds`` (first point after the step), ``size``, ``before_ds``.

    GNSS displacement and tide-gauge sea level alike (module docstring). The series is
    detrended with its overall least-squares line first (a station's steady velocity is not
    a step); ``min_step`` drops steps smaller than that (in y units).
    """
    frame = validate_series(series)
    rows = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        y = part.get_column("y").to_numpy()
        t = _years(part.get_column("ds"))
        slope, intercept = np.polyfit(t - t[0], y, 1) if len(y) > 2 else (0.0, float(np.mean(y)))
        resid = y - (intercept + slope * (t - t[0]))
        ds = part.get_column("ds")
        for cut in find_change_points(resid, penalty=penalty, min_size=min_size):
            k = min(min_size, cut, len(y) - cut)
            size = float(np.median(resid[cut : cut + k]) - np.median(resid[cut - k : cut]))
            if abs(size) >= min_step:
                rows.append({"unique_id": uid, "ds": ds[cut], "before_ds": ds[cut - 1], "size": size})
    return pl.DataFrame(
        rows, schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "before_ds": pl.Datetime("us"), "size": pl.Float64}
    )


def find_change_points(y: np.ndarray, *, penalty: float = 3.0, min_size: int = 5, max_changes: int = 20) -> list[int]:
    """Start indices of new mean segments by binary segmentation (module docstring)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 2 * min_size:
        return []
    sigma = 1.4826 * float(np.median(np.abs(np.diff(y) - np.median(np.diff(y))))) / np.sqrt(2.0)
    sigma = sigma or float(np.std(y)) or 1.0
    cost_per_change = penalty * sigma * sigma * np.log(n)
    cuts: list[int] = []
    segments = [(0, n)]
    while segments and len(cuts) < max_changes:
        best = None
        for lo, hi in segments:
            split = _best_split(y[lo:hi], min_size)
            if split is not None and (best is None or split[1] > best[2]):
                best = (lo, hi, split[1], lo + split[0])
        if best is None or best[2] <= cost_per_change:
            break
        lo, hi, _, cut = best
        cuts.append(cut)
        segments.remove((lo, hi))
        segments.extend([(lo, cut), (cut, hi)])
    return sorted(cuts)


def segment_means(y: np.ndarray, cuts: list[int]) -> list[tuple[int, int, float]]:
    """``(start, end_exclusive, mean)`` of each segment between change points."""
    y = np.asarray(y, dtype=np.float64)
    bounds = [0, *cuts, len(y)]
    return [(a, b, float(np.mean(y[a:b]))) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


# --- GNSS offsets ----------------------------------------------------------------------------


def _clean_outliers(y: np.ndarray, *, outlier_sigma: float) -> np.ndarray:
    """Mask of values kept: within ``outlier_sigma`` robust sigmas of the centred 7-point median.

    A 7-point median follows a step (each point sits with the majority of its window), so an
    offset is not mistaken for outliers.
    """
    med = pl.Series(y).rolling_median(7, center=True, min_samples=1).to_numpy()
    dev = y - med
    scale = 1.4826 * float(np.median(np.abs(dev - np.median(dev))))
    if scale <= 0.0:
        return np.ones(len(y), dtype=bool)
    return np.asarray(np.abs(dev) <= outlier_sigma * scale)


def _check_positive(name: str, value: float, fix: str) -> None:
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value} must be a positive number", fix=fix)


def gnss_offsets(
    series: pl.DataFrame,
    *,
    min_sigma: float = 5.0,
    window: int = 30,
    noise_days: float = 730.0,
    harmonics: int = 2,
    max_offsets: int = 10,
    outlier_sigma: float = 5.0,
) -> pl.DataFrame:
    """Offsets (steps) in daily GNSS position components, with their size against the station's noise.

    Input: the series frame, ``y`` a position component in mm (``ingest`` gives north, east and
    up per station). Output, one row per offset: ``unique_id, ds`` (first solution after the
    offset), ``before_ds`` (last one before), ``confirmed_ds`` (the ``window``-th solution after:
    the earliest day a monitor could flag it), ``size_mm``, ``sigma_mm`` (its standard error
    under the fitted noise), ``z = size_mm / sigma_mm``, and the noise model of the window
    before: ``noise_mm`` (white scatter of one daily solution), ``flicker_mm`` (Allan-deviation
    floor), ``random_walk_mm`` (per day), ``sigma_white_mm`` (the standard error a white-noise
    model would claim; ``sigma_mm / sigma_white_mm`` is flicker's inflation).

    Method (:func:`hazards.offsets.find_offsets`): outliers (more than ``outlier_sigma``
    robust sigmas from a 7-day running median) are set aside; trend + annual + semi-annual
    terms (+ accepted offsets) are fitted; a scan of adjacent ``window``-day means proposes
    offsets; each is sized as the difference of the mean residuals of the ``window`` days
    after and before, with trend and seasonal terms fitted on the ``noise_days`` before the
    offset only, flagged when ``|size| >= min_sigma * sigma`` and kept if the new position
    held for ``window`` days. The noise is white + flicker + random walk, fitted to the Allan
    variance of the pre-offset residual (:func:`hazards.offsets.offset_noise`; the direct
    Allan measurement at the window length when it is larger): GNSS position noise is white
    plus flicker (Mao et al. 1999; Williams et al. 2004), and flicker noise does not average
    down, so the standard error of an offset is larger than a white-noise model says (about
    five times at P156 and Usuda) and longer windows do not shrink it below the flicker floor.

    Probability: under Gaussian noise with the fitted spectrum, ``z`` is standard normal for
    one pre-chosen epoch; the scan chooses the epoch, so the false-detection rate per series
    is higher than ``2 (1 - Phi(min_sigma))``. tests/test_hazards_gnss.py measures it on
    noise-only series (white + annual + random walk, 50 series of 8.2 years): 1 false offset
    at ``min_sigma=5`` (the default), 14 at 4, 97 at 3.

    Reference for the comparison of offset detectors: Gazeaux et al. (2013), "Detecting offsets
    in GPS time series: first results from the detection of offsets in GPS experiment", JGR
    Solid Earth 118, 2397-2407, doi:10.1002/jgrb.50152 (DOGEx: simulated velocity + offsets +
    white and flicker noise; the best automated solutions found offsets down to about 8 mm).
    Williams (2003, JGR 108(B6) 2310) shows that differencing means either side of an offset
    is less efficient than a joint maximum-likelihood fit with the noise model: this detector
    trades that efficiency for speed and transparency. Offline on the frame it is given (pass
    the data up to the as-of time for a replay).
    """
    _check_positive("min_sigma", min_sigma, "use e.g. min_sigma=5.0 (offset / its standard error)")
    _check_positive("outlier_sigma", outlier_sigma, "use e.g. outlier_sigma=5.0")
    _check_positive("noise_days", noise_days, "use e.g. noise_days=730 (two years before each offset)")
    if window < 5:
        raise ConfigError(
            f"window={window} is too short to average daily noise", fix="use window >= 5 (default 30 days)"
        )
    frame = validate_series(series)
    rows: list[dict[str, object]] = []
    for (uid,), part in frame.group_by("unique_id", maintain_order=True):
        y_all = part.get_column("y").to_numpy()
        keep = _clean_outliers(y_all, outlier_sigma=outlier_sigma)
        ds = part.get_column("ds").filter(pl.Series(keep))
        t, y = _years(ds), y_all[keep]
        found = find_offsets(
            t,
            y,
            window=window,
            noise_years=noise_days / _DAYS_PER_YEAR,
            harmonics=harmonics,
            min_sigma=min_sigma,
            min_noise_points=max(3 * window, 90),
            max_offsets=max_offsets,
        )
        rows.extend(offset_row(str(uid), ds, k, test, window=window) for k, test in found)
    return offsets_frame(rows)


# --- Linking offsets to catalog earthquakes ---------------------------------------------------

_EARTH_RADIUS_KM = 6371.0
_LINK_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.Utf8(),
    "event_time": pl.Datetime("us"),
    "magnitude": pl.Float64(),
    "distance_km": pl.Float64(),
    "radius_km": pl.Float64(),
    "candidate_events": pl.Int64(),
}


def ngl_step_radius_km(magnitude: float | np.ndarray) -> float | np.ndarray:
    """Radius (km) within which an earthquake of this magnitude may offset a GNSS station.

    ``r = 10 ** (M / 2 - 0.79)`` km: the rule of the Nevada Geodetic Laboratory's step
    database (steps_readme.txt: "potential earthquake related steps are marked if the
    distance from station to epicenter is less than ... r0 = 10.^(0.5*mag - 0.79) km"; M4 ->
    16 km, M5 -> 51, M6 -> 162, M7 -> 512, M8 -> 1622, M9 -> 5129), the steps that come with
    the NGL time series of Blewitt, Hammond & Kreemer (2018), "Harnessing the GPS data
    explosion for interdisciplinary science", Eos 99, doi:10.1029/2018EO104623. An
    approximation of the radius of influence: depth, mechanism and directivity are ignored,
    and a station inside it need not show an offset.
    """
    radius = 10.0 ** (0.5 * np.asarray(magnitude, dtype=np.float64) - 0.79)
    return float(radius) if radius.ndim == 0 else radius


def _distance_km(lat1: float, lon1: float, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle (haversine) distance on a sphere of radius 6371 km."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return np.asarray(2 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def link_offsets(
    offsets: pl.DataFrame,
    events: pl.DataFrame,
    *,
    station_lat: float,
    station_lon: float,
    tolerance_days: float = 1.0,
    radius_factor: float = 1.0,
) -> pl.DataFrame:
    """Link each offset to the catalog earthquake that can explain it, if one can.

    ``offsets``: the output of :func:`gnss_offsets` or :func:`hazards.coastal.sustained_steps`
    for one station (needs ``unique_id, ds, before_ds``). ``events``: a catalog with
    ``event_id, time, lat, lon, magnitude`` (``ingest`` gives this for USGS/CENC catalogs).
    An earthquake explains an offset when its epicentre lies within ``radius_factor *``
    :func:`ngl_step_radius_km` of the station (great-circle distance from
    ``station_lat, station_lon``) and its time lies in ``[before_ds - tolerance_days,
    ds + 1 day + tolerance_days]``: between the last observation before the offset and the end
    of the day of the first one after it (daily solutions are stamped at the start of their
    day, and a solution of the day of the earthquake already carries part of the offset),
    widened for the uncertainty of the offset's epoch. For monthly sea level the window spans
    the whole gap between ``before_ds`` and ``ds``.
    When several qualify (a mainshock and its aftershocks) the largest magnitude is linked,
    then the nearest.

    Returns ``offsets`` with ``event_id, event_time, magnitude, distance_km, radius_km`` (null
    when no earthquake qualifies) and ``candidate_events`` (how many qualified).
    """
    if not isinstance(offsets, pl.DataFrame) or not {"unique_id", "ds", "before_ds"} <= set(offsets.columns):
        raise FrameError(
            "offsets must be a polars DataFrame with unique_id, ds, before_ds",
            fix="pass the output of gnss_offsets(...) or sustained_steps(...)",
        )
    needed = ["event_id", "time", "lat", "lon", "magnitude"]
    if not isinstance(events, pl.DataFrame) or not set(needed) <= set(events.columns):
        have = events.columns if isinstance(events, pl.DataFrame) else type(events).__name__
        raise FrameError(
            f"events lacks columns for linking: needs {needed}, has {have}",
            fix="pass the events frame of a parsed catalog (ingest.sources: usgs_catalog)",
        )
    if not (-90.0 <= station_lat <= 90.0) or not np.isfinite(station_lon):
        raise ConfigError(
            f"station position ({station_lat}, {station_lon}) is not a latitude/longitude",
            fix="pass the station's lat/lon in degrees (the series metadata has them)",
        )
    _check_positive("radius_factor", radius_factor, "use radius_factor=1.0 for the NGL rule")
    if not np.isfinite(tolerance_days) or tolerance_days < 0:
        raise ConfigError(f"tolerance_days={tolerance_days} must be >= 0", fix="use e.g. tolerance_days=1.0")
    ev = events.select(
        pl.col("event_id").cast(pl.Utf8),
        pl.col("time").cast(pl.Datetime("us")),
        pl.col("lat").cast(pl.Float64),
        pl.col("lon").cast(pl.Float64),
        pl.col("magnitude").cast(pl.Float64),
    ).drop_nulls()
    distance = _distance_km(station_lat, station_lon, ev.get_column("lat").to_numpy(), ev.get_column("lon").to_numpy())
    radius = radius_factor * np.asarray(ngl_step_radius_km(ev.get_column("magnitude").to_numpy()))
    ev = ev.with_columns(pl.Series("distance_km", distance), pl.Series("radius_km", radius)).filter(
        pl.col("distance_km") <= pl.col("radius_km")
    )
    tol = pl.duration(microseconds=int(tolerance_days * 86400e6))
    links = []
    for row in offsets.select("before_ds", "ds").cast(pl.Datetime("us")).iter_rows(named=True):
        match = ev.filter(
            pl.col("time") >= pl.lit(row["before_ds"]) - tol,
            pl.col("time") <= pl.lit(row["ds"]) + pl.duration(days=1) + tol,
        )
        best = match.sort(["magnitude", "distance_km"], descending=[True, False]).head(1)
        if best.height:
            b = best.row(0, named=True)
            links.append(
                {
                    "event_id": b["event_id"],
                    "event_time": b["time"],
                    "magnitude": b["magnitude"],
                    "distance_km": b["distance_km"],
                    "radius_km": b["radius_km"],
                    "candidate_events": match.height,
                }
            )
        else:
            links.append(
                {
                    "event_id": None,
                    "event_time": None,
                    "magnitude": None,
                    "distance_km": None,
                    "radius_km": None,
                    "candidate_events": 0,
                }
            )
    return pl.concat([offsets, pl.DataFrame(links, schema=_LINK_SCHEMA)], how="horizontal")
