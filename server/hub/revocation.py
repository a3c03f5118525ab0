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
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import Credential
from server.hub.connection import Connection
from server.hub.hub import CLOSE_WAIT, NOT_A_MEMBER, Hub
from server.models import ApiToken, Membership, User
from server.permissions import ALL, Privilege
from server.protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED
from server.revocations import Revocation

__all__ = ["INACTIVE", "SESSION_EXPIRED", "SESSION_REVOKED", "Refusal", "Revoker",
           "seconds_left"]

log = logging.getLogger("labelhub.revocation")
SESSION_REVOKED = "session revoked"
#: Why a socket is closed (4401) when the login token it was opened with reaches its TTL.
SESSION_EXPIRED = "session expired"
INACTIVE = "account no longer active"


@dataclass(frozen=True)
class Refusal:
    """Why an edit may not commit: the request's error ``code`` and ``message``, and the
    socket's close (reason, code) when it has lost access altogether."""

    code: str
    message: str
    close: tuple[str, int] | None


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
        heard = self.heard
        try:
            async with self.sessions() as session:
                state = await _access(session, user_id, conns)
        except Exception:  # the next revocation or reconnect re-checks; never kill the caller
            log.exception("re-checking the sockets of user %s failed", user_id)
            return
        user, live_tokens, memberships = state
        for conn in conns:
            self._apply(conn, user, live_tokens, memberships)
            conn.verified = max(conn.verified, heard)  # the next edit need not read it again

    def _apply(self, conn: Connection, user: Any, live_tokens: set[int],
               memberships: dict[int, int]) -> None:
        if conn.dropped:
            return
        lost = _lost(conn, user, live_tokens)
        if lost is not None:
            conn.revoke(*lost)
            return
        conn.is_admin = bool(user.is_admin)
        if conn.project_id is not None:
            privileges = int(ALL) if conn.is_admin else memberships.get(conn.project_id)
            self.hub.set_privileges(conn, privileges, always=False)

    async def verify(self, session: AsyncSession, conn: Connection,
                     needed: int) -> Refusal | None:
        """Right before an edit of ``conn`` commits, in the edit's transaction: when a revocation
        was heard since the socket's access was last verified, re-read it there. Returns why
        the edit may no longer be made (it rolls back; the caller answers the request, then
        closes the socket when ``close`` says so), else ``None``. So an edit in flight when the
        revocation landed is refused although its own checks ran before it."""
        if not conn.needs_verify():
            return None
        heard = self.heard
        user, live_tokens, memberships = await _access(session, conn.user_id, (conn,))
        lost = _lost(conn, user, live_tokens)
        if lost is None and conn.project_id is not None and not user.is_admin \
                and not memberships.get(conn.project_id, 0) & int(Privilege.VIEW):
            lost = (NOT_A_MEMBER, CLOSE_FORBIDDEN)
        if lost is not None:
            code = "forbidden" if lost[0] == NOT_A_MEMBER else "unauthorized"
            return Refusal(code, lost[0], lost)
        self._apply(conn, user, live_tokens, memberships)  # a downgrade: told, not closed
        if not conn.privileges & needed:
            return Refusal("forbidden", "this needs the 'label' privilege", None)
        conn.verified = heard
        return None

    async def close(self) -> None:
        # As Hub.close: a re-check ends after its read (cancelled half-way, its connection
        # could outlive the engine); one stuck on the database is cancelled after a while.
        tasks = list(self._tasks)
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=CLOSE_WAIT)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _lost(conn: Connection, user: Any, live_tokens: set[int]) -> tuple[str, int] | None:
    """Why ``conn`` must close (reason, close code) as far as the account and the credential
    go, or ``None``."""
    if user is None or not user.is_active:
        return INACTIVE, CLOSE_FORBIDDEN
    cred = conn.credential
    if cred is not None and (
            (cred.token_version is not None and cred.token_version != user.token_version)
            or (cred.api_token_id is not None and cred.api_token_id not in live_tokens)):
        return SESSION_REVOKED, CLOSE_UNAUTHORIZED
    left = seconds_left(cred)
    if left is not None and left <= 0:
        return SESSION_EXPIRED, CLOSE_UNAUTHORIZED
    return None


def seconds_left(credential: Credential | None) -> float | None:
    """Seconds until a socket's login token expires (``None``: it does not, an API token)."""
    if credential is None or credential.expires_at is None:
        return None
    return credential.expires_at - time.time()


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
