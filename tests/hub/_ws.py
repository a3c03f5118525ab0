"""A tiny raw protocol client for tests: request/ack by id, events collected in order."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

# Only a hang should reach this: a loaded machine answers 50 concurrent next_image requests in
# well over 10 s (their lease grants queue on the project's seq row), which is slow, not wrong.
TIMEOUT = 60.0


class WsClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.error: Exception | None = None

    @classmethod
    async def open(cls, url: str, token: str, **kwargs: Any) -> WsClient:
        options: dict[str, Any] = {"compression": None, "max_size": 2**24, **kwargs}
        ws = await connect(f"{url}?token={token}", **options)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                fut = self._pending.pop(msg.get("id"), None) if msg.get("type") in ("ack", "error") else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                else:
                    self.events.put_nowait(msg)
        except Exception as exc:  # the socket closed; close_code says how
            self.error = exc
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        rid = fields.pop("id", None) or f"r{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.ws.send(json.dumps({"type": type_, "id": rid, **fields}))
        return await asyncio.wait_for(fut, TIMEOUT)

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def event(self, type_: str | None = None, **match: Any) -> dict[str, Any]:
        """The next event of this type (earlier events of other types are dropped)."""
        while True:
            msg = await asyncio.wait_for(self.events.get(), TIMEOUT)
            if (type_ is None or msg.get("type") == type_) and all(msg.get(k) == v for k, v in match.items()):
                return msg

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
