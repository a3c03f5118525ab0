"""An object op on PostgreSQL in two statements (server/hub/_fast_op.py, migration 0003): what
happens when something changes between the read and the commit. The interleavings are real: the
read runs, then another real op, release or resend lands, then the commit runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

from server.db import driver_connection
from server.hub import _fast_op
from server.hub.connection import Connection
from server.hub.endpoint import _handle
from server.models import utcnow
from tests.conftest import Api, make_project
from tests.hub.conftest import upload_images

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"],
                                                            indirect=True)]


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


@pytest.fixture
async def labeler(app: Starlette, admin: Api) -> AsyncIterator[Labeler]:
    project = await make_project(admin)
    image = (await upload_images(admin, project, 1))[0]
    conn = Connection(websocket=None, user_id=admin.user["id"], user_name="a", is_admin=True)
    lab = Labeler(app, conn, project, image)
    assert (await lab.send({"type": "hello", "project": project}))["type"] == "ack"
    lab.token = await lab.open()
    yield lab


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


def _after_read(monkeypatch: pytest.MonkeyPatch,
                between: Callable[[], Awaitable[None]]) -> list[str]:
    """Run ``between`` once, right after the next op's read; returns the commits' outcomes."""
    read, commit = _fast_op.read, _fast_op.commit
    pending, outcomes = [between], []

    async def read_then(*args: Any, **kwargs: Any) -> Any:
        begun = await read(*args, **kwargs)
        if pending:
            await pending.pop()()
        return begun

    async def commit_and_record(*args: Any, **kwargs: Any) -> Any:
        outcome = await commit(*args, **kwargs)
        outcomes.append(outcome.status)
        return outcome

    monkeypatch.setattr(_fast_op, "read", read_then)
    monkeypatch.setattr(_fast_op, "commit", commit_and_record)
    return outcomes


async def test_an_op_commits_its_objects_log_row_and_count_in_one_statement(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = _after_read(monkeypatch, _nothing)
    ack = await labeler.op(box(1), "c1")
    moved = await labeler.op(move(7), "c2")
    assert outcomes == ["ok", "ok"]
    assert (ack["type"], moved["type"], moved["seq"]) == ("ack", "ack", ack["seq"] + 1)
    seq, objects, log = await _state(labeler)
    assert seq == moved["seq"]
    assert objects == [("b", 7, 2)]
    assert log == [(ack["seq"], "create", "c1"), (moved["seq"], "move_box", "c2")]
    count = await _sql(labeler.app, "SELECT object_count, labeled_by FROM images WHERE id = $1",
                       labeler.image)
    assert tuple(count[0]) == (1, labeler.conn.user_id)
    undo = await labeler.send({"type": "undo", "image": labeler.image, "token": labeler.token})
    assert undo["type"] == "ack"
    assert (await _state(labeler))[1] == [("b", 1, 3)]  # the inverse was read before the move


async def test_an_object_changed_after_the_read_sends_the_op_the_transaction_way(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    await labeler.op(box(1), "c1")
    other = labeler.second_connection()
    assert (await labeler.send({"type": "hello", "project": labeler.project}, other))["type"] == "ack"

    async def another_move() -> None:
        reply = await labeler.op(move(30), "between", other)  # same user and token
        assert reply["type"] == "ack", reply

    outcomes = _after_read(monkeypatch, another_move)
    ack = await labeler.op(move(9), "c2")
    assert outcomes == ["ok", "conflict"]  # the move between, then ours (retried the other way)
    assert ack["type"] == "ack", ack
    seq, objects, log = await _state(labeler)
    assert objects == [("b", 9, 3)]
    assert [row[2] for row in log] == ["c1", "between", "c2"] and seq == ack["seq"]
    # The op was applied to what the other move left: its undo goes back to x = 30.
    assert (await labeler.send({"type": "undo", "image": labeler.image,
                                "token": labeler.token}))["type"] == "ack"
    assert (await _state(labeler))[1] == [("b", 30, 4)]


async def test_a_lease_lost_after_the_read_refuses_the_op_and_writes_nothing(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    await labeler.op(box(1), "c1")
    before = await _state(labeler)
    other = labeler.second_connection()
    assert (await labeler.send({"type": "hello", "project": labeler.project}, other))["type"] == "ack"

    async def reopen_elsewhere() -> None:
        assert (await labeler.send({"type": "release_image", "image": labeler.image}))["type"] == "ack"
        await labeler.open(other)

    outcomes = _after_read(monkeypatch, reopen_elsewhere)
    refused = await labeler.op(move(9), "c2")
    assert outcomes == ["lease"]
    assert (refused["type"], refused["code"]) == ("error", "stale_token")
    seq, objects, log = await _state(labeler)
    assert objects == before[1] and log == before[2]
    assert seq == before[0] + 2  # the release and the new grant, both lock rows; no op


async def test_a_resend_landing_after_the_read_gets_the_original_ack(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    await labeler.op(box(1), "c1")
    other = labeler.second_connection()
    assert (await labeler.send({"type": "hello", "project": labeler.project}, other))["type"] == "ack"
    first: dict[str, Any] = {}

    async def resend_lands() -> None:
        first.update(await labeler.op(move(5), "same", other))

    outcomes = _after_read(monkeypatch, resend_lands)
    again = await labeler.op(move(5), "same")
    assert outcomes == ["ok", "duplicate"]  # the resend between, then ours
    assert (again["type"], again["seq"], again["duplicate"]) == ("ack", first["seq"], True)
    assert [row[2] for row in (await _state(labeler))[2]] == ["c1", "same"]


async def test_the_commit_function_rolls_back_the_seq_on_a_version_conflict(
        labeler: Labeler) -> None:
    await labeler.op(box(1), "c1")
    before = await _state(labeler)
    now = utcnow()
    async with driver_connection(labeler.app.state.engine) as driver:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await driver.fetchrow(
                _fast_op._COMMIT, labeler.conn.user_id, labeler.project, labeler.image,
                labeler.token, now, "stale", json.dumps({"b": 0}), "manual", "[]", "[]", "[]",
                0, None, None, "move_box", json.dumps(move(3)), None, None, "edit", now, None,
                None, None)
    assert caught.value.sqlstate == _fast_op.CONFLICT_SQLSTATE
    assert await _state(labeler) == before  # seq, objects and log untouched
