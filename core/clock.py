"""The engine's clock: one place that says what "now" is.

The warehouse stores naive UTC timestamps with microseconds; :func:`utc_now` returns exactly
that. Library folders (``forecasting``, ``anomaly``, ``hazards``, pure ``alerts``) never call
it: the caller passes the time in.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utc_now"]


def utc_now() -> datetime:
    """The engine's clock: naive UTC, microseconds (what the warehouse stores)."""
    return datetime.now(UTC).replace(tzinfo=None)
