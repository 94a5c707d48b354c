"""Grade calibrated scores into warning levels, with persistence against flapping.

Contract of :func:`grade`: in, a calibrated score frame with one detector per series
(normally :func:`anomaly.combine`'s ensemble; a ``driver`` column is used when present);
out, the grade frame of :mod:`core.frames`: ``unique_id, ds, level, score, evidence``.

1. The *raw level* at a timestamp is the highest of blue < yellow < orange < red whose
   threshold the score reaches (:class:`core.frames.Level`).
2. A level *holds* at a timestamp only if at least ``persistence_k`` of the last
   ``persistence_n`` steps of the series (this one included) reached at least that level.
   Steps are the series' own rows, not calendar time. One isolated spike therefore
   grades nothing when ``k >= 2``; a sustained run does.

3. *Cool-down*: once a level held, it is kept for ``cooldown`` further steps after the last
   step where it held (a higher level still takes over at once). An alert therefore closes
   only after ``cooldown`` quiet steps, so a series hovering around a threshold does not
   open, close and reopen alerts (flapping). ``cooldown=0`` turns it off.
4. *Exceedance* (optional): the forecasting exceedance probability at a series' last
   observation (:func:`anomaly.exceedance_scores`) graded on its own ladder
   (``exceedance_thresholds``); the grade there is the higher of the two levels. A forecast
   probability already integrates over the horizon, so it needs no persistence.

Only rows whose raw level or held level is at least blue are returned (a single spike
shows up with ``level="none"`` and its evidence). ``evidence`` is a JSON object with the
score, the thresholds, the raw and held levels, the hits per level in the window, the
window ``n`` and ``k``, the cool-down, the driver detector, and when given: every
detector's raw and calibrated value at that time (``detectors``), the exceedance probability
with its threshold (``exceedance``), and the data freshness (``data``: the series' newest
observation, its age in days at ``as_of`` and whether that exceeds ``stale_after_days``).

:func:`grade_regions` rolls the newest grade of each series up to its region: the highest
level, with the series that carry it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from core.errors import ConfigError, FrameError
from core.frames import Level, validate_scores
from core.vocabulary import LEVEL_RANK, WARNING_LEVELS

__all__ = ["grade", "grade_regions"]

_LEVELS = WARNING_LEVELS


@dataclass(frozen=True)
class _Options:
    """Grading options after :func:`_validate_options`: the two ladders, k of n, cool-down."""

    ladder: dict[Level, float]
    persistence_k: int
    persistence_n: int
    cooldown: int
    exceedance_ladder: dict[Level, float] | None


def grade(
    scores: pl.DataFrame,
    *,
    thresholds: Mapping[str, float],
    persistence_k: int,
    persistence_n: int,
    cooldown: int = 0,
    components: pl.DataFrame | None = None,
    exceedance: pl.DataFrame | None = None,
    exceedance_thresholds: Mapping[str, float] | None = None,
    as_of: datetime | None = None,
    last_observed: Mapping[str, datetime] | None = None,
    stale_after_days: Mapping[str, float] | None = None,
    include_latest: bool = False,
) -> pl.DataFrame:
    """Warning level per flagged timestamp (rules in the module docstring).

    ``components``: the per-detector calibrated scores behind the ensemble (for evidence).
    ``exceedance``: rows of :func:`anomaly.exceedance_scores`, graded on
    ``exceedance_thresholds``. ``as_of``, ``last_observed`` (per series) and
    ``stale_after_days`` (per series) fill the freshness evidence. ``include_latest`` also
    returns each series' newest row when it is not flagged (level ``none`` with its
    evidence), so every scored series has a current grade.

    The steps, in order: :func:`_validate_options`, :func:`_score_frame` (the input),
    :func:`_levels` (rules 1-2), :func:`_cool_down` (rule 3), :func:`_add_exceedance`
    (rule 4), :func:`_flagged`, :func:`_evidence`.
    """
    options = _validate_options(
        thresholds,
        persistence_k=persistence_k,
        persistence_n=persistence_n,
        cooldown=cooldown,
        exceedance_thresholds=exceedance_thresholds,
        grades_exceedance=exceedance is not None,
    )
    frame = _levels(_score_frame(scores), options)
    frame = _cool_down(frame, options.cooldown)
    frame = _add_exceedance(frame, exceedance, options.exceedance_ladder)
    flagged = _flagged(frame, include_latest=include_latest)
    evidence = _evidence(
        flagged,
        options,
        components=components,
        as_of=as_of,
        last_observed=last_observed,
        stale_after_days=stale_after_days,
    )
    return flagged.select(
        "unique_id",
        "ds",
        pl.col("level_index").replace_strict({int(lv): lv.label for lv in Level}, return_dtype=pl.Utf8).alias("level"),
        "score",
        pl.Series("evidence", evidence, dtype=pl.Utf8),
    )


def _validate_options(
    thresholds: Mapping[str, float],
    *,
    persistence_k: int,
    persistence_n: int,
    cooldown: int,
    exceedance_thresholds: Mapping[str, float] | None,
    grades_exceedance: bool,
) -> _Options:
    """Check the options once, in the order a caller reads them, and fix the ladders.

    Not shared with ``core.settings``: that check guards the ``[risk]`` file (thresholds in
    (0, 1), persistence read as TOML integers) and tells the user which key to edit; this one
    guards any caller (thresholds strictly rising in (0, 1], integer k, n and cool-down, the
    exceedance ladder too) and names the argument. The messages differ on purpose.
    """
    ladder = _check_thresholds(thresholds)
    if not isinstance(cooldown, int) or cooldown < 0:
        raise ConfigError(
            f"cooldown={cooldown!r} must be an integer >= 0", fix="use the [scoring] cooldown setting, e.g. 3 steps"
        )
    if grades_exceedance and exceedance_thresholds is None:
        raise ConfigError(
            "exceedance probabilities were given without exceedance_thresholds",
            fix="pass the [scoring] exceedance ladder with the exceedance frame",
        )
    ex_ladder = (
        _check_thresholds(exceedance_thresholds) if exceedance_thresholds is not None and grades_exceedance else None
    )
    if not (isinstance(persistence_k, int) and isinstance(persistence_n, int)) or not (
        1 <= persistence_k <= persistence_n
    ):
        raise ConfigError(
            f"persistence_k={persistence_k!r}, persistence_n={persistence_n!r}: need integers with 1 <= k <= n",
            fix="use the [risk] settings, e.g. persistence_k=2, persistence_n=3",
        )
    return _Options(
        ladder=ladder,
        persistence_k=persistence_k,
        persistence_n=persistence_n,
        cooldown=cooldown,
        exceedance_ladder=ex_ladder,
    )


def _score_frame(scores: pl.DataFrame) -> pl.DataFrame:
    """The score frame checked and cut to ``unique_id, ds, score, driver``: one calibrated row per key."""
    validate_scores(scores)
    driver = pl.col("driver") if "driver" in scores.columns else pl.col("detector")
    frame = scores.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("score").cast(pl.Float64),
        driver.cast(pl.Utf8).alias("driver"),
    )
    if frame.get_column("score").null_count():
        raise FrameError(
            "score frame has missing calibrated scores",
            fix="run anomaly.calibrate (or anomaly.combine) before grading",
        )
    dupes = frame.select(pl.struct("unique_id", "ds").is_duplicated().sum()).item()
    if dupes:
        raise FrameError(
            f"score frame has {dupes} rows sharing a (unique_id, ds) key (several detectors?)",
            fix="grade one detector per series: pass anomaly.combine(scores)",
        )
    return frame


def _levels(frame: pl.DataFrame, options: _Options) -> pl.DataFrame:
    """Rules 1-2: ``raw_level`` from the ladder, ``hits_<level>`` in the window, held ``level_index``."""
    frame = frame.sort("unique_id", "ds").with_columns(
        # Thresholds rise, so the number reached is the raw level's index.
        pl.sum_horizontal([(pl.col("score") >= options.ladder[lv]).cast(pl.Int32) for lv in _LEVELS]).alias("raw_level")
    )
    hits = [
        (pl.col("raw_level") >= int(lv))
        .cast(pl.Int32)
        .rolling_sum(options.persistence_n, min_samples=1)
        .over("unique_id")
        .alias(f"hits_{lv.label}")
        for lv in _LEVELS
    ]
    return frame.with_columns(hits).with_columns(
        # Hits fall as the level rises, so the count of levels held is the held level.
        pl.sum_horizontal(
            [(pl.col(f"hits_{lv.label}") >= options.persistence_k).cast(pl.Int32) for lv in _LEVELS]
        ).alias("level_index")
    )


def _cool_down(frame: pl.DataFrame, cooldown: int) -> pl.DataFrame:
    """Rule 3: keep ``held_index`` (the level that held) and extend ``level_index`` over ``cooldown`` steps."""
    if cooldown:
        return frame.with_columns(
            pl.col("level_index").alias("held_index"),
            pl.col("level_index").rolling_max(cooldown + 1, min_samples=1).over("unique_id").alias("level_index"),
        )
    return frame.with_columns(pl.col("level_index").alias("held_index"))


def _flagged(frame: pl.DataFrame, *, include_latest: bool) -> pl.DataFrame:
    """Rows whose raw or held level is at least blue, and each series' newest row when asked."""
    latest = pl.col("ds") == pl.col("ds").max().over("unique_id")
    return frame.filter((pl.col("raw_level") >= 1) | (pl.col("level_index") >= 1) | (latest & pl.lit(include_latest)))


