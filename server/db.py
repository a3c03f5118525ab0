"""Engine and session factory. SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import asyncpg
from sqlalchemy import Executable, Result, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session


def private_file(path: Path) -> None:
    """Create the SQLite file (and its folder) readable by this user only: it holds password
    hashes and everything labeled. SQLite gives its -wal and -shm files the same mode. An
    existing file loses any group and other permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(mode & 0o700)


#: Execution option of a connection that only reads, in one snapshot (see ``make_engine``).
READ_SNAPSHOT = "labelhub_read_snapshot"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            private_file(Path(path))
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
            # A read-only snapshot (an export: server/formats/_source.py) takes none: in WAL
            # mode it reads one snapshot from its first read on while writers go on.
            read_only = conn.get_execution_options().get(READ_SNAPSHOT, False)
            conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

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


async def plan_for_current_sizes(session: AsyncSession) -> None:
    """PostgreSQL: plan this transaction's statements for the tables as they are now.

    A prepared statement's generic plan, chosen after five runs, keeps the sizes the tables
    had then: the image rows of a project filling up by 1,000 a request were fetched by id
    with a sequential scan planned at a few hundred rows (55-60 ms a statement at 20,000,
    growing with the table; auto_explain, docs/performance.md). Custom plans see the current
    size. For transactions of a few big statements, where planning is cheap beside them."""
    if is_postgresql(session):
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


class ConnectionLost(Exception):
    """A statement on a driver connection (:func:`driver_connection`) found it closed."""


def connection_lost(exc: BaseException) -> bool:
    """The database connection broke under a statement (the pool has been invalidated)."""
    return isinstance(exc, ConnectionLost) or (
        isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


#: Exceptions of asyncpg and the socket under it that mean the connection is gone.
_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError, OSError)
_driver_pools: WeakKeyDictionary[AsyncEngine, asyncpg.Pool] = WeakKeyDictionary()


async def _no_reset(_connection: asyncpg.Connection) -> None:
    """Nothing to reset: the driver connections only run autocommitted statements (asyncpg's
    default reset costs a round trip on every release). asyncpg rolls back an open transaction
    itself before calling this."""


async def _driver_pool(engine: AsyncEngine) -> asyncpg.Pool:
    dsn = engine.url.render_as_string(hide_password=False).replace(
        "postgresql+asyncpg://", "postgresql://", 1)
    size = getattr(engine.pool, "size", lambda: 10)()
    # min_size=0: creating it connects nothing, so two first callers may each make one.
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=size, reset=_no_reset)
    kept = _driver_pools.setdefault(engine, pool)
    if kept is not pool:
        await pool.close()
    return kept


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """An asyncpg connection with no transaction open: each statement commits on its own. For
    the edit path's calls (``server.hub._fast_op``) and the one-statement snapshot, where
    SQLAlchemy's execution layer and its pool checkout cost more CPU than PostgreSQL spends on
    them (checkout and return: 73 -> 17 us, measured). The connections come from an asyncpg
    pool beside the engine's, as large as it; :func:`dispose` closes both.

    When the connection turns out closed, every connection of that pool is replaced at its next
    checkout (as SQLAlchemy does with its own pool when one of its statements meets a
    disconnect) and :class:`ConnectionLost` is raised.
    """
    pool = _driver_pools.get(engine) or await _driver_pool(engine)
    async with pool.acquire() as driver:
        try:
            yield driver
        except Exception as exc:
            # A backend that was terminated while idle can also surface as an error about the
            # protocol's state, on a connection asyncpg has marked closed.
            if not isinstance(exc, _LOST) and not driver.is_closed():
                raise
            await pool.expire_connections()
            raise ConnectionLost(f"the database connection was lost: {exc}") from exc


log = logging.getLogger("labelhub.db")
#: How long :func:`dispose` waits for connections still in use to come back (seconds).
DISPOSE_GRACE = 5.0


async def dispose(engine: AsyncEngine, grace: float = DISPOSE_GRACE) -> None:
    """Close the engine's pool and its driver pool (:func:`driver_connection`), once the
    connections in use came back (``grace`` seconds at most).

    Why wait: ``engine.dispose()`` closes only the connections in the pool. One that a task
    still holds (a request finishing, a stream's read-ahead, a cancelled task unwinding) is
    checked in to the disposed pool afterwards and never closed; the garbage collector then
    finds it open (aiosqlite: "Connection ... was deleted before being closed", a
    ResourceWarning in whatever test runs next)."""
    await _connections_returned(engine, grace)
    pool = _driver_pools.pop(engine, None)
    try:
        if pool is not None:
            await pool.close()
    finally:
        await engine.dispose()


async def _connections_returned(engine: AsyncEngine, grace: float) -> None:
    checkedout = getattr(engine.sync_engine.pool, "checkedout", None)
    if checkedout is None or checkedout() <= 0:
        return
    loop = asyncio.get_running_loop()
    returned: asyncio.Future[None] = loop.create_future()

    def check() -> None:
        if checkedout() <= 0 and not returned.done():
            returned.set_result(None)

    def on_checkin(*_args: Any) -> None:
        loop.call_soon(check)  # the pool counts the connection in right after this hook

    event.listen(engine.sync_engine, "checkin", on_checkin)
    try:
        await asyncio.wait_for(returned, grace)
    except TimeoutError:  # a task stuck on its connection: dispose anyway, and say so
        log.warning("disposing the database engine with %d connection(s) still in use",
                    checkedout())
    finally:
        event.remove(engine.sync_engine, "checkin", on_checkin)


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
