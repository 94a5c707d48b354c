"""LLM judgments (alerts/llm_judgment.py, pipelines/llm.py): the grounding checker, the real
embedded model over HTTP on 127.0.0.1, the confidentiality rule, and the budgets.

Two tests talk to the model, through one embedded server started for the module (one
judgment each: at most two calls each, small token budget).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from alerts.guardrails import redact
from alerts.llm_judgment import (
    _EXAMPLE_EVIDENCE,
    _EXAMPLE_REPLY,
    RESPONSE_SCHEMA,
    SECTIONS,
    build_request,
    check_grounding,
    judgment_from_reply,
    parse_reply,
    render,
    statements,
)
from core.errors import ConfigError
from core.settings import load_settings
from pipelines.llm import Judge
from tests.llm_endpoint import ChatEndpoint, LoopbackServer, canned
from tests.sql import sql_rows
from warehouse import Warehouse, alerting

NOW = datetime(2026, 11, 22, 0, 40)
# The demo's Tohoku alert (bundled USGS catalog: 433 events in the Tohoku box on 2011-03-12).
EVIDENCE = {
    "alert_id": "a_597de103cf9621c8",
    "name": "Tohoku, Japan: earthquakes per day",
    "unique_id": "tohoku_count",
    "region": "Tohoku, Japan",
    "hazard": "earthquake",
    "level": "red",
    "ds": "2011-03-12T00:00:00",
    "score": 0.9987,
    "threshold": 0.998,
    "driver": "iforest_subseq",
    "value": 433.0,
    "unit": "events/day",
    "source": "USGS ComCat",
    "classification": "public",
    "data_age_days": 1,
    "as_of": "2011-03-12",
    "group_members": [],
    "basis": {"raw_level": "red", "in_cooldown": False, "exceedance": None},
    "forecast": {"ds": "2011-03-13T00:00:00", "q05": 502.1, "q50": 526.2, "q95": 550.4},
}
# The demo's Maryland alert: orange held by the forecast's exceedance, score below its threshold.
EXCEEDANCE = {
    "alert_id": "a_2ee4d14b789d3646",
    "name": "USGS 01491000 Choptank River near Greensboro, MD",
    "unique_id": "usgs_01491000_discharge",
    "region": "Maryland, US",
    "hazard": "hydrological_extreme",
    "level": "orange",
    "ds": "2011-03-12T00:00:00",
    "score": 0.9684,
    "threshold": 0.995,
    "driver": "level",
    "value": 16.31,
    "unit": "m3/s",
    "source": "USGS NWIS",
    "classification": "public",
    "data_age_days": 1,
    "as_of": "2011-03-12",
    "group_members": [],
    "basis": {
        "raw_level": "none",
        "in_cooldown": True,
        "exceedance": {"level": "orange", "p_path_cross": 0.898, "threshold": "p99", "threshold_value": 35.736},
    },
    "forecast": {"ds": "2011-03-13T00:00:00", "q05": -25.45, "q50": 13.35, "q95": 52.15},
}
PLACES = ("Tohoku, Japan", "Japan", "US", "Maryland, US", "Northern California, US", "Sichuan-Yunnan, China")
GOOD = {
    "situation_en": "Daily event count at {region} is {value}, above threshold {threshold}.",
    "development_en": "Activity may stay high; forecast median {forecast_median}.",
    "actions_en": "Verify the catalog and brief the duty team.",
    "uncertainty_en": "Score {score} is relative to this series' own history.",
    "situation_zh": "{region}地震活动显著增强。",
    "development_zh": "可能持续。",
    "actions_zh": "核实数据并通报。",
    "uncertainty_zh": "仅供参考。",
    "risk_level": "red",
}


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
    assert any(
        "mentions 'US'" in p
        for p in check_grounding({**GOOD, "actions_en": "Notify the US desk."}, EVIDENCE, known_places=("US",))
    )
    assert any("date" in p for p in check_grounding({**GOOD, "development_en": "Expect calm by March."}, EVIDENCE))
    assert check_grounding({**GOOD, "risk_level": "yellow"}, EVIDENCE)[0].startswith("risk_level")
    # numbers come from data: placeholders render the evidence values
    assert (
        render(GOOD["situation_en"], EVIDENCE)
        == "Daily event count at Tohoku, Japan is 433 events/day, above threshold 0.9980."
    )
    judgment = judgment_from_reply(GOOD, EVIDENCE, model="m", checks={"verdict": "passed"})
    assert "tohoku_count" in judgment.text_en and "RED" in judgment.text_en and "auxiliary" in judgment.label
    assert judgment.text_en.startswith("[Exercise: replay as of 2011-03-12]")


@pytest.mark.parametrize(
    ("key", "text", "caught"),
    [
        ("situation_zh", "{region}三月十二日出现强余震。", "三"),  # a date in Chinese numerals
        ("development_zh", "未来三天可能发生七级余震。", "三"),  # a horizon and a magnitude
        ("situation_zh", "约两千人受影响。", "两千"),
        ("uncertainty_zh", "概率约为百分之八十。", "百分之八十"),
        ("actions_zh", "第三次核实数据。", "第三"),
        ("situation_en", "Activity rose twelve-fold at {region}.", "twelve"),
        ("development_en", "Expect several hundred aftershocks.", "hundred"),
    ],
)
def test_checker_catches_numbers_written_in_words(key: str, text: str, caught: str) -> None:
    problems = check_grounding({**GOOD, key: text}, EVIDENCE)
    assert any("written in words" in p and caught in p for p in problems), problems


def test_checker_passes_ordinary_words_that_only_look_numeric() -> None:
    for key, text in (
        ("actions_zh", "十分重要：千万注意山洪，万一水位上涨请通报百姓。"),
        ("situation_zh", "{region}出现一次异常，一些站点数据偏高。"),
        ("development_en", "No one can rule out a further rise at {region}."),
    ):
        assert check_grounding({**GOOD, key: text}, EVIDENCE) == [], text


def test_checker_rejects_invented_places_the_gazetteer_does_not_know() -> None:
    """A free-style reply never needs to write a name ({region}, {name} carry them): an English
    capitalised name or a Chinese word ending in a place character must occur in the evidence."""
    planted_en = {
        "Calm weather near Pirate's Cove.": "Pirate's Cove",  # what the 135M model wrote
        "Pirate's Cove is calm.": "Pirate's Cove",  # a name opening the sentence
        "Activity near New York is high.": "New York",  # the region is Japan
        "New York reports calm.": "New York",
        "Near New York the count is {value}.": "New York",
        "{region} Bay is calm.": "Bay",
        "It may ease. Expect calm in Kyoto.": "Kyoto",
        "Expect calm by Monday.": "Monday",  # a weekday is a date, never written by the model
        "North Tohoku is quiet.": "North Tohoku",  # a place of its own, not the evidence's
    }
    for text, name in planted_en.items():
        for key in ("situation_en", "actions_en"):
            problems = check_grounding({**GOOD, key: text}, EVIDENCE, known_places=PLACES)
            assert problems == [f"{key}: name {name!r} is not in the evidence; write {{region}} or {{name}}"], (
                text,
                problems,
            )
    planted_zh = {
        "北京市地震活动增强。": "北京市",
        "{region}附近的北京地震活动增强。": "北京",
        "上海可能发生海啸。": "上海",
        "黄河水位上涨。": "黄河",
        "东京湾附近异常。": "东京湾",
    }
    for text, word in planted_zh.items():
        problems = check_grounding({**GOOD, "situation_zh": text}, EVIDENCE, known_places=PLACES)
        assert problems == [f"situation_zh: place-like word {word!r} is not in the evidence; write {{region}}"], (
            text,
            problems,
        )
    assert check_grounding({**GOOD, "actions_en": "Warn 北京市 now."}, EVIDENCE) == [
        "actions_en: place-like word '北京市' is not in the evidence; write {region}"
    ]
    problems = check_grounding({**GOOD, "development_zh": "Pirate's Cove附近异常。"}, EVIDENCE)
    assert problems == ['development_zh: name "Pirate\'s Cove" is not in the evidence; write {region} or {name}']

    # what traces passes: the evidence's own names, the engine's words, generic Chinese words
    legitimate_en = (
        "The USGS ComCat catalog shows {value} for {region}.",
        "Activity in Tohoku, Japan stays high.",
        "Near Tohoku the count is {value}.",
        "The RED level holds; the AI label and CAP feed apply.",
        "Earthquakes stay frequent. Watch {name} closely.",
        "{region}: the count may ease.",
    )
    legitimate_zh = (
        "沿海地区可能出现海啸，山区注意山洪。",
        "{region}预测区间较宽，全国关注。",
        "{region}的{hazard_zh}风险维持{level_zh}。",
        "Tohoku地区地震活动增强。",
    )
    for text in legitimate_en:
        assert check_grounding({**GOOD, "situation_en": text}, EVIDENCE, known_places=PLACES) == [], text
    for text in legitimate_zh:
        assert check_grounding({**GOOD, "situation_zh": text}, EVIDENCE, known_places=PLACES) == [], text
    # a Chinese name traces to the evidence's own text (series name, hazard placeholder), only there
    market = {**GOOD, "risk_level": "red", "situation_zh": "市场风险上升，中国大陆关注。"}
    assert check_grounding(market, MARKET) == []
    assert check_grounding(market, EVIDENCE) == [
        "situation_zh: place-like word '中国' is not in the evidence; write {region}"
    ]
    assert check_grounding({**GOOD, "situation_zh": "长江水位上涨。"}, {**EVIDENCE, "name": "长江汉口站水位"}) == []
    assert check_grounding({**GOOD, "situation_zh": "长江水位上涨。"}, EVIDENCE) != []
    assert check_grounding({**GOOD, "situation_zh": "北京地区异常。"}, EVIDENCE) != []
    orange = {**GOOD, "risk_level": "orange"}  # the Maryland alert: a name traces as a phrase
    assert check_grounding({**orange, "situation_en": "Verify USGS NWIS data on the Choptank River."}, EXCEEDANCE) == []
    assert check_grounding({**orange, "situation_en": "The Greensboro River is high."}, EXCEEDANCE) == [
        "situation_en: name 'Greensboro River' is not in the evidence; write {region} or {name}"
    ]
    # known limits (documented): a lowercase name, a one-word name opening a sentence, a Chinese
    # name without a place character, one inside a generic word; and a false alarm
    for key, text in (
        ("situation_en", "Activity near new york is high."),
        ("situation_en", "Atlantis is flooded."),
        ("situation_zh", "日本异常。"),
        ("situation_zh", "大阪异常。"),
        ("situation_zh", "关东地区异常。"),
    ):
        assert check_grounding({**GOOD, key: text}, EVIDENCE) == [], text
    assert check_grounding({**GOOD, "situation_zh": "强海啸可能来袭。"}, EVIDENCE) == [
        "situation_zh: place-like word '强海' is not in the evidence; write {region}"
    ]


# Further evidence so that every statement of the choices style is offered somewhere: the level
# held by the cool-down (yellow), reached by persistence (blue), a market series with a Chinese name.
COOLDOWN = {**EXCEEDANCE, "level": "yellow", "basis": {"raw_level": "none", "in_cooldown": True, "exceedance": None}}
PERSISTENCE = {
    **EXCEEDANCE,
    "level": "blue",
    "data_age_days": None,
    "basis": {"raw_level": "none", "in_cooldown": False, "exceedance": None},
}
MARKET = {
    **EVIDENCE,
    "name": "沪深300指数日收益",
    "unique_id": "csi300_return",
    "region": "中国大陆",
    "hazard": "market_risk",
    "unit": "",
    "source": "中证指数有限公司",
}


def test_offered_statements_hold_for_the_evidence_and_pass_the_checker() -> None:
    """The choices style: every statement offered passes the checker (with its place rules),
    factual ones are offered only when they hold, and a reply outside the offer is rejected."""
    seen: set[str] = set()
    for evidence in (EVIDENCE, EXCEEDANCE, COOLDOWN, PERSISTENCE, MARKET):
        offered = statements(evidence)
        seen.update(en for part in offered.values() for en in part)
        assert all(offered[s] for s in SECTIONS)
        for section in SECTIONS:
            for en, zh in offered[section].items():
                reply = {**GOOD, "risk_level": evidence["level"], f"{section}_en": en, f"{section}_zh": zh}
                assert check_grounding(reply, evidence, known_places=PLACES) == [], (section, en)
    assert any("cool-down" in s for s in seen) and any("persistence" in s for s in seen)
    assert any("Keep monitoring" in s for s in seen) and any("may cross" in s for s in seen)
    tohoku, maryland = statements(EVIDENCE), statements(EXCEEDANCE)
    assert any("reached the {level} threshold" in s for s in tohoku["situation"])
    assert not any("reached the {level} threshold" in s for s in maryland["situation"])  # 0.9684 < 0.995
    assert any("may cross {cross_threshold}" in s for s in maryland["situation"])
    assert any("above the latest value" in s for s in tohoku["development"])  # 526.2 > 433
    assert any("below the latest value" in s for s in maryland["development"])  # 13.35 < 16.31
    assert any("prepare the measures" in s for s in tohoku["actions"])
    assert not any("Keep monitoring" in s for s in tohoku["actions"])  # not offered for red
    # what redaction withholds shapes nothing offered: no comparison with a hidden value
    hidden, _ = redact({**EVIDENCE, "classification": "confidential"}, cleared="public")
    assert not any("latest value" in s or "{score}" in s for part in statements(hidden).values() for s in part)

    choice = {"risk_level": "red", **{f"{s}_en": next(iter(tohoku[s])) for s in SECTIONS}}
    reply = parse_reply(json.dumps(choice), offered=tohoku)
    assert reply["situation_zh"] == tohoku["situation"][choice["situation_en"]]  # the fixed translation
    text = judgment_from_reply(reply, EVIDENCE, model="m", checks={}).text_en
    assert "The anomaly score 0.9987 reached the RED threshold 0.9980." in text  # numbers rendered from data
    for planted in ("The anomaly score 0.9987 reached the threshold.", "Escalate to orange."):
        with pytest.raises(ValueError, match="not one of the offered statements"):
            parse_reply(json.dumps({**choice, "situation_en": planted}), offered=tohoku)
    assert check_grounding({**reply, "risk_level": "orange"}, EVIDENCE)[0].startswith("risk_level")


def test_request_schema_admits_no_written_number_and_fits_the_prompt_cache() -> None:
    body, _ = build_request(EVIDENCE, model="m", max_tokens=10, nonce="n1")
    other, _ = build_request(EXCEEDANCE, model="m", max_tokens=10, nonce="n2")
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["situation_en"]["enum"] == list(statements(EVIDENCE)["situation"])
    assert body["messages"][:3] == other["messages"][:3]  # system + worked example: the cached prefix
    assert "<<DATA-n1>>" in body["messages"][3]["content"]
    free, _ = build_request(EVIDENCE, model="m", max_tokens=10, nonce="n1", style="free")
    assert free["response_format"]["json_schema"]["schema"] is RESPONSE_SCHEMA
    en, zh = (
        RESPONSE_SCHEMA["properties"]["situation_en"]["pattern"],
        RESPONSE_SCHEMA["properties"]["situation_zh"]["pattern"],
    )
    assert re.fullmatch(en, "{name} in {region} reached {value}; watch it.")
    assert re.fullmatch(zh, "{region}地震活动显著增强。")
    assert re.fullmatch(en, "The score {score} is high; watch {name}.")
    for text in (
        "Count reached 433.",
        "As of 2011-03-12.",
        'He said "stop".',
        "Calm near Pirate's Cove.",
        "Activity near New York is high.",
        "It eases. Watch it.",
    ):
        assert not re.fullmatch(en, text), text  # no digit, and a capital only as the first character
    assert re.fullmatch(zh, "{hazard_zh}预警维持{level_zh}。")
    for text in ("概率约为95%。", "Pirate's Cove附近异常。", "tohoku地区异常。", "{region附近"):
        assert not re.fullmatch(zh, text), text  # no digit, no Latin letter outside a placeholder
    # the free worked example fits its own schema and passes the checker
    example = _EXAMPLE_REPLY["free"]
    for key, value in example.items():
        if key != "risk_level":
            assert re.fullmatch(RESPONSE_SCHEMA["properties"][key]["pattern"], value), key
    assert check_grounding(example, _EXAMPLE_EVIDENCE) == []
    with pytest.raises(ConfigError, match="reply_style"):
        _settings(Path("/nonexistent-ews-home"), reply_style="poetry")


def test_choices_reply_passes_and_a_planted_number_falls_back_with_the_raw_reply_audited(tmp_path: Path) -> None:
    offered = statements(EVIDENCE)
    good = {"risk_level": "red", **{f"{s}_en": list(offered[s])[-1] for s in SECTIONS}}
    bad = {**good, "situation_en": "Daily count reached 4330 events."}
    endpoint = ChatEndpoint(canned([json.dumps(good), json.dumps(bad)]))
    try:
        settings = _settings(tmp_path, base_url=endpoint.url, reply_style="choices")
        with Warehouse.open(settings.warehouse_path) as wh:
            judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
            passed = judge.write(EVIDENCE)
            rejected = judge.write({**EVIDENCE, "alert_id": "a_other"})
            judge.close()
            calls = [
                json.loads(d)
                for (d,) in sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.call' ORDER BY audit_id")
            ]
    finally:
        endpoint.close()
    assert passed.writer == "llm" and passed.checks["reply_style"] == "choices"
    assert offered["actions"][good["actions_en"]] in passed.text_zh
    assert rejected.writer == "template" and "review_flag" in rejected.checks
    assert "not one of the offered statements" in rejected.checks["fallback_reason"]
    assert [c["verdict"] == "passed" for c in calls] == [True, False, False]
    assert "4330" in calls[-1]["reply"]  # the raw reply is kept for review
    assert any("3 call(s)" in n and "1 judgment(s) passed" in n for n in judge.notes)


def _recording_proxy() -> LoopbackServer:
    """A real HTTP proxy on loopback: records each request body (``bodies``), forwards it to
    ``proxy.target``."""

    def forward(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(
            proxy.target + path,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": headers.get("Authorization", "")},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return 200, response.read()

    proxy = LoopbackServer(forward)
    proxy.target = ""
    return proxy


def _settings(tmp_path: Path, **env: str):  # noqa: ANN202
    return load_settings(tmp_path, environ={f"EWS_LLM__{k.upper()}": v for k, v in env.items()})


EMBEDDED_KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """One real embedded llama.cpp server (SmolLM2-135M) for the module's model tests."""
    from pipelines.llm import EmbeddedServer

    settings = _settings(tmp_path_factory.mktemp("embedded"))
    server = EmbeddedServer(settings.llm, api_key=EMBEDDED_KEY)
    assert server.base_url.startswith("http://127.0.0.1:")
    yield server
    server.close()


