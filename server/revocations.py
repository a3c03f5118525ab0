"""Telling every server process that someone lost access, once the revoking commit has landed.

Whatever takes access away — logout, a password change, revoking an API token, deactivating an
account, demoting a site admin, changing or removing a membership, deleting a project — calls
:func:`announce` inside its transaction. Nothing is sent if the transaction rolls back:

* in this process, every callback registered with :func:`on_revocation` runs after the commit
  (SQLite has one process; on PostgreSQL this is the fast path for this process's sockets);
* on PostgreSQL, ``pg_notify('labelhub_revoke', payload)`` runs inside the transaction, and
  PostgreSQL delivers a NOTIFY only when its transaction commits; every process's bus listens.

The payload names the user, the project (or none: every project) and why. Receivers re-read the
user's credentials and memberships rather than trusting the payload, so hearing a revocation
twice, or late, does no harm.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.db import is_postgresql

__all__ = ["CHANNEL", "Reason", "Revocation", "announce", "on_revocation", "parse"]

#: PostgreSQL channel every process LISTENs on (``server.hub.bus.PgBus``).
CHANNEL = "labelhub_revoke"
#: ``session.info`` key of the revocations announced in the open transaction.
PENDING_KEY = "labelhub.revocations"

Reason = Literal["logout", "password", "token", "deactivated", "admin", "membership",
                 "project_deleted"]
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


@dataclass(frozen=True)
class Revocation:
    user_id: int
    project_id: int | None  # None: every project (the account's credentials changed)
    reason: str


Listener = Callable[[Revocation], None]
_listeners: list[Listener] = []


async def announce(session: AsyncSession, user_id: int, project_id: int | None,
                   reason: Reason) -> None:
    """Announce, once this transaction commits, that ``user_id`` may have lost access."""
    revocation = Revocation(user_id, project_id, reason)
    session.info.setdefault(PENDING_KEY, []).append(revocation)
    if is_postgresql(session):
        payload = json.dumps({"user": user_id, "project": project_id, "reason": reason})
        await session.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


def parse(payload: str) -> Revocation | None:
    """A NOTIFY payload back into a :class:`Revocation`; ``None`` if it is not one."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    user, project, reason = data.get("user"), data.get("project"), data.get("reason")
    if not isinstance(user, int) or not (project is None or isinstance(project, int)):
        return None
    return Revocation(user, project, str(reason))


def on_revocation(callback: Listener) -> Callable[[], None]:
    """Call ``callback(revocation)`` after each commit that announced one (synchronously, in
    the committing task: keep it cheap); returns an unregister function."""
    _listeners.append(callback)
    return lambda: _listeners.remove(callback) if callback in _listeners else None


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for revocation in session.info.pop(PENDING_KEY, []):
        for callback in list(_listeners):
            callback(revocation)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
