"""Publication and delivery: outbox → CAP files → recipients (folder, HTTP webhook).

- :func:`publish_pending` renders every outbox event that has no CAP message yet: a GB/T
  35965.1 identifier (issuer + ``_YYYYMMDDhhmmss``; the next free second if taken), references
  to the alert's earlier messages, status Exercise on a replay clock else Actual, XSD
  validation, the file ``EWS_HOME/alerts/<identifier>.xml``, and one delivery row per
  recipient whose subscription matches (region, hazard, indicator glob, minimum level).
  Message row, outbox mark and deliveries commit together.
- :func:`relay` delivers due rows at least once: a folder recipient gets the file (written
  atomically), a webhook gets ``POST`` of the XML (2xx = delivered). A failure is retried with
  exponential backoff; after ``[delivery] max_attempts`` the row is dead-lettered with the
  last error, visible in ``ews deliver --json`` and ``ews deliver dead``. Each attempt commits on
  its own, so a crash can only cause a resend, never a loss; receivers de-duplicate on the
  CAP identifier (sent as ``X-CAP-Identifier`` too).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import polars as pl

from alerts.cap import Area, CapReference, build_cap, cap_datetime, cap_identifier, judgment_for_cap, validate_cap
from core.clock import Clock, utc_now
from core.errors import ConfigError
from core.settings import Settings
from core.vocabulary import LEVEL_RANK
from pipelines.vetting import Catalogue, load_catalogue, publishable, vetting_checks
from warehouse import Warehouse, alerting
from warehouse.runs import audit
from warehouse.series import read_series_meta

__all__ = [
    "publish_pending",
    "relay",
    "RelayReport",
    "route",
    "area_for",
    "published_names",
    "sender_offset",
    "export_cap",
]


def sender_offset(settings: Settings) -> timezone:
    text = settings.alerts.utc_offset
    try:
        sign = -1 if text.startswith("-") else 1
        hours, minutes = text.lstrip("+-").split(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    except ValueError:
        raise ConfigError(
            f"[alerts] utc_offset {text!r} is not like +08:00",
            fix='write e.g. utc_offset = "+08:00" (China) or "+00:00"',
        ) from None


def area_for(meta: dict[str, Any] | None, region: str | None, settings: Settings) -> Area:
    """The CAP area of an alert: the region's box as a polygon when the catalogue defines one,
    and a circle around the lead series' coordinates when it has them."""
    from ingest.sources.catalogue import SEISMIC_REGIONS, SST_REGIONS

    boxes = [b for group in SEISMIC_REGIONS.values() for b in group] + list(SST_REGIONS)
    polygons = []
    for box in boxes:
        if box["name"] == region:
            lon0, lon1 = (((box["min_lon"] + 180) % 360) - 180, ((box["max_lon"] + 180) % 360) - 180)
            polygons.append(
                ((box["min_lat"], lon0), (box["max_lat"], lon0), (box["max_lat"], lon1), (box["min_lat"], lon1))
            )
    circles = []
    if meta and meta.get("lat") is not None and meta.get("lon") is not None:
        circles.append((float(meta["lat"]), float(meta["lon"]), settings.alerts.circle_km))
    return Area(desc=region or "unspecified region", polygons=tuple(polygons), circles=tuple(circles))


def published_names(
    series_name: str, alert: dict[str, Any], settings: Settings, catalogue: Catalogue
) -> tuple[str, dict[str, Any], list[str]]:
    """The series name, a copy of ``alert`` and the fields not vetted, as a CAP message may show
    them: the name and region come from the vetted catalogue (:mod:`pipelines.vetting`; one
    not vetted is the series id, or no region), and one the injection screen blocks
    ([guardrails]; the same decision the judge made) is replaced by
    :data:`alerts.guardrails.WITHHELD`. The warehouse rows keep the original text (routing by
    region uses it)."""
    view, _, how = publishable(
        {"unique_id": alert["unique_id"], "name": series_name, "region": alert.get("region")}, catalogue, settings
    )
    unvetted = [f for f in vetting_checks(how).get("unvetted", []) if f in ("name", "region")]
    return view["name"], {**alert, "region": view["region"]}, unvetted


