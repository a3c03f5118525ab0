"""What each socket message does (server/hub/handlers.py), through a live server: hello,
presence, subscribing, locks, ops and their broadcast, duplicates, privileges checked per message,
progress events, and an op's undo."""

from __future__ import annotations

from tests.conftest import UserFactory, add_member
from tests.hub.conftest import LiveServer, Team
from tests.hub.test_endpoint import BOX


async def test_hello_ack_and_hello_first(server: LiveServer, team: Team) -> None:
    c = await server.connect(team.owner)
    err = await c.request("subscribe", image=team.images[0])
    assert err["type"] == "error" and err["code"] == "hello_first"
    ack = await c.request("hello", project=team.project_id)
    assert ack["type"] == "ack" and ack["user"]["id"] == team.owner.user["id"]
    assert "label" in ack["privileges"] and isinstance(ack["seq"], int)
    await c.close()


async def test_presence_is_about_images(server: LiveServer, team: Team, users: UserFactory) -> None:
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    watcher = await server.connect(bob)
    await watcher.request("hello", project=team.project_id)
    # A dashboard that comes and goes without opening an image tells nobody (no N^2 storm)...
    idle = await server.connect(team.owner)
    await idle.request("hello", project=team.project_id)
    await idle.close()
    # ...one that opens an image is announced, and so is its leaving.
    busy = await server.connect(team.owner)
    await busy.request("hello", project=team.project_id)
    await busy.request("open_image", image=team.images[2])
    await busy.close()
    seen = [await watcher.event("presence"), await watcher.event("presence")]
    assert [(e["image"] if "image" in e else None, e["online"]) for e in seen] == [
        (team.images[2], True), (None, False)]
    await watcher.close()


async def test_hello_lists_who_is_present(server: LiveServer, team: Team, users: UserFactory) -> None:
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    alice = await server.connect(team.owner)
    first = await alice.request("hello", project=team.project_id)
    assert first["present"] == []
    assert (await alice.request("open_image", image=team.images[0]))["type"] == "ack"
    watcher = await server.connect(bob)
    ack = await watcher.request("hello", project=team.project_id)
    assert ack["present"] == [{"user": {"id": team.owner.user["id"], "name": team.owner.user["name"]},
                               "image": team.images[0]}]
    # Opening another image tells the project at once, without waiting for a cursor move.
    assert (await alice.request("open_image", image=team.images[1]))["type"] == "ack"
    moved = await watcher.event("presence", image=team.images[1])
    assert moved["user"]["id"] == team.owner.user["id"] and moved["online"] is True
    await alice.close()
    await watcher.close()


async def test_lock_op_broadcast_and_exclusive_lock(server: LiveServer, team: Team, users: UserFactory) -> None:
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    image = team.images[0]
    alice = await server.connect(team.owner)
    watcher = await server.connect(bob)
    await alice.request("hello", project=team.project_id)
    await watcher.request("hello", project=team.project_id)
    opened = await alice.request("open_image", image=image)
    assert opened["type"] == "ack" and opened["lock"]["token"] >= 1
    snap = await alice.event("snapshot", image=image)
    assert snap["objects"] == []
    refused = await watcher.request("open_image", image=image)
    assert refused["type"] == "error" and refused["code"] == "locked"
    assert refused["holder"]["id"] == team.owner.user["id"]
    sub = await watcher.request("subscribe", image=image)
    assert sub["type"] == "ack"
    await watcher.event("snapshot", image=image)
    ack = await alice.request("op", image=image, token=opened["lock"]["token"], client_op_id="c1", op=BOX)
    assert ack["type"] == "ack" and ack["seq"] > sub["seq"]
    seen = await watcher.event("op", image=image)
    assert seen["seq"] == ack["seq"] and seen["op"]["object"]["id"] == "b1"
    assert seen["user"] == team.owner.user["id"] and seen["client_op_id"] == "c1"
    # The same client_op_id again: the original ack, nothing applied.
    again = await alice.request("op", image=image, token=opened["lock"]["token"], client_op_id="c1", op=BOX)
    assert again["seq"] == ack["seq"] and again["duplicate"] is True
    # A watcher without the lock cannot edit.
    denied = await watcher.request("op", image=image, token=opened["lock"]["token"], client_op_id="w1", op=BOX)
    assert denied["type"] == "error" and denied["code"] == "no_lock"
    await alice.close()
    await watcher.close()


