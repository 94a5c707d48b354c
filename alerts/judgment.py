"""Judgments: short bilingual assessments written from an alert's evidence (pure).

The template writer renders every number, date, place and level straight from the evidence
bundle, so nothing in its text can be invented. Every judgment carries the label the
guidelines require (machine-generated, auxiliary, for reference) and the hash of the evidence
it was written from, so a reader can trace each statement back.

What a level means (issue 14): a grade's evidence says whether its level is the output of a
field model (``basis: hazard_model`` with a ``hazard`` forecast: probability, window,
magnitude or return-period threshold) or the statistical-rarity fallback (``basis:
statistical_rarity``, possibly ``capped_at`` a level unless ``corroborated_by`` another
series). :func:`grade_basis` carries that into the bundle's ``basis``; :func:`basis_sentences`
states it (a hazard-model level as its probability, window and magnitude, never as a score; a
rarity level plainly as a rarity, never as a hazard probability); :func:`evidence_contradictions`
finds figures of a bundle that disagree with each other (a crossing probability beside an
interval that says otherwise, an interval below the series' physical lower bound, a
probability a Poisson count of the stated mean cannot have), which the judgment then names and
flags for review instead of printing side by side as if they agreed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from core.vocabulary import WARNING_LEVELS, Level, per_level

__all__ = [
    "Judgment",
    "AI_LABEL",
    "evidence_hash",
    "write_template_judgment",
    "TEMPLATE_VERSION",
    "LEVEL_ZH",
    "HAZARD_ZH",
    "HAZARD_MODEL",
    "MARKET_MODEL",
    "STATISTICAL_RARITY",
    "Contradiction",
    "grade_basis",
    "basis_sentences",
    "hazard_sentences",
    "evidence_contradictions",
    "contradiction_sentences",
    "hazard_figures",
    "field_advice",
    "percent",
]

TEMPLATE_VERSION = "template-v2"  # v2: a field-model level carries its field's advice

AI_LABEL = (
    "Machine-generated assessment, auxiliary and for reference only; a duty officer decides. "
    "机器生成的研判，仅作辅助参考，由值班人员决定。"
)

_HAZARD_ZH = {
    "market_risk": "市场风险",
    "earthquake": "地震",
    "ground_deformation": "地表形变",
    "hydrological_extreme": "水文极值",
    "climate_anomaly": "气候异常",
}
#: Chinese names of the levels and hazards (also used by the LLM path's placeholders).
LEVEL_ZH = {lv.label: lv.zh for lv in WARNING_LEVELS}
HAZARD_ZH = _HAZARD_ZH


@dataclass(frozen=True)
class Judgment:
    writer: str
    model: str | None
    prompt_version: str
    evidence_hash: str
    label: str
    text_en: str
    text_zh: str
    checks: dict[str, Any]


def evidence_hash(evidence: dict[str, Any]) -> str:
    """Stable hash of an evidence bundle (key order does not matter)."""
    canonical = json.dumps(evidence, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fmt(value: float | None, unit: str | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.4g}"
    return f"{text} {unit}" if unit else text


def write_template_judgment(evidence: dict[str, Any]) -> Judgment:
    """Render a judgment from an evidence bundle.

    Required keys: ``name, unique_id, region, hazard, level, ds, score, threshold, driver,
    value, unit, data_age_days``; optional ``forecast`` with ``ds, q05, q50, q95``,
    ``basis`` (how the grade reached its level: ``in_cooldown``, ``exceedance``; with
    ``kind`` and ``hazard``/``capped_at``/``corroborated_by`` from :func:`grade_basis`),
    ``lower_bound``/``upper_bound`` (the series' physical bounds) and ``as_of`` (the replay
    date, which marks the text as an exercise).

    A field-model level is stated as the model's probability, window and magnitude or
    threshold (no score); a rarity level keeps its score sentence and says it is a rarity.
    Figures that contradict each other (:func:`evidence_contradictions`) are named in the text
    and set ``checks.review_flag``.
    """
    level = evidence["level"]
    ds = _date(evidence["ds"])
    where = evidence.get("region") or "unspecified region"
    value = _fmt(evidence.get("value"), evidence.get("unit"))
    forecast = evidence.get("forecast")
    en_basis, zh_basis = _basis(evidence)
    meaning = basis_sentences(evidence)
    en = [
        f"{evidence['name']} ({evidence['unique_id']}, {where}) reached {level.upper()} "
        f"(level {Level.parse(level).roman}) for {evidence['hazard'].replace('_', ' ')} on {ds}."
    ]
    zh = [
        f"{evidence['name']}（{evidence['unique_id']}，{where}）于{ds}达到"
        f"{LEVEL_ZH[level]}（{Level.parse(level).roman}级）{_HAZARD_ZH[evidence['hazard']]}预警等级。"
    ]
    if _hazard_of(evidence) is not None and meaning:
        # a field model's level is its probability, window and magnitude, not a score
        en += [meaning[0], f"Observed value {value}."]
        zh += [meaning[1], f"观测值{value}。"]
        advice = field_advice(evidence)
        if advice:
            en.append(f"Advice: {advice[0]}")
            zh.append(f"建议：{advice[1]}")
    else:
        en.append(f"Observed value {value}; {en_basis}.")
        zh.append(f"观测值{value}；{zh_basis}。")
        if meaning:
            en.append(meaning[0])
            zh.append(meaning[1])
    if forecast:
        band = f"[{_fmt(forecast['q05'])}, {_fmt(forecast['q95'])}]"
        fds = _date(forecast["ds"])
        en.append(f"Next-step forecast for {fds}: median {_fmt(forecast['q50'])}, 90% interval {band}.")
        zh.append(f"{fds}预测中位数{_fmt(forecast['q50'])}，90%区间{band}。")
    found = evidence_contradictions(evidence)
    checks: dict[str, Any] = {"grounded": "by construction: every figure rendered from evidence"}
    if found:
        note = contradiction_sentences(found)
        en.append(note[0])
        zh.append(note[1])
        checks["contradictions"] = [c.message for c in found]
        checks["review_flag"] = "figures in the evidence disagree: " + "; ".join(c.message for c in found)
    age = evidence["data_age_days"]
    en.append(f"Data are {age} days old at assessment time; treat as an indicator, not a certainty.")
    zh.append(f"数据距研判时已{age}天；仅作参考指标，并非确定结论。")
    if evidence.get("as_of"):
        en.insert(0, f"[Exercise: replay as of {evidence['as_of']}]")
        zh.insert(0, f"【演练：按{evidence['as_of']}回放】")
    return Judgment(
        writer="template",
        model=None,
        prompt_version=TEMPLATE_VERSION,
        evidence_hash=evidence_hash(evidence),
        label=AI_LABEL,
        text_en=" ".join(en),
        text_zh="".join(zh),
        checks=checks,
    )


def _basis(evidence: dict[str, Any]) -> tuple[str, str]:
    """Say how the level was reached, from the grade's own evidence (``basis``).

    A level can come from the calibrated score, from the forecast's probability of crossing a
    threshold, or be held by the cool-down after an earlier alert; saying "score S against
    threshold T" when S is below T would misstate the evidence.
    """
    level, score, threshold = evidence["level"], evidence["score"], evidence["threshold"]
    basis = evidence.get("basis") or {}
    exceed = basis.get("exceedance") or {}
    driver = evidence["driver"]
    if score >= threshold or not basis:
        return (
            f"calibrated anomaly score {score:.4f} reached the {level} threshold {threshold:.4f} (driver: {driver})",
            f"校准异常分数{score:.4f}，达到{LEVEL_ZH[level]}阈值{threshold:.4f}（主要检测器：{driver}）",
        )
    if exceed.get("level") == level:
        p, name = exceed["p_path_cross"], exceed["threshold"]
        value = _fmt(exceed.get("threshold_value"))
        return (
            f"the forecast gives probability {p:.2f} of crossing threshold {name} ({value}) "
            f"within the horizon, at or above the {level} probability threshold; calibrated "
            f"anomaly score {score:.4f} (driver: {driver})",
            f"预测在预报期内越过阈值{name}（{value}）的概率为{p:.2f}，达到{LEVEL_ZH[level]}"
            f"概率阈值；校准异常分数{score:.4f}（主要检测器：{driver}）",
        )
    if basis.get("in_cooldown"):
        return (
            f"level held by the cool-down after an earlier alert; current calibrated anomaly "
            f"score {score:.4f} is below the {level} threshold {threshold:.4f}",
            f"处于前次预警后的冷却期，等级保持；当前校准异常分数{score:.4f}低于{LEVEL_ZH[level]}阈值{threshold:.4f}",
        )
    return (
        f"level reached by persistence over recent steps; current calibrated anomaly score "
        f"{score:.4f}, {level} threshold {threshold:.4f} (driver: {driver})",
        f"近期多步持续达到该等级；当前校准异常分数{score:.4f}，{LEVEL_ZH[level]}阈值"
        f"{threshold:.4f}（主要检测器：{driver}）",
    )


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)[:10]


# -- what a level means: field model or statistical rarity (issue 14) ---------------------------

#: ``basis`` of a grade whose level is a field model's output, and of the rarity fallback.
HAZARD_MODEL = "hazard_model"
STATISTICAL_RARITY = "statistical_rarity"

#: Display names of the field models (``hazard.model``).
_MODEL_NAMES = {
    "reasenberg_jones": ("Reasenberg-Jones aftershock forecast", "Reasenberg-Jones余震预测"),
    "return_period": ("return-period exceedance forecast", "重现期超越概率预报"),
    "klr_signals": ("KLR signals on the composite stress index", "综合压力指数KLR信号法"),
}
#: The market model (``hazard.model`` klr_signals): its crisis targets and segments in Chinese.
MARKET_MODEL = "klr_signals"
_MARKET_EVENT_ZH = {
    "us_recession": "美国经济衰退开始",
    "sp500_bear": "标普500指数较峰值下跌20%",
    "csi300_bear": "沪深300指数较峰值下跌20%",
}
_SEGMENT_ZH = {"equity": "股票", "bonds": "债券", "fx": "外汇", "credit": "信用", "money": "货币市场"}


#: What to do at a level issued by a field model, per hazard, in English and Chinese: the CAP
#: ``instruction`` and the judgment's advice. Aftershock advice follows what USGS and CENC
#: attach to their aftershock forecasts (stay out of damaged buildings, inspect before
#: re-entry); flood advice what EFAS/national services attach to return-period warnings (away
#: from banks and low ground, flooded roads closed); market advice is addressed to a financial
#: stability desk, not the public. A statistical-rarity level has no hazard behind it and keeps
#: the generic advice (verify the data first).
_FIELD_ADVICE: dict[str, dict[str, tuple[str, str]]] = {
    "earthquake": per_level(
        red=(
            "Damaging aftershocks are likely: keep people out of damaged buildings, keep rescue and "
            "building-inspection teams ready, and follow the instructions of the local authorities.",
            "很可能发生破坏性余震：人员不要进入受损建筑，救援和房屋安全鉴定队伍待命，听从当地政府指挥。",
        ),
        orange=(
            "Strong aftershocks are possible: inspect damaged buildings before anyone re-enters them "
            "and keep the response teams ready.",
            "可能发生强余震：受损建筑经安全鉴定后方可进入，应急队伍做好准备。",
        ),
        yellow=(
            "Felt aftershocks are possible: check the safety of buildings near the epicentre and be ready to respond.",
            "可能发生有感余震：排查震中附近建筑安全，做好应对准备。",
        ),
        blue=(
            "Seismic activity is above its usual rate: watch for further messages.",
            "地震活动高于常态：关注后续信息。",
        ),
    ),
    "hydrological_extreme": per_level(
        red=(
            "Major flooding is likely along this river: move people and property away from the banks "
            "and low ground, close flooded roads, and follow the instructions of the local authorities.",
            "本河段很可能发生严重洪水：转移沿岸及低洼地带人员和财产，封闭积水道路，听从当地政府指挥。",
        ),
        orange=(
            "Flooding is likely along this river: prepare flood defences and the evacuation of low "
            "ground, and keep away from the banks.",
            "本河段可能发生洪水：做好防洪和低洼地带人员转移准备，不要靠近岸边。",
        ),
        yellow=(
            "High water is possible along this river: check flood defences and keep away from the banks.",
            "本河段可能出现高水位：检查防洪设施，不要靠近岸边。",
        ),
        blue=(
            "The river may rise above its usual level: watch for further messages.",
            "河流水位可能高于常态：关注后续信息。",
        ),
    ),
    "market_risk": per_level(
        red=(
            "A financial crisis signal is strong: convene the financial stability desk now and review "
            "exposures, liquidity and counterparties.",
            "金融危机信号强烈：立即召集金融稳定工作组，审查风险敞口、流动性和交易对手。",
        ),
        orange=(
            "Financial stress is elevated: review exposures and liquidity and brief the financial stability desk.",
            "金融压力上升：审查风险敞口和流动性，并向金融稳定工作组通报。",
        ),
        yellow=(
            "Early signals of financial stress: monitor the stress indicators more often.",
            "出现金融压力早期信号：加密监测压力指标。",
        ),
        blue=(
            "Stress indicators are above usual: watch the next readings.",
            "压力指标高于常态：关注后续读数。",
        ),
    ),
}


def field_advice(evidence: dict[str, Any]) -> tuple[str, str] | None:
    """(English, Chinese) advice for a level issued by a field model, or ``None``.

    ``evidence`` is an evidence bundle or an alert row: its ``hazard`` and ``level`` and the
    grade's ``basis`` (``kind`` must be :data:`HAZARD_MODEL` with a probability). A rarity
    level, a level without a warning and a hazard without advice give ``None``.
    """
    if _hazard_of(evidence) is None:
        return None
    return _FIELD_ADVICE.get(str(evidence.get("hazard")), {}).get(str(evidence.get("level")))


def grade_basis(grade_evidence: dict[str, Any]) -> dict[str, Any]:
    """The evidence bundle's ``basis`` from a grade's evidence (``risk_grades.evidence``).

    Always ``raw_level``, ``in_cooldown``, ``exceedance`` (how the rarity grade reached its
    level); when the cycle labelled the grade, also ``kind`` (the grade's ``basis``:
    :data:`HAZARD_MODEL` or :data:`STATISTICAL_RARITY`), ``hazard`` (the field model's
    forecast), ``capped_at``, ``uncapped_level``, ``corroborated_by`` and ``seismic_cap`` (a
    seismic rarity grade held at blue because no mainshock is active), each only if present,
    so the bundle of an unlabelled grade is what it was before.
    """
    basis: dict[str, Any] = {
        "raw_level": grade_evidence.get("raw_level"),
        "in_cooldown": bool(grade_evidence.get("in_cooldown")),
        "exceedance": grade_evidence.get("exceedance"),
    }
    kind = grade_evidence.get("basis")
    if isinstance(kind, str) and kind:
        basis["kind"] = kind
    for key in ("hazard", "capped_at", "uncapped_level", "corroborated_by", "seismic_cap"):
        if grade_evidence.get(key) not in (None, "", [], {}):
            basis[key] = grade_evidence[key]
    return basis


def _basis_of(evidence: dict[str, Any]) -> dict[str, Any]:
    basis = evidence.get("basis")
    return basis if isinstance(basis, dict) else {}


def _hazard_of(evidence: dict[str, Any]) -> dict[str, Any] | None:
    basis = _basis_of(evidence)
    hazard = basis.get("hazard")
    if basis.get("kind") == HAZARD_MODEL and isinstance(hazard, dict) and _number(hazard.get("probability")):
        return hazard
    return None


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def percent(p: float) -> str:
    """A probability as a percentage a reader can act on: whole percent between 1 and 99, one
    decimal nearer the ends, never rounded to a certainty (``<0.1%``, ``>99.9%``)."""
    pct = 100.0 * p
    if pct <= 0.0:
        return "0%"
    if pct >= 100.0:
        return "100%"
    if pct < 0.1:
        return "<0.1%"
    if pct > 99.9:
        return ">99.9%"
    if pct < 1.0 or pct > 99.0:
        return f"{pct:.1f}%"
    return f"{pct:.0f}%"


def _g(value: Any) -> str:
    return f"{value:g}" if _number(value) else str(value)


def _count_range(hazard: dict[str, Any]) -> tuple[Any, Any] | None:
    pair = hazard.get("count_range")
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        return pair[0], pair[1]
    if hazard.get("count_low") is not None and hazard.get("count_high") is not None:
        return hazard["count_low"], hazard["count_high"]
    return None


def hazard_figures(hazard: dict[str, Any]) -> dict[str, str]:
    """The figures of a field model's forecast as texts (probability, window, event ...), the
    same in the template, the LLM placeholders and CAP."""
    model = str(hazard.get("model") or "field model")
    name_en, name_zh = _MODEL_NAMES.get(model, (f"{model.replace('_', ' ')} model", f"{model}模型"))
    magnitude = hazard.get("magnitude")
    event = str(hazard.get("event") or (f"M>={_g(magnitude)} earthquake" if _number(magnitude) else "the event"))
    if model == "reasenberg_jones" or _number(magnitude):
        event_zh = f"M≥{_g(magnitude)}地震" if _number(magnitude) else "该事件"
    elif _number(hazard.get("return_period_years")):
        event_zh = f"超过{_g(hazard['return_period_years'])}年一遇阈值"
    else:
        event_zh = event
    raw_main = hazard.get("mainshock")
    main: dict[str, Any] = raw_main if isinstance(raw_main, dict) else {}
    place = f" near {main['place']}" if main.get("place") else ""
    mainshock = (
        f"M{_g(main.get('magnitude'))}{place} of {str(main.get('time', ''))[:10]}" if main.get("magnitude") else "n/a"
    )
    rng = _count_range(hazard)
    threshold = hazard.get("threshold")
    unit = str(hazard.get("unit") or "")
    market = _market_figures(hazard) if model == MARKET_MODEL else {}
    if market:
        event_zh = market["event_zh"]
    return market | {
        "probability": percent(float(hazard["probability"])),
        "window_days": _g(hazard.get("window_days")) if _number(hazard.get("window_days")) else "n/a",
        "magnitude": _g(magnitude) if _number(magnitude) else "n/a",
        "event": event,
        "event_zh": event_zh,
        "model_name": name_en,
        "model_name_zh": name_zh,
        "mainshock": mainshock,
        "mainshock_zh": (
            f"{str(main.get('time', ''))[:10]} M{_g(main.get('magnitude'))}"
            + (f"（{main['place']}）" if main.get("place") else "")
            if main.get("magnitude")
            else "n/a"
        ),
        "expected_count": f"{hazard['expected_count']:.2g}" if _number(hazard.get("expected_count")) else "n/a",
        "count_range": f"{rng[0]}-{rng[1]}" if rng else "n/a",
        "return_period": _g(hazard.get("return_period_years")) if _number(hazard.get("return_period_years")) else "n/a",
        "hazard_threshold": (f"{threshold:.4g}" + (f" {unit}" if unit else "")) if _number(threshold) else "n/a",
    }


def _market_target(hazard: dict[str, Any]) -> dict[str, Any]:
    targets = hazard.get("targets")
    entry = targets.get(hazard.get("target")) if isinstance(targets, dict) else None
    return entry if isinstance(entry, dict) else {}


def _market_figures(hazard: dict[str, Any]) -> dict[str, str]:
    """The market model's own figures (only in a klr_signals forecast): the segments driving
    the composite with their sub-index values and contributions, the composite, the weighted
    signal share and the training the probability comes from."""
    raw = hazard.get("segments")
    segments = [s for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []
    en, zh = [], []
    for seg in segments:
        name = str(seg.get("segment"))
        value = f"{seg['subindex']:.2f}" if _number(seg.get("subindex")) else "n/a"
        share = f"{seg['contribution']:.2f}" if _number(seg.get("contribution")) else "n/a"
        en.append(f"{name} {value} (contribution {share})")
        zh.append(f"{_SEGMENT_ZH.get(name, name)}{value}（贡献{share}）")
    entry = _market_target(hazard)
    span = entry.get("train_span")
    years = f"{str(span[0])[:4]}-{str(span[1])[:4]}" if isinstance(span, (list, tuple)) and len(span) == 2 else "n/a"
    target = str(hazard.get("target") or "")
    return {
        "event_zh": _MARKET_EVENT_ZH.get(target, str(hazard.get("event") or target)),
        "segments": ", ".join(en) if en else "n/a",
        "segments_zh": "、".join(zh) if zh else "n/a",
        "composite": f"{hazard['composite']:.2f}" if _number(hazard.get("composite")) else "n/a",
        "signal_share": f"{entry['signal_share']:.2f}" if _number(entry.get("signal_share")) else "n/a",
        "train_span": years,
        "training_crises": _g(entry.get("events_in_training")) if _number(entry.get("events_in_training")) else "n/a",
    }


def _market_ladder(hazard: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """The klr_signals ladder as (level, minimum signal share, composite required), mildest first."""
    ladder = hazard.get("ladder")
    rungs = []
    for name, rung in ladder.items() if isinstance(ladder, dict) else []:
        if name in LEVEL_ZH and isinstance(rung, (list, tuple)) and len(rung) == 2 and _number(rung[0]):
            rungs.append((name, float(rung[0]), bool(rung[1])))
    return sorted(rungs, key=lambda r: Level.parse(r[0]))


def _market_sentences(hazard: dict[str, Any], level: str | None) -> tuple[str, str]:
    """The market model's forecast: the probability that the crisis starts within the window
    (how often it followed weeks at this level or above in training), the composite and the
    segments driving it, and the signal share on the ladder that made ``level``."""
    f = hazard_figures(hazard)
    below = str(_market_target(hazard).get("probability_from") or "")
    if below in LEVEL_ZH:  # no training week reached the level: the probability is a lower one's
        at_en = f"at {below.upper()} or above (no training week reached this level)"
        at_zh = f"{LEVEL_ZH[below]}及以上（训练期内无一周达到本等级）"
    elif below:  # below every rung: the base rate
        at_en, at_zh = "of all weeks (no training week reached this level)", "全部各周（训练期内无一周达到本等级）"
    else:
        at_en, at_zh = "at this level or above", "该等级及以上"
    en = (
        f"Probability that {f['event']} within {f['window_days']} days: {f['probability']} ({f['model_name']}: "
        f"how often it followed weeks {at_en} in training, {f['train_span']}, {f['training_crises']} crises)"
    )
    zh = (
        f"{f['window_days']}天内{f['event_zh']}的概率为{f['probability']}（{f['model_name_zh']}："
        f"训练期{f['train_span']}内{at_zh}各周之后发生的频率，共{f['training_crises']}次危机）"
    )
    en += f". Composite stress index {f['composite']}; the segments driving it: {f['segments']}"
    zh += f"。综合压力指数{f['composite']}，主要驱动分项：{f['segments_zh']}"
    rungs = _market_ladder(hazard)
    if level and rungs:
        steps_en = ", ".join(f"{n} {share:g}" + (" with the composite" if need else "") for n, share, need in rungs)
        steps_zh = "、".join(
            f"{LEVEL_ZH[n]}{share:g}" + ("且综合指数发出信号" if need else "") for n, share, need in rungs
        )
        en += f"; weighted signal share {f['signal_share']}, level {level.upper()} on the ladder ({steps_en})"
        zh += f"；加权信号占比{f['signal_share']}，按阶梯（{steps_zh}）为{LEVEL_ZH.get(level, level)}"
    return en + ".", zh + "。"


def hazard_sentences(hazard: dict[str, Any], level: str | None = None) -> tuple[str, str]:
    """The field model's forecast in English and Chinese: probability, window and magnitude
    (earthquakes) or return-period threshold (floods), with the ladder that made ``level``."""
    model = hazard.get("model")
    if model == MARKET_MODEL:
        return _market_sentences(hazard, level)
    f = hazard_figures(hazard)
    if model == "reasenberg_jones" or (f["magnitude"] != "n/a" and f["return_period"] == "n/a"):
        details_en = [f"{f['model_name']}"]
        details_zh = [f"{f['model_name_zh']}"]
        if f["mainshock"] != "n/a":
            details_en[0] += f" after the {f['mainshock']}"
            details_zh[0] = f"{f['mainshock_zh']}主震后的{f['model_name_zh']}"
        if f["expected_count"] != "n/a":
            details_en.append(
                f"expected {f['expected_count']} events"
                + (f", range {f['count_range']}" if f["count_range"] != "n/a" else "")
            )
            details_zh.append(
                f"预期{f['expected_count']}次" + (f"，范围{f['count_range']}次" if f["count_range"] != "n/a" else "")
            )
        en = (
            f"Probability of at least one {f['event']} within {f['window_days']} days: {f['probability']} "
            f"({'; '.join(details_en)})"
        )
        zh = (
            f"余震概率：{f['window_days']}天内发生至少一次{f['event_zh']}的概率为{f['probability']}"
            f"（{'；'.join(details_zh)}）"
        )
    elif model == "return_period" or f["return_period"] != "n/a":
        quantity = str(hazard.get("quantity") or "flow")
        quantity_zh = {"flow": "流量", "level": "水位"}.get(quantity, quantity)
        en = (
            f"Probability that the {quantity} exceeds the {f['return_period']}-year return level "
            f"({f['hazard_threshold']}) within {f['window_days']} days: {f['probability']}"
        )
        zh = (
            f"{f['window_days']}天内{quantity_zh}超过{f['return_period']}年一遇水平（{f['hazard_threshold']}）"
            f"的概率为{f['probability']}"
        )
        fit = hazard.get("fit") or hazard.get("distribution")
        if fit:
            name = {"gev": "GEV", "gumbel": "Gumbel"}.get(str(fit).lower(), str(fit))
            detail = hazard.get("return_level_fit") if isinstance(hazard.get("return_level_fit"), dict) else {}
            years = detail.get("years_used") if isinstance(detail, dict) else None
            span = f" over {years} water years" if _number(years) else ""
            en += f" ({f['model_name']}; {name} fit of annual maxima{span})"
            zh += (
                f"（{f['model_name_zh']}；{years}个水文年年最大值{name}拟合）"
                if span
                else (f"（{f['model_name_zh']}；年最大值{name}拟合）")
            )
    else:
        en = f"Probability of {f['event']} within {f['window_days']} days: {f['probability']} ({f['model_name']})"
        zh = f"{f['window_days']}天内{f['event_zh']}的概率为{f['probability']}（{f['model_name_zh']}）"
    ladder = hazard.get("ladder")
    if level and isinstance(ladder, dict) and ladder:
        steps = [(name, p) for name, p in ladder.items() if name in LEVEL_ZH and _number(p)]
        steps.sort(key=lambda item: item[1])
        if steps:
            en += (
                f". Level {level.upper()} on the model's ladder ("
                + ", ".join(f"{n} {percent(p)}" for n, p in steps)
                + ")"
            )
            zh += (
                "。按模型概率分级（"
                + "、".join(f"{LEVEL_ZH[n]}{percent(p)}" for n, p in steps)
                + f"）为{LEVEL_ZH.get(level, level)}"
            )
    return en + ".", zh + "。"


def _rarity_sentences(basis: dict[str, Any], level: str) -> tuple[str, str]:
    en = [
        "This level is a statistical rarity: the latest data are unusual against the series' own "
        "history; it is not the probability of a hazard (no field model covers this series)."
    ]
    zh = ["该等级为统计罕见度：最新数据相对本序列自身历史罕见，并非灾害发生概率（本序列无灾害模型）。"]
    seismic = basis.get("seismic_cap") if isinstance(basis.get("seismic_cap"), dict) else None
    if seismic:
        held = str(seismic.get("capped_at") or level)
        en.append(
            f"Held at {held.upper()}: without an active mainshock sequence a change in the rate of "
            "earthquakes is an unusual-activity notice only."
        )
        zh.append(f"无活跃主震序列时，地震频次变化仅作异常活动提示，等级保持{LEVEL_ZH.get(held, held)}。")
    capped, uncapped = basis.get("capped_at"), basis.get("uncapped_level")
    if capped:
        would = f" (uncapped it would be {str(uncapped).upper()})" if uncapped else ""
        would_zh = f"（不设上限时为{LEVEL_ZH.get(str(uncapped), uncapped)}）" if uncapped else ""
        en.append(
            f"Capped at {str(capped).upper()}{would}: a rarity grade goes higher only when a second, "
            "independent series in the same region agrees, and none does."
        )
        zh.append(f"统计罕见度等级上限为{LEVEL_ZH.get(str(capped), capped)}{would_zh}：同地区无其他独立序列印证。")
    corroborated = basis.get("corroborated_by")
    if corroborated:
        ids = ", ".join(str(u) for u in corroborated) if isinstance(corroborated, (list, tuple)) else str(corroborated)
        en.append(f"Not capped: independent series in the same region agree ({ids}).")
        zh.append(f"同地区独立序列（{ids}）印证，未设上限。")
    return " ".join(en), "".join(zh)


def basis_sentences(evidence: dict[str, Any]) -> tuple[str, str] | None:
    """What the level means, in English and Chinese, from the bundle's ``basis``: the field
    model's probability, window and magnitude, or a plain statement that it is a statistical
    rarity (with its cap or corroboration). None for a grade the cycle did not label."""
    basis = _basis_of(evidence)
    level = str(evidence.get("level") or "")
    hazard = _hazard_of(evidence)
    if hazard is not None:
        return hazard_sentences(hazard, level)
    if basis.get("kind") == STATISTICAL_RARITY:
        return _rarity_sentences(basis, level)
    return None


@dataclass(frozen=True)
class Contradiction:
    """Figures of one evidence bundle that disagree; ``figures`` are the placeholder names
    (:func:`alerts.llm_judgment.placeholders`) that show them, which must not be printed side
    by side as if they agreed."""

    message: str
    figures: tuple[str, ...]


# simulation error of a path-crossing probability (forecasting.exceedance: standard error < 0.01)
_P_TOLERANCE = 0.02


def evidence_contradictions(evidence: dict[str, Any]) -> list[Contradiction]:
    """Figures of the bundle that contradict each other (empty list = consistent).

    - A crossing probability beside 90% forecast intervals (those of every step of the
      horizon when the bundle's ``forecast.horizon`` has them, else the next step's): "more
      likely than not" (p >= 0.5), or more than the union bound 0.05 x steps allows, while no
      interval reaches the threshold; for a probability over the whole horizon, also an
      interval wholly beyond the threshold (that step alone crosses with probability >= 0.95,
      so the path at least as often) or a median beyond it (>= 0.5) beside a smaller
      probability. Applies to the forecast exceedance when the judgment states it (it made
      the level) and to a field model with a ``threshold`` (floods). Direction ``below`` (a
      ``:below`` threshold) is mirrored.
    - The interval outside the series' physical bounds (``lower_bound``, ``upper_bound``).
    - A field model's probability outside [0, 1]; for a Poisson model (Reasenberg-Jones:
      P = average of 1 - exp(-N)), a probability above 1 - exp(-expected count) (Jensen); a
      count range whose low end exceeds its high end; a level the model's ladder does not give.
    """
    out: list[Contradiction] = []
    forecast = evidence.get("forecast") if isinstance(evidence.get("forecast"), dict) else None
    lo = forecast.get("q05") if forecast else None
    mid = forecast.get("q50") if forecast else None
    hi = forecast.get("q95") if forecast else None
    basis = _basis_of(evidence)
    raw_exceed = basis.get("exceedance")
    exceed: dict[str, Any] = raw_exceed if isinstance(raw_exceed, dict) else {}
    hazard = _hazard_of(evidence)
    # (p, threshold, below, p placeholder, threshold placeholder, p covers every forecast step)
    crossings: list[tuple[float, float, bool, str, str, bool]] = []
    if _shows_exceedance(evidence) and _number(exceed.get("p_path_cross")) and _number(exceed.get("threshold_value")):
        below = str(exceed.get("threshold", "")).endswith(":below") or exceed.get("direction") == "below"
        crossings.append(
            (exceed["p_path_cross"], exceed["threshold_value"], below, "cross_probability", "cross_threshold", True)
        )
    if hazard is not None and _number(hazard.get("threshold")):
        below = hazard.get("direction") == "below"
        crossings.append((hazard["probability"], hazard["threshold"], below, "probability", "hazard_threshold", False))
    horizon = forecast.get("horizon") if forecast and isinstance(forecast.get("horizon"), dict) else None
    if _number(lo) and _number(hi):
        shown = ("forecast_low", "forecast_high")
        for p, t, below, p_name, t_name, every_step in crossings:
            env = _envelope(horizon, lo, mid, hi, below=below)
            far, near, median, steps = env
            reaches = (far >= t) if not below else (far <= t)
            wholly = (near > t) if not below else (near < t)
            median_beyond = _number(median) and ((median > t) if not below else (median < t))
            side = "above" if not below else "below"
            where = (
                f"a forecast whose 90% intervals over {steps} steps do not reach it (at most {far:.4g})"
                if horizon
                else f"the 90% interval [{lo:.4g}, {hi:.4g}], which does not reach it"
            )
            # not reaching: each step is beyond t with probability < 0.05, so the path is beyond
            # it with probability < 0.05 * steps (union bound); "more likely than not" beside
            # such intervals reads as a contradiction in any case
            if not reaches and (p >= 0.5 or (horizon and p > 0.05 * steps + _P_TOLERANCE)):
                out.append(
                    Contradiction(
                        f"probability {p:.2f} of going {side} {t:.4g} beside {where}", (p_name, t_name, *shown)
                    )
                )
            elif every_step and wholly and p < 0.95 - _P_TOLERANCE:
                out.append(
                    Contradiction(
                        f"probability {p:.2f} of going {side} {t:.4g} beside a 90% interval wholly {side} it",
                        (p_name, t_name, *shown),
                    )
                )
            elif every_step and median_beyond and p < 0.5 - _P_TOLERANCE:
                out.append(
                    Contradiction(
                        f"probability {p:.2f} of going {side} {t:.4g} beside a forecast median {median:.4g} {side} it",
                        (p_name, t_name, "forecast_median"),
                    )
                )
    floor, ceiling = evidence.get("lower_bound"), evidence.get("upper_bound")
    if _number(floor) and _number(lo) and lo < floor:
        out.append(
            Contradiction(
                f"the 90% interval goes down to {lo:.4g}, below the series' physical lower bound {floor:.4g}",
                ("forecast_low",),
            )
        )
    if _number(ceiling) and _number(hi) and hi > ceiling:
        out.append(
            Contradiction(
                f"the 90% interval goes up to {hi:.4g}, above the series' physical upper bound {ceiling:.4g}",
                ("forecast_high",),
            )
        )
    if hazard is not None:
        out += _hazard_contradictions(hazard, str(evidence.get("level") or ""))
    return out


def _shows_exceedance(evidence: dict[str, Any]) -> bool:
    """Whether the judgment states the forecast's crossing probability: when that is how a
    rarity grade reached its level (the score below the threshold), as :func:`_basis` says it."""
    basis = _basis_of(evidence)
    raw = basis.get("exceedance")
    exceed: dict[str, Any] = raw if isinstance(raw, dict) else {}
    score, threshold = evidence.get("score"), evidence.get("threshold")
    return (
        _hazard_of(evidence) is None
        and bool(exceed)
        and _number(score)
        and _number(threshold)
        and score < threshold
        and exceed.get("level") == evidence.get("level")
    )


def _envelope(
    horizon: dict[str, Any] | None, lo: float, mid: Any, hi: float, *, below: bool
) -> tuple[float, float, Any, int]:
    """(the interval end that must reach the threshold, the end beyond it, the median nearest
    it, steps) over the forecast horizon (``forecast.horizon``), else of the next step."""
    if not horizon:
        return (lo, hi, mid, 1) if below else (hi, lo, mid, 1)
    steps = int(horizon.get("steps") or 1)
    if below:
        return horizon["q05_min"], horizon["q95_min"], horizon.get("q50_min"), steps
    return horizon["q95_max"], horizon["q05_max"], horizon.get("q50_max"), steps


def _hazard_contradictions(hazard: dict[str, Any], level: str) -> list[Contradiction]:
    out = []
    p = float(hazard["probability"])
    if not 0.0 <= p <= 1.0:
        return [Contradiction(f"probability {p:.4g} is not between 0 and 1", ("probability",))]
    expected = hazard.get("expected_count")
    if _number(expected) and expected >= 0 and p > -math.expm1(-expected) + _P_TOLERANCE / 2:
        out.append(
            Contradiction(
                f"probability {p:.2f} of at least one event is more than an expected count of {expected:.2g} "
                f"allows (1 - exp(-{expected:.2g}) = {-math.expm1(-expected):.2f})",
                ("probability", "expected_count"),
            )
        )
    rng = _count_range(hazard)
    if rng and _number(rng[0]) and _number(rng[1]) and rng[0] > rng[1]:
        out.append(Contradiction(f"count range {rng[0]}-{rng[1]} is reversed", ("count_range",)))
    if hazard.get("model") == MARKET_MODEL:
        return out + _market_contradictions(hazard, level)
    ladder = hazard.get("ladder")
    if level and isinstance(ladder, dict) and ladder and level in LEVEL_ZH:
        reached = [name for name, t in ladder.items() if name in LEVEL_ZH and _number(t) and p >= t]
        top = max(reached, key=lambda name: Level.parse(name)) if reached else None
        if top != level:
            out.append(
                Contradiction(
                    f"probability {percent(p)} gives {top or 'no level'} on the model's ladder, not {level}",
                    ("probability",),
                )
            )
    return out


def _market_contradictions(hazard: dict[str, Any], level: str) -> list[Contradiction]:
    """A klr_signals level its own ladder does not give: the rungs reached by the deciding
    target's signal share (and, where a rung needs it, the composite's own signal)."""
    share = _market_target(hazard).get("signal_share")
    rungs = _market_ladder(hazard)
    raw = hazard.get("signals")
    signals: list[Any] = raw if isinstance(raw, list) else []
    composite = [s.get("signalling") for s in signals if isinstance(s, dict) and s.get("indicator") == "composite"]
    if not level or level not in LEVEL_ZH or not rungs or not _number(share) or len(composite) != 1:
        return []
    reached = [n for n, least, needs in rungs if share >= least - 1e-9 and (composite[0] or not needs)]
    top = reached[-1] if reached else None
    if top == level:
        return []
    return [
        Contradiction(
            f"signal share {share:.2f} (composite {'' if composite[0] else 'not '}signalling) gives "
            f"{top or 'no level'} on the model's ladder, not {level}",
            ("signal_share", "probability"),
        )
    ]


def contradiction_sentences(found: list[Contradiction]) -> tuple[str, str]:
    """The note a judgment carries when its evidence disagrees with itself."""
    items = "; ".join(c.message for c in found)
    return (
        f"Check before acting: figures in the evidence disagree ({items}).",
        f"行动前请核查：证据中的数字相互矛盾（{items}）。",
    )
