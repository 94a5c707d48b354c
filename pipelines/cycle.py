"""The scoring cycle: forecast, score, grade, alert and judge what changed since last time.

This is what ``ews run`` (and cron, and the scheduler) calls. It reads the warehouse and runs
five steps, each a module of its own that hands frames to a library and stores what it
returns: ``market_step`` (``hazards``: the market composite stress index and its segment
sub-indices written as series, first, so they count among the changed series and are
forecast and scored like any other), ``forecast_step`` (``forecasting``), ``score_step``
(``anomaly``: the rarity grade), ``hazard_step`` (``hazards``: the field models' levels,
the market's from the KLR signals, the rarity grade capped) and ``alert_step`` (``alerts``).
Series whose observations have not changed since the last successful cycle (same
fingerprint) are skipped, so a second run on the same data changes nothing but the ``runs``
ledger and the audit log (and alerts whose expiry time has passed, see 1.); the market step
rewrites no row when its inputs are unchanged, so the composite is skipped too.

Transactions, in this order:

1. **The write transactions** (no network call inside), so that the warehouse never holds a
   whole cycle's rows uncommitted (issue 21: bounded memory): the market composite's series
   and observations; then one per chunk of ``[cycle] chunk_series`` series (its forecasts,
   selections, exceedance, detector state, scores, finished grades, and the grades and
   witnesses the levels step parks for corroboration: every row of the chunk's series or
   none); then the final one: the parked grades finished, alert rows, transitions,
   data-gap notices, audit rows, outbox events, a provisional (template) judgment per new or
   changed open alert, and the series fingerprints. A failure rolls back the transaction it
   happens in and the run is recorded as failed; chunks committed before it stay. Their
   fingerprints are written only in the final transaction, so the next cycle takes every
   series of the failed one again (the committed ones resume from their stored scores and
   detector state, their parked grades are finished with the rest) and writes exactly the
   rows of a cycle that was never interrupted (``tests/test_cycle_transactions.py``). A cycle
   with no changed series still runs the expiry check here (``run_expiry_step``): every open
   alert past its ``expires_at`` is expired, with a transition and an audit row naming the
   run and its actor.
2. **Judgments, after the commit** (``judge_alerts``): the judge (LLM endpoint or template)
   writes one judgment per alert of step 1, outside any transaction, so no network call holds
   the DuckDB write transaction open and every ``llm.call`` audit row commits as it is made
   (it survives a later failure). Each final judgment (writer, model, prompt version,
   evidence hash, check verdicts) replaces the provisional row and sets the alert's review
   flag in one short transaction of its own. If the run fails here, the committed alerts keep
   their provisional template judgment and the run is recorded as failed. So every cycle
   (also one with no changed series) judges here, besides the alerts of step 1, every open
   alert whose stored judgment is still provisional (``provisional_bundles``: its evidence
   bundle rebuilt as step 1 builds it); the series fingerprints committed in step 1 would
   otherwise keep those alerts from ever being judged again.
3. **CAP publication** (``publish_pending``): only committed outbox events are rendered, after
   the judgments, so a file on disk always matches the warehouse and carries the final text.
"""

from __future__ import annotations

import ctypes
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from core.clock import Clock, utc_now
from core.frames import detached
from core.settings import Settings
from pipelines.alert_step import judge_alerts, provisional_bundles, run_alert_step, run_expiry_step, series_health
from pipelines.delivery import publish_pending
from pipelines.engines import Engine, open_engine
from pipelines.forecast_step import (
    ForecastPlan,
    GlobalFits,
    SelectionPool,
    Statistical,
    finish_forecast_step,
    plan_forecast_step,
)
from pipelines.hazard_step import HazardStep
from pipelines.market_step import run_market_step
from pipelines.score_step import run_score_step
from warehouse import Warehouse
from warehouse.runs import audit, finish_run, start_run
from warehouse.series import (
    read_observations,
    read_series_meta,
    read_series_state,
    series_fingerprints,
    upsert_series_state,
)

__all__ = ["CycleSummary", "run_cycle", "new_run_id"]


@dataclass
class CycleSummary:
    run_id: str
    series_processed: int = 0
    series_skipped: int = 0
    row_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    market: dict[str, Any] | None = None  # the composite's level, when graded this cycle


def new_run_id(now: datetime) -> str:
    return f"r_{now:%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"


