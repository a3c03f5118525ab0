"""Test databases built the only way the schema is built: ``alembic upgrade head``.

A template is migrated once per run and copied for each test (a file copy on SQLite,
``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so every test starts from an empty, current schema.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
PG_ENV = "LABELHUB_TEST_POSTGRES_URL"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _in_thread(fn: Callable[[], T]) -> T:
    # Fixtures may be built while an event loop runs; alembic's env.py and asyncio.run need their own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def upgrade(url: str) -> None:
    _in_thread(lambda: command.upgrade(alembic_config(url), "head"))


def pg_required() -> bool:
    return bool(os.environ.get(PG_ENV))


def pg_base_url() -> str:
    return os.environ.get(PG_ENV) or DEFAULT_PG


def _raw(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


async def _admin(sql: str) -> None:
    """Run one statement on the server's ``postgres`` database (create, drop, terminate)."""
    # A busy server can be slow to accept; an absent one refuses at once.
    conn = await asyncpg.connect(_raw(with_database(pg_base_url(), "postgres")), timeout=30)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_reachable() -> bool:
    try:
        _in_thread(lambda: asyncio.run(_admin("SELECT 1")))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


class _Chores:
    """An event loop in a thread of its own, for the PostgreSQL work a test need not wait for:
    dropping the databases tests used (a ``DROP DATABASE`` waits for a checkpoint, 0.3-2 s on a
    busy server, measured here; drops running together share one) and copying the next test's
    database while this one runs (0.07-0.3 s)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._drops: set[concurrent.futures.Future[None]] = set()
        self._errors: list[BaseException] = []

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="pg-chores",
                                            daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def drop(self, name: str) -> None:
        future = self.submit(PgTemplate.drop(name))
        self._drops.add(future)
        future.add_done_callback(self._dropped)

    def _dropped(self, future: concurrent.futures.Future[None]) -> None:
        self._drops.discard(future)
        error = None if future.cancelled() else future.exception()
        if error is not None:
            self._errors.append(error)

    def close(self) -> None:
        """Wait until every database given is dropped; raise the first failure."""
        concurrent.futures.wait(list(self._drops))
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._loop = self._thread = None
        if self._errors:
            raise self._errors[0]


class PgTemplate:
    def __init__(self) -> None:
        self.name = f"lh_tpl_{uuid.uuid4().hex[:10]}"
        self._chores = _Chores()
        self._spare: concurrent.futures.Future[str] | None = None

    def build(self) -> None:
        _in_thread(lambda: asyncio.run(_admin(f'CREATE DATABASE "{self.name}"')))
        upgrade(with_database(pg_base_url(), self.name))

    async def copy(self) -> str:
        return await self.copy_of(self.name)

    async def take(self) -> str:
        """A copy for one test: the one made while the previous test ran, if any; the next
        one is started now. Give it back with :meth:`discard`."""
        spare, self._spare = self._spare, self._chores.submit(self.copy())
        return await (self.copy() if spare is None else asyncio.wrap_future(spare))

    @staticmethod
    async def copy_of(template: str) -> str:
        """A new database copied from ``template`` (which nobody may be connected to)."""
        name = f"lh_t_{uuid.uuid4().hex[:12]}"
        await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    @staticmethod
    async def drop(name: str) -> None:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def discard(self, name: str) -> None:
        """Drop a copy soon, without waiting (:meth:`destroy` waits for it)."""
        self._chores.drop(name)

    def destroy(self) -> None:
        try:
            if self._spare is not None:
                with suppress(Exception):  # a copy that failed left nothing to drop
                    self.discard(self._spare.result())
            self._chores.close()
        finally:
            drop_now(self.name)


def drop_now(name: str) -> None:
    """Drop a PostgreSQL database, from code that is not async (a session fixture's end)."""
    _in_thread(lambda: asyncio.run(PgTemplate.drop(name)))


class SqliteTemplate:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"

    def build(self) -> None:
        upgrade(f"sqlite+aiosqlite:///{self.path}")

    def copy(self, target: Path) -> str:
        shutil.copyfile(self.path, target)
        return f"sqlite+aiosqlite:///{target}"
