"""Alerts: lifecycle decisions, judgments, CAP 1.2 and guardrails. The modules here are pure
(frames and dicts in, frames, dicts and bytes out; the caller passes the time); pipelines
stores what they return and does the network."""

from alerts.judgment import AI_LABEL, Judgment, evidence_hash, write_template_judgment
from alerts.lifecycle import (
    ALERT_COLUMNS,
    HAZARD_BY_DOMAIN,
    AlertPlan,
    AlertPolicy,
    assess_data_health,
    plan_alerts,
)

__all__ = [
    "AI_LABEL",
    "Judgment",
    "evidence_hash",
    "write_template_judgment",
    "ALERT_COLUMNS",
    "HAZARD_BY_DOMAIN",
    "AlertPlan",
    "AlertPolicy",
    "assess_data_health",
    "plan_alerts",
]
