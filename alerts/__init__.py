"""Alerts: lifecycle decisions and judgments. The modules here are pure (frames and dicts in,
frames and dicts out, the caller passes the time); pipelines stores what they return."""

from alerts.judgment import AI_LABEL, Judgment, evidence_hash, write_template_judgment
from alerts.lifecycle import ALERT_COLUMNS, HAZARD_BY_DOMAIN, plan_alerts

__all__ = [
    "AI_LABEL", "Judgment", "evidence_hash", "write_template_judgment",
    "ALERT_COLUMNS", "HAZARD_BY_DOMAIN", "plan_alerts",
]
