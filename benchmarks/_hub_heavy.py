"""A labeler doing the heaviest legal pixel edits on a 100 MP image, in a loop, for
``benchmarks.hub`` (phase ``heavy``): create a polygon over most of the image, rasterize it,
brush the longest stroke of the largest radius the cost limit allows, flood-fill the background,
delete it — each op awaited before the next, over a plain ``websockets`` connection."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
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


CASES = ("idle", "heavy", "copy loop, nice 10", "copy loop, SCHED_IDLE")


async def rounds(target: load.Target, pid: int, ws_url: str, project: int, big: int,
                 watched: int, seconds: float, n: int) -> tuple[dict[str, list[load.Fanout]], Heavy]:
    """``n`` rounds of four windows of edit -> peer latency at 200 watchers of image ``watched``
    (see :data:`CASES`): idle, while :func:`labeler` loops on image ``big``, and beside
    :data:`STREAM` at nice 10 and under SCHED_IDLE. The windows by case, and the labeler's tally."""
    runs: dict[str, list[load.Fanout]] = {case: [] for case in CASES}
    result = Heavy()

    async def window(settle: bool) -> load.Fanout:
        return await load.fanout(target, pid, watchers=200, images=[watched], rate=50,
                                 seconds=seconds, latency=True, settle_first=settle)

    for _ in range(n):
        runs["idle"].append(await window(True))
        stop = asyncio.Event()
        result.started.clear()
        worker = asyncio.create_task(labeler(ws_url, project, big, result, stop))
        await result.started.wait()  # one round done: the pool is warm
        runs["heavy"].append(await window(False))
        stop.set()
        await worker
        for policy in ("nice 10", "SCHED_IDLE"):
            stream = await asyncio.create_subprocess_exec(sys.executable, "-c", STREAM, policy,
                                                          cwd=load.ROOT)
            try:
                runs[f"copy loop, {policy}"].append(await window(False))
            finally:
                stream.kill()
                await stream.wait()
    return runs, result


def summary(runs: list[load.Fanout]) -> str:
    """Median p50 / p99 over the rounds, and each round's p99."""
    p50 = statistics.median(load.percentile(r.latencies_ms, 50) for r in runs)
    p99s = [load.percentile(r.latencies_ms, 99) for r in runs]
    return (f"{p50:.2f} / {statistics.median(p99s):.2f} ms [p99 by round: "
            f"{', '.join(f'{v:.1f}' for v in p99s)}]")
