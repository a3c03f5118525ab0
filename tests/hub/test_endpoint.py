"""The socket endpoint end to end (server/hub/endpoint.py): the handshake, frames refused before
any handler (bad JSON, too large, too deep, bad text) with the socket kept, a big op in one
frame, closing, and tokens kept out of the logs. What each message does: test_handlers.py."""

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
