"""Cycle scale: the first `ews run` and a next-day `ews run` on N synthetic daily series.

For each N of ``--series`` (default 300 1000 3000; 10,000 is the size issue 21 aims at) it:

1. generates N daily series of ``--years`` years (default 10): a random walk plus a weekly and
   a yearly season, written as ONE FRED multi-series export (``DATE,S00000,S00001,...``);
2. creates a fresh EWS_HOME in a temporary folder (``ews init``) and loads the file through
   the real ``ews ingest file --format fred_multi --option frequency=D --no-cycle`` path into
   its DuckDB file;
3. times the first ``ews run`` (a child process; its peak RSS read from ``os.wait4``);
4. appends one new day to every series (a second FRED export of one row, ingested the same
   way) and times the next-day ``ews run`` the same way.

Prints one JSON line per N: ``series``, ``first_seconds``, ``incremental_seconds``,
``peak_rss_mb`` (the larger of the two cycles; both are given too), the rows each cycle wrote
(``first_rows`` / ``incremental_rows``: anomaly scores, forecasts, model selections, as the
cycle reports them) and ``series_per_second`` of both cycles; then a last line with
``growth_exponent``, the log-log slope of the first-cycle time against N (1 = linear; needs
two sizes or more). Speed targets belong here, never in timed tests (issue 21: next day
>= 16 series/s, first cycle >= 3 series/s, growth exponent <= 1.15, peak <= 4 GB at 3,000).

``--workers 1 2`` measures every size once per ``[cycle] workers`` value (set through
``EWS_CYCLE__WORKERS`` in the children; each line names its ``workers``) and ends with the
first-cycle and next-day time ratios of each count against the first one, per size.
``--chunk-series`` sets ``[cycle] chunk_series`` the same way (default: the shipped setting).
``--global`` makes the global learned model a candidate (``[forecast] models`` + ``LGBMGlobal``,
``[backtest] ensembles`` median, weighted, statglobal), runs ``ews backtest`` after the ingest
(``backtest_seconds``) so the cycles forecast with the backtest's choices, and reports the
seconds of each cycle's global refit (``first_global_fit`` / ``incremental_global_fit``, from the
cycle's note, per model and frequency) and how many series chose a global candidate.
``--refit-every 7d 0d`` runs the next-day cycle once per ``[forecast] refit_every`` value, each on
a copy of the same home after the same first cycle (``incremental_by_refit_every``: seconds,
rows, AutoETS fits filtered forward / made, and the time ratio against the first value):
filtering the stored fits forward against refitting them every day, in one run.
``--snapshot copy refresh copy`` runs, after the next-day cycle(s), one more day per value, in
that order on the same home, with ``[dashboard] snapshot_refresh`` off (``copy``: the read
snapshot is a copy of the whole warehouse file) or on (``refresh``: the spare snapshot is
brought up to date; warehouse/snapshots.py), and reports each day's seconds, the publication's
own seconds and method (``ews run --json``'s ``snapshot``), and the ratios against the first
value (``day_after_by_snapshot``). By then two snapshots exist, so ``refresh`` has a spare.
``--engine local dask`` measures every size and worker count once per ``[cycle] engine``
(``EWS_CYCLE__ENGINE``; the dask engine on the local Dask cluster the cycle starts, of
``workers`` processes) and ends with the ratios of each configuration against the first one.

    PYTHONPATH=. .venv/bin/python benchmarks/cycle_scale.py --series 100 400
    PYTHONPATH=. .venv/bin/python benchmarks/cycle_scale.py --series 100 --workers 1 2
    PYTHONPATH=. .venv/bin/python benchmarks/cycle_scale.py --series 100 --workers 2 --engine local dask

Timings include each child's interpreter start and imports (about 3 s here), as cron sees them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# A one-day file has too few dates to infer the frequency, so both files state it.
_FORMAT = ("--format", "fred_multi", "--option", "frequency=D", "--no-cycle")
#: ``--global``: the shipped candidates plus the global model and the statistical + global combination.
GLOBAL_SETTINGS = {
    "EWS_FORECAST__MODELS": '["AutoETS", "AutoTheta", "MSTL", "SeasonalNaive", "Naive", "LGBMGlobal"]',
    "EWS_BACKTEST__ENSEMBLES": '["median", "weighted", "statglobal"]',
}
_ROW_KEYS = ("anomaly_scores", "forecasts", "model_selections", "risk_grades", "ets_fitted", "ets_forwarded")


def synthetic_export(path: Path, *, series: int, days: int, start: date, seed: int = 0, first_day: int = 0) -> None:
    """Write ``days`` rows of ``series`` columns as a FRED multi-series CSV export.

    Each series: a random walk (sd 1 per day) starting at a level of 100, a weekly season
    (amplitude 2-5) and a yearly season (amplitude 5-15) with random phases. The series are
    the same for a given ``seed`` whatever the length drawn (the noise is drawn day by day),
    so an export with ``first_day`` = the days of an earlier one continues those series where
    they stopped: the next-day file is one more ordinary day of the same walks.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(first_day + days)
    weekly = rng.uniform(2, 5, series)[:, None] * np.sin(2 * np.pi * t / 7 + rng.uniform(0, 6.3, series)[:, None])
    yearly = rng.uniform(5, 15, series)[:, None] * np.sin(2 * np.pi * t / 365.25 + rng.uniform(0, 6.3, series)[:, None])
    walk = 100 + rng.standard_normal((first_day + days, series)).cumsum(axis=0).T
    values = (walk + weekly + yearly)[:, first_day:]
    names = [f"S{i:05d}" for i in range(series)]
    with path.open("w") as out:
        out.write("DATE," + ",".join(names) + "\n")
        for j in range(days):
            day = start + timedelta(days=first_day + j)
            out.write(day.isoformat() + "," + ",".join(f"{v:.4f}" for v in values[:, j]) + "\n")


