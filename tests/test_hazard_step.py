"""The levels step (pipelines/hazard_step.py): field models first, rarity as a capped fallback.

Real data: the bundled Japan catalog, the P156 GNSS station, the Ayukawa and New York tide
gauges and the Choptank river, replayed through the cycle on 2011-03-12 (the day after the
M9.1 Tohoku earthquake) and on a quiet day, 2009-06-01. Synthetic frames check the
corroboration rule, whose answer is known by construction.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from core.settings import load_settings
from ingest.batches import ingest_file
from ingest.sources import bundled_catalogue
from pipelines.cycle import run_cycle
from pipelines.hazard_step import field_levels
from tests.sql import sql_frame
from warehouse import Warehouse
from warehouse.series import read_events, read_observations, read_series_meta

DATA = Path(__file__).resolve().parent.parent / "data"
JAPAN = "seismic/usgs_comcat_japan_2005_2014_processed.csv"
FILES = (
    JAPAN,
    "geodetic/gnss_P156_pbo_california_2006_2015.pos",
    "hydro/usgs_01491000_choptank_daily_flow_cms.txt",
    "hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata",
    "hydro/psmsl_rlr_monthly_012_new_york_battery.rlrdata",
)


def _replay(home: Path, as_of: str, files: tuple[str, ...]) -> dict[str, dict]:
    """Load ``files`` into a fresh home, run one cycle replayed on ``as_of``, and return each
    series' newest grade (level, evidence)."""
    settings = load_settings(home, environ={"EWS_ALERTS__JUDGE": "template", "EWS_CYCLE__AS_OF": as_of})
    catalogue = {b.relative_path: b for b in bundled_catalogue(DATA)}
    with Warehouse.open(settings.warehouse_path) as wh:
        for name in files:
            item = catalogue[name]
            assert ingest_file(wh, settings, DATA / name, item.format, options=item.options).status == "committed"
        run_cycle(wh, settings, actor="scheduler")
        grades = sql_frame(
            wh,
            "SELECT unique_id, level, evidence FROM risk_grades "
            "QUALIFY row_number() OVER (PARTITION BY unique_id ORDER BY ds DESC) = 1",
        )
    return {
        r["unique_id"]: {"level": r["level"], "evidence": json.loads(r["evidence"])}
        for r in grades.iter_rows(named=True)
    }


@pytest.fixture(scope="module")
def tohoku_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    home = tmp_path_factory.mktemp("tohoku-day")
    return home, _replay(home, "2011-03-12", FILES)


@pytest.mark.parametrize("uid", ["tohoku_count", "japan_count"])
def test_the_day_after_the_m9_the_earthquake_counts_are_red_by_the_aftershock_forecast(tohoku_day, uid) -> None:
    _, latest = tohoku_day
    grade = latest[uid]
    ev = grade["evidence"]
    assert grade["level"] == "red", ev
    assert ev["basis"] == "hazard_model"
    model = ev["hazard"]
    assert model["model"] == "reasenberg_jones"
    assert (model["window_days"], model["magnitude"], model["event"]) == (7.0, 6.0, "M>=6 earthquake")
    assert model["probability"] >= 0.5
    assert model["mainshock"]["magnitude"] >= 9.0 and model["mainshock"]["time"].startswith("2011-03-11")
    low, high = model["count_range"]
    assert low <= model["expected_count"] <= high
    assert model["ladder"] == {"yellow": 0.05, "orange": 0.20, "red": 0.50}
    assert ev["rarity"]["level"] in ("none", "blue", "yellow", "orange", "red")  # kept for the analyst
    assert "capped_at" not in ev  # a hazard-model level is never capped


@pytest.mark.parametrize("uid", ["p156_north", "p156_east", "p156_up", "psmsl_131_ayukawa", "psmsl_012_new_york"])
def test_series_without_a_field_model_keep_a_rarity_grade_capped_at_yellow(tohoku_day, uid) -> None:
    _, latest = tohoku_day
    grade = latest[uid]
    ev = grade["evidence"]
    assert grade["level"] not in ("orange", "red"), f"{uid}: a rare value is not a hazard ({ev.get('uncapped_level')})"
    assert ev["basis"] == "statistical_rarity"
    if "uncapped_level" in ev:
        assert ev["capped_at"] == "yellow" and ev["uncapped_level"] in ("orange", "red")
    assert "corroborated_by" not in ev


