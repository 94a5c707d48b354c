"""End to end in a real browser: `ews serve` on loopback, Debian's Chromium headless (Playwright).

Signs in, visits every page, fails on any Streamlit exception shown, approves an alert (applied
by `ews serve`'s supervisor, which writes its CAP file within seconds), and
saves the README's screenshots (docs/screenshots/overview.png, alert_inbox.png). XSS probe:
a series ingested with a script tag in its name, and a quarantined file whose error quotes an
HTML payload, are shown as text and never execute (no dialog, no global set by the payload).

Markdown probe (issue 20, finding 9): a series ingested with a Markdown image as its source and a
link as its licence (and the same payload in the source of a series with an alert), pointing
at a real HTTP server on another loopback host name; the pages show the characters, and the
browser never requests anything from that host. Sessions (finding 10): a reload keeps the
session, a deep link to a page leads through the sign-in form (no "Page not found") to that
page, and a signed-out session's cookie is worth nothing.

Needs `apt-get install chromium` (Playwright's own browser download does not work here; the
test uses /usr/bin/chromium). Skips, saying so, only when Chromium is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from tests.dashboard_home import PASSWORD, copy_home

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS_NAME = '<script>window.__ews_xss=1</script><img src=x onerror="window.__ews_xss=2;alert(2)">'
XSS_VALUE = '<img src=x onerror="window.__ews_xss=3;alert(3)">'
PAGES = ("Overview", "Markets", "Hazards", "Alert inbox", "Models", "Data", "Operations", "Audit")
HEADINGS = {"Audit": "Audit log"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason="Debian's Chromium is not installed: run `apt-get install -y chromium` (as root); "
        "`make test` installs it",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ews(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--home", str(home), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


class Tracker:
    """A real HTTP server on loopback standing for a foreign host: it records every request."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                outer.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"localhost:{self.server.server_port}"  # another origin than the app's 127.0.0.1
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tracker():  # noqa: ANN201
    t = Tracker()
    yield t
    t.close()


