"""``/api/v1/ws``: origin and auth at the handshake, then one message at a time per connection.

Bad input never closes the socket: it gets an ``error`` naming the request. Only failed
authentication (4401) or a lost account (4403) closes it, and a client too slow to keep up (4008).
A revoked credential (4401) or lost access to the project (4403) closes it at once, while it
idles too (``server.hub.revocation``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import _oplog, revocations, strict_json
from server.auth import authenticate_credential
from server.db import connection_lost, is_sqlite, transaction
from server.edits import EditError
from server.errors import ApiError
from server.hub import _states, leases, revocation
from server.hub._frames import head_fields
from server.hub.bus import PgBus, asyncpg_dsn
from server.hub.connection import Connection
from server.hub.handlers import Handlers, RequestError
from server.hub.hub import Hub
from server.hub.revocation import Revoker
from server.models import utcnow
from server.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHORIZED,
    MAX_MESSAGE_BYTES,
    MAX_OP_BYTES,
    Cursor,
    Error,
    Heartbeat,
    Hello,
    NextImage,
    Op,
    OpenImage,
    PresenceEvent,
    Redo,
    ReleaseImage,
    SetState,
    Subscribe,
    Undo,
    Unsubscribe,
    UserRef,
    client_message,
    encode,
)
from server.telemetry.metrics import observe_op

log = logging.getLogger("labelhub.ws")
_TOO_LARGE = (f"messages are limited to {MAX_MESSAGE_BYTES} bytes, op messages to "
              f"{MAX_OP_BYTES} bytes: split the batch")


def origin_allowed(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser; auth still applies
    host = websocket.headers.get("host", "")
    own = {f"http://{host}", f"https://{host}"}
    return origin in own or origin in websocket.app.state.settings.allowed_origins


def _error(request_id: Any, code: str, message: str, holder: UserRef | None = None) -> str:
    rid = request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None
    return encode(Error(id=rid, code=code, message=message, holder=holder))


#: Close codes after which a connection's leases are kept until they expire: the connection was
#: lost without a closing handshake (uvicorn reports 1005 or 1006) or the server is restarting
#: (1012). The labeler is probably coming back, and resumes holding the image.
VANISHED = frozenset({1005, 1006, 1012})


async def websocket_endpoint(websocket: WebSocket) -> None:
    if not origin_allowed(websocket):
        await websocket.close(code=CLOSE_FORBIDDEN)  # before accept: the handshake is refused
        return
    state = websocket.app.state
    heard = state.revoker.heard
    try:
        async with transaction(state.sessions) as session:
            user, credential = await authenticate_credential(websocket, session)
            user_id, name, is_admin = user.id, user.name, user.is_admin
    except ApiError:
        await websocket.accept()
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="authentication required")
        return
    await websocket.accept()
    conn = Connection.with_queue(websocket, user_id, name, is_admin, state.settings.ws_send_queue)
    conn.credential = credential
    # Access as verified at the handshake: revocations heard from before it on are re-checked
    # by the next edit's transaction (``Revoker.verify``).
    conn.epoch, conn.verified = (lambda: state.revoker.heard), heard
    handlers: Handlers = state.handlers
    release = False
    state.hub.attach(conn)
    expiry = _close_at_expiry(conn)
    if state.revoker.heard != heard:  # a revocation came while we authenticated: re-check
        state.revoker.schedule(revocations.Revocation(user_id, None, "handshake"))
    try:
        release = await _serve(conn, handlers, websocket)
    finally:
        if expiry is not None:
            expiry.cancel()
        state.hub.detach(conn)
        was_viewing = state.hub.leave(conn)
        await conn.stop()
        publish = getattr(state, "publish_presence", None)
        if was_viewing and publish is not None:  # the other processes' rooms drop my badge too
            with suppress(Exception):
                await publish(conn, None, None, None, online=False)
        if release:
            await _release_all(state, conn)


def _close_at_expiry(conn: Connection) -> asyncio.TimerHandle | None:
    """Close the socket with 4401 ``session expired`` when its login token's TTL runs out:
    the token would no longer open one, so the socket must not outlive it either (the browser
    app returns to the login page and, after it, to the same page)."""
    left = revocation.seconds_left(conn.credential)
    if left is None:
        return None
    return asyncio.get_running_loop().call_later(
        max(0.0, left), conn.revoke, revocation.SESSION_EXPIRED, CLOSE_UNAUTHORIZED)


async def _serve(conn: Connection, handlers: Handlers, websocket: WebSocket) -> bool:
    """Handle messages until the connection ends; True when its leases go at once (clean close)."""
    while True:
        message = await conn.receive()
        if message is None:  # dropped (too slow, or revoked), or the socket failed under a write
            if conn.close_reason:
                await conn.close_too_slow()
            # A slow client resumes and keeps its leases; a revoked one is gone for good.
            return bool(conn.close_reason) and conn.close_code != CLOSE_TOO_SLOW
        if message["type"] == "websocket.disconnect":
            return message.get("code") not in VANISHED
        text = message.get("text")
        if text is None:
            conn.send(_error(None, "binary_frame", "send JSON text frames"))
            continue
        if await _handle(conn, handlers, text) == "close":
            with suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(code=CLOSE_FORBIDDEN, reason="account no longer active")
            return True


def _size(text: str) -> int:
    """The frame's size in UTF-8 bytes (counted only when its characters do not settle it)."""
    if len(text) * 4 <= MAX_MESSAGE_BYTES:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


