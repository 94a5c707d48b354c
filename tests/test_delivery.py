"""Delivery that loses nothing (pipelines/delivery.py): real HTTP receivers on 127.0.0.1 that
fail, delay, duplicate or are down, a folder recipient, routing, and the CLI around it.

After any run: delivered + dead-lettered = released deliveries, and every receiver can
de-duplicate on the CAP identifier.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from alerts.cap import parse_cap, validate_cap
from core.settings import load_settings
from pipelines.cli.main import main
from pipelines.delivery import publish_pending, relay
from tests.sql import sql_rows
from warehouse import Warehouse, alerting, credentials, review, users

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 22, 0, 38, 5)


class Receiver:
    """A real HTTP server on loopback with a fault mode; records every POST it gets."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.posts: list[str] = []
        self.seen: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ident = parse_cap(body)["identifier"]
                assert ident == self.headers["X-CAP-Identifier"]
                outer.seen[ident] += 1
                outer.posts.append(ident)
                n = outer.seen[ident]
                if outer.mode == "flaky" and n <= 2:
                    self.send_response(503)
                elif outer.mode == "slow" and n == 1:
                    time.sleep(1.2)  # longer than the relay's timeout: the relay must retry
                    self.send_response(200)
                elif outer.mode == "duplicate" and n == 1:
                    self.send_response(500)  # stored it, answered an error: the relay resends
                else:
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/cap"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def home(tmp_path: Path):
    env = {
        "EWS_DELIVERY__BACKOFF_SECONDS": "0.05",
        "EWS_DELIVERY__MAX_BACKOFF_SECONDS": "0.2",
        "EWS_DELIVERY__MAX_ATTEMPTS": "4",
        "EWS_DELIVERY__TIMEOUT_SECONDS": "0.5",
    }
    settings = load_settings(tmp_path, environ=env)
    raw = pl.read_csv(ROOT / "tests" / "data" / "fred_UNRATE.csv", try_parse_dates=True).drop_nulls("value")
    peaks = raw.sort("value", descending=True).head(3)  # the three highest real readings
    with Warehouse.open(settings.warehouse_path) as wh:
        rows = []
        for i, (day, value) in enumerate(peaks.iter_rows()):
            ds = datetime.combine(day, datetime.min.time())
            rows.append(
                {
                    "alert_id": f"a_unrate_{i}",
                    "run_id": "r_t",
                    "unique_id": "unrate",
                    "domain": "market",
                    "region": ["US", "US-Midwest", "US-South"][i],
                    "hazard": "market_risk",
                    "level": ["red", "orange", "yellow"][i],
                    "status": "open",
                    "ds": ds,
                    "score": 0.999,
                    "evidence": json.dumps({"value": value}),
                    "opened_at": T0,
                    "updated_at": T0,
                    "release_state": "pending",
                    "expires_at": None,
                }
            )
        alerting.upsert_alert_rows(wh, pl.DataFrame(rows), run_id="r_t")
        yield settings, wh


