"""The parsers added for ingestion, on real files: bundled copies (tests/data/ingest, data/) and,
when the shared collection is present, the ⚠ files that may not be bundled (CENC, CSI 300, NGL,
SIO), which are read in place and never copied."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError, DataFormatError
from ingest.sources import PARSERS, detect_format, parse
from ingest.sources.catalogue import SEISMIC_REGIONS, SST_REGIONS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
INGEST = ROOT / "tests" / "data" / "ingest"
SHARED = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="the shared data collection (../shared/data) is absent")


def _one(parsed, uid: str) -> pl.DataFrame:
    return parsed.series.filter(pl.col("unique_id") == uid)


def test_fred_multi_column_export_gives_one_series_per_column() -> None:
    path = INGEST / "fred_datalist_h15_wti_2008q4.tsv"
    parsed = parse(path, "fred_multi")
    assert sorted(parsed.meta.get_column("unique_id").to_list()) == ["dcoilwtico", "dgs10", "dgs2", "dgs3mo"]
    assert set(parsed.meta.get_column("frequency").to_list()) == {"B"}
    # 2008-12: the 3-month bill yield hit zero after Lehman; WTI fell from 109.63 to about 31.
    assert _one(parsed, "dgs3mo").get_column("y").min() == 0.0
    wti = _one(parsed, "dcoilwtico")
    assert wti.get_column("y")[0] == 109.63 and wti.get_column("y").min() < 35
    assert any(note.startswith("DGS10: ") and "'.' dropped" in note for note in parsed.notes)
    assert detect_format(path)[0] == "fred_multi"
    with pytest.raises(ConfigError, match=r"column\(s\) \['VIX'\] are not in the file"):
        parse(path, "fred_multi", columns=["VIX"])


def test_gbk_newest_first_market_table_is_decoded_and_sorted() -> None:
    path = INGEST / "cny_per_usd_monthly_gbk_newest_first.csv"
    parsed = parse(path, "market_table", unique_id="cny_gbk", frequency="MS")
    fx = parse(DATA / "market/fred_exchange_rates_china_monthly.csv", "fred_long_fx", country="China")
    assert parsed.series.get_column("y").to_list() == fx.series.get_column("y").to_list()
    assert parsed.series.get_column("ds").is_sorted()
    assert "decoded as gbk" in parsed.notes and any("newest first" in n for n in parsed.notes)


def test_market_table_reads_parquet_and_asks_for_a_column_map(tmp_path) -> None:
    source = INGEST / "cny_per_usd_monthly_gbk_newest_first.csv"
    frame = pl.read_csv(source.read_bytes().decode("gbk").encode(), try_parse_dates=True)
    target = tmp_path / "cny.parquet"
    frame.rename({"日期": "Date", "收盘价": "Close"}).drop("名称").write_parquet(target)
    parsed = parse(target, "market_table", unique_id="cny_pq", frequency="MS")
    assert parsed.series.height == 546 and "read as Parquet" in parsed.notes
    assert detect_format(target)[0] == "market_table"
    with pytest.raises(ConfigError, match="cannot tell which column holds the values"):
        parse(DATA / "market/fred_exchange_rates_china_monthly.csv", "market_table")


def test_tenv3_layout_gives_the_same_displacements_as_the_pbo_file(tmp_path) -> None:
    from tests.replay_server import pos_to_tenv3

    path = tmp_path / "P156.tenv3"
    path.write_bytes(pos_to_tenv3(DATA / "geodetic/gnss_P156_pbo_california_2006_2015.pos", "P156"))
    tenv3 = parse(path, "ngl_tenv3")
    pos = parse(DATA / "geodetic/gnss_P156_pbo_california_2006_2015.pos", "pbo_pos")
    joined = tenv3.series.join(pos.series, on=["unique_id", "ds"])
    assert joined.height == pos.series.height == 9588
    assert (joined.get_column("y") - joined.get_column("y_right")).abs().max() < 1e-3
    assert tenv3.meta.get_column("lon")[0] == pytest.approx(-123.906, abs=1e-3)
    broken = tmp_path / "cut.tenv3"
    broken.write_text("\n".join(path.read_text().splitlines()[:5] + ["P156 15MAR14 2015.1986 57095"]) + "\n")
    with pytest.raises(DataFormatError, match="line 6: expected at least 20 whitespace-separated fields, got 4"):
        parse(broken, "ngl_tenv3")


def test_polygon_regions_for_grids_and_catalogs() -> None:
    box = parse(DATA / "satellite/noaa_ersstv5_sst_monthly_2010_2020.nc", "netcdf_region", regions=SST_REGIONS[:1])
    # grid centres sit on 190 and 240 E; a polygon counts centres strictly inside, so it reaches past them
    square = [{"id": "nino34", "name": "Nino 3.4", "polygon": [[189, -5], [241, -5], [241, 5], [189, 5]]}]
    poly = parse(
        DATA / "satellite/noaa_ersstv5_sst_monthly_2010_2020.nc", "netcdf_region", regions=square, statistics=["mean"]
    )
    assert poly.meta.get_column("unique_id").to_list() == ["nino34_mean"]
    assert _one(poly, "nino34_mean").get_column("y").to_list() == pytest.approx(
        _one(box, "nino34_mean").get_column("y").to_list()
    )
    # a triangle (lower-left half of the box) keeps fewer cells: a different, still tropical mean
    triangle = [{"id": "tri", "name": "Triangle", "polygon": [[-170, -5], [-120, -5], [-170, 5]]}]
    tri = parse(DATA / "satellite/noaa_ersstv5_sst_monthly_2010_2020.nc", "netcdf_region", regions=triangle)
    assert any("region tri:" in n and "valid grid cell" in n for n in tri.notes)
    assert _one(tri, "tri_mean").get_column("y").to_list() != _one(box, "nino34_mean").get_column("y").to_list()
    quake = [{"id": "tohoku_poly", "name": "Tohoku", "polygon": [[140, 36], [146, 36], [146, 42], [140, 42]]}]
    japan = parse(DATA / "seismic/usgs_comcat_japan_2005_2014_processed.csv", "usgs_catalog", regions=quake)
    boxes = parse(
        DATA / "seismic/usgs_comcat_japan_2005_2014_processed.csv", "usgs_catalog", regions=SEISMIC_REGIONS["japan"][:1]
    )
    assert _one(japan, "tohoku_poly_count").get_column("y").sum() == _one(boxes, "tohoku_count").get_column("y").sum()
    with pytest.raises(ConfigError, match="polygon has 2 vertices"):
        parse(
            DATA / "satellite/noaa_ersstv5_sst_monthly_2010_2020.nc",
            "netcdf_region",
            regions=[{"id": "x", "name": "X", "polygon": [[0, 0], [1, 1]]}],
        )


def test_api_json_parsers_refuse_malformed_answers(tmp_path) -> None:
    cut = tmp_path / "obs.json"
    cut.write_text('{"observations": [{"date": "2020-01-01", "value": "3.5"}, {"date": "2020-02')
    with pytest.raises(DataFormatError, match="is not valid JSON"):
        parse(cut, "fred_json", unique_id="x")
    power = tmp_path / "power.json"
    power.write_text(
        json.dumps({"header": {"fill_value": -999}, "properties": {"parameter": {"T2M": {"20200101": -999.0}}}})
    )
    with pytest.raises(DataFormatError, match="holds only fill values"):
        parse(power, "nasa_power_json", site_id="site")
    water = tmp_path / "water.json"
    water.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "properties": {
                            "time": "2020-01-01",
                            "value": "5",
                            "unit_of_measure": "ft",
                            "monitoring_location_id": "USGS-1",
                            "parameter_code": "00060",
                        }
                    }
                ],
            }
        )
    )
    with pytest.raises(DataFormatError, match=r"unit\(s\) \['ft'\]"):
        parse(water, "usgs_water_json")


def test_every_format_is_registered_and_exact_duplicate_rows_are_dropped(tmp_path) -> None:
    assert {
        "fred_multi",
        "fred_json",
        "market_table",
        "cenc_catalog",
        "ngl_tenv3",
        "sio_neu",
        "nasa_power_json",
        "usgs_water_json",
    } <= set(PARSERS)
    path = tmp_path / "dup.csv"
    path.write_text("date,value\n2020-01-01,1.5\n2020-01-01,1.5\n2020-02-01,1.6\n2020-03-01,1.7\n")
    parsed = parse(path, "fred_csv", unique_id="dup", frequency="MS")
    assert (
        parsed.series.height == 3 and "dropped 1 exact duplicate row(s) (same series, time and value)" in parsed.notes
    )


# --- the ⚠ files of the shared collection, read in place -----------------------------------


@needs_shared
def test_cenc_catalog_is_converted_from_beijing_time() -> None:
    path = SHARED / "seismic/cenc_china_m3_1970_2024.csv"
    assert detect_format(path)[0] == "cenc_catalog"
    parsed = parse(path, "cenc_catalog", regions=SEISMIC_REGIONS["eastasia"][:1])
    wenchuan = parsed.events.filter((pl.col("magnitude") == 8.0) & (pl.col("time").dt.year() == 2008))
    assert wenchuan.get_column("time").item() == dt.datetime(2008, 5, 12, 6, 28, 4)  # 14:28:04 Beijing time
    assert parsed.events.get_column("depth_km").null_count() > 0  # -1 = unknown depth
    assert any("to UTC" in n for n in parsed.notes)


@needs_shared
def test_csi300_gbk_export_and_usgs_gnss_files() -> None:
    csi = parse(SHARED / "market/csi300_000300_daily_2002_2020_gbk.csv", "market_table", unique_id="csi300")
    series = csi.series
    assert series.height == 4556 and csi.meta.get_column("frequency").item() == "B"
    peak = series.filter(pl.col("ds").dt.year() == 2007).sort("y").tail(1)
    assert peak.get_column("y").item() > 5800  # the 2007 A-share peak before the 2008 crash
    usud = parse(SHARED / "geodetic_or_hydro/gnss_USUD_usuda_japan_1999_2013.neu", "sio_neu")
    east = _one(usud, "usud_east").filter(pl.col("ds").is_between(dt.datetime(2011, 3, 10), dt.datetime(2011, 3, 11)))
    assert east.get_column("y").diff().drop_nulls().item() > 150  # Tohoku co-seismic step, mm eastward
    lhas = parse(SHARED / "geodetic_or_hydro/gnss_LHAS_lhasa_ngl_1995_2007.tenv3", "ngl_tenv3")
    assert lhas.meta.get_column("lon")[0] == pytest.approx(91.104, abs=1e-3)
    years = (dt.datetime(2007, 1, 29) - dt.datetime(1995, 5, 19)).days / 365.25
    assert 35 < _one(lhas, "lhas_east").get_column("y")[-1] / years < 55  # Tibet moves ~45 mm/yr east
