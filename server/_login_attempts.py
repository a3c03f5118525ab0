"""Login throttling state in the database (the rules: server/throttle.py).

Each key's row is created if missing and then locked (``SELECT ... FOR UPDATE`` on PostgreSQL;
SQLite's ``BEGIN IMMEDIATE`` already serializes writers), keys in a fixed order so two logins
cannot deadlock, so concurrent attempts from any number of server processes are counted one
after another.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from server import throttle
from server.db import is_postgresql
from server.models import LoginAttempt
from server.throttle import Counter


def account_key(email: str) -> str:
    return hashlib.sha256(b"account\0" + email.encode()).hexdigest()


def address_key(address: str) -> str:
    return hashlib.sha256(b"address\0" + address.encode()).hexdigest()


async def _locked(session: AsyncSession, key: str, now: datetime) -> LoginAttempt:
    insert: Any = pg_insert if is_postgresql(session) else sqlite_insert
    await session.execute(insert(LoginAttempt).values(
        key=key, failures=0, blocked_until=None, last_attempt_at=now).on_conflict_do_nothing())
    stmt = select(LoginAttempt).where(LoginAttempt.key == key).execution_options(
        populate_existing=True)
    if is_postgresql(session):
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one()


async def admit(session: AsyncSession, email: str, address: str, now: datetime) -> float:
    """Count one attempt on the account and the address; 0 when it may go ahead, else the
    seconds to wait (nothing is counted then)."""
    await session.execute(delete(LoginAttempt).where(
        LoginAttempt.last_attempt_at < now - throttle.FORGET_AFTER - throttle.CAP))
    free = {account_key(email): throttle.ACCOUNT_FREE, address_key(address): throttle.ADDRESS_FREE}
    rows = {key: await _locked(session, key, now) for key in sorted(free)}
    admitted: dict[str, Counter] = {}
    wait = 0.0
    for key, row in rows.items():
        counter, key_wait = throttle.admit(
            Counter(row.failures, row.blocked_until, row.last_attempt_at), now, free[key])
        wait = max(wait, key_wait)
        admitted[key] = counter
    if wait > 0:
        return wait
    for key, counter in admitted.items():
        await session.execute(update(LoginAttempt).where(LoginAttempt.key == key).values(
            failures=counter.failures, blocked_until=counter.blocked_until,
            last_attempt_at=counter.last_attempt_at))
    return 0.0


async def succeeded(session: AsyncSession, email: str, address: str) -> None:
    """A right password: the account's count starts again; the address's takes this one back."""
    await session.execute(delete(LoginAttempt).where(LoginAttempt.key == account_key(email)))
    stmt = select(LoginAttempt).where(LoginAttempt.key == address_key(address))
    if is_postgresql(session):
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    if row is None:
        return
    after = throttle.succeeded(Counter(row.failures, row.blocked_until, row.last_attempt_at),
                               throttle.ADDRESS_FREE, reset=False)
    row.failures, row.blocked_until = after.failures, after.blocked_until