def test_faulty_receivers_get_everything_once_deduplicated_and_the_dead_are_counted(home, tmp_path) -> None:
    settings, wh = home
    receivers = {mode: Receiver(mode) for mode in ("flaky", "slow", "duplicate")}
    try:
        for mode, receiver in receivers.items():
            alerting.add_recipient(
                wh, recipient_id=mode, name=f"{mode} bureau", channel="webhook", target=receiver.url, at=T0
            )
        alerting.add_recipient(
            wh, recipient_id="down", name="bureau offline", channel="webhook", target="http://127.0.0.1:9/cap", at=T0
        )  # discard port: nobody listens
        alerting.add_recipient(
            wh,
            recipient_id="desk",
            name="market desk",
            channel="folder",
            target=str(tmp_path / "desk"),
            min_level="orange",
            at=T0,
        )
        for i in range(3):
            review.approve_release(wh, alert_id=f"a_unrate_{i}", user="duty.li", at=T0)
        released = publish_pending(wh, settings, now=T0)
        assert len(released) == 3 and len(set(released)) == 3  # one identifier per second
        assert all(validate_cap(p.read_bytes()) == [] for p in settings.path("alerts").glob("*.xml"))

        report = relay(wh, settings, wait_seconds=30)
        counts = alerting.delivery_counts(wh)
        total = sql_rows(wh, "SELECT count(*) FROM deliveries")[0][0]
        # routing: 4 webhooks x 3 messages + the desk only for orange and red
        assert total == 3 * 4 + 2
        assert counts["pending"] == 0
        assert counts["delivered"] + counts["dead"] == total
        assert counts["dead"] == 3  # exactly the offline bureau's three, with a reason
        dead = alerting.read_deliveries(wh, state="dead")
        assert set(dead["recipient_id"]) == {"down"}
        assert all(a == 4 and "127.0.0.1:9" in e for a, e in zip(dead["attempts"], dead["last_error"], strict=True))
        for receiver in receivers.values():
            assert set(receiver.seen) == set(released)  # every message reached it (de-dup on identifier)
        assert receivers["flaky"].seen == Counter({r: 3 for r in released})  # 2 failures, then accepted
        assert len(receivers["duplicate"].posts) > len(set(receivers["duplicate"].posts))
        assert {p.name for p in (tmp_path / "desk").glob("*.xml")} == {f"{r}.xml" for r in released[:2]} | {
            f"{r}.xml"
            for r in released
            if parse_cap((settings.path("alerts") / f"{r}.xml").read_bytes())["info"][1]["severity"]
            in ("Extreme", "Severe")
        }
        audit = dict(
            sql_rows(wh, "SELECT action, count(*) FROM audit_log WHERE action LIKE 'delivery.%' GROUP BY action")
        )
        assert audit == {"delivery.delivered": counts["delivered"], "delivery.dead": 3}
        assert report.delivered == counts["delivered"] and report.dead == 3
        print(
            json.dumps(
                {
                    "released_deliveries": total,
                    "delivered": counts["delivered"],
                    "dead": counts["dead"],
                    "attempts": report.attempts,
                    "posts": {m: len(r.posts) for m, r in receivers.items()},
                }
            )
        )
    finally:
        for receiver in receivers.values():
            receiver.close()


def test_cli_cancel_sends_a_cap_cancel_that_references_the_alert(home, capsys, monkeypatch) -> None:
    settings, wh = home
    review.approve_release(wh, alert_id="a_unrate_0", user="duty.li", at=T0)
    publish_pending(wh, settings, now=T0)
    wh.close()
    con = users.connect_control(users.control_path(settings))
    users.add_user(con, name="duty.li", role="duty_officer", password="duty-li-pass-123", at=T0)
    monkeypatch.setenv("EWS_TOKEN", credentials.issue_api_token(con, "duty.li", at=T0))  # what `ews users token` prints
    con.close()
    code = main(
        [
            "--home",
            str(settings.home),
            "alerts",
            "cancel",
            "a_unrate_0",
            "--reason",
            "wrong series mapping",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["cap_published"]) == 1
    xml = (settings.path("alerts") / f"{out['cap_published'][0]}.xml").read_bytes()
    assert validate_cap(xml) == []
    cancel = parse_cap(xml)
    assert cancel["msgType"] == "Cancel"
    first = sorted(p.name for p in settings.path("alerts").glob("*.xml"))[0][:-4]
    assert first in cancel["references"]
    code = main(["--home", str(settings.home), "export", "cap", "--out", str(settings.home / "exported"), "--json"])
    assert code == 0 and len(json.loads(capsys.readouterr().out)["files"]) == 2
    code = main(["--home", str(settings.home), "alerts", "approve", "a_unrate_0"])
    assert code == 10 and "cannot approve alert a_unrate_0: it is cancelled" in capsys.readouterr().err
