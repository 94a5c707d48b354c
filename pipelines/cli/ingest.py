"""``ews ingest`` and ``ews scheduler``: loading files and network sources, by hand, cron or schedule.

- ``ews ingest file PATH [--format FMT] [--name NAME] [--domain D] [--option K=V ...]``:
  one file; without ``--format`` the format is detected when unambiguous (and said).
  ``--dry-run`` reads and checks it as the load would and writes nothing
  (:mod:`ingest.preview`); it exits as the load would (4 = it would be quarantined).
- ``ews ingest SOURCE [SOURCE ...]``: the named ``[ingest.sources.*]`` of ews.toml.
- ``ews ingest --all``: every configured source (what a crontab line runs), then the scoring
  cycle if rows changed (``--no-cycle`` skips it).
- ``ews scheduler``: the APScheduler loop over the sources that have a ``cron`` (see
  :mod:`pipelines.scheduler`).

Exit codes: 0 all committed or skipped, 4 a batch was quarantined, 8 a source failed, and the
usual codes of :mod:`core.errors` (6 = another writer holds the warehouse: pass ``--wait``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from core.errors import EWSError
from core.settings import Settings

__all__ = ["register", "cmd_ingest", "cmd_scheduler", "parse_options"]

log = logging.getLogger("ews")

_QUARANTINED, _SOURCE_FAILED = 4, 8


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are JSON when they parse as JSON, text otherwise."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EWSError(f"--option {item!r} is not KEY=VALUE", fix="write e.g. --option unique_id=dgs10")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _dry_run(args: argparse.Namespace, settings: Settings, path: Path, options: dict[str, Any]) -> int:
    """``ews ingest file PATH --dry-run``: the preview against the warehouse opened read-only
    (never the writer's lock); while a run holds it, the newest read snapshot; none yet: all new.
    Creates nothing under EWS_HOME (no landing copy, no ledger row, no log file)."""
    from contextlib import ExitStack

    from core.errors import WarehouseLockedError
    from ingest.preview import describe, preview_file
    from pipelines.cli.main import open_warehouse, print_result
    from warehouse.snapshots import current_snapshot, open_snapshot, snapshot_folder

    with ExitStack() as stack:
        wh, compared = None, ""
        if settings.warehouse_path.exists():
            try:
                wh = stack.enter_context(open_warehouse(settings, args.wait, read_only=True))
                compared = f"the warehouse {settings.warehouse_path} (read-only)"
            except WarehouseLockedError:
                snap = current_snapshot(snapshot_folder(settings))
                if snap is None:
                    raise
                wh = stack.enter_context(open_snapshot(snap))
                compared = f"the read snapshot of {snap.published_at:%Y-%m-%d %H:%M} UTC (a run holds the warehouse)"
        preview = preview_file(path, args.format, options=options, settings=settings, wh=wh, compared_with=compared)
    print_result(preview.to_dict(), args.json, describe(preview))
    return preview.exit_code


def _ingest_file(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.batches import ingest_file
    from ingest.sources import detect_format
    from pipelines.cli.main import init_home, open_warehouse, print_result, setup_logging

    if not args.path:
        raise EWSError("ews ingest file needs a PATH", fix="write `ews ingest file data/market/fred_DGS10.csv`")
    path = Path(args.path)
    if not path.is_file():
        raise EWSError(f"no file at {path}", fix="check the path")
    options = parse_options(args.option)
    for key in ("name", "domain"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    if args.dry_run:
        return _dry_run(args, settings, path, options)
    init_home(settings)
    setup_logging(settings, args.quiet)
    fmt = args.format
    detected = None
    if fmt is None:
        fmt, why = detect_format(path)
        detected = f"detected format {fmt!r} ({why}); pass --format to override"
        log.info(detected)
    with open_warehouse(settings, args.wait) as wh:
        result = ingest_file(wh, settings, path, fmt, options=options)
    text = f"{result.status}: batch {result.batch_id}, {result.rows} rows in {result.series} series"
    if detected:
        text = f"{detected}\n{text}"
    if result.error:
        text += f"\n{result.error}"
    print_result({**result.__dict__, "detected": detected}, args.json, text)
    return 0 if result.status != "quarantined" else _QUARANTINED


def _ingest_sources(args: argparse.Namespace, settings: Settings) -> int:
    from core.clock import Clock
    from ingest.connectors import source_names
    from pipelines.cli.main import init_home, print_result, setup_logging
    from pipelines.ingest_job import run_sources

    names = source_names(settings) if args.all else [args.what, *args.path_or_more]
    if not names:
        raise EWSError(
            f"no sources configured in {settings.config_file}",
            fix="add [ingest.sources.NAME] tables (see docs/ingestion.md)",
        )
    init_home(settings)
    setup_logging(settings, args.quiet)
    run = run_sources(
        settings,
        names,
        clock=Clock.from_settings(settings),
        actor=args.actor,
        cycle=not args.no_cycle,
        progress=log.info,
        wait=args.wait,
    )
    data = {
        "run_id": run.run_id,
        "sources": [
            {
                "source": s.source,
                "kind": s.kind,
                "status": s.status,
                "rows_changed": s.rows_changed,
                "batches": [b.__dict__ for b in s.batches],
                "error": s.error,
            }
            for s in run.sources
        ],
        "cycle": None
        if run.cycle is None
        else {
            "run_id": run.cycle.run_id,
            "series_processed": run.cycle.series_processed,
            "row_counts": run.cycle.row_counts,
        },
    }
    lines = [
        f"{s.source} ({s.kind}): {s.status}, {len(s.batches)} batch(es), {s.rows_changed} row(s) changed"
        + (f"\n  {s.error}" if s.error else "")
        for s in run.sources
    ]
    print_result(data, args.json, "\n".join(lines))
    if any(s.status == "failed" for s in run.sources):
        return _SOURCE_FAILED
    return _QUARANTINED if any(s.status == "quarantined" for s in run.sources) else 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch ``ews ingest file ...`` / ``ews ingest SOURCE ...`` / ``ews ingest --all``."""
    if args.all and args.what:
        raise EWSError("pass either --all or source names, not both", fix="write `ews ingest --all`")
    if args.what == "file":
        args.path = args.path_or_more[0] if args.path_or_more else None
        if len(args.path_or_more) > 1:
            raise EWSError("ews ingest file takes one PATH", fix="run it once per file")
        return _ingest_file(args, settings)
    if not args.all and not args.what:
        raise EWSError(
            "ews ingest needs `file PATH`, source names, or --all",
            fix="e.g. `ews ingest file data.csv`, `ews ingest usgs_japan`, `ews ingest --all`",
        )
    if args.format or args.option or args.name or args.domain or args.dry_run:
        raise EWSError(
            "--format/--option/--name/--domain/--dry-run apply to `ews ingest file` only",
            fix="set a network source's options in its [ingest.sources.NAME] table",
        )
    return _ingest_sources(args, settings)


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.cli.main import init_home, setup_logging
    from pipelines.scheduler import run_scheduler

    init_home(settings)
    setup_logging(settings, args.quiet)
    return run_scheduler(settings, max_runs=args.max_runs, list_only=args.list, progress=log.info)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        parents=[common],
        help="load a file or the configured network sources",
        description=(
            "ews ingest file PATH [--format FMT] [--dry-run] | ews ingest SOURCE [SOURCE ...] | ews ingest --all"
        ),
    )
    ingest.add_argument("what", nargs="?", help="'file', or the name of a source in [ingest.sources]")
    ingest.add_argument(
        "path_or_more", nargs="*", metavar="PATH|SOURCE", help="the file (after 'file'), or more sources"
    )
    ingest.add_argument("--all", action="store_true", help="every configured source (for cron)")
    ingest.add_argument("--format", help="parser name; detected when the file is unambiguous (see docs/ingestion.md)")
    ingest.add_argument("--name")
    ingest.add_argument("--domain")
    ingest.add_argument("--option", action="append", metavar="KEY=VALUE", help="parser option (JSON values allowed)")
    ingest.add_argument(
        "--dry-run",
        action="store_true",
        help="`ingest file` only: show the format, rows, series and quarantine reasons; write nothing",
    )
    ingest.add_argument("--actor", default="cron", help="who started the run (recorded in the audit log)")
    ingest.add_argument("--no-cycle", action="store_true", help="do not run the scoring cycle after new data")
    ingest.set_defaults(func=cmd_ingest)
    scheduler = subparsers.add_parser(
        "scheduler", parents=[common], help="run the configured ingest jobs on their cron schedules (APScheduler)"
    )
    scheduler.add_argument("--list", action="store_true", help="print the jobs and their next run times, then exit")
    scheduler.add_argument(
        "--max-runs",
        type=int,
        default=None,
        metavar="N",
        help="stop after N job runs (for drills and tests; default: run until stopped)",
    )
    scheduler.set_defaults(func=cmd_scheduler)
