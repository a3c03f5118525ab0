"""The baselines of ``benchmarks.hub``: a bare ``websockets`` server doing the same fan-out.

``python -m benchmarks._raw_broadcast PORT [--commit DSN]``. Every text frame is answered to its
sender with a one-line ack and relayed to every other connection with ``websockets.broadcast`` —
no auth, no JSON parsing: the floor the hub's fan-out is compared with. With ``--commit`` each
frame is first written to PostgreSQL as one durable autocommitted INSERT (asyncpg), the floor for
"edit -> peer latency, commit included" on this machine's disk.

It runs on the event loop ``labelhub serve`` runs on (uvloop when installed), so the comparison
is of the servers, not of their loops.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg
from websockets.asyncio.server import ServerConnection, broadcast, serve

from benchmarks._loop import runner

CLIENTS: set[ServerConnection] = set()


def handler_for(database: Any) -> Any:
    async def handler(ws: ServerConnection) -> None:
        CLIENTS.add(ws)
        try:
            async for message in ws:
                if database is not None:
                    await database.execute("INSERT INTO raw_bench_log (op) VALUES ($1)", message)
                await ws.send('{"type":"ack"}')
                broadcast(CLIENTS - {ws}, message)
        finally:
            CLIENTS.discard(ws)
    return handler


async def main(port: int, dsn: str | None) -> None:
    database = None
    if dsn is not None:
        database = await asyncpg.connect(dsn)
        await database.execute("CREATE TABLE IF NOT EXISTS raw_bench_log "
                               "(seq bigserial PRIMARY KEY, op text)")
    async with serve(handler_for(database), "127.0.0.1", port, compression=None,
                     max_size=64 * 1024, ping_interval=20, ping_timeout=20) as server:
        print("listening", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks._raw_broadcast")
    parser.add_argument("port", type=int)
    parser.add_argument("--commit", metavar="DSN", help="write each frame to PostgreSQL first")
    args = parser.parse_args(sys.argv[1:])
    runner()(main(args.port, args.commit))
