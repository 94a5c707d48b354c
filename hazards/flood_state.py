"""State-conditional flood exceedance: P(the flow passes a return level within the next days | today).

The data-driven river model for a gauge whose own record is all there is (no rainfall, no
hydrological model): the probability that the **maximum flow over the next ``window_days``
days** (``t + 1 .. t + window_days``) exceeds a level ``L``, conditioned on the state of the
hydrograph on the issue day ``t``:

==========================  ===============================================================
feature                     meaning
==========================  ===============================================================
``log_flow_to_level``       ``log(y_t / L)``: how far below (or above) the level the river is
``rise_1d_up``              ``max(log y_t - log y_{t-1}, 0)``: today's rise (a rising limb)
``rise_1d_down``            ``min(log y_t - log y_{t-1}, 0)``: today's fall (a recession)
``rise_2d``                 ``log y_t - log y_{t-2}``: the rise over two days
``season_sin/cos``          ``sin/cos(2 pi doy / 365.25)``: floods cluster in some seasons
``log_level_to_reference``  ``log(L / L_ref)``, ``L_ref`` the 2-year level: how rare ``L`` is
==========================  ===============================================================

and, chosen per record by :func:`select_wetness` (``wetness``; docs/anomaly.md,
"Antecedent wetness"), how wet the catchment was **before** today, from flows up to ``t - 1``:

==========================  ===============================================================
``log_wet_7d``              ``log(mean(y_{t-7} .. y_{t-1}) / L_ref)``: recent storms, soil moisture
``log_wet_30d``             ``log(mean(y_{t-30} .. y_{t-1}) / L_ref)``: catchment storage
``log_baseflow_30d``        ``log(min(y_{t-30} .. y_{t-1}) / L_ref)``: groundwater (baseflow proxy)
``log_days_since_rise``     ``log(1 + days since the last daily rise of 20 % or more)``, capped
                            at 60 days: how long the recession has lasted
==========================  ===============================================================

A mean or minimum needs half its window observed; a day without that does not train, and
is scored as if the antecedent flow were today's (``wetness_known`` false in :meth:`state`).

Fitted as one **logistic regression** (scikit-learn, L2 penalty ``C``, deterministic lbfgs)
on the training record only, **stacked over levels**: every training day appears once per
level ``L = m * L_ref`` for the multiples ``level_multiples`` (default 0.25 .. 2.8 in steps
of sqrt 2), with outcome "the maximum of the next ``window_days`` days is above ``L``". The
2-year level alone has a few dozen positive days in six years (18 on the Choptank's water
years 2000-2005, none above its 20-year level); the lower levels hold hundreds, and teach the
model how this river's storm rises grow, which is what carries over to the rare levels
through ``log_flow_to_level`` and ``log_level_to_reference``. Days whose window or features
are not fully observed do not train. Flows are floored at ``1e-4 * L_ref`` before the logs
(a dry day is not minus infinity).

Output (:meth:`FloodStateModel.exceedance`): per issue day and return-period threshold the
probability, with the window it covers, in the frame :func:`hazards.floods.ladder_levels`
turns into a warning level (the same EFAS-style ladder as the forecast-based
:func:`hazards.floods.flood_levels`). An issue day whose yesterday (or the day before) has no
observation uses a rise of 0 for the missing differences (said in :meth:`state`'s
``rise_known``).

What the model guarantees: probabilities in ``(0, 1)``. What it does not guarantee but the
fit shows on the Choptank (``tests/test_hazards_flood_state.py``): the probability rises with
today's rise for a fixed flow and falls as the level rises. What it cannot do: see rain that
has not reached the river. On a 293 km2 basin that floods within a day of the rain, the day
before the onset is the only day the hydrograph says anything (docs/anomaly.md, "Rivers").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from core.errors import FrameError
from core.vocabulary import Level
from hazards.flood_skill import _one_series
from hazards.floods import FloodRung

__all__ = [
    "STATE_FEATURES",
    "WETNESS_FEATURES",
    "WETNESS_VARIANTS",
    "select_wetness",
    "DEFAULT_LEVEL_MULTIPLES",
    "STATE_MODEL_NAME",
    "DEFAULT_STATE_FLOOD_LADDER",
    "FloodStateModel",
]

STATE_MODEL_NAME = "state_conditional_logistic"
STATE_FEATURES: tuple[str, ...] = (
    "log_flow_to_level",
    "rise_1d_up",
    "rise_1d_down",
    "rise_2d",
    "season_sin",
    "season_cos",
    "log_level_to_reference",
)
WETNESS_FEATURES: tuple[str, ...] = ("log_wet_7d", "log_wet_30d", "log_baseflow_30d", "log_days_since_rise")
#: The antecedent-wetness variants :func:`select_wetness` compares (written down, with the
#: selection rule, before any of them was scored on a test half: docs/anomaly.md).
WETNESS_VARIANTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "wet7": ("log_wet_7d",),
    "wet30": ("log_wet_30d",),
    "wet7+wet30": ("log_wet_7d", "log_wet_30d"),
    "wet7+wet30+baseflow": ("log_wet_7d", "log_wet_30d", "log_baseflow_30d"),
    "wet7+wet30+recession": ("log_wet_7d", "log_wet_30d", "log_days_since_rise"),
}
_RISE_EVENT = math.log(1.2)  # a daily rise of 20 % or more starts a recession count
_RECESSION_CAP = 60.0
#: Training levels as multiples of the 2-year level: 1/4 to 2.8 in steps of sqrt(2).
DEFAULT_LEVEL_MULTIPLES: tuple[float, ...] = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8)
_FLOOR = 1e-4
#: The ladder on this model's probabilities (docs/anomaly.md, "Rivers": why 0.1 and 0.3 and
#: not EFAS's 0.5, fixed before the evaluation was run): blue P(> 2-year) >= 0.1, yellow
#: P(> 2-year) >= 0.3, orange P(> 5-year) >= 0.3, red P(> 20-year) >= 0.3.
DEFAULT_STATE_FLOOD_LADDER: tuple[FloodRung, ...] = (
    FloodRung(Level.BLUE, 2, 0.1),
    FloodRung(Level.YELLOW, 2, 0.3),
    FloodRung(Level.ORANGE, 5, 0.3),
    FloodRung(Level.RED, 20, 0.3),
)


_RAW_WETNESS = ("wet_7d", "wet_30d", "baseflow_30d", "days_since_rise")
#: The raw state column (:meth:`FloodStateModel.state`) behind each wetness feature.
_WETNESS_COLUMN = {
    "log_wet_7d": "wet_7d",
    "log_wet_30d": "wet_30d",
    "log_baseflow_30d": "baseflow_30d",
    "log_days_since_rise": "days_since_rise",
}


def _features(
    log_flow: np.ndarray,
    rise_1d: np.ndarray,
    rise_2d: np.ndarray,
    day_of_year: np.ndarray,
    log_level: np.ndarray,
    log_reference: float,
    wetness: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """The design matrix: :data:`STATE_FEATURES`, then the wetness features (already logged)."""
    angle = 2.0 * np.pi * day_of_year / 365.25
    return np.column_stack(
        [
            log_flow - log_level,
            np.maximum(rise_1d, 0.0),
            np.minimum(rise_1d, 0.0),
            rise_2d,
            np.sin(angle),
            np.cos(angle),
            log_level - log_reference,
            *wetness,
        ]
    )


def _wetness_logs(raw: dict[str, np.ndarray], features: Sequence[str], reference: float) -> list[np.ndarray]:
    """The wetness features from their raw state columns (flows in the series' unit, days)."""
    out = []
    for name in features:
        value = raw[_WETNESS_COLUMN[name]]
        if name == "log_days_since_rise":
            out.append(np.log1p(value))
        else:
            out.append(np.log(np.maximum(value, _FLOOR * reference) / reference))
    return out


class FloodStateModel:
    """P(max flow over the next ``window_days`` days > a level | today's state) (module docstring).

    ``fit(series, thresholds)`` on the training record returns ``self`` with the fitted state
    (names end in ``_``); :meth:`exceedance` scores issue days of any record without changing
    it. ``thresholds``: the frame of :func:`hazards.return_period_thresholds` for the series
    (its 2-year row is the reference level; fitted on the same training record).
    """

    def __init__(
        self,
        *,
        window_days: int = 3,
        level_multiples: Sequence[float] = DEFAULT_LEVEL_MULTIPLES,
        regularization: float = 1.0,
        wetness: Sequence[str] = (),
    ) -> None:
        if not isinstance(window_days, int) or isinstance(window_days, bool) or window_days < 1:
            raise FrameError(f"window_days={window_days!r}, needs an integer >= 1", fix="pass e.g. window_days=3")
        multiples = tuple(float(m) for m in level_multiples)
        if len(multiples) < 2 or any(not (m > 0 and math.isfinite(m)) for m in multiples):
            raise FrameError(
                f"level_multiples={list(level_multiples)} needs two or more positive multiples of the 2-year level",
                fix="pass e.g. hazards.DEFAULT_LEVEL_MULTIPLES (0.25 .. 2.8)",
            )
        if not regularization > 0:
            raise FrameError(f"regularization={regularization!r} must be > 0", fix="pass e.g. regularization=1.0")
        unknown = [w for w in wetness if w not in WETNESS_FEATURES]
        if unknown or len(set(wetness)) != len(tuple(wetness)):
            raise FrameError(
                f"wetness={list(wetness)}: {unknown or 'a repeated name'} is not one of {list(WETNESS_FEATURES)}",
                fix="pass names of hazards.WETNESS_FEATURES, each once, or () for none",
            )
        self.window_days = window_days
        self.level_multiples = multiples
        self.regularization = float(regularization)
        self.wetness = tuple(wetness)

    @property
    def features(self) -> tuple[str, ...]:
        """The model's features in coefficient order: :data:`STATE_FEATURES`, then ``wetness``."""
        return STATE_FEATURES + self.wetness

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, series: pl.DataFrame, thresholds: pl.DataFrame) -> FloodStateModel:
        """Fit on ``series`` (one daily series, the training record) against its 2-year level."""
        from sklearn.linear_model import LogisticRegression

        uid, grid, y = _one_series(series)
        reference = _reference_level(thresholds, uid)
        log_y = np.log(np.maximum(y, _FLOOR * reference))
        rise_1d, rise_2d, known = _rises(log_y)
        raw = _antecedent(y, rise_1d)
        wet = _wetness_logs(raw, self.wetness, reference)
        for column in wet:  # a day whose antecedent window is less than half observed does not train
            known = known & np.isfinite(column)
        doy = _day_of_year(grid)
        w = self.window_days
        n = len(y)
        ahead_max = np.full(n, np.nan)
        if n > w:
            window = np.lib.stride_tricks.sliding_window_view(y[1:], w)  # row i: days i+1 .. i+w
            ahead_max[: len(window)] = window.max(axis=1)  # NaN when a day of the window is missing
        usable = np.isfinite(y) & known & np.isfinite(ahead_max)
        if usable.sum() < 365:
            raise FrameError(
                f"{uid}: {int(usable.sum())} training days with a full state and a full {w}-day window; "
                "the model needs a year or more",
                fix="fit on a longer daily record (the evaluation fits on six water years)",
            )
        x_parts, o_parts, positives = [], [], {}
        log_ref = math.log(reference)
        for m in self.level_multiples:
            level = m * reference
            x_parts.append(
                _features(
                    log_y[usable],
                    rise_1d[usable],
                    rise_2d[usable],
                    doy[usable],
                    np.full(int(usable.sum()), math.log(level)),
                    log_ref,
                    [c[usable] for c in wet],
                )
            )
            outcome = ahead_max[usable] > level
            o_parts.append(outcome)
            positives[m] = int(outcome.sum())
        outcomes = np.concatenate(o_parts)
        if outcomes.all() or not outcomes.any():
            raise FrameError(
                f"{uid}: every training day has the same outcome at every level; nothing to fit",
                fix="fit on a record with both floods and quiet days, or change level_multiples",
            )
        model = LogisticRegression(C=self.regularization, max_iter=5000)
        model.fit(np.vstack(x_parts), outcomes)
        self.unique_id_ = uid
        self.coef_ = dict(zip(self.features, (float(c) for c in model.coef_[0]), strict=True))
        self.intercept_ = float(model.intercept_[0])
        self.reference_level_ = reference
        self.training_days_ = int(usable.sum())
        self.training_positives_ = positives
        self.training_flow_ = y.copy()  # the training record: which levels it ever reached
        self.first_day_ = grid[usable][0].astype("datetime64[D]").item()
        self.last_day_ = grid[usable][-1].astype("datetime64[D]").item()
        return self

    def episodes_above(self, level: float) -> int:
        """Separate episodes of the training record above ``level`` (a run of days above it is one)."""
        self._check_fitted()
        above = np.nan_to_num(self.training_flow_, nan=-np.inf) > level
        return int(np.sum(above[1:] & ~above[:-1]) + int(above[0])) if len(above) else 0

    def supported_ladder(
        self, ladder: Sequence[FloodRung], thresholds: pl.DataFrame, *, min_episodes: int
    ) -> tuple[tuple[FloodRung, ...], list[dict[str, Any]]]:
        """The rungs whose return level the training record went above in at least
        ``min_episodes`` separate episodes, and the others with their count.

        A logistic model extrapolates in the level: asked about a 20-year level that its record
        never reached, it still answers from the slope it learned on smaller floods (on the
        Choptank a sharp rise from low flow gave P(> 20-year) 0.45 for a flood that peaked below
        the 2-year level). A rung the record gives no case of is not issued by this model; the
        level stops at the highest supported rung, and the evidence names the rungs left out.
        """
        if not isinstance(min_episodes, int) or isinstance(min_episodes, bool) or min_episodes < 0:
            raise FrameError(f"min_episodes={min_episodes!r}, needs an integer >= 0", fix="pass e.g. min_episodes=1")
        values = dict(zip(thresholds.get_column("period_years"), thresholds.get_column("threshold_value"), strict=True))
        kept, dropped = [], []
        for rung in ladder:
            value = values.get(float(rung.period_years))
            count = self.episodes_above(float(value)) if value is not None else 0
            if value is not None and count >= min_episodes:
                kept.append(rung)
            else:
                dropped.append(
                    {
                        "level": rung.level.label,
                        "period_years": float(rung.period_years),
                        "threshold_value": None if value is None else round(float(value), 4),
                        "training_episodes": count,
                    }
                )
        return tuple(kept), dropped

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise FrameError("the flood state model is not fitted", fix="call fit(training_series, thresholds) first")

    # -- probabilities ------------------------------------------------------------------------
    def probability(
        self,
        *,
        flow: np.ndarray | float,
        rise_1d: np.ndarray | float,
        rise_2d: np.ndarray | float,
        day_of_year: np.ndarray | float,
        level: np.ndarray | float,
        wet_7d: np.ndarray | float | None = None,
        wet_30d: np.ndarray | float | None = None,
        baseflow_30d: np.ndarray | float | None = None,
        days_since_rise: np.ndarray | float | None = None,
    ) -> np.ndarray:
        """P(max flow over the window > ``level``) for states given directly (arrays broadcast).

        The wetness state (columns of :meth:`state`) is read only for the model's ``wetness``
        features; a flow-based one not given is taken as today's ``flow`` (as :meth:`state`
        does when the antecedent record is missing); ``days_since_rise`` has no such default.
        """
        self._check_fitted()
        if "log_days_since_rise" in self.wetness and days_since_rise is None:
            raise FrameError(
                "this model reads days_since_rise (its wetness includes log_days_since_rise)",
                fix="pass days_since_rise=..., e.g. the column of FloodStateModel.state",
            )
        arrays: list[np.ndarray | float] = [flow, rise_1d, rise_2d, day_of_year, level]
        arrays += [flow if w is None else w for w in (wet_7d, wet_30d, baseflow_30d)]
        arrays.append(0.0 if days_since_rise is None else days_since_rise)
        f, r1, r2, d, lv, w7, w30, b30, dsr = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
        raw = dict(zip(_RAW_WETNESS, (w7.ravel(), w30.ravel(), b30.ravel(), dsr.ravel()), strict=True))
        log_flow = np.log(np.maximum(f.ravel(), _FLOOR * self.reference_level_))
        x = _features(
            log_flow,
            r1.ravel(),
            r2.ravel(),
            d.ravel(),
            np.log(lv.ravel()),
            math.log(self.reference_level_),
            _wetness_logs(raw, self.wetness, self.reference_level_),
        )
        logit = self.intercept_ + x @ np.array([self.coef_[k] for k in self.features])
        return (1.0 / (1.0 + np.exp(-logit))).reshape(f.shape)

    def state(self, series: pl.DataFrame) -> pl.DataFrame:
        """Each observed day's state: ``unique_id, ds, flow, rise_1d, rise_2d, day_of_year,
        rise_known, wet_7d, wet_30d, baseflow_30d, days_since_rise, wetness_known``.

        Every column at ``t`` is computed from flows up to ``t``: the wetness columns from
        ``t - 30 .. t - 1`` (mean and minimum flow, days since the last rise of 20 % or more).
        Where the antecedent window is less than half observed the flow columns take today's
        flow and ``wetness_known`` is false (for the features this model reads).
        """
        self._check_fitted()
        uid, grid, y = _one_series(series)
        log_y = np.log(np.maximum(y, _FLOOR * self.reference_level_))
        rise_1d, rise_2d, known = _rises(log_y)
        raw = _antecedent(y, rise_1d)
        wetness_known = np.ones(len(y), dtype=bool)
        for feature in self.wetness:
            wetness_known &= np.isfinite(raw[_WETNESS_COLUMN[feature]])
        filled = {k: np.where(np.isfinite(v), v, y) for k, v in raw.items()}
        keep = np.isfinite(y)
        return pl.DataFrame(
            {
                "unique_id": uid,
                "ds": grid[keep].astype("datetime64[us]"),
                "flow": y[keep],
                "rise_1d": np.where(np.isfinite(rise_1d), rise_1d, 0.0)[keep],
                "rise_2d": np.where(np.isfinite(rise_2d), rise_2d, 0.0)[keep],
                "day_of_year": _day_of_year(grid)[keep],
                "rise_known": known[keep],
                **{k: v[keep] for k, v in filled.items()},
                "wetness_known": wetness_known[keep],
            }
        )

    def exceedance(
        self, series: pl.DataFrame, thresholds: pl.DataFrame, *, issue_dates: Sequence[datetime] | None = None
    ) -> pl.DataFrame:
        """P(max flow over the window after each issue day > each return-period threshold).

        ``series``: the record up to (at least) the issue days; ``thresholds``: the rows of
        :func:`hazards.return_period_thresholds` for this series. ``issue_dates``: the days
        to score (default: every observed day). Returns ``unique_id, cutoff`` (the issue day),
        ``threshold, period_years, threshold_value, p_exceed, window_start, window_end,
        steps`` (the frame :func:`hazards.floods.ladder_levels` reads).
        """
        states = self.state(series)
        uid = states.get_column("unique_id")[0]
        rows = thresholds.filter(pl.col("unique_id") == uid) if "unique_id" in thresholds.columns else thresholds
        if rows.height == 0:
            raise FrameError(
                f"no return-period threshold for {uid}",
                fix="pass the rows of hazards.return_period_thresholds for this series",
            )
        if issue_dates is not None:
            wanted = pl.Series("ds", list(issue_dates)).cast(pl.Datetime("us"))
            states = states.filter(pl.col("ds").is_in(wanted.implode()))
        out = []
        for label, period, value in rows.select("threshold", "period_years", "threshold_value").iter_rows():
            p = self.probability(
                flow=states.get_column("flow").to_numpy(),
                rise_1d=states.get_column("rise_1d").to_numpy(),
                rise_2d=states.get_column("rise_2d").to_numpy(),
                day_of_year=states.get_column("day_of_year").to_numpy(),
                level=float(value),
                **{k: states.get_column(k).to_numpy() for k in _RAW_WETNESS},
            )
            out.append(
                states.select(
                    "unique_id",
                    pl.col("ds").alias("cutoff"),
                    pl.lit(label).alias("threshold"),
                    pl.lit(float(period)).alias("period_years"),
                    pl.lit(float(value)).alias("threshold_value"),
                    pl.Series("p_exceed", p),
                    (pl.col("ds") + timedelta(days=1)).alias("window_start"),
                    (pl.col("ds") + timedelta(days=self.window_days)).alias("window_end"),
                    pl.lit(self.window_days, dtype=pl.Int64).alias("steps"),
                )
            )
        return pl.concat(out).sort("cutoff", "period_years")

    def summary(self) -> dict[str, Any]:
        """The fit for the evidence: model, window, coefficients, training days and span."""
        self._check_fitted()
        first: date = self.first_day_
        last: date = self.last_day_
        return {
            "model": STATE_MODEL_NAME,
            "window_days": self.window_days,
            "wetness": list(self.wetness),
            "reference_level": round(self.reference_level_, 4),
            "coefficients": {k: round(v, 4) for k, v in self.coef_.items()},
            "intercept": round(self.intercept_, 4),
            "training_days": self.training_days_,
            "training_first_day": first.isoformat(),
            "training_last_day": last.isoformat(),
            "training_positive_days": {f"{m:g}x": k for m, k in self.training_positives_.items()},
        }


