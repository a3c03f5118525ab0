"""One client connection: who it is, what it watches, and a bounded backlog of frames to send.

The hub only ever calls :meth:`Connection.send`, which never waits. A frame goes straight onto
the socket when the socket can take it (the common case: no task, no queue, like
``websockets.broadcast``); otherwise it joins a bounded backlog that a writer task drains, and a
client whose backlog fills up is dropped (close code 4008) and resumes from its last seq on a
new connection. An idle connection holds no task of its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from server.protocol import CLOSE_TOO_SLOW, RATE_BURST, RATE_LIMIT
from server.telemetry.metrics import slow_client_dropped

if TYPE_CHECKING:  # _fast_op imports this module
    from server.auth import Credential
    from server.hub._fast_op import Held

SEND_QUEUE_FRAMES = 1_000
OWN_OPS_REMEMBERED = 1_000
CLOSE_TIMEOUT = 5.0  # seconds to get the close frame out to a client that stopped reading
RAW_SEND_KEY = "labelhub.raw_send"
_SANSIO_MODULE = "uvicorn.protocols.websockets.websockets_sansio_impl"
# What the direct path reads on uvicorn's protocol; without any of it, no direct path.
_SANSIO_STATE = ("send", "conn", "transport", "handshake_complete", "close_sent", "disconnected",
                 "initial_response")
_SEND_ERRORS = (WebSocketDisconnect, RuntimeError, OSError)


class RecentIds:
    """The last ``size`` ids appended, for membership tests in constant time (the fan-out asks
    it of the editor's connection on every op; a deque would be scanned end to end)."""

    __slots__ = ("_ids", "_size")

    def __init__(self, size: int) -> None:
        self._ids: dict[str, None] = {}
        self._size = size

    def append(self, value: str) -> None:
        self._ids.pop(value, None)
        self._ids[value] = None
        if len(self._ids) > self._size:
            del self._ids[next(iter(self._ids))]

    def __contains__(self, value: object) -> bool:
        return value in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class RateLimit:
    """A token bucket: ``rate`` messages a second on average, bursts up to ``burst``.
    ``clock``: where its time comes from (tests drive it by hand)."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = burst, clock()

    def allow(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class CaptureSend:
    """ASGI middleware: keep the server's own ``send`` of a websocket in its scope.

    Starlette wraps ``send`` on the way in; :class:`DirectSend` needs the server's callable to
    know whether a write can finish without waiting.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND_KEY] = send
        await self.app(scope, receive, send)


