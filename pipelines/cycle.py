"""The scoring cycle: forecast, score, grade, alert and judge what changed since last time.

This is what ``ews run`` (and cron, and the scheduler) calls. It reads the warehouse, hands
frames to the libraries (``forecasting``, ``anomaly``, ``alerts``), and writes what they
return, all inside one transaction, so a failure leaves nothing half-written and the run is
recorded as failed. Series whose observations have not changed since the last successful
cycle (same fingerprint) are skipped, so a second run on the same data changes nothing but
the ``runs`` ledger and the audit log.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

import anomaly
import forecasting
from alerts import plan_alerts, write_template_judgment
from core.settings import Settings
from pipelines.ingest import utc_now
from warehouse import Warehouse

__all__ = ["CycleSummary", "run_cycle", "new_run_id"]


@dataclass
class CycleSummary:
    run_id: str
    series_processed: int = 0
    series_skipped: int = 0
    row_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


def new_run_id(now: datetime) -> str:
    return f"r_{now:%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"


def run_cycle(
    wh: Warehouse,
    settings: Settings,
    *,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    actor: str = "scheduler",
) -> CycleSummary:
    """Run one cycle over every series whose data changed; see the module docstring."""
    now = now or utc_now()
    run_id = new_run_id(now)
    summary = CycleSummary(run_id=run_id)
    as_of = settings.cycle.as_of_time()
    kind = "cycle" if as_of is None else "replay"
    wh.start_run(run_id=run_id, kind=kind, started_at=now, as_of=as_of)
    wh.audit(at=now, actor=actor, action="run.started", target=run_id,
             detail={"kind": kind, "as_of": settings.cycle.as_of or None})
    if as_of is not None:
        progress(f"replay: the cycle sees only data up to {settings.cycle.as_of} ([cycle] as_of)")
    try:
        with wh.transaction():
            _cycle(wh, settings, summary, now=now, progress=progress)
    except Exception as exc:
        wh.finish_run(run_id=run_id, status="failed", finished_at=utc_now(),
                      row_counts=summary.row_counts, error=f"{type(exc).__name__}: {exc}")
        wh.audit(at=utc_now(), actor=actor, action="run.failed", target=run_id,
                 detail={"error": str(exc)})
        raise
    wh.finish_run(run_id=run_id, status="success", finished_at=utc_now(),
                  row_counts=summary.row_counts)
    wh.audit(at=utc_now(), actor=actor, action="run.finished", target=run_id,
             detail=summary.row_counts)
    wh.checkpoint()
    return summary


def _changed_series(wh: Warehouse, before: datetime | None) -> tuple[pl.DataFrame, int]:
    fingerprints = wh.series_fingerprints(before=before)
    state = wh.read_series_state().rename({"fingerprint": "seen"})
    joined = fingerprints.join(state, on="unique_id", how="left")
    changed = joined.filter(pl.col("seen").is_null() | (pl.col("seen") != pl.col("fingerprint")))
    return changed.select("unique_id", "fingerprint"), joined.height - changed.height


def _cycle(wh: Warehouse, settings: Settings, summary: CycleSummary, *, now: datetime,
           progress: Callable[[str], None]) -> None:
    as_of = settings.cycle.as_of_time()
    changed, skipped = _changed_series(wh, as_of)
    summary.series_skipped = skipped
    counts = summary.row_counts
    counts.update(forecasts=0, anomaly_scores=0, risk_grades=0, alerts=0, judgments=0)
    if changed.height == 0:
        progress(f"nothing new: all {skipped} series unchanged since their last cycle")
        return
    uids = changed.get_column("unique_id").to_list()
    meta = wh.read_series_meta(uids)
    series = wh.read_observations(uids, before=as_of)
    frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    summary.series_processed = len(uids)

    progress(f"[1/4] forecasting {len(uids)} series (AutoETS, fallback Naive)")
    result = forecasting.forecast_statistical(
        series,
        frequencies=frequencies,
        horizons=settings.forecast.horizon,
        max_context=settings.forecast.max_context,
        n_jobs=settings.forecast.n_jobs,
    )
    cutoffs = series.group_by("unique_id").agg(pl.col("ds").max().alias("cutoff"))
    forecasts = result.forecasts.join(cutoffs, on="unique_id", how="left")
    counts["forecasts"] = wh.write_forecasts(forecasts, run_id=summary.run_id)
    summary.notes.extend(f"{r['unique_id']}: {r['note']}" for r in result.notes.iter_rows(named=True))

    progress(f"[2/4] scoring anomalies (subsequence IForest, forecast interval) on {series.height} points")
    windows = {uid: settings.anomaly.window[freq] for uid, freq in frequencies.items()}
    raw = pl.concat([
        anomaly.subsequence_iforest(series, windows=windows, trees=settings.anomaly.iforest_trees,
                                    seed=settings.anomaly.seed, min_history=settings.anomaly.min_history),
        anomaly.interval_exceedance(result.fitted),
    ], how="diagonal_relaxed")
    calibrated = anomaly.calibrate(raw)
    ensemble = anomaly.combine(calibrated)
    scores = pl.concat([calibrated, ensemble.select(calibrated.columns)], how="vertical_relaxed")
    counts["anomaly_scores"] = wh.upsert_scores(scores, run_id=summary.run_id)

    progress("[3/4] grading risk levels (blue/yellow/orange/red)")
    grades = anomaly.grade(ensemble, thresholds=settings.risk.thresholds(),
                           persistence_k=settings.risk.persistence_k,
                           persistence_n=settings.risk.persistence_n)
    counts["risk_grades"] = wh.upsert_grades(grades.select("unique_id", "ds", "level", "score", "evidence"),
                                             run_id=summary.run_id)

    progress("[4/4] opening alerts and writing judgments")
    latest = _latest_grades(series, grades, meta)
    open_alerts = wh.read_alerts(statuses=["open"]).filter(pl.col("unique_id").is_in(uids))
    planned = plan_alerts(latest, open_alerts, now=now)
    counts["alerts"] = wh.upsert_alerts(planned.with_columns(pl.lit(summary.run_id).alias("run_id")))
    fresh = _changed_alerts(planned, open_alerts)
    judgments = _judge(wh, settings, fresh, meta, series, now=now, as_of=as_of, run_id=summary.run_id)
    counts["judgments"] = wh.insert_judgments(judgments) if judgments.height else 0
    for row in fresh.iter_rows(named=True):
        wh.audit(at=now, actor="cycle", action=f"alert.{row['status']}", target=row["alert_id"],
                 detail={"unique_id": row["unique_id"], "level": row["level"], "ds": row["ds"]})
    text_by_alert = dict(zip(judgments["alert_id"], judgments["text_en"], strict=True)) \
        if judgments.height else {}
    summary.alerts = [{**row, "judgment_en": text_by_alert.get(row["alert_id"])}
                      for row in fresh.to_dicts()]
    wh.upsert_series_state(changed, run_id=summary.run_id, at=now)


def _latest_grades(series: pl.DataFrame, grades: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
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


def _changed_alerts(planned: pl.DataFrame, before: pl.DataFrame) -> pl.DataFrame:
    """Alerts that are new, or whose level, status or triggering observation changed."""
    if planned.height == 0:
        return planned
    old = before.select("alert_id", pl.col("level").alias("old_level"),
                        pl.col("status").alias("old_status"), pl.col("ds").alias("old_ds"))
    joined = planned.join(old, on="alert_id", how="left")
    return joined.filter(
        pl.col("old_level").is_null()
        | (pl.col("level") != pl.col("old_level"))
        | (pl.col("status") != pl.col("old_status"))
        | (pl.col("ds") != pl.col("old_ds"))
    ).select(planned.columns)


def _judge(wh: Warehouse, settings: Settings, alerts: pl.DataFrame, meta: pl.DataFrame,
           series: pl.DataFrame, *, now: datetime, as_of: datetime | None,
           run_id: str) -> pl.DataFrame:
    """One judgment per new or changed alert, written from its evidence bundle."""
    rows = []
    if alerts.height == 0:
        return pl.DataFrame()
    forecasts = wh.read_latest_forecasts(alerts.get_column("unique_id").to_list())
    info = {r["unique_id"]: r for r in meta.iter_rows(named=True)}
    thresholds = settings.risk.thresholds()
    for alert in alerts.filter(pl.col("status") == "open").iter_rows(named=True):
        uid = alert["unique_id"]
        grade_evidence = json.loads(alert["evidence"])
        value = series.filter((pl.col("unique_id") == uid) & (pl.col("ds") == alert["ds"]))
        nxt = forecasts.filter(pl.col("unique_id") == uid).sort("ds").head(1)
        evidence = {
            "alert_id": alert["alert_id"],
            "name": info[uid]["name"],
            "unique_id": uid,
            "region": info[uid]["region"],
            "hazard": alert["hazard"],
            "level": alert["level"],
            "ds": alert["ds"].isoformat(),
            "score": alert["score"],
            "threshold": thresholds[alert["level"]],
            "driver": grade_evidence.get("driver", "ensemble"),
            "value": value.get_column("y").item() if value.height else None,
            "unit": info[uid]["unit"],
            "source": info[uid]["source"],
            "data_age_days": ((as_of or now) - alert["ds"]).days,
            "as_of": settings.cycle.as_of or None,
            "forecast": None if nxt.height == 0 else {
                "ds": nxt.item(0, "ds").isoformat(),
                "q05": nxt.item(0, "q05"), "q50": nxt.item(0, "q50"), "q95": nxt.item(0, "q95"),
            },
        }
        judgment = write_template_judgment(evidence)
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
            "checks": json.dumps(judgment.checks),
            "created_at": now,
        })
    return pl.DataFrame(rows)
