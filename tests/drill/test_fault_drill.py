"""The fault drill (issue 18): Labelhub as a team runs it beyond one machine, and things break.

PostgreSQL, SeaweedFS (a real S3 store, from its wheel), two ``labelhub serve`` processes each
with a data directory of its own (nothing may depend on it) and one ``labelhub worker``, behind a
small TCP load balancer. Under a steady stream of edits from several clients:

1. ``kill -9`` one app process: every acknowledged op is in the database exactly once, the
   clients reconnect through the balancer to the other process and resume (the SDK resends what
   was not acknowledged, with the same ``client_op_id``), and a lock held by the dead process
   expires and is handed to someone else;
2. ``kill -9`` the worker mid-job: a restarted worker completes the job;
3. the object store stops answering: an upload fails with a clear ``503`` and writes nothing;
   when the store is back, the same upload succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from client import LabelhubClient, LockedError, RestClient
from server.db import make_engine, make_sessionmaker, transaction
from server.jobs import defer
from server.protocol import JobEvent, LockEvent
from tests._db import ROOT, PgTemplate, pg_base_url, with_database
from tests._seaweed import Seaweed
from tests.client.conftest import png
from tests.drill._balancer import Balancer
from tests.hub.test_multiprocess import Node, _start, _stop

pytestmark = pytest.mark.postgres

ADMIN = ("admin@example.com", "admin-password-1")
TIMEOUT = 60.0
EDITS = 40          # per labeler
KILL_AFTER = 12     # edits each labeler has acknowledged before node A dies
LABELERS = 3


def _box(name: str) -> dict[str, Any]:
    return {"kind": "create", "object": {"id": name, "type": "bbox", "label": "car",
                                         "geometry": {"x": 1, "y": 1, "w": 9, "h": 9}}}


@contextlib.contextmanager
def _worker(env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@contextlib.asynccontextmanager
async def _cluster(pg_template: PgTemplate, seaweed: Seaweed, tmp_path: Path) -> AsyncIterator[
        tuple[list[Node], Balancer, dict[str, str], str]]:
    name = await pg_template.copy()
    url = with_database(pg_base_url(), name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELHUB_")}
    env.update(seaweed.env())
    env.update({
        "LABELHUB_DATABASE_URL": url,
        "LABELHUB_STORAGE_URL": f"s3://labelhub-tests/drill-{uuid.uuid4().hex[:8]}",
        "LABELHUB_STORAGE_TIMEOUT_SECONDS": "2",
        "LABELHUB_SECRET_KEY": "drill-secret-shared-by-every-process",
        "LABELHUB_ADMIN_EMAIL": ADMIN[0], "LABELHUB_ADMIN_PASSWORD": ADMIN[1],
        "LABELHUB_PASSWORD_TIME_COST": "1", "LABELHUB_PASSWORD_MEMORY_KIB": "1024",
        "LABELHUB_WORKERS": "0", "LABELHUB_LOCK_TTL_SECONDS": "6", "LABELHUB_JOB_LEASE_SECONDS": "2",
        "PYTHONPATH": str(ROOT)})
    nodes: list[Node] = []
    balancer: Balancer | None = None
    try:
        for i in range(2):  # one after the other: the first creates the site admin
            nodes.append(await asyncio.to_thread(
                _start, {**env, "LABELHUB_DATA_DIR": str(tmp_path / f"node{i}")}))
        balancer = await Balancer.start([int(n.url.rsplit(":", 1)[1]) for n in nodes])
        yield nodes, balancer, env, url
    finally:
        if balancer is not None:
            await balancer.close()
        for node in nodes:
            _stop(node)
        await PgTemplate.drop(name)


async def _labeler(admin: RestClient, project: int, url: str, i: int) -> tuple[str, str]:
    email = f"drill{i}@example.com"
    await admin.create_user(email, "password-123", f"Labeler {i}")
    await admin.add_member(project, email, "labeler")
    return email, "password-123"


async def test_fault_drill(pg_template: PgTemplate, seaweed: Seaweed, tmp_path: Path) -> None:
    async with _cluster(pg_template, seaweed, tmp_path) as (nodes, balancer, env, db_url):
        async with RestClient(balancer.url) as admin:
            await admin.login(*ADMIN)
            project = (await admin.create_project("drill"))["id"]
            uploaded = await admin.upload_images(project, [(f"d{i}.png", png(i)) for i in range(5)])
            images = sorted(item["id"] for item in uploaded)
            assert len(images) == 5
            logins = [await _labeler(admin, project, balancer.url, i) for i in range(LABELERS + 1)]
        await _edits_survive_a_killed_app_process(nodes, balancer, project, images, logins, db_url)
        await _a_killed_worker_s_job_completes(env, tmp_path, balancer, project, db_url)
        await _uploads_wait_out_a_store_outage(seaweed, balancer, project, db_url)


async def _edits_survive_a_killed_app_process(
        nodes: list[Node], balancer: Balancer, project: int, images: list[int],
        logins: list[tuple[str, str]], db_url: str) -> None:
    # A holder on node A alone (no balancer, no reconnect): its lock dies with the process.
    holder = LabelhubClient(nodes[0].url, project, email=logins[-1][0], password=logins[-1][1],
                            reconnect=False, timeout=TIMEOUT)
    await holder.connect()
    held = images[-1]
    await holder.open_image(held)
    # Heartbeats well inside the (short, for the drill) lock lease: only a dead process's locks lapse.
    hubs = [LabelhubClient(balancer.url, project, email=e, password=p, timeout=TIMEOUT,
                           heartbeat_interval=1.0) for e, p in logins[:LABELERS]]
    for hub in hubs:
        await hub.connect()
    assert balancer.served == {0, 1}  # the labelers are spread over both processes
    acked: dict[str, int] = {}
    reached = [asyncio.Event() for _ in hubs]

    async def stream(k: int, hub: LabelhubClient) -> None:
        await hub.open_image(images[k])
        for n in range(EDITS):
            name = f"l{k}-{n}"
            done = await hub.op(images[k], _box(name), client_op_id=name)
            acked[name] = done.seq
            if n + 1 == KILL_AFTER:
                reached[k].set()

    # The held image is someone else's now; one labeler watches it.
    taker = hubs[0]
    with pytest.raises(LockedError):
        await taker.open_image(held)
    await taker.subscribe(held)
    streams = [asyncio.create_task(stream(k, hub)) for k, hub in enumerate(hubs)]
    for event in reached:
        await asyncio.wait_for(event.wait(), TIMEOUT)
    nodes[0].process.send_signal(signal.SIGKILL)  # mid-stream: ops are in flight
    nodes[0].process.wait(timeout=30)
    balancer.drop(0)
    await asyncio.wait_for(asyncio.gather(*streams), TIMEOUT * 2)
    assert sum(hub.reconnects for hub in hubs) >= 1  # someone was on node A and came back

    # Every acknowledged op is in the log exactly once, and so is each box.
    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        logged = await conn.fetch("SELECT client_op_id, seq FROM op_log WHERE project_id = $1 "
                                  "AND client_op_id LIKE 'l%'", project)
        boxes = await conn.fetch("SELECT id FROM objects WHERE project_id = $1", project)
    finally:
        await conn.close()
    assert len(acked) == LABELERS * EDITS
    assert sorted(r["client_op_id"] for r in logged) == sorted(acked)  # none lost, none twice
    assert {r["client_op_id"]: r["seq"] for r in logged} == acked
    assert sorted(r["id"] for r in boxes) == sorted(acked)

    # The dead process's lock lapses (heard as an event, replayed across the reconnect if it
    # came meanwhile) and is handed to someone else.
    while True:
        event = await taker.next_event(LockEvent, within=TIMEOUT)
        assert isinstance(event, LockEvent)
        if event.image == held and event.state == "expired":
            break
    assert (await taker.open_image(held)).lock.token >= 2
    for hub in hubs:
        await hub.close()
    with contextlib.suppress(Exception):
        await holder.close()


async def _a_killed_worker_s_job_completes(env: dict[str, str], tmp_path: Path,
                                           balancer: Balancer, project: int, db_url: str) -> None:
    engine = make_engine(db_url)
    watcher = LabelhubClient(balancer.url, project, email=ADMIN[0], password=ADMIN[1],
                             timeout=TIMEOUT)
    await watcher.connect()
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            job = await defer(session, kind="count", project_id=project,
                              params={"to": 30, "step_seconds": 0.1})
        work = {**env, "LABELHUB_DATA_DIR": str(tmp_path / "worker")}
        with _worker(work, tmp_path) as first:
            state = await _job_until(watcher, job, lambda s: s.progress.done >= 3)
            assert state.status == "running"
            first.send_signal(signal.SIGKILL)  # mid-job: its lease runs out, nobody hands it back
            first.wait(timeout=30)
        with _worker(work, tmp_path):
            state = await _job_until(watcher, job, lambda s: s.status in ("done", "failed"))
        assert state.status == "done", state
        assert state.progress.done == 30 and state.attempts == 2
        assert state.result is not None and state.result["resumed_from"] >= 3  # kept its progress
    finally:
        await watcher.close()
        await engine.dispose()


async def _job_until(watcher: LabelhubClient, job: int, test: Any) -> Any:
    while True:
        event = await watcher.next_event(JobEvent, within=TIMEOUT)
        assert isinstance(event, JobEvent)
        if event.job.id == job and test(event.job):
            return event.job


async def _uploads_wait_out_a_store_outage(seaweed: Seaweed, balancer: Balancer, project: int,
                                           db_url: str) -> None:
    async with RestClient(balancer.url) as admin:
        await admin.login(*ADMIN)
        before = (await admin.http.get(f"/api/v1/projects/{project}/images")).json()["total"]
        files = [("files", ("outage.png", png(99), "image/png"))]
        seaweed.stop()
        try:
            refused = await admin.http.post(f"/api/v1/projects/{project}/images", files=files)
        finally:
            seaweed.resume()
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "storage_unavailable"
        assert (await admin.http.get(f"/api/v1/projects/{project}/images")).json()["total"] == before
        again = await admin.http.post(f"/api/v1/projects/{project}/images", files=files)
        assert again.status_code == 201, again.text
        image = again.json()["results"][0]["image"]["id"]
        assert (await admin.http.get(f"/api/v1/images/{image}/file")).status_code == 200
