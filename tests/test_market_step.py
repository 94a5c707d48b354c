"""The market's field model in the cycle (pipelines/market_step.py, rule 1c of pipelines/hazard_step.py).

Real data: the bundled market series (FRED yields and spreads, the Shiller monthly S&P 500, the
H.10 exchange rates) and the bundled crisis events (data/events/market_crises.csv), loaded into a
real DuckDB warehouse and replayed through the cycle on 2011-03-12 (the demo's day).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from alerts.judgment import evidence_contradictions, grade_basis
from core.clock import Clock
from core.settings import Settings, load_settings
from core.vocabulary import Level
from hazards.market_indicators import market_composite
from ingest.batches import ingest_file
from ingest.sources import bundled_catalogue
from pipelines.cycle import run_cycle
from pipelines.market_step import (
    MarketModelInput,
    events_path,
    indicator_specs,
    market_level,
    read_market_events,
    run_market_step,
)
from tests.sql import sql_frame
from warehouse import Warehouse
from warehouse.series import read_observations, read_series_meta

DATA = Path(__file__).resolve().parent.parent / "data"
AS_OF = "2011-03-12"
CUTOFF = datetime(2011, 3, 13)
CONTRACT = {
    "model",
    "probability",
    "window_days",
    "event",
    "target",
    "targets",
    "segments",
    "composite",
    "avg_correlation",
    "signals",
    "ladder",
    "level",
}
TARGET_KEYS = {"level", "probability", "signal_share", "base_rate", "train_span", "events_in_training"}


def _settings(home: Path, **env: str) -> Settings:
    return load_settings(home, environ={"EWS_ALERTS__JUDGE": "template", "EWS_CYCLE__AS_OF": AS_OF, **env})


def _load_market(wh: Warehouse, settings: Settings, only: tuple[str, ...] | None = None) -> None:
    """Ingest the bundled market files (or only those named)."""
    for item in bundled_catalogue(DATA):
        if not item.relative_path.startswith("market/"):
            continue
        if only is not None and item.relative_path not in only:
            continue
        assert ingest_file(wh, settings, DATA / item.relative_path, item.format, options=item.options).status in (
            "committed",
            "skipped",
        )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    home = tmp_path_factory.mktemp("market-day")
    settings = _settings(home)
    with Warehouse.open(settings.warehouse_path) as wh:
        _load_market(wh, settings)
        summary = run_cycle(wh, settings, actor="scheduler")
    return settings, {"summary": summary}


def test_the_market_step_writes_the_composite_and_its_subindices_as_weekly_series(replayed) -> None:
    settings, _ = replayed
    cfg = settings.markets
    ids = [cfg.composite_uid, *(cfg.segment_uid(s) for s in cfg.segments)]
    assert ids == ["us_stress_composite", "us_stress_equity", "us_stress_bonds", "us_stress_fx"]
    with Warehouse.open(settings.warehouse_path) as wh:
        meta = read_series_meta(wh, ids)
        rows = read_observations(wh, ids)
    assert sorted(meta["unique_id"]) == sorted(ids)
    for r in meta.iter_rows(named=True):
        assert (r["domain"], r["frequency"], r["unit"], r["region"]) == ("market", "W-FRI", "index 0-1", "US")
        assert r["source"].startswith("EWS CISS-style composite of ") and "sp500_monthly" in r["source"]
        assert (r["licence"], r["classification"]) == ("derived from the inputs' licences", "public")
        assert (r["lower_bound"], r["upper_bound"]) == (0.0, 1.0)
    assert rows["ds"].dt.weekday().unique().to_list() == [5]  # Fridays
    assert rows["y"].min() >= 0.0 and rows["y"].max() <= 1.0
    per_id = rows.group_by("unique_id").agg(pl.len(), pl.col("ds").max())
    assert per_id["ds"].unique().to_list() == [datetime(2011, 3, 11)]  # the last Friday before the cutoff
    assert per_id["len"].unique().len() == 1 and per_id["len"][0] > 52 * 20  # decades of weeks


def test_a_rerun_writes_the_same_rows_and_the_next_cycle_has_nothing_new(replayed) -> None:
    settings, _ = replayed
    clock = Clock(now=datetime(2026, 1, 5), as_of=AS_OF)
    with Warehouse.open(settings.warehouse_path) as wh:
        before = sql_frame(wh, "SELECT count(*) AS n, sum(y) AS s FROM observations WHERE unique_id LIKE 'us_stress_%'")
        with wh.transaction():
            again = run_market_step(wh, settings, clock=clock, run_id="r_rerun")
        after = sql_frame(wh, "SELECT count(*) AS n, sum(y) AS s FROM observations WHERE unique_id LIKE 'us_stress_%'")
        assert again.counts == {"market_series": 0, "market_observations": 0}
        assert before.rows() == after.rows()
        second = run_cycle(wh, settings, clock=clock, actor="scheduler")
    assert second.series_processed == 0 and second.market is None


def test_the_composite_level_and_its_evidence_contract(replayed) -> None:
    settings, state = replayed
    cfg = settings.markets
    with Warehouse.open(settings.warehouse_path) as wh:
        grade = sql_frame(
            wh,
            "SELECT ds, level, evidence FROM risk_grades WHERE unique_id = 'us_stress_composite' "
            "ORDER BY ds DESC LIMIT 1",
        ).row(0, named=True)
    ev = json.loads(grade["evidence"])
    assert grade["ds"] == datetime(2011, 3, 11)
    assert ev["basis"] == "hazard_model" and "capped_at" not in ev  # the field model: never capped
    hazard = ev["hazard"]
    assert CONTRACT <= set(hazard) and hazard["model"] == "klr_signals"
    assert hazard["level"] == grade["level"] == ev["level"]
    assert hazard["window_days"] == 365.0 and set(hazard["targets"]) <= set(cfg.targets)
    deciding = hazard["targets"][hazard["target"]]
    assert TARGET_KEYS <= set(deciding) and hazard["probability"] == deciding["probability"]
    levels = {t: Level.parse(e["level"]) for t, e in hazard["targets"].items()}
    assert Level.parse(grade["level"]) == max(levels.values())  # the highest over the targets
    assert hazard["event"] in ("a US recession starts", "the S&P 500 falls 20 % from its peak")
    for target, entry in hazard["targets"].items():
        assert 0.0 <= entry["probability"] <= 1.0 and 0.0 < entry["base_rate"] < 1.0
        assert entry["events_in_training"] >= 1
        # every training week's horizon was known by the cutoff minus the announcement lag
        known_until = CUTOFF - timedelta(days=cfg.targets[target])
        assert datetime.fromisoformat(entry["train_span"][1]) + timedelta(days=365) <= known_until
    contributions = [s["contribution"] for s in hazard["segments"]]
    assert contributions == sorted(contributions, reverse=True)
    assert {s["segment"] for s in hazard["segments"]} == {"equity", "bonds", "fx"}
    assert sum(contributions) == pytest.approx(hazard["composite"], abs=1e-9)  # CISS: they add up
    names = [s["indicator"] for s in hazard["signals"]]
    assert names[-1] == "composite" and {"equity", "bonds", "fx", "curve_inversion"} <= set(names)
    assert hazard["ladder"] == {k: list(v) for k, v in cfg.ladder_rungs().items()}
    # the level is what the ladder gives for the signal share (the judgment's own check)
    assert evidence_contradictions({"level": grade["level"], "basis": grade_basis(ev)}) == []
    summary = state["summary"].market
    assert summary["level"] == grade["level"] and summary["probability"] == hazard["probability"]


def test_the_level_uses_nothing_published_after_the_cutoff(replayed) -> None:
    """The composite from every stored observation (to 2026), cut at the replay's week, gives
    the cycle's evidence: no later value, and no event announced later, reaches the level."""
    settings, _ = replayed
    cfg = settings.markets
    specs = indicator_specs(cfg)
    ids = sorted({s.unique_id for s in specs})
    with Warehouse.open(settings.warehouse_path) as wh:
        meta = read_series_meta(wh, ids)
        series = read_observations(wh, ids)  # no cutoff: the whole bundled history
        grade = sql_frame(
            wh, "SELECT evidence FROM risk_grades WHERE unique_id = 'us_stress_composite' ORDER BY ds DESC LIMIT 1"
        )
    assert series["ds"].max() > datetime(2020, 1, 1)
    frame = market_composite(
        series,
        specs,
        frequencies=dict(zip(meta["unique_id"], meta["frequency"], strict=True)),
        available_after=dict(zip(meta["unique_id"], meta["available_after"], strict=True)),  # the cycle's rule
    )
    model = MarketModelInput(frame=frame, events=read_market_events(events_path(settings)), settings=cfg)
    graded, _ = market_level(model, at=CUTOFF, ds=datetime(2011, 3, 11))
    assert graded is not None
    assert json.loads(json.dumps(graded[1])) == json.loads(grade["evidence"][0])["hazard"]


