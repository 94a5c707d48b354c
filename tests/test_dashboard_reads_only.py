"""dashboards/ reads and enqueues; the engine writes (docs/dashboard.md; STYLE.md: "A page
module renders: it reads through warehouse, shows, and hands actions to one call; it does not
hold connections, threads or child processes").

The check walks the syntax tree of every module under dashboards/ and fails on:

- an import of ``subprocess``, ``threading``, ``multiprocessing``, ``concurrent``, ``asyncio``,
  ``signal``, ``duckdb``, of the engine (``pipelines``), or of a warehouse module that writes
  the warehouse (``store``, ``review``, ``alerting``, ``migrations``, ``ingestion``,
  ``forecast_store``);
- any use of ``Warehouse`` (opening or constructing the live warehouse: pages read snapshots
  through ``warehouse.snapshots.open_snapshot``) or of the engine side's writers
  (``publish_snapshot``, ``drain``, ``record_sync_check``, ``sync_dashboard``, ``SyncLoop``);
- a process call of ``os`` (``system``, ``fork``, ``kill``, ``exec*``, ``spawn*``, ...);
- a ``global`` statement (module-level state that outlives a page run, such as a supervisor).

It checks itself first on modules that break each rule and on one that keeps them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"

FORBIDDEN_MODULES = (
    "subprocess",
    "threading",
    "multiprocessing",
    "concurrent",
    "asyncio",
    "signal",
    "duckdb",
    "pipelines",
    "warehouse.store",
    "warehouse.review",
    "warehouse.alerting",
    "warehouse.migrations",
    "warehouse.ingestion",
    "warehouse.forecast_store",
)
FORBIDDEN_NAMES = frozenset(
    {"Warehouse", "publish_snapshot", "drain", "record_sync_check", "sync_dashboard", "SyncLoop"}
)
OS_PROCESS_CALLS = frozenset(
    {"system", "popen", "fork", "forkpty", "kill", "killpg", "posix_spawn", "posix_spawnp", "startfile"}
)


def _forbidden_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in FORBIDDEN_MODULES)


def violations(source: str, where: str) -> list[str]:
    """Every breach of the rules above in one module's source, as ``where:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{line}: imports {a.name}" for a in node.names if _forbidden_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _forbidden_module(module):
                found.append(f"{line}: imports from {module}")
            for alias in node.names:
                if alias.name in FORBIDDEN_NAMES:
                    found.append(f"{line}: imports {alias.name}")
                elif _forbidden_module(f"{module}.{alias.name}"):
                    found.append(f"{line}: imports {module}.{alias.name}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{line}: uses {node.id}")
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_NAMES:
                found.append(f"{line}: uses .{node.attr}")
            elif (
                isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and (node.attr in OS_PROCESS_CALLS or node.attr.startswith(("exec", "spawn")))
            ):
                found.append(f"{line}: calls os.{node.attr}")
        elif isinstance(node, ast.Global):
            found.append(f"{line}: global {', '.join(node.names)}")
    return found


BREAKS_EVERY_RULE = """
import subprocess
import threading as t
from concurrent.futures import ThreadPoolExecutor
import duckdb
from pipelines.dashboard_sync import sync_dashboard
from warehouse import Warehouse, review
from warehouse.review_inbox import drain
from warehouse.snapshots import publish_snapshot
import os

_child = None

def start():
    global _child
    _child = subprocess.Popen(["ews", "deliver"])
    os.execve("/bin/true", ["true"], {})
    with Warehouse.open("warehouse.duckdb") as wh:
        wh.execute("UPDATE alerts SET status = 'x'")
    duckdb.connect("warehouse.duckdb").execute("DELETE FROM alerts")
    os.kill(1, 9)
"""

KEEPS_THE_RULES = """
import os
from warehouse import dashboard_reads as reads
from warehouse.review_inbox import enqueue, last_sync_check
from warehouse.snapshots import current_snapshot, open_snapshot

def read(path, name):
    with open_snapshot(path) as wh:
        return getattr(reads, name)(wh)

def act(con, at):
    return enqueue(con, action="approve", alert_id="a_1", user="u", role="duty_officer", at=at)

HOME = os.environ.get("EWS_HOME", "ews-home")
"""


def test_the_checker_catches_each_breach_and_passes_a_reading_module() -> None:
    found = "\n".join(violations(BREAKS_EVERY_RULE, "bad.py"))
    for expected in (
        "imports subprocess",
        "imports threading",
        "imports from concurrent.futures",
        "imports duckdb",
        "imports from pipelines.dashboard_sync",
        "imports sync_dashboard",
        "imports Warehouse",
        "imports warehouse.review",
        "imports drain",
        "imports publish_snapshot",
        "global _child",
        "uses Warehouse",
        "calls os.execve",
        "calls os.kill",
    ):
        assert expected in found, (expected, found)
    assert violations(KEEPS_THE_RULES, "good.py") == []


def test_dashboards_only_read_and_enqueue() -> None:
    modules = sorted(DASHBOARDS.rglob("*.py"))
    assert len(modules) >= 10, modules  # the app, its helpers and the pages
    found = [v for path in modules for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert found == [], "\n".join(found)
