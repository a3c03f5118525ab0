"""The machinery behind :class:`client.hub.LabelhubClient`: its state, the socket, request and
ack matching, the reader, reconnect with resume, and the resend of unacknowledged ops (their
frames, pacing and ``rate_limited`` retries: ``client._ops``).

Requests are matched to their ``ack``/``error`` by id. When the socket drops the client reconnects
with ``hello{since, images}``, opens the images it held again (a new fencing token) unless someone
else took them meanwhile, and resends every unacknowledged op with its original ``client_op_id``:
the server answers a duplicate with the original ack, so each op is applied exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection, connect

from client._ids import RequestIds
from client._ops import Applied, Pacer, _Op, _OpSender, _Pending
from client._tracker import Tracker
from client.errors import (
    AuthenticationError,
    ConnectionClosed,
    ForbiddenError,
    LabelhubError,
    LockLostError,
    RequestError,
    RequestTimeout,
    TransportError,
    error_for,
)
from client.rest import RestClient
from server.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    Ack,
    Error,
    JobEvent,
    JobState,
    LockEvent,
    LockInfo,
    OpEvent,
    PresenceEvent,
    Present,
    PrivilegesEvent,
    ProgressEvent,
    ResetEvent,
    Snapshot,
    UserRef,
    server_message,
)

log = logging.getLogger("labelhub.client")
Event = (Snapshot | OpEvent | LockEvent | PresenceEvent | ProgressEvent | PrivilegesEvent
         | ResetEvent | JobEvent)
HELLO_IMAGES = 100  # the most images one hello may name; the rest are subscribed after it


@dataclass(eq=False)
class _Conn:
    ws: ClientConnection
    generation: int
    reader: asyncio.Task[None] | None = None
    awaiting_snapshot: list[tuple[_Pending, Ack]] = field(default_factory=list)


class _Session(_OpSender):
    """State and plumbing; the public methods live on ``LabelhubClient``."""

    def __init__(self, url: str, project: int, *, token: str | None = None,
                 email: str | None = None, password: str | None = None,
                 reconnect: bool = True, heartbeat_interval: float = 15.0,
                 timeout: float = 30.0, max_backoff: float = 5.0,
                 http: httpx.AsyncClient | None = None, max_frame: int = 64 * 1024 * 1024) -> None:
        self.url = url.rstrip("/")
        self.project = project
        self.rest = RestClient(self.url, token=token, http=http, timeout=timeout)
        self.reconnect, self.heartbeat_interval = reconnect, heartbeat_interval
        self.timeout, self.max_backoff, self.max_frame = timeout, max_backoff, max_frame
        self.active = True  # heartbeats say whether the user is working (labeling time)
        self.user: UserRef | None = None
        self.privileges: list[str] = []
        self.present: list[Present] = []  # who else was in the project when we (re)joined
        self.jobs: dict[int, JobState] = {}  # the project's jobs as the last `job` events left them
        self.reconnects = 0
        self._email, self._password = email, password
        self._ids = RequestIds()
        self._tracker = Tracker()
        self._conn: _Conn | None = None
        self._generation = 0
        self._pending: dict[str, _Pending] = {}
        self._ops: dict[str, _Op] = {}  # unacknowledged ops by client_op_id, in send order
        self._locks: dict[int, LockInfo] = {}
        self._lost: set[int] = set()  # held images someone else was granted while we were away
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._closing = False
        self._fatal: LabelhubError | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pacer = Pacer()  # every message, under the server's rate limit
        self._resends: set[asyncio.Task[None]] = set()
        self.rate_limited = 0  # ops the server refused as rate_limited (each was sent again)

    async def _wait_ready(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise ConnectionClosed("the client was closed")
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), self.timeout)
            except TimeoutError:
                raise RequestTimeout("not connected") from None
            if self._fatal is not None:
                raise self._fatal

    async def _request(self, msg: dict[str, Any], *, snapshot: str = "",
                       conn: _Conn | None = None) -> tuple[Ack, Snapshot | None]:
        if conn is None:
            await self._wait_ready()
            conn = self._conn
        if conn is None:
            raise ConnectionClosed("not connected")
        rid = self._ids()
        pending = _Pending(asyncio.get_running_loop().create_future(), snapshot)
        self._pending[rid] = pending
        try:
            await self._pacer.wait()
            await conn.ws.send(json.dumps({**msg, "id": rid}))
            result: tuple[Ack, Snapshot | None] = await asyncio.wait_for(pending.future, self.timeout)
            return result
        except websockets.ConnectionClosed as exc:
            raise ConnectionClosed(f"closed while sending {msg['type']}", exc.rcvd.code
                                   if exc.rcvd else None) from None
        except TimeoutError:
            raise RequestTimeout(f"{msg['type']} not answered within {self.timeout}s") from None
        finally:
            self._pending.pop(rid, None)

    # --- internals: the connection -----------------------------------------------------------

    def _ws_url(self) -> str:
        base = self.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/api/v1/ws"

    async def _open(self, *, resume: bool) -> Ack:
        # The token goes in a header: in the URL it would land in every proxy's access log.
        headers = {"Authorization": f"Bearer {self.rest.token}"} if self.rest.token else None
        try:
            ws = await connect(self._ws_url(), compression=None, max_size=self.max_frame,
                               open_timeout=self.timeout, max_queue=None, additional_headers=headers)
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):  # e.g. an Origin the server does not allow
                raise error_for("unauthorized" if status == 401 else "forbidden",
                                f"the handshake was refused ({status})", status=status) from None
            raise TransportError(f"cannot connect to {self.url}: {exc!r}") from exc
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise TransportError(f"cannot connect to {self.url}: {exc!r}") from exc
        self._generation += 1
        conn = _Conn(ws, self._generation)
        self._conn = conn
        conn.reader = asyncio.create_task(self._read(conn), name="labelhub-reader")
        images = list(self._tracker.images) if resume else []
        hello: dict[str, Any] = {"type": "hello", "project": self.project,
                                 "images": images[:HELLO_IMAGES]}
        if resume:
            hello["since"] = self._tracker.seq
        try:
            ack, _ = await self._request(hello, conn=conn)
        except ConnectionClosed:
            await conn.reader
            raise _close_error(ws.close_code, ws.close_reason) from None
        except LabelhubError:
            await ws.close()
            await conn.reader
            raise
        self.user, self.privileges = ack.user, list(ack.privileges or [])
        self.present = list(ack.present or [])
        self._tracker.user_id = ack.user.id if ack.user else None
        self._tracker.joined(ack.seq)
        if resume:
            for image in images[HELLO_IMAGES:]:
                await self._request({"type": "subscribe", "image": image}, snapshot="always",
                                    conn=conn)
            await self._recover(conn)
        self._ready.set()
        return ack

    async def _recover(self, conn: _Conn) -> None:
        """Open my images again (new tokens), then resend the unacknowledged ops in order."""
        for image in list(self._locks):
            if image in self._lost:
                self._lock_lost(image, "another user was given this image while disconnected")
                continue
            try:
                ack, _ = await self._request({"type": "open_image", "image": image},
                                             snapshot="always", conn=conn)
            except RequestError as exc:
                self._lock_lost(image, f"could not open it again: {exc.message}")
                continue
            assert ack.lock is not None
            self._locks[image] = ack.lock
        for op_id, entry in list(self._ops.items()):
            if entry.sent_on != conn.generation and not entry.future.done():
                await self._send_op(op_id, entry)

    def _lock_lost(self, image: int, why: str) -> None:
        self._locks.pop(image, None)
        self._lost.discard(image)
        for entry in self._ops.values():
            if entry.image == image and entry.token is None and not entry.future.done():
                entry.future.set_exception(LockLostError("lock_lost", why))

    async def _read(self, conn: _Conn) -> None:
        try:
            async for raw in conn.ws:
                self._dispatch(conn, server_message.validate_json(raw))
        except websockets.ConnectionClosed:
            pass
        except Exception:  # a frame we cannot parse is a bug on one side: drop the socket
            log.exception("bad frame from the server; reconnecting")
            await conn.ws.close(code=1002)

    def _dispatch(self, conn: _Conn, msg: Any) -> None:
        if isinstance(msg, Ack | Error):
            pending = self._pending.pop(str(msg.id), None) if msg.id is not None else None
            if pending is None:
                if isinstance(msg, Error):
                    log.warning("server error without a request: %s %s", msg.code, msg.message)
                return
            self._answer(conn, pending, msg)
            return
        if isinstance(msg, Snapshot) and conn.awaiting_snapshot:
            pending, ack = conn.awaiting_snapshot.pop(0)
            if not pending.future.done():
                pending.future.set_result((ack, msg))
        if isinstance(msg, PrivilegesEvent):
            self.privileges = list(msg.privileges)
        if isinstance(msg, JobEvent):
            self.jobs[msg.job.id] = msg.job
        if isinstance(msg, LockEvent) and msg.image in self._locks and msg.holder is not None \
                and self.user is not None and msg.holder.id != self.user.id:
            self._lost.add(msg.image)  # granted or taken over by someone else
        if self._tracker.keep(msg):
            self._events.put_nowait(msg)

    def _answer(self, conn: _Conn, pending: _Pending, msg: Ack | Error) -> None:
        fut = pending.future
        if isinstance(msg, Error):
            if msg.code == "rate_limited" and pending.op_id is not None:
                self._retry_op(pending.op_id)  # transparent: the caller sees only the ack
                return
            if not fut.done():
                fut.set_exception(error_for(msg.code, msg.message, holder=msg.holder))
            return
        if pending.op_id is not None:
            assert msg.seq is not None
            self._tracker.own_seqs.add(msg.seq)
            if not fut.done():
                fut.set_result(Applied(msg.seq, pending.op_id, bool(msg.duplicate)))
            return
        if pending.snapshot == "always" or (pending.snapshot == "if_image" and msg.image is not None):
            conn.awaiting_snapshot.append((pending, msg))
            return
        if not fut.done():
            fut.set_result((msg, None))

    async def _supervise(self) -> None:
        """Wait for the socket to drop; reconnect and resume until closed or refused."""
        while not self._closing:
            conn = self._conn
            assert conn is not None and conn.reader is not None
            await conn.reader
            self._ready.clear()
            code, reason = conn.ws.close_code, conn.ws.close_reason
            self._fail_requests(ConnectionClosed("the connection dropped", code, reason or ""))
            if self._closing:
                return
            if code in (CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN) or not self.reconnect:
                self._finish(_close_error(code, reason))
                return
            error = await self._reconnect()
            if error is not None:
                self._finish(error)
                return

    async def _reconnect(self) -> LabelhubError | None:
        delay, relogged = 0.05, False
        while not self._closing:
            try:
                await self._open(resume=True)
                self.reconnects += 1
                return None
            except AuthenticationError as exc:
                if relogged or self._email is None or self._password is None:
                    return exc
                relogged = True
                try:
                    await self.rest.login(self._email, self._password)
                except RequestError as login_error:
                    return login_error
                except TransportError:
                    pass
            except RequestError as exc:
                return exc
            except TransportError as exc:
                log.info("reconnect failed (%s); retrying in %.2fs", exc, delay)
            await asyncio.sleep(delay)  # back off before the next attempt
            delay = min(self.max_backoff, delay * 2)
        return None

    async def _heartbeats(self) -> None:
        # Not `while True`: close() cancels this task, and on Python 3.11 asyncio.wait_for
        # swallows a cancellation that lands just after its future failed (the closing socket
        # fails the heartbeat in flight), so the loop must also see that we are closing.
        while not self._closing:
            await asyncio.sleep(self.heartbeat_interval)  # a timer, not a wait for an event
            if not self._locks or not self._ready.is_set():
                continue
            try:
                await self._request({"type": "heartbeat", "active": self.active})
            except LabelhubError as exc:
                log.info("heartbeat failed: %s", exc)

    def _fail_requests(self, error: LabelhubError) -> None:
        """The socket dropped: plain requests fail; ops stay queued for resending."""
        for rid, pending in list(self._pending.items()):
            if pending.op_id is None:
                del self._pending[rid]
                if not pending.future.done():
                    pending.future.set_exception(error)
            else:
                del self._pending[rid]

    def _finish(self, error: LabelhubError) -> None:
        self._fatal = error
        self._ready.set()  # wake waiters so they see the error
        self._fail_all(error)

    def _fail_all(self, error: LabelhubError) -> None:
        self._fail_requests(error)
        for entry in self._ops.values():
            if not entry.future.done():
                entry.future.set_exception(error)
        self._events.put_nowait(None)


def _close_error(code: int | None, reason: str | None) -> LabelhubError:
    if code == CLOSE_UNAUTHORIZED:
        return AuthenticationError("unauthorized", reason or "authentication required")
    if code == CLOSE_FORBIDDEN:
        return ForbiddenError("forbidden", reason or "refused")
    return ConnectionClosed(f"the connection closed ({code}: {reason or 'no reason'})", code,
                            reason or "")
