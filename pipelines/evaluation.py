"""Evaluation harness: read labelled data, run the engine and a plain IForest, score both.

What ``ews evaluate`` and ``benchmarks/anomaly_nab.py`` call. File reading lives here; the
scoring rules live in :mod:`anomaly.evaluation`.

- :func:`evaluate_nab`: NAB-format corpus (``<group>/<file>.csv`` with ``timestamp,value``,
  windows JSON keyed by the same relative paths). Files present are scored; label keys
  without a data file are reported under ``missing_files`` (NAB's own loader would stop).
- :func:`evaluate_labelled`: any CSV with a time column, a value column and per-row 0/1
  labels (e.g. SKAB); windows are the runs of 1s.
- :func:`evaluate_events`: early-warning skill on the bundled data: the market stress
  composite against NBER recession onsets, and regional earthquake-rate alarms against the
  NOAA/NCEI significant-earthquake list.

Every report carries the same numbers for ``iforest_baseline``: PyOD's IForest on sliding
windows of the raw values, fitted on the whole series, its decision scores min-max scaled
per file (what a user gets from PyOD without the engine's calibration).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import anomaly
import hazards
from anomaly.evaluation import (
    NAB_PROFILES,
    NabFile,
    event_skill,
    labels_from_windows,
    nab_score,
    point_pr_auc,
    range_pr_auc,
    vus_pr,
)
from core.availability import known_at
from core.errors import DataFormatError
from core.settings import HazardSettings
from core.vocabulary import LEVEL_RANK, Domain, Level

__all__ = [
    "load_nab_corpus",
    "evaluate_nab",
    "evaluate_labelled",
    "evaluate_events",
    "iforest_baseline_scores",
    "MATCHING_RULES",
]

_PROFILE_KEYS = {
    "standard": "nab_score",
    "reward_low_FP_rate": "nab_score_low_fp",
    "reward_low_FN_rate": "nab_score_low_fn",
}

#: The matching windows of `ews evaluate events`, fixed here before any scoring.
MATCHING_RULES: dict[str, dict[str, Any]] = {
    Domain.MARKET.value: {
        "events": "NBER recession onsets (USREC 0 -> 1)",
        "lead_days": 365,
        "grace_days": 91,
        "alarm_level": Level.BLUE.label,
        "step": "week (W-FRI)",
    },
    Domain.SEISMIC.value: {
        "events": "NOAA/NCEI significant earthquakes, M >= 6.0, inside the region box",
        "lead_days": 30,
        "grace_days": 0,
        "alarm_level": Level.BLUE.label,
        "step": "day",
    },
}


def _read_value_csv(
    path: Path, *, time_column: str = "timestamp", value_column: str = "value", separator: str = ","
) -> pl.DataFrame:
    try:
        raw = pl.read_csv(path, separator=separator, try_parse_dates=False, infer_schema_length=0)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(f"cannot read {path}: {exc}", fix="give a CSV with a header row") from None
    for col in (time_column, value_column):
        if col not in raw.columns:
            raise DataFormatError(
                f"{path} lacks column {col!r}; it has {raw.columns}",
                fix="name the time and value columns (--time-column/--value-column)",
            )
    frame = raw.select(
        pl.col(time_column).str.to_datetime(strict=False, time_unit="us").alias("ds"),
        pl.col(value_column).cast(pl.Float64, strict=False).alias("y"),
        *[pl.col(c) for c in raw.columns if c not in (time_column, value_column)],
    )
    bad = frame.filter(pl.col("ds").is_null() | pl.col("y").is_null()).height
    if bad:
        raise DataFormatError(
            f"{path}: {bad} row(s) with an unreadable time or value",
            fix="times like 2014-02-19 10:50:00 and numeric values",
        )
    return frame


def load_nab_corpus(data_dir: Path, labels_path: Path) -> tuple[list[tuple[str, pl.DataFrame, list]], list[str]]:
    """``([(relative_path, frame ds,y, windows)], missing label keys)`` of a NAB-format corpus."""
    try:
        labels = json.loads(Path(labels_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(
            f"cannot read the windows file {labels_path}: {exc}",
            fix="pass NAB's labels/combined_windows.json (or a file like it)",
        ) from None
    files, missing = [], []
    for key in sorted(labels):
        path = Path(data_dir) / key
        if not path.is_file():
            missing.append(key)
            continue
        windows = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in labels[key]]
        files.append((key, _read_value_csv(path).sort("ds"), windows))
    if not files:
        raise DataFormatError(
            f"none of the {len(labels)} files named in {labels_path} is under {data_dir}",
            fix="point --data at the folder holding NAB's <group>/<file>.csv layout",
        )
    return files, missing


def iforest_baseline_scores(y: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Plain PyOD IForest over sliding windows (dominant-period length), min-max scaled."""
    from numpy.lib.stride_tricks import sliding_window_view
    from pyod.models.iforest import IForest

    w = anomaly.default_window(y)
    if len(y) < w + 2:
        return np.zeros(len(y))
    windows = sliding_window_view(np.asarray(y, dtype=np.float64), w)
    forest = IForest(n_estimators=100, random_state=seed, n_jobs=1).fit(windows)
    raw = np.concatenate([np.full(w - 1, forest.decision_scores_[0]), forest.decision_scores_])
    span = raw.max() - raw.min()
    return (raw - raw.min()) / span if span > 0 else np.zeros(len(y))


