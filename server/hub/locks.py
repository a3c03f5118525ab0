"""Image lease rules — pure: state in, decision out. No I/O.

One lease per image: a holder, the holder's connection, an increasing fencing token and an
expiry. An op is accepted only with the current token of an unexpired lease held by its sender
(Kleppmann's fencing), so a paused client whose lease lapsed cannot overwrite a newer holder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal


@dataclass(frozen=True)
class Lease:
    holder_id: int | None
    connection_id: str | None
    token: int
    expires_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Lease:
        return cls(row.holder_id, row.connection_id, int(row.token or 0), row.expires_at)

    def held(self, now: datetime) -> bool:
        return self.holder_id is not None and self.expires_at is not None and self.expires_at > now


FREE = Lease(None, None, 0, None)


@dataclass(frozen=True)
class Granted:
    lease: Lease
    previous_holder: int | None  # someone whose live lease was taken over


@dataclass(frozen=True)
class Refused:
    holder_id: int


def decide_open(lease: Lease | None, *, user_id: int, connection_id: str, now: datetime,
                ttl: timedelta, take_over: bool) -> Granted | Refused:
    """Grant the lease when it is free, expired, already mine, or taken over (``review``)."""
    lease = lease or FREE
    if lease.held(now) and lease.holder_id != user_id and not take_over:
        assert lease.holder_id is not None
        return Refused(lease.holder_id)
    if lease.held(now) and lease.holder_id == user_id and lease.connection_id == connection_id:
        # Re-opening on the same connection renews without a new token.
        return Granted(replace(lease, expires_at=now + ttl), None)
    previous = lease.holder_id if lease.held(now) and lease.holder_id != user_id else None
    return Granted(Lease(user_id, connection_id, lease.token + 1, now + ttl), previous)


def renew(lease: Lease, *, connection_id: str, now: datetime, ttl: timedelta) -> Lease | None:
    """Extend a live lease held by this connection; ``None`` when it is not its to renew."""
    if not lease.held(now) or lease.connection_id != connection_id:
        return None
    return replace(lease, expires_at=now + ttl)


def release(lease: Lease, *, user_id: int, connection_id: str | None) -> Lease | None:
    """Free a lease held by this user (on this connection when given); ``None`` if not theirs."""
    if lease.holder_id != user_id:
        return None
    if connection_id is not None and lease.connection_id != connection_id:
        return None
    return Lease(None, None, lease.token, None)


def expire(lease: Lease, now: datetime) -> Lease | None:
    """A lapsed lease becomes free; ``None`` when it is still live or already free."""
    if lease.holder_id is None or lease.held(now):
        return None
    return Lease(None, None, lease.token, None)


TokenProblem = tuple[Literal["no_lock", "stale_token", "lock_expired"], str]


def check_token(lease: Lease | None, user_id: int, token: int, now: datetime) -> TokenProblem | None:
    """Why an op carrying ``token`` may not commit, or ``None`` when it may."""
    if lease is None or lease.holder_id is None:
        return ("no_lock", "open the image before editing it")
    if lease.holder_id != user_id:
        return ("no_lock", "another user holds this image")
    if token != lease.token:
        return ("stale_token", "this lock token is no longer current; open the image again")
    if not lease.held(now):
        return ("lock_expired", "the lock expired; open the image again")
    return None
