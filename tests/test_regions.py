"""Regions drawn once in ews.toml's [regions] and used by catalogs, grids and stations; the
extent region of a catalog nothing covers; polygons and GeoJSON checked against shapely.

Real files: the bundled ComCat Japan catalog and ERSST grid, the bundled PSMSL tide gauges,
and tests/data/regions/ (Natural Earth Japan and Fiji outlines; NEIC M5.5+ events around
Tonga and Fiji, across the antimeridian). Provenance in tests/data/README.md.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import shapely
from shapely.geometry import shape

from core.errors import ConfigError
from core.settings import Settings, load_settings
from ingest.batches import ingest_file
from ingest.connectors import run_source
from ingest.regions import resolve_regions
from ingest.sources import bundled_catalogue, parse
from ingest.sources._common import extent_region, parse_regions, region_contains
from warehouse import Warehouse
from warehouse.series import read_observations, read_series_meta

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
JAPAN = DATA / "seismic" / "usgs_comcat_japan_2005_2014_processed.csv"
SST = DATA / "satellite" / "noaa_ersstv5_sst_monthly_2010_2020.nc"
OUTLINES = ROOT / "tests" / "data" / "regions" / "ne_10m_admin0_japan_fiji.geojson"
TONGA = ROOT / "tests" / "data" / "regions" / "neic_m55_tonga_fiji_2010_2016_comcat_layout.csv"
NOW = dt.datetime(2026, 1, 15)
_GLOBE = {"min_lat": -90, "max_lat": 90, "min_lon": -180, "max_lon": 180}

REGIONS = """
[regions]
tohoku = { name = "Tohoku", min_lat = 36, max_lat = 42, min_lon = 140, max_lon = 146 }
kanto_triangle = { name = "Kanto", polygon = [[138.51234, 34.01234], [142.51234, 34.03456], [140.51234, 37.51234]] }
nino34 = { name = "Nino 3.4", polygon = [[189, -5], [241, -5], [241, 5], [189, 5]] }
japan_land = { name = "日本", geojson = "regions/outlines.geojson", match = { name_zh = "日本" } }
fiji_land = { name = "Fiji", geojson = "regions/outlines.geojson", match = { adm0_a3 = "FJI" } }
"""


def _home(tmp_path: Path, extra: str = "") -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "regions").mkdir(exist_ok=True)
    shutil.copy(OUTLINES, tmp_path / "regions" / "outlines.geojson")
    (tmp_path / "ews.toml").write_text(REGIONS + extra, encoding="utf-8")
    return load_settings(tmp_path, environ={})


def _total(wh: Warehouse, uid: str) -> float:
    return float(read_observations(wh, [uid]).get_column("y").sum())


def _feature(match_key: str, value: str):
    features = json.loads(OUTLINES.read_text(encoding="utf-8"))["features"]
    return shape(next(f for f in features if f["properties"][match_key] == value)["geometry"])


# --- one definition, every source -------------------------------------------------------------


def test_a_region_id_from_ews_toml_feeds_a_catalog_ingest_and_a_grid(tmp_path) -> None:
    settings = _home(tmp_path)
    events = parse(JAPAN, "usgs_catalog", regions=[{"id": "all", "name": "All", **_GLOBE}]).events
    in_box = events.filter(pl.col("lat").is_between(36, 42) & pl.col("lon").is_between(140, 146)).height
    with Warehouse.open(settings.warehouse_path) as wh:
        result = ingest_file(wh, settings, JAPAN, "usgs_catalog", options={"regions": ["tohoku"]}, now=NOW)
        assert result.status == "committed", result.error
        assert _total(wh, "tohoku_count") == in_box > 1000  # the 2011 Tohoku sequence is in it
        assert read_series_meta(wh, ["tohoku_count"]).get_column("region").item() == "Tohoku"
        grid = ingest_file(wh, settings, SST, "netcdf_region", options={"regions": ["nino34"]}, now=NOW)
        assert grid.status == "committed", grid.error
        stored = read_observations(wh, ["nino34_mean"]).select("ds", "y")
    # the inline form gives the same series: one definition, one code path
    inline = [{"id": "nino34", "name": "Nino 3.4", "polygon": [[189, -5], [241, -5], [241, 5], [189, 5]]}]
    same = parse(SST, "netcdf_region", regions=inline).series.filter(pl.col("unique_id") == "nino34_mean")
    assert stored.height == same.height > 100
    assert np.allclose(stored.sort("ds").get_column("y").to_numpy(), same.sort("ds").get_column("y").to_numpy())


def test_polygon_and_geojson_regions_count_what_shapely_counts(tmp_path) -> None:
    settings = _home(tmp_path)
    regions = resolve_regions(["kanto_triangle", "japan_land"], settings, what="test")
    parsed = parse(JAPAN, "usgs_catalog", regions=regions)
    lon = parsed.events.get_column("lon").to_numpy()
    lat = parsed.events.get_column("lat").to_numpy()
    # vertices off the catalog's 0.001-degree grid: no event sits on an edge, where either answer is right
    triangle = shapely.Polygon([(138.51234, 34.01234), (142.51234, 34.03456), (140.51234, 37.51234)])
    land = _feature("name_zh", "日本")
    expected = {
        "kanto_triangle_count": int(shapely.contains_xy(triangle, lon, lat).sum()),
        "japan_land_count": int(shapely.contains_xy(land, lon, lat).sum()),
    }
    got = {uid: float(parsed.series.filter(pl.col("unique_id") == uid).get_column("y").sum()) for uid in expected}
    assert got == expected
    assert 100 < expected["japan_land_count"] < len(lon) / 2  # most events lie offshore, many under land
    meta = parsed.meta.filter(pl.col("unique_id") == "japan_land_count")
    assert meta.get_column("region").item() == "日本"  # the name from ews.toml
    assert f"region japan_land: {expected['japan_land_count']} event(s)" in parsed.notes


def test_polygons_across_the_antimeridian_count_like_shapely(tmp_path) -> None:
    """The Tonga-Fiji events straddle 180°: a polygon drawn with vertices on both sides, and
    Natural Earth's Fiji outline (cut at ±180), both stay small regions, not the globe."""
    settings = _home(tmp_path)
    (fiji,) = parse_regions(resolve_regions(["fiji_land"], settings, what="test"), what="test")
    assert fiji.min_lon > fiji.max_lon and fiji.min_lon - fiji.max_lon > 350  # a few degrees across 180
    drawn = [[172.3456, -24.7123], [-171.2345, -24.7123], [-171.2345, -13.3456], [172.3456, -13.3456]]
    parsed = parse(TONGA, "usgs_catalog", regions=[{"id": "trench", "name": "Tonga trench", "polygon": drawn}])
    lon, lat = (parsed.events.get_column(c).to_numpy() for c in ("lon", "lat"))
    # shapely works on a plane: the same polygon and points in 0..360 degrees east
    east = shapely.Polygon([(lo % 360, la) for lo, la in drawn])
    inside = int(shapely.contains_xy(east, lon % 360, lat).sum())
    assert 100 < inside < len(lon)
    counts = parsed.series.filter(pl.col("unique_id") == "trench_count").get_column("y").sum()
    assert counts == inside