def _engine_scores(frame: pl.DataFrame, name: str, detectors: Sequence[str]) -> np.ndarray:
    """One engine score per row, in row order.

    Some NAB files repeat a timestamp (e.g. ec2_request_latency_system_failure); the
    engine's series contract wants unique times, so repeats are moved on by a microsecond
    per repeat. Rows keep their order and the scorer still sees one score per row.
    """
    series = frame.select(pl.lit(name).alias("unique_id"), "ds", "y").with_columns(
        (pl.col("ds") + pl.duration(microseconds=pl.int_range(pl.len()).over("ds"))).alias("ds")
    )
    scores = anomaly.alarm_scores(series, detectors=detectors)
    joined = series.select("ds").join(scores.select("ds", "score"), on="ds", how="left", maintain_order="left")
    return joined.get_column("score").fill_null(0.0).to_numpy()


def _summarise(named: list[tuple[str, np.ndarray, np.ndarray, list]], *, with_files: bool) -> dict[str, Any]:
    """NAB (3 profiles), VUS-PR, range and point AUC-PR of one detector over a corpus."""
    nab_files = [NabFile(n, ts, s, tuple(w)) for n, ts, s, w in named]
    out: dict[str, Any] = {}
    results = {p: nab_score(nab_files, profile=p) for p in NAB_PROFILES}
    for profile, key in _PROFILE_KEYS.items():
        out[key] = round(results[profile].normalised, 3)
    out["thresholds"] = {p: r.threshold for p, r in results.items()}
    vus, rauc, pauc = [], [], []
    for _, ts, s, w in named:
        labels = labels_from_windows(ts, w)
        if labels.any():
            vus.append(vus_pr(labels, s))
            rauc.append(range_pr_auc(labels, s))
            pauc.append(point_pr_auc(labels, s))
    out["vus_pr"] = round(float(np.mean(vus)), 4) if vus else None
    out["range_auc_pr"] = round(float(np.mean(rauc)), 4) if rauc else None
    out["point_auc_pr"] = round(float(np.mean(pauc)), 4) if pauc else None
    if with_files:
        std = {f.name: f for f in results["standard"].files}
        out["files"] = [
            {
                "file": f.name,
                "windows": f.windows,
                "windows_detected": f.windows_detected,
                "raw_score_standard": round(f.score, 4),
                "tp": f.tp,
                "fp": f.fp,
                "fn": f.fn,
            }
            for f in std.values()
        ]
    return out


