"""Test databases built the only way the schema is built: ``alembic upgrade head``.

A template is migrated once per run and copied for each test (a file copy on SQLite,
``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so every test starts from an empty, current schema.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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


class _Dropper:
    """Drops databases in a thread of its own, all that are waiting at once. A ``DROP DATABASE``
    waits for a checkpoint (0.3-2 s on a busy server, measured here): a test need not wait
    for it, and drops running together share one checkpoint."""

    def __init__(self) -> None:
        self._names: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []

    def drop(self, name: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=lambda: asyncio.run(self._run()),
                                            name="drop-databases", daemon=True)
            self._thread.start()
        self._names.put(name)

    async def _run(self) -> None:
        while True:
            names = [await asyncio.to_thread(self._names.get)]
            while not self._names.empty():
                names.append(self._names.get())
            done = await asyncio.gather(*(PgTemplate.drop(n) for n in names if n is not None),
                                        return_exceptions=True)
            self._errors += [e for e in done if isinstance(e, BaseException)]
            if None in names:
                return

    def close(self) -> None:
        """Wait until every database given is dropped; raise the first failure."""
        if self._thread is not None:
            self._names.put(None)
            self._thread.join()
            self._thread = None
        if self._errors:
            raise self._errors[0]


class PgTemplate:
    def __init__(self) -> None:
        self.name = f"lh_tpl_{uuid.uuid4().hex[:10]}"
        self._dropper = _Dropper()

    def build(self) -> None:
        _in_thread(lambda: asyncio.run(_admin(f'CREATE DATABASE "{self.name}"')))
        upgrade(with_database(pg_base_url(), self.name))

    async def copy(self) -> str:
        return await self.copy_of(self.name)

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
        self._dropper.drop(name)

    def destroy(self) -> None:
        try:
            self._dropper.close()
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
