"""The baseline of ``benchmarks.hub``: a bare ``websockets`` server doing the same fan-out.

``python -m benchmarks._raw_broadcast PORT``. Every text frame is answered to its sender with a
one-line ack and relayed to every other connection with ``websockets.broadcast`` — no auth, no
JSON parsing, no database: the floor the hub's fan-out is compared with.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        async for message in ws:
            await ws.send('{"type":"ack"}')
            broadcast(CLIENTS - {ws}, message)
    finally:
        CLIENTS.discard(ws)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=64 * 1024,
                     ping_interval=20, ping_timeout=20) as server:
        print("listening", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
