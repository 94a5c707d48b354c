"""LLM judgments (alerts/llm_judgment.py, pipelines/llm.py): the grounding checker, the real
embedded model over HTTP on 127.0.0.1, the confidentiality rule, and the budgets.

Only one test talks to the model (one judgment: at most two calls, small token budget).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alerts.llm_judgment import check_grounding, judgment_from_reply, render
from core.settings import load_settings
from pipelines.llm import Judge
from warehouse import Warehouse, alerting

NOW = datetime(2026, 11, 22, 0, 40)
# The demo's Tohoku alert (bundled USGS catalog: 433 events in the Tohoku box on 2011-03-12).
EVIDENCE = {"alert_id": "a_597de103cf9621c8", "name": "Tohoku, Japan: earthquakes per day",
            "unique_id": "tohoku_count", "region": "Tohoku, Japan", "hazard": "earthquake", "level": "red",
            "ds": "2011-03-12T00:00:00", "score": 0.9987, "threshold": 0.998, "driver": "iforest_subseq",
            "value": 433.0, "unit": "events/day", "source": "USGS ComCat", "classification": "public",
            "data_age_days": 1, "as_of": "2011-03-12", "group_members": [],
            "forecast": {"ds": "2011-03-13T00:00:00", "q05": 502.1, "q50": 526.2, "q95": 550.4}}
GOOD = {"situation_en": "Daily event count at {region} is {value}, above threshold {threshold}.",
        "development_en": "Activity may stay high; forecast median {forecast_median}.",
        "actions_en": "Verify the catalog and brief the duty team.",
        "uncertainty_en": "Score {score} is relative to this series' own history.",
        "situation_zh": "{region}地震活动显著增强。", "development_zh": "可能持续。",
        "actions_zh": "核实数据并通报。", "uncertainty_zh": "仅供参考。", "risk_level": "red"}


def test_checker_catches_planted_wrong_numbers_levels_places_and_dates() -> None:
    assert check_grounding(GOOD, EVIDENCE, known_places=("Tohoku, Japan", "Japan", "US")) == []
    planted = {
        "situation_en": ("Daily event count is 4330, above threshold {threshold}.", "'4330'"),
        "development_en": ("A magnitude 2.1 aftershock is likely.", "'2.1'"),
        "uncertainty_zh": ("概率约为95%。", "'95'"),
        "actions_en": ("Escalate to orange.", "mentions level 'orange'"),
        "situation_zh": ("{region}发布橙色预警。", "mentions level 橙色"),
        "uncertainty_en": ("See the {magnitude} estimate.", "unknown placeholder"),
    }
    for key, (text, expected) in planted.items():
        problems = check_grounding({**GOOD, key: text}, EVIDENCE, known_places=("Tohoku, Japan", "US"))
        assert any(expected in p for p in problems), (key, problems)
    assert any("mentions 'US'" in p for p in check_grounding(
        {**GOOD, "actions_en": "Notify the US desk."}, EVIDENCE, known_places=("US",)))
    assert any("date" in p for p in check_grounding(
        {**GOOD, "development_en": "Expect calm by March."}, EVIDENCE))
    assert check_grounding({**GOOD, "risk_level": "yellow"}, EVIDENCE)[0].startswith("risk_level")
    # numbers come from data: placeholders render the evidence values
    assert render(GOOD["situation_en"], EVIDENCE) == \
        "Daily event count at Tohoku, Japan is 433 events/day, above threshold 0.998."
    judgment = judgment_from_reply(GOOD, EVIDENCE, model="m", checks={"verdict": "passed"})
    assert "tohoku_count" in judgment.text_en and "RED" in judgment.text_en and "auxiliary" in judgment.label
    assert judgment.text_en.startswith("[Exercise: replay as of 2011-03-12]")


class RecordingProxy:
    """A real HTTP proxy on loopback: records each request body, forwards it to the target."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.target = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(body)
                request = urllib.request.Request(outer.target + self.path, data=body, headers={
                    "Content-Type": "application/json", "Authorization": self.headers.get("Authorization", "")})
                with urllib.request.urlopen(request, timeout=300) as response:
                    payload = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _settings(tmp_path: Path, **env: str):  # noqa: ANN202
    return load_settings(tmp_path, environ={f"EWS_LLM__{k.upper()}": v for k, v in env.items()})


