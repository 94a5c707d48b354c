"""Out-of-sample skill of the market stress composite and the KLR signals (``ews evaluate market``).

The question an analyst asks: *does the indicator warn of a crisis in the next 12 months?*
For every target (US recessions, S&P 500 and CSI 300 bear markets, from
``data/events/market_crises.csv``, read by :func:`pipelines.market_step.read_market_events`;
second legs merged into one episode, :func:`hazards.crisis_episodes`) and every split,
thresholds and weights are fitted on the
training dates only (:class:`hazards.MarketSignals`) and scored on the test dates:

- the main split trains on the weeks up to 1999-12-31 and tests on 2000 on; the reverse
  split trains on 2000 on and tests on the weeks up to 1999-12-31 (a check that the figures
  do not hang on one period). CSI 300 starts in 2002, so its split is 2002-2010 / 2011 on.
- Rows are weeks (Fridays); the composite's inputs are each as published by that Friday
  (:func:`hazards.build_indicators`); the label of a week is "a crisis starts within the
  next 365 days"; weeks inside a crisis (onset to trough) are left out (KLR).
- Figures per indicator, per segment sub-index, for the composite, the signal share and the
  engine's level (yellow or above): AUROC of the continuous value (for an indicator its causal
  rank, the scale its KLR threshold is set on) (NaN for a fixed-threshold
  baseline without one), the noise-to-signal ratio of its signal, POD (crises of the test
  period with a signal in the 365 days before their onset), FAR (share of signals with no
  crisis ahead) and the median lead time.
- Baselines in the same run: the St. Louis Fed Financial Stress Index (STLFSI4, from 1994)
  above 0 and above 1; a plain IForest fitted on the training weeks' raw indicators (its
  threshold chosen like any indicator's); and the current grading's rule applied to the raw
  indicators: a signal when any of them is past the 99.5th percentile of its own past
  (orange on the rarity ladder).

No look-ahead: every input is joined as of its publication (monthly means after their
month); the causal ECDF and the correlation weights use data up to the row; thresholds see
training rows only; a test row's label uses events, never the indicator's future.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import hazards
from core.errors import ConfigError
from core.vocabulary import Level
from hazards.market_indicators import IndicatorSpec

__all__ = [
    "DEFAULT_SPLITS",
    "TARGET_EVENTS",
    "Split",
    "evaluate_market",
    "load_bundled_series",
    "market_table_markdown",
]

#: What each target's crisis is, in words (the tables and the judgments use these).
TARGET_EVENTS: dict[str, str] = {
    "us_recession": "US recession starts (NBER)",
    "sp500_bear": "S&P 500 falls 20 % from its peak",
    "csi300_bear": "CSI 300 falls 20 % from its peak",
}


@dataclass(frozen=True)
class Split:
    name: str
    train: tuple[datetime | None, datetime | None]
    test: tuple[datetime | None, datetime | None]

    def mask(self, ds: pl.Series, which: str) -> np.ndarray:
        lo, hi = self.train if which == "train" else self.test
        values = ds.to_numpy().astype("datetime64[us]")
        out = np.ones(len(values), dtype=bool)
        if lo is not None:
            out &= values >= np.datetime64(lo, "us")
        if hi is not None:
            out &= values <= np.datetime64(hi, "us")
        return out


_Y2K = datetime(1999, 12, 31)
_Y2K1 = datetime(2000, 1, 1)
DEFAULT_SPLITS: dict[str, list[Split]] = {
    "us_recession": [
        Split("train to 1999, test 2000 on", (None, _Y2K), (_Y2K1, None)),
        Split("reverse: train 2000 on, test to 1999", (_Y2K1, None), (None, _Y2K)),
    ],
    "sp500_bear": [
        Split("train to 1999, test 2000 on", (None, _Y2K), (_Y2K1, None)),
        Split("reverse: train 2000 on, test to 1999", (_Y2K1, None), (None, _Y2K)),
    ],
    "csi300_bear": [
        Split(
            "train 2002-2010, test 2011 on",
            (datetime(2002, 1, 1), datetime(2010, 12, 31)),
            (datetime(2011, 1, 1), None),
        ),
    ],
}


def load_bundled_series(
    data_dir: Path, unique_ids: Sequence[str]
) -> tuple[pl.DataFrame, dict[str, str], dict[str, str | None]]:
    """The bundled series named (long frame ``unique_id, ds, y``), their frequencies and
    their ``available_after`` (when a value is published, :mod:`core.availability`), parsed
    with the same parsers and options as ``ews demo`` (``bundled_catalogue``)."""
    from ingest.sources import parse
    from ingest.sources.catalogue import bundled_catalogue

    wanted = set(unique_ids)
    frames: list[pl.DataFrame] = []
    freqs: dict[str, str] = {}
    lags: dict[str, str | None] = {}
    for entry in bundled_catalogue(data_dir):
        uid = entry.options.get("unique_id")
        if uid is not None and uid not in wanted:
            continue
        if uid is None and entry.format not in ("fred_csv", "fred_long_fx", "market_table"):
            continue
        parsed = parse(data_dir / entry.relative_path, entry.format, **dict(entry.options))
        keep = parsed.series.filter(pl.col("unique_id").is_in(list(wanted)))
        if keep.height:
            frames.append(keep.select("unique_id", "ds", pl.col("y").cast(pl.Float64)))
            for row in parsed.meta.filter(pl.col("unique_id").is_in(list(wanted))).iter_rows(named=True):
                freqs[row["unique_id"]] = row.get("frequency") or ""
                lags[row["unique_id"]] = row.get("available_after")
    missing = sorted(wanted - set(freqs))
    if missing:
        raise ConfigError(
            f"the bundled data in {data_dir} has no series {missing}",
            fix="point --data at the project's data/ folder, or change [markets] indicators",
        )
    return pl.concat(frames), freqs, lags


def _rarity_signal(indicators: pl.DataFrame, names: Sequence[str], quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """The current grading's rule on the raw indicators: the max over indicators of each one's
    causal rank among its own past (:func:`hazards.causal_ecdf`), and whether it reaches
    ``quantile``."""
    ranks = np.column_stack([hazards.causal_ecdf(indicators.get_column(n).cast(pl.Float64).to_numpy()) for n in names])
    score = np.nanmax(np.where(np.isnan(ranks), -np.inf, ranks), axis=1)
    return score, score >= quantile


def _iforest(train: np.ndarray, test: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from pyod.models.iforest import IForest

    mean, std = np.nanmean(train, axis=0), np.nanstd(train, axis=0)
    std[std == 0] = 1.0

    def prep(x: np.ndarray) -> np.ndarray:
        return np.nan_to_num((x - mean) / std, nan=0.0)

    model = IForest(random_state=seed, n_estimators=200)
    model.fit(prep(train))
    return model.decision_function(prep(train)), model.decision_function(prep(test))


def _row(
    name: str,
    kind: str,
    score: np.ndarray | None,
    signal: np.ndarray,
    test: pl.DataFrame,
    labels: pl.DataFrame,
    onsets: list[datetime],
    horizon: float,
    nsr_train: float | None,
) -> dict[str, Any]:
    usable = labels.get_column("usable").to_numpy()
    ahead = labels.get_column("ahead").to_numpy()
    skill = hazards.signal_skill(test.get_column("ds"), signal, labels, onsets, horizon_days=horizon)
    auc = hazards.auroc(score[usable], ahead[usable]) if score is not None else float("nan")
    return {
        "indicator": name,
        "kind": kind,
        "auroc": auc,
        "nsr": skill["nsr"],
        "nsr_train": nsr_train,
        "pod": skill["pod"],
        "detected": skill["detected"],
        "events": skill["events"],
        "far": skill["far"],
        "median_lead_days": skill["median_lead_days"],
        "signal_rate": skill["signal_rate"],
    }


def evaluate_market(
    data_dir: Path,
    specs: Sequence[IndicatorSpec],
    *,
    events_file: Path | None = None,
    horizon_days: float = 365.0,
    episode_gap_days: float = 365.0,
    targets: Sequence[str] = ("us_recession", "sp500_bear", "csi300_bear"),
    splits: dict[str, list[Split]] | None = None,
    stress_index: str = "stlfsi4",
    ladder: dict[str, tuple[float, bool]] | None = None,
) -> dict[str, Any]:
    """The out-of-sample table (module docstring) as a JSON-ready dict:
    ``{"targets": {target: {split: {"train_events", "test_events", "rows": [...]}}}, ...}``."""
    data_dir = Path(data_dir)
    ids = sorted({s.unique_id for s in specs} | {stress_index})
    series, freqs, lags = load_bundled_series(data_dir, ids)
    frame = hazards.market_composite(
        series.filter(pl.col("unique_id") != stress_index), specs, frequencies=freqs, available_after=lags
    )
    stress = hazards.build_indicators(
        series.filter(pl.col("unique_id") == stress_index),
        [IndicatorSpec("stlfsi4", stress_index, "level", "stress")],
        frequencies=freqs,
        available_after=lags,
    )
    frame = frame.join(stress, on="ds", how="left")
    segments = list(dict.fromkeys(s.segment for s in specs))
    indicators = [s.name for s in specs]
    columns = [*indicators, *segments]
    from pipelines.market_step import _known_events, coverage_end, read_market_events

    events = read_market_events(events_file or data_dir / "events" / "market_crises.csv")
    grid_end: datetime = frame.get_column("ds").max()  # type: ignore[assignment]
    notes: list[str] = []
    report: dict[str, Any] = {
        "horizon_days": horizon_days,
        "episode_gap_days": episode_gap_days,
        "grid": [frame.get_column("ds").min().isoformat(), frame.get_column("ds").max().isoformat()],  # type: ignore[union-attr]
        "indicators": [s.__dict__ for s in specs],
        "targets": {},
        "notes": notes,
    }
    split_table = splits or DEFAULT_SPLITS
    raw = frame.select(indicators).to_numpy()
    for target in targets:
        episodes = hazards.crisis_episodes(events.filter(pl.col("target") == target), gap_days=episode_gap_days)
        if episodes.height == 0:
            report["targets"][target] = {"note": f"no {target} events in the events file"}
            continue
        # Weeks are labelled only while the target's event list was observed: after its data end
        # (CSI 300's closes stop in 2020-10) a week with no crisis ahead is unknown, not calm.
        covered = coverage_end(events, target)
        if covered is None:
            covered = max(
                d
                for d in events.filter(pl.col("target") == target)
                .select(pl.max_horizontal(pl.col("onset"), pl.col("trough"), pl.col("end")))
                .to_series()
                .to_list()
                if d
            )
            notes.append(
                f"{target}: the events file has no covered_until; labels end at its newest event date "
                f"{covered:%Y-%m-%d}"
            )
        known_until = min(covered, grid_end)
        labels = hazards.crisis_labels(
            frame.get_column("ds"), episodes, horizon_days=horizon_days, known_until=known_until
        )
        out: dict[str, Any] = {}
        if not split_table.get(target):
            report["targets"][target] = {
                "note": f"no train/test split for {target}: pass splits (pipelines.market_evaluation.Split)"
            }
            continue
        for split in split_table.get(target, []):
            tr, te = split.mask(frame.get_column("ds"), "train"), split.mask(frame.get_column("ds"), "test")
            onsets = episodes.sort("onset").get_column("onset").to_list()
            # Training sees only outcomes known by the end of its span: a week of late 2010
            # does not learn from a 2011 crisis that the test period scores.
            train_until = min(known_until, split.train[1]) if split.train[1] else known_until
            # ... and what it knew then: a trough or end after the training span is not known yet
            train_episodes = hazards.crisis_episodes(
                _known_events(events, target, train_until), gap_days=episode_gap_days
            )
            train_labels = hazards.crisis_labels(
                frame.get_column("ds"), train_episodes, horizon_days=horizon_days, known_until=train_until
            ).filter(pl.Series(tr))
            test_labels = labels.filter(pl.Series(te))
            train_onsets = train_episodes.sort("onset").get_column("onset").to_list()
            learned = train_labels.filter(pl.col("usable") & pl.col("ahead")).get_column("crisis").unique().sort()
            test_ds = frame.get_column("ds").filter(pl.Series(te)).to_list()
            entry: dict[str, Any] = {
                "labelled_until": known_until.date().isoformat(),
                "train_span": [_iso(frame, tr, "min"), _iso(frame, tr, "max")],
                "test_span": [_iso(frame, te, "min"), _iso(frame, te, "max")],
                # the crises a training week learned from (one usable week with it ahead)
                "train_crises": [train_onsets[i].date().isoformat() for i in learned.to_list()],
                # the crises POD counts: their whole warning window lies inside the test weeks
                # (hazards.signal_skill's rule)
                "test_crises": [
                    o.date().isoformat()
                    for o in onsets
                    if test_ds and o - timedelta(days=horizon_days) >= test_ds[0] and o <= test_ds[-1]
                ],
            }
            if not tr.any() or not te.any() or not train_labels.filter(pl.col("usable") & pl.col("ahead")).height:
                entry["note"] = "no crisis within the horizon of any usable training week: nothing to fit"
                out[split.name] = entry
                continue
            model = hazards.MarketSignals(indicators=columns, horizon_days=horizon_days)
            if ladder:
                model = hazards.MarketSignals(indicators=columns, horizon_days=horizon_days, ladder=ladder)
            model.fit(frame.filter(pl.Series(tr)), train_labels)
            test = frame.filter(pl.Series(te))
            applied = model.apply(test)
            rows = []
            for name in [*columns, "composite"]:
                rows.append(
                    _row(
                        name,
                        "segment" if name in segments else ("composite" if name == "composite" else "indicator"),
                        test.get_column(f"rank_{name}" if f"rank_{name}" in test.columns else name)
                        .cast(pl.Float64)
                        .fill_null(np.nan)
                        .to_numpy(),
                        applied.get_column(f"signal_{name}").to_numpy(),
                        test,
                        test_labels,
                        onsets,
                        horizon_days,
                        model.fits[name].nsr,
                    )
                )
            level_signal = np.array([Level.parse(v) >= Level.YELLOW for v in applied.get_column("level").to_list()])
            rows.append(
                _row(
                    "signal share (level yellow+)",
                    "engine",
                    applied.get_column("signal_share").to_numpy(),
                    level_signal,
                    test,
                    test_labels,
                    onsets,
                    horizon_days,
                    None,
                )
            )
            fsi = test.get_column("stlfsi4").cast(pl.Float64).fill_null(np.nan).to_numpy()
            for cut in (0.0, 1.0):
                rows.append(
                    _row(
                        f"STLFSI4 > {cut:g}",
                        "baseline",
                        fsi,
                        np.nan_to_num(fsi, nan=-np.inf) > cut,
                        test,
                        test_labels,
                        onsets,
                        horizon_days,
                        None,
                    )
                )
            tr_score, te_score = _iforest(raw[tr], raw[te])
            usable_tr = train_labels.get_column("usable").to_numpy()
            fit = hazards.klr_threshold(
                tr_score[usable_tr], train_labels.get_column("ahead").to_numpy()[usable_tr], name="iforest"
            )
            rows.append(
                _row(
                    "IForest on the raw indicators",
                    "baseline",
                    te_score,
                    te_score >= fit.threshold,
                    test,
                    test_labels,
                    onsets,
                    horizon_days,
                    fit.nsr,
                )
            )
            rank, rare = _rarity_signal(frame, indicators, 0.995)
            rows.append(
                _row(
                    "current grading (any indicator past its 99.5th percentile)",
                    "baseline",
                    rank[te],
                    rare[te],
                    test,
                    test_labels,
                    onsets,
                    horizon_days,
                    None,
                )
            )
            entry.update(
                level_probability=model.level_probability,
                base_rate=model.base_rate,
                rows=rows,
            )
            out[split.name] = entry
        report["targets"][target] = out
    return report


def _iso(frame: pl.DataFrame, mask: np.ndarray, how: str) -> str | None:
    ds = frame.get_column("ds").filter(pl.Series(mask))
    if ds.len() == 0:
        return None
    value = ds.min() if how == "min" else ds.max()
    return value.date().isoformat()  # type: ignore[union-attr]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float) and np.isinf(value):
        return "inf"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def market_table_markdown(report: dict[str, Any]) -> str:
    """The report as the markdown tables docs/anomaly.md carries."""
    lines: list[str] = [f"Note: {n}\n" for n in report.get("notes", [])]
    for target, splits in report["targets"].items():
        if "note" in splits:
            lines.append(f"**{target}**: {splits['note']}\n")
            continue
        for split, entry in splits.items():
            head = (
                f"**{TARGET_EVENTS.get(target, target)}** within {report['horizon_days']:g} days, {split} "
                f"(train {entry['train_span'][0]} .. {entry['train_span'][1]}, "
                f"crises {', '.join(entry['train_crises']) or 'none'}; "
                f"test {entry['test_span'][0]} .. {entry['test_span'][1]}"
            )
            if "note" in entry:
                lines.append(head + f"): {entry['note']}\n")
                continue
            lines.append(
                head + f", crises {', '.join(entry['test_crises']) or 'none'}; "
                f"weeks labelled until {entry['labelled_until']})\n"
            )
            lines.append("| indicator | kind | AUROC | NSR (test) | NSR (train) | POD | FAR | median lead (days) |")
            lines.append("|---|---|---|---|---|---|---|---|")
            for r in entry["rows"]:
                lines.append(
                    f"| {r['indicator']} | {r['kind']} | {_fmt(r['auroc'])} | {_fmt(r['nsr'])} | "
                    f"{_fmt(r['nsr_train'])} | "
                    f"{r['detected']}/{r['events']} | {_fmt(r['far'])} | {_fmt(r['median_lead_days'], 0)} |"
                )
            lines.append("")
    return "\n".join(lines)