def run_cycle(
    wh: Warehouse,
    settings: Settings,
    *,
    clock: Clock | None = None,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    actor: str = "scheduler",
) -> CycleSummary:
    """Run one cycle over every series whose data changed; see the module docstring.

    ``clock``: the command's :class:`~core.clock.Clock` (its ``now`` stamps the run, its replay
    day limits the data); default: built from ``settings`` at ``now`` (default: the wall clock).
    """
    clock = Clock.resolve(settings, clock=clock, now=now)
    now = clock.now
    run_id = new_run_id(now)
    summary = CycleSummary(run_id=run_id)
    kind = "replay" if clock.replaying else "cycle"
    start_run(wh, run_id=run_id, kind=kind, started_at=now, as_of=clock.cutoff)
    audit(wh, at=now, actor=actor, action="run.started", target=run_id, detail={"kind": kind, "as_of": clock.as_of})
    if clock.replaying:
        progress(f"replay: the cycle sees only data up to {clock.as_of} ([cycle] as_of)")
    try:
        with wh.memory_limit(settings.cycle.memory_limit, setting="[cycle] memory_limit"):
            to_judge = _cycle(wh, settings, summary, clock=clock, progress=progress, actor=actor)
        # Committed. The judge's network calls happen out here (see the module docstring).
        _judge(wh, settings, summary, to_judge, clock=clock, progress=progress)
        # CAP files are written only after the cycle's rows and judgments are committed, so a
        # rolled-back cycle never leaves a message on disk that the warehouse does not know.
        summary.row_counts["cap_messages"] = len(publish_pending(wh, settings, clock=clock))
    except Exception as exc:
        finish_run(
            wh,
            run_id=run_id,
            status="failed",
            finished_at=utc_now(),
            row_counts=summary.row_counts,
            error=f"{type(exc).__name__}: {exc}",
        )
        audit(wh, at=utc_now(), actor=actor, action="run.failed", target=run_id, detail={"error": str(exc)})
        raise
    finish_run(wh, run_id=run_id, status="success", finished_at=utc_now(), row_counts=summary.row_counts)
    audit(wh, at=utc_now(), actor=actor, action="run.finished", target=run_id, detail=summary.row_counts)
    wh.checkpoint()
    return summary


def _changed_series(wh: Warehouse, before: datetime | None) -> tuple[pl.DataFrame, int]:
    fingerprints = series_fingerprints(wh, before=before)
    state = read_series_state(wh).rename({"fingerprint": "seen"})
    joined = fingerprints.join(state, on="unique_id", how="left")
    changed = joined.filter(pl.col("seen").is_null() | (pl.col("seen") != pl.col("fingerprint")))
    return changed.select("unique_id", "fingerprint"), joined.height - changed.height


def _cycle(
    wh: Warehouse,
    settings: Settings,
    summary: CycleSummary,
    *,
    clock: Clock,
    progress: Callable[[str], None],
    actor: str = "scheduler",
) -> list[dict[str, Any]]:
    """Step 1 of the module docstring (its transactions: the market step's, one per chunk,
    the final one); returns the evidence bundles of the alerts to judge after the commit."""
    counts = summary.row_counts
    with wh.transaction():
        market = run_market_step(wh, settings, clock=clock, run_id=summary.run_id, progress=progress)
    counts.update(market.counts)
    summary.notes.extend(market.notes)
    changed, skipped = _changed_series(wh, clock.cutoff)
    summary.series_skipped = skipped
    counts.update(forecasts=0, anomaly_scores=0, risk_grades=0, alerts=0, judgments=0)
    if changed.height == 0:
        progress(f"nothing new: all {skipped} series unchanged since their last cycle; checking open alerts for expiry")
        with wh.transaction():
            step = run_expiry_step(wh, settings, clock=clock, run_id=summary.run_id, actor=actor)
        counts.update(step.counts)
        summary.notes.extend(step.notes)
        summary.alerts = step.alerts
        return []
    uids = changed.get_column("unique_id").to_list()
    meta = read_series_meta(wh, uids)
    summary.series_processed = len(uids)

    levels = HazardStep(
        wh, settings, meta=meta, clock=clock, run_id=summary.run_id, market=market.model_input, progress=progress
    )
    health = _forecast_and_score(wh, settings, summary, meta=meta, levels=levels, clock=clock, progress=progress)
    with wh.transaction():  # the final transaction: what spans the series
        finished = levels.finish()
        progress("[4/4] alerts: lifecycle, review gate, outbox (judgments and CAP after the commit)")
        step = run_alert_step(
            wh,
            settings,
            latest=finished.latest,
            health=health,
            meta=meta,
            clock=clock,
            run_id=summary.run_id,
            actor=actor,
            progress=progress,
        )
        upsert_series_state(wh, changed, run_id=summary.run_id, at=clock.now)
    counts.update(finished.counts)
    summary.notes.extend(finished.notes)
    summary.market = finished.market
    counts.update(step.counts)
    summary.notes.extend(step.notes)
    summary.alerts = step.alerts
    return step.to_judge


