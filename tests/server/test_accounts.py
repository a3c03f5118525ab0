from __future__ import annotations

import httpx

from server import revocations
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, UserFactory


async def test_login_returns_token_user_and_cookie(anon: httpx.AsyncClient) -> None:
    resp = await anon.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert body["user"]["email"] == ADMIN_EMAIL and body["user"]["is_admin"] is True
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    # The cookie alone authenticates the browser.
    me = await anon.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["email"] == ADMIN_EMAIL


async def test_wrong_password_is_401_with_error_shape(anon: httpx.AsyncClient) -> None:
    resp = await anon.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "nope"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "bad_credentials"


async def test_bad_bodies_are_4xx_never_500(anon: httpx.AsyncClient) -> None:
    for content in (b"{", b"[]", b'{"email": 5}', b"\xff\xfe", b'{"email": "a@b", "password": ""}'):
        resp = await anon.post("/api/v1/auth/login", content=content)
        assert 400 <= resp.status_code < 500, (content, resp.status_code)
        assert set(resp.json()["error"]) >= {"code", "message"}


async def test_everything_needs_auth_except_healthz(anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/healthz")).status_code == 200
    for path in ("/api/v1/me", "/api/v1/projects", "/api/v1/me/tokens", "/api/v1/users"):
        resp = await anon.get(path)
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == "unauthorized"
    bad = await anon.get("/api/v1/me", headers={"Authorization": "Bearer forged.token.value"})
    assert bad.status_code == 401


async def test_logout_invalidates_login_tokens(admin: Api) -> None:
    assert (await admin.client.get("/api/v1/me")).status_code == 200
    assert (await admin.client.post("/api/v1/auth/logout")).status_code == 200
    assert (await admin.client.get("/api/v1/me")).status_code == 401


async def test_api_tokens_create_list_use_revoke(admin: Api, anon: httpx.AsyncClient) -> None:
    created = await admin.client.post("/api/v1/me/tokens", json={"name": "script"})
    assert created.status_code == 201
    token = created.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await anon.get("/api/v1/me", headers=headers)).json()["email"] == ADMIN_EMAIL
    listed = (await admin.client.get("/api/v1/me/tokens")).json()["tokens"]
    assert [t["name"] for t in listed] == ["script"] and "token" not in listed[0]
    assert (await admin.client.delete(f"/api/v1/me/tokens/{created.json()['id']}")).status_code == 204
    assert (await anon.get("/api/v1/me", headers=headers)).status_code == 401


async def test_only_admins_manage_users(users: UserFactory, admin: Api) -> None:
    alice = await users("alice")
    resp = await alice.client.post("/api/v1/users", json={"email": "x@example.com", "password": "password-1",
                                                                 "name": "X"})
    assert resp.status_code == 403
    dup = await admin.client.post("/api/v1/users", json={"email": alice.user["email"], "password": "password-1",
                                                                 "name": "A"})
    assert dup.status_code == 409
    bad = await admin.client.post("/api/v1/users", json={"email": "not-an-email", "password": "password-1",
                                                                 "name": "N"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "email"
    listed = (await admin.client.get("/api/v1/users")).json()["users"]
    assert {u["email"] for u in listed} == {ADMIN_EMAIL, alice.user["email"]}


async def test_deactivated_user_cannot_log_in(users: UserFactory, admin: Api, anon: httpx.AsyncClient) -> None:
    bob = await users("bob")
    resp = await admin.client.patch(f"/api/v1/users/{bob.user['id']}", json={"is_active": False})
    assert resp.status_code == 200
    assert (await bob.client.get("/api/v1/me")).status_code == 401
    login = await anon.post("/api/v1/auth/login", json={"email": bob.user["email"], "password": "password-123"})
    assert login.status_code == 401


async def test_password_change_needs_the_current_password_and_ends_other_sessions(
        users: UserFactory, anon: httpx.AsyncClient) -> None:
    lab = await users("lab")
    other_tab = (await anon.post("/api/v1/auth/login", json={
        "email": lab.user["email"], "password": "password-123"})).json()["token"]
    wrong = await lab.client.post("/api/v1/auth/password",
                                  json={"current": "nope", "new": "another-pass-1"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    short = await lab.client.post("/api/v1/auth/password",
                                  json={"current": "password-123", "new": "short"})
    assert short.status_code == 422
    assert (await lab.client.get("/api/v1/me")).status_code == 200  # nothing changed

    resp = await lab.client.post("/api/v1/auth/password",
                                 json={"current": "password-123", "new": "another-pass-1"})
    assert resp.status_code == 200 and resp.json()["user"]["id"] == lab.user["id"]
    assert "labelhub_session" in resp.headers.get("set-cookie", "")
    for old in (lab.token, other_tab):  # every earlier login token is dead
        assert (await anon.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"})
                ).status_code == 401
    fresh = {"Authorization": f"Bearer {resp.json()['token']}"}
    assert (await anon.get("/api/v1/me", headers=fresh)).status_code == 200
    old_password = await anon.post("/api/v1/auth/login", json={
        "email": lab.user["email"], "password": "password-123"})
    assert old_password.status_code == 401
    assert (await anon.post("/api/v1/auth/login", json={
        "email": lab.user["email"], "password": "another-pass-1"})).status_code == 200


async def test_names_are_required_and_checked(admin: Api, users: UserFactory) -> None:
    base = {"email": "n@example.com", "password": "password-1"}
    for name in (None, "", "   ", "a\nb", "tab\there", "x" * 201):
        body = base if name is None else {**base, "name": name}
        resp = await admin.client.post("/api/v1/users", json=body)
        assert resp.status_code == 422, name
        assert resp.json()["error"]["details"][0]["field"] == "name"
    made = await admin.client.post("/api/v1/users", json={**base, "name": "  Nell  "})
    assert made.json()["name"] == "Nell"
    assert (await admin.client.patch(f"/api/v1/users/{made.json()['id']}",
                                     json={"name": ""})).status_code == 422
    ana = await users("ana")
    assert (await ana.client.patch("/api/v1/me", json={"name": " "})).status_code == 422
    renamed = await ana.client.patch("/api/v1/me", json={"name": "Ana Z."})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ana Z."
    assert (await ana.client.patch("/api/v1/me", json={"is_admin": True})).status_code == 422


async def test_an_admin_reset_ends_the_users_sessions(
        users: UserFactory, admin: Api, anon: httpx.AsyncClient) -> None:
    heard: list[revocations.Revocation] = []
    stop = revocations.on_revocation(heard.append)
    try:
        lab = await users("lab")
        refused = await lab.client.patch(f"/api/v1/users/{lab.user['id']}", json={"password": "mine-now-1"})
        assert refused.status_code == 403
        reset = await admin.client.patch(f"/api/v1/users/{lab.user['id']}", json={"password": "reset-pass-1"})
        assert reset.status_code == 200
        assert (await lab.client.get("/api/v1/me")).status_code == 401
        assert revocations.Revocation(lab.user["id"], None, "password") in heard
        login = await anon.post("/api/v1/auth/login", json={"email": lab.user["email"],
                                                            "password": "reset-pass-1"})
        assert login.status_code == 200
        gone = await admin.client.patch(f"/api/v1/users/{lab.user['id']}", json={"is_active": False})
        assert gone.status_code == 200
        assert revocations.Revocation(lab.user["id"], None, "deactivated") in heard
        me = admin.user["id"]
        last = await admin.client.patch(f"/api/v1/users/{me}", json={"is_active": False})
        assert last.status_code == 409 and last.json()["error"]["code"] == "last_admin"
    finally:
        stop()
