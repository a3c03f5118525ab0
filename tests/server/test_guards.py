"""Cross-site writes refused (server/guards.py, F12), JSON routes wanting JSON (_web.read_body),
security headers on every response (F18)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from server.app import create_app
from tests.conftest import Api, login, make_project, make_settings

JSON = {"Content-Type": "application/json"}


async def project_names(api: Api) -> list[str]:
    return [p["name"] for p in (await api.client.get("/api/v1/projects")).json()["projects"]]


async def test_a_form_on_another_page_cannot_create_a_project(admin: Api) -> None:
    """The red team's page: a text/plain form post whose body happens to be JSON."""
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        resp = await admin.client.post("/api/v1/projects", content=b'{"name": "evil"}',
                                       headers={"Content-Type": kind})
        assert resp.status_code == 415, (kind, resp.text)
        assert resp.json()["error"]["code"] == "unsupported_media_type"
    assert "evil" not in await project_names(admin)


async def test_json_routes_want_a_json_content_type(admin: Api) -> None:
    resp = await admin.client.post("/api/v1/projects", content=b'{"name": "p"}')  # no type
    assert resp.status_code == 415, resp.text
    for kind in ("application/json; charset=utf-8", "application/merge-patch+json"):
        ok = await admin.client.post("/api/v1/projects", content=b'{"name": "p"}',
                                     headers={"Content-Type": kind})
        assert ok.status_code == 201, (kind, ok.text)


async def test_bodyless_writes_refuse_form_posts_too(admin: Api) -> None:
    pid = await make_project(admin)
    label = (await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": "cat"})).json()
    url = f"/api/v1/projects/{pid}/labels/{label['id']}/star"
    resp = await admin.client.post(url, content=b"x=1", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert (await admin.client.post(url)).status_code == 200


async def test_writes_from_another_origin_are_refused(admin: Api) -> None:
    for origin in ("http://evil.example", "null", "http://testserver.evil.example"):
        resp = await admin.client.post("/api/v1/projects", json={"name": "evil"},
                                       headers={"Origin": origin})
        assert resp.status_code == 403, (origin, resp.text)
        assert resp.json()["error"]["code"] == "bad_origin"
    pid = await make_project(admin)
    resp = await admin.client.delete(f"/api/v1/projects/{pid}", headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403
    assert "evil" not in await project_names(admin)
    # Reads are not writes; the server's own origin and clients without one may write.
    assert (await admin.client.get("/api/v1/projects", headers={"Origin": "http://evil.example"})).status_code == 200
    for headers in ({"Origin": "http://testserver"}, {}):
        resp = await admin.client.post("/api/v1/projects", json={"name": "ok"}, headers=headers)
        assert resp.status_code == 201, resp.text


@pytest.fixture
async def app_with_origins(database_url: str, tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = make_settings(database_url, tmp_path / "data",
                             allowed_origins="https://labels.example.com")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_allowed_origins_may_write(app_with_origins: Starlette) -> None:
    admin = await login(app_with_origins, "admin@example.com", "admin-password-1")
    try:
        ok: dict[str, Any] = {"Origin": "https://labels.example.com"}
        assert (await admin.client.post("/api/v1/projects", json={"name": "a"}, headers=ok)).status_code == 201
        bad = {"Origin": "https://other.example.com"}
        assert (await admin.client.post("/api/v1/projects", json={"name": "b"}, headers=bad)).status_code == 403
    finally:
        await admin.client.aclose()


async def test_login_from_another_origin_is_refused(anon: httpx.AsyncClient) -> None:
    resp = await anon.post("/api/v1/auth/login", json={"email": "admin@example.com",
                                                       "password": "admin-password-1"},
                           headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403
    assert "set-cookie" not in resp.headers


async def test_every_response_carries_the_security_headers(admin: Api, anon: httpx.AsyncClient) -> None:
    responses = [
        await anon.get("/healthz"),
        await anon.get("/"),  # the browser app's index.html
        await anon.get("/api/v1/me"),  # 401
        await admin.client.get("/api/v1/projects"),
        await admin.client.get("/api/v1/images/999999"),  # 404
        await admin.client.post("/api/v1/projects", content=b"x", headers={"Content-Type": "text/plain"}),
        await anon.post("/api/v1/auth/login", content=b"{" + b" " * 10_000 + b"}", headers=JSON),
    ]
    for resp in responses:
        assert resp.headers["x-content-type-options"] == "nosniff", resp.url
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["referrer-policy"] == "same-origin"
        csp = resp.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert responses[1].status_code == 200 and "<html" in responses[1].text.lower()
