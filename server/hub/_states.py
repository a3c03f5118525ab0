"""The socket's ``set_state``: a workflow change (``server.image_states``) in one transaction,
acked after commit with the op's seq and the new state. The ``state`` op itself reaches every
watcher of the project (``server.hub._rooms.PROJECT_WIDE``): dashboards and supervisors too."""

from __future__ import annotations

from server.db import transaction
from server.hub.connection import Connection
from server.hub.handlers import Handlers, RequestError, actor_for_id
from server.image_states import StateError, change_state
from server.models import utcnow
from server.permissions import Privilege
from server.protocol import Ack, SetState, encode
from server.workflow import State


async def set_state(handlers: Handlers, conn: Connection, msg: SetState) -> None:
    async with transaction(handlers.state.sessions) as session:
        await handlers._require(session, conn, Privilege.VIEW)
        assert conn.project_id is not None
        actor = await actor_for_id(session, conn)
        try:
            done = await change_state(
                session, project_id=conn.project_id, image_id=msg.image, actor=actor,
                action=msg.action, comment=msg.comment, token=msg.token, now=utcnow(),
                idle_limit=handlers.settings.idle_limit_seconds,
                expect=State(msg.expect) if msg.expect is not None else None)
        except StateError as exc:
            raise RequestError(exc.code, exc.message) from None
    conn.send(encode(Ack(id=msg.id, seq=done.seq, image=msg.image, state=done.state.value)))


__all__ = ["set_state"]
