"""The engine's vocabulary, defined once: warning levels, alert statuses and release states,
review verdicts, user roles, series domains and data classifications.

Every other module imports these names instead of spelling the values out, so a level, a
status or a role is added or renamed here and nowhere else; ``tests/test_vocabulary.py`` fails
when a module outside ``core/`` declares a collection of the values itself.

- Values the warehouse stores as text are :class:`enum.StrEnum` members: they compare, hash,
  format, bind as SQL parameters and serialise to JSON exactly as the plain strings they stand
  for (``AlertStatus.OPEN == "open"``, ``f"{AlertStatus.OPEN}" == "open"``), so stored rows and
  printed text are the same as with literals. Only ``repr`` differs: messages that quote a
  value with ``!r`` take it from the data, and tuples meant for printing use ``values()``.
- :class:`Level` and :class:`Classification` are :class:`enum.IntEnum` because their order is
  what the code compares (a level reaches a threshold, a classification exceeds a clearance);
  the warehouse stores a level's :attr:`Level.label` (``"blue"``) and a classification's
  lower-case name (``"public"``).
"""

from __future__ import annotations

import enum
from typing import TypeVar

from core.errors import FrameError

__all__ = [
    "Domain",
    "Level",
    "WARNING_LEVELS",
    "LEVEL_NAMES",
    "WARNING_LEVEL_NAMES",
    "LEVEL_RANK",
    "per_level",
    "AlertStatus",
    "ReleaseState",
    "Verdict",
    "Role",
    "Classification",
    "MARKET_TRANSFORMS",
    "SELECTION_RULES",
]

_T = TypeVar("_T")


class _Values(enum.StrEnum):
    """A text vocabulary: members are the stored strings, in their declared order."""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The plain strings, in declared order (for choices, messages and SQL parameters)."""
        return tuple(member.value for member in cls)


class Domain(_Values):
    """What kind of phenomenon a series measures."""

    MARKET = "market"
    SEISMIC = "seismic"
    GEODETIC = "geodetic"
    HYDRO = "hydro"
    SATELLITE = "satellite"


class Level(enum.IntEnum):
    """China's four national warning levels (GB/T 35965.1); NONE means no warning."""

    NONE = 0
    BLUE = 1  # IV, general
    YELLOW = 2  # III, heavier
    ORANGE = 3  # II, serious
    RED = 4  # I, most severe

    @property
    def label(self) -> str:
        """The stored and printed name: ``none``, ``blue`` ... ``red``."""
        return self.name.lower()

    @property
    def roman(self) -> str:
        """The grade numeral of the standard (blue IV ... red I; empty for none)."""
        return ("", "IV", "III", "II", "I")[int(self)]

    @property
    def zh(self) -> str:
        """The level's Chinese name as warnings print it (蓝色 ... 红色; empty for none)."""
        return ("", "蓝色", "黄色", "橙色", "红色")[int(self)]

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.upper()]
        except KeyError:
            raise FrameError(
                f"unknown warning level {text!r}",
                fix=f"use one of {', '.join(LEVEL_NAMES)}",
            ) from None


#: The four warning levels, mildest first (every level but NONE).
WARNING_LEVELS: tuple[Level, ...] = tuple(lv for lv in Level if lv is not Level.NONE)
#: Every level's label, from ``none`` up to ``red``.
LEVEL_NAMES: tuple[str, ...] = tuple(lv.label for lv in Level)
#: The warning levels' labels, mildest first: ``blue, yellow, orange, red``.
WARNING_LEVEL_NAMES: tuple[str, ...] = tuple(lv.label for lv in WARNING_LEVELS)
#: label -> rank (none 0 ... red 4), for comparing stored levels.
LEVEL_RANK: dict[str, int] = {lv.label: int(lv) for lv in Level}

#: How a market-stress indicator is made from its stored series (``[markets] indicators``,
#: :class:`hazards.market_indicators.IndicatorSpec`): the value itself, its negative, the
#: rolling volatility of its changes, or its drawdown from the rolling peak.
MARKET_TRANSFORMS: tuple[str, ...] = ("level", "inverted", "volatility", "drawdown")

#: How ``ews run`` picks production models from a backtest (``[backtest] choose``,
#: :mod:`forecasting.selection`): each series on its own windows, one candidate per frequency
#: on the windows of all its series pooled, or per frequency whichever of the two did better
#: on held-out backtest windows.
SELECTION_RULES: tuple[str, ...] = ("series", "frequency", "auto")


def per_level(**values: _T) -> dict[str, _T]:
    """A table keyed by level label, checked against the vocabulary: ``per_level(red=..., ...)``.

    Every warning level must be given, ``none`` may be; keys keep the order given. A table
    that lists a level the engine does not have, or misses one, fails at import.
    """
    unknown = [k for k in values if k not in LEVEL_RANK]
    missing = [k for k in WARNING_LEVEL_NAMES if k not in values]
    if unknown or missing:
        raise FrameError(
            f"a per-level table names unknown level(s) {unknown} and lacks {missing}",
            fix=f"give one value for each of {', '.join(WARNING_LEVEL_NAMES)} (and optionally none)",
        )
    return dict(values)


class AlertStatus(_Values):
    """``alerts.status``: open, then closed by the cycle (resolved, expired) or a user (cancelled)."""

    OPEN = "open"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ReleaseState(_Values):
    """``alerts.release_state``: whether an alert may go out as CAP (see warehouse/review.py)."""

    PENDING = "pending"
    RELEASED = "released"
    REJECTED = "rejected"
    SUPPRESSED = "suppressed"


class Verdict(_Values):
    """An analyst's verdict on an alert (``feedback.verdict``)."""

    CONFIRMED = "confirmed"
    FALSE_ALARM = "false_alarm"


class Role(_Values):
    """Dashboard roles, least to most trusted; each holds every right of the one before."""

    VIEWER = "viewer"
    ANALYST = "analyst"
    DUTY_OFFICER = "duty_officer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer up to 3 for admin."""
        return list(Role).index(self)


class Classification(enum.IntEnum):
    """Confidentiality of a series or source; endpoints are cleared up to a level."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    SECRET = 3

    @property
    def label(self) -> str:
        """The stored and configured name: ``public`` ... ``secret``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Classification:
        try:
            return cls[text.upper()]
        except KeyError:
            raise FrameError(
                f"unknown classification {text!r}",
                fix=f"use one of {', '.join(c.label for c in cls)}",
            ) from None
