from __future__ import annotations

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from server.db import transaction
from server.models import LabelObjectRow
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.server._rows import make_images


async def test_create_list_get_patch_delete(admin: Api, users: UserFactory) -> None:
    alice = await users("alice")
    pid = await make_project(alice, "Cats")
    listed = (await alice.client.get("/api/v1/projects")).json()["projects"]
    assert [(p["id"], p["name"], p["role"]) for p in listed] == [(pid, "Cats", "owner")]
    # Only my projects are listed.
    bob = await users("bob")
    assert (await bob.client.get("/api/v1/projects")).json()["projects"] == []
    assert (await bob.client.get(f"/api/v1/projects/{pid}")).status_code == 404
    resp = await alice.client.patch(f"/api/v1/projects/{pid}", json={"name": "Cats 2"})
    assert resp.status_code == 200 and resp.json()["name"] == "Cats 2"
    assert (await alice.client.patch(f"/api/v1/projects/{pid}", json={"name": ""})).status_code == 422
    assert (await alice.client.delete(f"/api/v1/projects/{pid}")).status_code == 204
    assert (await alice.client.get(f"/api/v1/projects/{pid}")).status_code == 404


async def test_members_presets_flags_and_removal(users: UserFactory) -> None:
    owner, lab = await users("owner"), await users("lab")
    pid = await make_project(owner)
    await add_member(owner, pid, lab, role="labeler")
    members = (await owner.client.get(f"/api/v1/projects/{pid}/members")).json()["members"]
    assert {m["email"]: m["role"] for m in members} == {owner.user["email"]: "owner", lab.user["email"]: "labeler"}
    url = f"/api/v1/projects/{pid}/members/{lab.user['id']}"
    resp = await owner.client.patch(url, json={"privileges": ["view", "upload"]})
    assert resp.json()["privileges"] == ["view", "upload"] and resp.json()["role"] == "custom"
    resp = await owner.client.patch(url, json={"role": "viewer"})
    assert resp.json()["role"] == "viewer"
    bad = await owner.client.patch(url, json={"privileges": ["fly"]})
    assert bad.status_code == 422
    assert (await owner.client.post(f"/api/v1/projects/{pid}/members",
                                    json={"email": lab.user["email"], "role": "viewer"})).status_code == 409
    assert (await owner.client.post(f"/api/v1/projects/{pid}/members",
                                    json={"email": "ghost@example.com", "role": "viewer"})).status_code == 202
    assert (await owner.client.delete(url)).status_code == 204
    assert (await lab.client.get(f"/api/v1/projects/{pid}")).status_code == 404


async def test_manage_members_privilege(users: UserFactory) -> None:
    owner, mgr, other = await users("owner"), await users("mgr"), await users("other")
    pid = await make_project(owner)
    await add_member(owner, pid, mgr, privileges=["view"])
    body = {"email": other.user["email"], "role": "viewer"}
    denied = await mgr.client.post(f"/api/v1/projects/{pid}/members", json=body)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    await owner.client.patch(f"/api/v1/projects/{pid}/members/{mgr.user['id']}",
                             json={"privileges": ["view", "manage_members"]})
    assert (await mgr.client.post(f"/api/v1/projects/{pid}/members", json=body)).status_code == 202


async def test_last_owner_cannot_be_removed_or_demoted(users: UserFactory) -> None:
    owner, second = await users("owner"), await users("second")
    pid = await make_project(owner)
    url = f"/api/v1/projects/{pid}/members/{owner.user['id']}"
    assert (await owner.client.delete(url)).json()["error"]["code"] == "last_owner"
    assert (await owner.client.patch(url, json={"role": "manager"})).status_code == 409
    await add_member(owner, pid, second, role="owner")
    assert (await owner.client.patch(url, json={"role": "manager"})).status_code == 200