def test_a_missing_input_is_a_note_naming_it_not_a_failed_cycle(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with Warehouse.open(settings.warehouse_path) as wh:
        _load_market(wh, settings, only=("market/fred_DGS10.csv", "market/fred_T10Y2Y.csv"))
        summary = run_cycle(wh, settings, actor="scheduler")
        stored = set(read_series_meta(wh)["unique_id"])
    notes = [n for n in summary.notes if n.startswith("market composite")]
    assert len(notes) == 1 and "skipped" in notes[0]
    for uid in ("sp500_monthly", "jpy_per_usd", "gbp_per_usd", "eur_per_usd", "cad_per_usd", "chf_per_usd"):
        assert uid in notes[0]
    assert "dgs10" not in notes[0].split("skipped:")[1]  # only the missing ones are named
    assert not any(u.startswith("us_stress_") for u in stored) and summary.market is None
    assert {"dgs10", "t10y2y"} <= stored and summary.series_processed == 2


def test_switched_off_there_is_no_composite_and_no_note(tmp_path: Path) -> None:
    settings = _settings(tmp_path, EWS_MARKETS__ENABLED="false")
    with Warehouse.open(settings.warehouse_path) as wh:
        _load_market(wh, settings, only=("market/fred_DGS10.csv",))
        summary = run_cycle(wh, settings, actor="scheduler")
    assert not [n for n in summary.notes if "market composite" in n] and summary.market is None
