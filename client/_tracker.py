"""Where a client stands in its project's event stream, so a resume loses and repeats nothing.

The server sends one connection its events in seq order, so the newest seq seen is a safe resume
point (``hello{since}``). The ack of one's own op is not (an earlier op by someone else may still
be on its way), so acks only mark seqs as one's own: a replay after a reconnect repeats them and
they are dropped here, as is anything at or below an image's snapshot seq.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from server.protocol import LockEvent, OpEvent, ResetEvent, Snapshot

REMEMBERED = 10_000  # own op ids and seqs kept for filtering replays


class _Recent:
    """A set that forgets its oldest members past ``limit``."""

    def __init__(self, limit: int) -> None:
        self._order: deque[Any] = deque()
        self._members: set[Any] = set()
        self._limit = limit

    def add(self, item: Any) -> None:
        if item in self._members:
            return
        self._order.append(item)
        self._members.add(item)
        if len(self._order) > self._limit:
            self._members.discard(self._order.popleft())

    def __contains__(self, item: object) -> bool:
        return item in self._members


class Tracker:
    def __init__(self) -> None:
        self.seq = 0  # every event at or below this one has been received
        self.images: dict[int, int] = {}  # subscribed image -> seq its state is at
        self.own_ids = _Recent(REMEMBERED)
        self.own_seqs = _Recent(REMEMBERED)
        self.user_id: int | None = None

    def joined(self, seq: int | None) -> None:
        if seq is not None:
            self.seq = max(self.seq, seq)

    def keep(self, event: Any) -> bool:
        """Update the position for ``event``; False when it is a repeat or an echo of mine."""
        if isinstance(event, Snapshot):
            self.images[event.image] = event.seq
            return True
        if isinstance(event, ResetEvent):
            self.seq = event.seq
            return True
        if isinstance(event, OpEvent | LockEvent):
            if event.seq <= self.seq:
                return False
            self.seq = event.seq
            if event.image is not None and event.image in self.images:
                if event.seq <= self.images[event.image]:
                    return False  # already part of the image's snapshot
                self.images[event.image] = event.seq
            if isinstance(event, OpEvent) and self._mine(event):
                return False
        return True

    def _mine(self, event: OpEvent) -> bool:
        if event.seq in self.own_seqs:
            return True
        return (event.client_op_id is not None and event.client_op_id in self.own_ids
                and event.user == self.user_id)
