"""LabelhubClient against a real server: acks, broadcast, locks, undo, resume and resend."""

from __future__ import annotations

import asyncio
import logging

import pytest

from client import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    LabelhubClient,
    LockedError,
    LockLostError,
    NothingToUndoError,
)
from server.db import transaction
from server.jobs import defer
from server.protocol import JobEvent, LockEvent, OpEvent, Snapshot
from tests.client.conftest import TIMEOUT, Team
from tests.jobs.conftest import running_worker


def box(oid: str, x: float = 2) -> dict[str, object]:
    return {"kind": "create", "object": {"id": oid, "type": "bbox", "label": "car",
                                         "geometry": {"x": x, "y": 2, "w": 10, "h": 8}}}


async def op_events(hub: LabelhubClient, until_seq: int) -> list[OpEvent]:
    """Op events in arrival order up to and including ``until_seq``."""
    out: list[OpEvent] = []
    while not out or out[-1].seq < until_seq:
        event = await hub.next_event(OpEvent)
        assert isinstance(event, OpEvent)
        out.append(event)
    return out


async def test_op_is_acknowledged_and_reaches_a_watcher(team: Team) -> None:
    (a_token, a_id), (b_token, _) = await team.member("ana"), await team.member("bo")
    ana, bo = await team.hub(a_token), await team.hub(b_token)
    image = team.images[0]
    opened = await ana.open_image(image)
    assert opened.lock is not None and opened.snapshot.objects == []
    snap = await bo.subscribe(image)
    assert isinstance(snap, Snapshot) and snap.lock is not None

    applied = await ana.op(image, box("b1"))
    event = await bo.next_event(OpEvent)
    assert isinstance(event, OpEvent)
    assert (event.seq, event.user, event.image, event.client_op_id) == (
        applied.seq, a_id, image, applied.client_op_id)
    assert event.op["object"]["id"] == "b1"
    assert not applied.duplicate


async def test_lock_is_exclusive_and_names_the_holder(team: Team) -> None:
    (a_token, a_id), (b_token, _) = await team.member("ana"), await team.member("bo")
    ana = await team.hub(a_token)
    await ana.open_image(team.images[0])
    bo = await team.hub(b_token)
    # Who was on which image when bo joined.
    assert ana.present == [] and [(p.user.id, p.image) for p in bo.present] == [(a_id, team.images[0])]
    with pytest.raises(LockedError) as caught:
        await bo.open_image(team.images[0])
    assert caught.value.holder is not None and caught.value.holder.id == a_id
    await ana.release_image(team.images[0])
    event = await bo.next_event(LockEvent)
    assert isinstance(event, LockEvent) and event.image == team.images[0]
    assert (await bo.open_image(team.images[0])).lock is not None


async def test_a_viewer_may_not_edit(team: Team) -> None:
    token, _ = await team.member("vic", role="viewer")
    vic = await team.hub(token)
    with pytest.raises(ForbiddenError):
        await vic.open_image(team.images[0])
    with pytest.raises(ForbiddenError):
        await vic.op(team.images[0], box("x"), token=1)


async def test_a_bad_token_is_refused_at_connect(team: Team) -> None:
    hub = LabelhubClient(team.live.url, team.project, token="not-a-token", timeout=TIMEOUT)
    with pytest.raises(AuthenticationError):
        await hub.connect()
    await hub.close()


async def test_undo_and_redo_are_broadcast(team: Team) -> None:
    (a_token, _), (b_token, _) = await team.member("ana"), await team.member("bo")
    ana, bo = await team.hub(a_token), await team.hub(b_token)
    image = team.images[1]
    await ana.open_image(image)
    await bo.subscribe(image)
    with pytest.raises(NothingToUndoError):
        await ana.undo(image)
    made = await ana.op(image, box("u1"))
    undone = await ana.undo(image)
    redone = await ana.redo(image)
    seen = await op_events(bo, redone.seq)
    assert [e.seq for e in seen] == [made.seq, undone.seq, redone.seq]
    assert [e.origin for e in seen] == ["edit", "undo", "redo"]
    assert undone.op is not None and undone.op["kind"] == "delete"


async def test_next_image_hands_each_image_to_one_labeler(team: Team) -> None:
    tokens = [(await team.member(f"l{i}"))[0] for i in range(3)]
    hubs = [await team.hub(t) for t in tokens]
    got = await asyncio.gather(*(h.next_image() for h in hubs))
    images = [g.image for g in got if g is not None]
    assert len(images) == 3 and len(set(images)) == 3
    rest = [await hubs[0].next_image(after=images[0], release=False) for _ in range(1)]
    assert rest[0] is not None and rest[0].image not in images


