"""Revocation reaches open sockets at once (server/hub/revocation.py, server/revocations.py).

Each kind — logout, password change, API-token revocation, deactivation, removal from the
project, a privilege change, losing site-admin rights, project deletion — closes or downgrades
every open socket it concerns, idle ones included, and no event of the project reaches a socket
that may no longer see it. The last tests run two real ``labelhub serve`` processes. An edit or
a request in flight when a revocation commits: test_revocation_in_flight.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from client import AuthenticationError, ForbiddenError, LabelhubClient, RestClient
from server.hub import revocation
from tests.conftest import Api, UserFactory, add_member, login
from tests.hub._ws import TIMEOUT, WsClient
from tests.hub.conftest import LiveServer, Team
from tests.hub.test_multiprocess import ADMIN, Node, nodes  # noqa: F401  (a fixture)

BOX = {"kind": "create", "object": {"id": "b1", "type": "bbox", "label": "car",
                                    "geometry": {"x": 2, "y": 3, "w": 10, "h": 8}}}


async def closed(c: WsClient) -> tuple[int | None, str]:
    """Wait for the server to close ``c``; its close code and reason."""
    await asyncio.wait_for(c.closed.wait(), TIMEOUT)
    return c.close_code, c.ws.close_reason or ""


async def joined(server: LiveServer, api: Api, project: int, **hello: Any) -> WsClient:
    c = await server.connect(api)
    ack = await c.request("hello", project=project, **hello)
    assert ack["type"] == "ack", ack
    return c


async def both(c: WsClient, first: dict[str, Any], second: dict[str, Any]) -> list[dict[str, Any]]:
    """The next events matching ``first`` and ``second`` (field subsets), in either order
    (they come from two paths: the op log and the revocation notice)."""
    wanted, found = [first, second], [dict[str, Any](), dict[str, Any]()]
    while not (found[0] and found[1]):
        event = await c.event()
        for i, want in enumerate(wanted):
            if not found[i] and all(event.get(k) == v for k, v in want.items()):
                found[i] = event
                break
    return found


async def api_token(api: Api) -> tuple[int, str]:
    resp = await api.client.post("/api/v1/me/tokens", json={"name": "script"})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"]), str(resp.json()["token"])


async def test_removal_closes_the_members_sockets_and_hides_their_cursor(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    image = team.images[0]
    watcher = await joined(server, team.owner, team.project_id, images=[image])
    member = await joined(server, lab, team.project_id)
    assert (await member.request("open_image", image=image))["type"] == "ack"
    await member.request("cursor", image=image, x=3, y=4)
    shown = await watcher.event("presence", online=True)
    assert shown["user"]["id"] == lab.user["id"]

    resp = await team.owner.client.delete(
        f"/api/v1/projects/{team.project_id}/members/{lab.user['id']}")
    assert resp.status_code == 204
    assert await closed(member) == (4403, "you are no longer a member of this project")
    # Their lock went with the membership, and their cursor is gone from everyone's screen.
    lock, presence = await both(watcher, {"type": "lock", "state": "released"},
                                {"type": "presence", "online": False})
    assert lock["image"] == image and presence["user"]["id"] == lab.user["id"]
    await watcher.close()


async def test_a_removed_member_hears_nothing_more_of_the_project(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="viewer")
    image = team.images[1]
    member = await joined(server, lab, team.project_id, images=[image])
    editor = await joined(server, team.owner, team.project_id)
    lock = (await editor.request("open_image", image=image))["lock"]
    await team.owner.client.delete(f"/api/v1/projects/{team.project_id}/members/{lab.user['id']}")
    assert (await closed(member))[0] == 4403
    after = await editor.request("op", image=image, token=lock["token"], client_op_id="c1", op=BOX)
    assert after["type"] == "ack"
    received = []
    while not member.events.empty():
        received.append(member.events.get_nowait())
    assert [e for e in received if e.get("seq", 0) >= after["seq"]] == []
    await editor.close()


async def test_a_privilege_change_downgrades_without_closing(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    image = team.images[2]
    member = await joined(server, lab, team.project_id)
    opened = await member.request("open_image", image=image)
    resp = await team.owner.client.patch(
        f"/api/v1/projects/{team.project_id}/members/{lab.user['id']}",
        json={"privileges": ["view", "review"]})
    assert resp.status_code == 200
    privileges, _ = await both(member, {"type": "privileges"},
                               {"type": "lock", "image": image, "state": "released"})
    assert privileges["privileges"] == ["view", "review"]
    denied = await member.request("op", image=image, token=opened["lock"]["token"],
                                  client_op_id="d1", op=BOX)
    assert denied["code"] == "forbidden"
    # Still a member: still open, still told about the project.
    editor = await joined(server, team.owner, team.project_id)
    await editor.request("open_image", image=image)
    granted = await member.event("lock", image=image, state="granted")
    assert granted["holder"]["id"] == team.owner.user["id"] and not member.closed.is_set()
    await editor.close()
    await member.close()


@pytest.mark.parametrize("hello", [True, False], ids=["joined", "before-hello"])
async def test_logout_closes_every_socket_of_its_login_sessions(
        server: LiveServer, team: Team, users: UserFactory, hello: bool) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    same_user = await login(server.app, lab.user["email"], "password-123")
    _, token = await api_token(lab)
    sock = await (joined(server, lab, team.project_id) if hello else server.connect(lab))
    other = await joined(server, same_user, team.project_id)  # another tab, same user
    scripted = await WsClient.open(server.ws_url, token)  # an API token outlives a logout
    await scripted.request("hello", project=team.project_id)

    assert (await lab.client.post("/api/v1/auth/logout")).status_code == 200
    assert await closed(sock) == (4401, "session revoked")
    assert await closed(other) == (4401, "session revoked")
    assert (await scripted.request("subscribe", image=team.images[0]))["type"] == "ack"
    await scripted.close()
    await same_user.client.aclose()


async def test_a_password_change_closes_the_old_sessions_sockets(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    sock = await joined(server, lab, team.project_id)
    wrong = await lab.client.post("/api/v1/auth/password",
                                  json={"current": "not-it", "new": "new-password-1"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    too_short = await lab.client.post("/api/v1/auth/password",
                                      json={"current": "password-123", "new": "short"})
    assert too_short.status_code == 422
    assert (await sock.request("subscribe", image=team.images[0]))["type"] == "ack"  # untouched

    resp = await lab.client.post("/api/v1/auth/password",
                                 json={"current": "password-123", "new": "new-password-1"})
    assert resp.status_code == 200, resp.text
    assert await closed(sock) == (4401, "session revoked")
    fresh = await WsClient.open(server.ws_url, resp.json()["token"])
    assert (await fresh.request("hello", project=team.project_id))["type"] == "ack"
    await fresh.close()
    again = await login(server.app, lab.user["email"], "new-password-1")
    await again.client.aclose()


async def test_revoking_an_api_token_closes_the_sockets_opened_with_it(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    token_id, token = await api_token(lab)
    _, kept_token = await api_token(lab)
    revoked = await WsClient.open(server.ws_url, token)
    await revoked.request("hello", project=team.project_id)
    kept = await WsClient.open(server.ws_url, kept_token)
    await kept.request("hello", project=team.project_id)
    browser = await joined(server, lab, team.project_id)

    assert (await lab.client.delete(f"/api/v1/me/tokens/{token_id}")).status_code == 204
    assert await closed(revoked) == (4401, "session revoked")
    for still in (kept, browser):
        assert (await still.request("subscribe", image=team.images[0]))["type"] == "ack"
        await still.close()


async def test_deactivation_closes_an_idle_socket(
        server: LiveServer, team: Team, users: UserFactory, admin: Api) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    sock = await joined(server, lab, team.project_id)
    resp = await admin.client.patch(f"/api/v1/users/{lab.user['id']}", json={"is_active": False})
    assert resp.status_code == 200
    assert await closed(sock) == (4403, "account no longer active")


async def test_a_former_site_admin_loses_projects_they_are_no_member_of(
        server: LiveServer, team: Team, users: UserFactory, admin: Api) -> None:
    boss = await users("boss")
    assert (await admin.client.patch(f"/api/v1/users/{boss.user['id']}",
                                     json={"is_admin": True})).status_code == 200
    sock = await joined(server, boss, team.project_id)  # no membership: admin rights only
    resp = await admin.client.patch(f"/api/v1/users/{boss.user['id']}", json={"is_admin": False})
    assert resp.status_code == 200
    assert await closed(sock) == (4403, "you are no longer a member of this project")


async def test_deleting_a_project_closes_its_sockets(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    sock = await joined(server, lab, team.project_id)
    assert (await team.owner.client.delete(f"/api/v1/projects/{team.project_id}")).status_code == 204
    assert await closed(sock) == (4403, "you are no longer a member of this project")


async def test_a_socket_closes_when_its_login_token_expires(
        server: LiveServer, team: Team, users: UserFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = int(time.time())  # itsdangerous stamps whole seconds
    lab = await users("lab")
    after = time.time()
    await add_member(team.owner, team.project_id, lab, role="labeler")
    signer = server.app.state.signer
    read = signer.read(lab.token)
    assert read is not None and before + signer.ttl_seconds <= read[2] <= after + signer.ttl_seconds
    _, api = await api_token(lab)
    # The clock is not waited for: every login token is taken to be at its end now.
    monkeypatch.setattr(revocation, "seconds_left",
                        lambda c: None if c is None or c.expires_at is None else 0.0)
    expiring = await server.connect(lab)
    assert await closed(expiring) == (4401, "session expired")
    scripted = await WsClient.open(server.ws_url, api)  # API tokens have no TTL
    assert (await scripted.request("hello", project=team.project_id))["type"] == "ack"
    await scripted.close()


# --- across processes (PostgreSQL) -----------------------------------------------------------

async def _drain(hub: LabelhubClient) -> None:
    async for _event in hub.events():
        pass


async def _member(node: Node, project: int, email: str) -> tuple[RestClient, int]:
    async with RestClient(node.url) as admin:
        await admin.login(*ADMIN)
        user_id = int((await admin.create_user(email, "password-123", email))["id"])
        await admin.add_member(project, email, "labeler")
    rest = RestClient(node.url)
    await rest.login(email, "password-123")
    return rest, user_id


async def _project(node: Node, tag: str) -> int:
    async with RestClient(node.url) as admin:
        await admin.login(*ADMIN)
        return int((await admin.create_project(f"revocation {tag}"))["id"])


async def _closed_across_processes(pair: list[Node], tag: str,
                                   revoke: Callable[[RestClient, int, int], Awaitable[None]],
                                   error: type[Exception], match: str) -> None:
    """A member's socket on the second process ends when ``revoke`` runs on the first, and the
    client then reports ``error``."""
    project = await _project(pair[0], tag)
    rest, user_id = await _member(pair[0], project, f"{tag}@example.com")
    assert rest.token is not None
    hub = LabelhubClient(pair[1].url, project, token=rest.token, timeout=TIMEOUT)
    try:
        await hub.connect()
        await revoke(rest, project, user_id)
        await asyncio.wait_for(_drain(hub), TIMEOUT)  # ends: the server closed it
        with pytest.raises(error, match=match):
            await hub.subscribe(1)
    finally:
        await hub.close()
        await rest.aclose()


@pytest.mark.postgres
async def test_logout_on_one_process_closes_the_socket_on_the_other(
        nodes: list[Node]) -> None:  # noqa: F811
    async def logout(rest: RestClient, _project: int, _user_id: int) -> None:
        await rest.logout()

    await _closed_across_processes(nodes, "leaver", logout, AuthenticationError, "session revoked")


@pytest.mark.postgres
async def test_removal_on_one_process_closes_the_socket_on_the_other(
        nodes: list[Node]) -> None:  # noqa: F811
    async def remove(_rest: RestClient, project: int, user_id: int) -> None:
        async with RestClient(nodes[0].url) as admin:
            await admin.login(*ADMIN)
            await admin.request("DELETE", f"/api/v1/projects/{project}/members/{user_id}")

    await _closed_across_processes(nodes, "removed", remove, ForbiddenError, "no longer a member")
