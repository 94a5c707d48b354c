"""Published names come from a vetted catalogue, never from source text (issue 16).

Pure functions (no database, network or clock). The judgment header and the CAP headline,
areaDesc and description quote a series' name, its region and its unit. Those fields arrive
from sources (a FRED title, an NWIS site name, a CSV header), so an attacker who controls a
source can put a sentence there that the injection screen lets through. This module decides,
field by field, which text may be published:

- **name**: the display name of the series' row in the vetted catalogue (table
  ``vetted_series``: written by ``ews series approve``, by ``ews demo`` / the bundled load for
  the project's own catalogue, and by the market step for the composite series it builds),
  else the neutral label: the series id (``unique_id``, snake_case, set by the engine's
  catalogue or the operator's source options and already published in every message).
- **region**: the vetted row's region, else the text as it came if it is the name of a region
  the operator configured (``[regions]``) or the engine's catalogue defines, or a region some
  other vetted row publishes; else none (rendered "unspecified region" / "未指明地区").
- **unit**: the vetted row's unit, else the text as it came if it reads as a unit of
  :data:`UNIT_ATOMS` by the grammar of :func:`is_standard_unit`; else none (the value is
  published without a unit).

A vetted value is published even when the source's current text differs (a source renamed
the series, or an attack was appended to it): the operator approved the display text, not the
source's. :func:`published_fields` returns the view and, per field, how its published text
was chosen; the caller lists the fields that were not vetted in the judgment's checks
(``checks.unvetted``) and the CAP message (``EWS_UNVETTED``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "VETTED_FIELDS",
    "UNIT_ATOMS",
    "CURRENCIES",
    "is_standard_unit",
    "published_fields",
    "unvetted_fields",
]

#: The free-text fields of an evidence bundle that published text quotes as data.
VETTED_FIELDS = ("name", "region", "unit")

#: Unit symbols a unit may be built from without approval (UCUM-like, plus the words the
#: bundled and connector sources use). Case matters: ``K`` is kelvin, ``k`` is not a unit.
UNIT_ATOMS = frozenset(
    {
        # length, area, volume, mass, time
        *("m", "mm", "cm", "km", "um", "nm", "ft", "in", "mi", "m2", "km2", "ha", "m3", "ft3", "L", "l", "ml"),
        *("g", "kg", "t", "s", "min", "h", "hr", "d", "day", "days", "wk", "week", "mo", "month", "yr", "year"),
        # temperature, pressure, energy, power, speed, angle
        *("K", "degC", "degF", "°C", "°F", "C", "Pa", "hPa", "kPa", "MPa", "bar", "mbar", "atm"),
        *("J", "kJ", "MJ", "W", "kW", "MW", "GW", "kWh", "MWh", "kn", "knots", "mph", "deg", "rad", "°"),
        # counts, ratios, scales
        *("%", "percent", "ppm", "ppb", "psu", "index", "points", "events", "count", "magnitude", "log10", "dB"),
        *("cfs", "cms", "gal", "Mgal", "acre", "ft/s", "NTU", "mg", "ug", "uS", "mS", "dBZ", "gpm"),
    }
)

#: Currency codes (ISO 4217) a unit may hold: "CNY per USD", "USD", "billions of USD".
CURRENCIES = frozenset(
    {
        *("USD", "EUR", "CNY", "RMB", "JPY", "GBP", "CHF", "CAD", "AUD", "NZD", "HKD", "SGD", "KRW", "INR"),
        *("BRL", "MXN", "RUB", "ZAR", "SEK", "NOK", "DKK", "TWD", "THB", "MYR", "IDR", "PHP", "TRY", "SAR"),
    }
)

_CONNECTORS = frozenset({"per", "of", "/", "*", "."})
_SCALE_WORDS = frozenset({"thousands", "millions", "billions", "trillions"})
_EXPONENT = re.compile(r"^(?P<atom>.+?)(\^-?\d|-?\d)$")  # m^3, s-1
_NUMBER_TOKENS = (
    re.compile(r"^10\^-?\d{1,2}$"),  # a scale: 10^6 km2
    re.compile(r"^\d{4}(-\d{2,4})?=100$"),  # an index base: index 1982-84=100
    re.compile(r"^\d{1,4}$"),  # a plain factor: 1000 m3
)
_MAX_UNIT_CHARS = 40
_MAX_UNIT_TOKENS = 6


def is_standard_unit(text: str | None) -> bool:
    """Whether ``text`` reads as a unit: at most 40 characters and 6 tokens (split on spaces,
    ``/``, ``*`` and ``.``), each a symbol of :data:`UNIT_ATOMS` or :data:`CURRENCIES` (with an
    optional exponent such as ``m^3``, ``s-1``), a scale (``10^6``, ``thousands``), an index
    base (``1982-84=100``), a plain factor, or the connectors ``per`` / ``of``. No sentence can
    be written in this grammar."""
    if not text or len(text) > _MAX_UNIT_CHARS or text != text.strip():
        return False
    tokens = [t for t in re.split(r"(\s+|/|\*|(?<=[A-Za-z])\.(?=[A-Za-z]))", text) if t and not t.isspace()]
    words = [t for t in tokens if t not in _CONNECTORS]
    if not words or len(words) > _MAX_UNIT_TOKENS:
        return False
    for token in words:
        if token in UNIT_ATOMS or token in CURRENCIES or token in _SCALE_WORDS:
            continue
        if any(p.match(token) for p in _NUMBER_TOKENS):
            continue
        match = _EXPONENT.match(token)
        if match and (match.group("atom") in UNIT_ATOMS or match.group("atom") in CURRENCIES):
            continue
        return False
    return True


def published_fields(
    evidence: Mapping[str, Any],
    vetted: Mapping[str, Any] | None,
    *,
    known_regions: Collection[str] = (),
) -> tuple[dict[str, Any], dict[str, str]]:
    """The bundle as published text may quote it, and how each of :data:`VETTED_FIELDS` was
    chosen (see the module docstring).

    ``vetted``: the series' row of the vetted catalogue (``name``, ``region``, ``unit``; a
    null one is not vetted), or None. ``known_regions``: region names published without a
    vetted row (the configured and catalogue regions and those of other vetted rows).
    The returned ``how`` maps each field to one of ``vetted``, ``vetted, source text differs``,
    ``configured region``, ``standard unit``, ``not vetted, series id published``, ``not vetted,
    withheld`` or ``empty``. ``evidence`` is not changed."""
    view = dict(evidence)
    how: dict[str, str] = {}
    row = vetted or {}
    for field in VETTED_FIELDS:
        came = evidence.get(field)
        approved = row.get(field)
        if approved is not None and str(approved) != "":
            view[field] = str(approved)
            how[field] = "vetted" if came == approved else "vetted, source text differs"
        elif came is None or str(came) == "":
            view[field] = came
            how[field] = "empty"
        elif field == "region" and str(came) in known_regions:
            how[field] = "configured region"
        elif field == "unit" and is_standard_unit(str(came)):
            how[field] = "standard unit"
        elif field == "name":
            view[field] = str(evidence.get("unique_id") or "series")
            how[field] = "not vetted, series id published"
        else:
            view[field] = None
            how[field] = "not vetted, withheld"
    return view, how


def unvetted_fields(how: Mapping[str, str]) -> list[str]:
    """The fields of a :func:`published_fields` record whose source text was not published."""
    return [field for field in VETTED_FIELDS if how.get(field, "").startswith("not vetted")]
