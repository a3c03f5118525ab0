"""Prepared databases: a project that takes seconds to build (the embedded digits of tests/ai) is
built once per backend and test process, then copied for each test that asks for it, as the
empty schema is (tests/_db.py): a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on
PostgreSQL, and a copy of the data directory (the images) beside it.

A test asks with ``@pytest.mark.prepared(builder, **kwargs)`` and reads what the builder
returned from the ``prepared`` fixture; its ``app`` then starts on the copy. ``builder(app,
admin, **kwargs)`` runs once, on a fresh database, in an app of the test's own settings.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests._db import PgTemplate, SqliteTemplate, _admin, drop_now, pg_base_url, with_database

Builder = Callable[..., Awaitable[Any]]
#: Where a test's data directory is (``tests.conftest.settings``: ``tmp_path / DATA_DIR``).
DATA_DIR = "data"


@dataclass(frozen=True)
class Built:
    source: str  # the SQLite file, or the PostgreSQL template database's name
    data_dir: Path
    value: Any


def key_of(builder: Builder, kwargs: dict[str, Any]) -> str:
    args = ",".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
    return f"{builder.__module__}.{builder.__qualname__}({args})"


class PreparedStore:
    """The databases built in this test process, by backend and builder."""

    def __init__(self, root: Path, run: Callable[[str, Path, Builder, dict[str, Any]],
                                                   Awaitable[Any]]) -> None:
        self.root, self.run = root, run  # run(url, data_dir, builder, kwargs) -> its value
        self._built: dict[tuple[str, str], Built] = {}

    async def sqlite(self, template: SqliteTemplate, builder: Builder, kwargs: dict[str, Any],
                     tmp_path: Path) -> tuple[str, Any]:
        """A copy of the builder's SQLite database at ``tmp_path / "test.db"`` (its URL)."""
        key = ("sqlite", key_of(builder, kwargs))
        built = self._built.get(key)
        if built is None:
            where = self.root / f"sqlite-{len(self._built)}"
            where.mkdir()
            url = template.copy(where / "test.db")
            value = await self.run(url, where / DATA_DIR, builder, kwargs)
            built = self._built[key] = Built(str(where / "test.db"), where / DATA_DIR, value)
        target = tmp_path / "test.db"
        _copy_files(built, tmp_path, target)
        return f"sqlite+aiosqlite:///{target}", built.value

    async def postgres(self, template: PgTemplate, builder: Builder, kwargs: dict[str, Any],
                       tmp_path: Path) -> tuple[str, Any]:
        """A new PostgreSQL database copied from the builder's (its name)."""
        key = ("postgres", key_of(builder, kwargs))
        built = self._built.get(key)
        if built is None:
            where = self.root / f"postgres-{len(self._built)}"
            where.mkdir()
            name = await template.copy()
            value = await self.run(with_database(pg_base_url(), name), where / DATA_DIR,
                                   builder, kwargs)
            # A template must have no session open; the app closed its own, so this is only
            # a guard against a straggler (a listener still closing).
            await _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
            built = self._built[key] = Built(name, where / DATA_DIR, value)
        name = await PgTemplate.copy_of(built.source)
        _copy_files(built, tmp_path, None)
        return name, built.value

    def destroy(self) -> None:
        for (backend, _), built in self._built.items():
            if backend == "postgres":
                drop_now(built.source)


def _copy_files(built: Built, tmp_path: Path, sqlite_target: Path | None) -> None:
    """The data directory, and the SQLite file when there is one (closed: no WAL is left,
    normally; one that is left goes along)."""
    if sqlite_target is not None:
        for suffix in ("", "-wal", "-shm"):
            if Path(built.source + suffix).exists():
                shutil.copyfile(built.source + suffix, str(sqlite_target) + suffix)
    shutil.copytree(built.data_dir, tmp_path / DATA_DIR)
