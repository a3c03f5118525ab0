"""A real server for SDK tests: uvicorn in the test's event loop on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette

from client import LabelhubClient, RestClient
from server.app import create_app
from server.cli import MAX_FRAME
from server.hub.connection import Connection
from server.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

# The SDK's request timeout in these tests: a bound on a hang, not a speed check (a loaded
# machine can take many seconds over a burst of concurrent requests).
TIMEOUT = 60.0


def png(seed: int) -> bytes:
    img = np.full((48, 64, 3), 20 + seed * 11 % 200, np.uint8)
    cv2.circle(img, (10 + seed % 40, 20), 6, (255, 255, 255), -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


@dataclass
class Live:
    app: Starlette
    url: str
    clients: list[LabelhubClient] = field(default_factory=list)
    rests: list[RestClient] = field(default_factory=list)

    async def rest(self, email: str, password: str) -> RestClient:
        rest = RestClient(self.url)
        self.rests.append(rest)
        await rest.login(email, password)
        return rest

    async def client(self, token: str, project: int, **kwargs: object) -> LabelhubClient:
        hub = LabelhubClient(self.url, project, token=token, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
        self.clients.append(hub)
        await hub.connect()
        return hub

    def server_side(self, project: int, user_id: int) -> list[Connection]:
        """The server's live connections of one user (to drop them as a slow client would be)."""
        room = self.app.state.hub.rooms.get(project)
        return [c for c in (room.connections if room else ()) if c.user_id == user_id]

    def drop(self, project: int, user_id: int) -> None:
        """Close a user's sockets from the server side, the way backpressure does (4008)."""
        conns = self.server_side(project, user_id)
        assert conns, "no server connection to drop"
        for conn in conns:
            conn.drop("dropped by the test")


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Live]:
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio",
                            ws_max_size=MAX_FRAME, ws_per_message_deflate=False)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    # startup() returns once the lifespan ran and the socket listens: no polling for "started".
    await server.startup(sockets=[sock])
    main = asyncio.create_task(server.main_loop())
    live = Live(app, f"http://127.0.0.1:{port}")
    try:
        yield live
    finally:
        for hub in live.clients:
            await hub.close()
        for rest in live.rests:
            await rest.aclose()
        server.should_exit = True
        await main
        await server.shutdown(sockets=[sock])
        sock.close()


@dataclass
class Team:
    live: Live
    admin: RestClient
    project: int
    images: list[int]
    _n: int = 0

    async def member(self, name: str, role: str = "labeler") -> tuple[str, int]:
        """A new project member: (token, user id)."""
        self._n += 1
        email = f"{name}{self._n}@example.com"
        await self.admin.create_user(email, "password-123", name)
        await self.admin.add_member(self.project, email, role)
        rest = await self.live.rest(email, "password-123")
        assert rest.token is not None
        return rest.token, int((await rest.me())["id"])

    async def hub(self, token: str, **kwargs: object) -> LabelhubClient:
        return await self.live.client(token, self.project, **kwargs)


@pytest.fixture
async def team(live: Live) -> Team:
    admin = await live.rest(ADMIN_EMAIL, ADMIN_PASSWORD)
    project = (await admin.create_project("SDK"))["id"]
    items = await admin.upload_images(project, [(f"i{n}.png", png(n)) for n in range(6)])
    return Team(live, admin, project, sorted(i["id"] for i in items))
