"""kill -9 in the middle of an upload, with a real ``labelhub serve`` process: after a restart
every acknowledged image is there with its file, and no orphan rows or files are left.

Deterministic, not timed: the test holds a SHARE lock on ``images`` (PostgreSQL), so the upload
can note its intents and write its files but can never insert its rows; the test kills the
server once the files are on disk, then releases the lock and restarts it. PostgreSQL only:
SQLite has no table lock that lets the first transaction through and stops the second (its
crash recovery is tested in process, tests/server/test_upload_save.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from server.storage import LocalStore, original_key, thumb_key
from tests._db import ROOT
from tests.server._images import files, png

pytestmark = pytest.mark.postgres
ADMIN = ("admin@example.com", "admin-password-1")
TIMEOUT = 60.0  # bounds on a hang, not speed checks


@dataclass
class Node:
    url: str
    process: subprocess.Popen[str]
    log: deque[str]


def _start(env: dict[str, str]) -> Node:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        errors="replace")
    lines: queue.Queue[str | None] = queue.Queue()
    log: deque[str] = deque(maxlen=200)

    def pump() -> None:
        assert proc.stderr is not None
        with contextlib.suppress(ValueError, OSError):
            for line in proc.stderr:
                log.append(line)
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=TIMEOUT)
        if line is None:
            raise RuntimeError("labelhub serve exited:\n" + "".join(log))
        if "Uvicorn running on" in line:  # after the lifespan (and its sweep) ran
            return Node(f"http://127.0.0.1:{port}", proc, log)


def _kill(node: Node) -> None:
    if node.process.poll() is None:
        node.process.send_signal(signal.SIGKILL)
    node.process.wait(timeout=TIMEOUT)
    if node.process.stderr is not None:
        node.process.stderr.close()


async def _login(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
    assert resp.status_code == 200, resp.text
    client.headers["Authorization"] = f"Bearer {resp.json()['token']}"
    client.cookies.clear()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_kill_9_mid_upload_leaves_acknowledged_images_and_no_orphans(
        database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "LABELHUB_DATABASE_URL": database_url, "LABELHUB_DATA_DIR": str(data),
           "LABELHUB_SECRET_KEY": "crash-secret", "LABELHUB_ADMIN_EMAIL": ADMIN[0],
           "LABELHUB_ADMIN_PASSWORD": ADMIN[1], "LABELHUB_PASSWORD_TIME_COST": "1",
           "LABELHUB_PASSWORD_MEMORY_KIB": "1024", "LABELHUB_WORKERS": "0"}
    store = LocalStore(data)
    acked, lost = png(11), png(12)
    lost_sha = hashlib.sha256(lost).hexdigest()
    node = await asyncio.to_thread(_start, env)
    lock = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=TIMEOUT) as client:
            await _login(client)
            resp = await client.post("/api/v1/projects", json={"name": "Crash"})
            pid = resp.json()["id"]
            resp = await client.post(f"/api/v1/projects/{pid}/images",
                                     files=files(("acked.png", acked)))
            assert resp.status_code == 201, resp.text
            acked_id = resp.json()["results"][0]["image"]["id"]

            await lock.execute("BEGIN; LOCK TABLE images IN SHARE MODE")
            pending = asyncio.create_task(client.post(
                f"/api/v1/projects/{pid}/images", files=files(("lost.png", lost))))
            # Poll the disk for the upload's files (the rows can never be inserted meanwhile).
            while not (store.path(original_key(lost_sha)).exists()
                       and store.path(thumb_key(lost_sha)).exists()):
                assert not pending.done(), pending.result().text
                await asyncio.sleep(0.05)
            await asyncio.to_thread(_kill, node)
            await lock.execute("ROLLBACK")
            with pytest.raises(httpx.TransportError):
                await pending  # never acknowledged
            assert await lock.fetchval("SELECT count(*) FROM upload_intents") == 1

        env["LABELHUB_UPLOAD_GRACE_SECONDS"] = "0"  # one process: nothing else is uploading
        node = await asyncio.to_thread(_start, env)
        async with httpx.AsyncClient(base_url=node.url, timeout=TIMEOUT) as client:
            await _login(client)
            listed = (await client.get(f"/api/v1/projects/{pid}/images")).json()
            assert [i["id"] for i in listed["images"]] == [acked_id]
            file = await client.get(f"/api/v1/images/{acked_id}/file")
            assert file.status_code == 200 and file.content == acked
        assert await lock.fetchval("SELECT count(*) FROM upload_intents") == 0
        assert await lock.fetchval("SELECT count(*) FROM images") == 1
        assert not store.path(original_key(lost_sha)).exists()
        assert not store.path(thumb_key(lost_sha)).exists()
        left = sorted(p.name for p in (data / "images").rglob("*") if p.is_file())
        acked_sha = hashlib.sha256(acked).hexdigest()
        assert left == sorted([acked_sha, f"{acked_sha}.thumb.jpg"])
    finally:
        await lock.close()
        await asyncio.to_thread(_kill, node)