async def test_a_manager_cannot_take_over_a_project(users: UserFactory) -> None:
    """F8: a manager once made themselves owner, demoted and removed the owner, then deleted
    the project. Only owners grant or take away the owner role."""
    owner, mgr, other = await users("owner"), await users("mgr"), await users("other")
    pid = await make_project(owner)
    await add_member(owner, pid, mgr, role="manager")
    members = f"/api/v1/projects/{pid}/members"
    mine, theirs = f"{members}/{mgr.user['id']}", f"{members}/{owner.user['id']}"

    def refused(resp: httpx.Response) -> bool:
        return resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"

    assert refused(await mgr.client.patch(mine, json={"role": "owner"}))  # promote myself
    assert refused(await mgr.client.post(members, json={"email": other.user["email"],
                                                        "role": "owner"}))  # a new owner
    assert refused(await mgr.client.patch(theirs, json={"role": "viewer"}))  # demote the owner
    assert refused(await mgr.client.patch(theirs, json={"privileges": ["view"]}))
    assert refused(await mgr.client.delete(theirs))  # remove the owner
    assert (await mgr.client.delete(f"/api/v1/projects/{pid}")).status_code == 403
    roles = {m["email"]: m["role"] for m in
             (await owner.client.get(members)).json()["members"]}
    assert roles == {owner.user["email"]: "owner", mgr.user["email"]: "manager"}
    # Managing everyone else still works.
    assert (await mgr.client.post(members, json={"email": other.user["email"],
                                                 "role": "labeler"})).status_code == 202
    # An owner grants the role; then the manager-turned-owner may unseat the first owner.
    assert (await owner.client.patch(mine, json={"role": "owner"})).status_code == 200
    assert (await mgr.client.patch(theirs, json={"role": "manager"})).status_code == 200


async def test_the_last_owner_stays_even_for_a_site_admin(admin: Api, users: UserFactory) -> None:
    owner = await users("owner")
    pid = await make_project(owner)
    url = f"/api/v1/projects/{pid}/members/{owner.user['id']}"
    assert (await admin.client.delete(url)).json()["error"]["code"] == "last_owner"
    assert (await admin.client.patch(url, json={"privileges": ["view"]})).status_code == 409
    assert (await owner.client.patch(url, json={"role": "manager"})).status_code == 409


async def test_view_privilege_gates_the_project(users: UserFactory) -> None:
    owner, member = await users("owner"), await users("member")
    pid = await make_project(owner)
    await add_member(owner, pid, member, privileges=["upload"])  # view is implied by any flag
    assert (await member.client.get(f"/api/v1/projects/{pid}")).status_code == 200
    await owner.client.delete(f"/api/v1/projects/{pid}/members/{member.user['id']}")
    assert (await member.client.get(f"/api/v1/projects/{pid}")).status_code == 404


async def test_out_of_range_ids_are_404_not_500(admin: Api) -> None:
    for path in ("/api/v1/projects/99999999999", "/api/v1/projects/-1", "/api/v1/projects/abc",
                 "/api/v1/projects/99999999999/members"):
        resp = await admin.client.get(path)
        assert resp.status_code == 404, path


async def test_only_member_managers_see_members_emails(users: UserFactory) -> None:
    owner, lab = await users("owner"), await users("lab")
    pid = await make_project(owner)
    await add_member(owner, pid, lab, role="labeler")
    url = f"/api/v1/projects/{pid}/members"
    seen_by_lab = (await lab.client.get(url)).json()["members"]
    assert {m["name"]: m["email"] for m in seen_by_lab} == {"owner": None, "lab": None}
    seen_by_owner = (await owner.client.get(url)).json()["members"]
    assert {m["name"]: m["email"] for m in seen_by_owner} == {
        "owner": owner.user["email"], "lab": lab.user["email"]}


async def test_deleting_a_project_deletes_its_objects(app: Starlette, admin: Api) -> None:
    """objects has no project key since migration 0017: the image's key cascades instead."""
    pid, other = await make_project(admin, "gone"), await make_project(admin, "kept")
    gone, kept = (await make_images(app, pid, ["a.png"]))[0], (await make_images(app, other, ["b.png"]))[0]
    async with transaction(app.state.sessions) as session:
        for image, project in ((gone, pid), (kept, other)):
            session.add(LabelObjectRow(image_id=image, id="o1", project_id=project, type="bbox",
                                       label="car", geometry={}, keypoints=[], attributes={},
                                       created_by=admin.user["id"]))
    assert (await admin.client.delete(f"/api/v1/projects/{pid}")).status_code == 204
    async with transaction(app.state.sessions) as session:
        left = (await session.execute(select(LabelObjectRow.image_id))).scalars().all()
    assert left == [kept]
