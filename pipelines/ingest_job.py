"""The ingest job: network sources one after the other, then the scoring cycle when rows changed.

:func:`run_sources` is the one job both cron (``ews ingest --all``) and the scheduler run: for
each source it calls :func:`ingest.connectors.run_source` (watermarks, fetch, one commit per
batch, freshness or the error), records the whole run in ``runs`` (kind ``ingest``), runs the
scoring cycle when rows changed, and publishes the dashboard's read snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import Clock, utc_now
from core.settings import Settings
from ingest.connectors import SourceRun, run_source
from ingest.connectors.http import HttpClient
from pipelines.dashboard_sync import sync_dashboard
from warehouse import Warehouse
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


def run_sources(
    wh: Warehouse,
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
) -> IngestRun:
    """Ingest ``names`` one after the other, record the run, then score if rows changed.

    ``clock``: the command's clock (default: built from ``settings`` at ``now``); its ``now``
    stamps the ingest run. Each source stamps its fetch with ``now`` when the caller fixed it,
    else with its own reading; the cycle runs on the same clock re-read at its start.
    """
    from pipelines.cycle import new_run_id, run_cycle  # the cycle imports the libraries: only when needed

    clock = Clock.resolve(settings, clock=clock, now=now)
    started = clock.now
    run_id = new_run_id(started).replace("r_", "i_", 1)
    start_run(wh, run_id=run_id, kind="ingest", started_at=started)
    audit(wh, at=started, actor=actor, action="ingest.started", target=run_id, detail={"sources": list(names)})
    client = client or HttpClient(settings.ingest)
    results = []
    for name in names:
        progress(f"ingest {name}: fetching")
        result = run_source(wh, settings, name, client=client, now=now, environ=environ)
        progress(
            f"ingest {name}: {result.status}, {len(result.batches)} batch(es), {result.rows_changed} row(s) changed"
            + (f" - {result.error.splitlines()[0]}" if result.error else "")
        )
        results.append(result)
    out = IngestRun(run_id=run_id, sources=results)
    counts = {r.source: r.rows_changed for r in results}
    errors = "; ".join(f"{r.source}: {r.error.splitlines()[0]}" for r in results if r.error)
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
