"""``ews evaluate``: score the engine against labelled anomalies and historical events.

- ``ews evaluate nab --data DIR --labels FILE [--json]``: NAB standard / low-FP / low-FN
  scores, VUS-PR and range AUC-PR, with per-file results and the IForest baseline.
- ``ews evaluate labelled FILE... --label-column anomaly [--sep ';'] ...``: the same report for
  per-row labelled CSVs (e.g. SKAB).
- ``ews evaluate market [--data DIR] [--json]``: the composite, its segments, every indicator
  and the KLR signal share against crises in the next 365 days (US recessions, S&P 500 and
  CSI 300 bear markets), thresholds fitted on one period and scored on another, with the
  STLFSI4, IForest and current-grading baselines (:mod:`pipelines.market_evaluation`).
- ``ews evaluate events [--data DIR]``: POD, FAR, CSI, lead times and the KLR noise-to-signal
  ratio on the bundled data (recessions; significant earthquakes), with the matching
  windows of :data:`pipelines.evaluation.MATCHING_RULES`; then the issue-14 tables
  (earthquakes, rivers, calm-period false reds+oranges per series-year) for the new levels,
  the current grading and IForest (:mod:`pipelines.event_tables`).

The ``feedback`` subcommand (duty-officer review statistics) is added by
``pipelines.cli.alerts.add_feedback_parser(evaluate_subparsers, common)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.settings import Settings

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> Any:
    """Add ``evaluate`` and its subcommands; returns the ``evaluate`` subparsers."""
    evaluate = subparsers.add_parser("evaluate", help="score detectors against labels and historical events")
    esub = evaluate.add_subparsers(dest="what", required=True)
    nab = esub.add_parser("nab", parents=[common], help="NAB-format corpus: NAB scores, VUS-PR, per file")
    nab.add_argument("--data", required=True, help="folder with NAB's <group>/<file>.csv layout")
    nab.add_argument("--labels", required=True, help="windows JSON (NAB labels/combined_windows.json)")
    nab.add_argument("--detectors", help="comma-separated detector names (default: the engine's)")
    nab.add_argument("--no-baseline", action="store_true", help="skip the plain IForest baseline")
    nab.add_argument("--limit", type=int, help="score only the first N files (quick look)")
    nab.set_defaults(func=cmd_nab)
    lab = esub.add_parser("labelled", parents=[common], help="CSV files with per-row 0/1 labels (e.g. SKAB)")
    lab.add_argument("paths", nargs="+")
    lab.add_argument("--time-column", default="datetime")
    lab.add_argument("--value-column", required=True)
    lab.add_argument("--label-column", default="anomaly")
    lab.add_argument("--sep", default=",", help="field separator (SKAB uses ';')")
    lab.add_argument("--no-baseline", action="store_true")
    lab.set_defaults(func=cmd_labelled)
    events = esub.add_parser("events", parents=[common], help="early-warning skill on historical events")
    events.add_argument("--data", help="data folder (default: the bundled data/)")
    events.set_defaults(func=cmd_events)
    market = esub.add_parser(
        "market", parents=[common], help="market stress composite and KLR signals, out of sample (issue 15)"
    )
    market.add_argument("--data", help="data folder (default: the bundled data/)")
    market.set_defaults(func=cmd_market)
    # `ews evaluate feedback` is the alerts' own evaluation (analyst verdicts vs thresholds)
    from pipelines.cli.alerts import add_feedback_parser

    add_feedback_parser(esub, common)
    return esub


def _detectors(text: str | None) -> tuple[str, ...]:
    import anomaly

    return anomaly.ALARM_DETECTORS if not text else tuple(t.strip() for t in text.split(",") if t.strip())


def cmd_nab(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.cli.main import print_result
    from pipelines.evaluation import evaluate_nab

    report = evaluate_nab(
        Path(args.data),
        Path(args.labels),
        detectors=_detectors(args.detectors),
        baseline=not args.no_baseline,
        limit=args.limit,
    )
    base = report.get("iforest_baseline", {})
    text = (
        f"NAB over {report['files_scored']} files ({report['windows']} windows): standard "
        f"{report['nab_score']:.1f}, low FP {report['nab_score_low_fp']:.1f}, low FN "
        f"{report['nab_score_low_fn']:.1f}; VUS-PR {report['vus_pr']}"
        + (f"\nIForest baseline: standard {base['nab_score']:.1f}, VUS-PR {base['vus_pr']}" if base else "")
        + (f"\nlabel keys without data: {len(report['missing_files'])}" if report["missing_files"] else "")
    )
    print_result(report, args.json, text)
    return 0


def cmd_labelled(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.cli.main import print_result
    from pipelines.evaluation import evaluate_labelled

    report = evaluate_labelled(
        [Path(p) for p in args.paths],
        time_column=args.time_column,
        value_column=args.value_column,
        label_column=args.label_column,
        separator=args.sep,
        baseline=not args.no_baseline,
    )
    print_result(
        report,
        args.json,
        f"{report['files_scored']} files: NAB standard {report['nab_score']:.1f}, "
        f"VUS-PR {report['vus_pr']}, range AUC-PR {report['range_auc_pr']}",
    )
    return 0


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.batches import sample_data_dir
    from pipelines.cli.main import print_result
    from pipelines.evaluation import evaluate_events

    data = Path(args.data) if args.data else sample_data_dir(settings)
    report = evaluate_events(
        data,
        thresholds=settings.risk.thresholds(),
        k=settings.risk.persistence_k,
        n=settings.risk.persistence_n,
        cooldown=settings.scoring.cooldown,
        hazard_settings=settings.hazards,
    )
    lines = ["target            who       events hits FA   POD   FAR   CSI   lead(d) NSR"]
    rows = [("market/recession", report["market"])] + [(f"seismic/{r}", v) for r, v in report["seismic"].items()]
    for name, block in rows:
        for who, s in block.items():
            lines.append(
                f"{name:<17} {who[:9]:<9} {s['events']:>6} {s['hits']:>4} {s['false_alarms']:>4} "
                f"{s['pod']:.2f}  {s['far']:.2f}  {s['csi']:.2f}  {s['median_lead_days']}  "
                f"{s['noise_to_signal']}"
            )
    if "earthquakes" in report:
        from pipelines.event_tables import render_event_tables

        lines.extend(["", *render_event_tables(report)])
    print_result(report, args.json, "\n".join(lines))
    return 0


def cmd_market(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from ingest.batches import sample_data_dir
    from pipelines.market_evaluation import DEFAULT_SPLITS, evaluate_market, market_table_markdown
    from pipelines.market_step import events_path, indicator_specs

    data = Path(args.data) if args.data else sample_data_dir(settings)
    cfg = settings.markets
    report = evaluate_market(
        data,
        indicator_specs(cfg),
        events_file=events_path(settings) if cfg.events_file else None,
        horizon_days=float(cfg.horizon_days),
        episode_gap_days=float(cfg.episode_gap_days),
        # the cycle's targets, then any other target the bundled splits cover (CSI 300)
        targets=list(dict.fromkeys([*cfg.targets, *DEFAULT_SPLITS])),
        ladder=cfg.ladder_rungs(),
    )
    print(json.dumps(report, indent=2, default=str) if args.json else market_table_markdown(report))
    return 0
