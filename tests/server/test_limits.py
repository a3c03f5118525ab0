"""Body limits enforced while reading, and auth and privileges checked before any body is read
(server/limits.py, server/_web.py read_body / authorize)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from server.app import create_app
from server.limits import LOGIN_BODY_LIMIT
from tests.conftest import Api, UserFactory, add_member, login, make_project, make_settings
from tests.server._rows import make_images

CHUNK = 64 * 1024
JSON = {"Content-Type": "application/json"}


class Trickle:
    """A chunked body (no Content-Length) that counts how much of it the server pulled."""

    def __init__(self, total: int, head: bytes = b'{"email": "') -> None:
        self.total, self.head, self.pulled = total, head, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        filler = b"a" * CHUNK
        while sent < self.total:
            chunk = self.head if sent == 0 else filler
            sent += len(chunk)
            self.pulled += len(chunk)
            yield chunk


def assert_too_large(resp: httpx.Response, limit: int) -> None:
    assert resp.status_code == 413, resp.text
    error = resp.json()["error"]
    assert error["code"] == "too_large" and error["details"]["limit_bytes"] == limit


async def test_login_refuses_a_huge_chunked_body_while_reading_it(anon: httpx.AsyncClient) -> None:
    body = Trickle(600 * 1024 * 1024)  # the red-team's 600 MiB; only a few chunks are pulled
    resp = await anon.post("/api/v1/auth/login", content=body, headers=JSON)
    assert_too_large(resp, LOGIN_BODY_LIMIT)
    assert body.pulled <= LOGIN_BODY_LIMIT + CHUNK


async def test_login_refuses_a_declared_length_past_the_limit(anon: httpx.AsyncClient) -> None:
    resp = await anon.post("/api/v1/auth/login", content=b"{" + b" " * LOGIN_BODY_LIMIT + b"}",
                           headers=JSON)
    assert_too_large(resp, LOGIN_BODY_LIMIT)


async def test_json_bodies_are_limited_while_reading(admin: Api) -> None:
    limit = 1024 * 1024  # LABELHUB_MAX_JSON_KB's default
    body = Trickle(50 * 1024 * 1024, head=b'{"name": "')
    resp = await admin.client.post("/api/v1/projects", content=body, headers=JSON)
    assert_too_large(resp, limit)
    assert body.pulled <= limit + CHUNK
    # Under the limit, a chunked body is read as before.
    ok = await admin.client.post("/api/v1/projects", headers=JSON,
                                 content=_chunks(b'{"name": "chunked"}'))
    assert ok.status_code == 201, ok.text


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 5):
        yield data[i:i + 5]


ROUTES_WITH_BODIES = [
    ("POST", "/api/v1/projects"),
    ("PATCH", "/api/v1/projects/{pid}"),
    ("POST", "/api/v1/projects/{pid}/members"),
    ("PATCH", "/api/v1/projects/{pid}/members/{uid}"),
    ("POST", "/api/v1/projects/{pid}/labels"),
    ("PATCH", "/api/v1/projects/{pid}/labels/1"),
    ("POST", "/api/v1/projects/{pid}/labels/apply"),
    ("PATCH", "/api/v1/projects/{pid}/settings"),
    ("PATCH", "/api/v1/me/settings"),
    ("POST", "/api/v1/me/tokens"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/{uid}"),
    ("POST", "/api/v1/images/{iid}/smart-select"),
    ("POST", "/api/v1/projects/{pid}/import?format=json"),
    ("POST", "/api/v1/projects/{pid}/images"),
    ("POST", "/api/v1/projects/{pid}/images/zip"),
]


async def test_no_route_reads_a_body_before_authentication(app: Starlette, admin: Api,
                                                          anon: httpx.AsyncClient) -> None:
    pid = await make_project(admin)
    [iid] = await make_images(app, pid, ["a.png"])
    for method, path in ROUTES_WITH_BODIES:
        url = path.format(pid=pid, iid=iid, uid=admin.user["id"])
        body = Trickle(10 * 1024 * 1024)
        resp = await anon.request(method, url, content=body, headers=JSON)
        assert resp.status_code == 401, (url, resp.text)
        assert body.pulled == 0, url


async def test_no_route_reads_a_body_before_the_privilege_check(
        app: Starlette, admin: Api, users: UserFactory) -> None:
    pid = await make_project(admin)
    [iid] = await make_images(app, pid, ["a.png"])
    viewer = await users("viewer")
    await add_member(admin, pid, viewer, privileges=["view"])
    stranger = await users("stranger")
    for who in (viewer, stranger):
        for method, path in ROUTES_WITH_BODIES:
            if path in ("/api/v1/projects", "/api/v1/me/settings", "/api/v1/me/tokens"):
                continue  # any user may
            url = path.format(pid=pid, iid=iid, uid=admin.user["id"])
            body = Trickle(10 * 1024 * 1024)
            resp = await who.client.request(method, url, content=body, headers=JSON)
            assert resp.status_code in (403, 404), (url, resp.text)
            assert body.pulled == 0, url


@pytest.fixture
async def small_app(database_url: str, tmp_path: Path) -> AsyncIterator[Starlette]:
    application = create_app(make_settings(database_url, tmp_path / "data", max_upload_mb=1,
                                           max_json_kb=4))
    async with application.router.lifespan_context(application):
        yield application


async def test_imports_and_uploads_are_limited_while_reading(small_app: Starlette) -> None:
    admin = await login(small_app, "admin@example.com", "admin-password-1")
    try:
        pid = await make_project(admin)
        limit = 1024 * 1024
        body = Trickle(40 * 1024 * 1024, head=b"[")
        resp = await admin.client.post(f"/api/v1/projects/{pid}/import?format=json", content=body,
                                       headers={"Content-Type": "application/octet-stream"})
        assert_too_large(resp, limit)
        assert body.pulled <= limit + CHUNK
        body = Trickle(40 * 1024 * 1024, head=b'--xyz\r\nContent-Disposition: form-data; name="files"; '
                                               b'filename="a.png"\r\n\r\n')
        resp = await admin.client.post(f"/api/v1/projects/{pid}/images", content=body,
                                       headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert_too_large(resp, limit)
        assert body.pulled <= limit + CHUNK
        # LABELHUB_MAX_JSON_KB sets the JSON limit.
        resp = await admin.client.patch(f"/api/v1/projects/{pid}", headers=JSON,
                                        content=b'{"description": "' + b"x" * 5000 + b'"}')
        assert_too_large(resp, 4096)
    finally:
        await admin.client.aclose()

