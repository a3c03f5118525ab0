"""An object op on PostgreSQL in two statements (server/hub/_fast_op.py, migrations 0003 and 0004),
or in one when the connection's previous edit left what it needs (``Held``): what happens when
something changes before the commit. The interleavings are real: the op is applied, then another
real op, release, resend or privilege change lands, then the commit runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

from server import _edit_lease
from server._pg_writes import insert_columns
from server.db import driver_connection
from server.hub import _fast_op
from server.hub.connection import Connection
from server.hub.endpoint import _handle
from server.models import utcnow
from tests.conftest import Api, UserFactory, add_member, make_project
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


async def test_an_op_commits_its_objects_log_row_and_count_in_one_statement(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _before_commit(monkeypatch, _nothing)
    ack = await labeler.op(box(1), "c1")
    moved = await labeler.op(move(7), "c2")
    assert calls.outcomes == ["ok", "ok"]
    assert calls.reads == 1  # the move started from what the create left
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


async def test_edits_without_reads_create_move_and_delete_like_read_ones(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _before_commit(monkeypatch, _nothing)
    other = labeler.second_connection()
    assert (await labeler.send({"type": "hello", "project": labeler.project}, other))["type"] == "ack"
    made_elsewhere = {"kind": "create", "object": {"id": "e", "type": "bbox", "label": "car",
                                                   "geometry": {"x": 20, "y": 1, "w": 5, "h": 5}}}
    assert (await labeler.op(made_elsewhere, "e1", other))["type"] == "ack"  # same user, token
    await labeler.op(box(1), "c1")
    # A create of an id that exists but was never read here: the commit finds it there, and
    # the read that follows refuses the op.
    refused = await labeler.op(made_elsewhere, "e2")
    assert (refused["type"], refused["code"]) == ("error", "invalid_op"), refused
    assert calls.outcomes[-1] == "conflict"
    assert (await labeler.op(move(3), "h0"))["type"] == "ack"  # reads: the refusal kept nothing
    reads = calls.reads
    for n, op in enumerate([{**box(9), "object": {**box(9)["object"], "id": "c"}},
                            {"kind": "delete", "object_id": "b"}], start=1):
        assert (await labeler.op(op, f"h{n}"))["type"] == "ack"
    assert calls.reads == reads  # a new id is checked absent by the commit, not read first
    # An object this connection never read: the held state lacks it, so the op reads it.
    assert (await labeler.op({"kind": "move_box", "object_id": "e", "x": 30, "y": 1, "w": 5,
                              "h": 5}, "e3"))["type"] == "ack"
    assert calls.reads == reads + 1
    _seq, objects, log = await _state(labeler)
    assert objects == [("c", 9, 1), ("e", 30, 2)]
    assert [row[2] for row in log] == ["e1", "c1", "h0", "h1", "h2", "e3"]
    count = await _sql(labeler.app, "SELECT object_count FROM images WHERE id = $1", labeler.image)
    assert count[0][0] == 2


@pytest.mark.parametrize("held", [True, False], ids=["held", "read"])
async def test_an_object_changed_before_the_commit_is_applied_on_top_of_the_change(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch, held: bool, one_burst: None) -> None:
    await labeler.op(box(1), "c1")
    other = labeler.second_connection()
    assert (await labeler.send({"type": "hello", "project": labeler.project}, other))["type"] == "ack"

    async def another_move() -> None:
        reply = await labeler.op(move(30), "between", other)  # same user and token
        assert reply["type"] == "ack", reply

    _path(labeler, held)
    calls = _before_commit(monkeypatch, another_move)
    ack = await labeler.op(move(9), "c2")
    # The move between, then ours: found the object changed, and tried again after reading it
    # (from held state) or the one-transaction way (after a read).
    assert calls.outcomes == (["ok", "conflict", "ok"] if held else ["ok", "conflict"])
    assert ack["type"] == "ack", ack
    seq, objects, log = await _state(labeler)
    assert objects == [("b", 9, 3)]
    assert [row[2] for row in log] == ["c1", "between", "c2"] and seq == ack["seq"]
    # The op was applied to what the other move left: its undo goes back to x = 30.
    assert (await labeler.send({"type": "undo", "image": labeler.image,
                                "token": labeler.token}))["type"] == "ack"
    assert (await _state(labeler))[1] == [("b", 30, 4)]


@pytest.mark.parametrize("held", [True, False], ids=["held", "read"])
async def test_a_lease_lost_before_the_commit_refuses_the_op_and_writes_nothing(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch, held: bool) -> None:
    await labeler.op(box(1), "c1")
    before = await _state(labeler)
    other = labeler.second_connection()
    assert (await labeler.send({"type": "hello", "project": labeler.project}, other))["type"] == "ack"

    async def reopen_elsewhere() -> None:
        assert (await labeler.send({"type": "release_image", "image": labeler.image}))["type"] == "ack"
        await labeler.open(other)

    _path(labeler, held)
    calls = _before_commit(monkeypatch, reopen_elsewhere)
    refused = await labeler.op(move(9), "c2")
    # Held state: the stamp covers the lease's labeling session, so the commit compares nothing
    # else; the read then finds the token stale.
    assert calls.outcomes == (["stale"] if held else ["lease"])
    assert (refused["type"], refused["code"]) == ("error", "stale_token")
    seq, objects, log = await _state(labeler)
    assert objects == before[1] and log == before[2]
    assert seq == before[0] + 2  # the release and the new grant, both lock rows; no op


@pytest.mark.parametrize("held", [True, False], ids=["held", "read"])
async def test_a_resend_landing_before_the_commit_gets_the_original_ack(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch, held: bool, one_burst: None) -> None:
    await labeler.op(box(1), "c1")
    other = labeler.second_connection()
    assert (await labeler.send({"type": "hello", "project": labeler.project}, other))["type"] == "ack"
    first: dict[str, Any] = {}

    async def resend_lands() -> None:
        first.update(await labeler.op(move(5), "same", other))

    _path(labeler, held)
    calls = _before_commit(monkeypatch, resend_lands)
    again = await labeler.op(move(5), "same")
    assert calls.outcomes == ["ok", "duplicate"]  # the resend between, then ours
    assert (again["type"], again["seq"], again["duplicate"]) == ("ack", first["seq"], True)
    assert [row[2] for row in (await _state(labeler))[2]] == ["c1", "same"]


async def test_a_privilege_revoked_after_the_last_edit_refuses_the_next(
        app: Starlette, admin: Api, users: UserFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    project = await make_project(admin)
    image = (await upload_images(admin, project, 1))[0]
    member = await users("member")
    await add_member(admin, project, member, role="labeler")
    conn = Connection(websocket=None, user_id=member.user["id"], user_name="m", is_admin=False)
    lab = Labeler(app, conn, project, image)
    assert (await lab.send({"type": "hello", "project": project}))["type"] == "ack"
    lab.token = await lab.open()
    assert (await lab.op(box(1), "c1"))["type"] == "ack"
    before = await _state(lab)

    async def revoke() -> None:
        resp = await admin.client.patch(f"/api/v1/projects/{project}/members/{member.user['id']}",
                                        json={"role": "viewer"})
        assert resp.status_code == 200, resp.text

    calls = _before_commit(monkeypatch, revoke)
    refused = await lab.op(move(9), "c2")
    assert calls.outcomes == ["stale"]  # computed with the old privileges: not written
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    assert (await _state(lab))[1:] == before[1:]  # objects and log (the seq took the change)


async def test_a_setting_changed_after_the_last_edit_applies_to_the_next(
        labeler: Labeler, admin: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    resp = await admin.client.patch(f"/api/v1/projects/{labeler.project}/settings",
                                    json={"allow_labeling_outside_image": True})
    assert resp.status_code == 200, resp.text
    assert (await labeler.op(box(1), "c1"))["type"] == "ack"
    before = await _state(labeler)

    async def forbid_outside() -> None:
        resp = await admin.client.patch(f"/api/v1/projects/{labeler.project}/settings",
                                        json={"allow_labeling_outside_image": False})
        assert resp.status_code == 200, resp.text

    calls = _before_commit(monkeypatch, forbid_outside)
    refused = await labeler.op(move(-40), "c2")  # allowed by the setting the held state knew
    assert calls.outcomes == ["stale"]
    assert refused["type"] == "error", refused
    assert await _state(labeler) == before


async def test_the_commit_function_rolls_back_the_seq_on_a_version_conflict(
        labeler: Labeler) -> None:
    await labeler.op(box(1), "c1")
    before = await _state(labeler)
    now = utcnow()
    async with driver_connection(labeler.app.state.engine) as driver:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await driver.fetchrow(
                _fast_op._COMMIT, labeler.conn.user_id, labeler.project, labeler.image,
                labeler.token, now, "stale", json.dumps({"b": 0}), "manual", "[]", "[]", [],
                0, None, None, "move_box", json.dumps(move(3)), None, None, "edit", now, None,
                None, None, None)
    assert caught.value.sqlstate == _fast_op.CONFLICT_SQLSTATE
    assert await _state(labeler) == before  # seq, objects and log untouched


async def test_big_batches_read_and_check_their_objects_in_set_statements(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 64 objects the read and the version check are set statements (migration 0015):
    the same outcomes as one lookup per object."""
    many = [f"m{i:03d}" for i in range(100)]
    creates = [{"kind": "create", "object": {"id": oid, "type": "bbox", "label": "car",
                                             "geometry": {"x": i % 50, "y": 1, "w": 5, "h": 5}}}
               for i, oid in enumerate(many)]
    assert (await labeler.op({"kind": "batch", "ops": creates}, "many"))["type"] == "ack"
    calls = _before_commit(monkeypatch, _nothing)
    moves = [{"kind": "move_box", "object_id": oid, "x": 2, "y": 3, "w": 5, "h": 5} for oid in many]
    for held in (True, False):  # checked against held versions, then read in one join
        _path(labeler, held)
        assert (await labeler.op({"kind": "batch", "ops": moves}, f"moves-{held}"))["type"] == "ack"
    assert calls.outcomes == ["ok", "ok"] and calls.reads == 1
    before = await _state(labeler)
    assert [o[2] for o in before[1]] == [3] * 100  # created, moved twice
    stale = {oid: 3 for oid in many} | {"m050": 2}  # one object changed since it was "read"
    present = {f"new{i}": None for i in range(99)} | {"m007": None}  # one "new" id exists
    now = utcnow()
    for expected in (stale, present):
        async with driver_connection(labeler.app.state.engine) as driver:
            with pytest.raises(asyncpg.PostgresError) as caught:
                await driver.fetchrow(
                    _fast_op._COMMIT, labeler.conn.user_id, labeler.project, labeler.image,
                    labeler.token, now, f"x{len(expected)}", json.dumps(expected), "manual",
                    "[]", "[]", [], 0, None, None, "batch", json.dumps({"kind": "batch", "ops": []}),
                    None, None, "edit", now, None, None, None, None)
        assert caught.value.sqlstate == _fast_op.CONFLICT_SQLSTATE
        assert ("m050" if expected is stale else "m007") in str(caught.value)
    assert await _state(labeler) == before  # seq, objects and log untouched


