"""A labeler doing the heaviest legal pixel edits on a 100 MP image, in a loop, for
``benchmarks.hub`` (phase ``heavy``): create a polygon over most of the image, rasterize it,
brush the longest stroke of the largest radius the cost limit allows, flood-fill the background,
delete it — each op awaited before the next, over a plain ``websockets`` connection."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from websockets.asyncio.client import ClientConnection

from benchmarks import _hub_load as load
from server.geometry import parse_object, parse_op
from server.geometry.cost import max_op_cost, op_cost
from server.geometry.rle import counts_to_string

SIDE = 10_000  # 100 MP, the largest image the server accepts
#: A control for the heavy phase (``python -c STREAM "nice 10"|SCHED_IDLE``): copy 100 MB
#: buffers in a loop, the memory traffic of pixel work on a 100 MP mask, with no server at all.
STREAM = """import os, sys
import numpy as np
if sys.argv[1] == "SCHED_IDLE":
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
else:
    os.nice(10)
a, b = np.ones(SIDE * SIDE, np.uint8), np.zeros(SIDE * SIDE, np.uint8)
while True:
    np.copyto(b, a)
    np.copyto(a, b)
""".replace("SIDE", str(SIDE))
RADIUS = 500.0  # the largest brush radius


def png_100mp() -> bytes:
    img = np.full((SIDE, SIDE, 3), 60, np.uint8)
    cv2.rectangle(img, (2000, 2000), (8000, 7000), (40, 180, 220), -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _polygon(oid: str) -> dict[str, Any]:
    return {"id": oid, "type": "polygon", "label": "heavy", "geometry": {"parts": [{"exterior": [
        [100, 100], [SIDE - 100, 150], [SIDE - 200, SIDE - 100], [150, SIDE - 200]]}]}}


def heaviest_stroke(oid: str) -> dict[str, Any]:
    """A horizontal stroke at ``RADIUS`` with points 10 px apart, as long as the limit allows."""
    bitmap = parse_object({"id": oid, "type": "bitmap", "label": "heavy", "geometry": {
        "rle": {"size": [SIDE, SIDE], "counts": counts_to_string([SIDE * SIDE])}}})
    best: dict[str, Any] = {}
    lo, hi = 2, 5_000
    while lo <= hi:  # the longest stroke under the limit (the cost grows with its length)
        n = (lo + hi) // 2
        op = {"kind": "brush", "object_id": oid, "mode": "draw", "radius": RADIUS,
              "points": [[600 + 10 * i, SIDE // 2] for i in range(n)]}
        if op_cost(parse_op(op), {oid: bitmap}, SIDE, SIDE) <= max_op_cost(SIDE, SIDE):
            best, lo = op, n + 1
        else:
            hi = n - 1
    return best


@dataclass
class Heavy:
    """What the heavy labeler got done: seconds per op kind, errors."""

    times: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> str:
        parts = [f"{kind} {len(t)} x {sum(t) / len(t):.1f} s" for kind, t in self.times.items() if t]
        return ", ".join(parts) + (f"; errors: {', '.join(self.errors[:3])}" if self.errors else "")


async def _request(ws: ClientConnection, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("id") == msg["id"]:
            return dict(reply)


async def labeler(url: str, project: int, image: int, result: Heavy,
                  stop: asyncio.Event) -> None:
    """Loop the heavy ops until ``stop``; ``result.started`` is set after the first round (the
    worker pool is warm then)."""
    ws = await load.open_ws(url)
    try:
        await _request(ws, {"type": "hello", "id": "h", "project": project})
        token = int((await _request(ws, {"type": "open_image", "id": "o", "image": image}))
                    ["lock"]["token"])
        stroke = heaviest_stroke("x")
        for n in itertools.count():
            oid = f"heavy{n}"
            ops = [("create", {"kind": "create", "object": _polygon(oid)}),
                   ("rasterize", {"kind": "rasterize", "object_id": oid}),
                   ("brush", {**stroke, "object_id": oid}),
                   ("fill", {"kind": "fill", "object_id": oid, "x": 5, "y": 5}),
                   ("delete", {"kind": "delete", "object_id": oid})]
            for i, (kind, op) in enumerate(ops):
                t0 = time.perf_counter()
                reply = await _request(ws, {"type": "op", "id": f"{n}.{i}", "image": image,
                                            "token": token, "client_op_id": f"heavy-{n}-{i}",
                                            "op": op})
                if reply["type"] != "ack":
                    result.errors.append(f"{kind}: {reply.get('code')}")
                elif kind not in ("create", "delete"):
                    result.times.setdefault(kind, []).append(time.perf_counter() - t0)
                # Renew the lease between ops, as the web app's heartbeat does.
                await _request(ws, {"type": "heartbeat", "id": f"hb{n}.{i}"})
            result.started.set()
            if stop.is_set():
                return
    finally:
        await ws.close()
