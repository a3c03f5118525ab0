"""The bus between processes on PostgreSQL (server/hub/bus.py): real NOTIFYs, real LISTEN.

A second hub ("process B": its own ``Hub`` and ``PgBus`` with another process tag, not told of
this process's commits in process) watches what the app ("process A") commits. An edit's row
comes with its doorbell and B fans it out without reading the log; anything else (a row too long
for a payload, an op without a row, a row whose predecessor B never heard of) is read from the
log, and B's watcher gets every op once, in seq order.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

from server._oplog import DOORBELL_CHANNEL, LoggedOp
from server.db import driver_connection
from server.hub import _fast_op
from server.hub._op_rows import PAYLOAD_LIMIT, PROCESS_TAG, ROW_CHANNEL
from server.hub.bus import PgBus, asyncpg_dsn
from server.hub.connection import Connection
from server.hub.endpoint import _handle
from server.hub.hub import Hub, Room
from server.models import utcnow
from server.permissions import Privilege
from server.settings import Settings
from tests.conftest import Api, make_project
from tests.hub.conftest import upload_images

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"],
                                                            indirect=True)]
WAIT = 60.0  # a bound on a hang, not a speed check


class ProcessB(Hub):
    """Another process's hub: counts its reads of the log and signals each fan-out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.fanned: list[int] = []
        self.changed = asyncio.Event()

    async def _advance(self, room: Room) -> None:
        self.reads += 1
        await super()._advance(room)

    def _fan_out(self, room: Room, row: Any) -> None:
        super()._fan_out(room, row)
        self.fanned.append(row.seq)
        self.changed.set()

    async def until(self, done: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), WAIT)