def test_stations_take_the_region_that_holds_them(tmp_path) -> None:
    settings = _home(tmp_path)
    gauges = {b.relative_path: b for b in bundled_catalogue(DATA) if b.format == "psmsl_monthly"}
    ayukawa = gauges["hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata"]
    new_york = gauges["hydro/psmsl_rlr_monthly_012_new_york_battery.rlrdata"]
    with Warehouse.open(settings.warehouse_path) as wh:
        for item in (ayukawa, new_york):
            options = {**item.options, "regions": ["tohoku"]}
            result = ingest_file(wh, settings, DATA / item.relative_path, item.format, options=options, now=NOW)
            assert result.status == "committed", result.error
        regions = dict(read_series_meta(wh).select("unique_id", "region").iter_rows())
    assert regions == {"psmsl_131_ayukawa": "Tohoku", "psmsl_012_new_york": "New York, US"}
    assert any(
        "1 series lie outside every region ['tohoku']: psmsl_012_new_york (40.700, -74.013)" in n for n in result.notes
    )


# --- nothing dropped silently ------------------------------------------------------------------


def _toml_line(note: str) -> tuple[str, dict[str, object]]:
    line = re.search(r"in ews\.toml: (\w+ = \{.*?\})", note)
    assert line is not None, note
    parsed = tomllib.loads(line.group(1))
    (region_id,) = parsed
    return region_id, parsed[region_id]