async def test_watcher_resumes_after_the_server_drops_it(team: Team) -> None:
    (a_token, _), (b_token, b_id) = await team.member("ana"), await team.member("bo")
    ana, bo = await team.hub(a_token), await team.hub(b_token)
    image = team.images[2]
    await ana.open_image(image)
    await bo.subscribe(image)
    acked = [(await ana.op(image, box(f"w{i}", i))).seq for i in range(5)]
    first = await op_events(bo, acked[-1])
    team.live.drop(team.project, b_id)
    acked += [(await ana.op(image, box(f"w{i}", i))).seq for i in range(5, 15)]
    rest = await op_events(bo, acked[-1])
    assert [e.seq for e in first + rest] == acked  # nothing lost, nothing twice
    assert bo.reconnects == 1


async def test_editor_resumes_and_each_op_applies_once(team: Team) -> None:
    (a_token, a_id), (b_token, _) = await team.member("ana"), await team.member("bo")
    ana, bo = await team.hub(a_token), await team.hub(b_token)
    image = team.images[3]
    opened = await ana.open_image(image)
    await bo.subscribe(image)
    first = await ana.op(image, box("e0"))
    sends = [asyncio.create_task(ana.op(image, box(f"e{i}", i))) for i in range(1, 20)]
    team.live.drop(team.project, a_id)
    applied = [first, *await asyncio.gather(*sends)]
    seqs = [a.seq for a in applied]
    assert len(set(seqs)) == 20
    assert ana.reconnects == 1
    lock = ana.lock(image)
    assert lock is not None and opened.lock is not None and lock.token > opened.lock.token
    seen = await op_events(bo, max(seqs))
    assert sorted(e.seq for e in seen) == sorted(seqs)
    item = await team.admin.image(image)
    assert item["object_count"] == 20


async def test_an_unacknowledged_op_is_resent_and_applied_once(team: Team) -> None:
    (a_token, _), (b_token, _) = await team.member("ana"), await team.member("bo")
    ana, bo = await team.hub(a_token), await team.hub(b_token)
    image = team.images[4]
    await ana.open_image(image)
    await bo.subscribe(image)
    ws = ana._conn.ws if ana._conn else None
    assert ws is not None
    ws.transport.pause_reading()  # the ack will sit unread in the socket
    sending = asyncio.create_task(ana.op(image, box("r1")))
    committed = await bo.next_event(OpEvent)
    assert isinstance(committed, OpEvent)
    ws.transport.abort()  # the connection dies with the ack unread
    applied = await sending
    assert applied.duplicate and applied.seq == committed.seq
    assert applied.client_op_id == committed.client_op_id
    log = await team.admin.ops(team.project, image=image)
    assert [o["client_op_id"] for o in log["ops"]].count(applied.client_op_id) == 1
    echoes = [e for e in _drain(ana) if isinstance(e, OpEvent)]
    assert echoes == []  # the replay of my own op is not handed back to me


def _drain(hub: LabelhubClient) -> list[object]:
    out: list[object] = []
    while not hub._events.empty():
        out.append(hub._events.get_nowait())
    return out


async def test_close_releases_my_locks(team: Team) -> None:
    (a_token, _), (b_token, _) = await team.member("ana"), await team.member("bo")
    ana, bo = await team.hub(a_token), await team.hub(b_token)
    await ana.open_image(team.images[5])
    await bo.subscribe(team.images[5])
    await ana.close()
    states: list[str] = []
    while not states or states[-1] != "released":
        event = await bo.next_event(LockEvent)
        assert isinstance(event, LockEvent) and event.image == team.images[5]
        states.append(event.state)
    assert states == ["granted", "released"]
    assert (await bo.open_image(team.images[5])).lock is not None


