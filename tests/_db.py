"""Test databases built the only way the schema is built: ``alembic upgrade head``.

A template is migrated once per run and copied for each test (a file copy on SQLite,
``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so every test starts from an empty, current schema.
"""

from __future__ import annotations

import asyncio
import os
import shutil
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


class PgTemplate:
    def __init__(self) -> None:
        self.name = f"lh_tpl_{uuid.uuid4().hex[:10]}"

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

    def destroy(self) -> None:
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
