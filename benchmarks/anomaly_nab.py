"""NAB benchmark: `ews evaluate nab` on the shared NAB corpus, engine vs a plain PyOD IForest.

Reads ../shared/data/labeled_anomalies/nab (57 of NAB's 58 files; MIT). Not part of CI.
The engine runs ``anomaly.alarm_scores`` with ``anomaly.ALARM_DETECTORS`` (level, change,
Sub-PCA, Sub-kNN; GPD-calibrated, held, alarm-onset form). Prints the per-profile scores,
then one JSON line (the last line) with ``nab_score_engine``, ``nab_score_iforest``,
``vus_pr_engine``, ``vus_pr_iforest`` and the published scoreboard references for the same
profile (Random Cut Forest 51.7, HTM 70.5 on 58 files).

    .venv/bin/python benchmarks/anomaly_nab.py [--nab DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anomaly  # noqa: E402
from pipelines.cli.main import main  # noqa: E402

DEFAULT_NAB = ROOT.parent / "shared" / "data" / "labeled_anomalies" / "nab"


def run(nab: Path, limit: int | None) -> dict:
    argv = [
        "evaluate",
        "nab",
        "--data",
        str(nab / "data"),
        "--labels",
        str(nab / "labels" / "combined_windows.json"),
        "--detectors",
        ",".join(anomaly.ALARM_DETECTORS),
        "--json",
        "--quiet",
    ]
    if limit:
        argv += ["--limit", str(limit)]
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"ews evaluate nab exited with {code}")
    report = json.loads(out.getvalue())
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=DEFAULT_NAB)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    if not (args.nab / "labels" / "combined_windows.json").is_file():
        raise SystemExit(f"no NAB corpus at {args.nab}; pass --nab DIR (NAB's data/ and labels/ inside)")
    report = run(args.nab, args.limit)
    base = report["iforest_baseline"]
    published = (
        json.loads((args.nab / "results" / "final_results.json").read_text())
        if (args.nab / "results" / "final_results.json").is_file()
        else {}
    )
    print(
        f"files scored {report['files_scored']}, windows {report['windows']}, "
        f"missing data for {report['missing_files']}, {report['seconds']} s"
    )
    for key in ("nab_score", "nab_score_low_fp", "nab_score_low_fn", "vus_pr", "range_auc_pr", "point_auc_pr"):
        print(f"{key:18s} engine {report[key]!s:>8}   iforest {base[key]!s:>8}")
    line = {
        "nab_score_engine": report["nab_score"],
        "nab_score_iforest": base["nab_score"],
        "nab_score_low_fp_engine": report["nab_score_low_fp"],
        "nab_score_low_fn_engine": report["nab_score_low_fn"],
        "vus_pr_engine": report["vus_pr"],
        "vus_pr_iforest": base["vus_pr"],
        "vus_pr_ratio": round(report["vus_pr"] / base["vus_pr"], 3) if base["vus_pr"] else None,
        "published_random_cut_forest": round(published.get("randomCutForest", {}).get("standard", 51.7), 1),
        "published_htm": round(published.get("numenta", {}).get("standard", 70.1), 1),
        "files": report["files_scored"],
        "seconds": report["seconds"],
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main_cli()