def _run_corpus(
    corpus: list[tuple[str, pl.DataFrame, list]], detectors: Sequence[str], baseline: bool
) -> dict[str, Any]:
    engine, plain = [], []
    for name, frame, windows in corpus:
        ts = frame.get_column("ds").to_numpy()
        y = frame.get_column("y").to_numpy()
        engine.append((name, ts, _engine_scores(frame, name, detectors), windows))
        if baseline:
            plain.append((name, ts, iforest_baseline_scores(y), windows))
    report = {"detectors": list(detectors), **_summarise(engine, with_files=True)}
    if baseline:
        report["iforest_baseline"] = _summarise(plain, with_files=False)
    return report


def evaluate_nab(
    data_dir: Path,
    labels_path: Path,
    *,
    detectors: Sequence[str] = anomaly.ALARM_DETECTORS,
    baseline: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    """Engine and IForest-baseline NAB / VUS-PR report over a NAB-format corpus."""
    corpus, missing = load_nab_corpus(data_dir, labels_path)
    corpus = corpus[:limit] if limit else corpus
    report = _run_corpus(corpus, detectors, baseline)
    report["files_scored"] = len(corpus)
    report["missing_files"] = missing
    report["windows"] = int(sum(len(w) for _, _, w in corpus))
    return report


def evaluate_labelled(
    paths: Sequence[Path],
    *,
    time_column: str,
    value_column: str,
    label_column: str,
    separator: str = ",",
    detectors: Sequence[str] = anomaly.ALARM_DETECTORS,
    baseline: bool = True,
) -> dict[str, Any]:
    """Same report for CSVs with per-row 0/1 labels (windows = runs of 1s)."""
    corpus = []
    for path in paths:
        frame = _read_value_csv(Path(path), time_column=time_column, value_column=value_column, separator=separator)
        if label_column not in frame.columns:
            raise DataFormatError(f"{path} lacks label column {label_column!r}", fix="pass --label-column")
        frame = frame.sort("ds")
        labels = frame.get_column(label_column).cast(pl.Float64, strict=False).fill_null(0).to_numpy() > 0
        ds = frame.get_column("ds").to_list()
        edges = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(int), [0]])))
        windows = [(ds[a], ds[b - 1]) for a, b in zip(edges[::2], edges[1::2], strict=True)]
        corpus.append((Path(path).name, frame.select("ds", "y"), windows))
    report = _run_corpus(corpus, detectors, baseline)
    report["files_scored"] = len(corpus)
    return report


# -- event skill on the bundled data ---------------------------------------------------------------
def _grade_flags(
    scores: pl.DataFrame, *, thresholds: dict[str, float], k: int, n: int, cooldown: int, alarm_level: str
) -> pl.DataFrame:
    graded = anomaly.grade(scores, thresholds=thresholds, persistence_k=k, persistence_n=n, cooldown=cooldown)
    floor = int(Level.parse(alarm_level))
    hit = graded.filter(pl.col("level").replace_strict(LEVEL_RANK, return_dtype=pl.Int32) >= floor).select("ds")
    return scores.select("ds").with_columns(pl.col("ds").is_in(hit.get_column("ds").implode()).alias("flag"))


def _skill_dict(
    flags: pl.DataFrame, events: list[datetime], rule: dict[str, Any], ends: list[datetime] | None = None
) -> dict[str, Any]:
    skill = event_skill(
        flags, events, lead=timedelta(days=rule["lead_days"]), grace=timedelta(days=rule["grace_days"]), event_ends=ends
    )
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in skill.as_dict().items()}


def _recessions(path: Path) -> tuple[list[datetime], list[datetime]]:
    frame = _read_value_csv(path, time_column="date", value_column="value").sort("ds")
    flag = frame.get_column("y").to_numpy() > 0
    ds = frame.get_column("ds").to_list()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flag.astype(int), [0]])))
    return [ds[a] for a in edges[::2]], [ds[b - 1] for b in edges[1::2]]


