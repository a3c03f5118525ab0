"""Fixtures for tests/server: ``live_server``, a real uvicorn serving the hub (for tests that
check that REST changes and imports reach live clients); ``store_app``/``store_admin``, the app
on each image store (the local directory and S3 on SeaweedFS) and each database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from server.app import create_app
from server.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, login, make_settings
from tests.hub.conftest import server as live_server

__all__ = ["live_server", "store_admin", "store_app", "store_settings"]


@pytest.fixture(params=["local", "s3"])
def store_settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Settings:
    url = "" if request.param == "local" else request.getfixturevalue("s3_url")
    return make_settings(database_url, tmp_path / "data", storage_url=url,
                         storage_timeout_seconds=2.0)


@pytest.fixture
async def store_app(store_settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(store_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def store_admin(store_app: Starlette) -> AsyncIterator[Api]:
    api = await login(store_app, ADMIN_EMAIL, ADMIN_PASSWORD)
    yield api
    await api.client.aclose()