def _judge_once(tmp_path: Path, evidence: dict, **env: str):  # noqa: ANN202
    """One judgment by the embedded model (generous time limits: the cores may be shared);
    returns it, the ``llm.call`` audit details and the ``llm.redacted`` rows."""
    with Warehouse.open(_settings(tmp_path).warehouse_path) as wh:
        settings = _settings(tmp_path, timeout_seconds="240", run_seconds="600", api_key=EMBEDDED_KEY, **env)
        judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
        judgment = judge.write(evidence)
        judge.close()
        calls = [
            json.loads(d)
            for (d,) in sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.call' ORDER BY audit_id")
        ]
        redactions = sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.redacted'")
    return judgment, calls, redactions


def test_embedded_model_judges_over_loopback_and_a_marked_value_never_leaves(tmp_path: Path, embedded) -> None:  # noqa: ANN001
    """The real SmolLM2 behind a recording proxy: the confidential value is redacted from the
    request, the reply is checked, and every call is audited."""
    secret_value = 433.218764  # the marked value: confidential series, endpoint cleared for public
    evidence = {**EVIDENCE, "classification": "confidential", "value": secret_value}
    proxy = _recording_proxy()
    proxy.target = embedded.base_url
    try:
        judgment, calls, redactions = _judge_once(tmp_path, evidence, reply_style="choices", base_url=proxy.url)
    finally:
        proxy.close()
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
    print(
        json.dumps(
            {
                "writer": judgment.writer,
                "verdict": judgment.checks["verdict"],
                "calls": [c["verdict"][:120] for c in calls],
            }
        )
    )
    # the stored text is rendered locally from the full evidence: the value is there, not sent
    assert "433.2" in judgment.text_en and "auxiliary" in judgment.label


