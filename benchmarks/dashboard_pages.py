"""Page load times of the dashboard on a demo home, against a naive peer in the same process.

Usage: python benchmarks/dashboard_pages.py EWS_HOME   (a home made by `ews demo` with an
admin account: `ews users add bench --role admin --password-stdin`, password in EWS_BENCH_PW)

For each page: the first load (cold cache: snapshot reads) and the second (cached), through
Streamlit's AppTest on the real app. The peer is what a page would cost without paging and
caching: reading every table a page shows in full from the same snapshot. The last line is
one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from warehouse import Warehouse
from warehouse.dashboard_reads import full_table_row_counts
from warehouse.snapshots import current_snapshot

PAGES = ("overview", "markets", "hazards", "alert_inbox", "models", "data", "operations", "audit")
FULL_TABLES = (
    "observations",
    "anomaly_scores",
    "risk_grades",
    "forecasts",
    "alerts",
    "judgments",
    "audit_log",
    "ingest_batches",
    "runs",
    "events",
)


def main(home: str) -> dict[str, float]:
    os.environ["EWS_HOME"] = home
    app = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=300).run()
    at.text_input(key="signin_name").input(os.environ.get("EWS_BENCH_USER", "bench"))
    at.text_input(key="signin_password").input(os.environ["EWS_BENCH_PW"])
    at.button(key="signin_submit").click().run()
    cold, warm = {}, {}
    for page in PAGES:
        at.switch_page(f"pages/{page}.py")
        start = time.perf_counter()
        at.run()
        cold[page] = time.perf_counter() - start
        start = time.perf_counter()
        at.run()
        warm[page] = time.perf_counter() - start
        assert not at.exception, (page, at.exception)
        print(f"{page:<12} cold {cold[page]:.3f}s  cached {warm[page]:.3f}s", file=sys.stderr)
    snap = current_snapshot(Path(home) / "snapshots")
    start = time.perf_counter()
    with Warehouse.open(snap.path, read_only=True) as wh:
        rows = sum(full_table_row_counts(wh, FULL_TABLES).values())
    naive = time.perf_counter() - start
    result = {
        "pages": len(PAGES),
        "cold_total_s": round(sum(cold.values()), 3),
        "cached_total_s": round(sum(warm.values()), 3),
        "slowest_cold_page_s": round(max(cold.values()), 3),
        "naive_full_read_s": round(naive, 3),
        "naive_rows": rows,
        "cached_vs_cold_ratio": round(sum(warm.values()) / sum(cold.values()), 3),
        "cached_page_vs_naive_ratio": round((sum(warm.values()) / len(PAGES)) / naive, 3),
    }
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
