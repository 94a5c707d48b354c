"""Alert decisions from risk grades (pure: frames in, a plan out; the caller passes the time).

Contract of :func:`plan_alerts`:

- **Grouping and de-duplication.** Series are grouped by hazard (from their domain) and region;
  one group has at most one open alert. Its level is the highest level among the group's
  members, its lead series the member with that level and the highest score; at one level a
  field model's grade (evidence ``basis: hazard_model``, e.g. the market composite's KLR
  level) leads before the statistical-rarity grades of its group mates, so the alert states
  the model's probability. The alert id is
  stable for the episode (hazard + region + the lead's first triggering time), so a rerun on
  the same grades yields the same rows and the warehouse sees no change.
- **Lifecycle.** open → (escalated | deescalated | updated)* → resolved (every member graded
  none again) or expired (no renewal before ``expires_at``, judged on ``clock``).
  ``expires_at`` = lead observation + ``expire_steps`` steps of the lead's frequency.
  Expiry is judged for every open alert on every cycle: :func:`plan_alerts` for a cycle with
  changed series (also when the group's lead grade is unchanged because only a group mate got
  new data), :func:`plan_expiry` for one without (nothing else can change then).
- **No resurrection.** A member grade whose own ``expires_at`` is at or before ``clock`` can
  neither lead nor renew an alert (it has already run out). No alert is opened from a lead
  that is not newer than the group's last closed (expired, resolved or cancelled) alert
  (``closed``): its id would be that closed alert's, and the upsert would turn the closed row
  back to ``open`` (and release a CAP Update) only for the next quiet cycle to expire it again.
- **Inhibition.** A member whose data is stale or gapped (see :func:`assess_data_health`)
  cannot raise, escalate or renew an alert; a data-gap notice is planned instead.
  A grade of none still resolves (falling back to none is not a reason to keep warning).
- **Review gate.** A new or re-levelled alert is ``released`` when its level is in
  ``auto_release`` and no silence covers its hazard + region, ``suppressed`` when a silence
  does, else ``pending`` (a duty officer approves, see warehouse/review.py). A release
  queues a CAP Alert (first message) or Update; resolving an alert that had gone out queues
  an all-clear Update.
- Every change is one transition with the actor and the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import polars as pl

from alerts.judgment import HAZARD_MODEL
from core.vocabulary import LEVEL_RANK, AlertStatus, Domain, Level, ReleaseState

__all__ = [
    "HAZARD_BY_DOMAIN",
    "ALERT_COLUMNS",
    "STEP",
    "AlertPolicy",
    "AlertPlan",
    "plan_alerts",
    "plan_expiry",
    "assess_data_health",
    "group_key",
]

#: What an alert on a series of each domain warns about.
HAZARD_BY_DOMAIN: dict[str, str] = {
    Domain.MARKET.value: "market_risk",
    Domain.SEISMIC.value: "earthquake",
    Domain.GEODETIC.value: "ground_deformation",
    Domain.HYDRO.value: "hydrological_extreme",
    Domain.SATELLITE.value: "climate_anomaly",
}

ALERT_COLUMNS = (
    "alert_id",
    "unique_id",
    "domain",
    "region",
    "hazard",
    "level",
    "status",
    "ds",
    "score",
    "evidence",
    "opened_at",
    "updated_at",
    "release_state",
    "expires_at",
)

#: One expected step per frequency. Business days step 1 day, but a weekend is 3 days, so
#: staleness limits below use whole steps of at least that.
STEP: dict[str, timedelta] = {
    "h": timedelta(hours=1),
    "D": timedelta(days=1),
    "B": timedelta(days=1),
    "W-FRI": timedelta(days=7),
    "W-SUN": timedelta(days=7),
    "MS": timedelta(days=31),
}

_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "alert_id": pl.Utf8,
    "unique_id": pl.Utf8,
    "domain": pl.Utf8,
    "region": pl.Utf8,
    "hazard": pl.Utf8,
    "level": pl.Utf8,
    "status": pl.Utf8,
    "ds": pl.Datetime("us"),
    "score": pl.Float64,
    "evidence": pl.Utf8,
    "opened_at": pl.Datetime("us"),
    "updated_at": pl.Datetime("us"),
    "release_state": pl.Utf8,
    "expires_at": pl.Datetime("us"),
}
_LATEST_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "unique_id": pl.Utf8,
    "ds": pl.Datetime("us"),
    "level": pl.Utf8,
    "score": pl.Float64,
    "evidence": pl.Utf8,
    "domain": pl.Utf8,
    "region": pl.Utf8,
}
_NOTICE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "notice_id": pl.Utf8,
    "unique_id": pl.Utf8,
    "hazard": pl.Utf8,
    "region": pl.Utf8,
    "kind": pl.Utf8,
    "detail": pl.Utf8,
}


@dataclass(frozen=True)
class AlertPolicy:
    """The configurable part of the lifecycle ([alerts] in ews.toml)."""

    auto_release: frozenset[str] = frozenset({Level.BLUE.label, Level.YELLOW.label})
    expire_steps: int = 3
    actor: str = "cycle"


@dataclass
class AlertPlan:
    """What the caller writes, in one transaction."""

    alerts: pl.DataFrame  # rows to upsert (ALERT_COLUMNS)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)  # alert_id, msg_type, reason
    notices: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_NOTICE_SCHEMA))


def group_key(hazard: str, region: str | None) -> tuple[str, str]:
    return hazard, region or ""


def _alert_id(hazard: str, region: str | None, first_ds: datetime) -> str:
    text = f"{hazard}|{region or ''}|{first_ds.isoformat()}"
    return f"a_{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _notice_id(unique_id: str, kind: str, ds: datetime) -> str:
    text = f"{unique_id}|{kind}|{ds.isoformat()}"
    return f"n_{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def assess_data_health(
    series: pl.DataFrame,
    frequencies: dict[str, str],
    *,
    clock: datetime,
    stale_steps: int = 5,
    gap_ratio: float = 0.5,
    recent_steps: int = 30,
) -> pl.DataFrame:
    """Per series: ``state`` ok | stale | gap and a JSON ``detail`` saying why.

    - stale: the newest observation is older than ``stale_steps`` steps of the series'
      frequency AND older than 3x the series' own median spacing (so sparse event series,
      e.g. daily energy that only exists on days with quakes, are not stale for being sparse);
    - gap: in the last ``recent_steps`` steps before the newest observation the series has
      fewer than ``gap_ratio`` times the points its own previous year's density predicts.
    """
    rows = []
    for uid, part in series.sort("ds").partition_by("unique_id", maintain_order=True, as_dict=True).items():
        uid = uid[0]
        ds = part.get_column("ds")
        step = STEP[frequencies[uid]]
        # polars types aggregates as any Python literal; ds is a Datetime column (the series
        # contract) and each group has rows, so these are a datetime and a timedelta
        last = cast(datetime, ds.max())
        spacing = ds.diff().drop_nulls()
        median_gap = cast(timedelta, spacing.median()) if spacing.len() else step
        age = clock - last
        limit = max(step * stale_steps, median_gap * 3)
        detail: dict[str, Any] = {
            "last_ds": last.isoformat(),
            "age_hours": round(age.total_seconds() / 3600, 1),
            "limit_hours": round(limit.total_seconds() / 3600, 1),
        }
        state = "ok"
        if age > limit:
            state = "stale"
        else:
            recent_start = last - step * recent_steps
            history = ds.filter((ds <= recent_start) & (ds > recent_start - timedelta(days=365)))
            recent = ds.filter(ds > recent_start).len()
            if history.len() >= 10:
                span = (recent_start - cast(datetime, history.min())) / step
                expected = history.len() / max(span, 1.0) * recent_steps
                detail.update(recent_points=recent, expected_points=round(expected, 1))
                if expected >= 4 and recent < gap_ratio * expected:
                    state = "gap"
        rows.append({"unique_id": uid, "state": state, "detail": json.dumps(detail)})
    return pl.DataFrame(rows, schema={"unique_id": pl.Utf8, "state": pl.Utf8, "detail": pl.Utf8})


def plan_alerts(
    latest: pl.DataFrame,
    open_alerts: pl.DataFrame,
    *,
    now: datetime,
    clock: datetime,
    policy: AlertPolicy = AlertPolicy(),
    frequencies: dict[str, str] | None = None,
    health: pl.DataFrame | None = None,
    silenced: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
    published: set[str] | frozenset[str] = frozenset(),
    closed: dict[tuple[str, str], datetime] | None = None,
) -> AlertPlan:
    """Plan alert rows, transitions, releases and notices (see the module docstring).

    ``latest``: unique_id, ds, level, score, evidence, domain, region: each series' newest
    grade, for every series of every group that has a changed member.
    ``open_alerts``: rows of ``alerts`` with status open. ``now`` stamps the rows; ``clock``
    is the time the data is judged at (the replay day, or now). ``frequencies`` maps series
    to frequency (default D). ``health``: from :func:`assess_data_health` (default: all ok).
    ``silenced``: (hazard, region) pairs under a silence now. ``published``: alert ids that
    already have an outbox message. ``closed``: per group key, the newest lead observation
    time (``ds``) of its expired, resolved or cancelled alerts; a lead at or before it opens
    nothing.
    """
    frequencies = frequencies or {}
    closed = closed or {}
    state = {} if health is None else dict(zip(health["unique_id"], health["state"], strict=True))
    detail = {} if health is None else dict(zip(health["unique_id"], health["detail"], strict=True))
    plan = AlertPlan(alerts=pl.DataFrame(schema=_SCHEMA))
    rows: list[dict[str, Any]] = []
    notices: list[dict[str, Any]] = []

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    inhibited: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for grade in latest.iter_rows(named=True):
        hazard = HAZARD_BY_DOMAIN[grade["domain"]]
        key = group_key(hazard, grade["region"])
        health_state = state.get(grade["unique_id"], "ok")
        if health_state != "ok":
            inhibited.setdefault(key, []).append(grade)
            if grade["level"] != Level.NONE.label:
                notices.append(
                    {
                        "notice_id": _notice_id(grade["unique_id"], health_state, grade["ds"]),
                        "unique_id": grade["unique_id"],
                        "hazard": hazard,
                        "region": grade["region"],
                        "kind": health_state,
                        "detail": json.dumps(
                            {
                                **json.loads(detail.get(grade["unique_id"], "{}")),
                                "withheld_level": grade["level"],
                                "ds": grade["ds"].isoformat(),
                            }
                        ),
                    }
                )
            continue
        groups.setdefault(key, []).append(grade)

    current: dict[tuple[str, str], dict[str, Any]] = {}
    alert: dict[str, Any] | None  # a stored alert row; None below for a group without one
    ordered = open_alerts.sort("opened_at", descending=True) if open_alerts.height else open_alerts
    for alert in ordered.iter_rows(named=True):
        key = group_key(alert["hazard"], alert["region"])
        if key in current:
            # an older duplicate in the same group (e.g. from before grouping): fold it in
            row = _row(alert) | {"status": AlertStatus.RESOLVED, "updated_at": now}
            rows.append(row)
            _transition(
                plan,
                alert,
                row,
                "resolved",
                policy.actor,
                f"merged into {current[key]['alert_id']} (one alert per hazard and region)",
            )
            continue
        current[key] = alert

    for key in sorted(set(groups) | set(current) | set(inhibited)):
        members = groups.get(key, [])
        active = [m for m in members if m["level"] != Level.NONE.label]
        alert = current.get(key)
        # a member grade already past its own expiry time can neither lead nor renew
        live = [m for m in active if _expiry(m, policy, frequencies) > clock]
        lead = (
            max(live, key=lambda m: (LEVEL_RANK[m["level"]], _field_model(m), m["score"], m["unique_id"]))
            if live
            else None
        )
        silence = key in silenced
        if alert is None:
            if lead is None:
                continue
            if key in closed and lead["ds"] <= closed[key]:
                continue  # not newer than the group's last closed alert: never reopen it
            row = _new_row(lead, key, now, policy, frequencies) | {"evidence": _evidence(lead, active)}
            row["release_state"] = _release_state(row["level"], silence, policy)
            rows.append(row)
            _transition(plan, None, row, "opened", policy.actor, _why(lead, len(active)))
            _release(plan, row, None, published, silence)
            continue
        before = _row(alert)
        if lead is not None:
            row = dict(before)
            row.update(
                unique_id=lead["unique_id"],
                ds=lead["ds"],
                score=lead["score"],
                evidence=_evidence(lead, active),
                level=lead["level"],
                expires_at=_expiry(lead, policy, frequencies),
            )
            old_rank, new_rank = LEVEL_RANK[before["level"]], LEVEL_RANK[row["level"]]
            if new_rank == old_rank and row["ds"] == before["ds"] and row["unique_id"] == before["unique_id"]:
                # the lead grade is unchanged (only a group mate got new data): not a renewal
                if before["expires_at"] is not None and clock >= before["expires_at"]:
                    _expire(plan, rows, before, now, policy.actor, "lead grade unchanged")
                else:
                    rows.append(before)
                continue
            row["updated_at"] = now
            action = "escalated" if new_rank > old_rank else "deescalated" if new_rank < old_rank else "updated"
            if action != "updated":
                row["release_state"] = _release_state(row["level"], silence, policy)
            rows.append(row)
            _transition(plan, before, row, action, policy.actor, _why(lead, len(active)))
            if action != "updated":
                _release(plan, row, before, published, silence)
            continue
        everyone = members + inhibited.get(key, [])
        if everyone and all(m["level"] == Level.NONE.label for m in everyone):
            row = before | {"status": AlertStatus.RESOLVED, "updated_at": now}
            rows.append(row)
            _transition(
                plan,
                before,
                row,
                "resolved",
                policy.actor,
                "every member series graded none: " + ", ".join(m["unique_id"] for m in everyone),
            )
            if alert["alert_id"] in published:
                plan.releases.append(
                    {"alert_id": row["alert_id"], "msg_type": "Update", "reason": "all clear: risk passed"}
                )
            continue
        if before["expires_at"] is not None and clock >= before["expires_at"]:
            held = ", ".join(m["unique_id"] for m in inhibited.get(key, [])) or "no member renewed"
            _expire(plan, rows, before, now, policy.actor, held)
            continue
        rows.append(before)

    plan.alerts = pl.DataFrame(rows, schema=_SCHEMA) if rows else plan.alerts
    plan.notices = pl.DataFrame(notices, schema=_NOTICE_SCHEMA) if notices else plan.notices
    return plan


def plan_expiry(
    open_alerts: pl.DataFrame,
    *,
    now: datetime,
    clock: datetime,
    policy: AlertPolicy = AlertPolicy(),
) -> AlertPlan:
    """The plan of a cycle in which no series changed: :func:`plan_alerts` with no grades.

    Every open alert whose ``expires_at`` is at or before ``clock`` expires (transition
    ``expired`` by ``policy.actor`` with the reason); an older duplicate in a group is folded
    into the newest as in :func:`plan_alerts`. Nothing opens, escalates, renews or resolves,
    and nothing is released (``releases`` is always empty; asserted here), because no grade
    changed.
    """
    plan = plan_alerts(pl.DataFrame(schema=_LATEST_SCHEMA), open_alerts, now=now, clock=clock, policy=policy)
    if plan.releases:  # pragma: no cover - plan_alerts releases only on a grade change
        raise AssertionError(f"an expiry plan released {plan.releases}")
    return plan


def _new_row(
    lead: dict[str, Any], key: tuple[str, str], now: datetime, policy: AlertPolicy, frequencies: dict[str, str]
) -> dict[str, Any]:
    return {
        "alert_id": _alert_id(key[0], lead["region"], lead["ds"]),
        "unique_id": lead["unique_id"],
        "domain": lead["domain"],
        "region": lead["region"],
        "hazard": key[0],
        "level": lead["level"],
        "status": AlertStatus.OPEN,
        "ds": lead["ds"],
        "score": lead["score"],
        "evidence": lead["evidence"],
        "opened_at": now,
        "updated_at": now,
        "release_state": ReleaseState.PENDING,
        "expires_at": _expiry(lead, policy, frequencies),
    }


def _expiry(lead: dict[str, Any], policy: AlertPolicy, frequencies: dict[str, str]) -> datetime:
    return lead["ds"] + STEP[frequencies.get(lead["unique_id"], "D")] * policy.expire_steps


def _field_model(grade: dict[str, Any]) -> bool:
    """Whether a grade's level is a field model's output (not the rarity fallback)."""
    try:
        evidence = json.loads(grade.get("evidence") or "{}")
    except (TypeError, json.JSONDecodeError):
        return False
    return isinstance(evidence, dict) and evidence.get("basis") == HAZARD_MODEL


def _evidence(lead: dict[str, Any], active: list[dict[str, Any]]) -> str:
    """The lead's grade evidence plus the group's other active members (for the judgment)."""
    evidence = json.loads(lead["evidence"] or "{}")
    if len(active) > 1:
        evidence["group_members"] = sorted(
            ({"unique_id": m["unique_id"], "level": m["level"], "score": m["score"]} for m in active),
            key=lambda m: m["unique_id"],
        )
    return json.dumps(evidence, sort_keys=True)


def _row(alert: dict[str, Any]) -> dict[str, Any]:
    return {c: alert.get(c) for c in ALERT_COLUMNS}


def _release_state(level: str, silence: bool, policy: AlertPolicy) -> str:
    if silence:
        return ReleaseState.SUPPRESSED
    return ReleaseState.RELEASED if level in policy.auto_release else ReleaseState.PENDING


def _release(
    plan: AlertPlan,
    row: dict[str, Any],
    before: dict[str, Any] | None,
    published: set[str] | frozenset[str],
    silence: bool,
) -> None:
    if row["release_state"] != ReleaseState.RELEASED:
        return
    first = row["alert_id"] not in published and not any(r["alert_id"] == row["alert_id"] for r in plan.releases)
    plan.releases.append(
        {
            "alert_id": row["alert_id"],
            "msg_type": "Alert" if first else "Update",
            "reason": f"auto-release of {row['level']} ([alerts] auto_release)",
        }
    )


def _expire(
    plan: AlertPlan, rows: list[dict[str, Any]], before: dict[str, Any], now: datetime, actor: str, why: str
) -> None:
    row = before | {"status": AlertStatus.EXPIRED, "updated_at": now}
    rows.append(row)
    _transition(plan, before, row, "expired", actor, f"not renewed before {before['expires_at'].isoformat()} ({why})")


def _transition(
    plan: AlertPlan, before: dict[str, Any] | None, after: dict[str, Any], action: str, actor: str, reason: str
) -> None:
    plan.transitions.append(
        {
            "alert_id": after["alert_id"],
            "action": action,
            "actor": actor,
            "before": before,
            "after": after,
            "reason": reason,
        }
    )


def _why(lead: dict[str, Any], n_active: int) -> str:
    thresholds = json.loads(lead["evidence"] or "{}").get("thresholds", {})
    limit = thresholds.get(lead["level"])
    text = f"{lead['unique_id']} graded {lead['level']} at {lead['ds']:%Y-%m-%d %H:%M} (score {lead['score']:.4f}"
    text += f" >= {limit})" if limit is not None else ")"
    if n_active > 1:
        text += f"; {n_active} series of the group active"
    return text
