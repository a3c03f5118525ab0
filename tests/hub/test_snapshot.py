"""The database-built objects array of a snapshot is exactly the wire form of each row (with
its source)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from server._object_store import row_to_wire
from server.hub import _snapshot
from server.models import LabelObjectRow
from server.protocol import ImageLabelOut, Snapshot
from tests.hub.conftest import LiveServer, Team


def _objects() -> list[dict[str, Any]]:
    return [
        {"id": "plain", "type": "bbox", "geometry": {"x": 1.5, "y": 2, "w": 3.25, "h": 4}},
        {"id": "rich", "type": "polygon", "label": "roof", "occluded": True, "z": 3,
         "geometry": {"parts": [{"exterior": [[1, 1], [9, 1], [9, 9], [1, 9]],
                                 "holes": [[[3, 3], [5, 3], [5, 5], [3, 5]]]}]},
         "keypoints": [{"name": "tip", "x": 2, "y": 2, "visible": True}],
         "attributes": {"color": "red", "count": 2, "ok": False, "ünïcode": "ß \"q\""},
         "rpy": {"roll": 1.0, "pitch": -2.5, "yaw": 90}},
        {"id": "line", "type": "polyline", "label": "edge \"β\" \\\\ 1", "z": 1,
         "geometry": {"points": [[0, 0], [10.125, 5]]}},
        {"id": "dot", "type": "point", "geometry": {"x": 4, "y": 5}},
    ]


async def test_objects_json_equals_the_rows_wire_form(server: LiveServer, team: Team) -> None:
    image = team.images[0]
    ws = await server.connect(team.owner)
    await ws.request("hello", project=team.project_id)
    token = (await ws.request("open_image", image=image))["lock"]["token"]
    for i, obj in enumerate(_objects()):
        reply = await ws.request("op", image=image, token=token, client_op_id=f"s{i}",
                                 op={"kind": "create", "object": obj})
        assert reply["type"] == "ack", reply
    sessions = server.app.state.sessions  # type: ignore[attr-defined]
    async with sessions() as session:
        rows = (await session.execute(select(LabelObjectRow).where(LabelObjectRow.image_id == image)
                                      .order_by(LabelObjectRow.z, LabelObjectRow.created_at))).scalars().all()
        built = json.loads(await _snapshot.objects_json(session, image))
        empty = json.loads(await _snapshot.objects_json(session, team.images[1]))
    assert built == [row_to_wire(r) for r in rows]
    assert {o["source"] for o in built} == {"manual"}  # a person's objects
    assert [o["id"] for o in built] == ["plain", "dot", "line", "rich"]  # z order, then creation
    assert built[3]["occluded"] is True and built[0]["occluded"] is False
    assert built[0]["keypoints"] == [] and built[0]["attributes"] == {} and built[0]["rpy"] is None
    assert empty == []
    await ws.close()


def test_frame_splices_the_objects_into_the_encoded_head() -> None:
    head = Snapshot(image=7, seq=9, objects=[], labels=[ImageLabelOut(label='"objects":[]', is_default=True, source="manual")])
    frame = json.loads(_snapshot.frame(head, '[{"id": "a"}]'))
    assert frame["objects"] == [{"id": "a"}]
    assert frame["labels"][0]["label"] == '"objects":[]'
    assert frame["type"] == "snapshot" and frame["seq"] == 9


async def test_a_snapshot_carries_labels_lock_and_seq(server: LiveServer, team: Team) -> None:
    """On PostgreSQL the snapshot is one statement (``_snapshot.read_pg``); on SQLite one
    transaction of reads (``Handlers.snapshot``). Both give this; on PostgreSQL both paths run
    and must give the same frame."""
    image = team.images[0]
    ws = await server.connect(team.owner)
    await ws.request("hello", project=team.project_id)
    token = (await ws.request("open_image", image=image))["lock"]["token"]
    for i, op in enumerate([{"kind": "add_label", "label": "cat"}, {"kind": "add_label", "label": "dog"},
                            {"kind": "create", "object": _objects()[1]}]):
        assert (await ws.request("op", image=image, token=token, client_op_id=f"l{i}", op=op))["type"] == "ack"
    watcher = await server.connect(team.owner)
    await watcher.request("hello", project=team.project_id)
    ack = await watcher.request("subscribe", image=image)
    snap = await watcher.event("snapshot")
    assert snap["seq"] == ack["seq"] and snap["image"] == image
    assert [(lab["label"], lab["is_default"]) for lab in snap["labels"]] == [("cat", True), ("dog", False)]  # the first label added is the default
    assert snap["lock"]["holder"] == {"id": team.owner.user["id"], "name": team.owner.user["name"]}
    assert [o["id"] for o in snap["objects"]] == ["rich"]
    assert (await watcher.request("subscribe", image=10_000))["code"] == "not_found"

    app = server.app
    if app.state.handlers.postgresql:
        from server.db import driver_connection
        from server.models import Image

        async with driver_connection(app.state.engine) as driver:
            row = await _snapshot.read_pg(driver, image)
        assert row is not None
        one_statement = json.loads(app.state.handlers._snapshot_frame(image, row).frame)
        async with app.state.sessions() as session, session.begin():
            image_row = await session.get(Image, image)
            assert image_row is not None
            reads = json.loads((await app.state.handlers.snapshot(session, image_row)).frame)
        assert one_statement == reads == snap
    await ws.close()
    await watcher.close()
