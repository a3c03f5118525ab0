"""The bounded worker pool (server/offload.py): inline when cheap, a process when not, ``busy``
when full. A job is held in its worker by a named pipe the test writes to (an event, no timer)."""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from server import offload
from server.geometry import GeometryError, Policy, TooCostly, edit, parse_object


def wait_for_pipe(path: str) -> int:
    """Block until someone writes a line to the named pipe ``path``; the worker's pid."""
    with open(path) as pipe:
        pipe.readline()
    return os.getpid()


def fail(field: str) -> None:
    raise TooCostly(field, "refused in the worker")


class Gate:
    """A named pipe: a job waiting on it holds its worker until :meth:`open` writes."""

    def __init__(self, tmp_path: Path, name: str = "gate") -> None:
        self.path = str(tmp_path / name)
        os.mkfifo(self.path)

    async def open(self) -> None:
        def write() -> None:
            with open(self.path, "w") as pipe:
                pipe.write("go\n")
        await asyncio.to_thread(write)  # blocks until the worker has the pipe open for reading


@pytest.fixture
async def pool() -> AsyncIterator[offload.Offload]:
    p = offload.Offload(workers=1, queue=1)
    yield p
    p.close()


async def test_cheap_work_runs_inline_without_starting_a_worker(pool: offload.Offload) -> None:
    assert await pool.run(os.getpid, cost=0) == os.getpid()
    assert pool.submitted == 0


async def test_costly_work_runs_in_another_process_with_the_same_result(
        pool: offload.Offload) -> None:
    obj = parse_object({"id": "p", "type": "polygon", "label": "a", "geometry": {
        "parts": [{"exterior": [[2, 2], [60, 5], [30, 40]]}]}})
    op = {"kind": "rasterize", "object_id": "p"}
    policy = Policy(image_width=64, image_height=48)
    assert await pool.run(os.getpid, cost=pool.inline_cost) != os.getpid()
    result = await pool.run(edit, {"p": obj}, op, policy, cost=pool.inline_cost)
    assert result == edit({"p": obj}, op, policy)
    assert pool.submitted == 2 and pool.pending == 0


async def test_workers_run_nicer_than_the_server(pool: offload.Offload) -> None:
    """When cores are short the scheduler serves the event loop before the heavy edit."""
    mine = os.nice(0)
    assert await pool.run(os.nice, 0, cost=pool.inline_cost) == min(mine + offload.WORKER_NICE, 19)


def _faults_of_a_big_array_twice() -> tuple[int, int]:
    """Minor page faults of filling a fresh 96 MB array, then another after freeing it."""
    faults = []
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(96 << 17)  # 96 MB of float64, larger than anything before it
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        del block
    return faults[0], faults[1]


async def test_a_worker_reuses_the_memory_of_its_last_big_array(pool: offload.Offload) -> None:
    """The second big array of a worker faults in no fresh pages: glibc keeps what the first
    freed (offload.keep_memory), where by default each one is mapped and zeroed anew."""
    first, second = await pool.run(_faults_of_a_big_array_twice, cost=pool.inline_cost)
    assert first > 0 and second <= first // 10, (first, second)
    default = _faults_of_a_big_array_twice()  # this process: glibc's defaults
    assert default[1] > default[0] // 2, default


def _affinity() -> frozenset[int]:
    return frozenset(os.sched_getaffinity(0))


def test_the_cores_are_split_between_serving_and_heavy_work() -> None:
    split = offload.core_split()
    cores = os.sched_getaffinity(0)
    if len(cores) < 2:
        assert split is None
        return
    assert split is not None
    serving, heavy = split
    assert serving and heavy and not serving & heavy and serving | heavy == cores
    assert max(serving) < min(heavy)  # the heavy work gets the last cores


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
async def test_pinned_workers_run_on_the_heavy_cores_only() -> None:
    split = offload.core_split()
    assert split is not None
    pool = offload.Offload(workers=1, queue=0, cores=split[1])
    try:
        assert await pool.run(_affinity, cost=pool.inline_cost) == split[1]
    finally:
        pool.close()


async def test_an_error_in_the_worker_reaches_the_caller_as_raised(pool: offload.Offload) -> None:
    with pytest.raises(TooCostly) as err:
        await pool.run(fail, "op.points", cost=pool.inline_cost)
    assert isinstance(err.value, GeometryError) and err.value.field == "op.points"


async def test_busy_when_every_worker_and_queue_slot_is_taken(pool: offload.Offload,
                                                               tmp_path: Path) -> None:
    first, second = Gate(tmp_path, "first"), Gate(tmp_path, "second")
    running = asyncio.create_task(pool.run(wait_for_pipe, first.path, cost=pool.inline_cost))
    queued = asyncio.create_task(pool.run(wait_for_pipe, second.path, cost=pool.inline_cost))
    await asyncio.sleep(0)  # let both tasks submit (a task switch, not a wait for time)
    assert pool.pending == 2
    with pytest.raises(offload.Busy):
        await pool.run(os.getpid, cost=pool.inline_cost)
    assert await pool.run(os.getpid, cost=0) == os.getpid()  # cheap work is never refused
    await first.open()
    await second.open()
    assert await running == await queued  # one worker ran both, in order
    assert pool.pending == 0
    assert await pool.run(os.getpid, cost=pool.inline_cost) != os.getpid()


async def test_a_cancelled_caller_keeps_its_slot_until_the_worker_is_done(
        pool: offload.Offload, tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    job = asyncio.create_task(pool.run(wait_for_pipe, gate.path, cost=pool.inline_cost))
    await asyncio.sleep(0)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert pool.pending == 1  # the process still works on it
    await gate.open()
    await pool.run(os.getpid, cost=pool.inline_cost)  # queued behind it: it is done after
    assert pool.pending == 0


async def test_a_caller_that_waits_gets_the_next_free_place(pool: offload.Offload,
                                                              tmp_path: Path) -> None:
    first, second = Gate(tmp_path, "first"), Gate(tmp_path, "second")
    running = asyncio.create_task(pool.run(wait_for_pipe, first.path, cost=pool.inline_cost))
    queued = asyncio.create_task(pool.run(wait_for_pipe, second.path, cost=pool.inline_cost))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(pool.run(os.getpid, cost=pool.inline_cost, wait=True))
    await asyncio.sleep(0)
    assert pool.pending == 2 and not waiting.done()
    await first.open()
    await running  # its place goes to the waiting caller, queued behind the second job
    await second.open()
    assert await waiting == await queued
    assert pool.pending == 0


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
async def test_password_hashing_runs_on_the_heavy_cores_when_split() -> None:
    from server.auth import _off_loop

    split = offload.core_split()
    assert split is not None
    offload.configure(1, 0, split_cores=True)
    try:
        assert await _off_loop(_affinity) == split[1]
    finally:
        offload.configure(1, 0)  # the split off again for the tests after this one
        offload.shutdown()
