"""The ``table`` format and the SOPAC ``.neu`` layout, on real files (tests/data/ingest,
provenance in its README): GRACE Greenland mass (HDR comments, decimal years), a Choptank
gauge CSV, SOPAC's cleaned BJFS series (model-terms header, year + day of year)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError, DataFormatError
from ingest.sources import detect_format, parse
from warehouse import Warehouse
from warehouse.series import read_series_meta, upsert_series

ROOT = Path(__file__).resolve().parent.parent
INGEST = ROOT / "tests" / "data" / "ingest"
GRACE = INGEST / "grace_greenland_mass_200204_202111.txt"
GAUGE = INGEST / "choptank_01491000_gauge_daily_flow_wy2011.csv"
BJFS = INGEST / "bjfsCleanUnf_1999_2000.neu"
CHOPTANK_USGS = ROOT / "data" / "hydro" / "usgs_01491000_choptank_daily_flow_cms.txt"
GRACE_OPTIONS = {
    "column_names": ["time", "mass (Gt)", "sigma (Gt)"],
    "value_columns": {"mass (Gt)": "greenland_mass"},
    "domain": "satellite",
}


def _file_rows(path: Path, prefix: str) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith(prefix)]


def test_grace_hdr_file_with_decimal_years_becomes_a_monthly_series() -> None:
    assert detect_format(GRACE)[0] == "table"
    with pytest.raises(
        DataFormatError, match=r"(?s)lines \[141, 142\] fall in the same period 2011-10-01.*combine_repeated"
    ):
        parse(GRACE, "table", **GRACE_OPTIONS)
    parsed = parse(GRACE, "table", combine_repeated="mean", **GRACE_OPTIONS)
    series = parsed.series
    meta = parsed.meta.row(0, named=True)
    assert (meta["frequency"], meta["unit"], meta["variable"], meta["domain"]) == ("MS", "Gt", "mass", "satellite")
    rows = _file_rows(GRACE, "HDR")
    assert len(rows) == 203 and series.height == 203 - 4  # four months hold two GRACE solutions each
    # 2002.29 is mid-April 2002 (the reference month, 0 Gt); 2021.87 is mid-November 2021.
    assert series.row(0) == ("greenland_mass", dt.datetime(2002, 4, 1), 0.0)
    assert series.get_column("ds")[-1] == dt.datetime(2021, 11, 1)
    lines = GRACE.read_text().splitlines()
    october_2011 = [float(lines[n - 1].split()[1]) for n in (141, 142)]  # 2011.79 and 2011.83
    assert series.filter(pl.col("ds") == dt.datetime(2011, 10, 1)).get_column("y").item() == pytest.approx(
        sum(october_2011) / 2
    )
    assert series.get_column("y")[-1] < -4500  # Greenland lost over 4,500 Gt since 2002
    assert any("decimal years read as months" in n for n in parsed.notes)
    assert any("skipped 31 comment line(s)" in n for n in parsed.notes)
    # Each time on its own day instead: the day holding the instant (2002.29 -> 2002-04-16).
    daily = parse(GRACE, "table", frequency="D", **GRACE_OPTIONS).series
    assert daily.height == 203 and daily.get_column("ds")[0] == dt.datetime(2002, 4, 16)


def test_decimal_years_land_on_the_day_sopac_stamps_by_year_and_day_of_year() -> None:
    """SOPAC writes mid-day decimal years next to year and day of year: both readings agree."""
    names = ["decyear", "year", "doy", "dn", "de", "du", "sn", "se", "su"]
    by_doy = parse(
        BJFS, "table", column_names=names, value_columns=["dn"], time_column=["year", "doy"], domain="geodetic"
    )
    by_decimal = parse(
        BJFS, "table", column_names=names, value_columns=["dn"], time_column="decyear", domain="geodetic"
    )
    assert by_doy.series.height == 300
    assert by_doy.series.get_column("ds").to_list() == by_decimal.series.get_column("ds").to_list()
    assert by_doy.series.get_column("ds")[0] == dt.datetime(1999, 10, 22)  # 1999 day 295
    assert by_doy.meta.get_column("frequency").item() == "D"


def test_gauge_csv_gives_the_same_flows_as_the_usgs_file_it_came_from() -> None:
    assert detect_format(GAUGE) == ("table", "a time column and numeric columns (no specific format matched)")
    parsed = parse(GAUGE, "table", domain="hydro", unique_id="choptank_flow", variable="discharge")
    meta = parsed.meta.row(0, named=True)
    assert (meta["unit"], meta["frequency"], meta["lower_bound"], meta["upper_bound"]) == ("m3/s", "D", 0.0, None)
    usgs = parse(CHOPTANK_USGS, "usgs_daily_flow").series
    start, end = dt.datetime(2010, 10, 1), dt.datetime(2011, 9, 30)
    expected = usgs.filter(pl.col("ds").is_between(start, end))
    assert parsed.series.height == expected.height == 365
    assert parsed.series.get_column("y").to_list() == expected.get_column("y").to_list()
    with pytest.raises(ConfigError, match=r"no domain for column 'Flow \(m3/s\)'.*\n.*pass domain="):
        parse(GAUGE, "table")


def test_table_errors_name_the_line_column_and_option(tmp_path: Path) -> None:
    lines = GAUGE.read_text().splitlines()
    bad = tmp_path / "gauge.csv"
    bad.write_text("\n".join([*lines[:4], "2010-10-04,n/a", *lines[5:]]) + "\n")
    with pytest.raises(DataFormatError, match=r"line 5, column 'Flow \(m3/s\)': expected a finite number, got 'n/a'"):
        parse(bad, "table", domain="hydro")
    bad.write_text("\n".join([*lines[:4], "04/10/2010,1.0", *lines[5:]]) + "\n")
    with pytest.raises(DataFormatError, match=r"line 5, column 'Date'.*\n.*pass time_format="):
        parse(bad, "table", domain="hydro")
    with pytest.raises(ConfigError, match=r"value column\(s\) \['Flow'\] are not in the file"):
        parse(GAUGE, "table", domain="hydro", value_columns=["Flow"])
    with pytest.raises(ConfigError, match="has unknown key"):
        parse(GAUGE, "table", value_columns={"Flow (m3/s)": {"units": "cfs"}})
    doy = tmp_path / "doy.txt"
    doy.write_text("year doy flow\n2011 365 1.0\n2011 366 2.0\n2012 1 3.0\n")
    with pytest.raises(DataFormatError, match=r"line 3, column 'doy': day of year 366 is outside 1..365 of 2011"):
        parse(doy, "table", domain="hydro")


def test_gbk_cp1252_and_separators_read_the_same_numbers(tmp_path: Path) -> None:
    rows = [line.split(",") for line in GAUGE.read_text().splitlines()[1:]]
    gbk = tmp_path / "gbk.tsv"
    gbk.write_bytes("\r\n".join(["日期\t流量（m3/s）", *("\t".join(r) for r in rows)]).encode("gbk"))
    latin = tmp_path / "latin.txt"
    latin.write_bytes(
        "\n".join(["% Station 01491000", "Date;Débit (m³/s)", *(";".join(r) for r in rows)]).encode("cp1252")
    )
    piped = tmp_path / "piped.txt"
    piped.write_text("\n".join(["# gauge export", "date|flow [m3/s]", *("|".join(r) for r in rows)]))
    base = parse(GAUGE, "table", domain="hydro").series.get_column("y").to_list()
    zh = parse(gbk, "table", domain="hydro")
    assert zh.series.get_column("y").to_list() == base
    assert "decoded as gbk" in zh.notes and zh.meta.get_column("unit").item() == "m3/s"
    fr = parse(latin, "table", domain="hydro", encoding="cp1252", unique_id="choptank")
    assert fr.series.get_column("y").to_list() == base and fr.meta.get_column("unit").item() == "m³/s"
    assert "columns separated by ';'" in fr.notes
    assert parse(piped, "table", domain="hydro").series.get_column("y").to_list() == base
    assert detect_format(piped)[0] == "table"


def test_excel_sheet_reads_like_the_csv(tmp_path: Path) -> None:
    xlsxwriter = pytest.importorskip("xlsxwriter")
    path = tmp_path / "gauge.xlsx"
    book = xlsxwriter.Workbook(path)
    book.add_worksheet("notes").write_row(0, 0, ["Choptank River near Greensboro, MD (USGS 01491000)"])
    sheet, day_format = book.add_worksheet("flow"), book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, ["Date", "Flow (m3/s)"])
    for row, (day, flow) in enumerate((line.split(",") for line in GAUGE.read_text().splitlines()[1:]), start=1):
        sheet.write_datetime(row, 0, dt.datetime.fromisoformat(day), day_format)
        sheet.write_number(row, 1, float(flow))
    book.close()
    assert detect_format(path)[0] == "table"
    csv = parse(GAUGE, "table", domain="hydro")
    xlsx = parse(path, "table", domain="hydro", sheet="flow")
    assert xlsx.series.equals(csv.series) and "read sheet 'flow'" in xlsx.notes[0]
    assert parse(path, "table", domain="hydro", sheet=2).series.equals(csv.series)
    with pytest.raises(ConfigError, match=r"no sheet 'daily'; it has \['notes', 'flow'\]"):
        parse(path, "table", domain="hydro", sheet="daily")


def test_market_table_is_the_table_parser_with_market_defaults() -> None:
    path = INGEST / "cny_per_usd_monthly_gbk_newest_first.csv"
    market = parse(path, "market_table", unique_id="cny", frequency="MS")
    table = parse(
        path,
        "table",
        value_columns={"收盘价": {"unique_id": "cny", "variable": "close"}},
        domain="market",
        frequency="MS",
        source="market data export",
        licence="terms of the data vendor",
    )
    assert table.series.equals(market.series) and table.meta.equals(market.meta) and table.notes == market.notes


def test_sopac_cleaned_neu_keeps_its_model_terms() -> None:
    assert detect_format(BJFS)[0] == "sio_neu"
    parsed = parse(BJFS, "sio_neu")
    assert sorted(parsed.meta.get_column("unique_id").to_list()) == ["bjfs_east", "bjfs_north", "bjfs_up"]
    north = parsed.series.filter(pl.col("unique_id") == "bjfs_north")
    assert north.height == 300 and north.get_column("ds")[0] == dt.datetime(1999, 10, 22)
    assert north.get_column("y")[1] == pytest.approx((0.0530 - 0.0537) * 1000)  # mm from the first epoch
    terms = {uid: json.loads(text) for uid, text in parsed.meta.select("unique_id", "attributes").iter_rows()}
    assert terms["bjfs_north"]["model_terms_header"] == "Refined Model Terms"
    slope = terms["bjfs_north"]["model_terms"][0]
    assert slope == {
        "term": "slope 1",
        "value": -0.0105,
        "sigma": 0.0002,
        "unit": "m/yr",
        "detail": "(1999.8068 - 2008.8374)",
    }
    annual_up = terms["bjfs_up"]["model_terms"][1]
    assert (annual_up["term"], annual_up["value"], annual_up["phase"]) == ("annual", 0.0092, 3.17)
    assert any("SOPAC 'Refined Model Terms' header" in n for n in parsed.notes)
    assert parse(BJFS, "sio_neu", station_id="bjfs_sopac").meta.get_column("unique_id")[0] == "bjfs_sopac_east"


def test_sopac_neu_without_a_station_code_asks_for_one(tmp_path: Path) -> None:
    renamed = tmp_path / "beijing.neu"
    renamed.write_bytes(BJFS.read_bytes())
    with pytest.raises(DataFormatError, match=r"no station line.*\n.*pass station_id="):
        parse(renamed, "sio_neu")
    assert parse(renamed, "sio_neu", station_id="bjfs").series.height == 900
    bare = tmp_path / "bare.neu"
    bare.write_text("".join(line + "\n" for line in BJFS.read_text().splitlines() if not line.startswith("#")))
    with pytest.raises(DataFormatError, match=r"neither a '#4-character ID:' header line .* nor a '# Refined Model"):
        parse(bare, "sio_neu")


def test_attributes_are_stored_and_read_back_and_old_files_gain_the_column(tmp_path: Path) -> None:
    parsed = parse(BJFS, "sio_neu")
    path = tmp_path / "v8.duckdb"
    with Warehouse.open(path, target_version=8) as wh:
        assert wh.schema_version() == 8
    with Warehouse.open(path) as wh:
        assert wh.schema_version() >= 9
        upsert_series(wh, parsed.meta, batch_id="b1")
        stored = read_series_meta(wh)
        assert stored.get_column("attributes").to_list() == parsed.meta.get_column("attributes").to_list()
        # A metadata frame without the column leaves the stored attributes alone.
        upsert_series(wh, parsed.meta.drop("attributes").with_columns(pl.lit("BJFS").alias("region")), batch_id="b2")
        again = read_series_meta(wh)
        assert again.get_column("attributes").to_list() == stored.get_column("attributes").to_list()
        assert set(again.get_column("region").to_list()) == {"BJFS"}