async def test_stale_token_and_release(server: LiveServer, team: Team) -> None:
    image = team.images[1]
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    first = await c.request("open_image", image=image)
    assert (await c.request("release_image", image=image))["type"] == "ack"
    second = await c.request("open_image", image=image)
    assert second["lock"]["token"] > first["lock"]["token"]
    stale = await c.request("op", image=image, token=first["lock"]["token"], client_op_id="s1", op=BOX)
    assert stale["code"] == "stale_token"
    await c.close()


async def test_other_projects_images_are_not_found(server: LiveServer, team: Team, users: UserFactory) -> None:
    from tests.conftest import make_project
    from tests.hub.conftest import upload_images

    other = await make_project(team.owner, "Other")
    foreign = (await upload_images(team.owner, other, 1))[0]
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    assert (await c.request("open_image", image=foreign))["code"] == "not_found"
    await c.close()


async def test_privileges_are_checked_per_message(server: LiveServer, team: Team, users: UserFactory) -> None:
    viewer = await users("viewer")
    await add_member(team.owner, team.project_id, viewer, role="viewer")
    c = await server.connect(viewer)
    await c.request("hello", project=team.project_id)
    assert (await c.request("open_image", image=team.images[0]))["code"] == "forbidden"
    assert (await c.request("subscribe", image=team.images[0]))["type"] == "ack"
    stranger = await users("stranger")
    s = await server.connect(stranger)
    assert (await s.request("hello", project=team.project_id))["code"] == "not_found"
    await c.close()
    await s.close()