async def _handle(conn: Connection, handlers: Handlers, text: str) -> str | None:
    size = _size(text)
    if size > MAX_OP_BYTES:  # not parsed: the id, if any, is read from the frame's head
        conn.send(_error(head_fields(text).get("id"), "too_large", _TOO_LARGE))
        return None
    try:
        data = strict_json.loads(text)
    except strict_json.JsonInputError as exc:
        # A big frame's id only from its top level: its objects have ids of their own.
        rid = head_fields(text).get("id") if size > MAX_MESSAGE_BYTES else _readable_id(text)
        conn.send(_error(rid, exc.code, exc.message))
        return None
    request_id = data.get("id") if isinstance(data, dict) else None
    if size > MAX_MESSAGE_BYTES and not (isinstance(data, dict) and data.get("type") == "op"):
        conn.send(_error(request_id, "too_large", _TOO_LARGE))
        return None
    if not conn.limiter.allow():
        conn.send(_error(request_id, "rate_limited", "too many messages; slow down"))
        return None
    try:
        msg = client_message.validate_python(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "message"
        conn.send(_error(request_id, "invalid", f"{where}: {err['msg']}"))
        return None
    if conn.project_id is None and not isinstance(msg, Hello):
        conn.send(_error(msg.id, "hello_first", "send hello first"))
        return None
    try:
        await _dispatch(conn, handlers, msg)
    except RequestError as exc:
        conn.send(_error(msg.id, exc.code, exc.message, exc.holder))
        if exc.close is not None:  # access revoked: the serve loop closes with this code
            conn.revoke(*exc.close)
        elif exc.code == "unauthorized":
            return "close"
    except EditError as exc:
        message = exc.message if not exc.field or exc.field in exc.message else f"{exc.field}: {exc.message}"
        conn.send(_error(msg.id, exc.code, message))
    except PoolTimeout:
        # Every pooled connection stayed taken for db_pool_timeout: nothing was done; the
        # request names itself and the socket stays open.
        log.warning("database pool exhausted; answered busy")
        conn.send(_error(msg.id, "busy", "the server's database connections are all in use; "
                                         "send it again shortly"))
    except Exception as exc:
        if connection_lost(exc):
            log.warning("database connection lost: %s", exc)
            conn.send(_error(msg.id, "unavailable", "the database connection was lost; send it "
                                                    "again (an op that committed just before gets "
                                                    "its original ack, it is not applied twice)"))
        else:  # a bug: its transaction rolled back; one message fails, not the connection
            log.exception("%s %r failed", msg.type, msg.id)
            conn.send(_error(msg.id, "internal", "the server could not handle this message"))
    return None


_ID = re.compile(r'"id"\s*:\s*("(?:[^"\\]|\\.){1,64}"|\d{1,18})')


def _readable_id(text: str) -> str | int | None:
    """The request id of a frame that did not parse, when one can be read from it, so the client
    learns which request failed. A frame too deep or with a lone surrogate still has one."""
    found = _ID.search(text)
    if found is None:
        return None
    try:
        value = strict_json.loads(found.group(1))
    except strict_json.JsonInputError:
        return None
    return value if isinstance(value, str | int) and value != "" else None


async def _dispatch(conn: Connection, handlers: Handlers, msg: Any) -> None:
    match msg:
        case Hello():
            await handlers.hello(conn, msg)
        case Subscribe():
            await handlers.subscribe(conn, msg)
        case Unsubscribe():
            await handlers.unsubscribe(conn, msg)
        case OpenImage():
            await handlers.open_image(conn, msg)
        case ReleaseImage():
            await handlers.release_image(conn, msg)
        case Heartbeat():
            await handlers.heartbeat(conn, msg)
        case NextImage():
            await handlers.next_image(conn, msg)
        case Op():
            started = time.perf_counter()
            await handlers.op(conn, msg)
            observe_op(time.perf_counter() - started)
        case Undo() | Redo():
            await handlers.undo_redo(conn, msg)
        case Cursor():
            await handlers.cursor(conn, msg, time.monotonic())
        case SetState():
            await _states.set_state(handlers, conn, msg)


async def _release_all(state: Any, conn: Connection) -> None:
    """A clean close releases this connection's leases at once (a vanished one's expire)."""
    try:
        async with transaction(state.sessions) as session:
            await leases.release_connection(session, user_id=conn.user_id, connection_id=conn.id,
                                            now=utcnow(), idle_limit=state.settings.idle_limit_seconds)
    except Exception:  # the lease will expire on its own
        log.exception("releasing the leases of connection %s failed", conn.id)


async def _sweep(state: Any) -> None:
    """Free lapsed leases now and then (any process may; row locks keep it once-only)."""
    interval = max(0.5, min(5.0, state.settings.lock_ttl_seconds / 3))
    while True:
        await asyncio.sleep(interval)  # a timer, not a wait for an event
        try:
            async with transaction(state.sessions) as session:
                await leases.expire_due(session, now=utcnow(),
                                        idle_limit=state.settings.idle_limit_seconds)
        except Exception:
            log.exception("lease sweep failed")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    state = app.state
    url = state.settings.resolved_database_url
    hub = Hub(state.sessions)
    state.hub = hub
    state.handlers = Handlers(state, hub)
    revoker = state.revoker = Revoker(hub, state.sessions)
    unregister = _oplog.on_ops_committed(hub.committed)
    unregister_revoker = revocations.on_revocation(revoker.schedule)
    bus: PgBus | None = None
    if not is_sqlite(url):
        hub.counts_own_rings = True

        def resync() -> None:  # the bus (re)connected: what was sent meanwhile is lost
            hub.resync_rings()
            revoker.recheck_everyone()

        bus = PgBus(asyncpg_dsn(url), ring=hub.doorbell, resync=resync,
                    on_presence=lambda m: _deliver_presence(hub, m),
                    on_revoke=lambda payload: revoker.schedule(revocations.parse(payload)),
                    on_row=hub.heard_row)
        bus.start()
        state.bus = bus

        async def publish(conn: Connection, image: int | None, x: float | None, y: float | None,
                          online: bool = True) -> None:
            assert bus is not None
            await bus.publish_presence({"project": conn.project_id, "user": conn.user_id,
                                        "name": conn.user_name, "image": image, "x": x, "y": y,
                                        "online": online})

        state.publish_presence = publish
    sweeper = asyncio.create_task(_sweep(state), name="lease-sweeper")
    try:
        yield
    finally:
        sweeper.cancel()
        with suppress(asyncio.CancelledError):
            await sweeper
        unregister()
        unregister_revoker()
        if bus is not None:
            await bus.stop()
        await revoker.close()
        await hub.close()


def _deliver_presence(hub: Hub, message: dict[str, Any]) -> None:
    room = hub.rooms.get(int(message.get("project") or 0))
    if room is None:
        return
    frame = encode(PresenceEvent(user=UserRef(id=int(message["user"]), name=str(message["name"])),
                                 image=message.get("image"), x=message.get("x"), y=message.get("y"),
                                 online=bool(message.get("online", True))))
    hub.send_to(hub.audience(room), frame)


routes: list[BaseRoute] = [WebSocketRoute("/api/v1/ws", websocket_endpoint)]
