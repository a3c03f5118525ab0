"""One client connection: who it is, what it watches, and a bounded queue of frames to send.

The hub only ever calls :meth:`Connection.send`, which never waits: a client that lets its queue
fill up is dropped (close code 4008) and resumes from its last seq on a new connection.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.protocol import CLOSE_TOO_SLOW

SEND_QUEUE_FRAMES = 1_000
OWN_OPS_REMEMBERED = 1_000
CLOSE_TIMEOUT = 5.0  # seconds to get the close frame out to a client that stopped reading


class RateLimit:
    """A token bucket: ``rate`` messages a second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    user_id: int
    user_name: str
    is_admin: bool
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    project_id: int | None = None
    privileges: int = 0
    subscriptions: dict[int, int] = field(default_factory=dict)  # image -> snapshot seq
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=SEND_QUEUE_FRAMES))
    own_ops: deque[str] = field(default_factory=lambda: deque(maxlen=OWN_OPS_REMEMBERED))
    limiter: RateLimit = field(default_factory=lambda: RateLimit(rate=100.0, burst=300.0))
    last_cursor: float = 0.0
    dropped: bool = False
    close_reason: str = ""
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def with_queue(cls, websocket: WebSocket, user_id: int, user_name: str, is_admin: bool,
                   frames: int) -> Connection:
        return cls(websocket, user_id, user_name, is_admin, queue=asyncio.Queue(maxsize=frames))

    def send(self, frame: str) -> None:
        """Queue a frame without waiting; overflow drops the client."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True
            self.close_reason = "too far behind; reconnect and resume from your last seq"
            self.overflowed.set()

    async def writer(self) -> None:
        """Drain the queue onto the socket until told to stop."""
        try:
            while True:
                frame = await self.queue.get()
                if frame is None or self.dropped:
                    return
                await self.websocket.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return

    async def close_too_slow(self) -> None:
        """Tell a dropped client why; give up if it is not even reading the close frame."""
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        with suppress(RuntimeError, OSError, TimeoutError, WebSocketDisconnect):
            await asyncio.wait_for(
                self.websocket.close(code=CLOSE_TOO_SLOW, reason=self.close_reason), CLOSE_TIMEOUT)

    def stop(self) -> None:
        with suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
