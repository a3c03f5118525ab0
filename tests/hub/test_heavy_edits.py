"""Heavy pixel edits over the socket (issue 15, F3): refused over the image's cost limit, applied
in the worker pool (server/offload.py) when legal, ``busy`` when the pool is full — an error
naming the request, nothing applied, the socket open. Both databases (on PostgreSQL the op
takes the fast path, server/hub/_fast_op.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server import offload
from server.geometry import Policy, edit, parse_object
from server.geometry.rle import rle_encode
from server.settings import Settings
from tests.conftest import Api, make_project, make_settings
from tests.hub._ws import WsClient
from tests.hub.conftest import LiveServer, png
from tests.server.test_offload import Gate, wait_for_pipe

W, H = 1000, 800


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # One worker, no queue: a second heavy job is refused at once.
    return make_settings(database_url, tmp_path / "data", offload_workers=1, offload_queue=0)


def _mask() -> dict[str, Any]:
    m = np.zeros((H, W), bool)
    m[100:300, 200:600] = True
    return rle_encode(m)


def _bitmap() -> dict[str, Any]:
    return {"id": "m", "type": "bitmap", "label": "cell", "geometry": {"rle": _mask()}}


class Editor:
    def __init__(self, ws: WsClient, image: int, token: int) -> None:
        self.ws, self.image, self.token = ws, image, token

    async def op(self, op: dict[str, Any], client_op_id: str) -> dict[str, Any]:
        return await self.ws.request("op", image=self.image, token=self.token,
                                     client_op_id=client_op_id, op=op)

    async def objects(self) -> dict[str, Any]:
        """The image's objects, from a fresh snapshot."""
        await self.ws.request("subscribe", image=self.image)
        snap = await self.ws.event("snapshot", image=self.image)
        return {o["id"]: o for o in snap["objects"]}


@pytest.fixture
async def editor(server: LiveServer, admin: Api) -> Any:
    project = await make_project(admin)
    files = [("files", ("big.png", png(1, (W, H)), "image/png"))]
    resp = await admin.client.post(f"/api/v1/projects/{project}/images", files=files)
    image = resp.json()["results"][0]["image"]["id"]
    ws = await server.connect(admin)
    await ws.request("hello", project=project)
    opened = await ws.request("open_image", image=image)
    await ws.event("snapshot", image=image)
    ed = Editor(ws, image, int(opened["lock"]["token"]))
    assert (await ed.op({"kind": "create", "object": _bitmap()}, "create"))["type"] == "ack"
    yield ed
    await ws.close()


def _stroke(n: int, step: float, radius: float) -> dict[str, Any]:
    xs = 100 + np.arange(n) * step
    pts = np.stack([xs % (W - 200) + 100, 400 + 150 * np.sin(xs / 90)], 1).round().astype(int)
    return {"kind": "brush", "object_id": "m", "mode": "draw", "points": pts.tolist(),
            "radius": radius}


async def test_an_over_limit_brush_is_refused_and_changes_nothing(editor: Editor) -> None:
    before = await editor.objects()
    stroke = _stroke(4000, 3, 500)  # the F3 op: 4,000 points at radius 500
    refused = await editor.op(stroke, "too-much")
    assert refused["type"] == "error" and refused["code"] == "too_costly", refused
    assert "at most" in refused["message"]
    assert await editor.objects() == before
    renamed = await editor.op({"kind": "set_label", "object_id": "m", "label": "nucleus"}, "ok")
    assert renamed["type"] == "ack"  # the socket stayed open and usable


async def test_a_heavy_legal_brush_runs_in_the_pool_and_equals_the_inline_result(
        editor: Editor) -> None:
    stroke = _stroke(200, 4, 60)
    pool = offload.get()
    before = pool.submitted
    assert (await editor.op(stroke, "paint"))["type"] == "ack"
    assert pool.submitted == before + 1
    inline = edit({"m": parse_object(_bitmap())}, stroke, Policy(image_width=W, image_height=H))
    stored = (await editor.objects())["m"]
    assert stored["geometry"] == inline.changes["m"].model_dump(mode="json")["geometry"]
    assert stored["geometry"]["rle"] != _mask()


async def test_busy_when_the_pool_is_full_then_the_resend_lands_once(
        editor: Editor, tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    pool = offload.get()
    holder = asyncio.create_task(pool.run(wait_for_pipe, gate.path, cost=pool.inline_cost))
    await asyncio.sleep(0)  # the holder takes the only worker
    assert pool.pending == 1
    before = await editor.objects()
    stroke = _stroke(50, 4, 40)
    busy = await editor.op(stroke, "paint-once")
    assert busy["type"] == "error" and busy["code"] == "busy", busy
    assert await editor.objects() == before
    cheap = await editor.op({"kind": "set_label", "object_id": "m", "label": "still"}, "cheap")
    assert cheap["type"] == "ack"  # cheap edits never wait for the pool
    await gate.open()
    await holder
    landed = await editor.op(stroke, "paint-once")
    assert landed["type"] == "ack" and not landed.get("duplicate")
    again = await editor.op(stroke, "paint-once")
    assert again["type"] == "ack" and again.get("duplicate") and again["seq"] == landed["seq"]
