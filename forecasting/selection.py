"""Choosing each series' production model from its backtest, and saying why.

Rule (:func:`select_models`): per series, the candidates are the models scored on the
series' full set of backtest windows; the winner is the one with the lowest ``criterion``
(MASE by default, ties broken by WQL). Nothing else is ever promoted:

- with a ``margin`` (``[backtest] margin``), a challenger replaces the configured default
  model only when it beats the default's score on the same windows by more than that share;
  otherwise the default, itself scored in the backtest, is kept and the reason says by how
  little the challenger won (a few noisy windows should not flip a series' model);

- a series **without** a backtest gets the configured default model, and the reason says
  so ("no backtest yet") so it is visibly not a winner;
- when the winner is not available now (e.g. Chronos weights were removed), the best
  *available* candidate of the same backtest is used and the reason names both.

Out: one row per series: ``unique_id, model, criterion, score, runner_up, runner_up_score,
baseline_score, windows, reason`` (``score`` is the winner's criterion value, ``baseline_score``
SeasonalNaive's on the same windows when it was scored). When ``metrics`` carries a ``run_id``
column (stored backtests), the reason names the backtest run each series was judged on; when it
carries ``members`` (the JSON list an ensemble row combines, :func:`forecasting.backtest`), the
reason of a series that chose an ensemble names its members and how they were chosen.

Rules across series (:func:`select_by_rule`, ``[backtest] choose``; names in
:data:`core.vocabulary.SELECTION_RULES`):

- ``"series"``: :func:`select_models` as above, each series on its own windows.
- ``"frequency"``: per frequency, one candidate for all its series (:func:`pooled_choice`): the
  backtest's window scores (:attr:`forecasting.BacktestResult.window_metrics`) of every series
  of the frequency are pooled and the candidate with the lowest pooled criterion wins (MASE:
  the mean over series x windows; ties by WQL). Candidates are compared on the same pairs: the
  series every compared candidate has a finite score for in each of the frequency's backtest
  windows (a series too short for some windows is not in the pool). The candidates that cover
  most series are taken first, as long as at least half of the frequency's series stay in the
  pool, so a candidate only some series have (a global model the short series are left out
  of, a domain model) cannot shrink the comparison to a few series. A series the pooled
  winner has no score for in every window (its history too short for the earlier windows, or
  for that candidate) keeps its own choice, and its reason says so. ``margin`` is not
  applied: a pooled score over many series is not the few noisy windows the margin guards
  against.
- ``"auto"``: per frequency, the rule that chose better on held-out backtest windows
  (:func:`decide_rules`): for each window ``k`` after the first, both rules choose on the
  windows before ``k`` only and their choices are scored on window ``k``; the rule with the
  lower criterion pooled over all these folds wins (ties, frequencies with a single window and
  frequencies of one series, where pooling would only drop the margin: ``"series"``). It
  reads only the backtest's window scores: nothing after the backtest's newest window is
  seen. Only series whose windows sit on the frequency's common cutoffs take part (a series
  that ends earlier, or whose newest backtest had another number of windows, would bring
  later data into an earlier fold); with the default ``[backtest] step`` (the horizon) the
  windows do not overlap, and a shorter step lets a fold's earlier windows score points of
  its test window. The figures go into every selection's reason.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from core.errors import FrameError
from core.vocabulary import SELECTION_RULES
from forecasting.metrics import pool_windows

__all__ = [
    "SELECTION_COLUMNS",
    "RULE_COLUMNS",
    "PooledChoice",
    "select_models",
    "pooled_choice",
    "decide_rules",
    "select_by_rule",
]

SELECTION_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "model",
    "criterion",
    "score",
    "runner_up",
    "runner_up_score",
    "baseline_score",
    "windows",
    "reason",
)
#: Columns of :func:`decide_rules`: per frequency, the rule and its held-out figures.
RULE_COLUMNS: tuple[str, ...] = (
    "frequency",
    "rule",
    "series_score",
    "frequency_score",
    "folds",
    "series",
    "reason",
)
_CRITERIA = ("mase", "smape", "wql")
#: Share of a frequency's series the pooled comparison keeps at least (see the module docstring).
POOL_MIN_SHARE = 0.5
#: How an ensemble's members were chosen, for the selection's reason.
_HOW = {
    "Ensemble-top2": " (the best 2 candidates by backtest MASE)",
    "Ensemble-top3": " (the best 3 candidates by backtest MASE)",
    "Ensemble-statglobal": " (the best statistical candidate by backtest MASE and the global model)",
    "Ensemble-weighted": " (weights: inverse backtest WQL)",
}


def select_models(
    metrics: pl.DataFrame,
    *,
    unique_ids: Sequence[str],
    default_model: str,
    criterion: str = "mase",
    available: Collection[str] | None = None,
    backtest_id: str | None = None,
    margin: float = 0.0,
) -> pl.DataFrame:
    """The production model of every id in ``unique_ids`` (rule in the module docstring)."""
    if not 0.0 <= margin < 1.0:
        raise FrameError(f"selection margin {margin} outside [0, 1)", fix="use e.g. 0.05 (5%)")
    if criterion not in _CRITERIA:
        raise FrameError(f"unknown selection criterion {criterion!r}", fix=f"use one of {_CRITERIA}")
    rows = []
    by_id = {uid: part for (uid,), part in metrics.group_by("unique_id")} if metrics.height else {}
    for uid in unique_ids:
        where = f" {backtest_id}" if backtest_id else ""
        part = by_id.get(uid)
        if part is not None and "run_id" in part.columns:
            where = f" {part.item(0, 'run_id')}"
        if part is None:
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    None,
                    None,
                    None,
                    None,
                    0,
                    f"no backtest yet: configured default {default_model}, not a backtest winner (run `ews backtest`)",
                )
            )
            continue
        full = part.filter(pl.col("windows") == part["windows"].max())
        ranked = (
            full.with_columns(pl.col(criterion).fill_nan(None))
            .drop_nulls(criterion)
            .sort(criterion, "wql", "model", nulls_last=True)
        )
        if ranked.height == 0:
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    None,
                    None,
                    None,
                    None,
                    0,
                    f"backtest{where} has no finite {criterion} for this series "
                    f"(constant history?): configured default {default_model}",
                )
            )
            continue
        baseline = full.filter(pl.col("model") == "SeasonalNaive")
        base_score = baseline.item(0, criterion) if baseline.height else None
        windows = int(ranked.item(0, "windows"))
        winner = ranked.row(0, named=True)
        usable = ranked if available is None else ranked.filter(pl.col("model").is_in(list(available)))
        if usable.height == 0:
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    None,
                    None,
                    None,
                    base_score,
                    windows,
                    f"backtest{where} winner {winner['model']} and every other candidate "
                    f"are unavailable now: configured default {default_model}",
                )
            )
            continue
        chosen = usable.row(0, named=True)
        runner = usable.row(1, named=True) if usable.height > 1 else None
        incumbent = usable.filter(pl.col("model") == default_model)
        if (
            margin
            and chosen["model"] != default_model
            and incumbent.height
            and chosen[criterion] > (1.0 - margin) * incumbent.item(0, criterion)
        ):
            kept = incumbent.row(0, named=True)
            rows.append(
                _row(
                    uid,
                    default_model,
                    criterion,
                    kept[criterion],
                    chosen["model"],
                    chosen[criterion],
                    base_score,
                    windows,
                    f"default {default_model} kept: best challenger {chosen['model']} "
                    f"({chosen[criterion]:.4g}) beat its {criterion.upper()} "
                    f"{kept[criterion]:.4g} in backtest{where} by less than the "
                    f"{margin:.0%} margin over {windows} window(s)",
                )
            )
            continue
        text = f"won backtest{where} on {criterion.upper()} {chosen[criterion]:.4g} over {windows} window(s)"
        if runner is not None:
            text += f"; runner-up {runner['model']} {runner[criterion]:.4g}"
        if base_score is not None:
            text += f"; SeasonalNaive {base_score:.4g}"
        listed = chosen.get("members")
        if chosen["model"].startswith("Ensemble-") and listed:
            text += f"; combines {', '.join(json.loads(listed))}{_HOW.get(chosen['model'], '')}"
        if chosen["model"] != winner["model"]:
            text = (
                f"backtest{where} winner {winner['model']} ({winner[criterion]:.4g}) is not "
                f"available now; best available candidate of that backtest: " + text
            )
        rows.append(
            _row(
                uid,
                chosen["model"],
                criterion,
                chosen[criterion],
                None if runner is None else runner["model"],
                None if runner is None else runner[criterion],
                base_score,
                windows,
                text,
            )
        )
    return pl.DataFrame(
        rows,
        schema={
            "unique_id": pl.Utf8,
            "model": pl.Utf8,
            "criterion": pl.Utf8,
            "score": pl.Float64,
            "runner_up": pl.Utf8,
            "runner_up_score": pl.Float64,
            "baseline_score": pl.Float64,
            "windows": pl.Int64,
            "reason": pl.Utf8,
        },
        orient="row",
    )


def _row(
    uid: str,
    model: str,
    criterion: str,
    score: float | None,
    runner: str | None,
    runner_score: float | None,
    base: float | None,
    windows: int,
    reason: str,
) -> tuple:
    return (uid, model, criterion, score, runner, runner_score, base, windows, reason)


# -- rules across series ----------------------------------------------------------------------
def _check_rule(rule: str, criterion: str) -> None:
    if rule not in SELECTION_RULES:
        raise FrameError(f"unknown selection rule {rule!r}", fix=f"use one of {', '.join(SELECTION_RULES)}")
    if criterion not in _CRITERIA:
        raise FrameError(f"unknown selection criterion {criterion!r}", fix=f"use one of {_CRITERIA}")


def _covered(windows: pl.DataFrame, criterion: str) -> dict[str, set[str]]:
    """Per model, the series it has a finite ``criterion`` for in every window of the group
    (a series whose history was too short for some windows, or for the model, is not covered)."""
    if windows.height == 0:
        return {}
    n_all = windows.get_column("window").n_unique()
    ok = (
        windows.filter(pl.col(criterion).is_not_null() & pl.col(criterion).is_finite())
        .group_by("model", "unique_id")
        .agg(pl.col("window").n_unique().alias("n"))
        .filter(pl.col("n") == n_all)
    )
    out: dict[str, set[str]] = {}
    for model, uid in ok.select("model", "unique_id").iter_rows():
        out.setdefault(model, set()).add(uid)
    return out


@dataclass(frozen=True)
class PooledChoice:
    """The candidate of one frequency on the pooled window scores of its series."""

    model: str
    score: float
    runner_up: str | None
    runner_up_score: float | None
    #: series in the comparison and their (series, window) pairs
    series: int
    pairs: int
    #: the series the winner has a finite score for in each of their windows
    covered: frozenset[str]


def pooled_choice(
    window_metrics: pl.DataFrame,
    *,
    criterion: str = "mase",
    available: Collection[str] | None = None,
) -> PooledChoice | None:
    """The one candidate of a group of series (one frequency) on their pooled window scores,
    or None when no candidate covers any series. Which candidates and pairs are compared:
    module docstring."""
    rows = window_metrics
    if available is not None:
        rows = rows.filter(pl.col("model").is_in(sorted(available)))
    covered = _covered(rows, criterion)
    if not covered:
        return None
    n_series = rows.get_column("unique_id").n_unique()
    order = sorted(covered, key=lambda m: (-len(covered[m]), m))
    pool = set(covered[order[0]])
    compared = [order[0]]
    for model in order[1:]:
        together = pool & covered[model]
        if len(together) >= POOL_MIN_SHARE * n_series and together:
            pool, compared = together, [*compared, model]
    scored = pool_windows(
        rows.filter(pl.col("model").is_in(compared) & pl.col("unique_id").is_in(sorted(pool))), by=("model",)
    )
    ranked = scored.drop_nulls(criterion).sort(criterion, "wql", "model", nulls_last=True)
    if ranked.height == 0:
        return None
    best = ranked.row(0, named=True)
    runner = ranked.row(1, named=True) if ranked.height > 1 else None
    pairs = rows.filter((pl.col("model") == best["model"]) & pl.col("unique_id").is_in(sorted(pool))).height
    return PooledChoice(
        model=best["model"],
        score=best[criterion],
        runner_up=None if runner is None else runner["model"],
        runner_up_score=None if runner is None else runner[criterion],
        series=len(pool),
        pairs=pairs,
        covered=frozenset(covered[best["model"]]),
    )


def _frequency_of(window_metrics: pl.DataFrame, frequencies: Mapping[str, str]) -> pl.DataFrame:
    missing = sorted(set(window_metrics.get_column("unique_id").to_list()) - set(frequencies))
    if missing:
        raise FrameError(
            f"{len(missing)} series of the window scores have no frequency, e.g. {missing[:5]}",
            fix="pass frequencies={unique_id: alias} for every series scored",
        )
    return window_metrics.with_columns(pl.col("unique_id").replace_strict(dict(frequencies)).alias("frequency"))


def _held_out(
    rows: pl.DataFrame,
    *,
    default_model: str,
    criterion: str,
    margin: float,
    available: Collection[str] | None,
) -> tuple[pl.DataFrame, int]:
    """Both rules' choices on the windows before each window k, scored on window k (one frequency).

    Returns the scored rows (``rule, unique_id, window, model`` and the window's scores) of the
    series both rules could be scored on, and the number of folds."""
    numbers = sorted(set(rows.get_column("window").to_list()))
    parts = []
    folds = 0
    for k in numbers[1:]:
        before = rows.filter(pl.col("window") < k)
        test = rows.filter(pl.col("window") == k)
        ids = sorted(set(test.get_column("unique_id").to_list()) & set(before.get_column("unique_id").to_list()))
        if not ids:
            continue
        folds += 1
        own = select_models(
            pool_windows(before),
            unique_ids=ids,
            default_model=default_model,
            criterion=criterion,
            margin=margin,
            available=available,
        )
        per_series = dict(own.select("unique_id", "model").iter_rows())
        pooled = pooled_choice(before, criterion=criterion, available=available)
        per_frequency = {u: pooled.model if pooled and u in pooled.covered else per_series[u] for u in ids}
        chosen = pl.DataFrame(
            {
                "rule": ["series"] * len(ids) + ["frequency"] * len(ids),
                "unique_id": ids + ids,
                "model": [per_series[u] for u in ids] + [per_frequency[u] for u in ids],
            }
        )
        scored = chosen.join(test, on=["unique_id", "model"], how="left")
        valid = scored.filter(pl.col(criterion).is_not_null() & pl.col(criterion).is_finite())
        both = valid.group_by("unique_id").len().filter(pl.col("len") == 2).get_column("unique_id")
        parts.append(valid.filter(pl.col("unique_id").is_in(both.to_list())))
    frame = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
    return frame, folds


def decide_rules(
    window_metrics: pl.DataFrame,
    *,
    frequencies: Mapping[str, str],
    default_model: str,
    criterion: str = "mase",
    margin: float = 0.0,
    available: Collection[str] | None = None,
) -> pl.DataFrame:
    """``"auto"``: per frequency, ``"series"`` or ``"frequency"`` by a held-out comparison on
    the backtest windows (module docstring), with the figures; :data:`RULE_COLUMNS`.

    ``window_metrics``: :attr:`forecasting.BacktestResult.window_metrics` (or the stored
    ``backtest_results.window_scores``) of every series of the frequencies to decide.
    """
    _check_rule("auto", criterion)
    rows_out = []
    if window_metrics.height == 0:
        return pl.DataFrame(schema=_RULE_SCHEMA)
    framed = _frequency_of(window_metrics, frequencies)
    for (frequency,), rows in sorted(framed.group_by("frequency"), key=lambda kv: str(kv[0][0])):
        if rows.get_column("unique_id").n_unique() < 2:
            rows_out.append(
                (
                    frequency,
                    "series",
                    None,
                    None,
                    0,
                    1,
                    f"auto: series rule for {frequency}: one series (pooled over it alone, the frequency "
                    "rule would be its own choice without [backtest] margin)",
                )
            )
            continue
        aligned, left_out = _on_common_cutoffs(rows)
        aside = (
            f"; {left_out} series whose backtest windows are not on the frequency's common cutoffs "
            "left out of the comparison"
            if left_out
            else ""
        )
        scored, folds = _held_out(
            aligned, default_model=default_model, criterion=criterion, margin=margin, available=available
        )
        if folds == 0 or scored.height == 0:
            rows_out.append(
                (
                    frequency,
                    "series",
                    None,
                    None,
                    folds,
                    0,
                    f"auto: series rule for {frequency}: a held-out comparison needs 2 or more backtest "
                    f"windows with scores{aside}",
                )
            )
            continue
        pooled = pool_windows(scored, by=("rule",))
        figure = dict(pooled.select("rule", criterion).iter_rows())
        n_series = scored.get_column("unique_id").n_unique()
        series_score, frequency_score = figure.get("series"), figure.get("frequency")
        rule = (
            "frequency"
            if frequency_score is not None and series_score is not None and (frequency_score < series_score)
            else "series"
        )
        rows_out.append(
            (
                frequency,
                rule,
                series_score,
                frequency_score,
                folds,
                n_series,
                f"auto: {rule} rule for {frequency}: held-out {criterion.upper()} per series "
                f"{_fmt(series_score)}, per frequency {_fmt(frequency_score)} (chosen on the windows "
                f"before each of {folds} later backtest window(s), scored on it; {n_series} series{aside})",
            )
        )
    return pl.DataFrame(rows_out, schema=_RULE_SCHEMA, orient="row")


def _on_common_cutoffs(rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The window scores (one frequency) of the series whose every window sits on the
    frequency's common cutoff for its number (the cutoff most of its series have), and how
    many series were left out. Window numbers count each series' own origins from its oldest,
    so for a series that ends earlier than the others, or whose newest backtest ran with
    another number of windows, "the windows before k" are not the others' past of window k:
    pooling them in a held-out fold would let a choice see later data."""
    counts = rows.group_by("window", "cutoff").agg(pl.col("unique_id").n_unique().alias("n"))
    common = counts.sort(["window", "n", "cutoff"], descending=[False, True, False]).unique(
        "window", keep="first", maintain_order=True
    )
    odd = (
        rows.join(common.select("window", pl.col("cutoff").alias("common")), on="window")
        .filter(pl.col("cutoff") != pl.col("common"))
        .get_column("unique_id")
        .unique()
    )
    return rows.filter(~pl.col("unique_id").is_in(odd.implode())), odd.len()


_RULE_SCHEMA = {
    "frequency": pl.Utf8,
    "rule": pl.Utf8,
    "series_score": pl.Float64,
    "frequency_score": pl.Float64,
    "folds": pl.Int64,
    "series": pl.Int64,
    "reason": pl.Utf8,
}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def select_by_rule(
    metrics: pl.DataFrame,
    window_metrics: pl.DataFrame,
    *,
    rule: str,
    frequencies: Mapping[str, str],
    unique_ids: Sequence[str],
    default_model: str,
    criterion: str = "mase",
    available: Collection[str] | None = None,
    backtest_id: str | None = None,
    margin: float = 0.0,
    rules: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The production model of every id in ``unique_ids`` under ``rule`` (module docstring).

    ``metrics``: the backtest rows of (at least) ``unique_ids``; ``window_metrics``: the window
    scores of every series each frequency is pooled over (may be more than ``unique_ids``: all
    the series of the frequency). Returns the selections (:data:`SELECTION_COLUMNS`; the reason
    names the rule) and the rule per frequency (:data:`RULE_COLUMNS`; for ``"series"`` and
    ``"frequency"`` the configured rule, no held-out figures). ``rules``: for ``"auto"``, the
    decisions of :func:`decide_rules` already made for some frequencies (a cycle decides each
    once for all its chunks); the others are decided here.
    """
    _check_rule(rule, criterion)
    own = select_models(
        metrics,
        unique_ids=unique_ids,
        default_model=default_model,
        criterion=criterion,
        available=available,
        backtest_id=backtest_id,
        margin=margin,
    )
    wanted = sorted({frequencies[u] for u in unique_ids})
    if rule == "series":
        return own, pl.DataFrame(
            [(f, "series", None, None, 0, 0, f"[backtest] choose = {rule!r}") for f in wanted],
            schema=_RULE_SCHEMA,
            orient="row",
        )
    if window_metrics.height:
        framed = _frequency_of(window_metrics, frequencies).filter(pl.col("frequency").is_in(wanted))
    else:
        framed = window_metrics.with_columns(pl.lit(None, dtype=pl.Utf8).alias("frequency"))
    if rule == "auto":
        known = (
            rules.filter(pl.col("frequency").is_in(wanted)) if rules is not None else pl.DataFrame(schema=_RULE_SCHEMA)
        )
        todo = framed.filter(~pl.col("frequency").is_in(known.get_column("frequency").to_list()))
        decided = decide_rules(
            todo.drop("frequency"),
            frequencies=frequencies,
            default_model=default_model,
            criterion=criterion,
            margin=margin,
            available=available,
        )
        rules = pl.concat([known, decided], how="vertical_relaxed").sort("frequency")
    else:
        rules = pl.DataFrame(
            [(f, "frequency", None, None, 0, 0, "[backtest] choose = 'frequency'") for f in wanted],
            schema=_RULE_SCHEMA,
            orient="row",
        )
    why = {f: (r, text) for f, r, text in rules.select("frequency", "rule", "reason").iter_rows()}
    by_id = {uid: part for (uid,), part in metrics.group_by("unique_id")} if metrics.height else {}
    out = []
    for frequency in wanted:
        rule_here, text = why.get(
            frequency, ("series", "no backtest window scores stored for this frequency: run `ews backtest`")
        )
        ids = [u for u in unique_ids if frequencies[u] == frequency]
        mine = own.filter(pl.col("unique_id").is_in(ids))
        if rule_here == "series":
            out.append(mine.with_columns((pl.col("reason") + pl.lit(f"; series rule ({text})")).alias("reason")))
            continue
        pooled = pooled_choice(
            framed.filter(pl.col("frequency") == frequency), criterion=criterion, available=available
        )
        rows = []
        for row in mine.iter_rows(named=True):
            uid = row["unique_id"]
            part = by_id.get(uid)
            found = {r["model"]: r for r in part.iter_rows(named=True)} if part is not None else {}
            if pooled is None or uid not in pooled.covered or pooled.model not in found:
                lacks = (
                    "no candidate was scored on the pooled windows"
                    if pooled is None
                    else f"the pooled winner {pooled.model} has no full set of backtest windows for it"
                )
                rows.append(
                    {**row, "reason": f"frequency rule ({text}): keeps its own choice, {lacks}: {row['reason']}"}
                )
                continue
            model, runner = pooled.model, pooled.runner_up
            run = found[model].get("run_id") or backtest_id
            reason = (
                f"frequency rule ({text}): {model} has the best pooled {criterion.upper()} "
                f"{_fmt(pooled.score)} over {pooled.series} {frequency} series x their windows "
                f"({pooled.pairs} pairs) in backtest{f' {run}' if run else ''}"
            )
            if runner is not None:
                reason += f"; runner-up {runner} {_fmt(pooled.runner_up_score)}"
            reason += (
                f"; on this series {model} {_fmt(found[model][criterion])}, its own best {row['model']} "
                f"{_fmt(row['score'])}"
            )
            listed = found[model].get("members")
            if model.startswith("Ensemble-") and listed:
                reason += f"; combines {', '.join(json.loads(listed))}{_HOW.get(model, '')}"
            runner_row = found.get(runner) if runner is not None else None
            rows.append(
                {
                    **row,
                    "model": model,
                    "score": found[model][criterion],
                    "runner_up": runner,
                    "runner_up_score": None if runner_row is None else runner_row[criterion],
                    "reason": reason,
                }
            )
        out.append(pl.DataFrame(rows, schema=own.schema))
    selections = pl.concat(out, how="vertical_relaxed") if out else own.clear()
    order = {u: i for i, u in enumerate(unique_ids)}
    selections = selections.sort(pl.col("unique_id").replace_strict(order, return_dtype=pl.Int64))
    return selections, rules
