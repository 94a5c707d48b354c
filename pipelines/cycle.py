"""The scoring cycle: forecast, score, grade, alert and judge what changed since last time.

This is what ``ews run`` (and cron, and the scheduler) calls. It reads the warehouse and runs
three steps, each a module of its own that hands frames to a library and stores what it
returns: ``forecast_step`` (``forecasting``), ``score_step`` (``anomaly``) and ``alert_step``
(``alerts``). Everything happens inside one transaction, so a failure leaves nothing half-written and the run is
recorded as failed. Series whose observations have not changed since the last successful
cycle (same fingerprint) are skipped, so a second run on the same data changes nothing but
the ``runs`` ledger and the audit log.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from core.settings import Settings
from pipelines.alert_step import run_alert_step
from pipelines.delivery import publish_pending
from pipelines.forecast_step import run_forecast_step
from pipelines.ingest import utc_now
from pipelines.score_step import run_score_step
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
            _cycle(wh, settings, summary, now=now, progress=progress, actor=actor)
    except Exception as exc:
        wh.finish_run(run_id=run_id, status="failed", finished_at=utc_now(),
                      row_counts=summary.row_counts, error=f"{type(exc).__name__}: {exc}")
        wh.audit(at=utc_now(), actor=actor, action="run.failed", target=run_id,
                 detail={"error": str(exc)})
        raise
    # CAP files are written only after the cycle's rows are committed, so a rolled-back cycle
    # never leaves a message on disk that the warehouse does not know.
    summary.row_counts["cap_messages"] = len(publish_pending(wh, settings, now=now))
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
           progress: Callable[[str], None], actor: str = "scheduler") -> None:
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

    progress(f"[1/4] forecasting {len(uids)} series (each with its backtest-selected model)")
    result = run_forecast_step(wh, settings, series, frequencies=frequencies, meta=meta,
                               run_id=summary.run_id, now=now, progress=progress)
    counts.update(result.counts)
    summary.notes.extend(result.notes)

    scored = run_score_step(wh, settings, series=series, fitted=result.fitted,
                            exceedance=result.exceedance, meta=meta,
                            run_id=summary.run_id, as_of=as_of or now, progress=progress)
    counts.update(scored.counts)
    summary.notes.extend(scored.notes)
    grades = scored.grades

    progress("[4/4] alerts: lifecycle, judgments, review gate, CAP")
    step = run_alert_step(wh, settings, series=series, grades=grades, meta=meta, now=now,
                          run_id=summary.run_id, actor=actor, progress=progress)
    counts.update(step.counts)
    summary.notes.extend(step.notes)
    summary.alerts = step.alerts
    wh.upsert_series_state(changed, run_id=summary.run_id, at=now)
