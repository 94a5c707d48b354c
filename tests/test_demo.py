"""End to end on the bundled real data: `ews demo`, `ews run`, `ews status`, `ews ingest file`.

One demo run (module fixture) feeds every test here; it is the same code path the README's
first command runs, called in-process through the CLI entry point.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from pipelines.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
CONTENT_TABLES = (
    "series",
    "observations",
    "events",
    "forecasts",
    "anomaly_scores",
    "risk_grades",
    "alerts",
    "judgments",
    "ingest_batches",
    "series_state",
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _table_digest(home: Path) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent content hash of every content table."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {
            t: con.execute(f"SELECT count(*), coalesce(bit_xor(hash(COLUMNS(*))), 0) FROM {t}").fetchall()[0][:2]
            for t in CONTENT_TABLES
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("ews-home")
    code = main(["--home", str(home), "demo", "--json", "--quiet"])
    assert code == 0
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        status_rows = con.execute("SELECT count(*) FROM alerts").fetchall()
    return home, {"alerts": status_rows[0][0]}


def test_demo_loads_all_five_domains_and_writes_results(demo_home, capsys) -> None:
    home, _ = demo_home
    code, out = _run(capsys, "--home", str(home), "status", "--json")
    assert code == 0
    status = json.loads(out)
    assert set(status["series_by_domain"]) == {"market", "seismic", "geodetic", "hydro", "satellite"}
    assert all(n >= 1 for n in status["series_by_domain"].values())
    assert status["observations"] > 70_000
    assert status["forecasts"] > 0 and status["anomaly_scores"] > status["observations"]
    assert sum(status["alerts_by_level"].values()) >= 1
    assert status["judgments"] >= 1
    assert status["last_run"]["status"] == "success"
    assert set(status["alerts_by_level"]) == {"blue", "yellow", "orange", "red"}


def test_every_open_alert_has_a_labelled_judgment_traced_to_its_evidence(demo_home) -> None:
    home, _ = demo_home
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT a.alert_id, a.level, a.unique_id, j.label, j.text_en, j.text_zh, j.evidence_hash, j.checks, "
            "s.name, s.region FROM alerts a LEFT JOIN judgments j USING (alert_id) "
            "JOIN series s USING (unique_id) WHERE a.status = 'open'"
        ).fetchall()
    assert rows
    for alert_id, level, uid, label, text_en, text_zh, evidence_hash, checks, name, region in rows:
        assert label and "auxiliary" in label and "仅作辅助参考" in label, alert_id
        assert uid in text_en and level.upper() in text_en
        assert uid in text_zh
        assert len(evidence_hash) == 64
        # the bundled catalogue is vetted by the demo's load: its own names are published
        assert f"{name} ({uid}, {region})" in text_en and "unvetted" not in json.loads(checks)


def test_the_demo_command_approves_after_its_cycle_as_the_named_duty_officer(demo_home) -> None:
    from alerts.cap import validate_cap

    home, _ = demo_home
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        gated = {
            r[0]
            for r in con.execute(
                "SELECT alert_id FROM alerts WHERE status = 'open' AND level IN ('orange', 'red')"
            ).fetchall()
        }
        approvals = con.execute(
            "SELECT audit_id, target FROM audit_log WHERE action = 'alert.approved' AND actor = 'demo-duty-officer'"
        ).fetchall()
        transitions = {
            r[0]
            for r in con.execute(
                "SELECT alert_id FROM alert_transitions WHERE action = 'approved' AND actor = 'demo-duty-officer'"
            ).fetchall()
        }
        cycle_end = con.execute("SELECT min(audit_id) FROM audit_log WHERE action = 'run.finished'").fetchall()[0][0]
        held = con.execute(
            "SELECT count(*) FROM alerts WHERE status = 'open' AND release_state <> 'released'"
        ).fetchall()[0][0]
        opened = {r[0] for r in con.execute("SELECT alert_id FROM alerts WHERE status = 'open'").fetchall()}
        cap = con.execute("SELECT identifier, alert_id FROM cap_messages").fetchall()
    assert gated and {target for _, target in approvals} == gated == transitions
    assert all(audit_id > cycle_end for audit_id, _ in approvals)  # by the command, not the cycle
    assert held == 0
    assert {alert_id for _, alert_id in cap} == opened  # every open alert went out as CAP
    for identifier, _ in cap:
        assert validate_cap((home / "alerts" / f"{identifier}.xml").read_bytes()) == []


def test_every_series_has_quantile_forecasts_that_are_ordered(demo_home) -> None:
    home, _ = demo_home
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        # every series with data before the replay day (eastasia_* start in 2018)
        missing = con.execute(
            "SELECT DISTINCT unique_id FROM observations WHERE ds < TIMESTAMP '2011-03-13' "
            "AND unique_id NOT IN (SELECT unique_id FROM forecasts)"
        ).fetchall()
        without_data = con.execute(
            "SELECT count(*) FROM forecasts WHERE unique_id IN (SELECT unique_id FROM series "
            "WHERE unique_id NOT IN (SELECT unique_id FROM observations WHERE ds < TIMESTAMP '2011-03-13'))"
        ).fetchall()[0][0]
        disordered = con.execute(
            "SELECT count(*) FROM forecasts WHERE NOT (q05 <= q10 AND q10 <= q25 AND q25 <= q50 "
            "AND q50 <= q75 AND q75 <= q90 AND q90 <= q95)"
        ).fetchall()[0][0]
    assert missing == []
    assert without_data == 0
    assert disordered == 0


def test_second_run_and_second_demo_change_nothing(demo_home, capsys) -> None:
    home, _ = demo_home
    before = _table_digest(home)
    code, out = _run(capsys, "--home", str(home), "run", "--json", "--quiet")
    assert code == 0
    cycle = json.loads(out)["cycle"]
    assert cycle["series_processed"] == 0
    assert all(v == 0 for v in cycle["row_counts"].values())
    assert _table_digest(home) == before
    code, out = _run(capsys, "--home", str(home), "demo", "--json", "--quiet")
    assert code == 0
    assert {item["status"] for item in json.loads(out)["ingest"]} == {"skipped"}
    assert _table_digest(home) == before


def test_malformed_file_is_quarantined_and_stored_data_is_intact(demo_home, capsys, tmp_path) -> None:
    home, _ = demo_home
    before = _table_digest(home)
    broken = tmp_path / "broken_fred.csv"
    broken.write_text("date,value\n2024-01-01,3.1\n2024-02-01,not-a-number\n")
    code, out = _run(
        capsys,
        "--home",
        str(home),
        "ingest",
        "file",
        str(broken),
        "--format",
        "fred_csv",
        "--option",
        "unique_id=broken",
        "--option",
        "frequency=MS",
        "--json",
        "--quiet",
    )
    assert code == 4
    result = json.loads(out)
    assert result["status"] == "quarantined"
    assert "not-a-number" in result["error"] and "fix:" in result["error"]
    after = _table_digest(home)
    assert after["observations"] == before["observations"]
    assert after["series"] == before["series"]
    assert after["ingest_batches"][0] == before["ingest_batches"][0] + 1
    assert (home / "raw" / result["batch_id"] / "broken_fred.csv").is_file()


def test_status_without_a_warehouse_says_what_to_run(tmp_path, capsys) -> None:
    code = main(["--home", str(tmp_path / "nowhere"), "status"])
    assert code == 1
    assert "run `ews init` or `ews demo`" in capsys.readouterr().err


def test_demo_is_a_labelled_replay_of_the_tohoku_day(demo_home) -> None:
    home, _ = demo_home
    assert 'as_of = "2011-03-12"' in (home / "ews.toml").read_text()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        levels = dict(
            con.execute(
                "SELECT unique_id, level FROM alerts WHERE status = 'open' AND unique_id LIKE 'tohoku%'"
            ).fetchall()
        )
        newest_seen = con.execute("SELECT max(ds) FROM forecasts f WHERE ds <= cutoff").fetchall()[0][0]
        cutoffs = con.execute("SELECT max(cutoff) FROM forecasts").fetchall()[0][0]
        text = con.execute("SELECT text_en FROM judgments LIMIT 1").fetchall()[0][0]
    # the day after the M9.1 the Tohoku event-count series stands at the top levels
    assert levels.get("tohoku_count") in ("orange", "red")
    assert newest_seen is None and str(cutoffs) <= "2011-03-12 23:59:59"  # nothing after the replay day
    assert text.startswith("[Exercise: replay as of 2011-03-12]")


def test_going_live_resolves_replay_alerts_that_no_longer_hold(demo_home, capsys, monkeypatch) -> None:
    home, _ = demo_home
    monkeypatch.setenv("EWS_CYCLE__AS_OF", "")
    code, out = _run(capsys, "--home", str(home), "run", "--json", "--quiet")
    assert code == 0
    result = json.loads(out)
    assert result["cycle"]["series_processed"] == 40  # 36 bundled, the market composite and 3 sub-indices
    assert result["cycle"]["market"]["unique_id"] == "us_stress_composite"  # graded on its newest week
    assert result["status"]["last_run"]["as_of"] is None
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        resolved = con.execute("SELECT count(*) FROM alerts WHERE status = 'resolved'").fetchall()[0][0]
        audit = con.execute("SELECT count(*) FROM audit_log WHERE action = 'alert.resolved'").fetchall()[0][0]
        newest = con.execute("SELECT max(cutoff) FROM forecasts").fetchall()[0][0]
    assert resolved >= 1 and audit == resolved
    assert newest.year >= 2025
    code, out = _run(capsys, "--home", str(home), "run", "--json", "--quiet")
    assert json.loads(out)["cycle"]["series_processed"] == 0
