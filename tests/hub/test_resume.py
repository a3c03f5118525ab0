"""Resume: snapshot at seq n + the ops after n = the snapshot now."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from server._sources import strip
from server.classification import apply_label_op, parse_label_op, parse_state
from server.db import transaction
from server.geometry import Policy, edit, object_to_dict, parse_object
from server.models import OpLogEntry
from tests.hub.conftest import LiveServer, Team


def replay(snapshot: dict[str, Any], ops: list[dict[str, Any]], width: int, height: int) -> tuple[Any, Any]:
    """What a client does: apply each op, then the sources it names (docs/protocol.md)."""
    objects = {o["id"]: parse_object(_geometry(o)) for o in snapshot["objects"]}
    sources = {o["id"]: o["source"] for o in snapshot["objects"]}
    labels = list(parse_state(snapshot["labels"]))
    policy = Policy(image_width=width, image_height=height, allow_outside=True)
    for event in ops:
        op, named = strip(event["op"])
        if op["kind"] in ("add_label", "remove_label", "set_default_label", "set_labels"):
            labels, _ = apply_label_op(labels, parse_label_op(op), event["user"])
            continue
        result = edit(objects, op, policy)
        for oid, obj in result.changes.items():
            if obj is None:
                objects.pop(oid, None)
                sources.pop(oid, None)
            else:
                if oid not in objects:  # created: without a "source" it is "manual"
                    sources[oid] = "manual"
                objects[oid] = obj
        sources.update(named)
    return ({k: {**object_to_dict(v), "source": sources[k]} for k, v in objects.items()},
            [(s.label, s.is_default) for s in labels])


def _geometry(o: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in o.items() if k != "source"}


def state_of(snapshot: dict[str, Any]) -> tuple[Any, Any]:
    return ({o["id"]: {**object_to_dict(parse_object(_geometry(o))), "source": o["source"]}
             for o in snapshot["objects"]},
            [(s["label"], s["is_default"]) for s in snapshot["labels"]])


def square(oid: str, x: float) -> dict[str, Any]:
    return {"kind": "create", "object": {"id": oid, "type": "polygon", "label": "roof", "geometry": {
        "parts": [{"exterior": [[x, 2], [x + 10, 2], [x + 10, 12], [x, 12]], "holes": []}]}}}


async def test_snapshot_plus_later_ops_equals_snapshot_now(server: LiveServer, team: Team) -> None:
    image = team.images[0]
    editor = await server.connect(team.owner)
    await editor.request("hello", project=team.project_id)
    token = (await editor.request("open_image", image=image))["lock"]["token"]
    n = 0

    async def op(body: dict[str, Any]) -> int:
        nonlocal n
        n += 1
        ack = await editor.request("op", image=image, token=token, client_op_id=f"e{n}", op=body)
        assert ack["type"] == "ack", ack
        return int(ack["seq"])

    await op(square("a", 1))
    await op({"kind": "add_label", "label": "house"})
    watcher = await server.connect(team.owner)
    await watcher.request("hello", project=team.project_id)
    await watcher.request("subscribe", image=image)
    old = await watcher.event("snapshot", image=image)
    await watcher.close()
    # Edits while the watcher is away.
    await op({"kind": "move_vertex", "object_id": "a", "part": 0, "hole": None, "index": 1, "x": 14, "y": 1})
    await op(square("b", 20))
    await op({"kind": "add_label", "label": "garden"})
    await op({"kind": "set_default_label", "label": "garden"})
    await op({"kind": "set_label", "object_id": "b", "label": "shed"})
    await op({"kind": "delete", "object_id": "a"})
    back = await server.connect(team.owner)
    ack = await back.request("hello", project=team.project_id, since=old["seq"], images=[image])
    replayed = []
    while len(replayed) < 6:
        event = await back.event("op", image=image)
        replayed.append(event)
    assert [e["seq"] for e in replayed] == sorted(e["seq"] for e in replayed)
    assert replayed[-1]["seq"] <= ack["seq"]
    await back.request("subscribe", image=image)
    now = await back.event("snapshot", image=image)
    assert replay(old, replayed, 64, 48) == state_of(now)
    await editor.close()
    await back.close()


async def test_undo_redo_through_the_log_seen_live_and_after_reload(server: LiveServer, team: Team) -> None:
    image = team.images[1]
    editor = await server.connect(team.owner)
    watcher = await server.connect(team.owner)
    await editor.request("hello", project=team.project_id)
    await watcher.request("hello", project=team.project_id)
    token = (await editor.request("open_image", image=image))["lock"]["token"]
    await watcher.request("subscribe", image=image)
    await editor.request("op", image=image, token=token, client_op_id="u1", op=square("s", 3))
    assert (await watcher.event("op", image=image))["op"]["kind"] == "create"
    undone = await editor.request("undo", image=image, token=token)
    assert undone["type"] == "ack" and undone["op"] == {"kind": "delete", "object_id": "s"}
    live = await watcher.event("op", image=image)
    assert live["origin"] == "undo" and live["op"]["kind"] == "delete"
    assert (await editor.request("undo", image=image, token=token))["code"] == "nothing_to_undo"
    # A reload (new connection, new lock) can still redo: the stacks come from the log.
    await editor.close()
    again = await server.connect(team.owner)
    await again.request("hello", project=team.project_id)
    token2 = (await again.request("open_image", image=image))["lock"]["token"]
    redone = await again.request("redo", image=image, token=token2)
    assert redone["type"] == "ack" and redone["op"]["kind"] == "create"
    snap_conn = await server.connect(team.owner)
    await snap_conn.request("hello", project=team.project_id)
    await snap_conn.request("subscribe", image=image)
    snap = await snap_conn.event("snapshot", image=image)
    assert [o["id"] for o in snap["objects"]] == ["s"]
    for c in (watcher, again, snap_conn):
        await c.close()


async def test_resuming_from_before_a_pruned_log_gets_a_reset_and_a_snapshot(server: LiveServer, team: Team) -> None:
    """The log is kept whole (docs/api.md); an operator who prunes it by hand breaks no client."""
    image = team.images[0]
    editor = await server.connect(team.owner)
    await editor.request("hello", project=team.project_id)
    token = (await editor.request("open_image", image=image))["lock"]["token"]
    seqs = [(await editor.request("op", image=image, token=token, client_op_id=f"p{i}",
                                  op=square(f"s{i}", i)))["seq"] for i in range(3)]
    async with transaction(server.app.state.sessions) as session:
        await session.execute(delete(OpLogEntry).where(OpLogEntry.project_id == team.project_id,
                                                       OpLogEntry.seq <= seqs[1]))
    late = await server.connect(team.owner)
    ack = await late.request("hello", project=team.project_id, since=seqs[0] - 1, images=[image])
    assert ack["type"] == "ack"
    assert (await late.event())["type"] == "reset"
    snap = await late.event("snapshot", image=image)
    assert sorted(o["id"] for o in snap["objects"]) == ["s0", "s1", "s2"]
    for c in (editor, late):
        await c.close()
