"""``ews series list|approve|unapprove``: the vetted catalogue published names come from.

Published text (the judgment header, the CAP headline, areaDesc and description) quotes a
series' name, region and unit only from the vetted catalogue (docs/security.md, "Published
names come from a vetted catalogue"). ``list`` shows each series' text as its source gave it
beside the vetted text (``--unvetted``: only series with a field not vetted); ``approve``
vets the stored text, or the display text given with ``--name`` / ``--region`` / ``--unit``,
as an authenticated duty officer or admin (``EWS_TOKEN`` or ``--user NAME --password-stdin``;
audited as ``series.vetted``); ``unapprove`` withdraws a series' row (``series.unvetted``).
"""

from __future__ import annotations

import argparse
from typing import Any

from core.clock import utc_now
from core.errors import EWSError
from core.settings import Settings
from pipelines.cli.credentials import add_credential_arguments, authenticated_user
from pipelines.cli.main import open_for_reading, open_warehouse, print_result

__all__ = ["register"]

_FIELDS = ("name", "region", "unit")


def _state(row: dict[str, Any]) -> dict[str, str]:
    """Per field: ``vetted``, ``vetted (source differs)`` or ``not vetted``."""
    out = {}
    for f in _FIELDS:
        vetted = row[f"vetted_{f}"]
        out[f] = "not vetted" if vetted is None else "vetted" if vetted == row[f] else "vetted (source differs)"
    return out


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.vetting import vetting_status

    with open_for_reading(settings) as wh:
        rows = vetting_status(wh).to_dicts()
    for r in rows:
        r["state"] = _state(r)
    if args.unvetted:
        rows = [r for r in rows if any(s != "vetted" for s in r["state"].values())]
    lines = []
    for r in rows:
        lines.append(f"{r['unique_id']}  (vetted by {r['vetted_by'] or 'nobody'})")
        for f in _FIELDS:
            shown = r[f"vetted_{f}"] if r[f"vetted_{f}"] is not None else "-"
            lines.append(f"    {f:<6} {r['state'][f]:<24} published: {shown!r}  source: {r[f]!r}")
    print_result(rows, args.json, "\n".join(lines) or "no series")
    return 0


def _approve(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.vetting import approve

    user = authenticated_user(args, settings, "series.vet").name
    with open_warehouse(settings, args.wait) as wh:
        rows = approve(
            wh,
            settings,
            args.unique_ids,
            user=user,
            at=utc_now(),
            name=args.name,
            region=args.region,
            unit=args.unit,
        )
    text = "\n".join(
        f"{r['unique_id']} vetted by {user}: name {r['name']!r}, region {r['region']!r}, unit {r['unit']!r}"
        for r in rows
    )
    print_result(rows, args.json, text)
    return 0


def _unapprove(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.runs import audit
    from warehouse.vetting import unvet_series

    user = authenticated_user(args, settings, "series.vet").name
    at = utc_now()
    with open_warehouse(settings, args.wait) as wh, wh.transaction():
        removed = unvet_series(wh, args.unique_ids)
        if removed != len(set(args.unique_ids)):
            raise EWSError(
                f"{len(set(args.unique_ids)) - removed} of the series named have no vetted row; nothing was withdrawn",
                fix="see `ews series list` for the vetted series",
            )
        for uid in args.unique_ids:
            audit(wh, at=at, actor=user, action="series.unvetted", target=uid)
    print_result(
        {"unvetted": args.unique_ids}, args.json, f"withdrawn from the vetted catalogue: {', '.join(args.unique_ids)}"
    )
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    series = sub.add_parser("series", help="the vetted catalogue: names, regions and units published text may quote")
    ssub = series.add_subparsers(dest="series_command", required=True)
    p = ssub.add_parser("list", parents=[common], help="each series' source text beside its vetted text")
    p.add_argument("--unvetted", action="store_true", help="only series with a field not vetted")
    p.set_defaults(func=_list)
    p = ssub.add_parser(
        "approve",
        parents=[common],
        help="vet series' stored name, region and unit (or the display text given) for publication",
    )
    p.add_argument("unique_ids", nargs="+", metavar="ID")
    p.add_argument("--name", help="the display name to publish (one series at a time)")
    p.add_argument("--region", help="the region to publish instead of the stored one")
    p.add_argument("--unit", help="the unit to publish instead of the stored one")
    add_credential_arguments(p)
    p.set_defaults(func=_approve)
    p = ssub.add_parser("unapprove", parents=[common], help="withdraw series from the vetted catalogue")
    p.add_argument("unique_ids", nargs="+", metavar="ID")
    add_credential_arguments(p)
    p.set_defaults(func=_unapprove)
