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

The sampling costs nothing measurable; times are not reported (see cycle_scale.py for those).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cycle_scale  # noqa: E402 - the generator lives beside this file


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--years", type=int, default=10)
    args = parser.parse_args()

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
        step = ["start"]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peaks[step[0]] = max(peaks.get(step[0], 0.0), _rss_mb())
                time.sleep(0.2)

        def progress(message: str) -> None:
            step[0] = message.strip()[:40]

        threading.Thread(target=sample, daemon=True).start()
        settings = load_settings(home)
        with Warehouse.open(settings.warehouse_path) as wh:
            summary = run_cycle(wh, settings, clock=Clock.from_settings(settings), progress=progress)
            progress("after the cycle: status and dashboard sync")
            warehouse_status(wh)
            sync_dashboard(wh, settings)
        done.set()
    print(
        json.dumps(
            {
                "series": args.series,
                "peak_mb_by_step": {k: round(v, 1) for k, v in peaks.items()},
                "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
                "row_counts": summary.row_counts,
            }
        )
    )


if __name__ == "__main__":
    main()