async def test_a_big_batchs_new_ids_are_checked_by_the_primary_key(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 64 new objects (here one over, so the server's and the function's thresholds must
    agree) the commit leaves their "must not exist" to the primary key (migration 0019): an id that exists after all is the same conflict, nothing is written,
    and the op then takes the transaction path, which names what is wrong."""
    assert (await labeler.op(box(1), "c1"))["type"] == "ack"
    before = await _state(labeler)
    creates: list[dict[str, Any]] = [
        {"kind": "create", "object": {"id": oid, "type": "bbox", "label": "car",
                                      "geometry": {"x": i % 50, "y": 1, "w": 5, "h": 5}}}
        for i, oid in enumerate([*(f"n{i:03d}" for i in range(_fast_op.FEW_EXPECTED)), "b"])]
    inserts = [{"id": op["object"]["id"], "version": 1, "type": "bbox", "label": "car",
                "geometry": op["object"]["geometry"], "keypoints": [], "attributes": {},
                "rpy": None, "occluded": False, "z": 0} for op in creates]
    assert len(inserts) > _fast_op.FEW_EXPECTED
    now = utcnow()
    async with driver_connection(labeler.app.state.engine) as driver:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await driver.fetchrow(
                _fast_op._COMMIT, labeler.conn.user_id, labeler.project, labeler.image,
                labeler.token, now, "big", "{}", "manual", "[]", "[]", insert_columns(inserts),
                len(inserts), None, None, "batch", json.dumps({"kind": "batch", "ops": creates}),
                None, None, "edit", now, None, None, None, None)
    assert caught.value.sqlstate == _fast_op.CONFLICT_SQLSTATE
    assert await _state(labeler) == before  # seq, objects and log untouched
    # Through the hub: the held state believes "b" absent, the commit finds it, the
    # transaction path refuses the op.
    _path(labeler, True)
    held = labeler.conn.held
    assert held is not None
    held.objects.pop("b", None)
    held.parsed.pop("b", None)
    calls = _before_commit(monkeypatch, _nothing)
    refused = await labeler.op({"kind": "batch", "ops": creates}, "big-op")
    assert refused["type"] == "error", refused
    assert calls.outcomes == ["conflict"]
    assert await _state(labeler) == before
