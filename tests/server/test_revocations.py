"""Revocations are announced after the revoking commit, never after a rollback, in this
process (listeners) and on PostgreSQL to every process (NOTIFY on ``labelhub_revoke``)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from server import revocations
from server.hub.bus import asyncpg_dsn
from server.revocations import Revocation


class Boom(Exception):
    pass


async def test_announced_after_commit_and_never_after_rollback(database_url: str) -> None:
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    heard: list[Revocation] = []
    unregister = revocations.on_revocation(heard.append)
    listener = None
    notified: asyncio.Queue[str] = asyncio.Queue()
    if database_url.startswith("postgresql"):
        listener = await asyncpg.connect(asyncpg_dsn(database_url))
        await listener.add_listener(revocations.CHANNEL,
                                    lambda *args: notified.put_nowait(args[3]))
    try:
        with pytest.raises(Boom):
            async with sessions() as session, session.begin():
                await revocations.announce(session, 7, 3, "membership")
                raise Boom
        assert heard == []
        async with sessions() as session, session.begin():
            await revocations.announce(session, 8, None, "logout")
            assert heard == []  # not before the commit
        assert heard == [Revocation(8, None, "logout")]
        if listener is not None:
            # NOTIFYs arrive in commit order: the first one heard is the committed one.
            first = await asyncio.wait_for(notified.get(), 10)
            assert revocations.parse(first) == Revocation(8, None, "logout")
    finally:
        unregister()
        if listener is not None:
            await listener.close()
        await engine.dispose()


def test_parse_refuses_what_is_not_a_revocation() -> None:
    assert revocations.parse('{"user": 1, "project": null, "reason": "logout"}') == \
        Revocation(1, None, "logout")
    for bad in ("", "[]", "{", '{"user": "1"}', '{"user": 1, "project": "x"}'):
        assert revocations.parse(bad) is None
