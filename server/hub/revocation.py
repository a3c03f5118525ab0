"""Revocation on open sockets: when a user may have lost access, re-check each of their sockets
in this process at once (see ``server.revocations`` for how the news arrives, and
docs/security.md, "Revocation").

* The credential the socket was opened with no longer holds (logout, password change, revoked
  API token): closed with 4401 ``session revoked``.
* The account was deactivated: closed with 4403 ``account no longer active``.
* Its project is no longer visible to the user (membership removed, "view" taken away, site
  admin rights taken away from a non-member, project deleted): closed with 4403 — a socket serves
  one project, so there is nothing left for it to do. Its leases go at once (a clean close).
* Its privileges changed otherwise: the cached privileges are updated (the fan-out reads them)
  and a ``privileges`` event tells the client; edits needing a lost privilege are refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.hub.connection import Connection
from server.hub.hub import Hub
from server.models import ApiToken, Membership, User
from server.permissions import ALL
from server.protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED
from server.revocations import Revocation

__all__ = ["INACTIVE", "SESSION_REVOKED", "Revoker"]

log = logging.getLogger("labelhub.revocation")
SESSION_REVOKED = "session revoked"
INACTIVE = "account no longer active"


class Revoker:
    """Applies revocations to this process's sockets (registered in ``Hub.sockets``)."""

    def __init__(self, hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.hub, self.sessions = hub, sessions
        self._tasks: set[asyncio.Task[None]] = set()
        self.heard = 0  # revocations heard so far (a handshake in flight compares it)

    def schedule(self, revocation: Revocation | None) -> None:
        """Called from a commit hook or the bus listener: start the re-check, do not wait."""
        self.heard += 1
        if revocation is None or revocation.user_id not in self.hub.sockets:
            return  # none of their sockets is here
        self._start(self.recheck(revocation.user_id))

    def recheck_everyone(self) -> None:
        """The bus (re)connected and may have missed notifications: re-check every socket."""
        for user_id in list(self.hub.sockets):
            self._start(self.recheck(user_id))

    def _start(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work, name="revocation")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recheck(self, user_id: int) -> None:
        """Close or downgrade each open socket of ``user_id`` that lost access."""
        conns = [c for c in self.hub.sockets.get(user_id, ()) if not c.dropped]
        if not conns:
            return
        try:
            async with self.sessions() as session:
                state = await _access(session, user_id, conns)
        except Exception:  # the next revocation or reconnect re-checks; never kill the caller
            log.exception("re-checking the sockets of user %s failed", user_id)
            return
        user, live_tokens, memberships = state
        for conn in conns:
            self._apply(conn, user, live_tokens, memberships)

    def _apply(self, conn: Connection, user: Any, live_tokens: set[int],
               memberships: dict[int, int]) -> None:
        if conn.dropped:
            return
        if user is None or not user.is_active:
            conn.revoke(INACTIVE, CLOSE_FORBIDDEN)
            return
        cred = conn.credential
        if cred is not None and (
                (cred.token_version is not None and cred.token_version != user.token_version)
                or (cred.api_token_id is not None and cred.api_token_id not in live_tokens)):
            conn.revoke(SESSION_REVOKED, CLOSE_UNAUTHORIZED)
            return
        conn.is_admin = bool(user.is_admin)
        if conn.project_id is not None:
            privileges = int(ALL) if conn.is_admin else memberships.get(conn.project_id)
            self.hub.set_privileges(conn, privileges, always=False)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _access(session: AsyncSession, user_id: int,
                  conns: Iterable[Connection]) -> tuple[Any, set[int], dict[int, int]]:
    """The user's account row, which of the sockets' API tokens still hold, and their
    privileges in the sockets' projects."""
    conns = list(conns)
    user = (await session.execute(select(User.is_active, User.is_admin, User.token_version)
                                  .where(User.id == user_id))).first()
    token_ids = {c.credential.api_token_id for c in conns
                 if c.credential is not None and c.credential.api_token_id is not None}
    live: set[int] = set()
    if token_ids:
        live = set((await session.execute(select(ApiToken.id).where(
            ApiToken.id.in_(token_ids), ApiToken.user_id == user_id,
            ApiToken.revoked_at.is_(None)))).scalars())
    projects = {c.project_id for c in conns if c.project_id is not None}
    memberships: dict[int, int] = {}
    if projects:
        rows = await session.execute(select(Membership.project_id, Membership.privileges).where(
            Membership.user_id == user_id, Membership.project_id.in_(projects)))
        memberships = {int(p): int(v) for p, v in rows}
    return user, live, memberships
