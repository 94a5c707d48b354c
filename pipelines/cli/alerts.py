"""``ews alerts ...``, ``ews export cap``, ``ews deliver ...``, ``ews llm ...`` and
``ews evaluate feedback``.

Review and admin commands (``ack``, ``approve``, ``reject``, ``silence``, ``unsilence``,
``feedback``, ``cancel``, ``ews llm`` switches, ``ews deliver subscribe/unsubscribe``) act for
an authenticated account: ``EWS_TOKEN`` or ``--user NAME --password-stdin``
(:mod:`pipelines.cli.credentials`); its role is checked with ``alerts.permissions.authorize``
before the warehouse is opened, and the audit log records its name. Each command opens the
warehouse once, acts through ``warehouse.review`` / ``warehouse.alerting`` and prints a result
(``--json`` for one object).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.clock import Clock, utc_now
from core.errors import EWSError, LLMError, WarehouseLockedError
from core.settings import Settings
from core.vocabulary import WARNING_LEVEL_NAMES, AlertStatus, Level, Verdict
from pipelines.cli.credentials import add_credential_arguments, authenticated_user
from pipelines.cli.main import open_for_reading, open_warehouse, print_result, setup_logging

__all__ = ["register", "add_feedback_parser"]


# -- alerts --------------------------------------------------------------------------------
def _alerts_list(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse import alerting

    with open_for_reading(settings) as wh:
        frame = alerting.read_alerts_full(wh, statuses=None if args.status == "all" else [args.status])
    rows = frame.select(
        "alert_id", "level", "status", "release_state", "hazard", "region", "unique_id", "ds", "review_flag"
    ).to_dicts()
    text = (
        "\n".join(
            f"{r['alert_id']}  {r['level']:<6} {r['status']:<9} {r['release_state']:<10} "
            f"{r['hazard']} / {r['region']} (lead {r['unique_id']}, {str(r['ds'])[:10]})"
            + (f"  FLAG: {r['review_flag']}" if r["review_flag"] else "")
            for r in rows
        )
        or "no alerts"
    )
    print_result(rows, args.json, text)
    return 0


def _alerts_show(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse import alerting, review

    with open_warehouse(settings, args.wait) as wh:
        alert = review.read_alert(wh, args.alert_id)
        history = review.read_transitions(wh, args.alert_id).to_dicts()
        judgments = alerting.read_judgments(wh, [args.alert_id]).to_dicts()
        messages = (
            alerting.read_cap_messages(wh, alert_id=args.alert_id)
            .select("identifier", "msg_type", "status", "sent", "refs")
            .to_dicts()
        )
    data = {"alert": alert, "transitions": history, "judgments": judgments, "cap_messages": messages}
    lines = [f"{alert['alert_id']}: {alert['level']} {alert['status']} ({alert['release_state']})"]
    lines += [f"  {t['at_time']} {t['action']} by {t['actor']}: {t['reason'] or ''}" for t in history]
    lines += [f"  judgment ({j['writer']}, {j['model'] or 'template'}): {j['text_en']}" for j in judgments[-1:]]
    lines += [f"  CAP {m['identifier']} {m['msg_type']} {m['status']}" for m in messages]
    print_result(data, args.json, "\n".join(lines))
    return 0


#: CLI review command -> the permission it needs (alerts.permissions.ACTIONS)
_REVIEW_PERMISSION = {
    "ack": "alert.acknowledge",
    "approve": "alert.approve",
    "reject": "alert.reject",
    "silence": "alert.silence",
    "unsilence": "alert.silence",
    "feedback": "alert.feedback",
    "cancel": "alert.cancel",
}


def _review_action(name: str) -> Callable[[argparse.Namespace, Settings], int]:
    def command(args: argparse.Namespace, settings: Settings) -> int:
        from pipelines.delivery import publish_pending
        from warehouse import review

        args.user = authenticated_user(args, settings, _REVIEW_PERMISSION[name]).name  # what the audit records
        clock = Clock.from_settings(settings)
        now = clock.now
        with open_warehouse(settings, args.wait) as wh:
            if name == "ack":
                result = review.acknowledge(wh, alert_id=args.alert_id, user=args.user, at=now, note=args.note)
            elif name == "approve":
                result = review.approve_release(wh, alert_id=args.alert_id, user=args.user, at=now)
            elif name == "reject":
                result = review.reject_release(wh, alert_id=args.alert_id, user=args.user, at=now, reason=args.reason)
            elif name == "silence":
                result = review.silence(
                    wh,
                    alert_id=args.alert_id,
                    user=args.user,
                    at=now,
                    reason=args.reason,
                    until=now + timedelta(hours=args.hours),
                )
            elif name == "feedback":
                result = review.mark_feedback(
                    wh, alert_id=args.alert_id, user=args.user, at=now, verdict=args.verdict, note=args.note
                )
            elif name == "cancel":
                result = review.cancel_alert(wh, alert_id=args.alert_id, user=args.user, at=now, reason=args.reason)
            else:  # unsilence
                review.lift_silence(wh, silence_id=args.silence_id, user=args.user, at=now)
                result = {"silence_id": args.silence_id, "lifted_by": args.user}
            published = publish_pending(wh, settings, clock=clock) if name in ("approve", "cancel") else []
        data = {"action": name, "result": result, "cap_published": published}
        print_result(
            data,
            args.json,
            f"{name}: done"
            + (f"; CAP {', '.join(published)} written to {settings.path('alerts')}" if published else ""),
        )
        return 0

    return command


def _alerts_silences(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse import review

    with open_warehouse(settings, args.wait) as wh:
        rows = review.read_silences(wh, active_at=None if args.all else utc_now()).to_dicts()
    print_result(
        rows,
        args.json,
        "\n".join(
            f"{r['silence_id']} {r['hazard']} / {r['region']} by {r['owner']} until {r['until']}: {r['reason']}"
            for r in rows
        )
        or "no silences in force",
    )
    return 0


def _alerts_notices(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse import alerting

    with open_warehouse(settings, args.wait) as wh:
        rows = alerting.read_notices(wh).to_dicts()
    print_result(
        rows,
        args.json,
        "\n".join(
            f"{r['notice_id']} {r['kind']} {r['unique_id']} ({r['hazard']} / {r['region']}): {r['detail']}"
            for r in rows
        )
        or "no data-gap notices",
    )
    return 0


# -- export and delivery ---------------------------------------------------------------------
def _export_cap(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.cap import validate_cap
    from pipelines.delivery import export_cap, publish_pending

    try:  # publish what is pending first when no writer runs; else export what is published
        with open_warehouse(settings, args.wait) as wh:
            publish_pending(wh, settings, clock=Clock.from_settings(settings))
            paths = export_cap(wh, Path(args.out))
    except WarehouseLockedError:
        with open_for_reading(settings) as wh:
            paths = export_cap(wh, Path(args.out))
    invalid = [str(p) for p in paths if validate_cap(p.read_bytes())]
    data = {"out": args.out, "files": [str(p) for p in paths], "invalid": invalid}
    print_result(
        data,
        args.json,
        f"{len(paths)} CAP 1.2 file(s) in {args.out}; {len(paths) - len(invalid)} validate against the CAP 1.2 XSD",
    )
    return 1 if invalid else 0


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.delivery import publish_pending, relay
    from warehouse import alerting

    setup_logging(settings, args.quiet)
    with open_warehouse(settings, args.wait) as wh:
        published = publish_pending(wh, settings, clock=Clock.from_settings(settings))
        report = relay(wh, settings, wait_seconds=args.wait_retries)
        counts = alerting.delivery_counts(wh)
        dead = alerting.read_deliveries(wh, state="dead").select("delivery_id", "attempts", "last_error").to_dicts()
    data = {
        "published": published,
        "attempts": report.attempts,
        "delivered_now": report.delivered,
        "retrying": report.retried,
        "dead_now": report.dead,
        "totals": counts,
        "dead_letters": dead,
    }
    text = (
        f"published {len(published)} CAP message(s); {report.attempts} attempt(s): {report.delivered} delivered, "
        f"{report.retried} to retry, {report.dead} dead-lettered. Totals {counts}"
    )
    for d in dead:
        text += f"\n  DEAD {d['delivery_id']} after {d['attempts']} attempts: {d['last_error']}"
    print_result(data, args.json, text)
    return 0


def _subscribe(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse import alerting
    from warehouse.runs import audit

    args.user = authenticated_user(args, settings, "recipients.manage").name
    with open_warehouse(settings, args.wait) as wh:
        alerting.add_recipient(
            wh,
            recipient_id=args.id,
            name=args.name,
            channel=args.channel,
            target=args.target,
            regions=args.region or [],
            hazards=args.hazard or [],
            indicators=args.indicator or [],
            min_level=args.min_level,
            at=utc_now(),
        )
        audit(
            wh,
            at=utc_now(),
            actor=args.user,
            action="recipient.subscribed",
            target=args.id,
            detail={
                "channel": args.channel,
                "target": args.target,
                "regions": args.region,
                "hazards": args.hazard,
                "indicators": args.indicator,
                "min_level": args.min_level,
            },
        )
    print_result({"recipient_id": args.id}, args.json, f"recipient {args.id} subscribed ({args.channel} {args.target})")
    return 0


def _unsubscribe(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse import alerting
    from warehouse.runs import audit

    args.user = authenticated_user(args, settings, "recipients.manage").name
    with open_warehouse(settings, args.wait) as wh:
        if not alerting.deactivate_recipient(wh, args.id):
            raise EWSError(f"no active recipient {args.id!r}", fix="list them with `ews deliver recipients`")
        audit(wh, at=utc_now(), actor=args.user, action="recipient.unsubscribed", target=args.id)
    print_result({"recipient_id": args.id}, args.json, f"recipient {args.id} unsubscribed")
    return 0


def _recipients(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse import alerting

    with open_warehouse(settings, args.wait) as wh:
        rows = alerting.read_recipients(wh).to_dicts()
    print_result(
        rows,
        args.json,
        "\n".join(
            f"{r['recipient_id']} {r['name']}: {r['channel']} {r['target']} min {r['min_level']} "
            f"regions {r['regions']} hazards {r['hazards']} indicators {r['indicators']}"
            for r in rows
        )
        or "no recipients",
    )
    return 0


# -- LLM incident playbook -----------------------------------------------------------------
def _llm(action: str) -> Callable[[argparse.Namespace, Settings], int]:
    def command(args: argparse.Namespace, settings: Settings) -> int:
        from pipelines.llm import EMBEDDED, key_file
        from warehouse import alerting
        from warehouse.runs import audit

        if action != "status":
            permission = "llm.switch" if action in ("off", "on") else "llm.endpoints"
            args.user = authenticated_user(args, settings, permission).name
        now = utc_now()
        base = getattr(args, "base_url", None) or settings.llm.base_url or EMBEDDED
        with open_warehouse(settings, args.wait) as wh:
            if action == "off":
                alerting.set_control(
                    wh, "path", {"state": "off", "by": args.user, "reason": args.reason}, by=args.user, at=now
                )
                audit(wh, at=now, actor=args.user, action="llm.path_off", target=None, detail={"reason": args.reason})
                text = "LLM path is OFF: judgments are written by the template until `ews llm on`"
            elif action == "on":
                alerting.set_control(wh, "path", {"state": "on", "by": args.user}, by=args.user, at=now)
                audit(wh, at=now, actor=args.user, action="llm.path_on", target=None)
                text = "LLM path is ON (subject to [llm] enabled and revocations)"
            elif action == "revoke":
                alerting.set_control(
                    wh, f"revoked:{base}", {"by": args.user, "reason": args.reason}, by=args.user, at=now
                )
                audit(
                    wh,
                    at=now,
                    actor=args.user,
                    action="llm.endpoint_revoked",
                    target=base,
                    detail={"reason": args.reason},
                )
                text = f"endpoint {base} revoked: no prompt goes to it until `ews llm restore --base-url {base}`"
            elif action == "restore":
                alerting.set_control(wh, f"revoked:{base}", None, by=args.user, at=now)
                audit(wh, at=now, actor=args.user, action="llm.endpoint_restored", target=base)
                text = f"endpoint {base} restored"
            elif action == "rotate-key":
                new_key = (
                    Path(args.key_file).read_text(encoding="utf-8") if args.key_file else sys.stdin.readline()
                ).strip()
                if len(new_key) < 16:
                    raise LLMError(
                        "the new key is shorter than 16 characters",
                        fix="pass the key issued by the endpoint (stdin or --key-file)",
                    )
                path = key_file(settings)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(new_key + "\n", encoding="utf-8")
                os.chmod(tmp, 0o600)
                os.replace(tmp, path)
                fingerprint = hashlib.sha256(new_key.encode()).hexdigest()[:12]
                alerting.set_control(wh, "key_fingerprint", {"sha256_12": fingerprint}, by=args.user, at=now)
                audit(
                    wh,
                    at=now,
                    actor=args.user,
                    action="llm.key_rotated",
                    target=base,
                    detail={"sha256_12": fingerprint, "file": str(path)},
                )
                text = (
                    f"new key stored in {path} (fingerprint {fingerprint}); revoke the old key at the "
                    "endpoint's issuer now"
                )
            controls = alerting.read_controls(wh).to_dicts()
        print_result(
            {"action": action, "controls": controls},
            args.json,
            text
            if action != "status"
            else "\n".join(f"{c['name']} = {c['value']} (by {c['set_by']} at {c['set_at']})" for c in controls)
            or f"no switches set; [llm] enabled={settings.llm.enabled}, endpoint {base}",
        )
        return 0

    return command


# -- evaluate feedback ---------------------------------------------------------------------
def _evaluate_feedback(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.feedback import threshold_moves
    from warehouse import review

    with open_warehouse(settings, args.wait) as wh:
        feedback = review.read_feedback(wh)
    latest = feedback.sort("feedback_id").unique(subset=["alert_id"], keep="last") if feedback.height else feedback
    moves = threshold_moves(
        latest.select("level", "score", "verdict")
        if latest.height
        else pl.DataFrame(schema={"level": pl.Utf8, "score": pl.Float64, "verdict": pl.Utf8}),
        settings.risk.thresholds(),
    )
    rows = moves.to_dicts()
    text = (
        "\n".join(
            f"{r['level']}: threshold {r['threshold']}, {r['confirmed']} confirmed / {r['false_alarms']} false alarms "
            f"(precision {r['precision']}); raising it to {r['suggested_threshold']} would remove "
            f"{r['false_alarms_removed']} false alarm(s) and lose {r['confirmed_lost']} confirmed"
            for r in rows
        )
        or "no feedback yet: analysts add it with `EWS_TOKEN=... ews alerts feedback ID --verdict ...`"
    )
    print_result({"verdicts": latest.height, "levels": rows}, args.json, text)
    return 0


def add_feedback_parser(evaluate_subparsers: Any, common: argparse.ArgumentParser) -> None:
    """`ews evaluate feedback`: how stored analyst verdicts would move the thresholds."""
    p = evaluate_subparsers.add_parser(
        "feedback", parents=[common], help="how analyst feedback would move the risk thresholds"
    )
    p.set_defaults(func=_evaluate_feedback)


# -- registration --------------------------------------------------------------------------
def register(sub: Any, common: argparse.ArgumentParser) -> None:
    alerts = sub.add_parser("alerts", help="review alerts: list, show, ack, approve, reject, silence, feedback, cancel")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    p = asub.add_parser("list", parents=[common], help="alerts with level, status and release state")
    p.add_argument("--status", default=AlertStatus.OPEN.value, choices=[*AlertStatus.values(), "all"])
    p.set_defaults(func=_alerts_list)
    p = asub.add_parser("show", parents=[common], help="one alert: transitions, judgment, CAP messages")
    p.add_argument("alert_id")
    p.set_defaults(func=_alerts_show)
    for name, helptext in (
        ("ack", "acknowledge"),
        ("approve", "release an orange/red alert (duty officer)"),
        ("reject", "hold an alert back, with a reason"),
        ("silence", "silence the alert's hazard + region for some hours"),
        ("feedback", "mark confirmed or false alarm"),
        ("cancel", "withdraw a wrong alert; sends CAP Cancel if it went out"),
    ):
        p = asub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("alert_id")
        add_credential_arguments(p)
        if name in ("ack", "feedback"):
            p.add_argument("--note")
        if name in ("reject", "silence", "cancel"):
            p.add_argument("--reason", required=True)
        if name == "silence":
            p.add_argument("--hours", type=float, default=6.0)
        if name == "feedback":
            p.add_argument("--verdict", required=True, choices=list(Verdict.values()))
        p.set_defaults(func=_review_action(name))
    p = asub.add_parser("unsilence", parents=[common], help="lift a silence early")
    p.add_argument("silence_id")
    add_credential_arguments(p)
    p.set_defaults(func=_review_action("unsilence"))
    p = asub.add_parser("silences", parents=[common], help="silences in force (--all: every one)")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=_alerts_silences)
    asub.add_parser("notices", parents=[common], help="data-gap notices (stale or gapped sources)").set_defaults(
        func=_alerts_notices
    )

    export = sub.add_parser("export", help="export released messages")
    esub = export.add_subparsers(dest="export_what", required=True)
    p = esub.add_parser("cap", parents=[common], help="write every released alert as CAP 1.2 XML into --out")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_export_cap)

    deliver = sub.add_parser("deliver", parents=[common], help="publish pending CAP and relay it to recipients")
    deliver.add_argument(
        "--wait-retries",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep retrying failed deliveries for up to this long",
    )
    deliver.set_defaults(func=_deliver)
    dsub = deliver.add_subparsers(dest="deliver_command", required=False)
    p = dsub.add_parser("subscribe", parents=[common], help="add or update a recipient")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--channel", required=True, choices=["folder", "webhook"])
    p.add_argument("--target", required=True, help="folder path or webhook URL")
    p.add_argument("--region", action="append")
    p.add_argument("--hazard", action="append")
    p.add_argument("--indicator", action="append", help="unique_id glob, e.g. 'tohoku_*'")
    p.add_argument("--min-level", default=Level.BLUE.label, choices=list(WARNING_LEVEL_NAMES))
    add_credential_arguments(p)
    p.set_defaults(func=_subscribe)
    p = dsub.add_parser("unsubscribe", parents=[common], help="deactivate a recipient")
    p.add_argument("id")
    add_credential_arguments(p)
    p.set_defaults(func=_unsubscribe)
    dsub.add_parser("recipients", parents=[common], help="active recipients").set_defaults(func=_recipients)

    llm = sub.add_parser("llm", help="LLM incident playbook: status, off, on, revoke, restore, rotate-key")
    lsub = llm.add_subparsers(dest="llm_command", required=True)
    lsub.add_parser("status", parents=[common], help="switches and revocations").set_defaults(func=_llm("status"))
    for name, helptext in (
        ("off", "switch the LLM path off (template only)"),
        ("on", "switch it back on"),
        ("revoke", "stop sending prompts to an endpoint"),
        ("restore", "undo a revocation"),
        ("rotate-key", "store a new endpoint key (stdin or --key-file)"),
    ):
        p = lsub.add_parser(name, parents=[common], help=helptext)
        add_credential_arguments(p)
        if name in ("off", "revoke"):
            p.add_argument("--reason", required=True)
        if name in ("revoke", "restore", "rotate-key"):
            p.add_argument("--base-url", help="endpoint (default: [llm] base_url, or 'embedded')")
        if name == "rotate-key":
            p.add_argument("--key-file")
        p.set_defaults(func=_llm(name))
