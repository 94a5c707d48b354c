"""``ews scheduler``: the configured ingest jobs on cron triggers, with APScheduler 3.11.

Each ``[ingest.sources.NAME]`` with a ``cron`` becomes the job ``ingest:NAME``; a non-empty
``[scheduler] cycle_cron`` adds the job ``cycle``. The choices that make it safe to leave
running for years:

- **persistent job store** (SQLite at ``[scheduler] jobstore`` under EWS_HOME): next run times
  survive restarts; jobs are registered with **fixed ids** and ``replace_existing=True``, so a
  restart updates a job instead of adding a second one, and jobs no longer configured are
  removed;
- **misfire grace** (``misfire_grace_seconds``) and **coalescing**: a run missed while the
  scheduler was down runs once when it comes back, not once per missed slot;
- **one instance per job** (``max_instances=1``) and a single worker thread: jobs never
  overlap each other, and the warehouse's single-writer lock covers cron running
  ``ews ingest --all`` at the same time (the job waits up to the misfire grace for it);
- each job is :func:`ingest_job`: the same :func:`pipelines.ingest_job.run_sources` that
  ``ews ingest`` runs, so it records a ``runs`` row and runs the scoring cycle after new data.

Do not schedule the same source in cron and here. Cron expressions have 5 fields
(minute hour day month weekday) or 6 with seconds first.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.errors import ConfigError, EWSError
from core.settings import Settings, load_settings

__all__ = ["cron_trigger", "build_scheduler", "configured_jobs", "ingest_job", "cycle_job", "run_scheduler"]

log = logging.getLogger("ews")


def cron_trigger(expression: str, *, timezone: str, what: str) -> Any:
    """An APScheduler CronTrigger from 5 fields, or 6 with seconds first."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    try:
        if len(fields) == 5:
            return CronTrigger.from_crontab(expression, timezone=timezone)
        if len(fields) == 6:
            second, minute, hour, day, month, weekday = fields
            return CronTrigger(
                second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=weekday, timezone=timezone
            )
    except ValueError as exc:
        raise ConfigError(
            f"{what}: cron {expression!r} is not valid ({exc})",
            fix='write 5 fields like "*/30 * * * *" (or 6 with seconds first)',
        ) from None
    raise ConfigError(
        f"{what}: cron {expression!r} has {len(fields)} field(s)",
        fix='write 5 fields like "*/30 * * * *" (minute hour day month weekday), or 6 with seconds first',
    )


def configured_jobs(settings: Settings) -> dict[str, tuple[str, tuple[Any, ...], Any]]:
    """job id -> (function reference, args, trigger) for every scheduled source and the cycle."""
    tz = settings.scheduler.timezone
    jobs: dict[str, tuple[str, tuple[Any, ...], Any]] = {}
    for name, table in sorted(settings.ingest.sources.items()):
        cron = table.get("cron") if isinstance(table, dict) else None
        if cron:
            jobs[f"ingest:{name}"] = (
                "pipelines.scheduler:ingest_job",
                (str(settings.home), name),
                cron_trigger(str(cron), timezone=tz, what=f"[ingest.sources.{name}]"),
            )
    if settings.scheduler.cycle_cron:
        jobs["cycle"] = (
            "pipelines.scheduler:cycle_job",
            (str(settings.home),),
            cron_trigger(settings.scheduler.cycle_cron, timezone=tz, what="[scheduler] cycle_cron"),
        )
    return jobs


def build_scheduler(settings: Settings) -> Any:
    """A BackgroundScheduler with the persistent store and the job defaults above (not started)."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    store = settings.home / settings.scheduler.jobstore
    store.parent.mkdir(parents=True, exist_ok=True)
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{store}")},
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.scheduler.misfire_grace_seconds,
        },
        timezone=settings.scheduler.timezone,
    )


def _sync_jobs(scheduler: Any, settings: Settings) -> list[str]:
    """Register the configured jobs under their fixed ids; remove stored jobs no longer configured."""
    wanted = configured_jobs(settings)
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            scheduler.remove_job(job.id)
    for job_id, (func, args, trigger) in wanted.items():
        scheduler.add_job(func, trigger=trigger, args=args, id=job_id, name=job_id, replace_existing=True)
    return sorted(wanted)


def ingest_job(home: str, name: str) -> None:
    """Scheduled job: ingest one source (records its run, scores after new data)."""
    from core.clock import Clock
    from pipelines.ingest_job import run_sources

    settings = load_settings(home)
    try:
        run = run_sources(
            settings,
            [name],
            clock=Clock.from_settings(settings),
            actor="scheduler",
            cycle=settings.scheduler.cycle_after_ingest,
            progress=log.info,
            wait=float(settings.scheduler.misfire_grace_seconds),
        )
    except EWSError as exc:
        log.error("job ingest:%s could not run: %s", name, exc)
        raise
    log.info("job ingest:%s: %s", name, ", ".join(f"{s.source} {s.status}" for s in run.sources))


def cycle_job(home: str) -> None:
    """Scheduled job: one scoring cycle (for sites that also load data by other means)."""
    from core.clock import Clock
    from pipelines.cycle import run_cycle
    from pipelines.dashboard_sync import sync_dashboard
    from warehouse import Warehouse

    settings = load_settings(home)
    with Warehouse.open(settings.warehouse_path, wait_seconds=float(settings.scheduler.misfire_grace_seconds)) as wh:
        run_cycle(wh, settings, clock=Clock.from_settings(settings), progress=log.info, actor="scheduler")
        sync_dashboard(wh, settings)  # read snapshot + queued review actions


def run_scheduler(
    settings: Settings,
    *,
    max_runs: int | None = None,
    list_only: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
    stop: threading.Event | None = None,
) -> int:
    """Run until stopped (SIGINT/SIGTERM), after ``max_runs`` job runs, or when ``stop`` is set."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

    scheduler = build_scheduler(settings)
    stop = stop or threading.Event()
    finished = {"runs": 0, "errors": 0}

    def on_event(event: Any) -> None:
        if event.code == EVENT_JOB_MISSED:
            progress(f"job {event.job_id} missed its run at {event.scheduled_run_time} (beyond the misfire grace)")
            return
        finished["runs"] += 1
        if event.code == EVENT_JOB_ERROR:
            finished["errors"] += 1
            progress(f"job {event.job_id} failed: {event.exception}")
        if max_runs is not None and finished["runs"] >= max_runs:
            stop.set()

    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    try:
        ids = _sync_jobs(scheduler, settings)
        if not ids:
            raise ConfigError(
                "no scheduled jobs: no [ingest.sources.*] has a cron, and [scheduler] cycle_cron is empty",
                fix='add cron = "*/30 * * * *" to a source in ews.toml',
            )
        for job in scheduler.get_jobs():
            progress(f"job {job.id}: next run {job.next_run_time}")
        if list_only:
            return 0
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        scheduler.resume()
        progress(f"scheduler running {len(ids)} job(s) at {datetime.now():%Y-%m-%d %H:%M:%S}; stop with Ctrl-C")
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=True)
    progress(f"scheduler stopped after {finished['runs']} run(s), {finished['errors']} failed")
    return 1 if finished["errors"] else 0