async def test_hello_does_not_tell_a_non_member_which_projects_exist(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    """As REST's 404: "no such project" and "not yours" get one answer."""
    stranger = await users("stranger")
    answers = []
    for project in (team.project_id, team.project_id + 1000):
        s = await server.connect(stranger)
        err = await s.request("hello", id="h", project=project)
        answers.append((err["type"], err["code"], err["message"].replace(str(project), "N")))
        await s.close()
    assert answers[0] == answers[1] == ("error", "not_found", "no project N")


async def test_demoted_labeler_gets_privileges_event_and_loses_the_lock(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    lab = await users("lab")
    await add_member(team.owner, team.project_id, lab, role="labeler")
    c = await server.connect(lab)
    await c.request("hello", project=team.project_id)
    opened = await c.request("open_image", image=team.images[0])
    resp = await team.owner.client.patch(
        f"/api/v1/projects/{team.project_id}/members/{lab.user['id']}", json={"role": "viewer"})
    assert resp.status_code == 200
    released = await c.event("lock", image=team.images[0], state="released")
    assert released["seq"] > 0
    event = await c.event("privileges")
    assert event["privileges"] == ["view"]
    denied = await c.request("op", image=team.images[0], token=opened["lock"]["token"],
                             client_op_id="d1", op=BOX)
    assert denied["code"] == "forbidden"
    await c.close()


async def test_progress_follows_edits(server: LiveServer, team: Team) -> None:
    image = team.images[0]
    editor = await server.connect(team.owner)
    dashboard = await server.connect(team.owner)
    await dashboard.request("hello", project=team.project_id)
    await editor.request("hello", project=team.project_id)
    lock = (await editor.request("open_image", image=image))["lock"]
    first = await dashboard.event("progress")
    assert (first["total"], first["labeled"], first["in_progress"]) == (4, 0, 1)
    await editor.request("op", image=image, token=lock["token"], client_op_id="c1", op=BOX)
    labeled = await dashboard.event("progress")
    assert (labeled["labeled"], labeled["in_progress"]) == (1, 0)
    # A move changes no count, yet a progress event follows it: the supervisor view reloads
    # per-user statistics on it.
    moved = await editor.request("op", image=image, token=lock["token"], client_op_id="m1",
                                 op={"kind": "move_box", "object_id": "b1", "x": 3, "y": 3, "w": 9, "h": 9})
    after_move = await dashboard.event("progress")
    assert after_move["seq"] >= moved["seq"] and after_move["labeled"] == 1
    deleted = await editor.request("op", image=image, token=lock["token"], client_op_id="d1",
                                   op={"kind": "delete", "object_id": "b1"})
    after = await dashboard.event("progress")
    assert after["seq"] >= deleted["seq"] and (after["labeled"], after["in_progress"]) == (0, 1)
    await editor.close()
    await dashboard.close()


async def test_one_op_deleting_creating_and_updating_objects_and_its_undo(server: LiveServer, team: Team) -> None:
    """On PostgreSQL an edit's writes are one statement (server/_pg_writes.py): a batch that
    deletes, creates and updates in one op, then its undo, leave what SQLite leaves."""
    image = team.images[1]
    editor = await server.connect(team.owner)
    await editor.request("hello", project=team.project_id)
    token = (await editor.request("open_image", image=image))["lock"]["token"]
    assert (await editor.event("snapshot", image=image))["objects"] == []
    box = {"type": "bbox", "label": "car", "geometry": {"x": 1, "y": 1, "w": 5, "h": 5}}
    for n, oid in enumerate(["a", "b"]):
        ack = await editor.request("op", image=image, token=token, client_op_id=f"s{n}",
                                   op={"kind": "create", "object": {"id": oid, **box}})
        assert ack["type"] == "ack", ack
    batch = {"kind": "batch", "ops": [
        {"kind": "delete", "object_id": "a"},
        {"kind": "move_box", "object_id": "b", "x": 7, "y": 8, "w": 9, "h": 10},
        {"kind": "set_rpy", "object_id": "b", "rpy": {"roll": 0, "pitch": 5, "yaw": 90}},
        {"kind": "create", "object": {"id": "c", "type": "point", "label": "dog",
                                      "geometry": {"x": 3, "y": 4}, "attributes": {"k": "v"}}}]}
    ack = await editor.request("op", image=image, token=token, client_op_id="batch", op=batch)
    assert ack["type"] == "ack", ack

    async def state() -> tuple[dict[str, dict[str, object]], int]:
        await editor.request("subscribe", image=image)
        snap = await editor.event("snapshot", image=image)
        images = (await team.owner.client.get(f"/api/v1/projects/{team.project_id}/images")).json()
        count = next(i["object_count"] for i in images["images"] if i["id"] == image)
        return {o["id"]: o for o in snap["objects"]}, count

    objects, count = await state()
    assert set(objects) == {"b", "c"} and count == 2
    assert objects["b"]["geometry"] == {"x": 7, "y": 8, "w": 9, "h": 10}
    assert objects["b"]["rpy"] == {"roll": 0, "pitch": 5, "yaw": 90}
    assert objects["c"]["rpy"] is None and objects["c"]["attributes"] == {"k": "v"}
    log = (await team.owner.client.get(f"/api/v1/projects/{team.project_id}/ops",
                                       params={"image": image})).json()
    row = next(r for r in log["ops"] if r["seq"] == ack["seq"])
    assert row["kind"] == "batch" and row["client_op_id"] == "batch"

    undone = await editor.request("undo", image=image, token=token)
    assert undone["type"] == "ack", undone
    objects, count = await state()
    assert set(objects) == {"a", "b"} and count == 2
    assert objects["b"]["geometry"] == {"x": 1, "y": 1, "w": 5, "h": 5} and objects["b"]["rpy"] is None

    # An op that reads every object of the image (no ids named) rasterizes both boxes.
    ack = await editor.request("op", image=image, token=token, client_op_id="all",
                               op={"kind": "rasterize_all"})
    assert ack["type"] == "ack", ack
    objects, count = await state()
    assert count == 2 and {o["type"] for o in objects.values()} == {"bitmap"}
    await editor.close()
