"""Big batches on PostgreSQL's fast op path (server/hub/_fast_op.py): past 64 objects the read
and the version check are set statements (migration 0015), and new ids are left to the primary
key (migration 0019). Shared helpers: tests/hub/_fast_op.py."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from server._pg_writes import insert_columns
from server.db import driver_connection
from server.hub import _fast_op
from server.models import utcnow
from tests.hub._fast_op import (
    Labeler,
    _before_commit,
    _nothing,
    _path,
    _state,
    box,
)

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"],
                                                            indirect=True)]


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
    # Read afresh: the read is not even asked for the batch's ids (all creates), so the commit
    # finds "b" the same way and the transaction path names it.
    monkeypatch.undo()
    asked: list[set[str]] = []
    read = _fast_op.read

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        asked.append(set(kwargs["object_ids"]))
        return await read(*args, **kwargs)

    monkeypatch.setattr(_fast_op, "read", recorded)
    calls = _before_commit(monkeypatch, _nothing)
    _path(labeler, False)
    refused = await labeler.op({"kind": "batch", "ops": creates}, "big-op-2")
    assert refused["type"] == "error" and "b" in refused["message"], refused
    assert asked == [set()] and calls.outcomes == ["conflict"]
    assert await _state(labeler) == before