def _ews(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, float, dict]:
    """Run ``ews ARGS --json --quiet`` in a child; return (seconds, peak RSS MB, JSON answer).
    The peak is the largest single process that ended under this one (the cycle's own, or a
    worker's when larger)."""
    command = [sys.executable, "-m", "pipelines.cli", "--home", str(home), *args, "--json", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        text, errors = stdout.read().decode(), stderr.read().decode()
    if child.returncode != 0:
        raise SystemExit(f"`ews {' '.join(args)}` failed (exit {child.returncode}):\n{errors[-3000:]}")
    # ru_maxrss is in kilobytes on Linux.
    return seconds, usage.ru_maxrss / 1024.0, json.loads(text) if text.strip() else {}


def _rows(answer: dict) -> dict[str, int]:
    counts = answer.get("cycle", {}).get("row_counts", {})
    return {key: int(counts.get(key, 0)) for key in _ROW_KEYS}


def measure(
    series: int,
    *,
    years: int,
    seed: int,
    workers: int = 1,
    chunk_series: int | None = None,
    engine: str = "local",
    with_global: bool = False,
    refit_every: Sequence[str] = ("7d",),
    snapshot: Sequence[str] = (),
) -> dict:
    """One size: ingest, first cycle, one more day, next-day cycle (see the module docstring);
    the next-day cycle once per ``refit_every`` value, each on its own copy of the home."""
    settings = {"EWS_CYCLE__WORKERS": str(workers), "EWS_CYCLE__ENGINE": engine}
    if with_global:
        settings.update(GLOBAL_SETTINGS)
    backtest_seconds = None
    if chunk_series is not None:
        settings["EWS_CYCLE__CHUNK_SERIES"] = str(chunk_series)
    days = int(round(365.25 * years))
    start = date(2015, 1, 1)
    with tempfile.TemporaryDirectory(prefix="ews-scale-") as folder:
        home = Path(folder) / "home"
        _ews(home, "init")
        history = Path(folder) / "history.csv"
        synthetic_export(history, series=series, days=days, start=start, seed=seed)
        ingest_seconds, _, _ = _ews(home, "ingest", "file", str(history), *_FORMAT)
        if with_global:
            backtest_seconds, _, _ = _ews(home, "backtest", env=settings)
        first_seconds, first_rss, first = _ews(home, "run", env=settings)
        nextday = Path(folder) / "nextday.csv"
        synthetic_export(nextday, series=series, days=1, start=start, seed=seed, first_day=days)
        _ews(home, "ingest", "file", str(nextday), *_FORMAT)
        nextdays = {}
        for k, value in enumerate(refit_every):
            target = home if k == len(refit_every) - 1 else Path(folder) / f"home-{k}"
            if target != home:
                shutil.copytree(home, target)
            nextdays[value] = _ews(target, "run", env={**settings, "EWS_FORECAST__REFIT_EVERY": value})
            if target != home:
                shutil.rmtree(target)
        after = {}
        for k, mode in enumerate(snapshot):
            day = Path(folder) / f"day{k + 2}.csv"
            synthetic_export(day, series=series, days=1, start=start, seed=seed, first_day=days + 1 + k)
            _ews(home, "ingest", "file", str(day), *_FORMAT)
            env = {
                **settings,
                "EWS_FORECAST__REFIT_EVERY": refit_every[-1],
                "EWS_DASHBOARD__SNAPSHOT_REFRESH": str(mode == "refresh").lower(),
            }
            after[f"{k + 1}:{mode}"] = _ews(home, "run", env=env)
        snapshot_size_mb = sum(f.stat().st_size for f in (home / "snapshots").glob("warehouse_*.duckdb")) / 2**20
        warehouse_size_mb = sum(f.stat().st_size for f in home.glob("*.duckdb")) / 2**20
    incremental_seconds, incremental_rss, incremental = nextdays[refit_every[0]]
    return {
        "series": series,
        "workers": workers,
        "engine": engine,
        "chunk_series": chunk_series,
        "days": days,
        "ingest_seconds": round(ingest_seconds, 2),
        "first_seconds": round(first_seconds, 2),
        "incremental_seconds": round(incremental_seconds, 2),
        "peak_rss_mb": round(max(first_rss, incremental_rss), 1),
        "first_peak_rss_mb": round(first_rss, 1),
        "incremental_peak_rss_mb": round(incremental_rss, 1),
        "first_rows": _rows(first),
        "incremental_rows": _rows(incremental),
        "first_series_per_second": round(series / first_seconds, 2),
        "incremental_series_per_second": round(series / incremental_seconds, 2),
        "incremental_vs_first": round(incremental_seconds / first_seconds, 3),
        "refit_every": refit_every[0],
        **(
            {
                "incremental_by_refit_every": {
                    value: {
                        "seconds": round(seconds, 2),
                        "peak_rss_mb": round(rss, 1),
                        "series_per_second": round(series / seconds, 2),
                        "rows": _rows(answer),
                        "time_ratio_vs_first_value": round(seconds / incremental_seconds, 3),
                    }
                    for value, (seconds, rss, answer) in nextdays.items()
                }
            }
            if len(refit_every) > 1
            else {}
        ),
        **(
            {
                "warehouse_mb": round(warehouse_size_mb, 1),
                "snapshots_mb": round(snapshot_size_mb, 1),
                "day_after_by_snapshot": {
                    key: {
                        "seconds": round(seconds, 2),
                        "series_per_second": round(series / seconds, 2),
                        "peak_rss_mb": round(rss, 1),
                        "publish": answer.get("snapshot", {}),
                        "time_ratio_vs_first": round(seconds / next(iter(after.values()))[0], 3),
                    }
                    for key, (seconds, rss, answer) in after.items()
                },
            }
            if snapshot
            else {}
        ),
        **(
            {
                "backtest_seconds": round(backtest_seconds or 0.0, 2),
                "first_global_fit": _global_fit(first),
                "incremental_global_fit": _global_fit(incremental),
                "first_chose_lgbmglobal": sum(
                    "LGBMGlobal has no in-sample fit" in n for n in first.get("cycle", {}).get("notes", [])
                ),
            }
            if with_global
            else {}
        ),
    }


def _global_fit(answer: dict) -> str | None:
    """The cycle's note on its global model fits ("LGBMGlobal@D 1.23"), if it made one."""
    for note in answer.get("cycle", {}).get("notes", []):
        if note.startswith("global model fits (seconds): "):
            return str(note.split(": ", 1)[1])
    return None


def growth_exponent(results: list[dict]) -> float | None:
    """Least-squares slope of log(first_seconds) on log(series); None below two sizes."""
    if len({r["series"] for r in results}) < 2:
        return None
    x = np.log([r["series"] for r in results])
    y = np.log([r["first_seconds"] for r in results])
    return float(np.polyfit(x, y, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=[300, 1000, 3000], help="sizes N to measure")
    parser.add_argument("--years", type=int, default=10, help="years of daily history per series")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="[cycle] workers values to measure")
    parser.add_argument("--chunk-series", type=int, default=None, help="[cycle] chunk_series (default: shipped)")
    parser.add_argument("--global", dest="with_global", action="store_true", help="LGBMGlobal as a candidate")
    parser.add_argument("--engine", nargs="+", default=["local"], choices=["local", "dask"], help="[cycle] engine")
    parser.add_argument(
        "--refit-every",
        nargs="+",
        default=["7d"],
        help="[forecast] refit_every values of the next-day cycle, each on a copy of the same home "
        "(e.g. 7d 0d: filtering forward vs refitting every day); the first one is incremental_seconds",
    )
    parser.add_argument(
        "--snapshot",
        nargs="*",
        default=[],
        choices=["copy", "refresh"],
        help="one more day per value, in order, with [dashboard] snapshot_refresh off (copy) or on (refresh)",
    )
    args = parser.parse_args()
    results = []
    for n in args.series:
        for workers in args.workers:
            for engine in args.engine:
                result = measure(
                    n,
                    years=args.years,
                    seed=args.seed,
                    workers=workers,
                    chunk_series=args.chunk_series,
                    engine=engine,
                    with_global=args.with_global,
                    refit_every=args.refit_every,
                    snapshot=args.snapshot,
                )
                results.append(result)
                print(json.dumps(result), flush=True)
    if len(args.workers) * len(args.engine) > 1:
        for n in args.series:
            mine = [r for r in results if r["series"] == n]
            base = mine[0]
            for other in mine[1:]:
                print(
                    json.dumps(
                        {
                            "series": n,
                            "workers": other["workers"],
                            "engine": other["engine"],
                            "vs_workers": base["workers"],
                            "vs_engine": base["engine"],
                            "first_time_ratio": round(other["first_seconds"] / base["first_seconds"], 3),
                            "incremental_time_ratio": round(
                                other["incremental_seconds"] / base["incremental_seconds"], 3
                            ),
                            "same_rows": other["first_rows"] == base["first_rows"]
                            and other["incremental_rows"] == base["incremental_rows"],
                        }
                    ),
                    flush=True,
                )
    slope = growth_exponent([r for r in results if r["workers"] == args.workers[0] and r["engine"] == args.engine[0]])
    print(
        json.dumps(
            {
                "sizes": [r["series"] for r in results],
                "growth_exponent": None if slope is None or math.isnan(slope) else round(slope, 3),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
