"""Memory of one first cycle, chunk by chunk (issue 21: what grows with the series).

Makes a home of N synthetic daily 10-year series (the generator of ``cycle_scale.py``), runs
:func:`pipelines.cycle.run_cycle` in this process with ``[cycle] chunk_series = CHUNK``, and at
the start of each chunk and of the alert step prints the resident memory (as is, after
``gc.collect()``, after glibc's ``malloc_trim(0)``), DuckDB's ``duckdb_memory()`` tags above
1 MB, and the Python object types whose count grew since the last chunk. ``tm`` as third
argument adds tracemalloc's largest growths by traceback (slow). ``EWS_PROBE_COMMIT=1``
commits the open transaction at each chunk start: the experiment that measured what per-chunk
commits would free before the engine made them (docs/scaling.md, fifth slice); on an engine
that commits per chunk it only adds an empty commit.

    PYTHONPATH=. .venv/bin/python benchmarks/cycle_chunk_memory.py 90 30
"""

import collections
import ctypes
import gc
import os
import sys
import tempfile
import tracemalloc
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import duckdb  # noqa: E402

import cycle_scale  # noqa: E402 - the generator lives beside this file

N = int(sys.argv[1])
CH = int(sys.argv[2])
TM = len(sys.argv) > 3 and sys.argv[3] == "tm"
os.environ["EWS_CYCLE__CHUNK_SERIES"] = str(CH)
from core.clock import Clock
from core.settings import load_settings
from pipelines.cycle import run_cycle
from warehouse import Warehouse

libc = ctypes.CDLL("libc.so.6")


def rss() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


folder = tempfile.mkdtemp(prefix="ews-probe-")
home = Path(folder) / "home"
cycle_scale._ews(home, "init")
h = Path(folder) / "h.csv"
cycle_scale.synthetic_export(h, series=N, days=3652, start=date(2015, 1, 1))
cycle_scale._ews(home, "ingest", "file", str(h), *cycle_scale._FORMAT)
settings = load_settings(home)
wh_box = []
prev = [None]
prevtypes = [None]
if TM:
    tracemalloc.start(12)


def progress(msg: str) -> None:
    if not msg.startswith("[1/4]") and not msg.startswith("[4/4]"):
        return
    wh = wh_box[0]
    if os.environ.get("EWS_PROBE_COMMIT") and msg.startswith("[1/4]"):
        wh._con.execute("COMMIT")
        wh._con.execute("BEGIN TRANSACTION")
    r0 = rss()
    gc.collect()
    r1 = rss()
    libc.malloc_trim(0)
    r2 = rss()
    try:
        dm = wh._con.execute(
            "select tag, memory_usage_bytes/1e6 from duckdb_memory() where memory_usage_bytes>1e6"
        ).fetchall()
    except duckdb.Error as e:
        dm = str(e)
    types = collections.Counter(type(o).__name__ for o in gc.get_objects())
    print(f"== {msg[:60]} rss {r0:.0f} after gc {r1:.0f} after trim {r2:.0f} duckdb {dm}", flush=True)
    if prevtypes[0] is not None:
        d = {k: types[k] - prevtypes[0].get(k, 0) for k in types}
        print("   types grew:", sorted(d.items(), key=lambda kv: -kv[1])[:8], flush=True)
    prevtypes[0] = types
    if TM:
        s = tracemalloc.take_snapshot()
        print("   traced MB", sum(st.size for st in s.statistics("filename")) / 1e6)
        if prev[0] is not None:
            for st in s.compare_to(prev[0], "traceback")[:6]:
                print("  ", st.size_diff / 1e6, "MB", st.count_diff)
                for line in st.traceback.format()[-12:]:
                    print("      ", line)
        prev[0] = s


with Warehouse.open(settings.warehouse_path) as wh:
    wh_box.append(wh)
    summary = run_cycle(wh, settings, clock=Clock.from_settings(settings), progress=progress)
    print("end rss", rss(), summary.row_counts)
