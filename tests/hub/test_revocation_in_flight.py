"""An edit or a REST request in flight when a revocation commits does not commit: the edit's
transaction re-checks the credential before it commits (``Revoker.verify``,
server/hub/revocation.py), and so does a request's (server/_web.py). Sockets closing on a
revocation: test_revocation.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Api, UserFactory, add_member
from tests.hub.conftest import LiveServer, Team
from tests.hub.test_revocation import BOX, closed, joined


def hold_rechecks(server: LiveServer) -> asyncio.Event:
    """Hold this process's socket re-checks (``Revoker.recheck``) until the returned event is
    set: a revocation has committed, its sockets are still open."""
    revoker = server.app.state.revoker
    release, real = asyncio.Event(), revoker.recheck

    async def held(user_id: int) -> None:
        await release.wait()
        await real(user_id)

    revoker.recheck = held
    return release


async def logged_ops(team: Team, image: int) -> list[str | None]:
    resp = await team.owner.client.get(f"/api/v1/projects/{team.project_id}/ops",
                                       params={"image": image})
    assert resp.status_code == 200, resp.text
    return [o["client_op_id"] for o in resp.json()["ops"]]


async def test_an_edit_after_logout_is_refused_before_the_socket_is_closed(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    """The socket's close is still on its way (its re-check held): the edit's own transaction
    re-checks the credential before it commits."""
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    image = team.images[0]
    member = await joined(server, lab, team.project_id)
    opened = await member.request("open_image", image=image)
    release = hold_rechecks(server)
    assert (await lab.client.post("/api/v1/auth/logout")).status_code == 200
    late = await member.request("op", image=image, token=opened["lock"]["token"],
                                client_op_id="late", op=BOX)
    assert (late["type"], late["code"], late["message"]) == ("error", "unauthorized",
                                                             "session revoked")
    assert await closed(member) == (4401, "session revoked")
    release.set()
    assert "late" not in await logged_ops(team, image)


# PostgreSQL only: on SQLite the writer holds the database's write lock while it works, so a
# logout cannot commit in the middle of it (there is nothing to test there).
@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
async def test_an_edit_in_flight_at_logout_is_refused(
        server: LiveServer, team: Team, users: UserFactory, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    """The edit passed its checks and is being applied (the heavy step) when the logout
    commits: it does not commit. (PostgreSQL: on SQLite the edit holds the write lock while it
    applies, so the logout cannot commit before it.)"""
    from server.hub import _fast_op

    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    image = team.images[1]
    member = await joined(server, lab, team.project_id)
    opened = await member.request("open_image", image=image)
    applying, go_on = asyncio.Event(), asyncio.Event()
    real = _fast_op.apply_object_op

    async def slow_apply(*args: Any, **kwargs: Any) -> Any:
        applying.set()
        await go_on.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(_fast_op, "apply_object_op", slow_apply)
    release = hold_rechecks(server)
    sent = asyncio.create_task(member.request("op", image=image, token=opened["lock"]["token"],
                                              client_op_id="inflight", op=BOX))
    await applying.wait()
    assert (await lab.client.post("/api/v1/auth/logout")).status_code == 200
    go_on.set()
    answer = await sent
    assert (answer["type"], answer["code"]) == ("error", "unauthorized")
    assert await closed(member) == (4401, "session revoked")
    release.set()
    assert "inflight" not in await logged_ops(team, image)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
async def test_a_rest_request_in_flight_at_logout_rolls_back(
        users: UserFactory, admin: Api, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    """The request passed its checks and holds its transaction open when the logout commits:
    it answers 401 and writes nothing. (PostgreSQL: on SQLite the request's transaction holds
    the write lock, so the logout cannot commit before it.)"""
    from server import labels

    lab = await users("lab")
    project = (await lab.client.post("/api/v1/projects", json={"name": "Mine"})).json()["id"]
    reached, go_on = asyncio.Event(), asyncio.Event()
    real = labels.project_access

    async def held(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)
        reached.set()
        await go_on.wait()
        return found

    monkeypatch.setattr(labels, "project_access", held)
    request = asyncio.create_task(
        lab.client.post(f"/api/v1/projects/{project}/labels", json={"name": "late"}))
    await reached.wait()
    monkeypatch.setattr(labels, "project_access", real)
    assert (await lab.client.post("/api/v1/auth/logout")).status_code == 200
    go_on.set()
    answer = await request
    assert answer.status_code == 401 and answer.json()["error"]["message"] == "session revoked"
    names = [x["name"] for x in
             (await admin.client.get(f"/api/v1/projects/{project}/labels")).json()["labels"]]
    assert "late" not in names
