"""The hub's in-process delivery: committed rows fanned out in order (a row ahead of a missing
one waits for it, then for the tail), rows heard from other processes likewise, and a process's
own doorbells not read twice. No database: rooms and connections are real objects, frames stay
in each connection's backlog (no websocket)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from server._oplog import LoggedOp
from server.hub import hub as hub_module
from server.hub.connection import Connection
from server.hub.hub import Hub, Room
from server.permissions import Privilege
from server.protocol import ProgressEvent


def _op(seq: int, image: int = 7, user: int = 2, client_op_id: str | None = None) -> LoggedOp:
    return LoggedOp(seq=seq, image_id=image, user_id=user, kind="delete",
                    op={"kind": "delete", "object_id": "a"}, client_op_id=client_op_id, origin="edit")


def _watcher(project: int, image: int, since: int, user: int = 1) -> Connection:
    conn = Connection(websocket=None, user_id=user, user_name="w", is_admin=False)
    conn.project_id, conn.privileges = project, int(Privilege.VIEW)
    conn.subscriptions[image] = since
    return conn


async def _after_scheduled_callbacks() -> None:
    """Until the callbacks scheduled so far have run (the loop runs them in order)."""
    ran = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(ran.set_result, None)
    await ran


def _frames(conn: Connection) -> list[dict[str, object]]:
    return [json.loads(f) for f in conn.backlog]


async def test_committed_rows_are_fanned_out_in_order_a_row_ahead_waits_for_the_missing_one() -> None:
    hub = Hub(sessions=None)  # type: ignore[arg-type]  # the tail never runs here
    room = hub.rooms[3] = Room(project_id=3, seq=5)
    watcher, other_image, sender = _watcher(3, 7, 5), _watcher(3, 8, 0), _watcher(3, 7, 5, user=2)
    sender.own_ops.append("mine")
    room.connections |= {watcher, other_image, sender}

    hub.committed(3, 7, [_op(6), _op(7, client_op_id="mine")])
    await _after_scheduled_callbacks()  # delivery runs right after the committing step
    assert room.seq == 7 and not room.wake.is_set()
    assert [f["seq"] for f in _frames(watcher)] == [6, 7]
    assert _frames(other_image) == []  # not subscribed to image 7
    assert [f["seq"] for f in _frames(sender)] == [6]  # its own op came back as an ack

    hub.committed(3, 9, [_op(9)])  # seq 8 is not here yet: 9 waits for it
    await _after_scheduled_callbacks()
    assert room.seq == 7 and not room.wake.is_set() and room.gap_timer is not None
    assert [f["seq"] for f in _frames(watcher)] == [6, 7]
    hub.committed(3, 8, [_op(8)])  # its commit finished second: both go out, in order
    await _after_scheduled_callbacks()
    assert room.seq == 9 and not room.wake.is_set() and room.gap_timer is None
    assert [f["seq"] for f in _frames(watcher)] == [6, 7, 8, 9]


async def test_a_seq_that_does_not_come_wakes_the_tail_after_the_grace() -> None:
    """Held rows wait ``gap_grace`` for the missing one (another process's row too big for its
    notice, say), then the tail reads them all from the log; a late copy is dropped."""
    hub = Hub(sessions=None)  # type: ignore[arg-type]  # the tail never runs here
    hub.gap_grace = 0.0
    room = hub.rooms[3] = Room(project_id=3, seq=5)
    watcher = _watcher(3, 7, 5)
    room.connections.add(watcher)
    hub.committed(3, 8, [_op(7), _op(8)])
    await asyncio.wait_for(room.wake.wait(), 30)  # the grace ran out: read the log
    assert room.seq == 5 and sorted(room.early) == [7, 8] and _frames(watcher) == []
    room.seq = 8  # what the tail's read did (Hub._advance) ...
    assert room.take(()) == [] and room.early == {}  # ... drops the rows it held
    hub.committed(3, 7, [_op(7)])  # a late copy
    await _after_scheduled_callbacks()
    assert room.seq == 8 and room.early == {} and _frames(watcher) == []


async def test_too_many_held_rows_are_dropped_for_the_log() -> None:
    hub = Hub(sessions=None)  # type: ignore[arg-type]
    room = hub.rooms[3] = Room(project_id=3, seq=0)
    hub.heard_row(3, _op(2), own=False)
    assert list(room.early) == [2] and not room.wake.is_set()
    for seq in range(3, hub_module.EARLY_LIMIT + 3):
        hub.heard_row(3, _op(seq), own=False)
    assert room.early == {} and room.wake.is_set()
    await hub.close()  # cancels the grace timer


async def test_own_doorbells_are_skipped_and_a_reconnect_reads_everything() -> None:
    hub = Hub(sessions=None)  # type: ignore[arg-type]
    hub.counts_own_rings = True
    room = hub.rooms[3] = Room(project_id=3, seq=0)
    hub.committed(4, 1, None)  # a commit in a project nobody here watches still rang
    hub.committed(3, 1, None)
    assert hub.own_rings == 2 and room.wake.is_set()  # a bulk block: read by the tail
    room.wake.clear()
    hub.doorbell()
    hub.doorbell()
    assert hub.own_rings == 0 and not room.wake.is_set()  # both were ours
    hub.doorbell()
    assert room.wake.is_set()  # another process's
    room.wake.clear()
    hub.committed(4, 2, None)
    hub.resync_rings()  # the listener reconnected: rings may be lost, read everything
    assert hub.own_rings == 0 and room.wake.is_set()


async def test_rows_heard_from_other_processes_are_delivered_in_order_a_row_ahead_waits() -> None:
    hub = Hub(sessions=None)  # type: ignore[arg-type]
    hub.counts_own_rings = True
    room = hub.rooms[3] = Room(project_id=3, seq=5)
    watcher = _watcher(3, 7, 5)
    room.connections.add(watcher)
    hub.heard_row(3, _op(6), own=False)  # the next seq: fanned out at once, no read
    hub.heard_row(3, _op(6), own=False)  # heard again (or read already): dropped
    hub.heard_row(4, _op(1), own=False)  # a project nobody here watches
    assert room.seq == 6 and not room.wake.is_set()
    assert [f["seq"] for f in _frames(watcher)] == [6]
    hub.heard_row(3, _op(8), own=False)  # seq 7 is not heard yet: 8 waits for it
    assert room.seq == 6 and not room.wake.is_set() and list(room.early) == [8]
    assert [f["seq"] for f in _frames(watcher)] == [6]
    hub.heard_row(3, _op(7), own=False)
    assert room.seq == 8 and room.early == {} and [f["seq"] for f in _frames(watcher)] == [6, 7, 8]


async def test_own_rows_settle_the_doorbells_their_commits_counted() -> None:
    hub = Hub(sessions=None)  # type: ignore[arg-type]
    hub.counts_own_rings = True
    room = hub.rooms[3] = Room(project_id=3, seq=0)
    watcher = _watcher(3, 7, 0)
    room.connections.add(watcher)
    hub.committed(3, 1, [_op(1)])
    await _after_scheduled_callbacks()
    hub.heard_row(3, _op(1), own=True)  # delivered at its commit: only the count settles
    assert hub.own_rings == 0 and [f["seq"] for f in _frames(watcher)] == [1]
    hub.heard_row(3, _op(2), own=True)  # the row may come before its commit's callback
    hub.committed(3, 2, [_op(2)])
    await _after_scheduled_callbacks()
    assert hub.own_rings == 0 and [f["seq"] for f in _frames(watcher)] == [1, 2]
    room.wake.clear()
    hub.doorbell()  # so another process's doorbell is not taken for ours
    assert room.wake.is_set()


async def test_a_connection_without_view_gets_no_project_events() -> None:
    """Defense in depth: a connection whose cached privileges lost "view" (a request saw it
    first) is skipped by lock and project-wide rows, presence and progress; one revoked
    (Connection.revoke) has no subscriptions left, so no image op picks it either."""
    hub = Hub(sessions=None)  # type: ignore[arg-type]
    room = hub.rooms[3] = Room(project_id=3, seq=5)
    kept, unseen, revoked = _watcher(3, 7, 5), _watcher(3, 8, 0, user=4), _watcher(3, 7, 5, user=5)
    unseen.privileges = 0
    revoked.revoke("gone", 4403)
    room.connections |= {kept, unseen, revoked}
    lock = LoggedOp(seq=6, image_id=7, user_id=2, kind="lock", op={"state": "released"},
                    client_op_id=None, origin="lock")
    assert Hub._receivers(room.connections, lock, replay=False) == [kept]
    assert Hub._receivers(room.connections, _op(6), replay=False) == [kept]
    assert hub.audience(room) == [kept]
    hub.committed(3, 7, [lock, _op(7)])
    await _after_scheduled_callbacks()
    assert [f.get("seq") for f in _frames(kept)] == [6, 7]
    assert _frames(unseen) == _frames(revoked) == []


async def test_losing_view_drops_the_socket_a_change_tells_it() -> None:
    hub = Hub(sessions=None)  # type: ignore[arg-type]
    member, removed = _watcher(3, 7, 5), _watcher(3, 7, 5, user=4)
    hub.set_privileges(member, int(Privilege.VIEW | Privilege.REVIEW), always=False)
    hub.set_privileges(member, int(Privilege.VIEW | Privilege.REVIEW), always=False)  # no news
    hub.set_privileges(removed, None)
    assert _frames(member) == [{"type": "privileges", "privileges": ["view", "review"]}]
    assert removed.dropped and removed.close_code == 4403 and removed.privileges == 0


class _GatedCounts(Hub):
    """A hub whose progress query reads the counts at once, then stays in flight until
    ``gate`` opens (the database is a dict here): a commit can land while it runs."""

    def __init__(self) -> None:
        super().__init__(sessions=None)  # type: ignore[arg-type]
        self.labeled = 0
        self.gate = asyncio.Event()
        self.queried = asyncio.Event()

    async def progress(self, project_id: int, seq: int) -> ProgressEvent:
        labeled = self.labeled  # what the query saw
        self.queried.set()
        await self.gate.wait()
        return ProgressEvent(project=project_id, seq=seq, total=5, labeled=labeled,
                             in_progress=0, untouched=5 - labeled)


async def test_a_commit_during_a_progress_query_gets_its_own_progress_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "PROGRESS_INTERVAL", 0.0)  # no throttle wait in the test
    hub = _GatedCounts()
    room = hub.rooms[3] = Room(project_id=3, seq=0)
    dashboard = _watcher(3, 7, 0)
    room.connections.add(dashboard)

    hub.labeled = 1
    hub.committed(3, 7, [_op(1)])
    await hub.queried.wait()  # the count for seq 1 is under way and has read labeled = 1
    hub.labeled = 2
    hub.committed(3, 7, [_op(2)])  # lands while that count is in flight
    await _after_scheduled_callbacks()
    hub.gate.set()
    while room.progress_task is not None and not room.progress_task.done():
        await room.progress_task
    progress = [f for f in _frames(dashboard) if f["type"] == "progress"]
    assert progress[-1]["labeled"] == 2 and progress[-1]["seq"] == 2
    assert [f["labeled"] for f in progress] == [1, 2]


async def test_close_lets_a_read_under_way_finish_and_ends_the_waits() -> None:
    # A read cancelled half-way would leave its connection open past the engine's disposal.
    entered, release, finished = asyncio.Event(), asyncio.Event(), []

    class SlowHub(Hub):
        async def progress(self, project_id: int, seq: int) -> ProgressEvent:
            entered.set()
            await release.wait()  # the read under way
            finished.append(project_id)
            return ProgressEvent(project=project_id, seq=seq, total=0, labeled=0, in_progress=0,
                                 untouched=0)

    hub = SlowHub(sessions=None)  # type: ignore[arg-type]
    reading = hub.rooms[1] = Room(project_id=1, seq=0)
    waiting = hub.rooms[2] = Room(project_id=2, seq=0)
    hub._schedule_progress(reading)
    await entered.wait()
    waiting.progress_due = time.monotonic() + 3600  # throttled: its next count is due in an hour
    hub._schedule_progress(waiting)
    closing = asyncio.create_task(hub.close())
    await _after_scheduled_callbacks()
    assert not closing.done() and reading.progress_task is not None
    assert not reading.progress_task.cancelled()
    release.set()
    await closing
    assert finished == [1]  # the read finished; the throttled room never started one
    assert reading.progress_task.done() and not reading.progress_task.cancelled()
    assert waiting.progress_task is not None and not waiting.progress_task.cancelled()
    assert hub.rooms == {}
