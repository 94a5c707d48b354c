"""The ``ews`` command line: init, demo, run, status, ingest.

Every command resolves settings once (``--home`` / ``EWS_HOME`` + ``ews.toml`` + ``EWS_*``),
opens the warehouse once and passes both down. Errors the engine raises on purpose
(:class:`core.errors.EWSError`) are printed as one message with its fix, without a traceback.
Progress goes to stderr (and ``EWS_HOME/logs/ews.log``); results go to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.clock import Clock
from core.errors import ConfigError, EWSError
from core.settings import CYCLE_ENGINES, DEFAULT_TOML, DEMO_AS_OF, Settings, load_settings
from core.vocabulary import AlertStatus, Level, ReleaseState

if TYPE_CHECKING:
    from warehouse import Warehouse

__all__ = [
    "main",
    "init_home",
    "open_warehouse",
    "open_for_reading",
    "setup_logging",
    "print_result",
    "DEMO_OFFICER",
]

log = logging.getLogger("ews")

#: The named duty officer as whom `ews demo` approves the orange/red alerts of its replay.
DEMO_OFFICER = "demo-duty-officer"

#: Modules that add subcommands: each has ``register(subparsers, common_parent)`` and
#: sets ``func(args, settings) -> exit code`` on its parsers (see pipelines/cli/main.py's own).
COMMAND_MODULES: tuple[str, ...] = (
    "pipelines.cli.dashboard",
    "pipelines.cli.ingest",
    "pipelines.cli.evaluate",
    "pipelines.cli.alerts",
    "pipelines.cli.forecast",
    "pipelines.cli.series",
)


def init_home(settings: Settings, *, as_of: str = "") -> list[str]:
    """Create the EWS_HOME layout and a documented ews.toml; never overwrite what exists.

    ``as_of`` presets the replay clock ([cycle] as_of) in a newly written ews.toml.
    """
    created = []
    settings.home.mkdir(parents=True, exist_ok=True)
    for name in ("raw", "models", "alerts", "logs"):
        folder = settings.path(name)
        if not folder.exists():
            folder.mkdir(parents=True)
            created.append(str(folder))
    if not settings.config_file.exists():
        text = DEFAULT_TOML.replace('as_of = ""', f'as_of = "{as_of}"', 1)
        settings.config_file.write_text(text, encoding="utf-8")
        created.append(str(settings.config_file))
    return created


def setup_logging(settings: Settings, quiet: bool) -> None:
    logs = settings.path("logs")
    logs.mkdir(parents=True, exist_ok=True)
    log.setLevel(logging.INFO)
    log.handlers.clear()
    file_handler = logging.FileHandler(logs / "ews.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(file_handler)
    if not quiet:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(console)


def open_warehouse(settings: Settings, wait: float = 0.0, read_only: bool = False) -> Warehouse:
    from warehouse import Warehouse

    return Warehouse.open(settings.warehouse_path, wait_seconds=wait, read_only=read_only)


@contextmanager
def open_for_reading(settings: Settings) -> Iterator[Warehouse]:
    """The warehouse for a read command (``status``, ``alerts list``, ``export``).

    Opened read-only when no writer holds it; while one does (an ingest committing, a cycle),
    the newest read snapshot instead, said on stderr with its time, so reading never waits
    for or blocks a writer's run.
    """
    from core.errors import WarehouseLockedError
    from warehouse import Warehouse
    from warehouse.snapshots import current_snapshot, open_snapshot, snapshot_folder

    if not settings.warehouse_path.exists():
        raise EWSError(
            f"no warehouse at {settings.warehouse_path}",
            fix="run `ews init` or `ews demo`, or point EWS_HOME at an existing home",
        )
    try:
        wh = Warehouse.open(settings.warehouse_path, read_only=True)
    except WarehouseLockedError as locked:
        snapshot = current_snapshot(snapshot_folder(settings))
        if snapshot is None:
            raise WarehouseLockedError(
                locked.problem,
                fix="no read snapshot exists yet to read instead: pass --wait SECONDS, or let one `ews run` "
                "finish (each write run publishes a snapshot)",
            ) from None
        print(
            f"note: a writer holds the warehouse; reading the snapshot published at "
            f"{snapshot.published_at:%Y-%m-%d %H:%M:%S} (last run {snapshot.last_run})",
            file=sys.stderr,
        )
        wh = open_snapshot(snapshot)
    with wh:
        yield wh


def print_result(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        print(text)


# -- commands ------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    created = init_home(settings)
    with open_warehouse(settings, args.wait) as wh:
        version = wh.schema_version()
    print_result(
        {"home": str(settings.home), "created": created, "schema_version": version},
        args.json,
        f"EWS home ready at {settings.home} (schema version {version}); settings in {settings.config_file}",
    )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.batches import load_bundled
    from pipelines.cycle import run_cycle
    from pipelines.dashboard_sync import sync_dashboard
    from warehouse.status import warehouse_status

    if init_home(settings, as_of=DEMO_AS_OF):
        settings = load_settings(settings.home)  # pick up the ews.toml just written
    setup_logging(settings, args.quiet)
    log.info("EWS demo: home %s", settings.home)
    if settings.cycle.as_of:
        log.info(
            "replay clock [cycle] as_of = %s in %s: the cycle runs as if on that day (delete the line to run live)",
            settings.cycle.as_of,
            settings.config_file,
        )
    with open_warehouse(settings, args.wait) as wh:
        log.info("loading the bundled real data")
        results = load_bundled(wh, settings, progress=log.info)
        quarantined = [r for r in results if r.status == "quarantined"]
        clock = Clock.from_settings(settings)
        cycle = run_cycle(wh, settings, clock=clock, progress=log.info, actor="demo")
        _approve_as_demo_officer(wh, settings, cycle, clock=clock.restarted())
        status = warehouse_status(wh)
        sync_dashboard(wh, settings)  # read snapshot + review inbox
    summary = {"ingest": [r.__dict__ for r in results], "cycle": _cycle_dict(cycle), "status": status}
    print_result(summary, args.json, _summary_text(status, cycle, quarantined))
    return 1 if quarantined else 0


def _approve_as_demo_officer(wh: Any, settings: Settings, cycle: Any, *, clock: Clock) -> None:
    """The demo's duty officer approves the alerts of its cycle that wait for review.

    Only on a replay clock (an exercise; a live home waits for a real duty officer). The same
    path as ``ews alerts approve ID --user demo-duty-officer``: :func:`warehouse.review.approve_release`
    (an ``approved`` transition and an ``alert.approved`` audit row by that name, the outbox
    event), then the CAP messages are published. The cycle's summary (notes, release states,
    ``cap_messages``) is brought up to date, so the demo reports what it did.
    """
    from pipelines.delivery import publish_pending
    from warehouse import alerting, review

    if not clock.replaying:
        return
    ids = list(dict.fromkeys(alert["alert_id"] for alert in cycle.alerts))
    now = clock.now
    approved = set()
    for row in alerting.read_alerts_full(wh, alert_ids=ids).iter_rows(named=True):
        if row["status"] == AlertStatus.OPEN and row["release_state"] == ReleaseState.PENDING:
            review.approve_release(wh, alert_id=row["alert_id"], user=DEMO_OFFICER, at=now)
            approved.add(row["alert_id"])
            cycle.notes.append(
                f"{row['alert_id']} ({row['level']}) approved by {DEMO_OFFICER} "
                "(ews demo acts as the duty officer of this exercise)"
            )
    if not approved:
        return
    published = publish_pending(wh, settings, clock=clock)
    cycle.row_counts["cap_messages"] = cycle.row_counts.get("cap_messages", 0) + len(published)
    for alert in cycle.alerts:
        if alert["alert_id"] in approved:
            alert["release_state"] = ReleaseState.RELEASED


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.cycle import run_cycle
    from pipelines.dashboard_sync import sync_dashboard
    from warehouse.status import warehouse_status

    settings = _with_engine(settings, args.engine, args.scheduler)
    setup_logging(settings, args.quiet)
    with open_warehouse(settings, args.wait) as wh:
        cycle = run_cycle(wh, settings, clock=Clock.from_settings(settings), progress=log.info, actor=args.actor)
        status = warehouse_status(wh)
        synced = sync_dashboard(wh, settings)  # read snapshot + review inbox
    snapshot = {"file": synced.snapshot, "method": synced.snapshot_method, "seconds": synced.snapshot_seconds}
    print_result(
        {"cycle": _cycle_dict(cycle), "status": status, "snapshot": snapshot},
        args.json,
        _summary_text(status, cycle, []),
    )
    return 0


def _with_engine(settings: Settings, engine: str | None, scheduler: str | None) -> Settings:
    """``[cycle] engine`` / ``scheduler`` with the command's ``--engine`` / ``--scheduler``
    over them; a scheduler address alone means the dask engine."""
    if engine is None and scheduler is None:
        return settings
    if engine == "local" and scheduler:
        raise ConfigError(
            f"--scheduler {scheduler} needs the dask engine, not --engine local",
            fix="drop --scheduler, or use --engine dask",
        )
    chosen = engine or "dask"
    address = scheduler if scheduler is not None else (settings.cycle.scheduler if chosen == "dask" else "")
    return replace(settings, cycle=replace(settings.cycle, engine=chosen, scheduler=address))


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.ingestion import source_freshness
    from warehouse.status import warehouse_status

    with open_for_reading(settings) as wh:
        status = warehouse_status(wh)
        status["sources"] = source_freshness(wh)
    text = "\n".join(f"{k}: {v}" for k, v in status.items())
    print_result(status, args.json, text)
    return 0


# -- output helpers ------------------------------------------------------------------------
def _cycle_dict(cycle: Any) -> dict[str, Any]:
    return {
        "run_id": cycle.run_id,
        "series_processed": cycle.series_processed,
        "series_skipped": cycle.series_skipped,
        "row_counts": cycle.row_counts,
        "alerts": cycle.alerts,
        "market": cycle.market,
        "notes": cycle.notes,
    }


def _summary_text(status: dict[str, Any], cycle: Any, quarantined: list[Any]) -> str:
    lines = ["", "== EWS summary =="]
    lines.append("series by domain: " + ", ".join(f"{d} {n}" for d, n in status["series_by_domain"].items()))
    lines.append(f"observations: {status['observations']:,}   events: {status['events']:,}")
    lines.append(
        f"cycle {cycle.run_id}: {cycle.series_processed} series processed, "
        f"{cycle.series_skipped} unchanged; rows written {cycle.row_counts}"
    )
    lines.append(
        f"forecasts: {status['forecasts']:,}   anomaly scores: {status['anomaly_scores']:,}   "
        f"judgments: {status['judgments']}"
    )
    lines.append("open alerts by level: " + ", ".join(f"{k} {v}" for k, v in status["alerts_by_level"].items()))
    if cycle.market:
        lines.append(_market_line(cycle.market))
    for alert in cycle.alerts:
        release_text: dict[str, str] = {
            ReleaseState.RELEASED: ", released",
            ReleaseState.PENDING: ", awaiting duty-officer approval",
            ReleaseState.REJECTED: ", release rejected",
            ReleaseState.SUPPRESSED: ", suppressed",
        }
        release = release_text.get(alert.get("release_state") or "", "")
        lines.append(
            f"  [{alert['level'].upper()}] {alert['unique_id']} ({alert['region']}) "
            f"{alert['status']}{release} at {str(alert['ds'])[:10]}"
        )
        if alert.get("judgment_en"):
            lines.append(f"      {alert['judgment_en']}")
    checks = Counter(a["judgment_check"] for a in cycle.alerts if a.get("judgment_check"))
    if checks:
        lines.append("judgment checks: " + ", ".join(f"{verdict} {n}" for verdict, n in checks.most_common()))
    lines.extend(note for note in cycle.notes if note.startswith(("LLM:", "judgments by template")))
    approvals = [note for note in cycle.notes if "approved by" in note]
    if approvals:
        lines.append("release approvals recorded in the audit log:")
        lines.extend(f"  {note}" for note in approvals)
    for item in quarantined:
        lines.append(f"QUARANTINED {item.path}: {item.error}")
    lines.append("Judgments are machine-generated and auxiliary: for reference, a duty officer decides.")
    return "\n".join(lines)


def _market_line(market: dict[str, Any]) -> str:
    """The market composite's level, its probability and the segments driving it."""
    from alerts.judgment import percent

    segments = ", ".join(
        f"{s['segment']} {s['subindex']:.2f} (contribution {s['contribution']:.2f})"
        for s in market["segments"][:3]
        if s.get("subindex") is not None and s.get("contribution") is not None
    )
    composite = market.get("composite")
    return (
        f"market: {market['unique_id']} {str(market['level']).upper()} at {str(market['ds'])[:10]}: "
        f"P({market['event']} within {market['window_days']:g} days) = {percent(market['probability'])} "
        f"(KLR signals, target {market['target']}"
        + ("; below every rung: the training base rate" if str(market["level"]) == Level.NONE.label else "")
        + "); composite "
        f"{f'{composite:.2f}' if composite is not None else 'n/a'}; top segments: {segments or 'n/a'}"
    )


# -- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ews", description="EWS: time-series risk forecasting and early warning")
    parser.add_argument("--home", help="engine state folder (default: $EWS_HOME or ./ews-home)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object")
    common.add_argument("--quiet", action="store_true", help="no progress on stderr")
    common.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another writer to release the warehouse",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", parents=[common], help="create EWS_HOME, ews.toml and the warehouse").set_defaults(
        func=cmd_init
    )
    sub.add_parser("demo", parents=[common], help="init, load the bundled real data, run one cycle").set_defaults(
        func=cmd_demo
    )
    run = sub.add_parser("run", parents=[common], help="run one scoring cycle on the warehouse (what cron calls)")
    run.add_argument("--actor", default="cron", help="who started the run (recorded in the audit log)")
    run.add_argument(
        "--engine",
        choices=CYCLE_ENGINES,
        help="where the forecasts and scoring run: this machine or a Dask cluster (default: [cycle] engine)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies --engine dask; default: [cycle] scheduler, "
        "empty = a local Dask cluster of [cycle] workers processes)",
    )
    run.set_defaults(func=cmd_run)
    sub.add_parser("status", parents=[common], help="counts, levels and the last run").set_defaults(func=cmd_status)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.home)
        return args.func(args, settings)
    except EWSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
