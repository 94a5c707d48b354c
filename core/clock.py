"""The engine's clock: one place that says what "now" is, and what day a replay runs as.

The warehouse stores naive UTC timestamps with microseconds; :func:`utc_now` returns exactly
that. A command (``ews run``, ``ews demo``, a scheduled job, ``ews backtest`` ...) resolves one
:class:`Clock` from its settings when it starts and passes it down to the cycle and its steps,
so the replay day of ``[cycle] as_of`` is read once and every step judges the data at the same
time. Library folders (``forecasting``, ``anomaly``, ``hazards``, pure ``alerts``) never read
the clock: the caller passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["utc_now", "replay_cutoff", "Clock"]


def utc_now() -> datetime:
    """The engine's clock: naive UTC, microseconds (what the warehouse stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


def replay_cutoff(as_of: str | None) -> datetime | None:
    """End of the replay day ``as_of`` (ISO date) as an exclusive bound; None when live."""
    if not as_of:
        return None
    return datetime.combine(date.fromisoformat(as_of), time()) + timedelta(days=1)


@dataclass(frozen=True)
class Clock:
    """The times one command runs on, resolved once and passed down.

    ``now``: the wall-clock time the command (or its cycle) started; it stamps the rows it
    writes (``started_at``, ``opened_at``, audit times). ``as_of``: the replay day of
    ``[cycle] as_of`` as written there (ISO date), or None for a live run.
    """

    now: datetime
    as_of: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, now: datetime | None = None) -> Clock:
        """The clock of a command: ``now`` (default: the wall clock) and the replay day of ``settings``."""
        return cls(now=now or utc_now(), as_of=settings.cycle.as_of or None)

    @classmethod
    def resolve(cls, settings: Settings, *, clock: Clock | None = None, now: datetime | None = None) -> Clock:
        """``clock`` when the caller passed one, else :meth:`from_settings` at ``now``.

        For functions that take either (``now=`` is kept for callers that fix only the time).
        """
        if clock is None:
            return cls.from_settings(settings, now=now)
        if now is not None and now != clock.now:
            raise ValueError(f"pass either clock= or now=, not both (clock.now {clock.now}, now {now})")
        return clock

    @property
    def replaying(self) -> bool:
        """True when the command replays a past day (``[cycle] as_of`` set)."""
        return self.as_of is not None

    @property
    def cutoff(self) -> datetime | None:
        """Observations strictly before this are what the command sees: the end of the replay
        day, or None (everything) when live."""
        return replay_cutoff(self.as_of)

    @property
    def judged_at(self) -> datetime:
        """The time the data is judged at (ages, staleness, expiry): the end of the replay day,
        or ``now`` when live."""
        return self.cutoff or self.now

    def restarted(self) -> Clock:
        """The same replay day with ``now`` read again: a later part of the same command that
        stamps its own start (the scoring cycle after an ingest run)."""
        return replace(self, now=utc_now())
