"""Aftershock forecasts (Reasenberg-Jones) measured the CSEP way on the bundled catalogs.

For every region below, forecasts are issued every ``--step-days`` (7: non-overlapping
windows) for the next 7 days, from the events before each date only
(:func:`hazards.aftershock_evaluation.evaluate_aftershock_forecasts`): Reasenberg-Jones with
the Bayesian update (USGS), with the generic parameters alone, and with the sequence's own
Omori-Utsu fit; a constant-rate Poisson baseline fitted on the catalog before the first
forecast date; and the engine's current rate test (``1 - p``, Brier and reliability only).

- ``data/seismic/usgs_comcat_japan_2005_2014_processed.csv`` (bundled, USGS ComCat):
  Tohoku and Japan boxes, subduction setting, forecasts 2008-01-01 .. 2014-12-23, baseline
  fitted on 2005-2007;
- ``data/seismic/usgs_comcat_eastasia_m4_2018_2023.csv`` (bundled, USGS ComCat):
  Sichuan-Yunnan (active shallow crust) and East Asia (global default), forecasts
  2020-01-07 .. 2023-01-24, baseline 2018-2019;
- ``../shared/data/seismic/cenc_china_m3_1970_2024.csv`` when present (CENC; its licence
  is unclear, so it is read in place, never copied): mainland China box and Sichuan-Yunnan,
  active shallow crust, forecasts 2000-01-04 .. 2024-04-30, baseline 1970-1999.

Counts for the N-test are ``M >= 5`` (above every catalog's completeness); the binary event
is "at least one M >= 6 within 7 days". pycsep (0.8.0, when installed: ``pip install
pycsep``) recomputes the N-test quantiles and the M-test on the same arrays and random
numbers, and the script reports the largest difference.

Prints a table per region, the reliability of RJ (Bayesian) and Poisson, and (last line)
one JSON object with the figures.

Usage: .venv/bin/python benchmarks/aftershock_csep.py [--step-days 7] [--shared ../shared/data] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hazards.aftershock_evaluation import evaluate_aftershock_forecasts, magnitude_test, number_test  # noqa: E402
from ingest.sources import bundled_catalogue, parse  # noqa: E402
from ingest.sources.catalogue import SEISMIC_REGIONS  # noqa: E402

CHINA = {
    "id": "china",
    "name": "China and surroundings (CENC)",
    "min_lat": 17.0,
    "max_lat": 54.0,
    "min_lon": 73.0,
    "max_lon": 135.0,
}
MODELS = ("poisson", "rj_bayesian", "rj_generic", "rj_sequence", "rate_test")


def _boxes(key: str) -> dict[str, dict[str, Any]]:
    return {box["id"]: box for box in SEISMIC_REGIONS[key]}


def _cases(shared: Path | None) -> list[dict[str, Any]]:
    japan, east = _boxes("japan"), _boxes("eastasia")
    cases = [
        {
            "catalog": "usgs_japan",
            "path": ROOT / "data/seismic/usgs_comcat_japan_2005_2014_processed.csv",
            "format": "usgs_catalog",
            "box": japan["tohoku"],
            "setting": "subduction",
            "start": datetime(2008, 1, 1),
            "end": datetime(2014, 12, 24),
        },
        {
            "catalog": "usgs_japan",
            "path": ROOT / "data/seismic/usgs_comcat_japan_2005_2014_processed.csv",
            "format": "usgs_catalog",
            "box": japan["japan"],
            "setting": "subduction",
            "start": datetime(2008, 1, 1),
            "end": datetime(2014, 12, 24),
        },
        {
            "catalog": "usgs_eastasia",
            "path": ROOT / "data/seismic/usgs_comcat_eastasia_m4_2018_2023.csv",
            "format": "usgs_catalog",
            "box": east["sichuan_yunnan"],
            "setting": "active_shallow_crust",
            "start": datetime(2020, 1, 7),
            "end": datetime(2023, 1, 28),
        },
        {
            "catalog": "usgs_eastasia",
            "path": ROOT / "data/seismic/usgs_comcat_eastasia_m4_2018_2023.csv",
            "format": "usgs_catalog",
            "box": east["eastasia"],
            "setting": "global",
            "start": datetime(2020, 1, 7),
            "end": datetime(2023, 1, 28),
        },
    ]
    cenc = shared / "seismic/cenc_china_m3_1970_2024.csv" if shared else None
    if cenc is not None and cenc.exists():
        for box in (CHINA, east["sichuan_yunnan"]):
            cases.append(
                {
                    "catalog": "cenc",
                    "path": cenc,
                    "format": "cenc_catalog",
                    "box": box,
                    "setting": "active_shallow_crust",
                    "start": datetime(2000, 1, 4),
                    "end": datetime(2024, 5, 1),
                }
            )
    return cases


def _events(case: dict[str, Any], cache: dict[Path, pl.DataFrame]) -> pl.DataFrame:
    if case["path"] not in cache:
        bundled = {ROOT / "data" / b.relative_path: b for b in bundled_catalogue(ROOT / "data")}
        item = bundled.get(case["path"])
        options = dict(item.options) if item is not None else {"regions": [case["box"]]}
        cache[case["path"]] = parse(case["path"], case["format"], **options).events
    box = case["box"]
    return cache[case["path"]].filter(
        pl.col("lat").is_between(box["min_lat"], box["max_lat"])
        & pl.col("lon").is_between(box["min_lon"], box["max_lon"])
    )


def _pycsep_check(result: Any) -> dict[str, Any]:
    """Largest difference between our N-test / M-test and pycsep's on the same inputs."""
    try:
        from csep.core.poisson_evaluations import _number_test_ndarray, _poisson_likelihood_test
    except ImportError:
        return {"pycsep": "not installed"}
    counted = result.forecasts.filter(pl.col("expected_count").is_not_null())
    worst = 0.0
    for expected, observed in counted.select("expected_count", "observed_count").iter_rows():
        ours = number_test(expected, observed)
        theirs = _number_test_ndarray(expected, observed)
        worst = max(worst, abs(float(ours[0]) - theirs[0]), abs(float(ours[1]) - theirs[1]))
    m_diff = 0.0
    for name in ("poisson", "reasenberg_jones"):
        bins = result.magnitude_bins.filter(pl.col("model") == name)
        forecast, observed = bins.get_column("forecast").to_numpy(), bins.get_column("observed").to_numpy()
        randoms = np.random.default_rng(0).random((300, int(observed.sum())))
        ours_m = magnitude_test(forecast, observed, num_simulations=300, random_numbers=randoms).quantile
        theirs_m = _poisson_likelihood_test(
            forecast,
            observed,
            num_simulations=300,
            random_numbers=randoms,
            use_observed_counts=True,
            verbose=False,
            normalize_likelihood=True,
        )[0]
        m_diff = max(m_diff, abs(ours_m - theirs_m))
    import csep

    return {"pycsep": csep.__version__, "n_test_max_abs_diff": worst, "m_test_quantile_max_abs_diff": m_diff}


