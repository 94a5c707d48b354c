"""The scoring and grading step of the cycle (steps 2 and 3 of ``ews run``).

:func:`score_and_grade` is pure (frames in, frames out): it runs the ``[scoring] detectors``
on every series with at least ``[anomaly] min_history`` observations, adds the forecast
surprise (the observation against its forecast quantiles) where the forecast step produced
an in-sample fit, calibrates every detector causally onto one [0, 1] scale, combines them
(maximum, with the driver), and grades the ensemble with k-of-n persistence, cool-down,
the forecast exceedance probabilities (when present) and the evidence of each grade
(detector values, thresholds, data freshness). :func:`run_score_step` writes the scores and
returns the rarity ``grades`` frame (``unique_id, ds, level, score, evidence``); the levels step
(:mod:`pipelines.hazard_step`) turns it into the levels the alert step reads and writes them.

What is written (issue 21): a series scored before gets the scores and grades of its new
points and of the ``[scoring] recent_window`` steps before them (:func:`written_from`, from the
newest stored ensemble score), always its newest point; older history keeps the rows it was
given when it was new. Grading runs on the written steps plus the ``persistence_n - 1 +
cooldown`` steps before them that k-of-n persistence and the cool-down look back on.

What is computed (issue 21): the detectors run through :func:`anomaly.detect_resumable`. The
``subseq_*`` detectors refit on the fixed ``[scoring] refit_every`` cadence, so a point's raw
score depends on the observations up to it only; a series scored before resumes
(:func:`plan_resume`) from the first graded step: its subsequence detectors score from there
with the stored fit of their last refit edge (``detector_state``, schema 15) and take the raw
scores before it from ``anomaly_scores``; every detector is calibrated from there only. So
every written score and grade equals a full recompute's on the same data
(tests/test_cycle_incremental.py). A series whose stored state does not fit (none yet, another
basis, observations inserted before its refit edge, stored raw scores missing) is computed
and written over its whole history once, as in a first cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

import anomaly
from core.settings import Settings
from warehouse import Warehouse
from warehouse.detector_state import STATE_COLUMNS, read_detector_state, read_raw_scores, upsert_detector_state
from warehouse.grades import newest_scored, upsert_scores

__all__ = [
    "ScoreStepResult",
    "plan_resume",
    "score_and_grade",
    "score_and_grade_in_pool",
    "run_score_step",
    "written_from",
]

_GRADE_COLUMNS = ("unique_id", "ds", "level", "score", "evidence")


@dataclass
class ScoreStepResult:
    scores: pl.DataFrame  # every detector plus the ensemble (score contract + driver)
    grades: pl.DataFrame  # unique_id, ds, level, score, evidence
    regions: pl.DataFrame  # region, level, score, series (newest grade per series rolled up)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # the subsequence detectors' newest fits, one row per (series, detector): STATE_COLUMNS
    state: pl.DataFrame = field(default_factory=lambda: _state_frame([]))


def score_and_grade(
    series: pl.DataFrame,
    *,
    fitted: pl.DataFrame | None,
    exceedance: pl.DataFrame | None,
    meta: pl.DataFrame,
    settings: Settings,
    as_of: datetime,
    since: Mapping[str, datetime] | None = None,
    resume: Mapping[str, anomaly.Resume] | None = None,
) -> ScoreStepResult:
    """Scores and grades for ``series`` (see the module docstring); no I/O.

    ``since``: per series, the first ``ds`` whose scores and grades are returned (from
    :func:`written_from`); series not in it get their whole history. ``resume``: per series,
    the stored state it resumes from (:func:`plan_resume`).
    """
    scoring = settings.scoring
    frequencies = dict(zip(meta["unique_id"], meta["frequency"], strict=True))
    windows = _windows(settings, meta)
    notes: list[str] = []
    detection = anomaly.detect_resumable(
        series,
        windows=windows,
        refit_every=scoring.refit_every,
        detectors=scoring.detectors,
        seed=settings.anomaly.seed,
        min_history=settings.anomaly.min_history,
        tail_quantile=scoring.tail_quantile,
        resume=resume,
    )
    parts = [detection.scores]
    if fitted is not None and fitted.height:
        fit = fitted.filter(pl.col("unique_id").is_in(parts[0].get_column("unique_id").unique().implode()))
        parts.append(anomaly.forecast_surprise(fit, tail_quantile=scoring.tail_quantile, since=detection.since))
    calibrated = (
        pl.concat([p for p in parts if p.height], how="vertical_relaxed") if any(p.height for p in parts) else parts[0]
    )
    scored_ids = set(calibrated.get_column("unique_id").unique().to_list())
    short = sorted(set(frequencies) - scored_ids)
    if short:
        notes.append(
            f"{len(short)} series have fewer than {settings.anomaly.min_history} observations and "
            f"were not scored: {', '.join(short[:5])}{' ...' if len(short) > 5 else ''}"
        )
    ensemble = (
        anomaly.combine(calibrated)
        if calibrated.height
        else calibrated.with_columns(pl.lit(None, dtype=pl.Utf8).alias("driver"))
    )
    last = series.group_by("unique_id").agg(pl.col("ds").max().alias("last"))
    last_observed = dict(zip(last["unique_id"], last["last"], strict=True))
    ex_scores = None
    if exceedance is not None and exceedance.height:
        ex_scores = anomaly.exceedance_scores(exceedance, at=last_observed)
        ex_scores = ex_scores.filter(pl.col("unique_id").is_in(list(scored_ids)))
    stale = {uid: float(scoring.stale_after_days.get(freq, 30.0)) for uid, freq in frequencies.items()}
    first = _since_frame(since)
    if first is not None:
        context = settings.risk.persistence_n - 1 + scoring.cooldown
        graded = _with_context(ensemble, first, context)
        components = calibrated.join(graded.select("unique_id", "ds"), on=["unique_id", "ds"])
    else:
        graded, components = ensemble, calibrated
    grades = (
        anomaly.grade(
            graded,
            thresholds=settings.risk.thresholds(),
            persistence_k=settings.risk.persistence_k,
            persistence_n=settings.risk.persistence_n,
            cooldown=scoring.cooldown,
            components=components,
            exceedance=ex_scores,
            exceedance_thresholds=scoring.exceedance if ex_scores is not None else None,
            as_of=as_of,
            last_observed=last_observed,
            stale_after_days=stale,
            include_latest=True,
        )
        if ensemble.height
        else pl.DataFrame(
            schema={
                "unique_id": pl.Utf8,
                "ds": pl.Datetime("us"),
                "level": pl.Utf8,
                "score": pl.Float64,
                "evidence": pl.Utf8,
            }
        )
    )
    grades = _written(grades, first)
    scores = pl.concat([calibrated, ensemble.select(calibrated.columns)], how="vertical_relaxed")
    if ex_scores is not None and ex_scores.height:
        scores = pl.concat([scores, ex_scores.select(calibrated.columns)], how="vertical_relaxed")
    scores = _written(scores, first)
    grades = grades.select(_GRADE_COLUMNS)
    return ScoreStepResult(
        scores=scores,
        grades=grades,
        regions=_regions(series, grades, meta),
        notes=notes,
        state=_state(series, detection.fits),
    )


def _windows(settings: Settings, meta: pl.DataFrame) -> dict[str, int]:
    """The subsequence window of each series: the ``[anomaly] window`` of its frequency."""
    return {
        uid: max(2, settings.anomaly.window.get(freq, 8))
        for uid, freq in zip(meta["unique_id"], meta["frequency"], strict=True)
    }


def _state_frame(rows: Sequence[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "unique_id": pl.Utf8,
            "detector": pl.Utf8,
            "basis": pl.Utf8,
            "edge": pl.Int64,
            "edge_ds": pl.Datetime("us"),
            "fit": pl.Binary,
        },
        orient="row",
    )


def _state(series: pl.DataFrame, fits: Mapping[tuple[str, str], anomaly.SubsequenceFit]) -> pl.DataFrame:
    """The detector_state rows of ``fits``: the refit edge's timestamp and the fit's bytes."""
    if not fits:
        return _state_frame([])
    parts = series.sort("ds").partition_by("unique_id", as_dict=True)
    stamps = {uid: part.get_column("ds") for (uid,), part in parts.items()}
    rows = [
        (uid, name, fit.basis, fit.edge, stamps[uid][fit.edge], fit.to_bytes() if fit.stored else None)
        for (uid, name), fit in sorted(fits.items())
    ]
    return _state_frame(rows)


def plan_resume(
    series: pl.DataFrame,
    since: Mapping[str, datetime],
    *,
    meta: pl.DataFrame,
    state: pl.DataFrame,
    raw: pl.DataFrame,
    settings: Settings,
) -> tuple[dict[str, datetime], dict[str, anomaly.Resume], list[str]]:
    """Which series scored before resume from stored state, and from where (no I/O).

    A series of ``since`` resumes at the first step grading looks at (``since`` less
    ``persistence_n - 1 + cooldown`` steps) when, for every subsequence detector, the stored
    ``state`` row has the basis the settings give now and its refit edge is still the same
    observation, and ``raw`` (the stored raw scores) covers exactly the observations before
    that step. Returns ``(since, resume, dropped)``: ``since`` without the ``dropped`` series,
    which are computed and written over their whole history instead.
    """
    scoring = settings.scoring
    subseq = anomaly.subsequence_detectors(scoring.detectors)
    min_history = settings.anomaly.min_history
    context = settings.risk.persistence_n - 1 + scoring.cooldown
    windows = _windows(settings, meta)
    stored = {(r["unique_id"], r["detector"]): r for r in state.iter_rows(named=True)}
    raws = raw.partition_by("unique_id", "detector", as_dict=True) if raw.height else {}
    kept: dict[str, datetime] = {}
    resume: dict[str, anomaly.Resume] = {}
    dropped: list[str] = []
    parts = series.filter(pl.col("unique_id").is_in(list(since))).sort("unique_id", "ds")
    for (uid,), part in parts.partition_by("unique_id", maintain_order=True, as_dict=True).items():
        uid = str(uid)
        ds = part.get_column("ds")
        n = part.height
        start = max(0, int(ds.search_sorted(since[uid], side="left")) - context)
        w = windows.get(uid, 8)
        fits: dict[str, anomaly.SubsequenceFit] = {}
        before: dict[str, np.ndarray] = {}
        usable = True
        if start and n >= max(min_history, w + 10):
            warmup = anomaly.cadence_warmup(w, min_history)
            for name in subseq:
                row = stored.get((uid, name))
                basis = anomaly.cadence_basis(
                    name.removeprefix("subseq_"),
                    window=w,
                    warmup=warmup,
                    every=scoring.refit_every,
                    seed=settings.anomaly.seed,
                )
                history = raws.get((uid, name))
                if (
                    row is None
                    or row["basis"] != basis
                    or not 0 <= row["edge"] < n
                    or ds[row["edge"]] != row["edge_ds"]
                    or history is None
                ):
                    usable = False
                    break
                history = history.filter(pl.col("ds") < ds[start])
                if not history.get_column("ds").equals(ds.head(start), check_names=False):
                    usable = False
                    break
                before[name] = history.get_column("raw_score").to_numpy()
                if row["fit"] is not None:
                    fits[name] = anomaly.SubsequenceFit.from_bytes(row["fit"])
        if not usable:
            dropped.append(uid)
            continue
        kept[uid] = since[uid]
        if start:
            resume[uid] = anomaly.Resume(start=start, raw_before=before, fits=fits)
    kept.update({u: v for u, v in since.items() if u not in kept and u not in dropped})
    return kept, resume, dropped


def _regions(series: pl.DataFrame, grades: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """The newest grade of every series rolled up by region (``anomaly.grade_regions``)."""
    last = series.group_by("unique_id").agg(pl.col("ds").max())
    latest = last.join(
        grades.select("unique_id", "ds", "level", "score"), on=["unique_id", "ds"], how="left"
    ).with_columns(pl.col("level").fill_null("none"), pl.col("score").fill_null(0.0))
    return anomaly.grade_regions(latest, meta) if latest.height else pl.DataFrame()


def score_and_grade_in_pool(
    pool: Executor,
    workers: int,
    series: pl.DataFrame,
    *,
    fitted: pl.DataFrame | None,
    exceedance: pl.DataFrame | None,
    meta: pl.DataFrame,
    settings: Settings,
    as_of: datetime,
    since: Mapping[str, datetime] | None = None,
    resume: Mapping[str, anomaly.Resume] | None = None,
) -> ScoreStepResult:
    """:func:`score_and_grade` split by series into ``workers`` contiguous parts run in
    ``pool`` (``[cycle] workers``). Every step of it is per series, so the scores and grades
    are those of one call; the notes are each part's."""
    uids = sorted(series.get_column("unique_id").unique().to_list())
    size = -(-len(uids) // max(1, workers))
    parts = [uids[i : i + size] for i in range(0, len(uids), size)]
    if len(parts) < 2:
        return score_and_grade(
            series,
            fitted=fitted,
            exceedance=exceedance,
            meta=meta,
            settings=settings,
            as_of=as_of,
            since=since,
            resume=resume,
        )

    def only(frame: pl.DataFrame | None, ids: list[str]) -> pl.DataFrame | None:
        return None if frame is None or frame.height == 0 else frame.filter(pl.col("unique_id").is_in(ids))

    futures = [
        pool.submit(
            score_and_grade,
            series.filter(pl.col("unique_id").is_in(ids)),
            fitted=only(fitted, ids),
            exceedance=only(exceedance, ids),
            meta=meta.filter(pl.col("unique_id").is_in(ids)),
            settings=settings,
            as_of=as_of,
            since=None if since is None else {u: since[u] for u in ids if u in since},
            resume=None if resume is None else {u: resume[u] for u in ids if u in resume},
        )
        for ids in parts
    ]
    results = [f.result() for f in futures]
    scores = pl.concat([r.scores for r in results], how="vertical_relaxed")
    grades = pl.concat([r.grades for r in results], how="vertical_relaxed")
    return ScoreStepResult(
        scores=scores,
        grades=grades,
        regions=_regions(series, grades, meta),
        notes=[n for r in results for n in r.notes],
        state=pl.concat([r.state for r in results]),
    )


def written_from(series: pl.DataFrame, newest: Mapping[str, datetime], *, recent: int) -> dict[str, datetime]:
    """Per series scored before (``newest``: its newest stored score), the first ``ds`` a cycle
    writes: the earliest of its new points (after ``newest``), of its last ``recent`` points up
    to ``newest``, and of its newest point. Series absent from ``newest`` are absent here."""
    if not newest:
        return {}
    stored = pl.DataFrame(
        {"unique_id": list(newest), "newest": list(newest.values())},
        schema={"unique_id": pl.Utf8, "newest": pl.Datetime("us")},
    )
    frame = series.select("unique_id", "ds").join(stored, on="unique_id").sort("unique_id", "ds")
    firsts = frame.group_by("unique_id").agg(
        pl.col("ds").filter(pl.col("ds") > pl.col("newest")).min().alias("new"),
        pl.col("ds").filter(pl.col("ds") <= pl.col("newest")).tail(recent).min().alias("recent"),
        pl.col("ds").max().alias("last"),
    )
    out = firsts.select("unique_id", pl.min_horizontal("new", "recent", "last").alias("since"))
    return dict(out.iter_rows())


def _since_frame(since: Mapping[str, datetime] | None) -> pl.DataFrame | None:
    if since is None:
        return None
    return pl.DataFrame(
        {"unique_id": list(since), "since": list(since.values())},
        schema={"unique_id": pl.Utf8, "since": pl.Datetime("us")},
    )


def _written(frame: pl.DataFrame, first: pl.DataFrame | None) -> pl.DataFrame:
    """Rows at or after their series' ``since`` (series without one: every row)."""
    if first is None or frame.height == 0:
        return frame
    joined = frame.join(first, on="unique_id", how="left")
    return joined.filter(pl.col("since").is_null() | (pl.col("ds") >= pl.col("since"))).drop("since")


def _with_context(ensemble: pl.DataFrame, first: pl.DataFrame, context: int) -> pl.DataFrame:
    """The ensemble rows from ``context`` steps before each series' ``since`` on: what grading
    the written steps looks back on (k-of-n persistence, cool-down)."""
    if ensemble.height == 0:
        return ensemble
    ranked = (
        ensemble.sort("unique_id", "ds")
        .join(first, on="unique_id", how="left")
        .with_columns(pl.int_range(pl.len()).over("unique_id").alias("_step"))
    )
    start = ranked.group_by("unique_id").agg(
        pl.col("_step").filter(pl.col("since").is_null() | (pl.col("ds") >= pl.col("since"))).min().alias("_start")
    )
    kept = ranked.join(start, on="unique_id", how="left").filter(
        pl.col("_start").is_null() | (pl.col("_step") >= pl.col("_start") - context)
    )
    return kept.drop("since", "_step", "_start").sort("unique_id", "ds")


def run_score_step(
    wh: Warehouse,
    settings: Settings,
    *,
    series: pl.DataFrame,
    fitted: pl.DataFrame | None,
    exceedance: pl.DataFrame | None,
    meta: pl.DataFrame,
    run_id: str,
    as_of: datetime,
    progress: Callable[[str], None] = lambda _m: None,
    pool: Executor | None = None,
    parts: int | None = None,
) -> ScoreStepResult:
    """Score, grade and write the scores; returns the result with ``counts`` (rows changed per
    table). The grades are written by :func:`pipelines.hazard_step.run_hazard_step`.
    ``pool``: an executor to score in (default: here), split by series into ``parts`` parts
    (default ``[cycle] workers``): a process pool, or a Dask cluster's (:mod:`pipelines.engines`)."""
    detectors = ", ".join(settings.scoring.detectors)
    progress(f"[2/4] scoring anomalies ({detectors}, forecast surprise) on {series.height} points")
    uids = series.get_column("unique_id").unique().to_list()
    newest = newest_scored(wh, uids, detector=anomaly.ENSEMBLE_DETECTOR)
    since = written_from(series, newest, recent=settings.scoring.recent_window)
    resume: dict[str, anomaly.Resume] = {}
    dropped: list[str] = []
    if since:
        subseq = anomaly.subsequence_detectors(settings.scoring.detectors)
        ids = list(since)
        since, resume, dropped = plan_resume(
            series,
            since,
            meta=meta,
            state=read_detector_state(wh, ids),
            raw=read_raw_scores(wh, ids, subseq) if subseq else pl.DataFrame(),
            settings=settings,
        )
    parts = settings.cycle.workers if parts is None else parts
    if pool is not None and parts > 1:
        result = score_and_grade_in_pool(
            pool,
            parts,
            series,
            fitted=fitted,
            exceedance=exceedance,
            meta=meta,
            settings=settings,
            as_of=as_of,
            since=since,
            resume=resume,
        )
    else:
        result = score_and_grade(
            series,
            fitted=fitted,
            exceedance=exceedance,
            meta=meta,
            settings=settings,
            as_of=as_of,
            since=since,
            resume=resume,
        )
    if dropped:
        result.notes.append(
            f"{len(dropped)} series scored before had no usable stored detector state (none yet, "
            f"another [scoring] refit_every or window, or older observations changed): scored and "
            f"written over their whole history, e.g. {', '.join(sorted(dropped)[:5])}"
        )
    # the cycle sums this over its chunks and says it once ([scoring] recent_window)
    result.counts["series_scored_before"] = len(since)
    result.counts["anomaly_scores"] = upsert_scores(
        wh, result.scores.select("unique_id", "ds", "detector", "raw_score", "score"), run_id=run_id
    )
    result.counts["detector_state"] = upsert_detector_state(wh, result.state.select(STATE_COLUMNS), run_id=run_id)
    progress(
        f"[3/4] grading risk levels (blue/yellow/orange/red; persistence "
        f"{settings.risk.persistence_k} of {settings.risk.persistence_n}, cool-down {settings.scoring.cooldown})"
    )
    # The grades are written by the levels step (pipelines/hazard_step.py), which sets the
    # field models' levels and caps the rarity grade first.
    return result