def test_the_cap_is_recorded_where_it_lowered_the_level(tohoku_day) -> None:
    # Before this step P156 north and Ayukawa were red, New York orange. Since issue 22 the
    # replay reads P156 only to 2011-02-22 (final GNSS positions come 18 days late), where it is
    # not rare: the two tide gauges are the series the cap still lowers.
    _, latest = tohoku_day
    capped = {uid for uid, g in latest.items() if "capped_at" in g["evidence"]}
    assert {"psmsl_131_ayukawa", "psmsl_012_new_york"} <= capped


def test_the_choptank_is_graded_by_its_return_periods_not_its_rarity(tohoku_day) -> None:
    # Before this step the Choptank was orange (rarity + a forecast interval down to -25 m3/s).
    # Its level now comes from the state-conditional model (tests/test_hazards_flood_state.py).
    _, latest = tohoku_day
    grade = latest["usgs_01491000_discharge"]
    ev = grade["evidence"]
    assert grade["level"] not in ("orange", "red"), ev
    assert ev["basis"] == "hazard_model" and "capped_at" not in ev
    model = ev["hazard"]
    assert model["model"] == "return_period" and model["unit"] == "m3/s"
    assert model["return_period_years"] in (2.0, 5.0, 20.0) and model["threshold"] > 0
    assert 0.0 <= model["probability"] <= 1.0 and model["window_days"] >= 1
    assert model["event"] == f"flow above the {model['return_period_years']:g}-year return level"
    assert model["return_level_fit"]["years_used"] >= 5 and model["distribution"] in ("gumbel", "gev")
    assert model["estimator"] == "state_conditional_logistic" and model["window_days"] == 3.0
    assert model["ladder_rungs"]["orange"] == [5.0, 0.3]
    assert model["state"]["ds"].startswith("2011-03-11")  # the newest daily mean known on the 12th
    # ladder: the rungs on the deciding return period, {level: probability}, as for earthquakes
    reached = [lv for lv, p in model["ladder"].items() if model["probability"] >= p]
    assert (reached[-1] if reached else "none") == grade["level"]
    # the return levels rise with the return period
    values = [p["threshold_value"] for p in model["probabilities"]]
    assert values == sorted(values)


def test_a_hazard_level_is_never_capped_even_below_blue(tohoku_day) -> None:
    home, _ = tohoku_day
    settings = load_settings(home, environ={"EWS_CYCLE__AS_OF": "2011-03-12"})
    strict = dataclasses.replace(settings.hazards, rarity_cap="blue")
    cutoff = datetime(2011, 3, 13)
    with Warehouse.open(settings.warehouse_path, read_only=True) as wh:
        # from 2010: the tide gauges' newest month known on 2011-03-12 is 2010-02 (PSMSL's P1Y lag)
        grades = sql_frame(wh, "SELECT unique_id, ds, level, score, evidence FROM risk_grades WHERE ds >= '2010-01-01'")
        series = read_observations(wh, before=cutoff)
        meta, events = read_series_meta(wh), read_events(wh, before=cutoff)
    # rarity levels as the score step made them (the stored rows carry the previous step's cap)
    rarity = grades.with_columns(
        pl.col("evidence")
        .map_elements(
            lambda e: (json.loads(e).get("rarity") or {}).get("level") or json.loads(e).get("uncapped_level") or "",
            return_dtype=pl.Utf8,
        )
        .alias("rarity")
    ).with_columns(pl.when(pl.col("rarity") != "").then(pl.col("rarity")).otherwise(pl.col("level")).alias("level"))
    out, _ = field_levels(rarity.drop("rarity"), series=series, meta=meta, events=events, settings=strict, at=cutoff)
    latest = out.sort("ds").group_by("unique_id").last()
    levels = dict(zip(latest["unique_id"], latest["level"], strict=True))
    assert levels["tohoku_count"] == "red" and levels["japan_count"] == "red"
    assert all(levels[u] in ("none", "blue") for u in ("p156_north", "psmsl_131_ayukawa", "psmsl_012_new_york"))


