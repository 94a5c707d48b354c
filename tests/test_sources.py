"""Source parsers on the bundled real files (data/, provenance in data/PROVENANCE.md).

Each test asserts behaviour a user relies on: row counts match the file, units are converted,
known real events show up where they happened, and broken files fail with a message that
names the problem.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError, DataFormatError
from core.frames import SERIES_META_COLUMNS, Domain
from ingest.sources import PARSERS, Parsed, bundled_catalogue, parse
from ingest.sources.catalogue import SEISMIC_REGIONS, SST_REGIONS
from ingest.sources.hydro import CFS_TO_CMS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def _bundled(relative_path: str) -> Parsed:
    entry = next(e for e in bundled_catalogue(DATA) if e.relative_path == relative_path)
    return parse(DATA / entry.relative_path, entry.format, **entry.options)


def _one(parsed: Parsed, unique_id: str) -> pl.DataFrame:
    return parsed.series.filter(pl.col("unique_id") == unique_id)


@pytest.fixture(scope="module")
def japan() -> Parsed:
    return _bundled("seismic/usgs_comcat_japan_2005_2014_processed.csv")


@pytest.fixture(scope="module")
def sst() -> Parsed:
    return _bundled("satellite/noaa_ersstv5_sst_monthly_2010_2020.nc")


@pytest.fixture(scope="module")
def catalogue_parsed() -> list[tuple[str, Parsed]]:
    return [(e.relative_path, parse(DATA / e.relative_path, e.format, **e.options)) for e in bundled_catalogue(DATA)]


# --- markets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fred_T10Y2Y", "fred_DGS10", "fred_UNRATE", "fred_STLFSI4"])
def test_fred_rows_match_non_blank_lines(name: str) -> None:
    path = DATA / "market" / f"{name}.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    non_blank = [r for r in rows if r["value"] not in ("", ".")]
    parsed = _bundled(f"market/{name}.csv")
    assert parsed.series.height == len(non_blank)
    assert parsed.series.get_column("ds").max() == dt.datetime.fromisoformat(non_blank[-1]["date"])
    if len(non_blank) < len(rows):
        assert f"dropped {len(rows) - len(non_blank)} blank" in " ".join(parsed.notes)


def test_fred_weekly_series_is_stamped_on_fridays_and_refuses_a_wrong_frequency() -> None:
    parsed = _bundled("market/fred_STLFSI4.csv")
    assert parsed.meta.get_column("frequency").to_list() == ["W-FRI"]
    assert set(parsed.series.get_column("ds").dt.weekday().to_list()) == {5}
    with pytest.raises(DataFormatError, match=r"declared 'MS' but has \d+ timestamp"):
        parse(DATA / "market/fred_STLFSI4.csv", "fred_csv", unique_id="stlfsi4", frequency="MS")


def test_fred_daily_frequency_is_inferred_when_not_given() -> None:
    parsed = parse(DATA / "market/fred_DGS10.csv", "fred_csv", unique_id="dgs10")
    assert parsed.meta.get_column("frequency").item() == "B"
    assert any("inferred" in note for note in parsed.notes)


def test_china_exchange_rate_is_selected_from_the_long_table() -> None:
    parsed = _bundled("market/fred_exchange_rates_china_monthly.csv")
    series = parsed.series
    assert series.height == 546
    assert series.get_column("ds").min() == dt.datetime(1981, 1, 1)
    # The 1994 unification devalued the official rate from about 5.8 to about 8.7 CNY per USD.
    jump = series.filter(pl.col("ds").is_between(dt.datetime(1993, 12, 1), dt.datetime(1994, 1, 1)))
    assert jump.get_column("y").to_list()[1] - jump.get_column("y").to_list()[0] > 2.5
    with pytest.raises(DataFormatError, match="no rows for country 'Atlantis'"):
        parse(DATA / "market/fred_exchange_rates_china_monthly.csv", "fred_long_fx", country="Atlantis")


MAJOR_FX = {
    "Japan": "jpy_per_usd",
    "United Kingdom": "gbp_per_usd",
    "Euro": "eur_per_usd",
    "Canada": "cad_per_usd",
    "Switzerland": "chf_per_usd",
}


def test_major_exchange_rates_are_the_cut_rows_quoted_per_us_dollar() -> None:
    relative = "market/fred_exchange_rates_major_monthly.csv"
    with (DATA / relative).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["Country"] for r in rows} == set(MAJOR_FX)
    entries = [e for e in bundled_catalogue(DATA) if e.relative_path == relative]
    assert {e.options["country"]: e.options["unique_id"] for e in entries} == MAJOR_FX
    for entry in entries:
        parsed = parse(DATA / relative, entry.format, **entry.options)
        mine = [r for r in rows if r["Country"] == entry.options["country"]]
        series = parsed.series
        assert series.height == len(mine) and parsed.meta.get_column("frequency").item() == "MS"
        assert series.get_column("y").to_list() == [float(r["Exchange rate"]) for r in mine]
        currency = entry.options["unique_id"].split("_")[0].upper()
        assert parsed.meta.get_column("unit").item() == f"{currency} per USD"
    by_uid = {e.options["unique_id"]: parse(DATA / relative, e.format, **e.options).series for e in entries}

    def extreme(uid: str) -> dt.datetime:
        return by_uid[uid].sort("y").tail(1).get_column("ds").item()

    # Units per dollar for every currency (datahub inverts FRED's USD-per-pound and USD-per-euro
    # quotes): the most pounds per dollar at sterling's 1985 low, the most euros at the euro's
    # October 2000 low, about 358 yen under the last Bretton Woods months.
    assert extreme("gbp_per_usd") == dt.datetime(1985, 2, 1)
    assert extreme("eur_per_usd") == dt.datetime(2000, 10, 1)
    assert by_uid["jpy_per_usd"].get_column("y")[0] == pytest.approx(358.02)
    assert by_uid["eur_per_usd"].get_column("ds").min() == dt.datetime(1999, 1, 1)


def test_shiller_sp500_loads_the_price_column_only_as_monthly_index_points() -> None:
    relative = "market/sp500_shiller_monthly_1871_2026.csv"
    with (DATA / relative).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    parsed = _bundled(relative)
    series = parsed.series
    assert series.get_column("unique_id").unique().to_list() == ["sp500_monthly"]
    assert series.height == len(rows) == 1866
    assert series.get_column("y").to_list() == [float(r["SP500"]) for r in rows]
    assert (series.get_column("ds").min(), series.get_column("ds").max()) == (
        dt.datetime(1871, 1, 1),
        dt.datetime(2026, 6, 1),
    )
    meta = parsed.meta.row(0, named=True)
    assert (meta["frequency"], meta["unit"], meta["region"], meta["lower_bound"]) == ("MS", "index points", "US", 0.0)
    # the months appended from FRED carry zeros in every other column; the price is still there
    assert rows[-1]["Dividend"] == "0.0" and float(rows[-1]["SP500"]) > 1000
    crash = series.filter(pl.col("ds").dt.year().is_between(1925, 1935)).sort("y")
    assert crash.get_column("ds")[-1] == dt.datetime(1929, 9, 1)  # the monthly-average top before the crash
    assert crash.get_column("ds")[0] == dt.datetime(1932, 6, 1)  # and the Depression low


# --- seismic -------------------------------------------------------------------------------


def test_tohoku_daily_count_peaks_on_the_day_of_the_m9(japan: Parsed) -> None:
    counts = _one(japan, "tohoku_count")
    peak = counts.sort("y").tail(1)
    assert peak.get_column("ds").item() == dt.datetime(2011, 3, 11)
    assert _one(japan, "japan_count").filter(pl.col("ds") == dt.datetime(2011, 3, 11)).get_column("y").item() == 539
    assert _one(japan, "tohoku_max_mag").sort("y").tail(1).get_column("y").item() == pytest.approx(9.1)


def test_count_series_is_zero_filled_over_the_whole_catalog_calendar(japan: Parsed) -> None:
    counts = _one(japan, "tohoku_count")
    assert counts.height == (dt.date(2014, 12, 31) - dt.date(2005, 1, 1)).days + 1
    assert counts.filter(pl.col("y") == 0).height > 1000
    # max magnitude and energy exist only on days with events
    assert _one(japan, "tohoku_max_mag").height == counts.filter(pl.col("y") > 0).height


def test_usgs_japan_times_are_utc(japan: Parsed) -> None:
    assert japan.events is not None
    mainshock = japan.events.sort("magnitude").tail(1)
    # USGS: 2011-03-11 05:46:24 UTC (14:46 JST).
    assert mainshock.get_column("time").item() == dt.datetime(2011, 3, 11, 5, 46, 24, 120000)
    assert japan.events.schema["time"] == pl.Datetime("us")
    assert japan.events.get_column("depth_km").null_count() == japan.events.height


def test_energy_follows_gutenberg_richter(japan: Parsed) -> None:
    energy = _one(japan, "japan_energy").filter(pl.col("ds") == dt.datetime(2011, 3, 11)).get_column("y").item()
    # The M9.1 alone gives 1.5 * 9.1 + 4.8 = 18.45; the day's aftershocks add a little.
    assert 18.45 <= energy < 18.5


def test_eastasia_comcat_subset_reads_cp1252_crlf_and_iso_z_times() -> None:
    parsed = _bundled("seismic/usgs_comcat_eastasia_m4_2018_2023.csv")
    assert parsed.events is not None and parsed.events.height == 4828
    assert any("cp1252" in note for note in parsed.notes)
    largest = parsed.events.sort("magnitude").tail(1)  # 2021 Maduo, Qinghai
    assert largest.get_column("time").item() == dt.datetime(2021, 5, 21, 18, 4, 13, 565000)
    assert largest.get_column("magnitude").item() == pytest.approx(7.3)
    assert parsed.events.get_column("event_id").is_unique().all()
    meta = parsed.meta.filter(pl.col("unique_id") == "sichuan_yunnan_count")
    assert (meta.get_column("lat").item(), meta.get_column("lon").item()) == (27.5, 101.5)


def _write_catalog(path: Path, rows: list[str]) -> Path:
    path.write_text("time,latitude,longitude,depth,mag\n" + "\n".join(rows) + "\n")
    return path


def test_catalog_drops_exact_duplicates_and_shifts_local_time(tmp_path: Path) -> None:
    path = _write_catalog(
        tmp_path / "cat.csv",
        [
            "2008-05-12 14:28:04,31.0,103.4,14,8.0",
            "2008-05-12 14:28:04,31.0,103.4,14,8.0",
            "2008-05-13 01:00:00,31.2,103.5,,5.0",
        ],
    )
    region = [{"id": "wenchuan", "name": "Wenchuan", "min_lat": 30, "max_lat": 32, "min_lon": 102, "max_lon": 105}]
    parsed = parse(path, "usgs_catalog", regions=region, utc_offset_hours=8)
    assert parsed.events is not None and parsed.events.height == 2
    assert any("dropped 1 duplicated" in note for note in parsed.notes)
    assert any("to UTC" in note for note in parsed.notes)
    # Beijing 14:28 is 06:28 UTC; the 01:00 local event falls on the previous UTC day.
    assert parsed.events.get_column("time").to_list() == [
        dt.datetime(2008, 5, 12, 6, 28, 4),
        dt.datetime(2008, 5, 12, 17),
    ]
    counts = _one(parsed, "wenchuan_count")
    assert counts.get_column("y").to_list() == [2.0]
    energy = _one(parsed, "wenchuan_energy").get_column("y").item()
    assert energy == pytest.approx(math.log10(10 ** (1.5 * 8.0 + 4.8) + 10 ** (1.5 * 5.0 + 4.8)))
    assert parsed.events.get_column("depth_km").to_list() == [14.0, None]


# --- geodetic ------------------------------------------------------------------------------


def test_pbo_p156_gives_three_equal_series_in_mm_from_the_first_epoch() -> None:
    parsed = _bundled("geodetic/gnss_P156_pbo_california_2006_2015.pos")
    ids = ["p156_east", "p156_north", "p156_up"]
    assert sorted(parsed.meta.get_column("unique_id").to_list()) == ids
    lengths = {uid: _one(parsed, uid).height for uid in ids}
    assert set(lengths.values()) == {3196}
    assert set(parsed.meta.get_column("unit").to_list()) == {"mm"}
    for uid in ids:
        assert _one(parsed, uid).get_column("y")[0] == 0.0
    # First dE 0.06265 m and last -0.21577 m: about 278 mm of westward motion in 8.8 years.
    assert _one(parsed, "p156_east").get_column("y")[-1] == pytest.approx((-0.21577 - 0.06265) * 1000)
    assert parsed.meta.get_column("lon")[0] == pytest.approx(-123.9061, abs=1e-4)
    assert parsed.meta.get_column("lat")[0] == pytest.approx(40.0244, abs=1e-4)


# --- hydro ---------------------------------------------------------------------------------


def test_nwis_rdb_converts_cfs_to_cubic_metres() -> None:
    parsed = _bundled("hydro/usgs_nwis_rdb_02177000_chattooga_2012.rdb")
    series = parsed.series
    assert series.get_column("unique_id").unique().to_list() == ["usgs_02177000_discharge"]
    assert series.height == 31
    # The file's first value is 191 ft³/s, the peak 1470 ft³/s on 2012-09-18.
    assert series.get_column("y")[0] == pytest.approx(191 * 0.0283168466)
    peak = series.sort("y").tail(1)
    assert peak.get_column("ds").item() == dt.datetime(2012, 9, 18)
    assert peak.get_column("y").item() == pytest.approx(1470 * CFS_TO_CMS)
    assert any("ft³/s to m³/s" in note for note in parsed.notes)
    assert parsed.meta.get_column("unit").item() == "m3/s"
    assert "CHATTOOGA" in parsed.meta.get_column("name").item()


def test_choptank_daily_flow_has_every_day_of_water_years_2000_to_2011() -> None:
    parsed = _bundled("hydro/usgs_01491000_choptank_daily_flow_cms.txt")
    series = parsed.series
    assert series.height == 4383 == (dt.date(2011, 9, 30) - dt.date(1999, 10, 1)).days + 1
    assert series.get_column("y").min() > 0
    meta = parsed.meta
    assert (meta.get_column("lat").item(), meta.get_column("lon").item()) == (38.997, -75.786)


def test_ayukawa_tide_gauge_shows_tohoku_subsidence() -> None:
    parsed = _bundled("hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata")
    series = parsed.series.with_columns(pl.col("ds").dt.year().alias("year"))
    yearly = dict(series.group_by("year").agg(pl.col("y").mean()).iter_rows())
    # The gauge has no data from 2011-03 to 2012-12; the land sank about 0.8 m, so the
    # relative sea level of 2013 sits far above that of 2010.
    assert 2012 not in yearly
    assert yearly[2013] - yearly[2010] > 500
    assert any("dropped 56 missing" in note for note in parsed.notes)
    assert any("flag 001" in note for note in parsed.notes)


def test_psmsl_decimal_years_map_to_month_starts() -> None:
    ayukawa = _bundled("hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata").series
    assert ayukawa.get_column("ds")[0] == dt.datetime(1958, 2, 1)  # 1958.1250 = February
    assert ayukawa.get_column("ds")[-1] == dt.datetime(2020, 12, 1)  # 2020.9583 = December
    new_york = _bundled("hydro/psmsl_rlr_monthly_012_new_york_battery.rlrdata").series
    assert new_york.height == 1980 - 190
    assert new_york.get_column("ds")[0] == dt.datetime(1856, 1, 1)
    assert set(new_york.get_column("ds").dt.day().to_list()) == {1}


# --- satellite -----------------------------------------------------------------------------


def test_nino34_mean_is_tropical_and_peaks_in_the_2015_16_el_nino(sst: Parsed) -> None:
    nino = _one(sst, "nino34_mean")
    assert nino.height == 128
    assert nino.get_column("y").min() > 24 and nino.get_column("y").max() < 30
    peak = nino.sort("y").tail(1).get_column("ds").item()
    assert dt.datetime(2015, 10, 1) <= peak <= dt.datetime(2016, 2, 1)
    assert (_one(sst, "nino34_max").get_column("y") >= nino.get_column("y")).all()
    assert sst.meta.filter(pl.col("unique_id") == "nino34_mean").get_column("unit").item() == "degC"


def test_netcdf_regions_accept_either_longitude_convention(sst: Parsed) -> None:
    west = [{"id": "nino34_w", "name": "Nino 3.4", "min_lat": -5, "max_lat": 5, "min_lon": -170, "max_lon": -120}]
    other = parse(DATA / "satellite/noaa_ersstv5_sst_monthly_2010_2020.nc", "netcdf_region", regions=west)
    assert other.series.get_column("y").to_list()[:128] == _one(sst, "nino34_max").get_column("y").to_list()
    assert _one(other, "nino34_w_mean").get_column("y").to_list() == _one(sst, "nino34_mean").get_column("y").to_list()
    assert other.meta.get_column("lon")[0] == pytest.approx(-145.0)


def test_arctic_sea_ice_extent_reaches_its_record_low_in_september_2012() -> None:
    parsed = _bundled("satellite/nsidc_seaice_extent_north_daily_2000_2022.csv")
    series = parsed.series
    assert series.height == 8070
    low = series.sort("y").head(1)
    assert low.get_column("ds").item() == dt.datetime(2012, 9, 16)
    assert 3.0 < low.get_column("y").item() < 3.5
    assert parsed.meta.get_column("frequency").item() == "D"


# --- catalogue -----------------------------------------------------------------------------


def test_bundled_catalogue_covers_every_domain_and_file(catalogue_parsed: list[tuple[str, Parsed]]) -> None:
    entries = bundled_catalogue(DATA)
    assert all((DATA / e.relative_path).is_file() for e in entries)
    assert all(e.format in PARSERS for e in entries)
    # every series file is loaded; events/ holds label sets for evaluation, security/ the
    # injection screen's training set and nab/ two hourly series for the hourly global model's
    # test (taxi counts, a machine room's temperature): not indicators
    bundled = {
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.is_file()
        and p.name != "PROVENANCE.md"
        and p.relative_to(DATA).parts[0] not in ("events", "security", "nab")
    }
    assert bundled == {e.relative_path for e in entries}
    meta = pl.concat([parsed.meta for _, parsed in catalogue_parsed])
    assert set(meta.get_column("domain").to_list()) == {d.value for d in Domain}
    assert meta.get_column("unique_id").is_unique().all()
    assert meta.get_column("unique_id").str.contains(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$").all()
    assert set(meta.get_column("classification").to_list()) == {"public"}
    assert meta.columns == list(SERIES_META_COLUMNS)
    market = dict(meta.filter(pl.col("domain") == "market").select("unique_id", "frequency").iter_rows())
    assert market == {
        "stlfsi4": "W-FRI",
        "t10y2y": "B",
        "dgs10": "B",
        "unrate": "MS",
        "cpiaucsl": "MS",
        "cny_per_usd": "MS",
        "jpy_per_usd": "MS",
        "gbp_per_usd": "MS",
        "eur_per_usd": "MS",
        "cad_per_usd": "MS",
        "chf_per_usd": "MS",
        "sp500_monthly": "MS",
    }


def test_bundled_series_carry_the_physical_bounds_of_their_variable(catalogue_parsed: list[tuple[str, Parsed]]) -> None:
    meta = pl.concat([parsed.meta for _, parsed in catalogue_parsed])
    bounds = {uid: (low, high) for uid, low, high in meta.select("unique_id", "lower_bound", "upper_bound").iter_rows()}
    non_negative = {
        "usgs_01491000_discharge",
        "usgs_02177000_discharge",
        "cpiaucsl",
        "cny_per_usd",
        "jpy_per_usd",
        "gbp_per_usd",
        "eur_per_usd",
        "cad_per_usd",
        "chf_per_usd",
        "sp500_monthly",  # an index level, bounded by its catalogue entry
        "arctic_sea_ice_extent",
        "tohoku_count",
        "japan_count",
        "sichuan_yunnan_count",
        "eastasia_count",
    }
    assert {uid for uid, b in bounds.items() if b == (0.0, None)} == non_negative
    assert bounds["unrate"] == (0.0, 100.0)  # percent
    # rates and spreads go negative; sea level, GNSS, magnitudes, energy and SST stay as they are
    unbounded = set(bounds) - non_negative - {"unrate"}
    assert {
        "dgs10",
        "t10y2y",
        "stlfsi4",
        "psmsl_131_ayukawa",
        "p156_up",
        "tohoku_max_mag",
        "japan_energy",
        "nino34_mean",
    } <= unbounded
    assert all(bounds[uid] == (None, None) for uid in unbounded)


def test_catalogue_regions_are_the_documented_boxes() -> None:
    assert [r["id"] for r in SEISMIC_REGIONS["japan"]] == ["tohoku", "japan"]
    assert [r["id"] for r in SEISMIC_REGIONS["eastasia"]] == ["sichuan_yunnan", "eastasia"]
    assert [r["id"] for r in SST_REGIONS] == ["nino34", "south_china_sea"]


def test_catalogue_refuses_a_directory_without_the_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lacks bundled file"):
        bundled_catalogue(tmp_path)


def test_parse_rejects_unknown_formats_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown source format 'xlsx'"):
        parse(DATA / "market/fred_DGS10.csv", "xlsx")
    with pytest.raises(ConfigError, match="options of 'fred_csv' are"):
        parse(DATA / "market/fred_DGS10.csv", "fred_csv", colour="red")


def test_sources_import_only_core_and_libraries() -> None:
    forbidden = {"warehouse", "dashboards", "forecasting", "anomaly", "alerts"}
    for module in (ROOT / "pipelines" / "sources").glob("*.py"):
        tree = ast.parse(module.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        roots = {name.split(".")[0] for name in names}
        assert not roots & forbidden, f"{module.name} imports {roots & forbidden}"
        inside = {name for name in names if name.startswith("pipelines.")}
        assert all(name.startswith("ingest.sources") for name in inside), f"{module.name} imports {inside}"


# --- malformed input -----------------------------------------------------------------------

_SEISMIC_REGION = [{"id": "box", "name": "Box", "min_lat": 0, "max_lat": 50, "min_lon": 100, "max_lon": 150}]

_OPTIONS: dict[str, dict[str, object]] = {
    "fred_csv": {"unique_id": "x", "frequency": "B"},
    "fred_long_fx": {"country": "China"},
    "usgs_catalog": {"regions": _SEISMIC_REGION},
    "pbo_pos": {},
    "usgs_daily_flow": {},
    "nwis_rdb": {},
    "psmsl_monthly": {},
    "netcdf_region": {"regions": SST_REGIONS},
    "nsidc_extent": {},
    "fred_multi": {},
    "fred_json": {"unique_id": "x"},
    "market_table": {"unique_id": "x"},
    "cenc_catalog": {"regions": _SEISMIC_REGION},
    "event_catalog": {"regions": _SEISMIC_REGION},
    "ngl_tenv3": {},
    "sio_neu": {},
    "nasa_power_json": {"site_id": "x"},
    "usgs_water_json": {},
    "table": {"domain": "hydro"},
    "quakeml": {},
    "fdsn_text": {},
}


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_every_parser_refuses_an_empty_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "empty.dat"
    path.write_text("")
    with pytest.raises(DataFormatError, match=r"empty\.dat: .*(empty|cannot be opened)"):
        parse(path, fmt, **_OPTIONS[fmt])


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("fred_csv", "day,price\n2020-01-02,1.5\n", r"lacks column\(s\) 'date' and 'value'"),
        ("fred_long_fx", "Date,Nation,Exchange rate\n2020-01-01,China,7.0\n", r"lacks column\(s\) \['Country'\]"),
        (
            "usgs_catalog",
            "time,latitude,longitude,depth\n2020-01-01T00:00:00Z,30,110,10\n",
            r"lacks column\(s\) \['mag or magnitude'\]",
        ),
        ("usgs_daily_flow", "date\tflow\n1/1/2000\t3.2\n", r"lacks column\(s\) \['Qdaily'\]"),
        ("nwis_rdb", "# c\nagency_cd\tsite_no\tdatetime\n5s\t15s\t20d\nUSGS\t1\t2012-09-01\n", r"one '\*_00060_00003'"),
        (
            "nsidc_extent",
            "Year, Month, Day, Size\nYYYY, MM, DD, 10^6 sq km\n2000, 01, 01, 13.4\n",
            r"lacks column\(s\) \['Extent'\]",
        ),
    ],
)
def test_missing_columns_are_named(tmp_path: Path, fmt: str, content: str, message: str) -> None:
    path = tmp_path / "broken.txt"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message):
        parse(path, fmt, **_OPTIONS[fmt])


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        (
            "fred_csv",
            "date,value\n2020-01-02,1.5\n2020-01-03,abc\n",
            r"line 3, column 'value': expected a finite number, got 'abc'",
        ),
        ("fred_csv", "date,value\n2020-01-02,1.5\n2020-13-03,1.7\n", r"line 3, column 'date': expected a date"),
        ("fred_csv", "date,value\n2020-01-02,1.5\n2020-01-02,1.7\n", r"series 'x' has 2 values at 2020-01-02 00:00:00"),
        (
            "fred_long_fx",
            "Date,Country,Exchange rate\n2020-01-01,China,7.0\n2020-02-01,China,n/a\n",
            r"line 3, column 'Exchange rate'",
        ),
        (
            "usgs_catalog",
            "time,latitude,longitude,mag\n2020-01-01T00:00:00Z,30,110,4.1\n2020-01-02 noon,30,110,4.0\n",
            r"line 3, column 'time'",
        ),
        ("usgs_catalog", "time,latitude,longitude,mag\n2020-01-01T00:00:00Z,30,110,big\n", r"line 2, column 'mag'"),
        (
            "usgs_catalog",
            "time,latitude,longitude,mag\n2020-01-01T00:00:00Z,130,110,4.0\n",
            r"line 2, column 'latitude': 130.0 is outside",
        ),
        ("usgs_daily_flow", "date\tQdaily\n1/1/2000\t3.2\n1/2/2000\tlots\n", r"line 3, column 'Qdaily'"),
        (
            "nwis_rdb",
            "# c\nsite_no\tdatetime\t01_00060_00003\n15s\t20d\t14n\n1\t2012-09-01\t12.5\n1\t2012-09-02\tabc\n",
            r"line 5, column '01_00060_00003'",
        ),
        (
            "nwis_rdb",
            "# c\nsite_no\tdatetime\t01_00060_00003\n1\t2012-09-01\t12\n",
            r"line 3: expected the RDB format row",
        ),
        ("psmsl_monthly", "  1958.1250;  6807;99;000\n  1958.2083;  x;0;000\n", r"line 2, column 'mean sea level mm"),
        (
            "psmsl_monthly",
            "  1958.1000;  6807;0;000\n",
            r"line 1, field 1: decimal year 1958.1 is not a month mid-point",
        ),
        (
            "psmsl_monthly",
            "  1958.1250;  6807;0;000\n  1958.2083;  6807;0\n",
            r"line 2: expected 4 ';'-separated fields",
        ),
        (
            "nsidc_extent",
            "Year, Month, Day, Extent\nYYYY, MM, DD, 10^6 sq km\n2000, 01, 01, 13.4\n2000, 02, 30, 13.5\n",
            r"line 4, column 'Year, Month, Day'",
        ),
        ("nsidc_extent", "Year, Month, Day, Extent\n2000, 01, 01, 13.4\n", r"line 2: expected the units line"),
        ("netcdf_region", "this is not netcdf\n", r"cannot be opened as NetCDF"),
    ],
)
def test_bad_values_name_the_line_and_column(tmp_path: Path, fmt: str, content: str, message: str) -> None:
    path = tmp_path / "broken.txt"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message) as info:
        parse(path, fmt, **_OPTIONS[fmt])
    assert info.value.fix, "every DataFormatError carries a fix"
    assert str(info.value).startswith("broken.txt: ")


def test_pbo_pos_refuses_truncated_rows_and_missing_header(tmp_path: Path) -> None:
    source = (DATA / "geodetic/gnss_P156_pbo_california_2006_2015.pos").read_text().splitlines()
    column_line = next(i for i, line in enumerate(source) if line.startswith("*YYYYMMDD"))
    truncated = tmp_path / "truncated.pos"
    truncated.write_text("\n".join(source[: column_line + 3] + [source[column_line + 3][:80]]) + "\n")
    with pytest.raises(DataFormatError, match=rf"line {column_line + 4}: expected 25 whitespace-separated fields"):
        parse(truncated, "pbo_pos")
    headless = tmp_path / "headless.pos"
    headless.write_text("\n".join(source[column_line + 1 : column_line + 5]) + "\n")
    with pytest.raises(DataFormatError, match=r"no column line starting '\*YYYYMMDD'"):
        parse(headless, "pbo_pos")


def test_netcdf_unknown_variable_and_empty_region_are_explained(tmp_path: Path) -> None:
    path = DATA / "satellite/noaa_ersstv5_sst_monthly_2010_2020.nc"
    with pytest.raises(DataFormatError, match=r"has no variable 'air'; it has \['sst'\]"):
        parse(path, "netcdf_region", regions=SST_REGIONS, variable="air")
    tiny = [{"id": "speck", "name": "Speck", "min_lat": 0.1, "max_lat": 0.2, "min_lon": 190.1, "max_lon": 190.2}]
    with pytest.raises(ConfigError, match="region 'speck' covers no grid cell"):
        parse(path, "netcdf_region", regions=tiny)


def test_region_options_are_checked() -> None:
    path = DATA / "seismic/usgs_comcat_eastasia_m4_2018_2023.csv"
    with pytest.raises(ConfigError, match=r"lacks \['max_lon'\]"):
        parse(path, "usgs_catalog", regions=[{"id": "a", "name": "A", "min_lat": 0, "max_lat": 1, "min_lon": 0}])
    with pytest.raises(ConfigError, match="needs at least one region"):
        parse(path, "usgs_catalog", regions=[])
