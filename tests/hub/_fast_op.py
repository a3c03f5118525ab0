"""Shared by tests/hub/test_fast_op.py and test_fast_op_batches.py: a labeler driving the hub's
handlers directly (no socket), the image's state as the database holds it, and a hook that runs
something right before the next op's commit."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette

from server.db import driver_connection
from server.hub import _fast_op
from server.hub.connection import Connection
from server.hub.endpoint import _handle


@dataclass
class Labeler:
    app: Starlette
    conn: Connection
    project: int
    image: int
    token: int = 0
    n: int = 0

    async def send(self, message: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        """Handle one message; its reply (ack or error)."""
        conn = conn or self.conn
        self.n += 1
        rid = f"m{self.n}"
        await _handle(conn, self.app.state.handlers, json.dumps({**message, "id": rid}))
        replies = [json.loads(f) for f in conn.backlog]
        conn.backlog.clear()
        return next(r for r in replies if r.get("id") == rid)

    async def open(self, conn: Connection | None = None) -> int:
        ack = await self.send({"type": "open_image", "image": self.image}, conn)
        assert ack["type"] == "ack", ack
        return int(ack["lock"]["token"])

    async def op(self, op: dict[str, Any], client_op_id: str,
                 conn: Connection | None = None) -> dict[str, Any]:
        return await self.send({"type": "op", "image": self.image, "token": self.token,
                                "client_op_id": client_op_id, "op": op}, conn)

    def second_connection(self) -> Connection:
        return Connection(websocket=None, user_id=self.conn.user_id, user_name="a", is_admin=True)


def box(x: float) -> dict[str, Any]:
    return {"kind": "create", "object": {"id": "b", "type": "bbox", "label": "car",
                                         "geometry": {"x": x, "y": 1, "w": 5, "h": 5}}}


def move(x: float) -> dict[str, Any]:
    return {"kind": "move_box", "object_id": "b", "x": x, "y": 1, "w": 5, "h": 5}


async def _sql(app: Starlette, query: str, *args: Any) -> list[Any]:
    async with driver_connection(app.state.engine) as driver:
        return list(await driver.fetch(query, *args))


async def _state(lab: Labeler) -> tuple[int, list[Any], list[Any]]:
    """The project's seq, the image's objects (id, x, version) and its op-log rows."""
    seq = (await _sql(lab.app, "SELECT seq FROM projects WHERE id = $1", lab.project))[0][0]
    objects = [(r["id"], json.loads(r["g"])["x"], r["version"]) for r in await _sql(
        lab.app, "SELECT id, geometry::text AS g, version FROM objects WHERE image_id = $1 "
        "ORDER BY id", lab.image)]
    log = [tuple(r) for r in await _sql(
        lab.app, "SELECT seq, kind, client_op_id FROM op_log WHERE image_id = $1 "
        "AND kind <> 'lock' ORDER BY seq", lab.image)]
    return seq, objects, log


async def _nothing() -> None:
    return None


@dataclass
class Calls:
    reads: int = 0
    outcomes: list[str] = field(default_factory=list)


def _before_commit(monkeypatch: pytest.MonkeyPatch,
                   between: Callable[[], Awaitable[None]]) -> Calls:
    """Run ``between`` once, right before the next op's commit; count the reads and record the
    commits' outcomes."""
    read, commit = _fast_op.read, _fast_op.commit
    pending, calls = [between], Calls()

    async def counted_read(*args: Any, **kwargs: Any) -> Any:
        calls.reads += 1
        return await read(*args, **kwargs)

    async def commit_after(*args: Any, **kwargs: Any) -> Any:
        if pending:
            await pending.pop()()
        outcome = await commit(*args, **kwargs)
        calls.outcomes.append(outcome.status)
        return outcome

    monkeypatch.setattr(_fast_op, "read", counted_read)
    monkeypatch.setattr(_fast_op, "commit", commit_after)
    return calls


def _path(lab: Labeler, held: bool) -> None:
    """Make the next op start from what the previous one left (``held``) or read afresh."""
    if held:
        assert lab.conn.held is not None and lab.conn.held.image_id == lab.image
    else:
        lab.conn.held = None
