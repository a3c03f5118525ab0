"""An object op on PostgreSQL in two statements (server/hub/_fast_op.py, migrations 0003 and 0004),
or in one when the connection's previous edit left what it needs (``Held``): what happens when
something changes before the commit. The interleavings are real: the op is applied, then another
real op, release, resend or privilege change lands, then the commit runs."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

from server.db import driver_connection
from server.hub import _fast_op
from server.hub.connection import Connection
from server.models import utcnow
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.hub._fast_op import (
    Labeler,
    _before_commit,
    _nothing,
    _path,
    _sql,
    _state,
    box,
    move,
)
from tests.hub.conftest import upload_images

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"],
                                                            indirect=True)]


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
