"""Step 4 of the cycle: alerts from grades, judgments, the review gate and CAP publication.

Called by :func:`pipelines.cycle.run_cycle` inside the cycle's transaction, so the alert rows,
their transitions, data-gap notices, judgments, audit rows and outbox events commit together
(the outbox pattern: a released alert can never be lost before the relay sees it). Then the
pending outbox events are rendered as CAP 1.2 files into ``EWS_HOME/alerts`` and routed to
recipients (deliveries are made by ``ews deliver``, outside any transaction).

The demo (actor ``demo`` on a replay clock) approves orange/red alerts as the named duty
officer ``demo-duty-officer``; every such approval is an ``alert.approved`` audit row and an
``approved`` transition by that name, and the demo summary says so. Live cycles never approve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from alerts.lifecycle import AlertPolicy, assess_data_health, group_key, plan_alerts, HAZARD_BY_DOMAIN
from core.settings import Settings
from pipelines.llm import Judge, open_judge
from warehouse import Warehouse
from warehouse import alerting, review

__all__ = ["AlertStepResult", "run_alert_step", "DEMO_OFFICER", "latest_grades", "evidence_bundle"]

#: The named duty officer as whom `ews demo` approves orange/red alerts of a replay.
DEMO_OFFICER = "demo-duty-officer"


@dataclass
class AlertStepResult:
    counts: dict[str, int] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def latest_grades(series: pl.DataFrame, grades: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """Each series' grade at its newest observation ('none' when that point is not graded)."""
    last = series.group_by("unique_id").agg(pl.col("ds").max())
    latest = last.join(grades.select("unique_id", "ds", "level", "score", "evidence"),
                       on=["unique_id", "ds"], how="left")
    latest = latest.with_columns(
        pl.col("level").fill_null("none"),
        pl.col("score").fill_null(0.0),
        pl.col("evidence").fill_null("{}"),
    )
    return latest.join(meta.select("unique_id", "domain", "region"), on="unique_id").sort("unique_id")


def run_alert_step(
    wh: Warehouse,
    settings: Settings,
    *,
    series: pl.DataFrame,
    grades: pl.DataFrame,
    meta: pl.DataFrame,
    now: datetime,
    run_id: str,
    actor: str,
    progress: Any = lambda _m: None,
    judge: Judge | None = None,
) -> AlertStepResult:
    """Plan and write alerts for the series of this cycle; see the module docstring."""
    result = AlertStepResult()
    as_of = settings.cycle.as_of_time()
    clock = as_of or now
    all_meta = wh.read_series_meta()
    frequencies = dict(zip(all_meta["unique_id"], all_meta["frequency"], strict=True))
    latest = latest_grades(series, grades, meta)
    # group mates that did not change this cycle still count toward their group's level
    latest = _with_group_mates(wh, latest, all_meta)
    observed = pl.concat([series, wh.read_observations(
        [u for u in latest["unique_id"].to_list() if u not in set(series["unique_id"].to_list())],
        before=as_of)]) if latest.height else series
    health = assess_data_health(observed, frequencies, clock=clock,
                                stale_steps=settings.alerts.stale_steps, gap_ratio=settings.alerts.gap_ratio)
    silenced = {group_key(r["hazard"], r["region"])
                for r in review.read_silences(wh, active_at=now).iter_rows(named=True)}
    policy = AlertPolicy(auto_release=frozenset(settings.alerts.auto_release),
                         expire_steps=settings.alerts.expire_steps, actor="cycle")
    plan = plan_alerts(latest, alerting.read_open_alerts(wh), now=now, clock=clock, policy=policy,
                       frequencies=frequencies, health=health, silenced=silenced,
                       published=alerting.published_alert_ids(wh))

    counts = result.counts
    counts["alerts"] = alerting.upsert_alert_rows(wh, plan.alerts, run_id=run_id)
    counts["alert_transitions"] = alerting.write_transitions(wh, plan.transitions, at=now, run_id=run_id)
    counts["data_gap_notices"] = alerting.upsert_notices(wh, plan.notices, at=now, run_id=run_id)
    for n in plan.notices.iter_rows(named=True):
        wh.audit(at=now, actor="cycle", action="data_gap.notice", target=n["unique_id"],
                 detail={"kind": n["kind"], "detail": json.loads(n["detail"])})
        result.notes.append(f"{n['unique_id']}: {n['kind']} data, alert withheld (data-gap notice)")
    for t in plan.transitions:
        after = t["after"]
        wh.audit(at=now, actor=actor, action=f"alert.{t['action']}", target=t["alert_id"],
                 detail={"unique_id": after["unique_id"], "level": after["level"], "ds": after["ds"],
                         "release_state": after["release_state"], "reason": t["reason"]})

    fresh_ids = [t["alert_id"] for t in plan.transitions if t["after"]["status"] == "open"]
    fresh = alerting.read_alerts_full(wh, alert_ids=fresh_ids)
    own_judge = judge is None
    judge = judge or open_judge(wh, settings, now=now, run_id=run_id)
    try:
        judgments = _judge_alerts(wh, settings, judge, fresh, all_meta, observed, now=now,
                                  clock=clock, run_id=run_id)
    finally:
        if own_judge:
            judge.close()
    counts["judgments"] = wh.insert_judgments(judgments) if judgments.height else 0
    result.notes.extend(judge.notes)

    final = {r["alert_id"]: r for r in alerting.read_alerts_full(
        wh, alert_ids=[r["alert_id"] for r in plan.releases]).iter_rows(named=True)}
    for release in plan.releases:
        event = review.queue_release(wh, final[release["alert_id"]], at=now, actor="cycle",
                                     msg_type=release["msg_type"], reason=release["reason"])
        wh.audit(at=now, actor="cycle", action="alert.released", target=release["alert_id"],
                 detail={"outbox": event, "msg_type": release["msg_type"], "reason": release["reason"]})
    if actor == "demo" and as_of is not None:
        for row in alerting.read_alerts_full(wh, alert_ids=fresh_ids).iter_rows(named=True):
            if row["status"] == "open" and row["release_state"] == "pending":
                review.approve_release(wh, alert_id=row["alert_id"], user=DEMO_OFFICER, at=now)
                result.notes.append(f"{row['alert_id']} ({row['level']}) approved by {DEMO_OFFICER} "
                                    "(ews demo acts as the duty officer of this exercise)")

    text_by_alert = dict(zip(judgments["alert_id"], judgments["text_en"], strict=True)) if judgments.height else {}
    check_by_alert = ({r["alert_id"]: json.loads(r["checks"]).get("verdict") for r in judgments.iter_rows(named=True)}
                      if judgments.height else {})
    for t in plan.transitions:
        row = alerting.read_alerts_full(wh, alert_ids=[t["alert_id"]]).row(0, named=True)
        result.alerts.append({**{k: row[k] for k in ("alert_id", "unique_id", "domain", "region", "hazard",
                                                     "level", "status", "ds", "score", "release_state")},
                              "transition": t["action"], "judgment_en": text_by_alert.get(t["alert_id"]),
                              "judgment_check": check_by_alert.get(t["alert_id"])})
    return result


