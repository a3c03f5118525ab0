"""A database connection that dies under the server (PostgreSQL restarted, a backend killed):
the request that meets it gets "unavailable" and changes nothing; the next one works."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import cv2
import numpy as np
import pytest
from sqlalchemy import text

from server.app import create_app
from server.db import dispose, make_engine, make_sessionmaker, plan_for_current_sizes, transaction
from server.hub import _fast_op
from server.hub.connection import Connection
from server.hub.endpoint import _handle
from tests._db import PgTemplate, pg_base_url, with_database
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_project, make_settings


async def _terminate(condition: str, arg: Any) -> int:
    """Terminate the backends matching ``condition`` (with ``$1`` = ``arg``); how many."""
    admin = await asyncpg.connect(with_database(pg_base_url(), "postgres").replace("+asyncpg", ""))
    try:
        return len(await admin.fetch(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {condition} "
            "AND pid <> pg_backend_pid()", arg))
    finally:
        await admin.close()


async def _kill_backends(database: str) -> int:
    return await _terminate("datname = $1", database)


async def _kill_backend(pid: int) -> None:
    assert await _terminate("pid = $1", pid) == 1


async def _image(admin: Any, project_id: int) -> int:
    files = [("files", ("a.png", _png(), "image/png"))]
    resp = await admin.client.post(f"/api/v1/projects/{project_id}/images", files=files)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["results"][0]["image"]["id"])


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.postgres
async def test_a_lost_connection_is_unavailable_once_then_the_pool_recovers(
        pg_template: PgTemplate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = await pg_template.copy()
    try:
        app = create_app(make_settings(with_database(pg_base_url(), name), tmp_path / "data"))
        async with app.router.lifespan_context(app):
            admin = await login(app, ADMIN_EMAIL, ADMIN_PASSWORD)
            pid = await make_project(admin)
            assert await _kill_backends(name) >= 1
            lost = await admin.client.get("/api/v1/me")
            assert lost.status_code == 503 and lost.json()["error"]["code"] == "unavailable"
            assert (await admin.client.get(f"/api/v1/projects/{pid}")).status_code == 200

            conn = Connection(websocket=None, user_id=admin.user["id"], user_name="a", is_admin=True)
            assert await _kill_backends(name) >= 1
            hello = json.dumps({"type": "hello", "id": "h1", "project": pid})
            assert await _handle(conn, app.state.handlers, hello) is None  # the socket stays open
            error = json.loads(conn.backlog.popleft())
            assert (error["type"], error["id"], error["code"]) == ("error", "h1", "unavailable")
            assert conn.project_id is None  # nothing happened
            await _handle(conn, app.state.handlers, hello.replace("h1", "h2"))
            ack = json.loads(conn.backlog.popleft())
            assert (ack["type"], ack["id"]) == ("ack", "h2")

            # An edit (on PostgreSQL it runs on the driver connection, server/hub/_fast_op.py).
            image = await _image(admin, pid)
            await _handle(conn, app.state.handlers, json.dumps(
                {"type": "open_image", "id": "o", "image": image}))
            token = next(f for f in map(json.loads, conn.backlog) if f.get("id") == "o")["lock"]["token"]
            conn.backlog.clear()

            def op(rid: str, x: int) -> str:
                return json.dumps({"type": "op", "id": rid, "image": image, "token": token,
                                   "client_op_id": rid, "op": {"kind": "create", "object": {
                                       "id": rid, "type": "point", "label": "p",
                                       "geometry": {"x": x, "y": 1}}}})

            # The edit's own connection dies right under its first statement (an idle pooled
            # connection found dead is replaced at checkout, unnoticed).
            read = _fast_op.read

            async def read_on_a_killed_backend(driver: Any, **kwargs: Any) -> Any:
                await _kill_backend(driver.get_server_pid())
                return await read(driver, **kwargs)

            monkeypatch.setattr(_fast_op, "read", read_on_a_killed_backend)
            assert await _handle(conn, app.state.handlers, op("e1", 1)) is None
            monkeypatch.undo()
            replies = [json.loads(f) for f in conn.backlog]
            conn.backlog.clear()
            assert [(r["type"], r["id"], r.get("code")) for r in replies if r.get("id") == "e1"] \
                == [("error", "e1", "unavailable")]
            await _handle(conn, app.state.handlers, op("e2", 2))
            replies = [json.loads(f) for f in conn.backlog]
            assert [(r["type"], r["id"]) for r in replies if r.get("id") == "e2"] == [("ack", "e2")]
            conn.backlog.clear()
            await _handle(conn, app.state.handlers, json.dumps(
                {"type": "subscribe", "id": "s", "image": image}))
            snapshot = next(f for f in map(json.loads, conn.backlog) if f["type"] == "snapshot")
            assert [o["id"] for o in snapshot["objects"]] == ["e2"]  # the lost one left nothing
            await admin.client.aclose()
    finally:
        await PgTemplate.drop(name)


async def test_a_new_sqlite_file_and_data_dir_are_private(tmp_path: Path) -> None:
    """F18: the SQLite file holds password hashes; nobody but its owner reads it."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'labelhub.db'}",
                             tmp_path / "data")
    create_app(settings)
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    engine = make_engine(settings.resolved_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        for name in ("labelhub.db", "labelhub.db-wal", "labelhub.db-shm"):
            assert (tmp_path / "data" / name).stat().st_mode & 0o777 == 0o600, name
    finally:
        await engine.dispose()


def test_an_existing_sqlite_file_loses_group_and_other_access(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    make_engine(f"sqlite+aiosqlite:///{path}")
    assert path.stat().st_mode & 0o777 == 0o600


async def test_dispose_waits_for_a_connection_still_in_use(database_url: str) -> None:
    """A task that still holds a connection when the engine is disposed (a request finishing,
    a stream's read-ahead) gives it back afterwards: it must be closed, not left to the
    garbage collector (aiosqlite's "deleted before being closed" ResourceWarning)."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    holding, done = asyncio.Event(), asyncio.Event()

    async def straggler() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            holding.set()
            await done.wait()

    task = asyncio.create_task(straggler())
    await holding.wait()
    disposing = asyncio.create_task(dispose(engine))
    for _ in range(3):  # let dispose run up to its wait
        await asyncio.sleep(0)
    assert not disposing.done()  # still waiting for the straggler's connection
    done.set()
    await task
    await disposing
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del task
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.postgres
async def test_plan_for_current_sizes_replans_what_was_cached_while_a_table_was_small(
        pg_template: PgTemplate) -> None:
    """A generic plan cached at a few rows scans the whole table for a list of ids once it
    holds thousands; inside plan_for_current_sizes' transaction the same prepared statement is
    planned for the table as it is (PostgreSQL only: SQLite has no plan cache across runs)."""
    name = await pg_template.copy()
    engine = make_engine(with_database(pg_base_url(), name))
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            await session.execute(text("CREATE TABLE grow (id integer PRIMARY KEY, v text)"))
            await session.execute(text("INSERT INTO grow SELECT g, 'x' FROM generate_series(1, 5) g"))
            await session.execute(text("ANALYZE grow"))  # as autovacuum does while it is small
            await session.execute(text("PREPARE by_ids(int[]) AS SELECT v FROM grow WHERE id = ANY($1)"))
            for _ in range(6):  # five custom plans, then the generic one is kept
                await session.execute(text("EXECUTE by_ids('{1,2,3}')"))
            await session.execute(text(
                "INSERT INTO grow SELECT g, 'x' FROM generate_series(6, 50000) g"))
            explain = text("EXPLAIN EXECUTE by_ids('{1,2,3}')")
            cached = "\n".join((await session.execute(explain)).scalars())
            await plan_for_current_sizes(session)
            now = "\n".join((await session.execute(explain)).scalars())
        assert "Seq Scan" in cached, cached
        assert "Seq Scan" not in now and "grow_pkey" in now, now
        async with transaction(make_sessionmaker(engine)) as session:  # only that transaction
            assert (await session.execute(text("SHOW plan_cache_mode"))).scalar() == "auto"
    finally:
        await dispose(engine)
        await pg_template.drop(name)