def _forecast_and_score(
    wh: Warehouse,
    settings: Settings,
    summary: CycleSummary,
    *,
    meta: pl.DataFrame,
    levels: HazardStep,
    clock: Clock,
    progress: Callable[[str], None],
) -> pl.DataFrame:
    """Steps [1/4] to [3/4] and the levels chunk by chunk (``[cycle] chunk_series`` series at
    a time): each chunk's observations are read from the warehouse, and its forecasts,
    selections, scores and levels are written in its own transaction, so one chunk's
    observations, detector frames, score rows and grades are what these steps hold at once.
    With ``[cycle] overlap`` the next chunk is read, planned and its statistical models
    started once this chunk's forecasts are written, and they run while this chunk is scored
    (so the next chunk's observations and forecasts are held too); a failure of those reads is
    raised after this chunk commits, a failure of its models in its own transaction.
    Every step of it works per series (fits, detectors, calibration, grading, the field
    models), so the rows written do not depend on the chunk size; the one rule across series
    (corroboration within a region) keeps only the ranks of the grades that can agree, and
    the grades it may lift wait in the warehouse (:class:`~pipelines.hazard_step.HazardStep`).
    Returns the data health of every changed series (the alert step's, computed while its
    observations are read)."""
    uids = sorted(meta.get_column("unique_id").to_list())
    frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    size = settings.cycle.chunk_series or len(uids) or 1
    chunks = [uids[i : i + size] for i in range(0, len(uids), size)] or [[]]
    counts = summary.row_counts
    health: list[pl.DataFrame] = []
    rescored = 0
    # The global learned models learn across series: fitted once per frequency on the driver,
    # across every series of it, when a chunk first needs one; the chunks share its forecasts.
    global_fits = GlobalFits.of_warehouse(wh, settings, before=clock.cutoff)
    # [backtest] choose = "frequency" / "auto" pool the backtest windows of every series of a
    # frequency, whichever chunk it is in: read and decided once, shared by the chunks.
    pool = SelectionPool.of_warehouse(wh)
    with _pool(settings, progress) as engine, ThreadPoolExecutor(max_workers=1) as ahead:
        if engine.name != "local":
            summary.notes.append(f"engine {engine.description}")
        # [cycle] overlap: the next chunk's statistical models run on a thread while this
        # chunk is scored (they touch no warehouse; their reads are done before, their writes
        # after, in their own chunk's transaction). The Dask engine sends them to its cluster.
        overlap = settings.cycle.overlap and engine.name == "local" and len(chunks) > 1

        def plan(number: int, ids: list[str]) -> _Chunk:
            part = read_observations(wh, ids, before=clock.cutoff)
            part_meta = meta.filter(pl.col("unique_id").is_in(ids))
            of = f" (chunk {number} of {len(chunks)}, [cycle] chunk_series = {size})" if len(chunks) > 1 else ""
            progress(f"[1/4] forecasting {len(ids)} series{of} (each with its backtest-selected model)")
            planned = plan_forecast_step(
                wh,
                settings,
                part,
                frequencies={u: frequencies[u] for u in ids},
                meta=part_meta,
                now=clock.now,
                progress=progress,
                global_fits=global_fits,
                pool=pool,
            )
            ahead_of = ahead.submit(planned.statistical, engine.forecast) if overlap else None
            return _Chunk(part, part_meta, of, planned, ahead_of)

        upcoming: _Chunk | None = None
        failed: Exception | None = None  # the next chunk's reads failed: raised in its own turn
        for number, ids in enumerate(chunks, 1):
            if failed is not None:
                raise failed
            with wh.transaction():  # one chunk: every row of its series, or none
                chunk = upcoming if upcoming is not None else plan(number, ids)
                upcoming = None
                stat = chunk.statistical.result() if chunk.statistical else chunk.plan.statistical(engine.forecast)
                result = finish_forecast_step(wh, chunk.plan, stat, run_id=summary.run_id, progress=progress)
                _add_counts(counts, result.counts)
                summary.notes.extend(result.notes)
                if overlap and number < len(chunks):  # the next chunk's models start now
                    try:
                        upcoming = plan(number + 1, chunks[number])
                    except Exception as exc:  # noqa: BLE001 - re-raised after this chunk commits
                        failed = exc
                part, part_meta = chunk.part, chunk.meta
                scored = run_score_step(
                    wh,
                    settings,
                    series=part,
                    fitted=result.fitted,
                    exceedance=result.exceedance,
                    meta=part_meta,
                    run_id=summary.run_id,
                    as_of=clock.judged_at,
                    progress=progress,
                    pool=engine.pool,
                    parts=engine.parts,
                )
                rescored += scored.counts.pop("series_scored_before", 0)
                _add_counts(counts, scored.counts)
                summary.notes.extend(scored.notes)
                del result  # the forecasts and fits go before the levels step
                levels.add(scored.grades, part, label=chunk.label)
            # detached: its names would otherwise keep the chunk's observations' string buffers
            health.append(detached(series_health(part, settings, frequencies=frequencies, clock=clock)))
            del scored, part, chunk  # the chunk's frames go before the next chunk is read
            _give_back_freed_memory()
    if global_fits.seconds:
        summary.notes.append(
            "global model fits (seconds): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(global_fits.seconds.items()))
        )
    if rescored:
        summary.notes.append(
            f"{rescored} series scored before: scores and grades written for their new points and "
            f"the {settings.scoring.recent_window} step(s) before them ([scoring] recent_window)"
        )
    return pl.concat(health)


