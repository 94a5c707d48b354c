"""Loading files into the warehouse: landing copy, ledger entry, one transaction per batch.

A batch is one file parsed with one format and one set of options. Its id is derived from the
file's SHA-256 and the parse settings, so loading the same file the same way twice finds the
committed batch in the ledger and changes nothing. A file that fails to parse is quarantined:
its ledger row records the reason, its landing copy stays under ``EWS_HOME/raw`` for
inspection, and nothing of it reaches the series tables.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import DataFormatError
from core.settings import Settings
from pipelines.sources import bundled_catalogue, parse
from warehouse import Warehouse

__all__ = ["IngestResult", "ingest_file", "load_bundled", "sample_data_dir", "utc_now"]


def utc_now() -> datetime:
    """The engine's clock: naive UTC, microseconds (what the warehouse stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    path: str
    fmt: str
    status: str  # committed | skipped (already committed) | quarantined
    series: int = 0
    rows: int = 0
    rows_changed: int = 0
    events: int = 0
    error: str | None = None
    notes: tuple[str, ...] = ()


def sample_data_dir(settings: Settings) -> Path:
    """Where the bundled sample data lives (``[paths] sample_data``, else the project's data/)."""
    configured = settings.paths.sample_data
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "data"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ingest_file(
    wh: Warehouse,
    settings: Settings,
    path: Path,
    fmt: str,
    *,
    options: dict[str, Any] | None = None,
    source: str | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Parse ``path`` as ``fmt`` and load it as one batch (see the module docstring)."""
    options = options or {}
    now = now or utc_now()
    checksum = _sha256(path)
    spec = json.dumps({"format": fmt, "options": options}, sort_keys=True, default=str)
    batch_id = "b_" + hashlib.sha256(f"{checksum}|{spec}".encode()).hexdigest()[:16]
    if wh.batch_status(batch_id) == "committed":
        return IngestResult(batch_id, str(path), fmt, "skipped")
    landing = settings.path("raw") / batch_id / path.name
    landing.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, landing)
    ledger = dict(batch_id=batch_id, source=source or options.get("source") or path.name,
                  fmt=fmt, location=str(path), fetched_at=now, checksum=checksum)
    try:
        parsed = parse(path, fmt, **options)
    except DataFormatError as exc:
        with wh.transaction():
            wh.record_batch(**ledger, status="quarantined", error=str(exc))
            wh.audit(at=now, actor="ingest", action="batch.quarantined", target=batch_id,
                     detail={"path": str(path), "format": fmt, "error": str(exc)})
        return IngestResult(batch_id, str(path), fmt, "quarantined", error=str(exc))
    with wh.transaction():
        wh.upsert_series(parsed.meta, batch_id=batch_id)
        changed = wh.upsert_observations(parsed.series, batch_id=batch_id)
        events = 0
        if parsed.events is not None:
            events = wh.upsert_events(parsed.events, batch_id=batch_id)
        wh.record_batch(**ledger, status="committed", row_count=parsed.series.height,
                        rows_changed=changed)
        wh.audit(at=now, actor="ingest", action="batch.committed", target=batch_id,
                 detail={"path": str(path), "format": fmt, "rows": parsed.series.height,
                         "rows_changed": changed, "events": events})
    wh.checkpoint()
    return IngestResult(batch_id, str(path), fmt, "committed", series=parsed.meta.height,
                        rows=parsed.series.height, rows_changed=changed, events=events,
                        notes=parsed.notes)


def load_bundled(
    wh: Warehouse,
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[IngestResult]:
    """Load every bundled sample file; files already loaded are skipped."""
    data_dir = sample_data_dir(settings)
    catalogue = bundled_catalogue(data_dir)
    results = []
    for i, item in enumerate(catalogue, 1):
        path = data_dir / item.relative_path
        result = ingest_file(wh, settings, path, item.format, options=item.options)
        progress(f"[{i}/{len(catalogue)}] {item.relative_path}: {result.status}"
                 + (f", {result.rows} rows in {result.series} series" if result.rows else ""))
        results.append(result)
    return results