def _evidence(
    flagged: pl.DataFrame,
    options: _Options,
    *,
    components: pl.DataFrame | None,
    as_of: datetime | None,
    last_observed: Mapping[str, datetime] | None,
    stale_after_days: Mapping[str, float] | None,
) -> list[str]:
    """One JSON evidence object per flagged row (keys in the module docstring)."""
    details = _component_lookup(components, flagged)
    ex_ladder = options.exceedance_ladder
    threshold_map = {lv.label: options.ladder[lv] for lv in _LEVELS}
    ex_thresholds = {lv.label: ex_ladder[lv] for lv in _LEVELS} if ex_ladder is not None else None
    names = [lv.label for lv in Level]  # index -> label, without an enum lookup per row
    hit_columns = [(lv.label, f"hits_{lv.label}") for lv in _LEVELS]
    fresh: dict[str, dict] = {}  # the ``data`` evidence is one per series
    if as_of is not None and last_observed is not None:
        limits = stale_after_days or {}
        fresh = {uid: _freshness(last, as_of, limits.get(uid)) for uid, last in last_observed.items()}
    dumps = json.dumps
    evidence = []
    for row in flagged.iter_rows(named=True):
        level_index = row["level_index"]
        item = {
            "score": row["score"],
            "thresholds": threshold_map,
            "raw_level": names[row["raw_level"]],
            "level": names[level_index],
            "hits": {label: row[column] for label, column in hit_columns},
            "window_n": options.persistence_n,
            "min_hits_k": options.persistence_k,
            "cooldown": options.cooldown,
            "in_cooldown": level_index > row["held_index"],
            "driver": row["driver"],
        }
        uid = row["unique_id"]
        found = details.get((uid, row["ds"])) if details else None
        if found is not None:
            item["detectors"] = found
        if ex_thresholds is not None and row.get("ex_p") is not None:
            item["exceedance"] = {
                "p_path_cross": row["ex_p"],
                "threshold": row["ex_threshold"],
                **({"threshold_value": row["ex_value"]} if row["ex_value"] is not None else {}),
                "level": names[row["ex_level"]],
                "thresholds": ex_thresholds,
            }
        data = fresh.get(uid)
        if data is not None:
            item["data"] = data
        evidence.append(dumps(item, sort_keys=True, default=str))
    return evidence


