"""Resident memory of one first `ews run`, step by step (issue 21: where a cycle's memory goes).

Makes a home with ``--series`` synthetic daily series of ``--years`` years (the generator of
``benchmarks/cycle_scale.py``, loaded the same way), then runs :func:`pipelines.cycle.run_cycle`
in this process while a thread samples the process's resident memory (``VmRSS``) every 0.2 s.
Each sample is booked to the step the cycle announced last (its progress messages), and the
read-snapshot and dashboard sync that ``ews run`` does after the cycle are booked too. Prints
one JSON line: ``series``, the peak per step in MB (first 40 characters of its message), the
process's ``ru_maxrss`` and the cycle's row counts.

    PYTHONPATH=. .venv/bin/python benchmarks/cycle_steps_memory.py --series 100
    EWS_CYCLE__CHUNK_SERIES=0 PYTHONPATH=. .venv/bin/python benchmarks/cycle_steps_memory.py --series 100

``duckdb_mb_by_step`` and ``duckdb_peak_mb_by_tag`` are DuckDB's own accounting
(``duckdb_memory()``) at each step's end; ``[cycle] memory_limit`` caps it (set it with
``EWS_CYCLE__MEMORY_LIMIT``, "" for DuckDB's default). ``seconds_by_step`` is the wall time
between a step's message and the next one (the shares of a first cycle; cycle_scale.py times
whole runs). The sampling costs nothing measurable.

``per_chunk`` accounts for the process's anonymous resident memory at the end of each chunk
(after the cycle's ``malloc_trim``), in MB: ``anon`` (``RssAnon``), ``glibc`` (the C heap:
``mallinfo2`` arena + mmapped: what its arenas span, trimmed pages included),
``glibc_in_use`` (its part in use: ``uordblks`` + mmapped), ``duckdb_resident`` / ``duckdb_allocated`` (DuckDB's own
jemalloc, read through the ``duckdb_je_mallctl`` its Linux build exports; null elsewhere) and
``other`` = anon - glibc - duckdb_resident: polars' jemalloc, Python's object arenas, thread
stacks. Memory held across chunks shows as a rising ``other`` (docs/scaling.md, tenth slice).
``--chunk-series`` sets ``[cycle] chunk_series`` (more, smaller chunks show a trend sooner):

    PYTHONPATH=. .venv/bin/python benchmarks/cycle_steps_memory.py --series 300 --chunk-series 15
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cycle_scale  # noqa: E402 - the generator lives beside this file


def _status_mb(field: str = "VmRSS") -> float:
    """A field of /proc/self/status in MB (``VmRSS``: resident; ``RssAnon``: its anonymous part)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc_mb() -> tuple[float, float] | None:
    """glibc's heap in MB: what its arenas and mmapped blocks hold, and the part in use."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (info.arena + info.hblkhd) / 2**20, (info.uordblks + info.hblkhd) / 2**20


def _duckdb_jemalloc() -> dict[str, float] | None:
    """DuckDB's jemalloc ``stats.resident`` and ``stats.allocated`` in MB (Linux x86 builds)."""
    import duckdb

    try:
        mallctl = ctypes.CDLL(duckdb._duckdb.__file__).duckdb_je_mallctl
    except (OSError, AttributeError):
        return None
    epoch, size = ctypes.c_uint64(1), ctypes.c_size_t(8)
    mallctl(b"epoch", ctypes.byref(epoch), ctypes.byref(size), ctypes.byref(epoch), ctypes.c_size_t(8))
    out = {}
    for name in ("resident", "allocated"):
        value, size = ctypes.c_size_t(0), ctypes.c_size_t(8)
        if mallctl(f"stats.{name}".encode(), ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)):
            return None
        out[name] = value.value / 2**20
    return out