def route(message: dict[str, Any], recipients: pl.DataFrame) -> list[str]:
    """Ids of the recipients whose subscription matches a message (empty list = any)."""
    chosen = []
    for r in recipients.iter_rows(named=True):
        regions, hazards, indicators = (json.loads(r[k]) for k in ("regions", "hazards", "indicators"))
        if regions and message["region"] not in regions:
            continue
        if hazards and message["hazard"] not in hazards:
            continue
        if indicators and not any(fnmatch.fnmatch(message["unique_id"], p) for p in indicators):
            continue
        if LEVEL_RANK[message["level"]] < LEVEL_RANK[r["min_level"]]:
            continue
        chosen.append(r["recipient_id"])
    return chosen


def publish_pending(
    wh: Warehouse, settings: Settings, *, now: datetime | None = None, clock: Clock | None = None
) -> list[str]:
    """Render pending outbox events as CAP; returns the new identifiers (see module docstring).

    ``clock``: the command's clock (``now`` stamps the messages; a replay day makes them
    Exercise); default: built from ``settings`` at ``now`` (default: the wall clock).
    """
    clock = Clock.resolve(settings, clock=clock, now=now)
    now = clock.now
    events = alerting.pending_outbox(wh)
    if events.height == 0:
        return []
    tz = sender_offset(settings)
    status = "Exercise" if clock.replaying else "Actual"
    meta = {r["unique_id"]: r for r in read_series_meta(wh).iter_rows(named=True)}
    catalogue = load_catalogue(wh, settings)
    recipients = alerting.read_recipients(wh)
    folder = settings.path("alerts")
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for event in events.iter_rows(named=True):
        alert = json.loads(event["snapshot"])
        for key in ("ds", "expires_at"):
            if alert.get(key):
                alert[key] = datetime.fromisoformat(alert[key])
        sent = now.replace(tzinfo=UTC).astimezone(tz).replace(microsecond=0)
        candidates = [cap_identifier(settings.alerts.issuer, sent + timedelta(seconds=i)) for i in range(600)]
        identifier = alerting.next_free_identifier(wh, candidates)
        sent = sent + timedelta(seconds=candidates.index(identifier))
        refs = [
            CapReference(settings.alerts.sender, ident, sent_text)
            for ident, sent_text in alerting.cap_history(wh, event["alert_id"])
        ]
        judgments = alerting.read_judgments(wh, [event["alert_id"]])
        judgment = judgment_for_cap(judgments.row(-1, named=True)) if judgments.height else None
        info = meta.get(alert["unique_id"])
        classification = str((info or {}).get("classification") or "public")
        series_name, shown_alert, unvetted = published_names(
            info["name"] if info else alert["unique_id"], alert, settings, catalogue
        )
        xml = build_cap(
            shown_alert,
            identifier=identifier,
            sender=settings.alerts.sender,
            sent=sent,
            status=status,
            msg_type=event["msg_type"],
            judgment=judgment,
            area=dataclasses.replace(
                area_for(info, alert.get("region"), settings),
                desc=shown_alert.get("region") or "unspecified region",
            ),
            series_name=series_name,
            references=refs,
            note=(
                f"Exercise: replay as of {clock.as_of}, not a real warning"
                if clock.replaying
                else (event["reason"] if event["msg_type"] == "Cancel" else None)
            ),
            sender_name=settings.alerts.sender_name,
            detail=settings.alerts.cap_detail_for(classification),
            classification=classification,
            unvetted=unvetted,
        )
        errors = validate_cap(xml)
        if errors:
            # never publish an invalid message: the event stays pending and the audit says why
            audit(
                wh, at=now, actor="relay", action="cap.invalid", target=event["event_id"], detail={"errors": errors[:5]}
            )
            continue
        message = {
            "identifier": identifier,
            "alert_id": event["alert_id"],
            "msg_type": event["msg_type"],
            "status": status,
            "sent": cap_datetime(sent),
            "refs": " ".join(r.text() for r in refs) or None,
            "level": alert["level"],
            "hazard": alert["hazard"],
            "region": alert.get("region"),
            "xml": xml.decode("utf-8"),
            "valid": True,
            "unique_id": alert["unique_id"],
        }
        with wh.transaction():
            alerting.insert_cap_message(wh, event_id=event["event_id"], message=message, at=now)
            targets = route(message, recipients)
            alerting.create_deliveries(wh, identifier=identifier, recipient_ids=targets, at=now)
            audit(
                wh,
                at=now,
                actor="relay",
                action="cap.released",
                target=identifier,
                detail={
                    "alert_id": event["alert_id"],
                    "msg_type": event["msg_type"],
                    "status": status,
                    "level": alert["level"],
                    "recipients": targets,
                    "references": message["refs"],
                },
            )
        _atomic_write(folder / f"{identifier}.xml", xml)
        made.append(identifier)
    return made


