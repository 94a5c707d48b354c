"""What published text may quote of a series: the vetted catalogue, read once per command.

:class:`Catalogue` holds the vetted rows (``warehouse.vetting``) and the region names that are
published without a row of their own: those configured in ``[regions]``, those the engine's
catalogue defines (``ingest.sources.catalogue``) and those of vetted rows. Its :meth:`view`
is the one place where the judge, the provisional template judgment and the CAP builder get
the name, region and unit they quote (:func:`alerts.vetting.published_fields`); the
injection screen then runs on that view. The engine's own rows are written by
``warehouse.vetting.vet_written_by`` (the bundled load, the market step); an operator's by
:func:`approve`, what ``ews series approve`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from alerts.guardrails import WITHHELD, screen_texts, withhold
from alerts.vetting import VETTED_FIELDS, published_fields, unvetted_fields
from core.errors import EWSError
from core.settings import Settings
from warehouse import Warehouse
from warehouse.runs import audit
from warehouse.series import read_series_meta
from warehouse.vetting import read_vetted, vet_series, vetted_regions

__all__ = ["Catalogue", "load_catalogue", "publishable", "vetting_checks", "configured_regions", "approve"]


@dataclass(frozen=True)
class Catalogue:
    """The vetted rows by series id and the region names published without one."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    regions: frozenset[str] = frozenset()

    def view(self, evidence: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """``evidence`` as published text may quote it, and how each field was chosen."""
        return published_fields(evidence, self.rows.get(str(evidence.get("unique_id"))), known_regions=self.regions)


def publishable(
    evidence: dict[str, Any], catalogue: Catalogue, settings: Settings
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    """The view of ``evidence`` that a prompt, a judgment and a CAP message are built from, the
    injection screen's events on the source's own text, and how each quoted field was chosen.

    Every free-text field is screened as it came (``alerts.guardrails.withhold``: a blocked one
    is logged by the caller, whatever is published). The name, region and unit are then taken
    from the vetted catalogue (:meth:`Catalogue.view`): a vetted text is published; one that is
    not vetted is the neutral label (the series id; no region; no unit), or the withheld
    notice when the screen blocked it; a configured region or a standard unit is published as
    the screen cleaned it."""
    screened, events = withhold(
        evidence, max_chars=settings.guardrails.max_field_chars, screen=settings.guardrails.screen
    )
    vetted, how = catalogue.view(evidence)
    blocked = {e["field"] for e in events if not e["allowed"]}
    view = dict(screened)
    for key in VETTED_FIELDS:
        if how[key].startswith("vetted"):
            view[key] = vetted[key]
        elif key in blocked:
            view[key] = WITHHELD
        elif how[key].startswith("not vetted"):
            view[key] = vetted[key]
    return view, events, how


def vetting_checks(how: dict[str, str]) -> dict[str, list[str]]:
    """What a judgment's checks say of its quoted fields: ``unvetted`` (the source's text was
    not published: the series id, or nothing, stands in) and ``source_text_differs`` (the
    vetted text was published; the source now gives another)."""
    out: dict[str, list[str]] = {}
    unvetted = unvetted_fields(how)
    if unvetted:
        out["unvetted"] = unvetted
    differs = [f for f in VETTED_FIELDS if how.get(f) == "vetted, source text differs"]
    if differs:
        out["source_text_differs"] = differs
    return out


def configured_regions(settings: Settings) -> set[str]:
    """Region names the operator configured (``[regions]``) or the engine's catalogue defines."""
    from ingest.sources.catalogue import SEISMIC_REGIONS, SST_REGIONS

    names = {str(t.get("name", rid)) for rid, t in settings.regions.tables.items()}
    names |= {str(b["name"]) for group in SEISMIC_REGIONS.values() for b in group}
    return names | {str(b["name"]) for b in SST_REGIONS}


def load_catalogue(wh: Warehouse, settings: Settings) -> Catalogue:
    """The vetted catalogue as it stands in ``wh`` (see :class:`Catalogue`)."""
    return Catalogue(rows=read_vetted(wh), regions=frozenset(configured_regions(settings) | vetted_regions(wh)))


def approve(
    wh: Warehouse,
    settings: Settings,
    unique_ids: Sequence[str],
    *,
    user: str,
    at: datetime,
    name: str | None = None,
    region: str | None = None,
    unit: str | None = None,
) -> list[dict[str, Any]]:
    """Vet series for publication as an operator: each field is the text given, else the
    series' stored text. Refused (nothing written) when a series is not stored, a given text
    is set for more than one series (``name``), or a text to vet reads as instructions to the
    injection screen. Audited as ``series.vetted``. Returns the rows written."""
    if not unique_ids:
        raise EWSError("no series to approve", fix="name the series: ews series approve ID [ID ...]")
    if name is not None and len(unique_ids) > 1:
        raise EWSError(
            f"--name gives one display name for {len(unique_ids)} series",
            fix="approve one series at a time when you set its name",
        )
    meta = {r["unique_id"]: r for r in read_series_meta(wh, list(unique_ids)).iter_rows(named=True)}
    missing = [u for u in unique_ids if u not in meta]
    if missing:
        raise EWSError(
            f"series {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not stored",
            fix="see `ews series list` for the stored ids",
        )
    given = {"name": name, "region": region, "unit": unit}
    rows = [
        {"unique_id": u, **{f: given[f] if given[f] is not None else meta[u][f] for f in VETTED_FIELDS}}
        for u in unique_ids
    ]
    texts = [(r["unique_id"], f, r[f]) for r in rows for f in VETTED_FIELDS if r[f]]
    verdicts = screen_texts(
        [t for _, _, t in texts], max_chars=settings.guardrails.max_field_chars, screen=settings.guardrails.screen
    )
    refused = [(u, f, v.reasons) for (u, f, _), v in zip(texts, verdicts, strict=True) if not v.allowed]
    if refused:
        listed = "; ".join(f"{u} {f} ({', '.join(r)})" for u, f, r in refused[:5])
        raise EWSError(
            f"not approved: the injection screen reads these texts as instructions, not data: {listed}",
            fix="read the source's text; approve a display text of your own with --name / --region / --unit",
        )
    frame = pl.DataFrame(rows, schema={"unique_id": pl.Utf8, **{f: pl.Utf8 for f in VETTED_FIELDS}})
    with wh.transaction():
        vet_series(wh, frame, by=user, at=at, by_operator=True)
        for r in rows:
            audit(wh, at=at, actor=user, action="series.vetted", target=r["unique_id"], detail=r)
    return rows
