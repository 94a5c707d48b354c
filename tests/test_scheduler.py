"""`ews scheduler`: APScheduler with a persistent SQLite job store, fixed job ids, coalescing,
one instance per job; each run ingests against the loopback replay server and is recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings
from pipelines.cli.main import main
from pipelines.scheduler import build_scheduler, configured_jobs, cron_trigger, run_scheduler
from tests.replay_server import ReplayServer
from tests.sql import sql_rows
from warehouse import Warehouse
from warehouse.status import count_rows


def _write(home: Path, url: str, cron: str = "*/1 * * * * *") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "ews.toml").write_text(
        f"""
[ingest]
timeout_seconds = 5.0
backoff_seconds = 0.01
[scheduler]
misfire_grace_seconds = 30
cycle_after_ingest = false
[ingest.sources.chattooga]
kind = "usgs_water"
url = "{url}/ogcapi/daily/items"
site = "USGS-02177000"
start = "2012-09-01"
cron = "{cron}"
[ingest.sources.manual_only]
kind = "ngl_gnss"
url = "{url}/ngl/{{station}}.tenv3"
stations = ["P156"]
""",
        encoding="utf-8",
    )


def test_scheduler_runs_the_job_records_runs_and_keeps_one_job_per_id(tmp_path) -> None:
    with ReplayServer() as server:
        _write(tmp_path, server.url)
        settings = load_settings(tmp_path, environ={})
        assert sorted(configured_jobs(settings)) == ["ingest:chattooga"]  # no cron: not scheduled
        notes: list[str] = []
        assert run_scheduler(settings, max_runs=2, progress=notes.append) == 0
        assert run_scheduler(settings, max_runs=1, progress=notes.append) == 0  # a restart reuses the stored job
    with sqlite3.connect(tmp_path / "scheduler.sqlite") as con:
        assert con.execute("SELECT id FROM apscheduler_jobs").fetchall() == [("ingest:chattooga",)]
    with Warehouse.open(settings.warehouse_path) as wh:
        runs = sql_rows(wh, "SELECT status, row_counts FROM runs WHERE kind = 'ingest' ORDER BY started_at")
        assert len(runs) >= 3 and {r[0] for r in runs} == {"success"}
        assert runs[0][1] == '{"chattooga": 31}' and all(r[1] == '{"chattooga": 0}' for r in runs[1:])
        assert count_rows(wh, "observations") == 31
        audit = sql_rows(wh, "SELECT count(*) FROM audit_log WHERE actor = 'scheduler' AND action = 'ingest.finished'")[
            0
        ][0]
        assert audit == len(runs)
    assert any(n.startswith("job ingest:chattooga: next run") for n in notes)


def test_jobs_use_coalescing_one_instance_and_the_misfire_grace(tmp_path) -> None:
    _write(tmp_path, "http://127.0.0.1:9", cron="*/30 * * * *")
    settings = load_settings(tmp_path, environ={})
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    try:
        for job_id, (func, args, trigger) in configured_jobs(settings).items():
            scheduler.add_job(func, trigger=trigger, args=args, id=job_id, replace_existing=True)
        job = scheduler.get_job("ingest:chattooga")
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 30
        assert str(job.trigger).startswith("cron[month='*', day='*', day_of_week='*', hour='*', minute='*/30'")
    finally:
        scheduler.shutdown(wait=False)


def test_bad_cron_and_no_jobs_are_explained(tmp_path, capsys) -> None:
    with pytest.raises(ConfigError, match="has 3 field"):
        cron_trigger("* * *", timezone="UTC", what="[ingest.sources.x]")
    with pytest.raises(ConfigError, match="is not valid"):
        cron_trigger("99 * * * *", timezone="UTC", what="[ingest.sources.x]")
    (tmp_path / "ews.toml").write_text("")
    assert main(["--home", str(tmp_path), "scheduler", "--list", "--quiet"]) == 2
    assert "no scheduled jobs" in capsys.readouterr().err
