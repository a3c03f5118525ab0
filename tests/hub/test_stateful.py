"""Hypothesis stateful test: several users edit, lose their connections and come back.

Invariants, checked after every step on the real server and database:
- every acknowledged op is in the op log, with the seq it was acknowledged with;
- the project's seqs are 1..head with no gap and no duplicate;
- no two clients hold a valid lock on one image (the fencing token decides);
- a client that resumes from its last seq and replays the events reaches the database's state.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from server.app import create_app
from server.db import make_engine, make_sessionmaker
from server.models import ImageLock, OpLogEntry, Project
from tests._db import PgTemplate, SqliteTemplate, pg_base_url, with_database
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.hub._ws import TIMEOUT, WsClient
from tests.hub.conftest import png
from tests.hub.test_resume import replay

USERS = 3
IMAGES = 2


class Server:
    """A live server in its own thread and event loop, so the machine can drive it synchronously."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.settings = make_settings(database_url, data_dir, lock_ttl_seconds=600.0)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.sock, self.port = sock, sock.getsockname()[1]
        config = uvicorn.Config(create_app(self.settings), log_level="warning", lifespan="on",
                                ws="websockets-sansio", ws_per_message_deflate=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        started = threading.Event()
        while not self.server.started and self.thread.is_alive():
            started.wait(0.02)
        assert self.server.started

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def setup_project(server: Server) -> tuple[int, list[int], list[tuple[int, str]]]:
    base = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=base, timeout=30) as http:
        token = http.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        http.cookies.clear()
        pid = http.post("/api/v1/projects", json={"name": "stateful"}).json()["id"]
        files = [("files", (f"s{i}.png", png(100 + i), "image/png")) for i in range(IMAGES)]
        images = sorted(r["image"]["id"] for r in http.post(f"/api/v1/projects/{pid}/images", files=files).json()["results"])
        people = []
        for i in range(USERS):
            email = f"s{pid}u{i}@example.com"
            uid = http.post("/api/v1/users", json={"email": email, "password": "password-123",
                                                     "name": f"S{i}"}).json()["id"]
            http.post(f"/api/v1/projects/{pid}/members", json={"email": email, "role": "labeler"})
            with httpx.Client(base_url=base, timeout=30) as other:
                people.append((uid, other.post("/api/v1/auth/login",
                                               json={"email": email, "password": "password-123"}).json()["token"]))
    return pid, images, people


def box(oid: str, x: int) -> dict[str, Any]:
    return {"kind": "create", "object": {"id": oid, "type": "bbox", "geometry": {"x": x, "y": 2, "w": 6, "h": 5}}}


