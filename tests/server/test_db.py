"""A database connection that dies under the server (PostgreSQL restarted, a backend killed):
the request that meets it gets "unavailable" and changes nothing; the next one works."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from server.app import create_app
from server.hub.connection import Connection
from server.hub.endpoint import _handle
from tests._db import PgTemplate, pg_base_url, with_database
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_project, make_settings


async def _kill_backends(database: str) -> int:
    admin = await asyncpg.connect(with_database(pg_base_url(), "postgres").replace("+asyncpg", ""))
    try:
        return len(await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
            "AND pid <> pg_backend_pid()", database))
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_a_lost_connection_is_unavailable_once_then_the_pool_recovers(
        pg_template: PgTemplate, tmp_path: Path) -> None:
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
            await admin.client.aclose()
    finally:
        await PgTemplate.drop(name)
