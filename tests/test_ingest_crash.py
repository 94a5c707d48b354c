"""Crash safety: an ingest process killed with SIGKILL at random points, at least 20 times.

After every kill the warehouse must open (DuckDB replays its WAL), every series must hold
either nothing or exactly the rows of its file (no half batch), and the ledger must list only
committed batches whose rows are there. A final uninterrupted run must converge to exactly the
rows of a clean reference load. The files are small bundled real files so the loop stays short.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import load_settings
from ingest.batches import ingest_file
from tests.sql import sql_rows
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
KILLS = 22
FILES = [  # (relative path, format, options): a catalog (events + derived series) among plain series
    ("market/fred_STLFSI4.csv", "fred_csv", {"unique_id": "stlfsi4", "frequency": "W-FRI"}),
    ("hydro/psmsl_rlr_monthly_012_new_york_battery.rlrdata", "psmsl_monthly", {"unique_id": "psmsl_012"}),
    ("seismic/usgs_comcat_eastasia_m4_2018_2023.csv", "usgs_catalog", {}),
    ("market/fred_UNRATE.csv", "fred_csv", {"unique_id": "unrate", "frequency": "MS"}),
    ("hydro/usgs_nwis_rdb_02177000_chattooga_2012.rdb", "nwis_rdb", {}),
    ("hydro/psmsl_rlr_monthly_131_ayukawa_japan.rlrdata", "psmsl_monthly", {"unique_id": "psmsl_131"}),
    ("market/fred_CPIAUCSL.csv", "fred_csv", {"unique_id": "cpiaucsl", "frequency": "MS"}),
]
CHILD = """
import json, sys
from pathlib import Path
from core.settings import load_settings
from ingest.batches import ingest_file
from warehouse import Warehouse
home, files = sys.argv[1], json.loads(sys.argv[2])
settings = load_settings(home, environ={})
print("started", flush=True)
with Warehouse.open(settings.warehouse_path, wait_seconds=30) as wh:
    for rel, fmt, options in files:
        ingest_file(wh, settings, Path(rel), fmt, options=options)
print("done", flush=True)
"""


def _load_all(home: Path) -> None:
    settings = load_settings(home, environ={})
    with Warehouse.open(settings.warehouse_path) as wh:
        for rel, fmt, options in FILES:
            assert ingest_file(wh, settings, DATA / rel, fmt, options=options).status in ("committed", "skipped")


def _state(home: Path) -> tuple[dict[str, int], tuple, tuple, list[str]]:
    settings = load_settings(home, environ={})
    with Warehouse.open(settings.warehouse_path) as wh:
        per_series = dict(sql_rows(wh, "SELECT unique_id, count(*) FROM observations GROUP BY unique_id"))
        digest = tuple(
            sql_rows(wh, "SELECT count(*), coalesce(bit_xor(hash(unique_id, ds, y)), 0) FROM observations")[0]
        )
        events = tuple(
            sql_rows(wh, "SELECT count(*), coalesce(bit_xor(hash(event_id, time, magnitude)), 0) FROM events")[0]
        )
        statuses = [r[0] for r in sql_rows(wh, "SELECT status FROM ingest_batches")]
    return per_series, digest, events, statuses


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_at_random_points_never_half_commits_and_a_rerun_converges(tmp_path) -> None:
    reference = tmp_path / "reference"
    _load_all(reference)
    ref_series, ref_digest, ref_events, _ = _state(reference)
    files = [(str(DATA / rel), fmt, options) for rel, fmt, options in FILES]
    home = tmp_path / "crashing"
    rng = random.Random(20260115)
    import json

    kills = completed = 0
    for _ in range(KILLS * 3):
        if kills >= KILLS:
            break
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), json.dumps(files)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "EWS_HOME": str(home)},
        )
        assert child.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 1.2))  # somewhere in parsing, upserting, committing or checkpointing
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        else:
            completed += 1
        child.wait(timeout=60)
        child.stdout.close()
        per_series, _, _, statuses = _state(home)  # the warehouse opens after every kill
        for uid, count in per_series.items():
            assert count == ref_series[uid], f"{uid}: {count} rows after a kill, expected 0 or {ref_series[uid]}"
        assert set(statuses) <= {"committed"}
        if completed and kills < KILLS:
            # the whole load finished before the kill: start over so the kills land mid-load again
            for path in sorted(home.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
    assert kills >= 20, f"only {kills} kills landed (the load finished first {completed} time(s))"
    _load_all(home)
    per_series, digest, events, statuses = _state(home)
    assert (per_series, digest, events) == (ref_series, ref_digest, ref_events)
    assert statuses.count("committed") == len(FILES)