def test_embedded_model_judges_over_loopback_and_a_marked_value_never_leaves(tmp_path: Path) -> None:
    """The real SmolLM2 behind a recording proxy: the confidential value is redacted from the
    request, the reply is checked, and every call is audited."""
    from pipelines.llm import EmbeddedServer

    settings = _settings(tmp_path, max_tokens="140", timeout_seconds="240", run_seconds="600")
    secret_value = 433.218764  # the marked value: confidential series, endpoint cleared for public
    evidence = {**EVIDENCE, "classification": "confidential", "value": secret_value}
    server = EmbeddedServer(settings.llm, api_key="test-key-0123456789")
    proxy = RecordingProxy()
    proxy.target = server.base_url
    assert server.base_url.startswith("http://127.0.0.1:")
    try:
        with Warehouse.open(settings.warehouse_path) as wh:
            settings = _settings(tmp_path, max_tokens="140", timeout_seconds="240", run_seconds="600",
                                 base_url=proxy.url, api_key="test-key-0123456789")
            judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
            judgment = judge.write(evidence)
            judge.close()
            calls = [json.loads(d) for (d,) in wh.execute(
                "SELECT detail FROM audit_log WHERE action = 'llm.call' ORDER BY audit_id")]
            redactions = wh.execute("SELECT detail FROM audit_log WHERE action = 'llm.redacted'")
    finally:
        proxy.close()
        server.close()
    assert 1 <= len(proxy.bodies) <= 2 and len(calls) == len(proxy.bodies)
    for body in proxy.bodies:
        assert b"433.2187" not in body and b"redacted: confidential" in body
    assert json.loads(redactions[0][0])["fields"][:2] == ["value", "forecast"]
    for call in calls:
        assert call["prompt_hash"] and call["tokens"]["completion"] > 0 and call["latency_ms"] > 0
        assert call["verdict"] == "passed" or call["verdict"].startswith("rejected:")
    if judgment.writer == "llm":
        assert judgment.checks["verdict"] == "passed" and calls[-1]["verdict"] == "passed"
    else:  # the checker rejected the model twice: template + flag for human review
        assert judgment.checks["verdict"] == "rejected, template used" and judgment.checks["problems"]
        assert "review_flag" in judgment.checks
    print(json.dumps({"writer": judgment.writer, "verdict": judgment.checks["verdict"],
                      "calls": [c["verdict"][:120] for c in calls]}))
    # the stored text is rendered locally from the full evidence: the value is there, not sent
    assert "433.2" in judgment.text_en and "auxiliary" in judgment.label


class SlowEndpoint:
    def __init__(self, delay: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("env", "reason"), [
    ({"max_calls_per_run": "0"}, "call budget"),
    ({"run_token_budget": "50"}, "token budget"),
    ({"max_prompt_chars": "200"}, "input size"),
    ({"rate_per_minute": "0"}, "rate limit"),
])
def test_budgets_degrade_to_the_template_and_say_so(tmp_path: Path, env: dict, reason: str) -> None:
    settings = _settings(tmp_path, base_url="http://127.0.0.1:9", **env)
    with Warehouse.open(settings.warehouse_path) as wh:
        judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
        judgment = judge.write(EVIDENCE)
        assert judgment.writer == "template" and reason in judgment.checks["fallback_reason"]
        assert any(reason in n for n in judge.notes)
        assert wh.execute("SELECT count(*) FROM audit_log WHERE action = 'llm.call'")[0][0] == 0


def test_timeout_is_audited_and_switches_and_revocations_stop_the_path(tmp_path: Path) -> None:
    slow = SlowEndpoint(delay=3.0)
    try:
        settings = _settings(tmp_path, base_url=slow.url, timeout_seconds="0.5")
        with Warehouse.open(settings.warehouse_path) as wh:
            judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
            judgment = judge.write(EVIDENCE)
            assert judgment.writer == "template" and "too slow" in judgment.checks["fallback_reason"]
            assert judgment.checks.get("review_flag")
            verdicts = [json.loads(d)["verdict"] for (d,) in wh.execute(
                "SELECT detail FROM audit_log WHERE action = 'llm.call'")]
            assert len(verdicts) == 2 and all("too slow" in v for v in verdicts)  # one retry, then template

            alerting.set_control(wh, f"revoked:{slow.url}", {"by": "sec.wang", "reason": "key leaked"}, by="sec.wang", at=NOW)
            revoked = Judge(wh=wh, settings=settings, now=NOW, run_id="r2").write(EVIDENCE)
            assert "revoked by sec.wang: key leaked" in revoked.checks["fallback_reason"]
            alerting.set_control(wh, "path", {"state": "off", "by": "duty.li", "reason": "incident 7"}, by="duty.li", at=NOW)
            off = Judge(wh=wh, settings=settings, now=NOW, run_id="r3").write(EVIDENCE)
            assert "switched off by duty.li" in off.checks["fallback_reason"]
            assert wh.execute("SELECT count(*) FROM audit_log WHERE action = 'llm.call'")[0][0] == 2
    finally:
        slow.close()