def market_stress_frame(data_dir: Path) -> pl.DataFrame:
    """Weekly CISS-like composite from the bundled FRED files (see docs/anomaly.md).

    Each row is stamped when its STLFSI4 week was published (the series' ``available_after``,
    :func:`core.availability.known_at`: the Thursday after the week), and the daily inputs
    join as known by then, so an alarm is matched from the day it could have been raised."""
    from pipelines.market_evaluation import load_bundled_series

    series, freqs, lags = load_bundled_series(data_dir, ["stlfsi4", "dgs10", "t10y2y"])

    def known(uid: str, name: str) -> pl.DataFrame:
        own = series.filter(pl.col("unique_id") == uid).sort("ds")
        return own.select(known_at(pl.col("ds"), freqs[uid], lags[uid]).alias("ds"), pl.col("y").alias(name))

    stress = known("stlfsi4", "stlfsi4")
    daily = known("dgs10", "dgs10").join(known("t10y2y", "t10y2y"), on="ds", how="full", coalesce=True).sort("ds")
    daily = daily.with_columns(
        pl.col("dgs10").diff().rolling_std(20, min_samples=10).alias("rates_volatility"),
        (-pl.col("t10y2y")).alias("curve_inversion"),
    )
    grid = stress.select("ds")
    joined = grid.join_asof(
        daily.select("ds", "rates_volatility", "curve_inversion").drop_nulls(), on="ds", strategy="backward"
    ).join(stress, on="ds")
    return hazards.stress_composite(
        joined.drop_nulls(),
        segments={
            "financial_stress": ["stlfsi4"],
            "rates_volatility": ["rates_volatility"],
            "yield_curve": ["curve_inversion"],
        },
    ).drop_nulls("composite")


def _significant_quakes(path: Path, box: dict[str, float], min_magnitude: float) -> list[datetime]:
    raw = pl.read_csv(path, infer_schema_length=0)
    frame = raw.select(
        pl.col("Year").cast(pl.Int32, strict=False),
        pl.col("Mo").cast(pl.Int32, strict=False),
        pl.col("Dy").cast(pl.Int32, strict=False),
        pl.col("Latitude").cast(pl.Float64, strict=False),
        pl.col("Longitude").cast(pl.Float64, strict=False),
        pl.col("Mag").cast(pl.Float64, strict=False),
    ).drop_nulls()
    inside = frame.filter(
        pl.col("Latitude").is_between(box["min_lat"], box["max_lat"])
        & pl.col("Longitude").is_between(box["min_lon"], box["max_lon"])
        & (pl.col("Mag") >= min_magnitude)
    )
    days = sorted({datetime(r["Year"], r["Mo"], r["Dy"]) for r in inside.iter_rows(named=True)})
    # One event per sequence: a significant quake within 30 days of the previous one is its aftershock.
    kept: list[datetime] = []
    for day in days:
        if not kept or day - kept[-1] > timedelta(days=30):
            kept.append(day)
    return kept


