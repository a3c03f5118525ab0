"""Two real ``labelhub serve`` processes on one PostgreSQL database, driven through the SDK.

An edit on one process reaches a watcher on the other; a lock is exclusive across them;
``next_image`` never hands one image to two labelers, whichever process they are on.
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from client import LabelhubClient, LockedError, Opened, RestClient
from server.protocol import OpEvent
from tests._db import ROOT, PgTemplate, _in_thread, pg_base_url, with_database
from tests.client.conftest import png

pytestmark = pytest.mark.postgres
ADMIN = ("admin@example.com", "admin-password-1")
# Bounds on a hang, not speed checks: on a loaded machine 20 labelers asking two processes for
# an image at once wait their turn on the project's seq row for many seconds.
STARTUP_TIMEOUT = 60.0
TIMEOUT = 60.0


@dataclass
class Node:
    url: str
    process: subprocess.Popen[str]
    log: deque[str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _start(env: dict[str, str]) -> Node:
    port = _free_port()
    proc = subprocess.Popen(
        [_python(), "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "info"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        errors="replace")
    lines: queue.Queue[str | None] = queue.Queue()
    log: deque[str] = deque(maxlen=200)

    def pump() -> None:  # keeps the pipe drained for the process's whole life
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                log.append(line)
                lines.put(line)
        except (ValueError, OSError):
            pass  # the test closed the pipe while this thread was reading it: the end
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=STARTUP_TIMEOUT)
        if line is None:
            raise RuntimeError("labelhub serve exited:\n" + "".join(log))
        if "Uvicorn running on" in line:
            break
    url = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{url}/healthz", timeout=TIMEOUT).json() == {"ok": True}
    return Node(url, proc, log)


def _stop(node: Node) -> None:
    node.process.terminate()
    try:
        node.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        node.process.kill()
        node.process.wait()
    if node.process.stderr is not None:
        node.process.stderr.close()


@pytest.fixture(scope="module")
def nodes(pg_template: PgTemplate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    name = _in_thread(lambda: asyncio.run(pg_template.copy()))
    data: Path = tmp_path_factory.mktemp("shared-data")
    env = {**os.environ,
           "LABELHUB_DATABASE_URL": with_database(pg_base_url(), name),
           "LABELHUB_DATA_DIR": str(data),
           "LABELHUB_SECRET_KEY": "two-process-secret",
           "LABELHUB_ADMIN_EMAIL": ADMIN[0], "LABELHUB_ADMIN_PASSWORD": ADMIN[1],
           "LABELHUB_PASSWORD_TIME_COST": "1", "LABELHUB_PASSWORD_MEMORY_KIB": "1024"}
    started: list[Node] = []
    try:
        # One after the other: the first creates the site admin.
        for _ in range(2):
            started.append(_start(env))
        yield started
    finally:
        for node in started:
            _stop(node)
        _in_thread(lambda: asyncio.run(PgTemplate.drop(name)))


@dataclass
class Setup:
    project: int
    images: list[int]
    tokens: list[str]
    user_ids: list[int]
    hubs: list[LabelhubClient]

    async def hub(self, url: str, token: str) -> LabelhubClient:
        hub = LabelhubClient(url, self.project, token=token, timeout=TIMEOUT)
        self.hubs.append(hub)
        await hub.connect()
        return hub


async def _setup(node: Node, users: int, images: int, tag: str) -> Setup:
    async with RestClient(node.url) as admin:
        await admin.login(*ADMIN)
        project = (await admin.create_project(f"two processes {tag}"))["id"]
        items = await admin.upload_images(project, [(f"{tag}{i}.png", png(i)) for i in range(images)])
        tokens, ids = [], []
        for i in range(users):
            email = f"{tag}{i}@example.com"
            ids.append((await admin.create_user(email, "password-123", f"{tag}{i}"))["id"])
            await admin.add_member(project, email, "labeler")
            async with RestClient(node.url) as rest:
                await rest.login(email, "password-123")
                assert rest.token is not None
                tokens.append(rest.token)
    return Setup(project, sorted(i["id"] for i in items), tokens, ids, [])


async def _close(setup: Setup) -> None:
    for hub in setup.hubs:
        await hub.close()


async def test_an_edit_on_one_process_reaches_a_watcher_on_the_other(nodes: list[Node]) -> None:
    s = await _setup(nodes[0], users=2, images=2, tag="edit")
    try:
        editor = await s.hub(nodes[0].url, s.tokens[0])
        watcher = await s.hub(nodes[1].url, s.tokens[1])
        image = s.images[0]
        await editor.open_image(image)
        await watcher.subscribe(image)
        op = {"kind": "create", "object": {"id": "x1", "type": "bbox", "label": "car",
                                           "geometry": {"x": 1, "y": 1, "w": 9, "h": 9}}}
        applied = await editor.op(image, op)
        event = await watcher.next_event(OpEvent, within=TIMEOUT)
        assert isinstance(event, OpEvent)
        assert (event.seq, event.user, event.client_op_id) == (applied.seq, s.user_ids[0],
                                                               applied.client_op_id)
    finally:
        await _close(s)


async def test_a_lock_is_exclusive_across_processes(nodes: list[Node]) -> None:
    s = await _setup(nodes[0], users=2, images=6, tag="lock")
    try:
        a = await s.hub(nodes[0].url, s.tokens[0])
        b = await s.hub(nodes[1].url, s.tokens[1])
        for image in s.images:
            results = await asyncio.gather(a.open_image(image), b.open_image(image),
                                           return_exceptions=True)
            won = [r for r in results if isinstance(r, Opened)]
            lost = [r for r in results if isinstance(r, LockedError)]
            assert len(won) == 1 and len(lost) == 1, results
            winner = s.user_ids[0] if isinstance(results[0], Opened) else s.user_ids[1]
            assert lost[0].holder is not None and lost[0].holder.id == winner
    finally:
        await _close(s)


async def test_next_image_never_hands_one_image_to_two_labelers(nodes: list[Node]) -> None:
    s = await _setup(nodes[0], users=20, images=50, tag="next")
    try:
        hubs = [await s.hub(nodes[i % 2].url, token) for i, token in enumerate(s.tokens)]
        first = await asyncio.gather(*(h.next_image() for h in hubs))
        assert all(f is not None for f in first)
        second = await asyncio.gather(*(h.next_image(after=f.image, release=False)
                                        for h, f in zip(hubs, first, strict=True) if f))
        handed = [o.image for o in (*first, *second) if o is not None]
        assert len(handed) == 40
        assert len(set(handed)) == 40, sorted(handed)
    finally:
        await _close(s)
