"""The socket endpoint end to end: handshake, hello, locks, ops, broadcast, bad input."""

from __future__ import annotations

import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.protocol import MAX_OP_BYTES
from tests.conftest import Api, UserFactory, add_member
from tests.hub.conftest import LiveServer, Team

BOX = {"kind": "create", "object": {"id": "b1", "type": "bbox", "label": "car",
                                    "geometry": {"x": 2, "y": 3, "w": 10, "h": 8}}}


async def test_auth_at_handshake(server: LiveServer, team: Team) -> None:
    async with connect(server.ws_url + "?token=forged") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401
    with pytest.raises(InvalidStatus):
        async with connect(server.ws_url + f"?token={team.owner.token}",
                           origin="http://evil.example"):  # type: ignore[arg-type]
            pass


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


async def test_bad_input_gets_errors_and_keeps_the_socket(server: LiveServer, team: Team) -> None:
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    await c.send_raw("{not json")
    assert (await c.event("error"))["code"] == "bad_json"
    assert (await c.request("fly", image=1))["code"] == "invalid"
    assert (await c.request("subscribe", image="x"))["code"] == "invalid"
    assert (await c.request("subscribe"))["code"] == "invalid"
    await c.send_raw(json.dumps({"type": "subscribe", "id": "big", "pad": "x" * 70_000}))
    too_large = await c.event("error")  # only an op may pass 64 KiB; the error names the request
    assert (too_large["code"], too_large["id"]) == ("too_large", "big")
    assert (await c.request("subscribe", image=999_999))["code"] == "not_found"
    opened = await c.request("open_image", image=team.images[2])
    bad = await c.request("op", image=team.images[2], token=opened["lock"]["token"], client_op_id="x1",
                          op={"kind": "create", "object": {"id": "p", "type": "polygon", "geometry": {"parts": []}}})
    assert bad["code"] == "invalid_op" and "parts" in bad["message"]
    # Still open and working.
    assert (await c.request("heartbeat"))["type"] == "ack"
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