def test_a_catalog_without_regions_gets_its_extent_across_the_antimeridian_and_the_line_to_keep_it(
    tmp_path,
) -> None:
    settings = _home(tmp_path)
    with Warehouse.open(settings.warehouse_path) as wh:
        result = ingest_file(wh, settings, TONGA, "usgs_catalog", now=NOW)
        assert result.status == "committed", result.error
        stem = "neic_m55_tonga_fiji_2010_2016_comcat_layout"
        (note,) = [n for n in result.notes if n.startswith("no regions given")]
        region_id, spec = _toml_line(note)
        assert region_id == stem and f'regions = ["{stem}"]' in note
        events = pl.read_csv(TONGA)
        east, west = events.filter(pl.col("longitude") > 0), events.filter(pl.col("longitude") < 0)
        assert spec == {
            "name": f"events in {TONGA.name}",
            "min_lat": math.floor(events.get_column("latitude").min()),
            "max_lat": math.ceil(events.get_column("latitude").max()),
            "min_lon": math.floor(east.get_column("longitude").min()),  # west edge: east of 170 E
            "max_lon": math.ceil(west.get_column("longitude").max()),  # east edge: west of 180
        }
        assert _total(wh, f"{stem}_count") == events.height == 287  # every event counted
        before = read_observations(wh, [f"{stem}_count"])
    # the line, put in ews.toml as the note says, gives the same series
    again = _home(tmp_path / "again", f'{region_id} = {{ name = "Tonga-Fiji", {_inline(spec)} }}\n')
    with Warehouse.open(again.warehouse_path) as wh:
        ingest_file(wh, again, TONGA, "usgs_catalog", options={"regions": [region_id]}, now=NOW)
        assert read_observations(wh, [f"{stem}_count"]).equals(before)


def _inline(spec: dict[str, object]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in spec.items() if k != "name")


def test_events_outside_the_regions_are_counted_and_a_catalog_nothing_covers_gets_its_extent(tmp_path) -> None:
    settings = _home(tmp_path)
    parsed = parse(JAPAN, "usgs_catalog", regions=resolve_regions(["tohoku"], settings, what="test"))
    events = parsed.events
    outside = events.filter(~(pl.col("lat").is_between(36, 42) & pl.col("lon").is_between(140, 146)))
    (note,) = [n for n in parsed.notes if "outside every region" in n]
    assert note.startswith(f"{outside.height} of {events.height} event(s) lie outside every region ['tohoku']")
    region_id, spec = _toml_line(note)
    assert region_id == "usgs_comcat_japan_2005_2014_processed_outside"
    rest = parse_regions([{"id": region_id, **spec}], what="test")[0]
    held = region_contains(outside.get_column("lat").to_numpy(), outside.get_column("lon").to_numpy(), rest)
    assert held.all()  # the suggested region holds every event left out
    # regions given, none holding an event: the catalog's extent is added, named in the notes
    far = parse(TONGA, "usgs_catalog", regions=resolve_regions(["tohoku"], settings, what="test"))
    counts = far.series.filter(pl.col("unique_id").str.ends_with("_count"))
    totals = dict(counts.group_by("unique_id").agg(pl.col("y").sum()).iter_rows())
    stem = TONGA.stem
    assert totals == {"tohoku_count": 0.0, f"{stem}_count": 287.0}
    assert any(
        n.startswith("none of the 287 event(s) lies in the regions ['tohoku']: added one region") for n in far.notes
    )


def test_extent_rounds_out_to_whole_degrees_on_real_catalogs() -> None:
    events = parse(JAPAN, "usgs_catalog").events
    lat, lon = events.get_column("lat").to_numpy(), events.get_column("lon").to_numpy()
    box = extent_region(lat, lon, region_id="japan", name="Japan")
    assert (box["min_lat"], box["max_lat"]) == (math.floor(lat.min()), math.ceil(lat.max()))
    assert (box["min_lon"], box["max_lon"]) == (math.floor(lon.min()), math.ceil(lon.max()))
    assert box["max_lon"] - box["min_lon"] < 40  # Japan, not the globe
    # one event on a whole degree still gives a box of one degree
    single = extent_region(np.array([38.0]), np.array([142.0]), region_id="one", name="One")
    assert (single["min_lat"], single["max_lat"], single["min_lon"], single["max_lon"]) == (38, 39, 142, 143)


# --- errors that name the fix -------------------------------------------------------------------


