"""Step 4 of the cycle: alerts from grades, judgments, the review gate and CAP publication.

Three parts, called by :func:`pipelines.cycle.run_cycle`:

- :func:`run_alert_step` runs inside the cycle's final write transaction and makes no network call:
  the alert rows, their transitions, data-gap notices, audit rows, outbox events and a
  *provisional* judgment per new or changed open alert (the template writer, grounded by
  construction, ``checks.verdict`` = :data:`PROVISIONAL_VERDICT`) commit together (the outbox
  pattern: a released alert can never be lost before the relay sees it, and never lacks a
  judgment). It returns the evidence bundles still to be judged.
- :func:`run_expiry_step` is the whole step of a cycle in which no series changed: open
  alerts past ``expires_at`` expire, with transition and audit rows (same transaction rules).
  It releases nothing (an expiry plan with a release is an error).
- :func:`judge_alerts` runs after that transaction has committed: the judge (pipelines/llm.py,
  LLM or template) writes one judgment per bundle, outside any transaction, so each LLM
  call's ``llm.call`` audit row commits on its own and survives whatever fails later; each
  final judgment replaces its provisional row (same ``judgment_id``: the evidence hash) and
  sets the alert's review flag in one short transaction.
- :func:`provisional_bundles` (after the commit, every cycle, also one with no changed
  series): the evidence bundles of open alerts whose stored judgment is still the
  provisional one, e.g. because an earlier run failed while judging; rebuilt as
  :func:`run_alert_step` builds them (clock = the replay day, or the time the provisional
  judgment was written), so :func:`judge_alerts` replaces it before CAP is published.

Then the cycle renders the pending outbox events as CAP 1.2 files into ``EWS_HOME/alerts``
(after the judgments, so a message carries the final text) and routes them to recipients
(deliveries are made by ``ews deliver``, outside any transaction).

The step never approves a release: orange and red wait for a duty officer (``ews demo``
approves them afterwards as its named duty officer, pipelines/cli/main.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from alerts.judgment import Judgment, evidence_hash, grade_basis, write_template_judgment
from alerts.lifecycle import (
    HAZARD_BY_DOMAIN,
    AlertPlan,
    AlertPolicy,
    assess_data_health,
    group_key,
    plan_alerts,
    plan_expiry,
)
from core.clock import Clock
from core.frames import detached
from core.settings import Settings
from core.vocabulary import AlertStatus, Classification, Level
from pipelines.llm import Judge, open_judge
from pipelines.vetting import Catalogue, load_catalogue, publishable, vetting_checks
from warehouse import Warehouse, alerting, review
from warehouse.forecast_store import read_latest_forecasts
from warehouse.grades import read_latest_grades
from warehouse.runs import audit
from warehouse.series import read_observations, read_series_meta

__all__ = [
    "AlertStepResult",
    "JudgeResult",
    "run_alert_step",
    "run_expiry_step",
    "judge_alerts",
    "provisional_bundles",
    "PROVISIONAL_VERDICT",
    "latest_grades",
    "series_health",
    "evidence_bundle",
]

#: ``checks.verdict`` of the template judgment stored with the alert transaction, until
#: :func:`judge_alerts` replaces it after the commit (it stays if the run fails in between).
PROVISIONAL_VERDICT = "provisional template (final judgment written after the alert transaction)"

_JUDGMENT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "judgment_id": pl.Utf8,
    "alert_id": pl.Utf8,
    "run_id": pl.Utf8,
    "writer": pl.Utf8,
    "model": pl.Utf8,
    "prompt_version": pl.Utf8,
    "evidence_hash": pl.Utf8,
    "label": pl.Utf8,
    "text_en": pl.Utf8,
    "text_zh": pl.Utf8,
    "checks": pl.Utf8,
    "created_at": pl.Datetime("us"),
}


@dataclass
class AlertStepResult:
    counts: dict[str, int] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: evidence bundles of the alerts :func:`judge_alerts` must judge once the step committed
    to_judge: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class JudgeResult:
    judgments: dict[str, Judgment] = field(default_factory=dict)  # alert_id -> final judgment
    notes: list[str] = field(default_factory=list)


def latest_grades(series: pl.DataFrame, grades: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """Each series' grade at its newest observation ('none' when that point is not graded)."""
    last = series.group_by("unique_id").agg(pl.col("ds").max())
    newest = last.join(
        grades.select("unique_id", "ds", "level", "score", "evidence"), on=["unique_id", "ds"], how="left"
    )
    return _with_meta(newest, meta)


