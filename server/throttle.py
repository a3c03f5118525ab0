"""Login throttling rules (pure): how many attempts are free, how long a key then waits.

A *key* is an account (the email as typed) or a client address. Every attempt is counted
*before* the password is checked, so concurrent guesses cannot all slip through before the
first failure is written; a success takes its own count back (``succeeded``). Past ``free``
counted attempts each further one is admitted but starts a wait that doubles (1 s, 2 s, 4 s,
... up to ``CAP``); attempts during a wait are refused with its remaining time and not counted.
A key left alone for ``FORGET_AFTER`` starts again from zero.

The state lives in the database (``login_attempts``, server/_login_attempts.py) so that every
server process on one PostgreSQL sees the same counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = ["ACCOUNT_FREE", "ADDRESS_FREE", "CAP", "FORGET_AFTER", "Counter", "admit", "backoff",
           "retry_after", "succeeded", "whole_seconds"]

ACCOUNT_FREE = 5  # wrong passwords in a row before an account's logins slow down
ADDRESS_FREE = 30  # one address may serve an office behind NAT, with its typos
BASE = timedelta(seconds=1)
CAP = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Counter:
    failures: int = 0  # attempts counted and not taken back by a success
    blocked_until: datetime | None = None
    last_attempt_at: datetime | None = None


def backoff(failures: int, free: int) -> timedelta | None:
    """The wait started by the ``failures``-th counted attempt (None while it is free)."""
    extra = failures - free
    if extra <= 0:
        return None
    if extra > 20:  # 2**20 s is far past the cap; don't build huge numbers
        return CAP
    return min(BASE * (1 << (extra - 1)), CAP)


def retry_after(counter: Counter, now: datetime) -> float:
    """Seconds until the key may try again (0 when it may now)."""
    if counter.blocked_until is None or counter.blocked_until <= now:
        return 0.0
    return (counter.blocked_until - now).total_seconds()


def admit(counter: Counter, now: datetime, free: int) -> tuple[Counter, float]:
    """``(new counter, 0)`` when the attempt may go ahead (it is counted), or
    ``(counter unchanged, seconds to wait)`` when it is refused."""
    wait = retry_after(counter, now)
    if wait > 0:
        return counter, wait
    failures = counter.failures
    if counter.last_attempt_at is not None and now - counter.last_attempt_at > FORGET_AFTER:
        failures = 0
    failures += 1
    delay = backoff(failures, free)
    return Counter(failures, None if delay is None else now + delay, now), 0.0


def succeeded(counter: Counter, free: int, *, reset: bool) -> Counter:
    """After a right password: an account starts again (``reset``); an address takes back the
    one attempt that was counted for it, and its wait ends once it is under ``free`` again."""
    if reset:
        return Counter(0, None, counter.last_attempt_at)
    failures = max(counter.failures - 1, 0)
    blocked = counter.blocked_until if failures > free else None
    return replace(counter, failures=failures, blocked_until=blocked)


def whole_seconds(wait: float) -> int:
    """A Retry-After value: whole seconds, at least one."""
    return max(1, math.ceil(wait))
