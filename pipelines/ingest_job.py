"""The ingest job: network sources one after the other, then the scoring cycle when rows changed.

:func:`run_sources` is the one job both cron (``ews ingest --all``) and the scheduler run. It
holds the warehouse's writer lock only to write, never while downloading:

1. briefly, to open the run row (kind ``ingest``, with this process's pid and host) and read
   every source's watermarks;
2. per source, *without the lock*, :func:`ingest.connectors.download_source` fetches within the
   source's deadline and lands the batches under ``EWS_HOME/raw``; then, with the lock,
   :func:`ingest.connectors.commit_download` commits them (one transaction per batch) and
   records freshness or the error; the commit waits up to ``[ingest] commit_wait_seconds``
   for another writer;
3. with the lock, it closes the run row, runs the scoring cycle when rows changed, and
   publishes the dashboard's read snapshot.

Meanwhile ``ews run``, another ingest, or a reader can open the warehouse. A source's
failure (a refused answer, a deadline, a connector defect) is recorded and the next source
goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import Clock, utc_now
from core.settings import Settings
from ingest.connectors import SourceRun, check_source, commit_download, download_source
from ingest.connectors.http import HttpClient
from pipelines.dashboard_sync import sync_dashboard
from warehouse import Warehouse
from warehouse.ingestion import read_watermarks
from warehouse.runs import audit, finish_run, start_run

__all__ = ["IngestRun", "run_sources"]


@dataclass
class IngestRun:
    run_id: str
    sources: list[SourceRun]
    cycle: Any = None  # the CycleSummary when a scoring cycle ran

    @property
    def ok(self) -> bool:
        return all(s.status == "success" for s in self.sources)


@contextmanager
def _writer(settings: Settings, wait: float) -> Iterator[Warehouse]:
    with Warehouse.open(settings.warehouse_path, wait_seconds=wait) as wh:
        yield wh


def run_sources(
    settings: Settings,
    names: Sequence[str],
    *,
    actor: str = "cron",
    cycle: bool = True,
    client: HttpClient | None = None,
    clock: Clock | None = None,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    environ: Mapping[str, str] | None = None,
    wait: float = 0.0,
) -> IngestRun:
    """Ingest ``names`` one after the other, record the run, then score if rows changed.

    Opens the warehouse at ``settings.warehouse_path`` itself, only to write (see the module
    docstring); ``wait``: seconds to wait for another writer at the start (the commits wait
    ``[ingest] commit_wait_seconds``). ``clock``: the command's clock (default: built from
    ``settings`` at ``now``); its ``now`` stamps the ingest run. Each source stamps its fetch
    with ``now`` when the caller fixed it, else with its own reading; the cycle runs on the
    same clock re-read at its start.
    """
    from pipelines.cycle import new_run_id, run_cycle  # the cycle imports the libraries: only when needed

    for name in names:
        check_source(settings, name)  # a wrong name stops before any run starts
    clock = Clock.resolve(settings, clock=clock, now=now)
    started = clock.now
    run_id = new_run_id(started).replace("r_", "i_", 1)
    commit_wait = max(wait, settings.ingest.commit_wait_seconds)
    with _writer(settings, wait) as wh:
        start_run(wh, run_id=run_id, kind="ingest", started_at=started)
        audit(wh, at=started, actor=actor, action="ingest.started", target=run_id, detail={"sources": list(names)})
        marks = {name: read_watermarks(wh, name) for name in names}
    client = client or HttpClient(settings.ingest)
    results = []
    for name in names:
        progress(f"ingest {name}: fetching")
        download = download_source(settings, name, watermarks=marks[name], client=client, now=now, environ=environ)
        with _writer(settings, commit_wait) as wh:
            result = commit_download(wh, settings, download)
        progress(
            f"ingest {name}: {result.status}, {len(result.batches)} batch(es), {result.rows_changed} row(s) changed"
            f" ({download.seconds:.1f} s downloading)" + (f" - {result.error.splitlines()[0]}" if result.error else "")
        )
        results.append(result)
    out = IngestRun(run_id=run_id, sources=results)
    counts = {r.source: r.rows_changed for r in results}
    errors = "; ".join(f"{r.source}: {r.error.splitlines()[0]}" for r in results if r.error)
    with _writer(settings, commit_wait) as wh:
        finish_run(
            wh,
            run_id=run_id,
            status="success" if out.ok else "failed",
            finished_at=utc_now(),
            row_counts=counts,
            error=errors or None,
        )
        audit(wh, at=utc_now(), actor=actor, action="ingest.finished", target=run_id, detail=counts)
        wh.checkpoint()
        if cycle and sum(counts.values()) > 0:
            progress("new data: running the scoring cycle")
            out.cycle = run_cycle(wh, settings, clock=clock.restarted(), progress=progress, actor=actor)
        # every write run publishes the dashboard's read snapshot and applies queued review actions
        sync_dashboard(wh, settings)
    return out
