"""Engine and session factory. SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, Result, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers run beside the single writer; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # pysqlite's own transaction handling must be off for the explicit BEGIN below.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock at BEGIN so read-then-write transactions cannot deadlock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # No pre-ping: it costs a round trip on every checkout (a third of a short transaction's
    # client CPU). A connection that died under us fails its statement once; SQLAlchemy then
    # invalidates the whole pool, and the request gets "unavailable" (HTTP 503 / socket error)
    # instead of a 500 — safe to retry (server/errors.py, server/hub/endpoint.py).
    kwargs.setdefault("pool_recycle", 1800)
    # Most recently used first: a steady trickle of edits stays on a few warm connections (each
    # backend plans the op functions once) instead of cycling through the whole pool.
    kwargs.setdefault("pool_use_lifo", True)
    return create_async_engine(url, pool_pre_ping=False, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgresql(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


class ConnectionLost(Exception):
    """A statement on a driver connection (:func:`driver_connection`) found it closed."""


def connection_lost(exc: BaseException) -> bool:
    """The database connection broke under a statement (the pool has been invalidated)."""
    return isinstance(exc, ConnectionLost) or (
        isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A pooled connection's own asyncpg connection, with no transaction open: each statement
    commits on its own. For the edit path's two calls (``server.hub._fast_op``), where going
    through SQLAlchemy's execution layer costs more CPU than PostgreSQL spends on them.

    When the connection turns out closed, the pool is invalidated as SQLAlchemy does when one
    of its own statements meets a disconnect (every connection older than now is replaced at
    its next checkout) and :class:`ConnectionLost` is raised.
    """
    async with engine.connect() as connection:
        fairy = await connection.get_raw_connection()
        driver = fairy.driver_connection
        try:
            yield driver
        except Exception as exc:
            if driver is None or not driver.is_closed():
                raise
            engine.sync_engine.pool._invalidate(fairy, exc, _checkin=False)
            await connection.invalidate(exc)
            raise ConnectionLost(f"the database connection was lost: {exc}") from exc


_CONNECTION_KEY = "labelhub.connection"


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction: Any) -> None:
    # The next transaction may run on another pooled connection.
    session.info.pop(_CONNECTION_KEY, None)


async def run(session: AsyncSession, statement: Executable, params: Any = None) -> Result[Any]:
    """Execute on the session's connection, skipping the ORM's execution layer: for hot-path
    statements built once (``select`` of columns, Core ``insert``/``update``), where that layer
    costs more CPU than the database spends on them. The connection is remembered for the
    rest of the transaction (asking the session for it each time cost ~80 us of CPU)."""
    info = session.sync_session.info
    connection: AsyncConnection | None = info.get(_CONNECTION_KEY)
    if connection is None:
        connection = info[_CONNECTION_KEY] = await session.connection()
    return await connection.execute(statement, params)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit when the block ends normally, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session