_FIELD = re.compile(r'"((?:situation|development|actions|uncertainty)_(?:en|zh))"\s*:\s*("(?:[^"\\]|\\.)*")')


def test_embedded_model_free_style_obeys_the_patterns_and_the_checker(tmp_path: Path, embedded) -> None:  # noqa: ANN001
    """The free style against the real llama.cpp server: it accepts the schema (its grammar
    converter handles the patterns), every field it writes fits its pattern (no digit, a capital
    only first in English, no Latin letter outside a placeholder in Chinese), and the reply is
    checked like any other (passed, or rejected twice and the template used)."""
    judgment, calls, _ = _judge_once(tmp_path, EVIDENCE, reply_style="free", base_url=embedded.base_url)
    assert 1 <= len(calls) <= 2
    fields = 0
    for call in calls:
        assert call["reply_style"] == "free" and call["tokens"]["completion"] > 0, call["verdict"]
        assert call["verdict"] == "passed" or call["verdict"].startswith("rejected:")  # no server error
        for key, raw in _FIELD.findall(call["reply"]):  # every complete field, even of a truncated reply
            value = json.loads(raw)
            assert re.fullmatch(RESPONSE_SCHEMA["properties"][key]["pattern"], value), (key, value)
            fields += 1
    assert fields >= 4
    if judgment.writer == "llm":
        assert judgment.checks["verdict"] == "passed" and judgment.checks["reply_style"] == "free"
    else:
        assert judgment.checks["verdict"] == "rejected, template used" and "review_flag" in judgment.checks
    print(
        json.dumps(
            {
                "writer": judgment.writer,
                "replies": [c["reply"] for c in calls],
                "verdicts": [c["verdict"][:300] for c in calls],
            },
            ensure_ascii=False,
        )
    )


