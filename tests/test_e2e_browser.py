"""End to end in a real browser: `ews serve` on loopback, Debian's Chromium headless (Playwright).

Signs in, visits every page, fails on any Streamlit exception shown, approves an alert (applied
by `ews serve`'s supervisor, which writes its CAP file within seconds), and
saves the README's screenshots (docs/screenshots/overview.png, alert_inbox.png). XSS probe:
a series ingested with a script tag in its name, and a quarantined file whose error quotes an
HTML payload, are shown as text and never execute (no dialog, no global set by the payload).

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
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from dashboard_home import PASSWORD, copy_home

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - yields (url, home)
    home = copy_home(tmp_path_factory, "browser")
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