def _reference_level(thresholds: pl.DataFrame, uid: str) -> float:
    missing = [c for c in ("period_years", "threshold_value") if c not in thresholds.columns]
    if missing:
        raise FrameError(
            f"the thresholds frame lacks column(s) {missing}; it has {thresholds.columns}",
            fix="pass the frame hazards.return_period_thresholds returns",
        )
    rows = thresholds.filter(pl.col("unique_id") == uid) if "unique_id" in thresholds.columns else thresholds
    two = rows.filter((pl.col("period_years") - 2.0).abs() < 1e-9)
    if two.height == 0:
        raise FrameError(
            f"no 2-year threshold for {uid} (periods {rows.get_column('period_years').to_list()})",
            fix="fit the thresholds with 2 among the periods: return_period_thresholds(series, periods=(2, 5, 20))",
        )
    value = float(two.get_column("threshold_value")[0])
    if not (value > 0 and math.isfinite(value)):
        raise FrameError(f"the 2-year level of {uid} is {value}, not a positive flow", fix="check the series' unit")
    return value


def _rises(log_y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-day and 2-day log rises (NaN where a day is missing) and whether both are known."""
    rise_1d = np.full(len(log_y), np.nan)
    rise_2d = np.full(len(log_y), np.nan)
    rise_1d[1:] = log_y[1:] - log_y[:-1]
    rise_2d[2:] = log_y[2:] - log_y[:-2]
    return rise_1d, rise_2d, np.isfinite(rise_1d) & np.isfinite(rise_2d)


def _day_of_year(grid: np.ndarray) -> np.ndarray:
    days = grid.astype("datetime64[D]")
    return (days - days.astype("datetime64[Y]")).astype(np.int64).astype(np.float64) + 1.0


def _trailing(y: np.ndarray, days: int, how: str) -> np.ndarray:
    """Mean or minimum of ``y[t - days] .. y[t - 1]`` per ``t``; NaN when under half of it is observed."""
    padded = np.concatenate([np.full(days, np.nan), y])
    window = np.lib.stride_tricks.sliding_window_view(padded[:-1], days)  # row t: y[t - days .. t - 1]
    seen = np.isfinite(window)
    count = seen.sum(axis=1)
    if how == "mean":
        value = np.where(seen, window, 0.0).sum(axis=1) / np.maximum(count, 1)
    else:
        value = np.where(seen, window, np.inf).min(axis=1)
    return np.where(count >= math.ceil(days / 2), value, np.nan)


def _antecedent(y: np.ndarray, rise_1d: np.ndarray) -> dict[str, np.ndarray]:
    """The raw wetness state per day of the grid, from flows before that day (NaN: unknown)."""
    rising = np.nan_to_num(rise_1d, nan=0.0) > _RISE_EVENT
    index = np.arange(len(y))
    last = np.maximum.accumulate(np.where(rising, index, -1))  # the last rising day up to t
    before = np.concatenate([[-1], last[:-1]])  # ... up to t - 1
    days = np.where(before >= 0, index - before, _RECESSION_CAP).astype(np.float64)
    return {
        "wet_7d": _trailing(y, 7, "mean"),
        "wet_30d": _trailing(y, 30, "mean"),
        "baseflow_30d": _trailing(y, 30, "min"),
        "days_since_rise": np.minimum(days, _RECESSION_CAP),
    }


def select_wetness(
    series: pl.DataFrame,
    thresholds: pl.DataFrame,
    *,
    variants: Mapping[str, Sequence[str]] = WETNESS_VARIANTS,
    window_days: int = 3,
    water_year_start_month: int = 10,
) -> tuple[str, pl.DataFrame]:
    """The wetness variant with the lowest leave-one-water-year-out Brier score on ``series``.

    The rule, fixed before any variant was scored out of sample (docs/anomaly.md, "Antecedent
    wetness"): on the training record only, each water year in turn is left out, every
    variant of ``variants`` is fitted on the other years (against ``thresholds``, fitted on
    the whole training record) and scores the left-out year's days; the score is the Brier
    score of ``P(above the 2-year level within window_days)`` pooled over all left-out days.
    The lowest wins; a tie goes to the variant listed first (the simpler). Returns the
    winner's name and a frame ``variant, features, brier, days`` (one row per variant).
    """
    from hazards.flood_skill import exceedance_outcomes

    if not variants:
        raise FrameError("no wetness variants to choose from", fix="pass e.g. hazards.WETNESS_VARIANTS")
    uid, _, _ = _one_series(series)
    reference = _reference_level(thresholds, uid)
    two = thresholds.filter((pl.col("period_years") - 2.0).abs() < 1e-9).head(1)
    frame = series.sort("ds")
    water_year = pl.col("ds").dt.year() + (pl.col("ds").dt.month() >= water_year_start_month).cast(pl.Int32)
    if water_year_start_month == 1:
        water_year = pl.col("ds").dt.year()
    frame = frame.with_columns(water_year.alias("_wy"))
    years = sorted(frame.get_column("_wy").unique().to_list())
    if len(years) < 2:
        raise FrameError(
            f"{uid}: {len(years)} water year in the record; leaving one out needs two or more",
            fix="select on a record of several water years",
        )
    outcomes = exceedance_outcomes(frame.drop("_wy"), threshold_value=reference, window_days=window_days)
    outcomes = outcomes.with_columns(
        (pl.col("ds").dt.year() + (pl.col("ds").dt.month() >= water_year_start_month).cast(pl.Int32)).alias("_wy")
        if water_year_start_month != 1
        else pl.col("ds").dt.year().alias("_wy")
    )
    rows: list[dict[str, Any]] = []
    briers: list[float] = []
    for name, features in variants.items():
        scored = []
        for year in years:
            inner = frame.filter(pl.col("_wy") != year).drop("_wy")
            model = FloodStateModel(window_days=window_days, wetness=features).fit(inner, thresholds)
            p = model.exceedance(frame.drop("_wy"), two).select(pl.col("cutoff").alias("ds"), "p_exceed")
            held = outcomes.filter(pl.col("_wy") == year).join(p, on="ds", how="inner")
            scored.append(held.select("p_exceed", pl.col("observed").cast(pl.Float64)))
        pooled = pl.concat(scored)
        errors = pooled.get_column("p_exceed").to_numpy() - pooled.get_column("observed").to_numpy()
        briers.append(float(np.mean(errors**2)))
        rows.append({"variant": name, "features": list(features), "brier": briers[-1], "days": pooled.height})
    best = min(range(len(rows)), key=lambda i: (briers[i], i))  # a tie goes to the variant listed first
    return list(variants)[best], pl.DataFrame(rows)
