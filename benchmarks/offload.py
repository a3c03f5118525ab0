"""Thread or process for heavy edits: ``python -m benchmarks.offload [--quick]``.

The event loop's stalls while a 100 MP rasterize, flood fill and brush stroke run beside it —
in a thread (``asyncio.to_thread``'s kind of executor) and in a worker process (what
``server/offload.py`` uses) — against the loop's own stalls when idle, in the same run. A ticker
task sleeps 1 ms over and over; a stall is how late it wakes. This is why the pool is made of
processes (docs/performance.md, "CPU work").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

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


async def _stalls(work: Callable[[], Awaitable[Any]], rounds: int) -> tuple[float, float, float]:
    """(p99, max) of the ticker's lateness in ms while ``work`` runs ``rounds`` times; seconds."""
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
    late.sort()
    return late[int(len(late) * 0.99)], late[-1], elapsed


def fmt(r: tuple[float, float, float]) -> str:
    return f"{r[0]:.1f} / {r[1]:.1f} ms"


async def run(quick: bool) -> list[tuple[str, str, str, str]]:
    loop = asyncio.get_running_loop()
    threads = concurrent.futures.ThreadPoolExecutor(1)
    processes = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("forkserver"))
    await loop.run_in_executor(processes, int, 1)  # started before anything is timed
    rounds = 1 if quick else 3
    rows = []
    try:
        for kind in ("rasterize", "fill", "brush"):
            args = _case(kind)

            def on(pool: concurrent.futures.Executor,
                   args: tuple[Any, ...] = args) -> Callable[[], Awaitable[Any]]:
                return lambda: loop.run_in_executor(pool, edit, *args)

            idle = await _stalls(lambda: asyncio.sleep(1.0), rounds)
            thread = await _stalls(on(threads), rounds)
            proc = await _stalls(on(processes), rounds)
            rows.append((f"event-loop stall (p99 / max) while a 100 MP {kind} runs x{rounds}",
                         f"{fmt(proc)} (process, {proc[2] / rounds:.1f} s each)",
                         f"{fmt(thread)} (thread, {thread[2] / rounds:.1f} s each); "
                         f"{fmt(idle)} idle", "as idle"))
            print(f"  {rows[-1]}", flush=True)
    finally:
        threads.shutdown()
        processes.shutdown()
    return rows


def main(argv: list[str] | None = None) -> None:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    rows = asyncio.run(run(quick))
    print("\n| case | worker process | baseline: thread; idle (same run) | goal |\n|---|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