def test_an_unknown_region_id_names_it_and_the_known_ids(tmp_path) -> None:
    settings = _home(
        tmp_path,
        '[ingest.sources.quakes]\nkind = "usgs_fdsn"\nurl = "http://127.0.0.1:9/fdsnws/event/1"\n'
        'start = "2020-01-01"\nregions = ["sichuan"]\n',
    )
    known = r"known ids: fiji_land, japan_land, kanto_triangle, nino34, tohoku"
    with Warehouse.open(settings.warehouse_path) as wh:
        with pytest.raises(ConfigError, match=rf"region id 'sichuan' is not defined in \[regions\].*{known}"):
            ingest_file(wh, settings, JAPAN, "usgs_catalog", options={"regions": ["tohoku", "sichuan"]}, now=NOW)
        run = run_source(wh, settings, "quakes", now=NOW)  # refused before any request is sent
    assert run.status == "failed" and "region id 'sichuan' is not defined" in (run.error or "")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("japan = 3", r"\[regions\] japan = 3 is not a table"),
        ('japan = { name = "J", min_lat = 1 }', r"japan gives \['box'\] \(box keys \['min_lat'\]"),
        ("japan = { polygon = [[0, 0], [1, 0], [0, 1]], min_lat = 0, max_lat = 1, min_lon = 0, max_lon = 1 }", "gives"),
        ('japan = { name = "J", colour = "red" }', r"unknown key\(s\) \['colour'\]"),
        ("Japan = { min_lat = 0, max_lat = 1, min_lon = 0, max_lon = 1 }", "not lowercase snake_case"),
        ("japan = { polygon = [[0, 0], [1, 0], [0, 1]], match = { a = 1 } }", "needs a geojson file"),
    ],
)
def test_a_malformed_regions_entry_is_refused_when_settings_load(tmp_path, entry: str, message: str) -> None:
    (tmp_path / "ews.toml").write_text(f"[regions]\n{entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_regions_from_the_environment_and_geojson_errors(tmp_path) -> None:
    box = '{"name": "Japan", "min_lat": 22, "max_lat": 46, "min_lon": 122, "max_lon": 150}'
    settings = load_settings(tmp_path, environ={"EWS_REGIONS__JAPAN": box})
    assert resolve_regions("japan", settings, what="test") == [{"id": "japan", **json.loads(box)}]
    settings = _home(tmp_path / "h", 'nowhere = { geojson = "regions/outlines.geojson", match = { name_en = "X" } }\n')
    with pytest.raises(
        ConfigError, match=r"(?s)no feature has \{'name_en': 'X'\}.*values of 'name_en' in the file: Fiji, Japan"
    ):
        resolve_regions(["nowhere"], settings, what="test")


def test_a_catalog_without_regions_counts_the_same_whatever_order_its_batches_come_in(tmp_path: Path) -> None:
    """Two halves of one real catalog (east and west of the antimeridian, overlapping in time,
    same file name and so the same catalog) loaded A then B, B then A, and the whole file at
    once: the one extent region spans every stored event, so the daily series are the same."""
    lines = TONGA.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    east = [r for r in rows if float(r.split(",")[2]) > 0]
    west = [r for r in rows if float(r.split(",")[2]) < 0]
    assert len(east) == 51 and len(west) == 236  # as the provenance row says

    def load(parts: list[list[str]], folder: str) -> pl.DataFrame:
        home = tmp_path / folder
        settings = load_settings(home, environ={})
        with Warehouse.open(settings.warehouse_path) as wh:
            for i, part in enumerate(parts):
                path = home / f"part{i}" / "tonga.csv"
                path.parent.mkdir(parents=True)
                path.write_text("\n".join([header, *part]) + "\n", encoding="utf-8")
                assert ingest_file(wh, settings, path, "usgs_catalog", now=NOW).status == "committed"
            return read_observations(wh).sort("unique_id", "ds").select("unique_id", "ds", "y")

    whole = load([rows], "whole")
    assert whole.filter(pl.col("unique_id") == "tonga_count").get_column("y").sum() == 287
    east_first, west_first = load([east, west], "east_first"), load([west, east], "west_first")
    days = whole.select("unique_id", "ds")
    for frame in (east_first, west_first):  # the halves may leave zero-filled days the whole file spans differently
        assert days.join(frame, on=["unique_id", "ds"], how="left").equals(whole)
