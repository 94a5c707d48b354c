"""Issue 20, findings 2, 4, 5 and 11, with real second processes on a real DuckDB file.

- an ingest downloading from a slow server does not hold the warehouse: another process can
  open it for writing meanwhile (the lock is taken only to commit);
- a run row left ``running`` by a killed process is marked ``aborted`` by the next writer,
  while the run of a live process is left alone;
- ``status``, ``alerts list``, ``metrics`` and ``export cap`` work while another process holds
  the writer lock (they read the live file read-only, or the read snapshot);
- ``ews metrics`` parses with prometheus_client's own text parser, one sample per series.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.settings import load_settings
from ingest.batches import ingest_file
from pipelines.cli.main import main
from pipelines.dashboard_sync import sync_dashboard
from tests.dashboard_home import copy_home
from tests.replay_server import ReplayServer
from warehouse import Warehouse
from warehouse.runs import start_run
from warehouse.status import count_rows

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOLD = """
import sys
from warehouse import Warehouse
wh = Warehouse.open(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
wh.close()
"""


def _ngl_home(home: Path, url: str, timeout: float = 30.0) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "ews.toml").write_text(
        f"[ingest]\ntimeout_seconds = {timeout}\nretries = 0\n"
        f'[ingest.sources.ngl]\nkind = "ngl_gnss"\nurl = "{url}/ngl/{{station}}.tenv3"\nstations = ["P156"]\n',
        encoding="utf-8",
    )


def _ingest(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "--home", str(home), "ingest", "ngl", "--no-cycle", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )


def _wait_for_request(server: ReplayServer, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while server.count(path) == 0:
        assert time.monotonic() < deadline, "the ingest process never asked the server"
        time.sleep(0.05)


def _runs(home: Path) -> dict[str, tuple[str, int | None]]:
    with Warehouse.open(load_settings(home, environ={}).warehouse_path) as wh:
        rows = wh._execute("SELECT run_id, status, pid FROM runs")
    return {run_id: (status, pid) for run_id, status, pid in rows}


def test_the_warehouse_is_free_while_an_ingest_downloads(tmp_path) -> None:
    home = tmp_path / "home"
    with ReplayServer() as server:
        server.slow_seconds = 4.0  # the answer comes after 4 s: the ingest is downloading meanwhile
        server.faults["/ngl/P156.tenv3"] = ["slow"]
        _ngl_home(home, server.url)
        main(["--home", str(home), "init", "--quiet"])
        ingest = _ingest(home)
        try:
            _wait_for_request(server, "/ngl/P156.tenv3")
            time.sleep(0.5)
            # another writer (what `ews run` or a second ingest does) opens it while the download runs
            with Warehouse.open(load_settings(home, environ={}).warehouse_path) as wh:
                assert [s for s, _ in _runs_in(wh)] == ["running"]  # the ingest's run is open, its process alive
            assert main(["--home", str(home), "status", "--json", "--quiet"]) == 0
            assert ingest.wait(timeout=120) == 0, ingest.stderr.read() if ingest.stderr else ""
        finally:
            if ingest.poll() is None:
                ingest.kill()
    runs = _runs(home)
    assert [s for s, _ in runs.values()] == ["success"]
    with Warehouse.open(load_settings(home, environ={}).warehouse_path) as wh:
        assert count_rows(wh, "observations") == 3 * 3196


def _runs_in(wh: Warehouse) -> list[tuple[str, int]]:
    return [(status, pid) for status, pid in wh._execute("SELECT status, pid FROM runs")]


def test_a_killed_run_is_marked_aborted_by_the_next_writer_and_a_live_one_is_not(tmp_path) -> None:
    home = tmp_path / "home"
    with ReplayServer() as server:
        server.hang_seconds = 30.0
        server.faults["/ngl/P156.tenv3"] = ["hang", "hang"]
        _ngl_home(home, server.url, timeout=60.0)
        main(["--home", str(home), "init", "--quiet"])
        killed = _ingest(home)
        _wait_for_request(server, "/ngl/P156.tenv3")
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        live = _ingest(home)
        try:
            deadline = time.monotonic() + 60
            while server.count("/ngl/P156.tenv3") < 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            runs = _runs(home)  # this open is "the next writer"
            by_pid = {pid: status for status, pid in runs.values()}
            assert by_pid[killed.pid] == "aborted"
            assert by_pid[live.pid] == "running"
        finally:
            live.kill()
            live.wait(timeout=30)
    with Warehouse.open(load_settings(home, environ={}).warehouse_path) as wh:
        aborted = wh._execute("SELECT error, finished_at FROM runs WHERE status = 'aborted'")
        assert len(aborted) == 2  # the second killed process is found by this open too
        assert all("process" in error and "ended without finishing" in error for error, _ in aborted)
        audit = wh._execute("SELECT count(*) FROM audit_log WHERE action = 'run.aborted'")[0][0]
        assert audit == 2
        # an in-process run of this (live) process stays running across writer opens
        start_run(wh, run_id="r_here", kind="cycle", started_at=aborted[0][1])
    with Warehouse.open(load_settings(home, environ={}).warehouse_path) as wh:
        assert wh._execute("SELECT status FROM runs WHERE run_id = 'r_here'")[0][0] == "running"


def test_read_commands_work_while_another_process_holds_the_writer_lock(tmp_path, capsys) -> None:
    home = tmp_path / "home"
    main(["--home", str(home), "init", "--quiet"])
    settings = load_settings(home, environ={})
    with Warehouse.open(settings.warehouse_path) as wh:
        assert ingest_file(wh, settings, ROOT / "data" / "market" / "fred_UNRATE.csv", "fred_csv").status == "committed"
        sync_dashboard(wh, settings)  # what every write run does: the read snapshot
        stored = count_rows(wh, "observations")
    capsys.readouterr()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(settings.warehouse_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(Exception, match="held by another process"):
            Warehouse.open(settings.warehouse_path)  # the lock is real
        assert main(["--home", str(home), "status", "--json"]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["observations"] == stored > 0 and "reading the snapshot" in captured.err
        assert main(["--home", str(home), "alerts", "list", "--status", "all", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
        assert main(["--home", str(home), "metrics"]) == 0
        assert "ews_ingest_batches_total" in capsys.readouterr().out
        assert main(["--home", str(home), "export", "cap", "--out", str(tmp_path / "cap"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["files"] == []
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    # without a writer the live file is read (read-only), and says nothing about a snapshot
    assert main(["--home", str(home), "status", "--json"]) == 0
    assert "snapshot" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_home(tmp_path_factory, "metrics")


def test_metrics_parse_with_prometheus_client_and_repeat_no_series(demo, capsys) -> None:
    assert main(["--home", str(demo), "metrics"]) == 0
    text = capsys.readouterr().out
    families = list(text_string_to_metric_families(text))
    samples = Counter((s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples)
    assert samples and max(samples.values()) == 1, [k for k, n in samples.items() if n > 1]
    checks = [s for f in families for s in f.samples if s.name.startswith("ews_judgment_checks")]
    with Warehouse.open(load_settings(demo, environ={}).warehouse_path, read_only=True) as wh:
        judgments = wh._execute("SELECT count(*) FROM judgments")[0][0]
    assert judgments > 0 and sum(s.value for s in checks) == judgments  # every judgment counted once


def test_a_run_left_running_in_an_older_warehouse_is_aborted_by_the_upgrade(tmp_path) -> None:
    """Before schema 11 every run held the writer lock throughout: a `running` row found by the
    upgrading writer belongs to a dead process (the issue's run stuck `running` forever)."""
    path = tmp_path / "old.duckdb"
    with Warehouse.open(path, target_version=10) as wh:
        wh._execute("INSERT INTO runs (run_id, kind, started_at, status) VALUES ('i_old', 'ingest', now(), 'running')")
    with Warehouse.open(path) as wh:
        ((status, error),) = wh._execute("SELECT status, error FROM runs WHERE run_id = 'i_old'")
    assert status == "aborted" and "ended without finishing" in error
