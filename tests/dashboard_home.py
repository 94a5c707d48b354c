"""Shared by the dashboard tests: one real demo home per test session, copied per test module.

The demo's pipeline (bundled real data, replay of 2011-03-12, one scoring cycle; ~45 s here)
runs once into the session's temporary folder; each test module works on its own copy.
Accounts for every role are created with the real control-store functions.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from streamlit import config as streamlit_config

from core.settings import load_settings
from pipelines.cli.dashboard import SCRIPT_OPTIONS
from warehouse import users
from warehouse.review_inbox import pending_count

# The pages run under AppTest with `ews serve`'s script options (magic off: see SCRIPT_OPTIONS).
for _option, _value in SCRIPT_OPTIONS.items():
    streamlit_config.set_option(_option, _value)

ROLES = ("viewer", "analyst", "duty_officer", "admin")
PASSWORD = {role: f"{role}-pass-{len(role) * 7}" for role in ROLES}


# `ews demo` step by step, except that the cycle runs as an operator's `ews run` would: the demo
# itself approves every orange/red alert as `demo-duty-officer`, which would leave nothing for
# the review tests to approve. Same home layout (replay clock 2011-03-12), same bundled real
# data, same cycle, and the same end-of-run hook that publishes the read snapshot.
_BUILD = """
import sys
from core.settings import DEMO_AS_OF, load_settings
from pipelines.cli.main import init_home, main
from ingest.batches import load_bundled
from warehouse import Warehouse

settings = load_settings(sys.argv[1])
init_home(settings, as_of=DEMO_AS_OF)
settings = load_settings(sys.argv[1])
with Warehouse.open(settings.warehouse_path) as wh:
    assert all(r.status == "committed" for r in load_bundled(wh, settings))
sys.exit(main(["--home", sys.argv[1], "run", "--actor", "operator", "--quiet"]))
"""


def _run_demo(home: Path) -> None:
    """Build the demo home in a child process, kept apart from this process's imports
    (Streamlit, Playwright) so neither can disturb the other."""
    source = os.environ.get("EWS_DASHBOARD_TEST_HOME")  # a prebuilt demo home, to iterate fast
    if source:
        shutil.copytree(source, home)
        return
    done = subprocess.run([sys.executable, "-c", _BUILD, str(home)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]


def demo_home(factory: pytest.TempPathFactory) -> Path:
    """The session's demo home (built on first use, then reused by every module)."""
    base = factory.getbasetemp()
    home = base / "dashboard-demo"
    with open(base / "dashboard-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist-safe: one builder, the others wait
        if not (home / "READY").exists():
            if home.exists():
                shutil.rmtree(home)
            _run_demo(home)
            con = users.connect_control(users.control_path(load_settings(home)))
            for role in ROLES:
                users.add_user(
                    con, name=f"{role}_user", role=role, password=PASSWORD[role], at=datetime(2011, 3, 12, 9)
                )
            con.close()
            (home / "READY").write_text("ok")
    return home


def copy_home(factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of the demo home (warehouse, snapshot, control store, settings)."""
    target = factory.mktemp(name) / "home"
    shutil.copytree(demo_home(factory), target)
    return target


@contextmanager
def supervisor(home: Path, *, interval: float = 0.2) -> Iterator[object]:
    """`ews serve`'s inbox sync (pipelines.dashboard_sync.SyncLoop) on a thread of this process,
    looking every ``interval`` seconds, for pages driven by AppTest."""
    from pipelines.dashboard_sync import SyncLoop

    loop = SyncLoop(load_settings(home), interval=interval).start()
    try:
        yield loop
    finally:
        loop.stop()


def settle(loop: object, home: Path, timeout: float = 120.0) -> None:
    """Wait until nothing is queued and the supervisor has closed the warehouse (DuckDB admits
    no second connection of another kind in this process while it writes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        con = users.connect_control(users.control_path(load_settings(home)))
        try:
            pending = pending_count(con)
        finally:
            con.close()
        if pending == 0 and loop.wait_idle(0):  # type: ignore[attr-defined]
            return
        time.sleep(0.05)
    raise AssertionError(f"the supervisor did not apply the queued actions within {timeout} s")
