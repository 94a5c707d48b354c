"""``ews backtest``, ``ews model train`` and ``ews model list``.

- ``ews backtest [--series ID ...] [--horizon H] [--windows N] [--models M ...] [--json]``:
  rolling-origin backtest of every candidate model on the warehouse's series (as of the
  replay clock when set), stored as one run in ``backtest_results``; prints each model's
  metrics per series (with ``--json``: ``{"run_id", "series": {id: {model: metrics}}}``, the
  metrics with the model's interval calibration factors, ``interval_scales``, when learned).
- ``ews model train --domain D [--steps N]``: fine-tune the configured Chronos-2 (or train a
  small one from scratch when no base weights are reachable) on the domain's series, with a
  held-out window; registers it in ``models``. The next ``ews backtest`` includes it as a
  candidate for that domain's series; it is used only where it wins.
- ``ews model list``: the registry, newest first.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.settings import Settings
from pipelines.cli.main import open_warehouse, print_result, setup_logging

__all__ = ["register", "cmd_backtest", "cmd_model_train", "cmd_model_list"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    bt = subparsers.add_parser(
        "backtest", parents=[common], help="rolling-origin backtest of every candidate model; stores metrics"
    )
    bt.add_argument("--series", action="append", metavar="ID", help="only this series (repeatable)")
    bt.add_argument("--horizon", type=int, help="steps ahead for every series (default: [forecast] horizon)")
    bt.add_argument("--windows", type=int, help="number of origins (default: [backtest] windows)")
    bt.add_argument("--models", nargs="+", metavar="MODEL", help="statistical candidates (default: [forecast] models)")
    bt.set_defaults(func=cmd_backtest)
    model = subparsers.add_parser("model", help="vertical (domain-trained) models")
    msub = model.add_subparsers(dest="model_command", required=True)
    train = msub.add_parser("train", parents=[common], help="train a Chronos-2 on one domain's series")
    train.add_argument("--domain", required=True, help="market, seismic, geodetic, hydro or satellite")
    train.add_argument("--steps", type=int, help="optimiser steps (default: [chronos] train_steps)")
    train.set_defaults(func=cmd_model_train)
    listing = msub.add_parser("list", parents=[common], help="registered models, newest first")
    listing.set_defaults(func=cmd_model_list)


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from core.clock import Clock, utc_now
    from pipelines.cycle import new_run_id
    from pipelines.forecast_step import run_backtest
    from warehouse.runs import finish_run, start_run

    setup_logging(settings, args.quiet or args.json)
    import logging

    log = logging.getLogger("ews")
    clock = Clock.from_settings(settings)
    run_id = new_run_id(clock.now).replace("r_", "bt_", 1)
    with open_warehouse(settings, args.wait) as wh:
        start_run(wh, run_id=run_id, kind="backtest", started_at=clock.now, as_of=clock.cutoff)
        try:
            with wh.transaction():
                summary = run_backtest(
                    wh,
                    settings,
                    run_id=run_id,
                    clock=clock,
                    unique_ids=args.series,
                    horizon=args.horizon,
                    windows=args.windows,
                    models=args.models,
                    progress=log.info,
                )
        except Exception as exc:
            finish_run(
                wh,
                run_id=run_id,
                status="failed",
                finished_at=utc_now(),
                row_counts={},
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        finish_run(
            wh, run_id=run_id, status="success", finished_at=utc_now(), row_counts={"backtest_results": summary.rows}
        )
    by_series: dict[str, dict[str, Any]] = {}
    for row in summary.metrics.sort("unique_id", "mase", nulls_last=True).iter_rows(named=True):
        by_series.setdefault(row["unique_id"], {})[row["model"]] = {
            k: row[k] for k in ("mase", "smape", "wql", "coverage_80", "coverage_90", "windows", "points", "horizon")
        } | ({"members": json.loads(row["members"])} if row["members"] else {})
        if row.get("interval_scales"):
            by_series[row["unique_id"]][row["model"]]["interval_scales"] = json.loads(row["interval_scales"])
    lines = [f"backtest {run_id}: {len(by_series)} series, {summary.rows} rows stored"]
    for uid, models in by_series.items():
        lines.append(f"{uid}:")
        for name, m in models.items():
            lines.append(
                f"  {name:18s} MASE {_fmt(m['mase'])}  sMAPE {_fmt(m['smape'])}  "
                f"WQL {_fmt(m['wql'])}  cov80 {_fmt(m['coverage_80'])}  "
                f"cov90 {_fmt(m['coverage_90'])}"
            )
    print_result({"run_id": run_id, "series": by_series, "notes": summary.notes}, args.json, "\n".join(lines))
    return 0


def cmd_model_train(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from core.clock import Clock
    from pipelines.forecast_step import train_domain_model
    from warehouse.runs import audit

    setup_logging(settings, args.quiet or args.json)
    clock = Clock.from_settings(settings)
    with open_warehouse(settings, args.wait) as wh:
        with wh.transaction():
            entry = train_domain_model(
                wh, settings, domain=args.domain, clock=clock, steps=args.steps, progress=logging.getLogger("ews").info
            )
            audit(
                wh,
                at=clock.now,
                actor="cli",
                action="model.trained",
                target=entry["model_id"],
                detail={"domain": args.domain, "steps": entry["steps"], "data_hash": entry["data_hash"]},
            )
    val = entry["validation"]
    text = (
        f"trained {entry['model_id']} ({entry['base']}, {entry['steps']} steps) on "
        f"{len(entry['training_series'])} series; held-out MASE "
        + ", ".join(f"{k} {_fmt(v['mase'])}" for k, v in val.items())
        + f"\nsaved to {entry['path']}; run `ews backtest` to let it compete"
    )
    print_result(entry, args.json, text)
    return 0


def cmd_model_list(args: argparse.Namespace, settings: Settings) -> int:
    from warehouse.forecast_store import read_models

    with open_warehouse(settings, args.wait) as wh:
        models = read_models(wh)
    rows = []
    for row in models.iter_rows(named=True):
        rows.append(
            {
                **row,
                "training_series": json.loads(row["training_series"]),
                "batch_ids": json.loads(row["batch_ids"]),
                "validation": json.loads(row["validation"]),
            }
        )
    text = (
        "\n".join(
            f"{r['model_id']}  {r['domain']}  base={r['base']}  steps={r['steps']}  "
            f"series={len(r['training_series'])}  {r['path']}"
            for r in rows
        )
        or "no trained models (run `ews model train --domain DOMAIN`)"
    )
    print_result({"models": rows}, args.json, text)
    return 0


def _fmt(value: Any) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"