def evaluate_events(
    data_dir: Path, *, thresholds: dict[str, float], k: int, n: int, cooldown: int, hazard_settings: HazardSettings
) -> dict[str, Any]:
    """Event skill of the engine and the IForest baseline on the bundled market and seismic data."""
    from ingest.sources import parse
    from ingest.sources.catalogue import SEISMIC_REGIONS

    report: dict[str, Any] = {
        "matching_rules": MATCHING_RULES,
        "grading": {"thresholds": thresholds, "persistence_k": k, "persistence_n": n, "cooldown": cooldown},
    }
    rule = MATCHING_RULES[Domain.MARKET]
    onsets, ends = _recessions(data_dir / "events" / "fred_USREC_nber_recession_monthly.csv")
    composite = market_stress_frame(data_dir)
    engine = anomaly.calibrate_causal(
        composite.select(
            pl.lit("us_stress").alias("unique_id"),
            "ds",
            pl.lit("stress_composite").alias("detector"),
            pl.col("composite").alias("raw_score"),
        )
    )
    plain = _baseline_scores(
        composite.select(pl.lit("us_stress").alias("unique_id"), "ds", pl.col("financial_stress").alias("y"))
    )
    report["market"] = {
        "engine": _skill_dict(
            _grade_flags(engine, thresholds=thresholds, k=k, n=n, cooldown=cooldown, alarm_level=rule["alarm_level"]),
            onsets,
            rule,
            ends,
        ),
        "iforest_baseline": _skill_dict(
            _grade_flags(plain, thresholds=thresholds, k=k, n=n, cooldown=cooldown, alarm_level=rule["alarm_level"]),
            onsets,
            rule,
            ends,
        ),
    }
    rule = MATCHING_RULES[Domain.SEISMIC]
    quakes_path = data_dir / "events" / "noaa_ncei_significant_earthquakes_asia_2005_2023.csv"
    catalogs = {
        "japan": "seismic/usgs_comcat_japan_2005_2014_processed.csv",
        "eastasia": "seismic/usgs_comcat_eastasia_m4_2018_2023.csv",
    }
    report["seismic"] = {}
    for catalog, relative in catalogs.items():
        parsed = parse(data_dir / relative, "usgs_catalog", regions=SEISMIC_REGIONS[catalog])
        if parsed.events is None:  # a catalog parser always returns its events
            raise RuntimeError(f"internal error: the usgs_catalog parser returned no events for {relative}")
        for box in SEISMIC_REGIONS[catalog]:
            ev = parsed.events.filter(
                pl.col("lat").is_between(box["min_lat"], box["max_lat"])
                & pl.col("lon").is_between(box["min_lon"], box["max_lon"])
            )
            indicators = hazards.seismic_indicators(ev)
            engine = hazards.seismic_rate_scores(indicators, unique_id=box["id"])
            counts = indicators.select(
                pl.lit(box["id"]).alias("unique_id"), "ds", pl.col("events").cast(pl.Float64).alias("y")
            )
            # Score the same days as the engine (its rate test needs one window of history).
            plain = _baseline_scores(counts).filter(pl.col("ds") >= engine.get_column("ds").min())
            quakes = _significant_quakes(quakes_path, box, 6.0)
            report["seismic"][box["id"]] = {
                "engine": _skill_dict(
                    _grade_flags(
                        engine, thresholds=thresholds, k=k, n=n, cooldown=cooldown, alarm_level=rule["alarm_level"]
                    ),
                    quakes,
                    rule,
                ),
                "iforest_baseline": _skill_dict(
                    _grade_flags(
                        plain, thresholds=thresholds, k=k, n=n, cooldown=cooldown, alarm_level=rule["alarm_level"]
                    ),
                    quakes,
                    rule,
                ),
            }
    from pipelines.event_tables import event_tables

    report.update(
        event_tables(
            data_dir,
            grading={"thresholds": thresholds, "k": k, "n": n, "cooldown": cooldown},
            significant_quakes=_significant_quakes,
            baseline_scores=_baseline_scores,
            hazard_settings=hazard_settings,
            recession_spans=[
                (
                    onset - timedelta(days=MATCHING_RULES[Domain.MARKET]["lead_days"]),
                    end + timedelta(days=MATCHING_RULES[Domain.MARKET]["grace_days"]),
                )
                for onset, end in zip(onsets, ends, strict=True)
            ],
        )
    )
    return report


def _baseline_scores(series: pl.DataFrame) -> pl.DataFrame:
    """IForest baseline as an ECDF-calibrated score frame (so it grades on the same ladder)."""
    y = series.get_column("y").to_numpy()
    raw = iforest_baseline_scores(y)
    frame = series.select("unique_id", "ds", pl.lit("iforest_plain").alias("detector"), pl.Series("raw_score", raw))
    return anomaly.calibrate(frame)
