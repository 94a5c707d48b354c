"""What was known when: the time from which a stored value may be used.

A value stamped ``ds`` describes a period that starts at ``ds`` and lasts one step of the
series' frequency (:data:`PERIODS`): a monthly mean stamped 2006-05-01 covers May, a daily
close covers its day. Nobody has it before the period ends, and many publishers release it
later still: that delay is the series' ``available_after``, an ISO 8601 duration counted
from the end of the period (``P20D``: twenty days after the month, ``P1Y``, ``PT6H``, ``P0D``:
as soon as the period ends). So::

    known_at = start of the period of ds + one period(frequency) + available_after

An as-of replay on day T (cutoff = the end of T) sees a value only when ``known_at <=
cutoff``; every read of a cycle goes through that rule (:mod:`warehouse.series`), and the
market indicators place values on their weekly grid with it (:mod:`hazards.market_indicators`).

:data:`DEFAULT_AVAILABLE_AFTER` holds the lags a series gets from its ``variable`` when its
source does not say otherwise; a file or source overrides them with the ``available_after``
option (docs/ingestion.md, "What was known when"). A null ``available_after`` (a row stored
before the column existed) means the default of its variable, else ``P0D``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from core.errors import FrameError

__all__ = [
    "PERIODS",
    "DEFAULT_AVAILABLE_AFTER",
    "parse_available_after",
    "default_available_after",
    "known_offset",
    "known_at",
    "offsets_frame",
]

#: The period a stamp falls in, per frequency: (unit it starts at, months, time it lasts). A
#: stamp is first cut back to its unit (a close stamped 16:00 belongs to its day). Weekly series
#: are stamped on the week's LAST day (FRED's "weekly, ending Friday"), so their period as far
#: as the stamp is concerned ends with that day.
PERIODS: dict[str, tuple[str, int, timedelta]] = {
    "h": ("hour", 0, timedelta(hours=1)),
    "D": ("day", 0, timedelta(days=1)),
    "B": ("day", 0, timedelta(days=1)),
    "W-FRI": ("day", 0, timedelta(days=1)),
    "W-SUN": ("day", 0, timedelta(days=1)),
    "MS": ("month", 1, timedelta(0)),
}
_TRUNCATE = {"hour": "1h", "day": "1d", "month": "1mo"}

#: Publication lag after the period ends, by the series' ``variable`` (a variable not listed
#: falls back to its snake_case prefix, ``sst_mean`` -> ``sst``, then to ``P0D``). Why each
#: value: docs/ingestion.md, "What was known when". The FRED connector names a series'
#: variable after its FRED id, so those ids are listed beside the bundled variable names.
DEFAULT_AVAILABLE_AFTER: dict[str, str] = {
    # BLS CPI: released mid-month for the month before, between the 10th and the 20th
    # (e.g. January 2008's CPI on 2008-02-20); 20 days covers the releases of 2000-2024.
    "consumer_price_index": "P20D",
    "cpiaucsl": "P20D",
    # BLS Employment Situation: usually the first Friday of the next month, at the latest
    # around the 10th (holiday weeks, the 2013 shutdown moved it to 2013-11-08).
    "unemployment_rate": "P10D",
    "unrate": "P10D",
    # Fed G.5 monthly averages of H.10 rates: the first business day of the next month;
    # 3 days cover a month that ends on a Friday.
    "exchange_rate": "P3D",
    # St. Louis Fed Financial Stress Index: the week ending Friday is published the next
    # Thursday.
    "financial_stress": "P6D",
    "stlfsi4": "P6D",
    # PSMSL monthly means (RLR): national authorities submit a year's data at a time, so a
    # month reaches PSMSL a year or more after it ends.
    "mean_sea_level": "P1Y",
    # GNSS daily positions (NGL, PBO, SOPAC final solutions) wait for IGS/JPL final orbits,
    # 12-18 days after the day.
    "displacement": "P18D",
    # NSIDC Sea Ice Index daily extent: posted the next day.
    "sea_ice_extent": "P1D",
    # USGS daily mean discharge: computed after the (local) day ends, provisional next day.
    "discharge": "P1D",
    # NOAA ERSST v5 monthly SST: updated in the first days of the next month (by the 10th).
    "sst": "P10D",
    # NASA POWER daily meteorology and precipitation: near-real-time products a few days
    # behind (MERRA-2 / IMERG based); a week is safe.
    "prectotcorr": "P7D",
    "t2m": "P7D",
}

_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)
_EXAMPLE = "write an ISO 8601 duration after the period ends: P0D, P3D, P20D, P2M, P1Y, PT6H"


def parse_available_after(text: object, *, what: str = "available_after") -> tuple[int, timedelta]:
    """``(months, time)`` of an ISO 8601 duration such as ``P20D`` or ``P1Y`` (years count 12
    months); raises :class:`~core.errors.FrameError` naming ``what`` for anything else."""
    clean = text.strip().upper() if isinstance(text, str) else ""
    match = _DURATION.match(clean)
    if match is None or clean.endswith("T") or not any(match.groupdict().values()):
        raise FrameError(f"{what} = {text!r} is not an ISO 8601 duration", fix=_EXAMPLE)
    n = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    months = 12 * n["years"] + n["months"]
    time = timedelta(weeks=n["weeks"], days=n["days"], hours=n["hours"], minutes=n["minutes"])
    return months, time


def default_available_after(variable: str | None) -> str:
    """The lag :data:`DEFAULT_AVAILABLE_AFTER` gives ``variable`` (its snake_case prefixes
    tried longest first), else ``P0D`` (known when its period ends)."""
    parts = (variable or "").lower().split("_")
    for end in range(len(parts), 0, -1):
        rule = DEFAULT_AVAILABLE_AFTER.get("_".join(parts[:end]))
        if rule is not None:
            return rule
    return "P0D"


def known_offset(
    frequency: str, available_after: str | None, *, variable: str | None = None
) -> tuple[str, int, timedelta]:
    """``(unit, months, time)``: a stamp cut back to ``unit`` (hour, day, month) plus ``months``
    then ``time`` is the moment its value is known: the end of its period of ``frequency`` plus
    ``available_after`` (null: the default of ``variable``)."""
    try:
        unit, months, time = PERIODS[frequency]
    except KeyError:
        raise FrameError(
            f"unknown frequency {frequency!r}: cannot tell when its values are known",
            fix=f"declare one of {', '.join(PERIODS)}",
        ) from None
    lag_months, lag_time = parse_available_after(available_after or default_available_after(variable))
    return unit, months + lag_months, time + lag_time


def known_at(
    ds: pl.Expr, frequency: str, available_after: str | None = None, *, variable: str | None = None
) -> pl.Expr:
    """Expression: when each value stamped ``ds`` becomes known (module docstring). The stamp
    is cut back to its period's start, then months are added, then the time (the order the
    warehouse's SQL uses)."""
    unit, months, time = known_offset(frequency, available_after, variable=variable)
    start = ds.dt.truncate(_TRUNCATE[unit])
    shifted = start.dt.offset_by(f"{months}mo") if months else start
    return shifted + time if time else shifted


def offsets_frame(rules: Mapping[str, tuple[str, str | None, str | None]]) -> pl.DataFrame:
    """``unique_id, unit, months, micros`` per series from ``{unique_id: (frequency,
    available_after, variable)}``: what the warehouse joins to filter a replay's reads."""
    rows = []
    for uid, (frequency, lag, variable) in rules.items():
        unit, months, time = known_offset(frequency, lag, variable=variable)
        rows.append((uid, unit, months, time // timedelta(microseconds=1)))
    return pl.DataFrame(
        rows,
        schema={"unique_id": pl.Utf8, "unit": pl.Utf8, "months": pl.Int32, "micros": pl.Int64},
        orient="row",
    )
