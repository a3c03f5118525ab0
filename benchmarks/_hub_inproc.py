"""In-process parts of ``benchmarks.hub``: the op handler's commit path, and its raw baseline.

The socket's rate limit (100 messages/s per connection) and the single lock holder per image
would cap a socket-driven durable benchmark far below what the database can take, so these run
the hub's own ``Handlers.op`` (privilege, lock and geometry checks, materialized objects, op log
row, commit, ack) in this process against the same PostgreSQL database as the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from server.app import create_app
from server.hub.connection import Connection
from server.protocol import Hello, Op, OpenImage, ReleaseImage
from server.settings import Settings


@asynccontextmanager
async def _app(env: dict[str, str]) -> AsyncIterator[Any]:
    settings = Settings(database_url=env["LABELHUB_DATABASE_URL"],
                        data_dir=Path(env["LABELHUB_DATA_DIR"]),
                        secret_key=env["LABELHUB_SECRET_KEY"])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def _drain(conn: Connection) -> list[dict[str, Any]]:
    frames = []
    while conn.backlog:  # no websocket: every frame stays in the backlog
        frames.append(json.loads(conn.backlog.popleft()))
    return frames


async def _labeler(app: Any, project: int, image: int) -> tuple[Connection, int]:
    """A connection of the site admin (user 1) holding ``image``; (connection, lock token)."""
    conn = Connection(websocket=None, user_id=1, user_name="bench", is_admin=True)  # type: ignore[arg-type]
    handlers = app.state.handlers
    await handlers.hello(conn, Hello(type="hello", id="h", project=project))
    await handlers.open_image(conn, OpenImage(type="open_image", id="o", image=image))
    ack = next(f for f in _drain(conn) if f.get("id") == "o")
    if ack["type"] != "ack":
        raise RuntimeError(f"open_image: {ack}")
    return conn, int(ack["lock"]["token"])


async def _op(app: Any, conn: Connection, image: int, token: int, n: int,
              op: dict[str, Any]) -> None:
    await app.state.handlers.op(conn, Op(type="op", id=n, image=image, token=token,
                                         client_op_id=f"bench-{image}-{n}-{time.time_ns()}", op=op))
    for frame in _drain(conn):
        if frame.get("type") == "error":
            raise RuntimeError(f"op failed: {frame}")


def _box(oid: str, x: float) -> dict[str, Any]:
    return {"id": oid, "type": "bbox", "label": "car",
            "geometry": {"x": x, "y": 1.0, "w": 8.0, "h": 8.0}}


async def durable_ops(env: dict[str, str], project: int, images: list[int], seconds: float) -> float:
    """Committed ops per second, one labeler per image, all at once."""
    async with _app(env) as app:
        labelers = [await _labeler(app, project, image) for image in images]
        for (conn, token), image in zip(labelers, images, strict=True):
            await _op(app, conn, image, token, 0, {"kind": "create", "object": _box("d", 1)})
        done = 0
        stop = time.perf_counter() + seconds

        async def work(conn: Connection, token: int, image: int) -> None:
            nonlocal done
            n = 1
            while time.perf_counter() < stop:
                await _op(app, conn, image, token, n, {"kind": "move_box", "object_id": "d",
                                                       "x": 1 + n % 40, "y": 1, "w": 8, "h": 8})
                n += 1
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(work(c, t, i) for (c, t), i in zip(labelers, images, strict=True)))
        return done / (time.perf_counter() - t0)


async def raw_appends(db_url: str, connections: int, seconds: float) -> float:
    """The floor: UPDATE head ... RETURNING seq + INSERT the row, one transaction each."""
    dsn = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    setup = await asyncpg.connect(dsn)
    await setup.execute("CREATE TABLE IF NOT EXISTS bench_head (id int PRIMARY KEY, seq bigint)")
    await setup.execute("CREATE TABLE IF NOT EXISTS bench_log (project int, seq bigint, "
                        "op jsonb, PRIMARY KEY (project, seq))")
    await setup.execute("INSERT INTO bench_head VALUES (1, 0) ON CONFLICT DO NOTHING")
    await setup.close()
    payload = json.dumps({"kind": "move_box", "object_id": "d", "x": 5, "y": 1, "w": 8, "h": 8})
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    done = 0
    stop = time.perf_counter() + seconds

    async def work(conn: asyncpg.Connection) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with conn.transaction():
                seq = await conn.fetchval("UPDATE bench_head SET seq = seq + 1 WHERE id = 1 "
                                          "RETURNING seq")
                await conn.execute("INSERT INTO bench_log VALUES (1, $1, $2::jsonb)", seq, payload)
            done += 1

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(work(c) for c in conns))
        return done / (time.perf_counter() - t0)
    finally:
        for conn in conns:
            await conn.close()


async def seed_and_time_edits(env: dict[str, str], project: int, image: int, objects: int,
                              edits: int) -> list[float]:
    """Fill ``image`` with ``objects`` boxes (batches), then time ``edits`` single moves (ms)."""
    async with _app(env) as app:
        conn, token = await _labeler(app, project, image)
        chunk = 1_000
        for start in range(0, objects, chunk):
            ops = [{"kind": "create", "object": _box(f"o{i}", 1 + i % 500)}
                   for i in range(start, min(objects, start + chunk))]
            await _op(app, conn, image, token, start, {"kind": "batch", "ops": ops})
        rng = random.Random(7)
        times = []
        for n in range(edits):
            target = f"o{rng.randrange(objects)}"
            op = {"kind": "move_box", "object_id": target, "x": 1 + n % 300, "y": 2, "w": 8, "h": 8}
            t0 = time.perf_counter()
            await _op(app, conn, image, token, objects + n, op)
            times.append((time.perf_counter() - t0) * 1000)
        await app.state.handlers.release_image(
            conn, ReleaseImage(type="release_image", id="r", image=image))
        return times
