"""Connections: the shared wire frame of a fan-out and uvicorn's direct write path."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from server.hub.connection import Connection, RateLimit, RecentIds, wire_frame
from server.settings import Settings
from tests.conftest import UserFactory, add_member, make_project
from tests.hub.conftest import LiveServer, serve, upload_images
from tests.hub.test_endpoint import BOX


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_wire_frame_is_one_text_frame_a_client_parses(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)  # non-ASCII: the length is in bytes
    client = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN)
    client.receive_data(wire_frame(text))
    events = client.events_received()
    assert len(events) == 1 and isinstance(events[0], Frame)
    assert events[0].opcode is Opcode.TEXT and events[0].fin
    assert events[0].data.decode() == text


def test_recent_ids_remember_the_last_ones_appended() -> None:
    ids = RecentIds(3)
    for value in ["a", "b", "c", "a", "d"]:  # "a" again: it is now the newest
        ids.append(value)
    assert len(ids) == 3
    assert ["a" in ids, "b" in ids, "c" in ids, "d" in ids] == [True, False, True, True]


def test_rate_limit_allows_bursts_then_the_rate() -> None:
    limit = RateLimit(rate=10.0, burst=3.0)
    now = limit.stamp
    assert [limit.allow(now) for _ in range(4)] == [True, True, True, False]
    assert limit.allow(now + 0.15) and not limit.allow(now + 0.15)  # 1.5 tokens: one message


def _connections(live: LiveServer, project_id: int) -> list[Connection]:
    return sorted(live.app.state.hub.rooms[project_id].connections, key=lambda c: c.user_id)


async def _watch_an_edit(live: LiveServer, users: UserFactory, compression: str | None,
                         plain: bool) -> None:
    """An edit reaches a watcher; both connections do (plain) or don't write raw frames."""
    owner, bob = await users("owner"), await users("bob")
    project = await make_project(owner)
    image = (await upload_images(owner, project, 1))[0]
    await add_member(owner, project, bob, role="labeler")
    editor = await live.connect(owner, compression=compression)
    watcher = await live.connect(bob, compression=compression)
    try:
        await editor.request("hello", project=project)
        await watcher.request("hello", project=project)
        lock = (await editor.request("open_image", image=image))["lock"]
        await watcher.request("subscribe", image=image)
        await watcher.event("snapshot", image=image)
        ack = await editor.request("op", image=image, token=lock["token"], client_op_id="c1", op=BOX)
        seen = await watcher.event("op", image=image)
        assert seen["seq"] == ack["seq"] and seen["op"]["object"]["geometry"] == {"x": 2, "y": 3, "w": 10, "h": 8}
        conns = _connections(live, project)
        assert len(conns) == 2
        for conn in conns:
            # If uvicorn renames what the direct path reads, this fails instead of silently
            # sending every frame through a writer task.
            assert conn.direct is not None and conn.direct._open_plain() is plain
    finally:
        await editor.close()
        await watcher.close()


async def test_uvicorn_connections_write_the_shared_frame_directly(server: LiveServer,
                                                                   users: UserFactory) -> None:
    await _watch_an_edit(server, users, compression=None, plain=True)


async def test_a_compressed_connection_gets_frames_through_the_protocol(settings: Settings,
                                                                       users: UserFactory) -> None:
    async with serve(settings, ws_per_message_deflate=True) as live:
        await _watch_an_edit(live, users, compression="deflate", plain=False)
