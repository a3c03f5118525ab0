"""Invitations (server/invitations.py): account links from site admins, project invitations from
managers that answer alike for every email (F16), one-time use and expiry on a hand-set clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from server.models import utcnow
from tests.conftest import Api, UserFactory, add_member, login, make_project


def _fix_clock(app: Starlette, hours: float = 0.0) -> None:
    moment = _START + timedelta(hours=hours)
    app.state.clock = lambda: moment


_START = utcnow()


def _token(link: str) -> str:
    assert link.startswith("/#/invite/")
    return link.removeprefix("/#/invite/")


async def test_a_link_makes_an_account_once(app: Starlette, admin: Api,
                                            anon: httpx.AsyncClient) -> None:
    made = await admin.client.post("/api/v1/invitations",
                                   json={"email": "New@Example.com ", "name": "Nia"})
    assert made.status_code == 201, made.text
    token = _token(made.json()["link"])
    shown = await anon.get(f"/api/v1/invitations/{token}")
    assert shown.status_code == 200
    assert shown.json()["email"] == "new@example.com" and shown.json()["name"] == "Nia"
    assert shown.json()["invited_by"] == "Admin"

    nameless = await anon.post(f"/api/v1/invitations/{token}/accept",
                               json={"name": "  ", "password": "password-123"})
    assert nameless.status_code == 422 and nameless.json()["error"]["details"][0]["field"] == "name"
    short = await anon.post(f"/api/v1/invitations/{token}/accept",
                            json={"name": "Nia", "password": "short"})
    assert short.status_code == 422
    accepted = await anon.post(f"/api/v1/invitations/{token}/accept",
                               json={"name": " Nia N. ", "password": "password-123"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["user"]["name"] == "Nia N." and accepted.json()["token"]
    assert "labelhub_session" in accepted.headers["set-cookie"]  # logged in at once

    # One time only: the link is gone, and the account logs in with its password.
    assert (await anon.get(f"/api/v1/invitations/{token}")).status_code == 404
    again = await anon.post(f"/api/v1/invitations/{token}/accept",
                            json={"name": "Eve", "password": "password-456"})
    assert again.status_code == 404
    nia = await login(app, "new@example.com", "password-123")
    assert nia.user["name"] == "Nia N."
    await nia.client.aclose()


async def test_links_expire(app: Starlette, admin: Api, anon: httpx.AsyncClient) -> None:
    _fix_clock(app)
    made = (await admin.client.post("/api/v1/invitations", json={"email": "late@example.com"})).json()
    token = _token(made["link"])
    _fix_clock(app, hours=71.9)
    assert (await anon.get(f"/api/v1/invitations/{token}")).status_code == 200
    _fix_clock(app, hours=72)
    assert (await anon.get(f"/api/v1/invitations/{token}")).status_code == 404
    late = await anon.post(f"/api/v1/invitations/{token}/accept",
                           json={"name": "Late", "password": "password-123"})
    assert late.status_code == 404
    users = (await admin.client.get("/api/v1/users")).json()["users"]
    assert "late@example.com" not in {u["email"] for u in users}


async def test_only_site_admins_make_links_and_never_for_an_existing_account(
        admin: Api, users: UserFactory, anon: httpx.AsyncClient) -> None:
    ana = await users("ana")
    refused = await ana.client.post("/api/v1/invitations", json={"email": "x@example.com"})
    assert refused.status_code == 403
    assert (await ana.client.get("/api/v1/invitations")).status_code == 403
    dup = await admin.client.post("/api/v1/invitations", json={"email": ana.user["email"]})
    assert dup.status_code == 409
    assert (await anon.get("/api/v1/invitations/not-a-token")).status_code == 404


async def test_a_manager_cannot_tell_whether_an_email_has_an_account(
        app: Starlette, users: UserFactory) -> None:
    """F16: the answer to inviting an existing account and an unknown email is the same."""
    _fix_clock(app)
    owner, known = await users("owner"), await users("known")
    pid = await make_project(owner)
    url = f"/api/v1/projects/{pid}/members"
    answers = []
    for email in (known.user["email"], "nobody@example.com"):
        resp = await owner.client.post(url, json={"email": email, "role": "labeler"})
        body: dict[str, Any] = resp.json()
        assert body.pop("email") == email
        answers.append((resp.status_code, body, sorted(resp.headers.keys())))
    assert answers[0] == answers[1]
    assert answers[0][0] == 202 and "link" not in answers[0][1]
    # The project's pending list does not tell either.
    pending = (await owner.client.get(f"/api/v1/projects/{pid}/invitations")).json()["invitations"]
    assert [sorted(p) for p in pending] == [sorted(pending[0])] * 2
    assert {p["email"] for p in pending} == {known.user["email"], "nobody@example.com"}
    # Nobody was added without saying yes.
    members = (await owner.client.get(url)).json()["members"]
    assert [m["user_id"] for m in members] == [owner.user["id"]]
    assert (await known.client.get(f"/api/v1/projects/{pid}")).status_code == 404


async def test_the_invitee_accepts_or_declines_in_the_app(users: UserFactory) -> None:
    owner, lab, other = await users("owner"), await users("lab"), await users("other")
    pid = await make_project(owner, "Birds")
    url = f"/api/v1/projects/{pid}/members"
    await owner.client.post(url, json={"email": lab.user["email"], "role": "labeler"})
    (mine,) = (await lab.client.get("/api/v1/me/invitations")).json()["invitations"]
    assert mine["project_name"] == "Birds" and mine["invited_by"] == "owner"
    assert (await other.client.get("/api/v1/me/invitations")).json()["invitations"] == []
    stolen = await other.client.post(f"/api/v1/me/invitations/{mine['id']}/accept")
    assert stolen.status_code == 404
    ok = await lab.client.post(f"/api/v1/me/invitations/{mine['id']}/accept")
    assert ok.status_code == 200 and ok.json()["project_id"] == pid
    assert (await lab.client.get(f"/api/v1/projects/{pid}")).json()["role"] == "labeler"
    # Used once: neither listed nor accepted again.
    assert (await lab.client.get("/api/v1/me/invitations")).json()["invitations"] == []
    assert (await lab.client.post(f"/api/v1/me/invitations/{mine['id']}/accept")).status_code == 404
    # Declining leaves the project out of reach; a manager may withdraw an invitation.
    await owner.client.post(url, json={"email": other.user["email"], "role": "viewer"})
    (theirs,) = (await other.client.get("/api/v1/me/invitations")).json()["invitations"]
    assert (await other.client.delete(f"/api/v1/me/invitations/{theirs['id']}")).status_code == 204
    assert (await other.client.get(f"/api/v1/projects/{pid}")).status_code == 404
    await owner.client.post(url, json={"email": "late@example.com", "role": "viewer"})
    (waiting,) = (await owner.client.get(f"/api/v1/projects/{pid}/invitations")).json()["invitations"]
    assert (await lab.client.delete(f"/api/v1/invitations/{waiting['id']}")).status_code == 403
    assert (await owner.client.delete(f"/api/v1/invitations/{waiting['id']}")).status_code == 204
    assert (await owner.client.get(f"/api/v1/projects/{pid}/invitations")).json()["invitations"] == []


async def test_an_unknown_email_waits_for_a_site_admin(
        app: Starlette, admin: Api, users: UserFactory, anon: httpx.AsyncClient) -> None:
    owner = await users("owner")
    pid = await make_project(owner, "Cats")
    await owner.client.post(f"/api/v1/projects/{pid}/members",
                            json={"email": "cat@example.com", "role": "labeler"})
    (waiting,) = (await admin.client.get("/api/v1/invitations")).json()["invitations"]
    assert waiting["email"] == "cat@example.com" and waiting["has_account"] is False
    assert waiting["project_name"] == "Cats"
    link = (await admin.client.post("/api/v1/invitations",
                                    json={"email": "cat@example.com"})).json()["link"]
    made = await anon.post(f"/api/v1/invitations/{_token(link)}/accept",
                           json={"name": "Cat", "password": "password-123"})
    assert made.status_code == 200
    cat = await login(app, "cat@example.com", "password-123")
    (mine,) = (await cat.client.get("/api/v1/me/invitations")).json()["invitations"]
    assert mine["project_id"] == pid
    assert (await cat.client.post(f"/api/v1/me/invitations/{mine['id']}/accept")).status_code == 200
    assert (await cat.client.get(f"/api/v1/projects/{pid}")).status_code == 200
    await cat.client.aclose()


async def test_a_site_admin_adds_existing_accounts_and_links_unknown_ones(
        app: Starlette, admin: Api, users: UserFactory, anon: httpx.AsyncClient) -> None:
    lab = await users("lab")
    pid = await make_project(admin)
    url = f"/api/v1/projects/{pid}/members"
    direct = await admin.client.post(url, json={"email": lab.user["email"], "role": "labeler"})
    assert direct.status_code == 201 and direct.json()["name"] == "lab"
    invited = await admin.client.post(url, json={"email": "dog@example.com", "role": "viewer"})
    assert invited.status_code == 202
    token = _token(invited.json()["link"])
    assert (await anon.get(f"/api/v1/invitations/{token}")).json()["project"] == "Demo"
    made = await anon.post(f"/api/v1/invitations/{token}/accept",
                           json={"name": "Dog", "password": "password-123"})
    assert made.status_code == 200
    dog = await login(app, "dog@example.com", "password-123")
    assert (await dog.client.get(f"/api/v1/projects/{pid}")).json()["role"] == "viewer"
    await dog.client.aclose()


async def test_a_link_for_an_account_made_meanwhile_needs_its_login(
        app: Starlette, admin: Api, anon: httpx.AsyncClient) -> None:
    pid = await make_project(admin)
    link = (await admin.client.post(f"/api/v1/projects/{pid}/members",
                                    json={"email": "mo@example.com", "role": "labeler"})).json()["link"]
    made = await admin.client.post("/api/v1/users", json={"email": "mo@example.com",
                                                          "password": "password-123", "name": "Mo"})
    assert made.status_code == 201
    body = {"name": "Mo", "password": "whatever-123"}
    refused = await anon.post(f"/api/v1/invitations/{_token(link)}/accept", json=body)
    assert refused.status_code == 409
    mo = await login(app, "mo@example.com", "password-123")
    joined = await mo.client.post(f"/api/v1/invitations/{_token(link)}/accept", json=body)
    assert joined.status_code == 200
    assert (await mo.client.get(f"/api/v1/projects/{pid}")).json()["role"] == "labeler"
    assert (await mo.client.get("/api/v1/me")).status_code == 200  # the password did not change
    await mo.client.aclose()


async def test_an_invitation_lapses_with_its_senders_right_to_send_it(users: UserFactory) -> None:
    owner, mgr, lab = await users("owner"), await users("mgr"), await users("lab")
    pid = await make_project(owner)
    await add_member(owner, pid, mgr, role="manager")
    await mgr.client.post(f"/api/v1/projects/{pid}/members",
                          json={"email": lab.user["email"], "role": "labeler"})
    (mine,) = (await lab.client.get("/api/v1/me/invitations")).json()["invitations"]
    assert (await owner.client.delete(f"/api/v1/projects/{pid}/members/{mgr.user['id']}")
            ).status_code == 204
    late = await lab.client.post(f"/api/v1/me/invitations/{mine['id']}/accept")
    assert late.status_code == 404 and "no longer valid" in late.json()["error"]["message"]
    assert (await lab.client.get(f"/api/v1/projects/{pid}")).status_code == 404
