"""Judgments: short bilingual assessments written from an alert's evidence (pure).

The template writer renders every number, date, place and level straight from the evidence
bundle, so nothing in its text can be invented. Every judgment carries the label the
guidelines require (machine-generated, auxiliary, for reference) and the hash of the evidence
it was written from, so a reader can trace each statement back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.vocabulary import WARNING_LEVELS, Level

__all__ = [
    "Judgment",
    "AI_LABEL",
    "evidence_hash",
    "write_template_judgment",
    "TEMPLATE_VERSION",
    "LEVEL_ZH",
    "HAZARD_ZH",
]

TEMPLATE_VERSION = "template-v1"

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
    ``basis`` (how the grade reached its level: ``in_cooldown``, ``exceedance``) and
    ``as_of`` (the replay date, which marks the text as an exercise).
    """
    level = evidence["level"]
    ds = _date(evidence["ds"])
    where = evidence.get("region") or "unspecified region"
    value = _fmt(evidence.get("value"), evidence.get("unit"))
    forecast = evidence.get("forecast")
    en_basis, zh_basis = _basis(evidence)
    en = [
        f"{evidence['name']} ({evidence['unique_id']}, {where}) reached {level.upper()} "
        f"(level {Level.parse(level).roman}) for {evidence['hazard'].replace('_', ' ')} on {ds}.",
        f"Observed value {value}; {en_basis}.",
    ]
    zh = [
        f"{evidence['name']}（{evidence['unique_id']}，{where}）于{ds}达到"
        f"{LEVEL_ZH[level]}（{Level.parse(level).roman}级）{_HAZARD_ZH[evidence['hazard']]}预警等级。",
        f"观测值{value}；{zh_basis}。",
    ]
    if forecast:
        band = f"[{_fmt(forecast['q05'])}, {_fmt(forecast['q95'])}]"
        fds = _date(forecast["ds"])
        en.append(f"Next-step forecast for {fds}: median {_fmt(forecast['q50'])}, 90% interval {band}.")
        zh.append(f"{fds}预测中位数{_fmt(forecast['q50'])}，90%区间{band}。")
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
        checks={"grounded": "by construction: every figure rendered from evidence"},
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
