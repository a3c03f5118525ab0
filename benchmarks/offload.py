"""Thread or process, split cores or not, for heavy edits: ``python -m benchmarks.offload
[--quick]``.

The event loop's stalls while a 100 MP rasterize, flood fill and brush stroke run beside it —
in a thread (``asyncio.to_thread``'s kind of executor), in a worker process on any core, and in
a worker process pinned to the heavy cores with this loop on the serving ones (what
``server/offload.py`` does with ``LABELHUB_CPU_SPLIT``) — against the loop's own stalls when
idle, in the same run, the variants taking turns so the machine's noise hits them alike. A ticker
task sleeps 1 ms over and over; a stall is how late it wakes. This is why the pool is made of
processes (docs/performance.md, "CPU work").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server import offload
from server.geometry import Policy, edit, parse_object

SIDE = 10_000


def _case(kind: str) -> tuple[dict[str, Any], dict[str, Any], Policy]:
    policy = Policy(image_width=SIDE, image_height=SIDE)
    poly = parse_object({"id": "p", "type": "polygon", "label": "a", "geometry": {"parts": [
        {"exterior": [[10, 10], [SIDE - 10, 20], [SIDE - 30, SIDE - 10], [20, SIDE - 40]]}]}})
    if kind == "rasterize":
        return {"p": poly}, {"kind": "rasterize", "object_id": "p"}, policy
    bitmap = edit({"p": poly}, {"kind": "rasterize", "object_id": "p"}, policy).changes["p"]
    assert bitmap is not None
    if kind == "fill":
        return {"p": bitmap}, {"kind": "fill", "object_id": "p", "x": 5, "y": 5}, policy
    points = [[100 + i * 10 % (SIDE - 200), 100 + (i * 7) % (SIDE - 200)] for i in range(1000)]
    return ({"p": bitmap}, {"kind": "brush", "object_id": "p", "mode": "erase",
                            "points": points, "radius": 200}, policy)


async def _stalls(work: Callable[[], Awaitable[Any]], rounds: int) -> tuple[list[float], float]:
    """The ticker's lateness (ms, every tick) while ``work`` runs ``rounds`` times; seconds."""
    late: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)  # the probe: how late does a 1 ms timer fire?
            late.append((time.perf_counter() - t0 - 0.001) * 1000)

    task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    for _ in range(rounds):
        await work()
    elapsed = time.perf_counter() - t0
    done = True
    await task
    return late, elapsed


def fmt(late: list[float]) -> str:
    late = sorted(late)
    return f"{late[int(len(late) * 0.99)]:.1f} / {late[-1]:.1f} ms"


def _pool(cores: frozenset[int] | None) -> concurrent.futures.ProcessPoolExecutor:
    # As server/offload.py makes its workers: a fork server, nice +10, pinned when ``cores``.
    return concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("forkserver"),
        initializer=offload._init_worker, initargs=(offload.WORKER_NICE, cores))


async def run(quick: bool) -> list[tuple[str, ...]]:
    """Per op kind, in turns (noise spreads over all variants): idle, a thread, a worker
    process on any core, and the CPU split (this loop on the serving cores, the worker on the
    heavy ones, ``LABELHUB_CPU_SPLIT``)."""
    loop = asyncio.get_running_loop()
    everywhere = frozenset(os.sched_getaffinity(0))
    split = offload.core_split()
    threads = concurrent.futures.ThreadPoolExecutor(1)
    anywhere, pinned = _pool(None), _pool(split[1] if split else None)
    for pool in (anywhere, pinned):
        await loop.run_in_executor(pool, int, 1)  # started before anything is timed
    rounds = 1 if quick else 3
    rows: list[tuple[str, ...]] = []
    try:
        for kind in ("rasterize", "fill", "brush"):
            args = _case(kind)

            def on(pool: concurrent.futures.Executor,
                   args: tuple[Any, ...] = args) -> Callable[[], Awaitable[Any]]:
                return lambda: loop.run_in_executor(pool, edit, *args)

            late: dict[str, list[float]] = {}
            secs: dict[str, float] = {}
            for _ in range(rounds):
                for name, work in (("idle", lambda: asyncio.sleep(1.0)), ("thread", on(threads)),
                                   ("process", on(anywhere)), ("split", on(pinned))):
                    offload.pin(split[0] if split and name == "split" else everywhere)
                    ticks, seconds = await _stalls(work, 1)
                    late.setdefault(name, []).extend(ticks)
                    secs[name] = secs.get(name, 0.0) + seconds
            offload.pin(everywhere)
            rows.append((f"event-loop stall (p99 / max) while a 100 MP {kind} runs x{rounds}",
                         f"{fmt(late['split'])} ({secs['split'] / rounds:.1f} s each)",
                         f"{fmt(late['process'])} ({secs['process'] / rounds:.1f} s each)",
                         f"{fmt(late['thread'])} ({secs['thread'] / rounds:.1f} s each)",
                         fmt(late["idle"]), "as idle"))
            print(f"  {rows[-1]}", flush=True)
    finally:
        offload.pin(everywhere)
        threads.shutdown()
        anywhere.shutdown()
        pinned.shutdown()
    return rows


def main(argv: list[str] | None = None) -> None:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    split = offload.core_split()
    print(f"cores {sorted(os.sched_getaffinity(0))}; split (serving, heavy): "
          f"{[sorted(c) for c in split] if split else 'none (one core)'}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = asyncio.run(run(quick))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    print("\n| case | worker process, CPU split | worker process, any core | thread | idle | goal |"
          "\n|---|---:|---:|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