def _chunk_accounting() -> dict[str, float | None]:
    anon, heap, duck = _status_mb("RssAnon"), _glibc_mb(), _duckdb_jemalloc()
    glibc = heap[0] if heap else None
    row: dict[str, float | None] = {
        "anon": anon,
        "glibc": glibc,
        "glibc_in_use": heap[1] if heap else None,
        "duckdb_resident": duck["resident"] if duck else None,
        "duckdb_allocated": duck["allocated"] if duck else None,
    }
    row["other"] = anon - glibc - duck["resident"] if glibc is not None and duck else None
    return {k: None if v is None else round(v, 1) for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--chunk-series", type=int, default=None, help="[cycle] chunk_series (default: the setting)")
    args = parser.parse_args()
    if args.chunk_series is not None:
        os.environ["EWS_CYCLE__CHUNK_SERIES"] = str(args.chunk_series)

    import pipelines.cycle
    from core.clock import Clock
    from core.settings import load_settings
    from pipelines.cycle import run_cycle
    from pipelines.dashboard_sync import sync_dashboard
    from warehouse import Warehouse
    from warehouse.status import warehouse_status

    with tempfile.TemporaryDirectory(prefix="ews-steps-") as folder:
        home = Path(folder) / "home"
        cycle_scale._ews(home, "init")
        history = Path(folder) / "history.csv"
        days = int(round(365.25 * args.years))
        cycle_scale.synthetic_export(history, series=args.series, days=days, start=date(2015, 1, 1))
        cycle_scale._ews(home, "ingest", "file", str(history), *cycle_scale._FORMAT)

        peaks: dict[str, float] = {}
        seconds: dict[str, float] = {}
        step = ["start"]
        began = [time.perf_counter()]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peaks[step[0]] = max(peaks.get(step[0], 0.0), _status_mb())
                time.sleep(0.2)

        duckdb_mb: dict[str, float] = {}
        duckdb_tags: dict[str, float] = {}
        connection: list = []

        def progress(message: str) -> None:
            if connection:  # DuckDB's own buffers at the end of the step (the cycle's thread)
                rows = connection[0]._execute("SELECT tag, memory_usage_bytes FROM duckdb_memory()")
                used = sum(b for _, b in rows)
                duckdb_mb[step[0]] = max(duckdb_mb.get(step[0], 0.0), used / 2**20)
                for tag, b in rows:
                    if b:
                        duckdb_tags[tag] = max(duckdb_tags.get(tag, 0.0), b / 2**20)
            now = time.perf_counter()
            seconds[step[0]] = seconds.get(step[0], 0.0) + now - began[0]
            began[0] = now
            step[0] = message.strip()[:40]

        # each chunk ends with the cycle giving freed heap back: account for memory right after
        per_chunk: list[dict[str, float | None]] = []
        trim = pipelines.cycle._give_back_freed_memory

        def trimmed() -> None:
            trim()
            per_chunk.append(_chunk_accounting())

        pipelines.cycle._give_back_freed_memory = trimmed
        threading.Thread(target=sample, daemon=True).start()
        settings = load_settings(home)
        with Warehouse.open(settings.warehouse_path) as wh:
            connection.append(wh)
            summary = run_cycle(wh, settings, clock=Clock.from_settings(settings), progress=progress)
            progress("after the cycle: status and dashboard sync")
            warehouse_status(wh)
            sync_dashboard(wh, settings)
            progress("end")
        done.set()
    print(
        json.dumps(
            {
                "series": args.series,
                "memory_limit": settings.cycle.memory_limit or "DuckDB's default",
                "peak_mb_by_step": {k: round(v, 1) for k, v in peaks.items()},
                "duckdb_mb_by_step": {k: round(v, 1) for k, v in duckdb_mb.items()},
                "duckdb_peak_mb_by_tag": {k: round(v, 1) for k, v in duckdb_tags.items()},
                "seconds_by_step": {k: round(v, 2) for k, v in seconds.items()},
                "per_chunk": per_chunk,
                "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
                "row_counts": summary.row_counts,
            }
        )
    )


if __name__ == "__main__":
    main()
