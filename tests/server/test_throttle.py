"""The login throttling rules (server/throttle.py), by attempt counts on a hand-moved clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.throttle import CAP, FORGET_AFTER, Counter, admit, backoff, succeeded, whole_seconds

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def test_free_attempts_then_doubling_waits_up_to_the_cap() -> None:
    assert [backoff(n, 5) for n in range(1, 6)] == [None] * 5
    assert [backoff(n, 5) for n in (6, 7, 8)] == [timedelta(seconds=s) for s in (1, 2, 4)]
    assert backoff(5 + 11, 5) == CAP and backoff(10**6, 5) == CAP


def test_attempts_during_a_wait_are_refused_and_not_counted() -> None:
    counter = Counter()
    for _ in range(6):
        counter, wait = admit(counter, T0, free=5)
        assert wait == 0
    assert counter.failures == 6 and counter.blocked_until == T0 + timedelta(seconds=1)
    refused, wait = admit(counter, T0 + timedelta(milliseconds=500), free=5)
    assert refused == counter and wait == 0.5 and whole_seconds(wait) == 1
    counter, wait = admit(counter, T0 + timedelta(seconds=1), free=5)
    assert wait == 0 and counter.failures == 7
    assert counter.blocked_until == T0 + timedelta(seconds=3)


def test_a_key_left_alone_starts_again() -> None:
    counter = Counter(failures=9, blocked_until=T0 + timedelta(seconds=16), last_attempt_at=T0)
    later = T0 + FORGET_AFTER + timedelta(seconds=1)
    counter, wait = admit(counter, later, free=5)
    assert wait == 0 and counter == Counter(1, None, later)


def test_a_success_resets_an_account_and_takes_one_back_from_an_address() -> None:
    counter = Counter(failures=8, blocked_until=T0 + timedelta(seconds=4), last_attempt_at=T0)
    assert succeeded(counter, 5, reset=True).failures == 0
    assert succeeded(counter, 5, reset=True).blocked_until is None
    address = succeeded(counter, 5, reset=False)
    assert address.failures == 7 and address.blocked_until == counter.blocked_until
    calm = succeeded(Counter(6, T0, T0), 5, reset=False)
    assert calm.failures == 5 and calm.blocked_until is None
    assert succeeded(Counter(0, None, T0), 5, reset=False).failures == 0
