from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.hub import locks
from server.hub.locks import FREE, Granted, Lease, Refused

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=30)


def test_free_lease_is_granted_with_a_new_token() -> None:
    got = locks.decide_open(None, user_id=1, connection_id="a", now=NOW, ttl=TTL, take_over=False)
    assert isinstance(got, Granted) and got.lease == Lease(1, "a", 1, NOW + TTL)


def test_live_lease_of_another_is_refused_unless_taken_over() -> None:
    held = Lease(1, "a", 5, NOW + TTL)
    assert locks.decide_open(held, user_id=2, connection_id="b", now=NOW, ttl=TTL,
                             take_over=False) == Refused(1)
    got = locks.decide_open(held, user_id=2, connection_id="b", now=NOW, ttl=TTL, take_over=True)
    assert isinstance(got, Granted) and got.lease.token == 6 and got.previous_holder == 1


def test_expired_lease_is_free_and_the_token_still_grows() -> None:
    lapsed = Lease(1, "a", 5, NOW - timedelta(seconds=1))
    got = locks.decide_open(lapsed, user_id=2, connection_id="b", now=NOW, ttl=TTL, take_over=False)
    assert isinstance(got, Granted) and got.lease.token == 6 and got.previous_holder is None
    assert locks.expire(lapsed, NOW) == Lease(None, None, 5, None)
    assert locks.expire(Lease(1, "a", 5, NOW + TTL), NOW) is None


def test_same_connection_renews_same_user_new_tab_takes_over() -> None:
    held = Lease(1, "a", 5, NOW + timedelta(seconds=5))
    same = locks.decide_open(held, user_id=1, connection_id="a", now=NOW, ttl=TTL, take_over=False)
    assert isinstance(same, Granted) and same.lease.token == 5 and same.lease.expires_at == NOW + TTL
    tab = locks.decide_open(held, user_id=1, connection_id="b", now=NOW, ttl=TTL, take_over=False)
    assert isinstance(tab, Granted) and tab.lease.token == 6 and tab.lease.connection_id == "b"


def test_renew_and_release_only_by_the_holder() -> None:
    held = Lease(1, "a", 5, NOW + timedelta(seconds=5))
    assert locks.renew(held, connection_id="a", now=NOW, ttl=TTL) == Lease(1, "a", 5, NOW + TTL)
    assert locks.renew(held, connection_id="b", now=NOW, ttl=TTL) is None
    assert locks.release(held, user_id=2, connection_id=None) is None
    assert locks.release(held, user_id=1, connection_id="b") is None
    assert locks.release(held, user_id=1, connection_id="a") == Lease(None, None, 5, None)


def test_fencing_token_checks() -> None:
    held = Lease(1, "a", 5, NOW + TTL)
    assert locks.check_token(held, 1, 5, NOW) is None
    assert locks.check_token(None, 1, 5, NOW)[0] == "no_lock"  # type: ignore[index]
    assert locks.check_token(FREE, 1, 0, NOW)[0] == "no_lock"  # type: ignore[index]
    assert locks.check_token(held, 2, 5, NOW)[0] == "no_lock"  # type: ignore[index]
    assert locks.check_token(held, 1, 4, NOW)[0] == "stale_token"  # type: ignore[index]
    assert locks.check_token(held, 1, 5, NOW + TTL)[0] == "lock_expired"  # type: ignore[index]
