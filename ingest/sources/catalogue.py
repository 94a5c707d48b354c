"""The catalogue of data files bundled under ``data/`` and the options each is parsed with.

One entry per file: its path relative to the data directory, the parser format (a key of
``ingest.sources.PARSERS``) and the keyword options (series ids, names, units, frequency,
regions, publisher as ``source``, licence text, classification). Provenance, cuts and
citations of every file are in ``data/PROVENANCE.md``.

Physical bounds: every bundled series gets those of its ``variable``
(:data:`ingest.sources.DEFAULT_BOUNDS`: discharge, counts, sea-ice extent, CPI and the exchange
rate >= 0, unemployment 0..100, the rest unbounded); an entry overrides them with the
``bounds`` option, ``{"unique_id": [lower, upper]}`` (None for no bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError

__all__ = ["BundledFile", "bundled_catalogue", "SEISMIC_REGIONS", "SST_REGIONS"]


@dataclass(frozen=True)
class BundledFile:
    """A bundled file: ``parse(data_dir / relative_path, format, **options)`` reads it."""

    relative_path: str
    format: str
    options: dict[str, Any]


_FRED = "Federal Reserve Bank of St. Louis, FRED"
_FRED_CITE = "cite FRED, Federal Reserve Bank of St. Louis"

#: Boxes for the regional earthquake series, per catalog file.
SEISMIC_REGIONS: dict[str, list[dict[str, Any]]] = {
    "japan": [
        {"id": "tohoku", "name": "Tohoku, Japan", "min_lat": 36.0, "max_lat": 42.0, "min_lon": 140.0, "max_lon": 146.0},
        {"id": "japan", "name": "Japan", "min_lat": 22.0, "max_lat": 46.0, "min_lon": 122.0, "max_lon": 150.0},
    ],
    "eastasia": [
        {
            "id": "sichuan_yunnan",
            "name": "Sichuan-Yunnan, China",
            "min_lat": 21.0,
            "max_lat": 34.0,
            "min_lon": 97.0,
            "max_lon": 106.0,
        },
        {"id": "eastasia", "name": "East Asia", "min_lat": 17.0, "max_lat": 54.0, "min_lon": 73.0, "max_lon": 135.0},
    ],
}

#: Boxes for the regional sea-surface-temperature series (degrees east, 0..360).
SST_REGIONS: list[dict[str, Any]] = [
    {"id": "nino34", "name": "Nino 3.4", "min_lat": -5.0, "max_lat": 5.0, "min_lon": 190.0, "max_lon": 240.0},
    {
        "id": "south_china_sea",
        "name": "South China Sea",
        "min_lat": 5.0,
        "max_lat": 22.0,
        "min_lon": 105.0,
        "max_lon": 120.0,
    },
]


def _fred(
    path: str, unique_id: str, name: str, unit: str, frequency: str, variable: str, *, licence: str, region: str = "US"
) -> BundledFile:
    return BundledFile(
        path,
        "fred_csv",
        {
            "unique_id": unique_id,
            "name": name,
            "unit": unit,
            "frequency": frequency,
            "variable": variable,
            "domain": "market",
            "region": region,
            "source": _FRED,
            "licence": licence,
            "classification": "public",
        },
    )


def _h10_major(country: str, unique_id: str, name: str, unit: str) -> BundledFile:
    """One country of the cut ``market/fred_exchange_rates_major_monthly.csv``, every rate per USD."""
    return BundledFile(
        "market/fred_exchange_rates_major_monthly.csv",
        "fred_long_fx",
        {
            "country": country,
            "unique_id": unique_id,
            "name": name,
            "unit": unit,
            "frequency": "MS",
            "variable": "exchange_rate",
            "region": "US",
            "source": "Federal Reserve Board H.10 via FRED (datahub.io exchange-rates)",
            "licence": f"public domain (Federal Reserve); datahub packaging PDDL; {_FRED_CITE}",
            "classification": "public",
        },
    )


def _entries() -> list[BundledFile]:
    """Built fresh on every call so a caller editing options cannot change the catalogue."""
    public_fred = f"public domain (US government data); {_FRED_CITE}"
    usgs = "U.S. Geological Survey"
    usgs_licence = "public domain (USGS)"
    psmsl = "Permanent Service for Mean Sea Level (PSMSL)"
    psmsl_licence = "free to use with citation: Holgate et al. (2013) J. Coastal Res. 29(3) 493-504, and PSMSL"
    return [
        _fred(
            "market/fred_STLFSI4.csv",
            "stlfsi4",
            "St. Louis Fed Financial Stress Index (STLFSI4)",
            "index",
            "W-FRI",
            "financial_stress",
            licence=f"free to use with citation; {_FRED_CITE}",
        ),
        _fred(
            "market/fred_T10Y2Y.csv",
            "t10y2y",
            "10-year minus 2-year Treasury spread (T10Y2Y)",
            "percent",
            "B",
            "yield_spread",
            licence=public_fred,
        ),
        _fred(
            "market/fred_DGS10.csv",
            "dgs10",
            "10-year Treasury constant-maturity yield (DGS10)",
            "percent",
            "B",
            "yield",
            licence=public_fred,
        ),
        _fred(
            "market/fred_UNRATE.csv",
            "unrate",
            "US unemployment rate, seasonally adjusted (UNRATE)",
            "percent",
            "MS",
            "unemployment_rate",
            licence=public_fred,
        ),
        _fred(
            "market/fred_CPIAUCSL.csv",
            "cpiaucsl",
            "US CPI-U all items, seasonally adjusted (CPIAUCSL)",
            "index 1982-84=100",
            "MS",
            "consumer_price_index",
            licence=public_fred,
        ),
        BundledFile(
            "market/fred_exchange_rates_china_monthly.csv",
            "fred_long_fx",
            {
                "country": "China",
                "unique_id": "cny_per_usd",
                "name": "Chinese yuan per US dollar (Fed H.10, monthly)",
                "unit": "CNY per USD",
                "frequency": "MS",
                "variable": "exchange_rate",
                "region": "China",
                "source": "Federal Reserve Board H.10 via FRED (datahub.io exchange-rates)",
                "licence": f"public domain (Federal Reserve); datahub packaging PDDL; {_FRED_CITE}",
                "classification": "public",
            },
        ),
        *[
            _h10_major(country, uid, name, unit)
            for country, uid, name, unit in (
                ("Japan", "jpy_per_usd", "Japanese yen per US dollar (Fed H.10 EXJPUS, monthly)", "JPY per USD"),
                # datahub inverts FRED's EXUSUK and EXUSEU (USD per unit) to units per USD, rounded
                # to 4 decimals (scripts/country_codes.py `inverse`); the values say so: 0.4157 in 1971
                (
                    "United Kingdom",
                    "gbp_per_usd",
                    "British pounds per US dollar (inverse of Fed H.10 EXUSUK, monthly)",
                    "GBP per USD",
                ),
                ("Euro", "eur_per_usd", "Euros per US dollar (inverse of Fed H.10 EXUSEU, monthly)", "EUR per USD"),
                ("Canada", "cad_per_usd", "Canadian dollars per US dollar (Fed H.10 EXCAUS, monthly)", "CAD per USD"),
                ("Switzerland", "chf_per_usd", "Swiss francs per US dollar (Fed H.10 EXSZUS, monthly)", "CHF per USD"),
            )
        ],
        BundledFile(
            "market/sp500_shiller_monthly_1871_2026.csv",
            "market_table",
            {
                # only the price: the other columns are 0 in the months appended from FRED
                "value_columns": {"SP500": "sp500_monthly"},
                "frequency": "MS",
                "name": "S&P composite index, monthly average of daily closes (Shiller; FRED from 2023-10)",
                "unit": "index points",
                "domain": "market",
                "region": "US",
                "source": "Robert Shiller (Yale), stock market data since 1871, via datahub.io s-and-p-500",
                "licence": "PDDL (datahub.io packaging); credit Robert Shiller, Yale University",
                "classification": "public",
                "bounds": {"sp500_monthly": [0.0, None]},  # an index level
            },
        ),
        # events/ holds label sets for evaluating market detectors (event skill), not indicators:
        # fred_USREC_nber_recession_monthly.csv (NBER recessions) and market_crises.csv (recessions
        # and equity bear markets, written by benchmarks/build_market_events.py).
        BundledFile(
            "seismic/usgs_comcat_japan_2005_2014_processed.csv",
            "usgs_catalog",
            {
                "regions": SEISMIC_REGIONS["japan"],
                "event_id_prefix": "usgs_japan_npp",
                "source": f"{usgs}, ANSS ComCat (processed by EarthquakeNPP)",
                "licence": f"{usgs_licence}; cite USGS ANSS ComCat",
                "classification": "public",
            },
        ),
        BundledFile(
            "seismic/usgs_comcat_eastasia_m4_2018_2023.csv",
            "usgs_catalog",
            {
                "regions": SEISMIC_REGIONS["eastasia"],
                "event_id_prefix": "usgs_eastasia",
                "source": f"{usgs}, ANSS ComCat",
                "licence": f"{usgs_licence}; cite USGS ANSS ComCat",
                "classification": "public",
            },
        ),
        BundledFile(
            "geodetic/gnss_P156_pbo_california_2006_2015.pos",
            "pbo_pos",
            {
                "region": "Northern California, US",
                "source": "EarthScope Consortium (UNAVCO), Plate Boundary Observatory GNSS",
                "licence": "CC BY 4.0; cite the EarthScope Consortium GNSS data products",
                "classification": "public",
            },
        ),
        BundledFile(
            "hydro/usgs_01491000_choptank_daily_flow_cms.txt",
            "usgs_daily_flow",
            {
                "unique_id": "usgs_01491000_discharge",
                "name": "USGS 01491000 Choptank River near Greensboro, MD",
                "site_no": "01491000",
                "lat": 38.997,
                "lon": -75.786,
                "region": "Maryland, US",
                "source": f"{usgs}, NWIS (via the dataRetrieval package)",
                "licence": f"{usgs_licence}; cite USGS NWIS",
                "classification": "public",
            },
        ),
        BundledFile(
            "hydro/usgs_nwis_rdb_02177000_chattooga_2012.rdb",
            "nwis_rdb",
            {
                "region": "Georgia, US",
                "source": f"{usgs}, NWIS",
                "licence": f"{usgs_licence}; cite USGS NWIS",
                "classification": "public",
            },
        ),
        BundledFile(
            "hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata",
            "psmsl_monthly",
            {
                "unique_id": "psmsl_131_ayukawa",
                "name": "Ayukawa, Japan (PSMSL 131) monthly mean sea level, RLR",
                "lat": 38.297,
                "lon": 141.505,
                "region": "Tohoku, Japan",
                "source": f"{psmsl} (data from JMA/GSI)",
                "licence": psmsl_licence,
                "classification": "public",
            },
        ),
        BundledFile(
            "hydro/psmsl_rlr_monthly_012_new_york_battery.rlrdata",
            "psmsl_monthly",
            {
                "unique_id": "psmsl_012_new_york",
                "name": "New York, The Battery (PSMSL 12) monthly mean sea level, RLR",
                "lat": 40.700,
                "lon": -74.013,
                "region": "New York, US",
                "source": psmsl,
                "licence": psmsl_licence,
                "classification": "public",
            },
        ),
        BundledFile(
            "satellite/noaa_ersstv5_sst_monthly_2010_2020.nc",
            "netcdf_region",
            {
                "regions": SST_REGIONS,
                "variable": "sst",
                "frequency": "MS",
                "domain": "satellite",
                "source": "NOAA NCEI ERSST v5 (via NOAA PSL / xarray-tutorial)",
                "licence": (
                    "no constraints on data access or use (NOAA); cite Huang et al. (2017) ERSST v5, "
                    "doi:10.7289/V5T72FNM"
                ),
                "classification": "public",
            },
        ),
        BundledFile(
            "satellite/nsidc_seaice_extent_north_daily_2000_2022.csv",
            "nsidc_extent",
            {
                "unique_id": "arctic_sea_ice_extent",
                "name": "Arctic sea-ice extent (NSIDC Sea Ice Index, daily)",
                "region": "Arctic",
                "source": "National Snow and Ice Data Center (NSIDC), Sea Ice Index v3 (G02135)",
                "licence": (
                    "free to use with citation: Fetterer et al. (2017, updated daily) Sea Ice Index v3, "
                    "doi:10.7265/N5K072F8"
                ),
                "classification": "public",
            },
        ),
    ]


def bundled_catalogue(data_dir: Path) -> list[BundledFile]:
    """Every bundled file with its parser and options; refuses a data directory missing any of them."""
    data_dir = Path(data_dir)
    entries = _entries()
    missing = [e.relative_path for e in entries if not (data_dir / e.relative_path).is_file()]
    if missing:
        raise ConfigError(
            f"data directory {data_dir} lacks bundled file(s) {missing}",
            fix="point data_dir at the project's data/ folder (it ships with the repository)",
        )
    return entries
