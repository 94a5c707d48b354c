"""Judgments and CAP that state a field model's probability, window and magnitude (issue 14).

Hand-made evidence bundles of each basis (the shared contract of the grade evidence: ``basis``
``hazard_model`` with a ``hazard`` forecast, or ``statistical_rarity`` with its cap) go through
the template writer, the vetted statements of the LLM path and the CAP 1.2 builder with XSD
validation; the contradiction check fires on figures that disagree.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import polars as pl
from lxml import etree

from alerts.cap import CAP_NS, Area, CapJudgment, build_cap, cap_identifier, validate_cap
from alerts.judgment import evidence_contradictions, grade_basis, write_template_judgment
from alerts.llm_judgment import (
    SECTIONS,
    check_grounding,
    judgment_from_reply,
    parse_reply,
    render,
    statements,
)
from pipelines.alert_step import evidence_bundle

NS = {"cap": CAP_NS}
CST = timezone(timedelta(hours=8))

# The grade evidence of the Tohoku count series on the replay day, as the cycle writes it.
AFTERSHOCK_GRADE = {
    "basis": "hazard_model",
    "driver": "level",
    "raw_level": "red",
    "in_cooldown": False,
    "hazard": {
        "model": "reasenberg_jones",
        "probability": 0.64,
        "window_days": 7.0,
        "magnitude": 6.0,
        "event": "M>=6 earthquake",
        "expected_count": 1.1,
        "count_range": [0, 3],
        "mainshock": {"time": "2011-03-09T02:45:20", "magnitude": 7.3},
        "ladder": {"yellow": 0.05, "orange": 0.2, "red": 0.5},
        "level": "red",
    },
}
FLOOD_GRADE = {
    "basis": "hazard_model",
    "hazard": {
        "model": "return_period",
        "probability": 0.4,
        "window_days": 3.0,
        "event": "flow above the 5-year return level",
        "return_period_years": 5.0,
        "threshold": 123.0,
        "unit": "m3/s",
        "ladder": {"yellow": 0.2, "orange": 0.4, "red": 0.7},
        "distribution": "gumbel",
        "return_level_fit": {"method": "gumbel", "years_used": 38},
    },
}
# The market composite's grade as the cycle writes it (pipelines.market_step.market_level) for
# the week of 2009-03-13, fitted on the bundled series up to then (signals shortened to four).
MARKET_GRADE = {
    "basis": "hazard_model",
    "raw_level": "none",
    "in_cooldown": False,
    "hazard": {
        "model": "klr_signals",
        "probability": 0.8103,
        "window_days": 365.0,
        "event": "the S&P 500 falls 20 % from its peak",
        "target": "sp500_bear",
        "targets": {
            "us_recession": {
                "level": "blue",
                "probability": 0.9167,
                "signal_share": 0.3691,
                "base_rate": 0.1168,
                "train_span": ["1981-01-02", "2007-03-09"],
                "events_in_training": 4,
                "training_weeks": 36,
            },
            "sp500_bear": {
                "level": "orange",
                "probability": 0.8103,
                "signal_share": 0.5100,
                "base_rate": 0.1457,
                "train_span": ["1981-01-02", "2008-03-14"],
                "events_in_training": 4,
                "training_weeks": 58,
                "probability_from": "blue",
            },
        },
        "segments": [
            {"segment": "equity", "subindex": 0.9918, "contribution": 0.3157},
            {"segment": "fx", "subindex": 0.9031, "contribution": 0.2894},
            {"segment": "bonds", "subindex": 0.5057, "contribution": 0.0059},
        ],
        "composite": 0.6111,
        "avg_correlation": 0.1712,
        "signals": [
            {"indicator": "equity_drawdown", "value": 0.41, "threshold": 0.13, "nsr": 0.69, "signalling": True},
            {"indicator": "curve_inversion", "value": -1.8, "threshold": 1.09, "nsr": 0.0, "signalling": False},
            {"indicator": "fx", "value": 0.9031, "threshold": 0.58, "nsr": 0.81, "signalling": True},
            {"indicator": "composite", "value": 0.6111, "threshold": 0.36, "nsr": 0.43, "signalling": True},
        ],
        "ladder": {"blue": [0.25, False], "yellow": [0.5, False], "orange": [0.5, True], "red": [0.75, True]},
        "level": "orange",
    },
}
RARITY_GRADE = {
    "basis": "statistical_rarity",
    "driver": "iforest_subseq",
    "raw_level": "red",
    "in_cooldown": False,
    "capped_at": "yellow",
    "uncapped_level": "red",
}
CORROBORATED_GRADE = {
    "basis": "statistical_rarity",
    "raw_level": "orange",
    "in_cooldown": False,
    "corroborated_by": ["usgs_01491500_discharge"],
}


def _bundle(grade: dict, **over) -> dict:
    base = {
        "alert_id": "a_0001",
        "name": "Tohoku, Japan: earthquakes per day",
        "unique_id": "tohoku_count",
        "region": "Tohoku, Japan",
        "hazard": "earthquake",
        "level": "red",
        "ds": "2011-03-12T00:00:00",
        "score": 0.9987,
        "threshold": 0.998,
        "driver": "level",
        "value": 433.0,
        "unit": "events/day",
        "source": "USGS ComCat",
        "classification": "public",
        "data_age_days": 1,
        "as_of": "2011-03-12",
        "group_members": [],
        "basis": grade_basis(grade),
        "forecast": {"ds": "2011-03-13T00:00:00", "q05": 120.0, "q50": 260.0, "q95": 410.0},
    }
    return base | over


AFTERSHOCK = _bundle(AFTERSHOCK_GRADE)
FLOOD = _bundle(
    FLOOD_GRADE,
    name="USGS 01491000 Choptank River near Greensboro, MD",
    unique_id="usgs_01491000_discharge",
    region="Maryland, US",
    hazard="hydrological_extreme",
    level="orange",
    value=80.0,
    unit="m3/s",
    source="USGS NWIS",
    lower_bound=0.0,
    forecast={"ds": "2011-03-13T00:00:00", "q05": 60.0, "q50": 110.0, "q95": 150.0},
)
MARKET = _bundle(
    MARKET_GRADE,
    name="US market stress composite (CISS-style: equity, bonds, fx)",
    unique_id="us_stress_composite",
    region="US",
    hazard="market_risk",
    level="orange",
    ds="2009-03-13T00:00:00",
    value=0.6111,
    unit="index 0-1",
    source="EWS CISS-style composite of cad_per_usd, chf_per_usd, dgs10, jpy_per_usd, sp500_monthly",
    lower_bound=0.0,
    upper_bound=1.0,
    forecast={"ds": "2009-03-20T00:00:00", "q05": 0.52, "q50": 0.6, "q95": 0.68},
)
RARITY = _bundle(
    RARITY_GRADE,
    name="P156 GNSS east",
    unique_id="ngl_p156_east",
    region="Northern California, US",
    hazard="ground_deformation",
    level="yellow",
    value=12.3,
    unit="mm",
    source="NGL",
    forecast={"ds": "2011-03-13T00:00:00", "q05": 1.0, "q50": 5.0, "q95": 9.0},
)


def test_aftershock_judgment_states_probability_window_and_magnitude_not_a_score() -> None:
    j = write_template_judgment(AFTERSHOCK)
    assert (
        "Probability of at least one M>=6 earthquake within 7 days: 64% (Reasenberg-Jones aftershock "
        "forecast after the M7.3 of 2011-03-09; expected 1.1 events, range 0-3)."
    ) in j.text_en
    assert "Level RED on the model's ladder (yellow 5%, orange 20%, red 50%)." in j.text_en
    assert "余震概率：7天内发生至少一次M≥6地震的概率为64%" in j.text_zh
    assert "2011-03-09 M7.3主震后" in j.text_zh and "预期1.1次，范围0-3次" in j.text_zh
    assert "score" not in j.text_en and "分数" not in j.text_zh
    assert "review_flag" not in j.checks


def test_flood_judgment_states_the_return_level_threshold_and_window() -> None:
    j = write_template_judgment(FLOOD)
    assert "Probability that the flow exceeds the 5-year return level (123 m3/s) within 3 days: 40%" in j.text_en
    assert "(return-period exceedance forecast; Gumbel fit of annual maxima over 38 water years)" in j.text_en
    assert "3天内流量超过5年一遇水平（123 m3/s）的概率为40%" in j.text_zh and "38个水文年" in j.text_zh
    assert "score" not in j.text_en


def test_market_judgment_states_probability_window_event_and_the_segments_driving_it() -> None:
    j = write_template_judgment(MARKET)
    assert (
        "Probability that the S&P 500 falls 20 % from its peak within 365 days: 81% (KLR signals on the "
        "composite stress index: how often it followed weeks at BLUE or above (no training week reached this "
        "level) in training, 1981-2008, 4 crises)."
    ) in j.text_en
    assert (
        "Composite stress index 0.61; the segments driving it: equity 0.99 (contribution 0.32), "
        "fx 0.90 (contribution 0.29), bonds 0.51 (contribution 0.01)"
    ) in j.text_en
    assert "weighted signal share 0.51, level ORANGE on the ladder (blue 0.25, yellow 0.5, orange 0.5 with the " in (
        j.text_en
    )
    assert "365天内标普500指数较峰值下跌20%的概率为81%" in j.text_zh
    assert "主要驱动分项：股票0.99（贡献0.32）、外汇0.90（贡献0.29）、债券0.51（贡献0.01）" in j.text_zh
    assert "score" not in j.text_en and "分数" not in j.text_zh
    assert "review_flag" not in j.checks  # the level is what the ladder gives for the share and signals


def test_market_contradiction_check_reads_the_signal_share_ladder() -> None:
    assert evidence_contradictions(MARKET) == []
    hazard = MARKET_GRADE["hazard"]
    # red needs a share of 0.75: 0.51 with the composite signalling gives orange
    red = _bundle({**MARKET_GRADE, "hazard": {**hazard, "level": "red"}}, level="red")
    assert [c.message for c in evidence_contradictions(red)] == [
        "signal share 0.51 (composite signalling) gives orange on the model's ladder, not red"
    ]
    quiet = [{**s, "signalling": False} if s["indicator"] == "composite" else s for s in hazard["signals"]]
    without = _bundle({**MARKET_GRADE, "hazard": {**hazard, "signals": quiet}})
    assert "gives yellow" in evidence_contradictions(without)[0].message
    assert "review_flag" in write_template_judgment(without).checks


def test_rarity_judgment_says_rarity_and_its_cap_never_a_probability() -> None:
    j = write_template_judgment(RARITY)
    assert "statistical rarity" in j.text_en and "not the probability of a hazard" in j.text_en
    assert "Capped at YELLOW (uncapped it would be RED)" in j.text_en
    assert "统计罕见度" in j.text_zh and "上限为黄色" in j.text_zh
    assert "Probability" not in j.text_en and "概率为" not in j.text_zh
    lifted = write_template_judgment(_bundle(CORROBORATED_GRADE, level="orange"))
    assert "Not capped: independent series in the same region agree (usgs_01491500_discharge)." in lifted.text_en
    held = write_template_judgment(
        _bundle(
            {
                "basis": "statistical_rarity",
                "raw_level": "red",
                "seismic_cap": {"capped_at": "blue", "uncapped_level": "red", "reason": "no mainshock"},
            },
            level="blue",
        )
    )
    assert "Held at BLUE: without an active mainshock sequence" in held.text_en
    assert "无活跃主震序列时，地震频次变化仅作异常活动提示，等级保持蓝色" in held.text_zh
    # a grade the cycle did not label reads as before
    plain = write_template_judgment(_bundle({"raw_level": "red", "in_cooldown": False}))
    assert "rarity" not in plain.text_en and "calibrated anomaly score 0.9987" in plain.text_en


def test_evidence_bundle_carries_the_basis_and_the_physical_bounds() -> None:
    alert = {
        "alert_id": "a_0001",
        "unique_id": "tohoku_count",
        "hazard": "earthquake",
        "level": "red",
        "ds": datetime(2011, 3, 12),
        "score": 0.9987,
        "evidence": json.dumps(AFTERSHOCK_GRADE),
    }
    info = {
        "name": "Tohoku",
        "region": "Tohoku, Japan",
        "unit": "events/day",
        "source": "USGS",
        "lower_bound": 0.0,
        "upper_bound": None,
    }
    observed = pl.DataFrame({"unique_id": ["tohoku_count"], "ds": [datetime(2011, 3, 12)], "y": [433.0]})
    forecast = pl.DataFrame(
        {"unique_id": ["tohoku_count"], "ds": [datetime(2011, 3, 13)], "q05": [1.0], "q50": [2.0], "q95": [3.0]}
    )
    bundle = evidence_bundle(
        alert, info, observed, forecast, threshold=0.998, clock=datetime(2011, 3, 13), as_of="2011-03-12"
    )
    assert bundle["basis"]["kind"] == "hazard_model"
    assert bundle["basis"]["hazard"]["probability"] == 0.64
    assert bundle["lower_bound"] == 0.0 and "upper_bound" not in bundle
    # an unlabelled grade keeps the bundle it had (same keys, same evidence hash)
    old = evidence_bundle(
        {**alert, "evidence": json.dumps({"raw_level": "red"})},
        {**info, "lower_bound": None},
        observed,
        forecast,
        threshold=0.998,
        clock=datetime(2011, 3, 13),
        as_of=None,
    )
    assert set(old["basis"]) == {"raw_level", "in_cooldown", "exceedance"} and "lower_bound" not in old


def _choose_each(bundle: dict) -> list[dict]:
    """One reply per offered statement of every section (the rest: the section's first)."""
    offered = statements(bundle)
    first = {f"{s}_en": next(iter(offered[s])) for s in SECTIONS}
    replies = []
    for s in SECTIONS:
        for en in offered[s]:
            content = json.dumps({"risk_level": bundle["level"], **first, f"{s}_en": en})
            replies.append(parse_reply(content, offered=offered))
    return replies


def test_vetted_statements_carry_the_forecast_and_pass_the_checker() -> None:
    for bundle in (AFTERSHOCK, FLOOD, RARITY, MARKET):
        for reply in _choose_each(bundle):
            assert check_grounding(reply, bundle, known_places=("Tohoku, Japan", "Maryland, US")) == [], reply
    quake = statements(AFTERSHOCK)
    assert not any("{score}" in s for part in quake.values() for s in part)
    chosen = (
        "Probability of at least one {event} within {window_days} days: {probability}, "
        "from the {model_name} after the {mainshock}."
    )
    assert chosen in quake["situation"]
    assert render(chosen, AFTERSHOCK) == (
        "Probability of at least one M>=6 earthquake within 7 days: 64%, from the Reasenberg-Jones "
        "aftershock forecast after the M7.3 of 2011-03-09."
    )
    assert render(quake["situation"][chosen], AFTERSHOCK).startswith("7天内发生至少一次M≥6地震的概率为64%")
    flood = statements(FLOOD)["situation"]
    assert any(
        render(s, FLOOD).startswith("Probability that the flow exceeds the 5-year return level 123 m3/s") for s in flood
    )
    market = statements(MARKET)
    assert not any("{score}" in s for part in market.values() for s in part)
    rendered = [render(s, MARKET) for s in market["situation"]]
    assert (
        "Probability that the S&P 500 falls 20 % from its peak within 365 days: 81%; the segments driving the "
        "composite stress index 0.61: equity 0.99 (contribution 0.32), fx 0.90 (contribution 0.29), bonds 0.51 "
        "(contribution 0.01)."
    ) in rendered
    assert any(
        render(zh, MARKET).startswith("365天内标普500指数较峰值下跌20%的概率为81%")
        for zh in market["situation"].values()
    )
    rarity = statements(RARITY)
    assert any("statistical rarity" in s for s in rarity["situation"])
    assert any("{capped_at}" in s for s in rarity["uncertainty"])


def test_llm_judgment_evidence_sentence_states_the_forecast() -> None:
    reply = _choose_each(AFTERSHOCK)[0]
    j = judgment_from_reply(reply, AFTERSHOCK, model="smollm2", checks={"verdict": "passed"})
    assert "Evidence: Probability of at least one M>=6 earthquake within 7 days: 64%" in j.text_en
    assert "anomaly score" not in j.text_en
    assert "证据：余震概率：7天内发生至少一次M≥6地震的概率为64%" in j.text_zh
    rarity = judgment_from_reply(_choose_each(RARITY)[0], RARITY, model="smollm2", checks={"verdict": "passed"})
    assert "statistical rarity" in rarity.text_en and "统计罕见度" in rarity.text_zh


def test_checker_accepts_the_evidence_probability_and_rejects_a_written_one() -> None:
    good = {
        "risk_level": "red",
        "situation_en": "Probability of {event} within {window_days} days is {probability}.",
        "development_en": "Aftershocks may continue.",
        "actions_en": "Alert the response teams.",
        "uncertainty_en": "The probability is a model forecast.",
        "situation_zh": "{window_days}天内{event_zh}的概率为{probability}。",
        "development_zh": "余震可能持续。",
        "actions_zh": "通知应急队伍。",
        "uncertainty_zh": "该概率为模型预测。",
    }
    assert check_grounding(good, AFTERSHOCK) == []
    assert "64%" in render(good["situation_en"], AFTERSHOCK)
    wrong = {**good, "situation_en": "Probability of {event} within {window_days} days is 90%."}
    assert any("'90'" in p for p in check_grounding(wrong, AFTERSHOCK))
    wrong_zh = {**good, "situation_zh": "七天内{event_zh}的概率为百分之九十。"}
    assert any("written in words" in p for p in check_grounding(wrong_zh, AFTERSHOCK))
    # a rarity grade has no probability to show
    assert any(
        "unknown placeholder {probability}" in p for p in check_grounding(good | {"risk_level": "yellow"}, RARITY)
    )


# The demo's Maryland case as issue 14 found it: orange by a crossing probability, beside an
# interval that goes below zero; here made to contradict (the interval does not reach 35.7).
CONTRADICTING = _bundle(
    {"raw_level": "none", "in_cooldown": True},
    name="USGS 01491000 Choptank River near Greensboro, MD",
    unique_id="usgs_01491000_discharge",
    region="Maryland, US",
    hazard="hydrological_extreme",
    level="orange",
    score=0.9684,
    threshold=0.995,
    value=16.31,
    unit="m3/s",
    lower_bound=0.0,
    basis={
        "raw_level": "none",
        "in_cooldown": True,
        "exceedance": {"level": "orange", "p_path_cross": 0.90, "threshold": "p99", "threshold_value": 35.736},
    },
    forecast={"ds": "2011-03-13T00:00:00", "q05": -25.45, "q50": 13.35, "q95": 30.15},
)


def test_contradiction_check_fires_on_a_crossing_probability_beside_an_interval_that_misses() -> None:
    found = evidence_contradictions(CONTRADICTING)
    messages = [c.message for c in found]
    assert any("probability 0.90 of going above 35.74" in m and "does not reach it" in m for m in messages)
    assert any("below the series' physical lower bound 0" in m for m in messages)
    j = write_template_judgment(CONTRADICTING)
    assert "Check before acting: figures in the evidence disagree" in j.text_en
    assert "证据中的数字相互矛盾" in j.text_zh
    assert j.checks["review_flag"].startswith("figures in the evidence disagree")
    # the LLM path offers no statement showing them, and rejects a reply that does
    offered = statements(CONTRADICTING)
    assert not any("{forecast_low}" in s or "{cross_probability}" in s for part in offered.values() for s in part)
    for reply in _choose_each(CONTRADICTING):
        assert check_grounding(reply, CONTRADICTING) == []
    shows = reply | {"development_en": "The forecast ranges from {forecast_low} to {forecast_high}."}
    assert any("figures in the evidence disagree" in p for p in check_grounding(shows, CONTRADICTING))
    flagged = judgment_from_reply(reply, CONTRADICTING, model="m", checks={"verdict": "passed"})
    assert "review_flag" in flagged.checks and "Check before acting" in flagged.text_en
    # consistent figures raise nothing: the same case with an interval that reaches the threshold
    fine = CONTRADICTING | {
        "forecast": {"ds": "2011-03-13T00:00:00", "q05": 2.0, "q50": 13.35, "q95": 52.15},
    }
    assert evidence_contradictions(fine) == []
    assert evidence_contradictions(AFTERSHOCK) == evidence_contradictions(FLOOD) == []


def test_contradiction_check_on_a_field_model_forecast() -> None:
    hazard = dict(AFTERSHOCK_GRADE["hazard"])
    poisson = _bundle({**AFTERSHOCK_GRADE, "hazard": {**hazard, "expected_count": 0.9}})
    assert any("more than an expected count of 0.9 allows" in c.message for c in evidence_contradictions(poisson))
    ladder = _bundle({**AFTERSHOCK_GRADE, "hazard": {**hazard, "probability": 0.03, "expected_count": 0.04}})
    assert any("gives no level on the model's ladder, not red" in c.message for c in evidence_contradictions(ladder))
    wholly = CONTRADICTING | {"forecast": {"ds": "2011-03-13T00:00:00", "q05": 40.0, "q50": 60.0, "q95": 80.0}}
    assert any("wholly above" in c.message for c in evidence_contradictions(wholly))


def test_contradiction_check_uses_the_horizon_and_only_figures_the_judgment_states() -> None:
    horizon = {"steps": 7, "end": "2011-03-19T00:00:00", "q05_min": 2.0, "q05_max": 9.0}
    horizon |= {"q50_min": 13.0, "q50_max": 20.0, "q95_min": 30.15, "q95_max": 34.0}
    forecast = CONTRADICTING["forecast"] | {"q05": 2.0, "horizon": horizon}
    basis = CONTRADICTING["basis"]
    # 7 steps whose 90% intervals never reach 35.7: the path crosses with probability < 0.35
    at = {**basis, "exceedance": {**basis["exceedance"], "p_path_cross": 0.40}}
    found = evidence_contradictions(CONTRADICTING | {"forecast": forecast, "basis": at})
    assert [c.message for c in found] == [
        "probability 0.40 of going above 35.74 beside a forecast whose 90% intervals over 7 steps "
        "do not reach it (at most 34)"
    ]
    below = {**basis, "exceedance": {**basis["exceedance"], "p_path_cross": 0.30}}
    assert evidence_contradictions(CONTRADICTING | {"forecast": forecast, "basis": below}) == []
    # a crossing probability the judgment does not state (the score made the level) is not checked
    assert evidence_contradictions(CONTRADICTING | {"score": 0.999, "lower_bound": None}) == []
    # the bundle carries the horizon where a crossing probability needs it
    alert = {
        "alert_id": "a_2",
        "unique_id": "q",
        "hazard": "hydrological_extreme",
        "level": "orange",
        "ds": datetime(2011, 3, 12),
        "score": 0.97,
        "evidence": json.dumps({"basis": "statistical_rarity", "exceedance": basis["exceedance"]}),
    }
    steps = pl.DataFrame(
        {
            "unique_id": ["q"] * 3,
            "ds": [datetime(2011, 3, d) for d in (13, 14, 15)],
            "q05": [1.0, 0.5, 0.2],
            "q50": [5.0, 6.0, 7.0],
            "q95": [9.0, 12.0, 15.0],
        }
    )
    info = {"name": "Q", "region": "R", "unit": "m3/s", "source": "S"}
    bundle = evidence_bundle(
        alert,
        info,
        steps.head(0).select("unique_id", "ds").with_columns(y=pl.lit(1.0)),
        steps,
        threshold=0.995,
        clock=datetime(2011, 3, 13),
        as_of=None,
    )
    assert bundle["forecast"]["q95"] == 9.0
    assert bundle["forecast"]["horizon"] == {
        "steps": 3,
        "end": "2011-03-15T00:00:00",
        "q05_min": 0.2,
        "q05_max": 1.0,
        "q50_min": 5.0,
        "q50_max": 7.0,
        "q95_min": 9.0,
        "q95_max": 15.0,
    }


def _cap(bundle: dict, grade: dict) -> etree._Element:
    j = write_template_judgment(bundle)
    alert = {
        "alert_id": bundle["alert_id"],
        "run_id": "r_demo",
        "unique_id": bundle["unique_id"],
        "hazard": bundle["hazard"],
        "region": bundle["region"],
        "level": bundle["level"],
        "status": "open",
        "ds": datetime(2011, 3, 12),
        "score": bundle["score"],
        "expires_at": datetime(2011, 3, 15),
        "evidence": json.dumps(grade),
    }
    sent = datetime(2026, 11, 22, 8, 38, 5, tzinfo=CST)
    xml = build_cap(
        alert,
        identifier=cap_identifier("44030041600000", sent),
        sender="ews@example.org",
        sent=sent,
        status="Exercise",
        msg_type="Alert",
        judgment=CapJudgment(
            text_en=j.text_en,
            text_zh=j.text_zh,
            writer=j.writer,
            model=j.model,
            prompt_version=j.prompt_version,
            evidence_hash=j.evidence_hash,
        ),
        area=Area(bundle["region"]),
        series_name=bundle["name"],
    )
    assert validate_cap(xml) == []
    return etree.fromstring(xml)


def _params(info: etree._Element) -> dict[str, str]:
    return {
        p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
        for p in info.findall("cap:parameter", NS)
    }


def test_cap_of_an_aftershock_forecast_states_it_and_validates() -> None:
    doc = _cap(AFTERSHOCK, AFTERSHOCK_GRADE)
    zh, en = doc.findall("cap:info", NS)
    assert en.findtext("cap:event", namespaces=NS) == "Aftershock forecast"
    assert zh.findtext("cap:event", namespaces=NS) == "余震预测"
    assert en.findtext("cap:certainty", namespaces=NS) == "Likely"  # P = 0.64 > 0.5
    assert "within 7 days: 64%" in en.findtext("cap:description", namespaces=NS)
    assert "7天内发生至少一次M≥6地震的概率为64%" in zh.findtext("cap:description", namespaces=NS)
    params = _params(en)
    assert params["EWS_BASIS"] == "hazard_model" and params["EWS_MODEL"] == "reasenberg_jones"
    assert (params["EWS_PROBABILITY"], params["EWS_WINDOW_DAYS"], params["EWS_MAGNITUDE"]) == ("0.6400", "7", "6")
    assert params["EWS_MAINSHOCK"] == "M7.3 of 2011-03-09"


def test_cap_of_a_flood_forecast_and_of_a_rarity_grade() -> None:
    flood = _cap(FLOOD, FLOOD_GRADE).findall("cap:info", NS)[1]
    assert flood.findtext("cap:certainty", namespaces=NS) == "Possible"
    assert "5-year return level (123 m3/s) within 3 days: 40%" in flood.findtext("cap:description", namespaces=NS)
    assert _params(flood)["EWS_THRESHOLD"] == "123 m3/s" and _params(flood)["EWS_RETURN_PERIOD_YEARS"] == "5"
    zh, en = _cap(RARITY, RARITY_GRADE).findall("cap:info", NS)
    assert "statistical rarity" in en.findtext("cap:description", namespaces=NS)
    assert "统计罕见度" in zh.findtext("cap:description", namespaces=NS)
    params = _params(en)
    assert params["EWS_BASIS"] == "statistical_rarity" and params["EWS_CAPPED_AT"] == "yellow"
    assert "EWS_PROBABILITY" not in params


def test_cap_of_a_market_warning_names_the_event_and_the_segments() -> None:
    zh, en = _cap(MARKET, MARKET_GRADE).findall("cap:info", NS)
    assert en.findtext("cap:event", namespaces=NS) == "Market stress warning (KLR signals)"
    assert zh.findtext("cap:event", namespaces=NS) == "市场压力预警（KLR信号）"
    assert en.findtext("cap:certainty", namespaces=NS) == "Likely"  # P = 0.81 > 0.5
    description = en.findtext("cap:description", namespaces=NS)
    assert "the S&P 500 falls 20 % from its peak within 365 days: 81%" in description
    assert "equity 0.99 (contribution 0.32)" in description
    params = _params(en)
    assert (params["EWS_MODEL"], params["EWS_TARGET"], params["EWS_WINDOW_DAYS"]) == (
        "klr_signals",
        "sp500_bear",
        "365",
    )
    assert params["EWS_COMPOSITE"] == "0.61" and params["EWS_SEGMENTS"].startswith("equity 0.99")
    assert "EWS_MAGNITUDE" not in params and "EWS_THRESHOLD" not in params


def test_cap_without_a_judgment_still_states_the_forecast() -> None:
    alert = {
        "alert_id": "a_1",
        "unique_id": "tohoku_count",
        "hazard": "earthquake",
        "region": "Tohoku, Japan",
        "level": "red",
        "status": "open",
        "ds": datetime(2011, 3, 12),
        "score": 0.99,
        "evidence": json.dumps(AFTERSHOCK_GRADE),
    }
    sent = datetime(2026, 11, 22, 8, 38, 5, tzinfo=CST)
    xml = build_cap(
        alert,
        identifier=cap_identifier("44030041600000", sent),
        sender="ews@example.org",
        sent=sent,
        status="Exercise",
        msg_type="Alert",
        judgment=None,
        area=Area("Tohoku, Japan"),
        series_name="Tohoku",
    )
    assert validate_cap(xml) == []
    en = etree.fromstring(xml).findall("cap:info", NS)[1]
    assert "within 7 days: 64%" in en.findtext("cap:description", namespaces=NS)


def test_a_field_models_level_carries_its_fields_advice_and_a_rarity_keeps_the_generic_advice() -> None:
    # aftershock red, flood orange, market orange: the advice of the field, in the judgment and CAP
    expected = {
        "AFTERSHOCK": (AFTERSHOCK, AFTERSHOCK_GRADE, "Damaging aftershocks are likely", "很可能发生破坏性余震"),
        "FLOOD": (FLOOD, FLOOD_GRADE, "Flooding is likely along this river", "本河段可能发生洪水"),
        "MARKET": (MARKET, MARKET_GRADE, "Financial stress is elevated", "金融压力上升"),
    }
    for name, (bundle, grade, en_start, zh_start) in expected.items():
        j = write_template_judgment(bundle)
        assert f"Advice: {en_start}" in j.text_en and f"建议：{zh_start}" in j.text_zh, name
        zh, en = _cap(bundle, grade).findall("cap:info", NS)
        assert en.findtext("cap:instruction", namespaces=NS).startswith(en_start), name
        assert zh.findtext("cap:instruction", namespaces=NS).startswith(zh_start), name
        actions = list(statements(bundle)["actions"])
        assert actions[0].startswith(en_start), name  # offered first to the writer
        assert "Check the source for data errors before acting." not in actions, name
    # a rarity has no hazard behind it: the generic advice, which asks to verify the data first
    j = write_template_judgment(RARITY)
    assert "Advice:" not in j.text_en and "建议：" not in j.text_zh
    zh, en = _cap(RARITY, RARITY_GRADE).findall("cap:info", NS)
    assert en.findtext("cap:instruction", namespaces=NS) == "Monitor closely and watch for further messages."
    assert "Check the source for data errors before acting." in statements(RARITY)["actions"]
    # the same flood forecast graded blue would get the blue advice of its field
    blue = {**FLOOD, "level": "blue"}
    assert "Advice: The river may rise above its usual level" in write_template_judgment(blue).text_en
