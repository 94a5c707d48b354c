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
from collections.abc import Sequence
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


def _features(
    log_flow: np.ndarray,
    rise_1d: np.ndarray,
    rise_2d: np.ndarray,
    day_of_year: np.ndarray,
    log_level: np.ndarray,
    log_reference: float,
) -> np.ndarray:
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
        ]
    )


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
        self.window_days = window_days
        self.level_multiples = multiples
        self.regularization = float(regularization)

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, series: pl.DataFrame, thresholds: pl.DataFrame) -> FloodStateModel:
        """Fit on ``series`` (one daily series, the training record) against its 2-year level."""
        from sklearn.linear_model import LogisticRegression

        uid, grid, y = _one_series(series)
        reference = _reference_level(thresholds, uid)
        log_y = np.log(np.maximum(y, _FLOOR * reference))
        rise_1d, rise_2d, known = _rises(log_y)
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
        self.coef_ = dict(zip(STATE_FEATURES, (float(c) for c in model.coef_[0]), strict=True))
        self.intercept_ = float(model.intercept_[0])
        self.reference_level_ = reference
        self.training_days_ = int(usable.sum())
        self.training_positives_ = positives
        self.first_day_ = grid[usable][0].astype("datetime64[D]").item()
        self.last_day_ = grid[usable][-1].astype("datetime64[D]").item()
        return self

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
    ) -> np.ndarray:
        """P(max flow over the window > ``level``) for states given directly (arrays broadcast)."""
        self._check_fitted()
        f, r1, r2, d, lv = np.broadcast_arrays(
            *(np.asarray(a, dtype=np.float64) for a in (flow, rise_1d, rise_2d, day_of_year, level))
        )
        log_flow = np.log(np.maximum(f.ravel(), _FLOOR * self.reference_level_))
        x = _features(log_flow, r1.ravel(), r2.ravel(), d.ravel(), np.log(lv.ravel()), math.log(self.reference_level_))
        logit = self.intercept_ + x @ np.array([self.coef_[k] for k in STATE_FEATURES])
        return (1.0 / (1.0 + np.exp(-logit))).reshape(f.shape)

    def state(self, series: pl.DataFrame) -> pl.DataFrame:
        """Each observed day's state: ``unique_id, ds, flow, rise_1d, rise_2d, day_of_year, rise_known``."""
        self._check_fitted()
        uid, grid, y = _one_series(series)
        log_y = np.log(np.maximum(y, _FLOOR * self.reference_level_))
        rise_1d, rise_2d, known = _rises(log_y)
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