class HubMachine(RuleBasedStateMachine):
    server: Server
    project: int
    images: list[int]
    people: list[tuple[int, str]]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = make_engine(self.server.settings.resolved_database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.clients: dict[int, WsClient | None] = dict.fromkeys(range(USERS))
        self.tokens: dict[tuple[int, int], int] = {}  # (user, image) -> token I was granted
        self.acked: dict[str, int] = {}  # client_op_id -> seq
        self.sent: dict[int, tuple[str, int, dict[str, Any]]] = {}  # user -> last op sent
        self.last_seq: dict[int, int] = dict.fromkeys(range(USERS), 0)
        self.views: dict[int, dict[str, Any]] = {}  # user -> its snapshot of image 0 + events
        self.counter = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _take(self, user: int, event: dict[str, Any], *, own: bool = False) -> None:
        """Track a client's seq and its view of image 0 (a snapshot plus later ops by seq).

        An ack of my own op does not move my resume point: others' events with lower seqs
        may still be on their way, and a resume from past them would skip them.
        """
        if event.get("type") in ("op", "lock") and not own:
            self.last_seq[user] = max(self.last_seq[user], event["seq"])
        if event.get("type") == "snapshot" and event["image"] == self.images[0]:
            # A snapshot may arrive after the ack of my own later op: keep what it does not cover.
            kept = {seq: op for seq, op in self.views.get(user, {"ops": {}})["ops"].items() if seq > event["seq"]}
            self.views[user] = {"snapshot": event, "ops": kept}
        elif event.get("type") == "op" and event.get("image") == self.images[0] and user in self.views:
            if event["seq"] > self.views[user]["snapshot"]["seq"]:
                self.views[user]["ops"][event["seq"]] = event

    def _drain(self, user: int) -> None:
        client = self.clients[user]
        assert client is not None
        while not client.events.empty():
            self._take(user, client.events.get_nowait())

    def _view_seq(self, user: int) -> int:
        view = self.views[user]
        return max([view["snapshot"]["seq"], *view["ops"]])

    @rule(user=st.integers(0, USERS - 1))
    def connect(self, user: int) -> None:
        if self.clients[user] is not None:
            return
        client = self.run(WsClient.open(f"ws://127.0.0.1:{self.server.port}/api/v1/ws", self.people[user][1]))
        self.clients[user] = client
        since = self.last_seq[user] if user in self.views else None
        ack = self.run(client.request("hello", project=self.project, since=since,
                                      images=[self.images[0]] if since is not None else []))
        assert ack["type"] == "ack", ack
        self._drain(user)
        self.last_seq[user] = max(self.last_seq[user], ack["seq"])
        if user not in self.views:
            assert self.run(client.request("subscribe", image=self.images[0]))["type"] == "ack"
            self._drain(user)

    @precondition(lambda self: any(c is not None for c in self.clients.values()))
    @rule(user=st.integers(0, USERS - 1))
    def disconnect(self, user: int) -> None:
        client = self.clients[user]
        if client is None:
            return
        self._drain(user)
        held = {self.images[k[1]] for k in self.tokens if k[0] == user}
        head = self.run(self._head())
        self.run(client.close())
        self.clients[user] = None
        # The clean close releases my leases, once the server has seen the close: wait for the
        # released events (replayed from the log to an observer) before anyone tries to open them.
        self.run(self._await_released(held, head))
        for key in [k for k in self.tokens if k[0] == user]:
            del self.tokens[key]

    async def _head(self) -> int:
        async with self.sessions() as session:
            return int((await session.execute(
                select(Project.seq).where(Project.id == self.project))).scalar_one())

    async def _await_released(self, images: set[int], since: int) -> None:
        if not images:
            return
        observer = await WsClient.open(f"ws://127.0.0.1:{self.server.port}/api/v1/ws", self.people[0][1])
        try:
            ack = await observer.request("hello", project=self.project, since=since, images=[])
            assert ack["type"] == "ack", ack
            while images:
                event = await observer.event("lock")
                if event["state"] != "granted":
                    images.discard(event["image"])
        finally:
            await observer.close()

    @rule(user=st.integers(0, USERS - 1), image=st.integers(0, IMAGES - 1))
    def open_image(self, user: int, image: int) -> None:
        client = self.clients[user]
        if client is None:
            return
        reply = self.run(client.request("open_image", image=self.images[image]))
        if reply["type"] == "ack":
            for key in [k for k in self.tokens if k[1] == image]:
                del self.tokens[key]  # whoever had it before does not any more
            self.tokens[(user, image)] = reply["lock"]["token"]
        else:
            assert reply["code"] == "locked"
            assert any(k[1] == image and k[0] != user for k in self.tokens), "locked, but by nobody"
        self._drain(user)

    @rule(user=st.integers(0, USERS - 1), image=st.integers(0, IMAGES - 1),
          kind=st.sampled_from(["create", "move", "delete", "label"]), x=st.integers(0, 40))
    def op(self, user: int, image: int, kind: str, x: int) -> None:
        client = self.clients[user]
        if client is None:
            return
        self.counter += 1
        oid = f"o{x % 4}"
        body = {"create": box(oid, x),
                "move": {"kind": "move_box", "object_id": oid, "x": x, "y": 1, "w": 4, "h": 4},
                "delete": {"kind": "delete", "object_id": oid},
                "label": {"kind": "add_label", "label": f"l{x % 3}"}}[kind]
        token = self.tokens.get((user, image), 0)
        cid = f"c{self.counter}"
        reply = self.run(client.request("op", image=self.images[image], token=token, client_op_id=cid, op=body))
        if reply["type"] == "ack":
            assert (user, image) in self.tokens, "an op was accepted without a lock"
            self.acked[cid] = reply["seq"]
            self.sent[user] = (cid, image, body)
            if image == 0 and user in self.views:  # a real client applies its own op on ack
                self._take(user, {"type": "op", "seq": reply["seq"], "image": self.images[0],
                                  "user": self.people[user][0], "op": body}, own=True)
        else:
            assert reply["code"] in ("no_lock", "invalid_op", "stale_token"), reply
        self._drain(user)

    @precondition(lambda self: bool(self.sent))
    @rule(user=st.integers(0, USERS - 1))
    def resend(self, user: int) -> None:
        client = self.clients[user]
        if client is None or user not in self.sent:
            return
        cid, image, body = self.sent[user]
        reply = self.run(client.request("op", image=self.images[image], token=0, client_op_id=cid, op=body))
        assert reply["type"] == "ack" and reply["seq"] == self.acked[cid] and reply["duplicate"] is True

    @invariant()
    def log_is_gap_free_and_holds_every_ack(self) -> None:
        async def check() -> None:
            async with self.sessions() as session:
                rows = (await session.execute(select(OpLogEntry.seq, OpLogEntry.client_op_id).where(
                    OpLogEntry.project_id == self.project).order_by(OpLogEntry.seq))).all()
                locks = (await session.execute(select(ImageLock).where(
                    ImageLock.project_id == self.project))).scalars().all()
            seqs = [r.seq for r in rows]
            assert seqs == list(range(1, len(seqs) + 1))
            logged = {r.client_op_id: r.seq for r in rows if r.client_op_id}
            for cid, seq in self.acked.items():
                assert logged.get(cid) == seq
            for lock in locks:
                image = self.images.index(lock.image_id)
                valid = [u for (u, i), tok in self.tokens.items() if i == image and tok == lock.token
                         and lock.holder_id == self.people[u][0]]
                assert len(valid) <= 1
        self.run(check())

    def teardown(self) -> None:
        try:
            for user, client in self.clients.items():
                if client is None or user not in self.views:
                    continue
                fresh_conn = self.run(WsClient.open(f"ws://127.0.0.1:{self.server.port}/api/v1/ws",
                                                    self.people[user][1]))
                self.run(fresh_conn.request("hello", project=self.project))
                self.run(fresh_conn.request("subscribe", image=self.images[0]))
                fresh = self.run(fresh_conn.event("snapshot", image=self.images[0]))
                # Events may still be on their way to the old client: await them, up to fresh's seq.
                target = self._image_head(fresh["seq"])
                self._drain(user)
                while self._view_seq(user) < target:
                    self._take(user, self.run(asyncio.wait_for(client.events.get(), TIMEOUT)))
                view = self.views[user]
                ops = [view["ops"][k] for k in sorted(view["ops"])]
                assert replay(view["snapshot"], ops, 64, 48) == replay(fresh, [], 64, 48)
                self.run(fresh_conn.close())
            for client in self.clients.values():
                if client is not None:
                    self.run(client.close())
        finally:
            self.run(self.engine.dispose())
            self.loop.close()

    def _image_head(self, limit: int) -> int:
        """The last seq of an op (not a lock change) on image 0, at or before ``limit``."""
        async def head() -> int:
            async with self.sessions() as session:
                seqs = (await session.execute(select(OpLogEntry.seq).where(
                    OpLogEntry.project_id == self.project, OpLogEntry.image_id == self.images[0],
                    OpLogEntry.kind != "lock", OpLogEntry.seq <= limit))).scalars().all()
            return max(seqs, default=0)
        return int(self.run(head()))


def _run(database_url: str, data_dir: Path) -> None:
    server = Server(database_url, data_dir)
    HubMachine.server = server

    def fresh_machine() -> HubMachine:
        # Each example gets its own project, users and images on the same server.
        HubMachine.project, HubMachine.images, HubMachine.people = setup_project(server)
        return HubMachine()

    try:
        run_state_machine_as_test(fresh_machine, settings=settings(
            max_examples=8, stateful_step_count=25, deadline=None,
            suppress_health_check=list(HealthCheck)))
    finally:
        server.stop()


@pytest.mark.slow
def test_stateful_sqlite(sqlite_template: SqliteTemplate, tmp_path: Path) -> None:
    _run(sqlite_template.copy(tmp_path / "s.db"), tmp_path / "data")


@pytest.mark.slow
@pytest.mark.postgres
def test_stateful_postgres(pg_template: PgTemplate, tmp_path: Path) -> None:
    name = asyncio.run(pg_template.copy())
    try:
        _run(with_database(pg_base_url(), name), tmp_path / "data")
    finally:
        asyncio.run(PgTemplate.drop(name))