def _freshness(last: datetime, as_of: datetime, limit: float | None) -> dict:
    """The ``data`` evidence: newest observation, its age in days at ``as_of``, and whether it is stale."""
    age = (as_of - last).total_seconds() / 86400.0
    return {
        "last_observation": last.isoformat(),
        "as_of": as_of.isoformat(),
        "age_days": round(age, 3),
        "stale_after_days": limit,
        "stale": bool(limit is not None and age > limit),
    }


def _add_exceedance(
    frame: pl.DataFrame, exceedance: pl.DataFrame | None, ladder: dict[Level, float] | None
) -> pl.DataFrame:
    """Join the exceedance probability and raise the level where it grades higher."""
    if exceedance is None or ladder is None or exceedance.height == 0:
        return frame.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("ex_p"),
            pl.lit(None, dtype=pl.Float64).alias("ex_threshold"),
            pl.lit(None, dtype=pl.Float64).alias("ex_value"),
            pl.lit(0, dtype=pl.Int32).alias("ex_level"),
        )
    ex = exceedance.select(
        pl.col("unique_id").cast(pl.Utf8),
        pl.col("ds").cast(pl.Datetime("us")),
        pl.col("score").cast(pl.Float64).alias("ex_p"),
        (pl.col("threshold") if "threshold" in exceedance.columns else pl.lit(None)).alias("ex_threshold"),
        (
            pl.col("threshold_value").cast(pl.Float64)
            if "threshold_value" in exceedance.columns
            else pl.lit(None, dtype=pl.Float64)
        ).alias("ex_value"),
    )
    ex = ex.with_columns(
        pl.sum_horizontal([(pl.col("ex_p") >= ladder[lv]).cast(pl.Int32) for lv in _LEVELS]).alias("ex_level")
    )
    joined = frame.join(ex, on=["unique_id", "ds"], how="left").with_columns(pl.col("ex_level").fill_null(0))
    return joined.with_columns(pl.max_horizontal("level_index", "ex_level").alias("level_index"))


