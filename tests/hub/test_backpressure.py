"""A client that stops reading is dropped (4008) instead of slowing the hub; it resumes after."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.hub.connection import Connection
from server.settings import Settings
from tests.conftest import make_settings
from tests.hub.conftest import LiveServer, Team


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", ws_send_queue=16)


def big_polygon(oid: str, n: int = 2500) -> dict[str, object]:
    import math

    ring = [[round(32 + 20 * math.cos(2 * math.pi * i / n), 4), round(24 + 20 * math.sin(2 * math.pi * i / n), 4)]
            for i in range(n)]
    return {"kind": "create", "object": {"id": oid, "type": "polygon", "geometry": {
        "parts": [{"exterior": ring, "holes": []}]}}}


async def _unsubscribed_connection(server: LiveServer, project_id: int) -> Connection:
    room = server.app.state.hub.rooms[project_id]  # type: ignore[attr-defined]
    return next(c for c in room.connections if not c.subscriptions)


async def test_a_client_that_stops_reading_is_dropped_then_resumes(server: LiveServer, team: Team) -> None:
    image = team.images[0]
    editor = await server.connect(team.owner)
    await editor.request("hello", project=team.project_id)
    token = (await editor.request("open_image", image=image))["lock"]["token"]
    for i in range(6):  # a heavy image: each snapshot is a few hundred KB
        ack = await editor.request("op", image=image, token=token, client_op_id=f"big{i}", op=big_polygon(f"p{i}"))
        assert ack["type"] == "ack", ack
    # A raw client that asks for many snapshots and reads nothing.
    # A tiny receive buffer, so the server's socket fills after a few frames, not megabytes.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    slow = await connect(f"{server.ws_url}?token={team.owner.token}", compression=None,
                         max_queue=1, max_size=2**24, sock=sock)
    await slow.send(json.dumps({"type": "hello", "id": 0, "project": team.project_id}))
    while True:  # wait for the hello ack before the server registers the connection
        if json.loads(await slow.recv()).get("id") == 0:
            break
    conn = await _unsubscribed_connection(server, team.project_id)
    for i in range(120):
        await slow.send(json.dumps({"type": "subscribe", "id": i + 1, "image": image}))
    await asyncio.wait_for(conn.overflowed.wait(), 30)
    assert conn.dropped
    # The hub is not held up: the editor still edits and gets acks.
    ack = await editor.request("op", image=image, token=token, client_op_id="after",
                               op={"kind": "delete", "object_id": "p0"})
    assert ack["type"] == "ack"
    with pytest.raises(ConnectionClosed):
        while True:
            await slow.recv()
    assert slow.close_code == 4008 and "resume" in (slow.close_reason or "")
    back = await server.connect(team.owner)
    resumed = await back.request("hello", project=team.project_id, since=0, images=[image])
    assert resumed["type"] == "ack" and resumed["seq"] >= ack["seq"]
    await back.close()
    await editor.close()


def test_the_send_queue_is_bounded_and_overflow_marks_the_client() -> None:
    conn = Connection.with_queue(None, 1, "a", False, frames=3)  # type: ignore[arg-type]
    for i in range(3):
        conn.send(f"frame {i}")
    assert not conn.dropped
    conn.send("one too many")
    assert conn.dropped and conn.overflowed.is_set() and "resume" in conn.close_reason
    assert len(conn.backlog) == 3  # nothing more is queued once dropped
    conn.send("later")
    assert len(conn.backlog) == 3