def _md_payload(host: str) -> tuple[str, str]:
    return f"![px](http://{host}/px.png)", f"[licence terms](http://{host}/link)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tracker: Tracker):  # noqa: ANN201 - yields (url, home)
    home = copy_home(tmp_path_factory, "browser")
    image, link = _md_payload(tracker.host)
    md_probe = _ews(
        home,
        "ingest",
        "file",
        str(ROOT / "tests" / "data" / "fred_UNRATE.csv"),
        "--format",
        "fred_csv",
        "--option",
        "unique_id=md_probe",
        "--option",
        "frequency=MS",
        "--option",
        f"source={image}",
        "--option",
        f"licence={link}",
        "--no-cycle",
        "--quiet",
    )
    assert md_probe.returncode == 0, md_probe.stderr
    # the same payload on a series that has an alert (its caption in the inbox was the leak)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        [(alert_id, uid)] = con.execute(
            "SELECT alert_id, unique_id FROM alerts WHERE release_state = 'released' ORDER BY alert_id LIMIT 1"
        ).fetchall()
        con.execute("UPDATE series SET source = ?, licence = ? WHERE unique_id = ?", [image, link, uid])
    (home / "md_probe_alert").write_text(alert_id)
    probe = _ews(
        home,
        "ingest",
        "file",
        str(ROOT / "tests" / "data" / "fred_UNRATE.csv"),
        "--format",
        "fred_csv",
        "--option",
        "unique_id=xss_probe",
        "--option",
        "frequency=MS",
        "--name",
        XSS_NAME,
        "--quiet",
    )
    assert probe.returncode == 0, probe.stderr
    broken = home / "broken_probe.csv"
    broken.write_text(f"date,value\n2024-01-01,3.1\n2024-02-01,{XSS_VALUE}\n", encoding="utf-8")
    quarantined = _ews(
        home,
        "ingest",
        "file",
        str(broken),
        "--format",
        "fred_csv",
        "--option",
        "unique_id=broken_probe",
        "--option",
        "frequency=MS",
        "--quiet",
    )
    assert quarantined.returncode == 4, quarantined.stderr
    port = _free_port()
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "--home", str(home), "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                pass
            assert proc.poll() is None, (home / "serve.log").read_text()
            assert time.monotonic() < deadline, "ews serve did not answer within 90 s"
            time.sleep(0.5)
        yield url, home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _settle(page, title: str) -> None:  # noqa: ANN001 - playwright Page
    """Wait for the page heading, then for Streamlit to finish running the script."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
    quiet_since = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').is_visible()
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"page {title!r} kept running for 60 s")


def _screenshot(page, path: Path) -> None:  # noqa: ANN001
    """The whole page: Streamlit scrolls an inner container, so grow the window to fit it."""
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"] *')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1440, "height": min(max(int(height) + 80, 1000), 4000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def _no_exception(page, where: str) -> None:  # noqa: ANN001
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, f"{where}: Streamlit exception shown: {shown.first.inner_text()}"
    assert page.evaluate("window.__ews_xss") is None, f"{where}: injected script ran"


def test_sign_in_visit_every_page_approve_and_xss_probe(server) -> None:
    from playwright.sync_api import sync_playwright

    url, home = server
    dialogs: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="domcontentloaded")
            _settle(page, "Sign in")
            _no_exception(page, "sign-in")
            page.get_by_role("textbox", name="User name").fill("admin_user")
            page.get_by_role("textbox", name="Password").fill(PASSWORD["admin"])
            page.get_by_role("button", name="Sign in").click()
            _settle(page, "Overview")
            the_map = page.locator('[data-testid="stDeckGlJsonChart"]')
            the_map.first.wait_for(state="attached", timeout=60_000)  # deck.gl mounts late under load
            assert the_map.count() == 1
            assert "AI-assisted" in page.inner_text("body")
            _screenshot(page, SHOTS / "overview.png")

            for name in PAGES:
                page.get_by_role("link", name=name).first.click()
                _settle(page, HEADINGS.get(name, name))
                _no_exception(page, name)
                assert "AI-assisted" in page.inner_text("body"), name

            # XSS probe 1: the series named with a script tag, chosen and shown on Markets
            page.get_by_role("link", name="Markets").first.click()
            _settle(page, "Markets")
            box = page.get_by_role("combobox", name="Indicator")
            box.click()
            page.keyboard.type("xss_probe")
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)
            _settle(page, "Markets")
            assert "<script>window.__ews_xss=1</script>" in page.inner_text("body")
            _no_exception(page, "Markets with the XSS series")

            # XSS probe 2: the quarantined batch whose parse error quotes an HTML payload
            page.get_by_role("link", name="Data").first.click()
            _settle(page, "Data")
            page.locator('[data-testid="stExpander"] summary').first.click()
            page.wait_for_timeout(500)
            assert XSS_VALUE in page.inner_text("body")
            _no_exception(page, "Data with the quarantined probe")

            # approve the most severe pending alert
            page.get_by_role("link", name="Alert inbox").first.click()
            _settle(page, "Alert inbox")
            page.get_by_role("combobox", name="Alert").click()
            page.keyboard.type("· pending ·")  # the first alert awaiting a duty officer
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)
            _settle(page, "Alert inbox")
            page.get_by_role("button", name="Approve release").click()
            page.get_by_text("approve: applied.").wait_for(timeout=60_000)
            _settle(page, "Alert inbox")
            _no_exception(page, "Alert inbox after approval")
            _screenshot(page, SHOTS / "alert_inbox.png")
        finally:
            browser.close()
    assert dialogs == [], f"a script from data opened dialogs: {dialogs}"
    assert (SHOTS / "overview.png").stat().st_size > 20_000
    assert (SHOTS / "alert_inbox.png").stat().st_size > 20_000
    # the approval is applied to the warehouse at once; the read snapshot that shows it is
    # published after its CAP message is written, a few seconds later under load
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with duckdb.connect(str(home / "snapshots" / _current(home)), read_only=True) as con:
            if con.execute("SELECT count(*) FROM audit_log WHERE action = 'alert.approved'").fetchone()[0]:
                break
        time.sleep(0.5)
    with duckdb.connect(str(home / "snapshots" / _current(home)), read_only=True) as con:
        approved = con.execute("SELECT actor FROM audit_log WHERE action = 'alert.approved'").fetchall()
        published = con.execute(
            "SELECT c.identifier FROM cap_messages c JOIN audit_log a ON a.target = c.alert_id "
            "WHERE a.action = 'alert.approved' AND a.actor = 'admin_user'"
        ).fetchall()
    assert ("admin_user",) in approved
    # the supervisor published the approved alert as CAP: the file is on disk and validates
    from alerts.cap import validate_cap

    [(identifier,)] = published
    assert validate_cap((home / "alerts" / f"{identifier}.xml").read_bytes()) == []


def _current(home: Path) -> str:
    import json

    return json.loads((home / "snapshots" / "CURRENT").read_text())["file"]


def _sign_in(page, url: str, *, landing: str = "Overview") -> None:  # noqa: ANN001
    _settle(page, "Sign in")
    page.get_by_role("textbox", name="User name").fill("admin_user")
    page.get_by_role("textbox", name="Password").fill(PASSWORD["admin"])
    page.get_by_role("button", name="Sign in").click()
    _settle(page, landing)


def test_markdown_images_and_links_from_data_load_nothing(server, tracker: Tracker) -> None:
    from urllib.parse import urlsplit

    from playwright.sync_api import sync_playwright

    url, home = server
    image, link = _md_payload(tracker.host)
    alert_id = (home / "md_probe_alert").read_text()
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.on("request", lambda r: requested.append(r.url))
            page.goto(url, wait_until="domcontentloaded")
            _sign_in(page, url)
            # the alert inbox caption of a series whose source and licence carry the payload
            page.get_by_role("link", name="Alert inbox").first.click()
            _settle(page, "Alert inbox")
            page.get_by_role("combobox", name="Alert").click()
            page.keyboard.type(alert_id)
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)
            _settle(page, "Alert inbox")
            body = page.inner_text("body")
            assert f"source: {image}" in body and f"licence: {link}" in body, "the payload is not shown as text"
            _no_exception(page, "Alert inbox with the Markdown probe")
            # the Markets page's source line of the series ingested with the payload
            page.get_by_role("link", name="Markets").first.click()
            _settle(page, "Markets")
            page.get_by_role("combobox", name="Indicator").click()
            page.keyboard.type("md_probe")
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)
            _settle(page, "Markets")
            assert f"source: {image}" in page.inner_text("body")
            for where in ("img", "a", "iframe", "source", "link"):
                attr = "href" if where in ("a", "link") else "src"
                found = page.locator(f'{where}[{attr}*="{tracker.host}"]').count()
                assert found == 0, f"{found} <{where}> element(s) point at {tracker.host}"
            page.wait_for_timeout(1000)
        finally:
            browser.close()
    foreign = [r for r in requested if urlsplit(r).netloc == tracker.host]
    # (the app itself loads map tiles and a font from their CDNs; nothing else leaves the app's host)
    assert foreign == [] and tracker.hits == [], (foreign, tracker.hits)
    hosts = {urlsplit(r).netloc for r in requested if r.startswith("http")}
    assert hosts <= {urlsplit(url).netloc, "basemaps.cartocdn.com", "fonts.gstatic.com"}, hosts


def test_sessions_survive_reload_and_deep_links_and_die_with_sign_out(server) -> None:
    from playwright.sync_api import sync_playwright

    url, _home = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            # a deep link without a session: the sign-in form, no "Page not found", then that page
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.goto(f"{url}/alert_inbox", wait_until="domcontentloaded")
            _settle(page, "Sign in")
            assert "Page not found" not in page.inner_text("body")
            assert page.get_by_role("dialog").count() == 0
            _sign_in(page, url, landing="Alert inbox")
            assert page.url.rstrip("/").endswith("/alert_inbox")
            page.wait_for_timeout(1000)  # the cookie script runs once the page has drawn
            [cookie] = [c for c in context.cookies() if c["name"] == "ews_session"]
            assert cookie["sameSite"] == "Strict"
            # reload: still signed in, on the same page
            page.reload(wait_until="domcontentloaded")
            _settle(page, "Alert inbox")
            assert page.get_by_role("button", name="Sign out").count() == 1
            # another page by its URL in a new tab of the same browser
            other = context.new_page()
            other.goto(f"{url}/operations", wait_until="domcontentloaded")
            _settle(other, "Operations")
            other.close()
            # a forged cookie (the signature of another value) is refused
            forged = browser.new_context()
            body, _, signature = cookie["value"].partition(".")
            forged.add_cookies([{"name": "ews_session", "value": body + "x." + signature, "url": url}])
            fp = forged.new_page()
            fp.goto(f"{url}/alert_inbox", wait_until="domcontentloaded")
            _settle(fp, "Sign in")
            forged.close()
            # sign out: the page and any copy of the cookie are signed out
            page.get_by_role("button", name="Sign out").click()
            _settle(page, "Sign in")
            page.reload(wait_until="domcontentloaded")
            _settle(page, "Sign in")
            replay = browser.new_context()
            replay.add_cookies([{"name": "ews_session", "value": cookie["value"], "url": url}])
            rp = replay.new_page()
            rp.goto(f"{url}/alert_inbox", wait_until="domcontentloaded")
            _settle(rp, "Sign in")
            replay.close()
            context.close()
        finally:
            browser.close()