def test_on_a_quiet_day_no_seismic_series_is_above_blue(tmp_path) -> None:
    latest = _replay(tmp_path, "2009-06-01", (JAPAN,))
    seismic = {u: g for u, g in latest.items() if u.startswith(("tohoku_", "japan_"))}
    assert len(seismic) == 6
    for uid, grade in seismic.items():
        assert grade["level"] in ("none", "blue"), (uid, grade["evidence"])
        assert grade["evidence"]["basis"] == "statistical_rarity"  # no mainshock: no forecast


# --- the corroboration rule on synthetic frames -------------------------------------------

_META_COLUMNS = ("unique_id", "domain", "region", "source", "lat", "lon", "frequency", "variable")


def _meta(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame([dict(zip(_META_COLUMNS, r, strict=True)) for r in rows])


def _grades(rows: list[tuple[str, datetime, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": [r[0] for r in rows],
            "ds": [r[1] for r in rows],
            "level": [r[2] for r in rows],
            "score": [0.999] * len(rows),
            "evidence": ["{}"] * len(rows),
        },
        schema={
            "unique_id": pl.Utf8,
            "ds": pl.Datetime("us"),
            "level": pl.Utf8,
            "score": pl.Float64,
            "evidence": pl.Utf8,
        },
    )


_NO_EVENTS = pl.DataFrame(
    schema={"time": pl.Datetime("us"), "lat": pl.Float64, "lon": pl.Float64, "magnitude": pl.Float64}
)


def _levels(grades: pl.DataFrame, meta: pl.DataFrame) -> dict[str, dict]:
    settings = load_settings(Path("/nonexistent-ews-home"), environ={})
    series = grades.select("unique_id", "ds", pl.lit(1.0).alias("y"))
    out, _ = field_levels(
        grades, series=series, meta=meta, events=_NO_EVENTS, settings=settings.hazards, at=datetime(2020, 2, 1)
    )
    return {r["unique_id"]: {"level": r["level"], **json.loads(r["evidence"])} for r in out.iter_rows(named=True)}


def test_two_independent_series_of_one_region_that_agree_lift_the_cap() -> None:
    meta = _meta(
        ("gauge_a", "hydro", "Delta", "Agency A", 1.0, 1.0, "MS", "sea_level"),
        ("river_b", "hydro", "Delta", "Agency B", 1.5, 1.2, "D", "discharge"),
    )
    # the monthly gauge is red in January; the daily river reaches orange on one January day
    grades = _grades([("gauge_a", datetime(2020, 1, 1), "red"), ("river_b", datetime(2020, 1, 20), "orange")])
    levels = _levels(grades, meta)
    assert levels["gauge_a"]["level"] == "red" and levels["gauge_a"]["corroborated_by"] == ["river_b"]
    # the gauge's January mean is known on 1 February: it cannot lift the river's 20 January grade
    assert levels["river_b"]["level"] == "yellow" and levels["river_b"]["capped_at"] == "yellow"
    assert "capped_at" not in levels["gauge_a"]


@pytest.mark.parametrize(
    ("other", "when", "why"),
    [
        (
            ("river_b", "hydro", "Elsewhere", "Agency B", 1.5, 1.2, "D", "discharge"),
            datetime(2020, 1, 20),
            "another region",
        ),
        (
            ("river_b", "hydro", "Delta", "Agency A", 1.0, 1.0, "D", "discharge"),
            datetime(2020, 1, 20),
            "the same instrument",
        ),
        (("river_b", "hydro", "Delta", "Agency B", 1.5, 1.2, "D", "discharge"), datetime(2020, 2, 3), "another month"),
    ],
)
def test_the_cap_holds_without_an_independent_agreeing_series(other, when, why) -> None:
    meta = _meta(("gauge_a", "hydro", "Delta", "Agency A", 1.0, 1.0, "MS", "sea_level"), other)
    grades = _grades([("gauge_a", datetime(2020, 1, 1), "red"), ("river_b", when, "orange")])
    gauge = _levels(grades, meta)["gauge_a"]
    assert gauge["level"] == "yellow", why
    assert (gauge["capped_at"], gauge["uncapped_level"]) == ("yellow", "red")
    assert gauge["basis"] == "statistical_rarity" and "corroborated_by" not in gauge


def test_a_weaker_partner_must_still_reach_orange() -> None:
    meta = _meta(
        ("gauge_a", "hydro", "Delta", "Agency A", 1.0, 1.0, "MS", "sea_level"),
        ("river_b", "hydro", "Delta", "Agency B", 1.5, 1.2, "D", "discharge"),
    )
    grades = _grades([("gauge_a", datetime(2020, 1, 1), "red"), ("river_b", datetime(2020, 1, 20), "yellow")])
    levels = _levels(grades, meta)
    assert levels["gauge_a"]["level"] == "yellow" and levels["gauge_a"]["uncapped_level"] == "red"


def test_one_sources_indicators_without_a_site_are_independent_but_one_stations_components_are_not() -> None:
    # e.g. two satellite indices of one region (no lat/lon) vs a GNSS station's north and east
    grades = _grades([("a", datetime(2020, 1, 3), "red"), ("b", datetime(2020, 1, 3), "red")])
    national = _meta(
        ("a", "satellite", "Arctic", "NSIDC", None, None, "D", "sea_ice_extent"),
        ("b", "satellite", "Arctic", "NSIDC", None, None, "D", "sea_ice_area"),
    )
    assert _levels(grades, national)["a"]["corroborated_by"] == ["b"]
    # two FRED indicators of one country are market series: inputs of one composite, one witness
    market = _meta(
        ("a", "market", "US", "FRED", None, None, "D", "financial_stress"),
        ("b", "market", "US", "FRED", None, None, "D", "unemployment_rate"),
    )
    assert _levels(grades, market)["a"]["level"] == "yellow"
    assert _levels(grades, market)["a"]["uncapped_level"] == "red"
    station = _meta(
        ("a", "geodetic", "CA", "PBO", 40.0, -123.9, "D", "displacement_north"),
        ("b", "geodetic", "CA", "PBO", 40.0, -123.9, "D", "displacement_east"),
    )
    assert _levels(grades, station)["a"]["level"] == "yellow"


def test_gnss_steps_go_into_the_evidence_not_the_level(tohoku_day) -> None:
    # P156 north has an offset on 2010-01-08; the bundled catalogs are Japan's and East Asia's,
    # so no catalog earthquake explains it (linked_event is None)
    _, latest = tohoku_day
    steps = latest["p156_north"]["evidence"]["steps"]
    assert [s["ds"][:10] for s in steps] == ["2010-01-08"]
    step = steps[0]
    assert abs(step["size_mm"]) >= 5 * step["sigma_mm"] > 0 and step["linked_event"] is None
    assert latest["p156_north"]["level"] == "yellow"  # a step informs; it does not raise the level


def test_many_series_rare_on_the_same_days_are_joined_in_batches_with_the_same_result(monkeypatch) -> None:
    """Rule 3 joins graded rows and witnesses by batches of (region, period) keys: one key per
    batch gives exactly the rows of one batch for all; each lifted grade lists at most
    MATES_LISTED corroborating series, the first by id (25 series red on one day)."""
    from anomaly import corroboration
    from anomaly.corroboration import MATES_LISTED, cap_rarity_levels

    ids = [f"s{i:02d}" for i in range(25)]
    meta = pl.DataFrame(
        {"unique_id": ids, "region": ["Delta"] * 25, "source": [f"agency {i}" for i in range(25)], "frequency": "D"}
    )
    rows = [(u, datetime(2020, 1, 5), "red") for u in ids]  # everyone rare on one day
    rows += [(u, datetime(2020, 1, 6 + i % 7), ("orange", "red", "yellow")[i % 3]) for i, u in enumerate(ids)]
    grades = pl.DataFrame(rows, schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "level": pl.Utf8}, orient="row")
    together = cap_rarity_levels(grades, meta)
    monkeypatch.setattr(corroboration, "_PAIRS_PER_BATCH", 1)
    keyed = grades.join(meta, on="unique_id").with_columns(pl.col("ds").dt.truncate("1d").alias("_period"))
    batches = corroboration._period_batches(keyed, keyed.rename({"region": "region_m"}))  # noqa: SLF001
    assert len(batches) == keyed["_period"].n_unique() == 8  # one day per batch
    apart = cap_rarity_levels(grades, meta)
    assert apart.equals(together)
    day = together.filter(pl.col("ds") == datetime(2020, 1, 5))
    assert day["level"].to_list() == ["red"] * 25
    for uid, mates in day.select("unique_id", "corroborated_by").iter_rows():
        assert mates == [u for u in ids if u != uid][:MATES_LISTED]
