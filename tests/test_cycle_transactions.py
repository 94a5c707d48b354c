"""Transactions of the scoring cycle (pipelines/cycle.py) around the LLM judge.

Real data: the bundled FRED STLFSI4 (weekly) and UNRATE (monthly) files, replayed as of
2008-10-24, when the St. Louis Fed financial stress index stood at its autumn-2008 high (one red
alert). The LLM endpoint is a real HTTP server on 127.0.0.1 speaking the OpenAI chat API; on
every call it opens its own connection to the warehouse file, which sees only committed rows.

Checked: no LLM call happens while the cycle's write transaction is open (the alert, its
outbox event and its provisional judgment are already committed when the endpoint is asked);
every call the endpoint received has a durable ``llm.call`` audit row, also when the cycle
fails inside its write transaction or after the calls; the final judgment replaces the
provisional one with model, prompt version, evidence hash and verdict; CAP is written after
the judgments and carries the endpoint's judgment (writer ``llm``, verdict ``passed``), not the
provisional template; a second run changes nothing. After a failure while the final judgments
are written, the next cycle (no new data) judges the alerts again and publishes CAP with the
judge's text.

Per-chunk commits (issue 21): the cycle commits each chunk of series on its own and its alerts
and fingerprints in a final transaction; a cycle interrupted in chunk 3 and run again ends with
exactly the rows of one never interrupted (the bundled series of tests/test_cycle_chunks.py).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import pipelines.cycle
from alerts.llm_judgment import PROMPT_VERSION
from core.settings import load_settings
from pipelines.alert_step import PROVISIONAL_VERDICT
from pipelines.cycle import run_cycle
from tests.fred_series import ingest_market_files
from tests.llm_endpoint import ChatEndpoint
from tests.sql import sql_frame, sql_rows
from tests.test_cycle_chunks import AS_OF, FIELD, WRITTEN, _cycled
from tests.test_cycle_chunks import FILES as CHUNK_FILES
from tests.test_cycle_chunks import NOW as CHUNK_NOW
from warehouse import Warehouse, alerting
from warehouse.runs import last_run

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 3, 0)
FILES = {"stlfsi4": ("fred_STLFSI4.csv", "W-FRI"), "unrate": ("fred_UNRATE.csv", "MS")}
REPLY = {
    "situation_en": "{name} in {region} stands at {value}, above threshold {threshold}.",
    "development_en": "Stress may persist; forecast median {forecast_median}.",
    "actions_en": "Verify the data and brief the duty team.",
    "uncertainty_en": "Score {score} compares with this series only.",
    "situation_zh": "{region}指标异常。",
    "development_zh": "可能持续。",
    "actions_zh": "核实数据并通报。",
    "uncertainty_zh": "仅供参考。",
}


class Endpoint(ChatEndpoint):
    """The chat endpoint on loopback (tests/llm_endpoint.py) answering a grounded free-style
    reply at the alert's level; at each call it records what a second connection to the
    warehouse sees (committed rows only)."""

    def __init__(self, db_path: Path) -> None:
        self.seen: list[dict[str, int]] = []

        def answer(request: dict, number: int) -> str:
            with duckdb.connect(str(db_path)) as con:  # same process: shares the database
                self.seen.append(
                    {
                        table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                        for table in ("alerts", "outbox", "judgments")
                    }
                )
            user = request["messages"][-1]["content"]
            level = re.search(r"The level is (blue|yellow|orange|red)\.", user).group(1)
            return json.dumps({**REPLY, "risk_level": level}, ensure_ascii=False)

        super().__init__(answer, prompt_tokens=400, completion_tokens=90)


@pytest.fixture()
def stress(tmp_path: Path):
    """A home with the two real series, the replay clock on 2008-10-24 and the endpoint."""
    settings = load_settings(tmp_path)
    endpoint = Endpoint(settings.warehouse_path)
    settings = load_settings(
        tmp_path,
        environ={
            "EWS_CYCLE__AS_OF": "2008-10-24",
            "EWS_LLM__BASE_URL": endpoint.url,
            "EWS_ALERTS__AUTO_RELEASE": '["blue", "yellow", "orange", "red"]',
        },
    )
    try:
        with Warehouse.open(settings.warehouse_path) as wh:
            ingest_market_files(wh, settings, FILES)
            yield settings, wh, endpoint
    finally:
        endpoint.close()


def _llm_calls(wh: Warehouse) -> list[dict]:
    return [
        json.loads(d)
        for (d,) in sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.call' ORDER BY audit_id")
    ]


def test_llm_calls_happen_after_the_commit_and_the_final_judgment_reaches_cap(stress) -> None:
    settings, wh, endpoint = stress
    summary = run_cycle(wh, settings, now=NOW, actor="scheduler")
    alerts = sql_frame(wh, "SELECT alert_id, level, status, release_state FROM alerts")
    assert alerts.rows() and all(s == "open" for s in alerts["status"])
    assert endpoint.seen, "the judge asked the endpoint"
    for seen in endpoint.seen:
        # committed before any call: the alert, its outbox event and its provisional judgment
        assert seen["alerts"] == alerts.height and seen["outbox"] >= 1 and seen["judgments"] == alerts.height
    calls = _llm_calls(wh)
    assert len(calls) == len(endpoint.seen)  # one durable audit row per call the endpoint got
    assert all(c["prompt_hash"] and c["model"] == settings.llm.model and c["latency_ms"] >= 0 for c in calls)

    judgments = sql_frame(
        wh,
        "SELECT alert_id, run_id, writer, model, prompt_version, evidence_hash, checks "
        "FROM judgments ORDER BY alert_id",
    )
    assert judgments["alert_id"].to_list() == sorted(alerts["alert_id"].to_list())  # one per alert
    for row in judgments.iter_rows(named=True):
        verdict = json.loads(row["checks"])["verdict"]
        assert "provisional" not in verdict  # the judge's judgment replaced the template of the commit
        assert row["run_id"] == summary.run_id and len(row["evidence_hash"]) == 64
        if verdict == "passed":
            assert (row["writer"], row["model"], row["prompt_version"]) == ("llm", settings.llm.model, PROMPT_VERSION)
    assert any(c["verdict"] == "passed" for c in calls) == ("llm" in judgments["writer"].to_list())
    assert summary.alerts[0]["judgment_check"] == json.loads(judgments["checks"][0])["verdict"]

    # CAP was rendered after the judgments: each message carries its alert's final judgment,
    # the endpoint's canned reply that passed the checks (a template fallback would have the
    # same prompt version and evidence hash as the provisional row, so those prove nothing)
    messages = sql_frame(wh, "SELECT alert_id, identifier, xml FROM cap_messages")
    assert messages.height == summary.row_counts["cap_messages"] >= 1
    _assert_cap_carries_the_judges_text(wh, settings, messages)

    # a second run on the same data: no call, no change
    digest = sql_rows(wh, "SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM judgments")
    again = run_cycle(wh, settings, now=NOW, actor="scheduler")
    assert again.series_processed == 0 and all(v == 0 for v in again.row_counts.values())
    assert len(_llm_calls(wh)) == len(endpoint.seen) == len(calls)
    assert sql_rows(wh, "SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM judgments") == digest


def _assert_cap_carries_the_judges_text(wh: Warehouse, settings, messages) -> None:  # noqa: ANN001
    final = {
        r["alert_id"]: r
        for r in sql_frame(
            wh, "SELECT alert_id, writer, model, prompt_version, evidence_hash, text_en, checks FROM judgments"
        ).iter_rows(named=True)
    }
    for message in messages.iter_rows(named=True):
        judgment, xml = final[message["alert_id"]], message["xml"]
        assert (judgment["writer"], json.loads(judgment["checks"])["verdict"]) == ("llm", "passed")
        assert "Verify the data and brief the duty team." in judgment["text_en"]  # the canned reply
        assert "<value>llm</value>" in xml and f"<value>{settings.llm.model}</value>" in xml
        assert f"<value>{judgment['prompt_version']}</value>" in xml
        assert f"<value>{judgment['evidence_hash']}</value>" in xml
        assert "Verify the data and brief the duty team." in xml and "checks=passed" in xml
        assert PROVISIONAL_VERDICT not in xml and "provisional" not in xml
        assert (settings.path("alerts") / f"{message['identifier']}.xml").is_file()


def _fail_in_write_transaction(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> int:
        raise RuntimeError("disk full while writing series_state")

    monkeypatch.setattr(pipelines.cycle, "upsert_series_state", boom)  # the last write of the transaction


def _fail_writing_final_judgments(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    original = alerting.insert_judgments

    def insert(into, frame):  # noqa: ANN001, ANN202
        if any("provisional" not in c for c in frame["checks"].to_list()):
            raise RuntimeError("disk full while writing judgments")
        return original(into, frame)

    monkeypatch.setattr(alerting, "insert_judgments", insert)


@pytest.mark.parametrize("fail", [_fail_in_write_transaction, _fail_writing_final_judgments])
def test_every_llm_call_stays_audited_when_the_cycle_fails(stress, monkeypatch, fail) -> None:
    settings, wh, endpoint = stress
    fail(wh, monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        run_cycle(wh, settings, now=NOW, actor="scheduler")
    run = last_run(wh)
    assert run["status"] == "failed" and "disk full" in run["error"]
    # every request the endpoint received is in the audit log, whatever rolled back
    assert len(_llm_calls(wh)) == len(endpoint.seen)
    assert not list(settings.path("alerts").glob("*.xml"))  # no CAP file for a failed run
    committed = sql_rows(wh, "SELECT count(*) FROM alerts")[0][0]
    if fail is _fail_in_write_transaction:
        assert committed == 0 and endpoint.seen == []  # rolled back before any LLM call
    else:
        # the alert transaction had committed: the calls were made, their audit rows stay,
        # and the alert keeps its provisional (template) judgment until the next judge
        assert committed >= 1 and len(endpoint.seen) >= 1
        checks = [json.loads(c) for (c,) in sql_rows(wh, "SELECT checks FROM judgments")]
        assert len(checks) == committed and all("provisional" in c["verdict"] for c in checks)
        pending = sql_rows(wh, "SELECT count(*) FROM outbox WHERE identifier IS NULL")[0][0]
        provisional_ids = {i for (i,) in sql_rows(wh, "SELECT judgment_id FROM judgments")}
        assert pending >= 1

        # the disk is fixed; the next cycle has no new data (the fingerprints committed), yet
        # it judges the alerts still carrying the provisional judgment before publishing CAP
        monkeypatch.undo()
        calls_before = len(endpoint.seen)
        again = run_cycle(wh, settings, now=NOW + timedelta(hours=1), actor="scheduler")
        assert again.series_processed == 0 and last_run(wh)["status"] == "success"
        assert len(endpoint.seen) > calls_before  # the endpoint was asked again
        assert len(_llm_calls(wh)) == len(endpoint.seen)  # each call audited
        rows = sql_frame(wh, "SELECT alert_id, run_id, writer, checks FROM judgments")
        assert rows.height == committed  # replaced, not added: the rebuilt evidence is the same
        assert {i for (i,) in sql_rows(wh, "SELECT judgment_id FROM judgments")} == provisional_ids
        for row in rows.iter_rows(named=True):
            assert json.loads(row["checks"])["verdict"] == "passed" and row["writer"] == "llm"
            assert row["run_id"] == again.run_id
        messages = sql_frame(wh, "SELECT alert_id, identifier, xml FROM cap_messages")
        assert messages.height == again.row_counts["cap_messages"] == pending
        _assert_cap_carries_the_judges_text(wh, settings, messages)
        assert sql_rows(wh, "SELECT count(*) FROM outbox WHERE identifier IS NULL")[0][0] == 0

        # judged once: a third run asks nothing
        calls = len(endpoint.seen)
        run_cycle(wh, settings, now=NOW + timedelta(hours=2), actor="scheduler")
        assert len(endpoint.seen) == calls


def _rows_after_cycle(path: Path, **env: str) -> tuple[dict[str, object], dict[str, int]]:
    """Run one more cycle on the home at ``path`` (its data already ingested) as ``_cycled`` does."""
    settings = load_settings(path, environ={"EWS_CYCLE__AS_OF": AS_OF, "EWS_ALERTS__JUDGE": "template", **env})
    with Warehouse.open(settings.warehouse_path) as wh:
        summary = run_cycle(wh, settings, now=CHUNK_NOW)
        return {table: sql_frame(wh, sql) for table, sql in WRITTEN.items()}, summary.row_counts


def test_a_cycle_interrupted_between_chunks_and_run_again_writes_the_rows_of_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk commits on its own (issue 21: bounded memory); the series fingerprints, the
    levels step's rule across series and the alert step commit in a final transaction. A
    failure in chunk 3 leaves chunks 1 and 2 committed and nothing of chunk 3 (its forecasts,
    written before the failure inside its transaction, roll back); the next run takes every
    series again and ends with exactly the rows of a cycle that was never interrupted."""
    whole, _ = _cycled(tmp_path / "whole", FIELD, EWS_CYCLE__CHUNK_SERIES="1")
    ids = sorted(set(whole["anomaly_scores"]["unique_id"]))
    assert len(ids) == len(CHUNK_FILES) + len(FIELD)

    original = pipelines.cycle.run_score_step
    calls: list[int] = []

    def killed_in_chunk_3(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed while scoring chunk 3")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipelines.cycle, "run_score_step", killed_in_chunk_3)
    with pytest.raises(RuntimeError, match="killed while scoring chunk 3"):
        _cycled(tmp_path / "interrupted", FIELD, EWS_CYCLE__CHUNK_SERIES="1")
    monkeypatch.undo()

    settings = load_settings(tmp_path / "interrupted")
    with Warehouse.open(settings.warehouse_path) as wh:
        assert last_run(wh)["status"] == "failed"
        scored = {u for (u,) in sql_rows(wh, "SELECT DISTINCT unique_id FROM anomaly_scores")}
        forecast = {u for (u,) in sql_rows(wh, "SELECT DISTINCT unique_id FROM forecasts")}
        assert scored == forecast == set(ids[:2])  # chunks 1 and 2 whole, chunk 3 not half-written
        assert sql_rows(wh, "SELECT count(*) FROM alerts")[0][0] == 0  # the final transaction never ran
        assert sql_rows(wh, "SELECT count(*) FROM series_state")[0][0] == 0  # every series is taken again

    again, _ = _rows_after_cycle(tmp_path / "interrupted", EWS_CYCLE__CHUNK_SERIES="1")
    assert whole["alerts"].height > 0 and whole["risk_grades"].height > 100
    for table, rows in whole.items():
        assert rows.equals(again[table]), table
    with Warehouse.open(settings.warehouse_path) as wh:  # nothing left parked
        assert sql_rows(wh, "SELECT count(*) FROM grade_stash")[0][0] == 0
        assert sql_rows(wh, "SELECT count(*) FROM grade_witnesses")[0][0] == 0
