"""Loading batches into the warehouse: landing copy, checks, ledger, one transaction each.

A **batch** is one file (``ews ingest file``) or the files one network fetch brought (pages,
windows), parsed with one format and one set of options. Contracts:

- **Nothing lost**: every file is first copied under ``EWS_HOME/raw/<batch_id>/`` (written to
  a temporary name and renamed, so a crash never leaves a half file under the real name), and
  every batch gets a ledger row in ``ingest_batches`` with its SHA-256, row counts and status.
- **Nothing doubled**: the batch id is derived from the files' checksums and the parse
  settings, so the same bytes loaded the same way are skipped; every write is an upsert that
  leaves identical rows alone, so overlapping windows, repeats and late rows converge.
- **All or nothing**: series, observations, events, derived series, the ledger row, the
  source's watermark and its freshness commit in one transaction; a crash or an error before
  COMMIT leaves the warehouse as it was (DuckDB's WAL is replayed on the next open).
- **Quarantine**: a batch that does not parse (whatever the parser raised: a format error, an
  option it cannot work out such as a frequency, or an unexpected exception), or that fails a
  rule of :mod:`ingest.rules` (future timestamps, impossible values, wrong units), or whose
  watermark is older than the stored one (a cut or stale answer), is recorded as
  ``quarantined`` with the reasons; its landing copy stays for inspection and nothing of it
  reaches the series tables.
- **Landing needs no lock**: :func:`land_files` writes a network batch's files under
  ``EWS_HOME/raw`` without the warehouse; :func:`commit_landed` (the only step that needs the
  writer) checks, parses and commits them.
- Earthquake catalogs: events are upserted, then each region's daily count / max magnitude /
  energy are recomputed **from the stored events** of that catalog over the days the batch
  touched, so the daily values never depend on how the catalog was split into batches.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import polars as pl

from core.clock import utc_now
from core.errors import ConfigError, DataFormatError
from core.settings import Settings
from ingest.regions import resolve_region_option
from ingest.rules import Finding, Profile, quarantine_findings
from ingest.sources import Parsed, bundled_catalogue, parse
from ingest.sources._common import (
    EVENT_SCHEMA,
    apply_available_after,
    apply_bounds,
    with_exact_duplicates_dropped,
)
from ingest.sources.seismic import catalog_regions, daily_event_series
from warehouse import Warehouse
from warehouse import ingestion as store
from warehouse.runs import audit
from warehouse.series import upsert_events, upsert_observations, upsert_series
from warehouse.vetting import BUNDLED_VETTER, vet_written_by

__all__ = [
    "IngestResult",
    "RawFile",
    "Checked",
    "file_batch",
    "check_batch",
    "stored_form",
    "ingest_file",
    "ingest_files",
    "land_files",
    "commit_landed",
    "quarantine_landed",
    "LandedBatch",
    "load_bundled",
    "sample_data_dir",
    "batch_id_for",
]

_CATALOG_FORMATS = ("usgs_catalog", "cenc_catalog", "event_catalog", "quakeml", "fdsn_text")


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
    source: str = ""
    last_data_time: str | None = None


@dataclass(frozen=True)
class RawFile:
    """One file of a network batch: its name under the landing folder and its bytes."""

    name: str
    data: bytes


@dataclass
class LandedBatch:
    """A batch whose files are under ``EWS_HOME/raw/<batch_id>/`` (from :func:`land_files`)."""

    batch_id: str
    source: str
    kind: str
    fmt: str
    options: dict[str, Any]
    location: str
    checksum: str
    landed: list[Path] = field(default_factory=list)


def sample_data_dir(settings: Settings) -> Path:
    """Where the bundled sample data lives (``[paths] sample_data``, else the project's data/)."""
    configured = settings.paths.sample_data
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "data"


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def batch_id_for(checksum: str, fmt: str, options: Mapping[str, Any]) -> str:
    """Same bytes parsed the same way give the same id (so a re-load is recognised)."""
    spec = json.dumps({"format": fmt, "options": options}, sort_keys=True, default=str)
    return "b_" + hashlib.sha256(f"{checksum}|{spec}".encode()).hexdigest()[:16]


def _write_atomically(target: Path, data: bytes | None = None, source: Path | None = None) -> None:
    """Write to ``target`` via a temporary sibling and a rename: readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    with tmp.open("wb") as out:
        if data is not None:
            out.write(data)
        elif source is not None:
            with source.open("rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    out.write(chunk)
        else:
            raise RuntimeError(f"internal error: writing {target} needs data or a source file, got neither")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)


# -- parse, merge, check ------------------------------------------------------------------
def _merge(path_names: Sequence[str], parts: Sequence[Parsed]) -> Parsed:
    """One Parsed from the files of a batch (pages or windows of one fetch)."""
    if len(parts) == 1:
        return parts[0]
    series, dropped = with_exact_duplicates_dropped(pl.concat([p.series for p in parts]))
    clash = series.group_by("unique_id", "ds").len().filter(pl.col("len") > 1)
    if clash.height:
        uid, ds, _ = clash.row(0)
        raise DataFormatError(
            f"{', '.join(path_names)}: series {uid!r} has different values at {ds} in two files of one batch",
            fix="the source changed while it was being read; fetch the batch again",
        )
    meta = pl.concat([p.meta for p in parts]).unique(subset="unique_id", keep="first", maintain_order=True)
    events = [p.events for p in parts if p.events is not None]
    merged_events = (
        pl.concat(events).unique(subset=["source", "event_id"], keep="last", maintain_order=True) if events else None
    )
    notes = tuple(n for p in parts for n in p.notes) + (
        (f"dropped {dropped} row(s) repeated across files",) if dropped else ()
    )
    return Parsed(series=series.sort("unique_id", "ds"), meta=meta.sort("unique_id"), events=merged_events, notes=notes)


def _stored_profiles(wh: Warehouse | None, unique_ids: Sequence[str]) -> dict[str, Profile]:
    if wh is None:  # no warehouse yet (a dry run before `ews init`): nothing is stored
        return {}
    frame = store.stored_series_profile(wh, unique_ids)
    return {
        r["unique_id"]: Profile(unit=r["unit"], median=r["median_y"], count=int(r["n"]))
        for r in frame.iter_rows(named=True)
    }


def _catalog_series(
    wh: Warehouse | None, parsed: Parsed, batch: LandedBatch, path: Path, window: tuple[datetime, datetime] | None
) -> Parsed:
    """Recompute the regional daily series from every event of this catalog: the stored ones
    and the batch's (which win over a stored copy of the same event). Reads only, so a dry run
    gets the series a commit would store; ``wh`` None means nothing is stored yet."""
    if parsed.events is None:  # only called for catalogs, whose parsers always return events
        raise RuntimeError(f"internal error: {path.name} was read as an event catalog but its parse has no events")
    if parsed.events.height == 0 and window is None:
        return parsed
    prefixes = sorted({eid.split(":", 1)[0] for eid in parsed.events.get_column("event_id").to_list()}) or [
        str(batch.options.get("event_id_prefix", ""))
    ]
    regions, extent_of = batch.options.get("regions"), parsed.events.select("lat", "lon")
    if regions is None and wh is not None:
        # Without regions the one region spans every event of the catalog, stored or new, so
        # the daily series do not depend on how the catalog was cut into batches.
        stored_points = [store.catalog_event_points(wh, id_prefix=p) for p in prefixes]
        extent_of = pl.concat([*(p.select(pl.col("lat", "lon").cast(pl.Float64)) for p in stored_points), extent_of])
    if extent_of.height == 0:  # no event stored or new, and no region to zero-fill
        return parsed
    # the parser's notes already told what the regions leave out
    boxes, _ = catalog_regions(path, extent_of, regions, what=f"{batch.fmt} {path.name}")
    if window is not None:
        first, last = window[0].replace(hour=0, minute=0, second=0, microsecond=0), window[1]
    else:
        times = parsed.events.get_column("time")
        # a Datetime column (EVENT_SCHEMA) with rows (the early return above)
        first, last = cast(datetime, times.min()), cast(datetime, times.max())
    first = first.replace(hour=0, minute=0, second=0, microsecond=0)
    last = last.replace(hour=0, minute=0, second=0, microsecond=0)
    end = last + timedelta(days=1)
    columns = [pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()]
    kept = [] if wh is None else [store.read_catalog_events(wh, id_prefix=p, start=first, end=end) for p in prefixes]
    incoming = parsed.events.filter((pl.col("time") >= first) & (pl.col("time") < end))
    stored = (
        pl.concat([*(k.select(columns) for k in kept), incoming.select(columns)])
        .unique(subset=["source", "event_id"], keep="last", maintain_order=True)
        .sort("time", "event_id")
    )
    source = (
        str(parsed.meta.get_column("source")[0])
        if parsed.meta.height
        else str(batch.options.get("source", batch.source))
    )
    licence = str(parsed.meta.get_column("licence")[0]) if parsed.meta.height else ""
    classification = str(batch.options.get("classification", "public"))
    frames, meta, notes = daily_event_series(
        stored, boxes, first_day=first, last_day=last, source=source, licence=licence, classification=classification
    )
    series = pl.concat(
        [
            f.select(
                pl.col("unique_id").cast(pl.Utf8), pl.col("ds").cast(pl.Datetime("us")), pl.col("y").cast(pl.Float64)
            )
            for f in frames
        ]
    ).sort("unique_id", "ds")
    meta_frame = pl.DataFrame(meta, schema=parsed.meta.schema).sort("unique_id") if meta else parsed.meta
    meta_frame = apply_bounds(meta_frame, batch.options.get("bounds"), what=f"{batch.fmt} {path.name}")
    meta_frame = apply_available_after(
        meta_frame, batch.options.get("available_after"), what=f"{batch.fmt} {path.name}"
    )
    return Parsed(
        series=series,
        meta=meta_frame,
        events=parsed.events,
        notes=parsed.notes
        + (
            f"daily series recomputed from {stored.height} event(s) stored or in this batch "
            f"{first:%Y-%m-%d}..{last:%Y-%m-%d}",
        )
        + (
            (
                f"region {boxes[0].id!r} spans every event of this catalog, stored ones included: "
                f"lat {boxes[0].min_lat:g}..{boxes[0].max_lat:g}, lon {boxes[0].min_lon:g}..{boxes[0].max_lon:g}",
            )
            if regions is None and extent_of.height > parsed.events.height
            else ()
        )
        + tuple(notes),
    )


@dataclass(frozen=True)
class Checked:
    """What decides a batch's fate: its parse (None when the files do not parse, with the
    parser's ``error``) and the quarantine findings of :mod:`ingest.rules`; the batch is
    committed only when both are clear."""

    parsed: Parsed | None
    error: str | None = None
    findings: tuple[Finding, ...] = ()

    @property
    def quarantine_reason(self) -> str | None:
        """The ledger's error text of a quarantined batch, None when it may be committed."""
        if self.error is not None:
            return self.error
        return "; ".join(f.reason for f in self.findings) or None


def check_batch(wh: Warehouse | None, settings: Settings, batch: LandedBatch, *, now: datetime) -> Checked:
    """Parse the batch's files and apply the quarantine rules, reading only: the one check both a
    commit and ``ews ingest file --dry-run`` run. ``wh`` None means no warehouse exists yet."""
    try:
        parts = [parse(path, batch.fmt, **batch.options) for path in batch.landed]
        parsed = _merge([p.name for p in batch.landed], parts)
    except (DataFormatError, ConfigError) as exc:
        return Checked(parsed=None, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any parser failure quarantines the file, never a traceback
        return Checked(
            parsed=None,
            error=f"{', '.join(p.name for p in batch.landed)}: the {batch.fmt} parser failed with "
            f"{type(exc).__name__}: {exc}\n  fix: check that the file is {batch.fmt} (pass --format to choose "
            "another parser); the landing copy is kept under EWS_HOME/raw for inspection",
        )
    findings = quarantine_findings(
        parsed.series,
        parsed.meta,
        parsed.events,
        stored=_stored_profiles(wh, parsed.meta.get_column("unique_id").to_list()),
        now=now,
        tolerance=timedelta(hours=settings.ingest.future_tolerance_hours),
    )
    return Checked(parsed=parsed, findings=tuple(findings))


def stored_form(
    wh: Warehouse | None, parsed: Parsed, batch: LandedBatch, *, window: tuple[datetime, datetime] | None = None
) -> Parsed:
    """The series a commit stores from a checked parse: an earthquake catalog's regional daily
    series are recomputed from its stored and new events; other formats store what they parsed."""
    if batch.fmt in _CATALOG_FORMATS and parsed.events is not None:
        return _catalog_series(wh, parsed, batch, batch.landed[0], window)
    return parsed


# -- the ledger -----------------------------------------------------------------------
def _ledger(batch: LandedBatch, now: datetime) -> dict[str, Any]:
    return dict(
        batch_id=batch.batch_id,
        source=batch.source,
        fmt=batch.fmt,
        location=batch.location,
        fetched_at=now,
        checksum=batch.checksum,
    )


def _quarantine(wh: Warehouse, batch: LandedBatch, now: datetime, error: str) -> IngestResult:
    if store.batch_status(wh, batch.batch_id) == "committed":
        # the same bytes were committed before (a stale answer repeating an old one): the refusal
        # gets a ledger row of its own, and the committed row keeps saying what is stored
        batch = replace(batch, batch_id=f"{batch.batch_id}_refused_{now:%Y%m%dT%H%M%S}")
    with wh.transaction():
        store.record_batch(wh, **_ledger(batch, now), status="quarantined", error=error)
        audit(
            wh,
            at=now,
            actor="ingest",
            action="batch.quarantined",
            target=batch.batch_id,
            detail={"location": batch.location, "format": batch.fmt, "error": error},
        )
        store.record_source_attempt(wh, batch.source, kind=batch.kind, at=now)
        store.record_source_error(
            wh, batch.source, kind=batch.kind, at=now, error=f"quarantined {batch.batch_id}: {error}"
        )
    wh.checkpoint()
    return IngestResult(batch.batch_id, batch.location, batch.fmt, "quarantined", error=error, source=batch.source)


def _commit(
    wh: Warehouse,
    settings: Settings,
    batch: LandedBatch,
    now: datetime,
    *,
    watermark: tuple[str, str] | None,
    window: tuple[datetime, datetime] | None,
) -> IngestResult:
    """Parse the landed files, check them, and commit everything in one transaction."""
    if watermark is not None:
        older = store.watermark_regression(wh, watermark[0], watermark[1])
        if older is not None:
            return _quarantine(wh, batch, now, older)
    checked = check_batch(wh, settings, batch, now=now)
    if checked.quarantine_reason is not None or checked.parsed is None:
        return _quarantine(wh, batch, now, checked.quarantine_reason or "the batch did not parse")
    parsed = checked.parsed
    try:
        with wh.transaction():
            events = 0
            if parsed.events is not None:
                events = upsert_events(wh, parsed.events, batch_id=batch.batch_id)
            parsed = stored_form(wh, parsed, batch, window=window)
            upsert_series(wh, parsed.meta, batch_id=batch.batch_id)
            changed = upsert_observations(wh, parsed.series, batch_id=batch.batch_id)
            last_time = cast(datetime, parsed.series.get_column("ds").max()) if parsed.series.height else None
            store.record_batch(
                wh, **_ledger(batch, now), status="committed", row_count=parsed.series.height, rows_changed=changed
            )
            audit(
                wh,
                at=now,
                actor="ingest",
                action="batch.committed",
                target=batch.batch_id,
                detail={
                    "location": batch.location,
                    "format": batch.fmt,
                    "rows": parsed.series.height,
                    "rows_changed": changed,
                    "events": events,
                },
            )
            if watermark is not None:
                store.write_watermark(wh, watermark[0], watermark[1], batch_id=batch.batch_id, at=now)
            store.record_source_attempt(wh, batch.source, kind=batch.kind, at=now)
            store.record_source_success(
                wh,
                batch.source,
                kind=batch.kind,
                at=now,
                last_data_time=last_time,
                batch_id=batch.batch_id,
                rows=parsed.series.height,
            )
    except (DataFormatError, ConfigError) as exc:
        # the recount of a catalog's stored and new events (stored_form) refused: rolled back, quarantined
        return _quarantine(wh, batch, now, str(exc))
    wh.checkpoint()  # keep the WAL short: a hard kill later replays little
    return IngestResult(
        batch.batch_id,
        batch.location,
        batch.fmt,
        "committed",
        series=parsed.meta.height,
        rows=parsed.series.height,
        rows_changed=changed,
        events=events,
        notes=parsed.notes,
        source=batch.source,
        last_data_time=None if last_time is None else str(last_time),
    )


def _skipped(wh: Warehouse, batch: LandedBatch, now: datetime, watermark: tuple[str, str] | None) -> IngestResult:
    """The same batch is already committed: nothing to load, but the source did answer."""
    with wh.transaction():
        if watermark is not None:
            store.advance_watermark(wh, watermark[0], watermark[1], batch_id=batch.batch_id, at=now)
        store.record_source_attempt(wh, batch.source, kind=batch.kind, at=now)
        store.record_source_success(
            wh, batch.source, kind=batch.kind, at=now, last_data_time=None, batch_id=None, rows=0
        )
    return IngestResult(batch.batch_id, batch.location, batch.fmt, "skipped", source=batch.source)


# -- entry points ---------------------------------------------------------------------
def file_batch(
    path: Path, fmt: str, *, options: dict[str, Any] | None = None, source: str | None = None
) -> LandedBatch:
    """The batch ``ews ingest file`` makes of one file (its id, source and checksum); the file
    itself is its only member until :func:`ingest_file` lands a copy."""
    options = dict(options or {})
    path = Path(path)
    checksum = _sha256_file(path)
    return LandedBatch(
        batch_id=batch_id_for(checksum, fmt, options),
        source=source or str(options.get("source") or path.name),
        kind=f"file:{fmt}",
        fmt=fmt,
        options=options,
        location=str(path),
        checksum=checksum,
        landed=[path],
    )


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
    """Land ``path`` under EWS_HOME/raw, parse it as ``fmt`` and load it as one batch."""
    options = resolve_region_option(dict(options or {}), settings, what=f"{fmt} {Path(path).name}")
    now = now or utc_now()
    path = Path(path)
    batch = file_batch(path, fmt, options=options, source=source)
    checksum = batch.checksum
    if store.batch_status(wh, batch.batch_id) == "committed":
        return IngestResult(batch.batch_id, str(path), fmt, "skipped", source=batch.source)
    landing = settings.path("raw") / batch.batch_id / path.name
    if not landing.is_file() or _sha256_file(landing) != checksum:
        _write_atomically(landing, source=path)
    batch.landed = [landing]
    result = _commit(wh, settings, batch, now, watermark=None, window=None)
    return IngestResult(**{**result.__dict__, "path": str(path)})


def land_files(
    settings: Settings,
    files: Sequence[RawFile],
    fmt: str,
    *,
    source: str,
    kind: str,
    location: str,
    options: dict[str, Any] | None = None,
) -> LandedBatch:
    """Write the files of one network fetch under ``EWS_HOME/raw/<batch_id>/`` (no warehouse).

    Each file is written to a temporary name and renamed; a file already there with the same
    bytes is left alone, so landing twice changes nothing.
    """
    if not files:
        raise ConfigError(f"source {source}: a batch needs at least one file", fix="fetch before loading")
    options = resolve_region_option(dict(options or {}), settings, what=f"source {source}")
    checksum = _sha256_bytes(b"".join(_sha256_bytes(f.data).encode() for f in files))
    batch = LandedBatch(
        batch_id=batch_id_for(checksum, fmt, {**options, "_files": [f.name for f in files]}),
        source=source,
        kind=kind,
        fmt=fmt,
        options=options,
        location=location,
        checksum=checksum,
    )
    folder = settings.path("raw") / batch.batch_id
    for raw in files:
        target = folder / raw.name
        if not target.is_file() or _sha256_file(target) != _sha256_bytes(raw.data):
            _write_atomically(target, data=raw.data)
        batch.landed.append(target)
    return batch


def commit_landed(
    wh: Warehouse,
    settings: Settings,
    batch: LandedBatch,
    *,
    watermark: tuple[str, str] | None = None,
    window: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Check, parse and commit a landed batch (the step that needs the writer)."""
    now = now or utc_now()
    if store.batch_status(wh, batch.batch_id) == "committed":
        if watermark is not None:
            older = store.watermark_regression(wh, watermark[0], watermark[1])
            if older is not None:
                return _quarantine(wh, batch, now, older)
        return _skipped(wh, batch, now, watermark)
    return _commit(wh, settings, batch, now, watermark=watermark, window=window)


def quarantine_landed(wh: Warehouse, batch: LandedBatch, error: str, *, now: datetime | None = None) -> IngestResult:
    """Record a landed batch as quarantined with ``error`` (an answer refused before parsing)."""
    return _quarantine(wh, batch, now or utc_now(), error)


def ingest_files(
    wh: Warehouse,
    settings: Settings,
    files: Sequence[RawFile],
    fmt: str,
    *,
    source: str,
    kind: str,
    location: str,
    options: dict[str, Any] | None = None,
    watermark: tuple[str, str] | None = None,
    window: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Land the files of one network fetch and load them as one batch; ``watermark`` (key,
    value) commits with it (:func:`land_files` then :func:`commit_landed`).

    ``window`` (start, end) is the time span the fetch covered; catalogs zero-fill their
    daily counts over it.
    """
    batch = land_files(settings, files, fmt, source=source, kind=kind, location=location, options=options)
    return commit_landed(wh, settings, batch, watermark=watermark, window=window, now=now)


def load_bundled(
    wh: Warehouse,
    settings: Settings,
    *,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[IngestResult]:
    """Load every bundled sample file; files already loaded are skipped. The names, regions and
    units of the series they wrote enter the vetted catalogue (``warehouse.vetting``, as the
    engine): they are the project's own catalogue (data/PROVENANCE.md), so published text
    quotes them."""
    data_dir = sample_data_dir(settings)
    catalogue = bundled_catalogue(data_dir)
    results = []
    for i, item in enumerate(catalogue, 1):
        path = data_dir / item.relative_path
        result = ingest_file(wh, settings, path, item.format, options=item.options)
        progress(
            f"[{i}/{len(catalogue)}] {item.relative_path}: {result.status}"
            + (f", {result.rows} rows in {result.series} series" if result.rows else "")
        )
        results.append(result)
    loaded = [r.batch_id for r in results if r.status in ("committed", "skipped")]
    vet_written_by(wh, loaded, by=BUNDLED_VETTER, at=utc_now())
    return results
