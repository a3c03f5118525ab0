"""A job's batches two at a time: the next batch is read and computed while this one is stored.

The jobs that run the network (embed, train, predict) spend most of their time on the CPU in a
worker thread and the rest waiting for the database or the image store. One after the other,
the CPU idles while a batch is committed; overlapped, a batch's commit (and the progress report
after it) costs no wall time as long as it is shorter than the next batch's computing. At most
one batch is computed ahead, so memory stays at two batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

__all__ = ["pipelined"]

B = TypeVar("B")
R = TypeVar("R")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # read, so a batch abandoned after a failure logs no warning


async def pipelined(batches: Sequence[B], prepare: Callable[[B], Awaitable[R]],
                    finish: Callable[[B, R], Awaitable[None]]) -> None:
    """``finish(batch, await prepare(batch))`` for each batch in order, with ``prepare`` of the
    next batch running while ``finish`` of the current one does. An exception from either stops
    the loop (the batch being prepared is abandoned: a computation already in a worker thread
    runs to its end, its result unused)."""
    if not batches:
        return
    ahead: asyncio.Future[R] = asyncio.ensure_future(prepare(batches[0]))
    try:
        for k, batch in enumerate(batches):
            result = await ahead
            if k + 1 < len(batches):
                ahead = asyncio.ensure_future(prepare(batches[k + 1]))
            await finish(batch, result)
    finally:
        if not ahead.done():
            ahead.add_done_callback(_retrieve)
            ahead.cancel()
