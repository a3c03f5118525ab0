"""``LabelhubClient``: one project's live session over ``/api/v1/ws`` (docs/protocol.md, docs/sdk.md).

The public methods are here; the socket, acks, reconnect and resend are in ``client._session``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from client._ids import new_client_op_id
from client._ops import Applied, Opened, _Op
from client._session import HELLO_IMAGES, Event, _Session
from client.errors import ConnectionClosed, RequestTimeout
from server.protocol import (
    Ack,
    LockInfo,
    Snapshot,
)


class LabelhubClient(_Session):
    """An async client for one project. Use ``async with LabelhubClient(...) as client:``."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> LabelhubClient:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def seq(self) -> int:
        """The project seq this client has seen everything up to (its resume point)."""
        return self._tracker.seq

    @property
    def token(self) -> str | None:
        return self.rest.token

    def lock(self, image: int) -> LockInfo | None:
        """My current lock on ``image`` (its token changes when a reconnect re-opens it)."""
        return self._locks.get(image)

    async def connect(self) -> Ack:
        """Log in if needed, open the socket and say hello. Returns the hello ack."""
        if self.rest.token is None:
            if self._email is None or self._password is None:
                raise ValueError("give a token, or an email and a password")
            await self.rest.login(self._email, self._password)
        ack = await self._open(resume=False)
        self._tasks = [asyncio.create_task(self._supervise(), name="labelhub-supervisor"),
                       asyncio.create_task(self._heartbeats(), name="labelhub-heartbeat")]
        return ack

    async def close(self) -> None:
        """Close the socket (the server releases my locks at once) and end ``events()``."""
        if self._closing:
            return
        self._closing = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all(ConnectionClosed("the client was closed"))
        await self.rest.aclose()

    # --- requests ----------------------------------------------------------------------------

    async def subscribe(self, image: int) -> Snapshot:
        """Watch an image: its snapshot now, its ops as events from then on."""
        _ack, snap = await self._request({"type": "subscribe", "image": image}, snapshot="always")
        assert snap is not None
        return snap

    async def unsubscribe(self, image: int) -> None:
        await self._request({"type": "unsubscribe", "image": image})
        self._tracker.images.pop(image, None)

    async def open_image(self, image: int, *, take_over: bool = False) -> Opened:
        """Lock an image for editing (and watch it). Raises ``LockedError`` with the holder."""
        ack, snap = await self._request({"type": "open_image", "image": image,
                                         "take_over": take_over}, snapshot="always")
        assert snap is not None and ack.lock is not None
        self._locks[image] = ack.lock
        self._lost.discard(image)
        return Opened(image, snap, ack.lock)

    async def next_image(self, *, after: int | None = None, direction: str = "next",
                         images: list[int] | None = None, filter: dict[str, Any] | None = None,
                         release: bool = True, queue: str = "label",
                         own: bool = False) -> Opened | None:
        """Choose and lock the next image to label (skip rules apply; images not done yet, my
        assigned ones first); ``None`` when none is left. ``queue="review"``: the next done
        image to review (not my own unless ``own``)."""
        msg: dict[str, Any] = {"type": "next_image", "direction": direction, "release": release}
        if queue != "label" or own:
            msg.update(queue=queue, own=own)
        for key, value in (("after", after), ("images", images), ("filter", filter)):
            if value is not None:
                msg[key] = value
        ack, snap = await self._request(msg, snapshot="if_image")
        if release and after is not None:
            self._locks.pop(after, None)
        if ack.image is None or snap is None:
            return None
        if ack.lock is not None:
            self._locks[ack.image] = ack.lock
        return Opened(ack.image, snap, ack.lock, ack.holder)

    async def set_state(self, image: int, action: str, *, comment: str | None = None,
                        token: int | None = None, expect: str | None = None) -> str:
        """Move the image along the workflow (``done``, ``accept``, ``reject``, ``reopen``);
        returns its new state. ``done`` sends my lock's token; ``expect``: the state I saw.
        Raises ``ConflictError`` when the image moved on meanwhile (or is not in ``expect``),
        ``LockLostError`` for ``done`` without the lock."""
        msg: dict[str, Any] = {"type": "set_state", "image": image, "action": action}
        for key, value in (("comment", comment), ("expect", expect)):
            if value is not None:
                msg[key] = value
        if action == "done":
            lock = self._locks.get(image)
            msg["token"] = token if token is not None else (lock.token if lock else None)
        ack, _snap = await self._request(msg)
        assert ack.state is not None
        return ack.state

    async def mark_done(self, image: int) -> str:
        return await self.set_state(image, "done")

    async def accept(self, image: int, comment: str | None = None) -> str:
        return await self.set_state(image, "accept", comment=comment)

    async def reject(self, image: int, comment: str) -> str:
        return await self.set_state(image, "reject", comment=comment)

    async def reopen(self, image: int, comment: str | None = None,
                     expect: str | None = None) -> str:
        return await self.set_state(image, "reopen", comment=comment, expect=expect)

    async def release_image(self, image: int) -> None:
        self._locks.pop(image, None)
        await self._request({"type": "release_image", "image": image})

    async def heartbeat(self, active: bool | None = None) -> None:
        """Renew my locks now (the client also does this every ``heartbeat_interval``)."""
        await self._request({"type": "heartbeat", "active": self.active if active is None else active})

    async def cursor(self, image: int, x: float, y: float) -> None:
        await self._request({"type": "cursor", "image": image, "x": x, "y": y})

    async def op(self, image: int, op: dict[str, Any], *, token: int | None = None,
                 client_op_id: str | None = None) -> Applied:
        """Apply one op on a locked image and wait for its ack (resent across reconnects, and
        after a ``rate_limited`` answer: the client paces its messages to the server's limit).

        Pass the same ``client_op_id`` again to retry an op whose outcome you do not know.
        Raises :class:`~client.errors.TooLargeError` at once for an op past the size limit (a
        ``batch`` of up to 20,000 ops fits when it is under 8 MiB as JSON).
        """
        op_id = client_op_id or new_client_op_id()
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        entry = _Op(image, op, future, token)  # refuses an op too big to send
        self._tracker.own_ids.add(op_id)
        self._ops[op_id] = entry
        try:
            await self._wait_ready()
            if entry.sent_on != self._generation and not future.done():
                await self._send_op(op_id, entry)
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            raise RequestTimeout(f"op {op_id} not acknowledged within {self.timeout}s; "
                                 "retry with the same client_op_id") from None
        finally:
            self._ops.pop(op_id, None)

    async def undo(self, image: int, *, token: int | None = None) -> Applied:
        return await self._undo_redo("undo", image, token)

    async def redo(self, image: int, *, token: int | None = None) -> Applied:
        return await self._undo_redo("redo", image, token)

    async def _undo_redo(self, which: str, image: int, token: int | None) -> Applied:
        ack, _ = await self._request({"type": which, "image": image,
                                      "token": self._token_for(image, token)})
        assert ack.seq is not None
        self._tracker.own_seqs.add(ack.seq)
        return Applied(ack.seq, op=ack.op)

    # --- events ------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Every server event in order, without repeats after a reconnect and without echoes
        of my own ops. Ends when the client is closed or cannot reconnect."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)  # let other iterators end too
                return
            yield event

    async def next_event(self, *types: type[Event], within: float | None = None) -> Event:
        """The next event of one of ``types`` (others are skipped); ``RequestTimeout`` if none."""
        async def find() -> Event:
            async for event in self.events():
                if not types or isinstance(event, types):
                    return event
            raise self._fatal or ConnectionClosed("the client was closed")
        try:
            return await asyncio.wait_for(find(), within if within is not None else self.timeout)
        except TimeoutError:
            raise RequestTimeout("no matching event in time") from None

    # --- internals: sending ------------------------------------------------------------------


__all__ = ["HELLO_IMAGES", "Applied", "Event", "LabelhubClient", "Opened"]
