from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.hub import timing

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_gaps_within_the_idle_limit_count() -> None:
    span = timing.start(T0)
    for t in (10, 20, 50):
        span = timing.touch(span, at(t), idle_limit=60)
    assert span.active_seconds == 50


def test_a_long_gap_counts_nothing() -> None:
    span = timing.touch(timing.start(T0), at(30), idle_limit=60)
    span = timing.touch(span, at(30 + 600), idle_limit=60)  # went for lunch
    span = timing.finish(span, at(640), idle_limit=60)
    assert span.active_seconds == 40


def test_time_never_runs_backwards() -> None:
    span = timing.touch(timing.start(T0), at(10), idle_limit=60)
    assert timing.touch(span, at(5), idle_limit=60) == span
