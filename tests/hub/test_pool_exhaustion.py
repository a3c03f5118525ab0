"""A request that finds every pooled database connection taken gets ``busy``, not a dropped
socket or a 500 (server/hub/endpoint.py, server/errors.py). PostgreSQL only: that is where the
pool is sized by the settings."""

from __future__ import annotations

import httpx
import pytest

from server.settings import Settings
from tests.conftest import UserFactory, make_project
from tests.hub.conftest import serve, upload_images

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"],
                                                            indirect=True)]


async def test_an_exhausted_pool_answers_busy_and_keeps_the_socket(
        settings: Settings, users: UserFactory) -> None:
    tight = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0,
                                        "db_pool_timeout": 0.2})
    async with serve(tight) as live:
        owner = await users("owner")
        project = await make_project(owner)
        images = await upload_images(owner, project, 1)
        ws = await live.connect(owner)
        assert (await ws.request("hello", project=project))["type"] == "ack"
        # Hold the one connection the pool has: the next request cannot get one.
        async with live.app.state.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            refused = await ws.request("subscribe", image=images[0])
            assert refused["type"] == "error" and refused["code"] == "busy"
            assert refused["id"] is not None
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live.port}",
                                         headers={"Authorization": f"Bearer {owner.token}"}
                                         ) as http:
                rest = await http.get(f"/api/v1/projects/{project}")
            assert rest.status_code == 503 and rest.json()["error"]["code"] == "busy"
            assert rest.headers["Retry-After"] == "1"
        # The same socket goes on once a connection is free again.
        snapshot = await ws.request("subscribe", image=images[0])
        assert snapshot["type"] != "error", snapshot
        await ws.close()
