"""Request ids (unique per connection) and client op ids (unique per user, forever)."""

from __future__ import annotations

import itertools
import uuid


class RequestIds:
    """``r1``, ``r2``, … — short, and never reused by one client object."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def __call__(self) -> str:
        return f"r{next(self._next)}"


def new_client_op_id() -> str:
    """The server deduplicates ops by (user, client_op_id) over the whole log: use a UUID."""
    return uuid.uuid4().hex