def _row(name: str, s: dict[str, Any]) -> str:
    def f(key: str, fmt: str) -> str:
        value = s.get(key)
        return format(value, fmt) if isinstance(value, (int, float)) else "-"

    return (
        f"  {name:<12} events {s['n_events']:>3}/{s['n_forecasts']:<4} meanP {s['mean_probability']:.3f} "
        f"Brier {s['brier']:.4f} BSS {f('brier_skill_vs_poisson', '+.3f'):>6} | N exp {f('expected_total', '8.1f')} "
        f"obs {f('observed_total', '5d')} total d1/d2 {f('n_test_total_delta1', '.3f')}/"
        f"{f('n_test_total_delta2', '.3f')} share few/many {f('n_test_share_too_few_forecast', '.3f')}/"
        f"{f('n_test_share_too_many_forecast', '.3f')} | IG/fc {f('information_gain_per_forecast', '+.3f')} "
        f"M-test q {f('m_test_quantile', '.3f')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-days", type=float, default=7.0)
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--quick", action="store_true", help="first two regions, 200 M-test simulations")
    args = parser.parse_args()
    shared = args.shared
    if shared is None:
        shared = next(
            (p for p in (ROOT.parent / "shared/data", ROOT.parent.parent / "shared/data") if p.exists()), None
        )
    cases = _cases(shared)[: 2 if args.quick else None]
    cache: dict[Path, pl.DataFrame] = {}
    report: dict[str, Any] = {}
    for case in cases:
        started = time.perf_counter()
        events = _events(case, cache)
        n = int((case["end"] - case["start"]) / timedelta(days=args.step_days))
        dates = [case["start"] + timedelta(days=args.step_days * i) for i in range(n)]
        runs = {}
        for update in ("bayesian", "generic", "sequence"):
            runs[update] = evaluate_aftershock_forecasts(
                events,
                dates=dates,
                setting=case["setting"],
                update=update,
                m_test_simulations=200 if args.quick else 1000,
                include_rate_test=update == "bayesian",
            )
        main_run = runs["bayesian"]
        summary = {"poisson": main_run.summary["poisson"], "rate_test": main_run.summary["rate_test"]}
        for update, run in runs.items():
            summary[f"rj_{update}"] = run.summary["reasenberg_jones"]
        key = f"{case['catalog']}/{case['box']['id']}"
        training, settings = main_run.summary["training"], main_run.summary["settings"]
        print(
            f"\n{key}: {case['box']['name']}, setting {case['setting']} ({settings['regime']}), "
            f"{len(dates)} forecasts {settings['first_date']} .. {settings['last_date']} every {args.step_days:g} d, "
            f"{events.height} events"
        )
        print(
            f"  baseline fitted on {training['first_event']} .. {settings['first_date']}: Mc {training['mc']}, "
            f"b {training['b']} +- {training['b_sigma']} (n {training['b_n']}), "
            f"P(M>=6 in 7 d) {training['poisson_p_target']:.3f}"
        )
        for name in MODELS:
            print(_row(name, summary[name]))
        check = _pycsep_check(main_run)
        print(f"  pycsep cross-check: {check}")
        for name in ("reasenberg_jones", "poisson"):
            table = main_run.reliability.filter(pl.col("model") == name)
            cells = ", ".join(
                f"[{r['bin_low']:.2f},{r['bin_high']:.2f}) n {r['n']} p {r['mean_forecast']:.3f} "
                f"obs {r['observed_frequency']:.3f}"
                for r in table.iter_rows(named=True)
            )
            print(f"  reliability {('rj_bayesian' if name == 'reasenberg_jones' else name):<12} {cells}")
        print(f"  ({time.perf_counter() - started:.0f} s)")
        report[key] = {
            "setting": case["setting"],
            "forecasts": len(dates),
            "training": training,
            "pycsep": check,
            "models": {
                name: {k: (round(v, 5) if isinstance(v, float) else v) for k, v in summary[name].items()}
                for name in MODELS
            },
            "reliability": {
                name: main_run.reliability.filter(pl.col("model") == name).drop("model").rows()
                for name in ("reasenberg_jones", "poisson", "rate_test")
            },
        }
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