def wire_frame(text: str) -> bytes:
    """One unmasked, unfragmented server text frame: built once per fan-out, written to every
    receiver whose connection uses no extension (the server never negotiates one)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class DirectSend:
    """Write a frame synchronously when uvicorn's socket is writable.

    uvicorn's sans-I/O websocket ``send`` waits only on its ``writable`` event, before it writes
    anything; when that event is set the coroutine runs to its end in one step, so we drive it by
    hand instead of paying for a task switch per frame per watcher. When the connection is open
    and has no extension, the frame goes to the transport serialized by :func:`wire_frame`
    (a fan-out's receivers share one): what ``send`` would have written, without building an
    ASGI message and driving uvicorn's and the websockets protocol's send for it (that cost a
    reply ~20 us of CPU). Other servers get no direct path (``for_scope`` returns ``None``) and
    every frame goes through the writer task.
    """

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._send: Callable[[Any], Awaitable[None]] = protocol.send
        self._writable: asyncio.Event = protocol.writable
        self._plain: bool | None = None  # no extension negotiated; known once the handshake is done

    @classmethod
    def for_scope(cls, scope: Scope) -> DirectSend | None:
        send = scope.get(RAW_SEND_KEY)
        protocol = getattr(send, "__self__", None)
        if send is None or type(protocol).__module__ != _SANSIO_MODULE \
                or not isinstance(getattr(protocol, "writable", None), asyncio.Event) \
                or not all(hasattr(protocol, name) for name in _SANSIO_STATE):
            return None
        return cls(protocol)

    def _open_plain(self) -> bool:
        """Open, handshake done, no close under way, no extension: raw frames may go out.

        Whenever uvicorn leaves the open state it sets ``close_sent`` or closes the transport
        (the test uvicorn itself uses before a ping), so two reads per frame suffice."""
        p = self._protocol
        if self._plain is None:  # checked per frame until the handshake is done, then once
            if not p.handshake_complete or p.initial_response is not None:
                return False
            self._plain = not p.conn.extensions and p.conn.state is State.OPEN
        return self._plain and not p.close_sent and not p.transport.is_closing()

    def try_send(self, frame: str, wire: bytes | None = None) -> bool | None:
        """True: written. False: the socket is backed up, nothing written. None: it failed."""
        if not self._writable.is_set():
            return False
        if self._open_plain():
            self._protocol.transport.write(wire if wire is not None else wire_frame(frame))
            return True
        step = self._send({"type": "websocket.send", "text": frame})
        try:
            step.send(None)  # type: ignore[attr-defined]
        except StopIteration:
            return True
        except _SEND_ERRORS:
            return None
        step.close()  # type: ignore[attr-defined]  # it stopped before writing: queue the frame
        return False


@dataclass(eq=False)
class Connection:
    websocket: WebSocket | None  # None for in-process drivers (benchmarks): frames stay queued
    user_id: int
    user_name: str
    is_admin: bool
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    project_id: int | None = None
    privileges: int = 0
    subscriptions: dict[int, int] = field(default_factory=dict)  # image -> snapshot seq
    limit: int = SEND_QUEUE_FRAMES
    backlog: deque[str] = field(default_factory=deque)
    direct: DirectSend | None = None
    own_ops: RecentIds = field(default_factory=lambda: RecentIds(OWN_OPS_REMEMBERED))
    limiter: RateLimit = field(default_factory=lambda: RateLimit(rate=RATE_LIMIT, burst=RATE_BURST))
    last_cursor: float = 0.0
    ever_locked: bool = False  # was granted a lease: only then do heartbeats renew anything
    held: Held | None = None  # what the last edit left of the image it edited
    dropped: bool = False
    close_reason: str = ""
    close_code: int = CLOSE_TOO_SLOW
    credential: Credential | None = None  # what the socket was opened with (revocation checks it)
    # Revocations heard by this process (``Revoker.heard``, read through ``epoch``) when this
    # socket's access was last verified: an edit commits only after re-checking if it moved.
    epoch: Callable[[], int] | None = None
    verified: int = 0
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    _writer: asyncio.Task[None] | None = None
    _reader: asyncio.Task[Any] | None = None  # set while the reader waits for a message

    @classmethod
    def with_queue(cls, websocket: WebSocket | None, user_id: int, user_name: str, is_admin: bool,
                   frames: int) -> Connection:
        direct = DirectSend.for_scope(websocket.scope) if websocket is not None else None
        return cls(websocket, user_id, user_name, is_admin, limit=frames, direct=direct)

    def send(self, frame: str, wire: bytes | None = None) -> None:
        """Send or queue a frame without waiting; overflow drops the client. ``wire``: the same
        frame serialized by :func:`wire_frame`, shared by a fan-out's receivers."""
        if self.dropped:
            return
        if self.direct is not None and self._writer is None and not self.backlog:
            sent = self.direct.try_send(frame, wire)
            if sent:
                return
            if sent is None:
                self._lost()
                return
        if len(self.backlog) >= self.limit:
            self.drop("too far behind; reconnect and resume from your last seq")
            return
        self.backlog.append(frame)
        if self._writer is None and self.websocket is not None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def drop(self, reason: str, code: int = CLOSE_TOO_SLOW) -> None:
        """Stop sending and end the connection with ``code`` (4008: too slow) and ``reason``."""
        if self.dropped:
            return
        self.dropped, self.close_reason, self.close_code = True, reason, code
        if code == CLOSE_TOO_SLOW:
            slow_client_dropped()
        self.overflowed.set()
        if self._writer is not None:
            self._writer.cancel()  # it may be stuck on a socket that does not drain
        self._wake_reader()

    def needs_verify(self) -> bool:
        """A revocation was heard since this socket's access was last verified: re-check it
        before an edit commits (``Revoker.verify``)."""
        return self.epoch is not None and self.epoch() != self.verified

    def revoke(self, reason: str, code: int) -> None:
        """Access is gone: forget the privileges and subscriptions the fan-out reads (so nothing
        more is picked for it, at no cost per frame) and close with ``code`` and ``reason``."""
        self.privileges = 0
        self.subscriptions.clear()
        self.drop(reason, code)

    def _lost(self) -> None:
        """The socket failed under a write: stop; the reader sees the disconnect."""
        self.dropped = True
        self.backlog.clear()
        self._wake_reader()

    def _wake_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()

    async def receive(self) -> Any:
        """The next ASGI message; ``None`` once the connection was dropped or lost."""
        assert self.websocket is not None
        if self.dropped:
            return None
        self._reader = asyncio.current_task()
        try:
            return await self.websocket.receive()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.dropped or task is None:
                raise
            task.uncancel()  # our own wake-up, not a shutdown
            return None
        finally:
            self._reader = None

    async def _write(self) -> None:
        """Drain the backlog onto the socket (waiting while the socket is backed up)."""
        assert self.websocket is not None
        try:
            while self.backlog and not self.dropped:
                await self.websocket.send_text(self.backlog.popleft())
        except _SEND_ERRORS:
            self._lost()
        finally:
            self._writer = None

    async def close_too_slow(self) -> None:
        """Tell a dropped client why (too slow, or its access was revoked); give up if it is not
        even reading the close frame."""
        if self.websocket is None or self.websocket.application_state != WebSocketState.CONNECTED:
            return
        with suppress(RuntimeError, OSError, TimeoutError, WebSocketDisconnect):
            await asyncio.wait_for(
                self.websocket.close(code=self.close_code, reason=self.close_reason), CLOSE_TIMEOUT)

    async def stop(self) -> None:
        """Stop the writer (the connection is over)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with suppress(asyncio.CancelledError):
                await writer
