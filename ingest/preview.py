"""What ``ews ingest file PATH --dry-run`` and the dashboard's upload preview show: a file read
and checked exactly as a load would read and check it, with nothing written.

:func:`preview_file` names the format (detected, with the reason, unless given), parses the
file with the options a load would use, runs the check that decides commit or quarantine
(:func:`ingest.batches.check_batch`, the same call a commit makes), builds the series a commit
would store (:func:`ingest.batches.stored_form`: a catalog's daily series come from its stored
and new events) and compares them with the warehouse. The warehouse is passed in, opened
read-only by the caller (or a read snapshot), or None when none exists yet; this module lands
no copy, writes no ledger row and opens nothing for writing. It goes through the generic
:func:`ingest.sources.parse` / :func:`ingest.sources.detect_format` only, so every format
previews the same way.

The result is a :class:`Preview` (frames and words); :func:`describe` turns it into the text the
CLI prints, and the dashboard renders the same fields.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from core.clock import utc_now
from core.errors import ConfigError, DataFormatError
from core.settings import Settings
from ingest.batches import check_batch, file_batch, stored_form
from ingest.regions import resolve_region_option
from ingest.rules import Finding
from ingest.sources import PARSERS, detect_format
from warehouse import Warehouse
from warehouse import ingestion as store

__all__ = ["Preview", "preview_file", "preview_bytes", "describe", "known_formats", "QUARANTINED_EXIT"]

#: The exit code of ``ews ingest file`` for a quarantined batch (and of its dry run for a
#: batch that would be quarantined); a file that does not parse is quarantined too.
QUARANTINED_EXIT = DataFormatError.exit_code

_SUMMARY_SCHEMA: dict[str, Any] = {
    "unique_id": pl.Utf8,
    "rows": pl.Int64,
    "first_ds": pl.Datetime("us"),
    "last_ds": pl.Datetime("us"),
    "unit": pl.Utf8,
    "lower_bound": pl.Float64,
    "upper_bound": pl.Float64,
    "region": pl.Utf8,
    "stored": pl.Utf8,
    "new_rows": pl.Int64,
    "changed_rows": pl.Int64,
    "unchanged_rows": pl.Int64,
}


@dataclass(frozen=True)
class Preview:
    """A file as a load would see it. ``series`` has one row per series the load would write:
    ``unique_id, rows, first_ds, last_ds, unit, lower_bound, upper_bound, region, stored``
    (``new`` or ``stored``) and the rows that would be ``new_rows`` / ``changed_rows`` /
    ``unchanged_rows``. ``findings`` are the quarantine reasons with their rows; ``error`` is
    the parser's message when the file does not parse (then the frames are empty)."""

    name: str
    fmt: str
    detected: str | None  # why the format was detected; None when it was given
    batch_id: str
    ledger_status: str | None  # the ledger's status of this very batch (same bytes, same options)
    compared_with: str
    notes: tuple[str, ...]
    error: str | None
    series_head: pl.DataFrame
    events_head: pl.DataFrame | None
    event_count: int
    series: pl.DataFrame
    regions: pl.DataFrame
    findings: tuple[Finding, ...]

    @property
    def outcome(self) -> str:
        """What ``ews ingest file`` would do: ``skip`` (already committed), ``quarantine``, ``commit``."""
        if self.ledger_status == "committed":
            return "skip"
        return "quarantine" if self.error is not None or self.findings else "commit"

    @property
    def exit_code(self) -> int:
        """The exit code the real load would end with (4 quarantined, else 0)."""
        return QUARANTINED_EXIT if self.outcome == "quarantine" else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "file": self.name,
            "format": self.fmt,
            "detected": self.detected,
            "batch_id": self.batch_id,
            "ledger_status": self.ledger_status,
            "outcome": self.outcome,
            "compared_with": self.compared_with,
            "notes": list(self.notes),
            "error": self.error,
            "series_head": self.series_head.to_dicts(),
            "events": self.event_count,
            "events_head": None if self.events_head is None else self.events_head.to_dicts(),
            "series": self.series.to_dicts(),
            "regions": self.regions.to_dicts(),
            "quarantine": [{"reason": f.reason, "rows": f.rows.height} for f in self.findings],
        }


def known_formats() -> list[str]:
    """The format names a preview (and a load) accepts, sorted."""
    return sorted(PARSERS)