def _component_lookup(components: pl.DataFrame | None, flagged: pl.DataFrame) -> dict:
    """``(unique_id, ds) -> {detector: {raw, score}}`` for the flagged rows only."""
    if components is None or components.height == 0 or flagged.height == 0:
        return {}
    keys = flagged.select("unique_id", "ds")
    rows = components.select(
        pl.col("unique_id").cast(pl.Utf8), pl.col("ds").cast(pl.Datetime("us")), "detector", "raw_score", "score"
    ).join(keys, on=["unique_id", "ds"])
    out: dict = {}
    for r in rows.iter_rows(named=True):
        out.setdefault((r["unique_id"], r["ds"]), {})[r["detector"]] = {
            "raw": round(r["raw_score"], 6),
            "score": round(r["score"], 6),
        }
    return out


def grade_regions(latest: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """Highest newest-grade per region: ``region, level, score, series`` (series at that level).

    ``latest``: one grade row per series (``unique_id, level, score``); ``meta``: ``unique_id,
    region``. Series without a region are grouped under ``"(none)"``.
    """
    order = LEVEL_RANK
    frame = latest.join(meta.select("unique_id", "region"), on="unique_id", how="left").with_columns(
        pl.col("region").fill_null("(none)"),
        pl.col("level").replace_strict(order, return_dtype=pl.Int32).alias("rank"),
    )
    top = frame.group_by("region").agg(pl.col("rank").max().alias("rank"))
    carriers = (
        frame.join(top, on=["region", "rank"])
        .group_by("region")
        .agg(pl.col("unique_id").sort().alias("series"), pl.col("score").max().alias("score"))
    )
    return (
        top.join(carriers, on="region")
        .with_columns(
            pl.col("rank").replace_strict({v: k for k, v in order.items()}, return_dtype=pl.Utf8).alias("level")
        )
        .select("region", "level", "score", "series")
        .sort("region")
    )


def _check_thresholds(thresholds: Mapping[str, float]) -> dict[Level, float]:
    names = [lv.label for lv in _LEVELS]
    if set(thresholds) != set(names):
        raise ConfigError(
            f"thresholds name levels {sorted(thresholds)}, need exactly {names}",
            fix="pass RiskSettings.thresholds() (the [risk] settings)",
        )
    ladder = {lv: float(thresholds[lv.label]) for lv in _LEVELS}
    values = list(ladder.values())
    if not all(0.0 < v <= 1.0 for v in values) or any(a >= b for a, b in zip(values, values[1:], strict=False)):
        raise ConfigError(
            f"thresholds must rise strictly within (0, 1] from blue to red, got {values}",
            fix="e.g. blue=0.99, yellow=0.995, orange=0.998, red=0.9995",
        )
    return ladder