@dataclass
class Setup:
    app: Starlette
    dsn: str
    project: int
    image: int
    editor: Connection
    hub: ProcessB
    watcher: Connection
    token: int = 0
    n: int = 0
    last_client_op_id: str = ""
    bus: PgBus | None = None
    rings: list[int] = field(default_factory=list)

    async def send(self, message: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        rid = f"m{self.n}"
        await _handle(self.editor, self.app.state.handlers, json.dumps({**message, "id": rid}))
        replies = [json.loads(f) for f in self.editor.backlog]
        self.editor.backlog.clear()
        reply = next(r for r in replies if r.get("id") == rid)
        assert reply["type"] == "ack", reply
        return reply

    async def op(self, op: dict[str, Any]) -> int:
        self.last_client_op_id = f"op{self.n}"
        reply = await self.send({"type": "op", "image": self.image, "token": self.token,
                                 "client_op_id": self.last_client_op_id, "op": op})
        return int(reply["seq"])

    async def logged(self, seq: int) -> dict[str, Any]:
        """The op-log row of ``seq`` as the server wrote it (numbers normalized and so on)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            row = await conn.fetchrow("SELECT kind, op::text AS op, client_op_id FROM op_log "
                                      "WHERE project_id = $1 AND seq = $2", self.project, seq)
        finally:
            await conn.close()
        assert row is not None
        return {"kind": row["kind"], "op": json.loads(row["op"]), "c": row["client_op_id"]}

    def seqs(self) -> list[int]:
        return [json.loads(f)["seq"] for f in self.watcher.backlog
                if json.loads(f)["type"] in ("op", "lock")]


async def _after_scheduled_callbacks() -> None:
    """Until the callbacks scheduled so far have run (the loop runs them in order)."""
    ran = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(ran.set_result, None)
    await ran


def box(x: float) -> dict[str, Any]:
    return {"kind": "create", "object": {"id": "b", "type": "bbox", "label": "car",
                                         "geometry": {"x": x, "y": 1, "w": 5, "h": 5}}}


def move(x: float) -> dict[str, Any]:
    return {"kind": "move_box", "object_id": "b", "x": x, "y": 1, "w": 5, "h": 5}


def big_create(oid: str) -> dict[str, Any]:
    """A create whose row is far past a NOTIFY payload's limit."""
    points = [[round(32 + 20 * math.cos(2 * math.pi * i / 900), 3),
               round(24 + 20 * math.sin(2 * math.pi * i / 900), 3)] for i in range(900)]
    assert len(json.dumps(points)) > PAYLOAD_LIMIT
    return {"kind": "create", "object": {"id": oid, "type": "polyline", "label": "car",
                                         "geometry": {"points": points}}}


@pytest.fixture
async def setup(app: Starlette, admin: Api, settings: Settings) -> AsyncIterator[Setup]:
    project = await make_project(admin)
    image = (await upload_images(admin, project, 1))[0]
    editor = Connection(websocket=None, user_id=admin.user["id"], user_name="a", is_admin=True)
    hub = ProcessB(app.state.sessions, poll_interval=3600.0)  # no poll: every wake is a ring
    watcher = Connection(websocket=None, user_id=admin.user["id"], user_name="w", is_admin=True)
    watcher.privileges = int(Privilege.VIEW)
    s = Setup(app, asyncpg_dsn(settings.resolved_database_url), project, image, editor, hub,
              watcher)
    await s.send({"type": "hello", "project": project})
    s.token = int((await s.send({"type": "open_image", "image": image}))["lock"]["token"])
    seq, _ = await hub.join(watcher, project, None)
    watcher.subscriptions[image] = seq
    try:
        yield s
    finally:
        if s.bus is not None:
            await s.bus.stop()
        await hub.close()


async def start_bus(s: Setup, *, resync: Callable[[], None] | None = None) -> PgBus:
    def ring() -> None:
        s.rings.append(1)
        s.hub.doorbell()

    s.bus = PgBus(s.dsn, ring=ring, on_presence=lambda _m: None, on_row=s.hub.heard_row,
                  tag="process-b", resync=resync)
    s.bus.start()
    await asyncio.wait_for(s.bus.connected.wait(), WAIT)
    return s.bus


async def test_an_edit_reaches_the_other_process_with_its_row_and_no_read(setup: Setup) -> None:
    s = setup
    await start_bus(s, resync=lambda: None)  # nothing to catch up on: the room is fresh
    reads = s.hub.reads
    seqs = [await s.op(box(1))] + [await s.op(move(x)) for x in range(2, 12)]
    await s.hub.until(lambda: s.hub.fanned[-1:] == seqs[-1:])
    assert s.seqs() == seqs  # every op once, in order
    assert s.hub.reads == reads and s.rings == []  # each doorbell was settled by its row
    frames = [f for f in map(json.loads, s.watcher.backlog) if f["type"] == "op"]
    logged = await s.logged(seqs[-1])
    assert (frames[-1]["op"], frames[-1]["client_op_id"]) == (logged["op"], logged["c"])
    assert logged["c"] == s.last_client_op_id and logged["op"]["kind"] == "move_box"
    assert {(f["user"], f["image"], f["origin"]) for f in frames} == {
        (s.editor.user_id, s.image, "edit")}


async def test_rows_too_long_and_ops_without_rows_are_read_in_order(setup: Setup) -> None:
    """A big create rings the doorbell alone (read from the log); the lock changes of a release
    and reopen come without rows; the small edits after each come with theirs, possibly ahead
    of the read: whatever the interleaving, B's watcher gets every row of the log once, in seq
    order."""
    s = setup
    await start_bus(s)
    since = s.watcher.subscriptions[s.image]
    last = await s.op(box(1))
    for i in range(3):
        await s.op(big_create(f"p{i}"))
        await s.op(move(i))
        await s.send({"type": "release_image", "image": s.image})
        reopened = await s.send({"type": "open_image", "image": s.image})
        s.token = int(reopened["lock"]["token"])
        last = await s.op(move(i + 10))
    await s.hub.until(lambda: s.hub.fanned[-1:] == [last])
    conn = await asyncpg.connect(s.dsn)
    try:
        logged = [r["seq"] for r in await conn.fetch(
            "SELECT seq FROM op_log WHERE project_id = $1 AND seq > $2 ORDER BY seq",
            s.project, since)]
    finally:
        await conn.close()
    assert len(logged) == 1 + 3 * 5 and logged[-1] == last
    assert s.seqs() == logged  # in order, none twice, none missed
    assert s.hub.reads > 0  # the big rows and the lock changes were read from the log


async def test_a_row_after_a_gap_waits_for_the_read(setup: Setup) -> None:
    """Two ops land without B hearing of them (written here with no NOTIFY); then the second's
    row arrives. B must not deliver it ahead of the first: it reads both from the log, in
    order, and a late copy of either row is dropped."""
    s = setup
    await start_bus(s, resync=lambda: None)
    head = await s.op(box(1))
    await s.hub.until(lambda: s.hub.fanned[-1:] == [head])
    conn = await asyncpg.connect(s.dsn)
    try:
        async with conn.transaction():
            last = await conn.fetchval(
                "UPDATE projects SET seq = seq + 2 WHERE id = $1 RETURNING seq", s.project)
            for seq in (last - 1, last):
                await conn.execute(
                    "INSERT INTO op_log (project_id, seq, image_id, user_id, kind, op, origin, "
                    "created_at) VALUES ($1, $2, $3, $4, 'note', $5::text::jsonb, 'edit', now())",
                    s.project, seq, s.image, s.editor.user_id, json.dumps({"kind": "note", "n": seq}))
        assert last == head + 2
        reads = s.hub.reads
        row = {"t": "process-a", "p": s.project, "s": last, "i": s.image, "u": s.editor.user_id,
               "k": "note", "c": None, "o": "edit", "op": {"kind": "note", "n": last}}
        await conn.execute("SELECT pg_notify($1, $2)", ROW_CHANNEL, json.dumps(row))
        await s.hub.until(lambda: s.hub.fanned[-1:] == [last])
        assert s.seqs() == [head, head + 1, head + 2]
        assert s.hub.reads > reads  # the gap sent B to the log
        stale = {**row, "s": last - 1, "op": {"kind": "note", "n": last - 1}}
        await conn.execute("SELECT pg_notify($1, $2)", ROW_CHANNEL, json.dumps(stale))
        after = await s.op(move(3))  # a later row, delivered after the stale one was heard
        await s.hub.until(lambda: s.hub.fanned[-1:] == [after])
        assert s.seqs() == [head, head + 1, head + 2, after]
    finally:
        await conn.close()


async def test_a_doorbell_is_settled_only_by_a_row_from_its_transaction(setup: Setup) -> None:
    """Doorbell and row in one transaction: no ring. A doorbell alone, or with a row that does
    not parse, rings once. Rows this process committed are told apart by their tag."""
    s = setup
    rows: list[tuple[int, int, bool]] = []
    heard = asyncio.Event()

    def on_row(project_id: int, entry: LoggedOp, own: bool) -> None:
        rows.append((project_id, entry.seq, own))
        heard.set()

    def ring() -> None:
        s.rings.append(1)
        heard.set()

    s.bus = PgBus(s.dsn, ring=ring, on_presence=lambda _m: None, on_row=on_row,
                  tag="process-b", resync=lambda: None)
    s.bus.start()
    await asyncio.wait_for(s.bus.connected.wait(), WAIT)
    conn = await asyncpg.connect(s.dsn)

    async def notify(*messages: tuple[str, str]) -> None:
        heard.clear()
        async with conn.transaction():
            for channel, payload in messages:
                await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
        await asyncio.wait_for(heard.wait(), WAIT)
        await _after_scheduled_callbacks()  # the settling one runs right after the row's

    def row(seq: int, tag: str) -> str:
        return json.dumps({"t": tag, "p": s.project, "s": seq, "i": s.image, "u": 1, "k": "note",
                           "c": None, "o": "edit", "op": {"kind": "note"}})

    try:
        await notify((DOORBELL_CHANNEL, ""), (ROW_CHANNEL, row(50, "process-a")))
        assert rows == [(s.project, 50, False)] and s.rings == []
        await notify((DOORBELL_CHANNEL, ""), (ROW_CHANNEL, row(51, "process-b")))
        assert rows[-1] == (s.project, 51, True) and s.rings == []
        await notify((DOORBELL_CHANNEL, ""),)
        assert s.rings == [1]
        await notify((DOORBELL_CHANNEL, ""), (ROW_CHANNEL, "{not json"))
        assert s.rings == [1, 1] and len(rows) == 2
    finally:
        await conn.close()


async def test_the_app_tags_its_rows_with_its_process(setup: Setup) -> None:
    """What the edit statement sends, as a plain listener hears it: each committed edit's row,
    but none for a row past the payload limit nor for an edit that was refused."""
    s = setup
    conn = await asyncpg.connect(s.dsn)
    got: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(ROW_CHANNEL, lambda _c, _pid, _ch, payload: got.put_nowait(payload))
    try:
        seq = await s.op(box(4))
        row = json.loads(await asyncio.wait_for(got.get(), WAIT))
        logged = await s.logged(seq)
        assert row == {"t": PROCESS_TAG, "p": s.project, "s": seq, "i": s.image,
                       "u": s.editor.user_id, "k": "create", "c": s.last_client_op_id,
                       "o": "edit", "op": logged["op"]}
        assert logged["op"]["object"]["geometry"] == {"x": 4, "y": 1, "w": 5, "h": 5}
        too_long = await s.op(big_create("p"))
        now = utcnow()
        async with driver_connection(s.app.state.engine) as driver:  # a lease that moved on
            refused = await driver.fetchrow(
                _fast_op._COMMIT, s.editor.user_id, s.project, s.image, s.token + 1, now,
                "refused", "{}", "manual", "[]", "[]", [], 0, None, None, "move_box",
                json.dumps(move(5)), None, None, "edit", now, None, None, None, None)
        assert refused["status"] == "lease"
        after = await s.op(move(6))
        heard = json.loads(await asyncio.wait_for(got.get(), WAIT))
        assert heard["s"] == after == too_long + 1 and got.empty()
    finally:
        await conn.close()