def _summary(wh: Warehouse | None, series: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """One row per series the load would write, with how its rows compare with the stored ones."""
    spans = series.group_by("unique_id").agg(
        pl.len().cast(pl.Int64).alias("rows"), pl.col("ds").min().alias("first_ds"), pl.col("ds").max().alias("last_ds")
    )
    frame = meta.select("unique_id", "unit", "lower_bound", "upper_bound", "region").join(
        spans, on="unique_id", how="left"
    )
    ids = frame.get_column("unique_id").to_list()
    if wh is None:
        known: set[str] = set()
        changes = series.group_by("unique_id").agg(pl.len().cast(pl.Int64).alias("new_rows"))
        changes = changes.with_columns(changed_rows=pl.lit(0, pl.Int64), unchanged_rows=pl.lit(0, pl.Int64))
    else:
        known = set(store.stored_series_profile(wh, ids).get_column("unique_id").to_list())
        changes = store.observation_changes(wh, series).cast(
            {"new_rows": pl.Int64, "changed_rows": pl.Int64, "unchanged_rows": pl.Int64}
        )
    frame = frame.join(changes, on="unique_id", how="left").with_columns(
        pl.col("rows", "new_rows", "changed_rows", "unchanged_rows").fill_null(0),
        stored=pl.when(pl.col("unique_id").is_in(list(known))).then(pl.lit("stored")).otherwise(pl.lit("new")),
    )
    return frame.select([pl.col(c).cast(t) for c, t in _SUMMARY_SCHEMA.items()]).sort("unique_id")


def _regions(summary: pl.DataFrame) -> pl.DataFrame:
    return (
        summary.group_by("region")
        .agg(pl.len().cast(pl.Int64).alias("series"), (pl.col("stored") == "new").sum().cast(pl.Int64).alias("new"))
        .sort("region")
    )


def preview_file(
    path: Path,
    fmt: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    settings: Settings,
    wh: Warehouse | None,
    compared_with: str = "",
    now: datetime | None = None,
    head: int = 10,
    name: str | None = None,
) -> Preview:
    """Read and check ``path`` as ``ews ingest file`` would, writing nothing (module docstring).

    ``wh`` is the warehouse opened read-only (or a read snapshot), None when none exists yet:
    every series is then new. ``compared_with`` says in words what ``wh`` is. A format that
    cannot be detected, or a ``regions`` id ``[regions]`` does not define, raises
    :class:`core.errors.ConfigError` as a load would; an option the parser refuses makes the
    preview's ``error`` (a load would quarantine the batch).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"no file at {path}", fix="check the path")
    detected = None
    if fmt is None:
        fmt, detected = detect_format(path)
    options = resolve_region_option(dict(options or {}), settings, what=f"{fmt} {path.name}")
    batch = file_batch(path, fmt, options=options)
    now = now or utc_now()
    checked = check_batch(wh, settings, batch, now=now)
    ledger_status = None if wh is None else store.batch_status(wh, batch.batch_id)
    parsed = None if checked.parsed is None else stored_form(wh, checked.parsed, batch)
    notes: tuple[str, ...] = ()
    if parsed is None or checked.parsed is None:  # the file does not parse: the frames stay empty
        head_rows = pl.DataFrame(schema={"unique_id": pl.Utf8, "ds": pl.Datetime("us"), "y": pl.Float64})
        events, summary = None, pl.DataFrame(schema=_SUMMARY_SCHEMA)
    else:
        head_rows, events = checked.parsed.series.head(head), checked.parsed.events
        summary = _summary(wh, parsed.series, parsed.meta)
        notes = tuple(dict.fromkeys(parsed.notes))  # a catalog's recount repeats the parser's region notes
    return Preview(
        name=name or path.name,
        fmt=fmt,
        detected=detected,
        batch_id=batch.batch_id,
        ledger_status=ledger_status,
        compared_with=compared_with or ("no warehouse yet: every series would be new" if wh is None else str(wh.path)),
        notes=notes,
        error=checked.error,
        series_head=head_rows,
        events_head=None if events is None else events.head(head),
        event_count=0 if events is None else events.height,
        series=summary,
        regions=_regions(summary),
        findings=checked.findings,
    )


def preview_bytes(
    name: str,
    data: bytes,
    fmt: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    settings: Settings,
    wh: Warehouse | None,
    compared_with: str = "",
    now: datetime | None = None,
    head: int = 10,
) -> Preview:
    """:func:`preview_file` for an uploaded file: its bytes go to a private temporary folder
    under their own name (parsers name series after the file) and are deleted afterwards."""
    base = Path(str(name).replace("\\", "/")).name.strip()
    if not base or base in (".", ".."):
        raise ConfigError(f"an uploaded file needs a name, got {name!r}", fix="upload a file with its name")
    with tempfile.TemporaryDirectory(prefix="ews-preview-") as folder:
        path = Path(folder) / base
        path.write_bytes(data)
        return preview_file(
            path,
            fmt,
            options=options,
            settings=settings,
            wh=wh,
            compared_with=compared_with,
            now=now,
            head=head,
            name=base,
        )


def _cell(value: object, width: int) -> str:
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        midnight = value == datetime(value.year, value.month, value.day)
        text = f"{value:%Y-%m-%d}" if midnight else value.isoformat(sep=" ", timespec="milliseconds")
    elif isinstance(value, float):
        text = f"{value:.10g}"
    else:
        text = " ".join(str(value).split())  # one line per row, whatever the file held
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(frame: pl.DataFrame, rows: int, *, width: int = 48) -> str:
    """A plain aligned text table of the first ``rows`` rows (cells cut at ``width``)."""
    shown = frame.head(rows)
    cells = [[_cell(v, width) for v in row] for row in shown.iter_rows()]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(shown.columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(shown.columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    if frame.height > rows:
        lines.append(f"... {frame.height - rows} more row(s)")
    return "\n".join("    " + line for line in lines)


def _bounds(lower: float | None, upper: float | None) -> str:
    if lower is None and upper is None:
        return "none"
    return f"{'' if lower is None else f'{lower:g}'}..{'' if upper is None else f'{upper:g}'}"


def describe(preview: Preview, *, rows: int = 10) -> str:
    """The dry run as text (what ``ews ingest file --dry-run`` prints)."""
    p = preview
    how = f"detected ({p.detected})" if p.detected else "given with --format"
    out = [f"dry run of {p.name}: nothing was written", f"format: {p.fmt}, {how}"]
    if p.notes:
        out += ["parser notes (column mapping, conversions, drops):", *(f"  - {n}" for n in p.notes)]
    if p.error is not None:
        out += ["the file does not parse; `ews ingest file` would quarantine the batch:", f"  {p.error}"]
    else:
        out += [f"first rows as parsed ({p.series_head.height} shown):", _table(p.series_head, rows)]
        if p.events_head is not None:
            out += [f"events: {p.event_count}, first {p.events_head.height}:", _table(p.events_head, rows)]
        series = p.series.select(
            "unique_id",
            "rows",
            pl.col("first_ds").alias("first"),
            pl.col("last_ds").alias("last"),
            "unit",
            pl.struct("lower_bound", "upper_bound")
            .map_elements(lambda b: _bounds(b["lower_bound"], b["upper_bound"]), return_dtype=pl.Utf8)
            .alias("bounds"),
            "stored",
            pl.col("new_rows").alias("new"),
            pl.col("changed_rows").alias("changed"),
        )
        out += [
            f"series it would write ({p.series.height}), compared with {p.compared_with}:",
            _table(series, 50),
            "regions: "
            + "; ".join(
                f"{r['region'] or '(none)'}: {r['series']} series, {r['new']} new"
                for r in p.regions.iter_rows(named=True)
            ),
        ]
        if p.findings:
            out.append(f"rows that would be quarantined ({len(p.findings)} reason(s)):")
            for finding in p.findings:
                out += [f"  - {finding.reason}", _table(finding.rows, 5)]
    verdict = {
        "skip": f"`ews ingest file` would skip it: batch {p.batch_id} is already committed",
        "quarantine": f"`ews ingest file` would quarantine batch {p.batch_id} (exit {QUARANTINED_EXIT})",
        "commit": f"`ews ingest file` would commit batch {p.batch_id}: "
        f"{int(p.series['new_rows'].sum())} new and {int(p.series['changed_rows'].sum())} changed row(s)",
    }[p.outcome]
    return "\n".join([*out, verdict])