async def test_clean_close_releases_at_once_a_vanished_client_keeps_its_lease(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    clean, lost = team.images[2], team.images[3]
    other = await server.connect(bob)
    await other.request("hello", project=team.project_id)
    # A closing handshake: the lease goes at once.
    first = await server.connect(team.owner)
    await first.request("hello", project=team.project_id)
    assert (await first.request("open_image", image=clean))["type"] == "ack"
    await other.request("subscribe", image=clean)
    await first.close()
    await other.event("presence", online=False)  # it left its image (told before the release)
    released = await other.event("lock", image=clean, state="released")
    assert "holder" not in released
    assert (await other.request("open_image", image=clean))["type"] == "ack"
    # The network drops (no close frame): the lease stays until it expires, so a blip does not
    # hand the image to someone else; its holder gets it back on reconnecting.
    second = await server.connect(team.owner)
    await second.request("hello", project=team.project_id)
    held = await second.request("open_image", image=lost)
    assert held["type"] == "ack"
    second.ws.transport.abort()
    await second.closed.wait()
    # The server noticed (it tells the room the owner went offline); the lease is still held.
    gone = await other.event("presence", online=False)
    assert gone["user"]["id"] == team.owner.user["id"]
    refused = await other.request("open_image", image=lost)
    assert refused["type"] == "error" and refused["code"] == "locked"
    back = await server.connect(team.owner)
    await back.request("hello", project=team.project_id)
    again = await back.request("open_image", image=lost)
    assert again["type"] == "ack" and again["lock"]["token"] > held["lock"]["token"]
    await back.close()
    await other.close()



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


async def test_malformed_frames_get_an_error_with_their_id_and_keep_socket_and_lock(
        server: LiveServer, team: Team) -> None:
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    image = team.images[0]
    token = (await c.request("open_image", image=image))["lock"]["token"]
    frame = {"type": "op", "id": "surr", "image": image, "token": token, "client_op_id": "s1",
             "op": {**BOX, "object": {**BOX["object"], "attributes": {"note": "@"}}}}
    await c.send_raw(json.dumps(frame).replace('"@"', '"\\udc00"'))
    err = await c.event("error")
    assert (err["id"], err["code"]) == ("surr", "invalid_text")
    await c.send_raw('{"type": "heartbeat", "id": "\\udc00"}')
    assert (await c.event("error"))["code"] == "invalid_text"
    await c.send_raw('{"type": "heartbeat", "id": "deep", "x": ' + "[" * 5000 + "]" * 5000 + "}")
    err = await c.event("error")
    assert (err["id"], err["code"]) == ("deep", "too_deep")
    bad = await c.request("op", image=image, token=token, client_op_id="k1", op={"kind": {}})
    assert bad["code"] == "invalid" and "kind" in bad["message"]
    # The socket is open, the lock still mine, nothing was stored, the op log still reads.
    assert (await c.request("heartbeat"))["type"] == "ack"
    done = await c.request("op", image=image, token=token, client_op_id="ok", op=BOX)
    assert done["type"] == "ack"
    ops = await team.owner.client.get(f"/api/v1/projects/{team.project_id}/ops")
    assert ops.status_code == 200
    assert [o["op"]["object"]["id"] for o in ops.json()["ops"] if o["op"].get("kind") == "create"] == ["b1"]
    assert c.close_code is None
    await c.close()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_a_token_in_the_url_still_works_but_never_reaches_the_logs(server: LiveServer, team: Team) -> None:
    handler = _Lines()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn.access")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        c = await server.connect(team.owner)  # ?token=: what SDKs before the header sent
        assert (await c.request("hello", project=team.project_id))["type"] == "ack"
        await c.close()
        async with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {team.owner.token}"}) as ws:
            await ws.send(json.dumps({"type": "hello", "id": 1, "project": team.project_id}))
            assert json.loads(await ws.recv())["type"] == "ack"
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    ws_lines = [line for line in handler.lines if "/api/v1/ws" in line]
    assert len(ws_lines) == 2 and "token=[redacted]" in ws_lines[0]
    assert not [line for line in handler.lines if team.owner.token in line]


def _creates(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"kind": "create", "object": {"id": f"o{i}", "type": "bbox", "label": "car",
                                          "geometry": {"x": i % 60, "y": i // 60 % 40, "w": 2, "h": 2}}}
            for i in range(start, start + n)]


async def _objects(api: Api, project: int, image: int) -> tuple[int, list[dict[str, object]]]:
    resp = await api.client.get(f"/api/v1/projects/{project}/images/{image}/objects")
    assert resp.status_code == 200, resp.text
    return resp.json()["seq"], resp.json()["objects"]


async def test_a_big_batch_travels_in_one_message_or_not_at_all(server: LiveServer, team: Team) -> None:
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    image = team.images[1]
    token = (await c.request("open_image", image=image))["lock"]["token"]
    ops = _creates(2_000)
    assert len(json.dumps(ops)) > 3 * 64 * 1024  # well past the limit of other messages
    ack = await c.request("op", image=image, token=token, client_op_id="big",
                          op={"kind": "batch", "ops": ops})
    assert ack["type"] == "ack"
    seq, objects = await _objects(team.owner, team.project_id, image)
    assert seq == ack["seq"] and {o["id"] for o in objects} == {f"o{i}" for i in range(2_000)}
    # One invalid op among many: nothing applied, and the error names its index.
    bad = _creates(10, start=5_000)
    bad[7]["object"]["geometry"] = {"x": 1, "y": 1, "w": -3, "h": 2}  # type: ignore[index]
    refused = await c.request("op", image=image, token=token, client_op_id="bad",
                              op={"kind": "batch", "ops": bad})
    assert refused["code"] == "invalid_op" and "op.ops.7" in refused["message"]
    # Past the op limit: refused unparsed, with the request's id read from the frame's head.
    huge = _creates(1, start=9_000)
    huge[0]["object"]["attributes"] = {"note": "x" * MAX_OP_BYTES}  # type: ignore[index]
    await c.send_raw(json.dumps({"type": "op", "id": "huge", "image": image, "token": token,
                                 "client_op_id": "huge", "op": {"kind": "batch", "ops": huge}}))
    error = await c.event("error")
    assert (error["code"], error["id"]) == ("too_large", "huge") and str(MAX_OP_BYTES) in error["message"]
    # A big frame that is not JSON: the error carries the top-level id, not an object's.
    broken = json.dumps({"type": "op", "id": "torn", "image": image, "token": token,
                         "client_op_id": "torn", "op": {"kind": "batch", "ops": ops}})[:-2]
    await c.send_raw(broken)
    torn = await c.event("error")
    assert (torn["code"], torn["id"]) == ("bad_json", "torn")
    assert await _objects(team.owner, team.project_id, image) == (seq, objects)
    # The socket still works, and the first batch is not applied twice when resent.
    again = await c.request("op", image=image, token=token, client_op_id="big",
                            op={"kind": "batch", "ops": ops})
    assert (again["seq"], again["duplicate"]) == (ack["seq"], True)
    await c.close()
