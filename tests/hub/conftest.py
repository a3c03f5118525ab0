"""A real server for socket tests: uvicorn in the test's event loop, on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette

from server import _edit_lease
from server.app import create_app
from server.hub.connection import Connection
from server.protocol import MAX_FRAME_BYTES
from server.settings import Settings
from tests.conftest import Api, UserFactory, login, make_project
from tests.hub._fast_op import Labeler
from tests.hub._ws import WsClient

# The transport's hard cap, as `labelhub serve` sets it; the app refuses past 64 KiB (an op past
# 8 MiB) with an error.
FRAME_LIMIT = MAX_FRAME_BYTES


@dataclass
class LiveServer:
    app: Starlette
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    async def connect(self, api: Api, **kwargs: object) -> WsClient:
        return await WsClient.open(self.ws_url, api.token, **kwargs)


@asynccontextmanager
async def serve(settings: Settings, **config: Any) -> AsyncIterator[LiveServer]:
    """Serve a fresh app with uvicorn's sans-I/O websockets (as ``labelhub serve`` does)."""
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"ws_max_size": FRAME_LIMIT, "ws_per_message_deflate": False, **config}
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                        ws="websockets-sansio", **options))
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    while not srv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)  # uvicorn exposes no start event; poll its flag
    try:
        yield LiveServer(app, port)
    finally:
        srv.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with serve(settings) as live:
        yield live


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    img = np.full((size[1], size[0], 3), 30 + seed * 7 % 200, np.uint8)
    cv2.rectangle(img, (5, 5), (20 + seed % 20, 25), (0, 0, 255), -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


async def upload_images(api: Api, project_id: int, count: int) -> list[int]:
    files = [("files", (f"img{i:03d}.png", png(i), "image/png")) for i in range(count)]
    resp = await api.client.post(f"/api/v1/projects/{project_id}/images", files=files)
    assert resp.status_code == 201, resp.text
    return sorted(r["image"]["id"] for r in resp.json()["results"])


@dataclass
class Team:
    owner: Api
    project_id: int
    images: list[int]


@pytest.fixture
async def team(server: LiveServer, users: UserFactory) -> Team:
    owner = await users("owner")
    pid = await make_project(owner)
    images = await upload_images(owner, pid, 4)
    return Team(owner, pid, images)


__all__ = ["LiveServer", "Team", "login", "serve", "upload_images"]


@pytest.fixture
async def labeler(app: Starlette, admin: Api) -> AsyncIterator[Labeler]:
    project = await make_project(admin)
    image = (await upload_images(admin, project, 1))[0]
    conn = Connection(websocket=None, user_id=admin.user["id"], user_name="a", is_admin=True)
    lab = Labeler(app, conn, project, image)
    assert (await lab.send({"type": "hello", "project": project}))["type"] == "ack"
    lab.token = await lab.open()
    yield lab


@pytest.fixture
def one_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's edits are one burst however slow the machine: "last labeled" and the labeling
    session's activity are written by the first edit only
    (``server._edit_lease.TOUCH_RESOLUTION``, 1 s, widened to an hour: both read it there, see
    tests/server/test_edit_lease.py). An edit landing between another's read and its commit then
    changes the image only where the test means it to (an object, the op log), not also these
    times, which the held state's stamp covers: a second's pause there would make the commit
    report ``stale`` before it looks at the objects or the resend."""
    monkeypatch.setattr(_edit_lease, "TOUCH_RESOLUTION", 3600.0)