def _with_meta(newest: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """``newest`` (each series' newest ``ds`` and its grade, null when not graded) with 'none'
    for the ungraded and the series' domain and region."""
    latest = newest.select("unique_id", "ds", "level", "score", "evidence").with_columns(
        pl.col("level").fill_null(Level.NONE.label),
        pl.col("score").fill_null(0.0),
        pl.col("evidence").fill_null("{}"),
    )
    return latest.join(meta.select("unique_id", "domain", "region"), on="unique_id").sort("unique_id")


def series_health(
    series: pl.DataFrame, settings: Settings, *, frequencies: dict[str, str], clock: Clock
) -> pl.DataFrame:
    """:func:`alerts.assess_data_health` of ``series`` (observations) under ``[alerts]``, judged
    at ``clock.judged_at``. Per series, so the cycle runs it chunk by chunk."""
    return assess_data_health(
        series,
        frequencies,
        clock=clock.judged_at,
        stale_steps=settings.alerts.stale_steps,
        gap_ratio=settings.alerts.gap_ratio,
    )


def run_alert_step(
    wh: Warehouse,
    settings: Settings,
    *,
    latest: pl.DataFrame,
    health: pl.DataFrame,
    meta: pl.DataFrame,
    clock: Clock,
    run_id: str,
    actor: str,
    progress: Any = lambda _m: None,
) -> AlertStepResult:
    """Plan and write alerts for the series of this cycle (inside the cycle's transaction, no
    network call); see the module docstring. ``clock.now`` stamps the rows; the data is judged
    at ``clock.judged_at`` (the end of the replay day, or now).

    ``latest``: each changed series' newest ``ds`` and its level there (``unique_id, ds,
    level, score, evidence``, null where that point has no grade: the levels step's
    :attr:`~pipelines.hazard_step.HazardStepResult.latest`); ``health``: their data health
    (:func:`series_health`, which the cycle runs per chunk while it holds the observations).
    The observations of unchanged group mates are read here, ``[cycle] chunk_series`` series
    at a time; those of the series an alert opens on, for its evidence."""
    result = AlertStepResult()
    now, judged_at = clock.now, clock.judged_at
    all_meta = read_series_meta(wh)
    frequencies = dict(zip(all_meta["unique_id"], all_meta["frequency"], strict=True))
    present = set(latest.get_column("unique_id").to_list()) | set(health.get_column("unique_id").to_list())
    latest = _with_meta(latest, meta)
    # group mates that did not change this cycle still count toward their group's level
    latest = _with_group_mates(wh, latest, all_meta)
    mates = [u for u in latest["unique_id"].to_list() if u not in present]
    size = settings.cycle.chunk_series or len(mates) or 1
    parts = [health]
    for i in range(0, len(mates), size):
        observed = read_observations(wh, mates[i : i + size], before=clock.cutoff)
        # detached: its names would otherwise keep this chunk's observations' string buffers
        parts.append(detached(series_health(observed, settings, frequencies=frequencies, clock=clock)))
    health = pl.concat(parts)
    silenced = {
        group_key(r["hazard"], r["region"]) for r in review.read_silences(wh, active_at=now).iter_rows(named=True)
    }
    policy = _policy(settings)
    plan = plan_alerts(
        latest,
        alerting.read_open_alerts(wh),
        now=now,
        clock=judged_at,
        policy=policy,
        frequencies=frequencies,
        health=health,
        silenced=silenced,
        published=alerting.published_alert_ids(wh),
        closed=_closed_groups(wh),
    )

    counts = result.counts
    _write_plan(wh, plan, now=now, run_id=run_id, actor=actor, result=result)
    counts["data_gap_notices"] = alerting.upsert_notices(wh, plan.notices, at=now, run_id=run_id)
    for n in plan.notices.iter_rows(named=True):
        audit(
            wh,
            at=now,
            actor="cycle",
            action="data_gap.notice",
            target=n["unique_id"],
            detail={"kind": n["kind"], "detail": json.loads(n["detail"])},
        )
        result.notes.append(f"{n['unique_id']}: {n['kind']} data, alert withheld (data-gap notice)")

    fresh_ids = [t["alert_id"] for t in plan.transitions if t["after"]["status"] == AlertStatus.OPEN]
    fresh = alerting.read_alerts_full(wh, alert_ids=fresh_ids)
    observed = read_observations(wh, fresh.get_column("unique_id").unique().to_list(), before=clock.cutoff)
    # The judge (and its network calls) runs after this transaction commits (judge_alerts);
    # until then every fresh alert carries the template judgment of the same evidence.
    result.to_judge = _evidence_bundles(wh, settings, fresh, all_meta, observed, judged_at=judged_at, as_of=clock.as_of)
    catalogue = load_catalogue(wh, settings)
    provisional = [(e, _provisional(e, settings, catalogue)) for e in result.to_judge]
    counts["judgments"] = (
        alerting.insert_judgments(wh, _judgment_frame(provisional, run_id=run_id, now=now)) if provisional else 0
    )

    final = {
        r["alert_id"]: r
        for r in alerting.read_alerts_full(wh, alert_ids=[r["alert_id"] for r in plan.releases]).iter_rows(named=True)
    }
    for release in plan.releases:
        event = review.queue_release(
            wh,
            final[release["alert_id"]],
            at=now,
            actor="cycle",
            msg_type=release["msg_type"],
            reason=release["reason"],
        )
        audit(
            wh,
            at=now,
            actor="cycle",
            action="alert.released",
            target=release["alert_id"],
            detail={"outbox": event, "msg_type": release["msg_type"], "reason": release["reason"]},
        )

    _summarise(wh, plan, {e["alert_id"]: j for e, j in provisional}, result)
    return result


def run_expiry_step(wh: Warehouse, settings: Settings, *, clock: Clock, run_id: str, actor: str) -> AlertStepResult:
    """The alert step of a cycle in which no series changed (inside its transaction): every
    open alert not renewed before its ``expires_at`` (judged at ``clock.judged_at``: the replay
    day or now) expires, with an ``expired`` transition (actor ``cycle``, the reason, this
    run's id) and an ``alert.expired`` audit row by the cycle's ``actor``. Nothing is judged or
    released."""
    result = AlertStepResult()
    policy = _policy(settings)
    plan = plan_expiry(alerting.read_open_alerts(wh), now=clock.now, clock=clock.judged_at, policy=policy)
    _write_plan(
        wh,
        plan,
        now=clock.now,
        run_id=run_id,
        actor=actor,
        result=result,
        cause="expiry check of a cycle with no changed series",
    )
    for t in plan.transitions:
        result.notes.append(f"{t['alert_id']} {t['action']}: {t['reason']}")
    _summarise(wh, plan, {}, result)
    return result


def judge_alerts(
    wh: Warehouse,
    settings: Settings,
    to_judge: list[dict[str, Any]],
    *,
    now: datetime,
    run_id: str,
    judge: Judge | None = None,
) -> JudgeResult:
    """Write the final judgment of each evidence bundle, after the alert transaction committed.

    Must not run inside a transaction: the judge's network calls would hold the write
    transaction open and its ``llm.call`` audit rows would roll back with it. Each judgment
    (writer, model, prompt version, evidence hash, check verdicts) replaces the provisional
    row of the same evidence and sets the alert's review flag, in one short transaction.
    """
    out = JudgeResult()
    if not to_judge:
        return out
    if wh.in_transaction:
        raise RuntimeError("judge_alerts runs after the alert transaction commits, not inside one")
    own_judge = judge is None
    judge = judge or open_judge(wh, settings, now=now, run_id=run_id)
    try:
        for evidence in to_judge:
            judgment = judge.write(evidence)  # may call the endpoint; audit rows commit as made
            frame = _judgment_frame([(evidence, judgment)], run_id=run_id, now=now)
            with wh.transaction():
                alerting.insert_judgments(wh, frame)
                # a provisional row of other evidence (if the bundle was rebuilt differently)
                # is replaced too: the final judgment is the alert's judgment from now on
                alerting.delete_other_judgments_with_verdict(
                    wh,
                    alert_id=evidence["alert_id"],
                    keep_judgment_id=frame.item(0, "judgment_id"),
                    verdict=PROVISIONAL_VERDICT,
                )
                alerting.set_review_flag(wh, evidence["alert_id"], judgment.checks.get("review_flag"))
            out.judgments[evidence["alert_id"]] = judgment
    finally:
        if own_judge:
            judge.close()
    out.notes.extend(judge.notes)
    return out


def provisional_bundles(
    wh: Warehouse, settings: Settings, *, clock: Clock, exclude: set[str] | frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Evidence bundles of open alerts (not in ``exclude``) whose newest stored judgment is
    still the provisional template (:data:`PROVISIONAL_VERDICT`), e.g. after a run failed
    between its commit and its judgments. Read-only; runs after the write transaction.

    Built as :func:`run_alert_step` builds them (observations up to the replay day, latest
    forecasts, series metadata), judged at the replay day or, live, at the time the
    provisional judgment was written, so the bundle and its evidence hash are the same.
    """
    rows = alerting.open_alerts_with_judgment_verdict(wh, PROVISIONAL_VERDICT)
    rows = rows.filter(~pl.col("alert_id").is_in(list(exclude)))
    if rows.height == 0:
        return []
    all_meta = read_series_meta(wh)
    observed = read_observations(wh, rows["unique_id"].unique().to_list(), before=clock.cutoff)
    bundles = []
    for judged_at, part in rows.group_by("judged_at", maintain_order=True):
        bundles += _evidence_bundles(
            wh,
            settings,
            part.drop("judged_at"),
            all_meta,
            observed,
            judged_at=clock.cutoff or judged_at[0],
            as_of=clock.as_of,
        )
    return bundles


def _closed_groups(wh: Warehouse) -> dict[tuple[str, str], datetime]:
    """Per hazard + region: the newest lead ``ds`` of its expired, resolved or cancelled alerts."""
    return {group_key(hazard, region): ds for hazard, region, ds in alerting.closed_group_leads(wh)}


def _policy(settings: Settings) -> AlertPolicy:
    """The lifecycle policy of ``[alerts]``; transitions planned by the cycle have actor ``cycle``."""
    return AlertPolicy(
        auto_release=frozenset(settings.alerts.auto_release), expire_steps=settings.alerts.expire_steps, actor="cycle"
    )


def _write_plan(
    wh: Warehouse,
    plan: AlertPlan,
    *,
    now: datetime,
    run_id: str,
    actor: str,
    result: AlertStepResult,
    cause: str | None = None,
) -> None:
    """Alert rows, their transitions and one ``alert.<action>`` audit row per transition."""
    result.counts["alerts"] = alerting.upsert_alert_rows(wh, plan.alerts, run_id=run_id)
    result.counts["alert_transitions"] = alerting.write_transitions(wh, plan.transitions, at=now, run_id=run_id)
    for t in plan.transitions:
        after = t["after"]
        detail = {
            "unique_id": after["unique_id"],
            "level": after["level"],
            "ds": after["ds"],
            "release_state": after["release_state"],
            "reason": t["reason"],
            "run_id": run_id,
        }
        if cause:
            detail["cause"] = cause
        audit(wh, at=now, actor=actor, action=f"alert.{t['action']}", target=t["alert_id"], detail=detail)


def _summarise(wh: Warehouse, plan: AlertPlan, judgments: dict[str, Judgment], result: AlertStepResult) -> None:
    for t in plan.transitions:
        row = alerting.read_alerts_full(wh, alert_ids=[t["alert_id"]]).row(0, named=True)
        judgment = judgments.get(t["alert_id"])
        result.alerts.append(
            {
                **{
                    k: row[k]
                    for k in (
                        "alert_id",
                        "unique_id",
                        "domain",
                        "region",
                        "hazard",
                        "level",
                        "status",
                        "ds",
                        "score",
                        "release_state",
                    )
                },
                "transition": t["action"],
                "judgment_en": judgment.text_en if judgment else None,
                "judgment_check": judgment.checks.get("verdict") if judgment else None,
            }
        )


def _with_group_mates(wh: Warehouse, latest: pl.DataFrame, all_meta: pl.DataFrame) -> pl.DataFrame:
    keys = {(HAZARD_BY_DOMAIN[r["domain"]], r["region"]) for r in latest.iter_rows(named=True)}
    present = set(latest["unique_id"])
    mates = [
        r["unique_id"]
        for r in all_meta.iter_rows(named=True)
        if (HAZARD_BY_DOMAIN[r["domain"]], r["region"]) in keys and r["unique_id"] not in present
    ]
    if not mates:
        return latest
    stored = read_latest_grades(wh, mates)
    if stored.height == 0:
        return latest
    return pl.concat([latest, stored.select(latest.columns)], how="vertical_relaxed").sort("unique_id")


def evidence_bundle(
    alert: dict[str, Any],
    info: dict[str, Any],
    observed: pl.DataFrame,
    forecast: pl.DataFrame,
    *,
    threshold: float,
    clock: datetime,
    as_of: str | None,
) -> dict[str, Any]:
    """Everything a judgment may say about one alert, and nothing else.

    The series' physical bounds (``lower_bound``, ``upper_bound`` of its catalogue entry) are
    included when set, so the judgment can check the forecast interval against them.
    """
    uid = alert["unique_id"]
    grade_evidence = json.loads(alert["evidence"] or "{}")
    value = observed.filter((pl.col("unique_id") == uid) & (pl.col("ds") == alert["ds"]))
    nxt = forecast.filter(pl.col("unique_id") == uid).sort("ds").head(1)
    bounds = {k: info[k] for k in ("lower_bound", "upper_bound") if info.get(k) is not None}
    basis = grade_basis(grade_evidence)
    hazard = basis.get("hazard") if isinstance(basis.get("hazard"), dict) else {}
    # a crossing probability is checked against the intervals of the whole horizon
    # (alerts.judgment.evidence_contradictions), carried only where there is one
    horizon = _horizon(forecast.filter(pl.col("unique_id") == uid)) if basis.get("exceedance") or hazard else None
    return bounds | {
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
        "classification": info.get("classification") or Classification.PUBLIC.label,
        "data_age_days": (clock - alert["ds"]).days,
        "as_of": as_of,
        "group_members": grade_evidence.get("group_members", []),
        # how the grade reached its level: the rarity grade's own steps and, when the cycle
        # labelled it, the field model's forecast (``hazard``) or the rarity cap (issue 14)
        "basis": basis,
        "forecast": None
        if nxt.height == 0
        else {
            "ds": nxt.item(0, "ds").isoformat(),
            "q05": nxt.item(0, "q05"),
            "q50": nxt.item(0, "q50"),
            "q95": nxt.item(0, "q95"),
        }
        | ({"horizon": horizon} if horizon else {}),
    }


def _horizon(steps: pl.DataFrame) -> dict[str, Any] | None:
    """The 90% envelope of a series' forecast over its horizon (extremes of q05, q50, q95)."""
    if steps.height == 0:
        return None
    row = steps.select(
        pl.len().alias("steps"),
        pl.col("ds").max().alias("end"),
        *(getattr(pl.col(q), f)().alias(f"{q}_{f}") for q in ("q05", "q50", "q95") for f in ("min", "max")),
    ).row(0, named=True)
    return {**row, "end": row["end"].isoformat()}


def _evidence_bundles(
    wh: Warehouse,
    settings: Settings,
    alerts: pl.DataFrame,
    meta: pl.DataFrame,
    observed: pl.DataFrame,
    *,
    judged_at: datetime,
    as_of: str | None,
) -> list[dict[str, Any]]:
    """The evidence bundle of each new or changed open alert (what its judgment is written from),
    judged at ``judged_at``; ``as_of`` (the replay day) marks the bundle as an exercise."""
    if alerts.height == 0:
        return []
    forecasts = read_latest_forecasts(wh, alerts.get_column("unique_id").to_list())
    info = {r["unique_id"]: r for r in meta.iter_rows(named=True)}
    thresholds = settings.risk.thresholds()
    return [
        evidence_bundle(
            alert,
            info[alert["unique_id"]],
            observed,
            forecasts,
            threshold=thresholds[alert["level"]],
            clock=judged_at,
            as_of=as_of,
        )
        for alert in alerts.filter(pl.col("status") == AlertStatus.OPEN).iter_rows(named=True)
    ]


def _provisional(evidence: dict[str, Any], settings: Settings, catalogue: Catalogue) -> Judgment:
    """The template judgment stored with the alert until the judge has written its own: it
    quotes the vetted name, region and unit, and a free-text field the injection screen blocks
    is withheld from it, as from the judge's."""
    view, events, how = publishable(evidence, catalogue, settings)
    base = write_template_judgment(view)
    blocked = [e["field"] for e in events if not e["allowed"]]
    return Judgment(
        writer=base.writer,
        model=base.model,
        prompt_version=base.prompt_version,
        evidence_hash=evidence_hash(evidence),
        label=base.label,
        text_en=base.text_en,
        text_zh=base.text_zh,
        checks={
            **base.checks,
            "verdict": PROVISIONAL_VERDICT,
            **({"withheld": blocked} if blocked else {}),
            **vetting_checks(how),
        },
    )


def _judgment_frame(items: list[tuple[dict[str, Any], Judgment]], *, run_id: str, now: datetime) -> pl.DataFrame:
    """Judgment rows; the id comes from the evidence, so the final judgment of an alert
    replaces its provisional one whatever writer produced it."""
    return pl.DataFrame(
        [
            {
                "judgment_id": f"j_{evidence_hash(evidence)[:16]}",
                "alert_id": evidence["alert_id"],
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
            }
            for evidence, judgment in items
        ],
        schema=_JUDGMENT_SCHEMA,
    )
