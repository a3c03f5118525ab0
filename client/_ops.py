"""The SDK's ops in flight: their frames, the pace the server's rate limit allows, and the
transparent resend of an op the server refused as ``rate_limited``.

The server lets each connection send ``RATE_LIMIT`` messages a second on average, in bursts of
up to ``RATE_BURST`` (docs/protocol.md). :class:`Pacer` keeps every message the client sends a
little under that, so a script that fires 1,000 ops at once is slowed down rather than refused;
an op refused anyway (the server's bucket is shared with everything else the connection sends)
is sent again with the same ``client_op_id`` after a short back-off, which applies it exactly
once. An op too big for any server (``MAX_OP_BYTES``) is refused before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import websockets

from client._ids import RequestIds
from client.errors import LockLostError, TooLargeError
from server.protocol import MAX_OP_BYTES, RATE_BURST, RATE_LIMIT, LockInfo, Snapshot, UserRef

if TYPE_CHECKING:
    from client._session import _Conn

#: The SDK's pace, under the server's limit: the server counts from a message's arrival, which
#: network jitter may bunch up.
PACE_RATE = RATE_LIMIT * 0.9
PACE_BURST = RATE_BURST * 2 / 3
#: Back-off before resending a ``rate_limited`` op: doubles from the first to the last.
RETRY_FIRST, RETRY_MAX = 1 / RATE_LIMIT, 1.0
#: Room left in an op message for its envelope (type, id, image, token, client_op_id).
_ENVELOPE = 256


def encode(value: Any) -> str:
    """``value`` as the JSON text ``json.dumps`` would send, made by orjson (a 5,000-box batch
    in ~2 ms instead of ~15). Where the two could mean different things the standard library
    encodes, as before: orjson writes a NaN or an infinity as ``null`` (the standard library as
    a token the server refuses), so a text holding ``null`` is made again; and what orjson
    refuses (an integer past 64 bits, a lone surrogate, a key that is not a string)."""
    try:
        text = orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)
    return json.dumps(value) if "null" in text else text


@dataclass(frozen=True)
class Opened:
    """An image handed to me: its snapshot and my lock (``None``: someone else holds it)."""

    image: int
    snapshot: Snapshot
    lock: LockInfo | None
    holder: UserRef | None = None


@dataclass(frozen=True)
class Applied:
    """An acknowledged op, undo or redo. ``duplicate``: the server had applied it before."""

    seq: int
    client_op_id: str | None = None
    duplicate: bool = False
    op: dict[str, Any] | None = None


@dataclass(eq=False)
class _Pending:
    future: asyncio.Future[Any]
    snapshot: str = ""  # "always" / "if_image": a snapshot frame follows the ack
    op_id: str | None = None


@dataclass(eq=False)
class _Op:
    image: int
    op: dict[str, Any]
    future: asyncio.Future[Applied]
    token: int | None  # given by the caller; None = the lock the client holds
    sent_on: int = -1  # connection generation it was last sent on
    body: str = ""  # the op as JSON, encoded once (a 5,000-object batch takes milliseconds)
    retries: int = 0  # times it came back rate_limited

    def __post_init__(self) -> None:
        if not self.body:
            self.body = encode(self.op)
        size = len(self.body.encode()) if len(self.body) * 4 > MAX_OP_BYTES else len(self.body)
        if size + _ENVELOPE > MAX_OP_BYTES:
            raise TooLargeError("too_large", f"the op is {size} bytes as JSON; op messages are "
                                f"limited to {MAX_OP_BYTES} bytes: split the batch")

    def frame(self, request_id: str, op_id: str, token: int) -> str:
        """The ``op`` message; ``type`` and ``id`` first (the server reads the id of a frame too
        big to parse from its head)."""
        return (f'{{"type": "op", "id": {json.dumps(request_id)}, "image": {self.image}, '
                f'"token": {token}, "client_op_id": {json.dumps(op_id)}, "op": {self.body}}}')

    def retry_delay(self) -> float:
        """The wait before resending after a ``rate_limited`` answer (counts the retry)."""
        self.retries += 1
        return float(min(RETRY_MAX, RETRY_FIRST * 2 ** (self.retries - 1)))


class Pacer:
    """A token bucket on the client's side of the socket: :meth:`wait` returns when one more
    message may go. Waiters queue in call order (each reserves its token, then sleeps its debt)."""

    def __init__(self, rate: float = PACE_RATE, burst: float = PACE_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = burst, clock()

    def reserve(self) -> float:
        """Take one token; the seconds to wait before using it."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing: a timer by design


class _OpSender:
    """Sending ops, for ``client._session._Session`` (which owns the state named here)."""

    _conn: _Conn | None
    _ids: RequestIds
    _pending: dict[str, _Pending]
    _ops: dict[str, _Op]  # unacknowledged ops by client_op_id, in send order
    _locks: dict[int, LockInfo]
    _pacer: Pacer
    _resends: set[asyncio.Task[None]]
    _closing: bool
    rate_limited: int

    def _token_for(self, image: int, token: int | None) -> int:
        if token is not None:
            return token
        lock = self._locks.get(image)
        if lock is None:
            raise LockLostError("no_lock", f"image {image} is not open in this client")
        return lock.token

    async def _send_op(self, op_id: str, entry: _Op) -> None:
        conn = self._conn
        if conn is None:
            return  # the reconnect resends it
        entry.sent_on = conn.generation
        try:
            token = self._token_for(entry.image, entry.token)
        except LockLostError as exc:
            if not entry.future.done():
                entry.future.set_exception(exc)
            return
        rid = self._ids()
        self._pending[rid] = _Pending(entry.future, op_id=op_id)
        await self._pacer.wait()
        with contextlib.suppress(websockets.ConnectionClosed):
            # If it fails, the reconnect resends it.
            await conn.ws.send(entry.frame(rid, op_id, token))

    def _retry_op(self, op_id: str) -> None:
        """A ``rate_limited`` op: send it again (same ``client_op_id``) after a back-off."""
        entry = self._ops.get(op_id)
        if entry is None or entry.future.done():
            return
        self.rate_limited += 1

        def resend() -> None:
            if self._ops.get(op_id) is entry and not entry.future.done() and not self._closing:
                task = asyncio.create_task(self._send_op(op_id, entry))
                self._resends.add(task)
                task.add_done_callback(self._resends.discard)

        asyncio.get_running_loop().call_later(entry.retry_delay(), resend)
