"""CPU-heavy work off the event loop: a bounded pool of worker processes.

``await offload.run(fn, *args, cost=...)`` runs ``fn(*args)`` inline when ``cost`` is under
``server.geometry.cost.INLINE_COST`` (a vertex move, a small box: a process round trip would
cost more than the work) and otherwise in the pool. When ``LABELHUB_OFFLOAD_WORKERS`` jobs run
and ``LABELHUB_OFFLOAD_QUEUE`` more wait, the next caller gets :class:`Busy` at once (REST 503
``busy``; a socket ``error`` ``busy`` naming the request) instead of a growing queue.

Why processes, not threads: measured on the 2-core VM (docs/performance.md, "CPU work"), a
100 MP rasterize or flood fill in a thread stalled the event loop for 200-270 ms at a time —
numpy and OpenCV release the GIL inside big array loops, but the stretches between them (run
encoding, fancy indexing, pydantic) hold it far longer than the 5 ms switch interval — while in
a worker process the loop's worst stall stayed at its idle level. What crosses the process
boundary is small: objects carry their masks run-length encoded (a few KB even at 100 MP); the
big arrays live only inside the worker.

``fn`` and its arguments must pickle (module-level functions; pydantic models and dataclasses
do). Exceptions raised by ``fn`` reach the caller as they were raised.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import ctypes
import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from server.geometry.cost import INLINE_COST

__all__ = ["Busy", "Offload", "configure", "core_split", "get", "pin", "run", "shutdown",
           "thread_cores"]

T = TypeVar("T")


class Busy(Exception):
    """Every worker is taken and the queue is full; nothing was done. ``code``: on the wire."""

    code = "busy"

    def __init__(self, message: str = "the server is busy with heavy edits; try again shortly"
                 ) -> None:
        super().__init__(message)
        self.message = message


#: Workers run this much nicer than the server: when cores are short, the scheduler serves the
#: event loop first and the heavy edit waits (measured: a worker at the server's priority on the
#: loaded 2-core VM took CPU from the hub's fan-out, docs/performance.md, "CPU work").
WORKER_NICE = 10


def _warm() -> int:
    return os.getpid()


@functools.cache
def core_split() -> tuple[frozenset[int], frozenset[int]] | None:
    """``(serving cores, heavy cores)`` of the cores this process started with, or ``None``
    with fewer than two (or no affinity API). Heavy work — the offload pool and the job worker
    ``labelhub serve`` starts — gets the last half (at least one core), the serving process the
    rest, so a heavy edit or an embedding job cannot take the event loop's core: niceness alone
    only orders processes sharing a core, and on 2 cores the scheduler kept moving the worker
    onto the server's (docs/performance.md, "CPU work"). Computed once: after :func:`pin` the
    process's own affinity no longer shows the whole machine."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    cores = sorted(getaffinity(0)) if getaffinity is not None else []
    if len(cores) < 2:
        return None
    heavy = max(1, len(cores) // 2)
    return frozenset(cores[:-heavy]), frozenset(cores[-heavy:])


def pin(cores: frozenset[int] | None) -> None:
    """Keep this process (its threads to come included) on ``cores``; nothing when ``None``."""
    setaffinity = getattr(os, "sched_setaffinity", None)
    if cores and setaffinity is not None:
        try:
            setaffinity(0, cores)
        except OSError:  # a container's cpuset changed under us: run unpinned
            pass


_heavy_threads: frozenset[int] | None = None  # where the server's heavy threads run (configure)


def thread_cores() -> frozenset[int] | None:
    """The heavy cores when the split is on (for the server's own heavy threads: argon2)."""
    return _heavy_threads


def _watch(server: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            os._exit(1)  # the server was killed (kill -9): do not outlive it
        except PermissionError:  # pragma: no cover - the pid was reused by another user
            os._exit(1)


#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: Freed memory a worker keeps for its next op, past which glibc gives it back.
KEEP_BYTES = 1 << 30


def keep_memory(keep: int = KEEP_BYTES) -> bool:
    """Have glibc's malloc reuse freed memory instead of mapping fresh pages for each big array.

    A heavy op's arrays (100 MB masks) were each mapped afresh and unmapped when freed, so every
    op faulted in and zeroed its pages again: the hub's p99 beside a labeler looping the
    heaviest ops went from 87 to 35 ms with this, and the ops ran ~1.5x faster
    (docs/performance.md, "Sixth session"). With no mmap and a high trim threshold they come
    from the heap and stay there: a worker keeps up to ``keep`` bytes it freed for its next op.
    False where the C library has no ``mallopt`` (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, keep))


def _init_worker(nice: int, cores: frozenset[int] | None, server: int | None = None) -> None:
    os.nice(nice)
    pin(cores)
    keep_memory()
    if server is not None:
        # A worker's parent is the fork server, which each worker keeps alive (it inherits the
        # fork server's "alive" pipe): after a kill -9 of the server, both would live on,
        # holding the server's stderr and, mid-job, still writing an upload's files.
        threading.Thread(target=_watch, args=(server,), daemon=True).start()


class Offload:
    """A process pool that never queues more than ``queue`` jobs behind ``workers`` running ones.

    The pool starts its processes on first use (a server that never sees a heavy edit never
    forks). Workers come from a fork server with the geometry core preloaded: forking the
    server itself would copy its threads' state, and spawning would import numpy, OpenCV and
    pydantic afresh for each worker.
    """

    def __init__(self, workers: int, queue: int, inline_cost: int = INLINE_COST,
                 cores: frozenset[int] | None = None) -> None:
        self.workers, self.queue, self.inline_cost = max(1, workers), max(0, queue), inline_cost
        self.cores = cores  # the workers' CPU affinity (None: as the server's)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.pending = 0  # submitted and not finished (running + waiting)
        self.submitted = 0  # jobs ever sent to the pool (tests and benchmarks read it)
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._making = threading.Lock()  # the pool is made in a thread (``run``)

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        # Called from a thread by ``run``: making the pool (module lookups for the preload,
        # pipes) held the event loop ~15 ms on the first heavy edit.
        with self._making:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["server.geometry", "server.formats.masks"])
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=context, initializer=_init_worker,
                    initargs=(WORKER_NICE, self.cores, os.getpid()))
            return self._pool

    async def run(self, fn: Callable[..., T], *args: Any, cost: int, wait: bool = False) -> T:
        """``fn(*args)``: inline when ``cost`` is small, else in a worker. When the pool is full
        this raises :class:`Busy`, or with ``wait`` waits for a free place (for work already
        under way, such as a streaming export, which cannot answer ``busy`` half-way)."""
        if cost < self.inline_cost:
            return fn(*args)
        while self.pending >= self.workers + self.queue:
            if not wait:
                raise Busy()
            await self._place()
        loop = asyncio.get_running_loop()

        def submit() -> concurrent.futures.Future[T]:
            try:
                future = self._executor().submit(fn, *args)
            except BaseException:
                loop.call_soon_threadsafe(self._done)
                raise
            # Counted until the worker is done, not until the caller stops waiting: a cancelled
            # caller (a closed socket) must not let more work in than the pool can hold.
            future.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._done))
            return future

        self.pending += 1
        self.submitted += 1
        try:
            # From a thread: a submit may start a worker, and the first one starts the fork
            # server, which imports the geometry core before it answers (measured: the loop
            # stalled 1.3 s on the first heavy edit when this ran on it).
            future = await asyncio.to_thread(submit)
        except concurrent.futures.BrokenExecutor:
            self._restart()
            raise Busy("the worker pool restarted; send it again") from None
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.BrokenExecutor:
            # A worker died (killed for memory, say): its jobs fail, the next ones get a fresh pool.
            self._restart()
            raise Busy("a worker process failed; send it again") from None

    def _done(self) -> None:
        self.pending -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _place(self) -> None:
        """Wait until a job finishes (callers with ``wait``, first come first served)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, then cancelled: the place goes to the next in line
            raise

    def _restart(self) -> None:
        with self._making:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def warm(self) -> None:
        """Start every worker now (benchmarks measure a warm pool)."""
        pool = self._executor()
        await asyncio.gather(*(asyncio.wrap_future(pool.submit(_warm))
                               for _ in range(self.workers)))

    def close(self) -> None:
        with self._making:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_current: Offload | None = None


def configure(workers: int, queue: int, split_cores: bool = False) -> Offload:
    """Replace the process's pool (the app's lifespan does, from the settings); with
    ``split_cores`` its workers run on the heavy cores of :func:`core_split`."""
    global _current, _heavy_threads
    shutdown()
    split = core_split() if split_cores else None
    _heavy_threads = split[1] if split else None
    _current = Offload(workers, queue, cores=_heavy_threads)
    return _current


def get() -> Offload:
    """The process's pool; one with the default settings when nobody configured it."""
    global _current
    if _current is None:
        from server.settings import get_settings

        settings = get_settings()
        _current = Offload(settings.offload_workers, settings.offload_queue)
    return _current


async def run(fn: Callable[..., T], *args: Any, cost: int, wait: bool = False) -> T:
    """``fn(*args)`` on the process's pool (see :meth:`Offload.run`)."""
    return await get().run(fn, *args, cost=cost, wait=wait)


def shutdown() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None