def _slow_endpoint(delay: float) -> LoopbackServer:
    """Answers every request after ``delay`` seconds (with an empty body)."""

    def respond(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        time.sleep(delay)
        return 200, b""

    return LoopbackServer(respond)


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"max_calls_per_run": "0"}, "call budget"),
        ({"run_token_budget": "50"}, "token budget"),
        ({"max_prompt_chars": "200"}, "input size"),
        ({"rate_per_minute": "0"}, "rate limit"),
    ],
)
def test_budgets_degrade_to_the_template_and_say_so(tmp_path: Path, env: dict, reason: str) -> None:
    settings = _settings(tmp_path, base_url="http://127.0.0.1:9", **env)
    with Warehouse.open(settings.warehouse_path) as wh:
        judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
        judgment = judge.write(EVIDENCE)
        assert judgment.writer == "template" and reason in judgment.checks["fallback_reason"]
        assert any(reason in n for n in judge.notes)
        assert sql_rows(wh, "SELECT count(*) FROM audit_log WHERE action = 'llm.call'")[0][0] == 0


def test_run_time_budget_caps_the_call_timeout_and_degrades_to_the_template(tmp_path: Path) -> None:
    slow = _slow_endpoint(5.0)
    try:
        settings = _settings(tmp_path, base_url=slow.url, timeout_seconds="10", run_seconds="2")
        with Warehouse.open(settings.warehouse_path) as wh:
            judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
            judgment = judge.write(EVIDENCE)
            assert judgment.writer == "template" and "time budget" in judgment.checks["fallback_reason"]
            assert any("time budget" in n for n in judge.notes)
            details = [json.loads(d) for (d,) in sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.call'")]
            # the call's deadline was what was left of the run's 2 s, not the 10 s per call, so the
            # endpoint's 5 s answer came too late (read from the audit, not from a wall clock)
            assert len(details) == 1 and "too slow" in details[0]["verdict"]
            assert 0 < details[0]["timeout_seconds"] <= 2
    finally:
        slow.close()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>proxy error</html>",
        b'{"choices": []}',
        b"[1, 2]",
        b'{"choices": [{"message": {"content": {"x": 1}}}]}',
        b'{"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": "many"}}',
    ],
)
def test_a_malformed_answer_is_an_audited_failure_not_a_crash(tmp_path: Path, body: bytes) -> None:
    """A 200 whose body is empty, HTML, or JSON of the wrong shape (a proxy in front of the
    endpoint, a half-configured server) degrades to the template and is audited, twice (retry)."""
    server = LoopbackServer(lambda path, headers, request: (200, body))
    try:
        settings = _settings(tmp_path, base_url=server.url, timeout_seconds="10")
        with Warehouse.open(settings.warehouse_path) as wh:
            judgment = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test").write(EVIDENCE)
            verdicts = [
                json.loads(d)["verdict"]
                for (d,) in sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.call'")
            ]
    finally:
        server.close()
    assert judgment.writer == "template" and judgment.checks.get("review_flag")
    assert len(verdicts) == 2
    assert all(v.startswith("error: endpoint") and ("OpenAI chat completion" in v or "non-text" in v) for v in verdicts)