def export_cap(wh: Warehouse, out: Path) -> list[Path]:
    """Write every stored CAP message into ``out`` (idempotent: same names, same bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for row in alerting.read_cap_messages(wh).iter_rows(named=True):
        path = out / f"{row['identifier']}.xml"
        _atomic_write(path, row["xml"].encode("utf-8"))
        written.append(path)
    return written


@dataclass
class RelayReport:
    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def relay(
    wh: Warehouse,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> RelayReport:
    """Deliver every due delivery; with ``wait_seconds`` keep going (sleeping until the next
    retry is due) until nothing is pending or the time is up. Bounded either way."""
    report = RelayReport()
    deadline = time.monotonic() + wait_seconds
    d = settings.delivery
    for _round in range(10_000):
        due = alerting.due_deliveries(wh, at=clock())
        for row in due.iter_rows(named=True):
            ok, error = _deliver(row, timeout=d.timeout_seconds)
            report.attempts += 1
            attempt = row["attempts"] + 1
            backoff = timedelta(seconds=min(d.backoff_seconds * 2 ** (attempt - 1), d.max_backoff_seconds))
            now = clock()
            with wh.transaction():
                state = alerting.record_delivery_attempt(
                    wh,
                    delivery_id=row["delivery_id"],
                    at=now,
                    ok=ok,
                    error=error,
                    max_attempts=d.max_attempts,
                    backoff=backoff,
                )
                if state != "pending":
                    audit(
                        wh,
                        at=now,
                        actor="relay",
                        action=f"delivery.{state}",
                        target=row["delivery_id"],
                        detail={
                            "identifier": row["identifier"],
                            "recipient": row["recipient_id"],
                            "channel": row["channel"],
                            "attempts": attempt,
                            "error": error,
                        },
                    )
            if state == "delivered":
                report.delivered += 1
            elif state == "dead":
                report.dead += 1
                report.errors.append(f"{row['delivery_id']}: dead after {attempt} attempts: {error}")
            else:
                report.retried += 1
        pending = alerting.read_deliveries(wh, state="pending")
        if pending.height == 0 or time.monotonic() >= deadline:
            break
        next_due = cast(datetime, pending.get_column("next_attempt_at").min())  # TIMESTAMP NOT NULL, rows here
        pause = max(0.0, (next_due - clock()).total_seconds())
        if time.monotonic() + pause > deadline:
            break
        if due.height == 0 or pause > 0:
            sleep(min(pause, 1.0) if pause > 0 else 0.05)
    return report


def _deliver(row: dict[str, Any], *, timeout: float) -> tuple[bool, str | None]:
    body = row["xml"].encode("utf-8")
    if row["channel"] == "folder":
        try:
            target = Path(row["target"])
            target.mkdir(parents=True, exist_ok=True)
            _atomic_write(target / f"{row['identifier']}.xml", body)
            return True, None
        except OSError as exc:
            return False, f"folder {row['target']}: {exc}"
    # webhook targets are http(s) only: warehouse.alerting.add_recipient refuses any other scheme
    request = urllib.request.Request(  # noqa: S310
        row["target"],
        data=body,
        method="POST",
        headers={"Content-Type": "application/cap+xml; charset=utf-8", "X-CAP-Identifier": row["identifier"]},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s), see above
            return (200 <= response.status < 300), None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code} from {row['target']}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return False, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)} ({row['target']})"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
