"""One clock per command (core/clock.py): the replay day is read once and passed down."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.clock import Clock, replay_cutoff
from core.settings import load_settings

NOW = datetime(2026, 1, 5, 6, 30)


def test_a_replay_clock_judges_at_the_end_of_the_replay_day(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={"EWS_CYCLE__AS_OF": "2011-03-12"})
    clock = Clock.from_settings(settings, now=NOW)
    assert (clock.now, clock.as_of, clock.replaying) == (NOW, "2011-03-12", True)
    assert clock.cutoff == datetime(2011, 3, 13) == replay_cutoff(settings.cycle.as_of)
    assert clock.judged_at == datetime(2011, 3, 13)
    later = clock.restarted()
    assert later.as_of == "2011-03-12" and later.now > NOW


def test_a_live_clock_sees_everything_and_judges_now(tmp_path: Path) -> None:
    clock = Clock.from_settings(load_settings(tmp_path, environ={}), now=NOW)
    assert (clock.as_of, clock.replaying, clock.cutoff, clock.judged_at) == (None, False, None, NOW)
    assert replay_cutoff("") is None


def test_resolve_takes_the_given_clock_or_builds_one(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    clock = Clock(now=NOW, as_of="2011-03-12")
    assert Clock.resolve(settings, clock=clock) is clock
    assert Clock.resolve(settings, clock=clock, now=NOW) is clock
    assert Clock.resolve(settings, now=NOW) == Clock(now=NOW, as_of=None)
    with pytest.raises(ValueError, match="either clock= or now="):
        Clock.resolve(settings, clock=clock, now=datetime(2026, 1, 6))