def test_building_the_first_request_is_not_charged_to_the_run_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request's screening loads the sentence encoder once per process (5-11 s cold);
    the run's clock starts after it. Here the screening is made 1.5 s slower than the whole 1 s
    budget: the call is still made (and audited), the budget then caps its timeout as usual."""
    import pipelines.llm as llm_module

    real = llm_module.build_request

    def slow_build(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(llm_module, "build_request", slow_build)
    quick = _slow_endpoint(0.0)
    try:
        settings = _settings(tmp_path, base_url=quick.url, timeout_seconds="10", run_seconds="1")
        with Warehouse.open(settings.warehouse_path) as wh:
            judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
            judge.write(EVIDENCE)
            calls = sql_rows(wh, "SELECT count(*) FROM audit_log WHERE action = 'llm.call'")[0][0]
    finally:
        quick.close()
    assert calls >= 1  # when the clock started before building, the 1.5 s used up the budget: 0 calls


def test_a_server_start_that_uses_up_the_time_budget_sends_nothing_and_counts_no_call(tmp_path: Path) -> None:
    """The real embedded server takes longer to start than the run's 0.05 s: no request is
    sent, so there is no ``llm.call`` row and nothing is spent; an ``llm.skipped`` row says why."""
    settings = _settings(tmp_path, run_seconds="0.05", reply_style="choices")
    with Warehouse.open(settings.warehouse_path) as wh:
        judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
        try:
            judgment = judge.write(EVIDENCE)
            assert (judge.calls, judge.tokens) == (0, 0)
        finally:
            judge.close()
        actions = [
            a for (a,) in sql_rows(wh, "SELECT action FROM audit_log WHERE action LIKE 'llm.%' ORDER BY audit_id")
        ]
        skipped = [json.loads(d) for (d,) in sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.skipped'")]
    assert actions == ["llm.server_started", "llm.skipped"]
    assert "time budget" in skipped[0]["reason"] and skipped[0]["prompt_hash"]
    assert judgment.writer == "template" and judgment.checks["verdict"] == "template (budget)"
    assert "review_flag" not in judgment.checks  # a budget is not a failed check


def test_timeout_is_audited_and_switches_and_revocations_stop_the_path(tmp_path: Path) -> None:
    slow = _slow_endpoint(3.0)
    try:
        settings = _settings(tmp_path, base_url=slow.url, timeout_seconds="0.5")
        with Warehouse.open(settings.warehouse_path) as wh:
            judge = Judge(wh=wh, settings=settings, now=NOW, run_id="r_test")
            judgment = judge.write(EVIDENCE)
            assert judgment.writer == "template" and "too slow" in judgment.checks["fallback_reason"]
            assert judgment.checks.get("review_flag")
            verdicts = [
                json.loads(d)["verdict"]
                for (d,) in sql_rows(wh, "SELECT detail FROM audit_log WHERE action = 'llm.call'")
            ]
            assert len(verdicts) == 2 and all("too slow" in v for v in verdicts)  # one retry, then template

            alerting.set_control(
                wh, f"revoked:{slow.url}", {"by": "sec.wang", "reason": "key leaked"}, by="sec.wang", at=NOW
            )
            revoked = Judge(wh=wh, settings=settings, now=NOW, run_id="r2").write(EVIDENCE)
            assert "revoked by sec.wang: key leaked" in revoked.checks["fallback_reason"]
            alerting.set_control(
                wh, "path", {"state": "off", "by": "duty.li", "reason": "incident 7"}, by="duty.li", at=NOW
            )
            off = Judge(wh=wh, settings=settings, now=NOW, run_id="r3").write(EVIDENCE)
            assert "switched off by duty.li" in off.checks["fallback_reason"]
            assert sql_rows(wh, "SELECT count(*) FROM audit_log WHERE action = 'llm.call'")[0][0] == 2
    finally:
        slow.close()