async def test_close_returns_while_a_heartbeat_is_unanswered(
        team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = team.live.app.state.handlers
    heartbeat, arrived, answer = handlers.heartbeat, asyncio.Event(), asyncio.Event()

    async def held(conn: object, msg: object) -> None:  # the real handler, answered later
        arrived.set()
        await answer.wait()
        await heartbeat(conn, msg)

    monkeypatch.setattr(handlers, "heartbeat", held)
    token, _ = await team.member("ana")
    ana = await team.hub(token, heartbeat_interval=0.01)
    await ana.open_image(team.images[2])
    await arrived.wait()
    # The socket closes under the heartbeat, failing it, and close() cancels the heartbeat
    # task: a cancellation asyncio.wait_for (Python 3.11) swallows when its future has failed.
    closing = asyncio.create_task(ana.close())
    done, _ = await asyncio.wait({closing}, timeout=TIMEOUT)  # a bound on a hang
    answer.set()
    assert closing in done, "close() is stuck awaiting its heartbeat task"


async def test_a_deactivated_account_ends_the_session(team: Team) -> None:
    token, user_id = await team.member("gone")
    hub = await team.hub(token)
    opened = await hub.open_image(team.images[0])
    await team.admin.request("PATCH", f"/api/v1/users/{user_id}", json={"is_active": False})
    with pytest.raises((AuthenticationError, ForbiddenError)):
        await hub.op(opened.image, box("z"))
    remaining = [event async for event in hub.events()]  # ends: the server closed with 4403
    assert all(not isinstance(e, OpEvent) for e in remaining)
    with pytest.raises(ForbiddenError):
        await hub.subscribe(team.images[1])


async def test_a_revoked_session_is_an_authentication_error_not_a_reconnect_loop(
        team: Team) -> None:
    token, _ = await team.member("leaver")
    hub = await team.hub(token)
    opened = await hub.open_image(team.images[2])
    rest = team.live.rests[-1]  # the member's own REST session (same login token)
    await rest.logout()

    async def drain() -> list[object]:
        return [event async for event in hub.events()]

    remaining = await asyncio.wait_for(drain(), 10)  # ends: closed with 4401
    assert all(not isinstance(e, OpEvent) for e in remaining)
    with pytest.raises(AuthenticationError, match="session revoked"):
        await hub.op(opened.image, box("late"))
    assert hub.reconnects == 0


async def test_ops_fail_when_the_image_was_taken_over_while_disconnected(team: Team) -> None:
    (a_token, _), (m_token, m_id) = await team.member("ana"), await team.member("max", "manager")
    ana, boss = await team.hub(a_token), await team.hub(m_token)
    image = team.images[1]
    await ana.open_image(image)
    ws = ana._conn.ws if ana._conn else None
    assert ws is not None
    ws.transport.pause_reading()  # ana will not hear of the take-over before her socket dies
    taken = await boss.open_image(image, take_over=True)
    sending = asyncio.create_task(ana.op(image, box("late")))
    ws.transport.abort()
    with pytest.raises(LockLostError):
        await sending
    with pytest.raises(LockedError) as caught:
        await ana.open_image(image)
    assert caught.value.holder is not None and caught.value.holder.id == m_id
    assert ana.lock(image) is None and ana.reconnects == 1
    assert taken.lock is not None


async def _next_job_event(hub: LabelhubClient, job_id: int) -> JobEvent:
    # Uploads queue embed jobs of their own: this test follows its own job only.
    while True:
        event = await hub.next_event(JobEvent)
        assert isinstance(event, JobEvent)
        if event.job.id == job_id:
            return event


async def test_job_events_and_the_jobs_endpoints(team: Team) -> None:
    assert team.admin.token is not None
    hub = await team.hub(team.admin.token)
    app = team.live.app
    async with transaction(app.state.sessions) as session:
        job_id = await defer(session, kind="count", project_id=team.project,
                             params={"to": 100_000, "step_seconds": 0.01},
                             created_by=(await team.admin.me())["id"])
    async with running_worker(app):
        while (await _next_job_event(hub, job_id)).job.progress.done < 2:
            pass
        listed = [j for j in await team.admin.jobs(team.project, status=["queued", "running"])
                  if j["kind"] == "count"]
        assert [j["id"] for j in listed] == [job_id]
        asked = await team.admin.cancel_job(team.project, job_id)
        assert asked["cancel_requested"] is True
        while (event := await _next_job_event(hub, job_id)).job.status != "cancelled":
            pass
    assert hub.jobs[job_id] == event.job
    assert (await team.admin.job(team.project, job_id))["status"] == "cancelled"
    running = await team.admin.jobs(team.project, status="running")
    assert [j for j in running if j["kind"] == "count"] == []


async def test_the_sdk_sends_its_token_in_a_header_not_the_url(team: Team) -> None:
    seen: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token, _ = await team.member("ana")
        hub = await team.hub(token)
        assert (await hub.open_image(team.images[0])).lock is not None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    accepted = [line for line in seen if "WebSocket /api/v1/ws" in line]
    assert accepted and all("token" not in line for line in accepted), accepted


async def test_workflow_through_the_sdk(team: Team) -> None:
    (a_token, a_id), (s_token, _) = await team.member("ana"), await team.member("sue", "supervisor")
    ana, sue = await team.hub(a_token), await team.hub(s_token)
    assert (await team.admin.assign(team.project, a_id, images=[team.images[3]]))["assigned"] == 1
    opened = await ana.next_image()
    assert opened is not None and opened.image == team.images[3]  # assigned first
    with pytest.raises(LockLostError):  # done needs the lock: not held on another image
        await ana.set_state(team.images[0], "done")
    assert await ana.mark_done(opened.image) == "done"
    await ana.release_image(opened.image)
    event = await sue.next_event(OpEvent)  # every watcher of the project hears of it
    while isinstance(event, OpEvent) and event.op["kind"] != "state":  # the assignment first
        event = await sue.next_event(OpEvent)
    assert isinstance(event, OpEvent) and event.op["to"] == "done"
    with pytest.raises(ForbiddenError):
        await ana.accept(opened.image)
    review = await sue.next_image(queue="review")
    assert review is not None and review.image == opened.image
    assert await sue.reject(opened.image, "missing the wheel") == "rejected"
    with pytest.raises(ConflictError):
        await sue.accept(opened.image)
    item = await team.admin.image(opened.image)
    assert item["state"] == "rejected" and item["review"]["comment"] == "missing the wheel"
