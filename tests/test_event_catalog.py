"""``event_catalog``: any tabular earthquake catalog with a column map, on real catalogs
(tests/data/ingest, provenance in its README): the plain national layout, a Chinese-header
GBK export in Beijing time, the NEIC table with split date and time columns; the same events
and daily series as the ComCat path; detection; and errors that name the line, the column,
or the readings."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import ConfigError, DataFormatError
from core.settings import load_settings
from ingest.batches import ingest_file
from ingest.sources import detect_format, parse
from ingest.sources.catalogue import SEISMIC_REGIONS
from pipelines.cli.main import main
from warehouse import Warehouse
from warehouse.series import read_events, read_observations

ROOT = Path(__file__).resolve().parent.parent
COMCAT = ROOT / "data" / "seismic" / "usgs_comcat_eastasia_m4_2018_2023.csv"
INGEST = ROOT / "tests" / "data" / "ingest"
PLAIN = INGEST / "usgs_comcat_eastasia_2021_05_06_plain_layout.csv"
CHINESE_GBK = INGEST / "usgs_comcat_eastasia_2022_09_cn_header_gbk_beijing.csv"
NEIC = INGEST / "usgs_neic_significant_m55_2011q1_date_time.csv"
EASTASIA = SEISMIC_REGIONS["eastasia"]
SAME = {"event_id_prefix": "eastasia", "source": "USGS ANSS ComCat", "licence": "public domain (USGS)"}
NOW = dt.datetime(2026, 1, 15)


def _comcat_as_plain(target: Path) -> Path:
    """The ComCat file written in the plain layout, times as 'YYYY-MM-DD HH:MM:SS.fff' (UTC)."""
    comcat = pl.read_csv(COMCAT.read_bytes().decode("cp1252").encode(), infer_schema=False)
    comcat.select(
        pl.col("time").str.replace("T", " ").str.strip_suffix("Z").alias("Timestamp"),
        pl.col("mag").alias("Magnitude"),
        pl.col("latitude").alias("Latitude"),
        pl.col("longitude").alias("Longitude"),
        pl.col("depth").alias("Depth"),
    ).write_csv(target)
    return target


def _comcat_window(start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    events = parse(COMCAT, "usgs_catalog", regions=EASTASIA, **SAME).events
    assert events is not None
    return events.filter(pl.col("time").is_between(start, end, closed="left"))


def test_the_plain_layout_gives_the_events_and_daily_series_of_the_comcat_layout(tmp_path) -> None:
    plain = _comcat_as_plain(tmp_path / "eastasia_plain.csv")
    comcat = parse(COMCAT, "usgs_catalog", regions=EASTASIA, **SAME)
    mine = parse(plain, "event_catalog", regions=EASTASIA, **SAME)
    assert mine.events is not None and mine.events.height == 4828
    assert_frame_equal(mine.events, comcat.events)
    assert_frame_equal(mine.series, comcat.series)
    assert_frame_equal(mine.meta, comcat.meta)
    assert any("time <- 'Timestamp', magnitude <- 'Magnitude'" in n for n in mine.notes)


def test_plain_and_comcat_files_ingest_to_the_same_warehouse_rows(tmp_path) -> None:
    plain = _comcat_as_plain(tmp_path / "eastasia_plain.csv")
    stored = []
    for name, path, fmt in (("comcat", COMCAT, "usgs_catalog"), ("plain", plain, "event_catalog")):
        settings = load_settings(tmp_path / name, environ={})
        with Warehouse.open(settings.warehouse_path) as wh:
            options = {"regions": EASTASIA, **SAME}
            result = ingest_file(wh, settings, path, fmt, options=options, now=NOW)
            assert result.status == "committed" and result.events == 4828
            stored.append((read_events(wh), read_observations(wh)))
    assert_frame_equal(stored[0][0], stored[1][0])
    assert_frame_equal(stored[0][1], stored[1][1])
    assert stored[0][1].height > 5000


def test_bundled_national_layout_is_detected_and_matches_comcat() -> None:
    fmt, why = detect_format(PLAIN)
    assert fmt == "event_catalog"
    assert "time <- 'Timestamp', magnitude <- 'Magnitude', latitude <- 'Latitude'" in why
    parsed = parse(PLAIN, "event_catalog", regions=EASTASIA, **SAME)
    expected = _comcat_window(dt.datetime(2021, 5, 1), dt.datetime(2021, 7, 1))
    assert parsed.events is not None and parsed.events.height == 284
    assert_frame_equal(parsed.events, expected)
    maduo = parsed.events.sort("magnitude").tail(1)
    assert maduo.get_column("time").item() == dt.datetime(2021, 5, 21, 18, 4, 13, 565000)
    counts = parsed.series.filter(pl.col("unique_id") == "sichuan_yunnan_count")  # Yangbi M6.1 and its swarm
    assert counts.filter(pl.col("ds") == dt.datetime(2021, 5, 21)).get_column("y").item() >= 10


def test_chinese_header_gbk_catalog_in_beijing_time() -> None:
    fmt, why = detect_format(CHINESE_GBK)
    assert fmt == "event_catalog" and "time <- '发震时刻(UTC+8)'" in why and "mag_type <- '震级类型'" in why
    expected = _comcat_window(dt.datetime(2022, 9, 1), dt.datetime(2022, 10, 1))
    # the header's '(UTC+8)' gives the zone; an explicit IANA zone gives the same times (no DST in 2022)
    stated = parse(CHINESE_GBK, "event_catalog", regions=EASTASIA, **SAME)
    named = parse(CHINESE_GBK, "event_catalog", regions=EASTASIA, timezone="Asia/Shanghai", **SAME)
    assert stated.events is not None and named.events is not None
    assert_frame_equal(stated.events, expected)
    assert_frame_equal(named.events, expected)
    assert "decoded as gbk (the file is not valid UTF-8)" in stated.notes
    assert any("states its zone: read as +8" in n for n in stated.notes)
    assert "converted times from Asia/Shanghai to UTC" in named.notes
    luding = stated.events.filter((pl.col("magnitude") == 6.6) & (pl.col("time").dt.day() == 5))
    assert luding.get_column("time").item() == dt.datetime(2022, 9, 5, 4, 52, 19, 645000)  # 12:52 Beijing time
    assert "magnitude types in '震级类型': mb 118, mww 12, mwr 4" in stated.notes
    assert any("mix these magnitude types" in n for n in stated.notes)


def test_magnitude_types_are_kept_stated_or_refused() -> None:
    moment = parse(CHINESE_GBK, "event_catalog", regions=EASTASIA, mag_types=["MWW", "mwr"])
    assert moment.events is not None and moment.events.height == 16
    assert "kept 16 event(s) of magnitude type(s) ['mwr', 'mww']; dropped 118 of other types" in moment.notes
    with pytest.raises(ConfigError, match=r"no event has a magnitude type in mag_types=\['ML'\]") as info:
        parse(CHINESE_GBK, "event_catalog", mag_types=["ML"])
    assert "['mb', 'mww', 'mwr']" in str(info.value.fix)
    with pytest.raises(ConfigError, match="the file has a magnitude-type column '震级类型'"):
        parse(CHINESE_GBK, "event_catalog", mag_type="Mw")
    with pytest.raises(ConfigError, match="needs a magnitude-type column"):
        parse(PLAIN, "event_catalog", mag_types=["mb"])
    stated = parse(PLAIN, "event_catalog", mag_type="mb")
    assert "magnitudes are mb (stated by mag_type=)" in stated.notes


def test_split_date_and_time_columns_with_a_month_first_layout() -> None:
    fmt, why = detect_format(NEIC)
    assert fmt == "event_catalog" and "time <- 'Time', date <- 'Date'" in why
    # 01/02/2011 could be 1 February or 2 January: the parser will not guess
    with pytest.raises(DataFormatError, match=r"line 2, column 'Date\+Time': expected a date/time") as info:
        parse(NEIC, "event_catalog")
    assert "time_format=" in str(info.value.fix)
    parsed = parse(NEIC, "event_catalog", time_format="%m/%d/%Y %H:%M:%S", mag_types=["MWW", "MWC", "MW"])
    assert parsed.events is not None
    tohoku = parsed.events.sort("magnitude").tail(1)
    assert tohoku.get_column("time").item() == dt.datetime(2011, 3, 11, 5, 46, 24)
    assert (
        tohoku.get_column("event_id").item()
        == "usgs_neic_significant_m55_2011q1_date_time:OFFICIAL20110311054624120_30"
    )
    assert tohoku.get_column("depth_km").item() == 29.0
    assert any("event_id <- 'ID'" in n for n in parsed.notes)


def test_synonyms_map_each_role_and_say_so(tmp_path) -> None:
    rows = pl.read_csv(PLAIN).head(20)
    layouts = {
        "datetime,mag,lat,long,depth_km": ["datetime", "mag", "lat", "long", "depth_km"],
        "Origin Time,Mw,LATITUDE,lng,z": ["Origin Time", "Mw", "LATITUDE", "lng", "z"],
        "发震时刻,震级,纬度,经度,深度": ["发震时刻", "震级", "纬度", "经度", "深度"],
    }
    reference = parse(PLAIN, "event_catalog", event_id_prefix="t").events
    assert reference is not None
    for header, names in layouts.items():
        path = tmp_path / "synonyms.csv"
        rows.rename(dict(zip(rows.columns, names, strict=True))).write_csv(path)
        parsed = parse(path, "event_catalog", event_id_prefix="t")
        assert parsed.events is not None and parsed.events.height == 20, header
        assert_frame_equal(parsed.events.drop("source"), reference.tail(20).drop("source"))
        note = next(n for n in parsed.notes if n.startswith("mapped columns"))
        assert f"time <- '{names[0]}', magnitude <- '{names[1]}'" in note and f"depth <- '{names[4]}'" in note
        assert detect_format(path)[0] == "event_catalog"
    mw = parse(tmp_path / "synonyms.csv", "event_catalog").notes  # the last layout: 震级
    assert not any(n.startswith("magnitudes are") for n in mw)


def test_an_ambiguous_header_stops_with_every_reading_and_the_fix(tmp_path) -> None:
    path = tmp_path / "kandilli_like.csv"
    rows = pl.read_csv(PLAIN).head(5)
    rows.select(
        pl.col("Timestamp").alias("Date Time"),
        pl.col("Latitude").alias("Lat"),
        pl.col("Longitude").alias("Lon"),
        pl.col("Depth"),
        pl.col("Magnitude").alias("ML"),
        (pl.col("Magnitude") + 0.2).alias("Mw"),
    ).write_csv(path)
    assert detect_format(path)[0] == "event_catalog"
    with pytest.raises(ConfigError, match=r"the header can be read 2 ways \(they differ in magnitude\)") as info:
        parse(path, "event_catalog")
    assert "(1) time <- 'Date Time', magnitude <- 'ML'" in str(info.value)
    assert "(2) time <- 'Date Time', magnitude <- 'Mw'" in str(info.value)
    assert (
        info.value.fix == "say which column plays each of those roles with columns=, e.g. columns={'magnitude': 'ML'}"
    )
    chosen = parse(path, "event_catalog", columns={"magnitude": "Mw"})
    assert chosen.events is not None and chosen.events.get_column("magnitude").max() == pytest.approx(5.0 + 0.2)
    assert "magnitudes are Mw (stated by the column name 'Mw')" in chosen.notes
    assert any(n.startswith("mapped columns (1 from columns=, the rest from the header)") for n in chosen.notes)
    with pytest.raises(ConfigError, match=r"columns= names \['Magnitude'\], which the file does not have"):
        parse(path, "event_catalog", columns={"magnitude": "Magnitude"})
    with pytest.raises(ConfigError, match=r"unknown role\(s\) \['mag'\]"):
        parse(path, "event_catalog", columns={"mag": "ML"})
    missing = tmp_path / "no_magnitude.csv"
    rows.select("Timestamp", "Latitude", "Longitude", pl.col("Magnitude").alias("Size")).write_csv(missing)
    with pytest.raises(DataFormatError, match=r"has no column for magnitude that event_catalog recognises") as info:
        parse(missing, "event_catalog")
    assert "columns=" in str(info.value.fix)


def test_time_zones_convert_to_naive_utc_across_summer_time(tmp_path) -> None:
    rows = pl.read_csv(PLAIN, infer_schema=False).head(3)
    path = tmp_path / "local.csv"
    # 1988-07-01 12:00 in China fell inside its 1986-1991 summer time (UTC+9); January did not
    rows.with_columns(
        pl.Series("Timestamp", ["1988-07-01 12:00:00", "1988-01-01 12:00:00", "2021-05-21 12:00:00"])
    ).write_csv(path)
    shanghai = parse(path, "event_catalog", timezone="Asia/Shanghai").events
    fixed = parse(path, "event_catalog", timezone="+08:00").events
    assert shanghai is not None and fixed is not None
    assert shanghai.get_column("time").to_list() == [
        dt.datetime(1988, 1, 1, 4),
        dt.datetime(1988, 7, 1, 3),
        dt.datetime(2021, 5, 21, 4),
    ]
    assert fixed.get_column("time").to_list()[1] == dt.datetime(1988, 7, 1, 4)
    with pytest.raises(ConfigError, match="unknown time zone 'Asia/Shangai'"):
        parse(path, "event_catalog", timezone="Asia/Shangai")
    gap = tmp_path / "gap.csv"  # 2021-03-14 02:30 does not exist in New York (clocks jumped 02:00 -> 03:00)
    rows.with_columns(
        pl.Series("Timestamp", ["2021-03-13 02:30:00", "2021-03-14 02:30:00", "2021-03-15 02:30:00"])
    ).write_csv(gap)
    with pytest.raises(
        DataFormatError,
        match=r"line 3, column 'Timestamp': 2021-03-14 02:30:00 does not exist or happens twice in America/New_York",
    ):
        parse(gap, "event_catalog", timezone="America/New_York")
    own = tmp_path / "offsets.csv"  # values with their own offset keep it; the option applies to the rest
    rows.with_columns(
        pl.Series("Timestamp", ["2021-05-21T18:04:13Z", "2021-05-22 02:04:13+08:00", "2021-05-22 02:04:13"])
    ).write_csv(own)
    mixed = parse(own, "event_catalog", timezone="Asia/Shanghai")
    assert mixed.events is not None
    assert mixed.events.get_column("time").to_list() == [dt.datetime(2021, 5, 21, 18, 4, 13)] * 3
    assert (
        "2 time(s) carry their own offset ('Z' or +hh:mm) and were converted by it; "
        "timezone 'Asia/Shanghai' applies to the other 1" in mixed.notes
    )


def test_parquet_and_excel_catalogs(tmp_path) -> None:
    frame = pl.read_csv(CHINESE_GBK.read_bytes().decode("gbk").encode(), infer_schema_length=0).with_columns(
        pl.col("发震时刻(UTC+8)").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us"),
        pl.col("震级(M)", "纬度(°)", "经度(°)", "深度(千米)").cast(pl.Float64),
    )
    expected = _comcat_window(dt.datetime(2022, 9, 1), dt.datetime(2022, 10, 1))
    parquet = tmp_path / "catalog.parquet"
    frame.write_parquet(parquet)
    assert detect_format(parquet)[0] == "event_catalog"
    parsed = parse(parquet, "event_catalog", regions=EASTASIA, **SAME)
    assert parsed.events is not None and "read as Parquet (row numbers count data rows)" in parsed.notes
    assert_frame_equal(parsed.events, expected)
    pytest.importorskip("xlsxwriter")
    pytest.importorskip("fastexcel")
    workbook = tmp_path / "catalog.xlsx"
    frame.write_excel(workbook, worksheet="events")
    from_excel = parse(workbook, "event_catalog", regions=EASTASIA, sheet="events", **SAME)
    assert from_excel.events is not None and "read sheet 'events' of the Excel workbook" in from_excel.notes
    assert_frame_equal(from_excel.events, expected)


def test_bad_values_name_the_line_and_the_column(tmp_path) -> None:
    lines = PLAIN.read_text().splitlines()
    fields = lines[7].split(",")
    lines[7] = ",".join([fields[0], "4.5ML", *fields[2:]])
    path = tmp_path / "bad_magnitude.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataFormatError, match=r"bad_magnitude\.csv: line 8, column 'Magnitude': expected a finite number, got '4\.5ML'"
    ):
        parse(path, "event_catalog")
    lines = PLAIN.read_text().splitlines()
    lines[3] = "2021-06-29 25:61:00" + lines[3][len("2021-06-29 19:24:35.052") :]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"line 4, column 'Timestamp': expected a date/time"):
        parse(path, "event_catalog")


def test_cli_ingests_the_plain_layout_without_format(tmp_path, capsys) -> None:
    code = main(["--home", str(tmp_path), "ingest", "file", str(PLAIN), "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "committed" and out["events"] == 284
    assert out["detected"].startswith("detected format 'event_catalog' (a header that reads as an earthquake catalog")
    assert any(n.startswith("mapped columns (from the header): time <- 'Timestamp'") for n in out["notes"])
    code = main(
        [
            "--home", str(tmp_path), "ingest", "file", str(CHINESE_GBK), "--format", "event_catalog",
            "--option", "timezone=Asia/Shanghai", "--option", 'mag_types=["mww", "mwr"]', "--json", "--quiet",
        ]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["events"] == 16