@dataclass
class _Chunk:
    """One chunk read and planned: its observations, metadata, progress label, forecast plan
    and, with ``[cycle] overlap``, its statistical models running on the overlap thread."""

    part: pl.DataFrame
    meta: pl.DataFrame
    label: str
    plan: ForecastPlan
    statistical: Future[Statistical] | None


@contextmanager
def _pool(settings: Settings, progress: Callable[[str], None]) -> Iterator[Engine]:
    """Where the chunks' forecasts and scoring run (``[cycle] engine``, :mod:`pipelines.engines`):
    this process with a scoring pool of ``[cycle] workers`` processes, or a Dask cluster."""
    with open_engine(settings, progress=progress) as engine:
        yield engine


def _give_back_freed_memory() -> None:
    """Return the heap pages a chunk freed to the system: glibc's (``malloc_trim``) and DuckDB's
    own jemalloc's (:meth:`Warehouse.release_freed_memory`). glibc keeps freed memory for
    reuse, and the many small objects of a chunk's scoring and levels leave it fragmented, so
    without the trim a long cycle's resident memory crept up chunk after chunk; DuckDB's
    jemalloc kept the pages its queries freed, up to as much again as DuckDB had allocated
    (docs/scaling.md). A no-op where the C library has no ``malloc_trim`` (macOS, musl) or
    DuckDB's build does not export its jemalloc."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)
    Warehouse.release_freed_memory()


_TRIM: Any = None


def _add_counts(counts: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value


def _judge(
    wh: Warehouse,
    settings: Settings,
    summary: CycleSummary,
    to_judge: list[dict[str, Any]],
    *,
    clock: Clock,
    progress: Callable[[str], None],
) -> None:
    """Step 2 of the module docstring (outside the write transaction): the alerts of step 1
    and every open alert still carrying a provisional judgment from an earlier run."""
    leftover = provisional_bundles(wh, settings, clock=clock, exclude={e["alert_id"] for e in to_judge})
    if leftover:
        progress(
            f"judgments: {len(leftover)} alert(s) still carry a provisional judgment "
            "(an earlier run failed before judging them)"
        )
        summary.notes.append(f"{len(leftover)} provisional judgment(s) of earlier runs replaced")
    to_judge = to_judge + leftover
    if not to_judge:
        return
    progress(f"judgments: {len(to_judge)} alert(s), written after the alert transaction committed")
    judged = judge_alerts(wh, settings, to_judge, now=clock.now, run_id=summary.run_id)
    summary.notes.extend(judged.notes)
    for item in summary.alerts:
        judgment = judged.judgments.get(item["alert_id"])
        if judgment is not None:
            item["judgment_en"] = judgment.text_en
            item["judgment_check"] = judgment.checks.get("verdict")
