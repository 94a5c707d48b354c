"""`ews run` writes calibrated scores and a graded level with evidence for every series.

Two bundled real files (STLFSI4 weekly, UNRATE monthly) go through `ews ingest file` into a
fresh warehouse, then one `ews run`; a second run changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from pipelines.cli.main import main

DATA = Path(__file__).resolve().parent.parent / "data" / "market"
FILES = {"stlfsi4": ("fred_STLFSI4.csv", "W-FRI"), "unrate": ("fred_UNRATE.csv", "MS")}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ews-score")
    for uid, (name, freq) in FILES.items():
        code = main(
            [
                "--home",
                str(home),
                "ingest",
                "file",
                str(DATA / name),
                "--format",
                "fred_csv",
                "--option",
                f"unique_id={uid}",
                "--option",
                f"frequency={freq}",
                "--option",
                "domain=market",
                "--option",
                "region=US",
                "--json",
                "--quiet",
            ]
        )
        assert code == 0
    assert main(["--home", str(home), "run", "--json", "--quiet"]) == 0
    return home


def _query(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_series_has_calibrated_scores_from_each_detector(home: Path) -> None:
    rows = _query(
        home,
        "SELECT unique_id, detector, count(*), min(score), max(score) FROM anomaly_scores GROUP BY ALL ORDER BY ALL",
    )
    detectors = {(uid, det) for uid, det, *_ in rows}
    for uid in FILES:
        for det in ("level", "change", "subseq_pca", "ensemble"):
            assert (uid, det) in detectors, (uid, det)
    assert all(0.0 <= lo <= hi <= 1.0 for *_, lo, hi in rows)


def test_every_series_has_a_current_grade_with_evidence_and_freshness(home: Path) -> None:
    latest = _query(
        home,
        "SELECT g.unique_id, g.level, g.evidence FROM risk_grades g "
        "JOIN (SELECT unique_id, max(ds) AS ds FROM observations GROUP BY 1) o USING (unique_id, ds)",
    )
    assert {uid for uid, *_ in latest} == set(FILES)
    for _uid, level, evidence in latest:
        item = json.loads(evidence)
        assert level in ("none", "blue", "yellow", "orange", "red")
        assert item["level"] == level and item["thresholds"]["red"] == 0.998
        assert {"level", "change", "subseq_pca"} <= set(item["detectors"])
        assert item["data"]["age_days"] >= 0 and isinstance(item["data"]["stale"], bool)
        assert item["cooldown"] == 3


def test_stress_in_autumn_2008_is_graded(home: Path) -> None:
    levels = _query(
        home,
        "SELECT level, count(*) FROM risk_grades WHERE unique_id = 'stlfsi4' "
        "AND ds BETWEEN '2008-09-01' AND '2008-12-31' AND level <> 'none' GROUP BY 1",
    )
    assert sum(n for _, n in levels) >= 3


def test_a_second_run_changes_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _query(home, "SELECT count(*), sum(hash(unique_id, ds, detector, raw_score, score)) FROM anomaly_scores")
    assert main(["--home", str(home), "run", "--json", "--quiet"]) == 0
    cycle = json.loads(capsys.readouterr().out)["cycle"]
    assert cycle["series_processed"] == 0
    assert (
        _query(home, "SELECT count(*), sum(hash(unique_id, ds, detector, raw_score, score)) FROM anomaly_scores")
        == before
    )