def _with_group_mates(wh: Warehouse, latest: pl.DataFrame, all_meta: pl.DataFrame) -> pl.DataFrame:
    keys = {(HAZARD_BY_DOMAIN[r["domain"]], r["region"]) for r in latest.iter_rows(named=True)}
    present = set(latest["unique_id"])
    mates = [r["unique_id"] for r in all_meta.iter_rows(named=True)
             if (HAZARD_BY_DOMAIN[r["domain"]], r["region"]) in keys and r["unique_id"] not in present]
    if not mates:
        return latest
    stored = wh.read_latest_grades().filter(pl.col("unique_id").is_in(mates))
    if stored.height == 0:
        return latest
    return pl.concat([latest, stored.select(latest.columns)], how="vertical_relaxed").sort("unique_id")


def evidence_bundle(alert: dict[str, Any], info: dict[str, Any], observed: pl.DataFrame,
                    forecast: pl.DataFrame, *, threshold: float, clock: datetime,
                    as_of: str | None) -> dict[str, Any]:
    """Everything a judgment may say about one alert, and nothing else."""
    uid = alert["unique_id"]
    grade_evidence = json.loads(alert["evidence"] or "{}")
    value = observed.filter((pl.col("unique_id") == uid) & (pl.col("ds") == alert["ds"]))
    nxt = forecast.filter(pl.col("unique_id") == uid).sort("ds").head(1)
    return {
        "alert_id": alert["alert_id"],
        "name": info["name"],
        "unique_id": uid,
        "region": info["region"],
        "hazard": alert["hazard"],
        "level": alert["level"],
        "ds": alert["ds"].isoformat(),
        "score": alert["score"],
        "threshold": threshold,
        "driver": grade_evidence.get("driver", "ensemble"),
        "value": value.get_column("y").item() if value.height else None,
        "unit": info["unit"],
        "source": info["source"],
        "classification": info.get("classification") or "public",
        "data_age_days": (clock - alert["ds"]).days,
        "as_of": as_of,
        "group_members": grade_evidence.get("group_members", []),
        "basis": {"raw_level": grade_evidence.get("raw_level"),
                  "in_cooldown": bool(grade_evidence.get("in_cooldown")),
                  "exceedance": grade_evidence.get("exceedance")},
        "forecast": None if nxt.height == 0 else {
            "ds": nxt.item(0, "ds").isoformat(),
            "q05": nxt.item(0, "q05"), "q50": nxt.item(0, "q50"), "q95": nxt.item(0, "q95"),
        },
    }


def _judge_alerts(wh: Warehouse, settings: Settings, judge: Judge, alerts: pl.DataFrame,
                  meta: pl.DataFrame, observed: pl.DataFrame, *, now: datetime, clock: datetime,
                  run_id: str) -> pl.DataFrame:
    """One judgment per new or changed open alert; a failed LLM check flags it for review."""
    if alerts.height == 0:
        return pl.DataFrame()
    forecasts = wh.read_latest_forecasts(alerts.get_column("unique_id").to_list())
    info = {r["unique_id"]: r for r in meta.iter_rows(named=True)}
    thresholds = settings.risk.thresholds()
    rows = []
    for alert in alerts.filter(pl.col("status") == "open").iter_rows(named=True):
        evidence = evidence_bundle(alert, info[alert["unique_id"]], observed, forecasts,
                                   threshold=thresholds[alert["level"]], clock=clock,
                                   as_of=settings.cycle.as_of or None)
        judgment = judge.write(evidence)
        flag = judgment.checks.get("review_flag")
        alerting.set_review_flag(wh, alert["alert_id"], flag)
        rows.append({
            "judgment_id": f"j_{judgment.evidence_hash[:16]}",
            "alert_id": alert["alert_id"],
            "run_id": run_id,
            "writer": judgment.writer,
            "model": judgment.model,
            "prompt_version": judgment.prompt_version,
            "evidence_hash": judgment.evidence_hash,
            "label": judgment.label,
            "text_en": judgment.text_en,
            "text_zh": judgment.text_zh,
            "checks": json.dumps(judgment.checks, default=str),
            "created_at": now,
        })
    return pl.DataFrame(rows)
